"""Dose against persistence per cell product (`cytokit.analysis.dose_response`).

Truth: Spearman's rho worked by hand from ranks, 1 − 6Σd²/(n(n²−1)) without ties.
"""

from __future__ import annotations

import math

import pandas as pd

from cytokit.analysis.dose_response import dose_response
from cytokit.clinical import Treatment


def _cells(patient, day, product, dose, given=True):
    return Treatment(patient, day, product, "cells", dose, "CD3+ cells/kg", None, given)


TREATMENTS = [
    _cells("P1", 0, "DLI", 1e6), _cells("P1", 21, "DLI", 1e6),
    _cells("P1", 42, "CIK", 3e6), _cells("P1", 63, "CIK", 5e6),
    _cells("P1", 84, "CIK", 1e7, given=False),  # skipped: adds no dose
    _cells("P2", 0, "DLI", 1e6), _cells("P2", 42, "CIK", 3e6),
    _cells("P3", 0, "CIK", 1e7),
    Treatment("P3", 1, "IL-2", "drug", 1.0, "MIU/m2"),
]  # fmt: skip
TRENDS = pd.DataFrame(
    {
        "patient": ["P1", "P2", "P3", "P1"],
        "sample_type": ["PB", "PB", "PB", "BM"],
        "population": ["CIK"] * 4,
        "measure": ["donor_per_ul"] * 4,
        "auc": [10.0, 5.0, 20.0, 999.0],
        "peak_value": [3.0, 9.0, 1.0, 999.0],
    }
)


def test_each_product_reads_its_own_dose():
    table = dose_response(TREATMENTS, TRENDS).set_index("product")
    assert list(table.index) == ["CIK", "DLI"]  # no drug row
    cik = table.loc["CIK"]
    # CIK doses: P1 3e6 + 5e6 = 8e6 (the skipped 1e7 not given), P2 3e6, P3 1e7
    assert (cik["n_patients"], cik["n_several_products"]) == (3, 2)
    assert (cik["dose_median"], cik["dose_min"], cik["dose_max"]) == (8e6, 3e6, 1e7)
    # dose ranks (2, 1, 3); AUC (PB series, not P1's BM) ranks (2, 1, 3): rho = 1
    assert math.isclose(cik["dose_auc_spearman"], 1.0)
    # peak ranks (2, 3, 1): d = (0, -2, 2), rho = 1 - 6*8/24 = -1
    assert math.isclose(cik["dose_peak_spearman"], -1.0)
    assert "2 patient(s) also received another cell product" in cik["note"]
    dli = table.loc["DLI"]
    # DLI doses: P1 2e6, P2 1e6; two patients: no correlation, and it says so
    assert dli["n_patients"] == 2 and dli["dose_max"] == 2e6
    assert math.isnan(dli["dose_auc_spearman"]) and "fewer than 3" in dli["note"]


def test_no_schedule_or_no_trends_is_an_empty_table():
    assert dose_response([], TRENDS).empty
    assert dose_response(TREATMENTS, TRENDS.iloc[0:0]).empty


def test_one_dose_for_all_says_why_there_is_no_correlation():
    same = [_cells(p, 0, "NK", 1.5e7) for p in ("P1", "P2", "P3")]
    trends = TRENDS.assign(population="NK").iloc[:3]
    row = dose_response(same, trends).iloc[0]
    assert math.isnan(row["dose_auc_spearman"]) and "same dose" in row["note"]


def test_each_correlation_says_how_many_patients_it_read():
    """A failed day (no AUC) or a never-detected peak left patients out of each rho without a
    word: n_patients said 3 where the peak's rho read 2."""
    trends = TRENDS.assign(auc=[10.0, 5.0, 20.0, 999.0], peak_value=[3.0, float("nan"), 1.0, 999.0])
    cik = dose_response(TREATMENTS, trends).set_index("product").loc["CIK"]
    assert cik["n_patients"] == 3
    assert (cik["n_auc_spearman"], cik["n_peak_spearman"]) == (3, 2)
    assert math.isclose(cik["dose_auc_spearman"], 1.0) and math.isnan(cik["dose_peak_spearman"])
