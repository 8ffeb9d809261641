"""QC plots: every gate of a sample drawn over the parent events it was placed on.

Inputs are the rows of ``qc.csv`` of one sample (``gate_id, gate_path,
parent_path, kind, dims, geometry, count, parent_count``) and the point
subsamples of ``qc/<sample>.npz`` (``gate:<id>``: the parent's events in the
gate's dimensions, transformed as the gate sees them, so points and geometry
share axes). See `cytokit.analysis.results` for the contract and `cytokit.analysis.qcdata` for
the geometry JSON.

`qc_panels` draws no matplotlib figure: each gate is a panel of a grid, its events a
2-D histogram (`gate_histograms`) in a PNG, and everything else SVG drawn over it
(`QCFigure`): axes, ticks, titles and the gate in vector form, so text stays crisp and a
sample's figure takes milliseconds.

* Gates on two or more dimensions: a 2-D histogram of the first two distinct
  dimensions (``BINS`` bins, two CSS pixels each) with the gate drawn: rectangle
  (open sides reach the plot edge), polygon, ellipse (the ellipsoid's shadow on the
  plane: the 2 × 2 block of its covariance, radii ``sqrt(distance_square ·
  eigenvalue)``), or the boxes of a quadrant gate (dividers split by another
  dimension draw on their side only), each quadrant labelled with its % of parent
  from ``counts.csv``. Limits on further dimensions are written in the panel's
  corner. Bins are blue for events inside a rectangle, polygon or ellipsoid gate (on
  all its dimensions), grey for the others, mixed where a bin holds both; darker
  where it holds more events (log scale).
* Gates on one dimension: a histogram (SVG) with the gate's range shaded or the
  quadrant dividers drawn.
* Boolean gates have no geometry of their own and no panel.

Each panel's title gives the gate's n and % of parent, or "not counted" where
``counts.csv`` leaves the gate uncounted (a failed donor marker; qc.csv keeps the
count of the gate as drawn).

Axes are named by marker (``CD3``) where the study's panel names the channel a
dimension reads (``logicle(APC-A) [FCS]`` → ``CD3``), else by the channel
(``FSC-A``). Axes span the 0.5-99.5 % quantiles of the points (so a few saturated events
do not squash the plot) widened to show the whole gate; events beyond the view are
counted in the edge bins, so every stored event is in the histogram.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytokit.plots._svg import nice_ticks, png_bytes, svg_text, tick_label

__all__ = ["BINS", "Panel", "QCFigure", "gate_histograms", "gate_panels", "qc_panels"]

_IN = np.array([31, 95, 168], dtype=np.float64)  # #1f5fa8
_OUT = np.array([180, 180, 180], dtype=np.float64)  # #b4b4b4
_IN_HEX = "#1f5fa8"
_GATE = "#d62728"
_NCOLS = 4
#: One panel's cell and its plot area, in CSS pixels (the figure's SVG units).
CELL = (212, 196)
PLOT = (44, 36, 160, 120)  # x, y, width, height of the plot area inside its cell
#: Band above the grid holding the figure's title, CSS pixels.
TITLE_BAND = 22
#: CSS pixels per histogram bin: the PNG has one pixel per bin and is shown twice as large.
SCALE = 2
#: Bins of a 2-D panel's histogram (x, y).
BINS = (PLOT[2] // SCALE, PLOT[3] // SCALE)
#: Bins of a 1-D panel's histogram.
BINS_1D = 64


def _json(text, default):
    if isinstance(text, (dict, list)):
        return text
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _gate_dims(geometry: dict) -> list[dict]:
    if "dividers" in geometry:
        return [d.get("dimension") or {} for d in geometry["dividers"]]
    return list(geometry.get("dims") or [])


def _axes_of(dims: list[dict]) -> list[int]:
    """Index (in `dims`) of the first occurrence of each distinct dimension."""
    seen: dict[str, int] = {}
    for i, d in enumerate(dims):
        seen.setdefault(json.dumps(d, sort_keys=True), i)
    return list(seen.values())


def _number(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def _range(values: np.ndarray, extra: list[float]) -> tuple[float, float]:
    """View limits: the points' 0.5-99.5 % range, widened towards the gate by at most 30 % of
    that range (a gate far outside, e.g. a half-plane drawn as a huge polygon, is clipped)."""
    v = values[np.isfinite(values)]
    ex = [x for x in extra if math.isfinite(x)]
    if v.size:
        lo, hi = _quantiles(v, 0.005, 0.995)
        reach = 0.3 * (hi - lo) if hi > lo else 1.0
        if ex:
            lo = max(min(lo, *ex), lo - reach)
            hi = min(max(hi, *ex), hi + reach)
    elif ex:
        lo, hi = min(ex), max(ex)
    else:
        lo, hi = 0.0, 1.0
    pad = (hi - lo) * 0.06 or 0.5
    return lo - pad, hi + pad


def _quantiles(v: np.ndarray, *qs: float) -> list[float]:
    """`np.quantile`'s linear interpolation of `v` at `qs`, from one partial sort (the
    quantile machinery costs more than the sort for the few thousand points of a panel)."""
    n = v.size
    at = [(n - 1) * q for q in qs]
    below = [min(math.floor(a), n - 1) for a in at]
    part = np.partition(v.astype(np.float64), sorted({*below, *(min(k + 1, n - 1) for k in below)}))
    out = []
    for a, k in zip(at, below, strict=True):
        x, y, t = float(part[k]), float(part[min(k + 1, n - 1)]), a - k
        out.append(x + (y - x) * t if t < 0.5 else y - (y - x) * (1.0 - t))
    return out


def _quadrant_boxes(geometry: dict, axes: list[int], dims: list[dict]) -> list[tuple]:
    """(name, id, [(lo, hi) on x, (lo, hi) on y]) of each quadrant on the plotted axes."""
    key = [json.dumps(d, sort_keys=True) for d in dims]
    axis_of = {key[i]: a for a, i in enumerate(axes[:2])}
    dividers = {
        d["id"]: (axis_of.get(key[j]), d["values"]) for j, d in enumerate(geometry["dividers"])
    }
    boxes = []
    for q in geometry.get("quadrants", []):
        box = [[-math.inf, math.inf], [-math.inf, math.inf]]
        for ref, loc in q.get("positions", []):
            axis, values = dividers.get(ref, (None, []))
            if axis is None or not values:
                continue
            k = int(np.searchsorted(values, float(loc), side="right"))  # values <= loc
            lo = values[k - 1] if k > 0 else -math.inf
            hi = values[k] if k < len(values) else math.inf
            box[axis] = [max(box[axis][0], lo), min(box[axis][1], hi)]
        boxes.append((q.get("name") or q.get("id"), q.get("id"), box))
    return boxes


def _finite_bounds(geometry: dict, kind: str, axes: list[int]) -> tuple[list[float], list[float]]:
    """Gate coordinates on the plotted axes, to widen the view."""
    xs: list[float] = []
    ys: list[float] = []
    if kind == "rectangle":
        for a, out in zip(axes[:2], (xs, ys), strict=False):
            out += [_number(geometry["min"][a]), _number(geometry["max"][a])]
    elif kind == "polygon":
        v = np.asarray(geometry["vertices"], dtype=float)
        xs, ys = list(v[:, 0]), list(v[:, 1])
    elif kind == "ellipsoid":
        mean, cov = np.asarray(geometry["mean"], float), np.asarray(geometry["covariance"], float)
        r = math.sqrt(float(geometry["distance_square"]))
        for a, out in zip(axes[:2], (xs, ys), strict=False):
            s = r * math.sqrt(max(cov[a, a], 0.0))
            out += [mean[a] - s, mean[a] + s]
    return xs, ys


def _inside(geometry: dict, kind: str, pts: np.ndarray) -> np.ndarray | None:
    """Membership of the points (columns: the gate's dimensions) in a rectangle, polygon or
    ellipsoid, on all its dimensions, by the gating kernels' rules (`cytokit.kernels.gates`:
    ``min <= v < max`` with open sides, even-odd polygons with the same crossing test,
    ``(x − μ)ᵀ C⁻¹ (x − μ) <= d²``; NaN outside); None for other gates.

    In numpy rather than the kernels themselves: for a few thousand points a parallel
    kernel's start costs more than the test (tens of ms on a busy machine).
    """
    if pts.shape[0] == 0:
        return None
    x = pts.astype(np.float64)
    if kind == "rectangle":
        lo = np.array([_number(v) for v in geometry["min"]])
        hi = np.array([_number(v) for v in geometry["max"]])
        lo[np.isnan(lo)], hi[np.isnan(hi)] = -math.inf, math.inf  # open sides
        return ((x >= lo) & ((x < hi) | (hi == math.inf))).all(axis=1)
    if kind == "polygon" and x.shape[1] == 2:
        return _in_polygon(x[:, 0], x[:, 1], np.asarray(geometry["vertices"], float))
    if kind == "ellipsoid":
        d = x - np.asarray(geometry["mean"], float)
        inv = np.linalg.inv(np.asarray(geometry["covariance"], float))
        return np.einsum("ij,jk,ik->i", d, inv, d) <= float(geometry["distance_square"])
    return None


def _in_polygon(px: np.ndarray, py: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Even-odd rule with `cytokit.kernels.gates.polygon_block`'s crossing test (a point on
    an edge bounding the polygon from the right or above is outside), over the points in
    the closed bounding box, every edge at once."""
    out = (px >= v[:, 0].min()) & (px <= v[:, 0].max())
    out &= (py >= v[:, 1].min()) & (py <= v[:, 1].max())
    x, y = px[out][None, :], py[out][None, :]
    xj, yj = np.roll(v[:, 0], 1)[:, None], np.roll(v[:, 1], 1)[:, None]
    xi, yi = v[:, 0][:, None], v[:, 1][:, None]
    cross = (xi - xj) * (y - yj) - (x - xj) * (yi - yj)
    flips = ((yi > y) != (yj > y)) & (cross * np.where(yi > yj, 1.0, -1.0) > 0.0) & (yi != yj)
    out[out] = (flips.sum(axis=0) % 2).astype(bool)
    return out


