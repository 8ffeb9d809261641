"""Normalisation across days: a stable population's median under ±30 % gain drift."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit.analysis.normalise import QuantileMap, goal_quantiles, quantile_map
from cytokit.errors import CytokitError


def _cv(values) -> float:
    v = np.asarray(values)
    return float(np.std(v, ddof=1) / np.mean(v))


def _days(rng, gains):
    """Per day: the reference aliquot (a PBMC mixture: negative and positive cells) and a
    patient's stable population (true median 2,000, 3 % day-to-day biological variation),
    both read through that day's gain."""
    refs, stable = [], []
    for g in gains:
        ref = np.concatenate(
            [rng.lognormal(np.log(150), 0.6, 3000), rng.lognormal(np.log(3000), 0.5, 3000)]
        )
        cells = rng.lognormal(np.log(2000 * rng.normal(1, 0.03)), 0.5, 2000)
        refs.append(g * ref)
        stable.append(g * cells)
    return refs, stable


@pytest.mark.parametrize("seed", [515, 516, 517])  # seeds not used while writing the module
def test_drift_cv_falls_to_within_1_5x_no_drift(seed):
    rng = np.random.default_rng(seed)
    days = 12
    drift = rng.uniform(0.7, 1.3, days)  # ±30 % gain, day to day
    state = rng.bit_generator.state
    _, stable0 = _days(rng, np.ones(days))
    rng.bit_generator.state = state  # the same cells, read with and without drift
    refs, stable = _days(rng, drift)
    no_drift = _cv([np.median(s) for s in stable0])
    raw = _cv([np.median(s) for s in stable])
    goal = goal_quantiles(refs)
    normalised = _cv(
        [np.median(quantile_map(r, goal)(s)) for r, s in zip(refs, stable, strict=True)]
    )
    assert raw > 3 * no_drift  # the drift is there to remove
    assert normalised <= 1.5 * no_drift, (no_drift, raw, normalised)


def test_map_is_monotone_and_extrapolates():
    m = QuantileMap(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0]))
    np.testing.assert_allclose(m(np.array([0.0, 1.5, 5.0, np.nan])), [0.0, 3.0, 10.0, np.nan])


def test_dead_or_small_reference_is_refused():
    with pytest.raises(CytokitError, match=r"ref\.fcs CD16: 10 events of the reference"):
        quantile_map(np.ones(10), np.linspace(0, 1, 99), where="ref.fcs CD16")
    with pytest.raises(CytokitError, match="same value"):
        quantile_map(np.zeros(1000), np.linspace(0, 1, 99))
