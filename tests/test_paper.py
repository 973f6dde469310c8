"""`report paper` end to end, figures as files, findings recomputed independently from `run` JSON."""
import json
import math

import pytest

from conftest import run_cli
from simulator import paper

IDS = {"conv_share_diffusion", "linear_share_transformer", "flash_speedup_gap", "prefill_decode_analogy",
       "seq_len_variation", "image_size_scaling", "temporal_attention_share"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code, stdout, stderr = run_cli("report", "paper", "--hardware", "a100", "--out", out)
    assert code == 0, stderr
    assert "conv_share_diffusion" in stdout and str(out) in stdout
    return out


def test_report_files(report_dir):
    text = (report_dir / "report.md").read_text()
    for name in paper.FIGURES:
        png, svg = report_dir / f"{name}.png", report_dir / f"{name}.svg"
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 20_000
        assert svg.read_text().lstrip().startswith("<?xml")
        assert f"]({name}.png)" in text
    assert "A100" in text and "roofline +" in text


def test_findings_json_has_every_id(report_dir):
    data = json.loads((report_dir / "findings.json").read_text())
    found = {f["id"]: f for f in data["findings"]}
    assert set(found) == IDS
    for f in found.values():
        assert isinstance(f["holds"], bool) and f["explanation"] and f["claim"]


def test_one_registered_function_per_finding():
    assert set(paper.FINDINGS) == IDS
    with pytest.raises(ValueError, match="registered twice"):
        paper.finding("conv_share_diffusion")(lambda ch: None)


def _json(*args):
    code, out, err = run_cli("run", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_conv_share_recomputed_from_run_json(report_dir):
    found = {f["id"]: f for f in json.loads((report_dir / "findings.json").read_text())["findings"]}
    shares = {}
    for model in paper.STUDY_MODELS["diffusion-tti"]:
        d = _json(model, "--hardware", "a100", "--attention", "flash")
        shares[model] = d["categories"]["conv"]["time_s"] / d["totals"]["time_s"]
    assert found["conv_share_diffusion"]["simulated_value"] == pytest.approx(max(shares.values()))


def test_flash_speedup_recomputed_from_run_json(report_dir):
    found = {f["id"]: f for f in json.loads((report_dir / "findings.json").read_text())["findings"]}
    speed = {}
    for model in paper.STUDY_MODELS["diffusion-tti"] + paper.STUDY_MODELS["transformer-tti"]:
        math = _json(model, "--hardware", "a100", "--attention", "math")["totals"]["time_s"]
        flash = _json(model, "--hardware", "a100", "--attention", "flash")["totals"]["time_s"]
        speed[model] = math / flash
    transformer = sum(speed[m] for m in paper.STUDY_MODELS["transformer-tti"]) / 3
    ratios = [speed[m] / transformer for m in paper.STUDY_MODELS["diffusion-tti"]]
    assert found["flash_speedup_gap"]["simulated_value"] == pytest.approx([min(ratios), max(ratios)])


def test_seq_len_finding_reads_the_unet():
    r = paper.simulate.run("sd15", "a100", stack=paper.STUDY_STACK)
    lens = [row["q_len"] for row in paper.attention_layers(r, "denoiser") if row["role"] == "self"]
    assert max(lens) == 4096 and min(lens) == 64  # 64x64 latent down to the 8x8 mid block


@pytest.mark.parametrize("kind, model", [("roofline", "sd15"), ("breakdown", "sd15,muse"), ("seqlen", "sd15"),
                                         ("scaling", "sd15"), ("temporal", "modelscope-t2v")])
def test_single_plots(tmp_path, kind, model):
    out = tmp_path / f"{kind}.png"
    code, _, err = run_cli("plot", kind, model, "--hardware", "h100", "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000


def test_plot_errors(tmp_path):
    code, _, err = run_cli("plot", "temporal", "sd15", "--out", tmp_path / "t.png")
    assert code == 2 and "no attention ops with role" in err
    code, _, err = run_cli("plot", "roofline", "sd15", "--out", tmp_path / "t.gif")
    assert code == 2 and ".png, .svg or .pdf" in err


def test_figures_are_byte_for_byte_deterministic(tmp_path):
    from simulator import plots
    data = ({"sd15": 1.4, "muse": 1.1}, {"sd15": "diffusion-tti", "muse": "transformer-tti"})
    first = plots.save_both(plots.figure_flash_speedup(*data), tmp_path / "a")
    second = plots.save_both(plots.figure_flash_speedup(*data), tmp_path / "b")
    for a, b in zip(first, second):
        assert open(a, "rb").read() == open(b, "rb").read()


def test_beyond_the_study_recomputed_from_runs(report_dir):
    """The "beyond the study" section: every built-in 2025 model, each figure recomputed here from `run`."""
    from simulator.library import builtin_ids
    data = json.loads((report_dir / "findings.json").read_text())
    rows = {r["model"]: r for r in data["beyond_the_study"]}
    assert set(rows) == {m for m in paper.BEYOND_MODELS if m in builtin_ids("models")}
    assert {"wan21-1.3b", "wan21-14b", "ltx-video", "mochi-1"} <= set(rows)
    math_r = paper.simulate.run("wan21-14b", "a100", attention="math", stack=paper.STUDY_STACK)
    flash_r = paper.simulate.run("wan21-14b", "a100", attention="flash", stack=paper.STUDY_STACK)
    wan = rows["wan21-14b"]
    assert wan["flash_gain"] == pytest.approx(math_r.time_s / flash_r.time_s, rel=1e-12)
    cats = flash_r.by_category()
    assert wan["category_shares"]["attention"] == pytest.approx(cats["attention"]["time_s"] / flash_r.time_s)
    # Wan's DiT attends over all T x (H/16) x (W/16) = 21 x 30 x 52 video tokens in every block
    assert wan["attention_tokens"]["full3d"] == [21 * 30 * 52] * 2
    for r in rows.values():
        assert sum(r["attention_role_shares"].values()) == pytest.approx(1.0)
        assert sum(r["category_shares"].values()) == pytest.approx(1.0, abs=0.02)  # the host's share is the rest
        to_prefill = abs(math.log(r["denoiser_intensity"] / r["llm_prefill_intensity"]))
        to_decode = abs(math.log(r["denoiser_intensity"] / r["llm_decode_intensity"]))
        assert r["resembles"] == ("prefill-like" if to_prefill < to_decode else "decode-like")
    text = (report_dir / "report.md").read_text()
    assert "## Beyond the study" in text and "| wan21-14b | ttv |" in text and "](beyond.png)" in text
