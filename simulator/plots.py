"""Figures (matplotlib, Agg): labelled axes with units, legends, sized for a paper column.

Plots read results (sweep rows, Result objects); they never compute costs.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .errors import SpecError  # noqa: E402
from .metrics import attained, intensity, peak_flops, ridge_point, share  # noqa: E402
from .report import si as prefixed  # noqa: E402  (12.3 G: SI prefix, 3 digits)

FIELD_LABELS = {
    "memory.bandwidth": ("memory bandwidth", "B/s"),
    "memory.capacity": ("memory capacity", "GiB"),  # as vendors state it (80 GB A100 = 80 GiB); values in bytes
    "tdp_w": ("TDP", "W"),
    "energy_j": ("energy per inference", "J"),
    "clock.peak_hz": ("peak clock", "Hz"),
    "on_chip.l2_bandwidth": ("L2 bandwidth", "B/s"),
    "cores": ("cores", ""),
    "clock_hz": ("clock", "Hz"),
    "on_chip.l2_bytes": ("L2 / on-chip cache", "B"),
    "on_chip.sram_per_core_bytes": ("SRAM per core", "B"),
    "efficiency.launch_overhead_s": ("launch overhead", "s"),
    "efficiency.kernel_fixed_s": ("fixed time per kernel", "s"),
    "interconnect_bandwidth": ("interconnect bandwidth", "B/s"),
}

plt.rcParams.update({"svg.hashsalt": "simulator", "figure.dpi": 150, "font.size": 9, "axes.grid": True,
                     "grid.alpha": 0.3, "legend.fontsize": 8})


def field_label(path: str) -> str:
    if path in FIELD_LABELS:
        name, unit = FIELD_LABELS[path]
    elif path.startswith("compute."):
        name, unit = f"matrix-unit {path.split('.', 1)[1]} peak", "FLOP/s"
    elif path.startswith("vector."):
        name, unit = f"vector-unit {path.split('.', 1)[1]} peak", "FLOP/s"
    elif path.startswith("efficiency."):
        name, unit = f"achievable fraction ({path.split('.', 1)[1]})", ""
    else:
        name, unit = path, ""
    return f"{name} [{unit}]" if unit else name


def save(fig, out: str | Path) -> list[str]:
    """Write the figure to `out` (its suffix: .png or .svg); a .png also gets an .svg twin when asked."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise SpecError(f"--plot/--out {out}: figures are .png, .svg or .pdf")
    _write_figure(fig, out)
    plt.close(fig)
    return [str(out)]


def _write_figure(fig, path: Path) -> None:
    """Render in memory, then write atomically (no half-written figure if rendering or writing fails), without
    the timestamps matplotlib would embed, so the same inputs give the same bytes."""
    import io

    from .writers import write_atomic
    fmt = path.suffix.lower().lstrip(".")
    meta = {"Date": None} if fmt == "svg" else {"CreationDate": None} if fmt == "pdf" else {}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata=meta)
    write_atomic(str(path), buf.getvalue())


def _log_axis(values: np.ndarray) -> bool:
    v = values[values > 0]
    return len(v) == len(values) and len(v) > 1 and v.max() / v.min() >= 4


def _split_label(path: str) -> tuple[str, str]:
    name, unit = (field_label(path).rsplit(" [", 1) + [""])[:2]
    return name, unit.rstrip("]")


def _value_text(value: float, unit: str) -> str:
    """A tick label: SI prefix and 3 significant digits for quantities with a unit (200 T, 3.35 T, 5 µ), the plain
    number for unitless fields (cores, efficiency fractions). The unit itself is in the axis label."""
    if unit == "GiB":
        return f"{value / 2**30:.3g}"
    return prefixed(value) if unit else f"{value:.3g}"


def _log_locator(lo: float, hi: float) -> LogLocator:
    """Ticks at 1-2-5 within two decades, at every decade beyond: enough labels, never overlapping."""
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    subs = (1.0, 2.0, 3.0, 5.0) if decades <= 1.2 else (1.0, 2.0, 5.0) if decades <= 2.2 else \
        (1.0, 3.0) if decades <= 3.5 else (1.0,)
    return LogLocator(subs=subs)


