"""Hardware an architect can change: cores and clock set the peak, SRAM bounds the tiles, L2 serves resident
re-reads, energy follows FLOPs and bytes, the TDP caps power, and every field of a built-in file is read."""
import csv
import glob
import os
import re
import types
import typing

import pytest

from conftest import DATA, ROOT, run_cli
from simulator import run
from simulator.engine import ROOFLINE, Terms
from simulator.fields import PENDING, READERS, term_of, unread
from simulator.hardware import field_paths, load_hardware, peak_tolerance
from simulator.schema import HardwareSpec
from simulator.sweep import sweep

# the test chip without its own L2 bandwidth and power model: each test below gives the ones it states
CHIP = re.sub(r"# round energy[^\n]*\npower: [^}]*}[^}]*}[^}]*}\n", "", (DATA / "chip.yaml").read_text())
CHIP = CHIP.replace(", l2_bandwidth: 4.0e+12}", "}")
assert "power" not in CHIP and "l2_bandwidth" not in CHIP
NO_POWER = Terms.without({"power"})
BUILT_IN = sorted(os.path.basename(p)[:-5] for p in glob.glob(str(ROOT / "hardware" / "*.yaml")))

# The test chip (100 TFLOP/s, 1 TB/s, 10 cores at 1 GHz, 100 kB SRAM, 4 MB L2) with a fused-attention back-end,
# FlashAttention-2's blocks, an L2 bandwidth and a power model: round numbers, so each effect is exact.
EXTRA = """\
attention_tile: {q: 128, k: 64, head_dim_multiple: 32}
"""
POWER = """\
power: {static_w: 20.0, matrix_pj_per_flop: {fp16: 0.5}, vector_pj_per_flop: {fp32: 5.0}, dram_pj_per_byte: 40.0,
        l2_pj_per_byte: 10.0}
"""


@pytest.fixture
def chip(tmp_path):
    def make(extra: str = "", power: bool = False, l2_bandwidth: float | None = None, cores: int = 10) -> str:
        text = CHIP.replace("efficiency: {matrix: 1.0,", "efficiency: {attention: 1.0, matrix: 1.0,")
        text = text.replace("cores: 10", f"cores: {cores}")
        if l2_bandwidth:
            text = text.replace("sram_per_core_bytes: 100.0e+3}", f"sram_per_core_bytes: 100.0e+3, "
                                                                  f"l2_bandwidth: {l2_bandwidth:g}}}")
        path = tmp_path / f"chip{len(list(tmp_path.glob('chip*.yaml')))}.yaml"
        path.write_text(text + EXTRA + (POWER if power else "") + extra)
        return str(path)
    return make


def model(write, ops: str, inputs: str, name: str = "toy.yaml") -> str:
    return write(f"""\
name: Toy
family: llm
params: {{dtype: fp16}}
stages:
  - name: s
    inputs:
{inputs}
    ops:
{ops}
""", name)


def ops_of(result) -> dict:
    return {r["name"]: r for r in result.by_op()}


# --------------------------------------------------------------------------------------- peak from cores x clock

@pytest.mark.parametrize("hw", BUILT_IN)
def test_bottom_up_product_reproduces_each_datasheet_peak(hw):
    spec = load_hardware(hw).spec
    assert spec.per_core is not None and spec.per_core.matrix, f"{hw}: no per-core rates"
    for dtype, per in spec.per_core.matrix.items():
        product = spec.cores * spec.peak_clock_hz * per
        assert abs(product - spec.compute[dtype]) <= peak_tolerance(spec.compute[dtype]), (hw, dtype)


@pytest.mark.parametrize("field, value", [("cores", 32), ("clock_hz", 2e9)])
def test_doubling_cores_or_clock_halves_a_compute_bound_gemm(chip, write, field, value):
    # 4096^3 in 128x128 tiles is 1024 tiles: whole waves on 16 and on 32 cores, so quantisation is the same
    base_hw = chip(cores=16)
    m = model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}",
              "      x: {shape: [4096, 4096]}")
    base = run(m, base_hw, terms=NO_POWER, stack="eager")
    fast = run(m, base_hw, hw_overrides={field: value}, terms=NO_POWER, stack="eager")
    g0, g1 = ops_of(base)["gemm"], ops_of(fast)["gemm"]
    assert g0["bound"] == "compute"
    assert g1["compute_s"] == pytest.approx(g0["compute_s"] / 2, rel=1e-9)
    assert g1["time_s"] == pytest.approx(g0["time_s"] / 2, rel=1e-9)


