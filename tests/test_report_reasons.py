"""A missing value says why in one plain sentence, defined once and cited by code."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cytokit.report.reasons import REASONS, glossary_html
from cytokit.report.tables import trends_table

NOTE = (
    "not estimable: 0 point(s) with >= 20 donor events in decay phases "
    "(need 3, and more points than decay phases + 1)"
)


def _trends(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient": "P01",
            "population": [f"pop{i}" for i in range(n)],
            "measure": "donor_pct",
            "n_days": 5,
            "peak_value": 10.0,
            "peak_day": 7.0,
            "last_detectable_day": 28.0,
            "auc": 100.0,
            "half_life_days": [np.nan] * (n - 1) + [12.0],
            "half_life_ci_low": [np.nan] * (n - 1) + [8.0],
            "half_life_ci_high": [np.nan] * (n - 1) + [20.0],
            "half_life_n": 4,
            "half_life_r2": 0.9,
            "half_life_note": [NOTE] * (n - 1) + [""],
        }
    )


def _visible(html: str) -> str:
    return re.sub(r"<[^>]*>", " ", html)  # text a reader sees (tags and tooltips gone)


def test_repeated_reason_is_a_code_and_r2_only_beside_a_half_life():
    html = trends_table(_trends(15), [f"pop{i}" for i in range(15)])
    text = _visible(html)
    assert "decay phases" not in text  # the long note is not repeated in cells
    assert text.count("(H1)") == 14
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    r2 = [_visible(re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)[-1]).strip() for r in rows]
    assert r2.count("–") == 14 and r2.count("0.900") == 1


def test_glossary_defines_each_used_reason_once():
    html = glossary_html([NOTE] * 14 + ["", "not estimable: counts do not decay (slope 0.01/day)"])
    assert html.count('id="why-H1"') == 1 and html.count('id="why-H2"') == 1
    assert 'id="why-H3"' not in html
    assert REASONS["H1"][1][:40] in html


def test_cohort_table_lists_only_detected_populations_with_units():
    from cytokit.report.tables import cohort_table

    cohort = pd.DataFrame(
        {
            "stratum": ["NK", "NK", "NK", "NK"],
            "population": ["NK", "NK", "CIK", "CIK"],
            "measure": ["donor_pct", "donor_per_ul", "donor_pct", "donor_per_ul"],
            "n_patients": 2,
            "n_detected": [2, 2, 0, 0],
            "peak_median": [59.8, 142.0, np.nan, np.nan],
            "auc_median": [806.0, 1640.0, 0.0, 0.0],
            "auc_min": [526.0, 1449.0, 0.0, 0.0],
            "auc_max": [1086.0, 1832.0, 0.0, 0.0],
        }
    )
    html = cohort_table(cohort)
    body = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    assert len(body) == 2  # the CIK rows of the NK arm are not rows with an AUC of 0
    assert "% × days" in body[0] and "cells/µL × days" in body[1]
    assert "Detected in no patient of the stratum (not listed): NK: CIK." in html


def test_cohort_half_lives_say_once_why_none_was_estimated():
    """A stratum's half-life: median (range) of how many patients; where none was
    estimated a "–", and one note below the table with the reasons' codes (not
    "– [n = 0]" on every row)."""
    from cytokit.report.tables import cohort_table

    cohort = pd.DataFrame(
        {
            "stratum": ["CIK", "CIK", "NK", "NK"],
            "population": ["CIK", "T", "NK", "NK_dim"],
            "measure": "donor_per_ul",
            "n_patients": [1, 1, 2, 2],
            "n_detected": [1, 1, 2, 2],
            "half_life_n": [0, 0, 1, 2],
            "half_life_median": [np.nan, np.nan, 4.83, 5.1],
            "half_life_min": [np.nan, np.nan, 4.83, 4.5],
            "half_life_max": [np.nan, np.nan, 4.83, 5.5],
        }
    )
    trends = pd.DataFrame(
        {
            "stratum": ["CIK", "CIK", "NK"],
            "population": ["CIK", "T", "NK"],
            "measure": "donor_per_ul",
            "last_detectable_day": [85.0, 85.0, np.nan],
            "half_life_note": [NOTE, "not estimable: counts do not decay (slope 0.01/day)",
                               "not estimable: the decay is not significant (slope ...)"],
        }
    )  # fmt: skip
    html = cohort_table(cohort, trends=trends)
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    cells = [_visible(re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)[7]).strip() for r in rows]
    assert cells == ["–", "–", "4.83, 1 of 2 patients", "5.10 (4.50–5.50), 2 of 2 patients"]
    assert "n = 0" not in html
    note = _visible(html.split("</table>")[1])
    # the codes of the rows without a half-life (H3 is of a row that has one, not cited)
    assert (
        re.sub(r"\s+", " ", note)
        .strip()
        .startswith("Half-life –: estimated in no patient of the stratum ( H1 , H2 ).")
    ), note
    assert html.count('href="#why-H1"') == 1 and 'href="#why-H3"' not in html


def test_whole_numbers_read_as_integers():
    from cytokit.report._html import fmt

    assert [fmt(3.0), fmt(8.0), fmt(0.0), fmt(1360.0)] == ["3", "8", "0", "1,360"]
    assert [fmt(81.8), fmt(0.5), fmt(2.25)] == ["81.8", "0.500", "2.25"]


def test_cluster_table_gives_donor_shares_with_their_events_and_no_gate_for_no_match():
    """f1 used to print as 3.85e-04 beside a "best gate", and a donor share of 2 events read
    as 67 % with no n."""
    from cytokit.report.tables import cluster_summary_table

    summary = pd.DataFrame(
        {
            "metacluster": [0, 1, 2],
            "events": [11738, 3, 500],
            "fraction": [0.7, 0.0002, 0.03],
            "donor_events": [152, 2, 0],
            "donor_fraction": [152 / 11738, 2 / 3, 0.0],
            "nodes": [22, 1, 4],
            "gate": ["T", "NK_dim", "NK"],
            "f1": [0.7045, 0.000385, 0.0],
        }
    )
    html = cluster_summary_table(summary)
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    cells = [
        [_visible(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)]
        for r in rows
    ]
    assert cells[0][3] == "1.29 (152 of 11,738)" and cells[0][5] == "T" and cells[0][6] == "0.70"
    assert cells[1][3] == "66.7 (2 of 3)"
    assert cells[1][5] == "–" and cells[1][6] == "0.00"  # no population matches it
    assert cells[2][5] == "–" and "e-0" not in html


def test_persistence_summary_names_never_detected_populations_once():
    from cytokit.report.tables import persistence_summary

    trends = _trends(3).assign(
        measure="donor_per_ul", stratum="NK", last_detectable_day=[21.0, np.nan, np.nan]
    )
    html = persistence_summary(trends, ["P01"])
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    assert len(rows) == 1 and "pop0" in rows[0]
    assert "Donor cells detected on no day (not listed): P01: pop1, pop2." in html
    # a day that failed may have held them: said beside the population, and in its row
    failed = trends.assign(failed_days=["", "3; 14", ""])
    html = persistence_summary(failed, ["P01"])
    assert (
        "Donor cells detected on no day (not listed): P01: pop1 (day 3, 14 failed), pop2." in html
    )
    from cytokit.report.tables import half_life_cell, last_detected_text

    row = failed.iloc[1]
    assert str(half_life_cell(row)) == "not detected on the days measured (day 3, 14 failed)"
    later = trends.iloc[0].to_dict() | {"last_detectable_day": 7.0, "failed_days": "-7; 3; 14"}
    assert last_detected_text(later) == "7 (day 14 failed)"


def test_a_peak_of_not_quantifiable_values_only_is_marked_nq():
    """A series with no quantifiable point takes its peak from not-quantifiable ones (16.2
    cells/µL from 41 donor events): the tables said 16.2 like any other peak."""
    from cytokit.report.tables import persistence_summary, trends_table

    trends = _trends(2).assign(
        measure="donor_per_ul",
        stratum="NK",
        last_detectable_day=[21.0, 14.0],
        peak_value=[16.2, 80.5],
        last_quantified_day=[np.nan, 14.0],
    )
    for html in (persistence_summary(trends, ["P01"]), trends_table(trends, ["pop0", "pop1"])):
        assert ">16.2 NQ<" in html and ">80.5<" in html


def test_a_pct_series_too_small_on_every_day_is_not_called_not_detected():
    """A % donor series whose every day after infusion was of a population too small to
    judge (fewer than 80 events: read as missing) has no AUC, as nothing could have shown
    donor cells there; the report called it "not detected", as if they were absent. A
    series not detected in populations large enough still reads "not detected", AUC 0."""
    from cytokit.analysis.trends import trend_row
    from cytokit.report.tables import half_life_cell

    days, status = [-7, 7, 14, 28], ["not_detected"] * 4
    small = trend_row(days, [np.nan] * 4, status, infusions=[0])  # every % masked
    assert not np.isfinite(small["auc"])
    row = {"measure": "donor_pct", "last_detectable_day": np.nan, "failed_days": "", **small}
    assert str(half_life_cell(row, too_small=True)) == "too few cells to judge on every day"
    # beside a failed day, the days measured are what was too small
    failed = {**row, "failed_days": "14"}
    assert str(half_life_cell(failed, too_small=True)) == (
        "too few cells to judge on the days measured (day 14 failed)"
    )
    large = trend_row(days, [0.0, 0.0, 0.1, 0.0], status, infusions=[0])
    assert large["auc"] == 0.0
    row = {"measure": "donor_pct", "last_detectable_day": np.nan, "failed_days": "", **large}
    assert str(half_life_cell(row)) == "not detected"
    # the page says which populations were too small, from the chimerism rows
    from cytokit.report.page import _too_small

    chim = pd.DataFrame(
        {
            "population": ["CIK"] * 3 + ["NK"] * 3,
            "day": [-7, 7, 28] * 2,
            "events": [500, 34, 55, 900, 40, 600],
            "status": ["quantified", "not_detected", "not_detected"] * 2,
        }
    )
    assert _too_small(chim) == {("", "CIK")}
    # a product bag is a series of its own: a bag of many CIK leaves the blood's too small
    typed = pd.concat(
        [
            chim.assign(sample_type="PB"),
            chim.iloc[[4]].assign(population="CIK", events=900, sample_type="product_post"),
        ]
    )
    assert _too_small(typed) == {("PB", "CIK")}
    # the cells/µL series keep a small population's count: never "too few" there
    row = {"measure": "donor_per_ul", "last_detectable_day": np.nan, "failed_days": "", **small}
    assert str(half_life_cell(row)) == "not detected"


def test_a_patients_product_bag_series_are_named_beside_the_blood():
    """trends.csv has a series per sample type; the page showed three "NK % donor" rows
    (blood, the bag before and after selection) with nothing to tell them apart."""
    from cytokit.report.tables import trends_table

    trends = _trends(3).assign(population="NK", sample_type=["PB", "product_pre", "product_post"])
    html = trends_table(trends, ["NK"])
    for kind in ("PB", "product_pre", "product_post"):
        assert f"% donor ({kind})" in html
    # one kind only (blood): no label
    assert "(PB)" not in trends_table(trends.assign(sample_type="PB"), ["NK"])


def test_series_of_several_sample_types_are_named_with_their_sample_type():
    """A patient with a blood and a bag series of a population: the never-detected note
    read "CIK (day 14, 28 failed), CIK", and the summary rows "CIK" twice."""
    from cytokit.report.tables import persistence_summary

    trends = pd.concat(
        [
            _trends(2).assign(sample_type="PB", failed_days=["", "14; 28"]),
            _trends(2).assign(sample_type="product_post", failed_days=""),
        ],
        ignore_index=True,
    ).assign(measure="donor_per_ul", stratum="NK", last_detectable_day=[21.0, np.nan, 7.0, np.nan])
    html = persistence_summary(trends, ["P01"])
    assert (
        "Donor cells detected on no day (not listed): "
        "P01: pop1 (PB; day 14, 28 failed), pop1 (product_post)." in html
    )
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)[2] for r in rows]
    assert cells == ["pop0 (PB)", "pop0 (product_post)"]
    # one sample type: the population alone, as before
    html = persistence_summary(trends[trends["sample_type"] == "PB"], ["P01"])
    assert "P01: pop1 (day 14, 28 failed)." in html


def test_qc_flags_are_per_sample_type_where_a_patient_has_several():
    """A PB and a BM series grouped by population alone read "donor CIK: too few cells
    to judge on day 3, 3, 14, 14" (each day twice, the two series mixed)."""
    from types import SimpleNamespace

    from cytokit.report.page import patient_flags

    empty = pd.DataFrame()
    chim = pd.DataFrame(
        {
            "patient": "P01",
            "day": [3, 3, 14, 14, 28, 28],
            "file": ["a", "a_BM", "b", "b_BM", "c", "c_BM"],
            "sample_type": ["PB", "BM"] * 3,
            "population": "CIK",
            "events": [28, 10, 500, 15, 40, 12],
            "donor_events": 0,
            "status": "not_detected",
        }
    )
    results = SimpleNamespace(
        failures=empty, chimerism=chim, samples=empty, thresholds=empty, qc=empty,
        study={"patients": [{"id": "P01"}], "settings": {"qc": {"min_events": 50}}},
    )  # fmt: skip
    flags = patient_flags(results)["P01"]
    assert "donor CIK (BM): too few cells to judge on day 3, 14, 28" in flags
    assert "donor CIK (PB): not detected on day 14; too few cells to judge on day 3, 28" in flags
    small = [f for f in flags if "fewer than" in f]
    assert small == [
        "CIK (BM): fewer than 50 events in the population on day 3 (10), day 14 (15), day 28 "
        "(12): chimerism not quantifiable there",
        "CIK (PB): fewer than 50 events in the population on day 3 (28), day 28 (40): "
        "chimerism not quantifiable there",
    ]


def test_the_failed_days_note_names_every_series_failed_days():
    """A patient's blood failed on day 14 and marrow on day 7: the note named day 7 only."""
    import pandas as pd

    from cytokit.report.tables import failed_days_note

    trends = pd.DataFrame({"patient": ["P01", "P01", "P02"], "failed_days": ["14", "7", None]})
    note = failed_days_note(trends)
    assert "P01 (day 7, 14)" in note and "P02" not in note
