"""FlowKit objects in and out of cytokit, without writing a file.

A pipeline built on FlowKit (``flowkit.Sample``, ``flowkit.GatingStrategy``,
``flowkit.Session``, ``flowkit.Workspace``) hands its objects to cytokit's
kernels with two calls::

    from cytokit import gating
    result = gating.from_flowkit(session).apply(gating.sample_from_flowkit(fk_sample))

* `sample_from_flowkit`: a cytokit `Sample` holding FlowKit's *raw* events
  (``fk_sample.get_events(source="raw")``: never compensated nor transformed;
  with FlowKit's default ``preprocess=True`` they are scale values, ``$PnE``
  and ``$PnG`` applied and the time channel in ``$TIMESTEP`` units, exactly
  what `cytokit.read_fcs` gives), with its ``$PnN``/``$PnS`` channels, its
  keywords and the spillover matrix of its keywords. The array is shared,
  not copied.
* `from_flowkit`: a cytokit `GatingStrategy` from a FlowKit
  ``GatingStrategy``, ``Session`` or ``Workspace`` (one sample's gates:
  FlowJo gates are per sample). Gates, transforms and matrices become
  cytokit's value objects; a gate's id is its FlowKit path
  (``/Lymphocytes/Singlets``), its name FlowKit's gate name.
* `to_flowkit`: the reverse for a static strategy (adaptive gates are fitted
  to a sample first: ``strategy.fit(sample)``).

What FlowKit and cytokit model differently, and how it is mapped:

* A FlowKit quadrant is a node below its ``QuadrantGate``; in cytokit the
  quadrants are populations of the quadrant gate's parent, so a child of
  quadrant ``Q1`` of gate ``Quad`` has the cytokit path ``/Q1/child`` and the
  id ``/Quad/Q1/child`` (the FlowKit path).
* FlowKit writes ``None`` for an uncompensated dimension; FlowJo's per-sample
  matrix (``Acquisition-defined``) becomes a named `SpectrumMatrix` holding
  FlowKit's copy of it, so both use the same coefficients.
* FlowJo's log display (``WSPLogTransform``) is Gating-ML's ``flog`` with
  ``T = offset·10^decades`` and ``M = decades``, except that FlowKit clips
  values below ``offset`` to the axis start (0), where ``flog`` goes on below
  0: a gate whose lower bound on such an axis is at or below 0 is refused.
* FlowKit 1.3 computes a ratio dimension from uncompensated values whatever
  its compensation reference; cytokit compensates first, as Gating-ML says.
  The two differ only for a ratio of compensated channels.
* FlowKit's ``use_complement`` on a rectangle or polygon (FlowJo's "not"
  gates) has no cytokit equivalent outside Boolean gates and is refused with
  the gate's path.

FlowKit is an optional dependency (``pip install "cytokit-flow[flowkit]"``); it is
imported only when one of these functions is called.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from cytokit.errors import GatingError
from cytokit.fcs.problems import Notes
from cytokit.fcs.spillover import read_spillover
from cytokit.fcs.text import Keywords
from cytokit.gating.gates import (
    FCS,
    UNCOMPENSATED,
    AdaptiveGate,
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
from cytokit.gating.strategy import GatingStrategy
from cytokit.gating.transforms import (
    AsinhTransform,
    BiexTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    RatioTransform,
    Transform,
)
from cytokit.sample import Channel, Sample

__all__ = ["flowkit_gate_path", "from_flowkit", "sample_from_flowkit", "to_flowkit"]

_EXTRA = 'FlowKit is not installed; install the extra: pip install "cytokit-flow[flowkit]"'

#: FCS 3.1/3.2 keywords that the standard spells with a leading ``$``. FlowIO (under
#: FlowKit) keeps keywords lower case without the ``$``; these get it back.
_STANDARD = re.compile(
    r"(BEGINANALYSIS|BEGINDATA|BEGINSTEXT|BYTEORD|DATATYPE|ENDANALYSIS|ENDDATA|ENDSTEXT|MODE|"
    r"NEXTDATA|PAR|TOT|ABRT|BTIM|CELLS|COM|CSMODE|CSVBITS|CSV\d+FLAG|CYT|CYTSN|DATE|ETIM|EXP|"
    r"FIL|GATE|GATING|INST|LAST_MODIFIED|LAST_MODIFIER|LOST|OP|ORIGINALITY|PLATEID|PLATENAME|"
    r"PROJ|SMNO|SPILLOVER|SRC|SYS|TIMESTEP|TR|VOL|WELLID|UNICODE|CARRIERID|CARRIERTYPE|"
    r"LOCATIONID|FLOWRATE|P\d+(B|D|E|F|G|L|N|O|P|R|S|T|V|CALIBRATION|DATATYPE|DET|TAG|TYPE|"
    r"FEATURE|ANALYTE)|G\d+[EFNPRSTV]|R\d+[IW]|PK\d+|PKN\d+)\Z"
)


def _flowkit():
    try:
        import flowkit
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise ImportError(_EXTRA) from None
    return flowkit


# -- samples --------------------------------------------------------------------------------


def _keywords(metadata: dict[str, str]) -> dict[str, str]:
    """FlowIO's keywords (``'p1n'``) spelt as the FCS standard does (``'$P1N'``)."""
    out: dict[str, str] = {}
    for key, value in metadata.items():
        k = str(key).strip().lstrip("$").upper()
        out["$" + k if _STANDARD.match(k) else k] = str(value)
    return out


