"""Memory-saving modes (simulator/memory_saving.py): each one lowers peak memory and costs what it costs."""
import json

import numpy as np
import pytest

import simulator
from conftest import run_cli
from simulator.hardware import load_hardware
from simulator.memory_saving import tile_extents

H100 = load_hardware("h100").spec
LINK = H100.host_link.bandwidth * H100.host_link.efficiency


def stages(result):
    return {s["name"]: s for s in result.by_stage()}


@pytest.fixture(scope="module")
def wan():
    """Wan 2.1 14B on an H100 (bf16, 480p, 81 frames) without and with each mode."""
    runs = {"none": {}, "model": {"offload": "model"}, "sequential": {"offload": "sequential"},
            "cpu": {"text_encoder_device": "cpu"}, "tiling": {"vae_tiling": True}}
    return {k: simulator.run("wan21-14b", "h100", overrides=v) for k, v in runs.items()}


def test_model_offload_keeps_one_component_resident_and_copies_each_twice(wan):
    base, off = wan["none"], wan["model"]
    weights = {s.name: s.weight_bytes for s in base.model.stages if not s.shares_weights_with}
    acts = {s.name: s.peak_activation_bytes + s.state_bytes for s in base.model.stages}
    # the worst stage holds its own component's weights only (guidance keeps the denoiser resident)
    assert off.peak_memory_bytes == max(weights[n] + acts[n] for n in weights)
    assert off.peak_memory_bytes < base.peak_memory_bytes - 0.9 * weights["text_encoder"]
    # each component crosses the host link twice (in, and out when the next one starts), once per call
    assert off.offload_time_s == pytest.approx(2 * sum(weights.values()) / LINK, rel=1e-12)
    assert off.time_s - base.time_s == pytest.approx(off.offload_time_s, rel=1e-9)
    assert stages(off)["denoiser"]["transfer_s"] == pytest.approx(2 * weights["denoiser"] / LINK)


def test_sequential_offload_streams_weights_every_call(wan):
    base, seq = wan["none"], wan["sequential"]
    by = {s.name: s for s in base.model.stages}
    den = by["denoiser"]
    # the denoiser's weights cross the link on every call: steps x (1 + cfg) = 100 of them
    assert den.repeat == 100
    assert stages(seq)["denoiser"]["transfer_s"] == pytest.approx(den.weight_bytes * 100 / LINK, rel=1e-12)
    assert seq.time_s > wan["model"].time_s > base.time_s
    # one module's (op's) weights resident at a time, beside the stage's activations
    expect = max(max(op.weight_bytes for op in s.ops) + s.peak_activation_bytes + s.state_bytes
                 for s in base.model.stages)
    assert seq.peak_memory_bytes == expect < wan["model"].peak_memory_bytes
    biggest = max(op.weight_bytes for op in den.ops)
    # the largest module, the time modulation Linear(5120, 6 x 5120), is about 1 % of the 14B DiT
    assert biggest == 5120 * 6 * 5120 * 2 + 6 * 5120 * 2 < den.weight_bytes / 50


def test_text_encoder_on_the_cpu_is_the_host_roofline_and_leaves_the_device(wan):
    base, cpu = wan["none"], wan["cpu"]
    te = next(s for s in base.model.stages if s.name == "text_encoder")
    assert cpu.peak_memory_bytes == base.peak_memory_bytes - te.weight_bytes
    table, host = cpu.table, H100.host
    rows = table.stage == 0
    expect = float((np.maximum(table.flops / host.flops, table.bytes / host.bandwidth) * table.count)[rows].sum())
    row = stages(cpu)["text_encoder"]
    assert row["cpu_s"] == pytest.approx(expect, rel=1e-12) and row["device_time_s"] == 0.0
    assert row["limited_by"] == "cpu" and row["time_s"] == pytest.approx(expect)
    # a 5.7B-parameter encoder at the CPU's ~14 TFLOP/s is slower than on the GPU
    assert row["time_s"] > stages(base)["text_encoder"]["time_s"]
    others = [n for n in stages(base) if n != "text_encoder"]
    for n in others:
        assert stages(cpu)[n]["device_time_s"] == pytest.approx(stages(base)[n]["device_time_s"], rel=1e-9)


def test_tile_extents_follow_diffusers_loop():
    # Wan's 480 x 832 output, tiles of 256 px every 192: rows start at 0, 192, 384 (the last cut to 96)
    assert tile_extents(480, 256, 192) == {256: 2, 96: 1}
    assert tile_extents(832, 256, 192) == {256: 4, 64: 1}
    assert tile_extents(256, 256, 192) == {256: 1, 64: 1}


