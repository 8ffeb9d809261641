"""Turning a parsed YAML strategy (with line marks) into gates; see `cytokit.gating.yamlfmt.reader`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.adaptive.valley import quadrant_signs
from cytokit.gating.gates import FCS, UNCOMPENSATED, Dimension, Gate, SpectrumMatrix
from cytokit.gating.limits import MAX_DEPTH, MAX_PATH_LENGTH, MAX_POPULATIONS, shorten
from cytokit.gating.transforms import TRANSFORM_TYPES, RatioTransform, transform_from_config
from cytokit.gating.yamlfmt.shapes import (
    COMMON_KEYS,
    SHAPE_KEYS,
    TOP_KEYS,
    Shapes,
    is_map,
    is_seq,
    line_of,
    suggest,
)

#: Characters of a panel pattern; a strategy needs exact channel names.
PANEL_PATTERN = re.compile(r"[*?\[\](){}|^$\\]")
_SCATTER = re.compile(r"^(fsc|ssc|fs|ss|bssc|vssc)\b|^(time|hdr-t)$", re.IGNORECASE)
_ABSENT = object()
_GIVEN = "the transform given (transform=, the study's [transform] for a study)"


@dataclass(frozen=True)
class TransformTable:
    """A transform table as read (the file's ``transform:`` or the ``transform=`` option).

    ``default`` is the transform of fluorescence dimensions (None: none);
    ``stated`` says whether the table gives one at all (a table of per-marker
    sub-tables only does not); ``named`` maps a marker or channel to its own.
    """

    default: Any
    named: dict
    stated: bool

    def pick(self, names: tuple[str, ...], scatter: bool, label: str = "transform:"):
        """The transform this table gives a dimension, or `_ABSENT`.

        `names` are every name the file knows the dimension's channel by: the
        name the gate uses, the channel the panel maps it to and the panel's
        other markers of that channel. An override keyed by any of them applies,
        so it follows the channel whichever name a gate uses; two keys of one
        channel with different transforms are refused.
        """
        hits = [(n, self.named[n]) for n in dict.fromkeys(names) if n in self.named]
        for key, xf in hits[1:]:
            if xf != hits[0][1]:
                first, first_xf = hits[0]
                raise GatingError(
                    f"{label} overrides {first} ({_show(first_xf)}) and {key} ({_show(xf)}), "
                    f"two names of one channel ({names[1]}); gate positions are in the units "
                    "of one transform, keep one of the two overrides"
                )
        if hits:
            return hits[0][1]
        if scatter or not self.stated:
            return _ABSENT
        return self.default

    def unlinked(self, names: tuple[str, ...], linked) -> tuple[tuple[str, Any], ...]:
        """Overrides keyed by a name that is not among `names` and that the panel does not
        tie to a channel (not in `linked`): each sample may still make it this channel."""
        return tuple((k, t) for k, t in self.named.items() if k not in names and k not in linked)


def transform_table(table, where: str) -> TransformTable:
    """The `TransformTable` of a transform type name or table (see `TransformTable`)."""
    if isinstance(table, str) or table is None:
        return TransformTable(_transform(table, where), {}, True)
    if not is_map(table):
        raise GatingError(f"{where}: a transform is a type name or a table, got {table!r}")
    own = {k: v for k, v in table.items() if not is_map(v)}
    per = {str(k): _transform(v, f"{where}, {k}") for k, v in table.items() if is_map(v)}
    return TransformTable(_transform(own, where) if own else None, per, bool(own))


def _transform(spec, where: str):
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "none"):
        return None
    if isinstance(spec, str):
        spec = {"type": spec}
    if not is_map(spec):
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


class Reader(Shapes):
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
        self.depth: dict[str, int] = {}  # population id -> level in the tree

    def err(self, line: int, msg: str) -> GatingError:
        where = f", line {line}" if line else ""
        return GatingError(f"{self.path}{where}: {msg}")

    # -- the document ------------------------------------------------------------------
    def read(self, doc):
        for k in doc:
            if k not in TOP_KEYS:
                raise self.err(
                    line_of(doc, k),
                    f"unknown top-level key {k!r}{suggest(k, TOP_KEYS)}; use {', '.join(TOP_KEYS)}",
                )
        name = str(doc.get("name") or "")
        where = f"{self.path}, line {line_of(doc, 'transform')}"
        self.file_transform = (
            transform_table(doc["transform"], where) if "transform" in doc else None
        )
        if "panel" in doc:
            self.panel = self._file_panel(doc["panel"], line_of(doc, "panel"))
        self.default_comp, self.named_comp = self._compensations(doc)
        matrices = self._matrices(doc.get("matrices"), line_of(doc, "matrices"))
        self.matrix_ids = set(matrices)
        gates = doc.get("gates")
        if not is_seq(gates) or not gates:
            raise self.err(
                line_of(doc, "gates") or line_of(doc),
                "'gates' must be a non-empty list of gates (each item starts with '- name:')",
            )
        pending = []
        for i, node in enumerate(gates):
            node = self._gate_node(node, line_of(gates, i))
            if "parent" in node:
                pending.append((node, line_of(gates, i)))
            else:
                self._register(node, line_of(gates, i), "", None)
        placed = []
        while pending:
            left = []
            for node, line in pending:
                pid = self._lookup(str(node["parent"]), "", line_of(node, "parent"))
                if pid is None:
                    left.append((node, line))
                else:
                    self._register(node, line, self.id_path[pid], pid)
                    placed.append(node)
            if len(left) == len(pending):
                node, line = left[0]
                self._parent_cycle(left)
                raise self.err(
                    line_of(node, "parent"),
                    f"parent {node['parent']!r} is not a population of this file"
                    f"{suggest(node['parent'], self.pops)}; give its path (/A/B) or its name",
                )
            pending = left
        for node in placed:  # a population registered later may have made a reference ambiguous
            self._lookup(str(node["parent"]), "", line_of(node, "parent"))
        return [self._build(item) for item in self.items], matrices, name

    def _file_panel(self, node, line) -> dict[str, str]:
        """The file's ``panel:`` merged with the panel given; a marker both name must agree."""
        if not is_map(node):
            raise self.err(line, "panel is a table marker → channel, e.g. {CD3: APC-A}")
        merged = dict(self.panel)
        for marker, channel in node.items():
            ln = line_of(node, marker)
            if not isinstance(channel, str) or not channel or PANEL_PATTERN.search(channel):
                raise self.err(
                    ln,
                    f"panel: {marker} = {channel!r} must be the exact $PnN or $PnS name of "
                    "the marker's channel",
                )
            given = self.panel.get(str(marker))
            if given is not None and given != channel:
                raise self.err(
                    ln,
                    f"panel: maps {marker} to {channel!r} but the panel given (panel=, the "
                    f"study's [panel] for a study) maps it to {given!r}; make them the same",
                )
            merged[str(marker)] = channel
        return merged

    def _parent_cycle(self, waiting) -> None:
        """Raise if the parent: references of gates that wait for their parent go round."""
        by_name = {}
        for node, _ in waiting:
            for name in self._quadrant_names(node, 0)["names"] if "quadrants" in node else []:
                by_name.setdefault(name, node)
            if node.get("name") is not None:
                by_name.setdefault(str(node["name"]), node)
        for start, _ in waiting:
            trail, node = [], start
            while node is not None and all(node is not n for n in trail):
                trail.append(node)
                node = by_name.get(str(node["parent"]))
            if node is not None:
                loop = [*trail[next(i for i, n in enumerate(trail) if n is node) :], node]
                names = [str(n.get("name") or n.get("id") or "quadrants") for n in loop]
                raise self.err(
                    line_of(node, "parent"),
                    "the parent: references go round in a cycle: "
                    + " → ".join(shorten(n, 40) for n in names[:10])
                    + (f" → … ({len(names) - 10:,} more)" if len(names) > 10 else ""),
                )

    def _compensations(self, doc):
        comp = doc.get("compensation", _ABSENT)
        default = self.option_compensation or FCS
        if comp is _ABSENT:
            return default, {}
        if isinstance(comp, str):
            return comp, {}
        if is_map(comp):
            return default, {str(k): str(v) for k, v in comp.items()}
        raise self.err(
            line_of(doc, "compensation"),
            f"compensation must be FCS, uncompensated, a matrix id or a table by channel; got {comp!r}",
        )

    def _matrices(self, node, line) -> dict[str, SpectrumMatrix]:
        if node is None:
            return {}
        if not is_map(node):
            raise self.err(
                line, "matrices must be a table: id → {fluorochromes, detectors, matrix}"
            )
        out = {}
        for mid, spec in node.items():
            ln = line_of(node, mid)
            if not is_map(spec) or set(spec) != {"fluorochromes", "detectors", "matrix"}:
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
        if not is_map(node):
            raise self.err(line, f"a gate is a table (name: ..., and a shape), got {node!r}")
        shapes = [k for k in node if k in SHAPE_KEYS]
        if len(shapes) != 1:
            found = ", ".join(shapes) if shapes else "none"
            raise self.err(
                line,
                f"a gate needs exactly one shape key of {', '.join(SHAPE_KEYS)}; found {found}",
            )
        allowed = (*COMMON_KEYS, shapes[0], *SHAPE_KEYS[shapes[0]])
        for k in node:
            if k not in allowed:
                raise self.err(
                    line_of(node, k),
                    f"{shapes[0]} gate: unknown key {k!r}{suggest(k, allowed)}; it takes "
                    + ", ".join(allowed),
                )
        if shapes[0] != "quadrants" and not node.get("name"):
            raise self.err(line, f"{shapes[0]} gate has no name; add name: <population name>")
        return node

    # -- populations --------------------------------------------------------------------
    def _add_pop(self, name: str, path: str, pid: str, line: int, depth: int) -> None:
        # the bounds GatingStrategy enforces, checked before a deep or long tree builds
        # path after path (each repeats its ancestors)
        if len(path) > MAX_PATH_LENGTH:
            raise self.err(
                line,
                f"population {shorten(path)!r} has a path of {len(path):,} characters; cytokit "
                f"reads paths of at most {MAX_PATH_LENGTH:,}: shorten the gate names",
            )
        if len(self.pops) >= MAX_POPULATIONS:
            raise self.err(
                line,
                f"more than {MAX_POPULATIONS:,} populations; cytokit reads strategies of at most "
                f"{MAX_POPULATIONS:,} populations (a quadrant counts as one), far above any real one",
            )
        self.depth[pid] = depth
        if path in self.pops:
            raise self.err(line, f"population {path!r} is defined twice; rename one")
        if "/" in name:
            raise self.err(line, f"name {name!r} contains '/', which separates path parts")
        self.pops[path] = pid
        self.id_path[pid] = path
        self.by_name.setdefault(name, []).append(path)

    def _register(self, node, line, parent_path: str, parent_id: str | None) -> None:
        depth = 1 if parent_id is None else self.depth[parent_id] + 1
        if depth > MAX_DEPTH:
            raise self.err(
                line,
                f"this gate is at level {depth} of the tree; cytokit reads gate trees of at most "
                f"{MAX_DEPTH} levels, far above any real one: check the parent references",
            )
        item = _Item(node, line, parent_path, parent_id)
        self.items.append(item)
        if "quadrants" in node:
            names = self._quadrant_names(node, line)
            label = str(node.get("name") or "×".join(names["dims"]))
            item.gate_id = str(node.get("id") or f"{parent_path}/[{label}]")
            for q in names["names"]:
                path = f"{parent_path}/{q}"
                item.paths[q], item.ids[q] = path, path
                self._add_pop(q, path, path, line, depth)
            kids = node.get("gates")
            if kids is None:
                return
            if not is_map(kids):
                raise self.err(
                    line_of(node, "gates"),
                    "a quadrant gate's gates is a table from quadrant name to a list of gates, "
                    f"e.g. {names['names'][0]}: [...]",
                )
            for q, lst in kids.items():
                if q not in item.ids:
                    raise self.err(
                        line_of(kids, q),
                        f"{q!r} is not one of this gate's quadrants ({', '.join(item.ids)})"
                        f"{suggest(q, item.ids)}",
                    )
                self._children(lst, line_of(kids, q), item.paths[q], item.ids[q])
            return
        name = str(node["name"])
        path = f"{parent_path}/{name}"
        item.gate_id = str(node.get("id") or path)
        item.paths[name], item.ids[name] = path, item.gate_id
        self._add_pop(name, path, item.gate_id, line, depth)
        if "gates" in node:
            self._children(node["gates"], line_of(node, "gates"), path, item.gate_id)

    def _children(self, lst, line, path, pid) -> None:
        if not is_seq(lst):
            raise self.err(line, "gates must be a list of gates (each item starts with '- ')")
        for i, child in enumerate(lst):
            child = self._gate_node(child, line_of(lst, i))
            if "parent" in child:
                raise self.err(
                    line_of(child, "parent"),
                    "a nested gate's parent is the gate it is nested in; remove parent: "
                    "or move the gate to the top-level list",
                )
            self._register(child, line_of(lst, i), path, pid)

    def _lookup(self, ref: str, base: str, line: int = 0) -> str | None:
        """Id of the population `ref` names (id, path, relative path or unique name).

        A reference that is one population's id and another's path or name is
        refused as ambiguous, in the words the study's checks use.
        """
        other, how = self._by_path_or_name(ref, base)
        if ref not in self.id_path:
            return other
        found = {ref: "id"}
        if other is not None:
            found.setdefault(other, how)
        for path in self.by_name.get(ref, []):
            found.setdefault(self.pops[path], "name")
        if len(found) > 1:
            raise self.err(
                line,
                f"{ref!r} names {len(found)} populations of this file: "
                + "; ".join(f"{self.id_path[p]} (by its {how})" for p, how in found.items())
                + "; give the full path of the one you mean",
            )
        return ref

    def _by_path_or_name(self, ref: str, base: str) -> tuple[str | None, str]:
        """(id, ``path`` or ``name``) of the population `ref` names other than by id."""
        if ref.startswith("/"):
            return self.pops.get(ref), "path"
        b = base
        while True:
            hit = self.pops.get(f"{b}/{ref}")
            if hit is not None:
                return hit, "path"
            if not b:
                break
            b = b.rsplit("/", 1)[0]
        paths = self.by_name.get(ref, [])
        return (self.pops[paths[0]] if len(paths) == 1 else None), "name"

    def _ref(self, ref, base: str, line: int) -> str:
        if not isinstance(ref, str) or not ref:
            raise self.err(line, f"a reference is a population name or path, got {ref!r}")
        pid = self._lookup(ref, base, line)
        if pid is None:
            many = self.by_name.get(ref, [])
            hint = (
                f"; several populations are called {ref!r} ({', '.join(many)}), give the path"
                if len(many) > 1
                else suggest(ref, list(self.pops) + list(self.by_name))
            )
            raise self.err(line, f"no population {ref!r} in this file{hint}")
        return pid

    # -- dimensions ---------------------------------------------------------------------
    def _dim(self, spec, node, line: int) -> tuple[str, Dimension]:
        """(name as written, Dimension) of a dimension spec in gate `node`."""
        own_t = own_c = _ABSENT
        ratio = None
        if is_map(spec):
            keys = set(spec)
            if "ratio" in spec:
                bad = keys - {"ratio", "name", "A", "B", "C", "transform", "compensation"}
                r = spec["ratio"]
                if bad or not (is_seq(r) and len(r) == 2):
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
        aliases = ()
        if own_t is not _ABSENT:
            xf = _transform(own_t, where)
        else:
            gate_t = self._for(node.get("transform", _ABSENT), name, channel)
            if gate_t is not _ABSENT:
                xf = _transform(gate_t, where)
            else:
                xf, aliases = self._level_transform(name, channel, scatter, node, line)
        if ratio is not None:
            aliases = ()
        try:
            return name, Dimension(channel, comp, xf, ratio, aliases)
        except GatingError as exc:
            raise self.err(line, str(exc)) from None

    def _level_transform(self, name: str, channel: str, scatter: bool, node, line: int):
        """The transform of a dimension the gate does not set: the file's, else the option's,
        with the overrides each sample's channels must check (see `Dimension`).

        Both may give one only if they agree: the gate positions were written for
        one scale, and picking either silently would move them.
        """
        names = (name, channel, *(m for m, c in self.panel.items() if c == channel))
        tables = [t for t in (self.file_transform, self.option_transform) if t is not None]
        try:
            mine = self.file_transform.pick(names, scatter) if self.file_transform else _ABSENT
            given = (
                self.option_transform.pick(names, scatter, _GIVEN)
                if self.option_transform
                else _ABSENT
            )
        except GatingError as exc:
            raise self.err(line, str(exc)) from None
        aliases = tuple(dict.fromkeys(a for t in tables for a in t.unlinked(names, self.panel)))
        gate = f"gate {node.get('name') or 'quadrants'!r}"
        if mine is not _ABSENT and given is not _ABSENT and mine != given:
            raise self.err(
                line,
                f"{gate} reads {name} as {_show(mine)} (the file's transform:) but the "
                f"transform given (transform=, the study's [transform] for a study) makes it "
                f"{_show(given)}; gate positions are in the units of one transform. Make the "
                "two the same, or remove transform: from the file to use the one given",
            )
        if mine is not _ABSENT:
            return mine, aliases
        if given is not _ABSENT:
            return given, aliases
        if scatter:
            return None, aliases
        raise self.err(
            line,
            f"{gate} reads {name}, a fluorescence dimension, but no transform is stated for "
            "it, and gate positions of fluorescence are on a transformed scale. Add one at "
            "the top of the file (transform: {type: logicle, T: 262144, W: 0.5, M: 4.5, "
            "A: 0}, the form of study.toml's [transform]; transform: none when the positions "
            "are compensated scale values), or pass the study's (cytokit gate --study DIR; "
            "load_strategy(..., transform=))",
        )

    def _for(self, value, name: str, channel: str):
        """A gate-level setting for one dimension: one value, or a table by dimension."""
        if value is _ABSENT:
            return _ABSENT
        if is_map(value) and ("type" not in value):
            return value.get(name, value.get(channel, _ABSENT))
        return value

    def _dims(self, specs, node, key) -> list[tuple[str, Dimension]]:
        line = line_of(node, key)
        if isinstance(specs, str) or is_map(specs):
            specs = [specs]
        if not is_seq(specs) or not specs:
            raise self.err(line, f"{key}: give the dimensions as a list, e.g. [FSC-A, SSC-A]")
        return [self._dim(s, node, line) for s in specs]

    # -- gates --------------------------------------------------------------------------
    def _build(self, item: _Item) -> Gate:
        node = item.node
        shape = next(k for k in node if k in SHAPE_KEYS)
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

    def _quadrant_names(self, node, line) -> dict:
        spec = node["quadrants"]
        if not is_map(spec) or not spec:
            raise self.err(
                line_of(node, "quadrants"),
                "quadrants is a table by dimension: {CD3: auto, CD56: 0.45} (a number fixes "
                "a divider; auto or a table of valley settings places it per sample)",
            )
        dnames = [str(k) for k in spec]
        if len(dnames) >= MAX_POPULATIONS.bit_length():  # 2**n quadrants
            raise self.err(
                line_of(node, "quadrants"),
                f"{len(dnames)} dimensions make 2^{len(dnames)} quadrants; cytokit reads "
                f"strategies of at most {MAX_POPULATIONS:,} populations",
            )
        default = ["".join(f"{d}{s}" for d, s in zip(dnames, sign, strict=True))
                   for sign in quadrant_signs(len(dnames))]  # fmt: skip
        renames = node.get("names") or {}
        if not is_map(renames):
            raise self.err(line_of(node, "names"), "names is a table: {CD56+: CD56bright}")
        for k in renames:
            if k not in default:
                raise self.err(
                    line_of(renames, k),
                    f"names: {k!r} is not a quadrant of this gate ({', '.join(default)})"
                    f"{suggest(k, default)}",
                )
        return {"dims": dnames, "names": [str(renames.get(q, q)) for q in default]}


def _show(transform) -> str:
    return "no transform" if transform is None else repr(transform)
