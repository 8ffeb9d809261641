"""Gates and the dimensions they read, as immutable value objects.

A gate tests events in the space of its `Dimension`\\ s: a channel, compensated
(or not) and transformed (or not), exactly as Gating-ML 2.0 defines it. A gate
names its parent by id; membership is always the gate's own test ANDed with its
parent's membership. The shapes are those of Gating-ML 2.0:

* `RectangleGate` (also a 1-D range): ``min <= v < max`` per dimension, either
  side open (None);
* `PolygonGate` on two dimensions, even–odd fill rule (a self-intersecting
  polygon has holes where it overlaps itself; see `cytokit.kernels.gates`);
* `EllipsoidGate` in any number of dimensions: ``(v − μ)ᵀ C⁻¹ (v − μ) <= d²``;
* `QuadrantGate`: dividers cut the space into `Quadrant`\\ s, each of which is
  a population with its own id; a value equal to a divider value lies on the
  upper side;
* `BooleanGate`: AND, OR or NOT of other gates (or quadrants), each operand
  optionally used as its complement.

`AdaptiveGate` is the base of gates that place themselves on each sample's
data (`cytokit.gating.adaptive`): when a strategy is applied, each adaptive
gate is fitted on its parent's events and replaced by a concrete gate of one of
the shapes above, which the result keeps so that the placement can be shown and
checked.

Geometry is validated when the gate is made; a bad value raises `GatingError`
naming the gate.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.transforms import RatioTransform, Transform
from cytokit.kernels import geometry

__all__ = [
    "FCS",
    "UNCOMPENSATED",
    "AdaptiveGate",
    "BooleanGate",
    "Dimension",
    "Divider",
    "EllipsoidGate",
    "Gate",
    "PolygonGate",
    "Quadrant",
    "QuadrantGate",
    "RectangleGate",
    "SpectrumMatrix",
]

#: ``compensation`` of a dimension read as stored.
UNCOMPENSATED = "uncompensated"
#: ``compensation`` of a dimension compensated with the sample's own spillover
#: matrix (``$SPILLOVER``/``$SPILL``/``SPILL``), or the one the caller gives
#: `GatingStrategy.apply`. As Gating-ML 2.0 specifies, a sample without one
#: leaves the dimension uncompensated.
FCS = "FCS"


@dataclass(frozen=True)
class SpectrumMatrix:
    """A named spillover (spectrum) matrix: Gating-ML's ``spectrumMatrix``.

    Row ``i`` is how fluorochrome ``i`` spills into each detector. A dimension
    compensated with this matrix may name a fluorochrome: its compensated value
    is the fluorochrome's estimate. Only square matrices are supported.

    Attributes
    ----------
    id : str
    fluorochromes, detectors : tuple of str
        Detectors are ``$PnN`` channel names.
    matrix : ndarray of float64, shape (n, n)
    """

    id: str
    fluorochromes: tuple[str, ...]
    detectors: tuple[str, ...]
    matrix: np.ndarray = field(compare=False)

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64)
        object.__setattr__(self, "fluorochromes", tuple(self.fluorochromes))
        object.__setattr__(self, "detectors", tuple(self.detectors))
        n, k = len(self.fluorochromes), len(self.detectors)
        if m.shape != (n, k):
            raise GatingError(
                f"spectrum matrix {self.id!r}: matrix has shape {m.shape} but names {n} "
                f"fluorochromes and {k} detectors"
            )
        if n != k:
            raise GatingError(
                f"spectrum matrix {self.id!r} is {n}×{k}; only square matrices (as many "
                "fluorochromes as detectors) can be inverted for compensation"
            )
        if not np.all(np.isfinite(m)):
            raise GatingError(f"spectrum matrix {self.id!r} has NaN or infinite entries")
        m.flags.writeable = False
        object.__setattr__(self, "matrix", m)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpectrumMatrix):
            return NotImplemented
        return (
            self.id == other.id
            and self.fluorochromes == other.fluorochromes
            and self.detectors == other.detectors
            and np.array_equal(self.matrix, other.matrix)
        )

    def __hash__(self) -> int:
        return hash((self.id, self.fluorochromes, self.detectors))


@dataclass(frozen=True)
class Dimension:
    """One axis a gate reads.

    Attributes
    ----------
    channel : str
        ``$PnN`` (or ``$PnS``) of the channel; with a named compensation matrix
        it may be one of the matrix's fluorochromes. For a ratio dimension,
        a name for the ratio (Gating-ML: the ``fratio`` id).
    compensation : str
        `UNCOMPENSATED`, `FCS` (the sample's own spillover) or the id of a
        `SpectrumMatrix` of the strategy.
    transform : Transform or None
        Applied after compensation (and after the ratio).
    ratio : RatioTransform or None
        Makes this the ratio of two channels (both compensated first).
    aliased_transforms : tuple of (str, Transform or None)
        Transforms a strategy file gives the channel under other names (a YAML
        ``transform:`` sub-table keyed by a marker, when the gate names the
        detector, or the reverse) that could not be tied to this channel when
        the file was read, having no panel entry linking the two names. Each
        sample's channels settle it: where such a name is this channel and its
        transform differs from `transform`, the strategy is refused
        (`cytokit.gating.compile.Resolver.dimension`). Not part of equality, nor of
        the gate's written form (a check of the file it was read from).
    """

    channel: str
    compensation: str = UNCOMPENSATED
    transform: Transform | None = None
    ratio: RatioTransform | None = None
    aliased_transforms: tuple[tuple[str, Transform | None], ...] = field(
        default=(), compare=False, repr=False, metadata={"derived": True}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel:
            raise GatingError(f"a dimension needs a channel name, got {self.channel!r}")
        if self.transform is not None and not isinstance(self.transform, Transform):
            raise GatingError(
                f"dimension {self.channel!r}: transform must be a Transform, got "
                f"{type(self.transform).__name__}"
            )

    @property
    def label(self) -> str:
        """A short human label: ``"logicle(CD3) [FCS]"``."""
        s = self.channel
        if self.ratio is not None:
            s = f"{self.ratio.numerator}/{self.ratio.denominator}"
        if self.transform is not None:
            s = f"{self.transform.kind}({s})"
        if self.compensation != UNCOMPENSATED:
            s += f" [{self.compensation}]"
        return s


def _bound(v, gate: str, what: str) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise GatingError(f"gate {gate!r}: {what}={v!r} is not a number") from None
    if math.isnan(x):
        return None
    return x


@dataclass(frozen=True, kw_only=True)
class Gate:
    """Base of every gate.

    Attributes
    ----------
    id : str
        Unique in its strategy (quadrant ids share that name space).
    parent : str or None
        Id of the parent gate or quadrant; None for a top-level gate (all events).
    name : str
        The population's name in paths (``/Lymphocytes/Singlets``); defaults to `id`.
    """

    id: str
    parent: str | None = None
    name: str = ""
    kind: ClassVar[str] = "gate"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise GatingError(f"a {self.kind} gate needs a non-empty id, got {self.id!r}")
        if not self.name:
            object.__setattr__(self, "name", self.id)
        if self.parent == "":
            object.__setattr__(self, "parent", None)

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return ()

    @property
    def population_ids(self) -> tuple[str, ...]:
        """Ids of the populations this gate defines (itself; a quadrant gate: its quadrants)."""
        return (self.id,)

    @property
    def references(self) -> tuple[str, ...]:
        """Ids of other gates this gate's membership depends on (parent and operands)."""
        return () if self.parent is None else (self.parent,)


def _dims(
    dimensions, gate: str, n: int | None = None, distinct: bool = False
) -> tuple[Dimension, ...]:
    dims = tuple(dimensions)
    for d in dims:
        if not isinstance(d, Dimension):
            raise GatingError(
                f"gate {gate!r}: dimensions must be Dimension objects, got {type(d).__name__}"
            )
    if not dims or (n is not None and len(dims) != n):
        want = f"exactly {n}" if n is not None else "at least one"
        raise GatingError(f"gate {gate!r} needs {want} dimension(s), got {len(dims)}")
    if distinct and len(set(dims)) < len(dims):
        twice = next(d for d in dims if dims.count(d) > 1)
        raise GatingError(
            f"gate {gate!r} reads {twice.label} on two of its axes, so its shape lies on a "
            "line; give each axis a different dimension (a range on one is a rectangle gate)"
        )
    return dims


@dataclass(frozen=True, kw_only=True)
class RectangleGate(Gate):
    """``min[j] <= v[j] < max[j]`` for every dimension ``j``; None is an open side."""

    dims: tuple[Dimension, ...]
    min: tuple[float | None, ...]
    max: tuple[float | None, ...]
    kind: ClassVar[str] = "rectangle"

    def __post_init__(self) -> None:
        super().__post_init__()
        dims = _dims(self.dims, self.id)
        lo = tuple(_bound(v, self.id, "min") for v in self.min)
        hi = tuple(_bound(v, self.id, "max") for v in self.max)
        if len(lo) != len(dims) or len(hi) != len(dims):
            raise GatingError(
                f"gate {self.id!r}: {len(dims)} dimension(s) but {len(lo)} min and {len(hi)} max "
                "values; give one of each per dimension (None for an open side)"
            )
        if all(a is None and b is None for a, b in zip(lo, hi, strict=True)):
            raise GatingError(f"gate {self.id!r}: every side is open; give at least one bound")
        try:
            geometry.range_bounds(lo, hi, f"gate {self.id!r}", [d.label for d in dims])
        except ValueError as exc:
            raise GatingError(str(exc)) from None
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self.dims


@dataclass(frozen=True, kw_only=True)
class PolygonGate(Gate):
    """Polygon on two dimensions (x, y); even–odd rule; edges close back to the first vertex."""

    dims: tuple[Dimension, ...]
    vertices: tuple[tuple[float, float], ...]
    kind: ClassVar[str] = "polygon"

    def __post_init__(self) -> None:
        super().__post_init__()
        dims = _dims(self.dims, self.id, 2, distinct=True)
        try:
            v = np.asarray(self.vertices, dtype=np.float64)
            geometry.polygon_geometry(v, f"gate {self.id!r}")
        except (TypeError, ValueError) as exc:
            raise GatingError(str(exc)) from None
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "vertices", tuple((float(x), float(y)) for x, y in v))

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self.dims


