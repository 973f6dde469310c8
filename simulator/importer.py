"""`python -m simulator import PATH --out FILE`: a model YAML from a diffusers or transformers config.

PATH is one `config.json` (a one-stage model of that network, or prefill + decode for a causal LM) or a folder laid
out as a Hugging Face repository: `model_index.json` naming the pipeline and its components, each in a sub-folder
with its own `config.json` (a whole pipeline model). Only config fields are read: no weights, no code from the
checkpoint, nothing downloaded. The YAML is built from the same blocks as the built-in models (one network builder
per class in `simulator/importers/`), with the workload defaults the config implies, and is built once before it is
written, so a config the simulator cannot represent fails here rather than at `run`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import Location, SpecError, shown, unknown

# ------------------------------------------------------------------------------------------------------ configs


class Config:
    """One config.json: its values, and where each key is, so errors name the file, line and key."""

    def __init__(self, path: Path, data: dict, text: str, cls: str):
        self.path, self.data, self.text, self.cls = path, data, text, cls

    def loc(self, key: str | None = None) -> Location:
        line = None
        if key is not None:
            match = re.search(rf'^\s*"{re.escape(key)}"\s*:', self.text, re.MULTILINE)
            line = self.text.count("\n", 0, match.start()) + 1 if match else None
        return Location(str(self.path), line, key)

    def error(self, key: str | None, message: str) -> SpecError:
        return SpecError(message, self.loc(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str, default=None):
        value = self.data.get(key)
        return default if value is None else value

    def need(self, key: str):
        if key not in self.data or self.data[key] is None:
            raise self.error(None, f"missing key '{key}' (needed for {self.cls})")
        return self.data[key]

    def int(self, key: str, default=None, minimum: int = 1) -> int:
        value = self.need(key) if default is None else self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"expected an integer of at least {minimum}, got {shown(value)}")
        return value

    def ints(self, key: str, n: int | None = None, default=None) -> list:
        """A per-level list; a single integer applies to every level (as diffusers broadcasts it)."""
        value = self.need(key) if default is None else self.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and n is not None:
            value = [value] * n
        if not isinstance(value, list) or not value or (n is not None and len(value) != n) or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
            want = f"{n} positive integers" if n is not None else "a list of positive integers"
            raise self.error(key, f"expected {want}, got {shown(value)}")
        return value

    def strs(self, key: str, n: int) -> list:
        value = self.need(key)
        if not isinstance(value, list) or len(value) != n or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected {n} block type names, got {shown(value)}")
        return value

    def expect(self, key: str, allowed: tuple, default=None) -> None:
        """Refuse a value the importer's blocks do not model: a silently ignored field is a wrong answer."""
        value = self.data.get(key, default)
        if value not in allowed:
            def js(v):  # as the config file spells it
                return json.dumps(v) if v is None or isinstance(v, bool) else shown(v)
            raise self.error(key, f"{js(value)} is not supported by the {self.cls} importer "
                                  f"(supported: {', '.join(js(a) for a in allowed)})")


def read_json(path: Path) -> tuple[dict, str]:
    from .loader import read_text
    text = read_text(str(path), "config")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"malformed JSON: {exc.msg}", Location(str(path), exc.lineno)) from None
    except RecursionError:
        raise SpecError("malformed JSON: nested too deeply", Location(str(path))) from None
    if not isinstance(data, dict):
        raise SpecError("expected a JSON object at the top level", Location(str(path), 1))
    return data, text


def read_config(path: Path, cls: str | None = None) -> Config:
    """A config and its class: diffusers' `_class_name`, transformers' `architectures[0]`, or the class
    model_index.json gives the component (`cls`)."""
    data, text = read_json(path)
    found = data.get("_class_name")
    key = "_class_name"
    if found is None and isinstance(data.get("architectures"), list) and data["architectures"]:
        found, key = data["architectures"][0], "architectures"
    found = found or cls
    if not isinstance(found, str):
        raise SpecError("no '_class_name' (diffusers) or 'architectures' (transformers): cannot tell the model "
                        "class", Location(str(path), 1))
    config = Config(path, data, text, found)
    if found not in builders():
        raise config.error(key, f"{unknown('model class', found, builders())}; supported: {supported()}")
    return config