def _quadrant_label(pct: Mapping[str, float], quadrant_id) -> str:
    value = pct.get(str(quadrant_id), math.nan) if quadrant_id is not None else math.nan
    return f"{value:.1f}%" if math.isfinite(value) else ""


def _pct_parent(counts: pd.DataFrame | None) -> dict[str, float]:
    """Gate id → % of parent in the sample's counts.csv rows (the first row of an id)."""
    if counts is None or counts.empty or not {"gate_id", "pct_parent"} <= set(counts.columns):
        return {}
    pct = pd.to_numeric(counts["pct_parent"], errors="coerce")
    table: dict[str, float] = {}
    for gid, value in zip(counts["gate_id"].astype(str), pct, strict=True):
        table.setdefault(gid, float(value))
    return table


def _bin(values: np.ndarray, lim: tuple[float, float], n: int) -> np.ndarray:
    """Bin index of each value over `lim` cut in `n`; values beyond it go to the edge bins."""
    k = np.floor((values.astype(np.float64) - lim[0]) * (n / (lim[1] - lim[0])))
    return np.clip(k, 0, n - 1).astype(np.intp)


def gate_histograms(
    x: np.ndarray,
    y: np.ndarray,
    inside: np.ndarray | None,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    bins: tuple[int, int] = BINS,
) -> tuple[np.ndarray, np.ndarray]:
    """Events inside and outside a gate, binned on the panel's two axes.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        The events on the panel's axes (points with a non-finite value are left out).
    inside : ndarray of bool, shape (n,), or None
        Membership in the gate (None: every event counts as inside).
    xlim, ylim : (float, float)
        The view; events beyond it are counted in the edge bins.
    bins : (int, int)
        Bins along x and y.

    Returns
    -------
    (inside, outside) : ndarrays of int64, shape (bins[1], bins[0])
        Row 0 is the top of the plot (the highest y), column 0 its left.
    """
    nx, ny = bins
    ok = np.isfinite(x) & np.isfinite(y)
    flat = (ny - 1 - _bin(y[ok], ylim, ny)) * nx + _bin(x[ok], xlim, nx)
    keep = np.ones(flat.shape, dtype=bool) if inside is None else np.asarray(inside)[ok]
    hin = np.bincount(flat[keep], minlength=nx * ny).reshape(ny, nx)
    hout = np.bincount(flat[~keep], minlength=nx * ny).reshape(ny, nx)
    return hin, hout


