"""Autoregressive stages costed as arrays over the iteration equal the iteration-by-iteration costing.

A decode stage's attention reads a KV cache one entry longer per step; the mapping layer lowers such an op at a
few steps and writes every step's kernels from them when they are affine in the step (`mapping._affine_rows`).
Every reported figure (per op, per layer, per stage, per category, totals, memory) must equal what lowering each
step on its own gives, to 1e-9 relative.
"""
import math
from pathlib import Path

import numpy as np
import pytest

from simulator import mapping
from simulator.graph import build_model
from simulator.hardware import load_hardware
from simulator.mapping import lower
from simulator.simulate import cost, load_model, resolve_stack

TINY = Path(__file__).parent / "data" / "tiny_llm.yaml"


def assert_same(a, b, path="result"):
    """Equal structure; numbers equal to 1e-9 relative, everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def both(built, hardware="a100", stack=None):
    """(arrays over the iteration, iteration by iteration) results of one built model."""
    hw = load_hardware(hardware)
    st = resolve_stack(stack, built, hw)
    fast = cost(built, lower(built, st, hw.spec), hw, st)
    slow = cost(built, lower(built, st, hw.spec, per_iteration=True), hw, st)
    return fast, slow


def assert_equal_results(fast, slow):
    a, b = fast.to_dict(), slow.to_dict()
    a.pop("provenance"), b.pop("provenance")
    assert_same(a, b)
    assert_same(fast.by_layer(), slow.by_layer(), "layers")
    assert_same(fast.by_stage(), slow.by_stage(), "stages")


CASES = [("llama2-7b", {"prompt_tokens": 2048, "output_tokens": n}) for n in (1, 7, 128, 2048)] + [
    ("llama3-8b", {"output_tokens": 128}),
    ("llama2-70b", {"prompt_tokens": 300, "output_tokens": 40, "batch": 4}),
    ("parti", {"height": 96, "width": 96}),        # 144 image tokens
    ("cm3leon", {"height": 96, "width": 96, "cfg": False}),
    ("cm3leon", {"height": 24, "width": 24}),      # 9 tokens: short enough to be lowered step by step anyway
]


@pytest.mark.parametrize("model,overrides", CASES, ids=[f"{m}-{'-'.join(map(str, o.values()))}" for m, o in CASES])
def test_arrays_over_the_iteration_equal_iteration_by_iteration(model, overrides):
    built = load_model(model, overrides)
    fast, slow = both(built)
    assert_equal_results(fast, slow)
    decode = next(s for s in built.stages if s.iteration)
    if decode.repeat >= 2 * mapping.AFFINE_SAMPLES:
        # the fast path was taken: the cache append, the same at every step, is one row, not one per step
        assert len(fast.table) < len(slow.table)


def test_other_stacks_and_devices_agree():
    built = load_model("llama2-7b", {"prompt_tokens": 512, "output_tokens": 64})
    for hardware, stack in (("h100", "tensorrt"), ("mi300x", "compile-cudagraphs"), ("a100", "xla")):
        assert_equal_results(*both(built, hardware, stack))


def spy(monkeypatch):
    """Record whether `_affine_rows` wrote each varying op's kernels as arrays."""
    taken = []
    real = mapping._affine_rows

    def recording(out, op, lower_at):
        block = real(out, op, lower_at)
        taken.append((op.name, block is not None))
        return block
    monkeypatch.setattr(mapping, "_affine_rows", recording)
    return taken


def test_a_threshold_crossed_mid_decode_falls_back(monkeypatch):
    """Eager softmax over rows longer than 1024 takes extra passes (stacks/eager.yaml): with the materialised
    attention, the row (the cache length) crosses 1024 during this decode, so its kernels are not affine in the
    step and are lowered step by step, with the same answer."""
    taken = spy(monkeypatch)
    built = load_model("llama2-7b", {"prompt_tokens": 1000, "output_tokens": 60}, attention="math")
    fast, slow = both(built, stack="eager")
    assert ("layers/attn", False) in taken
    assert ("layers/k_cache", True) in taken
    assert_equal_results(fast, slow)


