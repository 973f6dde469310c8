"""The cost engine: a model's kernels (one row each) against hardware design points (one row each), with numpy.

Per kernel and design point:
    compute  = FLOPs x tile factor x wave factor / (peak of its unit and dtype x achievable fraction)
    memory   = bytes / (bandwidth x achievable fraction)
    overhead = launches x per-kernel launch overhead
    time     = max(compute, memory) + overhead,   bound = the largest of the three
The efficiency terms are separable (`Terms`) so reports can put the bare roofline beside the full model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Model
from .hardware import columns
from .ops import CATEGORIES, UNITS

BOUNDS = ("compute", "memory", "overhead")


@dataclass(frozen=True)
class Terms:
    """Which effects beyond the bare roofline are on."""
    tile: bool = True        # pad GEMM M/N/K to the core's tile
    wave: bool = True        # tiles run in whole waves over the cores
    achievable: bool = True  # best measured fraction of peak compute and bandwidth
    overhead: bool = True    # per-kernel launch overhead

    def describe(self) -> str:
        on = [name for name in ("tile", "wave", "achievable", "overhead") if getattr(self, name)]
        return "roofline only" if not on else "roofline + " + ", ".join(on)


ROOFLINE = Terms(False, False, False, False)
FULL = Terms()


@dataclass
class KernelTable:
    """One row per distinct kernel; `count` is how many times it runs in one inference."""
    ops: list          # (stage index, Op) for each op id
    op: np.ndarray     # op id of each kernel
    stage: np.ndarray
    category: np.ndarray
    unit: np.ndarray
    peak: np.ndarray   # column index into `peaks`
    peaks: list        # (unit, dtype) rate each peak index refers to
    flops: np.ndarray
    bytes: np.ndarray
    gemm: np.ndarray   # [K, 4]: batch, m, n, k (zeros off the matrix unit)
    launches: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.op)


def lower(model: Model) -> KernelTable:
    ops, rows = [], []
    peaks: dict = {}
    for si, stage in enumerate(model.stages):
        for op in stage.ops:
            oid = len(ops)
            ops.append((si, op))
            cat = CATEGORIES.index(op.category)
            if op.per_iteration:
                runs = [(res, op.count) for res in op.per_iteration]
            else:
                runs = [(op.result, op.count * stage.repeat)]
            for res, count in runs:
                for k in res.kernels:
                    unit = "vector" if k.unit == "none" else k.unit  # copies never use compute, peak is moot
                    p = peaks.setdefault((unit, op.dtype), len(peaks))
                    rows.append((oid, si, cat, UNITS.index(k.unit), p, k.flops, k.bytes, *k.gemm, k.launches, count))
    a = np.array(rows, dtype=np.float64).reshape(-1, 13)
    ints = a[:, :5].astype(np.int64)
    return KernelTable(ops, ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], ints[:, 4], list(peaks), a[:, 5],
                       a[:, 6], a[:, 7:11], a[:, 11], a[:, 12])


def compact(table: KernelTable) -> KernelTable:
    """Merge kernels that are identical in cost and grouping (stage, category), summing their counts.

    A UNet repeats the same layer shapes many times; a sweep evaluates each distinct kernel once. The op
    mapping is dropped (op = -1): per-op results need the full table.
    """
    features = np.column_stack([table.stage, table.category, table.unit, table.peak, table.flops, table.bytes,
                                table.gemm, table.launches])
    distinct, inverse = np.unique(features, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    count = np.bincount(inverse, weights=table.count, minlength=len(distinct))
    ints = distinct[:, :4].astype(np.int64)
    return KernelTable([], np.full(len(distinct), -1), ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], table.peaks,
                       distinct[:, 4], distinct[:, 5], distinct[:, 6:10], distinct[:, 10], count)


def _pad(x, tile):
    return np.ceil(x / tile) * tile


# Output tiles a GEMM library can choose from, as fractions of the core's largest tile (m, n): CUTLASS/cuBLAS
# ship e.g. 128x256, 128x128, 64x128 and 64x64 configurations and pick per problem to balance the waves.
TILE_CHOICES = ((1.0, 1.0), (0.5, 1.0), (1.0, 0.5), (0.5, 0.5))


def quantisation(gemm: np.ndarray, cols: dict, terms: Terms) -> np.ndarray:
    """Factor >= 1 by which tile padding and partial waves inflate a GEMM's FLOPs, per design point.

    A dimension smaller than the tile pads only to a multiple of the instruction shape (`min_tile`); among
    TILE_CHOICES the smallest factor wins, as a library's heuristic would choose it.
    """
    b, m, n, k = (np.maximum(gemm[:, i], 1.0) for i in range(4))
    cores = cols["cores"][:, None]
    small = {d: cols[f"min_tile_{d}"][:, None] for d in "mnk"}
    tk = np.minimum(cols["tile_k"][:, None], np.ceil(k / small["k"]) * small["k"])
    best = None
    for fm, fn in TILE_CHOICES:
        tm = np.maximum(small["m"], cols["tile_m"][:, None] * fm)
        tn = np.maximum(small["n"], cols["tile_n"][:, None] * fn)
        tm = np.minimum(tm, np.ceil(m / small["m"]) * small["m"])
        tn = np.minimum(tn, np.ceil(n / small["n"]) * small["n"])
        factor = np.ones(np.broadcast_shapes(tm.shape, m.shape))
        if terms.tile:
            factor = factor * _pad(m, tm) * _pad(n, tn) * _pad(k, tk) / (m * n * k)
        if terms.wave:
            tiles = b * np.ceil(m / tm) * np.ceil(n / tn)
            factor = factor * np.ceil(tiles / cores) * cores / tiles
        best = factor if best is None else np.minimum(best, factor)
    return best


TILE_COLUMNS = ("cores", "tile_m", "tile_n", "tile_k", "min_tile_m", "min_tile_n", "min_tile_k")


def work(table: KernelTable, cols: dict, terms: Terms) -> np.ndarray:
    """FLOPs each kernel costs on each design point after tile and wave quantisation: [1 or P, K].

    Quantisation depends only on the tile and core counts, which a sweep rarely varies: it is computed once per
    distinct (cores, tiles) combination, not once per design point.
    """
    flops = np.where(table.unit == UNITS.index("none"), 0.0, table.flops)[None, :]
    matrix = table.unit == UNITS.index("matrix")
    if not (terms.tile or terms.wave) or not matrix.any():
        return flops
    keys = np.stack([np.asarray(cols[c], dtype=np.float64) for c in TILE_COLUMNS], axis=1)
    if (keys == keys[0]).all():  # the usual case: tiles and cores are not varied
        distinct, inverse = keys[:1], np.zeros(len(keys), dtype=np.int64)
    else:
        distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    factor = quantisation(table.gemm[matrix], {c: distinct[:, i] for i, c in enumerate(TILE_COLUMNS)}, terms)
    out = np.repeat(flops, len(distinct), axis=0)
    out[:, matrix] *= factor
    return out if len(distinct) == 1 else out[inverse.ravel()]


def evaluate(table: KernelTable, cols: dict, terms: Terms = FULL, bound: bool = True) -> dict:
    """Times of every kernel on every design point: arrays of shape [points, kernels].

    Returns compute, memory and overhead times, their combination `time`, the largest part `mx` without the
    overhead, and (if `bound`) which of the three bounds each kernel (0 compute, 1 memory, 2 overhead).
    """
    peak_cols = np.stack([cols[f"peak:{u}:{d}"] for u, d in table.peaks], axis=1)  # [P, npeaks]
    if terms.achievable:
        unit_eff = [cols["eff_matrix"] if u == "matrix" else cols["eff_vector"] for u, _ in table.peaks]
        peak_cols = peak_cols * np.stack(unit_eff, axis=1)
    compute = work(table, cols, terms) * (1.0 / peak_cols)[:, table.peak]
    bandwidth = cols["bandwidth"] * (cols["eff_memory"] if terms.achievable else 1.0)
    memory = np.multiply.outer(1.0 / bandwidth, table.bytes)
    launch = cols["launch_overhead"] if terms.overhead else np.zeros_like(bandwidth)
    overhead = np.multiply.outer(launch, table.launches)
    mx = np.maximum(compute, memory)
    time = mx + overhead
    out = {"compute": compute, "memory": memory, "overhead": overhead, "time": time}
    if bound:
        b = (memory > compute).astype(np.int8)
        b[overhead > mx] = 2
        out["bound"] = b
    return out


def total_time(table: KernelTable, cols: dict, terms: Terms = FULL) -> np.ndarray:
    """End-to-end time of one inference per design point."""
    return evaluate(table, cols, terms)["time"] @ table.count


def hardware_columns(table: KernelTable, specs: list) -> dict:
    return columns(specs, table.peaks)
