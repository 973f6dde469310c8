"""Multi-modal (joint text-image attention) DiTs: SD3Transformer2DModel (models/sd3-medium.yaml) and
FluxTransformer2DModel (models/flux1-dev.yaml), in the module order of diffusers' JointTransformerBlock,
FluxTransformerBlock and FluxSingleTransformerBlock."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op, parameter
from .dit import MODULATE, TIMESTEP_CHANNELS, unpatchify
from .unet import DEFAULT_VAE_FACTOR

ADALN_ZERO = {"args": {"d": None}, "inputs": ["temb"],
              "outputs": {"shift_msa": "out.0", "scale_msa": "out.1", "gate_msa": "out.2", "shift_mlp": "out.3",
                          "scale_mlp": "out.4", "gate_mlp": "out.5"}, "ops": [
    op("act", "silu", "temb"), op("linear", "linear", "act", out_features="6 * d"),
    op("out", "split", "linear", axis=-1, chunks=6)]}

# FeedForward(dim, dim_out=dim, activation_fn="gelu-approximate"): 4 d inner width, both blocks' streams
GATED_FF = {"args": {"d": None}, "inputs": ["x", "shift", "scale", "gate"], "outputs": ["out"], "ops": [
    op("norm", "layer_norm", "x", affine=False), block("mod", "Modulate", ["norm", "shift", "scale"]),
    op("proj", "linear", "mod", out_features="4 * d"), op("act", "gelu_tanh", "proj"),
    op("ff_out", "linear", "act", out_features="d"), op("gated", "mul", ["ff_out", "gate"]),
    op("out", "add", ["x", "gated"])]}


HEAD_RMS_NORM = {"args": {"heads": None}, "inputs": ["x"], "outputs": ["out"], "ops": [
    op("heads_view", "reshape", "x", shape=["d0", "d1", "heads", "d2 / heads"]), op("norm", "rms_norm", "heads_view"),
    op("out", "reshape", "norm", shape=["d0", "d1", "d2 * d3"])]}


def width(config: Config) -> tuple[int, int]:
    heads, head_dim = config.int("num_attention_heads"), config.int("attention_head_dim")
    return heads * head_dim, heads


def check_rope_axes(config: Config, key: str, head_dim: int) -> None:
    """The rotary embedding's axes (`key`, default 16 + 56 + 56) must split the head dim exactly."""
    rope = config.get(key, [16, 56, 56])
    if sum(rope) != head_dim:
        raise config.error(key, f"the rotary axes ({sum(rope)}) must cover the head dim {head_dim}")


def embed_mlp(prefix: str, source: str, d: int, sinusoidal: bool = True) -> list:
    """Timesteps(256) (when `sinusoidal`) -> linear -> SiLU -> linear."""
    ops = [op(f"{prefix}_proj", "sinusoidal_embedding", source, dim=TIMESTEP_CHANNELS)] if sinusoidal else []
    first = f"{prefix}_proj" if sinusoidal else source
    return ops + [op(f"{prefix}_linear_1", "linear", first, out_features=d), op(f"{prefix}_act", "silu",
                  f"{prefix}_linear_1"), op(f"{prefix}_emb", "linear", f"{prefix}_act", out_features=d)]


