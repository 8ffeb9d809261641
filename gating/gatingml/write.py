"""Writing a `GatingStrategy` as a Gating-ML 2.0 document.

The document uses the standard's three namespaces with their usual prefixes
(``gating:``, ``transforms:``, ``data-type:``): named compensation matrices
first (``transforms:spectrumMatrix``), then one ``transforms:transformation``
per distinct transform (deduplicated, with generated ids) and per ratio
dimension (``fratio``, whose id is the dimension's channel name when that id
is free), then the gates in dependency order. Numbers are written with
Python's ``repr``, the shortest text that reads back as the same float64, so a
written strategy reads back equal (`GatingStrategy.digest` and per-event
membership unchanged).

Every id in the document is a valid ``xs:ID`` (ASCII letters, digits,
``._-``, not starting with a digit), unique in the whole document, so schema
validators (FlowKit's, for one) accept it: an id that is not (``CD3+CD56-``,
a divider id used by two quadrant gates) is written as a valid one. What
Gating-ML cannot hold goes into ``data-type:custom_info`` under cytokit's own
namespace, where other readers ignore it: the original ids, population names
that differ from ids, and the strategy's name.

A quadrant gate with two dividers on one dimension (a ``split_by`` quadrant)
is written as one rectangle gate per quadrant, with the quadrant's id, name
and parent: the same events, in a form FlowKit can gate; it reads back as
those rectangles.

Not exportable (raise `GatingError`): adaptive gates (fit them first:
``strategy.fit(sample)`` is the strategy with each placed on that sample) and FlowJo's ``biex`` transform, which Gating-ML 2.0
does not define.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from cytokit._io import atomic_write_bytes
from cytokit.errors import GatingError
from cytokit.gating.gates import (
    AdaptiveGate,
    BooleanGate,
    Dimension,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from cytokit.gating.gatingml.xml import CYTOKIT, DATATYPES, GATING, SCALE_TRANSFORMS, TRANSFORMS
from cytokit.gating.strategy import GatingStrategy
from cytokit.gating.transforms import RatioTransform, Transform

__all__ = ["gatingml_bytes", "write_gatingml"]

_ELEMENT = {cls: name for name, (cls, _) in SCALE_TRANSFORMS.items()}
# Characters XML 1.0 cannot carry at all (not even as character references).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# xs:ID (an NCName), kept to ASCII so that every schema validator agrees.
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


def _num(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "INF" if x > 0 else "-INF"
    return repr(x)


def _short(x: float) -> str:
    s = _num(x)
    return s[:-2] if s.endswith(".0") else s


class _Doc:
    """Indented XML text, built line by line."""

    def __init__(self) -> None:
        self.lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        self.depth = 0

    @staticmethod
    def _attrs(attrs) -> str:
        out = []
        for k, v in attrs:
            if v is None:
                continue
            if _NOT_XML.search(v):
                raise GatingError(
                    f"{v!r} contains a control character that XML cannot hold; rename it"
                )
            out.append(f" {k}={quoteattr(v)}")
        return "".join(out)

    def leaf(self, tag: str, *attrs, text: str | None = None) -> None:
        pad = "  " * self.depth
        if text is None:
            self.lines.append(f"{pad}<{tag}{self._attrs(attrs)} />")
        else:
            self.lines.append(f"{pad}<{tag}{self._attrs(attrs)}>{escape(text)}</{tag}>")

    def open(self, tag: str, *attrs) -> None:
        self.lines.append(f"{'  ' * self.depth}<{tag}{self._attrs(attrs)}>")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.lines.append(f"{'  ' * self.depth}</{tag}>")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Writer:
    def __init__(self, strategy: GatingStrategy) -> None:
        self.s = strategy
        self.used: set[str] = set()
        # Gating-ML ids are xs:ID, unique in the whole document. Valid ids keep their
        # spelling; the others get a valid one (never one of the valid ids), and the
        # original goes into custom_info.
        pops = [p.id for p in strategy.populations]
        self.ids: dict[str, str] = {x: x for x in pops if _NCNAME.fullmatch(x)}
        self.used.update(self.ids)
        self.matrix_ids = {
            m: m for m in strategy.matrices if _NCNAME.fullmatch(m) and m not in self.used
        }
        self.used.update(self.matrix_ids)
        for x in pops:
            if x not in self.ids:
                self.ids[x] = self.fresh(x)
        for m in strategy.matrices:
            if m not in self.matrix_ids:
                self.matrix_ids[m] = self.fresh(m)
        self.gate_ids: dict[str, str] = {}  # gate id -> document id
        self.scale: dict[Transform, str] = {}
        self.ratios: dict[tuple[str, RatioTransform], str] = {}
        self.dividers: dict[tuple[str, str], str] = {}  # (gate id, divider id) -> document id

    def fresh(self, want: str) -> str:
        """A valid, unused id like `want`."""
        want = re.sub(r"[^A-Za-z0-9._-]", "_", want)
        if not re.match(r"[A-Za-z_]", want):
            want = "_" + want
        out, n = want, 1
        while out in self.used:
            n += 1
            out = f"{want}_{n}"
        self.used.add(out)
        return out

    def keep(self, want: str, otherwise: str) -> str:
        """`want` if it is a valid, unused id, else a fresh id like `otherwise`."""
        if _NCNAME.fullmatch(want) and want not in self.used:
            self.used.add(want)
            return want
        return self.fresh(otherwise)

    # -- collecting ids ---------------------------------------------------------------
    def collect(self) -> None:
        for g in self.s.gates:
            if isinstance(g, AdaptiveGate):
                raise GatingError(
                    f"gate {g.id!r} is adaptive ({type(g).__name__}): it is placed on each "
                    "sample's data, and Gating-ML 2.0 has no such gate. Fit the strategy to a "
                    "sample first and export the fitted one: "
                    "strategy.fit(sample).to_gatingml(path)"
                )
            if not isinstance(
                g, (RectangleGate, PolygonGate, EllipsoidGate, QuadrantGate, BooleanGate)
            ):
                raise GatingError(
                    f"gate {g.id!r}: {type(g).__name__} has no Gating-ML 2.0 equivalent"
                )
            # A quadrant gate's own id is not a population id, and needs one of its own.
            self.gate_ids[g.id] = self.ids.get(g.id) or self.keep(g.id, g.id)
            for d in g.dimensions:
                self.dimension_ids(d, g)
            if isinstance(g, QuadrantGate):
                for dv in g.dividers:
                    self.dividers[(g.id, dv.id)] = self.keep(
                        dv.id, f"{self.gate_ids[g.id]}.{dv.id}"
                    )

    def dimension_ids(self, d: Dimension, g: Gate) -> None:
        t = d.transform
        if t is not None and t not in self.scale:
            element = _ELEMENT.get(type(t))
            if element is None:
                raise GatingError(
                    f"gate {g.id!r} reads {d.label} through a {t.kind} transform, which "
                    "Gating-ML 2.0 cannot express (it has flin, flog, fasinh, logicle and "
                    "hyperlog); use one of those (logicle is closest to FlowJo's biex)"
                )
            params = "_".join(_short(v) for v in t.params().values())
            self.scale[t] = self.fresh(f"{element}_{params}")
        if d.ratio is not None and (d.channel, d.ratio) not in self.ratios:
            self.ratios[(d.channel, d.ratio)] = self.keep(d.channel, d.channel)

    # -- writing ----------------------------------------------------------------------
    def write(self) -> str:
        self.collect()
        doc = _Doc()
        doc.open(
            "gating:Gating-ML",
            ("xmlns:gating", GATING),
            ("xmlns:transforms", TRANSFORMS),
            ("xmlns:data-type", DATATYPES),
            ("xmlns:cytokit", CYTOKIT),
        )
        if self.s.name:
            self.custom(doc, ("cytokit:strategy", [("name", self.s.name)]))
        for m in self.s.matrices.values():
            doc.open("transforms:spectrumMatrix", ("transforms:id", self.matrix_ids[m.id]))
            if self.matrix_ids[m.id] != m.id:
                self.custom(doc, ("cytokit:matrix", [("id", m.id)]))
            for group, names in (("fluorochromes", m.fluorochromes), ("detectors", m.detectors)):
                doc.open(f"transforms:{group}")
                for n in names:
                    doc.leaf("data-type:fcs-dimension", ("data-type:name", n))
                doc.close(f"transforms:{group}")
            for row in m.matrix.tolist():
                doc.open("transforms:spectrum")
                for v in row:
                    doc.leaf("transforms:coefficient", ("transforms:value", _num(v)))
                doc.close("transforms:spectrum")
            doc.close("transforms:spectrumMatrix")
        for t, tid in self.scale.items():
            doc.open("transforms:transformation", ("transforms:id", tid))
            doc.leaf(
                f"transforms:{_ELEMENT[type(t)]}",
                *((f"transforms:{k}", _num(v)) for k, v in t.params().items()),
            )
            doc.close("transforms:transformation")
        for (channel, r), tid in self.ratios.items():
            doc.open("transforms:transformation", ("transforms:id", tid))
            doc.open(
                "transforms:fratio",
                ("transforms:A", _num(r.A)),
                ("transforms:B", _num(r.B)),
                ("transforms:C", _num(r.C)),
            )
            if tid != channel:
                self.custom(doc, ("cytokit:dimension", [("name", channel)]))
            doc.leaf("data-type:fcs-dimension", ("data-type:name", r.numerator))
            doc.leaf("data-type:fcs-dimension", ("data-type:name", r.denominator))
            doc.close("transforms:fratio")
            doc.close("transforms:transformation")
        for g in self.s.gates:
            self.gate(doc, g)
        doc.close("gating:Gating-ML")
        return doc.text()

    @staticmethod
    def custom(doc: _Doc, *entries) -> None:
        doc.open("data-type:custom_info")
        for tag, attrs in entries:
            doc.leaf(tag, *attrs)
        doc.close("data-type:custom_info")

    def dim_attrs(self, d: Dimension) -> list[tuple[str, str | None]]:
        return [
            ("gating:compensation-ref", self.matrix_ids.get(d.compensation, d.compensation)),
            ("gating:transformation-ref", None if d.transform is None else self.scale[d.transform]),
        ]

    def axis(self, doc: _Doc, d: Dimension) -> None:
        if d.ratio is None:
            doc.leaf("data-type:fcs-dimension", ("data-type:name", d.channel))
        else:
            ref = self.ratios[(d.channel, d.ratio)]
            doc.leaf("data-type:new-dimension", ("data-type:transformation-ref", ref))

    def gate(self, doc: _Doc, g: Gate) -> None:
        # the Gating-ML shape, also for a subclass (a fitted adaptive quadrant gate is one)
        kind = next(k for k in _SHAPES if isinstance(g, k))
        tag = "gating:" + kind.__name__
        gid = self.gate_ids[g.id]
        parent = None if g.parent is None else self.ids[g.parent]
        doc.open(tag, ("gating:id", gid), ("gating:parent_id", parent))
        info = []
        if g.name != g.id or gid != g.id:
            info.append(("cytokit:population", [("id", g.id), ("name", g.name)]))
        if isinstance(g, QuadrantGate):
            info += [
                ("cytokit:quadrant", [("ref", self.ids[q.id]), ("id", q.id), ("name", q.name)])
                for q in g.quadrants
                if q.name != q.id or self.ids[q.id] != q.id
            ]
            info += [
                ("cytokit:divider", [("ref", self.dividers[(g.id, dv.id)]), ("id", dv.id)])
                for dv in g.dividers
                if self.dividers[(g.id, dv.id)] != dv.id
            ]
        if info:
            self.custom(doc, *info)
        if isinstance(g, RectangleGate):
            for d, lo, hi in zip(g.dims, g.min, g.max, strict=True):
                if lo is None and hi is None:
                    # open on both sides: no condition, and Gating-ML 2.0 has no way to
                    # write one (a dimension needs gating:min, gating:max or both)
                    continue
                doc.open(
                    "gating:dimension",
                    *self.dim_attrs(d),
                    ("gating:min", None if lo is None else _num(lo)),
                    ("gating:max", None if hi is None else _num(hi)),
                )
                self.axis(doc, d)
                doc.close("gating:dimension")
        elif isinstance(g, (PolygonGate, EllipsoidGate)):
            for d in g.dims:
                doc.open("gating:dimension", *self.dim_attrs(d))
                self.axis(doc, d)
                doc.close("gating:dimension")
            if isinstance(g, PolygonGate):
                for vertex in g.vertices:
                    self.point(doc, "gating:vertex", vertex)
            else:
                self.point(doc, "gating:mean", g.mean)
                doc.open("gating:covarianceMatrix")
                for row in g.covariance:
                    doc.open("gating:row")
                    for v in row:
                        doc.leaf("gating:entry", ("data-type:value", _num(v)))
                    doc.close("gating:row")
                doc.close("gating:covarianceMatrix")
                doc.leaf("gating:distanceSquare", ("data-type:value", _num(g.distance_square)))
        elif isinstance(g, QuadrantGate):
            for dv in g.dividers:
                doc.open(
                    "gating:divider",
                    ("gating:id", self.dividers[(g.id, dv.id)]),
                    *self.dim_attrs(dv.dimension),
                )
                self.axis(doc, dv.dimension)
                for v in dv.values:
                    doc.leaf("gating:value", text=_num(v))
                doc.close("gating:divider")
            for q in g.quadrants:
                doc.open("gating:Quadrant", ("gating:id", self.ids[q.id]))
                for ref, loc in q.positions:
                    doc.leaf(
                        "gating:position",
                        ("gating:divider_ref", self.dividers[(g.id, ref)]),
                        ("gating:location", _num(loc)),
                    )
                doc.close("gating:Quadrant")
        else:
            doc.open(f"gating:{g.op}")
            pairs = list(zip(g.operands, g.complement, strict=True))
            if g.op != "not" and len(pairs) == 1:
                pairs *= 2  # the schema wants 2+ operands of and/or; X and X is X
            for ref, comp in pairs:
                doc.leaf(
                    "gating:gateReference",
                    ("gating:ref", self.ids[ref]),
                    ("gating:use-as-complement", "true" if comp else None),
                )
            doc.close(f"gating:{g.op}")
        doc.close(tag)

    @staticmethod
    def point(doc: _Doc, tag: str, coords) -> None:
        doc.open(tag)
        for v in coords:
            doc.leaf("gating:coordinate", ("data-type:value", _num(v)))
        doc.close(tag)


def gatingml_bytes(strategy: GatingStrategy) -> bytes:
    """The Gating-ML 2.0 document of `strategy`, UTF-8 encoded (see `write_gatingml`)."""
    if not isinstance(strategy, GatingStrategy):
        raise GatingError(f"expected a GatingStrategy, got {type(strategy).__name__}")
    return _Writer(_split_quadrants(strategy)).write().encode("utf-8")


def _split_quadrants(strategy: GatingStrategy) -> GatingStrategy:
    """`strategy` with each quadrant gate that has two dividers on one dimension (a
    ``split_by`` quadrant: CD56 cut once below the CD3 divider and once above) written as
    one rectangle gate per quadrant, of the quadrant's id, name and parent: the same
    events (a quadrant's side of a divider is the interval ``[lo, hi)`` a rectangle
    takes), where FlowKit cannot gate such a quadrant gate. Other strategies unchanged."""
    gates, changed = [], False
    for g in strategy.gates:
        rects = _as_rectangles(g) if isinstance(g, QuadrantGate) else None
        if rects is None:
            gates.append(g)
        else:
            gates += rects
            changed = True
    if not changed:
        return strategy
    return GatingStrategy(
        gates, matrices=strategy.matrices, name=strategy.name, source=strategy.source
    )


def _as_rectangles(g: QuadrantGate) -> list[RectangleGate] | None:
    """One rectangle per quadrant of `g` where two of its dividers share a dimension."""
    if not g.shares_a_dimension:
        return None
    return [
        RectangleGate(
            id=q.id,
            parent=g.parent,
            name=q.name,
            dims=tuple(bounds),
            min=tuple(lo for lo, _ in bounds.values()),
            max=tuple(hi for _, hi in bounds.values()),
        )
        for q, bounds in zip(g.quadrants, g.bounds(), strict=True)
    ]


_SHAPES = (RectangleGate, PolygonGate, EllipsoidGate, QuadrantGate, BooleanGate)


def write_gatingml(strategy: GatingStrategy, path: str | Path) -> Path:
    """Write `strategy` as a Gating-ML 2.0 document, atomically.

    Parameters
    ----------
    strategy : GatingStrategy
        With no adaptive gates: for a strategy that has them, export the
        one fitted to a sample, ``strategy.fit(sample)``.
    path : path
        The ``.xml`` file to write (replaced whole or not at all).

    Returns
    -------
    Path

    Raises
    ------
    GatingError
        An adaptive gate, a transform Gating-ML cannot express (FlowJo biex),
        or a name with characters XML cannot hold. Nothing is written.
    """
    data = gatingml_bytes(strategy)
    try:
        return atomic_write_bytes(path, data)
    except OSError as exc:
        raise GatingError(f"{path}: cannot write the Gating-ML file ({exc.strerror})") from None
