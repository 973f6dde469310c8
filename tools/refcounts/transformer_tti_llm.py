"""Reference counts for the transformer-TTI / LLM family (models/llama2-70b, llama3-8b, muse, parti, cm3leon, phenaki).

Only the networks with a public reference implementation are counted here; every one is built on the meta device
from a config written inline (no hub access, no weights) and run under FlopCounterMode as in llama.py / sd15.py:
- `llama`: transformers LlamaForCausalLM, llama2-70b and llama3-8b at a second prompt length (1024 tokens; the
  512-token counts are llama.py's llama2-70b.json / llama3-8b.json): prefill with full logits, then one decode step
  with the DynamicCache of the prefill (attention over 1025 keys).
- `t5`: transformers T5EncoderModel with the google/t5-v1_1-xxl config (the frozen text encoder of muse and
  phenaki): input_ids [2, L] (prompt + empty prompt, CFG) and [1, L] for L = 128 and 77.
- `vq`: diffusers VQModel decoders (post_quant_conv + Decoder; the quantizer is skipped with
  force_not_quantize=True, the codebook lookup is a gather without FLOPs) in the two configurations the model files
  assume: muse's fine-tuned f=8 VQGAN decoder (base 256 channels, 4 res blocks per level, no attention) on 64x64 and
  128x128 token maps, and cm3leon's Make-A-Scene f=8 VQ-IMG decoder (taming VQGAN f=8 layout, mid-block attention) on
  32x32 and 64x64 token maps. Attention: diffusers AttnProcessor (math), cross-checked with AttnProcessor2_0.

Usage: /work/refvenv/bin/python transformer_tti_llm.py [llama] [t5] [vq]   (no argument: all)
Writes /work/refs/results/transformer_tti_llm_<name>.json.
"""
import sys

import torch
from diffusers import VQModel
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5EncoderModel
from transformers.models.llama.modeling_llama import LlamaAttention
from transformers.models.t5.modeling_t5 import T5Attention

import common
from common import attention_bmm_check, clean, count_params, measure, opname, write
from llama import CONFIGS as LLAMA_CONFIGS, split as llama_split

common.RESULTS = "/work/refs/results"  # outside the repository (common.write reads the module global)
META = "meta"


def run(fn, model, root, attn_types, inputs):
    r = measure(fn)
    r["attention_check"] = attention_bmm_check(r, model, root, attn_types)
    r["inputs"] = inputs
    return r


# ------------------------------------------------------------------------------------------------------- Llama
def llama(model_id, prompt=1024):
    cfg_kwargs = LLAMA_CONFIGS[model_id]
    with torch.device(META):
        m = LlamaForCausalLM(LlamaConfig(**cfg_kwargs))
    m.set_attn_implementation("eager")
    m.eval()
    out = {"model_id": model_id, "config": dict(cls="transformers.LlamaForCausalLM", **cfg_kwargs),
           "params": count_params(m), "prompt_tokens": prompt}
    ids = torch.zeros(1, prompt, dtype=torch.long, device=META)
    r = run(lambda: m(input_ids=ids, use_cache=True), m, "LlamaForCausalLM", (LlamaAttention,),
            {"input_ids": [1, prompt], "use_cache": True, "logits": f"all {prompt} positions (logits_to_keep=0)"})
    r["linear_split"] = llama_split(r, m)
    r["linear_split"].pop("per_layer_example_layer0")
    cache = r["_out"].past_key_values
    assert cache.get_seq_length() == prompt
    out["prefill"] = clean(r)
    ids1 = torch.zeros(1, 1, dtype=torch.long, device=META)
    r2 = run(lambda: m(input_ids=ids1, use_cache=True, past_key_values=cache), m, "LlamaForCausalLM",
             (LlamaAttention,), {"input_ids": [1, 1], "past_tokens_in_kv_cache": prompt,
                                 "attention_kv_length": prompt + 1})
    r2["linear_split"] = llama_split(r2, m)
    r2["linear_split"].pop("per_layer_example_layer0")
    out["decode_step"] = clean(r2)
    # sdpa cross-check of the prefill (decomposes to aten.bmm on meta)
    m.set_attn_implementation("sdpa")
    rs = measure(lambda: m(input_ids=ids, use_cache=True))
    assert rs["by_op"] == out["prefill"]["by_op"], (rs["by_op"], out["prefill"]["by_op"])
    out["attention_counting"] = ("eager (aten.bmm for QK^T and PV, repeat_kv-expanded GQA heads), prefill "
                                 "cross-checked with sdpa: identical per-op counts")
    write(f"transformer_tti_llm_{model_id}-prompt{prompt}", out)
    return out


# ------------------------------------------------------------------------------------------------------- T5-XXL
# google/t5-v1_1-xxl config.json values (the encoder of Imagen / Muse / Phenaki-era Google models)
T5_V1_1_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                   relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
                   layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                   is_encoder_decoder=True)


