"""FlowJo 10 gate elements as cytokit gates.

FlowJo writes its gates in Gating-ML 2.0 syntax but with its own meaning:

* rectangle bounds and polygon vertices are *data* values, while FlowJo draws
  and tests the gate on its display axes (see `cytokit.gating.flowjo.axes`).
  Bounds and vertices are therefore mapped through each channel's transform
  and the gate is tested on transformed values, so polygon edges are straight
  where FlowJo draws them straight. A rectangle side at or beyond the end of
  the display axis is left open: FlowJo piles off-scale events on the axis
  end, inside such a gate.
* quadrant gates are four populations, each a rectangle with two open sides;
  they are kept as rectangles (``min <= v < max``, as FlowJo counts them).
* an ellipse is stored as its two foci and four edge points (the ends of the
  major axis, then of the minor axis) in display-grid positions. The centre is
  the foci's midpoint, the major axis points along the foci, its half-length
  ``a`` is the mean distance of the two major edge points from the centre, and
  the half minor axis is ``b = sqrt(a² − c²)`` with ``c`` the half focal
  distance (the foci are stored unrounded, the edge points rounded to the
  grid). The ellipse ``(p − m)ᵀ Σ⁻¹ (p − m) <= 1`` with
  ``Σ = a² u uᵀ + b² v vᵀ`` in display positions is then mapped, exactly, to
  gate values by each axis's affine display map.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.flowjo.axes import Axis, AxisMaker
from cytokit.gating.flowjo.xml import Element, child, children, number, where
from cytokit.gating.gates import EllipsoidGate, Gate, PolygonGate, RectangleGate

__all__ = ["GATE_TYPES", "gate_from_element"]

#: FlowJo gate elements this module converts.
GATE_TYPES = ("RectangleGate", "PolygonGate", "EllipsoidGate")
# A bound this close to a display end (in display-grid positions) is on that end.
_EDGE = 1e-6


def _dimension_names(el: Element, path: Path) -> list[tuple[str, Element]]:
    out = []
    for d in children(el, "dimension"):
        fd = child(d, "fcs-dimension")
        if fd is None or not fd.get("name"):
            other = next((c.tag for c in d), "nothing")
            raise GatingError(
                f"{where(path, d)}: a gate dimension holds <{other}>; only FCS parameters "
                "(<fcs-dimension name=...>) are supported"
            )
        out.append((fd.get("name"), d))
    if not out:
        raise GatingError(f"{where(path, el)}: gate has no <dimension>")
    return out


def _coordinates(vertex: Element, n: int, path: Path) -> list[float]:
    coords = [number(c, "value", path) for c in children(vertex, "coordinate")]
    if len(coords) != n:
        raise GatingError(
            f"{where(path, vertex)}: vertex has {len(coords)} coordinates for {n} dimensions"
        )
    return coords


def _on_edge(value: float, end: float, ax: Axis) -> bool:
    return abs(value - end) * abs(ax.display_scale) <= _EDGE


def _rectangle(el, axes, path, label, **ids) -> Gate:
    dims, lo, hi = [], [], []
    for name, d in _dimension_names(el, path):
        ax = axes.axis(name, label)
        dims.append(ax.dimension)
        bounds = []
        for attr in ("min", "max"):
            if d.get(attr) is None:
                bounds.append(None)
                continue
            v = float(ax.to_gate([number(d, attr, path)])[0])
            if math.isnan(v):
                raise GatingError(
                    f"{where(path, d)}: {attr}={d.get(attr)} is outside the domain of the "
                    f"{ax.dimension.label} transform"
                )
            if (attr == "min" and (v <= ax.low or _on_edge(v, ax.low, ax))) or (
                attr == "max" and (v >= ax.high or _on_edge(v, ax.high, ax))
            ):
                v = None
            bounds.append(v)
        lo.append(bounds[0])
        hi.append(bounds[1])
    if all(a is None and b is None for a, b in zip(lo, hi, strict=True)):
        # Every side is beyond the display: FlowJo keeps every event.
        lo[0] = -math.inf
    return RectangleGate(dims=tuple(dims), min=tuple(lo), max=tuple(hi), **ids)


def _polygon(el, axes, path, label, **ids) -> Gate:
    names = _dimension_names(el, path)
    if len(names) != 2:
        raise GatingError(f"{where(path, el)}: a polygon needs 2 dimensions, got {len(names)}")
    ax = [axes.axis(n, label) for n, _ in names]
    raw = np.array([_coordinates(v, 2, path) for v in children(el, "vertex")], dtype=np.float64)
    if raw.shape[0] < 3:
        raise GatingError(f"{where(path, el)}: a polygon needs 3 or more vertices")
    verts = np.column_stack([ax[0].to_gate(raw[:, 0]), ax[1].to_gate(raw[:, 1])])
    if not np.all(np.isfinite(verts)):
        raise GatingError(
            f"{where(path, el)}: a vertex is outside the domain of the "
            f"{ax[0].dimension.label} or {ax[1].dimension.label} transform"
        )
    return PolygonGate(dims=(ax[0].dimension, ax[1].dimension), vertices=verts, **ids)


def ellipse_in_display(foci: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and covariance (display positions) of a FlowJo ellipse.

    Parameters
    ----------
    foci : ndarray, shape (2, 2)
    edges : ndarray, shape (4, 2)
        Ends of the major axis, then of the minor axis.

    Returns
    -------
    mean : ndarray, shape (2,)
    covariance : ndarray, shape (2, 2)
        The ellipse is ``(p − mean)ᵀ covariance⁻¹ (p − mean) <= 1``.
    """
    centre = foci.mean(axis=0)
    half = (foci[1] - foci[0]) / 2.0
    c = float(np.hypot(*half))
    major = edges[:2] if _spread(edges[:2]) >= _spread(edges[2:]) else edges[2:]
    a = float(np.mean(np.hypot(*(major - centre).T)))
    if c > 0:
        u = half / c
    else:
        d = major[1] - major[0]
        u = d / np.hypot(*d)
    b2 = a * a - c * c
    if not (a > 0 and b2 > 0):
        raise ValueError(f"edge points at {a:g} from the centre do not enclose foci {c:g} apart")
    v = np.array([-u[1], u[0]])
    cov = a * a * np.outer(u, u) + b2 * np.outer(v, v)
    return centre, cov


