"""The measurement format: the plan of benchmark cases, the calibration CSV and the simulator's view of a row.

`simulator.calibrate` times the plan's cases with PyTorch and writes one CSV row per case; `fidelity` reads the rows
back and compares them with the simulator's prediction for the same op. The columns:

    kind, shapes (JSON), attrs (JSON), attention, dtype, time_s, repeats, device, torch, driver, date, error

Each case is stated in the simulator's own terms: `kind` is an op kind of `simulator.ops.OPS`, `shapes` its input
shapes and `attrs` that kind's attribute names, so `OPS[kind].fn(op_call(row))` costs exactly what was timed.

This module needs no PyTorch: it holds the format, its validation and the plan, nothing that runs a kernel.
"""
from __future__ import annotations

import csv
import io
import json
import math

from .dtypes import BYTES
from .errors import Location, SpecError, shown
from .loader import read_text
from .ops import OPS, OpCall, OpError, numel
from .writers import write_atomic

COLUMNS = ("kind", "shapes", "attrs", "attention", "dtype", "time_s", "repeats", "device", "torch", "driver",
           "date", "error")
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
KINDS = ("linear", "conv2d", "conv3d", "attention", "group_norm", "layer_norm", "rms_norm", "softmax", "add",
         "mul", "silu", "gelu", "copy")

# Plan limits: no case's inputs (with weights) above ~4 GB, and no math-attention score workspace above 2 GiB,
# so the whole run stays far below an 80 GB GPU's memory.
MAX_INPUT_BYTES = 4 * 2**30
MAX_WORKSPACE_BYTES = 2 * 2**30


# ---------------------------------------------------------------------------------------------- the plan

def _case(kind, shapes, dtype="fp16", attention="", **attrs) -> dict:
    return {"kind": kind, "shapes": [list(map(int, s)) for s in shapes], "attrs": attrs,
            "attention": attention, "dtype": dtype}


def _linear(m, k, n, dtype="fp16", bias=False):
    return _case("linear", [[m, k]], dtype, out_features=n, bias=bias)


