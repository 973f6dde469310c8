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


# Autoregressive stages costed in closed form over runs of iterations (mapping.closed_form_runs); False: every
# iteration's kernels costed one by one (the path before, for comparison: tests/test_autoregressive.py)
CLOSED_FORM = True


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
    host = host_excess(*host_kernels(table, full["time"]), terms)[0]
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


def host_kernels(table: KernelTable, time):
    """The kernel table and per-run times ([points, kernels]) the host model reads: the distinct kernels in order
    of first appearance, each at the mean time of the kernels merged into it, exactly as a sweep reads them.

    Kernels that differ only in their L2 re-reads merge whatever the L2, so the host's pace is read over the same
    sequence of kernels at every L2 size (splitting them where the L2 moves would change the order the host model
    reads, and its time would jump with one byte of L2); their device times still differ, and are averaged."""
    distinct, _, group = compact(table, rows=True, reuse=False, groups=True)
    return distinct, mean_times(time, group, table.count, distinct.count)


def mean_times(time, group, count, group_count):
    """Per-run time of each group of kernels ([points, groups]): the run-weighted mean of its kernels' times
    (`group[k]`: kernel k's group; a group that never runs takes 0)."""
    import numpy as np
    order = np.argsort(group, kind="stable")  # every group has a kernel: one contiguous run of columns each
    total = np.add.reduceat(time[:, order] * count[order], np.searchsorted(group[order], np.arange(len(group_count))),
                            axis=1)
    return np.divide(total, group_count, out=np.zeros_like(total), where=group_count > 0)


def compare(model: str | Model, hardware: list[str], overrides: dict | None = None, hw_overrides: dict | None = None,
            attention: str = "flash", terms: Terms = FULL, fusion: str | None = None, stack: str | None = None,
            graphs: bool | None = None, devices: list | int | None = None,
            parallel: str | None = None) -> list[Result]:
    """The same model on several devices, each with the stack it runs (`stack`, else the model's or the
    device's default); the model is built once and lowered once per device.

    `devices` (a count or a list of counts) and `parallel` (`tp=2,sp=4,...`, see parallel.parse_plan) run it on
    several devices of each kind; with a list, one result per hardware and device count, `parallel` giving the
    degrees besides tp and tp filling the rest of each count (parallel.plans_for_counts). `model` may be a
    Model already built (its overrides and attention applied; `overrides` and `attention` are then unused): it
    is only read, so one built model serves any number of runs (the explorer's what-ifs)."""
    from .parallel import check_links, parse_plan, plans_for_counts
    several = isinstance(devices, (list, tuple))
    plans = plans_for_counts(parallel, list(devices)) if several else [parse_plan(parallel, devices)]
    built = model if isinstance(model, Model) else load_model(model, overrides, attention)
    results = []
    if built.memory.active and any(p.devices > 1 for p in plans):
        raise SpecError(f"--set {built.memory.describe()}: memory-saving modes are modelled on one device only, "
                        f"not with --devices / --parallel")
    for name in hardware:
        hw = load_hardware(name, hw_overrides)
        st = resolve_stack(stack, built, hw, fusion, graphs)
        for plan in plans:
            check_links(plan, hw.spec, hw.id)
            # a stage's kernels at every iteration written at the ends of runs costed in closed form (FULL and
            # ROOFLINE: cost() reads both); CLOSED_FORM = False writes every iteration (the same answer)
            closed = (terms, ROOFLINE) if CLOSED_FORM else None
            results.append(cost(built, lower(built, st, hw.spec, plan=plan, closed_form=closed), hw, st, terms))
            results[-1].warnings += field_warnings(results[-1], hw_overrides)
    return results


def field_warnings(result: Result, hw_overrides: dict | None) -> list[str]:
    """Hardware fields this run cannot read (fields.unread) and fields set with --hw-set that it does not."""
    from .fields import ignored, unread
    spec, table = result.hardware.spec, result.table
    reads = result.model.memory.host_fields  # the host fields are read by the memory-saving modes alone
    # the links: the interconnect is read by any multi-device plan, the network by one spanning several nodes
    per_node = spec.interconnect.devices_per_node if spec.interconnect is not None else 1
    links = ("interconnect",) * (result.devices > 1) + ("network.",) * (result.devices > per_node)
    one_node = [p for p in (hw_overrides or {}) if p.startswith("network.") and 1 < result.devices <= per_node]
    set_paths = [p for p in (hw_overrides or {}) if not (links and p.startswith(links)) and p not in one_node
                 and not (reads and p.startswith(reads))]
    return [f"hardware {result.hardware.id}: {w}" for w in unread(spec)] + \
        ignored(spec, table.peaks, table.effs, set_paths, "--hw-set") + \
        [f"--hw-set {p} does not change any time here: the {result.devices} devices fit in one node of {per_node} "
         f"(the network joins nodes)" for p in one_node]


def run(model: str | Model, hardware: str = "a100", overrides: dict | None = None, hw_overrides: dict | None = None,
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
    per batch and lowered once per device count (`devices`; tensor parallel, or `parallel`'s degrees with tp filling
    the rest of each count).

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
