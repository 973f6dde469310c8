"""Video VAE decoders of the 2025 pipelines: AutoencoderKLWan (Wan 2.1; models/wan21-1.3b.yaml, wan21-14b.yaml), in
the module order of diffusers' AutoencoderKLWan.decode / WanDecoder3d / WanResidualBlock / WanAttentionBlock /
WanResample. Only the decoder runs in text-to-video (the encoder is never called)."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op, parameter
from .unet import groups_of, vae_res_ops

# AutoencoderKLWan.__init__ (diffusers 0.42 autoencoder_kl_wan.py): tile_sample_min_height/width 256,
# tile_sample_stride_height/width 192 for enable_tiling; not config fields
WAN_TILING = {"tile": 256, "stride": 192}
# WanCausalConv3d's feat_cache keeps the last CACHE_T = 2 input frames of each causal conv between decoder calls
# (diffusers autoencoder_kl_wan.py)
CACHE_T = 2


def wan_vae_blocks() -> dict:
    """The blocks of models/wan21-1.3b.yaml's decoder (the reasons for each are in that file's comments)."""
    return {
        "ChannelRMSNorm": {"inputs": ["x"], "outputs": ["out"], "ops": [   # WanRMS_norm over the channel axis
            op("channels_last", "transpose", "x", perm=[0, 2, 3, 4, 1], copy=False),
            op("norm", "rms_norm", "channels_last"),
            op("out", "transpose", "norm", perm=[0, 4, 1, 2, 3], copy=False)]},
        # WanResidualBlock; WanCausalConv3d: 2 frames before its input (zeros, then the 2 frames its feat_cache
        # kept from the previous call), the FLOPs of symmetric padding 1, and a 2-frame cache on the device
        "WanResBlock": {"args": {"cout": None, "shortcut": 0}, "inputs": ["x"], "outputs": ["out"], "ops": [
            block("norm1", "ChannelRMSNorm", "x"), op("act1", "silu", "norm1"),
            op("conv1", "conv3d", "act1", out_channels="cout", kernel=3, padding=1, cache=CACHE_T),
            block("norm2", "ChannelRMSNorm", "conv1"), op("act2", "silu", "norm2"),
            op("conv2", "conv3d", "act2", out_channels="cout", kernel=3, padding=1, cache=CACHE_T),
            op("shortcut", "conv3d", "x", out_channels="cout", kernel=1, when="shortcut"),
            op("out", "add", ["shortcut", "conv2"])]},
        # WanAttentionBlock: one head within each frame, 1x1 convolutions for qkv and the output
        "WanFrameAttention": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("frames_first", "transpose", "x", perm=[0, 2, 1, 3, 4]),
            op("images", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
            op("channels_last", "transpose", "images", perm=[0, 2, 3, 1], copy=False),
            op("norm_rows", "rms_norm", "channels_last"),
            op("norm", "transpose", "norm_rows", perm=[0, 3, 1, 2], copy=False),
            op("to_qkv", "conv2d", "norm", out_channels="3 * dim(x, 1)", kernel=1),
            op("qkv_flat", "reshape", "to_qkv", shape=["d0", "d1", "d2 * d3"]),
            op("qkv_tokens", "transpose", "qkv_flat", perm=[0, 2, 1]),
            op("qkv", "split", "qkv_tokens", axis=-1, chunks=3),
            op("attn", "attention", ["qkv.0", "qkv.1", "qkv.2"], heads=1, role="spatial"),
            op("attn_channels", "transpose", "attn", perm=[0, 2, 1]),
            op("attn_map", "reshape", "attn_channels", shape=["d0", "d1", "dim(x, 3)", "dim(x, 4)"]),
            op("proj", "conv2d", "attn_map", out_channels="dim(x, 1)", kernel=1),
            op("proj_frames", "reshape", "proj", shape=["dim(x, 0)", "dim(x, 2)", "d1", "d2", "d3"]),
            op("proj_video", "transpose", "proj_frames", perm=[0, 2, 1, 3, 4]),
            op("out", "add", ["x", "proj_video"])]},
        # WanResample upsample2d: per frame, nearest-exact x2, Conv2d(C, C/2, 3)
        "WanUpsampleSpace": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("frames_first", "transpose", "x", perm=[0, 2, 1, 3, 4]),
            op("images", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
            op("up", "upsample", "images", scale=[2, 2]),
            op("conv", "conv2d", "up", out_channels="dim(x, 1) / 2", kernel=3, padding=1),
            op("split_frames", "reshape", "conv", shape=["dim(x, 0)", "dim(x, 2)", "d1", "d2", "d3"]),
            op("out", "transpose", "split_frames", perm=[0, 2, 1, 3, 4])]},
        # WanResample upsample3d on one decoder call: time_conv, a causal (3, 1, 1) Conv3d C -> 2C with a 2-frame
        # cache whose halves become two frames, then the spatial upsampler; the first call (i = 0) passes its frame
        # through, modelled as the same conv keeping one of its two frames
        "WanUpsampleTime": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("time_conv", "conv3d", "x", out_channels="2 * dim(x, 1)", kernel=[3, 1, 1], padding=[1, 0, 0],
               cache=CACHE_T),
            op("pairs", "reshape", "time_conv", shape=["d0", 2, "d1 / 2", "d2", "d3", "d4"]),
            op("interleave", "transpose", "pairs", perm=[0, 2, 3, 1, 4, 5]),
            op("doubled", "reshape", "interleave", shape=["d0", "d1", "d2 * d3", "d4", "d5"]),
            op("frames", "slice", "doubled", axis=2, start=0, stop="dim(x, 2) * (1 + min(i, 1))"),
            block("out", "WanUpsampleSpace", "frames")]},
    }


def _wan_decoder_dims(config: Config, expect: tuple = ()) -> tuple:
    """The decoder layout of a Wan-style VAE config (AutoencoderKLWan, AutoencoderKLQwenImage): latent channels,
    levels, temporal down/up-sampling per level (WanDecoder3d's temperal_upsample is the reverse), residual blocks
    per level and the channel width of every level from the bottom up; refuses what the blocks do not model."""
    for key, allowed, default in (("attn_scales", ([],), []), *expect):
        config.expect(key, allowed, default)
    base, z = config.int("base_dim", 96), config.int("z_dim", 16)
    mult = config.ints("dim_mult", default=[1, 2, 4, 4])
    n = len(mult)
    down = config.get("temperal_downsample", [False, True, True])
    if not isinstance(down, list) or len(down) != n - 1 or not all(isinstance(v, bool) for v in down):
        raise config.error("temperal_downsample", f"expected {n - 1} true/false values (one per level of dim_mult "
                                                  "but the last)")
    dims = [base * m for m in [mult[-1]] + mult[::-1]]
    return z, n, down, down[::-1], config.int("num_res_blocks", 2), dims


@network("AutoencoderKLWan")
def wan_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLWan.decode: the pipeline's per-channel de-normalisation, post_quant_conv, WanDecoder3d."""
    z, n, down, up, res, dims = _wan_decoder_dims(config, (("is_residual", (False,), False),
                                                           ("decoder_base_dim", (None,), None),
                                                           ("patch_size", (None,), None)))
    spatial, temporal = 2 ** (n - 1), 2 ** sum(down)
    # AutoencoderKLWan._decode: post_quant_conv on z, then one decoder call per latent frame (iteration i) with
    # the convs' caches, each call's frames concatenated onto the video so far (`torch.cat([out, out_], 2)`); the
    # pipeline's de-normalisation and post_quant_conv are costed one latent frame at a time (the same total)
    ops = [op("chunk", "slice", sample, axis=2, start="i", stop="i + 1"),
           op("unscale", "scale", "chunk"),                                    # latents * std (per channel)
           parameter("latents_mean", [1, z, 1, 1, 1], learned=False),
           op("unshift", "add", ["unscale", "latents_mean"]),
           op("post_quant_conv", "conv3d", "unshift", out_channels=z, kernel=1),
           op("conv_in", "conv3d", "post_quant_conv", out_channels=dims[0], kernel=3, padding=1, cache=CACHE_T),
           block("mid_res0", "WanResBlock", "conv_in", {"cout": dims[0]}),
           block("mid_attn", "WanFrameAttention", "mid_res0"),
           block("mid_res1", "WanResBlock", "mid_attn", {"cout": dims[0]})]
    prev, width = "mid_res1", dims[0]
    for i, cout in enumerate(dims[1:]):
        # WanUpBlock: num_res_blocks + 1 residual blocks (the first changes the width, the upsampler before it
        # having halved it: a 1x1x1 shortcut), then the upsampler of the level (which halves the width)
        ops += [block(f"up{i}_res0", "WanResBlock", prev, {"cout": cout} | ({"shortcut": 1} if width != cout else {})),
                block(f"up{i}", "WanResBlock", f"up{i}_res0", {"cout": cout}, repeat=res)]
        prev, width = f"up{i}", cout
        if i != n - 1:
            ops.append(block(f"up{i}_us", "WanUpsampleTime" if up[i] else "WanUpsampleSpace", prev))
            prev, width = f"up{i}_us", cout // 2
    ops += [block("norm_out", "ChannelRMSNorm", prev), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv3d", "act_out", out_channels=config.int("out_channels", 3), kernel=3, padding=1,
               cache=CACHE_T),
            # the frames of the earlier calls (1 + temporal x (i - 1)) and this call's, into a new tensor
            op("earlier", "slice", "decoded", axis=2, start=0, stop=f"max(1, {temporal} * i - {temporal - 1})"),
            op("video", "concat", ["earlier", "conv_out"], axis=2)]
    facts = {"role": "decoder", "family": "ttv", "factor": spatial, "temporal": temporal, "latent_channels": z,
             "tiling": dict(WAN_TILING), "repeat": f"(frames - 1) / {temporal} + 1", "iteration": "i",
             "bind": {"T": f"(frames - 1) / {temporal} + 1"},
             "main_input": {sample: {"shape": ["B", z, "T", f"height / {spatial}", f"width / {spatial}"]}},
             "params": {"height": {"default": 480, "min": spatial, "help": "output height in pixels"},
                        "width": {"default": 832, "min": spatial, "help": "output width in pixels"},
                        "frames": {"default": 81, "min": 1, "help": "video frames decoded"}}}
    decoded = {"decoded": {"shape": ["B", config.int("out_channels", 3), "frames", "height", "width"]}}
    return Part(wan_vae_blocks(), decoded, ops, "video", facts)