def _number(keywords: dict[str, str], key: str, default: float) -> float:
    try:
        return float(keywords[key])
    except (KeyError, ValueError):
        return default


def sample_from_flowkit(fk_sample: Any) -> Sample:
    """A cytokit `Sample` of a ``flowkit.Sample``'s raw events, without writing a file.

    Parameters
    ----------
    fk_sample : flowkit.Sample

    Returns
    -------
    Sample
        ``events`` is FlowKit's raw array (float64, shared with FlowKit, not
        copied): uncompensated and untransformed, scale values when FlowKit
        preprocessed them (its default: ``scaled=True``), stored values
        otherwise (``scaled=False``). Channels keep ``$PnN`` (FlowKit's
        ``pnn_labels``), ``$PnS``, ``$PnR``, ``$PnB``, ``$PnE`` and ``$PnG``;
        keywords are FlowKit's metadata with the standard's spelling
        (``$P1N``; FlowIO keeps them lower case without ``$``); ``spillover`` is
        read from ``$SPILLOVER``/``$SPILL``/``SPILL`` as `cytokit.read_fcs`
        reads it, which is the matrix FlowKit's ``FCS`` compensation uses. A
        matrix set with ``fk_sample.apply_compensation`` is not the file's:
        pass it to ``strategy.apply(..., compensation=...)`` yourself.

    Raises
    ------
    TypeError
        `fk_sample` is not a ``flowkit.Sample``.
    """
    fk = _flowkit()
    if not isinstance(fk_sample, fk.Sample):
        raise TypeError(
            f"sample_from_flowkit needs a flowkit.Sample, got {type(fk_sample).__name__}"
        )
    keywords = _keywords(fk_sample.metadata)
    channels = []
    for i, name in enumerate(fk_sample.pnn_labels):
        n = i + 1
        pne = keywords.get(f"$P{n}E", "0,0").split(",")
        try:
            decades, offset = float(pne[0]), float(pne[1]) if len(pne) > 1 else 0.0
        except ValueError:
            decades, offset = 0.0, 0.0
        channels.append(
            Channel(
                index=i,
                name=str(name),
                marker=str(fk_sample.pns_labels[i] or ""),
                range=_number(keywords, f"$P{n}R", 0.0),
                bits=int(_number(keywords, f"$P{n}B", 32.0)),
                log_decades=decades,
                log_offset=offset,
                gain=_number(keywords, f"$P{n}G", 1.0),
            )
        )
    channels_t = tuple(channels)
    events = fk_sample.get_events(source="raw")
    where = f"flowkit sample {fk_sample.id!r}"
    kw = Keywords(Notes(where))
    kw.add(list(keywords.items()))
    spill = read_spillover(kw, channels_t)
    kw.notes.emit(stacklevel=2)  # a spillover keyword that could not be read, as read_fcs says
    return Sample(
        events=events,
        channels=channels_t,
        keywords=keywords,
        spillover=spill,
        path=None,
        version=f"FCS{fk_sample.version}",
        scaled=bool(fk_sample.is_preprocessed),
    )


