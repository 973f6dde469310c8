"""How right is the model? Predict measured kernels, fit the few efficiency parameters to them, and report
errors on held-out rows; and compare whole pipelines with published end-to-end measurements.

Fitting and validation never share rows: a row is held out when a hash of its case (kind, shapes, attributes,
attention, dtype) falls in the held-out fifth, so the split is the same for every file and every order.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .engine import FULL, ROOFLINE, KernelTable, Terms, evaluate
from .errors import Location, SpecError, shown, unknown
from .hardware import base_device, columns_from, field_paths, load_hardware
from .loader import load_yaml
from .metrics import items_per_second
from .ops import CATEGORIES, OPS

HELD_OUT_FRACTION = 5  # one row in five is for validation only

# The fitted parameters: (field path, lower bound, upper bound). Few, and each a physical quantity with the range
# its sources allow; a value that ends at a bound is flagged. `attention` stands for the fraction of the fused
# attention back-end the rows ran (efficiency.attention_backends.<name> where the device lists back-ends).
FIT_PARAMETERS = (
    ("efficiency.matrix", 0.2, 1.0),          # achievable fraction of the matrix-unit peak (large GEMMs)
    ("attention", 0.1, 1.0),                  # the same for fused attention kernels
    # share of fused attention's softmax exponentials a back-end hides behind its matrix products (0: in series,
    # as FlashAttention-2 runs them; FlashAttention-3's and cuDNN's warp-specialised kernels overlap some)
    ("softmax_overlap", 0.0, 1.0),
    ("efficiency.memory", 0.3, 1.0),          # achievable fraction of DRAM bandwidth
    # every kernel's own ramp-up and drain, however launched (the launch gaps themselves are cited priors: from
    # published back-to-back timings alone the gap and this time cannot be told apart)
    ("efficiency.kernel_fixed_s", 0.0, 30e-6),
    ("efficiency.memory_latency_s", 0.0, 5e-6),    # wait before a kernel's data streams
    ("efficiency.gemm_k_overhead", 0.0, 1024.0),   # per-tile fixed cost of a GEMM main loop, in K elements
    ("efficiency.attention_k_overhead", 0.0, 1024.0),  # per-query-block fixed cost of fused attention, in keys
    ("efficiency.conv", 0.2, 1.0),            # achievable fraction of the matrix peak for convolutions
    ("efficiency.reduction_memory", 0.1, 1.0),  # achievable fraction of bandwidth for norms and softmax
)


def fit_parameters(spec, rows: list) -> list:
    """FIT_PARAMETERS for this device and these rows: each attention back-end the rows timed gets its own
    fraction, and a parameter no row can inform (conv without conv rows, ...) is left out."""
    from .mapping import device_backends
    kinds = {r["kind"] for r in rows}
    backends = sorted({r.get("attention") or "flash" for r in rows if r["kind"] == "attention"} - {"math"})
    out = []
    for path, lo, hi in FIT_PARAMETERS:
        if path == "softmax_overlap":  # informed only where the device's exponentials are costed
            if spec.per_core is not None and spec.per_core.special_function:
                out += [(f"efficiency.softmax_overlap.{b}", lo, hi) for b in backends]
            continue
        if path == "attention":
            for b in backends:
                listed = b in device_backends(spec) and spec.efficiency.attention_backends
                out.append((f"efficiency.attention_backends.{b}" if listed or b != "flash"
                            else "efficiency.attention", lo, hi))
            continue
        if path == "efficiency.conv":
            if not kinds & {"conv1d", "conv2d", "conv3d"}:
                continue
            if spec.per_core is not None and spec.per_core.conv_staging:
                # Ampere and Ada files cost convolutions as the GEMM fraction plus the SM's operand staging: the
                # staging rate is their convolution parameter (the prior of PUBLIC_PARAMETERS)
                out.append(("per_core.conv_staging", *PUBLIC_PARAMETERS["per_core.conv_staging"]))
                continue
        if path == "efficiency.attention_k_overhead" and "attention" not in kinds:
            continue
        if path == "efficiency.reduction_memory" and not kinds & {"layer_norm", "rms_norm", "group_norm", "softmax"}:
            continue
        out.append((path, lo, hi))
    return out


def held_out(row: dict) -> bool:
    key = f"{row['kind']}|{row['shapes']}|{sorted(row['attrs'].items())}|{row['attention']}|{row['dtype']}"
    return zlib.crc32(key.encode()) % HELD_OUT_FRACTION == 0


def usable(rows: list) -> list:
    """Rows with a measured time (failed cases carry an error instead)."""
    return [r for r in rows if r.get("time_s")]


@dataclass
class Cases:
    """Measured rows as one kernel table (op id = row)."""
    rows: list
    table: KernelTable
    category: np.ndarray  # category index per row

    def __len__(self) -> int:
        return len(self.rows)


def cases_table(rows: list, spec, stack: str = "eager") -> Cases:
    """Measured rows as kernels, lowered as `stack` runs a lone op on the device (`spec`). Kernel timings are
    device time, so the host model does not enter."""
    from .measurements import op_call
    from .mapping import KernelRows, lower_op
    from .stacks import load_stack
    st = load_stack(stack)
    # a row times one library kernel, not the framework's Python chain around it (eager RMSNorm's eight kernels)
    st = replace(st, spec=st.spec.model_copy(update={"decompose": {}}))
    out, cats = KernelRows(), []
    for i, row in enumerate(rows):
        if row["kind"] not in OPS:
            raise SpecError(f"measurement row {i + 2}: unknown op kind '{row['kind']}'")
        opdef, call = OPS[row["kind"]], op_call(row)
        result = opdef.fn(call)
        cats.append(CATEGORIES.index(opdef.category))
        in_bytes = call.in_bytes(0) if row["shapes"] else 0
        lower_op(out, i, 0, row["kind"], opdef.category, row["dtype"], result, 1.0, st, spec,
                 row.get("attention") or "flash", in_bytes=in_bytes)
    table = KernelTable.from_rows([], out.rows, out.peaks, out.classes, out.backends, [(1, 0.0, False)])
    return Cases(rows, table, np.array(cats))


def predict(cases: Cases, spec, terms: Terms = FULL, varied: dict | None = None) -> np.ndarray:
    """Predicted time of every row: [design points, rows] (one point unless `varied` gives several)."""
    n = len(next(iter(varied.values()))) if varied else 1
    cols = columns_from(spec, cases.table.peaks, varied, n, cases.table.effs)
    time = evaluate(cases.table, cols, terms, bound=False, energy=False)["time"]
    out = np.zeros((n, len(cases)))
    for j in range(n):
        out[j] = np.bincount(cases.table.op, weights=time[j], minlength=len(cases))
    return out


def _loss(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Mean squared log error per design point: relative errors, symmetric in over/under-prediction."""
    return np.mean(np.log(pred / measured) ** 2, axis=1)


