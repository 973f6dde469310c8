"""Multi-device parallel plans: how a plan splits a model's kernels over devices and which collectives it adds.

A plan is a mapping decision (the model files know nothing of it): `tp=2,pp=1,dp=1,sp=4,cfg=2,ep=1`, each degree
1 when omitted, their product the number of devices (with `ring=N`, ring attention, beside them). Ranks are laid
out tensor-parallel innermost, then sequence (Ulysses, then ring), CFG, expert, data and pipeline (Megatron-LM's
order, which keeps the chattiest group inside a node). `rewrite` takes the single-device kernel table and returns one
device's share of it plus the collectives:

- tensor parallelism (Megatron-LM, Shoeybi et al. 2019, section 3): a linear reading a replicated tensor is split
  by columns (its output is sharded by heads/features), ops on sharded tensors run on their shard, and a linear
  reading a sharded tensor is split by rows and ends in an all-reduce. Regions that do not close (a sharded
  tensor reaching a norm over the full width or an op mixing it with a replicated tensor) stay replicated; a
  sharded tensor nobody reads (an LM head's logits) is all-gathered. For a transformer block this finds exactly
  Megatron's split: QKV and the MLP's first linears by columns, the attention output and the MLP's last linear
  by rows, two all-reduces per block.
- sequence parallelism (DeepSpeed-Ulysses, Jacobs et al. 2023, arXiv 2309.14509, section 3): every op of a stage
  without an iteration variable runs on 1/sp of the tokens; each self-attention exchanges its q, k, v and output
  by all-to-all (four per attention layer) to attend over the whole sequence with 1/sp of the heads.
  Cross-attention (keys from the replicated text) and temporal attention need no exchange.
- ring attention (context parallelism; Liu et al. 2023, "Ring Attention with Blockwise Transformers for
  Near-Infinite Context", arXiv 2310.01889, section 3 and Algorithm 1; xDiT's USP `ring_degree`): `ring=N` is a
  degree beside the contract's six. Every op of a stage without an iteration variable runs on 1/N of the tokens,
  as under Ulysses; each self-attention keeps its S/N queries and passes its own key and value block around the
  ring in N - 1 point-to-point steps (per step the local K and V, the paper's "2cd bytes each"), so a device
  computes (S/N)·S of the attention in N blockwise flash-attention calls and sends (N - 1)/N of the full K and V
  per layer. With `sp` too (USP, Fang and Zhao 2024, arXiv 2405.07719) the sp x ring devices share the sequence:
  Ulysses all-to-alls inside each sp group, then the ring over 1/sp of the heads. Whether the sends hide behind
  the blockwise compute is the stack's `comm_overlap`, as for every collective; xDiT's ring kernel does issue
  them asynchronously before each block (xfuser/core/long_ctx_attention/ring/ring_flash_attn.py at xDiT
  commit 0058bb0: send_recv, commit, flash-attention, wait), while the eager and compile stacks say false
  (stacks/eager.yaml, stacks/compile.yaml), so there the sends are added in full. After each block the device
  merges the block's output and log-sum-exp into its running output in fp32 (`ring_merge`: PyTorch's
  _SDPAMerger, which xDiT's USP runs for Flux), a chain of elementwise ops over its S/N-token output per step:
  one Python call each under a stack that does not fuse, one kernel per step under one that does. Not modelled:
  the copy of K and V into one send buffer per step (torch.cat in _templated_ring_attention), and causal load
  imbalance (the causal FLOPs are split evenly, as striped/zig-zag ring attention does).
- CFG parallelism (xDiT, Fang et al. 2024, arXiv 2411.01738): the conditional and unconditional halves of the
  guidance batch run on different devices; the halves are all-gathered where the batch is combined.
- data parallelism: each replica runs batch / dp; no communication at inference.
- expert parallelism for mixture-of-experts layers (GShard, Lepikhin et al. 2020, arXiv 2006.16668;
  DeepSpeed-MoE, Rajbhandari et al. 2022, arXiv 2201.05596, section 5.2): the layout is DeepSpeed-MoE's, ep
  groups inside dp. Attention and every dense op run data-parallel over the ep devices (batch / ep sequences
  each, weights replicated, KV cache split), each device holds E / ep of every MoE layer's experts, and two
  all-to-alls per MoE layer dispatch each device's routed token rows to their experts' devices and combine the
  outputs back. Under uniform routing a device runs T k / ep rows over its experts and reads the weights of
  the touched ones among its own. Combined with dp and pp; with tp, sp, ring or cfg it is refused (not modelled).
- pipeline parallelism: layers in pp stages; one request passes every stage in turn (no faster), with one
  point-to-point transfer of the activations at each stage boundary; weights and KV cache are split pp ways.
Convolutions are split only by the data-like degrees (sp: by patches, as DistriFusion/xDiT's patch-parallel
VAE; cfg, dp: by batch); halo exchanges of patch parallelism are not modelled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .dtypes import BYTES
from .errors import SpecError
from .ops import CATEGORIES, UNITS, experts_touched, numel

CONTRACT = ("tp", "pp", "dp", "sp", "cfg", "ep")  # the plan keys
DEGREES = CONTRACT + ("ring",)  # ring attention (context parallelism), the second half of xDiT's USP
MAX_DEVICES = 65536


@dataclass(frozen=True)
class Plan:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    sp: int = 1
    cfg: int = 1
    ep: int = 1
    ring: int = 1

    @property
    def devices(self) -> int:
        return math.prod(getattr(self, d) for d in DEGREES)

    def __str__(self) -> str:
        """The degrees above 1 (`tp=2,sp=4`); `tp=1` for one device."""
        return ",".join(f"{d}={getattr(self, d)}" for d in DEGREES if getattr(self, d) > 1) or "tp=1"

    def to_dict(self) -> dict:
        return {d: getattr(self, d) for d in DEGREES} | {"devices": self.devices}

    def stride(self, degree: str) -> int:
        """Ranks between consecutive members of a `degree` group (tp innermost, then sp, ring, cfg, ep, dp, pp).
        Ulysses inside ring, as xDiT's USP lays them out (yunchang's set_seq_parallel_pg with use_ulysses_low),
        so an sp x ring group is sp x ring consecutive sequence ranks."""
        order = ("tp", "sp", "ring", "cfg", "ep", "dp", "pp")  # ep groups inside dp, as DeepSpeed-MoE forms them
        return math.prod(getattr(self, d) for d in order[:order.index(degree)])


SINGLE = Plan()


def parse_plan(text: str | None = None, devices: int | None = None) -> Plan:
    """`tp=2,sp=4` (omitted degrees 1); `devices` alone means tp = devices; with both, their product must be
    `devices`."""
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int) or
                                not 1 <= devices <= MAX_DEVICES):
        raise SpecError(f"--devices {devices}: expected a whole number of devices from 1 to {MAX_DEVICES}")
    if not text:
        return Plan(tp=devices or 1)
    degrees = {}
    for part in str(text).split(","):
        key, sep, value = part.strip().partition("=")
        key = key.strip()
        if not sep or key not in DEGREES:
            raise SpecError(f"--parallel {text}: expected DEGREE=N items separated by commas, degrees "
                            f"{', '.join(DEGREES)}; got '{part.strip()}'")
        if key in degrees:
            raise SpecError(f"--parallel {text}: {key} given twice")
        try:
            n = int(value.strip())
        except ValueError:
            raise SpecError(f"--parallel {text}: {key}={value.strip()} is not a whole number") from None
        if not 1 <= n <= MAX_DEVICES:
            raise SpecError(f"--parallel {text}: {key}={n} must be from 1 to {MAX_DEVICES}")
        degrees[key] = n
    plan = Plan(**degrees)
    if devices is not None and plan.devices != devices:
        raise SpecError(f"plan {plan}: the degrees multiply to {plan.devices} devices, not --devices {devices}")
    if plan.devices > MAX_DEVICES:
        raise SpecError(f"plan {plan}: {plan.devices} devices is more than {MAX_DEVICES}")
    return plan


def plans_for_counts(text: str | None, counts: list) -> list[Plan]:
    """One plan per count of a `--devices` list (compare, plot serving): `text`'s degrees, with tp filling the
    rest of each count (tp = count / the product of the others); a `text` that sets tp itself must multiply to
    every count. Without `text`, tensor parallel over each count."""
    if not text:
        return [parse_plan(None, n) for n in counts]
    base = parse_plan(text)
    tp_given = any(part.partition("=")[0].strip() == "tp" for part in str(text).split(","))
    plans = []
    for n in counts:
        parse_plan(None, n)  # the count itself: a whole number in range
        if tp_given and base.devices != n:
            raise SpecError(f"plan {base}: the degrees multiply to {base.devices} devices, not --devices {n} "
                            f"(leave tp out of --parallel and it fills each device count)")
        if n % base.devices:
            raise SpecError(f"plan {base}: its degrees multiply to {base.devices} devices, which does not divide "
                            f"--devices {n} (tp fills the rest of each device count)")
        plans.append(base if tp_given else replace(base, tp=n // base.devices))
    return plans


def check_links(plan: Plan, spec, hw_name: str) -> None:
    """A plan on more than one device needs the device's links; the older total-bandwidth field is not enough."""
    if plan.devices == 1:
        return
    if spec.interconnect is None:
        how = ""
        if spec.interconnect_bandwidth:
            how = (f" (its interconnect_bandwidth {spec.interconnect_bandwidth:.4g} B/s is the total of both "
                   f"directions: write interconnect: {{bandwidth: {spec.interconnect_bandwidth / 2:.4g}, "
                   f"latency_s: ..., devices_per_node: ...}})")
        raise SpecError(f"plan {plan}: hardware '{hw_name}' gives no interconnect: {{bandwidth, latency_s, "
                        f"devices_per_node}} for collectives{how}")
    if plan.devices > spec.interconnect.devices_per_node and spec.network is None:
        raise SpecError(f"plan {plan}: {plan.devices} devices span more than one node of "
                        f"{spec.interconnect.devices_per_node} on hardware '{hw_name}', which gives no "
                        f"network: {{bandwidth, latency_s}}")


