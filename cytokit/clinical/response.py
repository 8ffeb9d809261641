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

#: One row per group: the response categories, responders, non-responders, then the
#: comparison of the last two (its p-values; the groups' rows leave them empty).
RESPONSE_COLUMNS = (
    "group", "n", "n_detected", "n_not_detected", "peak_median", "peak_q1", "peak_q3",
    "auc_median", "auc_q1", "auc_q3", "last_detectable_day_median", "last_detectable_day_q1",
    "last_detectable_day_q3", "p_peak", "p_auc", "p_last_detectable_day", "p_detected", "test",
    "note",
)  # fmt: skip
MEASURES = ("peak_value", "auc", "last_detectable_day")
#: Column prefix of each measure.
PREFIX = {"peak_value": "peak", "auc": "auc", "last_detectable_day": "last_detectable_day"}
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
        `RESPONSE_COLUMNS`, one row per group: each category, ``responders``
        and ``non-responders`` (patients, those with donor cells detected and
        not, median and quartiles of peak, AUC and last detectable day), then
        ``responders vs non-responders`` with a p-value per measure (empty
        and the note saying why when a group is too small).
    """
    table = persistence_by_response(outcomes, points, responders=responders)
    # a failed sample might have shown donor cells: without a detection elsewhere the
    # patient's persistence is unknown, not absent
    unknown = (table["n_failed"] > 0) & ~table["detected"].astype(bool)
    left_out = table[unknown]
    table = table[~unknown]
    unsampled = sum(o.response is not None for o in outcomes) - len(table) - int(unknown.sum())

    def groups_of(frame: pd.DataFrame) -> list[tuple[str, pd.Series]]:
        split = [("responders", frame["responder"]), ("non-responders", ~frame["responder"])]
        return [*((c, frame["response"] == c) for c in categories), *split]

    rows = [_describe(name, table[sel]) for name, sel in groups_of(table)]
    # each group's row says whom it left out, as the comparison row says of them all
    for row, (_, sel) in zip(rows, groups_of(left_out), strict=True):
        if int(sel.sum()):
            said = (
                f"{int(sel.sum())} assessed patient(s) left out: a sample failed by their "
                "response day and none showed donor cells"
            )
            row["note"] = "; ".join(n for n in (row["note"], said) if n)
    rows.append(_compare(table[table["responder"]], table[~table["responder"]], min_group))
    notes = []
    if unsampled:
        notes.append(f"{unsampled} assessed patient(s) without a sample by their response day")
    if unknown.any():
        notes.append(
            f"{int(unknown.sum())} assessed patient(s) left out: a sample failed by their "
            "response day and none showed donor cells"
        )
    if notes:
        rows[-1]["note"] = "; ".join(n for n in (rows[-1]["note"], *notes) if n)
    return pd.DataFrame(rows, columns=list(RESPONSE_COLUMNS))


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


def _describe(name: str, group: pd.DataFrame) -> dict:
    row: dict = {c: math.nan for c in RESPONSE_COLUMNS}
    detected = int(group["detected"].sum()) if len(group) else 0
    row.update(group=name, n=len(group), n_detected=detected, n_not_detected=len(group) - detected)
    row.update(test="", note="")
    for measure in MEASURES:
        v = _values(measure, group)
        if v.size:
            q1, median, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
            prefix = PREFIX[measure]
            row.update({f"{prefix}_median": median, f"{prefix}_q1": q1, f"{prefix}_q3": q3})
    detected = group["detected"].astype(bool).to_numpy()
    measured = np.isfinite(group["last_detectable_day"].to_numpy(dtype=np.float64))
    never = int((~detected).sum())
    # a detected patient whose measures are blank had a failed sample by the response day
    # (`persistence_table`): those are unknown, not "never detected"
    failed = int((detected & ~measured).sum())
    notes = []
    if never:
        notes.append(
            f"peak and last detectable day of the {never} never detected left out (their "
            "AUC counts as 0)"
        )
    if failed:
        notes.append(
            f"peak, AUC and last detectable day of {failed} detected patient(s) left out: "
            "a sample failed by the response day"
        )
    row["note"] = "; ".join(notes)
    return row


def _compare(yes: pd.DataFrame, no: pd.DataFrame, min_group: int) -> dict:
    """The comparison row: Mann-Whitney U per measure, Fisher's exact test of detection."""
    from scipy import stats

    row = _describe(COMPARISON, pd.concat([yes, no]))
    for measure in MEASURES:
        prefix = PREFIX[measure]
        row.update(
            {f"{prefix}_median": math.nan, f"{prefix}_q1": math.nan, f"{prefix}_q3": math.nan}
        )
    tests, notes = [], []
    for measure in MEASURES:
        a, b = _values(measure, yes), _values(measure, no)
        if a.size < min_group or b.size < min_group:
            notes.append(
                f"{PREFIX[measure]}: too few patients to test ({a.size} responders vs "
                f"{b.size} non-responders, need {min_group} per group)"
            )
            continue
        pooled = np.concatenate([a, b])
        exact = np.unique(pooled).size == pooled.size and max(a.size, b.size) <= EXACT_MAX
        result = stats.mannwhitneyu(
            a, b, alternative="two-sided", method="exact" if exact else "asymptotic"
        )
        row[f"p_{PREFIX[measure]}"] = float(result.pvalue)
        tests.append(
            f"{PREFIX[measure]}: Mann-Whitney U = {float(result.statistic):g}"
            + (" (exact)" if exact else " (normal approximation)")
        )
    n_yes, n_no = len(yes), len(no)
    if n_yes < min_group or n_no < min_group:
        notes.append(
            f"detected: too few patients to test ({n_yes} responders vs {n_no} "
            f"non-responders, need {min_group} per group)"
        )
    else:
        a, b = int(yes["detected"].sum()), int(no["detected"].sum())
        odds, p = stats.fisher_exact([[a, n_yes - a], [b, n_no - b]])
        row["p_detected"] = float(p)
        tests.append(f"detected: Fisher's exact test, odds ratio {float(odds):.3g}")
    row["test"] = "; ".join(tests)
    row["note"] = "; ".join(notes)
    return row
