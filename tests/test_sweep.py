"""Sweeps: the design space, vectorised evaluation equal to single runs, outputs, plots, bad input, Dask."""
import csv
import json

import numpy as np
import pytest

from conftest import DATA, run_cli
from simulator import run
from simulator import sweep as sw
from simulator.errors import SpecError

CHIP = str(DATA / "chip.yaml")


def collect(plan, blocks=None):
    blocks = blocks if blocks is not None else sw.run_local(plan)
    return sw.concat([rows for rows, _ in blocks], plan.columns)


def test_axis_parsing():
    assert sw.parse_axis("memory.bandwidth=1e12,2e12", "--vary").grid().tolist() == [1e12, 2e12]
    a = sw.parse_axis("compute.bf16=100e12:1000e12:3:log", "--vary")
    assert np.allclose(a.grid(), [1e14, 10 ** 14.5, 1e15])
    assert sw.parse_axis("cores=10:20:3", "--vary").grid().tolist() == [10, 15, 20]


@pytest.mark.parametrize("text, message", [
    ("memory.bandwidth", "expected FIELD="), ("memory.bandwidth=fast", "not a number"),
    ("memory.bandwidth=-1e12", "must not be negative"), ("memory.bandwidth=2e12:1e12:4", "empty range"),
    ("memory.bandwidth=1e12:2e12:0", "at least 1"), ("memory.bandwidth=0:2e12:3:log", "positive start"),
    ("memory.bandwidth=1:2", "start:stop:num"),
])
def test_bad_axes(text, message):
    with pytest.raises(SpecError, match=message):
        sw.parse_axis(text, "--vary")


def test_grid_matches_single_point_runs():
    plan = sw.plan(["sd15", "llama2-7b"], "h100", ["memory.bandwidth=1e12,4e12", "compute.fp16=5e14,2e15"],
                   ["batch=1,2"], overrides=None)
    rows = collect(plan)
    assert len(rows["time_s"]) == plan.total_points == 2 * 2 * 4
    for i in (0, 5, 11, 15):
        model, batch = rows["model"][i], int(rows["batch"][i])
        bw, fp16 = rows["memory.bandwidth"][i], rows["compute.fp16"][i]
        single = run(model, "h100", {"batch": batch}, {"memory.bandwidth": bw, "compute.fp16": fp16})
        assert rows["time_s"][i] == pytest.approx(single.time_s, rel=1e-9)
        stages = {s["name"]: s["time_s"] for s in single.by_stage()}
        for name, t in stages.items():
            assert rows[f"stage_{name}_s"][i] == pytest.approx(t, rel=1e-9)
        cats = single.by_category()
        assert rows["conv_s"][i] == pytest.approx(cats["conv"]["time_s"], rel=1e-9)
        shares = rows["compute_bound_share"][i] + rows["memory_bound_share"][i] + rows["overhead_bound_share"][i]
        assert shares == pytest.approx(1.0)


def test_samples_are_latin_hypercube_and_reproducible():
    plan = sw.plan(["sd15"], "h100", ["memory.bandwidth=1e12:8e12:4:log", "tdp_w=300:900:4"], [], samples=50,
                   seed=3)
    a, b = collect(plan), collect(plan)
    assert np.array_equal(a["memory.bandwidth"], b["memory.bandwidth"])
    # one sample in each of the 50 strata of each axis
    u = np.log(a["memory.bandwidth"] / 1e12) / np.log(8)
    assert sorted(np.floor(u * 50).astype(int)) == list(range(50))
    assert sorted(np.floor((a["tdp_w"] - 300) / 600 * 50).astype(int)) == list(range(50))
    assert "images_per_j" in a and "energy_j" in a and "images_per_s_per_w" not in a


def test_chunked_blocks_equal_one_block():
    plan = sw.plan(["sd15"], "a100", ["memory.bandwidth=1e12:4e12:30"], [])
    whole = collect(plan)
    plan.chunk = 7
    pieces = collect(plan)
    assert np.allclose(whole["time_s"], pieces["time_s"])


def test_bad_sweeps_write_nothing(tmp_path):
    out = tmp_path / "s.csv"
    for args, message in [
        (["--vary", "memory.bandwith=1e12,2e12"], "did you mean 'memory.bandwidth'"),
        (["--vary", "efficiency.memory=0.5,1.5"], "efficiency.memory"),
        (["--vary", "memory.bandwidth=1e12:2e12:4", "--vary", "compute.fp16=1e14:1e15:4", "--max-points", "10"],
         "--max-points"),
        (["--vary-workload", "batch=0,1,x"], "not a number"),
        (["--vary", "cores=-1,2"], "must not be negative"),
    ]:
        code, _, err = run_cli("sweep", "sd15", "--hardware", CHIP, *args, "--out", out)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    code, _, err = run_cli("sweep", "sd15", "--vary", "memory.bandwidth=1e12,2e12", "--out", tmp_path / "s.xlsx")
    assert code == 2 and "unknown format" in err