def _colours(hin: np.ndarray, hout: np.ndarray) -> np.ndarray:
    """RGB of each bin: blue inside, grey outside, mixed by share; white when empty, and
    darker the more events (log scale) so that dense regions read as dense."""
    total = hin + hout
    share = (hin / np.maximum(total, 1))[..., None]
    colour = share * _IN + (1 - share) * _OUT
    top = max(int(total.max()), 1)
    ink = np.where(total > 0, 0.55 + 0.45 * np.log1p(total) / math.log1p(top), 0.0)[..., None]
    return np.rint(255.0 * (1 - ink) + colour * ink).astype(np.uint8)


@dataclass(frozen=True)
class _View:
    """Data coordinates → the plot area's pixels (y up), for a 2-D or 1-D panel."""

    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def px(self, v) -> np.ndarray:
        return (np.asarray(v, float) - self.xlim[0]) * (PLOT[2] / (self.xlim[1] - self.xlim[0]))

    def py(self, v) -> np.ndarray:
        return PLOT[3] - (np.asarray(v, float) - self.ylim[0]) * (
            PLOT[3] / (self.ylim[1] - self.ylim[0])
        )


_STROKE = f'fill="none" stroke="{_GATE}" stroke-width="1.3"'
_HALO = 'paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round"'


