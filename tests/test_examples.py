"""The example scripts run (they are what a person copies first)."""
import runpy
import sys

from conftest import ROOT


def test_what_if(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["what_if.py", "sd15", "a100"])
    runpy.run_path(str(ROOT / "examples" / "what_if.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Flash Attention" in out and "conv" in out


def test_suite_summary(capsys):
    runpy.run_path(str(ROOT / "examples" / "suite_summary.py"), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 22  # header + one line per built-in model
    assert any(line.startswith("sd15") for line in lines)
