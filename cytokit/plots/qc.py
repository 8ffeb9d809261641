"""QC plots: every gate of a sample drawn over the parent events it was placed on.

Inputs are the rows of ``qc.csv`` of one sample (``gate_id, gate_path,
parent_path, kind, dims, geometry, count, parent_count``) and the point
subsamples of ``qc/<sample>.npz`` (``gate:<id>``: the parent's events in the
gate's dimensions, transformed as the gate sees them, so points and geometry
share axes). See `cytokit.analysis.results` for the contract and `cytokit.analysis.qcdata` for
the geometry JSON.

* Gates on two or more dimensions: a dot plot of the first two distinct
  dimensions with the gate drawn: rectangle (open sides reach the plot
  edge), polygon, ellipse (the ellipsoid's shadow on the plane: the 2 × 2
  block of its covariance, radii ``sqrt(distance_square · eigenvalue)``), or
  the boxes of a quadrant gate (dividers split by another dimension draw on
  their side only), each quadrant labelled with its % of parent from
  ``counts.csv``. Limits on further dimensions are written in the panel's
  corner. Points inside a rectangle, polygon or ellipsoid gate (on all its
  dimensions) are coloured, the others grey.
* Gates on one dimension: a histogram with the gate's range shaded or the
  quadrant dividers drawn.
* Boolean gates have no geometry of their own and no panel.

Axes are named by marker (``CD3``) where the study's panel names the channel a
dimension reads (``logicle(APC-A) [FCS]`` → ``CD3``), else by the channel
(``FSC-A``). Axes span the 0.5-99.5 % quantiles of the points (so a few saturated events
do not squash the plot) widened to show the whole gate. Dots are rasterised
and small; a figure renders in well under a second.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Polygon, Rectangle
from matplotlib.path import Path as MplPath

from cytokit.plots._figure import gate_name, grid_figure, plain

__all__ = ["gate_panels", "qc_figure"]

_IN, _OUT, _GATE = "#1f5fa8", "#b4b4b4", "#d62728"
_NCOLS = 4
_LABEL_BOX = {"fc": "white", "ec": "none", "alpha": 0.75, "pad": 0.6}
_BINS = 64


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
        lo, hi = (float(q) for q in np.quantile(v, [0.005, 0.995]))
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
    ellipsoid, on all its dimensions; None for other gates."""
    if pts.shape[0] == 0:
        return None
    x = pts.astype(np.float64)
    if kind == "rectangle":
        lo = np.array([_number(v) for v in geometry["min"]])
        hi = np.array([_number(v) for v in geometry["max"]])
        ok = np.ones(len(x), dtype=bool)
        for j in range(x.shape[1]):
            if math.isfinite(lo[j]):
                ok &= x[:, j] >= lo[j]
            if math.isfinite(hi[j]):
                ok &= x[:, j] < hi[j]
        return ok
    if kind == "polygon" and x.shape[1] == 2:
        return MplPath(np.asarray(geometry["vertices"], float)).contains_points(x)
    if kind == "ellipsoid":
        d = x - np.asarray(geometry["mean"], float)
        inv = np.linalg.inv(np.asarray(geometry["covariance"], float))
        return np.einsum("ij,jk,ik->i", d, inv, d) <= float(geometry["distance_square"])
    return None


def _quadrant_label(counts: pd.DataFrame | None, quadrant_id) -> str:
    if counts is None or counts.empty or quadrant_id is None:
        return ""
    sel = counts[counts["gate_id"].astype(str) == str(quadrant_id)]
    if sel.empty:
        return ""
    pct = _number(sel.iloc[0].get("pct_parent"))
    return f"{pct:.1f}%" if math.isfinite(pct) else ""