def _label(
    x: float,
    y: float,
    lines: list[str],
    size: float = 8.5,
    colour: str = _GATE,
    anchor: str = "middle",
) -> str:
    """Text of one or more lines starting at `y`, with a white halo over the events."""
    return "".join(
        svg_text(
            x,
            y + i * (size + 1.5),
            line,
            size=size,
            anchor=anchor,
            extra=f'fill="{colour}" {_HALO}',
        )
        for i, line in enumerate(lines)
        if line
    )


def _wrap(text: str, width: int = 34) -> list[str]:
    lines: list[str] = []
    for part in text.split("; "):
        line = ""
        for word in part.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def _ellipse_svg(geometry: dict, axes: list[int], view: _View) -> str:
    """The ellipsoid's shadow on the plotted plane, mapped to pixels (an affine map of an
    ellipse is an ellipse: its covariance is carried through the axis scales)."""
    mean = np.asarray(geometry["mean"], float)[axes[:2]]
    cov = np.asarray(geometry["covariance"], float)[np.ix_(axes[:2], axes[:2])]
    scale = np.diag([PLOT[2] / np.diff(view.xlim)[0], -PLOT[3] / np.diff(view.ylim)[0]])
    vals, vecs = np.linalg.eigh(scale @ ((cov + cov.T) / 2) @ scale)
    r = math.sqrt(float(geometry["distance_square"]))
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    cx, cy = float(view.px(mean[0])), float(view.py(mean[1]))
    rx, ry = r * math.sqrt(max(vals[1], 0.0)), r * math.sqrt(max(vals[0], 0.0))
    return (
        f'<ellipse cx="{cx:.2f}" cy="{cy:.2f}" rx="{rx:.2f}" ry="{ry:.2f}" '
        f'transform="rotate({angle:.3f} {cx:.2f} {cy:.2f})" {_STROKE}/>'
    )


def _points(xs, ys) -> str:
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys, strict=True))


def _gate_2d(geometry, kind, axes, dims, labels, view: _View, pct) -> tuple[str, str]:
    """(SVG of the gate in the plot area's pixels, the note on further dimensions)."""
    w, h = PLOT[2], PLOT[3]
    if kind == "rectangle":
        lo = [_number(geometry["min"][a]) for a in axes[:2]]
        hi = [_number(geometry["max"][a]) for a in axes[:2]]
        # an open side lies beyond the plot area, which clips it
        x0 = float(view.px(lo[0])) if math.isfinite(lo[0]) else -w
        x1 = float(view.px(hi[0])) if math.isfinite(hi[0]) else 2 * w
        y1 = float(view.py(lo[1])) if math.isfinite(lo[1]) else 2 * h
        y0 = float(view.py(hi[1])) if math.isfinite(hi[1]) else -h
        extra = []
        for a in axes[2:]:
            lo_a, hi_a = _number(geometry["min"][a]), _number(geometry["max"][a])
            extra.append(
                f"and {labels[a]} in [{'-∞' if not math.isfinite(lo_a) else f'{lo_a:.3g}'}, "
                f"{'∞' if not math.isfinite(hi_a) else f'{hi_a:.3g}'})"
            )
        svg = (
            f'<rect x="{x0:.2f}" y="{y0:.2f}" width="{x1 - x0:.2f}" height="{y1 - y0:.2f}" '
            f"{_STROKE}/>"
        )
        return svg, "; ".join(extra)
    if kind == "polygon":
        v = np.asarray(geometry["vertices"], float)
        return f'<polygon points="{_points(view.px(v[:, 0]), view.py(v[:, 1]))}" {_STROKE}/>', ""
    if kind == "ellipsoid":
        note = f"ellipsoid on {len(axes)} dimensions: its shadow on this plane"
        return _ellipse_svg(geometry, axes, view), note if len(axes) > 2 else ""
    if kind != "quadrant":
        return "", ""
    parts = []
    xlim, ylim = view.xlim, view.ylim
    for name, qid, ((bx0, bx1), (by0, by1)) in _quadrant_boxes(geometry, axes, dims):
        cx0, cx1 = max(bx0, xlim[0]), min(bx1, xlim[1])
        cy0, cy1 = max(by0, ylim[0]), min(by1, ylim[1])
        for xv in (bx0, bx1):
            if math.isfinite(xv):
                x = float(view.px(xv))
                parts.append(
                    f'<line x1="{x:.2f}" x2="{x:.2f}" y1="{float(view.py(cy0)):.2f}" '
                    f'y2="{float(view.py(cy1)):.2f}" {_STROKE}/>'
                )
        for yv in (by0, by1):
            if math.isfinite(yv):
                y = float(view.py(yv))
                parts.append(
                    f'<line x1="{float(view.px(cx0)):.2f}" x2="{float(view.px(cx1)):.2f}" '
                    f'y1="{y:.2f}" y2="{y:.2f}" {_STROKE}/>'
                )
        if cx1 > cx0 and cy1 > cy0:
            x = float(view.px((cx0 + cx1) / 2))
            y = float(view.py(cy1)) + 10
            parts.append(_label(x, y, [str(name), _quadrant_label(pct, qid)]))
    return "".join(parts), ""


