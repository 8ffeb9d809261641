"""A stretch whose cells changed is kept; a stretch whose detector changed is removed.

Donor NK and CIK cells that arrive in a burst (settling, carry-over) put
more CD56-bright cells into a few seconds of the run: the upper half of
CD56 moves as a gain of 1.9 would, and acquisition QC removed the burst as
a signal change (21.6 % of a clean 50,000-event file, which then failed, in
a check written apart from the simulator), taking the donor cells the lab
came for with it. The values pooled over such a stretch sit where the rest
of the file's do, at other shares; a gain moves them
(`cytokit.qc.shape.follows`).
"""

from __future__ import annotations

import numpy as np
import pytest

from cytokit.qc import SIGNAL, acquisition_qc
from cytokit.qc.shape import ScatterCells, follows
from cytokit.sample import Channel, Sample

# (CD3, CD56) medians of each kind of cell, their share of the events, lognormal SD 0.35
CELLS = {
    "T": ((13_000, 0), 0.45),
    "other": ((0, 0), 0.30),
    "NK dim": ((0, 7_000), 0.14),
    "NK bright": ((0, 45_000), 0.03),
    "CIK": ((10_000, 4_500), 0.04),
    "debris": ((0, 0), 0.04),
}
RATE = 3000.0  # events per second
STEP = 0.01  # $TIMESTEP


def values(rng, medians, n):
    out = np.empty((n, len(medians)))
    for j, m in enumerate(medians):
        out[:, j] = m * np.exp(rng.normal(0, 0.35, n)) if m else rng.normal(120, 160, n)
    return out


def burst_file(
    seed: int, factor: float, n: int = 50_000, gain: float = 1.0, part=(0.0, 1.0)
) -> tuple:
    """A clean file whose NK and CIK cells are `factor` times denser in 3 s of its 16.7 s
    (more events there, as cells that settled arrive on top of the rest); with `gain`,
    CD56's detector reads `gain` times brighter over `part` of those 3 s (shares) as well.
    (sample, the burst's events, the gain's events)"""
    rng = np.random.default_rng(seed)
    kinds = list(CELLS)
    shares = np.array([CELLS[k][1] for k in kinds])
    label = rng.choice(len(kinds), size=n, p=shares / shares.sum())
    seconds = n / RATE
    t = rng.uniform(0, seconds, n)
    a, b = 7.5, 10.5
    burst = np.isin(label, [kinds.index(k) for k in ("NK dim", "NK bright", "CIK")])
    burst &= rng.random(n) < 0.6  # the donor cells
    inside = rng.random(n) < factor * 3 / (factor * 3 + seconds - 3)
    moved = burst & inside
    t[moved] = rng.uniform(a, b, int(moved.sum()))
    scatter = np.column_stack(
        [60_000 * np.exp(rng.normal(0, 0.13, n)), 15_000 * np.exp(rng.normal(0, 0.2, n))]
    )
    marks = np.empty((n, 2))
    for i, k in enumerate(kinds):
        m = label == i
        marks[m] = values(rng, CELLS[k][0], int(m.sum()))
    order = np.argsort(t, kind="stable")
    t = t[order]
    marks = marks[order]
    scatter = scatter[order]
    window = (t >= a) & (t < b)
    lo, hi = a + part[0] * (b - a), a + part[1] * (b - a)
    changed = (t >= lo) & (t < hi)
    marks[changed, 1] *= gain
    ev = np.column_stack([np.floor(t / STEP), scatter, marks]).astype(np.float32)
    ev[:, 1:] = np.minimum(ev[:, 1:], 262_143)
    channels = (
        Channel(0, "Time", range=2**24),
        Channel(1, "FSC-A", range=262_144),
        Channel(2, "SSC-A", range=262_144),
        Channel(3, "APC-A", "CD3", range=262_144),
        Channel(4, "PE-A", "CD56", range=262_144),
    )
    sample = Sample(ev, channels, keywords={"$TIMESTEP": str(STEP)}, scaled=True)
    return sample, window, changed


@pytest.mark.parametrize("seed", [176701, 176702, 176703, 176704])
def test_nk_cells_arriving_in_a_burst_are_kept(seed):
    sample, window, _ = burst_file(seed, 2.7)
    qc = acquisition_qc(sample)
    signal = (qc.reasons & SIGNAL) != 0
    # the burst is the cells, not the detector: it stays, and the file passes or warns (a
    # few single bins at its edges, where the mix jumps, may still go; the whole burst and
    # a failed file went before)
    assert signal[window].mean() < 0.3, qc.ranges_frame()
    assert signal[~window].mean() < 0.01
    assert qc.verdict != "fail"


