"""Quantisation (simulator/quantisation.py): weight_dtype, act_dtype and kv_dtype as workload options."""
import math

import pytest

import simulator
from conftest import run_cli
from simulator.hardware import load_hardware, rate
from simulator.ops import OPS, UNITS
from simulator.quantisation import DEQUANT_OPS, DEQUANT_ROWS
from simulator.simulate import load_model

LLAMA = {"dtype": "bf16", "prompt_tokens": 512, "output_tokens": 8}
A100 = load_hardware("a100").spec


def quantised_bytes(model) -> tuple[float, float]:
    """(weight bytes of the ops whose weights quantise, weight bytes of all others), shared stages once."""
    ops = [op for s in model.stages if not s.shares_weights_with for op in s.ops]
    q = sum(op.weight_bytes * op.count for op in ops if OPS[op.kind].precision == "weight")
    return q, sum(op.weight_bytes * op.count for op in ops if OPS[op.kind].precision != "weight")


def dequant_rows(result) -> list:
    """Kernel rows of dequantisation work inside a linear op's GEMM: vector FLOPs, no bytes, no launch."""
    t = result.table
    return [i for i in range(len(t)) if t.launches[i] == 0 and t.unit[i] == UNITS.index("vector")
            and t.bytes[i] == 0 and t.flops[i] > 0 and t.ops[t.op[i]][1].kind == "linear"]


def gemm_rows(result, stage: str):
    """Kernel rows of the stage's linear GEMMs (matrix unit), and their peak (unit, dtype) names."""
    t = result.table
    si = [s.name for s in result.model.stages].index(stage)
    rows = (t.stage == si) & (t.unit == UNITS.index("matrix"))
    return rows, {t.peaks[p] for p in t.peak[rows]}


@pytest.fixture(scope="module")
def llama():
    runs = {"bf16": {}, "int8": {"weight_dtype": "int8"}, "int4": {"weight_dtype": "int4"},
            "w8a8": {"weight_dtype": "int8", "act_dtype": "int8"}, "kv8": {"kv_dtype": "fp8"},
            "kv4": {"kv_dtype": "int4"}}
    return {k: simulator.run("llama2-7b", "a100", overrides={**LLAMA, **v}, stack="compile-cudagraphs")
            for k, v in runs.items()}


def test_weight_bytes_halve_to_int8_and_quarter_to_int4(llama):
    q16, rest16 = quantised_bytes(llama["bf16"].model)
    q8, rest8 = quantised_bytes(llama["int8"].model)
    q4, rest4 = quantised_bytes(llama["int4"].model)
    assert q8 == q16 / 2 and q4 == q16 / 4
    assert rest8 == rest16 == rest4 > 0          # RMSNorm scales stay in bf16
    assert llama["int4"].model.weight_bytes == q4 + rest4
    # each decode step reads the linear weights at their stored size
    t16, t4 = llama["bf16"].table, llama["int4"].table
    lin16, _ = gemm_rows(llama["bf16"], "decode")
    lin4, _ = gemm_rows(llama["int4"], "decode")
    assert t16.bytes[lin16] @ t16.count[lin16] > 3.5 * (t4.bytes[lin4] @ t4.count[lin4])


def test_weight_only_runs_at_the_activation_rate_with_its_dequantisation(llama):
    for name in ("int8", "int4"):
        r = llama[name]
        _, peaks = gemm_rows(r, "prefill")
        assert peaks == {("matrix", "bf16")}
        t = r.table
        rows = dequant_rows(r)
        assert rows
        # prefill: 512 rows dequantise each weight ceil(512 / DEQUANT_ROWS) times, decode (batch 1) once
        per_row = {r.model.stages[t.stage[i]].name: t.flops[i] / t.ops[t.op[i]][1].result.params for i in rows
                   if t.ops[t.op[i]][1].name.endswith("/q")}
        assert per_row["prefill"] == pytest.approx(DEQUANT_OPS[name] * math.ceil(512 / DEQUANT_ROWS))
        assert per_row["decode"] == pytest.approx(DEQUANT_OPS[name])
        assert not t.host[rows].any()  # no launch, no host cost of its own
    # weight-only decode is faster than bf16 (fewer bytes) but slower than the bytes alone would make it
    tpot = {k: llama[k].serving()["tpot_s"] for k in ("bf16", "int8", "int4")}
    assert tpot["int4"] < tpot["int8"] < tpot["bf16"]


