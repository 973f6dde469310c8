"""diffusers UNet2DConditionModel (SD 1.x / 2.x / XL) and AutoencoderKL decoders, as in models/sd15.yaml,
sd21.yaml and sdxl.yaml: module order of diffusers' UNet2DConditionModel.forward, ResnetBlock2D,
Transformer2DModel, BasicTransformerBlock (GEGLU feed-forward) and the VAE's Decoder."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op

# diffusers' pipelines take the VAE's spatial factor from the VAE (2 ** (levels - 1)); a UNet imported on its own
# assumes the SD VAE's four levels, 8 (StableDiffusionPipeline.vae_scale_factor).
DEFAULT_VAE_FACTOR = 8


def res_block(groups: int) -> dict:
    """ResnetBlock2D with its time-embedding projection; 1x1 shortcut only where the channel count changes."""
    return {"args": {"cout": None}, "inputs": ["x", "temb"], "outputs": ["out"], "ops": [
        op("norm1", "group_norm", "x", groups=groups), op("act1", "silu", "norm1"),
        op("conv1", "conv2d", "act1", out_channels="cout", kernel=3, padding=1),
        op("temb_act", "silu", "temb"), op("temb_proj", "linear", "temb_act", out_features="cout"),
        op("temb_4d", "reshape", "temb_proj", shape=["d0", "d1", 1, 1]),
        op("add_temb", "add", ["conv1", "temb_4d"]),
        op("norm2", "group_norm", "add_temb", groups=groups), op("act2", "silu", "norm2"),
        op("conv2", "conv2d", "act2", out_channels="cout", kernel=3, padding=1),
        op("shortcut", "conv2d", "x", out_channels="cout", kernel=1, when="dim(x, 1) != cout"),
        op("out", "add", ["shortcut", "conv2"])]}


def spatial_transformer(groups: int, linear_projection: bool) -> dict:
    """Transformer2DModel: GroupNorm, proj_in (1x1 conv, or Linear with use_linear_projection), `depth`
    BasicTransformerBlocks, proj_out, residual."""
    if linear_projection:
        ops = [op("norm", "group_norm", "x", groups=groups),
               op("to_tokens", "transpose", "norm", perm=[0, 2, 3, 1]),
               op("tokens", "reshape", "to_tokens", shape=["d0", "d1 * d2", "d3"]),
               op("proj_in", "linear", "tokens", out_features="dim(x, 1)"),
               block("blocks", "TransformerBlock", ["proj_in", "context"], {"heads": "heads"}, repeat="depth"),
               op("proj_out", "linear", "blocks", out_features="dim(x, 1)"),
               op("to_map", "reshape", "proj_out", shape=["d0", "dim(x, 2)", "dim(x, 3)", "d2"]),
               op("channels_first", "transpose", "to_map", perm=[0, 3, 1, 2]),
               op("out", "add", ["channels_first", "x"])]
    else:
        ops = [op("norm", "group_norm", "x", groups=groups),
               op("proj_in", "conv2d", "norm", out_channels="dim(x, 1)", kernel=1),
               op("to_tokens", "transpose", "proj_in", perm=[0, 2, 3, 1]),
               op("tokens", "reshape", "to_tokens", shape=["d0", "d1 * d2", "d3"]),
               block("blocks", "TransformerBlock", ["tokens", "context"], {"heads": "heads"}, repeat="depth"),
               op("to_map", "reshape", "blocks", shape=["d0", "dim(x, 2)", "dim(x, 3)", "d2"]),
               op("channels_first", "transpose", "to_map", perm=[0, 3, 1, 2]),
               op("proj_out", "conv2d", "channels_first", out_channels="dim(x, 1)", kernel=1),
               op("out", "add", ["proj_out", "x"])]
    return {"args": {"heads": None, "depth": None}, "inputs": ["x", "context"], "outputs": ["out"], "ops": ops}


# BasicTransformerBlock: self-attention, cross-attention to the text, GEGLU feed-forward (inner width 4 d, so the
# GEGLU projection is 8 d: diffusers FeedForward mult=4). q/k/v without bias, output with bias (Attention defaults).
TRANSFORMER_BLOCK = {"args": {"heads": None, "d": "dim(x, 2)"}, "inputs": ["x", "context"], "outputs": ["out"],
                     "ops": [
    op("ln1", "layer_norm", "x"),
    op("q1", "linear", "ln1", out_features="d", bias=False), op("k1", "linear", "ln1", out_features="d", bias=False),
    op("v1", "linear", "ln1", out_features="d", bias=False),
    op("self_attn", "attention", ["q1", "k1", "v1"], heads="heads", role="self"),
    op("o1", "linear", "self_attn", out_features="d"), op("res1", "add", ["x", "o1"]),
    op("ln2", "layer_norm", "res1"),
    op("q2", "linear", "ln2", out_features="d", bias=False),
    op("k2", "linear", "context", out_features="d", bias=False),
    op("v2", "linear", "context", out_features="d", bias=False),
    op("cross_attn", "attention", ["q2", "k2", "v2"], heads="heads", role="cross"),
    op("o2", "linear", "cross_attn", out_features="d"), op("res2", "add", ["res1", "o2"]),
    op("ln3", "layer_norm", "res2"), op("geglu_proj", "linear", "ln3", out_features="8 * d"),
    op("geglu_split", "split", "geglu_proj", axis=-1, chunks=2), op("gate", "gelu", "geglu_split.1"),
    op("geglu", "mul", ["geglu_split.0", "gate"]), op("ff_out", "linear", "geglu", out_features="d"),
    op("out", "add", ["res2", "ff_out"])]}

UNET_BLOCKS = {
    "ResAttn": {"args": {"cout": None, "heads": None, "depth": None}, "inputs": ["x", "temb", "context"],
                "outputs": ["out"], "ops": [
        block("res", "ResBlock", ["x", "temb"], {"cout": "cout"}),
        block("attn", "SpatialTransformer", ["res", "context"], {"heads": "heads", "depth": "depth"}),
        op("out", "identity", "attn")]},
    # up-path layers concatenate the skip connection on channels first (torch.cat([h, skip], dim=1))
    "CatRes": {"args": {"cout": None}, "inputs": ["x", "skip", "temb"], "outputs": ["out"], "ops": [
        op("cat", "concat", ["x", "skip"], axis=1), block("out", "ResBlock", ["cat", "temb"], {"cout": "cout"})]},
    "CatResAttn": {"args": {"cout": None, "heads": None, "depth": None}, "inputs": ["x", "skip", "temb", "context"],
                   "outputs": ["out"], "ops": [
        op("cat", "concat", ["x", "skip"], axis=1), block("res", "ResBlock", ["cat", "temb"], {"cout": "cout"}),
        block("out", "SpatialTransformer", ["res", "context"], {"heads": "heads", "depth": "depth"})]},
    "Downsample": {"inputs": ["x"], "outputs": ["out"], "ops": [  # Downsample2D: 3x3, stride 2, padding 1
        op("out", "conv2d", "x", out_channels="dim(x, 1)", kernel=3, stride=2, padding=1)]},
    "Upsample": {"inputs": ["x"], "outputs": ["out"], "ops": [    # Upsample2D: nearest x2, then 3x3
        op("up", "upsample", "x", scale=2),
        op("out", "conv2d", "up", out_channels="dim(x, 1)", kernel=3, padding=1)]},
}

# what the importer's blocks model; anything else in these keys changes the network and is refused
UNET_FIXED = {"act_fn": ("silu",), "class_embed_type": (None,), "num_class_embeds": (None,),
              "time_embedding_type": ("positional",), "resnet_time_scale_shift": ("default",),
              "only_cross_attention": (False,), "dual_cross_attention": (False,), "encoder_hid_dim_type": (None,),
              "addition_embed_type": (None, "text_time"), "conv_in_kernel": (3,), "conv_out_kernel": (3,),
              "mid_block_type": ("UNetMidBlock2DCrossAttn",), "time_cond_proj_dim": (None,),
              "attention_type": ("default",), "time_embedding_dim": (None,), "class_embeddings_concat": (False,),
              "reverse_transformer_layers_per_block": (None,), "mid_block_only_cross_attention": (None, False)}
DEFAULTS = {"mid_block_type": "UNetMidBlock2DCrossAttn", "act_fn": "silu", "time_embedding_type": "positional",
            "resnet_time_scale_shift": "default", "only_cross_attention": False, "dual_cross_attention": False,
            "conv_in_kernel": 3, "conv_out_kernel": 3, "attention_type": "default", "class_embeddings_concat": False}


def groups_of(config: Config, channels: list) -> int:
    groups = config.int("norm_num_groups", 32)
    for c in channels:
        if c % groups:
            raise config.error("norm_num_groups", f"{groups} groups do not divide {c} channels "
                                                  "(block_out_channels)")
    return groups


@network("UNet2DConditionModel")
def unet2d(config: Config, sample: str = "latent", h: str = f"height / {DEFAULT_VAE_FACTOR}",
           w: str = f"width / {DEFAULT_VAE_FACTOR}") -> Part:
    for key, allowed in UNET_FIXED.items():
        config.expect(key, allowed, DEFAULTS.get(key))
    ch = config.ints("block_out_channels")
    n = len(ch)
    down, up = config.strs("down_block_types", n), config.strs("up_block_types", n)
    for key, types, known in (("down_block_types", down, ("CrossAttnDownBlock2D", "DownBlock2D")),
                              ("up_block_types", up, ("CrossAttnUpBlock2D", "UpBlock2D"))):
        for t in types:
            if t not in known:
                raise config.error(key, f"block type {t!r} is not supported (supported: {', '.join(known)})")
    layers = config.ints("layers_per_block", n)
    depth = config.ints("transformer_layers_per_block", n, default=1)
    # diffusers reads attention_head_dim as the number of heads when num_attention_heads is not given
    heads_key = "num_attention_heads" if config.has("num_attention_heads") else "attention_head_dim"
    heads = config.ints(heads_key, n)
    for c, k in zip(ch, heads):
        if c % k:
            raise config.error(heads_key, f"{k} heads do not divide {c} channels (block_out_channels): "
                                          "heads x head dim must equal the width")
    context = config.int("cross_attention_dim")
    groups = groups_of(config, ch)
    temb_dim = 4 * ch[0]  # TimestepEmbedding(block_out_channels[0], 4 * block_out_channels[0])

    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}, "context": {"shape": ["B", "text_tokens", context]}}
    ops = [op("time_proj", "sinusoidal_embedding", "timestep", dim=ch[0]),
           op("time_linear_1", "linear", "time_proj", out_features=temb_dim), op("time_act", "silu", "time_linear_1")]
    facts = {"role": "denoiser", "context_dim": context, "channels": config.int("in_channels"),
             "out_channels": config.int("out_channels"), "sample_size": config.int("sample_size", 64)}
    if config.get("addition_embed_type") == "text_time":
        # SDXL: sinusoidal(addition_time_embed_dim) of the 6 size/crop ids, concatenated with the pooled text
        # embedding, TimestepEmbedding to temb_dim, added to the time embedding
        time_dim = config.int("addition_time_embed_dim")
        text_dim = config.int("projection_class_embeddings_input_dim") - 6 * time_dim
        if text_dim < 1:
            raise config.error("projection_class_embeddings_input_dim", "must exceed 6 x addition_time_embed_dim "
                               "(the pooled text embedding and six size/crop ids)")
        facts["text_embeds_dim"] = text_dim
        inputs |= {"text_embeds": {"shape": ["B", text_dim]}, "time_ids": {"shape": ["B", 6], "dtype": "fp32"}}
        ops += [op("time_emb", "linear", "time_act", out_features=temb_dim),
                op("add_time_proj", "sinusoidal_embedding", "time_ids", dim=time_dim),
                op("add_time_flat", "reshape", "add_time_proj", shape=["d0", "d1 * d2"]),
                op("add_embeds", "concat", ["text_embeds", "add_time_flat"], axis=1),
                op("add_linear_1", "linear", "add_embeds", out_features=temb_dim),
                op("add_act", "silu", "add_linear_1"), op("add_emb", "linear", "add_act", out_features=temb_dim),
                op("temb", "add", ["time_emb", "add_emb"])]
    else:
        ops.append(op("temb", "linear", "time_act", out_features=temb_dim))
    ops.append(op("conv_in", "conv2d", sample, out_channels=ch[0], kernel=3, padding=1))

    def layer(name, cout, attn, i, prev, skip=None):
        args = {"cout": cout, "heads": heads[i], "depth": depth[i]} if attn else {"cout": cout}
        ins = [prev] + ([skip] if skip else []) + ["temb"] + (["context"] if attn else [])
        kind = ("CatResAttn" if attn else "CatRes") if skip else ("ResAttn" if attn else "ResBlock")
        return block(name, kind, ins, args)

    skips, prev = ["conv_in"], "conv_in"   # skip connections saved after every layer and downsampler
    for i in range(n):
        for j in range(layers[i]):
            ops.append(layer(f"down{i}_{j}", ch[i], down[i] == "CrossAttnDownBlock2D", i, prev))
            skips.append(prev := f"down{i}_{j}")
        if i < n - 1:
            ops.append(block(f"down{i}_ds", "Downsample", prev))
            skips.append(prev := f"down{i}_ds")
    ops += [layer("mid_0", ch[-1], True, n - 1, prev), block("mid_1", "ResBlock", ["mid_0", "temb"],
                                                               {"cout": ch[-1]})]
    prev = "mid_1"
    for r in range(n):  # up path: reversed levels, layers_per_block + 1 layers each, last saved skip first
        i = n - 1 - r
        for j in range(layers[i] + 1):
            ops.append(layer(f"up{r}_{j}", ch[i], up[r] == "CrossAttnUpBlock2D", i, prev, skips.pop()))
            prev = f"up{r}_{j}"
        if r < n - 1:
            ops.append(block(f"up{r}_us", "Upsample", prev))
            prev = f"up{r}_us"
    ops += [op("norm_out", "group_norm", prev, groups=groups), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv2d", "act_out", out_channels=facts["out_channels"], kernel=3, padding=1)]

    size = facts["sample_size"] * DEFAULT_VAE_FACTOR
    facts["main_input"] = {sample: {"shape": ["B", facts["channels"], h, w]}}
    facts["params"] = {
        "height": {"default": size, "min": 1, "help": "output height in pixels (the latent is 1/8 of it)"},
        "width": {"default": size, "min": 1, "help": "output width in pixels (the latent is 1/8 of it)"},
        "text_tokens": {"default": 77, "min": 1, "help": "text encoder sequence length in tokens"}}
    blocks = {"ResBlock": res_block(groups), "SpatialTransformer": spatial_transformer(
        groups, bool(config.get("use_linear_projection", False))), "TransformerBlock": TRANSFORMER_BLOCK}
    return Part(blocks | UNET_BLOCKS, inputs, ops, "conv_out", facts)


# ------------------------------------------------------------------------------------------------ VAE decoder

TILE_OVERLAP = 0.25   # diffusers AutoencoderKL.tile_overlap_factor


def vae_res_ops(groups: int, conv: str = "conv2d", shortcut: str = "dim(x, 1) != cout") -> list:
    """A VAE ResnetBlock (no time embedding): GroupNorm, SiLU, 3x3 `conv`, twice, and a 1x1 shortcut `when`
    `shortcut` holds (diffusers' ResnetBlock2D and its 3-D variants in the video VAEs)."""
    return [op("norm1", "group_norm", "x", groups=groups), op("act1", "silu", "norm1"),
            op("conv1", conv, "act1", out_channels="cout", kernel=3, padding=1),
            op("norm2", "group_norm", "conv1", groups=groups), op("act2", "silu", "norm2"),
            op("conv2", conv, "act2", out_channels="cout", kernel=3, padding=1),
            op("shortcut", conv, "x", out_channels="cout", kernel=1, when=shortcut),
            op("out", "add", ["shortcut", "conv2"])]


def vae_blocks(groups: int) -> dict:
    return {
        "VaeResBlock": {"args": {"cout": None}, "inputs": ["x"], "outputs": ["out"], "ops": vae_res_ops(groups)},
        # mid-block attention: one head over all pixels (attention_head_dim = the width), q/k/v/out with bias
        "VaeAttention": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("norm", "group_norm", "x", groups=groups),
            op("flat", "reshape", "norm", shape=["d0", "d1", "d2 * d3"]),
            op("tokens", "transpose", "flat", perm=[0, 2, 1]),
            op("q", "linear", "tokens", out_features="dim(x, 1)"),
            op("k", "linear", "tokens", out_features="dim(x, 1)"),
            op("v", "linear", "tokens", out_features="dim(x, 1)"),
            op("attn", "attention", ["q", "k", "v"], heads=1),
            op("o", "linear", "attn", out_features="dim(x, 1)"),
            op("channels_first", "transpose", "o", perm=[0, 2, 1]),
            op("map", "reshape", "channels_first", shape=["d0", "d1", "dim(x, 2)", "dim(x, 3)"]),
            op("out", "add", ["map", "x"])]},
        # UpDecoderBlock2D: layers_per_block + 1 ResBlocks, then an optional Upsample
        "VaeUpBlock": {"args": {"cout": None, "layers": None, "upsample": 1}, "inputs": ["x"], "outputs": ["out"],
                       "ops": [
            block("res0", "VaeResBlock", "x", {"cout": "cout"}),
            block("res1", "VaeResBlock", "res0", {"cout": "cout"}, repeat="layers"),
            block("out", "Upsample", "res1", when="upsample")]},
        "Upsample": UNET_BLOCKS["Upsample"],
    }


