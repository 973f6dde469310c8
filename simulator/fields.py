"""Which hardware fields which cost term reads: the one registry.

A number the user can change must change something or be refused with a message. Every numeric field of a
hardware file is listed here with the term that reads it; `unread` names the fields of a file that no term can
read (a field whose companion is missing: an L2 size without an L2 bandwidth, energy figures without a TDP), and
`ignored` the fields a user set or varied that this run does not read (a rate for a dtype the model never
computes in, an efficiency class it never uses). `run`, `compare` and `sweep` warn about both.
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache

from .hardware import (COLUMN_FIELDS, attention_backends, attention_class_backend, efficiency_chain, energy_field,
                       field_paths, is_conv_class, memory_efficiency_fields, rate_field)

# field pattern -> the cost term that reads it (fnmatch patterns: `*` is one dtype or name)
READERS = {
    "compute.*": "peak of the matrix unit (per dtype)",
    "vector.*": "peak of the vector unit (per dtype)",
    "per_core.matrix.*": "peak of the matrix unit: cores x clock.peak_hz x FLOP per clock per core",
    "per_core.vector.*": "peak of the vector unit: cores x clock.peak_hz x FLOP per clock per core",
    "per_core.special_function": "attention (fused attention's softmax exponentials, cores x clock x per core)",
    "per_core.conv_staging": "achievable (convolutions' operand staging on the SM, cores x clock x per core)",
    "cores": "peak (x clock x per-core rate) and wave quantisation",
    "clock.peak_hz": "peak (x cores x per-core rate)",
    "clock_hz": "peak (x cores x per-core rate)",
    "clock.sustained_hz": "achievable (the clock kept under a full load)",
    "memory.bandwidth": "memory (DRAM time)",
    "memory.capacity": "fits (peak memory against capacity)",
    "on_chip.sram_per_core_bytes": "tile (GEMM tiles and fused-attention blocks that fit)",
    "on_chip.l2_bytes": "cache (re-reads still resident in L2)",
    "on_chip.l2_bandwidth": "cache (re-reads still resident in L2)",
    "matrix_tile.*": "tile and wave quantisation of GEMMs",
    "min_tile.*": "tile quantisation of skinny GEMMs",
    "attention_tile.*": "attention (fused-attention blocks)",
    "efficiency.matrix": "achievable (GEMM fraction of peak)",
    "efficiency.matrix_by_dtype.*": "achievable (GEMM fraction of peak for one dtype)",
    "efficiency.conv": "achievable (convolution fraction of peak)",
    "efficiency.vector": "achievable (vector fraction of peak)",
    "efficiency.memory": "achievable (fraction of DRAM bandwidth)",
    "efficiency.reduction_memory": "achievable (row reductions' fraction of DRAM bandwidth)",
    "efficiency.attention": "achievable (fused attention's fraction of peak)",
    "efficiency.attention_backends.*": "achievable (one attention back-end's fraction of peak)",
    "efficiency.softmax_overlap.*": "attention (one back-end's softmax exponentials hidden behind its MMAs)",
    "efficiency.gemm_k_overhead": "achievable (GEMM per-tile fixed cost)",
    "efficiency.attention_k_overhead": "achievable (fused attention per-block fixed cost)",
    "efficiency.launch_overhead_s": "overhead (gap between kernels from a stream)",
    "efficiency.graph_launch_overhead_s": "overhead (gap between kernels from a graph)",
    "efficiency.kernel_fixed_s": "overhead (every kernel's ramp-up and drain, however launched)",
    "efficiency.memory_latency_s": "latency (one DRAM round trip per kernel)",
    "tdp_w": "power (the cap a kernel's power must fit)",
    "power.static_w": "power and energy (static watts)",
    "power.matrix_pj_per_flop.*": "power and energy (matrix-unit FLOPs)",
    "power.vector_pj_per_flop.*": "power and energy (vector-unit FLOPs)",
    "power.dram_pj_per_byte": "power and energy (DRAM bytes)",
    "power.l2_pj_per_byte": "energy (re-reads served by L2)",
    "host_link.bandwidth": "offload (weights copied over the host link, --set offload=model|sequential)",
    "host_link.efficiency": "offload (achievable fraction of the host link)",
    "host.flops": "host CPU (stages run on the CPU, --set text_encoder_device=cpu)",
    "host.bandwidth": "host CPU (stages run on the CPU, --set text_encoder_device=cpu)",
}

# Read by the scale-out work (parallel plans over several devices), not by a single device's terms: listed as
# pending, warned about when a user varies or sets them in a single-device run.
PENDING = ("interconnect_bandwidth", "interconnect.*", "network.*")


@lru_cache(maxsize=None)
def term_of(path: str) -> str | None:
    """The cost term that reads a hardware field, 'pending' for the scale-out fields, None if none does."""
    if any(fnmatchcase(path, p) for p in PENDING):
        return "pending"
    return next((term for pattern, term in READERS.items() if fnmatchcase(path, pattern)), None)


def unread(spec) -> list[str]:
    """The numeric fields of a device that no term can read, each with why: a field the registry does not know,
    or one whose companion is missing."""
    fields = field_paths(spec.model_dump())
    backends = set(attention_backends(spec.efficiency.attention_backends, spec.efficiency.attention))
    out = []
    for path in sorted(fields):
        term = term_of(path)
        if term is None:
            out.append(f"{path}: no cost term reads this field")
        elif path in ("on_chip.l2_bytes", "power.l2_pj_per_byte") and "on_chip.l2_bandwidth" not in fields \
                and fields.get("on_chip.l2_bytes"):  # an L2 of 0 bytes holds nothing: no bandwidth to read
            out.append(f"{path}: read only with on_chip.l2_bandwidth, which the file does not give")
        elif path == "tdp_w" and "power.static_w" not in fields:
            out.append(f"{path}: read only with a power model (power: static_w, pJ per FLOP and per byte)")
        elif path.startswith("efficiency.softmax_overlap.") and "per_core.special_function" not in fields:
            out.append(f"{path}: read only with per_core.special_function (the exponentials it hides)")
        elif path.startswith("efficiency.softmax_overlap.") and path.rpartition(".")[2] not in backends:
            out.append(f"{path}: the device runs no fused-attention back-end of that name "
                       f"(it runs: {', '.join(sorted(backends)) or 'none'})")
    return out


def used(spec, peaks, effs) -> set:
    """The hardware fields a kernel table with these (unit, dtype) rates and efficiency classes reads."""
    fields = field_paths(spec.model_dump())
    # an optional term the file leaves out (its column falls back to 0) is still read once a value is given
    out = {next((p for p in paths if p in fields), paths[0]) for paths in COLUMN_FIELDS.values()} - {None}
    if "clock.peak_hz" in fields:
        out.add("clock.peak_hz")
    out |= {"on_chip.sram_per_core_bytes", "cores"}
    backends = [b for b in map(attention_class_backend, effs) if b is not None]  # fused attention's classes
    if backends and "per_core.special_function" in fields:
        out.add("per_core.special_function")
        out |= {f"efficiency.softmax_overlap.{b}" for b in backends}
    for unit, dtype in peaks:
        u = "matrix" if unit == "attention" else unit
        path = rate_field(fields, spec.dtype_substitutes, u, dtype)
        if path:
            out.add(path)
            table, _, d = path.partition(".")
            unit_of_rate = "matrix" if table == "compute" else "vector"
            out.add(f"per_core.{unit_of_rate}.{d}")
            pj = energy_field(fields, spec.dtype_substitutes, unit_of_rate, d)
            if pj and "power.static_w" in fields:
                out.add(pj)
    if any(is_conv_class(k) for k in effs):  # read once a value is given, as the optional terms above
        out.add("per_core.conv_staging")
    for klass in effs:
        out |= set(efficiency_chain(klass, fields)) - {None}
        out.add(next(p for p in memory_efficiency_fields(klass) if p in fields))
    if "on_chip.l2_bandwidth" in fields:
        out |= {"on_chip.l2_bytes", "on_chip.l2_bandwidth", "power.l2_pj_per_byte"}
    if "power.static_w" in fields:
        out |= {"power.static_w", "power.dram_pj_per_byte", "tdp_w"}
    return out


def ignored(spec, peaks, effs, paths, option: str) -> list[str]:
    """Warnings for the fields in `paths` (set with --hw-set or varied with --vary) that this run does not read."""
    if not paths:
        return []
    reads = used(spec, peaks, effs)
    dtypes = ", ".join(sorted({d for _, d in peaks}))
    out = []
    for path in paths:
        term = term_of(path)
        if term == "pending":
            out.append(f"{option} {path} does not change any time in a single-device run: the interconnect is read by "
                       f"multi-device (scale-out) plans only")
        elif path in reads:
            continue
        elif path == "per_core.conv_staging":
            out.append(f"{option} {path} does not change any time: this model has no convolution")
        elif path == "per_core.special_function":
            out.append(f"{option} {path} does not change any time: this model runs no fused attention")
        elif path.startswith(("compute.", "vector.", "per_core.", "power.matrix_pj", "power.vector_pj")):
            out.append(f"{option} {path} does not change any time: the model computes in {dtypes} "
                       f"(vary that rate, or --set dtype=...)")
        elif path.startswith("efficiency."):
            out.append(f"{option} {path} does not change any time: no kernel of this model is costed with it")
        else:
            why = f"read by {term}" if term else "no cost term reads it"
            out.append(f"{option} {path} does not change any time here ({why}; see hardware/README.md)")
    return out
