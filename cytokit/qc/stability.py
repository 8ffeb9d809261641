"""Signal-stability check: bins where a channel's signal departs from the file's stable level.

Per bin and channel the signal is summarised by two means of
``asinh(x / cofactor)`` over the bin's events (`cytokit.kernels.bin_moments`):
the mean of all of them, and an upper-weighted mean whose rank weights rise
from 0 at the median to 1 at the top (`BAND`). On that scale a change of gain
is a shift, bright values count about as their logarithm and dim ones
linearly, so a few saturated or wild events cannot drag it far. The
upper-weighted mean follows the positive cells of a marker, whose shift the
mean of all events dilutes by the negative ones. Means with smooth weights,
not medians, quantiles or density peaks, because they move smoothly when the
mix of populations in a bin moves a little: a quantile (or a hard cut such as
"the top quarter") that sits between two populations jumps from one to the
other from bin to bin, and would be flagged for nothing.

For each of these series:

* when the series drifts one way over the run (its last third's median off
  the first third's by more than the shift and the noise), the stable level
  is that of the end the run held, the start unless the drift is early and
  settles (`drift_reference`): a drift is a departure from the level the run
  started at and held longest, brighter or dimmer, and a run's flags grow
  only through the longest windows (81 bins; on shorter ones the noise of
  the population mix carries a run up the ramp to where the change is
  still below the shift);
* otherwise the stable level is the middle of the densest half of the bin means (the
  shortest interval holding half of them, Rousseeuw's shorth): when a drift
  has moved a large part of the file, the median would lie partway along
  the drift, while the bins that did not move stay packed together. That
  first round uses the shortest window only; the check then runs again (up to
  twice, until its flags settle), with every window, and with the level taken
  as the median of the bins the round before (and the rate check) left
  unflagged: in a noisy channel the two halves overlap and the densest half
  still leans towards the drift, which a long window would then read as a
  departure of the good bins;
* the noise of a bin mean is ``s · sqrt(φ / m)``: ``s`` the typical (median)
  SD of the transformed values within a bin, ``m`` the values the bin
  contributed and ``φ >= 1`` the file's overdispersion (the robust variance
  of the standardised differences of consecutive bins, which a slow drift
  hardly changes);
* a bin departs when its mean is off the level by more than ``signal_z``
  noise SDs and by more than ``signal_shift`` (short events: a bubble, a
  burst of coincident events);
* a window of bins departs when the median of the means of its bins does
  the same, with the noise of all its values (a slow drift: many bins each a
  little off; a median, so that one odd bin cannot carry its neighbours);
  windows of `WINDOWS` bins centred on each bin are tried, so a drift too
  slow to show in 9 bins shows in 81;
* flagged runs grow into neighbouring bins whose window (any of `WINDOWS`)
  is still off in the same direction by ``extend_z`` SDs and by the shift: a
  run is found by its clearest part and then followed out to where the
  signal is back within the shift of its level (windows, not single bins,
  so that noise does not carry a run past the point where a drift reaches
  the shift).

A bin is flagged when either series of any channel flags it. This is the MAD-based outlier
idea of PeacoQC (Emmaneel et al., Cytometry A 2022;101:325-38), applied to a
robust location of every bin, with a threshold that follows each bin's own
number of events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cytokit.kernels.acquisition import running_median
from cytokit.qc.rate import grow
from cytokit.qc.settings import Thresholds

__all__ = [
    "BAND",
    "MIN_VALUES",
    "WINDOWS",
    "StabilityCheck",
    "check_stability",
    "drift_reference",
    "shorth_level",
    "trend",
]

#: Rank band (fractions of a bin's values, sorted) of the second summary.
BAND = (0.5, 1.0)

#: Bins of the slow-drift test's windows (a drift over many bins shows at a long window
#: even when each bin alone is too noisy to tell).
WINDOWS = (9, 27, 81)
#: Fewest values a bin needs for its signal to be judged.
MIN_VALUES = 10
_MAD = 1.4826


@dataclass(frozen=True)
class StabilityCheck:
    """Per-bin results of the stability check.

    Attributes
    ----------
    level : ndarray of float64, shape (k, 2)
        Stable level of each channel's two series (asinh scale).
    deviation : ndarray of float64, shape (B, k, 2)
        Each bin's mean minus the level (asinh scale; 0 where not judged).
    z : ndarray of float64, shape (B, k)
        The largest (in size) departure, in noise SDs, of either series of the
        channel, in the bin or its window.
    flagged : ndarray of bool, shape (B,)
    channel_flagged : ndarray of bool, shape (B, k)
        Which channels flag each bin.
    spikes : ndarray of bool, shape (B,)
        Bins some channel flags on their own (not only through a window).
    """

    level: np.ndarray
    deviation: np.ndarray
    z: np.ndarray
    flagged: np.ndarray
    channel_flagged: np.ndarray
    spikes: np.ndarray


def _window(y: np.ndarray, m: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted (by m) centred moving mean of y over 2·half + 1 bins, and the weights' sum."""
    cs_y = np.concatenate(([0.0], np.cumsum(y * m)))
    cs_m = np.concatenate(([0.0], np.cumsum(m)))
    b = y.shape[0]
    lo = np.clip(np.arange(b) - half, 0, b)
    hi = np.clip(np.arange(b) + half + 1, 0, b)
    tot = cs_m[hi] - cs_m[lo]
    mean = np.where(tot > 0, (cs_y[hi] - cs_y[lo]) / np.where(tot > 0, tot, 1.0), 0.0)
    return mean, tot


