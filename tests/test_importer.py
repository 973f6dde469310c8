"""`python -m simulator import`: configs of the built-in models import to the built-in models, configs with other
layer counts, heads and widths match the reference implementation's counts, and bad configs are one-line errors.

The configs in tests/data/configs/ were written by diffusers' `save_config` (models and pipelines, model_index.json)
and transformers' `config.save_pretrained` (with `architectures`, as `save_pretrained` writes it) from models built
on the meta device, by tools/refcounts/save_configs.py (torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.24.0).
"""
import json
import shutil

import pytest

from simulator import load_model
from simulator.cli import main
from simulator.errors import SpecError
from simulator.importer import import_model, import_to_file, supported, to_yaml

from reference import close, stage
from test_corpus import DATA

CONFIGS = DATA / "configs"


def imported(tmp_path, source, overrides=None, name="imported.yaml"):
    out = tmp_path / name
    import_to_file(str(source), str(out))
    return load_model(str(out), overrides or {}, attention="math")


def assert_same(ours, builtin, sampler_differs=False):
    """Same parameters and the same FLOPs in every category (matrix and vector units) in every stage. Where the
    built-in spells out its scheduler's arithmetic (DDPM for DiT, DPM-Solver for PixArt), the importer's one-update
    sampler differs by a few elementwise ops per step: there the matrix FLOPs are equal and the rest within 0.01 %."""
    assert [s.name for s in ours.stages] == [s.name for s in builtin.stages]
    assert ours.param_count == builtin.param_count
    for a, b in zip(ours.stages, builtin.stages):
        assert a.params == b.params, a.name
        assert a.repeat == b.repeat, a.name
        # every call of a stage whose shapes change per call (a video decoder's latent frames), else the one
        calls = range(a.repeat) if any(o.per_iteration for o in a.ops) else [0]
        for i in calls:
            assert a.flops_by_category(i) == pytest.approx(b.flops_by_category(i), rel=1e-12), (a.name, i)
            rel = 1e-4 if sampler_differs and a.name == "denoiser" else 1e-12
            assert a.flops_by_category(i, unit=None) == pytest.approx(b.flops_by_category(i, unit=None), rel=rel), \
                (a.name, i)


# ------------------------------------------------------------------------------ round trips of the built-in models
# whole models: a pipeline folder (model_index.json) or a causal LM's config.json -> the built-in file, at its
# defaults and at one other workload
ROUND_TRIPS = {
    "sd15": {"height": 768, "width": 640, "cfg": False},
    "sd21": {"batch": 2, "steps": 20},
    "sdxl": {"height": 768, "width": 768},
    "pixart-alpha": {"height": 512, "width": 768},
    "sd3-medium": {"text_tokens": 128, "cfg": False},
    "flux1-dev": {"height": 768, "width": 1360},
    "modelscope-t2v": {"frames": 24, "batch": 2},
    "llama2-7b": {"prompt_tokens": 128, "output_tokens": 3},
    "llama2-70b": {"prompt_tokens": 64, "output_tokens": 2},
    "llama3-8b": {"batch": 4, "prompt_tokens": 100, "output_tokens": 2},
    "mixtral-8x7b": {"prompt_tokens": 128, "output_tokens": 3},
    "wan21-1.3b": {"height": 720, "width": 1280, "frames": 33, "cfg": False},
    "wan21-14b": {"batch": 2, "frames": 17, "steps": 4},
    "qwen-image": {"height": 1024, "width": 768, "text_tokens": 256, "cfg": False},
    # an even number of latent frames (8): the CogVideoX decoder's frame batches all of 2
    "cogvideox-2b": {"height": 320, "width": 512, "frames": 29, "batch": 2},
    "ltx-video": {"height": 480, "width": 832, "frames": 97, "cfg": False},
    # true CFG on (a doubled transformer batch and negative prompts), 4 temporal tiles of the decoder
    "hunyuanvideo": {"height": 544, "width": 960, "frames": 61, "cfg": True, "text_tokens": 128},
}
SAMPLER_DIFFERS = {"dit-xl-2", "pixart-alpha"}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_imported_builtin_equals_builtin(tmp_path, name):
    source = CONFIGS / name
    model = imported(tmp_path, source)
    builtin = load_model(name, attention="math")
    assert model.params == builtin.params   # the workload defaults come from the config and the pipeline
    assert_same(model, builtin, name in SAMPLER_DIFFERS)
    other = ROUND_TRIPS[name]
    assert_same(imported(tmp_path, source, other, "other.yaml"), load_model(name, other, attention="math"),
                name in SAMPLER_DIFFERS)


