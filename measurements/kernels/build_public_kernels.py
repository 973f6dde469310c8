"""Build public-kernels.csv from published kernel timings (numbers copied from the sources cited in README.md).

Every time_s is plain arithmetic on a published number; the formula used is written into the row's `source`.
Run from the repository root:  python measurements/kernels/build_public_kernels.py
"""
import csv
import json
import re
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "public-kernels.csv")
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))   # the repository root, for `simulator`
from simulator.measurements import COLUMNS as MEASUREMENT_COLUMNS  # noqa: E402

# the calibration CSV's columns, then the device, source document and citation of each published number
COLUMNS = MEASUREMENT_COLUMNS + ("hardware", "source_id", "source")
rows = []


def g(x):
    """A float to 4 significant digits for the text of a note."""
    return f"{x:.4g}"


def backend(kind, source_id, source, attention):
    """The attention back-end a row timed, named as hardware files list them (efficiency.attention_backends):
    cudnn-frontend rows ran cuDNN's fused attention; the FlashAttention-3 paper's series name their kernel."""
    if kind != "attention":
        return attention
    if source_id.startswith("cudnn-fe"):
        return "cudnn"
    m = re.search(r"; (FlashAttention-[23]|cuDNN), head dim", source)
    if source_id == "fa3-paper" and m:
        return {"FlashAttention-2": "flash", "FlashAttention-3": "fa3", "cuDNN": "cudnn"}[m.group(1)]
    return attention


def add(kind, shapes, attrs, dtype, time_s, hardware, source_id, source, attention="", repeats=0, device="published",
        torch="", driver="", date=""):
    attention = backend(kind, source_id, source, attention)
    rows.append({"kind": kind, "shapes": json.dumps(shapes, separators=(",", ":")),
                 "attrs": json.dumps(attrs, separators=(",", ":")), "attention": attention, "dtype": dtype,
                 "time_s": f"{time_s:.6g}", "repeats": repeats, "device": device, "torch": torch, "driver": driver,
                 "date": date, "error": "", "hardware": hardware, "source_id": source_id, "source": source})


def gemm_tflops(m, n, k, tflops, dtype, hardware, sid, where, **kw):
    t = 2 * m * n * k / (tflops * 1e12)
    add("linear", [[m, k]], {"out_features": n, "bias": False}, dtype, t, hardware, sid,
        f"{where}: M={m} N={n} K={k} {tflops} TFLOP/s -> 2*{m}*{n}*{k}/{tflops}e12 s", **kw)


def attn_shapes(b, lq, lk, h, hkv, d):
    return [[b, lq, h * d], [b, lk, hkv * d], [b, lk, hkv * d]]


def attn_attrs(h, hkv, d, causal):
    a = {"heads": h, "head_dim": d}
    if hkv != h:
        a["kv_heads"] = hkv
    if causal:
        a["causal"] = True
    return a


# ------------------------------------------------------------------------------------------------ pyptx
SID = "pyptx-perf"
SRC = "github.com/patrick-toulme/pyptx docs/performance.md (commit bc3b0cad, 2026-05-03)"
# Hopper GEMM (hand-written WGMMA kernel), bf16, M=N=K, time column in ms
for n, ms in ((2048, 0.087), (4096, 0.176), (6144, 0.580), (8192, 1.349)):
    add("linear", [[n, n]], {"out_features": n, "bias": False}, "bf16", ms * 1e-3, "h100", SID,
        f"{SRC}, 'Hopper GEMM (warp-specialized, bf16)' table, pyptx kernel (not cuBLAS): {n}^3 {ms} ms -> "
        f"{ms}e-3 s (CUDA events averaged over the iterations)", device="H100 SXM5 80GB", torch="2.8",
        driver="580.126.09")
# Blackwell GEMM table: cuBLAS column (TFLOPS), bf16
for m, n, k, tf in ((2048, 2048, 2048, 1006), (4096, 4096, 4096, 1532), (4096, 8192, 8192, 1652),
                    (8192, 4096, 8192, 1648), (8192, 8192, 8192, 1610)):
    gemm_tflops(m, n, k, tf, "bf16", "b200", SID,
                f"{SRC}, 'Blackwell GEMM (tcgen05, bf16)' table, cuBLAS TFLOPS column, shape M x N x K",
                device="B200", torch="2.8")
# Layer norm fp32, torch.nn.functional.layer_norm column; GB/s with bytes = 2*B*N*4 + 2*N*4 (benchmarks/bench_final.py)
for b, n, us, gbs in ((32, 1024, 7, 37), (256, 4096, 8, 1017), (1024, 8192, 42, 1602), (2048, 8192, 82, 1643)):
    nbytes = 2 * b * n * 4 + 2 * n * 4
    add("layer_norm", [[b, n]], {}, "fp32", nbytes / (gbs * 1e9), "h100", SID,
        f"{SRC}, 'Layer norm (f32)' table, torch F.layer_norm column: B={b} N={n} {us} us, {gbs} GB/s; "
        f"time = bytes/GBps with the benchmark's bytes 2*B*N*4+2*N*4 = {nbytes} -> {nbytes}/{gbs}e9 s "
        f"(mean over 200 back-to-back calls, includes launch floor ~7 us)", device="H100 SXM5 80GB", torch="2.8",
        repeats=200)
