"""Whether a stretch's signal moved because the detector did or because the cells did.

The stability check (`cytokit.qc.stability`) reads each bin through a few
summaries of a channel's values: the mean of all, of the upper half, the
brightest cells' level. A change of gain moves every one of them, and so
does a change in the mix of cells: where donor NK cells arrive in a burst
(settling, carry-over), the upper half of CD56 holds more bright cells and
its mean rises by as much as a gain of 1.9 would move it, and the brightest
cells' level, a weighted mean of the bright populations, moves with their
shares. Summaries of a bin cannot tell the two apart; the values pooled over
the stretch can.

A gain ``g`` multiplies every value, so on the ``asinh(x / cofactor)``
scale each positive population of the stretch sits ``log g`` further along
than in the rest of the file. A change in the mix leaves every population
where it was and changes how many cells each holds. The slope of a log
density does not see how many cells a population holds (a share multiplies
the density, which adds a constant to its log), only where its sides rise
and fall: so the stretch's slope lies on the rest's unmoved where the mix
changed, and on the rest's moved by ``log g`` where the gain did, whatever
the shares (`follows`). Only values at or above `LOW` are read: the
negative cells sit at 0 on this scale whatever the gain, and a gain widens
their spread rather than moving it.

A flagged stretch whose values lie better where they are than moved the
way its summaries went (by at least the sensitivity's ``signal_shift``) is
the sample's composition, not the detector, and acquisition QC keeps it
(`cytokit.qc.scan`). A stretch with fewer than `MIN_VALUES` such values on
either side is not judged this way, and keeps its flags.

The slopes cannot tell a gain from a change in the share of a population
that is positive at its own level: where granulocytes, dimmer than the
lymphocytes on HLA-A2, grow in share, the positive values' shape slides
towards theirs as a gain would slide it. Such populations differ in
scatter, and the cells within one part of the scatter plane differ little
in the marker: so a fluorescence stretch is read once more within cells of
like scatter (`ScatterCells`, `SCATTER_CELLS` quantiles of forward and side
scatter a side, from the bins nothing flagged). Its values' mean departure
from their scatter cell's mean in those bins stays where it was when the
cells' mix changed, and moves as the gain does when the detector changed
(every value's own move, ``asinh(x / c) - asinh(x / (g c))``, averaged over
the stretch's values, so a marker positive on few cells is not mistaken for
a small move). A stretch whose mean departure is less than `STILL_SHARE` of
that move, and at least `STILL_SDS` standard errors short of it, is a change
of mix there; the caller reads it so only where the scatter itself did not
move as a gain does (`follows` on forward and side scatter), since a laser's
drift moves the scatter it shares and with it the cells the values fall in.
"""

from __future__ import annotations

import numpy as np

from cytokit.stats.density import gaussian_smooth

__all__ = [
    "CELL_VALUES",
    "CLEARER",
    "LOW",
    "MIN_STRETCH",
    "MIN_VALUES",
    "PIECE",
    "REACH",
    "SCATTER_CELLS",
    "STEP",
    "STILL_SDS",
    "STILL_SHARE",
    "STILL_VALUES",
    "ScatterCells",
    "follows",
    "rows_of",
]

#: Values below this (asinh scale, 3.6 cofactors) are not compared: the negative cells'
#: spread, which a gain widens rather than moves, and the dim edge, where a gain moves a
#: value by less than ``log g``.
LOW = 2.0
#: Histogram step (asinh units) of the pooled densities.
STEP = 0.02
#: The largest move looked for (asinh units: a gain of 0.37 to 2.7).
REACH = 1.0
#: Fewest bins of a stretch read this way (acquisition QC's `_keep_composition`); a
#: shorter one keeps its flags, so the stability check flags no shorter drift over the
#: run's end sixth (`cytokit.qc.stability._end_line`).
MIN_STRETCH = 3
#: A stretch read as a change of mix is read again in pieces of this many bins (the
#: stability check's shortest window): a gain changed within it is a piece of its own.
PIECE = 9
#: A piece's move, looked for either way, is read where the slopes lie at least this
#: much closer moved than unmoved: a change of mix left 0.77-1.8 of the unmoved distance
#: moved (9-bin pieces of bursts), a gain of 1.35 or 0.75 0.02-0.55.
CLEARER = 0.7
#: Fewest positive values (at or above `LOW`) on each side for a shift to be read.
MIN_VALUES = 200
#: Quantile cells a side of the scatter plane (forward × side) a stretch is read within
#: (`ScatterCells`).
SCATTER_CELLS = 6
#: Fewest reference values a scatter cell needs for the stretch's values in it to be read.
CELL_VALUES = 20
#: Fewest values of a stretch read within scatter cells.
STILL_VALUES = 100
#: A stretch's mean departure within scatter cells below this share of a gain's move is
#: none. 5th-95th percentiles over the stretches read (20,000-event files): granulocytes
#: 2.5 times their share left 0.01-0.08 of it, a gain changed for a while 0.64-1.14, a
#: red- or violet-laser drift 0.66-1.09 (all 0.66 or more). A blue-laser drift moves the
#: scatter too, and there the share says nothing (-0.78 to 0.50): the caller does not
#: read a stretch so where the scatter moved as a gain does.
STILL_SHARE = 0.3
#: ... and it must lie this many standard errors short of the gain's move.
STILL_SDS = 5.0
_SMOOTH = 4.0  # Gaussian kernel SD in steps
_FLOOR = 0.01  # of the density's top, added before its log (no data: a flat slope)
_EDGE = 0.3  # asinh units read beyond the compared range (the smoothing's edge)
_CAP = 100.0  # (per asinh unit)^2: a slope difference counts at most this
_MOST = 40_000  # reference values read at most (evenly spaced rows)


