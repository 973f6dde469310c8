"""Config fixtures of `python -m simulator import` (tests/data/configs/) and the meta-device counts of the mutated ones.

Every config is written by the libraries themselves, from models built on the `meta` device (no weights, no hub
access): diffusers' `save_config` for diffusers models and pipelines (model_index.json), transformers'
`config.save_pretrained` for text encoders and LLMs. The public configs are those of the built-in models
(the dictionaries in sd15.py, unet_diffusion.py and llama.py); the `mutated/` configs change layer counts, heads and
widths, and this script prints their parameter and FLOP counts (FlopCounterMode, math attention path, the
categories of common.py) for tests/test_importer.py.

    <refvenv>/bin/python tools/refcounts/save_configs.py [OUT]     # OUT defaults to tests/data/configs
"""
import inspect
import json
import os
import sys

import torch
from diffusers import (AutoencoderKL, AutoencoderKLCogVideoX, AutoencoderKLHunyuanVideo, AutoencoderKLLTXVideo,
                       AutoencoderKLMochi, AutoencoderKLQwenImage, AutoencoderKLWan, CogVideoXDDIMScheduler,
                       CogVideoXPipeline, CogVideoXTransformer3DModel, DiTPipeline, DiTTransformer2DModel,
                       DPMSolverMultistepScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler,
                       FluxPipeline, FluxTransformer2DModel, HunyuanVideoPipeline, HunyuanVideoTransformer3DModel,
                       LTXPipeline, LTXVideoTransformer3DModel, MochiPipeline, MochiTransformer3DModel,
                       PixArtAlphaPipeline, PixArtTransformer2DModel, PNDMScheduler, QwenImagePipeline,
                       QwenImageTransformer2DModel, SD3Transformer2DModel, StableDiffusion3Pipeline,
                       StableDiffusionPipeline, StableDiffusionXLPipeline, TextToVideoSDPipeline, UNet2DConditionModel,
                       UNet3DConditionModel, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel)
from diffusers.models.attention_processor import AttnProcessor
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, LlamaConfig, LlamaForCausalLM,
                          LlamaModel, MixtralConfig, MixtralForCausalLM, Qwen2_5_VLConfig,
                          Qwen2_5_VLForConditionalGeneration, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import count_params, measure  # noqa: E402
from dit import CLIP_G, CLIP_L, DIT, FLUX, PIXART, SD3, T5_XXL, VAE4, VAE16  # noqa: E402
from llama import CONFIGS as LLAMA  # noqa: E402
from models2025 import CLIP_L as HY_CLIP_L  # noqa: E402
from models2025 import HY_DIT, HY_LLAMA, HY_VAE, MIXTRAL, QWEN_DIT, QWEN_LM, QWEN_VAE, SD35_LARGE  # noqa: E402
from video2025 import (LTX, LTX_VAE, MOCHI, MOCHI_VAE, UMT5_XXL, WAN, WAN_COMMON, WAN_VAE,  # noqa: E402
                       AllTokensMochiProcessor, _mochi_rope_without_autocast)
from sd15 import CLIP_CFG, UNET_CFG  # noqa: E402
from unet_diffusion import SD21_UNET, SD_VAE, SDXL_UNET  # noqa: E402
from video import COG, COG_COMMON, COG_VAE, MS_TEXT, MS_UNET  # noqa: E402
from video import SD_VAE as MS_VAE  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "configs")

# sample_size of the public vae/config.json files (the SD VAE architecture is shared; AutoencoderKL tiles its
# decoding in tiles of sample_size pixels): SD 1.5 512, SD 2.1 768, SDXL (sdxl-vae) 1024
SD15_VAE, SD21_VAE, SDXL_VAE = (dict(SD_VAE, sample_size=n) for n in (512, 768, 1024))
# stabilityai/stable-diffusion-2-1 text_encoder/config.json (OpenCLIP ViT-H/14 text tower, 23 layers)
SD21_CLIP = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                 num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)
# stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json (OpenCLIP ViT-bigG/14)
SDXL_CLIP2 = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                  num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)


def pipeline(folder, pipe_cls, scheduler, parts):
    """model_index.json through the pipeline's own save_config, then one config per component."""
    os.makedirs(folder, exist_ok=True)
    absent = {name: None for name, p in inspect.signature(pipe_cls.__init__).parameters.items()
              if name not in parts and name not in ("self", "scheduler") and p.default is inspect.Parameter.empty}
    extra = {"requires_safety_checker": False} if pipe_cls is StableDiffusionPipeline else {}
    pipe = pipe_cls(**parts, scheduler=scheduler, **absent, **extra)
    pipe.save_config(folder)
    for name, module in parts.items():
        sub = os.path.join(folder, name)
        if hasattr(module, "save_config"):
            module.save_config(sub)
        else:
            save_transformers(module, sub)


def save_transformers(model, folder):
    """config.json as `model.save_pretrained` writes it (which records the class under `architectures`), without
    the weights a meta model does not have."""
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)


def diffusers_model(cls, cfg):
    with torch.device("meta"):
        return cls(**cfg)


