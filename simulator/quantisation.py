"""Quantisation: the precision of weights, activations and the KV cache, as workload options every model accepts
(`--set weight_dtype=int4`, `act_dtype=...`, `kv_dtype=...`). Each defaults to the model's `dtype`, so a run that
sets none of them is the run without quantisation.

What each governs (the ops' formulas read it through `OpCall.weight_dtype` and the op's dtype):
- `weight_dtype`: the stored weights of the ops registered with `precision="weight"` (linear, moe_linear,
  convolutions, embedding tables): their bytes in memory and the bytes each call reads. Norm scales, biases
  of other ops and `parameter` tensors (positional tables, modulation tables) stay in the 16-bit carrier type
  (below), as AWQ, GPTQ, gpt-fast and TensorRT-LLM leave them.
- `act_dtype`: the activations GEMMs read, and the rate a GEMM runs at. W8A8 / FP8 (weight_dtype == act_dtype =
  int8 or fp8) run on the device's int8 / fp8 matrix rate (`compute.int8`, `compute.fp8`, `dtype_substitutes`).
  A quantised type (fp8, int8, int4, fp4) applies at the GEMMs' inputs only: the activations between GEMMs (the
  residual stream, norms, elementwise ops, attention, the collectives of a multi-device plan) stay in a 16-bit
  `carrier` type, the model's dtype, or bf16 where the model's dtype is itself quantised. That is how FP8 and
  INT8 inference runs: Transformer Engine casts only the GEMM operands to FP8 and keeps the other ops in higher
  precision; TensorRT-LLM's FP8 engines quantise the GEMM inputs and run the attention plugin in fp16 (FP8 context
  attention is a separate option); SmoothQuant W8A8 dequantises each GEMM's int32 output to fp16. The tensors a
  GEMM reads and writes are counted at the carrier type, and the cast of its input to the quantised type is not
  costed (an upper bound on the GEMM's activation bytes; the cast's own pass is left out).
- `kv_dtype`: the KV cache (`kv_cache` ops): its resident bytes, the append, and the cache the attention of
  every later step reads. The longest context and the largest batch that fit follow from it
  (results.Result.serving). Converting fp8 K/V back to the compute type inside the attention kernel is not
  costed.

Weight-only quantisation (weight_dtype narrower than act_dtype: int4/int8 weights with bf16 activations, as
gpt-fast, AWQ and GPTQ/Marlin run it): the GEMM runs at the activation dtype's rate and reads its weights at
their narrow size; every weight element is dequantised in the GEMM's main loop after it is loaded (no extra
kernel and no extra bytes), which costs `DEQUANT_OPS` vector operations per element, charged as one FLOP each
(the convention of ops.UNARY_FLOPS) at the vector unit's rate, in series with the GEMM, once per row tile of
`DEQUANT_ROWS` rows (each thread block dequantises the weight tile it loads). In series: the cores that
dequantise issue the same warps' loads and MMAs, and published weight-only kernels stay well below the DRAM
roofline (gpt-fast int4 Llama-2-7B reaches ~45 % of the A100's bandwidth, bf16 ~90 %).

4-bit types are half a byte per element (dtypes.BYTES). fp4 runs only on a device with an fp4 matrix rate
(`compute.fp4`, B200); elsewhere it is refused, whichever of the three asks for it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dtypes import BYTES
from .errors import Location, SpecError
from .params import Param

CHOICES = ("fp4", "int4", "int8", "fp8", "fp16", "bf16", "fp32")
# activation types that quantise the GEMMs' inputs only; the rest of the network is carried in a 16-bit type
QUANTISED = ("fp8", "int8", "int4", "fp4")


def carrier_of(dtype: str) -> str:
    """The type a network whose dtype is `dtype` carries its activations between GEMMs in: that dtype, or bf16
    where it is a quantised type."""
    return "bf16" if dtype in QUANTISED else dtype
NAMES = {"weight": "weight_dtype", "act": "act_dtype", "kv": "kv_dtype"}

OPTIONS = {
    "weight_dtype": Param("weight_dtype", None, "str", choices=CHOICES,
                          help="stored weights of linear, conv, MoE and embedding ops (default: the model's dtype); "
                               "narrower than act_dtype = weight-only quantisation, dequantised inside the GEMM"),
    "act_dtype": Param("act_dtype", None, "str", choices=CHOICES,
                       help="activations and the GEMM rate (default: the model's dtype); equal to weight_dtype "
                            "(int8, fp8) = W8A8 on the device's int8/fp8 rate"),
    "kv_dtype": Param("kv_dtype", None, "str", choices=CHOICES,
                      help="KV cache (default: the model's dtype); sets its bytes and the longest context that fits"),
}

# Vector operations per weight element to dequantise it inside the GEMM's main loop:
# - 4-bit (int4, fp4): unpack the nibble (shift and mask), convert to the activation type, subtract the group's
#   zero point and multiply by its scale. AWQ's GEMM (llm-awq awq/kernels/csrc/quantization/gemm_cuda_gen.cu,
#   gemm_forward_4bit_cuda_m128n64k32) does and-0xF, int->float, subtract zero, multiply scale, float->half and
#   shift per element (6); the lop3 "magic number" conversion of FasterTransformer, reused by Marlin (Frantar et
#   al. 2024, arXiv 2408.11743) and AWQ's later kernels, converts 8 nibbles with ~9 instructions and applies the
#   scale with one half2 FMA per 2 elements (~1.6). 4 sits between the two.
# - 8-bit (int8, fp8): convert and scale, 2 (gpt-fast WeightOnlyInt8Linear: `F.linear(x, w.to(x.dtype)) *
#   scales`, the cast fused into the GEMM by torch.compile; the per-channel scale applied per element of the
#   tile in fused kernels).
DEQUANT_OPS = {"int4": 4.0, "fp4": 4.0, "int8": 2.0, "fp8": 2.0, "fp16": 1.0, "bf16": 1.0}
# Rows of the activation matrix per thread block of a weight-only GEMM: each block dequantises the weight tile it
# loads, so a GEMM over M rows dequantises every weight ceil(M / DEQUANT_ROWS) times. 128: the M tile of AWQ's
# gemm_forward_4bit_cuda_m128n64k32 (the kernel name's m128); decode (M = batch) dequantises once.
DEQUANT_ROWS = 128
# The suffix of the dequantisation kernel (ops.OpCall.dequant): the mapping gives it its own efficiency class
# (`dequant`), so results report its FLOPs apart from the model's
DEQUANT = ".dequant"

FP4_DEVICES_HINT = "fp4 needs an fp4 matrix rate (compute.fp4), e.g. b200"


@dataclass(frozen=True)
class Precision:
    """The dtypes of weights, activations and KV cache; None = the model's dtype (`dtype`)."""
    weight: str | None = None
    act: str | None = None
    kv: str | None = None
    carrier: str | None = None  # activations between GEMMs (resolved: the model's dtype, bf16 if it is quantised)

    @property
    def active(self) -> bool:
        return self != Precision()

    def resolved(self, dtype: str) -> "Precision":
        """Every field filled, the unset ones with the model's dtype."""
        return Precision(self.weight or dtype, self.act or dtype, self.kv or dtype, self.carrier or carrier_of(dtype))

    def to_dict(self) -> dict:
        return {NAMES[k]: getattr(self, k) for k in NAMES}

    def describe(self) -> str:
        """'weight_dtype=int4, kv_dtype=fp8' (the ones given), or ''."""
        return ", ".join(f"{NAMES[k]}={getattr(self, k)}" for k in NAMES if getattr(self, k) is not None)

    def for_op(self, kind_precision: str | None) -> tuple[str, str, str | None]:
        """(dtype, weight dtype, GEMM dtype or None) of an op computing in the model's dtype, by what its kind
        stores (ops.OpDef.precision: 'weight', 'kv' or None). Call on a resolved Precision. With a quantised
        activation type, GEMM-like ops ('weight') keep their tensors in the carrier type and run their GEMM in
        the quantised one; every other op runs in the carrier type."""
        if kind_precision == "kv":
            return self.kv, self.kv, None
        quantised = self.act in QUANTISED and self.act != self.carrier
        dtype = self.carrier if quantised else self.act
        if kind_precision == "weight":
            return dtype, self.weight, (self.act if quantised else None)
        return dtype, dtype, None

    def uses(self, dtype: str) -> list[str]:
        """The option names set to `dtype` (on a resolved Precision: with the model's dtype filled in)."""
        return [NAMES[k] for k in NAMES if getattr(self, k) == dtype]


