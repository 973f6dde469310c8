"""Fit and validate: recover known efficiency parameters from synthetic measurements; public cases load."""
import numpy as np
import pytest

from conftest import run_cli
from simulator import fidelity, measurements
from simulator.engine import FULL
from simulator.hardware import load_hardware

TRUTH = {"efficiency.matrix": 0.6, "efficiency.attention_backends.flash": 0.45, "efficiency.memory": 0.7,
         "efficiency.kernel_fixed_s": 6e-6, "efficiency.memory_latency_s": 1e-6}


@pytest.fixture(scope="module")
def synthetic():
    """The full GPU plan, 'measured' on an H100 whose efficiency is TRUTH, with 5 % log-normal noise."""
    rows = measurements.plan("cuda", quick=False)
    spec = load_hardware("h100").spec
    cases = fidelity.cases_table(rows, spec)
    true = fidelity.predict(cases, spec, FULL, {k: np.array([v]) for k, v in TRUTH.items()})[0]
    rng = np.random.default_rng(0)
    for row, t in zip(rows, true * np.exp(rng.normal(0, 0.05, len(rows)))):
        row["time_s"] = float(t)
    return rows


def test_split_is_stable_and_disjoint(synthetic):
    held = [fidelity.held_out(r) for r in synthetic]
    assert 0.1 < np.mean(held) < 0.3
    assert held == [fidelity.held_out(dict(r)) for r in synthetic]


def test_fit_recovers_parameters(synthetic):
    result = fidelity.fit(synthetic, "h100")
    got = result["parameters"]
    assert got["efficiency.matrix"] == pytest.approx(0.6, abs=0.05)
    assert got["efficiency.attention_backends.flash"] == pytest.approx(0.45, abs=0.05)
    assert got["efficiency.memory"] == pytest.approx(0.7, abs=0.05)
    assert got["efficiency.kernel_fixed_s"] == pytest.approx(6e-6, abs=1.5e-6)
    # the size-dependent terms: h100.yaml's per-tile fixed costs (256 K elements / keys) and its conv fraction
    # (the truth does not vary them)
    assert got["efficiency.gemm_k_overhead"] == pytest.approx(256, abs=100)
    assert got["efficiency.attention_k_overhead"] == pytest.approx(256, abs=100)
    assert got["efficiency.conv"] == pytest.approx(load_hardware("h100").spec.efficiency.conv, abs=0.05)
    assert result["loss_after"] < result["loss_before"]
    assert not {"efficiency.matrix", "efficiency.memory", "efficiency.conv"} & set(result["at_bound"])


def test_fit_then_validate_on_held_out_rows(synthetic, tmp_path):
    csv = tmp_path / "m.csv"
    measurements.write_csv(synthetic, str(csv))
    fitted = tmp_path / "h100-calibrated.yaml"
    code, out, err = run_cli("fit", csv, "--hardware", "h100", "--out", fitted)
    assert code == 0, err
    assert "inherit: h100" in fitted.read_text()
    result = fidelity.validate(measurements.read_csv(str(csv)), str(fitted))
    assert result["model"]["all"]["median_ape"] < 8           # noise is 5 %
    assert result["roofline"]["all"]["median_ape"] > 20        # the bare roofline misses the efficiencies
    code, out, err = run_cli("validate", csv, "--hardware", fitted)
    assert code == 0 and "held-out" in out and "attention" in out


def test_public_cases_load_and_simulate():
    cases = fidelity.load_public("measurements/public.yaml")
    assert len(cases) >= 8 and all(c["source"] for c in cases)
    case = next(c for c in cases if c["metric"] == "decode_tokens_per_s")
    assert fidelity.simulate_case(case)[0] > 0


def test_bad_fit_input(tmp_path):
    csv = tmp_path / "empty.csv"
    measurements.write_csv([], str(csv))
    code, _, err = run_cli("fit", csv, "--hardware", "h100", "--out", tmp_path / "x.yaml")
    assert code == 2 and "usable training rows" in err


def test_a_case_that_cannot_run_is_reported_not_fatal(tmp_path):
    """An unknown model in one case leaves the others validated; common framework names map to stacks."""
    cases = tmp_path / "c.yaml"
    cases.write_text("""cases:
  - {id: ok, model: llama2-7b, hardware: h100, stack: vllm, set: {batch: 1, prompt_tokens: 8, output_tokens: 4},
     metric: total_s, value: 0.05, source: test}
  - {id: bad, model: no-such-model, hardware: h100, metric: total_s, value: 1.0, source: test}
""")
    found = fidelity.validate_public(cases)
    assert found[0]["stack"] == "serving" and found[0]["simulated"] > 0 and not found[0]["excluded"]
    assert "cannot simulate" in found[1]["excluded"]
    text = fidelity.public_table(found)
    assert "1 cases" in text and "excluded bad" in text