def _gate_1d(geometry, kind, view: _View, pct) -> str:
    """The kept range shaded and its edges, or the quadrant dividers and their labels."""
    edges = _edges_1d(geometry, kind)
    parts = []
    if kind in ("rectangle", "ellipsoid"):
        lo = edges[0] if math.isfinite(edges[0]) else view.xlim[0]
        hi = edges[1] if math.isfinite(edges[1]) else view.xlim[1]
        x0, x1 = float(view.px(lo)), float(view.px(hi))
        parts.append(
            f'<rect x="{x0:.2f}" y="0" width="{max(x1 - x0, 0):.2f}" height="{PLOT[3]}" '
            f'fill="{_GATE}" fill-opacity="0.12"/>'
        )
    for e in edges:
        if math.isfinite(e):
            x = float(view.px(e))
            parts.append(f'<line x1="{x:.2f}" x2="{x:.2f}" y1="0" y2="{PLOT[3]}" {_STROKE}/>')
    if kind == "quadrant":
        for name, qid, ((bx0, bx1), _) in _quadrant_boxes(geometry, [0], _gate_dims(geometry)):
            cx0, cx1 = max(bx0, view.xlim[0]), min(bx1, view.xlim[1])
            if cx1 > cx0:
                x = float(view.px((cx0 + cx1) / 2))
                parts.append(_label(x, 10, [str(name), _quadrant_label(pct, qid)]))
    return "".join(parts)


def _edges_1d(geometry: dict, kind: str) -> list[float]:
    if kind == "rectangle":
        return [_number(geometry["min"][0]), _number(geometry["max"][0])]
    if kind == "quadrant":
        return [float(x) for d in geometry["dividers"] for x in d["values"]]
    if kind == "ellipsoid":
        s = math.sqrt(float(geometry["distance_square"]) * float(geometry["covariance"][0][0]))
        return [float(geometry["mean"][0]) - s, float(geometry["mean"][0]) + s]
    return []


def _axes_svg(view: _View, xlabel: str, ylabel: str) -> str:
    """Frame, ticks and their labels, axis labels (in the cell's pixels)."""
    x0, y0, w, h = PLOT
    parts = [
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#555" '
        'stroke-width="0.8"/>'
    ]
    for v in nice_ticks(*view.xlim):
        x = x0 + float(view.px(v))
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0 + h}" y2="{y0 + h + 3}" stroke="#555"/>'
        )
        parts.append(svg_text(x, y0 + h + 13, tick_label(v), size=9, extra='fill="#333"'))
    for v in nice_ticks(*view.ylim):
        y = y0 + float(view.py(v))
        parts.append(f'<line x1="{x0 - 3}" x2="{x0}" y1="{y:.1f}" y2="{y:.1f}" stroke="#555"/>')
        parts.append(
            svg_text(x0 - 5, y + 3, tick_label(v), size=9, anchor="end", extra='fill="#333"')
        )
    parts.append(svg_text(x0 + w / 2, y0 + h + 27, xlabel, size=10.5))
    cy = y0 + h / 2
    parts.append(svg_text(11, cy, ylabel, size=10.5, extra=f'transform="rotate(-90 11 {cy:.1f})"'))
    return "".join(parts)


