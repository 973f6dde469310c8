"""Class-conditional and text-conditional image DiTs: DiTTransformer2DModel (models/dit-xl-2.yaml) and
PixArtTransformer2DModel (models/pixart-alpha.yaml); the legacy Transformer2DModel class of their hub configs is
either, by its norm_type."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op, parameter
from .unet import DEFAULT_VAE_FACTOR

# x * (1 + scale) + shift with [B, 1, C] scale/shift broadcast over the tokens
MODULATE = {"inputs": ["x", "shift", "scale"], "outputs": ["out"], "ops": [
    op("one_plus_scale", "scale", "scale"), op("scaled", "mul", ["x", "one_plus_scale"]),
    op("out", "add", ["scaled", "shift"])]}

# diffusers' Timesteps(num_channels=256) before every TimestepEmbedding of these models
TIMESTEP_CHANNELS = 256
FF_ACTIVATIONS = {"gelu-approximate": "gelu_tanh", "gelu": "gelu"}


def common(config: Config) -> dict:
    """Width, heads, patch and the activation of the feed-forward (inner width 4 d: diffusers FeedForward mult=4)."""
    heads, head_dim = config.int("num_attention_heads"), config.int("attention_head_dim")
    act = config.get("activation_fn", "geglu")
    if act not in FF_ACTIVATIONS:
        raise config.error("activation_fn", f"{act!r} is not supported (supported: {', '.join(FF_ACTIVATIONS)})")
    for key, allowed in (("norm_elementwise_affine", (False,)), ("attention_bias", (True,)),
                         ("upcast_attention", (False, True)), ("num_vector_embeds", (None,))):
        config.expect(key, allowed, {"norm_elementwise_affine": True, "attention_bias": False,
                                     "upcast_attention": False}.get(key))
    if config.has("ff_inner_dim") or config.get("ff_bias", True) is not True:
        raise config.error("ff_inner_dim", "a feed-forward other than 4 x width with bias is not supported")
    return {"heads": heads, "d": heads * head_dim, "patch": config.int("patch_size"),
            "layers": config.int("num_layers"), "act": FF_ACTIVATIONS[act], "cin": config.int("in_channels"),
            "cout": config.int("out_channels", config.int("in_channels")), "size": config.int("sample_size")}


def patchify(c: dict, sample: str, learned_pos: bool) -> list:
    """PatchEmbed: p x p stride-p convolution, flatten to tokens, + the sin-cos position embedding."""
    pos = parameter("pos_embed", [1, "T", c["d"]], **({} if learned_pos else {"learned": False}))
    return [op("x_embedder", "conv2d", sample, out_channels=c["d"], kernel=c["patch"], stride=c["patch"]),
            op("x_flat", "reshape", "x_embedder", shape=["d0", "d1", "d2 * d3"]),
            op("x_tokens", "transpose", "x_flat", perm=[0, 2, 1]), pos, op("x", "add", ["x_tokens", "pos_embed"])]


def unpatchify(c: dict, source: str, f: int, name: str) -> list:
    """[B, h, w, p, p, c] -> einsum nhwpqc->nchpwq -> [B, c, H/f, W/f]."""
    p, cout, g = c["patch"], c["cout"], f * c["patch"]
    return [op("patches", "reshape", source, shape=["d0", f"height / {g}", f"width / {g}", p, p, cout]),
            op("patches_nchpwq", "transpose", "patches", perm=[0, 5, 1, 3, 2, 4]),
            op(name, "reshape", "patches_nchpwq", shape=["d0", cout, f"height / {f}", f"width / {f}"])]


def part(c: dict, blocks: dict, inputs: dict, ops: list, out: str, sample: str, f: int, extra: dict) -> Part:
    g = f * c["patch"]
    facts = {"role": "denoiser", "channels": c["cin"], "out_channels": c["cout"], "sample_size": c["size"],
             "bind": {"T": f"(height / {g}) * (width / {g})"},  # latent patches
             "main_input": {sample: {"shape": ["B", c["cin"], f"height / {f}", f"width / {f}"]}},
             "params": {"height": {"default": c["size"] * f, "min": 1, "help": "output height in pixels"},
                        "width": {"default": c["size"] * f, "min": 1, "help": "output width in pixels"}} | extra}
    return Part(blocks, inputs, ops, out, facts)


@network("DiTTransformer2DModel")
def dit(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    """DiT with adaLN-Zero. diffusers gives every block its own copy of the timestep and class embedders; the
    converted checkpoint holds the original model's shared ones (copied into each block), so, as the built-in
    model, they are counted once and computed once (c = t_emb + y_emb, shared by all blocks)."""
    config.expect("norm_type", ("ada_norm_zero",))
    c = common(config)
    d = c["d"]
    dit_block = {"args": {"d": None, "heads": None}, "inputs": ["x", "c"], "outputs": ["out"], "ops": [
        op("c_act", "silu", "c"), op("ada_ln", "linear", "c_act", out_features="6 * d"),
        op("mod", "split", "ada_ln", axis=-1, chunks=6),   # shift/scale/gate msa, shift/scale/gate mlp
        op("norm1", "layer_norm", "x", affine=False), block("mod1", "Modulate", ["norm1", "mod.0", "mod.1"]),
        op("qkv", "linear", "mod1", out_features="3 * d"), op("qkv_split", "split", "qkv", axis=-1, chunks=3),
        op("attn", "attention", ["qkv_split.0", "qkv_split.1", "qkv_split.2"], heads="heads", role="self"),
        op("proj", "linear", "attn", out_features="d"), op("gated_attn", "mul", ["proj", "mod.2"]),
        op("res1", "add", ["x", "gated_attn"]), op("norm2", "layer_norm", "res1", affine=False),
        block("mod2", "Modulate", ["norm2", "mod.3", "mod.4"]), op("fc1", "linear", "mod2", out_features="4 * d"),
        op("act", c["act"], "fc1"), op("fc2", "linear", "act", out_features="d"),
        op("gated_mlp", "mul", ["fc2", "mod.5"]), op("out", "add", ["res1", "gated_mlp"])]}
    classes = config.int("num_embeds_ada_norm")
    ops = patchify(c, sample, learned_pos=True) + [
        op("t_freq", "sinusoidal_embedding", "timestep", dim=TIMESTEP_CHANNELS),
        op("t_fc1", "linear", "t_freq", out_features=d), op("t_act", "silu", "t_fc1"),
        op("t_emb", "linear", "t_act", out_features=d),
        # LabelEmbedding with class dropout keeps one more row: the null class of classifier-free guidance
        op("y_emb", "embedding", "labels", num_embeddings=classes + 1, dim=d),
        op("c_flat", "add", ["t_emb", "y_emb"]), op("c", "reshape", "c_flat", shape=["d0", 1, "d1"]),
        block("blocks", "DiTBlock", ["x", "c"], {"d": d, "heads": c["heads"]}, repeat=c["layers"]),
        op("final_c_act", "silu", "c"), op("final_ada_ln", "linear", "final_c_act", out_features=2 * d),
        op("final_mod", "split", "final_ada_ln", axis=-1, chunks=2),
        op("norm_final", "layer_norm", "blocks", affine=False),
        block("final_modulate", "Modulate", ["norm_final", "final_mod.0", "final_mod.1"]),
        op("final_linear", "linear", "final_modulate", out_features=c["patch"] ** 2 * c["cout"])]
    ops += unpatchify(c, "final_linear", f, "model_out")
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}, "labels": {"shape": ["B"], "dtype": "int64"}}
    return part(c, {"Modulate": MODULATE, "DiTBlock": dit_block}, inputs, ops, "model_out", sample, f, {})


def timestep_mlp() -> dict:
    """TimestepEmbedding: sinusoidal(256) -> linear -> SiLU -> linear."""
    return {"args": {"dim": None}, "inputs": ["t"], "outputs": ["out"], "ops": [
        op("proj", "sinusoidal_embedding", "t", dim=TIMESTEP_CHANNELS),
        op("linear_1", "linear", "proj", out_features="dim"),
        op("act", "silu", "linear_1"), op("out", "linear", "act", out_features="dim")]}


@network("PixArtTransformer2DModel")
def pixart(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    """PixArt-alpha: adaLN-single (one shared modulation linear, a per-block table), cross-attention to the
    projected T5 caption, resolution / aspect-ratio micro-conditions on the 1024 px model."""
    config.expect("norm_type", ("ada_norm_single",))
    c = common(config)
    d = c["d"]
    if config.get("cross_attention_dim", d) != d:
        raise config.error("cross_attention_dim", f"must equal the width {d} (the caption is projected to it)")
    pixart_block = {"args": {"d": None, "heads": None}, "inputs": ["x", "t6", "context"], "outputs": ["out"], "ops": [
        parameter("scale_shift_table", [1, 6, "d"]),
        op("mod_all", "add", ["t6", "scale_shift_table"]), op("mod", "split", "mod_all", axis=1, chunks=6),
        op("norm1", "layer_norm", "x", affine=False), block("mod1", "Modulate", ["norm1", "mod.0", "mod.1"]),
        op("q1", "linear", "mod1", out_features="d"), op("k1", "linear", "mod1", out_features="d"),
        op("v1", "linear", "mod1", out_features="d"),
        op("self_attn", "attention", ["q1", "k1", "v1"], heads="heads", role="self"),
        op("o1", "linear", "self_attn", out_features="d"), op("gated_attn", "mul", ["o1", "mod.2"]),
        op("res1", "add", ["gated_attn", "x"]),
        # cross-attention reads the residual stream directly (no norm before it)
        op("q2", "linear", "res1", out_features="d"), op("k2", "linear", "context", out_features="d"),
        op("v2", "linear", "context", out_features="d"),
        op("cross_attn", "attention", ["q2", "k2", "v2"], heads="heads", role="cross"),
        op("o2", "linear", "cross_attn", out_features="d"), op("res2", "add", ["o2", "res1"]),
        op("norm2", "layer_norm", "res2", affine=False), block("mod2", "Modulate", ["norm2", "mod.3", "mod.4"]),
        op("ff_proj", "linear", "mod2", out_features="4 * d"), op("ff_act", c["act"], "ff_proj"),
        op("ff_out", "linear", "ff_act", out_features="d"), op("gated_ff", "mul", ["ff_out", "mod.5"]),
        op("out", "add", ["gated_ff", "res2"])]}
    # diffusers: use_additional_conditions defaults to sample_size == 128 (the 1024 px PixArt-alpha checkpoint)
    micro = config.get("use_additional_conditions", c["size"] == 128)
    caption = config.int("caption_channels")
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}, "context": {"shape": ["B", "text_tokens", caption]}}
    ops = patchify(c, sample, learned_pos=False) + [block("t_emb", "TimestepMLP", "timestep", {"dim": d})]
    if micro:
        if d % 3:
            raise config.error("attention_head_dim", f"the width {d} must split in three for the size embeddings")
        inputs |= {"resolution": {"shape": ["B", 2], "dtype": "fp32"},
                   "aspect_ratio": {"shape": ["B", 1], "dtype": "fp32"}}
        ops += [op("resolution_flat", "reshape", "resolution", shape=[-1]),
                block("resolution_mlp", "TimestepMLP", "resolution_flat", {"dim": d // 3}),
                op("resolution_emb", "reshape", "resolution_mlp", shape=["B", 2 * d // 3]),
                op("aspect_flat", "reshape", "aspect_ratio", shape=[-1]),
                block("aspect_emb", "TimestepMLP", "aspect_flat", {"dim": d // 3}),
                op("size_emb", "concat", ["resolution_emb", "aspect_emb"], axis=1),
                op("embedded_timestep", "add", ["t_emb", "size_emb"])]
    else:
        ops.append(op("embedded_timestep", "identity", "t_emb"))
    ops += [op("t_act", "silu", "embedded_timestep"), op("t_block", "linear", "t_act", out_features=6 * d),
            op("t6", "reshape", "t_block", shape=["d0", 6, d]),
            # caption projection (PixArtAlphaTextProjection): caption_channels -> d, GELU tanh, d -> d
            op("caption_1", "linear", "context", out_features=d), op("caption_act", "gelu_tanh", "caption_1"),
            op("caption", "linear", "caption_act", out_features=d),
            block("blocks", "PixArtBlock", ["x", "t6", "caption"], {"d": d, "heads": c["heads"]}, repeat=c["layers"]),
            parameter("final_table", [1, 2, d]),
            op("embedded_timestep_3d", "reshape", "embedded_timestep", shape=["d0", 1, "d1"]),
            op("final_mod_all", "add", ["embedded_timestep_3d", "final_table"]),
            op("final_mod", "split", "final_mod_all", axis=1, chunks=2),
            op("norm_out", "layer_norm", "blocks", affine=False),
            block("final_modulate", "Modulate", ["norm_out", "final_mod.0", "final_mod.1"]),
            op("proj_out", "linear", "final_modulate", out_features=c["patch"] ** 2 * c["cout"])]
    ops += unpatchify(c, "proj_out", f, "noise_pred")
    # PixArtAlphaPipeline max_sequence_length=120 (the T5 prompt is padded to 120 tokens)
    extra = {"text_tokens": {"default": 120, "min": 1, "help": "text encoder sequence length in tokens"}}
    blocks = {"Modulate": MODULATE, "TimestepMLP": timestep_mlp(), "PixArtBlock": pixart_block}
    result = part(c, blocks, inputs, ops, "noise_pred", sample, f, extra)
    result.facts["context_dim"] = caption
    return result


@network("Transformer2DModel")
def transformer_2d(config: Config, **io) -> Part:
    """The legacy class name of DiT and PixArt hub configs: the norm type says which."""
    kind = config.get("norm_type", "layer_norm")
    if kind == "ada_norm_zero":
        return dit(config, **io)
    if kind == "ada_norm_single":
        return pixart(config, **io)
    raise config.error("norm_type", f"{kind!r}: only the DiT (ada_norm_zero) and PixArt (ada_norm_single) "
                                    "variants of Transformer2DModel are supported")
