"""Parameters and matrix-unit FLOPs of the built-in models against their reference implementations.

Reference figures were counted with torch.utils.flop_counter.FlopCounterMode on the `meta` device (no weights),
torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.24.0, with the models built from their public configs; the
scripts are in tools/refcounts/ (sd15.py, llama.py). FlopCounterMode counts matmuls and convolutions only, with
1 multiply-add = 2 FLOPs; attention was counted on the math path (full score matrix, no causal saving), so the
simulator is compared with `--attention math`, where it too computes the full score matrix.
"""
import pytest

from simulator import load_model
from reference import close, stage





# --------------------------------------------------------------------------------------------- Stable Diffusion 1.5
# sd15.py: CLIPTextModel / UNet2DConditionModel / AutoencoderKL with the runwayml/stable-diffusion-v1-5 configs.
SD15_PARAMS = {"text_encoder": 123_060_480, "denoiser": 859_520_964,
               "decoder": 49_490_199}  # decoder 49,490,179 + post_quant_conv 20
SD15_FLOPS = {
    # (overrides): stage -> (conv, linear, attention) for one network evaluation
    # text encoder: input_ids [2, 77]; UNet: sample [2, 4, 64, 64], context [2, 77, 768]; VAE decode z [1, 4, 64, 64]
    (): {"text_encoder": (0, 26_159_874_048, 437_133_312),
         "denoiser": (887_892_213_760, 466_550_128_640, 252_104_540_160),
         "decoder": (2_471_569_260_544, 8_589_934_592, 34_359_738_368)},
    # 768 x 768: UNet sample [2, 4, 96, 96]; VAE z [1, 4, 96, 96]
    (("height", 768), ("width", 768)): {
        "text_encoder": (0, 26_159_874_048, 437_133_312),
        "denoiser": (1_997_757_480_960, 1_042_218_352_640, 1_256_267_612_160),
        "decoder": (5_561_030_836_224, 19_327_352_832, 173_946_175_488)},
    # no classifier-free guidance: text encoder [1, 77], UNet batch 1
    (("cfg", 0),): {"text_encoder": (0, 13_079_937_024, 218_566_656),
                    "denoiser": (443_946_106_880, 233_275_064_320, 126_052_270_080)},
}


@pytest.mark.parametrize("overrides", list(SD15_FLOPS), ids=["512px", "768px", "no-cfg"])
def test_sd15_matches_diffusers(overrides):
    model = load_model("sd15", dict(overrides), attention="math")
    for name, params in SD15_PARAMS.items():
        close(stage(model, name).params, params)
    for name, (conv, linear, attention) in SD15_FLOPS[overrides].items():
        flops = stage(model, name).flops_by_category()
        close(flops["conv"], conv)
        close(flops["linear"], linear)
        close(flops["attention"], attention)


def test_sd15_flash_attention_flops_equal_math_without_causal_mask():
    """The UNet has no causal attention, so fusing it changes bytes, not FLOPs."""
    math = stage(load_model("sd15", attention="math"), "denoiser").flops_by_category()
    flash = stage(load_model("sd15", attention="flash"), "denoiser").flops_by_category()
    assert flash["attention"] == pytest.approx(math["attention"])


# --------------------------------------------------------------------------------------------------- Llama 2 7B
# llama.py: LlamaForCausalLM(LlamaConfig(vocab 32000, hidden 4096, intermediate 11008, 32 layers, 32 heads)).
# Prefill: input_ids [1, 512], logits for all 512 positions (lm_head 134,217,728,000 FLOPs of the linear total);
# decode: one token with 512 tokens cached (attention over 513 keys), lm_head 262,144,000 FLOPs.
LLAMA2_7B_PARAMS = 6_738_415_616
LLAMA2_7B_PREFILL = {"linear_without_lm_head": 6_631_429_505_024, "lm_head_one_position": 262_144_000,
                     "attention": 137_438_953_472}
LLAMA2_7B_DECODE = {"linear": 13_214_154_752, "attention": 268_959_744}


def test_llama2_7b_matches_transformers():
    model = load_model("llama2-7b", {"prompt_tokens": 512, "output_tokens": 2}, attention="math")
    prefill, decode = stage(model, "prefill"), stage(model, "decode")
    close(prefill.params, LLAMA2_7B_PARAMS)
    close(model.param_count, LLAMA2_7B_PARAMS)  # decode shares the prefill's weights
    flops = prefill.flops_by_category()
    # the simulator computes logits for the last position only, as generation does
    close(flops["linear"], LLAMA2_7B_PREFILL["linear_without_lm_head"] + LLAMA2_7B_PREFILL["lm_head_one_position"])
    close(flops["attention"], LLAMA2_7B_PREFILL["attention"])
    step = decode.flops_by_category(iteration=0)  # first decode step: 512 cached + 1 new key
    close(step["linear"], LLAMA2_7B_DECODE["linear"])
    close(step["attention"], LLAMA2_7B_DECODE["attention"])
