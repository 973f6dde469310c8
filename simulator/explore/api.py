"""What the explorer's JSON endpoints answer, as plain functions of a page *state* (no web framework here).

A state is what the page shows, the same inputs as `python -m simulator run`:

    {"model": "sd15", "hardware": "a100", "stack": null, "fusion": null, "attention": "flash",
     "set": {"height": "768"}, "hw_set": {"memory.bandwidth": "3e12"}, "roofline": false, "disable": [],
     "devices": null, "parallel": null}

Values in `set` and `hw_set` are the text a user would type after `--set NAME=` / `--hw-set FIELD=`, parsed by the
CLI's own parser, and every view is read from the `Result` that `simulate.run` returns; nothing here costs
anything. Models and devices are built-in ids or `upload:TOKEN` (a file the page uploaded, see `Uploads`); any
other path is refused, so a page cannot make the server read files of its choosing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from ..errors import SpecError, shown, unknown

MAX_UPLOAD_BYTES = 256 * 1024   # the largest built-in model file is about 42 kB
MAX_UPLOADS = 64                # files kept per server; the oldest goes first
MAX_SWEEP_POINTS = 10**4        # the page draws every point; larger sweeps belong to `sweep --out`
MAX_COMPARED = 4
UPLOAD = "upload:"


# ----------------------------------------------------------------------------------------------- uploads

class Uploads:
    """Uploaded YAML files, each written to its own folder inside one temporary directory (removed by `close`).

    A file keeps its own name inside a random folder, so the path in an error message, once that folder is cut
    off, reads as the CLI would print it for `run NAME.yaml`."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="simulator-explore-"))
        self.files: OrderedDict = OrderedDict()   # token -> (kind, display name, path)
        self.lock = threading.Lock()

    def add(self, kind: str, name: str, text: str) -> dict:
        if kind not in ("model", "hardware"):
            raise SpecError(f"upload: {unknown('kind', kind, ('model', 'hardware'))}")
        if len(text.encode("utf-8")) > MAX_UPLOAD_BYTES:
            raise SpecError(f"{name}: larger than the upload limit of {MAX_UPLOAD_BYTES // 1024} KiB")
        base = os.path.basename(name.replace("\\", "/")) or "upload.yaml"
        base = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:80]
        if not base.endswith((".yaml", ".yml")):
            base += ".yaml"
        token = secrets.token_hex(8)
        folder = self.root / token
        folder.mkdir()
        path = folder / base
        path.write_text(text, encoding="utf-8")
        try:
            if kind == "model":
                from ..catalog import describe
                label = describe(str(path))["name"]
            else:
                from ..hardware import load_hardware
                label = load_hardware(str(path)).name
        except SpecError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with self.lock:
            self.files[token] = (kind, base, path)
            while len(self.files) > MAX_UPLOADS:
                _, (_, _, old) = self.files.popitem(last=False)
                shutil.rmtree(old.parent, ignore_errors=True)
        return {"id": UPLOAD + token, "kind": kind, "file": base, "name": label}

    def path(self, kind: str, ref: str) -> str:
        token = ref[len(UPLOAD):]
        with self.lock:
            entry = self.files.get(token)
        if entry is None or entry[0] != kind:
            raise SpecError(f"{shown(ref)}: no such uploaded {kind} file (uploads last as long as the server)")
        return str(entry[2])

    def display(self, message: str) -> str:
        """An error message with the temporary folders cut out of its file paths."""
        return re.sub(re.escape(str(self.root)) + r"[/\\][0-9a-f]+[/\\]", "", message)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def add_upload(uploads: Uploads, body: dict) -> dict:
    """An upload request from the page: {"kind": "model" | "hardware", "name": file name, "text": its YAML}."""
    kind, name, text = body.get("kind"), body.get("name"), body.get("text")
    if not isinstance(name, str) or not isinstance(text, str):
        raise SpecError("upload: expected a file name and its text")
    return uploads.add(kind, name, text)


