"""Writing a `GatingStrategy` in cytokit's YAML format (see `cytokit.gating.yamlfmt.reader`).

Every gate spells out its dimensions' compensation and transform, so the file
reads back to the same gates whatever the reader's ``panel=``/``transform=``
options. Quadrants get their paths as ids when read back.
"""

from __future__ import annotations

from dataclasses import fields

import yaml

from cytokit.errors import GatingError
from cytokit.gating.adaptive import (
    ClusterGate,
    SingletGate,
    Valley,
    ValleyGate,
    ValleyQuadrantGate,
    quadrant_signs,
)
from cytokit.gating.gates import (
    BooleanGate,
    Dimension,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from cytokit.gating.strategy import GatingStrategy

_DEFAULT_VALLEY = Valley().check("default")


def dump_strategy(strategy: GatingStrategy) -> str:
    """The YAML text of `strategy`."""
    w = _Writer(strategy)
    doc: dict = {}
    if strategy.name:
        doc["name"] = strategy.name
    if strategy.matrices:
        doc["matrices"] = {
            k: {
                "fluorochromes": list(m.fluorochromes),
                "detectors": list(m.detectors),
                "matrix": [[float(x) for x in row] for row in m.matrix],
            }
            for k, m in strategy.matrices.items()
        }
    doc["gates"] = w.children(None)
    header = "# cytokit gating strategy (format: cytokit.gating.yamlfmt.reader)\n"
    return header + yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None
    )


def _xf(t):
    if t is None:
        return "none"
    return {"type": t.kind, **{k: float(v) for k, v in t.params().items()}}


class _Writer:
    def __init__(self, strategy: GatingStrategy) -> None:
        self.s = strategy
        self.path = {p.id: p.path for p in strategy.populations}
        self.kids: dict[str | None, list[Gate]] = {}
        for g in strategy.gates:
            self.kids.setdefault(g.parent, []).append(g)

    def children(self, pid: str | None) -> list[dict]:
        return [self.gate(g) for g in self.kids.get(pid, [])]

    # -- dimensions ---------------------------------------------------------------------
    def dim(self, d: Dimension):
        if d.ratio is None:
            return d.channel
        r = d.ratio
        return {
            "ratio": [r.numerator, r.denominator],
            "name": d.channel,
            "A": r.A,
            "B": r.B,
            "C": r.C,
        }

    def settings(self, g: Gate, dims, item: dict) -> None:
        """Gate-level compensation and transform (one value, or a table by dimension)."""
        comp = {d.channel: d.compensation for d in dims}
        xf = {d.channel: _xf(d.transform) for d in dims}
        for d in dims:
            if comp[d.channel] != d.compensation or xf[d.channel] != _xf(d.transform):
                raise GatingError(
                    f"gate {g.id!r} reads channel {d.channel!r} twice with different "
                    "compensation or transform; the YAML format cannot say that (write Gating-ML)"
                )
        values = list(comp.values())
        item["compensation"] = values[0] if len(set(values)) == 1 else comp
        xs = list(xf.values())
        item["transform"] = xs[0] if all(x == xs[0] for x in xs) else xf

    def keyed(self, g: Gate, dims) -> None:
        for d in dims:
            if d.ratio is not None:
                raise GatingError(
                    f"gate {g.id!r}: a ratio dimension cannot be a key of a range or quadrant "
                    "gate in the YAML format; write the strategy as Gating-ML"
                )

    # -- gates --------------------------------------------------------------------------
    def gate(self, g: Gate) -> dict:
        item: dict = {}
        if not isinstance(g, QuadrantGate):
            item["name"] = g.name
            if g.id != self.path[g.id]:
                item["id"] = g.id
        else:
            item["id"] = g.id
        shape = self.shape(g)
        item.update(shape)
        if g.dimensions:
            self.settings(g, g.dimensions, item)
        if isinstance(g, QuadrantGate):
            # quadrants in the order their first children come in the strategy
            names = {q.id: q.name for q in g.quadrants}
            first = [k for k in self.kids if k in names]
            kids = {names[q]: self.children(q) for q in first}
            if kids:
                item["gates"] = kids
        else:
            kids = self.children(g.id)
            if kids:
                item["gates"] = kids
        return item

    def shape(self, g: Gate) -> dict:
        if isinstance(g, ValleyQuadrantGate):
            return self.valley_quadrants(g)
        if isinstance(g, ValleyGate):
            out = {"threshold": [self.dim(d) for d in g.dims], "keep": g.keep}
            if len(g.dims) == 2:
                out.update(slopes=list(g.slopes), n_slopes=g.n_slopes)
            out.update(_valley(g.valley))
            return out
        if isinstance(g, SingletGate):
            out = {"singlets": [self.dim(d) for d in g.dims], "width": g.width}
            out["ratio"] = list(g.ratio)
            if g.fallback is not None:
                out["fallback"] = list(g.fallback)
            out["min_events"] = g.min_events
            return out
        if isinstance(g, ClusterGate):
            out = {"cluster": [self.dim(d) for d in g.dims], "near": list(g.near)}
            out.update(distance=g.distance, core=g.core, within=[list(p) for p in g.within])
            out.update(scale=list(g.scale), min_events=g.min_events, fit_events=g.fit_events)
            if g.fallback is not None:
                out["fallback"] = self.fixed_shape(g, g.fallback)
            return out
        if isinstance(g, RectangleGate):
            self.keyed(g, g.dims)
            return {
                "range": {
                    d.channel: [lo, hi] for d, lo, hi in zip(g.dims, g.min, g.max, strict=True)
                }
            }
        if isinstance(g, PolygonGate):
            return {
                "polygon": [self.dim(d) for d in g.dims],
                "vertices": [list(v) for v in g.vertices],
            }
        if isinstance(g, EllipsoidGate):
            return {
                "ellipse": [self.dim(d) for d in g.dims],
                "mean": list(g.mean),
                "covariance": [list(r) for r in g.covariance],
                "distance_square": g.distance_square,
            }
        if isinstance(g, QuadrantGate):
            return self.fixed_quadrants(g)
        if isinstance(g, BooleanGate):
            refs = [
                {"not": self.path[o]} if c else self.path[o]
                for o, c in zip(g.operands, g.complement, strict=True)
            ]
            return {"not": refs[0]} if g.op == "not" else {g.op: refs}
        raise GatingError(
            f"gate {g.id!r}: {type(g).__name__} has no form in the cytokit YAML format"
        )

    def fixed_shape(self, g: Gate, fb: Gate) -> dict:
        if isinstance(fb, PolygonGate):
            return {"polygon": [list(v) for v in fb.vertices]}
        if isinstance(fb, RectangleGate):
            return {"range": [[lo, hi] for lo, hi in zip(fb.min, fb.max, strict=True)]}
        if isinstance(fb, EllipsoidGate):
            return {
                "ellipse": {
                    "mean": list(fb.mean),
                    "covariance": [list(r) for r in fb.covariance],
                    "distance_square": fb.distance_square,
                }
            }
        raise GatingError(f"gate {g.id!r}: its fallback {type(fb).__name__} cannot be written")

    def names(self, g: QuadrantGate, dnames: list[str], names) -> dict:
        default = ["".join(f"{d}{s}" for d, s in zip(dnames, sign, strict=True))
                   for sign in quadrant_signs(len(dnames))]  # fmt: skip
        return {a: b for a, b in zip(default, names, strict=True) if a != b}

    def valley_quadrants(self, g: ValleyQuadrantGate) -> dict:
        self.keyed(g, g.dims)
        spec = {}
        for d, v, k in zip(g.dims, g.valleys, g.split_by, strict=True):
            if v.fixed is not None and k is None:
                spec[d.channel] = v.fixed
                continue
            setting = _valley(v) if v.fixed is None else {}
            if v.fixed is not None:
                raise GatingError(
                    f"gate {g.id!r}: a fixed divider split by another cannot be written"
                )
            if k is not None:
                setting["split_by"] = g.dims[k].channel
            spec[d.channel] = setting or "auto"
        out: dict = {"quadrants": spec}
        renamed = self.names(g, [d.channel for d in g.dims], g.quadrant_names)
        if renamed:
            out["names"] = renamed
        return out

    def fixed_quadrants(self, g: QuadrantGate) -> dict:
        layout = _layout(g)
        if layout is None:
            raise GatingError(
                f"quadrant gate {g.id!r}: the YAML format writes quadrant gates whose quadrants "
                "are every side combination of one divider per dimension (or one per side of "
                "another divider); write this one as Gating-ML"
            )
        dims, cuts, split, names = layout
        self.keyed(g, dims)
        spec: dict = {}
        for d, ts, k in zip(dims, cuts, split, strict=True):
            spec[d.channel] = ts[0] if k is None else {"at": list(ts), "split_by": dims[k].channel}
        out: dict = {"quadrants": spec}
        renamed = self.names(g, [d.channel for d in dims], names)
        if renamed:
            out["names"] = renamed
        return out


