"""Populations that are not spread evenly over the acquisition time.

The clean simulator draws each event's population independently of its
arrival time, so every time window of a file holds the file's mix. Real
acquisitions drift in composition: cells settle in the tube between mixing
and the end of the run (large or dense cells arrive early or late), and a
sample line carries cells over from the tube before. A clog or bubble then
hits some populations more than others, and removing its time range changes
a population's share (acquisition QC's removed events are not a random
subset of the file).

`Enrichment` says which cells arrive preferentially in which window of the
acquisition: given populations (label names of `cytokit.simulate.LABELS`, or
the aggregates ``NK``, ``T``, ...), only donor or only recipient cells or
both, a window of acquisition seconds, and how much denser those cells are
inside the window than outside it. `place` realises it on freshly generated
events by exchanging whole event rows (every channel but Time, with their
per-event truth) between the window and the rest of the file: the file keeps
exactly the events and arrival times it had, only which cell arrives when
changes, so the population counts and donor fractions of the truth tables
stay what the simulator drew.

Typical use::

    from cytokit import simulate
    from cytokit.simulate.timing import Enrichment

    design = simulate.preset_design("sample", seed=7)
    late_donor_nk = Enrichment(("NK", "CIK"), window=(10.0, 14.0), factor=3.0, donor=True)
    sample, truth = simulate.simulate_sample(design, "P01", 7, 50_000, timing=late_donor_nk)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cytokit._numbers import is_finite_number
from cytokit.errors import StudyError
from cytokit.simulate.model import AGGREGATES, CODE

__all__ = ["TAG_TIMING", "Enrichment", "place", "selected"]

#: Random-stream tag of `place` (`cytokit.simulate.model.stream`; anomalies use 11).
TAG_TIMING = 12


@dataclass(frozen=True)
class Enrichment:
    """Cells of some populations that arrive preferentially in one window of the acquisition.

    Attributes
    ----------
    populations : tuple of str
        Labels (`cytokit.simulate.LABELS`) or aggregates (``"NK"`` = NK_bright +
        NK_dim, ``"T"``, ``"Lymphocytes"``, ``"Leukocytes"``).
    window : (float, float)
        Seconds ``start <= t < end`` on the clean timeline: cells are placed
        before any anomaly is injected, so the window is on the timeline a
        `cytokit.simulate.anomalies.Clog`'s ``start`` and a ``Bubble``'s
        ``at`` use (a clog injected afterwards slows and then speeds up the
        acquisition around itself, moving later events' times).
    factor : float
        Density of those cells among the window's events over their density
        among the other events (>= 1; 1 changes nothing). As many as the
        window's events allow; a window already that dense by chance is left
        as it is.
    donor : bool or None
        Only donor cells (True), only recipient cells (False), or both (None).
    """

    populations: tuple[str, ...]
    window: tuple[float, float]
    factor: float
    donor: bool | None = None

    def __post_init__(self) -> None:
        labels = []
        for name in self.populations:
            if name in AGGREGATES:
                labels += AGGREGATES[name]
            elif name in CODE:
                labels.append(name)
            else:
                known = ", ".join((*CODE, *AGGREGATES))
                raise StudyError(f"Enrichment: unknown population {name!r}; use one of {known}")
        a, b = (*tuple(self.window), None, None)[:2]
        if not (
            is_finite_number(a) and is_finite_number(b) and 0 <= a < b and len(self.window) == 2
        ):
            raise StudyError(f"Enrichment: window {self.window} must be 0 <= start < end seconds")
        if not (is_finite_number(self.factor) and self.factor >= 1):
            raise StudyError(f"Enrichment: factor = {self.factor!r} must be a number >= 1")
        object.__setattr__(self, "_codes", tuple(sorted({CODE[x] for x in labels})))

    @property
    def codes(self) -> tuple[int, ...]:
        """Label codes of the enriched populations."""
        return self._codes  # type: ignore[attr-defined]


def selected(plan: Enrichment, label: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """Bool mask of the events `plan` moves (its populations, donor or recipient as asked)."""
    sel = np.isin(label, np.asarray(plan.codes, dtype=label.dtype))
    if plan.donor is not None:
        sel &= donor if plan.donor else ~donor
    return sel


def place(
    events: np.ndarray,
    label: np.ndarray,
    donor: np.ndarray,
    plan: Enrichment,
    rng: np.random.Generator,
    *,
    timestep: float,
    signals: np.ndarray | None = None,
) -> int:
    """Realise `plan` on generated events, in place; returns the rows exchanged.

    Parameters
    ----------
    events : ndarray, shape (n_events, n_channels)
        Stored values in acquisition order, Time the last column (``$TIMESTEP`` units).
    label, donor : ndarray, shape (n_events,)
        Per-event truth, exchanged with the rows.
    plan : Enrichment
    rng : numpy.random.Generator
        Picks which cells move in and which events they change places with.
    timestep : float
        Seconds per Time unit.
    signals : ndarray, shape (n_events, m), optional
        Further per-event truth exchanged with the rows.

    Notes
    -----
    With ``S`` selected cells among ``N`` events and ``W`` events in the
    window, the window ends with ``x = f S W / (N - W + f W)`` selected cells
    (``f`` the factor; at most ``W`` and ``S``), which makes the density
    inside ``f`` times the density outside. Selected cells outside the window
    change places with unselected events inside it, both drawn at random.
    """
    n = events.shape[0]
    t = events[:, -1].astype(np.float64) * timestep
    inside = (t >= plan.window[0]) & (t < plan.window[1])
    sel = selected(plan, label, donor)
    s, w = int(sel.sum()), int(inside.sum())
    if n and w == 0:
        raise StudyError(
            f"Enrichment: window {plan.window} s holds no event; the acquisition lasts "
            f"{float(t[-1]):.4g} s"
        )
    if plan.factor == 1 or n == 0 or s == 0 or w == 0 or w == n:
        return 0
    f = plan.factor
    x = min(w, s, round(f * s * w / (n - w + f * w)))
    have = int((sel & inside).sum())
    move = min(x - have, int((~sel & inside).sum()), int((sel & ~inside).sum()))
    if move <= 0:
        return 0
    come = np.sort(rng.choice(np.flatnonzero(sel & ~inside), move, replace=False))
    go = np.sort(rng.choice(np.flatnonzero(~sel & inside), move, replace=False))
    cols = events.shape[1] - 1  # Time stays: the arrivals are the same, the cells change
    a, b = events[come, :cols].copy(), events[go, :cols].copy()
    events[come, :cols], events[go, :cols] = b, a
    for arr in (label, donor) + ((signals,) if signals is not None else ()):
        a, b = arr[come].copy(), arr[go].copy()
        arr[come], arr[go] = b, a
    return move
