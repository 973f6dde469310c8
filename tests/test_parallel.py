"""Multi-device plans: the Megatron split, Ulysses all-to-alls, per-device memory, and refused plans."""
import numpy as np
import pytest

from simulator.cli import main
from simulator.dtypes import BYTES
from simulator.engine import Terms
from simulator.errors import SpecError
from simulator.ops import UNITS
from simulator.parallel import Plan, parse_plan
from simulator.simulate import run


@pytest.fixture(scope="module")
def llama():
    over = {"output_tokens": 3, "prompt_tokens": 2048}
    return {tp: run("llama2-70b", "h100", over, stack="serving", devices=tp) for tp in (1, 2)}


def test_tp2_adds_exactly_the_two_megatron_all_reduces_per_block(llama):
    c = llama[2].sharding.collectives
    layers, decode_steps = 80, 2
    assert c[("prefill", "all_reduce", 2)] == 2 * layers
    assert c[("decode", "all_reduce", 2)] == 2 * layers * decode_steps
    # the only other collective: the vocabulary-parallel LM head's logits, gathered once per pass
    assert {k: v for k, v in c.items() if k[1] != "all_reduce"} == {("prefill", "all_gather", 2): 1,
                                                                      ("decode", "all_gather", 2): decode_steps}


def test_tp2_halves_the_weight_bytes_of_every_split_layer(llama):
    one, two = llama[1], llama[2]
    prefill = one.model.stages[0]
    linear = sum(op.result.params * op.count * BYTES[op.dtype] for op in prefill.ops if op.kind == "linear")
    rest = one.model.weight_bytes - linear  # embeddings and norm scales stay on every device
    assert two.sharding.weight_bytes == pytest.approx(linear / 2 + rest, rel=1e-9)
    assert two.peak_memory_bytes < one.peak_memory_bytes / 2 + rest + one.memory_per_device()["activation_bytes"]
    assert not one.fits and two.fits


def test_tp2_reads_half_of_each_linear_weight(llama):
    one, two = llama[1], llama[2]
    rows = {t: {op.name: i for i, (si, op) in enumerate(r.table.ops) if si == 0} for t, r in llama.items()}
    for name in ("layers/q", "layers/o", "layers/gate", "layers/down"):
        a = np.flatnonzero(one.table.op == rows[1][name])[0]
        b = np.flatnonzero(two.table.op == rows[2][name])[0]
        assert two.table.flops[b] == pytest.approx(one.table.flops[a] / 2)
        assert two.table.bytes[b] < one.table.bytes[a]


def test_without_comm_tp_n_is_n_times_faster_on_compute_bound_gemms():
    over = {"output_tokens": 1, "prompt_tokens": 4096, "batch": 4}
    exact = Terms.without(set(Terms.NAMES))  # bare roofline: FLOPs over the peak, nothing else
    times = {}
    for tp in (1, 4):
        r = run("llama2-7b", "h100", over, stack="serving", devices=tp, terms=exact)
        times[tp] = r.by_category()["linear"]["compute_s"]
        full = run("llama2-7b", "h100", over, stack="serving", devices=tp, terms=Terms.without({"comm"}))
        times[tp, "full"] = full.by_category()["linear"]["time_s"]
    assert times[4] == pytest.approx(times[1] / 4, rel=1e-9)
    # with tile and wave quantisation: N x faster less quantisation effects
    assert times[1, "full"] / times[4, "full"] == pytest.approx(4, rel=0.15)


def test_disable_comm_removes_only_the_collectives(llama):
    over = {"output_tokens": 3, "prompt_tokens": 2048}
    off = run("llama2-70b", "h100", over, stack="serving", devices=2, terms=Terms.without({"comm"}))
    on = llama[2]
    # comm_s is the collectives' time on the timeline (metrics.comm_seconds): with the link free, only the launch
    # of each communication kernel is left
    comm = on.table.unit == UNITS.index("comm")
    launches = on.costs["overhead"][comm] @ on.table.count[comm]
    assert on.comm_time_s > launches > 0 and off.comm_time_s == pytest.approx(launches, rel=1e-12)
    assert on.time_s - off.time_s == pytest.approx(on.comm_time_s - off.comm_time_s, rel=1e-9)
    assert on.totals()["comm_s"] == on.by_category()["comm"]["time_s"] == on.comm_time_s