@dataclass(frozen=True)
class Panel:
    """One gate's panel of a `QCFigure`.

    Attributes
    ----------
    gate : str
        The gate's id (qc.csv ``gate_id``).
    kind : str
        ``rectangle``, ``polygon``, ``ellipsoid`` or ``quadrant``.
    axes : tuple of int
        The gate's dimensions drawn: x (and y).
    xlim, ylim : (float, float)
        The view in the gate's coordinates (1-D: ylim is events, from 0).
    inside, outside : ndarray of int64
        2-D: the `gate_histograms` of the panel, shape (BINS[1], BINS[0]); 1-D: events per
        bin of the histogram (`outside` empty).
    origin : (int, int)
        Top-left corner of the plot area in the figure, CSS pixels.
    svg : str
        The panel's SVG group (axes, labels, gate), in the figure's coordinates.
    """

    gate: str
    kind: str
    axes: tuple[int, ...]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    inside: np.ndarray = field(repr=False)
    outside: np.ndarray = field(repr=False)
    origin: tuple[int, int]
    svg: str = field(repr=False)


def _panel(
    row, geometry, kind, pts, labels, counts, origin, pct: Mapping[str, float]
) -> tuple[Panel, np.ndarray | None]:
    """The panel of one gate, and its RGB tile (None for a 1-D panel); `pct`: gate id → %
    of parent (`_pct_parent` of `counts`)."""
    dims = _gate_dims(geometry)
    axes = _axes_of(dims)
    note = ""
    if len(axes) >= 2:
        x, y = pts[:, axes[0]], pts[:, axes[1]]
        xs, ys = _finite_bounds(geometry, kind, axes)
        if kind == "quadrant":
            for d, dim in zip(geometry["dividers"], dims, strict=True):
                k = json.dumps(dim, sort_keys=True)
                target = xs if k == json.dumps(dims[axes[0]], sort_keys=True) else ys
                target.extend(float(v) for v in d["values"])
        view = _View(_range(x, xs), _range(y, ys))
        inside = _inside(geometry, kind, pts) if len(axes) == pts.shape[1] else None
        hin, hout = gate_histograms(x, y, inside, view.xlim, view.ylim)
        inner, note = _gate_2d(geometry, kind, axes, dims, labels, view, pct)
        tile = _colours(hin, hout)
        xlabel, ylabel = labels[axes[0]], labels[axes[1]]
    else:
        v = pts[:, 0].astype(np.float64)
        v = v[np.isfinite(v)]
        xlim = _range(v, _edges_1d(geometry, kind))
        hin = np.bincount(_bin(v, xlim, BINS_1D), minlength=BINS_1D)
        hout = np.zeros(0, dtype=np.int64)
        top = max(int(hin.max()) if hin.size else 0, 1) * 1.08
        view = _View(xlim, (0.0, top))
        step = PLOT[2] / BINS_1D
        ys = view.py(hin)
        path = [f"M0,{PLOT[3]}"] + [f"V{ys[i]:.2f}H{(i + 1) * step:.2f}" for i in range(BINS_1D)]
        bars = f'<path d="{"".join(path)}V{PLOT[3]}Z" fill="{_IN_HEX}"/>'
        inner = bars + _gate_1d(geometry, kind, view, pct)
        tile = None
        xlabel, ylabel = labels[0], "events"
    if note:
        inner += _label(4, 10, _wrap(note), size=8, colour="#333", anchor="start")
    ox, oy = origin
    title = _title(row, geometry, counts).split("\n")
    head = svg_text(PLOT[0] + PLOT[2] / 2, 13, title[0], size=11, extra='font-weight="600"')
    if len(title) > 1:
        head += svg_text(PLOT[0] + PLOT[2] / 2, 27, title[1], size=9.5, extra='fill="#333"')
    svg = (
        f'<g transform="translate({ox - PLOT[0]},{oy - PLOT[1]})">{head}'
        f'<svg x="{PLOT[0]}" y="{PLOT[1]}" width="{PLOT[2]}" height="{PLOT[3]}" '
        f'overflow="hidden">{inner}</svg>{_axes_svg(view, xlabel, ylabel)}</g>'
    )
    panel = Panel(
        str(row.get("gate_id")),
        kind,
        tuple(axes[:2]),
        view.xlim,
        view.ylim,
        hin,
        hout,
        (ox, oy),
        svg,
    )
    return panel, tile