# -- FlowKit → cytokit strategies -------------------------------------------------------------


def _gate_id(path: Iterable[str], name: str) -> str:
    """The cytokit id of FlowKit gate `name` under `path` (``('root', 'A')`` → ``/A/name``)."""
    steps = [*list(path)[1:], name]
    return "/" + "/".join(steps)


def _parent_id(path: tuple[str, ...]) -> str | None:
    return None if len(path) <= 1 else _gate_id(path[:-1], path[-1])


class _FromFlowKit:
    """Converts the gates of one FlowKit gating strategy (for one sample, if given)."""

    def __init__(self, fk, gs, sample_id: str | None) -> None:
        self.fk = fk
        self.gs = gs
        self.sample_id = sample_id
        self.matrices: dict[str, SpectrumMatrix] = {}
        self._transforms: dict[str, Transform | None] = {}

    def compensation(self, ref: str | None, where: str) -> str:
        if ref is None or ref == UNCOMPENSATED:
            return UNCOMPENSATED
        if ref == FCS:
            return FCS
        if ref not in self.matrices:
            m = self.gs.comp_matrices.get(ref)
            if m is None:
                raise GatingError(
                    f"{where}: compensation {ref!r} is not a matrix of the FlowKit strategy "
                    f"(it has {', '.join(map(repr, self.gs.comp_matrices)) or 'none'})"
                )
            if not isinstance(m, self.fk.Matrix):
                raise GatingError(
                    f"{where}: compensation {ref!r} is a {type(m).__name__}; only square "
                    "flowkit.Matrix compensation is supported"
                )
            detectors = tuple(m.detectors)
            fluoro = tuple(m.fluorochromes)
            if not all(fluoro) or len(set(fluoro)) != len(fluoro):
                fluoro = detectors
            self.matrices[ref] = SpectrumMatrix(ref, fluoro, detectors, np.asarray(m.matrix))
        return ref

    def transform(self, ref: str | None, where: str) -> Transform | None:
        if ref is None:
            return None
        if ref in self._transforms:
            return self._transforms[ref]
        xf = self.gs.transformations.get(ref)
        if xf is None:
            raise GatingError(f"{where}: transform {ref!r} is not in the FlowKit strategy")
        t = self.fk.transforms
        if isinstance(xf, t.LinearTransform):
            out: Transform | None = LinearTransform(T=xf.param_t, A=xf.param_a)
        elif isinstance(xf, t.LogTransform):
            out = LogTransform(T=xf.param_t, M=xf.param_m)
        elif isinstance(xf, t.AsinhTransform):
            out = AsinhTransform(T=xf.param_t, M=xf.param_m, A=xf.param_a)
        elif isinstance(xf, t.LogicleTransform):
            out = LogicleTransform(T=xf.param_t, W=xf.param_w, M=xf.param_m, A=xf.param_a)
        elif isinstance(xf, t.HyperlogTransform):
            out = HyperlogTransform(T=xf.param_t, W=xf.param_w, M=xf.param_m, A=xf.param_a)
        elif isinstance(xf, t.WSPBiexTransform):
            out = BiexTransform(
                negative=xf.negative,
                width=xf.width,
                positive=xf.positive,
                max_value=xf.max_value,
            )
        elif isinstance(xf, t.WSPLogTransform):
            out = LogTransform(T=xf.offset * 10.0**xf.decades, M=xf.decades)
        else:
            raise GatingError(
                f"{where}: FlowKit transform {ref!r} ({type(xf).__name__}) has no cytokit "
                "equivalent"
            )
        self._transforms[ref] = out
        return out

    def _clipped_log(self, ref: str | None) -> bool:
        xf = None if ref is None else self.gs.transformations.get(ref)
        return isinstance(xf, self.fk.transforms.WSPLogTransform)

    def dimension(self, dim, where: str) -> Dimension:
        comp = self.compensation(dim.compensation_ref, where)
        xf = self.transform(dim.transformation_ref, where)
        if isinstance(dim, self.fk.RatioDimension):
            ratio = self.gs.transformations.get(dim.ratio_ref)
            if not isinstance(ratio, self.fk.transforms.RatioTransform):
                raise GatingError(
                    f"{where}: ratio dimension {dim.ratio_ref!r} names no RatioTransform"
                )
            num, den = ratio.dimensions
            r = RatioTransform(num, den, A=ratio.param_a, B=ratio.param_b, C=ratio.param_c)
            return Dimension(str(dim.ratio_ref), comp, xf, r)
        if isinstance(dim, self.fk.QuadrantDivider):
            return Dimension(str(dim.dimension_ref), comp, xf)
        return Dimension(str(dim.id), comp, xf)

    def gate(self, gate, path: tuple[str, ...]) -> Gate:
        gid = _gate_id(path, gate.gate_name)
        where = f"FlowKit gate {gid!r}"
        ids = {"id": gid, "parent": _parent_id(path), "name": str(gate.gate_name)}
        g = self.fk.gates
        if getattr(gate, "use_complement", False):
            raise GatingError(
                f"{where} uses its complement (use_complement=True), which cytokit has only "
                "for Boolean operands: make it a Boolean 'not' gate of the plain gate"
            )
        if isinstance(gate, g.BooleanGate):
            operands = tuple(_gate_id(r["path"], r["ref"]) for r in gate.gate_refs)
            comp = tuple(bool(r.get("complement", False)) for r in gate.gate_refs)
            return BooleanGate(op=gate.type, operands=operands, complement=comp, **ids)
        if isinstance(gate, g.QuadrantGate):
            return self._quadrants(gate, (*path, str(gate.gate_name)), ids, where)
        dims = tuple(self.dimension(d, where) for d in gate.dimensions)
        if isinstance(gate, g.RectangleGate):
            lo = tuple(getattr(d, "min", None) for d in gate.dimensions)
            hi = tuple(getattr(d, "max", None) for d in gate.dimensions)
            for d, low in zip(gate.dimensions, lo, strict=True):
                if self._clipped_log(d.transformation_ref) and (low is None or low <= 0):
                    raise GatingError(
                        f"{where}: its range on {d.id!r} starts at or below the start of "
                        "FlowJo's log axis, where FlowKit piles up the values it clips; "
                        "cytokit's log scale does not clip: set the lower bound above 0"
                    )
            return RectangleGate(dims=dims, min=lo, max=hi, **ids)
        if any(self._clipped_log(d.transformation_ref) for d in gate.dimensions):
            raise GatingError(
                f"{where}: a {type(gate).__name__} on FlowJo's log axis, which FlowKit clips "
                "at its start and cytokit does not; only rectangles above the axis start map"
            )
        if isinstance(gate, g.PolygonGate):
            return PolygonGate(dims=dims, vertices=tuple(map(tuple, gate.vertices)), **ids)
        if isinstance(gate, g.EllipsoidGate):
            return EllipsoidGate(
                dims=dims,
                mean=tuple(gate.coordinates),
                covariance=tuple(map(tuple, gate.covariance_matrix)),
                distance_square=gate.distance_square,
                **ids,
            )
        raise GatingError(
            f"{where}: FlowKit gate type {type(gate).__name__} has no cytokit equivalent "
            "(rectangle, polygon, ellipsoid, quadrant and Boolean gates map)"
        )

    def _quadrants(self, gate, path: tuple[str, ...], ids: dict, where: str) -> QuadrantGate:
        dividers = []
        for d in gate.dimensions:
            values = [float(v) for v in d.values]
            dividers.append(Divider(str(d.id), self.dimension(d, where), tuple(values)))
        by_id = {d.id: d for d in dividers}
        quadrants = []
        for q in gate.quadrants.values():
            positions = []
            for ref in q.divider_refs:
                lo, hi = q.get_divider_range(ref)
                values = by_id[ref].values
                if (lo is not None and float(lo) not in values) or (
                    hi is not None and float(hi) not in values
                ):
                    raise GatingError(
                        f"{where}: quadrant {q.id!r} spans {lo}…{hi} on divider {ref!r}, whose "
                        f"values are {values}; a quadrant must lie between divider values"
                    )
                if lo is not None:
                    positions.append((ref, float(lo)))  # a divider value lies on the upper side
                elif hi is not None:
                    positions.append((ref, float(hi) - 1.0 - abs(float(hi))))
            qid = _gate_id(path, str(q.id))
            quadrants.append(Quadrant(qid, tuple(positions), name=str(q.id)))
        return QuadrantGate(dividers=tuple(dividers), quadrants=tuple(quadrants), **ids)