# RMS norm fp32, pyptx fused kernel (large shapes only: small ones sit on pyptx's ~14 us dispatch floor)
for b, n, us, gbs in ((1024, 8192, 31, 2176), (2048, 8192, 51, 2647)):
    nbytes = 2 * b * n * 4 + n * 4
    add("rms_norm", [[b, n]], {}, "fp32", nbytes / (gbs * 1e9), "h100", SID,
        f"{SRC}, 'RMS norm (f32)' table, pyptx column (hand-written fused kernel): B={b} N={n} {us} us, {gbs} GB/s; "
        f"bytes 2*B*N*4+N*4 = {nbytes} (bench_final.py) -> {nbytes}/{gbs}e9 s", device="H100 SXM5 80GB",
        torch="2.8", repeats=200)
# Flash attention table, SDPA column: batch 1, 1 head, head_dim 64, bf16 (shapes from benchmarks/bench_final.py)
for lq, lk, us in ((512, 512, 15), (2048, 2048, 15), (4096, 4096, 25), (8192, 4096, 40)):
    add("attention", attn_shapes(1, lq, lk, 1, 1, 64), attn_attrs(1, 1, 64, False), "bf16", us * 1e-6, "h100", SID,
        f"{SRC}, 'Flash attention (bf16)' table, SDPA column (torch scaled_dot_product_attention, non-causal; "
        f"q [1,1,{lq},64], k/v [1,1,{lk},64] per bench_final.py): {us} us -> {us}e-6 s (integer us as published; "
        f"mean of 200 back-to-back calls, so launch-floor dominated)", attention="flash", device="H100 SXM5 80GB",
        torch="2.8", repeats=200)

# ------------------------------------------------------------------------------------------------ DeepGEMM
SID = "deepgemm-readme"
SRC = ("github.com/deepseek-ai/DeepGEMM README.md (commit 55ab91f7, 2025-03-25), 'Normal GEMMs for dense models' "
       "table, H800 SXM5 (same SMs, clocks and HBM3 as H100 SXM; NVLink cut), NVCC 12.8, FP8 e4m3 inputs with "
       "1x128/128x128 block scaling, BF16 output")
for m, n, k, tf, gbs in (
        (64, 2112, 7168, 206, 1688), (64, 24576, 1536, 289, 2455), (64, 32768, 512, 219, 2143),
        (64, 7168, 16384, 336, 2668), (64, 4096, 7168, 287, 2320), (64, 7168, 2048, 295, 2470),
        (128, 2112, 7168, 352, 1509), (128, 24576, 1536, 535, 2448), (128, 32768, 512, 358, 2103),
        (128, 7168, 16384, 645, 2604), (128, 4096, 7168, 533, 2221), (128, 7168, 2048, 510, 2277),
        (4096, 2112, 7168, 1009, 503), (4096, 24576, 1536, 1125, 893), (4096, 32768, 512, 751, 1569),
        (4096, 7168, 16384, 1426, 361), (4096, 4096, 7168, 1265, 485), (4096, 7168, 2048, 1168, 794)):
    gemm_tflops(m, n, k, tf, "fp8", "h100", SID, f"{SRC} (also {gbs} GB/s published; consistent with "
                f"M*K+K*N fp8 + M*N*2 bf16 bytes)", device="H800 SXM5")

# ------------------------------------------------------------------------------------------------ MAMF
SID = "mamf-mlengineering"
SRC = ("github.com/stas00/ml-engineering compute/accelerator/README.md (commit 7bc7c305), 'Maximum Achievable Matmul "
       "FLOPS comparison table'; mamf-finder.py: torch.mm(A[M,K], B[K,N]) (fp8: torch._scaled_mm, fp8 output), "
       "mean of 100 timed calls after 50 warmup, 256 MB cache flush before each; best shape of a sweep (selection "
       "bias: the maximum over many shapes)")
for dev, hw, dtype, tf, m, n, k, tv, note in (
        ("NVIDIA A100 SXM", "a100", "bf16", 271.2, 1024, 10240, 5120, "2.6.0+cu126", ""),
        ("NVIDIA H100 SXM", "h100", "bf16", 794.5, 2048, 2048, 13312, "2.7.0+cu126", ""),
        ("NVIDIA B200 SXM", "b200", "bf16", 1745.0, 1792, 16128, 3072, "2.7.1+cu128", ""),
        ("Intel Gaudi 3", "gaudi3", "bf16", 1243.0, 16384, 4096, 768, "2.6.0+hpu_1.21.4-3.gitabf798b",
         "; PT_HPU_LAZY_MODE=1"),
        ("AMD MI300X", "mi300x", "bf16", 668.4, 10240, 15360, 8192, "2.5.1+6.3.42131",
         "; PYTORCH_TUNABLEOP_ENABLED=1"),
        ("NVIDIA H100 SXM", "h100", "fp8", 1402.6, 1024, 9216, 14336, "2.7.0+cu126", ""),
        ("NVIDIA H200 SXM", "h200", "fp8", 1453.4, 1280, 4096, 12032, "2.7.1+cu128", ""),
        ("NVIDIA B200 SXM", "b200", "fp8", 3432.5, 15360, 4096, 3072, "2.7.1+cu128", ""),
        ("Intel Gaudi 3", "gaudi3", "fp8", 1289.5, 16640, 1536, 3072, "2.6.0+hpu_1.21.4-3.gitabf798b",
         "; PT_HPU_LAZY_MODE=1")):
    table = "FP8 (float8_e4m3fn)" if dtype == "fp8" else "BF16"
    gemm_tflops(m, n, k, tf, dtype, hw, SID, f"{SRC}; {table} table, {dev}, best shape {m}x{n}x{k}{note}",
                device=dev, torch=tv, repeats=100)

