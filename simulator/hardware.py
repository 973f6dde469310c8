"""Hardware descriptions: load (with `inherit`), override fields by path, and lay out as engine columns.

The engine sees a hardware *table*: one numpy column per field, one row per design point, so a single device
and a million hypothetical ones go through the same formulas.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dtypes import COMPUTE
from .errors import Location, SpecError, closest
from .library import resolve
from .loader import Node, load_yaml
from .schema import HardwareSpec, validate


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
            raise SpecError(f"--hw-set {path}: unknown hardware field{closest(path, allowed)}", Location(file))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"--hw-set {path}={value}: expected a number", Location(file))
        raw = set_path(raw, path, value)
    return raw


def load_hardware(name: str, overrides: dict | None = None) -> Hardware:
    raw, file = _raw(name)
    data = apply_overrides(raw, overrides or {}, file)
    if overrides:
        node = Node(data)
        node.file, node.line, node.key_lines = raw.file, raw.line, raw.key_lines
        data = node
    spec = validate(HardwareSpec, data, file)
    hw_id = Path(file).stem if not overrides else Path(file).stem + "*"
    return Hardware(hw_id, file, spec)


# ------------------------------------------------------------------------------------------- engine columns

def rate(spec: HardwareSpec, unit: str, dtype: str) -> float | None:
    """Peak FLOP/s of `unit` for `dtype`: the dtype's own rate, else a declared substitute's.

    Matrix-unit fp32 falls back to the vector unit (GPUs run true-fp32 GEMMs on CUDA cores); vector ops on a
    type the vector unit has no rate for run at its fp32 rate (they are upcast).
    """
    table = spec.compute if unit == "matrix" else spec.vector
    for d in (dtype, spec.dtype_substitutes.get(dtype)):
        if d is not None and d in table:
            return table[d]
    if unit == "vector" or dtype == "fp32":
        return spec.vector["fp32"]
    return None


def columns(specs: list[HardwareSpec], peaks: list[tuple]) -> dict:
    """Engine columns for a list of devices: one row per device. `peaks` lists the (unit, dtype) rates needed."""
    def col(get):
        return np.array([get(s) for s in specs], dtype=np.float64)

    cols = {
        "bandwidth": col(lambda s: s.memory.bandwidth),
        "capacity": col(lambda s: s.memory.capacity),
        "cores": col(lambda s: s.cores),
        "tile_m": col(lambda s: s.matrix_tile.m),
        "tile_n": col(lambda s: s.matrix_tile.n),
        "tile_k": col(lambda s: s.matrix_tile.k),
        "min_tile_m": col(lambda s: (s.min_tile or s.matrix_tile).m),
        "min_tile_n": col(lambda s: (s.min_tile or s.matrix_tile).n),
        "min_tile_k": col(lambda s: (s.min_tile or s.matrix_tile).k),
        "eff_matrix": col(lambda s: s.efficiency.matrix),
        "eff_vector": col(lambda s: s.efficiency.vector),
        "eff_memory": col(lambda s: s.efficiency.memory),
        "launch_overhead": col(lambda s: s.efficiency.launch_overhead_s),
    }
    for unit, dtype in peaks:
        values = []
        for s in specs:
            r = rate(s, unit, dtype)
            if r is None:
                have = ", ".join(sorted(s.compute)) or "none"
                raise SpecError(f"hardware '{s.name}' has no matrix-unit rate for {dtype} (has: {have}); "
                                f"run with --set dtype=... or give one with --hw-set compute.{dtype}=...")
            values.append(r)
        cols[f"peak:{unit}:{dtype}"] = np.array(values, dtype=np.float64)
    return cols
