"""The report's clustering figures, drawn as SVG straight from the clustering's tables.

`abundance_svg`: metacluster abundance over time. Up to `PER_PATIENT_MAX` patients it is
`cytokit.cluster.plots.abundance_figure`'s figure (a panel per patient, a line per
metacluster); a larger cohort gets a panel per metacluster instead, a thin line per
patient and the cohort's median on each day in bold, so that 100 patients make a dozen
readable panels rather than a page of 34 rows.

`heatmap_svg`: `cytokit.cluster.plots.heatmap_figure`'s heatmap of metacluster medians
(a cell per metacluster and marker coloured on viridis, the value written in it, rows
labelled with each metacluster's share of events and best-matching gate, a colour bar).

Both are drawn on `cytokit.plots._canvas` in milliseconds (matplotlib took ~6 s for the
abundance of 100 patients); the matplotlib figures stay for use from Python.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cytokit.cluster.flowsom import ClusteringError
from cytokit.cluster.labels import row_labels
from cytokit.plots._canvas import PT, Canvas, LegendEntry, colour_of, legend_svg, text, text_width
from cytokit.plots._svg import nice_ticks

__all__ = ["PER_PATIENT_MAX", "abundance_points", "abundance_svg", "heatmap_svg", "viridis"]

#: Most patients drawn a panel each; more get a panel per metacluster.
PER_PATIENT_MAX = 9
_TAB20 = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip


def _colours(n: int) -> list[str]:
    """matplotlib's tab10 up to 10 metaclusters, tab20 beyond (as `abundance_figure`)."""
    if n <= 10:
        return [colour_of(f"C{i}") for i in range(n)]
    return [_TAB20[i % 20] for i in range(n)]


def abundance_points(table: pd.DataFrame, origin: str = "all") -> pd.DataFrame:
    """Per patient, metacluster and day: the % of the `origin` events in the metacluster
    (several files on one day pooled), the rows the plot draws."""
    data = table[table["origin"] == origin]
    if data.empty:
        raise ClusteringError(
            f"the clusters table has no rows with origin {origin!r}; origins there: "
            f"{', '.join(sorted(table['origin'].unique())) or 'none'}"
        )
    agg = data.groupby(["patient", "metacluster", "day"], as_index=False, sort=False)[
        ["count", "total"]
    ].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["pct"] = 100.0 * agg["count"].to_numpy(float) / agg["total"].to_numpy(float)
    return agg


def _ylim(values: np.ndarray) -> tuple[float, float]:
    """From 0 to the largest share, at least 1 % (a metacluster with no events has an
    axis to 1 %, not to a rounding error), 5 % of it spare each side."""
    v = values[np.isfinite(values)]
    top = max(float(v.max()) if v.size else 0.0, 1.0)
    return (-0.05 * top, 1.05 * top)