def clip(cfg, cls=CLIPTextModel):
    with torch.device("meta"):
        return cls(CLIPTextConfig(**cfg))


def t5(cfg):
    with torch.device("meta"):
        return T5EncoderModel(T5Config(**cfg))


def umt5(cfg):
    with torch.device("meta"):
        return UMT5EncoderModel(UMT5Config(**cfg))


def save_builtins():
    pipeline(os.path.join(OUT, "sd15"), StableDiffusionPipeline, PNDMScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, SD15_VAE), text_encoder=clip(CLIP_CFG),
                  unet=diffusers_model(UNet2DConditionModel, UNET_CFG)))
    pipeline(os.path.join(OUT, "sd21"), StableDiffusionPipeline, PNDMScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, SD21_VAE), text_encoder=clip(SD21_CLIP),
                  unet=diffusers_model(UNet2DConditionModel, SD21_UNET)))
    pipeline(os.path.join(OUT, "sdxl"), StableDiffusionXLPipeline, EulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, SDXL_VAE), text_encoder=clip(CLIP_CFG),
                  text_encoder_2=clip(SDXL_CLIP2, CLIPTextModelWithProjection),
                  unet=diffusers_model(UNet2DConditionModel, SDXL_UNET)))
    # the transformer text-to-image models (dit.py's configs)
    pipeline(os.path.join(OUT, "dit-xl-2"), DiTPipeline, DPMSolverMultistepScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, VAE4),
                  transformer=diffusers_model(DiTTransformer2DModel, dict(DIT, sample_size=32))))
    pipeline(os.path.join(OUT, "pixart-alpha"), PixArtAlphaPipeline, DPMSolverMultistepScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, VAE4), text_encoder=t5(T5_XXL),
                  transformer=diffusers_model(PixArtTransformer2DModel, PIXART)))
    pipeline(os.path.join(OUT, "sd3-medium"), StableDiffusion3Pipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, VAE16), text_encoder=clip(CLIP_L, CLIPTextModelWithProjection),
                  text_encoder_2=clip(CLIP_G, CLIPTextModelWithProjection), text_encoder_3=t5(T5_XXL),
                  transformer=diffusers_model(SD3Transformer2DModel, SD3)))
    # stabilityai/stable-diffusion-3.5-large: SD3 Medium's encoders and VAE (models2025.py), the 8B transformer
    pipeline(os.path.join(OUT, "sd35-large"), StableDiffusion3Pipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, VAE16), text_encoder=clip(CLIP_L, CLIPTextModelWithProjection),
                  text_encoder_2=clip(CLIP_G, CLIPTextModelWithProjection), text_encoder_3=t5(T5_XXL),
                  transformer=diffusers_model(SD3Transformer2DModel, SD35_LARGE)))
    pipeline(os.path.join(OUT, "flux1-dev"), FluxPipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, VAE16), text_encoder=clip(CLIP_L), text_encoder_2=t5(T5_XXL),
                  transformer=diffusers_model(FluxTransformer2DModel, FLUX)))
    # video models (video.py's configs)
    pipeline(os.path.join(OUT, "modelscope-t2v"), TextToVideoSDPipeline, DPMSolverMultistepScheduler(),
             dict(vae=diffusers_model(AutoencoderKL, MS_VAE), text_encoder=clip(MS_TEXT),
                  unet=diffusers_model(UNet3DConditionModel, MS_UNET)))
    for name, extra in WAN.items():   # Wan 2.1's pipelines (video2025.py's configs)
        pipeline(os.path.join(OUT, name), WanPipeline, UniPCMultistepScheduler(),
                 dict(vae=diffusers_model(AutoencoderKLWan, WAN_VAE), text_encoder=umt5(UMT5_XXL),
                      transformer=diffusers_model(WanTransformer3DModel, dict(WAN_COMMON, **extra))))
    # Lightricks/LTX-Video 0.9.0 (video2025.py's configs)
    pipeline(os.path.join(OUT, "ltx-video"), LTXPipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKLLTXVideo, LTX_VAE), text_encoder=t5(T5_XXL),
                  transformer=diffusers_model(LTXVideoTransformer3DModel, LTX)))
    # genmo/mochi-1-preview (video2025.py's configs)
    pipeline(os.path.join(OUT, "mochi-1"), MochiPipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKLMochi, MOCHI_VAE), text_encoder=t5(T5_XXL),
                  transformer=diffusers_model(MochiTransformer3DModel, MOCHI)))
    # hunyuanvideo-community/HunyuanVideo (models2025.py's configs): the Llama language model and CLIP-L encoders
    with torch.device("meta"):
        hy_llama = LlamaModel(LlamaConfig(**HY_LLAMA))
    pipeline(os.path.join(OUT, "hunyuanvideo"), HunyuanVideoPipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKLHunyuanVideo, HY_VAE), text_encoder=hy_llama,
                  text_encoder_2=clip(HY_CLIP_L), transformer=diffusers_model(HunyuanVideoTransformer3DModel, HY_DIT)))
    # Qwen/Qwen-Image: Qwen2.5-VL-7B's language model config (models2025.py's QWEN_LM) in its
    # Qwen2_5_VLForConditionalGeneration config (the vision tower's default config, which the importer ignores)
    with torch.device("meta"):
        qwen_vl = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=QWEN_LM))
    pipeline(os.path.join(OUT, "qwen-image"), QwenImagePipeline, FlowMatchEulerDiscreteScheduler(),
             dict(vae=diffusers_model(AutoencoderKLQwenImage, QWEN_VAE), text_encoder=qwen_vl,
                  transformer=diffusers_model(QwenImageTransformer2DModel, QWEN_DIT)))
    for name, extra in COG.items():   # THUDM/CogVideoX-2b and -5b (video.py's configs)
        pipeline(os.path.join(OUT, name), CogVideoXPipeline, CogVideoXDDIMScheduler(),
                 dict(vae=diffusers_model(AutoencoderKLCogVideoX, COG_VAE), text_encoder=t5(T5_XXL),
                      transformer=diffusers_model(CogVideoXTransformer3DModel, dict(COG_COMMON, **extra))))
    with torch.device("meta"):   # mistralai/Mixtral-8x7B-v0.1, released in bfloat16
        save_transformers(MixtralForCausalLM(MixtralConfig(**MIXTRAL, dtype="bfloat16")),
                          os.path.join(OUT, "mixtral-8x7b"))
    for name, cfg in LLAMA.items():
        with torch.device("meta"):
            save_transformers(LlamaForCausalLM(LlamaConfig(**cfg, dtype=RELEASE_DTYPE[name])), os.path.join(OUT, name))


