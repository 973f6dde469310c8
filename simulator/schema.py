"""Pydantic schemas of the two input files: a model (operator graph) and a hardware description.

Ops inside a model are validated by the op registry (`ops.OPS`), since their fields depend on the op kind.
`validate(schema, node)` turns pydantic's errors into a one-line SpecError at the offending YAML line.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError,
                      field_validator, model_validator)

from .dtypes import RATED
from .errors import Location, SpecError, closest, shown
from .loader import Node, NodeList

Scalar = Union[int, float, str]

FAMILIES = ("diffusion-tti", "transformer-tti", "ttv", "llm")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # NaN and infinity refused


def _no_bool(v):
    if isinstance(v, bool):  # YAML's true would otherwise pass as the number 1
        raise ValueError(f"expected a number, got {str(v).lower()}")
    return v


Dimension = Annotated[Union[int, float, str], BeforeValidator(_no_bool)]  # a dimension or a repeat count


# Every hardware number is finite and, unless zero is meaningful, positive, between 1e-30 and 1e30: a denormal
# bandwidth or an astronomically large rate would overflow the engine's divisions to infinity or zero.
MIN_MAGNITUDE, MAX_MAGNITUDE = 1e-30, 1e30


def _magnitude(v):
    if v != 0 and not MIN_MAGNITUDE <= abs(v) <= MAX_MAGNITUDE:
        raise ValueError(f"must be between {MIN_MAGNITUDE:g} and {MAX_MAGNITUDE:g}, got {v:g}")
    return v


def _magnitude_or_zero(v):
    if v != 0 and not MIN_MAGNITUDE <= abs(v) <= MAX_MAGNITUDE:
        raise ValueError(f"must be 0 or between {MIN_MAGNITUDE:g} and {MAX_MAGNITUDE:g}, got {v:g}")
    return v


PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False), AfterValidator(_magnitude),
                           BeforeValidator(_no_bool)]
NonNegativeNumber = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_magnitude_or_zero),
                              BeforeValidator(_no_bool)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), AfterValidator(_magnitude),
                     BeforeValidator(_no_bool)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), AfterValidator(_magnitude_or_zero),
                  BeforeValidator(_no_bool)]  # a part of a whole that may be none of it
Count = Annotated[int, Field(gt=0, le=2**40), BeforeValidator(_no_bool)]   # cores, tile sizes


# ------------------------------------------------------------------------------------------------------- model

class InputSpec(Strict):
    shape: list[Dimension]
    dtype: str | None = None


class BlockSpec(Strict):
    args: dict[str, Scalar | None] = {}   # name -> default (None: the caller must give it)
    inputs: list[str]
    outputs: Union[list[str], dict[str, str]]
    ops: list[dict]


class TilingSpec(Strict):
    """How a decoder stage decodes in tiles under `--set vae_tiling=true` (simulator/memory_saving.py): square
    tiles of `tile` output pixels placed every `stride` pixels, the VAE class's defaults in diffusers."""
    tile: Count
    stride: Count


class StageSpec(Strict):
    name: str
    repeat: Dimension = 1
    iteration: str | None = None          # name bound to 0..repeat-1 when shapes change per iteration
    bind: dict[str, Scalar] = {}          # stage-local workload values, e.g. B: batch * (1 + cfg)
    shares_weights_with: str | None = None
    description: str = ""
    tiling: TilingSpec | None = None      # decoder tile geometry for --set vae_tiling=true
    inputs: dict[str, InputSpec] = {}
    ops: list[dict]


class ParamSpec(Strict):
    """A declared workload parameter (see simulator/params.py); `type` defaults to the default's type."""
    default: Union[bool, int, float, str]
    type: Literal["int", "float", "bool", "str"] | None = None
    min: float | None = None
    max: float | None = None
    choices: list[Union[bool, int, float, str]] | None = None
    help: str = ""


class ModelFile(Strict):
    name: str
    description: str = ""
    family: str
    reference: str = ""
    params: dict[str, Union[bool, int, float, str, ParamSpec]]
    blocks: dict[str, BlockSpec] = {}
    stages: list[StageSpec] = Field(min_length=1)
    stack: str | None = None   # default software stack of the model's reference pipeline

    @field_validator("family")
    @classmethod
    def _family(cls, v):
        if v not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}")
        return v


