"""The cost engine states physics: bandwidth and compute scale the bound they govern, efficiency terms only slow."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DATA
from simulator import run
from simulator.engine import FULL, ROOFLINE, Terms, evaluate, hardware_columns
from simulator.mapping import lower
from simulator.stacks import load_stack
from simulator.hardware import is_conv_class, load_hardware
from simulator.simulate import load_model

CHIP = str(DATA / "chip.yaml")


@pytest.fixture(scope="module")
def sd15():
    model = load_model("sd15")
    return model, lower(model, load_stack("eager"), load_hardware("a100").spec)


def op_time(result, name):
    return next(r for r in result.by_op() if r["name"] == name)


def test_doubling_bandwidth_halves_a_memory_bound_op():
    base = run("sd15", CHIP, terms=ROOFLINE)
    fast = run("sd15", CHIP, hw_overrides={"memory.bandwidth": 2e12}, terms=ROOFLINE)
    op = "down0_0/res/norm1"  # group norm: bandwidth-bound
    assert op_time(base, op)["bound"] == "memory"
    assert op_time(fast, op)["time_s"] == pytest.approx(op_time(base, op)["time_s"] / 2)


def test_doubling_compute_halves_a_compute_bound_op():
    base = run("sd15", CHIP, terms=ROOFLINE)
    fast = run("sd15", CHIP, hw_overrides={"compute.fp16": 200e12}, terms=ROOFLINE)
    op = "down1_0/res/conv1"
    assert op_time(base, op)["bound"] == "compute"
    assert op_time(fast, op)["time_s"] == pytest.approx(op_time(base, op)["time_s"] / 2)


def test_roofline_is_max_of_compute_and_memory(sd15):
    model, table = sd15
    cols = hardware_columns(table, [load_hardware(CHIP).spec])
    c = evaluate(table, cols, ROOFLINE)
    peak = np.where(np.isin(table.unit, [1, 3]), 100e12, np.where(table.unit == 2, 20e12, np.inf))
    expect = np.maximum(table.flops / peak, table.bytes / 1e12)
    assert np.allclose(c["time"][0], expect)


@pytest.mark.parametrize("term", Terms.NAMES)
def test_each_efficiency_term_never_reduces_time(sd15, term):
    model, table = sd15
    cols = hardware_columns(table, [load_hardware("a100").spec])
    bare = evaluate(table, cols, ROOFLINE)["time"]
    one = evaluate(table, cols, Terms(**{t: t == term for t in Terms.NAMES}))["time"]
    full = evaluate(table, cols, FULL)["time"]
    assert np.all(one >= bare * (1 - 1e-12))
    assert np.all(full >= one * (1 - 1e-12))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 5000), n=st.integers(1, 5000), k=st.integers(1, 5000), b=st.integers(1, 64))
def test_tile_padding_never_reduces_time(m, n, k, b):
    from simulator.engine import quantisation
    cols = {"tile_m": np.array([128.0]), "tile_n": np.array([256.0]), "tile_k": np.array([64.0]),
            "min_tile_m": np.array([16.0]), "min_tile_n": np.array([8.0]), "min_tile_k": np.array([16.0]),
            "cores": np.array([132.0])}
    gemm = np.array([[b, m, n, k]], dtype=float)
    for terms in (Terms(tile=True, wave=False), Terms(tile=False, wave=True), FULL):
        assert quantisation(gemm, cols, terms)[0, 0] >= 1.0


def test_exact_tiles_and_full_waves_cost_nothing_extra():
    from simulator.engine import quantisation
    cols = {"tile_m": np.array([128.0]), "tile_n": np.array([128.0]), "tile_k": np.array([32.0]),
            "min_tile_m": np.array([16.0]), "min_tile_n": np.array([8.0]), "min_tile_k": np.array([16.0]),
            "cores": np.array([108.0])}
    # 108 tiles of 128x128 (12 x 9): exactly one full wave
    gemm = np.array([[1, 12 * 128, 9 * 128, 4096]], dtype=float)
    assert quantisation(gemm, cols, FULL)[0, 0] == pytest.approx(1.0)
    # 109 tiles' worth of work on 108 cores leaves a wave partly idle, even on the best smaller tile
    # (64x64: 436 tiles in 5 waves of 108 = 540 slots)
    gemm = np.array([[109, 128, 128, 4096]], dtype=float)
    assert quantisation(gemm, cols, FULL)[0, 0] == pytest.approx(540 / 436)


def test_many_design_points_equal_one_at_a_time(sd15):
    model, table = sd15
    specs = [load_hardware(h).spec for h in ("a100", "h100", "tpu-v5e", "mi300x")]
    together = evaluate(table, hardware_columns(table, specs))["time"] @ table.count
    alone = [evaluate(table, hardware_columns(table, [s]))["time"] @ table.count for s in specs]
    assert np.allclose(together, np.concatenate(alone))


def test_flash_attention_is_never_slower_than_math():
    for model in ("sd15", "llama2-7b"):
        flash = run(model, "a100", {"output_tokens": 8} if model == "llama2-7b" else {}, attention="flash")
        math = run(model, "a100", {"output_tokens": 8} if model == "llama2-7b" else {}, attention="math")
        assert flash.by_category()["attention"]["time_s"] < math.by_category()["attention"]["time_s"]
        assert flash.bytes < math.bytes


def test_decode_is_memory_bound_and_prefill_compute_bound():
    r = run("llama2-7b", "a100", {"output_tokens": 16})
    stages = {s["name"]: s for s in r.by_stage()}
    assert stages["prefill"]["bound"] == "compute"
    assert stages["decode"]["bound"] == "memory"
    assert stages["decode"]["flops"] / stages["decode"]["bytes"] < 2  # ~1 FLOP per byte of weights
    assert stages["prefill"]["flops"] / stages["prefill"]["bytes"] > 100


def test_totals_add_up():
    r = run("sd15", "h100")
    d = r.to_dict()
    assert sum(s["time_s"] for s in d["stages"]) == pytest.approx(d["totals"]["time_s"])
    # categories (like ops and layers) hold device time; the host's share is per stage
    assert sum(c["time_s"] for c in d["categories"].values()) == pytest.approx(d["totals"]["device_time_s"])
    assert sum(o["flops"] for o in d["ops"]) == pytest.approx(d["totals"]["flops"])
    assert sum(o["bytes"] for o in d["ops"]) == pytest.approx(d["totals"]["bytes"])
    assert d["totals"]["roofline_time_s"] < d["totals"]["time_s"]


def test_weights_are_read_every_step():
    one = run("sd15", "a100", {"steps": 1})
    ten = run("sd15", "a100", {"steps": 10})
    den = lambda r: next(s for s in r.by_stage() if s["name"] == "denoiser")  # noqa: E731
    assert den(ten)["bytes"] == pytest.approx(10 * den(one)["bytes"])
    assert den(ten)["device_time_s"] == pytest.approx(10 * den(one)["device_time_s"])


def test_fusion_removes_intermediate_traffic_and_launches(write):
    model = write("""\
