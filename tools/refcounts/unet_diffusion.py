"""UNet-diffusion family reference counts: Stable Diffusion 2.1, SDXL base 1.0, DeepFloyd IF (+ SD x4 upscaler).

Same method as sd15.py / sdxl_dit.py (see /work/refs/README.md): every network is built on the `meta` device from
its public config written inline (no hub access), run once per input under FlopCounterMode with the math attention
path (cross-checked against the sdpa path), and its matmul/conv FLOPs split into conv / linear / attention.
Results go to /work/refs/results/unet_diffusion_<id>.json (override the folder with REFS_RESULTS). Imagen has no
reference implementation; `imagen-structure` only cross-checks the wiring of models/imagen.yaml's base U-Net.

    /work/refvenv/bin/python tools/refcounts/unet_diffusion.py [sd21] [sdxl] [deepfloyd-if] [imagen-structure]
"""
import os
import sys

import torch
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel)
from transformers.models.clip.modeling_clip import CLIPAttention
from transformers.models.t5.modeling_t5 import T5Attention
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import (Attention, AttnAddedKVProcessor, AttnAddedKVProcessor2_0,
                                                  AttnProcessor, AttnProcessor2_0)
from diffusers.models.embeddings import AttentionPooling

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import attention_bmm_check, clean, count_params, measure, top_names  # noqa: E402

common.RESULTS = os.environ.get("REFS_RESULTS", "/work/refs/results")  # outside the repository
os.makedirs(common.RESULTS, exist_ok=True)


def tolist(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ------------------------------------------------------------------------------------------------ text encoders
# stabilityai/stable-diffusion-2-1 text_encoder/config.json (OpenCLIP ViT-H/14 text tower, penultimate layer kept:
# 23 of 24 layers); also the text encoder of stabilityai/stable-diffusion-x4-upscaler
CLIP_H = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
              num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)
# stabilityai/stable-diffusion-xl-base-1.0 text_encoder/config.json (OpenAI CLIP ViT-L/14, as in SD 1.5)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
# stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json (OpenCLIP ViT-bigG/14, with projection)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                 num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
# google/t5-v1_1-xxl encoder (DeepFloyd/IF-I-XL-v1.0 text_encoder/config.json, T5EncoderModel)
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128,
              feed_forward_proj="gated-gelu", tie_word_embeddings=False, is_encoder_decoder=False, use_cache=False)


def clip_text(cfg, cls=CLIPTextModel, batches=(2, 1), hidden_states=False):
    out = {"config": dict(cls=f"transformers.{cls.__name__}", **cfg)}
    runs = {}
    for impl in ("eager", "sdpa"):
        with torch.device("meta"):
            m = cls(CLIPTextConfig(**cfg))
        m.set_attn_implementation(impl)
        m.eval()
        out["params"] = count_params(m)
        res = {}
        for b in batches:
            ids = torch.zeros(b, 77, dtype=torch.long, device="meta")
            r = measure(lambda: m(input_ids=ids, output_hidden_states=hidden_states))
            r["attention_check"] = attention_bmm_check(r, m, cls.__name__, (CLIPAttention,))
            r["inputs"] = {"input_ids": [b, 77], "output_hidden_states": hidden_states}
            res[f"batch{b}"] = clean(r)
        runs[impl] = res
    for k in runs["eager"]:
        assert runs["eager"][k]["by_category"] == runs["sdpa"][k]["by_category"], k
    out["flops"] = runs["eager"]
    out["attention_counting"] = "attn_implementation='eager'; cross-checked with 'sdpa': identical per-category totals"
    return out


