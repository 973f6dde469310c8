"""Stable Diffusion 1.5 reference counts: CLIP text encoder, UNet, VAE decoder."""
import torch
from transformers import CLIPTextModel, CLIPTextConfig
from transformers.models.clip.modeling_clip import CLIPAttention
from diffusers import UNet2DConditionModel, AutoencoderKL
from diffusers.models.attention_processor import Attention, AttnProcessor

from common import (measure, clean, count_params, child_params, attention_bmm_check,
                    submodule_flops, write, top_names, gflops, opname, ATTN_OPS, CONV_OPS, LINEAR_OPS)

DTYPE = torch.float32  # dtype does not change counts; meta tensors

# ---------------------------------------------------------------- text encoder
CLIP_CFG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                projection_dim=768)


def text_encoder():
    out = {}
    for impl in ("eager", "sdpa"):
        cfg = CLIPTextConfig(**CLIP_CFG)
        with torch.device("meta"):
            m = CLIPTextModel(cfg)
        m.set_attn_implementation(impl)
        m.eval()
        out.setdefault("params", count_params(m))
        out.setdefault("params_by_child", {
            "embeddings.token_embedding": count_params(m.embeddings.token_embedding),
            "embeddings.position_embedding": count_params(m.embeddings.position_embedding),
            "encoder": count_params(m.encoder),
            "encoder.layers.0": count_params(m.encoder.layers[0]),
            "final_layer_norm": count_params(m.final_layer_norm),
        })
        runs = {}
        for b in (2, 1):
            ids = torch.zeros(b, 77, dtype=torch.long, device="meta")
            r = measure(lambda: m(input_ids=ids))
            r["attention_check"] = attention_bmm_check(r, m, "CLIPTextModel", (CLIPAttention,))
            r["inputs"] = {"input_ids": [b, 77], "dtype": "int64", "batch_note":
                           "batch 2 = prompt + negative prompt (CFG)" if b == 2 else "single prompt"}
            runs[f"batch{b}"] = clean(r)
        out[f"flops_attn_{impl}"] = runs
    # consistency between eager and sdpa
    for b in ("batch2", "batch1"):
        assert out["flops_attn_eager"][b]["by_op"] == out["flops_attn_sdpa"][b]["by_op"], b
    out["flops"] = out.pop("flops_attn_eager")
    out.pop("flops_attn_sdpa")
    out["attention_counting"] = (
        "attn_implementation='eager' (torch.matmul QK^T and PV -> aten.bmm). Cross-checked with "
        "'sdpa': on the meta device F.scaled_dot_product_attention decomposes to the math path "
        "(aten.bmm) and gave identical per-op counts. Softmax/mask not counted by FlopCounterMode.")
    out["config"] = dict(cls="transformers.CLIPTextModel", **CLIP_CFG)
    return out


# ---------------------------------------------------------------- UNet
UNET_CFG = dict(sample_size=64, in_channels=4, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                attention_head_dim=8, norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
                downsample_padding=1, mid_block_scale_factor=1, norm_eps=1e-5, center_input_sample=False)


def conv_breakdown(res, model, root):
    """Split conv flops into transformer proj_in/proj_out (1x1 conv) vs. everything else."""
    counts = res["_counts"]
    proj = 0
    for n, mod in model.named_modules():
        if n.endswith("proj_in") or n.endswith("proj_out"):
            d = counts.get(f"{root}.{n}", {})
            proj += sum(int(v) for k, v in d.items() if opname(k) in CONV_OPS)
    return {"transformer_proj_in_out_1x1_conv": proj,
            "other_conv": res["by_category"]["conv"] - proj}


def attn_self_cross(res, model, root):
    counts = res["_counts"]
    out = {"attn1_self": {"attention": 0, "linear": 0}, "attn2_cross": {"attention": 0, "linear": 0},
           "ff": {"linear": 0}}
    for n, mod in model.named_modules():
        key = None
        if n.endswith("attn1"):
            key = "attn1_self"
        elif n.endswith("attn2"):
            key = "attn2_cross"
        elif n.endswith(".ff"):
            key = "ff"
        if key is None:
            continue
        d = counts.get(f"{root}.{n}", {})
        for k, v in d.items():
            o = opname(k)
            if o in ATTN_OPS and "attention" in out[key]:
                out[key]["attention"] += int(v)
            elif o in LINEAR_OPS:
                out[key]["linear"] += int(v)
    return out


