"""Whether a stretch's signal moved because the detector did or because the cells did.

The stability check (`cytokit.qc.stability`) reads each bin through a few
summaries of a channel's values: the mean of all, of the upper half, the
brightest cells' level. A change of gain moves every one of them, and so
does a change in the mix of cells: where donor NK cells arrive in a burst
(settling, carry-over), the upper half of CD56 holds more bright cells and
its mean rises by as much as a gain of 1.9 would move it, and the brightest
cells' level, a weighted mean of the bright populations, moves with their
shares. Summaries of a bin cannot tell the two apart; the values pooled over
the stretch can.

A gain ``g`` multiplies every value, so on the ``asinh(x / cofactor)``
scale each positive population of the stretch sits ``log g`` further along
than in the rest of the file. A change in the mix leaves every population
where it was and changes how many cells each holds. The slope of a log
density does not see how many cells a population holds (a share multiplies
the density, which adds a constant to its log), only where its sides rise
and fall: so the stretch's slope lies on the rest's unmoved where the mix
changed, and on the rest's moved by ``log g`` where the gain did, whatever
the shares (`follows`). Only values at or above `LOW` are read: the
negative cells sit at 0 on this scale whatever the gain, and a gain widens
their spread rather than moving it.

A flagged stretch whose values lie better where they are than moved the
way its summaries went (by at least the sensitivity's ``signal_shift``) is
the sample's composition, not the detector, and acquisition QC keeps it
(`cytokit.qc.scan`). A stretch with fewer than `MIN_VALUES` such values on
either side is not judged this way, and keeps its flags.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOW", "MIN_VALUES", "STEP", "follows", "rows_of"]

#: Values below this (asinh scale, 3.6 cofactors) are not compared: the negative cells'
#: spread, which a gain widens rather than moves, and the dim edge, where a gain moves a
#: value by less than ``log g``.
LOW = 2.0
#: Histogram step (asinh units) of the pooled densities.
STEP = 0.02
#: Fewest positive values (at or above `LOW`) on each side for a shift to be read.
MIN_VALUES = 200
_SMOOTH = 4.0  # Gaussian kernel SD in steps
_FLOOR = 0.01  # of the density's top, added before its log (no data: a flat slope)
_EDGE = 0.3  # asinh units read beyond the compared range (the smoothing's edge)
_CAP = 100.0  # (per asinh unit)^2: a slope difference counts at most this
_LARGEST = 1.0  # asinh units: the largest move of the summaries read as such
_MOST = 40_000  # reference values read at most (evenly spaced rows)


def rows_of(bounds: np.ndarray, bins: np.ndarray, most: int = _MOST) -> np.ndarray:
    """The event rows of `bins` (indices into ``bounds``' bins), at most `most`, evenly
    spaced over them."""
    bins = np.asarray(bins, dtype=np.int64)
    if bins.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts, stops = bounds[bins], bounds[bins + 1]
    n = stops - starts
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.repeat(starts - np.concatenate(([0], np.cumsum(n)[:-1])), n) + np.arange(total)
    if total > most:
        rows = rows[(np.arange(most) * total) // most]
    return rows


def _density(t: np.ndarray, lo: float, n: int) -> np.ndarray:
    """Histogram of `t` on ``n`` steps from `lo`, smoothed (a Gaussian of `_SMOOTH` steps)."""
    i = np.floor((t - lo) / STEP).astype(np.int64)
    h = np.bincount(i[(i >= 0) & (i < n)], minlength=n).astype(np.float64)
    k = np.arange(-4 * int(_SMOOTH), 4 * int(_SMOOTH) + 1)
    kernel = np.exp(-0.5 * (k / _SMOOTH) ** 2)
    return np.convolve(h, kernel / kernel.sum(), mode="same")


def _costs(stretch, rest, cofactor: float, top: float, most: float) -> np.ndarray | None:
    """Per shift ``d`` (steps of `STEP`, -most .. most): how far the slope of the stretch's
    log density lies from the rest's moved by ``d``, over the stretch's values at or above
    `LOW` (a mean of squared differences, each capped, weighted by where both sides hold
    values); None where either side holds fewer than `MIN_VALUES` values there.

    `stretch` and `rest` are a channel's scale values; non-finite ones and those at or
    above `top` (saturated) are left out.
    """
    lo = LOW - most - _EDGE
    sides = []
    for x in (stretch, rest):
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x) & (x < top)]
        t = np.arcsinh(x / cofactor)
        sides.append(t[t >= lo])
    if min(int(np.count_nonzero(side >= LOW)) for side in sides) < MIN_VALUES:
        return None
    hi = max(float(side.max()) for side in sides) + _EDGE
    n = int((hi - lo) / STEP) + 1
    k = int(np.ceil(most / STEP))
    start = round((LOW - lo) / STEP)
    if n - start < 3:
        return None
    slopes, dens = [], []
    for side in sides:
        f = _density(side, lo, n)
        f /= f.max()
        dens.append(f)
        slopes.append(np.gradient(np.log(f + _FLOOR)) / STEP)
    (g_s, g_r), (f_s, f_r) = slopes, dens
    idx = np.arange(start, n)
    cost = np.full(2 * k + 1, np.inf)
    for j, d in enumerate(range(-k, k + 1)):
        src = idx - d
        ok = (src >= 0) & (src < n)
        a, b = idx[ok], src[ok]
        w = np.sqrt(f_s[a] * f_r[b])
        if w.sum() <= 0:
            continue
        diff = np.minimum((g_s[a] - g_r[b]) ** 2, _CAP)
        cost[j] = float((w * diff).sum() / w.sum())
    return cost


def follows(stretch, rest, cofactor: float, top: float, dev: float, least: float) -> bool | None:
    """Whether a stretch's values moved the way its summaries did.

    Parameters
    ----------
    stretch, rest : ndarray
        A channel's values (scale values) in the stretch and in the bins
        nothing flagged; non-finite values and values at or above `top`
        (saturated) are left out.
    cofactor, top : float
        The channel's asinh cofactor and the top of its range.
    dev : float
        How far the stretch's summaries moved (asinh units; its sign says
        which way).
    least : float
        The smallest move read as one (the sensitivity's ``signal_shift``).

    Returns
    -------
    bool or None
        True where the slope of the stretch's log density lies closer to the
        rest's moved `dev`'s way (by `least` to twice `dev`, or `dev` and 0.3
        more) than unmoved: a gain. False where it lies closer unmoved: a
        change in the mix of cells. None where `dev` is 0 or either side
        holds fewer than `MIN_VALUES` values at or above `LOW`.
    """
    if not (np.isfinite(dev) and dev != 0):
        return None
    # a summary that moved further than a gain would (the brightest cells' level of a
    # channel whose few bright cells a burst of others dilutes, -98 %) is read as a gain
    # of e-fold: the shifts looked for stay where a detector's could be
    dev = float(np.clip(dev, -_LARGEST, _LARGEST))
    reach = max(2.0 * abs(dev), abs(dev) + 0.3)
    cost = _costs(stretch, rest, cofactor, top, reach)
    if cost is None:
        return None
    k = (cost.size - 1) // 2
    d = (np.arange(cost.size) - k) * STEP
    moved = (d * dev > 0) & (np.abs(d) >= least)
    if not np.isfinite(cost[k]) or not np.isfinite(cost[moved]).any():
        return None
    return bool(np.nanmin(np.where(moved, cost, np.nan)) < cost[k])