def test_cli_csv_json_parquet_and_plots(tmp_path):
    for suffix in ("csv", "json", "parquet"):
        out = tmp_path / f"s.{suffix}"
        code, _, err = run_cli("sweep", "sd15,llama2-7b", "--hardware", "a100", "--set", "steps=5",
                               "--vary", "memory.bandwidth=1e12:16e12:4:log", "--out", out,
                               "--plot", tmp_path / f"line_{suffix}.png")
        assert code == 0, err
        if suffix == "csv":
            rows = list(csv.DictReader(out.open()))
            assert len(rows) == 8 and {r["model"] for r in rows} == {"sd15", "llama2-7b"}
            assert rows[4]["tokens_per_s"] and not rows[0]["tokens_per_s"]
        elif suffix == "json":
            rows = json.loads(out.read_text())
            assert len(rows) == 8 and rows[0]["images_per_s"] > 0
        else:
            import pyarrow.parquet as pq
            assert pq.read_table(out).num_rows == 8
    heat = tmp_path / "heat.png"
    code, _, err = run_cli("sweep", "sd15", "--vary", "memory.bandwidth=1e12:8e12:3:log",
                           "--vary", "compute.fp16=1e14:1e15:3:log", "--out", tmp_path / "h.csv", "--plot", heat)
    assert code == 0, err
    pareto = tmp_path / "pareto.svg"
    code, _, err = run_cli("sweep", "sd15", "--vary", "memory.bandwidth=1e12:8e12:3:log", "--vary", "tdp_w=300,700",
                           "--vary", "compute.fp16=1e14:1e15:3:log", "--samples", "40", "--out", tmp_path / "p.csv",
                           "--plot", pareto)
    assert code == 0, err
    for f in (tmp_path / "line_csv.png", heat):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 10_000
    assert pareto.read_text().lstrip().startswith("<?xml")


def test_warns_when_a_varied_rate_is_unused(tmp_path):
    code, _, err = run_cli("sweep", "sd15", "--vary", "compute.bf16=1e14,2e14", "--out", tmp_path / "s.csv")
    assert code == 0 and "does not change any time" in err


def test_dask_executor_equals_local():
    pytest.importorskip("distributed")
    plan = sw.plan(["sd15"], "h100", ["memory.bandwidth=1e12:8e12:6:log", "compute.fp16=2e14,8e14"], [])
    plan.chunk = 5  # several blocks, so ordering across workers matters
    local = collect(plan)
    remote = collect(plan, sw.run_dask(plan))
    assert np.array_equal(local["time_s"], remote["time_s"])
    assert np.array_equal(local["memory.bandwidth"], remote["memory.bandwidth"])


def test_ctrl_c_leaves_a_valid_partial_file(tmp_path, monkeypatch):
    real = sw.run_local

    def interrupted(plan):
        for i, item in enumerate(real(plan)):
            if i == 1:
                raise KeyboardInterrupt
            yield item
    monkeypatch.setattr(sw, "run_local", interrupted)
    for suffix in ("json", "csv"):
        out = tmp_path / f"s.{suffix}"
        code, _, err = run_cli("sweep", "sd15", "--vary", "memory.bandwidth=1e12:8e12:2000", "--out", out)
        chunk = sw.plan(["sd15"], "a100", ["memory.bandwidth=1e12:8e12:2000"], []).chunk
        assert chunk < 2000
        assert code == 130 and f"holds the first {chunk:,} of 2,000 points" in err
        rows = json.loads(out.read_text()) if suffix == "json" else list(csv.DictReader(out.open()))
        assert len(rows) == chunk