@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_imported_vae_tiles_as_the_builtin(tmp_path, name):
    """The decoder's tile geometry comes from the VAE config's sample_size (diffusers AutoencoderKL tiling)."""
    overrides = {"vae_tiling": True, "height": 2048, "width": 1536}
    ours = imported(tmp_path, CONFIGS / name)
    assert ours.stages[-1].name == "decoder"
    from simulator import run
    a = run(str(tmp_path / "imported.yaml"), "a100", overrides)
    b = run(name, "a100", overrides)
    assert a.time_s == pytest.approx(b.time_s, rel=1e-9)
    assert a.peak_memory_bytes == b.peak_memory_bytes


def test_imported_dit_pipeline_equals_builtin(tmp_path):
    """DiTPipeline runs 50 steps by default; the built-in DiT takes the paper's 250 (sample.py): the same otherwise."""
    model = imported(tmp_path, CONFIGS / "dit-xl-2")
    assert model.params["steps"] == 50
    for overrides in ({}, {"height": 512, "width": 512}):
        ours = imported(tmp_path, CONFIGS / "dit-xl-2", {"steps": 250, **overrides}, "dit.yaml")
        assert_same(ours, load_model("dit-xl-2", overrides, attention="math"), sampler_differs=True)


def test_imported_sd35_pipeline_equals_builtin(tmp_path):
    """SD 3.5 Large is a StableDiffusion3Pipeline like SD3 Medium; its model card loads it in bfloat16, which no
    config field says (the importer takes the pipeline's fp16): the same model with dtype set."""
    for overrides in ({}, {"height": 768, "width": 768, "text_tokens": 77}):
        ours = imported(tmp_path, CONFIGS / "sd35-large", {"dtype": "bf16", **overrides}, "sd35.yaml")
        builtin = load_model("sd35-large", overrides, attention="math")
        assert ours.params == builtin.params
        assert_same(ours, builtin)


@pytest.mark.parametrize("name, settings, other", [
    # the CogVideoX-5b model card runs it in bfloat16 (CogVideoXPipeline's example: the 2B model in float16)
    ("cogvideox-5b", {"dtype": "bf16"}, {"frames": 17, "batch": 2}),
    # the built-in Mochi runs the genmo reference's 163 frames; MochiPipeline's default is 19
    ("mochi-1", {"frames": 163}, {"frames": 85, "width": 640, "cfg": False}),
])
def test_imported_pipeline_with_model_card_settings(tmp_path, name, settings, other):
    """Pipelines whose built-in model takes a setting no config field holds: the same model with it set."""
    for overrides in ({}, other):
        ours = imported(tmp_path, CONFIGS / name, settings | overrides, f"{name}.yaml")
        builtin = load_model(name, overrides, attention="math")
        assert ours.params == builtin.params
        assert_same(ours, builtin)


