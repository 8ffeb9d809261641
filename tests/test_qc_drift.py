"""Signal drift that brightens late in the run: the level the run started at is the stable one.

A lab reads a drift as a departure from the level the acquisition started at
and held longest. When a laser's detectors creep brighter over the last part
of a run, the bin means of a drifting channel spread along the drift, and a
level taken from the densest half of them (or the median of all) lies partway
along it: QC then flagged the undisturbed start and kept the drifted end, or
flagged nothing. Here one simulated file gets a linear brightening of the red
laser's detectors (APC, APC-H7: only CD3+ and CD8+ cells are bright there)
from 40 % of the run to its end, and QC is scored against the simulator's
per-event truth (`cytokit.simulate.anomalies.Drift`; an event is a drift
event when its gain is off by >= 10 %). One 30,000-event file per case:
seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from cytokit import simulate
from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.simulate import anomalies as A

N_EVENTS = 30_000


def drifted(seed: int, change: float):
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, N_EVENTS)
    seconds = A.duration(sample)
    plan = A.AnomalyPlan(drifts=(A.Drift(0.4 * seconds, change, A.LASERS["red"]),))
    return A.inject(sample, plan, np.random.default_rng(seed))


# 8732 and 8735: the densest half of the drifting bins was the drifted end, so the start
# was removed and the end kept; 8740: nothing was flagged; 8713: a dimming drift
@pytest.mark.parametrize(
    ("seed", "change"), [(8732, 0.40), (8735, 0.40), (8740, 0.40), (8713, -0.35)]
)
def test_late_drift_is_flagged_and_the_early_level_kept(seed, change):
    sample, truth = drifted(seed, change)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    untouched = truth.gain == 1.0  # before the drift starts
    assert 0.25 < drift.mean() < 0.6, drift.mean()  # the truth the test is about
    assert untouched.mean() > 0.35
    # the start of the run is the stable level: (almost) none of it removed (the
    # population mix wanders, so the run may begin a few bins before the gain is off)
    assert removed[untouched].mean() < 0.1, removed[untouched].mean()
    # the drifted part is what goes, the end of the run above all
    assert removed[drift].mean() > 0.9, removed[drift].mean()
    assert removed[-N_EVENTS // 5 :].mean() > 0.95
    tp = int(np.sum(removed & drift))
    f1 = 2 * tp / (removed.sum() + drift.sum())
    assert f1 > 0.8, f1