_DIMENSION = re.compile(
    r"^\s*(?:(?P<func>[A-Za-z]\w*)\((?P<inner>.+)\))?(?P<bare>[^()\[\]]*?)\s*(?:\[[^\]]*\])?\s*$"
)


def axis_label(dimension: str, markers: Mapping[str, str] | None) -> str:
    """A dimension's axis label: its marker when `markers` (channel → marker) names the
    channel it reads, else the channel, without its transform and scale (a dimension of
    several channels, such as a ratio, keeps its function: ``ratio(CD3, CD56)``)."""
    m = _DIMENSION.match(dimension)
    if m is None:
        return dimension
    markers = markers or {}
    if m.group("inner") and "," in m.group("inner"):
        parts = [x.strip() for x in m.group("inner").split(",")]
        return f"{m.group('func')}({', '.join(markers.get(x, x) for x in parts)})"
    channel = (m.group("inner") or m.group("bare")).strip()
    return markers.get(channel, channel) or dimension


def gate_panels(qc_rows: pd.DataFrame, points: Mapping[str, np.ndarray]) -> list[tuple]:
    """The drawable gates of one sample: ``(row, geometry, kind, points, labels)``.

    Boolean gates, gates without stored points and rows whose geometry does
    not parse are left out.
    """
    panels = []
    for row in qc_rows.to_dict("records"):
        kind = str(row.get("kind", ""))
        geometry = _json(row.get("geometry"), {})
        dims = _gate_dims(geometry) if isinstance(geometry, dict) else []
        pts = points.get(str(row.get("gate_id")))
        if kind == "boolean" or not dims or pts is None or pts.ndim != 2:
            continue
        if pts.shape[1] != len(dims):
            continue
        labels = [str(x) for x in _json(row.get("dims"), [])]
        if len(labels) != len(dims):
            labels = [str(d.get("channel", f"dimension {i}")) for i, d in enumerate(dims)]
        panels.append((row, geometry, kind, pts, labels))
    return panels


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _name(row, geometry: dict) -> str:
    """The gate's own name: its path or id after its parent's (names may hold '/')."""
    parents = [p for p in (_text(row.get("parent_path")), _text(geometry.get("parent"))) if p]
    for key in ("gate_path", "gate_id"):
        text = _text(row.get(key))
        if not text:
            continue
        for parent in parents:
            if text.startswith(f"{parent}/"):
                return text[len(parent) + 1 :]
        if text.startswith("/") and text.count("/") == 1:  # a top-level gate: its name
            return text[1:] or text
        return text
    return _text(geometry.get("name"))


def _counts_row(counts: pd.DataFrame | None, column: str, key):
    """The first row of the sample's counts.csv rows whose `column` is `key`, or None."""
    if counts is None or counts.empty or not _text(key) or column not in counts.columns:
        return None
    sel = counts[counts[column].astype(str) == _text(key)]
    return sel.iloc[0] if len(sel) else None


def _parent_count(row, geometry: dict, counts: pd.DataFrame | None) -> float:
    parent = _number(row.get("parent_count"))
    if math.isfinite(parent):
        return parent
    for column, key in (("gate_path", row.get("parent_path")), ("gate_id", geometry.get("parent"))):
        if (found := _counts_row(counts, column, key)) is not None:
            return _number(found.get("count"))
    return parent


def _uncounted(row, counts: pd.DataFrame | None) -> bool:
    """Whether counts.csv leaves this gate uncounted (its count empty, its note saying
    why: a failed donor marker), though qc.csv keeps the count of the gate as drawn."""
    found = _counts_row(counts, "gate_path", row.get("gate_path"))
    if found is None or "count" not in found.index:
        return False
    return pd.isna(found["count"]) and _text(found.get("note")).startswith("not counted")


def _title(row, geometry: dict, counts: pd.DataFrame | None) -> str:
    name = _name(row, geometry)
    count, parent = _number(row.get("count")), _parent_count(row, geometry, counts)
    if _uncounted(row, counts):
        return f"{name}\nnot counted (donor marker failed)"
    if math.isfinite(count):
        pct = f" ({100.0 * count / parent:.1f}% of parent)" if parent and parent > 0 else ""
        return f"{name}\nn = {int(count):,}{pct}"
    if math.isfinite(parent):
        return f"{name}\nparent n = {int(parent):,}"
    return name


#: The background image of a standalone QC figure, removed where the page shows its own.
_BACKGROUND = re.compile(r'<image class="qc-background"[^>]*/>')


