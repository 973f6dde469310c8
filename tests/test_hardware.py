"""Built-in hardware files load, cite their sources, and compose with inherit / overrides."""
import pytest

from simulator.errors import SpecError
from simulator.hardware import load_hardware, rate
from simulator.library import builtin_ids, data_dir

BUILTINS = ["a100", "a100-40gb", "h100", "h100-pcie", "h200", "b200", "l4", "l40s", "mi300x", "tpu-v4", "tpu-v5e",
            "tpu-v5p", "tpu-v6e", "gaudi3"]


def test_all_builtins_present():
    assert set(BUILTINS) <= set(builtin_ids("hardware"))


@pytest.mark.parametrize("hw", BUILTINS)
def test_builtin_loads_and_cites(hw):
    spec = load_hardware(hw).spec
    assert spec.compute.get("bf16", 0) > 0
    assert 0 < spec.efficiency.matrix <= 1 and 0 < spec.efficiency.memory <= 1
    text = (data_dir("hardware") / f"{hw}.yaml").read_text()
    # every top-level section carries at least one comment with its source
    assert text.count("#") >= 10


def test_dense_not_sparse_peaks():
    # datasheets quote 1979 TFLOP/s (H100 SXM) and 242 (L4) with 2:4 sparsity; the dense rates are half
    assert load_hardware("h100").spec.compute["bf16"] == pytest.approx(989.4e12, rel=0.01)
    assert load_hardware("l4").spec.compute["bf16"] == pytest.approx(121e12, rel=0.02)


def test_inherit_and_override(tmp_path):
    f = tmp_path / "chip.yaml"
    f.write_text("inherit: h100\nname: Faster H100\nmemory: {bandwidth: 8.0e12}\n")
    hw = load_hardware(str(f), {"compute.bf16": 2e15})
    assert hw.spec.memory.bandwidth == 8e12
    assert hw.spec.memory.capacity == load_hardware("h100").spec.memory.capacity
    assert hw.spec.compute["bf16"] == 2e15
    f.write_text("inherit: h1000\n")
    with pytest.raises(SpecError, match="did you mean 'h100'"):
        load_hardware(str(f))


def test_rate_fallbacks():
    tpu = load_hardware("tpu-v5e").spec
    assert rate(tpu, "matrix", "fp16") == tpu.compute["bf16"]  # TPUs run fp16 models in bf16
    a100 = load_hardware("a100").spec
    assert rate(a100, "matrix", "fp8") is None                  # no fp8 tensor cores on Ampere
    assert rate(a100, "matrix", "fp32") == a100.vector["fp32"]  # true fp32 GEMMs run on CUDA cores
