"""FlowJo 10 workspace export: each sample with its own static gates, as a ``.wsp``.

`write_workspace` writes one workspace for many gated samples. Each sample
(`WorkspaceEntry`) brings the `GatingResult` of a static strategy on it
(``strategy.apply(sample)`` or ``study.gate(sample)``: adaptive gates are
already placed on that sample's data) and the link to its FCS file. The
document is what FlowJo 10 writes and reads (``<Workspace version="20.0">``;
the element names are those of FlowJo's own workspaces, as
`cytokit.gating.flowjo.read` reads them):

* ``<Groups>``: ``All Samples`` and one ``<GroupNode>`` per group the entries
  name (a patient, a tube), holding sample references only: every sample
  carries its own gates.
* per ``<Sample>``: ``<DataSet uri>`` (the link given, e.g. a path relative to
  the workspace), the compensation matrix (``<transforms:spilloverMatrix>``,
  prefix ``Comp-``; named ``Acquisition-defined`` when it is the file's own
  spillover keyword), one display transform per channel the gates read
  (``linear``, ``logicle``, ``hyperlog``, ``fasinh``, ``log``, ``biex``; a
  Gating-ML ``flin`` is FlowJo's linear display of the data), the file's
  keywords, and the ``<SampleNode>`` tree with cytokit's counts as the
  populations' ``count``.
* gates as FlowJo stores them: rectangle bounds and polygon vertices as data
  values (the inverse of the channel's transform), ellipses as two foci and
  four edge points on the 256-position display grid; a quadrant gate is one
  rectangle population per quadrant (FlowJo's own form); Boolean gates are
  ``AndNode``/``OrNode``/``NotNode`` whose ``Dependent`` names are population
  paths from the root.

Faithful to the sample, not to infinity: a polygon vertex far outside the
sample's data (an adaptive half-plane is a polygon reaching far beyond it) is
drawn in to just beyond the data by clipping the polygon to a box around every
event, which keeps exactly the same events and gives FlowJo values it can
place on its axes. A rectangle side FlowJo would take as the end of its axis
(FlowJo piles off-scale events there, inside the gate) is reported in
`WorkspaceWriteNotes` when events of the sample lie beyond it.

What FlowJo cannot hold raises `GatingError` naming the sample and gate:
adaptive gates (fit them first), ratio dimensions, ellipsoids in more than two
dimensions, Boolean operands used as their complement, two compensation
matrices in one sample, one channel displayed through two different
transforms, population names with ``/``.
"""

from __future__ import annotations

