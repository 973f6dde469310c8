"""Video VAE decoders of the 2025 pipelines: AutoencoderKLWan (Wan 2.1; models/wan21-1.3b.yaml, wan21-14b.yaml), in
the module order of diffusers' AutoencoderKLWan.decode / WanDecoder3d / WanResidualBlock / WanAttentionBlock /
WanResample. Only the decoder runs in text-to-video (the encoder is never called)."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op, parameter

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


@network("AutoencoderKLWan")
def wan_vae(config: Config, sample: str = "latents") -> Part:
    """AutoencoderKLWan.decode: the pipeline's per-channel de-normalisation, post_quant_conv, WanDecoder3d."""
    for key, allowed, default in (("attn_scales", ([],), []), ("is_residual", (False,), False),
                                  ("decoder_base_dim", (None,), None), ("patch_size", (None,), None)):
        config.expect(key, allowed, default)
    base, z = config.int("base_dim", 96), config.int("z_dim", 16)
    mult = config.ints("dim_mult", default=[1, 2, 4, 4])
    n = len(mult)
    down = config.get("temperal_downsample", [False, True, True])
    if not isinstance(down, list) or len(down) != n - 1 or not all(isinstance(v, bool) for v in down):
        raise config.error("temperal_downsample", f"expected {n - 1} true/false values (one per level of dim_mult "
                                                  "but the last)")
    res = config.int("num_res_blocks", 2)
    up = down[::-1]   # WanDecoder3d's temperal_upsample
    dims = [base * m for m in [mult[-1]] + mult[::-1]]
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
    for key, allowed, default in (("attn_scales", ([],), []),):
        config.expect(key, allowed, default)
    base, z = config.int("base_dim", 96), config.int("z_dim", 16)
    mult = config.ints("dim_mult", default=[1, 2, 4, 4])
    n = len(mult)
    down = config.get("temperal_downsample", [False, True, True])
    if not isinstance(down, list) or len(down) != n - 1 or not all(isinstance(v, bool) for v in down):
        raise config.error("temperal_downsample", f"expected {n - 1} true/false values (one per level of dim_mult "
                                                  "but the last)")
    res, up = config.int("num_res_blocks", 2), down[::-1]
    dims = [base * m for m in [mult[-1]] + mult[::-1]]
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
