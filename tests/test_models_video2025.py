"""The 2025 text-to-video models (Wan 2.1 1.3B / 14B, LTX-Video 0.9, Mochi 1) against their reference implementations.

Reference figures were counted with torch.utils.flop_counter.FlopCounterMode on the `meta` device (no weights),
torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.24.0, with every network built from its public config written
inline (tools/refcounts/video2025.py; JSON in tools/results/<model id>.json). FlopCounterMode counts matmuls and
convolutions only, with 1 multiply-add = 2 FLOPs; the Wan, LTX and Mochi attention processors call
scaled_dot_product_attention, which decomposes to aten.bmm on meta (the full score matrix), and the T5 / umT5
encoders ran with attn_implementation="eager", so the simulator is compared with `attention="math"`. One network
evaluation per stage:
- wan21-*: UMT5EncoderModel (umT5-XXL) input_ids [1, 512] (the pipeline encodes the prompt and the negative prompt
  in two calls); WanTransformer3DModel hidden_states [1, 16, T, H/8, W/8] with T = (frames - 1) / 4 + 1,
  encoder_hidden_states [1, 512, 4096] (WanPipeline runs the conditional and the unconditional pass as two calls
  of batch 1); AutoencoderKLWan.decode(z [1, 16, T, H/8, W/8]) = post_quant_conv + the decoder one latent frame per
  call with causal conv caches (the simulator models the same calls; its first call runs the two temporal
  upsamplers' time_conv on one frame that the reference passes through: +0.02 % conv FLOPs at 81 x 480 x 832,
  +0.05 % at 33 x 720 x 1280). The VAE's one single-head attention is counted as attention (its bmm lies inside
  WanAttentionBlock).
- ltx-video: T5EncoderModel input_ids [1, 128]; LTXVideoTransformer3DModel hidden_states [2, T*(H/32)*(W/32), 128]
  with T = (frames - 1) / 8 + 1 (CFG batch), encoder_hidden_states [2, 128, 4096]; AutoencoderKLLTXVideo.decode(
  z [1, 128, T, H/32, W/32]).
- mochi-1: T5EncoderModel input_ids [1, 256]; MochiTransformer3DModel hidden_states [2, 12, T, H/8, W/8] with
  T = (frames - 1) / 6 + 1, encoder_hidden_states [2, 256, 4096], an all-ones prompt mask (the reference processor
  selects the valid prompt tokens with torch.nonzero, which the meta device cannot run; with every token valid
  that selection is the identity, so the script's processor attends over all of them at once); the attention
  includes the caption attention pool (8 heads, one query). AutoencoderKLMochi.decode(z [1, 12, T, H/8, W/8]).
Parameters are per stage: Wan's decoder stage counts the decoder + post_quant_conv; the others the decoder.
"""
import math

import pytest

from simulator import load_model
from simulator.simulate import run
from reference import attention_roles, check_model as check, stage






# --------------------------------------------------------------------------------------------- Wan 2.1
UMT5_XXL_PARAMS = 5_680_910_336  # 1,050,148,864 of it is the 256,384 x 4096 embedding
UMT5_FLOPS = (0, 4_741_643_894_784, 103_079_215_104)  # input_ids [1, 512]
WAN_VAE_DECODER_PARAMS = 73_295_603  # decoder 73,295,331 + post_quant_conv 272
WAN_DECODER_FLOPS = {  # (conv, linear, attention)
    (): (274_096_234_414_080, 0, 1_255_971_225_600),                            # z [1, 16, 21, 60, 104]
    (("frames", 33), ("height", 720), ("width", 1280)): (258_955_215_667_200, 0, 2_866_544_640_000),  # [1, 16, 9, 90, 160]
}
WAN = {
    "wan21-1.3b": {
        "denoiser_params": 1_418_996_800,
        # 81 x 480 x 832: hidden_states [1, 16, 21, 60, 104] (32,760 video tokens), text [1, 512, 4096]
        (): (6_440_878_080, 82_088_257_388_544, 200_907_089_510_400),
        # 33 x 720 x 1280: hidden_states [1, 16, 9, 90, 160] (32,400 tokens)
        (("frames", 33), ("height", 720), ("width", 1280)): (6_370_099_200, 81_187_879_256_064, 196_549_410_816_000),
    },
    "wan21-14b": {
        "denoiser_params": 14_288_491_584,
        (): (21_469_593_600, 785_427_992_985_600, 892_920_397_824_000),
        (("frames", 33), ("height", 720), ("width", 1280)): (21_233_664_000, 776_820_977_664_000, 873_552_936_960_000),
    },
}


