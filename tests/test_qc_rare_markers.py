"""Acquisition QC on markers positive on a few cells a bin (CD107a, IFN-γ, KIRs).

Such a marker's brightest-cells level (`cytokit.qc.stability.bright_moments`) is
that of the one to three positive cells a bin happens to hold: it jumps from bin
to bin with their number, and read as a signal it flagged most of clean
function and receptor files as a drift. Those bins are not judged, and a
channel where they are common has no bright series at all; the checks are
measured on the simulator's clean function and receptor tubes.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import cytokit
from cytokit import simulate
from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.qc.stability import BRIGHT_VALUES, bright_moments
from cytokit.simulate.tubes import add_tubes


def test_a_bins_level_resting_on_a_few_bright_cells_is_not_judged():
    rng = np.random.default_rng(20261204)
    bins, per = 48, 200
    n = bins * per
    dim = rng.lognormal(np.log(150), 0.5, size=(n, 3))
    common = rng.random(n) < 0.3  # a marker on 30 % of the cells: ~60 a bin
    rare = rng.random(n) < 0.007  # one on 0.7 %: 0-4 a bin
    dim[common, 0] = rng.lognormal(np.log(20_000), 0.4, common.sum())
    dim[rare, 1] = rng.lognormal(np.log(20_000), 0.4, rare.sum())
    starts = np.arange(bins) * per
    count, mean, _ = bright_moments(
        dim, [0, 1, 2], np.full(3, 150.0), np.full(3, 262_143.0), starts, starts + per, 1000
    )
    assert (count[:, 0] == per).all() and np.isfinite(mean[:, 0]).all()
    assert (count[:, 2] == per).all()  # no bright cells: the dim cells' level, steady
    assert (count[:, 1] == 0).all()  # the rare marker's channel: no bin judged
    # the rare channel's bins: most rest on fewer than BRIGHT_VALUES values
    x = np.maximum(dim[:, 1].reshape(bins, per), 0)
    few = x.sum(axis=1) ** 2 < BRIGHT_VALUES * (x * x).sum(axis=1)
    assert few.mean() > 0.5


@pytest.fixture(scope="module")
def tube_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("rare") / "s"
    design = simulate.preset_design("sample", seed=108101, n_patients=2, n_events=10_000)
    simulate.simulate_study(out, design)
    add_tubes(out, seed=design.seed, drift=0.3)
    return out


def test_clean_function_and_receptor_files_are_not_flagged(tube_study):
    rows = list(csv.DictReader(open(tube_study / "manifest.csv")))
    tubes = [r for r in rows if r.get("tube") in ("receptors", "stimulated", "unstimulated")]
    assert len(tubes) >= 20
    removed, timed = [], []
    for r in tubes:
        sample = cytokit.read_fcs(tube_study / r["file"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qc = acquisition_qc(sample)
        assert qc.verdict != "fail", (r["file"], qc.verdict_reason)
        assert qc.bins is not None and qc.bins.grid.unit == "s", r["file"]  # $TIMESTEP kept
        removed.append(qc.pct_removed)
        timed.append(100 * np.count_nonzero(qc.reasons & (RATE | SIGNAL)) / qc.n_events)
    assert np.median(removed) <= 0.5, sorted(removed)
    assert max(timed) <= 1.5, sorted(timed)


def test_a_laser_drift_is_still_caught_on_a_channel_with_a_steady_level(tube_study):
    """A gain ramp on every violet detector (+40 % from 40 % of the run to its end) of
    receptor files: the rare receptors' channels are judged on their mean only, and the
    drift is caught on V500-C-A, whose cells give a steady level."""
    import dataclasses

    rows = list(csv.DictReader(open(tube_study / "manifest.csv")))
    files = [r["file"] for r in rows if r.get("tube") == "receptors" and not r.get("control")]
    tp = fp = fn = 0
    for file in [f for f in files if "REF" not in f and "HC" not in f][:4]:
        sample = cytokit.read_fcs(tube_study / file, scale=False)
        names = [c.name for c in sample.channels]
        t = sample.events[:, names.index("Time")].astype(np.float64)
        start = t.min() + 0.4 * (t.max() - t.min())
        gain = 1 + 0.4 * np.clip((t - start) / (t.max() - start), 0, 1)
        events = sample.events.copy()
        for name in names:
            if name.startswith("BV") or name == "V500-C-A":
                events[:, names.index(name)] *= gain.astype(events.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qc = acquisition_qc(dataclasses.replace(sample, events=events))
        got, want = (qc.reasons & SIGNAL) != 0, gain >= 1.1
        tp += int(np.sum(got & want))
        fp += int(np.sum(got & ~want))
        fn += int(np.sum(~got & want))
    assert 2 * tp / (2 * tp + fp + fn) >= 0.9, (tp, fp, fn)