def test_vae_tiling_bounds_decoder_memory_and_pays_for_the_overlap(wan):
    base, tiled = wan["none"], wan["tiling"]
    dec = [s for s in tiled.model.stages if s.name.startswith("decoder")]
    # 3 tile rows x 5 tile columns, each decoded one latent frame per call (21 calls: AutoencoderKLWan.tiled_decode)
    assert sum(s.repeat for s in dec) == 3 * 5 * 21
    assert all(s.shares_weights_with == "decoder" for s in dec[1:])
    assert tiled.model.param_count == base.model.param_count
    full = next(s for s in base.model.stages if s.name == "decoder")
    assert max(s.peak_activation_bytes for s in dec) < full.peak_activation_bytes / 4
    assert tiled.peak_memory_bytes < base.peak_memory_bytes
    # the overlapping tiles cover (2 x 256 + 96) x (4 x 256 + 64) pixels of a 480 x 832 frame: the decoder's
    # convolution FLOPs (linear in area) grow by that ratio
    conv = lambda ss: sum(s.flops_by_category(i)["conv"] * s.repeat // 21 for s in ss for i in range(21))
    assert conv(dec) / conv([full]) == pytest.approx((608 * 1088) / (480 * 832), rel=0.02)
    assert tiled.time_s > base.time_s


def test_vae_tiling_does_nothing_below_one_tile():
    # AutoencoderKL tiles only when the latent is larger than one tile: SD 1.5 at its 512 px default
    plain, tiled = (simulator.run("sd15", "a100", overrides=o) for o in ({}, {"vae_tiling": True}))
    assert tiled.time_s == plain.time_s and tiled.peak_memory_bytes == plain.peak_memory_bytes


def test_vae_slicing_decodes_one_sample_at_a_time():
    plain, sliced = (simulator.run("sd15", "a100", overrides={"batch": 4, **o}) for o in ({}, {"vae_slicing": True}))
    dec = {s.name: s for s in sliced.model.stages}["decoder"]
    full = {s.name: s for s in plain.model.stages}["decoder"]
    assert dec.repeat == 4
    assert sum(dec.flops_by_category().values()) * 4 == pytest.approx(sum(full.flops_by_category().values()))
    assert dec.peak_activation_bytes < full.peak_activation_bytes / 2
    assert sliced.peak_memory_bytes < plain.peak_memory_bytes


def test_modes_in_json_and_header():
    code, out, err = run_cli("run", "sd15", "--hardware", "h100", "--set", "offload=model", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["memory_saving"]["offload"] == "model"
    assert data["totals"]["offload_s"] > 0
    assert sum(s["transfer_s"] for s in data["stages"]) == pytest.approx(data["totals"]["offload_s"])
    code, out, _ = run_cli("run", "sd15", "--hardware", "h100", "--set", "vae_slicing=true", "--by", "stage")
    assert code == 0 and "memory saving: vae_slicing" in out


@pytest.mark.parametrize("args, words", [
    (["sd15", "--hardware", "h100", "--set", "offload=disk"], "unknown value 'disk'"),
    (["sd15", "--hardware", "h100", "--set", "vae_tiling=maybe"], "expected on or off"),
    (["sd15", "--hardware", "h100", "--set", "text_encoder_device=tpu"], "choose from gpu, cpu"),
    (["llama2-7b", "--hardware", "h100", "--set", "vae_tiling=true"], "no 'decoder' stage"),
    (["dit-xl-2", "--hardware", "h100", "--set", "text_encoder_device=cpu"], "no 'text_encoder' stage"),
    (["sd21", "--hardware", "h100", "--set", "vae_tiling=true"], "declares no tile geometry"),
    (["sd15", "--hardware", "tpu-v6e", "--set", "offload=model"], "gives no host_link"),
    (["sd15", "--hardware", "mi300x", "--set", "text_encoder_device=cpu"], "gives no host CPU"),
    (["sd15", "--hardware", "h100", "--set", "offload=model", "--devices", "2"], "one device only"),
])
def test_bad_modes_are_one_line_errors(args, words):
    code, out, err = run_cli("run", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and words in err, err


# Tolerance of a simulated peak against a published one: the simulator counts the tensors a pipeline allocates; a
# measured peak also holds the CUDA context (~0.3-0.5 GB), the caching allocator's rounding and fragmentation and
# temporaries the model files leave out (fp32 upcasts inside norms), a few % each, while the published figures are
# rounded ("60 GB", "8.19 GB") and their runs' settings partly unstated. Within 25 % is what that leaves; more
# is a modelling error (a Wan decoder holding the whole 81-frame video's activations gave 2.3x the published peak).
PEAK_TOLERANCE = 0.25


@pytest.mark.parametrize("height, width, published_gb", [(720, 1280, 60), (544, 960, 45)])
def test_hunyuanvideo_peak_memory_against_published(height, width, published_gb):
    """Tencent/HunyuanVideo README (commit 17fe3a92, "Requirements", batch 1): GPU peak memory 60 GB at
    720x1280x129 and 45 GB at 544x960x129, "tested on a single 80G GPU", with sample_video.py, whose --vae-tiling
    is on by default (hyvideo/config.py): the decoder runs in 17-frame temporal tiles (as diffusers' default
    frame-wise decoding) and in 256-pixel spatial tiles within them. The simulator with vae_tiling (bf16, every
    model resident, no offload) gives 49.3 GB and 45.8 GB, at the denoiser: 18 % under and 2 % over. Decoded
    without spatial tiling (diffusers' default) the peak moves to the decoder, 65.3 GB and 54.8 GB, and still fits
    the 80 GB GPU."""
    shape = {"height": height, "width": width, "frames": 129}
    tiled = simulator.run("hunyuanvideo", "h100", overrides={**shape, "vae_tiling": True})
    assert abs(tiled.peak_memory_bytes / (published_gb * 1e9) - 1) <= PEAK_TOLERANCE
    untiled = simulator.run("hunyuanvideo", "h100", overrides=shape)
    assert untiled.fits and tiled.peak_memory_bytes < untiled.peak_memory_bytes <= 80 * 2**30


WAN_README_VRAM = 8.19e9  # Wan2.1 README (commit 18368dfc): "The T2V-1.3B model requires only 8.19 GB VRAM"


def test_wan_1_3b_peak_memory_against_published():
    """Wan2.1 README (commit 18368dfc): T2V-1.3B needs 8.19 GB of VRAM, run on an RTX 4090 with
    --offload_model True --t5_cpu (generate.py: the umT5 encoder on the CPU, the DiT moved to the CPU before the
    VAE decodes). Wan's VAE decodes one latent frame per call, each causal conv keeping 2 frames of its input, as
    diffusers' AutoencoderKLWan does and the decoder stage models; in bf16 (the case's dtype) the simulator's peak
    is then 4.1 GB, at the denoiser (2.8 GB of DiT weights, 1.3 GB of activations), its decode phase 3.6 GB. The
    Wan repository decodes in float32 (wan/modules/vae.py: WanVAE(dtype=torch.float), decode under
    autocast(float32)): the decode phase in fp32 is 7.2 GB, 12 % under the published figure, inside the tolerance
    (PEAK_TOLERANCE). The bf16 peak, half the published figure, is below it, as it must be."""
    case = {"height": 480, "width": 832, "frames": 81, "steps": 50, "offload": "model",
            "text_encoder_device": "cpu"}
    bf16 = simulator.run("wan21-1.3b", "rtx4090", overrides=case)
    assert bf16.peak_memory_bytes < WAN_README_VRAM
    fp32 = simulator.run("wan21-1.3b", "rtx4090", overrides={**case, "dtype": "fp32"})
    dec = next(s for s in fp32.model.stages if s.name == "decoder")
    decode_phase = dec.weight_bytes + dec.peak_activation_bytes   # only the VAE is resident then
    assert abs(decode_phase / WAN_README_VRAM - 1) <= PEAK_TOLERANCE
    assert decode_phase <= WAN_README_VRAM


def test_wan_1_3b_on_rtx4090_with_offload_and_t5_cpu():
    """The README's RTX 4090 run (--offload_model True --t5_cpu) fits its 24 GB, as published; the modes lower the
    peak (the 11.4 GB umT5 encoder leaves the device) and cost their copies and the CPU encoder's time."""
    overrides = {"height": 480, "width": 832, "frames": 81, "steps": 50}
    plain = simulator.run("wan21-1.3b", "rtx4090", overrides=overrides)
    saved = simulator.run("wan21-1.3b", "rtx4090", overrides={**overrides, "offload": "model",
                                                             "text_encoder_device": "cpu"})
    assert saved.fits and saved.peak_memory_bytes < plain.peak_memory_bytes - 11e9
    # the modes cost the copies of the DiT and the VAE over PCIe 4.0 and the umT5 encoder on the host CPU
    assert saved.time_s - plain.time_s == pytest.approx(saved.offload_time_s - plain.by_stage()[0]["time_s"],
                                                        rel=1e-6)
