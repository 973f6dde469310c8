"""Kernel calibration harness: time real PyTorch kernels for the op kinds the simulator costs.

`python -m simulator calibrate --out measurements/<device>.csv [--device cuda|cpu] [--quick]` runs a plan of
benchmark cases (GEMMs, the UNet convolutions of the suite, flash and math attention, norms and elementwise ops)
and writes one CSV row per case, which a fitter compares with the simulator's prediction for the same op. The plan,
the CSV columns and their reading and writing live in `simulator.measurements`; this module only runs and times
kernels.

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
import datetime as _dt
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from .fidelity import cases_table, predict
from .hardware import load_hardware
from .measurements import footprint, op_call, plan, write_csv

DEFAULT_REPEATS = {"gpu": 10, "cpu": 5}
DEFAULT_WARMUP = {"gpu": 3, "cpu": 1}
MAX_CASE_S = 1.0      # timed seconds per case, past which fewer repeats are taken (never fewer than 3)


# ---------------------------------------------------------------------------------------------- estimates

# Harness overheads outside the kernels, for planning the run time only.
STARTUP_S = 20.0   # import torch, create the CUDA context, cuBLAS / cuDNN handles
CASE_S = 0.03      # per case: allocate and fill inputs, first-call set-up, synchronise, free


def flush_size(l2_bytes: float) -> int:
    """Bytes of the buffer zeroed before each timed call: four times the L2 (so nothing of a case stays cached),
    at least 128 MiB and at most 512 MiB."""
    return int(min(max(4 * l2_bytes, 128 * 2**20), 512 * 2**20))


def estimate(cases: list, repeats: int = DEFAULT_REPEATS["gpu"], warmup: int = DEFAULT_WARMUP["gpu"],
             hardware: str = "h100") -> dict:
    """Wall time and peak device memory of measuring `cases` on a GPU (default: an H100).

    The time of one call of each case is the simulator's own prediction (`fidelity.predict` on the cases as a
    kernel table, as `fidelity.validate` predicts measured rows); zeroing the L2 flush buffer before each call is
    predicted as a copy that moves as many bytes. Each case makes 1 + `warmup` + timed calls (`_timed_calls`),
    pays CASE_S, and the run pays STARTUP_S. Peak memory: the largest case's inputs, weights, outputs and
    workspace, plus the flush buffer.
    """
    spec = load_hardware(hardware).spec
    flush = flush_size(spec.on_chip.l2_bytes)
    # a copy reads and writes its tensor: flush // 4 fp16 elements move flush bytes in all
    zero = {"kind": "copy", "shapes": [[flush // 4]], "attrs": {}, "attention": "", "dtype": "fp16"}
    seconds = predict(cases_table(list(cases) + [zero], spec), spec)[0]
    flush_s = float(seconds[-1])
    total, kernel_s, peak = STARTUP_S, 0.0, 0
    for case, call_s in zip(cases, seconds[:-1].tolist()):
        calls = 1 + warmup + _timed_calls(repeats, call_s)     # back-end probe, warm-up, timed
        kernel_s += calls * call_s
        total += CASE_S + calls * (call_s + flush_s)
        peak = max(peak, sum(footprint(case)))
    return {"cases": len(cases), "seconds": total, "kernel_seconds": kernel_s, "peak_bytes": peak + flush}


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
        flush = torch.empty(flush_size(l2) // 4, dtype=torch.int32, device=dev)

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
