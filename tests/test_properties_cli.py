"""Property-based robustness: random small model graphs, hardware files and command lines, valid and broken.

Whatever the input, the CLI either succeeds (exit 0, finite positive totals) or refuses it (exit 2, exactly one
line on stderr, no traceback, nothing on stdout), within a few seconds. Inputs generated without a defect must
succeed.
"""
from __future__ import annotations

import csv
import json
import math
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_corpus import CHIP, MINI, cli  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=5000, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# values a careless or hostile input might hold where a number is expected
BAD_NUMBERS = [-1, 0, ".nan", ".inf", "-.inf", "1e308", "1.0e-310", '"2 ** 99999999"', '"10 ** 30"', "true",
               "[1, 2]", "{a: 1}", "nosuch", '"1 / 0"', '"log2(0)"', '"((((1)"', '"x" ', "~", '"' + "9" * 50 + '"',
               "2.5", "-0.0"]
GOOD_DIM = st.integers(1, 512)


def check(argv, must_succeed: bool):
    code, out, err, seconds = cli(argv)
    assert seconds < 10
    assert "Traceback" not in err
    if code == 0 and argv[0] == "run":
        totals = json.loads(out)["totals"]
        assert math.isfinite(totals["time_s"]) and totals["time_s"] > 0, totals
        assert all(math.isfinite(v) for v in totals.values() if isinstance(v, float)), totals
    elif code == 0 and argv[0] == "sweep":
        target = Path(argv[argv.index("--out") + 1])
        rows = json.loads(target.read_text()) if target.suffix == ".json" else list(csv.DictReader(target.open()))
        assert rows and all(math.isfinite(float(r["time_s"])) and float(r["time_s"]) > 0 for r in rows)
    else:
        assert not must_succeed, err
        assert code == 2, err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 600, err[:1000]
        assert out == ""


# ---------------------------------------------------------------------------------------------------- models

UNARY = ["gelu", "silu", "relu", "layer_norm", "rms_norm", "softmax", "scale", "copy", "tanh"]


@st.composite
def model_text(draw):
    """A chain of ops on a [batch, channels, size] tensor; with `broken`, one field is replaced by garbage."""
    channels = draw(st.sampled_from([4, 8, 16, 32]))
    lines = ["name: Generated", "family: diffusion-tti", "params:",
             f"  batch: {{default: {draw(st.integers(1, 4))}, min: 1}}",
             f"  size: {draw(GOOD_DIM)}", "stages:", "  - name: main",
             f"    repeat: {draw(st.integers(1, 50))}" if draw(st.booleans()) else "    repeat: 1",
             "    inputs:", f"      x: {{shape: [batch, {channels}, size]}}", "    ops:"]
    prev = "x"
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(UNARY + ["linear", "add", "concat"]))
        if kind == "linear":
            op = f"{{name: op{i}, op: linear, in: {prev}, out_features: {draw(GOOD_DIM)}}}"
        elif kind == "add":
            op = f"{{name: op{i}, op: add, in: [{prev}, {prev}]}}"
        elif kind == "concat":
            op = f"{{name: op{i}, op: concat, in: [{prev}, {prev}], axis: {draw(st.integers(-3, 2))}}}"
        else:
            op = f"{{name: op{i}, op: {kind}, in: {prev}}}"
        lines.append(f"      - {op}")
        prev = f"op{i}"
    broken = draw(st.booleans())
    if broken:
        target = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["number", "kind", "tensor", "field", "char", "truncate", "repeat", "alias"]))
        line = lines[target]
        if how == "number":
            digits = [j for j, ch in enumerate(line) if ch.isdigit()]
            if digits:
                j = draw(st.sampled_from(digits))
                line = line[:j] + str(draw(st.sampled_from(BAD_NUMBERS))) + line[j + 1:]
        elif how == "kind":
            line = line.replace("op: ", f"op: {draw(st.text('abcxyz_', min_size=1, max_size=6))}", 1)
        elif how == "tensor":
            line = line.replace("in: ", "in: ghost_", 1)
        elif how == "field":
            line = line.replace("}", ", bogus_field: 1}", 1) if "}" in line else line + "\nbogus: 1"
        elif how == "char":
            j = draw(st.integers(0, len(line)))
            line = line[:j] + draw(st.sampled_from(["\x00", "\x07", "\t", "\ufeff", "é", "{", "]", ":", "&", "*"])) \
                + line[j:]
        elif how == "truncate":
            line = line[:draw(st.integers(0, len(line)))]
        elif how == "repeat":
            line = line + f"\n    repeat: {draw(st.sampled_from(['10 ** 12', '-3', '.nan', '1.5']))}" \
                if line.startswith("  - name") else line
        else:
            lines.insert(0, "a: &a [" + ", ".join(["x"] * 20) + "]")
        lines[target if how != "alias" else target + 1] = line
    return "\n".join(lines) + "\n", broken


@SETTINGS
@given(model_text())
def test_random_models(tmp_path, generated):
    text, broken = generated
    path = tmp_path / "model.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check(["run", path, "--hardware", CHIP, "--format", "json"], must_succeed=not broken)


# -------------------------------------------------------------------------------------------------- hardware

