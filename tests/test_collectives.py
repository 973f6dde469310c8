"""Collective costs: the alpha-beta formulas and the two-level topology."""
import numpy as np
import pytest

from simulator import collectives


def cols(bw=100e9, lat=2e-6, per_node=8, net_bw=10e9, net_lat=5e-6):
    return {"link_bandwidth": np.array([bw]), "link_latency": np.array([lat]),
            "devices_per_node": np.array([float(per_node)]), "network_bandwidth": np.array([net_bw]),
            "network_latency": np.array([net_lat])}


@pytest.mark.parametrize("n", [2, 4, 8])
def test_ring_all_reduce_is_2_n_minus_1_over_n_of_the_message(n):
    size, bw, lat = 1e9, 100e9, 2e-6
    t = collectives.ring_all_reduce(size, n, bw, lat)
    assert t == pytest.approx(2 * (n - 1) / n * size / bw + 2 * (n - 1) * lat, rel=1e-12)


def test_large_all_reduce_takes_the_ring_and_small_the_tree():
    bw, lat, n = 100e9, 2e-6, 8
    big, small = 1e9, 1e3
    assert collectives.all_reduce(big, n, bw, lat) == pytest.approx(collectives.ring_all_reduce(big, n, bw, lat))
    assert collectives.all_reduce(small, n, bw, lat) == pytest.approx(collectives.tree_all_reduce(small, n, bw, lat))
    assert collectives.tree_all_reduce(small, n, bw, lat) < collectives.ring_all_reduce(small, n, bw, lat)


def test_one_device_communicates_nothing():
    for kind in collectives.KINDS:
        assert collectives.time(kind, np.array([[1e9]]), np.array([[1.0]]), np.array([[1.0]]), cols())[0, 0] == 0


def test_inside_a_node_the_link_formulas_apply():
    c = cols()
    t = collectives.time("all_reduce", np.array([[1e9]]), np.array([[8.0]]), np.array([[1.0]]), c)[0, 0]
    assert t == pytest.approx(collectives.all_reduce(1e9, 8, 100e9, 2e-6))
    t = collectives.time("all_to_all", np.array([[1e9]]), np.array([[4.0]]), np.array([[1.0]]), c)[0, 0]
    assert t == pytest.approx(3 / 4 * 1e9 / 100e9 + 3 * 2e-6)


def test_a_group_across_nodes_is_bound_by_the_network():
    c = cols()
    one_node = collectives.time("all_reduce", np.array([[1e9]]), np.array([[8.0]]), np.array([[1.0]]), c)[0, 0]
    two_nodes = collectives.time("all_reduce", np.array([[1e9]]), np.array([[16.0]]), np.array([[1.0]]), c)[0, 0]
    # the inter-node all-reduce of each device's 1/8 share over 2 nodes at the network's 10 GB/s
    assert two_nodes > one_node + collectives.ring_all_reduce(1e9 / 8, 2, 10e9, 5e-6) * 0.99
    # a pipeline neighbour 8 ranks away is on the next node
    p = collectives.time("p2p", np.array([[1e6]]), np.array([[2.0]]), np.array([[8.0]]), c)[0, 0]
    assert p == pytest.approx(5e-6 + 1e6 / 10e9)


def test_doubling_link_bandwidth_halves_the_bandwidth_term():
    a = collectives.time("all_gather", np.array([[1e9]]), np.array([[8.0]]), np.array([[1.0]]), cols(lat=0))[0, 0]
    b = collectives.time("all_gather", np.array([[1e9]]), np.array([[8.0]]), np.array([[1.0]]),
                         cols(bw=200e9, lat=0))[0, 0]
    assert a == pytest.approx(2 * b)


def one(kind, size, n, c, stride=1.0):
    return collectives.time(kind, np.array([[size]]), np.array([[float(n)]]), np.array([[stride]]), c)[0, 0]


