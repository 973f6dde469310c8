"""Figures are readable: tick labels never overlap, heatmap ticks are the swept values, the compute = memory
boundary is one unbroken line labelled in a legend, legends never cover data, labels fit in the figure, and
token counts print as integers."""
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from simulator import plots  # noqa: E402
from simulator import sweep as sw  # noqa: E402


def _drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _no_overlaps(boxes):
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _overlap(boxes[i], boxes[j]), (i, j)


def _labels(axis, renderer):
    """The tick labels drawn: matplotlib also formats ticks just outside the view, which are not drawn."""
    lo, hi = sorted(axis.get_view_interval())
    return [t for t, loc in zip(axis.get_ticklabels(), axis.get_majorticklocs())
            if t.get_visible() and t.get_text() and lo <= loc <= hi]


@pytest.fixture(scope="module")
def heatmap_rows():
    plan = sw.plan(["sd15"], "h100", ["compute.fp16=200e12:4000e12:20:log", "memory.bandwidth=1e12:16e12:8:log"],
                   [], {"height": 1024, "width": 1024})
    return sw.concat([rows for rows, _ in sw.run_local(plan)], plan.columns)


def test_heatmap_ticks_are_the_swept_values_and_do_not_overlap(heatmap_rows):
    fig = plots.sweep_figure(heatmap_rows, ["compute.fp16", "memory.bandwidth"], [])
    renderer = _drawn(fig)
    ax = fig.axes[0]
    ys = np.unique(heatmap_rows["memory.bandwidth"])
    assert [t.get_text() for t in _labels(ax.yaxis, renderer)] == [plots._value_text(v, "B/s") for v in ys]
    xs = np.unique(heatmap_rows["compute.fp16"])
    xlabels = _labels(ax.xaxis, renderer)
    assert 3 <= len(xlabels) <= 9
    assert {t.get_text() for t in xlabels} <= {plots._value_text(v, "FLOP/s") for v in xs}
    _no_overlaps([t.get_window_extent(renderer) for t in xlabels])
    assert "[FLOP/s]" in ax.get_xlabel() and "[B/s]" in ax.get_ylabel()


def test_heatmap_boundary_is_one_unbroken_line_with_a_legend_outside_the_axes(heatmap_rows):
    fig = plots.sweep_figure(heatmap_rows, ["compute.fp16", "memory.bandwidth"], [])
    renderer = _drawn(fig)
    ax = fig.axes[0]
    from matplotlib.contour import ContourSet
    (contour,) = [c for c in ax.get_children() if isinstance(c, ContourSet)]
    pieces = [p for path in contour.get_paths() for p in path.to_polygons(closed_only=False) if len(p) > 1]
    assert len(pieces) == 1 and len(pieces[0]) >= 5  # one line across the grid, not fragments
    (legend,) = fig.legends
    assert "compute" in legend.get_texts()[0].get_text()
    assert not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))


def test_heatmap_boundary_marks_where_compute_and_memory_shares_cross(heatmap_rows):
    balance = heatmap_rows["compute_bound_share"] - heatmap_rows["memory_bound_share"]
    assert balance.min() < 0 < balance.max()  # the boundary exists in this grid, so the figure must draw it


def test_line_plot_time_axis_has_units_and_the_legend_is_outside(heatmap_rows):
    sel = heatmap_rows["memory.bandwidth"] == heatmap_rows["memory.bandwidth"].min()
    rows = {k: v[sel] for k, v in heatmap_rows.items()}
    fig = plots.sweep_figure(rows, ["compute.fp16"], [])
    renderer = _drawn(fig)
    ax = fig.axes[0]
    assert all(re.fullmatch(r"[\d.]+ [mµ]?s", t.get_text()) for t in _labels(ax.yaxis, renderer))
    _no_overlaps([t.get_window_extent(renderer) for t in _labels(ax.xaxis, renderer)])
    legend = ax.get_legend()
    assert not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))


def test_flash_speedup_legend_covers_no_bar_and_the_y_label_fits():
    speedups = {"sd15": 1.39, "sdxl": 1.28, "imagen": 1.01, "muse": 1.13, "phenaki": 1.12, "llama2-7b": 1.03}
    families = {"sd15": "diffusion-tti", "sdxl": "diffusion-tti", "imagen": "diffusion-tti",
                "muse": "transformer-tti", "phenaki": "ttv", "llama2-7b": "llm"}
    fig = plots.figure_flash_speedup(speedups, families)
    renderer = _drawn(fig)
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    for bar in ax.patches:
        assert not _overlap(legend, bar.get_window_extent(renderer))
    figure = fig.bbox
    label = ax.yaxis.label.get_window_extent(renderer)
    assert figure.y0 <= label.y0 and label.y1 <= figure.y1 and figure.x0 <= label.x0


def _attention_rows(lengths, role=None):
    return [{"q_len": n, "role": role} for n in lengths]


def test_seqlen_ticks_are_integers_and_stage_names_do_not_overlap():
    series = [("sd15 text_encoder", _attention_rows([77])),
              ("sd15 denoiser", _attention_rows([4096, 1024, 256, 64, 256, 1024, 4096])),
              ("imagen sr1", _attention_rows([256, 256])), ("imagen sr2", _attention_rows([1], "cross")),
              ("deepfloyd-if sr2", _attention_rows([16384, 16384, 4096], "cross"))]
    fig = plots.figure_seqlen(series)
    renderer = _drawn(fig)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in _labels(ax.yaxis, renderer)]
    assert "16384" in ticks and all(re.fullmatch(r"\d+", t) for t in ticks), ticks
    names = [t for t in ax.texts if t.get_text() in {s for s, _ in series}]
    assert len(names) == len(series)
    boxes = [t.get_window_extent(renderer) for t in names]
    _no_overlaps(boxes)
    top = ax.get_window_extent(renderer).y1
    assert all(b.y0 >= top for b in boxes)  # above the data, not on it
    assert not _overlap(ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer))


def test_plot_sweep_writes_the_file(tmp_path, heatmap_rows):
    out = tmp_path / "h.png"
    assert plots.plot_sweep(heatmap_rows, ["compute.fp16", "memory.bandwidth"], [], out) == [str(out)]
    assert out.stat().st_size > 10_000
