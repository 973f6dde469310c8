"""The 2025 built-in models (sd35-large, qwen-image, hunyuanvideo, mixtral-8x7b) against their references.

Reference figures were counted with torch.utils.flop_counter.FlopCounterMode on the `meta` device (no weights),
torch 2.13.0+cpu, diffusers 0.42.1, transformers 5.24.0, with every network built from its public config written
inline (tools/refcounts/models2025.py; JSON in tools/results/models2025_<model>.json). FlopCounterMode counts
matmuls and convolutions only, 1 multiply-add = 2 FLOPs; the default attention processors decompose
scaled_dot_product_attention to aten.bmm on the meta device, and every bmm was checked to lie inside an attention
module, so the simulator is compared with `attention="math"`. One network evaluation per stage:
- sd35-large    SD3Transformer2DModel (38 layers, 38 x 64, qk_norm rms_norm) hidden_states [2, 16, 128, 128] /
                [2, 16, 64, 64], encoder_hidden_states [2, 77 + 256, 4096], pooled [2, 2048]. Its CLIP-L, bigG,
                T5-XXL and VAE are SD3 Medium's (counts in tests/test_models_dit.py, repeated here).
- qwen-image    QwenImageTransformer2DModel hidden_states [2, T, 64] with T = 83 x 83 (1328 px) / 64 x 64 (1024 px),
                encoder_hidden_states [2, 128 or 256, 3584]; Qwen2ForCausalLM with the Qwen2.5-VL-7B text config
                (the language model of the text encoder, LM head on every position as the pipeline's forward call
                computes it) input_ids [2, 34 + 128] / [2, 34 + 256]; AutoencoderKLQwenImage.decode(z [1, 16, 1,
                166, 166] / [1, 16, 1, 128, 128]).
- hunyuanvideo  HunyuanVideoTransformer3DModel hidden_states [1, 16, 33, 90, 160] (720 x 1280 x 129) /
                [1, 16, 33, 68, 120] (544 x 960) / [1, 16, 16, 60, 106] (480 x 848 x 61, 128 text tokens),
                encoder_hidden_states [1, 256, 4096], pooled [1, 768], guidance [1]; LlamaModel (vocab 128320)
                input_ids [1, 95 + 256] / [1, 95 + 128]; CLIPTextModel [1, 77]; AutoencoderKLHunyuanVideo.decode(z)
                with its default frame-wise decoding (tiles of 5 latent frames every 3), summed over the tiles.
- mixtral-8x7b  MixtralForCausalLM parameters; FLOPs of input_ids [1, 512] with the experts' forward replaced by
                zeros (its routing uses nonzero / index_add, which the meta device cannot run): router, attention,
                projections and LM head counted; the expert GEMMs are 2 * T * top_k * 3 * d * ff, which a CPU run of
                a reduced config with real random weights confirmed exactly (every token visits top_k experts).
B includes classifier-free guidance where the pipeline runs it.
"""
import pytest

from simulator import load_model
from simulator.ops import experts_touched
from simulator.simulate import compare
from reference import check_model as check, close, stage

DEVICES = ["a100", "h100", "b200", "mi300x", "tpu-v6e"]




# ------------------------------------------------------------------------------------------ SD 3.5 Large
SD35_PARAMS = {"text_encoder": 123_650_304, "text_encoder_2": 694_659_840, "text_encoder_3": 4_762_310_656,
               "denoiser": 8_056_627_520, "decoder": 49_545_475}
SD35_FLOPS = {
    (): {"text_encoder": (0, 26_162_233_344, 437_133_312),
         "text_encoder_2": (0, 193_783_398_400, 1_942_814_720),
         "text_encoder_3": (0, 4_741_643_894_784, 51_539_607_552),
         "denoiser": (2_550_136_832, 47_736_991_318_016, 14_502_688_360_448),
         "decoder": (9_888_088_457_216, 34_359_738_368, 549_755_813_888)},
    (("height", 512), ("width", 512)): {
        "denoiser": (637_534_208, 14_593_500_446_720, 1_361_434_806_272),
        "decoder": (2_472_022_114_304, 8_589_934_592, 34_359_738_368)},
}


@pytest.mark.parametrize("overrides", list(SD35_FLOPS), ids=["1024px", "512px"])
def test_sd35_large_matches_diffusers(overrides):
    check("sd35-large", overrides, SD35_PARAMS, SD35_FLOPS[overrides])


