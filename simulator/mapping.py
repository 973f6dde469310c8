"""The mapping layer: how a software stack runs a model's ops on a device, as a table of kernels.

Timeloop keeps the problem, the architecture and the mapping apart; so do we. The model graph knows nothing of
devices or frameworks, the hardware file nothing of models, and the engine only costs the kernel table it is
handed. Everything in between is decided here, once per (model, stack, device):
- fusion: which ops fold into the kernel that produces their input (the stack's `fusion`);
- the attention back-end of every attention op (the stack's preference list against what the device runs);
- layout conversions (NCHW convolutions on devices whose convolution kernels are NHWC-native);
- the passes a reduction makes over long rows (the stack's `softmax`);
- the launch model: host time per op, per kernel and per repeat, and whether kernels come from a graph.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .dtypes import BYTES
from .engine import KernelTable, evaluate
from .hardware import attention_backends, columns
from .graph import Model
from .ops import CATEGORIES, UNITS, numel
from .quantisation import DEQUANT, check_device
from .stacks import Stack

MATH = "math"
COUNT = 14  # the runs column of a kernel row (`KernelRows.add`)


def _fusions(stage, mode: str) -> tuple[dict, dict]:
    """Ops that fold into the kernel producing their first input, as torch.compile, TensorRT or XLA fuse them,
    when that kernel's output is read by nothing else. `elementwise`: elementwise ops into any producer
    (GEMM/conv epilogues, activation chains) and single-pass norms into an elementwise producer (the fused
    residual-add + norm kernels of TensorRT and Inductor). `full` (XLA): also single-pass norms and softmax
    into any producer. Returns the bytes each fused op no longer reads and each producer no longer writes
    (the intermediate tensor never reaches memory)."""
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
        one_pass = len(op.result.kernels) == 1 and op.result.kernels[0].unit == "vector"
        # an elementwise op fuses into the producer of any input it alone reads (a GEMM/conv epilogue taking the
        # residual as a second operand); a norm or softmax only into the producer of its first input
        candidates = op.inputs if op.category == "elementwise" else op.inputs[:1]
        for name in candidates:
            tensor = stage.tensors[name]
            p = producer.get(tensor.storage)
            if p is None or readers.get(tensor.storage) != {op.index}:
                continue
            if op.category == "elementwise":
                ok = True
            elif mode == "full":
                ok = one_pass and (op.category == "norm" or op.kind == "softmax")
            else:
                ok = one_pass and op.category == "norm" and stage.ops[p].category == "elementwise"
            if not ok:
                continue
            nbytes = numel(stage.tensors[tensor.storage].shape) * BYTES[stage.tensors[tensor.storage].dtype]
            uses = sum(stage.tensors[t].storage == tensor.storage for t in op.inputs)  # x * x reads it twice
            saved_read[op.index] = uses * nbytes
            saved_write[p] = saved_write.get(p, 0) + nbytes
            break
    return saved_read, saved_write


def device_backends(spec) -> dict:
    """Fused attention back-ends the device runs, with their measured fraction of the matrix peak."""
    return attention_backends(spec.efficiency.attention_backends, spec.efficiency.attention)


# XLA's own fusion of a whole attention written as plain ops (matmul, softmax, matmul) into one kernel, where the
# device lists it as a back-end (XLA:TPU): the JAX Pallas TPU guide (docs/pallas/tpu/flash0.md, flash1.md) says
# "XLA TPU can often fuse this entire sequence of operations into one kernel", a kernel that keeps whole key and
# value rows in VMEM, and "with long enough sequences, the fusion isn't possible"
COMPILER_FUSED = "xla"
SIXTEEN_BIT = ("bf16", "fp16")


def attention_backend(stack: Stack, spec, dtype: str, head_dim: int, requested: str, keys: int = 0) -> str:
    """The back-end the stack's selector picks for one attention op: the first of its rules that accepts the
    op's dtype and head dim and that the device runs and whose smallest blocks fit the SRAM per core; `math`
    (the materialised score matrix) otherwise. Attention written as plain ops (`math`) under a fully fusing
    compiler becomes the compiler's own fused kernel where the device lists one and its `keys`-long rows fit."""
    if requested != "flash" and requested != MATH:  # a back-end named explicitly (a kernel measurement of it)
        return requested
    chosen = MATH if requested == MATH else _selected(stack, spec, dtype, head_dim)
    if chosen == MATH and compiler_fuses(stack, spec, dtype, head_dim, keys):
        return COMPILER_FUSED
    return chosen


def _selected(stack: Stack, spec, dtype: str, head_dim: int) -> str:
    """The first of the stack's attention rules that accepts the dtype and head dim and that the device runs."""
    available = device_backends(spec)
    for rule in stack.spec.attention.backends:
        if rule.dtypes is not None and dtype not in rule.dtypes:
            continue
        if rule.max_head_dim is not None and head_dim > rule.max_head_dim:
            continue
        if rule.head_dim_multiple is not None and head_dim % rule.head_dim_multiple:
            continue
        if rule.name == MATH:
            return MATH
        if rule.name in available and flash_fits(spec, head_dim):
            return rule.name
    return MATH


