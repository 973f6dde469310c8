"""The measurement format: the plan is valid simulator input, the CSV round-trips, and a malformed CSV is one
line naming the file and line. No PyTorch needed."""
import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from simulator import measurements
from simulator.errors import SpecError
from simulator.measurements import COLUMNS, KINDS, MAX_INPUT_BYTES, footprint, plan, read_csv, write_csv
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



def test_full_plan_has_no_duplicates_and_bounded_inputs():
    assert len({measurements._key(c) for c in FULL}) == len(FULL)
    assert all(footprint(c)[0] <= MAX_INPUT_BYTES for c in FULL)


ROWS = [
    dict(measurements._linear(4096, 4096, 4096), time_s=1.234567890123e-4, repeats=10, device="NVIDIA H100 80GB HBM3",
         torch="2.5.1+cu124", driver="550.54.15", date="2025-01-02", error="", backend=""),
    dict(measurements._attn(2, 4096, 77, 8, 40, "flash"), time_s=None, repeats=0, device="NVIDIA H100 80GB HBM3",
         torch="2.5.1+cu124", driver="550.54.15", date="2025-01-02", error='RuntimeError: No available kernel, "x"',
         backend=""),
    dict(measurements._case("conv3d", [[1, 8, 4, 8, 8]], "bf16", out_channels=8, kernel=[3, 1, 1], padding=[1, 0, 0]),
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


def test_no_torch_needed():
    """The format, the plan and the harness module itself import without PyTorch (torch made unimportable)."""
    code = ("import sys; sys.modules['torch'] = None; import simulator.measurements, simulator.calibrate, "
            "simulator.fidelity; assert sys.modules['torch'] is None")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(measurements.__file__).parents[1])
    tree = ast.parse(open(measurements.__file__).read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(name.split(".")[0] == "torch" for name in imported)


def _bad(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        read_csv(str(path))
    message = str(info.value)
    assert "\n" not in message
    return message.replace(str(path), "FILE")


HEADER = ",".join(COLUMNS) + "\n"
GOOD = 'linear,"[[64,128]]","{""out_features"":128}",,fp16,1e-05,3,cpu,2.5,,2025-01-02,\n'


@pytest.mark.parametrize("line, expected", [
    ('linear,"[[64,128]",{},,fp16,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: shapes '[[64,128]': expected JSON"),
    ('linear,"[[64,128]]",[1],,fp16,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: attrs '[1]': expected a JSON object"),
    ('linear,"[[64,128]]",{},,fp16,fast,3,cpu,2.5,,2025-01-02,', "FILE:3: time_s 'fast': expected a number"),
    ('linear,"[[64,128]]",{},,fp16,-1,3,cpu,2.5,,2025-01-02,', "FILE:3: time_s '-1': expected a finite positive"),
    ('linear,"[[64,128]]",{},,fp16,nan,3,cpu,2.5,,2025-01-02,', "FILE:3: time_s 'nan': expected a finite positive"),
    ('linear,"[[64,128]]",{},,fp16,1e-05,3.5,cpu,2.5,,2025-01-02,', "FILE:3: repeats '3.5': expected a whole number"),
    ('lienar,"[[64,128]]",{},,fp16,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: kind 'lienar': unknown op kind"),
    ('linear,"[[64,128]]",{},,fp64,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: dtype 'fp64': unknown dtype"),
    ('linear,"[[64,0]]",{},,fp16,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: shapes '[[64,0]]': expected a list of shapes"),
    ('add,"[[4,8]]",{},,fp16,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: shapes '[[4,8]]': add takes 2 inputs"),
    ('linear,"[[64,128]]","{""heads"":8}",,fp16,1e-05,3,cpu,2.5,,2025-01-02,',
     "FILE:3: attrs '{\"heads\":8}': linear has no attribute 'heads'"),
    ('conv2d,"[[1,8,2,2]]","{""out_channels"":8,""kernel"":5}",,fp16,1e-05,3,cpu,2.5,,2025-01-02,',
     "FILE:3: conv2d case"),
    ('add,"' + "x" * 200_000 + '",{},,fp16,1e-05,3,cpu,2.5,,2025-01-02,', "FILE:3: malformed CSV: field larger"),
])
def test_malformed_row_is_one_line_naming_file_and_line(tmp_path, line, expected):
    assert _bad(tmp_path, HEADER + GOOD + line + "\n").startswith(expected)


def test_malformed_file(tmp_path):
    assert _bad(tmp_path, "a,b\n1,2\n").startswith("FILE:1: not a calibration CSV: no column kind, shapes, dtype")
    assert _bad(tmp_path, "").startswith("FILE:1: not a calibration CSV")
    with pytest.raises(SpecError, match="cannot read measurements"):
        read_csv(str(tmp_path / "missing.csv"))
    (tmp_path / "bad.csv").write_bytes(HEADER.encode() + b"add,\xff\n")
    with pytest.raises(SpecError, match=r"bad.csv:2: not UTF-8"):
        read_csv(str(tmp_path / "bad.csv"))


def test_malformed_csv_on_the_command_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + GOOD + GOOD.replace("fp16", "fp64"))
    code, out, err = run_cli("validate", path, "--hardware", "h100", "--all-rows")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {path}:3: dtype 'fp64': unknown dtype (dtypes: fp32, tf32, bf16, "
                                        "fp16, fp8, int8, fp4, int4, int32, int64, bool)"]
