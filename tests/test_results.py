"""Result: a short, one-line repr (the dataclass default printed every kernel: 1.2 MB)."""
import simulator


def test_repr_is_one_short_line_with_the_headline_numbers():
    r = simulator.run("sd15", "a100")
    text = repr(r)
    assert len(text) < 300 and "\n" not in text
    for part in ("'sd15'", "'a100'", "time_s=", "fits=True", "GiB"):
        assert part in text, part
    assert f"{r.time_s:.4g}" in text


def test_repr_says_when_the_model_does_not_fit():
    r = simulator.run("llama2-70b", "a100", overrides={"output_tokens": 2})
    assert "fits=False" in repr(r) and len(repr(r)) < 300


def test_totals_on_several_devices_say_which_figures_are_per_device():
    """`weight_bytes` and `kv_cache_bytes` are the whole model's, `peak_memory_bytes` one device's: the totals
    carry one device's figures under `per_device`, and the table footer labels each."""
    from simulator import report
    r = simulator.run("llama2-7b", "h100", overrides={"output_tokens": 2}, devices=2)
    t = r.totals()
    assert t["weight_bytes"] == r.model.weight_bytes and t["kv_cache_bytes"] == r.kv_cache_bytes
    each = t["per_device"]
    assert each == {k: v for k, v in r.memory_per_device().items() if k.endswith("_bytes")}
    assert each["weight_bytes"] < 0.6 * t["weight_bytes"] and each["kv_cache_bytes"] == t["kv_cache_bytes"] / 2
    assert each["peak_memory_bytes"] == t["peak_memory_bytes"]
    line = report.summary(r)
    assert "(whole model), peak memory" in line and "per device of" in line and ", whole model)" in line
    one = simulator.run("llama2-7b", "h100", overrides={"output_tokens": 2})
    assert "per_device" not in one.totals() and "whole model" not in report.summary(one)