def t5_encoder(batches=(2, 1), length=77):
    out = {"config": dict(cls="transformers.T5EncoderModel", **T5_XXL)}
    runs = {}
    for impl in ("eager", "sdpa"):
        with torch.device("meta"):
            m = T5EncoderModel(T5Config(**T5_XXL))
        try:
            m.set_attn_implementation(impl)
        except Exception as exc:  # T5 may not offer sdpa; then eager only
            out["sdpa_note"] = f"set_attn_implementation('{impl}') failed: {exc}"
            continue
        m.eval()
        out["params"] = count_params(m)
        out["params_by_child"] = {"shared (= encoder.embed_tokens, tied)": count_params(m.shared),
                                  "encoder.block.0": count_params(m.encoder.block[0]),
                                  "encoder.block.1": count_params(m.encoder.block[1]),
                                  "encoder.final_layer_norm": count_params(m.encoder.final_layer_norm)}
        res = {}
        for b in batches:
            ids = torch.zeros(b, length, dtype=torch.long, device="meta")
            r = measure(lambda: m(input_ids=ids))
            r["attention_check"] = attention_bmm_check(r, m, "T5EncoderModel", (T5Attention,))
            r["inputs"] = {"input_ids": [b, length]}
            res[f"batch{b}"] = clean(r)
        runs[impl] = res
    if "sdpa" in runs:
        for k in runs["eager"]:
            assert runs["eager"][k]["by_category"] == runs["sdpa"][k]["by_category"], k
    out["flops"] = runs["eager"]
    out["attention_counting"] = ("attn_implementation='eager' (matmul QK^T and PV -> aten.bmm; relative position bias is "
                                 "an embedding lookup added to the scores, not counted)")
    return out


# -------------------------------------------------------------------------------------------------- UNets / VAEs
def unet(cfg, cases, kv_processor=False, extra_attn_types=()):
    """cases: name -> dict(sample=shape, ehs=shape, class_labels=len or None, added=dict or None)."""
    with torch.device("meta"):
        m = UNet2DConditionModel(**cfg)
    m.eval()
    root = "UNet2DConditionModel"
    out = {"config": dict(cls="diffusers.UNet2DConditionModel", **tolist(cfg)), "params": count_params(m),
           "params_by_top_level": {n: count_params(m.get_submodule(n)) for n in top_names(m)}}
    procs = ((AttnAddedKVProcessor(), AttnAddedKVProcessor2_0()) if kv_processor else
             (AttnProcessor(), AttnProcessor2_0()))
    flops = {}
    for tag, proc in zip(("math", "sdpa"), procs):
        m.set_attn_processor(proc)
        res = {}
        for name, c in cases.items():
            x = torch.zeros(*c["sample"], device="meta")
            t = torch.tensor(999, device="meta")
            ehs = torch.zeros(*c["ehs"], device="meta")
            kw = {}
            if c.get("class_labels"):
                kw["class_labels"] = torch.zeros(c["class_labels"], dtype=torch.long, device="meta")
            if c.get("added"):
                kw["added_cond_kwargs"] = {k: torch.zeros(*v, device="meta") for k, v in c["added"].items()}
            r = measure(lambda: m(x, t, encoder_hidden_states=ehs, **kw))
            r["attention_check"] = attention_bmm_check(r, m, root, (Attention,) + tuple(extra_attn_types))
            r["inputs"] = {k: v for k, v in c.items()}
            res[name] = clean(r)
        flops[tag] = res
    for name in cases:
        assert flops["math"][name]["by_category"] == flops["sdpa"][name]["by_category"], name
    out["flops"] = flops["math"]
    out["attention_counting"] = (f"{type(procs[0]).__name__} on every Attention (baddbmm QK^T + bmm PV); cross-checked "
                                 f"with {type(procs[1]).__name__} (sdpa -> bmm on meta): identical per-category totals")
    return out


def vae_decode(cfg, sizes):
    with torch.device("meta"):
        m = AutoencoderKL(**cfg)
    m.eval()
    out = {"config": dict(cls="diffusers.AutoencoderKL", **tolist(cfg)),
           "params_decoder_plus_post_quant_conv": count_params(m.decoder) + count_params(m.post_quant_conv)}
    flops = {}
    for tag, proc in (("math", AttnProcessor()), ("sdpa", AttnProcessor2_0())):
        m.set_attn_processor(proc)
        res = {}
        for hw in sizes:
            z = torch.zeros(1, cfg["latent_channels"], hw, hw, device="meta")
            r = measure(lambda: m.decode(z))
            r["attention_check"] = attention_bmm_check(r, m.decoder, "Decoder", (Attention,))
            r["inputs"] = {"z": [1, cfg["latent_channels"], hw, hw], "call": "vae.decode(z)"}
            res[f"latent{hw}_batch1"] = clean(r)
        flops[tag] = res
    for k in flops["math"]:
        assert flops["math"][k]["by_category"] == flops["sdpa"][k]["by_category"], k
    out["flops_decode"] = flops["math"]
    return out


# SD VAE (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1 and SDXL base vae/config.json share it)
SD_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
              layers_per_block=2, latent_channels=4, norm_num_groups=32, act_fn="silu")