def _attention_blocks(spec, head_dim: int) -> tuple[int, int, int, int]:
    """A fused-attention kernel's blocks on this device: (queries per block, keys per block, the fewest query rows
    one MMA instruction takes, the head dim padded to the kernel's multiple); the matrix tile's where the file
    gives no `attention_tile`."""
    tile, mt = spec.attention_tile, spec.matrix_tile
    q, k, multiple = (tile.q, tile.k, tile.head_dim_multiple) if tile else (mt.m, mt.n, mt.k)
    return q, k, (spec.min_tile or mt).m, -(-head_dim // multiple) * multiple


def flash_fits(spec, head_dim: int) -> bool:
    """Whether fused attention's smallest blocks (one MMA instruction's rows of queries, keys and values) fit the
    SRAM per core, in the engine's footprint model and relative to the file's own SRAM (`engine.sram_scale`)."""
    from .engine import OPERAND_BYTES
    q, k, small, d = _attention_blocks(spec, head_dim)
    need = (q + 2 * k) * d * OPERAND_BYTES
    budget = spec.on_chip.sram_per_core_bytes * max(1.0, need / max(spec.reference("sram"), 1.0))
    return 3 * small * d * OPERAND_BYTES <= budget


def compiler_fuses(stack: Stack, spec, dtype: str, head_dim: int, keys: int) -> bool:
    """Whether a fully fusing compiler (`fusion: full`) runs a plain-ops attention as its own fused kernel on this
    device: the device lists that kernel (`COMPILER_FUSED`) and the kernel of the JAX guide (flash1.md,
    `attention_with_softmax_kernel`) fits the SRAM per core (VMEM): one block of queries (the smallest matrix
    tile), the whole key and value rows, and that block's fp32 logits. The guide's example (head dim 256, fp32)
    fits at 1024 keys and runs out of VMEM at 16384 keys on a chip it does not name, so against a whole 128 MiB
    VMEM this is an upper bound on the rows XLA fuses. The kernel's fraction in the hardware files is derived for
    16-bit operands (the MXU's bf16 rate), so other dtypes keep the materialised scores."""
    if stack.spec.fusion != "full" or COMPILER_FUSED not in device_backends(spec) or keys <= 0 \
            or dtype not in SIXTEEN_BIT:
        return False
    _, _, rows, d = _attention_blocks(spec, head_dim)
    need = (rows + 2 * keys) * d * BYTES[dtype] + rows * keys * 4
    return need <= spec.on_chip.sram_per_core_bytes


def kernel_class(k, category: str, backend: str | None, kind: str = "", dtype: str = "") -> str:
    """The efficiency class a kernel is costed with: each has its own achievable fraction in the hardware file.
    Row reductions (norms, softmax) are their own class: one block per row, a reduction before the output can
    be written, and (for group norm) a statistics pass keep them further from peak bandwidth than elementwise
    kernels."""
    if k.fused_attention:
        return f"attention:{backend}"
    if k.unit == "matrix":
        return f"{'conv' if category == 'conv' else 'matrix'}:{dtype}"
    if k.suffix == DEQUANT:
        return "dequant"
    if k.unit == "vector":
        return "reduction" if category == "norm" or kind == "softmax" or k.suffix == ".softmax" else "vector"
    return "none"


class KernelRows:
    """Accumulates kernel rows and the lookup lists they index."""

    def __init__(self):
        self.rows, self.peaks, self.classes, self.backends = [], {}, {}, {}
        self.blocks = []  # rows added as arrays (an op's kernels at every iteration), before `rows`, in order

    def add(self, oid, si, cat, k_unit, dtype, klass, backend, flops, nbytes, gemm, launches, count, host):
        rate_unit = "vector" if k_unit == "none" else ("matrix" if k_unit == "attention" else k_unit)
        p = self.peaks.setdefault((rate_unit, dtype), len(self.peaks))
        e = self.classes.setdefault(klass, len(self.classes))
        b = self.backends.setdefault(backend or "", len(self.backends))
        self.rows.append((oid, si, cat, UNITS.index(k_unit), p, e, b, flops, max(nbytes, 0.0), *gemm, launches,
                          count, host))

    def add_block(self, rows: "np.ndarray | _Steps") -> None:
        if self.rows:
            self.blocks.append(np.array(self.rows, dtype=np.float64).reshape(-1, 16))
            self.rows = []
        self.blocks.append(rows)

    def table(self, ops: list, stage_meta: list, launch: str, closed_form: tuple | None = None) -> KernelTable:
        """The rows as a KernelTable (as `KernelTable.from_rows` builds it), assembled column by column: an
        op's kernels at every iteration are written straight into contiguous columns, never as a [rows, 16]
        array of a long decode. With `closed_form` ((spec, terms): the device and the Terms the table will be
        costed under), the growing kernels are written at the ends of their runs (`closed_form_runs`)."""
        if not self.blocks:
            return KernelTable.from_rows(ops, self.rows, self.peaks, self.classes, self.backends, stage_meta,
                                         launch)
        parts = self.blocks + ([np.array(self.rows, dtype=np.float64).reshape(-1, 16)] if self.rows else [])
        if closed_form is None:
            return self._assemble(ops, parts, stage_meta, launch)
        spec, terms = closed_form
        growing = [p for p in parts if isinstance(p, _Steps) and len(p.growing)
                   and p.n - 1 >= max(CLOSED_FORM_FROM, WINDOW + 1) and _one_dimension(p)]
        if not growing:
            return self._assemble(ops, parts, stage_meta, launch)
        cols = columns([spec], list(self.peaks), list(self.classes))
        for p in growing:
            def probe(steps, p=p):
                return _probe(p.at(steps), len(p.growing), list(self.peaks), list(self.classes),
                              list(self.backends), stage_meta, launch, cols, terms)
            p.runs = closed_form_runs(probe, 1, p.n - 1)
        growing = [p for p in growing if p.runs is not None]
        table = self._assemble(ops, parts, stage_meta, launch)
        table.columns_of = (spec, cols)  # for the engine (its hardware_columns): computed once
        # the host model reads each iteration's kernel where the table has its runs' ends (`engine.host_excess`):
        # that holds where no other kernel merges with any of them in `compact`, else the block is written in full
        apart = [p for p in growing if not _runs_apart(table, p)]
        for p in apart:
            p.runs = None
        if apart:
            table = self._assemble(ops, parts, stage_meta, launch)
            table.columns_of = (spec, cols)
        return table

    def _assemble(self, ops: list, parts: list, stage_meta: list, launch: str) -> KernelTable:

        def column(c):
            return np.concatenate([piece for p in parts for piece in (p.column(c) if isinstance(p, _Steps)
                                                                      else (p[:, c],))])
        ints = [column(c).astype(np.int64) for c in range(7)]
        gemm = np.empty((sum(len(p) for p in parts), 4))
        for j in range(4):
            gemm[:, j] = column(9 + j)
        meta = np.array(stage_meta, dtype=np.float64).reshape(-1, 3)
        table = KernelTable(ops, *ints[:5], list(self.peaks), ints[5], list(self.classes), ints[6],
                            list(self.backends), column(7), column(8), gemm, column(13), column(14),
                            column(15), meta[:, 0], meta[:, 1], meta[:, 2].astype(bool), launch)
        # where the growing kernels' rows lie: (first row, end, kernels per iteration), for `row_groups`; and
        # those written at the ends of runs: (first row, kernels per iteration, iterations of each run), for the
        # host model. Plain attributes, not fields: `dataclasses.replace` (a multi-device rewrite) does not carry
        # them to a table whose rows it may have changed
        table.steps, table.runs, at = [], [], 0
        for p in parts:
            if isinstance(p, _Steps) and len(p.growing):
                if p.runs is None:
                    table.steps.append((at + len(p.first), at + len(p), len(p.growing)))
                else:
                    table.runs.append((at + len(p.first), len(p.growing), p.runs[1] - p.runs[0] + 1))
            at += len(p)
        return table


class _Steps:
    """An op's kernel rows at every iteration of its stage, affine in the iteration (`_affine_rows`): the first
    iteration's rows (with the kernels the same at every iteration, their runs summed), then the growing
    kernels at each later iteration t = 1 .. n-1, iteration by iteration; or, with `runs` (`closed_form_runs`:
    first and last iterations of runs over which every kernel's costs are affine in t), at the two ends of each
    run, each end with half the run's runs of the kernel (one row where the run is one iteration)."""

    def __init__(self, first: np.ndarray, growing: np.ndarray, slope: np.ndarray, n: int):
        self.first, self.growing, self.slope, self.n = first, growing, slope, n
        self.runs = None

    def at(self, steps: np.ndarray) -> np.ndarray:
        """The growing kernels' rows at iterations `steps`: [steps x kernels, 16], iteration by iteration."""
        return (self.growing[None, :, :] + steps[:, None, None] * self.slope[None, :, :]).reshape(-1, 16)

    def _ends(self):
        """(iteration, share of the run's runs) of each row set written for `runs`."""
        if getattr(self, "_written", (None,))[0] is self.runs:
            return self._written[1]
        start, end = self.runs
        two = end > start
        steps = np.repeat(start, 1 + two)
        steps[np.cumsum(1 + two)[two] - 1] = end[two]
        share = np.repeat(np.where(two, (end - start + 1) / 2.0, 1.0), 1 + two)
        self._written = (self.runs, (steps.astype(np.float64), share))
        return self._written[1]

    def __len__(self) -> int:
        written = self.n - 1 if self.runs is None else len(self.runs[0]) + int((self.runs[1] > self.runs[0]).sum())
        return len(self.first) + written * len(self.growing)

    def column(self, c: int) -> tuple:
        """Column `c` of every row, in order, as pieces to concatenate: at iteration t a growing kernel's value
        is base + t x slope."""
        g = self.growing[:, c]
        if not len(g):
            return (self.first[:, c],)
        if self.runs is not None:
            steps, share = self._ends()
            rest = g[None, :] + steps[:, None] * self.slope[None, :, c]
            return self.first[:, c], (rest * share[:, None] if c == COUNT else rest).ravel()
        if self.slope[:, c].any():
            steps = np.arange(1, self.n, dtype=np.float64)[:, None]
            rest = (g[None, :] + steps * self.slope[None, :, c]).ravel()
        else:
            rest = np.full(self.n - 1, g[0]) if len(g) == 1 else np.tile(g, self.n - 1)
        return self.first[:, c], rest


def lower(model: Model, stack: Stack, spec, per_iteration: bool = False, plan=None,
          closed_form: tuple | None = None) -> KernelTable:
    """The model's kernels as run by `stack` on the device described by `spec` (a HardwareSpec).

    An op that varies with its stage's iteration variable has kernels at every iteration: as arrays where they
    are affine in the iteration (`_affine_rows`), else (or with `per_iteration`) lowered one iteration at a time.
    With `closed_form` (the engine.Terms the table will be costed under, on `spec` itself), such kernels are
    written only at the ends of runs of iterations over which their costs are affine (`closed_form_runs`): sums
    over the table are the same, and one analysis no longer grows with the number of iterations. One device
    only (a multi-device plan rewrites the kernels after lowering: they are then written at every iteration).
    """
    check_device(model.precision, spec)  # fp4 only on a device with an fp4 rate
    st = stack.spec
    ops, out = [], KernelRows()
    stage_meta = []
    for si, stage in enumerate(model.stages):
        saved_read, saved_write = _fusions(stage, st.fusion) if st.fusion != "none" else ({}, {})
        stage_meta.append((stage.repeat, st.host.step_s, st.host.sync_per_step))
        for op in stage.ops:
            oid = len(ops)
            ops.append((si, op))

            def lower_at(rows, res, count, si=si, stage=stage, op=op, oid=oid):
                lower_op(rows, oid, si, op.kind, op.category, op.dtype, res, count, stack, spec, model.attention,
                         saved_read.get(op.index), saved_write.get(op.index),
                         _in_bytes(stage, op) if op.category == "conv" and op.inputs else 0, op.gemm_dtype)
            if not op.per_iteration:
                lower_at(out, op.result, op.count * stage.repeat)
                continue
            # a stage with an iteration variable run several times over, all its iterations each time (the tiles
            # of a tiled chunk-by-chunk video decode: graph.build_model multiplies its repeat by the tiles)
            runs = stage.repeat // len(op.per_iteration)
            lower_it = lower_at if runs == 1 else (
                lambda rows, res, count, lower_at=lower_at, runs=runs: lower_at(rows, res, count * runs))
            block = None if per_iteration else _affine_rows(out, op, lower_it)
            if block is not None:
                out.add_block(block)
                continue
            for res in op.per_iteration:
                lower_it(out, res, op.count)
    closed = (spec, tuple(closed_form)) if closed_form and (plan is None or plan.devices == 1) else None
    table = with_reuse(out.table(ops, stage_meta, st.launch, closed), model)
    if plan is None or plan.devices == 1:
        return table
    # a multi-device plan (parallel.Plan): one device's share of every kernel, plus the collectives
    from .parallel import rewrite
    return rewrite(table, model, plan, st.comm_overlap, stack=st)


# Iterations at which an op's kernel rows are read before they are taken as affine in the iteration: the first
# three and the last three (a threshold crossed between them, such as the stack's extra softmax pass over long
# rows, adds a positive amount to every later iteration, so it shows at the last ones) and evenly between (a
# kink or a curve, such as a product of two growing lengths, shows there). Shorter stages are lowered iteration
# by iteration, which costs as little. A term periodic in the step (a length rounded up to a tile) could match
# the samples and not the steps between: the op formulas that round (convolution and pooling windows, rows per
# expert) round spatial or token counts, which a KV cache does not grow, and the rounding of a cache length to
# tiles and split-KV is the engine's, which costs every step's row on its own.
AFFINE_SAMPLES = 10


def _affine_rows(out: KernelRows, op, lower_at) -> _Steps | None:
    """The kernel rows of `op` at every iteration of its stage, as an array, when they are affine in the
    iteration; None otherwise.

    Decode attention over a KV cache one entry longer per step has FLOPs, bytes and GEMM shape affine in the
    step, and everything the mapping decides (back-end, efficiency class, launches, host cost) the same at every
    step. The rows are lowered at the sampled iterations and must match base + step x slope there to 1e-12,
    with every column that is not a number of FLOPs, bytes or a GEMM dimension the same; each iteration's rows
    then follow in order, as `lower_op` would write them. A kernel the same at every iteration (the cache
    append) is written once with its runs summed, at the first iteration's place: `compact` would merge the
    copies there anyway, and sums over kernels do not depend on how runs are split into rows.
    """
    n = len(op.per_iteration)
    if n < 2 * AFFINE_SAMPLES:
        return None
    inner = AFFINE_SAMPLES - 6
    samples = sorted({0, 1, 2, n - 3, n - 2, n - 1} | {3 + (n - 6) * (i + 1) // (inner + 1) for i in range(inner)})
    marks = (len(out.peaks), len(out.classes), len(out.backends))
    blocks = []
    for t in samples:
        rows = KernelRows()
        rows.peaks, rows.classes, rows.backends = out.peaks, out.classes, out.backends
        lower_at(rows, op.per_iteration[t], op.count)
        blocks.append(np.array(rows.rows, dtype=np.float64).reshape(-1, 16))
    ok = all(b.shape == blocks[0].shape for b in blocks)
    if ok:
        blocks = np.stack(blocks)  # [samples, rows, columns]
        base, slope = blocks[0], blocks[1] - blocks[0]
        fixed = np.r_[0:7, 13:16]  # op, stage, category, unit, peak, class, back-end; launches, runs, host cost
        steps = np.array(samples, dtype=np.float64)[:, None, None]
        ok = not slope[:, fixed].any() and bool(
            (np.abs(blocks - (base + steps * slope)) <= 1e-12 * np.abs(blocks)).all())
    if not ok:  # forget what the samples added to the lookup lists: the iterations are lowered one by one
        for table, mark in zip((out.peaks, out.classes, out.backends), marks):
            for key in list(table)[mark:]:
                del table[key]
        return None
    constant = ~slope.any(axis=1)
    first = base.copy()
    first[constant, 14] *= n
    return _Steps(first, base[~constant], slope[~constant], n)


# Iterations `closed_form_runs` reads one by one at the start of a stage, to find the spacing of the changes in
# the engine's features (a cache length crossing a multiple of the attention key block, every 64 to 128 steps
# on the devices here); pieces a run that fails its check is cut into at each further round (each round is one
# evaluation of the engine)
WINDOW = 256
RUN_PIECES = 8
# Shortest spacing of the changes worth the closed form: shorter runs write nearly a row per iteration anyway
MIN_SPACING = 8
# Fewest iterations worth it: below this, finding the runs (two probes of the engine and their bookkeeping,
# ~1.2 ms) costs about what the rows it saves cost (bench/bench_autoregressive.py, llama2-7b on A100: 4,096
# output tokens 8.3 ms in closed form against 7.8 ms step by step; 8,192: 8.3 against 10.0)
CLOSED_FORM_FROM = 4096
# How far the middle of a run may sit off the line through its ends, relative to the ends: affine to rounding
AFFINE_TOLERANCE = 1e-12


def closed_form_runs(probe, first: int, last: int):
    """Runs (first and last iterations, arrays) covering iterations `first` .. `last` of a block of kernels
    whose every cost is affine in the iteration over each run, so that a run of m iterations costs exactly
    m x (cost at its first + cost at its last) / 2; None where that is not shown or would gain little.

    `probe(steps)` costs the block's kernels at those iterations (`_probe`): the engine's piecewise-constant
    features (tile, wave and split counts and choices), the compute time before the power cap, and the margin
    of each max() or comparison of the formulas (`engine.evaluate`). With one dimension x moving, monotonically,
    each feature is monotone in the iteration once those it depends on are fixed, so equal at both ends of a
    run it is the same throughout. With all of them fixed a kernel's compute time is C x FLOPs / x, C set by
    the features: the ratio of two affine functions of the iteration, affine everywhere if it is affine at
    three points of one run (then for every C). Each margin is then affine while the comparisons before it keep
    their side: a side the same at both ends of a run is the same throughout, and one that changes, changes
    once, where its margin is zero (the run is split there). Every other time is affine where no side changes.

    The first WINDOW iterations are read one by one: their runs, straight at every iteration, show the compute
    times affine, and the spacing of the last change of a feature there proposes the runs of the rest, each
    checked at its ends. A run that fails is split where a side changes or else cut into RUN_PIECES, and each
    piece checked again. Neighbouring pieces with the same features and sides join.
    """
    window = np.arange(first, min(first + WINDOW, last + 1))
    f, u, m = probe(window.astype(np.float64))
    key = np.concatenate([f, (m > 0).reshape(len(window), -1)], axis=1)
    change = np.flatnonzero((key[1:] != key[:-1]).any(axis=1)) + 1
    start = np.r_[0, change]
    end = np.r_[change, len(window)] - 1
    run = np.repeat(np.arange(len(start)), end - start + 1)
    line = u[start][run] + (u[end] - u[start])[run] * ((np.arange(len(window)) - start[run])
                                                      / np.maximum(end - start, 1)[run])[:, None]
    if not (end - start >= 2).any() or not _close(u, line, np.maximum(np.abs(u[start]), np.abs(u[end]))[run]).all():
        return None  # the compute times are not shown affine
    pieces = [(window[start], window[end], key[start])]
    if window[-1] < last:
        moved = np.flatnonzero((f[1:] != f[:-1]).any(axis=1)) + 1  # changes of a feature (not of a side)
        if len(moved) >= 2 and moved[-1] - moved[-2] < MIN_SPACING:
            return None
        edge = window[moved[-1]] if len(moved) else first
        step = int(moved[-1] - moved[-2]) if len(moved) >= 2 else last + 1 - edge
        # the runs from `edge` on are proposed (a window run reaching past it is cut there)
        keep = pieces[0][0] < edge
        pieces = [(pieces[0][0][keep], np.minimum(pieces[0][1][keep], edge - 1), pieces[0][2][keep])]
        lo = np.arange(edge, last + 1, step)
        pieces += _check_runs(probe, lo, np.r_[lo[1:] - 1, last])
    lo, hi = np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])
    feats = np.concatenate([p[2] for p in pieces])
    order = np.argsort(lo)
    lo, hi, feats = lo[order], hi[order], feats[order]
    new = np.ones(len(lo), dtype=bool)
    new[1:] = (feats[1:] != feats[:-1]).any(axis=1)
    return lo[new], hi[np.r_[np.flatnonzero(new)[1:] - 1, len(lo) - 1]]


def _close(v, line, scale):
    """Values on the line to rounding (NaN, a device without a power model, on NaN)."""
    return (np.abs(v - line) <= AFFINE_TOLERANCE * scale) | (np.isnan(v) & np.isnan(line))


def _check_runs(probe, lo, hi) -> list:
    """`closed_form_runs`'s check of runs lo .. hi at their ends, in rounds: a run whose features match but
    where a comparison changes side is split where the first such margin is zero; another that fails is cut
    into RUN_PIECES. Returns the pieces that pass: (first, last, features and sides)."""
    pieces = []
    while len(lo):
        f, _, m = probe(np.concatenate([lo, hi]).astype(np.float64))
        k = len(lo)
        s_lo, s_hi = m[:k] > 0, m[k:] > 0
        same = (f[:k] == f[k:]).all(axis=1)
        sides = (s_lo == s_hi).all(axis=(1, 2))
        ok = same & sides
        pieces.append((lo[ok], hi[ok], np.concatenate([f[:k], s_lo.reshape(k, -1)], axis=1)[ok]))
        if ok.all():
            break
        # the first comparison that changes side (per kernel and point) has an affine margin over the run:
        # split at its zero
        differ = s_lo != s_hi
        which = np.argmax(differ, axis=2)[..., None]
        has = differ.any(axis=2)
        m_lo = np.take_along_axis(m[:k], which, axis=2)[..., 0]
        m_hi = np.take_along_axis(m[k:], which, axis=2)[..., 0]
        zero = lo[:, None] + m_lo / np.where(has, m_lo - m_hi, 1.0) * (hi - lo)[:, None]
        at = np.floor(np.where(has, zero, np.inf)).min(axis=1)
        split = same & ~sides & np.isfinite(at)
        at = np.clip(np.where(split, at, lo), lo, hi - 1).astype(lo.dtype)
        cut_lo, cut_hi = lo[~ok & ~split], hi[~ok & ~split]  # at least two iterations each
        size = cut_hi - cut_lo + 1
        parts = np.minimum(RUN_PIECES, size)[:, None]
        edges = cut_lo[:, None] + size[:, None] * np.minimum(np.arange(RUN_PIECES + 1), parts) // parts
        keep = edges[:, 1:] > edges[:, :-1]
        lo = np.concatenate([edges[:, :-1][keep], lo[split], at[split] + 1])
        hi = np.concatenate([edges[:, 1:][keep] - 1, at[split], hi[split]])
    return pieces


def _one_dimension(p: _Steps) -> bool:
    """Whether each growing kernel of `p` moves in at most one GEMM dimension, at least 1 throughout (the
    engine clamps dimensions to 1): `closed_form_runs`'s premise."""
    moving = p.slope[:, 9:13] != 0
    if (moving.sum(axis=1) > 1).any():
        return False
    ends = np.stack([p.growing[:, 9:13] + p.slope[:, 9:13], p.growing[:, 9:13] + (p.n - 1) * p.slope[:, 9:13]])
    return bool((ends[:, moving] >= 1).all())


def _probe(rows: np.ndarray, per_step: int, peaks: list, effs: list, backends: list, stage_meta: list,
           launch: str, cols: dict, terms: tuple) -> tuple:
    """`closed_form_runs`'s probe of a block's kernel rows ([iterations x kernels, 16]), per iteration: the
    engine's features, compute times before the power cap, and margins ([iterations, kernels x points, margins])
    under each of `terms`, at the design point(s) of `cols`."""
    ints = rows[:, :7].astype(np.int64)
    meta = np.array(stage_meta, dtype=np.float64).reshape(-1, 3)
    table = KernelTable([], ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], ints[:, 4], peaks, ints[:, 5], effs,
                        ints[:, 6], backends, rows[:, 7], rows[:, 8], rows[:, 9:13], rows[:, 13], rows[:, COUNT],
                        rows[:, 15], meta[:, 0], meta[:, 1], meta[:, 2].astype(bool), launch)
    features, uncapped, margins = [], [], []
    for t in terms:
        out = evaluate(table, cols, t, bound=False, energy=False, features=features)
        uncapped.append(out["uncapped"])
        margins += out["margins"]
    steps = len(rows) // per_step
    shape = uncapped[0].shape  # [points, kernels]
    f = _stacked(features, shape, np.float64)
    f[np.isnan(f)] = -np.inf  # NaN compares unequal to itself: a feature the same NaN at both ends is the same
    u = np.stack(uncapped, axis=-1)
    m = _stacked(margins, shape, np.result_type(*margins))
    return (f.transpose(1, 0, 2).reshape(steps, -1), u.transpose(1, 0, 2).reshape(steps, -1),
            m.transpose(1, 0, 2).reshape(steps, -1, m.shape[-1]))


