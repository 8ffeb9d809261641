"""Resolving a strategy's dimensions against one sample's channels, and compiling it to a plan.

Gating-ML and FlowJo name channels; the kernels read columns. `Resolver`
answers, for one sample (its channels and the spillover to use), which columns,
which compensation and which transform each `Dimension` means, and raises a
`GatingError` naming the gate and the channels the sample has when it cannot.
`compile_plan` turns a whole (non-adaptive) tree into a `GatingPlan`;
`dimension_values` computes the values a gate sees for chosen events, for
adaptive gate fitting and for plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cytokit import kernels as K
from cytokit.errors import GatingError, did_you_mean
from cytokit.gating.gates import (
    FCS,
    UNCOMPENSATED,
    AdaptiveGate,
    BooleanGate,
    Dimension,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
    SpectrumMatrix,
)
from cytokit.sample import Channel, Spillover

__all__ = [
    "ResolvedDimension",
    "Resolver",
    "compile_plan",
    "compile_plan_dims",
    "dimension_columns",
    "dimension_values",
]


@dataclass(frozen=True)
class ResolvedDimension:
    """A dimension in column terms: what the kernels need to compute its values."""

    column: int
    column2: int  # ratio denominator, or -1
    ratio: tuple[float, float, float]
    compensation: int  # index into Resolver.matrices, or -1
    transform: int
    params: np.ndarray


def _who(gate: str) -> str:
    """Who reads a dimension, for messages: a gate, or (``""``) the statistics' or a
    measured marker's channel read beside the gates."""
    return f"gate {gate!r}" if gate else "a channel read beside the gates (statistics, markers)"


