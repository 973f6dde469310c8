"""transformers causal LMs of the Llama family: LlamaForCausalLM (models/llama2-7b.yaml) and the mixture-of-experts
MixtralForCausalLM (models/mixtral-8x7b.yaml), in the module order of LlamaDecoderLayer / LlamaAttention / LlamaMLP
and MixtralSparseMoeBlock; prefill of the prompt, then token-by-token decode over a KV cache, logits for the last
position only (transformers' generate, logits_to_keep=1)."""
from __future__ import annotations

from ..importer import TORCH_DTYPES, Config, block, dtype_param, model_file, network, op
from .text import heads_of

ATTENTION = [
    op("input_norm", "rms_norm", "x"),
    op("q", "linear", "input_norm", out_features="d", bias=False),
    # grouped-query attention: keys and values have kv_heads heads of d / heads
    op("k", "linear", "input_norm", out_features="kv_heads * d / heads", bias=False),
    op("v", "linear", "input_norm", out_features="kv_heads * d / heads", bias=False),
    op("q_rope", "rope", "q"), op("k_rope", "rope", "k"),
    op("k_cache", "kv_cache", "k_rope", length="past + dim(x, 1)"),
    op("v_cache", "kv_cache", "v", length="past + dim(x, 1)"),
    op("attn", "attention", ["q_rope", "k_cache", "v_cache"], heads="heads", kv_heads="kv_heads", causal=True),
    op("o", "linear", "attn", out_features="d", bias=False), op("res1", "add", ["x", "o"]),
    op("post_norm", "rms_norm", "res1")]

DECODER_LAYER = {"args": {"d": None, "heads": None, "kv_heads": None, "ff": None}, "inputs": ["x"],
                 "outputs": ["out"], "ops": ATTENTION + [
    op("gate", "linear", "post_norm", out_features="ff", bias=False),
    op("up", "linear", "post_norm", out_features="ff", bias=False),
    op("act", "silu", "gate"), op("swiglu", "mul", ["act", "up"]),
    op("down", "linear", "swiglu", out_features="d", bias=False), op("out", "add", ["res1", "down"])]}

# MixtralSparseMoeBlock: router logits, softmax, top-k; each token's k rows through their experts' SwiGLU
# (moe_linear: uniform routing, the weights of the experts the pass's tokens reach), weighted sum of the k rows
MOE_DECODER_LAYER = {"args": {"d": None, "heads": None, "kv_heads": None, "ff": None, "experts": None, "top_k": None},
                     "inputs": ["x"], "outputs": ["out"], "ops": ATTENTION + [
    op("router", "linear", "post_norm", out_features="experts", bias=False),
    op("router_probs", "softmax", "router"),
    op("gate", "moe_linear", "post_norm", experts="experts", top_k="top_k", out_features="ff"),
    op("up", "moe_linear", "post_norm", experts="experts", top_k="top_k", out_features="ff"),
    op("act", "silu", "gate"), op("swiglu", "mul", ["act", "up"]),
    op("down", "moe_linear", "swiglu", experts="experts", top_k="top_k", out_features="d", routed=True),
    op("routing_weights", "slice", "router_probs", axis=-1, start=0, stop="top_k"),
    op("routing_weights_rows", "reshape", "routing_weights", shape=["d0", "d1", "d2", 1]),
    op("weighted", "mul", ["down", "routing_weights_rows"]),
    op("combined", "reduce", "weighted", axis=2, mode="sum"), op("out", "add", ["res1", "combined"])]}


def llama_dims(config: Config, expect: tuple = ()) -> tuple[int, int, int]:
    """Width, query heads and key/value heads of a Llama-style config, refusing the variants the blocks do not
    model (another activation, attention or MLP biases, and whatever `expect` adds)."""
    for key, allowed, default in (("hidden_act", ("silu",), "silu"), ("attention_bias", (False,), False),
                                  ("mlp_bias", (False,), False), *expect):
        config.expect(key, allowed, default)
    heads = heads_of(config, "hidden_size", "num_attention_heads", "head_dim")
    kv_heads = config.int("num_key_value_heads", heads)
    if heads % kv_heads:
        raise config.error("num_key_value_heads", f"{kv_heads} key/value heads do not divide {heads} query heads")
    return config.int("hidden_size"), heads, kv_heads


@network("LlamaForCausalLM", "MixtralForCausalLM")
def llama(config: Config) -> dict:
    d, heads, kv_heads = llama_dims(config, (("tie_word_embeddings", (False,), False),
                                             ("sliding_window", (None,), None)))
    vocab, layers = config.int("vocab_size"), config.int("num_hidden_layers")
    args = {"d": d, "heads": heads, "kv_heads": kv_heads, "ff": config.int("intermediate_size")}
    moe = config.cls == "MixtralForCausalLM"
    if moe:
        experts = config.int("num_local_experts")
        top_k = config.int("num_experts_per_tok")
        if top_k > experts:
            raise config.error("num_experts_per_tok", f"{top_k} experts per token of {experts}")
        args |= {"experts": experts, "top_k": top_k}
    dtype = TORCH_DTYPES.get(config.get("dtype", config.get("torch_dtype")), "fp16")

    def body(tokens_in: str, last: list) -> list:
        return [op("embed_tokens", "embedding", tokens_in, num_embeddings=vocab, dim=d),
                block("layers", "DecoderLayer", "embed_tokens", args, repeat=layers),
                op("norm", "rms_norm", "layers")] + last + [
                op("lm_head", "linear", last[-1]["name"] if last else "norm", out_features=vocab, bias=False)]

    stages = [
        {"name": "prefill", "description": "the whole prompt in one forward pass, writing the KV cache",
         "bind": {"past": 0}, "inputs": {"tokens": {"shape": ["batch", "prompt_tokens"], "dtype": "int64"}},
         "ops": body("tokens", [op("last_token", "slice", "norm", axis=1, start=-1, stop="prompt_tokens")])},
        {"name": "decode", "description": "one token per step; step t attends over prompt_tokens + t + 1 cached keys",
         "repeat": "output_tokens - 1", "iteration": "t", "bind": {"past": "prompt_tokens + t"},
         "shares_weights_with": "prefill", "inputs": {"tokens": {"shape": ["batch", 1], "dtype": "int64"}},
         "ops": body("tokens", [])}]
    params = {
        "batch": {"default": 1, "min": 1, "help": "sequences generated together (batch size)"},
        # the suite's LLM workload (models/llama2-7b.yaml), so imported and built-in models compare directly
        "prompt_tokens": {"default": 512, "min": 1, "help": "prompt length in tokens"},
        # Llama: the decode-iteration limit + 1 (as the built-ins); Mixtral: its 32K context, as mixtral-8x7b.yaml
        "output_tokens": {"default": 256, "min": 1,
                          "max": config.int("max_position_embeddings") if moe else 131073,
                          "help": "tokens generated (the first by prefill, the rest by decode steps)"},
        "dtype": dtype_param(dtype)}
    name = f"{config.cls} ({config.path.parent.name})"
    moe_text = f", top-{args['top_k']} of {args['experts']} experts" if moe else ""
    return model_file(config, name, "llm", params, {"DecoderLayer": MOE_DECODER_LAYER if moe else DECODER_LAYER},
                      stages, f"{layers}-layer decoder-only transformer ({heads} heads, {kv_heads} key/value heads"
                      f"{moe_text}); prefill of the prompt, then token-by-token decode with a KV cache")
