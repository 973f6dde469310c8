"""Kernel calibration harness: time real PyTorch kernels for the op kinds the simulator costs.

`python -m simulator calibrate --out measurements/<device>.csv [--device cuda|cpu] [--quick]` runs a plan of
benchmark cases (GEMMs, the UNet convolutions of the suite, flash and math attention, norms and elementwise ops)
and writes one CSV row per case, which a fitter compares with the simulator's prediction for the same op:

    kind, shapes (JSON), attrs (JSON), attention, dtype, time_s, repeats, device, torch, driver, date, error

Each case is stated in the simulator's own terms: `kind` is an op kind of `simulator.ops.OPS`, `shapes` its input
shapes and `attrs` that kind's attribute names, so `OPS[kind].fn` costs exactly what was timed.

PyTorch is optional: this module imports it only inside the functions that run kernels.

How kernels are timed (`measure`):
- inputs (and weights) are allocated once per case, then one untimed call (which also picks the attention
  back-end), `warmup` more untimed calls, then `repeats` timed calls; the row keeps the median. Long cases time
  fewer calls (at least 3, about MAX_CASE_S seconds of calls); `repeats` in the row is the number timed.
- CUDA: one pair of CUDA events around each call; before each call a buffer of several times the L2 size is
  zeroed (outside the events), so every call reads its inputs and weights from device memory, as the simulator
  assumes (weights are read from DRAM once per call). CPU: time.perf_counter around each call.
- fp32 means IEEE fp32: TF32 is switched off for matmuls and cuDNN convolutions while measuring (the simulator
  has a separate `tf32` dtype). The math attention back-end computes in the input dtype
  (`allow_fp16_bf16_reduction_math_sdp`), as the simulator's `math` formula assumes: without it PyTorch upcasts
  fp16/bf16 to fp32 and materialises an fp32 score matrix.
- attention `flash` runs under `sdpa_kernel([FLASH_ATTENTION])`, and where FlashAttention does not support the
  shape or dtype (head dim above 256, such as the SD VAE's 512; fp32 on a GPU) under
  `sdpa_kernel([EFFICIENT_ATTENTION])`: the same choice PyTorch makes for
  `sdpa_kernel([FLASH_ATTENTION, EFFICIENT_ATTENTION])`, with the back-end that ran kept in the row's `backend`
  key (shown in the progress lines; not a CSV column). `math` runs under `sdpa_kernel([MATH])`.
- a case that raises (no kernel for the shape, out of memory) becomes a row with an empty `time_s` and a short
  `error`; the run goes on.
"""
from __future__ import annotations

import contextlib
import csv
import io
import datetime as _dt
import json
import math
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from .ops import OPS, OpCall, OpError, numel

COLUMNS = ("kind", "shapes", "attrs", "attention", "dtype", "time_s", "repeats", "device", "torch", "driver",
           "date", "error")
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
KINDS = ("linear", "conv2d", "conv3d", "attention", "group_norm", "layer_norm", "rms_norm", "softmax", "add",
         "mul", "silu", "gelu", "copy")

# Plan limits: no case's inputs (with weights) above ~4 GB, and no math-attention score workspace above 2 GiB,
# so the whole run stays far below an 80 GB GPU's memory.
MAX_INPUT_BYTES = 4 * 2**30
MAX_WORKSPACE_BYTES = 2 * 2**30

DEFAULT_REPEATS = {"gpu": 10, "cpu": 5}
DEFAULT_WARMUP = {"gpu": 3, "cpu": 1}
MAX_CASE_S = 1.0      # timed seconds per case, past which fewer repeats are taken (never fewer than 3)


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


# ---------------------------------------------------------------------------------------------- estimates

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


