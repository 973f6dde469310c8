"""What `list` and `describe` print: records of the built-in library, read without building what is not needed.

`list models` reads only each model file's header (name, family, description, reference, params), so it does not
expand 21 operator graphs; parameter counts come from `models/index.json`, written by `python
tools/model_index.py` and checked against the real build by tests/test_catalog.py. An entry is used only while
the file's SHA-256 still matches; a model edited since is built to count its parameters.
`describe MODEL` builds the model once (default workload) for its stages and reports every workload parameter
with its meaning (a `help:` field, else the YAML comment on its line), default, type and allowed values.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from .dtypes import COMPUTE
from .errors import SpecError
from .library import builtin_ids, data_dir, resolve
from .loader import Node, load_yaml

INDEX = "index.json"
HEADER_KEYS = ("name", "family", "description", "reference", "params")

# Meanings of the conventional parameter names, used when a model file gives neither `help:` nor a comment.
COMMON_MEANINGS = {
    "batch": "prompts (images, videos or sequences) per batch",
    "height": "output height in pixels",
    "width": "output width in pixels",
    "frames": "output video frames",
    "steps": "denoising steps (one network evaluation each)",
    "cfg": "classifier-free guidance on (1) or off (0): doubles the denoiser's batch; the guidance scale "
           "does not change the cost",
    "dtype": "data type of weights and activations",
    "text_tokens": "text encoder context length",
    "prompt_tokens": "prompt length in tokens (prefill)",
    "output_tokens": "generated tokens (the first from prefill, the rest from decode steps)",
}


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------- model headers

_BODY = re.compile(r"^(blocks|stages)\s*:", re.MULTILINE)
_HEADER = re.compile(r"^(" + "|".join(HEADER_KEYS) + r")\s*:", re.MULTILINE)


def model_header(path: str | Path) -> Node:
    """The header fields of a model file (everything before `blocks:` / `stages:`), parsed as YAML.

    Model files put their header first; when one does not (a header key after the body, or a prefix that is not
    valid YAML on its own), the whole file is read, so the answer never depends on the shortcut."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return load_yaml(path)  # reports the problem as a one-line error
    body = _BODY.search(text)
    if body is not None and not _HEADER.search(text, body.start()):
        try:
            head = load_yaml(path, text[:body.start()])
            if all(k in head for k in ("name", "family", "params")):
                return head
        except SpecError:
            pass
    return load_yaml(path, text)