def rows_of(bounds: np.ndarray, bins: np.ndarray, most: int = _MOST) -> np.ndarray:
    """The event rows of `bins` (indices into ``bounds``' bins), at most `most`, evenly
    spaced over them."""
    bins = np.asarray(bins, dtype=np.int64)
    if bins.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts, stops = bounds[bins], bounds[bins + 1]
    n = stops - starts
    total = int(n.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # the k-th row over the bins, for the ranks kept, without listing every row first (a
    # stretch of a 10-million-event file holds millions: 80 MB a temporary)
    cum = np.cumsum(n)
    k = np.arange(total) if total <= most else (np.arange(most) * total) // most
    b = np.searchsorted(cum, k, side="right")
    return starts[b] + (k - (cum - n)[b])


def _density(t: np.ndarray, lo: float, n: int) -> np.ndarray:
    """Histogram of `t` on ``n`` steps from `lo`, smoothed (a Gaussian of `_SMOOTH` steps)."""
    i = np.floor((t - lo) / STEP).astype(np.int64)
    return gaussian_smooth(np.bincount(i[(i >= 0) & (i < n)], minlength=n), _SMOOTH)


def _costs(stretch, rest, cofactor: float, top: float, most: float) -> np.ndarray | None:
    """Per shift ``d`` (steps of `STEP`, -most .. most): how far the slope of the stretch's
    log density lies from the rest's moved by ``d``, over the stretch's values at or above
    `LOW` (a mean of squared differences, each capped, weighted by where both sides hold
    values); None where either side holds fewer than `MIN_VALUES` values there.

    `stretch` and `rest` are a channel's scale values; non-finite ones and those at or
    above `top` (saturated) are left out.
    """
    lo = LOW - most - _EDGE
    sides = []
    for x in (stretch, rest):
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x) & (x < top)]
        t = np.arcsinh(x / cofactor)
        sides.append(t[t >= lo])
    if min(int(np.count_nonzero(side >= LOW)) for side in sides) < MIN_VALUES:
        return None
    hi = max(float(side.max()) for side in sides) + _EDGE
    n = int((hi - lo) / STEP) + 1
    k = int(np.ceil(most / STEP))
    start = round((LOW - lo) / STEP)
    if n - start < 3:
        return None
    slopes, dens = [], []
    for side in sides:
        f = _density(side, lo, n)
        f /= f.max()
        dens.append(f)
        slopes.append(np.gradient(np.log(f + _FLOOR)) / STEP)
    (g_s, g_r), (f_s, f_r) = slopes, dens
    idx = np.arange(start, n)
    # every shift at once (a row each): the rest's step each of the stretch's steps is
    # compared with, and where that lies outside the histogram, a weight of 0
    src = idx[None, :] - np.arange(-k, k + 1)[:, None]
    ok = (src >= 0) & (src < n)
    src = np.clip(src, 0, n - 1)
    w = np.where(ok, np.sqrt(f_s[idx][None, :] * f_r[src]), 0.0)
    diff = np.minimum((g_s[idx][None, :] - g_r[src]) ** 2, _CAP)
    total = w.sum(axis=1)
    cost = np.full(2 * k + 1, np.inf)
    np.divide((w * diff).sum(axis=1), total, out=cost, where=total > 0)
    return cost


