"""Scale-out beyond one run: plans swept like workloads, the serving curve, auxiliary stages under a plan, the
kernel table keeping its plan through `compact`, and the cited multi-device public cases."""
import numpy as np
import pytest

from conftest import run_cli
from simulator import fidelity
from simulator import sweep as sw
from simulator.library import public_cases
from simulator.mapping import compact, lower
from simulator.parallel import parse_plan
from simulator.simulate import load_model, resolve_stack, run, serving_curve
from simulator.hardware import load_hardware

LLAMA = {"prompt_tokens": 256, "output_tokens": 4}


@pytest.fixture(scope="module")
def plan_rows():
    return sw.sweep("llama2-7b", "h100", vary={"memory.bandwidth": [2e12, 3.35e12]}, overrides=LLAMA,
                    stack="serving", vary_plan="tp=1;tp=2;tp=4")


def test_vary_plan_rows_carry_the_plan_and_equal_run(plan_rows):
    assert [(r["plan"], r["devices"]) for r in plan_rows] == [("tp=1", 1)] * 2 + [("tp=2", 2)] * 2 + [("tp=4", 4)] * 2
    for r in plan_rows:
        if r["memory.bandwidth"] != 3.35e12:  # the device's own bandwidth: the same point as `run`
            continue
        one = run("llama2-7b", "h100", LLAMA, stack="serving", devices=r["devices"])
        assert r["time_s"] == pytest.approx(one.time_s, rel=1e-9)
        assert r["peak_memory_bytes"] == pytest.approx(one.peak_memory_bytes)
        assert r["comm_s"] == pytest.approx(one.by_category().get("comm", {"time_s": 0.0})["time_s"], rel=1e-9)
        assert r["tokens_per_s_per_device"] == pytest.approx(r["tokens_per_s"] / r["devices"])
    by_plan = {r["plan"]: r for r in plan_rows if r["memory.bandwidth"] == 2e12}
    assert by_plan["tp=1"]["comm_s"] == 0 and by_plan["tp=2"]["comm_s"] > 0
    # weights split: memory per device falls with the tensor-parallel degree
    assert by_plan["tp=1"]["peak_memory_bytes"] > by_plan["tp=2"]["peak_memory_bytes"] > \
        by_plan["tp=4"]["peak_memory_bytes"]


@pytest.mark.parametrize("plans, message", [
    ("tp=1;;tp=2", "--vary-plan 'tp=1;;tp=2': an empty plan"),
    ("tp=2;tp=2", "--vary-plan: plan tp=2 is given twice"),
    ("tq=2", "--vary-plan tq=2: expected DEGREE=N"),
])
def test_bad_vary_plan_is_a_one_line_error(plans, message, tmp_path):
    code, _, err = run_cli("sweep", "llama2-7b", "--hardware", "h100", "--vary", "memory.bandwidth=2e12",
                           "--vary-plan", plans, "--out", tmp_path / "s.csv")
    assert code == 2 and err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1


def test_compact_keeps_the_plan_and_the_overlap():
    built = load_model("llama2-7b", LLAMA)
    hw = load_hardware("h100")
    table = lower(built, resolve_stack("xla", built, hw), hw.spec, plan=parse_plan("tp=2"))
    merged = compact(table)
    assert table.comm_overlap and merged.comm_overlap
    assert merged.sharding is table.sharding and merged.sharding.plan == parse_plan("tp=2")
    assert len(merged) < len(table)


def test_serving_curve_one_line_per_device_count():
    points = serving_curve("llama2-7b", "h100", [1, 2], [1, 8], LLAMA, stack="serving")
    assert [(p["devices"], p["batch"]) for p in points] == [(1, 1), (2, 1), (1, 8), (2, 8)]
    for p in points:
        assert p["item"] == "tokens" and p["items_per_s"] == pytest.approx(p["items_per_s_per_device"] * p["devices"])
        r = run("llama2-7b", "h100", {**LLAMA, "batch": p["batch"]}, stack="serving", devices=p["devices"])
        assert p["per_item_latency_s"] == pytest.approx(r.serving()["tpot_s"])
    # decode is memory-bound (the weights are read once per step for the whole batch): 8 x the batch costs far
    # less than 8 x the time per token
    assert points[0]["per_item_latency_s"] < points[2]["per_item_latency_s"] < 2 * points[0]["per_item_latency_s"]
    assert points[2]["items_per_s"] > points[0]["items_per_s"]


