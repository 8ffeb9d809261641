"""Adaptive gates: gates that place themselves on each sample's data.

Fixed gates drawn once break when the cytometer drifts between days (gains,
laser power) or when a population's share changes by orders of magnitude after
an infusion. The gates here are fitted per sample by `GatingStrategy.apply`
(see `cytokit.gating.AdaptiveGate.fit`): each sees the values of its
dimensions (compensated and transformed) for its parent's events, and becomes
an ordinary gate that the fused evaluator runs and that the result keeps, so
every placement can be shown and checked.

=====================  ===============================  ==========================
gate                   finds                            becomes
=====================  ===============================  ==========================
`ValleyGate`           the density valley between the   `RectangleGate` (one side)
                       two main modes of one marker
`ValleyQuadrantGate`   one valley per dimension         `QuadrantGate`
`SingletGate`          the singlet diagonal of FSC-A    `PolygonGate` (a band)
                       against FSC-H
`ClusterGate`          a cluster near an expected       `PolygonGate` (2-D) or
                       place (Gaussian mixture)         `EllipsoidGate`
=====================  ===============================  ==========================

Valleys (`Valley`)
------------------
The values are binned (512 bins over the 0.05–99.95 % range) and smoothed with
a Gaussian kernel whose width is Silverman's rule times ``smooth``. Modes are
local maxima at least ``min_peak`` × the tallest; between two neighbouring
modes the valley is the lowest point (the middle of it where the density is
flat). A valley must lie inside ``between`` and be deep: its density at most
``max_valley`` × the smaller of the two modes. Among the valleys that qualify
the one that separates the two largest masses wins: the largest
``min(left mode, right mode) − valley``. So ``CD56`` on lymphocytes cuts between
the negative cells and the CD56dim NK cells, not between CD56dim and
CD56bright.

When there is no such valley (one population only, e.g. no dead cells, or a
baseline sample where every cell is HLA-A2−) the lone mode is taken to be the
``single`` population: ``negative`` puts the threshold ``spread`` robust
standard deviations above the mode, ``positive`` as far below it. The standard
deviation is measured on the side of the mode away from the threshold (the
median distance there / 0.6745), which the other population's tail does not
reach. ``auto`` decides by where the mode lies: below ``fallback`` (or the
middle of ``between``) it is the negative population. The result is kept
inside ``between``.

Failure modes: too few events (fewer than ``min_events``); no qualifying
valley and no way to tell what the lone mode is; two populations so close that
their valley is shallower than ``max_valley`` (the threshold then follows the
lone-mode rule, which is right only if one of them is rare). Skewed or heavily
spread populations move the valley towards the smaller population, which is
what minimises misclassification when the populations are unequal.

When a fit fails, the gate uses the user's fixed bounds (``fallback``) and
emits an `AdaptiveGateWarning`; without fixed bounds it raises `GatingError`
naming the gate and why. `GatingStrategy.apply` runs the fit, so the sample is
the one being applied.

Scatter (`SingletGate`, `ClusterGate`)
--------------------------------------
`SingletGate` works on ``log(FSC-H / FSC-A)`` against ``log FSC-A``: single
cells lie on a line (FSC-H proportional to FSC-A, whatever the gain), doublets
below it (their area adds up, their height does not). It finds the mode of the
log ratio in 8 quantile bins of FSC-A, fits a line through the modes
(weighted by events), estimates the spread from the residuals *above* the
line (the side doublets do not reach) and keeps the band within ``width``
robust standard deviations of the line. The band is a polygon following the
line over the data's FSC-A range. It fails with fewer than ``min_events``
events; the band may be limited with ``ratio`` (bounds on FSC-H/FSC-A).

`ClusterGate` fits a Gaussian mixture (scikit-learn, ``components``
components, full covariances) on a subsample, by default on the log of
untransformed (linear scatter) dimensions, and takes the component whose mean
is closest to ``near`` (the expected place, in the dimensions' own units).
Components whose means lie within Mahalanobis distance ``merge`` of it join it
(activated blasts next to resting lymphocytes). The gate is the convex hull of
the chosen components' ellipses holding ``coverage`` of each. It fails when
no component with at least ``min_weight`` of the events lies within
``within`` (bounds on the chosen mean). Gain drift moves clusters by a small
fraction of their distance to the next, so ``near`` needs only be roughly
right; a lab should still check the placed gates of a new instrument.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.gates import (
    AdaptiveGate,
    Dimension,
    Divider,
    EllipsoidGate,
    Gate,
    PolygonGate,
    Quadrant,
    QuadrantGate,
    RectangleGate,
)

__all__ = [
    "AdaptiveGateWarning",
    "ClusterGate",
    "SingletGate",
    "Valley",
    "ValleyGate",
    "ValleyQuadrantGate",
    "find_valley",
    "quadrant_gate",
    "quadrant_signs",
]

_BINS = 512
_SINGLE = ("auto", "negative", "positive", "none")


class AdaptiveGateWarning(UserWarning):
    """An adaptive gate could not be fitted and used its fixed fallback bounds."""


class _NoFit(Exception):
    """Internal: the data do not allow a fit (the message says why)."""


def _number(v, gate: str, what: str, *, allow_none: bool = True) -> float | None:
    if v is None and allow_none:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise GatingError(f"gate {gate!r}: {what}={v!r} is not a number") from None
    if not math.isfinite(x):
        raise GatingError(f"gate {gate!r}: {what}={v!r} must be finite")
    return x


# -- one-dimensional density ------------------------------------------------------------
def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _bandwidth(x: np.ndarray) -> float:
    """Silverman's rule of thumb (robust spread)."""
    q75, q25 = np.percentile(x, [75, 25])
    s = min(float(np.std(x)), (q75 - q25) / 1.349) or float(np.std(x))
    return 0.9 * s * x.size ** (-0.2)