def follows(
    stretch, rest, cofactor: float, top: float, least: float, towards: float | None = None
) -> bool | None:
    """Whether a stretch's values moved along the asinh scale, as a gain moves them.

    Parameters
    ----------
    stretch, rest : ndarray
        A channel's values (scale values) in the stretch and in the bins
        nothing flagged; non-finite values and values at or above `top`
        (saturated) are left out.
    cofactor, top : float
        The channel's asinh cofactor and the top of its range.
    least : float
        The smallest move read as one (the sensitivity's ``signal_shift``).
    towards : float, optional
        How far the stretch's summaries moved (asinh units): the move is then
        looked for their way only, by `least` to twice `towards` (or
        `towards` and 0.3 more; `towards` read as at most 1, e-fold), and
        counts where it lies closer than unmoved. Without it, either way up
        to `REACH`, and it counts where it lies closer by a factor `CLEARER`
        (a piece of a stretch, whose own move may go against its
        summaries').

    Returns
    -------
    bool or None
        True where the slope of the stretch's log density lies closer to the
        rest's moved than unmoved (as above): a gain. False otherwise: a
        change in the mix of cells. None where either side holds fewer than
        `MIN_VALUES` values at or above `LOW`, or `towards` is 0.
    """
    if towards is None:
        reach, factor = REACH, CLEARER
    elif np.isfinite(towards) and towards != 0:
        # a summary that moved further than a gain would (the brightest cells' level of
        # a channel whose few bright cells a burst of others dilutes, -98 %) is read as
        # a gain of e-fold: the shifts looked for stay where a detector's could be
        towards = float(np.clip(towards, -1.0, 1.0))
        reach, factor = max(2.0 * abs(towards), abs(towards) + 0.3), 1.0
    else:
        return None
    cost = _costs(stretch, rest, cofactor, top, reach)
    if cost is None:
        return None
    k = (cost.size - 1) // 2
    d = (np.arange(cost.size) - k) * STEP
    moved = np.abs(d) >= least
    if towards is not None:
        moved &= d * towards > 0
    if not np.isfinite(cost[k]) or not np.isfinite(cost[moved]).any():
        return None
    return bool(np.nanmin(np.where(moved, cost, np.nan)) < factor * cost[k])


class ScatterCells:
    """Cells of like forward and side scatter, to read a fluorescence stretch within.

    The cells are `SCATTER_CELLS` quantiles of each scatter channel on the
    asinh scale, so each holds a like share of the reference events.

    Parameters
    ----------
    forward, side : ndarray
        Forward and side scatter values of the reference events (the bins
        nothing flagged, without margin events).
    cofactors : tuple of float
        The two channels' asinh cofactors.
    """

    def __init__(self, forward, side, cofactors: tuple[float, float]) -> None:
        self.cofactors = (float(cofactors[0]), float(cofactors[1]))
        f, s = self._scaled(forward, side)
        qs = np.linspace(0.0, 1.0, SCATTER_CELLS + 1)[1:-1]
        with np.errstate(invalid="ignore"):
            self.edges = (np.nanquantile(f, qs), np.nanquantile(s, qs))
        self.ref_cells = self.cells(forward, side)

    def _scaled(self, forward, side) -> tuple[np.ndarray, np.ndarray]:
        f = np.arcsinh(np.asarray(forward, dtype=np.float64) / self.cofactors[0])
        s = np.arcsinh(np.asarray(side, dtype=np.float64) / self.cofactors[1])
        return f, s

    def cells(self, forward, side) -> np.ndarray:
        """The scatter cell of each event (0 .. ``SCATTER_CELLS**2 - 1``)."""
        f, s = self._scaled(forward, side)
        return np.searchsorted(self.edges[0], f) * SCATTER_CELLS + np.searchsorted(self.edges[1], s)

    def reference(self, rest, cofactor: float) -> np.ndarray:
        """Per scatter cell, the mean of a channel's reference values on the
        ``asinh(x / cofactor)`` scale; NaN in a cell with fewer than `CELL_VALUES` finite
        ones. `rest`: the channel's values of the reference events (as given to the
        constructor, in the same order)."""
        n = SCATTER_CELLS**2
        y = np.arcsinh(np.asarray(rest, dtype=np.float64) / cofactor)
        ok = np.isfinite(y)
        sums = np.bincount(self.ref_cells[ok], y[ok], minlength=n)
        count = np.bincount(self.ref_cells[ok], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count >= CELL_VALUES, sums / count, np.nan)

    def still(self, reference, stretch, cells, cofactor: float, towards: float) -> bool:
        """Whether a stretch's values stayed within their scatter cells while its summaries
        moved by `towards` (asinh units): a change in the mix of cells, not of gain.

        Parameters
        ----------
        reference : ndarray
            The channel's reference means per cell (`reference`).
        stretch, cells : ndarray
            The stretch's values and their scatter cells (`cells`).
        cofactor : float
            The channel's asinh cofactor.
        towards : float
            How far the stretch's summaries moved; the gain read from it is
            ``exp(towards)``, `towards` read as at most 1 either way (e-fold),
            as `follows` reads it.

        Returns
        -------
        bool
            True where the values' mean departure from their cells' reference
            means is less than `STILL_SHARE` of the move that gain makes of
            those values and `STILL_SDS` standard errors short of it; False
            otherwise, or where fewer than `STILL_VALUES` values fall in cells
            holding `CELL_VALUES` reference values or more.
        """
        if not np.isfinite(towards) or towards == 0:
            return False
        x = np.asarray(stretch, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(reference[cells])
        if np.count_nonzero(keep) < STILL_VALUES:
            return False
        x, c = x[keep], cells[keep]
        y = np.arcsinh(x / cofactor)
        away = y - reference[c]
        moved = float(away.mean())
        se = float(away.std()) / np.sqrt(away.size)
        gain = np.exp(float(np.clip(towards, -1.0, 1.0)))
        gain_move = float(np.mean(y - np.arcsinh(x / (gain * cofactor))))
        return bool(
            abs(moved) < STILL_SHARE * abs(gain_move) and abs(gain_move - moved) > STILL_SDS * se
        )