# ---------------------------------------------------------------------------------------------------- hardware

Positive = Field(gt=0)


class Memory(Strict):
    capacity: PositiveNumber
    bandwidth: PositiveNumber


class OnChip(Strict):
    l2_bytes: NonNegativeNumber
    sram_per_core_bytes: NonNegativeNumber
    # bytes/s the L2 (a TPU's vector memory) serves re-reads of resident tensors at; absent: no L2 term
    l2_bandwidth: PositiveNumber | None = None


class Tile(Strict):
    m: Count
    n: Count
    k: Count


class Efficiency(Strict):
    matrix: Fraction
    vector: Fraction
    memory: Fraction
    launch_overhead_s: NonNegativeNumber
    attention: Fraction | None = None               # fused attention, of matrix peak; else matrix
    memory_latency_s: NonNegativeNumber | None = None  # DRAM round trip a kernel waits once
    # implicit-GEMM convolutions (cuDNN/MIOpen), of the matrix peak; else matrix
    conv: Fraction | None = None
    # GEMM fraction for a dtype measured on its own (e.g. fp8), else matrix
    matrix_by_dtype: dict[str, Fraction] | None = None
    # row reductions (layer/RMS/group norm, softmax), of peak bandwidth; else memory
    reduction_memory: Fraction | None = None
    # fused attention back-ends the device runs (flash, fmha, ...), each its fraction of the matrix peak
    attention_backends: dict[str, Fraction] | None = None
    # per back-end, the fraction of the softmax's exponentials hidden behind the matrix products (warp-specialised
    # kernels overlap them; absent: 0, in series)
    softmax_overlap: dict[str, Share] | None = None
    # per-tile fixed cost of a GEMM's main loop (prologue + epilogue), in K elements; of fused attention, in keys
    gemm_k_overhead: NonNegativeNumber | None = None
    attention_k_overhead: NonNegativeNumber | None = None
    # device-side gap between consecutive kernels replayed from a captured graph (else launch_overhead_s)
    graph_launch_overhead_s: NonNegativeNumber | None = None
    # device time every kernel pays beyond its roofline work however it is launched: the ramp-up over the cores
    # and the drain of its last wave (absent: 0)
    kernel_fixed_s: NonNegativeNumber | None = None


class Clock(Strict):
    """The clock the datasheet's peaks are quoted at, and the one the part sustains under a full matrix load
    (below it on power-limited parts)."""
    peak_hz: PositiveNumber
    sustained_hz: PositiveNumber | None = None


class PerCore(Strict):
    """A bottom-up description of the peak: FLOP per clock per core by dtype, so that
    `compute.<dtype>` = cores x clock.peak_hz x `matrix.<dtype>` (and `vector` likewise)."""
    matrix: dict[str, PositiveNumber] = {}
    vector: dict[str, PositiveNumber] = {}
    # exponentials per clock per core of the special-function units (NVIDIA's MUFU.EX2), which fused attention's
    # online softmax runs once per score between its two matrix products (engine.evaluate)
    special_function: PositiveNumber | None = None
    # implicit-GEMM convolution FLOPs per clock per core that the SM's own operand staging sustains (mapping each
    # GEMM row to (n, p, q) and each K tile to a filter tap, with a bounds mask per load) where no copy engine
    # does it; engine.evaluate adds its time to the tensor cores' (both use the SM's issue slots). Absent: none
    conv_staging: PositiveNumber | None = None

    @field_validator("matrix", "vector")
    @classmethod
    def _dtypes(cls, v, info):
        return _rates(v, f"per_core.{info.field_name}")


class Power(Strict):
    """Energy per result: static watts plus picojoules per FLOP (per unit and dtype) and per byte moved."""
    static_w: NonNegativeNumber                # drawn whatever the load (leakage, fans-off board, idle clocks)
    matrix_pj_per_flop: dict[str, PositiveNumber]
    vector_pj_per_flop: dict[str, PositiveNumber]
    dram_pj_per_byte: PositiveNumber
    l2_pj_per_byte: PositiveNumber | None = None

    @field_validator("matrix_pj_per_flop", "vector_pj_per_flop")
    @classmethod
    def _dtypes(cls, v, info):
        return _rates(v, f"power.{info.field_name}")


