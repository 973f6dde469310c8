"""Software stacks: how a framework runs a model's ops on a device, as data (`stacks/*.yaml`).

A stack says which ops it fuses, how kernels are launched (one by one from Python, from a captured graph, or as
one compiled program), what the host spends per op, which attention back-end it picks for a given head dim and
dtype, which layout its convolutions use and how many passes its reductions make over long rows. The mapping
layer (`mapping.py`) reads it; the engine never does.

Which stack a run uses: the command line (`--stack`) > the model file's `stack:` > the device's default stack
(`default_stack:` in the hardware file, e.g. `xla` on TPUs) > `eager`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .dtypes import BYTES
from .errors import SpecError, unknown
from .library import builtin_ids, resolve
from .loader import load_yaml
from .schema import Strict, validate

DEFAULT_STACK = "eager"
FUSIONS = ("none", "elementwise", "full")
LAUNCHES = ("stream", "graph", "program")


class HostSpec(Strict):
    """Host (CPU) time per unit of work the framework issues. The device runs behind the host; when the host
    is slower, it bounds the time (see engine.host_excess)."""
    op_s: float = Field(ge=0, le=1e-2)       # dispatch of one op that launches a kernel (Python + framework)
    view_s: float = Field(ge=0, le=1e-2)     # an op that launches nothing (view, reshape)
    kernel_s: float = Field(default=0.0, ge=0, le=1e-2)   # each further kernel of a multi-kernel op
    step_s: float = Field(default=0.0, ge=0, le=1.0)      # per repeat of a stage (graph replay, Python loop)
    sync_per_step: bool = False              # the host waits for the device after every repeat


class BackendRule(Strict):
    """One attention back-end and the inputs it accepts. The first rule that accepts an op *and* that the
    device has (its `efficiency.attention_backends`) runs it; `math` (the materialised score matrix) always can."""
    name: str
    dtypes: list[str] | None = None          # None: any
    max_head_dim: int | None = Field(default=None, gt=0)
    head_dim_multiple: int | None = Field(default=None, gt=0)


class AttentionSpec(Strict):
    backends: list[BackendRule] = Field(min_length=1)


class ReductionSpec(Strict):
    """Rows longer than `long_row` elements make `reads` passes over their input (a reduction whose row does not
    fit one warp's registers is read once for the maximum, once for the sum and once for the output)."""
    long_row: int = Field(gt=0)
    reads: float = Field(ge=1, le=8)


class FrameworkKernel(Strict):
    """One kernel of an op that the framework runs as a chain of its own ops (an eager fp32-upcast RMSNorm is
    eight kernels). Bytes are per element of the op's input, named by dtype: `op` is the op's own dtype."""
    read: list[str] = Field(default_factory=list, max_length=8)
    write: str = "none"
    reduce: bool = False                     # a row reduction (one block per row): costed as a reduction

    @field_validator("read")
    @classmethod
    def _dtypes(cls, v):
        for name in v:
            _element_dtype(name)
        return v

    @field_validator("write")
    @classmethod
    def _written(cls, v):
        if v != "none":
            _element_dtype(v)
        return v


def _element_dtype(name: str) -> str:
    if name != "op" and name not in BYTES:
        raise ValueError(f"expected `op` or a dtype ({', '.join(BYTES)}), got {name!r}")
    return name


class StackSpec(Strict):
    name: str
    description: str = ""
    fusion: Literal["none", "elementwise", "full"]
    launch: Literal["stream", "graph", "program"]
    host: HostSpec
    attention: AttentionSpec
    conv_layout: Literal["nchw", "nhwc", "native"] = "native"
    softmax: ReductionSpec | None = None
    tf32_convs: bool = False                 # fp32 convolutions run on TF32 matrix units
    # op kinds the framework runs as a chain of its own kernels, in order (eager PyTorch's RMSNorm and RoPE)
    decompose: dict[str, list[FrameworkKernel]] = Field(default_factory=dict)

    @field_validator("decompose")
    @classmethod
    def _known_ops(cls, v):
        from .ops import OPS
        for kind, chain in v.items():
            if kind not in OPS:
                raise ValueError(unknown("op", kind, sorted(OPS)))
            if not chain:
                raise ValueError(f"{kind}: a decomposition needs at least one kernel")
        return v
    comm_overlap: bool = False


@dataclass(frozen=True)
class Stack:
    id: str
    file: str
    spec: StackSpec
    sha256: str

    @property
    def name(self) -> str:
        return self.spec.name

    def with_overrides(self, fusion: str | None = None, graphs: bool | None = None) -> "Stack":
        """The command line's `--fusion` and a public case's `cuda_graphs` override the stack's own settings."""
        spec = self.spec
        changed = {}
        if fusion is not None and fusion != spec.fusion:
            if fusion not in FUSIONS:
                from .errors import unknown
                raise SpecError(f"--fusion: {unknown('fusion mode', fusion, FUSIONS)}")
            changed["fusion"] = fusion
        if graphs is not None and graphs != (spec.launch != "stream"):
            changed["launch"] = "graph" if graphs else "stream"
            if graphs:  # a captured graph replays without the framework: no per-op host work
                changed["host"] = spec.host.model_copy(update={"op_s": 0.0, "view_s": 0.0, "kernel_s": 0.0})
        if not changed:
            return self
        return Stack(self.id + "*", self.file, spec.model_copy(update=changed), self.sha256)


def with_values(stack: Stack, values: dict) -> Stack:
    """The stack with numeric fields replaced by path (`host.op_s` -> value): how `fit` tries candidates."""
    host = stack.spec.host.model_copy(update={k.split(".", 1)[1]: v for k, v in values.items()
                                              if k.startswith("host.")})
    return Stack(stack.id, stack.file, stack.spec.model_copy(update={"host": host}), stack.sha256)


# Names people use for the frameworks behind each built-in stack
ALIASES = {
    "pytorch": "eager", "torch": "eager", "pytorch-eager": "eager", "diffusers": "eager", "transformers": "eager",
    "torch.compile": "compile", "torch-compile": "compile", "inductor": "compile",
    "reduce-overhead": "compile-cudagraphs", "max-autotune": "compile-cudagraphs", "cudagraphs": "compile-cudagraphs",
    "trt": "tensorrt", "tensorrt-llm": "tensorrt", "trt-llm": "tensorrt", "trtllm": "tensorrt",
    "jax": "xla", "pytorch-xla": "xla", "torch-xla": "xla",
    "vllm": "serving", "sglang": "serving", "tgi": "serving", "lmdeploy": "serving",
}


def canonical(name: str) -> str:
    """The built-in stack id a common framework name stands for (`vllm` -> serving); other names unchanged."""
    return ALIASES.get(name.strip().lower(), name)


def load_stack(name: str) -> Stack:
    """A built-in stack id (`eager`, `compile`, ...), a common name for one (`vllm`, `trt-llm`, `jax`), or a YAML
    file."""
    if not isinstance(name, str) or not name:
        raise SpecError(f"--stack: expected a stack id or file (stacks: {', '.join(builtin_ids('stacks'))})")
    path = resolve("stacks", canonical(name))
    node = load_yaml(path)
    spec = validate(StackSpec, node, str(path))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return Stack(Path(path).stem, str(path), spec, digest)


def choose_stack(cli: str | None, model_default: str | None, device_default: str | None) -> str:
    """The precedence of stack choices: command line > model file > device > eager."""
    return cli or model_default or device_default or DEFAULT_STACK