def test_sweeping_cores_or_the_clock_scales_the_peak(chip, write):
    m = model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}",
              "      x: {shape: [4096, 4096]}")
    for field, values in (("cores", [16, 32, 64]), ("clock_hz", [1e9, 2e9, 4e9])):
        rows = sweep(m, chip(cores=16), vary={field: values}, terms=NO_POWER, stack="eager")
        t = [r["linear_s"] for r in rows]
        assert t[1] == pytest.approx(t[0] / 2, rel=1e-9) and t[2] == pytest.approx(t[0] / 4, rel=1e-9)


def test_varying_the_peak_clock_of_a_built_in_file_scales_its_peak(write):
    m = model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}",
              "      x: {shape: [4096, 4096]}")
    rows = sweep(m, "h100", vary={"clock.peak_hz": [1.83e9, 3.66e9]}, stack="eager",
                 terms=Terms.without({"power", "overhead", "latency"}))
    assert rows[1]["linear_s"] == pytest.approx(rows[0]["linear_s"] / 2, rel=1e-9)


def test_a_bottom_up_file_needs_no_stated_peak(chip, write):
    hw = chip("per_core: {matrix: {fp16: 10000.0}}\n")
    text = open(hw).read().replace("compute: {bf16: 100.0e+12, fp16: 100.0e+12}", "compute: {bf16: 100.0e+12}")
    open(hw, "w").write(text)
    assert load_hardware(hw).spec.compute["fp16"] == pytest.approx(10 * 1e9 * 1e4)


def test_a_per_core_rate_that_contradicts_the_stated_peak_names_its_line(chip):
    hw = chip("per_core: {matrix: {fp16: 20000.0}}\n")  # 10 x 1e9 x 2e4 = 200e12, the file says 100e12
    code, out, err = run_cli("run", ROOT / "tests" / "corpus" / "mini.yaml", "--hardware", hw)
    line = [i for i, t in enumerate(open(hw).read().splitlines(), 1) if t.startswith("per_core")][0]
    assert code == 2 and err.count("\n") == 1 and f"{hw}:{line}" in err and "per_core.matrix.fp16" in err


# ------------------------------------------------------------------------------------------- SRAM bounds tiles

ATTENTION_OPS = """\
      - {name: qkv, op: linear, in: x, out_features: 3072, bias: false}
      - {name: split, op: split, in: qkv, axis: 2, chunks: 3}
      - {name: attn, op: attention, in: [split.0, split.1, split.2], heads: 4}
      - {name: out, op: linear, in: attn, out_features: 1024, bias: false}
"""


def test_halving_sram_below_the_attention_tile_slows_attention_and_nothing_else(chip, write):
    # head dim 256: the flash blocks hold (128 + 2 x 64) x 256 x 2 B = 128 kB, above the chip's 100 kB; the GEMM
    # tiles hold 2 x (128 + 128) x 32 x 2 B = 32 kB
    m = model(write, ATTENTION_OPS, "      x: {shape: [4, 2048, 1024]}")
    hw = chip()
    own = ops_of(run(m, hw, stack="eager"))
    more = ops_of(run(m, hw, hw_overrides={"on_chip.sram_per_core_bytes": 1e6}, stack="eager"))
    half = ops_of(run(m, hw, hw_overrides={"on_chip.sram_per_core_bytes": 50e3}, stack="eager"))
    assert own["attn"]["backend"] == "flash" and half["attn"]["backend"] == "flash"
    assert {k: v["time_s"] for k, v in more.items()} == {k: v["time_s"] for k, v in own.items()}
    assert half["attn"]["time_s"] > own["attn"]["time_s"]
    assert all(half[k]["time_s"] == own[k]["time_s"] for k in own if k != "attn")


def test_too_little_sram_for_any_flash_block_falls_back_to_the_score_matrix(chip, write):
    m = model(write, ATTENTION_OPS, "      x: {shape: [4, 2048, 1024]}")
    tiny = run(m, chip(), hw_overrides={"on_chip.sram_per_core_bytes": 1e3}, stack="eager")
    assert ops_of(tiny)["attn"]["backend"] == "math"


