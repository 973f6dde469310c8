"""Transformer text-to-image family reference counts (models/dit-xl-2, pixart-alpha, sd3-medium, flux1-dev).

Every network is built on the meta device from its public config (values written inline below, no hub access)
and run once per input shape under FlopCounterMode, as in sd15.py / sdxl_dit.py. Attention runs on the math
path: diffusers `AttnProcessor` where the model accepts it (DiT, PixArt, VAE), otherwise the default processor,
whose F.scaled_dot_product_attention decomposes to aten.bmm on the meta device (SD3 JointAttnProcessor2_0,
Flux FluxAttnProcessor, transformers "sdpa"); every result is checked to have all bmm inside attention modules
and, where a math processor exists, to equal the default-processor totals.

Usage: /work/refvenv/bin/python dit.py [dit] [pixart] [sd3] [flux]   (no argument: all four)
Writes /work/refs/results/dit_family_<model>.json.
"""
import sys

import torch
from diffusers import (AutoencoderKL, DiTTransformer2DModel, FluxTransformer2DModel, PixArtTransformer2DModel,
                       SD3Transformer2DModel)
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
from diffusers.models.transformers.transformer_flux import FluxAttention
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel
from transformers.models.clip.modeling_clip import CLIPAttention
from transformers.models.t5.modeling_t5 import T5Attention

import common
from common import attention_bmm_check, child_params, clean, count_params, measure, submodule_flops, write

common.RESULTS = "/work/refs/results"  # outside the repository (common.write reads the module global)
META = "meta"


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, device=META, dtype=dtype)


def tolist(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def run(fn, model, root, attn_types, inputs, **extra):
    r = measure(fn)
    r["attention_check"] = attention_bmm_check(r, model, root, attn_types)
    r["inputs"] = inputs
    r.update(extra)
    return clean(r)


# ------------------------------------------------------------------------------------------------ text encoders
# google/t5-v1_1-xxl config.json (the text_encoder of PixArt-alpha/PixArt-XL-2-1024-MS, text_encoder_3 of
# stabilityai/stable-diffusion-3-medium-diffusers, text_encoder_2 of black-forest-labs/FLUX.1-dev)
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
              layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
              is_encoder_decoder=True)
# CLIP ViT-L/14 text tower (SD3 text_encoder = CLIPTextModelWithProjection; FLUX.1-dev text_encoder = CLIPTextModel)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
# OpenCLIP ViT-bigG/14 text tower (SD3 text_encoder_2 = CLIPTextModelWithProjection)
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)


def t5(shapes):
    with torch.device(META):
        m = T5EncoderModel(T5Config(**T5_XXL))
    m.eval()
    out = {"config": dict(cls="transformers.T5EncoderModel", **T5_XXL), "params": count_params(m),
           "params_by_child": {"shared (= encoder.embed_tokens)": count_params(m.shared),
                               "encoder.block.0": count_params(m.encoder.block[0]),
                               "encoder.block.1": count_params(m.encoder.block[1]),
                               "encoder.final_layer_norm": count_params(m.encoder.final_layer_norm)},
           "flops": {}}
    for b, L in shapes:
        runs = {}
        for impl in ("eager", "sdpa"):
            try:
                m.set_attn_implementation(impl)
            except Exception as exc:  # T5 may not offer sdpa
                runs[impl] = {"skipped": str(exc)[:200]}
                continue
            ids = torch.zeros(b, L, dtype=torch.long, device=META)
            # no attention_mask: transformers' mask helper calls .item(), impossible on meta; a padding mask
            # is added to the scores and does not change the matmul FLOPs
            runs[impl] = run(lambda: m(input_ids=ids), m, "T5EncoderModel", (T5Attention,), {"input_ids": [b, L]})
        if "by_category" in runs.get("sdpa", {}):
            assert runs["sdpa"]["by_category"] == runs["eager"]["by_category"], (b, L)
        out["flops"][f"batch{b}_tokens{L}"] = runs["eager"]
    out["attention_counting"] = ("attn_implementation='eager' (matmul QK^T and PV -> bmm inside T5Attention; "
                                 "no 1/sqrt(d) scaling in T5; relative position bias is an embedding lookup). "
                                 "Cross-checked with 'sdpa' where available.")
    return out


