"""Collective communication on a two-level topology: devices in a node joined by the interconnect (NVLink,
Infinity Fabric, ICI), nodes joined by the network (InfiniBand, RoCE).

Every cost is the alpha-beta model of Thakur, Rabenseifner and Gropp, "Optimization of Collective Communication
Operations in MPICH" (IJHPCA 2005): a latency `alpha` per algorithm step plus bytes / bandwidth, where the
bandwidth is the per-device, per-direction link rate. For n devices and a message of S bytes:
    ring all-reduce      2(n-1) alpha + 2(n-1)/n S / B     (reduce-scatter then all-gather, each n-1 steps)
    tree all-reduce      2 ceil(log2 n) alpha + 2 S / B    (NCCL's double binary tree: full bandwidth, log steps;
                                                            "Massively Scale Your Deep Learning Training with
                                                            NCCL 2.4", NVIDIA developer blog, 2019)
    all-gather           (n-1) alpha + (n-1)/n S / B       (S: the gathered tensor)
    reduce-scatter       (n-1) alpha + (n-1)/n S / B       (S: the tensor before scattering)
    all-to-all           (n-1) alpha + (n-1)/n S / B       (S: one device's buffer; it keeps 1/n of it)
    point-to-point       alpha + S / B
An all-reduce takes the cheaper of ring and tree, as NCCL's tuner picks per message size.

Across nodes the collectives are hierarchical (NCCL's ring and tree both cross the network once per node): the
part inside each node runs on the interconnect and the part between nodes on the network, one NIC per device.
Everything is numpy and broadcasts over design points (rows) and collectives (columns).
"""
from __future__ import annotations

import numpy as np

KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "p2p")


def ring_all_reduce(size, n, bandwidth, latency):
    """Seconds for a ring all-reduce of `size` bytes over `n` devices on one link level."""
    n = np.asarray(n, dtype=np.float64)
    return np.where(n > 1, 2.0 * (n - 1) * latency + 2.0 * (n - 1) / np.maximum(n, 1) * size / bandwidth, 0.0)


def tree_all_reduce(size, n, bandwidth, latency):
    """Seconds for a double-binary-tree all-reduce (reduce up the tree, broadcast down)."""
    n = np.asarray(n, dtype=np.float64)
    steps = np.ceil(np.log2(np.maximum(n, 1.0)))
    return np.where(n > 1, 2.0 * steps * latency + 2.0 * size / bandwidth, 0.0)


def all_reduce(size, n, bandwidth, latency):
    return np.minimum(ring_all_reduce(size, n, bandwidth, latency), tree_all_reduce(size, n, bandwidth, latency))


def gather_like(size, n, bandwidth, latency):
    """All-gather, reduce-scatter and all-to-all: n - 1 steps, each moving 1/n of `size` per device."""
    n = np.asarray(n, dtype=np.float64)
    return np.where(n > 1, (n - 1) * latency + (n - 1) / np.maximum(n, 1) * size / bandwidth, 0.0)


def p2p(size, n, bandwidth, latency):
    n = np.asarray(n, dtype=np.float64)
    return np.where(n > 1, latency + size / bandwidth, 0.0)


ONE_LEVEL = {"all_reduce": all_reduce, "all_gather": gather_like, "reduce_scatter": gather_like,
             "all_to_all": gather_like, "p2p": p2p}


def placement(n, stride, devices_per_node):
    """(devices of the group inside one node, nodes the group spans) for a group of `n` devices whose members
    are `stride` ranks apart, ranks filling a node before the next (the usual launcher order, which puts tensor
    parallelism, stride 1, inside a node)."""
    n = np.asarray(n, dtype=np.float64)
    per_node = np.clip(np.floor(devices_per_node / np.maximum(stride, 1.0)), 1.0, n)
    return per_node, np.ceil(n / per_node)


def time(kind: str, size, n, stride, cols: dict):
    """Seconds for one collective of `kind` over a group of `n` devices (`stride` ranks apart), per design
    point: `size` bytes as the one-level formulas take it, `cols` the engine's hardware columns ([P] each)."""
    bw, lat = cols["link_bandwidth"][:, None], cols["link_latency"][:, None]
    net_bw, net_lat = cols["network_bandwidth"][:, None], cols["network_latency"][:, None]
    # a device without a network (its column 0) never has a group across nodes (parallel.check_links refuses
    # one), but both branches below are computed: NaN, not a division by zero, stands in for the absent link
    net_bw = np.where(net_bw > 0, net_bw, np.nan)
    inner, nodes = placement(n, stride, cols["devices_per_node"][:, None])
    one = ONE_LEVEL[kind]
    if kind == "all_reduce":
        # reduce-scatter in the node, all-reduce of each device's 1/inner share across nodes, all-gather back
        local = 2.0 * gather_like(size, inner, bw, lat)
        local = np.where(nodes > 1, local, one(size, inner, bw, lat))
        return local + np.where(nodes > 1, one(size / inner, nodes, net_bw, net_lat), 0.0)
    if kind == "p2p":  # a stage boundary inside a node or across nodes
        return np.where(nodes > 1, p2p(size, 2.0, net_bw, net_lat), p2p(size, n, bw, lat))
    if kind in ("all_gather", "reduce_scatter"):
        # hierarchical, as the all-reduce's halves: inside each node over the full S (inner devices), and between
        # nodes each device exchanges its 1/inner share with its peers of the other nodes, one NIC each (an
        # all-gather gathers across nodes first, a reduce-scatter reduces in the node first). So an all-reduce
        # costs a reduce-scatter plus an all-gather, or less where the tree wins
        return one(size, inner, bw, lat) + np.where(nodes > 1, one(size / inner, nodes, net_bw, net_lat), 0.0)
    # all-to-all: every device sends (n - inner)/n of its buffer to devices on other nodes through its own NIC
    local = one(size * inner / n, inner, bw, lat)
    remote = np.where(nodes > 1, (nodes - 1) * net_lat + (n - inner) / n * size / net_bw, 0.0)
    return local + remote
