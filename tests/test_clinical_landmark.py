"""The landmark analysis: windows, exclusions, and the hazard ratio against the simulated one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("lifelines")

from cytokit.clinical import (
    endpoints,
    hazard_ratio,
    landmark_analysis,
    persistence_table,
    read_outcomes,
)
from cytokit.simulate.outcomes import OutcomeModel, simulate_cohort, write_cohort

Q, NQ, ND = "quantified", "not_quantifiable", "not_detected"


def _points(rows):
    return pd.DataFrame(rows, columns=["patient", "day", "value", "status"])


def test_persistence_is_measured_inside_its_window():
    points = _points(
        [
            ("P1", -7, 0.0, ND),
            ("P1", 7, 2.0, Q),
            ("P1", 14, 4.0, Q),
            ("P1", 28, 1.0, NQ),
            ("P1", 60, 8.0, Q),  # after the landmark: not counted at 28
            ("P2", 7, 0.01, ND),
            ("P2", 21, 0.2, NQ),
        ]
    )
    table = persistence_table(points, until=28).set_index("patient")
    # trapezoids from (0, 0): 7*2/2 + 7*(2+4)/2 + 14*(4+1)/2 = 7 + 21 + 35
    assert table.loc["P1", "auc"] == pytest.approx(63.0)
    assert table.loc["P1", "peak_value"] == 4.0 and table.loc["P1", "peak_day"] == 14
    assert (
        table.loc["P1", "first_detectable_day"] == 7
        and table.loc["P1", "last_detectable_day"] == 28
    )
    assert table.loc["P1", "n_samples"] == 3  # the pre-infusion sample is not in it
    assert table.loc["P2", "first_detectable_day"] == 21 and bool(table.loc["P2", "detected"])
    whole = persistence_table(points).set_index("patient")
    assert whole.loc["P1", "peak_value"] == 8.0 and whole.loc["P1", "auc"] > 63.0
    # a day per patient (the response day); patients without one are left out
    per = persistence_table(points, until={"P2": 10}).set_index("patient")
    assert list(per.index) == ["P2"] and not per.loc["P2", "detected"]
    with pytest.raises(ValueError, match="status"):
        persistence_table(points.drop(columns="status"))


def _endpoints(rows):
    frame = pd.DataFrame(rows, columns=["patient", "stratum", "pfs_days", "pfs_event"])
    frame["os_days"], frame["os_event"] = frame["pfs_days"], frame["pfs_event"]
    return frame


def test_landmark_excludes_patients_with_an_event_or_no_follow_up_and_counts_them():
    ends = _endpoints(
        [
            ("E1", "A", 20, 1),  # progressed before the landmark
            ("E2", "A", 28, 1),  # on the landmark day: not event-free at it
            ("C1", "A", 25, 0),  # follow-up ended before it
            ("N1", "A", 90, 1),  # no sample by the landmark
            *[(f"D{i}", "A", 45 + 25 * i, 1) for i in range(4)],
            *[(f"U{i}", "A", 40 + 10 * i, 1) for i in range(4)],
        ]
    )
    rows = [(f"D{i}", 14, 3.0, Q) for i in range(4)] + [(f"U{i}", 14, 0.0, ND) for i in range(4)]
    rows += [("E1", 7, 1.0, Q), ("C1", 7, 1.0, Q), ("N1", 60, 1.0, Q)]
    result = landmark_analysis(ends, _points(rows), landmark_day=28)
    row = result.row
    assert (row["n_patients"], row["n_eligible"]) == (12, 8)
    assert (row["n_excluded_event"], row["n_excluded_followup"], row["n_excluded_no_sample"]) == (
        2,
        1,
        1,
    )
    assert (row["n_1"], row["events_1"], row["n_0"], row["events_0"]) == (4, 4, 4, 4)
    cohort = result.cohort.set_index("patient")
    assert cohort.loc["D1", "days"] == 42 and cohort.loc["D1", "label"] == "detected"
    assert cohort.loc["E2", "status"] == "event before landmark" and pd.isna(
        cohort.loc["E2", "group"]
    )
    # the detected patients progress later: a hazard ratio below 1, with its test
    assert row["hazard_ratio"] < row["hr_ci_high"] and row["hazard_ratio"] < 1
    assert 0 < row["logrank_p"] < 0.2 and not row["stratified"]
    # every detected patient after every other: no finite estimate, and the note says why
    apart = ends.assign(
        pfs_days=np.where(ends["patient"].str.startswith("D"), 200, ends["pfs_days"])
    )
    row = landmark_analysis(apart, _points(rows), landmark_day=28).row
    assert math.isnan(row["hazard_ratio"]) and "did not converge" in row["note"]
    assert row["logrank_p"] < 0.05
    too_few = landmark_analysis(ends, _points(rows), landmark_day=28, min_group=5).row
    assert math.isnan(too_few["hazard_ratio"])
    assert (
        too_few["note"]
        == "too few patients to compare: 4 detected vs 4 not detected (need 5 per group)"
    )


def test_a_failed_sample_is_not_a_sample_without_donor_cells():
    """A patient whose only sample by the landmark failed, or whose other samples showed no
    donor cells, may have had them: left out of the detection comparison and counted,
    never grouped as "not detected". Donor cells seen in another sample settle it. By
    AUC or peak a failed day leaves the patient's series incomplete: left out too."""
    ends = _endpoints([(f"P{i}", "A", 100 + i, 1) for i in range(8)])
    rows = [(f"P{i}", 14, 3.0, Q) for i in range(3)] + [(f"P{i}", 14, 0.0, ND) for i in (3, 4, 5)]
    rows += [("P0", 7, math.nan, "failed"), ("P3", 7, math.nan, "failed")]
    rows += [("P6", 7, math.nan, "failed"), ("P7", 60, 1.0, Q)]
    result = landmark_analysis(ends, _points(rows), landmark_day=28)
    row, cohort = result.row, result.cohort.set_index("patient")
    assert (row["n_eligible"], row["n_excluded_failed"], row["n_excluded_no_sample"]) == (5, 2, 1)
    assert cohort.loc["P0", "label"] == "detected"  # detected on day 14 all the same
    for p in ("P3", "P6"):
        assert cohort.loc[p, "status"] == "a sample failed by landmark" and pd.isna(
            cohort.loc[p, "group"]
        )
    assert (row["n_1"], row["n_0"]) == (3, 2)
    table = persistence_table(_points(rows), until=28).set_index("patient")
    assert table.loc["P0", "n_failed"] == 1 and table.loc["P0", "detected"]
    assert math.isnan(table.loc["P0", "auc"]) and math.isnan(table.loc["P0", "peak_value"])
    assert table.loc["P6", "n_samples"] == 0 and not table.loc["P6", "detected"]
    by_auc = landmark_analysis(ends, _points(rows), landmark_day=28, by="auc").row
    assert (by_auc["n_eligible"], by_auc["n_excluded_failed"]) == (4, 3)


