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

from .dtypes import BYTES
from .errors import SpecError, unknown
from .graph import Model
from .hardware import columns
from .ops import CATEGORIES, UNITS, numel

BOUNDS = ("compute", "memory", "overhead")


@dataclass(frozen=True)
class Terms:
    """Which effects beyond the bare roofline are on."""
    tile: bool = True        # pad GEMM M/N/K to the core's tile
    wave: bool = True        # tiles run in whole waves over the cores
    achievable: bool = True  # best measured fraction of peak compute and bandwidth
    overhead: bool = True    # per-kernel launch overhead
    attention: bool = True   # fused attention's query/key blocks and padded head dim (else a plain GEMM)
    latency: bool = True     # each kernel waits one DRAM round trip before data streams

    NAMES = ("tile", "wave", "achievable", "overhead", "attention", "latency")

    def describe(self) -> str:
        on = [name for name in self.NAMES if getattr(self, name)]
        return "roofline only" if not on else "roofline + " + ", ".join(on)

    @classmethod
    def without(cls, names) -> "Terms":
        return cls(**{n: n not in names for n in cls.NAMES})


ROOFLINE = Terms(False, False, False, False, False, False)
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

    @classmethod
    def from_rows(cls, ops: list, rows: list, peaks: dict) -> "KernelTable":
        """Rows of (op, stage, category, unit, peak, flops, bytes, batch, m, n, k, launches, count)."""
        a = np.array(rows, dtype=np.float64).reshape(-1, 13)
        ints = a[:, :5].astype(np.int64)
        return cls(ops, ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], ints[:, 4], list(peaks), a[:, 5], a[:, 6],
                   a[:, 7:11], a[:, 11], a[:, 12])


FUSIONS = ("none", "elementwise")


def _fusions(stage) -> tuple[dict, dict]:
    """Ops that fold into the kernel producing their first input, as torch.compile or TensorRT fuse them, when
    that kernel's output is read by nothing else: elementwise ops into any producer (GEMM/conv epilogues,
    activation chains), and single-pass norms (layer/RMS norm) into an elementwise producer (the fused
    residual-add + norm kernels of TensorRT and Inductor). Returns the bytes each fused op no longer reads and
    each producer no longer writes (the intermediate tensor never reaches memory)."""
    readers, producer = {}, {}
    for op in stage.ops:
        if not op.result.kernels:
            continue
        for t in op.inputs:
            readers.setdefault(stage.tensors[t].storage, set()).add(op.index)
        for t in op.outputs:
            if stage.tensors[t].storage == t and not op.per_iteration:
                producer[t] = op.index
    saved_read, saved_write = {}, {}
    for op in stage.ops:
        if not op.result.kernels or not op.inputs or op.per_iteration:
            continue
        tensor = stage.tensors[op.inputs[0]]
        p = producer.get(tensor.storage)
        if p is None or readers.get(tensor.storage) != {op.index}:
            continue
        single_pass_norm = op.category == "norm" and len(op.result.kernels) == 1
        if not (op.category == "elementwise"
                or (single_pass_norm and stage.ops[p].category == "elementwise")):
            continue
        nbytes = numel(stage.tensors[tensor.storage].shape) * BYTES[stage.tensors[tensor.storage].dtype]
        uses = sum(stage.tensors[t].storage == tensor.storage for t in op.inputs)  # e.g. x * x reads it twice
        saved_read[op.index] = uses * nbytes
        saved_write[p] = saved_write.get(p, 0) + nbytes
    return saved_read, saved_write


def kernel_unit(k, dtype: str, peaks: dict) -> tuple[int, int]:
    """A kernel's unit code in the table and its peak-rate column (added to `peaks` on first use).

    Fused attention is its own unit (it has its own achievable fraction of the matrix peak); copies never
    compute, so the vector rate they are filed under is moot."""
    unit = "attention" if k.fused_attention else k.unit
    return UNITS.index(unit), peaks.setdefault(("vector" if unit == "none" else unit, dtype), len(peaks))


def lower(model: Model, fusion: str = "none") -> KernelTable:
    """The model's kernels as table rows. `fusion="elementwise"` folds elementwise ops into their producers."""
    if fusion not in FUSIONS:
        raise SpecError(f"--fusion: {unknown('fusion mode', fusion, FUSIONS)}")
    ops, rows = [], []
    peaks: dict = {}
    for si, stage in enumerate(model.stages):
        saved_read, saved_write = _fusions(stage) if fusion == "elementwise" else ({}, {})
        for op in stage.ops:
            oid = len(ops)
            ops.append((si, op))
            cat = CATEGORIES.index(op.category)
            if op.per_iteration:
                runs = [(res, op.count) for res in op.per_iteration]
            else:
                runs = [(op.result, op.count * stage.repeat)]
            for res, count in runs:
                last = len(res.kernels) - 1
                for i, k in enumerate(res.kernels):
                    code, p = kernel_unit(k, op.dtype, peaks)
                    nbytes, launches = k.bytes, k.launches
                    if op.index in saved_read:
                        nbytes, launches = nbytes - saved_read[op.index], 0
                    if i == last and op.index in saved_write:
                        nbytes -= saved_write[op.index]
                    rows.append((oid, si, cat, code, p, k.flops, max(nbytes, 0.0), *k.gemm, launches, count))
    return KernelTable.from_rows(ops, rows, peaks)


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


