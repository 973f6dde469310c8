"""Transformer text-to-image models (dit-xl-2, pixart-alpha, sd3-medium, flux1-dev) against their references.

Reference figures were counted with torch.utils.flop_counter.FlopCounterMode on the `meta` device (no weights),
torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.24.0, with every network built from its public config written
inline; the script is tools/refcounts/dit.py (results in dit_family_<model>.json). FlopCounterMode counts matmuls
and convolutions only, with 1 multiply-add = 2 FLOPs; attention was counted on the math path (diffusers
AttnProcessor / transformers eager, or the default sdpa processors, which decompose to bmm on the meta device),
with every bmm checked to lie inside an attention module. The simulator is compared with `--attention math`.
Each stage is compared per network evaluation: the text encoders once, the denoiser for one step (with CFG its
batch holds the negative and positive halves), the decoder for one image.

Inputs of the reference runs (B = 2 with classifier-free guidance):
- dit-xl-2      DiTTransformer2DModel: hidden_states [2, 4, 32, 32] (256px) / [2, 4, 64, 64] (512px, sample_size 64),
                timestep and class_labels [2]; vae.decode z [1, 4, 32, 32] / [1, 4, 64, 64] (sd-vae-ft-ema).
- pixart-alpha  T5EncoderModel input_ids [2, 120] / [2, 256] / [1, 120]; PixArtTransformer2DModel (sample_size
                128, micro-conditions on) hidden_states [2, 4, 128, 128] / [2, 4, 64, 64], encoder_hidden_states
                [2, 120 or 256, 4096], resolution [2, 2], aspect_ratio [2, 1]; vae.decode z [1, 4, 128, 128] / [1, 4, 64, 64].
- sd3-medium    CLIPTextModelWithProjection (L and bigG) input_ids [2, 77] / [1, 77]; T5 [2, 256] / [1, 256] / [2, 128];
                SD3Transformer2DModel hidden_states [2, 16, 128, 128] / [2, 16, 64, 64], encoder_hidden_states
                [2, 77 + 256, 4096], pooled [2, 2048]; vae.decode z [1, 16, 128, 128] / [1, 16, 64, 64].
- flux1-dev     CLIPTextModel input_ids [1, 77]; T5 [1, 512] / [1, 256]; FluxTransformer2DModel hidden_states
                [1, 4096, 64] (1024px) / [1, 1024, 64] (512px), encoder_hidden_states [1, 512, 4096], pooled [1, 768],
                guidance [1]; vae.decode z [1, 16, 128, 128] / [1, 16, 64, 64].
"""
import pytest

from simulator import load_model
from reference import close, stage





def check(model, params, flops):
    for name, ref in params.items():
        close(stage(model, name).params, ref)
    for name, (conv, linear, attention) in flops.items():
        got = stage(model, name).flops_by_category()
        close(got["conv"], conv)
        close(got["linear"], linear)
        close(got["attention"], attention)


# ------------------------------------------------------------------------------------------------------ DiT-XL/2
# diffusers' DiTTransformer2DModel gives every block's AdaLayerNormZero its own copy of the timestep embedder
# (Linear 256->1152, Linear 1152->1152) and class table (1001 x 1152): 2,777,472 parameters per block, so it
# has 749,826,464 parameters, while the original DiT-XL/2 (facebookresearch/DiT models.py, which the model file
# follows) shares one copy and keeps its fixed sin-cos pos_embed as an nn.Parameter of tokens x 1152:
#     original = 749,826,464 - 27 x 2,777,472 + tokens x 1152 = 675,129,632 (256px) / 676,014,368 (512px).
# FLOPs: diffusers evaluates the timestep embedder 29 times (each block, plus proj_out_1's conditioning), at
# 6,488,064 FLOPs each at batch 2; the original evaluates it once:
#     original linear = diffusers linear - 28 x 6,488,064.
DIT_DIFFUSERS_PARAMS = 749_826_464
DIT_EMBEDDER_PARAMS = 2_777_472
DIT_EMBEDDER_FLOPS = 6_488_064  # at batch 2
DIT_PARAMS = {"decoder": 49_490_199}  # sd-vae-ft-ema decoder 49,490,179 + post_quant_conv 20
DIT_FLOPS = {
    # (overrides): tokens, diffusers denoiser (conv, linear, attention), decoder (conv, linear, attention)
    (): (256, (18_874_368, 457_737_043_968, 16_911_433_728),
         (617_892_315_136, 2_147_483_648, 2_147_483_648)),
    (("height", 512), ("width", 512)): (1024, (75_497_472, 1_827_676_422_144, 270_582_939_648),
                                        (2_471_569_260_544, 8_589_934_592, 34_359_738_368)),
}