class Interconnect(Strict):
    """Links between the devices of one node (NVLink, Infinity Fabric, ICI): bandwidth per device and per
    direction, the latency of one step of a collective, and how many devices one node joins."""
    bandwidth: PositiveNumber
    latency_s: NonNegativeNumber
    devices_per_node: Count
    # the fraction of the line rate a collective's data moves at (protocol overhead); absent: all of it
    efficiency: Fraction | None = None
    # the same for all-reduce where the switches reduce in the network (NVLink SHARP); absent: `efficiency`
    all_reduce_efficiency: Fraction | None = None


class Network(Strict):
    """The network between nodes (InfiniBand, RoCE): bandwidth per device (one NIC each) and per direction, and
    the latency of one step of a collective across it."""
    bandwidth: PositiveNumber
    latency_s: NonNegativeNumber


class HostLink(Strict):
    """The link between the host and the device (PCIe): bandwidth per direction, and the fraction of it that
    weight copies reach. Read only by the memory-saving modes that stream weights (`--set offload=...`)."""
    bandwidth: PositiveNumber
    efficiency: Fraction


class Host(Strict):
    """The host CPU of the reference system, for stages run on it (`--set text_encoder_device=cpu`): its fp32
    FMA peak over all sockets and its DRAM bandwidth."""
    name: str
    flops: PositiveNumber
    bandwidth: PositiveNumber


class AttentionTile(Strict):
    """Work decomposition of the fused attention kernel (FlashAttention-style): each core takes a block of
    `q` queries and walks the keys `k` at a time; head dimensions are padded to `head_dim_multiple`."""
    q: Count
    k: Count
    head_dim_multiple: Count


def _rates(v: dict, what: str) -> dict:
    for dtype, rate in v.items():
        if dtype not in RATED:
            raise ValueError(f"unknown dtype '{dtype}' in {what} (dtypes: {', '.join(RATED)})")
        if not isinstance(rate, (int, float)) or rate <= 0:
            raise ValueError(f"{what}.{dtype} must be a positive FLOP/s rate")
        try:
            _magnitude(rate)
        except ValueError as exc:
            raise ValueError(f"{what}.{dtype} {exc}") from None
    return v


class HardwareSpec(Strict):
    name: str
    vendor: str
    # dense matrix-unit and vector-unit FLOP/s by dtype, at `cores` and `clock.peak_hz` (a bottom-up file may
    # leave them to `per_core`)
    compute: dict[str, PositiveNumber] = {}
    vector: dict[str, PositiveNumber] = {}
    dtype_substitutes: dict[str, str] = {}
    memory: Memory
    on_chip: OnChip
    cores: Count
    clock: Clock | None = None
    clock_hz: PositiveNumber | None = None     # older files: the peak clock alone (sustained = peak)
    per_core: PerCore | None = None            # bottom-up peak (FLOP per clock per core); see hardware.bottom_up
    power: Power | None = None                 # energy model; absent: no energy figures and no power cap
    tdp_w: PositiveNumber | None = None        # null where the vendor publishes none
    # older files: total bidirectional device-to-device bandwidth, read by nothing; multi-device plans need
    # `interconnect` (per direction) and `network`, and say how to convert it
    interconnect_bandwidth: NonNegativeNumber | None = None
    interconnect: Interconnect | None = None   # links inside a node (collectives of multi-device plans)
    network: Network | None = None             # links between nodes
    host_link: HostLink | None = None          # host <-> device (PCIe); absent: weight offload is refused
    host: Host | None = None                   # the reference system's CPU; absent: CPU-run stages are refused
    matrix_tile: Tile
    min_tile: Tile | None = None               # smallest tile for skinny GEMMs (matrix instruction shape)
    attention_tile: AttentionTile | None = None
    efficiency: Efficiency
    conv_layout: Literal["nchw", "nhwc", "native"] = "native"  # the layout the device's conv kernels run in
    default_stack: str | None = None           # the stack this device runs by default (e.g. xla on TPUs)
    # efficiency fields without a measurement of this device, each mapped to the device or family it comes from;
    # results flag them
    borrowed: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_clock(self):
        if self.clock is None and self.clock_hz is None:
            raise ValueError("missing field 'clock' (clock: {peak_hz: ..., sustained_hz: ...})")
        if self.clock is not None and self.clock_hz is not None:
            raise ValueError("give 'clock' or the older 'clock_hz', not both")
        c = self.clock
        if c is not None and c.sustained_hz is not None and c.sustained_hz > c.peak_hz:
            raise ValueError("clock.sustained_hz is above clock.peak_hz")
        if "fp32" not in self.vector and not (self.per_core and "fp32" in self.per_core.vector):
            raise ValueError("vector must give at least the fp32 rate (or per_core.vector.fp32)")
        if self.power is not None and self.tdp_w is not None and self.power.static_w >= self.tdp_w:
            raise ValueError(f"power.static_w ({self.power.static_w:g} W) must be below tdp_w ({self.tdp_w:g} W): "
                             f"no kernel could run under that cap")
        return self

    @property
    def peak_clock_hz(self) -> float:
        return self.clock.peak_hz if self.clock is not None else self.clock_hz

    @field_validator("compute")
    @classmethod
    def _compute(cls, v):
        return _rates(v, "compute")

    @field_validator("vector")
    @classmethod
    def _vector(cls, v):
        if "fp32" not in v:
            raise ValueError("vector must give at least the fp32 rate")
        return _rates(v, "vector")

    # the file's own cores, clock, SRAM and L2, before any --hw-set or --vary: the terms that act relative to
    # the file (peak scaling, SRAM-bounded tiles, L2 residency) compare a design point with these
    _reference: dict = PrivateAttr(default_factory=dict)

    def reference(self, name: str) -> float | None:
        own = {"cores": self.cores, "peak_hz": self.peak_clock_hz, "sram": self.on_chip.sram_per_core_bytes,
               "l2_bytes": self.on_chip.l2_bytes, "l2_bandwidth": self.on_chip.l2_bandwidth, "tdp": self.tdp_w}
        return self._reference.get(name, own[name])


