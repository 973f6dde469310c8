"""The cost engine: a kernel table (one row per kernel, built by `mapping.lower`) against hardware design
points (one row each), with numpy. It decides nothing about fusion, back-ends or launches: it costs what the
mapping hands it.

Per kernel and design point:
    compute  = FLOPs x tile, wave and per-tile fixed-cost factor (tiles bounded by the SRAM per core)
               / (peak of its unit and dtype x its class's achievable fraction x sustained/peak clock),
               at least dynamic energy / (TDP - static power) (`power_cap`)
    memory   = bytes / (bandwidth x achievable fraction) + DRAM latency
               + the change in time of re-reads the L2 holds, against the file's own L2 (`l2_correction`)
    overhead = launches x the device's gap between kernels (from a stream, or inside a graph)
    time     = max(compute, memory) + overhead,   bound = the largest of the three
and per stage the time the host adds when it issues kernels more slowly than the device runs them
(`host_excess`). The efficiency terms are separable (`Terms`) so reports can put the bare roofline beside the
full model. Each kernel's energy is its FLOPs and bytes at the file's pJ figures plus static power over its time
(`kernel_energy`; `energy_total` sums it for sweeps).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .hardware import columns, is_conv_class
from .ops import UNITS

BOUNDS = ("compute", "memory", "overhead", "comm")  # comm: a collective between devices (multi-device plans)


@dataclass(frozen=True)
class Terms:
    """Which effects beyond the bare roofline are on."""
    tile: bool = True        # pad GEMM M/N/K to the core's tile
    wave: bool = True        # tiles run in whole waves over the cores
    achievable: bool = True  # best measured fraction of peak compute and bandwidth
    overhead: bool = True    # per-kernel launch overhead
    attention: bool = True   # fused attention's query/key blocks and padded head dim (else a plain GEMM)
    latency: bool = True     # each kernel waits one DRAM round trip before data streams (a collective: its
    #                          link's latency at each step of its algorithm)
    cache: bool = True       # re-reads of tensors still resident in L2 move at the L2's bandwidth
    power: bool = True       # a kernel that would draw more than the TDP runs at the clock that fits
    # collectives between devices cost their link time (off: an infinitely fast link). Not an efficiency effect:
    # their bytes over the link bandwidth are part of the bare roofline on several devices, so ROOFLINE keeps it
    comm: bool = True

    NAMES = ("tile", "wave", "achievable", "overhead", "attention", "latency", "cache", "power", "comm")

    def describe(self) -> str:
        on = [name for name in self.NAMES if getattr(self, name) and name != "comm"]
        text = "roofline only" if not on else "roofline + " + ", ".join(on)
        return text if self.comm else text + "; collectives free (comm off)"

    @classmethod
    def without(cls, names) -> "Terms":
        return cls(**{n: n not in names for n in cls.NAMES})


ROOFLINE = Terms.without(set(Terms.NAMES) - {"comm"})  # every efficiency term off; collectives at bytes / bandwidth
FULL = Terms()


@dataclass
class KernelTable:
    """One row per distinct kernel; `count` is how many times it runs in one inference. Built by the mapping
    layer (`mapping.lower`); the engine only costs it."""
    ops: list          # (stage index, Op) for each op id
    op: np.ndarray     # op id of each kernel
    stage: np.ndarray
    category: np.ndarray
    unit: np.ndarray
    peak: np.ndarray   # column index into `peaks`
    peaks: list        # (unit, dtype) rate each peak index refers to
    eff: np.ndarray    # index into `effs`: the efficiency class the kernel is costed with
    effs: list         # efficiency classes: matrix, conv, attention:<backend>, vector, none
    backend: np.ndarray  # index into `backends` ('' where the op has no choice)
    backends: list
    flops: np.ndarray
    bytes: np.ndarray
    gemm: np.ndarray   # [K, 4]: batch, m, n, k (zeros off the matrix unit)
    launches: np.ndarray
    count: np.ndarray
    host: np.ndarray   # host seconds the framework spends issuing one run of the kernel (0 from a graph)
    stage_repeat: np.ndarray   # per stage: repeats
    stage_step_s: np.ndarray   # per stage: host seconds per repeat
    stage_sync: np.ndarray     # per stage: the host waits for the device after each repeat
    launch: str = "stream"     # stream | graph | program
    comm_overlap: bool = False  # collectives overlap the compute of their stage (the stack's `comm_overlap`)
    # [K, J]: bytes each kernel re-reads of tensors touched before, and the bytes touched since their last use
    # (the liveness walk in `mapping.reuse`); None: no re-reads known (the L2 term costs nothing)
    reread: np.ndarray | None = None
    reuse: np.ndarray | None = None
    # what a multi-device plan did (parallel.Sharding: the plan, per-device memory, the collectives), for the
    # results layer; None on one device. The engine never reads it
    sharding: object = None

    def __len__(self) -> int:
        return len(self.op)

    @classmethod
    def from_rows(cls, ops: list, rows: list, peaks: dict, effs: dict, backends: dict, stage_meta: list,
                  launch: str = "stream") -> "KernelTable":
        """Rows of (op, stage, category, unit, peak, eff, backend, flops, bytes, batch, m, n, k, launches,
        count, host); `stage_meta` is (repeat, step_s, sync) per stage."""
        a = np.array(rows, dtype=np.float64).reshape(-1, 16)
        ints = a[:, :7].astype(np.int64)
        meta = np.array(stage_meta, dtype=np.float64).reshape(-1, 3)
        return cls(ops, ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], ints[:, 4], list(peaks), ints[:, 5],
                   list(effs), ints[:, 6], list(backends), a[:, 7], a[:, 8], a[:, 9:13], a[:, 13], a[:, 14],
                   a[:, 15], meta[:, 0], meta[:, 1], meta[:, 2].astype(bool), launch)


def _pad(x, tile):
    return np.ceil(x / tile) * tile


# Output tiles a GEMM library can choose from, as fractions of the core's largest tile (m, n): CUTLASS/cuBLAS
# ship e.g. 128x256, 128x128, 64x128 and 64x64 configurations and pick per problem to balance the waves.
TILE_CHOICES = ((1.0, 1.0), (0.5, 1.0), (1.0, 0.5), (0.5, 0.5))
# Split-K: when a GEMM's output tiles cannot fill the cores, cuBLAS/CUTLASS split the reduction over K across
# cores and add the partial tiles (CUTLASS "split-K serial/parallel" GEMMs; cuBLAS heuristics pick them for
# small M, N and large K). Each split keeps at least this many K-steps of the tile.
MIN_K_STEPS_PER_SPLIT = 4


# Shared memory a tile holds, in operand elements: a GEMM its A (tm x tk) and B (tk x tn) tiles in a pipeline of
# at least two stages (the fewest that overlap the next loads with the current MMAs: CUTLASS `kStages` >= 2);
# FlashAttention-2 its query block and one key and one value block, (bq + 2 bk) x head dim (flash_fwd_kernel.h:
# sQ, sK, sV). Operands are 16-bit (2 bytes), the common case; the term acts relative to the file's own SRAM, so
# the element size and stage count mostly cancel.
PIPELINE_STAGES = 2
OPERAND_BYTES = 2


def sram_scale(need: np.ndarray, cols: dict) -> np.ndarray:
    """Factor (a power of 2, at most 1) by which a tile's sides shrink to fit the design point's SRAM per core.

    The file's tiles fit the file's own SRAM by construction (its efficiencies were measured with them), so the
    budget is the SRAM times how far the file's tile exceeds the file's SRAM in this footprint model: a device at
    its own SRAM keeps its tiles, and less SRAM shrinks them once the footprint no longer fits. Halving a tile's
    sides halves its footprint (both footprints are linear in the sides).
    """
    sram, sram0 = cols["sram"][:, None], np.maximum(cols["sram0"][:, None], 1.0)
    budget = np.maximum(sram * np.maximum(1.0, need / sram0), 1.0)
    over = need / budget
    if (over <= 1.0).all():  # every tile fits (the usual case): 0.5 ** ceil(log2(1)) = 1, without the logs
        return np.ones_like(over)
    return 0.5 ** np.ceil(np.log2(np.maximum(over, 1.0)))


def quantisation(gemm: np.ndarray, cols: dict, terms: Terms, features: list | None = None) -> np.ndarray:
    """Factor >= 1 by which tile padding, partial waves and per-tile fixed cost inflate a GEMM's FLOPs, per
    design point.

    A dimension smaller than the tile pads only to a multiple of the instruction shape (`min_tile`). Each tile's
    main loop over K costs K + `k_overhead` steps (prologue filling the pipeline, epilogue writing the tile), so
    short reductions run below peak. Among TILE_CHOICES x split-K choices the smallest factor wins, as a
    library's heuristic would choose it. `features` (a list) receives every rounded or chosen quantity
    (`evaluate`'s `features`).
    """
    b, m, n, k = np.maximum(np.ascontiguousarray(gemm.T), 1.0)  # dimension by dimension, each contiguous
    cores = cols["cores"][:, None]
    k0 = cols["k0_matrix"][:, None] if terms.achievable and "k0_matrix" in cols else 0.0
    small = {d: cols[f"min_tile_{d}"][:, None] for d in "mnk"}
    tk = np.minimum(cols["tile_k"][:, None], np.ceil(k / small["k"]) * small["k"])
    # too little SRAM for the core's largest tile: every choice shrinks, and each operand byte loaded feeds
    # fewer MMAs (operand reuse, tm x tn / (tm + tn) FLOP per byte, falls with the sides); the file's measured
    # fraction is taken as set by the reuse of its own tile, so the rate falls in proportion
    fit = np.ones_like(cores)
    if terms.tile and "sram" in cols:
        fit = sram_scale(PIPELINE_STAGES * (cols["tile_m"] + cols["tile_n"])[:, None] * cols["tile_k"][:, None]
                         * OPERAND_BYTES, cols)
    best = None
    for fm, fn in TILE_CHOICES:
        tm = np.maximum(small["m"], cols["tile_m"][:, None] * fm * fit)
        tn = np.maximum(small["n"], cols["tile_n"][:, None] * fn * fit)
        tm = np.minimum(tm, np.ceil(m / small["m"]) * small["m"])
        tn = np.minimum(tn, np.ceil(n / small["n"]) * small["n"])
        tiles = b * np.ceil(m / tm) * np.ceil(n / tn)
        splits = np.ones_like(tiles * cores)
        if terms.wave:
            splits = np.minimum(np.maximum(np.floor(cores / tiles), 1.0),  # np.clip, faster
                                np.maximum(np.floor(k / (tk * MIN_K_STEPS_PER_SPLIT)), 1))
        factor = np.ones(np.broadcast_shapes(tm.shape, m.shape, splits.shape))
        k_split = np.ceil(k / splits)
        if terms.tile:
            factor = factor * _pad(m, tm) * _pad(n, tn) * _pad(k_split, tk) * splits / (m * n * k)
        if terms.wave:
            ctas = tiles * splits
            factor = factor * np.ceil(ctas / cores) * cores / ctas
        factor = factor * (k_split + k0) / k_split
        if features is not None:
            features += [tm, tn, tk, splits, k_split, np.ceil(m / tm), np.ceil(n / tn), np.ceil(k_split / tk),
                         np.ceil(tiles * splits / cores)]
        best = factor if best is None else np.minimum(best, factor)
    return best / fit


TILE_COLUMNS = ("cores", "tile_m", "tile_n", "tile_k", "min_tile_m", "min_tile_n", "min_tile_k", "attn_q", "attn_k",
                "attn_d", "k0_matrix", "k0_attention", "sram", "sram0")


def attention_quantisation(gemm: np.ndarray, cols: dict, terms: Terms, features: list | None = None) -> np.ndarray:
    """Factor >= 1 for a fused attention kernel: (batch x heads, Lq, Lk, head dim) in blocks.

    Each core takes `attn_q` queries (fewer for short queries, down to the instruction's `min_tile_m`) and walks
    the keys `attn_k` at a time; the head dimension pads to the kernel's supported size (`attn_d` multiple).
    Short sequences (temporal attention over 8-32 frames) and small head dims waste most of each block, and
    every query block pays a fixed cost (loading Q, the final rescale and the write of O) worth
    `attention_k_overhead` keys. When the query blocks cannot fill the cores (decode), the keys are split
    across cores (split-KV). `features` (a list) receives every rounded or chosen quantity (`evaluate`'s
    `features`).
    """
    bh, lq, lk, d = np.maximum(np.ascontiguousarray(gemm.T), 1.0)
    cores = cols["cores"][:, None]
    small = cols["min_tile_m"][:, None]
    bq = np.minimum(cols["attn_q"][:, None], np.ceil(lq / small) * small)
    bk, md = cols["attn_k"][:, None], cols["attn_d"][:, None]
    reuse = np.ones(np.broadcast_shapes(bq.shape, lq.shape))
    if terms.tile and "sram" in cols:
        # the query block and a key and a value block must fit the SRAM per core: with too little, the blocks
        # shrink (down to one MMA instruction's rows), and every key/value block loaded serves fewer queries, so
        # the K/V stream per FLOP grows as the query block shrinks (FlashAttention-2 is bound by that stream:
        # the file's measured fraction is taken at its own block)
        scale = sram_scale((bq + 2.0 * bk) * _pad(d, md) * OPERAND_BYTES, cols)
        shrunk = np.maximum(small, bq * scale)
        reuse = bq / shrunk
        bq, bk = shrunk, np.maximum(small, bk * scale)
    factor = np.ones(np.broadcast_shapes(bq.shape, lq.shape))
    if terms.tile:
        factor = factor * _pad(lq, bq) * _pad(lk, bk) * _pad(d, md) / (lq * lk * d)
    splits = np.ones_like(factor)
    if terms.wave:
        blocks = bh * np.ceil(lq / bq)
        splits = np.minimum(np.maximum(np.floor(cores / blocks), 1.0), np.ceil(lk / bk))  # np.clip, faster
        ctas = blocks * splits
        factor = factor * np.ceil(ctas / cores) * cores / ctas
    if features is not None:
        features += [bq, bk, np.ceil(lq / bq), np.ceil(lk / bk), np.ceil(d / md), splits, np.ceil(bh * np.ceil(
            lq / bq) * splits / cores)]
    if terms.achievable and "k0_attention" in cols:
        keys = np.ceil(lk / splits)
        k0 = cols["k0_attention"][:, None]
        factor = factor * (keys + k0) / keys
        if features is not None:  # (keys + 0) / keys is exactly 1: the key count matters only with a fixed cost
            features.append(np.where(k0 != 0, keys, 0.0))
    return factor * reuse


def softmax_exponentials(compute: np.ndarray, table: KernelTable, cols: dict, peak: np.ndarray) -> np.ndarray:
    """Fused attention's compute time with its online softmax's exponentials: one per score, on the
    special-function units, between the two matrix products of each key block and in series with them.

    A score costs 4 x head dim matrix FLOPs (QK^T and PV, the head dim padded to the kernel's) and one
    exponential, so the time grows by 1 + peak / (4 x padded head dim x exponential rate): small head dims and
    fast (fp8) matrix rates leave more of the loop to the exponentials. A back-end that overlaps softmax and
    matrix products (warp-specialised kernels: FlashAttention-3's ping-pong schedule, cuDNN's) hides the share
    `efficiency.softmax_overlap.<back-end>` of them. The factor multiplies the time the kernel's achievable
    fraction already scales, so the fraction stays that of the whole loop.
    """
    fused = np.flatnonzero(table.unit == UNITS.index("attention"))
    exp_rate = cols.get("exp_rate")
    if not len(fused) or exp_rate is None or not (exp_rate > 0).any():
        return compute
    hide = [cols.get(f"hide:{c}", np.zeros(len(exp_rate))) for c in table.effs]
    rows = slice(0, 1)  # one design point; or a sweep that varies nothing the factor reads: one row serves all
    if len(exp_rate) > 1:
        inputs = [exp_rate, cols["attn_d"], *hide, *(cols[f"peak:{u}:{d}"] for u, d in table.peaks)]
        rows = rows if all(np.ptp(np.asarray(x)) == 0 for x in inputs) else slice(None)
    md = np.maximum(cols["attn_d"][rows, None], 1.0)
    d = _pad(np.maximum(np.take(table.gemm[:, 3], fused), 1.0), md)
    rate = np.asarray(exp_rate)[rows, None]
    shown = 1.0 - np.take(np.stack([h[rows] for h in hide], axis=1), np.take(table.eff, fused), axis=1)
    grow = 1.0 + shown * np.where(rate > 0, np.take(peak[rows], fused, axis=1) / (4.0 * d * np.where(
        rate > 0, rate, 1.0)), 0.0)
    factor = np.ones((grow.shape[0], compute.shape[1]))
    factor[:, fused] = grow
    return compute * factor


def work(table: KernelTable, cols: dict, terms: Terms, features: list | None = None) -> np.ndarray:
    """FLOPs each kernel costs on each design point after tile and wave quantisation: [1 or P, K].

    Quantisation depends only on the tile and core counts, which a sweep rarely varies: it is computed once per
    distinct (cores, tiles) combination, not once per design point. `features`: as `evaluate`'s.
    """
    flops = np.where(table.unit == UNITS.index("none"), 0.0, table.flops)[None, :]
    gemm = table.unit == UNITS.index("matrix")
    fused = table.unit == UNITS.index("attention")
    plain = np.zeros_like(fused)
    if not terms.attention:  # fused attention costed as one plain GEMM (its K is the head dim: no main-loop cost)
        plain, fused = fused, np.zeros_like(fused)
    if not (terms.tile or terms.wave or terms.attention or terms.achievable) or not (gemm | fused | plain).any():
        return flops
    keys = np.stack([np.asarray(cols[c], dtype=np.float64) for c in TILE_COLUMNS], axis=1)
    if (keys == keys[0]).all():  # the usual case: tiles and cores are not varied
        distinct, inverse = keys[:1], np.zeros(len(keys), dtype=np.int64)
    else:
        distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    per = {c: distinct[:, i] for i, c in enumerate(TILE_COLUMNS)}
    out = np.repeat(flops, len(distinct), axis=0)
    for rows, factor, t in ((gemm, quantisation, terms), (plain, quantisation, replace(terms, achievable=False)),
                            (fused, attention_quantisation, terms)):
        rows = np.flatnonzero(rows)  # row indices: gathers and scatters by index beat boolean masks
        if len(rows):
            found = [] if features is not None else None
            out[:, rows] = np.take(out, rows, axis=1) * factor(np.take(table.gemm, rows, axis=0), per, t, found)
            for f in found or ():  # zeros at the other kernels
                whole = np.zeros((len(distinct), len(table)))
                whole[:, rows] = f
                features.append(whole if len(distinct) == 1 else whole[inverse.ravel()])
    return out if len(distinct) == 1 else out[inverse.ravel()]


def evaluate(table: KernelTable, cols: dict, terms: Terms = FULL, bound: bool = True,
             parts: bool = True, energy: bool = True, features: list | None = None) -> dict:
    """Device times of every kernel on every design point: arrays of shape [points, kernels].

    Returns `time` and, if `bound`, which part bounds each kernel (0 compute, 1 memory, 2 overhead); with
    `parts` also the compute, memory and overhead times. Without `parts` (sweeps) the arrays are reused in
    place, which saves memory traffic on large blocks.

    `features` (a list) receives [points, kernels] arrays of every piecewise-constant quantity of the formulas
    (the tile, wave and split counts and choices), and the result gains `uncapped` (the compute time before the
    power cap) and `margins`: for each max() or comparison in order (the power cap's two, memory against
    compute, overhead against both), the second side less the first (its sign says which side wins). Where a
    kernel's FLOPs, bytes and GEMM shape move with one dimension only, monotonically, each feature is monotone in
    it (once those it depends on are fixed); with all of them fixed the compute time is affine in that dimension
    or the ratio of two affine functions of it, and with it affine and the sides of the comparisons before it
    fixed, each margin is affine (`mapping.closed_form_runs`).
    """
    peak = np.take(np.stack([cols[f"peak:{u}:{d}"] for u, d in table.peaks], axis=1), table.peak, axis=1)  # [P, K]
    rate = peak
    if terms.achievable:
        # the kernel class's achievable fraction, at the clock the part sustains under load
        eff = np.take(np.stack([cols[f"eff:{c}"] for c in table.effs], axis=1), table.eff, axis=1)
        rate = rate * eff * cols["clock_ratio"][:, None]
    flops = work(table, cols, terms, features)
    compute = flops / rate
    staging = cols.get("conv_staging_s")
    if terms.achievable and staging is not None and (staging > 0).any():
        # convolutions also pay their operand staging, issued by the same SM as the tensor instructions
        conv = np.flatnonzero(np.isin(table.eff, [i for i, c in enumerate(table.effs) if is_conv_class(c)]))
        if len(conv):
            compute[:, conv] += np.take(flops, conv, axis=1) * (staging / cols["clock_ratio"])[:, None]
    if terms.attention:
        compute = softmax_exponentials(compute, table, cols, peak)
    bandwidth = cols["bandwidth"]
    if terms.achievable:
        # each class's achievable fraction of bandwidth (row reductions reach less than streaming kernels)
        effmem = np.take(np.stack([cols[f"effmem:{c}"] for c in table.effs], axis=1), table.eff, axis=1)
        memory = table.bytes[None, :] / (bandwidth[:, None] * effmem)
    else:
        memory = np.multiply.outer(1.0 / bandwidth, table.bytes)
    if terms.latency:  # small transfers do not reach full bandwidth: one round trip before data streams
        latency = np.asarray(cols["memory_latency"])[:, None]
        if (table.bytes > 0).all():
            memory += latency
        else:
            memory += latency * (table.bytes > 0)
    if terms.overhead:  # the device-side gap between consecutive kernels: from a stream, or inside a graph
        launch = cols["graph_launch_overhead"] if table.launch != "stream" else cols["launch_overhead"]
        launch = launch + cols["kernel_fixed"]  # the kernel's own ramp and drain, however it was launched
    else:
        launch = np.zeros_like(bandwidth)
    overhead = np.multiply.outer(launch, table.launches)
    if terms.cache:
        memory = memory + l2_correction(table, cols, effmem if terms.achievable else 1.0)
    # FLOP and byte energy, for the power cap and the kernels' energy alike (one design point: a sweep's power
    # cap computes it once for all points that share their energy figures)
    dynamic = dynamic_energy(table, cols) if len(bandwidth) == 1 and (terms.power or energy) else None
    uncapped = compute.copy() if features is not None else None  # (the cap updates `compute` in place)
    margins = [] if features is not None else None
    if terms.power:
        compute = power_cap(table, cols, compute, memory, dynamic, margins)
    comm = communication(table, cols, terms, compute, memory, overhead)
    out = {}
    if features is not None:  # the compute time before the power cap, and the margins of each max()
        features.append(np.broadcast_to(table.bytes > 0, memory.shape))
        margins += [_margin(memory, compute), _margin(overhead, np.maximum(compute, memory))]
        out.update(uncapped=uncapped, margins=margins)
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
    if comm is not None:
        rows = table.unit == UNITS.index("comm")
        out["time"][:, rows] += comm[:, rows]
        if bound:
            out["bound"][:, rows] = BOUNDS.index("comm")
        if parts:
            out["comm"] = comm
    if energy:
        out["energy"] = kernel_energy(table, cols, out["time"], terms, dynamic)
    return out


def _margin(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """second - first, 0 where the two agree to rounding (a device at its own TDP: the power cap's two sides are
    the same time): either side is then the same formula, whatever the sign of the rounding."""
    d = second - first
    d[np.abs(d) <= 1e-12 * np.maximum(np.abs(second), np.abs(first))] = 0.0
    return d


def resident_bytes(table: KernelTable, l2_bytes: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """[P, K]: bytes each kernel re-reads of tensors still in an L2 of `l2_bytes` (one per design point): those
    whose bytes touched since their last use, themselves included, fit. With `rows` (`rereading(table)`), [P,
    len(rows)]: those kernels' only."""
    l2 = np.asarray(l2_bytes)
    if rows is None:
        out = np.zeros((len(l2), len(table)))
        rows = rereading(table)
        if len(rows):
            out[:, rows] = resident_bytes(table, l2, rows)
        return out
    hit = table.reuse[None, rows, :] <= l2[:, None, None]
    return np.einsum("pkj,kj->pk", hit, table.reread[rows])


def rereading(table: KernelTable) -> np.ndarray:
    """Indices of the kernels that re-read anything (few: an op's first kernel, and no per-iteration op's; see
    `mapping.with_reuse`)."""
    if table.reread is None or not table.reread.shape[1]:
        return np.zeros(0, dtype=np.int64)
    any_slot = table.reread[:, 0] != 0
    for j in range(1, table.reread.shape[1]):  # column by column: numpy's any(axis=1) over 3 slots is 10x slower
        any_slot |= table.reread[:, j] != 0
    return np.flatnonzero(any_slot)


def l2_correction(table: KernelTable, cols: dict, effmem) -> np.ndarray | float:
    """Seconds to add to each kernel's memory time for re-reads served by the L2: [P, K], or 0.

    The file's measured bandwidth fractions already include its own L2, so the term is the change between the
    file's L2 (size and bandwidth) and the design point's: each resident byte moves at the L2 bandwidth instead of
    the DRAM's, and a device at its own L2 is unchanged. Without an `on_chip.l2_bandwidth` the term is off.
    """
    if table.reread is None or not table.reread.any() or "l2_bw" not in cols:
        return 0.0
    l2, l2_0, bw, bw0 = cols["l2_bytes"], cols["l2_bytes0"], cols["l2_bw"], cols["l2_bw0"]
    if np.isnan(bw0).any() or np.isnan(bw).any() or ((l2 == l2_0).all() and (bw == bw0).all()):
        return 0.0
    dram = cols["bandwidth"][:, None] * effmem
    now = resident_bytes(table, l2) * (1.0 / bw[:, None] - 1.0 / dram)
    own = resident_bytes(table, l2_0) * (1.0 / bw0[:, None] - 1.0 / dram)
    return now - own


def dynamic_energy(table: KernelTable, cols: dict) -> np.ndarray:
    """Joules each kernel's FLOPs and DRAM bytes take (NaN where the file has no power model): [P, K]."""
    pj = np.take(np.stack([cols[f"pj:{u}:{d}"] for u, d in table.peaks], axis=1), table.peak, axis=1)
    flops = np.where(table.unit == UNITS.index("none"), 0.0, table.flops)
    return 1e-12 * (pj * flops[None, :] + np.multiply.outer(cols["dram_pj"], table.bytes))


def power_cap(table: KernelTable, cols: dict, compute: np.ndarray, memory: np.ndarray,
              dynamic: np.ndarray | None = None, margins: list | None = None) -> np.ndarray:
    """Compute times with the TDP cap: a kernel whose power at the sustained clock (static + its dynamic energy
    over its time) would exceed the TDP runs at the clock that fits. Its energy per operation is the same at a
    lower clock (same voltage: the conservative case), so it takes dynamic energy / (TDP - static) seconds; never
    faster than at the sustained clock. Devices without a power model or TDP are not capped. `dynamic`: the
    kernels' `dynamic_energy`, where the caller has it.

    Relative to the file's own TDP, like SRAM and L2: the achievable fractions were measured under that TDP, so a
    kernel that the energy model puts over it there already runs at its measured speed. Such a kernel's time
    scales with the inverse of the power headroom when the TDP moves; one under the file's TDP is capped only once
    it exceeds the new one."""
    headroom = cols["tdp"] - cols["static_w"]
    if np.isnan(headroom).all():
        return compute
    # the energy figures are the same at every design point unless a sweep varies them: one row then serves all
    names = ["tdp", "tdp0", "static_w", "dram_pj", *(f"pj:{u}:{d}" for u, d in table.peaks)]
    if all((np.asarray(cols[c]) == np.asarray(cols[c])[0]).all() or np.isnan(np.asarray(cols[c])).all()
           for c in names):
        cols = {c: np.asarray(cols[c])[:1] for c in names}
        headroom = headroom[:1]
    energy = dynamic if dynamic is not None and len(headroom) == len(dynamic) else dynamic_energy(table, cols)
    floor = energy / headroom[:, None]
    own = energy / (cols["tdp0"] - cols["static_w"])[:, None]   # the power-bound time under the file's TDP
    over = own > compute                                       # NaN (no file TDP) compares false: plain cap
    if over.any():
        floor = np.where(over, compute * floor / np.where(over, own, 1.0), floor)
    if margins is not None:  # which side of each comparison wins, and by how much (`evaluate`'s `features`)
        margins += [_margin(np.broadcast_to(own, compute.shape), compute), _margin(floor, compute)]
    return np.fmax(compute, floor, out=compute)  # `compute` is the engine's own array: updated in place


def energy_total(table: KernelTable, cols: dict, device_time: np.ndarray, terms: Terms,
                 resident: float | None = None) -> np.ndarray:
    """Joules of one run at each design point, as the sum of `kernel_energy` over the kernels' runs but without
    a [points, kernels] array: FLOPs summed per rate, bytes summed, static power over `device_time`. `resident`:
    the re-read bytes the file's own L2 serves, where the table no longer carries its liveness walk."""
    pj = np.stack([cols[f"pj:{u}:{d}"] for u, d in table.peaks], axis=1)  # [P, rates]
    flops = np.where(table.unit == UNITS.index("none"), 0.0, table.flops) * table.count
    e = 1e-12 * (pj @ np.bincount(table.peak, weights=flops, minlength=len(table.peaks))
                 + cols["dram_pj"] * (table.bytes @ table.count))
    if terms.cache and not np.isnan(cols["l2_bw"]).all():
        if resident is None:
            resident = resident_bytes(table, cols["l2_bytes"]) @ table.count if table.reread is not None else 0.0
        l2_pj = np.where(np.isnan(cols["l2_pj"]), cols["dram_pj"], cols["l2_pj"])
        e = e - 1e-12 * resident * (cols["dram_pj"] - l2_pj)
    return e + cols["static_w"] * device_time


def kernel_energy(table: KernelTable, cols: dict, time: np.ndarray, terms: Terms,
                  dynamic: np.ndarray | None = None) -> np.ndarray:
    """Joules of one run of each kernel: its FLOPs and DRAM bytes at the file's pJ figures, the re-reads the L2
    serves at its pJ per byte instead of the DRAM's, plus static power over the kernel's time. NaN without a
    power model."""
    e = (dynamic if dynamic is not None else dynamic_energy(table, cols)) + cols["static_w"][:, None] * time
    rows = rereading(table) if terms.cache else ()
    if len(rows) and not np.isnan(cols["l2_bw"]).all():
        l2_pj = np.where(np.isnan(cols["l2_pj"]), cols["dram_pj"], cols["l2_pj"])
        # (the other kernels have no resident bytes: nothing to subtract)
        e[:, rows] -= 1e-12 * resident_bytes(table, cols["l2_bytes"], rows) * (cols["dram_pj"] - l2_pj)[:, None]
    return e


def communication(table: KernelTable, cols: dict, terms: Terms, compute, memory, overhead):
    """Seconds of each collective row ([points, kernels], zero elsewhere), or None when the table has none.

    A collective row carries gemm = (group size, bytes, stride of the group's ranks, kind index) and costs what
    `collectives.time` says on the design point's links. With the stack's `comm_overlap`, the collectives of a
    stage run behind its compute (separate streams/engines) and only what exceeds the stage's other device time
    is exposed.
    """
    rows = table.unit == UNITS.index("comm")
    if not rows.any():
        return None
    from .collectives import KINDS, time as collective_time
    comm = np.zeros(np.broadcast_shapes(compute.shape, memory.shape))
    if not terms.comm:  # the "infinitely fast interconnect" what-if
        return comm
    if not terms.latency:  # the bare link roofline: bytes over bandwidth, no per-step latency
        cols = {**cols, "link_latency": np.zeros_like(cols["link_latency"]),
                "network_latency": np.zeros_like(cols["network_latency"])}
    g = table.gemm[rows]
    cost = np.zeros((comm.shape[0], int(rows.sum())))
    for k, kind in enumerate(KINDS):
        sel = g[:, 3] == k
        if sel.any():
            on = cols
            if terms.achievable and "link_efficiency" in cols:  # protocol overhead: data below the line rate
                share = cols["link_all_reduce_efficiency" if kind == "all_reduce" else "link_efficiency"]
                on = {**cols, "link_bandwidth": cols["link_bandwidth"] * share}
            cost[:, sel] = collective_time(kind, g[sel, 1][None, :], g[sel, 0][None, :], g[sel, 2][None, :], on)
    comm[:, rows] = cost
    if table.comm_overlap:
        other = np.maximum(compute, memory) + overhead
        other[:, rows] = 0.0
        stages = len(table.stage_repeat)
        busy = np.stack([np.bincount(table.stage, weights=other[p] * table.count, minlength=stages)
                         for p in range(comm.shape[0])])
        talk = np.stack([np.bincount(table.stage, weights=comm[p] * table.count, minlength=stages)
                         for p in range(comm.shape[0])])
        exposed = np.where(talk > 0, np.maximum(talk - busy, 0.0) / np.where(talk > 0, talk, 1.0), 0.0)
        comm *= exposed[:, table.stage]
    return comm


def host_excess(table: KernelTable, time: np.ndarray, terms: Terms = FULL) -> np.ndarray:
    """Seconds the host adds beyond the device, per design point and stage: [points, stages].

    The framework issues kernels in program order and the device runs them behind it, so within one repeat
    of a stage the device finishes kernel j at D + max over i <= j of (H_i - D_(i-1)), where H_i is the host
    time when kernel i is issued and D_(i-1) the device time of the kernels before it. Over `repeat` repeats
    with no synchronisation the host runs ahead when it is faster; when it is slower it bounds every repeat:
        total = repeat x D + e                      (host faster: H <= D per repeat)
        total = D + (repeat - 1) x H + e            (host slower)
        total = repeat x (D + e)                    (the host waits for the device after every repeat)
    with e = max_j (H_j - D_(j-1)) the largest lead the device never catches up. A run of c identical kernels
    has its extreme at the first or last of them, so rows with counts need no expansion.
    """
    n_stages = len(table.stage_repeat)
    points = time.shape[0]
    out = np.zeros((points, n_stages))
    if not terms.overhead or not (table.host.any() or table.stage_step_s.any()):
        return out
    for s in range(n_stages):
        rows = np.flatnonzero(table.stage == s)
        n_rows = len(rows)
        if n_rows and rows[-1] - rows[0] + 1 == n_rows:  # the stage's rows in one run: views, no gathers
            rows = slice(rows[0], rows[-1] + 1)
        repeat = max(table.stage_repeat[s], 1.0)
        step = table.stage_step_s[s]
        if not n_rows and not step:
            continue
        c = table.count[rows] / repeat          # runs of each row in one repeat
        h, d = table.host[rows], time[:, rows]  # per run
        host_end = step + np.cumsum(c * h)      # host time after issuing each row's last run
        dev_end = np.cumsum(c * d, axis=1)      # device time after each row's last run
        one = np.minimum(c, 1.0)                # a row averaged over repeats (c < 1) runs at most once
        first = (host_end - (c - one) * h) - (dev_end - c * d)  # lead at the first run of each row
        last = host_end - (dev_end - one * d)                   # lead at the last run
        runs = [r for r in getattr(table, "runs", ()) if table.stage[r[0]] == s]
        if runs:  # kernels written at the ends of runs of iterations: the largest lead of every iteration's
            first = np.maximum(first, last)
            offset = rows.start if isinstance(rows, slice) else None
            for pos, g, m in runs:
                pos = pos - offset if offset is not None else int(np.searchsorted(rows, pos))
                n = g * int(len(m) + (m > 1).sum())
                first[:, pos:pos + n] = -np.inf
                first[:, pos] = _run_leads(pos, g, m, c, h, d, host_end, dev_end, step)
            last = first
        e = np.maximum(np.maximum(first, last).max(axis=1, initial=step), 0.0) if n_rows else np.full(points, step)
        dev = dev_end[:, -1] if n_rows else np.zeros(points)
        host = host_end[-1] if n_rows else step
        if table.stage_sync[s]:
            total = repeat * (dev + e)
        else:
            total = np.where(host > dev, dev + (repeat - 1) * host + e, repeat * dev + e)
        out[:, s] = total - repeat * dev
    return out


def _run_leads(pos: int, g: int, m: np.ndarray, c, h, d, host_end, dev_end, step) -> np.ndarray:
    """`host_excess`'s largest lead over every iteration of runs written at their ends (from row `pos` of the
    stage, `g` kernels per iteration, `m` iterations per run; each end with half the run's runs, device times
    affine over a run: mapping.closed_form_runs), as if each iteration's kernels were rows: [points].

    Over the iterations i of a run each kernel's lead at its first and at its last run is a quadratic in i (the
    device time before it sums times affine in i); its largest value over 0 .. m-1 is at an end or at the
    integers beside the vertex."""
    two = m > 1
    sets = np.cumsum(1 + two) - (1 + two)  # each run's first row set (of g kernels), then its last
    ends = pos + g * sets                    # each run's first row
    share = np.where(two, m / 2.0, 1.0)[:, None]
    ci = c[ends[:, None] + np.arange(g)] / share                              # [runs, g] runs per iteration
    hi = h[ends[:, None] + np.arange(g)]
    d0 = d[:, ends[:, None] + np.arange(g)]                                   # [points, runs, g]
    d1 = d[:, (ends + g * two)[:, None] + np.arange(g)]
    slope = (d1 - d0) / np.maximum(m - 1, 1)[None, :, None]
    h_before = np.where(ends > 0, host_end[np.maximum(ends - 1, 0)], step)[None, :, None]
    d_before = np.where(ends > 0, dev_end[:, np.maximum(ends - 1, 0)], 0.0)[:, :, None]
    h_in = np.cumsum(ci * hi, axis=1)                   # host time to each kernel within an iteration
    per_iteration = h_in[:, -1:]
    q0, q1 = np.cumsum(ci * d0, axis=2), np.cumsum(ci * slope, axis=2)
    s0, s1 = q0[..., -1:], q1[..., -1:]
    one = np.minimum(ci, 1.0)
    # host_end - dev_end at kernel j of iteration i: base + lin x i - s1/2 x i^2
    base = h_before + h_in - d_before - q0
    lin = per_iteration - (s0 + q1 - s1 / 2.0)
    quad = -s1 / 2.0
    best = np.full(d0.shape, -np.inf)
    for a, b in ((base - (ci - one) * hi + ci * d0, lin + ci * slope), (base + one * d0, lin + one * slope)):
        top = (m - 1.0)[None, :, None]
        vertex = np.where(quad < 0, -b / np.where(quad < 0, 2.0 * quad, 1.0), 0.0)
        for i in (0.0, top, np.clip(np.floor(vertex), 0.0, top), np.clip(np.ceil(vertex), 0.0, top)):
            best = np.maximum(best, a + b * i + quad * i * i)
    return best.max(axis=(1, 2))


def hardware_columns(table: KernelTable, specs: list) -> dict:
    # a table lowered in closed form for one device carries that device's columns (mapping.KernelRows.table)
    known = getattr(table, "columns_of", None)
    if known is not None and len(specs) == 1 and known[0] is specs[0]:
        return known[1]
    return columns(specs, table.peaks, table.effs)