def error_line(exc: SpecError, uploads: Uploads | None = None) -> str:
    """The line the CLI prints for this error (`error: file:line: field: message`)."""
    text = f"error: {exc}"
    return uploads.display(text) if uploads is not None else text


# --------------------------------------------------------------------------------------------- built models

MAX_BUILT_MODELS = 32  # a built model is 0.1-2 MB (sd15: 1.8 MB): a class's worth of workloads stays built


class BuiltModels:
    """Models built once and reused while only hardware fields, the stack or the plan change (a what-if slider):
    building sd15 is ~90 ms of a ~120 ms answer, lowering and costing it the rest.

    Keyed by everything `simulate.load_model` reads: the file's path and the hash of its content (an edited file
    is built again), the workload overrides (with their Python types: `1` and `true` are different values) and
    the attention choice. A built model is shared by every run that uses it and only read by them
    (tests/test_explore.py runs every view on a cached model and checks it answers as a fresh build does)."""

    def __init__(self, size: int = MAX_BUILT_MODELS):
        self.size = size
        self.models: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.built = self.reused = 0

    def get(self, model: str, overrides: dict, attention: str):
        from ..library import resolve
        from ..simulate import load_model
        path = resolve("models", model)
        key = (str(path), hashlib.sha256(path.read_bytes()).hexdigest(), attention,
               tuple(sorted((k, type(v).__name__, repr(v)) for k, v in overrides.items())))
        with self.lock:
            if key in self.models:
                self.models.move_to_end(key)
                self.reused += 1
                return self.models[key]
        built = load_model(model, overrides, attention)  # outside the lock: one slow build holds up no one
        with self.lock:
            self.models[key] = built
            self.built += 1
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return built


MODELS = BuiltModels()  # one per process: the key names the file and its content, so servers may share it


# ------------------------------------------------------------------------------------------------- state

def _name(kind: str, ref, uploads: Uploads | None) -> tuple[str, str]:
    """(what the library is given, what the CLI would be given) for a model or hardware reference."""
    from ..library import builtin_ids
    if not isinstance(ref, str) or not ref:
        raise SpecError(f"{kind}: expected a built-in id or an uploaded file")
    if ref.startswith(UPLOAD):
        if uploads is None:
            raise SpecError(f"{kind}: uploads are not enabled")
        path = uploads.path("model" if kind == "model" else "hardware", ref)
        return path, Path(path).name
    kinds = "models" if kind == "model" else kind
    ids = builtin_ids(kinds)
    if ref not in ids:
        raise SpecError(f"{unknown(kind, ref, ids)}; `python -m simulator list {kinds}` shows them")
    return ref, ref


def _pairs(values, flag: str, numeric: bool) -> dict:
    """`--set` / `--hw-set` values from the page: the text after `NAME=`, read by the CLI's own parser."""
    from ..graph import parse_value
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SpecError(f"{flag}: expected NAME=VALUE pairs")
    out = {}
    for key, raw in values.items():
        text = raw if isinstance(raw, str) else json.dumps(raw)
        value = parse_value(text.strip())
        if numeric and isinstance(value, (str, bool)):
            raise SpecError(f"{flag} {shown(f'{key}={text}')}: {shown(text)} is not a number")
        out[str(key)] = value
    return out