def abundance_svg(
    table: pd.DataFrame, *, origin: str = "all", title: str | None = None, min_total: int = 0
) -> Canvas:
    """Metacluster abundance over time (`origin` events: ``"all"``, ``"donor"`` or
    ``"recipient"``) as SVG: a panel per patient up to `PER_PATIENT_MAX` patients, else a
    panel per metacluster with a line per patient and the median per day. A day with
    fewer than `min_total` of the `origin` events is not drawn (1 donor event in one
    metacluster would read as 100 %)."""
    pts = abundance_points(table, origin)
    pts = pts[pts["total"].to_numpy(float) >= min_total]
    patients = list(dict.fromkeys(pts["patient"].astype(str)))
    mcs = sorted(pts["metacluster"].unique())
    colours = dict(zip(mcs, _colours(len(mcs)), strict=True))
    by_patient = len(patients) <= PER_PATIENT_MAX
    keys = patients if by_patient else mcs
    ncols = min(3, max(1, len(keys)))
    nrows = max(1, -(-len(keys) // ncols))
    pw, ph, gw, gh = 330.0, 210.0, 60.0, 75.0
    left, top, bottom = 72.0, 70.0, 50.0
    x_leg = left + ncols * pw + (ncols - 1) * gw + 12
    if by_patient:
        entries = [LegendEntry(f"MC {m}", colours[m], line=True, marker="o", face=colours[m])
                   for m in mcs]  # fmt: skip
        leg, width, _h = legend_svg(entries, x_leg, top, title="metacluster")
    else:
        entries = [
            LegendEntry("one patient", colour_of("0.5"), line=True, width=0.6, opacity=0.6),
            LegendEntry("median of the patients sampled that day", "#222", line=True, width=2.0),
        ]
        leg, width, _h = legend_svg(entries, x_leg, top, title=f"{len(patients)} patients")
    canvas = Canvas(x_leg + width + 12, top + nrows * ph + (nrows - 1) * gh + bottom)
    canvas.add(leg)
    # a panel per patient shares one y axis (the same metacluster compared between them)
    shared = _ylim(pts["pct"].to_numpy(float)) if by_patient else None
    days = pts["day"].to_numpy(float)
    span = (float(np.nanmin(days)), float(np.nanmax(days))) if len(days) else (0.0, 1.0)
    pad = 0.05 * (span[1] - span[0]) if span[1] > span[0] else 1.0
    xlim = (span[0] - pad, span[1] + pad)
    ylabel = "% of events" if origin == "all" else f"% of {origin} events"
    patient_col = pts["patient"].astype(str)
    for k, key in enumerate(keys):
        r, c = divmod(k, ncols)
        if by_patient:
            sel = pts[patient_col == key]
            panel_title = key
        else:
            sel = pts[pts["metacluster"] == key]
            panel_title = f"MC {key}"
        ax = canvas.axes(left + c * (pw + gw), top + r * (ph + gh), pw, ph, xlim,
                         shared or _ylim(sel["pct"].to_numpy(float)))  # fmt: skip
        if by_patient:
            for m in mcs:
                line = sel[sel["metacluster"] == m].sort_values("day")
                x, y = line["day"].to_numpy(float), line["pct"].to_numpy(float)
                ax.line(x, y, colours[m], width=1.2)
                ax.markers(x, y, "o", colours[m], face=colours[m], size=3, width=0.5)
        else:
            for _p, line in sel.groupby(sel["patient"].astype(str), sort=False):
                line = line.sort_values("day")
                ax.line(line["day"].to_numpy(float), line["pct"].to_numpy(float),
                        colours[key], width=0.6, opacity=0.35)  # fmt: skip
            med = sel.groupby("day")["pct"].median().sort_index()
            ax.line(med.index.to_numpy(float), med.to_numpy(float), "#222", width=2.0)
        last_row = r == nrows - 1 or k + ncols >= len(keys)
        canvas.add(ax.svg(xlabel="day" if last_row else "", ylabel=ylabel if c == 0 else "",
                          title=str(panel_title)))  # fmt: skip
    default = "Metacluster abundance over time" + ("" if origin == "all" else f" ({origin} events)")
    canvas.add(text(canvas.width / 2, 10 + 12 * 100 / 72, title or default, size=12))
    return canvas


#: matplotlib's viridis at 0, 0.05, ..., 1 (interpolated linearly between: within 4 of
#: its 256-entry table on each 0-255 channel).
_VIRIDIS = (
    "#440154", "#471365", "#482475", "#463480", "#414487", "#3b528b", "#355f8d",
    "#2f6c8e", "#2a788e", "#25848e", "#21918c", "#1e9c89", "#22a884", "#2fb47c",
    "#44bf70", "#5ec962", "#7ad151", "#9bd93c", "#bddf26", "#dfe318", "#fde725",
)  # fmt: skip
_STOPS = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in _VIRIDIS], dtype=float)