def test_fit_public_holds_each_source_out(tmp_path):
    """`fit --public` fits the named parameters on a grid and reports each source's error when held out."""
    cases = tmp_path / "c.yaml"
    cases.write_text("""cases:
  - {id: a, model: sd15, hardware: a100, stack: eager, set: {steps: 2}, metric: total_s, value: 0.3, source: s1}
  - {id: b, model: sd15, hardware: a100, stack: tensorrt, set: {steps: 2}, metric: total_s, value: 0.1, source: s2}
""")
    result = fidelity.fit_public(cases, {"per_core.conv_staging": np.array([300.0, 3000.0]),
                                         "stack:eager.host.op_s": np.array([1e-5, 5e-5])})
    assert set(result["parameters"]) == {"per_core.conv_staging", "stack:eager.host.op_s"}
    assert set(result["held_out_error_pct"]) == {"a", "b"}
    code, out, err = run_cli("fit", "--public", cases, "--points", "2")
    assert code == 0 and "held out" in out, err


def test_a_case_faster_than_its_bare_roofline_is_flagged(tmp_path):
    """llama2-7b in fp16 reads 13.5 GB of weights per decode step: 100 steps in 0.1 s on an A100 (2.039 TB/s) is
    impossible as stated, 100 steps in 10 s is not; the flag names the case in the report, in every metric form."""
    cases = tmp_path / "c.yaml"
    cases.write_text("""cases:
  - {id: fast, model: llama2-7b, hardware: a100, stack: tensorrt, metric: total_s, value: 0.1, source: test,
     set: {batch: 1, prompt_tokens: 8, output_tokens: 100, dtype: fp16}}
  - {id: fast-rate, model: llama2-7b, hardware: a100, stack: tensorrt, metric: tokens_per_s, value: 1000,
     source: test, set: {batch: 1, prompt_tokens: 8, output_tokens: 100, dtype: fp16}}
  - {id: fast-stage, model: llama2-7b, hardware: a100, stack: tensorrt, metric: "stage_s:decode", value: 0.1,
     source: test, set: {batch: 1, prompt_tokens: 8, output_tokens: 100, dtype: fp16}}
  - {id: plausible, model: llama2-7b, hardware: a100, stack: tensorrt, metric: total_s, value: 10.0, source: test,
     set: {batch: 1, prompt_tokens: 8, output_tokens: 100, dtype: fp16}}
""")
    found = {f["id"]: f for f in fidelity.validate_public(cases)}
    assert [k for k, f in found.items() if f["below_roofline"]] == ["fast", "fast-rate", "fast-stage"]
    text = fidelity.public_table(list(found.values()))
    assert "warning: fast is faster than the bare roofline" in text and "warning: plausible" not in text


def test_every_public_case_in_use_is_slower_than_its_bare_roofline():
    """A published number below the physical floor of its stated settings is excluded with its reason."""
    found = fidelity.validate_public("measurements/public.yaml")
    assert [f["id"] for f in found if f.get("below_roofline") and not f["excluded"]] == []


def test_fit_only_named_parameters_on_the_devices_own_rows(tmp_path):
    """`fit --only` moves just the named parameters, and rows that name another device are not trained on."""
    rows = measurements.read_csv("measurements/kernels/public-kernels.csv")
    mine = [r for r in rows if r["hardware"] == "a100"]
    result = fidelity.fit(rows, "a100", only=("efficiency.kernel_fixed_s",))
    assert list(result["parameters"]) == ["efficiency.kernel_fixed_s"]
    assert result["train_rows"] == len([r for r in fidelity.usable(mine) if not fidelity.held_out(r)])
    assert result["loss_after"] <= result["loss_before"]
    code, _, err = run_cli("fit", "measurements/kernels/public-kernels.csv", "--hardware", "a100", "--only",
                           "efficiency.no_such", "--out", tmp_path / "x.yaml")
    assert code == 2 and "unknown parameter 'efficiency.no_such'" in err and "kernel_fixed_s" in err
    code, _, err = run_cli("fit", "--public", "--only", "efficiency.conv")
    assert code == 2 and "--only" in err
    code, _, err = run_cli("fit", "measurements/kernels/public-kernels.csv", "--hardware", "a100", "--only", ",",
                           "--out", tmp_path / "x.yaml")
    assert code == 2 and "name at least one parameter" in err