def test_failed_files_become_points_without_a_value_where_a_day_has_none():
    from cytokit.analysis.outcomes import persistence_points

    chim = pd.DataFrame(
        {
            "patient": ["P1", "P1"],
            "day": [14, 14],
            "population": ["NK", "T"],
            "sample_type": ["PB", "PB"],
            "donor_per_ul": [2.5, 9.0],
            "status": [Q, Q],
        }
    )
    pts = persistence_points(chim, "NK", "donor_per_ul", failed=[("P1", 7), ("P1", 14)])
    assert pts[["patient", "day", "status"]].values.tolist() == [
        ["P1", 7, "failed"],
        ["P1", 14, Q],
    ]
    assert math.isnan(pts["value"].iloc[0]) and pts["value"].iloc[1] == 2.5
    # a sample whose donor marker failed measured nothing: a failed point, not a 0
    dead = chim.assign(status=["marker_failed", Q], donor_per_ul=[float("nan"), 9.0])
    pts = persistence_points(dead, "NK", "donor_per_ul")
    assert pts["status"].tolist() == ["failed"] and math.isnan(pts["value"].iloc[0])
    table = persistence_table(pts, until=28)
    assert table["n_failed"].tolist() == [1]


def test_a_product_bag_is_never_a_persistence_point():
    """Blood rows with a blank sample type: the day-0 bag (product_post) was read as a
    blood sample, so a patient never detected in blood became "detected"."""
    from cytokit.analysis.outcomes import persistence_points

    chim = pd.DataFrame(
        {
            "patient": ["P2", "P2", "P2"],
            "day": [0, 7, 14],
            "population": ["NK"] * 3,
            "sample_type": ["product_post", "", ""],
            "donor_per_ul": [900.0, 0.0, 0.0],
            "status": [Q, "not_detected", "not_detected"],
        }
    )
    pts = persistence_points(chim, "NK", "donor_per_ul")
    assert pts["day"].tolist() == [7, 14] and set(pts["status"]) == {"not_detected"}


def test_landmark_by_auc_splits_at_the_cohort_median():
    ends = _endpoints([(f"P{i}", "A", 100 + i, 1) for i in range(6)])
    points = _points([(f"P{i}", 14, float(i), Q) for i in range(6)])
    row = landmark_analysis(ends, points, by="auc").row
    # AUC to day 28 from the one day-14 sample: 14 * value / 2 = 7 * i; median 17.5
    assert row["threshold"] == pytest.approx(17.5)
    assert (row["n_1"], row["n_0"], row["group_1"]) == (3, 3, "AUC above median")