def _draw_2d(ax, row, geometry, kind, pts, labels, counts) -> str:
    dims = _gate_dims(geometry)
    axes = _axes_of(dims)
    x, y = pts[:, axes[0]], pts[:, axes[1]]
    xs, ys = _finite_bounds(geometry, kind, axes)
    if kind == "quadrant":
        for d, dim in zip(geometry["dividers"], dims, strict=True):
            k = json.dumps(dim, sort_keys=True)
            target = xs if k == json.dumps(dims[axes[0]], sort_keys=True) else ys
            target.extend(float(v) for v in d["values"])
    xlim, ylim = _range(x, xs), _range(y, ys)
    inside = _inside(geometry, kind, pts) if len(axes) == pts.shape[1] else None
    if inside is None:
        ax.plot(x, y, ls="none", marker=".", ms=1.6, mew=0, color=_IN, rasterized=True)
    else:
        ax.plot(
            x[~inside],
            y[~inside],
            ls="none",
            marker=".",
            ms=1.6,
            mew=0,
            color=_OUT,
            rasterized=True,
        )
        ax.plot(
            x[inside], y[inside], ls="none", marker=".", ms=1.6, mew=0, color=_IN, rasterized=True
        )
    note = ""
    style = {"fill": False, "ec": _GATE, "lw": 1.3}
    if kind == "rectangle":
        lo = [_number(geometry["min"][a]) for a in axes[:2]]
        hi = [_number(geometry["max"][a]) for a in axes[:2]]
        x0 = lo[0] if math.isfinite(lo[0]) else xlim[0] - (xlim[1] - xlim[0])
        x1 = hi[0] if math.isfinite(hi[0]) else xlim[1] + (xlim[1] - xlim[0])
        y0 = lo[1] if math.isfinite(lo[1]) else ylim[0] - (ylim[1] - ylim[0])
        y1 = hi[1] if math.isfinite(hi[1]) else ylim[1] + (ylim[1] - ylim[0])
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, **style))
        extra = []
        for a in axes[2:]:
            lo_a, hi_a = _number(geometry["min"][a]), _number(geometry["max"][a])
            extra.append(
                f"and {labels[a]} in [{'-∞' if not math.isfinite(lo_a) else f'{lo_a:.3g}'}, "
                f"{'∞' if not math.isfinite(hi_a) else f'{hi_a:.3g}'})"
            )
        note = "; ".join(extra)
    elif kind == "polygon":
        ax.add_patch(Polygon(np.asarray(geometry["vertices"], float), closed=True, **style))
    elif kind == "ellipsoid":
        mean = np.asarray(geometry["mean"], float)[axes[:2]]
        cov = np.asarray(geometry["covariance"], float)[np.ix_(axes[:2], axes[:2])]
        vals, vecs = np.linalg.eigh(cov)
        r = math.sqrt(float(geometry["distance_square"]))
        angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
        w, h = 2 * r * math.sqrt(max(vals[1], 0)), 2 * r * math.sqrt(max(vals[0], 0))
        ax.add_patch(Ellipse(tuple(mean), w, h, angle=angle, **style))
        if len(axes) > 2:
            note = f"ellipsoid on {len(axes)} dimensions: its shadow on this plane"
    elif kind == "quadrant":
        for name, qid, ((bx0, bx1), (by0, by1)) in _quadrant_boxes(geometry, axes, dims):
            cx0, cx1 = max(bx0, xlim[0]), min(bx1, xlim[1])
            cy0, cy1 = max(by0, ylim[0]), min(by1, ylim[1])
            for xv in (bx0, bx1):
                if math.isfinite(xv):
                    ax.plot([xv, xv], [cy0, cy1], color=_GATE, lw=1.2)
            for yv in (by0, by1):
                if math.isfinite(yv):
                    ax.plot([cx0, cx1], [yv, yv], color=_GATE, lw=1.2)
            if cx1 > cx0 and cy1 > cy0:
                pct = _quadrant_label(counts, qid)
                ax.text(
                    (cx0 + cx1) / 2,
                    cy1 - 0.04 * (ylim[1] - ylim[0]),
                    plain(f"{name}\n{pct}".strip()),
                    ha="center",
                    va="top",
                    fontsize=6,
                    color=_GATE,
                    bbox=_LABEL_BOX,
                )
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(plain(labels[axes[0]]), fontsize=8)
    ax.set_ylabel(plain(labels[axes[1]]), fontsize=8)
    return note


