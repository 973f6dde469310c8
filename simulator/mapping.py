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
    op's dtype and head dim and that the device runs; `math` (the materialised score matrix) otherwise."""
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
        if rule.name in available:
            return rule.name
    return MATH


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

    def add(self, oid, si, cat, k_unit, dtype, klass, backend, flops, nbytes, gemm, launches, count, host):
        rate_unit = "vector" if k_unit == "none" else ("matrix" if k_unit == "attention" else k_unit)
        p = self.peaks.setdefault((rate_unit, dtype), len(self.peaks))
        e = self.classes.setdefault(klass, len(self.classes))
        b = self.backends.setdefault(backend or "", len(self.backends))
        self.rows.append((oid, si, cat, UNITS.index(k_unit), p, e, b, flops, max(nbytes, 0.0), *gemm, launches,
                          count, host))


def lower(model: Model, stack: Stack, spec) -> KernelTable:
    """The model's kernels as run by `stack` on the device described by `spec` (a HardwareSpec)."""
    st = stack.spec
    ops, out = [], KernelRows()
    stage_meta = []
    for si, stage in enumerate(model.stages):
        saved_read, saved_write = _fusions(stage, st.fusion) if st.fusion != "none" else ({}, {})
        stage_meta.append((stage.repeat, st.host.step_s, st.host.sync_per_step))
        for op in stage.ops:
            oid = len(ops)
            ops.append((si, op))
            runs = ([(res, op.count) for res in op.per_iteration] if op.per_iteration
                    else [(op.result, op.count * stage.repeat)])
            for res, count in runs:
                lower_op(out, oid, si, op.kind, op.category, op.dtype, res, count, stack, spec, model.attention,
                         saved_read.get(op.index), saved_write.get(op.index),
                         _in_bytes(stage, op) if op.category == "conv" and op.inputs else 0)
    return KernelTable.from_rows(ops, out.rows, out.peaks, out.classes, out.backends, stage_meta, st.launch)


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
    last = len(kernels) - 1
    folded = saved_read is not None
    for i, k in enumerate(kernels):
        nbytes, launches = k.bytes, k.launches
        if folded:
            nbytes, launches = nbytes - saved_read, 0
        if i == last and saved_write:
            nbytes -= saved_write
        if st.softmax and k.unit == "vector" and k.row > st.softmax.long_row and (
                kind == "softmax" or k.suffix == ".softmax"):
            nbytes += (st.softmax.reads - 1.0) * k.bytes / 2.0  # the input re-read; the output written once
        cost = 0.0 if folded else (host.op_s if i == 0 else host.kernel_s)
        unit = "attention" if k.fused_attention else k.unit
        out.add(oid, si, cat, unit, rate_dtype if k.unit == "matrix" else dtype,
                kernel_class(k, category, backend, kind, rate_dtype), backend, k.flops, nbytes, k.gemm, launches, count, cost)
    if category == "conv" and st.conv_layout == "nchw" and spec.conv_layout == "nhwc":
        # the device's tensor-core convolutions are NHWC: an NCHW input is transposed in and the output
        # transposed back, each a read and a write of the tensor
        y_bytes = numel(res.outputs[0]) * BYTES[dtype]
        for nb in (in_bytes, y_bytes):
            out.add(oid, si, cat, "none", dtype, "none", "nchw<->nhwc", 0.0, 2.0 * nb, (0, 0, 0, 0), 1, count,
                    host.kernel_s)


def _in_bytes(stage, op) -> int:
    t = stage.tensors[op.inputs[0]]
    return numel(t.shape) * BYTES[t.dtype]


def compact(table: KernelTable, rows: bool = False):
    """Merge kernels that are identical in cost and grouping (stage, category), summing their counts, in the
    order of their first appearance (the host model reads the order).

    A UNet repeats the same layer shapes many times; a sweep evaluates each distinct kernel once. The op
    mapping is dropped (op = -1): per-op results need the full table. With `rows`, also the index in `table` of
    each distinct kernel's first run (its times are that row's times).
    """
    features = np.column_stack([table.stage, table.category, table.unit, table.peak, table.eff, table.backend,
                                table.flops, table.bytes, table.gemm, table.launches, table.host])
    distinct, first, inverse = np.unique(features, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    count = np.bincount(inverse, weights=table.count, minlength=len(distinct))
    order = np.argsort(first, kind="stable")
    distinct, count = distinct[order], count[order]
    ints = distinct[:, :6].astype(np.int64)
    out = KernelTable([], np.full(len(distinct), -1), ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3],
                       table.peaks, ints[:, 4], table.effs, ints[:, 5], table.backends, distinct[:, 6],
                       distinct[:, 7], distinct[:, 8:12], distinct[:, 12], count, distinct[:, 13],
                       table.stage_repeat, table.stage_step_s, table.stage_sync, table.launch)
    return (out, first[order]) if rows else out