GOOD_HW = {
    "memory.capacity": st.floats(1e6, 1e13), "memory.bandwidth": st.floats(1e9, 1e14),
    "compute.fp16": st.floats(1e11, 1e16), "vector.fp32": st.floats(1e10, 1e15),
    "efficiency.matrix": st.floats(0.05, 1.0), "efficiency.memory": st.floats(0.05, 1.0),
    "efficiency.launch_overhead_s": st.one_of(st.just(0.0), st.floats(1e-9, 1e-4)), "cores": st.integers(1, 1024),
    "matrix_tile.m": st.integers(1, 256), "tdp_w": st.floats(1.0, 2000.0),
}


@st.composite
def hardware_text(draw):
    fields = {}
    broken = False
    for path, good in GOOD_HW.items():
        if draw(st.integers(0, 9)) == 0:
            fields[path] = str(draw(st.sampled_from(BAD_NUMBERS + [1e-320, 1e40, -5e12])))
            broken = True
        elif draw(st.booleans()):
            fields[path] = repr(draw(good))
    groups: dict = {}
    for path, value in fields.items():
        head, _, tail = path.partition(".")
        if tail:
            groups.setdefault(head, []).append(f"{tail}: {value}")
        else:
            groups[head] = value
    lines = [f"inherit: {CHIP}"] + [f"{k}: {{{', '.join(v)}}}" if isinstance(v, list) else f"{k}: {v}"
                                     for k, v in groups.items()]
    return "\n".join(lines) + "\n", broken


@SETTINGS
@given(hardware_text())
def test_random_hardware(tmp_path, generated):
    text, broken = generated
    path = tmp_path / "chip.yaml"
    path.write_text(text)
    check(["run", MINI, "--hardware", path, "--format", "json"], must_succeed=not broken)


# --------------------------------------------------------------------------------------------- command lines

SET_NAMES = ["batch", "height", "cfg", "dtype", "nosuch", ""]
SET_VALUES = ["1", "2", "64", "0", "-1", "1.5", "nan", "inf", "-inf", "1e308", "true", "false", "fp16", "bf16",
              "fp12", "", "x" * 200, "7.5", "1e-320", "0x10", "1_000", "২"]
HW_PATHS = ["memory.bandwidth", "compute.fp16", "efficiency.matrix", "cores", "tdp_w", "nosuch.path",
            "efficiency.launch_overhead_s", "matrix_tile.m", "name"]
HW_VALUES = ["1e12", "2e15", "0.5", "0", "-1", "nan", "inf", "1e-310", "1e40", "fast", "true", "108", "1.5"]


@st.composite
def command_line(draw):
    argv = ["run", str(MINI), "--hardware", str(CHIP), "--format", "json"]
    for _ in range(draw(st.integers(0, 3))):
        argv += ["--set", f"{draw(st.sampled_from(SET_NAMES))}={draw(st.sampled_from(SET_VALUES))}"]
    for _ in range(draw(st.integers(0, 2))):
        argv += ["--hw-set", f"{draw(st.sampled_from(HW_PATHS))}={draw(st.sampled_from(HW_VALUES))}"]
    if draw(st.booleans()):
        argv += ["--attention", draw(st.sampled_from(["flash", "math", "sparse"]))]
    if draw(st.booleans()):
        argv += ["--disable", ",".join(draw(st.lists(st.sampled_from(["tile", "wave", "latency", "nope"]),
                                                      max_size=3)))]
    if draw(st.booleans()):
        argv.append("--roofline")
    if draw(st.integers(0, 5)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "-x", "--set", "--out"])))
    return argv


@SETTINGS
@given(command_line())
def test_random_command_lines(argv):
    check(argv, must_succeed=False)


AXIS_FIELDS = ["memory.bandwidth", "compute.fp16", "efficiency.matrix", "cores", "tdp_w", "nosuch", ""]
AXIS_VALUES = ["1e12", "2e12", "0.5", "1", "0", "-1", "nan", "inf", "1e-310", "x", ""]


@st.composite
def sweep_line(draw, folder):
    def value():
        return draw(st.sampled_from(AXIS_VALUES))

    def spec():
        if draw(st.booleans()):
            return ",".join(value() for _ in range(draw(st.integers(1, 3))))
        num = draw(st.sampled_from(["1", "3", "20", "1.5", "0", "-2", "1000000000000", "x"]))
        return f"{value()}:{value()}:{num}" + (":log" if draw(st.booleans()) else "")

    argv = ["sweep", str(MINI), "--hardware", str(CHIP), "--out", str(folder / draw(st.sampled_from(
        ["s.csv", "s.json", "s.txt", ""])))]
    for _ in range(draw(st.integers(0, 3))):
        argv += ["--vary", f"{draw(st.sampled_from(AXIS_FIELDS))}={spec()}"]
    for _ in range(draw(st.integers(0, 2))):
        argv += ["--vary-workload", f"{draw(st.sampled_from(['batch', 'height', 'cfg', 'nosuch']))}={spec()}"]
    if draw(st.integers(0, 3)) == 0:
        argv += ["--samples", draw(st.sampled_from(["1", "10", "0", "-5", "1000000000000", "x"]))]
    if draw(st.integers(0, 3)) == 0:
        argv += ["--max-points", draw(st.sampled_from(["1", "100", "0", "-1"]))]
    return argv


@SETTINGS
@given(st.data())
def test_random_sweeps(tmp_path, data):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # a fresh, empty folder per example
    argv = data.draw(sweep_line(folder))
    code, _, err, _ = cli(argv)
    check(argv, must_succeed=False)
    if code != 0:
        assert not any(folder.iterdir()), "a refused sweep left a file"
