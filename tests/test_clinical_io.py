"""treatments.csv, infusions.csv and outcomes.csv: what is read, and every problem reported at once."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from cytokit import StudyError
from cytokit.clinical import (
    OutcomesSettings,
    endpoints,
    read_outcomes,
    read_treatments,
)

OUTCOME_HEADER = (
    "patient,response,response_day,agvhd_max_grade,agvhd_onset_day,dlt,dlt_day,"
    "progression_day,last_followup_day,death_day,death_cause\n"
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_treatments_are_read_with_kinds_skips_and_levels(tmp_path):
    path = _write(
        tmp_path,
        "treatments.csv",
        "patient,day,product,kind,dose,unit,dose_level,given,note\n"
        "P01,0,NK,cells,1.5e7,CD3-CD56+ cells/kg,,yes,bag 1\n"
        "P01,1,IL-2,drug,1,MIU/m2,,,\n"
        "P02,42,CIK,cells,3e6,CD3+ cells/kg,1,yes,\n"
        "P02,63,CIK,cells,5e6,CD3+ cells/kg,2,no,\n",
    )
    rows = read_treatments(path, patients={"P01", "P02"})
    assert [(r.patient, r.day, r.product, r.kind) for r in rows] == [
        ("P01", 0, "NK", "cells"),
        ("P01", 1, "IL-2", "drug"),
        ("P02", 42, "CIK", "cells"),
        ("P02", 63, "CIK", "cells"),
    ]
    assert rows[0].dose == 1.5e7 and rows[0].unit == "CD3-CD56+ cells/kg"
    assert rows[0].metadata == {"note": "bag 1"}
    assert rows[1].given  # an empty given cell is "yes"
    assert rows[2].dose_level == 1 and not rows[3].given


def test_older_infusions_csv_is_read_as_cell_infusions(tmp_path):
    path = _write(
        tmp_path,
        "infusions.csv",
        "patient,day,product,dose_per_kg\nP01,0,NK,1.8e7\nP01,14,NK,\n",
    )
    rows = read_treatments(path)
    assert [(r.kind, r.dose, r.unit, r.given) for r in rows] == [
        ("cells", 1.8e7, "cells/kg", True),
        ("cells", None, "cells/kg", True),
    ]


def test_every_treatment_problem_is_reported_at_once(tmp_path):
    path = _write(
        tmp_path,
        "treatments.csv",
        "patient,day,product,kind,dose,unit,dose_level,given\n"
        "P01,0,NK,cells,1.5e7,cells/kg,,yes\n"
        "P01,1.5,IL-2,drug,1,MIU/m2,,yes\n"  # half a day
        "P01,3,IL-2,pill,1,MIU/m2,,yes\n"  # unknown kind
        "P02,0,DLI,cells,-1,cells/kg,,yes\n"  # negative dose
        "P02,21,DLI,cells,1e6,,,yes\n"  # dose without unit
        "P02,42,CIK,cells,3e6,CD3+ cells/kg,1,yes\n"
        "P02,63,CIK,cells,5e6,cells/kg,2,yes\n"  # another unit for CIK
        "P02,84,CIK,cells,1e7,CD3+ cells/kg,one,maybe\n"  # level and given
        "P01,0,NK,cells,1.5e7,cells/kg,,yes\n"  # the same row again
        "P09,0,NK,cells,1e7,cells/kg,,yes\n"  # not in the manifest
        "P01,5\n",  # short row
    )
    with pytest.raises(StudyError) as info:
        read_treatments(path, patients={"P01", "P02"})
    message = str(info.value)
    expected = [
        r"line 3: day '1\.5' is not a whole number",
        r"line 4: kind 'pill' must be 'cells' or 'drug'",
        r"line 5: dose '-1' is not a non-negative number",
        r"line 6: dose '1e6' has no unit",
        r"line 8: CIK dose in 'cells/kg' but in 'CD3\+ cells/kg' on line 7",
        r"line 9: dose_level 'one' is not a whole number",
        r"line 9: given 'maybe' must be yes or no",
        r"line 10: patient P01 already has NK on day 0 \(line 2\)",
        r"line 11: patient 'P09' \(day 0\) is not in manifest.csv",
        r"line 12: 2 fields but the header has 8",
    ]
    for pattern in expected:
        assert re.search(pattern, message), pattern
    assert f"{path}: 10 problem(s)" in message
    assert all(str(path) in line for line in message.splitlines()[1:])


def test_treatments_header_must_name_kind(tmp_path):
    path = _write(
        tmp_path, "treatments.csv", "patient,day,product,dose,unit\nP01,0,NK,1,cells/kg\n"
    )
    with pytest.raises(StudyError, match=r"missing column\(s\) kind"):
        read_treatments(path)


def test_outcomes_are_read_with_empty_cells_meaning_what_the_contract_says(tmp_path):
    path = _write(
        tmp_path,
        "outcomes.csv",
        OUTCOME_HEADER + "P01,cr,100,II,30,no,,,365,,\n"
        "P02,PD,60,0,,yes,50,60,,200,relapse\n"
        "P03,,,,,,,,90,,\n",
    )
    rows = read_outcomes(path)
    p1, p2, p3 = rows
    assert p1.response == "CR" and p1.agvhd_max_grade == 2 and p1.agvhd_onset_day == 30
    assert p1.dlt is False and p1.death_day is None and p1.end_of_followup == 365
    assert p2.dlt and p2.dlt_day == 50 and p2.progression_day == 60 and p2.death_day == 200
    assert p2.last_followup_day == 200  # no follow-up day: the death day
    assert p3.response is None and p3.agvhd_max_grade is None and p3.dlt is None


def test_response_categories_are_configurable(tmp_path):
    path = _write(tmp_path, "outcomes.csv", OUTCOME_HEADER + "P01,CRi,100,,,,,,120,,\n")
    with pytest.raises(
        StudyError, match=r"response 'CRi' is not one of CR, PR, SD, PD; .*response_categories"
    ):
        read_outcomes(path)
    rows = read_outcomes(path, categories=("CR", "CRi", "PR", "SD", "PD"))
    assert rows[0].response == "CRi"


def test_every_outcome_problem_is_reported_at_once(tmp_path):
    path = _write(
        tmp_path,
        "outcomes.csv",
        OUTCOME_HEADER + "P01,CR,100,V,,no,,,365,,\n"  # grade V
        "P02,PR,,0,20,,,,365,,\n"  # response without day; onset with grade 0
        "P03,SD,100,III,,yes,,,365,,\n"  # grade III without onset; DLT without day
        "P04,PD,50,0,,no,,300,400,250,relapse\n"  # progression after death; follow-up after death
        "P05,,,,,,,-3,365,,\n"  # before day 0
        "P06,,,,,,,,,,\n"  # no follow-up
        "P07,,,,,,,,100,,infection\n"  # a cause without a death
        "P01,,,,,,,,10,,\n",  # twice
    )
    with pytest.raises(StudyError) as info:
        read_outcomes(path)
    message = str(info.value)
    expected = [
        r"line 2: agvhd_max_grade 'V' must be 0-4 or 0, I-IV",
        r"line 3: response 'PR' has no response_day",
        r"line 3: agvhd_onset_day 20 but agvhd_max_grade is 0",
        r"line 4: acute GVHD grade III needs agvhd_onset_day",
        r"line 4: dlt is yes but dlt_day is empty",
        r"line 5: last_followup_day 400 is after death_day 250",
        r"line 5: progression_day 300 is after the end of follow-up \(day 250, death\)",
        r"line 6: progression_day '-3' is before day 0",
        r"line 7: last_followup_day is empty",
        r"line 8: death_cause 'infection' without a death_day",
        r"line 9: patient P01 already has a row \(line 2\)",
    ]
    for pattern in expected:
        assert re.search(pattern, message), pattern


def test_settings_defaults_and_every_problem(tmp_path):
    s = OutcomesSettings.from_mapping(None)
    assert s.landmark_day == 28 and s.response_categories == ("CR", "PR", "SD", "PD")
    assert s.escalation == "3+3" and not s.release.any()
    s = OutcomesSettings.from_mapping(
        {
            "landmark_day": 60,
            "landmark_by": "auc",
            "response_categories": ["CR", "CRi", "PR", "SD", "PD"],
            "responders": ["CR", "CRi"],
            "release": {"min_nk_purity_pct": 90, "max_cd3_per_kg": 1e5, "level": 0.9},
        }
    )
    assert s.landmark_by == "auc" and s.responders == ("CR", "CRi")
    assert s.release.min_nk_purity_pct == 90.0 and s.release.level == 0.9 and s.release.any()
    with pytest.raises(StudyError) as info:
        OutcomesSettings.from_mapping(
            {
                "landmark_day": -1,
                "landmark_by": "ever",
                "gvhd_grade": 5,
                "responders": ["CR", "MR"],
                "escalaton": "3+3",
                "release": {"min_nk_purity_pct": 120, "max_cd3": 1},
            },
            "study.toml",
        )
    message = str(info.value)
    for pattern in (
        r"landmark_day = -1 must be a whole number >= 0",
        r"landmark_by = 'ever' must be one of detection, auc, peak",
        r"gvhd_grade = 5 must be 1 to 4",
        r"responders MR not in response_categories",
        r"unknown key 'escalaton'",
        r"min_nk_purity_pct = 120 must be a number from 0 to 100",
        r"unknown key 'max_cd3'",
    ):
        assert re.search(pattern, message), pattern
    assert message.startswith("study.toml: 7 problem(s) in [outcomes]")


def test_endpoints_from_outcomes(tmp_path):
    path = _write(
        tmp_path,
        "outcomes.csv",
        OUTCOME_HEADER + "P01,,,II,30,,,90,400,,\n"  # progression then alive
        "P02,,,0,,,,,,120,infection\n"  # death without progression or GVHD
        "P03,,,I,10,,,,200,,\n"  # grade I only: censored for grade >= II
        "P04,,,,,,,50,80,80,relapse\n",  # GVHD not assessed
    )
    ends = endpoints(read_outcomes(path), strata={"P01": "A", "P02": "B"}).set_index("patient")
    assert ends.loc["P01", ["pfs_days", "pfs_event", "os_days", "os_event"]].tolist() == [
        90,
        1,
        400,
        0,
    ]
    assert ends.loc["P02", ["pfs_days", "pfs_event", "os_days", "os_event"]].tolist() == [
        120,
        1,
        120,
        1,
    ]
    assert ends.loc["P04", ["pfs_days", "os_days"]].tolist() == [50, 80]
    assert ends.loc["P01", "gvhd_status"] == 1 and ends.loc["P01", "gvhd_days"] == 30
    assert ends.loc["P02", "gvhd_status"] == 2 and ends.loc["P02", "gvhd_days"] == 120
    assert ends.loc["P03", "gvhd_status"] == 0 and ends.loc["P03", "gvhd_days"] == 200
    assert ends["gvhd_status"].isna().tolist() == [False, False, False, True]
    assert ends.loc["P01", "stratum"] == "A" and ends.loc["P03", "stratum"] == ""
    # grade I counts when the threshold is grade I
    low = endpoints(read_outcomes(path), gvhd_grade=1).set_index("patient")
    assert low.loc["P03", "gvhd_status"] == 1 and low.loc["P03", "gvhd_days"] == 10
    assert not np.isnan(low["pfs_days"]).any() and not math.isnan(low.loc["P04", "os_days"])


def test_a_trial_patient_without_an_outcome_row_is_a_problem(tmp_path):
    """A patient the trial treated with no row in outcomes.csv would leave every outcome
    analysis without a word; a manifest patient who is none of the trial's (a healthy
    control) needs no row."""
    from cytokit.clinical.outcomes import parse_outcomes

    path = _write(tmp_path, "outcomes.csv", OUTCOME_HEADER + "P01,CR,100,0,,no,,,365,,\n")
    problems: list[str] = []
    parse_outcomes(path, problems, patients={"P01", "P02", "HC"}, required={"P01", "P02"})
    assert len(problems) == 1 and "no row for patient(s) P02 of manifest.csv" in problems[0]
    problems.clear()
    parse_outcomes(path, problems, patients={"P01", "HC"}, required={"P01"})
    assert problems == []