def unet():
    with torch.device("meta"):
        m = UNet2DConditionModel(**UNET_CFG)
    m.eval()
    out = {"params": count_params(m), "params_by_child": child_params(m)}
    out["params_by_top_level"] = {n: count_params(m.get_submodule(n)) for n in top_names(m)}
    out["params_by_child_detail"] = {}
    for i, b in enumerate(m.down_blocks):
        out["params_by_child_detail"][f"down_blocks.{i}"] = child_params(b)
    for i, b in enumerate(m.up_blocks):
        out["params_by_child_detail"][f"up_blocks.{i}"] = child_params(b)
    out["params_by_child_detail"]["mid_block"] = child_params(m.mid_block)
    cases = [("latent64_batch2", 2, 64), ("latent96_batch2", 2, 96), ("latent64_batch1", 1, 64)]
    flops = {}
    for proc_name, proc in (("AttnProcessor", AttnProcessor()), ("default_AttnProcessor2_0", None)):
        if proc is not None:
            m.set_attn_processor(proc)
        else:
            m.set_default_attn_processor()  # AttnProcessor2_0 (sdpa)
        runs = {}
        for name, b, hw in cases:
            x = torch.zeros(b, 4, hw, hw, device="meta", dtype=DTYPE)
            t = torch.tensor(999, device="meta")
            ehs = torch.zeros(b, 77, 768, device="meta", dtype=DTYPE)
            r = measure(lambda: m(x, t, encoder_hidden_states=ehs))
            r["attention_check"] = attention_bmm_check(r, m, "UNet2DConditionModel", (Attention,))
            r["conv_breakdown"] = conv_breakdown(r, m, "UNet2DConditionModel")
            r["transformer_breakdown"] = attn_self_cross(r, m, "UNet2DConditionModel")
            top = [f"UNet2DConditionModel.{n}" for n in top_names(m)]
            r["flops_by_child"] = {k.split(".", 1)[1]: v for k, v in submodule_flops(r, top).items()}
            r["inputs"] = {"sample": [b, 4, hw, hw], "timestep": "scalar tensor (999)",
                           "encoder_hidden_states": [b, 77, 768], "dtype": "float32 (meta)"}
            runs[name] = clean(r)
        flops[proc_name] = runs
    for name, _, _ in cases:
        assert flops["AttnProcessor"][name]["by_op"].keys() >= {"convolution"}
        a = flops["AttnProcessor"][name]["by_category"]
        d = flops["default_AttnProcessor2_0"][name]["by_category"]
        assert a == d, (name, a, d)
    out["flops"] = flops["AttnProcessor"]
    out["attention_counting"] = (
        "unet.set_attn_processor(AttnProcessor()) (math path: baddbmm for QK^T, bmm for PV). "
        "Cross-checked with the default AttnProcessor2_0 (F.scaled_dot_product_attention, which on "
        "meta decomposes to aten.bmm): identical per-category totals. All bmm/baddbmm flops are "
        "inside diffusers Attention modules (see attention_check). Transformer2DModel proj_in/proj_out "
        "are 1x1 convolutions in SD1.5 (use_linear_projection=False) and are therefore counted as "
        "'conv' (split out in conv_breakdown).")
    out["config"] = dict(cls="diffusers.UNet2DConditionModel", **{k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in UNET_CFG.items()})
    return out


# ---------------------------------------------------------------- VAE
VAE_CFG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, latent_channels=4, norm_num_groups=32, act_fn="silu", sample_size=512)


def vae():
    with torch.device("meta"):
        m = AutoencoderKL(**VAE_CFG)
    m.eval()
    out = {"params": count_params(m), "params_by_child": child_params(m),
           "params_decoder_plus_post_quant_conv": count_params(m.decoder) + count_params(m.post_quant_conv),
           "params_decoder_detail": {n: count_params(m.decoder.get_submodule(n)) for n in top_names(m.decoder)}}
    flops = {}
    for proc_name, proc in (("AttnProcessor", AttnProcessor()), ("default", None)):
        if proc is not None:
            m.set_attn_processor(proc)
        else:
            m.set_default_attn_processor()
        runs = {}
        for hw in (64, 96):
            z = torch.zeros(1, 4, hw, hw, device="meta", dtype=DTYPE)
            r = measure(lambda: m.decode(z))
            r["attention_check"] = attention_bmm_check(r, m.decoder, "Decoder", (Attention,))
            # decode() is not forward(): the module tracker roots are 'Conv2d' (post_quant_conv)
            # and 'Decoder' (decoder)
            names = ["Conv2d", "Decoder"] + [f"Decoder.{n}" for n in top_names(m.decoder)]
            fb = submodule_flops(r, names)
            r["flops_by_child"] = {("post_quant_conv" if k == "Conv2d" else
                                    k.replace("Decoder", "decoder", 1)): v for k, v in fb.items()}
            r["inputs"] = {"z": [1, 4, hw, hw], "output_image": [1, 3, hw * 8, hw * 8], "dtype": "float32 (meta)",
                           "call": "vae.decode(z) (post_quant_conv + decoder; no scaling factor applied)"}
            runs[f"latent{hw}_batch1"] = clean(r)
        flops[proc_name] = runs
    for k in flops["AttnProcessor"]:
        assert flops["AttnProcessor"][k]["by_category"] == flops["default"][k]["by_category"]
    out["flops_decode"] = flops["AttnProcessor"]
    out["attention_counting"] = (
        "vae.set_attn_processor(AttnProcessor()) (math path, baddbmm + bmm) for the single-head "
        "mid-block self-attention (512 channels); cross-checked with default AttnProcessor2_0 "
        "(sdpa -> bmm on meta): identical totals. q/k/v/out projections of the mid-block attention "
        "are nn.Linear (mm/addmm) -> 'linear'.")
    out["config"] = dict(cls="diffusers.AutoencoderKL", **{k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in VAE_CFG.items()})
    return out


if __name__ == "__main__":
    data = {"model_id": "sd15", "source": "runwayml/stable-diffusion-v1-5 public configs (written inline)",
            "text_encoder": text_encoder()}
    write("sd15", data)
    data["unet"] = unet()
    write("sd15", data)
    data["vae"] = vae()
    write("sd15", data)
