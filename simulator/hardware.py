"""Hardware descriptions: load (with `inherit`), override fields by path, and lay out as engine columns.

The engine sees a hardware *table*: one numpy column per field, one row per design point, so a single device
and a million hypothetical ones go through the same formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dtypes import RATED
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


def _inherited(parent: str, path) -> str:
    """What `inherit: parent` in the file at `path` names: a built-in id, or a file beside that one."""
    return parent if not parent.endswith((".yaml", ".yml")) else str(Path(path).parent / parent)


def _raw(name: str, chain: tuple = ()) -> tuple[Node, str]:
    path = resolve("hardware", name)
    node = load_yaml(path)
    if "inherit" in node:
        parent = node["inherit"]
        if not isinstance(parent, str):
            raise SpecError("'inherit' names a hardware id or file", node.loc("inherit", "inherit"))
        target = _inherited(parent, path)
        if target in chain:
            raise SpecError(f"'inherit' loops back to '{parent}'", node.loc("inherit", "inherit"))
        try:
            base, _ = _raw(target, chain + (target,))
        except SpecError as exc:
            if exc.location.file:
                raise
            raise SpecError(exc.message, node.loc("inherit", "inherit")) from None
        merged = _merge(base, {k: v for k, v in node.items() if k != "inherit"})
        if isinstance(merged.get("per_core"), dict):
            # a bottom-up parent's peaks follow the child's cores, clock and per-core rates (re-derived, not
            # inherited); a peak the child states itself replaces the parent's per-core rate for that dtype
            own = node.get("per_core") if isinstance(node.get("per_core"), dict) else {}
            for unit, table in (("matrix", "compute"), ("vector", "vector")):
                per = merged["per_core"].get(unit) if isinstance(merged["per_core"].get(unit), dict) else {}
                stated = node.get(table) if isinstance(node.get(table), dict) else {}
                mine = own.get(unit) if isinstance(own.get(unit), dict) else {}
                if per and stated:
                    merged["per_core"] = {**merged["per_core"],
                                          unit: {d: v for d, v in per.items() if d in mine or d not in stated}}
                elif {"cores", "clock", "clock_hz", "per_core"} & set(node) and isinstance(merged.get(table), dict):
                    merged[table] = {d: v for d, v in merged[table].items() if d not in per}
        result = Node(merged)
        result.file, result.line, result.key_lines = node.file, node.line, {**base.key_lines, **node.key_lines}
        return result, str(path)
    return node, str(path)


def base_device(name: str) -> str:
    """The built-in device a hardware id or file describes: the id itself, or the end of a file's `inherit`
    chain (a fitted YAML inherits the device it was fitted for), else the file's own name."""
    if not name.endswith((".yaml", ".yml")):
        return name
    path = resolve("hardware", name)
    parent = load_yaml(path).get("inherit")
    if isinstance(parent, str):
        return base_device(_inherited(parent, path))
    return Path(path).stem


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
    paths |= {f"compute.{d}" for d in RATED} | {f"vector.{d}" for d in RATED}
    # optional numeric efficiency terms a file may leave out (absent means the term costs nothing or falls back),
    # read from the schema so a new field is settable without a second list
    paths |= {f"efficiency.{name}" for name, f in Efficiency.model_fields.items()
              if not f.is_required() and "dict" not in str(f.annotation)}
    paths.add("clock.sustained_hz")
    paths.add("per_core.special_function")
    paths.add("per_core.conv_staging")
    if isinstance(raw.get("interconnect"), dict):
        paths |= {"interconnect.efficiency", "interconnect.all_reduce_efficiency"}
    # the share of softmax exponentials each fused-attention back-end of the device hides (absent: 0)
    eff = raw.get("efficiency") if isinstance(raw.get("efficiency"), dict) else {}
    paths |= {f"efficiency.softmax_overlap.{b}" for b in attention_backends(eff.get("attention_backends"),
                                                                             eff.get("attention"))}
    return paths


def attention_backends(listed: dict | None, attention: float | None) -> dict:
    """The fused-attention back-ends a device runs, each with its fraction of the matrix peak, from its
    `efficiency.attention_backends` (`listed`) and `efficiency.attention`: those it lists, else `flash` at
    `efficiency.attention` where it gives that."""
    out = dict(listed) if isinstance(listed, dict) else {}
    if not out and attention is not None:
        out = {"flash": attention}
    return out


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