def test_less_sram_than_the_gemm_tile_slows_gemms(chip, write):
    m = model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}",
              "      x: {shape: [4096, 4096]}")
    hw = chip()
    own = ops_of(run(m, hw, terms=NO_POWER, stack="eager"))["gemm"]
    small = ops_of(run(m, hw, hw_overrides={"on_chip.sram_per_core_bytes": 8e3}, terms=NO_POWER,
                       stack="eager"))["gemm"]
    assert small["time_s"] > own["time_s"]


# -------------------------------------------------------------------------------------------- L2 residency

def test_a_resident_reread_gets_faster_with_l2_bandwidth_and_a_streamed_one_does_not(chip, write):
    # y = silu(x) then z = silu(y): y (1 MB) is still in the 4 MB L2 when z reads it; w (64 MB) is not
    ops = """\
      - {name: y, op: silu, in: x}
      - {name: z, op: silu, in: y}
      - {name: v, op: silu, in: big}
      - {name: w, op: silu, in: v}
"""
    m = model(write, ops, "      x: {shape: [512, 1024]}\n      big: {shape: [32768, 1024]}")
    hw = chip(l2_bandwidth=4e12)
    own = ops_of(run(m, hw, stack="eager"))
    fast = ops_of(run(m, hw, hw_overrides={"on_chip.l2_bandwidth": 8e12}, stack="eager"))
    assert fast["z"]["memory_s"] < own["z"]["memory_s"]   # y re-read from L2, now faster
    assert fast["w"]["memory_s"] == own["w"]["memory_s"]  # v is 64 MB: streamed from DRAM either way
    assert fast["y"]["memory_s"] == own["y"]["memory_s"]  # x is read for the first time
    # a smaller L2 no longer holds y: its re-read moves at DRAM speed again (slower than at the file's L2)
    small = ops_of(run(m, hw, hw_overrides={"on_chip.l2_bytes": 1e5}, stack="eager"))
    assert small["z"]["memory_s"] > own["z"]["memory_s"]
    bigger = ops_of(run(m, hw, hw_overrides={"on_chip.l2_bytes": 1e9}, stack="eager"))
    assert bigger["w"]["memory_s"] < own["w"]["memory_s"]  # a 1 GB L2 holds v


def test_a_device_at_its_own_sram_and_l2_is_unchanged():
    for hw in ("h100", "a100", "mi300x"):
        base = run("sd15", hw, terms=Terms.without({"cache", "power"}))
        full = run("sd15", hw, terms=Terms.without({"power"}))
        assert full.time_s == base.time_s


# ---------------------------------------------------------------------------------------- energy and power

def test_energy_is_flops_and_bytes_at_their_pj_plus_static_power(chip, write):
    m = model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}\n"
                     "      - {name: act, op: silu, in: gemm}", "      x: {shape: [4096, 4096]}")
    r = run(m, chip(power=True), stack="eager")
    rows = ops_of(r)
    dynamic = 1e-12 * (0.5 * rows["gemm"]["flops"] + 5.0 * 10 / 20 * rows["act"]["flops"]
                       + 40.0 * (rows["gemm"]["bytes"] + rows["act"]["bytes"]))
    # the vector unit computes fp16 at its own 20 TFLOP/s: the fp32 figure x (10 / 20) per FLOP
    assert r.energy_j == pytest.approx(dynamic + 20.0 * r.time_s, rel=1e-9)
    assert r.avg_power_w == pytest.approx(r.energy_j / r.time_s)
    twice = run(model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}\n"
                             "      - {name: act, op: silu, in: gemm}", "      x: {shape: [8192, 4096]}",
                      "twice.yaml"), chip(power=True), stack="eager")
    t = ops_of(twice)  # twice the FLOPs, not twice the bytes (the weights are read once): energy follows both
    assert t["gemm"]["flops"] == 2 * rows["gemm"]["flops"] and t["gemm"]["bytes"] < 2 * rows["gemm"]["bytes"]
    assert twice.energy_j - 20.0 * twice.time_s == pytest.approx(1e-12 * (
        0.5 * t["gemm"]["flops"] + 2.5 * t["act"]["flops"] + 40.0 * (t["gemm"]["bytes"] + t["act"]["bytes"])),
        rel=1e-9)
    stages = r.to_dict()["stages"]
    assert sum(s["energy_j"] for s in stages) == pytest.approx(r.to_dict()["totals"]["energy_j"])


