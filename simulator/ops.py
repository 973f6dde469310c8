"""Operator formulas: one small function per op kind, registered in `OPS` by kind name.

Each function receives an `OpCall` (input shapes, evaluated attributes, dtype, options) and returns an
`OpResult`: output shapes, the kernels the op runs (FLOPs, bytes moved, GEMM shape for the matrix unit), the
parameters it owns, and any transient workspace. Conventions:
- 1 multiply-add = 2 FLOPs; matrix-unit FLOPs follow torch.utils.flop_counter so totals compare with it.
- Bytes are what an ideal kernel reads and writes in device memory: every input once, every output once, weights
  once per call (no reuse across calls: a weight read by 50 denoising steps is read 50 times).
- Vector-op FLOP counts per element are small estimates (documented at each op); those ops are bandwidth-bound.
Unknown kinds are an error, never a silent zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .dtypes import BYTES
from .quantisation import DEQUANT, dequant_flops

CATEGORIES = ("conv", "linear", "attention", "norm", "elementwise", "other")
UNITS = ("none", "matrix", "vector", "attention", "comm")  # attention: a fused attention kernel on the matrix unit;
# comm: a collective between devices, added by the mapping layer for multi-device plans (parallel.py)
COMM = "comm"  # the category of collectives: after CATEGORIES in groupings, present only when a plan adds them
REQUIRED = object()


class OpError(ValueError):
    """A shape or attribute problem; `field` names the attribute (or 'in') so the caller can locate it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Attr:
    kind: str  # int | number | bool | ints | str | exprs
    default: object = REQUIRED
    choices: tuple = ()


@dataclass
class Kernel:
    """One device kernel. `gemm` = (batch, m, n, k) when it runs on the matrix unit, for tile/wave quantisation;
    for a fused attention kernel (`fused_attention`) it is (batch x heads, query length, key length, head dim)."""
    suffix: str
    unit: str
    flops: float
    bytes: float
    gemm: tuple = (0, 0, 0, 0)
    launches: int = 1
    fused_attention: bool = False
    row: int = 0  # length of the row a reduction (softmax, norm) reduces over: long rows may take extra passes


@dataclass
class OpCall:
    name: str
    kind: str
    shapes: list            # input shapes (tuples of ints)
    in_dtypes: list
    attrs: dict             # evaluated attributes
    dtype: str              # output / compute dtype
    attention: str = "flash"
    weight_dtype: str | None = None  # stored weights of a `precision="weight"` op (quantisation.py); None: dtype
    gemm_dtype: str | None = None    # the type its GEMM runs in where activations are quantised; None: dtype

    def nbytes(self, shape, dtype=None) -> int:
        return numel(shape) * BYTES[dtype or self.dtype]

    def in_bytes(self, i: int) -> int:
        return numel(self.shapes[i]) * BYTES[self.in_dtypes[i]]

    @property
    def dbytes(self) -> int:
        return BYTES[self.dtype]

    @property
    def wbytes(self) -> float:
        """Bytes per stored weight element (half a byte for 4-bit weights)."""
        return BYTES[self.weight_dtype or self.dtype]

    def dequant(self, gemm: tuple) -> list:
        """The vector work of dequantising a weight-only GEMM's weights inside its main loop (quantisation.py):
        no launch and no bytes of its own; nothing when the weights are stored in the compute dtype."""
        flops = dequant_flops(self.weight_dtype or self.dtype, self.gemm_dtype or self.dtype, gemm)
        return [Kernel(DEQUANT, "vector", flops, 0.0, launches=0)] if flops else []


@dataclass
class OpResult:
    outputs: list                       # output shapes
    kernels: list = field(default_factory=list)
    params: int = 0                     # learned parameters owned by the op
    workspace: int = 0                  # transient bytes live only while the op runs
    state: int = 0                      # persistent bytes (KV cache) after the op
    state_tokens: int = 0               # positions the persistent state holds (a KV cache's length)
    held: int = 0                       # bytes kept across the iterations of its stage (a causal conv's cache)
    # other ways to run the same op, by name (attention: "fused" and "math"); the mapping layer picks one
    variants: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OpDef:
    kind: str
    category: str
    fn: Callable
    attrs: dict
    inputs: tuple      # (min, max) number of inputs; max None = any
    precision: str | None = None  # what the op stores, for quantisation.py: "weight" (weights) or "kv" (KV cache)