def take(overrides: dict, declared: dict) -> tuple[Precision, dict]:
    """The precision options among `--set` values, checked against their choices, and the remaining overrides.
    A model that declares a parameter of the same name keeps it as its own."""
    chosen, rest = {}, {}
    for key, value in overrides.items():
        if key in OPTIONS and key not in declared:
            chosen[{v: k for k, v in NAMES.items()}[key]] = OPTIONS[key].check(value, "--set")
        else:
            rest[key] = value
    return Precision(**chosen), rest


def same_type(a: str, b: str) -> bool:
    """Whether weights of type `a` multiply activations of type `b` without conversion (tf32 stores fp32)."""
    return a == b or {a, b} == {"fp32", "tf32"}


def weight_only(weight: str, act: str) -> bool:
    """Weights stored narrower than the activations they multiply: dequantised inside the GEMM."""
    return BYTES[weight] < BYTES[act]


def check(precision: Precision, dtype: str, file: str) -> Precision:
    """The resolved precision of a model whose dtype is `dtype`; a combination no kernel runs is refused."""
    p = precision.resolved(dtype)
    if not (same_type(p.weight, p.act) or weight_only(p.weight, p.act)):
        given = precision.describe() or f"dtype={dtype}"
        raise SpecError(f"--set {given}: weights in {p.weight} with activations in {p.act} run on no GEMM kernel; "
                        f"weight_dtype must equal act_dtype ({p.act}) or be narrower (weight-only quantisation)",
                        Location(file))
    return p


def check_device(precision: Precision, spec) -> None:
    """Refuse fp4 (weights, activations or KV cache; `precision` resolved) on a device without an fp4 matrix
    rate."""
    from .hardware import rate
    names = precision.uses("fp4")
    if names and rate(spec, "matrix", "fp4") is None:
        raise SpecError(f"--set {names[0]}=fp4: hardware '{spec.name}' has no fp4 rate; {FP4_DEVICES_HINT}")


def dequant_flops(weight: str, act: str, gemm: tuple) -> float:
    """Vector FLOPs to dequantise a weight-only GEMM's weights: (batch, m, n, k) = its GEMM shape, the weights
    being batch x n x k elements, each dequantised once per DEQUANT_ROWS rows of m."""
    if not weight_only(weight, act):
        return 0.0
    b, m, n, k = gemm
    return DEQUANT_OPS[weight] * b * n * k * -(-m // DEQUANT_ROWS)