# A datasheet rounds its peaks to a few significant figures and its clocks to 5-10 MHz (H100 SXM: 132 x 4096 x
# 1.83e9 = 989.4e12 against "989 TFLOPS"; A100: 108 x 2048 x 1.41e9 = 311.9e12 against "312"; B200 TF32:
# 148 x 4096 x 1.856e9 = 1.125e15 against "1.1 PFLOPS"): a bottom-up product within 1 % of a stated peak, or
# within half a unit of its last significant figure, is the same figure; beyond both the file contradicts itself.
PEAK_ROUNDING = 0.01


def peak_tolerance(stated: float) -> float:
    """How far a bottom-up product may sit from a stated peak: 1 %, or the rounding of its last figure."""
    mantissa, _, exponent = np.format_float_scientific(stated, unique=True, trim="-").partition("e")
    digits = len(mantissa.replace(".", "").lstrip("-"))
    return max(PEAK_ROUNDING * stated, 0.5 * 10.0 ** (int(exponent) - digits + 1))


def bottom_up(spec: HardwareSpec, node: Node, file: str) -> HardwareSpec:
    """The file's peaks with the bottom-up ones filled in: cores x clock.peak_hz x per-core FLOP per clock.
    A per-core rate whose product disagrees with a peak the file also states, beyond rounding, is an error."""
    if spec.per_core is None:
        return spec
    tables = {"matrix": dict(spec.compute), "vector": dict(spec.vector)}
    for unit, stated_name in (("matrix", "compute"), ("vector", "vector")):
        for dtype, per in getattr(spec.per_core, unit).items():
            product = spec.cores * spec.peak_clock_hz * per
            stated = tables[unit].get(dtype)
            if stated is not None and abs(product - stated) > peak_tolerance(stated):
                at = node.get("per_core", {}).get(unit) if isinstance(node.get("per_core"), dict) else None
                loc = at.loc(dtype, f"per_core.{unit}.{dtype}") if isinstance(at, Node) else \
                    node.loc("per_core", f"per_core.{unit}.{dtype}")
                raise SpecError(f"cores x clock.peak_hz x per_core.{unit}.{dtype} = {product:.4g} FLOP/s, but "
                                f"{stated_name}.{dtype} says {stated:.4g} ({(product / stated - 1) * 100:+.1f} %, "
                                f"beyond the datasheet's rounding)", loc)
            tables[unit].setdefault(dtype, product)
    return spec.model_copy(update={"compute": tables["matrix"], "vector": tables["vector"]})


def load_hardware(name: str, overrides: dict | None = None) -> Hardware:
    raw, file = _raw(name)
    own = energy_figures(bottom_up(validate(HardwareSpec, raw, file), raw, file))
    if not overrides:
        return Hardware(Path(file).stem, file, own)
    data = apply_overrides(raw, overrides, file)
    node = Node(data)
    node.file, node.line, node.key_lines = raw.file, raw.line, raw.key_lines
    try:
        spec = validate(HardwareSpec, node, file)
    except SpecError as exc:  # a value the user set is refused at the option that set it
        path = exc.location.path
        if path in overrides:
            raise SpecError(f"--hw-set {path}={overrides[path]}: {exc.message}") from None
        raise
    # cores and the clock scale every peak: a rate set with --hw-set is the peak at the file's own cores and
    # clock, a per-core rate set is multiplied out at the new ones
    scale = (spec.cores / own.cores) * (spec.peak_clock_hz / own.peak_clock_hz)
    tables = {"matrix": dict(spec.compute), "vector": dict(spec.vector)}
    for unit, table in (("matrix", "compute"), ("vector", "vector")):
        stated = own.compute if unit == "matrix" else own.vector
        for dtype in set(tables[unit]) | set(stated) | {p.rpartition(".")[2] for p in overrides
                                                         if p.startswith(f"per_core.{unit}.")}:
            if f"per_core.{unit}.{dtype}" in overrides:
                tables[unit][dtype] = spec.cores * spec.peak_clock_hz * overrides[f"per_core.{unit}.{dtype}"]
            elif f"{table}.{dtype}" in overrides:
                tables[unit][dtype] = overrides[f"{table}.{dtype}"] * scale
            else:
                tables[unit][dtype] = stated[dtype] * scale
    power = spec.power
    if power is not None and own.power is not None:  # the file's derived figures, under any set with --hw-set
        power = power.model_copy(update={n: {**getattr(own.power, n), **getattr(power, n)}
                                         for n in ("matrix_pj_per_flop", "vector_pj_per_flop")})
    spec = spec.model_copy(update={"compute": tables["matrix"], "vector": tables["vector"], "power": power})
    spec._reference.update({k: own.reference(k) for k in ("cores", "peak_hz", "sram", "l2_bytes", "l2_bandwidth", "tdp")})
    return Hardware(Path(file).stem + "*", file, spec)


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
    "kernel_fixed": ("efficiency.kernel_fixed_s", None),
    "k0_matrix": ("efficiency.gemm_k_overhead", None),
    "k0_attention": ("efficiency.attention_k_overhead", None),
    "peak_clock": ("clock.peak_hz", "clock_hz"),
    "sustained_clock": ("clock.sustained_hz", "clock.peak_hz", "clock_hz"),
    "attn_q": ("attention_tile.q", "matrix_tile.m"), "attn_k": ("attention_tile.k", "matrix_tile.n"),
    "attn_d": ("attention_tile.head_dim_multiple", "matrix_tile.k"),
    # collectives of multi-device plans (collectives.py); absent links are refused by parallel.check_links before
    # any collective is costed
    "link_bandwidth": ("interconnect.bandwidth", None), "link_latency": ("interconnect.latency_s", None),
    "devices_per_node": ("interconnect.devices_per_node", None),
    "network_bandwidth": ("network.bandwidth", None), "network_latency": ("network.latency_s", None),
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


