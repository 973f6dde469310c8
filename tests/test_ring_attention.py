"""Ring attention (`ring=N`, context parallelism) and xDiT's USP hybrid (`sp` x `ring`): the key/value volume the
ring passes, the split of attention work, the rank layout, the overlap switch and refused plans."""
from dataclasses import replace

import numpy as np
import pytest

from conftest import run_cli
from simulator.collectives import KINDS
from simulator.dtypes import BYTES
from simulator.engine import Terms
from simulator.ops import UNITS
from simulator.parallel import Plan, parse_plan
from simulator.simulate import run
from simulator.stacks import load_stack

FLUX = {"height": 512, "width": 512, "steps": 2, "cfg": 0, "text_tokens": 256}  # 1,024 + 256 tokens


def _self_attention(result, stage_name="denoiser"):
    stage = next(s for s in result.model.stages if s.name == stage_name)
    return stage, [op for op in stage.ops if op.kind == "attention" and op.role not in ("cross", "temporal")]


def _moved(result, stage_name, kind):
    """(bytes one device sends in one inference, collective rows) for `kind` rows of a stage."""
    t = result.table
    si = [s.name for s in result.model.stages].index(stage_name)
    rows = (t.unit == UNITS.index("comm")) & (t.stage == si) & (t.gemm[:, 3] == KINDS.index(kind))
    return float(t.gemm[rows, 1] @ t.count[rows]), rows


@pytest.mark.parametrize("plan,ring,heads_split", [("ring=2", 2, 1), ("ring=4", 4, 1), ("sp=2,ring=2", 2, 2)])
def test_ring_passes_n_minus_1_over_n_of_the_keys_and_values_per_layer(plan, ring, heads_split):
    """Liu et al. 2023 (arXiv 2310.01889), section 3 and Algorithm 1: N - 1 steps per layer, each sending the
    local key and value blocks (2cd bytes each), so a device sends (N - 1)/N of the layer's full K and V
    (2 (N - 1)/N of its K when K and V are the same size); under USP each ring carries 1/sp of the heads."""
    steps = FLUX["steps"]
    r = run("flux1-dev", "h100", FLUX, parallel=plan)
    stage, attn = _self_attention(r)
    layers = sum(op.count for op in attn)
    assert r.sharding.collectives[("denoiser", "p2p", ring)] == (ring - 1) * layers * steps
    full_kv = sum(sum(np.prod(stage.tensors[x].shape) * BYTES[stage.tensors[x].dtype] for x in op.inputs[1:3])
                  * op.count for op in attn)
    k_only = sum(np.prod(stage.tensors[op.inputs[1]].shape) * BYTES[stage.tensors[op.inputs[1]].dtype] * op.count
                 for op in attn)
    moved, rows = _moved(r, "denoiser", "p2p")
    assert moved == pytest.approx(steps * (ring - 1) / ring * full_kv / heads_split, rel=1e-12)
    assert moved == pytest.approx(steps * 2 * (ring - 1) / ring * k_only / heads_split, rel=1e-12)
    # each step is a point-to-point transfer between ring neighbours, ring ranks tp x sp apart
    assert set(r.table.gemm[rows, 0]) == {ring} and set(r.table.gemm[rows, 2]) == {parse_plan(plan).stride("ring")}


def test_usp_runs_ulysses_inside_the_ring():
    """sp=2,ring=2: the all-to-alls stay inside each consecutive pair (stride 1), the ring joins the pairs
    (stride 2), and each all-to-all moves a quarter of q, k, v and the output (the device's tokens)."""
    one = run("flux1-dev", "h100", FLUX)
    usp = run("flux1-dev", "h100", FLUX, parallel="sp=2,ring=2")
    uly = run("flux1-dev", "h100", FLUX, parallel="sp=2")
    assert Plan(sp=2, ring=2).stride("sp") == 1 and Plan(sp=2, ring=2).stride("ring") == 2
    a2a, rows = _moved(usp, "denoiser", "all_to_all")
    assert set(usp.table.gemm[rows, 0]) == {2} and set(usp.table.gemm[rows, 2]) == {1}
    assert a2a == pytest.approx(_moved(uly, "denoiser", "all_to_all")[0] / 2, rel=1e-12)
    # the token-wise work is split four ways (only the ops on the 2-D timestep and guidance vectors run whole)
    f1 = {s["name"]: s["flops"] for s in one.by_stage()}
    f4 = {s["name"]: s["flops"] for s in usp.by_stage()}
    assert f4["denoiser"] == pytest.approx(f1["denoiser"] / 4, rel=1e-4)


