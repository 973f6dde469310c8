"""The library's entry points: what `python -m simulator run/compare` call, returning data."""
from __future__ import annotations

from . import memory_saving
from .engine import FULL, ROOFLINE, KernelTable, Terms, evaluate, hardware_columns, host_excess
from .errors import SpecError
from .graph import Model, build_model
from .hardware import Hardware, load_hardware
from .library import resolve
from .mapping import compact, lower
from .results import Result
from .stacks import Stack, choose_stack, load_stack


def load_model(model: str, overrides: dict | None = None, attention: str = "flash") -> Model:
    """A built-in id or a YAML path, with workload overrides (`--set`)."""
    path = resolve("models", model)
    return build_model(path, overrides or {}, attention, path.stem)


def model_defaults(model: str) -> dict:
    """The workload parameters a model declares, with their defaults, without building it."""
    from .loader import load_yaml
    params = load_yaml(resolve("models", model)).get("params")
    return dict(params) if isinstance(params, dict) else {}


def resolve_stack(stack: str | Stack | None, built: Model, hw: Hardware, fusion: str | None = None,
                  graphs: bool | None = None) -> Stack:
    """The stack a run uses (command line > model file > device default > eager), with the `--fusion` and
    `cuda_graphs` overrides applied."""
    if not isinstance(stack, Stack):
        stack = load_stack(choose_stack(stack, built.default_stack, hw.spec.default_stack))
    return stack.with_overrides(fusion, graphs)


def cost(built: Model, table: KernelTable, hw: Hardware, stack: Stack, terms: Terms = FULL) -> Result:
    cols = hardware_columns(table, [hw.spec])
    full = evaluate(table, cols, terms)
    bare_full = evaluate(table, cols, ROOFLINE, energy=False)
    transfer, cpu = memory_saving.stage_seconds(built, table, hw.spec)
    on_cpu = memory_saving.cpu_rows(built, table)
    if on_cpu.any():  # stages run on the host CPU take no device time (their CPU time is `cpu`)
        for costs in (full, bare_full):
            for v in costs.values():
                if v.dtype.kind == "f":
                    v[:, on_cpu] = 0.0
    # the host model reads the distinct kernels in order of first appearance, exactly as a sweep does
    # (the re-reads split kernels only where the L2 differs from the file's, as in a sweep that varies it)
    oc = hw.spec.on_chip
    l2_moved = (oc.l2_bytes, oc.l2_bandwidth) != (hw.spec.reference("l2_bytes"), hw.spec.reference("l2_bandwidth"))
    distinct, first = compact(table, rows=True, reuse=l2_moved)
    host = host_excess(distinct, full["time"][:, first], terms)[0]
    host[cpu > 0] = 0.0  # a stage run on the host CPU: its time is the CPU's, not kernels issued to the device
    one = {k: v[0] for k, v in full.items()}
    bare = {k: v[0] for k, v in bare_full.items()}
    result = Result(built, hw, terms, table, one, bare, stack=stack, host_s=host, transfer_s=transfer, cpu_s=cpu)
    if not result.fits:
        from .parallel import smallest_fit
        n = smallest_fit(built, hw.spec.memory.capacity)
        more = f"; fits on {n} devices with tp={n} (--devices {n})" if n and result.devices == 1 else ""
        result.warnings.append(f"peak memory {result.peak_memory_bytes / 2**30:.1f} GiB exceeds {hw.name}'s "
                               f"{hw.spec.memory.capacity / 2**30:.1f} GiB{' per device' * (result.devices > 1)}"
                               f"{more}")
    return result


