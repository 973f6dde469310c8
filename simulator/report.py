"""Text renderings of results: the human table, CSV and JSON. Reads results; never recomputes a cost."""
from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from .metrics import attained, category_shares, intensity, items, per_joule, share
from .ops import CATEGORIES

if TYPE_CHECKING:  # annotations only: `list` and `describe` format tables without loading the engine
    from .results import Result


def si(value: float, unit: str = "") -> str:
    """12.3 G, 4.5 m ... with 3 significant digits."""
    if value == 0:
        return f"0 {unit}".strip()
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"),
                           (1e-6, "µ"), (1e-9, "n")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def gib(value: float) -> str:
    """A memory size in binary units, as vendors state capacities: the A100 80GB holds 80.0 GiB (85.9e9 bytes).

    Used for capacities and for what is compared with them (weights, peak memory, KV cache); bytes moved stay
    in decimal units like the bandwidths (GB/s) they are divided by."""
    for factor, prefix in ((2**50, "Pi"), (2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki")):
        if abs(value) >= factor:
            return f"{value / factor:.1f} {prefix}B"
    return f"{value:.0f} B"


def seconds(value: float) -> str:
    return si(value, "s")


def text_table(headers: list, rows: list, align: str) -> str:
    """Aligned columns under a dashed rule; `align` is one 'l' or 'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _rows(result: Result, by: str) -> tuple[list, list, str]:
    """Headers, formatted rows and column alignment (text left, numbers right) for one grouping."""
    total = result.time_s or 1.0
    if by == "category":
        data = [{"name": c, **v} for c, v in result.by_category().items()]
        head, key = ["category"], lambda r: [r["name"]]
    elif by == "stage":
        data = result.by_stage()
        head, key = ["stage", "repeat", "params"], lambda r: [r["name"], r["repeat"], si(r["params"])]
    elif by == "op":
        data = result.by_op()
        head, key = ["stage", "op", "kind", "count"], lambda r: [r["stage"], r["name"], r["kind"], r["count"]]
    else:
        data = result.by_layer()
        head, key = ["stage", "layer", "ops"], lambda r: [r["stage"], r["layer"], r["ops"]]
    headers = head + ["time", "share", "FLOPs", "bytes", "FLOP/B", "TFLOP/s", "bound"]
    rows = []
    for r in data:
        rows.append(key(r) + [seconds(r["time_s"]), f"{100 * share(r['time_s'], total):.1f}%", si(r["flops"]),
                              si(r["bytes"], "B"), f"{intensity(r['flops'], r['bytes']):.1f}",
                              f"{attained(r['flops'], r['time_s']) / 1e12:.1f}", r["bound"]])
    text_columns = {"category", "stage", "op", "kind", "layer", "bound"}
    return headers, rows, "".join("l" if h in text_columns else "r" for h in headers)


def table(result: Result, by: str = "layer") -> str:
    m, hw = result.model, result.hardware
    params = ", ".join(f"{k}={v}" for k, v in m.params.items())
    stack = f"stack={result.stack.id} ({result.stack.name}), " if result.stack is not None else ""
    out = [f"{m.name} ({m.id}) on {hw.name} ({hw.id}), {stack}attention={m.attention}, {result.terms.describe()}",
           f"workload: {params}"]
    if m.memory.active:
        out.append(f"memory saving: {m.memory.describe()} (weights copied over the host link "
                   f"{seconds(sum(r['transfer_s'] for r in result.by_stage()))}, on the host CPU "
                   f"{seconds(sum(r['cpu_s'] for r in result.by_stage()))})")
    out.append("")
    headers, rows, align = _rows(result, by)
    out.append(text_table(headers, rows, align))
    if by not in ("category", "stage"):
        for extra in ("category", "stage"):
            out.append("")
            out.append(text_table(*_rows(result, extra)))
    out += ["", summary(result)]
    trust = trust_line(result)
    if trust:
        out.append(trust)
    # the links' figures matter only to a run on several devices
    borrowed = {k: v for k, v in result.hardware.spec.borrowed.items()
                if result.devices > 1 or not k.startswith(("interconnect", "network"))}
    if borrowed:
        out.append(f"note: {result.hardware.id} has no measurement of its own for "
                   + "; ".join(f"{k} (from {v})" for k, v in borrowed.items()))
    out += [f"warning: {w}" for w in result.warnings]
    return "\n".join(out)


def trust_line(result: Result) -> str:
    """The table footer that says how far to trust the total (README, "Error against published end-to-end
    measurements")."""
    e = result.expected_error()
    if not e:
        return ""
    return (f"expected error: median {e['median_abs_pct']:.0f} %, 90th percentile {e['p90_abs_pct']:.0f} %, "
            f"signed median {e['median_signed_pct']:+.0f} % over {e['cases']} published cases ({e['scope']})")


def summary(result: Result) -> str:
    t = result.totals()
    host = f", of which host {seconds(t['host_s'])}" if t["host_s"] else ""
    # on several devices the weights and KV cache here are the whole model's, the peak one device's
    whole, each = (" (whole model)", " per device") if result.sharding is not None else ("", "")
    return (f"total {seconds(t['time_s'])}{host} (roofline alone {seconds(t['roofline_time_s'])}), "
            f"{si(t['flops'])}FLOP"
            + (f" (+ {si(t['dequant_flops'])}FLOP dequantising weights)" if t["dequant_flops"] else "")
            + f", {si(t['bytes'], 'B')} moved, {si(t['params'])} params, "
            f"weights {gib(t['weight_bytes'])}{whole}, peak memory {gib(t['peak_memory_bytes'])}{each} of "
            f"{gib(t['memory_capacity_bytes'])}"
            + (f" (KV cache {gib(t['kv_cache_bytes'])}{', whole model' * bool(whole)})" if t["kv_cache_bytes"] else "")
            + (f", energy {si(t['energy_j'], 'J')} at {t['avg_power_w']:.0f} W average" if t.get("energy_j") else "")
            + (_devices_line(result) if result.sharding is not None else ""))


def _devices_line(result: Result) -> str:
    """On several devices: the plan, per-device memory (what `peak memory` above is), the exposed communication
    and whether it overlaps compute."""
    m = result.memory_per_device()
    return (f"\non {result.devices} devices ({result.plan}): per device weights {gib(m['weight_bytes'])}, KV cache "
            f"{gib(m['kv_cache_bytes'])}, peak {gib(m['peak_memory_bytes'])}, fits: {'yes' if m['fits'] else 'NO'}; "
            f"communication {seconds(result.comm_time_s)} exposed "
            f"({'overlapping' if result.table.comm_overlap else 'not overlapping'} compute, the stack's comm_overlap)")


def rows_for_csv(result: Result, by: str) -> list[dict]:
    if by == "category":
        return [{"category": c, **v} for c, v in result.by_category().items()]
    if by == "stage":
        return result.by_stage()
    return result.by_op() if by == "op" else result.by_layer()


def to_csv(result: Result, by: str = "layer") -> str:
    rows = rows_for_csv(result, by)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["empty"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()


def to_json(result: Result) -> str:
    return json.dumps(result.to_dict(), indent=1)


def compare_table(results: list[Result]) -> str:
    base = results[0]
    item, count = items(base.model.family, base.model.params)
    headers = ["hardware", "stack", "time", "speed-up", "roofline", *CATEGORIES, "peak mem", "fits", "energy",
               "avg power", f"{item}/J"]
    rows = []
    for r in results:
        shares = category_shares(r)
        e = r.energy_j
        rows.append([r.hardware.id, r.stack.id if r.stack else "", seconds(r.time_s), f"{base.time_s / r.time_s:.2f}x",
                     seconds(r.roofline_time_s),
                     *[f"{100 * shares[c]:.0f}%" for c in CATEGORIES], gib(r.peak_memory_bytes),
                     "yes" if r.fits else "NO", si(e, "J") if e else "n/a",
                     f"{r.avg_power_w:.0f} W" if e else "n/a", f"{per_joule(count, e):.3g}" if e else "n/a"])
    m = base.model
    title = (f"{m.name} ({m.id}), attention={m.attention}, {base.terms.describe()}; speed-up relative to "
             f"{base.hardware.id}; category columns are shares of time")
    stacks = {r.stack.id for r in results if r.stack is not None}
    if len(stacks) > 1:
        title += (f"\nnote: the devices run different software stacks ({', '.join(sorted(stacks))}): part of each "
                  "speed-up is the stack's")
    return title + "\n\n" + text_table(headers, rows, "ll" + "r" * (len(headers) - 2))


def devices_table(results: list[Result]) -> str:
    """One model on several device counts (`compare --devices`): the plan, whether it fits per device, latency,
    throughput and the share of time spent communicating."""
    base = results[0]
    serving = [r.serving() for r in results]
    llm = "ttft_s" in serving[0]
    unit = next((k for k in serving[0] if k.endswith("_per_s") and k != "tokens_per_s"), "tokens_per_s")
    headers = ["hardware", "devices", "plan", "mem/device", "fits", "time", "speed-up"]
    headers += ["TTFT", "TPOT", "tokens/s", "tokens/s/device"] if llm else [unit.replace("_per_s", "/s"),
                                                                           "per device"]
    headers += ["comm share"]
    rows = []
    for r, sv in zip(results, serving):
        plan = str(r.plan) if r.plan is not None else "single device"
        row = [r.hardware.id, str(r.devices), plan, gib(r.peak_memory_bytes), "yes" if r.fits else "NO",
               seconds(r.time_s), f"{base.time_s / r.time_s:.2f}x"]
        if llm:
            row += [seconds(sv["ttft_s"]), seconds(sv["tpot_s"]), f"{sv['tokens_per_s']:.4g}",
                    f"{sv['tokens_per_s_per_device']:.4g}"]
        else:
            row += [f"{sv[unit]:.4g}", f"{sv[unit + '_per_device']:.4g}"]
        row.append(f"{100 * share(r.comm_time_s, r.time_s):.0f}%")
        rows.append(row)
    m = base.model
    overlap = {bool(r.table.comm_overlap) for r in results if r.devices > 1}
    title = (f"{m.name} ({m.id}) on {base.hardware.id} x N, {base.terms.describe()}, stack {base.stack.id}; "
             f"communication {'overlaps compute' if overlap == {True} else 'does not overlap compute'} "
             f"(the stack's comm_overlap); memory and fits are per device")
    return title + "\n\n" + text_table(headers, rows, "lrl" + "r" * (len(headers) - 3))


def compare_json(results: list[Result]) -> str:
    base = results[0].time_s
    return json.dumps([{"hardware": r.hardware.id, "stack": r.stack.id if r.stack else None, "time_s": r.time_s,
                        "speedup": base / r.time_s,
                        "roofline_time_s": r.roofline_time_s,
                        "categories": {c: v["time_s"] for c, v in r.by_category().items()},
                        "peak_memory_bytes": r.peak_memory_bytes, "fits": r.fits,
                        "energy_j": r.energy_j, "avg_power_w": r.avg_power_w,
                        f"{items(r.model.family, r.model.params)[0]}_per_j":
                            per_joule(items(r.model.family, r.model.params)[1], r.energy_j) if r.energy_j else None}
                       for r in results], indent=1)