# one network per class: a single config.json -> a one-stage model, against the built-in model's stage.
# (config, overrides of the imported model, built-in model, its stage, its overrides)
SINGLE = {
    "UNet2DConditionModel": ("sd15/unet", {"batch": 2}, "sd15", "denoiser", {}),  # CFG: batch 2
    "UNet2DConditionModel-xl": ("sdxl/unet", {"batch": 2, "height": 768, "width": 768}, "sdxl", "denoiser",
                                {"height": 768, "width": 768}),
    "AutoencoderKL": ("sd15/vae", {"height": 512, "width": 512}, "sd15", "decoder", {}),
    "CLIPTextModel": ("sd21/text_encoder", {"batch": 2}, "sd21", "text_encoder", {}),
    "CLIPTextModelWithProjection": ("sdxl/text_encoder_2", {}, "sdxl", "text_encoder_2", {}),
    "T5EncoderModel": ("pixart-alpha/text_encoder", {"batch": 2, "text_tokens": 120}, "pixart-alpha",
                       "text_encoder", {}),
    "DiTTransformer2DModel": ("dit-xl-2/transformer", {"batch": 2, "height": 512, "width": 512}, "dit-xl-2",
                              "denoiser", {"height": 512, "width": 512}),
    "PixArtTransformer2DModel": ("pixart-alpha/transformer", {"batch": 2}, "pixart-alpha", "denoiser", {}),
    # SD3: the joint text sequence is 77 CLIP + text_tokens T5 tokens in the built-in pipeline
    "SD3Transformer2DModel": ("sd3-medium/transformer", {"batch": 2, "text_tokens": 77 + 256}, "sd3-medium",
                              "denoiser", {}),
    "FluxTransformer2DModel": ("flux1-dev/transformer", {}, "flux1-dev", "denoiser", {}),  # guidance-distilled
    "CogVideoXTransformer3DModel": ("cogvideox-2b/transformer", {"batch": 2}, "cogvideox-2b", "denoiser", {}),
    "CogVideoXTransformer3DModel-rope": ("cogvideox-5b/transformer", {"batch": 2, "frames": 25, "height": 320,
                                         "width": 512}, "cogvideox-5b", "denoiser",
                                         {"frames": 25, "height": 320, "width": 512}),
    # WanPipeline runs the conditional and unconditional passes as two calls of batch 1
    "WanTransformer3DModel": ("wan21-1.3b/transformer", {}, "wan21-1.3b", "denoiser", {}),
    "WanTransformer3DModel-14b": ("wan21-14b/transformer", {"height": 720, "width": 1280, "frames": 33},
                                  "wan21-14b", "denoiser", {"height": 720, "width": 1280, "frames": 33}),
    "LTXVideoTransformer3DModel": ("ltx-video/transformer", {"batch": 2}, "ltx-video", "denoiser", {}),
    # the built-in Mochi runs the genmo reference's 163 frames; MochiPipeline's default is 19
    "MochiTransformer3DModel": ("mochi-1/transformer", {"batch": 2, "frames": 163}, "mochi-1", "denoiser", {}),
    "HunyuanVideoTransformer3DModel": ("hunyuanvideo/transformer", {}, "hunyuanvideo", "denoiser", {}),
    "QwenImageTransformer2DModel": ("qwen-image/transformer", {"batch": 2}, "qwen-image", "denoiser", {}),
    "UNet3DConditionModel": ("modelscope-t2v/unet", {"batch": 2}, "modelscope-t2v", "denoiser", {}),
    "AutoencoderKL-16ch": ("sd3-medium/vae", {"height": 1024, "width": 1024}, "sd3-medium", "decoder", {}),
    "AutoencoderKLWan": ("wan21-1.3b/vae", {}, "wan21-1.3b", "decoder", {}),
    "UMT5EncoderModel": ("wan21-14b/text_encoder", {}, "wan21-14b", "text_encoder", {}),
    "AutoencoderKLQwenImage": ("qwen-image/vae", {"height": 1024, "width": 768}, "qwen-image", "decoder",
                               {"height": 1024, "width": 768}),
    # only the language model of Qwen2.5-VL runs (the vision tower sees no image); CFG: batch 2
    "Qwen2_5_VLForConditionalGeneration": ("qwen-image/text_encoder", {"batch": 2}, "qwen-image", "text_encoder",
                                           {}),
    "AutoencoderKLCogVideoX": ("cogvideox-2b/vae", {}, "cogvideox-2b", "decoder", {}),
    "AutoencoderKLLTXVideo": ("ltx-video/vae", {}, "ltx-video", "decoder", {}),
    "AutoencoderKLMochi": ("mochi-1/vae", {"frames": 163}, "mochi-1", "decoder", {}),
    "AutoencoderKLHunyuanVideo": ("hunyuanvideo/vae", {}, "hunyuanvideo", "decoder", {}),
    # HunyuanVideo's Llama encoder runs the 95-token template prefix before the 256 prompt tokens
    "LlamaModel": ("hunyuanvideo/text_encoder", {"text_tokens": 95 + 256}, "hunyuanvideo", "text_encoder", {}),
    "CLIPTextModel-pooled": ("hunyuanvideo/text_encoder_2", {}, "hunyuanvideo", "text_encoder_2", {}),
}


