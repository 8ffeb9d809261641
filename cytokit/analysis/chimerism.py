"""Donor chimerism: which events are donor cells, and how sure we are of the fraction.

Donor and recipient differ in one marker (``[chimerism] marker``, e.g. HLA-A2,
per patient ``donor_marker`` in the manifest): donor cells are on one side
(``donor_is`` = ``positive`` or ``negative``). Everything here works on the
marker's compensated and transformed values (as gates see them) of one
sample, summarised as fine histograms (`Histogram`) so donor counts are exact
at the chosen threshold, which always lies on a bin edge.

Placing the thresholds of a patient (`patient_thresholds`)
----------------------------------------------------------
The threshold is placed per sample on a stable parent population (by default
the deepest gate that contains every study population, e.g. live singlet
lymphocytes), never reused raw across days: instrument drift multiplies
intensities, which on a log-like scale shifts them. What carries over between
a patient's days are *offsets from the recipient mode*, re-anchored on each
day's own recipient peak.

1. Each sample's parent histogram is smoothed (`cytokit.stats.density.smooth`) and
   its modes found. A second mode beside the main one must be separated from
   it by a valley at most 1/`DIP` of the lower peak and hold enough events:
   0.2 % of the parent (at least `MIN_MODE_EVENTS`) on the donor side of the
   main mode, 2 % on its recipient side (the main mode is then the donor's,
   near-complete chimerism); small bumps in the far tail of a recipient peak
   are not a recipient mode.
2. **Two modes** (recipient and donor both present): the threshold is the
   valley between them, the density minimum (method ``valley``). Each such
   sample also gives the patient's *valley offset* (valley minus recipient
   mode) and *separation* (donor minus recipient mode).
3. **One mode** (donor cells too few to form a mode, or none): the threshold is
   the day's mode plus an offset towards the donor side, the first available
   of: the median valley offset of the patient's two-mode samples (method
   ``patient_offset``); the reach of the recipient peak in the pre-infusion
   sample, the distance from its mode to the quantile that only
   `FALSE_POSITIVE_RATE` of recipient events pass (``calibrated``); or
   `DEFAULT_K` robust widths of the day's peak, measured on its far side,
   which donor cells cannot reach (``recipient_width``).
4. Which one is a lone mode? The recipient's, unless the patient's
   pre-infusion recipient position, re-anchored on the day's drift (the shift
   of the bead population's median on the marker, when beads are gated), puts
   it more than half the patient's separation (else the calibrated reach)
   away on the donor side: then it is the donor's (near-complete chimerism)
   and the threshold is placed from it (``donor_offset`` or ``donor_width``).
5. **Calibration** (`calibrate`): the patient's latest pre-infusion sample
   (day < 0) is all recipient; it gives the recipient mode, its drift anchor
   and the reach above. A sample with fewer than 200 parent events gives none.

Each population's cut (`population_threshold`)
----------------------------------------------
The sample threshold is right for the parent's mix of cells, not always for
a population's: lineages carry the marker at their own levels (NK cells sit
lower on HLA class I than B cells, CIK cells higher than T cells) and a
population's donor share can be far from the parent's (early after an NK
infusion the NK gate is mostly donor while the parent is mostly recipient).
The parent's valley then lies in the tail of the population's donor or
recipient peak and misclassifies it one way. So a population whose own
histogram shows both modes, one on either side of the sample threshold, each
side holding at least `POPULATION_MINORITY` of its events, is cut at the
valley of its own smoothed histogram (method ``population_valley``); any
other population (one mode, or a minority too small to place a valley from)
keeps the sample threshold. On simulated studies this removed the systematic
loss of donors in donor-rich populations (``benchmarks/README.md``).

Counting and status (`chimerism_row`)
-------------------------------------
Donor events are the population's events on the donor side of its cut (a
value equal to the cut is donor when donors are positive, as gates are
half-open ``[min, max)``). ``donor_pct`` = 100 · donor / events with a 95 %
binomial interval (Wilson by default, Clopper-Pearson on request). The
interval is for the population's true donor fraction under binomial sampling
of its events; it does not include threshold or gating error.

Status counts **donor events** (the cells whose persistence is measured), with
``[qc] min_events`` = m: fewer than `DETECTION_EVENTS` (20) donor events is
``not_detected``, fewer than m ``not_quantifiable``, otherwise ``quantified``.
A population with fewer than m events cannot reach m donor events, so it is
never ``quantified``. A sample whose donor marker is unusable
(`cytokit.analysis.marker_check`) gets ``marker_failed`` for every population instead,
with the reason in ``note`` and no donor count, percentage or interval
(`failed_row`): a failed measurement is never a 0 or a percentage.

Time ranges that acquisition QC removed (`stratified_row`)
----------------------------------------------------------
When QC removes a time range (a clog, a bubble, a drifting signal), the kept
events are a fair sample of the tube only if the populations are spread
evenly over the run; where donor cells arrive in bursts (settling,
carry-over) and the range falls among them, the kept events' donor share
misses the range's excess. The range's own events cannot say all it held
(off-centre events leave the gates, occluded ones stay in them with a wrong
origin), so its population and donor cells are imputed from its time
neighbours, and from the cells of its own that can be trusted (below): the
population's share of all events and its donor share in the kept events just before and just after the range (`FLANK_EVENTS` kept
events each, fewer at the file's ends), averaged over the two sides (a
linear interpolation across the gap, integrated over the range's events,
which arrive evenly on the sample's own timeline), times the range's event
count. A clog holds cells back and then releases them, so its events are
the tube's cells, and the range's event count (not the count at the normal
rate) is its size. ``imputed_donor_pct`` = 100 · (donor_events +
imputed_donor_events) / (events + imputed_events), beside ``donor_pct``
(the kept events' own share, the headline); its interval is a Wilson
interval on the effective number of events of that estimate. The flanks
are kept events, so the estimate is a weighted count of the kept events
(each flank event counts once more per range it stands for), and its
variance is that of the weighted count (delta method); the effective number
is never more than the kept events themselves, so the interval widens with
the imputed part and is never narrower than a binomial interval on the kept
events at the same %. Where the two sides of a range disagree beyond 2 SDs of their noise, the composition changes across
it, and the interval also holds half their difference over the range. It removes most of the
bias where donor cells are enriched around the range, and adds the flanks'
sampling noise where they are not (``benchmarks/README.md``); so the ranges
are imputed only where the flanks say the composition changed: where the
imputed % stands more than `SHIFT_Z` (2) standard errors from the kept
events' own, the SE being what the flanks' sampling gives when the mix is
the same all along (a two-sided test at ~5 %). Otherwise ``imputed_donor_pct``
is ``donor_pct`` with its interval and 0 imputed, and ``note`` says so. The
test is per population: a population and its parts may differ in whether
they were imputed. A flank of fewer than `MIN_FLANK_EVENTS` kept events is
not read, and each flank's variance is at least what as many events drawn
from the kept mix would give (a flank of events all alike has no spread of
its own to read). A range QC removed for its event rate (a clog, a bubble) also has its own
gated cells: the events of the range gated by the strategy as fitted on
the kept events (most of a clog's events are measured off-centre and leave
the gates; those left were measured well). Where at least `MIN_OWN_PARENT`
of them fall in the threshold parent and they read the donor marker as
the flanks do (`own_cells_agree`: not more than a fifth of them beyond
what the flanks' shapes put in the valley around the cut, nor as many as
their share moved to the cut's dim side, nor dimmed through the valley),
and at least `MIN_OWN_ALONE` of them are of the population, the range's
population is its events
times the parent's share of all events in its flanks times the
population's share of the parent in its own cells, and its donor cells
the same with the donor share of its own cells. Where that donor share
differs from the flanks' beyond chance (Fisher's exact test at the level of
`SHIFT_Z` SEs; the range held another mix than its neighbours, as where it
covers a window of donor cells whole), its own cells alone stand for it;
else the two estimates are averaged by their cells. The own cells are events of their own, not kept
ones, so they count once, with the weight of the range's events each
stands for. It is reported beside the headline, not instead of it. Without removed ranges the
imputed events are 0 and the imputed donor % is ``donor_pct``; a range with
no kept neighbour on either side is not imputed (the imputed values are
empty and ``note`` says why), nor is a population with no kept cell (its
``donor_pct`` is empty too), nor a range with fewer than `MIN_FLANK_CELLS`
cells of the population beside it and none of its own read (it is taken to
hold the kept mix).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cytokit.stats.density import DIP, Histogram, dip_valley, histogram_edges, peaks, smooth, valley
from cytokit.stats.intervals import binomial_interval

__all__ = [
    "DEFAULT_K",
    "DETECTION_EVENTS",
    "FALSE_POSITIVE_RATE",
    "FLANK_EVENTS",
    "MARKER_FAILED",
    "MIN_FLANK_CELLS",
    "MIN_FLANK_EVENTS",
    "MIN_OWN_ALONE",
    "MIN_OWN_PARENT",
    "OWN_DIMMED",
    "OWN_VALLEY_EXCESS",
    "OWN_VALLEY_P",
    "POPULATION_MINORITY",
    "SHIFT_Z",
    "Calibration",
    "Histogram",
    "Threshold",
    "calibrate",
    "chimerism_row",
    "chimerism_status",
    "failed_row",
    "histogram_edges",
    "own_cells_agree",
    "patient_thresholds",
    "place_threshold",
    "population_threshold",
    "sample_modes",
    "stratified_row",
    "valley_crowding",
]

#: Fewer donor events than this: not detected.
DETECTION_EVENTS = 20
#: Status of every population of a sample whose donor marker is unusable.
MARKER_FAILED = "marker_failed"
#: Widths between a lone recipient mode and the threshold without calibration.
DEFAULT_K = 4.0
#: Recipient events a calibrated threshold lets through (pre-infusion sample).
FALSE_POSITIVE_RATE = 1e-3
#: A mode needs at least this many events in its basin.
MIN_MODE_EVENTS = 10
#: A population gets its own cut only when each side of the sample threshold
#: holds at least this share of its events.
POPULATION_MINORITY = 0.05
#: Kept events on each side of a removed time range whose composition is imputed to it.
FLANK_EVENTS = 2000
#: Fewest kept events a flank needs to stand for a removed range (fewer, at a file's
#: end or between close ranges: that side is not read).
MIN_FLANK_EVENTS = 100
#: Fewest threshold-parent cells of a rate-flagged range's own gated events that are
#: read for what the range held (fewer: its flanks stand for it).
MIN_OWN_PARENT = 50
#: Fewest own cells of the population that are read for their range (`_own_weight`);
#: fewer are not: a dozen cells cannot show whether the clog dimmed them across the cut,
#: and a few badly measured cells of a larger population gated into a small one (spread
#: T cells among CIK cells) are most of them.
MIN_OWN_ALONE = 20
#: Fewest cells of the population in a removed range's flanks (together) that say what
#: the range held where its own cells are not read; fewer: it is not imputed (a handful
#: of cells moves the share by tens of percent, which the 2-SE test, a normal
#: approximation, takes for a change of mix).
MIN_FLANK_CELLS = 20
#: A range's own cells crowd the valley around the cut more than its flanks' shapes say
#: where so many would come by chance less often than this (`own_cells_agree`) ...
OWN_VALLEY_P = 0.01
#: ... and they are set aside where that excess is more than this share of them, or
#: where they read more cells on the cut's dim side than the flanks and sit lower than
#: the flanks' cells by more than this share of the gap between the flanks' two sides.
OWN_VALLEY_EXCESS = 0.2
OWN_DIMMED = 0.25
#: The removed ranges are imputed only where the imputed donor % stands this many
#: standard errors from the kept events' own (the composition changed around them).
SHIFT_Z = 2.0
#: Share of one half of a Gaussian within one sd of the mode.
_HALF_SD_SHARE = 0.6827
#: What a note says where the ranges held the kept events' mix (nothing imputed).
_KEPT_MIX = "what they held matches the kept events' mix"


@dataclass(frozen=True)
class Calibration:
    """What a patient's pre-infusion (all recipient) sample says about the recipient peak.

    Attributes
    ----------
    day : int
        The pre-infusion sample's day.
    mode : float
        Recipient mode (transformed units).
    reach : float
        Distance from the mode, towards the donor side, that only
        `FALSE_POSITIVE_RATE` of recipient events pass.
    anchor : float or None
        That sample's drift anchor (bead median on the marker), if any.
    """

    day: int
    mode: float
    reach: float
    anchor: float | None = None


@dataclass(frozen=True)
class Threshold:
    """A placed donor-marker threshold and how it was placed.

    Attributes
    ----------
    value : float
        Threshold (transformed units), on a bin edge of the histogram.
    method : str
        ``valley``, ``patient_offset``, ``calibrated``, ``recipient_width``,
        ``donor_offset``, ``donor_width``, ``population_valley`` (a
        population's own cut) or ``none`` (no events).
    donor_side : int
        +1: donor cells are at or above `value`; -1: below.
    recipient_mode, donor_mode : float
        NaN when not found.
    recipient_width : float
        Robust width of the recipient peak (far side).
    k : float
        Offset from the lone mode in its widths (NaN for a valley).
    calibration_day : int or None
    note : str
    """

    value: float
    method: str
    donor_side: int
    recipient_mode: float = float("nan")
    donor_mode: float = float("nan")
    recipient_width: float = float("nan")
    k: float = float("nan")
    calibration_day: int | None = None
    note: str = ""

    def donor_events(self, hist: Histogram) -> int:
        """Events of `hist` on the donor side."""
        return int(hist.counts[self.donor_bins(hist)].sum())

    def donor_bins(self, hist: Histogram) -> np.ndarray:
        """Bins of `hist` on the donor side (the threshold snapped to the nearest edge, as
        `Histogram.above` does); none without a threshold."""
        side = np.zeros(hist.counts.size, dtype=bool)
        if self.method == "none" or not np.isfinite(self.value):
            return side
        side[hist.edge_index(self.value) :] = True
        return side if self.donor_side > 0 else ~side

    def as_dict(self) -> dict:
        return asdict(self)


def _modes(
    hist: Histogram, side: int, expected: float | None = None, tolerance: float = 0.0
) -> tuple[list[int], np.ndarray, float]:
    """The main mode and, when distinct, a second one: bin indices, smoothed counts, bandwidth.

    A second mode on the donor side of the main one (the main mode is the
    recipient's) needs `MIN_MODE_EVENTS` events and 0.2 % of all; one on the
    recipient side (the main mode would be the donor's) needs 2 % of all, and
    must lie within `tolerance` of `expected` (the recipient position a
    calibration predicts) when that is given: small bumps in the far tail of
    a recipient peak are not a recipient mode beside a donor one. Of the
    candidates, the one with most events beyond its valley wins; between
    equals (the same valley), the taller.
    """
    f, bw = smooth(hist)
    found = peaks(f)
    if found.size == 0:
        return [], f, bw
    main = int(found[np.argmax(f[found])])
    centres = hist.centres
    n = float(hist.total)
    best, best_key = None, (0.0, 0.0)
    counts = hist.counts
    for p in found.tolist():
        v = dip_valley(f, main, p, bw, DIP)
        if v is None:
            continue
        mass = float(counts[v + 1 :].sum() if p > main else counts[:v].sum())
        donor_side = side * (centres[p] - centres[main]) > 0
        if donor_side:
            enough = mass >= max(MIN_MODE_EVENTS, 0.002 * n)
        else:
            enough = mass >= max(MIN_MODE_EVENTS, 0.02 * n)
            if expected is not None and abs(centres[p] - expected) > tolerance:
                enough = False
        # candidates sharing a valley with the main mode have the same mass: the taller is the
        # mode, not a noise bump in the sparse tail beyond it
        if enough and (mass, f[p]) > best_key:
            best, best_key = p, (mass, float(f[p]))
    return ([main] if best is None else [main, best]), f, bw


def _far_width(hist: Histogram, mode: int, towards: int) -> float:
    """Robust width of the peak at bin `mode` from its half facing away from `towards` (±1)."""
    c = hist.counts.astype(np.float64)
    centres = hist.centres
    if towards > 0:  # donors above: use the half below the mode, read downwards
        half = c[: mode + 1][::-1]
        pos = centres[: mode + 1][::-1]
    else:
        half = c[mode:]
        pos = centres[mode:]
    cum = np.cumsum(half)
    if cum[-1] <= 0:
        return float(centres[1] - centres[0])
    reach = float(np.interp(_HALF_SD_SHARE * cum[-1], cum, pos))
    step = float(centres[1] - centres[0])
    return max(abs(reach - centres[mode]), step)


def _snap(hist: Histogram, x: float) -> float:
    return float(hist.edges[int(np.argmin(np.abs(hist.edges - x)))])


def calibrate(
    hist: Histogram, donor_side: int, day: int, anchor: float | None = None
) -> Calibration | None:
    """Measure the recipient peak of a pre-infusion sample (all events recipient).

    Parameters
    ----------
    hist : Histogram
        Donor-marker histogram of the threshold parent in the pre-infusion sample.
    donor_side : {+1, -1}
    day : int
    anchor : float, optional
        The sample's drift anchor (bead median on the marker).

    Returns
    -------
    Calibration or None
        None with fewer than 200 events (the quantile level is raised to keep
        at least 2 events beyond it).
    """
    n = hist.total
    if n < 200:
        return None
    modes, _, _ = _modes(hist, donor_side)
    if not modes:
        return None
    mode = hist.centres[modes[0]]
    level = max(FALSE_POSITIVE_RATE, 2.0 / n)
    counts = hist.counts if donor_side > 0 else hist.counts[::-1]
    centres = hist.centres if donor_side > 0 else hist.centres[::-1]
    reach = float(np.interp((1.0 - level) * n, np.cumsum(counts).astype(np.float64), centres))
    return Calibration(day, float(mode), abs(reach - mode), anchor)


@dataclass(frozen=True)
class _Found:
    """Modes of one sample: bin indices (None when absent) and the valley."""

    recipient: int | None
    donor: int | None
    valley: int | None


def _find(hist: Histogram, side: int, expected: float | None, tolerance: float) -> _Found:
    modes, f, _ = _modes(hist, side, expected, tolerance)
    if not modes:
        return _Found(None, None, None)
    centres = hist.centres
    if len(modes) == 2:
        a, b = sorted(modes, key=lambda i: side * centres[i])  # recipient first
        return _Found(a, b, valley(f, a, b))
    m = modes[0]
    if expected is not None and side * (centres[m] - expected) > tolerance:
        return _Found(None, m, None)
    return _Found(m, None, None)


def patient_thresholds(
    hists: list[Histogram],
    days: list[int],
    donor_side: int,
    anchors: list[float | None] | None = None,
) -> list[Threshold]:
    """Place the donor-marker threshold of each of one patient's samples.

    Parameters
    ----------
    hists : list of Histogram
        Donor-marker histogram of the threshold parent, one per sample.
    days : list of int
        Sampling days (days < 0 are pre-infusion, all recipient).
    donor_side : {+1, -1}
        +1: donor cells are marker-positive.
    anchors : list of float or None, optional
        Each sample's drift anchor (bead median on the marker).

    Returns
    -------
    list of Threshold
        In the order of `hists` (see the module docstring).
    """
    side = 1 if donor_side > 0 else -1
    anchors = list(anchors) if anchors is not None else [None] * len(hists)
    calibration = None
    pre = [i for i, d in enumerate(days) if d < 0 and hists[i].total]
    if pre:
        last = max(pre, key=lambda i: days[i])
        calibration = calibrate(hists[last], side, days[last], anchors[last])
    cal_day = None if calibration is None else calibration.day

    def expected_at(i: int) -> float | None:
        if calibration is None:
            return None
        shift = 0.0
        if anchors[i] is not None and calibration.anchor is not None:
            shift = anchors[i] - calibration.anchor
        return calibration.mode + shift

    # first look: the patient's valley offsets and separations from two-mode samples
    tol0 = None if calibration is None else max(calibration.reach, 1e-12)
    first = [
        _find(h, side, expected_at(i), tol0 or 0.0) if h.total else _Found(None, None, None)
        for i, h in enumerate(hists)
    ]
    offsets, seps = [], []
    for h, f in zip(hists, first, strict=True):
        if f.recipient is not None and f.donor is not None:
            c = h.centres
            offsets.append(side * (c[f.valley] - c[f.recipient]))
            seps.append(side * (c[f.donor] - c[f.recipient]))
    offset = float(np.median(offsets)) if offsets else None
    separation = float(np.median(seps)) if seps else None
    tolerance = separation / 2.0 if separation is not None else tol0

    out = []
    for i, h in enumerate(hists):
        if h.total == 0:
            out.append(Threshold(float("nan"), "none", side, note="no events in the parent"))
            continue
        exp = expected_at(i)
        f = _find(h, side, exp, tolerance or 0.0) if tolerance is not None else first[i]
        note = "" if exp is None else f"recipient expected at {exp:.4g}"
        out.append(_place(h, side, f, offset, separation, calibration, cal_day, note))
    return out


def _place(h, side, f, offset, separation, calibration, cal_day, note) -> Threshold:
    c = h.centres
    if f.recipient is not None and f.donor is not None:
        return Threshold(
            _snap(h, float(c[f.valley])),
            "valley",
            side,
            recipient_mode=float(c[f.recipient]),
            donor_mode=float(c[f.donor]),
            recipient_width=_far_width(h, f.recipient, side),
            calibration_day=cal_day,
            note=note,
        )
    if f.donor is not None:  # a lone donor mode: near-complete chimerism
        width = _far_width(h, f.donor, -side)
        if offset is not None and separation is not None:
            dist, method = separation - offset, "donor_offset"
        else:
            dist, method = DEFAULT_K * width, "donor_width"
        return Threshold(
            _snap(h, float(c[f.donor]) - side * dist),
            method,
            side,
            donor_mode=float(c[f.donor]),
            k=dist / width,
            calibration_day=cal_day,
            note=note or "single mode on the donor side of the pre-infusion recipient",
        )
    mode = f.recipient
    width = _far_width(h, mode, side)
    if offset is not None:
        dist, method = offset, "patient_offset"
    elif calibration is not None:
        dist, method = calibration.reach, "calibrated"
    else:
        dist, method = DEFAULT_K * width, "recipient_width"
    return Threshold(
        _snap(h, float(c[mode]) + side * dist),
        method,
        side,
        recipient_mode=float(c[mode]),
        recipient_width=width,
        k=dist / width,
        calibration_day=cal_day,
        note=note,
    )


def place_threshold(
    hist: Histogram, donor_side: int, calibration: Calibration | None = None
) -> Threshold:
    """Place the threshold of one sample on its own (see `patient_thresholds`).

    Without the patient's other samples a lone mode is the recipient's and the
    offset is the calibrated reach, else `DEFAULT_K` widths.
    """
    side = 1 if donor_side > 0 else -1
    if hist.total == 0:
        return Threshold(float("nan"), "none", side, note="no events in the parent")
    f = _find(hist, side, None, 0.0)
    cal_day = None if calibration is None else calibration.day
    return _place(hist, side, f, None, None, calibration, cal_day, "")


def sample_modes(hist: Histogram, donor_side: int) -> tuple[float, float, float, float]:
    """The modes of one sample on its own (no calibration), as `patient_thresholds` finds them.

    Returns
    -------
    main, second, share, width : float
        The tallest mode of the smoothed histogram; the second mode paired
        with it (NaN when none); the share of the events on the second mode's
        side of the midpoint between the two (NaN when none); the robust width
        of the main mode, measured on its half away from the donor side. All
        NaN without a mode.
    """
    side = 1 if donor_side > 0 else -1
    nan = float("nan")
    if hist.total == 0:
        return nan, nan, nan, nan
    modes, _, _ = _modes(hist, side)
    if not modes:
        return nan, nan, nan, nan
    c = hist.centres
    main = float(c[modes[0]])
    width = _far_width(hist, modes[0], side)
    if len(modes) == 1:
        return main, nan, nan, width
    second = float(c[modes[1]])
    beyond = hist.above(0.5 * (main + second))
    share = (beyond if second > main else hist.total - beyond) / hist.total
    return main, second, share, width


def population_threshold(threshold: Threshold, hist: Histogram) -> Threshold:
    """The cut of one population of a sample: its own valley, else the sample threshold.

    Parameters
    ----------
    threshold : Threshold
        The sample's threshold (placed on the threshold parent).
    hist : Histogram
        The population's donor-marker histogram (on the parent's bins).

    Returns
    -------
    Threshold
        ``threshold`` itself, or a ``population_valley`` threshold at the
        valley of the population's smoothed histogram when it has a recipient
        and a donor mode on either side of ``threshold`` and each side holds
        at least `POPULATION_MINORITY` of its events (see the module docstring).
    """
    t, side = threshold.value, threshold.donor_side
    if threshold.method == "none" or not np.isfinite(t) or hist.total == 0:
        return threshold
    modes, f, _ = _modes(hist, side)
    if len(modes) != 2:
        return threshold
    c = hist.centres
    a, b = sorted(modes, key=lambda i: side * c[i])  # recipient first
    if not side * (c[a] - t) < 0 < side * (c[b] - t):
        return threshold
    donors = threshold.donor_events(hist)
    if min(donors, hist.total - donors) < POPULATION_MINORITY * hist.total:
        return threshold
    return Threshold(
        _snap(hist, float(c[valley(f, a, b)])),
        "population_valley",
        side,
        recipient_mode=float(c[a]),
        donor_mode=float(c[b]),
        recipient_width=_far_width(hist, a, side),
        calibration_day=threshold.calibration_day,
        note=f"valley of the population's own histogram; sample threshold {t:.4g}",
    )


def chimerism_status(donor_events: int, min_events: int) -> str:
    """``not_detected`` / ``not_quantifiable`` / ``quantified`` from donor events."""
    if donor_events < DETECTION_EVENTS:
        return "not_detected"
    if donor_events < min_events:
        return "not_quantifiable"
    return "quantified"


def chimerism_row(
    events: int, donor_events: int, *, min_events: int, ci: str = "wilson", level: float = 0.95
) -> dict:
    """donor_pct, its interval (percent) and status of one population in one sample."""
    low, high = binomial_interval(donor_events, events, level, ci)
    pct = 100.0 * donor_events / events if events else float("nan")
    return {
        "events": int(events),
        "donor_events": int(donor_events),
        "recipient_events": int(events - donor_events),
        "donor_pct": pct,
        "ci_low": 100.0 * float(low),
        "ci_high": 100.0 * float(high),
        "status": chimerism_status(donor_events, min_events),
    }


def failed_row(events: int, reason: str) -> dict:
    """The chimerism of a population whose sample's donor marker is unusable: no donor value.

    ``events`` is kept (the gating is not in question); donor and recipient
    events, ``donor_pct`` and its interval are NaN, status `MARKER_FAILED`,
    ``note`` the reason.
    """
    nan = float("nan")
    return {
        "events": int(events),
        "donor_events": nan,
        "recipient_events": nan,
        "donor_pct": nan,
        "ci_low": nan,
        "ci_high": nan,
        "status": MARKER_FAILED,
        "note": reason,
    }


def own_cells_agree(own: Histogram, flanks: list[Histogram], cut: Threshold) -> bool:
    """Whether a removed range's own gated cells are counted on the right side of the cut.

    A clog's cells that stay in the gates may be measured dimmer than the
    rest (off-centre, or a partly occluded beam), and donor cells dimmed
    enough cross the cut: their donor share then reads low. Dimmed cells
    first fill the valley around the cut, so the own cells' share there is
    compared with what the flanks' two shapes give at the own cells' donor
    share (`valley_crowding`). The valley is the band from halfway between
    the flanks' recipient-side median and the cut to halfway between the cut
    and their donor-side median. The own cells are set aside where it holds
    more of them than chance gives (a binomial chance under `OWN_VALLEY_P`,
    the flanks' share raised by one SE of their own sampling) and the excess
    is more than `OWN_VALLEY_EXCESS` of the own cells, or at least their
    share's shift to the cut's dim side (the side dimmed cells cross to)
    from the flanks', which it may then account for whole (a population
    near 0 % of cells on that side), or where, with such a shift, the own
    cells on a side sit lower than the flanks' by more than `OWN_DIMMED` of
    the gap between the flanks' two sides (cells dimmed through the valley
    to where the other origin sits: the valley holds only those passing). A smaller excess moves their donor
    share by at most its size, less than the flanks miss where the range
    held another mix than its neighbours. Flanks with fewer than
    `MIN_MODE_EVENTS` cells on one side of the cut (a population near 0 or
    100 % donor cells) give that side the cut's mode there, or the other
    side's median mirrored across the cut. Without a threshold, flanks, own
    cells or cells on either side in the flanks, nothing is judged and they
    pass.
    """
    chance, excess = valley_crowding(own, flanks, cut)
    if not chance < OWN_VALLEY_P:
        return True
    # dimmed cells cross to the cut's dim side: where the own cells hold more of their
    # share there than the flanks by no more than the valley's excess, that excess
    # alone may account for the whole shift (a population near 0 % dim-side cells)
    dim = cut.donor_bins(own) if cut.donor_side < 0 else ~cut.donor_bins(own)
    pooled = np.sum([f.counts for f in flanks], axis=0)
    shift = own.counts[dim].sum() / own.total - pooled[dim].sum() / pooled.sum()
    seen, n, e = _valley(own, flanks, cut, within=dim)  # the valley's dim side: crossed
    if excess > OWN_VALLEY_EXCESS or 0 < shift <= (seen - n * e) / n:
        return False
    # cells dimmed far enough pass through the valley to the other origin's place: where
    # the own cells read more of their share on the dim side, the cells that stayed on a
    # side sit lower than the flanks' by more than OWN_DIMMED of the gap between the
    # flanks' two sides
    return not (shift > 0 and _dimming(own, pooled, cut) > OWN_DIMMED)


def _dimming(own: Histogram, pooled: np.ndarray, cut: Threshold) -> float:
    """How far below the flanks' cells (`pooled` counts) the own cells sit on each side of
    the cut, as a share of the gap between the flanks' two sides' medians: the larger of
    the two sides (0 where neither side has `MIN_MODE_EVENTS` cells in both)."""
    centres = own.centres
    donor = cut.donor_bins(own)
    sides = [(own.counts * m, pooled * m) for m in (donor, ~donor)]
    if any(f.sum() < MIN_MODE_EVENTS for _, f in sides):
        return 0.0
    gap = abs(_median(centres, sides[0][1]) - _median(centres, sides[1][1]))
    if gap <= 0:
        return 0.0
    drops = [
        _median(centres, f) - _median(centres, o) for o, f in sides if o.sum() >= MIN_MODE_EVENTS
    ]
    return max(drops, default=0.0) / gap


def _median(centres: np.ndarray, counts: np.ndarray) -> float:
    """The bin centre holding the median of `counts` (of a histogram with those centres)."""
    c = np.cumsum(counts)
    return centres[int(np.searchsorted(c, 0.5 * c[-1]))]


def valley_crowding(own: Histogram, flanks: list[Histogram], cut: Threshold) -> tuple:
    """(the chance of at least as many own cells in the valley around the cut as
    `own_cells_agree` counts, were they read as the flanks' cells are; their excess
    over the flanks' share, as a share of the own cells): (1.0, 0.0) where nothing
    is judged."""
    seen, n, e = _valley(own, flanks, cut)
    if n == 0:
        return 1.0, 0.0
    return _upper_tail(seen, n, e), (seen - n * e) / n


def _valley(
    own: Histogram, flanks: list[Histogram], cut: Threshold, within: np.ndarray | None = None
) -> tuple[int, int, float]:
    """(own cells in the valley, own cells, the share the flanks give there): n = 0
    where nothing is judged (see `own_cells_agree`); with `within`, a mask of bins, the
    part of the valley in those bins."""
    if cut.method == "none" or not np.isfinite(cut.value) or not flanks or own.total == 0:
        return 0, 0, 0.0
    centres = own.centres
    donor = cut.donor_bins(own)
    pooled = np.sum([f.counts for f in flanks], axis=0).astype(np.float64)
    d_cells, r_cells = pooled * donor, pooled * ~donor
    if pooled.sum() == 0:
        return 0, 0, 0.0
    at = own.edges[own.edge_index(cut.value)]
    # flanks with (almost) no cells on one side (a population near 0 or 100 % donor
    # cells) have no shape there: that side's median is the cut's mode on it, else the
    # other side's mirrored across the cut, and its share in the valley the other's
    cells = (r_cells, d_cells)  # recipient side, donor side
    shaped = [c.sum() >= MIN_MODE_EVENTS for c in cells]
    if not any(shaped):
        return 0, 0, 0.0
    medians = [_median(centres, c) if ok else np.nan for c, ok in zip(cells, shaped, strict=True)]
    for i, mode in enumerate((cut.recipient_mode, cut.donor_mode)):
        if not shaped[i]:
            medians[i] = mode if np.isfinite(mode) else 2.0 * at - medians[1 - i]
    ends = ((medians[0] + at) / 2, (at + medians[1]) / 2)
    band = (centres >= min(ends)) & (centres <= max(ends))
    if within is not None:
        band &= within
    shares = [
        c[band].sum() / c.sum() if ok else np.nan for c, ok in zip(cells, shaped, strict=True)
    ]
    shares = [
        x if ok else shares[1 - i] for i, (x, ok) in enumerate(zip(shares, shaped, strict=True))
    ]
    n = float(own.total)
    alpha = float(own.counts[donor].sum()) / n
    e = alpha * shares[1] + (1.0 - alpha) * shares[0]
    # the flanks' share is itself a sample: one SE of it is allowed for
    e += np.sqrt(e * (1.0 - e) / pooled.sum())
    e = min(max(e, 0.5 / pooled.sum()), 1.0 - 0.5 / pooled.sum())
    return int(own.counts[band].sum()), int(n), e


def _upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ binomial(n, p): summed exactly where n p is small (the
    normal approximation is poor in a skewed tail), else with it."""
    if k <= 0:
        return 1.0
    if n * p * (1.0 - p) >= 25.0:
        z = (k - 0.5 - n * p) / np.sqrt(n * p * (1.0 - p))
        return 0.5 * math.erfc(z / math.sqrt(2.0))
    logp, logq = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    return min(
        1.0,
        sum(
            math.exp(base - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * logp + (n - j) * logq)
            for j in range(k, n + 1)
        ),
    )


def _own_weight(flanks, own) -> float:
    """The share of a range's imputation that rests on its own cells, the rest on its
    flanks: all of it where the two donor shares differ beyond chance (the range held
    another mix than its neighbours), else each by its number of cells.

    Beyond chance is Fisher's exact test of the two shares, two-sided, at the level of
    `SHIFT_Z` normal SEs (4.6 %): exact, so that one or two own cells of a small
    population (1 donor cell of 2 beside 0 of 10) do not stand for the range alone, as
    a normal approximation would have them. Fewer than `MIN_OWN_ALONE` own cells are not
    read at all (0): too few to show whether the clog dimmed them across the cut
    (`own_cells_agree` judges the many), and where the population is small, badly
    measured cells of a larger one gated into it may be most of them."""
    n_o, d_o = int(own[2]), int(own[3])
    n_f, d_f = int(sum(n for _, n, _ in flanks)), int(sum(d for _, _, d in flanks))
    if n_o < MIN_OWN_ALONE:
        return 0.0  # too few cells of the population of its own to read
    if n_f <= 0:
        return 1.0
    from scipy.stats import fisher_exact  # scipy comes with scikit-learn

    _, p = fisher_exact([[d_o, n_o - d_o], [d_f, n_f - d_f]])
    if p < math.erfc(SHIFT_Z / math.sqrt(2.0)):
        return 1.0
    return n_o / (n_o + n_f)


def stratified_row(
    events: int,
    donor_events: int,
    ranges: list[tuple],
    *,
    ci: str = "wilson",
    level: float = 0.95,
    shift_z: float = SHIFT_Z,
) -> dict:
    """The donor % of a population with QC's removed time ranges imputed.

    Where QC removed nothing the caller reports ``imputed_donor_pct`` =
    ``donor_pct`` and no imputed events; this is for the other files.

    Parameters
    ----------
    events, donor_events : int
        The population's kept (gated) events and donor events among them.
    ranges : list of (range_events, flanks) or (range_events, flanks, own)
        Per removed time range: its events in the file; per kept flank beside
        it, ``(flank events, population events, donor events)``; and, for a
        range removed for its event rate, its own gated cells ``(parent share,
        parent events, population events, donor events)`` (the threshold
        parent's share of all events in the flanks, then the range's own
        cells in the parent, the population and its donor side), or None. A
        range whose own cells hold at least `MIN_OWN_PARENT` parent events is
        imputed from them, the others from their flanks (module docstring).
    ci, level
        As `chimerism_row`.
    shift_z
        The ranges are imputed only where the imputed % stands more than this
        many standard errors from the kept events' own, the SE being the one
        the imputation's sampling gives where the composition is the same all
        along (`SHIFT_Z`; 0 always imputes). Otherwise the kept
        events' own share and interval are returned, with 0 imputed and a note.

    Returns
    -------
    dict
        ``imputed_events``, ``imputed_donor_events`` (the population's and its
        donor cells the ranges are estimated to hold), ``imputed_donor_pct``,
        ``imputed_ci_low``, ``imputed_ci_high`` (percent; see the module
        docstring), all NaN when no range could be imputed, and ``note``:
        what was imputed, and which ranges had no kept neighbour.
    """
    if not (np.isfinite(shift_z) and shift_z >= 0):
        raise ValueError(f"shift_z = {shift_z!r} must be a number >= 0 (standard errors)")
    n_k, d_k = float(events), float(donor_events)
    nan = float("nan")
    empty = dict.fromkeys(
        ("imputed_events", "imputed_donor_events", "imputed_donor_pct", "imputed_ci_low",
         "imputed_ci_high"),
        nan,
    )  # fmt: skip
    if n_k <= 0:
        # no kept cell, so no donor_pct: a % of a clog's few own cells alone is not the
        # sample's either
        return {
            **empty,
            "note": "imputed_donor_pct: no kept event of the population, so none imputed",
        }
    parts, lost, few = [], 0, 0
    for size, flanks, *rest in ranges:
        # a few kept events cannot say what thousands of removed ones held
        flanks = [(a, n, d) for a, n, d in flanks if a >= MIN_FLANK_EVENTS]
        own = rest[0] if rest else None
        if own is not None and not (own[1] >= MIN_OWN_PARENT and own[0] > 0):
            own = None  # too few of its own cells to read: its flanks stand for it
        if size <= 0:
            continue
        if not flanks:  # the parent's share of the range comes from its flanks too
            lost += 1
            continue
        # the share of the range's imputation that rests on its own cells (`_own_weight`)
        lam = 0.0 if own is None else _own_weight(flanks, own)
        if lam == 0 and sum(n for _, n, _ in flanks) < MIN_FLANK_CELLS:
            few += 1  # a handful of cells beside it cannot say what it held
            continue
        parts.append((float(size), flanks, own, lam))
    missing = "; ".join(
        x
        for x in (
            f"{lost} removed time range(s) without {MIN_FLANK_EVENTS} kept events beside "
            "them, not imputed"
            if lost
            else "",
            f"{few} removed time range(s) with fewer than {MIN_FLANK_CELLS} cells of the "
            "population beside them (nor as many of their own), not imputed"
            if few
            else "",
        )
        if x
    )

    def kept_only(note: str) -> dict:
        """Nothing imputed: the kept events' own share and interval, and why."""
        low, high = binomial_interval(donor_events, events, level, ci)
        return {
            "imputed_events": 0.0,
            "imputed_donor_events": 0.0,
            "imputed_donor_pct": 100.0 * d_k / n_k,
            "imputed_ci_low": 100.0 * float(low),
            "imputed_ci_high": 100.0 * float(high),
            "note": note,
        }

    if not parts and few and not lost:  # what they held is taken to be the kept mix
        return kept_only(f"imputed_donor_pct: {missing}")
    if not parts:
        return {**empty, "note": missing} if lost else empty
    # (weight, events or None, population events, donor events, kept): the estimate
    # is a weighted count; kept events count once in the kept total and flank events
    # once more per range they stand for (weight 1 + size / (sides x flank events)); a
    # range's own cells are not kept events: each of its parent events stands for
    # size x parent share / own parent events of the range's events
    groups = []
    n_rest, d_rest = n_k, d_k
    imp_n = imp_d = own_n = 0.0
    for size, fl, own, lam in parts:
        if lam > 0:
            share, a, n, d = own
            w = lam * size * share / a
            groups.append((w, float(a), float(n), float(d), False))
            imp_n, imp_d, own_n = imp_n + w * n, imp_d + w * d, own_n + w * n
        if lam == 1:
            continue
        imp_n += (1.0 - lam) * size * np.mean([n / a for a, n, _ in fl])
        imp_d += (1.0 - lam) * size * np.mean([d / a for a, _, d in fl])
        for a, n, d in fl:
            groups.append(
                (1.0 + (1.0 - lam) * size / (len(fl) * a), float(a), float(n), float(d), True)
            )
            n_rest, d_rest = n_rest - n, d_rest - d
    groups.append((1.0, None, max(n_rest, 0.0), min(max(d_rest, 0.0), max(n_rest, 0.0)), True))
    total = n_k + imp_n
    p = (d_k + imp_d) / total
    # is the imputed % further from the kept events' own than the imputation's
    # noise takes it where the composition is the same all along? The difference
    # is sum_g c_g (donor - p0 * population) over the groups, c_g = w_g / total,
    # less 1 / n_k for kept events
    p0 = d_k / n_k
    noise = sum((w / total - (1.0 / n_k if kept else 0.0)) ** 2 * n for w, _, n, _, kept in groups)
    # at 0 or 100 % kept donor cells p0 (1 - p0) is 0 and one donor cell among a
    # range's own would stand infinitely far: the spread is read at half a cell off
    # the edge instead (flank cells, kept ones, cannot differ there)
    q0 = min(max(p0, 0.5 / (n_k + 1.0)), 1.0 - 0.5 / (n_k + 1.0))
    noise *= q0 * (1.0 - q0)
    shift = abs(p - p0) / np.sqrt(noise) if noise > 0 else (np.inf if p != p0 else 0.0)
    if 0 < shift_z and shift <= shift_z:
        said = (
            f"imputed_donor_pct: {len(parts)} time range(s) removed by acquisition QC; "
            f"{_KEPT_MIX} (the imputed % would "
            f"stand {shift:.3g} SE from donor_pct, within {shift_z:g}): nothing imputed"
        )
        return kept_only("; ".join(x for x in (said, missing) if x))
    # a group's spread is read off its own events, which say nothing when they are few
    # or all alike (one event, 50 donor cells): it is at least what events drawn from
    # the kept mix would give (the population's share over the group's kind of events,
    # the kept cells' donor share), so a short flank at a file's end cannot make the
    # interval narrow
    flank_a = sum(a for _, fl, _, _ in parts for a, _, _ in fl)
    flank_share = sum(n for _, fl, _, _ in parts for _, n, _ in fl) / flank_a
    q = d_k / n_k

    def per_event(share):
        return share * (q * (1.0 - p) ** 2 + (1.0 - q) * p * p) - (share * (q - p)) ** 2

    var = 0.0
    for w, a, n, d, kept in groups:
        sq = d * (1.0 - p) ** 2 + (n - d) * p * p
        mean = (d - p * n) ** 2 / (a if a else max(n, 1.0))
        floor = a * max(per_event(flank_share if kept else n / a), 0.0) if a else 0.0
        var += w * w * max(sq - mean, floor)
    for size, fl, _, lam in parts:
        if lam < 1 and len(fl) == 2:
            # two sides that disagree beyond their noise (2 SDs) say the composition
            # changes across the range; what it held is then unknown to about half their
            # difference, which the interval holds as well
            side = []
            for a, n, d in fl:
                q, s = d / a, n / a
                v = max(q * (1.0 - p) ** 2 + (s - q) * p * p - (q - p * s) ** 2, 0.0)
                side.append((q - p * s, v / a))
            gap = side[0][0] - side[1][0]
            if gap * gap > 4.0 * (side[0][1] + side[1][1]):
                var += ((1.0 - lam) * size * gap) ** 2 / 4.0
    var /= total * total
    # never more events than were counted: the imputed ones are read off events already
    # counted once, kept ones or a range's own cells (at p = 0 or 1 the variance
    # vanishes, and the count of those events is what the interval rests on)
    counted = n_k + sum(float(own[2]) for _, _, own, lam in parts if lam > 0)
    n_eff = min(p * (1.0 - p) / var, counted) if var > 0 and 0.0 < p < 1.0 else counted
    low, high = binomial_interval(p * n_eff, n_eff, level, ci)
    whence = []
    if own_n > 0:
        whence.append(f"{own_n:.4g} from the ranges' own gated cells")
    if imp_n - own_n > 0 or not whence:
        whence.append(f"{imp_n - own_n:.4g} from the kept events beside them")
    said = (
        f"imputed_donor_pct: {len(parts)} time range(s) removed by acquisition QC, "
        f"{imp_n:.4g} cells imputed ({', '.join(whence)})"
        + f"; their mix differs from the rest's: {shift:.3g} SE"
    )
    if own_n > 0 and shift_z > 0:
        # a clog's cells that stay in a gate may be another population's, measured
        # off-centre: where the kept events beside the ranges show no change of mix, the
        # reader is told that the own cells alone moved the value
        beside = [(r[0], r[1]) for r in ranges]
        alone = stratified_row(events, donor_events, beside, ci=ci, level=level, shift_z=shift_z)
        if _KEPT_MIX in alone["note"]:
            said += (
                "; the kept events beside them hold the kept mix: the change rests on the "
                "ranges' own cells alone, which off-centre measurement can bias (read it "
                "beside donor_pct)"
            )
    note = {"note": "; ".join(x for x in (said, missing) if x)}
    return {
        "imputed_events": float(imp_n),
        "imputed_donor_events": float(imp_d),
        "imputed_donor_pct": 100.0 * p,
        "imputed_ci_low": 100.0 * float(low),
        "imputed_ci_high": 100.0 * float(high),
        **note,
    }