def clip(cfg_kwargs, with_projection, batches):
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with torch.device(META):
        m = cls(CLIPTextConfig(**cfg_kwargs))
    m.eval()
    root = cls.__name__
    out = {"config": dict(cls=f"transformers.{root}", **cfg_kwargs), "params": count_params(m),
           "params_by_child": child_params(m), "flops": {}}
    for b in batches:
        ids = torch.zeros(b, 77, dtype=torch.long, device=META)
        runs = {}
        for impl in ("eager", "sdpa"):
            m.set_attn_implementation(impl)
            # the SD3 pipeline asks for all hidden states (it uses the penultimate one); FLOPs are the same
            runs[impl] = run(lambda: m(input_ids=ids, output_hidden_states=True), m, root, (CLIPAttention,),
                             {"input_ids": [b, 77]})
        assert runs["eager"]["by_category"] == runs["sdpa"]["by_category"]
        out["flops"][f"batch{b}"] = runs["eager"]
    out["attention_counting"] = "eager (bmm in CLIPAttention), cross-checked with sdpa: identical totals"
    return out


# -------------------------------------------------------------------------------------------------------- VAEs
# stabilityai/sd-vae-ft-ema (= sd-vae-ft-mse, = SD1.5 VAE architecture): DiT and PixArt-alpha decoders
VAE4 = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
            latent_channels=4, norm_num_groups=32, act_fn="silu", sample_size=256, scaling_factor=0.18215)
# stable-diffusion-3-medium-diffusers/vae and FLUX.1-dev/vae: 16 latent channels, no quant_conv/post_quant_conv
# (the two differ only in scaling_factor / shift_factor: SD3 1.5305 / 0.0609, FLUX 0.3611 / 0.1159)
VAE16 = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
             up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
             latent_channels=16, norm_num_groups=32, act_fn="silu", sample_size=1024, scaling_factor=1.5305,
             shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True)


def vae(cfg_kwargs, latents):
    with torch.device(META):
        m = AutoencoderKL(**cfg_kwargs)
    m.eval()
    pq = count_params(m.post_quant_conv) if m.post_quant_conv is not None else 0
    out = {"config": dict(cls="diffusers.AutoencoderKL", **tolist(cfg_kwargs)),
           "params_decoder": count_params(m.decoder), "params_post_quant_conv": pq,
           "params_decode_path": count_params(m.decoder) + pq, "flops_decode": {}}
    c = cfg_kwargs["latent_channels"]
    for hw in latents:
        res = {}
        for name in ("AttnProcessor", "default"):
            m.set_attn_processor(AttnProcessor()) if name == "AttnProcessor" else m.set_default_attn_processor()
            zz = z(1, c, hw, hw)
            res[name] = run(lambda: m.decode(zz), m.decoder, "Decoder", (Attention,),
                            {"z": [1, c, hw, hw], "image": [1, 3, 8 * hw, 8 * hw],
                             "call": "vae.decode(z): post_quant_conv (if any) + decoder"})
        assert res["AttnProcessor"]["by_category"] == res["default"]["by_category"]
        out["flops_decode"][f"latent{hw}_batch1"] = res["AttnProcessor"]
    return out


# ------------------------------------------------------------------------------------------------------- DiT
# facebook/DiT-XL-2-256 and facebook/DiT-XL-2-512 transformer/config.json (they differ only in sample_size)
DIT = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28, dropout=0.0,
           norm_num_groups=32, attention_bias=True, patch_size=2, activation_fn="gelu-approximate",
           num_embeds_ada_norm=1000, upcast_attention=False, norm_type="ada_norm_zero", norm_elementwise_affine=False,
           norm_eps=1e-5)