@pytest.mark.parametrize("case", list(SINGLE))
def test_single_config_equals_builtin_stage(tmp_path, case):
    folder, overrides, name, stage_name, builtin_overrides = SINGLE[case]
    model = imported(tmp_path, CONFIGS / folder / "config.json", overrides)
    assert len(model.stages) == 1
    ours, theirs = model.stages[0], stage(load_model(name, builtin_overrides, attention="math"), stage_name)
    assert ours.params == theirs.params
    # matrix-unit FLOPs: the network's own work (the built-in stage adds CFG and sampler arithmetic around it)
    assert ours.flops_by_category() == pytest.approx(theirs.flops_by_category(), rel=1e-12)
    if any(o.per_iteration for o in ours.ops):   # a decoder called once per latent frame: every call
        assert ours.repeat == theirs.repeat
        for i in range(1, ours.repeat):
            assert ours.flops_by_category(i) == pytest.approx(theirs.flops_by_category(i), rel=1e-12)


def test_a_folder_with_config_json_is_that_config(tmp_path):
    assert_same(imported(tmp_path, CONFIGS / "llama2-7b"), imported(tmp_path, CONFIGS / "llama2-7b" / "config.json",
                                                                     name="file.yaml"))


# ------------------------------------------------------------------------- changed configs against their counts
# tools/refcounts/save_configs.py built each mutated config (tests/data/configs/mutated/) on the meta device and
# counted it with torch.utils.flop_counter.FlopCounterMode (math attention: diffusers AttnProcessor, transformers
# attn_implementation="eager"); params = sum of parameter numel. (conv, linear, attention) FLOPs, 1 MAC = 2 FLOPs.
MUTATED = {
    # SD 1.5 UNet with block_out_channels (64, 128, 192, 192), layers_per_block 1, 4 heads, cross_attention_dim 256,
    # 16 groups; sample [2, 4, 32, 32] (256 px), context [2, 77, 256]
    "unet": ({"batch": 2, "height": 256, "width": 256}, 15_121_924,
             (4_985_716_736, 2_578_448_384, 2_037_473_280)),
    # SDXL UNet with block_out_channels (64, 128, 256), transformer_layers_per_block (1, 3, 2), heads (2, 4, 8),
    # cross_attention_dim 512, 16 groups; sample [2, 4, 32, 32], context [2, 77, 512], text_embeds [2, 512]
    "unet-xl": ({"batch": 2, "height": 256, "width": 256}, 39_469_444,
                (8_130_658_304, 10_102_767_616, 1_531_183_104)),
    # SD VAE with three levels (64, 128, 128), layers_per_block 1, 8 latent channels, 16 groups; vae.decode(z),
    # z [1, 8, 32, 32] (a 4x VAE: 128 px); params = decoder + post_quant_conv
    "vae": ({"height": 128, "width": 128}, 2_340_299, (19_671_416_832, 134_217_728, 536_870_912)),
    # CLIP text model with hidden 384, MLP 1000, 5 layers, 6 heads, gelu; input_ids [2, 77]
    "clip": ({"batch": 2}, 25_814_408, (0, 2_091_048_960, 91_069_440)),
    # DiT with 6 heads of 48, 3 layers, 100 classes, exact GELU; hidden_states [2, 4, 16, 16] (128 px), timestep and
    # class_labels [2]. As the built-in DiT, the original model's counts: diffusers' params less the per-block
    # copies of the shared embedders plus the pos_embed parameter, its linear FLOPs less the per-block re-evaluations
    "dit": ({"batch": 2, "height": 128, "width": 128}, 4_877_312, (1_179_648, 774_033_408, 28_311_552)),
    # PixArt with 4 heads of 48, 3 layers, cross_attention_dim 192, caption_channels 256 (micro-conditions on:
    # sample_size 128); hidden_states [2, 4, 32, 32], encoder_hidden_states [2, 120, 256]
    "pixart": ({"batch": 2, "height": 256, "width": 256, "text_tokens": 120}, 2_226_592,
               (3_145_728, 1_740_668_928, 443_547_648)),
    # SD3 MMDiT with 3 layers, 6 heads of 32, joint_attention_dim 256, pooled 128; hidden_states [2, 16, 32, 32],
    # encoder_hidden_states [2, 100, 256] (default JointAttnProcessor2_0: sdpa decomposes to bmm on meta)
    "sd3": ({"batch": 2, "height": 256, "width": 256, "text_tokens": 100}, 3_813_952,
            (12_582_912, 1_794_932_736, 583_999_488)),
    # the same with qk_norm rms_norm (SD 3.5): per-head RMSNorm weights on q and k of both streams
    "sd35": ({"batch": 2, "height": 256, "width": 256, "text_tokens": 100}, 3_814_336,
             (12_582_912, 1_794_932_736, 583_999_488)),
    # Flux with 2 double and 3 single blocks, 4 heads of 32, rotary axes (8, 12, 12), no guidance embedding;
    # hidden_states [1, 256, 64] (256 px: 16 x 16 packed tokens), encoder_hidden_states [1, 64, 256]
    "flux": ({"height": 256, "width": 256, "text_tokens": 64}, 2_090_112, (0, 643_031_040, 262_144_000)),
    # CogVideoX with 4 heads of 32, 2 layers, 3-D RoPE, text_embed_dim 256, time_embed_dim 64; hidden_states
    # [2, 4, 16, 16, 16] (13 frames at 128 px), encoder_hidden_states [2, 50, 256], RoPE tables [256, 32] x 2
    "cogvideox": ({"batch": 2, "height": 128, "width": 128, "frames": 13, "text_tokens": 50}, 675_520,
                  (8_388_608, 497_139_712, 191_766_528)),
    # Wan with 4 heads of 32, ffn 300, 2 layers, text_dim 256, freq_dim 64; hidden_states [1, 16, 5, 16, 16]
    # (17 frames at 128 px), encoder_hidden_states [1, 64, 256] (WanAttnProcessor: sdpa decomposes to bmm on meta)
    "wan": ({"height": 128, "width": 128, "frames": 17, "text_tokens": 64}, 611_864,
            (5_242_880, 244_301_824, 125_829_120)),
    # LTX-Video with 4 heads of 32, 2 layers, cross_attention_dim 128, caption_channels 256, 32 latent channels;
    # hidden_states [2, 48, 32] (17 frames at 128 px: 3 x 4 x 4 latent tokens), encoder_hidden_states [2, 64, 256]
    "ltx": ({"batch": 2, "height": 128, "width": 128, "frames": 17, "text_tokens": 64}, 736_672,
            (0, 119_603_200, 11_010_048)),
    # Mochi with 4 heads of 32, 3 layers, text stream 96 wide, text_embed_dim 256, time_embed_dim 64;
    # hidden_states [2, 12, 3, 16, 16] (13 frames at 128 px), encoder_hidden_states [2, 64, 256]; attention without
    # the 73,728 FLOPs of the RoPE table's einsum (a bmm outside the attention modules)
    "mochi": ({"batch": 2, "height": 128, "width": 128, "frames": 13, "text_tokens": 64}, 1_508_080,
              (4_718_592, 571_981_824, 201_459_712)),
    # HunyuanVideo with 4 heads of 32, 2 dual + 3 single blocks, 1 refiner block, text_embed_dim 256, pooled 96,
    # rotary axes (8, 12, 12); hidden_states [1, 16, 5, 16, 16] (17 frames at 128 px), encoder_hidden_states
    # [1, 64, 256], guidance [1]
    "hunyuan": ({"height": 128, "width": 128, "frames": 17, "text_tokens": 64}, 2_469_632,
                (5_242_880, 791_240_704, 379_584_512)),
    # Qwen-Image with 4 heads of 32, 3 layers, joint_attention_dim 256, rotary axes (8, 12, 12); hidden_states
    # [2, 64, 64] (128 px: 8 x 8 packed tokens), encoder_hidden_states [2, 48, 256]
    "qwen": ({"batch": 2, "height": 128, "width": 128, "text_tokens": 48}, 1_913_536, (0, 277_413_888, 38_535_168)),
    # ModelScope UNet3D with block_out_channels (64, 128, 192, 192), layers_per_block 1, 32 channels per head,
    # cross_attention_dim 256, 16 groups; sample [2, 4, 8, 16, 16] (8 frames, 128 px), context [2, 77, 256]
    "unet3d": ({"batch": 2, "height": 128, "width": 128, "frames": 8}, 25_395_716,
               (12_824_608_768, 23_751_098_368, 1_480_966_144)),
    # Llama with vocab 1000, hidden 512, intermediate 1376, 3 layers, 8 heads, 2 key/value heads; input_ids [1, 64],
    # logits_to_keep=1 (the last position's logits, as the simulator's prefill)
    "llama": ({"prompt_tokens": 64}, 9_334_272, (0, 1_064_280_064, 25_165_824)),
    # AutoencoderKLWan with base_dim 32, dim_mult (1, 2, 2), one res block per level, z_dim 8, temperal_downsample
    # (False, True); vae.decode(z), z [1, 8, 3, 16, 16] (5 frames at 64 px, one decoder call per latent frame);
    # params = decoder + post_quant_conv. The first call's time upsampler is modelled as its time_conv on the one
    # frame (models/wan21-1.3b.yaml, WanUpsampleTime), which diffusers skips: 2 x 64 x 128 x 3 x 16 x 16 conv FLOPs
    # more than the count
    "wan-vae": ({"height": 64, "width": 64, "frames": 5}, 1_481_195,
                (10_994_941_952 + 2 * 64 * 128 * 3 * 16 * 16, 0, 50_331_648)),
    # umT5 encoder with d_model 256, 6 heads of 32 (inner width 192), d_ff 500, 3 layers, vocab 1000 (eager
    # attention); input_ids [2, 40]
    "umt5": ({"batch": 2, "text_tokens": 40}, 2_000_192, (0, 278_691_840, 7_372_800)),
    # AutoencoderKLQwenImage with the same levels as "wan-vae"; vae.decode(z), z [1, 8, 1, 16, 16] (an image, 64 px)
    "qwen-vae": ({"height": 64, "width": 64}, 1_481_195, (2_381_348_864, 0, 16_777_216)),
    # Qwen2.5-VL whose language model has hidden 256, 8 heads, 2 key/value heads, intermediate 600, 3 layers, vocab
    # 1000; random weights on the CPU (its multimodal position ids read the token values), input_ids [2, 50] (the
    # 34-token template + 16 prompt tokens), output_hidden_states as QwenImagePipeline (the LM head on every
    # position); params = the language model + LM head (the vision tower does not run)
    "qwen-vl": ({"batch": 2, "text_tokens": 16}, 2_388_864, (0, 425_984_000, 15_360_000)),
    # Mixtral with vocab 1000, hidden 256, intermediate 320, 2 layers, 8 heads, 4 key/value heads, top-3 of 6
    # experts; random weights on the CPU (routing cannot run on meta; every token reaches exactly top_k experts, so
    # the count does not depend on the routing), input_ids [1, 48], logits_to_keep=1
    "mixtral": ({"prompt_tokens": 48}, 3_858_688, (0, 180_113_408, 4_718_592)),
    # the VAE decoders of the CogVideoX, LTX-Video, Mochi and HunyuanVideo pipelines, vae.decode(z) on the meta device
    # (count_mutated_video_pipelines); params = decoder + post_quant_conv where the VAE has one.
    # AutoencoderKLCogVideoX with block_out_channels (32, 64, 64), layers_per_block 1, 8 latent channels, 16 groups,
    # temporal_compression_ratio 2; z [1, 8, 5, 16, 16] (9 frames at 64 px): decoder calls on latent frames 0-2 and
    # 3-4 with conv caches
    "cog-vae": ({"height": 64, "width": 64, "frames": 9}, 1_577_859, (24_708_644_864, 0, 0)),
    # AutoencoderKLLTXVideo with decoder_block_out_channels (32, 64, 64), decoder_layers_per_block (1, 2, 1, 2),
    # two of three levels upsampling (16x space with patch 4, 4x time), 16 latent channels; z [1, 16, 3, 4, 4]
    # (9 frames at 64 px, one pass)
    "ltx-vae": ({"height": 64, "width": 64, "frames": 9}, 2_423_056, (1_076_264_960, 0, 0)),
    # AutoencoderKLMochi with decoder_block_out_channels (32, 64, 64, 96), layers_per_block (1, 1, 2, 1, 1),
    # temporal_expansions (1, 2, 2), spatial_expansions (1, 2, 2), 8 latent channels; z [1, 8, 3, 8, 8] (9 frames at
    # 32 px, one pass); linear = the depth-to-space projections and proj_out
    "mochi-vae": ({"height": 32, "width": 32, "frames": 9}, 1_802_659, (8_536_227_840, 172_228_608, 0)),
    # AutoencoderKLHunyuanVideo with block_out_channels (32, 64, 64), layers_per_block 1, 16 groups, 8 latent
    # channels, spatial_compression_ratio 4; z [1, 8, 9, 16, 16] (33 frames at 64 px): frame-wise decoding in
    # temporal tiles at latent frames 0, 3 and 6; linear and attention = the mid block's one-head attention
    "hunyuan-vae": ({"height": 64, "width": 64, "frames": 33}, 1_724_875,
                    (121_314_902_016, 109_051_904, 989_855_744)),
    # LlamaModel (HunyuanVideo's text encoder, no LM head) with the "llama" widths: vocab 1000, hidden 512,
    # intermediate 1376, 3 layers, 8 heads, 2 key/value heads (eager attention); input_ids [2, 40]
    "llama-model": ({"batch": 2, "text_tokens": 40}, 8_822_272, (0, 1_329_070_080, 19_660_800)),
}


