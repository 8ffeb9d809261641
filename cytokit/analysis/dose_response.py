"""Dose against persistence per cell product, patients of several products included.

``cohort.csv`` relates dose to persistence only when every patient of a
stratum received the same single product (a DLI + CIK patient's doses are
never summed). `dose_response` reads each product on its own: for every
cell product of the schedule, the patients given it, that product's total
dose (`cytokit.clinical.dose_totals`, in its own unit) against their AUC and
peak (``trends.csv``, peripheral blood when the patient has it), with
Spearman's rank correlation (`cytokit.analysis.trends` computes it the same
way for cohort.csv; empty below 3 patients). A patient who received several
products appears in each product's rows, and the note counts them: their
persistence is not that product's alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytokit.analysis.trends import _spearman

__all__ = ["DOSE_RESPONSE_COLUMNS", "dose_response"]

DOSE_RESPONSE_COLUMNS = (
    "product", "unit", "population", "measure", "n_patients", "n_several_products",
    "dose_median", "dose_min", "dose_max", "dose_auc_spearman", "dose_peak_spearman",
    "n_auc_spearman", "n_peak_spearman", "note",
)  # fmt: skip


def _one_series(trends: pd.DataFrame) -> pd.DataFrame:
    """One trends row per patient, population and measure: the PB series when there is one."""
    if "sample_type" in trends.columns:
        rank = (trends["sample_type"].astype(str) != "PB").astype(int)
        trends = trends.assign(_rank=rank).sort_values(
            ["patient", "population", "measure", "_rank"], kind="stable"
        )
    keys = ["patient", "population", "measure"]
    return trends.drop_duplicates(keys, keep="first")


def dose_response(treatments, trends: pd.DataFrame) -> pd.DataFrame:
    """Per cell product, population and measure: dose against AUC and peak.

    Parameters
    ----------
    treatments : sequence of Treatment
        The schedule (`cytokit.clinical.read_treatments`).
    trends : DataFrame
        ``trends.csv`` (patient, sample_type, population, measure, auc, peak_value).

    Returns
    -------
    DataFrame
        `DOSE_RESPONSE_COLUMNS`, sorted by product, population and measure.
    """
    from cytokit.clinical.treatments import dose_totals

    totals = dose_totals(treatments)
    cells = totals[(totals["kind"] == "cells") & totals["n_given"].gt(0)]
    if cells.empty or trends.empty:
        return pd.DataFrame(columns=list(DOSE_RESPONSE_COLUMNS))
    products_of = cells.groupby("patient")["product"].nunique()
    series = _one_series(trends)
    series = series.assign(patient=series["patient"].astype(str))
    rows = []
    for product, doses in cells.groupby("product", sort=True):
        dose_of = dict(zip(doses["patient"].astype(str), doses["total_dose"], strict=True))
        unit = next((u for u in doses["unit"] if isinstance(u, str) and u), "")
        mine = series[series["patient"].isin(dose_of)]
        for (population, measure), g in mine.groupby(["population", "measure"], sort=True):
            dose = g["patient"].map(dose_of).to_numpy(dtype=float)
            auc = g["auc"].to_numpy(dtype=float)
            peak = g["peak_value"].to_numpy(dtype=float)
            known = dose[np.isfinite(dose)]
            several = int((g["patient"].map(products_of) > 1).sum())
            notes = []
            if several:
                notes.append(
                    f"{several} patient(s) also received another cell product: their "
                    "persistence is not this product's alone"
                )
            if known.size < len(dose):
                notes.append(f"dose unknown for {len(dose) - known.size} patient(s)")
            if known.size < 3:
                notes.append("fewer than 3 patients with a dose: no correlation")
            elif np.unique(known).size == 1:
                notes.append("every patient the same dose: no correlation")
            rows.append(
                {
                    "product": product,
                    "unit": unit,
                    "population": population,
                    "measure": measure,
                    "n_patients": len(g),
                    "n_several_products": several,
                    "dose_median": float(np.median(known)) if known.size else np.nan,
                    "dose_min": float(known.min()) if known.size else np.nan,
                    "dose_max": float(known.max()) if known.size else np.nan,
                    "dose_auc_spearman": _spearman(dose, auc),
                    "dose_peak_spearman": _spearman(dose, peak),
                    # the patients each correlation read: a dose and a value (a failed day
                    # or a never-detected peak leaves a patient out)
                    "n_auc_spearman": int((np.isfinite(dose) & np.isfinite(auc)).sum()),
                    "n_peak_spearman": int((np.isfinite(dose) & np.isfinite(peak)).sum()),
                    "note": "; ".join(notes),
                }
            )
    return pd.DataFrame(rows, columns=list(DOSE_RESPONSE_COLUMNS))