def smoothed_density(
    x: np.ndarray, lo: float, hi: float, bandwidth: float, bins: int = _BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of `x` on `bins` bins over [lo, hi] smoothed by a Gaussian of sd `bandwidth`.

    Returns
    -------
    centers, density : ndarray of float64, shape (bins,)
        Bin centres and smoothed counts (not normalised).
    """
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    step = edges[1] - edges[0]
    sigma = max(bandwidth / step, 1.0)
    half = min(math.ceil(4.0 * sigma), bins - 1)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k /= k.sum()
    dens = np.convolve(counts.astype(np.float64), k, mode="same")
    return 0.5 * (edges[:-1] + edges[1:]), dens


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
    min_peak: float = 0.01
    max_valley: float = 0.75
    min_events: int = 50
    fixed: float | None = None

    def check(self, gate: str) -> Valley:
        """A validated copy (numbers as floats); raises `GatingError` naming `gate`."""
        b = tuple(self.between)
        if len(b) != 2:
            raise GatingError(f"gate {gate!r}: between={b!r} must be [low, high]")
        lo, hi = (_number(v, gate, "between") for v in b)
        if lo is not None and hi is not None and not lo < hi:
            raise GatingError(f"gate {gate!r}: between=[{lo}, {hi}] must have low < high")
        single = str(self.single).lower()
        if single not in _SINGLE:
            raise GatingError(
                f"gate {gate!r}: single={self.single!r} must be one of {', '.join(_SINGLE)}"
            )
        spread = _number(self.spread, gate, "spread", allow_none=False)
        smooth = _number(self.smooth, gate, "smooth", allow_none=False)
        min_peak = _number(self.min_peak, gate, "min_peak", allow_none=False)
        max_valley = _number(self.max_valley, gate, "max_valley", allow_none=False)
        if spread <= 0 or smooth <= 0:
            raise GatingError(f"gate {gate!r}: spread and smooth must be > 0")
        if not (0 < min_peak < 1 and 0 < max_valley < 1):
            raise GatingError(
                f"gate {gate!r}: min_peak={min_peak} and max_valley={max_valley} must be "
                "between 0 and 1"
            )
        return Valley(
            between=(lo, hi),
            fallback=_number(self.fallback, gate, "fallback"),
            single=single,
            spread=spread,
            smooth=smooth,
            min_peak=min_peak,
            max_valley=max_valley,
            min_events=max(int(self.min_events), 3),
            fixed=_number(self.fixed, gate, "fixed"),
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
        return _place(x, valley)
    except _NoFit as exc:
        raise GatingError(str(exc)) from None


def _place(x: np.ndarray, v: Valley) -> tuple[float, str]:
    if v.fixed is not None:
        return float(v.fixed), "fixed"
    x = _finite(x)
    found, grid, dens = _valley(x, v)
    if found is not None:
        return found[0], "valley"
    return _single_mode(x, grid, dens, v)


def _valley(x: np.ndarray, v: Valley):
    """((position, depth) or None, grid, density) for finite `x`; depth = valley / smaller mode."""
    if x.size < v.min_events:
        raise _NoFit(f"{x.size} events, fewer than the {v.min_events} a threshold needs")
    lo_w, hi_w = v.between
    q_lo, q_hi = np.quantile(x, [0.0005, 0.9995])
    bw = _bandwidth(x) * v.smooth
    if not bw > 0:
        raise _NoFit("every value is the same; there is no distribution to cut")
    lo = min(q_lo, lo_w if lo_w is not None else q_lo) - 3 * bw
    hi = max(q_hi, hi_w if hi_w is not None else q_hi) + 3 * bw
    grid, dens = smoothed_density(x, lo, hi, bw)
    top = dens.max()
    inner = (dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:])
    peaks = np.flatnonzero(inner) + 1
    peaks = peaks[dens[peaks] >= v.min_peak * top]
    best, best_score = None, -1.0
    for a, b in itertools.pairwise(peaks.tolist()):
        seg = dens[a : b + 1]
        i = int(np.argmin(seg))
        low = seg[i]
        small = min(dens[a], dens[b])
        # the flat bottom of a wide gap: take its middle, not its noisy lowest bin
        flat = seg <= low + 0.02 * (small - low)
        j0 = j1 = i
        while j0 > 0 and flat[j0 - 1]:
            j0 -= 1
        while j1 < len(seg) - 1 and flat[j1 + 1]:
            j1 += 1
        pos = float(grid[a + (j0 + j1) // 2]) if j0 != j1 else float(grid[a + i])
        if (lo_w is not None and pos < lo_w) or (hi_w is not None and pos > hi_w):
            continue
        if low > v.max_valley * small:
            continue
        left = dens[: a + 1].max()
        right = dens[b:].max()
        score = min(left, right) - low
        if score > best_score:
            best, best_score = (pos, low / small if small > 0 else 1.0), score
    return best, grid, dens


def _single_mode(x: np.ndarray, grid: np.ndarray, dens: np.ndarray, v: Valley) -> tuple[float, str]:
    mode = float(grid[int(np.argmax(dens))])
    side = v.single
    if side == "none":
        raise _NoFit("no density valley between two modes (one population only?)")
    if side == "auto":
        ref = v.fallback
        if ref is None and v.between[0] is not None and v.between[1] is not None:
            ref = 0.5 * (v.between[0] + v.between[1])
        if ref is None:
            raise _NoFit(
                "no density valley between two modes, and no fallback or between window "
                "to tell whether the lone mode is the negative or the positive population "
                "(set single: negative or positive)"
            )
        side = "negative" if mode < ref else "positive"
    far = (mode - x[x < mode]) if side == "negative" else (x[x > mode] - mode)
    if far.size < 10:
        raise _NoFit("no density valley, and too few events beside the lone mode to size it")
    sd = float(np.median(far)) / 0.6745
    t = mode + v.spread * sd if side == "negative" else mode - v.spread * sd
    lo_w, hi_w = v.between
    if lo_w is not None:
        t = max(t, lo_w)
    if hi_w is not None:
        t = min(t, hi_w)
    return float(t), f"{side} mode"


def _fallback(gate: Gate, why: str, fallback):
    """Use `fallback` with a warning, or raise the failure."""
    if fallback is None:
        raise GatingError(
            f"adaptive gate {gate.id!r} cannot be placed: {why}. Give it fixed fallback "
            "bounds, or loosen its limits"
        )
    warnings.warn(
        f"adaptive gate {gate.id!r} used its fixed fallback: {why}",
        AdaptiveGateWarning,
        stacklevel=3,
    )
    return fallback


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
        lo, hi = (_number(v, self.id, "slopes", allow_none=False) for v in self.slopes)
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
        except _NoFit as exc:
            t = _fallback(self, str(exc), self.valley.fallback)
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
                for s in sorted(slopes.tolist(), key=abs):
                    found, _, _ = _valley(y - s * (x - x0), self.valley)
                    if found is not None and (best is None or found[1] < best[1]):
                        best = (found[0], found[1], s)
                if best is not None:
                    t, _, slope = best
                else:
                    t, _ = _place(y, self.valley)
        except _NoFit as exc:
            t = _fallback(self, str(exc), self.valley.fallback)
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
        split = _split_by(self.id, self.split_by, len(dims))
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
        dividers, quadrants = _quadrants(self.id, dims, split, cuts, ids, names)
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
        order = [j for j, k in enumerate(self.split_by) if k is None]
        order += [j for j, k in enumerate(self.split_by) if k is not None]
        for j in order:
            k = self.split_by[j]
            if k is None:
                cuts[j] = (self._cut(values[:, j], j, ""),)
                continue
            upper = values[:, k] >= cuts[k][0]
            name = self.dims[k].channel
            cuts[j] = (
                self._cut(values[~upper, j], j, f" among {name}- events"),
                self._cut(values[upper, j], j, f" among {name}+ events"),
            )
        dividers, quadrants = _quadrants(
            self.id, self.dims, self.split_by, cuts, self.quadrant_ids, self.quadrant_names
        )
        return quadrant_gate(
            id=self.id, parent=self.parent, name=self.name, dividers=dividers, quadrants=quadrants
        )

    def _cut(self, x: np.ndarray, j: int, where: str) -> float:
        try:
            return _place(x, self.valleys[j])[0]
        except _NoFit as exc:
            return _fallback(
                self, f"{self.dims[j].channel}{where}: {exc}", self.valleys[j].fallback
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


def _split_by(gate: str, split_by, n: int) -> tuple:
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


def _quadrants(gate_id, dims, split, cuts, ids, names):
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


# -- singlets ------------------------------------------------------------------------------
def _raw(dim: Dimension, x: np.ndarray) -> np.ndarray:
    return x if dim.transform is None else dim.transform.inverse(x)


def _scaled(dim: Dimension, x: np.ndarray) -> np.ndarray:
    return x if dim.transform is None else dim.transform.apply(x)


def _mode(x: np.ndarray) -> float:
    bw = 0.5 * _bandwidth(x)
    if not bw > 0:
        return float(np.median(x))
    lo, hi = np.quantile(x, [0.001, 0.999])
    grid, dens = smoothed_density(x, lo - 3 * bw, hi + 3 * bw, bw, bins=256)
    return float(grid[int(np.argmax(dens))])


@dataclass(frozen=True, kw_only=True)
class SingletGate(AdaptiveGate):
    """Single cells: a band around the FSC-H ∝ FSC-A line (see the module docstring).

    Attributes
    ----------
    dims : (area, height) Dimensions
        FSC-A and FSC-H (or SSC-A and SSC-H); any transforms are undone for
        the fit and applied to the polygon.
    width : float
        Half-width of the band in robust standard deviations of log(H/A).
    ratio : (float or None, float or None)
        The band is kept within these FSC-H/FSC-A ratios.
    fallback : (float, float) or None
        Fixed FSC-H/FSC-A band used when the fit fails.
    min_events : int
    """

    width: float = 4.0
    ratio: tuple[float | None, float | None] = (None, None)
    fallback: tuple[float, float] | None = None
    min_events: int = 100
    kind: ClassVar[str] = "singlet"

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.dims) != 2:
            raise GatingError(
                f"singlet gate {self.id!r} reads two dimensions (area, height), got "
                f"{len(self.dims)}"
            )
        width = _number(self.width, self.id, "width", allow_none=False)
        if width <= 0:
            raise GatingError(f"singlet gate {self.id!r}: width={width} must be > 0")
        lims = tuple(_number(v, self.id, "ratio") for v in self.ratio)
        if len(lims) != 2 or any(v is not None and v <= 0 for v in lims):
            raise GatingError(
                f"singlet gate {self.id!r}: ratio={self.ratio!r} must be two positive "
                "FSC-H/FSC-A ratios [low, high] (null for open)"
            )
        fb = self.fallback
        if fb is not None:
            fb = tuple(_number(v, self.id, "fallback", allow_none=False) for v in fb)
            if len(fb) != 2 or not 0 < fb[0] < fb[1]:
                raise GatingError(
                    f"singlet gate {self.id!r}: fallback={self.fallback!r} must be a ratio "
                    "band [low, high] with 0 < low < high"
                )
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "ratio", lims)
        object.__setattr__(self, "fallback", fb)

    def fit(self, values: np.ndarray, rng: np.random.Generator) -> Gate:
        a = _raw(self.dims[0], values[:, 0])
        h = _raw(self.dims[1], values[:, 1])
        ok = np.isfinite(a) & np.isfinite(h) & (a > 0) & (h > 0)
        a, h = a[ok], h[ok]
        try:
            if a.size < self.min_events:
                raise _NoFit(
                    f"{a.size} events with positive area and height, fewer than {self.min_events}"
                )
            la = np.log(a)
            r = np.log(h) - la
            line, sd = _singlet_line(la, r)
            if not sd > 0:
                raise _NoFit("FSC-H/FSC-A does not vary; cannot size the singlet band")
            low = lambda x: line(x) - self.width * sd  # noqa: E731
            high = lambda x: line(x) + self.width * sd  # noqa: E731
            span = np.quantile(la, [0.0005, 0.9995])
            lo_a, hi_a = span[0] - math.log(2.0), span[1] + math.log(2.0)
        except _NoFit as exc:
            fb = _fallback(self, str(exc), self.fallback)
            low = lambda x: np.full_like(x, math.log(fb[0]))  # noqa: E731
            high = lambda x: np.full_like(x, math.log(fb[1]))  # noqa: E731
            lo_a, hi_a = math.log(1.0), math.log(self._top())
        grid = np.linspace(lo_a, hi_a, 24)
        rl, rh = low(grid), high(grid)
        if self.ratio[0] is not None:
            rl = np.maximum(rl, math.log(self.ratio[0]))
        if self.ratio[1] is not None:
            rh = np.minimum(rh, math.log(self.ratio[1]))
        rh = np.maximum(rh, rl + 1e-6)
        area = np.exp(grid)
        xs = np.concatenate([area, area[::-1]])
        ys = np.concatenate([area * np.exp(rl), (area * np.exp(rh))[::-1]])
        xs = _scaled(self.dims[0], xs)
        ys = _scaled(self.dims[1], ys)
        return PolygonGate(
            id=self.id,
            parent=self.parent,
            name=self.name,
            dims=self.dims,
            vertices=tuple(zip(xs.tolist(), ys.tolist(), strict=True)),
        )

    def _top(self) -> float:
        t = self.dims[0].transform
        return float(getattr(t, "T", 262144.0)) * 2.0


def _singlet_line(la: np.ndarray, r: np.ndarray):
    """Robust line through the per-bin modes of log(H/A) against log A, and the upper spread."""
    edges = np.quantile(la, np.linspace(0.0, 1.0, 9))
    xs, ys, ws = [], [], []
    for k in range(8):
        sel = (la >= edges[k]) & (la <= edges[k + 1])
        if sel.sum() >= 30:
            xs.append(float(np.median(la[sel])))
            ys.append(_mode(r[sel]))
            ws.append(float(sel.sum()))
    if not xs:
        raise _NoFit("too few events to find the singlet diagonal")
    xs, ys, ws = np.array(xs), np.array(ys), np.array(ws)
    xc = float(np.average(xs, weights=ws))
    if len(xs) >= 3 and np.ptp(xs) > 0:
        slope = float(np.sum(ws * (xs - xc) * (ys - np.average(ys, weights=ws))))
        slope /= float(np.sum(ws * (xs - xc) ** 2))
    else:
        slope = 0.0
    icpt = float(np.average(ys, weights=ws))

    def line(x):
        return icpt + slope * (np.asarray(x) - xc)

    resid = r - line(la)
    upper = resid[resid > 0]
    if upper.size < 10:
        raise _NoFit("too few events above the singlet diagonal to size the band")
    return line, float(np.median(upper)) / 0.6745


# -- clusters ----------------------------------------------------------------------------------
_SCALES = ("log", "linear")


@dataclass(frozen=True, kw_only=True)
class ClusterGate(AdaptiveGate):
    """The cluster nearest an expected place, as a robust ellipse (see the module docstring).

    Attributes
    ----------
    dims : tuple of Dimension
    near : tuple of float
        Expected centre, in the dimensions' units (what the gates see).
    distance : float
        Mahalanobis radius of the gate around the cluster (4 keeps 99.97 % of
        a two-dimensional Gaussian cluster).
    core : float
        Events within this Mahalanobis distance estimate the cluster's centre
        and shape (trimmed, corrected for the trimming).
    within : tuple of (low, high)
        Bounds on the found centre per dimension (None: open); outside them
        the fit fails.
    scale : tuple of str
        Per dimension, where to fit: "log" (log10 of values >= 1) or "linear"
        (as is). Default: log for untransformed dimensions, linear otherwise.
        A log-scale ellipse becomes a polygon (two dimensions only).
    min_events : int
        Fewer events in the cluster's core is a failed fit.
    fit_events : int
        Fit on at most this many events (a random subsample).
    fallback : Gate or None
        A fixed gate (same dimensions) used when the fit fails.
    """

    near: tuple[float, ...]
    distance: float = 4.0
    core: float = 2.5
    within: tuple[tuple[float | None, float | None], ...] = ()
    scale: tuple[str, ...] = ()
    min_events: int = 50
    fit_events: int = 50_000
    fallback: Gate | None = None
    kind: ClassVar[str] = "cluster"

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.dims)
        g = self.id
        near = tuple(_number(v, g, "near", allow_none=False) for v in self.near)
        if len(near) != n:
            raise GatingError(f"cluster gate {g!r}: near has {len(near)} values for {n} dimensions")
        scale = tuple(str(s).lower() for s in self.scale) or tuple(
            "log" if d.transform is None else "linear" for d in self.dims
        )
        if len(scale) != n or any(s not in _SCALES for s in scale):
            raise GatingError(
                f"cluster gate {g!r}: scale={self.scale!r} must give log or linear for each of "
                f"its {n} dimensions"
            )
        if n != 2 and "log" in scale:
            raise GatingError(
                f"cluster gate {g!r}: an ellipse fitted on a log scale becomes a polygon, "
                f"which needs exactly two dimensions; give scale: linear for all {n}"
            )
        within = (
            tuple(tuple(_number(v, g, "within") for v in pair) for pair in self.within)
            or ((None, None),) * n
        )
        if len(within) != n or any(len(p) != 2 for p in within):
            raise GatingError(
                f"cluster gate {g!r}: within needs a [low, high] pair per dimension ({n})"
            )
        distance = _number(self.distance, g, "distance", allow_none=False)
        core = _number(self.core, g, "core", allow_none=False)
        if not (distance > 0 and 1.0 <= core <= 4.0):
            raise GatingError(
                f"cluster gate {g!r}: distance={distance} must be > 0 and core={core} "
                "between 1 and 4"
            )
        if self.fallback is not None and (
            isinstance(self.fallback, AdaptiveGate) or self.fallback.dimensions != self.dims
        ):
            raise GatingError(
                f"cluster gate {g!r}: the fallback must be a fixed gate on the same dimensions"
            )
        object.__setattr__(self, "near", near)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "within", within)
        object.__setattr__(self, "distance", distance)
        object.__setattr__(self, "core", core)

    def _to_fit(self, x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=np.float64, copy=True)
        for j, s in enumerate(self.scale):
            if s == "log":
                out[..., j] = np.log10(np.maximum(out[..., j], 1.0))
        return out

    def _from_fit(self, u: np.ndarray) -> np.ndarray:
        out = np.array(u, dtype=np.float64, copy=True)
        for j, s in enumerate(self.scale):
            if s == "log":
                out[..., j] = 10.0 ** out[..., j]
        return out

    def fit(self, values: np.ndarray, rng: np.random.Generator) -> Gate:
        try:
            mean, cov = self.locate(values, rng)
        except _NoFit as exc:
            fb = _fallback(self, str(exc), self.fallback)
            return replace(fb, id=self.id, parent=self.parent, name=self.name)
        d2 = self.distance**2
        if "log" not in self.scale:
            return EllipsoidGate(
                id=self.id,
                parent=self.parent,
                name=self.name,
                dims=self.dims,
                mean=tuple(mean.tolist()),
                covariance=tuple(map(tuple, cov.tolist())),
                distance_square=d2,
            )
        theta = np.linspace(0.0, 2 * math.pi, 96, endpoint=False)
        circle = np.stack([np.cos(theta), np.sin(theta)], axis=1) * self.distance
        xy = self._from_fit(mean + circle @ np.linalg.cholesky(cov).T)
        return PolygonGate(
            id=self.id,
            parent=self.parent,
            name=self.name,
            dims=self.dims,
            vertices=tuple(map(tuple, xy.tolist())),
        )

    def locate(self, values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Centre and covariance of the cluster, on the fit scale."""
        u = self._to_fit(values)
        u = u[np.all(np.isfinite(u), axis=1)]
        if u.shape[0] < self.min_events:
            raise _NoFit(f"{u.shape[0]} events, fewer than the {self.min_events} it needs")
        if u.shape[0] > self.fit_events:
            u = u[rng.choice(u.shape[0], int(self.fit_events), replace=False)]
        lo, hi = np.quantile(u, [0.001, 0.999], axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        near = self._to_fit(np.asarray(self.near)[None, :])[0]
        start = _peak_2d(u, lo, hi, near) if u.shape[1] == 2 else near
        mean, cov = _trimmed_ellipse(
            u, start, np.diag((span / 20.0) ** 2), self.core, self.min_events
        )
        centre = self._from_fit(mean)
        for j, (a, b) in enumerate(self.within):
            if (a is not None and centre[j] < a) or (b is not None and centre[j] > b):
                raise _NoFit(
                    f"the cluster nearest {list(self.near)} is centred at "
                    f"{[float(f'{v:.4g}') for v in centre]}, outside within on "
                    f"{self.dims[j].channel}"
                )
        return mean, cov


def _smooth_axis(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    half = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k /= k.sum()
    return np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), axis, a)


def _peak_2d(u: np.ndarray, lo: np.ndarray, hi: np.ndarray, near: np.ndarray) -> np.ndarray:
    """The density peak (smoothed 128 × 128 histogram) nearest `near`, in range-scaled units."""
    bins = 128
    h, ex, ey = np.histogram2d(u[:, 0], u[:, 1], bins=bins, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
    d = _smooth_axis(_smooth_axis(h, 2.0, 0), 2.0, 1)
    pad = np.pad(d, 1, constant_values=-1.0)
    peak = d >= 0.01 * d.max()
    for dx, dy in itertools.product((-1, 0, 1), repeat=2):
        if dx or dy:
            peak &= d >= pad[1 + dx : 1 + dx + bins, 1 + dy : 1 + dy + bins]
    ii, jj = np.nonzero(peak)
    pts = np.stack([0.5 * (ex[ii] + ex[ii + 1]), 0.5 * (ey[jj] + ey[jj + 1])], axis=1)
    dist = (((pts - near) / (hi - lo)) ** 2).sum(axis=1)
    return pts[int(np.argmin(dist))]


def _trimmed_ellipse(u, mean, cov, core: float, min_events: int):
    """Iterate mean and covariance of the events within Mahalanobis `core` of the estimate.

    The covariance of a Gaussian truncated at ``d² <= c`` is the full one times
    ``F(c; k + 2) / F(c; k)`` (F: the chi-square CDF), so dividing by it makes
    the estimate consistent for the cluster's Gaussian core.
    """
    k = u.shape[1]
    c = core * core
    shrink = _chi2_cdf(c, k + 2) / _chi2_cdf(c, k)
    for _ in range(100):
        diff = u - mean
        try:
            inv = np.linalg.inv(cov)
        except np.linalg.LinAlgError:
            raise _NoFit("the cluster has no spread in some direction") from None
        sel = np.einsum("ij,jk,ik->i", diff, inv, diff) <= c
        if sel.sum() < max(min_events, k + 2):
            raise _NoFit(f"only {int(sel.sum())} events near the expected place; is near right?")
        new_mean = u[sel].mean(axis=0)
        new_cov = np.atleast_2d(np.cov(u[sel].T)) / shrink
        done = np.allclose(
            new_mean, mean, rtol=0, atol=1e-9 + 1e-6 * np.sqrt(np.diag(new_cov)).max()
        )
        mean, cov = new_mean, new_cov
        if done:
            break
    if not np.all(np.linalg.eigvalsh(cov) > 0):
        raise _NoFit("the cluster has no spread in some direction")
    return mean, cov


def _chi2_cdf(x: float, k: int) -> float:
    """Chi-square CDF with `k` degrees of freedom (series of the regularised lower gamma)."""
    a, z = 0.5 * k, 0.5 * x
    if z <= 0:
        return 0.0
    term = 1.0 / math.gamma(a + 1.0)
    total = term
    n = 1
    while term > 1e-16 * total and n < 1000:
        term *= z / (a + n)
        total += term
        n += 1
    return min(1.0, math.exp(-z + a * math.log(z)) * total)
