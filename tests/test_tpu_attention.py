"""Fused attention on TPUs: the Pallas FlashAttention kernel as a back-end the TPU files list and the xla stack
selects, XLA's own fusion of attention written as plain ops where its whole rows fit VMEM, both checked against
VMEM, and both fractions tied to the derivation the files state."""
import numpy as np
import pytest

from simulator import run
from simulator.hardware import load_hardware
from simulator.mapping import attention_backend, compiler_fuses
from simulator.ops import CATEGORIES
from simulator.stacks import load_stack

TPUS = ("tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e")
# a 1024x1024 Flux step's shape at a quarter of the tokens: 1024 image + 512 text tokens, head dim 128
SMALL_FLUX = {"height": 512, "width": 512, "steps": 1, "dtype": "bf16"}


@pytest.mark.parametrize("name", TPUS)
def test_xla_stack_selects_the_pallas_kernel_every_tpu_lists(name):
    spec = load_hardware(name).spec
    assert "pallas" in spec.efficiency.attention_backends
    assert attention_backend(load_stack("xla"), spec, "bf16", 128, "flash") == "pallas"
    # head dims below the 128 lanes still run it (padded to the lanes)
    assert attention_backend(load_stack("xla"), spec, "bf16", 64, "flash") == "pallas"
    # attention written as plain ops is left to XLA, which fuses it where a 4096-key row fits VMEM
    assert attention_backend(load_stack("xla"), spec, "bf16", 128, "math", keys=4096) == "xla"


@pytest.mark.parametrize("name", TPUS)
@pytest.mark.parametrize("backend, vpu_ops", (("pallas", 4), ("xla", 5)))
def test_fused_fractions_are_the_derivation_their_file_states(name, backend, vpu_ops):
    """matrix fraction x MXU time / (MXU + VPU time) per score at d = 128, with the kernel's fp32 VPU ops per
    score; flagged as derived, not measured."""
    spec = load_hardware(name).spec
    mxu = 4 * 128 / spec.compute["bf16"]
    vpu = vpu_ops / spec.vector["fp32"]
    assert spec.efficiency.attention_backends[backend] == pytest.approx(
        spec.efficiency.matrix * mxu / (mxu + vpu), rel=5e-3)
    assert f"efficiency.attention_backends.{backend}" in spec.borrowed


def test_xla_fuses_plain_attention_only_on_a_device_that_lists_it_and_only_where_its_rows_fit():
    xla, tpu = load_stack("xla"), load_hardware("tpu-v5e").spec
    assert compiler_fuses(xla, tpu, "bf16", 64, 4096)          # SDXL's 64x64-level self-attention
    assert not compiler_fuses(xla, tpu, "bf16", 128, 2 ** 20)  # a million keys: two 256 MiB rows cannot sit in VMEM
    assert not compiler_fuses(load_stack("eager"), tpu, "bf16", 64, 4096)  # no whole-program compiler
    assert not compiler_fuses(xla, load_hardware("a100").spec, "bf16", 64, 4096)  # XLA:GPU lists no such kernel
    # the kernel's fraction is derived for 16-bit operands: fp32 attention keeps the materialised scores
    assert not compiler_fuses(xla, tpu, "fp32", 64, 4096)
    # a 16384-key row of 512-wide heads (an SDXL VAE's attention at 1024x1024) fits v5e's 128 MiB, not v4's 16
    v4 = load_hardware("tpu-v4").spec
    assert compiler_fuses(xla, tpu, "bf16", 512, 16384) and not compiler_fuses(xla, v4, "bf16", 512, 16384)


