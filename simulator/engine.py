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


def _pad(x, tile):
    return np.ceil(x / tile) * tile


def evaluate(table: KernelTable, cols: dict, terms: Terms = FULL) -> dict:
    """Times of every kernel on every design point: arrays of shape [points, kernels]."""
    matrix = table.unit == UNITS.index("matrix")
    compute_unit = table.unit != UNITS.index("none")
    peak_cols = np.stack([cols[f"peak:{u}:{d}"] for u, d in table.peaks], axis=1)  # [P, npeaks]
    peak = peak_cols[:, table.peak]
    flops = np.broadcast_to(table.flops, peak.shape)
    if terms.achievable:
        peak = peak * np.where(matrix, cols["eff_matrix"][:, None], cols["eff_vector"][:, None])
    work = flops
    if (terms.tile or terms.wave) and matrix.any():
        b, m, n, k = (np.maximum(table.gemm[:, i], 1.0) for i in range(4))
        # A dimension smaller than the core's tile runs on the smallest tile (a multiple of the instruction
        # shape, `min_tile`) that covers it, as GEMM libraries pick narrow tiles for skinny problems.
        tiles = {}
        for dim, x in zip("mnk", (m, n, k)):
            big, small = cols[f"tile_{dim}"][:, None], cols[f"min_tile_{dim}"][:, None]
            tiles[dim] = np.minimum(big, np.ceil(x / small) * small)
        factor = np.ones(peak.shape)
        if terms.tile:
            padded = (_pad(m, tiles["m"]) * _pad(n, tiles["n"]) * _pad(k, tiles["k"])) / (m * n * k)
            factor = factor * np.where(matrix, padded, 1.0)
        if terms.wave:
            count = b * np.ceil(m / tiles["m"]) * np.ceil(n / tiles["n"])
            cores = cols["cores"][:, None]
            factor = factor * np.where(matrix, np.ceil(count / cores) * cores / count, 1.0)
        work = flops * factor
    compute = np.where(compute_unit, work / peak, 0.0)
    bandwidth = cols["bandwidth"][:, None] * (cols["eff_memory"][:, None] if terms.achievable else 1.0)
    memory = table.bytes / bandwidth
    overhead = (table.launches * cols["launch_overhead"][:, None] if terms.overhead
                else np.zeros_like(memory))
    time = np.maximum(compute, memory) + overhead
    bound = np.argmax(np.stack([compute, memory, overhead]), axis=0)
    return {"compute": compute, "memory": memory, "overhead": overhead, "time": time, "bound": bound}


def total_time(table: KernelTable, cols: dict, terms: Terms = FULL) -> np.ndarray:
    """End-to-end time of one inference per design point."""
    return evaluate(table, cols, terms)["time"] @ table.count


def hardware_columns(table: KernelTable, specs: list) -> dict:
    return columns(specs, table.peaks)