# ----------------------------------------------------------------------------------------------- Qwen-Image


def qwen_vae_blocks() -> dict:
    """models/qwen-image.yaml's decoder blocks: the Wan 2.1 VAE on one frame (QwenImageDecoder3d), where the causal
    convolutions see one frame and the time upsamplers' convolutions do not run (their weights are stored); each
    causal conv clones its input's last frame into the feature cache that decode() passes (`cache: 1`)."""
    def rms(shape: list) -> dict:   # QwenImageRMS_norm: F.normalize over channels x sqrt(C) x gamma, no bias
        return {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("norm", "rms_norm", "x", affine=False), parameter("gamma", shape), op("out", "mul", ["norm", "gamma"])]}
    return {
        "ChannelRMSNorm": rms(["dim(x, 1)", 1, 1, 1]), "FrameRMSNorm": rms(["dim(x, 1)", 1, 1]),
        "ResBlock": {"args": {"cout": None}, "inputs": ["x"], "outputs": ["out"], "ops": [   # QwenImageResidualBlock
            op("shortcut", "conv3d", "x", out_channels="cout", kernel=1, when="dim(x, 1) != cout"),
            block("norm1", "ChannelRMSNorm", "x"), op("act1", "silu", "norm1"),
            op("conv1", "conv3d", "act1", out_channels="cout", kernel=3, padding=1, cache=1),
            block("norm2", "ChannelRMSNorm", "conv1"), op("act2", "silu", "norm2"),
            op("conv2", "conv3d", "act2", out_channels="cout", kernel=3, padding=1, cache=1),
            op("out", "add", ["shortcut", "conv2"])]},
        "VaeAttention": {"inputs": ["x"], "outputs": ["out"], "ops": [   # one head over the frame's pixels
            op("frames", "reshape", "x", shape=["d0 * d2", "d1", "d3", "d4"]),
            block("norm", "FrameRMSNorm", "frames"),
            op("to_qkv", "conv2d", "norm", out_channels="3 * dim(x, 1)", kernel=1),
            op("flat", "reshape", "to_qkv", shape=["d0", "d1", "d2 * d3"]),
            op("tokens", "transpose", "flat", perm=[0, 2, 1]),
            op("qkv", "split", "tokens", axis=-1, chunks=3),
            op("attn", "attention", ["qkv.0", "qkv.1", "qkv.2"], heads=1),
            op("channels_first", "transpose", "attn", perm=[0, 2, 1]),
            op("map", "reshape", "channels_first", shape=["d0", "d1", "dim(x, 3)", "dim(x, 4)"]),
            op("proj", "conv2d", "map", out_channels="dim(x, 1)", kernel=1),
            op("proj_5d", "reshape", "proj", shape=["dim(x, 0)", "d1", 1, "d2", "d3"]),
            op("out", "add", ["proj_5d", "x"])]},
        "Upsample": {"inputs": ["x"], "outputs": ["out"], "ops": [   # nearest-exact x2, Conv2d(C, C/2, 3)
            op("frames", "reshape", "x", shape=["d0 * d2", "d1", "d3", "d4"]),
            op("up", "upsample", "frames", scale=2),
            op("conv", "conv2d", "up", out_channels="dim(x, 1) / 2", kernel=3, padding=1),
            op("out", "reshape", "conv", shape=["dim(x, 0)", "d1", 1, "d2", "d3"])]},
        # upsample3d's time_conv (C -> 2C, kernel (3, 1, 1)): stored, not run on the first (only) frame
        "TimeConvWeights": {"inputs": ["x"], "outputs": ["out"], "ops": [
            parameter("weight", ["2 * dim(x, 1)", "dim(x, 1)", 3, 1, 1]), parameter("bias", ["2 * dim(x, 1)"]),
            op("out", "identity", "x")]},
        "UpBlock": {"args": {"cout": None, "layers": None, "upsample": 1, "time_conv": 0}, "inputs": ["x"],
                    "outputs": ["out"], "ops": [   # QwenImageUpBlock: layers + 1 residual blocks, the upsampler
            block("res0", "ResBlock", "x", {"cout": "cout"}),
            block("res1", "ResBlock", "res0", {"cout": "cout"}, repeat="layers"),
            block("time_conv", "TimeConvWeights", "res1", when="time_conv"),
            block("out", "Upsample", "time_conv", when="upsample")]},
    }


