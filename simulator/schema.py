"""Pydantic schemas of the two input files: a model (operator graph) and a hardware description.

Ops inside a model are validated by the op registry (`ops.OPS`), since their fields depend on the op kind.
`validate(schema, node)` turns pydantic's errors into a one-line SpecError at the offending YAML line.
"""
from __future__ import annotations

from typing import Union, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .dtypes import COMPUTE
from .errors import Location, SpecError, closest
from .loader import Node, NodeList

Scalar = Union[int, float, str]
FAMILIES = ("diffusion-tti", "transformer-tti", "ttv", "llm")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------------------------- model

class InputSpec(_Strict):
    shape: list[Scalar]
    dtype: str | None = None


class BlockSpec(_Strict):
    args: dict[str, Scalar | None] = {}   # name -> default (None: the caller must give it)
    inputs: list[str]
    outputs: Union[list[str], dict[str, str]]
    ops: list[dict]


class StageSpec(_Strict):
    name: str
    repeat: Scalar = 1
    iteration: str | None = None          # name bound to 0..repeat-1 when shapes change per iteration
    bind: dict[str, Scalar] = {}          # stage-local workload values, e.g. B: batch * (1 + cfg)
    shares_weights_with: str | None = None
    description: str = ""
    inputs: dict[str, InputSpec] = {}
    ops: list[dict]


class ModelFile(_Strict):
    name: str
    description: str = ""
    family: str
    reference: str = ""
    params: dict[str, Scalar]
    blocks: dict[str, BlockSpec] = {}
    stages: list[StageSpec] = Field(min_length=1)

    @field_validator("family")
    @classmethod
    def _family(cls, v):
        if v not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}")
        return v


# ---------------------------------------------------------------------------------------------------- hardware

Positive = Field(gt=0)


class Memory(_Strict):
    capacity: float = Positive
    bandwidth: float = Positive


class OnChip(_Strict):
    l2_bytes: float = Field(ge=0)
    sram_per_core_bytes: float = Field(ge=0)


class Tile(_Strict):
    m: int = Positive
    n: int = Positive
    k: int = Positive


class Efficiency(_Strict):
    matrix: float = Field(gt=0, le=1)
    vector: float = Field(gt=0, le=1)
    memory: float = Field(gt=0, le=1)
    launch_overhead_s: float = Field(ge=0)
    attention: float | None = Field(default=None, gt=0, le=1)       # fused attention, of matrix peak; else matrix
    memory_latency_s: float | None = Field(default=None, ge=0)      # DRAM round trip a kernel waits once


class AttentionTile(_Strict):
    """Work decomposition of the fused attention kernel (FlashAttention-style): each core takes a block of
    `q` queries and walks the keys `k` at a time; head dimensions are padded to `head_dim_multiple`."""
    q: int = Positive
    k: int = Positive
    head_dim_multiple: int = Positive


def _rates(v: dict, what: str) -> dict:
    for dtype, rate in v.items():
        if dtype not in COMPUTE:
            raise ValueError(f"unknown dtype '{dtype}' in {what} (dtypes: {', '.join(COMPUTE)})")
        if not isinstance(rate, (int, float)) or rate <= 0:
            raise ValueError(f"{what}.{dtype} must be a positive FLOP/s rate")
    return v


class HardwareSpec(_Strict):
    name: str
    vendor: str
    compute: dict[str, float]                  # dense matrix-unit FLOP/s by dtype
    vector: dict[str, float]                   # vector-unit FLOP/s by dtype
    dtype_substitutes: dict[str, str] = {}
    memory: Memory
    on_chip: OnChip
    cores: int = Positive
    clock_hz: float = Positive
    tdp_w: float | None = Field(default=None, gt=0)   # null where the vendor publishes none
    interconnect_bandwidth: float = Field(ge=0)
    matrix_tile: Tile
    min_tile: Tile | None = None               # smallest tile for skinny GEMMs (matrix instruction shape)
    attention_tile: AttentionTile | None = None
    efficiency: Efficiency

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


# ------------------------------------------------------------------------------------------------- validation

def locate(root, loc: tuple, file: str | None = None) -> Location:
    """The YAML line of the deepest existing node along a pydantic error path."""
    node, line, parts = root, getattr(root, "line", None), []
    for key in loc:
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}" if parts else str(key))
        if isinstance(node, Node) and key in node:
            line = node.key_lines.get(key, line)
            node = node[key]
        elif isinstance(node, NodeList) and isinstance(key, int) and 0 <= key < len(node):
            line = node.item_lines[key]
            node = node[key]
        else:
            break
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


def validate(schema: type[BaseModel], node: Node, file: str | None = None):
    try:
        return schema.model_validate(node)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))  # drop union branch tags
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent = schema
            for p in loc[:-1]:
                if isinstance(p, str) and p in parent.model_fields:
                    parent = _submodel(parent.model_fields[p].annotation) or parent
            msg = f"unknown field '{loc[-1]}'{closest(loc[-1], parent.model_fields)}"
        elif err["type"] == "missing":
            msg = f"missing field '{loc[-1]}'"
        raise SpecError(msg, locate(node, loc, file)) from None