class Inputs:
    """A page state checked as the CLI checks its options, ready for `simulate.run`."""

    def __init__(self, state: dict, uploads: Uploads | None = None):
        from ..engine import ROOFLINE, Terms
        from ..graph import ATTENTION_MODES
        from ..library import builtin_ids
        from ..stacks import FUSIONS
        if not isinstance(state, dict):
            raise SpecError("expected a JSON object")
        self.model, self.model_arg = _name("model", state.get("model"), uploads)
        self.hardware, self.hardware_arg = _name("hardware", state.get("hardware") or "a100", uploads)
        self.overrides = _pairs(state.get("set"), "--set", numeric=False)
        self.hw_overrides = _pairs(state.get("hw_set"), "--hw-set", numeric=True)
        self.attention = _pick(state.get("attention") or "flash", ATTENTION_MODES, "--attention")
        self.fusion = state.get("fusion") or None
        if self.fusion is not None:
            _pick(self.fusion, FUSIONS, "--fusion")
        self.stack = state.get("stack") or None
        if self.stack is not None:  # built-in stacks only: a path would let the page read any file
            _pick(self.stack, builtin_ids("stacks"), "--stack")
        self.disable = [d for d in state.get("disable") or [] if d]
        for d in self.disable:
            _pick(d, Terms.NAMES, "--disable")
        self.bare = bool(state.get("roofline"))
        self.terms = ROOFLINE if self.bare else Terms.without(self.disable)
        # several devices of the kind (`run --devices N --parallel PLAN`); the plan is checked by the library
        self.devices = _count(state.get("devices"))
        self.parallel = state.get("parallel") or None
        if self.parallel is not None and not isinstance(self.parallel, str):
            raise SpecError("--parallel: expected a plan such as tp=2,sp=4")

    def built(self):
        """The model with this state's workload, from MODELS."""
        return MODELS.get(self.model, self.overrides, self.attention)

    def run(self):
        from ..simulate import run
        several = {k: v for k, v in (("devices", self.devices), ("parallel", self.parallel)) if v is not None}
        return run(self.built(), self.hardware, self.overrides, self.hw_overrides, self.attention, self.terms,
                   self.fusion, self.stack, **several)

    def argv(self, command: str = "run") -> list[str]:
        """The command line that gives the same answer."""
        out = [command, self.model_arg, "--hardware", self.hardware_arg]
        for k, v in self.overrides.items():
            out += ["--set", f"{k}={_text(v)}"]
        for k, v in self.hw_overrides.items():
            out += ["--hw-set", f"{k}={_text(v)}"]
        if self.attention != "flash":
            out += ["--attention", self.attention]
        if self.stack:
            out += ["--stack", self.stack]
        if self.fusion:
            out += ["--fusion", self.fusion]
        if self.devices is not None:
            out += ["--devices", str(self.devices)]
        if self.parallel:
            out += ["--parallel", self.parallel]
        if self.bare:
            out.append("--roofline")
        elif self.disable:
            out += ["--disable", ",".join(self.disable)]
        return out


def _count(value) -> int | None:
    """`--devices`: empty for one device, else a whole number of at least 1."""
    from ..graph import parse_value
    if value in (None, ""):
        return None
    number = parse_value(value.strip()) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise SpecError(f"--devices {shown(value)}: expected a whole number of devices, at least 1")
    return number


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _pick(value, choices, flag: str) -> str:
    if value not in choices:
        raise SpecError(f"{flag}: {unknown('value', value, choices)} (choose from {', '.join(choices)})")
    return value


# ------------------------------------------------------------------------------------------------- views

def catalog() -> dict:
    """Built-in models, devices and stacks for the page's menus."""
    from .. import catalog as cat
    from ..engine import Terms
    from ..graph import ATTENTION_MODES
    from ..stacks import FUSIONS
    return {"models": [{k: m[k] for k in ("id", "name", "family")} for m in cat.model_records()],
            "hardware": [{"id": h["id"], "name": h["name"]} for h in cat.hardware_records()],
            "stacks": [{"id": s["id"], "name": s["name"]} for s in cat.stack_records()],
            "attention": list(ATTENTION_MODES), "fusion": list(FUSIONS), "terms": list(Terms.NAMES),
            "limits": {"upload_bytes": MAX_UPLOAD_BYTES, "sweep_points": MAX_SWEEP_POINTS,
                       "compared": MAX_COMPARED}}


def params(model: str, uploads: Uploads | None = None) -> list[dict]:
    """The model's declared workload parameters (type, default, range, choices, meaning), as `describe` has,
    then the options every model takes without declaring them (`workload_options`); `group` says which."""
    from ..catalog import describe
    path, _ = _name("model", model, uploads)
    declared = [{**p, "group": "workload"} for p in describe(path)["params"]]
    return declared + workload_options(path, {p["name"] for p in declared})


