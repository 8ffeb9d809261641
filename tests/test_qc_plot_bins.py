"""The QC plot's stored series stay bounded for very large files and still show what QC saw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.plots.acquisition import acquisition_figure
from cytokit.qc import acquisition_qc
from cytokit.qc.apply import MAX_PLOT_BINS, coarsen_bins, plot_bins
from cytokit.sample import Channel, Sample

RATE = 4_000.0  # events per second of the steady flow
SLOW = (40.0, 52.0)  # seconds of a clog's slow flow
SLOW_FACTOR = 0.15


def clogged(seconds=100.0, seed=3) -> Sample:
    """Poisson arrivals at `RATE`, slowed to `SLOW_FACTOR` of it inside `SLOW`."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, seconds, int(RATE * seconds)))
    inside = (t >= SLOW[0]) & (t < SLOW[1])
    t = t[~inside | (rng.random(t.shape[0]) < SLOW_FACTOR)]
    n = t.shape[0]
    t = np.floor(t / 0.001) * 0.001
    fsc = rng.lognormal(np.log(60_000), 0.2, n)
    ssc = rng.lognormal(np.log(20_000), 0.4, n)
    fl = np.where(rng.random(n) < 0.3, rng.lognormal(np.log(5_000), 0.3, n), rng.normal(50, 80, n))
    ev = np.column_stack([fsc, ssc, fl, t]).astype(np.float32)
    ch = (
        Channel(0, "FSC-A", range=262_144),
        Channel(1, "SSC-A", range=262_144),
        Channel(2, "FL1-A", "CD3", range=262_144),
        Channel(3, "Time", range=262_144),
    )
    return Sample(ev, ch, keywords={"$DATATYPE": "F", "$TIMESTEP": "0.001"}, scaled=True)


@pytest.fixture(scope="module")
def qc():
    return acquisition_qc(clogged())


def test_many_bins_are_merged_to_the_cap_keeping_events_time_and_the_clog(qc):
    fine = qc.bins_frame()
    assert len(fine) >= 500  # far more bins than the cap below
    values, columns, unit = plot_bins(qc, max_bins=120)
    coarse = pd.DataFrame(values, columns=columns)
    assert len(coarse) <= 120 and unit == "s"
    # every event and the whole acquisition are still there, bins still contiguous
    assert coarse["events"].sum() == qc.n_events == fine["events"].sum()
    assert coarse["start"].iloc[0] == fine["start"].iloc[0]
    assert coarse["end"].iloc[-1] == fine["end"].iloc[-1]
    np.testing.assert_array_equal(coarse["start"].to_numpy()[1:], coarse["end"].to_numpy()[:-1])
    # the plotted rate (events over each row's time) still shows the slow flow: against the
    # simulation's own rates, inside the clog and away from it
    rate = coarse["events"] / (coarse["end"] - coarse["start"])
    inside = (coarse["start"] >= SLOW[0]) & (coarse["end"] <= SLOW[1])
    outside = (coarse["end"] < SLOW[0] - 1) | (coarse["start"] > SLOW[1] + 1)
    assert inside.sum() >= 5 and outside.sum() >= 50
    assert rate[inside].median() == pytest.approx(RATE * SLOW_FACTOR, rel=0.25)
    assert rate[outside].median() == pytest.approx(RATE, rel=0.05)
    # the strongest rate departure survives the merge
    assert np.nanmax(np.abs(coarse["rate_z"])) == np.nanmax(np.abs(fine["rate_z"]))
    # a channel's merged signal lies within its bins' range; the level is unchanged
    for name in qc.bins.channels:
        m = coarse[f"{name} mean"].to_numpy()
        ok = np.isfinite(m)
        assert ok.mean() > 0.9
        lo, hi = np.nanmin(fine[f"{name} mean"]), np.nanmax(fine[f"{name} mean"])
        assert np.all((m[ok] >= lo - 1e-6 * abs(lo)) & (m[ok] <= hi + 1e-6 * abs(hi)))
        assert coarse[f"{name} level"].iloc[0] == fine[f"{name} level"].iloc[0]


def test_the_plot_from_merged_bins_draws_the_drop_and_shades_the_removed_range(qc):
    values, columns, unit = plot_bins(qc, max_bins=120)
    coarse = pd.DataFrame(values, columns=columns).assign(time_unit=unit)
    ranges = qc.ranges_frame()
    assert not ranges.empty
    # the removed range sits on the clog (QC's ranges are not merged)
    assert ranges["start"].min() == pytest.approx(SLOW[0], abs=1.0)
    fig = acquisition_figure(coarse, ranges)
    line = fig.axes[0].lines[0]
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    during = (x > SLOW[0] + 1) & (x < SLOW[1] - 1)
    assert y[during].max() < 0.4 * RATE < 0.8 * RATE < np.median(y)
    assert len(fig.axes[0].patches) >= 1  # the shaded range


def test_small_files_are_stored_as_they_are_and_the_default_cap_holds(qc):
    values, columns, _ = plot_bins(qc)
    fine = qc.bins_frame()
    assert len(fine) <= MAX_PLOT_BINS and values.shape[0] == len(fine)  # stored as it is
    np.testing.assert_array_equal(values[:, list(columns).index("events")], fine["events"])
    frame = pd.DataFrame({"bin": np.arange(5.0), "events": np.ones(5), "oops": np.ones(5)})
    assert coarsen_bins(frame, [], 5) is frame
    with pytest.raises(ValueError, match="no rule to merge column 'oops'"):
        coarsen_bins(frame, [], 2)