def viridis(t: float) -> str:
    """The colour of `t` in [0, 1] on viridis (clipped)."""
    t = min(max(float(t), 0.0), 1.0) * (len(_STOPS) - 1)
    k = min(int(t), len(_STOPS) - 2)
    rgb = _STOPS[k] + (_STOPS[k + 1] - _STOPS[k]) * (t - k)
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def heatmap_svg(
    medians: pd.DataFrame, summary: pd.DataFrame | None = None, *, title: str | None = None
) -> Canvas:
    """Heatmap of metacluster × marker medians as SVG (the arguments of `heatmap_figure`)."""
    values = medians.to_numpy(dtype=np.float64)
    n_rows, n_cols = values.shape
    rows = row_labels(medians, summary)
    cols = [str(c) for c in medians.columns]
    cw, ch = 62.0, 30.0
    left = 16.0 + max((text_width(r, 8.5) for r in rows), default=0.0)
    top = 48.0
    bottom = 20.0 + max((text_width(c, 8.5) for c in cols), default=0.0) * 0.72
    grid_w, grid_h = n_cols * cw, n_rows * ch
    bar_x = left + grid_w + 24.0
    canvas = Canvas(bar_x + 110.0, top + grid_h + bottom)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    middle = (lo + hi) / 2.0
    parts = []
    for i in range(n_rows):
        y = top + i * ch
        parts.append(text(left - 6, y + ch / 2, rows[i], size=8.5, anchor="end",
                          baseline="central"))  # fmt: skip
        for j in range(n_cols):
            v = values[i, j]
            if not math.isfinite(v):
                continue
            x = left + j * cw
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" height="{ch:.1f}" '
                         f'fill="{viridis((v - lo) / span)}"/>')  # fmt: skip
            ink = "black" if v > middle else "white"
            parts.append(text(x + cw / 2, y + ch / 2, f"{v:.2f}", size=7, colour=ink,
                              baseline="central"))  # fmt: skip
    parts.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{grid_w:.1f}" height="{grid_h:.1f}" '
                 'fill="none" stroke="#333" stroke-width="0.8"/>')  # fmt: skip
    for j, name in enumerate(cols):
        x, y = left + (j + 0.5) * cw, top + grid_h + 8
        parts.append(text(x, y, name, size=8.5, anchor="end", baseline="hanging",
                          extra=f'transform="rotate(-45 {x:.1f} {y:.1f})"'))  # fmt: skip
    # the colour bar: its gradient from the same stops, ticks at round values
    grad = "".join(
        f'<stop offset="{k / (len(_VIRIDIS) - 1):.2f}" stop-color="{c}"/>'
        for k, c in enumerate(_VIRIDIS)
    )
    canvas.clips.append(f'<linearGradient id="bar" x1="0" y1="1" x2="0" y2="0">{grad}'
                        "</linearGradient>")  # fmt: skip
    bar_h = min(grid_h, 260.0)
    parts.append(f'<rect x="{bar_x:.1f}" y="{top:.1f}" width="14" height="{bar_h:.1f}" '
                 'fill="url(#bar)" stroke="#333" stroke-width="0.6"/>')  # fmt: skip
    for v in nice_ticks(lo, hi, 5):
        y = top + bar_h * (1 - (v - lo) / span)
        parts.append(f'<path d="M{bar_x + 14:.1f},{y:.1f}h4" stroke="#333"/>')
        parts.append(text(bar_x + 21, y, f"{v:g}", size=8, anchor="start", baseline="central"))
    cx, cy = bar_x + 70, top + bar_h / 2
    parts.append(text(cx, cy, "median (transformed scale)", size=8.5,
                      extra=f'transform="rotate(-90 {cx:.1f} {cy:.1f})"'))  # fmt: skip
    words = title or "Median marker values per metacluster"
    parts.append(text(canvas.width / 2, 12 + 12 * PT, words, size=12))
    canvas.add("".join(parts))
    return canvas
