"""Bad input: one line on stderr naming file, line and field (and the closest valid name), exit 2, no traceback."""
import subprocess
import sys

import pytest

from conftest import DATA, ROOT, run_cli

CHIP = str(DATA / "chip.yaml")

GOOD = """\
name: Mini
family: diffusion-tti
params: {batch: 1, height: 64, dtype: fp16}
blocks:
  Res:
    args: {cout: null}
    inputs: [x]
    outputs: [out]
    ops:
      - {name: conv, op: conv2d, in: x, out_channels: cout, kernel: 3, padding: 1}
      - {name: out, op: add, in: [x, conv]}
stages:
  - name: denoiser
    repeat: 2
    inputs:
      x: {shape: [batch, 8, height, height]}
    ops:
      - {name: res, block: Res, in: x, args: {cout: 8}}
      - {name: norm, op: group_norm, in: res, groups: 4}
"""


def check(path, *fragments, extra=()):
    code, out, err = run_cli("run", path, "--hardware", CHIP, *extra)
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_good_model_runs(write):
    code, out, err = run_cli("run", write(GOOD), "--hardware", CHIP)
    assert code == 0, err


@pytest.mark.parametrize("old, new, fragments", [
    # malformed YAML
    ("    repeat: 2\n", "    repeat: [2\n", ["model.yaml:", "malformed YAML"]),
    # unknown op kind, with the closest name
    ("op: group_norm", "op: group_nrom", ["model.yaml:19", "stages[0].ops[1].op", "unknown op kind 'group_nrom'",
                                          "did you mean 'group_norm'"]),
    # unknown field on an op
    ("groups: 4}", "groups: 4, grups: 2}", ["model.yaml:19", "unknown field 'grups'"]),
    # unknown field in the file structure
    ("    repeat: 2\n", "    repet: 2\n", ["model.yaml:14", "stages[0].repet", "did you mean 'repeat'"]),
    # missing dimension (a required attribute)
    ("out_channels: cout, ", "", ["model.yaml:10", "needs field 'out_channels'"]),
    # negative dimension
    ("{shape: [batch, 8, height, height]}", "{shape: [batch, -8, height, height]}",
     ["model.yaml:16", "inputs.x.shape[1]", "must be positive"]),
    ("kernel: 3", "kernel: -3", ["model.yaml:10", "kernel", "at least 1"]),
    # a tensor consumed before it is produced
    ("in: res, groups", "in: later, groups", ["model.yaml:19", "unknown tensor 'later'"]),
    ("{name: res, block: Res, in: x,", "{name: res, block: Res, in: norm,", ["model.yaml:18", "unknown tensor 'norm'"]),
    # mismatched shapes
    ("args: {cout: 8}", "args: {cout: 16}", ["model.yaml:11", "do not broadcast"]),
    ("groups: 4}", "groups: 3}", ["model.yaml:19", "groups"]),
    # unknown block and argument
    ("block: Res,", "block: Ress,", ["model.yaml:18", "unknown block 'Ress'", "did you mean 'Res'"]),
    ("args: {cout: 8}", "args: {cout: 8, cuot: 1}", ["model.yaml:18", "no argument 'cuot'"]),
    # expression errors
    ("height, height]}", "heigth, height]}", ["model.yaml:16", "unknown name 'heigth'", "did you mean 'height'"]),
    ("family: diffusion-tti", "family: diffusion", ["model.yaml:2", "family must be one of"]),
    ("- {name: norm,", "- {name: res,", ["model.yaml:19", "duplicate op name 'res'"]),
])
def test_bad_model_files(write, old, new, fragments):
    assert old in GOOD
    check(write(GOOD.replace(old, new, 1)), *fragments)


def test_bad_set_values(write):
    path = write(GOOD)
    check(path, "--set", "heigth", "did you mean 'height'", extra=["--set", "heigth=32"])
    check(path, "expected a number", extra=["--set", "height=big"])
    check(path, "must not be negative", extra=["--set", "height=-4"])
    check(path, "unknown dtype 'fp12'", extra=["--set", "dtype=fp12"])
    check(path, "expected NAME=VALUE", extra=["--set", "height"])


def test_bad_hardware_and_cli_values(write):
    path = write(GOOD)
    check(path, "unknown hardware 'a1000'", "did you mean 'a100'", extra=["--hardware", "a1000"])
    check(path, "--hw-set memory.bandwith", "did you mean 'memory.bandwidth'",
          extra=["--hw-set", "memory.bandwith=1e12"])
    check(path, "is not a number", extra=["--hw-set", "memory.bandwidth=fast"])
    check(path, "--format", "choose from table, csv, json", extra=["--format", "xml"])
    check(path, "--by", "did you mean 'layer'", extra=["--by", "layers"])
    check(path, "--attention", "did you mean 'flash'", extra=["--attention", "flsh"])
    code, out, err = run_cli("run", "nosuchmodel", "--hardware", "a100")
    assert code == 2 and "unknown model 'nosuchmodel'" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("frobnicate")
    assert code == 2 and "invalid choice" in err and len(err.strip().splitlines()) == 1


def test_bad_hardware_file(write):
    chip = (DATA / "chip.yaml").read_text()
    model = write(GOOD)
    bad = write(chip.replace("memory: {capacity: 16.0e+9, bandwidth: 1.0e+12}",
                             "memory: {capacity: 16.0e+9, bandwidth: -1.0}"), "bad.yaml")
    code, _, err = run_cli("run", model, "--hardware", bad)
    assert code == 2 and "bad.yaml:6" in err and "memory.bandwidth" in err and "greater than 0" in err
    bad = write(chip.replace("cores: 10", "cores: 10\nsm_count: 3"), "bad2.yaml")
    code, _, err = run_cli("run", model, "--hardware", bad)
    assert code == 2 and "unknown field 'sm_count'" in err
    no_fp8 = run_cli("run", model, "--hardware", CHIP, "--set", "dtype=fp8")
    assert no_fp8[0] == 2 and "no matrix-unit rate for fp8" in no_fp8[2]


def test_repeated_block_must_keep_its_shape(write):
    text = GOOD.replace("args: {cout: 8}}", "args: {cout: 8}, repeat: 3}").replace(
        "- {name: out, op: add, in: [x, conv]}", "- {name: out, op: conv2d, in: conv, out_channels: 4, kernel: 1}")
    check(write(text), "model.yaml:18", "repeated", "must match its first input")


def test_subprocess_exit_status_and_no_traceback(write):
    path = write(GOOD.replace("op: group_norm", "op: nope"))
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", path, "--hardware", CHIP],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