def test_plot_serving_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "serving.png"
    code, _, err = run_cli("plot", "serving", "llama2-7b", "--hardware", "h100", "--stack", "serving",
                           "--set", "output_tokens=4", "--devices", "1,2", "--batches", "1,4", "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli("plot", "serving", "llama2-7b", "--batches", "1,0", "--out", out)
    assert code == 2 and "--batches 1,0" in err


def test_plot_breakdown_shows_communication(tmp_path):
    pytest.importorskip("matplotlib")
    from simulator import plots
    pairs = [("llama2-7b", run("llama2-7b", "h100", LLAMA, attention="math", devices=2),
              run("llama2-7b", "h100", LLAMA, devices=2))]
    fig = plots.figure_breakdown(pairs, {"llama2-7b": "llm"})
    assert "comm" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


FLUX = {"height": 512, "width": 512, "steps": 2, "cfg": 0}


def test_a_vae_with_one_head_runs_whole_under_tp_and_gathers_keys_under_sp():
    one = run("flux1-dev", "h100", FLUX)
    tp = run("flux1-dev", "h100", FLUX, devices=2)
    stages = {s["name"]: s for s in tp.by_stage()}
    # the decoder stays replicated under tp: its FLOPs are those of one device
    assert stages["decoder"]["flops"] == pytest.approx({s["name"]: s for s in one.by_stage()}["decoder"]["flops"])
    sp = run("flux1-dev", "h100", FLUX, parallel="sp=2")
    c = sp.sharding.collectives
    assert c[("decoder", "all_gather", 2)] == 2  # keys and values of the mid-block attention
    assert ("decoder", "all_to_all", 2) not in c and c[("denoiser", "all_to_all", 2)] > 0
    # the backbone keeps the contract: a degree that does not divide its heads is refused
    code, _, err = run_cli("run", "llama2-7b", "--hardware", "h100", "--parallel", "tp=3")
    assert code == 2 and "does not divide the 32 query" in err


def test_multi_device_public_cases_are_cited_and_within_the_target():
    every = [c for c in fidelity.load_public(public_cases()) if c.get("parallel")]
    # a case judged unusable stays in the file with its reason (an unpublished setting), out of the statistics
    assert all(isinstance(c["excluded"], str) and len(c["excluded"]) > 20 for c in every if c.get("excluded"))
    cases = [c for c in every if not c.get("excluded")]
    assert len(cases) >= 8
    assert all(c["source"] and c.get("notes") and c.get("source_id") for c in cases)
    errors = []
    for c in cases:
        simulated, result = fidelity.simulate_case(c)
        assert result.devices == parse_plan(c["parallel"]).devices > 1
        errors.append(fidelity.time_error_pct(c["metric"], float(c["value"]), simulated))
    # the scale-out issue's target: a median absolute error of 25 % at most (16 % over the 60 cases when it was met)
    assert np.median(np.abs(errors)) <= 25.0


@pytest.fixture(scope="module")
def plans():
    """One kernel table per plan at the device's own figures, by `run` and by `sweep`."""
    names = ("tp=1", "pp=2", "pp=4", "tp=2", "dp=2")
    over = {**LLAMA, "batch": 2}
    rows = sw.sweep("llama2-7b", "h100", overrides=over, stack="serving", vary_plan=";".join(names))
    return {n: (run("llama2-7b", "h100", over, stack="serving", parallel=n), row) for n, row in zip(names, rows)}


def test_energy_is_every_devices_static_power_and_one_copy_of_the_work(plans):
    """Pipeline stages hold every layer once between them: pp devices draw static power for the whole time, and
    the dynamic energy of the table is spent once (it was multiplied by pp); under tp and dp each device runs
    its share of the work: tp's dynamic energy stays near the single device's (replicated norms add a little),
    dp's grows by the weights each replica reads again."""
    one = plans["tp=1"][0]
    static = one.static_w
    dynamic = one.energy_j - static * one.time_s
    assert dynamic > 0
    for name, (r, row) in plans.items():
        work = r.energy_j - static * r.time_s * r.devices
        if name.startswith("pp"):
            assert work == pytest.approx(dynamic, rel=1e-9)
        elif name == "dp=2":
            assert dynamic * 1.1 < work < 2 * dynamic
        else:
            assert work == pytest.approx(dynamic, rel=0.05)
        assert row["energy_j"] == pytest.approx(r.energy_j, rel=1e-9)
        assert sum(s["energy_j"] for s in r.by_stage()) == pytest.approx(r.energy_j, rel=1e-9)
        assert r.avg_power_w == pytest.approx(r.energy_j / r.devices / r.time_s)
    # more devices on the same request: more static power, never a multiple of the whole energy
    assert one.energy_j < plans["pp=2"][0].energy_j < plans["pp=4"][0].energy_j < 2 * one.energy_j


def test_comm_s_is_one_figure_in_run_category_and_sweep(plans):
    """The collectives' time on the timeline (their exposed link time and their launches), the same in
    `run`'s totals, its `comm` category and a sweep's rows (run's totals once left the launches out)."""
    for name, (r, row) in plans.items():
        comm = r.by_category().get("comm", {"time_s": 0.0})["time_s"]
        assert r.totals().get("comm_s", 0.0) == pytest.approx(comm, rel=1e-12)
        assert row["comm_s"] == pytest.approx(comm, rel=1e-9)
    assert plans["tp=2"][1]["comm_s"] > 0 and plans["dp=2"][1]["comm_s"] == 0


def test_longest_context_counts_the_batch_once():
    """The KV bytes per position already cover the whole batch: batch 2 fits half the context of batch 1 (it
    used to fit a quarter), and dp=2 over batch 2 (one sequence per device) fits batch 1's."""
    ctx = {b: run("llama2-7b", "h100", {**LLAMA, "batch": b}, stack="serving").serving()["max_context_tokens"]
           for b in (1, 2, 4)}
    assert ctx[2] == pytest.approx(ctx[1] / 2, rel=0.01) and ctx[4] == pytest.approx(ctx[1] / 4, rel=0.01)
    dp = run("llama2-7b", "h100", {**LLAMA, "batch": 2}, stack="serving", parallel="dp=2").serving()
    assert dp["max_context_tokens"] == pytest.approx(ctx[1], rel=0.01)


def test_a_devices_list_with_a_plan_fills_each_count_with_tp(capsys):
    from simulator.simulate import compare
    results = compare("llama2-7b", ["h100"], LLAMA, stack="serving", devices=[2, 4, 8], parallel="pp=2")
    assert [str(r.plan) for r in results] == ["pp=2", "tp=2,pp=2", "tp=4,pp=2"]
    code, out, err = run_cli("compare", "llama2-7b", "--hardware", "h100", "--set", "output_tokens=2",
                             "--devices", "2,4", "--parallel", "pp=2")
    assert code == 0 and "tp=2,pp=2" in out, err
    for devices, plan, words in (("1,2", "pp=2", "does not divide --devices 1"),
                                 ("2,4", "tp=2", "not --devices 4 (leave tp out")):
        code, _, err = run_cli("compare", "llama2-7b", "--hardware", "h100", "--devices", devices,
                               "--parallel", plan)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_network_fields_set_for_a_run_across_nodes_draw_no_warning():
    net = {"network.bandwidth": 1e11}
    across = run("llama2-7b", "h100", LLAMA, hw_overrides=net, devices=16)
    assert not [w for w in across.warnings if "network" in w]
    assert across.time_s < run("llama2-7b", "h100", LLAMA, devices=16).time_s  # and it is read
    inside = run("llama2-7b", "h100", LLAMA, hw_overrides=net, devices=2)
    assert [w for w in inside.warnings if "network.bandwidth" in w and "one node of 8" in w]