def workload_options(model: str, declared: set) -> list[dict]:
    """Quantisation and memory-saving options (params.workload_options), as parameter records, for the ones this
    model does not declare itself (its own parameter of the name wins, as in graph.build_model) and can apply:
    a dtype for what it stores (no `kv_dtype` without a KV cache), a memory-saving mode that memory_saving.check
    does not refuse for it (no tiling without a decoder). A control that could only be ignored or refused is
    not offered. A default of None is "the model's dtype"."""
    from ..library import resolve
    from ..loader import load_yaml
    from ..memory_saving import OPTIONS as SAVING
    from ..memory_saving import Modes, check
    from ..ops import OPS
    from ..params import workload_options as every
    from ..quantisation import NAMES
    from ..schema import ModelFile, validate
    path = str(resolve("models", model))
    stages = validate(ModelFile, load_yaml(path), path).stages
    built = MODELS.get(model, {}, "flash")  # at its defaults: the build the page's first run reuses
    stores = {"act"} | {OPS[op.kind].precision for stage in built.stages for op in stage.ops}
    out = []
    for name, p in every().items():
        if name in declared or (name in NAMES.values() and {v: k for k, v in NAMES.items()}[name] not in stores):
            continue
        if name in SAVING:
            on = True if p.type == "bool" else next(c for c in p.choices if c != p.default)
            try:
                check(Modes(**{name: on}), stages, dict.fromkeys(declared), path)
            except SpecError:
                continue
        out.append({"name": name, "default": p.default, "type": p.type, "min": p.min, "max": p.max,
                    "choices": list(p.choices) if p.choices else None, "help": p.help, "allowed": p.allowed(),
                    "group": "memory saving" if name in SAVING else "quantisation"})
    return out


def whatif_fields(result, spec) -> list[dict]:
    """Slider definitions for the hardware fields this run reads, around the device's own values.

    The fields are the registry's (`fields.used`: the one list of which cost term reads which field) for this
    run's kernel table; the scale-out fields (interconnect, network) only where it runs on several devices. A
    field the run does not read is not offered: a slider that moves nothing would be a wrong answer. `spec` is
    the device without the page's overrides, so the sliders' ranges stay put while they move."""
    from ..fields import term_of, used
    from ..hardware import COLUMN_FIELDS, field_paths
    table = result.table
    fields = field_paths(spec.model_dump())
    several = getattr(result, "devices", 1) > 1

    def column(name):
        return next((p for p in COLUMN_FIELDS[name] if p is not None and p in fields), None)
    # kernels are launched one way per run: the other launch overhead is not read
    launch, other = ("launch_overhead", "graph_launch_overhead")[::1 if table.launch == "stream" else -1]
    unread = {column(other)} - {column(launch)}
    paths = [p for p in used(spec, table.peaks, table.effs)
             if fields.get(p) and p not in unread and (several or term_of(p) != "pending")]
    # the host's fields are read by the memory-saving modes alone
    reads = result.model.memory.host_fields
    paths += [p for p in ("host_link.bandwidth", "host_link.efficiency", "host.flops", "host.bandwidth")
              if reads and p.startswith(reads) and fields.get(p)]
    peak_clock = fields.get("clock.peak_hz") or fields.get("clock_hz")
    if peak_clock and "clock.sustained_hz" not in paths:  # absent means "runs at the peak": settable all the same
        paths.append("clock.sustained_hz")
    out = []
    for path in sorted(paths, key=lambda p: (_rank(p), p)):
        value = fields.get(path) or peak_clock
        record = {"path": path, "value": value, "integer": isinstance(value, int), "log": True,
                  "min": value / 4, "max": value * 4, "unit": _unit(path), "label": LABELS.get(path, path),
                  "main": _rank(path) < len(MAIN)}
        if "efficiency" in path and record["unit"] == "" and value <= 1:  # fractions of a peak
            record.update(min=0.05, max=1.0, log=False)
        elif path == "clock.sustained_hz":  # the clock a full load keeps: at most the peak
            record.update(min=peak_clock / 4, max=peak_clock, log=False)
        if record["integer"]:
            record.update(min=max(1, round(value / 4)), max=round(value * 4))
        out.append(record)
    return out