def _strategy_of(fk, obj, sample_id: str | None) -> tuple[Any, str | None, str]:
    """(FlowKit GatingStrategy, sample id for custom gates, name) of what was given."""
    if isinstance(obj, fk.GatingStrategy):
        return obj, sample_id, ""
    if isinstance(obj, fk.Session):
        return obj.gating_strategy, sample_id, ""
    if isinstance(obj, fk.Workspace):
        ids = obj.get_sample_ids(loaded_only=False)
        if sample_id is None:
            if len(ids) != 1:
                raise GatingError(
                    f"the FlowKit workspace has {len(ids)} samples, each with its own gates; "
                    f"say which with sample_id= (one of {', '.join(map(repr, ids[:10]))})"
                )
            sample_id = ids[0]
        elif sample_id not in ids:
            raise GatingError(
                f"sample {sample_id!r} is not in the FlowKit workspace; its samples are "
                + ", ".join(map(repr, ids[:10]))
            )
        return obj.get_gating_strategy(sample_id), sample_id, str(sample_id)
    raise TypeError(
        "from_flowkit needs a flowkit.GatingStrategy, Session or Workspace, got "
        f"{type(obj).__name__}"
    )


def from_flowkit(
    obj: Any, *, sample_id: str | None = None, group: str | None = None
) -> GatingStrategy:
    """A cytokit `GatingStrategy` from FlowKit's gating objects, without writing a file.

    Parameters
    ----------
    obj : flowkit.GatingStrategy, flowkit.Session or flowkit.Workspace
        A workspace's gates are per sample: give `sample_id` (or `group`)
        unless it has one sample.
    sample_id : str, optional
        Use this sample's custom gates (FlowKit's ``sample_id=`` of ``get_gate``)
        where it has any; the template gates elsewhere.
    group : str, optional
        A workspace's sample group: the strategy its samples share (each
        sample's gates, transforms and matrix converted; they must all be
        equal, else the message names a sample that differs: give it as
        `sample_id`).

    Returns
    -------
    GatingStrategy
        One cytokit gate per FlowKit gate: its id is the FlowKit path joined
        with ``/`` (``/Lymphocytes/Singlets``), its name the gate name;
        ``strategy.apply(sample_from_flowkit(fk_sample))`` counts what
        FlowKit's ``gate_sample`` counts (see the module notes for what maps
        differently).

    Raises
    ------
    GatingError
        A gate, transform or matrix cytokit cannot represent (the message
        names the gate's path); a workspace sample or group that does not
        exist, or a group whose samples are gated differently.
    """
    fk = _flowkit()
    if group is not None:
        return _group_strategy(fk, obj, group, sample_id)
    gs, sample_id, name = _strategy_of(fk, obj, sample_id)
    conv = _FromFlowKit(fk, gs, sample_id)
    gates: list[Gate] = []
    for gate_name, path in gs.get_gate_ids():
        path = tuple(path)
        try:
            gate = gs.get_gate(gate_name, path, sample_id=sample_id)
        except fk.exceptions.QuadrantReferenceError:
            continue  # a quadrant: converted with its QuadrantGate
        gates.append(conv.gate(gate, path))
    return GatingStrategy(gates, matrices=conv.matrices, name=name, source="flowkit")


