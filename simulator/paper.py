"""Re-run the characterisation of Golden et al., "Generative AI Beyond LLMs: System Implications of Multi-Modal
Generation" (ISPASS 2024) on any device, analytically, and check each of its findings against the numbers.

`characterise()` runs the study's models (our reconstruction of its suite) with materialised and with Flash
attention, the image-size and frame-count series, and keeps every Result. Each finding is one function registered
by its id (`@finding("conv_share_diffusion")`, in FINDINGS) that derives the simulated value, the study's pass
criterion and the explanation from those results; `findings()` runs them all. Figures and the write-up read the
same results, and every derived number (shares, intensity, ridge point, ...) comes from metrics.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .engine import FULL, Terms
from .metrics import attained, category_shares, intensity, ridge_point, role_split, share
from . import simulate

# The study's suite as reconstructed in models/ (issue: model suite), plus the LLM baseline.
STUDY_MODELS = {
    "diffusion-tti": ["sd15", "sdxl", "imagen", "deepfloyd-if"],
    "transformer-tti": ["muse", "parti", "cm3leon"],
    "ttv": ["make-a-video", "phenaki", "modelscope-t2v"],
    "llm": ["llama2-7b"],
}
SCALING_MODEL, SCALING_SIDES = "sd15", (256, 384, 512, 768, 1024)
FRAME_MODELS, FRAME_COUNTS = ("modelscope-t2v", "make-a-video"), (8, 16, 32)
TOLERANCE = 0.10  # absolute tolerance on a share (10 percentage points) for "up to X %" claims
# "Beyond the study": the same questions asked of the 2025 generation models (issue 13), those that are built in
BEYOND_MODELS = ("wan21-1.3b", "wan21-14b", "ltx-video", "mochi-1", "hunyuanvideo", "sd35-large", "qwen-image")
# The study profiled each model's original PyTorch implementation in eager mode on an A100, first with its own
# attention (the materialised score matrix), then with Flash Attention (Golden et al. 2024, Sec. III).
STUDY_STACK = "eager"


@dataclass
class Characterisation:
    hardware: str
    terms: Terms
    hw_overrides: dict
    models: dict                                    # family -> [model ids]
    stack: str = STUDY_STACK
    results: dict = field(default_factory=dict)     # (model, attention) -> Result
    scaling: dict = field(default_factory=dict)     # (side, attention) -> Result
    frames: dict = field(default_factory=dict)      # (model, frames) -> Result (flash)
    beyond: dict = field(default_factory=dict)      # (2025 model, attention) -> Result

    def family_of(self, model: str) -> str:
        return next(f for f, ms in self.models.items() if model in ms)

    @property
    def hardware_name(self) -> str:
        return next(iter(self.results.values())).hardware.name


def characterise(hardware: str = "a100", hw_overrides: dict | None = None, terms: Terms = FULL,
                 models: dict | None = None, quick: bool = False, stack: str = STUDY_STACK) -> Characterisation:
    """Every run the report needs, under the study's software stack unless told otherwise. `quick` trims the
    series (for tests), not the model list."""
    models = models or STUDY_MODELS
    ch = Characterisation(hardware, terms, dict(hw_overrides or {}), models, stack)

    def run(model, hardware, overrides, hw_overrides, attention, terms):
        return simulate.run(model, hardware, overrides, hw_overrides, attention, terms, stack=stack)

    for family, ids in models.items():
        for model in ids:
            for attention in ("math", "flash"):
                ch.results[(model, attention)] = run(model, hardware, None, hw_overrides, attention, terms)
    sides = SCALING_SIDES[::2] if quick else SCALING_SIDES
    for side in sides:
        for attention in ("math", "flash"):
            ch.scaling[(side, attention)] = run(SCALING_MODEL, hardware, {"height": side, "width": side},
                                                hw_overrides, attention, terms)
    counts = FRAME_COUNTS[:2] if quick else FRAME_COUNTS
    for model in FRAME_MODELS:
        if any(model in ids for ids in models.values()):
            for n in counts:
                ch.frames[(model, n)] = run(model, hardware, {"frames": n}, hw_overrides, "flash", terms)
    from .library import builtin_ids
    shipped = set(builtin_ids("models"))
    for model in (m for m in BEYOND_MODELS if m in shipped):
        for attention in ("math", "flash"):
            ch.beyond[(model, attention)] = run(model, hardware, None, hw_overrides, attention, terms)
    return ch


# ----------------------------------------------------------------------------------------------- measurements

def flash_speedup(ch: Characterisation, model: str) -> float:
    return ch.results[(model, "math")].time_s / ch.results[(model, "flash")].time_s


def attention_layers(result, stage: str | None = None) -> list[dict]:
    """Every attention op in execution order: stage, name, role, query and key lengths, head dim, heads."""
    rows = []
    for s in result.model.stages:
        if stage and s.name != stage:
            continue
        for op in s.ops:
            if op.kind != "attention":
                continue
            q, k = (s.tensors[t].shape for t in op.inputs[:2])
            rows.append({"stage": s.name, "name": op.name, "role": op.role, "q_len": q[1], "kv_len": k[1],
                         "batch": q[0], "count": op.count})
    return rows


def stage_points(result) -> list[dict]:
    """Per stage: arithmetic intensity, attained FLOP/s and the bound that takes most of its time."""
    return [{"model": result.model.id, "stage": s["name"], "intensity": intensity(s["flops"], s["bytes"]),
             "flops_per_s": attained(s["flops"], s["time_s"]), "bound": s["bound"], "time_s": s["time_s"]}
            for s in result.by_stage()]


def _exponent(xs, ys) -> float:
    """Least-squares slope of log(y) against log(x): y ~ x^slope."""
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(xs, ys, 1)[0])


MAIN_STAGE = {"diffusion-tti": ("denoiser",), "transformer-tti": ("decode", "denoiser"), "ttv": ("denoiser",),
              "llm": ("prefill", "decode")}


# --------------------------------------------------------------------------------------------------- findings
# One function per finding of the study, registered by its id (in the order the report lists them). Each
# computes, from the characterisation's simulated numbers, the finding's value, whether it holds by the study's
# own criterion, and the explanation the report prints.

@dataclass
class Finding:
    claim: str              # the study's statement
    study_value: object     # the number (or range, or description) the study reports
    simulated_value: object
    holds: bool             # the study's criterion applied to the simulated value
    explanation: str        # why, in terms of the simulated numbers
    detail: dict = field(default_factory=dict)


FINDINGS: dict = {}  # finding id -> function(Characterisation) -> Finding


def finding(fid: str):
    """Register a finding's function under its id: `@finding("conv_share_diffusion")`."""
    def register(fn):
        if fid in FINDINGS:
            raise ValueError(f"finding '{fid}' is registered twice")
        FINDINGS[fid] = fn
        return fn
    return register