# the sliders shown first, in this order; the rest under "more hardware fields"
MAIN = ("compute.", "memory.bandwidth", "efficiency.launch_overhead_s", "efficiency.graph_launch_overhead_s",
        "memory.capacity", "interconnect.bandwidth", "host_link.bandwidth", "host.flops")


def _rank(path: str) -> int:
    return next((i for i, m in enumerate(MAIN) if path == m or (m.endswith(".") and path.startswith(m))), len(MAIN))


LABELS = {
    "memory.bandwidth": "DRAM bandwidth", "memory.capacity": "memory capacity",
    "efficiency.launch_overhead_s": "launch overhead per kernel",
    "efficiency.graph_launch_overhead_s": "launch overhead per kernel (graph)",
    "efficiency.kernel_fixed_s": "fixed device time per kernel (ramp and drain)",
    "efficiency.memory_latency_s": "DRAM latency", "cores": "cores (SMs)",
    "efficiency.matrix": "matrix-unit efficiency", "efficiency.memory": "bandwidth efficiency",
    "clock.sustained_hz": "sustained clock", "clock.peak_hz": "peak clock", "tdp_w": "board power (TDP)",
    "interconnect.bandwidth": "interconnect bandwidth", "host_link.bandwidth": "host link (PCIe) bandwidth",
    "host_link.efficiency": "host link efficiency", "host.flops": "host CPU peak",
    "host.bandwidth": "host CPU DRAM bandwidth",
}


def _unit(path: str) -> str:
    if path.startswith(("compute.", "vector.")) or path == "host.flops":
        return "FLOP/s"
    if path.endswith("bandwidth"):
        return "B/s"
    if path == "memory.capacity":
        return "B"
    if path.endswith("_s"):
        return "s"
    if path.endswith("_hz"):
        return "Hz"
    return ""


def roofline(result) -> dict:
    """One point per kernel (intensity, attained FLOP/s, time of all its runs, category) and the device's
    roofs: the datasheet roof, the achievable one (measured fractions) and the ridge point, as `plot roofline`
    draws them.

    The roof is the matrix unit's rate for the dtype GEMMs run in: the activations' (`act_dtype`, the model's
    dtype unless quantised; W8A8 runs at the int8 rate). On several devices every number is one device's: its
    share of each kernel against its own roofs (collectives do no arithmetic and are not drawn). A kernel that
    moves no DRAM bytes of its own (fused into its neighbour) has no place on a log intensity axis: counted in
    `unplaced`, not drawn."""
    from ..metrics import attained, intensity, peak_flops, ridge_point
    from ..ops import CATEGORIES
    t, spec = result.table, result.hardware.spec
    time = result.costs["time"]
    points, unplaced = [], {"kernels": 0, "time_s": 0.0}
    for k in range(len(t)):
        if time[k] <= 0 or t.flops[k] <= 0:
            continue
        if t.bytes[k] <= 0:
            unplaced["kernels"] += 1
            unplaced["time_s"] += float(time[k] * t.count[k])
            continue
        stage, op = t.ops[t.op[k]]
        points.append({"op": op.name, "stage": result.model.stages[stage].name, "category": CATEGORIES[t.category[k]],
                       "intensity": intensity(float(t.flops[k]), float(t.bytes[k])),
                       "flops_per_s": attained(float(t.flops[k]), float(time[k])),
                       "time_s": float(time[k] * t.count[k]), "flops": float(t.flops[k]),
                       "bytes": float(t.bytes[k])})
    dtype = result.model.precision.act  # resolved: the model's dtype where no act_dtype is set
    eff = spec.efficiency
    return {"points": points, "unplaced": unplaced, "dtype": dtype, "devices": result.devices,
            "plan": str(result.plan) if result.plan is not None else None, "peak_flops": peak_flops(spec, dtype),
            "bandwidth": spec.memory.bandwidth, "ridge": ridge_point(spec, dtype),
            "achievable_flops": peak_flops(spec, dtype) * eff.matrix,
            "achievable_bandwidth": spec.memory.bandwidth * eff.memory}