# H100 SXM (hardware/h100.yaml) with deliberately pessimistic fractions, for planning the run time only.
H100_ESTIMATE = {
    "matrix": {"fp16": 989.4e12, "bf16": 989.4e12, "fp32": 66.9e12},   # fp32 = CUDA cores (TF32 off)
    "vector": {"fp16": 133.8e12, "bf16": 133.8e12, "fp32": 66.9e12},
    "bandwidth": 3.35e12,
    "matrix_fraction": 0.5, "attention_fraction": 0.3, "memory_fraction": 0.6,
    "launch_s": 10e-6,       # per kernel
    "case_s": 0.03,          # per case: allocate and fill inputs, first-call set-up, synchronise, free
    "startup_s": 20.0,       # import torch, create the CUDA context, cuBLAS / cuDNN handles
    "flush_bytes": 256 * 2**20,
}


def estimate(cases: list, repeats: int = DEFAULT_REPEATS["gpu"], warmup: int = DEFAULT_WARMUP["gpu"],
             hw: dict = H100_ESTIMATE) -> dict:
    """Pessimistic wall time and peak device memory of measuring `cases` on a GPU (default: an H100).

    Each kernel: max(FLOPs / (peak x fraction), bytes / (bandwidth x fraction)) + launch; each call also zeroes
    the L2 flush buffer; each case pays `case_s`; the run pays `startup_s`. Peak memory: the largest case's inputs,
    weights, outputs and workspace, plus the flush buffer.
    """
    total, peak, kernel_s = hw["startup_s"], 0, 0.0
    bw = hw["bandwidth"] * hw["memory_fraction"]
    flush_s = hw["flush_bytes"] / bw
    for case in cases:
        r = OPS[case["kind"]].fn(op_call(case))
        call_s = 0.0
        for k in r.kernels:
            if k.unit == "matrix":
                frac = hw["attention_fraction"] if case["kind"] == "attention" else hw["matrix_fraction"]
                compute = k.flops / (hw["matrix"][case["dtype"]] * frac)
            else:
                compute = k.flops / (hw["vector"][case["dtype"]] * hw["memory_fraction"])
            call_s += max(compute, k.bytes / bw) + hw["launch_s"]
        calls = 1 + warmup + _timed_calls(repeats, call_s)     # back-end probe, warm-up, timed
        kernel_s += calls * call_s
        total += hw["case_s"] + calls * (call_s + flush_s)
        peak = max(peak, sum(footprint(case)))
    return {"cases": len(cases), "seconds": total, "kernel_seconds": kernel_s,
            "peak_bytes": peak + hw["flush_bytes"]}


def _timed_calls(repeats: int, call_s: float | None) -> int:
    """Timed calls for a case: `repeats`, fewer (never under 3) when they would take over MAX_CASE_S."""
    if not call_s or call_s <= 0:
        return repeats
    return min(repeats, max(3, int(MAX_CASE_S / call_s)))


# ---------------------------------------------------------------------------------------------- measuring

def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise RuntimeError("calibrate needs PyTorch, which is not installed: pip install torch") from e
    return torch


def _dtype(torch, name):
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


