"""Model YAML -> a pipeline of stages, each a networkx DAG of ops with concrete shapes and kernels.

Blocks are expanded with their arguments; a block instance with `repeat: N` is expanded once and counted N times
(its first output feeds its first input on the next repetition, so those shapes must agree). Ops must be listed
after the tensors they read, which makes declaration order a topological order; shape inference runs in that
order, one registered formula per op. A stage with an `iteration` variable (decode with a growing KV cache) is
costed exactly: every op whose shapes depend on the variable has a result per iteration, evaluated when read
(the mapping layer reads a few of them where an op's kernels are affine in the iteration, every one otherwise).
"""
from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from . import expr, memory_saving, quantisation
from .dtypes import BYTES, COMPUTE
from .errors import Location, SpecError, closest, name_of, shown, unknown
from .loader import Node, NodeList, load_yaml
from .ops import CATEGORIES, OPS, REQUIRED, Attr, OpCall, OpError, OpResult, numel
from .memory_saving import Modes
from .quantisation import QUANTISED, Precision, carrier_of
from .params import declare
from .schema import BlockSpec, ModelFile, StageSpec, validate

if TYPE_CHECKING:
    import networkx as nx

GENERIC_FIELDS = ("name", "op", "in", "when", "role", "category", "dtype")
BLOCK_FIELDS = ("name", "block", "in", "args", "repeat", "when")
ATTENTION_MODES = ("flash", "math")
SIGNED_FIELDS = {"axis", "start", "stop"}  # python-style indices
# Bounds checked before the work they would cause, each refused with the field's location:
MAX_REPEAT = 10**9       # a stage's or a block's repeat (a multiplier: large values cost no time, but are typos)
MAX_COUNT = 10**15       # runs of one op, nested repeats multiplied (float64 counts stay exact below 2^53)
MAX_ITERATIONS = 2**17   # iterations of a stage with an iteration variable: each is costed separately (as
                         # arrays where the kernels are affine in it, else ~0.1 ms of Python per 7B-LLM decode
                         # step), and 131,072 covers a 128k-token context
MAX_ELEMENTS = 2**60     # elements of one tensor (and parameters of one op): 2 EiB in fp16
POSITIVE_FIELDS = {"kernel", "stride", "dilation", "groups", "heads", "kv_heads", "head_dim", "out_features",
                   "in_features", "out_channels", "dim", "num_embeddings", "scale", "chunks", "length", "sizes"}


@dataclass
class Tensor:
    shape: tuple
    dtype: str
    storage: str          # the allocation it lives in (views share their source's)
    varies: bool = False  # shape depends on the stage's iteration variable
    weight: bool = False  # a stored parameter, counted in weights, not activations


@dataclass
class Op:
    index: int
    name: str             # path within the stage, e.g. "down0/res0/conv1"
    layer: str            # first path component: the top-level instance it belongs to
    kind: str
    category: str
    role: str | None
    dtype: str
    count: int            # repetitions from enclosing `repeat`s
    inputs: list
    outputs: list
    result: OpResult      # at the last iteration (the largest, for memory)
    loc: Location
    per_iteration: Sequence | None = None  # OpResult per iteration when the op varies with it
    # kept to re-evaluate varying ops per iteration
    _raw: Node | None = field(default=None, repr=False)
    _env: dict | None = field(default=None, repr=False)
    weight_dtype: str | None = None  # its stored weights' dtype where quantised (quantisation.py); None: dtype
    gemm_dtype: str | None = None    # the type its GEMM runs in where activations are quantised; None: dtype

    @property
    def weight_bytes(self) -> float:
        """Bytes of the weights it owns (one run; an int unless they are 4-bit)."""
        return self.result.params * BYTES[self.weight_dtype or self.dtype]


@dataclass
class Stage:
    name: str
    repeat: int
    iteration: str | None
    shares_weights_with: str | None
    ops: list
    tensors: dict
    edges: list           # (producer op, consumer op, tensor) per tensor an op reads from another, in build order
    params: int = 0
    weight_bytes: int = 0
    peak_activation_bytes: int = 0
    state_bytes: int = 0

    @cached_property
    def graph(self) -> "nx.DiGraph":
        """The stage's ops as a networkx DAG: a node per op (attribute `index`, its position in `ops`), an edge
        per tensor read from another op (attribute `tensor`). Built on first use, so running or sweeping a model
        does not import networkx (~70 ms)."""
        import networkx as nx
        g = nx.DiGraph()
        g.add_nodes_from((op.name, {"index": op.index}) for op in self.ops)
        g.add_edges_from((a, b, {"tensor": t}) for a, b, t in self.edges)
        return g

    def flops_by_category(self, iteration: int = 0, unit: str | None = "matrix") -> dict:
        """FLOPs of one pass through the stage (iteration `iteration` where shapes vary), by category.

        `unit="matrix"` keeps matrix-unit FLOPs (GEMMs, convolutions, attention matmuls): what
        torch.utils.flop_counter counts, so these compare directly with reference implementations.
        """
        out = dict.fromkeys(CATEGORIES, 0.0)
        for op in self.ops:
            result = op.per_iteration[iteration] if op.per_iteration else op.result
            for k in result.kernels:
                if unit is None or k.unit == unit:
                    out[op.category] += k.flops * op.count
        return out