@pytest.mark.parametrize("overrides", list(DIT_FLOPS), ids=["256px", "512px"])
def test_dit_xl_2_matches_diffusers_reconciled_with_the_original(overrides):
    model = load_model("dit-xl-2", dict(overrides), attention="math")
    tokens, (conv, linear, attention), decoder = DIT_FLOPS[overrides]
    denoiser = stage(model, "denoiser")
    original_params = DIT_DIFFUSERS_PARAMS - 27 * DIT_EMBEDDER_PARAMS + tokens * 1152
    assert denoiser.params == original_params
    assert abs(denoiser.params / 675e6 - 1) < 0.01  # the paper reports 675M parameters for DiT-XL/2
    flops = denoiser.flops_by_category()
    assert flops["conv"] == conv
    assert flops["linear"] == linear - 28 * DIT_EMBEDDER_FLOPS
    close(flops["linear"], linear)  # the duplicated embedders are 0.04 % of the linear FLOPs
    assert flops["attention"] == attention
    check(model, DIT_PARAMS, {"decoder": decoder})


# --------------------------------------------------------------------------------------------------- PixArt-α
PIXART_PARAMS = {"text_encoder": 4_762_310_656, "denoiser": 611_349_152, "decoder": 49_490_199}
PIXART_FLOPS = {
    # T5 input_ids [2, 120]; transformer latent 128x128, 120 caption tokens; VAE z 128x128
    (): {"text_encoder": (0, 2_222_645_575_680, 11_324_620_800),
         "denoiser": (301_989_888, 8_562_582_355_968, 4_456_162_787_328),
         "decoder": (9_886_277_042_176, 34_359_738_368, 549_755_813_888)},
    # 512 x 512 with the 1024-MS checkpoint: latent 64x64
    (("height", 512), ("width", 512)): {
        "text_encoder": (0, 2_222_645_575_680, 11_324_620_800),
        "denoiser": (75_497_472, 2_169_607_421_952, 302_291_877_888),
        "decoder": (2_471_569_260_544, 8_589_934_592, 34_359_738_368)},
    # 256 T5 tokens: longer encoder sequence and cross-attention keys
    (("text_tokens", 256),): {
        "text_encoder": (0, 4_741_643_894_784, 51_539_607_552),
        "denoiser": (301_989_888, 8_606_300_110_848, 4_599_909_974_016)},
    # no guidance: T5 on the prompt alone
    (("cfg", 0),): {"text_encoder": (0, 1_111_322_787_840, 5_662_310_400)},
}


@pytest.mark.parametrize("overrides", list(PIXART_FLOPS), ids=["1024px", "512px", "256-tokens", "no-cfg"])
def test_pixart_alpha_matches_diffusers(overrides):
    check(load_model("pixart-alpha", dict(overrides), attention="math"), PIXART_PARAMS, PIXART_FLOPS[overrides])


# ---------------------------------------------------------------------------------------------- SD3 Medium
SD3_PARAMS = {"text_encoder": 123_650_304, "text_encoder_2": 694_659_840, "text_encoder_3": 4_762_310_656,
              "denoiser": 2_028_328_000, "decoder": 49_545_475}
SD3_FLOPS = {
    # CLIP-L / bigG [2, 77], T5 [2, 256]; MMDiT latent 128x128 (4096 image + 333 text tokens); VAE z 16x128x128
    (): {"text_encoder": (0, 26_162_233_344, 437_133_312),
         "text_encoder_2": (0, 193_783_398_400, 1_942_814_720),
         "text_encoder_3": (0, 4_741_643_894_784, 51_539_607_552),
         "denoiser": (1_610_612_736, 12_022_058_582_016, 5_785_005_883_392),
         "decoder": (9_888_088_457_216, 34_359_738_368, 549_755_813_888)},
    # 512 x 512: 1024 image tokens
    (("height", 512), ("width", 512)): {
        "denoiser": (402_653_184, 3_671_434_199_040, 543_065_407_488),
        "decoder": (2_472_022_114_304, 8_589_934_592, 34_359_738_368)},
    # no guidance: every encoder on the prompt alone
    (("cfg", 0),): {"text_encoder": (0, 13_081_116_672, 218_566_656),
                    "text_encoder_2": (0, 96_891_699_200, 971_407_360),
                    "text_encoder_3": (0, 2_370_821_947_392, 25_769_803_776)},
    # T5 on 128 tokens
    (("text_tokens", 128),): {"text_encoder_3": (0, 2_370_821_947_392, 12_884_901_888)},
}


