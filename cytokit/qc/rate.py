"""Flow-rate check: bins whose event count departs from the file's own rate.

The expected count of a bin is a straight line through the bins' rates
(Theil–Sen: the median of pairwise slopes, then the median intercept), times
the bin's exposure. A line, not a constant, because a tube's rate often
drifts slowly as it empties or settles; Theil–Sen, because it ignores up to
29 % of anomalous bins (Sen, J Am Stat Assoc 1968;63:1379-89). The spread
around it is Poisson, widened by the file's own overdispersion (the robust
SD of the Poisson-standardised residuals, at least 1), so a noisy but
steady instrument is not flagged for its noise. A clog lasts seconds
whatever the file's size, so in a short run it can hold half of the bins;
the line is therefore fitted on the bins near the run's usual rate (the
shorth's level of the log rates), and where a tenth or more of the bins lie
farther than ``rate_change`` from that line, the line and the spread are
those of the other bins. A bubble's gap and the slow bins on each side of it
are left out of that fit too: its flanks, at about half the rate, can be a
third of a short run's bins and tilt the line.

A bin is flagged when its count departs from the expected count both by more
than ``rate_z`` such SDs and by more than ``rate_change`` of the expected
count: the first guards against chance, the second against flagging real but
harmless wobbles in a large file where every bin is precise. Then a flagged
run grows into neighbouring bins departing in the same direction by more than
``extend_z`` SDs and half of ``rate_change`` (the edges of a clog or bubble
fall inside a bin and are milder).

This finds clogs (a drop, then a burst as the clog clears), bubbles (a gap
with no events, often with a slow flank) and starts or ends of acquisition
that are not yet (or no longer) at the steady rate, in the spirit of the flow
rate check of flowAI (Monaco et al., Bioinformatics 2016;32:2473-80).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cytokit.qc.settings import Thresholds

__all__ = [
    "EMPTY_EVENTS",
    "RateCheck",
    "change_point",
    "check_rate",
    "contiguous_runs",
    "grow",
    "shorth_level",
    "theil_sen",
]

_MAD = 1.4826  # MAD -> SD of a normal distribution
_MAX_PAIRS = 200_000
#: A bin without a single event where the line expects this many (after any slack) is
#: flagged whatever the file's spread: by chance that happens with probability e^-50.
#: A bubble over a third of a short run's bins widens the spread it is judged by until
#: its empty bins read -4.9 SDs (a 5,000-event file whose 0.5 s gap went unflagged).
EMPTY_EVENTS = 50.0


@dataclass(frozen=True)
class RateCheck:
    """Per-bin results of the rate check (arrays of length n_bins).

    Attributes
    ----------
    expected : ndarray of float64
        Expected events of each bin.
    z : ndarray of float64
        (count − expected) / SD.
    flagged : ndarray of bool
    dispersion : float
        The overdispersion factor (variance / Poisson variance, >= 1).
    slope : float
        Relative change of the expected rate over the acquisition (e.g. -0.2:
        the rate fell by 20 % from start to end).
    """

    expected: np.ndarray
    z: np.ndarray
    flagged: np.ndarray
    dispersion: float
    slope: float


def theil_sen(x: np.ndarray, y: np.ndarray, rng: np.random.Generator | None = None):
    """(slope, intercept) of the Theil–Sen line through (x, y).

    Beyond `_MAX_PAIRS` pairs a fixed, evenly spread subset of pairs is used.
    """
    n = x.shape[0]
    if n < 2:
        return 0.0, float(np.median(y)) if n else 0.0
    i, j = np.triu_indices(n, k=1)
    if i.shape[0] > _MAX_PAIRS:
        keep = np.linspace(0, i.shape[0] - 1, _MAX_PAIRS).astype(np.int64)
        i, j = i[keep], j[keep]
    dx = x[j] - x[i]
    ok = dx != 0
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0
    return slope, float(np.median(y - slope * x))


def shorth_level(y: np.ndarray) -> float:
    """Median of the values in the shortest interval holding half of `y` (finite values)."""
    v = np.sort(y)
    n = v.shape[0]
    h = (n + 1) // 2
    i = int(np.argmin(v[h - 1 :] - v[: n - h + 1]))
    return float(np.median(v[i : i + h]))


def grow(flagged: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """`flagged` extended through adjacent runs of `candidate` bins (both bool arrays)."""
    out = flagged.copy()
    n = out.shape[0]
    idx = np.flatnonzero(flagged)
    for start in idx:
        k = start - 1
        while k >= 0 and not out[k] and candidate[k]:
            out[k] = True
            k -= 1
        k = start + 1
        while k < n and not out[k] and candidate[k]:
            out[k] = True
            k += 1
    return out


def contiguous_runs(run: np.ndarray):
    """``(start, end)`` of each contiguous stretch of `run` (end exclusive)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], run.astype(np.int8), [0]))))
    return zip(edges[::2], edges[1::2], strict=True)