# --------------------------------------------------------------------------------------------- Qwen-Image
QWEN_PARAMS = {"text_encoder": 7_615_616_512, "denoiser": 20_430_401_088,
               "decoder": 73_295_603}  # decoder 73,295,331 + post_quant_conv 272
QWEN_FLOPS = {
    (): {"text_encoder": (0, 4_581_545_213_952, 21_069_103_104),
         "denoiser": (0, 190_759_442_055_168, 72_604_811_427_840),
         "decoder": (18_955_297_114_112, 0, 1_166_335_696_896)},
    (("height", 1024), ("width", 1024)): {
        "denoiser": (0, 114_843_850_899_456, 26_309_359_042_560),
        "decoder": (11_270_271_008_768, 0, 412_316_860_416)},
    (("text_tokens", 256),): {
        "text_encoder": (0, 8_201_531_555_840, 67_516_825_600),
        "denoiser": (0, 194_244_002_709_504, 75_277_799_424_000)},
    # no guidance: the encoder on the prompt alone
    (("cfg", 0),): {"text_encoder": (0, 2_290_772_606_976, 10_534_551_552)},
}


@pytest.mark.parametrize("overrides", list(QWEN_FLOPS), ids=["1328px", "1024px", "256-tokens", "no-cfg"])
def test_qwen_image_matches_diffusers_and_transformers(overrides):
    check("qwen-image", overrides, QWEN_PARAMS, QWEN_FLOPS[overrides])


# ------------------------------------------------------------------------------------------- HunyuanVideo
HY_PARAMS = {"text_encoder": 7_505_186_816, "text_encoder_2": 123_060_480, "denoiser": 12_821_012_544,
             "decoder": 146_136_339}  # decoder 146,136,067 + post_quant_conv 272
HY_FLOPS = {
    (): {"text_encoder": (0, 4_899_483_942_912, 64_592_805_888),
         "text_encoder_2": (0, 13_079_937_024, 218_566_656),
         "denoiser": (46_714_060_800, 1_618_093_022_380_032, 10_450_452_470_562_816),
         "decoder": (2_888_381_258_956_800, 1_600_546_406_400, 109_990_379_520_000)},
    (("height", 544), ("width", 960)): {
        "denoiser": (26_471_301_120, 918_483_005_079_552, 3_366_802_361_942_016)},
    (("height", 480), ("width", 848), ("frames", 61), ("text_tokens", 128)): {
        "text_encoder": (0, 3_112_777_547_776, 26_072_317_952),
        "denoiser": (10_003_415_040, 347_535_729_229_824, 481_977_018_875_904),
        "decoder": (588_783_272_079_360, 333_447_168_000, 9_692_371_353_600)},
}


@pytest.mark.parametrize("overrides", list(HY_FLOPS), ids=["720p-129f", "544p-129f", "480p-61f-128-tokens"])
def test_hunyuanvideo_matches_diffusers_and_transformers(overrides):
    check("hunyuanvideo", overrides, HY_PARAMS, HY_FLOPS[overrides])


def test_hunyuanvideo_decoder_tiles_follow_the_frames():
    """vae.decode's frame-wise loop: one tile every 3 latent frames, 5 frames each, fewer at the end (walked last
    to first, so the iteration that sizes memory is a full tile)."""
    for frames, tiles, last in ((129, 11, 3), (61, 6, 1), (17, 2, 2)):
        dec = stage(load_model("hunyuanvideo", {"frames": frames}), "decoder")
        assert dec.repeat == tiles
        tile = next(op for op in dec.ops if op.name == "tile")
        assert [tile.per_iteration[i].outputs[0][2] for i in (0, tiles - 1)] == [last, 5]
        assert tile.result.outputs[0][2] == 5


def test_hunyuanvideo_guidance_is_embedded_not_batched():
    den = stage(load_model("hunyuanvideo"), "denoiser")
    attn = next(op for op in den.ops if op.kind == "attention" and op.role == "full3d")
    # one sequence of 33 x 45 x 80 video + 256 text tokens, batch 1 (no CFG batch)
    assert den.tensors[attn.inputs[0]].shape[:2] == (1, 33 * 45 * 80 + 256)
    with_cfg = stage(load_model("hunyuanvideo", {"cfg": 1}), "denoiser")
    attn = next(op for op in with_cfg.ops if op.kind == "attention" and op.role == "full3d")
    assert with_cfg.tensors[attn.inputs[0]].shape[0] == 2


