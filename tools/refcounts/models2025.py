"""Reference counts of the 2025 built-in models (models/sd35-large, qwen-image, hunyuanvideo, mixtral-8x7b).

Every network is built on the meta device from its public config (values written inline below, no hub access, no
weights) and run once per input shape under FlopCounterMode, as in dit.py. Attention runs through the default
processors, whose F.scaled_dot_product_attention decomposes to aten.bmm on the meta device; every result checks
that all bmm lie inside attention modules. Huge text encoders are counted as their language model
(transformers LlamaModel / Qwen2ForCausalLM with the released text config).

Usage: python models2025.py [sd35] [qwen] [hunyuan] [mixtral]   (no argument: all four)
Writes tools/results/models2025_<model>.json.
"""
import sys

import torch
from diffusers import (AutoencoderKLHunyuanVideo, AutoencoderKLQwenImage, HunyuanVideoTransformer3DModel,
                       QwenImageTransformer2DModel, SD3Transformer2DModel)
from diffusers.models.attention_processor import Attention
from diffusers.models.autoencoders.autoencoder_kl_qwenimage import QwenImageAttentionBlock
from transformers import (CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, MixtralConfig, MixtralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)
from transformers.models.clip.modeling_clip import CLIPAttention
from transformers.models.llama.modeling_llama import LlamaAttention
from transformers.models.mixtral.modeling_mixtral import MixtralAttention
from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention

from common import attention_bmm_check, clean, count_params, measure, write

META = "meta"


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, device=META, dtype=dtype)


def ids(*shape):
    return torch.zeros(*shape, dtype=torch.long, device=META)


def run(fn, model, root, attn_types, inputs):
    r = measure(fn)
    r["attention_check"] = attention_bmm_check(r, model, root, attn_types)
    r["inputs"] = inputs
    return clean(r)


def build(cls, **cfg):
    with torch.device(META):
        m = cls(**cfg)
    return m.eval()


# ---------------------------------------------------------------------------------------------- SD 3.5 Large
# stabilityai/stable-diffusion-3.5-large transformer/config.json; its CLIP-L, bigG, T5-XXL and 16-channel VAE are
# those of SD3 Medium (counted in dit.py, kept in tests/test_models_dit.py).
SD35_LARGE = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64,
                  num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                  pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192, qk_norm="rms_norm",
                  dual_attention_layers=())


def sd35():
    m = build(SD3Transformer2DModel, **SD35_LARGE)
    out = {"config": dict(cls="diffusers.SD3Transformer2DModel", **SD35_LARGE), "params": count_params(m),
           "flops": {}}
    for hw in (128, 64):   # 1024 px and 512 px
        x, ctx, pooled, t = z(2, 16, hw, hw), z(2, 77 + 256, 4096), z(2, 2048), z(2)
        out["flops"][f"latent{hw}_batch2"] = run(
            lambda: m(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t),
            m, "SD3Transformer2DModel", (Attention,),
            {"hidden_states": [2, 16, hw, hw], "encoder_hidden_states": [2, 333, 4096], "pooled": [2, 2048]})
    return out


# ------------------------------------------------------------------------------------------------- Qwen-Image
# Qwen/Qwen-Image transformer/config.json (the diffusers defaults of QwenImageTransformer2DModel)
QWEN_DIT = dict(patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=3584, guidance_embeds=False, axes_dims_rope=(16, 56, 56))
# Qwen/Qwen-Image text_encoder/config.json (Qwen2.5-VL-7B-Instruct) text model: the Qwen2 decoder it is built on
# (multimodal RoPE changes no shape); untied LM head, which the pipeline's forward call evaluates on every token
QWEN_LM = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000, rms_norm_eps=1e-6,
               rope_theta=1000000.0, tie_word_embeddings=False)
# Qwen/Qwen-Image vae/config.json (AutoencoderKLQwenImage = the Wan 2.1 VAE architecture)
QWEN_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                temperal_downsample=[False, True, True], dropout=0.0)


