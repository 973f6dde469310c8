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


def test_rank_video_models(capsys, monkeypatch):
    """Every video model with a stated frame rate is ranked by seconds of video per second of compute, best
    first, and each figure is its frames over that rate over the simulator's time for the same run."""
    import simulator
    monkeypatch.setattr(sys, "argv", ["rank_video_models.py", "--hardware", "h100"])
    env = runpy.run_path(str(ROOT / "examples" / "rank_video_models.py"), run_name="__main__")
    out = capsys.readouterr().out
    rows, unranked = env["rank"]("h100")
    assert [r["model"] for r in rows] == sorted(env["FPS"], key=lambda m: -next(
        r["video_s_per_s"] for r in rows if r["model"] == m))
    assert {"wan21-1.3b", "wan21-14b", "ltx-video", "mochi-1"} <= {r["model"] for r in rows}
    wan = next(r for r in rows if r["model"] == "wan21-1.3b")
    assert wan["video_s_per_s"] == (81 / 16) / simulator.run("wan21-1.3b", "h100").time_s
    # the 14B model generates the same 81 frames more slowly than the 1.3B one
    assert wan["video_s_per_s"] > next(r for r in rows if r["model"] == "wan21-14b")["video_s_per_s"]
    assert out.splitlines()[1].split()[1] == rows[0]["model"]
    assert all(why for _, why in unranked)