def test_a_lower_tdp_slows_compute_bound_work_and_never_speeds_it(chip, write):
    m = model(write, "      - {name: gemm, op: linear, in: x, out_features: 4096, bias: false}",
              "      x: {shape: [4096, 4096]}")
    hw = chip(power=True)  # the GEMM draws 20 W + 0.5 pJ x 100 TFLOP/s = 70 W, under the chip's 100 W
    free = run(m, hw, stack="eager")
    assert free.time_s == run(m, hw, terms=NO_POWER, stack="eager").time_s
    capped = run(m, hw, hw_overrides={"tdp_w": 45.0}, stack="eager")
    g0, g1 = ops_of(free)["gemm"], ops_of(capped)["gemm"]
    # at 45 W the GEMM's dynamic energy (its FLOPs and DRAM bytes) must be spent at 25 W: the clock drops until
    # it fits, a time of that energy over 25 W
    energy = 1e-12 * (0.5 * g0["flops"] + 40.0 * g0["bytes"])
    assert g1["compute_s"] == pytest.approx(energy / 25.0, rel=1e-9) and g1["compute_s"] > 1.9 * g0["compute_s"]
    assert run(m, hw, hw_overrides={"tdp_w": 45.0}, terms=NO_POWER, stack="eager").time_s == free.time_s
    assert run(m, hw, hw_overrides={"tdp_w": 45.0}, terms=ROOFLINE).time_s == run(m, hw, terms=ROOFLINE).time_s


def test_sweep_reports_energy_and_items_per_joule(chip):
    rows = sweep("sd15", chip(power=True), vary={"tdp_w": [40, 1000]})
    assert rows[0]["energy_j"] > 0 and rows[0]["images_per_j"] == pytest.approx(1 / rows[0]["energy_j"])
    assert rows[0]["time_s"] >= rows[1]["time_s"]
    assert "images_per_s_per_w" not in rows[0]


def test_a_static_power_above_the_tdp_is_refused(chip):
    code, _, err = run_cli("run", ROOT / "tests" / "corpus" / "mini.yaml", "--hardware", chip(power=True),
                           "--hw-set", "tdp_w=10")
    assert code == 2 and "static_w" in err


# ---------------------------------------------------------------------------------- nothing silently ignored

def _schema_paths(model: type, prefix: str = "") -> list:
    """Every numeric leaf of the hardware schema as a field pattern (`*` for a dtype or name key)."""
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        union = typing.get_origin(ann) in (typing.Union, types.UnionType)
        args = [a for a in typing.get_args(ann) if a is not type(None)] if union else [ann]
        for a in args:
            sub = a if isinstance(a, type) and hasattr(a, "model_fields") else None
            if sub is not None:
                out += _schema_paths(sub, f"{prefix}{name}.")
            elif typing.get_origin(a) is dict:
                value = typing.get_args(a)[1]
                numeric = [v for v in typing.get_args(value) if v in (int, float)] or [value]
                if any(v in (int, float) for v in numeric) or "float" in str(value) or "Fraction" in str(value):
                    out.append(f"{prefix}{name}.*")
            elif "float" in str(a) or "int" in str(a) and "str" not in str(a):
                out.append(f"{prefix}{name}")
    return sorted(set(out))


def test_every_numeric_field_of_the_schema_is_in_the_registry():
    paths = _schema_paths(HardwareSpec)
    assert "power.static_w" in paths and "on_chip.l2_bandwidth" in paths and "per_core.matrix.*" in paths
    missing = [p for p in paths if term_of(p.replace("*", "bf16")) is None]
    assert missing == [], f"hardware fields no cost term reads: {missing}"
    assert set(READERS).isdisjoint(PENDING)


@pytest.mark.parametrize("hw", BUILT_IN)
def test_every_numeric_field_of_a_built_in_file_is_read(hw):
    spec = load_hardware(hw).spec
    assert unread(spec) == []
    assert all(term_of(p) for p in field_paths(spec.model_dump()))


@pytest.mark.parametrize("command", ["run", "compare", "sweep"])
def test_a_rate_for_a_dtype_the_model_never_uses_is_warned_about(command, tmp_path):
    args = {"run": ["run", "sd15", "--hardware", "h100", "--hw-set", "compute.bf16=2e15"],
            "compare": ["compare", "sd15", "--hardware", "h100,a100", "--hw-set", "compute.bf16=2e15"],
            "sweep": ["sweep", "sd15", "--hardware", "h100", "--vary", "compute.bf16=1e15,2e15", "--out",
                      tmp_path / "s.csv"]}[command]
    code, _, err = run_cli(*args)
    assert code == 0 and "compute.bf16 does not change any time" in err and "fp16" in err