def _comment(line: str) -> str:
    """The `# comment` of one YAML line, ignoring `#` inside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[i + 1:].strip()
    return ""


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else type(value).__name__


def parameters(params: Node | dict, lines: list[str] | None = None) -> list[dict]:
    """Workload parameters as records: name, default, type, min, max, choices, help.

    Accepts both forms a model file may use: `batch: 1  # comment` and
    `batch: {default: 1, min: 1, type: int, choices: [...], help: ...}`."""
    out = []
    for name, raw in params.items():
        decl = dict(raw) if isinstance(raw, dict) else {"default": raw}
        default = decl.get("default")
        kind = decl.get("type") or _type_name(default)
        meaning = decl.get("help")
        if not meaning and lines is not None and isinstance(params, Node) and name in params.key_lines:
            meaning = _comment(lines[params.key_lines[name] - 1])
        rec = {"name": name, "default": default, "type": kind, "min": decl.get("min"), "max": decl.get("max"),
               "choices": list(decl["choices"]) if decl.get("choices") is not None else None,
               "help": meaning or COMMON_MEANINGS.get(name, "")}
        if rec["choices"] is None and name == "dtype":
            rec["choices"] = list(COMPUTE)
        if rec["min"] is None and kind in ("int", "float") and not isinstance(raw, dict):
            rec["min"] = 0  # plain numeric parameters refuse negative values
        rec["allowed"] = allowed(rec)
        out.append(rec)
    return out


def declared_parameters(root: Node, file: str, lines: list[str]) -> list[dict]:
    """Parameter records as the simulator itself reads them (schema + params.declare), with the YAML comment
    as the meaning where the declaration gives no `help`; the raw reading above where that API is absent."""
    try:
        from .params import declare
        from .schema import ModelFile, validate
    except ImportError:
        return parameters(root.get("params") or {}, lines)
    node = root.get("params") or {}
    declared = declare(validate(ModelFile, root, file).params, node)
    raw = {r["name"]: r for r in parameters(node, lines)}
    out = []
    for name, p in declared.items():
        choices = list(p.choices) if p.choices else raw[name]["choices"]
        text = p.allowed() if p.choices or name != "dtype" else raw[name]["allowed"]
        low = p.min
        if p.type == "number" and low is None:  # a plain numeric default: negative values are refused
            low, text = 0, f"{text} >= 0"
        out.append({"name": name, "default": p.default, "type": p.type, "min": low, "max": p.max,
                    "choices": choices, "help": p.help or raw[name]["help"], "allowed": text})
    return out


def allowed(rec: dict) -> str:
    """`1 .. 16`, `>= 0`, `fp16 | bf16 | ...` or `any` for one parameter record."""
    if rec["choices"]:
        return " | ".join(str(c) for c in rec["choices"])
    if rec["type"] == "bool":
        return "true | false"
    lo, hi = rec["min"], rec["max"]
    if lo is not None and hi is not None:
        return f"{lo} .. {hi}"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return "any"


# ---------------------------------------------------------------------------------------------- list models

def read_index() -> dict:
    path = data_dir("models") / INDEX
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def index_entry(model_id: str) -> dict:
    """{"sha256", "param_count"} of one built-in model, from a real build."""
    from .graph import build_model
    path = resolve("models", model_id)
    return {"sha256": sha256(path), "param_count": build_model(path, {}, "flash", model_id).param_count}


def build_index() -> dict:
    return {m: index_entry(m) for m in builtin_ids("models")}


def model_records() -> list[dict]:
    """One record per built-in model: id, name, family, param_count, description, reference, file, params."""
    index = read_index()
    records = []
    for model_id in builtin_ids("models"):
        path = resolve("models", model_id)
        head = model_header(path)
        entry = index.get(model_id)
        if entry and entry.get("sha256") == sha256(path):
            count = entry.get("param_count")
        else:  # edited since the index was written: count from a real build
            try:
                count = index_entry(model_id)["param_count"]
            except SpecError:
                count = None
        params = parameters(head.get("params") or {})
        records.append({"id": model_id, "name": head.get("name"), "family": head.get("family"),
                        "param_count": count, "description": head.get("description", ""),
                        "reference": head.get("reference", ""), "file": str(path),
                        "params": {p["name"]: p["default"] for p in params}})
    return records


def hardware_records() -> list[dict]:
    """One record per built-in device: its id, file and every field of its (validated, inherited) spec."""
    from .hardware import load_hardware
    out = []
    for hw_id in builtin_ids("hardware"):
        hw = load_hardware(hw_id)
        out.append({"id": hw_id, "file": hw.file, **hw.spec.model_dump()})
    return out


def stack_records() -> list[dict]:
    """One record per built-in software stack (stacks/*.yaml): id, file and every field of its spec."""
    from .stacks import load_stack
    out = []
    for stack_id in builtin_ids("stacks"):
        st = load_stack(stack_id)
        out.append({"id": stack_id, "file": st.file, **st.spec.model_dump()})
    return out


RECORDS = {"models": model_records, "hardware": hardware_records, "stacks": stack_records}


# ------------------------------------------------------------------------------------------------- describe

def describe(model: str) -> dict:
    """Everything a user needs to run a model: family, reference, workload parameters, stages."""
    from .graph import build_model
    path = resolve("models", model)
    text = Path(path).read_text(encoding="utf-8")
    root = load_yaml(str(path), text)
    built = build_model(path, {}, "flash", path.stem)
    raw_stages = {s.get("name"): s for s in root.get("stages", []) if isinstance(s, dict)}
    stages = []
    for s in built.stages:
        raw = raw_stages.get(s.name, {})
        stages.append({"name": s.name, "repeat": s.repeat, "repeat_expr": str(raw.get("repeat", 1)),
                       "iteration": s.iteration, "shares_weights_with": s.shares_weights_with,
                       "ops": len(s.ops), "params": s.params, "description": raw.get("description", "")})
    return {"id": built.id, "name": built.name, "family": built.family, "description": built.description,
            "reference": built.reference, "file": str(path), "param_count": built.param_count,
            "params": declared_parameters(root, str(path), text.splitlines()), "stages": stages}


# ----------------------------------------------------------------------------------------------- text views

WIDTH = 120  # the longest line `list` and `describe` print


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _fit_last(headers: list, rows: list, align: str) -> str:
    """A table whose last column is clipped so that no line is longer than WIDTH."""
    from .report import text_table
    fixed = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers) - 1)]
    room = max(WIDTH - sum(fixed) - 2 * len(fixed), 20)
    return text_table(headers, [r[:-1] + [_clip(r[-1], room)] for r in rows], align)


def models_table(records: list[dict]) -> str:
    from .report import si
    rows = [[r["id"], r["family"], si(r["param_count"]) if r["param_count"] is not None else "?",
             _clip(r["name"], 28), r["description"]] for r in records]
    return _fit_last(["id", "family", "params", "name", "description"], rows, "llrll")


def hardware_table(records: list[dict]) -> str:
    from .report import gib, si
    rows = [[r["id"], r["name"], si(r["compute"].get("bf16", 0), "FLOP/s"), si(r["memory"]["bandwidth"], "B/s"),
             gib(r["memory"]["capacity"]), f"{r['tdp_w']:.0f} W" if r["tdp_w"] else "n/a"] for r in records]
    return _fit_last(["id", "name", "bf16 dense", "bandwidth", "memory", "TDP"], rows, "llrrrr")


def stacks_table(records: list[dict]) -> str:
    rows = [[r["id"], r["name"], r["fusion"], r["launch"], r["description"]] for r in records]
    return _fit_last(["id", "name", "fusion", "launch", "description"], rows, "lllll")


TABLES = {"models": models_table, "hardware": hardware_table, "stacks": stacks_table}


def describe_text(d: dict) -> str:
    from .report import si
    out = [f"{d['name']} ({d['id']}), family {d['family']}, {si(d['param_count'])} parameters"]
    out += [_clip(d["description"], WIDTH)] if d["description"] else []
    out += [_clip(f"reference: {d['reference']}", WIDTH)] if d["reference"] else []
    out += [f"file: {d['file']}", "", "workload parameters (python -m simulator run MODEL --set NAME=VALUE):"]
    rows = [[p["name"], str(p["default"]).lower() if isinstance(p["default"], bool) else str(p["default"]),
             p["type"], p["allowed"], p["help"]] for p in d["params"]]
    out.append(_fit_last(["name", "default", "type", "allowed", "meaning"], rows, "lllll"))
    from .memory_saving import OPTIONS as saving
    from .quantisation import OPTIONS as precision
    for what, section, options in (("quantisation", "Quantisation", precision),
                                   ("memory-saving", "Memory-saving modes", saving)):
        shown_as = {}   # options with the same choices share one entry, so the line stays within WIDTH
        for p in options.values():
            shown_as.setdefault("|".join(map(str, p.choices)) if p.choices else "true", []).append(p.name)
        out += ["", f"{what} options every model takes (README, \"{section}\"):",
                "  " + ", ".join(f"{'/'.join(names)}={values}" for values, names in shown_as.items())]
    out += ["", "stages (in execution order; repeat and ops at the default workload):"]
    rows = [[s["name"], s["repeat_expr"] if str(s["repeat"]) == s["repeat_expr"] else f"{s['repeat_expr']} = "
             f"{s['repeat']}", s["ops"], si(s["params"]), s["shares_weights_with"] or "", s["description"]]
            for s in d["stages"]]
    out.append(_fit_last(["stage", "repeat", "ops", "params", "weights of", "description"], rows, "llrrll"))
    return "\n".join(out)