def dit_one(sample_size):
    with torch.device(META):
        m = DiTTransformer2DModel(sample_size=sample_size, **DIT)
    m.eval()
    root = "DiTTransformer2DModel"
    blk = m.transformer_blocks[0]
    emb = count_params(blk.norm1.emb)
    hidden = 1152
    tokens = (sample_size // 2) ** 2
    out = {"config": dict(cls="diffusers.DiTTransformer2DModel", sample_size=sample_size, **DIT),
           "params": count_params(m), "params_by_child": child_params(m), "params_per_block": count_params(blk),
           "params_per_block_detail": child_params(blk),
           "params_embedder_per_block (timestep_embedder + class_embedder)": emb}
    out["params_original_dit"] = {
        "value": count_params(m) - (len(m.transformer_blocks) - 1) * emb + tokens * hidden,
        "formula": f"diffusers {count_params(m)} - 27 x {emb} (per-block copies of the shared t/y embedders) "
                   f"+ {tokens} x {hidden} (original DiT keeps its fixed sin-cos pos_embed as an nn.Parameter; "
                   "diffusers makes it a non-persistent buffer)"}
    b = 2
    res = {}
    for name in ("AttnProcessor", "default"):
        for mod in m.modules():
            if isinstance(mod, Attention):
                mod.set_processor(AttnProcessor() if name == "AttnProcessor" else AttnProcessor2_0())
        x = z(b, 4, sample_size, sample_size)
        t = torch.zeros(b, dtype=torch.long, device=META)
        y = torch.zeros(b, dtype=torch.long, device=META)
        r = measure(lambda: m(x, timestep=t, class_labels=y))
        r["attention_check"] = attention_bmm_check(r, m, root, (Attention,))
        names = [f"{root}.{n}" for n in ("pos_embed", "proj_out_1", "proj_out_2")] + \
                [f"{root}.transformer_blocks.{i}.norm1.emb" for i in (0, 1)] + \
                [f"{root}.transformer_blocks.1.norm1", f"{root}.transformer_blocks.1.attn1",
                 f"{root}.transformer_blocks.1.ff"]
        r["flops_by_child"] = {k.split(".", 1)[1]: v for k, v in submodule_flops(r, names).items()}
        r["inputs"] = {"hidden_states": [b, 4, sample_size, sample_size], "timestep": [b], "class_labels": [b],
                       "tokens": tokens}
        res[name] = clean(r)
    assert res["AttnProcessor"]["by_category"] == res["default"]["by_category"]
    r = res["AttnProcessor"]
    per_emb = sum(r["flops_by_child"]["transformer_blocks.1.norm1.emb"].values())
    r["embedder_recomputation"] = {
        "flops_per_evaluation": per_emb,
        "evaluations": "29 = once in each of the 28 blocks' AdaLayerNormZero + once more for proj_out_1's "
                       "conditioning (transformer_blocks[0].norm1.emb); the original DiT evaluates it once",
        "linear_original_dit": r["by_category"]["linear"] - 28 * per_emb}
    out["flops"] = {f"latent{sample_size}_batch2": r}
    return out


def dit():
    data = {"model_id": "dit-xl-2", "source": "facebook/DiT-XL-2-256 / -512 transformer config values (inline); "
                                              "stabilityai/sd-vae-ft-ema vae config (inline)",
            "denoiser_256": dit_one(32), "denoiser_512": dit_one(64), "decoder": vae(VAE4, (32, 64))}
    write("dit_family_dit-xl-2", data)


# ------------------------------------------------------------------------------------------------------ PixArt
# PixArt-alpha/PixArt-XL-2-1024-MS transformer/config.json
PIXART = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
              dropout=0.0, norm_num_groups=32, cross_attention_dim=1152, attention_bias=True, sample_size=128,
              patch_size=2, activation_fn="gelu-approximate", num_embeds_ada_norm=1000, upcast_attention=False,
              norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096,
              attention_type="default")


def pixart_transformer(latents, text_tokens=120):
    with torch.device(META):
        m = PixArtTransformer2DModel(**PIXART)
    m.eval()
    root = "PixArtTransformer2DModel"
    out = {"config": dict(cls="diffusers.PixArtTransformer2DModel", **PIXART), "params": count_params(m),
           "params_by_child": child_params(m), "params_per_block": count_params(m.transformer_blocks[0]),
           "params_per_block_detail": child_params(m.transformer_blocks[0]),
           "use_additional_conditions": m.use_additional_conditions, "flops": {}}
    b = 2
    for hw in latents:
        res = {}
        for name in ("AttnProcessor", "default"):
            m.set_attn_processor(AttnProcessor() if name == "AttnProcessor" else AttnProcessor2_0())
            x = z(b, 4, hw, hw)
            ehs = z(b, text_tokens, 4096)
            mask = torch.ones(b, text_tokens, device=META)
            t = torch.zeros(b, dtype=torch.long, device=META)
            added = {"resolution": z(b, 2), "aspect_ratio": z(b, 1)}
            res[name] = run(lambda: m(x, encoder_hidden_states=ehs, encoder_attention_mask=mask, timestep=t,
                                      added_cond_kwargs=added), m, root, (Attention,),
                            {"hidden_states": [b, 4, hw, hw], "encoder_hidden_states": [b, text_tokens, 4096],
                             "encoder_attention_mask": [b, text_tokens], "timestep": [b],
                             "added_cond_kwargs": {"resolution": [b, 2], "aspect_ratio": [b, 1]}})
        assert res["AttnProcessor"]["by_category"] == res["default"]["by_category"]
        out["flops"][f"latent{hw}_batch2_text{text_tokens}"] = res["AttnProcessor"]
    out["attention_counting"] = ("set_attn_processor(AttnProcessor()) (baddbmm + bmm), cross-checked with "
                                 "AttnProcessor2_0")
    return out


def pixart():
    data = {"model_id": "pixart-alpha", "source": "PixArt-alpha/PixArt-XL-2-1024-MS configs (inline)",
            "text_encoder": t5([(2, 120), (1, 120), (2, 256)]),
            "denoiser": pixart_transformer((128, 64)),
            "denoiser_text256": pixart_transformer((128,), text_tokens=256),
            "decoder": vae(VAE4, (128, 64))}
    write("dit_family_pixart-alpha", data)