# ------------------------------------------------------------------------------------------------ FlashAttention-3
SID = "fa3-paper"
SRC = ("FlashAttention-3 paper (Shah et al., arXiv 2407.08608), Figure 'Attention forward speed (FP16/BF16) on "
       "H100 SXM5': hidden 2048 (heads = 2048/head_dim), batch*seqlen = 16k; values TRANSCRIBED from the bar labels "
       "in shared/reference/kernel-measurements.md")
FA3 = (  # (head_dim, causal, kernel, [TFLOP/s at 512, 1k, 2k, 4k, 8k, 16k], cross-checked)
    (128, False, "FlashAttention-2", (309, 350, 362, 368, 370, 370), True),
    (128, False, "cuDNN", (497, 574, 617, 609, 600, 595), True),
    (128, False, "FlashAttention-3", (467, 565, 625, 638, 646, 648), True),
    (128, True, "FlashAttention-2", (191, 260, 298, 319, 333, 335), False),
    (128, True, "FlashAttention-3", (292, 423, 521, 579, 602, 616), False),
    (64, False, "FlashAttention-3", (333, 392, 460, 476, 496, 497), True),
)
for d, causal, kern, tfs, checked in FA3:
    h = 2048 // d
    for seq, tf in zip((512, 1024, 2048, 4096, 8192, 16384), tfs):
        b = 16384 // seq
        flops = 4 * b * h * seq * seq * d // (2 if causal else 1)
        chk = ("a second, independent transcription of the same figure (subtext.edge.nugit.net image extraction) "
               "agrees" if checked else "single transcription, not cross-checked")
        add("attention", attn_shapes(b, seq, seq, h, h, d), attn_attrs(h, h, d, causal), "fp16",
            flops / (tf * 1e12), "h100", SID,
            f"{SRC} ({chk}); {kern}, head dim {d}, {'causal' if causal else 'non-causal'}, seqlen {seq}: "
            f"{tf} TFLOP/s -> 4*{b}*{h}*{seq}*{seq}*{d}{'/2' if causal else ''}/{tf}e12 s (paper's FLOP count, "
            f"halved for causal)", attention="flash", device="H100 SXM5 80GB")

# ------------------------------------------------------------------------------------------------ cuDNN frontend
SID = "cudnn-fe-sdpa-train"
SRC = ("github.com/NVIDIA/cudnn-frontend benchmark/sdpa_benchmark_training/results/h200_919_only_cudnn/"
       "llama3.1_20260227_034703.csv (commit 3929da2e): cuDNN SDPA forward, fwd_time_ms column (median of "
       "num_iterations=10 device times from the profiler, 256 MB L2 flush between calls); cuDNN 9.19 (backend 91901)")
for seq, mask, ms in ((32768, "top_left", 25.566), (32768, "no_mask", 50.769), (16384, "top_left", 6.531),
                      (16384, "no_mask", 12.524), (8192, "top_left", 1.708), (8192, "no_mask", 3.182),
                      (4096, "top_left", 0.465), (4096, "no_mask", 0.819), (2048, "top_left", 0.142),
                      (2048, "no_mask", 0.217)):
    causal = mask == "top_left"
    add("attention", attn_shapes(1, seq, seq, 64, 8, 128), attn_attrs(64, 8, 128, causal), "bf16", ms * 1e-3,
        "h200", SID, f"{SRC}; bf16, batch 1, q=kv={seq}, 64 q heads / 8 kv heads, head dim 128, attn_mask {mask}: "
        f"{ms} ms -> {ms}e-3 s", attention="flash", device="NVIDIA H200", repeats=10, date="2026-02-27")

SID = "cudnn-fe-norms"
SRC = ("github.com/NVIDIA/cudnn-frontend benchmark/norms/results/h200/all_models_20260227_035147.csv (commit "
       "3929da2e), backend 'pytorch' rows (torch.nn.functional.rms_norm / layer_norm on an [N,C,1,1] bf16 tensor), "
       "forward: median device time from the profiler, 256 MB L2 flush between calls")