def test_fit_on_a_hardware_file_trains_on_the_device_it_inherits(tmp_path):
    """A fitted YAML (or a built-in device's own file) picks the rows of the built-in device it describes."""
    rows = measurements.read_csv("measurements/kernels/public-kernels.csv")
    child = tmp_path / "a100-fitted.yaml"
    child.write_text("inherit: a100\nefficiency: {launch_overhead_s: 3.0e-6}\n")
    by_id = fidelity.fit(rows, "a100", only=("efficiency.kernel_fixed_s",))
    for hardware in (str(child), "hardware/a100.yaml"):
        assert fidelity.fit(rows, hardware, only=("efficiency.kernel_fixed_s",))["train_rows"] == by_id["train_rows"]
    code, _, err = run_cli("fit", "measurements/kernels/public-kernels.csv", "--hardware", "l40s",
                           "--out", tmp_path / "x.yaml")
    assert code == 2 and "0 usable training rows for hardware 'l40s'" in err


def test_a_case_that_does_not_fit_its_device_is_warned_about(tmp_path):
    """llama2-70b in fp16 (140 GB of weights) on one 80 GB A100 cannot run as stated: the report says so."""
    cases = tmp_path / "c.yaml"
    cases.write_text("""cases:
  - {id: too-big, model: llama2-70b, hardware: a100, stack: tensorrt, metric: total_s, value: 10.0, source: test,
     set: {batch: 1, prompt_tokens: 8, output_tokens: 4, dtype: fp16}}
  - {id: fits, model: llama2-7b, hardware: a100, stack: tensorrt, metric: total_s, value: 10.0, source: test,
     set: {batch: 1, prompt_tokens: 8, output_tokens: 4, dtype: fp16}}
""")
    found = fidelity.validate_public(cases)
    assert [f["fits"] for f in found] == [False, True]
    text = fidelity.public_table(found)
    assert "warning: too-big does not fit in its device's memory" in text and "warning: fits " not in text


def test_kernel_fit_on_an_ampere_device_fits_its_conv_staging_and_writes_it(tmp_path):
    """On Ampere the convolution parameter is the SM's operand-staging rate (its file has no conv fraction): a fit
    on conv rows recovers it, and the fitted file carries it under per_core, loadable with the rest inherited."""
    spec = load_hardware("a100").spec
    rows = [r for r in measurements.plan("cuda", quick=False) if r["kind"] in ("conv2d", "linear")]
    assert any(r["kind"] == "conv2d" for r in rows)
    truth = {"per_core.conv_staging": 600.0}
    cases = fidelity.cases_table(rows, spec)
    true = fidelity.predict(cases, spec, FULL, {k: np.array([v]) for k, v in truth.items()})[0]
    for row, t in zip(rows, true):
        row["time_s"] = float(t)
    paths = [p for p, _, _ in fidelity.fit_parameters(spec, rows)]
    assert "per_core.conv_staging" in paths and "efficiency.conv" not in paths
    result = fidelity.fit(rows, "a100")
    assert result["parameters"]["per_core.conv_staging"] == pytest.approx(600, rel=0.1)
    fitted = tmp_path / "a100-fit.yaml"
    fitted.write_text(fidelity.fitted_yaml(result, "synthetic", "today"))
    got = load_hardware(str(fitted)).spec
    assert got.per_core.conv_staging == pytest.approx(result["parameters"]["per_core.conv_staging"], rel=1e-5)
    assert got.per_core.matrix == spec.per_core.matrix and got.efficiency.conv is None


def test_fit_public_applies_a_hardware_parameter_only_where_the_device_file_sets_it(tmp_path):
    """The Ampere staging rate reaches the A100 case and not the H100's (whose file has none), the Hopper
    convolution fraction the H100 case and not the A100's (whose file has none)."""
    cases = tmp_path / "c.yaml"
    cases.write_text("""cases:
  - {id: a, model: sd15, hardware: a100, stack: tensorrt, set: {steps: 2}, metric: total_s, value: 0.1, source: s1}
  - {id: h, model: sd15, hardware: h100, stack: tensorrt, set: {steps: 2}, metric: total_s, value: 0.1, source: s2}
""")
    loaded = fidelity.load_public(cases)
    logerr, points, names = fidelity.public_grid(loaded, {"per_core.conv_staging": np.array([300.0, 3000.0]),
                                                          "efficiency.conv": np.array([0.3, 0.8])})
    by = {p: row for p, row in zip(points, logerr)}
    # along the staging axis only the A100 moves; along the conv-fraction axis only the H100
    assert by[(300.0, 0.3)][0] != by[(3000.0, 0.3)][0] and by[(300.0, 0.3)][1] == by[(3000.0, 0.3)][1]
    assert by[(300.0, 0.3)][1] != by[(300.0, 0.8)][1] and by[(300.0, 0.3)][0] == by[(300.0, 0.8)][0]