@network("AutoencoderKLQwenImage")
def qwen_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLQwenImage.decode on one frame (an image): de-normalisation, post_quant_conv,
    QwenImageDecoder3d."""
    z, n, down, up, res, dims = _wan_decoder_dims(config)
    spatial = 2 ** (n - 1)
    ops = [op("unscale", "scale", sample),          # latents / latents_std
           op("unshift", "scale", "unscale"),       # + latents_mean
           op("post_quant_conv", "conv3d", "unshift", out_channels=z, kernel=1),
           op("conv_in", "conv3d", "post_quant_conv", out_channels=dims[0], kernel=3, padding=1, cache=1),
           block("mid_res0", "ResBlock", "conv_in", {"cout": dims[0]}),
           block("mid_attn", "VaeAttention", "mid_res0"),
           block("mid_res1", "ResBlock", "mid_attn", {"cout": dims[0]})]
    prev = "mid_res1"
    for i, cout in enumerate(dims[1:]):
        last = i == n - 1
        args = {"cout": cout, "layers": res} | ({"upsample": 0} if last else {}) | \
            ({"time_conv": 1} if not last and up[i] else {})
        ops.append(block(f"up{i}", "UpBlock", prev, args))
        prev = f"up{i}"
    ops += [block("norm_out", "ChannelRMSNorm", prev), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv3d", "act_out", out_channels=config.int("out_channels", 3), kernel=3, padding=1,
               cache=1)]
    facts = {"role": "decoder", "factor": spatial, "latent_channels": z,
             # AutoencoderKLQwenImage.__init__: tile_sample_min_height/width 256, stride 192 (as AutoencoderKLWan)
             "tiling": dict(WAN_TILING),
             "main_input": {sample: {"shape": ["B", z, 1, f"height / {spatial}", f"width / {spatial}"]}},
             "params": {"height": {"default": 1328, "min": spatial, "help": "output height in pixels"},
                        "width": {"default": 1328, "min": spatial, "help": "output width in pixels"}}}
    return Part(qwen_vae_blocks(), {}, ops, "conv_out", facts)


# ------------------------------------------------------------------------------------------------ CogVideoX

# AutoencoderKLCogVideoX.__init__ (diffusers 0.42 autoencoder_kl_cogvideox.py): num_latent_frames_batch_size = 2,
# the latent frames of one decoder call (the first call takes the odd one too); not a config field
COG_FRAME_BATCH = 2
# CogVideoXDecoder3D: a mid block of num_layers=2 resnets, whatever the config
COG_MID_LAYERS = 2
# CogVideoXPipeline.__call__: num_frames 49 (the VAE config has no frame count)
COG_FRAMES = 49


def cog_vae_blocks(groups: int, layers: int) -> dict:
    """The blocks of models/cogvideox-2b.yaml's decoder (the reasons for each are in that file's comments)."""
    frame_conv = [op("frames_first", "transpose", "x", perm=[0, 2, 1, 3, 4]),
                  op("images", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
                  op("conv", "conv2d", "images", out_channels="dim(x, 1)", kernel=3, padding=1),
                  op("split_frames", "reshape", "conv", shape=["dim(x, 0)", "dim(x, 2)", "d1", "d2", "d3"]),
                  op("out", "transpose", "split_frames", perm=[0, 2, 1, 3, 4])]
    return {
        # CogVideoXSpatialNorm3D: GroupNorm(f) * conv_y(zq) + conv_b(zq), zq the latent interpolated to f's size
        "SpatialNorm": {"inputs": ["f", "zq"], "outputs": ["out"], "ops": [
            op("z_first", "slice", "zq", axis=2, start=0, stop=1),
            op("z_rest", "slice", "zq", axis=2, start=1, stop="dim(zq, 2)"),
            op("up_first", "upsample", "z_first", scale=[1, "dim(f, 3) / dim(zq, 3)", "dim(f, 4) / dim(zq, 4)"]),
            op("up_rest", "upsample", "z_rest", scale=["(dim(f, 2) - 1) / (dim(zq, 2) - 1)", "dim(f, 3) / dim(zq, 3)",
                                                       "dim(f, 4) / dim(zq, 4)"]),
            op("zq_f", "concat", ["up_first", "up_rest"], axis=2),
            op("conv_y", "conv3d", "zq_f", out_channels="dim(f, 1)", kernel=1, cache="dim(zq_f, 2)"),
            op("conv_b", "conv3d", "zq_f", out_channels="dim(f, 1)", kernel=1, cache="dim(zq_f, 2)"),
            op("norm", "group_norm", "f", groups=groups),
            op("scaled", "mul", ["norm", "conv_y"]), op("out", "add", ["scaled", "conv_b"])]},
        # CogVideoXResnetBlock3D with spatial norms; CogVideoXCausalConv3d: 2 frames before (cache 2)
        "CogResBlock": {"args": {"cout": None, "shortcut": 0}, "inputs": ["x", "zq"], "outputs": ["out"], "ops": [
            block("norm1", "SpatialNorm", ["x", "zq"]), op("act1", "silu", "norm1"),
            op("conv1", "conv3d", "act1", out_channels="cout", kernel=3, padding=1, cache=2),
            block("norm2", "SpatialNorm", ["conv1", "zq"]), op("act2", "silu", "norm2"),
            op("conv2", "conv3d", "act2", out_channels="cout", kernel=3, padding=1, cache=2),
            op("shortcut", "conv3d", "x", out_channels="cout", kernel=1, when="shortcut"),
            op("out", "add", ["shortcut", "conv2"])]},
        # CogVideoXUpsample3D with compress_time: t -> 2t - 1 (odd t: the first frame in space only) or 2t
        "UpsampleTime": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("x_first", "slice", "x", axis=2, start=0, stop=1),
            op("x_rest", "slice", "x", axis=2, start=1, stop="dim(x, 2)"),
            op("up_first", "upsample", "x_first", scale=["2 - dim(x, 2) % 2", 2, 2]),
            op("up_rest", "upsample", "x_rest", scale=[2, 2, 2]),
            op("up", "concat", ["up_first", "up_rest"], axis=2),
            block("block", "FrameConv", "up"), op("out", "identity", "block")]},
        "UpsampleSpace": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("up", "upsample", "x", scale=[1, 2, 2]), block("out", "FrameConv", "up")]},
        "FrameConv": {"inputs": ["x"], "outputs": ["out"], "ops": frame_conv},
        # CogVideoXUpBlock3D: layers_per_block + 1 resnets (the upsampler is placed by the decoder)
        "CogUpBlock": {"args": {"cout": None, "shortcut": 0}, "inputs": ["x", "zq"], "outputs": ["out"], "ops": [
            block("res0", "CogResBlock", ["x", "zq"], {"cout": "cout", "shortcut": "shortcut"}),
            block("res1", "CogResBlock", ["res0", "zq"], {"cout": "cout"}, repeat=layers),
            op("out", "identity", "res1")]},
    }


@network("AutoencoderKLCogVideoX")
def cogvideox_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLCogVideoX._decode as CogVideoXPipeline calls it (no tiling): the latents [B, T, C, h, w] in
    batches of 2 latent frames (the first takes T mod 2 more), one CogVideoXDecoder3D call each with the conv
    caches of the previous one (iteration i), the outputs concatenated."""
    for key, allowed, default in (("act_fn", ("silu",), "silu"), ("use_post_quant_conv", (False,), False)):
        config.expect(key, allowed, default)
    channels = config.ints("block_out_channels", default=[128, 256, 256, 512])
    n, z = len(channels), config.int("latent_channels", 16)
    if config.has("up_block_types") and config.strs("up_block_types", n) != ["CogVideoXUpBlock3D"] * n:
        raise config.error("up_block_types", "only CogVideoXUpBlock3D is supported (as CogVideoXDecoder3D)")
    groups, layers = groups_of(config, channels), config.int("layers_per_block", 3)
    ratio = config.get("temporal_compression_ratio", 4)
    levels = {1: 0, 2: 1, 4: 2, 8: 3}.get(ratio)
    if levels is None or levels > n - 1:
        raise config.error("temporal_compression_ratio", f"expected 1, 2, 4 or 8 (at most 2^{n - 1}), "
                                                         f"got {ratio}")
    spatial, temporal, pair = 2 ** (n - 1), int(ratio), COG_FRAME_BATCH
    dims = channels[::-1]
    ops = [op("batch_frames", "slice", sample, axis=1, start=f"{pair} * i + if(i > 0, T % {pair}, 0)",
              stop=f"{pair} * i + {pair} + T % {pair}"),
           op("channels_first", "transpose", "batch_frames", perm=[0, 2, 1, 3, 4]),
           op("z", "scale", "channels_first"),                            # latents / scaling_factor
           op("conv_in", "conv3d", "z", out_channels=dims[0], kernel=3, padding=1, cache=2),
           block("mid", "CogResBlock", ["conv_in", "z"], {"cout": dims[0]}, repeat=COG_MID_LAYERS)]
    prev, width = "mid", dims[0]
    for i, cout in enumerate(dims):
        ops.append(block(f"up{i}", "CogUpBlock", [prev, "z"], {"cout": cout} | ({"shortcut": 1} if width != cout
                                                                                 else {})))
        prev, width = f"up{i}", cout
        if i != n - 1:
            ops.append(block(f"up{i}_us", "UpsampleTime" if i < levels else "UpsampleSpace", prev))
            prev = f"up{i}_us"
    ops += [block("norm_out", "SpatialNorm", [prev, "z"]), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv3d", "act_out", out_channels=config.int("out_channels", 3), kernel=3, padding=1,
               cache=2),
            # torch.cat(dec, dim=2): each call's frames join those of the earlier calls
            op("earlier", "slice", "decoded", axis=2, start=0, stop=f"max(1, {pair * temporal} * i + T % {pair})"),
            op("video", "concat", ["earlier", "conv_out"], axis=2)]
    latent_frames = f"(frames - 1) / {temporal} + 1"
    facts = {"role": "decoder", "family": "ttv", "factor": spatial, "temporal": temporal, "latent_channels": z,
             "repeat": f"max(({latent_frames}) // {pair}, 1)", "iteration": "i",
             "bind": {"T": latent_frames},
             "main_input": {sample: {"shape": ["B", "T", z, f"height / {spatial}", f"width / {spatial}"]}},
             "params": {"height": {"default": config.int("sample_height", 480), "min": spatial,
                                   "help": "output height in pixels"},
                        "width": {"default": config.int("sample_width", 720), "min": spatial,
                                  "help": "output width in pixels"},
                        "frames": {"default": COG_FRAMES, "min": 1, "help": "video frames decoded"}}}
    decoded = {"decoded": {"shape": ["B", config.int("out_channels", 3), "frames", "height", "width"]}}
    return Part(cog_vae_blocks(groups, layers), decoded, ops, "video", facts)


