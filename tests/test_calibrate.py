"""Calibration harness: the plan is valid simulator input, fits the time and memory it promises, the CSV round-trips,
and the quick plan runs on the CPU (when PyTorch is installed)."""
import datetime
import json
import math
import sys

import pytest

from simulator import calibrate
from simulator.calibrate import (COLUMNS, KINDS, MAX_INPUT_BYTES, estimate, footprint, measure, plan, read_csv,
                                 write_csv)
from simulator.ops import OPS, OpCall

FULL = plan("cuda", quick=False)
QUICK_CPU = plan("cpu", quick=True)
QUICK_GPU = plan("cuda", quick=True)


def simulate(case):
    """Cost a case with the simulator's op formula, defaults filled as tests/test_ops.py's `call` does."""
    opdef = OPS[case["kind"]]
    attrs = {k: a.default for k, a in opdef.attrs.items()}
    attrs.update(case["attrs"])
    shapes = [tuple(s) for s in case["shapes"]]
    return opdef.fn(OpCall("t", case["kind"], shapes, [case["dtype"]] * len(shapes), attrs, case["dtype"],
                           case["attention"] or "flash"))


@pytest.mark.parametrize("cases", [FULL, QUICK_CPU, QUICK_GPU], ids=["full", "quick-cpu", "quick-gpu"])
def test_every_case_is_valid_simulator_input(cases):
    assert cases
    for case in cases:
        assert set(case) == {"kind", "shapes", "attrs", "attention", "dtype"}
        assert case["kind"] in OPS, case
        assert set(case["attrs"]) <= set(OPS[case["kind"]].attrs), case        # exactly ops.py's attribute names
        assert case["dtype"] in ("fp16", "bf16", "fp32")
        assert case["attention"] in (("flash", "math") if case["kind"] == "attention" else ("",)), case
        assert all(isinstance(d, int) and d >= 1 for s in case["shapes"] for d in s), case
        lo, hi = OPS[case["kind"]].inputs
        assert lo <= len(case["shapes"]) <= (hi or 99)
        simulate(case)                                                       # raises on any shape/attr problem
        json.dumps(case)                                                     # CSV-able


@pytest.mark.parametrize("cases", [FULL, QUICK_CPU], ids=["full", "quick"])
def test_every_kind_is_covered(cases):
    kinds = {c["kind"] for c in cases}
    assert set(KINDS) <= kinds
    assert {c["attention"] for c in cases if c["kind"] == "attention"} == {"flash", "math"}


def test_quick_plan_is_tiny_and_dtype_follows_device():
    assert len(QUICK_CPU) <= 30
    assert {c["dtype"] for c in QUICK_CPU} == {"fp32"} and {c["dtype"] for c in QUICK_GPU} == {"fp16"}
    assert max(sum(footprint(c)) for c in QUICK_CPU) < 2**20