@pytest.mark.parametrize("n", [16, 32, 64])
def test_across_nodes_an_all_reduce_is_a_reduce_scatter_and_an_all_gather(n):
    """Hierarchical halves (in the node over the full message, between nodes on each device's 1/inner share):
    a large all-reduce (ring between nodes) costs exactly its two halves, and an all-gather never costs more
    than the all-reduce that contains it (it used to send (n - inner)/n of the message over each NIC)."""
    c = cols()
    size = 1e9
    ar, rs, ag = (one(k, size, n, c) for k in ("all_reduce", "reduce_scatter", "all_gather"))
    assert ar == pytest.approx(rs + ag, rel=1e-12)
    assert ag == rs <= ar
    nodes = n // 8
    remote = (nodes - 1) * 5e-6 + (nodes - 1) / nodes * (size / 8) / 10e9
    assert ag == pytest.approx(collectives.gather_like(size, 8, 100e9, 2e-6) + remote, rel=1e-12)


def test_h100_all_gather_over_two_nodes_is_half_its_all_reduce():
    from simulator.hardware import columns, load_hardware
    c = columns([load_hardware("h100").spec], [], [])
    ar, ag = one("all_reduce", 1e9, 16, c), one("all_gather", 1e9, 16, c)
    assert ag == pytest.approx(ar / 2, rel=1e-9) and ar == pytest.approx(6.42e-3, rel=0.01)


def test_all_to_all_across_nodes_sends_the_remote_share_over_each_nic():
    c = cols()
    t = one("all_to_all", 1e9, 16, c)
    assert t == pytest.approx(collectives.gather_like(1e9 / 2, 8, 100e9, 2e-6) + 5e-6 + 8 / 16 * 1e9 / 10e9)


def test_a_device_without_a_network_costs_its_collectives_without_numpy_warnings():
    c = cols(net_bw=0.0, net_lat=0.0)  # how the columns give an absent network
    with np.errstate(all="raise"):
        for kind in collectives.KINDS:
            for size in (0.0, 1e6):
                assert np.isfinite(one(kind, size, 8, c))


def test_the_links_efficiency_scales_the_bandwidth_a_collective_sees():
    """interconnect.efficiency (NCCL's protocol overhead on NVLink: 370 of 450 GB/s on H100) divides the
    bandwidth term of every collective inside a node, with the `achievable` term; all-reduce has its own
    all_reduce_efficiency where the switches reduce in the network (NVLink SHARP); the bare roofline keeps the line
    rate."""
    import simulator
    from simulator.engine import ROOFLINE
    over = {"prompt_tokens": 512, "output_tokens": 1}

    def comm(hw_set, terms=None):
        kw = {"terms": terms} if terms else {}
        return simulator.run("llama2-7b", "h100", over, hw_set, parallel="tp=2", **kw).by_category()["comm"]["time_s"]

    both = {e: comm({"interconnect.efficiency": e, "interconnect.all_reduce_efficiency": e}) for e in (0.5, 1.0)}
    lat = {e: comm({"interconnect.efficiency": e, "interconnect.all_reduce_efficiency": e,
                    "interconnect.bandwidth": 1e30}) for e in (0.5, 1.0)}
    # the bandwidth part doubles at half the efficiency; the latency part does not move
    assert both[0.5] - lat[0.5] == pytest.approx(2 * (both[1.0] - lat[1.0]), rel=1e-9)
    # tensor parallelism's collectives are all-reduces (and one small all-gather of the logits): on H100 they
    # follow all_reduce_efficiency
    assert comm({"interconnect.efficiency": 0.5}) == pytest.approx(comm({"interconnect.efficiency": 1.0}), rel=1e-3)
    assert comm({"interconnect.all_reduce_efficiency": 0.5}) > 1.3 * comm({"interconnect.all_reduce_efficiency": 1.0})
    roof = {e: comm({"interconnect.efficiency": e, "interconnect.all_reduce_efficiency": e}, ROOFLINE)
            for e in (0.5, 1.0)}
    assert roof[0.5] == roof[1.0]