# ------------------------------------------------------------------------------------------- Mixtral 8x7B
MIXTRAL_PARAMS = 46_702_792_704
# prefill of 512 tokens without the experts (router, attention, projections, LM head on all 512 positions)
MIXTRAL_COUNTED = {"linear": 1_509_681_004_544, "attention": 137_438_953_472}
MIXTRAL_LM_HEAD_ALL = 2 * 512 * 4096 * 32000   # the simulator computes the last position's logits only
MIXTRAL_EXPERTS = 2 * 32 * 512 * 2 * 3 * 4096 * 14336   # layers x tokens x top_k x (w1, w3, w2) x d x ff


def test_mixtral_matches_transformers():
    model = load_model("mixtral-8x7b", {"prompt_tokens": 512, "output_tokens": 2}, attention="math")
    prefill = stage(model, "prefill")
    close(prefill.params, MIXTRAL_PARAMS)
    close(model.param_count, MIXTRAL_PARAMS)
    flops = prefill.flops_by_category()
    close(flops["linear"], MIXTRAL_COUNTED["linear"] - MIXTRAL_LM_HEAD_ALL + 2 * 4096 * 32000 + MIXTRAL_EXPERTS)
    close(flops["attention"], MIXTRAL_COUNTED["attention"])
    # one decode token: 2 of 8 experts, the paper's "13B active parameters" (x 2 FLOPs per multiply-add)
    step = stage(model, "decode").flops_by_category(iteration=0)
    assert 2 * 12.5e9 < step["linear"] < 2 * 13.2e9


def test_mixtral_reads_only_the_experts_its_tokens_reach():
    model = load_model("mixtral-8x7b", {"prompt_tokens": 512, "output_tokens": 2})
    expert_matrix = 4096 * 14336 * 2   # bytes of one bf16 expert projection

    def expert_weight_bytes(s, it=0):
        ops = [op for op in s.ops if op.kind == "moe_linear"]
        out = 0.0
        for op in ops:
            r = op.per_iteration[it] if op.per_iteration else op.result
            x = r.outputs[0]
            routed_rows = x[0] * x[1] * x[2]
            out += op.count * (r.kernels[0].bytes - routed_rows * (4096 + 14336) * 2)
        return out

    # a decode token reaches 2 experts; a 512-token prompt reaches all 8 (8 (1 - (3/4)^512) = 8)
    assert expert_weight_bytes(stage(model, "decode")) == pytest.approx(32 * 3 * 2 * expert_matrix)
    assert expert_weight_bytes(stage(model, "prefill")) == pytest.approx(32 * 3 * 8 * expert_matrix)
    assert experts_touched(8, 2, 4) == pytest.approx(8 * (1 - 0.75 ** 4))


# ---------------------------------------------------------------------- every device; published figures
def test_new_models_run_on_every_device():
    for model_id in ("sd35-large", "qwen-image", "hunyuanvideo", "mixtral-8x7b"):
        results = compare(model_id, DEVICES)
        assert [r.hardware.id for r in results] == DEVICES
        assert all(r.time_s > 0 for r in results)


def test_hunyuanvideo_agrees_with_its_published_single_gpu_run():
    """xDiT docs/performance/hunyuanvideo.md (the official parallel engine's report, run with the official
    repository): 1280 x 720, 129 frames, 50 steps on one H100: 1,904.08 s; the HunyuanVideo README lists 60 GB of
    peak GPU memory for 720 x 1280 x 129 frames, so it fits an 80 GB device."""
    (r,) = compare("hunyuanvideo", ["h100"])
    assert 1904.08 / 2 < r.time_s < 1904.08 * 2
    assert r.fits and r.peak_memory_bytes < 80e9


def test_qwen_image_agrees_with_published_runs():
    """vLLM-Omni blog (2025-12-19, 'Turbocharge Your Diffusion Inference'): Qwen-Image 1024 x 1024, baseline
    (no cache) 20.0 s on one H200, its examples with num_inference_steps=50; the model (20.4B + 7.6B encoder in
    bf16, ~56 GB) fits the 141 GB device."""
    (r,) = compare("qwen-image", ["h200"], {"height": 1024, "width": 1024})
    assert 20.0 / 2 < r.time_s < 20.0 * 2 and r.fits
    # memory: modelscope/DiffSynth-Studio docs/en/Pipeline_Usage/VRAM_management.md (commit e23578b8), Qwen-Image in
    # bf16 at its default size with no VRAM management, "occupying 56G VRAM as a reference" (GPU not named)
    (m,) = compare("qwen-image", ["h200"])
    # "56G" taken as 1e9 bytes (62.3e9 simulated, +11 %; as GiB, +4 %)
    assert abs(m.peak_memory_bytes / 56e9 - 1) <= 0.25