def fit(rows: list, hardware: str, sweeps: int = 4, grid: int = 41, only: tuple | None = None) -> dict:
    """Coordinate descent over FIT_PARAMETERS on the training rows; each coordinate is a vectorised grid
    search (every candidate value is one design point of the engine). Returns the fitted values and errors.

    Rows that name their device (a `hardware` column, as in the published kernel set) are this device's only.
    `only`: fit just these parameter paths and hold the rest at the device file's values."""
    base = load_hardware(hardware)
    named = any(r.get("hardware") for r in rows)
    if named:  # a file counts as the built-in device it inherits from
        device = base_device(str(hardware))
        rows = [r for r in rows if r.get("hardware") in (None, "", device)]
    train = [r for r in usable(rows) if not held_out(r)]
    if len(train) < 5:
        raise SpecError(f"fit needs measurements: {len(train)} usable training rows"
                        + (f" for hardware '{device}'" if named else ""))
    cases = cases_table(train, base.spec)
    measured = np.array([r["time_s"] for r in train])
    current = {}
    params = fit_parameters(base.spec, train)
    if only:
        known = [p for p, _, _ in params]
        for path in only:
            if path not in known:
                raise SpecError(f"--only: {unknown('parameter', path, known)} (fittable on these rows: "
                                f"{', '.join(known)})")
        params = [p for p in params if p[0] in only]
    for path, lo, hi in params:
        value = _field(base.spec, path)
        if value is None and path.startswith("efficiency.softmax_overlap."):
            value = 0.0  # absent: the exponentials run in series
        current[path] = min(max(value if value is not None else (lo + hi) / 2, lo), hi)
    before = float(_loss(predict(cases, base.spec, FULL), measured)[0])
    for _ in range(sweeps):
        for path, lo, hi in params:
            candidates = np.linspace(lo, hi, grid)
            varied = {p: np.full(grid, v) for p, v in current.items() if p != path}
            varied[path] = candidates
            loss = _loss(predict(cases, base.spec, FULL, varied), measured)
            current[path] = float(candidates[int(np.argmin(loss))])
    after = float(_loss(predict(cases, base.spec, FULL, {p: np.array([v]) for p, v in current.items()}),
                        measured)[0])
    at_bound = [p for p, lo, hi in params if current[p] in (lo, hi)]
    return {"hardware": base.id, "parameters": current, "train_rows": len(train), "loss_before": before,
            "loss_after": after, "at_bound": at_bound}


