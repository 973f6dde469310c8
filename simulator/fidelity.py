"""How right is the model? Predict measured kernels, fit the few efficiency parameters to them, and report
errors on held-out rows; and compare whole pipelines with published end-to-end measurements.

Fitting and validation never share rows: a row is held out when a hash of its case (kind, shapes, attributes,
attention, dtype) falls in the held-out fifth, so the split is the same for every file and every order.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine import FULL, ROOFLINE, KernelTable, Terms, evaluate, kernel_unit
from .errors import Location, SpecError
from .hardware import columns_from, load_hardware
from .loader import load_yaml
from .ops import CATEGORIES, OPS

HELD_OUT_FRACTION = 5  # one row in five is for validation only

# The fitted parameters: (field path, lower bound, upper bound). Few, and each a physical quantity.
FIT_PARAMETERS = (
    ("efficiency.matrix", 0.2, 1.0),          # achievable fraction of the matrix-unit peak (large GEMMs)
    ("efficiency.attention", 0.1, 1.0),       # the same for fused attention kernels
    ("efficiency.memory", 0.3, 1.0),          # achievable fraction of DRAM bandwidth
    ("efficiency.launch_overhead_s", 0.0, 30e-6),  # fixed cost per kernel
    ("efficiency.memory_latency_s", 0.0, 5e-6),    # wait before a kernel's data streams
)


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


def cases_table(rows: list) -> Cases:
    from .calibrate import op_call
    records, peaks, cats = [], {}, []
    for i, row in enumerate(rows):
        if row["kind"] not in OPS:
            raise SpecError(f"measurement row {i + 2}: unknown op kind '{row['kind']}'")
        call = op_call(row)
        result = OPS[row["kind"]].fn(call)
        cat = CATEGORIES.index(OPS[row["kind"]].category)
        cats.append(cat)
        for k in result.kernels:
            code, p = kernel_unit(k, row["dtype"], peaks)
            records.append((i, 0, cat, code, p, k.flops, k.bytes, *k.gemm, k.launches, 1.0))
    return Cases(rows, KernelTable.from_rows([], records, peaks), np.array(cats))


def predict(cases: Cases, spec, terms: Terms = FULL, varied: dict | None = None) -> np.ndarray:
    """Predicted time of every row: [design points, rows] (one point unless `varied` gives several)."""
    n = len(next(iter(varied.values()))) if varied else 1
    cols = columns_from(spec, cases.table.peaks, varied, n)
    time = evaluate(cases.table, cols, terms, bound=False)["time"]
    out = np.zeros((n, len(cases)))
    for j in range(n):
        out[j] = np.bincount(cases.table.op, weights=time[j], minlength=len(cases))
    return out


def _loss(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Mean squared log error per design point: relative errors, symmetric in over/under-prediction."""
    return np.mean(np.log(pred / measured) ** 2, axis=1)


def fit(rows: list, hardware: str, sweeps: int = 4, grid: int = 41) -> dict:
    """Coordinate descent over FIT_PARAMETERS on the training rows; each coordinate is a vectorised grid
    search (every candidate value is one design point of the engine). Returns the fitted values and errors."""
    base = load_hardware(hardware)
    train = [r for r in usable(rows) if not held_out(r)]
    if len(train) < 5:
        raise SpecError(f"fit needs measurements: {len(train)} usable training rows")
    cases = cases_table(train)
    measured = np.array([r["time_s"] for r in train])
    current = {}
    for path, lo, hi in FIT_PARAMETERS:
        value = _field(base.spec, path)
        current[path] = min(max(value if value is not None else (lo + hi) / 2, lo), hi)
    before = float(_loss(predict(cases, base.spec, FULL), measured)[0])
    for _ in range(sweeps):
        for path, lo, hi in FIT_PARAMETERS:
            candidates = np.linspace(lo, hi, grid)
            varied = {p: np.full(grid, v) for p, v in current.items() if p != path}
            varied[path] = candidates
            loss = _loss(predict(cases, base.spec, FULL, varied), measured)
            current[path] = float(candidates[int(np.argmin(loss))])
    after = float(_loss(predict(cases, base.spec, FULL, {p: np.array([v]) for p, v in current.items()}),
                        measured)[0])
    return {"hardware": base.id, "parameters": current, "train_rows": len(train), "loss_before": before,
            "loss_after": after}


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
             f"inherit: {result['hardware']}", "efficiency:"]
    for path, value in result["parameters"].items():
        lines.append(f"  {path.split('.', 1)[1]}: {value:.6g}")
    return "\n".join(lines) + "\n"