# ------------------------------------------------------------------------------------------ tensor parallel

# ops that work on their shard when their activation inputs are all sharded by heads/features
_SHARD_LOCAL = {"attention", "matmul", "softmax", "rope", "kv_cache", "reshape", "transpose", "split", "slice",
                "concat", "copy", "identity"}
_ORIGIN_FREE = {"embedding", "parameter"}  # outputs replicated whatever they read
# split by columns or rows like a linear (Megatron/vLLM split every expert's FFN the same way under TP)
LINEAR = {"linear", "moe_linear"}


def _bytes(stage, name: str) -> float:
    t = stage.tensors[name]
    return float(numel(t.shape) * BYTES[t.dtype])


def tensor_parallel(stage) -> tuple[dict, list]:
    """Megatron roles of a stage's ops: {op index: 'col' | 'row' | 'split'} (others replicated), and the tensors
    left sharded that nobody reads (to be all-gathered)."""
    disabled: set = set()
    while True:
        state: dict = {}  # storage -> frozenset of the column-split linears it descends from (absent: replicated)
        modes: dict = {}
        conflicts: set = set()
        read: set = set()
        widths: dict = {}
        for op in stage.ops:
            ins = [stage.tensors[t].storage for t in op.inputs]
            read.update(ins)
            origins = [state.get(s) for s in ins]
            sharded = frozenset().union(*(o for o in origins if o))
            out_state = None
            if op.kind in _ORIGIN_FREE or not op.inputs:
                pass
            elif op.kind in LINEAR:
                if sharded:
                    modes[op.index] = "row"
                elif op.index not in disabled:
                    modes[op.index] = "col"
                    out_state = frozenset({op.index})
                    widths[op.index] = stage.tensors[op.outputs[0]].shape[-1]
            elif sharded:
                width = min(widths[o] for o in sharded)
                local = op.kind in _SHARD_LOCAL or op.category == "elementwise" or (
                    op.category == "norm" and stage.tensors[op.inputs[0]].shape[-1] < width)  # a per-head norm
                if local and all(origins):
                    modes[op.index] = "split"
                    out_state = sharded
                else:
                    conflicts |= sharded
            for t in op.outputs:
                s = stage.tensors[t].storage
                if out_state:
                    state[s] = out_state
                else:
                    state.pop(s, None)
        if not conflicts:
            unread = [s for s, o in state.items() if o and s not in read]
            return modes, unread
        disabled |= conflicts