def test_ulysses_moves_q_k_v_and_the_output_by_all_to_all():
    sp = 2
    one = run("cogvideox-5b", "h100", {"steps": 2})
    two = run("cogvideox-5b", "h100", {"steps": 2}, parallel=f"sp={sp}")
    stage = next(s for s in one.model.stages if s.name == "denoiser")
    attn = [op for op in stage.ops if op.kind == "attention" and op.role not in ("cross", "temporal")]
    assert two.sharding.collectives[("denoiser", "all_to_all", sp)] == 4 * sum(op.count for op in attn) * 2
    t = two.table
    rows = (t.unit == 4) & (t.stage == one.model.stages.index(stage))
    moved = float(t.gemm[rows, 1] @ t.count[rows])
    expected = sum((sum(np.prod(stage.tensors[x].shape) * BYTES[stage.tensors[x].dtype] for x in op.inputs[:3])
                    + np.prod(stage.tensors[op.outputs[0]].shape) * BYTES[op.dtype]) * op.count
                   for op in attn) * 2 / sp
    assert moved == pytest.approx(expected, rel=1e-9)
    assert two.time_s < one.time_s


def test_one_device_plan_is_the_single_device_path():
    a = run("sd15", "a100", {"steps": 2})
    b = run("sd15", "a100", {"steps": 2}, devices=1)
    assert a.time_s == b.time_s and a.peak_memory_bytes == b.peak_memory_bytes and b.sharding is None


def test_plan_parsing():
    assert parse_plan(None, 4) == Plan(tp=4)
    assert parse_plan("tp=2,sp=4,cfg=2").devices == 16
    assert str(parse_plan("sp=4,tp=2")) == "tp=2,sp=4"
    for bad in ("tp=two", "xp=2", "tp=2,tp=2", "tp=0"):
        with pytest.raises(SpecError):
            parse_plan(bad)


@pytest.mark.parametrize("args,words", [
    (["llama2-70b", "--hardware", "h100", "--devices", "4", "--parallel", "tp=2"], "multiply to 2 devices"),
    (["llama2-70b", "--hardware", "h100", "--parallel", "tp=3"], "does not divide the 64"),
    (["llama2-7b", "--hardware", "h100", "--parallel", "pp=64"], "more than the 32 layers"),
    (["pixart-alpha", "--hardware", "h100", "--parallel", "cfg=2", "--set", "cfg=false"], "guidance is switched off"),
    (["llama2-7b", "--hardware", "h100", "--parallel", "ep=2"], "mixture-of-experts"),
])
def test_impossible_plans_are_one_line_errors(capsys, args, words):
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plan " in err and words in err


def test_compare_device_counts_prints_serving_figures(capsys):
    assert main(["compare", "llama2-70b", "--hardware", "h100", "--devices", "1,2", "--stack", "serving",
                 "--set", "output_tokens=3"]) == 0
    out = capsys.readouterr().out
    for word in ("TTFT", "TPOT", "tokens/s", "comm share", "fits", "NO", "yes"):
        assert word in out


def test_a_public_case_runs_with_its_plan():
    from simulator.fidelity import simulate_case
    case = {"id": "x", "model": "llama2-70b", "hardware": "h100", "stack": "serving", "metric": "total_s",
            "value": 1.0, "source": "test", "set": {"output_tokens": 3}, "parallel": "tp=4"}
    value, r = simulate_case(case)
    assert r.devices == 4 and value == r.time_s


def test_the_bare_roofline_keeps_the_collectives_bytes_over_the_link_bandwidth(llama):
    """Roofline alone: no latency per step, no launch, but every collective's bytes still cross the link
    (a two-device ring all-reduce moves S / B each way); only `--disable comm` makes the link free."""
    from simulator.collectives import KINDS
    r = llama[2]
    t = r.table
    comm = np.flatnonzero(t.unit == UNITS.index("comm"))
    reduce = comm[t.gemm[comm, 3] == KINDS.index("all_reduce")]
    assert len(reduce) and (t.gemm[reduce, 0] == 2).all()
    bw = r.hardware.spec.interconnect.bandwidth
    assert r.roofline["time"][reduce] == pytest.approx(t.gemm[reduce, 1] / bw, rel=1e-12)
    assert 0 < r.roofline["time"][comm] @ t.count[comm] < r.comm_time_s
    assert "collectives free" not in r.terms.describe()
    assert Terms.without({"comm"}).describe().endswith("collectives free (comm off)")
