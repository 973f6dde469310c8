"""SDXL base UNet and DiT-XL/2 reference counts."""
import torch
from diffusers import UNet2DConditionModel, DiTTransformer2DModel
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

from common import (measure, clean, count_params, child_params, attention_bmm_check, submodule_flops,
                    write, top_names, opname, ATTN_OPS, CONV_OPS, LINEAR_OPS)
from sd15 import conv_breakdown, attn_self_cross

SDXL_CFG = dict(
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


def tolist(d):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def sdxl():
    with torch.device("meta"):
        m = UNet2DConditionModel(**SDXL_CFG)
    m.eval()
    root = "UNet2DConditionModel"
    out = {"model_id": "sdxl-unet", "source": "stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (inline)",
           "config": dict(cls="diffusers.UNet2DConditionModel", **tolist(SDXL_CFG)),
           "params": count_params(m), "params_by_child": child_params(m),
           "params_by_top_level": {n: count_params(m.get_submodule(n)) for n in top_names(m)}}
    b, hw = 2, 128
    res = {}
    for proc_name in ("AttnProcessor", "default"):
        if proc_name == "AttnProcessor":
            m.set_attn_processor(AttnProcessor())
        else:
            m.set_default_attn_processor()
        x = torch.zeros(b, 4, hw, hw, device="meta")
        t = torch.tensor(999, device="meta")
        ehs = torch.zeros(b, 77, 2048, device="meta")
        added = {"text_embeds": torch.zeros(b, 1280, device="meta"), "time_ids": torch.zeros(b, 6, device="meta")}
        r = measure(lambda: m(x, t, encoder_hidden_states=ehs, added_cond_kwargs=added))
        r["attention_check"] = attention_bmm_check(r, m, root, (Attention,))
        r["conv_breakdown"] = conv_breakdown(r, m, root)
        r["transformer_breakdown"] = attn_self_cross(r, m, root)
        r["flops_by_child"] = {k.split(".", 1)[1]: v for k, v in
                               submodule_flops(r, [f"{root}.{n}" for n in top_names(m)]).items()}
        r["inputs"] = {"sample": [b, 4, hw, hw], "timestep": "scalar tensor (999)",
                       "encoder_hidden_states": [b, 77, 2048],
                       "added_cond_kwargs": {"text_embeds": [b, 1280], "time_ids": [b, 6]},
                       "dtype": "float32 (meta)"}
        res[proc_name] = clean(r)
    assert res["AttnProcessor"]["by_category"] == res["default"]["by_category"]
    out["flops"] = {"latent128_batch2": res["AttnProcessor"]}
    out["attention_counting"] = (
        "unet.set_attn_processor(AttnProcessor()) (baddbmm QK^T + bmm PV); cross-checked with default "
        "AttnProcessor2_0 (sdpa -> bmm on meta): identical totals. use_linear_projection=True, so transformer "
        "proj_in/proj_out are nn.Linear -> 'linear'. add_embedding (text_time) linears are in 'linear'.")
    write("sdxl-unet", out)


DIT_CFG = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
               dropout=0.0, norm_num_groups=32, attention_bias=True, sample_size=32, patch_size=2,
               activation_fn="gelu-approximate", num_embeds_ada_norm=1000, upcast_attention=False,
               norm_type="ada_norm_zero", norm_elementwise_affine=False, norm_eps=1e-5)


def dit():
    with torch.device("meta"):
        m = DiTTransformer2DModel(**DIT_CFG)
    m.eval()
    root = "DiTTransformer2DModel"
    blk = m.transformer_blocks[0]
    out = {"model_id": "dit-xl-2", "source": "facebook/DiT-XL-2-256 transformer/config.json values (inline)",
           "config": dict(cls="diffusers.DiTTransformer2DModel", **DIT_CFG),
           "params": count_params(m), "params_by_child": child_params(m),
           "params_per_block": count_params(blk), "params_per_block_detail": child_params(blk)}
    b = 2
    res = {}
    for proc_name in ("AttnProcessor", "default"):
        # DiTTransformer2DModel has no set_attn_processor(): set it on each Attention module
        for mod in m.modules():
            if isinstance(mod, Attention):
                mod.set_processor(AttnProcessor() if proc_name == "AttnProcessor" else AttnProcessor2_0())
        x = torch.zeros(b, 4, 32, 32, device="meta")
        t = torch.zeros(b, dtype=torch.long, device="meta")
        y = torch.zeros(b, dtype=torch.long, device="meta")
        r = measure(lambda: m(x, timestep=t, class_labels=y))
        r["attention_check"] = attention_bmm_check(r, m, root, (Attention,))
        names = [f"{root}.{n}" for n in ("pos_embed", "proj_out_1", "proj_out_2")] + \
                [f"{root}.transformer_blocks.0", f"{root}.transformer_blocks.0.norm1",
                 f"{root}.transformer_blocks.0.attn1", f"{root}.transformer_blocks.0.ff"]
        r["flops_by_child"] = {k.split(".", 1)[1]: v for k, v in submodule_flops(r, names).items()}
        r["inputs"] = {"hidden_states": [b, 4, 32, 32], "timestep": [b], "class_labels": [b],
                       "tokens": (32 // 2) ** 2, "dtype": "float32 (meta)"}
        res[proc_name] = clean(r)
    assert res["AttnProcessor"]["by_category"] == res["default"]["by_category"]
    out["flops"] = {"latent32_batch2": res["AttnProcessor"]}
    out["attention_counting"] = (
        "Attention.set_processor(AttnProcessor()) on every Attention module (baddbmm + bmm); cross-checked with default AttnProcessor2_0 "
        "(sdpa -> bmm on meta): identical totals. Patch embedding is a 2x2/stride-2 conv -> 'conv'. "
        "adaLN-Zero modulation linears (per-block norm1.linear, emb) and proj_out_1/proj_out_2 are 'linear'.")
    write("dit-xl-2", out)


if __name__ == "__main__":
    import sys
    if "dit" not in sys.argv: sdxl()
    dit()
