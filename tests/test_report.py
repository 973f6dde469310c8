"""Text renderings: memory in GiB where vendors say GiB, traffic in decimal units, and the capacity warning."""
import pytest

import simulator
from conftest import run_cli
from simulator.report import gib, si, summary


@pytest.mark.parametrize("value, text", [(80 * 2**30, "80.0 GiB"), (141 * 2**30, "141.0 GiB"),
                                         (1.5 * 2**20, "1.5 MiB"), (2**40, "1.0 TiB"), (512, "512 B")])
def test_gib(value, text):
    assert gib(value) == text


def test_summary_gives_memory_in_gib_and_traffic_in_gb():
    r = simulator.run("sd15", "a100")
    text = summary(r)
    assert "of 80.0 GiB" in text and "GB moved" in text and "85.9" not in text


def test_capacity_warning_in_gib():
    r = simulator.run("llama2-70b", "a100", overrides={"output_tokens": 2})
    (warning,) = [w for w in r.warnings if "exceeds" in w]
    assert "80.0 GiB" in warning and " GB" not in warning


def test_compare_table_peak_memory_in_gib():
    code, out, err = run_cli("compare", "sd15", "--hardware", "a100,h100")
    assert code == 0, err
    assert "GiB" in out


def test_si_keeps_three_digits():
    assert si(2.039e12, "B/s") == "2.04 TB/s" and si(0) == "0"
