"""Slow, obvious references for the gate kernels and the fused plan evaluator.

Each reference follows the documented rule literally, with plain Python or
numpy and no shared numerics with `cytokit.kernels.gates`: the polygon test
is done in exact rational arithmetic (`fractions.Fraction`), the ellipsoid
with ``numpy.linalg``, the plan evaluator materialises every compensated and
transformed column. Also here: the Gating-ML 2.0 compliance data, and a
test-only reading of the compliance XML into a `GatingPlan` built by hand
with `PlanBuilder` (the real Gating-ML importer lives in ``cytokit.gating``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np

from cytokit import kernels as K
from cytokit.kernels.gates import (
    GATE_AND,
    GATE_ELLIPSOID,
    GATE_NOT,
    GATE_OR,
    GATE_POLYGON,
    quadrant_interval,
)
from cytokit.kernels.plan import PlanBuilder

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
GATE_REF = CORPUS / "flowkit" / "data" / "gate_ref"
DATA1_SCALE = CORPUS / "github" / "whitews_FlowIO" / "data" / "truth" / "data1_preprocessed.npy"
DATA1_CHANNELS = ["FSC-H", "SSC-H", "FL1-H", "FL2-H", "FL3-H", "FL2-A", "FL4-H", "Time"]


# --- single gates ------------------------------------------------------------------------------


def _2d(x):
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def rectangle(x, lo, hi):
    """``lo <= x < hi`` per column; None/NaN bounds are open; NaN values are outside."""
    x = _2d(x)
    inside = np.ones(x.shape[0], dtype=bool)
    for j in range(x.shape[1]):
        v = x[:, j]
        inside &= ~np.isnan(v)
        if lo[j] is not None and not math.isnan(lo[j]) and lo[j] != -math.inf:
            inside &= v >= lo[j]
        if hi[j] is not None and not math.isnan(hi[j]) and hi[j] != math.inf:
            inside &= v < hi[j]
    return inside


def _point_in_polygon(px, py, vertices) -> bool:
    """Even-odd, half-open crossing rule, in exact rational arithmetic."""
    if not (math.isfinite(px) and math.isfinite(py)):
        return False
    px, py = Fraction(px), Fraction(py)
    vs = [(Fraction(a), Fraction(b)) for a, b in vertices]
    crossings = 0
    for k in range(len(vs)):
        x0, y0 = vs[k - 1]
        x1, y1 = vs[k]
        if (y0 > py) != (y1 > py):
            x_cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
            if px < x_cross:
                crossings += 1
    return crossings % 2 == 1


def polygon(x, vertices):
    x = np.asarray(x, dtype=np.float64)
    return np.array([_point_in_polygon(float(a), float(b), vertices) for a, b in x], dtype=bool)


def ellipsoid(x, mean, covariance, distance_square):
    x = _2d(x)
    d = x - np.asarray(mean, dtype=np.float64)
    inv = np.linalg.inv(np.asarray(covariance, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        q = np.einsum("ia,ab,ib->i", d, inv, d)
    return q <= distance_square


def quadrants(x, dividers, quadrant_intervals):
    """Row ``q``: for each named divider ``j``, ``x[:, j]`` is in interval ``k`` (upper side on ties)."""
    x = _2d(x)
    out = np.ones((len(quadrant_intervals), x.shape[0]), dtype=bool)
    for q, ks in enumerate(quadrant_intervals):
        for j, k in enumerate(ks):
            if k < 0:
                continue
            values = list(dividers[j])
            v = x[:, j]
            lo = values[k - 1] if k > 0 else -math.inf
            hi = values[k] if k < len(values) else math.inf
            out[q] &= (v >= lo) & ((v < hi) | (hi == math.inf))
    return out


def boolean(op, operands, complement=None):
    ops = [np.asarray(o, dtype=bool) for o in operands]
    if complement is not None:
        ops = [~o if c else o for o, c in zip(ops, complement, strict=True)]
    if op == "and":
        return np.logical_and.reduce(ops)
    if op == "or":
        return np.logical_or.reduce(ops)
    assert op == "not" and len(ops) == 1
    return ~ops[0]


# --- whole plan --------------------------------------------------------------------------------


def _transform(kind, params, v):
    if kind == K.XF_NONE:
        return v
    return np.array([K.transform_scalar(kind, params, float(a)) for a in v], dtype=np.float64)


def dimension_values(events, plan):
    """Every dimension of ``plan`` materialised: float64 (n_dims, n_events)."""
    ev = np.asarray(events, dtype=np.float64)
    comped = []
    for inv, cols in zip(plan.comp_inverses, plan.comp_columns, strict=True):
        full = ev.copy()
        full[:, cols] = ev[:, cols] @ inv
        comped.append(full)
    out = np.empty((plan.n_dims, ev.shape[0]))
    for d in range(plan.n_dims):
        c = int(plan.dim_compensation[d])
        src = ev if c < 0 else comped[c]
        v = src[:, plan.dim_column[d]]
        if plan.dim_column2[d] >= 0:
            A, B, C = plan.dim_ratio[d]
            with np.errstate(divide="ignore", invalid="ignore"):
                v = A * (v - B) / (src[:, plan.dim_column2[d]] - C)
        out[d] = _transform(int(plan.dim_transform[d]), plan.dim_transform_params[d], v)
    return out


def evaluate(events, plan):
    """Counts and membership of every gate, the slow way: (int64 (n_gates,), bool (n_gates, n))."""
    vals = dimension_values(events, plan)
    n = vals.shape[1]
    mem = np.zeros((plan.n_gates, n), dtype=bool)
    for g in range(plan.n_gates):
        kind = int(plan.gate_kind[g])
        dims = plan.gate_dims[plan.dims_ptr[g] : plan.dims_ptr[g + 1]]
        geom = plan.geometry[plan.geom_ptr[g] : plan.geom_ptr[g + 1]]
        ops = plan.operands[plan.operands_ptr[g] : plan.operands_ptr[g + 1]]
        comp = plan.operand_complement[plan.operands_ptr[g] : plan.operands_ptr[g + 1]]
        x = vals[dims].T
        if kind == GATE_POLYGON:
            m = polygon(x, geom[4:].reshape(-1, 2))
        elif kind == GATE_ELLIPSOID:
            nd = len(dims)
            inv = geom[nd : nd + nd * nd].reshape(nd, nd)
            m = ellipsoid(x, geom[:nd], np.linalg.inv(inv), geom[-1])
        elif kind in (GATE_AND, GATE_OR, GATE_NOT):
            op = {GATE_AND: "and", GATE_OR: "or", GATE_NOT: "not"}[kind]
            m = boolean(op, [mem[o] for o in ops], comp)
        else:
            m = rectangle(x, geom[0::2], geom[1::2])
        if plan.gate_parent[g] >= 0:
            m = m & mem[plan.gate_parent[g]]
        mem[g] = m
    return mem.sum(axis=1).astype(np.int64), mem


# --- Gating-ML 2.0 compliance suite ------------------------------------------------------------

_G = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
_T = "{http://www.isac-net.org/std/Gating-ML/v2.0/transformations}"
_D = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"

_XF = {
    "flin": (K.XF_LINEAR, ("T", "A")),
    "flog": (K.XF_LOG, ("T", "M")),
    "fasinh": (K.XF_ASINH, ("T", "M", "A")),
    "logicle": (K.XF_LOGICLE, ("T", "W", "M", "A")),
    "hyperlog": (K.XF_HYPERLOG, ("T", "W", "M", "A")),
}


def data1_scale() -> np.ndarray:
    """data1.fcs scale values (FlowIO's preprocessed truth), float64 (13367, 8)."""
    return np.load(DATA1_SCALE)


def truth(gate_id: str) -> np.ndarray:
    return np.loadtxt(GATE_REF / "truth" / f"Results_{gate_id}.txt", dtype=np.int64).astype(bool)


def _f(el, attr, ns=_G):
    v = el.get(ns + attr)
    return None if v is None else float(v)


class CompliancePlan:
    """Read Gating-ML compliance files into a `PlanBuilder` (test-only, just enough for the suite).

    Gate ids (and quadrant ids) map to gate indices in ``self.index``.
    """

    def __init__(self) -> None:
        self.b = PlanBuilder()
        self.index: dict[str, int] = {}
        self.transforms: dict[str, tuple] = {}
        self.ratios: dict[str, tuple] = {}
        self.spill: dict[str, tuple[int, list[str]]] = {}
        self.col = {c: i for i, c in enumerate(DATA1_CHANNELS)}

    def read(self, path: Path, prefix: str = "") -> CompliancePlan:
        root = ET.parse(path).getroot()
        for el in root:
            tag = el.tag
            if tag == _T + "transformation":
                self._transformation(el)
            elif tag == _T + "spectrumMatrix":
                self._spectrum(el)
        pending = [el for el in root if el.tag.startswith(_G) and el.tag.endswith("Gate")]
        # Gates may reference gates defined later in the file: add in dependency order.
        while pending:
            rest = [el for el in pending if not self._gate(el, prefix)]
            if len(rest) == len(pending):
                raise AssertionError(f"unresolvable references in {path}")
            pending = rest
        return self

    def _transformation(self, el) -> None:
        tid = el.get(_T + "id")
        (f,) = list(el)
        name = f.tag[len(_T) :]
        if name == "fratio":
            cols = [d.get(_D + "name") for d in f]
            self.ratios[tid] = (cols, _f(f, "A", _T), _f(f, "B", _T), _f(f, "C", _T))
        else:
            kind, names = _XF[name]
            self.transforms[tid] = (kind, {n: _f(f, n, _T) for n in names})

    def _spectrum(self, el) -> None:
        fluor = [d.get(_D + "name") for d in el.find(_T + "fluorochromes")]
        det = [d.get(_D + "name") for d in el.find(_T + "detectors")]
        rows = [[_f(c, "value", _T) for c in s] for s in el.findall(_T + "spectrum")]
        inv = K.compensation_matrix(np.array(rows))
        c = self.b.compensation(inv, [self.col[d] for d in det])
        self.spill[el.get(_T + "id")] = (c, det, fluor)

    def _dimension(self, el) -> int:
        comp_ref = el.get(_G + "compensation-ref")
        xf_ref = el.get(_G + "transformation-ref")
        fcs = el.find(_D + "fcs-dimension")
        comp, ratio = -1, None
        if fcs is not None:
            name = fcs.get(_D + "name")
        else:  # a ratio new-dimension
            cols, A, B, C = self.ratios[
                el.find(_D + "new-dimension").get(_D + "transformation-ref")
            ]
            name = cols[0]
            ratio = (self.col[cols[1]], A, B, C)
        if comp_ref in self.spill:
            comp, det, fluor = self.spill[comp_ref]
            name = det[fluor.index(name)] if name in fluor else name
        # "FCS" on a file without spillover, and "uncompensated": no compensation.
        kind, params = self.transforms.get(xf_ref, (K.XF_NONE, None))
        return self.b.dimension(
            self.col[name], compensation=comp, transform=kind, params=params, ratio=ratio
        )

    def _gate(self, el, prefix) -> bool:
        gid = prefix + el.get(_G + "id")
        parent = el.get(_G + "parent_id")
        if parent is not None and prefix + parent not in self.index:
            return False
        p = -1 if parent is None else self.index[prefix + parent]
        kind = el.tag[len(_G) :]
        if kind == "BooleanGate":
            (op_el,) = [c for c in el if c.tag in (_G + "and", _G + "or", _G + "not")]
            refs = [prefix + r.get(_G + "ref") for r in op_el.findall(_G + "gateReference")]
            if any(r not in self.index for r in refs):
                return False
            comp = [
                r.get(_G + "use-as-complement") == "true"
                for r in op_el.findall(_G + "gateReference")
            ]
            op = op_el.tag[len(_G) :]
            self.index[gid] = self.b.boolean(
                op, [self.index[r] for r in refs], comp, parent=p, name=gid
            )
            return True
        if kind == "QuadrantGate":
            divs = el.findall(_G + "divider")
            dims = [self._dimension(d) for d in divs]
            values = [[float(v.text) for v in d.findall(_G + "value")] for d in divs]
            ids = [d.get(_G + "id") for d in divs]
            quads, names = [], []
            for q in el.findall(_G + "Quadrant"):
                ks = [-1] * len(divs)
                for pos in q.findall(_G + "position"):
                    j = ids.index(pos.get(_G + "divider_ref"))
                    ks[j] = quadrant_interval(values[j], float(pos.get(_G + "location")))
                quads.append(ks)
                names.append(prefix + q.get(_G + "id"))
            for name, g in zip(
                names, self.b.quadrants(dims, values, quads, parent=p, names=names), strict=True
            ):
                self.index[name] = g
            return True
        dim_els = el.findall(_G + "dimension")
        dims = [self._dimension(d) for d in dim_els]
        if kind == "RectangleGate":
            lo = [_f(d, "min") for d in dim_els]
            hi = [_f(d, "max") for d in dim_els]
            self.index[gid] = self.b.rectangle(dims, lo, hi, parent=p, name=gid)
        elif kind == "PolygonGate":
            verts = [[_f(c, "value", _D) for c in v] for v in el.findall(_G + "vertex")]
            self.index[gid] = self.b.polygon(dims, verts, parent=p, name=gid)
        elif kind == "EllipsoidGate":
            mean = [_f(c, "value", _D) for c in el.find(_G + "mean")]
            cov = [[_f(e, "value", _D) for e in r] for r in el.find(_G + "covarianceMatrix")]
            d2 = _f(el.find(_G + "distanceSquare"), "value", _D)
            self.index[gid] = self.b.ellipsoid(dims, mean, cov, d2, parent=p, name=gid)
        else:
            raise AssertionError(f"unexpected gate element {kind}")
        return True


def compliance_plan():
    """The whole ISAC file plus FlowKit's ParQuadRect addition (not its Ellipsoid3D, whose
    matrix is no covariance and is refused).

    Returns ``(plan, {truth file id: gate index})``.
    """
    cp = CompliancePlan().read(GATE_REF / "gml" / "gml_all_gates.xml")
    # Its Quadrant1 (uncompensated) clashes by id with the ISAC one: prefix it.
    cp.read(GATE_REF / "gml" / "gml_parent_quadrant_rect_gate.xml", prefix="pq:")
    ids = {k: v for k, v in cp.index.items() if not k.startswith("pq:")}
    ids["ParQuadRect"] = cp.index["pq:ParRectangle1"]
    return cp.b.build(), ids
