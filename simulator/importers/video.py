"""Video denoisers: CogVideoXTransformer3DModel (models/cogvideox-2b.yaml, cogvideox-5b.yaml), in the module order
of diffusers' CogVideoXTransformer3DModel / CogVideoXBlock / CogVideoXAttnProcessor2_0."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op, parameter
from .unet import DEFAULT_VAE_FACTOR


def cog_block() -> dict:
    """CogVideoXBlock: text and video streams with their own adaLN modulation (one linear for both), joined for
    the 3-D full attention (per-head LayerNorm on q and k, RoPE where the model has it) and the feed-forward."""
    ops = [op("temb_act", "silu", "temb")]
    for i, (x, ctx) in enumerate((("x", "ctx"), ("x_res1", "ctx_res1")), 1):
        m = f"m{i}"
        ln_x, ln_ctx = ("ln1_x", "ln1_ctx") if i == 1 else ("ln2_x", "ln2_ctx")
        xs, cs = ("x", "ctx") if i == 1 else ("x2", "ctx2")
        ops += [op(f"mod{i}", "linear", "temb_act", out_features="6 * d"),
                op(f"mod{i}_3d", "reshape", f"mod{i}", shape=["d0", 1, "d1"]),
                op(m, "split", f"mod{i}_3d", axis=-1, chunks=6),  # shift, scale, gate, enc_shift, enc_scale, enc_gate
                op(ln_x, "layer_norm", x),
                op(ln_ctx, "layer_norm", ctx, affine=False),     # the same LayerNorm module (weights counted once)
                op(f"{xs}_scaled", "mul", [ln_x, f"{m}.1"]), op(f"{xs}_mod", "add", [f"{xs}_scaled", f"{m}.0"]),
                op(f"{cs}_scaled", "mul", [ln_ctx, f"{m}.4"]), op(f"{cs}_mod", "add", [f"{cs}_scaled", f"{m}.3"]),
                op("joint" if i == 1 else "joint2", "concat", [f"{cs}_mod", f"{xs}_mod"], axis=1)]
        if i == 1:
            ops += [op(n, "linear", "joint", out_features="d") for n in ("q", "k", "v")]
            for n in ("q", "k"):
                ops += [op(f"{n}_heads", "reshape", n, shape=["d0", "d1", "heads", "d2 / heads"]),
                        op(f"norm_{n}", "layer_norm", f"{n}_heads"),
                        op(f"{n}_flat", "reshape", f"norm_{n}", shape=["d0", "d1", "d2 * d3"])]
            ops += [op("q_rope", "rope", "q_flat", when="rope"), op("k_rope", "rope", "k_flat", when="rope"),
                    op("attn", "attention", ["q_rope", "k_rope", "v"], heads="heads", role="full3d"),
                    op("attn_out", "linear", "attn", out_features="d"),
                    op("attn_split", "split", "attn_out", axis=1, sizes=["dim(ctx, 1)", "dim(x, 1)"]),
                    op("x_gated", "mul", ["attn_split.1", "m1.2"]), op("x_res1", "add", ["x", "x_gated"]),
                    op("ctx_gated", "mul", ["attn_split.0", "m1.5"]), op("ctx_res1", "add", ["ctx", "ctx_gated"])]
    ops += [op("ff_in", "linear", "joint2", out_features="4 * d"), op("ff_act", "gelu_tanh", "ff_in"),
            op("ff_out", "linear", "ff_act", out_features="d"),
            op("ff_split", "split", "ff_out", axis=1, sizes=["dim(ctx, 1)", "dim(x, 1)"]),
            op("x_ff", "mul", ["ff_split.1", "m2.2"]), op("x_out", "add", ["x_res1", "x_ff"]),
            op("ctx_ff", "mul", ["ff_split.0", "m2.5"]), op("ctx_out", "add", ["ctx_res1", "ctx_ff"])]
    return {"args": {"d": None, "heads": None, "rope": 0}, "inputs": ["x", "ctx", "temb"],
            "outputs": {"out": "x_out", "ctx": "ctx_out"}, "ops": ops}


@network("CogVideoXTransformer3DModel")
def cogvideox(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    for key, allowed, default in (("patch_size_t", (None,), None), ("ofs_embed_dim", (None,), None),
                                  ("use_learned_positional_embeddings", (False,), False),
                                  ("activation_fn", ("gelu-approximate",), "gelu-approximate"),
                                  ("timestep_activation_fn", ("silu",), "silu"),
                                  ("norm_elementwise_affine", (True,), True), ("attention_bias", (True,), True)):
        config.expect(key, allowed, default)
    heads = config.int("num_attention_heads")
    d = heads * config.int("attention_head_dim")
    p, cin = config.int("patch_size"), config.int("in_channels")
    cout = config.int("out_channels", cin)
    temb_dim, rope = config.int("time_embed_dim"), bool(config.get("use_rotary_positional_embeddings", False))
    ratio = config.int("temporal_compression_ratio")
    g = f * p
    ops = [op("time_proj", "sinusoidal_embedding", "timestep", dim=d),   # Timesteps(inner_dim)
           op("time_linear_1", "linear", "time_proj", out_features=temb_dim), op("time_act", "silu", "time_linear_1"),
           op("temb", "linear", "time_act", out_features=temb_dim),
           # patch embedding: text Linear(text_embed_dim, d); video Conv2d(C, d, p, stride p) per latent frame
           op("text_proj", "linear", "text", out_features=d),
           op("frames_as_batch", "reshape", sample, shape=["d0 * d1", "d2", "d3", "d4"]),
           op("patchify", "conv2d", "frames_as_batch", out_channels=d, kernel=p, stride=p),
           op("patch_grid", "reshape", "patchify", shape=["B", "T", "d1", "d2 * d3"]),
           op("patch_tokens", "transpose", "patch_grid", perm=[0, 1, 3, 2]),
           op("video_tokens", "reshape", "patch_tokens", shape=["d0", "d1 * d2", "d3"]),
           op("embeds", "concat", ["text_proj", "video_tokens"], axis=1)]
    if rope:   # positions enter as 3-D RoPE inside the attention (cos/sin tables made by the pipeline)
        streams_in = "embeds"
    else:      # fixed 3-D sin-cos position embedding (a buffer, zero for the text positions)
        ops += [parameter("pos_embedding", [1, "dim(embeds, 1)", d], learned=False),
                op("embeds_pos", "add", ["embeds", "pos_embedding"])]
        streams_in = "embeds_pos"
    ops += [op("streams", "split", streams_in, axis=1, sizes=["text_tokens", "dim(video_tokens, 1)"]),
            block("blocks", "CogBlock", ["streams.1", "streams.0", "temb"],
                  {"d": d, "heads": heads} | ({"rope": 1} if rope else {}), repeat=config.int("num_layers")),
            op("norm_final", "layer_norm", "blocks"),
            # norm_out (AdaLayerNorm): SiLU(temb) -> Linear(temb_dim, 2 d) -> shift, scale; LayerNorm; modulate
            op("out_act", "silu", "temb"), op("out_mod", "linear", "out_act", out_features=2 * d),
            op("out_mod_3d", "reshape", "out_mod", shape=["d0", 1, "d1"]),
            op("out_shift_scale", "split", "out_mod_3d", axis=-1, chunks=2),
            op("norm_out", "layer_norm", "norm_final"),
            op("out_scaled", "mul", ["norm_out", "out_shift_scale.1"]),
            op("out_modulated", "add", ["out_scaled", "out_shift_scale.0"]),
            op("proj_out", "linear", "out_modulated", out_features=p * p * cout),
            # unpatchify: [B, T, H/p, W/p, C, p, p] -> [B, T, C, H, W]
            op("unpatch_grid", "reshape", "proj_out", shape=["B", "T", f"height / {g}", f"width / {g}", cout, p, p]),
            op("unpatch", "transpose", "unpatch_grid", perm=[0, 1, 4, 2, 5, 3, 6]),
            op("v_pred", "reshape", "unpatch", shape=["d0", "d1", "d2", "d3 * d4", "d5 * d6"])]
    text = config.int("text_embed_dim")
    inputs = {"text": {"shape": ["B", "text_tokens", text]}, "timestep": {"shape": ["B"], "dtype": "fp32"}}
    facts = {"role": "denoiser", "family": "ttv", "channels": cin, "context_dim": text,
             # latent frames: the first frame, then one per temporal_compression_ratio frames
             "bind": {"T": f"(frames - 1) / {ratio} + 1"},
             "main_input": {sample: {"shape": ["B", "T", cin, f"height / {f}", f"width / {f}"]}},
             "params": {"height": {"default": config.int("sample_height") * f, "min": 1,
                                   "help": "output height in pixels"},
                        "width": {"default": config.int("sample_width") * f, "min": 1,
                                  "help": "output width in pixels"},
                        "frames": {"default": config.int("sample_frames"), "min": 1, "help": "video frames generated"},
                        "text_tokens": {"default": config.int("max_text_seq_length"), "min": 1,
                                        "help": "text encoder sequence length in tokens"}}}
    return Part({"CogBlock": cog_block()}, inputs, ops, "v_pred", facts)


# ---------------------------------------------------------------------------------------------------- UNet3D


def unet3d_blocks(groups: int) -> dict:
    """models/modelscope-t2v.yaml's blocks: frames as batch [B*F, C, H, W]; temporal layers permute to
    [B, C, F, H, W] (convolutions) or [B*H*W, F, C] (attention over the frames of each pixel)."""
    from .unet import TRANSFORMER_BLOCK, UNET_BLOCKS, res_block
    temp_conv = [op("split_frames", "reshape", "x", shape=["d0 / frames", "frames", "d1", "d2", "d3"]),
                 op("cf", "transpose", "split_frames", perm=[0, 2, 1, 3, 4])]
    prev = "cf"
    for i in range(1, 5):   # TemporalConvLayer: four (GroupNorm, SiLU, 3x1x1 conv) stages
        temp_conv += [op(f"norm{i}", "group_norm", prev, groups=groups), op(f"act{i}", "silu", f"norm{i}"),
                      op(f"conv{i}", "conv3d", f"act{i}", out_channels="dim(x, 1)", kernel=[3, 1, 1],
                         padding=[1, 0, 0])]
        prev = f"conv{i}"
    temp_conv += [op("res", "add", ["cf", "conv4"]), op("fc", "transpose", "res", perm=[0, 2, 1, 3, 4]),
                  op("out", "reshape", "fc", shape=["d0 * d1", "d2", "d3", "d4"])]
    spatial_block = {k: v for k, v in TRANSFORMER_BLOCK.items()}
    spatial_block["ops"] = [dict(o, role="spatial") if o["name"] == "self_attn" else o
                            for o in TRANSFORMER_BLOCK["ops"]]
    # the temporal BasicTransformerBlock has no context: its second attention is self-attention too
    temporal_ops = []
    for o in TRANSFORMER_BLOCK["ops"]:
        o = dict(o)
        if o["name"] in ("k2", "v2"):
            o["in"] = "ln2"
        if o["op"] == "attention":
            o = dict(o, name="attn1" if o["name"] == "self_attn" else "attn2", role="temporal")
        if o["name"] in ("o1", "o2"):
            o["in"] = "attn1" if o["name"] == "o1" else "attn2"
        temporal_ops.append(o)
    temporal_block = {"args": {"heads": None, "d": "dim(x, 2)"}, "inputs": ["x"], "outputs": ["out"],
                      "ops": temporal_ops}
    head = "head_dim"
    return {
        "ResBlock": res_block(groups), "TempConv": {"inputs": ["x"], "outputs": ["out"], "ops": temp_conv},
        "SpatialBlock": spatial_block, "TemporalBlock": temporal_block,
        # Transformer2DModel(C // head_dim, head_dim), use_linear_projection (the get_*_block default)
        "SpatialTransformer": {"args": {head: None}, "inputs": ["x", "context"], "outputs": ["out"], "ops": [
            op("norm", "group_norm", "x", groups=groups), op("to_tokens", "transpose", "norm", perm=[0, 2, 3, 1]),
            op("tokens", "reshape", "to_tokens", shape=["d0", "d1 * d2", "d3"]),
            op("proj_in", "linear", "tokens", out_features="dim(x, 1)"),
            block("block", "SpatialBlock", ["proj_in", "context"], {"heads": f"dim(x, 1) / {head}"}),
            op("proj_out", "linear", "block", out_features="dim(x, 1)"),
            op("to_map", "reshape", "proj_out", shape=["d0", "dim(x, 2)", "dim(x, 3)", "d2"]),
            op("channels_first", "transpose", "to_map", perm=[0, 3, 1, 2]),
            op("out", "add", ["channels_first", "x"])]},
        # TransformerTemporalModel: attention over the F frames of every pixel
        "TemporalTransformer": {"args": {"heads": None, "inner": None}, "inputs": ["x"], "outputs": ["out"], "ops": [
            op("split_frames", "reshape", "x", shape=["d0 / frames", "frames", "d1", "d2", "d3"]),
            op("cf", "transpose", "split_frames", perm=[0, 2, 1, 3, 4]),
            op("norm", "group_norm", "cf", groups=groups),
            op("to_tokens", "transpose", "norm", perm=[0, 3, 4, 2, 1]),
            op("tokens", "reshape", "to_tokens", shape=["d0 * d1 * d2", "d3", "d4"]),
            op("proj_in", "linear", "tokens", out_features="inner"),
            block("block", "TemporalBlock", "proj_in", {"heads": "heads"}),
            op("proj_out", "linear", "block", out_features="dim(x, 1)"),
            op("to_map", "reshape", "proj_out",
               shape=["dim(x, 0) / frames", "dim(x, 2)", "dim(x, 3)", "frames", "dim(x, 1)"]),
            op("frames_first", "transpose", "to_map", perm=[0, 3, 4, 1, 2]),
            op("map", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
            op("out", "add", ["map", "x"])]},
        # resnet -> temporal conv -> spatial transformer -> temporal transformer
        "Layer": {"args": {"cout": None, head: None}, "inputs": ["x", "temb", "context"], "outputs": ["out"], "ops": [
            block("res", "ResBlock", ["x", "temb"], {"cout": "cout"}), block("temp_conv", "TempConv", "res"),
            block("attn", "SpatialTransformer", ["temp_conv", "context"], {head: head}),
            block("out", "TemporalTransformer", "attn", {"heads": f"dim(attn, 1) / {head}", "inner": "dim(attn, 1)"})]},
        "ResTemp": {"args": {"cout": None}, "inputs": ["x", "temb"], "outputs": ["out"], "ops": [
            block("res", "ResBlock", ["x", "temb"], {"cout": "cout"}), block("out", "TempConv", "res")]},
        "CatLayer": {"args": {"cout": None, head: None}, "inputs": ["x", "skip", "temb", "context"],
                     "outputs": ["out"], "ops": [
            op("cat", "concat", ["x", "skip"], axis=1),
            block("out", "Layer", ["cat", "temb", "context"], {"cout": "cout", head: head})]},
        "CatResTemp": {"args": {"cout": None}, "inputs": ["x", "skip", "temb"], "outputs": ["out"], "ops": [
            op("cat", "concat", ["x", "skip"], axis=1), block("out", "ResTemp", ["cat", "temb"], {"cout": "cout"})]},
        "Downsample": UNET_BLOCKS["Downsample"], "Upsample": UNET_BLOCKS["Upsample"],
    }


# TransformerTemporalModel on conv_in's output: UNet3DConditionModel hard-codes 8 heads of attention_head_dim
TRANSFORMER_IN_HEADS = 8
# TextToVideoSDPipeline.__call__ num_frames=16: the frame count when the config does not give one
DEFAULT_FRAMES = 16


@network("UNet3DConditionModel")
def unet3d(config: Config, sample: str = "latent", h: str = f"height / {DEFAULT_VAE_FACTOR}",
           w: str = f"width / {DEFAULT_VAE_FACTOR}") -> Part:
    from .unet import groups_of
    config.expect("act_fn", ("silu",), "silu")
    config.expect("num_attention_heads", (None,))
    ch = config.ints("block_out_channels")
    n = len(ch)
    down, up = config.strs("down_block_types", n), config.strs("up_block_types", n)
    for key, types, known in (("down_block_types", down, ("CrossAttnDownBlock3D", "DownBlock3D")),
                              ("up_block_types", up, ("CrossAttnUpBlock3D", "UpBlock3D"))):
        for t in types:
            if t not in known:
                raise config.error(key, f"block type {t!r} is not supported (supported: {', '.join(known)})")
    layers = config.int("layers_per_block")
    # diffusers' 3-D blocks build Transformer2DModel(C // v, v) from this value v: v channels per head
    head_dim = config.int("attention_head_dim")
    for c in ch:
        if c % head_dim:
            raise config.error("attention_head_dim", f"{head_dim} channels per head do not divide {c} channels "
                                                     "(block_out_channels): heads x head dim must equal the width")
    groups = groups_of(config, ch)
    context, temb_dim = config.int("cross_attention_dim"), 4 * ch[0]
    cin, cout = config.int("in_channels"), config.int("out_channels")
    ops = [parameter("frame_rep", [1, "frames", 1, 1], learned=False),  # repeat_interleave as a broadcast add
           op("frames_first", "transpose", sample, perm=[0, 2, 1, 3, 4]),
           op("sample", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
           op("time_proj", "sinusoidal_embedding", "timestep", dim=ch[0]),
           op("time_linear_1", "linear", "time_proj", out_features=temb_dim), op("time_act", "silu", "time_linear_1"),
           op("time_linear_2", "linear", "time_act", out_features=temb_dim),
           op("temb_b1", "reshape", "time_linear_2", shape=["d0", 1, 1, "d1"]),
           op("temb_rep", "add", ["temb_b1", "frame_rep"]), op("temb", "reshape", "temb_rep", shape=["d0 * d1", "d3"]),
           op("text_b1", "reshape", "text", shape=["d0", 1, "d1", "d2"]),
           op("text_rep", "add", ["text_b1", "frame_rep"]),
           op("context", "reshape", "text_rep", shape=["d0 * d1", "d2", "d3"]),
           op("conv_in", "conv2d", "sample", out_channels=ch[0], kernel=3, padding=1),
           block("transformer_in", "TemporalTransformer", "conv_in",
                 {"heads": TRANSFORMER_IN_HEADS, "inner": TRANSFORMER_IN_HEADS * head_dim})]

    def layer(name, c, attn, prev, skip=None):
        ins = [prev] + ([skip] if skip else []) + ["temb"] + (["context"] if attn else [])
        kind = ("CatLayer" if attn else "CatResTemp") if skip else ("Layer" if attn else "ResTemp")
        return block(name, kind, ins, {"cout": c} | ({"head_dim": head_dim} if attn else {}))

    skips, prev = ["transformer_in"], "transformer_in"
    for i in range(n):
        for j in range(layers):
            ops.append(layer(f"down{i}_{j}", ch[i], down[i] == "CrossAttnDownBlock3D", prev))
            skips.append(prev := f"down{i}_{j}")
        if i < n - 1:
            ops.append(block(f"down{i}_ds", "Downsample", prev))
            skips.append(prev := f"down{i}_ds")
    ops += [layer("mid_0", ch[-1], True, prev), layer("mid_1", ch[-1], False, "mid_0")]
    prev = "mid_1"
    for r in range(n):
        for j in range(layers + 1):
            ops.append(layer(f"up{r}_{j}", ch[n - 1 - r], up[r] == "CrossAttnUpBlock3D", prev, skips.pop()))
            prev = f"up{r}_{j}"
        if r < n - 1:
            ops.append(block(f"up{r}_us", "Upsample", prev))
            prev = f"up{r}_us"
    ops += [op("norm_out", "group_norm", prev, groups=groups), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv2d", "act_out", out_channels=cout, kernel=3, padding=1),
            op("out_frames", "reshape", "conv_out", shape=["d0 / frames", "frames", "d1", "d2", "d3"]),
            op("eps", "transpose", "out_frames", perm=[0, 2, 1, 3, 4])]
    size = config.int("sample_size", 32) * DEFAULT_VAE_FACTOR
    inputs = {"timestep": {"shape": ["B"], "dtype": "fp32"}, "text": {"shape": ["B", "text_tokens", context]}}
    facts = {"role": "denoiser", "family": "ttv", "channels": cin, "out_channels": cout, "context_dim": context,
             "sample_size": config.int("sample_size", 32),
             "main_input": {sample: {"shape": ["B", cin, "frames", h, w]}},
             "params": {"height": {"default": size, "min": 1, "help": "output height in pixels"},
                        "width": {"default": size, "min": 1, "help": "output width in pixels"},
                        "frames": {"default": DEFAULT_FRAMES, "min": 1, "help": "video frames generated"},
                        "text_tokens": {"default": 77, "min": 1, "help": "text encoder sequence length in tokens"}}}
    return Part(unet3d_blocks(groups), inputs, ops, "eps", facts)


# ------------------------------------------------------------------------------------------------------- Wan


def adaln_video_block(norm: str, first: str, last: str, ff: str, cross_norm: str | None) -> list:
    """The ops of a Wan- or LTX-style video DiT block: adaLN modulation (a per-block table plus the shared time
    projection, six chunks), a `norm` (no weights) named `first` before a 3-D full self-attention with q and k
    RMS-normed across heads and RoPE, a gated residual; an ungated cross-attention to the text, read through a
    `cross_norm` op (`ln2`) or from the residual stream itself (None); a `norm` named `last` before a gated GELU-tanh
    FFN of width `ff`."""
    cross_in = "res1" if cross_norm is None else "ln2"
    return [
        parameter("scale_shift_table", [1, 6, "d"]), op("mod", "add", ["scale_shift_table", "temb6"]),
        op("m", "split", "mod", axis=1, chunks=6),   # shift, scale, gate (attention); shift, scale, gate (FFN)
        op(first, norm, "x", affine=False),
        op("x_scaled", "mul", [first, "m.1"]), op("x_mod", "add", ["x_scaled", "m.0"]),
        op("q", "linear", "x_mod", out_features="d"), op("k", "linear", "x_mod", out_features="d"),
        op("v", "linear", "x_mod", out_features="d"),
        op("norm_q", "rms_norm", "q"), op("norm_k", "rms_norm", "k"),    # across heads: one weight per channel
        op("q_rope", "rope", "norm_q"), op("k_rope", "rope", "norm_k"),
        op("attn", "attention", ["q_rope", "k_rope", "v"], heads="heads", role="full3d"),
        op("attn_out", "linear", "attn", out_features="d"), op("attn_gated", "mul", ["attn_out", "m.2"]),
        op("res1", "add", ["x", "attn_gated"]),
        *([] if cross_norm is None else [op("ln2", cross_norm, "res1")]),
        op("cq", "linear", cross_in, out_features="d"), op("ck", "linear", "ctx", out_features="d"),
        op("cv", "linear", "ctx", out_features="d"),
        op("norm_cq", "rms_norm", "cq"), op("norm_ck", "rms_norm", "ck"),
        op("cross", "attention", ["norm_cq", "norm_ck", "cv"], heads="heads", role="cross"),
        op("cross_out", "linear", "cross", out_features="d"), op("res2", "add", ["res1", "cross_out"]),
        op(last, norm, "res2", affine=False),
        op("ff_scaled", "mul", [last, "m.4"]), op("ff_mod", "add", ["ff_scaled", "m.3"]),
        op("ff_in", "linear", "ff_mod", out_features=ff), op("ff_act", "gelu_tanh", "ff_in"),
        op("ff_out", "linear", "ff_act", out_features="d"), op("ff_gated", "mul", ["ff_out", "m.5"]),
        op("out", "add", ["res2", "ff_gated"])]


def wan_block(cross_norm: bool) -> dict:
    """WanTransformerBlock: adaLN (a per-block table + the shared time projection) around a 3-D full self-attention
    with RMSNorm across heads on q and k and RoPE, an ungated cross-attention to the text (after a LayerNorm where
    the config's cross_attn_norm says so), a gated GELU-tanh FFN."""
    return {"args": {"d": None, "heads": None, "ff": None}, "inputs": ["x", "ctx", "temb6"], "outputs": ["out"],
            "ops": adaln_video_block("layer_norm", "ln1", "ln3", "ff", "layer_norm" if cross_norm else "identity")}


# WanPipeline.__call__ defaults (480p, 81 frames, max_sequence_length 512) and AutoencoderKLWan's 4x time, 8x space
WAN_DEFAULTS = {"height": 480, "width": 832, "frames": 81, "text_tokens": 512, "temporal": 4}


@network("WanTransformer3DModel")
def wan(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR) -> Part:
    for key, allowed, default in (("qk_norm", ("rms_norm_across_heads",), "rms_norm_across_heads"),
                                  ("image_dim", (None,), None), ("added_kv_proj_dim", (None,), None),
                                  ("pos_embed_seq_len", (None,), None)):
        config.expect(key, allowed, default)
    heads = config.int("num_attention_heads")
    d = heads * config.int("attention_head_dim")
    patch = config.ints("patch_size", 3)
    pt, ph, pw = patch
    cin, freq = config.int("in_channels"), config.int("freq_dim", 256)
    cout = config.int("out_channels", cin)
    ops = [op("time_proj", "sinusoidal_embedding", "timestep", dim=freq),
           op("time_linear_1", "linear", "time_proj", out_features=d), op("time_act", "silu", "time_linear_1"),
           op("temb", "linear", "time_act", out_features=d), op("temb_act", "silu", "temb"),
           op("time_mod", "linear", "temb_act", out_features=6 * d),
           op("temb6", "reshape", "time_mod", shape=["d0", 6, d]),
           # text_embedder (PixArtAlphaTextProjection): Linear(text_dim, d) -> GELU tanh -> Linear(d, d)
           op("text_linear_1", "linear", "text", out_features=d), op("text_act", "gelu_tanh", "text_linear_1"),
           op("ctx", "linear", "text_act", out_features=d),
           op("patchify", "conv3d", sample, out_channels=d, kernel=patch, stride=patch),
           op("patch_flat", "reshape", "patchify", shape=["d0", "d1", "d2 * d3 * d4"]),
           op("video_tokens", "transpose", "patch_flat", perm=[0, 2, 1]),
           block("blocks", "WanBlock", ["video_tokens", "ctx", "temb6"], {"d": d, "heads": heads,
                 "ff": config.int("ffn_dim")}, repeat=config.int("num_layers")),
           # output: LayerNorm modulated by a [1, 2, d] table + temb, Linear(d, out_channels x patch volume)
           parameter("out_table", [1, 2, d]), op("temb_3d", "reshape", "temb", shape=["d0", 1, "d1"]),
           op("out_mod", "add", ["out_table", "temb_3d"]),
           op("out_shift_scale", "split", "out_mod", axis=1, chunks=2),
           op("norm_out", "layer_norm", "blocks", affine=False),
           op("out_scaled", "mul", ["norm_out", "out_shift_scale.1"]),
           op("out_modulated", "add", ["out_scaled", "out_shift_scale.0"]),
           op("proj_out", "linear", "out_modulated", out_features=cout * pt * ph * pw),
           op("unpatch_grid", "reshape", "proj_out", shape=["B", f"T / {pt}", f"height / {f * ph}",
                                                            f"width / {f * pw}", pt, ph, pw, cout]),
           op("unpatch", "transpose", "unpatch_grid", perm=[0, 7, 1, 4, 2, 5, 3, 6]),
           op("flow_pred", "reshape", "unpatch", shape=["d0", "d1", "d2 * d3", "d4 * d5", "d6 * d7"])]
    inputs = {"text": {"shape": ["B", "text_tokens", config.int("text_dim")]},
              "timestep": {"shape": ["B"], "dtype": "fp32"}}
    facts = {"role": "denoiser", "family": "ttv", "channels": cin, "context_dim": config.int("text_dim"),
             "bind": {"T": f"(frames - 1) / {WAN_DEFAULTS['temporal']} + 1"},
             "main_input": {sample: {"shape": ["B", cin, "T", f"height / {f}", f"width / {f}"]}},
             "params": {"height": {"default": WAN_DEFAULTS["height"], "min": 16, "help": "output height in pixels"},
                        "width": {"default": WAN_DEFAULTS["width"], "min": 16, "help": "output width in pixels"},
                        "frames": {"default": WAN_DEFAULTS["frames"], "min": 1, "help": "video frames generated"},
                        "text_tokens": {"default": WAN_DEFAULTS["text_tokens"], "min": 1,
                                        "help": "text encoder sequence length in tokens"}}}
    return Part({"WanBlock": wan_block(bool(config.get("cross_attn_norm", True)))}, inputs, ops, "flow_pred", facts)


# ------------------------------------------------------------------------------------------------------- LTX


def ltx_block() -> dict:
    """LTXVideoTransformerBlock: adaLN-single modulation, RMSNorm (no weights) before self-attention and FF; q and k
    RMS-normed across heads, RoPE; the cross-attention reads the residual stream itself (no norm, no gate)."""
    return {"args": {"d": None, "heads": None}, "inputs": ["x", "ctx", "temb6"], "outputs": ["out"],
            "ops": adaln_video_block("rms_norm", "norm1", "norm2", "4 * d", None)}


# LTXPipeline.__call__ defaults (512 x 704, 161 frames, max_sequence_length 128) and AutoencoderKLLTXVideo's
# 32x space, 8x time compression
LTX_DEFAULTS = {"height": 512, "width": 704, "frames": 161, "text_tokens": 128, "spatial": 32, "temporal": 8}


@network("LTXVideoTransformer3DModel")
def ltx(config: Config, sample: str = "latent", f: int | None = None, t: int | None = None) -> Part:
    for key, allowed, default in (("patch_size", (1,), 1), ("patch_size_t", (1,), 1),
                                  ("qk_norm", ("rms_norm_across_heads",), "rms_norm_across_heads"),
                                  ("activation_fn", ("gelu-approximate",), "gelu-approximate"),
                                  ("norm_elementwise_affine", (False,), False), ("attention_bias", (True,), True),
                                  ("attention_out_bias", (True,), True)):
        config.expect(key, allowed, default)
    heads = config.int("num_attention_heads")
    d = heads * config.int("attention_head_dim")
    if config.int("cross_attention_dim") != d:
        raise config.error("cross_attention_dim", f"must equal num_attention_heads x attention_head_dim = {d}")
    cin = config.int("in_channels")
    cout = config.int("out_channels", cin)
    caption = config.int("caption_channels")
    s, t = f or LTX_DEFAULTS["spatial"], t or LTX_DEFAULTS["temporal"]   # the VAE's, where a pipeline gives it
    ops = [op("proj_in", "linear", sample, out_features=d),
           op("time_proj", "sinusoidal_embedding", "timestep", dim=256),   # Timesteps(256) of AdaLayerNormSingle
           op("time_linear_1", "linear", "time_proj", out_features=d), op("time_act", "silu", "time_linear_1"),
           op("embedded_timestep", "linear", "time_act", out_features=d), op("temb_act", "silu", "embedded_timestep"),
           op("time_mod", "linear", "temb_act", out_features=6 * d),
           op("temb6", "reshape", "time_mod", shape=["d0", 6, d]),
           op("caption_linear_1", "linear", "text", out_features=d),
           op("caption_act", "gelu_tanh", "caption_linear_1"), op("ctx", "linear", "caption_act", out_features=d),
           block("blocks", "LTXBlock", ["proj_in", "ctx", "temb6"], {"d": d, "heads": heads},
                 repeat=config.int("num_layers")),
           parameter("out_table", [1, 2, d]),
           op("embedded_3d", "reshape", "embedded_timestep", shape=["d0", 1, "d1"]),
           op("out_mod", "add", ["out_table", "embedded_3d"]),
           op("out_shift_scale", "split", "out_mod", axis=1, chunks=2),
           op("norm_out", "layer_norm", "blocks", affine=False),
           op("out_scaled", "mul", ["norm_out", "out_shift_scale.1"]),
           op("out_modulated", "add", ["out_scaled", "out_shift_scale.0"]),
           op("velocity", "linear", "out_modulated", out_features=cout)]
    inputs = {"text": {"shape": ["B", "text_tokens", caption]}, "timestep": {"shape": ["B"], "dtype": "fp32"}}
    facts = {"role": "denoiser", "family": "ttv", "channels": cin, "context_dim": caption,
             "bind": {"T": f"(frames - 1) / {t} + 1"},
             # LTXPipeline packs [B, C, T, H/32, W/32] into tokens [B, T*(H/32)*(W/32), C] (patch 1)
             "main_input": {sample: {"shape": ["B", f"T * (height / {s}) * (width / {s})", cin]}},
             "params": {"height": {"default": LTX_DEFAULTS["height"], "min": s, "help": "output height in pixels"},
                        "width": {"default": LTX_DEFAULTS["width"], "min": s, "help": "output width in pixels"},
                        "frames": {"default": LTX_DEFAULTS["frames"], "min": 1, "help": "video frames generated"},
                        "text_tokens": {"default": LTX_DEFAULTS["text_tokens"], "min": 1,
                                        "help": "text encoder sequence length in tokens"}}}
    return Part({"LTXBlock": ltx_block()}, inputs, ops, "velocity", facts)


# ----------------------------------------------------------------------------------------------------- Mochi


def mochi_blocks() -> dict:
    """MochiTransformerBlock: an asymmetric pair of streams (video d wide, text cd wide), MochiRMSNormZero modulation
    (scale and tanh gate), per-head RMSNorm of q and k, one joint attention over [video; text], SwiGLU FFs; the last
    block (context_pre_only) keeps only the video stream after the attention."""
    head_norm = {"args": {"heads": None}, "inputs": ["x"], "outputs": ["out"], "ops": [
        op("heads_split", "reshape", "x", shape=["d0", "d1", "heads", "d2 / heads"]),
        op("norm", "rms_norm", "heads_split"),
        op("out", "reshape", "norm", shape=["d0", "d1", "d2 * d3"])]}
    swiglu = {"args": {"d": None, "ff": None}, "inputs": ["x"], "outputs": ["out"], "ops": [
        op("proj", "linear", "x", out_features="2 * ff", bias=False), op("halves", "split", "proj", axis=-1, chunks=2),
        op("gate", "silu", "halves.1"), op("gated", "mul", ["halves.0", "gate"]),
        op("out", "linear", "gated", out_features="d", bias=False)]}

    def stream_tail(prefix: str, attn_out: str, res_in: str, m: str, width: str, ff: str, out: str) -> list:
        p = prefix
        return [op(f"norm2{p}", "rms_norm", attn_out, affine=False), op(f"{p}gate_msa", "tanh", f"{m}.1"),
                op(f"{p}attn_gated", "mul", [f"norm2{p}", f"{p}gate_msa"]),
                op(f"{p}res1", "add", [res_in, f"{p}attn_gated"]),
                op(f"norm3{p}", "rms_norm", f"{p}res1", affine=False),
                op(f"{p}ff_in", "mul", [f"norm3{p}", f"{m}.2"]),
                block(f"{p}ff", "SwiGLU", f"{p}ff_in", {"d": width, "ff": ff}),
                op(f"norm4{p}", "rms_norm", f"{p}ff", affine=False), op(f"{p}gate_mlp", "tanh", f"{m}.3"),
                op(f"{p}ff_gated", "mul", [f"norm4{p}", f"{p}gate_mlp"]),
                op(out, "add", [f"{p}res1", f"{p}ff_gated"])]

    def body(last: bool) -> list:
        ops = [op("temb_act", "silu", "temb"), op("mod", "linear", "temb_act", out_features="4 * d"),
               op("mod_3d", "reshape", "mod", shape=["d0", 1, "d1"]),
               op("m", "split", "mod_3d", axis=-1, chunks=4)]   # scale_msa, gate_msa, scale_mlp, gate_mlp
        if last:
            ops += [op("cscale", "linear", "temb_act", out_features="cd"),
                    op("cscale_3d", "reshape", "cscale", shape=["d0", 1, "d1"])]
        else:
            ops += [op("cmod", "linear", "temb_act", out_features="4 * cd"),
                    op("cmod_3d", "reshape", "cmod", shape=["d0", 1, "d1"]),
                    op("c", "split", "cmod_3d", axis=-1, chunks=4)]
        ops += [op("norm1", "rms_norm", "x", affine=False), op("x_mod", "mul", ["norm1", "m.0"]),
                op("norm1_ctx", "rms_norm", "ctx", affine=False),
                op("ctx_mod", "mul", ["norm1_ctx", "cscale_3d" if last else "c.0"])]
        ops += [op(n, "linear", "x_mod", out_features="d", bias=False) for n in ("q", "k", "v")]
        ops += [block(f"norm_{n}", "HeadRMSNorm", n, {"heads": "heads"}) for n in ("q", "k")]
        ops += [op(f"add_{n}", "linear", "ctx_mod", out_features="d", bias=False) for n in ("q", "k", "v")]
        ops += [block(f"norm_added_{n}", "HeadRMSNorm", f"add_{n}", {"heads": "heads"}) for n in ("q", "k")]
        ops += [op("q_rope", "rope", "norm_q"), op("k_rope", "rope", "norm_k"),
                op("joint_q", "concat", ["q_rope", "norm_added_q"], axis=1),
                op("joint_k", "concat", ["k_rope", "norm_added_k"], axis=1),
                op("joint_v", "concat", ["v", "add_v"], axis=1),
                op("attn", "attention", ["joint_q", "joint_k", "joint_v"], heads="heads", role="full3d"),
                op("attn_split", "split", "attn", axis=1, sizes=["dim(x, 1)", "dim(ctx, 1)"]),
                op("attn_out", "linear", "attn_split.0", out_features="d")]
        if not last:
            ops.append(op("ctx_attn_out", "linear", "attn_split.1", out_features="cd"))
        ops += stream_tail("", "attn_out", "x", "m", "d", "ff", "x_out")
        if not last:
            ops += stream_tail("ctx_", "ctx_attn_out", "ctx", "c", "cd", "cff", "ctx_out")
        return ops

    return {"HeadRMSNorm": head_norm, "SwiGLU": swiglu,
            "MochiBlock": {"args": {"d": None, "cd": None, "heads": None, "ff": None, "cff": None},
                           "inputs": ["x", "ctx", "temb"], "outputs": {"out": "x_out", "ctx": "ctx_out"},
                           "ops": body(False)},
            "MochiLastBlock": {"args": {"d": None, "cd": None, "heads": None, "ff": None},
                               "inputs": ["x", "ctx", "temb"], "outputs": ["x_out"], "ops": body(True)}}


# MochiPipeline defaults: default_height 480, default_width 848, num_frames 19; AutoencoderKLMochi: 6x time, 8x space;
# MochiCombinedTimestepCaptionEmbedding pools the caption with 8 attention heads (a constant of the model)
MOCHI_DEFAULTS = {"height": 480, "width": 848, "frames": 19, "temporal": 6, "pool_heads": 8}


@network("MochiTransformer3DModel")
def mochi(config: Config, sample: str = "latent", f: int = DEFAULT_VAE_FACTOR, t: int | None = None) -> Part:
    for key, allowed, default in (("qk_norm", ("rms_norm",), "rms_norm"), ("activation_fn", ("swiglu",), "swiglu")):
        config.expect(key, allowed, default)
    heads = config.int("num_attention_heads")
    head_dim = config.int("attention_head_dim")
    d, cd = heads * head_dim, config.int("pooled_projection_dim")
    p, cin = config.int("patch_size"), config.int("in_channels")
    cout = config.int("out_channels", cin)
    text, layers = config.int("text_embed_dim"), config.int("num_layers")
    pool_heads = MOCHI_DEFAULTS["pool_heads"]
    if text % pool_heads:
        raise config.error("text_embed_dim", f"{text} does not split into the pooler's {pool_heads} heads")
    g = f * p
    args = {"d": d, "cd": cd, "heads": heads, "ff": 4 * d * 2 // 3}   # MochiTransformerBlock: (4 dim x 2) // 3
    ops = [op("time_proj", "sinusoidal_embedding", "timestep", dim=config.int("time_embed_dim")),
           op("time_linear_1", "linear", "time_proj", out_features=d), op("time_act", "silu", "time_linear_1"),
           op("time_emb", "linear", "time_act", out_features=d),
           # MochiAttentionPool: the mean text token attends over [mean; text], projected to d
           op("pool_mean", "reduce", "text", axis=1, keepdim=True),
           op("pool_tokens", "concat", ["pool_mean", "text"], axis=1),
           op("pool_kv", "linear", "pool_tokens", out_features=2 * text),
           op("pool_kv_split", "split", "pool_kv", axis=-1, chunks=2),
           op("pool_q", "linear", "pool_mean", out_features=text),
           op("pool_attn", "attention", ["pool_q", "pool_kv_split.0", "pool_kv_split.1"], heads=pool_heads,
              role="cross"),
           op("pool_out", "linear", "pool_attn", out_features=d),
           op("pooled", "reshape", "pool_out", shape=["d0", "d2"]), op("temb", "add", ["time_emb", "pooled"]),
           op("ctx", "linear", "text", out_features=cd),
           op("frames_first", "transpose", sample, perm=[0, 2, 1, 3, 4]),
           op("frames_as_batch", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
           op("patchify", "conv2d", "frames_as_batch", out_channels=d, kernel=p, stride=p),
           op("patch_grid", "reshape", "patchify", shape=["B", "T", "d1", "d2 * d3"]),
           op("patch_tokens", "transpose", "patch_grid", perm=[0, 1, 3, 2]),
           op("video_tokens", "reshape", "patch_tokens", shape=["d0", "d1 * d2", "d3"]),
           # learned RoPE frequencies: 3 axes x heads x head_dim / 2
           parameter("pos_frequencies", [3, heads, head_dim // 2])]
    last_in = "video_tokens"
    if layers > 1:
        ops.append(block("blocks", "MochiBlock", ["video_tokens", "ctx", "temb"],
                         args | {"cff": 4 * cd * 2 // 3}, repeat=layers - 1))
        last_in = "blocks"
    ops += [block("last_block", "MochiLastBlock", [last_in, "ctx", "temb"], args),
            op("out_act", "silu", "temb"), op("out_mod", "linear", "out_act", out_features=2 * d),
            op("out_mod_3d", "reshape", "out_mod", shape=["d0", 1, "d1"]),
            op("out_scale_shift", "split", "out_mod_3d", axis=-1, chunks=2),
            op("norm_out", "layer_norm", "last_block", affine=False),
            op("out_scaled", "mul", ["norm_out", "out_scale_shift.0"]),
            op("out_modulated", "add", ["out_scaled", "out_scale_shift.1"]),
            op("proj_out", "linear", "out_modulated", out_features=p * p * cout),
            op("unpatch_grid", "reshape", "proj_out", shape=["B", "T", f"height / {g}", f"width / {g}", p, p, cout]),
            op("unpatch", "transpose", "unpatch_grid", perm=[0, 6, 1, 2, 4, 3, 5]),
            op("velocity", "reshape", "unpatch", shape=["d0", "d1", "d2", "d3 * d4", "d5 * d6"])]
    inputs = {"text": {"shape": ["B", "text_tokens", text]}, "timestep": {"shape": ["B"], "dtype": "fp32"}}
    facts = {"role": "denoiser", "family": "ttv", "channels": cin, "context_dim": text,
             "bind": {"T": f"(frames - 1) / {t or MOCHI_DEFAULTS['temporal']} + 1"},   # the VAE's, from a pipeline
             "main_input": {sample: {"shape": ["B", cin, "T", f"height / {f}", f"width / {f}"]}},
             "params": {"height": {"default": MOCHI_DEFAULTS["height"], "min": g, "help": "output height in pixels"},
                        "width": {"default": MOCHI_DEFAULTS["width"], "min": g, "help": "output width in pixels"},
                        "frames": {"default": MOCHI_DEFAULTS["frames"], "min": 1, "help": "video frames generated"},
                        "text_tokens": {"default": config.int("max_sequence_length", 256), "min": 1,
                                        "help": "text encoder sequence length in tokens"}}}
    return Part(mochi_blocks(), inputs, ops, "velocity", facts)