def _field(spec, path: str):
    node = spec.model_dump()
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def fitted_yaml(result: dict, source: str, created: str) -> str:
    lines = [f"# Efficiency parameters of {result['hardware']} fitted to kernel measurements by "
             f"`python -m simulator fit` on {created}.",
             f"# Source: {source}: {result['train_rows']} training rows (every fifth case, by hash, is held out for",
             "# `validate`). Mean squared log error on the training rows: "
             f"{result['loss_before']:.4f} with the datasheet/published fractions, {result['loss_after']:.4f} fitted.",
             f"inherit: {result['hardware']}"]
    nested: dict = {}
    for path, value in result["parameters"].items():
        keys = path.split(".")
        node = nested
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    bound = set(result.get("at_bound", ()))
    for section, body in nested.items():  # efficiency, and per_core where a staging rate was fitted
        lines.append(f"{section}:")
        for key, value in body.items():
            if isinstance(value, dict):
                ends = [k for k in value if f"{section}.{key}.{k}" in bound]
                flag = f"  # at the bound of its prior range: {', '.join(ends)}" if ends else ""
                lines.append(f"  {key}: {{{', '.join(f'{k}: {v:.6g}' for k, v in value.items())}}}{flag}")
            else:
                flag = "  # at the bound of its prior range" if f"{section}.{key}" in bound else ""
                lines.append(f"  {key}: {value:.6g}{flag}")
    return "\n".join(lines) + "\n"