def _group_strategy(fk, obj, group: str, sample_id: str | None) -> GatingStrategy:
    if not isinstance(obj, fk.Workspace):
        raise GatingError(f"group={group!r} names a sample group of a flowkit.Workspace")
    groups = obj.get_sample_groups()
    if group not in groups:
        raise GatingError(
            f"no sample group {group!r} in the FlowKit workspace; its groups are "
            + ", ".join(map(repr, groups))
        )
    ids = obj.get_sample_ids(group_name=group, loaded_only=False)
    if sample_id is not None:
        if sample_id not in ids:
            raise GatingError(f"sample {sample_id!r} is not in group {group!r}")
        ids = [sample_id]
    if not ids:
        raise GatingError(f"sample group {group!r} of the FlowKit workspace has no samples")
    first = from_flowkit(obj, sample_id=ids[0])
    for sid in ids[1:]:
        other = from_flowkit(obj, sample_id=sid)
        if other.digest() != first.digest():
            raise GatingError(
                f"the samples of group {group!r} are gated differently ({ids[0]!r} and "
                f"{sid!r} differ: custom gates, transforms or matrices); give sample_id="
            )
    return GatingStrategy(first.gates, matrices=first.matrices, name=str(group), source="flowkit")


# -- cytokit → FlowKit ---------------------------------------------------------------------