@network("AutoencoderKL")
def vae_decoder(config: Config, sample: str = "latents", h: str | None = None, w: str | None = None) -> Part:
    """AutoencoderKL.decode: unscale, post_quant_conv, the Decoder (the encoder is not run by text-to-X)."""
    for key, allowed in (("act_fn", ("silu",)), ("mid_block_add_attention", (True,)), ("latents_mean", (None,))):
        config.expect(key, allowed, {"act_fn": "silu", "mid_block_add_attention": True}.get(key))
    ch = config.ints("block_out_channels")
    n = len(ch)
    types = config.strs("up_block_types", n)
    if any(t != "UpDecoderBlock2D" for t in types):
        raise config.error("up_block_types", "only UpDecoderBlock2D is supported")
    layers = config.int("layers_per_block")
    groups = groups_of(config, ch)
    latent = config.int("latent_channels")
    factor = 2 ** (n - 1)
    h, w = h or f"height / {factor}", w or f"width / {factor}"
    ops = [op("unscale", "scale", sample)]  # latents / scaling_factor
    prev = "unscale"
    if config.has("shift_factor"):          # SD3 / Flux VAEs: + shift_factor
        ops.append(op("unshift", "scale", prev))
        prev = "unshift"
    if config.get("use_post_quant_conv", True):
        ops.append(op("post_quant_conv", "conv2d", prev, out_channels=latent, kernel=1))
        prev = "post_quant_conv"
    ops += [op("conv_in", "conv2d", prev, out_channels=ch[-1], kernel=3, padding=1),
            block("mid_res0", "VaeResBlock", "conv_in", {"cout": ch[-1]}),
            block("mid_attn", "VaeAttention", "mid_res0"),
            block("mid_res1", "VaeResBlock", "mid_attn", {"cout": ch[-1]})]
    prev = "mid_res1"
    for r, c in enumerate(reversed(ch)):
        args = {"cout": c, "layers": layers} | ({"upsample": 0} if r == n - 1 else {})
        ops.append(block(f"up{r}", "VaeUpBlock", prev, args))
        prev = f"up{r}"
    ops += [op("norm_out", "group_norm", prev, groups=groups), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv2d", "act_out", out_channels=config.int("out_channels", 3), kernel=3, padding=1)]
    size = config.int("sample_size", 512)
    # enable_vae_tiling: tiles of tile_sample_min_size = sample_size pixels, placed every
    # int(tile_latent_min_size x (1 - tile_overlap_factor 0.25)) latent pixels (diffusers AutoencoderKL.tiled_decode)
    tiling = {"tile": size, "stride": int(size // factor * (1 - TILE_OVERLAP)) * factor}
    facts = {"role": "decoder", "factor": factor, "latent_channels": latent, "tiling": tiling,
             "force_upcast": bool(config.get("force_upcast", True)),
             "main_input": {sample: {"shape": ["B", latent, h, w]}},
             "params": {"height": {"default": size, "min": 1, "help": "output height in pixels"},
                        "width": {"default": size, "min": 1, "help": "output width in pixels"}}}
    return Part(vae_blocks(groups), {}, ops, "conv_out", facts)