def validate(rows: list, hardware: str | None, held_only: bool = True, stack: str = "eager") -> dict:
    """Per-category median and 90th-percentile absolute percentage error on held-out rows, for the bare
    roofline and the full efficiency model. Rows that name their device (a `hardware` column, as in the
    published kernel set) are predicted on that device; `hardware` then selects one device, or None all."""
    test = [r for r in usable(rows) if held_out(r) or not held_only]
    named = any(r.get("hardware") for r in test)
    if named and hardware is not None and not str(hardware).endswith((".yaml", ".yml")):
        test = [r for r in test if r.get("hardware") in (None, "", hardware)]
    if not test:
        raise SpecError("validate: no held-out rows with a measured time" +
                        (f" for hardware '{hardware}'" if hardware else ""))
    groups: dict = {}
    for r in test:
        device = hardware if hardware is not None else r.get("hardware")
        if not device:
            raise SpecError("validate: rows name no device; give --hardware")
        groups.setdefault(device, []).append(r)
    ape = {"roofline": [], "model": []}
    cats = []
    for device, group in groups.items():
        spec = load_hardware(device).spec
        cases = cases_table(group, spec, stack)
        measured = np.array([r["time_s"] for r in group])
        cats.append(cases.category)
        for name, terms in (("roofline", ROOFLINE), ("model", FULL)):
            ape[name].append(np.abs(predict(cases, spec, terms)[0] / measured - 1.0) * 100.0)
    category = np.concatenate(cats)
    out = {}
    for name in ape:
        a = np.concatenate(ape[name])
        per = {}
        for i, cat in enumerate(CATEGORIES):
            sel = category == i
            if sel.any():
                per[cat] = {"rows": int(sel.sum()), "median_ape": float(np.median(a[sel])),
                            "p90_ape": float(np.percentile(a[sel], 90))}
        per["all"] = {"rows": len(a), "median_ape": float(np.median(a)), "p90_ape": float(np.percentile(a, 90))}
        out[name] = per
    out["devices"] = sorted(groups)
    return out


# ------------------------------------------------------------------------------------ public end-to-end cases

METRICS = ("decode_tokens_per_s", "tokens_per_s", "items_per_s", "total_s", "stage_s", "step_s")
RATES = ("decode_tokens_per_s", "tokens_per_s", "items_per_s")  # higher is faster


def load_public(path: str | Path) -> list:
    data = load_yaml(path)
    cases = data.get("cases")
    if not isinstance(cases, list) or not cases:
        raise SpecError("expected a list 'cases'", Location(str(path)))
    seen = set()
    for i, c in enumerate(cases):
        if not hasattr(c, "loc"):
            raise SpecError("each case is a mapping of fields", Location(str(path), path=f"cases[{i}]"))
        for key in ("id", "model", "hardware", "metric", "value", "source"):
            if key not in c:
                raise SpecError(f"missing field '{key}'", c.loc(None, f"cases[{i}]"))
        if not isinstance(c["metric"], str) or c["metric"].split(":")[0] not in METRICS:
            raise SpecError(f"unknown metric {shown(c['metric'])} (metrics: {', '.join(METRICS)})",
                            c.loc("metric", f"cases[{i}].metric"))
        value = c["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise SpecError(f"value must be a positive number, got {shown(value)}",
                            c.loc("value", f"cases[{i}].value"))
        for key in ("id", "model", "hardware", "source"):
            if not isinstance(c[key], str):
                raise SpecError(f"'{key}' must be text, got {shown(c[key])}", c.loc(key, f"cases[{i}].{key}"))
        if not isinstance(c.get("set") or {}, dict):
            raise SpecError("'set' must map workload parameters to values", c.loc("set", f"cases[{i}].set"))
        if c["id"] in seen:
            raise SpecError(f"duplicate case id '{c['id']}'", c.loc("id", f"cases[{i}].id"))
        seen.add(c["id"])
    return cases


def case_stack(case: dict) -> str:
    """The stack a case ran: its `stack`, else inferred from the older `fusion` / `cuda_graphs` fields."""
    if case.get("stack"):
        from .stacks import canonical
        return canonical(str(case["stack"]))
    if case.get("cuda_graphs"):
        return "compile-cudagraphs"
    return "compile" if case.get("fusion", "none") != "none" else "eager"


def source_key(case: dict) -> str:
    """The document a case comes from: `source_id`, else the first words of `source` (its repository or page)."""
    if case.get("source_id"):
        return str(case["source_id"])
    return str(case["source"]).split(" ")[0].split(",")[0]