def test_attention_growing_in_queries_and_keys_falls_back(monkeypatch, tmp_path):
    """Recomputing the whole sequence each step (no KV cache): causal attention FLOPs grow with the square of
    the step, which the sampled steps show."""
    text = TINY.read_text().replace(
        "      tok: {shape: [batch, 1], dtype: int64}\n    ops:\n      - {name: emb, op: embedding, in: tok, "
        "num_embeddings: 1000, dim: 64}\n",
        "      tok: {shape: [batch, 1], dtype: int64}\n    ops:\n      - {name: emb1, op: embedding, in: tok, "
        "num_embeddings: 1000, dim: 64}\n      - {name: emb, op: kv_cache, in: emb1, length: past + 1}\n")
    assert "emb1" in text
    path = tmp_path / "recompute.yaml"
    path.write_text(text)
    taken = spy(monkeypatch)
    built = build_model(path, {"output_tokens": 50})
    fast, slow = both(built)
    assert ("layers/attn", False) in taken
    assert_equal_results(fast, slow)


def test_lazy_iterations_are_the_per_step_results():
    """The per-iteration results read from the graph are each step's own evaluation (see test_graph)."""
    built = build_model(TINY, {"output_tokens": 40})
    attn = next(op for op in built.stages[1].ops if op.name == "layers/attn")
    assert len(attn.per_iteration) == 40
    assert [r.kernels[0].flops for r in attn.per_iteration[::13]] == [2 * 4 * (16 + t + 1) * 32 for t in (0, 13, 26, 39)]
    assert attn.per_iteration[-1] is attn.result


def test_unique_rows_matches_numpy():
    import numpy as np
    rng = np.random.default_rng(0)
    for n in (1, 7, 2000):
        a = rng.integers(0, 3, (n, 9)).astype(float)
        a[::2, 3] = -0.0  # equal to 0.0
        d0, f0, i0 = np.unique(a, axis=0, return_index=True, return_inverse=True)
        d1, f1, i1 = mapping.unique_rows(a)
        o0, o1 = np.argsort(f0), np.argsort(f1)
        assert (f0[o0] == f1[o1]).all() and (d0[o0] == d1[o1]).all()
        assert (np.argsort(o0)[i0.ravel()] == np.argsort(o1)[i1.ravel()]).all()


def kernel_columns(table):
    return [table.stage, table.category, table.unit, table.peak, table.eff, table.backend, table.flops, table.bytes,
            *table.gemm.T, table.launches, table.host]