# ------------------------------------------------------------------------------------------------ rewrite

@dataclass
class Sharding:
    """What a plan did to one model: per-device memory and the collectives it added (for reports)."""
    plan: Plan
    weight_bytes: float = 0.0
    activation_bytes: float = 0.0
    kv_cache_bytes: float = 0.0
    peak_memory_bytes: float = 0.0
    collectives: dict = field(default_factory=dict)  # (stage, kind, degree) -> runs in one inference


def _head_dim(op) -> int:
    return max(int(op.result.variants["fused"][0].gemm[3]) if op.result.variants else 1, 1)


def _attention_heads(stage, op) -> tuple[int, int]:
    d = _head_dim(op)
    q, k = (stage.tensors[t].shape[-1] for t in op.inputs[:2])
    return q // d, k // d


def _cfg_on(model) -> bool:
    return bool(model.params.get("cfg"))


def check_plan(plan: Plan, model) -> None:
    """The model-level constraints of a plan, each refused with the plan and the constraint."""
    if plan.ep > 1:
        _check_experts(plan, model)
    if plan.cfg > 2:
        raise SpecError(f"plan {plan}: cfg={plan.cfg}, but classifier-free guidance has two branches (cfg=2)")
    if plan.cfg == 2 and not _cfg_on(model):
        why = "switched off (cfg=false)" if "cfg" in model.params else "not used by this model"
        raise SpecError(f"plan {plan}: cfg=2 runs the guidance branches on two devices, but guidance is {why} "
                        f"in '{model.id}'")
    batch = model.params.get("batch")
    if plan.dp > 1 and isinstance(batch, int) and batch % plan.dp:
        raise SpecError(f"plan {plan}: dp={plan.dp} does not divide the batch of {batch}")
    if plan.ep > 1 and isinstance(batch, int) and batch % (plan.dp * plan.ep):
        raise SpecError(f"plan {plan}: ep={plan.ep} splits the batch like dp (each device routes its own "
                        f"sequences), and dp x ep = {plan.dp * plan.ep} does not divide the batch of {batch}")
    if plan.ring > 1:
        _check_ring(plan, model)
    if plan.pp > 1:
        layers = max((op.count for s in model.stages for op in s.ops), default=1)
        if plan.pp > layers:
            raise SpecError(f"plan {plan}: pp={plan.pp} is more than the {layers} layers of '{model.id}'")


def experts(stage, op) -> int:
    """The expert count of a `moe_linear` op, from its parameters: E x d x n (+ n each with a bias). Exact while
    E <= d (E x d is then never a multiple of d + 1), which every MoE model has (Mixtral 8 experts at d 4096,
    DeepSeek-V3 256 at 2048)."""
    d = stage.tensors[op.inputs[0]].shape[-1]
    n = stage.tensors[op.outputs[0]].shape[-1]
    params = op.result.params
    return params // (d * n) if params % (d * n) == 0 else params // (n * (d + 1))


def _check_experts(plan: Plan, model) -> None:
    """Expert parallelism needs experts that ep divides, and is modelled over the data dimension only."""
    moe = [(s, op) for s in model.stages for op in s.ops if op.kind == "moe_linear"]
    if not moe:
        raise SpecError(f"plan {plan}: ep={plan.ep} needs mixture-of-experts layers, and model "
                        f"'{model.id}' has none")
    others = [f"{d}={getattr(plan, d)}" for d in ("tp", "sp", "ring", "cfg") if getattr(plan, d) > 1]
    if others:
        raise SpecError(f"plan {plan}: ep with {', '.join(others)} is not modelled (ep runs attention data-parallel, "
                        f"as DeepSpeed-MoE does); combine ep with dp or pp, or split the experts with tp alone")
    for stage, op in moe:
        e = experts(stage, op)
        if e % plan.ep:
            raise SpecError(f"plan {plan}: ep={plan.ep} does not divide the {e} experts of {stage.name}/{op.name}")