class Resolver:
    """Channel and compensation look-ups for one sample.

    Parameters
    ----------
    channels : sequence of Channel
        The sample's channels (``$PnN`` names, ``$PnS`` markers).
    spillover : Spillover or None
        The matrix `FCS` dimensions use (None: they stay uncompensated).
    matrices : mapping of str to SpectrumMatrix
        The strategy's named matrices.
    sample_name : str
        For messages.
    source : str
        The strategy's file, for messages.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        spillover: Spillover | None,
        matrices: Mapping[str, SpectrumMatrix],
        sample_name: str = "sample",
        source: str = "",
    ) -> None:
        self.channels = tuple(channels)
        self.source = source
        self.spillover = spillover
        self.named = dict(matrices)
        self.sample_name = sample_name
        self._by_name = {}
        for c in self.channels:
            self._by_name.setdefault(c.name, c.index)
        self._by_marker: dict[str, list[int]] = {}
        for c in self.channels:
            if c.marker:
                self._by_marker.setdefault(c.marker, []).append(c.index)
        #: (inverse, columns, {name: position}) of each compensation used, in first-use order
        self.matrices: list[tuple[np.ndarray, np.ndarray, dict[str, int]]] = []
        self._matrix_index: dict[str, int | None] = {}

    # -- channels ---------------------------------------------------------------------
    def column(self, name: str, gate: str) -> int:
        """Column of the channel whose ``$PnN`` (first) or ``$PnS`` is `name`."""
        if name in self._by_name:
            return self._by_name[name]
        hits = self._by_marker.get(name, [])
        if len(hits) == 1:
            return hits[0]
        have = ", ".join(c.label for c in self.channels)
        if len(hits) > 1:
            raise GatingError(
                f"{_who(gate)}: marker {name!r} names several channels of {self.sample_name}; "
                f"use the channel ($PnN) name. Channels: {have}"
            )
        raise GatingError(
            f"{_who(gate)} reads channel {name!r}, which {self.sample_name} does not have "
            f"as $PnN or $PnS{did_you_mean(name, self._names())}; its channels are: {have}. "
            f"If {name!r} is a marker, give the "
            "panel that maps it to its channel: cytokit gate --study DIR, or panel= (or a "
            "panel: table) for a YAML strategy"
        )

    def _names(self) -> list[str]:
        """Every ``$PnN`` and ``$PnS`` of the sample (what a misspelt name may mean)."""
        return [c.name for c in self.channels] + [c.marker for c in self.channels if c.marker]

    # -- compensation -----------------------------------------------------------------
    def matrix(self, ref: str, gate: str) -> int:
        """Index into `matrices` for compensation `ref`, or -1 for none."""
        if ref == UNCOMPENSATED:
            return -1
        if ref in self._matrix_index:
            i = self._matrix_index[ref]
            return -1 if i is None else i
        if ref == FCS:
            spill = self.spillover
            if spill is None:
                self._matrix_index[ref] = None
                return -1
            names = spill.channels
            cols = [self._spill_column(n, gate, spill.source) for n in names]
            positions = {n: j for j, n in enumerate(names)}
            matrix = spill.matrix
            what = f"the spillover matrix ({spill.source or 'given'}) of {self.sample_name}"
        elif ref in self.named:
            m = self.named[ref]
            cols = [self._spill_column(n, gate) for n in m.detectors]
            positions = {n: j for j, n in enumerate(m.detectors)}
            positions.update({n: j for j, n in enumerate(m.fluorochromes)})
            matrix = m.matrix
            what = f"spectrum matrix {ref!r}"
        else:
            known = ", ".join([UNCOMPENSATED, FCS, *self.named]) or "none"
            raise GatingError(
                f"{_who(gate)} uses compensation {ref!r}, which the strategy does not define; "
                f"known: {known}"
            )
        if len(set(cols)) != len(cols):
            raise GatingError(f"{what} names a channel twice; each detector must appear once")
        try:
            inverse = K.compensation_matrix(matrix)
        except ValueError as exc:
            raise GatingError(f"{what}: {exc}") from None
        self.matrices.append((inverse, np.asarray(cols, dtype=np.int64), positions))
        self._matrix_index[ref] = len(self.matrices) - 1
        return len(self.matrices) - 1

    def _spill_column(self, name: str, gate: str, file_source: str | None = None) -> int:
        """Column of detector `name` of a matrix; `file_source`: the keyword the file's own
        matrix came from (``$SPILLOVER``…), None for a matrix of the strategy."""
        if name in self._by_name:
            return self._by_name[name]
        hits = self._by_marker.get(name, [])
        if len(hits) == 1:
            return hits[0]
        if file_source is None:
            matrix, fix = "the compensation matrix", ""
        else:
            # the file contradicts itself: say which keyword, and how to gate it anyway
            matrix = f"the file's own spillover matrix ({file_source or 'its keywords'})"
            fix = (
                "; gate it uncompensated (cytokit gate --compensation none) or "
                "with a matrix that names its channels (--compensation MATRIX.csv)"
            )
        raise GatingError(
            f"{_who(gate)}: {matrix} names detector {name!r}, which "
            f"{self.sample_name} does not have{did_you_mean(name, self._names())}; its "
            "channels are: " + ", ".join(c.label for c in self.channels) + fix
        )

    # -- dimensions -------------------------------------------------------------------
    def _channel_column(self, name: str, comp: int, gate: str) -> int:
        if comp >= 0:
            _, cols, positions = self.matrices[comp]
            if name in positions:
                return int(cols[positions[name]])
        return self.column(name, gate)

    def dimension(self, d: Dimension, gate: str) -> ResolvedDimension:
        comp = self.matrix(d.compensation, gate)
        if d.ratio is not None:
            col = self._channel_column(d.ratio.numerator, comp, gate)
            col2 = self._channel_column(d.ratio.denominator, comp, gate)
            abc = (float(d.ratio.A), float(d.ratio.B), float(d.ratio.C))
        else:
            col = self._channel_column(d.channel, comp, gate)
            col2, abc = -1, (0.0, 0.0, 0.0)
            self._check_aliases(d, col, gate)
        if d.transform is None:
            kind, params = K.XF_NONE, K.transform_params(K.XF_NONE)
        else:
            kind, params = d.transform.code, d.transform.vector
        return ResolvedDimension(col, col2, abc, comp, kind, params)

    def _check_aliases(self, d: Dimension, col: int, gate: str) -> None:
        """Refuse a transform override the file gave this channel under another name, which
        this sample's channels reveal (see `Dimension.aliased_transforms`)."""
        for key, xf in d.aliased_transforms:
            hits = [self._by_name[key]] if key in self._by_name else self._by_marker.get(key, [])
            if hits != [col] or xf == d.transform:
                continue
            c = self.channels[col]
            link = f"panel: {{{c.marker}: {c.name}}}" if c.marker else "a panel entry"
            raise GatingError(
                f"{self.source or 'strategy'}: {_who(gate)} reads {d.channel!r} as "
                f"{_show(d.transform)}, but {d.channel!r} "
                f"and {key!r} are one channel of {self.sample_name} ({c.label}), which the "
                f"strategy's transform overrides under {key!r} as {_show(xf)}; an override "
                f"follows the channel whichever name a gate uses: add {link} to the strategy "
                "(or the study's [panel]) so it is read as one channel, or give the two names "
                "one transform"
            )


