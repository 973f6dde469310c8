"""Calibration harness: the full plan fits the time and memory it promises on an H100 (by the simulator's own
prediction), and the quick plan runs on the CPU (when PyTorch is installed). The plan and the CSV format are
tested in tests/test_measurements.py."""
import datetime
import sys

import pytest

from simulator import calibrate, measurements
from simulator.calibrate import estimate, flush_size, measure
from simulator.fidelity import cases_table, predict
from simulator.hardware import load_hardware
from simulator.measurements import plan, read_csv, write_csv

FULL = plan("cuda", quick=False)
QUICK_CPU = plan("cpu", quick=True)


def test_full_plan_fits_five_minutes_and_little_memory_on_an_h100():
    est = estimate(FULL)
    assert est["cases"] == len(FULL)
    assert est["seconds"] < 300
    assert est["peak_bytes"] < 8 * 2**30                                        # an H100 has 80 GB


def test_estimate_grows_with_work():
    small = estimate([measurements._linear(128, 1024, 1024)])
    big = estimate([measurements._linear(16384, 16384, 16384)])
    assert big["kernel_seconds"] > 100 * small["kernel_seconds"]
    assert calibrate._timed_calls(10, 0.5) == 3 and calibrate._timed_calls(10, 1e-5) == 10
    assert calibrate._timed_calls(2, 5.0) == 2


def test_estimate_is_the_simulators_prediction():
    """One cost model: a case's kernel seconds are fidelity.predict's time of the case times the calls made."""
    case = measurements._linear(4096, 4096, 4096)
    spec = load_hardware("h100").spec
    call_s = float(predict(cases_table([case], spec), spec)[0][0])
    calls = 1 + 3 + calibrate._timed_calls(10, call_s)
    assert estimate([case], repeats=10, warmup=3)["kernel_seconds"] == pytest.approx(calls * call_s)
    assert estimate([case], hardware="a100")["kernel_seconds"] > estimate([case])["kernel_seconds"]
    # the flush buffer: four L2s (H100: 50 MiB), between 128 and 512 MiB
    assert flush_size(spec.on_chip.l2_bytes) == 200 * 2**20
    assert flush_size(0) == 128 * 2**20 and flush_size(2**30) == 512 * 2**20


def test_import_and_main_without_torch(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)                            # `import torch` raises ImportError
    assert calibrate.main(str(tmp_path / "x.csv"), None, None, 2, 1) == 2
    assert "pip install torch" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(RuntimeError, match="pip install torch"):
        measure(QUICK_CPU, "cpu", 2, 1)


# ---------------------------------------------------------------------------------------------- needs torch

def test_measure_quick_plan_on_cpu(tmp_path):
    pytest.importorskip("torch")
    seen = []
    rows = measure(QUICK_CPU, "cpu", repeats=2, warmup=1, progress=lambda i, n, row: seen.append((i, n)))
    assert seen == [(i, len(QUICK_CPU)) for i in range(len(QUICK_CPU))]
    assert len(rows) == len(QUICK_CPU)
    for case, row in zip(QUICK_CPU, rows):
        assert row["error"] == "", row
        assert {k: row[k] for k in case} == case
        assert row["time_s"] > 0 and row["repeats"] == 2
        assert row["device"] and row["torch"] and row["driver"] == ""
        datetime.date.fromisoformat(row["date"])
        if case["kind"] == "attention":
            assert row["backend"] in (("flash", "efficient") if case["attention"] == "flash" else ("math",))
    write_csv(rows, str(tmp_path / "cpu.csv"))
    back = read_csv(str(tmp_path / "cpu.csv"))
    assert [(r["kind"], r["shapes"], r["attrs"], r["time_s"]) for r in back] == \
           [(r["kind"], r["shapes"], r["attrs"], r["time_s"]) for r in rows]


def test_failing_case_is_recorded_and_the_run_goes_on():
    pytest.importorskip("torch")
    bad = measurements._case("embedding", [[4, 8]], "fp32", num_embeddings=10, dim=4)   # no runner for this kind
    ok = measurements._case("add", [[4, 8], [4, 8]], "fp32")
    rows = measure([bad, ok], "cpu", repeats=1, warmup=0)
    assert rows[0]["time_s"] is None and "embedding" in rows[0]["error"] and rows[0]["repeats"] == 0
    assert rows[1]["error"] == "" and rows[1]["time_s"] > 0
    skipped = measure([ok], "cpu", repeats=1, warmup=0, budget_s=-1)
    assert skipped[0]["time_s"] is None and skipped[0]["error"].startswith("skipped")


def test_main_on_cpu_writes_the_quick_plan(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "measurements" / "cpu.csv"
    assert calibrate.main(str(out), "cpu", None, 1, 0) == 0
    err = capsys.readouterr().err
    assert "quick plan" in err and f"[{len(QUICK_CPU)}/{len(QUICK_CPU)}]" in err and "wrote" in err
    rows = read_csv(str(out))
    assert len(rows) == len(QUICK_CPU) and all(r["time_s"] for r in rows)


def test_main_refuses_a_missing_device(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert calibrate.main(str(tmp_path / "x.csv"), "cuda", None, 1, 0) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert calibrate.main(str(tmp_path / "x.csv"), "tpu", None, 1, 0) == 2
    assert not (tmp_path / "x.csv").exists()
