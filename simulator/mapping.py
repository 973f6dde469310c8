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
from .engine import KernelTable
from .graph import Model
from .ops import CATEGORIES, UNITS, numel
from .quantisation import check_device
from .stacks import Stack

MATH = "math"


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
    listed = dict(spec.efficiency.attention_backends or {})
    if not listed and spec.efficiency.attention is not None:
        listed = {"flash": spec.efficiency.attention}
    return listed


def attention_backend(stack: Stack, spec, dtype: str, head_dim: int, requested: str) -> str:
    """The back-end the stack's selector picks for one attention op: the first of its rules that accepts the
    op's dtype and head dim and that the device runs and whose smallest blocks fit the SRAM per core; `math`
    (the materialised score matrix) otherwise."""
    if requested == MATH:
        return MATH
    if requested != "flash":  # a back-end named explicitly (a kernel measurement of that back-end)
        return requested
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


def flash_fits(spec, head_dim: int) -> bool:
    """Whether fused attention's smallest blocks (one MMA instruction's rows of queries, keys and values) fit the
    SRAM per core, in the engine's footprint model and relative to the file's own SRAM (`engine.sram_scale`)."""
    from .engine import OPERAND_BYTES
    tile, mt = spec.attention_tile, spec.matrix_tile
    q, k, multiple = (tile.q, tile.k, tile.head_dim_multiple) if tile else (mt.m, mt.n, mt.k)
    small = (spec.min_tile or mt).m
    d = -(-head_dim // multiple) * multiple
    need = (q + 2 * k) * d * OPERAND_BYTES
    budget = spec.on_chip.sram_per_core_bytes * max(1.0, need / max(spec.reference("sram"), 1.0))
    return 3 * small * d * OPERAND_BYTES <= budget


def kernel_class(k, category: str, backend: str | None, kind: str = "", dtype: str = "") -> str:
    """The efficiency class a kernel is costed with: each has its own achievable fraction in the hardware file.
    Row reductions (norms, softmax) are their own class: one block per row, a reduction before the output can
    be written, and (for group norm) a statistics pass keep them further from peak bandwidth than elementwise
    kernels."""
    if k.fused_attention:
        return f"attention:{backend}"
    if k.unit == "matrix":
        return f"{'conv' if category == 'conv' else 'matrix'}:{dtype}"
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

    def add_block(self, rows: np.ndarray) -> None:
        if self.rows:
            self.blocks.append(np.array(self.rows, dtype=np.float64).reshape(-1, 16))
            self.rows = []
        self.blocks.append(rows)

    def all_rows(self):
        """Every row in the order added: the list, or one array where blocks were added."""
        if not self.blocks:
            return self.rows
        return np.concatenate(self.blocks + [np.array(self.rows, dtype=np.float64).reshape(-1, 16)])


def lower(model: Model, stack: Stack, spec, per_iteration: bool = False, plan=None) -> KernelTable:
    """The model's kernels as run by `stack` on the device described by `spec` (a HardwareSpec).

    An op that varies with its stage's iteration variable has kernels at every iteration: as arrays where they
    are affine in the iteration (`_affine_rows`), else (or with `per_iteration`) lowered one iteration at a time.
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
                         _in_bytes(stage, op) if op.category == "conv" and op.inputs else 0)
            if not op.per_iteration:
                lower_at(out, op.result, op.count * stage.repeat)
                continue
            block = None if per_iteration else _affine_rows(out, op, lower_at)
            if block is not None:
                out.add_block(block)
                continue
            for res in op.per_iteration:
                lower_at(out, res, op.count)
    table = with_reuse(KernelTable.from_rows(ops, out.all_rows(), out.peaks, out.classes, out.backends, stage_meta,
                                             st.launch), model)
    if plan is None or plan.devices == 1:
        return table
    # a multi-device plan (parallel.Plan): one device's share of every kernel, plus the collectives
    from .parallel import rewrite
    return rewrite(table, model, plan, st.comm_overlap)


# Iterations at which an op's kernel rows are read before they are taken as affine in the iteration: the first
# three and the last three (a threshold crossed between them, such as the stack's extra softmax pass over long
# rows, adds a positive amount to every later iteration, so it shows at the last ones) and evenly between (a
# kink or a curve, such as a product of two growing lengths, shows there). Shorter stages are lowered iteration
# by iteration, which costs as little. A term periodic in the step (a length rounded up to a tile) could match
# the samples and not the steps between: the op formulas that round (convolution and pooling windows, rows per
# expert) round spatial or token counts, which a KV cache does not grow, and the rounding of a cache length to
# tiles and split-KV is the engine's, which costs every step's row on its own.
AFFINE_SAMPLES = 10


def _affine_rows(out: KernelRows, op, lower_at) -> np.ndarray | None:
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
    growing = base[~constant]
    rest = np.empty((n - 1, len(growing), 16))
    rest[:] = growing
    steps = np.arange(1, n, dtype=np.float64)[:, None]
    for c in np.flatnonzero(slope.any(axis=0)):  # FLOPs, bytes and GEMM dimensions that grow
        rest[:, :, c] += steps * slope[~constant, c]
    return np.concatenate([first, rest.reshape(-1, 16)])


def lower_op(out: KernelRows, oid: int, si: int, kind: str, category: str, dtype: str, res, count: float,
             stack: Stack, spec, attention: str = "flash", saved_read: float | None = None,
             saved_write: float | None = None, in_bytes: int = 0) -> None:
    """The kernel rows of one op (an `OpResult`) run `count` times: back-end choice, fusion savings, reduction
    passes, layout transposes and host cost, as the stack runs it on the device."""
    st = stack.spec
    host = st.host
    cat = CATEGORIES.index(category)
    kernels, backend = res.kernels, None
    if res.variants:  # attention: the stack's back-end selector decides
        fused = res.variants["fused"][0]
        backend = attention_backend(stack, spec, dtype, int(fused.gemm[3]), attention)
        kernels = res.variants[MATH if backend == MATH else "fused"]
    if not kernels:
        if host.view_s > 0:  # a view launches nothing but still costs the framework's dispatch
            out.add(oid, si, cat, "none", dtype, "none", None, 0.0, 0.0, (0, 0, 0, 0), 0, count, host.view_s)
        return
    # PyTorch runs fp32 convolutions on TF32 tensor cores unless told otherwise (torch.backends.cudnn.allow_tf32
    # defaults to True; matmuls default to full fp32): the stack says which
    rate_dtype = dtype
    if dtype == "fp32" and category == "conv" and st.tf32_convs and "tf32" in spec.compute:
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


# Odd 64-bit multipliers, one per feature column, for `unique_rows`'s hash (any fixed odd values serve: a
# collision only sends the rows to numpy's exact route)
_HASH = np.random.default_rng(2024).integers(0, 2**62, 64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def unique_rows(features: np.ndarray):
    """`np.unique(features, axis=0, return_index=True, return_inverse=True)` with the groups in the order of a
    64-bit hash of each row, not of the rows themselves: a sort of one column instead of whole rows, which a
    long decode (a kernel per step) makes the slowest part of a run. Equal rows hash equal, so a row alone with
    its hash is distinct; rows sharing one are checked equal to their group's first, and a collision takes
    numpy's row sort."""
    if features.shape[1] > len(_HASH):
        return np.unique(features, axis=0, return_index=True, return_inverse=True)
    bits = np.ascontiguousarray(features + 0.0).view(np.uint64)  # + 0.0: -0.0 and 0.0 are the same value
    key = (bits * _HASH[:bits.shape[1]]).sum(axis=1)  # modulo 2^64
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    distinct = features[first]
    shared = np.bincount(inverse)[inverse] > 1
    if (distinct[inverse[shared]] == features[shared]).all():
        return distinct, first, inverse
    return np.unique(features, axis=0, return_index=True, return_inverse=True)


def compact(table: KernelTable, rows: bool = False, reuse: bool = True):
    """Merge kernels that are identical in cost and grouping (stage, category), summing their counts, in the
    order of their first appearance (the host model reads the order).

    A UNet repeats the same layer shapes many times; a sweep evaluates each distinct kernel once. The op
    mapping is dropped (op = -1): per-op results need the full table. With `rows`, also the index in `table` of
    each distinct kernel's first run (its times are that row's times). Without `reuse` the liveness walk's
    re-reads are dropped, so kernels that differ only in them merge (a sweep that keeps the file's L2 needs
    none: the L2 term is then zero).
    """
    reuse = reuse and table.reread is not None
    features = np.column_stack([table.stage, table.category, table.unit, table.peak, table.eff, table.backend,
                                table.flops, table.bytes, table.gemm, table.launches, table.host,
                                *((table.reread, table.reuse) if reuse else ())])
    distinct, first, inverse = unique_rows(features)
    inverse = inverse.ravel()
    count = np.bincount(inverse, weights=table.count, minlength=len(distinct))
    order = np.argsort(first, kind="stable")
    distinct, count = distinct[order], count[order]
    ints = distinct[:, :6].astype(np.int64)
    out = KernelTable([], np.full(len(distinct), -1), ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3],
                       table.peaks, ints[:, 4], table.effs, ints[:, 5], table.backends, distinct[:, 6],
                       distinct[:, 7], distinct[:, 8:12], distinct[:, 12], count, distinct[:, 13],
                       table.stage_repeat, table.stage_step_s, table.stage_sync, table.launch,
                       comm_overlap=table.comm_overlap, sharding=table.sharding)
    if reuse:  # part of the features: merged kernels share them
        out.reread, out.reuse = table.reread[first[order]], table.reuse[first[order]]
    return (out, first[order]) if rows else out


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
    rows_of = {}
    for r, oid in enumerate(table.op):
        rows_of.setdefault(int(oid), []).append(r)
    reread = np.zeros((len(table), REUSE_SLOTS))
    reuse = np.full((len(table), REUSE_SLOTS), np.inf)
    touched, last, stage_of = 0.0, {}, None
    for oid, (si, op) in enumerate(table.ops):
        if si != stage_of:
            touched, last, stage_of = 0.0, {}, si
        stage, rows = model.stages[si], rows_of.get(oid, [])
        names = list(dict.fromkeys(stage.tensors[t].storage for t in op.inputs))
        sizes = {n: numel(stage.tensors[n].shape) * BYTES[stage.tensors[n].dtype] for n in names}
        if rows and not op.per_iteration and table.launches[rows[0]] > 0:
            reads = sorted((touched - last[n] + sizes[n], sizes[n]) for n in names if n in last)
            if len(reads) > REUSE_SLOTS:
                reads = reads[:REUSE_SLOTS - 1] + [(reads[-1][0], sum(b for _, b in reads[REUSE_SLOTS - 1:]))]
            room = table.bytes[rows[0]]
            for j, (distance, nbytes) in enumerate(reads):
                reread[rows[0], j] = min(nbytes, room)
                reuse[rows[0], j] = distance
                room -= reread[rows[0], j]
        if not op.per_iteration:
            touched += float(table.bytes[rows].sum()) if rows else 0.0
        for t in (*op.inputs, *op.outputs):
            last[stage.tensors[t].storage] = touched
    table.reread, table.reuse = reread, reuse
    return table
