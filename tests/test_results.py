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