def _axis(ax, which: str, path: str, values: np.ndarray) -> None:
    """A continuous axis for a hardware field: 'name [unit]' label, SI-prefixed ticks, log when the range is wide."""
    name, unit = _split_label(path)
    axis = ax.xaxis if which == "x" else ax.yaxis
    if _log_axis(values):
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(_log_locator(values.min(), values.max()))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda v, _: _value_text(v, unit)))
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(f"{name} [{unit}]" if unit else name)


def _time_axis(ax, which: str, values, label: str = "end-to-end time [s]") -> None:
    """A log time axis with ticks in seconds and SI prefixes (300 ms, 1 s), not 3x10^-1."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    if len(values):
        axis.set_major_locator(_log_locator(values.min(), values.max()))
    axis.set_major_formatter(EngFormatter(unit="s"))
    axis.set_minor_formatter(NullFormatter())
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(label)


def _grid_ticks(axis, values: np.ndarray, unit: str, max_labels: int) -> None:
    """Heatmap ticks at cell centres, labelled with the swept values (every k-th when there are many)."""
    step = max(1, int(np.ceil(len(values) / max_labels)))
    pos = np.arange(0, len(values), step)
    axis.set_ticks(pos, [_value_text(values[i], unit) for i in pos])
    axis.set_ticks([], minor=True)


def _series_key(rows: dict, i: int, workload: list) -> str:
    """A line's legend: the model, its workload values, its parallel plan and the software stack it ran
    under."""
    extra = [f"{w}={rows[w][i]:g}" for w in workload]
    if "plan" in rows:
        extra.append(f"{rows['plan'][i]} on {rows['devices'][i]:g}")
    if "stack" in rows:
        extra.append(f"{rows['stack'][i]} stack")
    return f"{rows['model'][i]}" + (f" ({', '.join(extra)})" if extra else "")


def plot_sweep(rows: dict, varied: list, workload: list, out: str, cost: str | None = None) -> list[str]:
    """Draw the sweep's figure (see `sweep_figure`) into `out`."""
    return save(sweep_figure(rows, varied, workload, cost), out)


def sweep_figure(rows: dict, varied: list, workload: list, cost: str | None = None) -> "plt.Figure":
    """One varied field: time vs field, a line per model. Two: heatmap with the compute/memory boundary.
    More: Pareto front of time against a cost field (TDP by default)."""
    keys = np.array([_series_key(rows, i, workload) for i in range(len(rows["time_s"]))])
    series = list(dict.fromkeys(keys))
    if len(varied) == 1:
        x_field = varied[0]
        fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
        for s in series:
            sel = keys == s
            order = np.argsort(rows[x_field][sel])
            ax.plot(rows[x_field][sel][order], rows["time_s"][sel][order], marker="o", ms=3, label=s)
        _axis(ax, "x", x_field, rows[x_field])
        _time_axis(ax, "y", rows["time_s"], "time per inference [s]")
        ax.set_title("Time per inference vs " + _split_label(x_field)[0])
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return fig
    if len(varied) == 2:
        return _heatmap(rows, keys, series, varied)
    cost = cost or ("tdp_w" if "tdp_w" in varied else varied[0])
    if cost not in rows:
        raise SpecError(f"--pareto-cost {cost}: not a varied field (varied: {', '.join(varied)})")
    fig, ax = plt.subplots(figsize=(4.5, 3.4), layout="constrained")
    for s in series:
        sel = keys == s
        c, t = rows[cost][sel], rows["time_s"][sel]
        ax.scatter(c, t, s=4, alpha=0.25)
        order = np.lexsort((t, c))
        best, front = np.inf, []
        for i in order:
            if t[i] < best:
                best = t[i]
                front.append(i)
        ax.plot(c[front], t[front], marker="o", ms=3, label=f"{s}: Pareto front")
    _axis(ax, "x", cost, rows[cost])
    _time_axis(ax, "y", rows["time_s"], "time per inference [s]")
    ax.set_title(f"Time vs {_split_label(cost)[0]} over {len(varied)} varied fields")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)  # below: points fill the axes
    return fig


