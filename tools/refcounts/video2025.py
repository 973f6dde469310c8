"""Reference counts for the 2025 video models (Wan 2.1 1.3B / 14B, LTX-Video 0.9, Mochi 1): umT5-XXL / T5-XXL
encoders, the video transformers and the VAE decoders.

Same method as video.py: every network is built on the meta device from its public config written inline (no hub
access, no weights) and one evaluation is counted with FlopCounterMode (see common.py). The config values are those
of the released checkpoints (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Wan-AI/Wan2.1-T2V-14B-Diffusers,
Lightricks/LTX-Video, genmo/mochi-1-preview); where they equal the diffusers class defaults that is noted.
Results go to tools/results/<model id>.json. Run from this folder: <venv>/bin/python video2025.py [model id ...]

Attention: the Wan, LTX and Mochi processors call scaled_dot_product_attention, which decomposes to aten.bmm on the
meta device (the full score matrix, i.e. the math path); attention_check proves every bmm lies inside an attention
module. transformers encoders use attn_implementation="eager".
"""
import os
import sys

import torch
import common
from common import measure, clean, count_params, child_params, attention_bmm_check, write, top_names
from diffusers import (AutoencoderKLLTXVideo, AutoencoderKLMochi, AutoencoderKLWan, LTXVideoTransformer3DModel,
                       MochiTransformer3DModel, WanTransformer3DModel)
from diffusers.models.autoencoders.autoencoder_kl_wan import WanAttentionBlock
from diffusers.models.transformers.transformer_ltx import LTXAttention
from diffusers.models.transformers.transformer_wan import WanAttention
from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel
from transformers.models.t5.modeling_t5 import T5Attention
from transformers.models.umt5.modeling_umt5 import UMT5Attention

common.RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
os.makedirs(common.RESULTS, exist_ok=True)
META = "meta"


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, device=META, dtype=dtype)


def tolist(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def case(model, fn, root, attn_types, inputs):
    model.to(META)
    r = measure(fn)
    r["attention_check"] = attention_bmm_check(r, model, root, attn_types)
    r["inputs"] = inputs
    return clean(r)


def params_info(m):
    return {"params": count_params(m), "params_by_child": child_params(m),
            "params_by_top_level": {n: count_params(m.get_submodule(n)) for n in top_names(m)}}


def encoder(cls, cfg_cls, cfg, attn, tokens, batches=(1,)):
    with torch.device(META):
        m = cls(cfg_cls(**cfg))
    m.set_attn_implementation("eager")
    m.eval()
    out = params_info(m)
    out["config"] = dict(cls=f"transformers.{cls.__name__}", **cfg)
    out["flops"] = {}
    for b in batches:
        ids = torch.zeros(b, tokens, dtype=torch.long, device=META)
        out["flops"][f"batch{b}_tokens{tokens}"] = case(m, lambda: m(input_ids=ids), cls.__name__, (attn,),
                                                        {"input_ids": [b, tokens]})
    return out


# ------------------------------------------------------------------------------------------------ Wan 2.1
# google/umt5-xxl encoder as shipped in Wan-AI/Wan2.1-T2V-*-Diffusers text_encoder/config.json: every layer has its
# own relative-position bias table (UMT5), gated-gelu FF.
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                tie_word_embeddings=False)
# transformer/config.json of the two releases (the 14B values are also the WanTransformer3DModel defaults)
WAN = {"wan21-1.3b": dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30),
       "wan21-14b": dict(num_attention_heads=40, attention_head_dim=128, ffn_dim=13824, num_layers=40)}
WAN_COMMON = dict(patch_size=(1, 2, 2), in_channels=16, out_channels=16, text_dim=4096, freq_dim=256,
                  cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
# vae/config.json: AutoencoderKLWan defaults (base_dim 96, z_dim 16, dim_mult [1, 2, 4, 4], 2 res blocks,
# temperal_downsample [False, True, True])
WAN_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
               temperal_downsample=[False, True, True])
# (latent frames, latent h, latent w): 81 x 480 x 832 (pipeline default) and 33 x 720 x 1280
WAN_CASES = ((21, 60, 104), (9, 90, 160))