def _fk_transform(fk, xf: Transform):
    t = fk.transforms
    p = xf.params()
    if isinstance(xf, LinearTransform):
        return t.LinearTransform(param_t=p["T"], param_a=p["A"])
    if isinstance(xf, LogTransform):
        return t.LogTransform(param_t=p["T"], param_m=p["M"])
    if isinstance(xf, AsinhTransform):
        return t.AsinhTransform(param_t=p["T"], param_m=p["M"], param_a=p["A"])
    if isinstance(xf, LogicleTransform):
        return t.LogicleTransform(param_t=p["T"], param_w=p["W"], param_m=p["M"], param_a=p["A"])
    if isinstance(xf, HyperlogTransform):
        return t.HyperlogTransform(param_t=p["T"], param_w=p["W"], param_m=p["M"], param_a=p["A"])
    if isinstance(xf, BiexTransform):
        return t.WSPBiexTransform(
            negative=p["negative"],
            width=p["width"],
            positive=p["positive"],
            max_value=p["max_value"],
        )
    raise GatingError(f"transform {xf!r} has no FlowKit equivalent")  # pragma: no cover


class _ToFlowKit:
    def __init__(self, fk, strategy: GatingStrategy) -> None:
        self.fk = fk
        self.strategy = strategy
        self.gs = fk.GatingStrategy()
        self._xf_ids: dict[Transform, str] = {}
        self._ratio_ids: dict[tuple, str] = {}
        for ref, m in strategy.matrices.items():
            self.gs.add_comp_matrix(
                ref, fk.Matrix(np.array(m.matrix), list(m.detectors), list(m.fluorochromes))
            )

    def xform(self, xf: Transform | None) -> str | None:
        if xf is None:
            return None
        ref = self._xf_ids.get(xf)
        if ref is None:
            ref = self._xf_ids[xf] = f"{xf.kind}_{len(self._xf_ids) + 1}"
            self.gs.add_transform(ref, _fk_transform(self.fk, xf))
        return ref

    def ratio(self, d: Dimension) -> str:
        r = d.ratio
        key = (d.channel, r.numerator, r.denominator, r.A, r.B, r.C)
        ref = self._ratio_ids.get(key)
        if ref is None:
            ref = (
                d.channel
                if d.channel not in self._ratio_ids.values()
                else f"{d.channel}_{len(self._ratio_ids)}"
            )
            self._ratio_ids[key] = ref
            self.gs.add_transform(
                ref, self.fk.transforms.RatioTransform([r.numerator, r.denominator], r.A, r.B, r.C)
            )
        return ref

    def dimension(self, d: Dimension, lo=None, hi=None):
        comp = d.compensation
        if d.ratio is not None:
            return self.fk.RatioDimension(
                self.ratio(d), comp, self.xform(d.transform), range_min=lo, range_max=hi
            )
        return self.fk.Dimension(
            d.channel, comp, self.xform(d.transform), range_min=lo, range_max=hi
        )

    def path(self, parent: str | None) -> tuple[str, ...]:
        """FlowKit's gate path of a gate whose parent is population id `parent`."""
        if parent is None:
            return ("root",)
        name, path = flowkit_gate_path(self.strategy, parent)
        return (*path, name)

    def operand(self, ref: str) -> tuple[str, tuple[str, ...]]:
        return flowkit_gate_path(self.strategy, ref)

    def gate(self, g: Gate):
        fg = self.fk.gates
        if isinstance(g, RectangleGate):
            dims = [
                self.dimension(d, lo, hi) for d, lo, hi in zip(g.dims, g.min, g.max, strict=True)
            ]
            return fg.RectangleGate(_fk_name(g.name, g.id), dims)
        if isinstance(g, PolygonGate):
            dims = [self.dimension(d) for d in g.dims]
            return fg.PolygonGate(_fk_name(g.name, g.id), dims, [list(v) for v in g.vertices])
        if isinstance(g, EllipsoidGate):
            return fg.EllipsoidGate(
                _fk_name(g.name, g.id),
                [self.dimension(d) for d in g.dims],
                list(g.mean),
                [list(r) for r in g.covariance],
                g.distance_square,
            )
        if isinstance(g, QuadrantGate):
            return self._quadrants(g)
        if isinstance(g, BooleanGate):
            refs = []
            for ref, comp in zip(g.operands, g.complement, strict=True):
                name, path = self.operand(ref)
                refs.append({"ref": name, "path": path, "complement": comp})
            return fg.BooleanGate(_fk_name(g.name, g.id), g.op, refs)
        raise GatingError(f"gate {g.id!r}: {type(g).__name__} has no FlowKit equivalent")

    def quadrant_rectangles(self, g: QuadrantGate) -> list:
        """One FlowKit rectangle per quadrant (for dividers that share a dimension)."""
        return [
            self.fk.gates.RectangleGate(
                _fk_name(q.name, q.id),
                [self.dimension(d, lo, hi) for d, (lo, hi) in bounds.items()],
            )
            for q, bounds in zip(g.quadrants, g.bounds(), strict=True)
        ]

    def _quadrants(self, g: QuadrantGate):
        divs = []
        for d in g.dividers:
            dim = d.dimension
            if dim.ratio is not None:
                raise GatingError(
                    f"quadrant gate {g.id!r}: a divider on a ratio dimension has no FlowKit "
                    "equivalent (FlowKit dividers name a channel)"
                )
            divs.append(
                self.fk.QuadrantDivider(
                    d.id, dim.channel, dim.compensation, list(d.values), self.xform(dim.transform)
                )
            )
        intervals = g.intervals()
        quads = []
        for q, row in zip(g.quadrants, intervals, strict=True):
            refs, ranges = [], []
            for d, k in zip(g.dividers, row, strict=True):
                if k < 0:
                    continue
                vals = (None, *d.values, None)
                refs.append(d.id)
                ranges.append([vals[k], vals[k + 1]])
            quads.append(self.fk.gates.Quadrant(_fk_name(q.name, q.id), refs, ranges))
        return self.fk.gates.QuadrantGate(_quadrant_gate_name(g), divs, quads)