def _naive_hazard_ratio(cohort, ends):
    """ "Ever detected" vs never, from day 0: the comparison the landmark method replaces."""
    detected = persistence_table(cohort.points, summaries=False).set_index("patient")["detected"]
    group = ends["patient"].map(detected).eq(True).to_numpy()
    return hazard_ratio(ends["pfs_days"], ends["pfs_event"], group, ends["stratum"])


@pytest.mark.slow
def test_landmark_hazard_ratio_covers_the_simulated_one_and_the_naive_one_is_biased(tmp_path):
    """20 cohorts of 400 from the simulator (hazard ratio 0.5 from detection, by day 28).

    A calibrated 95 % interval covers the truth in at least 17 of 20 cohorts with
    probability 0.98; benchmarks/bench_landmark.py measures the coverage on 50.
    """
    truth = 0.5
    landmark, naive = [], []
    for seed in range(1, 21):
        model = OutcomeModel(n_patients=400, seed=seed, hazard_ratio=truth, median_nrm=math.inf)
        cohort = simulate_cohort(model)
        write_cohort(tmp_path / str(seed), cohort)
        outcomes = read_outcomes(tmp_path / str(seed) / "outcomes.csv")
        ends = endpoints(outcomes, strata=cohort.strata)
        row = landmark_analysis(ends, cohort.points, landmark_day=28).row
        assert row["stratified"] and row["n_excluded_event"] > 0
        landmark.append((row["hazard_ratio"], row["hr_ci_low"], row["hr_ci_high"]))
        hr = _naive_hazard_ratio(cohort, ends)
        naive.append((hr["hazard_ratio"], hr["hr_ci_low"], hr["hr_ci_high"]))
    landmark, naive = np.array(landmark), np.array(naive)
    covered = (landmark[:, 1] <= truth) & (truth <= landmark[:, 2])
    assert covered.sum() >= 17
    bias = np.log(landmark[:, 0]).mean() - math.log(truth)
    naive_bias = np.log(naive[:, 0]).mean() - math.log(truth)
    # the landmark estimate is centred on the truth; "ever detected" flatters persistence
    assert abs(bias) < 0.08
    assert naive_bias < -0.15
    assert ((naive[:, 1] <= truth) & (truth <= naive[:, 2])).mean() < covered.mean()


def test_response_table_does_not_call_a_failed_series_never_detected():
    """A responder detected on one day whose other sample failed has blank measures (a
    failed day may hold the peak): the note says so, and does not count the patient
    among the never detected."""
    from cytokit.clinical.outcomes import Outcome
    from cytokit.clinical.response import response_vs_persistence

    outcomes = [Outcome(f"P{i}", 200, response="PR", response_day=60) for i in range(4)]
    rows = [(f"P{i}", 14, 2.0 + i, Q) for i in range(3)]
    rows += [("P3", 14, math.nan, "failed"), ("P3", 28, 1.5, Q)]
    table = response_vs_persistence(outcomes, _points(rows)).set_index("group")
    pr = table.loc["PR"]
    assert (pr["n"], pr["n_detected"], pr["n_not_detected"]) == (4, 4, 0)
    assert "never detected" not in pr["note"]
    assert pr["note"] == (
        "peak, AUC and last detectable day of 1 detected patient(s) left out: a sample "
        "failed by the response day"
    )
    assert pr["peak_median"] == 3.0  # of the three complete series
    outcomes.append(Outcome("P4", 200, response="PR", response_day=60))
    rows.append(("P4", 14, 0.0, ND))
    pr = response_vs_persistence(outcomes, _points(rows)).set_index("group").loc["PR"]
    assert pr["note"].startswith(
        "peak and last detectable day of the 1 never detected left out (their AUC counts as "
        "0); peak"
    )
    # a patient left out (a failed sample, no donor cells seen): its group's row says so,
    # not only the comparison row (PR read n = 0 with no word)
    outcomes.append(Outcome("P5", 200, response="SD", response_day=60))
    rows += [("P5", 14, math.nan, "failed"), ("P5", 28, 0.0, ND)]
    table = response_vs_persistence(outcomes, _points(rows)).set_index("group")
    said = "1 assessed patient(s) left out: a sample failed by their response day"
    for group in ("SD", "non-responders"):
        assert table.loc[group, "n"] == 0 and said in table.loc[group, "note"]
    assert said not in table.loc["PR", "note"] and said in table.iloc[-1]["note"]
