"""Shared helpers for reference FLOP / parameter counting on the meta device."""
import json
import os
import platform
import sys
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
os.makedirs(RESULTS, exist_ok=True)

CONV_OPS = {"convolution", "_convolution", "conv2d", "cudnn_convolution"}
LINEAR_OPS = {"mm", "addmm"}
ATTN_OPS = {"bmm", "baddbmm", "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_flash_attention_for_cpu", "_flash_attention_forward",
            "_efficient_attention_forward"}


def versions():
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("diffusers", "transformers", "accelerate"):
        try:
            mod = __import__(name)
            out[name] = mod.__version__
        except Exception:
            pass
    return out


def opname(op):
    s = str(op)
    # OpOverloadPacket prints as 'aten.mm'
    return s.split(".", 1)[1] if s.startswith("aten.") else s


def count_params(module):
    return int(sum(p.numel() for p in module.parameters()))


def top_names(module):
    """Top-level children, expanding ModuleLists (e.g. down_blocks -> down_blocks.0, ...)."""
    out = []
    for n, c in module.named_children():
        if isinstance(c, torch.nn.ModuleList):
            out += [f"{n}.{i}" for i in range(len(c))]
        else:
            out.append(n)
    return out


def child_params(module):
    return {n: count_params(m) for n, m in module.named_children()}


def measure(fn, attn_module_types=(), rotary_module_types=()):
    """Run fn() under FlopCounterMode; return a dict with op totals, categories and
    a breakdown of bmm flops attributed to attention modules vs. others.

    attn_module_types: classes whose instances do the attention core (their bmm/sdpa
    flops are counted as 'attention').  bmm outside those modules is reported as
    'other_bmm' so it can be checked to be zero / identified.
    """
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        out = fn()
    counts = counter.get_flop_counts()
    glob = {opname(k): int(v) for k, v in counts["Global"].items()}
    cats = defaultdict(int)
    unknown = {}
    for op, v in glob.items():
        if op in CONV_OPS:
            cats["conv"] += v
        elif op in LINEAR_OPS:
            cats["linear"] += v
        elif op in ATTN_OPS:
            cats["attention"] += v
        else:
            unknown[op] = v
            cats["other"] += v
    res = {
        "total_flops": int(sum(glob.values())),
        "by_op": glob,
        "by_category": {k: int(cats.get(k, 0)) for k in ("conv", "linear", "attention", "other")},
    }
    if unknown:
        res["unclassified_ops"] = unknown
    res["_counts"] = counts
    res["_out"] = out
    return res


def module_names_of_type(model, types, prefix):
    return [prefix + ("." + n if n else "") for n, m in model.named_modules() if isinstance(m, types)]


def attention_bmm_check(res, model, root_name, attn_types):
    """Sum bmm/baddbmm/sdpa flops inside modules of attn_types and compare with global."""
    counts = res["_counts"]
    names = module_names_of_type(model, attn_types, root_name)
    in_attn = 0
    for n in names:
        d = counts.get(n, {})
        in_attn += sum(int(v) for k, v in d.items() if opname(k) in ATTN_OPS)
    total = res["by_category"]["attention"]
    outside = total - in_attn
    if outside:
        # bmm outside attention modules (e.g. rotary inv_freq @ positions) is not attention core
        res["by_category"]["attention"] = in_attn
        res["by_category"]["other"] += outside
        res["other_note"] = ("'other' includes bmm/sdpa flops found outside attention modules "
                             "(see attention_check.bmm_sdpa_outside_attention_modules)")
    return {"attention_module_count": len(names), "bmm_sdpa_in_attention_modules": in_attn,
            "bmm_sdpa_outside_attention_modules": total - in_attn}


def submodule_flops(res, names):
    counts = res["_counts"]
    out = {}
    for n in names:
        d = counts.get(n)
        if d is None:
            continue
        out[n] = {opname(k): int(v) for k, v in d.items()}
    return out


def clean(res):
    return {k: v for k, v in res.items() if not k.startswith("_")}


def gflops(x):
    return round(x / 1e9, 6)


def write(model_id, data):
    data.setdefault("versions", versions())
    path = os.path.join(RESULTS, f"{model_id}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
    print("wrote", path)