def _fk_name(name: str, gid: str) -> str:
    if "/" in name or name in (".", ".."):
        raise GatingError(
            f"population {gid!r} is named {name!r}; FlowKit gate names cannot hold '/' or be "
            "'.' or '..': rename it"
        )
    return name


def _quadrant_gate_name(g: QuadrantGate) -> str:
    """A FlowKit name for a quadrant gate (its name is in no cytokit path, so it may hold '/')."""
    name = g.name.rstrip("/").rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") else "quadrants"


def flowkit_gate_path(strategy: GatingStrategy, key: str) -> tuple[str, tuple[str, ...]]:
    """(gate name, gate path) that name population `key` in `to_flowkit(strategy)`.

    What FlowKit's ``get_gate_membership(sample_id, name, gate_path=path)`` and
    ``GatingResults`` take; `key` is anything `GatingStrategy.population` takes.
    A quadrant's path ends with its quadrant gate's name.
    """
    pop = strategy.population(key)
    steps: list[str] = []
    if isinstance(pop.gate, QuadrantGate) and not pop.gate.shares_a_dimension:
        steps.append(_quadrant_gate_name(pop.gate))
    p = pop
    while p.parent is not None:
        p = strategy.by_id(p.parent)
        steps.append(p.name)
        if isinstance(p.gate, QuadrantGate) and not p.gate.shares_a_dimension:
            steps.append(_quadrant_gate_name(p.gate))
    return pop.name, ("root", *reversed(steps))