def test_options_every_model_takes_sweep_like_declared_parameters(tmp_path):
    """Quantisation and memory-saving options are workload parameters of every model without being declared:
    `--set` and `--vary-workload` take them (names and on/off values too), and each row equals the single run."""
    rows = sw.sweep("llama2-7b", "a100", vary_workload={"weight_dtype": ["int4", "fp16"]},
                    overrides={"output_tokens": 8})
    assert [r["weight_dtype"] for r in rows] == ["int4", "fp16"]
    for r in rows:
        single = run("llama2-7b", "a100", {"output_tokens": 8, "weight_dtype": r["weight_dtype"]})
        assert r["time_s"] == pytest.approx(single.time_s, rel=1e-9)
        assert r["peak_memory_bytes"] == pytest.approx(single.peak_memory_bytes)
    # 4-bit weights hold a quarter of the bytes; the time changes too (fewer bytes, dequantisation in the GEMMs)
    assert rows[0]["peak_memory_bytes"] < rows[1]["peak_memory_bytes"] and rows[0]["time_s"] != rows[1]["time_s"]
    out = tmp_path / "s.csv"
    code, _, err = run_cli("sweep", "sd15", "--hardware", "a100", "--set", "steps=2", "--set", "offload=model",
                           "--vary-workload", "vae_tiling=false,true", "--vary-workload", "height=512,2048",
                           "--out", out)
    assert code == 0, err
    got = list(csv.DictReader(out.open()))
    assert [(r["vae_tiling"], r["height"]) for r in got] == [("False", "512"), ("False", "2048"),
                                                             ("True", "512"), ("True", "2048")]
    for r in got:
        single = run("sd15", "a100", {"steps": 2, "offload": "model", "vae_tiling": r["vae_tiling"] == "True",
                                      "height": int(r["height"])})
        assert float(r["time_s"]) == pytest.approx(single.time_s, rel=1e-9)
        assert float(r["peak_memory_bytes"]) == pytest.approx(single.peak_memory_bytes)
    # tiling a 2048-pixel decode decodes the tiles' overlap twice
    assert float(got[3]["stage_decoder_s"]) > float(got[1]["stage_decoder_s"])
    # the host link's bandwidth sets the offloaded copies' time at each design point; the text encoder on the
    # host CPU takes the host's roofline time and no device time
    rows = sw.sweep("sd15", "a100", vary={"host_link.bandwidth": [16e9, 32e9]},
                    overrides={"steps": 2, "offload": "model", "text_encoder_device": "cpu"})
    for r in rows:
        single = run("sd15", "a100", {"steps": 2, "offload": "model", "text_encoder_device": "cpu"},
                     hw_overrides={"host_link.bandwidth": r["host_link.bandwidth"]})
        assert r["time_s"] == pytest.approx(single.time_s, rel=1e-9)
        assert r["stage_text_encoder_s"] == pytest.approx(single.by_stage()[0]["time_s"], rel=1e-9)
        if single.energy_j is not None:
            assert r["energy_j"] == pytest.approx(single.energy_j, rel=1e-9)
    assert rows[0]["time_s"] > rows[1]["time_s"]
    for args, message in [(["--vary-workload", "weight_dtype=int9"], "unknown dtype 'int9'"),
                          (["--set", "offload=disk"], "offload=disk"),
                          (["--vary-workload", "steps=2,many"], "'many' is not a number")]:
        code, _, err = run_cli("sweep", "sd15", "--hardware", "a100", *args, "--out", tmp_path / "bad.csv")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_an_l2_set_with_hw_set_is_costed_by_the_sweep_as_by_run():
    """--hw-set on_chip.l2_bytes moves the L2 away from the file's: its re-reads cost the same in both."""
    small = {"on_chip.l2_bytes": 10e6}
    one = run("sd15", "h100", hw_overrides=small)
    assert one.time_s != run("sd15", "h100").time_s
    assert sw.sweep("sd15", "h100", hw_overrides=small)[0]["time_s"] == pytest.approx(one.time_s, rel=1e-12)
    rows = sw.sweep("sd15", "h100", vary={"on_chip.l2_bytes": [10e6, 52428800]})
    assert rows[0]["time_s"] == pytest.approx(one.time_s, rel=1e-12)
    assert rows[1]["time_s"] == pytest.approx(run("sd15", "h100").time_s, rel=1e-12)


def test_one_more_byte_of_l2_leaves_the_host_time_alone():
    """The host model reads the same kernels whatever the L2: a byte more L2 holds no more re-reads, so
    nothing moves (it used to split the kernels differently and move the host time by milliseconds)."""
    own = run("sd15", "h100")
    more = run("sd15", "h100", hw_overrides={"on_chip.l2_bytes": own.hardware.spec.on_chip.l2_bytes + 1})
    assert more.host_time_s == own.host_time_s and more.time_s == own.time_s
    row = sw.sweep("sd15", "h100", vary={"on_chip.l2_bytes": [own.hardware.spec.on_chip.l2_bytes + 1]})[0]
    assert row["time_s"] == pytest.approx(own.time_s, rel=1e-12)