def findings(ch: Characterisation) -> list[dict]:
    """Every registered finding evaluated on `ch`, as the records of findings.json."""
    out = []
    for fid, fn in FINDINGS.items():
        f = fn(ch)
        out.append({"id": fid, "claim": f.claim, "study_value": f.study_value, "simulated_value": f.simulated_value,
                    "holds": bool(f.holds), "explanation": f.explanation, "detail": f.detail})
    return out


def _largest_share(ch: Characterisation, family: str, category: str) -> tuple[dict, str, str]:
    """Each model's share of time in `category` (with Flash Attention), the model with the largest share and
    the bound taking most of that category's time in it."""
    per_model = {m: category_shares(ch.results[(m, "flash")])[category] for m in ch.models[family]}
    top = max(per_model, key=per_model.get)
    return per_model, top, ch.results[(top, "flash")].by_category()[category]["bound"]


@finding("conv_share_diffusion")
def conv_share_diffusion(ch: Characterisation) -> Finding:
    study = 0.44
    per_model, top, bound = _largest_share(ch, "diffusion-tti", "conv")
    return Finding(
        "after Flash Attention, convolution is up to 44 % of execution time in diffusion TTI models", study,
        per_model[top], abs(per_model[top] - study) <= TOLERANCE,
        f"{top} spends the largest convolution share ({100 * per_model[top]:.0f} % of time on "
        f"{ch.hardware_name}); its convolutions are mostly {bound}-bound, and with attention fused they become the "
        f"largest cost of the UNet.",
        {"per_model": per_model})


@finding("linear_share_transformer")
def linear_share_transformer(ch: Characterisation) -> Finding:
    study = 0.49
    per_model, top, bound = _largest_share(ch, "transformer-tti", "linear")
    return Finding(
        "after Flash Attention, linear layers are up to 49 % of execution time in transformer TTI models", study,
        per_model[top], abs(per_model[top] - study) <= TOLERANCE,
        f"{top} has the largest linear share ({100 * per_model[top]:.0f} %); its linear layers are {bound}-bound, "
        f"reading every weight for each generated token.", {"per_model": per_model})