def _check_ring(plan: Plan, model) -> None:
    """Ring attention needs self-attention over a sequence outside the autoregressive steps, and the sp x ring
    devices must split that sequence evenly: every self-attention of the stage doing most of the attention work
    (tokens squared x layers x runs: the DiT's or the LLM prefill's, not a text encoder's 77 tokens or a VAE's
    one mid-block attention, which are split as under Ulysses). A joint attention's text tokens count: xDiT keeps
    them whole on every device, so this is stricter than xDiT where the image tokens divide and the text does
    not."""
    seq = plan.sp * plan.ring
    what = f"sp x ring = {seq}" if plan.sp > 1 else f"ring={plan.ring}"
    found: dict = {}  # stage name -> (attention work, [(tokens, op)] of its self-attentions)
    for stage in model.stages:
        if stage.iteration is None:
            for op in stage.ops:
                if op.kind == "attention" and op.role not in ("cross", "temporal"):
                    tokens = stage.tensors[op.inputs[0]].shape[-2]
                    work, ops = found.get(stage.name, (0, []))
                    found[stage.name] = (work + tokens * tokens * op.count * stage.repeat, ops + [(tokens, op)])
    if not found:
        raise SpecError(f"plan {plan}: ring={plan.ring} passes keys and values around a ring for self-attention "
                        f"over a sequence, and '{model.id}' has none outside its autoregressive steps")
    name, (_, ops) = max(found.items(), key=lambda kv: kv[1][0])
    for tokens, op in ops:
        if tokens % seq:
            hint = " (its text tokens included)" if op.role == "joint" else ""
            raise SpecError(f"plan {plan}: {what} does not divide the {tokens}-token sequence{hint} of "
                            f"{name}/{op.name}")


def rewrite(table, model, plan: Plan, comm_overlap: bool = False, stack=None):
    """One device's share of `table` (a single-device KernelTable of `model`) under `plan`, with the collective
    rows added; its `sharding` field is the `Sharding` record. `stack` (the StackSpec `table` was lowered with)
    says how ring attention's merge runs: unfused or fused, and its host cost per call."""
    check_plan(plan, model)
    if plan.ring > 1 and stack is None:
        raise ValueError("rewrite: a ring plan needs the stack (how its output merge runs)")
    n_ops = len(table.ops)
    comp = np.ones(n_ops)       # divisor of each op's FLOPs
    wdiv = np.ones(n_ops)       # divisor of its weight bytes
    adiv = np.ones(n_ops)       # divisor of its activation bytes
    keep_in = np.zeros(n_ops)   # activation bytes not divided by tp (a column split reads the whole input)
    gemm_div = np.ones((n_ops, 4))
    weights = np.zeros(n_ops)   # weight bytes each op owns
    read = np.zeros(n_ops)      # weight bytes one run of it reads (a MoE layer: its touched experts')
    comm = []                   # (stage, kind, group, stride, bytes, runs)
    record = Sharding(plan)
    tp, sp, cfg, dp = plan.tp, plan.sp, plan.cfg, plan.dp
    seq = sp * plan.ring        # devices sharing one sequence: Ulysses x ring
    calls = np.ones(n_ops)      # kernels of an op per run (ring attention: one blockwise call per ring step)
    merges = []                 # (op id, stage, merge kernels, runs) of each ring attention op
    per_stage_tp = {}
    core = backbone(model)
    for si, stage in enumerate(model.stages):
        if tp > 1:
            per_stage_tp[si] = tensor_parallel(stage)
            if stage.name not in core and not _heads_divide(stage, per_stage_tp[si][0], tp):
                per_stage_tp[si] = ({}, [])  # e.g. a VAE's one-head attention: the stage runs whole everywhere
    for oid, (si, op) in enumerate(table.ops):
        stage = model.stages[si]
        runs = op.count * stage.repeat
        out_shape = op.result.outputs[0] if op.result.outputs else ()
        weights[oid] = read[oid] = op.weight_bytes
        data = 1.0  # divisor from the data-like degrees
        data_axis = 1 if op.kind != "attention" else 0
        if seq > 1 and stage.iteration is None and len(out_shape) >= 3:
            data *= seq
        if cfg > 1 and out_shape and out_shape[0] % cfg == 0:
            data *= cfg
        replicas = dp * plan.ep  # ep splits the batch as dp does: DeepSpeed-MoE's expert groups inside dp
        if replicas > 1 and out_shape and out_shape[0] % replicas == 0:
            data *= replicas
        mode = per_stage_tp.get(si, ({}, []))[0].get(op.index) if tp > 1 else None
        t = tp if mode else 1
        comp[oid] = t * data
        wdiv[oid] = t
        adiv[oid] = data
        gemm_div[oid, data_axis] *= data
        if op.kind == "moe_linear":
            out = stage.tensors[op.outputs[0]].shape  # [..., top_k, n]
            e = experts(stage, op)
            # the kernel reads only the touched experts' weights (ops.moe_linear), not all it owns
            read[oid] = op.weight_bytes * experts_touched(e, out[-2], numel(out[:-2])) / e
            if plan.ep > 1 and data % plan.ep == 0:
                # a device holds E/ep experts and runs them over the rows routed to them from every device of
                # its group: T k / ep rows under uniform routing, as many per expert as on one device, so ep
                # divides the touched experts (the GEMM's batch axis) and their weights, not the rows per expert
                wdiv[oid] *= plan.ep
                gemm_div[oid, data_axis] /= plan.ep
                gemm_div[oid, 0] *= plan.ep
        if mode == "col":
            gemm_div[oid, 2] *= tp
            keep_in[oid] = _bytes(stage, op.inputs[0]) / data
        elif mode == "row":
            gemm_div[oid, 3] *= tp
            keep_in[oid] = _bytes(stage, op.outputs[0]) / data
            comm.append((si, "all_reduce", tp, plan.stride("tp"), _bytes(stage, op.outputs[0]) / data, runs))
        elif mode == "split":
            gemm_div[oid, 0] *= tp
        if op.kind == "attention" and (mode == "split" or (seq > 1 and data % seq == 0 and stage.iteration is None)):
            heads, kv_heads = _attention_heads(stage, op)
            need = (tp if mode == "split" else 1) * (sp if stage.iteration is None else 1)
            if (heads % need or kv_heads % need) and mode != "split" and stage.name not in core:
                # too few heads for Ulysses outside the backbone (a VAE's one-head attention): each device
                # attends with its 1/(sp x ring) of the queries over the whole sequence, K and V all-gathered
                # (DistriFusion, Li et al. 2024, arXiv 2402.19481, section 4; xDiT's patch-parallel VAE). The
                # split moves from heads to queries; K and V reads are counted at 1/sp of the gathered bytes
                # (this attention is compute-bound: thousands of tokens at head dim 512)
                gemm_div[oid, 0] /= data
                gemm_div[oid, 1] *= data
                for name in op.inputs[1:3]:
                    comm.append((si, "all_gather", seq, plan.stride("sp"), _bytes(stage, name) * seq / data, runs))
                continue
            if heads % need or kv_heads % need:
                what = f"tp={tp}" if sp == 1 or stage.iteration is not None else f"tp x sp = {need}"
                raise SpecError(f"plan {plan}: {what} does not divide the {heads} query / {kv_heads} key-value "
                                f"heads of {stage.name}/{op.name}")
            if sp > 1 and stage.iteration is None and op.role not in ("cross", "temporal"):
                for name in (*op.inputs[:3], op.outputs[0]):  # Ulysses: q, k, v in, the output back
                    size = _bytes(stage, name) / (t * data)
                    comm.append((si, "all_to_all", sp, plan.stride("sp"), size, runs))
            if plan.ring > 1 and stage.iteration is None and data % seq == 0 and op.role != "temporal":
                # ring attention: the queries are split, not the heads (temporal attention's sequence, the
                # frames, is not split at all: its tokens are the batch axis here)
                gemm_div[oid, 0] /= plan.ring
                gemm_div[oid, 1] *= plan.ring
                if op.role != "cross":  # cross-attention's keys (the text) are on every device already
                    # N blockwise calls, N - 1 sends of the local K and V block to the next device in the ring
                    # (Liu et al. 2023, Algorithm 1); K and V reads stay at 1/N of the whole, as in the fallback
                    calls[oid] = plan.ring
                    out = stage.tensors[op.outputs[0]]
                    merges.append((oid, si, ring_merge(numel(out.shape) / (t * data), _head_dim(op), out.dtype,
                                                       plan.ring, stack.fusion != "none"), runs))
                    size = sum(_bytes(stage, name) for name in op.inputs[1:3]) / (t * data)
                    comm.append((si, "p2p", plan.ring, plan.stride("ring"), size, runs * (plan.ring - 1)))
    for si, (modes, unread) in per_stage_tp.items():
        stage = model.stages[si]
        for s in unread:  # e.g. vocabulary-parallel logits: gathered once per run of the stage
            comm.append((si, "all_gather", tp, 1, _bytes(stage, s), stage.repeat))
    if cfg > 1:
        _cfg_gathers(model, table, plan, comm)
    if plan.pp > 1:
        _pipeline_sends(model, plan, comm)
    if plan.ep > 1:
        _expert_exchanges(model, plan, comm)

    new = _scaled(table, comp, wdiv, adiv, keep_in, gemm_div, read, calls)
    new = _with_ring_merges(new, merges, stack)
    new = _with_collectives(new, comm, comm_overlap)
    for si, kind, n, _, _, runs in comm:
        key = (model.stages[si].name, kind, n)
        record.collectives[key] = record.collectives.get(key, 0) + runs
    _memory(record, model, table, plan, wdiv, weights)
    return replace(new, sharding=record)


