"""Is a sample's donor marker usable? The check made before any donor cell is counted.

A donor-marker detector that failed (switched off, saturated, a stain left
out, the wrong channel named in the panel) still gives numbers, and the
threshold logic of `cytokit.analysis.chimerism` would read them as 0 % or 100 % donor.
So the donor-marker distribution of every sample's threshold parent is checked
first. A sample that fails gets status ``marker_failed`` with the reason in
``chimerism.csv``: no donor count, percentage, interval or cells/µL, no
phenotype by origin, and it is missing (never 0) in trends, AUC and half-life.

The rule (`check_donor_marker`, per patient)
--------------------------------------------
1. **Pile-up** (each sample on its own): at least `PILEUP_SHARE` (50 %) of
   the parent's events read one and the same stored value. The detector is
   then constant (a dead channel reading 0, a fixed value, the top of its
   range), saturated or clipped: the majority of the cells have no
   distribution, so there is no recipient peak to read. Measured on real
   files (``tests/test_markercheck.py``): of the 107 fluorescence channels
   of the 16 FCS files of the external corpus (many instruments), the 66
   named for a stain reach at most 2.4 % at one value; the 3 that reach
   50 % are a linear-scale copy of a log channel (most events at 0) and two
   channels without a stain name (most events at their minimum).
2. **Mode position** (against the patient's other samples). Candidates for
   the patient's *recipient position* are the mode of each pre-infusion
   sample (all recipient) and the recipient mode of each sample showing a
   recipient and a donor mode with at least `REFERENCE_SHARE` (2 %) of its
   events on either side of their midpoint. The position is the median of
   the largest group of candidates within `WIDTHS` (3) peak widths of one
   another (on a tie, the group around a pre-infusion sample), so one odd
   sample cannot move it; the *separation* is the median distance from
   recipient to donor mode of that group's two-mode samples. When every
   judged sample has a bead population, positions are taken relative to each
   day's bead intensity on the marker (instrument drift). A sample must then
   show this patient's marker: its main mode (the tallest peak of its
   smoothed histogram) lies within `TOLERANCE` (a third) of the separation of
   the recipient position or of the donor position (recipient + separation:
   near-complete chimerism). Without a separation the main mode is checked
   on the recipient's side only: it fails when it lies more than `WIDTHS`
   peak widths from the recipient position away from the donor side; one on
   the donor side is read as near-complete chimerism, which no sample can
   contradict.
3. **Beads** (with a bead gate, in at least three of the patient's samples):
   counting beads are the same particles every day, so their median on the
   marker moves only with the detector's gain. A sample whose beads read more
   than `BEAD_WIDTHS` (6) peak widths (the median width of the samples' main
   peaks; a 5-10 fold gain change) from the patient's median bead position
   has a dead, saturated or re-wired detector. (This is checked before rule
   2, which re-anchors drift on the beads: a broken bead position must not.)
4. The pile-up rule needs `MIN_PILEUP_EVENTS` (20) parent events, the mode
   rule `MIN_EVENTS` (200): with fewer, modes are not reliable and the sample
   is neither judged nor a reference. A patient without reference samples
   gets the pile-up check only.

Legitimate samples pass: a pre-infusion sample (0 % donor) is a reference; a
population with 0 % or ~100 % donor does not change the parent's modes much
(the check reads the parent); near-complete chimerism of the parent is the
donor position; day-to-day drift is taken out by the beads or stays well
inside a third of the separation (35 % gain drift moves a logicle position by
0.03, a third of a 10-30-fold separation is 0.07-0.11). The false-positive and
detection rates measured on simulated studies are in ``benchmarks/README.md``
(``benchmarks/bench_marker_check.py``).
"""

from __future__ import annotations

import math

import numpy as np

from cytokit.analysis.chimerism import Histogram, sample_modes

__all__ = [
    "BEAD_WIDTHS",
    "MIN_EVENTS",
    "MIN_PILEUP_EVENTS",
    "PILEUP_SHARE",
    "REFERENCE_SHARE",
    "TOLERANCE",
    "WIDTHS",
    "check_donor_marker",
    "detector_failed",
    "piled_up",
    "value_pileup",
]

