"""Time bins over the acquisition: a grid aligned to the time channel's resolution.

Bins are equal spans of acquisition time. Their width is a whole number of
the time channel's steps (its *quantum*: the smallest positive difference
between consecutive event times), and the edges sit half a step off the
steps, so every bin holds the same number of clock ticks. Without that, a
width of e.g. 2.5 ticks would give bins of 2 and 3 ticks in turn and a rate
that jumps by ±20 % from bin to bin with nothing wrong in the file.

The number of bins aims at `EVENTS_PER_BIN` events per bin on average,
within `MIN_BINS` .. `MAX_BINS`; files too short (fewer than `MIN_BINS` steps
of their clock, or too few events) get no time bins, and the rate and
stability checks say why instead of running. So do files whose events leave
more than `MAX_EMPTY` of the bins empty: a clock that jumps (a paused
acquisition, or times that are not the acquisition's) leaves the rate check's
line (robust to 29 % of odd bins) and the stability check's levels with too
few bins that hold events, and a file judged on them would read as checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cytokit.kernels.acquisition import bin_bounds

__all__ = [
    "EVENTS_PER_BIN",
    "MAX_BINS",
    "MAX_EMPTY",
    "MIN_BINS",
    "MIN_EVENTS_PER_BIN",
    "TimeGrid",
    "plan_grid",
]

#: Events per bin aimed at (a clog or a bubble then spans many bins of a typical file).
EVENTS_PER_BIN = 200
#: Fewest bins the rate and stability checks need (their baselines are fitted over bins).
MIN_BINS = 16
#: Most bins (beyond this, bins of a large file just hold more events).
MAX_BINS = 1000
#: Fewest events per bin on average.
MIN_EVENTS_PER_BIN = 20
#: Largest share of empty bins the checks run with. A bubble's gap empties a few, up
#: to a third of a short run's (a gap of 0.9 s in 5,000 events acquired in 1.7 s); the
#: rate line rests on the densest half of the filled bins' rates, so that holds.
MAX_EMPTY = 0.4
_PROBE = 100_000  # consecutive events read to find the time quantum


@dataclass(frozen=True)
class TimeGrid:
    """Equal time bins over one acquisition.

    Attributes
    ----------
    origin : float
        The first edge, in the time channel's units.
    width : float
        Bin width, same units (a whole number of `quantum` when that is > 0).
    n_bins : int
    quantum : float
        The time channel's resolution found in the data (0: continuous).
    end : float
        Where the acquisition ends (the last event's time plus half a quantum).
    seconds : float or None
        Seconds per time unit (None when the file does not say).
    """

    origin: float
    width: float
    n_bins: int
    quantum: float
    end: float
    seconds: float | None

    def edges(self) -> np.ndarray:
        """The ``n_bins + 1`` bin edges (float64, time units); the last is `end`."""
        e = self.origin + self.width * np.arange(self.n_bins + 1, dtype=np.float64)
        e[-1] = max(self.end, e[-2] if self.n_bins else e[-1])
        return e

    def exposure(self) -> np.ndarray:
        """Acquisition time each bin covers, time units (the last bin runs to `end`)."""
        return np.diff(self.edges())

    @property
    def unit(self) -> str:
        return "s" if self.seconds is not None else "time units"

    def to_seconds(self, t):
        """`t` in seconds when the unit is known, else unchanged."""
        return t * self.seconds if self.seconds is not None else t


#: Share of the positive time differences that must be whole multiples of a clock step
#: (`time_quantum`), or all but `OFF_GRID_ALLOWED` of them where there are ten times as
#: many: a few values off the grid (a misread, two runs joined a part of a tick apart:
#: two differences each) do not set a finer step, however few ticks the run holds.
ON_GRID_SHARE = 0.95
OFF_GRID_ALLOWED = 8
#: How far from a whole multiple of a step a difference may be, in steps (float32 times
#: differ from their ticks by a rounding).
ON_GRID_TOLERANCE = 0.02
#: Candidate steps `time_quantum` tries (the smallest differences, 1 % apart or more)
#: and the multiples of a step that passes it tries after it.
_CANDIDATES, _MULTIPLES = 32, 10


def _on_grid(d: np.ndarray, q: float) -> bool:
    """Whether nearly all the differences `d` are whole multiples of `q`."""
    r = d / q
    off = int(np.count_nonzero(np.abs(r - np.round(r)) > ON_GRID_TOLERANCE))
    # a few off the grid by count only where there are enough to tell (8 of 10 is no grid)
    few = OFF_GRID_ALLOWED if d.size >= 10 * OFF_GRID_ALLOWED else 0
    return off <= max(few, (1.0 - ON_GRID_SHARE) * d.size)


def time_quantum(times: np.ndarray) -> float:
    """The clock's step in `times`: the smallest positive difference between consecutive
    values of which nearly all the others are whole multiples (`ON_GRID_SHARE`,
    `OFF_GRID_ALLOWED`), or the largest multiple of it (up to `_MULTIPLES`) of which they
    still are; the smallest difference where none is (a continuous clock); 0 when none
    is positive.

    One event whose time was read between two ticks (or two runs joined a part of a
    tick apart) makes differences of a part of a tick: taken for the step, it would make
    bins of 2 and 3 ticks in turn, a rate that jumps by a third. A time a third of a tick
    off makes a step every difference is a multiple of, a third of the tick: its
    multiple, the tick, is the step the others keep to.
    """
    d = np.diff(np.asarray(times, dtype=np.float64))
    d = d[d > 0]
    if not d.size:
        return 0.0
    tried: list[float] = []
    for q in np.unique(d):
        if len(tried) == _CANDIDATES:  # a continuous clock: every difference differs
            break
        if tried and q < tried[-1] * 1.01:  # the same step, rounded otherwise
            continue
        tried.append(float(q))
        if _on_grid(d, q):
            best = float(q)
            for m in range(2, _MULTIPLES + 1):
                if _on_grid(d, m * q):
                    best = float(m * q)
            return best
    return float(d.min())


def plan_grid(
    events: np.ndarray,
    tcol: int,
    seconds: float | None,
    *,
    events_per_bin: int = EVENTS_PER_BIN,
    step: float | None = None,
    stored_spacing: float = 0.0,
) -> TimeGrid | str:
    """The time grid of a file in acquisition order, or the reason there can be none.

    Parameters
    ----------
    events : ndarray, shape (n_events, n_channels)
        Events in nondecreasing time order (checked by the caller).
    tcol : int
        Time column.
    seconds : float or None
        Seconds per time unit.
    events_per_bin : int
        Events per bin aimed at.
    step : float, optional
        The clock's step in the time column's units, as the file states it
        (``$TIMESTEP`` for scale values). Times stored as float32 far from 0
        are rounded to float32's spacing there, so the smallest difference of
        two values is the step give or take that spacing. Where the spacing
        is 1/64 of the step or more (from about 2,000 s of a 0.01 s clock on)
        and the smallest difference is within half a step of the step, the
        step itself (not the rounded values) sets the grid, with edges
        halfway between the ticks (each value is within half the spacing of
        its tick). So it does too where the run has too many ticks for the
        smallest difference to pin the step down and a bin holds fewer than
        50 of them. When the spacing is more than the step and the values sit on
        neighbouring float32 values, ticks are merged unevenly (a value holds
        19 ticks, the next 20) and the file cannot be binned by time (the
        reason says so); values further apart than that are the clock's own.
    stored_spacing : float
        The same for the file's own values: the spacing (time column units) of
        a clock the file stores as float32 ticks, near its last tick (0 when
        stored exactly); a float64 read does not make such ticks apart again.

    Returns
    -------
    TimeGrid, or str
        A sentence saying why the file cannot be binned.
    """
    n = events.shape[0]
    if n < MIN_BINS * MIN_EVENTS_PER_BIN:
        return (
            f"{n} {'event is' if n == 1 else 'events are'} too few for the rate and stability checks "
            f"(they need at least {MIN_BINS * MIN_EVENTS_PER_BIN})"
        )
    t0, t1 = float(events[0, tcol]), float(events[n - 1, tcol])
    for which, i, t in (("first", 0, t0), ("last", n - 1, t1)):
        # a non-finite time elsewhere breaks the order (the caller's check); at an end not
        if not math.isfinite(t):
            return f"the time channel's {which} value (event {i}) is {t:g}, not a time"
    target = min(MAX_BINS, max(MIN_BINS, round(n / events_per_bin)))  # bins aimed at
    q = time_quantum(events[: min(n, _PROBE), tcol])
    stated = None
    if q > 0 and n > _PROBE:
        q = min(q, time_quantum(events[n - min(n, _PROBE) :, tcol]) or q)
    if step is not None and step > 0 and q > 0:
        far = max(abs(t0), abs(t1))
        held = float(np.spacing(np.asarray(far, dtype=events.dtype)))
        # a file that stores its clock as float32 ticks merged them itself, however read
        spacing = max(held, stored_spacing)
        if spacing > step * (1 + 1e-9) and q < 1.5 * spacing:
            unit = "s" if seconds is not None else "time units"
            if stored_spacing >= held:
                where = (
                    f"the file stores its time values as float32 ticks, {spacing:.3g} {unit} "
                    f"apart near {far:.7g} {unit}"
                )
                fix = "the file's own values cannot tell the ticks apart"
            else:
                where = (
                    f"the time channel's values near {far:.7g} {unit} are held as "
                    f"{events.dtype} {spacing:.3g} apart"
                )
                fix = "times far from 0 need float64; with the API, read the file with "
                fix += "dtype=numpy.float64"
            return (
                f"{where}, coarser than the clock's step of {step:g}: its ticks are merged "
                f"unevenly, so the rate per time bin is not known ({fix})"
            )
        ticks_per_bin = (t1 - t0) / target / step
        unpinned = (t1 - t0) * spacing >= step * step / 4  # pinning below can miss a tick
        if q < 1.5 * step and (spacing >= step / 64 or (unpinned and ticks_per_bin < 50)):
            # one tick, give or take a rounding that pinning the step to the span (below)
            # cannot undo over this many ticks, where a bin holds few of them (a tick
            # more or less is a change of rate): the clock's own step, and the span in
            # whole steps
            q = stated = step
    if q > 0 and t1 > t0 and q != stated:
        # a difference of two float32 times is off by up to an ulp of the times; the
        # whole span holds a whole number of steps, which pins the step down (unless it
        # holds a part of one too: two runs joined a part of a tick apart)
        k = (t1 - t0) / q
        if abs(k - round(k)) <= 0.25:
            q = (t1 - t0) / max(1, round(k))
    if stated is not None:
        t1 = t0 + round((t1 - t0) / q) * q
    span = t1 - t0 + q
    if not (math.isfinite(span) and span > 0):
        return f"the time channel does not advance (every event at time {t0:g})"
    if q > 0 and span / q < MIN_BINS - 0.5:
        steps = round(span / q)
        return (
            f"the time channel has only {steps} steps of {q:g} over the acquisition, "
            f"too coarse for the rate and stability checks (they need at least {MIN_BINS})"
        )
    width = span / target
    if q > 0:
        width = max(1, round(width / q)) * q
    # whole bins only: the remainder (less than a bin) joins the last one, so that no
    # bin is a sliver whose few events (the acquisition stopped within its last clock
    # tick) would read as a collapse of the rate
    n_bins = max(1, math.floor(span / width + 1e-9))
    if n_bins < MIN_BINS:
        width = span / MIN_BINS if q == 0 else max(1, math.floor(span / q / MIN_BINS)) * q
        n_bins = max(1, math.floor(span / width + 1e-9))
    origin = t0 - q / 2
    grid = TimeGrid(origin, width, n_bins, q, t1 + q / 2, seconds)
    bounds = bin_bounds(events, tcol, grid.edges())
    filled = int(np.count_nonzero(np.diff(bounds)[: n_bins - 1])) + 1  # the last holds t1
    if filled < (1 - MAX_EMPTY) * n_bins:
        gaps = np.diff(np.asarray(events[:, tcol], dtype=np.float64))
        i = int(np.argmax(gaps))
        jump = grid.to_seconds(float(gaps[i]))
        return (
            f"the events fill only {filled} of the {n_bins} time bins: the time channel "
            f"jumps by {jump:.4g} {grid.unit} at event {i + 1} (a paused acquisition, or "
            "times that are not the acquisition's), and the checks need events over the run"
        )
    return grid