import math
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cytokit._io import atomic_write_bytes
from cytokit._outdir import write_refusal
from cytokit.errors import GatingError
from cytokit.gating.compile import Resolver
from cytokit.gating.flowjo.axes import ACQUISITION_DEFINED, BIEX_CHANNELS, DEFAULT_LENGTH
from cytokit.gating.flowjo.tree import name_problem
from cytokit.gating.gates import (
    FCS,
    AdaptiveGate,
    BooleanGate,
    Dimension,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from cytokit.gating.result import GatingResult
from cytokit.gating.transforms import (
    AsinhTransform,
    BiexTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    Transform,
)
from cytokit.kernels import geometry
from cytokit.sample import Spillover

__all__ = [
    "COMP_PREFIX",
    "WorkspaceEntry",
    "WorkspaceWriteNotes",
    "workspace_bytes",
    "write_workspace",
]

#: What FlowJo puts before a detector name for its compensated parameter.
COMP_PREFIX = "Comp-"
_NS = {
    "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "xmlns:gating": "http://www.isac-net.org/std/Gating-ML/v2.0/gating",
    "xmlns:transforms": "http://www.isac-net.org/std/Gating-ML/v2.0/transformations",
    "xmlns:data-type": "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes",
}
# A name FlowJo would read as a path step, or XML cannot hold.
_XML_BAD = {c for c in range(32) if c not in (9, 10, 13)}


@dataclass(frozen=True)
class WorkspaceEntry:
    """One sample of the workspace to write.

    Attributes
    ----------
    result : GatingResult
        A static strategy applied to the sample (``strategy.apply(sample)``,
        ``study.gate(sample)``): its strategy, sample (keywords, channels and the
        events the gates are fitted on), compensation and counts are written.
    name : str
        The sample's name in FlowJo (unique in the workspace; FlowJo uses the
        file name).
    uri : str
        The ``<DataSet uri>``: where FlowJo finds the file (a path relative to
        the workspace, ``/``-separated and URL-quoted, or a ``file:`` URI).
    groups : tuple of str
        Groups the sample belongs to besides ``All Samples``.
    """

    result: GatingResult
    name: str
    uri: str
    groups: tuple[str, ...] = ()


@dataclass
class WorkspaceWriteNotes:
    """What the written workspace may show differently from cytokit, by sample."""

    notes: list[str] = field(default_factory=list)


def write_workspace(
    path: str | Path, entries: Iterable[WorkspaceEntry], *, notes: WorkspaceWriteNotes | None = None
) -> Path:
    """Write a FlowJo 10 workspace of `entries`, atomically.

    Parameters
    ----------
    path : path
        The ``.wsp`` file (replaced whole or not at all).
    entries : iterable of WorkspaceEntry
    notes : WorkspaceWriteNotes, optional
        Receives what FlowJo may count differently (see the module docstring).

    Returns
    -------
    Path

    Raises
    ------
    GatingError
        Something FlowJo cannot hold (the message names the sample and gate),
        two entries with one name, or the file cannot be written. Nothing is
        written then.
    """
    data = workspace_bytes(entries, notes=notes)
    try:
        return atomic_write_bytes(path, data)
    except OSError as exc:
        raise GatingError(write_refusal(path, exc, "the workspace")) from None


def workspace_bytes(
    entries: Iterable[WorkspaceEntry], *, notes: WorkspaceWriteNotes | None = None
) -> bytes:
    """The workspace document of `entries` (see `write_workspace`)."""
    entries = list(entries)
    notes = notes if notes is not None else WorkspaceWriteNotes()
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise GatingError(f"workspace samples must have unique names; repeated: {dup}")
    root = ET.Element("Workspace", {"version": "20.0", "flowJoVersion": "10.6.2", **_NS})
    ET.SubElement(root, "Matrices")
    groups_el = ET.SubElement(root, "Groups")
    order = ["All Samples"]
    for e in entries:
        order += [g for g in e.groups if g not in order]
    ids = {e.name: str(i + 1) for i, e in enumerate(entries)}
    for g in order:
        members = [e for e in entries if g == "All Samples" or g in e.groups]
        node = ET.SubElement(groups_el, "GroupNode", {"name": g, "owningGroup": g, "count": "-1"})
        grp = ET.SubElement(node, "Group", {"name": g})
        refs = ET.SubElement(grp, "SampleRefs")
        for e in members:
            ET.SubElement(refs, "SampleRef", {"sampleID": ids[e.name]})
    samples = ET.SubElement(root, "SampleList")
    for e in entries:
        _SampleWriter(e, ids[e.name], notes).write(samples)
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _num(x: float) -> str:
    return repr(float(x))


def _clean(text: str) -> str:
    return "".join(c for c in str(text) if ord(c) not in _XML_BAD)


@dataclass(frozen=True)
class _Axis:
    """How one gate dimension is written: FlowJo's parameter and the value maps."""

    parameter: str  # FlowJo's parameter name (Comp-<detector> when compensated)
    detector: str  # $PnN of the channel
    transform: Transform | None  # None: FlowJo linear (data values)
    time_scale: float  # cytokit value = FlowJo value × time_scale (the time channel)

    @property
    def linear(self) -> bool:
        return self.transform is None or isinstance(self.transform, LinearTransform)

    def to_flowjo(self, v) -> np.ndarray:
        """FlowJo data values of gate values `v`."""
        v = np.asarray(v, dtype=np.float64)
        if self.transform is not None:
            v = np.asarray(self.transform.inverse(v), dtype=np.float64)
        return v / self.time_scale

    def display_range(self) -> tuple[float, float]:
        if isinstance(self.transform, BiexTransform):
            return 0.0, BIEX_CHANNELS
        return 0.0, 1.0


class _SampleWriter:
    def __init__(self, entry: WorkspaceEntry, sid: str, notes: WorkspaceWriteNotes) -> None:
        r = entry.result
        self.e = entry
        self.sid = sid
        self.notes = notes
        self.strategy = r.strategy
        self.sample = r.sample
        self.spill: Spillover | None = r.compensation
        self.resolver = Resolver(
            self.sample.channels, self.spill, self.strategy.matrices, self.sample.name
        )
        self.where = f"sample {entry.name!r}"
        for g in self.strategy.gates:
            if isinstance(g, AdaptiveGate):
                raise GatingError(
                    f"{self.where}: gate {g.id!r} is adaptive ({type(g).__name__}); FlowJo "
                    "holds placed gates only: export the result of applying the strategy"
                )
        self.matrix: tuple[str, tuple[str, ...], np.ndarray] | None = None
        self.axes: dict[Dimension, _Axis] = {}
        self.transforms: dict[str, tuple[Transform | None, str]] = {}  # detector -> (xf, gate)
        self.linear_max: dict[str, float] = {}
        self._data: dict[Dimension, tuple[float, float]] = {}
        for g in self.strategy.gates:
            for d in g.dimensions:
                self.axis(d, g.id)
        for d, ax in self.axes.items():
            if ax.linear:
                top = float(ax.to_flowjo([self.data_range(d)[1]])[0])
                self.linear_max[ax.detector] = max(
                    self.linear_max.get(ax.detector, 0.0), _linear_max(self.sample, ax, top)
                )
        self.counts = {p.path: int(r.count(p.id)) for p in self.strategy.populations}

    # -- channels, compensation, transforms -----------------------------------------------
    def axis(self, d: Dimension, gate: str) -> _Axis:
        hit = self.axes.get(d)
        if hit is not None:
            return hit
        if d.ratio is not None:
            raise GatingError(
                f"{self.where}: gate {gate!r} reads a ratio of two channels; FlowJo keeps ratios "
                "as derived parameters, which a workspace cannot define"
            )
        comp = self.resolver.matrix(d.compensation, gate)
        col = self.resolver.dimension(d, gate).column
        detector = self.sample.channels[col].name
        parameter = detector
        if comp >= 0:
            _, cols, _ = self.resolver.matrices[comp]
            if col in set(cols.tolist()):
                self._use_matrix(d.compensation, gate)
                parameter = COMP_PREFIX + detector
        xf = d.transform
        kind = None if xf is None or isinstance(xf, LinearTransform) else xf
        seen = self.transforms.setdefault(detector, (kind, gate))
        if seen[0] != kind:
            raise GatingError(
                f"{self.where}: channel {detector!r} is read through "
                f"{_label(seen[0])} by gate {seen[1]!r} and through {_label(kind)} by gate "
                f"{gate!r}; FlowJo displays a channel through one transform per sample"
            )
        if xf is not None and not isinstance(xf, _FLOWJO_TRANSFORMS):
            raise GatingError(
                f"{self.where}: gate {gate!r} uses a {xf.kind} transform, which FlowJo has not"
            )
        ax = _Axis(parameter, detector, xf, _time_scale(self.sample, col))
        self.axes[d] = ax
        return ax

    def _use_matrix(self, ref: str, gate: str) -> None:
        if ref == FCS:
            s = self.spill
            own = s is self.sample.spillover
            name = ACQUISITION_DEFINED if own else (Path(s.source).stem if s.source else "cytokit")
            chans = tuple(
                self.sample.channels[self.resolver.column(c, gate)].name for c in s.channels
            )
            key = (name, chans, np.asarray(s.matrix, dtype=np.float64))
        else:
            m = self.strategy.matrices[ref]
            chans = tuple(
                self.sample.channels[self.resolver.column(c, gate)].name for c in m.detectors
            )
            key = (ref, chans, np.asarray(m.matrix, dtype=np.float64))
        if self.matrix is None:
            self.matrix = key
        elif self.matrix[0] != key[0] or not np.array_equal(self.matrix[2], key[2]):
            raise GatingError(
                f"{self.where}: gate {gate!r} is compensated with {key[0]!r} and another gate "
                f"with {self.matrix[0]!r}; FlowJo holds one compensation matrix per sample"
            )

    def data_range(self, d: Dimension) -> tuple[float, float]:
        """Finite min and max of the sample's values on `d` (gate values)."""
        hit = self._data.get(d)
        if hit is None:
            v = self.strategy.values(self.sample, [d], compensation=self.spill)[:, 0]
            v = v[np.isfinite(v)]
            hit = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
            self._data[d] = hit
        return hit

    # -- the document -----------------------------------------------------------------
    def write(self, parent: ET.Element) -> None:
        s = ET.SubElement(parent, "Sample")
        ET.SubElement(s, "DataSet", {"uri": self.e.uri, "sampleID": self.sid})
        nodes = self._tree()
        if self.matrix is not None:
            self._write_matrix(s)
        xforms = ET.SubElement(s, "Transformations")
        for detector, (xf, _) in self.transforms.items():
            self._write_transform(xforms, detector, xf)
        kws = ET.SubElement(s, "Keywords")
        for k, v in self.sample.keywords.items():
            ET.SubElement(kws, "Keyword", {"name": _clean(k), "value": _clean(v)})
        node = ET.SubElement(
            s,
            "SampleNode",
            {
                "name": self.e.name,
                "annotation": "",
                "owningGroup": "",
                "count": str(self.sample.n_events),
                "sampleID": self.sid,
            },
        )
        sub = ET.SubElement(node, "Subpopulations")
        for el in nodes:
            sub.append(el)

    def _write_matrix(self, s: ET.Element) -> None:
        name, chans, m = self.matrix
        el = ET.SubElement(
            s,
            "transforms:spilloverMatrix",
            {
                "prefix": COMP_PREFIX,
                "name": name,
                "editable": "0",
                "transforms:id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{name}:{m.tobytes().hex()}")),
                "suffix": "",
            },
        )
        params = ET.SubElement(el, "data-type:parameters")
        for c in chans:
            ET.SubElement(params, "data-type:parameter", {"data-type:name": c})
        for i, row in enumerate(chans):
            sp = ET.SubElement(el, "transforms:spillover", {"data-type:parameter": row})
            for j, col in enumerate(chans):
                ET.SubElement(
                    sp,
                    "transforms:coefficient",
                    {"data-type:parameter": col, "transforms:value": _num(m[i, j])},
                )

    def _write_transform(self, parent: ET.Element, detector: str, xf) -> None:
        length = str(DEFAULT_LENGTH)
        if xf is None:
            hi = self.linear_max.get(detector, 0.0)
            attrs = {"transforms:minRange": "0", "transforms:maxRange": _num(hi), "gain": "1"}
            tag = "linear"
        elif isinstance(xf, (LogicleTransform, HyperlogTransform)):
            tag = xf.kind
            attrs = {"transforms:length": length}
            attrs |= {f"transforms:{k}": _num(getattr(xf, k)) for k in ("T", "W", "M", "A")}
        elif isinstance(xf, AsinhTransform):
            tag = "fasinh"
            attrs = {"transforms:length": length, "transforms:maxRange": _num(xf.T)}
            attrs |= {f"transforms:{k}": _num(getattr(xf, k)) for k in ("T", "M", "A")}
            attrs["transforms:W"] = "0"
        elif isinstance(xf, LogTransform):
            tag = "log"
            attrs = {
                "transforms:offset": _num(xf.T / 10.0**xf.M),
                "transforms:decades": _num(xf.M),
            }
        else:  # BiexTransform (the only other kind `axis` lets through)
            tag = "biex"
            attrs = {
                "transforms:length": length,
                "transforms:neg": _num(xf.negative),
                "transforms:width": _num(xf.width),
                "transforms:pos": _num(xf.positive),
                "transforms:maxRange": _num(xf.max_value),
            }
        el = ET.SubElement(parent, f"transforms:{tag}", attrs)
        ET.SubElement(el, "data-type:parameter", {"data-type:name": detector})

    # -- gates --------------------------------------------------------------------------
    def _tree(self) -> list[ET.Element]:
        by_parent: dict[str | None, list[tuple[str, str, ET.Element]]] = {}
        elements: dict[str, ET.Element] = {}
        for g in self.strategy.gates:
            for pid, name, el in self._populations(g):
                why = name_problem(name)
                if any(ord(c) in _XML_BAD for c in name):
                    why = f"the name {name!r} holds a control character, which XML cannot hold"
                if why:
                    raise GatingError(f"{self.where}: gate {pid!r}: {why} (FlowJo)")
                elements[pid] = el
                by_parent.setdefault(g.parent, []).append((pid, name, el))
        for parent, kids in by_parent.items():
            if parent is None:
                continue
            if parent not in elements:
                raise GatingError(
                    f"{self.where}: gates {', '.join(k[0] for k in kids)!r} hang from "
                    f"{parent!r}, which is a gate but not a population; FlowJo hangs a "
                    "population from a population (for quadrants: from one quadrant)"
                )
            sub = ET.SubElement(elements[parent], "Subpopulations")
            for _, _, el in kids:
                sub.append(el)
        self._check_rectangles()
        return [el for _, _, el in by_parent.get(None, [])]

    def _node(self, tag: str, pid: str, name: str) -> ET.Element:
        path = self.strategy.by_id(pid).path
        return ET.Element(
            tag,
            {
                "name": name,
                "annotation": "",
                "owningGroup": "",
                "count": str(self.counts[path]),
            },
        )

    def _populations(self, g: Gate) -> list[tuple[str, str, ET.Element]]:
        if isinstance(g, QuadrantGate):
            out = []
            for q in g.quadrants:
                lo, hi, dims = self._quadrant_bounds(g, q)
                pop = self._node("Population", q.id, q.name)
                self._gate(pop, q.id, g.parent, _rectangle_el(self, dims, lo, hi, q.id))
                out.append((q.id, q.name, pop))
            return out
        if isinstance(g, BooleanGate):
            if any(g.complement):
                raise GatingError(
                    f"{self.where}: Boolean gate {g.id!r} uses an operand as its complement; "
                    "FlowJo's And/Or nodes cannot: add a NOT gate of that operand and use it"
                )
            tag = {"and": "AndNode", "or": "OrNode", "not": "NotNode"}[g.op]
            node = self._node(tag, g.id, g.name)
            deps = ET.SubElement(node, "Dependents")
            for op in g.operands:
                path = self.strategy.by_id(op).path
                ET.SubElement(deps, "Dependent", {"name": path.lstrip("/")})
            return [(g.id, g.name, node)]
        pop = self._node("Population", g.id, g.name)
        if isinstance(g, RectangleGate):
            el = _rectangle_el(self, g.dims, g.min, g.max, g.id)
        elif isinstance(g, PolygonGate):
            el = self._polygon(g)
        elif isinstance(g, EllipsoidGate):
            el = self._ellipse(g)
        else:
            raise GatingError(
                f"{self.where}: gate {g.id!r} is a {type(g).__name__}, which FlowJo has not"
            )
        self._gate(pop, g.id, g.parent, el)
        return [(g.id, g.name, pop)]

    def _gate(self, pop: ET.Element, pid: str, parent: str | None, shape: ET.Element) -> None:
        # FlowJo's gate ids link a gate to its parent's gate (none above a Boolean node)
        attrs = {"gating:id": _gate_id(pid)}
        if parent is not None and not isinstance(self.strategy.by_id(parent).gate, BooleanGate):
            attrs["gating:parent_id"] = _gate_id(parent)
        gate = ET.SubElement(pop, "Gate", attrs)
        gate.append(shape)

    def _quadrant_bounds(self, g: QuadrantGate, q):
        by_id = {dv.id: dv for dv in g.dividers}
        bounds: dict[Dimension, list] = {}
        for ref, loc in q.positions:
            dv = by_id[ref]
            k = geometry.quadrant_interval(dv.values, loc)
            lo = dv.values[k - 1] if k > 0 else None
            hi = dv.values[k] if k < len(dv.values) else None
            b = bounds.setdefault(dv.dimension, [None, None])
            if lo is not None:
                b[0] = lo if b[0] is None else max(b[0], lo)
            if hi is not None:
                b[1] = hi if b[1] is None else min(b[1], hi)
        dims = tuple(bounds)
        return (
            tuple(bounds[d][0] for d in dims),
            tuple(bounds[d][1] for d in dims),
            dims,
        )

    def _polygon(self, g: PolygonGate) -> ET.Element:
        verts = np.asarray(g.vertices, dtype=np.float64)
        box = []
        for d in g.dims:
            lo, hi = self.data_range(d)
            m = 0.05 * (hi - lo) + 1e-6 * max(1.0, abs(lo), abs(hi))
            box.append((lo - m, hi + m))
        (x0, x1), (y0, y1) = box
        if (
            (verts[:, 0] < x0).any()
            or (verts[:, 0] > x1).any()
            or ((verts[:, 1] < y0).any() or (verts[:, 1] > y1).any())
        ):
            verts = _clip(verts, x0, x1, y0, y1)
            if len(verts) < 3:
                # the polygon holds none of the sample's events: a small one outside them
                verts = np.array([[x1, y1], [x1 + 1.0, y1], [x1 + 1.0, y1 + 1.0]])
        axes = [self.axes[d] for d in g.dims]
        el = ET.Element("gating:PolygonGate", {"eventsInside": "1", "quadId": "-1"})
        for ax in axes:
            _dimension(el, ax)
        data = np.column_stack([axes[0].to_flowjo(verts[:, 0]), axes[1].to_flowjo(verts[:, 1])])
        if not np.all(np.isfinite(data)):
            raise GatingError(
                f"{self.where}: polygon {g.id!r} has a vertex outside the range of its transform"
            )
        for x, y in data:
            v = ET.SubElement(el, "gating:vertex")
            ET.SubElement(v, "gating:coordinate", {"data-type:value": _num(x)})
            ET.SubElement(v, "gating:coordinate", {"data-type:value": _num(y)})
        return el

    def _ellipse(self, g: EllipsoidGate) -> ET.Element:
        if len(g.dims) != 2:
            raise GatingError(
                f"{self.where}: ellipsoid {g.id!r} has {len(g.dims)} dimensions; FlowJo "
                "ellipses have 2"
            )
        axes = [self.axes[d] for d in g.dims]
        # display position = scale · gate value + offset on each axis (affine by construction)
        scale, offset = [], []
        for d, ax in zip(g.dims, axes, strict=True):
            p0, p1 = self._display(d, ax, np.array([0.0, 1.0]))
            scale.append(p1 - p0)
            offset.append(p0)
        scale, offset = np.array(scale), np.array(offset)
        mean = np.asarray(g.mean) * scale + offset
        cov = np.asarray(g.covariance) * np.outer(scale, scale) * g.distance_square
        w, vecs = np.linalg.eigh(cov)
        a, b = math.sqrt(w[1]), math.sqrt(max(w[0], 0.0))
        u, v = vecs[:, 1], vecs[:, 0]
        c = math.sqrt(max(a * a - b * b, 0.0))
        foci = [mean - c * u, mean + c * u]
        edges = [mean - a * u, mean + a * u, mean - b * v, mean + b * v]
        el = ET.Element("gating:EllipsoidGate", {"eventsInside": "1"})
        for ax in axes:
            _dimension(el, ax)
        for tag, pts in (("gating:foci", foci), ("gating:edge", edges)):
            holder = ET.SubElement(el, tag)
            for p in pts:
                vx = ET.SubElement(holder, "gating:vertex")
                for x in p:
                    ET.SubElement(vx, "gating:coordinate", {"data-type:value": _num(x)})
        return el

    def _display(self, d: Dimension, ax: _Axis, v: np.ndarray) -> np.ndarray:
        """FlowJo display-grid positions of gate values `v` on `d`."""
        if ax.linear:
            top = self.linear_max.get(ax.detector) or 1.0
            return DEFAULT_LENGTH * ax.to_flowjo(v) / top
        lo, hi = ax.display_range()
        return DEFAULT_LENGTH * (np.asarray(v, dtype=np.float64) - lo) / (hi - lo)

    def _check_rectangles(self) -> None:
        """Note each rectangle side FlowJo takes as its axis end while events lie beyond it."""
        for g in self.strategy.gates:
            if isinstance(g, RectangleGate):
                sides = [(g.id, d, lo, hi) for d, lo, hi in zip(g.dims, g.min, g.max, strict=True)]
            elif isinstance(g, QuadrantGate):
                sides = []
                for q in g.quadrants:
                    lo, hi, dims = self._quadrant_bounds(g, q)
                    sides += [(q.id, d, a, b) for d, a, b in zip(dims, lo, hi, strict=True)]
            else:
                continue
            for pid, d, lo, hi in sides:
                ax = self.axes[d]
                dlo, dhi = self.data_range(d)
                if ax.linear:
                    end_lo, end_hi = 0.0, math.inf
                    lo_v = None if lo is None else float(ax.to_flowjo([lo])[0])
                    hi_v = None
                else:
                    end_lo, end_hi = ax.display_range()
                    lo_v, hi_v = lo, hi
                if lo_v is not None and lo_v <= end_lo and dlo < lo:
                    self.notes.notes.append(
                        f"{self.e.name}: gate {pid!r} starts at {lo:g} on {ax.parameter}, at or "
                        "below the start of FlowJo's axis, where FlowJo piles the events below "
                        "it: FlowJo counts those events inside the gate, cytokit does not"
                    )
                if hi_v is not None and hi_v >= end_hi and dhi >= hi:
                    self.notes.notes.append(
                        f"{self.e.name}: gate {pid!r} ends at {hi:g} on {ax.parameter}, at or "
                        "above the end of FlowJo's axis, where FlowJo piles the events above "
                        "it: FlowJo counts those events inside the gate, cytokit does not"
                    )