@dataclass(frozen=True)
class QCFigure:
    """Every gate of one sample: a grid of panels, as a PNG of the histograms and an SVG of
    the rest over it (the two share their size: one PNG pixel is `SCALE` SVG units).

    Attributes
    ----------
    panels : list of Panel
    width, height : int
        The figure's size in CSS pixels (the PNG is half as wide and high).
    png : bytes
        The 2-D histograms, each at its panel's plot area, white elsewhere.
    image : str
        Where the standalone SVG finds the PNG (a path relative to the SVG file).
    """

    panels: list[Panel]
    width: int
    height: int
    png: bytes = field(repr=False)
    title: str = ""
    image: str = ""
    message: str = ""

    def overlay(self) -> str:
        """The SVG element drawn over the PNG (no background), for a page to inline."""
        return _BACKGROUND.sub("", self.svg())

    def svg(self) -> str:
        """A standalone SVG document: the PNG (at `image`) under the panels."""
        w, h = self.width, self.height
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" font-family="system-ui, -apple-system, Segoe UI, Roboto, '
            'Arial, sans-serif" fill="#1d2228">'
        ]
        if self.image:
            parts.append(
                f'<image class="qc-background" href="{html.escape(self.image)}" x="0" y="0" '
                f'width="{w}" height="{h}" preserveAspectRatio="none" '
                'style="image-rendering:pixelated"/>'
            )
        if self.title:
            parts.append(svg_text(8, 15, self.title, size=11.5, anchor="start"))
        if self.message:
            parts.append(svg_text(w / 2, h / 2, self.message, size=12, extra='fill="#666"'))
        parts += [p.svg for p in self.panels]
        parts.append("</svg>")
        return "\n".join(parts) + "\n"

    def to_bytes(self, fmt: str) -> bytes:
        """``"png"``: the histograms; ``"svg"``: the standalone document."""
        if fmt == "png":
            return self.png
        if fmt == "svg":
            return self.svg().encode("utf-8")
        raise ValueError(f"a QC figure is written as png or svg, not {fmt!r}")


def overlay_of(svg: str) -> str:
    """The SVG of a standalone QC figure file without its background image (see `QCFigure`)."""
    return _BACKGROUND.sub("", svg)


def qc_panels(
    qc_rows: pd.DataFrame,
    points: Mapping[str, np.ndarray],
    *,
    counts: pd.DataFrame | None = None,
    title: str = "",
    markers: Mapping[str, str] | None = None,
    image: str = "",
) -> QCFigure:
    """Every gate of one sample over its parent's events (see the module docstring).

    Parameters
    ----------
    qc_rows : DataFrame
        The sample's rows of qc.csv.
    points : mapping of str to ndarray
        Gate id → parent events in the gate's dimensions, shape (n, n_dims).
    counts : DataFrame, optional
        The sample's rows of counts.csv (quadrant percentages, parent counts).
    title : str
    markers : mapping of str to str, optional
        Channel → marker (the study's panel): axes are named by marker.
    image : str
        Where the standalone SVG (`QCFigure.svg`) finds the PNG, relative to it.

    Returns
    -------
    QCFigure
        A grid of `_NCOLS` panels a row, or a figure saying that nothing can be drawn.
    """
    found = gate_panels(qc_rows, points)
    ncols = max(1, min(_NCOLS, len(found)))
    nrows = max(1, -(-len(found) // ncols))
    width, height = ncols * CELL[0], TITLE_BAND + nrows * CELL[1]
    rgb = np.full((height // SCALE, width // SCALE, 3), 255, dtype=np.uint8)
    panels = []
    pct = _pct_parent(counts)
    for k, (row, geometry, kind, pts, labels) in enumerate(found):
        origin = ((k % ncols) * CELL[0] + PLOT[0], TITLE_BAND + (k // ncols) * CELL[1] + PLOT[1])
        labels = [axis_label(x, markers) for x in labels]
        panel, tile = _panel(row, geometry, kind, pts, labels, counts, origin, pct)
        panels.append(panel)
        if tile is not None:
            r, c = origin[1] // SCALE, origin[0] // SCALE
            rgb[r : r + tile.shape[0], c : c + tile.shape[1]] = tile
    message = "" if found else "no gate QC data"
    # zlib level 3: half level 6's time, ~1.4 kB more per figure
    return QCFigure(panels, width, height, png_bytes(rgb, level=3), title, image, message)