@pytest.mark.parametrize("name", list(MUTATED))
def test_changed_config_matches_reference_counts(tmp_path, name):
    overrides, params, (conv, linear, attention) = MUTATED[name]
    model = imported(tmp_path, CONFIGS / "mutated" / name / "config.json", overrides)
    assert model.param_count == params
    only = model.stages[0]   # every call of a stage called once per latent frame
    calls = range(only.repeat) if any(o.per_iteration for o in only.ops) else [0]
    flops = {k: sum(only.flops_by_category(i)[k] for i in calls) for k in ("conv", "linear", "attention")}
    close(flops["conv"], conv, tol=1e-12)
    close(flops["linear"], linear, tol=1e-12)
    close(flops["attention"], attention, tol=1e-12)


def test_changing_a_config_changes_the_model(tmp_path):
    """A field the importer reads changes the result: one more layer adds exactly one layer's parameters."""
    config = json.loads((CONFIGS / "mutated" / "llama" / "config.json").read_text())
    base = imported(tmp_path, CONFIGS / "mutated" / "llama" / "config.json")
    (tmp_path / "deeper").mkdir()
    (tmp_path / "deeper" / "config.json").write_text(json.dumps(dict(config, num_hidden_layers=4)))
    deeper = imported(tmp_path, tmp_path / "deeper" / "config.json", name="deeper.yaml")
    d, ff, kv = 512, 1376, 2 * 512 // 8   # hidden, intermediate, key/value width (2 of 8 heads)
    layer = d * d * 2 + 2 * d * kv + 3 * d * ff + 2 * d   # q, o; k, v; gate, up, down; two RMSNorm weights
    assert deeper.param_count - base.param_count == layer


