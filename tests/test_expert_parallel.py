"""Mixture-of-experts under parallel plans: Megatron's split of every expert under tp, and expert parallelism's
dispatch and combine all-to-alls, expert shards and per-device weights under ep."""
import numpy as np
import pytest

from simulator.cli import main
from simulator.collectives import KINDS
from simulator.dtypes import BYTES
from simulator.engine import Terms
from simulator.ops import UNITS, experts_touched
from simulator.simulate import run

LAYERS, EXPERTS, TOP_K, HIDDEN = 32, 8, 2, 4096  # Mixtral 8x7B (models/mixtral-8x7b.yaml)
WORKLOAD = {"batch": 4, "prompt_tokens": 128, "output_tokens": 3}


@pytest.fixture(scope="module")
def mixtral():
    plans = {"one": None, "tp=2": "tp=2", "ep=2": "ep=2", "ep=4": "ep=4", "ep=2,dp=2": "ep=2,dp=2"}
    return {k: run("mixtral-8x7b", "h100", WORKLOAD, stack="serving", parallel=p) for k, p in plans.items()}


def _owned(r, kinds):
    prefill = r.model.stages[0]
    return sum(op.weight_bytes * op.count for op in prefill.ops if op.kind in kinds and op.name != "layers/router")


def test_tp2_splits_every_expert_and_halves_the_weights_per_device(mixtral):
    one, two = mixtral["one"], mixtral["tp=2"]
    split = _owned(one, {"linear", "moe_linear"})  # attention, experts and the vocabulary-parallel LM head
    rest = one.model.weight_bytes - split  # embeddings, norm scales and the router stay on every device
    assert rest < 0.01 * one.model.weight_bytes
    assert two.sharding.weight_bytes == pytest.approx(split / 2 + rest, rel=1e-9)
    assert not one.fits and two.fits


def test_tp2_adds_the_dense_blocks_all_reduces_and_no_more(mixtral):
    c = mixtral["tp=2"].sharding.collectives
    decode_steps = WORKLOAD["output_tokens"] - 1
    # as for a dense Llama block: after attention's output projection and after the experts' down projection
    assert c[("prefill", "all_reduce", 2)] == 2 * LAYERS
    assert c[("decode", "all_reduce", 2)] == 2 * LAYERS * decode_steps
    assert {k: v for k, v in c.items() if k[1] != "all_reduce"} == {("prefill", "all_gather", 2): 1,
                                                                      ("decode", "all_gather", 2): decode_steps}


def test_tp2_halves_each_expert_gemm(mixtral):
    one, two = mixtral["one"], mixtral["tp=2"]
    for name in ("layers/gate", "layers/down"):
        a, b = (np.flatnonzero(r.table.op == next(i for i, (si, op) in enumerate(r.table.ops)
                                                   if si == 0 and op.name == name))[0] for r in (one, two))
        assert two.table.flops[b] == pytest.approx(one.table.flops[a] / 2, rel=1e-12)
        assert two.table.gemm[b, 0] == one.table.gemm[a, 0]  # every device runs all the touched experts


@pytest.mark.parametrize("ep", [2, 4])
def test_ep_holds_its_share_of_the_experts_and_every_dense_weight(mixtral, ep):
    one, r = mixtral["one"], mixtral[f"ep={ep}"]
    experts = _owned(one, {"moe_linear"})
    assert r.sharding.weight_bytes == pytest.approx(experts / ep + one.model.weight_bytes - experts, rel=1e-9)
    # ep splits the batch like dp: each device holds its sequences' KV cache
    assert r.sharding.kv_cache_bytes == pytest.approx(one.kv_cache_bytes / ep, rel=1e-9)


