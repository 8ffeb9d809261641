"""The outcome simulator: reproducible, readable by the clinical readers, and true to its model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cytokit import StudyError
from cytokit.clinical import read_outcomes, read_treatments, segment_days
from cytokit.simulate.outcomes import OutcomeModel, simulate_bags, simulate_cohort, write_cohort


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(OutcomeModel(n_patients=200, seed=11))


def test_same_model_same_cohort(cohort):
    again = simulate_cohort(OutcomeModel(n_patients=200, seed=11))
    pd.testing.assert_frame_equal(again.outcomes, cohort.outcomes)
    pd.testing.assert_frame_equal(again.points, cohort.points)
    other = simulate_cohort(OutcomeModel(n_patients=200, seed=12))
    assert not other.outcomes.equals(cohort.outcomes)


def test_written_cohort_passes_the_readers(cohort, tmp_path):
    written = write_cohort(tmp_path, cohort)
    assert set(written) >= {
        "treatments.csv",
        "outcomes.csv",
        "persistence.csv",
        "truth/outcomes.csv",
    }
    treatments = read_treatments(tmp_path / "treatments.csv", patients=cohort.strata)
    outcomes = read_outcomes(tmp_path / "outcomes.csv", patients=cohort.strata)
    assert len(outcomes) == 200 and len(treatments) == len(cohort.treatments)
    model = json.loads((tmp_path / "truth" / "outcome_model.json").read_text())
    assert model["hazard_ratio"] == 0.5 and model["seed"] == 11
    # IL-2 is a drug: NK patients have one persistence segment, at day 0
    nk = cohort.truth.loc[cohort.truth["arm"] == "NK", "patient"]
    segments = segment_days(treatments)
    assert all(segments[p] == (0,) for p in nk)


def test_no_cell_infusion_is_given_after_grade_2_gvhd(cohort):
    onsets = cohort.outcomes.set_index("patient")
    given = cohort.treatments[(cohort.treatments["kind"] == "cells")]
    skipped_for_gvhd = 0
    for row in given.itertuples():
        o = onsets.loc[row.patient]
        after = o["agvhd_max_grade"] >= 2 and row.day >= o["agvhd_onset_day"]
        if after:
            assert row.given == "no" and row.skip_reason == "acute GVHD >= II"
            skipped_for_gvhd += 1
        if row.given == "no":
            assert row.skip_reason in ("acute GVHD >= II", "progression", "death")
    assert skipped_for_gvhd > 0
    # and nothing is given after progression
    progressed = onsets["progression_day"].dropna()
    late = given[given["patient"].isin(progressed.index)]
    late = late[late["day"] > late["patient"].map(progressed)]
    assert (late["given"] == "no").all() and len(late) > 0


def test_gvhd_risk_rises_with_the_t_cell_dose(cohort):
    truth = cohort.truth
    rate = truth.groupby("arm")["gvhd_grade"].apply(lambda g: np.mean(g >= 2))
    # NK bags carry ~3x10^4 CD3+ cells/kg; DLI and CIK 10^6-10^7
    assert rate["NK"] < 0.02 < 0.2 < rate["CIK"]
    big = simulate_cohort(OutcomeModel(n_patients=200, seed=11, gvhd_per_1e6=0.12)).truth
    assert np.mean(big.loc[big["arm"] == "CIK", "gvhd_grade"] >= 2) > rate["CIK"]


def test_persisting_cells_are_seen_by_the_landmark_and_no_others(cohort):
    early = cohort.points[(cohort.points["day"] >= 0) & (cohort.points["day"] <= 28)]
    seen = early[early["status"] != "not_detected"].groupby("patient").size()
    truth = cohort.truth.set_index("patient")
    sampled_at_28 = early[early["day"] == 28]["patient"]
    persistent = truth.loc[sampled_at_28, "persistent"]
    assert set(seen.index) <= set(truth.index[truth["persistent"]])
    assert set(persistent.index[persistent]) <= set(seen.index)
    # detection days lie in the model's window
    assert truth["detection_day"].dropna().between(3, 28).all()


def test_model_checks_its_parameters():
    with pytest.raises(StudyError, match="hazard_ratio"):
        OutcomeModel(hazard_ratio=0)
    with pytest.raises(StudyError, match="p_persist"):
        OutcomeModel(p_persist=1.5)


def test_bags_have_the_composition_their_truth_says():
    samples, truth = simulate_bags(50, seed=2)
    assert len(samples) == 100 and set(samples["stage"]) == {"pre", "post"}
    post = samples[samples["stage"] == "post"].set_index("patient")
    t = truth.set_index("patient")
    # observed purity within 3 binomial standard errors of the truth in every bag
    p = t["nk_purity_pct"] / 100
    se = np.sqrt(p * (1 - p) / post["live"])
    assert (np.abs(post["nk"] / post["live"] - p) < 3 * se + 1e-9).mean() > 0.97
    assert (post["nk"] + post["cd3"] <= post["live"]).all()
    assert t["cd3_log_depletion"].between(3.0, 4.5).all()
