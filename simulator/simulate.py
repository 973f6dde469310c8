"""The library's entry points: what `python -m simulator run/compare` call, returning data."""
from __future__ import annotations

from .engine import FULL, ROOFLINE, KernelTable, Terms, evaluate, hardware_columns, lower
from .graph import Model, build_model
from .hardware import Hardware, load_hardware
from .library import resolve
from .results import Result


def load_model(model: str, overrides: dict | None = None, attention: str = "flash") -> Model:
    """A built-in id or a YAML path, with workload overrides (`--set`)."""
    path = resolve("models", model)
    return build_model(path, overrides or {}, attention, path.stem)


def model_defaults(model: str) -> dict:
    """The workload parameters a model declares, with their defaults, without building it."""
    from .loader import load_yaml
    params = load_yaml(resolve("models", model)).get("params")
    return dict(params) if isinstance(params, dict) else {}


def cost(built: Model, table: KernelTable, hw: Hardware, terms: Terms = FULL) -> Result:
    cols = hardware_columns(table, [hw.spec])
    one = {k: v[0] for k, v in evaluate(table, cols, terms).items()}
    bare = {k: v[0] for k, v in evaluate(table, cols, ROOFLINE).items()}
    result = Result(built, hw, terms, table, one, bare)
    if not result.fits:
        result.warnings.append(f"peak memory {result.peak_memory_bytes / 1e9:.1f} GB exceeds {hw.name}'s "
                               f"{hw.spec.memory.capacity / 1e9:.1f} GB")
    return result


def compare(model: str, hardware: list[str], overrides: dict | None = None, hw_overrides: dict | None = None,
            attention: str = "flash", terms: Terms = FULL, fusion: str = "none") -> list[Result]:
    """The same model on several devices; the model is built and lowered once."""
    built = load_model(model, overrides, attention)
    table = lower(built, fusion)
    results = [cost(built, table, load_hardware(name, hw_overrides), terms) for name in hardware]
    for r in results:
        r.fusion = fusion
    return results


def run(model: str, hardware: str = "a100", overrides: dict | None = None, hw_overrides: dict | None = None,
        attention: str = "flash", terms: Terms = FULL, fusion: str = "none") -> Result:
    """Cost one model (built-in id or YAML path) on one device (id or YAML path).

    `fusion="elementwise"` models a compiled deployment (torch.compile, TensorRT) that folds elementwise ops
    into their producers; `terms` switches the efficiency effects (FULL, ROOFLINE, Terms.without({...})).
    """
    return compare(model, [hardware], overrides, hw_overrides, attention, terms, fusion)[0]