def _conv(cin, cout, size, kernel=3, stride=1, batch=2, dtype="fp16"):
    """3x3 convolutions pad by 1 (diffusers' conv layers), 1x1 by 0. `size` = side or (height, width)."""
    h, w = (size, size) if isinstance(size, int) else size
    return _case("conv2d", [[batch, cin, h, w]], dtype, out_channels=cout, kernel=kernel, stride=stride,
                 padding=kernel // 2)


def _attn(b, lq, lk, heads, head_dim, attention, dtype="fp16", kv_heads=None, causal=False):
    hkv = kv_heads or heads
    attrs = {"heads": heads, "head_dim": head_dim}
    if kv_heads and kv_heads != heads:
        attrs["kv_heads"] = kv_heads
    if causal:
        attrs["causal"] = True
    return _case("attention", [[b, lq, heads * head_dim], [b, lk, hkv * head_dim], [b, lk, hkv * head_dim]],
                 dtype, attention, **attrs)


def _gemms() -> list:
    """linear over M x K x N: M = tokens 1 .. 16384, K, N = 512 .. 16384 (fp16), the LLM decode shapes (bf16),
    a bf16 and an fp32 subgrid, and the SD1.5 transformer projections at 512 and 1024 px (with bias)."""
    ms = [2**i for i in range(15)]                      # 1 .. 16384
    kn = [512 * 2**i for i in range(6)]                 # 512 .. 16384
    cases = [_linear(m, k, n) for m in ms for k in kn for n in kn]
    # decode: a handful of tokens against the weight matrices of 7B-70B LLMs (4096, 8192 hidden; 11008 llama2-7b,
    # 14336 llama3-8b, 28672 llama2/3-70b MLP)
    llm = [4096, 8192, 11008, 14336, 28672]
    cases += [_linear(m, k, n, "bf16") for m in (1, 2, 4, 8, 16) for k in llm for n in llm]
    cases += [_linear(m, k, k, "bf16") for m in (1, 16, 256, 4096, 16384) for k in (1024, 4096, 16384)]
    cases += [_linear(m, k, k, "fp32") for m in (256, 4096) for k in (1024, 4096)]
    # SD1.5 BasicTransformerBlock: tokens = 2 (cfg) x latent pixels; q/k/v/o C->C, GEGLU C->8C, out 4C->C,
    # cross-attention keys/values from 2 x 77 text tokens of width 768
    for scale in (1, 4):                                 # 512 px, 1024 px
        for c, tokens in ((320, 8192), (640, 2048), (1280, 512), (1280, 128)):
            t = tokens * scale
            cases += [_linear(t, c, c, bias=True), _linear(t, c, 8 * c, bias=True), _linear(t, 4 * c, c, bias=True)]
        cases += [_linear(154, 768, c) for c in (320, 640, 1280)]
    return cases


def _unet_convs(h: int, w: int, batch: int = 2, latent_channels: int = 4) -> list:
    """Every convolution of an SD1.5-layout UNet (diffusers UNet2DConditionModel and the per-frame 2-D parts of
    UNet3D / SVD's UNetSpatioTemporal: block_out_channels 320/640/1280/1280, 2 layers per block, skip
    concatenation on the up path, 1x1 proj_in/out in SD1.5) on an h x w latent."""
    ch = (320, 640, 1280, 1280)
    size = [(h // 2**i, w // 2**i) for i in range(4)]
    specs = [(latent_channels, 320, size[0], 3, 1), (320, 4, size[0], 3, 1)]   # conv_in, conv_out
    skips = [320]
    cin = 320
    for lvl, c in enumerate(ch):                                         # down path
        for _ in range(2):
            specs += [(cin, c, size[lvl], 3, 1), (c, c, size[lvl], 3, 1)]
            if cin != c:
                specs.append((cin, c, size[lvl], 1, 1))                  # shortcut
            if lvl < 3:
                specs.append((c, c, size[lvl], 1, 1))                    # proj_in / proj_out
            cin = c
            skips.append(c)
        if lvl < 3:
            specs.append((c, c, size[lvl], 3, 2))                        # Downsample2D
            skips.append(c)
    specs += [(1280, 1280, size[3], 3, 1), (1280, 1280, size[3], 1, 1)]  # mid block (res + transformer proj)
    for lvl in (3, 2, 1, 0):                                             # up path: 3 layers, concat the skip
        c = ch[lvl]
        for _ in range(3):
            cat = cin + skips.pop()
            specs += [(cat, c, size[lvl], 3, 1), (cat, c, size[lvl], 1, 1), (c, c, size[lvl], 3, 1)]
            if lvl < 3:
                specs.append((c, c, size[lvl], 1, 1))
            cin = c
        if lvl > 0:
            specs.append((c, c, size[lvl - 1], 3, 1))                    # Upsample2D conv after x2 nearest
    return [_conv(a, b, sz, k, st, batch) for a, b, sz, k, st in specs]


def _vae_convs(latent: int, batch: int = 1) -> list:
    """SD VAE decoder (block_out_channels 128/256/512/512): 512 channels at latent .. 4x latent pixels,
    256 at 4x and 8x, 128 at 8x (64 .. 512 px for a 512 px image)."""
    s = latent
    specs = [(4, 4, s, 1), (4, 512, s, 3), (512, 512, s, 3), (512, 512, 2 * s, 3), (512, 512, 4 * s, 3),
             (512, 256, 4 * s, 3), (512, 256, 4 * s, 1), (256, 256, 4 * s, 3), (256, 256, 8 * s, 3),
             (256, 128, 8 * s, 3), (256, 128, 8 * s, 1), (128, 128, 8 * s, 3), (128, 3, 8 * s, 3)]
    return [_conv(a, b, size, k, 1, batch) for a, b, size, k in specs]


def _convs() -> list:
    # SD1.5 at 512 and 1024 px (UNet batch 2 for classifier-free guidance, VAE batch 1); ModelScope T2V at 256 px
    # (16 frames as batch: UNet 2 x 16, VAE 16); SVD-XT UNet at 576x1024 (25 frames, 2 x 25, 8 input channels)
    cases = (_unet_convs(64, 64) + _unet_convs(128, 128) + _vae_convs(64) + _vae_convs(128)
             + _unet_convs(32, 32, 32) + _vae_convs(32, 16) + _unet_convs(72, 128, 50, 8))
    # temporal convolutions (3,1,1) of video UNets: ModelScope T2V (16 frames, 32x32 latent at 256 px) and
    # SVD-XT (25 frames, 72x128 latent at 576x1024; its VAE decoder's time convolutions at 512 channels)
    for b, c, frames, h, w in ((2, 320, 16, 32, 32), (2, 640, 16, 16, 16), (2, 1280, 16, 8, 8), (2, 1280, 16, 4, 4),
                               (2, 320, 25, 72, 128), (2, 640, 25, 36, 64), (2, 1280, 25, 18, 32),
                               (2, 1280, 25, 9, 16), (1, 512, 25, 72, 128), (1, 512, 25, 144, 256)):
        cases.append(_case("conv3d", [[b, c, frames, h, w]], "fp16", out_channels=c, kernel=[3, 1, 1],
                           padding=[1, 0, 0]))
    return cases


# Target work per attention call: ~5e11 FLOPs (about a millisecond on an H100) where memory allows; the q, k,
# v and output tensors together stay under 512 MB, and math's score matrix under 1 GiB.
ATTN_TARGET_FLOPS = 5e11
ATTN_MAX_QKVO_BYTES = 512 * 2**20
ATTN_MAX_SCORE_BYTES = 2**30
SWEEP_HEADS = {40: 8, 64: 16, 80: 8, 128: 32, 160: 8}   # heads of the models using each head dim


def _batch_heads(lq, lk, d, attention, dbytes=2) -> int:
    bh = math.ceil(ATTN_TARGET_FLOPS / (4 * lq * lk * d))
    bh = min(bh, ATTN_MAX_QKVO_BYTES // (2 * (lq + lk) * d * dbytes))
    if attention == "math":
        bh = min(bh, ATTN_MAX_SCORE_BYTES // (lq * lk * dbytes))
    return max(1, bh)


def _attention() -> list:
    cases = []
    # self-attention sweep: L = 8 .. 16384, head dims of SD1.5 (40, 80, 160), video UNets / DiTs (64), LLMs (128)
    for attention in ("flash", "math"):
        for lq in [2**i for i in range(3, 15)]:
            for d, heads in SWEEP_HEADS.items():
                bh = _batch_heads(lq, lq, d, attention)
                h = min(heads, bh)
                cases.append(_attn(bh // h, lq, lq, h, d, attention))
        # SD1.5 self- and cross-attention (Lk = 77 text tokens) at 512 and 1024 px: batch 2, 8 heads
        for lq, d in ((4096, 40), (1024, 80), (256, 160), (64, 160), (16384, 40), (4096, 80), (1024, 160)):
            cases += [_attn(2, lq, lq, 8, d, attention), _attn(2, lq, 77, 8, d, attention)]
        # CLIP ViT-L (SD1.5) and OpenCLIP ViT-H (ModelScope, SD2) text encoders: causal over 77 tokens
        cases += [_attn(2, 77, 77, 12, 64, attention, causal=True), _attn(2, 77, 77, 16, 64, attention, causal=True)]
        # SD VAE mid-block attention: one head of 512 channels over the latent pixels (SD1.5 512 / 1024 px, the
        # 16 frames of ModelScope, SVD-XT's conditioning image)
        cases += [_attn(1, 4096, 4096, 1, 512, attention), _attn(1, 16384, 16384, 1, 512, attention),
                  _attn(16, 1024, 1024, 1, 512, attention), _attn(1, 9216, 9216, 1, 512, attention)]
        # video UNets' per-frame spatial attention (64-channel heads): ModelScope (2 x 16 frames, text Lk = 77),
        # SVD-XT (2 x 25 frames; its only context is one image-embedding token, Lk = 1, also for the temporal
        # cross-attention)
        for b, tokens, heads, lk in ((32, 1024, 5, 77), (32, 256, 10, 77), (32, 64, 20, 77), (32, 16, 20, 77),
                                     (50, 9216, 5, 1), (50, 2304, 10, 1), (50, 576, 20, 1), (50, 144, 20, 1)):
            cases += [_attn(b, tokens, tokens, heads, 64, attention), _attn(b, tokens, lk, heads, 64, attention)]
        for b, heads in ((18432, 5), (4608, 10), (1152, 20), (288, 20)):
            cases += [_attn(b, 25, 25, heads, 64, attention), _attn(b, 25, 1, heads, 64, attention)]
        cases.append(_attn(2048, 16, 16, 8, 64, attention))              # ModelScope temporal, 512 inner
        # temporal attention over the frames of each latent pixel (batch = 2 x H x W, 64-channel heads):
        # ModelScope T2V at 256 px (32x32 latent), SVD-XT at 576x1024 (72x128 latent)
        for c, pixels in ((320, 32 * 32), (640, 16 * 16), (1280, 8 * 8), (320, 72 * 128), (640, 36 * 64),
                          (1280, 18 * 32)):
            for frames in (8, 16, 25, 32):
                cases.append(_attn(2 * pixels, frames, frames, c // 64, 64, attention))
        # LLM: causal prefill and single-token decode against a KV cache, 32 heads of 128, MHA and 8-group GQA
        for kv in (32, 8):
            cases += [_attn(1, s, s, 32, 128, attention, "bf16", kv, True) for s in (512, 1024, 2048, 4096, 8192)]
            cases += [_attn(b, 1, s, 32, 128, attention, "bf16", kv, True) for b in (1, 8) for s in (512, 2048, 8192)]
    return cases


def _vector_ops() -> list:
    """group_norm, layer_norm, rms_norm, softmax, add, mul, silu, gelu, copy over 64 KB .. 512 MB (per input)."""
    cases = []
    for i in range(14):
        elems = 2**15 * 2**i                                 # fp16: 64 KB .. 512 MB
        side = 2 ** math.ceil(math.log2(elems // 512) / 2)   # group_norm on [1, 512, h, w], 32 groups
        cases.append(_case("group_norm", [[1, 512, side, elems // 512 // side]], groups=32))
        cases.append(_case("layer_norm", [[max(1, round(elems / 1280)), 1280]]))   # SD / DiT widths
        cases.append(_case("rms_norm", [[elems // 4096, 4096]] if elems >= 4096 else [[1, elems]]))
        cases.append(_case("softmax", [[elems // 1024, 1024]]))
        for kind in ("add", "mul"):
            cases.append(_case(kind, [[elems // 1024, 1024], [elems // 1024, 1024]]))
        for kind in ("silu", "gelu", "copy"):
            cases.append(_case(kind, [[elems // 1024, 1024]]))
    return cases


def _quick(dtype: str) -> list:
    """A few tiny cases of every kind: seconds on two CPU cores."""
    return [
        _linear(64, 128, 128, dtype), _linear(1, 256, 256, dtype), _linear(32, 64, 96, dtype, bias=True),
        _conv(16, 16, 16, 3, 1, 1, dtype), _conv(16, 32, 16, 3, 2, 1, dtype), _conv(16, 32, 8, 1, 1, 1, dtype),
        _case("conv3d", [[1, 8, 4, 8, 8]], dtype, out_channels=8, kernel=[3, 1, 1], padding=[1, 0, 0]),
        _attn(1, 64, 64, 2, 32, "flash", dtype), _attn(1, 64, 64, 2, 32, "math", dtype),
        _attn(2, 32, 77, 2, 40, "flash", dtype), _attn(1, 1, 64, 4, 16, "math", dtype, 2, True),
        _case("group_norm", [[1, 64, 16, 16]], dtype, groups=32),
        _case("layer_norm", [[64, 320]], dtype), _case("rms_norm", [[64, 256]], dtype),
        _case("softmax", [[64, 256]], dtype),
        _case("add", [[64, 256], [64, 256]], dtype), _case("mul", [[64, 256], [64, 256]], dtype),
        _case("silu", [[64, 256]], dtype), _case("gelu", [[64, 256]], dtype), _case("copy", [[64, 256]], dtype),
    ]


def _key(case) -> str:
    return json.dumps([case["kind"], case["shapes"], case["attrs"], case["attention"], case["dtype"]],
                      sort_keys=True)


def plan(device: str = "cuda", quick: bool = False) -> list:
    """The benchmark cases for `device` ("cuda", "cuda:N" or "cpu"): the full plan, or a handful of tiny cases of
    every kind (`quick`; fp32 on the CPU, fp16 on a GPU). Cases whose inputs exceed MAX_INPUT_BYTES or whose
    workspace exceeds MAX_WORKSPACE_BYTES are left out; duplicates are dropped, order kept."""
    if quick:
        cases = _quick("fp32" if str(device).startswith("cpu") else "fp16")
    else:
        cases = _gemms() + _convs() + _attention() + _vector_ops()
    seen, out = set(), []
    for case in cases:
        key = _key(case)
        if key in seen:
            continue
        seen.add(key)
        inputs, _, workspace = footprint(case)
        if inputs <= MAX_INPUT_BYTES and workspace <= MAX_WORKSPACE_BYTES:
            out.append(case)
    return out


# ---------------------------------------------------------------------------------------------- a case as an op

def op_call(case: dict) -> OpCall:
    """The simulator's view of a case: an OpCall with the kind's default attributes filled in."""
    opdef = OPS[case["kind"]]
    attrs = {k: a.default for k, a in opdef.attrs.items()}
    attrs.update(case["attrs"])
    shapes = [tuple(s) for s in case["shapes"]]
    return OpCall("calibrate", case["kind"], shapes, [case["dtype"]] * len(shapes), attrs, case["dtype"],
                  case["attention"] or "flash")


def footprint(case: dict) -> tuple:
    """(input + weight bytes, output bytes, workspace bytes) of a case, from the simulator's op formula."""
    call = op_call(case)
    r = OPS[case["kind"]].fn(call)
    b = DTYPE_BYTES[case["dtype"]]
    inputs = sum(numel(s) for s in call.shapes) * b + r.params * b
    return inputs, sum(numel(s) for s in r.outputs) * b, r.workspace


# ---------------------------------------------------------------------------------------------- CSV

def _cell(row, col):
    v = row.get(col)
    if v is None:
        return ""
    if col in ("shapes", "attrs"):
        return json.dumps(v, separators=(",", ":"), sort_keys=col == "attrs")
    if col == "time_s":
        return repr(float(v))
    return v


def write_csv(rows: list, path: str) -> None:
    """Write rows (COLUMNS; other keys are left out) to `path` atomically: a temporary file, then os.replace."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in rows:
        w.writerow([_cell(row, c) for c in COLUMNS])
    write_atomic(path, buf.getvalue())


REQUIRED_COLUMNS = ("kind", "shapes", "dtype", "time_s")


def read_csv(path: str) -> list:
    """Rows of a calibration CSV: shapes and attrs parsed from JSON, time_s a float (None when empty), repeats
    an int; other columns strings. A missing file, a missing column or a malformed value is a SpecError naming
    the file, line and column."""
    text = read_text(path, "measurements")
    rows = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SpecError(f"not a calibration CSV: no column {', '.join(missing)} (columns: "
                            f"{shown(', '.join(reader.fieldnames or []))})", Location(path, 1))
        for rec in reader:
            where = Location(path, reader.line_num)

            def bad(column, what):
                return SpecError(f"{column} {shown(rec.get(column))}: {what}", where)

            row = dict(rec)
            try:
                row["shapes"] = json.loads(rec["shapes"]) if rec.get("shapes") else []
            except ValueError:
                raise bad("shapes", "expected JSON, e.g. [[1024, 1024], [1024, 1024]]") from None
            try:
                row["attrs"] = json.loads(rec["attrs"]) if rec.get("attrs") else {}
            except ValueError:
                raise bad("attrs", "expected a JSON object, e.g. {\"heads\": 8}") from None
            try:
                row["time_s"] = float(rec["time_s"]) if rec.get("time_s") else None
            except ValueError:
                raise bad("time_s", "expected a number of seconds") from None
            try:
                row["repeats"] = int(rec["repeats"]) if rec.get("repeats") else 0
            except ValueError:
                raise bad("repeats", "expected a whole number") from None
            for col in ("attention", "dtype", "device", "torch", "driver", "date", "error"):
                row[col] = rec.get(col) or ""
            if row["kind"] not in OPS:
                raise bad("kind", "unknown op kind")
            if row["dtype"] not in BYTES:
                raise bad("dtype", f"unknown dtype (dtypes: {', '.join(BYTES)})")
            if row["time_s"] is not None and not (math.isfinite(row["time_s"]) and row["time_s"] > 0):
                raise bad("time_s", "expected a finite positive number of seconds")
            if not (isinstance(row["shapes"], list) and all(
                    isinstance(sh, list) and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 2**40
                                                 for d in sh) and numel(sh) <= 2**60 for sh in row["shapes"])):
                raise bad("shapes", "expected a list of shapes of positive whole numbers")
            if not isinstance(row["attrs"], dict):
                raise bad("attrs", "expected a JSON object")
            opdef = OPS[row["kind"]]
            lo, hi = opdef.inputs
            if len(row["shapes"]) < lo or (hi is not None and len(row["shapes"]) > hi):
                raise bad("shapes", f"{row['kind']} takes {lo if lo == hi else f'{lo} or more'} inputs")
            unknown_attrs = [k for k in row["attrs"] if k not in opdef.attrs]
            if unknown_attrs:
                raise bad("attrs", f"{row['kind']} has no attribute {shown(unknown_attrs[0])} "
                                   f"(attributes: {', '.join(opdef.attrs) or 'none'})")
            try:  # the simulator must be able to cost the row
                result = opdef.fn(op_call(row))
                if any(d < 1 for shape in result.outputs for d in shape):
                    raise OpError(f"the op would produce an empty or negative shape {shown(result.outputs)}")
            except OpError as exc:
                raise SpecError(f"{row['kind']} case: {exc}", where) from None
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
                raise SpecError(f"{row['kind']} case with shapes {shown(row['shapes'])} and attrs "
                                f"{shown(row['attrs'])} cannot be costed", where) from None
            rows.append(row)
    except csv.Error as exc:  # raised inside the record after the last one read
        raise SpecError(f"malformed CSV: {exc}", Location(path, reader.line_num + 1)) from None
    return rows