def _draw_1d(ax, row, geometry, kind, pts, labels, counts) -> str:
    v = pts[:, 0].astype(np.float64)
    edges: list[float] = []
    if kind == "rectangle":
        edges = [_number(geometry["min"][0]), _number(geometry["max"][0])]
    elif kind == "quadrant":
        edges = [float(x) for d in geometry["dividers"] for x in d["values"]]
    elif kind == "ellipsoid":
        s = math.sqrt(float(geometry["distance_square"]) * float(geometry["covariance"][0][0]))
        edges = [float(geometry["mean"][0]) - s, float(geometry["mean"][0]) + s]
    lim = _range(v, edges)
    bins = np.linspace(lim[0], lim[1], _BINS + 1)
    # one stairs artist, not a bar patch per bin (64 patches cost most of the figure's time)
    ax.stairs(np.histogram(v[np.isfinite(v)], bins=bins)[0], bins, fill=True, color=_IN, lw=0)
    if kind in ("rectangle", "ellipsoid"):
        lo = edges[0] if math.isfinite(edges[0]) else lim[0]
        hi = edges[1] if math.isfinite(edges[1]) else lim[1]
        ax.axvspan(lo, hi, color=_GATE, alpha=0.12, lw=0)
    for e in edges:
        if math.isfinite(e):
            ax.axvline(e, color=_GATE, lw=1.3)
    if kind == "quadrant":
        for name, qid, ((bx0, bx1), _) in _quadrant_boxes(geometry, [0], _gate_dims(geometry)):
            cx0, cx1 = max(bx0, lim[0]), min(bx1, lim[1])
            if cx1 > cx0:
                pct = _quadrant_label(counts, qid)
                ax.text(
                    (cx0 + cx1) / 2,
                    0.97,
                    plain(f"{name}\n{pct}".strip()),
                    ha="center",
                    va="top",
                    fontsize=6,
                    color=_GATE,
                    transform=ax.get_xaxis_transform(),
                    bbox=_LABEL_BOX,
                )
    ax.set_xlim(*lim)
    ax.set_xlabel(plain(labels[0]), fontsize=8)
    ax.set_ylabel("events", fontsize=8)
    return ""


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
    for _, row in qc_rows.iterrows():
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
        return gate_name(text) if text.startswith("/") and text.count("/") == 1 else text
    return _text(geometry.get("name"))


def _parent_count(row, geometry: dict, counts: pd.DataFrame | None) -> float:
    parent = _number(row.get("parent_count"))
    if math.isfinite(parent) or counts is None or counts.empty:
        return parent
    for column, key in (("gate_path", row.get("parent_path")), ("gate_id", geometry.get("parent"))):
        if _text(key) and column in counts.columns:
            sel = counts[counts[column].astype(str) == _text(key)]
            if len(sel):
                return _number(sel.iloc[0].get("count"))
    return parent


def _title(row, geometry: dict, counts: pd.DataFrame | None) -> str:
    name = plain(_name(row, geometry))
    count, parent = _number(row.get("count")), _parent_count(row, geometry, counts)
    if math.isfinite(count):
        pct = f" ({100.0 * count / parent:.1f}% of parent)" if parent and parent > 0 else ""
        return f"{name}\nn = {int(count):,}{pct}"
    if math.isfinite(parent):
        return f"{name}\nparent n = {int(parent):,}"
    return name


def qc_figure(
    qc_rows: pd.DataFrame,
    points: Mapping[str, np.ndarray],
    *,
    counts: pd.DataFrame | None = None,
    title: str = "",
    markers: Mapping[str, str] | None = None,
) -> Figure:
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

    Returns
    -------
    Figure
        A grid of panels, or one panel saying that nothing can be drawn.
    """
    panels = gate_panels(qc_rows, points)
    n = max(1, len(panels))
    ncols = min(_NCOLS, n)
    nrows = -(-n // ncols)
    fig, grid = grid_figure(
        nrows, ncols, (1.95, 1.55), margins=(0.55, 0.15, 0.45, 0.6), gaps=(0.62, 0.85)
    )
    axes = grid.ravel()
    height = fig.get_figheight()
    for ax, (row, geometry, kind, pts, labels) in zip(axes, panels, strict=False):
        draw = _draw_2d if len(_axes_of(_gate_dims(geometry))) >= 2 else _draw_1d
        labels = [axis_label(x, markers) for x in labels]
        note = draw(ax, row, geometry, kind, pts, labels, counts)
        ax.set_title(_title(row, geometry, counts), fontsize=7, pad=3, y=1.0)
        if note:
            ax.text(
                0.02,
                0.97,
                plain(note),
                transform=ax.transAxes,
                fontsize=5.5,
                color="0.25",
                ha="left",
                va="top",
                bbox=_LABEL_BOX,
            )
        ax.tick_params(labelsize=7, length=2, pad=1.5)
        ax.locator_params(nbins=3)
    if not panels:
        axes[0].text(0.5, 0.5, "no gate QC data", ha="center", va="center", color="0.4")
        axes[0].set_axis_off()
    for ax in axes[len(panels) :] if panels else axes[1:]:
        ax.set_visible(False)
    fig.suptitle(plain(title), fontsize=9, y=1 - 0.12 / height, va="top")
    return fig