# stabilityai/stable-diffusion-x4-upscaler vae/config.json: three levels (x4, not x8)
X4_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
              up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(128, 256, 512),
              layers_per_block=2, latent_channels=4, norm_num_groups=32, act_fn="silu")

# stabilityai/stable-diffusion-2-1 unet/config.json
SD21_UNET = dict(sample_size=96, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
                 attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, upcast_attention=True,
                 norm_num_groups=32, act_fn="silu", downsample_padding=1, mid_block_scale_factor=1, norm_eps=1e-5)

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (identical to /work/refs/scripts/sdxl_dit.py)
SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    only_cross_attention=False, block_out_channels=(320, 640, 1280), layers_per_block=2, downsample_padding=1,
    mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=2048,
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    upcast_attention=False, resnet_time_scale_shift="default", time_embedding_type="positional",
    conv_in_kernel=3, conv_out_kernel=3)

# DeepFloyd/IF-I-XL-v1.0 unet/config.json
IF_I_XL = dict(
    sample_size=64, in_channels=3, out_channels=6, act_fn="gelu", addition_embed_type="text",
    addition_embed_type_num_heads=64, attention_head_dim=64, block_out_channels=(704, 1408, 2112, 2816),
    class_embed_type=None, cross_attention_dim=2816, cross_attention_norm="group_norm",
    down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
    up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", encoder_hid_dim=4096, encoder_hid_dim_type="text_proj",
    flip_sin_to_cos=True, freq_shift=0, layers_per_block=3, mid_block_scale_factor=1, norm_eps=1e-5,
    norm_num_groups=32, only_cross_attention=False, resnet_out_scale_factor=1.0, resnet_skip_time_act=False,
    resnet_time_scale_shift="scale_shift", time_embedding_act_fn=None, time_embedding_dim=None,
    upcast_attention=False, use_linear_projection=False, downsample_padding=1)

# DeepFloyd/IF-II-L-v1.0 unet/config.json (time_embedding_dim / time_embedding_act_fn / up_block_types as set by
# diffusers scripts/convert_if.py get_super_res_unet for the stage-II checkpoint)
IF_II_L = dict(
    sample_size=256, in_channels=6, out_channels=6, act_fn="gelu", addition_embed_type="text",
    addition_embed_type_num_heads=64, attention_head_dim=64, block_out_channels=(160, 320, 640, 960, 1280),
    class_embed_type="timestep", cross_attention_dim=1280, cross_attention_norm="group_norm",
    down_block_types=("ResnetDownsampleBlock2D",) * 3 + ("SimpleCrossAttnDownBlock2D",) * 2,
    up_block_types=("SimpleCrossAttnUpBlock2D",) * 2 + ("ResnetUpsampleBlock2D",) * 3,
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", encoder_hid_dim=4096, encoder_hid_dim_type="text_proj",
    flip_sin_to_cos=True, freq_shift=0, layers_per_block=(2, 2, 3, 5, 5), mid_block_scale_factor=1.4142271248762552,
    norm_eps=1e-5, norm_num_groups=32, only_cross_attention=False, resnet_out_scale_factor=1.4142271248762552,
    resnet_skip_time_act=True, resnet_time_scale_shift="scale_shift", time_embedding_act_fn="gelu",
    time_embedding_dim=1280, upcast_attention=False, use_linear_projection=False, downsample_padding=1)

# stabilityai/stable-diffusion-x4-upscaler unet/config.json
X4_UNET = dict(
    sample_size=128, in_channels=7, out_channels=4, act_fn="silu", attention_head_dim=8,
    block_out_channels=(256, 512, 512, 1024), cross_attention_dim=1024,
    down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",), downsample_padding=1, flip_sin_to_cos=True,
    freq_shift=0, layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32,
    num_class_embeds=1000, only_cross_attention=(True, True, True, False), use_linear_projection=True)


def sd21():
    data = {"model_id": "sd21", "source": "stabilityai/stable-diffusion-2-1 public configs (inline)"}
    data["text_encoder"] = clip_text(CLIP_H)
    data["unet"] = unet(SD21_UNET, {
        "latent96_batch2": dict(sample=[2, 4, 96, 96], ehs=[2, 77, 1024]),
        "latent64_batch2": dict(sample=[2, 4, 64, 64], ehs=[2, 77, 1024]),
        "latent96_batch1": dict(sample=[1, 4, 96, 96], ehs=[1, 77, 1024])})
    data["vae"] = vae_decode(SD_VAE, (96, 64))
    common.write("unet_diffusion_sd21", data)