for name, kind, n, c, ms, gbs in (
        ("llama3-8b", "rms_norm", 16384, 4096, 0.080, 3364.5), ("llama3-70b", "rms_norm", 8192, 8192, 0.102, 2627.6),
        ("llama31-405b", "rms_norm", 4096, 16384, 0.112, 2395.9), ("llama4-e16", "rms_norm", 8192, 5120, 0.054, 3121.6),
        ("gpt3-175b", "layer_norm", 1024, 12288, 0.031, 1643.7), ("mixtral-8x7b", "rms_norm", 8192, 4096, 0.043, 3114.8),
        ("mixtral-8x22b", "rms_norm", 4096, 6144, 0.036, 2794.6), ("nemotronh-56b", "rms_norm", 4096, 8192, 0.053, 2522.7),
        ("deepseek-v3-2048x4096", "rms_norm", 2048, 4096, 0.012, 2724.9),
        ("deepseek-v3-8192x128", "rms_norm", 8192, 128, 0.007, 567.0),
        ("qwen3-30b-4096x2048", "rms_norm", 4096, 2048, 0.013, 2669.8),
        ("qwen3-30b-16384x128", "rms_norm", 16384, 128, 0.013, 667.2)):
    if kind == "rms_norm":
        nbytes = (n * c + c) * 2 + n * c * 2 + n * 4
        formula = f"(N*C+C)*2 + N*C*2 + N*4 = {nbytes}"
        attrs = {}
    else:
        nbytes = (n * c + 2 * c) * 2 + n * c * 2 + 8 * n
        formula = f"(N*C+2C)*2 + N*C*2 + 8N = {nbytes}"
        attrs = {}
    add(kind, [[n, c]], attrs, "bf16", nbytes / (gbs * 1e9), "h200", SID,
        f"{SRC}; config {name}: N={n} C={c}, fwd_time_ms {ms}, fwd_gbps {gbs}; time = bytes/GBps with the "
        f"benchmark's bytes (benchmark_single_norm.py compute_bandwidth_bytes) {formula} -> {nbytes}/{gbs}e9 s "
        f"(fwd_gbps used because fwd_time_ms has only 3 decimals)", device="NVIDIA H200", repeats=20,
        date="2026-02-27")

SID = "cudnn-fe-attn-inference"
SRC0 = ("github.com/NVIDIA/cudnn-frontend benchmark/attention_inference/results/{phase}/{gpu}/{file} (commit {c}), "
        "backend 'cudnn' (native engines, contiguous KV), bf16, time_ms column: CUDA events, median of 20 steady-state "
        "calls; README: full context is causal s_q==s_kv, chunked context is bottom-right causal, generation = decode")
PREFILL = {
    "h200": ("prefill_sweep_20260928_142443.csv", "0af834f0", "NVIDIA H200", "2026-09-28", (
        (2048, 2048, 64, 8, 128, 0.140125), (4096, 4096, 64, 8, 128, 0.458976), (8192, 8192, 64, 8, 128, 1.682353),
        (16384, 16384, 64, 8, 128, 6.468787),
        (256, 8192, 64, 8, 128, 0.120127), (256, 131072, 64, 8, 128, 1.751825), (2048, 8192, 64, 8, 128, 0.808637),
        (2048, 131072, 64, 8, 128, 14.379252),
        (2048, 2048, 8, 1, 128, 0.0296), (4096, 4096, 8, 1, 128, 0.090975), (8192, 8192, 8, 1, 128, 0.270684),
        (16384, 16384, 8, 1, 128, 0.90348),
        (2048, 2048, 32, 2, 256, 0.14147), (4096, 4096, 32, 2, 256, 0.442265), (8192, 8192, 32, 2, 256, 1.576537),
        (16384, 16384, 32, 2, 256, 5.985689))),
    "b200": ("prefill_sweep_20260918_221024.csv", "0501eca2", "NVIDIA B200", "2026-09-18", (
        (2048, 2048, 64, 8, 128, 0.075104), (4096, 4096, 64, 8, 128, 0.228771), (8192, 8192, 64, 8, 128, 0.78467),
        (16384, 16384, 64, 8, 128, 2.955586),
        (256, 8192, 64, 8, 128, 0.10288), (256, 131072, 64, 8, 128, 1.560908), (2048, 8192, 64, 8, 128, 0.379423),
        (2048, 131072, 64, 8, 128, 6.197645))),
}
for hw, (fname, commit, dev, date, cases) in PREFILL.items():
    src = SRC0.format(phase="prefill_sweep", gpu=hw, file=fname, c=commit)
    for lq, lk, h, hkv, d, ms in cases:
        kind = "full causal" if lq == lk else "chunked, bottom-right causal"
        add("attention", attn_shapes(1, lq, lk, h, hkv, d), attn_attrs(h, hkv, d, True), "bf16", ms * 1e-3, hw, SID,
            f"{src}; context ({kind}) batch 1, q_tokens {lq}, kv_len {lk}, {h} q heads / {hkv} kv heads, head dim "
            f"{d}: {ms} ms -> {ms}e-3 s", attention="flash", device=dev, repeats=20, date=date)