def backbone(model) -> set:
    """Names of the stages holding the model's largest weights (the LLM's prefill and decode, a DiT's denoiser):
    the part a plan must split as asked. Text encoders and VAEs whose heads a degree does not divide run whole on
    every device (tp) or gather their keys and values (sp), as xDiT and vLLM leave them."""
    own = {s.name: s.weight_bytes for s in model.stages if not s.shares_weights_with}
    weight = {s.name: own.get(s.shares_weights_with or s.name, 0) for s in model.stages}
    top = max(weight.values(), default=0)
    return {name for name, w in weight.items() if w == top}


def _heads_divide(stage, modes: dict, tp: int) -> bool:
    """Whether tp divides the heads of every attention op the Megatron split of `stage` shards."""
    for op in stage.ops:
        if op.kind == "attention" and modes.get(op.index) == "split":
            heads, kv_heads = _attention_heads(stage, op)
            if heads % tp or kv_heads % tp:
                return False
    return True


def _cfg_gathers(model, table, plan: Plan, comm: list) -> None:
    """Where a CFG-split batch meets an op that runs on the whole batch (the guidance combination), its halves
    are all-gathered."""
    for si, stage in enumerate(model.stages):
        split_storage = set()
        for op in stage.ops:
            out = op.result.outputs[0] if op.result.outputs else ()
            whole = not (out and out[0] % plan.cfg == 0)
            for t in op.inputs:
                s = stage.tensors[t].storage
                if whole and s in split_storage:
                    comm.append((si, "all_gather", plan.cfg, plan.stride("cfg"), _bytes(stage, s),
                                 op.count * stage.repeat))
                    split_storage.discard(s)
            if not whole:
                split_storage.update(stage.tensors[t].storage for t in op.outputs)