@dataclass(frozen=True, kw_only=True)
class EllipsoidGate(Gate):
    """``(v − mean)ᵀ covariance⁻¹ (v − mean) <= distance_square``."""

    dims: tuple[Dimension, ...]
    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    distance_square: float
    kind: ClassVar[str] = "ellipsoid"

    def __post_init__(self) -> None:
        super().__post_init__()
        dims = _dims(self.dims, self.id, distinct=True)
        try:
            geometry.ellipsoid_geometry(
                self.mean, self.covariance, self.distance_square, f"gate {self.id!r}"
            )
        except (TypeError, ValueError) as exc:
            raise GatingError(str(exc)) from None
        mean = tuple(float(x) for x in self.mean)
        if len(mean) != len(dims):
            raise GatingError(
                f"gate {self.id!r}: mean has {len(mean)} values for {len(dims)} dimensions"
            )
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(
            self, "covariance", tuple(tuple(float(x) for x in r) for r in self.covariance)
        )
        object.__setattr__(self, "distance_square", float(self.distance_square))

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self.dims


@dataclass(frozen=True)
class Divider:
    """One divider of a quadrant gate: a dimension cut at increasing ``values``."""

    id: str
    dimension: Dimension
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        vals = tuple(float(v) for v in self.values)
        if not vals or any(not math.isfinite(v) for v in vals):
            raise GatingError(f"divider {self.id!r}: values {vals} must be finite, at least one")
        if any(b <= a for a, b in itertools.pairwise(vals)):
            raise GatingError(f"divider {self.id!r}: values {vals} must be strictly increasing")
        object.__setattr__(self, "values", vals)


