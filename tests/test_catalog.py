"""`list models|hardware`: fast (header fields only, parameter counts from a verified index), lines <= 120
characters, `--format json` with every built-in id; and the wheel ships the built-in data."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import simulator
from conftest import ROOT, run_cli
from simulator import catalog
from simulator.graph import build_model
from simulator.library import builtin_ids, data_dir, resolve


def test_index_matches_the_real_build():
    """models/index.json is what `list models` prints: every entry must hash-match its file and equal a real
    build's parameter count. Regenerate with `python tools/model_index.py` after editing a model."""
    index = catalog.read_index()
    assert sorted(index) == builtin_ids("models"), "index out of date: run python tools/model_index.py"
    for model_id, entry in index.items():
        path = resolve("models", model_id)
        assert entry["sha256"] == catalog.sha256(path), f"{model_id}: stale entry, run python tools/model_index.py"
        assert entry["param_count"] == build_model(path, {}, "flash", model_id).param_count, model_id


def test_stale_index_entry_is_not_trusted(monkeypatch):
    real = catalog.read_index()
    monkeypatch.setattr(catalog, "read_index", lambda: {k: {**v, "param_count": 1, "sha256": "0" * 64}
                                                        for k, v in real.items()})
    monkeypatch.setattr(catalog, "builtin_ids", lambda kind: ["sd15"])
    (record,) = catalog.model_records()
    assert record["param_count"] == build_model(resolve("models", "sd15"), {}, "flash", "sd15").param_count


def test_header_only_read_matches_full_read():
    from simulator.loader import load_yaml
    for model_id in builtin_ids("models"):
        path = resolve("models", model_id)
        head, full = catalog.model_header(path), load_yaml(path)
        for key in ("name", "family", "description", "reference", "params"):
            assert head.get(key) == full.get(key), (model_id, key)


@pytest.mark.parametrize("what", ["models", "hardware", "stacks"])
def test_list_lines_fit_120_characters(what):
    code, out, err = run_cli("list", what)
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= catalog.WIDTH


@pytest.mark.parametrize("what", ["models", "hardware", "stacks"])
def test_list_json_has_every_builtin_id_with_full_records(what):
    code, out, err = run_cli("list", what, "--format", "json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["id"] for r in records] == builtin_ids(what)
    if what == "models":
        sd15 = next(r for r in records if r["id"] == "sd15")
        assert sd15["family"] == "diffusion-tti" and sd15["param_count"] > 1e9 and sd15["params"]["steps"] == 50
        assert len(sd15["description"]) > 100  # not clipped as in the table
    elif what == "hardware":
        a100 = next(r for r in records if r["id"] == "a100")
        assert a100["memory"]["capacity"] == 80 * 2**30 and a100["efficiency"]["matrix"] > 0


def test_list_hardware_shows_capacity_in_gib():
    _, out, _ = run_cli("list", "hardware")
    a100 = next(line for line in out.splitlines() if line.startswith("a100 "))
    assert "80.0 GiB" in a100 and "85.9" not in a100


def test_list_bad_format_is_one_line():
    code, _, err = run_cli("list", "models", "--format", "yaml")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_list_models_reads_no_graph_and_no_plotting_library():
    """Listing must not build models (networkx) when the index is fresh, nor load matplotlib."""
    fresh = all(catalog.read_index().get(m, {}).get("sha256") == catalog.sha256(resolve("models", m))
                for m in builtin_ids("models"))
    code = ("import sys, io, contextlib\nfrom simulator.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['list', 'models'])\n"
            "print(' '.join(m for m in ('networkx', 'matplotlib', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert "matplotlib" not in loaded
    if fresh:
        assert loaded == []


def test_help_imports_nothing_heavy():
    code = ("import sys\nfrom simulator.cli import build_parser\nbuild_parser().format_help()\n"
            "print(' '.join(m for m in ('numpy', 'networkx', 'matplotlib', 'pydantic', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_measurements_ship_in_the_wheel_and_validate_public_works_from_anywhere(tmp_path, monkeypatch):
    text = (ROOT / "pyproject.toml").read_text()
    assert '"measurements" = "simulator/data/measurements"' in text
    assert (data_dir("measurements") / "public.yaml").is_file()
    from simulator import fidelity
    seen = []

    def validate_public(path, *args, **kwargs):  # record the path it was handed; skip the minute of work
        seen.append(Path(path))
        raise simulator.SpecError("stop here")
    monkeypatch.setattr(fidelity, "validate_public", validate_public)
    monkeypatch.chdir(tmp_path)  # no measurements/ here
    code, out, err = run_cli("validate", "--public")
    assert "stop here" in err, err
    assert seen and seen[0].is_absolute() and seen[0].is_file() and seen[0].name == "public.yaml"