def joint_block(last: bool, qk_norm: bool = False) -> dict:
    """JointTransformerBlock: adaLN-Zero for both streams, joint attention over [image; text], gated FFs; the last
    block (context_pre_only) keeps only the image stream after attention. SD 3.5 (qk_norm rms_norm) normalises every
    head of q and k in both streams."""
    ops = [block("mod", "AdaLNZero", "temb", {"d": "d"})]
    if last:
        ops += [op("ctemb_act", "silu", "temb"), op("cmod_linear", "linear", "ctemb_act", out_features="2 * d"),
                op("cscale_shift", "split", "cmod_linear", axis=-1, chunks=2)]    # scale, shift
    else:
        ops.append(block("cmod", "AdaLNZero", "temb", {"d": "d"}))
    shift, scale = ("cscale_shift.1", "cscale_shift.0") if last else ("cmod.shift_msa", "cmod.scale_msa")
    ops += [op("norm1", "layer_norm", "x", affine=False),
            block("mod1", "Modulate", ["norm1", "mod.shift_msa", "mod.scale_msa"]),
            op("cnorm1", "layer_norm", "ctx", affine=False), block("cmod1", "Modulate", ["cnorm1", shift, scale])]
    ops += [op(n, "linear", "mod1", out_features="d") for n in ("q", "k", "v")]
    ops += [op(f"add_{n}", "linear", "cmod1", out_features="d") for n in ("q", "k", "v")]
    if qk_norm:
        ops += [block(f"norm_{n}", "HeadRMSNorm", n, {"heads": "heads"}) for n in ("q", "k")]
        ops += [block(f"norm_added_{n}", "HeadRMSNorm", f"add_{n}", {"heads": "heads"}) for n in ("q", "k")]
        ops += [op(f"joint_{n}", "concat", [f"norm_{n}", f"norm_added_{n}"], axis=1) for n in ("q", "k")]
        ops.append(op("joint_v", "concat", ["v", "add_v"], axis=1))
    else:
        ops += [op(f"joint_{n}", "concat", [n, f"add_{n}"], axis=1) for n in ("q", "k", "v")]
    ops += [op("attn", "attention", ["joint_q", "joint_k", "joint_v"], heads="heads", role="joint"),
            op("attn_split", "split", "attn", axis=1, sizes=["dim(x, 1)", "dim(ctx, 1)"]),
            op("to_out", "linear", "attn_split.0", out_features="d")]
    if not last:
        ops.append(op("to_add_out", "linear", "attn_split.1", out_features="d"))
    ops += [op("gated_attn", "mul", ["to_out", "mod.gate_msa"]), op("res1", "add", ["x", "gated_attn"]),
            block("x_out", "GatedFF", ["res1", "mod.shift_mlp", "mod.scale_mlp", "mod.gate_mlp"], {"d": "d"})]
    if not last:
        ops += [op("cgated_attn", "mul", ["to_add_out", "cmod.gate_msa"]), op("cres1", "add", ["ctx", "cgated_attn"]),
                block("ctx_out", "GatedFF", ["cres1", "cmod.shift_mlp", "cmod.scale_mlp", "cmod.gate_mlp"],
                      {"d": "d"})]
    return {"args": {"d": None, "heads": None}, "inputs": ["x", "ctx", "temb"],
            "outputs": ["x_out"] if last else {"x": "x_out", "ctx": "ctx_out"}, "ops": ops}


@network("SD3Transformer2DModel")
def sd3(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    for key, allowed in (("qk_norm", (None, "rms_norm")), ("dual_attention_layers", ((), [])),
                         ("pos_embed_type", ("sincos",))):
        config.expect(key, allowed, {"dual_attention_layers": (), "pos_embed_type": "sincos"}.get(key))
    d, heads = width(config)
    if config.int("caption_projection_dim") != d:
        raise config.error("caption_projection_dim", f"must equal num_attention_heads x attention_head_dim = {d}")
    p, cin, layers = config.int("patch_size"), config.int("in_channels"), config.int("num_layers")
    cout = config.int("out_channels", cin)
    c = {"patch": p, "cout": cout}
    ops = [op("x_embedder", "conv2d", sample, out_channels=d, kernel=p, stride=p),
           op("x_flat", "reshape", "x_embedder", shape=["d0", "d1", "d2 * d3"]),
           op("x_tokens", "transpose", "x_flat", perm=[0, 2, 1]),
           # sin-cos table cropped from pos_embed_max_size: a buffer, not a parameter
           parameter("pos_embed", [1, "T", d], learned=False), op("x", "add", ["x_tokens", "pos_embed"])]
    ops += embed_mlp("t", "timestep", d) + embed_mlp("pooled", "pooled", d, sinusoidal=False)
    ops += [op("temb_flat", "add", ["t_emb", "pooled_emb"]), op("temb", "reshape", "temb_flat", shape=["d0", 1, "d1"]),
            op("context_embedder", "linear", "context", out_features=d)]
    args = {"d": d, "heads": heads}
    if layers > 1:
        ops += [block("blocks", "JointBlock", ["x", "context_embedder", "temb"], args, repeat=layers - 1),
                block("last_block", "JointBlockLast", ["blocks.x", "blocks.ctx", "temb"], args)]
    else:
        ops.append(block("last_block", "JointBlockLast", ["x", "context_embedder", "temb"], args))
    ops += norm_out("last_block", d) + [op("proj_out", "linear", "out_modulate", out_features=p * p * cout)]
    ops += unpatchify(c, "proj_out", f, "velocity")
    joint = config.int("joint_attention_dim")
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}, "context": {"shape": ["B", "text_tokens", joint]},
              "pooled": {"shape": ["B", config.int("pooled_projection_dim")]}}
    size = config.int("sample_size", 128) * f
    g = f * p
    facts = {"role": "denoiser", "channels": cin, "sample_size": config.int("sample_size", 128), "context_dim": joint,
             "bind": {"T": f"(height / {g}) * (width / {g})"},
             "main_input": {sample: {"shape": ["B", cin, f"height / {f}", f"width / {f}"]}},
             "params": {"height": {"default": size, "min": 1, "help": "output height in pixels"},
                        "width": {"default": size, "min": 1, "help": "output width in pixels"},
                        # StableDiffusion3Pipeline: 77 CLIP tokens + max_sequence_length=256 T5 tokens
                        "text_tokens": {"default": 77 + 256, "min": 1,
                                        "help": "joint text sequence length in tokens (CLIP + T5)"}}}
    qk_norm = config.get("qk_norm") == "rms_norm"
    blocks = {"Modulate": MODULATE, "AdaLNZero": ADALN_ZERO, "GatedFF": GATED_FF}
    if qk_norm:
        blocks["HeadRMSNorm"] = HEAD_RMS_NORM
    blocks |= {"JointBlock": joint_block(False, qk_norm), "JointBlockLast": joint_block(True, qk_norm)}
    return Part(blocks, inputs, ops, "velocity", facts)