def compare(model: str, hardware: list[str], overrides: dict | None = None, hw_overrides: dict | None = None,
            attention: str = "flash", terms: Terms = FULL, fusion: str | None = None, stack: str | None = None,
            graphs: bool | None = None, devices: list | int | None = None,
            parallel: str | None = None) -> list[Result]:
    """The same model on several devices, each with the stack it runs (`stack`, else the model's or the
    device's default); the model is built once and lowered once per device.

    `devices` (a count or a list of counts) and `parallel` (`tp=2,sp=4,...`, see parallel.parse_plan) run it on
    several devices of each kind; with a list, one result per hardware and device count."""
    from .parallel import check_links, parse_plan
    counts = devices if isinstance(devices, (list, tuple)) else [devices]
    plans = [parse_plan(parallel, n) for n in counts]
    built = load_model(model, overrides, attention)
    results = []
    if built.memory.active and any(p.devices > 1 for p in plans):
        raise SpecError(f"--set {built.memory.describe()}: memory-saving modes are modelled on one device only, "
                        f"not with --devices / --parallel")
    for name in hardware:
        hw = load_hardware(name, hw_overrides)
        st = resolve_stack(stack, built, hw, fusion, graphs)
        for plan in plans:
            check_links(plan, hw.spec, hw.id)
            results.append(cost(built, lower(built, st, hw.spec, plan=plan), hw, st, terms))
            results[-1].warnings += field_warnings(results[-1], hw_overrides)
    return results


def field_warnings(result: Result, hw_overrides: dict | None) -> list[str]:
    """Hardware fields this run cannot read (fields.unread) and fields set with --hw-set that it does not."""
    from .fields import ignored, unread
    spec, table = result.hardware.spec, result.table
    modes = result.model.memory  # the host fields are read by the memory-saving modes alone
    reads = (("host_link.",) if modes.offload != "none" else ()) + \
        (("host.",) if modes.text_encoder_device == "cpu" else ())
    set_paths = [p for p in (hw_overrides or {}) if not (p.startswith("interconnect") and result.devices > 1)
                 and not (reads and p.startswith(reads))]
    return [f"hardware {result.hardware.id}: {w}" for w in unread(spec)] + \
        ignored(spec, table.peaks, table.effs, set_paths, "--hw-set")


def run(model: str, hardware: str = "a100", overrides: dict | None = None, hw_overrides: dict | None = None,
        attention: str = "flash", terms: Terms = FULL, fusion: str | None = None, stack: str | None = None,
        graphs: bool | None = None, devices: int | None = None, parallel: str | None = None) -> Result:
    """Cost one model (built-in id or YAML path) on one device (id or YAML path) under a software stack; with
    `devices` / `parallel` (`tp=2,pp=1,dp=1,sp=4,cfg=2,ep=1`) on several devices of that kind.

    `stack` is a stack id (`eager`, `compile`, `compile-cudagraphs`, `tensorrt`, `xla`, `serving`) or YAML
    file; `fusion` (none, elementwise, full) and `graphs` (kernels replayed from a captured graph) override
    the stack's own settings; `terms` switches the efficiency effects (FULL, ROOFLINE, Terms.without({...})).
    """
    return compare(model, [hardware], overrides, hw_overrides, attention, terms, fusion, stack, graphs, devices,
                   parallel)[0]


def serving_curve(model: str, hardware: str, devices: list, batches: list, overrides: dict | None = None,
                  hw_overrides: dict | None = None, attention: str = "flash", terms: Terms = FULL,
                  stack: str | None = None, parallel: str | None = None) -> list[dict]:
    """The throughput-latency curve of a batch sweep, one point per (device count, batch): the model built once
    per batch and lowered once per device count (`devices`; tensor parallel unless `parallel` says otherwise).

    Each record: devices, plan, batch, item (tokens / images / videos), latency_s (one request's end-to-end
    time), per_item_latency_s (LLM: time per output token; else the latency), ttft_s (LLM), items_per_s in total
    and per device, and whether it fits."""
    points = []
    for batch in batches:
        results = compare(model, [hardware], {**(overrides or {}), "batch": batch}, hw_overrides, attention,
                          terms, stack=stack, devices=list(devices), parallel=parallel)
        for r in results:
            s = r.serving()
            llm = "tokens_per_s" in s
            item = "tokens" if llm else ("videos" if "videos_per_s" in s else "images")
            points.append({"devices": r.devices, "plan": str(r.plan) if r.plan is not None else "tp=1",
                           "batch": batch, "item": item, "latency_s": r.time_s,
                           "per_item_latency_s": s["tpot_s"] if llm else r.time_s,
                           "ttft_s": s.get("ttft_s"), "items_per_s": s[f"{item}_per_s"],
                           "items_per_s_per_device": s[f"{item}_per_s_per_device"], "fits": bool(r.fits)})
    return points