def attention(result) -> dict:
    """The study's two attention views: query/key length of every attention op in order, with its time, and
    attention time and FLOPs by role (spatial, temporal, cross, self)."""
    from ..metrics import role_split
    from ..paper import attention_layers
    times = {(r["stage"], r["name"]): r for r in result.by_op() if r["kind"] == "attention"}
    layers = []
    for row in attention_layers(result):
        op = times.get((row["stage"], row["name"]), {})
        layers.append({**row, "time_s": op.get("time_s", 0.0), "flops": op.get("flops", 0.0)})
    return {"layers": layers, "roles": role_split(result)}


GROUP_KEYS = ("time_s", "flops", "bytes", "intensity", "bound", "roofline_time_s")
STAGE_KEYS = ("device_time_s", "host_s", "transfer_s", "cpu_s")  # what a stage's time is made of
COLLECTIVES = "(collectives)"


def groups(result) -> dict:
    """Stages, categories and layers with what a bar's hover shows: time, FLOPs, bytes, intensity, bound."""
    from ..metrics import intensity
    by_stage = result.by_stage()
    stages = [{"name": r["name"], "repeat": r["repeat"], "limited_by": r["limited_by"],
               "intensity": intensity(r["flops"], r["bytes"]), **{k: r[k] for k in GROUP_KEYS + STAGE_KEYS if k in r}}
              for r in by_stage]
    categories = [{"name": c, "intensity": intensity(r["flops"], r["bytes"]),
                   **{k: r[k] for k in GROUP_KEYS if k in r}} for c, r in result.by_category().items()]
    layers = [{"stage": r["stage"], "layer": r["layer"], "ops": r["ops"], **{k: r[k] for k in GROUP_KEYS}}
              for r in result.by_layer()]
    if result.devices > 1:  # a plan's collectives belong to no op: one bar per stage, so the layers add up
        for s in by_stage:
            own = [r for r in layers if r["stage"] == s["name"]]
            row = {"stage": s["name"], "layer": COLLECTIVES, "ops": 0, "bound": "comm",
                   **{k: s[k if k != "time_s" else "device_time_s"] - sum(r[k] for r in own)
                      for k in ("time_s", "flops", "bytes", "roofline_time_s")}}
            if row["time_s"] > 1e-9 * s["device_time_s"]:
                row["intensity"] = intensity(row["flops"], row["bytes"])
                layers.insert(layers.index(own[-1]) + 1 if own else len(layers), row)
    return {"stages": stages, "categories": categories, "layers": layers}


def summary(result) -> dict:
    """The head of `run --format json` (ids, names, settings, totals, warnings) without the per-op list: what
    the totals table shows, cheap enough to answer a slider while it moves."""
    m, hw = result.model, result.hardware
    return {"model": m.id, "model_name": m.name, "family": m.family, "hardware": hw.id, "hardware_name": hw.name,
            "attention": m.attention, "stack": result.stack.id if result.stack is not None else None,
            "fusion": result.fusion, "efficiency": result.terms.describe(), "totals": result.totals(),
            "warnings": list(result.warnings)}


VIEWS = ("result", "groups", "roofline", "attention", "whatif")