# --------------------------------------------------------------------------------------------------------- SD3
# stabilityai/stable-diffusion-3-medium-diffusers transformer/config.json
SD3 = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64, num_attention_heads=24,
           joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
           pos_embed_max_size=192)


def sd3_transformer(latents, text_tokens):
    with torch.device(META):
        m = SD3Transformer2DModel(**SD3)
    m.eval()
    root = "SD3Transformer2DModel"
    out = {"config": dict(cls="diffusers.SD3Transformer2DModel", **SD3), "params": count_params(m),
           "params_by_child": child_params(m), "params_block0": count_params(m.transformer_blocks[0]),
           "params_block0_detail": child_params(m.transformer_blocks[0]),
           "params_last_block": count_params(m.transformer_blocks[-1]),
           "params_last_block_detail": child_params(m.transformer_blocks[-1]), "flops": {}}
    b = 2
    for hw in latents:
        x = z(b, 16, hw, hw)
        ehs = z(b, text_tokens, 4096)
        pooled = z(b, 2048)
        t = torch.zeros(b, device=META)
        out["flops"][f"latent{hw}_batch2_text{text_tokens}"] = run(
            lambda: m(x, encoder_hidden_states=ehs, pooled_projections=pooled, timestep=t), m, root, (Attention,),
            {"hidden_states": [b, 16, hw, hw], "encoder_hidden_states": [b, text_tokens, 4096],
             "pooled_projections": [b, 2048], "timestep": [b], "image_tokens": (hw // 2) ** 2})
    out["attention_counting"] = ("default JointAttnProcessor2_0: F.scaled_dot_product_attention over the "
                                 "concatenated [image, text] sequence, decomposed to bmm on meta (all inside "
                                 "Attention modules, see attention_check)")
    return out


def sd3():
    data = {"model_id": "sd3-medium", "source": "stabilityai/stable-diffusion-3-medium-diffusers configs (inline)",
            "text_encoder": clip(CLIP_L, True, (2, 1)),
            "text_encoder_2": clip(CLIP_G, True, (2, 1)),
            "text_encoder_3": t5([(2, 256), (1, 256), (2, 128)]),
            "denoiser": sd3_transformer((128, 64), 77 + 256),
            "decoder": vae(VAE16, (128, 64))}
    write("dit_family_sd3-medium", data)


# -------------------------------------------------------------------------------------------------------- Flux
# black-forest-labs/FLUX.1-dev transformer/config.json
FLUX = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56))


def flux_transformer(pixels, text_tokens=512):
    with torch.device(META):
        m = FluxTransformer2DModel(**FLUX)
    m.eval()
    root = "FluxTransformer2DModel"
    out = {"config": dict(cls="diffusers.FluxTransformer2DModel", **tolist(FLUX)), "params": count_params(m),
           "params_by_child": child_params(m), "params_double_block": count_params(m.transformer_blocks[0]),
           "params_double_block_detail": child_params(m.transformer_blocks[0]),
           "params_single_block": count_params(m.single_transformer_blocks[0]),
           "params_single_block_detail": child_params(m.single_transformer_blocks[0]), "flops": {}}
    b = 1
    for px in pixels:
        n = (px // 16) ** 2  # 8x VAE, then 2x2 packing
        x = z(b, n, 64)
        ehs = z(b, text_tokens, 4096)
        pooled = z(b, 768)
        t = z(b)
        g = z(b)
        img_ids = z(n, 3)
        txt_ids = z(text_tokens, 3)
        out["flops"][f"{px}px_batch1_text{text_tokens}"] = run(
            lambda: m(x, encoder_hidden_states=ehs, pooled_projections=pooled, timestep=t, img_ids=img_ids,
                      txt_ids=txt_ids, guidance=g), m, root, (FluxAttention,),
            {"hidden_states": [b, n, 64], "encoder_hidden_states": [b, text_tokens, 4096],
             "pooled_projections": [b, 768], "timestep": [b], "guidance": [b], "img_ids": [n, 3],
             "txt_ids": [text_tokens, 3]})
    out["attention_counting"] = ("default FluxAttnProcessor (dispatch_attention_fn -> native "
                                 "F.scaled_dot_product_attention, bmm on meta) over [text, image] tokens")
    return out


def flux():
    data = {"model_id": "flux1-dev", "source": "black-forest-labs/FLUX.1-dev configs (inline)",
            "text_encoder": clip(CLIP_L, False, (1,)),
            "text_encoder_2": t5([(1, 512), (1, 256)]),
            "denoiser": flux_transformer((1024, 512)),
            "decoder": vae(VAE16, (128, 64))}
    write("dit_family_flux1-dev", data)


if __name__ == "__main__":
    todo = sys.argv[1:] or ["dit", "pixart", "sd3", "flux"]
    for name in todo:
        globals()[name]()
