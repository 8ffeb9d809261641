"""Donor chimerism: which events are donor cells, and how sure we are of the fraction.

Donor and recipient differ in one marker (``[chimerism] marker``, e.g. HLA-A2,
per patient ``donor_marker`` in the manifest): donor cells are on one side
(``donor_is`` = ``positive`` or ``negative``). Everything here works on the
marker's compensated and transformed values (as gates see them) of one
sample, summarised as fine histograms (`Histogram`) so donor counts are exact
at the chosen threshold, which always lies on a bin edge.

Placing the threshold (`place_threshold`)
-----------------------------------------
The threshold is placed per sample on a stable parent population (by default
the deepest gate that contains every study population, e.g. live singlet
lymphocytes), never reused raw across days: instrument drift multiplies
intensities, which on a log-like scale shifts them.

1. The parent's histogram is smoothed with a Gaussian kernel (Silverman's
   bandwidth from the robust spread: 0.9 · min(sd, IQR/1.349) · n^-1/5) and
   its modes found. Two modes are distinct when the lower of the two peaks is
   at least `DIP` times the density at the valley between them and the
   smaller one holds at least `MIN_MODE_EVENTS` events.
2. **Two modes** (recipient and donor both present): the threshold is the
   valley, the density minimum between them (method ``valley``).
3. **One mode**: it is the recipient's unless a pre-infusion calibration puts
   the recipient elsewhere (see below). The threshold is the mode plus ``k``
   robust widths towards the donor side (method ``recipient_width``); the
   width is measured on the far side of the peak, which donor cells cannot
   reach: the distance from the mode to the point below which 31.7 % of that
   half's events lie (one sd for a Gaussian). If the single mode is the
   donor's (nearly complete chimerism), the threshold is placed the same way
   from the donor peak (method ``donor_width``).
4. **Calibration** (`calibrate`): the patient's pre-infusion sample (day < 0)
   is all recipient, so the tail of its recipient peak shows how far
   recipient events reach: ``k`` is the distance from the mode to the
   (1 - `FALSE_POSITIVE_RATE`) quantile on the donor side, in widths, floored
   at `DEFAULT_K` - 1 and capped at 2 · `DEFAULT_K`. Without a pre-infusion
   sample ``k`` is `DEFAULT_K`. Widths are in units of each day's own peak, and
   the pre-infusion recipient position is re-anchored on the day's drift (the
   shift of the bead population on the marker, when beads are gated) before
   it is used to tell whether a single mode is the recipient's.

Counting and status (`chimerism_row`)
-------------------------------------
Donor events are the population's events on the donor side of the threshold
(a value equal to the threshold is donor when donors are positive, as gates
are half-open ``[min, max)``). ``donor_pct`` = 100 · donor / events with a 95 %
binomial interval (Wilson by default, Clopper-Pearson on request). The
interval is for the population's true donor fraction under binomial sampling
of its events; it does not include threshold or gating error.

Status counts **donor events** (the cells whose persistence is measured), with
``[qc] min_events`` = m: fewer than `DETECTION_EVENTS` (20) donor events is
``not_detected``, fewer than m ``not_quantifiable``, otherwise ``quantified``.
A population with fewer than m events cannot reach m donor events, so it is
never ``quantified``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cytokit.density import Histogram, histogram_edges, peaks, smooth, valley
from cytokit.intervals import binomial_interval

__all__ = [
    "DEFAULT_K",
    "DETECTION_EVENTS",
    "Calibration",
    "Histogram",
    "Threshold",
    "calibrate",
    "chimerism_row",
    "chimerism_status",
    "histogram_edges",
    "place_threshold",
]

#: Fewer donor events than this: not detected.
DETECTION_EVENTS = 20
#: Widths between a lone recipient mode and the threshold without calibration.
DEFAULT_K = 4.0
#: Recipient events a calibrated threshold lets through (pre-infusion sample).
FALSE_POSITIVE_RATE = 1e-3
#: Two peaks are separate modes when the lower is this many times the valley.
DIP = 1.5
#: A mode needs at least this many events in its basin.
MIN_MODE_EVENTS = 10
#: Share of one half of a Gaussian within one sd of the mode.
_HALF_SD_SHARE = 0.6827


@dataclass(frozen=True)
class Calibration:
    """What a patient's pre-infusion (all recipient) sample says about the recipient peak.

    Attributes
    ----------
    day : int
        The pre-infusion sample's day.
    mode : float
        Recipient mode (transformed units).
    width : float
        Robust width of the recipient peak (far side).
    k : float
        Widths from the mode to the point only `FALSE_POSITIVE_RATE` of
        recipient events pass.
    anchor : float or None
        That sample's drift anchor (bead median on the marker), if any.
    """

    day: int
    mode: float
    width: float
    k: float
    anchor: float | None = None


@dataclass(frozen=True)
class Threshold:
    """A placed donor-marker threshold and how it was placed.

    Attributes
    ----------
    value : float
        Threshold (transformed units), on a bin edge of the histogram.
    method : str
        ``valley``, ``recipient_width``, ``donor_width`` or ``none`` (no events).
    donor_side : int
        +1: donor cells are at or above `value`; -1: below.
    recipient_mode, donor_mode : float
        NaN when not found.
    recipient_width : float
    k : float
        Widths used (NaN for a valley).
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
        if self.method == "none" or not np.isfinite(self.value):
            return 0
        above = hist.above(self.value)
        return above if self.donor_side > 0 else hist.total - above

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
    a recipient peak are not a recipient mode beside a donor one.
    """
    f, bw = smooth(hist)
    found = peaks(f)
    if found.size == 0:
        return [], f, bw
    main = int(found[np.argmax(f[found])])
    centres = hist.centres
    n = float(hist.total)
    best, best_mass = None, 0.0
    counts = hist.counts
    for p in found.tolist():
        if abs(p - main) < 3 * bw:
            continue
        v = valley(f, main, p)
        if f[p] < DIP * f[v]:
            continue
        mass = float(counts[v + 1 :].sum() if p > main else counts[:v].sum())
        donor_side = side * (centres[p] - centres[main]) > 0
        if donor_side:
            enough = mass >= max(MIN_MODE_EVENTS, 0.002 * n)
        else:
            enough = mass >= max(MIN_MODE_EVENTS, 0.02 * n)
            if expected is not None and abs(centres[p] - expected) > tolerance:
                enough = False
        if enough and mass > best_mass:
            best, best_mass = p, mass
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
        None when the sample has too few events to measure a tail
        (fewer than 10 / `FALSE_POSITIVE_RATE`... relaxed to 200 events, with
        the quantile level lowered to keep 2 events beyond it).
    """
    n = hist.total
    if n < 200:
        return None
    modes, _, _ = _modes(hist, donor_side)
    if not modes:
        return None
    mode = modes[0]
    width = _far_width(hist, mode, donor_side)
    level = max(FALSE_POSITIVE_RATE, 2.0 / n)
    cum = np.cumsum(hist.counts if donor_side > 0 else hist.counts[::-1]).astype(np.float64)
    centres = hist.centres if donor_side > 0 else hist.centres[::-1]
    reach = float(np.interp((1.0 - level) * n, cum, centres))
    k = abs(reach - hist.centres[mode]) / width
    k = float(np.clip(k, DEFAULT_K, 2.0 * DEFAULT_K))
    return Calibration(day, float(hist.centres[mode]), width, k, anchor)