def qwen():
    out = {}
    m = build(QwenImageTransformer2DModel, **QWEN_DIT)
    d = {"config": dict(cls="diffusers.QwenImageTransformer2DModel", **QWEN_DIT), "params": count_params(m),
         "flops": {}}
    for hw, txt in ((83, 128), (64, 128), (83, 256)):   # 1328 px / 1024 px packed latents; text tokens
        x, ctx, t = z(2, hw * hw, 64), z(2, txt, 3584), z(2)
        d["flops"][f"tokens{hw}x{hw}_text{txt}_batch2"] = run(
            lambda: m(hidden_states=x, encoder_hidden_states=ctx, encoder_hidden_states_mask=None, timestep=t,
                      img_shapes=[[(1, hw, hw)]] * 2),
            m, "QwenImageTransformer2DModel", (Attention,),
            {"hidden_states": [2, hw * hw, 64], "encoder_hidden_states": [2, txt, 3584]})
    out["transformer"] = d
    lm = build(Qwen2ForCausalLM, config=Qwen2Config(**QWEN_LM))
    lm.set_attn_implementation("eager")
    d = {"config": dict(cls="transformers.Qwen2ForCausalLM", **QWEN_LM), "params": count_params(lm),
         "params_lm_head": count_params(lm.lm_head), "flops": {}}
    for b, L in ((2, 34 + 128), (1, 34 + 128), (2, 34 + 256)):
        ii = ids(b, L)
        d["flops"][f"batch{b}_tokens{L}"] = run(lambda: lm(input_ids=ii, output_hidden_states=True, logits_to_keep=0),
                                                lm, "Qwen2ForCausalLM", (Qwen2Attention,), {"input_ids": [b, L]})
    out["text_encoder"] = d
    v = build(AutoencoderKLQwenImage, **QWEN_VAE)
    d = {"config": dict(cls="diffusers.AutoencoderKLQwenImage", **QWEN_VAE),
         "params_decoder": count_params(v.decoder), "params_post_quant_conv": count_params(v.post_quant_conv),
         "flops_decode": {}}
    for hw in (166, 128):
        zz = z(1, 16, 1, hw, hw)
        d["flops_decode"][f"latent{hw}"] = run(lambda: v.decode(zz), v.decoder, "QwenImageDecoder3d",
                                               (QwenImageAttentionBlock,),
                                               {"z": [1, 16, 1, hw, hw]})
    out["vae"] = d
    return out


# ----------------------------------------------------------------------------------------------- HunyuanVideo
# hunyuanvideo-community/HunyuanVideo transformer/config.json (the diffusers defaults of the class)
HY_DIT = dict(in_channels=16, out_channels=16, num_attention_heads=24, attention_head_dim=128, num_layers=20,
              num_single_layers=40, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2, patch_size_t=1,
              qk_norm="rms_norm", guidance_embeds=True, text_embed_dim=4096, pooled_projection_dim=768,
              rope_theta=256.0, rope_axes_dim=(16, 56, 56))
# hunyuanvideo-community/HunyuanVideo text_encoder/config.json: LlamaModel of llava-llama-3-8b-v1_1 (vocab 128320)
HY_LLAMA = dict(vocab_size=128320, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rms_norm_eps=1e-5,
                rope_theta=500000.0)
# text_encoder_2: CLIP ViT-L/14 text tower (CLIPTextModel)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
# vae/config.json (AutoencoderKLHunyuanVideo defaults)
HY_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
              layers_per_block=2, norm_num_groups=32, act_fn="silu", scaling_factor=0.476986,
              spatial_compression_ratio=8, temporal_compression_ratio=4, mid_block_add_attention=True)


def hunyuan():
    out = {}
    m = build(HunyuanVideoTransformer3DModel, **HY_DIT)
    d = {"config": dict(cls="diffusers.HunyuanVideoTransformer3DModel", **HY_DIT), "params": count_params(m),
         "flops": {}}
    for f, h, w, txt in ((33, 90, 160, 256), (33, 68, 120, 256), (16, 60, 106, 128)):
        x, ctx, t = z(1, 16, f, h, w), z(1, txt, 4096), z(1)
        mask = torch.ones(1, txt, dtype=torch.long, device=META)
        pooled, g = z(1, 768), z(1)
        d["flops"][f"latent{f}x{h}x{w}_text{txt}"] = run(
            lambda: m(hidden_states=x, timestep=t, encoder_hidden_states=ctx, encoder_attention_mask=mask,
                      pooled_projections=pooled, guidance=g),
            m, "HunyuanVideoTransformer3DModel", (Attention,),
            {"hidden_states": [1, 16, f, h, w], "encoder_hidden_states": [1, txt, 4096]})
    out["transformer"] = d
    lm = build(LlamaModel, config=LlamaConfig(**HY_LLAMA))
    lm.set_attn_implementation("eager")
    d = {"config": dict(cls="transformers.LlamaModel", **HY_LLAMA), "params": count_params(lm), "flops": {}}
    for L in (256 + 95, 128 + 95):
        ii = ids(1, L)
        d["flops"][f"batch1_tokens{L}"] = run(lambda: lm(input_ids=ii, output_hidden_states=True), lm, "LlamaModel",
                                              (LlamaAttention,), {"input_ids": [1, L]})
    out["text_encoder"] = d
    clip = build(CLIPTextModel, config=CLIPTextConfig(**CLIP_L))
    clip.set_attn_implementation("eager")
    ii = ids(1, 77)
    out["text_encoder_2"] = {"config": dict(cls="transformers.CLIPTextModel", **CLIP_L), "params": count_params(clip),
                             "flops": {"batch1": run(lambda: clip(input_ids=ii), clip, "CLIPTextModel",
                                                     (CLIPAttention,), {"input_ids": [1, 77]})}}
    v = build(AutoencoderKLHunyuanVideo, **HY_VAE)
    d = {"config": dict(cls="diffusers.AutoencoderKLHunyuanVideo", **HY_VAE),
         "params_decoder": count_params(v.decoder), "params_post_quant_conv": count_params(v.post_quant_conv),
         "decode_path": "vae.decode: use_framewise_decoding (default True) -> _temporal_tiled_decode, tiles of 5 "
                        "latent frames every 3, no spatial tiling (use_tiling default False)",
         "flops_decode": {}}
    for f, h, w in ((33, 90, 160), (16, 60, 106)):
        zz = z(1, 16, f, h, w)
        d["flops_decode"][f"latent{f}x{h}x{w}"] = run(lambda: v.decode(zz), v.decoder, "HunyuanVideoDecoder3D",
                                                      (Attention,), {"z": [1, 16, f, h, w]})
    out["vae"] = d
    return out