@pytest.mark.parametrize("n", [2, 4])
def test_without_comm_ring_n_is_n_times_faster_on_attention(n):
    """(S/N) x S attention per device: the bare roofline is exactly N x faster, and with tile and wave
    quantisation, efficiency and N launches per layer it is N x less quantisation effects on an attention-bound
    sequence (2048 px: 16,896 tokens; at 1024 px, 4,608 tokens, flash attention's lower efficiency on shorter
    blocks leaves ring=4 at about 3.3 x)."""
    over = {"height": 2048, "width": 2048, "steps": 1, "cfg": 0}
    bare = Terms.without(set(Terms.NAMES))
    times = {}
    for plan in ("tp=1", f"ring={n}"):
        r = run("flux1-dev", "h100", over, parallel=plan, terms=bare)
        times[plan] = r.by_category()["attention"]
        full = run("flux1-dev", "h100", over, parallel=plan, terms=Terms.without({"comm"}))
        times[plan, "full"] = full.by_category()["attention"]["time_s"]
    one, split = times["tp=1"], times[f"ring={n}"]
    assert split["flops"] == pytest.approx(one["flops"] / n, rel=1e-9)
    assert split["compute_s"] == pytest.approx(one["compute_s"] / n, rel=1e-9)
    assert times["tp=1", "full"] / times[f"ring={n}", "full"] == pytest.approx(n, rel=0.05)


def test_ring_attention_runs_one_blockwise_call_per_step_on_its_share_of_the_queries():
    one = run("flux1-dev", "h100", FLUX)
    two = run("flux1-dev", "h100", FLUX, parallel="ring=2")
    _, attn = _self_attention(one)
    si = [s.name for s in one.model.stages].index("denoiser")
    for r, launches, queries in ((one, 1, 1280), (two, 2, 640)):
        ids = [i for i, (s, op) in enumerate(r.table.ops) if s == si and op in attn]
        rows = np.isin(r.table.op, ids) & (r.table.unit == UNITS.index("attention"))
        assert rows.any() and set(r.table.launches[rows]) == {launches}
        assert set(r.table.gemm[rows, 1]) == {queries} and set(r.table.gemm[rows, 2]) == {1280}  # keys: all


def test_the_ring_sends_overlap_the_stage_only_when_the_stack_says_so():
    eager = load_stack("eager")
    assert eager.spec.comm_overlap is False
    overlapped = replace(eager, spec=eager.spec.model_copy(update={"comm_overlap": True}))
    over = {"height": 1024, "width": 1024, "steps": 1, "cfg": 0}
    added = run("flux1-dev", "h100", over, stack=eager, parallel="ring=2")
    hidden = run("flux1-dev", "h100", over, stack=overlapped, parallel="ring=2")
    free = run("flux1-dev", "h100", over, stack=eager, parallel="ring=2", terms=Terms.without({"comm"}))
    # with the link free only the communication kernels' launches are left (metrics.comm_seconds)
    assert added.comm_time_s > free.comm_time_s
    assert added.time_s - free.time_s == pytest.approx(added.comm_time_s - free.comm_time_s, rel=1e-9)
    # behind the blockwise compute: a few ms of sends against a denoiser step of hundreds of ms
    assert hidden.time_s == pytest.approx(free.time_s, rel=1e-12)
    assert hidden.comm_time_s == pytest.approx(free.comm_time_s, rel=1e-12)


def test_plan_parsing_knows_ring():
    p = parse_plan("sp=2,ring=2")
    assert p == Plan(sp=2, ring=2) and p.devices == 4 and str(p) == "sp=2,ring=2"
    assert p.to_dict()["ring"] == 2
    assert parse_plan("ring=4", 4).devices == 4


@pytest.mark.parametrize("args,words", [
    (["flux1-dev", "--set", "height=512", "--set", "width=512", "--set", "text_tokens=256", "--parallel", "ring=3"],
     "ring=3 does not divide the 1280-token sequence (its text tokens included) of denoiser/"),
    (["flux1-dev", "--set", "height=512", "--set", "width=512", "--set", "text_tokens=256", "--parallel",
      "sp=2,ring=3"],
     "sp x ring = 6 does not divide the 1280-token sequence"),
    (["flux1-dev", "--devices", "2", "--parallel", "ring=4"], "multiply to 4 devices, not --devices 2"),
    (["flux1-dev", "--parallel", "ring=0"], "ring=0 must be from 1"),
    (["flux1-dev", "--parallel", "ring=two"], "ring=two is not a whole number"),
])
def test_impossible_ring_plans_are_one_line_errors(args, words):
    code, _, err = run_cli("run", *args, "--hardware", "h100")
    assert code == 2 and err.count("\n") == 1 and words in err, err


def test_the_sequence_checked_is_the_one_doing_the_attention_work():
    """DeepFloyd IF's T5 encodes 77 tokens, which ring=2 does not divide; the UNet's sequences it does, and they
    are where the attention work is, so the plan runs (the 77 tokens split as under Ulysses)."""
    r = run("deepfloyd-if", "h100", {"steps": 2}, parallel="ring=2")
    assert r.devices == 2 and r.sharding.collectives[("denoiser", "p2p", 2)] > 0