_FLOWJO_TRANSFORMS = (
    LinearTransform,
    LogicleTransform,
    HyperlogTransform,
    AsinhTransform,
    LogTransform,
    BiexTransform,
)


def _gate_id(pid: str) -> str:
    """A FlowJo-style gate id (``ID`` and digits), the same for a population path every time."""
    return "ID" + str(uuid.uuid5(uuid.NAMESPACE_OID, pid).int % 10**10)


def _label(xf) -> str:
    return (
        "no transform" if xf is None else f"{xf.kind}({', '.join(map(str, xf.params().values()))})"
    )


def _time_scale(sample, col: int) -> float:
    ch = sample.channels[col]
    is_time = (
        ch.name.upper() == "TIME"
        or str(sample.keyword(f"$P{col + 1}TYPE") or "").strip().upper() == "TIME"
    )
    if not is_time:
        return 1.0
    try:
        step = float(sample.keyword("$TIMESTEP") or 1.0)
    except ValueError:
        return 1.0
    return step if step > 0 else 1.0


def _linear_max(sample, ax: _Axis, top: float) -> float:
    """FlowJo's linear display end: the channel's range, or beyond the largest value."""
    col = next(i for i, c in enumerate(sample.channels) if c.name == ax.detector)
    try:
        r = float(sample.keyword(f"$P{col + 1}R") or 0.0)
    except ValueError:
        r = 0.0
    end = max(r, 1.0)
    if top >= end:
        end = float(2.0 ** math.ceil(math.log2(top + 1.0)))
    return end


def _dimension(el: ET.Element, ax: _Axis, **bounds) -> ET.Element:
    d = ET.SubElement(el, "gating:dimension", bounds)
    ET.SubElement(d, "data-type:fcs-dimension", {"data-type:name": ax.parameter})
    return d


def _rectangle_el(w: _SampleWriter, dims: Sequence[Dimension], lo, hi, pid: str) -> ET.Element:
    el = ET.Element("gating:RectangleGate", {"eventsInside": "1"})
    for d, a, b in zip(dims, lo, hi, strict=True):
        ax = w.axes[d]
        bounds = {}
        for key, v in (("gating:min", a), ("gating:max", b)):
            if v is None or not math.isfinite(v):
                continue
            x = float(ax.to_flowjo([v])[0])
            if not math.isfinite(x):
                raise GatingError(
                    f"{w.where}: gate {pid!r}: bound {v:g} is outside the range of the "
                    f"{_label(ax.transform)} transform"
                )
            bounds[key] = _num(x)
        _dimension(el, ax, **bounds)
    return el


def _clip(verts: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """The polygon `verts` clipped to the box (Sutherland–Hodgman; the box is convex)."""
    pts = [tuple(p) for p in verts]
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            break

        def inside(p, axis=axis, bound=bound, keep_above=keep_above):
            return p[axis] >= bound if keep_above else p[axis] <= bound

        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(_cross(prev, cur, axis, bound))
                out.append(cur)
            elif inside(prev):
                out.append(_cross(prev, cur, axis, bound))
        pts = out
    return np.array(pts, dtype=np.float64).reshape(-1, 2)


def _cross(p, q, axis: int, bound: float) -> tuple[float, float]:
    t = (bound - p[axis]) / (q[axis] - p[axis])
    x = p[0] + t * (q[0] - p[0])
    y = p[1] + t * (q[1] - p[1])
    return (bound, y) if axis == 0 else (x, bound)
