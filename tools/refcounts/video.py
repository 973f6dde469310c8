"""Text-to-video / image-to-video reference counts: ModelScope T2V 1.7B, SVD-XT, CogVideoX-2b / -5b.

Every network is built on the meta device from its public config written inline (no hub access), and one network
evaluation is counted with FlopCounterMode (see common.py and /work/refs/README.md). Results go to
/work/refs/results/<model id>.json. Run from this folder: /work/refvenv/bin/python video.py [model id ...]

Attention is counted on the math path: diffusers Attention modules get AttnProcessor() (baddbmm + bmm) where the
model supports it; CogVideoX keeps its own CogVideoXAttnProcessor2_0, whose F.scaled_dot_product_attention
decomposes to aten.bmm on the meta device (the full score matrix; checked by attention_check). transformers
encoders use attn_implementation="eager".
"""
import sys

import torch
import common
from common import (measure, clean, count_params, child_params, attention_bmm_check, submodule_flops, write,
                    top_names)
from diffusers import (AutoencoderKL, AutoencoderKLCogVideoX, AutoencoderKLTemporalDecoder,
                       CogVideoXTransformer3DModel, UNet3DConditionModel, UNetSpatioTemporalConditionModel)
from diffusers.models.attention_processor import Attention, AttnProcessor
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection, T5Config,
                          T5EncoderModel)
from transformers.models.clip.modeling_clip import CLIPAttention
from transformers.models.t5.modeling_t5 import T5Attention

common.RESULTS = "/work/refs/results"  # outside the repository
META = "meta"


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, device=META, dtype=dtype)


def tolist(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def math_attention(model):
    """diffusers AttnProcessor (explicit baddbmm + bmm) on every Attention module."""
    for mod in model.modules():
        if isinstance(mod, Attention):
            mod.set_processor(AttnProcessor())


def case(model, fn, root, attn_types, inputs, children=True):
    model.to(META)  # a few diffusers modules build CPU tensors with torch.Tensor([...]) (AlphaBlender.mix_factor)
    r = measure(fn)
    r["attention_check"] = attention_bmm_check(r, model, root, attn_types)
    if children:
        r["flops_by_child"] = {k.split(".", 1)[1] if "." in k else k: v for k, v in
                               submodule_flops(r, [f"{root}.{n}" for n in top_names(model)]).items()}
    r["inputs"] = inputs
    return clean(r)


def params_info(m):
    return {"params": count_params(m), "params_by_child": child_params(m),
            "params_by_top_level": {n: count_params(m.get_submodule(n)) for n in top_names(m)}}


# ------------------------------------------------------------------------------------------------ text encoders
def clip_text(cfg, batches=(2, 1)):
    with torch.device(META):
        m = CLIPTextModel(CLIPTextConfig(**cfg))
    m.set_attn_implementation("eager")
    m.eval()
    out = params_info(m)
    out["config"] = dict(cls="transformers.CLIPTextModel", **cfg)
    out["flops"] = {}
    for b in batches:
        ids = torch.zeros(b, 77, dtype=torch.long, device=META)
        out["flops"][f"batch{b}"] = case(m, lambda: m(input_ids=ids), "CLIPTextModel", (CLIPAttention,),
                                         {"input_ids": [b, 77]}, children=False)
    return out


def t5_encoder(cfg, tokens=226, batches=(2, 1)):
    with torch.device(META):
        m = T5EncoderModel(T5Config(**cfg))
    m.set_attn_implementation("eager")
    m.eval()
    out = params_info(m)
    out["config"] = dict(cls="transformers.T5EncoderModel", **cfg)
    out["flops"] = {}
    for b in batches:
        ids = torch.zeros(b, tokens, dtype=torch.long, device=META)
        out["flops"][f"batch{b}"] = case(m, lambda: m(input_ids=ids), "T5EncoderModel", (T5Attention,),
                                         {"input_ids": [b, tokens]}, children=False)
    return out


# ------------------------------------------------------------------------------------------------ ModelScope T2V
MS_TEXT = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
               num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)
MS_UNET = dict(sample_size=32, in_channels=4, out_channels=4,
               down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
               up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
               block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1,
               mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5,
               cross_attention_dim=1024, attention_head_dim=64)
SD_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
              layers_per_block=2, latent_channels=4, norm_num_groups=32, act_fn="silu", sample_size=512)