def _layout(g: QuadrantGate):
    """(dims, cuts, split_by, names in sign order) of a quadrant gate, or None if not expressible.

    Dividers are grouped by dimension; a dimension with two dividers must use
    one below and the other above some single-divider dimension's cut.
    """
    dims: list = []
    groups: list[list[int]] = []
    for i, dv in enumerate(g.dividers):
        if len(dv.values) != 1:
            return None
        if dv.dimension in dims:
            groups[dims.index(dv.dimension)].append(i)
        else:
            dims.append(dv.dimension)
            groups.append([i])
    if any(len(x) > 2 for x in groups) or len({d.channel for d in dims}) != len(dims):
        return None
    iv = g.intervals()
    rows = []  # per quadrant: (signs per dim, which divider of the group it uses)
    for row in iv.tolist():
        signs, used = [], []
        for grp in groups:
            named = [i for i in grp if row[i] >= 0]
            if len(named) != 1:
                return None
            signs.append("+" if row[named[0]] == 1 else "-")
            used.append(grp.index(named[0]))
        rows.append(("".join(signs), used))
    order = quadrant_signs(len(dims))
    if sorted(r[0] for r in rows) != sorted(order):
        return None
    split: list = [None] * len(dims)
    cuts: list = []
    for j, grp in enumerate(groups):
        if len(grp) == 1:
            cuts.append((g.dividers[grp[0]].values[0],))
            continue
        for k, other in enumerate(groups):
            if k == j or len(other) != 1:
                continue
            below = {r[1][j] for r in rows if r[0][k] == "-"}
            above = {r[1][j] for r in rows if r[0][k] == "+"}
            if len(below) == len(above) == 1 and below != above:
                split[j] = k
                lo, hi = grp[below.pop()], grp[above.pop()]
                cuts.append((g.dividers[lo].values[0], g.dividers[hi].values[0]))
                break
        else:
            return None
    names = {r[0]: q.name for r, q in zip(rows, g.quadrants, strict=True)}
    return dims, cuts, split, [names[s] for s in order]


def _valley(v: Valley) -> dict:
    out = {}
    for f in fields(Valley):
        if f.name == "fixed":
            continue
        value = getattr(v, f.name)
        if value != getattr(_DEFAULT_VALLEY, f.name):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
