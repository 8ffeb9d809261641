"""A gap's flank: the events beside a bubble's gap that its air disturbed.

Air in the flow cell slows the stream and upsets the measurement as it comes
and goes, for a time no file states. The events beside a gap tell it in two
ways, each read outwards from the gap over a window of events and split
where a stretch from the gap differs most from the rest:

- `slow_flank`: the stretch arrives more slowly (two Poisson rates against
  one, on the events' times);
- `odd_flank`: the stretch holds more events unlike the rest's (an event's
  distance to its nearest events of the window's far half, in every checked
  channel, against the far half's own distances).

Each test sets its bar by simulation of undisturbed flow (the figures are at
the constants); the scan takes the longer stretch either finds, and at least
a short guard (`cytokit.qc.scan.GAP_GUARD_EVENTS`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FLANK_LLR",
    "FLANK_RATIO",
    "ODD_LLR",
    "ODD_MIN_REFERENCE",
    "ODD_NEIGHBOURS",
    "ODD_SHARE",
    "odd_flank",
    "slow_flank",
]

#: A slow flank is read where two rates, a slower stretch from the gap and the rest, fit
#: the times of the events beside it better than one rate by this much log-likelihood.
#: Steady Poisson flow beside a gap exceeds it beside about one gap in 300 (1,600 events
#: read, 5,000 simulated); a flank at half the rate is found four times in five at 40
#: events, at a third of the rate at 15.
FLANK_LLR = 8.0
#: ... and where the stretch's rate is at most this share of the rest's (a file's own
#: slow trend is no flank).
FLANK_RATIO = 0.8
#: Neighbours an event's distance is read to (the k-th nearest of the far half).
ODD_NEIGHBOURS = 5
#: Share of the far half's own events beyond the distance that calls an event odd.
ODD_SHARE = 0.2
#: An odd flank is read where its share of odd events beats `ODD_SHARE` by this much
#: log-likelihood (binomial, the stretch's share against the far half's). Undisturbed
#: events of simulated blood exceed it beside about one gap in 300 (2,000 windows of
#: 1,600 events); half of 50 events disturbed by a factor of SD 0.5 on every channel
#: is found 19 times in 20, half of 30 three times in five.
ODD_LLR = 10.0
#: Fewest usable events the far half needs for `odd_flank` to read anything.
ODD_MIN_REFERENCE = 200
#: Least robust SD of a channel's asinh values in the far half (a channel of a few
#: values has none).
_LEAST_SD = 0.05


def slow_flank(x: np.ndarray) -> int:
    """How many of the events beside a gap arrive more slowly than the events beyond them.

    The events are split into a stretch from the gap and the rest, each with
    its own Poisson rate, at the split that fits best; the stretch is a slow
    flank where that fit beats a single rate by more than `FLANK_LLR` and its
    rate is at most `FLANK_RATIO` of the rest's. The rest's rate is read
    beside it, not taken from the file's line, so a line a few per cent off
    does not make steady flow look slow.

    Parameters
    ----------
    x : ndarray of float, ascending
        Each event's time from the gap (0 for the event next to it), going away
        from it; the last one's time closes the window read (it and the events on
        its tick count in neither part). Events on one clock tick stay on one
        side of the split.

    Returns
    -------
    int
        The events of the slow flank (events 0 .. k - 1 of `x`), 0 where there is none.
    """
    x = np.asarray(x, dtype=np.float64)
    # the window ends where the last event's tick starts: the events read on that tick
    # before it belong to neither part, as those after it were not read
    n = int(np.searchsorted(x, x[-1], side="left")) if x.size else 0
    if n < 4 or not x[-1] > 0:
        return 0
    big = float(x[-1])
    k = np.arange(1, n, dtype=np.float64)
    tau = x[1:n]
    fresh = (x[1:n] > x[: n - 1]) & (k >= 3)  # a split between two distinct times
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = k / tau
        r2 = (n - k) / (big - tau)
        r0 = n / big
        llr = k * np.log(r1 / r0) + (n - k) * np.log(r2 / r0)
    ok = fresh & (tau > 0) & (tau < big) & (r1 <= FLANK_RATIO * r2) & np.isfinite(llr)
    if not ok.any():
        return 0
    best = int(np.argmax(np.where(ok, llr, -np.inf)))
    return int(k[best]) if llr[best] > FLANK_LLR else 0


def odd_flank(values: np.ndarray, usable: np.ndarray | None = None) -> int:
    """How many of the events beside a gap are unlike the events beyond them.

    The window's far half is the reference: each channel is centred on its
    median and scaled by its robust SD there, and an event is odd where its
    distance to its `ODD_NEIGHBOURS`-th nearest reference event exceeds the
    distance beyond which `ODD_SHARE` of the reference events lie from theirs
    (each read without itself). A disturbed event, its channels scaled apart,
    leaves the populations' clouds; an undisturbed one is odd with that share.
    The near half is then split where a stretch from the gap holds odd events
    most above that share (binomial log-likelihood), and the stretch is a
    flank where that exceeds `ODD_LLR`.

    Parameters
    ----------
    values : ndarray (events, channels)
        The window's events going away from the gap (row 0 next to it), on an
        asinh scale.
    usable : ndarray of bool, optional
        Events that are measurements (not margin events); the others are
        neither reference nor odd.

    Returns
    -------
    int
        The events of the odd flank (rows 0 .. k - 1), 0 where there is none.
    """
    v = np.asarray(values, dtype=np.float64)
    m = v.shape[0]
    ok = np.ones(m, dtype=bool) if usable is None else np.asarray(usable, dtype=bool).copy()
    ok &= np.isfinite(v).all(axis=1)
    half = m // 2
    ref = v[half:][ok[half:]]
    if half < 3 or v.shape[1] == 0 or ref.shape[0] < ODD_MIN_REFERENCE:
        return 0
    centre = np.median(ref, axis=0)
    scale = np.maximum(1.4826 * np.median(np.abs(ref - centre), axis=0), _LEAST_SD)
    ref = (ref - centre) / scale
    near = (np.where(ok[:half, None], v[:half], centre) - centre) / scale
    from scipy.spatial import cKDTree  # comes with scikit-learn; exact, a few ms here

    tree = cKDTree(ref)
    own = tree.query(ref, k=[ODD_NEIGHBOURS + 1])[0][:, 0]  # the nearest is itself
    bar = float(np.quantile(own, 1.0 - ODD_SHARE))
    share = max(float(np.mean(own > bar)), 1.0 / ref.shape[0])
    odd = (tree.query(near, k=[ODD_NEIGHBOURS])[0][:, 0] > bar) & ok[:half]
    k = np.arange(1, half + 1, dtype=np.float64)
    p = np.cumsum(odd) / k
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * np.log(p / share), 0.0) + np.where(
            p < 1, (1 - p) * np.log((1 - p) / (1 - share)), 0.0
        )
    llr = np.where((p > share) & (k >= 3), k * kl, -np.inf)
    best = int(np.argmax(llr))
    return int(k[best]) if llr[best] > ODD_LLR else 0