@finding("flash_speedup_gap")
def flash_speedup_gap(ch: Characterisation) -> Finding:
    diff = {m: flash_speedup(ch, m) for m in ch.models["diffusion-tti"]}
    trans = {m: flash_speedup(ch, m) for m in ch.models["transformer-tti"]}
    mean_trans = float(np.mean(list(trans.values())))
    ratios = {m: s / mean_trans for m, s in diff.items()}
    lo, hi = min(ratios.values()), max(ratios.values())
    return Finding(
        "diffusion TTI models gain 1.1-2.5x more from Flash Attention than transformer TTI models", [1.1, 2.5],
        [lo, hi], lo >= 1.0 and lo <= 2.5 and hi >= 1.1,
        f"Flash Attention speeds diffusion models up {min(diff.values()):.2f}-{max(diff.values()):.2f}x but "
        f"transformer TTI only {min(trans.values()):.2f}-{max(trans.values()):.2f}x: diffusion attends over "
        f"thousands of pixels whose score matrices dominate memory traffic, while token-by-token decoding "
        f"attends from one query and is bound by reading weights.", {"diffusion": diff, "transformer": trans})


@finding("prefill_decode_analogy")
def prefill_decode_analogy(ch: Characterisation) -> Finding:
    def main_points(model):
        return [p for p in stage_points(ch.results[(model, "flash")])
                if p["stage"] in MAIN_STAGE[ch.family_of(model)]]
    diff_pts = [p for m in ch.models["diffusion-tti"] for p in main_points(m)]
    trans_pts = [p for m in ch.models["transformer-tti"] for p in main_points(m)]
    llm_result = ch.results[(ch.models["llm"][0], "flash")]
    llm = {p["stage"]: p for p in stage_points(llm_result)}
    ridge = ridge_point(llm_result.hardware.spec, "bf16")
    diff_int = float(np.median([p["intensity"] for p in diff_pts]))
    trans_int = float(np.median([p["intensity"] for p in trans_pts]))
    prefill, decode = llm["prefill"]["intensity"], llm["decode"]["intensity"]
    holds = (diff_int > ridge / 4 and trans_int < ridge / 4
             and abs(math.log(diff_int / prefill)) < abs(math.log(diff_int / decode))
             and abs(math.log(trans_int / decode)) < abs(math.log(trans_int / prefill)))
    return Finding(
        "diffusion TTI resembles LLM prefill (compute-bound, high arithmetic intensity); transformer TTI resembles "
        "decode (memory-bound)", {"diffusion": "prefill-like", "transformer": "decode-like"},
        {"diffusion_intensity": diff_int, "transformer_intensity": trans_int, "llm_prefill_intensity": prefill,
         "llm_decode_intensity": decode, "ridge_point": ridge}, holds,
        f"Median arithmetic intensity of the diffusion denoisers is {diff_int:.0f} FLOP/B (LLM prefill "
        f"{prefill:.0f}) against {trans_int:.1f} FLOP/B for transformer TTI generation (LLM decode {decode:.1f}); "
        f"{ch.hardware_name}'s ridge point is {ridge:.0f} FLOP/B.",
        {"diffusion_bounds": {f"{p['model']}/{p['stage']}": p["bound"] for p in diff_pts},
         "transformer_bounds": {f"{p['model']}/{p['stage']}": p["bound"] for p in trans_pts}})


@finding("seq_len_variation")
def seq_len_variation(ch: Characterisation) -> Finding:
    layers = [r for r in attention_layers(ch.results[("sd15", "flash")], "denoiser") if r["role"] == "self"]
    lens = [r["q_len"] for r in layers]
    steps = [max(a, b) / min(a, b) for a, b in zip(lens, lens[1:]) if a != b]
    per_level = max(steps) if steps else 1.0
    return Finding(
        "the attention sequence length varies up to 4x within one diffusion inference", 4.0, per_level,
        abs(per_level - 4.0) < 0.5,
        f"Each down/up-sampling of the UNet halves or doubles both image sides, so consecutive attention layers "
        f"differ 4x in sequence length; over a whole sd15 pass it spans {min(lens)}-{max(lens)} tokens "
        f"({max(lens) // min(lens)}x).", {"lengths": lens, "overall_ratio": max(lens) / min(lens)})


