"""A corpus of bad and extreme inputs (tests/corpus/), run in-process through the CLI's entry function.

Each bad input must be refused with exit status 2 and exactly one line on stderr (`error: ...`, short, naming the
file, line and field or the option), no traceback, nothing on stdout and no file left behind; each extreme but
valid one must exit 0 with finite, positive totals. Every case runs under a time limit, so a hang (an alias bomb
expanded, `2 ** 99999999` computed, a grid materialised) fails the test instead of stalling it.

- models/*.yaml     `run FILE --hardware tests/data/chip.yaml --format json`
- hardware/*.yaml   `run corpus/mini.yaml --hardware FILE --format json`
- csv/*.csv         `fit FILE --hardware a100 --out ...` and `validate FILE --hardware a100`
- public/*.yaml     `validate --public FILE`
- commands.txt      one command line per line, with its expected exit status
Files named ok_* are the valid extremes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import shlex
import signal
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from simulator.cli import main

CORPUS = Path(__file__).resolve().parent / "corpus"
DATA = Path(__file__).resolve().parent / "data"
CHIP = DATA / "chip.yaml"
MINI = CORPUS / "mini.yaml"
LIMIT_S = 10          # a case slower than this is a hang (the slowest valid case takes about a second)
MAX_LINE = 600        # an error line longer than this repeats the user's input instead of naming it


@contextmanager
def time_limit(seconds: int):
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cli(argv: list) -> tuple:
    """(exit status, stdout, stderr, seconds) of `python -m simulator ARGV`, in this process."""
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with time_limit(LIMIT_S), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's --help / version paths
            code = exc.code
    return code, out.getvalue(), err.getvalue(), time.monotonic() - start


def files_in(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def assert_refused(argv, tmp: Path, before: set):
    code, out, err, _ = cli(argv)
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[:2000]
    assert len(lines[0]) <= MAX_LINE, lines[0][:200]
    assert out == ""
    assert files_in(tmp) == before, "a refused command left a file behind"
    return lines[0]


def finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def assert_valid(argv, tmp: Path):
    code, out, err, _ = cli(argv)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err and "error" not in err
    if "--format" in argv and "json" in argv:
        data = json.loads(out)
        for record in data if isinstance(data, list) else [data]:  # compare: one record per device
            totals = record.get("totals", record)
            assert finite_positive(totals["time_s"]), totals
            assert all(math.isfinite(v) for v in totals.values() if isinstance(v, float)), totals
    if argv[0] == "sweep":
        target = Path(argv[argv.index("--out") + 1])
        rows = list(csv.DictReader(target.open()))
        assert rows and all(finite_positive(float(r["time_s"])) for r in rows)


# ------------------------------------------------------------------------------------------------- file cases

def _files(folder: str, suffix: str) -> list:
    return sorted((CORPUS / folder).glob(f"*{suffix}"))


@pytest.mark.parametrize("path", _files("models", ".yaml"), ids=lambda p: p.stem)
def test_model_file(path, tmp_path):
    argv = ["run", path, "--hardware", CHIP, "--format", "json"]
    if path.stem.startswith("ok_"):
        assert_valid(argv, tmp_path)
    else:
        line = assert_refused(argv, tmp_path, set())
        assert str(path) in line  # names the file (and, where there is one, the line)


@pytest.mark.parametrize("path", _files("hardware", ".yaml"), ids=lambda p: p.stem)
def test_hardware_file(path, tmp_path):
    argv = ["run", MINI, "--hardware", path, "--format", "json"]
    if path.stem.startswith("ok_"):
        assert_valid(argv, tmp_path)
    else:
        assert_refused(argv, tmp_path, set())


@pytest.mark.parametrize("path", _files("csv", ".csv"), ids=lambda p: p.stem)
def test_measurements_file(path, tmp_path):
    assert_refused(["fit", path, "--hardware", "a100", "--out", tmp_path / "fitted.yaml"], tmp_path, set())
    assert_refused(["validate", path, "--hardware", "a100"], tmp_path, set())


@pytest.mark.parametrize("path", _files("public", ".yaml"), ids=lambda p: p.stem)
def test_public_cases_file(path, tmp_path):
    assert_refused(["validate", "--public", path], tmp_path, set())


# ---------------------------------------------------------------------------------------------- command lines

def _commands() -> list:
    cases = []
    for number, line in enumerate((CORPUS / "commands.txt").read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        expect, _, command = line.partition("|")
        cases.append(pytest.param(int(expect), command.strip(), id=f"{number}:{command.strip()[:60]}"))
    return cases


@pytest.mark.parametrize("expect, command", _commands())
def test_command_line(expect, command, tmp_path):
    regular = tmp_path / "regular.txt"
    regular.write_text("a regular file\n")
    values = {"corpus": CORPUS, "data": DATA, "mini": MINI, "chip": CHIP, "tmp": tmp_path, "file": regular,
              "long": "x" * 100_000}
    argv = [arg.format(**values) for arg in shlex.split(command)]
    if expect == 0:
        assert_valid(argv, tmp_path)
    else:
        assert_refused(argv, tmp_path, files_in(tmp_path))


# ------------------------------------------------------------------------------------- generated huge inputs

def test_an_800000_character_expression_is_not_repeated(tmp_path):
    text = MINI.read_text().replace("[B, 8, height, height]", '[B, 8, "' + "1 + " * 200_000 + '1", height]')
    path = tmp_path / "long.yaml"
    path.write_text(text)
    line = assert_refused(["run", path, "--hardware", CHIP], tmp_path, files_in(tmp_path))
    assert "(800,001 characters)" in line


def test_an_alias_bomb_in_an_op_input_is_refused_quickly(tmp_path):
    """30^9 tensor names from a few lines of YAML: refused before anything walks (or prints) the value."""
    def nest(level: int) -> str:
        if level == 0:
            return "&l0 [" + ", ".join(["x"] * 30) + "]"
        return f"&l{level} [" + nest(level - 1) + ", " + ", ".join([f"*l{level - 1}"] * 29) + "]"
    text = MINI.read_text().replace("{name: norm, op: group_norm, in: res,",
                                    "{name: norm, op: group_norm, in: " + nest(8) + ",")
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    start = time.monotonic()
    line = assert_refused(["run", path, "--hardware", CHIP], tmp_path, files_in(tmp_path))
    assert time.monotonic() - start < 2 and "alias" in line


def test_every_error_after_work_started_leaves_no_file(tmp_path, monkeypatch):
    """A sweep that fails half-way (not Ctrl-C) removes its partial output."""
    import simulator.sweep as sw
    real = sw.run_local

    def failing(plan):
        for i, item in enumerate(real(plan)):
            if i == 1:
                raise sw.SpecError("simulated failure after the first block")
            yield item
    monkeypatch.setattr(sw, "run_local", failing)
    out = tmp_path / "s.csv"
    assert_refused(["sweep", MINI, "--hardware", CHIP, "--vary", "memory.bandwidth=1e12:8e12:200000", "--out", out],
                   tmp_path, set())


def test_corpus_size():
    files = sum(len(_files(d, s)) for d, s in (("models", ".yaml"), ("hardware", ".yaml"), ("csv", ".csv"),
                                               ("public", ".yaml")))
    assert files + len(_commands()) >= 160


@pytest.mark.parametrize("argv, start, fragments", [
    (["run", "sd15", "--set", "batch=0"], "error: --set batch=0: ", ["at least 1"]),
    (["run", "sd15", "--set", "batch=1.5"], "error: --set batch=1.5: ", ["whole number"]),
    (["run", "sd15", "--set", "height=nan"], "error: --set height=nan: ", ["finite"]),
    (["run", "sd15", "--set", "steps=inf"], "error: --set steps=inf: ", ["finite"]),
    (["run", "sd15", "--set", "cfg=7.5"], "error: --set cfg=7.5: ",
     ["switches classifier-free guidance on or off", "guidance scale does not change the cost"]),
    (["run", "sd15", "--hw-set", "memory.bandwidth=nan"], "error: --hw-set memory.bandwidth=nan: ", ["finite"]),
    (["run", "sd15", "--hw-set", "memory.bandwidth=1e-310"], "error: --hw-set memory.bandwidth=1e-310: ", ["1e-30"]),
    (["run", MINI, "--hardware", CHIP, "--vary-workload", "x=1"], "error: simulator: ", ["unrecognized arguments"]),
])
def test_messages_name_the_option(argv, start, fragments, tmp_path):
    line = assert_refused(argv, tmp_path, set())
    assert line.startswith(start), line
    for f in fragments:
        assert f in line, line


def test_messages_name_the_location(tmp_path):
    line = assert_refused(["run", CORPUS / "models" / "tensor_2_70_elements.yaml", "--hardware", CHIP], tmp_path, set())
    assert "tensor_2_70_elements.yaml:21: stages[0].inputs.x.shape" in line and "2^60" in line
    line = assert_refused(["run", CORPUS / "models" / "nul_byte.yaml", "--hardware", CHIP], tmp_path, set())
    assert "nul_byte.yaml:18:" in line
    line = assert_refused(["run", CORPUS / "models" / "stage_repeat_above_iteration_limit.yaml", "--hardware", CHIP],
                          tmp_path, set())
    assert "stages[1].repeat" in line and "131,072" in line
