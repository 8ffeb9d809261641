"""Every clinical table from a simulated cohort, checked against the simulator's truth."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lifelines")

from cytokit.clinical import (
    TABLE_COLUMNS,
    OutcomesSettings,
    analyze_outcomes,
    read_outcomes,
    read_treatments,
)
from cytokit.simulate.outcomes import OutcomeModel, simulate_cohort, write_cohort


@pytest.fixture(scope="module")
def cohort_tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    cohort = simulate_cohort(OutcomeModel(n_patients=150, seed=7))
    write_cohort(folder, cohort)
    treatments = read_treatments(folder / "treatments.csv")
    outcomes = read_outcomes(folder / "outcomes.csv")
    settings = OutcomesSettings.from_mapping({"landmark_day": 28})
    tables = analyze_outcomes(
        treatments, outcomes, cohort.points, settings=settings, strata=cohort.strata
    )
    return cohort, tables


def _summary(tables, section, group_by="all", group="all"):
    s = tables.outcomes_summary
    return s[(s["section"] == section) & (s["group_by"] == group_by) & (s["group"] == group)].iloc[
        0
    ]


def test_tables_have_their_documented_columns(cohort_tables):
    _, tables = cohort_tables
    for name, frame in tables.tables().items():
        assert list(frame.columns) == list(TABLE_COLUMNS[name]), name
    assert set(tables.survival["analysis"]) == {"pfs", "os", "pfs_landmark", "os_landmark", "agvhd"}
    assert set(tables.outcomes_summary["section"]) == {"pfs", "os", "followup", "agvhd", "response"}
    assert tables.product_qc.empty  # no product samples given


def test_one_year_survival_is_the_share_of_the_cohort_event_free_at_day_365(cohort_tables):
    # every patient is followed at least 365 days (or to death), so the Kaplan-Meier
    # estimate at day 365 is the plain share of patients without the event by then
    cohort, tables = cohort_tables
    truth = cohort.truth
    pfs = np.minimum(truth["progression_time"], truth["death_time"])
    assert _summary(tables, "pfs")["estimate"] == pytest.approx(np.mean(pfs > 365), abs=1e-12)
    assert _summary(tables, "os")["estimate"] == pytest.approx(
        np.mean(truth["death_time"] > 365), abs=1e-12
    )
    for stratum in ("A", "B"):
        sel = truth["stratum"] == stratum
        row = _summary(tables, "pfs", "stratum", stratum)
        assert row["n"] == sel.sum()
        assert row["estimate"] == pytest.approx(np.mean(pfs[sel] > 365), abs=1e-12)
        assert row["ci_low"] < row["estimate"] < row["ci_high"]


def test_gvhd_incidence_at_day_100_is_the_share_with_grade_2_or_more_by_then(cohort_tables):
    cohort, tables = cohort_tables
    truth = cohort.truth
    onset = truth["gvhd_onset_time"].to_numpy(dtype=float)  # NaN: no grade >= II
    seen = np.ceil(onset) <= np.ceil(truth["death_time"].to_numpy())  # before or on the death day
    expected = np.mean((onset <= 100) & seen)
    row = _summary(tables, "agvhd")
    assert row["horizon_day"] == 100 and row["estimate"] == pytest.approx(expected, abs=1e-12)
    # by product: the NK bag's few residual T cells cause none; DLI and CIK do
    nk = _summary(tables, "agvhd", "product", "NK")
    cik = _summary(tables, "agvhd", "product", "CIK")
    assert nk["estimate"] < cik["estimate"] and nk["n"] == 75


def test_landmark_and_response_tables(cohort_tables):
    cohort, tables = cohort_tables
    landmark = tables.landmark.set_index("endpoint")
    pfs = landmark.loc["pfs"]
    assert pfs["n_patients"] == 150 and pfs["landmark_day"] == 28
    counted = pfs["n_eligible"] + pfs["n_excluded_event"]
    assert counted + pfs["n_excluded_followup"] + pfs["n_excluded_no_sample"] == 150
    # the detected group is the simulated persisting patients who reached the landmark
    cohort_pfs = tables.landmark_cohorts["pfs"].merge(cohort.truth, on="patient")
    eligible = cohort_pfs[cohort_pfs["status"] == "eligible"]
    assert (eligible["group"].astype(int) == eligible["persistent"].astype(int)).all()
    assert pfs["hazard_ratio"] < 1 and pfs["stratified"]
    response = tables.response
    # one row per group: CR, PR, SD, PD, responders, non-responders, then the comparison
    assert list(response["group"]) == [
        "CR", "PR", "SD", "PD", "responders", "non-responders", "responders vs non-responders",
    ]  # fmt: skip
    comparison = response.iloc[-1]
    p_values = comparison[["p_peak", "p_auc", "p_last_detectable_day", "p_detected"]]
    assert (p_values.astype(float) < 0.05).any()  # persistence raises the chance of response
    assert response.iloc[:-1][["p_peak", "p_detected"]].isna().all().all()
    # the groups' counts add up: categories to the assessed, responders to their categories
    by = response.set_index("group")
    assert by.loc[["CR", "PR", "SD", "PD"], "n"].sum() == comparison["n"]
    assert by.loc["responders", "n"] == by.loc[["CR", "PR"], "n"].sum()
    assert (response["n_detected"] + response["n_not_detected"] == response["n"]).all()