# ------------------------------------------------------------------------------------------------------- LTX

# AutoencoderKLLTXVideo.__init__ (diffusers 0.42 autoencoder_kl_ltx.py): tile_sample_min_height/width 512,
# tile_sample_stride_height/width 448 for enable_tiling; not config fields
LTX_TILING = {"tile": 512, "stride": 448}


def ltx_vae_blocks() -> dict:
    """The blocks of models/ltx-video.yaml's decoder (the reasons for each are in that file's comments)."""
    width_changes = "dim(x, 1) != cout"
    return {
        "ChannelRMSNorm": {"args": {"affine": 0}, "inputs": ["x"], "outputs": ["out"], "ops": [
            op("channels_last", "transpose", "x", perm=[0, 2, 3, 4, 1], copy=False),
            op("norm", "rms_norm", "channels_last", affine="affine"),
            op("out", "transpose", "norm", perm=[0, 4, 1, 2, 3], copy=False)]},
        # LTXVideoResnetBlock3d (non-causal: one replicated frame each side, a padding-1 Conv3d in FLOPs and size)
        "LTXResBlock": {"args": {"cout": None}, "inputs": ["x"], "outputs": ["out"], "ops": [
            block("norm1", "ChannelRMSNorm", "x"), op("act1", "silu", "norm1"),
            op("conv1", "conv3d", "act1", out_channels="cout", kernel=3, padding=1),
            block("norm2", "ChannelRMSNorm", "conv1"), op("act2", "silu", "norm2"),
            op("conv2", "conv3d", "act2", out_channels="cout", kernel=3, padding=1),
            op("x_last", "transpose", "x", perm=[0, 2, 3, 4, 1], copy=False, when=width_changes),
            op("norm3", "layer_norm", "x_last", when=width_changes),
            op("x_first", "transpose", "norm3", perm=[0, 4, 1, 2, 3], copy=False, when=width_changes),
            op("shortcut", "conv3d", "x_first", out_channels="cout", kernel=1, when=width_changes),
            op("out", "add", ["shortcut", "conv2"])]},
        # LTXVideoUpsampler3d, stride (2, 2, 2): Conv3d(C, 8C, 3), depth-to-space, the first frame dropped
        "LTXUpsampler": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("conv", "conv3d", "x", out_channels="8 * dim(x, 1)", kernel=3, padding=1),
            op("sub_pixels", "reshape", "conv", shape=["dim(x, 0)", "dim(x, 1)", 2, 2, 2, "dim(x, 2)", "dim(x, 3)",
                                                       "dim(x, 4)"]),
            op("depth_to_space", "transpose", "sub_pixels", perm=[0, 1, 5, 2, 6, 3, 7, 4]),
            op("upsampled", "reshape", "depth_to_space", shape=["d0", "d1", "d2 * d3", "d4 * d5", "d6 * d7"]),
            op("out", "slice", "upsampled", axis=2, start=1, stop="dim(upsampled, 2)")]},
    }