name: Fusion toy
family: llm
params: {dtype: fp16}
stages:
  - name: s
    inputs:
      x: {shape: [64, 1024]}
    ops:
      - {name: fc, op: linear, in: x, out_features: 1024}
      - {name: act, op: gelu, in: fc}            # epilogue of fc: fc's output is read by nothing else
      - {name: norm, op: layer_norm, in: act}    # an elementwise producer + single-pass norm: one kernel
      - {name: out, op: add, in: [norm, x]}      # folds into the norm's kernel
      - {name: again, op: mul, in: [out, out]}   # out is read twice by this op: still one reader, folds
      - {name: gn, op: group_norm, in: again, groups: 8}  # two-pass norms never fold
""")
    eager, fused = run(model, CHIP), run(model, CHIP, fusion="elementwise")
    e = {r["name"]: r["bytes"] for r in eager.by_op()}
    f = {r["name"]: r["bytes"] for r in fused.by_op()}
    t = 64 * 1024 * 2  # bytes of one activation
    assert f["fc"] == e["fc"] - t            # fc's output never written
    assert f["act"] == e["act"] - 2 * t      # nor read back; act's output not written either
    assert f["norm"] == e["norm"] - 2 * t
    assert f["out"] == e["out"] - 2 * t
    assert f["again"] == e["again"] - 2 * t  # both reads in registers; written, as the group norm reads it
    assert f["gn"] == e["gn"]
    assert list(fused.table.launches).count(0) == 4  # act, norm, out and again run inside fc's kernel
    assert fused.bytes < eager.bytes and fused.time_s < eager.time_s


def test_fusion_never_slows_the_suite():
    for model in ("sd15", "llama2-7b", "dit-xl-2"):
        overrides = {"output_tokens": 8} if model == "llama2-7b" else {}
        eager, fused = run(model, "h100", overrides), run(model, "h100", overrides, fusion="elementwise")
        assert fused.time_s <= eager.time_s and fused.bytes <= eager.bytes


def test_conv_staging_adds_its_time_to_the_tensor_time_of_convolutions_only(sd15):
    """On Ampere (no TMA im2col) a convolution pays its operand staging on top of its MMAs: compute time =
    work x (1 / (peak x fraction) + 1 / (cores x clock x staging)), both at the sustained clock. GEMMs do not."""
    model, table = sd15
    spec = load_hardware("a100").spec
    assert spec.per_core.conv_staging and spec.efficiency.conv is None  # convs: GEMM fraction + staging
    cols = hardware_columns(table, [spec])
    without = dict(cols, conv_staging_s=np.zeros(1))
    with_ = evaluate(table, cols, FULL)["compute"][0]
    bare = evaluate(table, without, FULL)["compute"][0]
    conv = np.isin(table.eff, [i for i, c in enumerate(table.effs) if is_conv_class(c)])
    assert conv.any() and np.array_equal(with_[~conv], bare[~conv])
    from simulator.engine import work
    per_flop = 1.0 / (spec.per_core.conv_staging * spec.cores * spec.peak_clock_hz)
    staged = work(table, cols, FULL)[0][conv]  # the tile-quantised work: padded tiles are staged too
    assert np.all(staged >= table.flops[conv])
    assert with_[conv] - bare[conv] == pytest.approx(staged * per_flop / cols["clock_ratio"][0], rel=1e-9)
    # a Hopper file leaves the term out (TMA's im2col mode stages convolution operands in hardware)
    assert load_hardware("h100").spec.per_core.conv_staging is None


def test_conv_staging_caps_what_more_tensor_throughput_per_sm_buys_a_convolution():
    """Doubling the tensor rate per SM halves a GEMM-bound conv's MMA time but not its staging time."""
    op = "down1_0/res/conv1"
    base = op_time(run("sd15", "a100"), op)["time_s"]
    more = op_time(run("sd15", "a100", hw_overrides={"compute.fp16": 2 * 312e12}), op)["time_s"]
    spec = load_hardware("a100").spec
    from simulator.hardware import columns_from
    frac = columns_from(spec, [("matrix", "fp16")], effs=["conv:fp16"])["eff:conv:fp16"][0]  # the GEMM fraction
    assert frac == spec.efficiency.matrix
    tensor = 1 / (312e12 * frac)
    staging = 1 / (spec.per_core.conv_staging * spec.cores * spec.peak_clock_hz)
    expect = (tensor / 2 + staging) / (tensor + staging)
    assert more / base == pytest.approx(expect, rel=0.05)