def sdxl():
    data = {"model_id": "sdxl", "source": "stabilityai/stable-diffusion-xl-base-1.0 public configs (inline)"}
    # the pipeline keeps hidden_states[-2] of both encoders (output_hidden_states=True: every layer still runs);
    # force_zeros_for_empty_prompt=True: the negative prompt is zeros, so the encoders see the prompt only
    data["text_encoder"] = clip_text(CLIP_L, batches=(1, 2), hidden_states=True)
    data["text_encoder_2"] = clip_text(CLIP_BIGG, CLIPTextModelWithProjection, batches=(1, 2), hidden_states=True)
    added = lambda b: {"text_embeds": [b, 1280], "time_ids": [b, 6]}  # noqa: E731
    data["unet"] = unet(SDXL_UNET, {
        "latent128_batch2": dict(sample=[2, 4, 128, 128], ehs=[2, 77, 2048], added=added(2)),
        "latent96_batch2": dict(sample=[2, 4, 96, 96], ehs=[2, 77, 2048], added=added(2))})
    data["vae"] = vae_decode(SD_VAE, (128, 96))
    common.write("unet_diffusion_sdxl", data)


def deepfloyd_if():
    data = {"model_id": "deepfloyd-if",
            "source": "DeepFloyd/IF-I-XL-v1.0, DeepFloyd/IF-II-L-v1.0, stabilityai/stable-diffusion-x4-upscaler "
                      "public configs (inline)"}
    data["text_encoder"] = t5_encoder()
    data["unet_if_i_xl"] = unet(IF_I_XL, {
        "px64_batch2": dict(sample=[2, 3, 64, 64], ehs=[2, 77, 4096]),
        "px48_batch2": dict(sample=[2, 3, 48, 48], ehs=[2, 77, 4096])},
        kv_processor=True, extra_attn_types=(AttentionPooling,))
    data["unet_if_ii_l"] = unet(IF_II_L, {
        "px256_batch2": dict(sample=[2, 6, 256, 256], ehs=[2, 77, 4096], class_labels=2),
        "px192_batch2": dict(sample=[2, 6, 192, 192], ehs=[2, 77, 4096], class_labels=2)},
        kv_processor=True, extra_attn_types=(AttentionPooling,))
    data["x4_text_encoder"] = clip_text(CLIP_H, batches=(2,))
    data["unet_x4_upscaler"] = unet(X4_UNET, {
        "latent256_batch2": dict(sample=[2, 7, 256, 256], ehs=[2, 77, 1024], class_labels=2),
        "latent192_batch2": dict(sample=[2, 7, 192, 192], ehs=[2, 77, 1024], class_labels=2)})
    data["x4_vae"] = vae_decode(X4_VAE, (256, 192))
    common.write("unet_diffusion_deepfloyd-if", data)


# Imagen has no reference implementation. This is a STRUCTURAL cross-check only: the base 64x64 U-Net of
# models/imagen.yaml (App. F.1 read as ADM with BigGAN resampling, fused text attention, attention pooling) is the
# same graph as diffusers' IF-style UNet2DConditionModel with Imagen's widths, so its matmul/conv FLOPs and
# parameters must agree with it. It verifies the YAML wiring, not that this is Google's Imagen.
IMAGEN_BASE_AS_IF = dict(IF_I_XL, block_out_channels=(512, 1024, 1536, 2048), cross_attention_dim=2048,
                         out_channels=3, act_fn="silu")


def imagen_structure():
    data = {"model_id": "imagen-base-structure",
            "note": "structural cross-check of models/imagen.yaml's base U-Net; NOT a reference implementation",
            "unet": unet(IMAGEN_BASE_AS_IF, {
                "px64_batch2_text128": dict(sample=[2, 3, 64, 64], ehs=[2, 128, 4096]),
                "px32_batch2_text128": dict(sample=[2, 3, 32, 32], ehs=[2, 128, 4096])},
                kv_processor=True, extra_attn_types=(AttentionPooling,))}
    common.write("unet_diffusion_imagen-base-structure", data)


if __name__ == "__main__":
    todo = sys.argv[1:] or ["sd21", "sdxl", "deepfloyd-if", "imagen-structure"]
    for name in todo:
        {"sd21": sd21, "sdxl": sdxl, "deepfloyd-if": deepfloyd_if, "imagen-structure": imagen_structure}[name]()
