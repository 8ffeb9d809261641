"""Dose bookkeeping: drugs start no persistence segment, doses add up per product only."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cytokit.analysis.trends import fit_half_life, trend_row
from cytokit.clinical import dose_totals, drug_courses, read_treatments, segment_days
from cytokit.simulate import Kinetics, persistence_curve

HEADER = "patient,day,product,kind,dose,unit,dose_level,given,end_day\n"
NK_ROW = "P01,0,NK,cells,1.5e7,CD3-CD56+ cells/kg,,yes,\n"
IL2_ROWS = "".join(f"P01,{d},IL-2,drug,1,MIU/m2,,yes,\n" for d in (1, 3, 5, 7, 9, 11))
CIK_SCHEDULE = (
    "P02,0,DLI,cells,1e6,CD3+ cells/kg,,yes,\n"
    "P02,21,DLI,cells,1e6,CD3+ cells/kg,,yes,\n"
    "P02,42,CIK,cells,3e6,CD3+ cells/kg,1,yes,\n"
    "P02,63,CIK,cells,5e6,CD3+ cells/kg,2,yes,\n"
    "P02,84,CIK,cells,1e7,CD3+ cells/kg,3,yes,\n"
)


def _treatments(tmp_path, rows: str):
    path = tmp_path / "treatments.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return read_treatments(path)


def _nk_series():
    """An NK patient's donor cells/µL: the simulator's curve (half-life 9 days) with 10 % noise."""
    k = Kinetics(half_life_days=9.0, expansion_fold=3.0, peak_delay_days=5.0, recovery=0.3)
    days = np.array([-7, 1, 3, 7, 10, 14, 21, 28, 35, 42, 60])
    rng = np.random.default_rng(5)
    y = persistence_curve(days.astype(float), [(0, 1.5e7)], k) * rng.lognormal(0, 0.1, days.size)
    status = ["not_detected"] + ["quantified"] * (days.size - 1)
    return days, y, status


def test_an_il2_course_changes_no_half_life_and_no_total_cell_dose(tmp_path):
    with_il2 = _treatments(tmp_path, NK_ROW + IL2_ROWS)
    without = _treatments(tmp_path, NK_ROW)
    days, y, status = _nk_series()
    fit = fit_half_life(days, y, status, segment_days(with_il2)["P01"])
    assert fit == fit_half_life(days, y, status, segment_days(without)["P01"])
    assert segment_days(with_il2) == {"P01": (0,)}
    assert 7.5 < fit["half_life_days"] < 10.5  # the simulated 9 days, with noise
    # every row as an infusion (infusions.csv's reading) cuts the decay at each IL-2 dose
    every_row = sorted(t.day for t in with_il2)
    assert fit_half_life(days, y, status, every_row)["half_life_n"] != fit["half_life_n"]
    # the total cell dose is the NK dose; IL-2 is a row of its own, in its own unit
    totals = dose_totals(with_il2).set_index("product")
    assert totals.loc["NK", "total_dose"] == 1.5e7 and totals.loc["NK", "kind"] == "cells"
    assert totals.loc["IL-2", "total_dose"] == 6 and totals.loc["IL-2", "unit"] == "MIU/m2"
    cells = [t.dose for t in with_il2 if t.is_cells and t.given]
    row = trend_row(days, y, status, segment_days(with_il2)["P01"], cells)
    assert row["total_dose_per_kg"] == 1.5e7 and row["n_infusions"] == 1


def test_dli_and_cik_doses_are_never_summed(tmp_path):
    rows = _treatments(tmp_path, CIK_SCHEDULE)
    totals = dose_totals(rows)
    assert totals[["patient", "product", "n_given", "total_dose"]].values.tolist() == [
        ["P02", "CIK", 3, 1.8e7],
        ["P02", "DLI", 2, 2e6],
    ]
    assert not np.isclose(totals["total_dose"], 2e7).any()  # DLI 2x10^6 + CIK 18x10^6
    assert totals.set_index("product").loc["CIK", "max_dose_level"] == 3
    # every given cell infusion starts a segment, whatever its product
    assert segment_days(rows) == {"P02": (0, 21, 42, 63, 84)}
    assert segment_days(rows, products=["CIK"]) == {"P02": (42, 63, 84)}


def test_a_skipped_infusion_is_data_but_neither_a_segment_nor_a_dose(tmp_path):
    rows = _treatments(tmp_path, CIK_SCHEDULE.replace("3,yes,", "3,no,"))
    assert segment_days(rows) == {"P02": (0, 21, 42, 63)}
    cik = dose_totals(rows).set_index("product").loc["CIK"]
    assert cik["total_dose"] == 8e6 and cik["n_given"] == 2 and cik["n_skipped"] == 1
    assert cik["last_day"] == 63 and cik["max_dose_level"] == 2


def test_a_total_with_an_unknown_given_dose_is_left_empty(tmp_path):
    rows = _treatments(tmp_path, NK_ROW + "P01,14,NK,cells,,,,yes,\n")
    nk = dose_totals(rows).set_index("product").loc["NK"]
    assert math.isnan(nk["total_dose"]) and nk["note"] == "dose unknown for 1 given row(s)"


def test_a_course_given_as_one_row_lasts_to_its_end_day_in_the_totals(tmp_path):
    """doses.csv gave an IL-2 row of day 1 with end_day 9 as first_day 1, last_day 1,
    where the patient's page said "IL-2 day 1-9"."""
    rows = _treatments(tmp_path, NK_ROW + "P01,1,IL-2,drug,1,MIU/m2,,yes,9\n")
    il2 = dose_totals(rows).set_index("product").loc["IL-2"]
    assert (il2["first_day"], il2["last_day"]) == (1, 9)
    course = drug_courses(rows).set_index("product").loc["IL-2"]
    assert (course["start_day"], course["end_day"]) == (1, 9)


def test_drug_courses_join_every_other_day_doses(tmp_path):
    rows = _treatments(
        tmp_path,
        NK_ROW
        + IL2_ROWS
        + "P01,30,IL-2,drug,1,MIU/m2,,yes,\n"  # 19 days later: a new course
        + "P01,40,CsA,drug,3,mg/kg,,yes,60\n"  # a course given as one row
        + "P01,45,CsA,drug,3,mg/kg,,no,\n",  # not given
    )
    courses = drug_courses(rows)
    assert courses[["product", "start_day", "end_day", "n_rows"]].values.tolist() == [
        ["CsA", 40, 60, 1],
        ["IL-2", 1, 11, 6],
        ["IL-2", 30, 30, 1],
    ]


@pytest.mark.parametrize("given", ["no", "NO", "n", "false", "0"])
def test_given_spellings(tmp_path, given):
    rows = _treatments(tmp_path, NK_ROW.replace(",yes,", f",{given},"))
    assert not rows[0].given and segment_days(rows) == {}