def check_rate(counts, exposure, centers, th: Thresholds, slack=None) -> RateCheck:
    """Flag bins of anomalous event rate.

    Parameters
    ----------
    counts : array of int, shape (B,)
        Events in each bin.
    exposure : array of float, shape (B,)
        Acquisition time each bin covers (any unit; the last bin may be partial).
    centers : array of float, shape (B,)
        Bin centres (same unit).
    th : Thresholds
    slack : array of float, shape (B,), optional
        Acquisition time a bin may lack of its `exposure` with nothing wrong: the
        first and last tick of a clock (the acquisition started and stopped
        within them, at a moment the clock cannot tell). A bin is low only when
        its count is low for its exposure less its slack too, and a bin whose
        slack is over a quarter of its exposure is left out of the line's fit.

    Returns
    -------
    RateCheck
    """
    c = np.asarray(counts, dtype=np.float64)
    w = np.asarray(exposure, dtype=np.float64)
    t = np.asarray(centers, dtype=np.float64)
    lack = np.zeros_like(w) if slack is None else np.asarray(slack, dtype=np.float64)
    # a sliver of a last bin says little about the rate, nor does a bin of unknown exposure
    use = (w > 0.25 * np.max(w, initial=0.0)) & (lack <= 0.25 * w)
    rate = np.where(w > 0, c / np.where(w > 0, w, 1.0), 0.0)
    # the line and the spread are fitted on the bins near the run's usual rate, so that a
    # clog or bubble covering more of the run than Theil-Sen withstands (29 % of the bins)
    # cannot tilt the line or widen the spread: the line through the bins within twice
    # `rate_change` of the shorth's level of the log rates (the relatively densest half
    # of the bins, which a clog's slow flow, sparse and noisy, is not); when a tenth or
    # more of the bins are farther than `rate_change` (and 4 Poisson SDs) from that line,
    # the line and the spread of the others (the MAD bears half of the bins odd, with a
    # bias that grows with their share); with fewer than a third of the bins left, all
    fit, line_fit = use.copy(), None
    if use.sum() >= 4:
        top = float(rate[use].max())
        mode = float(np.exp(shorth_level(np.log(np.maximum(rate[use], 1e-9 * top + 1e-300)))))
        near = use & (np.abs(rate - mode) <= 2 * th.rate_change * mode)
        near &= ~_gap_and_flanks(rate, w, mode, th)
        if 3 * near.sum() >= use.sum():
            line_fit = theil_sen(t[near], rate[near])
            line = np.maximum(line_fit[1] + line_fit[0] * t, 1e-300)
            # farther than `rate_change`, and than 4 Poisson SDs of the bin's count
            tol = np.maximum(th.rate_change, 4.0 / np.sqrt(np.maximum(line * w, 1.0)))
            closer = use & (np.abs(rate - line) <= tol * line)
            if 3 * closer.sum() >= use.sum() and 10 * closer.sum() <= 9 * use.sum():
                fit, line_fit = closer, None
    slope, icpt = line_fit if line_fit is not None else theil_sen(t[fit], rate[fit])
    base = np.maximum(icpt + slope * t, 0.0)
    level = float(np.median(rate[fit])) if fit.any() else 0.0
    # the line must not fall to nothing: a fitted rate below a tenth of the typical one
    # is not a baseline to measure clogs against
    base = np.maximum(base, 0.1 * level)
    expected = base * w
    safe = np.maximum(expected, 1.0)
    r = (c - expected) / np.sqrt(safe)
    resid = r[fit]
    if resid.size:
        mad = _MAD * float(np.median(np.abs(resid - np.median(resid))))
    else:
        mad = 1.0
    dispersion = max(1.0, mad * mad)
    z = r / np.sqrt(dispersion)
    change = (c - expected) / safe
    if lack.any():
        # below its expected count, a bin that may lack some exposure is judged against the
        # count of the exposure it surely had: no departure down to there
        least = base * np.maximum(w - lack, 0.0)
        short = (c < expected) & (lack > 0)
        low = np.minimum(c - least, 0.0)
        z = np.where(short, low / np.sqrt(np.maximum(least, 1.0) * dispersion), z)
        change = np.where(short, low / np.maximum(least, 1.0), change)
    strong = (np.abs(z) > th.rate_z) & (np.abs(change) > th.rate_change) & (expected >= 1.0)
    # no event where the bin surely should hold many: a gap, however wide the spread
    empty = (c == 0) & (base * np.maximum(w - lack, 0.0) >= EMPTY_EVENTS)
    strong |= empty
    z = np.where(empty, np.minimum(z, -th.rate_z), z)
    weak_low = (z < -th.extend_z) & (change < -th.rate_change / 2)
    weak_high = (z > th.extend_z) & (change > th.rate_change / 2)
    low = grow(strong & (z < 0), weak_low)
    flagged = low | grow(strong & (z > 0), weak_high) | grow(_bursts(low, c, weak_high), weak_high)
    span = float(t[use].max() - t[use].min()) if use.sum() > 1 else 0.0
    rel_slope = slope * span / level if level > 0 else 0.0
    return RateCheck(expected, z, flagged, dispersion, rel_slope)