# -------------------------------------------------------------------------------------------------- Mixtral
# mistralai/Mixtral-8x7B-v0.1 config.json
MIXTRAL = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2,
               max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1e6, sliding_window=None,
               tie_word_embeddings=False)


def mixtral():
    m = build(MixtralForCausalLM, config=MixtralConfig(**MIXTRAL))
    m.set_attn_implementation("eager")
    layer = m.model.layers[0]
    experts = layer.mlp.experts
    out = {"config": dict(cls="transformers.MixtralForCausalLM", **MIXTRAL), "params": count_params(m),
           "params_embed": count_params(m.model.embed_tokens), "params_lm_head": count_params(m.lm_head),
           "params_layer": count_params(layer), "params_router": count_params(layer.mlp.gate),
           "params_experts_per_layer": count_params(experts)}
    # the experts route tokens with data-dependent index ops (nonzero / where / index_add), which the meta device
    # cannot run: the model is counted with the experts' forward replaced by zeros (router, attention, projections,
    # LM head), and the expert GEMMs separately on a reduced config with real random weights on the CPU, which
    # shows they are exactly 2 * T * k * 3 * d * ff whatever the routing (every token visits exactly k experts)
    m.set_experts_implementation("eager")
    for layer in m.model.layers:
        layer.mlp.experts.forward = lambda h, idx, w: torch.zeros_like(h)
    for L in (512, 128):
        ii = ids(1, L)
        out[f"prefill{L}_without_experts"] = run(lambda: m(input_ids=ii, logits_to_keep=0), m, "MixtralForCausalLM",
                                                 (MixtralAttention,), {"input_ids": [1, L], "logits": "all positions"})
    small = dict(MIXTRAL, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100)
    torch.manual_seed(0)
    sm = MixtralForCausalLM(MixtralConfig(**small)).eval()
    sm.set_attn_implementation("eager")
    sm.set_experts_implementation("eager")   # the per-expert loop of nn.functional.linear (grouped_mm is uncounted)
    T = 37
    full = run(lambda: sm(input_ids=torch.randint(0, 100, (1, T))), sm, "MixtralForCausalLM", (MixtralAttention,),
               {"input_ids": [1, T]})
    for layer in sm.model.layers:
        layer.mlp.experts.forward = lambda h, idx, w: torch.zeros_like(h)
    bare = run(lambda: sm(input_ids=torch.randint(0, 100, (1, T))), sm, "MixtralForCausalLM", (MixtralAttention,),
               {"input_ids": [1, T]})
    expert = full["by_category"]["linear"] - bare["by_category"]["linear"]
    formula = 2 * small["num_hidden_layers"] * T * 2 * 3 * 64 * 96
    out["expert_flops_check_cpu"] = {"config": small, "tokens": T, "expert_linear_flops": expert,
                                     "formula_2_layers_T_k_3_d_ff": formula}
    assert expert == formula, (expert, formula)
    return out


if __name__ == "__main__":
    todo = sys.argv[1:] or ["sd35", "qwen", "hunyuan", "mixtral"]
    for name in todo:
        write(f"models2025_{name}", {"sd35": sd35, "qwen": qwen, "hunyuan": hunyuan, "mixtral": mixtral}[name]())