# ------------------------------------------------------------------------------------------------- bad configs


def error_of(path) -> str:
    with pytest.raises(SpecError) as info:
        import_model(str(path))
    return str(info.value)


def test_bad_configs_name_the_file_and_key(tmp_path):
    bad = DATA.parent / "corpus" / "configs"
    text = error_of(bad / "heads_times_head_dim.json")
    assert "heads_times_head_dim.json:" in text and "num_attention_heads" in text and "head_dim 96" in text
    text = error_of(bad / "unet_heads_do_not_divide.json")
    assert "attention_head_dim" in text and "5 heads do not divide 64 channels" in text
    text = error_of(bad / "missing_key.json")
    assert "missing_key.json" in text and "'num_hidden_layers'" in text
    text = error_of(bad / "unknown_class.json")
    assert "_class_name" in text and "UNet2DConditionModel" in text and "ForCausalLM (Llama, Mixtral)" in text
    # one line, whatever the registry holds: families folded by suffix or prefix keep it short
    assert "\n" not in text and "AutoencoderKL... (CogVideoX, HunyuanVideo, LTXVideo, Mochi, QwenImage, Wan)" in text
    assert len(supported()) < 450
    assert "malformed.json:4: malformed JSON" in error_of(bad / "malformed.json")
    assert "class_embed_type" in error_of(bad / "unsupported_value.json")