def simulate_case(case: dict, hw_overrides: dict | None = None, stack_overrides: dict | None = None):
    """The simulator's value of a public case's metric, with the software stack the source used, and the
    Result. `overrides: {fusion:, cuda_graphs:}` in a case override its stack's settings."""
    from .simulate import run
    from .stacks import load_stack, with_values
    over = dict(case.get("overrides") or {})
    stack = load_stack(case_stack(case))
    if stack_overrides:
        stack = with_values(stack, stack_overrides)
    # `parallel: tp=8` (a plan, see parallel.parse_plan): a case measured on several devices
    plan = case.get("parallel")
    if plan is not None and not isinstance(plan, str):
        raise SpecError(f"case {case['id']}: 'parallel' is a plan such as tp=8 or sp=4,cfg=2, got {shown(plan)}")
    r = run(case["model"], case["hardware"], dict(case.get("set") or {}), hw_overrides,
            case.get("attention", "flash"), FULL, over.get("fusion"), stack, over.get("cuda_graphs"),
            parallel=plan)
    return metric_value(case, r), r


def metric_value(case: dict, r, time: str = "time_s") -> float:
    """The case's metric from the Result `r`'s times: the full model's (`time_s`), or with `roofline_time_s` the
    bare roofline's (every kernel at the datasheet's peak rates, no host): a floor no correct configuration beats."""
    metric, _, stage = case["metric"].partition(":")
    p = r.model.params
    total = getattr(r, time)
    if metric == "total_s":
        return total
    if metric in ("decode_tokens_per_s", "tokens_per_s"):
        return items_per_second("llm", p, total)
    if metric == "items_per_s":
        return items_per_second(r.model.family, p, total)
    row = next((s for s in r.by_stage() if s["name"] == stage), None)
    if row is None:
        raise SpecError(f"case {case['id']}: model {case['model']} has no stage '{stage}'")
    return row[time] if metric == "stage_s" else row[time] / max(row["repeat"], 1)


def time_error_pct(metric: str, measured: float, simulated: float) -> float:
    """Error of the predicted *time* in percent (positive: predicted slower than measured), whatever the metric."""
    ratio = measured / simulated if metric.split(":")[0] in RATES else simulated / measured
    return 100.0 * (ratio - 1.0)


def public_table(found: list) -> str:
    """The `validate --public` report: one row per case, then the error by model family and by stack. The
    README's table is this text (a test checks it)."""
    from .report import text_table
    from .trust import stats, summarise
    rows = [[f["id"], f["family"], f["stack"], f["metric"], f"{f['measured']:.4g}",
             f"{f['simulated']:.4g}" if f["simulated"] == f["simulated"] else "-",
             (f"{f['error_pct']:+.0f}%" if f["error_pct"] == f["error_pct"] else "-")
             + (" (excluded)" if f["excluded"] else "")] for f in found]
    lines = [text_table(["case", "family", "stack", "metric", "published", "simulated", "time error"], rows,
                    "llllrrr"), ""]
    summary = summarise(found)
    groups = [["all", *_cells(summary["all"])]]
    groups += [[f"family {k}", *_cells(v)] for k, v in summary["family"].items()]
    stacks = {}
    for f in found:
        if not f["excluded"]:
            stacks.setdefault(f["stack"], []).append(f["error_pct"])
    groups += [[f"stack {k}", *_cells(stats(v))] for k, v in sorted(stacks.items())]
    # cases measured on several devices (a `parallel:` plan), together and by the kind of parallelism
    plans: dict = {}
    for f in found:
        if not f["excluded"] and f.get("plan"):
            for key in ("devices > 1", *(f"devices > 1, {d.split('=')[0]}" for d in f["plan"].split(","))):
                plans.setdefault(key, []).append(f["error_pct"])
    groups += [[k, *_cells(stats(v))] for k, v in sorted(plans.items(), key=lambda kv: len(kv[0]))]
    lines.append(text_table(["group", "cases", "median |error|", "p90 |error|", "median signed"], groups, "lrrrr"))
    a = summary["all"]
    lines.append(f"\n{a['cases']} cases: median absolute error {a['median_abs_pct']:.0f} %, 90th percentile "
                 f"{a['p90_abs_pct']:.0f} % (time error: positive = predicted slower than measured)")
    reasons: dict = {}  # cases excluded for one shared reason are listed together
    for f in found:
        if f["excluded"]:
            reasons.setdefault(f["excluded"], []).append(f["id"])
    lines += [f"excluded {', '.join(ids)}: {why}" for why, ids in reasons.items()]
    lines += [f"warning: {f['id']} is faster than the bare roofline of its settings (every kernel at the "
              f"datasheet's peak rates): check them against its source" + (" (excluded)" if f["excluded"] else "")
              for f in found if f.get("below_roofline")]
    lines += [f"warning: {f['id']} does not fit in its device's memory as configured (the source may offload or "
              f"shard what the case does not say)" + (" (excluded)" if f["excluded"] else "")
              for f in found if f.get("fits") is False]
    return "\n".join(lines)