@pytest.mark.parametrize("seed", [176701, 176702])
def test_a_gain_over_the_burst_is_still_removed(seed):
    sample, window, _ = burst_file(seed, 2.7, gain=1.35)
    qc = acquisition_qc(sample)
    signal = (qc.reasons & SIGNAL) != 0
    assert signal[window].mean() > 0.9, qc.ranges_frame()


# a gain of 1.3 over 0.6 s within the burst, which the whole burst's values did not show:
# the burst is read again in 9-bin pieces, and the gain's pieces moved (before: 10 % and
# none of its events removed)
@pytest.mark.parametrize(("seed", "part"), [(176701, (0.4, 0.6)), (176702, (0.5, 0.65))])
def test_a_gain_within_the_burst_is_removed(seed, part):
    sample, _, changed = burst_file(seed, 2.7, gain=1.3, part=part)
    qc = acquisition_qc(sample)
    signal = (qc.reasons & SIGNAL) != 0
    assert signal[changed].mean() > 0.75, qc.ranges_frame()


def mixture(rng, shares, n, gain=1.0):
    """CD56-like values of three populations (negative, dim, bright) at `shares`."""
    kind = rng.choice(3, size=n, p=np.asarray(shares) / np.sum(shares))
    med = np.array([0.0, 7_000.0, 45_000.0])[kind]
    x = np.where(med > 0, med * np.exp(rng.normal(0, 0.35, n)), rng.normal(120, 160, n))
    return x * gain


def test_follows_tells_a_gain_from_a_change_of_mix():
    rng = np.random.default_rng(176711)
    rest = mixture(rng, (0.7, 0.25, 0.05), 40_000)
    top = 262_143.0
    # more bright cells moved the summaries up by as much as a gain would; the values did not
    mix = mixture(rng, (0.45, 0.35, 0.2), 8_000)
    assert follows(mix, rest, 150.0, top, 0.1) is False
    for gain in (1.35, 0.7):
        moved = mixture(rng, (0.7, 0.25, 0.05), 8_000, gain)
        assert follows(moved, rest, 150.0, top, 0.1) is True
        # a gain the mix changed with it too
        assert follows(mixture(rng, (0.45, 0.35, 0.2), 8_000, gain), rest, 150.0, top, 0.1)
    # too few values at or above LOW to say
    assert follows(mix[:100], rest, 150.0, top, 0.1) is None


def scattered(rng, gran_share, n, gain=1.0):
    """(forward, side, HLA-A2-like values) of lymphocytes and granulocytes: the
    granulocytes scatter more light sideways and sit dimmer, but positive, on the marker."""
    gran = rng.random(n) < gran_share
    fwd = np.where(gran, 90_000.0, 50_000.0) * np.exp(rng.normal(0, 0.12, n))
    side = np.where(gran, 60_000.0, 9_000.0) * np.exp(rng.normal(0, 0.2, n))
    marker = np.where(gran, 15_000.0, 30_000.0) * np.exp(rng.normal(0, 0.4, n))
    return fwd, side, marker * gain


def test_values_read_within_scatter_cells_tell_more_granulocytes_from_a_gain():
    """More granulocytes, dimmer on the marker, slide its positive values down as a
    dimmer gain would (`follows` reads a gain); within cells of like scatter the values
    stay where they were. A gain moves them there too."""
    rng = np.random.default_rng(176712)
    f0, s0, x0 = scattered(rng, 0.3, 30_000)
    cells = ScatterCells(f0, s0, (150.0, 150.0))
    ref = cells.reference(x0, 150.0)
    top = 262_143.0
    f, s, x = scattered(rng, 0.75, 4_000)
    towards = float(np.mean(np.arcsinh(x / 150)) - np.mean(np.arcsinh(x0 / 150)))
    assert towards < -0.25  # the stretch's mean moved down as a gain of 0.78 would
    assert follows(x, x0, 150.0, top, 0.1, towards) is True
    assert cells.still(ref, x, cells.cells(f, s), 150.0, towards) is True
    for gain in (0.75, 1.3):
        f, s, x = scattered(rng, 0.3, 4_000, gain)
        assert not cells.still(ref, x, cells.cells(f, s), 150.0, np.log(gain))
        # and where the mix changed with it
        f, s, x = scattered(rng, 0.75, 4_000, gain)
        assert not cells.still(ref, x, cells.cells(f, s), 150.0, np.log(gain))
    # no move to tell, or too few values
    f, s, x = scattered(rng, 0.75, 4_000)
    assert not cells.still(ref, x, cells.cells(f, s), 150.0, 0.0)
    assert not cells.still(ref, x[:50], cells.cells(f[:50], s[:50]), 150.0, towards)