TILE_COLUMNS = ("cores", "tile_m", "tile_n", "tile_k", "min_tile_m", "min_tile_n", "min_tile_k", "attn_q", "attn_k",
                "attn_d")
EFFICIENCY_OF_UNIT = {"matrix": "eff_matrix", "attention": "eff_attention", "vector": "eff_vector"}


def attention_quantisation(gemm: np.ndarray, cols: dict, terms: Terms) -> np.ndarray:
    """Factor >= 1 for a fused attention kernel: (batch x heads, Lq, Lk, head dim) in blocks.

    Each core takes `attn_q` queries (fewer for short queries, down to the instruction's `min_tile_m`) and walks
    the keys `attn_k` at a time; the head dimension pads to the kernel's supported size (`attn_d` multiple).
    Short sequences (temporal attention over 8-32 frames) and small head dims waste most of each block. When
    the query blocks cannot fill the cores (decode), the keys are split across cores (split-KV).
    """
    bh, lq, lk, d = (np.maximum(gemm[:, i], 1.0) for i in range(4))
    cores = cols["cores"][:, None]
    small = cols["min_tile_m"][:, None]
    bq = np.minimum(cols["attn_q"][:, None], np.ceil(lq / small) * small)
    bk, md = cols["attn_k"][:, None], cols["attn_d"][:, None]
    factor = np.ones(np.broadcast_shapes(bq.shape, lq.shape))
    if terms.tile:
        factor = factor * _pad(lq, bq) * _pad(lk, bk) * _pad(d, md) / (lq * lk * d)
    if terms.wave:
        blocks = bh * np.ceil(lq / bq)
        splits = np.clip(np.floor(cores / blocks), 1.0, np.ceil(lk / bk))
        ctas = blocks * splits
        factor = factor * np.ceil(ctas / cores) * cores / ctas
    return factor


def work(table: KernelTable, cols: dict, terms: Terms) -> np.ndarray:
    """FLOPs each kernel costs on each design point after tile and wave quantisation: [1 or P, K].

    Quantisation depends only on the tile and core counts, which a sweep rarely varies: it is computed once per
    distinct (cores, tiles) combination, not once per design point.
    """
    flops = np.where(table.unit == UNITS.index("none"), 0.0, table.flops)[None, :]
    gemm = table.unit == UNITS.index("matrix")
    fused = table.unit == UNITS.index("attention")
    if not terms.attention:  # fused attention costed as one plain GEMM
        gemm, fused = gemm | fused, np.zeros_like(fused)
    if not (terms.tile or terms.wave or terms.attention) or not (gemm.any() or fused.any()):
        return flops
    keys = np.stack([np.asarray(cols[c], dtype=np.float64) for c in TILE_COLUMNS], axis=1)
    if (keys == keys[0]).all():  # the usual case: tiles and cores are not varied
        distinct, inverse = keys[:1], np.zeros(len(keys), dtype=np.int64)
    else:
        distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    per = {c: distinct[:, i] for i, c in enumerate(TILE_COLUMNS)}
    out = np.repeat(flops, len(distinct), axis=0)
    if gemm.any() and (terms.tile or terms.wave):
        out[:, gemm] *= quantisation(table.gemm[gemm], per, terms)
    if fused.any() and (terms.tile or terms.wave):
        out[:, fused] *= attention_quantisation(table.gemm[fused], per, terms)
    return out if len(distinct) == 1 else out[inverse.ravel()]


def evaluate(table: KernelTable, cols: dict, terms: Terms = FULL, bound: bool = True,
             parts: bool = True) -> dict:
    """Times of every kernel on every design point: arrays of shape [points, kernels].

    Returns `time` and, if `bound`, which part bounds each kernel (0 compute, 1 memory, 2 overhead); with
    `parts` also the compute, memory and overhead times. Without `parts` (sweeps) the arrays are reused in
    place, which saves memory traffic on large blocks.
    """
    peak_cols = np.stack([cols[f"peak:{u}:{d}"] for u, d in table.peaks], axis=1)  # [P, npeaks]
    if terms.achievable:
        unit_eff = [cols[EFFICIENCY_OF_UNIT[u]] for u, _ in table.peaks]
        peak_cols = peak_cols * np.stack(unit_eff, axis=1)
    compute = work(table, cols, terms) * (1.0 / peak_cols)[:, table.peak]
    bandwidth = cols["bandwidth"] * (cols["eff_memory"] if terms.achievable else 1.0)
    memory = np.multiply.outer(1.0 / bandwidth, table.bytes)
    if terms.latency:  # small transfers do not reach full bandwidth: one round trip before data streams
        latency = np.asarray(cols["memory_latency"])[:, None]
        if (table.bytes > 0).all():
            memory += latency
        else:
            memory += latency * (table.bytes > 0)
    launch = cols["launch_overhead"] if terms.overhead else np.zeros_like(bandwidth)
    overhead = np.multiply.outer(launch, table.launches)
    out = {}
    if bound:
        b = np.greater(memory, compute).view(np.int8)
    if parts:
        out.update(compute=compute, memory=memory, overhead=overhead)
        mx = np.maximum(compute, memory)
    else:
        mx = np.maximum(compute, memory, out=compute)
    if bound:
        b[overhead > mx] = 2
        out["bound"] = b
    out["time"] = np.add(mx, overhead, out=mx if not parts else None)
    return out


def hardware_columns(table: KernelTable, specs: list) -> dict:
    return columns(specs, table.peaks)