def _show(transform) -> str:
    return "no transform" if transform is None else repr(transform)


def dimension_columns(resolver: Resolver, d: Dimension, gate: str = "") -> set[int]:
    """The event columns whose values the value of `d` depends on.

    Its channel (and a ratio's denominator) and, when it is compensated, every
    column the inverse matrix mixes into it: a NaN or an infinity in any of
    those columns makes the compensated value non-finite.
    """
    r = resolver.dimension(d, gate)
    own = {r.column} | ({r.column2} if r.column2 >= 0 else set())
    if r.compensation < 0:
        return own
    inv, cols, _ = resolver.matrices[r.compensation]
    out = set(own)
    for c in own:
        where = np.flatnonzero(cols == c)
        if where.size:
            out.update(int(x) for x in cols[inv[:, where[0]] != 0.0])
    return out


def compile_plan(
    gates: Sequence[Gate], resolver: Resolver, plan_rows: dict[str, int] | None = None
) -> tuple[K.GatingPlan, dict[str, int]]:
    """Compile gates (in dependency order, none adaptive) into a `GatingPlan`.

    Returns the plan and ``{population id: plan gate row}``.
    """
    plan, rows, _ = compile_plan_dims(gates, resolver, (), plan_rows)
    return plan, rows


def compile_plan_dims(
    gates: Sequence[Gate],
    resolver: Resolver,
    extra_dims: Sequence[Dimension],
    plan_rows: dict[str, int] | None = None,
) -> tuple[K.GatingPlan, dict[str, int], list[int]]:
    """`compile_plan` with extra dimensions that no gate reads (for `kernels.population_stats`).

    The gates get the same plan rows as from `compile_plan`; the fused pass
    skips dimensions no gate reads, so counts cost the same.

    Returns
    -------
    plan, rows, dim_indices
        The plan, ``{population id: plan gate row}`` and the plan dimension
        index of each of `extra_dims`.
    """
    b = K.PlanBuilder()
    comp_index: dict[int, int] = {}
    rows: dict[str, int] = {} if plan_rows is None else plan_rows

    def dim(d: Dimension, gate: str) -> int:
        r = resolver.dimension(d, gate)
        comp = -1
        if r.compensation >= 0:
            if r.compensation not in comp_index:
                inv, cols, _ = resolver.matrices[r.compensation]
                comp_index[r.compensation] = b.compensation(inv, cols)
            comp = comp_index[r.compensation]
        ratio = None if r.column2 < 0 else (r.column2, *r.ratio)
        return b.dimension(
            r.column, compensation=comp, transform=r.transform, params=r.params, ratio=ratio
        )

    for g in gates:
        parent = -1 if g.parent is None else rows[g.parent]
        try:
            if isinstance(g, RectangleGate):
                dims = [dim(d, g.id) for d in g.dims]
                rows[g.id] = b.rectangle(dims, g.min, g.max, parent=parent, name=g.id)
            elif isinstance(g, PolygonGate):
                dims = _distinct([dim(d, g.id) for d in g.dims], g.dims, g.id, resolver)
                rows[g.id] = b.polygon(dims, g.vertices, parent=parent, name=g.id)
            elif isinstance(g, EllipsoidGate):
                dims = _distinct([dim(d, g.id) for d in g.dims], g.dims, g.id, resolver)
                rows[g.id] = b.ellipsoid(
                    dims, g.mean, g.covariance, g.distance_square, parent=parent, name=g.id
                )
            elif isinstance(g, QuadrantGate):
                dims = [dim(dv.dimension, g.id) for dv in g.dividers]
                # a split_by gate cuts one dimension twice on purpose: the same Dimension
                own = list(dict.fromkeys(g.dimensions))
                _distinct([dims[g.dimensions.index(d)] for d in own], own, g.id, resolver)
                values = [dv.values for dv in g.dividers]
                ids = [q.id for q in g.quadrants]
                made = b.quadrants(dims, values, g.intervals(), parent=parent, names=ids)
                rows.update(zip(ids, made, strict=True))
            elif isinstance(g, BooleanGate):
                rows[g.id] = b.boolean(
                    g.op,
                    [rows[o] for o in g.operands],
                    g.complement,
                    parent=parent,
                    name=g.id,
                )
            elif isinstance(g, AdaptiveGate):
                raise GatingError(f"gate {g.id!r} is adaptive and has not been fitted")
            else:
                raise GatingError(f"gate {g.id!r}: unsupported gate type {type(g).__name__}")
        except ValueError as exc:
            if isinstance(exc, GatingError):
                raise
            raise GatingError(f"gate {g.id!r}: {exc}") from None
    extra = [dim(d, "statistics") for d in extra_dims]
    return b.build(), rows, extra


