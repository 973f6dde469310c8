"""Hardware descriptions: load (with `inherit`), override fields by path, and lay out as engine columns.

The engine sees a hardware *table*: one numpy column per field, one row per design point, so a single device
and a million hypothetical ones go through the same formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dtypes import COMPUTE
from .errors import Location, SpecError, closest, name_of, shown
from .library import resolve
from .loader import Node, load_yaml
from .schema import Efficiency, HardwareSpec, validate


@dataclass(frozen=True)
class Hardware:
    id: str
    file: str
    spec: HardwareSpec

    @property
    def name(self) -> str:
        return self.spec.name


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _raw(name: str, chain: tuple = ()) -> tuple[Node, str]:
    path = resolve("hardware", name)
    node = load_yaml(path)
    if "inherit" in node:
        parent = node["inherit"]
        if not isinstance(parent, str):
            raise SpecError("'inherit' names a hardware id or file", node.loc("inherit", "inherit"))
        target = parent if not parent.endswith((".yaml", ".yml")) else str(Path(path).parent / parent)
        if target in chain:
            raise SpecError(f"'inherit' loops back to '{parent}'", node.loc("inherit", "inherit"))
        try:
            base, _ = _raw(target, chain + (target,))
        except SpecError as exc:
            if exc.location.file:
                raise
            raise SpecError(exc.message, node.loc("inherit", "inherit")) from None
        merged = _merge(base, {k: v for k, v in node.items() if k != "inherit"})
        result = Node(merged)
        result.file, result.line, result.key_lines = node.file, node.line, {**base.key_lines, **node.key_lines}
        return result, str(path)
    return node, str(path)


def field_paths(raw: dict, prefix: str = "") -> dict:
    """Every numeric field as 'a.b.c' -> value."""
    out = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(field_paths(value, path + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[path] = value
    return out


def settable_paths(raw: dict) -> set:
    """Numeric paths a user may set: those present plus a rate for any dtype the device lacks."""
    paths = set(field_paths(raw))
    paths |= {f"compute.{d}" for d in COMPUTE} | {f"vector.{d}" for d in COMPUTE}
    # optional numeric efficiency terms a file may leave out (absent means the term costs nothing or falls back),
    # read from the schema so a new field is settable without a second list
    paths |= {f"efficiency.{name}" for name, f in Efficiency.model_fields.items()
              if not f.is_required() and "dict" not in str(f.annotation)}
    paths.add("clock.sustained_hz")
    return paths


def set_path(raw: dict, path: str, value: float) -> dict:
    keys = path.split(".")
    out = dict(raw)
    node = out
    for key in keys[:-1]:
        node[key] = dict(node.get(key, {}))
        node = node[key]
    node[keys[-1]] = value
    return out


def apply_overrides(raw: dict, overrides: dict, file: str) -> dict:
    allowed = settable_paths(raw)
    for path, value in overrides.items():
        if path not in allowed:
            raise SpecError(f"--hw-set {name_of(path)}: unknown hardware field{closest(path, allowed)}", Location(file))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"--hw-set {path}={shown(value)}: expected a number", Location(file))
        if not math.isfinite(value):
            raise SpecError(f"--hw-set {path}={value}: expected a finite number")
        raw = set_path(raw, path, value)
    return raw


def load_hardware(name: str, overrides: dict | None = None) -> Hardware:
    raw, file = _raw(name)
    data = apply_overrides(raw, overrides or {}, file)
    if overrides:
        node = Node(data)
        node.file, node.line, node.key_lines = raw.file, raw.line, raw.key_lines
        data = node
    try:
        spec = validate(HardwareSpec, data, file)
    except SpecError as exc:  # a value the user set is refused at the option that set it
        path = exc.location.path
        if overrides and path in overrides:
            raise SpecError(f"--hw-set {path}={overrides[path]}: {exc.message}") from None
        raise
    hw_id = Path(file).stem if not overrides else Path(file).stem + "*"
    return Hardware(hw_id, file, spec)


# ------------------------------------------------------------------------------------------- engine columns

# engine column -> the hardware field(s) it reads, first present wins
COLUMN_FIELDS = {
    "bandwidth": ("memory.bandwidth",),
    "capacity": ("memory.capacity",),
    "cores": ("cores",),
    "tile_m": ("matrix_tile.m",), "tile_n": ("matrix_tile.n",), "tile_k": ("matrix_tile.k",),
    "min_tile_m": ("min_tile.m", "matrix_tile.m"), "min_tile_n": ("min_tile.n", "matrix_tile.n"),
    "min_tile_k": ("min_tile.k", "matrix_tile.k"),
    "launch_overhead": ("efficiency.launch_overhead_s",),
    "graph_launch_overhead": ("efficiency.graph_launch_overhead_s", "efficiency.launch_overhead_s"),
    "memory_latency": ("efficiency.memory_latency_s", None),
    "k0_matrix": ("efficiency.gemm_k_overhead", None),
    "k0_attention": ("efficiency.attention_k_overhead", None),
    "peak_clock": ("clock.peak_hz", "clock_hz"),
    "sustained_clock": ("clock.sustained_hz", "clock.peak_hz", "clock_hz"),
    "attn_q": ("attention_tile.q", "matrix_tile.m"), "attn_k": ("attention_tile.k", "matrix_tile.n"),
    "attn_d": ("attention_tile.head_dim_multiple", "matrix_tile.k"),
}


def rate_field(fields, substitutes: dict, unit: str, dtype: str) -> str | None:
    """The field giving `unit`'s peak FLOP/s for `dtype`: the dtype's own rate, else a declared substitute's.

    Matrix-unit fp32 falls back to the vector unit (GPUs run true-fp32 GEMMs on CUDA cores); vector ops on a
    type the vector unit has no rate for run at its fp32 rate (they are upcast).
    """
    table = "compute" if unit == "matrix" else "vector"
    for d in (dtype, substitutes.get(dtype)):
        if d is not None and f"{table}.{d}" in fields:
            return f"{table}.{d}"
    if unit == "vector" or dtype == "fp32":
        return "vector.fp32"
    return None


def rate(spec: HardwareSpec, unit: str, dtype: str) -> float | None:
    fields = field_paths(spec.model_dump())
    path = rate_field(fields, spec.dtype_substitutes, unit, dtype)
    return fields[path] if path else None


def efficiency_fields(klass: str) -> tuple:
    """The hardware fields giving an efficiency class's achievable fraction, first present wins."""
    if klass.startswith("attention:"):
        return (f"efficiency.attention_backends.{klass.split(':', 1)[1]}", "efficiency.attention", "efficiency.matrix")
    kind, _, dtype = klass.partition(":")
    if kind == "matrix":  # GEMMs: the dtype's own measured fraction where the file has one (fp8 GEMMs reach less)
        return (f"efficiency.matrix_by_dtype.{dtype}", "efficiency.matrix")
    if kind == "conv":
        return ("efficiency.conv", f"efficiency.matrix_by_dtype.{dtype}", "efficiency.matrix")
    return {"vector": ("efficiency.vector",), "reduction": ("efficiency.vector",), "none": (None,)}[klass]


