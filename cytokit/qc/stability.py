"""Signal-stability check: bins where a channel's signal departs from the file's stable level.

Per bin and channel the signal is summarised by three series (`SERIES`) on
the ``asinh(x / cofactor)`` scale, where a change of gain is a shift:

* **all**: the mean of all the bin's transformed values
  (`cytokit.kernels.bin_moments`);
* **upper**: their upper-weighted mean, rank weights rising from 0 at the
  median to 1 at the top (`BAND`), which follows the positive cells of a
  marker whose shift the mean of all events dilutes by the negative ones;
* **bright**: the contraharmonic mean of the values, ``Σ x² / Σ x``
  (`bright_moments`): each value weighs by its own size, so it is the level
  of the brightest cells in the bin whatever their share, and a gain ``g``
  multiplies it by exactly ``g``. Where a marker is bright on a few cells
  only (on the red laser, APC and APC-H7 see CD3 and CD8), the two rank
  means straddle the dim and the bright cells and carry the bin-to-bin
  noise of their mix (SD 0.15-0.3 per bin of 200 events); this one stays
  on the bright cells (SD 0.02-0.05). It judges drifts (below) and, in a
  channel whose drift it does not lead (fluorescence, in acquisition QC:
  ``stretches``) and a file of at least `BRIGHT_BINS` bins,
  stretches off the level (a gain changed for a while, then restored)
  through the shortest window alone, where the upper half's mean follows it
  (`_unfollowed`): in files of 20,000 events a gain 1.35 or 0.7 times its
  own for 30 % of the run moved the other two series of a marker bright on
  a third of the cells by too little for their noise, and such files passed
  with every event kept. Where such a block lifts the middle and last
  thirds of a noisier series alike, that series reads as an early drift
  that settles and leads the channel while its windows find nothing: the
  bright series judges there too, but a stretch of it that overlaps the
  lead's run is the drift's own and is left to the lead.
  Where a marker is positive on a few cells a bin only (1-3 of 200:
  CD107a, IFN-g, a KIR), its level is theirs, and jumps with their number
  from bin to bin: a channel where more than `BRIGHT_FEW` of the bins of
  the usual flow rest on fewer than `BRIGHT_VALUES` values (the effective
  number of the weights) has no bright series, and its upper-weighted mean,
  which weighs the same few cells, is not judged either: only the mean of
  all its values is.

Means with smooth weights, not medians, quantiles or density peaks, because
they move smoothly when the mix of populations in a bin moves a little: a
quantile (or a hard cut such as "the top tenth") that sits between two
populations jumps from one to the other from bin to bin, and would be
flagged for nothing.

For each series:

* when the series drifts one way over the run (its last third's median off
  the first third's by more than the shift and the noise), the stable level
  is that of the end the run held, the start unless the drift is early and
  settles (`drift_reference`): a drift is a departure from the level the run
  started at and held longest, brighter or dimmer. A drift from a held start
  that reaches its change by the run's middle and holds it settles early by
  the thirds too; where a line that holds the start's level for a sixth of
  the run or more before its ramp fits about as well as one straight from
  the first bin (or for a twentieth, `HELD_BRIEF`, and fits better than it
  by `STEP_CHI2`), the start is the level held (a warm-up settles from the
  first events; read as one, such drifts of 20,000 events starting at
  10-30 % of the run kept 80-90 % of their drifted events and lost the
  start). Such a ramp is no step from the held start where it fits about
  as well as the two levels (split at its middle, they started the run
  halfway down it), and a block must beat it too. A run whose first and
  last sixths sit at one level, off the level said to be held, came back:
  a gain changed for a while after the run's first tenth or so fills the
  first third, whose median then lies in it, and the run would be read as a
  drift (or a step) from the block's level to the end, the rest of the file
  removed and the block kept;
* a one-way drift with no held level (its best broken line, flat then
  straight, bends within the first `CREEP_ONSET` of the run: `drift_onset`,
  and no line that holds the level up to a clog's or a bubble's left-out
  bins reaching past it fits about as well: `_held_to_gap`; nor, where the
  drift leaves the start, a line that holds the start's level for
  `CREEP_ONSET` of the run or more, ramps and holds its change, better by
  `STEP_CHI2` and within `GAP_CHI2` of such a line from the first bins: the
  line straight to the run's end bends early to pass between a ramp and the
  level held after it) creeps over the
  whole run: there is no level it departs from, so its bins
  are judged against the run's own course (the running median of the
  longest window), which flags steps and spikes only, and the channel is
  reported as a trend (`StabilityCheck.creep`). Removing the part that left
  the first bins' level would cut most of such a file for a gentle slope
  (68 % of FlowSOM's 68983.fcs, whose dim PE populations brighten steadily
  over the whole run);
* otherwise the stable level is the middle of the densest half of the bin
  means (the shortest interval holding half of them, Rousseeuw's shorth;
  of the bins the rate check left, so that a clog filling half of a short
  run cannot set it):
  when a drift has moved a large part of the file, the median would lie
  partway along the drift, while the bins that did not move stay packed
  together. That first round uses the shortest window only; the check then
  runs again (up to twice, until its flags settle), with every window, and
  with the level taken as the median of the bins the round before (and the
  rate check) left unflagged: in a noisy channel the two halves overlap and
  the densest half still leans towards the drift, which a long window would
  then read as a departure of the good bins;
* the noise of a bin mean is ``s · sqrt(φ / m)``: ``s`` the typical (median)
  SD of one value within a bin, ``m`` the values the bin contributed and
  ``φ >= 1`` the file's overdispersion (the robust variance of the
  standardised differences of consecutive bins, which a slow drift hardly
  changes). Window medians of clean files stay within this noise (their SD
  over 31 clean files is 0.7-1.0 of it for every window and series), so the
  noise of a window follows from it;
* a bin departs when its mean is off the level by more than ``signal_z``
  noise SDs and by more than ``signal_shift`` (short events: a bubble, a
  burst of coincident events);
* a window of bins departs when the median of the means of its bins does
  the same, with the noise of all its values (a slow drift: many bins each a
  little off; a median, so that one odd bin cannot carry its neighbours);
  windows of `WINDOWS` bins centred on each bin are tried, so a drift too
  slow to show in 9 bins shows in 81;
* flagged runs grow into neighbouring bins whose window is still off in the
  same direction by ``extend_z`` SDs and by the shift: a run is found by its
  clearest part and then followed out to where the signal is back within
  the shift of its level; except beside a step (a stretch off the level
  with no drift), where the windows hold part of the step and lean its way:
  the bins at a run's edges that, taken together, sit at the level are
  dropped again (`_trim_step_edges`), once the run was judged whole; and
  where the bright series is judged too, the edges of the runs the windows
  found are placed by its deviations the same way (not at the run's start
  or end, where no level lies beside the stretch, unless the bins it would
  drop there fill the shortest window: a warm-up's first bins stay, while
  a block's run that the long windows, leaning a little, carried to the
  run's start through the 28 bins before it is cut at the block): the
  windows of the mean of all values, which a change in the mix of cells
  moves too, carried a gain changed for a while two to four bins past its
  end.

A stretch flagged through windows (found by them, or grown into from a
departing bin) that the channel's bright series does not follow there (in
the same direction, by at least half as much, over the bins the windows
read; `_not_gain`) is dropped: a change of
gain moves the brightest cells' level with every other summary, while a
change in how many cells are bright (T cells settling, or a chance wander of
their share) moves the upper-half and overall means and leaves that level
where it was. It is the sample's composition, not the detector. The bright
series' level is read from the bins outside the stretches judged: bins of a
drift that the round before left unflagged pull a median their way, and
the stretch would seem not to depart from it.

A channel that drifts is judged on one series: of its series that drift,
the one with the least noise per bin (the bright one where a marker's
bright cells are few, the upper one on scatter), unless that one creeps by
less than ``signal_z`` SDs while another held a level: then the steadiest
of those (the mean of a marker few cells carry, diluted by the cells that
do not, reads such a creep where the bright cells held their level and
then drifted). Its run is found and grown
through the longest window alone (81 bins): the median of a centred window
of a monotone series is the value at its centre, so the long window costs
no bias, while on shorter ones the noise carries the run up the ramp to
where the change is still below the shift. Where the drift bends away from
its level, though, a centred window holds the flat part's noisy values too,
and its median leans to their extreme: when the point where the series'
broken line (flat, then straight; on ``sinh`` of the bright series, which
scales with the gain) is off by the shift lies within half a window of the
bend, the run starts there instead (in a 10,000-event file, 47 bins and a
27-bin window, the run began a bin or two early). A drift that runs to the
end of the run may reach ``signal_z`` on no window at all: the longest is
cut by the end and holds as much of the level as of the ramp. The broken
line reads every bin of the ramp; where its end is off the level by more
than the shift and by ``signal_z`` SDs of the fitted end (and of the level),
and the median of the bins where the line is off by the shift is off by it
too (a straight line through a drift that levels off below the shift
overshoots it at its end), those bins are the run (`_line_drift`; the
lead's line, else that of another drifting series of the channel, the
steadiest first). The channel's other series then flag single bins only:
each noisy series crosses the shift where its own noise lets it, and a union
of them starts the run tens of bins before the gain is 10 % off. In a
drifting channel the bright series speaks for a drift it leads, or for
stretches away from the lead's run (above).

A drift over less than the run's last third may be no drift by the thirds
at all: the last third's median sits partway up the ramp, within the shift
of the first's. On a fluorescence channel whose windows found nothing, or
whose drifting series' lines fell short, a series whose last (or first)
sixth is off the other end's third by the shift and ``extend_z`` SDs of the
two medians drifts from that end's level, and is judged by its broken line
in the same way, over at least `cytokit.qc.shape.MIN_STRETCH` bins (`_end_line`; the
steadiest such series first). In files of 20,000-60,000 events, gains
22-27 % off at the end of a ramp over the last 31 % of the run had passed
with every event kept.

A bin is flagged when any series of any channel flags it. A bin a channel
flags alone, outside a run its windows found, is a spike (a bubble, a
burst): later rounds leave it out of the windows' medians. This is the
MAD-based outlier idea of PeacoQC (Emmaneel et al., Cytometry A
2022;101:325-38), applied to a robust location of every bin, with a
threshold that follows each bin's own number of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cytokit.kernels.acquisition import running_median
from cytokit.qc.rate import contiguous_runs, grow, shorth_level
from cytokit.qc.settings import Thresholds
from cytokit.qc.shape import MIN_STRETCH

__all__ = [
    "BAND",
    "BRIGHT",
    "BRIGHT_BINS",
    "BRIGHT_FEW",
    "BRIGHT_VALUES",
    "CREEP_ONSET",
    "DRIFT_BINS",
    "FOLLOW_SDS",
    "MIN_VALUES",
    "SERIES",
    "WINDOWS",
    "StabilityCheck",
    "bright_moments",
    "check_stability",
    "contiguous_runs",
    "drift_onset",
    "drift_reference",
    "shorth_level",
    "trend",
    "trend_z",
]

#: Rank band (fractions of a bin's values, sorted) of the second summary.
BAND = (0.5, 1.0)

#: The series of bin means per channel: all values, upper-weighted, bright (`bright_moments`).
SERIES = ("all", "upper", "bright")
#: Index of the bright series in `SERIES`.
BRIGHT = 2

#: Bins of the slow-drift test's windows (a drift over many bins shows at a long window
#: even when each bin alone is too noisy to tell).
WINDOWS = (9, 27, 81)
#: A one-way drift whose broken-line fit (`drift_onset`) holds a level for less than this
#: share of the run creeps over the whole run: there is no stable level to tell a
#: departure from, so it is reported as a trend, not removed. Simulated drifts of
#: `cytokit.simulate.anomalies.random_plan` start at 30-60 % of the run (fits 0.30-0.68).
CREEP_ONSET = 0.15
#: Fewest values a bin needs for its signal to be judged.
MIN_VALUES = 10
#: Fewest values a bin's bright level should rest on, as the effective number of its
#: weights, ``(Σx)² / Σx²`` (`bright_moments`): fewer, and the level is that of one to
#: three bright cells, which come and go from bin to bin.
BRIGHT_VALUES = 10
#: Share of a channel's bins of the usual flow that may rest on fewer than
#: `BRIGHT_VALUES` before its bright series is not judged at all.
BRIGHT_FEW = 0.1
#: Fewest bins a file needs before the bright series of a channel that does not drift is
#: judged (over 9-bin windows, `check_stability`): in a shorter file such a window is a
#: large part of the run, and a few bursts of bright clumps read as a gain (a 5,000-event
#: file has about 25 bins; a 10,000-event one 45-50, where gains changed for a while were
#: kept whole at 50).
BRIGHT_BINS = 40
#: Fewest judged bins a series needs to be read as a one-way drift (thirds of 5 bins).
DRIFT_BINS = 15
#: Fewest judged bins each third of the run's time must hold for the thirds to say whether
#: a drift leaves the start or settles early (`_late`); else the broken lines' fit says.
TIME_THIRD_BINS = 3
#: Share of the bins between a series' first judged bin and its last that, left out, makes
#: `_late` read the thirds of a drift's run in time rather than in judged bins.
GAPPED = 0.1
#: How far (in SDs of its median over the stretch) the upper half's mean may fall short of
#: a third of a bright stretch's move and still follow it (`_unfollowed`): over a block of
#: 10-15 bins that median has an SD of a third of the move or more.
FOLLOW_SDS = 1.0
#: How much better (chi-square, in the series' noise) two levels split at one bin must fit
#: a series whose thirds say it settles early than a settling ramp, to be read as a step
#: from a held start (`_step_gain`)
STEP_CHI2 = 9.0
#: Where a clog's or a bubble's left-out bins leave a drift's shape unsure, how much better
#: (chi-square in the series' noise) one reading must fit to overrule the lean of `_late`
#: (late) and `_held_to_gap` (a level held up to the gap): about two SDs
GAP_CHI2 = 4.0
#: Least share of the run a drift's start must hold its level for, to be read as a drift
#: from a held start that reached its change and held it rather than as a warm-up that
#: settles (`_drift_shape`, with `_ramp_line`)
HELD_START = 1 / 6
#: Least share of the run a shorter held start must hold, where its line fits better than a
#: warm-up's by `STEP_CHI2`
HELD_BRIEF = 0.05
#: Fewest of the judged bins (a share) a stretch off the level and back must leave at
#: the level on each side of it to be read as such rather than as a drift (`_block_fits`)
BLOCK_SIDE = 0.05
_MAD = 1.4826


@dataclass(frozen=True)
class StabilityCheck:
    """Per-bin results of the stability check.

    Attributes
    ----------
    level : ndarray of float64, shape (k, P)
        Stable level of each channel's series (asinh scale; NaN for a series
        not judged, such as a bright series that leads no drift).
    deviation : ndarray of float64, shape (B, k, P)
        Each bin's mean minus the level (asinh scale; 0 where not judged).
    z : ndarray of float64, shape (B, k)
        The largest (in size) departure, in noise SDs, of any judged series of
        the channel, in the bin or its window.
    flagged : ndarray of bool, shape (B,)
    channel_flagged : ndarray of bool, shape (B, k)
        Which channels flag each bin.
    spikes : ndarray of bool, shape (B,)
        Bins some channel flags on their own, outside the runs its windows
        found.
    creep : ndarray of float64, shape (k,)
        Per channel, the change (asinh scale, last third's median minus the
        first's) of a signal that creeps one way over the whole run, with no
        held level to depart from (`CREEP_ONSET`), by more than ``signal_z``
        noise SDs of the two thirds' medians (a clear trend); NaN for the
        others. Every channel that creeps, clear or not, flags only steps
        and spikes off its own course.
    """

    level: np.ndarray
    deviation: np.ndarray
    z: np.ndarray
    flagged: np.ndarray
    channel_flagged: np.ndarray
    spikes: np.ndarray
    creep: np.ndarray = field(default_factory=lambda: np.zeros(0))


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


def _thirds(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first, middle and last third of the judged bins `idx` (the thirds hold
    ``len(idx) // 3`` bins each, the middle the rest)."""
    third = idx.size // 3
    return idx[:third], idx[third : idx.size - third], idx[-third:]


def _late(mean: np.ndarray, m: np.ndarray, use: np.ndarray, parts, noise: float) -> bool:
    """Whether a series whose thirds differ drifts late in the run (it leaves the start's
    level) rather than early and settles: the middle third's median sits nearer the
    first's than twice its distance to the last's.

    The thirds are of the judged bins (`parts`, from `_thirds`) unless more than `GAPPED`
    of the run's bins between the first judged and the last were left out
    (by the rate check: a clog, a bubble). Thirds of the judged bins then lean
    on where the gaps fall: with a clog and a bubble early in a short run,
    most of the judged bins after them fall in the middle third, and a drift
    that starts between them reads as one that settles early. There the
    thirds are of the run's time, where each holds at least `TIME_THIRD_BINS`
    judged bins; where one holds fewer, the broken lines through the judged
    bins (least squares, weighted by their values) decide: straight then flat
    (early) where it fits better than flat then straight (late) by more than
    `GAP_CHI2` (chi-square in the series' `noise`), else late, as the thirds'
    rule leans late too (the middle third must sit clearly with the last).
    """
    idx = np.flatnonzero(use)
    pos, span = idx - idx[0], int(idx[-1] - idx[0]) + 1
    if idx.size < (1 - GAPPED) * span:
        third = span // 3
        parts = (
            idx[pos < third],
            idx[(pos >= third) & (pos < span - third)],
            idx[pos >= span - third],
        )
    if min(p.size for p in parts) >= TIME_THIRD_BINS:
        a, b, c = (float(np.median(mean[p])) for p in parts)
        return abs(b - a) <= 2 * abs(c - b)
    sse = [_broken_line(mean, m, use, late)[2] for late in (True, False)]
    return sse[0] - sse[1] <= GAP_CHI2 * noise * noise


def _median_sd(noise: float, m: np.ndarray, part: np.ndarray) -> float:
    """SD of the median of the bin means of `part`: ``1.2533 noise / sqrt(values)``."""
    return 1.2533 * noise / np.sqrt(max(float(m[part].sum()), 1.0))


def drift_onset(mean, m, use, late: bool = True) -> float:
    """Where a one-way drift starts, as a share of the run from the first judged bin
    (`use`) to the last.

    The best broken line through the bin means (weighted by their values
    ``m``) against the bins' places in time: flat up to a point, then
    straight, the point tried at every hundredth of the run up to 0.9 (least
    squares). Bins left out (a clog's) leave a gap in time, not a step: a
    gain that moved while the clog lasted is on the line. For a drift early in the
    run that settles (``late=False``) the line is straight first and flat
    after, and the share returned is of the run after the drift ends. A
    drift that holds a level for part of the run gives that part; a series
    that creeps over the whole run gives about 0.
    """
    return _broken_line(mean, m, use, late)[0]


def _run_share(idx: np.ndarray, late: bool) -> np.ndarray:
    """Each judged bin's place in the run from its first judged bin (0) to its last (1);
    for a drift early in the run (``late=False``), from the last to the first."""
    x = (idx - idx[0]) / max(int(idx[-1] - idx[0]), 1)
    return x if late else 1.0 - x


def _broken_line(mean, m, use, late: bool = True, taus=None) -> tuple[float, np.ndarray, float]:
    """(`drift_onset`, the fitted line's value at each judged bin, in their order, its
    weighted squared error); with `taus`, the best of the lines bending at those shares
    of the run. Where no line fits (fewer than 3 judged bins), the line is the bin means
    themselves, with no error."""
    idx = np.flatnonzero(use)
    n = idx.size
    if n < 3:
        return 0.0, np.asarray(mean, dtype=np.float64)[idx], 0.0
    y = np.asarray(mean, dtype=np.float64)[idx]
    w = np.asarray(m, dtype=np.float64)[idx]
    x = _run_share(idx, late)
    sw, sy = w.sum(), (w * y).sum()
    best, where, fitted = np.inf, 0.0, y
    for tau in np.linspace(0.0, 0.9, 91) if taus is None else taus:
        h = np.maximum(x - tau, 0.0)
        sh, shh, shy = (w * h).sum(), (w * h * h).sum(), (w * h * y).sum()
        det = sw * shh - sh * sh
        if det <= 0:
            continue
        b = (sw * shy - sh * sy) / det
        a = (sy - b * sh) / sw
        line = a + b * h
        sse = float((w * (y - line) ** 2).sum())
        if sse < best:
            best, where, fitted = sse, float(tau), line
    return where, fitted, (best if np.isfinite(best) else 0.0)


def _ramp_line(values, m, use, least: float = 0.0) -> tuple[float, np.ndarray, float]:
    """(where the ramp starts, the fitted line at each judged bin, its weighted squared
    error) of the best line that is flat, then straight, then flat again: a drift from a
    held start that reaches its change before the run's end and holds it. The ramp
    starts at every hundredth of the run from `least` up to 0.9 and lasts every
    twentieth up to the run's end (least squares, weighted by the bins' values, as
    `_broken_line`)."""
    idx = np.flatnonzero(use)
    y = np.asarray(values, dtype=np.float64)[idx]
    w = np.asarray(m, dtype=np.float64)[idx]
    x = _run_share(idx, True)
    sw, sy = w.sum(), (w * y).sum()
    best, where, fitted = np.inf, 0.0, y
    taus = np.linspace(0.0, 0.9, 91)
    for tau in taus[taus >= least - 1e-9]:
        d = np.arange(0.05, 1.0 - tau + 1e-9, 0.05)
        if not d.size:
            continue
        h = np.minimum(np.maximum(x - tau, 0.0)[None, :], d[:, None])
        sh, shh, shy = h @ w, (h * h) @ w, h @ (w * y)
        det = sw * shh - sh * sh
        ok = det > 0
        if not ok.any():
            continue
        b = np.where(ok, (sw * shy - sh * sy) / np.where(ok, det, 1.0), 0.0)
        a = (sy - b * sh) / sw
        lines = a[:, None] + b[:, None] * h
        sse = np.where(ok, ((y - lines) ** 2) @ w, np.inf)
        i = int(np.argmin(sse))
        if sse[i] < best:
            best, where, fitted = float(sse[i]), float(tau), lines[i]
    return where, fitted, best


def _drift_start(
    ser: _Series, level: float, th: Thresholds, linear: bool = False, near: int = 0
) -> tuple[int, int] | None:
    """Bins of a drifting series before which (late drift) or after which (early drift)
    its broken line (for a late drift that fits it better by `STEP_CHI2`, the line that
    holds after its ramp, `_ramp_line`) stays within ``signal_shift`` of `level`:
    ``(first, last)`` bins
    where the line is off; None when it never is, or is off on its flat part too (it and
    `level` disagree), or when that bin is `near` bins or
    more from the line's bend, from any bin the windows leave out and from the run's
    ends (there a centred window of ``2 near`` bins reaches neither the flat part, nor
    a gap, nor an end, so its median has no lean to correct; beside a gap such as a
    clog's it holds the ramp's far side only, and where an end cuts it, the flat
    side only, and its median leans that way). ``linear``:
    the line is fitted to ``sinh`` of the means (the bright series, whose ``sinh``
    scales with the gain), and the shift is read as a ratio to ``sinh(level)``."""
    use, late = ser.wok, ser.late
    idx = np.flatnonzero(use)
    b = ser.mean.shape[0]
    if idx.size < DRIFT_BINS:
        return None
    values = np.sinh(ser.mean) if linear else ser.mean
    tau, line, sse = _broken_line(values, ser.m, use, late)
    # a drift from a held start that reaches its change and holds it: the straight part
    # of the broken line, fitted through the ramp and the held level after it, starts too
    # early and rises too slowly, so it leaves `level` by the shift before the gain does;
    # the line that holds after its ramp is read instead where it fits the series better
    # by `STEP_CHI2` (a drift early in the run is straight, then flat, already)
    if late:
        plain = sse if not linear else _broken_line(ser.mean, ser.m, use)[2]
        ramp = _ramp_line(ser.mean, ser.m, use)
        if plain - ramp[2] > STEP_CHI2 * ser.noise**2:
            tau, line, _ = ramp if not linear else _ramp_line(values, ser.m, use)
    if linear:
        ratio = line / np.sinh(level) if np.sinh(level) > 0 else np.ones_like(line)
        off = np.flatnonzero(np.abs(np.log(np.maximum(ratio, 1e-300))) > th.signal_shift)
    else:
        off = np.flatnonzero(np.abs(line - level) > th.signal_shift)
    flat = 0 if late else idx.size - 1  # a bin on the line's flat part
    if not off.size or off[0] == flat or off[-1] == flat:
        # never off, or off on its flat part too: the line and the level disagree (a
        # level read from few bins), and the line cannot say where the drift left it
        return None
    span = int(idx[-1] - idx[0])
    bend = idx[0] + tau * span if late else idx[-1] - tau * span
    k = int(idx[off[0]] if late else idx[off[-1]])
    left_out = ser.ok & ~use
    gap = left_out[max(k - near, 0) : k + near + 1].any()
    end = k - near < 0 or k + near > b - 1
    if abs(k - bend) >= near and not gap and not end:
        return None
    return (k, b - 1) if late else (0, k)


def _line_drift(ser: _Series, level: float, th: Thresholds, linear: bool) -> tuple[int, int] | None:
    """The bins where a drifting series' broken line is off `level` by ``signal_shift``
    (`_drift_start`), when the line's far end is off it by more than ``signal_z`` SDs of
    the fitted end and the level together, and the median of those bins is off it by
    more than the shift as well; else None."""
    use = ser.wok
    idx = np.flatnonzero(use)
    if idx.size < DRIFT_BINS:
        return None
    tau, line, _ = _broken_line(ser.mean, ser.m, use, ser.late)
    h = np.maximum(_run_share(idx, ser.late) - tau, 0.0)
    w = ser.m[idx] / ser.noise**2
    design = np.column_stack((np.ones_like(h), h))
    info = design.T @ (design * w[:, None])
    if np.linalg.det(info) <= 0:
        return None
    far = np.array([1.0, 1.0 - tau])
    var = float(far @ np.linalg.solve(info, far))
    held = float(ser.m[idx][h == 0].sum())
    var += (1.2533 * ser.noise) ** 2 / max(held, 1.0)
    d = float(line[-1] if ser.late else line[0]) - level
    if abs(d) <= th.signal_shift or abs(d) <= th.signal_z * np.sqrt(var):
        return None
    got = _drift_start(ser, level, th, linear, ser.mean.shape[0])
    if got is None:
        return None
    # the bins themselves, not only the line, are off by the shift: a straight ramp through
    # a drift that levels off below the shift overshoots it at its end
    seen = ser.wok[got[0] : got[1] + 1]
    off = float(np.median(ser.mean[got[0] : got[1] + 1][seen])) - level if seen.any() else 0.0
    return got if off * d > 0 and abs(off) > th.signal_shift else None


def drift_reference(mean, m, use, noise: float, th: Thresholds) -> float | None:
    """The level a monotone drift departs from, or None when the series has no such drift.

    A lab reads a drift as a departure from the level the run started at and
    held longest. The judged bins (`use`) are cut into thirds and the
    median of each third's bin means taken (``a``, ``b``, ``c``). When the last
    third departs from the first by more than ``signal_shift`` and by more than
    ``extend_z`` noise SDs of the two medians, the series drifts one way over
    the run, and the stable level is that of the start, unless the middle
    third sits clearly with the last (``|b - a| > 2 |c - b|``: a drift early in
    the run that settles, such as a laser warming up; `_late`, whose thirds are
    of time where a clog and a bubble left bins out), when it is the end's;
    but not where the start held its level up to a step (`_step_gain`; the run's
    first sixth at that level; the step must fit better than the line below by
    `GAP_CHI2`, else it split a ramp in its middle), nor where a line that holds
    the start's level for at least `HELD_START` of the run, then ramps and holds
    its change (`_ramp_line`), fits within `GAP_CHI2` of the settling one, or one
    that holds it for `HELD_BRIEF` fits better than it by `STEP_CHI2`: a drift
    from a held start that reached its change by the run's middle leaves the
    middle third with the last as a warm-up does, and a straight line from the
    run's first bin fit it about as well (the level is then that of the bins
    before the ramp).
    The level is the median of the bins that held it: from that end inwards
    to where a running median of 27 bins first leaves the end third's median
    by half of ``signal_shift`` beyond that third (the drift's onset; a third's
    median alone leans on the slow wander of the population mix in it).
    Without this the densest half of a drifting series, or the median of all
    its bins, can lie partway along the drift: the check then reads the
    undisturbed start as the departure, or sees nothing. A series that held
    no level (`drift_onset` below `CREEP_ONSET`: it creeps over the whole
    run; but see `_held_to_gap`, and a late drift whose start a line holding it
    for `CREEP_ONSET` of the run, then ramping and holding its change, fits
    better by `STEP_CHI2`) has none to depart from, and gets None too; nor does a series whose
    last (or first, for an early drift) sixth is back within ``signal_shift``
    of the level (no creep either): a drift is off at its far end, and that
    series held a gain changed for a while and restored; nor one whose first
    and last sixths sit at one level off the level said to be held (it came
    back: a gain changed for a while early in the run filled the first third),
    or that a level inside a stretch and another outside it fit better than its
    drift (`_block_fits`; better than a ramp that holds its change too, from
    any bin for a late drift, from the held start for an early one).
    """
    return _drift_shape(mean, m, use, noise, th)[0]


def _drift_shape(
    mean, m, use, noise: float, th: Thresholds, ends: bool = False
) -> tuple[float | None, float, float, bool, int]:
    """(`drift_reference`, change, z, late, step): a one-way drift with no held level
    (`drift_onset` below `CREEP_ONSET`, unless the level held up to a gap of left-out
    bins, `_held_to_gap`, or, in a late drift, for `CREEP_ONSET` of the run before a
    ramp to a change it held, `_ramp_line`) has no reference (None); its change over the
    run, the last third's median minus the first's, and that change in noise SDs of the
    two medians are returned instead (NaN for the others). ``late``: the drift leaves the run's
    start (else it is early and settles, `drift_reference`); True where there is no
    drift. ``ends``: a series that does not drift by the thirds drifts when an end
    sixth of it does (`_end_drift`) from a held level (never a creep). ``step``: the
    first bin of the second level where the series held the start's level up to a step
    (`_step_gain`; the level is then the bins' before it), else -1."""
    nan = float("nan")
    idx = np.flatnonzero(use)
    if idx.size < DRIFT_BINS:
        return None, nan, nan, True, -1
    parts = _thirds(idx)
    third = parts[0].size
    a, c = (float(np.median(mean[p])) for p in parts[::2])
    sd_a, sd_c = (_median_sd(noise, m, p) for p in parts[::2])
    change = c - a
    if abs(change) > th.signal_shift and abs(change) > th.extend_z * np.hypot(sd_a, sd_c):
        late = _late(mean, m, use, parts, noise)
        onset, _, sse = _broken_line(mean, m, use, late)  # `drift_onset`, its line's error
        sixth = max(idx.size // 6, 1)
        first, last = (float(np.median(mean[p])) for p in (idx[:sixth], idx[-sixth:]))

        def came_back(held: float) -> bool:
            # the run's first and last sixths sit at one level and the level said to be
            # held is off the start's sixth: the run departed from its level and came
            # back (a gain changed for a while early in the run), no drift and no step
            return abs(first - last) <= th.signal_shift and abs(first - held) > th.signal_shift

        n2 = noise * noise
        fits: dict[float, tuple[float, np.ndarray, float]] = {}

        def ramp_from(least: float) -> tuple[float, np.ndarray, float]:
            # `_ramp_line` from `least` of the run on, each fitted once
            if least not in fits:
                fits[least] = _ramp_line(mean, m, use, least)
            return fits[least]

        def level_before(tau: float) -> float:
            # the level a held-ramp line holds: the median of the bins before its ramp
            return float(np.median(mean[idx[_run_share(idx, True) < tau]]))

        if not late:
            # a drift read as early may be one from a held start that reached its change and
            # held it: the line that holds the start's level for `HELD_START` of the run or
            # more (or for `HELD_BRIEF`, where that fits clearly better than the settling
            # line), then ramps and holds its change
            held_fit = ramp_from(HELD_START)
            if held_fit[2] - sse > GAP_CHI2 * n2:
                brief = ramp_from(HELD_BRIEF)
                if sse - brief[2] >= STEP_CHI2 * n2:
                    held_fit = brief
            gain, at = _step_gain(mean, m, use, noise, sse)
            # a ramp from the held start is no step where it fits about as well (the two
            # levels then split it in its middle)
            if gain > STEP_CHI2 and held_fit[2] - (sse - gain * n2) > GAP_CHI2 * n2:
                # the start held its level up to a step, the run ends nearer the step's
                # level than the start's (a gain changed for a while and restored is not
                # a step from a held start) and its first sixth sits at that level, nearer
                # it than the step's (a change early in the run holds most of the bins
                # before the step, and their median is then its level, not the start's)
                held = use & (np.arange(mean.shape[0]) < at)
                start = float(np.median(mean[held]))
                after = float(np.median(mean[idx[idx >= at][:sixth]]))
                begun = abs(first - start)
                at_start = begun <= th.signal_shift and begun < abs(first - after)
                if abs(last - after) < abs(last - start) and at_start:
                    if not _block_fits(mean, m, use, noise, sse - gain * n2):
                        return start, nan, nan, True, at
                    return None, nan, nan, True, -1
        if came_back(a if late else c):
            return None, nan, nan, True, -1
        # a drift may reach its change and hold it: a block must beat that line too (a late
        # drift's from any bin, an early one's from its held start)
        held_sse = sse if late else held_fit[2]
        if _block_fits(mean, m, use, noise, min(sse, held_sse)) and (
            not late or _block_fits(mean, m, use, noise, ramp_from(0.0)[2])
        ):
            return None, nan, nan, True, -1
        if not late and held_sse - sse <= GAP_CHI2 * n2:
            # the start held its level, then the gain moved and held its change: a drift
            # from a held start, not a warm-up settling from the first events (a ramp from
            # the start fits no better)
            return level_before(held_fit[0]), nan, nan, True, -1
        if abs((last if late else first) - (a if late else c)) <= th.signal_shift:
            # a drift (or a creep) is off at its far end: a run whose thirds differ but whose
            # last (or first) sixth is back at the level held a gain changed for a while and
            # restored, judged as a departure and back, not as a drift to the end
            return None, nan, nan, True, -1
        if onset < CREEP_ONSET and not _held_to_gap(mean, m, use, late, noise, sse):
            if late:
                tau, _, ramp = ramp_from(CREEP_ONSET)
                free = ramp_from(0.0)[2]
                if sse - ramp > STEP_CHI2 * n2 and ramp - free <= GAP_CHI2 * n2:
                    # the start held its level for `CREEP_ONSET` of the run or more (a ramp
                    # from the first bins fits no better), then the gain moved and held its
                    # change: the line straight to the run's end bent early to pass between
                    # the ramp and the level after it, no creep
                    return level_before(tau), nan, nan, True, -1
            z = float(abs(change) / np.hypot(sd_a, sd_c))
            return None, float(change), z, late, -1
    elif ends:
        # a drift over the last (or first) third of the run or less: that third's median
        # sits partway up the ramp, within the shift, while the end sixth holds the
        # ramp's far part; it has a held level, or it is no drift
        late = _end_drift(mean, m, idx, noise, th, (a, c), (sd_a, sd_c))
        if late is None or drift_onset(mean, m, use, late) < CREEP_ONSET:
            return None, nan, nan, True, -1
    else:
        return None, nan, nan, True, -1
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
    return (float(np.median(mean[held])) if held.sum() >= third else start), nan, nan, late, -1


def _held_to_gap(mean, m, use, late: bool, noise: float, best: float) -> bool:
    """Whether a series whose best broken line (of weighted squared error `best`) bends
    before `CREEP_ONSET` held its level up to a stretch of bins left out (a clog's, a
    bubble's) that reaches `CREEP_ONSET` of the run or beyond, after at least
    `TIME_THIRD_BINS` judged bins: a line bending within that gap fits within `GAP_CHI2`
    (chi-square in the series' `noise`) of the best. The line cannot place a bend within
    a gap, and a few judged bins before it place one among them by their noise: a drift
    that started while the clog lasted, not a creep from the run's start."""
    idx = np.flatnonzero(use)
    x = np.sort(_run_share(idx, late))
    step = 1.0 / max(int(idx[-1] - idx[0]), 1)
    wide = np.flatnonzero(np.diff(x) > 1.5 * step) + 1  # the first judged bin after a gap
    wide = wide[(wide >= TIME_THIRD_BINS) & (x[np.minimum(wide, x.size - 1)] >= CREEP_ONSET)]
    if not wide.size:
        return False
    lo, hi = x[wide[0] - 1], min(x[wide[0]], 0.9)
    if hi <= lo:
        return False
    taus = np.linspace(lo, hi, max(round((hi - lo) * 100), 1) + 1)
    return _broken_line(mean, m, use, late, taus)[2] - best <= GAP_CHI2 * noise * noise


def _block_fits(mean, m, use, noise: float, reading: float) -> bool:
    """Whether one level inside a stretch of the judged bins (`use`) and another outside
    it, on both sides (`BLOCK_SIDE` of the judged bins or `TIME_THIRD_BINS`, whichever is
    more), fit a series better than its drift's reading (of weighted squared error
    `reading`) by `STEP_CHI2` (chi-square in the series' `noise`): the run left its level
    and came back (a gain changed for a while). A stretch off the level that fills much
    of a third moves that third's median, and a chance wander of a noisy series' ends
    does the rest: the thirds then read a drift to the end from the stretch, or a step,
    and the rest of the file was removed with the stretch kept. Least squares, weighted
    by the bins' values ``m``; the stretch's edges at every hundredth of the judged bins
    (or every bin, where fewer)."""
    idx = np.flatnonzero(use)
    n = idx.size
    side = max(TIME_THIRD_BINS, int(n * BLOCK_SIDE))
    if n < DRIFT_BINS or n - 2 * side < 1 or not noise > 0:
        return False
    y = np.asarray(mean, dtype=np.float64)[idx]
    w = np.asarray(m, dtype=np.float64)[idx]
    cw = np.concatenate(([0.0], np.cumsum(w)))
    cy = np.concatenate(([0.0], np.cumsum(w * y)))
    cuts = np.unique(np.linspace(side, n - side, min(n - 2 * side + 1, 101)).round().astype(int))
    lo, hi = cuts[:, None], cuts[None, :]  # the stretch holds judged bins [lo, hi)
    iw, iy = cw[hi] - cw[lo], cy[hi] - cy[lo]
    ow, oy = cw[-1] - iw, cy[-1] - iy
    ok = (hi > lo) & (iw > 0) & (ow > 0)
    if not ok.any():
        return False
    # two levels' error: the sum of squares less each level's share of it
    within = iy**2 / np.where(ok, iw, 1.0) + oy**2 / np.where(ok, ow, 1.0)
    sse = float((w * y * y).sum()) - float(within[ok].max())
    return reading - sse > STEP_CHI2 * noise * noise


def _step_gain(mean, m, use, noise: float, line_sse: float) -> tuple[float, int]:
    """How much better (chi-square in the series' `noise`) two levels split at one bin,
    the first holding at least a sixth of the judged bins, fit a series than the best
    broken line straight first and flat after (a warm-up's settling ramp, whose weighted
    squared error `_broken_line` with ``late=False`` gives as `line_sse`), and the
    first bin of the second level; -inf and -1 where they cannot be fitted. A step a
    third of the way into the run (a laser's power changed) leaves the middle third
    with the last as a settling ramp does, but the run started at the level the
    instrument was set to (`STEP_CHI2`)."""
    idx = np.flatnonzero(use)
    n = idx.size
    if n < DRIFT_BINS or not noise > 0:
        return -np.inf, -1
    y = np.asarray(mean, dtype=np.float64)[idx]
    w = np.asarray(m, dtype=np.float64)[idx]
    cw, cy, cyy = (np.cumsum(v) for v in (w, w * y, w * y * y))
    k = np.arange(max(n // 6, 1), n - 1)  # the first level holds bins [0, k]
    lw, ly, lyy = cw[k], cy[k], cyy[k]
    rw, ry, ryy = cw[-1] - lw, cy[-1] - ly, cyy[-1] - lyy
    ok = (lw > 0) & (rw > 0)
    if not ok.any():
        return -np.inf, -1
    sse = (lyy - ly**2 / np.where(ok, lw, 1)) + (ryy - ry**2 / np.where(ok, rw, 1))
    best = int(np.argmin(np.where(ok, sse, np.inf)))
    return (line_sse - float(sse[best])) / noise**2, int(idx[k[best] + 1])


def _end_drift(mean, m, idx, noise: float, th: Thresholds, ends, sds) -> bool | None:
    """Whether the last sixth of the judged bins `idx` (True) or the first (False) is off
    the other end's third (medians `ends` of the first and last thirds, their SDs `sds`)
    by more than ``signal_shift`` and ``extend_z`` SDs (the one further in SDs where both
    are); None where neither is."""
    sixth = idx.size // 6
    best, out = th.extend_z, None
    for late, part, other, sd in (
        (True, idx[-sixth:], ends[0], sds[0]),
        (False, idx[:sixth], ends[1], sds[1]),
    ):
        change = float(np.median(mean[part])) - other
        zc = abs(change) / np.hypot(_median_sd(noise, m, part), sd)
        if abs(change) > th.signal_shift and zc > best:
            best, out = zc, late
    return out


def bright_moments(
    events, columns, cofactors, tops, starts, stops, max_per_bin: int, skip=None, skip_bits=0xFF
):
    """Per bin and channel, the contraharmonic mean of the values: ``Σ x² / Σ x``.

    Over the rows `cytokit.kernels.acquisition.bin_moments` reads (at most
    `max_per_bin` per bin, evenly spaced), with negative values counted as 0 and
    values at or above the channel's top (`tops`, saturated) and non-finite
    ones left out, as are the rows whose `skip` code has a bit of `skip_bits`
    (as `bin_moments` leaves them out, reading a bin of such rows only whole).
    Each value weighs by its own size, so the summary is the level of the brightest
    cells the bin holds, whatever their share, and a change of gain ``g`` multiplies
    it by exactly ``g``.

    Returns
    -------
    count : ndarray of int64, shape (B, k)
        Values used; 0 in every bin of a channel whose level rests on fewer
        than `BRIGHT_VALUES` values, by the effective number of its weights
        ``(Σx)² / Σx²`` (a few bright cells among dim ones), in more than
        `BRIGHT_FEW` of the bins holding at least half the median bin's values
        (so that the channel's bright level is not judged).
    mean : ndarray of float64, shape (B, k)
        ``asinh(C / cofactor)`` (NaN where the bin has no positive value).
    sd : ndarray of float64, shape (B, k)
        Per-value SD on that scale (delta method: ``C``'s SD is
        ``sqrt(mean(x² (x - C)²)) / mean(x) / sqrt(count)``), so that
        ``sd / sqrt(count)`` is the SD of the bin's value.
    """
    starts = np.asarray(starts, dtype=np.int64)
    stops = np.asarray(stops, dtype=np.int64)
    n = stops - starts
    m = np.minimum(n, max_per_bin)
    off = np.concatenate(([0], np.cumsum(m)))
    b, k = starts.shape[0], len(columns)
    count = np.zeros((b, k), dtype=np.int64)
    mean = np.full((b, k), np.nan)
    sd = np.full((b, k), np.nan)
    if b == 0 or k == 0 or off[-1] == 0:
        return count, mean, sd
    # the rows of `sample_rows`: all of a small bin, else the middle of each 1/m share
    g = np.repeat(np.arange(b), m)
    s = np.arange(off[-1]) - off[g]
    big = n[g] > max_per_bin
    rows = starts[g] + np.where(big, ((2 * s + 1) * n[g]) // (2 * np.maximum(m[g], 1)), s)
    have = m > 0
    first = off[:-1][have]
    # one gather of whole rows (a row's values share a cache line), then a channel at a time:
    # half the time of a gather per channel on a 10-million-event file
    block = np.asarray(events)[rows][:, np.asarray(columns, dtype=np.int64)].T
    kept = None
    if skip is not None:
        kept = (np.asarray(skip)[rows] & np.uint8(skip_bits)) == 0
        # a bin whose every row is to be skipped is read whole, as `bin_moments` reads it
        kept_in_bin = np.zeros(b, dtype=np.int64)
        kept_in_bin[have] = np.add.reduceat(kept.astype(np.int64), first)
        kept |= (kept_in_bin == 0)[g]
    # values near 1e300 (a D file of absurd values) overflow when squared: that channel's
    # level is then NaN, not judged, and no numpy warning reaches the user; a bin with no
    # value gives 0 / 0, NaN, as well
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for j in range(k):
            v = block[j].astype(np.float64)
            use = np.isfinite(v) & (v < tops[j])
            if kept is not None:
                use &= kept
            x = np.where(use, np.maximum(v, 0.0), 0.0)
            x2 = x * x
            c, s1, s2, spread = (np.zeros(b) for _ in range(4))
            c[have] = np.add.reduceat(use.astype(np.float64), first)
            s1[have] = np.add.reduceat(x, first)
            s2[have] = np.add.reduceat(x2, first)
            good = s1 > 0
            # a level resting on a few cells (a marker positive on 1-3 cells a bin: CD107a,
            # IFN-g, a KIR) jumps with their number from bin to bin; where that is common in
            # the bins of the usual flow (a slow clog's bins hold few values of any kind), the
            # channel has no steady bright level, and none of its bins is judged
            few = s1 * s1 < BRIGHT_VALUES * s2
            usual = have & (c >= 0.5 * np.median(c[have]))
            rare = np.count_nonzero(few & usual) > BRIGHT_FEW * np.count_nonzero(usual)
            cm = np.where(good, s2 / np.where(good, s1, 1.0), np.nan)
            spread[have] = np.add.reduceat(x2 * (x - cm[g]) ** 2, first)
            sd_c = np.sqrt(spread / c) / (s1 / c)
            count[:, j] = 0 if rare else c.astype(np.int64)
            mean[:, j] = np.where(good, np.arcsinh(cm / cofactors[j]), np.nan)
            sd[:, j] = np.where(good, sd_c / np.hypot(cm, cofactors[j]), np.nan)
    return count, mean, sd


@dataclass
class _Series:
    """One series of bin means, ready to judge."""

    ok: np.ndarray  # bins judged
    m: np.ndarray  # values behind each judged bin's mean (0 elsewhere)
    y: np.ndarray  # the means (0 where not judged)
    mean: np.ndarray  # the means as given
    noise: float  # SD of a mean of one value: a bin's SD is noise / sqrt(m)
    wok: np.ndarray  # bins the windows read
    drift: float | None  # the level a monotone drift departs from (`drift_reference`)
    creep: float = float("nan")  # change over the run of a drift with no held level
    creep_z: float = float("nan")  # that change in noise SDs
    late: bool = True  # a drift leaves the run's start (False: early, and settles)
    step: int = -1  # first bin after a step from the held start (`_step_gain`), else -1

    @property
    def bin_noise(self) -> float:
        """SD of a typical bin's mean."""
        return self.noise / np.sqrt(max(float(np.median(self.m[self.ok])), 1.0))


def _noise(mean, sd, count) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(bins judged, values behind each, SD of a mean of one value) of a series, or None
    with fewer than 4 bins to judge: the median SD of one value, widened by the bins'
    overdispersion (the robust SD of successive bins' standardised differences)."""
    ok = np.isfinite(mean) & (count >= MIN_VALUES)
    if ok.sum() < 4:
        return None
    s = float(np.median(sd[ok & np.isfinite(sd)])) if np.any(ok & np.isfinite(sd)) else 0.0
    m = np.where(ok, count, 0).astype(np.float64)
    yi, mi = mean[ok], m[ok]
    if s > 0:
        d = np.diff(yi) / (s * np.sqrt(1.0 / mi[1:] + 1.0 / mi[:-1]))
        phi = max(1.0, (_MAD * float(np.median(np.abs(d - np.median(d))))) ** 2)
    else:
        phi = 1.0  # every value equal in a typical bin: only the shift threshold can speak
    return ok, m, max(s, 1e-12) * np.sqrt(phi)


def _prepare(mean, sd, count, th: Thresholds, inputs) -> _Series | None:
    got = _noise(mean, sd, count)
    if got is None:
        return None
    ok, m, noise = got
    y = np.where(ok, mean, 0.0)
    wok = ok if inputs is None else ok & inputs
    return _Series(ok, m, y, mean, noise, wok, *_drift_shape(mean, m, wok, noise, th))


def _end_series(ser: _Series, th: Thresholds) -> _Series:
    """`ser` (prepared, `_prepare`) with its drift read over the run's end sixths too
    (`_drift_shape` with ``ends``): its bins, values and noise are the same."""
    shape = _drift_shape(ser.mean, ser.m, ser.wok, ser.noise, th, ends=True)
    names = ("drift", "creep", "creep_z", "late", "step")
    return replace(ser, **dict(zip(names, shape, strict=True)))


def _channel(ser: _Series, th: Thresholds, reference, windows, *, use_windows=True, use_bins=True):
    """(flags, single-bin flags, window runs, deviation, z, level, beside) of one prepared series.

    ``beside``: bins of the runs that sit at the level beside a step
    (`_trim_step_edges`), which the caller drops once the runs are judged whole.

    ``use_windows=False``: the series flags single bins only (its channel's
    drift is judged on a steadier series of the same channel);
    ``use_bins=False``: through windows only.
    """
    ok, m, y, noise, wok = ser.ok, ser.m, ser.y, ser.noise, ser.wok
    b = y.shape[0]
    level, course = ser.drift, None
    if np.isfinite(ser.creep):
        # a creep over the whole run: each bin is judged against the run's own course
        # there (the running median of the longest window), and no window, so only a step
        # or a spike off that course is flagged, never the course itself
        level = float(np.median(ser.mean[ok]))
        course = running_median(y, wok, WINDOWS[-1] // 2)
        course = np.where(np.isfinite(course), course, level)
        use_windows = False
    if level is not None and use_windows:
        # a slow drift is judged on the longest window alone: on shorter ones the noise
        # carries its run up the ramp to where the change is still below the shift (the
        # median of a centred window of a monotone series is its centre's value, so a
        # long window costs no bias)
        windows = [w for w in windows if w <= b][-1:]
    if level is None:
        ref = ok if reference is None else ok & reference
        if reference is not None and ref.sum() >= max(4, ok.sum() // 4):
            level = float(np.median(ser.mean[ref]))
        elif wok.sum() >= max(4, ok.sum() // 4):
            # the densest half of the bins the windows read: a clog's dimmed bins (the
            # rate check's) must not be the level when they are half of the run
            level = shorth_level(ser.mean[wok])
        else:
            level = shorth_level(ser.mean[ok])
    dev = np.where(ok, y - (level if course is None else course), 0.0)
    z = dev * np.sqrt(np.maximum(m, 1.0)) / noise
    single = ok & (np.abs(z) > th.signal_z) & (np.abs(dev) > th.signal_shift) & use_bins
    strong_hi = np.zeros(b, dtype=bool)
    strong_lo = np.zeros(b, dtype=bool)
    wz = np.zeros(b)
    weak_hi = np.zeros(b, dtype=bool)
    weak_lo = np.zeros(b, dtype=bool)
    # windows read only the `inputs` bins (`wok`): a clog's bins must not pull its
    # neighbours' window medians
    for w in windows if use_windows else ():
        if w > b:
            break
        wmed, wtot = _window_median(y, m, wok, w // 2)
        wdev = np.where(wtot > 0, wmed - level, 0.0)
        # the median of w bin means has about 1.25x the SD of their mean (normal values)
        zw = wdev * np.sqrt(np.maximum(wtot, 1.0)) / (1.2533 * noise)
        far = ok & (np.abs(wdev) > th.signal_shift)
        strong_hi |= far & (zw > th.signal_z)
        strong_lo |= far & (zw < -th.signal_z)
        wz = np.where(np.abs(zw) > np.abs(wz), zw, wz)
        weak_hi |= far & (zw > th.extend_z)
        weak_lo |= far & (zw < -th.extend_z)
    # runs found through windows; a bin that departs alone is a spike (a bubble, a burst)
    runs = grow(strong_hi, weak_hi | strong_hi) | grow(strong_lo, weak_lo | strong_lo)
    strong_hi |= single & (dev > 0)
    strong_lo |= single & (dev < 0)
    hi = grow(strong_hi, weak_hi | strong_hi)
    lo = grow(strong_lo, weak_lo | strong_lo)
    beside = np.zeros(b, dtype=bool)
    if course is None and ser.drift is None:
        # a step (a clog's dimmed stretch with no change of rate): the windows beside it
        # hold some of its bins, so their medians lean its way and the run grows past it
        beside = (hi & ~_trim_step_edges(hi, dev, m, noise, th, 1.0)) | (
            lo & ~_trim_step_edges(lo, dev, m, noise, th, -1.0)
        )
    zz = np.where(np.abs(wz) > np.abs(z), wz, z) * ok
    return hi | lo, single, runs, dev, zz, level, beside & ~single


def _follows(lead: float, other: float, divisor: float) -> bool:
    """Whether a change `other` goes the way of `lead`, by at least ``1 / divisor`` of it."""
    return other * lead > 0 and abs(other) >= abs(lead) / divisor


def _trim_step_edges(run, dev, m, noise, th: Thresholds, sign: float) -> np.ndarray:
    """`run` without the bins at its edges that the windows added and that sit at the level.

    A window's median leans towards a step (a clog's dimmed stretch with no
    change of rate) it holds part of, so the windows beside a step are off
    while their bins are where they were, and the run grows past the step by
    up to half the longest window. At each end of each contiguous stretch of
    `run` the step is placed where a split of the stretch into bins at the
    level (deviation 0) and bins at the stretch's own level (the median
    deviation of its bins) fits the bin means best (least squares, each bin
    weighed by its values); the bins outside the step are dropped, but for
    the one next to it (the step may fall within it), when, taken together,
    they are off the level by less than half ``signal_shift``. A stretch off
    by less than that is left as it is; a ramp's edge, whose bins are each
    a little off, fits a step poorly and mostly stays.
    """
    out = run.copy()
    for a, e in contiguous_runs(run):
        if e - a < 3:
            continue
        own = sign * dev[a:e]
        w = m[a:e]
        if not (w > 0).any():
            continue
        mu = float(np.median(own[w > 0]))
        if mu <= th.signal_shift / 2:
            continue
        for forward in (True, False):
            x, v = (own, w) if forward else (own[::-1], w[::-1])
            at_level = np.concatenate(([0.0], np.cumsum(v * x * x)))[:-1]  # bins before k
            at_mu = np.cumsum((v * (x - mu) ** 2)[::-1])[::-1]  # bins from k on
            k = int(np.argmin(at_level + at_mu))
            if k < 2:
                continue
            tot = float(v[:k].sum())
            if tot > 0 and float(np.sum(v[:k] * x[:k])) / tot >= th.signal_shift / 2:
                continue
            drop = np.arange(a, a + k - 1) if forward else np.arange(e - k + 1, e)
            out[drop] = False
    return out


def _level_outside(ser: _Series, run: np.ndarray, reference) -> float:
    """A series' level from its bins outside the stretches `run` (of the `reference` bins
    where given): a stretch the round before left unflagged would pull it its own way, and
    seem not to depart from it; with fewer than a quarter of the judged bins left, the
    middle of the densest half of them all (`shorth_level`)."""
    ok = ser.ok
    ref = (ok if reference is None else ok & reference) & ~run
    if ref.sum() >= max(4, ok.sum() // 4):
        return float(np.median(ser.mean[ref]))
    return shorth_level(ser.mean[ok])


def _not_gain(run: np.ndarray, dev: np.ndarray, bright: _Series | None, reference) -> np.ndarray:
    """Bins of the runs in `run` that the channel's bright series does not follow.

    A change of gain multiplies every value, so the brightest cells' level
    (`bright_moments`) moves by as much as the mean of the upper half or of
    all values, or more; a change in the share of bright cells moves those
    means and leaves the bright level where it was. A run (a contiguous
    stretch of `run`) of a series whose deviation `dev` the bright series
    does not follow there, in the same direction and by at least half as
    much (median deviations over the run, the bright series' from its own
    stable level: where it drifts too, the level its drift started from), is
    such a composition change. A run over which the bright
    series is measured in fewer than half of the bins is left alone. The
    caller passes the runs restricted to the bins its windows read, so the
    bins of a clog or a bubble (left out of the windows) are judged by the
    rate and their own spikes, and do not carry the stretch beside them.
    """
    out = np.zeros(run.shape[0], dtype=bool)
    if bright is None:
        return out
    ok = bright.ok
    # where the bright cells drift too, their level is where the drift started, as the
    # run's series is judged: the median of the bins not yet flagged would lie partway
    # along the drift, and a stretch of it would not seem to follow
    level = bright.drift if bright.drift is not None else _level_outside(bright, run, reference)
    for a, e in contiguous_runs(run):
        seen = ok[a:e]
        if seen.sum() < max(3, (e - a + 1) // 2):
            continue
        d_run = float(np.median(dev[a:e]))
        d_bright = float(np.median(bright.mean[a:e][seen])) - level
        if not _follows(d_run, d_bright, 2):
            out[a:e] = True
    return out


def _unfollowed(run, dev, upper: _Series | None, reference) -> np.ndarray:
    """Bins of the stretches of `run` (found on the bright series, deviation `dev`) that the
    channel's upper-half mean does not follow: in the same direction, by at least a third as
    much, less `FOLLOW_SDS` SDs of its median (median deviations over the stretch; the upper
    half's from its level outside the stretches, `_level_outside`, as `_not_gain` reads the
    bright series: its own level may lie in the stretch, where it drifts from there). A
    change of gain moves both (the upper half by less where it holds negative cells too:
    half as much for a marker on a third of the cells); a change in the share of the
    brightest of several bright populations moves the bright level alone (corpus files: a
    tenth to a fifth as much)."""
    out = np.zeros(run.shape[0], dtype=bool)
    if upper is None:
        return run.copy()
    ok = upper.ok
    level = _level_outside(upper, run, reference)
    for a, e in contiguous_runs(run):
        seen = ok[a:e]
        if seen.sum() < max(3, (e - a + 1) // 2):
            out[a:e] = True
            continue
        d = float(np.median(dev[a:e]))
        d_upper = float(np.median(upper.mean[a:e][seen])) - level
        sd = _median_sd(upper.noise, upper.m, np.flatnonzero(seen) + a)
        if np.sign(d) * d_upper < abs(d) / 3 - FOLLOW_SDS * sd:
            out[a:e] = True
    return out


def _end_line(th: Thresholds, ser):
    """``(series, bins, its _Series)`` of the steadiest series of a channel (`ser`, as
    prepared for the run's thirds) that does not drift over the run's thirds, drifts
    over an end sixth (`_end_series`) and whose broken line is off the drift's level at
    its end (`_line_drift`) over at least `cytokit.qc.shape.MIN_STRETCH` judged bins; None
    where none does. A shorter stretch at the run's end is too short for
    `cytokit.qc.shape` to tell a change of gain from a change in the mix of cells (a
    lymphocyte share rising at the end of a run moved a marker's mean there)."""
    ends = [
        _end_series(s, th)
        if s is not None and s.drift is None and not np.isfinite(s.creep)
        else None
        for s in ser
    ]
    for q in sorted(
        (q for q, e in enumerate(ends) if e and e.drift is not None),
        key=lambda q: ends[q].bin_noise,
    ):
        got = _line_drift(ends[q], ends[q].drift, th, q == BRIGHT)
        if got is not None and ends[q].ok[got[0] : got[1] + 1].sum() >= MIN_STRETCH:
            return q, got, ends[q]
    return None


def _stretch(b: int, got: tuple[int, int]) -> np.ndarray:
    """Bool mask over `b` bins of the bins ``got[0]`` to ``got[1]`` (inclusive)."""
    out = np.zeros(b, dtype=bool)
    out[got[0] : got[1] + 1] = True
    return out


def check_stability(
    count, mean, sd, th: Thresholds, reference=None, windows=WINDOWS, inputs=None, stretches=None
) -> StabilityCheck:
    """Flag bins whose signal departs from the file's stable level.

    Parameters
    ----------
    count : ndarray of int, shape (B, k, P)
        Values behind each series' bin mean (for a weighted mean its effective
        number, ``(Σw)² / Σw²``).
    mean, sd : ndarray of float, shape (B, k, P)
        Mean and SD (of one value) per bin, channel and series: `SERIES`
        (``asinh(x / cofactor)`` scale; `cytokit.kernels.bin_moments` and
        `bright_moments`).
    th : Thresholds
    reference : ndarray of bool, shape (B,), optional
        Bins known to be good: the stable level is their median (when they are
        at least a quarter of the judged bins). Default: the densest half of
        the bins the windows read (`inputs`; of all bins when those are fewer
        than a quarter), `shorth_level`.
    windows : sequence of int
        Window lengths (bins) of the slow-drift test.
    inputs : ndarray of bool, shape (B,), optional
        Bins whose means the windows read (default: all judged bins); bins
        known to hold short anomalies are left out so that they do not pull
        their neighbours' windows.
    stretches : ndarray of bool, shape (k,), optional
        Channels whose bright series judges a stretch off its level where it
        does not lead the channel's drift (default: every channel); acquisition QC passes
        the fluorescence channels: on scatter the brightest cells' level moves
        with the share of granulocytes or monocytes, and the upper half with it.

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
    creep = np.full(k, np.nan)
    for j in range(k):
        ser = [
            _prepare(mean[:, j, p], sd[:, j, p], count[:, j, p], th, inputs) for p in range(parts)
        ]
        # a channel that drifts is judged on its steadiest drifting series: each series'
        # run starts where its own noise lets it cross the shift, and the union of the
        # noisy ones starts early
        drifting = [
            p
            for p, s in enumerate(ser)
            if s is not None and (s.drift is not None or np.isfinite(s.creep))
        ]
        lead = min(drifting, key=lambda p: ser[p].bin_noise) if drifting else None
        held = [p for p in drifting if ser[p].drift is not None]
        if (
            lead is not None
            and ser[lead].drift is None
            and ser[lead].creep_z <= th.signal_z
            and held
        ):
            # a creep too faint to name does not lead a series that left a held level: the
            # mean of a marker few cells carry, diluted by those that do not, reads a slow
            # creep from the run's start where the bright cells held their level, then
            # drifted (a creep of `signal_z` SDs or more still leads: no level was held)
            lead = min(held, key=lambda p: ser[p].bin_noise)
        if lead is not None and ser[lead].creep_z > th.signal_z:
            creep[j] = ser[lead].creep
        singles = np.zeros(b, dtype=bool)
        runs = np.zeros(b, dtype=bool)
        # where the caller allows it (fluorescence: on scatter the mix of cells moves the
        # series, see `stretches`), a drift over the run's last (or first) sixth or so that
        # no window found is judged by its broken line, and the bright series judges a
        # stretch off its level (not a drift it leads) in a channel whose drift it does
        # not lead, in a file long enough
        ends_judged = stretches is None or bool(stretches[j])
        bright_judges = lead != BRIGHT and b >= BRIGHT_BINS and ends_judged
        found = np.zeros(b, dtype=bool)  # bins flagged through windows
        for p, s in enumerate(ser):
            if s is None or (p == BRIGHT and p != lead and not bright_judges):
                continue  # a bright series that neither leads a drift nor judges stretches
            f, one, run, deviation[:, j, p], zp, level[j, p], beside = _channel(
                s,
                th,
                reference,
                windows[:1] if p == BRIGHT and bright_judges else windows,
                use_windows=lead is None or p == lead or (p == BRIGHT and bright_judges),
                use_bins=p != BRIGHT,  # a bin of few bright cells dips, a window does not
            )
            if p == lead and s.drift is not None and not (f & ~one).any():
                # a drift to the run's end that no window found: the centred window
                # there is cut by the end and holds the flat part as much as the ramp,
                # while the broken line through the series reads every bin of the ramp
                # (a step held to the end: from the step on)
                got = (
                    (s.step, b - 1) if s.step >= 0 else _line_drift(s, level[j, p], th, p == BRIGHT)
                )
                # a clearer line may be another drifting series' (the lead is the one with
                # the least noise per bin, not the one whose line ends clearest)
                others = [q for q in drifting if q != p and ser[q].drift is not None]
                for q in sorted(others, key=lambda q: ser[q].bin_noise):
                    if got is not None:
                        break
                    got = _line_drift(ser[q], ser[q].drift, th, q == BRIGHT)
                if got is None and ends_judged:
                    # or a series whose drift reaches the end sixth only (`_end_drift`)
                    end = _end_line(th, ser)
                    got = end[1] if end is not None else None
                if got is not None:
                    off = _stretch(b, got)
                    f |= off & s.ok
                    run |= off & s.ok
            elif p == lead and s.drift is not None and (f & ~one).any():
                # a centred window's median leans where the window holds more of one side
                # than of the other: beside the bend (to the flat part's noise), beside a
                # gap the windows skip (to the ramp's far side) and where the run's end
                # cuts it (to the flat side); there the broken line through the series
                # says where the gain is off by the shift, and the drift's run is that
                # stretch
                # (a step held to the end: from the step on, the windows lean before it)
                w = [x for x in windows if x <= b][-1:] or [0]
                got = (
                    (s.step, b - 1)
                    if s.step >= 0
                    else _drift_start(s, level[j, p], th, p == BRIGHT, w[0] // 2)
                )
                if got is not None:
                    off = _stretch(b, got)
                    f &= off | one
                    run &= off
                    if run.any():  # the windows found part of it: the line gives the rest
                        f |= off & s.ok
                        run |= off & s.ok
            if p == BRIGHT and bright_judges and f.any():
                # the bright series of a channel that does not drift judges a stretch off
                # the level and back (a gain changed for a while) through its windows; its
                # level also moves where the mix of bright populations does, so a stretch
                # stands only where the upper half's mean follows it (`_unfollowed`)
                kept = ~_unfollowed(f, deviation[:, j, p], ser[1], reference)
                if lead is not None:
                    # in a drifting channel the lead judges its drift: a bright stretch
                    # that overlaps the drift's run is the drift itself
                    for a, e in contiguous_runs(f):
                        if runs[a:e].any():
                            kept[a:e] = False
                f &= kept
                run &= kept
            if p != BRIGHT and (f & ~one).any():
                # a stretch flagged through windows (found by them, or grown into from a
                # departing bin) that the brightest cells' level does not follow is a change
                # in how many cells are bright, not in the detector's gain (`_not_gain`);
                # judged on the bins the windows read: a clog's own bins (dimmed in every
                # channel, bright cells too) must not vouch for the stretch beside them
                stretch = f & ~one & s.wok
                kept = ~_not_gain(stretch, deviation[:, j, p], ser[BRIGHT], reference)
                f &= kept
                run &= kept
            # then the bins beside a step that the windows alone carried into its run
            # (judged with the run, whole, above)
            f &= ~beside
            run &= ~beside
            chan[:, j] |= f
            found |= f & ~one
            singles |= one
            runs |= run
            z[:, j] = np.where(np.abs(zp) > np.abs(z[:, j]), zp, z[:, j])
        bright = ser[BRIGHT]
        if lead is None and bright is not None and np.isfinite(level[j, BRIGHT]) and found.any():
            # the windows of the other series carry a stretch a few bins past a gain changed
            # for a while; the bright series says where the step is (`_trim_step_edges` on
            # its deviations), but for a stretch's edge at the run's start or end, which has
            # no level beside it, unless the bins it leaves at the level there fill a window
            dev = deviation[:, j, BRIGHT]
            past = np.zeros(b, dtype=bool)
            for sign in (1.0, -1.0):
                past |= found & ~_trim_step_edges(found, dev, bright.m, bright.noise, th, sign)
            for a, e in contiguous_runs(found):
                inner = np.flatnonzero(~past[a:e]) + a  # the stretch's bins kept
                if a == 0 and inner.size and inner[0] < WINDOWS[0]:
                    past[: inner[0]] = False
                if e == b and inner.size and b - 1 - inner[-1] < WINDOWS[0]:
                    past[inner[-1] :] = False
            chan[:, j] &= ~past
            runs &= ~past
        if lead is None and ends_judged and not found.any():
            end = _end_line(th, ser)
            if end is not None:
                q, got, e = end
                off = _stretch(b, got) & e.ok
                dev = np.where(e.ok, e.y - e.drift, 0.0)
                if q == BRIGHT or not _not_gain(off & e.wok, dev, ser[BRIGHT], reference).any():
                    deviation[:, j, q], level[j, q] = dev, e.drift
                    chan[:, j] |= off
                    runs |= off
        # bins a channel departs in alone, not within a run its windows found (a drift)
        spikes |= singles & ~runs
    return StabilityCheck(level, deviation, z, chan.any(axis=1), chan, spikes, creep)


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
    first, _, last = _thirds(ok)
    return float(np.median(mean[last]) - np.median(mean[first]))


def trend_z(mean, sd, count, use, th: Thresholds) -> float:
    """`trend` of a series in noise SDs of the two thirds' medians (NaN when not measurable).

    The noise is the series' own (`_noise`: the median SD of one value, widened by the
    bins' overdispersion, which holds the chance wander of the mix of cells from bin to
    bin), and a third's median of bin means has ``1.2533 noise / sqrt(values)`` as SD
    (`_median_sd`, as in `drift_reference`). A file of 10,000 events has thirds of
    ~3,300; the share of a population in them wanders by chance, and a change of 2
    ``signal_shift`` can be 3 such SDs and nothing else.
    """
    use = np.asarray(use, dtype=bool)
    got = _noise(np.asarray(mean, float), np.asarray(sd, float), np.asarray(count))
    d = trend(mean, count, use)
    if got is None or not np.isfinite(d):
        return float("nan")
    ok, m, noise = got
    first, _, last = _thirds(np.flatnonzero(use & ok))
    return float(abs(d) / np.hypot(_median_sd(noise, m, first), _median_sd(noise, m, last)))