# torch_dtype of the public meta-llama configs: Llama 2 released in float16, Llama 3 in bfloat16
RELEASE_DTYPE = {"llama2-7b": "float16", "llama2-70b": "float16", "llama3-8b": "bfloat16"}


# ------------------------------------------------------------------ mutated configs: layer counts, heads, widths
MUTATED_UNET = dict(UNET_CFG, block_out_channels=(64, 128, 192, 192), layers_per_block=1, attention_head_dim=4,
                    cross_attention_dim=256, norm_num_groups=16)
MUTATED_UNET_XL = dict(SDXL_UNET, block_out_channels=(64, 128, 256), transformer_layers_per_block=(1, 3, 2),
                       attention_head_dim=(2, 4, 8), cross_attention_dim=512, projection_class_embeddings_input_dim=
                       512 + 6 * 256, norm_num_groups=16)
MUTATED_VAE = dict(SD_VAE, block_out_channels=(64, 128, 128), layers_per_block=1, latent_channels=8,
                   norm_num_groups=16, down_block_types=("DownEncoderBlock2D",) * 3,
                   up_block_types=("UpDecoderBlock2D",) * 3)
MUTATED_CLIP = dict(CLIP_CFG, hidden_size=384, intermediate_size=1000, num_hidden_layers=5, num_attention_heads=6,
                    hidden_act="gelu")
MUTATED_DIT = dict(DIT, num_attention_heads=6, attention_head_dim=48, num_layers=3, num_embeds_ada_norm=100,
                   sample_size=16, activation_fn="gelu")
MUTATED_PIXART = dict(PIXART, num_attention_heads=4, attention_head_dim=48, num_layers=3, cross_attention_dim=192,
                      caption_channels=256)
MUTATED_SD3 = dict(SD3, num_layers=3, attention_head_dim=32, num_attention_heads=6, joint_attention_dim=256,
                   caption_projection_dim=192, pooled_projection_dim=128, pos_embed_max_size=64)
MUTATED_SD35 = dict(MUTATED_SD3, qk_norm="rms_norm")
MUTATED_FLUX = dict(FLUX, num_layers=2, num_single_layers=3, attention_head_dim=32, num_attention_heads=4,
                    joint_attention_dim=256, pooled_projection_dim=96, axes_dims_rope=(8, 12, 12),
                    guidance_embeds=False)
MUTATED_COG = dict(COG_COMMON, **COG["cogvideox-5b"]) | dict(num_attention_heads=4, attention_head_dim=32, num_layers=2,
                                                          text_embed_dim=256, time_embed_dim=64, max_text_seq_length=50)
MUTATED_UNET3D = dict(MS_UNET, block_out_channels=(64, 128, 192, 192), layers_per_block=1, attention_head_dim=32,
                      cross_attention_dim=256, norm_num_groups=16)
MUTATED_MIXTRAL = dict(MIXTRAL, vocab_size=1000, hidden_size=256, intermediate_size=320, num_hidden_layers=2,
                       num_attention_heads=8, num_key_value_heads=4, num_local_experts=6, num_experts_per_tok=3)
MUTATED_WAN = dict(WAN_COMMON, num_attention_heads=4, attention_head_dim=32, ffn_dim=300, num_layers=2, text_dim=256,
                   freq_dim=64)
MUTATED_LTX = dict(LTX, num_attention_heads=4, attention_head_dim=32, cross_attention_dim=128, num_layers=2,
                   caption_channels=256, in_channels=32, out_channels=32)