def attention_class_backend(klass: str) -> str | None:
    """The back-end of a fused-attention efficiency class (`attention:<back-end>`); None for any other class."""
    return klass.split(":", 1)[1] if klass.startswith("attention:") else None


def is_conv_class(klass: str) -> bool:
    """Whether an efficiency class is a convolution's (`conv:<dtype>`): these also pay per_core.conv_staging."""
    return klass.startswith("conv:")


def efficiency_fields(klass: str) -> tuple:
    """The hardware fields giving an efficiency class's achievable fraction, first present wins."""
    backend = attention_class_backend(klass)
    if backend is not None:
        return (f"efficiency.attention_backends.{backend}", "efficiency.attention", "efficiency.matrix")
    kind, _, dtype = klass.partition(":")
    if kind == "matrix":  # GEMMs: the dtype's own measured fraction where the file has one (fp8 GEMMs reach less)
        return (f"efficiency.matrix_by_dtype.{dtype}", "efficiency.matrix")
    if kind == "conv":
        return ("efficiency.conv", f"efficiency.matrix_by_dtype.{dtype}", "efficiency.matrix")
    # dequant: a weight-only GEMM's dequantisation (vector work inside the GEMM, quantisation.py), its own class so
    # that reports can tell its FLOPs from the model's; costed as any vector work
    return {"vector": ("efficiency.vector",), "reduction": ("efficiency.vector",), "dequant": ("efficiency.vector",),
            "none": (None,)}[klass]


def efficiency_chain(klass: str, fields) -> tuple:
    """`efficiency_fields(klass)` up to the first that `fields` gives (or None): the last is the one read; a value
    set or varied for one before it would take its place."""
    chain = efficiency_fields(klass)
    return chain[:next(i for i, p in enumerate(chain) if p is None or p in fields) + 1]


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
    # the fraction of the link's line rate a collective's data moves at (engine.communication, with `achievable`);
    # all-reduce has its own where the switches reduce in the network
    link = fields.get("interconnect.efficiency", 1.0)
    cols["link_efficiency"] = np.broadcast_to(np.asarray(link, dtype=np.float64), (n,))
    cols["link_all_reduce_efficiency"] = np.broadcast_to(np.asarray(
        fields.get("interconnect.all_reduce_efficiency", link), dtype=np.float64), (n,))
    # the special-function units' exponentials per second (0: the file gives none, and no term reads them)
    cols["exp_rate"] = np.broadcast_to(np.asarray(fields.get("per_core.special_function", 0.0), dtype=np.float64)
                                       * cols["cores"] * cols["peak_clock"], (n,))
    # seconds per implicit-GEMM convolution FLOP of operand staging at the peak clock (0: the file gives none)
    staging = np.asarray(fields.get("per_core.conv_staging", np.inf), dtype=np.float64) * cols["cores"] \
        * cols["peak_clock"]
    cols["conv_staging_s"] = np.broadcast_to(1.0 / staging, (n,))
    # a varied peak clock above the file's sustained one does not lift the sustained clock (it is power-bound)
    cols["clock_ratio"] = np.minimum(cols["sustained_clock"] / cols["peak_clock"], 1.0)
    # SRAM, L2 and power: the design point's values beside the file's own (the terms act relative to them)
    for col, path, ref in (("sram", "on_chip.sram_per_core_bytes", "sram"),
                           ("l2_bytes", "on_chip.l2_bytes", "l2_bytes"),
                           ("l2_bw", "on_chip.l2_bandwidth", "l2_bandwidth")):
        own = spec.reference(ref)
        cols[col] = np.broadcast_to(np.asarray(fields.get(path, np.nan if own is None else own), dtype=np.float64),
                                    (n,))
        cols[col + "0"] = np.full(n, np.nan if own is None else own)
    for col, path in (("static_w", "power.static_w"), ("dram_pj", "power.dram_pj_per_byte"),
                      ("l2_pj", "power.l2_pj_per_byte"), ("tdp", "tdp_w")):
        cols[col] = np.broadcast_to(np.asarray(fields.get(path, np.nan), dtype=np.float64), (n,))
    own_tdp = spec.reference("tdp")
    cols["tdp0"] = np.full(n, np.nan if own_tdp is None else own_tdp)
    for klass in effs:
        backend = attention_class_backend(klass)
        if backend is not None:  # the share of its softmax exponentials a fused-attention back-end hides
            hide = fields.get(f"efficiency.softmax_overlap.{backend}", 0.0)
            cols[f"hide:{klass}"] = np.broadcast_to(np.asarray(hide, dtype=np.float64), (n,))
        path = efficiency_chain(klass, fields)[-1]
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
        cols[f"peak:{unit}:{dtype}"] = _scaled_peak(spec, fields, varied, path, n)
        table = "matrix" if path.startswith("compute.") else "vector"  # the unit the rate comes from
        pj = energy_field(fields, spec.dtype_substitutes, table, path.partition(".")[2])
        value = fields[pj] if pj else np.nan
        cols[f"pj:{unit}:{dtype}"] = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))
    return cols