def _distinct(
    indices: list[int], dims: Sequence[Dimension], gate: str, resolver: Resolver
) -> list[int]:
    """`indices` (plan dimensions of `dims`), refused if two different names of `dims` are
    one channel of this sample: a gate would cut or draw in one dimension twice."""
    seen: dict[int, Dimension] = {}
    for i, d in zip(indices, dims, strict=True):
        first = seen.setdefault(i, d)
        if first is not d:
            raise GatingError(
                f"{resolver.source or 'strategy'}: gate {gate!r} reads {first.label} and "
                f"{d.label}, which are one channel of {resolver.sample_name}, as two of its "
                "dimensions; name two different channels"
            )
    return indices


def dimension_values(
    events: np.ndarray, resolver: Resolver, dims: Sequence[Dimension], rows=None, gate: str = ""
) -> np.ndarray:
    """The values gates see on `dims` for the events `rows` (all if None).

    Returns
    -------
    ndarray of float64, shape (n_rows, len(dims))
        Compensated, ratioed and transformed like the fused evaluator does.
    """
    resolved = [resolver.dimension(d, gate) for d in dims]
    if rows is None:
        rows = slice(None)
        n = events.shape[0]
    else:
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            rows = np.flatnonzero(rows)
        n = rows.shape[0]
    out = np.empty((n, len(dims)), dtype=np.float64)
    compensated: dict[int, np.ndarray] = {}
    cache: dict[tuple[int, int], np.ndarray] = {}

    def source(col: int, comp: int) -> np.ndarray:
        key = (col, comp)
        if key in cache:
            return cache[key]
        if comp >= 0:
            inv, cols, _ = resolver.matrices[comp]
            where = np.flatnonzero(cols == col)
            if where.size:
                if comp not in compensated:
                    compensated[comp] = _gather(events, rows, n, cols) @ inv
                # contiguous columns: the transform kernels then compile one array layout
                cache[key] = np.ascontiguousarray(compensated[comp][:, where[0]])
                return cache[key]
        cache[key] = np.ascontiguousarray(events[rows, col], dtype=np.float64)
        return cache[key]

    for j, (d, r) in enumerate(zip(dims, resolved, strict=True)):
        x = source(r.column, r.compensation)
        if r.column2 >= 0:
            x = K.ratio(x, source(r.column2, r.compensation), *r.ratio)
        if d.transform is None:
            out[:, j] = x
        else:
            out[:, j] = d.transform.apply(x)
    return out


def _gather(events: np.ndarray, rows, n: int, cols: np.ndarray) -> np.ndarray:
    """``np.asarray(events[rows][:, cols], dtype=np.float64)`` without copying the other
    columns of every row first.

    The result has that expression's memory layout too (column-major, or
    row-major when a dimension has length 1), so that its product with the
    inverse spillover matrix is the same BLAS call, whose last bits the
    adaptive gates' fits depend on.
    """
    if events.dtype == np.float64:  # no conversion: the expression itself, no copy to save
        return events[rows][:, cols]
    picked = events[:, cols] if isinstance(rows, slice) else events[np.ix_(rows, cols)]
    like = np.empty((cols.shape[0], n), dtype=events.dtype).T  # what events[rows][:, cols] is
    block = np.empty_like(like, dtype=np.float64)
    block[...] = picked
    return block
