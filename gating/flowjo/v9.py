"""FlowJo 9 XML workspaces (``<Workspace version="2.0" flowJoVersion="9.x">``).

FlowJo 9 nests ``Population`` elements directly (no ``Subpopulations``); each
holds a ``PolygonGate`` whose shape is a ``Polygon``, ``PolyRect``
(rectangle), ``Range`` (1-D interval on the x axis) or ``Ellipse``, with
vertices as data values on axes named in ``xAxisName``/``yAxisName``
(``<FITC-A>`` is FITC-A compensated with the sample's matrix, whose prefix and
suffix are ``<`` and ``>``). Matrices are ``CompensationMatrix`` elements
(row = fluorochrome, named by its detector), chosen per sample by
``compensationID`` (1-based).

FlowJo 9 gates on display channels 0…4096. A logarithmic parameter's channels
come from a calibration table (``CalibrationTables/Table``: the data value of
every channel, linearly interpolated in between); a compensated parameter uses
the table named ``"<matrix name> <parameter>"``. The tables are FlowJo 9's
own, not FlowJo 10's biex, so they are used as they are: a polygon is straight
in channels, so in data values it is straight inside every table cell, and the
polygon is rebuilt in data values with a vertex wherever an edge crosses a
whole channel, which reproduces FlowJo's polygon exactly. An ellipse (its
four stored points are read as the ends of two conjugate diameters, in
channels) becomes a 720-gon in channels (within 1e-5 of its radius) and then
the same. Rectangles and ranges are exact (the tables are monotone); sides on
or beyond the end of the channel range are left open, since FlowJo piles
off-scale events there.

Not reproduced: gates marked ``magnetic`` are moved by FlowJo to each sample's
data, and only their stored position is known (reported in
`Workspace.unsupported`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.flowjo.axes import FlowJoMatrix, FlowJoTransform
from cytokit.gating.flowjo.tree import Issue, Node, build_tree, count_of, walk
from cytokit.gating.flowjo.workspace import Workspace, WorkspaceGroup, WorkspaceSample
from cytokit.gating.flowjo.xml import Element, child, children, number, where
from cytokit.gating.gates import (
    UNCOMPENSATED,
    Dimension,
    Gate,
    PolygonGate,
    RectangleGate,
    SpectrumMatrix,
)
from cytokit.gating.transforms import LogTransform

__all__ = ["read_v9"]

#: Channels of FlowJo 9's calibration tables (the tables have one more entry).
CHANNELS = 4096
#: Vertices of the polygon an ellipse becomes (in channels).
ELLIPSE_VERTICES = 720
# Data value standing for "beyond the end of the display" on a clamped vertex.
_FAR = 1e12
_SHAPES = ("Polygon", "PolyRect", "Range", "Ellipse")


@dataclass(frozen=True)
class _Axis:
    """A FlowJo 9 axis: data ↔ gate values ↔ display channels."""

    dimension: Dimension
    table: np.ndarray | None  # data value of each channel 0…len-1, or None
    low: float = 0.0
    high: float = 1.0
    channels: float = CHANNELS

    def to_gate(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        xf = self.dimension.transform
        return v if xf is None else np.asarray(xf.apply(v), dtype=np.float64)

    def channel(self, v) -> np.ndarray:
        """Display channel of data values (clamped to the display)."""
        v = np.asarray(v, dtype=np.float64)
        if self.table is not None:
            return np.interp(v, self.table, np.arange(self.table.size, dtype=np.float64))
        if self.dimension.transform is not None:
            return np.clip(self.to_gate(v) * self.channels, 0.0, self.channels)
        return np.clip((v - self.low) / (self.high - self.low) * self.channels, 0.0, self.channels)

    def gate_of_channel(self, c) -> np.ndarray:
        """Gate values of display channels; the display's ends stand for everything beyond."""
        c = np.asarray(c, dtype=np.float64)
        if self.table is not None:
            g = np.interp(c, np.arange(self.table.size, dtype=np.float64), self.table)
        elif self.dimension.transform is not None:
            g = c / self.channels
        else:
            g = self.low + c / self.channels * (self.high - self.low)
        g = np.where(c <= 0.0, -_FAR, g)
        return np.where(c >= self.channels, _FAR, g)

    @property
    def kinked(self) -> bool:
        """Whether channels map to gate values piecewise (calibration table)."""
        return self.table is not None