#: A detector with at least this share of the parent's events at one value is unusable.
PILEUP_SHARE = 0.5
#: Parent events a sample needs for its modes to be judged.
MIN_EVENTS = 200
#: Parent events a sample needs for the pile-up rule (half of them at one value).
MIN_PILEUP_EVENTS = 20
#: A mode may lie this share of the patient's separation from where it is expected.
TOLERANCE = 1.0 / 3.0
#: Without a separation: recipient peak widths a single mode may lie off the recipient side.
WIDTHS = 3.0
#: Beads (the same particles every day) may read this many peak widths from the
#: patient's median bead intensity on the marker (about a 5-10 fold change of the gain).
BEAD_WIDTHS = 6.0
#: A sample with two modes is a reference when each side of their midpoint holds this share.
REFERENCE_SHARE = 0.02


def value_pileup(values: np.ndarray) -> dict:
    """How many of `values` (one channel's stored values of the parent events) share one value.

    Only a value held by at least half the events matters (`PILEUP_SHARE`),
    and such a value is the median, so one partial sort finds it.

    Returns
    -------
    dict
        ``n`` (values), ``share`` (of the most common value if it is the
        median), ``value`` and ``at``: ``"constant"`` (every value),
        ``"maximum"``, ``"minimum"`` or ``""``.
    """
    v = np.asarray(values).ravel()
    n = int(v.size)
    if n == 0:
        return {"n": 0, "share": 0.0, "value": float("nan"), "at": ""}
    mid = np.partition(v, n // 2)[n // 2]
    share = float(np.count_nonzero(v == mid)) / n
    lo, hi = v.min(), v.max()
    at = "constant" if lo == hi else "maximum" if mid == hi else "minimum" if mid == lo else ""
    return {"n": n, "share": share, "value": float(mid), "at": at}


#: How the beads rule's reason starts (`detector_failed` tells it from the mode rule's).
BEADS_MOVED = "its counting beads read"


def detector_failed(reason: str, pileup: dict | None) -> bool:
    """Whether a sample's marker failed for its detector (its values piled at one, or its
    beads moved: dead, saturated, gain changed), not for where its cells read (a stain
    left out, another channel): a failed detector is compensated out of the other
    channels by what it read, not by what the cells gave."""
    if not reason:
        return False
    return piled_up(pileup) or reason.startswith(BEADS_MOVED)


def piled_up(pileup: dict | None) -> bool:
    """Whether a sample's donor-marker values piled at one (`value_pileup`: at least
    `PILEUP_SHARE` of at least `MIN_PILEUP_EVENTS` events): a dead, stuck or saturated
    detector, whose false values compensation carries into other channels."""
    return bool(pileup) and pileup["n"] >= MIN_PILEUP_EVENTS and pileup["share"] >= PILEUP_SHARE


def _pileup_reason(p: dict) -> str:
    value = f"{p['value']:.6g}"
    if p["at"] == "constant":
        return f"the donor-marker channel is constant: all {p['n']} parent events read {value}"
    what = {
        "maximum": f"its maximum {value} (saturated)",
        "minimum": f"its minimum {value} (clipped)",
    }.get(p["at"], f"one value, {value}")
    return (
        f"{100 * p['share']:.3g} % of the {p['n']} parent events read {what}: the detector "
        "shows no distribution"
    )


def _check_beads(reasons: list[str], judged: list[int], anchors: list, widths: list) -> None:
    """Flag samples whose beads read far from the patient's other samples' (`BEAD_WIDTHS`)."""
    have = [i for i in judged if anchors[i] is not None and math.isfinite(anchors[i])]
    if len(have) < 3 or not widths:
        return
    home = float(np.median([anchors[i] for i in have]))
    limit = BEAD_WIDTHS * float(np.median(widths))
    for i in have:
        if abs(anchors[i] - home) > limit:
            reasons[i] = (
                f"{BEADS_MOVED} {anchors[i]:.3g} on the donor marker, the patient's "
                f"other samples {home:.3g} (± {limit:.2g}): the detector's response changed "
                "(dead, saturated or another channel)"
            )


def check_donor_marker(
    hists: list[Histogram],
    days: list[int],
    donor_side: int,
    anchors: list[float | None] | None = None,
    pileups: list[dict | None] | None = None,
) -> list[str]:
    """Which of one patient's samples have an unusable donor marker, and why.

    Parameters
    ----------
    hists : list of Histogram
        Donor-marker histogram of each sample's threshold parent (transformed
        values, as `cytokit.analysis.chimerism.patient_thresholds` gets them).
    days : list of int
    donor_side : {+1, -1}
    anchors : list of float or None, optional
        Each sample's bead median on the marker (transformed).
    pileups : list of dict or None, optional
        `value_pileup` of each sample's stored marker values on the parent.

    Returns
    -------
    list of str
        Per sample, '' when usable, else the reason (see the module docstring).
    """
    n = len(hists)
    side = 1 if donor_side > 0 else -1
    anchors = list(anchors) if anchors is not None else [None] * n
    pileups = list(pileups) if pileups is not None else [None] * n
    reasons = [""] * n
    for i, p in enumerate(pileups):
        if piled_up(p):
            reasons[i] = _pileup_reason(p)
    judged = [i for i in range(n) if not reasons[i] and hists[i].total >= MIN_EVENTS]
    modes = {i: sample_modes(hists[i], side) for i in judged}
    judged = [i for i in judged if math.isfinite(modes[i][0])]
    _check_beads(reasons, judged, anchors, [modes[i][3] for i in judged])
    judged = [i for i in judged if not reasons[i]]
    beads = bool(judged) and all(anchors[i] is not None for i in judged)
    shift = {i: float(anchors[i]) if beads else 0.0 for i in judged}
    home, sep, width = _reference(judged, modes, shift, days, side)
    if home is None:
        return reasons
    tol = TOLERANCE * sep if sep is not None else WIDTHS * width
    for i in judged:
        main = modes[i][0]
        off = side * (main - shift[i] - home)  # > 0: towards the donor side
        if sep is not None:
            ok = abs(off) <= tol or abs(off - sep) <= tol
        else:
            ok = abs(off) <= tol or off > tol
        if ok:
            continue
        where = home + shift[i]
        expected = f"recipient at {where:.3g}"
        if sep is not None:
            expected += f", donor at {where + side * sep:.3g}"
        reasons[i] = (
            f"its main mode at {main:.3g} is not where this patient's donor marker reads "
            f"({expected}, ± {tol:.2g}): a failed detector or stain, or the wrong channel"
        )
    return reasons


def _reference(judged, modes, shift, days, side):
    """The patient's recipient position, separation (None when unknown) and peak width.

    Candidates for the recipient position are the main mode of each
    pre-infusion sample and the recipient mode of each two-mode sample. The
    position is the median of the largest group of candidates that lie within
    `WIDTHS` peak widths of one of them (ties: the group around a pre-infusion
    sample), so one odd sample (a bump beside a recipient peak read as a pair
    of modes, a broken pre-infusion sample) cannot move it; the separation is
    the median of that group's two-mode samples.
    """
    cands = []  # (position, separation or None, pre-infusion)
    for i in judged:
        main, second, share, _ = modes[i]
        if math.isfinite(second) and share >= REFERENCE_SHARE:
            rec, don = sorted((main, second), key=lambda x: side * x)
            cands.append((rec - shift[i], side * (don - rec), days[i] < 0))
        elif days[i] < 0:  # all recipient
            cands.append((main - shift[i], None, True))
    if not cands:
        return None, None, None
    width = float(np.median([modes[i][3] for i in judged]))
    reach = WIDTHS * width
    pos = np.array([c[0] for c in cands])
    support = [(int((np.abs(pos - p) <= reach).sum()), pre) for p, _, pre in cands]
    best = max(range(len(cands)), key=lambda k: support[k])
    group = [c for c in cands if abs(c[0] - cands[best][0]) <= reach]
    home = float(np.median([c[0] for c in group]))
    seps = [c[1] for c in group if c[1] is not None]
    return home, (float(np.median(seps)) if seps else None), width