OPS: dict[str, OpDef] = {}


def op(*kinds, category: str, inputs=(1, 1), precision: str | None = None, **attrs):
    """Register `fn` for each kind. An op that runs no kernel and has inputs is a view of its first input.
    `precision` names what it stores ("weight" or "kv"), whose dtype the quantisation options set."""
    def register(fn):
        for kind in kinds:
            OPS[kind] = OpDef(kind, category, fn, attrs, inputs, precision)
        return fn
    return register


def numel(shape) -> int:
    return math.prod(shape)


def _axis(axis: int, rank: int) -> int:
    """A Python-style axis (negative counts from the end) as an index; out of range is an error, not a wrap."""
    if not -rank <= axis < rank:
        raise OpError(f"axis {axis} is out of range for a tensor of rank {rank}", "axis")
    return axis % rank


def _vector(suffix, flops, nbytes, launches=1, row=0):
    return Kernel(suffix, "vector", float(flops), float(nbytes), launches=launches, row=int(row))


def _copy(suffix, nbytes):
    return Kernel(suffix, "none", 0.0, float(nbytes))


def _gemm(suffix, b, m, n, k, nbytes, flops=None):
    flops = 2.0 * b * m * n * k if flops is None else flops
    return Kernel(suffix, "matrix", float(flops), float(nbytes), (b, m, n, k))


def _tuple(value, n, what):
    if isinstance(value, int):
        return (value,) * n
    if len(value) != n:
        raise OpError(f"expected {n} values for {what}, got {len(value)}", what)
    return tuple(value)