class _Axes:
    """Axes of one FlowJo 9 sample: its parameters, tables and matrix."""

    def __init__(self, params, tables, matrix: FlowJoMatrix | None, path: Path) -> None:
        self.params = params
        self.tables = tables
        self.matrix = matrix
        self.path = path
        self.matrices: dict[str, SpectrumMatrix] = {}

    def axis(self, name: str, label: str) -> _Axis:
        m = self.matrix
        det = m.detector(name) if m is not None else None
        channel, comp = (det, m.name) if det is not None else (name, UNCOMPENSATED)
        if det is not None:
            if m.problem:
                raise GatingError(f"gate {label}: {m.problem}")
            self.matrices[m.name] = m.matrix
        p = self.params.get(channel)
        table = self.tables.get(f"{m.name} {name}") if det is not None else None
        if table is None and p is not None and p.get("calibrationIndex"):
            table = self.tables.get(int(p.get("calibrationIndex")))
        if table is not None:
            return _Axis(Dimension(channel, comp), table)
        if p is None:
            return _Axis(Dimension(channel, comp), None, 0.0, 262144.0)
        low = number(p, "lowValue", self.path, 0.0)
        high = number(p, "highValue", self.path, 262144.0)
        rng = number(p, "range", self.path, float(CHANNELS))
        if p.get("log") == "1":
            decades = number(p, "decades", self.path)
            if low <= 0 or decades <= 0:
                raise GatingError(
                    f"{where(self.path, p)}: logarithmic parameter {channel!r} without a "
                    "calibration table needs lowValue > 0 and decades > 0"
                )
            xf = LogTransform(T=high, M=decades)
            return _Axis(Dimension(channel, comp, xf), None, 0.0, 1.0, rng)
        # Linear: FlowJo 9's channel is value × gain (its lowValue/highValue are not
        # always the display range).
        gain = number(p, "gain", self.path, 0.0)
        if gain > 0:
            low, high = 0.0, rng / gain
        return _Axis(Dimension(channel, comp), None, low, high, rng)


def _vertices(shape: Element, path: Path) -> np.ndarray:
    poly = child(shape, "Polygon")
    verts = children(poly, "Vertex") if poly is not None else []
    return np.array(
        [[number(v, "x", path), number(v, "y", path, 0.0)] for v in verts], dtype=np.float64
    ).reshape(-1, 2)


def _densify(chan: np.ndarray, axes: list[_Axis]) -> np.ndarray:
    """Polygon in channels → gate values, with a vertex wherever an edge crosses a table node."""
    pieces = []
    n = len(chan)
    for i in range(n):
        p, q = chan[i], chan[(i + 1) % n]
        ts = [0.0]
        for d, ax in enumerate(axes):
            a, b = p[d], q[d]
            if ax.kinked and a != b:
                nodes = np.arange(math.floor(min(a, b)) + 1, math.ceil(max(a, b)))
                ts.extend(((nodes - a) / (b - a)).tolist())
        t = np.unique(np.clip(ts, 0.0, 1.0))
        t = t[t < 1.0]
        pieces.append(p + t[:, None] * (q - p))
    pts = np.vstack(pieces)
    out = np.column_stack([axes[d].gate_of_channel(pts[:, d]) for d in range(2)])
    keep = np.ones(len(out), dtype=bool)
    keep[1:] = np.any(out[1:] != out[:-1], axis=1)
    return out[keep]


def _bound(ax: _Axis, value: float, is_max: bool) -> float | None:
    c = float(ax.channel([value])[0])
    if (is_max and c >= ax.channels) or (not is_max and c <= 0.0):
        return None
    return float(ax.to_gate([value])[0])