def test_w8a8_runs_at_the_int8_rate(llama):
    _, peaks = gemm_rows(llama["w8a8"], "prefill")
    assert peaks == {("matrix", "int8")}
    assert rate(A100, "matrix", "int8") == 2 * rate(A100, "matrix", "bf16")
    # prefill of 512 tokens is compute-bound: its linear GEMMs take about half the bf16 compute time
    c16 = llama["bf16"].costs["compute"] @ (llama["bf16"].table.count * gemm_rows(llama["bf16"], "prefill")[0])
    c8 = llama["w8a8"].costs["compute"] @ (llama["w8a8"].table.count * gemm_rows(llama["w8a8"], "prefill")[0])
    assert c8 / c16 == pytest.approx(0.5, rel=0.05)
    # no dequantisation: weights are already in the GEMM's type
    assert not dequant_rows(llama["w8a8"]) and not dequant_rows(llama["bf16"])
    # W8A8 leaves the KV cache in the model's dtype
    assert llama["w8a8"].kv_cache_bytes == llama["bf16"].kv_cache_bytes


def test_kv_bytes_follow_kv_dtype_and_the_context_that_fits_grows(llama):
    base, kv8, kv4 = llama["bf16"], llama["kv8"], llama["kv4"]
    assert kv8.kv_cache_bytes == base.kv_cache_bytes / 2
    assert kv4.kv_cache_bytes == base.kv_cache_bytes / 4
    # Llama-2-7B: 32 layers x (K + V) x 4096 channels per token
    assert base.kv_bytes_per_token == 32 * 2 * 4096 * 2
    s, s8, s4 = base.serving(), kv8.serving(), kv4.serving()
    assert s8["max_context_tokens"] in (2 * s["max_context_tokens"], 2 * s["max_context_tokens"] + 1)
    assert s4["max_context_tokens"] >= 4 * s["max_context_tokens"]
    assert s["max_batch"] < s8["max_batch"] < s4["max_batch"]
    free = 80 * 2**30 - base.model.weight_bytes - max(st.peak_activation_bytes for st in base.model.stages)
    assert s["max_context_tokens"] == free // base.kv_bytes_per_token
    # decode reads the cache at its narrow size: fewer bytes, weights unchanged
    assert kv8.bytes < base.bytes and kv8.model.weight_bytes == base.model.weight_bytes


def test_fp4_runs_only_where_the_device_has_an_fp4_rate():
    over = {**LLAMA, "weight_dtype": "fp4", "act_dtype": "fp4"}
    r = simulator.run("llama2-7b", "b200", overrides=over, stack="compile-cudagraphs")
    assert gemm_rows(r, "prefill")[1] == {("matrix", "fp4")}
    code, out, err = run_cli("run", "llama2-7b", "--hardware", "a100", "--set", "weight_dtype=fp4")
    assert code == 2 and not out
    assert err.count("\n") == 1 and "fp4" in err and "A100" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["weight_dtype", "act_dtype", "kv_dtype"])
def test_bad_dtype_names_are_one_line_errors_listing_the_choices(name):
    code, out, err = run_cli("run", "llama2-7b", "--set", f"{name}=int3")
    assert code == 2 and err.count("\n") == 1
    assert f"{name}=int3" in err and "fp4, int4, int8, fp8, fp16, bf16, fp32" in err


def test_weights_wider_than_activations_are_refused():
    code, _, err = run_cli("run", "llama2-7b", "--set", "dtype=bf16", "--set", "act_dtype=fp8")
    assert code == 2 and err.count("\n") == 1 and "no GEMM kernel" in err


def test_ops_that_pin_their_dtype_keep_it():
    """SDXL's VAE decoder runs in decoder_dtype (fp32 by force_upcast): weight_dtype leaves it alone."""
    small = {"height": 512, "width": 512, "steps": 2}
    base = load_model("sdxl", small)
    q = load_model("sdxl", {**small, "weight_dtype": "int8"})
    w = {s.name: s.weight_bytes for s in base.stages}
    wq = {s.name: s.weight_bytes for s in q.stages}
    assert wq["decoder"] == w["decoder"]
    assert wq["denoiser"] < 0.51 * w["denoiser"]


@pytest.mark.parametrize("model, over", [
    ("llama2-7b", {"output_tokens": 4}),
    ("mixtral-8x7b", {"output_tokens": 4}),
    ("sd15", {"steps": 2}),
])
def test_defaults_leave_results_unchanged(model, over):
    dtype = load_model(model, over).params["dtype"]
    plain = simulator.run(model, "h100", overrides=over).to_dict()
    explicit = simulator.run(model, "h100", overrides={**over, "weight_dtype": dtype, "act_dtype": dtype,
                                                      "kv_dtype": dtype}).to_dict()
    assert plain == explicit
    assert plain["precision"] == {"weight_dtype": dtype, "act_dtype": dtype, "kv_dtype": dtype}


