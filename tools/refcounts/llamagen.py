"""LlamaGen class-conditional generators (Sun et al. 2024, arXiv 2406.06525): params, prefill and one decode step.

The networks are LlamaGen's own code, imported from a checkout of github.com/FoundationVision/LlamaGen (the figures
in tests/test_models_llamagen.py were counted at commit ce98ec41803a74a90ce68c40ababa9eaeffeb4ec):
    git --git-dir=<mirror> archive <commit> autoregressive tokenizer utils | tar -x -C <checkout>
    <venv>/bin/python llamagen.py <checkout> [GPT-B GPT-L GPT-XL GPT-XXL GPT-3B]
Only torch is needed (torch 2.13.0+cpu here). Each model is built as autoregressive/sample/sample_c2i.py builds it
for `--image-size 384` (vocab 16384, block_size (384/16)^2 = 576, 1000 classes, one class token, c2i) on the
`meta` device, and its forward is called with the arguments autoregressive/models/generate.py passes with
classifier-free guidance (cfg_scale 4.0 > 1): 8 class labels + 8 null labels = 16 streams; `setup_caches` with
max_seq_length 1 + 576 (rounded up to 584 by find_multiple), so every attention call reads the whole
preallocated cache under a mask. Prefill: cond_idx [16], input_pos [0]; decode: idx [16, 1], input_pos [1].
"""
import sys

import torch

from common import attention_bmm_check, clean, count_params, measure, opname, write

BATCH = 8                     # sample_c2i.py: class_labels = [207, 360, 387, 974, 88, 979, 417, 279]
STREAMS = 2 * BATCH           # cfg_scale 4.0 > 1: conditional + null-class streams in one batch
IMAGE_TOKENS = (384 // 16) ** 2
MODELS = ("GPT-B", "GPT-L", "GPT-XL", "GPT-XXL", "GPT-3B")


def head_flops(res):
    """FLOPs of the output projection (`output`, the 16384-way logits)."""
    return sum(int(v) for k, v in res["_counts"].get("Transformer.output", {}).items()
               if opname(k) in ("mm", "addmm"))


def run(name, gpt_models, attention_cls):
    # Transformer.__init__ reads its drop-path rates with .item() (all 0 here), which a meta tensor cannot answer:
    # that one linspace is made on the CPU; everything else is built on the meta device
    linspace = torch.linspace
    torch.linspace = lambda *a, **k: linspace(*a, **{**k, "device": "cpu"})
    try:
        with torch.device("meta"):
            m = gpt_models[name](vocab_size=16384, block_size=IMAGE_TOKENS, num_classes=1000, cls_token_num=1,
                                 model_type="c2i")
    finally:
        torch.linspace = linspace
    with torch.device("meta"):
        m.eval()
        m.setup_caches(max_batch_size=STREAMS, max_seq_length=1 + IMAGE_TOKENS, dtype=torch.float32)
        cond = torch.zeros(STREAMS, dtype=torch.long)
        prefill_pos = torch.arange(0, 1)
        token = torch.zeros(STREAMS, 1, dtype=torch.long)
        decode_pos = torch.tensor([1], dtype=torch.int)
    layer = m.layers[0]
    out = {"model": name,
           "config": {"dim": m.config.dim, "n_layer": m.config.n_layer, "n_head": m.config.n_head,
                      "ffn_hidden": layer.feed_forward.w1.out_features, "vocab_size": m.config.vocab_size,
                      "block_size": m.config.block_size, "cache_length": m.max_seq_length},
           "params": count_params(m),
           "params_breakdown": {"cls_embedding": count_params(m.cls_embedding),
                                "tok_embeddings": count_params(m.tok_embeddings),
                                "per_layer": count_params(layer), "norm": count_params(m.norm),
                                "output": count_params(m.output)}}
    runs = {"prefill": lambda: m(None, cond, input_pos=prefill_pos),
            "decode_step": lambda: m(token, cond_idx=None, input_pos=decode_pos)}
    for key, fn in runs.items():
        r = measure(fn)
        r["attention_check"] = attention_bmm_check(r, m, "Transformer", (attention_cls,))
        r["output_head"] = head_flops(r)
        out[key] = clean(r)
    return out


def main(argv):
    if not argv:
        sys.exit("usage: llamagen.py <LlamaGen checkout> [model ...]")
    sys.path.insert(0, argv[0])
    from autoregressive.models.gpt import GPT_models, Attention
    for name in argv[1:] or MODELS:
        data = run(name, GPT_models, Attention)
        write("llamagen-" + name.split("-", 1)[1].lower(), data)
        print(name, data["params"], {k: data[k]["by_category"] for k in ("prefill", "decode_step")})


if __name__ == "__main__":
    main(sys.argv[1:])