@dataclass
class Model:
    id: str
    name: str
    family: str
    description: str
    reference: str
    file: str
    defaults: dict
    params: dict          # resolved workload values
    attention: str
    stages: list
    declared: dict = field(default_factory=dict)  # name -> params.Param: type, range, choices, help
    default_stack: str | None = None  # the stack the model's reference pipeline runs (`stack:` in its file)
    memory: Modes = field(default_factory=Modes)  # memory-saving modes (offload, VAE tiling, CPU text encoders)
    precision: Precision = field(default_factory=Precision)  # weight/act/KV dtypes, resolved (quantisation.py)

    @property
    def param_count(self) -> int:
        return sum(s.params for s in self.stages if not s.shares_weights_with)

    @property
    def weight_bytes(self) -> int:
        return sum(s.weight_bytes for s in self.stages if not s.shares_weights_with)

    @property
    def peak_memory_bytes(self) -> int:
        """All weights (shared ones once) plus the largest stage's activations and KV cache; under a
        memory-saving mode only the weights resident at each stage (memory_saving.peak_memory_bytes)."""
        if self.memory.active:
            return memory_saving.peak_memory_bytes(self.stages, self.memory)
        return self.weight_bytes + max(s.peak_activation_bytes + s.state_bytes for s in self.stages)


# --------------------------------------------------------------------------------------------------- helpers

class _Chain(ChainMap):
    """A ChainMap whose lookups are plain loops (the standard one's run a generator per lookup): expressions read
    names through two or three of them, some hundred times for every op built or iteration evaluated."""

    def __getitem__(self, key):
        for m in self.maps:
            if key in m:
                return m[key]
        return self.__missing__(key)

    def __contains__(self, key):
        for m in self.maps:
            if key in m:
                return True
        return False


class StageValues(Mapping):
    """Workload values seen by a stage: the model's parameters, the stage's binds and its iteration variable.

    Binds that read the iteration variable (e.g. `past: prompt_tokens + t`) are re-evaluated on every lookup,
    so they follow the iteration being costed.
    """

    def __init__(self, params: dict, binds: Node, var: str | None, builder: "_StageBuilder", path: str):
        self.var, self.builder = var, builder
        self.static = dict(params)
        self.dynamic = {}
        for key, raw in binds.items():
            used = set()
            value = _value(raw, self, binds, key, f"{path}.bind.{key}", used)
            if used & self.moving:
                self.dynamic[key] = (raw, binds, f"{path}.bind.{key}")
            else:
                self.static[key] = value

    @property
    def moving(self) -> set:
        """Names whose value changes from one iteration to the next."""
        return ({self.var} if self.var else set()) | set(self.dynamic)

    def __getitem__(self, key):
        if key == self.var:
            return self.builder.it
        if key in self.dynamic:
            raw, node, path = self.dynamic[key]
            return _value(raw, self, node, None, path)
        return self.static[key]

    def __contains__(self, key):
        return key == self.var or key in self.dynamic or key in self.static

    def __iter__(self):
        yield from self.static
        yield from self.dynamic
        if self.var:
            yield self.var

    def __len__(self):
        return len(self.static) + len(self.dynamic) + (1 if self.var else 0)


class Scope(Mapping):
    """Names an expression can read: workload values and block arguments, then tensors in scope (as shapes,
    for `dim(x, 1)`). Tensor shapes come from the builder, so per-iteration re-evaluation sees the current ones."""

    def __init__(self, values: dict, names: dict, builder: "_StageBuilder"):
        self.values, self.names, self.builder = values, names, builder

    def __getitem__(self, key):
        if key in self.values:
            return self.values[key]
        if key in self.names:
            return self.builder.shape_of(self.names[key])
        raise KeyError(key)

    def __contains__(self, key):
        return key in self.values or key in self.names

    def __iter__(self):
        yield from self.values
        yield from self.names

    def __len__(self):
        return len(self.values) + len(self.names)


def _err(msg: str, node, key=None, path=None) -> SpecError:
    if isinstance(node, (Node, NodeList)):
        return SpecError(msg, node.loc(key, path))
    return SpecError(msg, Location(path=path))


def _value(raw, env, node, key, path, used=None):
    try:
        return expr.evaluate(raw, env, used)
    except expr.ExprError as exc:
        message = str(exc)
        if message.startswith("unknown name"):
            name = message.split("'")[1]
            message += closest(name, [k for k in env if not k.startswith("d") or not k[1:].isdigit()])
        raise _err(message, node, key, path) from None


def _coerce(value, attr: Attr, node, key, path):
    def bad(what):
        return _err(f"expected {what}, got {shown(value)}", node, key, path)

    if attr.kind == "bool":
        if not isinstance(value, (bool, int)):
            raise bad("true or false")
        return bool(value)
    if attr.kind == "str":
        if not isinstance(value, str) or (attr.choices and value not in attr.choices):
            raise bad(f"one of {', '.join(attr.choices)}" if attr.choices else "text")
        return value
    if attr.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return value
    # int / ints / exprs: whole numbers
    values = list(value) if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad("a whole number" if attr.kind == "int" else "whole numbers")
        out.append(v)
    if attr.kind == "int":
        if isinstance(value, list):
            raise bad("a single whole number")
        return out[0]
    return out if isinstance(value, list) or attr.kind == "exprs" else out[0]


