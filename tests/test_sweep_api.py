"""`simulator.sweep(...)`: the `sweep` command as one call, returning rows or the path written, matching the CLI."""
import csv

import pytest

import simulator
from conftest import run_cli


def test_sweep_returns_records_matching_the_cli(tmp_path):
    rows = simulator.sweep("sd15", "h100", vary={"memory.bandwidth": [1e12, 2e12, 4e12]})
    assert len(rows) == 3 and [r["memory.bandwidth"] for r in rows] == [1e12, 2e12, 4e12]
    assert rows[0]["model"] == "sd15" and rows[0]["time_s"] > rows[2]["time_s"] > 0 and rows[0]["fits"] is True
    out = tmp_path / "s.csv"
    code, _, err = run_cli("sweep", "sd15", "--hardware", "h100", "--vary", "memory.bandwidth=1e12,2e12,4e12",
                           "--out", out)
    assert code == 0, err
    with open(out) as fh:
        cli = list(csv.DictReader(fh))
    assert list(cli[0]) == list(rows[0])
    for mine, theirs in zip(rows, cli):
        assert float(theirs["time_s"]) == pytest.approx(mine["time_s"], rel=1e-11)


def test_sweep_writes_the_same_file_as_the_cli(tmp_path):
    mine = tmp_path / "api.csv"
    assert simulator.sweep(["sd15"], "a100", vary=["memory.bandwidth=1e12:4e12:4:log"],
                           vary_workload={"batch": [1, 2]}, out=str(mine)) == str(mine)
    theirs = tmp_path / "cli.csv"
    code, _, err = run_cli("sweep", "sd15", "--hardware", "a100", "--vary", "memory.bandwidth=1e12:4e12:4:log",
                           "--vary-workload", "batch=1,2", "--out", theirs)
    assert code == 0, err
    assert mine.read_text() == theirs.read_text()


def test_sweep_is_still_the_module_too():
    from simulator import sweep as sw
    assert callable(sw) and callable(sw.plan) and sw.sweep is not None
    with pytest.raises(simulator.SpecError, match="--vary"):
        simulator.sweep("sd15", vary={"memory.bandwith": [1e12]})


def test_sweep_refuses_a_bad_output_before_any_work(tmp_path, monkeypatch):
    from simulator import sweep as sw
    monkeypatch.setattr(sw, "plan", lambda *a, **k: pytest.fail("planned before checking the output"))
    with pytest.raises(simulator.SpecError, match="format"):
        simulator.sweep("sd15", vary={"memory.bandwidth": [1e12]}, out=str(tmp_path / "s.txt"))
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(simulator.SpecError, match="folder"):
        simulator.sweep("sd15", vary={"memory.bandwidth": [1e12]}, out=str(tmp_path / "d.csv"))