def t5():
    with torch.device(META):
        m = T5EncoderModel(T5Config(**T5_V1_1_XXL))
    m.set_attn_implementation("eager")
    m.eval()
    out = {"config": dict(cls="transformers.T5EncoderModel", **T5_V1_1_XXL), "params": count_params(m),
           "params_by_child": {"shared (= encoder.embed_tokens)": count_params(m.shared),
                               "encoder.block.0 (with relative_attention_bias)": count_params(m.encoder.block[0]),
                               "encoder.block.1": count_params(m.encoder.block[1]),
                               "encoder.final_layer_norm": count_params(m.encoder.final_layer_norm)},
           "flops": {}}
    for L in (128, 77):
        for b in (2, 1):
            ids = torch.zeros(b, L, dtype=torch.long, device=META)
            out["flops"][f"batch{b}_tokens{L}"] = clean(run(lambda: m(input_ids=ids), m, "T5EncoderModel",
                                                            (T5Attention,), {"input_ids": [b, L]}))
    out["attention_counting"] = ("eager: torch.matmul QK^T and PV -> aten.bmm inside T5Attention (no 1/sqrt(d) "
                                 "scaling in T5; the relative position bias is an embedding lookup, no FLOPs)")
    write("transformer_tti_llm_t5-v1_1-xxl-encoder", out)
    return out


# ------------------------------------------------------------------------------------------------------- VQ decoders
VQ_CONFIGS = {
    # Muse fine-tuned high-resolution (f=8) VQGAN decoder, Muse §2.5 / App. A.2: fully convolutional (no non-local
    # block), 4 residual blocks per resolution, base channel 256, codebook 8192 (VQGAN configuration table).
    # Channel multipliers (1, 2, 2, 4) and the 256-wide latent are assumptions (taming f=8 layout).
    "muse": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                 up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(256, 512, 512, 1024),
                 layers_per_block=3, latent_channels=256, num_vq_embeddings=8192, vq_embed_dim=256,
                 norm_num_groups=32, mid_block_add_attention=False),
    # CM3leon's image tokenizer = Make-A-Scene VQ-IMG (Gafni et al. 2022): f=8 (256x256 -> 32x32 tokens), codebook
    # 8192. Layout assumed = taming VQGAN f=8 (ch 128, ch_mult (1, 2, 2, 4), 2 res blocks, mid-block attention),
    # latent width 256.
    "cm3leon": dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 256, 512),
                    layers_per_block=2, latent_channels=256, num_vq_embeddings=8192, vq_embed_dim=256,
                    norm_num_groups=32, mid_block_add_attention=True),
}
VQ_SIZES = {"muse": (64, 128), "cm3leon": (32, 64)}


def vq(name):
    cfg = VQ_CONFIGS[name]
    with torch.device(META):
        m = VQModel(**cfg)
    m.eval()
    out = {"config": dict(cls="diffusers.VQModel", **{k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in cfg.items()}),
           "params": count_params(m),
           "params_by_child": {"encoder": count_params(m.encoder), "quant_conv": count_params(m.quant_conv),
                               "quantize (codebook)": count_params(m.quantize),
                               "post_quant_conv": count_params(m.post_quant_conv),
                               "decoder": count_params(m.decoder)},
           "flops": {}}
    out["params_decode_path (codebook + post_quant_conv + decoder)"] = (
        out["params_by_child"]["quantize (codebook)"] + out["params_by_child"]["post_quant_conv"]
        + out["params_by_child"]["decoder"])
    for side in VQ_SIZES[name]:
        zq = torch.zeros(1, cfg["latent_channels"], side, side, device=META)
        runs = {}
        for proc in (AttnProcessor(), AttnProcessor2_0()):
            for mod in m.modules():
                if isinstance(mod, Attention):
                    mod.set_processor(proc)
            # decode() is not forward(): FlopCounterMode names modules from the called Decoder down
            runs[type(proc).__name__] = run(lambda: m.decode(zq, force_not_quantize=True).sample, m.decoder,
                                            "Decoder", (Attention,), {"z": [1, cfg["latent_channels"], side, side],
                                                           "image": [1, 3, 8 * side, 8 * side]})
        assert runs["AttnProcessor"]["by_category"] == runs["AttnProcessor2_0"]["by_category"], side
        out["flops"][f"z{side}"] = clean(runs["AttnProcessor"])
    out["attention_counting"] = "AttnProcessor (baddbmm + bmm), cross-checked with AttnProcessor2_0: identical"
    write(f"transformer_tti_llm_vq-decoder-{name}", out)
    return out


if __name__ == "__main__":
    todo = sys.argv[1:] or ["llama", "t5", "vq"]
    if "llama" in todo:
        for mid in ("llama2-70b", "llama3-8b"):
            o = llama(mid)
            print(mid, o["params"], o["prefill"]["by_category"], o["prefill"]["linear_split"]["lm_head"],
                  o["decode_step"]["by_category"])
    if "t5" in todo:
        o = t5()
        print("t5", o["params"], {k: v["by_category"] for k, v in o["flops"].items()})
    if "vq" in todo:
        for name in VQ_CONFIGS:
            o = vq(name)
            print(name, o["params_by_child"], {k: v["by_category"] for k, v in o["flops"].items()})
