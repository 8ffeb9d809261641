"""FMO thresholds: % positive at the control's threshold against the truth threshold's."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from cytokit.analysis.positivity import fmo_threshold, min_control_events
from cytokit.errors import CytokitError

# a marker on a logicle-like scale: negative cells N(0.25, 0.05); the truth threshold is the
# negative population's 99.5th percentile, from its known distribution
NEG = (0.25, 0.05)
TRUTH = NormalDist(*NEG).inv_cdf(0.995)


@pytest.mark.parametrize(
    ("pos", "fraction", "n_fmo"),
    [
        ((0.55, 0.07), 0.05, 3000),  # a bright marker on few cells
        ((0.55, 0.07), 0.3, 3000),
        ((0.55, 0.07), 0.8, 3000),
        ((0.45, 0.06), 0.05, 5000),  # a dim marker overlapping the negatives (no valley)
        ((0.45, 0.06), 0.3, 5000),
    ],
)
def test_positivity_by_fmo_within_1pp_of_truth(pos, fraction, n_fmo):
    # the threshold's sampling error moves % positive by the density of stained events at
    # it: a dim marker on most cells needs ~20,000 control events to stay within 1 pp
    rng = np.random.default_rng(4242)  # a seed not used while writing the module
    worst = 0.0
    for _ in range(50):
        fmo = rng.normal(*NEG, n_fmo)
        n = 10_000
        is_pos = rng.random(n) < fraction
        stained = np.where(is_pos, rng.normal(*pos, n), rng.normal(*NEG, n))
        by_fmo = 100 * np.mean(stained > fmo_threshold(fmo))
        by_truth = 100 * np.mean(stained > TRUTH)
        worst = max(worst, abs(by_fmo - by_truth))
    assert worst <= 1.0, worst


def test_too_few_control_events_is_refused():
    assert min_control_events() == 1000
    with pytest.raises(CytokitError, match=r"fmo\.fcs NK: 999 events, fewer than the 1000"):
        fmo_threshold(np.zeros(999), where="fmo.fcs NK")
    with pytest.raises(CytokitError, match="between 50 and 100"):
        fmo_threshold(np.zeros(5000), percentile=100)