def _gap_and_flanks(rate, exposure, mode: float, th: Thresholds) -> np.ndarray:
    """The bins of each bubble: a gap (a bin at under a tenth of the usual rate `mode`,
    where that rate would give it `EMPTY_EVENTS` or more) with the bins on each side
    below ``1 - rate_change`` of that rate, its slow flanks. They are one event, not
    the tube's rate: in a short run they can be a third of the bins, and the flanks,
    within twice ``rate_change`` of the usual rate, tilt the line through them so that
    the run's steady bins on one side read as a burst and those on the other as low."""
    gap = (rate < 0.1 * mode) & (mode * exposure >= EMPTY_EVENTS)
    out = np.zeros(rate.shape[0], dtype=bool)
    for a, b in contiguous_runs(rate < (1.0 - th.rate_change) * mode):
        if gap[a:b].any():
            out[a:b] = True
    return out


def _bursts(low: np.ndarray, counts: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The `high` bins just after a run of `low` bins with an event in each: a clog's
    burst, the held cells released after its slow flow, a rise that need not stand out
    alone (1.3x the rate over a few bins of a short run). After a run with an empty bin
    (a bubble's gap) a rise is left to stand out on its own."""
    out = np.zeros_like(low)
    for a, b in contiguous_runs(low):  # each run of low bins
        if b < low.shape[0] and high[b] and np.all(counts[a:b] > 0):
            out[b] = True
    return out


def change_point(times: np.ndarray, lo: float, hi: float, before: float, after: float) -> int:
    """Where the event rate changes from `before` to `after` within ``[lo, hi)``.

    The maximum-likelihood split of a Poisson process observed on ``[lo, hi)``
    with rate `before` up to the split and `after` from it (rates per time
    unit; a rate of 0 is read as a tiny one). Events with equal times stay on
    one side.

    Parameters
    ----------
    times : ndarray of float, sorted
        Event times in ``[lo, hi)``.

    Returns
    -------
    int
        The number of events before the split (0 .. len(times)).
    """
    t = np.asarray(times, dtype=np.float64)
    n = t.shape[0]
    floor = 1e-9 * max(before, after, 1e-300)
    a, b = max(before, floor), max(after, floor)
    # candidate splits: before each distinct time, and after the last event
    first = np.flatnonzero(np.concatenate(([True], t[1:] != t[:-1]))) if n else np.zeros(0, int)
    k = np.concatenate((first, [n])).astype(np.float64)
    tau = np.concatenate((t[first], [hi]))
    tau = np.clip(tau, lo, hi)
    ll = k * np.log(a) - a * (tau - lo) + (n - k) * np.log(b) - b * (hi - tau)
    return int(k[int(np.argmax(ll))])
