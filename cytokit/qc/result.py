"""`AcquisitionQC`: what acquisition QC found in one file, per event, per bin and per file.

Per event, `AcquisitionQC.reasons` holds a bitmask of why the event is
removed (`RATE`, `SIGNAL`, `MARGIN`; 0 = kept). Per file, `summary` gives the
columns of a samples table (events before and after, removed by reason, %
removed, the verdict and why), `ranges_frame` the flagged time ranges (one
row per range) and `bins_frame` the per-bin series behind the plot.

Verdict: ``fail`` when more than ``max_removed_pct`` % of the events are
removed (or the file has no events); ``warn`` when more than
``warn_removed_pct`` % are, when a requested check could not run (no Time
channel, time not in acquisition order, too few events or clock steps; no
channel for the signal and margin checks to read), or
when a channel's signal moved steadily over the whole acquisition (`trends`);
``pass`` otherwise. The reason is one sentence naming the figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytokit._numbers import pct_text
from cytokit.qc.bins import TimeGrid
from cytokit.qc.settings import AcquisitionQCSettings

__all__ = [
    "MARGIN",
    "RATE",
    "REASONS",
    "SIGNAL",
    "AcquisitionQC",
    "BinTable",
    "FlaggedRange",
    "MarginTable",
    "by_departure",
    "reason_names",
]

# Reason bits of `AcquisitionQC.reasons` (one name a line: the API reference documents each)
RATE = 1  #: Reason bit: removed by the flow-rate check.
SIGNAL = 2  #: Reason bit: removed by the signal-stability check.
MARGIN = 4  #: Reason bit: a margin event (at a detector's limit).
#: Reason name → bit, in report order.
REASONS = {"rate": RATE, "signal": SIGNAL, "margin": MARGIN}
#: The check (`cytokit.qc.settings.CHECKS`) behind each reason.
CHECK_OF = {"rate": "rate", "signal": "signal", "margin": "margins"}
VERDICTS = ("pass", "warn", "fail")


def reason_names(bits: int) -> str:
    """``"rate+signal"`` etc. for a reason bitmask (``""`` for 0)."""
    return "+".join(name for name, bit in REASONS.items() if bits & bit)


def by_departure(names, z: np.ndarray, calm: np.ndarray) -> list[str]:
    """`names` ordered by their largest ``|z|`` in the `calm` bins (outside those removed
    for the rate: a clog's events depart in every channel, which the rate already tells),
    then by their largest ``|z|`` anywhere; a value that is not finite counts as 0.

    Parameters
    ----------
    names : sequence of str
    z : ndarray, shape (B, len(names))
        Each channel's departure per time bin, in noise SDs.
    calm : ndarray of bool, shape (B,)
    """
    a = np.abs(np.asarray(z, dtype=np.float64)).reshape(len(calm), len(names))
    a = np.where(np.isfinite(a), a, 0.0)
    outside = a[np.asarray(calm, dtype=bool)].max(axis=0, initial=0.0)
    anywhere = a.max(axis=0, initial=0.0)
    order = sorted(range(len(names)), key=lambda j: (-outside[j], -anywhere[j]))
    return [names[j] for j in order]


@dataclass(frozen=True)
class MarginTable:
    """Margin events of each checked channel.

    Attributes
    ----------
    names : tuple of str
    top, floor, not_finite : ndarray of int64
        Events at or above the top limit, at or below the floor, not finite.
    top_limit, floor_limit : tuple of float
        The limits (``inf`` / ``-inf``: none), in the sample's values.
    top_rule, floor_rule : tuple of str
        How the limits were derived.
    """

    names: tuple[str, ...]
    top: np.ndarray
    floor: np.ndarray
    not_finite: np.ndarray
    top_limit: tuple[float, ...]
    floor_limit: tuple[float, ...]
    top_rule: tuple[str, ...]
    floor_rule: tuple[str, ...]

    def frame(self) -> pd.DataFrame:
        """One row per channel: ``channel, top, floor, not_finite, top_limit, floor_limit, ...``."""
        return pd.DataFrame(
            {
                "channel": list(self.names),
                "top": self.top,
                "floor": self.floor,
                "not_finite": self.not_finite,
                "top_limit": list(self.top_limit),
                "floor_limit": list(self.floor_limit),
                "top_rule": list(self.top_rule),
                "floor_rule": list(self.floor_rule),
            }
        )


@dataclass(frozen=True)
class BinTable:
    """The time bins and what each check saw in them.

    Attributes
    ----------
    grid : TimeGrid
    bounds : ndarray of int64, shape (B + 1,)
        Bin ``j`` holds events ``bounds[j] .. bounds[j + 1] - 1``.
    counts, expected : ndarray, shape (B,)
        Events, and events the rate check expected.
    rate_z : ndarray, shape (B,)
    bits : ndarray of uint8, shape (B,)
        Reasons each bin is removed for (`RATE`, `SIGNAL`).
    channels : tuple of str
        Channels of the stability check.
    cofactors : ndarray, shape (k,)
        Their asinh cofactors.
    values : ndarray of int64, shape (B, k)
        Values each bin contributed per channel (at most `cytokit.qc.scan.MAX_PER_BIN`).
    mean, sd : ndarray, shape (B, k, 3)
        Per bin and channel on the ``asinh(x / cofactor)`` scale, the series of
        `cytokit.qc.stability.SERIES`: the mean of all values (``[..., 0]``),
        the upper-weighted mean (``[..., 1]``) and the bright cells' level
        (``[..., 2]``, `cytokit.qc.stability.bright_moments`), with the SD of
        one value.
    level : ndarray, shape (k, 3)
        Each channel's stable levels (asinh scale; NaN for a series that was
        not judged, such as a bright series that leads no drift).
    z : ndarray, shape (B, k)
        Departure from the stable level in noise SDs (bin or window, the larger).
    channel_flagged : ndarray of bool, shape (B, k), optional
        The bins where each channel's signal was flagged (the channels a
        range's detail names); None where the signal check did not run.
    """

    grid: TimeGrid
    bounds: np.ndarray
    counts: np.ndarray
    expected: np.ndarray
    rate_z: np.ndarray
    bits: np.ndarray
    channels: tuple[str, ...]
    cofactors: np.ndarray
    values: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    level: np.ndarray
    z: np.ndarray
    channel_flagged: np.ndarray | None = None

    def signal_channels(
        self, start: int = 0, stop: int | None = None
    ) -> list[tuple[str, str, float]]:
        """The channels flagged for their signal in bins ``start .. stop - 1``, the one
        that departed most first: ``(channel, series, departure)``, the series ``""``,
        ``" (upper half)"`` or ``" (brightest cells)"`` (the one that departed most), the
        departure on the ``asinh`` scale (the events-weighted mean of the bins against the
        stable level). Empty where none was flagged."""
        if self.channel_flagged is None:
            return []
        flagged = self.channel_flagged[start:stop].any(axis=0)
        items = []
        for c in np.flatnonzero(flagged):
            w = self.values[start:stop, c].astype(float)
            best = None
            for p, what in ((0, ""), (1, " (upper half)"), (2, " (brightest cells)")):
                y = self.mean[start:stop, c, p]
                ok = np.isfinite(y) & (w > 0)
                if ok.any():
                    dev = float(np.average(y[ok], weights=w[ok]) - self.level[c, p])
                    if best is None or abs(dev) > abs(best[0]):
                        best = (dev, what)
            if best is not None:
                items.append((abs(best[0]), int(c), best[1], best[0]))
        items.sort(key=lambda x: (-x[0], x[1]))
        return [(self.channels[c], what, dev) for _, c, what, dev in items]


@dataclass(frozen=True)
class FlaggedRange:
    """A run of removed time bins.

    Attributes
    ----------
    start, end : float
        Time range (seconds, or the file's time units when it has no
        ``$TIMESTEP``).
    first_event, stop_event : int
        Events ``first_event .. stop_event - 1`` (file order) lie in it.
    reasons : str
        ``"rate"``, ``"signal"`` or ``"rate+signal"``.
    detail : str
        What was seen: the rate against the expected rate, the channels
        whose signal departed.
    bins : (int, int)
        The time bins ``bins[0] .. bins[1] - 1`` the detail was read from
        (``(-1, -1)``: not known).
    """

    start: float
    end: float
    first_event: int
    stop_event: int
    reasons: str
    detail: str
    bins: tuple[int, int] = (-1, -1)

    @property
    def events(self) -> int:
        return self.stop_event - self.first_event


def notes_besides(notes, reason: str) -> list[str]:
    """The `notes` a reader does not find in `reason` already: a check that did not run
    is named there with why (a note's part after "not checked: ")."""
    return [n for n in notes if n.strip() and n.split(" not checked: ", 1)[-1] not in reason]


def time_digits(grid: TimeGrid) -> int:
    """Decimals that give a time of `grid` (in its seconds, or units) to its clock's
    resolution: one more than the clock's step needs, as range edges may fall
    halfway between ticks; for a clock without steps, float32's 7 significant
    digits at the run's end."""
    q = float(grid.to_seconds(grid.quantum))
    if q > 0:
        return min(15, max(0, math.ceil(-math.log10(q) - 1e-9) + 1))
    far = abs(float(grid.to_seconds(grid.end))) or 1.0
    return min(15, max(0, 6 - math.floor(math.log10(far))))


@dataclass(eq=False)
class AcquisitionQC:
    """Acquisition QC of one file (see the module docstring).

    Attributes
    ----------
    file : str
    n_events : int
    reasons : ndarray of uint8, shape (n_events,)
        Bitmask per event (`RATE`, `SIGNAL`, `MARGIN`); 0 = kept.
    settings : AcquisitionQCSettings
    checks_run : tuple of str
        The checks that ran (a subset of ``settings.checks``).
    notes : tuple of str
        Sentences on what could not be checked and why.
    bins : BinTable or None
        None when the file has no usable time axis.
    ranges : tuple of FlaggedRange
    margins : MarginTable or None
        None when the margin check did not run.
    trends : tuple of str
        Channels whose signal moved steadily over the acquisition (by more
        than twice the signal shift from its first to its last third, and by
        more than ``signal_z`` noise SDs: `cytokit.qc.stability.trend_z`), one
        sentence each.
    flat : tuple of str
        Channels that read one value for every event (a detector that measured
        nothing: switched off, or not connected), one sentence each: their signal
        cannot be checked, so the verdict is at least ``warn``.
    finite_columns : tuple of int
        Columns of the sample whose every non-finite value the margin check
        marked, so the events QC keeps are finite there (empty when the check
        did not run); `cytokit.finite` does not scan them again.
    """

    file: str
    n_events: int
    reasons: np.ndarray
    settings: AcquisitionQCSettings
    checks_run: tuple[str, ...]
    notes: tuple[str, ...] = ()
    bins: BinTable | None = None
    ranges: tuple[FlaggedRange, ...] = ()
    margins: MarginTable | None = None
    trends: tuple[str, ...] = ()
    finite_columns: tuple[int, ...] = ()
    flat: tuple[str, ...] = ()
    removed_by: dict[str, int] = field(init=False)
    n_removed: int = field(init=False)

    def __post_init__(self) -> None:
        r = self.reasons
        self.removed_by = {
            name: int(np.count_nonzero(r & bit)) if r.size else 0 for name, bit in REASONS.items()
        }
        self.n_removed = int(np.count_nonzero(r)) if r.size else 0

    # -- per event -----------------------------------------------------------------
    @property
    def keep(self) -> np.ndarray:
        """Bool mask of the events kept, shape (n_events,)."""
        return self.reasons == 0

    # -- per file --------------------------------------------------------------------
    @property
    def pct_removed(self) -> float:
        """% of the events removed; NaN where nothing was measured (no event, no check ran)."""
        if not self.n_events or not self.checks_run:
            return float("nan")
        return 100.0 * self.n_removed / self.n_events

    def pct(self, reason: str) -> float:
        """% of events removed for `reason` (an event may count for several reasons)."""
        return 100.0 * self.removed_by[reason] / self.n_events if self.n_events else 0.0

    @property
    def not_run(self) -> tuple[str, ...]:
        """Checks the settings asked for that did not run."""
        return tuple(c for c in self.settings.checks if c not in self.checks_run)

    @property
    def verdict(self) -> str:
        return self._verdict()[0]

    @property
    def verdict_reason(self) -> str:
        return self._verdict()[1]

    def _limits(self) -> set[float]:
        """The shares a % removed must not seem to be when it is not: none, all, and the
        settings' warn and fail limits."""
        s = self.settings
        return {0.0, 100.0, float(s.max_removed_pct), float(s.warn_removed_pct)}

    def _stored(self, v: float) -> float:
        """`v` % as the tables store it (``qc_pct_removed``): rounded to 4 decimals, or to
        as many more as keep it off a limit it is not (`_limits`): in a file of millions
        of events, 2.00004 % against 2 % allowed is a warning, and one event removed is
        not 0 %."""
        limits = self._limits()
        for decimals in range(4, 12):
            r = round(v, decimals)
            if r == v or r not in limits:
                return r
        return v

    def _pct(self, v: float) -> str:
        """`v` % as the tables show it (`pct_text`, on the stored value, `_stored`), with
        more digits where 3 would read as a limit it is not (20 for 20.004 against 20 %
        allowed, 100 for 99.96)."""
        v = self._stored(v)
        limits = self._limits()
        digits = 3
        while digits < 8 and float(pct_text(v, digits)) in limits - {v}:
            digits += 1
        return pct_text(v, digits)

    def _breakdown(self, channels: bool = False) -> str:
        parts = [
            f"{name} {self._pct(self.pct(name))}%" for name in REASONS if self.removed_by[name]
        ]
        named = self.margin_channels() if channels and self.removed_by["margin"] else ""
        if named:  # margin is the last reason, so the last part
            parts[-1] += f": {named}"
        return f" ({', '.join(parts)})" if parts else ""

    def margin_channels(self, most: int = 3) -> str:
        """The channels behind the margin events, most first (at most `most`):
        ``"FL1-A 20000 not finite; FSC-A 812 at the top, 30 at the floor"`` ("" when none)."""
        m = self.margins
        if m is None:
            return ""
        total = m.top + m.floor + m.not_finite
        out = []
        for j in np.argsort(-total, kind="stable")[:most]:
            if total[j] == 0:
                break
            what = [
                f"{int(n)} {label}"
                for n, label in (
                    (m.not_finite[j], "not finite"),
                    (m.top[j], "at the top"),
                    (m.floor[j], "at the floor"),
                )
                if n
            ]
            out.append(f"{m.names[j]} {', '.join(what)}")
        return "; ".join(out)

    def _verdict(self) -> tuple[str, str]:
        s = self.settings
        if self.n_events == 0:
            return "fail", "the file has no events"
        pct = self.pct_removed
        events = f"{self.n_events:,} event{'' if self.n_events == 1 else 's'}"
        # what a reader must know whatever the % removed: a check asked for that did not
        # run (its count is not a zero) and a trend QC named but kept
        also = []
        if self.not_run:
            *most, last = self.not_run
            missing = f"{', '.join(most)} and {last}" if most else last
            # a note reads "rate and signal not checked: <why>"; the sentence names the checks
            why = "; ".join(
                n.split(" not checked: ", 1)[1] for n in self.notes if " not checked: " in n
            )
            why = why or "see notes"
            plural = "s" if len(self.not_run) > 1 else ""
            also.append(f"the {missing} check{plural} did not run: {why}")
        also.extend(self.flat)
        also.extend(self.trends)
        # a file QC warns about or fails names the channels behind its margin events
        loud = pct > s.warn_removed_pct or bool(also)
        what = f"{self._pct(pct)}% of {events} removed{self._breakdown(loud)}"
        if not self.checks_run:
            # nothing was measured: no "0.00% removed", the events go on unchecked
            return "warn", (f"no check ran, so the {events} go on unchecked; " + "; ".join(also))
        if self.n_removed >= self.n_events:
            # nothing left to count, whatever the limit allows: a failure, not populations
            # of 0 events (with max_removed_pct = 100 the file would pass on to the gates)
            lead = "".join(f"; {a}" for a in also)
            return "fail", f"{what}{lead}; every event was removed, none is left to analyse"
        if pct > s.max_removed_pct:
            # the limit ends the sentence: `screen` adds what to do after it
            lead = "".join(f"; {a}" for a in also)
            return "fail", f"{what}{lead}; more than the {s.max_removed_pct:g}% allowed"
        if pct > s.warn_removed_pct:
            return "warn", "; ".join([f"{what}, more than {s.warn_removed_pct:g}%", *also])
        if also:
            return "warn", "; ".join([what, *also])
        return "pass", what

    def summary(self) -> dict:
        """The file's row of a samples table.

        Keys: ``events_before_qc``, ``events_after_qc``, ``qc_removed_rate``,
        ``qc_removed_signal``, ``qc_removed_margin`` (an event removed for two
        reasons counts in both; None where that check did not run: not asked
        for, no usable Time channel, or no channel left to read),
        ``qc_removed`` (each event once),
        ``qc_pct_removed`` (None when no check ran), ``qc_verdict``,
        ``qc_reason``, ``qc_checks`` (the checks that ran, ``+``-joined),
        ``qc_notes``.
        """
        out = {
            "events_before_qc": self.n_events,
            "events_after_qc": self.n_events - self.n_removed,
        }
        for name in REASONS:
            # a check that did not run measured nothing: no count, not a zero
            ran = CHECK_OF[name] in self.checks_run
            out[f"qc_removed_{name}"] = self.removed_by[name] if ran else None
        verdict, reason = self._verdict()
        out.update(
            qc_removed=self.n_removed,
            # no check ran: nothing measured, no % (never a 0)
            qc_pct_removed=self._stored(self.pct_removed) if self.checks_run else None,
            qc_verdict=verdict,
            qc_reason=reason,
            qc_checks="+".join(self.checks_run),
            qc_notes="; ".join((*self.notes, *self.flat, *self.trends)),
        )
        return out

    def ranges_frame(self) -> pd.DataFrame:
        """Flagged time ranges: ``file, start, end, time_unit, first_event, events, reasons, detail``."""
        unit = self.bins.grid.unit if self.bins is not None else ""
        # to the clock's resolution: a float32 clock's 6.675 is 6.674999952316284 in float64
        digits = time_digits(self.bins.grid) if self.bins is not None else 6
        rows = [
            {
                "file": self.file,
                "start": round(r.start, digits),
                "end": round(r.end, digits),
                "time_unit": unit,
                "first_event": r.first_event,
                "events": r.events,
                "reasons": r.reasons,
                "detail": r.detail,
            }
            for r in self.ranges
        ]
        cols = ["file", "start", "end", "time_unit", "first_event", "events", "reasons", "detail"]
        return pd.DataFrame(rows, columns=cols)

    def bins_frame(self) -> pd.DataFrame:
        """One row per time bin: times, events, expected events, flags, each channel's signal.

        Columns ``bin, start, end, time_unit, first_event, events, expected, rate_z,
        reasons``, then per channel of the stability check ``<channel> mean``,
        ``<channel> low``, ``<channel> high`` (the bin's mean of ``asinh(x / c)``
        and that ± its SD, mapped back to the channel's values by ``c · sinh``),
        ``<channel> level`` (the stable level, same mapping), ``<channel> upper``
        and ``<channel> upper level`` (the same for the upper-weighted mean of the
        values), ``<channel> z`` (departure in noise SDs) and ``<channel> cofactor``
        (``c``). Empty when the file has no time bins.
        """
        b = self.bins
        if b is None:
            return pd.DataFrame(columns=["bin", "start", "end", "time_unit", "events"])
        edges = b.grid.to_seconds(b.grid.edges())
        out = {
            "bin": np.arange(b.counts.shape[0]),
            "start": edges[:-1],
            "end": edges[1:],
            "time_unit": b.grid.unit,
            "first_event": b.bounds[:-1],
            "events": b.counts,
            "expected": b.expected,
            "rate_z": b.rate_z,
            "reasons": [reason_names(int(x)) for x in b.bits],
        }
        for j, name in enumerate(b.channels):
            c = float(b.cofactors[j])
            mu, sd = b.mean[:, j, 0], b.sd[:, j, 0]
            out[f"{name} mean"] = c * np.sinh(mu)
            out[f"{name} low"] = c * np.sinh(mu - sd)
            out[f"{name} high"] = c * np.sinh(mu + sd)
            out[f"{name} level"] = c * np.sinh(b.level[j, 0])
            out[f"{name} upper"] = c * np.sinh(b.mean[:, j, 1])
            out[f"{name} upper level"] = c * np.sinh(b.level[j, 1])
            out[f"{name} z"] = b.z[:, j]
            out[f"{name} cofactor"] = c
        return pd.DataFrame(out)