def _heatmap(rows: dict, keys: np.ndarray, series: list, varied: list) -> "plt.Figure":
    """Time over a grid of two fields, one panel per model. Cells sit at equal spacing (one per swept value, so
    a log-spaced sweep reads evenly) and the ticks are the swept values. The white line is where the
    compute-bound and memory-bound shares of time are equal: below and right of it (less bandwidth, more
    compute) the design is memory-bound."""
    fx, fy = varied
    (nx_, ux), (ny_, uy) = _split_label(fx), _split_label(fy)
    fig, axes = plt.subplots(1, len(series), figsize=(4.8 * len(series), 3.9), squeeze=False,
                             layout="constrained")
    outline = [patheffects.withStroke(linewidth=2.6, foreground="black")]
    boundary_drawn = False
    for ax, s in zip(axes[0], series):
        sel = keys == s
        xs, ys = np.unique(rows[fx][sel]), np.unique(rows[fy][sel])
        if len(xs) * len(ys) != sel.sum():
            raise SpecError("a heatmap needs a grid: drop --samples or vary more fields for a Pareto plot")
        grid = np.full((len(ys), len(xs)), np.nan)
        balance = np.full_like(grid, np.nan)
        xi, yi = np.searchsorted(xs, rows[fx][sel]), np.searchsorted(ys, rows[fy][sel])
        grid[yi, xi] = rows["time_s"][sel]
        balance[yi, xi] = rows["compute_bound_share"][sel] - rows["memory_bound_share"][sel]
        mesh = ax.pcolormesh(np.arange(len(xs) + 1) - 0.5, np.arange(len(ys) + 1) - 0.5, grid, norm=LogNorm(),
                             cmap="viridis", shading="flat")
        bar = fig.colorbar(mesh, ax=ax, label="time per inference [s]")
        bar.ax.yaxis.set_major_locator(_log_locator(np.nanmin(grid), np.nanmax(grid)))
        bar.ax.yaxis.set_major_formatter(EngFormatter(unit="s"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        if len(xs) > 1 and len(ys) > 1 and np.nanmin(balance) < 0 < np.nanmax(balance):
            ax.contour(np.arange(len(xs)), np.arange(len(ys)), balance, levels=[0.0], colors="white",
                       linewidths=1.4).set(path_effects=outline)
            boundary_drawn = True
        _grid_ticks(ax.xaxis, xs, ux, max_labels=6 if max(len(_value_text(v, ux)) for v in xs) > 4 else 9)
        _grid_ticks(ax.yaxis, ys, uy, max_labels=12)
        ax.tick_params(axis="x", labelrotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_xlabel(f"{nx_} [{ux}]" if ux else nx_)
        ax.set_ylabel(f"{ny_} [{uy}]" if uy else ny_)
        ax.grid(False)
        ax.set_title(s)
    if boundary_drawn:
        line = Line2D([], [], color="white", linewidth=1.4, path_effects=outline)
        fig.legend([line], ["compute-bound time = memory-bound time"], loc="outside lower center", frameon=False)
    return fig


# ------------------------------------------------------------------------------------ characterisation figures

HOST_COLOR = "#BBBBBB"  # time the host adds beyond the device
CATEGORY_COLORS = {"conv": "#4C72B0", "linear": "#DD8452", "attention": "#C44E52", "norm": "#8172B3",
                   "elementwise": "#55A868", "other": "#937860", "comm": "#DA8BC3"}  # comm: collectives
FAMILY_COLORS = {"diffusion-tti": "#4C72B0", "transformer-tti": "#DD8452", "ttv": "#55A868", "llm": "#C44E52"}
FAMILY_LABELS = {"diffusion-tti": "diffusion TTI", "transformer-tti": "transformer TTI", "ttv": "TTV",
                 "llm": "LLM"}
ROLE_COLORS = {"self": "#4C72B0", "spatial": "#4C72B0", "cross": "#DD8452", "temporal": "#55A868",
               "joint": "#8172B3", "full3d": "#C44E52"}


def save_both(fig, out: Path, formats=("png", "svg")) -> list[str]:
    """A figure as PNG and SVG without timestamps, so the same inputs give the same files."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out.with_suffix(f".{fmt}")
        _write_figure(fig, path)
        paths.append(str(path))
    plt.close(fig)
    return paths


def figure_breakdown(pairs: list, families: dict) -> "plt.Figure":
    """Stacked time by category, materialised (math) vs Flash attention, normalised to each model's math time.

    `pairs` = [(model, math Result, flash Result)]; `families` = model -> family."""
    from .ops import CATEGORIES, COMM
    fig, ax = plt.subplots(figsize=(7.0, 3.4), layout="constrained")
    x, labels, ticks = 0.0, [], []
    last_family = None
    for model, math_r, flash_r in pairs:
        if last_family is not None and families[model] != last_family:
            x += 0.6
        last_family = families[model]
        for offset, r, hatch in ((0.0, math_r, None), (0.42, flash_r, "//")):
            bottom = 0.0
            cats = r.by_category()
            # categories hold device time (and `comm`, the collectives, on several devices); what the host adds
            # (eager dispatch slower than the GPU) is its own part
            parts = [(c, cats[c]["time_s"]) for c in (*CATEGORIES, COMM) if c in cats] + [("host", r.host_time_s)]
            for c, t in parts:
                h = t / math_r.time_s
                ax.bar(x + offset, h, 0.4, bottom=bottom, color=CATEGORY_COLORS.get(c, HOST_COLOR), hatch=hatch,
                       edgecolor="white", linewidth=0.3, label=c if (model, offset) == (pairs[0][0], 0.0) else None)
                bottom += h
        ticks.append(x + 0.21)
        labels.append(model)
        x += 1.0
    ax.set_xticks(ticks, labels, rotation=35, ha="right")
    ax.set_ylabel("time / time with math attention")
    ax.set_title("Time by operator category: left bar materialised attention, right bar (hatched) Flash")
    ax.legend(ncol=8, loc="upper center", bbox_to_anchor=(0.5, -0.32), frameon=False)
    ax.set_ylim(0, 1.08)
    return fig


def figure_flash_speedup(speedups: dict, families: dict) -> "plt.Figure":
    fig, ax = plt.subplots(figsize=(6.2, 3.3), layout="constrained")
    models = list(speedups)
    colors = [FAMILY_COLORS[families[m]] for m in models]
    ax.bar(range(len(models)), [speedups[m] for m in models], color=colors)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(models)), models, rotation=35, ha="right")
    ax.set_ylabel("speed-up from Flash Attention [×]")
    ax.set_title("End-to-end speed-up from Flash Attention, by model")
    ax.set_ylim(0, max(speedups.values(), default=1.0) * 1.08)
    shown = list(dict.fromkeys(families[m] for m in models))
    handles = [plt.Rectangle((0, 0), 1, 1, color=FAMILY_COLORS[f]) for f in shown]
    # outside the axes, right: inside, any corner covers a bar
    ax.legend(handles, [FAMILY_LABELS[f] for f in shown], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False, title="family")
    return fig


def figure_roofline(results: list, families: dict | None = None, stage_labels: list = ()) -> "plt.Figure":
    """Operators as points (intensity, attained FLOP/s) under the device's roofs; size ~ share of time.

    One model: points coloured by category. Several: coloured by family. `stage_labels` = [(Result, stage)]
    drawn as labelled stars (e.g. LLM prefill and decode)."""
    spec = results[0].hardware.spec
    dtype = results[0].model.precision.act  # the rate GEMMs run at: the activations' dtype (the model's by default)
    peak = peak_flops(spec, dtype)
    bw = spec.memory.bandwidth
    fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
    xs = np.logspace(-2, 5, 200)
    ax.plot(xs, np.minimum(peak, xs * bw), color="black", linewidth=1.2, label=f"roofline ({dtype}, datasheet)")
    eff = spec.efficiency
    ax.plot(xs, np.minimum(peak * eff.matrix, xs * bw * eff.memory), color="black", linestyle="--", linewidth=0.8,
            label="achievable (measured fractions)")
    ridge = ridge_point(spec, dtype)
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=0.8)
    ax.annotate(f"ridge {ridge:.0f} FLOP/B", (ridge, peak * 1.15), fontsize=7, ha="center")
    single = len(results) == 1
    groups: dict = {}  # colour key -> (intensity, attained, size) lists: one scatter call per key
    for r in results:
        total = r.time_s
        for row in r.by_op():
            if row["time_s"] <= 0 or row["flops"] <= 0:
                continue
            key = row["category"] if single else families[r.model.id]
            g = groups.setdefault(key, ([], [], []))
            g[0].append(row["intensity"])
            g[1].append(attained(row["flops"], row["time_s"]))
            g[2].append(4 + 300 * row["time_s"] / total)
    for key, (xi, yi, si) in groups.items():
        ax.scatter(xi, yi, s=si, color=CATEGORY_COLORS[key] if single else FAMILY_COLORS[key], alpha=0.55,
                   linewidths=0, label=key if single else FAMILY_LABELS[key], rasterized=len(xi) > 500)
    for r, stage in stage_labels:
        s = next(x for x in r.by_stage() if x["name"] == stage)
        point = (intensity(s["flops"], s["bytes"]), attained(s["flops"], s["time_s"]))
        ax.scatter(*point, marker="*", s=120, color="black", zorder=5)
        ax.annotate(f"{r.model.id} {stage}", point, xytext=(8, -14), textcoords="offset points", fontsize=7,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.85))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v < 1000 else prefixed(v)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: prefixed(v)))
    ax.set_xlabel("arithmetic intensity [FLOP/B]")
    ax.set_ylabel("attained throughput [FLOP/s]")
    ax.set_ylim(peak / 1e5, peak * 3)
    ax.set_title(f"Roofline of {results[0].hardware.name}")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _tokens(value: float, _pos=None) -> str:
    """A token count as a plain integer (16384), never as 16.384 k."""
    return f"{value:.0f}" if value >= 1 else f"{value:g}"


def figure_seqlen(series: list) -> "plt.Figure":
    """Attention sequence length layer by layer. `series` = [(label, attention_layers rows)].

    Stages are separated by vertical rules and named above the axes (a second row where names would touch),
    so the labels never sit on the data."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
    offset = 0
    seen = set()
    spans = []
    for label, rows in series:
        idx = np.arange(offset, offset + len(rows))
        for role in dict.fromkeys(r["role"] or "self" for r in rows):
            sel = [i for i, r in enumerate(rows) if (r["role"] or "self") == role]
            name = f"{role} (queries)"
            ax.plot(idx[sel], [rows[i]["q_len"] for i in sel], marker="o", ms=3, linestyle="-" if role in
                    ("self", "spatial") else "none", color=ROLE_COLORS.get(role, "grey"),
                    label=name if name not in seen else None)
            seen.add(name)
        if offset:
            ax.axvline(offset - 0.5, color="grey", linewidth=0.6)
        spans.append((label, offset - 0.5, offset + len(rows) - 0.5))
        offset += len(rows)
    ax.set_xlim(-0.5 - 0.02 * offset, offset - 0.5 + 0.02 * offset)
    ax.set_yscale("log", base=2)
    lengths = [r["q_len"] for _, rows in series for r in rows]
    if lengths:  # a whole number of tokens: no tick below one
        ax.set_ylim(max(min(lengths) / 1.4, 0.75), max(lengths) * 1.4)
    ax.yaxis.set_major_formatter(FuncFormatter(_tokens))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("attention layer, in execution order")
    ax.set_ylabel("query sequence length [tokens]")
    if len(spans) > 1:
        _stage_names(fig, ax, spans)
    else:
        ax.set_title(f"Attention sequence length: {spans[0][0]}" if spans else "Attention sequence length")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _stage_names(fig, ax, spans: list) -> None:
    """Stage names centred over their spans just above the axes; a name that would touch the previous one on its
    row moves up a row."""
    from matplotlib.transforms import blended_transform_factory
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    renderer = fig.canvas.get_renderer()
    rows_end: list = []  # right edge (pixels) of the last label on each row
    for label, lo, hi in spans:
        text = ax.text((lo + hi) / 2, 1.02, label, transform=trans, ha="center", va="bottom", fontsize=7)
        box = text.get_window_extent(renderer)
        row = next((i for i, end in enumerate(rows_end) if box.x0 > end + 4), len(rows_end))
        if row == len(rows_end):
            rows_end.append(0.0)
        rows_end[row] = box.x1
        text.set_y(1.02 + 0.075 * row)


def figure_scaling(sides: list, flash: list, math: list) -> "plt.Figure":
    """Time by category vs image side, with Flash and with materialised attention. Lists of Results."""
    from .ops import CATEGORIES
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.0), sharey=True, layout="constrained")
    for ax, results, title in ((axes[0], flash, "Flash Attention"), (axes[1], math, "materialised attention")):
        for c in CATEGORIES:
            ts = [r.by_category()[c]["time_s"] for r in results]
            if max(ts) > 0:
                ax.plot(sides, ts, marker="o", ms=3, color=CATEGORY_COLORS[c], label=c)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sides, [str(s) for s in sides])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("image side [px]")
        ax.set_title(title)
    times = [r.by_category()[c]["time_s"] for r in flash + math for c in CATEGORIES]
    _time_axis(axes[0], "y", times, "time per image [s]")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def figure_temporal(splits: dict, frames: dict) -> "plt.Figure":
    """Spatial vs temporal attention: shares of attention time and FLOPs per model, and the temporal/spatial
    ratio against the number of frames. `splits` = model -> role_split; `frames` = model -> [(n, role_split)]."""
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.6), layout="constrained")
    ax = axes[0]
    models = list(splits)
    width = 0.38
    for j, (metric, hatch) in enumerate((("time_s", None), ("flops", "//"))):
        for i, m in enumerate(models):
            total = sum(v[metric] for v in splits[m].values()) or 1.0
            bottom = 0.0
            for role in ("spatial", "temporal"):
                part = share(splits[m].get(role, {metric: 0.0})[metric], total)
                ax.bar(i + (j - 0.5) * width, part, width, bottom=bottom, color=ROLE_COLORS[role], hatch=hatch,
                       edgecolor="white", linewidth=0.3,
                       label=f"{role} ({'time' if metric == 'time_s' else 'FLOPs'})" if i == 0 else None)
                bottom += part
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_ylabel("share of attention time / FLOPs")
    ax.set_ylim(0, 1.0)
    ax.set_title("Attention time (left) and FLOPs (right)")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    ax = axes[1]
    for m, series in frames.items():
        n = [f for f, _ in series]
        t = [s["temporal"]["time_s"] / s["spatial"]["time_s"] for _, s in series]
        f = [s["temporal"]["flops"] / s["spatial"]["flops"] for _, s in series]
        line, = ax.plot(n, t, marker="o", ms=3, label=f"{m}: time")
        ax.plot(n, f, marker="s", ms=3, linestyle="--", color=line.get_color(), label=f"{m}: FLOPs")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([f for f, _ in next(iter(frames.values()))] if frames else [])
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.1g}"[0] in "25" else ""))
    ax.set_xlabel("frames")
    ax.set_ylabel("temporal / spatial attention [ratio]")
    ax.set_title("Ratio vs number of frames")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    return fig


