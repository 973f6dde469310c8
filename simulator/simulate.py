"""The library's entry points: what `python -m simulator run/compare` call, returning data."""
from __future__ import annotations

from .engine import FULL, ROOFLINE, KernelTable, Terms, evaluate, hardware_columns, host_excess
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
    # the host model reads the distinct kernels in order of first appearance, exactly as a sweep does
    distinct, first = compact(table, rows=True)
    host = host_excess(distinct, full["time"][:, first], terms)[0]
    one = {k: v[0] for k, v in full.items()}
    bare = {k: v[0] for k, v in evaluate(table, cols, ROOFLINE).items()}
    result = Result(built, hw, terms, table, one, bare, stack=stack, host_s=host)
    if not result.fits:
        result.warnings.append(f"peak memory {result.peak_memory_bytes / 2**30:.1f} GiB exceeds {hw.name}'s "
                               f"{hw.spec.memory.capacity / 2**30:.1f} GiB")
    return result


def compare(model: str, hardware: list[str], overrides: dict | None = None, hw_overrides: dict | None = None,
            attention: str = "flash", terms: Terms = FULL, fusion: str | None = None, stack: str | None = None,
            graphs: bool | None = None) -> list[Result]:
    """The same model on several devices, each with the stack it runs (`stack`, else the model's or the
    device's default); the model is built once and lowered once per device."""
    built = load_model(model, overrides, attention)
    results = []
    for name in hardware:
        hw = load_hardware(name, hw_overrides)
        st = resolve_stack(stack, built, hw, fusion, graphs)
        results.append(cost(built, lower(built, st, hw.spec), hw, st, terms))
    return results


def run(model: str, hardware: str = "a100", overrides: dict | None = None, hw_overrides: dict | None = None,
        attention: str = "flash", terms: Terms = FULL, fusion: str | None = None, stack: str | None = None,
        graphs: bool | None = None) -> Result:
    """Cost one model (built-in id or YAML path) on one device (id or YAML path) under a software stack.

    `stack` is a stack id (`eager`, `compile`, `compile-cudagraphs`, `tensorrt`, `xla`, `serving`) or YAML
    file; `fusion` (none, elementwise, full) and `graphs` (kernels replayed from a captured graph) override
    the stack's own settings; `terms` switches the efficiency effects (FULL, ROOFLINE, Terms.without({...})).
    """
    return compare(model, [hardware], overrides, hw_overrides, attention, terms, fusion, stack, graphs)[0]