@finding("image_size_scaling")
def image_size_scaling(ch: Characterisation) -> Finding:
    sides = sorted({s for s, _ in ch.scaling})
    conv_t = [ch.scaling[(s, "flash")].by_category()["conv"]["time_s"] for s in sides]
    attn_t = [ch.scaling[(s, "flash")].by_category()["attention"]["time_s"] for s in sides]
    mem = [max(st.peak_activation_bytes for st in ch.scaling[(s, "math")].model.stages
               if st.name == "denoiser") for s in sides]
    scores = []
    for s in sides:
        r = ch.scaling[(s, "math")]
        scores.append(max(op.result.workspace * op.count for st in r.model.stages for op in st.ops
                          if st.name == "denoiser" and op.kind == "attention"))
    e_conv, e_attn, e_mem = _exponent(sides, conv_t), _exponent(sides, attn_t), _exponent(sides, scores)
    return Finding(
        "with Flash Attention, convolution time scales more strongly with image size than attention; without it "
        "attention memory grows with the 4th power of the image side",
        {"conv_exponent_gt_attention": True, "attention_memory_exponent": 4.0},
        {"conv_time_exponent": e_conv, "flash_attention_time_exponent": e_attn, "score_memory_exponent": e_mem},
        e_conv > e_attn and abs(e_mem - 4.0) < 0.3,
        f"Over {sides[0]}-{sides[-1]} px, convolution time grows as side^{e_conv:.2f} and fused attention time as "
        f"side^{e_attn:.2f}; the materialised score matrix grows as side^{e_mem:.2f} (tokens ~ side^2, scores ~ "
        f"tokens^2).", {"sides": sides, "conv_time_s": conv_t, "attention_time_s": attn_t, "score_bytes": scores,
                         "denoiser_peak_activation_bytes": mem})


@finding("temporal_attention_share")
def temporal_attention_share(ch: Characterisation) -> Finding:
    shares = {}
    for m in ch.models["ttv"]:
        split = role_split(ch.results[(m, "flash")])
        if "temporal" not in split:
            continue
        t_flops = split["temporal"]["flops"]
        s_flops = split.get("spatial", {"flops": 0.0})["flops"]
        shares[m] = {"temporal_time_share": share(split["temporal"]["time_s"],
                                                  sum(v["time_s"] for v in split.values())),
                     "temporal_flops_share": share(t_flops, sum(v["flops"] for v in split.values())),
                     "temporal_over_spatial_flops": t_flops / s_flops if s_flops else float("inf")}
    top = max(shares, key=lambda m: shares[m]["temporal_time_share"])
    sv = shares[top]
    return Finding(
        "in TTV models temporal attention is over 60 % of total attention time despite far fewer FLOPs than "
        "spatial attention", 0.60, sv["temporal_time_share"],
        sv["temporal_time_share"] > 0.60 and sv["temporal_over_spatial_flops"] < 1.0,
        f"In {top}, temporal attention takes {100 * sv['temporal_time_share']:.0f} % of attention time with "
        f"{100 * sv['temporal_flops_share']:.0f} % of its FLOPs: over only a few frames each fused-attention block "
        f"is mostly padding and the work is memory-bound, while spatial attention over thousands of pixels runs "
        f"near the matrix-unit peak.", {"per_model": shares})


# ---------------------------------------------------------------------------------------- beyond the study