def wan(model_id, text=True, vae_too=True):
    out = {"model_id": model_id, "source": f"Wan-AI/Wan2.1-T2V-{model_id.split('-')[1].upper()}-Diffusers "
                                           "text_encoder/transformer/vae config.json values (inline)"}
    if text:
        out["text_encoder"] = encoder(UMT5EncoderModel, UMT5Config, UMT5_XXL, UMT5Attention, 512)
    cfg = dict(WAN_COMMON, **WAN[model_id])
    with torch.device(META):
        tr = WanTransformer3DModel(**cfg)
    tr.eval()
    t = params_info(tr)
    t["config"] = dict(cls="diffusers.WanTransformer3DModel", **tolist(cfg))
    t["flops"] = {}
    for lf, h, w in WAN_CASES:
        b = 1  # WanPipeline runs the conditional and the unconditional pass separately, batch 1 each
        x, ehs, ts = z(b, 16, lf, h, w), z(b, 512, 4096), torch.zeros(b, dtype=torch.long, device=META)
        t["flops"][f"b{b}_t{lf}_{h}x{w}"] = case(
            tr, lambda: tr(hidden_states=x, timestep=ts, encoder_hidden_states=ehs), "WanTransformer3DModel",
            (WanAttention,), {"hidden_states": [b, 16, lf, h, w], "encoder_hidden_states": [b, 512, 4096],
                              "timestep": [b], "attention": "WanAttnProcessor (sdpa -> aten.bmm on meta)"})
    out["transformer"] = t
    if vae_too:
        with torch.device(META):
            vae = AutoencoderKLWan(**WAN_VAE)
        vae.eval()
        v = {"params_decoder_plus_post_quant_conv": count_params(vae.decoder) + count_params(vae.post_quant_conv),
             "params_by_child": child_params(vae),
             "params_decoder_detail": {n: count_params(vae.decoder.get_submodule(n)) for n in top_names(vae.decoder)},
             "config": dict(cls="diffusers.AutoencoderKLWan", **tolist(WAN_VAE)), "flops_decode": {}}
        for lf, h, w in WAN_CASES:
            zz = z(1, 16, lf, h, w)
            # FlopCounterMode names the modules from the decoder down (decode() is not vae.forward)
            v["flops_decode"][f"t{lf}_{h}x{w}"] = case(
                vae.decoder, lambda: vae.decode(zz), "WanDecoder3d", (WanAttentionBlock,),
                {"z": [1, 16, lf, h, w], "call": "vae.decode(z): post_quant_conv, then one latent frame per decoder "
                 "call with causal conv caches, no tiling (pipeline default)"})
        out["vae"] = v
    write(model_id, out)


# ------------------------------------------------------------------------------------------------ LTX-Video 0.9
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
              is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)
# Lightricks/LTX-Video transformer/config.json = LTXVideoTransformer3DModel defaults
LTX = dict(in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
           attention_head_dim=64, cross_attention_dim=2048, num_layers=28, activation_fn="gelu-approximate",
           qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=4096,
           attention_bias=True, attention_out_bias=True)
# vae/config.json (0.9.0) = AutoencoderKLLTXVideo defaults: 32x spatial (patch 4 x three 2x upsamplers),
# 8x temporal, 128 latent channels, non-causal decoder, no timestep conditioning
LTX_VAE = dict(latent_channels=128, block_out_channels=(128, 256, 512, 512),
               decoder_block_out_channels=(128, 256, 512, 512), layers_per_block=(4, 3, 3, 3, 4),
               decoder_layers_per_block=(4, 3, 3, 3, 4), spatio_temporal_scaling=(True, True, True, False),
               decoder_spatio_temporal_scaling=(True, True, True, False), timestep_conditioning=False,
               patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False)
# (latent frames, latent h, latent w): 161 x 512 x 704 (pipeline default) and 121 x 768 x 512 (paper's setting)
LTX_CASES = ((21, 16, 22), (16, 24, 16))