def convert_v9(shape: Element, axes: _Axes, path: Path, label: str, **ids) -> Gate:
    """The cytokit gate of a FlowJo 9 gate shape (see the module docstring)."""
    if shape.tag not in _SHAPES:
        raise GatingError(
            f"{where(path, shape)}: {label}: FlowJo 9 gate shape {shape.tag!r} is not "
            f"supported; supported: {', '.join(_SHAPES)}"
        )
    try:
        verts = _vertices(shape, path)
        x = axes.axis(shape.get("xAxisName", ""), label)
        if shape.tag == "Range":
            lo, hi = _bound(x, verts[:, 0].min(), False), _bound(x, verts[:, 0].max(), True)
            if lo is None and hi is None:
                lo = -math.inf
            return RectangleGate(dims=(x.dimension,), min=(lo,), max=(hi,), **ids)
        y = axes.axis(shape.get("yAxisName", ""), label)
        if shape.tag == "PolyRect":
            lo = [_bound(a, verts[:, d].min(), False) for d, a in enumerate((x, y))]
            hi = [_bound(a, verts[:, d].max(), True) for d, a in enumerate((x, y))]
            if all(v is None for v in lo + hi):
                lo[0] = -math.inf
            return RectangleGate(dims=(x.dimension, y.dimension), min=lo, max=hi, **ids)
        chan = np.column_stack([x.channel(verts[:, 0]), y.channel(verts[:, 1])])
        if shape.tag == "Ellipse":
            if len(chan) != 4:
                raise GatingError(f"an ellipse needs 4 points, got {len(chan)}")
            centre = chan.mean(axis=0)
            u, v = (chan[0] - chan[1]) / 2.0, (chan[3] - chan[2]) / 2.0
            t = np.linspace(0.0, 2.0 * math.pi, ELLIPSE_VERTICES, endpoint=False)
            chan = centre + np.outer(np.cos(t), u) + np.outer(np.sin(t), v)
        if len(chan) < 3:
            raise GatingError(f"a polygon needs 3 or more vertices, got {len(chan)}")
        verts = _densify(chan, [x, y])
        return PolygonGate(dims=(x.dimension, y.dimension), vertices=verts, **ids)
    except GatingError as exc:
        msg = str(exc)
        if Path(path).name not in msg:
            msg = f"{where(path, shape)}: {label}: {msg}"
        raise GatingError(msg) from None


# -- reading ------------------------------------------------------------------------------


def _node(pop: Element) -> Node:
    pg = child(pop, "PolygonGate")
    shape = next((c for c in pg if c.tag in _SHAPES), None) if pg is not None else None
    if shape is None and pg is not None:
        shape = next((c for c in pg if c.tag not in ("ParameterNames", "Graph")), None)
    return Node(
        name=pop.get("name", ""),
        kind="Population",
        element=pop,
        gate=shape,
        dependents=(),
        count=count_of(pop),
        owning_group=pop.get("owningGroup", ""),
    )


def _populations(el: Element) -> list[Element]:
    return children(el, "Population")


def _nodes(el: Element, path: Path) -> list[Node]:
    return build_tree(_populations(el), _populations, _node, path)


def _matrix(el: Element, path: Path) -> FlowJoMatrix:
    name = el.get("name", "matrix")
    rows = children(el, "Channel")
    dets = [r.get("name", "") for r in rows]
    m = np.zeros((len(dets), len(dets)))
    problem = ""
    order = {d: i for i, d in enumerate(dets)}
    for i, r in enumerate(rows):
        for cv in children(r, "ChannelValue"):
            j = order.get(cv.get("name", ""))
            if j is None:
                problem = (
                    f"{where(path, cv)}: {cv.get('name')!r} is not a channel of matrix {name!r}"
                )
                continue
            m[i, j] = number(cv, "value", path)
    matrix = None
    if not problem:
        try:
            matrix = SpectrumMatrix(name, tuple(dets), tuple(dets), m)
        except GatingError as exc:
            problem = str(exc)
    return FlowJoMatrix(
        id=name,
        name=name,
        prefix=el.get("prefix", "<"),
        suffix=el.get("suffix", ">"),
        detectors=tuple(dets),
        matrix=matrix,
        line=el.line,
        problem=problem,
    )