def beyond_the_study(ch: Characterisation) -> list[dict]:
    """The study's characterisation applied to the 2025 models (`ch.beyond`): per model, the share of time in
    each operator category (with Flash Attention), the end-to-end gain from Flash Attention, the sequence
    lengths of the denoiser's own attention (and how far they vary within one pass), attention time by role
    (full 3-D, joint, spatial, temporal, cross) and where the denoiser's arithmetic intensity sits between the
    LLM's prefill and decode."""
    llm_id = (ch.models.get("llm") or [None])[0]
    llm = ch.results.get((llm_id, "flash"))
    ref = {p["stage"]: p["intensity"] for p in stage_points(llm)} if llm is not None else {}
    rows = []
    for model in dict.fromkeys(m for m, _ in ch.beyond):
        math_r, flash_r = ch.beyond[(model, "math")], ch.beyond[(model, "flash")]
        own: dict = {}  # role -> query lengths of the denoiser's own (not cross) attention layers
        for r in attention_layers(flash_r, "denoiser"):
            if r["role"] != "cross":
                own.setdefault(r["role"] or "self", []).append(r["q_len"])
        text = [r["kv_len"] for r in attention_layers(flash_r, "denoiser") if r["role"] == "cross"]
        split = role_split(flash_r)
        attn_time = sum(v["time_s"] for v in split.values())
        den = next(p for p in stage_points(flash_r) if p["stage"] == "denoiser")
        dtype = flash_r.model.params.get("dtype", "bf16")
        like = None
        if {"prefill", "decode"} <= set(ref):
            nearer_prefill = abs(math.log(den["intensity"] / ref["prefill"])) < \
                abs(math.log(den["intensity"] / ref["decode"]))
            like = "prefill-like" if nearer_prefill else "decode-like"
        rows.append({
            "model": model, "family": flash_r.model.family, "params": dict(flash_r.model.params),
            "time_s": flash_r.time_s, "math_time_s": math_r.time_s, "flash_gain": math_r.time_s / flash_r.time_s,
            "category_shares": category_shares(flash_r),
            "attention_tokens": {role: [min(v), max(v)] for role, v in own.items()},
            # within one role (a UNet's self-attention across its levels; one length per role in a DiT)
            "attention_length_variation": max((max(v) / min(v) for v in own.values()), default=None),
            "cross_attention_tokens": max(text) if text else None,
            "attention_role_shares": {role: share(v["time_s"], attn_time) for role, v in split.items()},
            "denoiser_intensity": den["intensity"], "denoiser_bound": den["bound"],
            "ridge_point": ridge_point(flash_r.hardware.spec, dtype),
            "llm_prefill_intensity": ref.get("prefill"), "llm_decode_intensity": ref.get("decode"),
            "resembles": like})
    return rows


def beyond_summary(ch: Characterisation, rows: list) -> str:
    """Two sentences comparing the 2025 models with the study's, every number computed from `ch`."""
    if not rows:
        return ""
    attn = [r["category_shares"]["attention"] for r in rows]
    gains = [r["flash_gain"] for r in rows]
    var = [r["attention_length_variation"] for r in rows if r["attention_length_variation"]]
    like = [r["resembles"] for r in rows if r["resembles"]]
    study_ttv = [category_shares(ch.results[(m, "flash")])["attention"] for m in ch.models.get("ttv", [])
                 if (m, "flash") in ch.results]
    study_diff = [flash_speedup(ch, m) for m in ch.models.get("diffusion-tti", []) if (m, "math") in ch.results]
    out = (f"Across the {len(rows)} models, attention takes {100 * min(attn):.0f}-{100 * max(attn):.0f} % of "
           f"end-to-end time with Flash Attention"
           + (f" (the study's video models: {100 * min(study_ttv):.0f}-{100 * max(study_ttv):.0f} %)" if study_ttv
              else "")
           + f", and Flash Attention speeds them up {min(gains):.2f}-{max(gains):.2f}x"
           + (f" (the study's diffusion models: {min(study_diff):.2f}-{max(study_diff):.2f}x)" if study_diff else "")
           + ".")
    if var:
        roles = sorted({role for r in rows for role in r["attention_tokens"]})
        out += (f" Their denoisers run each of their attention roles ({', '.join(roles)}) at one sequence length "
                f"through the whole pass" if max(var) == 1.0 else
                f" Their denoisers' own attention varies {min(var):.3g}-{max(var):.3g}x in sequence length within "
                f"one pass and role")
        if "seq_len_variation" in FINDINGS and ("sd15", "flash") in ch.results:
            out += f" (the sd15 UNet: {FINDINGS['seq_len_variation'](ch).simulated_value:.3g}x between levels)"
        out += "."
    if like:
        out += (f" {like.count('prefill-like')} of {len(like)} denoisers are prefill-like by arithmetic intensity "
                f"({min(r['denoiser_intensity'] for r in rows):.0f}-{max(r['denoiser_intensity'] for r in rows):.0f}"
                f" FLOP/B).")
    return out


# ------------------------------------------------------------------------------------------------- the report

FIGURES = {
    "breakdown": "Operator-category breakdown per model, materialised vs Flash attention",
    "flash_speedup": "Flash Attention speed-up per model, by family",
    "roofline": "Operators of every model on the device roofline, with LLM prefill and decode",
    "seqlen": "Attention sequence length per layer through the diffusion models",
    "scaling": f"Time by category vs image size for {SCALING_MODEL}",
    "temporal": "Spatial vs temporal attention in the video models",
    "beyond": "Beyond the study: time by category and attention by role in the 2025 models",
}