def figure_serving(points: list, title: str) -> "plt.Figure":
    """Throughput per device against latency over a batch sweep, one line per device count (the records of
    `simulate.serving_curve`). LLMs: output tokens/s per device against time per output token; diffusion and
    video: images (videos) per second per device against the latency of one request. Points whose batch does
    not fit the devices' memory are hollow; batch sizes label the first line's points."""
    item = points[0]["item"]
    llm = item == "tokens"
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    counts = sorted({p["devices"] for p in points})
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(counts)))
    for n, color in zip(counts, colors):
        line = sorted((p for p in points if p["devices"] == n), key=lambda p: p["batch"])
        x = np.array([p["per_item_latency_s"] * (1e3 if llm else 1.0) for p in line])
        y = np.array([p["items_per_s_per_device"] for p in line])
        fits = np.array([p["fits"] for p in line])
        ax.plot(x, y, "-", color=color, label=f"{n} device{'s' * (n > 1)} ({line[0]['plan']})")
        ax.plot(x[fits], y[fits], "o", color=color, markersize=4)
        ax.plot(x[~fits], y[~fits], "o", markerfacecolor="white", markeredgecolor=color, markersize=4)
        if n == counts[0]:
            for xi, yi, p in zip(x, y, line):
                ax.annotate(f"{p['batch']}", (xi, yi), textcoords="offset points", xytext=(4, -8), fontsize=6,
                            color="0.3")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for which, values in (("x", [p["per_item_latency_s"] for p in points]),
                          ("y", [p["items_per_s_per_device"] for p in points])):
        values = np.asarray(values, dtype=float)
        if _log_axis(values[values > 0]):
            axis = ax.xaxis if which == "x" else ax.yaxis
            (ax.set_xscale if which == "x" else ax.set_yscale)("log")
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time per output token [ms]" if llm else "latency per request [s]")
    ax.set_ylabel(f"{'output tokens' if llm else item} per second per device [{'tokens' if llm else item}/s]")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="0.3",
                          markersize=4))
    labels.append("does not fit in memory")
    ax.legend(handles, labels, title="point labels: batch size", title_fontsize=7, loc="center left",
              bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig


def figure_beyond(rows: list) -> "plt.Figure":
    """The study's characterisation of the 2025 models (paper.beyond_the_study rows): (a) share of end-to-end time
    by operator category with Flash Attention, each bar labelled with the model's gain from Flash Attention;
    (b) attention time by role. One bar per model, families grouped as listed."""
    from .ops import CATEGORIES
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.5), layout="constrained", sharey=True)
    models = [r["model"] for r in rows]
    y = np.arange(len(models))[::-1]
    ax = axes[0]
    for i, r in zip(y, rows):
        left = 0.0
        for c in CATEGORIES:
            part = r["category_shares"][c]
            ax.barh(i, part, 0.7, left=left, color=CATEGORY_COLORS[c], edgecolor="white", linewidth=0.3,
                    label=c if r is rows[0] else None)
            left += part
        ax.text(1.01, i, f"{r['flash_gain']:.2f}×", va="center", ha="left", fontsize=7)
    ax.set_yticks(y, models)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("share of end-to-end time (Flash Attention)")
    ax.set_title("(a) time by category; Flash gain at right", fontsize=8)
    ax.legend(ncol=3, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax = axes[1]
    roles = list(dict.fromkeys(k for r in rows for k in sorted(r["attention_role_shares"],
                                                                key=lambda k: -r["attention_role_shares"][k])))
    # the study's figures colour a UNet's self-attention as spatial; here both may appear, so self gets its own
    colors = {role: "#64B5CD" if role == "self" and "spatial" in roles else ROLE_COLORS.get(role, f"C{j}")
              for j, role in enumerate(roles)}
    for i, r in zip(y, rows):
        left = 0.0
        for role in roles:
            part = r["attention_role_shares"].get(role, 0.0)
            ax.barh(i, part, 0.7, left=left, color=colors[role], edgecolor="white", linewidth=0.3)
            left += part
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[role]) for role in roles]
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("share of attention time")
    ax.set_title("(b) attention time by role", fontsize=8)
    ax.legend(handles, roles, ncol=3, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig
