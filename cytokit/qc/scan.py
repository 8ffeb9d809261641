"""The acquisition-QC pass: one scan over the event rows, a cheap decision step, the mask.

`acquisition_qc` runs it on a whole sample. `AcquisitionPass` is the same
pass in streaming form for a caller that already reads the events in blocks
(the gating pass): ``update(start, stop)`` for each block in order, then
``finish()``. The per-row work (margin limits, non-finite values, the order
of the time column) happens in `update`; `finish` reads only the time
column at the bin edges (a binary search per edge), an evenly spaced
subsample of at most `MAX_PER_BIN` rows per time bin for the signal
quantiles and the rows beside a gap (`GAP_FLANK_EVENTS` a side, for its
flank), then decides per bin and writes the bin reasons into the
per-event mask. Nothing is read from the file again, and no copy of the
events is made.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from cytokit.errors import CytokitError
from cytokit.fcs.channels import clock_names
from cytokit.kernels.acquisition import bin_bounds, bin_moments, margin_scan
from cytokit.qc.bins import MIN_BINS, MIN_EVENTS_PER_BIN, TimeGrid, plan_grid
from cytokit.qc.channels import bd_tick, channel_plan, clock_step, time_axis, time_column
from cytokit.qc.flank import odd_flank, slow_flank
from cytokit.qc.rate import change_point, check_rate
from cytokit.qc.result import (
    MARGIN,
    RATE,
    SIGNAL,
    AcquisitionQC,
    BinTable,
    FlaggedRange,
    MarginTable,
    reason_names,
)
from cytokit.qc.settings import AcquisitionQCSettings, unknown_exclusions
from cytokit.qc.shape import (
    CELL_VALUES,
    MIN_STRETCH,
    PIECE,
    SCATTER_CELLS,
    ScatterCells,
    follows,
    rows_of,
)
from cytokit.qc.stability import (
    BAND,
    BRIGHT,
    WINDOWS,
    bright_moments,
    check_stability,
    contiguous_runs,
    trend,
    trend_z,
)
from cytokit.sample import Sample

__all__ = [
    "GAP_EVENTS",
    "GAP_FLANK_EVENTS",
    "GAP_GUARD_EVENTS",
    "GAP_NEAR_EVENTS",
    "GAP_RATIO",
    "MAX_PER_BIN",
    "AcquisitionPass",
    "acquisition_qc",
]

#: Rows per time bin read for the signal quantiles (all rows of a smaller bin).
MAX_PER_BIN = 256
#: Rows read to tell a clock or a counter from a measurement (`AcquisitionPass._monotone`).
CLOCK_ROWS = 4096
#: Fewest events in which a channel moving one way is taken for a clock, not a measurement.
CLOCK_MIN_EVENTS = 1000
#: Fewest events in which a channel reading one value in every event is called a dead
#: detector (`AcquisitionPass._flat`): the fewest the rate and signal checks read.
FLAT_MIN_EVENTS = MIN_BINS * MIN_EVENTS_PER_BIN
#: Reason bit the row scan marks where the margin check is off (cleared before the result).
_SCRATCH = 128
#: A run longer than this (one day) is noted: its time axis ($TIMESTEP) is likely wrong.
MAX_RUN_SECONDS = 86_400.0
#: A run shorter than this (1 ms; the rate check needs 320 events or more) is noted too.
MIN_RUN_SECONDS = 0.001
#: A pause between two events longer than this many events at the usual rate is a gap
#: (a bubble, a paused acquisition): at the usual rate it happens with chance e^-50.
GAP_EVENTS = 50
#: ... and a pause this many times longer than the mean pause between the events on its
#: far side (the run's): a clog's slow flow, whose long pauses are chance, is no gap.
GAP_RATIO = 10
#: A flagged run's edge is at a gap where the gap lies within this many events of it.
GAP_NEAR_EVENTS = 200
#: A run that starts or ends at a gap also takes the gap's flank beside it (the events
#: `cytokit.qc.flank` finds slow or odd among the `GAP_FLANK_EVENTS` there), and at least
#: the events within this many events' time at the usual rate (`AcquisitionPass._guard`).
GAP_GUARD_EVENTS = 25
#: Events read beside a gap for its flank, up to the next pause longer than `GAP_EVENTS`
#: events at the usual rate (on a clock whose ticks hold more, the next tick: a
#: tick the gap cut short would read there as slow flow).
GAP_FLANK_EVENTS = 1600


def _cover(runs: list, inner: list) -> list:
    """`runs` (`AcquisitionPass._runs`), each widened to hold the events and times of the
    `inner` runs whose bins lie in its own (the rate's alone may reach a few events
    further than the run holding it, whose edge bin the signal flagged too)."""
    out = []
    for a, b, first, stop, t0, t1, guard, gaps in runs:
        for ia, ib, f, e, s0, s1, g, p in inner:
            if ia < b and ib > a:
                first, stop, t0, t1 = min(first, f), max(stop, e), min(t0, s0), max(t1, s1)
                guard, gaps = max(guard, g), tuple(sorted({*gaps, *p}))
        out.append((a, b, first, stop, t0, t1, guard, gaps))
    return out


def _trim(runs: list, rate_runs: list, bits: np.ndarray, bounds: np.ndarray) -> list:
    """`runs` (`AcquisitionPass._runs`) with each edge moved in to the edge of the rate's
    own run (`rate_runs`, of the rate's bins alone) where that lies within the run's
    outermost bin and the run's own edge does not.

    An outermost bin the signal alone flagged, beside a rate-flagged bin inward, is
    not refined (its edge is the bin's), yet the rate run reads it as the good bin
    outside its own and places the change of rate in it: the stream was disturbed
    from there (the slow flank of a bubble, a clog coming on) and the bin's level
    moved with the events after it. An outermost bin flagged for both, read alone
    (`_depth`), may put the change outside it, in the bin whose rate and signal
    passed, where the rate run, read deeper, keeps it within the bin. Either way the
    run's edge moves in to the rate run's, within that bin; the events before it
    came at the usual rate."""
    out = []
    for a, b, first, stop, t0, t1, guard, gaps in runs:
        for ia, ib, f, e, s0, s1, _, _ in rate_runs:
            if b - a < 2 or not (ia < b and ib > a):
                continue
            if bits[a] & RATE:
                ok = ia == a and bits[a] & SIGNAL and first < bounds[a]
            else:
                ok = ia == a + 1 and first == bounds[a]
            if ok and bounds[a] <= f < bounds[a + 1] and f > first:
                first, t0 = f, s0
            if bits[b - 1] & RATE:
                ok = ib == b and bits[b - 1] & SIGNAL and stop > bounds[b]
            else:
                ok = ib == b - 1 and stop == bounds[b]
            if ok and bounds[b - 1] < e <= bounds[b] and e < stop:
                stop, t1 = e, s1
        out.append((a, b, first, stop, t0, t1, guard, gaps))
    return out


class AcquisitionPass:
    """Acquisition QC of one sample, fed block by block.

    Parameters
    ----------
    sample : Sample
        Scale values (`cytokit.read_fcs` default) or stored values; the margin
        limits follow ``sample.scaled``. Its events are read, never modified.
    settings : AcquisitionQCSettings, optional
        Default `AcquisitionQCSettings()`. The pass runs whatever
        ``settings.enabled`` says (that switch is for callers).

    Notes
    -----
    Feed every row exactly once, in order: ``update(0, a)``, ``update(a, b)``,
    ..., ``update(z, n_events)``; then `finish`.
    """

    def __init__(self, sample: Sample, settings: AcquisitionQCSettings | None = None) -> None:
        ev = sample.events
        if not ev.dtype.isnative and ev.dtype.kind == "f":
            # the same values in the other byte order (a hand-built Sample of an FCS file's
            # DATA): read in the machine's, as every kernel does (a copy)
            sample = dataclasses.replace(sample, events=ev.astype(ev.dtype.newbyteorder("=")))
            ev = sample.events
        self.sample = sample
        self.settings = settings or AcquisitionQCSettings()
        self._ticks: tuple[float, float] | None = None  # (first tick, step): see _decide
        if ev.dtype not in (np.float32, np.float64):
            raise CytokitError(
                f"{sample.name}: events have dtype {ev.dtype}; acquisition QC reads float32 or "
                "float64 events (cytokit.read_fcs gives them)"
            )
        self.plan = channel_plan(sample, self.settings.exclude_channels, self.settings.time_channel)
        self._odd_flanks, self._flanks = False, {}  # `_decide` sets them
        checks = self.settings.checks
        self.tcol = time_column(sample, self.settings.time_channel)
        margins = "margins" in checks
        # the rows are read for each channel's range whatever the checks (a dead detector
        # is told without the margin check too); without it no limit is set, and what
        # the scan marks (values that are not finite) goes to a scratch bit, cleared
        self._cols = np.asarray(self.plan.columns, dtype=np.int64)
        k = self._cols.shape[0]
        self._bit = MARGIN if margins else _SCRATCH
        self._top = np.asarray(self.plan.top if margins else np.full(k, np.inf), dtype=np.float64)
        self._floor = np.asarray(
            self.plan.floor if margins else np.full(k, -np.inf), dtype=np.float64
        )
        self.reasons = np.zeros(sample.n_events, dtype=np.uint8)
        self._n_top = np.zeros(k, dtype=np.int64)
        self._n_floor = np.zeros(k, dtype=np.int64)
        self._n_bad = np.zeros(k, dtype=np.int64)
        self._max = np.full(k, -np.inf)
        self._min = np.full(k, np.inf)
        self._at_min = np.zeros(k, dtype=np.int64)
        self._decreases = 0
        self._first_decrease = -1
        self._trends: list[str] = []
        self._sort_keys: list[str] = []
        self._next = 0

    def update(self, start: int, stop: int) -> None:
        """Scan rows ``start .. stop - 1`` (the next block)."""
        if start != self._next or not start <= stop <= self.sample.n_events:
            raise CytokitError(
                f"{self.sample.name}: acquisition QC got rows {start}..{stop} but expected the "
                f"block starting at row {self._next} (feed each row once, in order)"
            )
        if stop == start:
            return
        ev = self.sample.events
        tcol = -1 if self.tcol is None else self.tcol
        prev = float(ev[start - 1, tcol]) if start and tcol >= 0 else math.nan
        res = margin_scan(
            ev[start:stop],
            self._cols,
            self._top,
            self._floor,
            self.reasons[start:stop],
            bit=self._bit,
            time_column=tcol,
            prev_time=prev,
        )
        self._n_top += res["top"]
        self._n_floor += res["floor"]
        self._n_bad += res["not_finite"]
        np.maximum(self._max, res["max"], out=self._max)
        same = np.where(res["min"] == self._min, self._at_min, 0)
        lower = res["min"] <= self._min
        self._at_min = np.where(lower, res["at_min"] + same, self._at_min)
        self._min = np.minimum(self._min, res["min"])
        self._decreases += res["decreases"]
        if res["first_decrease"] >= 0 and self._first_decrease < 0:
            self._first_decrease = start + res["first_decrease"]
        self._next = stop

    def _reordered(self) -> bool:
        """The Time channel falls more often than a restart or two explain: the rows were
        put in another order (sorted or merged by a program)."""
        return self._decreases > max(3, self.sample.n_events // 1000)

    def _monotone(self) -> list[int]:
        """Planned channels whose values never fall (or never rise) from row to row.

        Read on an evenly spaced subsample of at most `CLOCK_ROWS` rows (and the
        last row) of a file of at least `CLOCK_MIN_EVENTS` events: never falling (or
        never rising), and taking at least 16 values. A measurement cannot do that over
        thousands of cells in acquisition order; a second clock (a ``HDR-T`` beside
        ``Time``) or an event counter whose name QC does not know does, and so does the
        channel a program sorted the rows by.
        """
        ev = self.sample.events
        n = ev.shape[0]
        if n < CLOCK_MIN_EVENTS:  # a few events can be in any order (a test file's ramp)
            return []
        rows = np.unique(
            np.append(np.linspace(0, n - 1, min(n, CLOCK_ROWS)).astype(np.int64), n - 1)
        )
        out = []
        for j, col in enumerate(self.plan.columns):
            v = ev[rows, col].astype(np.float64)
            if not np.isfinite(v).all():  # a clock is finite; inf - inf would warn
                continue
            step = np.diff(v)
            if (np.all(step >= 0) or np.all(step <= 0)) and np.count_nonzero(step) >= 15:
                out.append(j)
        return out

    def _drop_clocks(self) -> list[str]:
        """Leave the clocks and counters (`_monotone` channels) out of every check (their
        margin marks made again without them, a second read of the rows, only when they
        had any); a note names them.

        Where the Time channel says the rows were reordered (`_reordered`), a channel
        that rises with the rows is what they were sorted by, a measurement: it stays
        checked (its margin events are as real as in acquisition order), and the time
        problem names it.
        """
        drop = self._monotone()
        if drop and self.tcol is not None and self._reordered():
            self._sort_keys = [self.plan.names[j] for j in drop]
            return []
        if not drop:
            return []
        keep = [j for j in range(len(self.plan.columns)) if j not in drop]
        names = [self.plan.names[j] for j in drop]
        p = self.plan
        self.plan = dataclasses.replace(
            p,
            **{
                f.name: tuple(getattr(p, f.name)[j] for j in keep)
                for f in dataclasses.fields(p)
                if f.name != "excluded"
            },
            excluded=p.excluded + tuple(f"{n} (moves one way with the events)" for n in names),
        )
        counted = self._n_top.shape[0] > 0
        marked = counted and bool(
            self._n_top[drop].any() or self._n_floor[drop].any() or self._n_bad[drop].any()
        )
        kept = (
            "_cols",
            "_top",
            "_floor",
            "_n_top",
            "_n_floor",
            "_n_bad",
            "_max",
            "_min",
            "_at_min",
        )
        for a in kept:
            arr = getattr(self, a)
            if arr.shape[0]:  # empty when no channel is checked
                setattr(self, a, arr[keep])
        if marked:
            self._mark_margins_again()
        which = ", ".join(names)
        verb = "moves" if len(names) == 1 else "move"
        return [
            f"{which} {verb} one way with the events (a clock or an event counter, not a "
            "measurement), so QC does not check it"
        ]

    def _drop_unbounded_tops(self) -> list[str]:
        """Notes on channels whose values exceed their $PnR; their tops are dropped and the
        margin marks made again without them (a second read of the rows, only then)."""
        ceil = np.asarray(self.plan.ceiling)
        over = np.flatnonzero((self._max > ceil) & np.isfinite(self._top))
        if not over.size:
            return []
        notes = []
        for j in over:
            c = self.sample.channels[self.plan.columns[j]]
            notes.append(
                f"{c.name}: values up to {self._max[j]:g} exceed its $PnR = {c.range:g}, so "
                "$PnR is not this channel's top and its top margin was not checked"
            )
        self._top[over] = np.inf
        self._mark_margins_again()
        return notes

    def _no_tops(self) -> list[str]:
        """A note naming the checked channels that have no top to check: no ``$PnR``
        (missing, 0, or 1 on a log-amplified channel), so their saturated events, if any,
        cannot be told."""
        names = [n for n, t in zip(self.plan.names, self.plan.top, strict=True) if t == math.inf]
        if not names:
            return []
        which = ", ".join(names)
        one = len(names) == 1
        return [
            f"{which}: the file gives {'it' if one else 'them'} no range ($PnR missing, 0 "
            f"or 1), so {'its' if one else 'their'} top margin was not checked"
        ]

    def _flat(self) -> list[str]:
        """Sentences on checked channels holding one finite value in every event of a file
        of at least `FLAT_MIN_EVENTS` (a detector that measured nothing; a few values that
        are not finite beside it do not make it measure), where no event at a limit explains
        it (a channel stuck at its top is removed as margin events)."""
        if self.sample.n_events < FLAT_MIN_EVENTS:
            return []
        out = []
        for j, name in enumerate(self.plan.names):
            lo, hi = float(self._min[j]), float(self._max[j])
            if self._bit == _SCRATCH and self._n_bad[j] == self.sample.n_events:
                # the margin check, off, would remove every event for it
                out.append(
                    f"{name} holds no finite value in any event (a detector that measured "
                    "nothing, or values lost in writing the file), so it could not be "
                    "checked; if the panel does not use it, leave it out of QC (cytokit "
                    f"gate: --qc-exclude {name}; a study: [acquisition_qc] exclude_channels)"
                )
                continue
            marked = self._n_top[j] or self._n_floor[j]
            if lo == hi and math.isfinite(lo) and not marked:
                bad = int(self._n_bad[j])
                every = f"every event but {bad} not finite" if bad else "every event"
                leave = (
                    "if the panel does not use it, leave it out of QC (cytokit gate: "
                    f"--qc-exclude {name}; a study: [acquisition_qc] exclude_channels)"
                )
                if lo >= self.plan.top[j]:  # at its top, the margin check off: saturated
                    out.append(
                        f"{name} is at its top ({lo:g}) in {every} (saturated: a gain or "
                        f"voltage too high), so its signal could not be checked; {leave}"
                    )
                    continue
                out.append(
                    f"{name} reads {lo:g} in {every} (a detector that measured nothing: "
                    f"switched off, or not connected), so its signal could not be checked; "
                    f"{leave}"
                )
        return out

    def _mark_margins_again(self) -> None:
        """Clear every margin mark and make them again over all rows with the channels and
        limits as they are now (a second read of the rows: only when they changed)."""
        self.reasons &= np.uint8(~self._bit & 0xFF)
        if not self._cols.shape[0]:
            return
        res = margin_scan(
            self.sample.events, self._cols, self._top, self._floor, self.reasons, bit=self._bit
        )
        self._n_top, self._n_floor, self._n_bad = res["top"], res["floor"], res["not_finite"]
        self._max, self._min, self._at_min = res["max"], res["min"], res["at_min"]

    def _pile_floors(self) -> tuple[tuple[float, ...], tuple[str, ...]]:
        """Floors of linear float scatter channels clipped at their smallest value (0 or
        below, at least two events exactly there); their events are marked now."""
        floor, rule = list(self.plan.floor), list(self.plan.floor_rule)
        for j, pile in enumerate(self.plan.pile_floor):
            low, n = float(self._min[j]), int(self._at_min[j])
            if pile and low <= 0 and n >= 2:
                col = self.sample.events[:, self.plan.columns[j]]
                self.reasons[col == low] |= MARGIN
                self._n_floor[j] = n
                floor[j] = low
                rule[j] = f"{low:g}, where {n} events pile (the channel is clipped there)"
        return tuple(floor), tuple(rule)

    # -- decisions -----------------------------------------------------------------
    def _time_problem(self) -> str | None:
        s = self.sample
        named = self.settings.time_channel
        if self.tcol is None and named is not None:
            # the message a study's or a batch's check gives a name none of its files has
            pairs = [(c.name, c.marker) for c in s.channels]
            return unknown_exclusions([named], pairs, "acquisition_qc.time_channel", 1)[0]
        if self.tcol is None:
            why = "the file has no Time channel ($PnN 'Time' or $PnTYPE 'Time')"
            # a name that says time but is not 'Time' ('Time (s)', 'HDR-T'): the user sees
            # why the clock was not read, and how to have it read
            near = clock_names(s.channels)
            if near:
                names = ", ".join(repr(n) for n in near[:3])
                why += (
                    f"; {names} {'is' if len(near) == 1 else 'are'} not read as one (to read "
                    f"it, name it: study.toml [acquisition_qc] time_channel = {near[0]!r}, "
                    f"or cytokit gate --qc-time {near[0]!r})"
                )
            return why
        clock = s.channels[self.tcol]
        if s.scaled and clock.is_log:
            # decoded as 10 ** (f1 · x / $PnR): a clock's ticks read on a curve, not times
            n = self.tcol + 1
            return (
                f"the Time channel declares log amplification ($P{n}E = "
                f"{clock.log_decades:g},{clock.log_offset:g}), which a clock cannot have, and "
                "its values were decoded as a log scale, so they are not the events' times "
                f"(the file's $P{n}E should be 0,0; with the API, read it with scale=False "
                "to check its stored ticks)"
            )
        if self._decreases:
            i = self._first_decrease
            ev = s.events
            was = float(ev[i - 1, self.tcol]) if i > 0 else math.nan
            now = float(ev[i, self.tcol])
            at = -1
            if not math.isfinite(now) or (i > 0 and not math.isfinite(was)):
                at = i if not math.isfinite(now) else i - 1
            elif not self._reordered():  # a NaN or an infinity after a fall of the clock
                finite = np.isfinite(ev[:, self.tcol])
                at = -1 if finite.all() else int(np.argmin(finite))
            if at >= 0:
                return (
                    f"the Time channel's value at event {at} is {float(ev[at, self.tcol]):g}, "
                    "not a time, so the events' acquisition order is unknown"
                )
            # a counter that wraps at its range (or a file of acquisitions joined) starts
            # again near 0: say so, it is the likely cause
            if self._reordered():
                # not a restart or two: the rows themselves were put in another order
                wrap = " (the events were reordered, as a program that sorts or merges them does"
                if self._sort_keys:
                    keys = ", ".join(self._sort_keys)
                    wrap += f": they are in the order of {keys}'s values"
                wrap += ")"
            elif self._glitches():
                n = self._decreases
                return (
                    f"the Time channel decreases {n} time(s), first at event {i} ({was:g} -> "
                    f"{now:g}): {'one event stands' if n == 1 else f'{n} events stand'} out "
                    "of line with the times of the events beside "
                    f"{'it' if n == 1 else 'them'} (a clock that misread, not a restart), and "
                    "these checks need every event's time in order"
                )
            elif was > 0 and now < 0.5 * was:
                wrap = (
                    " (the clock starts again: a counter that wrapped around at its range, "
                    "or acquisitions joined in one file)"
                )
            else:
                wrap = ""
            return (
                f"the Time channel decreases {self._decreases} time(s), first at event {i} "
                f"({was:g} -> {now:g}), so the events are not in "
                f"acquisition order{wrap}"
            )
        return self._far_end()

    def _far_end(self) -> str | None:
        """The first or the last event's time far beyond the others' (ten times their span
        away): one misread time, not a paused acquisition nor a clock's coarse float32."""
        t = self.sample.events[:, self.tcol]
        if t.shape[0] < 3:
            return None
        first, second, last_but, last = (float(t[i]) for i in (0, 1, -2, -1))
        for at, value, near, span in (
            (t.shape[0] - 1, last, last_but, last_but - first),
            (0, first, second, last - second),
        ):
            # an infinite end is named by the grid's own check ("not a time")
            if span > 0 and math.isfinite(value) and abs(value - near) > 10 * span:
                return (
                    f"the Time channel's value at event {at} ({value:g}) lies far beyond the "
                    "other events' times (more than ten times their span away): one time "
                    "misread, and these checks need every event's time within the run"
                )
        return None

    def _glitches(self) -> bool:
        """Every fall of the Time channel is one event out of line with its neighbours:
        later than both (the event before the fall) or earlier than both (the event after
        it), a misread time, not a restart or a reordering."""
        t = self.sample.events[:, self.tcol]
        n = t.shape[0]
        i = np.flatnonzero(t[1:] < t[:-1]) + 1  # the event after each fall
        if not i.size:
            return False
        ahead = np.zeros(i.shape[0], dtype=bool)
        behind = np.zeros(i.shape[0], dtype=bool)
        a = i >= 2
        ahead[a] = t[i[a] - 2] <= t[i[a]]
        b = i + 1 < n
        behind[b] = t[i[b] + 1] >= t[i[b] - 1]
        behind[~b] = True  # the last event: no later one to start again from
        return bool(np.all(ahead | behind))

    def _stored_spacing(self, step: float | None) -> float:
        """How far apart the file's own float32 time values are at its last tick (seconds;
        0 when it stores them otherwise, or the step is not known)."""
        s = self.sample
        if step is None or str(s.keyword("$DATATYPE", "")).upper() != "F" or not s.n_events:
            return 0.0
        ends = s.events[[0, -1], self.tcol].astype(np.float64)
        if not np.isfinite(ends).all():
            return 0.0
        ticks = float(np.abs(ends).max()) / step
        return float(np.spacing(np.float32(min(ticks, 3e38)))) * step

    def _unusable_step(self, grid: TimeGrid) -> list[str]:
        """A note when the times are in the clock's own units: the file gives a $TIMESTEP
        that is not a positive number, or the clock is a channel the settings name; a QC
        table read alone would not say why."""
        step = self.sample.keyword("$TIMESTEP")
        if grid.seconds is None and time_column(self.sample) != self.tcol:
            name = self.sample.channels[self.tcol].name
            return [
                f"the time was read from {name!r} (acquisition_qc.time_channel), whose unit "
                "the file does not state: the removed ranges' times are in its own units"
            ]
        if grid.seconds is not None or step is None or not str(step).strip():
            return []
        return [
            f"$TIMESTEP = {str(step).strip()!r} is not a positive number of seconds: the "
            "removed ranges' times are in the clock's own units"
        ]

    def _implausible_span(self, grid: TimeGrid) -> list[str]:
        """A note when the run seems to last over a day, or under 1 ms: its $TIMESTEP
        is likely wrong."""
        if grid.seconds is None:
            return []
        span = float(grid.to_seconds(grid.end - grid.origin))
        step = self.sample.keyword("$TIMESTEP") or self.sample.keyword("CYTOKIT_TIMESTEP")
        key = "$TIMESTEP"
        if step is None and bd_tick(self.sample) is not None:  # the seconds came from it
            key, step = "TIMETICKS", self.sample.keyword("TIMETICKS")
        if span > MAX_RUN_SECONDS:
            how = f"{span:.3g} s ({span / 86400:.3g} days) by {key} = {step}, longer"
        elif span < MIN_RUN_SECONDS:
            how = f"{span:.3g} s by {key} = {step}, shorter"
        else:
            return []
        return [
            f"the acquisition lasts {how} than any tube runs: check {key} (the removed "
            "ranges' times are in those seconds)"
        ]

    def _with_channels(self, checks: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
        """`checks` without the signal and margin checks when no channel is left for them to
        read (every measured channel excluded by the settings, or none is a measurement),
        and a note that says why: they did not run, as the rate and signal checks of a file
        without a Time channel did not, and their counts are not zeros."""
        read = [c for c in ("signal", "margins") if c in checks]
        if self.plan.columns or not read:
            return checks, []
        mark = " (excluded by the settings)"
        by_settings = [e for e in self.plan.excluded if e.endswith(mark)]
        others = [e for e in self.plan.excluded if not e.endswith(mark)]
        if by_settings:
            n = len(by_settings)
            why = (
                f"exclude_channels leaves out {'the' if n == 1 else f'all {n}'} measured "
                f"channel{'' if n == 1 else 's'} of the file"
            )
            if others:
                why += f" (the rest are not measurements: {', '.join(others)})"
            why += (
                "; leave out of exclude_channels (and cytokit gate's --qc-exclude) the "
                "channels to check"
            )
        elif others:
            why = f"the file has no measured channel ({', '.join(others)})"
        else:
            why = "the file has no channel but its Time channel"
        what = " and ".join(read)
        return tuple(c for c in checks if c not in read), [f"{what} not checked: {why}"]

    def finish(self) -> AcquisitionQC:
        """Decide and return the result (after every row was fed to `update`)."""
        s = self.sample
        n = s.n_events
        if self._next != n:
            raise CytokitError(
                f"{s.name}: acquisition QC scanned {self._next} of {n} events; feed every row "
                "to update() before finish()"
            )
        st = self.settings
        run: list[str] = []
        notes: list[str] = []
        margins = None
        notes += self._drop_clocks()
        checks, unread = self._with_channels(st.checks)
        notes += unread
        if self._bit == _SCRATCH:  # read for the channels' ranges only: nothing is marked
            self.reasons &= np.uint8(~_SCRATCH & 0xFF)
        # a detector that measured nothing, whichever checks run (none could judge it)
        flat = self._flat() if checks else []
        if "margins" in checks:
            run.append("margins")
            notes += self._no_tops()
            notes += self._drop_unbounded_tops()
            floor, floor_rule = self._pile_floors()
            p = self.plan  # every planned channel is checked for margins
            margins = MarginTable(
                p.names,
                self._n_top.copy(),
                self._n_floor.copy(),
                self._n_bad.copy(),
                tuple(float(x) for x in self._top),
                floor,
                tuple(
                    r if math.isfinite(t) else ""
                    for r, t in zip(p.top_rule, self._top, strict=True)
                ),
                floor_rule,
            )
        bins = None
        ranges: tuple[FlaggedRange, ...] = ()
        timed = [c for c in ("rate", "signal") if c in checks]
        if timed:
            problem = self._time_problem()
            grid: TimeGrid | str | None = None
            if problem is None:
                step = clock_step(s, self.tcol)
                grid = plan_grid(
                    s.events,
                    self.tcol,
                    time_axis(s, self.tcol),
                    step=step,
                    stored_spacing=self._stored_spacing(step),
                )
                if isinstance(grid, str):
                    problem = grid
            if problem is not None:
                name = s.channels[self.tcol].name if self.tcol is not None else "Time"
                if name != "Time":  # which channel was read as the time, when not plain "Time"
                    problem += f" (the time channel read: {name})"
                what = " and ".join(timed)
                notes.append(f"{what} not checked: {problem}")
            else:
                bins, ranges = self._decide(grid, timed)
                run += timed
                notes += self._unusable_step(grid) + self._implausible_span(grid)
        if n == 0:
            # nothing was measured: no check counts a 0 of 0 events
            notes.append("the file has no events")
            run, margins = [], None
        order = [c for c in ("rate", "signal", "margins") if c in run]
        return AcquisitionQC(
            file=s.name,
            n_events=n,
            reasons=self.reasons,
            settings=st,
            checks_run=tuple(order),
            notes=tuple(notes),
            bins=bins,
            ranges=ranges,
            margins=margins,
            trends=tuple(self._trends),
            finite_columns=tuple(int(c) for c in self._cols) if "margins" in run else (),
            flat=tuple(flat),
        )

    def _decide(self, grid: TimeGrid, timed: list[str]):
        s = self.sample
        n = s.n_events
        th = self.settings.thresholds
        edges = grid.edges()
        # the clock's own step set the grid (`plan_grid`): event times are read on its
        # ticks, not as float32 rounded them, where a change point is placed
        stated = grid.quantum > 0 and grid.quantum == clock_step(s, self.tcol)
        self._ticks = (grid.origin + grid.quantum / 2, grid.quantum) if stated else None
        # a gap's flank is read in the signal too where the signal is checked (`_guard`)
        self._odd_flanks = "signal" in timed and bool(self.plan.columns)
        self._flanks: dict = {}  # (gap's edge event, side, rate): its flank, read once
        bounds = bin_bounds(s.events, self.tcol, edges)
        bounds[0], bounds[-1] = 0, n  # every event in a bin, whatever float rounding does
        np.maximum.accumulate(bounds, out=bounds)
        counts = np.diff(bounds)
        exposure = grid.exposure()
        centers = edges[:-1] + exposure / 2
        bits = np.zeros(grid.n_bins, dtype=np.uint8)
        # the acquisition started and stopped within the clock's first and last ticks, at
        # moments the clock cannot tell: those bins may lack up to a tick of exposure (on a
        # coarse clock, where a tick is a bin, the whole bin), with nothing wrong in the flow
        slack = np.zeros(grid.n_bins)
        if grid.quantum > 0:
            slack[0] += grid.quantum
            slack[-1] += grid.quantum
        rate = check_rate(counts, exposure, centers, th, slack=slack)
        if "rate" in timed:
            bits[rate.flagged] |= RATE
        cols = self.plan.columns
        cof = np.asarray(self.plan.cofactor, dtype=np.float64)
        # margin events are not measurements: a bin's level is read without them (floor
        # events bunched in time read as a drop of scatter, and the good events beside them
        # were removed as signal)
        skip = dict(skip=self.reasons, skip_bits=MARGIN)
        values, mean, sd = bin_moments(
            s.events, cols, cof, bounds[:-1], bounds[1:], band=BAND, max_per_bin=MAX_PER_BIN, **skip
        )
        bright = bright_moments(
            s.events, cols, cof, self.plan.top, bounds[:-1], bounds[1:], MAX_PER_BIN, **skip
        )
        # the upper-weighted mean's effective number of values: (Σw)² / Σw² of its rank
        # weights, 3/8 of the values for a ramp over the upper half
        upper = (values * 3) // 8
        # a channel whose bright cells are a few a bin (bright_moments judges none of its
        # bins) weighs them in its upper half's mean too, which then jumps with their
        # number: only the mean of all values is judged there
        upper[:, ~(bright[0] > 0).any(axis=0)] = 0
        count = np.stack((values, upper, bright[0]), axis=2)
        mean = np.concatenate((mean, bright[1][:, :, None]), axis=2)
        sd = np.concatenate((sd, bright[2][:, :, None]), axis=2)
        # the bright level judges a stretch off it (a gain changed for a while) on
        # fluorescence only: on scatter it moves with the share of granulocytes or monocytes
        fluo = np.asarray([r == "fluorescence" for r in self.plan.roles], dtype=bool)
        # a bin between two of the rate's flagged bins (a clog's turn from slow flow to its
        # burst, whose count is about the usual) holds the clog's events: not read either
        enclosed = _one_bin_gaps_filled(rate.flagged)
        stab = check_stability(
            count, mean, sd, th, windows=WINDOWS[:1], inputs=~enclosed, stretches=fluo
        )
        # second round: each channel's level from the bins nothing flagged (see the module
        # docstring of cytokit.qc.stability)
        for _ in range(2):
            good = ~(stab.flagged | rate.flagged)
            if not good.any():
                break
            short = ~(stab.spikes | enclosed)
            again = check_stability(
                count, mean, sd, th, reference=good, inputs=short, stretches=fluo
            )
            done = np.array_equal(again.flagged, stab.flagged)
            stab = again
            if done:
                break
        chan_flags = np.zeros_like(stab.channel_flagged)
        if "signal" in timed and cols:
            stab = self._keep_composition(stab, bounds, rate.flagged, cof)
            bits[stab.flagged] |= SIGNAL
            chan_flags = stab.channel_flagged
            # a trend is told of the bins kept: a drift removed is not a trend as well
            left = ~(rate.flagged | stab.flagged)
            for j, name in enumerate(self.plan.names):
                d = trend(mean[:, j, 0], values[:, j], left)
                if np.isfinite(stab.creep[j]):
                    d, how = stab.creep[j], "creeps"
                elif (
                    abs(d) > 2 * th.signal_shift
                    and trend_z(mean[:, j, 0], sd[:, j, 0], values[:, j], left, th) > th.signal_z
                ):  # beyond the chance wander of the cells' mix too
                    how = "moves"
                else:
                    continue
                # a gain change moves the brightest cells' level as well; a change in the
                # share of bright cells does not (cytokit.qc.stability._not_gain)
                bright = trend(mean[:, j, BRIGHT], count[:, j, BRIGHT], left)
                gain = not np.isfinite(bright) or (bright * d > 0 and abs(bright) >= 0.5 * abs(d))
                kept = (
                    ", with no steady part to measure it from, so the creep removes no event"
                    if how == "creeps"
                    else ""
                )
                cause = (
                    "a steady trend; check the instrument"
                    if gain
                    else "its brightest cells do not move with it: not the detector's gain but "
                    "the cells, e.g. settling in the tube or a stain still developing"
                )
                self._trends.append(
                    f"{name}: the signal {how} {math.expm1(d):+.0%} from the first to the last "
                    f"third of the acquisition{kept} ({cause})"
                )
        # the rate's events are those it removes alone (`checks = ["rate"]`): within a
        # longer run of signal-flagged bins (a drift around a clog) a clog's edge bins
        # are inner bins, whose events would all count for the rate, and the change
        # points that place its edges on their own would not be read. The good bins
        # between two flagged runs are kept, however few (PeacoQC's consecutive bins
        # took the steady flow between close bubbles: benchmarks/README.md)
        alone = bits & RATE
        base = rate.expected / np.maximum(exposure, 1e-300)
        runs = self._runs(bits, bounds, edges, base)
        rate_runs = runs if np.array_equal(alone, bits) else self._runs(alone, bounds, edges, base)
        runs = _trim(runs, rate_runs, bits, bounds)
        self._mark(rate_runs, alone, bounds)
        self._mark(runs, bits & SIGNAL, bounds)
        runs = _cover(runs, rate_runs)
        for _, _, first, stop, *_ in runs:
            # removed only because a run of signal-flagged bins joins the rate's stretch
            # (its change point): they count for the signal
            part = self.reasons[first:stop]
            part[(part & (RATE | SIGNAL)) == 0] |= SIGNAL
        table = BinTable(
            grid,
            bounds,
            counts,
            rate.expected,
            rate.z,
            bits,
            self.plan.names,
            cof,
            values,
            mean,
            sd,
            stab.level,
            stab.z,
            chan_flags if "signal" in timed and cols else None,
        )
        return table, self._ranges(table, runs)

    def _keep_composition(self, stab, bounds, rate_flagged, cof):
        """The stability check without the stretches a change in the mix of cells flagged.

        Each stretch a channel flags (of at least 3 bins beside the rate's and
        the single-bin spikes; two stretches with only such bins between them,
        a bubble's or a clog's, or one bin, are one; a shorter stretch is read
        over the stretch that every channel's flags hold it in, and what is read
        there clears its own bins only; spikes in a string, `_in_strings`, are
        not single bins but a change the channels flagged bin by bin, as a
        change of mix in a short file is) is read again from its values, against the
        bins nothing flagged, the way its summaries moved
        (`cytokit.qc.shape.follows`; a fluorescence stretch it reads as a gain,
        or cannot read, is read again within cells of like scatter,
        `_within_scatter`, and did not move where its values stayed there).
        Where they did not move, the stretch is read again in pieces of
        `cytokit.qc.shape.PIECE` such bins (a shorter last piece joins the one
        before), each either way and within scatter cells too: the channel's
        flags go over every piece whose values did not move either, but for
        its spikes, and stay over a piece that moved (a gain changed within
        a longer change of mix). Single bins are left as they are: a bubble's
        disturbed flank holds a few events measured badly among good ones,
        whose values lie where the rest's do too.
        """
        chan = stab.channel_flagged.copy()
        ev = self.sample.events
        # bins flagged alone in a string (`_in_strings`) are a stretch the channels flagged
        # bin by bin (a change too short for a window, or left out of the windows as spikes
        # in a round before), not a bubble's or a burst's single bins
        spikes = stab.spikes & ~_in_strings(stab.spikes)
        solid = ~(spikes | rate_flagged)
        least = self.settings.thresholds.signal_shift
        top = self.plan.top

        def rows(bins):  # the rows read of `bins`, without margin events
            r = rows_of(bounds, bins)
            return r[(self.reasons[r] & MARGIN) == 0]

        ref = rows(np.flatnonzero(~(stab.flagged | rate_flagged)))
        whole = list(contiguous_runs(_bridged(stab.flagged, solid)))
        still = self._within_scatter(ref, cof, least)
        for j, col in enumerate(self.plan.columns):
            judged = np.isfinite(stab.level[j])
            if not judged.any():
                continue  # no series of the channel is judged: it flags nothing
            rest = ev[ref, col]
            alone = spikes & stab.channel_flagged[:, j]  # the channel's own spikes
            for own in contiguous_runs(_bridged(chan[:, j], solid)):
                a, e = own
                bins = np.flatnonzero(solid[a:e]) + a
                if bins.size < MIN_STRETCH:
                    # too short to read alone: read over the stretch the file's flags hold
                    # it in (other channels' flags beside it), where that is long enough;
                    # what is read there clears this stretch's flags only
                    a, e = next(((p, q) for p, q in whole if p <= a and e <= q), own)
                    bins = np.flatnonzero(solid[a:e]) + a
                    if bins.size < MIN_STRETCH:
                        continue
                lead = _lead(stab.deviation[:, j], bins, judged)
                r = rows(bins)
                moved = follows(ev[r, col], rest, cof[j], top[j], least, lead)
                if moved is not False and not still(r, j, lead):
                    continue
                cuts = list(range(0, bins.size, PIECE))
                if len(cuts) > 1 and bins.size - cuts[-1] < 3:
                    cuts.pop()
                ends = [a] + [int(bins[c]) for c in cuts[1:]] + [e]
                for i, c in enumerate(cuts):
                    piece = bins[c : cuts[i + 1]] if i + 1 < len(cuts) else bins[c:]
                    r = rows(piece)
                    moved = follows(ev[r, col], rest, cof[j], top[j], least)
                    if moved is not True or still(r, j, _lead(stab.deviation[:, j], piece, judged)):
                        lo, hi = max(ends[i], own[0]), min(ends[i + 1], own[1])
                        chan[lo:hi, j] = alone[lo:hi]
        return dataclasses.replace(stab, channel_flagged=chan, flagged=chan.any(axis=1))

    def _within_scatter(self, ref, cof, least):
        """``still(rows, j, towards)``: whether fluorescence channel `j`'s values in a
        stretch's event `rows` stayed within their scatter cells while its summaries moved
        by `towards` (`cytokit.qc.shape.ScatterCells.still`), where the forward and side
        scatter did not move as a gain moves them there (`follows` says so of neither).
        False for any other channel, and everywhere in a file without forward and side
        scatter (an area read first; a detector reading one value is passed over)."""
        names, roles, columns = self.plan.names, self.plan.roles, self.plan.columns
        ev, top = self.sample.events, self.plan.top
        if ref.size < CELL_VALUES * SCATTER_CELLS**2:
            return lambda r, j, towards: False

        def varies(i):  # not a dead detector: two values or more in the reference rows
            x = ev[ref, columns[i]]
            x = x[np.isfinite(x)]
            return x.size > 0 and x.min() < x.max()

        scatter = []
        for k in ("FS", "SS"):  # FSC-A, SSC-A; Beckman's FS INT, SS INT
            found = [i for i, r in enumerate(roles) if r == "scatter" and names[i].upper()[:2] == k]
            found.sort(key=lambda i: not names[i].upper().endswith("-A"))  # areas first
            scatter += [i for i in found if varies(i)][:1]
        if len(scatter) < 2:
            return lambda r, j, towards: False
        (jf, cf), (js, cs) = ((i, columns[i]) for i in scatter)
        cells = None  # made when a stretch is first read so
        levels = {}  # channel -> its reference means per cell
        steady = {}  # rows -> the scatter there did not move as a gain does

        def still(r, j, towards):
            nonlocal cells
            if roles[j] != "fluorescence":
                return False
            if cells is None:
                cells = ScatterCells(ev[ref, cf], ev[ref, cs], (cof[jf], cof[js]))
            if not all(np.isfinite(e).all() for e in cells.edges):
                return False
            col = columns[j]
            if j not in levels:
                levels[j] = cells.reference(ev[ref, col], cof[j])
            where = cells.cells(ev[r, cf], ev[r, cs])
            if not cells.still(levels[j], ev[r, col], where, cof[j], towards):
                return False
            key = (int(r[0]), int(r[-1]), int(r.size))
            if key not in steady:
                steady[key] = all(
                    follows(ev[r, c], ev[ref, c], cof[i], top[i], least) is False
                    for i, c in ((jf, cf), (js, cs))
                )
            return steady[key]

        return still

    def _mark(self, runs, bits, bounds) -> None:
        """Set each run's events' reasons: the bits of the flagged bin each lies in (or,
        before the run's first bin or after its last, of that bin)."""
        for a, b, first, stop, *_ in runs:
            for j in range(a, b):
                lo, hi = max(bounds[j], first), min(bounds[j + 1], stop)
                if hi > lo:
                    self.reasons[lo:hi] |= bits[j]
            if first < bounds[a]:  # the run starts in the bin before its first flagged bin
                self.reasons[first : bounds[a]] |= bits[a]
            if stop > bounds[b]:
                self.reasons[bounds[b] : stop] |= bits[b - 1]

    def _runs(self, bits, bounds, edges, base_rate):
        """Runs of flagged bins: (a, b, first_event, stop_event, start_time, end_time).

        Where a run starts or ends with a rate-flagged bin next to a good one, the
        boundary is placed at the event where the rate changes (`change_point` over
        the two bins around it), not at the bin edge.
        """
        nb = bits.shape[0]
        out = []
        j = 0
        while j < nb:
            if not bits[j]:
                j += 1
                continue
            a = j
            while j < nb and bits[j]:
                j += 1
            b = j
            first, stop = int(bounds[a]), int(bounds[b])
            start_t, end_t = float(edges[a]), float(edges[b])
            if a > 0 and bits[a] & RATE:
                deep = self._depth(bits, bounds, edges, a, b, base_rate[a - 1], True)
                first, start_t = self._refine(
                    bounds, edges, a - 1, a + deep - 1, base_rate[a - 1], True
                )
            if b < nb and bits[b - 1] & RATE:
                deep = self._depth(bits, bounds, edges, a, b, base_rate[b], False)
                stop, end_t = self._refine(bounds, edges, b - deep, b, base_rate[b], False)
            if stop < first or end_t < start_t:
                # a short run's two change points crossed: it is its bins, as found
                first, stop = int(bounds[a]), int(bounds[b])
                start_t, end_t = float(edges[a]), float(edges[b])
            # a run's edge at a gap (a bubble, a pause) takes the events beside it too
            guard, pauses = [0.0, 0.0], []
            if a > 0 and bits[a] & RATE:
                first, start_t, guard[0], pause = self._guard(
                    first, start_t, base_rate[a - 1], True
                )
                pauses.append(pause)
            if b < nb and bits[b - 1] & RATE:
                stop, end_t, guard[1], pause = self._guard(stop, end_t, base_rate[b], False)
                pauses.append(pause)
            if out and first < out[-1][3]:  # a guard reaching into the run before it
                first, start_t = out[-1][3], out[-1][5]
            if stop > first:  # a run the change points leave no event of removes nothing
                gaps = tuple(sorted({x for x in pauses if x is not None}))
                out.append((a, b, first, stop, start_t, end_t, max(guard), gaps))
        return out

    def _guard(self, at: int, when: float, base: float, starting: bool):
        """(event, time, guard, pause) of a run's edge widened where it lies at a gap.

        A bubble or a pause leaves a stretch without events, which the rate check flags;
        but its flagged bins hold no event, and the change points put the run's edges at
        the gap's (or a few events off it), so a gap beside steady flow removed nothing
        and no range told of it. The events just beside a gap are the disturbed ones
        (air in the flow cell slows and upsets the stream as it comes and goes). A gap is
        a pause between two events within `GAP_NEAR_EVENTS` events of the run's edge
        event `at` (either side of it) longer than `GAP_EVENTS` events at the usual rate
        `base` and `GAP_RATIO` times the mean pause between the 20 events on its far side
        (a slow flow's long pauses are chance; a mean, as a clock's ticks make most
        pauses 0), and longer than the clock's step (the smallest pause read); of
        several, the one nearest the run's outside. The edge then moves out beyond the
        gap over its flank (`cytokit.qc.flank`: the longer of the stretches the
        `GAP_FLANK_EVENTS` events there show slow or odd), and at
        least over `GAP_GUARD_EVENTS` events' time at that rate
        (``guard``: how far, in the time column's unit; ``pause``: the gap's start and
        length in that unit; 0 and None where the edge is not at a gap).
        """
        n = self.sample.events.shape[0]
        if not (base > 0 and 0 < at < n):
            return at, when, 0.0, None
        least = GAP_GUARD_EVENTS / base
        reach = GAP_NEAR_EVENTS + 20  # the pauses looked at, and the far side's 20
        if starting:
            lo, hi = max(at - reach - GAP_FLANK_EVENTS, 0), min(at + reach + 1, n)
        else:
            lo, hi = max(at - reach - 1, 0), min(at + reach + GAP_FLANK_EVENTS, n)
        t = self._times(lo, hi)
        d = np.diff(t)
        # pauses between events i and i + 1 (relative) within GAP_NEAR_EVENTS of the edge
        near = np.arange(
            max(at - 1 - GAP_NEAR_EVENTS - lo, 0), min(at - 1 + GAP_NEAR_EVENTS - lo + 1, d.size)
        )
        long = self._long_pauses(d, near, base)
        # nearest the run's outside first: the first going into the run from its start,
        # the last from its end
        for j in long if starting else long[::-1]:
            j = int(j)
            far = d[j + 1 : j + 21] if starting else d[max(j - 20, 0) : j]
            if far.size and not d[j] > GAP_RATIO * float(np.mean(far)):
                continue
            # the events beyond the gap, going away from it, up to the next long pause
            # (`GAP_FLANK_EVENTS`)
            x = t[j] - t[j::-1] if starting else t[j + 1 :] - t[j + 1]
            x = x[: GAP_FLANK_EVENTS + 1]
            cut = np.flatnonzero(np.diff(x) * base > GAP_EVENTS)
            x = x[: int(cut[0]) + 1] if cut.size else x
            key = (lo + j, starting, base)  # the rate's runs and all runs share edges
            if key not in self._flanks:
                odd = self._odd_flank(lo + j, x.shape[0], starting)
                self._flanks[key] = max(slow_flank(x), odd)
            k = self._flanks[key]
            width = max(float((x[k - 1] + x[k]) / 2) if k else 0.0, least)
            if starting:  # the events after t[j] - width: a whole tick at most
                k = lo + int(np.searchsorted(t, t[j] - width, side="right"))
                if k >= at:  # the run already holds the events before the gap
                    return at, when, 0.0, None
                return k, min(when, float(t[j] - width)), width, (float(t[j]), float(d[j]))
            k = lo + int(np.searchsorted(t, t[j + 1] + width, side="left"))
            if k <= at:
                return at, when, 0.0, None
            return k, max(when, float(t[j + 1] + width)), width, (float(t[j]), float(d[j]))
        return at, when, 0.0, None

    def _odd_flank(self, edge: int, m: int, starting: bool) -> int:
        """`odd_flank` of the `m` events from event `edge` (the last before a gap where
        `starting`, else the first after it) going away from the gap, on the checked
        channels' asinh scale; 0 where the signal is not checked."""
        if not self._odd_flanks or m < 2:
            return 0
        rows = np.arange(edge, edge - m, -1) if starting else np.arange(edge + 1, edge + 1 + m)
        rows = rows[(rows >= 0) & (rows < self.sample.events.shape[0])]
        cof = np.asarray(self.plan.cofactor, dtype=np.float64)
        cols = list(self.plan.columns)
        v = np.arcsinh(np.asarray(self.sample.events[rows][:, cols], np.float64) / cof)
        return odd_flank(v, (self.reasons[rows] & (MARGIN | _SCRATCH)) == 0)

    @staticmethod
    def _long_pauses(d: np.ndarray, at: np.ndarray, base: float) -> np.ndarray:
        """Of the pauses `d` between successive events (time column units), those at
        positions `at` longer than `GAP_EVENTS` events at the usual rate `base` and than
        1.5 clock steps (the smallest pause read: on a clock of coarse ticks, many events
        a tick, the step between two ticks is no pause; a gap leaves a tick empty)."""
        step = float(d[d > 0].min()) if np.any(d > 0) else 0.0
        return at[(d[at] * base > GAP_EVENTS) & (d[at] > 1.5 * step)]

    @staticmethod
    def _depth(bits, bounds, edges, a, b, base, starting) -> int:
        """How many flagged bins the edge's change point reads: 1, or 2 when the run has a
        second bin off the usual rate in the same direction. The first flagged bin may be
        mostly normal (flagged because it dips a little where the anomaly starts near its
        end): read alone, its rate is close to the usual one and the split is left to
        noise; with the next bin the anomaly's own rate places it. An edge bin whose
        signal departs too holds disturbed events on both sides of the rate change (a
        bubble's slow, dimmed flank before its gap): it is read alone."""
        edge, next_ = (a, a + 1) if starting else (b - 1, b - 2)
        if b - a < 2 or bits[edge] & SIGNAL:
            return 1
        rates = [
            (bounds[j + 1] - bounds[j]) / max(float(edges[j + 1] - edges[j]), 1e-300)
            for j in (edge, next_)
        ]
        same = (rates[0] - base) * (rates[1] - base) > 0
        return 2 if same else 1

    def _times(self, i0: int, i1: int) -> np.ndarray:
        """The time column of events `i0` .. `i1` - 1 (float64), on the clock's ticks where
        the file states them (float32 times read back between ticks)."""
        t = np.asarray(self.sample.events[i0:i1, self.tcol], dtype=np.float64)
        if self._ticks is not None:
            first, q = self._ticks
            t = first + np.round((t - first) / q) * q
        return t

    def _refine(self, bounds, edges, first_bin, last_bin, base, starting):
        """(event, time) of the rate change within bins `first_bin` .. `last_bin`: the good
        bin at the start (`starting`) or the end of them, the rest flagged."""
        i0, i1 = int(bounds[first_bin]), int(bounds[last_bin + 1])
        lo, hi = float(edges[first_bin]), float(edges[last_bin + 1])
        t = self._times(i0, i1)
        f0, f1 = (first_bin + 1, last_bin + 1) if starting else (first_bin, last_bin)
        w = float(edges[f1] - edges[f0])
        n_in = int(bounds[f1] - bounds[f0])
        rate_in = n_in / w if w > 0 else 0.0
        k = 0
        for _ in range(3):  # the flagged bin's rate, re-estimated on its side of the split
            if starting:
                k = change_point(t, lo, hi, base, rate_in)
                tau = t[k] if k < t.shape[0] else hi
                span = hi - tau
                rate_in = (t.shape[0] - k) / span if span > 0 else rate_in
            else:
                k = change_point(t, lo, hi, rate_in, base)
                tau = t[k] if k < t.shape[0] else hi
                span = tau - lo
                rate_in = k / span if span > 0 else rate_in
        tau = float(t[k]) if k < t.shape[0] else hi
        if starting and k > 0:
            tau = float((t[k - 1] + t[k]) / 2) if k < t.shape[0] else hi
        elif not starting and 0 < k < t.shape[0]:
            tau = float((t[k - 1] + t[k]) / 2)
        return i0 + k, tau

    def _ranges(self, b: BinTable, runs) -> tuple[FlaggedRange, ...]:
        out = []
        for a, e, first, stop, t0, t1, guard, gaps in runs:
            union = int(np.bitwise_or.reduce(b.bits[a:e]))
            parts = []

            def seconds(x, t0=t0):
                return float(b.grid.to_seconds(t0 + x) - b.grid.to_seconds(t0))

            if union & RATE:
                said = [seconds(x) for _, x in gaps] or self._pauses(b, a, e, first, stop)
                parts.append(self._rate_detail(b, a, e, said))
            if guard > 0:
                parts.append(
                    f"with the events within {seconds(guard):.3g} {b.grid.unit} beside the gap"
                    + ("s" if len(gaps) > 1 else "")
                )
            if union & SIGNAL:
                parts.append(self._signal_detail(b, a, e))
            out.append(
                FlaggedRange(
                    float(b.grid.to_seconds(t0)),
                    float(b.grid.to_seconds(t1)),
                    int(first),
                    int(stop),
                    reason_names(union),
                    "; ".join(p for p in parts if p),
                    (int(a), int(e)),
                )
            )
        return tuple(out)

    def _pauses(self, b: BinTable, j: int, k: int, first: int, stop: int) -> list[float]:
        """Seconds (or time units) of the gaps within a range of bins `j` .. `k` - 1 with no
        gap at its edges (`_guard`): pauses between its events `first` .. `stop` - 1 and
        the event on either side longer than `GAP_EVENTS` events at the usual rate, 1.5
        clock steps and `GAP_RATIO` times the mean pause of the 20 events on each side (a
        clog's slow flow has long pauses by chance). A gap reaches into the bins beside
        the empty ones, so the empty bins' time says less than it, and a gap shorter than
        a bin leaves none empty."""
        widths = np.diff(b.grid.edges())[j:k]
        base = float(np.median(b.expected[j:k] / np.maximum(widths, 1e-300)))
        n = self.sample.events.shape[0]
        lo, hi = max(first - 21, 0), min(stop + 21, n)
        d = np.diff(self._times(lo, hi))
        out = []
        # pause i lies between events lo + i and lo + i + 1
        at = np.arange(max(first - 1 - lo, 0), min(stop - lo, d.size))
        for i in self._long_pauses(d, at, base):
            x = float(d[i])
            sides = [d[max(i - 20, 0) : i], d[i + 1 : i + 21]]
            usual = max((float(np.mean(v)) for v in sides if v.size), default=0.0)
            if x > GAP_RATIO * usual:
                out.append(float(b.grid.to_seconds(x) - b.grid.to_seconds(0.0)))
        return out

    @staticmethod
    def _rate_detail(b: BinTable, j: int, k: int, gaps=()) -> str:
        sel = (b.bits[j:k] & RATE) != 0
        c = b.counts[j:k][sel].astype(float)
        e = np.maximum(b.expected[j:k][sel], 1e-12)
        ratio = c / e
        lo, hi = float(ratio.min()), float(ratio.max())
        text = (
            f"rate {lo:.2f}x"
            if math.isclose(lo, hi, rel_tol=0.05)
            else f"rate {lo:.2f}x to {hi:.2f}x"
        )
        text += " the expected"
        empty = np.flatnonzero((b.counts[j:k] == 0) & sel)
        if gaps:  # the pauses themselves (`_guard`, `_pauses`), not the empty bins within them
            said = ", ".join(f"{g:.3g}" for g in gaps[:-1])
            said = f"{said} and {gaps[-1]:.3g}" if len(gaps) > 1 else f"{gaps[0]:.3g}"
            text += f", no events at all for {said} {b.grid.unit} ("
            text += "a gap)" if len(gaps) == 1 else "gaps)"
        elif empty.size:
            edges = b.grid.to_seconds(b.grid.edges())
            span = float(np.sum(edges[j + empty + 1] - edges[j + empty]))
            text += f", no events at all for {span:.3g} {b.grid.unit} (a gap)"
        return text

    @staticmethod
    def _signal_detail(b: BinTable, j: int, k: int) -> str:
        items = b.signal_channels(j, k)
        text = ", ".join(f"{name}{what} {math.expm1(dev):+.0%}" for name, what, dev in items[:4])
        more = f" and {len(items) - 4} more" if len(items) > 4 else ""
        return f"signal vs the stable level: {text}{more}" if text else ""


def _lead(deviation: np.ndarray, bins: np.ndarray, judged: np.ndarray) -> float:
    """How far a channel's series that moved most over `bins` moved (its median
    deviation there; `deviation` is the channel's, bins × series)."""
    d = np.median(deviation[bins][:, judged], axis=0)
    return float(d[np.argmax(np.abs(d))])


def _one_bin_gaps_filled(flags: np.ndarray) -> np.ndarray:
    """`flags` with each unflagged bin between two flagged ones set."""
    out = flags.copy()
    out[1:-1] |= flags[:-2] & flags[2:]
    return out


def _in_strings(lone: np.ndarray) -> np.ndarray:
    """Bins of `lone` in a string of at least `MIN_STRETCH` of them, each at most one bin
    from the next."""
    near = _one_bin_gaps_filled(lone)  # a string's gap of one bin
    out = np.zeros(lone.shape[0], dtype=bool)
    for a, e in contiguous_runs(near):
        if np.count_nonzero(lone[a:e]) >= MIN_STRETCH:
            out[a:e] = lone[a:e]
    return out


def _bridged(flags: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """`flags` with the bins between two flagged ones filled where none of them is
    `solid`, or where only one bin lies between them: a stretch that a bubble's or a
    clog's bins (the rate's), or one bin its noise left unflagged, cut in two is read as
    one, on the values of both sides."""
    out = flags.copy()
    idx = np.flatnonzero(flags)
    for p, q in itertools.pairwise(idx):
        if q - p == 2 or (q - p > 1 and not solid[p + 1 : q].any()):
            out[p + 1 : q] = True
    return out


def acquisition_qc(sample: Sample, settings: AcquisitionQCSettings | None = None) -> AcquisitionQC:
    """Acquisition QC of a sample: flow rate, signal stability and margin events.

    Parameters
    ----------
    sample : Sample
        As `cytokit.read_fcs` gives it (scale values), or stored values.
    settings : AcquisitionQCSettings, optional
        Which checks, how sensitive, when a file fails (default: all checks,
        normal sensitivity, fail above 20 % removed, warn above 2 %). QC runs
        whatever ``settings.enabled`` says: that switch is for callers such as
        `cytokit.analyze` (`screen` refuses settings that turn QC off).

    Returns
    -------
    AcquisitionQC
        ``reasons`` per event (0 = keep), the per-file summary and verdict,
        the flagged time ranges and the per-bin series.

    Examples
    --------
    >>> qc = acquisition_qc(cytokit.read_fcs("a.fcs"))          # doctest: +SKIP
    >>> qc.verdict, qc.pct_removed, qc.ranges_frame()           # doctest: +SKIP
    >>> kept = sample.events[qc.keep]                           # doctest: +SKIP
    """
    p = AcquisitionPass(sample, settings)
    p.update(0, sample.n_events)
    return p.finish()
