"""Scatter gates placed on each sample: singlets and clusters (see `cytokit.gating.adaptive`)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from cytokit._numbers import counted
from cytokit.errors import GatingError
from cytokit.gating.adaptive.base import NoFit, bandwidth, number, smoothed_density, use_fallback
from cytokit.gating.gates import AdaptiveGate, Dimension, EllipsoidGate, Gate, PolygonGate
from cytokit.stats.density import gaussian_smooth

__all__ = ["ClusterGate", "SingletGate"]


# -- singlets ------------------------------------------------------------------------------
def _raw(dim: Dimension, x: np.ndarray) -> np.ndarray:
    return x if dim.transform is None else dim.transform.inverse(x)


def _scaled(dim: Dimension, x: np.ndarray) -> np.ndarray:
    return x if dim.transform is None else dim.transform.apply(x)


def _mode(x: np.ndarray) -> float:
    (lo, hi), bw = bandwidth(x, (0.001, 0.999))
    bw = 0.5 * bw
    if not bw > 0:
        return float(np.median(x))
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
        width = number(self.width, self.id, "width", allow_none=False)
        if width <= 0:
            raise GatingError(f"singlet gate {self.id!r}: width={width} must be > 0")
        lims = tuple(number(v, self.id, "ratio") for v in self.ratio)
        if len(lims) != 2 or any(v is not None and v <= 0 for v in lims):
            raise GatingError(
                f"singlet gate {self.id!r}: ratio={self.ratio!r} must be two positive "
                "FSC-H/FSC-A ratios [low, high] (null for open)"
            )
        fb = self.fallback
        if fb is not None:
            fb = tuple(number(v, self.id, "fallback", allow_none=False) for v in fb)
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
                raise NoFit(
                    f"{a.size} events with positive area and height, fewer than {self.min_events}"
                )
            la = np.log(a)
            r = np.log(h) - la
            line, sd = _singlet_line(la, r)
            if not sd > 0:
                raise NoFit("FSC-H/FSC-A does not vary; cannot size the singlet band")
            low = lambda x: line(x) - self.width * sd  # noqa: E731
            high = lambda x: line(x) + self.width * sd  # noqa: E731
            span = np.quantile(la, [0.0005, 0.9995])
            lo_a, hi_a = span[0] - math.log(2.0), span[1] + math.log(2.0)
        except NoFit as exc:
            fb = use_fallback(self, str(exc), self.fallback, events=values.shape[0])
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
        raise NoFit("too few events to find the singlet diagonal")
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
        raise NoFit("too few events above the singlet diagonal to size the band")
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
        near = tuple(number(v, g, "near", allow_none=False) for v in self.near)
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
            tuple(tuple(number(v, g, "within") for v in pair) for pair in self.within)
            or ((None, None),) * n
        )
        if len(within) != n or any(len(p) != 2 for p in within):
            raise GatingError(
                f"cluster gate {g!r}: within needs a [low, high] pair per dimension ({n})"
            )
        distance = number(self.distance, g, "distance", allow_none=False)
        core = number(self.core, g, "core", allow_none=False)
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
        except NoFit as exc:
            fb = use_fallback(self, str(exc), self.fallback, events=values.shape[0])
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
        finite = np.isfinite(u)
        ok = finite[:, 0].copy()
        for j in range(1, u.shape[1]):
            ok &= finite[:, j]
        if not ok.all():
            u = u[ok]
        if u.shape[0] < self.min_events:
            raise NoFit(
                f"{counted(u.shape[0], 'event')}, fewer than the {self.min_events} it needs"
            )
        if u.shape[0] > self.fit_events:
            u = u[rng.choice(u.shape[0], int(self.fit_events), replace=False)]
        lo, hi = np.quantile(u, [0.001, 0.999], axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        near = self._to_fit(np.asarray(self.near)[None, :])[0]
        start = _peak_2d(u, lo, hi, near) if u.shape[1] == 2 else near
        cov0 = np.diag((span / 20.0) ** 2)
        try:
            mean, cov = _trimmed_ellipse(u, start, cov0, self.core, self.min_events)
        except NoFit:
            if u.shape[1] != 2:
                raise
            mean = cov = None
        if u.shape[1] == 2 and (mean is None or not _holds(mean, cov, start)):
            # The iteration left the density peak it started on: the cluster is small
            # beside a larger population, and each widened window took in more of
            # that. Fit again on the events of the peak's own basin of the density
            # (up to the valleys around it) if the peak is a distinct one.
            start, members, prominence = _peak_2d(u, lo, hi, near, basin=True)
            if prominence < _PROMINENCE:
                raise NoFit(
                    f"the density peak nearest {list(self.near)} is no distinct cluster "
                    f"(the fit left it; it rises {prominence:.3g} times above the valley "
                    f"around it, less than {_PROMINENCE:g})"
                )
            mean, cov = _trimmed_ellipse(u[members], start, cov0, self.core, self.min_events)
            far = _distance(near, mean, cov)
            if not far <= _NEAR:
                raise NoFit(
                    f"the distinct cluster nearest {list(self.near)}, centred at "
                    f"{[float(f'{v:.4g}') for v in self._from_fit(mean)]}, is {far:.3g} "
                    f"of its standard deviations from it (more than {_NEAR:g}): "
                    "no cluster at the expected place"
                )
        centre = self._from_fit(mean)
        for j, (a, b) in enumerate(self.within):
            if (a is not None and centre[j] < a) or (b is not None and centre[j] > b):
                raise NoFit(
                    f"the cluster nearest {list(self.near)} is centred at "
                    f"{[float(f'{v:.4g}') for v in centre]}, outside within on "
                    f"{self.dims[j].channel}"
                )
        return mean, cov


def _smooth_axis(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    return np.apply_along_axis(gaussian_smooth, axis, a, sigma, 3.0)


#: How many times a cluster's density peak must rise above the highest valley that
#: parts it from its neighbours for a fit confined to its basin (see `ClusterGate.locate`).
_PROMINENCE = 2.0
#: ... and how far (Mahalanobis, on the fit scale) the expected place may lie from its centre.
_NEAR = 4.0


def _peak_2d(
    u: np.ndarray, lo: np.ndarray, hi: np.ndarray, near: np.ndarray, *, basin: bool = False
):
    """The density peak (smoothed 128 × 128 histogram) nearest `near`, in range-scaled units.

    With `basin`, returns ``(peak, members, prominence)``: which events lie in
    the peak's basin (the bins from which the steepest ascent on the smoothed
    histogram climbs to it), and the peak's height over the highest bin of the
    basin that borders another basin.
    """
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
    best = int(np.argmin(dist))
    if not basin:
        return pts[best]
    label = _basins(d)
    mine = label == ii[best] * bins + jj[best]
    lpad = np.pad(label, 1, constant_values=-1)
    edge = np.zeros_like(mine)
    for dx, dy in itertools.product((-1, 0, 1), repeat=2):
        if dx or dy:
            other = lpad[1 + dx : 1 + dx + bins, 1 + dy : 1 + dy + bins]
            edge |= mine & (other >= 0) & (other != label)
    top = d[ii[best], jj[best]]
    saddle = float(d[edge].max()) if edge.any() else 0.0
    prominence = top / saddle if saddle > 0 else math.inf
    bx = np.clip(np.searchsorted(ex, u[:, 0], side="right") - 1, 0, bins - 1)
    by = np.clip(np.searchsorted(ey, u[:, 1], side="right") - 1, 0, bins - 1)
    inside = (u[:, 0] >= lo[0]) & (u[:, 0] <= hi[0]) & (u[:, 1] >= lo[1]) & (u[:, 1] <= hi[1])
    return pts[best], inside & mine[bx, by], prominence


def _basins(d: np.ndarray) -> np.ndarray:
    """Per bin, the flat index of the local maximum its steepest ascent reaches."""
    n0, n1 = d.shape
    pad = np.pad(d, 1, constant_values=-np.inf)
    best = d.copy()
    step = np.zeros(d.shape, dtype=np.int64)
    index = np.arange(n0 * n1).reshape(n0, n1)
    for dx, dy in itertools.product((-1, 0, 1), repeat=2):
        if dx or dy:
            nb = pad[1 + dx : 1 + dx + n0, 1 + dy : 1 + dy + n1]
            up = nb > best
            best = np.where(up, nb, best)
            step = np.where(up, dx * n1 + dy, step)
    nxt = (index + step).ravel()
    while True:
        jump = nxt[nxt]
        if np.array_equal(jump, nxt):
            return nxt.reshape(n0, n1)
        nxt = jump


def _distance(point: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """The Mahalanobis distance of `point` from a cluster of `mean` and `cov`."""
    diff = point - mean
    return math.sqrt(float(diff @ np.linalg.solve(cov, diff)))


def _holds(mean: np.ndarray, cov: np.ndarray, start: np.ndarray) -> bool:
    """Whether the fitted cluster still holds the peak its fit started on (Mahalanobis <= 1.5)."""
    return _distance(start, mean, cov) <= 1.5


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
            raise NoFit("the cluster has no spread in some direction") from None
        sel = _within(diff, inv, c)
        inside = u[sel]
        if inside.shape[0] < max(min_events, k + 2):
            raise NoFit(
                f"only {counted(inside.shape[0], 'event')} near the expected place; is its "
                "`near` right?"
            )
        new_mean = inside.mean(axis=0)
        new_cov = np.atleast_2d(np.cov(inside.T)) / shrink
        done = np.allclose(
            new_mean, mean, rtol=0, atol=1e-9 + 1e-6 * np.sqrt(np.diag(new_cov)).max()
        )
        mean, cov = new_mean, new_cov
        if done:
            break
    if not np.all(np.linalg.eigvalsh(cov) > 0):
        raise NoFit("the cluster has no spread in some direction")
    return mean, cov


#: Relative size of the band around the cut in which `_within` recomputes the distances
#: exactly (its quick sum is off by a few units in the 16th digit at most).
_SLACK = 1e-12


def _within(diff: np.ndarray, inv: np.ndarray, c: float) -> np.ndarray:
    """Which rows of `diff` have ``diff · inv · diffᵀ <= c`` (squared Mahalanobis distance).

    The sum is formed column by column, quicker than `np.einsum` over three
    operands; where it lies within a rounding error of `c`, or `inv` is not
    finite, every distance is taken from that `np.einsum` instead, so which
    events are in is exactly what the einsum alone decides.
    """
    if np.isfinite(inv).all():
        cols = [np.ascontiguousarray(diff[:, j]) for j in range(diff.shape[1])]
        d2 = np.zeros(diff.shape[0])
        size = np.zeros(diff.shape[0])
        for j, x in enumerate(cols):
            row = cols[0] * inv[0, j]
            for m in range(1, len(cols)):
                row += cols[m] * inv[m, j]
            row *= x
            d2 += row
            size += np.abs(x)
        # |d2 - einsum| <= a few ulp of sum |diff_j inv_jm diff_m| <= (sum |diff_j|)² max |inv|
        size *= size
        size *= _SLACK * float(np.abs(inv).max())
        size += _SLACK * c
        sel = d2 <= c
        d2 -= c
        np.abs(d2, out=d2)
        if (d2 > size).all():  # none close to the cut (nor NaN)
            return sel
    return np.einsum("ij,jk,ik->i", diff, inv, diff) <= c


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
