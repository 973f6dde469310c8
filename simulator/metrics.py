"""The metrics layer: every figure derived from the engine's per-kernel costs, defined once.

Groupings (sums of kernel costs by stage, category, op, layer or attention role), throughput (images, videos or
tokens per second of a model run, and per watt), arithmetic intensity, attained FLOP/s, shares of time and the
ridge point of a device. Results, reports, plots, the paper report and sweeps all import these; none of them
recomputes a cost.

numpy is imported inside the functions that need it, so `list` and `describe` (which format tables through
report.py) start without it.
"""
from __future__ import annotations

from .ops import CATEGORIES

# ------------------------------------------------------------------------------------------------- groupings

GROUPINGS = ("layer", "category", "stage", "op")  # the groupings of `run --by` and Result.by_*()


def group_sum(keys, n: int, values, count):
    """Per group, the sum over kernels of `values` x runs: one design point. `keys[k]` is kernel k's group in
    [0, n), `count[k]` how often it runs; groups no kernel falls in sum to 0."""
    import numpy as np
    return np.bincount(keys, weights=values * count, minlength=n)


def group_matrix(keys, n: int, count):
    """[kernels, groups] matrix of run counts, so that `times @ matrix` sums the per-kernel times of many design
    points by group at once: the sweep's form of `group_sum`."""
    import numpy as np
    out = np.zeros((len(keys), n))
    out[np.arange(len(keys)), keys] = count
    return out


def category_shares(result) -> dict:
    """Share of a Result's end-to-end time spent in each operator category (conv, linear, attention, ...)."""
    cats = result.by_category()
    return {c: share(cats[c]["time_s"], result.time_s) for c in CATEGORIES}


def role_split(result) -> dict:
    """Attention time and FLOPs by role (spatial, temporal, cross, ...; 'self' where an op has none) over the
    whole pipeline of a Result."""
    out: dict = {}
    for row in result.by_op():
        if row["kind"] != "attention":
            continue
        agg = out.setdefault(row["role"] or "self", {"time_s": 0.0, "flops": 0.0})
        agg["time_s"] += row["time_s"]
        agg["flops"] += row["flops"]
    return out


def comm_seconds(time, table):
    """Seconds of a plan's collectives in one run: each collective row's time (its link time left exposed after
    any overlap with compute, plus the launch of its one communication kernel) times its runs, as the timeline
    and the `comm` category count it. `time`: the engine's per-kernel times, [kernels] or [points, kernels].
    The one definition of `comm_s` for `run` (totals), `compare` and `sweep`."""
    import numpy as np
    from .ops import UNITS
    rows = np.flatnonzero(table.unit == UNITS.index("comm"))
    return np.take(time, rows, axis=-1) @ table.count[rows]


# ----------------------------------------------------------------------------------------- rates and ratios

def share(part: float, total: float) -> float:
    """`part` as a fraction of `total`."""
    return part / total


def intensity(flops: float, bytes_: float) -> float:
    """Arithmetic intensity in FLOP per byte moved; 0 for work that moves no bytes."""
    return flops / bytes_ if bytes_ else 0.0


def attained(flops: float, time_s: float) -> float:
    """Attained throughput in FLOP/s; 0 for work that takes no time."""
    return flops / time_s if time_s else 0.0


def items(family: str, params: dict) -> tuple[str, int]:
    """What one run of a model delivers, and how many: ('tokens', batch x output_tokens) for an LLM,
    ('videos', batch) for text-to-video, ('images', batch) for text-to-image."""
    batch = params.get("batch", 1)
    if family == "llm":
        return "tokens", batch * params.get("output_tokens", 1)
    return ("videos" if family == "ttv" else "images"), batch


def items_per_second(family: str, params: dict, time_s):
    """Images, videos or tokens (see `items`) per second of a run taking `time_s` seconds (a number, or an
    array with one time per design point)."""
    return items(family, params)[1] / time_s


def per_joule(count, energy_j):
    """Images, videos or tokens per joule: one run's `count` of them over its energy (a number, or an array with
    one energy per design point)."""
    import numpy as np
    return count / np.asarray(energy_j, dtype=np.float64)


def energy_on_devices(dynamic_j, static_w, seconds, devices: int = 1, pipeline: int = 1):
    """Joules of one run on `devices` devices: every device draws static power for the whole `seconds`, and the
    kernel table's dynamic (FLOP and byte) energy, `dynamic_j`, is spent once per device that runs a share of it.

    A multi-device kernel table is one device's share under every degree but pipeline parallelism (tp, sp, ring,
    cfg and dp split or replicate its kernels on every device at once); under pp it holds every layer once, each
    layer on one of the `pipeline` devices in turn, so it stands for `pipeline` devices' work: devices / pipeline
    copies of its dynamic energy. Numbers or arrays (one per design point)."""
    return dynamic_j * (devices / pipeline) + static_w * seconds * devices


# --------------------------------------------------------------------------------------------------- devices

def peak_flops(spec, dtype: str = "bf16") -> float:
    """A device's matrix-unit peak FLOP/s for `dtype`: its own rate, else the rate of the type the device runs
    it as (`dtype_substitutes`), else the fastest matrix rate it has (the vector unit's without one)."""
    for d in (dtype, spec.dtype_substitutes.get(dtype)):
        if d in spec.compute:
            return spec.compute[d]
    return max(spec.compute.values() or spec.vector.values())


def ridge_point(spec, dtype: str = "bf16") -> float:
    """The roofline's ridge point in FLOP/B: peak FLOP/s for `dtype` over DRAM bandwidth. Work of lower
    arithmetic intensity is memory-bound on this device, higher is compute-bound."""
    return peak_flops(spec, dtype) / spec.memory.bandwidth