@pytest.mark.parametrize("plan,ep,data", [("ep=2", 2, 2), ("ep=4", 4, 4), ("ep=2,dp=2", 2, 4)])
def test_ep_dispatches_and_combines_the_routed_rows_by_two_all_to_alls_per_layer(mixtral, plan, ep, data):
    r = mixtral[plan]
    c = r.sharding.collectives
    decode_steps = WORKLOAD["output_tokens"] - 1
    assert c == {("prefill", "all_to_all", ep): 2 * LAYERS, ("decode", "all_to_all", ep): 2 * LAYERS * decode_steps}
    t = r.table
    comm = np.flatnonzero(t.unit == UNITS.index("comm"))
    assert (t.gemm[comm, 3] == KINDS.index("all_to_all")).all() and (t.gemm[comm, 0] == ep).all()
    for stage, tokens in ((0, WORKLOAD["prompt_tokens"]), (1, 1)):
        rows = comm[t.stage[comm] == stage]
        # one device's buffer: its own tokens x top_k rows of the hidden state, both ways
        buffer = WORKLOAD["batch"] / data * tokens * TOP_K * HIDDEN * BYTES["bf16"]
        assert t.gemm[rows, 1] == pytest.approx(buffer, rel=1e-12)
        # of which (ep - 1)/ep leaves the device (uniform routing); the bare roofline keeps just the bytes
        bw = r.hardware.spec.interconnect.bandwidth
        assert r.roofline["time"][rows] == pytest.approx((ep - 1) / ep * buffer / bw, rel=1e-12)


@pytest.mark.parametrize("ep", [2, 4])
def test_ep_runs_its_experts_over_its_share_of_the_rows(mixtral, ep):
    one, r = mixtral["one"], mixtral[f"ep={ep}"]
    tokens = WORKLOAD["batch"] * WORKLOAD["prompt_tokens"]
    touched = experts_touched(EXPERTS, TOP_K, tokens)
    for name in ("layers/gate", "layers/down"):
        a, b = (np.flatnonzero(x.table.op == next(i for i, (si, op) in enumerate(x.table.ops)
                                                   if si == 0 and op.name == name))[0] for x in (one, r))
        # T k / ep rows in total, over E / ep of the experts, as many rows per expert as on one device
        assert r.table.flops[b] == pytest.approx(one.table.flops[a] / ep, rel=1e-12)
        assert r.table.gemm[b, 0] == round(touched) / ep and r.table.gemm[b, 1] == one.table.gemm[a, 1]
        op = next(op for si, op in r.table.ops if si == 0 and op.name == name)
        reads_weights = op.weight_bytes * touched / EXPERTS / ep  # the touched experts among its own
        activations = one.table.bytes[a] - op.weight_bytes * touched / EXPERTS
        assert r.table.bytes[b] == pytest.approx(reads_weights + activations / ep, rel=1e-9)


def test_ep_without_comm_leaves_only_the_launches(mixtral):
    on = mixtral["ep=2"]
    off = run("mixtral-8x7b", "h100", WORKLOAD, stack="serving", parallel="ep=2", terms=Terms.without({"comm"}))
    assert on.comm_time_s > off.comm_time_s > 0
    assert on.time_s - off.time_s == pytest.approx(on.comm_time_s - off.comm_time_s, rel=1e-9)


def test_ep1_is_no_plan_at_all(mixtral):
    r = run("mixtral-8x7b", "h100", WORKLOAD, stack="serving", parallel="ep=1")
    one = mixtral["one"]
    assert r.sharding is None and r.time_s == one.time_s and r.peak_memory_bytes == one.peak_memory_bytes


@pytest.mark.parametrize("args,words", [
    (["mixtral-8x7b", "--parallel", "ep=3", "--set", "batch=3"], "does not divide the 8 experts"),
    (["mixtral-8x7b", "--parallel", "ep=2"], "does not divide the batch of 1"),
    (["mixtral-8x7b", "--parallel", "ep=2,tp=2", "--set", "batch=2"], "tp=2 is not modelled"),
    (["llama2-7b", "--parallel", "ep=2", "--set", "batch=2"], "has none"),
])
def test_impossible_expert_plans_are_one_line_errors(capsys, args, words):
    assert main(["run", *args, "--hardware", "h100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plan " in err and words in err
