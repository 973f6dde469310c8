"""transformers text encoders of diffusion pipelines: CLIPTextModel (SD 1.x / 2.x / XL), CLIPTextModelWithProjection
(SDXL's second encoder) and T5EncoderModel (PixArt, SD3, Flux), as in models/sd15.yaml, sdxl.yaml and
pixart-alpha.yaml: module order of transformers' CLIPEncoderLayer and T5Block."""
from __future__ import annotations

from ..importer import Config, Part, block, network, op

# transformers ACT2FN names -> the simulator's elementwise ops (same function, its FLOP count in ops.UNARY_FLOPS)
ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu", "silu": "silu"}


def activation(config: Config, key: str, default: str | None = None) -> str:
    name = config.get(key, default)
    if name not in ACTIVATIONS:
        raise config.error(key, f"activation {name!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def heads_of(config: Config, width_key: str, heads_key: str, head_dim_key: str | None = None) -> int:
    """Number of heads, refusing a width the heads do not split evenly (or a stated head dim that disagrees)."""
    width, heads = config.int(width_key), config.int(heads_key)
    if width % heads or (head_dim_key and config.has(head_dim_key)
                         and config.int(head_dim_key) * heads != width):
        stated = f" x {head_dim_key} {config.get(head_dim_key)}" if head_dim_key and config.has(head_dim_key) else ""
        raise config.error(heads_key, f"{heads} heads{stated} do not make {width_key} {width}: heads x head dim "
                                      "must equal the width")
    return heads


def text_part(config: Config, layer: dict, embed: list, layer_args: dict, depth: int, tail: list,
              inputs: dict, width: int, tokens: int, role: str = "text_encoder") -> Part:
    ops = embed + [block("layers", "Layer", embed[-1]["name"], layer_args, repeat=depth)] + tail
    facts = {"role": role, "hidden": width, "max_tokens": tokens,
             "main_input": {"tokens": {"shape": ["B", "text_tokens"], "dtype": "int64"}},
             "params": {"text_tokens": {"default": tokens, "min": 1, "help": "text encoder sequence length in tokens"}}}
    return Part({"Layer": layer}, inputs, ops, tail[-1]["name"] if tail else "layers", facts)


def decoder_layer(qkv_bias: bool) -> dict:
    """A Llama-style decoder layer (Llama, Qwen2): RMSNorm, q/k/v (with bias in Qwen2), grouped-query causal
    attention with RoPE, bias-free o, RMSNorm, SwiGLU."""
    qkv = {} if qkv_bias else {"bias": False}
    return {"args": {"d": None, "heads": None, "kv_heads": None, "ff": None}, "inputs": ["x"], "outputs": ["out"],
            "ops": [
        op("input_norm", "rms_norm", "x"),
        op("q", "linear", "input_norm", out_features="d", **qkv),
        op("k", "linear", "input_norm", out_features="kv_heads * d / heads", **qkv),
        op("v", "linear", "input_norm", out_features="kv_heads * d / heads", **qkv),
        op("q_rope", "rope", "q"), op("k_rope", "rope", "k"),
        op("attn", "attention", ["q_rope", "k_rope", "v"], heads="heads", kv_heads="kv_heads", causal=True),
        op("o", "linear", "attn", out_features="d", bias=False), op("res1", "add", ["x", "o"]),
        op("post_norm", "rms_norm", "res1"),
        op("gate", "linear", "post_norm", out_features="ff", bias=False),
        op("up", "linear", "post_norm", out_features="ff", bias=False),
        op("act", "silu", "gate"), op("swiglu", "mul", ["act", "up"]),
        op("down", "linear", "swiglu", out_features="d", bias=False), op("out", "add", ["res1", "down"])]}


@network("CLIPTextModel", "CLIPTextModelWithProjection")
def clip(config: Config) -> Part:
    """CLIP text transformer: token + position embeddings, pre-norm layers with causal self-attention, final
    LayerNorm; WithProjection adds the pooled (end-of-text) token's projection."""
    d = config.int("hidden_size")
    heads = heads_of(config, "hidden_size", "num_attention_heads")
    act = activation(config, "hidden_act", "quick_gelu")
    layer = {"args": {"d": None, "heads": None, "ff": None}, "inputs": ["x"], "outputs": ["out"], "ops": [
        op("ln1", "layer_norm", "x"),
        op("q", "linear", "ln1", out_features="d"), op("k", "linear", "ln1", out_features="d"),
        op("v", "linear", "ln1", out_features="d"),
        op("attn", "attention", ["q", "k", "v"], heads="heads", causal=True),
        op("o", "linear", "attn", out_features="d"), op("res1", "add", ["x", "o"]),
        op("ln2", "layer_norm", "res1"), op("fc1", "linear", "ln2", out_features="ff"),
        op("act", act, "fc1"), op("fc2", "linear", "act", out_features="d"), op("out", "add", ["res1", "fc2"])]}
    positions = config.int("max_position_embeddings")
    embed = [op("token_embedding", "embedding", "tokens", num_embeddings=config.int("vocab_size"), dim=d),
             op("position_embedding", "embedding", "positions", num_embeddings=positions, dim=d),
             op("embed", "add", ["token_embedding", "position_embedding"])]
    tail = [op("final_layer_norm", "layer_norm", "layers")]
    if config.cls == "CLIPTextModelWithProjection":
        # pooled output: the end-of-text token's final hidden state (one token per prompt), projected
        tail += [op("pooled", "slice", "final_layer_norm", axis=1, start=0, stop=1),
                 op("pooled_2d", "reshape", "pooled", shape=["d0", "d2"]),
                 op("text_projection", "linear", "pooled_2d", out_features=config.int("projection_dim"), bias=False)]
    part = text_part(config, layer, embed, {"d": d, "heads": heads, "ff": config.int("intermediate_size")},
                     config.int("num_hidden_layers"), tail,
                     {"positions": {"shape": [1, "text_tokens"], "dtype": "int64"}}, d, positions)
    part.facts["hidden_out"] = "final_layer_norm"
    if config.cls == "CLIPTextModelWithProjection":
        part.facts["pooled_dim"] = config.int("projection_dim")
    return part


@network("T5EncoderModel")
def t5(config: Config) -> Part:
    """T5 encoder: RMS-norm pre-norm layers, bias-free projections, a relative position bias table shared by every
    layer (looked up once), gated-GELU (v1.1) or ReLU (v1.0) feed-forward, final RMS norm."""
    d, heads, head_dim = config.int("d_model"), config.int("num_heads"), config.int("d_kv")
    proj = config.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act_name = proj.removeprefix("gated-")
    if act_name not in ACTIVATIONS:
        raise config.error("feed_forward_proj", f"{proj!r} is not supported (supported: relu, gated-gelu, ...)")
    act = ACTIVATIONS["gelu_new" if act_name == "gelu" and gated else act_name]  # T5 v1.1: dense_act_fn gelu_new
    ff_ops = ([op("wi_0", "linear", "ln2", out_features="ff", bias=False),
               op("wi_1", "linear", "ln2", out_features="ff", bias=False), op("act", act, "wi_0"),
               op("gated", "mul", ["act", "wi_1"]), op("wo", "linear", "gated", out_features="d", bias=False)]
              if gated else
              [op("wi", "linear", "ln2", out_features="ff", bias=False), op("act", act, "wi"),
               op("wo", "linear", "act", out_features="d", bias=False)])
    # q/k/v project to heads x d_kv (T5's inner_dim, which need not equal d_model); o back to d_model
    layer = {"args": {"d": None, "inner": None, "heads": None, "ff": None}, "inputs": ["x"], "outputs": ["out"],
             "ops": [op("ln1", "rms_norm", "x"),
                     op("q", "linear", "ln1", out_features="inner", bias=False),
                     op("k", "linear", "ln1", out_features="inner", bias=False),
                     op("v", "linear", "ln1", out_features="inner", bias=False),
                     op("attn", "attention", ["q", "k", "v"], heads="heads", role="self"),
                     op("o", "linear", "attn", out_features="d", bias=False), op("res1", "add", ["x", "o"]),
                     op("ln2", "rms_norm", "res1")] + ff_ops + [op("out", "add", ["res1", "wo"])]}
    buckets = config.int("relative_attention_num_buckets", 32)
    embed = [op("embed_tokens", "embedding", "tokens", num_embeddings=config.int("vocab_size"), dim=d),
             # relative position bias: layer 0's table (buckets x heads), added to every layer's scores
             op("position_bias_lookup", "embedding", "relative_buckets", num_embeddings=buckets, dim=heads),
             op("position_bias", "transpose", "position_bias_lookup", perm=[2, 0, 1])]
    ops_tail = [op("final_layer_norm", "rms_norm", "layers")]
    part = text_part(config, layer, embed[:1], {"d": d, "inner": heads * head_dim, "heads": heads,
                                                "ff": config.int("d_ff")},
                     config.int("num_layers"), ops_tail,
                     {"relative_buckets": {"shape": ["text_tokens", "text_tokens"], "dtype": "int64"}}, d,
                     config.int("n_positions", 512))
    part.ops[1:1] = embed[1:]
    part.facts["hidden_out"] = "final_layer_norm"
    return part


@network("UMT5EncoderModel")
def umt5(config: Config) -> Part:
    """umT5 encoder (Wan 2.1's google/umt5-xxl): T5's layers, but every layer owns its relative position bias
    table (buckets x heads) and looks it up itself (transformers UMT5Attention), as models/wan21-1.3b.yaml."""
    d, heads, head_dim = config.int("d_model"), config.int("num_heads"), config.int("d_kv")
    proj = config.get("feed_forward_proj", "gated-gelu")
    if proj != "gated-gelu":
        raise config.error("feed_forward_proj", f"{proj!r} is not supported by the UMT5EncoderModel importer "
                                                "(supported: gated-gelu)")
    buckets = config.int("relative_attention_num_buckets", 32)
    layer = {"args": {"d": None, "inner": None, "heads": None, "ff": None}, "inputs": ["x", "buckets"],
             "outputs": ["out"], "ops": [
        op("rel_bias", "embedding", "buckets", num_embeddings=buckets, dim="heads"),
        op("ln1", "rms_norm", "x"),
        op("q", "linear", "ln1", out_features="inner", bias=False),
        op("k", "linear", "ln1", out_features="inner", bias=False),
        op("v", "linear", "ln1", out_features="inner", bias=False),
        op("attn", "attention", ["q", "k", "v"], heads="heads"),
        op("o", "linear", "attn", out_features="d", bias=False), op("res1", "add", ["x", "o"]),
        op("ln2", "rms_norm", "res1"),
        op("wi_0", "linear", "ln2", out_features="ff", bias=False), op("gelu", "gelu_tanh", "wi_0"),
        op("wi_1", "linear", "ln2", out_features="ff", bias=False), op("gated", "mul", ["gelu", "wi_1"]),
        op("wo", "linear", "gated", out_features="d", bias=False), op("out", "add", ["res1", "wo"])]}
    ops = [op("embed_tokens", "embedding", "tokens", num_embeddings=config.int("vocab_size"), dim=d),
           block("layers", "Layer", ["embed_tokens", "rel_buckets"],
                 {"d": d, "inner": heads * head_dim, "heads": heads, "ff": config.int("d_ff")},
                 repeat=config.int("num_layers")),
           op("final_layer_norm", "rms_norm", "layers")]
    tokens = 512   # WanPipeline max_sequence_length (umT5 has no position limit: relative positions only)
    facts = {"role": "text_encoder", "hidden": d, "max_tokens": tokens, "hidden_out": "final_layer_norm",
             "main_input": {"tokens": {"shape": ["B", "text_tokens"], "dtype": "int64"}},
             "params": {"text_tokens": {"default": tokens, "min": 1, "help": "text encoder sequence length in tokens"}}}
    return Part({"Layer": layer}, {"rel_buckets": {"shape": ["text_tokens", "text_tokens"], "dtype": "int64"}}, ops,
                "final_layer_norm", facts)


# QwenImagePipeline (diffusers 0.42 pipeline_qwenimage.py): prompt_template_encode_start_idx = 34, the chat
# template's tokens before the prompt, which the encoder runs and the pipeline then drops
QWEN_TEMPLATE_TOKENS = 34


@network("Qwen2_5_VLForConditionalGeneration")
def qwen25_vl(config: Config) -> Part:
    """Qwen2.5-VL as Qwen-Image's text encoder: only its language model runs on a text prompt (the vision tower
    sees no image and is neither run nor counted), on the chat template + prompt; the pipeline's forward call also
    evaluates the untied LM head on every position; the last hidden state without the template prefix is the
    context (models/qwen-image.yaml). Decoder layers: Qwen2's (q/k/v with bias, GQA, RMSNorm, SwiGLU)."""
    text = config.need("text_config")
    if not isinstance(text, dict):
        raise config.error("text_config", "expected the language model's config (an object)")
    lm = Config(config.path, text, config.text, config.cls)
    for key, allowed, default in (("hidden_act", ("silu",), "silu"), ("tie_word_embeddings", (False,), False),
                                  ("use_sliding_window", (False,), False)):
        lm.expect(key, allowed, default)
    d = lm.int("hidden_size")
    heads = heads_of(lm, "hidden_size", "num_attention_heads")
    kv_heads = lm.int("num_key_value_heads", heads)
    if heads % kv_heads:
        raise lm.error("num_key_value_heads", f"{kv_heads} key/value heads do not divide {heads} query heads")
    vocab = lm.int("vocab_size")
    layer = decoder_layer(qkv_bias=True)
    ops = [op("embed_tokens", "embedding", "tokens", num_embeddings=vocab, dim=d),
           block("layers", "Layer", "embed_tokens", {"d": d, "heads": heads, "kv_heads": kv_heads,
                                                     "ff": lm.int("intermediate_size")},
                 repeat=lm.int("num_hidden_layers")),
           op("norm", "rms_norm", "layers"),
           op("lm_head", "linear", "norm", out_features=vocab, bias=False),
           op("prompt_embeds", "slice", "norm", axis=1, start=QWEN_TEMPLATE_TOKENS, stop="L")]
    tokens = 128   # a typical prompt of the model card's length, as models/qwen-image.yaml (no padding)
    facts = {"role": "text_encoder", "hidden": d, "max_tokens": tokens, "hidden_out": "prompt_embeds",
             "bind": {"L": f"{QWEN_TEMPLATE_TOKENS} + text_tokens"},
             "main_input": {"tokens": {"shape": ["B", "L"], "dtype": "int64"}},
             "params": {"text_tokens": {"default": tokens, "min": 1, "help": "prompt tokens (the encoder also runs "
                                        f"the {QWEN_TEMPLATE_TOKENS}-token template prefix)"}}}
    return Part({"Layer": layer}, {}, ops, "prompt_embeds", facts)


@network("LlamaModel")
def llama_model(config: Config) -> Part:
    """transformers LlamaModel as a text encoder (HunyuanVideo's, the language model of llava-llama-3-8b): token
    embedding, LlamaDecoderLayers (bias-free q/k/v/o, grouped-query causal attention with RoPE, SwiGLU), the final
    RMSNorm; no LM head. Pipelines that read an earlier layer's hidden state still run every layer."""
    from .llm import llama_dims
    d, heads, kv_heads = llama_dims(config)
    layer = decoder_layer(qkv_bias=False)
    ops = [op("embed_tokens", "embedding", "tokens", num_embeddings=config.int("vocab_size"), dim=d),
           block("layers", "Layer", "embed_tokens", {"d": d, "heads": heads, "kv_heads": kv_heads,
                                                     "ff": config.int("intermediate_size")},
                 repeat=config.int("num_hidden_layers")),
           op("norm", "rms_norm", "layers")]
    tokens = 256   # HunyuanVideoPipeline's max_sequence_length (a config has no prompt length)
    facts = {"role": "text_encoder", "hidden": d, "max_tokens": tokens, "hidden_out": "norm",
             "main_input": {"tokens": {"shape": ["B", "text_tokens"], "dtype": "int64"}},
             "params": {"text_tokens": {"default": tokens, "min": 1, "help": "text encoder sequence length in tokens"}}}
    return Part({"Layer": layer}, {}, ops, "norm", facts)