def _tables(root: Element, path: Path) -> dict:
    out: dict = {}
    tabs = child(root, "CalibrationTables")
    for i, t in enumerate(children(tabs, "Table") if tabs is not None else [], start=1):
        try:
            v = np.array(
                [float(x) for x in (t.text or "").replace("\n", "").split(",") if x.strip()]
            )
        except ValueError:
            raise GatingError(f"{where(path, t)}: calibration table holds a non-number") from None
        values = v[1::2]
        if values.size < 2 or np.any(np.diff(values) <= 0):
            raise GatingError(
                f"{where(path, t)}: calibration table {t.get('name')!r} is not increasing"
            )
        out[i] = out[t.get("name", "")] = values
    return out


def read_v9(root: Element, path: Path) -> Workspace:
    """A `Workspace` from a FlowJo 9 document."""
    tables = _tables(root, path)
    mats = child(root, "CompensationMatrices")
    matrices = [_matrix(m, path) for m in children(mats, "CompensationMatrix")] if mats else []
    groups = []
    gs = child(root, "Groups")
    for gn in children(gs, "GroupNode") if gs is not None else []:
        g = child(gn, "Group")
        sr = child(g, "SampleRefs") if g is not None else None
        refs = tuple(r.get("sampleID", "") for r in children(sr, "SampleRef")) if sr else ()
        groups.append(WorkspaceGroup(gn.get("name", ""), refs, gn.line, _nodes(gn, path)))
    samples, axes, notes = [], {}, []
    sl = child(root, "SampleList")
    for s in children(sl, "Sample") if sl is not None else []:
        node = child(s, "SampleNode")
        if node is None:
            raise GatingError(f"{where(path, s)}: sample without a <SampleNode>")
        sid = s.get("sampleID") or node.get("sampleID", "")
        kw = child(s, "Keywords")
        keywords = (
            {k.get("name", ""): k.get("value", "").strip() for k in children(kw, "Keyword")}
            if kw is not None
            else {}
        )
        params = {p.get("name", ""): p for p in children(s, "Parameter")}
        comp = s.get("compensationID", "0")
        matrix = None
        if comp.isdigit() and 0 < int(comp) <= len(matrices):
            matrix = matrices[int(comp) - 1]
        elif comp not in ("", "0", "-1"):
            notes.append(
                Issue(
                    f"sample {node.get('name')!r}",
                    "",
                    "Sample",
                    s.line,
                    f"compensationID={comp} names no matrix; no compensation used",
                )
            )
        transforms = {}
        for name, p in params.items():
            idx = p.get("calibrationIndex")
            kind = "table" if idx else ("log" if p.get("log") == "1" else "linear")
            vals = {
                k: float(p.get(k))
                for k in ("lowValue", "highValue", "decades", "range", "gain", "calibrationIndex")
                if p.get(k)
            }
            transforms[name] = FlowJoTransform(name, kind, vals, None, CHANNELS, p.line)
        nodes = _nodes(node, path)
        sample = WorkspaceSample(
            id=sid,
            name=node.get("name", ""),
            uri="",
            keywords=keywords,
            count=count_of(node),
            transforms=transforms,
            compensation=matrix,
            groups=tuple(g.name for g in groups if sid in g.sample_ids),
            line=s.line,
            nodes=nodes,
        )
        samples.append(sample)
        axes[sid] = _Axes(params, tables, matrix, path)
        notes += _magnetic(nodes, f"sample {sample.name!r}")
    for g in groups:
        notes += _magnetic(g.nodes, f"group {g.name!r}")

    def make_axes(sample):
        if sample is None:
            return _Axes({}, tables, None, path)
        return axes[sample.id]

    return Workspace(
        path,
        root.get("flowJoVersion", ""),
        samples,
        groups,
        notes,
        axes=make_axes,
        convert=convert_v9,
    )


def _magnetic(nodes: list[Node], owner: str) -> list[Issue]:
    out = []
    for n, p, _ in walk(nodes):
        pg = child(n.element, "PolygonGate")
        if pg is not None and pg.get("magnetic") == "1":
            out.append(
                Issue(
                    owner,
                    p,
                    "PolygonGate",
                    pg.line,
                    "a magnetic gate: FlowJo moved it to each sample's data; its stored "
                    "position is used",
                )
            )
    return out