def test_an_l2_without_its_bandwidth_is_warned_about(chip, write):
    hw = chip()  # the test chip gives l2_bytes but no l2_bandwidth
    code, _, err = run_cli("run", ROOT / "tests" / "corpus" / "mini.yaml", "--hardware", hw)
    assert code == 0 and "on_chip.l2_bytes: read only with on_chip.l2_bandwidth" in err


def test_interconnect_fields_are_pending_in_a_single_device_sweep(tmp_path):
    code, _, err = run_cli("sweep", "sd15", "--hardware", "h100", "--vary", "interconnect.bandwidth=1e11,1e12",
                           "--out", tmp_path / "s.csv")
    assert code == 0 and "interconnect.bandwidth does not change any time in a single-device run" in err


# ------------------------------------------------------------------------------------------ the worked example

def test_the_example_accelerator_is_bottom_up_and_reads_every_field():
    hw = load_hardware(str(ROOT / "examples" / "my_accelerator.yaml"))
    assert hw.spec.compute["bf16"] == pytest.approx(96 * 1.6e9 * 4096)
    assert hw.spec.vector["fp32"] == pytest.approx(96 * 1.6e9 * 256)
    assert unread(hw.spec) == []


def test_the_documented_design_sweep_moves_with_cores_sram_and_bandwidth():
    rows = sweep("llama2-7b", str(ROOT / "examples" / "my_accelerator.yaml"), stack="serving",
                 overrides={"output_tokens": 4},
                 vary={"cores": [48, 192], "on_chip.sram_per_core_bytes": [32e3, 256e3],
                       "memory.bandwidth": [2e12, 8e12]})
    t = {(r["cores"], r["on_chip.sram_per_core_bytes"], r["memory.bandwidth"]): r["time_s"] for r in rows}
    assert t[(48, 256e3, 8e12)] < t[(48, 256e3, 2e12)]      # bandwidth
    assert t[(192, 256e3, 8e12)] < t[(48, 256e3, 8e12)]     # cores
    assert t[(48, 256e3, 8e12)] < t[(48, 32e3, 8e12)]       # SRAM
    assert all(r["energy_j"] > 0 and r["tokens_per_j"] > 0 for r in rows)


def test_json_reports_energy_per_run_and_stage():
    import json
    code, out, _ = run_cli("run", "sd15", "--hardware", "h100", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["totals"]["energy_j"] > 0 and data["totals"]["avg_power_w"] > 0
    assert sum(s["energy_j"] for s in data["stages"]) == pytest.approx(data["totals"]["energy_j"])
    code, out, _ = run_cli("run", "sd15", "--hardware", "tpu-v5e", "--format", "json")
    assert json.loads(out)["totals"]["energy_j"] is None  # no power model: no number rather than a made-up one


def test_the_power_cap_is_neutral_at_the_files_own_tdp_and_bites_below_it():
    """The achievable fractions were measured under each file's TDP: at that TDP the cap must not slow anything
    again (flux1-dev's compute-bound GEMMs on a B200), while a lower TDP slows them and a higher one does not
    speed them up."""
    base = run("flux1-dev", "b200").to_dict()["totals"]["device_time_s"]
    off = run("flux1-dev", "b200", terms=Terms(power=False)).to_dict()["totals"]["device_time_s"]
    low = run("flux1-dev", "b200", hw_overrides={"tdp_w": 600.0}).to_dict()["totals"]["device_time_s"]
    high = run("flux1-dev", "b200", hw_overrides={"tdp_w": 2000.0}).to_dict()["totals"]["device_time_s"]
    assert base == pytest.approx(off, rel=1e-12)
    assert low > 1.1 * base
    assert high == pytest.approx(base, rel=1e-12)


def test_an_optional_term_the_file_leaves_out_is_read_once_given(tmp_path):
    """l4.yaml gives no kernel_fixed_s (absent = 0): varying it moves every time, and no warning says otherwise."""
    out = tmp_path / "s.csv"
    code, _, err = run_cli("sweep", "sd15", "--hardware", "l4", "--vary", "efficiency.kernel_fixed_s=0,2e-6",
                           "--out", out)
    assert code == 0 and "does not change any time" not in err, err
    times = [float(r["time_s"]) for r in csv.DictReader(open(out))]
    assert times[1] > times[0]