def parse_value(text: str):
    """A `--set` value: a number if it reads as one, else the text (e.g. a dtype name)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    return text


# ------------------------------------------------------------------------------------------------- building

class _StageBuilder:
    def __init__(self, model: ModelFile, root: Node, stage: StageSpec, stage_node: Node, params: dict,
                 attention: str, path: str, precision: Precision | None = None):
        self.model, self.root, self.spec, self.node = model, root, stage, stage_node
        # the quantisation options (resolved) act on what computes in the model's own dtype
        self.precision, self.model_dtype = precision, params.get("dtype", "fp16")
        self.it = 0  # the iteration being evaluated
        self.globals = StageValues(params, stage_node.get("bind") or Node(), stage.iteration, self, path)
        self.moving = self.globals.moving
        self.attention = attention
        self.path = path
        self.ops: list[Op] = []
        self.tensors: dict[str, Tensor] = {}
        self.edges = []  # (producer, consumer, tensor): the stage's graph, as networkx builds it on demand
        self.carries = []  # (output tensor, input tensor, node) of repeated blocks
        self.var = stage.iteration

    # -- scopes
    def expand(self, ops_node: NodeList, prefix: str, env: dict, names: dict, count: int, path: str, stack: tuple):
        if not isinstance(ops_node, list):
            raise _err("'ops' must be a list", ops_node, path=path)
        seen = set()
        scope = Scope(env, names, self)  # `names` grows as ops are added: the scope reads it as it is
        for i, item in enumerate(ops_node):
            ipath = f"{path}[{i}]"
            if not isinstance(item, Node):
                raise _err("each op must be a mapping", ops_node, i, ipath)
            name = item.get("name")
            if not isinstance(name, str) or not name or "/" in name or "." in name:
                raise _err("every op needs a 'name' (no '/' or '.')", item, "name" if "name" in item else None,
                           f"{ipath}.name")
            if name in seen or name in names:
                what = "op name" if name in seen else "name, it hides an input"
                raise _err(f"duplicate {what} '{name}'", item, "name", f"{ipath}.name")
            seen.add(name)
            if "block" in item:
                self.instantiate(item, prefix, scope, names, count, ipath, stack)
            elif "op" in item:
                self.add_op(item, prefix, scope, names, count, ipath)
            else:
                raise _err(f"op '{name}' needs an 'op' kind or a 'block' to instantiate", item, "name", ipath)

    def resolve(self, ref, names: dict, item: Node, path: str):
        if not isinstance(ref, str):
            raise _err(f"tensor references are names, got {shown(ref)}", item, "in", path)
        if ref not in names:
            raise _err(f"unknown tensor {shown(ref)} (not an input and not produced by an earlier op)"
                       f"{closest(ref, names)}", item, "in", path)
        return names[ref]

    def _check_keys(self, item: Node, allowed, ipath: str):
        for key in item:
            if key not in allowed:
                raise _err(f"unknown field '{key}'{closest(key, allowed)}", item, key, f"{ipath}.{key}")

    def quantised(self, dtype: str, pinned: bool, stores: str | None) -> tuple[str, str | None, str | None]:
        """(dtype, weight dtype or None, GEMM dtype or None) of an op or input: one computing in the model's dtype
        takes the quantisation options' (`stores`: what its kind stores, ops.OpDef.precision); one that pins its
        own dtype, or runs in a stage that rebinds it (an fp32 VAE decoder), keeps it."""
        if pinned or self.precision is None or dtype != self.model_dtype:
            # a stage or op in a quantised type of its own (an int8 VAE engine) splits as the model's own
            # quantised activations do: GEMMs in that type, the tensors between them 16-bit
            precision = Precision(dtype, dtype, dtype, carrier_of(self.model_dtype)) if dtype in QUANTISED else None
        else:
            precision = self.precision
        if precision is None:
            return dtype, None, None
        dtype, weight, gemm = precision.resolved(dtype).for_op(stores)
        return dtype, (weight if weight != dtype else None), gemm

    def _reads_varying(self, used: set, names) -> bool:
        """Whether an expression read the shape of a tensor that changes with the iteration."""
        names = names.names if isinstance(names, Scope) else names
        return any(n in names and self.tensors[names[n]].varies for n in used)

    def shape_of(self, tid: str) -> tuple:
        current = self.current.get(tid)
        return (current or self.tensors[tid]).shape

    def _when(self, item, env, ipath) -> bool:
        if "when" not in item:
            return True
        used = set()
        value = _value(item["when"], env, item, "when", f"{ipath}.when", used)
        if used & self.moving or self._reads_varying(used, env):
            raise _err(f"'when' cannot depend on the iteration variable '{self.var}'", item, "when", f"{ipath}.when")
        return bool(value)

    def instantiate(self, item: Node, prefix, env, names, count, ipath, stack):
        self._check_keys(item, BLOCK_FIELDS, ipath)
        bname = item["block"]
        blocks = self.model.blocks
        if bname not in blocks:
            raise _err(unknown("block", bname, blocks), item, "block", f"{ipath}.block")
        if bname in stack:
            raise _err(f"block '{bname}' instantiates itself", item, "block", f"{ipath}.block")
        block: BlockSpec = blocks[bname]
        bnode = self.root["blocks"][bname]
        name = item["name"]
        # inputs
        raw_in = item.get("in")
        if isinstance(raw_in, str):
            raw_in = [raw_in]
        if isinstance(raw_in, list):
            if len(raw_in) != len(block.inputs):
                raise _err(f"block '{bname}' takes {len(block.inputs)} inputs ({', '.join(block.inputs)}), "
                           f"got {len(raw_in)}", item, "in", f"{ipath}.in")
            raw_in = dict(zip(block.inputs, raw_in))
        if not isinstance(raw_in, dict):
            raise _err(f"'in' must list the block's inputs ({', '.join(block.inputs)})", item, "in", f"{ipath}.in")
        for key in raw_in:
            if key not in block.inputs:
                raise _err(f"block '{bname}' has no input '{key}'{closest(key, block.inputs)}", item, "in",
                           f"{ipath}.in")
        missing = [k for k in block.inputs if k not in raw_in]
        if missing:
            raise _err(f"block '{bname}' input '{missing[0]}' is not connected", item, "in", f"{ipath}.in")
        inner = {k: self.resolve(v, names, item, f"{ipath}.in") for k, v in raw_in.items()}
        # arguments: given ones are evaluated in the caller's scope, defaults in the block's (they may read
        # the block's inputs, e.g. `cin: dim(x, 1)`)
        given = item.get("args", {}) or {}
        if not isinstance(given, dict):
            raise _err("'args' must be a mapping", item, "args", f"{ipath}.args")
        for key in given:
            if key not in block.args:
                raise _err(f"block '{bname}' has no argument '{key}'{closest(key, block.args)}", given, key,
                           f"{ipath}.args.{key}")
        args = {}
        for key, default in block.args.items():
            used = set()
            if key in given:
                args[key] = _value(given[key], env, given, key, f"{ipath}.args.{key}", used)
            elif default is None:
                raise _err(f"block '{bname}' needs argument '{key}'", item, "args" if "args" in item else "block",
                           f"{ipath}.args")
            else:
                args[key] = _value(default, Scope(_Chain(args, self.globals), inner, self), bnode["args"], key,
                                   f"blocks.{bname}.args.{key}", used)
            if used & self.moving or self._reads_varying(used, env if key in given else inner):
                raise _err(f"block arguments cannot depend on the iteration variable '{self.var}'; "
                           "use it inside the block's ops", given if key in given else bnode["args"], key,
                           f"{ipath}.args.{key}")
        outputs = block.outputs if isinstance(block.outputs, dict) else {o: o for o in block.outputs}
        if not self._when(item, env, ipath):
            first = inner[block.inputs[0]]
            for i, oname in enumerate(outputs):
                names[f"{name}.{oname}"] = first
                if i == 0:
                    names[name] = first
            return
        repeat = 1
        if "repeat" in item:
            repeat = _coerce(_value(item["repeat"], env, item, "repeat", f"{ipath}.repeat"), Attr("int"), item,
                             "repeat", f"{ipath}.repeat")
            if repeat < 1:
                raise _err("repeat must be at least 1 (use 'when' to drop a block)", item, "repeat",
                           f"{ipath}.repeat")
            if repeat > MAX_REPEAT or count * repeat > MAX_COUNT:
                raise _err(f"repeat {repeat:,} is above the limit ({MAX_REPEAT:,} per block, {MAX_COUNT:.0e} runs "
                           "of an op in all)", item, "repeat", f"{ipath}.repeat")
        child_env = _Chain(args, self.globals)
        child_names = inner
        self.expand(bnode["ops"], f"{prefix}{name}/", child_env, child_names, count * repeat,
                    f"blocks.{bname}.ops", stack + (bname,))
        for i, (oname, ref) in enumerate(outputs.items()):
            if ref not in child_names:
                raise _err(f"block '{bname}' output '{oname}' refers to unknown tensor '{ref}'"
                           f"{closest(ref, child_names)}", bnode, "outputs", f"blocks.{bname}.outputs")
            names[f"{name}.{oname}"] = child_names[ref]
            if i == 0:
                names[name] = child_names[ref]
        if repeat > 1:
            out_t = child_names[next(iter(outputs.values()))]
            self.carries.append((out_t, inner[block.inputs[0]], item, ipath, bname))

    def add_op(self, item: Node, prefix, env, names, count, ipath):
        kind = item["op"]
        if kind not in OPS:
            raise _err(unknown("op kind", kind, OPS), item, "op", f"{ipath}.op")
        opdef = OPS[kind]
        self._check_keys(item, GENERIC_FIELDS + tuple(opdef.attrs), ipath)
        raw_in = item.get("in", [])
        raw_in = [raw_in] if isinstance(raw_in, str) else raw_in
        if not isinstance(raw_in, list):
            raise _err("'in' must be a tensor name or a list of them", item, "in", f"{ipath}.in")
        inputs = [self.resolve(r, names, item, f"{ipath}.in") for r in raw_in]
        lo, hi = opdef.inputs
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
            raise _err(f"{kind} takes {want} inputs, got {len(inputs)}", item, "in" if "in" in item else "op",
                       f"{ipath}.in")
        full = prefix + item["name"]
        if not self._when(item, env, ipath):
            if not inputs:
                raise _err("an op with no inputs cannot be switched off with 'when'", item, "when", f"{ipath}.when")
            names[item["name"]] = inputs[0]
            return
        category = item.get("category", opdef.category)
        if category not in CATEGORIES:
            raise _err(unknown("category", category, CATEGORIES), item, "category", f"{ipath}.category")
        dtype = item.get("dtype", env.get("dtype", "fp16"))
        if dtype not in BYTES:
            raise _err(unknown("dtype", dtype, BYTES), item, "dtype", f"{ipath}.dtype")
        dtype, weight_dtype, gemm_dtype = self.quantised(dtype, "dtype" in item, opdef.precision)
        role = item.get("role")
        if role is not None and not isinstance(role, str):
            raise _err("'role' must be text", item, "role", f"{ipath}.role")
        op = Op(len(self.ops), full, full.split("/")[0], kind, category, role, dtype, count, inputs, [], None,
                item.loc(None, ipath), _raw=item, _env=env, weight_dtype=weight_dtype, gemm_dtype=gemm_dtype)
        result, varies = self.evaluate(op, env, {t: self.tensors[t] for t in inputs}, ipath)
        out_ids = [full] if len(result.outputs) == 1 else [f"{full}.{i}" for i in range(len(result.outputs))]
        changing = [False] * len(out_ids)
        if varies:  # which outputs change shape: compare the first iteration with the last
            self.current = self.last_shapes
            last_inputs = {t: self.last_shapes.get(t, self.tensors[t]) for t in inputs}
            self.it = self.repeat - 1
            last, _ = self.evaluate(op, env, last_inputs, ipath)
            self.current, self.it = {}, 0
            changing = [a != b for a, b in zip(result.outputs, last.outputs)]
            self._ends[op.index] = (result, last)
        source = self.tensors[inputs[0]] if inputs and not result.kernels else None  # a view of its input
        for tid, shape, change in zip(out_ids, result.outputs, changing):
            self.tensors[tid] = Tensor(shape, dtype, source.storage if source else tid, change,
                                       weight=source.weight if source else not inputs)
            if change:
                self.last_shapes[tid] = Tensor(last.outputs[out_ids.index(tid)], dtype, "", True)
        op.outputs, op.result = out_ids, result
        if not varies:
            op._raw = op._env = None
        else:
            op.per_iteration = True  # replaced by iterate()
        self.ops.append(op)
        for t in inputs:
            producer = self._producer.get(t)
            if producer is not None:
                self.edges.append((producer, full, t))
        for tid in out_ids:
            self._producer[tid] = full
        local = item["name"]
        names[local] = out_ids[0]
        for i, tid in enumerate(out_ids if len(out_ids) > 1 else []):
            names[f"{local}.{i}"] = tid

    def evaluate(self, op: Op, env: dict, inputs: dict, ipath: str):
        """Evaluate an op's attributes and formula; returns (result, varies with the iteration variable)."""
        item, opdef = op._raw, OPS[op.kind]
        used = set()
        shapes = [inputs[t].shape for t in op.inputs]
        # reshape-style expressions may name the first input's dimensions d0, d1, ...
        local = _Chain({f"d{i}": d for i, d in enumerate(shapes[0])} if shapes else {}, env)
        attrs = {}
        for key, attr in opdef.attrs.items():
            if key in item and attr.kind == "str":  # a literal choice such as mode: max, never an expression
                attrs[key] = _coerce(item[key], attr, item, key, f"{ipath}.{key}")
            elif key in item:
                raw = item[key]
                if isinstance(raw, list):
                    raw = [_value(r, local, raw, j, f"{ipath}.{key}[{j}]", used) for j, r in enumerate(raw)]
                else:
                    raw = _value(raw, local, item, key, f"{ipath}.{key}", used)
                attrs[key] = _coerce(raw, attr, item, key, f"{ipath}.{key}")
            elif attr.default is REQUIRED:
                raise _err(f"{op.kind} '{item['name']}' needs field '{key}'", item, "op", f"{ipath}.{key}")
            else:
                attrs[key] = attr.default
        for key, v in attrs.items():
            if opdef.attrs[key].kind in ("int", "ints", "exprs") and v is not None and key not in SIGNED_FIELDS:
                low = -1 if (op.kind, key) == ("reshape", "shape") else 1 if key in POSITIVE_FIELDS else 0
                if min(v if isinstance(v, list) else [v], default=low) < low:
                    raise _err(f"'{key}' must be at least {low}, got {shown(v)}", item, key, f"{ipath}.{key}")
        call = OpCall(op.name, op.kind, shapes, [inputs[t].dtype for t in op.inputs], attrs, op.dtype,
                      self.attention, op.weight_dtype, op.gemm_dtype)
        try:
            result = opdef.fn(call)
        except OpError as exc:
            key = exc.field if exc.field in item else ("in" if "in" in item else "op")
            raise _err(f"{op.kind} '{op.name}': {exc}", item, key, f"{ipath}.{exc.field or 'in'}") from None
        for shape in result.outputs:
            if any(d < 1 for d in shape):
                raise _err(f"{op.kind} '{op.name}' produces an empty or negative shape {shown(list(shape))}", item,
                           "op", ipath)
            if numel(shape) > MAX_ELEMENTS:
                raise _err(f"{op.kind} '{op.name}' produces a tensor of {numel(shape):.3g} elements "
                           f"{shown(list(shape))}, above the limit of 2^60", item, "op", ipath)
        if result.params > MAX_ELEMENTS:
            raise _err(f"{op.kind} '{op.name}' has {result.params:.3g} parameters, above the limit of 2^60", item,
                       "op", ipath)
        if result.workspace > 8 * MAX_ELEMENTS:
            raise _err(f"{op.kind} '{op.name}' needs {result.workspace:.3g} bytes of workspace, above the limit of "
                       "2^63", item, "op", ipath)
        varies = self.var is not None and bool(used & self.moving or any(inputs[t].varies for t in op.inputs)
                                               or self._reads_varying(used, env))
        return result, varies

    def build(self) -> Stage:
        self._producer = {}
        self._ends = {}  # op index -> its results at the first and the last iteration (add_op), for `iterate`
        self.last_shapes = {}  # shapes at the last iteration of tensors that change with it
        self.current = {}      # tensor shapes of the iteration being evaluated, where they differ
        self.repeat = self._repeat()
        spec, node = self.spec, self.node
        names = {}
        for iname, ispec in spec.inputs.items():
            inode = node["inputs"][iname]
            shape = []
            for j, raw in enumerate(ispec.shape):
                v = _coerce(_value(raw, self.globals, inode["shape"], j, f"{self.path}.inputs.{iname}.shape[{j}]"),
                            Attr("int"), inode["shape"], j, f"{self.path}.inputs.{iname}.shape[{j}]")
                if v < 1:
                    raise _err(f"dimension must be positive, got {v}", inode["shape"], j,
                               f"{self.path}.inputs.{iname}.shape[{j}]")
                shape.append(v)
            if numel(shape) > MAX_ELEMENTS:
                raise _err(f"input '{iname}' has {numel(shape):.3g} elements {shown(shape)}, above the limit of 2^60",
                           inode, "shape", f"{self.path}.inputs.{iname}.shape")
            dtype = ispec.dtype or self.globals.get("dtype", "fp16")
            if dtype not in BYTES:
                raise _err(unknown("dtype", dtype, BYTES), inode, "dtype", f"{self.path}.inputs.{iname}.dtype")
            dtype = self.quantised(dtype, bool(ispec.dtype), None)[0]
            self.tensors[iname] = Tensor(tuple(shape), dtype, iname)
            names[iname] = iname
        self.expand(node["ops"], "", self.globals, names, 1, f"{self.path}.ops", ())
        for out_t, in_t, item, ipath, bname in self.carries:
            if self.tensors[out_t].shape != self.tensors[in_t].shape:
                raise _err(f"block '{bname}' is repeated, so its output {list(self.tensors[out_t].shape)} must "
                           f"match its first input {list(self.tensors[in_t].shape)}", item, "repeat",
                           f"{ipath}.repeat")
        # declaration order is a topological order: every edge runs from an earlier op to a later one (cannot
        # fail while ops read only tensors declared before them; kept as a guard, without networkx)
        position = {op.name: op.index for op in self.ops}
        for a, b, _ in self.edges:
            if position[a] >= position[b]:
                raise SpecError(f"the graph has a cycle through {a}", Location(node.file, node.line, self.path))
        if self.var is not None:
            self.iterate(self.repeat)
        stage = Stage(spec.name, self.repeat, self.var, spec.shares_weights_with, self.ops, self.tensors, self.edges)
        stage.params = sum(op.result.params * op.count for op in self.ops)
        stage.weight_bytes = sum(op.weight_bytes * op.count for op in self.ops)
        stage.peak_activation_bytes = peak_activation_bytes(self.ops, self.tensors)
        stage.state_bytes = sum(op.result.state * op.count for op in self.ops)
        return stage

    def _repeat(self) -> int:
        path = f"{self.path}.repeat"
        value = _coerce(_value(self.spec.repeat, self.globals, self.node, "repeat", path), Attr("int"), self.node,
                        "repeat", path)
        if value < 0:
            raise _err(f"stage repeat must not be negative, got {value}", self.node, "repeat", path)
        if value > MAX_REPEAT:
            raise _err(f"stage repeat {value:,} is above the limit of {MAX_REPEAT:,}", self.node, "repeat", path)
        if self.var is not None and value > MAX_ITERATIONS:
            raise _err(f"stage repeat {value:,} is above the limit of {MAX_ITERATIONS:,} iterations for a stage with "
                       f"an iteration variable ('{self.var}'), each of which is costed separately", self.node,
                       "repeat", path)
        return value

    def iterate(self, repeat: int):
        """Give every op that depends on the iteration variable its results per iteration, evaluated when first
        read (`IterationResults`), and its last iteration's result (the largest, for memory) now. The mapping
        layer reads a few iterations of an op whose kernels are affine in the iteration and every one of the
        others, so a long decode is not expanded op by op in Python."""
        varying = [op for op in self.ops if op.per_iteration]
        if not repeat:  # a stage repeated zero times
            for op in varying:
                op.per_iteration, op._raw, op._env = [], None, None
            return
        source = _Iterations(self, varying, repeat)
        # add_op evaluated each of them at the first and the last iteration, as `evaluate_iteration` does (in
        # declaration order, each reading the shapes the earlier ones produced there): those results are kept
        ends = [self._ends.pop(op.index) for op in varying]
        source.cache[0] = [first for first, _ in ends]
        source.cache[repeat - 1] = [last for _, last in ends]
        for i, op in enumerate(varying):
            op.per_iteration = IterationResults(source, i)
        for op, result in zip(varying, source.at(repeat - 1)):
            op.result = result
            for tid, shape in zip(op.outputs, result.outputs):
                self.tensors[tid].shape = shape

    def evaluate_iteration(self, varying: list, it: int) -> list:
        """The results of the ops that depend on the iteration variable, in declaration order, at iteration `it`
        (each later op reads the shapes the earlier ones produced at that iteration)."""
        shapes = self.current = {}
        self.it = it
        results = []
        try:
            for op in varying:
                inputs = {t: (shapes.get(t) or self.tensors[t]) for t in op.inputs}
                result, _ = self.evaluate(op, op._env, inputs, op.loc.path)
                results.append(result)
                for tid, shape in zip(op.outputs, result.outputs):
                    base = self.tensors[tid]
                    shapes[tid] = Tensor(shape, base.dtype, base.storage, True, base.weight)
        finally:
            self.current, self.it = {}, 0
        return results