@dataclass(frozen=True)
class Quadrant:
    """One quadrant: for each divider it names, a location inside the wanted interval.

    ``positions`` pairs a divider id with a value; the quadrant is the interval
    of that divider containing the value (Gating-ML's ``position``/``location``).
    Dividers a quadrant does not name do not restrict it.
    """

    id: str
    positions: tuple[tuple[str, float], ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        object.__setattr__(self, "positions", tuple((str(d), float(v)) for d, v in self.positions))


@dataclass(frozen=True, kw_only=True)
class QuadrantGate(Gate):
    """Dividers that cut the space into quadrants; each quadrant is a population."""

    dividers: tuple[Divider, ...]
    quadrants: tuple[Quadrant, ...]
    kind: ClassVar[str] = "quadrant"

    def __post_init__(self) -> None:
        super().__post_init__()
        divs = tuple(self.dividers)
        quads = tuple(self.quadrants)
        if not divs or not quads:
            raise GatingError(f"quadrant gate {self.id!r} needs dividers and quadrants")
        ids = [d.id for d in divs]
        if len(set(ids)) != len(ids):
            raise GatingError(f"quadrant gate {self.id!r}: divider ids {ids} repeat")
        for q in quads:
            for ref, _ in q.positions:
                if ref not in ids:
                    raise GatingError(
                        f"quadrant {q.id!r} of gate {self.id!r} names divider {ref!r}; "
                        f"the dividers are {', '.join(ids)}"
                    )
        object.__setattr__(self, "dividers", divs)
        object.__setattr__(self, "quadrants", quads)

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return tuple(d.dimension for d in self.dividers)

    @property
    def population_ids(self) -> tuple[str, ...]:
        return tuple(q.id for q in self.quadrants)

    @property
    def shares_a_dimension(self) -> bool:
        """Two dividers on one dimension (a ``split_by`` quadrant: CD56 cut once below the
        CD3 divider and once above), which FlowKit cannot gate as one quadrant gate."""
        return len({d.dimension for d in self.dividers}) < len(self.dividers)

    def bounds(self) -> list[dict[Dimension, tuple[float | None, float | None]]]:
        """Per quadrant (in order), its ``[lo, hi)`` on each dimension its dividers cut
        (None: open), two dividers on one dimension intersected: the quadrant as the
        rectangle a reader without such quadrants can gate (the same events)."""
        out = []
        for q, row in zip(self.quadrants, self.intervals(), strict=True):
            bounds: dict[Dimension, tuple[float | None, float | None]] = {}
            for d, k in zip(self.dividers, row, strict=True):
                if k < 0:
                    continue
                vals = (None, *d.values, None)
                lo, hi = bounds.get(d.dimension, (None, None))
                if vals[k] is not None:
                    lo = vals[k] if lo is None else max(lo, vals[k])
                if vals[k + 1] is not None:
                    hi = vals[k + 1] if hi is None else min(hi, vals[k + 1])
                bounds[d.dimension] = (lo, hi)
            if not bounds:
                raise GatingError(f"quadrant {q.id!r} of gate {self.id!r} names no divider")
            out.append(bounds)
        return out

    def intervals(self) -> np.ndarray:
        """Interval index of each quadrant on each divider (-1: not named), shape (nq, nd)."""
        ids = [d.id for d in self.dividers]
        out = np.full((len(self.quadrants), len(ids)), -1, dtype=np.int64)
        for i, q in enumerate(self.quadrants):
            for ref, loc in q.positions:
                j = ids.index(ref)
                out[i, j] = geometry.quadrant_interval(self.dividers[j].values, loc)
        return out


_OPS = ("and", "or", "not")


@dataclass(frozen=True, kw_only=True)
class BooleanGate(Gate):
    """AND / OR / NOT of other gates' memberships (ANDed with this gate's parent, if any)."""

    op: str
    operands: tuple[str, ...]
    complement: tuple[bool, ...] = ()
    kind: ClassVar[str] = "boolean"

    def __post_init__(self) -> None:
        super().__post_init__()
        op = str(self.op).lower()
        if op not in _OPS:
            raise GatingError(f"boolean gate {self.id!r}: op {self.op!r} must be and, or or not")
        ops = tuple(str(o) for o in self.operands)
        comp = tuple(bool(c) for c in self.complement) or (False,) * len(ops)
        if len(comp) != len(ops):
            raise GatingError(
                f"boolean gate {self.id!r}: {len(ops)} operands but {len(comp)} complement flags"
            )
        if op == "not" and len(ops) != 1:
            raise GatingError(f"boolean gate {self.id!r}: 'not' takes one operand, got {len(ops)}")
        if not ops:
            raise GatingError(f"boolean gate {self.id!r}: {op!r} needs at least one operand")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "operands", ops)
        object.__setattr__(self, "complement", comp)

    @property
    def references(self) -> tuple[str, ...]:
        return super().references + self.operands


@dataclass(frozen=True, kw_only=True)
class AdaptiveGate(Gate):
    """A gate placed on each sample's data; subclasses implement `fit`.

    Attributes
    ----------
    dims : tuple of Dimension
        The dimensions whose values (of the parent's events) `fit` receives.
    """

    dims: tuple[Dimension, ...]
    kind: ClassVar[str] = "adaptive"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "dims", _dims(self.dims, self.id))

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self.dims

    def fit(self, values: np.ndarray, rng: np.random.Generator) -> Gate:
        """The concrete gate for one sample.

        Parameters
        ----------
        values : ndarray of float64, shape (n, len(dims))
            The dimension values (compensated and transformed) of the parent's
            events, possibly a random subsample; may contain NaN.
        rng : numpy.random.Generator
            For any randomness (seeded per sample, so results repeat).

        Returns
        -------
        Gate
            A non-adaptive gate with this gate's ``id``, ``parent`` and ``name``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement fit")