def _expert_exchanges(model, plan: Plan, comm: list) -> None:
    """Expert parallelism's two all-to-alls per MoE layer (GShard, Lepikhin et al. 2020, arXiv 2006.16668,
    section 2.2 and Algorithm 2; DeepSpeed-MoE, Rajbhandari et al. 2022, arXiv 2201.05596, section 5.2): each
    device dispatches its tokens' routed rows (T/ep tokens x top_k x hidden) to the devices of their experts
    before the first expert GEMM, and the expert outputs come back the same way where they leave the experts
    (the weighted sum). Uniform routing keeps 1/ep of the rows local, so each moves (ep-1)/ep of that buffer
    (collectives.gather_like). Ops between expert GEMMs (SwiGLU's silu and product) run beside them."""
    data = plan.dp * plan.ep
    for si, stage in enumerate(model.stages):
        inside, sent = set(), set()  # storages on the expert side; storages already dispatched or combined
        for op in stage.ops:
            ins = [stage.tensors[t].storage for t in op.inputs]
            runs = op.count * stage.repeat
            if op.kind == "moe_linear":
                x = stage.tensors[op.inputs[0]]
                if x.storage not in inside and x.storage not in sent:  # gate and up share one dispatch
                    rows = numel(stage.tensors[op.outputs[0]].shape[:-1])
                    comm.append((si, "all_to_all", plan.ep, plan.stride("ep"),
                                 rows * x.shape[-1] * BYTES[x.dtype] / data, runs))
                    sent.add(x.storage)
            elif not (ins and op.category == "elementwise" and all(s in inside for s in ins)):
                for name, s in zip(op.inputs, ins):
                    if s in inside and s not in sent:
                        comm.append((si, "all_to_all", plan.ep, plan.stride("ep"), _bytes(stage, name) / data,
                                     runs))
                        sent.add(s)
                continue
            inside.update(stage.tensors[t].storage for t in op.outputs)


def _pipeline_sends(model, plan: Plan, comm: list) -> None:
    """pp - 1 stage boundaries per pass through a stage's repeated layers, each sending the activations that
    enter a layer (the first input of the first op of the most repeated block)."""
    for si, stage in enumerate(model.stages):
        layers = max((op.count for op in stage.ops), default=1)
        if layers < plan.pp or not stage.ops:
            continue
        first = next(op for op in stage.ops if op.count == layers and op.inputs)
        size = _bytes(stage, first.inputs[0]) / (plan.sp * plan.ring * plan.cfg * plan.dp * plan.ep)
        comm.append((si, "p2p", 2, plan.stride("pp"), size, (plan.pp - 1) * stage.repeat))


# ------------------------------------------------------------------------------ ring attention's output merge
#
# After each blockwise attention call a device folds the block's output and log-sum-exp into its running output
# (Liu et al. 2023, Algorithm 1). The published xDiT Flux.1 cases ran that through PyTorch's own ring attention:
# at the commit that added their table (xDiT 8275240, docs/performance/flux.md, 2024-11-28)
# xFuserFluxAttnProcessor2_0 calls xfuser/model_executor/layers/usp.py's USP whenever torch >= 2.5 and the text
# splits over the devices (pipeline_flux.py; 256 text tokens do), and its ring_attn calls
# torch.distributed.tensor.experimental._attention._templated_ring_attention with
# aten._scaled_dot_product_flash_attention (xDiT 0058bb0 still routes Flux there). That is plain Python: each call
# below is one dispatched op under eager, and nothing in usp.py keeps it from torch.compile (unlike the yunchang
# path, xfuser/core/long_ctx_attention/hybrid/attn_layer.py's @torch.compiler.disable forward, taken with pipeline
# parallelism, text that does not split, or torch < 2.5). The calls are PyTorch 2.5's _SDPAMerger, the version
# whose `_templated_ring_attention(group, op, query, key, value, ...)` usp.py calls for torch < 2.6: `step` casts
# each block's output and log-sum-exp to fp32 (_convert_to_f32 = True), `_merge_one` merges from the second block
# on (new_lse = lse + log(1 + exp(block_lse - lse)), out = exp(lse - new_lse) * out + exp(block_lse - new_lse) *
# block_out), and `results` casts the output back to the attention's dtype; the flash kernel's log-sum-exp is fp32
# already, so its casts return the tensor itself (a dispatch, no kernel). Later PyTorch and yunchang's
# update_out_and_lse (feifeibear/long-context-attention yunchang/ring/utils.py at 56118e0, from
# zhuzilin/ring-flash-attention PR 34) use the sigmoid form instead, out - sigmoid(block_lse - lse) * (out -
# block_out): three passes over the output as here (32 against 28 bytes per element in fp32). yunchang runs it
# inside a @torch.jit.script function, whose ops the TorchScript executor runs, fused or not by its fuser: not
# modelled here.


@dataclass(frozen=True)
class MergeCall:
    """One framework call of the merge. `on`: the elements it runs over, `out` (one per element of the device's
    attention output) or `lse` (one per query row and head: the output's elements / head dim). `read`: the dtype
    of each operand read per element (`op`: the attention's own dtype); `rows`: fp32 operands of one value per
    row that an `out` call broadcasts (read once per row). `write`: the dtype written, '' for a call that
    launches no kernel (a view); a cast (no FLOPs) to the dtype its operand has launches none either. FLOPs per
    element as ops.py counts them (an exponential or logarithm as one)."""
    source: str
    on: str
    read: tuple = ()
    write: str = ""
    rows: int = 0
    flops: int = 0


