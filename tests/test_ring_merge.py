"""Ring attention's merge of the blocks' partial outputs (PyTorch 2.5's _SDPAMerger, which xDiT's USP runs for
Flux): its bytes per ring step, where it sits in the kernel table, and what each stack makes of it."""
import numpy as np
import pytest

from simulator.engine import Terms
from simulator.ops import CATEGORIES, UNITS
from simulator.parallel import ring_merge
from simulator.simulate import run

FLUX = {"height": 512, "width": 512, "steps": 2, "cfg": 0, "text_tokens": 256}  # 1,024 + 256 tokens, 24 heads of 128


def _merge_rows(result):
    """Rows of the denoiser's ring attention ops that are not the attention itself: the merge."""
    t = result.table
    si = [s.name for s in result.model.stages].index("denoiser")
    ids = [i for i, (s, op) in enumerate(t.ops) if s == si and op.kind == "attention"]
    return np.isin(t.op, ids) & (t.category == CATEGORIES.index("elementwise")), ids


def _unfused_bytes(e, rows_, ring, op_bytes):
    """The merger's passes written out by hand: every step upcasts the block's output (op dtype in, fp32 out);
    every fold multiplies the running output and the block's by one broadcast fp32 factor per row each (fp32 in
    and out, plus the factor) and adds them (two fp32 in, one out), and computes the new log-sum-exp in four
    binary and five unary fp32 ops over one value per row; the result is cast back once."""
    cast = e * (op_bytes + 4)
    fold = 2 * (e * 8 + rows_ * 4) + e * 12 + 4 * rows_ * 12 + 5 * rows_ * 8
    return ring * cast + (ring - 1) * fold + e * (4 + op_bytes)


@pytest.mark.parametrize("ring", [2, 3, 4])
def test_merge_bytes_follow_the_mergers_passes(ring):
    e, d = 8 * 2 * 4, 4  # 8 queries x 2 heads x head dim 4
    k = ring_merge(e, d, "bf16", ring, fused=False)
    assert k[:, 0] @ k[:, 3] == _unfused_bytes(e, e / d, ring, 2)
    # one kernel per call that computes; views and casts to fp32 of the fp32 log-sum-exp launch nothing
    assert k[:, 2] @ k[:, 3] == ring * 1 + (ring - 1) * 12 + 1
    # fused: each fold reads the running output (the first block's in bf16, later fp32) and the block's output,
    # writes the running output (bf16 at the last fold), and reads two and writes one fp32 log-sum-exp per row
    f = ring_merge(e, d, "bf16", ring, fused=True)
    running = [2] + [4] * (ring - 2)
    written = [4] * (ring - 2) + [2]
    expect = sum(e * (r + 2 + w) + 3 * (e / d) * 4 for r, w in zip(running, written))
    assert f[:, 0] @ f[:, 3] == expect and f[:, 2] @ f[:, 3] == ring - 1
    assert f[:, 0] @ f[:, 3] < k[:, 0] @ k[:, 3]  # fusion never moves more bytes
    assert ring_merge(e, d, "bf16", 1, fused=False).size == 0
    # an fp32 attention's casts to and from fp32 return the tensor: dispatched, nothing moved or launched
    k32 = ring_merge(e, d, "fp32", ring, fused=False)
    assert k32[:, 0] @ k32[:, 3] == _unfused_bytes(e, e / d, ring, 4) - (ring + 1) * e * 8
    assert k32[:, 2] @ k32[:, 3] == (ring - 1) * 12 and k32[:, 3].sum() == k[:, 3].sum()