def _stacked(arrays: list, shape: tuple, dtype) -> np.ndarray:
    """The arrays, each broadcast to `shape`, side by side along a last axis (`np.stack` of their broadcasts,
    written in place: a probe stacks some forty of them, and a broadcast view each cost more than the copy)."""
    out = np.empty((*shape, len(arrays)), dtype=dtype)
    for i, x in enumerate(arrays):
        out[..., i] = x
    return out


def _runs_apart(table: KernelTable, p: _Steps) -> bool:
    """Whether each iteration's row of every growing kernel of `p` differs from every other row of `table` in
    the columns `compact` merges kernels on (the host model's, without re-reads): one of its moving columns
    lies outside the kernel's range of iterations 1 .. n-1, or one of its fixed columns differs."""
    cols = [table.stage, table.category, table.unit, table.peak, table.eff, table.backend, table.flops, table.bytes,
            *table.gemm.T, table.launches, table.host]
    layout = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]  # their places in a kernel row
    written = (len(p) - len(p.first)) // len(p.growing)
    for j in range(len(p.growing)):
        moving = [i for i, c in enumerate(layout) if p.slope[j, c] != 0]
        if not moving:
            return False
        c = layout[moving[0]]
        a, b = p.growing[j, c] + p.slope[j, c], p.growing[j, c] + (p.n - 1) * p.slope[j, c]
        x = cols[moving[0]]
        same = (x >= min(a, b)) & (x <= max(a, b))
        for i, col in enumerate(cols):
            if i not in moving:
                same &= col == p.growing[j, layout[i]]
        if int(same.sum()) != written:  # its own rows only
            return False
    return True