MUTATED_MOCHI = dict(MOCHI, num_attention_heads=4, attention_head_dim=32, num_layers=3, pooled_projection_dim=96,
                     text_embed_dim=256, time_embed_dim=64)
MUTATED_HUNYUAN = dict(HY_DIT, num_attention_heads=4, attention_head_dim=32, num_layers=2, num_single_layers=3,
                       num_refiner_layers=1, text_embed_dim=256, pooled_projection_dim=96, rope_axes_dim=(8, 12, 12))
MUTATED_QWEN = dict(QWEN_DIT, num_attention_heads=4, attention_head_dim=32, num_layers=3, joint_attention_dim=256,
                    axes_dims_rope=(8, 12, 12))
# AutoencoderKLWan with three levels (32, 64, 64 channels), one res block per level, 8 latent channels, time
# upsampling at the first of the two upsamplers only
MUTATED_WAN_VAE = dict(WAN_VAE, base_dim=32, z_dim=8, dim_mult=[1, 2, 2], num_res_blocks=1,
                       temperal_downsample=[False, True], latents_mean=[0.0] * 8, latents_std=[1.0] * 8)
# umT5 with d_model 256, 6 heads of 32 (inner 192, not d_model), d_ff 500, 3 layers, vocab 1000
MUTATED_UMT5 = dict(UMT5_XXL, vocab_size=1000, d_model=256, d_kv=32, num_heads=6, d_ff=500, num_layers=3)
# AutoencoderKLQwenImage with the mutated Wan VAE's levels (base_dim 32, dim_mult (1, 2, 2), one res block)
MUTATED_QWEN_VAE = dict(QWEN_VAE, base_dim=32, z_dim=8, dim_mult=[1, 2, 2], num_res_blocks=1,
                        temperal_downsample=[False, True], latents_mean=[0.0] * 8, latents_std=[1.0] * 8)
# Qwen2.5-VL whose language model has hidden 256, 8 heads, 2 key/value heads, intermediate 600, 3 layers, vocab 1000
# (the vision tower's default config: not run on a text prompt); multimodal RoPE sections (4, 6, 6) cover its head
# dim of 32
MUTATED_QWEN_LM = dict(QWEN_LM, vocab_size=1000, hidden_size=256, intermediate_size=600, num_hidden_layers=3,
                       num_attention_heads=8, num_key_value_heads=2,
                       rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=[4, 6, 6]))
MUTATED_LLAMA = dict(LLAMA["llama3-8b"], vocab_size=1000, hidden_size=512, intermediate_size=1376,
                     num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2)


# The 2025 pipelines' VAEs and text encoder with other widths, depths and compression factors (each decoded on a
# few latent frames, so every per-call path of its decode runs: CogVideoX's 3 + 2 frame batches, HunyuanVideo's
# temporal tiles)
MUTATED_COG_VAE = dict(COG_VAE, block_out_channels=(32, 64, 64), latent_channels=8, layers_per_block=1,
                       norm_num_groups=16, temporal_compression_ratio=2, sample_height=64, sample_width=64,
                       down_block_types=("CogVideoXDownBlock3D",) * 3, up_block_types=("CogVideoXUpBlock3D",) * 3)
MUTATED_LTX_VAE = dict(LTX_VAE, latent_channels=16, block_out_channels=(32, 64, 64),
                       decoder_block_out_channels=(32, 64, 64), layers_per_block=(1, 1, 1, 1),
                       decoder_layers_per_block=(1, 2, 1, 2), spatio_temporal_scaling=(True, True, False),
                       decoder_spatio_temporal_scaling=(True, True, False), decoder_inject_noise=(False,) * 4,
                       down_block_types=("LTXVideoDownBlock3D",) * 3, downsample_type=("conv",) * 3,
                       upsample_residual=(False,) * 3, upsample_factor=(1,) * 3)
MUTATED_MOCHI_VAE = dict(MOCHI_VAE, latent_channels=8, decoder_block_out_channels=(32, 64, 64, 96),
                         layers_per_block=(1, 1, 2, 1, 1), temporal_expansions=(1, 2, 2), spatial_expansions=(1, 2, 2))
MUTATED_HY_VAE = dict(HY_VAE, block_out_channels=(32, 64, 64), latent_channels=8, layers_per_block=1,
                      norm_num_groups=16, spatial_compression_ratio=4,
                      down_block_types=("HunyuanVideoDownBlock3D",) * 3, up_block_types=("HunyuanVideoUpBlock3D",) * 3)
# HunyuanVideo's Llama text encoder (LlamaModel, no LM head) with the mutated Llama's widths
MUTATED_LLAMA_MODEL = dict(HY_LLAMA, vocab_size=1000, hidden_size=512, intermediate_size=1376, num_hidden_layers=3,
                           num_attention_heads=8, num_key_value_heads=2)


def decoder_params(vae):
    post = getattr(vae, "post_quant_conv", None)
    return count_params(vae.decoder) + (count_params(post) if post is not None else 0)