def ltx():
    out = {"model_id": "ltx-video", "source": "Lightricks/LTX-Video (0.9.0) text_encoder/transformer/vae "
                                              "config.json values (inline)"}
    out["text_encoder"] = encoder(T5EncoderModel, T5Config, T5_XXL, T5Attention, 128)
    with torch.device(META):
        tr = LTXVideoTransformer3DModel(**LTX)
    tr.eval()
    t = params_info(tr)
    t["config"] = dict(cls="diffusers.LTXVideoTransformer3DModel", **LTX)
    t["flops"] = {}
    for lf, h, w in LTX_CASES:
        b = 2  # LTXPipeline concatenates the unconditional and conditional latents
        n = lf * h * w
        x, ehs, ts = z(b, n, 128), z(b, 128, 4096), z(b)
        mask = torch.ones(b, 128, device=META)
        t["flops"][f"b{b}_t{lf}_{h}x{w}"] = case(
            tr, lambda: tr(hidden_states=x, encoder_hidden_states=ehs, timestep=ts, encoder_attention_mask=mask,
                           num_frames=lf, height=h, width=w, rope_interpolation_scale=(8 / 25, 32, 32)),
            "LTXVideoTransformer3DModel", (LTXAttention,),
            {"hidden_states": [b, n, 128], "encoder_hidden_states": [b, 128, 4096], "timestep": [b],
             "encoder_attention_mask": [b, 128], "num_frames": lf, "height": h, "width": w})
    out["transformer"] = t
    with torch.device(META):
        vae = AutoencoderKLLTXVideo(**LTX_VAE)
    vae.eval()
    v = {"params_decoder": count_params(vae.decoder), "params_by_child": child_params(vae),
         "params_decoder_detail": {n: count_params(vae.decoder.get_submodule(n)) for n in top_names(vae.decoder)},
         "config": dict(cls="diffusers.AutoencoderKLLTXVideo", **tolist(LTX_VAE)), "flops_decode": {}}
    for lf, h, w in LTX_CASES:
        zz = z(1, 128, lf, h, w)
        v["flops_decode"][f"t{lf}_{h}x{w}"] = case(
            vae.decoder, lambda: vae.decode(zz), "LTXVideoDecoder3d", (),
            {"z": [1, 128, lf, h, w], "call": "vae.decode(z): one pass, no tiling (pipeline default)"})
    out["vae"] = v
    write("ltx-video", out)


# ------------------------------------------------------------------------------------------------ Mochi 1
# genmo/mochi-1-preview transformer/config.json = MochiTransformer3DModel defaults: 48 layers, 24 heads x 128
# (dim 3072), text stream 1536 wide (pooled_projection_dim), patch 2, 12 latent channels, SwiGLU FFs, T5 4096 in
MOCHI = dict(patch_size=2, num_attention_heads=24, attention_head_dim=128, num_layers=48, pooled_projection_dim=1536,
             in_channels=12, qk_norm="rms_norm", text_embed_dim=4096, time_embed_dim=256, activation_fn="swiglu",
             max_sequence_length=256)
# vae/config.json = AutoencoderKLMochi defaults: 12 latent channels, decoder (128, 256, 512, 768), layers
# (3, 3, 4, 6, 3), temporal expansions (1, 2, 3) = 6x time, spatial (2, 2, 2) = 8x space
MOCHI_VAE = dict(latent_channels=12, decoder_block_out_channels=(128, 256, 512, 768), layers_per_block=(3, 3, 4, 6, 3),
                 temporal_expansions=(1, 2, 3), spatial_expansions=(2, 2, 2))
# (latent frames, latent h, latent w): 163 x 480 x 848 (genmo reference) and 85 x 480 x 848 (diffusers docs example)
MOCHI_CASES = ((28, 60, 106), (15, 60, 106))


class AllTokensMochiProcessor:
    """MochiAttnProcessor2_0 for a prompt mask that is all ones: the reference keeps the prompt's valid tokens with
    torch.nonzero (data-dependent, impossible on the meta device); with every token valid that selection is the
    identity, so this is the same computation on the whole batch at once."""

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb=None):
        import torch.nn.functional as F
        query = attn.norm_q(attn.to_q(hidden_states).unflatten(2, (attn.heads, -1)))
        key = attn.norm_k(attn.to_k(hidden_states).unflatten(2, (attn.heads, -1)))
        value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
        eq = attn.norm_added_q(attn.add_q_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1)))
        ek = attn.norm_added_k(attn.add_k_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1)))
        ev = attn.add_v_proj(encoder_hidden_states).unflatten(2, (attn.heads, -1))

        def rot(x, cos, sin):
            xe, xo = x[..., 0::2].float(), x[..., 1::2].float()
            return torch.stack([xe * cos - xo * sin, xe * sin + xo * cos], dim=-1).flatten(-2).to(x.dtype)

        query, key = rot(query, *image_rotary_emb), rot(key, *image_rotary_emb)
        n = query.size(1)
        q, k, v = (torch.cat([a, b], dim=1).transpose(1, 2) for a, b in ((query, eq), (key, ek), (value, ev)))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False).transpose(1, 2).flatten(2, 3)
        hs, ehs = out.split_with_sizes((n, out.size(1) - n), dim=1)
        hs = attn.to_out[0](hs)
        if hasattr(attn, "to_add_out"):
            ehs = attn.to_add_out(ehs)
        return hs, ehs