def test_sd35_large_memory_as_published():
    """NVIDIA (TensorRT for SD3.5 announcement, 2025): 'the base Stable Diffusion 3.5 Large model uses over 18GB of
    VRAM'. With all three encoders resident in bf16 (the diffusers model card's .to("cuda")) it needs more, still
    well inside an 80 GB device."""
    for r in compare("sd35-large", ["a100", "h100"]):
        assert r.fits and 18e9 < r.peak_memory_bytes < 40e9


def test_sd35_large_agrees_with_its_published_h100_run():
    """microsoft/onnxruntime pull request #22986 (commit 6550f4b3), 'H100 Benchmark Results', 1024 x 1024, batch 1:
    'SD 3.5 Large | 50 | BF16 | Torch 2.5.1 (eager) | 11.615 | 31,517' (seconds, MiB of GPU memory by NVML,
    CUDA context included); the case ort-pr22986-sd35-large-h100-bf16-eager in measurements/public.yaml."""
    (r,) = compare("sd35-large", ["h100"], {"steps": 50, "text_tokens": 256}, stack="eager")
    assert 11.615 / 2 < r.time_s < 11.615 * 2
    assert r.fits and abs(r.peak_memory_bytes / (31517 * 2**20) - 1) <= 0.25


def test_ltx_video_agrees_with_its_published_single_gpu_run_and_memory():
    """Lightricks/LTX-Video issue #82 (2025-01-09): diffusers takes 27 s for 512 x 768 x 161 frames on one H800 (the
    H100's compute and HBM); pipeline defaults assumed (50 steps, CFG). Peak memory: the Hugging Face blog 'State of
    open video generation models in Diffusers' lists 17.75 GB on an A100 80GB for 121 frames at 512 x 768, bf16."""
    (r,) = compare("ltx-video", ["h100"], {"frames": 161, "height": 512, "width": 768, "steps": 50})
    assert 27 / 2 < r.time_s < 27 * 2 and r.fits
    (m,) = compare("ltx-video", ["a100"], {"frames": 121, "height": 512, "width": 768, "steps": 50})
    # the blog's unit is not stated: taken as 1e9 bytes (16.1e9 simulated, -9 %; as GiB it would be -15 %)
    assert m.fits and abs(m.peak_memory_bytes / 17.75e9 - 1) <= 0.25


def test_mochi_agrees_with_its_published_single_gpu_run():
    """sandyresearch/chipmunk examples/mochi/README.md (commit 12d12212): the Genmo reference pipeline takes about 380 s
    per video on one H100 SXM5 with its defaults (848 x 480, 163 frames, 64 steps, CFG, tiled decode; a
    lower-confidence figure, see the case chipmunk-mochi-1-h100-sxm-baseline); the Genmo README: the single-GPU
    pipeline 'requires approximately 60GB VRAM', so it fits an 80 GB device."""
    (r,) = compare("mochi-1", ["h100"], {"height": 480, "width": 848, "frames": 163, "steps": 64,
                                        "vae_tiling": True}, stack="compile")
    assert 380 / 2 < r.time_s < 380 * 2 and r.fits


def test_mixtral_fits_as_published():
    """gpt-fast mixtral-moe/README.md: Mixtral 8x7B in bfloat16 is OOM on one A100-80GB, while int8 weight-only
    runs at 97.92 tokens/s (batch 1, ~5-token prompt, 330 W A100, decode compiled with CUDA graphs); the Hugging
    Face release post ('Welcome Mixtral', 2023-12-11) gives ~90 GB in half precision. MI300X and B200 hold it."""
    fits = {r.hardware.id: r.fits for r in compare("mixtral-8x7b", DEVICES)}
    assert fits == {"a100": False, "h100": False, "b200": True, "mi300x": True, "tpu-v6e": False}
    (r,) = compare("mixtral-8x7b", ["a100"], {"prompt_tokens": 5, "output_tokens": 200, "dtype": "int8"},
                   stack="compile-cudagraphs", attention="math")
    tokens_per_s = 200 / r.time_s
    assert r.fits and 97.92 / 2 < tokens_per_s < 97.92 * 2