def to_flowkit(strategy: GatingStrategy) -> Any:
    """A ``flowkit.GatingStrategy`` equal to a static cytokit strategy, without writing a file.

    Parameters
    ----------
    strategy : GatingStrategy
        Without adaptive gates: fit them to a sample first (``strategy.fit(sample)``).

    Returns
    -------
    flowkit.GatingStrategy
        Gates named by their population names, quadrants by their names
        (`flowkit_gate_path` gives the name and path FlowKit knows a population
        by); transforms get ids ``<kind>_<n>``, named matrices keep their ids. A
        quadrant gate with two dividers on one dimension (a divider split by
        another's side) becomes one rectangle per quadrant: FlowKit's quadrant
        gate tests each divider on a column named by its dimension.

    Raises
    ------
    GatingError
        An adaptive gate, or a construct FlowKit has no object for (a quadrant
        divider on a ratio dimension).
    """
    fk = _flowkit()
    if not isinstance(strategy, GatingStrategy):
        raise TypeError(f"to_flowkit needs a cytokit GatingStrategy, got {type(strategy).__name__}")
    adaptive = [g.id for g in strategy.gates if isinstance(g, AdaptiveGate)]
    if adaptive:
        raise GatingError(
            f"adaptive gate(s) {', '.join(map(repr, adaptive[:5]))} are placed on each sample's "
            "data; fit them to a sample first (strategy.fit(sample)) and convert that"
        )
    conv = _ToFlowKit(fk, strategy)
    for g in strategy.gates:  # parents and operands first
        if isinstance(g, QuadrantGate) and g.shares_a_dimension:
            # FlowKit tests each divider on a column named by its dimension: one rectangle
            # per quadrant, at the quadrant gate's parent
            for rect in conv.quadrant_rectangles(g):
                conv.gs.add_gate(rect, conv.path(g.parent))
        else:
            conv.gs.add_gate(conv.gate(g), conv.path(g.parent))
    return conv.gs