# _SDPAMerger.step, at every ring step
MERGE_STEP = (
    MergeCall("out.to(torch.float32)", "out", ("op",), "fp32"),
    MergeCall("lse.to(torch.float32)", "lse"),             # fp32 already: returns the tensor
    MergeCall("block_lse.unsqueeze(dim=-1)", "lse"),       # a view
)
# _SDPAMerger._merge_one, from the second ring step on
MERGE_FOLD = (
    MergeCall("block_lse - self._lse", "lse", ("fp32", "fp32"), "fp32", flops=1),
    MergeCall("torch.exp(...)", "lse", ("fp32",), "fp32", flops=1),
    MergeCall("1 + torch.exp(...)", "lse", ("fp32",), "fp32", flops=1),
    MergeCall("torch.log(...)", "lse", ("fp32",), "fp32", flops=1),
    MergeCall("new_lse = self._lse + torch.log(...)", "lse", ("fp32", "fp32"), "fp32", flops=1),
    MergeCall("self._lse - new_lse", "lse", ("fp32", "fp32"), "fp32", flops=1),
    MergeCall("torch.exp(self._lse - new_lse)", "lse", ("fp32",), "fp32", flops=1),
    MergeCall("torch.exp(...) * self._out", "out", ("fp32",), "fp32", rows=1, flops=1),
    MergeCall("block_lse - new_lse", "lse", ("fp32", "fp32"), "fp32", flops=1),
    MergeCall("torch.exp(block_lse - new_lse)", "lse", ("fp32",), "fp32", flops=1),
    MergeCall("torch.exp(...) * block_out", "out", ("fp32",), "fp32", rows=1, flops=1),
    MergeCall("... + ...", "out", ("fp32", "fp32"), "fp32", flops=1),
)
# _SDPAMerger.results, once after the ring
MERGE_RESULT = (
    MergeCall("self._lse.squeeze(-1)", "lse"),             # a view
    MergeCall("out.to(self._out_dtype)", "out", ("fp32",), "op"),
    MergeCall("lse.to(self._lse_dtype)", "lse"),           # fp32 already
)
LSE_BYTES = BYTES["fp32"]  # the flash kernels' log-sum-exp (softmax_lse) is fp32


def ring_merge(elements: float, head_dim: int, dtype: str, ring: int, fused: bool) -> np.ndarray:
    """The merge's kernels over one run of a ring attention op on one device, as rows of (bytes, FLOPs, launches,
    calls per run): `elements` of the device's attention output in `dtype`, `head_dim` of them per log-sum-exp
    value, `ring` blocks. Unfused (eager) each call of MERGE_STEP (every step), MERGE_FOLD (every step after the
    first) and MERGE_RESULT (once) is its own row, a view or no-op cast with no bytes and no launch. Fused (a
    stack that fuses elementwise ops, as Inductor does the traced merger) each fold is one kernel reading the
    running output and log-sum-exp, the block's output and log-sum-exp, and writing the new running output and
    log-sum-exp; the first step's upcast fuses into the first fold (it reads the first block's output in
    `dtype`) and the final downcast into the last (it writes `dtype`)."""
    per_row = elements / head_dim
    size = {"out": elements, "lse": per_row}
    if ring < 2:
        return np.zeros((0, 4))
    if not fused:
        def nbytes_of(name: str) -> int:
            return BYTES[dtype if name == "op" else name]
        rows = []
        for calls, times in ((MERGE_STEP, ring), (MERGE_FOLD, ring - 1), (MERGE_RESULT, 1)):
            for c in calls:
                # a view, or a cast to the dtype its tensor has (an fp32 attention's output), launches nothing
                if not c.write or (not c.flops and (c.read[0] == c.write or {c.read[0], c.write} == {"op", dtype})):
                    rows.append((0.0, 0.0, 0.0, times))
                    continue
                per = sum(nbytes_of(r) for r in c.read) + nbytes_of(c.write)
                rows.append((size[c.on] * per + c.rows * per_row * LSE_BYTES, size[c.on] * c.flops, 1.0, times))
        return np.array(rows, dtype=np.float64)
    flops = sum(size[c.on] * c.flops for c in MERGE_FOLD)
    lse = 3 * per_row * LSE_BYTES  # running and block log-sum-exp read, the new one written
    folds = {}
    for j in range(1, ring):
        running = BYTES[dtype] if j == 1 else BYTES["fp32"]  # the first block's output, not yet upcast
        written = BYTES[dtype] if j == ring - 1 else BYTES["fp32"]
        nbytes = elements * (running + BYTES[dtype] + written) + lse
        folds[nbytes] = folds.get(nbytes, 0) + 1
    return np.array([(b, flops, 1.0, n) for b, n in folds.items()], dtype=np.float64)


def _with_ring_merges(table, merges: list, stack):
    """`table` with the merge kernels of each ring attention op (`merges`: (op id, stage, kernel rows of
    `ring_merge`, runs)) after the op's own rows, where the framework issues them (the host model reads the
    order). Costed as the memory-bound vector kernels they are (fp32 arithmetic, category elementwise); each
    unfused call is one more call from Python (the stack's `view_s` dispatch, plus `kernel_s` where it launches
    a kernel, as `mapping._framework_chain` costs a chain), each fused kernel one further kernel (`kernel_s`)."""
    if not merges:
        return table
    peaks, vector_fp32 = _listed(table.peaks, ("vector", "fp32"))
    effs, vector = _listed(table.effs, "vector")
    effs, none = _listed(effs, "none")
    backends, no_backend = _listed(table.backends, "")
    oid = np.concatenate([np.full(len(k), o) for o, _, k, _ in merges])
    stage = np.concatenate([np.full(len(k), si) for _, si, k, _ in merges])
    k = np.concatenate([k for _, _, k, _ in merges])
    count = np.concatenate([kernels[:, 3] * runs for _, _, kernels, runs in merges])
    launched = k[:, 2] > 0
    host = stack.host
    per_call = np.where(launched, host.kernel_s, 0.0) + (0.0 if stack.fusion != "none" else host.view_s)
    n = len(oid)
    rows = dict(
        op=oid, stage=stage, category=np.full(n, CATEGORIES.index("elementwise")),
        unit=np.where(launched, UNITS.index("vector"), UNITS.index("none")), peak=np.full(n, vector_fp32),
        eff=np.where(launched, vector, none), backend=np.full(n, no_backend), flops=k[:, 1], bytes=k[:, 0],
        gemm=np.zeros((n, 4)), launches=k[:, 2], count=count, host=per_call)
    # after the op's own rows (they are in op order); a merge kernel is left out of the liveness walk (no L2
    # residency: the conservative side, as for ops lowered per iteration)
    return _with_rows(table, np.searchsorted(table.op, oid, side="right"), rows, peaks=peaks, effs=effs,
                      backends=backends)