src = SRC0.format(phase="decode_sweep", gpu="h200", file="decode_sweep_20260928_131747.csv", c="b1214d5c")
for b, lk, ms in ((1, 2048, 0.006432), (8, 2048, 0.024801), (32, 2048, 0.072767), (128, 2048, 0.256257),
                  (1, 8192, 0.01456), (1, 32768, 0.041247), (1, 131072, 0.131072), (8, 131072, 0.966824),
                  (32, 131072, 3.828454), (128, 131072, 15.259997)):
    add("attention", attn_shapes(b, 1, lk, 64, 8, 128), attn_attrs(64, 8, 128, False), "bf16", ms * 1e-3, "h200", SID,
        f"{src}; generation (decode, q_tokens 1) llama3.1: batch {b}, kv_len {lk}, 64 q heads / 8 kv heads, head dim "
        f"128, bf16 KV: {ms} ms -> {ms}e-3 s (memory-bound)", attention="flash", device="NVIDIA H200", repeats=20,
        date="2026-09-28")

# ------------------------------------------------------------------------------------------------ JAX Pallas TPU
SID = "jax-pallas-tpu-matmul"
SRC = ("github.com/jax-ml/jax docs/pallas/tpu/matmul.ipynb (commit cec06d11) stored cell outputs, 'This notebook was "
       "run on a TPU v5e chip'; bf16 x bf16 -> bf16, M=K=N; time = timeit over 100 calls of "
       "jax.block_until_ready(f(x, y)) / 100, so it includes per-call host dispatch")
for impl, cell, vals in (("XLA jnp.matmul", "'XLA matmul' cell", ((1024, 0.00011943008983507753),
                                                                   (4096, 0.0008272899803705514),
                                                                   (8192, 0.006047147869830951))),
                         ("Pallas kernel bm=512, bk=1024, bn=1024", "bf16 Pallas matmul cell",
                          ((1024, 0.00012708659982308746), (4096, 0.00088908776990138),
                           (8192, 0.006099433819763363)))):
    for n, t in vals:
        add("linear", [[n, n]], {"out_features": n, "bias": False}, "bf16", t, "tpu-v5e", SID,
            f"{SRC}; {impl} ({cell}): '{n} x {n} x {n}' Matmul time: {t} s (used as is)", device="TPU v5e",
            repeats=100)


# ------------------------------------------------------------------------------------------------ TPU v6e GEMMs
SID = "tpu-v6e-gemm-benchmark"
SRC = ("github.com/yangwhale/gpu-tpu-pedia tpu/v7_perf/chay_gemm_benchmark_simple/ (JAX, jnp.matmul under jax.jit, "
       "bf16 x bf16, one TPU v6e chip); README.md (commit cf60275f) describes both timing modes")
# 'trace' mode: the device time of the matmul from the JAX profiler trace (device_duration_ps), no host dispatch
add("linear", [[8192, 8192]], {"out_features": 8192, "bias": False}, "bf16", 1510.94375e-6, "tpu-v6e", SID,
    f"{SRC}; results_trace_test.csv (commit 6744feed), timing_mode trace, m=n=k=8192: time_us 1510.94375 -> "
    "1.51094375e-3 s (727.7 TFLOP/s, 79.3 % of 918)", device="Google TPU v6e (Trillium)", date="2026-02-11")
# The same repository's default-mode rows (results_v6e.csv) are left out: they time perf_counter around each call
# and block_until_ready, which adds 130-150 us of host dispatch per call (the smallest GEMMs all take that long),
# and the kernel model has no per-call host term.


# cuDNN SDPA training benchmark, fp8 forward rows of the same H200 file (q/k/v/o e4m3)
SID = "cudnn-fe-sdpa-train"
SRC = ("github.com/NVIDIA/cudnn-frontend benchmark/sdpa_benchmark_training/results/h200_919_only_cudnn/"
       "llama3.1_20260227_034703.csv (commit 3929da2e): cuDNN SDPA forward, fwd_time_ms column (median of "
       "num_iterations=10 device times from the profiler, 256 MB L2 flush between calls); cuDNN 9.19 (backend 91901)")
for seq, mask, ms in ((32768, "top_left", 16.884), (32768, "no_mask", 33.120), (16384, "top_left", 4.357),
                      (16384, "no_mask", 8.335), (8192, "top_left", 1.141), (8192, "no_mask", 2.149),
                      (4096, "top_left", 0.322), (4096, "no_mask", 0.565), (2048, "top_left", 0.098),
                      (2048, "no_mask", 0.158)):
    causal = mask == "top_left"
    add("attention", attn_shapes(1, seq, seq, 64, 8, 128), attn_attrs(64, 8, 128, causal), "fp8", ms * 1e-3,
        "h200", SID, f"{SRC}; data_type fp8 (e4m3 q/k/v), batch 1, q=kv={seq}, 64 q heads / 8 kv heads, head dim "
        f"128, attn_mask {mask}: {ms} ms -> {ms}e-3 s", attention="flash", device="NVIDIA H200", repeats=10,
        date="2026-02-27")

