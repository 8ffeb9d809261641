"""The report's heatmap of metacluster medians, drawn as SVG straight from the table.

The same figure as `cytokit.cluster.plots.heatmap_figure` (a cell per metacluster and
marker coloured by its median on viridis, the value written in it, rows labelled with
each metacluster's share of events and best-matching gate, a colour bar), drawn on
`cytokit.plots._canvas` in a millisecond: the report's workers need not import
matplotlib for it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cytokit.plots._canvas import PT, Canvas, text, text_width

__all__ = ["heatmap_svg", "row_labels", "viridis"]

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


def row_labels(medians: pd.DataFrame, summary: pd.DataFrame | None) -> list[str]:
    """``MC m (x.x%) ~ gate`` per metacluster: its share of events and, where its F1 is at
    least 0.5, the gate it matches best (from `summary`)."""
    labels = []
    for m in medians.index:
        text = f"MC {m}"
        if summary is not None:
            row = summary.loc[summary["metacluster"] == m]
            if len(row):
                r = row.iloc[0]
                text += f" ({100 * r['fraction']:.1f}%)"
                if "gate" in row.columns and r.get("f1", 0) >= 0.5:
                    text += f" ~ {r['gate']}"
        labels.append(text)
    return labels


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
    from cytokit.plots._svg import nice_ticks

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
