"""The command line end to end: list, run in every format and grouping, compare, --out, overrides."""
import csv
import io
import json

import pytest

from conftest import DATA, run_cli

CHIP = str(DATA / "chip.yaml")


def test_list_models_and_hardware():
    code, out, _ = run_cli("list", "models")
    assert code == 0 and "sd15" in out and "llama2-7b" in out and "diffusion-tti" in out
    code, out, _ = run_cli("list", "hardware")
    assert code == 0
    for hw in ("a100", "a100-40gb", "h100", "h100-pcie", "h200", "b200", "l4", "l40s", "mi300x", "tpu-v4",
               "tpu-v5e", "tpu-v5p", "tpu-v6e", "gaudi3"):
        assert hw in out


def test_run_table_has_layers_categories_stages():
    code, out, err = run_cli("run", "sd15", "--hardware", "a100")
    assert code == 0, err
    assert "denoiser" in out and "down0_0" in out and "elementwise" in out and "roofline alone" in out


@pytest.mark.parametrize("by", ["layer", "category", "stage", "op"])
def test_run_csv_groupings(by):
    code, out, _ = run_cli("run", "sd15", "--hardware", "h100", "--format", "csv", "--by", by)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and "time_s" in rows[0]
    total = sum(float(r["time_s"]) for r in rows)
    _, js, _ = run_cli("run", "sd15", "--hardware", "h100", "--format", "json")
    totals = json.loads(js)["totals"]
    # ops, layers and categories hold device time; stages also hold what the host adds beyond the device
    expected = totals["time_s"] if by == "stage" else totals["device_time_s"]
    assert total == pytest.approx(expected)
    assert totals["time_s"] == pytest.approx(totals["device_time_s"] + totals["host_s"])


def test_run_json_shape_and_overrides():
    code, out, err = run_cli("run", "sd15", "--hardware", "h100", "--set", "height=1024", "--set", "width=1024",
                             "--set", "steps=30", "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    assert set(d) >= {"model", "hardware", "attention", "params", "totals", "stages", "categories", "ops"}
    assert d["model"] == "sd15" and d["hardware"] == "h100" and d["attention"] == "flash"
    assert d["params"]["height"] == 1024 and d["params"]["steps"] == 30
    assert set(d["totals"]) >= {"time_s", "flops", "bytes", "weight_bytes", "peak_memory_bytes"}
    assert [s["name"] for s in d["stages"]] == ["text_encoder", "denoiser", "decoder"]
    assert d["stages"][1]["repeat"] == 30
    assert set(d["categories"]) == {"conv", "linear", "attention", "norm", "elementwise", "other"}
    op = d["ops"][0]
    assert set(op) >= {"name", "stage", "layer", "kind", "category", "count", "flops", "bytes", "intensity",
                       "time_s", "bound"}
    assert {o["bound"] for o in d["ops"]} <= {"compute", "memory", "overhead", "none"}


def test_run_user_files_math_attention(tmp_path):
    chip = tmp_path / "my_chip.yaml"
    chip.write_text("inherit: h100\nname: H100 with more bandwidth\nmemory: {bandwidth: 6.7e12}\n")
    code, out, err = run_cli("run", str(DATA / "tiny_llm.yaml"), "--hardware", str(chip), "--attention", "math",
                             "--by", "category", "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    assert d["attention"] == "math" and d["hardware_name"] == "H100 with more bandwidth"


def test_hw_set_overrides_a_field():
    # CUDA graphs: the device, not eager PyTorch's host, sets the decode time
    args = ("run", "llama2-7b", "--hardware", "a100", "--set", "output_tokens=8", "--stack", "compile-cudagraphs",
            "--format", "json")
    _, base, _ = run_cli(*args)
    _, fast, _ = run_cli(*args, "--hw-set", "memory.bandwidth=4.078e12")
    dec = lambda s: next(x for x in json.loads(s)["stages"] if x["name"] == "decode")  # noqa: E731
    # decode is bandwidth-bound: twice the bandwidth, close to half the time (launch overhead stays)
    assert dec(fast)["time_s"] < 0.65 * dec(base)["time_s"]


def test_out_writes_file_atomically(tmp_path):
    target = tmp_path / "sub" / "r.json"
    code, out, err = run_cli("run", "sd15", "--hardware", "a100", "--format", "json", "--out", target)
    assert code == 0 and out == "" and "wrote" in err
    assert json.loads(target.read_text())["model"] == "sd15"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # no temporary file left


def test_compare_devices():
    code, out, err = run_cli("compare", "sd15", "--hardware", "a100,h100,tpu-v5e")
    assert code == 0, err
    assert "1.00x" in out and "h100" in out and "tpu-v5e" in out
    code, out, _ = run_cli("compare", "sd15", "--hardware", "a100,h100", "--format", "json")
    d = json.loads(out)
    assert d[0]["speedup"] == 1.0 and d[1]["speedup"] > 1.0


def test_memory_warning_when_model_does_not_fit():
    code, out, err = run_cli("run", "llama2-7b", "--hardware", "l4", "--set", "batch=64", "--set",
                             "prompt_tokens=4096", "--set", "output_tokens=2", "--format", "json")
    assert code == 0
    assert "warning: peak memory" in err
    assert json.loads(out)["totals"]["fits"] is False


def test_roofline_flag_drops_efficiency_terms():
    _, full, _ = run_cli("run", "sd15", "--hardware", "a100", "--format", "json")
    _, bare, _ = run_cli("run", "sd15", "--hardware", "a100", "--format", "json", "--roofline")
    full, bare = json.loads(full), json.loads(bare)
    assert bare["totals"]["time_s"] == pytest.approx(full["totals"]["roofline_time_s"])
    assert bare["efficiency"] == "roofline only"


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_disable_help_lists_every_term(command):
    """The parser spells the terms out (it imports no numpy); they must be engine.Terms.NAMES, in order."""
    from simulator.cli import build_parser
    from simulator.engine import Terms
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    text = next(a for a in sub._actions if a.dest == "disable").help
    assert text.startswith("switch efficiency terms off: " + ", ".join(Terms.NAMES) + " ")
