"""Density-valley thresholds and the gates built on them (see `cytokit.gating.adaptive`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from cytokit._numbers import counted
from cytokit.errors import GatingError
from cytokit.gating.adaptive.base import (
    NoFit,
    bandwidth,
    finite,
    number,
    smoothed_density,
    use_fallback,
)
from cytokit.gating.gates import (
    AdaptiveGate,
    Divider,
    Gate,
    PolygonGate,
    Quadrant,
    QuadrantGate,
    RectangleGate,
)
from cytokit.stats.density import peaks as density_peaks

__all__ = [
    "Valley",
    "ValleyGate",
    "ValleyQuadrantGate",
    "find_valley",
    "quadrant_gate",
    "quadrant_signs",
]

_SINGLE = ("auto", "negative", "positive", "none")


@dataclass(frozen=True)
class Valley:
    """How to place one threshold; positions are in the dimension's (transformed) units.

    Attributes
    ----------
    between : (float or None, float or None)
        The threshold must lie in this window; None leaves a side open.
    fallback : float or None
        Fixed threshold used (with an `AdaptiveGateWarning`) when the data do
        not allow a fit; None: the fit raises `GatingError` instead.
    single : {"auto", "negative", "positive", "none"}
        What a lone mode is (see the module docstring); "none": a lone mode is
        a failed fit.
    spread : float
        Robust standard deviations between a lone mode and the threshold.
    smooth : float
        Multiplies the kernel bandwidth (Silverman's rule).
    min_peak : float
        A mode counts if at least this fraction of the tallest one.
    max_valley : float
        A valley counts if its density is at most this fraction of the
        smaller of its two modes.
    min_events : int
        Fewer finite values than this is a failed fit.
    fixed : float or None
        A fixed threshold: no fitting at all.
    """

    between: tuple[float | None, float | None] = (None, None)
    fallback: float | None = None
    single: str = "auto"
    spread: float = 4.0
    smooth: float = 1.0
    min_peak: float = 0.003
    max_valley: float = 0.75
    min_events: int = 50
    fixed: float | None = None

    def check(self, gate: str) -> Valley:
        """A validated copy (numbers as floats); raises `GatingError` naming `gate`."""
        b = tuple(self.between)
        if len(b) != 2:
            raise GatingError(f"gate {gate!r}: between={b!r} must be [low, high]")
        lo, hi = (number(v, gate, "between") for v in b)
        if lo is not None and hi is not None and not lo < hi:
            raise GatingError(f"gate {gate!r}: between=[{lo}, {hi}] must have low < high")
        single = str(self.single).lower()
        if single not in _SINGLE:
            raise GatingError(
                f"gate {gate!r}: single={self.single!r} must be one of {', '.join(_SINGLE)}"
            )
        spread = number(self.spread, gate, "spread", allow_none=False)
        smooth = number(self.smooth, gate, "smooth", allow_none=False)
        min_peak = number(self.min_peak, gate, "min_peak", allow_none=False)
        max_valley = number(self.max_valley, gate, "max_valley", allow_none=False)
        if spread <= 0 or smooth <= 0:
            raise GatingError(f"gate {gate!r}: spread and smooth must be > 0")
        if not (0 < min_peak < 1 and 0 < max_valley < 1):
            raise GatingError(
                f"gate {gate!r}: min_peak={min_peak} and max_valley={max_valley} must be "
                "between 0 and 1"
            )
        return Valley(
            between=(lo, hi),
            fallback=number(self.fallback, gate, "fallback"),
            single=single,
            spread=spread,
            smooth=smooth,
            min_peak=min_peak,
            max_valley=max_valley,
            min_events=max(int(self.min_events), 3),
            fixed=number(self.fixed, gate, "fixed"),
        )


def find_valley(x: np.ndarray, valley: Valley = Valley()) -> tuple[float, str]:
    """Place a threshold on one dimension's values (see the module docstring).

    Parameters
    ----------
    x : array_like of float
        Values (NaN and inf ignored).
    valley : Valley

    Returns
    -------
    threshold : float
    how : str
        "valley", "negative mode", "positive mode" or "fixed".

    Raises
    ------
    GatingError
        When the data do not allow a fit (the caller decides on a fallback).
    """
    try:
        return _place(x, valley.check("find_valley"))
    except NoFit as exc:
        raise GatingError(str(exc)) from None


def _place(x: np.ndarray, v: Valley) -> tuple[float, str]:
    if v.fixed is not None:
        return float(v.fixed), "fixed"
    x = finite(x)
    found, grid, dens = _valley(x, v)
    if found is not None:
        return found[0], "valley"
    return _single_mode(x, grid, dens, v)


def _valley(x: np.ndarray, v: Valley):
    """((position, depth) or None, grid, density) for finite `x`; depth = valley / smaller mode."""
    if x.size < v.min_events:
        raise NoFit(f"{counted(x.size, 'event')}, fewer than the {v.min_events} a threshold needs")
    lo_w, hi_w = v.between
    (q_lo, q_hi), bw = bandwidth(x, (0.0005, 0.9995))
    bw = bw * v.smooth
    if not bw > 0:
        raise NoFit("every value is the same; there is no distribution to cut")
    lo = min(q_lo, lo_w if lo_w is not None else q_lo) - 3 * bw
    hi = max(q_hi, hi_w if hi_w is not None else q_hi) + 3 * bw
    grid, dens = smoothed_density(x, lo, hi, bw)
    top = dens.max()
    peaks = density_peaks(dens, ends=False)
    peaks = peaks[dens[peaks] >= v.min_peak * top]
    best, best_score = None, -1.0
    # the tallest density left of (and including) each bin, and right of it
    left_top = np.maximum.accumulate(dens)
    right_top = np.maximum.accumulate(dens[::-1])[::-1]
    # every pair of modes, not only neighbours: a noise bump inside a valley
    # must not hide it
    for a, b in itertools.combinations(peaks.tolist(), 2):
        seg = dens[a : b + 1]
        i = int(np.argmin(seg))
        low = seg[i]
        small = min(dens[a], dens[b])
        if low > v.max_valley * small:
            continue
        score = min(left_top[a], right_top[b]) - low
        if not score > best_score:
            continue
        if low <= 0.02 * small:
            # the empty bottom of a wide gap: its middle, not its noisy lowest bin
            j0, j1 = _run(seg <= low + 0.02 * (small - low), i)
            pos = float(grid[a + (j0 + j1) // 2])
        else:
            # A small, broad population beside a large, narrow one leaves a
            # shallow valley whose lowest point lies past where the large one's
            # tail meets the small one; take the end of the stretch within 30 %
            # of the lowest density that faces the larger mode.
            k0, k1 = _run(seg <= 1.3 * low, i)
            pos = float(grid[a + (k0 if dens[a] > dens[b] else k1)])
        if (lo_w is not None and pos < lo_w) or (hi_w is not None and pos > hi_w):
            continue
        best, best_score = (pos, low / small if small > 0 else 1.0), score
    return best, grid, dens


def _run(mask: np.ndarray, i: int) -> tuple[int, int]:
    """First and last index of the run of True in `mask` around index `i`."""
    j0 = j1 = i
    while j0 > 0 and mask[j0 - 1]:
        j0 -= 1
    while j1 < len(mask) - 1 and mask[j1 + 1]:
        j1 += 1
    return j0, j1


def _single_mode(x: np.ndarray, grid: np.ndarray, dens: np.ndarray, v: Valley) -> tuple[float, str]:
    mode = float(grid[int(np.argmax(dens))])
    side = v.single
    if side == "none":
        raise NoFit("no density valley between two modes (one population only?)")
    if side == "auto":
        ref = v.fallback
        if ref is None and v.between[0] is not None and v.between[1] is not None:
            ref = 0.5 * (v.between[0] + v.between[1])
        if ref is None:
            raise NoFit(
                "no density valley between two modes, and no fallback or between window "
                "to tell whether the lone mode is the negative or the positive population "
                "(set single: negative or positive)"
            )
        side = "negative" if mode < ref else "positive"
    far = (mode - x[x < mode]) if side == "negative" else (x[x > mode] - mode)
    if far.size < 10:
        raise NoFit("no density valley, and too few events beside the lone mode to size it")
    sd = float(np.median(far)) / 0.6745
    t = mode + v.spread * sd if side == "negative" else mode - v.spread * sd
    lo_w, hi_w = v.between
    if lo_w is not None:
        t = max(t, lo_w)
    if hi_w is not None:
        t = min(t, hi_w)
    return float(t), f"{side} mode"


# -- gates on valleys --------------------------------------------------------------------
_KEEP = {"above": "above", "positive": "above", "+": "above", "below": "below"}
_KEEP.update({"negative": "below", "-": "below"})


@dataclass(frozen=True, kw_only=True)
class ValleyGate(AdaptiveGate):
    """A marker cut at its density valley; keeps the events ``above`` or ``below`` the cut.

    With two dimensions ``(x, y)`` the cut is a line across ``y`` tilted along
    ``x``: ``y = t + slope · (x − x̃)``, ``x̃`` the median of ``x``. For each of
    `n_slopes` slopes in `slopes` the events are projected on
    ``y − slope · (x − x̃)`` and the valley found there; the slope whose valley is
    deepest (lowest density relative to its smaller mode) wins, ties going to
    the flatter slope. CD56bright NK cells part from CD56dim ones along such a
    line on CD16 × CD56, better than on CD56 alone. ``between`` and
    ``fallback`` then refer to ``t``, the cut at the median ``x``; without a
    valley at any slope the lone-mode rule is applied to the flat cut.

    Attributes
    ----------
    dims : one Dimension, or two (x, then the cut dimension y)
    keep : {"above", "below"}
        ``above``: ``threshold <= v`` (positive side); ``below``: ``v < threshold``.
    valley : Valley
    slopes : (float, float)
        Range of slopes searched (two dimensions only), in y units per x unit.
    n_slopes : int
    """

    keep: str = "above"
    valley: Valley = field(default_factory=Valley)
    slopes: tuple[float, float] = (-2.0, 2.0)
    n_slopes: int = 41
    kind: ClassVar[str] = "valley"

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.dims) not in (1, 2):
            raise GatingError(
                f"valley gate {self.id!r} reads one dimension (or two: x tilting a cut on y), "
                f"got {len(self.dims)}; use ValleyQuadrantGate for quadrants"
            )
        keep = _KEEP.get(str(self.keep).lower())
        if keep is None:
            raise GatingError(f"valley gate {self.id!r}: keep={self.keep!r} must be above or below")
        lo, hi = (number(v, self.id, "slopes", allow_none=False) for v in self.slopes)
        if not lo <= hi or int(self.n_slopes) < 1:
            raise GatingError(
                f"valley gate {self.id!r}: slopes={self.slopes!r} must be [low, high] with "
                f"low <= high, and n_slopes={self.n_slopes} >= 1"
            )
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "valley", self.valley.check(self.id))
        object.__setattr__(self, "slopes", (lo, hi))
        object.__setattr__(self, "n_slopes", int(self.n_slopes))

    def fit(self, values: np.ndarray, rng: np.random.Generator) -> Gate:
        if len(self.dims) == 2:
            return self._fit_line(values)
        try:
            t, _ = _place(values[:, 0], self.valley)
        except NoFit as exc:
            t = use_fallback(self, str(exc), self.valley.fallback, events=values.shape[0])
        lo, hi = (t, None) if self.keep == "above" else (None, t)
        return RectangleGate(
            id=self.id, parent=self.parent, name=self.name, dims=self.dims, min=(lo,), max=(hi,)
        )

    def _fit_line(self, values: np.ndarray) -> Gate:
        v = values[np.all(np.isfinite(values), axis=1)]
        x, y = v[:, 0], v[:, 1]
        x0 = float(np.median(x)) if x.size else 0.0
        slope, t = 0.0, None
        try:
            if self.valley.fixed is not None:
                t = self.valley.fixed
            else:
                slopes = np.linspace(*self.slopes, self.n_slopes)
                best = None
                dx = x - x0
                for s in sorted(slopes.tolist(), key=abs):
                    found, _, _ = _valley(y - s * dx, self.valley)
                    if found is not None and (best is None or found[1] < best[1]):
                        best = (found[0], found[1], s)
                if best is not None:
                    t, _, slope = best
                else:
                    t, _ = _place(y, self.valley)
        except NoFit as exc:
            t = use_fallback(self, str(exc), self.valley.fallback, events=values.shape[0])
        # the half-plane as a polygon over a box far beyond the data
        span = max(float(np.ptp(x)) if x.size else 1.0, float(np.ptp(y)) if y.size else 1.0, 1.0)
        xa, xb = (x.min() if x.size else x0) - 10 * span, (x.max() if x.size else x0) + 10 * span
        ya, yb = t + slope * (xa - x0), t + slope * (xb - x0)
        far = 10 * span + max(abs(ya), abs(yb)) + (np.abs(y).max() if y.size else 0.0)
        edge = far if self.keep == "above" else -far
        vertices = ((xa, ya), (xb, yb), (xb, edge), (xa, edge))
        return PolygonGate(
            id=self.id, parent=self.parent, name=self.name, dims=self.dims, vertices=vertices
        )


def quadrant_signs(n: int) -> list[str]:
    """Sign strings of the quadrants of `n` dividers, in canonical order: ``--, -+, +-, ++``."""
    return ["".join(s) for s in itertools.product("-+", repeat=n)]


@dataclass(frozen=True, kw_only=True)
class ValleyQuadrantGate(AdaptiveGate, QuadrantGate):
    """Quadrants cut at one density valley per dimension (e.g. CD3 × CD56).

    It is a `QuadrantGate` too, so that its quadrants are populations children
    can hang from before it is fitted; its dividers hold the fallback (or 0)
    until `fit` places them.

    Attributes
    ----------
    dims : tuple of Dimension
        1 to 4 dimensions.
    valleys : tuple of Valley
        One per dimension (a `Valley` with ``fixed`` set keeps that divider fixed).
    split_by : tuple of int or None
        Per dimension, None (one divider, fitted on all the parent's events)
        or the index ``k`` of another dimension: then this dimension has two
        dividers, one fitted on the events below dimension ``k``'s cut and
        used by the quadrants there, one fitted on and used above it. CD3 ×
        CD56 with ``split_by=(None, 0)`` cuts CD56 where NK cells part from B
        cells and monocytes among CD3- events, and where CIK cells part from T
        cells among CD3+ events: two valleys that need not coincide.
        Dimension ``k`` must not be split itself.
    quadrant_ids, quadrant_names : tuple of str
        Ids and names of the quadrants in `quadrant_signs` order (``--``, ``-+``,
        ``+-``, ``++`` for two dimensions); default names join each dimension's
        channel with its sign (``CD3-CD56+``), default ids ``<id>:<name>``.
    """

    valleys: tuple[Valley, ...] = ()
    split_by: tuple[int | None, ...] = ()
    quadrant_ids: tuple[str, ...] = ()
    quadrant_names: tuple[str, ...] = ()
    dividers: tuple[Divider, ...] = ()
    quadrants: tuple[Quadrant, ...] = ()
    kind: ClassVar[str] = "valley quadrant"

    def __post_init__(self) -> None:
        dims = tuple(self.dims)
        if not 1 <= len(dims) <= 4:
            raise GatingError(
                f"valley quadrant gate {self.id!r} needs 1 to 4 dimensions, got {len(dims)}"
            )
        valleys = tuple(self.valleys) or (Valley(),) * len(dims)
        if len(valleys) != len(dims):
            raise GatingError(
                f"valley quadrant gate {self.id!r}: {len(dims)} dimensions but "
                f"{len(valleys)} valley settings"
            )
        valleys = tuple(v.check(self.id) for v in valleys)
        split = check_split_by(self.id, self.split_by, len(dims))
        signs = quadrant_signs(len(dims))
        names = tuple(self.quadrant_names) or tuple(
            "".join(f"{d.channel}{s}" for d, s in zip(dims, sign, strict=True)) for sign in signs
        )
        ids = tuple(self.quadrant_ids) or tuple(f"{self.id}:{n}" for n in names)
        if len(names) != len(signs) or len(ids) != len(signs):
            raise GatingError(
                f"valley quadrant gate {self.id!r}: {len(dims)} dimensions make {len(signs)} "
                f"quadrants ({', '.join(signs)}); got {len(names)} names and {len(ids)} ids"
            )
        if len(set(names)) != len(names) or len(set(ids)) != len(ids):
            raise GatingError(f"valley quadrant gate {self.id!r}: quadrant names/ids repeat")
        start = [v.fixed if v.fixed is not None else (v.fallback or 0.0) for v in valleys]
        cuts = [(t, t) if k is not None else (t,) for t, k in zip(start, split, strict=True)]
        dividers, quadrants = quadrant_layout(self.id, dims, split, cuts, ids, names)
        object.__setattr__(self, "valleys", valleys)
        object.__setattr__(self, "split_by", split)
        object.__setattr__(self, "quadrant_ids", ids)
        object.__setattr__(self, "quadrant_names", names)
        object.__setattr__(self, "dividers", dividers)
        object.__setattr__(self, "quadrants", quadrants)
        super().__post_init__()

    @property
    def population_ids(self) -> tuple[str, ...]:
        # The quadrants, plus the gate's own id: `GatingStrategy.fit` looks a
        # pending adaptive gate up by its id among the population owners.
        return (*self.quadrant_ids, self.id)

    def fit(self, values: np.ndarray, rng: np.random.Generator) -> Gate:
        cuts: list = [None] * len(self.dims)
        n = values.shape[0]  # the gate's events (each cut's failure says so if very few)
        order = [j for j, k in enumerate(self.split_by) if k is None]
        order += [j for j, k in enumerate(self.split_by) if k is not None]
        for j in order:
            k = self.split_by[j]
            if k is None:
                cuts[j] = (self._cut(values[:, j], j, "", n),)
                continue
            upper = values[:, k] >= cuts[k][0]
            name = self.dims[k].channel
            cuts[j] = (
                self._cut(values[~upper, j], j, f" among {name}- events", n),
                self._cut(values[upper, j], j, f" among {name}+ events", n),
            )
        dividers, quadrants = quadrant_layout(
            self.id, self.dims, self.split_by, cuts, self.quadrant_ids, self.quadrant_names
        )
        return quadrant_gate(
            id=self.id, parent=self.parent, name=self.name, dividers=dividers, quadrants=quadrants
        )

    def _cut(self, x: np.ndarray, j: int, where: str, events: int) -> float:
        try:
            return _place(x, self.valleys[j])[0]
        except NoFit as exc:
            return use_fallback(
                self,
                f"{self.dims[j].channel}{where}: {exc}",
                self.valleys[j].fallback,
                events=events,
            )


@dataclass(frozen=True, kw_only=True)
class _QuadrantGate(QuadrantGate):
    # `GatingStrategy.fit` looks the gates an adaptive gate depends on up by
    # gate id among the population owners, where a quadrant gate is listed
    # only under its quadrants' ids; listing its own id too lets adaptive
    # gates sit below quadrants. Equal to a QuadrantGate in every other way.
    @property
    def population_ids(self) -> tuple[str, ...]:
        return (*super().population_ids, self.id)


def quadrant_gate(**kwargs) -> QuadrantGate:
    """A `QuadrantGate` (keyword arguments as its) that adaptive gates may sit below."""
    return _QuadrantGate(**kwargs)


def check_split_by(gate: str, split_by, n: int) -> tuple:
    split = tuple(split_by) or (None,) * n
    if len(split) != n:
        raise GatingError(f"valley quadrant gate {gate!r}: split_by needs one entry per dimension")
    for j, k in enumerate(split):
        if k is None:
            continue
        if not (isinstance(k, int) and 0 <= k < n and k != j and split[k] is None):
            raise GatingError(
                f"valley quadrant gate {gate!r}: split_by={k!r} for dimension {j} must be the "
                "index of another dimension, which is not split itself"
            )
    return split


def quadrant_layout(gate_id, dims, split, cuts, ids, names):
    """Dividers and quadrants; a split dimension has a divider per side of its splitter."""
    dividers: list[Divider] = []
    index: list[tuple[int, ...]] = []  # per dimension: its divider positions in `dividers`
    for j, (d, ts) in enumerate(zip(dims, cuts, strict=True)):
        here = []
        for side, t in zip(("-", "+") if len(ts) == 2 else ("",), ts, strict=True):
            suffix = f"|{dims[split[j]].channel}{side}" if side else ""
            dividers.append(Divider(f"{gate_id}:{j}:{d.channel}{suffix}", d, (float(t),)))
            here.append(len(dividers) - 1)
        index.append(tuple(here))
    quadrants = []
    for qid, name, sign in zip(ids, names, quadrant_signs(len(dims)), strict=True):
        pos = []
        for j, s in enumerate(sign):
            k = split[j]
            dv = dividers[index[j][0] if k is None else index[j][sign[k] == "+"]]
            t = dv.values[0]
            step = abs(t) + 1.0
            pos.append((dv.id, t + step if s == "+" else t - step))
        quadrants.append(Quadrant(qid, tuple(pos), name))
    return tuple(dividers), tuple(quadrants)