def _window_median(y, m, ok, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving median of the judged bins' values over 2·half + 1 bins, and their weights."""
    med = running_median(y, ok, half)
    _, tot = _window(np.zeros(y.shape[0]), np.where(ok, m, 0.0), half)
    return np.where(np.isfinite(med), med, 0.0), np.where(np.isfinite(med), tot, 0.0)


def shorth_level(y: np.ndarray) -> float:
    """Median of the values in the shortest interval holding half of `y` (finite values)."""
    v = np.sort(y)
    n = v.shape[0]
    h = (n + 1) // 2
    i = int(np.argmin(v[h - 1 :] - v[: n - h + 1]))
    return float(np.median(v[i : i + h]))


def drift_reference(mean, m, use, noise: float, th: Thresholds) -> float | None:
    """The level a monotone drift departs from, or None when the series has no such drift.

    A lab reads a drift as a departure from the level the run started at and
    held longest. The judged bins (`use`) are cut into thirds in time and the
    median of each third's bin means taken (``a``, ``b``, ``c``). When the last
    third departs from the first by more than ``signal_shift`` and by more than
    ``extend_z`` noise SDs of the two medians, the series drifts one way over
    the run, and the stable level is that of the start, unless the middle
    third sits clearly with the last (``|b - a| > 2 |c - b|``: a drift early in
    the run that settles, such as a laser warming up), when it is the end's.
    The level is the median of the bins that held it: from that end inwards
    to where a running median of 27 bins first leaves the end third's median
    by half of ``signal_shift`` beyond that third (the drift's onset; a third's
    median alone leans on the slow wander of the population mix in it).
    Without this the densest half of a drifting series, or the median of all
    its bins, can lie partway along the drift: the check then reads the
    undisturbed start as the departure, or sees nothing.
    """
    idx = np.flatnonzero(use)
    if idx.size < 30:
        return None
    third = idx.size // 3
    parts = (idx[:third], idx[third : idx.size - third], idx[-third:])
    a, b, c = (float(np.median(mean[p])) for p in parts)
    sd_a, sd_c = (1.2533 * noise / np.sqrt(max(float(m[p].sum()), 1.0)) for p in parts[::2])
    change = c - a
    if abs(change) <= th.signal_shift or abs(change) <= th.extend_z * np.hypot(sd_a, sd_c):
        return None
    late = abs(b - a) <= 2 * abs(c - b)
    start = a if late else c
    run = running_median(np.where(use, mean, 0.0), use, 13)
    off = use & np.isfinite(run) & (np.abs(run - start) > th.signal_shift / 2)
    pos = np.arange(mean.shape[0])
    if late:
        off &= pos >= parts[1][0]
        onset = int(np.flatnonzero(off)[0]) if off.any() else pos.size
        held = use & (pos < onset)
    else:
        off &= pos <= parts[1][-1]
        onset = int(np.flatnonzero(off)[-1]) if off.any() else -1
        held = use & (pos > onset)
    return float(np.median(mean[held])) if held.sum() >= third else start


def _channel(mean, sd, count, th: Thresholds, reference=None, windows=WINDOWS, inputs=None):
    """(flags, single-bin flags, deviation, z, level) of one series of bin means."""
    b = mean.shape[0]
    ok = np.isfinite(mean) & (count >= MIN_VALUES)
    if ok.sum() < 4:
        none = np.zeros(b, dtype=bool)
        return none, none, np.zeros(b), np.zeros(b), np.nan
    s = float(np.median(sd[ok & np.isfinite(sd)])) if np.any(ok & np.isfinite(sd)) else 0.0
    m = np.where(ok, count, 0).astype(np.float64)
    y = np.where(ok, mean, 0.0)
    yi, mi = mean[ok], m[ok]
    if s > 0:
        d = np.diff(yi) / (s * np.sqrt(1.0 / mi[1:] + 1.0 / mi[:-1]))
        phi = max(1.0, (_MAD * float(np.median(np.abs(d - np.median(d))))) ** 2)
    else:
        phi = 1.0  # every value equal in a typical bin: only the shift threshold can speak
    noise = max(s, 1e-12) * np.sqrt(phi)
    wok = ok if inputs is None else ok & inputs
    level = drift_reference(mean, m, wok, noise, th)
    # a slow drift's run grows only through the 81-bin windows: on shorter ones the noise
    # carries it up the ramp to where the change is still below the shift
    grow_from = 81 if level is not None and len(windows) > 1 else 0
    if level is None:
        ref = ok if reference is None else ok & reference
        if reference is not None and ref.sum() >= max(4, ok.sum() // 4):
            level = float(np.median(mean[ref]))
        else:
            level = shorth_level(mean[ok])
    dev = np.where(ok, y - level, 0.0)
    z = dev * np.sqrt(np.maximum(m, 1.0)) / noise
    single = ok & (np.abs(z) > th.signal_z) & (np.abs(dev) > th.signal_shift)
    strong_hi = single & (dev > 0)
    strong_lo = single & (dev < 0)
    wz = np.zeros(b)
    weak_hi = np.zeros(b, dtype=bool)
    weak_lo = np.zeros(b, dtype=bool)
    # windows read only the `inputs` bins (`wok`): a clog's bins must not pull its
    # neighbours' window medians
    for w in windows:
        if w > b:
            break
        wmed, wtot = _window_median(y, m, wok, w // 2)
        wdev = np.where(wtot > 0, wmed - level, 0.0)
        # the median of w bin means has about 1.25x the SD of their mean (normal values)
        zw = wdev * np.sqrt(np.maximum(wtot, 1.0)) / (1.2533 * noise)
        far = ok & (np.abs(wdev) > th.signal_shift)
        if w in windows:
            strong_hi |= far & (zw > th.signal_z)
            strong_lo |= far & (zw < -th.signal_z)
            wz = np.where(np.abs(zw) > np.abs(wz), zw, wz)
        if w >= grow_from:
            weak_hi |= far & (zw > th.extend_z)
            weak_lo |= far & (zw < -th.extend_z)
    flags = grow(strong_hi, weak_hi | strong_hi) | grow(strong_lo, weak_lo | strong_lo)
    return flags, single, dev, np.where(np.abs(wz) > np.abs(z), wz, z) * ok, level


def check_stability(
    count, mean, sd, th: Thresholds, reference=None, windows=WINDOWS, inputs=None
) -> StabilityCheck:
    """Flag bins whose signal departs from the file's stable level.

    Parameters
    ----------
    count : ndarray of int, shape (B, k)
        Values each bin contributed per channel (`cytokit.kernels.bin_moments`).
    mean, sd : ndarray of float, shape (B, k, 2)
        Mean and SD of ``asinh(x / cofactor)`` per bin and channel, of all values
        and upper-weighted (`cytokit.kernels.bin_moments`).
    th : Thresholds
    reference : ndarray of bool, shape (B,), optional
        Bins known to be good: the stable level is their median (when they are
        at least a quarter of the judged bins). Default: the densest half of
        all bins (`shorth_level`).
    windows : sequence of int
        Window lengths (bins) of the slow-drift test.
    inputs : ndarray of bool, shape (B,), optional
        Bins whose means the windows read (default: all judged bins); bins
        known to hold short anomalies are left out so that they do not pull
        their neighbours' windows.

    Returns
    -------
    StabilityCheck
    """
    count = np.asarray(count)
    mean = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    b, k, parts = mean.shape
    level = np.full((k, parts), np.nan)
    deviation = np.zeros((b, k, parts))
    z = np.zeros((b, k))
    chan = np.zeros((b, k), dtype=bool)
    spikes = np.zeros(b, dtype=bool)
    for j in range(k):
        for p in range(parts):
            # the upper-weighted mean's effective number of values: (Σw)² / Σw² of its
            # rank weights, 3/8 of the values for a ramp over the upper half
            m = count[:, j] if p == 0 else (count[:, j] * 3) // 8
            f, one, deviation[:, j, p], zp, level[j, p] = _channel(
                mean[:, j, p], sd[:, j, p], m, th, reference, windows, inputs
            )
            chan[:, j] |= f
            spikes |= one
            z[:, j] = np.where(np.abs(zp) > np.abs(z[:, j]), zp, z[:, j])
    return StabilityCheck(level, deviation, z, chan.any(axis=1), chan, spikes)


def trend(mean: np.ndarray, count: np.ndarray, use: np.ndarray) -> float:
    """Change of a series of bin means from the first to the last third of the bins used.

    The median of the last third minus that of the first (asinh scale; NaN when
    fewer than 6 bins are usable). A channel that creeps over the whole
    acquisition has no stable part to tell a departure from; this says how far
    it went.
    """
    ok = np.flatnonzero(use & np.isfinite(mean) & (count >= MIN_VALUES))
    if ok.size < 6:
        return float("nan")
    third = ok.size // 3
    return float(np.median(mean[ok[-third:]]) - np.median(mean[ok[:third]]))
