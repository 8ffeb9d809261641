"""Turning a parsed YAML strategy (with line marks) into gates; see `cytokit.gating.yamlfmt`."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.adaptive_scatter import ClusterGate, SingletGate
from cytokit.gating.adaptive_valley import (
    Valley,
    ValleyGate,
    ValleyQuadrantGate,
    check_split_by,
    quadrant_gate,
    quadrant_layout,
    quadrant_signs,
)
from cytokit.gating.gates import (
    FCS,
    UNCOMPENSATED,
    BooleanGate,
    Dimension,
    EllipsoidGate,
    Gate,
    PolygonGate,
    RectangleGate,
    SpectrumMatrix,
)
from cytokit.gating.transforms import TRANSFORM_TYPES, RatioTransform, transform_from_config

_TOP = ("name", "gates", "transform", "compensation", "matrices")
_COMMON = ("name", "id", "gates", "parent", "transform", "compensation")
_VALLEY = ("between", "fallback", "single", "spread", "smooth", "min_peak", "max_valley")
_VALLEY += ("min_events",)
_SHAPES = {
    "range": (),
    "rectangle": (),
    "polygon": ("vertices",),
    "ellipse": ("mean", "covariance", "distance_square", "center", "axes", "angle"),
    "quadrants": ("names",),
    "and": (),
    "or": (),
    "not": (),
    "threshold": ("keep", "slopes", "n_slopes", *_VALLEY),
    "singlets": ("width", "ratio", "fallback", "min_events"),
    "cluster": ("near", "distance", "core", "within", "scale", "fallback", "min_events"),
}
_SHAPES["cluster"] += ("fit_events",)
_SCATTER = re.compile(r"^(fsc|ssc|fs|ss|bssc|vssc)\b|^(time|hdr-t)$", re.IGNORECASE)
_ABSENT = object()


def _is_map(x) -> bool:
    return isinstance(x, Mapping)


def _is_seq(x) -> bool:
    return isinstance(x, list)


def _line(node, key=None) -> int:
    f = getattr(node, "line", None)
    return f(key) if f is not None else 0


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def transform_table(table, where: str):
    """(default Transform or None, {marker or channel: Transform or None}) of a transform table."""
    if isinstance(table, str) or table is None:
        return _transform(table, where), {}
    if not _is_map(table):
        raise GatingError(f"{where}: a transform is a type name or a table, got {table!r}")
    own = {k: v for k, v in table.items() if not _is_map(v)}
    per = {str(k): _transform(v, f"{where}, {k}") for k, v in table.items() if _is_map(v)}
    return (_transform(own, where) if own else None), per


def _transform(spec, where: str):
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "none"):
        return None
    if isinstance(spec, str):
        spec = {"type": spec}
    if not _is_map(spec):
        raise GatingError(
            f"{where}: a transform is a type ({', '.join(TRANSFORM_TYPES)} or none) or a "
            f"table with a type, got {spec!r}"
        )
    return transform_from_config(dict(spec), where)


@dataclass
class _Item:
    node: Any
    line: int
    parent_path: str  # "" at the top
    parent_id: str | None
    ids: dict = field(default_factory=dict)  # population name -> id (one, or the quadrants)
    paths: dict = field(default_factory=dict)  # population name -> path
    gate_id: str = ""


class Reader:
    """One file's worth of state: panel, defaults, populations found so far."""

    def __init__(self, path: str, panel, option_transform, option_compensation) -> None:
        self.path = path
        self.panel = panel
        self.option_transform = option_transform
        self.option_compensation = option_compensation
        self.items: list[_Item] = []
        self.pops: dict[str, str] = {}  # path -> id
        self.by_name: dict[str, list[str]] = {}
        self.id_path: dict[str, str] = {}

    def err(self, line: int, msg: str) -> GatingError:
        where = f", line {line}" if line else ""
        return GatingError(f"{self.path}{where}: {msg}")

    # -- the document ------------------------------------------------------------------
    def read(self, doc):
        for k in doc:
            if k not in _TOP:
                raise self.err(
                    _line(doc, k),
                    f"unknown top-level key {k!r}{_suggest(k, _TOP)}; use {', '.join(_TOP)}",
                )
        name = str(doc.get("name") or "")
        where = f"{self.path}, line {_line(doc, 'transform')}"
        if "transform" in doc:
            self.default_transform, self.named_transform = transform_table(doc["transform"], where)
        else:
            self.default_transform, self.named_transform = self.option_transform or (None, {})
        self.default_comp, self.named_comp = self._compensations(doc)
        matrices = self._matrices(doc.get("matrices"), _line(doc, "matrices"))
        self.matrix_ids = set(matrices)
        gates = doc.get("gates")
        if not _is_seq(gates) or not gates:
            raise self.err(
                _line(doc, "gates") or _line(doc),
                "'gates' must be a non-empty list of gates (each item starts with '- name:')",
            )
        pending = []
        for i, node in enumerate(gates):
            node = self._gate_node(node, _line(gates, i))
            if "parent" in node:
                pending.append((node, _line(gates, i)))
            else:
                self._register(node, _line(gates, i), "", None)
        while pending:
            left = []
            for node, line in pending:
                pid = self._lookup(str(node["parent"]), "")
                if pid is None:
                    left.append((node, line))
                else:
                    self._register(node, line, self.id_path[pid], pid)
            if len(left) == len(pending):
                node, line = left[0]
                raise self.err(
                    _line(node, "parent"),
                    f"parent {node['parent']!r} is not a population of this file"
                    f"{_suggest(node['parent'], self.pops)}; give its path (/A/B) or its name",
                )
            pending = left
        return [self._build(item) for item in self.items], matrices, name

    def _compensations(self, doc):
        comp = doc.get("compensation", _ABSENT)
        default = self.option_compensation or FCS
        if comp is _ABSENT:
            return default, {}
        if isinstance(comp, str):
            return comp, {}
        if _is_map(comp):
            return default, {str(k): str(v) for k, v in comp.items()}
        raise self.err(
            _line(doc, "compensation"),
            f"compensation must be FCS, uncompensated, a matrix id or a table by channel; got {comp!r}",
        )

    def _matrices(self, node, line) -> dict[str, SpectrumMatrix]:
        if node is None:
            return {}
        if not _is_map(node):
            raise self.err(
                line, "matrices must be a table: id → {fluorochromes, detectors, matrix}"
            )
        out = {}
        for mid, spec in node.items():
            ln = _line(node, mid)
            if not _is_map(spec) or set(spec) != {"fluorochromes", "detectors", "matrix"}:
                raise self.err(
                    ln, f"matrix {mid!r} needs exactly fluorochromes, detectors and matrix"
                )
            try:
                m = np.array(spec["matrix"], dtype=np.float64)
                out[str(mid)] = SpectrumMatrix(
                    str(mid),
                    tuple(map(str, spec["fluorochromes"])),
                    tuple(map(str, spec["detectors"])),
                    m,
                )
            except (TypeError, ValueError, GatingError) as exc:
                raise self.err(ln, f"matrix {mid!r}: {exc}") from None
        return out

    def _gate_node(self, node, line):
        if not _is_map(node):
            raise self.err(line, f"a gate is a table (name: ..., and a shape), got {node!r}")
        shapes = [k for k in node if k in _SHAPES]
        if len(shapes) != 1:
            found = ", ".join(shapes) if shapes else "none"
            raise self.err(
                line,
                f"a gate needs exactly one shape key of {', '.join(_SHAPES)}; found {found}",
            )
        allowed = (*_COMMON, shapes[0], *_SHAPES[shapes[0]])
        for k in node:
            if k not in allowed:
                raise self.err(
                    _line(node, k),
                    f"{shapes[0]} gate: unknown key {k!r}{_suggest(k, allowed)}; it takes "
                    + ", ".join(allowed),
                )
        if shapes[0] != "quadrants" and not node.get("name"):
            raise self.err(line, f"{shapes[0]} gate has no name; add name: <population name>")
        return node

    # -- populations --------------------------------------------------------------------
    def _add_pop(self, name: str, path: str, pid: str, line: int) -> None:
        if path in self.pops:
            raise self.err(line, f"population {path!r} is defined twice; rename one")
        if "/" in name:
            raise self.err(line, f"name {name!r} contains '/', which separates path parts")
        self.pops[path] = pid
        self.id_path[pid] = path
        self.by_name.setdefault(name, []).append(path)

    def _register(self, node, line, parent_path: str, parent_id: str | None) -> None:
        item = _Item(node, line, parent_path, parent_id)
        self.items.append(item)
        if "quadrants" in node:
            names = self._quadrant_names(node, line)
            label = str(node.get("name") or "×".join(names["dims"]))
            item.gate_id = str(node.get("id") or f"{parent_path}/[{label}]")
            for q in names["names"]:
                path = f"{parent_path}/{q}"
                item.paths[q], item.ids[q] = path, path
                self._add_pop(q, path, path, line)
            kids = node.get("gates")
            if kids is None:
                return
            if not _is_map(kids):
                raise self.err(
                    _line(node, "gates"),
                    "a quadrant gate's gates is a table from quadrant name to a list of gates, "
                    f"e.g. {names['names'][0]}: [...]",
                )
            for q, lst in kids.items():
                if q not in item.ids:
                    raise self.err(
                        _line(kids, q),
                        f"{q!r} is not one of this gate's quadrants ({', '.join(item.ids)})"
                        f"{_suggest(q, item.ids)}",
                    )
                self._children(lst, _line(kids, q), item.paths[q], item.ids[q])
            return
        name = str(node["name"])
        path = f"{parent_path}/{name}"
        item.gate_id = str(node.get("id") or path)
        item.paths[name], item.ids[name] = path, item.gate_id
        self._add_pop(name, path, item.gate_id, line)
        if "gates" in node:
            self._children(node["gates"], _line(node, "gates"), path, item.gate_id)

    def _children(self, lst, line, path, pid) -> None:
        if not _is_seq(lst):
            raise self.err(line, "gates must be a list of gates (each item starts with '- ')")
        for i, child in enumerate(lst):
            child = self._gate_node(child, _line(lst, i))
            if "parent" in child:
                raise self.err(
                    _line(child, "parent"),
                    "a nested gate's parent is the gate it is nested in; remove parent: "
                    "or move the gate to the top-level list",
                )
            self._register(child, _line(lst, i), path, pid)

    def _lookup(self, ref: str, base: str) -> str | None:
        """Id of the population `ref` names (id, path, relative path or unique name)."""
        if ref in self.id_path:
            return ref
        if ref.startswith("/"):
            return self.pops.get(ref)
        b = base
        while True:
            hit = self.pops.get(f"{b}/{ref}")
            if hit is not None:
                return hit
            if not b:
                break
            b = b.rsplit("/", 1)[0]
        paths = self.by_name.get(ref, [])
        return self.pops[paths[0]] if len(paths) == 1 else None

    def _ref(self, ref, base: str, line: int) -> str:
        if not isinstance(ref, str) or not ref:
            raise self.err(line, f"a reference is a population name or path, got {ref!r}")
        pid = self._lookup(ref, base)
        if pid is None:
            many = self.by_name.get(ref, [])
            hint = (
                f"; several populations are called {ref!r} ({', '.join(many)}), give the path"
                if len(many) > 1
                else _suggest(ref, list(self.pops) + list(self.by_name))
            )
            raise self.err(line, f"no population {ref!r} in this file{hint}")
        return pid

    # -- dimensions ---------------------------------------------------------------------
    def _dim(self, spec, node, line: int) -> tuple[str, Dimension]:
        """(name as written, Dimension) of a dimension spec in gate `node`."""
        own_t = own_c = _ABSENT
        ratio = None
        if _is_map(spec):
            keys = set(spec)
            if "ratio" in spec:
                bad = keys - {"ratio", "name", "A", "B", "C", "transform", "compensation"}
                r = spec["ratio"]
                if bad or not (_is_seq(r) and len(r) == 2):
                    raise self.err(
                        line,
                        "a ratio dimension is {ratio: [numerator, denominator], name:, A:, B:, C:}",
                    )
                num, den = (self.panel.get(str(x), str(x)) for x in r)
                try:
                    ratio = RatioTransform(
                        num,
                        den,
                        *(float(spec.get(k, d)) for k, d in (("A", 1), ("B", 0), ("C", 0))),
                    )
                except (TypeError, ValueError):
                    raise self.err(line, "ratio A, B and C must be numbers") from None
                name = str(spec.get("name") or f"{r[0]}/{r[1]}")
                channel = name
            else:
                if "channel" not in spec or keys - {"channel", "transform", "compensation"}:
                    raise self.err(
                        line,
                        "a dimension table is {channel: <marker or $PnN>, transform: ..., "
                        f"compensation: ...}}; got keys {sorted(map(str, keys))}",
                    )
                name = str(spec["channel"])
                channel = self.panel.get(name, name)
            own_t = spec.get("transform", _ABSENT)
            own_c = spec.get("compensation", _ABSENT)
        elif isinstance(spec, str) and spec:
            name = spec
            channel = self.panel.get(name, name)
        else:
            raise self.err(line, f"a dimension is a marker or channel name, got {spec!r}")
        scatter = name not in self.panel and bool(
            _SCATTER.match(channel) or (ratio and _SCATTER.match(ratio.numerator))
        )
        comp = own_c
        if comp is _ABSENT:
            comp = self._for(node.get("compensation", _ABSENT), name, channel)
        if comp is _ABSENT:
            comp = self.named_comp.get(name, self.named_comp.get(channel, _ABSENT))
        if comp is _ABSENT:
            comp = UNCOMPENSATED if scatter else self.default_comp
        comp = str(comp)
        if comp.lower() in ("none", UNCOMPENSATED):
            comp = UNCOMPENSATED
        elif comp.lower() == "fcs":
            comp = FCS
        elif comp not in self.matrix_ids:
            raise self.err(
                line,
                f"compensation {comp!r} of {name}: use FCS, uncompensated or a matrix defined "
                "under matrices",
            )
        where = f"{self.path}, line {line}"
        if own_t is not _ABSENT:
            xf = _transform(own_t, where)
        else:
            gate_t = self._for(node.get("transform", _ABSENT), name, channel)
            if gate_t is not _ABSENT:
                xf = _transform(gate_t, where)
            elif name in self.named_transform or channel in self.named_transform:
                xf = self.named_transform.get(name, self.named_transform.get(channel))
            else:
                xf = None if scatter else self.default_transform
        try:
            return name, Dimension(channel, comp, xf, ratio)
        except GatingError as exc:
            raise self.err(line, str(exc)) from None

    def _for(self, value, name: str, channel: str):
        """A gate-level setting for one dimension: one value, or a table by dimension."""
        if value is _ABSENT:
            return _ABSENT
        if _is_map(value) and ("type" not in value):
            return value.get(name, value.get(channel, _ABSENT))
        return value

    def _dims(self, specs, node, key) -> list[tuple[str, Dimension]]:
        line = _line(node, key)
        if isinstance(specs, str) or _is_map(specs):
            specs = [specs]
        if not _is_seq(specs) or not specs:
            raise self.err(line, f"{key}: give the dimensions as a list, e.g. [FSC-A, SSC-A]")
        return [self._dim(s, node, line) for s in specs]

    # -- gates --------------------------------------------------------------------------
    def _build(self, item: _Item) -> Gate:
        node = item.node
        shape = next(k for k in node if k in _SHAPES)
        common = {"id": item.gate_id, "parent": item.parent_id}
        if shape != "quadrants":
            common["name"] = str(node["name"])
        try:
            return getattr(self, f"_g_{shape if shape != 'rectangle' else 'range'}")(
                node, common, item
            )
        except GatingError as exc:
            if str(exc).startswith(self.path):
                raise
            raise self.err(item.line, str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise self.err(item.line, f"{shape} gate {item.gate_id!r}: {exc}") from None

    def _g_range(self, node, common, item):
        key = "range" if "range" in node else "rectangle"
        spec = node[key]
        if not _is_map(spec) or not spec:
            raise self.err(
                _line(node, key), f"{key} is a table by dimension: {{CD3: [0.45, null]}}"
            )
        dims, lo, hi = [], [], []
        for dname, bounds in spec.items():
            ln = _line(spec, dname)
            if not (_is_seq(bounds) and len(bounds) == 2):
                raise self.err(ln, f"{dname}: bounds are [min, max] with null for open")
            dims.append(self._dim(dname, node, ln)[1])
            lo.append(_num(bounds[0], self.err(ln, f"{dname}: min {bounds[0]!r} is not a number")))
            hi.append(_num(bounds[1], self.err(ln, f"{dname}: max {bounds[1]!r} is not a number")))
        return RectangleGate(**common, dims=tuple(dims), min=tuple(lo), max=tuple(hi))

    def _g_polygon(self, node, common, item):
        dims = [d for _, d in self._dims(node["polygon"], node, "polygon")]
        v = node.get("vertices")
        if not _is_seq(v):
            raise self.err(item.line, "a polygon needs vertices: [[x, y], [x, y], ...]")
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
            ln = _line(spec, dname)
            dims.append(self._dim(dname, node, ln)[1])
            ref = setting.get("split_by") if _is_map(setting) else None
            k = None if ref is None else self._split_by(ref, names["dims"], dname, spec)
            split.append(k)
            if setting is None or setting == "auto":
                valleys.append(Valley())
                fixed.append(None)
            elif isinstance(setting, (int, float)) and not isinstance(setting, bool):
                valleys.append(Valley(fixed=float(setting)))
                fixed.append((float(setting),))
            elif _is_map(setting) and "at" in setting:
                fixed.append(self._at(setting, k is not None, dname, ln))
                valleys.append(Valley(fixed=fixed[-1][0]) if k is None else None)
            elif _is_map(setting):
                valleys.append(self._valley(setting, ln, ("split_by",)))
                fixed.append(None)
            else:
                raise self.err(
                    ln, f"{dname}: a divider is a number, auto, {{at: ...}} or a table of settings"
                )
        ids = tuple(item.ids[q] for q in names["names"])
        common = {**common, "id": item.gate_id, "name": item.gate_id}
        try:
            split = check_split_by(item.gate_id, split, len(dims))
        except GatingError as exc:
            raise self.err(_line(node, "quadrants"), str(exc)) from None
        if all(f is not None for f in fixed):
            dividers, quads = quadrant_layout(item.gate_id, dims, split, fixed, ids, names["names"])
            return quadrant_gate(**common, dividers=dividers, quadrants=quads)
        if any(v is None for v in valleys):
            raise self.err(
                _line(node, "quadrants"),
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
        vals = at if _is_seq(at) else [at]
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
                _line(spec, dname),
                f"{dname}: split_by {ref!r} must name another divider of this gate, e.g. "
                f"split_by: {others[0]}",
            )
        return dnames.index(ref)

    def _quadrant_names(self, node, line) -> dict:
        spec = node["quadrants"]
        if not _is_map(spec) or not spec:
            raise self.err(
                _line(node, "quadrants"),
                "quadrants is a table by dimension: {CD3: auto, CD56: 0.45} (a number fixes "
                "a divider; auto or a table of valley settings places it per sample)",
            )
        dnames = [str(k) for k in spec]
        default = ["".join(f"{d}{s}" for d, s in zip(dnames, sign, strict=True))
                   for sign in quadrant_signs(len(dnames))]  # fmt: skip
        renames = node.get("names") or {}
        if not _is_map(renames):
            raise self.err(_line(node, "names"), "names is a table: {CD56+: CD56bright}")
        for k in renames:
            if k not in default:
                raise self.err(
                    _line(renames, k),
                    f"names: {k!r} is not a quadrant of this gate ({', '.join(default)})"
                    f"{_suggest(k, default)}",
                )
        return {"dims": dnames, "names": [str(renames.get(q, q)) for q in default]}

    def _valley(self, spec, line, extra=()) -> Valley:
        for k in spec:
            if k not in (*_VALLEY, *extra):
                raise self.err(
                    _line(spec, k) or line,
                    f"unknown valley setting {k!r}{_suggest(k, _VALLEY)}; use "
                    + ", ".join((*_VALLEY, *extra)),
                )
        kw = {k: spec[k] for k in _VALLEY if k in spec}
        if "between" in kw and not (_is_seq(kw["between"]) and len(kw["between"]) == 2):
            raise self.err(_line(spec, "between") or line, "between is [low, high]")
        return Valley(**kw)

    def _g_threshold(self, node, common, item):
        dims = [d for _, d in self._dims(node["threshold"], node, "threshold")]
        kw = {k: node[k] for k in ("slopes", "n_slopes") if k in node}
        if len(dims) != 2 and kw:
            raise self.err(item.line, "slopes and n_slopes need two dimensions: [x, y]")
        if "slopes" in kw and not (_is_seq(kw["slopes"]) and len(kw["slopes"]) == 2):
            raise self.err(_line(node, "slopes"), "slopes is [low, high]")
        valley = self._valley({k: node[k] for k in _VALLEY if k in node}, item.line)
        keep = str(node.get("keep", "above"))
        return ValleyGate(**common, dims=tuple(dims), keep=keep, valley=valley, **kw)

    def _g_singlets(self, node, common, item):
        dims = [d for _, d in self._dims(node["singlets"], node, "singlets")]
        kw = {k: node[k] for k in ("width", "min_events") if k in node}
        for k in ("ratio", "fallback"):
            if k in node:
                if not (_is_seq(node[k]) and len(node[k]) == 2):
                    raise self.err(_line(node, k), f"{k} is [low, high] (FSC-H/FSC-A ratios)")
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
            kw["fallback"] = self._fixed_shape(node["fallback"], dims, _line(node, "fallback"))
        return ClusterGate(**common, dims=dims, **kw)

    def _fixed_shape(self, spec, dims, line) -> Gate:
        base = {"id": "fallback", "dims": dims}
        if _is_map(spec) and len(spec) == 1:
            (kind, v), = spec.items()  # fmt: skip
            if kind == "polygon" and _is_seq(v):
                return PolygonGate(**base, vertices=tuple(map(tuple, v)))
            if kind in ("range", "rectangle") and _is_seq(v) and len(v) == len(dims):
                return RectangleGate(**base, min=tuple(p[0] for p in v), max=tuple(p[1] for p in v))
            if kind == "ellipse" and _is_map(v):
                return EllipsoidGate(**base, **self._ellipse(v, len(dims), line))
        raise self.err(
            line,
            "fallback is one fixed shape on the same dimensions: {polygon: [[x, y], ...]}, "
            "{range: [[min, max], ...]} or {ellipse: {mean:, covariance:}}",
        )

    def _bool(self, node, common, item, op):
        refs = node[op]
        line = _line(node, op)
        if op == "not":
            refs = [refs]
        if not _is_seq(refs) or not refs:
            raise self.err(line, f"{op}: give a list of populations, e.g. {op}: [A, B]")
        ops, comp = [], []
        for r in refs:
            neg = _is_map(r) and set(r) == {"not"}
            ops.append(self._ref(r["not"] if neg else r, item.parent_path, line))
            comp.append(neg and op != "not")
        return BooleanGate(**common, op=op, operands=tuple(ops), complement=tuple(comp))

    def _g_and(self, node, common, item):
        return self._bool(node, common, item, "and")

    def _g_or(self, node, common, item):
        return self._bool(node, common, item, "or")

    def _g_not(self, node, common, item):
        return self._bool(node, common, item, "not")


def _num(v, error: GatingError) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise error
    try:
        return float(v)
    except (TypeError, ValueError):
        raise error from None