def modelscope():
    out = {"model_id": "modelscope-t2v",
           "source": "ali-vilab/text-to-video-ms-1.7b text_encoder/unet/vae config.json values (inline)"}
    out["text_encoder"] = clip_text(MS_TEXT)
    with torch.device(META):
        unet = UNet3DConditionModel(**MS_UNET)
    unet.eval()
    math_attention(unet)
    u = params_info(unet)
    u["config"] = dict(cls="diffusers.UNet3DConditionModel", **tolist(MS_UNET))
    u["flops"] = {}
    # (batch incl. CFG, frames, latent h, latent w): 16 x 256 x 256 default; 16 x 512 x 512; 24 frames; no CFG
    for b, f, h, w in ((2, 16, 32, 32), (2, 16, 64, 64), (2, 24, 32, 32), (1, 16, 32, 32)):
        x, t, ehs = z(b, 4, f, h, w), torch.tensor(999, device=META), z(b, 77, 1024)
        u["flops"][f"b{b}_f{f}_{h}x{w}"] = case(
            unet, lambda: unet(x, t, encoder_hidden_states=ehs), "UNet3DConditionModel", (Attention,),
            {"sample": [b, 4, f, h, w], "timestep": "scalar 999", "encoder_hidden_states": [b, 77, 1024]})
    out["unet"] = u
    out["vae"] = sd_vae_decode(((16, 32, 32), (16, 64, 64), (24, 32, 32)))
    write("modelscope-t2v", out)


def sd_vae_decode(cases):
    with torch.device(META):
        vae = AutoencoderKL(**SD_VAE)
    vae.eval()
    math_attention(vae)
    v = {"params_decoder_plus_post_quant_conv": count_params(vae.decoder) + count_params(vae.post_quant_conv),
         "params_by_child": child_params(vae), "config": dict(cls="diffusers.AutoencoderKL", **tolist(SD_VAE)),
         "flops_decode": {}}
    for n, h, w in cases:  # n = batch * frames: frames are decoded as a batch of images
        zz = z(n, 4, h, w)
        v["flops_decode"][f"n{n}_{h}x{w}"] = case(vae.decoder, lambda: vae.decode(zz), "Decoder", (Attention,),
                                                  {"z": [n, 4, h, w], "call": "vae.decode(z)"}, children=False)
    return v


# ------------------------------------------------------------------------------------------------ SVD-XT
SVD_IMAGE = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                 image_size=224, patch_size=14, num_channels=3, projection_dim=1024, hidden_act="gelu")
SVD_UNET = dict(sample_size=96, in_channels=8, out_channels=4,
                down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
                up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
                block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim=256,
                projection_class_embeddings_input_dim=768, layers_per_block=2, cross_attention_dim=1024,
                transformer_layers_per_block=1, num_attention_heads=(5, 10, 20, 20), num_frames=25)
SVD_VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=768,
               scaling_factor=0.18215, force_upcast=True)


def svd():
    out = {"model_id": "svd-xt",
           "source": "stabilityai/stable-video-diffusion-img2vid-xt image_encoder/unet/vae config.json values (inline)"}
    with torch.device(META):
        enc = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_IMAGE))
    enc.set_attn_implementation("eager")
    enc.eval()
    e = params_info(enc)
    e["config"] = dict(cls="transformers.CLIPVisionModelWithProjection", **SVD_IMAGE)
    px = z(1, 3, 224, 224)
    e["flops"] = {"batch1": case(enc, lambda: enc(pixel_values=px), "CLIPVisionModelWithProjection",
                                 (CLIPAttention,), {"pixel_values": [1, 3, 224, 224]}, children=False)}
    out["image_encoder"] = e

    with torch.device(META):
        vae = AutoencoderKLTemporalDecoder(**SVD_VAE)
    vae.eval()
    math_attention(vae)
    v = {"params_by_child": child_params(vae), "config": dict(cls="diffusers.AutoencoderKLTemporalDecoder",
                                                             **tolist(SVD_VAE)),
         "params_encoder_plus_quant_conv": count_params(vae.encoder) + count_params(vae.quant_conv),
         "params_decoder": count_params(vae.decoder), "flops_encode": {}, "flops_decode": {}}
    for h, w in ((576, 1024), (320, 576)):
        img = z(1, 3, h, w)
        v["flops_encode"][f"{h}x{w}"] = case(vae.encoder, lambda: vae.encode(img), "Encoder", (Attention,),
                                             {"image": [1, 3, h, w], "call": "vae.encode(image)"}, children=False)
    for f, h, w in ((25, 72, 128), (14, 40, 72)):
        zz = z(f, 4, h, w)
        v["flops_decode"][f"f{f}_{h}x{w}"] = case(
            vae.decoder, lambda: vae.decode(zz, num_frames=f), "TemporalDecoder", (Attention,),
            {"z": [f, 4, h, w], "num_frames": f, "call": "vae.decode(z, num_frames) (decode_chunk_size = frames)"},
            children=False)
    out["vae"] = v

    with torch.device(META):
        unet = UNetSpatioTemporalConditionModel(**SVD_UNET)
    unet.eval()
    math_attention(unet)
    u = params_info(unet)
    u["config"] = dict(cls="diffusers.UNetSpatioTemporalConditionModel", **tolist(SVD_UNET))
    u["flops"] = {}
    for b, f, h, w in ((2, 25, 72, 128), (2, 14, 40, 72)):
        x, t, ehs, ids = z(b, f, 8, h, w), torch.tensor(999.0, device=META), z(b, 1, 1024), z(b, 3)
        u["flops"][f"b{b}_f{f}_{h}x{w}"] = case(
            unet, lambda: unet(x, t, encoder_hidden_states=ehs, added_time_ids=ids),
            "UNetSpatioTemporalConditionModel", (Attention,),
            {"sample": [b, f, 8, h, w], "timestep": "scalar", "encoder_hidden_states": [b, 1, 1024],
             "added_time_ids": [b, 3]})
    out["unet"] = u
    write("svd-xt", out)