def count_mutated_video_pipelines(folder):
    """The mutated configs of the classes behind the CogVideoX, LTX-Video, Mochi and HunyuanVideo pipelines."""
    out = {}
    for name, cls, cfg, z, note in (
            ("cog-vae", AutoencoderKLCogVideoX, MUTATED_COG_VAE, (1, 8, 5, 16, 16),
             "5 latent frames at 64 px: decoder calls on frames 0-2 and 3-4 with conv caches"),
            ("ltx-vae", AutoencoderKLLTXVideo, MUTATED_LTX_VAE, (1, 16, 3, 4, 4), "9 frames at 64 px, one pass"),
            ("mochi-vae", AutoencoderKLMochi, MUTATED_MOCHI_VAE, (1, 8, 3, 8, 8), "9 frames at 32 px, one pass"),
            ("hunyuan-vae", AutoencoderKLHunyuanVideo, MUTATED_HY_VAE, (1, 8, 9, 16, 16),
             "33 frames at 64 px: frame-wise decoding, temporal tiles at latent frames 0, 3 and 6")):
        vae = diffusers_model(cls, cfg)
        vae.save_config(os.path.join(folder, name))
        out[name] = {"params": decoder_params(vae), "flops": flops(lambda: vae.decode(torch.zeros(*z, device="meta"))),
                     "inputs": f"vae.decode(z), z {list(z)} ({note}); params = decoder + post_quant_conv"}
    with torch.device("meta"):
        lm = LlamaModel(LlamaConfig(**MUTATED_LLAMA_MODEL))
    lm.set_attn_implementation("eager")
    save_transformers(lm, os.path.join(folder, "llama-model"))
    out["llama-model"] = {"params": count_params(lm), "flops": flops(lambda: lm(
        input_ids=torch.zeros(2, 40, dtype=torch.long, device="meta"))), "inputs": "input_ids [2, 40]"}
    return out


def flops(fn):
    r = measure(fn)
    return {k: r["by_category"][k] for k in ("conv", "linear", "attention")}