def lower_op(out: KernelRows, oid: int, si: int, kind: str, category: str, dtype: str, res, count: float,
             stack: Stack, spec, attention: str = "flash", saved_read: float | None = None,
             saved_write: float | None = None, in_bytes: int = 0, gemm_dtype: str | None = None) -> None:
    """The kernel rows of one op (an `OpResult`) run `count` times: back-end choice, fusion savings, reduction
    passes, layout transposes and host cost, as the stack runs it on the device. `gemm_dtype`: the type its
    matrix kernels run in where it differs from the op's tensors (quantised GEMM inputs, quantisation.py)."""
    st = stack.spec
    host = st.host
    cat = CATEGORIES.index(category)
    kernels, backend = res.kernels, None
    if res.variants:  # attention: the stack's back-end selector decides
        fused = res.variants["fused"][0]
        backend = attention_backend(stack, spec, dtype, int(fused.gemm[3]), attention, keys=int(fused.gemm[2]))
        kernels = res.variants[MATH if backend == MATH else "fused"]
    if not kernels:
        if host.view_s > 0:  # a view launches nothing but still costs the framework's dispatch
            out.add(oid, si, cat, "none", dtype, "none", None, 0.0, 0.0, (0, 0, 0, 0), 0, count, host.view_s)
        return
    # PyTorch runs fp32 convolutions on TF32 tensor cores unless told otherwise (torch.backends.cudnn.allow_tf32
    # defaults to True; matmuls default to full fp32): the stack says which
    rate_dtype = gemm_dtype or dtype
    if rate_dtype == "fp32" and category == "conv" and st.tf32_convs and "tf32" in spec.compute:
        rate_dtype = "tf32"
    if backend == MATH and st.fusion == "full" and len(kernels) == 3:
        # XLA-style fusion of the materialised attention: the softmax's normalisation is fused into the PV
        # matmul's operand (a producer fusion), so the probabilities are never written; the scores are written
        # once and read by the reduction and by the fused PV
        qk, sm, pv = kernels
        kernels = [qk, replace(sm, bytes=sm.bytes / 2.0), pv]
    folded = saved_read is not None
    classes = None
    chain = st.decompose.get(kind)
    if chain and not folded and len(kernels) == 1 and kernels[0].unit == "vector":
        kernels, classes = _framework_chain(kernels[0], chain, numel(res.outputs[0]), dtype)
    last = len(kernels) - 1
    while last > 0 and not kernels[last].launches:  # work inside the kernel before it (a weight-only GEMM's
        last -= 1                                   # dequantisation) writes nothing of the op's output
    for i, k in enumerate(kernels):
        nbytes, launches = k.bytes, k.launches
        if folded:
            nbytes, launches = nbytes - saved_read, 0
        if i == last and saved_write:
            nbytes -= saved_write
        if st.softmax and k.unit == "vector" and k.row > st.softmax.long_row and (
                kind == "softmax" or k.suffix == ".softmax"):
            nbytes += (st.softmax.reads - 1.0) * k.bytes / 2.0  # the input re-read; the output written once
        if folded or not k.launches:  # folded into its producer, or work inside another kernel of the op
            cost = 0.0
        elif i == 0:
            cost = host.op_s
        else:  # a further framework call from Python (dispatch + launch) or a further kernel of one call
            cost = host.view_s + host.kernel_s if classes else host.kernel_s
        unit = "attention" if k.fused_attention else k.unit
        klass = classes[i] if classes else kernel_class(k, category, backend, kind, rate_dtype)
        out.add(oid, si, cat, unit, rate_dtype if k.unit == "matrix" else dtype,
                klass, backend, k.flops, nbytes, k.gemm, launches, count, cost)
    if category == "conv" and st.conv_layout == "nchw" and spec.conv_layout == "nhwc":
        # the device's tensor-core convolutions are NHWC: an NCHW input is transposed in and the output
        # transposed back, each a read and a write of the tensor
        y_bytes = numel(res.outputs[0]) * BYTES[dtype]
        for nb in (in_bytes, y_bytes):
            out.add(oid, si, cat, "none", dtype, "none", "nchw<->nhwc", 0.0, 2.0 * nb, (0, 0, 0, 0), 1, count,
                    host.kernel_s)


