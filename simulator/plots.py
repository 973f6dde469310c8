"""Figures (matplotlib, Agg): labelled axes with units, legends, sized for a paper column.

Plots read results (sweep rows, Result objects); they never compute costs.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter  # noqa: E402

from .errors import SpecError  # noqa: E402

FIELD_LABELS = {
    "memory.bandwidth": ("memory bandwidth", "B/s"),
    "memory.capacity": ("memory capacity", "B"),
    "tdp_w": ("TDP", "W"),
    "cores": ("cores", ""),
    "clock_hz": ("clock", "Hz"),
    "on_chip.l2_bytes": ("L2 / on-chip cache", "B"),
    "on_chip.sram_per_core_bytes": ("SRAM per core", "B"),
    "efficiency.launch_overhead_s": ("launch overhead", "s"),
    "interconnect_bandwidth": ("interconnect bandwidth", "B/s"),
}

plt.rcParams.update({"figure.dpi": 150, "font.size": 9, "axes.grid": True,
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
    fig.savefig(out)
    plt.close(fig)
    return [str(out)]


def _log_axis(values: np.ndarray) -> bool:
    v = values[values > 0]
    return len(v) == len(values) and len(v) > 1 and v.max() / v.min() >= 4


def _axis(ax, which: str, path: str, values: np.ndarray) -> None:
    """Label an axis with its field and unit, engineering-formatted (2 TB/s, 500 TFLOP/s), log when wide."""
    name, unit = (field_label(path).rsplit(" [", 1) + [""])[:2]
    unit = unit.rstrip("]")
    axis = ax.xaxis if which == "x" else ax.yaxis
    if _log_axis(values):
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(EngFormatter(unit=unit))
    (ax.set_xlabel if which == "x" else ax.set_ylabel)(name)


def _series_key(rows: dict, i: int, workload: list) -> str:
    extra = ", ".join(f"{w}={rows[w][i]:g}" for w in workload)
    return f"{rows['model'][i]}" + (f" ({extra})" if extra else "")


def plot_sweep(rows: dict, varied: list, workload: list, out: str, cost: str | None = None) -> list[str]:
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
        ax.set_yscale("log")
        ax.set_ylabel("end-to-end time [s]")
        ax.set_title("Time per inference vs " + field_label(x_field).split(" [")[0])
        ax.legend()
        return save(fig, out)
    if len(varied) == 2:
        fx, fy = varied
        fig, axes = plt.subplots(1, len(series), figsize=(4.6 * len(series), 3.6), squeeze=False,
                                 layout="constrained")
        for ax, s in zip(axes[0], series):
            sel = keys == s
            xs, ys = np.unique(rows[fx][sel]), np.unique(rows[fy][sel])
            if len(xs) * len(ys) != sel.sum():
                raise SpecError("a heatmap needs a grid: drop --samples or vary more fields for a Pareto plot")
            grid = np.full((len(ys), len(xs)), np.nan)
            share = np.full_like(grid, np.nan)
            xi, yi = np.searchsorted(xs, rows[fx][sel]), np.searchsorted(ys, rows[fy][sel])
            grid[yi, xi] = rows["time_s"][sel]
            share[yi, xi] = rows["compute_bound_share"][sel]
            mesh = ax.pcolormesh(xs, ys, grid, shading="nearest", norm=LogNorm(), cmap="viridis")
            fig.colorbar(mesh, ax=ax, label="time per inference [s]")
            if np.nanmin(share) < 0.5 < np.nanmax(share):
                cs = ax.contour(xs, ys, share, levels=[0.5], colors="white", linewidths=1.2)
                ax.clabel(cs, fmt={0.5: "compute = memory bound"}, fontsize=7)
            _axis(ax, "x", fx, xs)
            _axis(ax, "y", fy, ys)
            ax.set_title(s)
        return save(fig, out)
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
    ax.set_yscale("log")
    ax.set_ylabel("end-to-end time [s]")
    ax.set_title(f"Time vs {field_label(cost).split(' [')[0]} over {len(varied)} varied fields")
    ax.legend()
    return save(fig, out)