def test_full_plan_covers_the_grids():
    lin = {(c["shapes"][0][0], c["shapes"][0][1], c["attrs"]["out_features"]) for c in FULL if c["kind"] == "linear"}
    for m in [2**i for i in range(15)]:
        for k in (512, 4096, 16384):
            assert (m, k, k) in lin and (m, 512, 16384) in lin
    for m in (1, 2, 4, 8, 16):
        for k in (4096, 11008, 28672):
            assert (m, k, 14336) in lin and (m, 8192, k) in lin             # skinny decode shapes
    att = [c for c in FULL if c["kind"] == "attention"]
    for mode in ("flash", "math"):
        selfs = {(c["shapes"][0][1], c["attrs"]["head_dim"]) for c in att
                 if c["attention"] == mode and c["shapes"][0][1] == c["shapes"][1][1]}
        for d in (40, 64, 80, 128, 160):
            assert {(2**i, d) for i in range(3, 15 if mode == "flash" else 14)} <= selfs, (mode, d)
        assert any(c["shapes"][1][1] == 77 for c in att if c["attention"] == mode)              # cross-attention
        assert any(c["shapes"][0][1] <= 32 and c["shapes"][0][0] >= 2048 for c in att
                   if c["attention"] == mode)                                                  # temporal
    assert any(c["attrs"].get("kv_heads") for c in att)
    convs = {(c["shapes"][0][1], c["attrs"]["out_channels"], c["shapes"][0][2], c["attrs"]["kernel"],
              c["attrs"]["stride"]) for c in FULL if c["kind"] == "conv2d"}
    for c, size in ((320, 64), (640, 32), (1280, 16), (1280, 8), (320, 128), (640, 64), (1280, 32)):
        assert (c, c, size, 3, 1) in convs
    assert (320, 320, 64, 3, 2) in convs and (640, 640, 32, 1, 1) in convs and (2560, 1280, 8, 3, 1) in convs
    for c, size in ((512, 64), (512, 256), (256, 512), (128, 512), (128, 1024)):                # VAE
        assert (c, c, size, 3, 1) in convs
    assert any(c["kind"] == "conv3d" and c["attrs"]["kernel"] == [3, 1, 1] for c in FULL)
    for kind in ("group_norm", "layer_norm", "rms_norm", "softmax", "add", "mul", "silu", "gelu", "copy"):
        sizes = [math.prod(c["shapes"][0]) * 2 for c in FULL if c["kind"] == kind]
        assert min(sizes) <= 80 * 2**10 and max(sizes) >= 500 * 2**20, kind                  # 64 KB .. 512 MB


def test_full_plan_fits_five_minutes_and_little_memory_on_an_h100():
    assert len({calibrate._key(c) for c in FULL}) == len(FULL)                 # no duplicates
    assert all(footprint(c)[0] <= MAX_INPUT_BYTES for c in FULL)
    est = estimate(FULL)
    assert est["seconds"] < 300
    assert est["peak_bytes"] < 8 * 2**30                                        # an H100 has 80 GB


def test_estimate_grows_with_work():
    small = estimate([calibrate._linear(128, 1024, 1024)])
    big = estimate([calibrate._linear(16384, 16384, 16384)])
    assert big["kernel_seconds"] > 100 * small["kernel_seconds"]
    assert calibrate._timed_calls(10, 0.5) == 3 and calibrate._timed_calls(10, 1e-5) == 10
    assert calibrate._timed_calls(2, 5.0) == 2


ROWS = [
    dict(calibrate._linear(4096, 4096, 4096), time_s=1.234567890123e-4, repeats=10, device="NVIDIA H100 80GB HBM3",
         torch="2.5.1+cu124", driver="550.54.15", date="2025-01-02", error="", backend=""),
    dict(calibrate._attn(2, 4096, 77, 8, 40, "flash"), time_s=None, repeats=0, device="NVIDIA H100 80GB HBM3",
         torch="2.5.1+cu124", driver="550.54.15", date="2025-01-02", error='RuntimeError: No available kernel, "x"',
         backend=""),
    dict(calibrate._case("conv3d", [[1, 8, 4, 8, 8]], "bf16", out_channels=8, kernel=[3, 1, 1], padding=[1, 0, 0]),
         time_s=2.5e-6, repeats=3, device="cpu, x", torch="2.13.0", driver="", date="2025-01-02", error="",
         backend=""),
]


def test_csv_round_trip(tmp_path):
    path = tmp_path / "out" / "dev.csv"
    write_csv(ROWS, str(path))
    assert [p.name for p in path.parent.iterdir()] == ["dev.csv"]              # no temporary file left
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    back = read_csv(str(path))
    assert back == [{k: v for k, v in r.items() if k in COLUMNS} for r in ROWS]
    assert back[0]["time_s"] == 1.234567890123e-4 and back[1]["time_s"] is None
    write_csv(ROWS[:1], str(path))                                              # replaces the file whole
    assert len(read_csv(str(path))) == 1


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
    bad = calibrate._case("embedding", [[4, 8]], "fp32", num_embeddings=10, dim=4)   # no runner for this kind
    ok = calibrate._case("add", [[4, 8], [4, 8]], "fp32")
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