def _scaled_peak(spec: HardwareSpec, fields: dict, varied: dict, path: str, n: int) -> np.ndarray:
    """A peak at each design point: cores x clock.peak_hz x FLOP per clock per core. A varied per-core rate
    multiplies out; a rate from the file (or varied) is the peak at the spec's own cores and clock, scaled."""
    table, _, dtype = path.partition(".")
    per = f"per_core.{'matrix' if table == 'compute' else 'vector'}.{dtype}"
    cores, clock = fields["cores"], fields.get("clock.peak_hz", fields.get("clock_hz"))
    if per in varied:
        value = np.asarray(varied[per]) * cores * clock
    else:
        value = np.asarray(fields[path]) * (np.asarray(cores) / spec.cores) * (np.asarray(clock) / spec.peak_clock_hz)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))


def energy_field(fields, substitutes: dict, unit: str, dtype: str) -> str | None:
    """The energy-per-FLOP field for `unit` and `dtype` (the rate's unit: `rate_field`), or None where the file
    has no power model: the dtype's own figure, else its substitute's, else the vector unit's fp32 figure (a
    true-fp32 GEMM runs on the vector unit; vector ops on a type without a rate run upcast)."""
    table = "power.matrix_pj_per_flop" if unit == "matrix" else "power.vector_pj_per_flop"
    for d in (dtype, substitutes.get(dtype)):
        if d is not None and f"{table}.{d}" in fields:
            return f"{table}.{d}"
    return "power.vector_pj_per_flop.fp32" if "power.vector_pj_per_flop.fp32" in fields else None


def energy_figures(spec: HardwareSpec) -> HardwareSpec:
    """The spec with an energy per FLOP for every dtype it has a rate for. A dtype without its own figure takes
    a listed one's scaled by the ratio of their peaks: the datasheet quotes every peak at the same board power
    (fp8 at twice bf16's rate costs half the energy per FLOP). Derived once from the file's own peaks, so a
    varied or overridden peak is more FLOP/s at the same energy per FLOP."""
    power = spec.power
    if power is None:
        return spec
    update = {}
    for name, rates in (("matrix_pj_per_flop", spec.compute), ("vector_pj_per_flop", spec.vector)):
        listed = getattr(power, name)
        ref = next((d for d in listed if d in rates), None)
        if ref is not None:
            update[name] = {**{d: listed[ref] * rates[ref] / r for d, r in rates.items()}, **listed}
    return spec.model_copy(update={"power": power.model_copy(update=update)}) if update else spec


def columns(specs: list[HardwareSpec], peaks: list[tuple], effs: list | tuple = ()) -> dict:
    """Engine columns for a list of devices: one row per device. `peaks` lists the (unit, dtype) rates needed."""
    per_spec = [columns_from(s, peaks, effs=effs) for s in specs]
    return {k: np.concatenate([c[k] for c in per_spec]) for k in per_spec[0]}