def _prepare(case: dict, torch, dev):
    """Allocate a case's inputs and weights; return (fn, back-ends): `fn()` runs the op once, `back-ends` is a
    list of (name, context factory) to try in order (the first that runs is timed)."""
    import torch.nn.functional as F

    kind, attrs = case["kind"], op_call(case).attrs
    dt = _dtype(torch, case["dtype"])
    xs = [torch.randn(s, device=dev, dtype=dt) for s in case["shapes"]]
    plain = [("", contextlib.nullcontext)]

    if kind == "linear":
        x = xs[0]
        k, n = x.shape[-1], attrs["out_features"]
        w = torch.randn(n, k, device=dev, dtype=dt)
        b = torch.randn(n, device=dev, dtype=dt) if attrs["bias"] else None
        return (lambda: F.linear(x, w, b)), plain
    if kind in ("conv1d", "conv2d", "conv3d"):
        x = xs[0]
        nd = int(kind[4])
        tup = lambda v: (v,) * nd if isinstance(v, int) else tuple(v)  # noqa: E731
        kernel, stride, padding, dilation = (tup(attrs[f]) for f in ("kernel", "stride", "padding", "dilation"))
        g, cin, cout = attrs["groups"], x.shape[1], attrs["out_channels"]
        b = torch.randn(cout, device=dev, dtype=dt) if attrs["bias"] else None
        if attrs["transposed"]:
            w = torch.randn(cin, cout // g, *kernel, device=dev, dtype=dt)
            conv_t = getattr(F, f"conv_transpose{nd}d")
            op_pad = tup(attrs["output_padding"])
            return (lambda: conv_t(x, w, b, stride, padding, op_pad, g, dilation)), plain
        w = torch.randn(cout, cin // g, *kernel, device=dev, dtype=dt)
        conv = getattr(F, f"conv{nd}d")
        return (lambda: conv(x, w, b, stride, padding, dilation, g)), plain
    if kind == "attention":
        return _prepare_attention(case, attrs, xs, torch)
    if kind in ("group_norm", "layer_norm", "rms_norm"):
        x = xs[0]
        width = x.shape[1] if kind == "group_norm" else x.shape[-1]
        affine = attrs["affine"]
        w = torch.randn(width, device=dev, dtype=dt) if affine else None
        if kind == "group_norm":
            b = torch.randn(width, device=dev, dtype=dt) if affine else None
            return (lambda: F.group_norm(x, attrs["groups"], w, b)), plain
        if kind == "layer_norm":
            b = torch.randn(width, device=dev, dtype=dt) if affine and attrs["bias"] else None
            return (lambda: F.layer_norm(x, (width,), w, b)), plain
        return (lambda: F.rms_norm(x, (width,), w)), plain
    if kind == "softmax":
        x = xs[0]
        return (lambda: torch.softmax(x, dim=attrs["axis"])), plain
    binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "maximum": torch.maximum,
              "minimum": torch.minimum}
    if kind in binary:
        a, b, f = xs[0], xs[1], binary[kind]
        return (lambda: f(a, b)), plain
    unary = {"relu": F.relu, "silu": F.silu, "sigmoid": torch.sigmoid, "gelu": F.gelu, "tanh": torch.tanh,
             "exp": torch.exp, "neg": torch.neg, "square": torch.square, "mish": F.mish,
             "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "copy": torch.clone}
    if kind in unary:
        x, f = xs[0], unary[kind]
        return (lambda: f(x)), plain
    if kind == "matmul":
        a, b = xs
        if attrs["transpose_b"]:
            return (lambda: torch.matmul(a, b.transpose(-1, -2))), plain
        return (lambda: torch.matmul(a, b)), plain
    raise ValueError(f"calibrate cannot run op kind '{kind}'")


def _prepare_attention(case, attrs, xs, torch):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = xs
    h = attrs["heads"]
    hkv = attrs["kv_heads"] or h
    d = attrs["head_dim"] or q.shape[2] // h
    b, lq, lk = q.shape[0], q.shape[1], k.shape[1]
    # [B, L, H*D] -> [B, H, L, D] views, as the models' attention processors pass them to SDPA
    qh = q.view(b, lq, h, d).transpose(1, 2)
    kh = k.view(b, lk, hkv, d).transpose(1, 2)
    vh = v.view(b, lk, hkv, v.shape[2] // hkv).transpose(1, 2)
    kwargs = {"enable_gqa": True} if hkv != h else {}
    if attrs["causal"] and lq == lk:
        kwargs["is_causal"] = True
    elif attrs["causal"] and lq > 1:
        # queries are the last lq of lk positions (the simulator's convention): bottom-right aligned mask
        from torch.nn.attention.bias import causal_lower_right
        kwargs["attn_mask"] = causal_lower_right(lq, lk)
    # a single query (decode) sees every key: no mask

    def fn():
        return F.scaled_dot_product_attention(qh, kh, vh, **kwargs)

    if case["attention"] == "math":
        backends = [("math", lambda: sdpa_kernel([SDPBackend.MATH]))]
    else:
        backends = [("flash", lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION])),
                    ("efficient", lambda: sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]))]
    return fn, backends