def make_figures(ch: Characterisation, out_dir) -> dict:
    """Every figure of the report, as PNG and SVG in `out_dir`. Returns name -> [paths]."""
    from pathlib import Path

    from . import plots
    out_dir = Path(out_dir)
    families = {m: f for f, ms in ch.models.items() for m in ms}
    ordered = [m for ms in ch.models.values() for m in ms]
    paths = {}
    pairs = [(m, ch.results[(m, "math")], ch.results[(m, "flash")]) for m in ordered]
    paths["breakdown"] = plots.save_both(plots.figure_breakdown(pairs, families), out_dir / "breakdown")
    speedups = {m: flash_speedup(ch, m) for m in ordered}
    paths["flash_speedup"] = plots.save_both(plots.figure_flash_speedup(speedups, families),
                                              out_dir / "flash_speedup")
    llm = ch.models["llm"][0]
    flash = [ch.results[(m, "flash")] for m in ordered]
    stars = [(ch.results[(llm, "flash")], "prefill"), (ch.results[(llm, "flash")], "decode")]
    paths["roofline"] = plots.save_both(plots.figure_roofline(flash, families, stars), out_dir / "roofline")
    series = [("sd15 denoiser", attention_layers(ch.results[("sd15", "flash")], "denoiser"))]
    for m in ch.models["diffusion-tti"]:
        r = ch.results[(m, "flash")]
        for stage in ("sr1", "sr2"):
            rows = attention_layers(r, stage)
            if rows and m != "sd15":
                series.append((f"{m} {stage}", rows))
    paths["seqlen"] = plots.save_both(plots.figure_seqlen(series), out_dir / "seqlen")
    sides = sorted({s for s, _ in ch.scaling})
    paths["scaling"] = plots.save_both(plots.figure_scaling(sides, [ch.scaling[(s, "flash")] for s in sides],
                                                             [ch.scaling[(s, "math")] for s in sides]),
                                        out_dir / "scaling")
    splits = {m: role_split(ch.results[(m, "flash")]) for m in ch.models.get("ttv", [])}
    # models whose attention is mostly factorised into spatial and temporal parts (not Phenaki's full 3-D core)
    splits = {m: s for m, s in splits.items() if "temporal" in s and "spatial" in s
              and (s["temporal"]["time_s"] + s["spatial"]["time_s"]) >= 0.5 * sum(v["time_s"] for v in s.values())}
    frames = {}
    for (m, n), r in sorted(ch.frames.items()):
        split = role_split(r)
        if "temporal" in split and "spatial" in split:
            frames.setdefault(m, []).append((n, split))
    paths["temporal"] = plots.save_both(plots.figure_temporal(splits, frames), out_dir / "temporal")
    rows = beyond_the_study(ch)
    if rows:
        paths["beyond"] = plots.save_both(plots.figure_beyond(rows), out_dir / "beyond")
    return paths