def _cells(stats: dict) -> list:
    return [stats["cases"], f"{stats['median_abs_pct']:.0f}%", f"{stats['p90_abs_pct']:.0f}%",
            f"{stats['median_signed_pct']:+.0f}%"]


def validate_public(path: str | Path, hw_overrides: dict | None = None) -> list:
    out, first_error = [], None
    for c in load_public(path):
        try:
            sim, r = simulate_case(c, hw_overrides)
        except SpecError as exc:
            first_error = first_error or SpecError(f"case {c['id']}: {exc.message}", c.loc(None, "cases"))
            # one case the simulator cannot run (an unknown model, device or stack) does not hide the others: it
            # is reported, and left out of the statistics
            out.append({"id": c["id"], "model": c["model"], "hardware": c["hardware"], "metric": c["metric"],
                        "family": "", "stack": str(c.get("stack", "")), "source_id": source_key(c),
                        "measured": float(c["value"]), "simulated": float("nan"), "error_pct": float("nan"),
                        "excluded": f"cannot simulate: {exc}", "source": c["source"]})
            continue
        # measured faster than the bare roofline of the case as configured: its settings (or the source's
        # number) cannot both be right, whatever the efficiencies
        # (not under pipeline parallelism: the simulator runs the stages one after another, while a pipelined
        # run keeps several batches in flight)
        below = (r.pipeline <= 1 and
                 time_error_pct(c["metric"], float(c["value"]), metric_value(c, r, "roofline_time_s")) > 0)
        out.append({"id": c["id"], "model": c["model"], "hardware": c["hardware"], "metric": c["metric"],
                    "family": r.model.family, "stack": case_stack(c), "source_id": source_key(c),
                    "measured": float(c["value"]), "simulated": sim, "below_roofline": below,
                    "fits": bool(r.fits),
                    "error_pct": time_error_pct(c["metric"], float(c["value"]), sim),
                    "excluded": c.get("excluded") or "", "source": c["source"],
                    "plan": str(r.plan) if r.plan is not None else ""})
    if first_error is not None and all(f["error_pct"] != f["error_pct"] for f in out):
        raise first_error  # nothing could be simulated: that is an error in the file, not a result
    return out


# ------------------------------------------------------------------------------ fitting on end-to-end cases

# Named physical quantities fitted on end-to-end cases, with the prior range their sources allow. Nothing else
# is fitted on whole pipelines: no multiplier on time, no per-model, per-case or per-stack factor.
PUBLIC_PARAMETERS = {
    # achievable fraction of the matrix peak for cuDNN implicit-GEMM convolutions on Hopper and Blackwell (the
    # files that set it); no published kernel rows exist in measurements/kernels; prior: a quarter of peak up to
    # the GEMM fraction
    "efficiency.conv": (0.25, 0.85),
    # FLOPs of implicit-GEMM convolution per SM per clock whose operand staging (filter-tap offsets, bounds masks)
    # the SM itself issues, on the NVIDIA parts without TMA's im2col mode (Ampere, Ada): their files set it and
    # drop efficiency.conv (convolutions then run at the GEMM fraction plus this staging time). Prior: an eighth
    # of Ampere's dense FP16 tensor rate per SM per clock (2048) up to Hopper's (4096)
    "per_core.conv_staging": (256.0, 4096.0),
    # eager PyTorch host time per op that launches a kernel; prior 5-20 us per launch on the CPU side (HTA docs)
    # widened to 100 us for the module-level Python around each op in diffusers/transformers code
    "stack:eager.host.op_s": (5e-6, 1e-4),
}