def numpy_groups(columns):
    """np.unique's groups of equal rows, renumbered in order of first appearance: (first, inverse)."""
    _, first, inverse = np.unique(np.column_stack(columns), axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    place = np.argsort(order)
    return first[order], place[inverse.ravel()]


def assert_groups(got, want):
    assert got is not None
    assert (got[0] == want[0]).all() and (got[1] == want[1]).all()


def test_row_groups_match_numpy():
    rng = np.random.default_rng(1)
    for n in (1, 2, 9, 3000):
        columns = [rng.integers(0, 3, n), rng.integers(0, 2, n).astype(float), rng.integers(0, 3, n) * 0.5]
        columns[1][::3] = -0.0  # equal to 0.0
        assert_groups(mapping.row_groups(columns), numpy_groups(columns))


@pytest.mark.parametrize("model,overrides,attention,stack", [
    ("llama2-7b", {"prompt_tokens": 2048, "output_tokens": 32768}, "flash", None),
    ("llama2-7b", {"prompt_tokens": 100, "output_tokens": 60}, "math", "eager"),  # three growing kernels per step
    ("parti", {"height": 96, "width": 96}, "flash", None),
])
def test_growing_rows_are_grouped_as_numpy_groups_them(model, overrides, attention, stack):
    """`compact` skips hashing the kernels that grow with the step where it can show each is alone in its group
    (`_growing_rows_distinct`); the groups are numpy's either way, also when a row is made equal to one of them."""
    hw = load_hardware("a100")
    built = load_model(model, overrides, attention)
    table = lower(built, resolve_stack(stack, built, hw), hw.spec)
    assert table.steps
    columns = kernel_columns(table)
    want = numpy_groups(columns)
    assert_groups(mapping.row_groups(columns, table.steps), want)
    if len(table) > 10000:  # the long decode: its growing rows are shown distinct, not hashed
        start, stop, _ = table.steps[0]
        outside = np.flatnonzero((np.arange(len(table)) < start) | (np.arange(len(table)) >= stop))
        assert mapping._growing_rows_distinct(columns, table.steps, outside)
    # a row outside the ranges made equal to the growing kernel's row at the fifth step joins its group
    start, stop, period = table.steps[0]
    twin = next(r for r in range(len(table)) if not start <= r < stop)
    columns = [c.copy() for c in columns]
    for c in columns:
        c[twin] = c[start + 4 * period]
    got = mapping.row_groups(columns, table.steps)
    assert_groups(got, numpy_groups(columns))
    assert got[1][twin] == got[1][start + 4 * period]


# --- closed form over runs of steps (mapping.closed_form_runs): run() with the decode's growing kernels written
# at the ends of runs of steps over which their costs are affine, against the same run() with every step written

def closed_and_every_step(monkeypatch, model, overrides, **options):
    """(closed form, every step) results of `run()`; the closed form taken from the window's length on (not only
    from mapping.CLOSED_FORM_FROM), so that short decodes check it too."""
    from simulator import simulate
    monkeypatch.setattr(mapping, "CLOSED_FORM_FROM", 0)
    closed = simulate.run(model, overrides=overrides, **options)
    monkeypatch.setattr(simulate, "CLOSED_FORM", False)
    every = simulate.run(model, overrides=overrides, **options)
    return closed, every


CLOSED_CASES = [
    ("llama2-7b", {"prompt_tokens": 2048, "output_tokens": n}, {}, n >= 2048) for n in (1, 7, 128, 2048, 32768)] + [
    ("llama3-8b", {"output_tokens": 1000}, {}, True),
    ("llama3-8b", {"output_tokens": 1000}, {"hardware": "mi300x", "stack": "compile-cudagraphs"}, True),
    ("llama2-7b", {"prompt_tokens": 512, "output_tokens": 700, "batch": 8}, {"hardware": "b200", "stack": "tensorrt"},
     False),
    ("llama2-70b", {"prompt_tokens": 300, "output_tokens": 400, "batch": 4}, {"devices": 2}, False),  # one device only
    ("cm3leon", {}, {}, True),
    # one decode step's self-attention is the same kernel as the cross-attention to the text (the host model
    # merges the two): written at every step
    ("parti", {"height": 512, "width": 512}, {}, False),
    # eager softmax over rows longer than 1024 takes extra passes: the materialised attention crosses it mid-decode,
    # so its kernels are lowered step by step (not affine in the step) and only the cache append is an array
    ("llama2-7b", {"prompt_tokens": 700, "output_tokens": 600}, {"attention": "math", "stack": "eager"}, False),
]


@pytest.mark.parametrize("model,overrides,options,collapsed", CLOSED_CASES,
                         ids=[f"{m}-{'-'.join(map(str, o.values()))}-{'-'.join(map(str, p.values()))}"
                              for m, o, p, _ in CLOSED_CASES])
def test_closed_form_runs_equal_every_step(monkeypatch, model, overrides, options, collapsed):
    """Every number of the JSON (time, FLOPs, bytes, energy, memory, per op, per stage, serving), and the
    per-layer and per-stage figures, to 1e-9 relative."""
    closed, every = closed_and_every_step(monkeypatch, model, overrides, **options)
    assert_equal_results(closed, every)
    assert bool(getattr(closed.table, "runs", None)) == collapsed
    if collapsed:
        assert len(closed.table) < len(every.table) / 3


def test_closed_form_is_the_default_of_run_from_its_threshold():
    from simulator import simulate
    assert simulate.CLOSED_FORM
    long = simulate.run("llama2-7b", overrides={"prompt_tokens": 2048, "output_tokens": mapping.CLOSED_FORM_FROM + 2})
    short = simulate.run("llama2-7b", overrides={"prompt_tokens": 2048, "output_tokens": 128})
    assert long.table.runs and not getattr(short.table, "runs", None)


def synthetic_probe(change_every=10, flip=37.5):
    """A block of one kernel whose only feature changes every `change_every` iterations, compute time affine, and
    one comparison changing side at iteration `flip` (its margin is the iteration less `flip`)."""
    def probe(steps):
        return (np.floor(steps / change_every)[:, None], (2.0 * steps + 1.0)[:, None],
                (steps - flip)[:, None, None])
    return probe


@pytest.mark.parametrize("flip", [37.5, 1234.5, 1239.0])
def test_runs_end_where_a_feature_or_a_side_changes(flip):
    """Runs are the stretches of equal features, split where a side changes: in the window read step by step
    (37.5) or later, found from the margins at a run's ends (1234.5, 1239: the zero at the run's last step)."""
    start, end = mapping.closed_form_runs(synthetic_probe(flip=flip), 1, 3000)
    cuts = sorted({t for t in range(10, 3001, 10)} | {int(np.floor(flip)) + 1})
    assert list(start) == [1] + cuts
    assert list(end) == [c - 1 for c in cuts] + [3000]


def test_runs_refused_where_compute_is_not_affine_or_changes_too_often():
    bent = lambda steps: (np.zeros((len(steps), 1)), (steps ** 2)[:, None], np.ones((len(steps), 1, 1)))
    assert mapping.closed_form_runs(bent, 1, 5000) is None
    assert mapping.closed_form_runs(synthetic_probe(change_every=mapping.MIN_SPACING - 1), 1, 5000) is None


def test_host_leads_over_a_run_equal_the_leads_of_its_steps():
    """engine.host_excess on runs written at their ends equals the same table with every step a row, for host
    faster than the device, slower, and crossing it within a run (the lead then peaks inside the run)."""
    from simulator.engine import KernelTable, host_excess
    m = np.array([5, 1, 40, 2])  # steps of each run

    def table(rows, runs=None):
        n = len(rows)
        t = KernelTable([], np.zeros(n, int), np.zeros(n, int), np.zeros(n, int), np.zeros(n, int), np.zeros(n, int),
                        [], np.zeros(n, int), [], np.zeros(n, int), [], np.ones(n), np.ones(n), np.zeros((n, 4)),
                        np.ones(n), np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([100.0]),
                        np.array([0.0]), np.array([False]))
        if runs:
            t.runs = runs
        return t
    for host in (1e-6, 5e-5, 2.2e-5):
        for count in (3.0, 0.5):  # runs of a kernel per step: more than one per repeat, and fewer
            d0, d1 = np.array([1e-5, 3e-5, 2e-5, 4e-5]), np.array([3e-5, 3e-5, 5e-5, 1e-5])
            steps = [(count, host, d0[r] + (d1[r] - d0[r]) * i / max(m[r] - 1, 1))
                     for r in range(len(m)) for i in range(m[r])]
            ends = []
            for r in range(len(m)):
                ends += [(count * m[r] / 2, host, d0[r]), (count * m[r] / 2, host, d1[r])] if m[r] > 1 else \
                    [(count, host, d0[r])]
            pre = [(2.0, 3e-5, 1e-5)]
            every = table(pre + [(c, h) for c, h, _ in steps])
            closed = table(pre + [(c, h) for c, h, _ in ends], [(1, 1, m)])
            t_every = np.array([[1e-5] + [d for *_, d in steps]])
            t_closed = np.array([[1e-5] + [d for *_, d in ends]])
            a, b = host_excess(closed, t_closed), host_excess(every, t_every)
            assert np.allclose(a, b, rtol=1e-12, atol=0), (host, count, a, b)


@pytest.mark.parametrize("off", [{"wave", "power"}, {"tile", "achievable"}, {"overhead", "latency"}])
def test_closed_form_under_other_efficiency_terms(monkeypatch, off):
    """The runs are found for the Terms the table is costed under (and the bare roofline beside them)."""
    from simulator.engine import Terms
    closed, every = closed_and_every_step(monkeypatch, "llama2-7b", {"prompt_tokens": 1024, "output_tokens": 3000},
                                          terms=Terms.without(off))
    assert_equal_results(closed, every)
    assert closed.table.runs
