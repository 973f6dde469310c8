"""LlamaGen class-conditional generators at 384 px: llamagen-b, -l, -xl, -xxl, -3b.

Reference figures were counted with LlamaGen's own model code (github.com/FoundationVision/LlamaGen,
autoregressive/models/gpt.py at commit ce98ec41803a74a90ce68c40ababa9eaeffeb4ec) built on the `meta` device and run
under torch.utils.flop_counter.FlopCounterMode, torch 2.13.0+cpu:
    git --git-dir=<LlamaGen mirror> archive ce98ec41 autoregressive tokenizer utils | tar -x -C <checkout>
    cd tools/refcounts && <venv>/bin/python llamagen.py <checkout>
Each network is built as autoregressive/sample/sample_c2i.py builds it for `--image-size 384` and called with the
arguments autoregressive/models/generate.py passes with guidance: 8 class labels + 8 null labels = 16 streams, a
KV cache preallocated at 584 positions that every call attends over under a mask. Prefill: the class token;
decode: one image token at position 1. FlopCounterMode counts matmuls only (1 multiply-add = 2 FLOPs): `linear` is
every nn.Linear (wqkv, wo, w1, w2, w3, output), `attention` the two bmm of SDPA's math path inside the Attention
modules (none outside them), so the simulator is compared with attention="math".
"""
import pytest

from simulator import load_model
from reference import close, stage

# model: (params, linear FLOPs of one pass, attention FLOPs of one pass); a prefill pass (one class token per
# stream) and a decode step (one image token per stream) have the same shapes, so the same counts
REFERENCE = {
    "llamagen-b": (110_888_448, 3_120_562_176, 344_457_216),
    "llamagen-l": (342_910_976, 10_401_873_920, 918_552_576),
    "llamagen-xl": (774_699_520, 24_075_304_960, 1_722_286_080),
    "llamagen-xxl": (1_410_972_672, 44_291_850_240, 2_755_657_728),
    "llamagen-3b": (3_096_659_200, 97_307_852_800, 2_870_476_800),
}
SAMPLE_C2I = {"batch": 8}   # sample_c2i.py's 8 class labels; cfg (scale 4.0) and 384 px are the model defaults
CACHE = 584                 # find_multiple(1 + 576, 8): the positions every attention call reads
HEADS_X_HEAD_DIM = {"llamagen-b": 768, "llamagen-l": 1024, "llamagen-xl": 1280, "llamagen-xxl": 1536,
                    "llamagen-3b": 3200}
LAYERS = {"llamagen-b": 12, "llamagen-l": 24, "llamagen-xl": 36, "llamagen-xxl": 48, "llamagen-3b": 24}


@pytest.mark.parametrize("model_id", list(REFERENCE))
def test_llamagen_matches_reference_counts(model_id):
    params, linear, attention = REFERENCE[model_id]
    model = load_model(model_id, SAMPLE_C2I, attention="math")
    prefill, decode = stage(model, "prefill"), stage(model, "decode")
    close(model.param_count, params)
    close(prefill.params, params)    # both embedding tables belong to the weights of every pass
    for flops in (prefill.flops_by_category(), decode.flops_by_category(iteration=0),
                  decode.flops_by_category(iteration=decode.repeat - 1)):
        close(flops["linear"], linear)
        close(flops["attention"], attention)


@pytest.mark.parametrize("model_id", ["llamagen-b", "llamagen-3b"])
def test_attention_formula_is_the_whole_static_cache(model_id):
    """Every step scores all 584 cached positions: 4 x streams x d x 584 per layer (q.k and p.v), whatever t."""
    close(REFERENCE[model_id][2], 4 * 16 * HEADS_X_HEAD_DIM[model_id] * CACHE * LAYERS[model_id], tol=0)


def test_paged_cache_attends_over_the_tokens_so_far():
    """Without the static cache (vLLM), decode step t reads t + 2 positions: the attention work grows linearly
    from 2/584 of the static figure and the last step (576 positions) stays below it; the GEMMs do not change."""
    _, linear, attention = REFERENCE["llamagen-l"]
    decode = stage(load_model("llamagen-l", {**SAMPLE_C2I, "static_cache": False}, attention="math"), "decode")
    first, last = decode.flops_by_category(iteration=0), decode.flops_by_category(iteration=decode.repeat - 1)
    close(first["attention"], attention * 2 / CACHE)
    close(last["attention"], attention * 576 / CACHE)
    close(first["linear"], linear)


def test_tokens_follow_the_image_size():
    """(height/16) x (width/16) VQ-16 tokens: 576 at 384 px (prefill + 575 decode steps), 256 at 256 px, where the
    static cache shrinks to find_multiple(257, 8) = 264 positions."""
    assert stage(load_model("llamagen-b"), "decode").repeat == 575
    small = load_model("llamagen-b", {**SAMPLE_C2I, "height": 256, "width": 256}, attention="math")
    assert stage(small, "decode").repeat == 255
    close(stage(small, "decode").flops_by_category(iteration=0)["attention"],
          REFERENCE["llamagen-b"][2] * 264 / CACHE)


def test_guidance_doubles_the_streams():
    """Classifier-free guidance runs the null class beside every label: twice the GEMM work of one stream set."""
    on = stage(load_model("llamagen-xl", SAMPLE_C2I), "decode").flops_by_category(iteration=0)
    off = stage(load_model("llamagen-xl", {**SAMPLE_C2I, "cfg": False}), "decode").flops_by_category(iteration=0)
    close(on["linear"], 2 * off["linear"])