def _broadcast(shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise OpError(f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast", "in")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


# ---------------------------------------------------------------------------------------------- matrix unit

@op("linear", category="linear", precision="weight", out_features=Attr("int"), in_features=Attr("int", None),
    bias=Attr("bool", True))
def linear(c: OpCall) -> OpResult:
    x = c.shapes[0]
    k, n = x[-1], c.attrs["out_features"]
    if c.attrs["in_features"] is not None and c.attrs["in_features"] != k:
        raise OpError(f"input has {k} features but in_features is {c.attrs['in_features']}", "in_features")
    m = numel(x[:-1])
    out = x[:-1] + (n,)
    params = k * n + (n if c.attrs["bias"] else 0)
    nbytes = c.in_bytes(0) + params * c.wbytes + c.nbytes(out)
    return OpResult([out], [_gemm("", 1, m, n, k, nbytes)] + c.dequant((1, m, n, k)), params=params)


@op("matmul", category="linear", inputs=(2, 2), transpose_b=Attr("bool", False))
def matmul(c: OpCall) -> OpResult:
    a, b = c.shapes
    if len(a) < 2 or len(b) < 2:
        raise OpError("matmul needs inputs of rank 2 or more", "in")
    m, k = a[-2:]
    n, kb = (b[-2], b[-1]) if c.attrs["transpose_b"] else (b[-1], b[-2])
    if k != kb:
        raise OpError(f"inner dimensions differ: {list(a)} @ {list(b)}", "in")
    batch = _broadcast([a[:-2], b[:-2]])
    out = batch + (m, n)
    nbytes = c.in_bytes(0) + c.in_bytes(1) + c.nbytes(out)
    return OpResult([out], [_gemm("", numel(batch), m, n, k, nbytes)])


def experts_touched(experts: int, top_k: int, tokens: int) -> float:
    """Expected number of distinct experts that T tokens, each routed to top_k of `experts` uniformly, reach:
    E * (1 - (1 - k/E)^T). One decode token touches k experts; a long prefill touches all of them."""
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


@op("moe_linear", category="linear", precision="weight", experts=Attr("int"), top_k=Attr("int"),
    out_features=Attr("int"), routed=Attr("bool", False), bias=Attr("bool", False))
def moe_linear(c: OpCall) -> OpResult:
    """One projection of a mixture-of-experts FFN: `experts` weight matrices, every token's row multiplied by the
    top_k its router picked. Input [..., d] tokens (routed: false; each token is gathered into top_k rows) or
    [..., top_k, d] rows already routed; output [..., top_k, out_features].

    Routing is taken as uniform (the load-balancing loss of Switch / Mixtral training aims at it): each touched
    expert runs one GEMM over T*k / touched rows, and only the touched experts' weights are read.
    """
    x = c.shapes[0]
    e, k, n = c.attrs["experts"], c.attrs["top_k"], c.attrs["out_features"]
    if not 1 <= k <= e:
        raise OpError(f"top_k {k} must be between 1 and experts = {e}", "top_k")
    if c.attrs["routed"]:
        if len(x) < 2 or x[-2] != k:
            raise OpError(f"routed input must be [..., top_k = {k}, features], got {list(x)}", "in")
        tokens, out = numel(x[:-2]), x[:-1] + (n,)
    else:
        tokens, out = numel(x[:-1]), x[:-1] + (k, n)
    d, rows = x[-1], numel(x[:-1]) * (1 if c.attrs["routed"] else k)
    per_expert = d * n + (n if c.attrs["bias"] else 0)
    touched = experts_touched(e, k, tokens)
    # gather reads each routed row once; weights of the touched experts once; routed rows written once
    nbytes = rows * d * BYTES[c.in_dtypes[0]] + touched * per_expert * c.wbytes + c.nbytes(out)
    gemm = (max(1, round(touched)), math.ceil(rows / touched), n, d)
    return OpResult([out], [_gemm("", *gemm, nbytes, flops=2.0 * rows * n * d)] + c.dequant(gemm),
                    params=e * per_expert)


@op("conv1d", "conv2d", "conv3d", category="conv", precision="weight",
    out_channels=Attr("int"), kernel=Attr("ints"), stride=Attr("ints", 1), padding=Attr("ints", 0),
    dilation=Attr("ints", 1), groups=Attr("int", 1), bias=Attr("bool", True), transposed=Attr("bool", False),
    output_padding=Attr("ints", 0), cache=Attr("int", 0))
def conv(c: OpCall) -> OpResult:
    """`cache: N` (conv3d): a causal conv run chunk by chunk over a video (diffusers' Wan / Qwen-Image `feat_cache`,
    CogVideoX `conv_cache`). Each call clones the last N frames of its input for the next call, and those stay on
    the device for the whole chunk (`held`); with a temporal kernel kt > 1 it also concatenates the cached frames
    (zeros at the first chunk) before its input: a copy of the input with kt - 1 more frames that the convolution
    reads (workspace while it runs; the few border pixels of the spatial padding are left out). The FLOPs are
    those of the convolution modelled with symmetric time padding: the same output frames from the same taps."""
    a = c.attrs
    x = c.shapes[0]
    nd = int(c.kind[4])
    if len(x) != nd + 2:
        raise OpError(f"{c.kind} input must be [batch, channels] + {nd} spatial dimensions, got {list(x)}", "in")
    batch, cin, spatial = x[0], x[1], x[2:]
    k, s, p, d, op_ = (_tuple(a[f], nd, f) for f in ("kernel", "stride", "padding", "dilation", "output_padding"))
    g, cout = a["groups"], a["out_channels"]
    if cin % g or cout % g:
        raise OpError(f"channels {cin}->{cout} are not divisible by groups={g}", "groups")
    if a["transposed"]:
        out_sp = tuple((i - 1) * st - 2 * pd + dl * (kk - 1) + o + 1
                       for i, st, pd, dl, kk, o in zip(spatial, s, p, d, k, op_))
    else:
        out_sp = tuple((i + 2 * pd - dl * (kk - 1) - 1) // st + 1 for i, st, pd, dl, kk in zip(spatial, s, p, d, k))
    if min(out_sp) < 1:
        raise OpError(f"kernel {list(k)} does not fit input {list(spatial)}", "kernel")
    out = (batch, cout) + out_sp
    taps = numel(k)
    params = cout * (cin // g) * taps + (cout if a["bias"] else 0)
    # torch.utils.flop_counter counts transposed convolutions over the input positions, others over the output.
    positions = batch * numel(spatial if a["transposed"] else out_sp)
    flops = 2.0 * positions * cout * (cin // g) * taps
    nbytes = c.in_bytes(0) + params * c.wbytes + c.nbytes(out)
    # implicit GEMM: one GEMM per group, M = output positions, N = out channels, K = in channels x taps
    gemm = (g, positions, cout // g, cin // g * taps)
    kernels = [_gemm("", *gemm, nbytes, flops)] + c.dequant(gemm)
    held = workspace = 0
    if a["cache"]:
        if nd != 3 or a["transposed"] or a["cache"] < 0:
            raise OpError("cache (frames a causal conv keeps between chunks) needs a conv3d, not transposed, and "
                          "a positive number of frames", "cache")
        frame = c.in_bytes(0) // spatial[0]           # one frame of the input
        workspace = (spatial[0] + k[0] - 1) * frame if k[0] > 1 else 0  # the input behind its cached frames
        held = a["cache"] * frame
        kernels.append(_copy(".cache", 2 * workspace + 2 * held))  # torch.cat / F.pad, and the clone
    return OpResult([out], kernels, params=params, workspace=workspace, held=held)


def _causal_pairs(lq: int, lk: int) -> int:
    """Query-key pairs left by a causal mask when the queries are the last `lq` of `lk` positions."""
    lq_eff = min(lq, lk)
    return lq_eff * (lk - lq_eff) + lq_eff * (lq_eff + 1) // 2


@op("attention", category="attention", inputs=(3, 3), heads=Attr("int"), kv_heads=Attr("int", None),
    head_dim=Attr("int", None), causal=Attr("bool", False))
def attention(c: OpCall) -> OpResult:
    """Scaled dot-product attention core on [batch, tokens, heads*head_dim] tensors (projections are `linear`).

    flash: one fused kernel; scores never leave the chip, bytes = Q, K, V, O; a causal mask skips masked blocks.
    math: QK^T writes the full score matrix, softmax reads it and writes probabilities, PV reads them back.
    """
    q, k, v = c.shapes
    h = c.attrs["heads"]
    hkv = c.attrs["kv_heads"] or h
    if len(q) != 3 or len(k) != 3 or len(v) != 3:
        raise OpError(f"attention takes [batch, tokens, channels] tensors, got {list(q)}, {list(k)}, {list(v)}", "in")
    if q[0] != k[0] or k[:2] != v[:2]:
        raise OpError(f"q {list(q)}, k {list(k)}, v {list(v)} disagree in batch or key length", "in")
    if q[2] % h:
        raise OpError(f"{q[2]} query channels do not split into {h} heads", "heads")
    d = c.attrs["head_dim"] or q[2] // h
    if q[2] != h * d:
        raise OpError(f"query has {q[2]} channels, expected heads*head_dim = {h * d}", "head_dim")
    if h % hkv or k[2] != hkv * d or v[2] % hkv:
        raise OpError(f"keys have {k[2]} channels, expected kv_heads*head_dim = {hkv * d}", "kv_heads")
    dv = v[2] // hkv
    b, lq, lk = q[0], q[1], k[1]
    out = (b, lq, h * dv)
    qkvo = c.in_bytes(0) + c.in_bytes(1) + c.in_bytes(2) + c.nbytes(out)
    bh = b * h
    pairs = _causal_pairs(lq, lk) if c.attrs["causal"] else lq * lk
    fused = [Kernel("", "matrix", float(2.0 * bh * pairs * (d + dv)), float(qkvo), (bh, lq, lk, max(d, dv)),
                    fused_attention=True)]
    scores = bh * lq * lk * c.dbytes
    math_kernels = [
        _gemm(".qk", bh, lq, lk, d, c.in_bytes(0) + c.in_bytes(1) + scores),
        # scale, (mask), max, subtract, exp, sum, divide: ~5 FLOPs per score, read scores, write probabilities
        _vector(".softmax", 5.0 * bh * lq * lk, 2 * scores, row=lk),
        _gemm(".pv", bh, lq, dv, lk, scores + c.in_bytes(2) + c.nbytes(out)),
    ]
    variants = {"fused": fused, "math": math_kernels}
    if c.attention == "flash":
        return OpResult([out], fused, variants=variants)
    return OpResult([out], math_kernels, workspace=2 * scores, variants=variants)


# ---------------------------------------------------------------------------------------------- vector unit

def _norm(c: OpCall, flops_per_element: float, params: int) -> OpResult:
    x = c.shapes[0]
    nbytes = c.in_bytes(0) + c.nbytes(x) + params * c.dbytes
    return OpResult([x], [_vector("", flops_per_element * numel(x), nbytes, row=x[-1])], params=params)


# mean and variance (sub, square, two sums) then normalise, scale and shift: ~7 FLOPs per element
@op("group_norm", category="norm", groups=Attr("int"), affine=Attr("bool", True))
def group_norm(c: OpCall) -> OpResult:
    """Two passes: a group spans channels x all pixels (far more than a core holds), so the statistics are
    reduced first and the input is read again to normalise it (PyTorch's CUDA group norm: RowwiseMoments, then
    an elementwise kernel with the fused scale and shift, aten/src/ATen/native/cuda/group_norm_kernel.cu)."""
    x = c.shapes[0]
    if len(x) < 2 or x[1] % c.attrs["groups"]:
        raise OpError(f"{x[1] if len(x) > 1 else '?'} channels do not split into {c.attrs['groups']} groups", "groups")
    params = 2 * x[1] if c.attrs["affine"] else 0
    stats = 2 * x[0] * c.attrs["groups"] * 4  # mean and rstd per (sample, group), fp32
    kernels = [_vector(".stats", 3 * numel(x), c.in_bytes(0) + stats),
               _vector(".apply", 4 * numel(x), c.in_bytes(0) + stats + params * c.dbytes + c.nbytes(x))]
    return OpResult([x], kernels, params=params)


@op("layer_norm", category="norm", affine=Attr("bool", True), bias=Attr("bool", True))
def layer_norm(c: OpCall) -> OpResult:
    width = c.shapes[0][-1]
    return _norm(c, 7, (width * (2 if c.attrs["bias"] else 1)) if c.attrs["affine"] else 0)


# mean of squares, rsqrt, scale: ~4 FLOPs per element
@op("rms_norm", category="norm", affine=Attr("bool", True))
def rms_norm(c: OpCall) -> OpResult:
    return _norm(c, 4, c.shapes[0][-1] if c.attrs["affine"] else 0)


@op("softmax", category="other", axis=Attr("int", -1))
def softmax(c: OpCall) -> OpResult:
    x = c.shapes[0]
    row = x[c.attrs["axis"]] if -len(x) <= c.attrs["axis"] < len(x) else 0
    return OpResult([x], [_vector("", 5 * numel(x), c.in_bytes(0) + c.nbytes(x), row=row)])


# FLOPs per element of unary elementwise functions (estimates: each transcendental counted as one FLOP)
UNARY_FLOPS = {"relu": 1, "silu": 4, "sigmoid": 3, "gelu": 8, "gelu_tanh": 9, "quick_gelu": 5, "tanh": 5,
               "exp": 1, "scale": 1, "neg": 1, "sqrt": 1, "square": 1, "rope": 3, "mish": 6, "cast": 0}
BINARY_FLOPS = {"add": 1, "sub": 1, "mul": 1, "div": 1, "maximum": 1, "minimum": 1}


def _unary(c: OpCall) -> OpResult:
    x = c.shapes[0]
    per = UNARY_FLOPS[c.kind]
    return OpResult([x], [_vector("", per * numel(x), c.in_bytes(0) + c.nbytes(x))])


def _binary(c: OpCall) -> OpResult:
    out = _broadcast(c.shapes)
    nbytes = sum(c.in_bytes(i) for i in range(len(c.shapes))) + c.nbytes(out)
    return OpResult([out], [_vector("", BINARY_FLOPS[c.kind] * numel(out), nbytes)])


for _name in UNARY_FLOPS:
    op(_name, category="elementwise")(_unary)
for _name in BINARY_FLOPS:
    op(_name, category="elementwise", inputs=(2, 2))(_binary)


@op("sinusoidal_embedding", category="elementwise", dim=Attr("int"))
def sinusoidal_embedding(c: OpCall) -> OpResult:
    """Fixed sin/cos embedding of positions or timesteps: [...] -> [..., dim]; ~4 FLOPs per output element."""
    out = tuple(c.shapes[0]) + (c.attrs["dim"],)
    return OpResult([out], [_vector("", 4 * numel(out), c.in_bytes(0) + c.nbytes(out))])


@op("reduce", category="other", axis=Attr("ints"), keepdim=Attr("bool", False),
    mode=Attr("str", "mean", ("mean", "sum", "max", "min")))
def reduce(c: OpCall) -> OpResult:
    x = c.shapes[0]
    axes = {_axis(a, len(x)) for a in _as_list(c.attrs["axis"])}
    out = tuple(1 if i in axes else d for i, d in enumerate(x) if c.attrs["keepdim"] or i not in axes)
    return OpResult([out], [_vector("", numel(x), c.in_bytes(0) + c.nbytes(out))])


def _as_list(v):
    return [v] if isinstance(v, int) else list(v)


# ---------------------------------------------------------------------------------------------- data movement

@op("embedding", category="other", precision="weight", num_embeddings=Attr("int"), dim=Attr("int"))
def embedding(c: OpCall) -> OpResult:
    """Table lookup: reads only the gathered rows (at the table's stored size; converting a quantised row is
    left out, a few operations per gathered element), but owns the whole table as parameters."""
    idx = c.shapes[0]
    out = tuple(idx) + (c.attrs["dim"],)
    params = c.attrs["num_embeddings"] * c.attrs["dim"]
    return OpResult([out], [_copy("", c.in_bytes(0) + numel(out) * c.wbytes + c.nbytes(out))], params=params)


@op("parameter", category="other", inputs=(0, 0), shape=Attr("exprs"), learned=Attr("bool", True))
def parameter(c: OpCall) -> OpResult:
    """A stored tensor (learned embedding, class token, fixed buffer); whoever reads it pays the bytes."""
    shape = tuple(c.attrs["shape"])
    return OpResult([shape], [], params=numel(shape) if c.attrs["learned"] else 0)


@op("upsample", category="other", scale=Attr("ints"), mode=Attr("str", "nearest", ("nearest", "linear")))
def upsample(c: OpCall) -> OpResult:
    x = c.shapes[0]
    scale = _tuple(c.attrs["scale"], len(x) - 2, "scale")
    out = tuple(x[:2]) + tuple(d * s for d, s in zip(x[2:], scale))
    flops = 0 if c.attrs["mode"] == "nearest" else 4 * numel(out)
    return OpResult([out], [_vector("", flops, c.in_bytes(0) + c.nbytes(out))])


@op("avg_pool", "max_pool", category="other", kernel=Attr("ints"), stride=Attr("ints", None),
    padding=Attr("ints", 0))
def pool(c: OpCall) -> OpResult:
    x = c.shapes[0]
    nd = len(x) - 2
    k = _tuple(c.attrs["kernel"], nd, "kernel")
    s = _tuple(c.attrs["stride"] if c.attrs["stride"] is not None else c.attrs["kernel"], nd, "stride")
    p = _tuple(c.attrs["padding"], nd, "padding")
    out_sp = tuple((i + 2 * pd - kk) // st + 1 for i, kk, st, pd in zip(x[2:], k, s, p))
    if min(out_sp) < 1:
        raise OpError(f"pooling window {list(k)} does not fit input {list(x[2:])}", "kernel")
    out = tuple(x[:2]) + out_sp
    return OpResult([out], [_vector("", numel(out) * numel(k), c.in_bytes(0) + c.nbytes(out))])


@op("concat", category="other", inputs=(2, None), axis=Attr("int"))
def concat(c: OpCall) -> OpResult:
    first = c.shapes[0]
    axis = _axis(c.attrs["axis"], len(first))
    for s in c.shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
            raise OpError(f"cannot concatenate {list(first)} and {list(s)} along axis {axis}", "in")
    out = tuple(sum(s[axis] for s in c.shapes) if i == axis else d for i, d in enumerate(first))
    return OpResult([out], [_copy("", 2 * c.nbytes(out))])


@op("split", category="other", axis=Attr("int"), sizes=Attr("ints", None), chunks=Attr("int", None))
def split(c: OpCall) -> OpResult:
    """torch.split / chunk: views of the input, no bytes moved. Outputs are `<name>.0`, `<name>.1`, ..."""
    x = c.shapes[0]
    axis = _axis(c.attrs["axis"], len(x))
    if c.attrs["sizes"] is not None:
        sizes = _as_list(c.attrs["sizes"])
    elif c.attrs["chunks"]:
        if x[axis] % c.attrs["chunks"]:
            raise OpError(f"dimension {x[axis]} does not split into {c.attrs['chunks']} chunks", "chunks")
        sizes = [x[axis] // c.attrs["chunks"]] * c.attrs["chunks"]
    else:
        raise OpError("split needs 'sizes' or 'chunks'", "sizes")
    if sum(sizes) != x[axis]:
        raise OpError(f"sizes {sizes} do not add up to dimension {x[axis]}", "sizes")
    return OpResult([tuple(s if i == axis else d for i, d in enumerate(x)) for s in sizes])


@op("slice", category="other", axis=Attr("int"), start=Attr("int", 0), stop=Attr("int"))
def slice_(c: OpCall) -> OpResult:
    x = c.shapes[0]
    axis = _axis(c.attrs["axis"], len(x))
    start, stop = (max(0, v + x[axis]) if v < 0 else min(v, x[axis]) for v in (c.attrs["start"], c.attrs["stop"]))
    if stop <= start:
        raise OpError(f"empty slice [{start}:{stop}] of dimension {x[axis]}", "stop")
    return OpResult([tuple(stop - start if i == axis else d for i, d in enumerate(x))])


@op("reshape", category="other", shape=Attr("exprs"))
def reshape(c: OpCall) -> OpResult:
    """A view. `shape` entries may use d0, d1, ... (the input's dimensions) and one -1."""
    x = c.shapes[0]
    shape = list(c.attrs["shape"])
    if shape.count(-1) > 1:
        raise OpError("at most one -1 in a shape", "shape")
    if -1 in shape:
        known = numel([d for d in shape if d != -1])
        if known == 0 or numel(x) % known:
            raise OpError(f"cannot infer -1 reshaping {list(x)} to {shape}", "shape")
        shape[shape.index(-1)] = numel(x) // known
    if numel(shape) != numel(x):
        raise OpError(f"cannot reshape {list(x)} ({numel(x)} elements) to {shape} ({numel(shape)})", "shape")
    return OpResult([tuple(shape)])


@op("transpose", category="other", perm=Attr("ints"), copy=Attr("bool", True))
def transpose(c: OpCall) -> OpResult:
    """A permutation; materialised (a copy, as .contiguous() or the next kernel's strided read costs) unless copy: false."""
    x = c.shapes[0]
    perm = _as_list(c.attrs["perm"])
    if sorted(perm) != list(range(len(x))):
        raise OpError(f"perm {perm} is not a permutation of {len(x)} axes", "perm")
    out = tuple(x[p] for p in perm)
    return OpResult([out], [_copy("", 2 * c.nbytes(out))] if c.attrs["copy"] else [])


@op("copy", category="other")
def copy(c: OpCall) -> OpResult:
    x = c.shapes[0]
    return OpResult([x], [_copy("", c.in_bytes(0) + c.nbytes(x))])


@op("identity", category="other")
def identity(c: OpCall) -> OpResult:
    return OpResult([c.shapes[0]])


@op("kv_cache", category="other", precision="kv", length=Attr("int"), axis=Attr("int", 1))
def kv_cache(c: OpCall) -> OpResult:
    """Append new keys/values to a persistent cache; output is the whole cache [.., length, ..] for attention.

    Costs the append (read new, write new in the cache's dtype, `kv_dtype`); the attention that consumes the
    output pays for reading the cache.
    """
    x = c.shapes[0]
    axis = _axis(c.attrs["axis"], len(x))
    if c.attrs["length"] < x[axis]:
        raise OpError(f"cache length {c.attrs['length']} is shorter than the {x[axis]} new entries", "length")
    out = tuple(c.attrs["length"] if i == axis else d for i, d in enumerate(x))
    return OpResult([out], [_copy("", c.in_bytes(0) + c.nbytes(x))], state=c.nbytes(out),
                    state_tokens=c.attrs["length"])