# ------------------------------------------------------------------------------------------------ CogVideoX
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
              is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)
COG = {"cogvideox-2b": dict(num_attention_heads=30, num_layers=30, use_rotary_positional_embeddings=False),
       "cogvideox-5b": dict(num_attention_heads=48, num_layers=42, use_rotary_positional_embeddings=True)}
COG_COMMON = dict(attention_head_dim=64, in_channels=16, out_channels=16, flip_sin_to_cos=True, freq_shift=0,
                  time_embed_dim=512, text_embed_dim=4096, dropout=0.0, attention_bias=True, sample_width=90,
                  sample_height=60, sample_frames=49, patch_size=2, temporal_compression_ratio=4,
                  max_text_seq_length=226, activation_fn="gelu-approximate", timestep_activation_fn="silu",
                  norm_elementwise_affine=True, norm_eps=1e-5, spatial_interpolation_scale=1.875,
                  temporal_interpolation_scale=1.0, use_learned_positional_embeddings=False)
COG_VAE = dict(in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 512), latent_channels=16,
               layers_per_block=3, act_fn="silu", norm_eps=1e-6, norm_num_groups=32, temporal_compression_ratio=4,
               sample_height=480, sample_width=720)
# (latent frames, latent h, latent w): 49 x 480 x 720 (default) and 25 x 320 x 512
COG_CASES = ((13, 60, 90), (7, 40, 64))


def cogvideox(model_id, text=True, vae_too=True):
    out = {"model_id": model_id, "source": f"THUDM/{model_id.replace('cogvideox', 'CogVideoX')} "
                                           "transformer config.json values, T5-v1.1-XXL encoder, default VAE (inline)"}
    if text:
        out["text_encoder"] = t5_encoder(T5_XXL)
    cfg = dict(COG_COMMON, **COG[model_id])
    with torch.device(META):
        tr = CogVideoXTransformer3DModel(**cfg)
    tr.eval()
    t = params_info(tr)
    t["config"] = dict(cls="diffusers.CogVideoXTransformer3DModel", **cfg)
    t["flops"] = {}
    for lf, h, w in COG_CASES:
        b = 2
        x, ehs, ts = z(b, lf, 16, h, w), z(b, 226, 4096), torch.zeros(b, dtype=torch.long, device=META)
        rope = None
        if cfg["use_rotary_positional_embeddings"]:
            n = lf * (h // 2) * (w // 2)  # cos / sin per video token, head_dim wide
            rope = (z(n, 64), z(n, 64))
        t["flops"][f"b{b}_t{lf}_{h}x{w}"] = case(
            tr, lambda: tr(hidden_states=x, encoder_hidden_states=ehs, timestep=ts, image_rotary_emb=rope),
            "CogVideoXTransformer3DModel", (Attention,),
            {"hidden_states": [b, lf, 16, h, w], "encoder_hidden_states": [b, 226, 4096], "timestep": [b],
             "image_rotary_emb": None if rope is None else [[n, 64], [n, 64]],
             "attention": "CogVideoXAttnProcessor2_0 (sdpa -> aten.bmm on meta)"})
    out["transformer"] = t
    if vae_too:
        with torch.device(META):
            vae = AutoencoderKLCogVideoX(**COG_VAE)
        vae.eval()
        v = {"params_decoder": count_params(vae.decoder), "params_by_child": child_params(vae),
             "params_decoder_detail": {n: count_params(vae.decoder.get_submodule(n)) for n in top_names(vae.decoder)},
             "config": dict(cls="diffusers.AutoencoderKLCogVideoX", **tolist(COG_VAE)), "flops_decode": {}}
        for lf, h, w in COG_CASES:
            zz = z(1, 16, lf, h, w)
            v["flops_decode"][f"t{lf}_{h}x{w}"] = case(
                vae.decoder, lambda: vae.decode(zz), "CogVideoXDecoder3D", (Attention,),
                {"z": [1, 16, lf, h, w], "call": "vae.decode(z): frame-batched (2 latent frames per call, the "
                 "first call 3) with conv caches, no tiling (pipeline default)"}, children=False)
        out["vae"] = v
    write(model_id, out)


if __name__ == "__main__":
    todo = sys.argv[1:] or ["modelscope-t2v", "svd-xt", "cogvideox-2b", "cogvideox-5b"]
    for mid in todo:
        print("==", mid, flush=True)
        if mid == "modelscope-t2v":
            modelscope()
        elif mid == "svd-xt":
            svd()
        else:
            cogvideox(mid)