@network("AutoencoderKLLTXVideo")
def ltx_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLLTXVideo.decode (0.9.0 decoder: non-causal, no timestep conditioning) after the pipeline's
    de-normalisation: conv_in, the mid block, the up blocks (a width-changing resnet, the 2x2x2 depth-to-space
    upsampler, resnets), RMSNorm, conv_out to colours x patch x patch, unpatchify; one pass over the whole video."""
    for key, allowed, default in (("timestep_conditioning", (False,), False), ("decoder_causal", (False,), False),
                                  ("patch_size_t", (1,), 1)):
        config.expect(key, allowed, default)
    channels = config.ints("decoder_block_out_channels", default=[128, 256, 512, 512])
    n = len(channels)
    layers = config.ints("decoder_layers_per_block", n + 1, default=[4, 3, 3, 3, 4])
    scaling = config.get("decoder_spatio_temporal_scaling", [True, True, True, False])
    if not isinstance(scaling, list) or len(scaling) != n or not all(isinstance(v, bool) for v in scaling):
        raise config.error("decoder_spatio_temporal_scaling", f"expected {n} true/false values (one per level)")
    for key, plain in (("decoder_inject_noise", False), ("upsample_residual", False), ("upsample_factor", 1)):
        value = config.get(key, [plain] * n)
        if not isinstance(value, list) or any(v != plain or isinstance(v, bool) != isinstance(plain, bool)
                                              for v in value):
            raise config.error(key, f"only {str(plain).lower()} at every level is supported (the LTX-Video 0.9.0 "
                                    "decoder)")
    z, p = config.int("latent_channels", 128), config.int("patch_size", 4)
    up = 2 ** sum(scaling)
    spatial, temporal = p * up, up
    dims, layers, scaling = channels[::-1], layers[::-1], scaling[::-1]
    # _denormalize_latents: latents * std / scaling_factor + mean (per channel)
    ops = [op("unscale", "scale", sample), parameter("latents_mean", [1, z, 1, 1, 1], learned=False),
           op("z", "add", ["unscale", "latents_mean"]),
           op("conv_in", "conv3d", "z", out_channels=dims[0], kernel=3, padding=1),
           block("mid", "LTXResBlock", "conv_in", {"cout": dims[0]}, repeat=layers[0])]
    prev, width = "mid", dims[0]
    for i, cout in enumerate(dims):
        if cout != width:   # LTXVideoUpBlock3d.conv_in: a resnet that changes the width
            ops.append(block(f"up{i}_in", "LTXResBlock", prev, {"cout": cout}))
            prev = f"up{i}_in"
        if scaling[i]:
            ops.append(block(f"up{i}_us", "LTXUpsampler", prev))
            prev = f"up{i}_us"
        ops.append(block(f"up{i}", "LTXResBlock", prev, {"cout": cout}, repeat=layers[i + 1]))
        prev, width = f"up{i}", cout
    colours = config.int("out_channels", 3)
    ops += [block("norm_out", "ChannelRMSNorm", prev), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv3d", "act_out", out_channels=colours * p * p, kernel=3, padding=1),
            # unpatchify: [B, C, 1, p, p, F, h, w] -> [B, C, F, p h, p w]
            op("patches", "reshape", "conv_out", shape=["d0", colours, 1, p, p, "d2", "d3", "d4"]),
            op("pixels_grid", "transpose", "patches", perm=[0, 1, 5, 2, 6, 4, 7, 3]),
            op("video", "reshape", "pixels_grid", shape=["d0", "d1", "d2 * d3", "d4 * d5", "d6 * d7"])]
    facts = {"role": "decoder", "family": "ttv", "factor": spatial, "temporal": temporal, "latent_channels": z,
             "tiling": dict(LTX_TILING), "bind": {"T": f"(frames - 1) / {temporal} + 1"},
             "main_input": {sample: {"shape": ["B", z, "T", f"height / {spatial}", f"width / {spatial}"]}},
             # LTXPipeline.__call__ defaults: 512 x 704, 161 frames
             "params": {"height": {"default": 512, "min": spatial, "help": "output height in pixels"},
                        "width": {"default": 704, "min": spatial, "help": "output width in pixels"},
                        "frames": {"default": 161, "min": 1, "help": "video frames decoded"}}}
    return Part(ltx_vae_blocks(), {}, ops, "video", facts)


# ----------------------------------------------------------------------------------------------------- Mochi

# AutoencoderKLMochi.__init__ (diffusers 0.42 autoencoder_kl_mochi.py): tile_sample_min_height/width 256,
# tile_sample_stride_height/width 192 for enable_tiling; MochiChunkedGroupNorm3D's num_groups = 32 (every resnet
# uses the default); not config fields
MOCHI_TILING = {"tile": 256, "stride": 192}
MOCHI_GROUPS = 32


def mochi_vae_blocks() -> dict:
    """The blocks of models/mochi-1.yaml's decoder (the reasons for each are in that file's comments)."""
    return {
        "FrameGroupNorm": {"inputs": ["x"], "outputs": ["out"], "ops": [
            op("frames_first", "transpose", "x", perm=[0, 2, 1, 3, 4]),
            op("images", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"]),
            op("norm", "group_norm", "images", groups=MOCHI_GROUPS),
            op("split_frames", "reshape", "norm", shape=["dim(x, 0)", "dim(x, 2)", "d1", "d2", "d3"]),
            op("out", "transpose", "split_frames", perm=[0, 2, 1, 3, 4], copy=False)]},
        "MochiResBlock": {"inputs": ["x"], "outputs": ["out"], "ops": [
            block("norm1", "FrameGroupNorm", "x"), op("act1", "silu", "norm1"),
            op("conv1", "conv3d", "act1", out_channels="dim(x, 1)", kernel=3, padding=1),
            block("norm2", "FrameGroupNorm", "conv1"), op("act2", "silu", "norm2"),
            op("conv2", "conv3d", "act2", out_channels="dim(x, 1)", kernel=3, padding=1),
            op("out", "add", ["x", "conv2"])]},
        # MochiUpBlock3D's expansion: a per-voxel Linear(C, cout * st * s * s), depth-to-space (time x st, space x s)
        "DepthToSpace": {"args": {"cout": None, "st": None, "s": 2}, "inputs": ["x"], "outputs": ["out"], "ops": [
            op("channels_last", "transpose", "x", perm=[0, 2, 3, 4, 1]),
            op("proj", "linear", "channels_last", out_features="cout * st * s * s"),
            op("channels_first", "transpose", "proj", perm=[0, 4, 1, 2, 3], copy=False),
            op("sub_voxels", "reshape", "channels_first", shape=["d0", "cout", "st", "s", "s", "d2", "d3", "d4"]),
            op("interleave", "transpose", "sub_voxels", perm=[0, 1, 5, 2, 6, 3, 7, 4]),
            op("out", "reshape", "interleave", shape=["d0", "d1", "d2 * d3", "d4 * d5", "d6 * d7"])]},
    }


@network("AutoencoderKLMochi")
def mochi_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLMochi.decode (one pass, no tiling or frame-wise decoding) after MochiPipeline's de-normalisation:
    MochiDecoder3D's 1x1x1 conv_in, resnets and depth-to-space up blocks, SiLU and the per-voxel proj_out, then the
    first temporal - 1 frames dropped (drop_last_temporal_frames)."""
    for key, allowed, default in (("act_fn", ("silu",), "silu"),):
        config.expect(key, allowed, default)
    channels = config.ints("decoder_block_out_channels", default=[128, 256, 512, 768])
    n = len(channels)
    layers = config.ints("layers_per_block", n + 1, default=[3, 3, 4, 6, 3])
    st = config.ints("temporal_expansions", n - 1, default=[1, 2, 3])
    ss = config.ints("spatial_expansions", n - 1, default=[2, 2, 2])
    for c in channels:
        if c % MOCHI_GROUPS:
            raise config.error("decoder_block_out_channels", f"{MOCHI_GROUPS} groups do not divide {c} channels")
    z = config.int("latent_channels", 12)
    spatial, temporal = 1, 1
    for a, b in zip(st, ss):
        temporal, spatial = temporal * a, spatial * b
    ops = [op("unscale", "scale", sample), parameter("latents_mean", [1, z, 1, 1, 1], learned=False),
           op("z", "add", ["unscale", "latents_mean"]),
           op("conv_in", "conv3d", "z", out_channels=channels[-1], kernel=1),
           block("block_in", "MochiResBlock", "conv_in", repeat=layers[-1])]
    prev = "block_in"
    for i in range(n - 1):
        ops += [block(f"up{i}", "MochiResBlock", prev, repeat=layers[-i - 2]),
                block(f"up{i}_d2s", "DepthToSpace", f"up{i}", {"cout": channels[-i - 2], "st": st[-i - 1]} |
                      ({"s": ss[-i - 1]} if ss[-i - 1] != 2 else {}))]
        prev = f"up{i}_d2s"
    ops += [block("block_out", "MochiResBlock", prev, repeat=layers[0]), op("act_out", "silu", "block_out"),
            op("out_last", "transpose", "act_out", perm=[0, 2, 3, 4, 1]),
            op("proj_out", "linear", "out_last", out_features=config.int("out_channels", 3)),
            op("pixels", "transpose", "proj_out", perm=[0, 4, 1, 2, 3]),
            # drop_last_temporal_frames: the first temporal - 1 of the temporal x T decoded frames go
            op("video", "slice", "pixels", axis=2, start=temporal - 1, stop="dim(pixels, 2)")]
    facts = {"role": "decoder", "family": "ttv", "factor": spatial, "temporal": temporal, "latent_channels": z,
             "tiling": dict(MOCHI_TILING), "bind": {"T": f"(frames - 1) / {temporal} + 1"},
             "main_input": {sample: {"shape": ["B", z, "T", f"height / {spatial}", f"width / {spatial}"]}},
             # MochiPipeline: default_height 480, default_width 848, num_frames 19 = 3 latent frames of the 6x VAE
             # (3 latent frames of this VAE's temporal factor)
             "params": {"height": {"default": 480, "min": spatial, "help": "output height in pixels"},
                        "width": {"default": 848, "min": spatial, "help": "output width in pixels"},
                        "frames": {"default": 3 * temporal + 1, "min": 1, "help": "video frames decoded"}}}
    return Part(mochi_vae_blocks(), {}, ops, "video", facts)