@contextlib.contextmanager
def _settings(torch):
    """fp32 = IEEE fp32 (no TF32); math attention in the input dtype; no autograd. Restored afterwards."""
    saved = []

    def setflag(obj, name, value):
        if hasattr(obj, name):
            saved.append((obj, name, getattr(obj, name)))
            setattr(obj, name, value)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setflag(torch.backends.cuda.matmul, "allow_tf32", False)
        setflag(torch.backends.cudnn, "allow_tf32", False)
        reduction = getattr(torch.backends.cuda, "allow_fp16_bf16_reduction_math_sdp", None)
        allowed = getattr(torch.backends.cuda, "fp16_bf16_reduction_math_sdp_allowed", None)
        was = allowed() if reduction and allowed else False
        if reduction:
            reduction(True)
    try:
        with torch.inference_mode():
            yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for obj, name, value in reversed(saved):
                setattr(obj, name, value)
            if reduction:
                reduction(was)


def device_name(torch, dev) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def driver_version(torch, dev) -> str:
    """The NVIDIA driver version (nvidia-smi), else the CUDA driver API version PyTorch reports; "" on the CPU."""
    if dev.type != "cuda":
        return ""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader",
                                  f"--id={dev.index or 0}"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        v = torch._C._cuda_getDriverVersion()
        return f"CUDA {v // 1000}.{v % 1000 // 10}"
    except Exception:
        return ""


