"""Reading Gating-ML 2.0 documents into a `GatingStrategy`.

Gating-ML 2.0 (ISAC; Spidlen et al., Cytometry A 87:683, 2015) describes gates
(rectangle and range, polygon, ellipsoid, quadrant, Boolean), the scale
transformations their dimensions are read through (``flin``, ``flog``,
``fasinh``, ``logicle``, ``hyperlog``, and ``fratio`` which makes a new
dimension from two channels) and named spillover matrices
(``spectrumMatrix``). Every construct maps onto cytokit's value objects
(`cytokit.gating.gates`, `cytokit.gating.transforms`); there is no separate
evaluation.

The XML is parsed safely (`cytokit.gating.gatingml.xml.parse_xml`: no DTD, no
entities, nothing fetched), and every problem raises a `GatingError` that
names the file, the line, the element and what was expected.

Readings beyond the letter of the standard, each because a real producer
needs it:

* ``boundMin``/``boundMax`` on a transformation clamp its output. cytokit's
  dimensions have no clamp, so the clamp is folded exactly into the bounds of
  the rectangle (range) gates that read it; any other gate reading a clamping
  transformation raises `GatingError`.
* FlowJo 10's "export Gating-ML" leaves out the required
  ``gating:compensation-ref`` and names compensated channels ``Comp-<$PnN>``
  (FlowJo's "acquisition-defined" matrix, i.e. the file's own spillover).
  A dimension without ``compensation-ref`` is therefore read as
  ``compensation="FCS"`` on ``<$PnN>`` when its name starts with ``Comp-``,
  and as uncompensated otherwise.
* Divider values may be listed in any order (they are sorted).
* Names: Gating-ML gates only have ids (``xs:ID`` values); cytokit writes
  population names, its strategy name and any id it had to respell in
  ``data-type:custom_info`` and reads them back. Without them a population's
  name is its id.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cytokit.errors import GatingError, did_you_mean
from cytokit.gating.gates import (
    FCS,
    UNCOMPENSATED,
    BooleanGate,
    Dimension,
    Divider,
    EllipsoidGate,
    Gate,
    PolygonGate,
    Quadrant,
    QuadrantGate,
    RectangleGate,
    SpectrumMatrix,
)
from cytokit.gating.gatingml.xml import (
    CYTOKIT,
    DATATYPES,
    GATE_KINDS,
    GATING,
    PREFIXES,
    SCALE_TRANSFORMS,
    TRANSFORMS,
    UNBOUNDED,
    Element,
    attr,
    check_root,
    cytokit_children,
    cytokit_info,
    fold_clamp,
    parse_double,
    parse_xml,
    qname,
)
from cytokit.gating.limits import MAX_DEPTH, MAX_POPULATIONS, deepest, read_bounded, shorten
from cytokit.gating.strategy import GatingStrategy
from cytokit.gating.transforms import RatioTransform, Transform

__all__ = ["read_gatingml"]

_G, _T, _D, _C = (f"{{{ns}}}" for ns in (GATING, TRANSFORMS, DATATYPES, CYTOKIT))
_CUSTOM = _D + "custom_info"
_FCS_DIM, _NEW_DIM = _D + "fcs-dimension", _D + "new-dimension"
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}
_FLOWJO_COMP = "Comp-"


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        #: transformation id -> (element, Transform or RatioTransform, clamp (lo, hi), label)
        self.transforms: dict[str, tuple[Element, object, tuple[float, float], str]] = {}
        self.matrices: dict[str, SpectrumMatrix] = {}
        self.matrix_ids: dict[str, str] = {}  # document id -> matrix id
        self.defined: dict[str, Element] = {}  # gate and quadrant ids
        self.refs: list[tuple[Element, str, str]] = []  # (element, what, id)
        self.original: dict[str, str] = {}  # document id -> id cytokit wrote in custom_info

    def orig(self, ref: str) -> str:
        return self.original.get(ref, ref)

    # -- messages and attributes ------------------------------------------------------
    def fail(self, el: Element, msg: str) -> GatingError:
        ident = attr(el, GATING, "id") or attr(el, TRANSFORMS, "id")
        what = qname(el.tag) + (f' id="{ident}"' if ident else "")
        return GatingError(f"{self.path}, line {el.line}, <{what}>: {msg}")

    def required(self, el: Element, ns: str, name: str) -> str:
        v = attr(el, ns, name)
        if v is None or not v.strip():
            raise self.fail(el, f"missing attribute {PREFIXES[ns]}:{name}")
        return v.strip()

    def number(self, el: Element, ns: str, name: str, required: bool = True) -> float | None:
        raw = attr(el, ns, name)
        if raw is None:
            if required:
                raise self.fail(el, f"missing attribute {PREFIXES[ns]}:{name} (a number)")
            return None
        v = parse_double(raw)
        if v is None:
            raise self.fail(el, f"{PREFIXES[ns]}:{name}={raw!r} is not a number")
        return v

    def children(self, el: Element, allowed: tuple[str, ...]) -> list[Element]:
        """Child elements other than custom_info; anything not in `allowed` is an error."""
        out = []
        for c in el:
            if c.tag == _CUSTOM:
                continue
            if c.tag not in allowed:
                want = ", ".join(qname(t) for t in allowed) or "no child elements"
                raise self.fail(c, f"unexpected element inside <{qname(el.tag)}>; expected {want}")
            out.append(c)
        return out

    def one(self, el: Element, kids: list[Element], tag: str) -> Element:
        found = [c for c in kids if c.tag == tag]
        if len(found) != 1:
            raise self.fail(el, f"needs exactly one <{qname(tag)}>, found {len(found)}")
        return found[0]

    def values(self, el: Element, tag: str) -> list[float]:
        """The data-type:value of each <tag> child of `el` (the only children allowed)."""
        return [self.number(c, DATATYPES, "value") for c in self.children(el, (tag,))]

    # -- document ---------------------------------------------------------------------
    def read(self, root: Element, name: str | None) -> GatingStrategy:
        check_root(root, str(self.path))
        gate_els, xform_els, matrix_els = [], [], []
        for el in root:
            if el.tag == _CUSTOM:
                continue
            if el.tag.startswith(_G) and el.tag[len(_G) :] in GATE_KINDS:
                gate_els.append(el)
            elif el.tag == _T + "transformation":
                xform_els.append(el)
            elif el.tag == _T + "spectrumMatrix":
                matrix_els.append(el)
            else:
                raise self.fail(
                    el,
                    "unexpected element directly inside <gating:Gating-ML>; expected a gate ("
                    + ", ".join(f"gating:{k}" for k in GATE_KINDS)
                    + "), transforms:transformation, transforms:spectrumMatrix or "
                    "data-type:custom_info",
                )
        for el in gate_els:
            gid = attr(el, GATING, "id")
            meta = cytokit_info(el, "population")
            if gid and meta.get("id"):
                self.original[gid.strip()] = meta["id"]
            for m in cytokit_children(el, "quadrant"):
                if m.get("ref") and m.get("id"):
                    self.original[m.get("ref")] = m.get("id")
        # Transformations and matrices may be defined after the gates that use them.
        for el in matrix_els:
            self.spectrum_matrix(el)
        for el in xform_els:
            self.transformation(el)
        if not gate_els:
            raise GatingError(
                f"{self.path}: the Gating-ML document defines no gates (no "
                + ", ".join(f"gating:{k}" for k in GATE_KINDS)
                + ")"
            )
        # counted before any gate is built; GatingStrategy checks the same bound again
        n = sum(
            sum(1 for c in el if c.tag == _G + "Quadrant") if el.tag == _G + "QuadrantGate" else 1
            for el in gate_els
        )
        if n > MAX_POPULATIONS:
            raise GatingError(
                f"{self.path}: {n:,} populations; cytokit reads strategies of at most "
                f"{MAX_POPULATIONS:,} populations (a quadrant counts as one), far above any "
                "real one"
            )
        self.check_depth(gate_els)
        gates = [self.gate(el) for el in gate_els]
        for el, what, ref in self.refs:
            target = self.defined.get(ref)
            if target is not None and target.tag == _G + "QuadrantGate":
                quadrants = [attr(q, GATING, "id") for q in target.iter(_G + "Quadrant")]
                raise self.fail(
                    el,
                    f"{what}={ref!r} names a quadrant gate, which is not a population; name one "
                    f"of its quadrants ({', '.join(q for q in quadrants if q)})",
                )
            if target is None:
                known = sorted(self.defined)
                shown = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "")
                raise self.fail(
                    el,
                    f"unknown gate reference {what}={ref!r}: no gate or quadrant has that id"
                    f"{did_you_mean(ref, known)}; the document defines {shown}",
                )
        meta = cytokit_info(root, "strategy")
        title = name if name is not None else meta.get("name", "")
        try:
            # the document's own ids name its populations too (FlowKit knows them by those)
            pops = {pid for g in gates for pid in g.population_ids}
            aliases = {a: pid for a, pid in self.original.items() if pid in pops}
            return GatingStrategy(
                gates, matrices=self.matrices, name=title, source=str(self.path), aliases=aliases
            )
        except GatingError as exc:
            msg = str(exc).replace(f"strategy in {self.path}: ", "")
            raise GatingError(f"{self.path}: {msg}") from None

    def check_depth(self, gate_els: list[Element]) -> None:
        """Refuse a parent_id chain deeper than `MAX_DEPTH` before any gate is built."""
        parent_of: dict[str, str | None] = {}
        for el in gate_els:
            parent = (attr(el, GATING, "parent_id") or "").strip() or None
            for g in (el, *(c for c in el if c.tag == _G + "Quadrant")):
                gid = (attr(g, GATING, "id") or "").strip()
                if gid:
                    parent_of.setdefault(gid, parent)
        gid, depth = deepest(parent_of)
        if depth > MAX_DEPTH:
            raise GatingError(
                f"{self.path}: the gate tree is {depth:,} levels deep (at {shorten(gid)!r}); "
                f"cytokit reads trees of at most {MAX_DEPTH} levels, far above any real one: "
                "check the parent references"
            )

    # -- transformations and matrices -------------------------------------------------
    def transformation(self, el: Element) -> None:
        tid = self.required(el, TRANSFORMS, "id")
        if tid in self.transforms:
            first = self.transforms[tid][0].line
            raise self.fail(el, f"transformation id {tid!r} is already defined on line {first}")
        kids = [c for c in el if c.tag != _CUSTOM]
        kinds = [c.tag[len(_T) :] for c in kids if c.tag.startswith(_T)]
        if len(kids) != 1 or not kinds or kinds[0] not in (*SCALE_TRANSFORMS, "fratio"):
            raise self.fail(
                el,
                "needs exactly one of transforms:"
                + ", transforms:".join((*SCALE_TRANSFORMS, "fratio"))
                + f"; found {', '.join(qname(c.tag) for c in kids) or 'none'}",
            )
        (f,) = kids
        low = self.number(el, TRANSFORMS, "boundMin", required=False)
        high = self.number(el, TRANSFORMS, "boundMax", required=False)
        low = -math.inf if low is None else low
        high = math.inf if high is None else high
        if math.isnan(low) or math.isnan(high) or low > high:
            raise self.fail(
                el, f"boundMin={low!r} and boundMax={high!r}: need boundMin <= boundMax"
            )
        kind = kinds[0]
        if kind == "fratio":
            dims = self.children(f, (_FCS_DIM,))
            if len(dims) != 2:
                raise self.fail(
                    f,
                    f"needs two data-type:fcs-dimension (numerator, denominator), got {len(dims)}",
                )
            num, den = (self.required(d, DATATYPES, "name") for d in dims)
            abc = {k: self.number(f, TRANSFORMS, k) for k in "ABC"}
            if not all(math.isfinite(v) for v in abc.values()):
                raise self.fail(f, f"A, B and C must be finite, got {abc}")
            obj: object = RatioTransform(num, den, **abc)
            label = cytokit_info(f, "dimension").get("name") or tid
        else:
            cls, names = SCALE_TRANSFORMS[kind]
            self.children(f, ())
            params = {k: self.number(f, TRANSFORMS, k) for k in names}
            try:
                obj = cls(**params)
            except GatingError as exc:
                raise self.fail(f, str(exc)) from None
            label = tid
        self.transforms[tid] = (el, obj, (low, high), label)

    def spectrum_matrix(self, el: Element) -> None:
        mid = self.required(el, TRANSFORMS, "id")
        if mid in (FCS, UNCOMPENSATED):
            raise self.fail(el, f"id {mid!r} is reserved by Gating-ML; rename the matrix")
        if mid in self.matrix_ids:
            raise self.fail(el, f"spectrumMatrix id {mid!r} is defined twice")
        original = cytokit_info(el, "matrix").get("id") or mid
        kids = self.children(el, (_T + "fluorochromes", _T + "detectors", _T + "spectrum"))
        fluor = [
            self.required(d, DATATYPES, "name")
            for d in self.children(self.one(el, kids, _T + "fluorochromes"), (_FCS_DIM,))
        ]
        det = [
            self.required(d, DATATYPES, "name")
            for d in self.children(self.one(el, kids, _T + "detectors"), (_FCS_DIM,))
        ]
        rows = []
        for s in (c for c in kids if c.tag == _T + "spectrum"):
            coeff = self.children(s, (_T + "coefficient",))
            if len(coeff) != len(det):
                raise self.fail(
                    s, f"has {len(coeff)} coefficients for {len(det)} detectors; give one each"
                )
            rows.append([self.number(c, TRANSFORMS, "value") for c in coeff])
        if len(rows) != len(fluor):
            raise self.fail(
                el, f"has {len(rows)} transforms:spectrum rows for {len(fluor)} fluorochromes"
            )
        inverted = attr(el, TRANSFORMS, "matrix-inverted-already") or "false"
        if inverted.strip() not in _BOOLEAN:
            raise self.fail(el, f"matrix-inverted-already={inverted!r} must be true or false")
        matrix = np.array(rows, dtype=np.float64).reshape(len(fluor), len(det))
        try:
            if _BOOLEAN[inverted.strip()]:
                matrix = np.linalg.inv(matrix)
            self.matrices[original] = SpectrumMatrix(original, tuple(fluor), tuple(det), matrix)
            self.matrix_ids[mid] = original
        except (GatingError, np.linalg.LinAlgError) as exc:
            raise self.fail(el, str(exc)) from None

    # -- dimensions -------------------------------------------------------------------
    def dimension(
        self, el: Element, extra: tuple[str, ...] = ()
    ) -> tuple[Dimension, tuple[float, float], list[Element]]:
        """A gate dimension (or quadrant divider): the Dimension, its clamp, the other children."""
        kids = self.children(el, (_FCS_DIM, _NEW_DIM, *extra))
        axes = [c for c in kids if c.tag in (_FCS_DIM, _NEW_DIM)]
        if len(axes) != 1:
            raise self.fail(
                el,
                "needs exactly one data-type:fcs-dimension or data-type:new-dimension, "
                f"found {len(axes)}",
            )
        (axis,) = axes
        clamp = UNBOUNDED
        ratio = None
        if axis.tag == _FCS_DIM:
            channel = self.required(axis, DATATYPES, "name")
        else:
            ref = self.required(axis, DATATYPES, "transformation-ref")
            found = self.transforms.get(ref)
            if found is None or not isinstance(found[1], RatioTransform):
                raise self.fail(axis, self.bad_transform(ref, "a transforms:fratio"))
            ratio, clamp, channel = found[1], found[2], found[3]
        comp = attr(el, GATING, "compensation-ref")
        if comp is None:  # FlowJo's export: "Comp-X" is X with the acquisition matrix
            if channel.startswith(_FLOWJO_COMP) and ratio is None:
                channel, comp = channel[len(_FLOWJO_COMP) :], FCS
            else:
                comp = UNCOMPENSATED
        comp = comp.strip()
        if comp not in (FCS, UNCOMPENSATED, *self.matrix_ids):
            raise self.fail(
                el,
                f"unknown compensation-ref {comp!r}; use FCS, uncompensated or the id of a "
                "transforms:spectrumMatrix "
                f"({', '.join(self.matrix_ids) or 'the document has none'})",
            )
        comp = self.matrix_ids.get(comp, comp)
        transform = None
        ref = attr(el, GATING, "transformation-ref")
        if ref is not None:
            found = self.transforms.get(ref.strip())
            if found is None or not isinstance(found[1], Transform):
                raise self.fail(el, self.bad_transform(ref.strip(), "a scale transformation"))
            transform = found[1]
            if found[2] != UNBOUNDED:
                if clamp != UNBOUNDED:
                    raise self.fail(
                        el,
                        f"both the fratio {channel!r} and transformation {ref!r} have "
                        "boundMin/boundMax; cytokit supports bounds on one of them only",
                    )
                clamp = found[2]
            elif clamp != UNBOUNDED:
                raise self.fail(
                    el,
                    f"fratio {channel!r} has boundMin/boundMax and transformation {ref!r} "
                    "follows it; cytokit supports fratio bounds only without a transformation",
                )
        dim = Dimension(channel, comp, transform, ratio)
        return dim, clamp, [c for c in kids if c not in axes]

    def bad_transform(self, ref: str, want: str) -> str:
        if ref not in self.transforms:
            known = ", ".join(self.transforms) or "the document defines none"
            return f"unknown transformation-ref {ref!r}; it must name {want} ({known})"
        return f"transformation-ref {ref!r} is not {want}"

    def unclamped(self, el: Element, clamp, gate: str) -> None:
        if clamp != UNBOUNDED:
            raise self.fail(
                el,
                f"the transformation read here has boundMin/boundMax, which cytokit can apply "
                f"to rectangle (range) gates only; gate {gate!r} is not one. Remove the bounds "
                "(they rarely change a polygon or ellipse) or use a rectangle gate",
            )

    # -- gates ------------------------------------------------------------------------
    def define(self, el: Element, pid: str) -> None:
        if pid in self.defined:
            first = self.defined[pid]
            raise self.fail(
                el,
                f"id {pid!r} is already used by <{qname(first.tag)}> on line {first.line}; "
                "gate and quadrant ids must be unique",
            )
        self.defined[pid] = el

    def gate(self, el: Element) -> Gate:
        gid = self.required(el, GATING, "id")
        self.define(el, gid)
        parent = attr(el, GATING, "parent_id")
        parent = parent.strip() if parent else None  # an empty parent_id means none
        if parent is not None:
            self.refs.append((el, "parent_id", parent))
        meta = cytokit_info(el, "population")
        common = {
            "id": self.orig(gid),
            "parent": None if parent is None else self.orig(parent),
            "name": meta.get("name", ""),
        }
        kind = el.tag[len(_G) :]
        try:
            if kind == "RectangleGate":
                return self.rectangle(el, common)
            if kind == "PolygonGate":
                return self.polygon(el, common)
            if kind == "EllipsoidGate":
                return self.ellipsoid(el, common)
            if kind == "QuadrantGate":
                return self.quadrants(el, common)
            return self.boolean(el, common)
        except GatingError as exc:
            if str(exc).startswith(str(self.path)):
                raise
            raise self.fail(el, str(exc)) from None

    def rectangle(self, el: Element, common: dict) -> Gate:
        dim_els = self.children(el, (_G + "dimension",))
        if not dim_els:
            raise self.fail(el, "needs at least one gating:dimension")
        dims, lo, hi = [], [], []
        for d in dim_els:
            dim, clamp, _ = self.dimension(d)
            a = self.number(d, GATING, "min", required=False)
            b = self.number(d, GATING, "max", required=False)
            if a is None and b is None:
                raise self.fail(d, "a rectangle dimension needs gating:min, gating:max or both")
            if (a is not None and math.isnan(a)) or (b is not None and math.isnan(b)):
                raise self.fail(d, "min/max is NaN; leave the attribute out for an open side")
            if a is not None and b is not None and a > b:
                raise self.fail(d, f"min={a!r} > max={b!r}; swap them")
            a, b = fold_clamp(a, b, clamp)
            dims.append(dim)
            lo.append(a)
            hi.append(b)
        if all(a is None and b is None for a, b in zip(lo, hi, strict=True)):
            lo[0] = -math.inf  # the clamp lets every (non-NaN) value in
        return RectangleGate(**common, dims=tuple(dims), min=tuple(lo), max=tuple(hi))

    def polygon(self, el: Element, common: dict) -> Gate:
        kids = self.children(el, (_G + "dimension", _G + "vertex"))
        dims = []
        for d in (c for c in kids if c.tag == _G + "dimension"):
            dim, clamp, _ = self.dimension(d)
            self.unclamped(d, clamp, common["id"])
            dims.append(dim)
        if len(dims) != 2:
            raise self.fail(el, f"a polygon needs exactly 2 gating:dimension, got {len(dims)}")
        vertices = []
        for v in (c for c in kids if c.tag == _G + "vertex"):
            coords = self.values(v, _G + "coordinate")
            if len(coords) != 2:
                raise self.fail(v, f"a vertex needs 2 gating:coordinate, got {len(coords)}")
            vertices.append(tuple(coords))
        if len(vertices) < 3:
            raise self.fail(el, f"a polygon needs at least 3 gating:vertex, got {len(vertices)}")
        return PolygonGate(**common, dims=tuple(dims), vertices=tuple(vertices))

    def ellipsoid(self, el: Element, common: dict) -> Gate:
        tags = ("dimension", "mean", "covarianceMatrix", "distanceSquare")
        kids = self.children(el, tuple(_G + t for t in tags))
        dims = []
        for d in (c for c in kids if c.tag == _G + "dimension"):
            dim, clamp, _ = self.dimension(d)
            self.unclamped(d, clamp, common["id"])
            dims.append(dim)
        n = len(dims)
        if n == 0:
            raise self.fail(el, "an ellipsoid needs gating:dimension elements")
        mean_el = self.one(el, kids, _G + "mean")
        mean = self.values(mean_el, _G + "coordinate")
        if len(mean) != n:
            raise self.fail(mean_el, f"has {len(mean)} coordinates for {n} dimensions")
        cov_el = self.one(el, kids, _G + "covarianceMatrix")
        rows = self.children(cov_el, (_G + "row",))
        if len(rows) != n:
            raise self.fail(cov_el, f"has {len(rows)} rows for {n} dimensions")
        cov = []
        for r in rows:
            entries = self.values(r, _G + "entry")
            if len(entries) != n:
                raise self.fail(r, f"has {len(entries)} entries for {n} dimensions")
            cov.append(tuple(entries))
        d2_el = self.one(el, kids, _G + "distanceSquare")
        d2 = self.number(d2_el, DATATYPES, "value")
        return EllipsoidGate(
            **common, dims=tuple(dims), mean=tuple(mean), covariance=tuple(cov), distance_square=d2
        )

    def quadrants(self, el: Element, common: dict) -> Gate:
        kids = self.children(el, (_G + "divider", _G + "Quadrant"))
        meta = cytokit_children(el, "divider")
        renamed = {m.get("ref"): m.get("id") for m in meta if m.get("ref") and m.get("id")}
        dividers: list[Divider] = []
        for d in (c for c in kids if c.tag == _G + "divider"):
            did = self.required(d, GATING, "id")
            dim, clamp, rest = self.dimension(d, (_G + "value",))
            self.unclamped(d, clamp, common["id"])
            values = []
            for v in rest:
                x = parse_double(v.text)
                if x is None or not math.isfinite(x):
                    raise self.fail(v, f"divider value {v.text!r} is not a finite number")
                values.append(x)
            if not values:
                raise self.fail(d, "a divider needs at least one gating:value")
            values.sort()
            if len(set(values)) != len(values):
                raise self.fail(d, f"divider values {values} repeat")
            if any(x.id == did for x in dividers):
                raise self.fail(d, f"divider id {did!r} is used twice in this gate")
            dividers.append(Divider(did, dim, tuple(values)))
        if not dividers:
            raise self.fail(el, "a quadrant gate needs at least one gating:divider")
        names = {m.get("ref"): m.get("name") for m in cytokit_children(el, "quadrant")}
        quads = []
        ids = [x.id for x in dividers]
        for q in (c for c in kids if c.tag == _G + "Quadrant"):
            qid = self.required(q, GATING, "id")
            self.define(q, qid)
            positions = []
            for p in self.children(q, (_G + "position",)):
                ref = self.required(p, GATING, "divider_ref")
                if ref not in ids:
                    raise self.fail(
                        p,
                        f"bad quadrant position: divider_ref {ref!r} is not a divider of this gate "
                        f"(its dividers are {', '.join(ids)})",
                    )
                loc = self.number(p, GATING, "location")
                if math.isnan(loc):
                    raise self.fail(p, "bad quadrant position: location is NaN")
                if any(r == ref for r, _ in positions):
                    raise self.fail(
                        p, f"bad quadrant position: divider {ref!r} is named twice in one quadrant"
                    )
                positions.append((renamed.get(ref, ref), loc))
            if not positions:
                raise self.fail(q, "bad quadrant: it needs at least one gating:position")
            quads.append(Quadrant(self.orig(qid), tuple(positions), names.get(qid) or ""))
        if not quads:
            raise self.fail(el, "a quadrant gate needs at least one gating:Quadrant")
        dividers = [Divider(renamed.get(x.id, x.id), x.dimension, x.values) for x in dividers]
        return QuadrantGate(**common, dividers=tuple(dividers), quadrants=tuple(quads))

    def boolean(self, el: Element, common: dict) -> Gate:
        kids = self.children(el, (_G + "and", _G + "or", _G + "not"))
        if len(kids) != 1:
            raise self.fail(
                el, f"needs exactly one of gating:and, gating:or, gating:not; got {len(kids)}"
            )
        (op_el,) = kids
        op = op_el.tag[len(_G) :]
        operands, complement = [], []
        for r in self.children(op_el, (_G + "gateReference",)):
            ref = self.required(r, GATING, "ref")
            flag = (attr(r, GATING, "use-as-complement") or "false").strip()
            if flag not in _BOOLEAN:
                raise self.fail(r, f"use-as-complement={flag!r} must be true or false")
            self.refs.append((r, "ref", ref))
            operands.append(self.orig(ref))
            complement.append(_BOOLEAN[flag])
        if op == "not" and len(operands) != 1:
            raise self.fail(
                op_el, f"gating:not takes exactly one gateReference, got {len(operands)}"
            )
        if not operands:
            raise self.fail(op_el, f"gating:{op} needs gateReference operands")
        # X and X is X: a repeated operand is read once (the schema wants two or more
        # operands of and/or, so a one-operand gate is written with its operand twice)
        pairs = list(dict.fromkeys(zip(operands, complement, strict=True)))
        operands, complement = [p[0] for p in pairs], [p[1] for p in pairs]
        return BooleanGate(**common, op=op, operands=tuple(operands), complement=tuple(complement))


def read_gatingml(path: str | Path, **options) -> GatingStrategy:
    """Read a Gating-ML 2.0 document.

    Parameters
    ----------
    path : path
        The ``.xml`` file.
    **options
        ``name`` (str): the strategy's name (default: the one cytokit wrote
        into the file, else empty).

    Returns
    -------
    GatingStrategy
        Every gate of the document (quadrant gates define one population per
        quadrant); ``source`` is `path`.

    Raises
    ------
    GatingError
        The file is missing, is not XML, has a DTD or entities, is not
        Gating-ML 2.0, or is malformed; the message names the file, the line
        and the element, and what was expected. Also a document beyond the
        bounds of `cytokit.gating.limits` (file size, populations, depth,
        path length).
    """
    unknown = sorted(set(options) - {"name"})
    if unknown:
        raise GatingError(
            f"{path}: read_gatingml got unknown option(s) {', '.join(unknown)}; it takes name="
        )
    path = Path(path)
    try:
        data = read_bounded(path, "gatingml")
    except FileNotFoundError:
        raise GatingError(f"{path}: Gating-ML file not found") from None
    except OSError as exc:
        raise GatingError(f"{path}: cannot read the Gating-ML file ({exc.strerror})") from None
    root = parse_xml(data, str(path))
    return _Reader(path).read(root, options.get("name"))