def test_a_flash_request_that_falls_back_to_plain_ops_is_fused_by_xla_as_a_math_request_is():
    """fp32 has no Pallas rule in the xla stack; bf16 plain-ops attention asked for as flash or as math alike ends
    in XLA's own fusion where its rows fit (the same answer whichever way the op came to be materialised)."""
    xla, tpu = load_stack("xla"), load_hardware("tpu-v5e").spec
    assert attention_backend(xla, tpu, "fp32", 64, "flash", keys=4096) == "math"
    assert attention_backend(xla, tpu, "fp32", 64, "math", keys=4096) == "math"
    assert attention_backend(xla, tpu, "bf16", 64, "math", keys=4096) == "xla"
    # a device that lists only XLA's fusion: a bf16 flash request finds no Pallas kernel, falls to the stack's
    # plain-ops rule, and XLA fuses it as it fuses a math request
    only_xla = tpu.model_copy(update={"efficiency": tpu.efficiency.model_copy(
        update={"attention_backends": {"xla": 0.703}})})
    assert attention_backend(xla, only_xla, "bf16", 64, "flash", keys=4096) == "xla"
    assert attention_backend(xla, only_xla, "bf16", 128, "flash", keys=2 ** 20) == "math"  # rows too long


def test_the_pallas_kernels_blocks_are_checked_against_vmem():
    """Shrink VMEM below three 128-query blocks of a 128-wide head and the kernel no longer fits: the selector
    falls back to the materialised score matrix."""
    small = load_hardware("tpu-v6e", {"on_chip.sram_per_core_bytes": 65536.0}).spec
    assert attention_backend(load_stack("xla"), small, "bf16", 128, "flash") == "math"


def _attention(result):
    t = result.table
    rows = t.category == CATEGORIES.index("attention")
    return (float((t.bytes * t.count)[rows].sum()), float((result.costs["time"] * t.count)[rows].sum()),
            {t.backends[b] for b in t.backend[rows]})


@pytest.mark.parametrize("name", ("tpu-v5e", "tpu-v6e"))
def test_pallas_moves_fewer_bytes_and_takes_less_time_than_the_score_matrix(name):
    # elementwise fusion only: plain-ops attention is then not fused by XLA, so `math` materialises the scores
    fused = run("flux1-dev", name, SMALL_FLUX, stack="xla", fusion="elementwise")
    math = run("flux1-dev", name, SMALL_FLUX, attention="math", stack="xla", fusion="elementwise")
    fb, ft, fused_backends = _attention(fused)
    mb, mt, math_backends = _attention(math)
    assert "pallas" in fused_backends and fused_backends <= {"pallas", ""}
    assert "pallas" not in math_backends
    assert fb < mb and ft < mt
    # the rest of the step is untouched by the back-end choice
    assert fused.time_s - ft == pytest.approx(math.time_s - mt, rel=1e-9)


def test_the_pallas_fraction_is_read_by_fused_attention_only():
    """The fraction is data: lowering it (as a slower VPU would, by the stated derivation) slows fused attention,
    while the materialised path does not read it."""
    base = run("flux1-dev", "tpu-v6e", SMALL_FLUX, stack="xla")
    slow = run("flux1-dev", "tpu-v6e", SMALL_FLUX, {"efficiency.attention_backends.pallas": 0.23}, stack="xla")
    _, t_base, _ = _attention(base)
    _, t_slow, _ = _attention(slow)
    assert t_slow > t_base
    math = run("flux1-dev", "tpu-v6e", SMALL_FLUX, attention="math", stack="xla")
    math_slow = run("flux1-dev", "tpu-v6e", SMALL_FLUX, {"efficiency.attention_backends.pallas": 0.23},
                    attention="math", stack="xla")
    assert np.isclose(math.time_s, math_slow.time_s, rtol=1e-12)


@pytest.mark.parametrize("name", ("tpu-v4", "tpu-v5e"))
def test_xlas_fused_attention_moves_fewer_bytes_than_the_materialised_scores(name):
    """SDXL as the Flax pipeline writes it (plain ops): under XLA's full fusion the scores stay in VMEM; with
    elementwise fusion only (no compiler attention fusion) they go through HBM."""
    sdxl = {"height": 512, "width": 512, "steps": 1, "dtype": "bf16", "decoder_dtype": "bf16"}
    fused = run("sdxl", name, sdxl, attention="math", stack="xla")
    apart = run("sdxl", name, sdxl, attention="math", stack="xla", fusion="elementwise")
    fb, ft, fused_backends = _attention(fused)
    mb, mt, apart_backends = _attention(apart)
    assert "xla" in fused_backends and "xla" not in apart_backends
    assert fb < mb and ft < mt