def run_view(state: dict, uploads: Uploads | None = None, views=None) -> dict:
    """What the page shows for one state: `summary` and `cli` always, and the `views` asked for (default all):
    `result` is exactly `run --format json`, `whatif` the slider definitions (around the device without the
    page's overrides, so the sliders stay put while they move), the others one chart each."""
    from ..hardware import load_hardware
    views = VIEWS if views is None else views
    if not isinstance(views, list | tuple) or not set(views) <= set(VIEWS):
        raise SpecError(f"views: expected a list of {', '.join(VIEWS)}")
    inputs = Inputs(state, uploads)
    result = inputs.run()
    out = {"summary": summary(result), "cli": "python -m simulator " + shlex.join(inputs.argv())}
    makers = {"result": lambda r: r.to_dict(),  # what `report.to_json` writes
              "groups": groups, "roofline": roofline, "attention": attention,
              "whatif": lambda r: whatif_fields(r, load_hardware(inputs.hardware).spec)}
    for name in views:
        out[name] = makers[name](result)
    return out


def export(state: dict, fmt: str, by: str = "layer", uploads: Uploads | None = None) -> str:
    """The text `run --format json|csv --by BY` prints for this state."""
    from .. import report
    from ..metrics import GROUPINGS
    _pick(fmt, ("json", "csv"), "--format")
    _pick(by, GROUPINGS, "--by")
    result = Inputs(state, uploads).run()
    return report.to_json(result) if fmt == "json" else report.to_csv(result, by)


def compare(state: dict, devices: list | None = None, models: list | None = None,
            uploads: Uploads | None = None) -> dict:
    """2-4 devices for the state's model (`simulate.compare`, as `compare` does), or 2-4 models on its device
    (each at its own default workload: another model's parameters need not exist)."""
    from ..report import compare_json
    from ..simulate import compare as compare_devices
    from ..simulate import run
    inputs = Inputs(state, uploads)
    items = devices if devices else models
    if not isinstance(items, list) or not 2 <= len(items) <= MAX_COMPARED:
        raise SpecError(f"compare: choose 2 to {MAX_COMPARED} devices or models")
    if devices:
        names = [_name("hardware", d, uploads) for d in devices]
        results = compare_devices(inputs.built(), [n for n, _ in names], inputs.overrides, inputs.hw_overrides,
                                  inputs.attention, inputs.terms, inputs.fusion, inputs.stack)
        labels = [label for _, label in names]
    else:
        names = [_name("model", m, uploads) for m in models]
        results = [run(MODELS.get(n, {}, inputs.attention), inputs.hardware, {}, inputs.hw_overrides, inputs.attention, inputs.terms, inputs.fusion,
                       inputs.stack) for n, _ in names]
        labels = [label for _, label in names]
    side = json.loads(compare_json(results))  # what `compare --format json` prints, speed-ups included
    out = []
    for label, r, row in zip(labels, results, side):
        out.append({**row, "label": label, "model": r.model.id, "totals": r.totals(),
                    "stages": [{k: s[k] for k in ("name", "time_s")} for s in r.by_stage()]})
    return {"items": out, "by": "devices" if devices else "models"}


def sweep(state: dict, vary: list, uploads: Uploads | None = None) -> dict:
    """A small sweep over one or two hardware fields (`sweep --vary FIELD=start:stop:num[:log]`), every point
    returned for a line or a heatmap."""
    from .. import sweep as sw
    inputs = Inputs(state, uploads)
    if not isinstance(vary, list) or not 1 <= len(vary) <= 2 or not all(isinstance(v, str) for v in vary):
        raise SpecError("sweep: vary one or two hardware fields (FIELD=start:stop:num[:log])")
    plan = sw.plan([inputs.model], inputs.hardware, vary, [], inputs.overrides, inputs.hw_overrides,
                   inputs.attention, inputs.terms, None, 0, MAX_SWEEP_POINTS, inputs.fusion, inputs.stack)
    rows = sw.concat([rows for rows, _ in sw.run_local(plan)], plan.columns)
    varied = [a.path for a in plan.space.axes]
    keep = varied + ["time_s"] + [c for c in plan.columns if c.endswith("_bound_share")]
    return {"varied": varied, "points": plan.total_points,
            "columns": {c: [float(v) for v in rows[c]] for c in keep if c in rows},
            "cli": "python -m simulator " + shlex.join(inputs.argv("sweep") + [x for v in vary for x in ("--vary", v)]
                                                       + ["--out", "sweep.csv"])}