def rope_joint_attention(gates: tuple) -> list:
    """From the normed q/k/v of both streams to the blocks' outputs: [text; image] concatenated, RoPE on q and k,
    one joint attention, split back, out projections, gated residuals and gated FFs. `gates` names the
    modulation outputs (gate of the attention, shift/scale/gate of the FF) in `mod` and `cmod`."""
    g, shift, scale, gff = gates
    return [op("joint_q", "concat", ["norm_added_q", "norm_q"], axis=1),
            op("joint_k", "concat", ["norm_added_k", "norm_k"], axis=1),
            op("joint_v", "concat", ["add_v", "v"], axis=1),
            op("q_rope", "rope", "joint_q"), op("k_rope", "rope", "joint_k"),
            op("attn", "attention", ["q_rope", "k_rope", "joint_v"], heads="heads", role="joint"),
            op("attn_split", "split", "attn", axis=1, sizes=["dim(ctx, 1)", "dim(x, 1)"]),
            op("to_out", "linear", "attn_split.1", out_features="d"),
            op("to_add_out", "linear", "attn_split.0", out_features="d"),
            op("gated_attn", "mul", ["to_out", f"mod.{g}"]), op("res1", "add", ["x", "gated_attn"]),
            block("x_out", "GatedFF", ["res1", f"mod.{shift}", f"mod.{scale}", f"mod.{gff}"], {"d": "d"}),
            op("cgated_attn", "mul", ["to_add_out", f"cmod.{g}"]), op("cres1", "add", ["ctx", "cgated_attn"]),
            block("ctx_out", "GatedFF", ["cres1", f"cmod.{shift}", f"cmod.{scale}", f"cmod.{gff}"], {"d": "d"})]


def norm_out(last: str, d) -> list:
    """AdaLayerNormContinuous on the last block's output: SiLU(temb) -> Linear(d, 2 d) -> (scale, shift), a
    LayerNorm without weights, modulated (SD3, Flux, HunyuanVideo and Qwen-Image end this way)."""
    return [op("out_act", "silu", "temb"), op("out_linear", "linear", "out_act", out_features=2 * d),
            op("out_mod", "split", "out_linear", axis=-1, chunks=2),     # scale, shift
            op("norm_out", "layer_norm", last, affine=False),
            block("out_modulate", "Modulate", ["norm_out", "out_mod.1", "out_mod.0"])]


def dual_stream_modulation() -> list:
    """The head of a dual-stream block (Flux, HunyuanVideo): adaLN-Zero of each stream from the time embedding, and
    each stream's LayerNorm (no weights) modulated by its shift and scale."""
    return [block("mod", "AdaLNZero", "temb", {"d": "d"}), block("cmod", "AdaLNZero", "temb", {"d": "d"}),
            op("norm1", "layer_norm", "x", affine=False),
            block("mod1", "Modulate", ["norm1", "mod.shift_msa", "mod.scale_msa"]),
            op("cnorm1", "layer_norm", "ctx", affine=False),
            block("cmod1", "Modulate", ["cnorm1", "cmod.shift_msa", "cmod.scale_msa"])]