def _short(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    return text[:200]


def _time_calls(fn, n, torch, dev, flush) -> list:
    """Seconds of each of n calls."""
    if dev.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for start, end in events:
            if flush is not None:
                flush.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(dev)
        return [start.elapsed_time(end) / 1e3 for start, end in events]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _run_case(case, torch, dev, repeats, warmup, flush):
    """(median seconds, calls timed, back-end name) of one case; raises on failure."""
    fn, backends = _prepare(case, torch, dev)
    last = None
    for name, ctx in backends:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")        # SDPA explains at length why a back-end is unavailable
                with ctx():
                    fn()                               # probe: raises where the back-end has no kernel
        except RuntimeError as e:
            if len(backends) == 1 or "out of memory" in str(e).lower():
                raise
            last = e
            continue
        with ctx():
            for _ in range(max(0, warmup - 1)):
                if flush is not None:
                    flush.zero_()
                fn()
            call_s = statistics.median(_time_calls(fn, 1, torch, dev, flush)) if warmup > 0 else None
            n = _timed_calls(repeats, call_s)
            times = _time_calls(fn, n, torch, dev, flush)
        return statistics.median(times), n, name
    raise last


def _release(torch, dev, case, failed: bool) -> None:
    """After a case on CUDA: wait for it, and hand freed blocks back to the driver after large or failed cases,
    so the caching allocator's pool does not grow with every new shape."""
    try:
        torch.cuda.synchronize(dev)
    except RuntimeError:
        failed = True
    try:
        large = sum(footprint(case)) > 64 * 2**20
    except Exception:  # noqa: BLE001 -- a case the simulator cannot cost (its error is already in the row)
        large = True
    if failed or large:
        torch.cuda.empty_cache()


def measure(cases: list, device: str, repeats: int, warmup: int, progress=None, budget_s: float | None = None,
            flush_l2: bool = True) -> list:
    """Time every case on `device` ("cuda", "cuda:N", "cpu"); one row per case, in order.

    Row = case + time_s (median seconds, None on error), repeats (calls timed), device, torch, driver, date,
    error ("" or a short message) and backend (attention: "flash", "efficient" or "math"; else "").
    `progress(i, n, row)` is called after each case. With `budget_s`, cases left when that many seconds have
    passed are recorded with the error "skipped: time budget" instead of being run.
    """
    torch = _import_torch()
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device}: CUDA is not available to this PyTorch")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    info = {"device": device_name(torch, dev), "torch": torch.__version__, "driver": driver_version(torch, dev),
            "date": _dt.date.today().isoformat()}
    flush = None
    if dev.type == "cuda" and flush_l2:
        l2 = getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or 50 * 2**20
        flush = torch.empty(min(max(4 * l2, 128 * 2**20), 512 * 2**20) // 4, dtype=torch.int32, device=dev)

    rows, t_start = [], time.monotonic()
    with _settings(torch):
        for i, case in enumerate(cases):
            row = dict(case, time_s=None, repeats=0, **info, error="", backend="")
            if budget_s is not None and time.monotonic() - t_start > budget_s:
                row["error"] = "skipped: time budget"
            else:
                try:
                    row["time_s"], row["repeats"], row["backend"] = _run_case(case, torch, dev, repeats, warmup,
                                                                              flush)
                except Exception as e:  # noqa: BLE001 -- any failure of one case is data, not the end of the run
                    row["error"] = _short(e)
                finally:
                    if dev.type == "cuda":
                        _release(torch, dev, case, bool(row["error"]))
            rows.append(row)
            if progress:
                progress(i, len(cases), row)
    del flush
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return rows


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
    from .writers import write_atomic
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
    from .dtypes import BYTES
    from .errors import Location, SpecError, shown
    from .loader import read_text
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
    except csv.Error as exc:
        raise SpecError(f"malformed CSV: {exc}", Location(path)) from None
    return rows


# ---------------------------------------------------------------------------------------------- CLI body

def _describe(case) -> str:
    attrs = ",".join(f"{k}={v}" for k, v in case["attrs"].items())
    shapes = " ".join("x".join(map(str, s)) for s in case["shapes"])
    att = f" {case['attention']}" if case["attention"] else ""
    return f"{case['kind']}{att} {shapes} {attrs} {case['dtype']}".replace("  ", " ")


def main(out: str, device: str | None = None, quick: bool | None = None, repeats: int | None = None,
         warmup: int | None = None, budget_s: float | None = None) -> int:
    """`python -m simulator calibrate`: measure the plan on `device` (default: cuda if available, else cpu) and
    write the CSV `out` atomically. `quick` None = quick on the CPU, full on a GPU. Progress goes to stderr.
    Returns the exit status: 0, or 2 when PyTorch or the device is missing."""
    try:
        torch = _import_torch()
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        print(f"error: --device {device}: {e}", file=sys.stderr)
        return 2
    if dev.type not in ("cuda", "cpu"):
        print(f"error: --device {device}: expected cuda or cpu", file=sys.stderr)
        return 2
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {device}: CUDA is not available to this PyTorch ({torch.__version__})",
              file=sys.stderr)
        return 2
    gpu = dev.type == "cuda"
    if quick is None:
        quick = not gpu
    side = "gpu" if gpu else "cpu"
    repeats = DEFAULT_REPEATS[side] if repeats is None else repeats
    warmup = DEFAULT_WARMUP[side] if warmup is None else warmup
    if repeats < 1 or warmup < 0:
        print("error: --repeats must be at least 1 and --warmup at least 0", file=sys.stderr)
        return 2

    cases = plan(device, quick)
    note = ""
    if gpu:
        est = estimate(cases, repeats, warmup)
        note = f"; estimate on an H100 {est['seconds'] / 60:.1f} min, peak {est['peak_bytes'] / 2**30:.1f} GiB"
    print(f"calibrate: {len(cases)} cases on {device} ({'quick' if quick else 'full'} plan), repeats {repeats}, "
          f"warmup {warmup}{note}", file=sys.stderr)
    width = len(str(len(cases)))
    t0 = time.monotonic()

    def progress(i, n, row):
        if row["error"]:
            result = f"error: {row['error']}"
        else:
            result = f"{row['time_s'] * 1e3:.4f} ms"
            if row["backend"]:
                result += f" ({row['backend']})"
        print(f"[{i + 1:{width}}/{n}] {time.monotonic() - t0:6.1f}s  {_describe(row)}: {result}",
              file=sys.stderr, flush=True)

    try:
        rows = measure(cases, device, repeats, warmup, progress, budget_s)
    except KeyboardInterrupt:
        print("calibrate: interrupted, nothing written", file=sys.stderr)
        return 130
    write_csv(rows, out)
    failed = sum(1 for r in rows if r["error"])
    print(f"wrote {out}: {len(rows)} rows, {failed} without a time, {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0
