"""Function assays: background-subtracted % positive and its interval, against known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cytokit.analysis.function import background_subtracted
from cytokit.errors import CytokitError


def test_worked_example():
    # Newcombe (Stat Med 1998;17:873-890), Table II, example (a): 56/70 vs 48/80, difference
    # 0.2, method 10 interval 0.0524 to 0.3339
    r = background_subtracted(56, 70, 48, 80)
    assert r["pct_net"] == pytest.approx(20.0, abs=1e-9)
    assert r["ci_low"] == pytest.approx(5.24, abs=0.01)
    assert r["ci_high"] == pytest.approx(33.39, abs=0.01)
    assert r["high_background"]  # 60 % positive unstimulated
    # example (h): 0/10 vs 0/20, interval -0.1611 to 0.2775
    r = background_subtracted(0, 10, 0, 20)
    assert r["ci_low"] == pytest.approx(-16.11, abs=0.01)
    assert r["ci_high"] == pytest.approx(27.75, abs=0.01)


@pytest.mark.parametrize(
    ("stim", "unstim"),
    [(0.18, 0.02), (0.35, 0.04), (0.08, 0.06)],  # CD107a, IFN-γ, a weak response
)
def test_net_response_and_coverage_against_truth(stim, unstim):
    rng = np.random.default_rng(77)  # a seed not used while writing the module
    n1, n2, reps = 5000, 5000, 400
    truth = 100 * (stim - unstim)
    close = covered = 0
    for _ in range(reps):
        k1, k2 = int(rng.binomial(n1, stim)), int(rng.binomial(n2, unstim))
        r = background_subtracted(k1, n1, k2, n2)
        close += abs(r["pct_net"] - truth) <= 2.0
        covered += r["ci_low"] <= truth <= r["ci_high"]
    assert close / reps >= 0.95
    assert covered / reps >= 0.90


def test_nothing_measured_and_bad_counts():
    r = background_subtracted(0, 0, 3, 100)
    assert math.isnan(r["pct_net"]) and math.isnan(r["ci_low"]) and not r["high_background"]
    with pytest.raises(CytokitError, match="more positive events than events"):
        background_subtracted(5, 4, 0, 10)
    with pytest.raises(CytokitError, match="events_unstim = -1"):
        background_subtracted(1, 4, 0, -1)