@pytest.mark.parametrize("overrides", list(SD3_FLOPS), ids=["1024px", "512px", "no-cfg", "128-tokens"])
def test_sd3_medium_matches_diffusers(overrides):
    check(load_model("sd3-medium", dict(overrides), attention="math"), SD3_PARAMS, SD3_FLOPS[overrides])


# ------------------------------------------------------------------------------------------------- FLUX.1 dev
FLUX_PARAMS = {"text_encoder": 123_060_480, "text_encoder_2": 4_762_310_656, "denoiser": 11_901_408_320,
               "decoder": 49_545_475}
FLUX_FLOPS = {
    # CLIP [1, 77]; T5 [1, 512]; transformer 4096 image + 512 text tokens, batch 1 (no CFG); VAE z 16x128x128
    (): {"text_encoder": (0, 13_079_937_024, 218_566_656),
         "text_encoder_2": (0, 4_741_643_894_784, 103_079_215_104),
         "denoiser": (0, 59_512_255_414_272, 14_872_398_004_224),
         "decoder": (9_888_088_457_216, 34_359_738_368, 549_755_813_888)},
    # 512 x 512: 1024 image tokens
    (("height", 512), ("width", 512)): {
        "denoiser": (0, 19_850_111_483_904, 1_652_488_667_136),
        "decoder": (2_472_022_114_304, 8_589_934_592, 34_359_738_368)},
    # T5 on 256 tokens
    (("text_tokens", 256),): {"text_encoder_2": (0, 2_370_821_947_392, 25_769_803_776)},
}


@pytest.mark.parametrize("overrides", list(FLUX_FLOPS), ids=["1024px", "512px", "256-tokens"])
def test_flux1_dev_matches_diffusers(overrides):
    check(load_model("flux1-dev", dict(overrides), attention="math"), FLUX_PARAMS, FLUX_FLOPS[overrides])


# ----------------------------------------------------------------------------------------------- structure
def test_guidance_doubles_the_batch_except_for_guidance_distilled_flux():
    for model_id, doubled in (("dit-xl-2", True), ("pixart-alpha", True), ("sd3-medium", True),
                              ("flux1-dev", False)):
        denoiser = stage(load_model(model_id), "denoiser")
        attn = next(op for op in denoiser.ops if op.kind == "attention")
        batch = denoiser.tensors[attn.inputs[0]].shape[0]
        assert batch == (2 if doubled else 1), model_id


def test_attention_roles_and_token_counts_follow_the_resolution():
    sd3 = stage(load_model("sd3-medium", {"height": 768, "width": 1024}), "denoiser")
    joint = [op for op in sd3.ops if op.kind == "attention"]
    assert {op.role for op in joint} == {"joint"} and sum(op.count for op in joint) == 24
    # (768/16) x (1024/16) image patches + 77 CLIP + 256 T5 tokens in one sequence
    assert sd3.tensors[joint[0].inputs[0]].shape[1] == 48 * 64 + 77 + 256
    flux = stage(load_model("flux1-dev", {"height": 768, "width": 1024}), "denoiser")
    joint = [op for op in flux.ops if op.kind == "attention"]
    assert {op.role for op in joint} == {"joint"} and sum(op.count for op in joint) == 19 + 38
    assert all(flux.tensors[op.inputs[0]].shape[1] == 48 * 64 + 512 for op in joint)
    pixart = stage(load_model("pixart-alpha", {"height": 768, "width": 1024}), "denoiser")
    roles = {op.role: op for op in pixart.ops if op.kind == "attention"}
    assert set(roles) == {"self", "cross"}
    assert pixart.tensors[roles["cross"].inputs[0]].shape[1] == 48 * 64
    assert pixart.tensors[roles["cross"].inputs[1]].shape[1] == 120