def supported() -> str:
    """The supported classes, families folded by their common suffix or prefix so the one-line error stays short:
    `...Transformer3DModel (CogVideoX, HunyuanVideo, ...)`, `AutoencoderKL... (QwenImage, Wan)`,
    `CLIPTextModel(WithProjection)`."""
    groups, rest, prefixed = {}, [], {}
    suffixes = ("Transformer2DModel", "Transformer3DModel", "ForCausalLM", "EncoderModel", "ConditionModel")
    for name in sorted(builders()):
        suffix = next((s for s in suffixes if name.endswith(s) and name != s), None)
        prefix = next((s for s in ("AutoencoderKL",) if name.startswith(s) and name != s), None)
        if suffix:
            groups.setdefault(suffix, []).append(name[:-len(suffix)])
        elif prefix:
            prefixed.setdefault(prefix, []).append(name[len(prefix):])
        elif rest and name.startswith(rest[-1]):   # a variant of the class before it
            rest[-1] += f"({name[len(rest[-1]):]})"
        else:
            rest.append(name)
    return ", ".join(rest + [f"{s}... ({', '.join(p)})" for s, p in prefixed.items()] +
                     [f"...{s} ({', '.join(p)})" for s, p in groups.items()])


# ------------------------------------------------------------------------------------------------ network parts


@dataclass
class Part:
    """One network as a stage body: its blocks, the inputs it reads besides the main one, its ops and output.

    Builders write shapes in terms of `B` (the network's batch, bound by the stage) and the expressions the caller
    passes for the main input's size; `facts` carries what a pipeline needs from it (context width, channels)."""
    blocks: dict
    inputs: dict
    ops: list
    out: str
    facts: dict = field(default_factory=dict)


_BUILDERS: dict = {}


def network(*classes: str):
    """Register a builder `fn(config, **io) -> Part | dict` for one or more config classes."""
    def register(fn):
        for cls in classes:
            _BUILDERS[cls] = fn
        return fn
    return register


def builders() -> dict:
    if not _BUILDERS:
        from .importers import (dit, llm, mmdit, text, unet, video,  # noqa: F401  (each registers its classes)
                                video_vae)
    return _BUILDERS


def op(name: str, kind: str, inputs, **attrs) -> dict:
    return {"name": name, "op": kind, "in": inputs, **attrs}


def parameter(name: str, shape: list, **attrs) -> dict:
    """A tensor the network stores and reads (a table, a position embedding): no input."""
    return {"name": name, "op": "parameter", "shape": shape, **attrs}


def block(name: str, kind: str, inputs, args: dict | None = None, **extra) -> dict:
    item = {"name": name, "block": kind, "in": inputs}
    if args:
        item["args"] = args
    item.update(extra)
    return item


# ------------------------------------------------------------------------------------------------------ models

DTYPES = ["fp32", "tf32", "bf16", "fp16", "fp8", "int8"]
TORCH_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def dtype_param(default: str = "fp16", help: str = "data type of weights and activations") -> dict:
    return {"default": default, "choices": DTYPES, "help": help}


def import_model(path: str) -> dict:
    """The model file (as data) for a config.json or a repository folder."""
    source = Path(path)
    if source.is_dir():
        index = source / "model_index.json"
        if index.is_file():
            from .importers.pipelines import pipeline
            return pipeline(index)
        if (source / "config.json").is_file():
            source = source / "config.json"
        else:
            raise SpecError("a folder needs model_index.json (a diffusers pipeline) or config.json",
                            Location(str(source)))
    config = read_config(source)
    built = builders()[config.cls](config)
    return built if isinstance(built, dict) else single_stage(config, built)