def flux_blocks() -> dict:
    """FluxTransformerBlock (double stream: per-head QK RMS norm, [text; image] joint attention with RoPE) and
    FluxSingleTransformerBlock (one stream over [text; image], attention and MLP in parallel)."""
    ops = dual_stream_modulation()
    ops += [op(n, "linear", "mod1", out_features="d") for n in ("q", "k", "v")]
    ops += [block(f"norm_{n}", "HeadRMSNorm", n, {"heads": "heads"}) for n in ("q", "k")]
    ops += [op(f"add_{n}", "linear", "cmod1", out_features="d") for n in ("q", "k", "v")]
    ops += [block(f"norm_added_{n}", "HeadRMSNorm", f"add_{n}", {"heads": "heads"}) for n in ("q", "k")]
    ops += rope_joint_attention(("gate_msa", "shift_mlp", "scale_mlp", "gate_mlp"))
    double = {"args": {"d": None, "heads": None}, "inputs": ["x", "ctx", "temb"],
              "outputs": {"x": "x_out", "ctx": "ctx_out"}, "ops": ops}
    single = {"args": {"d": None, "heads": None}, "inputs": ["x", "ctx", "temb"],
              "outputs": {"x": "x_out", "ctx": "ctx_out"}, "ops": [
        op("h", "concat", ["ctx", "x"], axis=1), op("temb_act", "silu", "temb"),
        op("ada_linear", "linear", "temb_act", out_features="3 * d"),      # AdaLayerNormZeroSingle
        op("mod", "split", "ada_linear", axis=-1, chunks=3),                # shift, scale, gate
        op("norm", "layer_norm", "h", affine=False), block("modulated", "Modulate", ["norm", "mod.0", "mod.1"]),
        op("proj_mlp", "linear", "modulated", out_features="4 * d"), op("act_mlp", "gelu_tanh", "proj_mlp"),
        op("q", "linear", "modulated", out_features="d"), op("k", "linear", "modulated", out_features="d"),
        op("v", "linear", "modulated", out_features="d"),
        block("norm_q", "HeadRMSNorm", "q", {"heads": "heads"}),
        block("norm_k", "HeadRMSNorm", "k", {"heads": "heads"}),
        op("q_rope", "rope", "norm_q"), op("k_rope", "rope", "norm_k"),
        op("attn", "attention", ["q_rope", "k_rope", "v"], heads="heads", role="joint"),
        op("attn_mlp", "concat", ["attn", "act_mlp"], axis=-1), op("proj_out", "linear", "attn_mlp", out_features="d"),
        op("gated", "mul", ["proj_out", "mod.2"]), op("res", "add", ["h", "gated"]),
        op("split", "split", "res", axis=1, sizes=["dim(ctx, 1)", "dim(x, 1)"]),
        op("x_out", "identity", "split.1"), op("ctx_out", "identity", "split.0")]}
    return {"Modulate": MODULATE, "AdaLNZero": ADALN_ZERO, "GatedFF": GATED_FF, "HeadRMSNorm": HEAD_RMS_NORM,
            "DoubleBlock": double, "SingleBlock": single}


