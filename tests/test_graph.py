"""Building the graph: blocks, repeats, conditional ops, iteration-exact decode, liveness and weights."""
import networkx as nx
import pytest

from conftest import DATA
from simulator.graph import build_model, peak_activation_bytes
from simulator.simulate import load_model

TINY = str(DATA / "tiny_llm.yaml")


def test_stage_graph_is_a_dag_in_declaration_order():
    model = load_model("sd15")
    for stage in model.stages:
        assert nx.is_directed_acyclic_graph(stage.graph)
        order = {op.name: op.index for op in stage.ops}
        assert all(order[a] < order[b] for a, b in stage.graph.edges)


def test_repeated_block_counts_each_op_n_times():
    model = build_model(TINY)
    prefill = model.stages[0]
    qkv = next(op for op in prefill.ops if op.name == "layers/qkv")
    assert qkv.count == 2
    assert prefill.params == 1000 * 64 + 2 * (64 * 192 + 64 * 64 + 64) + 64 * 1000


def test_decode_is_costed_per_iteration_exactly():
    """Attention over a growing cache: the sum over steps, not one step times N."""
    model = build_model(TINY, {"output_tokens": 8})
    decode = model.stages[1]
    attn = next(op for op in decode.ops if op.name == "layers/attn")
    assert len(attn.per_iteration) == 8
    # step t: 1 query over 16 + t + 1 keys, 4 heads of 16, QK and PV: 2 * 2 * 16 FLOPs per key and head
    per_step = [attn.per_iteration[t].kernels[0].flops for t in range(8)]
    assert per_step == [2 * 4 * (16 + t + 1) * 32 for t in range(8)]
    # ops that do not depend on the cache length are costed once and repeated
    qkv = next(op for op in decode.ops if op.name == "layers/qkv")
    assert qkv.per_iteration is None
    # the KV cache at the end holds prompt + output tokens for k and v of both layers
    assert decode.state_bytes == 2 * 2 * (16 + 8) * 64 * 2


def test_shared_weights_are_counted_once():
    model = build_model(TINY)
    assert model.stages[1].shares_weights_with == "prefill"
    assert model.param_count == model.stages[0].params


def test_zero_repeat_stage_costs_nothing():
    from simulator.hardware import load_hardware
    from simulator.mapping import lower
    from simulator.stacks import load_stack
    model = build_model(TINY, {"output_tokens": 0})
    table = lower(model, load_stack("eager"), load_hardware("a100").spec)
    assert table.count[table.stage == 1].sum() == 0


def test_when_false_passes_input_through():
    model = load_model("sd15")
    names = {op.name for op in model.stages[1].ops}
    assert "down1_0/res/shortcut" in names     # 320 -> 640 channels: 1x1 shortcut
    assert "down1_1/res/shortcut" not in names  # 640 -> 640: identity


def test_resolution_changes_shapes_everywhere():
    small, large = load_model("sd15"), load_model("sd15", {"height": 1024, "width": 1024})
    attn = lambda m: next(op for op in m.stages[1].ops if op.name == "down0_0/attn/block/self_attn")  # noqa
    assert attn(small).result.outputs[0][1] == 64 * 64
    assert attn(large).result.outputs[0][1] == 128 * 128


def test_liveness_peak_counts_skip_connections():
    """UNet skips stay alive across the whole down/up path; peak exceeds any single op's inputs+outputs."""
    stage = load_model("sd15").stages[1]
    biggest_op = max(sum(stage.tensors[t].shape[0] * 0 + _bytes(stage, t) for t in op.inputs + op.outputs)
                     for op in stage.ops)
    assert stage.peak_activation_bytes > biggest_op
    assert stage.peak_activation_bytes == peak_activation_bytes(stage.ops, stage.tensors)


def test_math_attention_peak_includes_score_matrix():
    flash = load_model("sd15", attention="flash").stages[1].peak_activation_bytes
    math = load_model("sd15", attention="math").stages[1].peak_activation_bytes
    scores = 2 * 8 * 4096 * 4096 * 2  # batch 2 (cfg), 8 heads, 64x64 latent tokens squared, fp16
    assert math - flash >= scores


def _bytes(stage, tid):
    from simulator.dtypes import BYTES
    from simulator.ops import numel
    t = stage.tensors[tid]
    return numel(t.shape) * BYTES[t.dtype]


@pytest.mark.parametrize("dtype, factor", [("fp32", 2.0), ("fp8", 0.5)])
def test_dtype_scales_weight_bytes(dtype, factor):
    base = load_model("sd15")
    other = load_model("sd15", {"dtype": dtype})
    if dtype == "fp32":
        assert other.weight_bytes == base.weight_bytes * factor
    else:  # a quantised type stores the GEMM-like ops' weights; norm scales and biases stay 16-bit (quantisation.py)
        assert base.weight_bytes * factor < other.weight_bytes < base.weight_bytes * factor * 1.001


@pytest.mark.parametrize("model, overrides", [("llama2-7b", {"output_tokens": 40}), ("cm3leon", {}),
                                              ("parti", {"height": 256, "width": 256})])
def test_first_and_last_iterations_kept_from_the_build_equal_a_fresh_evaluation(model, overrides):
    """The build evaluates every op that varies with the iteration at its first and last iterations and keeps
    those results (graph._StageBuilder.iterate): the same, field for field, as evaluating those iterations anew."""
    built = load_model(model, overrides)
    for stage in built.stages:
        varying = [op for op in stage.ops if op.per_iteration]
        if not varying:
            continue
        source = varying[0].per_iteration.source
        for it in (0, source.repeat - 1):
            assert [op.per_iteration[it] for op in varying] == source.builder.evaluate_iteration(source.varying, it)
