"""The mixture-of-experts projection (`moe_linear`): FLOPs follow the routed rows, bytes the experts reached."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.ops import OpError, experts_touched
from test_ops import call


def test_moe_linear_gathers_each_token_into_top_k_rows():
    r = call("moe_linear", [(2, 10, 64)], experts=8, top_k=2, out_features=96)
    assert r.outputs == [(2, 10, 2, 96)]
    assert r.params == 8 * 64 * 96          # every expert's weights are resident
    (k,) = r.kernels
    assert k.flops == 2 * (2 * 10 * 2) * 64 * 96   # each of the 40 routed rows through one expert


def test_routed_input_keeps_its_rows():
    r = call("moe_linear", [(1, 7, 2, 96)], experts=8, top_k=2, out_features=64, routed=True)
    assert r.outputs == [(1, 7, 2, 64)]
    assert r.kernels[0].flops == 2 * 14 * 96 * 64
    with pytest.raises(OpError, match="top_k"):
        call("moe_linear", [(1, 7, 3, 96)], experts=8, top_k=2, out_features=64, routed=True)
    with pytest.raises(OpError, match="top_k"):
        call("moe_linear", [(1, 7, 96)], experts=4, top_k=5, out_features=64)


def test_one_token_reads_top_k_experts_many_tokens_read_all():
    d, n = 64, 96
    weights = d * n * 2  # fp16 bytes of one expert's matrix
    one = call("moe_linear", [(1, 1, d)], experts=8, top_k=2, out_features=n)
    act = (2 * d + 2 * n) * 2
    assert one.kernels[0].bytes == pytest.approx(2 * weights + act)
    many = call("moe_linear", [(1, 4096, d)], experts=8, top_k=2, out_features=n)
    act = (4096 * 2 * d + 4096 * 2 * n) * 2
    assert many.kernels[0].bytes == pytest.approx(8 * weights + act)
    assert one.kernels[0].gemm == (2, 1, n, d)          # two experts, one row each
    assert many.kernels[0].gemm == (8, 1024, n, d)      # uniform routing: 4096 * 2 / 8 rows per expert


@given(e=st.integers(1, 64), k=st.integers(1, 8), t=st.integers(1, 10_000))
def test_experts_touched_is_between_top_k_and_all(e, k, t):
    k = min(k, e)
    touched = experts_touched(e, k, t)
    assert k - 1e-9 <= touched <= e + 1e-9
    assert experts_touched(e, k, t + 1) >= touched - 1e-9   # more tokens never reach fewer experts
    assert experts_touched(e, k, 1) == pytest.approx(k)