def memory_efficiency_fields(klass: str) -> tuple:
    """The hardware fields giving a class's achievable fraction of DRAM bandwidth, first present wins."""
    if klass == "reduction":
        return ("efficiency.reduction_memory", "efficiency.memory")
    return ("efficiency.memory",)


def columns_from(spec: HardwareSpec, peaks: list[tuple], varied: dict | None = None, n: int = 1,
                 effs: list | tuple = ()) -> dict:
    """Engine columns for `n` design points: `spec`'s values, with the fields in `varied` (path -> array of n).
    `peaks` lists the (unit, dtype) rates and `effs` the efficiency classes the kernel table needs."""
    varied = varied or {}
    fields = {**field_paths(spec.model_dump()), **varied}
    cols = {}
    for col, paths in COLUMN_FIELDS.items():
        path = next(p for p in paths if p is None or p in fields)
        value = 0.0 if path is None else fields[path]  # an absent optional term costs nothing
        cols[col] = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))
    cols["clock_ratio"] = cols["sustained_clock"] / cols["peak_clock"]
    for klass in effs:
        path = next(p for p in efficiency_fields(klass) if p is None or p in fields)
        cols[f"eff:{klass}"] = np.broadcast_to(np.asarray(1.0 if path is None else fields[path], dtype=np.float64),
                                               (n,))
        path = next(p for p in memory_efficiency_fields(klass) if p in fields)
        cols[f"effmem:{klass}"] = np.broadcast_to(np.asarray(fields[path], dtype=np.float64), (n,))
    for unit, dtype in peaks:
        path = rate_field(fields, spec.dtype_substitutes, "matrix" if unit == "attention" else unit, dtype)
        if path is None:
            have = ", ".join(sorted(spec.compute)) or "none"
            raise SpecError(f"hardware '{spec.name}' has no matrix-unit rate for {dtype} (has: {have}); "
                            f"run with --set dtype=... or give one with --hw-set compute.{dtype}=...")
        cols[f"peak:{unit}:{dtype}"] = np.broadcast_to(np.asarray(fields[path], dtype=np.float64), (n,))
    return cols


def columns(specs: list[HardwareSpec], peaks: list[tuple], effs: list | tuple = ()) -> dict:
    """Engine columns for a list of devices: one row per device. `peaks` lists the (unit, dtype) rates needed."""
    per_spec = [columns_from(s, peaks, effs=effs) for s in specs]
    return {k: np.concatenate([c[k] for c in per_spec]) for k in per_spec[0]}