def test_pipeline_components_must_agree(tmp_path):
    folder = tmp_path / "sd15"
    shutil.copytree(CONFIGS / "sd15", folder)
    unet = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps(dict(unet, cross_attention_dim=1024), indent=2))
    text = error_of(folder)
    assert "unet/config.json" in text and "cross_attention_dim" in text and "768" in text


@pytest.mark.parametrize("name, part, change, expected", [
    # the transformer's text width against the T5 encoder's d_model
    ("ltx-video", "transformer", {"caption_channels": 2048}, ("transformer/config.json", "caption_channels",
                                                               "4096")),
    # the VAE's causal decoder upsamples time by powers of two only
    ("cogvideox-2b", "vae", {"temporal_compression_ratio": 3}, ("vae/config.json", "temporal_compression_ratio",
                                                                 "got 3")),
    ("hunyuanvideo", "vae", {"norm_num_groups": 48}, ("vae/config.json", "norm_num_groups",
                                                       "48 groups do not divide 128 channels")),
    ("mochi-1", "vae", {"temporal_expansions": [1, 2]}, ("vae/config.json", "temporal_expansions", "3 positive")),
    ("hunyuanvideo", "text_encoder", {"num_key_value_heads": 5}, ("text_encoder/config.json", "num_key_value_heads",
                                                                   "5 key/value heads do not divide 32")),
])
def test_video_pipeline_errors_name_the_file_and_key(tmp_path, name, part, change, expected):
    folder = tmp_path / name
    shutil.copytree(CONFIGS / name, folder)
    path = folder / part / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change, indent=2))
    text = error_of(folder)
    assert "\n" not in text and all(e in text for e in expected), text


def test_cli_writes_a_model_that_runs(tmp_path, capsys):
    out = tmp_path / "models" / "my_model.yaml"
    assert main(["import", str(CONFIGS / "sd15"), "--out", str(out)]) == 0
    assert "1,032,071,643 parameters" in capsys.readouterr().err
    assert main(["run", str(out), "--hardware", "a100", "--format", "json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["params"] == 1_032_071_643 and totals["time_s"] > 0


def test_yaml_is_one_op_per_line():
    text = to_yaml(import_model(str(CONFIGS / "llama2-7b")), "llama2-7b")
    assert "      - {name: lm_head, op: linear, in: last_token, out_features: 32000, bias: false}" in text


def test_a_config_that_cannot_build_leaves_the_old_file(tmp_path, capsys):
    out = tmp_path / "m.yaml"
    out.write_text("previous\n")
    bad = DATA.parent / "corpus" / "configs" / "layers_beyond_limit.json"
    assert main(["import", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers_beyond_limit.json" in err and "repeat" in err
    assert out.read_text() == "previous\n"