# cuDNN attention inference benchmark, B200 decode rows
SID = "cudnn-fe-attn-inference"
src = SRC0.format(phase="decode_sweep", gpu="b200", file="decode_sweep_20260918_213000.csv", c="0501eca2")
for b, lk, ms in ((1, 2048, 0.0064), (8, 2048, 0.01744), (32, 2048, 0.05488), (128, 2048, 0.170304),
                  (1, 8192, 0.010944), (1, 32768, 0.029887), (1, 131072, 0.094464), (8, 131072, 0.606939),
                  (32, 131072, 2.42213), (128, 131072, 9.494187)):
    add("attention", attn_shapes(b, 1, lk, 64, 8, 128), attn_attrs(64, 8, 128, False), "bf16", ms * 1e-3, "b200", SID,
        f"{src}; generation (decode, q_tokens 1) llama3.1: batch {b}, kv_len {lk}, 64 q heads / 8 kv heads, head dim "
        f"128, bf16 KV: {ms} ms -> {ms}e-3 s (memory-bound)", attention="flash", device="NVIDIA B200", repeats=20,
        date="2026-09-18")

# ------------------------------------------------------------------------------------------------ Liger-Kernel
SID = "liger-benchmark-data"
SRC = ("github.com/linkedin/Liger-Kernel benchmark/data/all_benchmark_data.csv (commit ead96b61), "
       "metric speed, mode forward, baseline provider 'huggingface' = the PyTorch module; y_value_50 = median ms "
       "of triton.testing.do_bench (CUDA events per call, L2 cache cleared between calls)")
for gpu, hw, ts, lv, vals in (
        ("NVIDIA A100-SXM4-80GB", "a100", "2024-09-03", "0.2.1",
         ((1024, 0.034143999218940735), (2048, 0.05734400078654289), (4096, 0.1218239963054657),
          (8192, 0.25755199790000916), (16384, 0.5066879987716675))),
        ("NVIDIA H100 80GB HBM3", "h100", "2025-07-17", "0.6.0",
         ((1024, 0.023584000766277313), (2048, 0.03734400123357773), (4096, 0.06617599725723267),
          (8192, 0.15267199277877808), (16384, 0.3067840039730072)))):
    for n, ms in vals:
        add("layer_norm", [[4096, n]], {}, "fp32", ms * 1e-3, hw, SID,
            f"{SRC}; kernel layer_norm (torch.nn.LayerNorm(N), benchmark_layer_norm.py: x [M, N], "
            f"extra config M=4096 dtype float32), N={n}: {ms} ms -> {ms}e-3 s; liger {lv}",
            device=gpu, date=ts)