def validate(rows: list, hardware: str, held_only: bool = True) -> dict:
    """Per-category median and 90th-percentile absolute percentage error on held-out rows, for the bare
    roofline and the full efficiency model."""
    spec = load_hardware(hardware).spec
    test = [r for r in usable(rows) if held_out(r) or not held_only]
    if not test:
        raise SpecError("validate: no held-out rows with a measured time")
    cases = cases_table(test)
    measured = np.array([r["time_s"] for r in test])
    out = {}
    for name, terms in (("roofline", ROOFLINE), ("model", FULL)):
        ape = np.abs(predict(cases, spec, terms)[0] / measured - 1.0) * 100.0
        per = {}
        for i, cat in enumerate(CATEGORIES):
            sel = cases.category == i
            if sel.any():
                per[cat] = {"rows": int(sel.sum()), "median_ape": float(np.median(ape[sel])),
                            "p90_ape": float(np.percentile(ape[sel], 90))}
        per["all"] = {"rows": len(ape), "median_ape": float(np.median(ape)), "p90_ape": float(np.percentile(ape, 90))}
        out[name] = per
    return out


# ------------------------------------------------------------------------------------ public end-to-end cases

METRICS = ("decode_tokens_per_s", "total_s", "stage_s", "step_s")


def load_public(path: str | Path) -> list:
    data = load_yaml(path)
    cases = data.get("cases")
    if not isinstance(cases, list) or not cases:
        raise SpecError("expected a list 'cases'", Location(str(path)))
    for i, c in enumerate(cases):
        for key in ("id", "model", "hardware", "metric", "value", "source"):
            if key not in c:
                raise SpecError(f"missing field '{key}'", c.loc(None, f"cases[{i}]"))
        if c["metric"].split(":")[0] not in METRICS:
            raise SpecError(f"unknown metric '{c['metric']}' (metrics: {', '.join(METRICS)})",
                            c.loc("metric", f"cases[{i}].metric"))
    return cases


def simulate_case(case: dict) -> float:
    """The simulator's value of a public case's metric, with the software setup the source used."""
    from .simulate import run
    terms = Terms.without({"overhead"}) if case.get("cuda_graphs") else FULL
    r = run(case["model"], case["hardware"], dict(case.get("set") or {}), None, case.get("attention", "flash"),
            terms, case.get("fusion", "none"))
    metric, _, stage = case["metric"].partition(":")
    if metric == "total_s":
        return r.time_s
    if metric == "decode_tokens_per_s":
        p = r.model.params
        return p.get("batch", 1) * p["output_tokens"] / r.time_s
    row = next((s for s in r.by_stage() if s["name"] == stage), None)
    if row is None:
        raise SpecError(f"case {case['id']}: model {case['model']} has no stage '{stage}'")
    return row["time_s"] if metric == "stage_s" else row["time_s"] / max(row["repeat"], 1)


def validate_public(path: str | Path) -> list:
    out = []
    for c in load_public(path):
        sim = simulate_case(c)
        out.append({"id": c["id"], "model": c["model"], "hardware": c["hardware"], "metric": c["metric"],
                    "measured": float(c["value"]), "simulated": sim, "error_pct": 100.0 * (sim / c["value"] - 1.0),
                    "source": c["source"]})
    return out