def _spread(points: np.ndarray) -> float:
    return float(np.hypot(*(points[1] - points[0])))


def _ellipse(el, axes, path, label, **ids) -> Gate:
    names = _dimension_names(el, path)
    if len(names) != 2:
        raise GatingError(f"{where(path, el)}: an ellipse needs 2 dimensions, got {len(names)}")
    ax = [axes.axis(n, label) for n, _ in names]
    foci_el, edge_el = child(el, "foci"), child(el, "edge")
    if foci_el is None or edge_el is None:
        raise GatingError(f"{where(path, el)}: a FlowJo ellipse needs <foci> and <edge>")
    foci = np.array([_coordinates(v, 2, path) for v in children(foci_el, "vertex")])
    edges = np.array([_coordinates(v, 2, path) for v in children(edge_el, "vertex")])
    if foci.shape != (2, 2) or edges.shape != (4, 2):
        raise GatingError(
            f"{where(path, el)}: a FlowJo ellipse needs 2 foci and 4 edge points, got "
            f"{len(foci)} and {len(edges)}"
        )
    try:
        centre, cov = ellipse_in_display(foci, edges)
    except ValueError as exc:
        raise GatingError(f"{where(path, el)}: {exc}") from None
    scale = np.array([a.display_scale for a in ax])
    offset = np.array([a.display_offset for a in ax])
    mean = (centre - offset) / scale
    cov = cov / np.outer(scale, scale)
    return EllipsoidGate(
        dims=(ax[0].dimension, ax[1].dimension),
        mean=tuple(mean),
        covariance=tuple(map(tuple, cov)),
        distance_square=1.0,
        **ids,
    )


_MAKERS = {"RectangleGate": _rectangle, "PolygonGate": _polygon, "EllipsoidGate": _ellipse}


def gate_from_element(
    el: Element, axes: AxisMaker, path: Path, label: str, *, id: str, parent, name: str
) -> Gate:
    """The cytokit gate of one FlowJo gate element (the child of ``<Gate>``).

    Parameters
    ----------
    el : Element
        ``RectangleGate``, ``PolygonGate`` or ``EllipsoidGate``.
    axes : AxisMaker
        The sample's (or group's) transforms and compensation.
    path : Path
        The workspace, for messages.
    label : str
        Who the gate belongs to and its population path, for messages.
    id, parent, name : str
        Of the gate to make.

    Raises
    ------
    GatingError
        An unsupported element, or geometry or a transform that cannot be
        reproduced; the message names the element and its line.
    """
    maker = _MAKERS.get(el.tag)
    if maker is None:
        raise GatingError(
            f"{where(path, el)}: {label}: FlowJo gate type {el.tag!r} is not supported; "
            f"supported: {', '.join(GATE_TYPES)} and And/Or/Not nodes"
        )
    if el.get("eventsInside", "1") not in ("1", "true"):
        raise GatingError(
            f"{where(path, el)}: {label}: gates that keep the events outside "
            "(eventsInside=0) are not supported; make a NOT gate of the shape in FlowJo"
        )
    try:
        return maker(el, axes, path, label, id=id, parent=parent, name=name)
    except GatingError as exc:
        msg = str(exc)
        if Path(path).name not in msg:
            msg = f"{where(path, el)}: {label}: {msg}"
        raise GatingError(msg) from None
