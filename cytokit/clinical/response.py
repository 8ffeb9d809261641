"""Response against persistence: did patients who responded have more donor cells?

Persistence is measured from day 0 up to each patient's response assessment
(`cytokit.clinical.landmark.persistence_table` with the response day): what
happened after the assessment cannot explain it, and a patient followed
longer would otherwise accumulate AUC and a later last detectable day.

Per response category and for responders versus non-responders
(``[outcomes] responders``): the number of patients, median and quartiles of
the peak, the AUC and the last detectable day (not detected: left out of
that one measure, and counted), and the patients with donor cells detected.
Responders and non-responders are compared by the two-sided Mann–Whitney U
test (exact without ties and up to `EXACT_MAX` patients a group, else the
normal approximation with tie and continuity correction) and detection by Fisher's exact test.
With fewer than ``min_group`` patients in either group no test is run and the
note says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cytokit.clinical.landmark import persistence_table
from cytokit.clinical.outcomes import Outcome

__all__ = ["RESPONSE_COLUMNS", "persistence_by_response", "response_vs_persistence"]

RESPONSE_COLUMNS = (
    "measure", "group", "n", "n_detected", "median", "q1", "q3", "test", "statistic",
    "p_value", "note",
)  # fmt: skip
MEASURES = ("peak_value", "auc", "last_detectable_day")
COMPARISON = "responders vs non-responders"
#: Largest group for the exact Mann-Whitney distribution.
EXACT_MAX = 50


def response_vs_persistence(
    outcomes: Sequence[Outcome],
    points: pd.DataFrame,
    *,
    categories: Sequence[str] = ("CR", "PR", "SD", "PD"),
    responders: Sequence[str] = ("CR", "PR"),
    min_group: int = 3,
) -> pd.DataFrame:
    """Persistence measures by response category, and responders compared with the others.

    Parameters
    ----------
    outcomes : sequence of Outcome
    points : DataFrame
        Persistence points (`cytokit.clinical.landmark.POINT_COLUMNS`).
    categories, responders : sequence of str
    min_group : int

    Returns
    -------
    DataFrame
        `RESPONSE_COLUMNS`: per measure (``peak_value``, ``auc``,
        ``last_detectable_day``, ``detected``), a row per category, one for
        responders and non-responders each, and one (group
        ``responders vs non-responders``) with the test.
    """
    table = persistence_by_response(outcomes, points, responders=responders)
    unsampled = sum(o.response is not None for o in outcomes) - len(table)
    rows: list[dict] = []
    groups = [(c, table["response"] == c) for c in categories]
    groups += [("responders", table["responder"]), ("non-responders", ~table["responder"])]
    for measure in (*MEASURES, "detected"):
        for name, sel in groups:
            rows.append(_describe(measure, name, table[sel]))
        rows.append(
            _compare(measure, table[table["responder"]], table[~table["responder"]], min_group)
        )
    frame = pd.DataFrame(rows, columns=list(RESPONSE_COLUMNS))
    if unsampled:
        note = f"{unsampled} assessed patient(s) without a sample by their response day"
        frame.loc[frame["group"] == COMPARISON, "note"] = [
            "; ".join(n for n in (old, note) if n)
            for old in frame.loc[frame["group"] == COMPARISON, "note"]
        ]
    return frame


def persistence_by_response(
    outcomes: Sequence[Outcome], points: pd.DataFrame, *, responders: Sequence[str] = ("CR", "PR")
) -> pd.DataFrame:
    """Per assessed patient: persistence up to the response day, the response, responder or not.

    Returns
    -------
    DataFrame
        `cytokit.clinical.landmark.PERSISTENCE_COLUMNS` plus ``response`` and
        ``responder``; patients without a sample by their response day are
        absent.
    """
    assessed = {o.patient: o for o in outcomes if o.response is not None}
    table = persistence_table(points, until={p: o.response_day for p, o in assessed.items()})
    table["response"] = table["patient"].map({p: o.response for p, o in assessed.items()})
    table["responder"] = table["response"].isin(list(responders))
    return table


def _values(measure: str, group: pd.DataFrame) -> np.ndarray:
    v = group[measure].to_numpy(dtype=np.float64)
    return v[np.isfinite(v)]


def _describe(measure: str, name: str, group: pd.DataFrame) -> dict:
    row = {
        "measure": measure,
        "group": name,
        "n": len(group),
        "n_detected": int(group["detected"].sum()) if len(group) else 0,
        "median": math.nan,
        "q1": math.nan,
        "q3": math.nan,
        "test": "",
        "statistic": math.nan,
        "p_value": math.nan,
        "note": "",
    }
    if measure == "detected":
        return row
    v = _values(measure, group)
    if v.size:
        row["q1"], row["median"], row["q3"] = (float(x) for x in np.percentile(v, [25, 50, 75]))
    if measure == "last_detectable_day" and v.size < len(group):
        row["note"] = f"{len(group) - v.size} patient(s) never detected, left out"
    return row


def _compare(measure: str, yes: pd.DataFrame, no: pd.DataFrame, min_group: int) -> dict:
    from scipy import stats

    row = _describe(measure, COMPARISON, pd.concat([yes, no]))
    row.update(median=math.nan, q1=math.nan, q3=math.nan, note="")
    if measure == "detected":
        a, b = int(yes["detected"].sum()), int(no["detected"].sum())
        n_yes, n_no = len(yes), len(no)
    else:
        a_values, b_values = _values(measure, yes), _values(measure, no)
        n_yes, n_no = a_values.size, b_values.size
    if n_yes < min_group or n_no < min_group:
        row["note"] = (
            f"too few patients to test: {n_yes} responders vs {n_no} non-responders "
            f"(need {min_group} per group)"
        )
        return row
    if measure == "detected":
        table = [[a, n_yes - a], [b, n_no - b]]
        odds, p = stats.fisher_exact(table)
        row.update(test="Fisher's exact test", statistic=float(odds), p_value=float(p))
        row["note"] = "statistic: odds ratio of detection, responders vs non-responders"
    else:
        pooled = np.concatenate([a_values, b_values])
        exact = np.unique(pooled).size == pooled.size and max(n_yes, n_no) <= EXACT_MAX
        result = stats.mannwhitneyu(
            a_values, b_values, alternative="two-sided", method="exact" if exact else "asymptotic"
        )
        row.update(
            test="Mann-Whitney U" + (" (exact)" if exact else " (normal approximation)"),
            statistic=float(result.statistic),
            p_value=float(result.pvalue),
        )
    return row