def count_mutated():
    out = {}
    folder = os.path.join(OUT, "mutated")
    unet = diffusers_model(UNet2DConditionModel, MUTATED_UNET)
    unet.set_attn_processor(AttnProcessor())
    unet.save_config(os.path.join(folder, "unet"))
    out["unet"] = {"params": count_params(unet), "flops": flops(lambda: unet(
        torch.zeros(2, 4, 32, 32, device="meta"), torch.tensor(999, device="meta"),
        torch.zeros(2, 77, 256, device="meta"))), "inputs": "sample [2, 4, 32, 32], context [2, 77, 256]"}
    xl = diffusers_model(UNet2DConditionModel, MUTATED_UNET_XL)
    xl.set_attn_processor(AttnProcessor())
    xl.save_config(os.path.join(folder, "unet-xl"))
    out["unet-xl"] = {"params": count_params(xl), "flops": flops(lambda: xl(
        torch.zeros(2, 4, 32, 32, device="meta"), torch.tensor(999, device="meta"),
        torch.zeros(2, 77, 512, device="meta"), added_cond_kwargs={
            "text_embeds": torch.zeros(2, 512, device="meta"), "time_ids": torch.zeros(2, 6, device="meta")})),
        "inputs": "sample [2, 4, 32, 32], context [2, 77, 512], text_embeds [2, 512], time_ids [2, 6]"}
    vae = diffusers_model(AutoencoderKL, MUTATED_VAE)
    vae.set_attn_processor(AttnProcessor())
    vae.save_config(os.path.join(folder, "vae"))
    out["vae"] = {"params": count_params(vae.decoder) + count_params(vae.post_quant_conv),
                  "flops": flops(lambda: vae.decode(torch.zeros(1, 8, 32, 32, device="meta"))),
                  "inputs": "vae.decode(z), z [1, 8, 32, 32]"}
    te = clip(MUTATED_CLIP)
    te.set_attn_implementation("eager")
    save_transformers(te, os.path.join(folder, "clip"))
    out["clip"] = {"params": count_params(te), "flops": flops(lambda: te(
        input_ids=torch.zeros(2, 77, dtype=torch.long, device="meta"))), "inputs": "input_ids [2, 77]"}
    dit = diffusers_model(DiTTransformer2DModel, MUTATED_DIT)
    for module in dit.modules():
        if hasattr(module, "set_processor"):
            module.set_processor(AttnProcessor())
    dit.save_config(os.path.join(folder, "dit"))
    r = measure(lambda: dit(torch.zeros(2, 4, 16, 16, device="meta"), timestep=torch.zeros(2, dtype=torch.long,
                device="meta"), class_labels=torch.zeros(2, dtype=torch.long, device="meta")))
    # the original DiT (and the simulator) shares one timestep/class embedder and evaluates it once; diffusers
    # copies it into every block and evaluates it L + 1 times (as dit.py's dit_one), and keeps the sin-cos
    # pos_embed as a buffer where the original stores a parameter
    layers, d = MUTATED_DIT["num_layers"], 6 * 48
    emb = count_params(dit.transformer_blocks[0].norm1.emb)
    per_emb = sum(int(v) for v in r["_counts"]["DiTTransformer2DModel.transformer_blocks.1.norm1.emb"].values())
    tokens = (16 // 2) ** 2
    out["dit"] = {"params": count_params(dit) - (layers - 1) * emb + tokens * d,
                  "flops": {"conv": r["by_category"]["conv"], "linear": r["by_category"]["linear"] - layers * per_emb,
                            "attention": r["by_category"]["attention"]},
                  "inputs": "hidden_states [2, 4, 16, 16], timestep [2], class_labels [2]; original-DiT params and "
                            "linear FLOPs (shared embedders, pos_embed a parameter)"}
    pixart = diffusers_model(PixArtTransformer2DModel, MUTATED_PIXART)
    pixart.set_attn_processor(AttnProcessor())
    pixart.save_config(os.path.join(folder, "pixart"))
    out["pixart"] = {"params": count_params(pixart), "flops": flops(lambda: pixart(
        torch.zeros(2, 4, 32, 32, device="meta"), encoder_hidden_states=torch.zeros(2, 120, 256, device="meta"),
        timestep=torch.zeros(2, dtype=torch.long, device="meta"), added_cond_kwargs={
            "resolution": torch.zeros(2, 2, device="meta"), "aspect_ratio": torch.zeros(2, 1, device="meta")})),
        "inputs": "hidden_states [2, 4, 32, 32], encoder_hidden_states [2, 120, 256], timestep [2], resolution "
                  "[2, 2], aspect_ratio [2, 1]"}
    sd3 = diffusers_model(SD3Transformer2DModel, MUTATED_SD3)
    sd3.save_config(os.path.join(folder, "sd3"))
    out["sd3"] = {"params": count_params(sd3), "flops": flops(lambda: sd3(
        torch.zeros(2, 16, 32, 32, device="meta"), encoder_hidden_states=torch.zeros(2, 100, 256, device="meta"),
        pooled_projections=torch.zeros(2, 128, device="meta"), timestep=torch.zeros(2, device="meta"))),
        "inputs": "hidden_states [2, 16, 32, 32], encoder_hidden_states [2, 100, 256], pooled [2, 128]; default "
                  "JointAttnProcessor2_0 (sdpa decomposes to bmm on meta, as dit.py)"}
    sd35 = diffusers_model(SD3Transformer2DModel, MUTATED_SD35)
    sd35.save_config(os.path.join(folder, "sd35"))
    out["sd35"] = {"params": count_params(sd35), "flops": flops(lambda: sd35(
        torch.zeros(2, 16, 32, 32, device="meta"), encoder_hidden_states=torch.zeros(2, 100, 256, device="meta"),
        pooled_projections=torch.zeros(2, 128, device="meta"), timestep=torch.zeros(2, device="meta"))),
        "inputs": "as sd3, with qk_norm rms_norm"}
    fl = diffusers_model(FluxTransformer2DModel, MUTATED_FLUX)
    fl.save_config(os.path.join(folder, "flux"))
    out["flux"] = {"params": count_params(fl), "flops": flops(lambda: fl(
        torch.zeros(1, 256, 64, device="meta"), encoder_hidden_states=torch.zeros(1, 64, 256, device="meta"),
        pooled_projections=torch.zeros(1, 96, device="meta"), timestep=torch.zeros(1, device="meta"),
        img_ids=torch.zeros(256, 3, device="meta"), txt_ids=torch.zeros(64, 3, device="meta"))),
        "inputs": "hidden_states [1, 256, 64] (256 px: 16 x 16 packed tokens), encoder_hidden_states [1, 64, 256], "
                  "pooled [1, 96], no guidance embedding; default FluxAttnProcessor (bmm on meta, as dit.py)"}
    cog = diffusers_model(CogVideoXTransformer3DModel, MUTATED_COG)
    cog.save_config(os.path.join(folder, "cogvideox"))
    n = 4 * 8 * 8  # video tokens: 4 latent frames of 8 x 8 patches; RoPE cos / sin per token, head_dim wide
    out["cogvideox"] = {"params": count_params(cog), "flops": flops(lambda: cog(
        hidden_states=torch.zeros(2, 4, 16, 16, 16, device="meta"),
        encoder_hidden_states=torch.zeros(2, 50, 256, device="meta"),
        timestep=torch.zeros(2, dtype=torch.long, device="meta"),
        image_rotary_emb=(torch.zeros(n, 32, device="meta"), torch.zeros(n, 32, device="meta")))),
        "inputs": "hidden_states [2, 4, 16, 16, 16] (13 frames, 128 px), encoder_hidden_states [2, 50, 256], RoPE "
                  "[256, 32] x 2; CogVideoXAttnProcessor2_0 (sdpa -> bmm on meta, as video.py)"}
    u3 = diffusers_model(UNet3DConditionModel, MUTATED_UNET3D)
    u3.set_attn_processor(AttnProcessor())
    u3.save_config(os.path.join(folder, "unet3d"))
    out["unet3d"] = {"params": count_params(u3), "flops": flops(lambda: u3(
        torch.zeros(2, 4, 8, 16, 16, device="meta"), torch.tensor(999, device="meta"),
        encoder_hidden_states=torch.zeros(2, 77, 256, device="meta"))),
        "inputs": "sample [2, 4, 8, 16, 16] (8 frames, 128 px), timestep 999, encoder_hidden_states [2, 77, 256]"}
    wan = diffusers_model(WanTransformer3DModel, MUTATED_WAN)
    wan.save_config(os.path.join(folder, "wan"))
    out["wan"] = {"params": count_params(wan), "flops": flops(lambda: wan(
        hidden_states=torch.zeros(1, 16, 5, 16, 16, device="meta"), timestep=torch.zeros(1, dtype=torch.long,
        device="meta"), encoder_hidden_states=torch.zeros(1, 64, 256, device="meta"))),
        "inputs": "hidden_states [1, 16, 5, 16, 16] (17 frames, 128 px), encoder_hidden_states [1, 64, 256]; "
                  "WanAttnProcessor (sdpa -> bmm on meta, as video2025.py)"}
    lt = diffusers_model(LTXVideoTransformer3DModel, MUTATED_LTX)
    lt.save_config(os.path.join(folder, "ltx"))
    n = 3 * 4 * 4   # 17 frames at 128 px: 3 latent frames of 4 x 4 (32x space, 8x time)
    out["ltx"] = {"params": count_params(lt), "flops": flops(lambda: lt(
        hidden_states=torch.zeros(2, n, 32, device="meta"), encoder_hidden_states=torch.zeros(2, 64, 256,
        device="meta"), timestep=torch.zeros(2, device="meta"), encoder_attention_mask=torch.ones(2, 64,
        device="meta"), num_frames=3, height=4, width=4, rope_interpolation_scale=(8 / 25, 32, 32))),
        "inputs": "hidden_states [2, 48, 32] (17 frames at 128 px), encoder_hidden_states [2, 64, 256]; "
                  "LTXVideoAttnProcessor (sdpa -> bmm on meta, as video2025.py)"}
    # as video2025.py's mochi(): RoPE tables without the autocast context the meta device rejects, and the
    # processor that keeps every text token (the mask is all ones)
    from diffusers.models.attention_processor import MochiAttention
    from diffusers.models.transformers.transformer_mochi import MochiRoPE
    MochiRoPE._create_rope = _mochi_rope_without_autocast
    mo = diffusers_model(MochiTransformer3DModel, MUTATED_MOCHI)
    for module in mo.modules():
        if isinstance(module, MochiAttention):
            module.processor = AllTokensMochiProcessor()
    mo.save_config(os.path.join(folder, "mochi"))
    r = measure(lambda: mo(
        hidden_states=torch.zeros(2, 12, 3, 16, 16, device="meta"), encoder_hidden_states=torch.zeros(2, 64, 256,
        device="meta"), timestep=torch.zeros(2, device="meta"), encoder_attention_mask=torch.ones(2, 64,
        device="meta")))
    # the RoPE table (MochiRoPE: positions x learned frequencies, an einsum -> bmm) is not attention: kept apart
    rope = sum(int(v) for v in r["_counts"].get("MochiTransformer3DModel.rope", {}).values())
    out["mochi"] = {"params": count_params(mo), "rope_table_flops": rope,
                    "flops": {"conv": r["by_category"]["conv"], "linear": r["by_category"]["linear"],
                              "attention": r["by_category"]["attention"] - rope},
                    "inputs": "hidden_states [2, 12, 3, 16, 16] (13 frames at 128 px), encoder_hidden_states "
                              "[2, 64, 256], all-ones mask; video2025.py's AllTokensMochiProcessor (sdpa -> bmm on "
                              "meta); attention without the RoPE table's bmm (rope_table_flops)"}
    hy = diffusers_model(HunyuanVideoTransformer3DModel, MUTATED_HUNYUAN)
    hy.save_config(os.path.join(folder, "hunyuan"))
    r = measure(lambda: hy(
        hidden_states=torch.zeros(1, 16, 5, 16, 16, device="meta"), timestep=torch.zeros(1, device="meta"),
        encoder_hidden_states=torch.zeros(1, 64, 256, device="meta"),
        encoder_attention_mask=torch.ones(1, 64, device="meta"), pooled_projections=torch.zeros(1, 96, device="meta"),
        guidance=torch.zeros(1, device="meta")))
    rope = sum(int(v) for k, d in r["_counts"].items() if k.endswith(".rope") for v in d.values())
    out["hunyuan"] = {"params": count_params(hy), "rope_table_flops": rope,
                      "flops": {"conv": r["by_category"]["conv"], "linear": r["by_category"]["linear"],
                                "attention": r["by_category"]["attention"] - rope},
                      "inputs": "hidden_states [1, 16, 5, 16, 16] (17 frames at 128 px), encoder_hidden_states "
                                "[1, 64, 256], all-ones mask, pooled [1, 96], guidance [1] (as models2025.py)"}
    qw = diffusers_model(QwenImageTransformer2DModel, MUTATED_QWEN)
    qw.save_config(os.path.join(folder, "qwen"))
    r = measure(lambda: qw(hidden_states=torch.zeros(2, 64, 64, device="meta"),
                           encoder_hidden_states=torch.zeros(2, 48, 256, device="meta"),
                           encoder_hidden_states_mask=None,
                           timestep=torch.zeros(2, device="meta"), img_shapes=[[(1, 8, 8)]] * 2))
    rope = sum(int(v) for k, d in r["_counts"].items() if k.endswith(".pos_embed") for v in d.values())
    out["qwen"] = {"params": count_params(qw), "rope_table_flops": rope,
                   "flops": {"conv": r["by_category"]["conv"], "linear": r["by_category"]["linear"],
                             "attention": r["by_category"]["attention"] - rope},
                   "inputs": "hidden_states [2, 64, 64] (128 px: 8 x 8 packed tokens), encoder_hidden_states "
                             "[2, 48, 256], img_shapes (1, 8, 8) (as models2025.py)"}
    wan_vae = diffusers_model(AutoencoderKLWan, MUTATED_WAN_VAE)
    wan_vae.save_config(os.path.join(folder, "wan-vae"))
    out["wan-vae"] = {"params": count_params(wan_vae.decoder) + count_params(wan_vae.post_quant_conv),
                      "flops": flops(lambda: wan_vae.decode(torch.zeros(1, 8, 3, 16, 16, device="meta"))),
                      "inputs": "vae.decode(z), z [1, 8, 3, 16, 16] (5 frames at 64 px: one decoder call per latent "
                                "frame)"}
    enc = umt5(MUTATED_UMT5)
    enc.set_attn_implementation("eager")
    save_transformers(enc, os.path.join(folder, "umt5"))
    out["umt5"] = {"params": count_params(enc), "flops": flops(lambda: enc(
        input_ids=torch.zeros(2, 40, dtype=torch.long, device="meta"))), "inputs": "input_ids [2, 40]"}
    qwen_vae = diffusers_model(AutoencoderKLQwenImage, MUTATED_QWEN_VAE)
    qwen_vae.save_config(os.path.join(folder, "qwen-vae"))
    out["qwen-vae"] = {"params": count_params(qwen_vae.decoder) + count_params(qwen_vae.post_quant_conv),
                       "flops": flops(lambda: qwen_vae.decode(torch.zeros(1, 8, 1, 16, 16, device="meta"))),
                       "inputs": "vae.decode(z), z [1, 8, 1, 16, 16] (one frame, 64 px)"}
    # Qwen2.5-VL on a text prompt: random weights on the CPU (its multimodal position ids are computed from the
    # token values, which the meta device does not have); the language model and the LM head on every position,
    # as QwenImagePipeline calls it (output_hidden_states=True)
    torch.manual_seed(0)
    vl = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=MUTATED_QWEN_LM)).eval()
    vl.set_attn_implementation("eager")
    save_transformers(vl, os.path.join(folder, "qwen-vl"))
    out["qwen-vl"] = {"params": count_params(vl.model.language_model) + count_params(vl.lm_head),
                      "flops": flops(lambda: vl(input_ids=torch.randint(0, 1000, (2, 50)), output_hidden_states=True)),
                      "inputs": "input_ids [2, 50] on the CPU with random weights (34 template + 16 prompt tokens)"}
    with torch.device("meta"):
        lm = LlamaForCausalLM(LlamaConfig(**MUTATED_LLAMA))
    lm.set_attn_implementation("eager")
    save_transformers(lm, os.path.join(folder, "llama"))
    out["llama"] = {"params": count_params(lm), "flops": flops(lambda: lm(
        input_ids=torch.zeros(1, 64, dtype=torch.long, device="meta"), logits_to_keep=1)),
        "inputs": "input_ids [1, 64], logits_to_keep=1 (last position only, as the simulator's prefill)"}
    # Mixtral: real random weights on the CPU (expert routing cannot run on meta); every token reaches exactly
    # top_k experts, so the expert GEMMs' FLOPs do not depend on the routing (models2025.py checks the same)
    torch.manual_seed(0)
    moe = MixtralForCausalLM(MixtralConfig(**MUTATED_MIXTRAL)).eval()
    moe.set_attn_implementation("eager")
    moe.set_experts_implementation("eager")   # the per-expert loop of nn.functional.linear (grouped_mm is uncounted)
    save_transformers(moe, os.path.join(folder, "mixtral"))
    out["mixtral"] = {"params": count_params(moe), "flops": flops(lambda: moe(
        input_ids=torch.randint(0, 1000, (1, 48)), logits_to_keep=1)),
        "inputs": "input_ids [1, 48] on the CPU with random weights, logits_to_keep=1"}
    out |= count_mutated_video_pipelines(folder)
    return out


if __name__ == "__main__":
    save_builtins()
    print(json.dumps(count_mutated(), indent=1))
