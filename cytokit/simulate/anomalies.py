"""Acquisition anomalies injected into a simulated sample, with per-event truth.

A clean simulated sample has a steady flow: events arrive as a Poisson
process at the design's rate, and every detector keeps its gain. This module
disturbs such a sample the way real acquisitions go wrong, and records per
event what was injected:

* **Clog** (`Clog`): the sample line partly clogs, so fewer events arrive
  (``drop_rate`` × the normal rate for ``drop`` seconds), then the clog
  clears and the sample held back arrives in a burst lasting ``burst``
  seconds (its rate makes up exactly the events held back). While clogged
  and bursting the core stream runs off-centre: every intensity is scaled
  by ``signal`` with a per-event spread, and in the burst a fraction
  ``coincidence`` of events carry a second cell (areas add, as the
  simulator's doublets do). With the plan's ``corrupt_clogs`` (the
  default) a share ``offcentre`` of the clog's events is moreover measured
  off-centre: each such event's intensities are scaled by a factor drawn
  from ``offcentre_signal`` (0.3-0.7) with a per-channel lognormal spread
  ``offcentre_spread``, so dim events fall out of their gates and bright
  ones (the donor marker's) slide below a positivity threshold (truth bit
  `OFFCENTRE`). `partial_occlusion` gives the variant that dims the
  off-centre events' fluorescence only (× 0.3-0.6, scatter kept), in which
  cells stay in their gates and some are counted with the wrong origin.
* **Bubble** (`Bubble`): air in the flow cell: no events for ``gap``
  seconds, with ``flank`` seconds of slowed, disturbed flow on either side
  in which scatter scatters wildly and fluorescence is dimmed.
* **Drift** (`Drift`): from ``start`` the gain of some detectors (one
  laser's, say) moves linearly, reaching ``1 + change`` at ``end`` (the end
  of acquisition by default) and holding there.
* **Margin events** (`MarginEvents`): a fraction of events saturate some
  detectors (stored value ``$PnR − 1`` = 262,143) or sit at the floor (0) of
  some scatter channels.

Rates are changed without adding or losing events: each event's place on the
clean timeline (its share of the sample volume) is mapped to an acquisition
time through the flow speed, so the population mix stays what the simulator
drew and only the acquisition is disturbed.

Why clogs corrupt signals: a cytometer measures a cell's light as it
crosses the laser in the centre of a hydrodynamically focused core stream;
a partial clog disturbs that focusing and the flow speed, so cells pass off
the beam's centre or at another speed, and their pulses come out lower and
more variable. The cleaning tools read it that way: flowClean (Fletez-Brant
et al., Cytometry A 2016) gates out time slices whose fluorescence departs
from the rest, "often due to a bubble or transient clog"; flowAI (Monaco et
al., Bioinformatics 2016) removes flow-rate anomalies and unstable signal
regions together; PeacoQC (Emmaneel et al., Cytometry A 2022) flags the
bins where a channel's signal leaves its stable level over time. The
factors here (0.3-0.7, spread 0.3) are a strong partial clog, chosen to
test a QC, not measured values.

Truth (`AnomalyTruth`): a bitmask per event (`CLOG`, `BUBBLE`, `DRIFT`,
`MARGIN`, and `OFFCENTRE` for the clog's off-centre events), the drift gain each event got, and ``clipped``: events with a
value at a detector's limit after injection (saturated, or scatter at 0),
whether injected or not (the clean simulator saturates bright events too).
An event counts as `DRIFT` when its gain is off by at least
`DRIFT_TOLERANCE` (10 %): a smaller change is within an instrument's
ordinary variation and not what a QC should remove; ``gain`` allows any
other cut.

Typical use::

    from cytokit import simulate
    from cytokit.simulate import anomalies as A

    design = simulate.preset_design("sample", seed=7)
    sample, truth = simulate.simulate_sample(design, "P01", 7, 50_000)
    rng = np.random.default_rng(1)
    plan = A.random_plan(rng, A.duration(sample), kinds=("clog",))
    bad, atruth = A.inject(sample, plan, rng)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cytokit._numbers import is_finite_number
from cytokit.errors import StudyError
from cytokit.sample import Channel, Sample
from cytokit.simulate import instrument as ins

__all__ = [
    "BUBBLE",
    "CLOG",
    "DRIFT",
    "DRIFT_TOLERANCE",
    "KINDS",
    "LASERS",
    "MARGIN",
    "OFFCENTRE",
    "PARTIAL_OCCLUSION",
    "TAG_ANOMALIES",
    "TAG_RANDOM_PLAN",
    "AnomalyPlan",
    "AnomalyTruth",
    "Bubble",
    "Clog",
    "Drift",
    "MarginEvents",
    "anomaly_rows",
    "duration",
    "inject",
    "partial_occlusion",
    "random_anomalies",
    "random_plan",
]

#: Truth bits of `AnomalyTruth.kind` (`OFFCENTRE` events are `CLOG` events too).
CLOG, BUBBLE, DRIFT, MARGIN, OFFCENTRE = 1, 2, 4, 8, 16
#: Random-stream tag of injections (`cytokit.simulate.model.stream`; 1-4 are the model's).
TAG_ANOMALIES = 11
#: Anomaly kind name → truth bit.
KINDS = {"clog": CLOG, "bubble": BUBBLE, "drift": DRIFT, "margin": MARGIN}
_BITS = {**KINDS, "offcentre": OFFCENTRE}
#: Smallest relative gain change that makes an event a `DRIFT` event.
DRIFT_TOLERANCE = 0.10
#: Detectors ($PnN) on each laser of the simulated instrument (a drifting laser moves them all).
LASERS = {
    "blue": ("FSC-A", "FSC-H", "SSC-A", "FITC-A", "PE-A", "PerCP-Cy5-5-A", "PE-Cy7-A"),
    "red": ("APC-A", "APC-H7-A"),
    "violet": ("V500-C-A",),
}
_SCATTER = ins.SCATTER_NAMES
_MEASURED = (*ins.SCATTER_NAMES, *ins.FLUOR_NAMES)


def _require(what: str, rules) -> None:
    """StudyError naming each field of `what` whose value breaks its rule: `rules` is
    ``(name, value, ok, wanted)`` with ``ok`` a predicate of a number."""
    bad = [
        f"{name} = {value!r} must be {wanted}"
        for name, value, ok, wanted in rules
        if not (is_finite_number(value) and ok(value))
    ]
    if bad:
        raise StudyError(f"{what}: " + "; ".join(bad))


@dataclass(frozen=True)
class Clog:
    """A partial clog: slow flow, then a burst as it clears (times in seconds).

    Attributes
    ----------
    start : float
        Where it begins on the clean timeline.
    drop : float
        Acquisition seconds of slow flow.
    drop_rate : float
        Event rate meanwhile, as a fraction of the normal rate (0 < x < 1).
    burst : float
        Acquisition seconds of the burst that follows.
    signal : float
        Intensity factor during the clog and the burst.
    spread : float
        SD of the per-event lognormal intensity factor then.
    coincidence : float
        Fraction of burst events carrying a second cell.
    offcentre : float
        Fraction of the clog's events (drop and burst) measured off-centre
        when the plan's ``corrupt_clogs`` is on.
    offcentre_signal : (float, float)
        Range of the uniform per-event intensity factor of those events (on
        top of `signal`).
    offcentre_spread : float
        SD of their per-event, per-channel lognormal factor.
    offcentre_scatter : bool
        Whether the off-centre factor scales the scatter channels too (the
        default); False: fluorescence only (`partial_occlusion`).
    """

    start: float
    drop: float
    drop_rate: float
    burst: float
    signal: float = 0.8
    spread: float = 0.15
    coincidence: float = 0.3
    offcentre: float = 0.8
    offcentre_signal: tuple[float, float] = (0.3, 0.7)
    offcentre_spread: float = 0.3
    offcentre_scatter: bool = True

    def __post_init__(self) -> None:
        lo, hi = (*tuple(self.offcentre_signal), None, None)[:2]
        _require(
            f"Clog at {self.start!r} s",
            [
                ("start", self.start, lambda v: v >= 0, "0 or more seconds"),
                ("drop", self.drop, lambda v: v > 0, "a positive number of seconds"),
                ("drop_rate", self.drop_rate, lambda v: 0 < v < 1, "between 0 and 1 (× normal)"),
                ("burst", self.burst, lambda v: v > 0, "a positive number of seconds"),
                ("signal", self.signal, lambda v: v > 0, "a positive factor"),
                ("spread", self.spread, lambda v: v >= 0, "0 or more"),
                ("coincidence", self.coincidence, lambda v: 0 <= v <= 1, "from 0 to 1"),
                ("offcentre", self.offcentre, lambda v: 0 <= v <= 1, "from 0 to 1"),
                ("offcentre_signal low", lo, lambda v: v > 0, "a positive factor"),
                ("offcentre_signal high", hi, lambda v: lo is None or v >= lo, "at least low"),
                ("offcentre_spread", self.offcentre_spread, lambda v: v >= 0, "0 or more"),
            ],
        )

    @property
    def burst_rate(self) -> float:
        """Burst rate (× normal) that delivers the events held back during the drop."""
        return 1.0 + self.drop * (1.0 - self.drop_rate) / self.burst


#: `Clog` fields of a partial occlusion (`partial_occlusion`).
PARTIAL_OCCLUSION = {
    "offcentre_signal": (0.3, 0.6),
    "offcentre_spread": 0.1,
    "offcentre_scatter": False,
}


def partial_occlusion(clog: Clog) -> Clog:
    """The same clog with its off-centre events dimmed in fluorescence only.

    A variant of the default off-centre measurement (`Clog`), for the case
    where a clog biases the donor % rather than losing cells: the off-centre
    cells' fluorescence is × 0.3-0.6 (one factor per event, a per-channel
    spread of SD 0.1, so the markers keep their ratios) while their scatter is
    left as the clog's mild dimming made it (`PARTIAL_OCCLUSION`). Forward
    scatter is collected over a wide angle behind an obscuration bar and
    changes little when a cell passes off the beam's centre, while
    fluorescence is collected through the objective's pinhole, which an
    off-focus cell misses in part; so the cells stay in the scatter gates,
    lineage markers bright enough keep them in the NK and CIK gates, and the
    donor marker (HLA-A2) of some falls below its threshold: donor cells of an
    HLA-A2+ donor are counted as the recipient's (and recipient cells of an
    HLA-A2+ recipient as the donor's). The factors are chosen to test a QC,
    not measured values. Every other draw of the clog (and of the file) is
    unchanged.
    """
    return replace(clog, **PARTIAL_OCCLUSION)


@dataclass(frozen=True)
class Bubble:
    """Air in the flow cell: a gap without events, with disturbed flanks (seconds).

    Attributes
    ----------
    at : float
        Where the gap falls on the clean timeline.
    gap : float
        Acquisition seconds without events.
    flank : float
        Acquisition seconds of slow, disturbed flow before and after the gap.
    flank_rate : float
        Event rate in the flanks, × normal.
    scatter_sd : float
        SD of the per-event, per-channel lognormal scatter factor in the flanks.
    signal : float
        Fluorescence factor in the flanks.
    """

    at: float
    gap: float
    flank: float
    flank_rate: float = 0.4
    scatter_sd: float = 0.5
    signal: float = 0.6

    def __post_init__(self) -> None:
        _require(
            f"Bubble at {self.at!r} s",
            [
                ("at", self.at, lambda v: v >= 0, "0 or more seconds"),
                ("gap", self.gap, lambda v: v > 0, "a positive number of seconds"),
                ("flank", self.flank, lambda v: v >= 0, "0 or more seconds"),
                ("flank_rate", self.flank_rate, lambda v: 0 < v <= 1, "above 0, at most 1"),
                ("scatter_sd", self.scatter_sd, lambda v: v >= 0, "0 or more"),
                ("signal", self.signal, lambda v: v > 0, "a positive factor"),
            ],
        )


@dataclass(frozen=True)
class Drift:
    """A gain drift of some detectors over part of the acquisition (acquisition seconds).

    Attributes
    ----------
    start : float
        When the gain starts to move.
    change : float
        Relative gain change reached (e.g. -0.35: 35 % dimmer), > -1.
    detectors : tuple of str
        ``$PnN`` of the detectors it moves (e.g. `LASERS` ``["blue"]``).
    end : float or None
        When `change` is reached (then held); None: at the end of acquisition.
    """

    start: float
    change: float
    detectors: tuple[str, ...]
    end: float | None = None

    def __post_init__(self) -> None:
        rules = [
            ("start", self.start, lambda v: v >= 0, "0 or more seconds"),
            ("change", self.change, lambda v: v > -1, "above -1 (-0.35: 35 % dimmer)"),
        ]
        if self.end is not None:
            rules.append(("end", self.end, lambda v: v > self.start, "after start"))
        _require(f"Drift from {self.start!r} s", rules)
        if isinstance(self.detectors, str) or not self.detectors:
            raise StudyError(
                f"Drift from {self.start!r} s: detectors = {self.detectors!r} must name one or "
                f"more of {', '.join(_MEASURED)}"
            )
        _columns(self.detectors)


@dataclass(frozen=True)
class MarginEvents:
    """Events at a detector's limits.

    Attributes
    ----------
    fraction : float
        Fraction of the events (in the window) affected.
    top : tuple of str
        Detectors saturated (set to ``$PnR − 1``) in those events.
    floor : tuple of str
        Scatter channels set to 0 in those events.
    window : (float, float) or None
        Acquisition seconds the events fall in; None: the whole acquisition.
    """

    fraction: float
    top: tuple[str, ...] = ()
    floor: tuple[str, ...] = ()
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _require(
            "MarginEvents",
            [("fraction", self.fraction, lambda v: 0 < v <= 1, "above 0, at most 1")],
        )
        if isinstance(self.top, str) or isinstance(self.floor, str):
            raise StudyError("MarginEvents: top and floor are lists of channel names")
        if not self.top and not self.floor:
            raise StudyError(
                "MarginEvents: name the detectors saturated (top) or the scatter channels at 0 "
                "(floor); with neither no event is at a limit"
            )
        _columns(self.top)
        bad = [f for f in self.floor if f not in _SCATTER]
        if bad:
            raise StudyError(f"MarginEvents: floor {bad} must be scatter ({', '.join(_SCATTER)})")
        if self.window is not None:
            a, b = (*tuple(self.window), None, None)[:2]
            _require(
                "MarginEvents",
                [
                    ("window start", a, lambda v: v >= 0, "0 or more seconds"),
                    ("window end", b, lambda v: a is not None and v > a, "after its start"),
                ],
            )


@dataclass(frozen=True)
class AnomalyPlan:
    """The anomalies to inject into one sample.

    ``corrupt_clogs`` (default on): the clogs' off-centre events get their
    signals corrupted (`Clog.offcentre`); off, a clog changes the rate and
    dims mildly (`Clog.signal`) only. Either way the other random draws are
    the same, so switching it changes the clog's off-centre events only.
    """

    clogs: tuple[Clog, ...] = ()
    bubbles: tuple[Bubble, ...] = ()
    drifts: tuple[Drift, ...] = ()
    margins: tuple[MarginEvents, ...] = ()
    corrupt_clogs: bool = True

    @property
    def kinds(self) -> tuple[str, ...]:
        have = {"clog": self.clogs, "bubble": self.bubbles, "drift": self.drifts}
        have["margin"] = self.margins
        return tuple(k for k, v in have.items() if v)


@dataclass
class AnomalyTruth:
    """What was injected, per event (file order of the returned sample).

    Attributes
    ----------
    kind : ndarray of uint8, shape (n_events,)
        Bits `CLOG`, `BUBBLE`, `DRIFT` (gain off by >= `DRIFT_TOLERANCE`), `MARGIN`,
        `OFFCENTRE` (a clog's event measured off-centre, signals corrupted).
    gain : ndarray of float32, shape (n_events,)
        The drift gain applied (1 where none).
    clipped : ndarray of bool, shape (n_events,)
        A measured channel at a detector limit (saturated, or scatter at 0).
    windows : list of (str, float, float)
        (kind, start, end) in acquisition seconds of each clog, bubble (gap
        and flanks) and drift.
    plan : AnomalyPlan
    """

    kind: np.ndarray
    gain: np.ndarray
    clipped: np.ndarray
    windows: list = field(default_factory=list)
    plan: AnomalyPlan = field(default_factory=AnomalyPlan)

    def mask(self, kind: str) -> np.ndarray:
        """Events of one kind (``"clog"``, ``"bubble"``, ``"drift"``, ``"margin"``,
        ``"offcentre"``)."""
        if kind not in _BITS:
            raise StudyError(f"unknown anomaly kind {kind!r}; kinds are {', '.join(_BITS)}")
        return (self.kind & _BITS[kind]) != 0


def _timestep(sample: Sample) -> float:
    try:
        step = float(sample.keyword("$TIMESTEP", "nan"))
    except ValueError:
        step = math.nan
    if not (math.isfinite(step) and step > 0):
        raise StudyError(f"{sample.name}: no positive $TIMESTEP; inject needs a simulated sample")
    return step


def _check(sample: Sample) -> None:
    if sample.scaled or sample.channel_names != ins.CHANNEL_NAMES:
        raise StudyError(
            f"{sample.name}: anomalies are injected into samples as simulate_sample returns "
            f"them (stored values, channels {', '.join(ins.CHANNEL_NAMES)})"
        )


def duration(sample: Sample) -> float:
    """Acquisition seconds of a simulated sample (its last event's time)."""
    _check(sample)
    n = sample.n_events
    return float(sample.events[n - 1, -1]) * _timestep(sample) if n else 0.0


class _Flow:
    """Piecewise-linear map from the clean timeline u to acquisition time (same unit)."""

    def __init__(self) -> None:
        self.segments: list[tuple[float, float, float, float]] = []  # (u0, du, speed, jump)
        self.spans: list[tuple[float, float, str]] = []  # (u0, u1, what) per anomaly

    def add(self, u0: float, du: float, speed: float, jump: float = 0.0) -> None:
        self.segments.append((u0, du, speed, jump))

    def check(self, step: float) -> None:
        """Refuse anomalies that overlap on the clean timeline (`step`: seconds per unit)."""
        for a, b in itertools.pairwise(sorted(self.spans)):
            if a[1] > b[0] + 1e-9:
                raise StudyError(
                    f"{a[2]} ({a[0] * step:.4g}-{a[1] * step:.4g} s of the clean run) and "
                    f"{b[2]} ({b[0] * step:.4g}-{b[1] * step:.4g} s) overlap; space clogs and "
                    "bubbles apart"
                )
        self.segments = sorted(self.segments)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        t = u.astype(np.float64, copy=True)
        for u0, du, speed, jump in self.segments:
            inside = np.clip(u - u0, 0.0, du)
            t += inside * (1.0 / speed - 1.0)
            t += np.where(u >= u0, jump, 0.0)
        return t


def _columns(names: Sequence[str]) -> list[int]:
    bad = [n for n in names if n not in _MEASURED]
    if bad:
        raise StudyError(
            f"unknown detector(s) {', '.join(bad)}; the simulated ones are {', '.join(_MEASURED)}"
        )
    return [ins.CHANNEL_NAMES.index(n) for n in names]


def inject(sample: Sample, plan: AnomalyPlan, rng: np.random.Generator):
    """Inject `plan` into a clean simulated sample.

    Parameters
    ----------
    sample : Sample
        As `cytokit.simulate.simulate_sample` returns it (stored values, Time
        in ``$TIMESTEP`` units). Not modified.
    plan : AnomalyPlan
    rng : numpy.random.Generator
        All randomness (event order within a clock tick, per-event factors,
        which events saturate).

    Returns
    -------
    (Sample, AnomalyTruth)
        A new sample (same events in the same order, new times and values)
        and what was injected. Events keep their population labels, so the
        sample's `SampleTruth` still holds.
    """
    _check(sample)
    step = _timestep(sample)
    ev = np.array(sample.events, dtype=np.float32, copy=True)
    n = ev.shape[0]
    kind = np.zeros(n, dtype=np.uint8)
    gain = np.ones(n, dtype=np.float32)
    windows: list = []
    if n == 0:
        return replace(sample, events=ev), AnomalyTruth(kind, gain, np.zeros(0, bool), [], plan)
    scat = _columns(_SCATTER)
    fluor = _columns(ins.FLUOR_NAMES)
    measured = scat + fluor
    tick = 1.0 / step  # ticks per second
    # each event's place on the clean timeline, spread within its clock tick
    u = np.sort(ev[:, -1].astype(np.float64) + rng.random(n))
    run = float(u[-1]) * step  # the clean run's seconds
    flow = _Flow()
    for c in plan.clogs:
        u0 = c.start * tick
        flow.add(u0, c.drop * c.drop_rate * tick, c.drop_rate)
        flow.add(u0 + c.drop * c.drop_rate * tick, c.burst * c.burst_rate * tick, c.burst_rate)
        flow.spans.append((u0, u0 + (c.drop + c.burst) * tick, f"the clog at {c.start:g} s"))
    for b in plan.bubbles:
        fl = b.flank * b.flank_rate * tick
        flow.add(b.at * tick - fl, fl, b.flank_rate)
        flow.add(b.at * tick, fl, b.flank_rate, jump=b.gap * tick)
        flow.spans.append((b.at * tick - fl, b.at * tick + fl, f"the bubble at {b.at:g} s"))
    for u0, u1, what in flow.spans:
        if u0 < 0 or u1 * step > run:
            raise StudyError(
                f"{what} spans {u0 * step:.4g}-{u1 * step:.4g} s of the clean run, which lasts "
                f"{run:.4g} s: place it within the run"
            )
    flow.check(step)
    t = flow(u)
    # off-centre draws come from a child stream: the parent's draws (and so
    # everything else in the file) stay what they are with corruption off
    off_rng = rng.spawn(1)[0] if plan.corrupt_clogs and plan.clogs else None
    for c in plan.clogs:
        u0 = c.start * tick
        u1 = u0 + c.drop * c.drop_rate * tick
        u2 = u1 + c.burst * c.burst_rate * tick
        inside = (u >= u0) & (u < u2)
        kind[inside] |= CLOG
        windows.append(("clog", *_ticks(flow(np.array([u0, u2])), step)))
        _dim(ev, inside, measured, c.signal, c.spread, rng)
        burst = np.flatnonzero((u >= u1) & (u < u2))
        _coincide(ev, burst[rng.random(burst.size) < c.coincidence], rng)
        if off_rng is not None:
            lo, hi = c.offcentre_signal
            if not (0.0 <= c.offcentre <= 1.0 and 0.0 < lo <= hi):
                raise StudyError(
                    f"clog at {c.start:g} s: offcentre={c.offcentre!r} must be in [0, 1] and "
                    f"offcentre_signal={c.offcentre_signal!r} a range 0 < low <= high"
                )
            idx = np.flatnonzero(inside)
            idx = idx[off_rng.random(idx.size) < c.offcentre]
            f = off_rng.uniform(lo, hi, idx.size)[:, None] * np.exp(
                off_rng.normal(0.0, c.offcentre_spread, (idx.size, len(measured)))
            )
            if not c.offcentre_scatter:  # fluorescence only (see `Clog`)
                f[:, : len(scat)] = 1.0
            ev[np.ix_(idx, measured)] *= f.astype(np.float32)
            kind[idx] |= OFFCENTRE
    for b in plan.bubbles:
        fl = b.flank * b.flank_rate * tick
        u0, u1 = b.at * tick - fl, b.at * tick + fl
        inside = (u >= u0) & (u < u1)
        kind[inside] |= BUBBLE
        windows.append(("bubble", *_ticks(flow(np.array([u0, u1])), step)))
        idx = np.flatnonzero(inside)
        ev[np.ix_(idx, scat)] *= np.exp(rng.normal(0.0, b.scatter_sd, (idx.size, len(scat))))
        _dim(ev, inside, fluor, b.signal, 0.2, rng)
    seconds = t * step
    for d in plan.drifts:
        end = d.end if d.end is not None else float(seconds[-1])
        if not d.start < float(seconds[-1]):
            raise StudyError(
                f"Drift from {d.start:g} s: the acquisition ends at {float(seconds[-1]):.4g} s, "
                "before the drift starts; start it within the run"
            )
        frac = np.clip((seconds - d.start) / (end - d.start), 0.0, 1.0)
        g = (1.0 + d.change * frac).astype(np.float32)
        ev[:, _columns(d.detectors)] *= g[:, None]
        gain *= g
        windows.append(("drift", float(d.start), float(end)))
    kind[np.abs(gain - 1.0) >= DRIFT_TOLERANCE - 1e-7] |= DRIFT
    for m in plan.margins:
        lo, hi = m.window if m.window is not None else (-math.inf, math.inf)
        within = (seconds >= lo) & (seconds < hi)
        if not within.any():
            raise StudyError(
                f"MarginEvents: window {m.window} s holds no event; the acquisition lasts "
                f"{float(seconds[-1]):.4g} s"
            )
        pick = within & (rng.random(n) < m.fraction)
        idx = np.flatnonzero(pick)
        if m.top:
            ev[np.ix_(idx, _columns(m.top))] = ins.MAX_VALUE
        if m.floor:
            ev[np.ix_(idx, _columns(m.floor))] = 0.0
        kind[idx] |= MARGIN
    # the instrument's own limits (as instrument.detect and instrument.scatter apply them)
    # (a list of columns indexes a copy: assign, an out= would write into the copy)
    ev[:, measured] = np.minimum(ev[:, measured], ins.MAX_VALUE)
    ev[:, scat] = np.maximum(ev[:, scat], 0.0)
    ev[:, -1] = np.floor(t).astype(np.float32)
    clipped = (ev[:, measured] >= ins.MAX_VALUE).any(axis=1) | (ev[:, scat] <= 0).any(axis=1)
    last = float(ev[-1, -1])
    channels = tuple(
        Channel(c.index, c.name, c.marker, max(c.range, math.floor(last) + 1), c.bits)
        if c.name == "Time"
        else c
        for c in sample.channels
    )
    out = Sample(
        ev,
        channels,
        keywords=_end_time(dict(sample.keywords), last * step),
        spillover=sample.spillover,
        path=sample.path,
        dataset=sample.dataset,
        version=sample.version,
        scaled=False,
    )
    return out, AnomalyTruth(kind, gain, clipped, windows, plan)


def _ticks(t: np.ndarray, step: float) -> tuple[float, float]:
    """An anomaly's acquisition window on the stored clock, in seconds: from the tick its
    first event is stored at to the end of its last event's tick (times are floored to
    ticks), so that every event of it has its stored time within."""
    first, stop = float(np.floor(t[0])), float(np.floor(np.nextafter(t[1], -np.inf))) + 1.0
    return round(first * step, 9), round(max(stop, first + 1.0) * step, 9)


def _end_time(keywords: dict, seconds: float) -> dict:
    """`keywords` with ``$ETIM`` moved to ``$BTIM`` + `seconds` (a bubble or clog moves the
    last event), where both are there as HH:MM:SS."""
    import datetime as _dt

    try:
        start = _dt.datetime.strptime(keywords["$BTIM"], "%H:%M:%S")
    except (KeyError, ValueError):
        return keywords
    end = start + _dt.timedelta(seconds=math.ceil(seconds))
    return {**keywords, "$ETIM": end.strftime("%H:%M:%S")}


def _dim(ev, rows, cols, factor: float, spread: float, rng) -> None:
    idx = np.flatnonzero(rows)
    f = (
        factor * np.exp(rng.normal(0.0, spread, idx.size))
        if spread > 0
        else np.full(idx.size, factor)
    )
    ev[np.ix_(idx, cols)] *= f[:, None].astype(np.float32)


def _coincide(ev, rows: np.ndarray, rng) -> None:
    """Add a random other event to each of `rows` (areas add; FSC-H grows a little)."""
    if rows.size == 0:
        return
    other = rng.integers(0, ev.shape[0], rows.size)
    a = [ins.CHANNEL_NAMES.index(c) for c in ("FSC-A", "SSC-A", *ins.FLUOR_NAMES)]
    h = ins.CHANNEL_NAMES.index("FSC-H")
    add = ev[np.ix_(other, a)]
    ev[np.ix_(rows, a)] += add
    ev[rows, h] = np.maximum(ev[rows, h], ev[other, h]) * rng.uniform(1.0, 1.25, rows.size)


def random_plan(
    rng: np.random.Generator, seconds: float, kinds: Sequence[str] = ("clog",)
) -> AnomalyPlan:
    """Anomalies of the given kinds with realistic, random parameters.

    Parameters
    ----------
    rng : numpy.random.Generator
    seconds : float
        Clean acquisition length (`duration`).
    kinds : sequence of {"clog", "bubble", "drift", "margin"}
        One anomaly of each kind named (a name may repeat); clogs and bubbles
        are placed apart from each other and from the ends.

    Notes
    -----
    Ranges (uniform): clog drop 0.5-3 s at 5-40 % of the rate, burst 0.2-0.8 s,
    intensities × 0.7-0.9 (spread 0.1-0.2), 10-40 % coincident events in the
    burst, and the `Clog` defaults for off-centre events (80 % of the clog's,
    × 0.3-0.7, spread 0.3; applied when the plan's ``corrupt_clogs`` is on);
    bubble gap 0.1-1 s, flanks 0.1-0.4 s at 20-60 % of the rate, scatter
    factor SD 0.3-0.6, fluorescence × 0.5-0.8; drift from 30-60 % of the
    acquisition to its end, 25-50 % (dimmer in 7 of 10), on one laser's
    detectors; margin events: each event with probability 0.5-3 %, half
    saturating one or two fluorescence detectors, half at the floor of FSC-A
    and SSC-A.
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise StudyError(f"unknown anomaly kind(s) {bad}; kinds are {', '.join(KINDS)}")
    if not (is_finite_number(seconds) and seconds > 0):
        raise StudyError(f"seconds={seconds!r} must be a positive number")
    clogs, bubbles, drifts, margins = [], [], [], []
    timed = [k for k in kinds if k in ("clog", "bubble")]
    # one slot per timed anomaly, each anomaly inside its slot, away from the ends
    lo, hi = 0.1 * seconds, 0.85 * seconds
    slots = np.linspace(lo, hi, len(timed) + 1)
    for i, k in enumerate(timed):
        a, b = slots[i], slots[i + 1]
        if k == "clog":
            # a clog spans drop + burst seconds on both timelines (it delays no event for good)
            drop = min(rng.uniform(0.5, 3.0), 0.4 * (b - a))
            burst = min(rng.uniform(0.2, 0.8), 0.3 * (b - a))
            clogs.append(
                Clog(
                    start=rng.uniform(a, b - drop - burst),
                    drop=drop,
                    drop_rate=rng.uniform(0.05, 0.4),
                    burst=burst,
                    signal=rng.uniform(0.7, 0.9),
                    spread=rng.uniform(0.1, 0.2),
                    coincidence=rng.uniform(0.1, 0.4),
                )
            )
        else:
            flank = rng.uniform(0.1, 0.4)
            frate = rng.uniform(0.2, 0.6)
            # a short run's slot holds both flanks (they take flank x rate of the clean run)
            flank = min(flank, 0.4 * (b - a) / frate)
            bubbles.append(
                Bubble(
                    at=rng.uniform(a + flank * frate, b - flank * frate),
                    gap=rng.uniform(0.1, 1.0),
                    flank=flank,
                    flank_rate=frate,
                    scatter_sd=rng.uniform(0.3, 0.6),
                    signal=rng.uniform(0.5, 0.8),
                )
            )
    for k in kinds:
        if k == "drift":
            laser = str(rng.choice(list(LASERS)))
            sign = -1.0 if rng.random() < 0.7 else 1.0
            drifts.append(
                Drift(
                    start=rng.uniform(0.3, 0.6) * seconds,
                    change=sign * rng.uniform(0.25, 0.5),
                    detectors=LASERS[laser],
                )
            )
        elif k == "margin":
            if rng.random() < 0.5:
                top = tuple(
                    rng.choice(ins.FLUOR_NAMES, size=int(rng.integers(1, 3)), replace=False)
                )
                margins.append(MarginEvents(rng.uniform(0.005, 0.03), top=top))
            else:
                margins.append(MarginEvents(rng.uniform(0.005, 0.03), floor=("FSC-A", "SSC-A")))
    return AnomalyPlan(tuple(clogs), tuple(bubbles), tuple(drifts), tuple(margins))


#: Random-stream tag of the plans `random_anomalies` draws (per patient and day).
TAG_RANDOM_PLAN = 13


def random_anomalies(design, kinds: Sequence[str]):
    """A study's anomalies: every file gets one of each kind in `kinds` (`random_plan`).

    Returns a callable ``(PatientSpec, day) -> AnomalyPlan`` for
    `cytokit.simulate.study.simulate_study` (``cytokit simulate --anomalies``).
    Each file's plan is drawn from its own stream (the design's seed, the
    patient and the day), over the file's clean length at the design's rate,
    so the same seed gives the same anomalies.

    Raises
    ------
    StudyError
        An unknown kind, or none.
    """
    from cytokit.simulate.model import stream

    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise StudyError(f"anomaly kinds {list(kinds)!r}: name one or more of {', '.join(KINDS)}")
    seconds = design.n_events / design.event_rate

    def plan(spec, day: int) -> AnomalyPlan:
        return random_plan(stream(design.seed, TAG_RANDOM_PLAN, spec.id, day), seconds, kinds)

    return plan


def _about(item, plan: AnomalyPlan) -> str:
    """One line of what an injected anomaly was (truth/anomalies.csv ``detail``)."""
    if isinstance(item, Clog):
        off = f"; {item.offcentre:.0%} of its events off-centre" if plan.corrupt_clogs else ""
        return (
            f"{item.drop:.2f} s at {item.drop_rate:.0%} of the rate, then a {item.burst:.2f} s "
            f"burst{off}"
        )
    if isinstance(item, Bubble):
        return (
            f"{item.gap:.2f} s without events, {item.flank:.2f} s flanks at "
            f"{item.flank_rate:.0%} of the rate"
        )
    if isinstance(item, Drift):
        until = "the end" if item.end is None else f"{item.end:.2f} s"
        return f"gain {item.change:+.0%} on {', '.join(item.detectors)} by {until}"
    where = [f"saturating {', '.join(item.top)}"] if item.top else []
    where += [f"at the floor of {', '.join(item.floor)}"] if item.floor else []
    return f"{item.fraction:.1%} of the events {' and '.join(where)}"


def anomaly_rows(truth: AnomalyTruth) -> list[dict]:
    """One row per anomaly kind injected into a file: what truth/anomalies.csv holds.

    Keys: ``kind``; ``start`` and ``end`` (acquisition seconds: the first
    window's start and the last one's end; empty for margin events, which
    fall anywhere); ``events`` (the events with that truth bit: for a drift,
    those whose gain is off by at least `DRIFT_TOLERANCE`); ``offcentre``
    (a clog's events measured off-centre); ``detail`` (the parameters, in
    words).
    """
    items = {
        "clog": truth.plan.clogs,
        "bubble": truth.plan.bubbles,
        "drift": truth.plan.drifts,
        "margin": truth.plan.margins,
    }
    rows = []
    for kind, made in items.items():
        if not made:
            continue
        spans = [(a, b) for k, a, b in truth.windows if k == kind]
        rows.append(
            {
                "kind": kind,
                "start": min(a for a, _ in spans) if spans else None,
                "end": max(b for _, b in spans) if spans else None,
                "events": int(truth.mask(kind).sum()),
                "offcentre": int(truth.mask("offcentre").sum()) if kind == "clog" else None,
                "detail": "; ".join(_about(x, truth.plan) for x in made),
            }
        )
    return rows