@pytest.mark.parametrize("model_id", list(WAN))
@pytest.mark.parametrize("overrides", list(WAN_DECODER_FLOPS), ids=["81x480x832", "33x720x1280"])
def test_wan21_matches_diffusers(model_id, overrides):
    ref = WAN[model_id]
    params = {"text_encoder": UMT5_XXL_PARAMS, "denoiser": ref["denoiser_params"], "decoder": WAN_VAE_DECODER_PARAMS}
    flops = {"text_encoder": UMT5_FLOPS, "denoiser": ref[overrides], "decoder": WAN_DECODER_FLOPS[overrides]}
    model = check(model_id, overrides, params, flops)
    assert attention_roles(stage(model, "denoiser")) == {"full3d", "cross"}
    assert attention_roles(stage(model, "decoder")) == {"spatial"}


def test_wan21_decoder_memory_is_one_call_plus_the_conv_caches():
    """AutoencoderKLWan decodes one latent frame per call: the decoder's peak holds one call's activations, the
    2-frame cache of every causal conv's input (feat_cache, CACHE_T = 2) and the video decoded so far, so twice
    the frames add only the extra decoded frames (RGB in the decoder's dtype), not activations. Measured in bf16
    (--set decoder_dtype=bf16) and in the fp32 the pipeline runs the VAE in (the default): twice the bytes."""
    def decoder(frames, dtype):
        return stage(load_model("wan21-1.3b", {"frames": frames, "decoder_dtype": dtype}), "decoder")
    for dtype, size in (("bf16", 2), ("fp32", 4)):
        dec = decoder(81, dtype)
        caches = sum(2 * math.prod(dec.tensors[op.inputs[0]].shape) // dec.tensors[op.inputs[0]].shape[2] * size
                     * op.count for op in dec.ops if op.kind == "conv3d" and op.result.held)
        assert caches == sum(op.result.held * op.count for op in dec.ops)
        # 75,664 channel-pixels per latent pixel, 2 frames, 480 x 832
        assert 0.9e9 * size < caches < 0.95e9 * size
        assert dec.peak_activation_bytes < 2 * caches
        longer = decoder(161, dtype)
        assert longer.peak_activation_bytes - dec.peak_activation_bytes == 80 * 3 * 480 * 832 * size


def test_wan21_runs_guidance_as_two_passes_and_decodes_every_frame():
    model = load_model("wan21-1.3b", {"steps": 10})
    den, text, dec = (stage(model, n) for n in ("denoiser", "text_encoder", "decoder"))
    assert den.repeat == 20 and text.repeat == 2 and stage(model, "guidance").repeat == 10
    assert den.tensors["latents"].shape == (1, 16, 21, 60, 104)
    # one decoder call per latent frame (AutoencoderKLWan._decode): the first yields 1 frame, each later one 4
    # (8x space); the frames joined so far make the 81-frame video at the last call
    assert dec.repeat == 21 and dec.iteration is not None
    assert dec.tensors["conv_out"].shape == (1, 3, 4, 480, 832)
    conv_out = next(op for op in dec.ops if op.name == "conv_out")
    assert conv_out.per_iteration[0].outputs[0] == (1, 3, 1, 480, 832)
    assert dec.tensors["video"].shape == (1, 3, 81, 480, 832)
    assert stage(load_model("wan21-1.3b", {"cfg": 0}), "denoiser").repeat == 50


# --------------------------------------------------------------------------------------------- LTX-Video 0.9
T5_XXL_PARAMS = 4_762_310_656
LTX = {
    "params": {"text_encoder": T5_XXL_PARAMS, "denoiser": 1_923_385_472, "decoder": 238_789_296},
    # 161 x 512 x 704: transformer hidden_states [2, 7392, 128] (21 x 16 x 22 latent grid); decode z [1, 128, 21, 16, 22]
    (): {"denoiser": (0, 48_757_058_043_904, 25_501_032_775_680),
         "decoder": (50_524_867_002_368, 0, 0)},
    # 121 x 768 x 512: [2, 6144, 128] (16 x 24 x 16); decode z [1, 128, 16, 24, 16]
    (("frames", 121), ("height", 768), ("width", 512)): {
        "denoiser": (0, 40_546_758_295_552, 17_678_085_390_336),
        "decoder": (41_509_617_401_856, 0, 0)},
    # text encoder: input_ids [1, 128], one call per prompt
    (("cfg", 0),): {"text_encoder": (0, 1_185_410_973_696, 6_442_450_944)},
}