def test_dequantisation_is_reported_apart_from_the_models_flops(llama):
    """Weight-only quantisation changes no FLOP of the model: its dequantisation work is costed in the time
    and reported as `dequant_flops`, not added to `flops` (FLOP/B and TFLOP/s describe the model)."""
    base = llama["bf16"]
    for name in ("int8", "int4"):
        r = llama[name]
        t = r.table
        work = t.flops[dequant_rows(r)] @ t.count[dequant_rows(r)]
        assert work > 0
        assert r.flops == pytest.approx(base.flops, rel=1e-12)
        assert r.dequant_flops == pytest.approx(work, rel=1e-12) == r.totals()["dequant_flops"]
        assert sum(row["flops"] for row in r.by_op()) == pytest.approx(r.flops, rel=1e-9)
        assert sum(row["dequant_flops"] for row in r.by_op()) == pytest.approx(work, rel=1e-9)
    assert base.dequant_flops == 0


def test_a_kv_dtype_on_a_model_without_a_kv_cache_is_refused():
    """Nothing is silently ignored: sd15 keeps no KV cache, so a KV-cache dtype can change nothing."""
    code, _, err = run_cli("run", "sd15", "--set", "kv_dtype=fp8")
    assert code == 2 and err.count("\n") == 1 and "kv_dtype" in err and "no KV cache" in err


def test_quantised_activations_apply_at_the_gemm_inputs_only():
    """FP8 and INT8 inference quantise the GEMMs' inputs; the tensors between GEMMs stay 16-bit (quantisation.py
    `carrier`): norms, elementwise ops and attention move the bf16 run's bytes, the GEMMs run at the fp8 rate on
    half the weight bytes, and a tensor-parallel all-reduce sums 16-bit activations."""
    over = {**LLAMA, "output_tokens": 1}
    bf16 = simulator.run("llama2-7b", "h100", overrides=over, stack="tensorrt", parallel="tp=2")
    fp8 = simulator.run("llama2-7b", "h100", overrides={**over, "dtype": "fp8"}, stack="tensorrt", parallel="tp=2")
    a, b = bf16.by_category(), fp8.by_category()
    for cat in ("norm", "elementwise"):
        assert b[cat]["bytes"] == a[cat]["bytes"]
    assert b["comm"]["time_s"] == pytest.approx(a["comm"]["time_s"], rel=1e-12)
    assert gemm_rows(fp8, "prefill")[1] == {("matrix", "fp8")}
    assert fp8.model.weight_bytes < 0.51 * bf16.model.weight_bytes
    # attention computes in the carrier type: the same rate as the bf16 run's
    attn = [o for o in fp8.by_op() if o["category"] == "attention" and o["flops"] > 0]
    attn16 = {o["name"]: o for o in bf16.by_op() if o["category"] == "attention" and o["flops"] > 0}
    assert attn and all(o["compute_s"] == pytest.approx(attn16[o["name"]]["compute_s"]) for o in attn)
    assert fp8.to_dict()["precision"] == {"weight_dtype": "fp8", "act_dtype": "fp8", "kv_dtype": "fp8"}


def test_a_stage_in_a_quantised_type_of_its_own_splits_like_the_models_activations():
    """An int8 VAE engine (decoder_dtype=int8, NVIDIA's MLPerf SDXL v4.1+): its convolutions and linears store and
    run int8, the tensors between them (group norms, SiLU, residual adds) stay in the model's 16-bit type."""
    small = {"height": 256, "width": 256, "steps": 1}
    base = load_model("sdxl", {**small, "decoder_dtype": "fp16"})
    q = load_model("sdxl", {**small, "decoder_dtype": "int8"})
    dec = next(s for s in q.stages if s.name == "decoder")
    gemms = [op for op in dec.ops if OPS[op.kind].precision == "weight" and op.result.params]
    assert gemms and all(op.gemm_dtype == "int8" and op.weight_dtype == "int8" for op in gemms)
    assert all(op.dtype == "fp16" for op in dec.ops if op.kind in ("group_norm", "silu", "add"))
    w = {s.name: s.weight_bytes for s in base.stages}
    wq = {s.name: s.weight_bytes for s in q.stages}
    assert 0.5 * w["decoder"] < wq["decoder"] < 0.51 * w["decoder"]