# ---------------------------------------------------------------------------------------------- HunyuanVideo

# AutoencoderKLHunyuanVideo.__init__ (diffusers 0.42 autoencoder_kl_hunyuan_video.py): use_framewise_decoding on,
# tile_sample_min_num_frames 16 and tile_sample_stride_num_frames 12 (temporal tiles of the decode), spatial
# tile_sample_min_height/width 256 and stride 192 for enable_tiling; not config fields
HUNYUAN_TILE_FRAMES, HUNYUAN_TILE_STRIDE = 16, 12
HUNYUAN_TILING = {"tile": 256, "stride": 192}


def hunyuan_vae_blocks(groups: int, layers: int) -> dict:
    """The blocks of models/hunyuanvideo.yaml's decoder (the reasons for each are in that file's comments)."""
    return {
        "ResBlock": {"args": {"cout": None, "shortcut": 0}, "inputs": ["x"], "outputs": ["out"],
                     "ops": vae_res_ops(groups, "conv3d", "shortcut")},
        "VaeAttention": {"inputs": ["x"], "outputs": ["out"], "ops": [   # one head over the tile's pixels
            op("norm", "group_norm", "x", groups=groups),
            op("flat", "reshape", "norm", shape=["d0", "d1", "d2 * d3 * d4"]),
            op("tokens", "transpose", "flat", perm=[0, 2, 1])] +
            [op(n, "linear", "tokens", out_features="dim(x, 1)") for n in ("q", "k", "v")] + [
            op("attn", "attention", ["q", "k", "v"], heads=1), op("o", "linear", "attn", out_features="dim(x, 1)"),
            op("channels_first", "transpose", "o", perm=[0, 2, 1]),
            op("map", "reshape", "channels_first", shape=["d0", "d1", "dim(x, 2)", "dim(x, 3)", "dim(x, 4)"]),
            op("out", "add", ["map", "x"])]},
        # HunyuanVideoUpsampleCausal3D: nearest x2 in space (and in time but for the first frame), causal conv
        "Upsample": {"args": {"time": 0}, "inputs": ["x"], "outputs": ["out"], "ops": [
            op("up_all", "upsample", "x", scale=["1 + time", 2, 2]),
            op("up", "slice", "up_all", axis=2, start=1, stop="dim(up_all, 2)", when="time"),
            op("out", "conv3d", "up", out_channels="dim(x, 1)", kernel=3, padding=1)]},
        # HunyuanVideoUpBlock3D: layers_per_block + 1 resnets, then the optional upsampler
        "UpBlock": {"args": {"cout": None, "upsample": 1, "time": 0, "shortcut": 0}, "inputs": ["x"],
                    "outputs": ["out"], "ops": [
            block("res0", "ResBlock", "x", {"cout": "cout", "shortcut": "shortcut"}),
            block("res1", "ResBlock", "res0", {"cout": "cout"}, repeat=layers),
            block("out", "Upsample", "res1", {"time": "time"}, when="upsample")]},
    }