class _Iterations:
    """The per-iteration results of a stage's varying ops, evaluated once per iteration when first read."""

    def __init__(self, builder: _StageBuilder, varying: list, repeat: int):
        self.builder, self.varying, self.repeat = builder, varying, repeat
        self.cache: dict = {}

    def at(self, it: int) -> list:
        if it not in self.cache:
            # evaluating sets the builder's iteration state: a model shared by threads (the explorer's cache of
            # built models) evaluates one iteration at a time. One lock for all: a Model stays picklable.
            with _EVALUATING:
                if it not in self.cache:
                    self.cache[it] = self.builder.evaluate_iteration(self.varying, it)
        return self.cache[it]


_EVALUATING = threading.Lock()


class IterationResults(Sequence):
    """One op's `OpResult` at each iteration of its stage (a list to its readers), evaluated on first read."""

    def __init__(self, source: _Iterations, position: int):
        self.source, self.position = source, position

    def __len__(self) -> int:
        return self.source.repeat

    def __getitem__(self, it):
        if isinstance(it, slice):
            return [self[i] for i in range(*it.indices(len(self)))]
        if it < 0:
            it += len(self)
        if not 0 <= it < len(self):
            raise IndexError(it)
        return self.source.at(it)[self.position]


def peak_activation_bytes(ops: list, tensors: dict) -> int:
    """Liveness walk over the topological (declaration) order: the most activation bytes alive at once.

    A storage is allocated when its first tensor is produced and freed after the last op that reads any tensor
    in it; stage inputs are live from the start and unread results to the end. Workspace (e.g. the score matrix
    of math attention) counts while its op runs. A repeated block appears once: its repetitions run one after
    another, so one copy of its activations is live at a time. What ops hold across the iterations of the stage
    (the frame caches of a chunked causal decoder, one per conv and repetition) is live throughout: each cache is
    replaced when its conv runs, so their total stays the same over a chunk.
    """
    size: dict = {}
    last_use: dict = {}
    end = len(ops)
    for tid, t in tensors.items():
        if not t.weight:
            size[t.storage] = max(size.get(t.storage, 0), numel(t.shape) * BYTES[t.dtype])
            last_use.setdefault(t.storage, end)
    consumers: dict = {}
    for op in ops:
        for t in op.inputs:
            consumers.setdefault(tensors[t].storage, []).append(op.index)
    for storage, users in consumers.items():
        if storage in size:
            last_use[storage] = max(users)
    produced_at: dict = {}
    for op in ops:
        for t in op.outputs:
            if tensors[t].storage == t:  # an allocation; a view (a slice or reshape of a stage input) is not
                produced_at.setdefault(t, op.index)
    live = sum(size[s] for s in size if s not in produced_at)  # stage inputs
    live += sum(op.result.held * op.count for op in ops)
    frees: dict = {}
    for s, idx in last_use.items():
        frees.setdefault(idx, []).append(s)
    peak = live
    for op in ops:
        for t in op.outputs:
            s = tensors[t].storage
            if produced_at.get(s) == op.index and s in size and t == s:
                live += size[s]
        peak = max(peak, live + op.result.workspace)
        for s in frees.get(op.index, ()):
            live -= size[s]
    return peak