def fmt_value(value) -> str:
    """A finding's study or simulated value as short text: 3 significant digits, ranges as a–b, dicts as
    'key value, ...' (the report's table and `report paper`'s summary on the terminal)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "–".join(fmt_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt_value(v)}" for k, v in value.items())
    return str(value)


def report_markdown(ch: Characterisation, found: list, figures: dict, created: str) -> str:
    from .report import seconds
    r0 = next(iter(ch.results.values()))
    lines = [
        "# Generative AI beyond LLMs: the characterisation, re-run analytically",
        "",
        f"Device: **{r0.hardware.name}** (`{ch.hardware}`{', with ' + ', '.join(f'{k}={v}' for k, v in ch.hw_overrides.items()) if ch.hw_overrides else ''}); "
        f"efficiency terms: {ch.terms.describe()}; software stack: {r0.stack.name if r0.stack else ch.stack} "
        f"(`{ch.stack}`). Generated {created} by "
        "`python -m simulator report paper`.",
        "",
        "This report re-derives the findings of Golden et al., *Generative AI Beyond LLMs: System Implications of "
        "Multi-Modal Generation* (ISPASS 2024) from first principles: every number below comes from the simulator's "
        "operator-level costs of the models listed, not from measurements. A finding that does not hold on this "
        "device is reported as such.",
        "",
        "## Findings",
        "",
        "| finding | study | simulated | holds | why |",
        "|---|---|---|---|---|",
    ]
    for f in found:
        lines.append(f"| `{f['id']}`: {f['claim']} | {fmt_value(f['study_value'])} | "
                     f"{fmt_value(f['simulated_value'])} | {'yes' if f['holds'] else '**no**'} | {f['explanation']} |")
    lines += ["", "## Models and workloads", "",
              "| model | family | workload | time (math) | time (flash) | flash speed-up | largest category (flash) |",
              "|---|---|---|---|---|---|---|"]
    for family, ids in ch.models.items():
        for m in ids:
            rm, rf = ch.results[(m, "math")], ch.results[(m, "flash")]
            shares = category_shares(rf)
            top = max(shares, key=shares.get)
            workload = ", ".join(f"{k}={v}" for k, v in rf.model.params.items())
            lines.append(f"| {m} | {family} | {workload} | {seconds(rm.time_s)} | {seconds(rf.time_s)} | "
                         f"{flash_speedup(ch, m):.2f}x | {top} ({100 * shares[top]:.0f} %) |")
    beyond = beyond_the_study(ch)
    if beyond:
        lines += ["", "## Beyond the study: the 2025 models", "",
                  "The study's questions asked of the generation models released after it, each at its reference "
                  "pipeline's default workload, on the same device and software stack.", "",
                  beyond_summary(ch, beyond), "",
                  "| model | family | time (flash) | flash gain | largest category | attention by role | own "
                  "attention tokens | denoiser FLOP/B (ridge) | resembles |", "|---|---|---|---|---|---|---|---|---|"]
        for r in beyond:
            cats = r["category_shares"]
            top = max(cats, key=cats.get)
            roles = ", ".join(f"{k} {100 * v:.0f} %" for k, v in sorted(r["attention_role_shares"].items(),
                                                                          key=lambda kv: -kv[1]))
            tokens = ", ".join(f"{role} {lo:,}" + (f"-{hi:,}" if hi != lo else "")
                               for role, (lo, hi) in r["attention_tokens"].items()) or "-"
            lines.append(f"| {r['model']} | {r['family']} | {seconds(r['time_s'])} | {r['flash_gain']:.2f}x | "
                         f"{top} ({100 * cats[top]:.0f} %) | {roles} | {tokens} | {r['denoiser_intensity']:.0f} "
                         f"({r['ridge_point']:.0f}), {r['denoiser_bound']}-bound | {r['resembles'] or '-'} |")
    lines += ["", "## Figures", ""]
    for name, title in FIGURES.items():
        if name in figures:
            png = next(p for p in figures[name] if p.endswith(".png"))
            from pathlib import Path
            lines += [f"### {title}", "", f"![{title}]({Path(png).name})", ""]
    lines += ["## Method", "",
              "- Each model is the operator graph in `models/<id>.yaml` (checked against its reference "
              "implementation where one is public, otherwise reconstructed from its paper).",
              "- `math` attention materialises the score matrix (written, read by the softmax, probabilities "
              "written and read back); `flash` is one fused kernel whose bytes are Q, K, V and O.",
              "- Per kernel: time = max(compute, memory) + launch overhead, with tile and wave quantisation, "
              "fused-attention block structure and measured achievable fractions from the hardware file.",
              f"- Image-size series: {SCALING_MODEL} at {', '.join(str(s) for s, a in ch.scaling if a == 'flash')} px; "
              f"frame series: {', '.join(sorted({m for m, _ in ch.frames}))} at "
              f"{', '.join(str(n) for n in sorted({n for _, n in ch.frames}))} frames.",
              ""]
    return "\n".join(lines)


def write_report(ch: Characterisation, out_dir, created: str | None = None) -> dict:
    """report.md, findings.json and the figures in `out_dir`; deterministic apart from the `created` line."""
    import datetime
    import json
    from pathlib import Path

    from .writers import write_atomic
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = findings(ch)
    figures = make_figures(ch, out_dir)
    created = created or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write_atomic(str(out_dir / "findings.json"), json.dumps(
        {"hardware": ch.hardware, "efficiency": ch.terms.describe(), "findings": found,
         "beyond_the_study": beyond_the_study(ch)}, indent=1, default=float))
    write_atomic(str(out_dir / "report.md"), report_markdown(ch, found, figures, created))
    return {"findings": found, "figures": figures, "report": str(out_dir / "report.md"),
            "findings_json": str(out_dir / "findings.json")}