@network("AutoencoderKLHunyuanVideo")
def hunyuan_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLHunyuanVideo.decode as HunyuanVideoPipeline calls it (frame-wise decoding on, no spatial
    tiling): latents / scaling_factor, then one HunyuanVideoDecoder3D call per temporal tile (iteration i), each of
    16 / r + 1 latent frames starting every 12 / r; post_quant_conv, conv_in, the mid block (resnet, one-head
    attention, resnet), the up blocks, GroupNorm, SiLU, conv_out."""
    for key, allowed, default in (("act_fn", ("silu",), "silu"), ("temporal_compression_ratio", (4,), 4),
                                  ("mid_block_add_attention", (True,), True)):
        config.expect(key, allowed, default)
    channels = config.ints("block_out_channels", default=[128, 256, 512, 512])
    n, z = len(channels), config.int("latent_channels", 16)
    groups, layers = groups_of(config, channels), config.int("layers_per_block", 2)
    spatial = config.int("spatial_compression_ratio", 8)
    space_levels = {2: 1, 4: 2, 8: 3, 16: 4}.get(spatial)
    if space_levels is None or space_levels > n - 1:
        raise config.error("spatial_compression_ratio", f"expected a power of two up to 2^{n - 1}, got {spatial}")
    temporal, time_levels = 4, 2   # the only ratio HunyuanVideoDecoder3D builds: 2 time upsamplers
    tile, stride = HUNYUAN_TILE_FRAMES // temporal + 1, HUNYUAN_TILE_STRIDE // temporal
    dims = channels[::-1]
    ops = [op("z", "scale", sample),                                   # latents / scaling_factor
           # tiles walked last to first, so the last iteration (which sizes the stage's memory) is a full tile
           op("tile", "slice", "z", axis=2, start=f"{stride} * (tiles - 1 - i)",
              stop=f"{stride} * (tiles - 1 - i) + {tile}"),
           op("post_quant_conv", "conv3d", "tile", out_channels=z, kernel=1),
           op("conv_in", "conv3d", "post_quant_conv", out_channels=dims[0], kernel=3, padding=1),
           block("mid_res0", "ResBlock", "conv_in", {"cout": dims[0]}),
           block("mid_attn", "VaeAttention", "mid_res0"),
           block("mid_res1", "ResBlock", "mid_attn", {"cout": dims[0]})]
    prev, width = "mid_res1", dims[0]
    for i, cout in enumerate(dims):
        space = i < space_levels
        time = n - 1 - time_levels <= i < n - 1
        if time and not space:
            raise config.error("spatial_compression_ratio", "a level that upsamples time but not space is not "
                                                            "supported")
        args = {"cout": cout} | ({} if space else {"upsample": 0}) | ({"time": 1} if time else {}) | \
            ({"shortcut": 1} if width != cout else {})
        ops.append(block(f"up{i}", "UpBlock", prev, args))
        prev, width = f"up{i}", cout
    ops += [op("norm_out", "group_norm", prev, groups=groups), op("act_out", "silu", "norm_out"),
            op("conv_out", "conv3d", "act_out", out_channels=config.int("out_channels", 3), kernel=3, padding=1)]
    latent_frames = f"(frames - 1) / {temporal} + 1"
    tiles = f"(({latent_frames}) + {stride - 1}) // {stride}"
    facts = {"role": "decoder", "family": "ttv", "factor": spatial, "temporal": temporal, "latent_channels": z,
             "tiling": dict(HUNYUAN_TILING), "repeat": tiles, "iteration": "i",
             "bind": {"T": latent_frames, "tiles": tiles},
             "main_input": {sample: {"shape": ["B", z, "T", f"height / {spatial}", f"width / {spatial}"]}},
             # HunyuanVideoPipeline.__call__: 720 x 1280, 129 frames
             "params": {"height": {"default": 720, "min": spatial, "help": "output height in pixels"},
                        "width": {"default": 1280, "min": spatial, "help": "output width in pixels"},
                        "frames": {"default": 129, "min": 1, "help": "video frames decoded"}}}
    return Part(hunyuan_vae_blocks(groups, layers), {}, ops, "conv_out", facts)