def _mochi_rope_without_autocast(self, freqs, pos):
    """MochiRoPE._create_rope without its torch.autocast(device_type) context, which rejects the meta device; the
    einsum already runs in float32 here. Its bmm builds the cos/sin tables (outside the attention modules)."""
    freqs = torch.einsum("nd,dhf->nhf", pos.to(torch.float32), freqs.to(torch.float32))
    return torch.cos(freqs), torch.sin(freqs)


def mochi():
    from diffusers.models.attention_processor import MochiAttention
    from diffusers.models.embeddings import MochiAttentionPool
    from diffusers.models.transformers.transformer_mochi import MochiRoPE
    MochiRoPE._create_rope = _mochi_rope_without_autocast
    out = {"model_id": "mochi-1", "source": "genmo/mochi-1-preview text_encoder/transformer/vae config.json values "
                                            "(inline)"}
    out["text_encoder"] = encoder(T5EncoderModel, T5Config, T5_XXL, T5Attention, 256)
    with torch.device(META):
        tr = MochiTransformer3DModel(**MOCHI)
    tr.eval()
    for mod in tr.modules():
        if isinstance(mod, MochiAttention):
            mod.processor = AllTokensMochiProcessor()
    t = params_info(tr)
    t["config"] = dict(cls="diffusers.MochiTransformer3DModel", **MOCHI)
    t["flops"] = {}
    for lf, h, w in MOCHI_CASES:
        b = 2  # MochiPipeline concatenates the unconditional and conditional latents
        x, ehs, ts = z(b, 12, lf, h, w), z(b, 256, 4096), z(b)
        mask = torch.ones(b, 256, device=META)
        t["flops"][f"b{b}_t{lf}_{h}x{w}"] = case(
            tr, lambda: tr(hidden_states=x, encoder_hidden_states=ehs, timestep=ts, encoder_attention_mask=mask),
            "MochiTransformer3DModel", (MochiAttention, MochiAttentionPool),
            {"hidden_states": [b, 12, lf, h, w], "encoder_hidden_states": [b, 256, 4096], "timestep": [b],
             "encoder_attention_mask": "[b, 256] all ones", "attention": "AllTokensMochiProcessor (sdpa -> bmm)"})
    out["transformer"] = t
    with torch.device(META):
        vae = AutoencoderKLMochi(**MOCHI_VAE)
    vae.eval()
    v = {"params_decoder": count_params(vae.decoder), "params_by_child": child_params(vae),
         "params_decoder_detail": {n: count_params(vae.decoder.get_submodule(n)) for n in top_names(vae.decoder)},
         "config": dict(cls="diffusers.AutoencoderKLMochi", **tolist(MOCHI_VAE)), "flops_decode": {}}
    for lf, h, w in MOCHI_CASES:
        zz = z(1, 12, lf, h, w)
        v["flops_decode"][f"t{lf}_{h}x{w}"] = case(
            vae.decoder, lambda: vae.decode(zz), "MochiDecoder3D", (),
            {"z": [1, 12, lf, h, w], "call": "vae.decode(z): one pass (no tiling, no framewise decoding: the "
             "defaults), drop_last_temporal_frames"})
    out["vae"] = v
    write("mochi-1", out)


if __name__ == "__main__":
    todo = sys.argv[1:] or ["wan21-1.3b", "wan21-14b", "ltx-video", "mochi-1"]
    for mid in todo:
        print("==", mid, flush=True)
        if mid.startswith("wan21"):
            wan(mid, text=mid == "wan21-1.3b" or len(sys.argv) > 1)
        elif mid == "ltx-video":
            ltx()
        elif mid == "mochi-1":
            mochi()