def _framework_chain(k, chain, elements: int, dtype: str):
    """One vector kernel as the framework's chain of kernels (the stack's `decompose`): each reads and writes
    the op's elements in the dtypes it names (eager RMSNorm upcasts to fp32 and back). The op's FLOPs are
    spread over the chain; the row length goes to its reductions."""
    size = {"op": BYTES[dtype], "none": 0}
    kernels, classes = [], []
    for i, step in enumerate(chain):
        per = sum(size.get(d, BYTES.get(d, 0)) for d in step.read) + size.get(step.write, BYTES.get(step.write, 0))
        kernels.append(replace(k, suffix=f"{k.suffix}.{i}", flops=k.flops / len(chain), bytes=float(per * elements),
                               row=k.row if step.reduce else 0))
        classes.append("reduction" if step.reduce else "vector")
    return kernels, classes


def _in_bytes(stage, op) -> int:
    t = stage.tensors[op.inputs[0]]
    return numel(t.shape) * BYTES[t.dtype]


# Odd 64-bit multipliers, one per feature column, for `row_groups`'s hash (any fixed odd values serve: a
# collision only sends the rows to numpy's exact route)
_HASH = np.random.default_rng(2024).integers(0, 2**62, 64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def unique_rows(features: np.ndarray):
    """`np.unique(features, axis=0, return_index=True, return_inverse=True)` with the groups in order of first
    appearance instead of sorted (`row_groups`), taking numpy's row sort only where two different rows share a
    hash."""
    grouped = row_groups(list(features.T)) if features.shape[1] <= len(_HASH) else None
    if grouped is None:
        return np.unique(features, axis=0, return_index=True, return_inverse=True)
    first, inverse = grouped
    return features[first], first, inverse


def row_groups(columns: list, steps=()):
    """Rows equal in every one of `columns` (1-D arrays of one length), grouped in order of first appearance:
    (first, inverse), `first[g]` the index of group g's first row and `inverse[r]` the group of row r; None
    when two different rows share a hash (the caller then takes numpy's row sort).

    A 64-bit hash of each row, taken column by column (no [rows, columns] array) and sorted, instead of numpy's
    sort of whole rows, and without the stable sort `np.unique` uses to find first rows: a group's first row is
    its least index. Equal rows hash equal, so a row alone with its hash is distinct; rows sharing one are
    checked equal to their group's first. A long decode (a kernel per step) made the row sort the slowest part
    of a run. `steps` (a
    table's `steps`: row ranges of kernels growing with the iteration) are left out of the hash where
    `_growing_rows_distinct` shows each of their rows alone in its group."""
    n = len(columns[0]) if columns else 0
    if steps and n:
        inside = np.zeros(n, dtype=bool)
        for start, stop, _ in steps:
            inside[start:stop] = True
        outside = np.flatnonzero(~inside)
        if _growing_rows_distinct(columns, steps, outside):
            grouped = row_groups([c[outside] for c in columns])
            if grouped is None:
                return None
            first, inverse = grouped
            is_first = inside.copy()
            is_first[outside[first]] = True
            place = np.cumsum(is_first) - 1
            out = np.empty(n, dtype=np.int64)
            out[inside] = place[inside]
            out[outside] = place[outside[first]][inverse]
            return np.flatnonzero(is_first), out
    key, term = np.zeros(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    for c, multiplier in zip(columns, _HASH):
        c = c + 0.0 if c.dtype.kind == "f" else np.ascontiguousarray(c, dtype=np.int64)  # -0.0 is 0.0
        key += np.multiply(c.view(np.uint64), multiplier, out=term)  # modulo 2^64
    order = np.argsort(key)
    ranked = key[order]
    new = np.ones(n, dtype=bool)
    np.not_equal(ranked[1:], ranked[:-1], out=new[1:])
    if new.all():  # every hash distinct, so every row
        return np.arange(n), np.arange(n)
    first = np.minimum.reduceat(order, np.flatnonzero(new))  # of each hash, in hash order
    is_first = np.zeros(n, dtype=bool)
    is_first[first] = True
    place = np.cumsum(is_first) - 1  # a first row's place in order of appearance
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = place[first][np.cumsum(new) - 1]
    first = np.flatnonzero(is_first)
    shared = np.flatnonzero(np.bincount(inverse)[inverse] > 1)
    if all((c[shared] == c[first[inverse[shared]]]).all() for c in columns):
        return first, inverse
    return None


def _growing_rows_distinct(columns: list, steps, outside: np.ndarray) -> bool:
    """Whether every row in `steps` ((first row, end, kernels per iteration) ranges) differs from every other
    row of the table, shown from the columns without hashing them: each growing kernel's rows (every
    `period`-th row of its range) change monotonically in some column, so they differ from one another;
    another row differs from them where it differs in a column that is the same in all of them, or lies
    outside their range in the growing column. Two growing kernels must differ in a column the same in both.
    False where that is not shown (the rows are then hashed)."""
    kernels = []  # (fixed column indices, their values, growing column, lowest, highest)
    for start, stop, period in steps:
        for j in range(period):
            rows = slice(start + j, stop, period)
            if stop - start < 2 * period:
                return False
            a, b = start + j, start + j + period
            moving = [i for i, c in enumerate(columns) if c[a] != c[b]]
            if not moving:
                return False
            g = columns[moving[0]][rows]
            step = np.diff(g)
            if not ((step > 0).all() or (step < 0).all()):
                return False
            fixed = [i for i in range(len(columns)) if i not in moving]
            kernels.append((fixed, [columns[i][a] for i in fixed], moving[0], min(g[0], g[-1]), max(g[0], g[-1])))
    for k, (fixed, values, grow, low, high) in enumerate(kernels):
        same = np.ones(len(outside), dtype=bool)
        for i, v in zip(fixed, values):
            same &= columns[i][outside] == v
        x = columns[grow][outside[same]]
        if ((x >= low) & (x <= high)).any():
            return False
        for fixed2, values2, *_ in kernels[k + 1:]:
            both = dict(zip(fixed2, values2))
            if not any(i in both and both[i] != v for i, v in zip(fixed, values)):
                return False
    return True


def compact(table: KernelTable, rows: bool = False, reuse: bool = True, groups: bool = False):
    """Merge kernels that are identical in cost and grouping (stage, category), summing their counts, in the
    order of their first appearance (the host model reads the order).

    A UNet repeats the same layer shapes many times; a sweep evaluates each distinct kernel once. The op
    mapping is dropped (op = -1): per-op results need the full table. With `rows`, also the index in `table` of
    each distinct kernel's first run (its times are that row's times). Without `reuse` the liveness walk's
    re-reads are dropped, so kernels that differ only in them merge (a sweep that keeps the file's L2 needs
    none: the L2 term is then zero). With `groups` (and `rows`), also the distinct kernel each row of `table`
    merged into.
    """
    reuse = reuse and table.reread is not None
    columns = [table.stage, table.category, table.unit, table.peak, table.eff, table.backend, table.flops,
               table.bytes, *table.gemm.T, table.launches, table.host,
               *((*table.reread.T, *table.reuse.T) if reuse else ())]
    grouped = row_groups(columns, getattr(table, "steps", ()))
    if grouped is None:  # different rows sharing a hash: numpy's row sort
        _, first, inverse = np.unique(np.column_stack(columns), axis=0, return_index=True, return_inverse=True)
        appearance = np.argsort(first, kind="stable")
        place = np.empty(len(first), dtype=np.int64)
        place[appearance] = np.arange(len(first))
        first, inverse = first[appearance], place[inverse.ravel()]
    else:
        first, inverse = grouped
    count = np.bincount(inverse, weights=table.count, minlength=len(first))
    out = KernelTable([], np.full(len(first), -1), table.stage[first], table.category[first], table.unit[first],
                      table.peak[first], table.peaks, table.eff[first], table.effs, table.backend[first],
                      table.backends, table.flops[first], table.bytes[first], np.take(table.gemm, first, axis=0),
                      table.launches[first], count, table.host[first], table.stage_repeat, table.stage_step_s,
                      table.stage_sync, table.launch, comm_overlap=table.comm_overlap, sharding=table.sharding)
    if reuse:  # part of the features: merged kernels share them
        out.reread, out.reuse = np.take(table.reread, first, axis=0), np.take(table.reuse, first, axis=0)
    if getattr(table, "runs", None):
        out.runs = _runs_in(table.runs, first, inverse)
    if rows and groups:
        return out, first, inverse
    return (out, first) if rows else out


def _runs_in(runs: list, first: np.ndarray, inverse: np.ndarray) -> list:
    """A table's `runs` (first row, kernels per iteration, iterations of each run) in its `compact` form: the
    rows of runs are alone in their groups (`KernelRows.table` writes them so), so they keep their order."""
    alone = np.bincount(inverse, minlength=len(first)) == 1
    out = []
    for start, g, m in runs:
        n = g * int(len(m) + (m > 1).sum())
        at = inverse[start:start + n]
        if not (alone[at].all() and (at == at[0] + np.arange(n)).all()):
            raise RuntimeError("a run's kernels merged with another kernel (mapping._runs_apart should prevent it)")
        out.append((int(at[0]), g, m))
    return out


# Re-read slots per kernel: an op reading more distinct earlier tensors than this has the rest merged into the
# last slot at the largest reuse distance (attention's q, k and v are the most any op reads)
REUSE_SLOTS = 3


def with_reuse(table: KernelTable, model: Model) -> KernelTable:
    """The table with its liveness walk: per kernel, the bytes its op re-reads of tensors an earlier op of the
    stage touched, and for each the bytes touched since that last use (the tensor itself included).

    A re-read is resident in an L2 that holds its reuse distance (the engine's `l2_correction`). The walk is over
    one instance of each op in program order; the re-reads go to the op's first kernel (the one that reads the
    inputs) and never exceed its bytes. An op folded into its producer reads nothing from memory; ops lowered per
    iteration and reuse across a stage's repeats are left out (no residency: the conservative side).
    """
    # each op's rows are contiguous and in op order (`lower` writes them so): its first row and the end of them
    ids = np.arange(len(table.ops))
    starts, ends = np.searchsorted(table.op, ids, "left").tolist(), np.searchsorted(table.op, ids, "right").tolist()
    reread = np.zeros((len(table), REUSE_SLOTS))
    reuse = np.full((len(table), REUSE_SLOTS), np.inf)
    # an op's first row read as Python numbers (one numpy scalar per read cost more than the walk's arithmetic)
    first_bytes = table.bytes[np.minimum(starts, len(table) - 1)].tolist() if len(table) else []
    first_launches = table.launches[np.minimum(starts, len(table) - 1)].tolist() if len(table) else []
    touched, last, stage_of = 0.0, {}, None
    for oid, (si, op) in enumerate(table.ops):
        if si != stage_of:
            touched, last, stage_of = 0.0, {}, si
        stage, rows = model.stages[si], range(starts[oid], ends[oid])
        names = list(dict.fromkeys(stage.tensors[t].storage for t in op.inputs))
        sizes = {n: numel(stage.tensors[n].shape) * BYTES[stage.tensors[n].dtype] for n in names}
        if rows and not op.per_iteration and first_launches[oid] > 0:
            reads = sorted((touched - last[n] + sizes[n], sizes[n]) for n in names if n in last)
            if len(reads) > REUSE_SLOTS:
                reads = reads[:REUSE_SLOTS - 1] + [(reads[-1][0], sum(b for _, b in reads[REUSE_SLOTS - 1:]))]
            room = first_bytes[oid]
            for j, (distance, nbytes) in enumerate(reads):
                reread[rows[0], j] = min(nbytes, room)
                reuse[rows[0], j] = distance
                room -= reread[rows[0], j]
        if not op.per_iteration and rows:  # (numpy's sum of one row is that row)
            touched += first_bytes[oid] if len(rows) == 1 else float(table.bytes[rows.start:rows.stop].sum())
        for t in (*op.inputs, *op.outputs):
            last[stage.tensors[t].storage] = touched
    table.reread, table.reuse = reread, reuse
    return table