def single_stage(config: Config, part: Part) -> dict:
    """A one-stage model of one network: one evaluation on `batch` inputs of the config's default size."""
    role = part.facts["role"]
    stage = {"name": role, "description": f"one {config.cls} evaluation",
             "bind": {"B": "batch"} | part.facts.get("bind", {}),
             "inputs": part.facts["main_input"] | part.inputs, "ops": part.ops}
    for key in ("tiling", "repeat", "iteration"):   # a decoder's tile geometry (--set vae_tiling=true), its calls
        if key in part.facts:
            stage[key] = part.facts[key]
    params = {"batch": {"default": 1, "min": 1, "help": "inputs evaluated together (batch size)"}}
    params.update(part.facts["params"])
    params["dtype"] = dtype_param()
    return model_file(config, f"{config.cls} ({config.path.parent.name or config.path.stem})",
                      part.facts.get("family", "diffusion-tti"), params, part.blocks, [stage])


def model_file(config: Config, name: str, family: str, params: dict, blocks: dict, stages: list,
               description: str | None = None, source: Path | None = None) -> dict:
    return {"name": name, "family": family,
            "description": description or f"{config.cls} imported from its config",
            "reference": f"imported by `python -m simulator import` from {source or config.path}",
            "params": params, "blocks": blocks, "stages": stages}


# ------------------------------------------------------------------------------------------------------ writing


def _flow(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**9).strip()
    return text.removesuffix("\n...")  # a plain scalar is dumped as a document with an explicit end


def to_yaml(model: dict, source: str) -> str:
    """Model data as YAML in the layout of the built-in files: one op per line."""
    where = " ".join(str(source).split())   # a comment stays one line whatever the path holds
    lines = [f"# Imported by `python -m simulator import` from {where}: config fields only (no weights).",
             "# Module order and blocks follow the built-in models of the same classes (models/*.yaml).",
             f"name: {_flow(model['name'])}", f"family: {model['family']}",
             f"description: {_flow(model['description'])}", f"reference: {_flow(model['reference'])}", "params:"]
    lines += [f"  {k}: {_flow(v)}" for k, v in model["params"].items()]
    lines.append("")
    lines.append("blocks:")
    for name, spec in model["blocks"].items():
        lines.append(f"  {name}:")
        for key in ("args", "inputs", "outputs"):
            if key in spec:
                lines.append(f"    {key}: {_flow(spec[key])}")
        lines.append("    ops:")
        lines += [f"      - {_flow(o)}" for o in spec["ops"]]
        lines.append("")
    lines.append("stages:")
    for stage in model["stages"]:
        lines.append(f"  - name: {stage['name']}")
        for key in ("description", "repeat", "iteration", "shares_weights_with", "bind", "tiling"):
            if key in stage:
                lines.append(f"    {key}: {_flow(stage[key])}")
        lines.append("    inputs:")
        lines += [f"      {k}: {_flow(v)}" for k, v in stage["inputs"].items()]
        lines.append("    ops:")
        lines += [f"      - {_flow(o)}" for o in stage["ops"]]
        lines.append("")
    return "\n".join(lines)


def import_to_file(path: str, out: str) -> dict:
    """Import PATH, build the model once, then write its YAML to OUT (atomically); returns a summary record.

    A config whose shapes the simulator cannot build is refused before OUT is touched."""
    import os
    import tempfile

    from .graph import build_model
    from .writers import write_atomic
    text = to_yaml(import_model(path), path) + "\n"
    fd, trial = tempfile.mkstemp(suffix=".yaml", prefix="imported-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        built = build_model(trial)
    except SpecError as exc:
        raise SpecError(f"the imported model does not build: {exc.message} (at {exc.location.path or 'its top'})",
                        Location(path)) from None
    finally:
        Path(trial).unlink(missing_ok=True)
    write_atomic(out, text)
    return {"out": out, "name": built.name, "stages": [s.name for s in built.stages],
            "params": built.param_count}