def _listed(names: list, name) -> tuple[list, int]:
    """`names` (a table's peaks, efficiency classes or back-ends) with `name` added if it is missing, and its
    index."""
    out = list(names)
    if name not in out:
        out.append(name)
    return out, out.index(name)


# a kernel table's per-stage columns (their length is the number of stages, not of kernels)
_PER_STAGE = ("stage_repeat", "stage_step_s", "stage_sync")


def _with_rows(table, at: np.ndarray, rows: dict, **changes):
    """`table` with kernel rows inserted before the rows at indices `at` (len(table): at the end): `rows` gives
    their per-kernel columns; any other per-kernel column of the table (the L2 re-read ones) gets zeros, the new
    rows re-reading nothing. `changes`: other fields to replace (the index lists the new rows point into)."""
    n = len(at)
    for f in fields(table):
        v = getattr(table, f.name)
        if f.name not in rows and f.name not in _PER_STAGE and isinstance(v, np.ndarray) \
                and v.shape[:1] == (len(table),):
            rows[f.name] = np.zeros((n,) + v.shape[1:], dtype=v.dtype)
    columns = {name: np.insert(getattr(table, name), at, np.asarray(values).astype(getattr(table, name).dtype),
                               axis=0) for name, values in rows.items()}
    return replace(table, **changes, **columns)


def _scaled(table, comp, wdiv, adiv, keep_in, gemm_div, weights, calls):
    o = table.op
    matrix = (table.unit == UNITS.index("matrix")) | (table.unit == UNITS.index("attention"))
    w = np.where(matrix, np.minimum(weights[o], table.bytes), 0.0)
    act = table.bytes - w
    kept = np.minimum(keep_in[o] * adiv[o], act)  # bytes of the undivided input/output at the op's data split
    tp_div = comp[o] / adiv[o]
    nbytes = w / wdiv[o] + kept / adiv[o] + (act - kept) / (adiv[o] * tp_div)
    gemm = np.where(table.gemm > 0, np.maximum(table.gemm / gemm_div[o], 1.0), table.gemm)
    extra = {}
    if getattr(table, "reread", None) is not None:  # re-read bytes shrink with the kernel's own bytes
        ratio = np.divide(nbytes, table.bytes, out=np.ones_like(nbytes), where=table.bytes > 0)
        extra["reread"] = table.reread * ratio[:, None]
    # an op run as several calls (ring attention's blocks) launches, and dispatches from the host, once per call
    return replace(table, flops=table.flops / comp[o], bytes=nbytes, gemm=gemm, launches=table.launches * calls[o],
                   host=table.host * calls[o], **extra)


def _with_collectives(table, comm: list, comm_overlap: bool):
    if not comm:
        return replace(table, comm_overlap=comm_overlap)
    from .collectives import KINDS
    from .ops import COMM
    effs, none = _listed(table.effs, "none")
    backends, no_backend = _listed(table.backends, "")
    k = len(comm)
    rows = np.array([[si, n, size, stride, KINDS.index(kind), runs] for si, kind, n, stride, size, runs in comm],
                    dtype=np.float64)
    assert COMM == "comm"  # COMM follows the op categories
    new = dict(
        op=np.full(k, -1), stage=rows[:, 0].astype(np.int64), category=np.full(k, len(CATEGORIES)),
        unit=np.full(k, UNITS.index("comm")), peak=np.zeros(k, dtype=np.int64), eff=np.full(k, none),
        backend=np.full(k, no_backend), flops=np.zeros(k), bytes=np.zeros(k), gemm=rows[:, 1:5],
        launches=np.ones(k),  # one communication kernel each (NCCL)
        count=rows[:, 5], host=np.zeros(k))
    # appended: a collective re-reads nothing
    return _with_rows(table, np.full(k, len(table)), new, comm_overlap=comm_overlap, effs=effs, backends=backends)


def _memory(record: Sharding, model, table, plan: Plan, wdiv, weights) -> None:
    """Per-device weights (tensor-split ops / tp, then / pp), KV cache and activations."""
    owned = np.zeros(len(model.stages))
    split = np.zeros(len(model.stages))
    for oid, (si, op) in enumerate(table.ops):
        runs_weights = weights[oid] * op.count
        owned[si] += runs_weights
        split[si] += runs_weights / wdiv[oid]
    weight_bytes = 0.0
    for si, s in enumerate(model.stages):
        if s.shares_weights_with:
            continue
        share = split[si] / owned[si] if owned[si] else 1.0
        weight_bytes += s.weight_bytes * share / plan.pp
    data = plan.sp * plan.ring * plan.cfg * plan.dp * plan.ep
    kv_div = plan.tp * plan.pp * plan.dp * plan.ep  # ep holds batch / ep sequences per device, as dp
    act = max((s.peak_activation_bytes / data + s.state_bytes / kv_div for s in model.stages), default=0.0)
    record.weight_bytes = weight_bytes
    record.kv_cache_bytes = max((s.state_bytes / kv_div for s in model.stages), default=0.0)
    record.activation_bytes = max((s.peak_activation_bytes / data for s in model.stages), default=0.0)
    record.peak_memory_bytes = weight_bytes + act


def smallest_fit(model, capacity: float, largest: int = 64) -> int | None:
    """The fewest devices (a power of two, tensor parallel) on which the model's weights and KV cache, split
    that many ways, fit beside its activations; None if not within `largest`. Embeddings and norms that tensor
    parallelism leaves replicated are counted as split, so this is a lower bound."""
    weights = model.weight_bytes
    n = 1
    while n <= largest:
        need = weights / n + max(s.peak_activation_bytes + s.state_bytes / n for s in model.stages)
        if need <= capacity:
            return n
        n *= 2
    return None
