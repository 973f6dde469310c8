"""Llama-family reference counts: params, prefill (1 x 512) and one decode step with 512 past tokens."""
import inspect
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaAttention

from common import measure, clean, count_params, attention_bmm_check, write, opname

CONFIGS = {
    "llama2-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      rms_norm_eps=1e-5, tie_word_embeddings=False),
    "llama2-70b": dict(vocab_size=32000, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                       num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=4096,
                       rms_norm_eps=1e-5, tie_word_embeddings=False),
    "llama3-8b": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False),
}
PREFILL = 512
ROOT = "LlamaForCausalLM"


def split(res, m):
    counts = res["_counts"]
    lm = {opname(k): int(v) for k, v in counts.get(f"{ROOT}.lm_head", {}).items()}
    lm_total = sum(v for k, v in lm.items() if k in ("mm", "addmm"))
    attn_proj = mlp = 0
    for i in range(m.config.num_hidden_layers):
        for k, v in counts.get(f"{ROOT}.model.layers.{i}.self_attn", {}).items():
            if opname(k) in ("mm", "addmm"):
                attn_proj += int(v)
        for k, v in counts.get(f"{ROOT}.model.layers.{i}.mlp", {}).items():
            if opname(k) in ("mm", "addmm"):
                mlp += int(v)
    lin = res["by_category"]["linear"]
    return {"lm_head": lm_total, "linear_excluding_lm_head": lin - lm_total,
            "attn_qkvo_proj": attn_proj, "mlp": mlp,
            "check_linear_sum": attn_proj + mlp + lm_total == lin,
            "per_layer_example_layer0": {k.split(".model.layers.0.", 1)[1]: {opname(o): int(v) for o, v in d.items()}
                                         for k, d in counts.items() if f"{ROOT}.model.layers.0." in k}}


def run(model_id):
    cfg_kwargs = CONFIGS[model_id]
    cfg = LlamaConfig(**cfg_kwargs)
    with torch.device("meta"):
        m = LlamaForCausalLM(cfg)
    m.set_attn_implementation("eager")
    m.eval()
    p_embed = count_params(m.model.embed_tokens)
    p_head = count_params(m.lm_head)
    out = {"model_id": model_id, "config": dict(cls="transformers.LlamaForCausalLM", **cfg_kwargs),
           "params": count_params(m),
           "params_breakdown": {"embed_tokens": p_embed, "lm_head": p_head,
                                "layers_total": count_params(m.model.layers),
                                "per_layer": count_params(m.model.layers[0]),
                                "per_layer_self_attn": count_params(m.model.layers[0].self_attn),
                                "per_layer_mlp": count_params(m.model.layers[0].mlp),
                                "final_norm": count_params(m.model.norm),
                                "non_embedding (total - embed_tokens - lm_head)":
                                    count_params(m) - p_embed - p_head}}
    fwd_params = inspect.signature(m.forward).parameters
    cache_kw = "cache" if "cache" in fwd_params else "past_key_values"

    ids = torch.zeros(1, PREFILL, dtype=torch.long, device="meta")
    r = measure(lambda: m(input_ids=ids, use_cache=True))
    r["attention_check"] = attention_bmm_check(r, m, ROOT, (LlamaAttention,))
    r["linear_split"] = split(r, m)
    r["inputs"] = {"input_ids": [1, PREFILL], "use_cache": True,
                   "logits": f"full logits for all {PREFILL} positions (logits_to_keep=0), shape "
                             f"{list(r['_out'].logits.shape)}",
                   "attention_note": "eager attention computes the full S x S score matrix (causal mask is "
                                     "added, no causal FLOP saving): attention = 4*B*H*S*S*head_dim per layer"}
    cache = r["_out"].past_key_values
    assert cache.get_seq_length() == PREFILL
    out["prefill"] = clean(r)
    write(model_id, out)

    ids1 = torch.zeros(1, 1, dtype=torch.long, device="meta")
    r2 = measure(lambda: m(input_ids=ids1, use_cache=True, **{cache_kw: cache}))
    r2["attention_check"] = attention_bmm_check(r2, m, ROOT, (LlamaAttention,))
    r2["linear_split"] = split(r2, m)
    r2["inputs"] = {"input_ids": [1, 1], "past_tokens_in_kv_cache": PREFILL,
                    "cache": "transformers DynamicCache filled by the prefill above",
                    "attention_kv_length": PREFILL + 1,
                    "logits_shape": list(r2["_out"].logits.shape)}
    out["decode_step"] = clean(r2)

    # cross-check with sdpa (decomposes to bmm on meta)
    m.set_attn_implementation("sdpa")
    rs = measure(lambda: m(input_ids=ids, use_cache=True))
    assert {k: v for k, v in rs["by_op"].items()} == out["prefill"]["by_op"], (rs["by_op"], out["prefill"]["by_op"])
    out["attention_counting"] = (
        "attn_implementation='eager' (matmul QK^T and PV -> aten.bmm; GQA k/v are repeat_kv-expanded to all "
        "query heads, so attention flops = 4*B*n_heads*S_q*S_kv*head_dim per layer). Prefill cross-checked "
        "with 'sdpa' (decomposes to aten.bmm on meta): identical per-op counts. No bmm outside attention "
        "modules (attention_check).")
    write(model_id, out)
    return out


if __name__ == "__main__":
    for mid in (sys.argv[1:] or list(CONFIGS)):
        run(mid)