@pytest.mark.parametrize("overrides", [k for k in LTX if k != "params"], ids=["161x512x704", "121x768x512", "text"])
def test_ltx_video_matches_diffusers(overrides):
    model = check("ltx-video", overrides, LTX["params"], LTX[overrides])
    assert attention_roles(stage(model, "denoiser")) == {"full3d", "cross"}


def test_ltx_video_compresses_32x_in_space_and_8x_in_time():
    model = load_model("ltx-video")
    assert stage(model, "denoiser").tensors["latents"].shape == (1, 21 * 16 * 22, 128)
    assert stage(model, "decoder").tensors["video"].shape == (1, 3, 161, 512, 704)


# --------------------------------------------------------------------------------------------- Mochi 1
MOCHI = {
    "params": {"text_encoder": T5_XXL_PARAMS, "denoiser": 10_027_677_744, "decoder": 362_526_595},
    # 163 x 480 x 848: hidden_states [2, 12, 28, 60, 106] (44,520 video + 256 text tokens); decode z [1, 12, 28, 60, 106]
    (): {"denoiser": (26_258_964_480, 969_919_977_488_384, 2_365_064_694_759_424),
         "decoder": (1_070_108_602_859_520, 10_696_151_531_520, 0)},
    # 85 frames: [2, 12, 15, 60, 106]; decode z [1, 12, 15, 60, 106]
    (("frames", 85),): {"denoiser": (14_067_302_400, 520_474_354_909_184, 685_492_559_970_304),
                        "decoder": (573_272_465_817_600, 5_730_081_177_600, 0)},
    (("cfg", 0),): {"text_encoder": (0, 2_370_821_947_392, 25_769_803_776)},  # input_ids [1, 256]
}


@pytest.mark.parametrize("overrides", [k for k in MOCHI if k != "params"], ids=["163x480x848", "85x480x848", "text"])
def test_mochi_matches_diffusers(overrides):
    model = check("mochi-1", overrides, MOCHI["params"], MOCHI[overrides])
    assert attention_roles(stage(model, "denoiser")) == {"full3d", "cross"}


def test_mochi_decodes_6x_in_time():
    dec = stage(load_model("mochi-1"), "decoder")
    assert dec.tensors["pixels"].shape == (1, 3, 6 * 28, 480, 848)   # the decoder yields 6T frames ...
    assert dec.tensors["video"].shape == (1, 3, 163, 480, 848)      # ... of which the first 5 are dropped


# --------------------------------------------------------------------------------------------- every device
@pytest.mark.parametrize("model_id", ["wan21-1.3b", "wan21-14b", "ltx-video", "mochi-1"])
def test_runs_on_the_study_devices(model_id):
    """Each model runs on the five devices; memory follows the weights (14B and 10B models do not fit a 32 GiB
    TPU v6e chip without offloading, which is not modelled here)."""
    times = {hw: run(model_id, hw, {"steps": 2}) for hw in ("a100", "h100", "b200", "mi300x", "tpu-v6e")}
    assert all(r.time_s > 0 for r in times.values())
    assert times["b200"].time_s < times["h100"].time_s < times["a100"].time_s
    assert all(r.fits for hw, r in times.items() if hw != "tpu-v6e")
    assert times["tpu-v6e"].fits == (model_id in ("wan21-1.3b", "ltx-video"))


def test_a_frame_cache_on_a_2d_conv_is_a_one_line_error(tmp_path):
    """`cache` (frames a causal conv keeps between the calls of a chunked decode) belongs to a conv3d: elsewhere it
    is refused with the file, line and field, not ignored."""
    from pathlib import Path
    from conftest import run_cli
    text = (Path(__file__).parents[1] / "models" / "wan21-1.3b.yaml").read_text()
    old = '{name: conv, op: conv2d, in: up, out_channels: "dim(x, 1) / 2", kernel: 3, padding: 1}'
    assert text.count(old) == 1
    bad = tmp_path / "wan.yaml"
    bad.write_text(text.replace(old, old[:-1] + ", cache: 2}"))
    code, out, err = run_cli("run", str(bad), "--hardware", "h100")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "wan.yaml:" in err and "cache" in err and "conv3d" in err