def public_grid(cases: list, grid: dict) -> np.ndarray:
    """Predicted time error (as log of simulated/measured time) of every case at every grid point:
    [points, cases]. `grid` maps parameter -> values; the cartesian product is evaluated."""
    import itertools
    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    out = np.zeros((len(points), len(cases)))
    specs = [load_hardware(c["hardware"]).spec for c in cases]
    own = [set(field_paths(s.model_dump())) if s.vendor == "nvidia" else set() for s in specs]
    seen = {}  # a case's result at the parameters that reach it (most grid points change only other cases)
    for i, values in enumerate(points):
        params = dict(zip(names, (float(v) for v in values)))
        for j, c in enumerate(cases):
            # `efficiency.x`: every NVIDIA device whose file sets it (Ampere and Ada files give convolutions a
            # staging rate, Hopper and Blackwell ones a fraction); `hw:a100,a100-40gb:efficiency.x`: those named
            hw = {k: v for k, v in params.items() if not k.startswith(("stack:", "hw:")) and k in own[j]}
            for k, v in params.items():
                if k.startswith("hw:") and c["hardware"] in k.split(":")[1].split(","):
                    hw[k.split(":", 2)[2]] = v
            st = {k.split(".", 1)[1]: v for k, v in params.items()
                  if k.startswith("stack:") and k.split(".")[0] == f"stack:{case_stack(c)}"}
            key = (j, tuple(sorted(hw.items())), tuple(sorted(st.items())))
            if key not in seen:
                sim, _ = simulate_case(c, hw or None, st or None)
                seen[key] = np.log(1.0 + time_error_pct(c["metric"], float(c["value"]), sim) / 100.0)
            out[i, j] = seen[key]
    return out, points, names


def fit_public(path, grid: dict | None = None) -> dict:
    """Fit PUBLIC_PARAMETERS on the public cases (mean absolute log error), and report each source's error
    when the fit never saw that source (a whole source held out at a time)."""
    cases = [c for c in load_public(path) if not c.get("excluded")]
    grid = grid or {k: np.linspace(lo, hi, 7) for k, (lo, hi) in PUBLIC_PARAMETERS.items()}
    logerr, points, names = public_grid(cases, grid)
    # the mean, not the median, of the absolute log errors: a parameter that reaches only some cases (a staging
    # rate only Ampere and Ada files set) leaves the median flat over a wide range, which then decides nothing;
    # an absolute (L1) loss still keeps a few far-off cases from pulling the fit
    loss = np.mean(np.abs(logerr), axis=1)
    best = int(np.argmin(loss))
    sources = np.array([source_key(c) for c in cases])
    held = np.zeros(len(cases))
    for s in np.unique(sources):
        mine = sources == s
        i = int(np.argmin(np.mean(np.abs(logerr[:, ~mine]), axis=1)))
        held[mine] = logerr[i, mine]
    at_bound = [n for n, v in zip(names, points[best]) if v in (grid[n][0], grid[n][-1])]
    return {"parameters": dict(zip(names, (float(v) for v in points[best]))), "at_bound": at_bound,
            "median_abs_pct": float(100 * np.median(np.abs(np.expm1(logerr[best])))),
            "held_out_median_abs_pct": float(100 * np.median(np.abs(np.expm1(held)))),
            "held_out_error_pct": dict(zip((c["id"] for c in cases), (float(100 * np.expm1(h)) for h in held)))}