for c, ms in ((32, 0.030688000842928886), (64, 0.043007999658584595), (128, 0.07168000191450119),
              (256, 0.13516800105571747), (512, 0.25808000564575195), (1024, 0.4986239969730377),
              (2048, 0.9819360077381134)):
    add("group_norm", [[128, c, 512]], {"groups": c // 4}, "fp32", ms * 1e-3, "b200", SID,
        f"{SRC}; kernel group_norm (torch.nn.GroupNorm(C//4, C), benchmark_group_norm.py: x [M, C, H] with "
        f"M=128, H=512, channels_per_group 4, float32), C={c}: {ms} ms -> {ms}e-3 s; liger 0.7.0",
        device="NVIDIA B200", date="2026-02-28")

# ------------------------------------------------------------------------------------------------ gpu-benches
SID = "gpu-benches-stream"
SRC = ("github.com/te42kyfo/gpu-benches gpu-stream/{f}.txt (commit 1c36d509), row blockSize 1024 (100 % "
       "occupancy; {dev}); arrays of 128Mi+2 doubles (1 GiB each, gpu-stream/main.cu max_buffer_size); GB/s = "
       "streams x N x 8 B / time")
NST = 128 * 1024 * 1024 + 2
for f, hw, dev, scale, triad in (("a100_80", "a100", "A100 80GB", 1732, 1759),
                                 ("a100_40", "a100-40gb", "A100 40GB", 1381, 1360),
                                 ("h100_pcie", "h100-pcie", "H100 PCIe", 1704, 1832),
                                 ("h200", "h200", "H200", 3165, 3534)):
    src = SRC.format(f=f, dev=dev)
    nbytes = 2 * NST * 8
    add("copy", [[2 * NST]], {}, "fp32", nbytes / (scale * 1e9), hw, SID,
        f"{src}; 'scale' kernel A[i] = B[i]*0.25 (1 load + 1 store stream, fp64), {scale} GB/s -> "
        f"2*{NST}*8/{scale}e9 s; written as a copy of an fp32 tensor of 2*{NST} elements (same bytes)",
        device=dev)
    nbytes = 3 * NST * 8
    add("add", [[2 * NST], [2 * NST]], {}, "fp32", nbytes / (triad * 1e9), hw, SID,
        f"{src}; 'triad' kernel A[i] = B[i] + c*C[i] (2 load + 1 store streams, fp64), {triad} GB/s -> "
        f"3*{NST}*8/{triad}e9 s; written as an add of two fp32 tensors of 2*{NST} elements (same bytes)",
        device=dev)


# ------------------------------------------------------------------------------------------------ TileLang K sweep
SID = "tilelang-matmul-ksweep"
SRC = ("github.com/xwhzz/tilelang (fork of tile-ai/tilelang) benchmark/matmul/README.md (commit b2acfc37), "
       "'FP16 Matmul Benchmark (8192x8192)': TileLang autotuned kernel (benchmark_matmul.py, default search space), "
       "NVIDIA H800 SXM (H100 SXM compute and HBM), driver 560.35.05, fp16, M=N=8192")
for k, lat, tf in ((256, 0.089056, 386), (512, 0.132064, 520), (1024, 0.218816, 628), (2048, 0.390112, 705),
                   (4096, 0.746752, 736), (8192, 1.449888, 758), (16384, 2.871168, 766)):
    add("linear", [[8192, k]], {"out_features": 8192, "bias": False}, "fp16", lat * 1e-3, "h100", SID,
        f"{SRC}; K={k}: latency column {lat} (header says s, but the row's {tf} TFLOPs = 2*8192*8192*{k}/latency "
        f"holds only for ms) -> {lat}e-3 s", device="H800 SXM", driver="560.35.05")

# ------------------------------------------------------------------------------------------------ AMD MAF
SID = "amd-maf-blog"
SRC = ("ROCm blogs 'Measuring Max-Achievable FLOPs - Part 2' (Sander, Masters, Poursartip, Ho, 28 Feb 2025), "
       "github.com/ROCm/rocm-blogs blogs/software-tools-optimization/measuring-max-achievable-flops-part2/README.md "
       "(commit 8e011952); MI300X (750 W), hipBLASLt commit db8e93b4, ROCm 6.3.0, trig_float inputs, rotating 512 MB "
       "buffers (cold cache), GPU timer")
add("linear", [[4096, 32896]], {"out_features": 4864, "bias": False}, "bf16", 1848.09e-6, "mi300x", SID,
    f"{SRC}; Appendix B sample output of hipblaslt-bench -m 4096 -n 4864 -k 32896 bf16 (transA N, transB N): "
    f"us column 1848.09 (709258 GFLOPS) -> 1848.09e-6 s", device="AMD Instinct MI300X", date="2025-02-25")
add("linear", [[4096, 32896]], {"out_features": 4864, "bias": False}, "fp16",
    2 * 4096 * 4864 * 32896 / 654e12, "mi300x", SID,
    f"{SRC}; Table 1 'MAF FP16' 654 TFLOPs at M=4096 N=4864 K=32896 (footnote 4) -> 2*4096*4864*32896/654e12 s",
    device="AMD Instinct MI300X", date="2025-02-25")

# ------------------------------------------------------------------------------------------------ Modular, L4 memcpy
SID = "modular-elementwise-l4"
add("copy", [[4000000]], {}, "fp32", 2 * 4 * 4000000 / 233.28e9, "l4", SID,
    "Modular 'Elementwise Operations on GPUs' (Chad Jarvis, 2024-08-12), modular.github.io/modular/elementwise-ops, "
    "section 'Cache busting memcpy experiment on the L4': Mojo vectorized copy of n2 = 4,000,000 elements "
    "('16 MiB memcpy', so 4-byte elements) at a rotating offset in a 2 GiB buffer, GB/s = 2*4*n2/t with t = host "
    "time around launch + synchronize; printed values after warm-up (iterations 5-10) 233.01, 233.54, 227.72, "
    "239.19, 232.64, 238.55 GB/s, median 233.28 GB/s -> 2*4*4e6/233.28e9 s (includes launch and sync overhead)",
    device="NVIDIA L4", repeats=6)

# ------------------------------------------------------------------------------------------------ torch-perf-test
SID = "torch-perf-test-data"
SRC = ("github.com/zzc0721/torch-performance-test-data issue #{n} ('New performance data: {dev}', in Chinese; {date}, "
       "{torch}), its detailed per-size block; test.py (commit 9d828276): torch.mm of two square randn matrices, 10 warm-up calls, "
       "then 30 back-to-back calls timed with CUDA events, no cache flush; TFLOPS = 2*n^3*30/elapsed")
for n_issue, hw, dev, date, tv, series in (
        (120, "l4", "NVIDIA L4", "2026-01-12", "torch 2.9.0+cu128, physical machine",
         {"fp16": (54.81, 68.83, 53.02, 53.80, 52.47), "bf16": (54.42, 70.89, 54.91, 59.40, 56.90)}),
        (95, "h100-pcie", "NVIDIA H100 PCIe", "2025-12-14", "torch 2.9.0+cu128, physical machine",
         {"fp16": (201.71, 458.03, 457.32, 437.07, 449.65), "bf16": (217.70, 449.09, 495.93, 492.84, 471.79)})):
    src = SRC.format(n=n_issue, dev=dev, date=date, torch=tv)
    for dtype, tflops in series.items():
        for size, tf in zip((1024, 2048, 4096, 8192, 10240), tflops):
            gemm_tflops(size, size, size, tf, dtype, hw, SID, f"{src}; {dtype.upper()} {size}x{size}",
                        device=dev, torch=tv.split(",")[0].split()[1], repeats=30, date=date)

# ------------------------------------------------------------------------------------------------ Azure AI benchmarking guide
# Microsoft's AI-benchmarking-guide runs the same microbenchmarks on each Azure GPU VM: cuBLASLt (hipBLASLt on
# MI300X) GEMMs "with random initialization ... and 10,000 warmup iterations" reported in TFLOPS, and BabelStream
# (CUDA/HIP model, its default 2^25-element fp64 arrays) reported as the mean over 5 runs of each kernel's best
# rate, in TB/s (10^12 B/s). The GB200 results have no hardware file here and are left out.
SID = "azure-ai-benchmarking-guide"
AZURE = {
    # hardware: (results file, device, GEMM dtype, GEMM library, {(m, n, k): TFLOPS}, (copy, add) TB/s)
    "a100": ("github.com/Azure/AI-benchmarking-guide Azure_Results/ND_A100_v4_results.md (commit 3bb66cac)",
             "NVIDIA A100-SXM4-80GB", "fp16", "GEMM CuBLASLt",
             {(1024, 1024, 1024): 119.4, (2048, 2048, 2048): 221.8, (4096, 4096, 4096): 228.0,
              (8192, 8192, 8192): 253.7, (16384, 16384, 16384): 256.5, (1024, 2145, 1024): 132.8,
              (6144, 12288, 12288): 250.8, (802816, 192, 768): 157.8}, (1.61, 1.70)),
    "h100": ("github.com/samuel-bohman/AI-benchmarking-guide (fork of Azure/AI-benchmarking-guide) "
             "Azure_Results/ND_H100_v5_results.md (commit 26d18e94)", "NVIDIA H100 80GB HBM3", "fp8", "GEMM CuBLASLt",
             {(1024, 1024, 1024): 274.1, (2048, 2048, 2048): 1011.3, (4096, 4096, 4096): 1216.9,
              (8192, 8192, 8192): 1290.1, (16384, 16384, 16384): 1377.3, (32768, 32768, 32768): 1382.2,
              (1024, 2145, 1024): 410.7, (6144, 12288, 12288): 1351.4, (802816, 192, 768): 663.8}, (2.90, 2.97)),
    "h200": ("github.com/Azure/AI-benchmarking-guide Azure_Results/ND_H200_v5_results.md (commit 7f20e5fa)",
             "NVIDIA H200 141GB", "fp8", "GEMM CuBLASLt",
             {(1024, 1024, 1024): 290.8, (2048, 2048, 2048): 1013.4, (4096, 4096, 4096): 1249.1,
              (8192, 8192, 8192): 1300.6, (16384, 16384, 16384): 1366.3, (32768, 32768, 32768): 1349.5,
              (1024, 2145, 1024): 407.9, (6144, 12288, 12288): 1318.0, (802816, 192, 768): 717.5}, (4.01, 4.15)),
    "mi300x": ("github.com/samuel-bohman/AI-benchmarking-guide (fork of Azure/AI-benchmarking-guide) "
               "Azure_Results/ND_MI300X_v5_results.md (commit 3de0c294)", "AMD Instinct MI300X", "fp8",
               "GEMM HipBLASLt",
               {(1024, 1024, 1024): 53.13, (2048, 2048, 2048): 427.74, (4096, 4096, 4096): 955.17,
                (8192, 8192, 8192): 1159.23, (16384, 16384, 16384): 1015.1, (32768, 32768, 32768): 1029.14,
                (1024, 2145, 1024): 110.96, (6144, 12288, 12288): 1159.54, (802816, 192, 768): 605.34}, (4.11, 4.14)),
}
NBS = 2 ** 25  # BabelStream's default ARRAY_SIZE (fp64 elements per array)
for hw, (src, dev, dtype, table, gemms, (copy_tb, add_tb)) in AZURE.items():
    for (m, n, k), tf in gemms.items():
        gemm_tflops(m, n, k, tf, dtype, hw, SID, f"{src}, table '{table}' ({dtype.upper()})", device=dev)
    add("copy", [[2 * NBS]], {}, "fp32", 2 * 8 * NBS / (copy_tb * 1e12), hw, SID,
        f"{src}, table 'HBM Bandwidth' (BabelStream): Copy {copy_tb} TB/s; c[i] = a[i] over 2^25 fp64 elements "
        f"(1 load + 1 store stream) -> 2*8*2^25/{copy_tb}e12 s; written as a copy of an fp32 tensor of 2*2^25 "
        f"elements (same bytes)", device=dev)
    add("add", [[2 * NBS], [2 * NBS]], {}, "fp32", 3 * 8 * NBS / (add_tb * 1e12), hw, SID,
        f"{src}, table 'HBM Bandwidth' (BabelStream): Add {add_tb} TB/s; c[i] = a[i] + b[i] over 2^25 fp64 "
        f"elements (2 load + 1 store streams) -> 3*8*2^25/{add_tb}e12 s; written as an add of fp32 tensors of "
        f"2*2^25 elements (same bytes)", device=dev)


def main():
    with open(OUT, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