def place_threshold(
    hist: Histogram,
    donor_side: int,
    calibration: Calibration | None = None,
    anchor: float | None = None,
) -> Threshold:
    """Place the donor-marker threshold of one sample (see the module docstring).

    Parameters
    ----------
    hist : Histogram
        Donor-marker histogram of the threshold parent.
    donor_side : {+1, -1}
        +1: donor cells are marker-positive.
    calibration : Calibration, optional
        From the patient's pre-infusion sample.
    anchor : float, optional
        This sample's drift anchor (same quantity as ``calibration.anchor``).

    Returns
    -------
    Threshold
    """
    side = 1 if donor_side > 0 else -1
    cal_day = None if calibration is None else calibration.day
    if hist.total == 0:
        return Threshold(float("nan"), "none", side, note="no events in the parent")
    k = DEFAULT_K if calibration is None else calibration.k
    expected, tolerance, note = None, 0.0, ""
    if calibration is not None:
        expected = calibration.mode
        if anchor is not None and calibration.anchor is not None:
            expected += anchor - calibration.anchor
            note = f"recipient expected at {expected:.4g} (re-anchored on beads)"
        tolerance = k * calibration.width
    modes, _, _ = _modes(hist, side, expected, tolerance)
    centres = hist.centres
    if len(modes) == 2:
        a, b = sorted(modes, key=lambda i: side * centres[i])  # recipient first
        f, _ = smooth(hist)
        v = valley(f, a, b)
        return Threshold(
            _snap(hist, float(centres[v])),
            "valley",
            side,
            recipient_mode=float(centres[a]),
            donor_mode=float(centres[b]),
            recipient_width=_far_width(hist, a, side),
            calibration_day=cal_day,
        )
    mode = modes[0]
    is_donor = expected is not None and side * (centres[mode] - expected) > tolerance
    if is_donor:
        width = _far_width(hist, mode, -side)
        return Threshold(
            _snap(hist, centres[mode] - side * k * width),
            "donor_width",
            side,
            donor_mode=float(centres[mode]),
            recipient_width=float("nan"),
            k=k,
            calibration_day=cal_day,
            note=note or "single mode on the donor side of the pre-infusion recipient",
        )
    width = _far_width(hist, mode, side)
    return Threshold(
        _snap(hist, centres[mode] + side * k * width),
        "recipient_width",
        side,
        recipient_mode=float(centres[mode]),
        recipient_width=width,
        k=k,
        calibration_day=cal_day,
        note=note,
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
