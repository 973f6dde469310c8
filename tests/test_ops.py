"""Op formulas: FLOPs, bytes, parameters and shapes from first principles."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.ops import OPS, OpCall, OpError


def call(kind, shapes, attention="flash", dtype="fp16", in_dtypes=None, **attrs):
    opdef = OPS[kind]
    full = {k: a.default for k, a in opdef.attrs.items()}
    full.update(attrs)
    return opdef.fn(OpCall("t", kind, [tuple(s) for s in shapes], in_dtypes or [dtype] * len(shapes), full, dtype,
                           attention))


def test_linear():
    r = call("linear", [(2, 77, 768)], out_features=3072)
    assert r.outputs == [(2, 77, 3072)]
    assert r.params == 768 * 3072 + 3072
    (k,) = r.kernels
    assert k.flops == 2 * 2 * 77 * 768 * 3072
    assert k.bytes == 2 * (2 * 77 * 768 + r.params + 2 * 77 * 3072)
    assert k.gemm == (1, 2 * 77, 3072, 768)


def test_linear_checks_in_features():
    with pytest.raises(OpError, match="in_features"):
        call("linear", [(2, 10)], out_features=4, in_features=11)


@given(n=st.integers(1, 4), c=st.integers(1, 64), h=st.integers(4, 40), k=st.sampled_from([1, 3, 5]),
       s=st.integers(1, 3), cout=st.integers(1, 64))
def test_conv2d_matches_torch_flop_counter_formula(n, c, h, k, s, cout):
    p = k // 2
    r = call("conv2d", [(n, c, h, h)], out_channels=cout, kernel=k, stride=s, padding=p)
    out = (h + 2 * p - k) // s + 1
    assert r.outputs == [(n, cout, out, out)]
    # torch.utils.flop_counter.conv_flop_count: prod(out spatial) * prod(kernel) * N * Cout * Cin * 2
    assert r.kernels[0].flops == out * out * k * k * n * cout * c * 2
    assert r.params == cout * c * k * k + cout


def test_grouped_and_transposed_conv():
    g = call("conv2d", [(1, 64, 8, 8)], out_channels=64, kernel=3, padding=1, groups=64)
    assert g.params == 64 * 9 + 64 and g.kernels[0].flops == 2 * 64 * 64 * 9
    t = call("conv2d", [(1, 16, 8, 8)], out_channels=8, kernel=4, stride=2, padding=1, transposed=True)
    assert t.outputs == [(1, 8, 16, 16)]
    assert t.kernels[0].flops == 2 * 64 * 16 * 8 * 16  # over the 8x8 input positions, as torch counts it
    with pytest.raises(OpError, match="groups"):
        call("conv2d", [(1, 6, 8, 8)], out_channels=4, kernel=1, groups=4)
    with pytest.raises(OpError, match="conv3d input"):
        call("conv3d", [(1, 6, 8, 8)], out_channels=4, kernel=1)


def test_conv3d_spatiotemporal():
    r = call("conv3d", [(1, 4, 16, 8, 8)], out_channels=8, kernel=[3, 1, 1], padding=[1, 0, 0])
    assert r.outputs == [(1, 8, 16, 8, 8)]
    assert r.kernels[0].flops == 2 * 16 * 64 * 8 * 4 * 3


@given(t=st.integers(1, 8), c=st.integers(1, 32), cache=st.integers(1, 3), kt=st.sampled_from([1, 3]))
def test_causal_conv_cache_keeps_frames_and_costs_no_flops(t, c, cache, kt):
    """A chunk-by-chunk causal conv (Wan feat_cache, CogVideoX conv_cache): the same FLOPs and output as the conv
    with symmetric time padding; it holds `cache` frames of its input across chunks and, with a temporal kernel,
    reads a copy of its input behind kt - 1 cached frames."""
    x = (2, c, t, 6, 10)
    frame = 2 * c * 6 * 10 * 2  # fp16 bytes of one frame of the batch
    plain = call("conv3d", [x], out_channels=4, kernel=[kt, 3, 3], padding=[kt // 2, 1, 1])
    cached = call("conv3d", [x], out_channels=4, kernel=[kt, 3, 3], padding=[kt // 2, 1, 1], cache=cache)
    assert cached.outputs == plain.outputs and cached.params == plain.params
    assert cached.kernels[0] == plain.kernels[0]
    assert sum(k.flops for k in cached.kernels) == sum(k.flops for k in plain.kernels)
    assert (plain.held, cached.held) == (0, cache * frame)
    assert (plain.workspace, cached.workspace) == (0, (t + kt - 1) * frame if kt > 1 else 0)
    # the concatenation (read and written) and the clone of the cache (read and written)
    assert cached.kernels[-1].bytes == 2 * cached.workspace + 2 * cached.held


def test_causal_conv_cache_needs_a_conv3d():
    with pytest.raises(OpError, match="cache"):
        call("conv2d", [(1, 4, 8, 8)], out_channels=4, kernel=3, cache=2)


@given(b=st.integers(1, 4), lq=st.integers(1, 300), lk=st.integers(1, 300), h=st.integers(1, 8),
       d=st.sampled_from([16, 40, 64, 128]), causal=st.booleans())
def test_flash_never_moves_more_bytes_than_math(b, lq, lk, h, d, causal):
    shapes = [(b, lq, h * d), (b, lk, h * d), (b, lk, h * d)]
    flash = call("attention", shapes, heads=h, causal=causal)
    math_ = call("attention", shapes, attention="math", heads=h, causal=causal)
    assert sum(k.bytes for k in flash.kernels) <= sum(k.bytes for k in math_.kernels)
    assert sum(k.flops for k in flash.kernels) <= sum(k.flops for k in math_.kernels if k.unit == "matrix")
    assert math_.workspace == 2 * b * h * lq * lk * 2 and flash.workspace == 0


def test_attention_flops_and_causal_pairs():
    shapes = [(2, 64, 512), (2, 64, 512), (2, 64, 512)]
    full = call("attention", shapes, heads=8)
    assert full.kernels[0].flops == 4 * 2 * 8 * 64 * 64 * 64
    causal = call("attention", shapes, heads=8, causal=True)
    assert causal.kernels[0].flops == 4 * 2 * 8 * (64 * 65 // 2) * 64
    # one new query over a cache of 100 keys attends to all of them
    step = call("attention", [(1, 1, 512), (1, 100, 512), (1, 100, 512)], heads=8, causal=True)
    assert step.kernels[0].flops == 4 * 8 * 100 * 64


def test_grouped_query_attention_reads_fewer_kv_bytes():
    mha = call("attention", [(1, 1, 4096), (1, 1000, 4096), (1, 1000, 4096)], heads=32)
    gqa = call("attention", [(1, 1, 4096), (1, 1000, 1024), (1, 1000, 1024)], heads=32, kv_heads=8)
    assert gqa.kernels[0].flops == mha.kernels[0].flops
    assert gqa.kernels[0].bytes < mha.kernels[0].bytes / 3.9
    with pytest.raises(OpError, match="kv_heads"):
        call("attention", [(1, 1, 4096), (1, 10, 1000), (1, 10, 1000)], heads=32, kv_heads=8)


def test_math_attention_is_three_kernels_around_the_score_matrix():
    r = call("attention", [(1, 4096, 320), (1, 4096, 320), (1, 4096, 320)], attention="math", heads=8)
    assert [k.suffix for k in r.kernels] == [".qk", ".softmax", ".pv"]
    scores = 8 * 4096 * 4096 * 2
    assert r.kernels[1].bytes == 2 * scores


def test_views_move_nothing_and_copies_do():
    assert call("reshape", [(2, 3, 4)], shape=[6, -1]).outputs == [(6, 4)]
    assert call("reshape", [(2, 3, 4)], shape=[6, -1]).kernels == []
    assert call("split", [(2, 10)], axis=1, sizes=[3, 7]).outputs == [(2, 3), (2, 7)]
    t = call("transpose", [(2, 3, 4)], perm=[0, 2, 1])
    assert t.outputs == [(2, 4, 3)] and t.kernels[0].bytes == 2 * 24 * 2
    assert call("transpose", [(2, 3, 4)], perm=[0, 2, 1], copy=False).kernels == []
    with pytest.raises(OpError, match="cannot reshape"):
        call("reshape", [(2, 3, 4)], shape=[5, 5])


def test_binary_broadcast_and_mismatch():
    r = call("add", [(2, 320, 64, 64), (2, 320, 1, 1)])
    assert r.outputs == [(2, 320, 64, 64)]
    assert r.kernels[0].bytes == 2 * (2 * 320 * 64 * 64 * 2 + 2 * 320)
    with pytest.raises(OpError, match="do not broadcast"):
        call("add", [(2, 320, 64, 64), (2, 640, 64, 64)])


def test_embedding_reads_rows_but_owns_table():
    r = call("embedding", [(1, 7)], in_dtypes=["int64"], num_embeddings=32000, dim=4096)
    assert r.outputs == [(1, 7, 4096)] and r.params == 32000 * 4096
    assert r.kernels[0].bytes == 7 * 8 + 2 * 7 * 4096 * 2


def test_kv_cache_appends_and_holds_state():
    r = call("kv_cache", [(1, 1, 4096)], length=513)
    assert r.outputs == [(1, 513, 4096)]
    assert r.kernels[0].bytes == 2 * 4096 * 2
    assert r.state == 513 * 4096 * 2
    with pytest.raises(OpError, match="shorter"):
        call("kv_cache", [(1, 8, 4096)], length=4)


def test_norms_params():
    assert call("group_norm", [(1, 320, 8, 8)], groups=32).params == 640
    assert call("layer_norm", [(1, 7, 768)]).params == 1536
    assert call("rms_norm", [(1, 7, 4096)]).params == 4096
    with pytest.raises(OpError, match="groups"):
        call("group_norm", [(1, 100, 8, 8)], groups=32)


def test_pool_upsample_concat():
    assert call("upsample", [(1, 4, 8, 8)], scale=2).outputs == [(1, 4, 16, 16)]
    assert call("avg_pool", [(1, 4, 8, 8)], kernel=2).outputs == [(1, 4, 4, 4)]
    assert call("concat", [(1, 4, 8), (1, 6, 8)], axis=1).outputs == [(1, 10, 8)]
    with pytest.raises(OpError, match="concatenate"):
        call("concat", [(1, 4, 8), (1, 6, 9)], axis=1)


def test_every_registered_kind_has_a_category():
    from simulator.ops import CATEGORIES
    assert all(d.category in CATEGORIES for d in OPS.values())
    assert math.isclose(len(OPS), len(set(OPS)))


def test_group_norm_reads_its_input_twice():
    r = call("group_norm", [(2, 320, 64, 64)], groups=32)
    assert [k.suffix for k in r.kernels] == [".stats", ".apply"]
    x = 2 * 320 * 64 * 64 * 2
    assert sum(k.bytes for k in r.kernels) == pytest.approx(3 * x, rel=0.01)  # read, read again, write