# ------------------------------------------------------------------------------------------------- validation

def locate(root, loc: tuple, file: str | None = None) -> Location:
    """The YAML line of the deepest existing node along a pydantic error path."""
    node, line, parts = root, getattr(root, "line", None), []
    for key in loc:
        # the whole path is named even past the deepest node with a line (a value set with --hw-set, a key of a
        # flow mapping)
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}" if parts else str(key))
        if isinstance(node, Node) and key in node:
            line = node.key_lines.get(key, line)
            node = node[key]
        elif isinstance(node, NodeList) and isinstance(key, int) and 0 <= key < len(node):
            line = node.item_lines[key]
            node = node[key]
        else:
            node = None
    return Location(file or getattr(root, "file", None), line, "".join(parts) or None)


def _submodel(annotation):
    """The pydantic model inside an annotation such as `list[StageSpec]` or `dict[str, BlockSpec]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found:
            return found
    return None


_BRANCH_TAGS = {"int", "float", "str", "bool", "ParamSpec"}  # pydantic's names of union members in error paths


def _best_error(errors: list) -> dict:
    """The error to report: a value that fails every member of a union (a parameter as a number, text or a
    declaration) gives one error per member; the first that is not a mere type mismatch says what is wrong."""
    first = errors[0]
    if len(errors) == 1:
        return first
    base = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in _BRANCH_TAGS))
    same = [e for e in errors if tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _BRANCH_TAGS))[
        :len(base)] == base]
    for e in same:
        if not e["type"].endswith(("_type", "_parsing")):
            return e
    return {**first, "_all_types": True} if len(same) > 1 else first


def validate(schema: type[BaseModel], node: Node, file: str | None = None):
    try:
        return schema.model_validate(node)
    except ValidationError as exc:
        err = _best_error(exc.errors())
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _BRANCH_TAGS)))
        msg = err["msg"].removeprefix("Value error, ")
        if err.get("_all_types"):  # every branch of a union refused the value's type
            value = err["input"]
            kind = "list" if isinstance(value, list) else "mapping" if isinstance(value, dict) else type(value).__name__
            msg = f"unexpected {kind} {shown(value)}"
        if err["type"] == "extra_forbidden":
            parent = schema
            for p in loc[:-1]:
                if isinstance(p, str) and p in parent.model_fields:
                    parent = _submodel(parent.model_fields[p].annotation) or parent
            msg = f"unknown field '{loc[-1]}'{closest(loc[-1], parent.model_fields)}"
        elif err["type"] == "missing":
            msg = f"missing field '{loc[-1]}'"
        raise SpecError(msg, locate(node, loc, file)) from None