@pytest.mark.parametrize("plan,share", [("ring=2", 2), ("ring=4", 4), ("sp=2,ring=2", 4)])
def test_each_device_merges_its_share_of_the_output_every_ring_step(plan, share):
    """Per run of each ring attention op, the merge moves the formula's bytes over the device's S/(sp x ring)
    tokens and 1/sp of the heads: 1/share of the op's output, one log-sum-exp value per head dim of it."""
    ring = int(plan.split("ring=")[1])
    r = run("flux1-dev", "h100", FLUX, parallel=plan)
    rows, ids = _merge_rows(r)
    t = r.table
    for oid in ids:
        si, op = t.ops[oid]
        stage = r.model.stages[si]
        out = stage.tensors[op.outputs[0]]
        e = np.prod(out.shape) / share
        runs = op.count * stage.repeat
        mine = rows & (t.op == oid)
        assert t.bytes[mine] @ t.count[mine] == pytest.approx(runs * _unfused_bytes(e, e / 128, ring, 2),
                                                              rel=1e-12)
        # right after the op's own rows (the attention calls), where the framework issues them
        at = np.flatnonzero(t.op == oid)
        assert (t.category[at[:len(at) - mine.sum()]] == CATEGORIES.index("attention")).all()
        assert mine[at[-mine.sum():]].all()


def test_without_a_ring_nothing_is_merged():
    for plan in ("tp=1", "sp=2", "ring=1"):
        r = run("flux1-dev", "h100", FLUX, parallel=plan)
        assert not _merge_rows(r)[0].any()


def _host(result):
    rows, _ = _merge_rows(result)
    t = result.table
    return float(t.host[rows] @ t.count[rows]), float(t.bytes[rows] @ t.count[rows])


def test_eager_dispatches_every_merge_op_and_compile_launches_one_fused_kernel_per_step():
    eager = run("flux1-dev", "h100", FLUX, parallel="ring=2", stack="eager")
    comp = run("flux1-dev", "h100", FLUX, parallel="ring=2", stack="compile")
    graphs = run("flux1-dev", "h100", FLUX, parallel="ring=2", stack="compile-cudagraphs")
    (h_eager, b_eager), (h_comp, b_comp), (h_graph, b_graph) = _host(eager), _host(comp), _host(graphs)
    assert h_eager > h_comp > h_graph == 0.0
    assert b_comp == b_graph < b_eager / 5  # one pass over the two blocks' outputs and the result, not 46
    # eager: 21 Python calls per run of the op at ring=2 (three per step, twelve in the fold, three for the
    # result), each a dispatch, 15 of them also a launch
    _, ids = _merge_rows(eager)
    runs = sum(op.count * eager.model.stages[si].repeat for si, op in (eager.table.ops[i] for i in ids))
    assert h_eager == pytest.approx(runs * (21 * 3.3e-6 + 15 * 1.3e-6), rel=1e-12)
    assert h_comp == pytest.approx(runs * 6.5e-6, rel=1e-12)


def test_the_merge_is_compute_not_communication():
    """`--disable comm` makes the links free; the merge is arithmetic on the device and stays."""
    over = {"height": 1024, "width": 1024, "steps": 1, "cfg": 0}
    full = run("flux1-dev", "h100", over, parallel="ring=2")
    free = run("flux1-dev", "h100", over, parallel="ring=2", terms=Terms.without({"comm"}))
    rows, _ = _merge_rows(free)
    assert rows.any() and not (free.table.unit[rows] == UNITS.index("comm")).any()
    t_full, t_free = (float(r.costs["time"][..., _merge_rows(r)[0]] @ r.table.count[_merge_rows(r)[0]])
                      for r in (full, free))
    assert t_free == pytest.approx(t_full, rel=1e-12) and t_free > 0
    # Ulysses over as many devices splits every other elementwise op of the denoiser the same way: the merge is
    # the difference
    ulysses = run("flux1-dev", "h100", over, parallel="sp=2", terms=Terms.without({"comm"}))

    def denoiser_elementwise(r):
        t = r.table
        si = [s.name for s in r.model.stages].index("denoiser")
        m = (t.category == CATEGORIES.index("elementwise")) & (t.stage == si)
        return float(r.costs["time"][..., m] @ t.count[m])
    added = denoiser_elementwise(free) - denoiser_elementwise(ulysses)
    assert added == pytest.approx(t_free, rel=1e-9)
