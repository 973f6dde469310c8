"""The metrics layer: groupings, throughput, per-watt figures and the ridge point, each defined once and the
same number wherever it is read (Result, report, sweep rows, the paper report)."""
import numpy as np
import pytest

import simulator
from simulator import metrics
from simulator.hardware import load_hardware
from simulator.ops import CATEGORIES


@pytest.fixture(scope="module")
def sd15():
    return simulator.run("sd15", "a100")


def test_ridge_point_is_peak_over_bandwidth():
    spec = load_hardware("a100").spec
    # A100 SXM4 80GB datasheet: 312 TFLOP/s dense bf16, 2,039 GB/s HBM2e
    assert metrics.peak_flops(spec, "bf16") == 312e12
    assert metrics.ridge_point(spec, "bf16") == pytest.approx(312e12 / 2.039e12, rel=1e-12)
    assert metrics.ridge_point(spec, "int8") == pytest.approx(2 * metrics.ridge_point(spec, "bf16"))


def test_ridge_point_follows_bandwidth_and_dtype_substitutes():
    fast = load_hardware("a100", {"memory.bandwidth": 2 * 2.039e12}).spec
    assert metrics.ridge_point(fast) == pytest.approx(metrics.ridge_point(load_hardware("a100").spec) / 2)
    tpu = load_hardware("tpu-v5e").spec  # runs fp16 as bf16 (dtype_substitutes)
    assert tpu.dtype_substitutes.get("fp16") == "bf16"
    assert metrics.peak_flops(tpu, "fp16") == tpu.compute["bf16"]


def test_items_by_family():
    assert metrics.items("llm", {"batch": 4, "output_tokens": 128}) == ("tokens", 512)
    assert metrics.items("ttv", {"batch": 2, "frames": 16}) == ("videos", 2)
    assert metrics.items("diffusion-tti", {"batch": 3}) == ("images", 3)
    assert metrics.items("transformer-tti", {}) == ("images", 1)


def test_items_per_second_of_an_llm_is_batch_times_output_tokens_over_time():
    r = simulator.run("llama2-7b", "a100", {"batch": 2, "output_tokens": 16})
    assert metrics.items_per_second(r.model.family, r.model.params, r.time_s) == 2 * 16 / r.time_s
    times = np.array([1.0, 2.0, 4.0])  # one time per design point
    assert np.array_equal(metrics.items_per_second("llm", {"batch": 2, "output_tokens": 16}, times),
                          [32.0, 16.0, 8.0])


def test_sweep_throughput_and_energy_columns_are_the_metrics_of_a_run():
    rows = simulator.sweep("llama2-7b", "a100", vary={"memory.bandwidth": [2.039e12]},
                           vary_workload={"batch": [2]}, overrides={"output_tokens": 16})
    r = simulator.run("llama2-7b", "a100", {"batch": 2, "output_tokens": 16})
    for row in rows:
        assert row["tokens_per_s"] == pytest.approx(2 * 16 / r.time_s, rel=1e-9)
        assert row["energy_j"] == pytest.approx(r.energy_j, rel=1e-9)
        assert row["avg_power_w"] == pytest.approx(r.avg_power_w, rel=1e-9)
        assert row["tokens_per_j"] == pytest.approx(metrics.per_joule(2 * 16, r.energy_j), rel=1e-9)


def test_per_joule_for_one_device_and_many_points():
    assert metrics.per_joule(100.0, 400.0) == 0.25
    assert np.array_equal(metrics.per_joule(100.0, np.array([400.0, 200.0])), [0.25, 0.5])


def test_group_sum_and_group_matrix_agree_with_the_result(sd15):
    t = sd15.table
    time = sd15.costs["time"]
    by_sum = metrics.group_sum(t.category, len(CATEGORIES), time, t.count)
    by_matrix = time[None, :] @ metrics.group_matrix(t.category, len(CATEGORIES), t.count)
    cats = sd15.by_category()
    assert np.allclose(by_sum, by_matrix[0], rtol=1e-12)
    assert np.allclose(by_sum, [cats[c]["time_s"] for c in CATEGORIES], rtol=1e-12)
    assert by_sum.sum() == pytest.approx(sd15.device_time_s, rel=1e-12)


def test_category_shares_split_the_device_time(sd15):
    shares = metrics.category_shares(sd15)
    assert list(shares) == list(CATEGORIES) and all(0 <= v <= 1 for v in shares.values())
    assert sum(shares.values()) == pytest.approx(sd15.device_time_s / sd15.time_s, rel=1e-12)


def test_intensity_and_attained_rates(sd15):
    assert metrics.intensity(10.0, 4.0) == 2.5 and metrics.intensity(10.0, 0) == 0.0
    assert metrics.attained(10.0, 2.0) == 5.0 and metrics.attained(10.0, 0) == 0.0
    for row in sd15.by_layer():
        assert row["intensity"] == metrics.intensity(row["flops"], row["bytes"])


def test_role_split_covers_every_attention_op():
    r = simulator.run("modelscope-t2v", "a100")
    split = metrics.role_split(r)
    assert {"spatial", "temporal"} <= set(split)
    attention = [row for row in r.by_op() if row["kind"] == "attention"]
    assert sum(v["time_s"] for v in split.values()) == pytest.approx(sum(row["time_s"] for row in attention))
    assert sum(v["flops"] for v in split.values()) == pytest.approx(sum(row["flops"] for row in attention))