@network("FluxTransformer2DModel")
def flux(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    """Flux: double-stream blocks, then single-stream blocks over [text; image], RoPE over 3 id axes; the pipeline
    packs 2 x 2 latent patches into tokens (FluxPipeline._pack_latents), so patch_size is 1 here."""
    config.expect("patch_size", (1,))
    d, heads = width(config)
    cin = config.int("in_channels")
    cout = config.int("out_channels", cin)
    check_rope_axes(config, "axes_dims_rope", d // heads)
    ops = [op("x_embedder", "linear", sample, out_features=d)] + embed_mlp("t", "timestep", d)
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}}
    temb = "t_emb"
    if config.get("guidance_embeds", False):   # FLUX.1-dev: the guidance scale embedded like the timestep
        inputs["guidance"] = {"shape": ["B"], "dtype": "fp32"}
        ops += embed_mlp("g", "guidance", d) + [op("tg_emb", "add", ["t_emb", "g_emb"])]
        temb = "tg_emb"
    joint = config.int("joint_attention_dim")
    inputs |= {"pooled": {"shape": ["B", config.int("pooled_projection_dim")]},
               "context": {"shape": ["B", "text_tokens", joint]},
               "positions": {"shape": ["text_tokens + T"], "dtype": "fp32"}}   # txt_ids + img_ids for RoPE
    ops += embed_mlp("pooled", "pooled", d, sinusoidal=False) + [
        op("temb_flat", "add", [temb, "pooled_emb"]), op("temb", "reshape", "temb_flat", shape=["d0", 1, "d1"]),
        op("context_embedder", "linear", "context", out_features=d),
        # FluxPosEmbed: cos and sin of head_dim rotary frequencies per token; the rotation is each block's `rope`
        op("rotary", "sinusoidal_embedding", "positions", dim=2 * (d // heads))]
    args = {"d": d, "heads": heads}
    x, ctx = "x_embedder", "context_embedder"
    double, single = config.int("num_layers", minimum=0), config.int("num_single_layers", minimum=0)
    if double:
        ops.append(block("double_blocks", "DoubleBlock", [x, ctx, "temb"], args, repeat=double))
        x, ctx = "double_blocks.x", "double_blocks.ctx"
    last = x
    if single:
        ops.append(block("single_blocks", "SingleBlock", [x, ctx, "temb"], args, repeat=single))
        last = "single_blocks.x"
    ops += norm_out(last, d) + [op("velocity", "linear", "out_modulate", out_features=cout)]
    g = 2 * f   # 2 x 2 packing of the VAE latent
    size = 1024  # FluxPipeline default: default_sample_size 128 x vae_scale_factor 8
    facts = {"role": "denoiser", "channels": cin, "sample_size": size // f, "context_dim": joint, "packed": True,
             "bind": {"T": f"(height / {g}) * (width / {g})"}, "main_input": {sample: {"shape": ["B", "T", cin]}},
             "params": {"height": {"default": size, "min": 1, "help": "output height in pixels"},
                        "width": {"default": size, "min": 1, "help": "output width in pixels"},
                        # FluxPipeline max_sequence_length=512 (T5 tokens)
                        "text_tokens": {"default": 512, "min": 1, "help": "text encoder sequence length in tokens"}}}
    return Part(flux_blocks(), inputs, ops, "velocity", facts)


# ----------------------------------------------------------------------------------------------- HunyuanVideo

# HunyuanVideoPipeline.__call__ defaults (720 x 1280, 129 frames, max_sequence_length 256);
# AutoencoderKLHunyuanVideo: 4x time, 8x space
HUNYUAN_DEFAULTS = {"height": 720, "width": 1280, "frames": 129, "text_tokens": 256, "temporal": 4}


def hunyuan_blocks() -> dict:
    """HunyuanVideoTransformerBlock (dual stream: per-stream adaLN-Zero, projections, q/k RMS norms and FFs; RoPE on
    the video queries and keys; one attention over [video; text]), HunyuanVideoSingleTransformerBlock and the token
    refiner's IndividualTokenRefinerBlock (self-attention on the text, gates from the refiner's own embedding)."""
    dual = dual_stream_modulation()
    dual += [op(n, "linear", "mod1", out_features="d") for n in ("q", "k", "v")]
    dual += [block(f"norm_{n}", "HeadRMSNorm", n, {"heads": "heads"}) for n in ("q", "k")]
    dual += [op("q_rope", "rope", "norm_q"), op("k_rope", "rope", "norm_k")]
    dual += [op(f"add_{n}", "linear", "cmod1", out_features="d") for n in ("q", "k", "v")]
    dual += [block(f"norm_added_{n}", "HeadRMSNorm", f"add_{n}", {"heads": "heads"}) for n in ("q", "k")]
    dual += [op("joint_q", "concat", ["q_rope", "norm_added_q"], axis=1),
             op("joint_k", "concat", ["k_rope", "norm_added_k"], axis=1),
             op("joint_v", "concat", ["v", "add_v"], axis=1),
             op("attn", "attention", ["joint_q", "joint_k", "joint_v"], heads="heads", role="full3d"),
             op("attn_split", "split", "attn", axis=1, sizes=["dim(x, 1)", "dim(ctx, 1)"]),
             op("to_out", "linear", "attn_split.0", out_features="d"),
             op("to_add_out", "linear", "attn_split.1", out_features="d"),
             op("gated_attn", "mul", ["to_out", "mod.gate_msa"]), op("res1", "add", ["x", "gated_attn"]),
             block("x_out", "GatedFF", ["res1", "mod.shift_mlp", "mod.scale_mlp", "mod.gate_mlp"], {"d": "d"}),
             op("cgated_attn", "mul", ["to_add_out", "cmod.gate_msa"]), op("cres1", "add", ["ctx", "cgated_attn"]),
             block("ctx_out", "GatedFF", ["cres1", "cmod.shift_mlp", "cmod.scale_mlp", "cmod.gate_mlp"], {"d": "d"})]
    single = [op("h", "concat", ["x", "ctx"], axis=1), op("temb_act", "silu", "temb"),
              op("ada_linear", "linear", "temb_act", out_features="3 * d"),   # AdaLayerNormZeroSingle
              op("mod", "split", "ada_linear", axis=-1, chunks=3),             # shift, scale, gate
              op("norm", "layer_norm", "h", affine=False), block("modulated", "Modulate", ["norm", "mod.0", "mod.1"]),
              op("proj_mlp", "linear", "modulated", out_features="4 * d"), op("act_mlp", "gelu_tanh", "proj_mlp")]
    single += [op(n, "linear", "modulated", out_features="d") for n in ("q", "k", "v")]
    single += [block(f"norm_{n}", "HeadRMSNorm", n, {"heads": "heads"}) for n in ("q", "k")]
    single += [op("q_rope", "rope", "norm_q"), op("k_rope", "rope", "norm_k"),
               op("attn", "attention", ["q_rope", "k_rope", "v"], heads="heads", role="full3d"),
               op("attn_mlp", "concat", ["attn", "act_mlp"], axis=-1),
               op("proj_out", "linear", "attn_mlp", out_features="d"), op("gated", "mul", ["proj_out", "mod.2"]),
               op("res", "add", ["h", "gated"]),
               op("split", "split", "res", axis=1, sizes=["dim(x, 1)", "dim(ctx, 1)"]),
               op("x_out", "identity", "split.0"), op("ctx_out", "identity", "split.1")]
    refiner = [op("norm1", "layer_norm", "x")]
    refiner += [op(n, "linear", "norm1", out_features="d") for n in ("q", "k", "v")]
    refiner += [op("attn", "attention", ["q", "k", "v"], heads="heads", role="self"),
                op("o", "linear", "attn", out_features="d"), op("temb_act", "silu", "temb"),
                op("gates_linear", "linear", "temb_act", out_features="2 * d"),
                op("gates", "split", "gates_linear", axis=-1, chunks=2),
                op("gated_attn", "mul", ["o", "gates.0"]), op("res1", "add", ["x", "gated_attn"]),
                op("norm2", "layer_norm", "res1"),
                op("ff_in", "linear", "norm2", out_features="4 * d"),   # FeedForward "linear-silu"
                op("ff_act", "silu", "ff_in"), op("ff_out", "linear", "ff_act", out_features="d"),
                op("gated_ff", "mul", ["ff_out", "gates.1"]), op("out", "add", ["res1", "gated_ff"])]
    args = {"d": None, "heads": None}
    return {"Modulate": MODULATE, "HeadRMSNorm": HEAD_RMS_NORM, "AdaLNZero": ADALN_ZERO, "GatedFF": GATED_FF,
            "RefinerBlock": {"args": args, "inputs": ["x", "temb"], "outputs": ["out"], "ops": refiner},
            "DualStreamBlock": {"args": args, "inputs": ["x", "ctx", "temb"],
                                "outputs": {"x": "x_out", "ctx": "ctx_out"}, "ops": dual},
            "SingleStreamBlock": {"args": args, "inputs": ["x", "ctx", "temb"],
                                  "outputs": {"x": "x_out", "ctx": "ctx_out"}, "ops": single}}


@network("HunyuanVideoTransformer3DModel")
def hunyuan(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR, t: int | None = None) -> Part:
    for key, allowed, default in (("qk_norm", ("rms_norm",), "rms_norm"), ("mlp_ratio", (4, 4.0), 4.0),
                                  ("image_condition_type", (None,), None), ("patch_size_t", (1,), 1)):
        config.expect(key, allowed, default)
    d, heads = width(config)
    p, cin = config.int("patch_size"), config.int("in_channels")
    cout = config.int("out_channels", cin)
    check_rope_axes(config, "rope_axes_dim", d // heads)
    text = config.int("text_embed_dim")
    g = f * p
    ops = [op("x_embedder", "conv3d", sample, out_channels=d, kernel=[1, p, p], stride=[1, p, p]),
           op("x_flat", "reshape", "x_embedder", shape=["d0", "d1", "d2 * d3 * d4"]),
           op("x_tokens", "transpose", "x_flat", perm=[0, 2, 1])] + embed_mlp("t", "timestep", d)
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}}
    temb = "t_emb"
    if config.get("guidance_embeds", True):   # the guidance scale embedded like the timestep
        inputs["guidance"] = {"shape": ["B"], "dtype": "fp32"}
        ops += embed_mlp("g", "guidance", d) + [op("tg_emb", "add", ["t_emb", "g_emb"])]
        temb = "tg_emb"
    inputs |= {"context": {"shape": ["B", "text_tokens", text]},
               "pooled": {"shape": ["B", config.int("pooled_projection_dim")]},
               "positions": {"shape": ["N"], "dtype": "fp32"}}   # (t, h, w) index of every video token for RoPE
    ops += embed_mlp("pooled", "pooled", d, sinusoidal=False) + [
        op("temb_flat", "add", [temb, "pooled_emb"]), op("temb", "reshape", "temb_flat", shape=["d0", 1, "d1"]),
        # HunyuanVideoTokenRefiner: mean of the text -> its own timestep + text MLPs; proj_in; refiner blocks
        op("text_mean", "reduce", "context", axis=1),
        op("r_t_linear_1", "linear", "t_proj", out_features=d), op("r_t_act", "silu", "r_t_linear_1"),
        op("r_t_emb", "linear", "r_t_act", out_features=d)] + embed_mlp("r_text", "text_mean", d, sinusoidal=False) + [
        op("r_temb_flat", "add", ["r_t_emb", "r_text_emb"]), op("r_temb", "reshape", "r_temb_flat",
                                                                  shape=["d0", 1, "d1"]),
        op("proj_in", "linear", "context", out_features=d)]
    args = {"d": d, "heads": heads}
    ctx = "proj_in"
    refiners = config.int("num_refiner_layers", 2, minimum=0)
    if refiners:
        ops.append(block("refiner", "RefinerBlock", ["proj_in", "r_temb"], args, repeat=refiners))
        ctx = "refiner"
    ops.append(op("rotary", "sinusoidal_embedding", "positions", dim=2 * (d // heads)))
    x = "x_tokens"
    dual, single = config.int("num_layers", minimum=0), config.int("num_single_layers", minimum=0)
    if dual:
        ops.append(block("dual_blocks", "DualStreamBlock", [x, ctx, "temb"], args, repeat=dual))
        x, ctx = "dual_blocks.x", "dual_blocks.ctx"
    if single:
        ops.append(block("single_blocks", "SingleStreamBlock", [x, ctx, "temb"], args, repeat=single))
        x = "single_blocks.x"
    ops += norm_out(x, d)
    ops += [op("proj_out", "linear", "out_modulate", out_features=p * p * cout),
            op("patches", "reshape", "proj_out", shape=["d0", "T", f"height / {g}", f"width / {g}", cout, 1, p, p]),
            op("patches_perm", "transpose", "patches", perm=[0, 4, 1, 5, 2, 6, 3, 7]),
            op("velocity", "reshape", "patches_perm", shape=["d0", cout, "T", f"height / {f}", f"width / {f}"])]
    t = t or HUNYUAN_DEFAULTS["temporal"]   # the VAE's, where a pipeline gives it
    facts = {"role": "denoiser", "family": "ttv", "channels": cin, "context_dim": text,
             "bind": {"T": f"(frames - 1) / {t} + 1",
                      "N": f"((frames - 1) / {t} + 1) * (height / {g}) * (width / {g})"},
             "main_input": {sample: {"shape": ["B", cin, "T", f"height / {f}", f"width / {f}"]}},
             "params": {"height": {"default": HUNYUAN_DEFAULTS["height"], "min": g, "help": "output height in pixels"},
                        "width": {"default": HUNYUAN_DEFAULTS["width"], "min": g, "help": "output width in pixels"},
                        "frames": {"default": HUNYUAN_DEFAULTS["frames"], "min": 1, "help": "video frames generated"},
                        "text_tokens": {"default": HUNYUAN_DEFAULTS["text_tokens"], "min": 1,
                                        "help": "prompt tokens the transformer attends to"}}}
    return Part(hunyuan_blocks(), inputs, ops, "velocity", facts)


# ------------------------------------------------------------------------------------------------- Qwen-Image

# QwenImagePipeline: 1328 x 1328 (the model card's 1:1 aspect ratio); the prompt's tokens after the chat template's
# prefix, a typical prompt of the model card's length (no padding to a fixed length), as models/qwen-image.yaml
QWEN_DEFAULTS = {"size": 1328, "text_tokens": 128}


def qwen_block() -> dict:
    """QwenImageTransformerBlock: per-stream modulation (SiLU + Linear d -> 6 d), LayerNorm, q/k/v with bias,
    per-head RMSNorm of q and k, RoPE on both streams, one attention over [text; image], gated residuals and FFs."""
    ops = [op("temb_act", "silu", "temb"), op("img_mod", "linear", "temb_act", out_features="6 * d"),
           op("mod", "split", "img_mod", axis=-1, chunks=6), op("txt_mod", "linear", "temb_act", out_features="6 * d"),
           op("cmod", "split", "txt_mod", axis=-1, chunks=6),
           op("norm1", "layer_norm", "x", affine=False), block("mod1", "Modulate", ["norm1", "mod.0", "mod.1"]),
           op("cnorm1", "layer_norm", "ctx", affine=False), block("cmod1", "Modulate", ["cnorm1", "cmod.0", "cmod.1"])]
    ops += [op(n, "linear", "mod1", out_features="d") for n in ("q", "k", "v")]
    ops += [op(f"add_{n}", "linear", "cmod1", out_features="d") for n in ("q", "k", "v")]
    ops += [block(f"norm_{n}", "HeadRMSNorm", n, {"heads": "heads"}) for n in ("q", "k")]
    ops += [block(f"norm_added_{n}", "HeadRMSNorm", f"add_{n}", {"heads": "heads"}) for n in ("q", "k")]
    ops += rope_joint_attention(("2", "3", "4", "5"))
    return {"args": {"d": None, "heads": None}, "inputs": ["x", "ctx", "temb"],
            "outputs": {"x": "x_out", "ctx": "ctx_out"}, "ops": ops}


@network("QwenImageTransformer2DModel")
def qwen_image(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    """Qwen-Image MMDiT on 2 x 2-packed latents (QwenImagePipeline._pack_latents), so patch_size 2 is the packing."""
    config.expect("guidance_embeds", (False,), False)
    config.expect("patch_size", (2,), 2)
    d, heads = width(config)
    cin = config.int("in_channels")
    cout = config.int("out_channels", cin)
    check_rope_axes(config, "axes_dims_rope", d // heads)
    joint = config.int("joint_attention_dim")
    ops = [op("img_in", "linear", sample, out_features=d), op("txt_norm", "rms_norm", "context"),
           op("txt_in", "linear", "txt_norm", out_features=d)] + embed_mlp("t", "timestep", d) + [
           op("temb", "reshape", "t_emb", shape=["d0", 1, "d1"]),
           # QwenEmbedRope: cos/sin of head_dim / 2 rotary frequencies per token over the 3 position axes
           op("rotary", "sinusoidal_embedding", "positions", dim=d // heads),
           block("blocks", "DualStreamBlock", ["img_in", "txt_in", "temb"], {"d": d, "heads": heads},
                 repeat=config.int("num_layers")),
           *norm_out("blocks", d),
           # proj_out to patch x patch x out_channels = the packed channels
           op("velocity", "linear", "out_modulate", out_features=4 * cout)]
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}, "context": {"shape": ["B", "text_tokens", joint]},
              "positions": {"shape": ["text_tokens + T"], "dtype": "fp32"}}
    g = 2 * f
    size = QWEN_DEFAULTS["size"]
    facts = {"role": "denoiser", "channels": cin, "sample_size": size // f, "context_dim": joint, "packed": True,
             "bind": {"T": f"(height / {g}) * (width / {g})"}, "main_input": {sample: {"shape": ["B", "T", cin]}},
             "params": {"height": {"default": size, "min": g, "help": "output height in pixels"},
                        "width": {"default": size, "min": g, "help": "output width in pixels"},
                        "text_tokens": {"default": QWEN_DEFAULTS["text_tokens"], "min": 1,
                                        "help": "prompt tokens the transformer attends to"}}}
    blocks = {"Modulate": MODULATE, "HeadRMSNorm": HEAD_RMS_NORM, "GatedFF": GATED_FF, "DualStreamBlock": qwen_block()}
    return Part(blocks, inputs, ops, "velocity", facts)
