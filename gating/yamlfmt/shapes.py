"""Gate shapes of the YAML strategy format: one builder per shape key (see `cytokit.gating.yamlfmt.reader`).

`Shapes` is mixed into the reader (`cytokit.gating.yamlfmt.gates.Reader`), which
supplies ``err``, ``_dim``, ``_dims``, ``_ref`` and ``_quadrant_names``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from cytokit.errors import GatingError, did_you_mean
from cytokit.gating.adaptive.scatter import ClusterGate, SingletGate
from cytokit.gating.adaptive.valley import (
    Valley,
    ValleyGate,
    ValleyQuadrantGate,
    check_split_by,
    quadrant_gate,
    quadrant_layout,
)
from cytokit.gating.gates import (
    BooleanGate,
    EllipsoidGate,
    Gate,
    PolygonGate,
    RectangleGate,
)

TOP_KEYS = ("name", "gates", "transform", "panel", "compensation", "matrices")
COMMON_KEYS = ("name", "id", "gates", "parent", "transform", "compensation")
VALLEY_KEYS = ("between", "fallback", "single", "spread", "smooth", "min_peak", "max_valley")
VALLEY_KEYS += ("min_events",)
SHAPE_KEYS = {
    "range": (),
    "rectangle": (),
    "polygon": ("vertices",),
    "ellipse": ("mean", "covariance", "distance_square", "center", "axes", "angle"),
    "quadrants": ("names",),
    "and": (),
    "or": (),
    "not": (),
    "threshold": ("keep", "slopes", "n_slopes", *VALLEY_KEYS),
    "singlets": ("width", "ratio", "fallback", "min_events"),
    "cluster": ("near", "distance", "core", "within", "scale", "fallback", "min_events"),
}
SHAPE_KEYS["cluster"] += ("fit_events",)


def is_map(x) -> bool:
    return isinstance(x, Mapping)


def is_seq(x) -> bool:
    return isinstance(x, list)


def line_of(node, key=None) -> int:
    f = getattr(node, "line", None)
    return f(key) if f is not None else 0


def suggest(word: str, options) -> str:
    return did_you_mean(word, options)


class Shapes:
    """Builders of each shape's gate from its YAML table."""

    def _g_range(self, node, common, item):
        key = "range" if "range" in node else "rectangle"
        spec = node[key]
        if not is_map(spec) or not spec:
            raise self.err(
                line_of(node, key), f"{key} is a table by dimension: {{CD3: [0.45, null]}}"
            )
        dims, lo, hi = [], [], []
        for dname, bounds in spec.items():
            ln = line_of(spec, dname)
            if not (is_seq(bounds) and len(bounds) == 2):
                raise self.err(ln, f"{dname}: bounds are [min, max] with null for open")
            dims.append(self._dim(dname, node, ln)[1])
            lo.append(_num(bounds[0], self.err(ln, f"{dname}: min {bounds[0]!r} {_NOT_A_BOUND}")))
            hi.append(_num(bounds[1], self.err(ln, f"{dname}: max {bounds[1]!r} {_NOT_A_BOUND}")))
            if lo[-1] is not None and lo[-1] == hi[-1]:
                raise self.err(
                    ln,
                    f"gate {common['name']!r}: {dname}: [{bounds[0]}, {bounds[1]}] has min = "
                    "max, which no value lies in (min inclusive, max exclusive); widen it, or "
                    "leave a side open with null",
                )
        return RectangleGate(**common, dims=tuple(dims), min=tuple(lo), max=tuple(hi))

    def _g_polygon(self, node, common, item):
        dims = [d for _, d in self._dims(node["polygon"], node, "polygon")]
        v = node.get("vertices")
        if not is_seq(v):
            raise self.err(item.line, "a polygon needs vertices: [[x, y], [x, y], ...]")
        for i, p in enumerate(v):
            ok = is_seq(p) and len(p) == 2
            if not ok or any(_num(x, None) is None for x in p):
                raise self.err(
                    line_of(v, i) or line_of(node, "vertices"),
                    f"gate {common['name']!r}: vertex {i + 1} {p!r} is not [x, y] with two finite "
                    "numbers; give vertices as [[x, y], [x, y], ...]",
                )
        return PolygonGate(**common, dims=tuple(dims), vertices=tuple(map(tuple, v)))

    def _g_ellipse(self, node, common, item):
        dims = tuple(d for _, d in self._dims(node["ellipse"], node, "ellipse"))
        return EllipsoidGate(**common, dims=dims, **self._ellipse(node, len(dims), item.line))

    def _ellipse(self, node, n: int, line: int) -> dict:
        if "center" in node:
            if n != 2 or not {"axes", "angle"} <= set(node):
                raise self.err(
                    line, "a center/axes/angle ellipse has two dimensions, axes and angle"
                )
            a, b = (float(x) for x in node["axes"])
            if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
                raise self.err(
                    line_of(node, "axes") or line,
                    f"axes: [{a!r}, {b!r}] are the ellipse's half-axes, each finite and > 0 "
                    "(to turn the ellipse, use angle)",
                )
            t = math.radians(float(node["angle"]))
            r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            cov = r @ np.diag([a * a, b * b]) @ r.T
            return {
                "mean": tuple(node["center"]),
                "covariance": cov.tolist(),
                "distance_square": 1.0,
            }
        if not {"mean", "covariance"} <= set(node):
            raise self.err(line, "an ellipse needs mean and covariance (or center, axes and angle)")
        return {
            "mean": tuple(node["mean"]),
            "covariance": [tuple(r) for r in node["covariance"]],
            "distance_square": float(node.get("distance_square", 1.0)),
        }

    def _g_quadrants(self, node, common, item):
        spec = node["quadrants"]
        dims, valleys, fixed, split = [], [], [], []
        names = self._quadrant_names(node, item.line)
        for dname, setting in spec.items():
            ln = line_of(spec, dname)
            dims.append(self._dim(dname, node, ln)[1])
            ref = setting.get("split_by") if is_map(setting) else None
            k = None if ref is None else self._split_by(ref, names["dims"], dname, spec)
            split.append(k)
            if setting is None or setting == "auto":
                valleys.append(Valley())
                fixed.append(None)
            elif isinstance(setting, (int, float)) and not isinstance(setting, bool):
                valleys.append(Valley(fixed=float(setting)))
                fixed.append((float(setting),))
            elif is_map(setting) and "at" in setting:
                fixed.append(self._at(setting, k is not None, dname, ln))
                valleys.append(Valley(fixed=fixed[-1][0]) if k is None else None)
            elif is_map(setting):
                valleys.append(self._valley(setting, ln, ("split_by",)))
                fixed.append(None)
            else:
                raise self.err(
                    ln, f"{dname}: a divider is a number, auto, {{at: ...}} or a table of settings"
                )
        for j, d in enumerate(dims):
            if d in dims[:j]:
                k = dims.index(d)
                raise self.err(
                    line_of(node, "quadrants"),
                    f"quadrants: {names['dims'][k]} and {names['dims'][j]} are one channel "
                    f"({d.channel}); divide two different channels (split_by cuts one twice)",
                )
        ids = tuple(item.ids[q] for q in names["names"])
        common = {**common, "id": item.gate_id, "name": item.gate_id}
        try:
            split = check_split_by(item.gate_id, split, len(dims))
        except GatingError as exc:
            raise self.err(line_of(node, "quadrants"), str(exc)) from None
        if all(f is not None for f in fixed):
            dividers, quads = quadrant_layout(item.gate_id, dims, split, fixed, ids, names["names"])
            return quadrant_gate(**common, dividers=dividers, quadrants=quads)
        if any(v is None for v in valleys):
            raise self.err(
                line_of(node, "quadrants"),
                "a split divider with fixed values (at: [below, above]) needs every divider "
                "of the gate fixed",
            )
        return ValleyQuadrantGate(
            **common,
            dims=tuple(dims),
            valleys=tuple(valleys),
            split_by=tuple(split),
            quadrant_ids=ids,
            quadrant_names=tuple(names["names"]),
        )

    def _at(self, setting, split: bool, dname, line) -> tuple:
        extra = set(setting) - {"at", "split_by"}
        at = setting["at"]
        vals = at if is_seq(at) else [at]
        want = 2 if split else 1
        ok = not extra and len(vals) == want
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        if not ok:
            form = "{at: [below, above], split_by: <divider>}" if split else "{at: <number>}"
            raise self.err(line, f"{dname}: a fixed divider is {form}")
        return tuple(float(v) for v in vals)

    def _split_by(self, ref, dnames, dname, spec) -> int:
        ref = str(ref)
        if ref not in dnames or ref == dname:
            others = [n for n in dnames if n != dname] or ["<another divider>"]
            raise self.err(
                line_of(spec, dname),
                f"{dname}: split_by {ref!r} must name another divider of this gate, e.g. "
                f"split_by: {others[0]}",
            )
        return dnames.index(ref)

    def _valley(self, spec, line, extra=()) -> Valley:
        for k in spec:
            if k not in (*VALLEY_KEYS, *extra):
                raise self.err(
                    line_of(spec, k) or line,
                    f"unknown valley setting {k!r}{suggest(k, VALLEY_KEYS)}; use "
                    + ", ".join((*VALLEY_KEYS, *extra)),
                )
        kw = {k: spec[k] for k in VALLEY_KEYS if k in spec}
        if "between" in kw and not (is_seq(kw["between"]) and len(kw["between"]) == 2):
            raise self.err(line_of(spec, "between") or line, "between is [low, high]")
        return Valley(**kw)

    def _g_threshold(self, node, common, item):
        dims = [d for _, d in self._dims(node["threshold"], node, "threshold")]
        kw = {k: node[k] for k in ("slopes", "n_slopes") if k in node}
        if len(dims) != 2 and kw:
            raise self.err(item.line, "slopes and n_slopes need two dimensions: [x, y]")
        if "slopes" in kw and not (is_seq(kw["slopes"]) and len(kw["slopes"]) == 2):
            raise self.err(line_of(node, "slopes"), "slopes is [low, high]")
        valley = self._valley({k: node[k] for k in VALLEY_KEYS if k in node}, item.line)
        keep = str(node.get("keep", "above"))
        return ValleyGate(**common, dims=tuple(dims), keep=keep, valley=valley, **kw)

    def _g_singlets(self, node, common, item):
        dims = [d for _, d in self._dims(node["singlets"], node, "singlets")]
        kw = {k: node[k] for k in ("width", "min_events") if k in node}
        for k in ("ratio", "fallback"):
            if k in node:
                if not (is_seq(node[k]) and len(node[k]) == 2):
                    raise self.err(line_of(node, k), f"{k} is [low, high] (FSC-H/FSC-A ratios)")
                kw[k] = tuple(node[k])
        return SingletGate(**common, dims=tuple(dims), **kw)

    def _g_cluster(self, node, common, item):
        dims = tuple(d for _, d in self._dims(node["cluster"], node, "cluster"))
        if "near" not in node:
            raise self.err(item.line, "a cluster gate needs near: [x, y], the expected centre")
        kw = {k: node[k] for k in ("distance", "core", "min_events", "fit_events") if k in node}
        kw["near"] = tuple(node["near"])
        if "within" in node:
            kw["within"] = tuple(tuple(p) for p in node["within"])
        if "scale" in node:
            s = node["scale"]
            kw["scale"] = (s,) * len(dims) if isinstance(s, str) else tuple(s)
        if "fallback" in node:
            kw["fallback"] = self._fixed_shape(node["fallback"], dims, line_of(node, "fallback"))
        return ClusterGate(**common, dims=dims, **kw)

    def _fixed_shape(self, spec, dims, line) -> Gate:
        base = {"id": "fallback", "dims": dims}
        if is_map(spec) and len(spec) == 1:
            (kind, v), = spec.items()  # fmt: skip
            if kind == "polygon" and is_seq(v):
                return PolygonGate(**base, vertices=tuple(map(tuple, v)))
            if kind in ("range", "rectangle") and is_seq(v) and len(v) == len(dims):
                return RectangleGate(**base, min=tuple(p[0] for p in v), max=tuple(p[1] for p in v))
            if kind == "ellipse" and is_map(v):
                return EllipsoidGate(**base, **self._ellipse(v, len(dims), line))
        raise self.err(
            line,
            "fallback is one fixed shape on the same dimensions: {polygon: [[x, y], ...]}, "
            "{range: [[min, max], ...]} or {ellipse: {mean:, covariance:}}",
        )

    def _bool(self, node, common, item, op):
        refs = node[op]
        line = line_of(node, op)
        if op == "not":
            refs = [refs]
        if not is_seq(refs) or not refs:
            raise self.err(line, f"{op}: give a list of populations, e.g. {op}: [A, B]")
        ops, comp = [], []
        for r in refs:
            neg = is_map(r) and set(r) == {"not"}
            ops.append(self._ref(r["not"] if neg else r, item.parent_path, line))
            comp.append(neg and op != "not")
        return BooleanGate(**common, op=op, operands=tuple(ops), complement=tuple(comp))

    def _g_and(self, node, common, item):
        return self._bool(node, common, item, "and")

    def _g_or(self, node, common, item):
        return self._bool(node, common, item, "or")

    def _g_not(self, node, common, item):
        return self._bool(node, common, item, "not")


_NOT_A_BOUND = "is not a number; a bound is a finite number, or null to leave the side open"


def _num(v, error: GatingError | None) -> float | None:
    """A bound: null, or a finite number (YAML 1.1 reads ``2e4`` as text; it is taken too).

    Anything else raises `error`, or (`error` None) gives None.
    """
    if v is None:
        return None
    try:
        if isinstance(v, bool):
            raise ValueError
        x = float(v)
        if not math.isfinite(x):
            raise ValueError
    except (TypeError, ValueError):
        if error is None:
            return None
        raise error from None
    return x
