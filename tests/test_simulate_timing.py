"""Time-structured populations in the simulator: same cells and arrivals, another order."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit import simulate
from cytokit.errors import StudyError
from cytokit.simulate.timing import Enrichment, place, selected

WINDOW = (4.0, 7.5)


@pytest.fixture(scope="module")
def design():
    return simulate.preset_design("sample", seed=4242, n_patients=2)


def donor_day(design):
    """A (patient, day) whose NK/CIK hold donor cells."""
    for spec, day in design.samples():
        if day >= 7:
            return spec, day
    raise AssertionError("no sample after day 7")


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_enriched_cells_are_denser_in_the_window_by_the_factor_and_nothing_else_changes(
    design, factor
):
    spec, day = donor_day(design)
    plan = Enrichment(("NK", "CIK"), window=WINDOW, factor=factor, donor=True)
    base, t0 = simulate.simulate_sample(design, spec.id, day, 60_000, keep_signals=True)
    moved, t1 = simulate.simulate_sample(
        design, spec.id, day, 60_000, keep_signals=True, timing=plan
    )
    # the same cells and the same arrival times: only which cell arrives when differs
    assert t1.counts() == t0.counts() and t1.donor_counts() == t0.donor_counts()
    np.testing.assert_array_equal(moved.events[:, -1], base.events[:, -1])
    key0 = np.lexsort(base.events[:, :-1].T)
    key1 = np.lexsort(moved.events[:, :-1].T)
    np.testing.assert_array_equal(base.events[key0, :-1], moved.events[key1, :-1])
    # every row carries its own truth along (label, donor, noiseless signals)
    np.testing.assert_array_equal(t0.label[key0], t1.label[key1])
    np.testing.assert_array_equal(t0.donor[key0], t1.donor[key1])
    np.testing.assert_array_equal(t0.signals[key0], t1.signals[key1])
    t = moved.events[:, -1] * design.timestep
    inside = (t >= WINDOW[0]) & (t < WINDOW[1])
    sel0, sel1 = selected(plan, t0.label, t0.donor), selected(plan, t1.label, t1.donor)
    assert sel1.sum() > 300
    before = sel0[inside].mean() / sel0[~inside].mean()
    after = sel1[inside].mean() / sel1[~inside].mean()
    assert before == pytest.approx(1.0, abs=0.25)
    assert after == pytest.approx(factor, rel=0.03)
    # recipient NK are not what was asked for: their share inside the window falls, never rises
    rec = selected(Enrichment(("NK",), WINDOW, 1.0, donor=False), t1.label, t1.donor)
    assert rec[inside].mean() <= rec[~inside].mean() * 1.05


def test_place_is_reproducible_and_a_factor_of_one_changes_nothing(design):
    spec, day = donor_day(design)
    a, _ = simulate.simulate_sample(
        design, spec.id, day, 20_000, timing=Enrichment(("CIK",), WINDOW, 3.0)
    )
    b, _ = simulate.simulate_sample(
        design, spec.id, day, 20_000, timing=Enrichment(("CIK",), WINDOW, 3.0)
    )
    np.testing.assert_array_equal(a.events, b.events)
    base, truth = simulate.simulate_sample(design, spec.id, day, 20_000)
    ev = base.events.copy()
    n = place(
        ev,
        truth.label.copy(),
        truth.donor.copy(),
        Enrichment(("NK",), WINDOW, 1.0),
        np.random.default_rng(0),
        timestep=design.timestep,
    )
    assert n == 0
    np.testing.assert_array_equal(ev, base.events)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"populations": ("NKT",)}, "unknown population 'NKT'"),
        ({"window": (5.0, 2.0)}, r"window \(5.0, 2.0\) must be 0 <= start < end"),
        ({"factor": 0.5}, "factor = 0.5 must be a number >= 1"),
    ],
)
def test_bad_enrichments_say_what_is_wrong(kwargs, match):
    args = {"populations": ("NK",), "window": (1.0, 2.0), "factor": 2.0} | kwargs
    with pytest.raises(StudyError, match=match):
        Enrichment(**args)


def test_a_study_with_timing_writes_truth_that_matches_its_files(design, tmp_path):
    from cytokit import read_fcs
    from cytokit.simulate.events import load_truth

    small = simulate.preset_design("sample", seed=4243, n_patients=1, n_events=8_000, days=(14,))
    out = simulate.simulate_study(
        tmp_path / "s", small, timing=lambda spec, day: Enrichment(("NK",), (0.5, 1.5), 4.0)
    )
    fcs = sorted((out / "fcs").glob("*.fcs"))
    assert len(fcs) == 1
    sample = read_fcs(fcs[0])
    truth = load_truth(fcs[0].with_suffix(".truth.npz"))
    plan = Enrichment(("NK",), (0.5, 1.5), 4.0)
    t = sample.events[:, -1]
    inside = (t >= 0.5) & (t < 1.5)
    sel = np.isin(truth.label, plan.codes)
    assert sel[inside].mean() / sel[~inside].mean() == pytest.approx(4.0, rel=0.1)