# ----------------------------------------------------------------------------------------------- public API

def resolve_params(spec: ModelFile, root: Node, overrides: dict, file: str, declared: dict | None = None) -> dict:
    """The workload values: declared defaults, with `overrides` (`--set`) checked against each declaration."""
    declared = declared if declared is not None else declare(spec.params, root.get("params"))
    params = {name: p.default for name, p in declared.items()}
    for key, value in overrides.items():
        if key not in declared:
            raise SpecError(f"--set {name_of(key)}: {unknown('workload parameter', key, declared)}; "
                            f"this model has: {', '.join(declared)}", Location(file))
        params[key] = declared[key].check(value, "--set")
    dtype = params.get("dtype")
    if dtype is not None and dtype not in COMPUTE:
        where = "--set dtype" if "dtype" in overrides else "params.dtype"
        raise SpecError(f"{where}: {unknown('dtype', dtype, COMPUTE)}",
                        root["params"].loc("dtype") if "dtype" not in overrides else Location(file))
    return params


def build_model(source: str | Path, overrides: dict | None = None, attention: str = "flash",
                model_id: str | None = None) -> Model:
    """Load, validate and expand a model file into stages with concrete shapes and kernels."""
    if attention not in ATTENTION_MODES:
        raise SpecError(f"--attention: {unknown('attention implementation', attention, ATTENTION_MODES)}")
    file = str(source)
    root = load_yaml(file)
    spec = validate(ModelFile, root, file)
    declared = declare(spec.params, root.get("params"))
    modes, overrides = memory_saving.take(overrides or {}, declared)
    precision, overrides = quantisation.take(overrides, declared)
    params = resolve_params(spec, root, overrides, file, declared)
    asked_kv = precision.kv
    precision = quantisation.check(precision, params.get("dtype", "fp16"), file)
    memory_saving.check(modes, spec.stages, params, file)
    stages, seen = [], {}
    for i, stage_spec in enumerate(spec.stages):
        snode = root["stages"][i]
        path = f"stages[{i}]"
        if stage_spec.name in seen:
            raise _err(f"duplicate stage name '{stage_spec.name}'", snode, "name", f"{path}.name")
        if stage_spec.shares_weights_with is not None and stage_spec.shares_weights_with not in seen:
            raise _err(unknown("earlier stage", stage_spec.shares_weights_with, seen), snode, "shares_weights_with",
                       f"{path}.shares_weights_with")
        if stage_spec.iteration is not None and (stage_spec.iteration in params
                                                 or stage_spec.iteration in stage_spec.bind):
            raise _err(f"iteration variable '{stage_spec.iteration}' hides a workload parameter", snode,
                       "iteration", f"{path}.iteration")
        builder = _StageBuilder(spec, root, stage_spec, snode, params, attention, path, precision)
        stage = builder.build()
        if stage.shares_weights_with and stage.params != seen[stage.shares_weights_with].params:
            raise _err(f"stage shares weights with '{stage.shares_weights_with}' but has {stage.params} "
                       f"parameters, not {seen[stage.shares_weights_with].params}", snode, "shares_weights_with",
                       f"{path}.shares_weights_with")
        seen[stage.name] = stage
        stages.append(stage)
        runs = memory_saving.decoder_runs(params, modes, stage_spec.tiling) \
            if stage.name == memory_saving.DECODER else None
        if runs:  # tiled or sliced decoding: the decoder once per tile shape, each run as often as it occurs
            whole = memory_saving.output_bytes(stage)
            stages.pop()
            for j, (shape, n) in enumerate(runs):
                part = _StageBuilder(spec, root, stage_spec, snode, {**params, **shape}, attention, path,
                                     precision).build()
                if j:
                    part.name, part.shares_weights_with = memory_saving.variant_name(shape), stage.name
                part.repeat *= n
                # the decoded whole image (or batch) stays resident beside the running tile
                part.peak_activation_bytes += whole - memory_saving.output_bytes(part)
                stages.append(part)
            seen[stage.name] = stages[-len(runs)]
    if all(s.repeat == 0 for s in stages):  # nothing runs: a time of zero would be no answer at all
        raise _err("every stage repeats 0 times: the model runs nothing (check --set values such as steps)",
                   root["stages"], 0, "stages[0].repeat")
    if asked_kv not in (None, params.get("dtype", "fp16")) and \
            not any(op.kind == "kv_cache" for st in stages for op in st.ops):  # it would change nothing: say so
        raise SpecError(f"--set kv_dtype={asked_kv}: this model keeps no KV cache (no kv_cache op in any stage); "
                        f"drop the option", Location(file))
    return Model(model_id or Path(file).stem, spec.name, spec.family, spec.description, spec.reference, file,
                 {name: p.default for name, p in declared.items()}, params, attention, stages, declared,
                 spec.stack, modes, precision)
