"""Persistence read against survival without guarantee-time bias: the landmark analysis.

Comparing patients whose donor cells "ever persisted" with those whose cells
did not favours the first group by construction: to be seen persisting a
patient must live, free of progression, long enough to be sampled, and the
monitoring stops at progression. The landmark method (Anderson, Cain & Gelber,
J Clin Oncol 1983;1:710-719) fixes the comparison at a day L: only patients
alive and event-free at L enter, they are grouped by what was measured on or
before L, and their survival is counted from L. Patients with an event (or
the end of their follow-up) before L are excluded and counted.

Persistence input
-----------------
The persistence of donor cells is given as points, one row per patient and
sampling day (from ``chimerism.csv`` for one population and sample type):

==========  ===============================================================
column      meaning
==========  ===============================================================
patient     patient identifier
day         sampling day (manifest axis)
value       the measure (donor cells/µL or donor %)
status      ``quantified``, ``not_quantifiable`` or ``not_detected``
            (`cytokit.analysis.chimerism`); detected = one of the first two;
            ``failed``: the day's sample gave no numbers (value empty)
==========  ===============================================================

A failed sample is not a sample without donor cells: a patient with one in
the window and none detected is left out of a detection comparison (status
``a sample failed by landmark``, counted in ``n_excluded_failed``), and of
a peak or AUC comparison whatever the others showed (their peak, AUC and
last detectable day are empty in `persistence_table`, ``n_failed`` says
why).

`persistence_table` summarises them per patient over a window (from day 0
up to a day, or a per-patient day): peak, area under the curve and last
detectable day (`cytokit.analysis.trends.trend_row`, so they are the numbers
``trends.csv`` reports for that window), and the first detectable day.
Measures over the whole follow-up would reintroduce the bias: a patient who
lives longer is sampled longer and accumulates AUC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytokit.clinical.survival import hazard_ratio, logrank

__all__ = [
    "LANDMARK_COLUMNS",
    "PERSISTENCE_COLUMNS",
    "POINT_COLUMNS",
    "LandmarkResult",
    "landmark_analysis",
    "persistence_table",
]

POINT_COLUMNS = ("patient", "day", "value", "status")
PERSISTENCE_COLUMNS = (
    "patient", "until_day", "n_samples", "detected", "first_detectable_day",
    "last_detectable_day", "peak_day", "peak_value", "auc", "auc_days", "n_failed",
)  # fmt: skip
LANDMARK_COLUMNS = (
    "endpoint", "landmark_day", "group_by", "threshold", "n_patients", "n_eligible",
    "n_excluded_event", "n_excluded_followup", "n_excluded_no_sample", "n_excluded_failed",
    "group_1", "n_1",
    "events_1", "group_0", "n_0", "events_0", "hazard_ratio", "hr_ci_low", "hr_ci_high", "hr_p",
    "logrank_chi2", "logrank_p", "stratified", "note",
)  # fmt: skip
DETECTED = ("quantified", "not_quantifiable")
#: The status of a point whose sample failed (no measure: the file gave no numbers).
FAILED = "failed"
_LABELS = {
    "detection": ("detected", "not detected"),
    "auc": ("AUC above median", "AUC at or below median"),
    "peak": ("peak above median", "peak at or below median"),
}


def _check_points(points: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in POINT_COLUMNS if c not in points.columns]
    if missing:
        raise ValueError(
            f"persistence points lack column(s) {', '.join(missing)}; they need "
            f"{', '.join(POINT_COLUMNS)} (one row per patient and sampling day)"
        )
    frame = points.loc[:, list(POINT_COLUMNS)].copy()
    frame["patient"] = frame["patient"].astype(str)
    frame["day"] = pd.to_numeric(frame["day"], errors="coerce")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


def persistence_table(
    points: pd.DataFrame,
    *,
    until: float | Mapping[str, float] | None = None,
    summaries: bool = True,
) -> pd.DataFrame:
    """Per patient: detection, peak, AUC, first and last detectable day from day 0 to `until`.

    Parameters
    ----------
    points : DataFrame
        `POINT_COLUMNS` (see the module docstring).
    until : float or mapping, optional
        Last day counted: one day for everyone (a landmark), a day per
        patient (e.g. the response assessment; patients not in it are left
        out), or None for every point.
    summaries : bool
        Also the peak, AUC and last detectable day (False: detection only,
        those columns empty; `trend_row` fits a half-life each time).

    Returns
    -------
    DataFrame
        `PERSISTENCE_COLUMNS`, one row per patient with at least one point in
        the window (``n_samples`` counts the points from day 0 on).
    """
    from cytokit.analysis.trends import trend_row

    frame = _check_points(points).sort_values(["patient", "day"], kind="stable")
    patients, starts = np.unique(frame["patient"].to_numpy(dtype=object), return_index=True)
    bounds = [*starts.tolist(), len(frame)]
    all_days = frame["day"].to_numpy(dtype=np.float64)
    all_values = frame["value"].to_numpy(dtype=np.float64)
    all_status = frame["status"].astype(str).to_numpy(dtype=object)
    rows = []
    for k, patient in enumerate(patients.tolist()):
        if isinstance(until, Mapping):
            if until.get(patient) is None:
                continue
            limit = float(until[patient])
        else:
            limit = math.inf if until is None else float(until)
        part = slice(bounds[k], bounds[k + 1])
        days = all_days[part]
        window = (days >= 0) & (days <= limit)
        failed = window & (all_status[part] == FAILED)
        keep = window & ~failed
        if not window.any():
            continue
        days, status = days[keep], all_status[part][keep]
        detected = np.isin(status, DETECTED)
        if summaries and keep.any() and not failed.any():
            trend = trend_row(days, all_values[part][keep], status)
        else:
            # a failed sample's value is unknown: the peak, AUC and last detectable day
            # without it would be numbers of another series
            trend = dict.fromkeys(PERSISTENCE_COLUMNS[5:], math.nan)
        rows.append(
            {
                "patient": patient,
                "until_day": limit,
                "n_samples": int(days.size),
                "detected": bool(detected.any()),
                "first_detectable_day": float(days[detected][0]) if detected.any() else math.nan,
                "last_detectable_day": trend["last_detectable_day"],
                "peak_day": trend["peak_day"],
                "peak_value": trend["peak_value"],
                "auc": trend["auc"],
                "auc_days": trend["auc_days"],
                "n_failed": int(failed.sum()),
            }
        )
    return pd.DataFrame(rows, columns=list(PERSISTENCE_COLUMNS))


@dataclass(frozen=True)
class LandmarkResult:
    """One landmark comparison.

    Attributes
    ----------
    row : dict
        `LANDMARK_COLUMNS`.
    cohort : DataFrame
        Every patient: patient, stratum, status (``eligible`` or why excluded),
        value (the grouping measure), group (1, 0; empty when excluded),
        label, days (from the landmark), event.
    """

    row: dict
    cohort: pd.DataFrame


def landmark_analysis(
    endpoints: pd.DataFrame,
    points: pd.DataFrame,
    *,
    landmark_day: int = 28,
    by: str = "detection",
    endpoint: str = "pfs",
    min_group: int = 3,
    stratify: bool = True,
) -> LandmarkResult:
    """Survival from the landmark by persistence measured up to it.

    Parameters
    ----------
    endpoints : DataFrame
        `cytokit.clinical.outcomes.endpoints` (``<endpoint>_days``,
        ``<endpoint>_event``, ``stratum``).
    points : DataFrame
        Persistence points (`POINT_COLUMNS`).
    landmark_day : int
    by : {"detection", "auc", "peak"}
        Group 1: donor cells detected on or before the landmark; or AUC /
        peak up to the landmark above the median of the eligible patients.
    endpoint : {"pfs", "os"}
        Event-free (progression or death) or alive at the landmark.
    min_group : int
        Patients each group needs before the groups are compared.
    stratify : bool
        With more than one stratum among the eligible patients, stratify the
        log-rank test and the Cox model by stratum (strata may differ in
        prognosis and in persistence).

    Returns
    -------
    LandmarkResult
    """
    if by not in _LABELS:
        raise ValueError(f"by={by!r} must be one of {', '.join(_LABELS)}")
    if endpoint not in ("pfs", "os"):
        raise ValueError(f"endpoint={endpoint!r} must be 'pfs' or 'os'")
    days = endpoints[f"{endpoint}_days"].to_numpy(dtype=np.float64)
    event = endpoints[f"{endpoint}_event"].to_numpy(dtype=np.int64)
    persistence = persistence_table(
        points, until=landmark_day, summaries=by != "detection"
    ).set_index("patient")
    cohort = pd.DataFrame(
        {
            "patient": endpoints["patient"].astype(str).to_numpy(),
            "stratum": endpoints["stratum"].fillna("").astype(str).to_numpy(),
            "days": days - landmark_day,
            "event": event,
        }
    )
    event_before = (event == 1) & (days <= landmark_day)
    followup_before = (event == 0) & (days < landmark_day)
    sampled = cohort["patient"].isin(persistence.index).to_numpy()
    n_failed = cohort["patient"].map(persistence["n_failed"]).fillna(0).to_numpy()
    detected = cohort["patient"].map(persistence["detected"]).eq(True).to_numpy(dtype=bool)
    # a sample that failed might have shown donor cells: the group is unknown unless
    # another sample did (detection); a peak or AUC without its day is not the patient's
    unknown = sampled & (n_failed > 0) & ~((by == "detection") & detected)
    status = np.where(
        event_before,
        "event before landmark",
        np.where(
            followup_before,
            "follow-up ended before landmark",
            np.where(
                unknown,
                "a sample failed by landmark",
                np.where(sampled, "eligible", "no sample by landmark"),
            ),
        ),
    )
    cohort["status"] = status
    column = {"detection": "detected", "auc": "auc", "peak": "peak_value"}[by]
    cohort["value"] = cohort["patient"].map(persistence[column]).astype(np.float64)
    eligible = cohort["status"] == "eligible"
    threshold = math.nan
    if by == "detection":
        group = cohort["value"] > 0
    else:
        threshold = (
            float(np.nanmedian(cohort.loc[eligible, "value"])) if eligible.any() else math.nan
        )
        group = cohort["value"] > threshold
    cohort["group"] = pd.array(np.where(eligible, group.astype(int), 0), dtype="Int64")
    cohort.loc[~eligible, "group"] = pd.NA
    cohort.loc[~eligible, "days"] = math.nan
    names = _LABELS[by]
    cohort["label"] = np.where(~eligible, "", np.where(group, names[0], names[1]))
    row = _compare(cohort[eligible], min_group=min_group, stratify=stratify, names=names)
    row.update(
        endpoint=endpoint,
        landmark_day=landmark_day,
        group_by=by,
        threshold=threshold,
        n_patients=len(cohort),
        n_eligible=int(eligible.sum()),
        n_excluded_event=int((status == "event before landmark").sum()),
        n_excluded_followup=int((status == "follow-up ended before landmark").sum()),
        n_excluded_no_sample=int((status == "no sample by landmark").sum()),
        n_excluded_failed=int((status == "a sample failed by landmark").sum()),
    )
    return LandmarkResult({c: row.get(c, math.nan) for c in LANDMARK_COLUMNS}, cohort)


def _compare(eligible: pd.DataFrame, *, min_group: int, stratify: bool, names) -> dict:
    g = eligible["group"].to_numpy(dtype=np.int64) == 1
    t = eligible["days"].to_numpy(dtype=np.float64)
    e = eligible["event"].to_numpy(dtype=np.int64)
    row = {
        "group_1": names[0],
        "n_1": int(g.sum()),
        "events_1": int(e[g].sum()),
        "group_0": names[1],
        "n_0": int((~g).sum()),
        "events_0": int(e[~g].sum()),
        "stratified": False,
        "note": "",
    }
    if row["n_1"] < min_group or row["n_0"] < min_group:
        row["note"] = (
            f"too few patients to compare: {row['n_1']} {names[0]} vs {row['n_0']} "
            f"{names[1]} (need {min_group} per group)"
        )
        return row
    strata = eligible["stratum"].to_numpy()
    use = stratify and len({s for s in strata if s}) > 1
    chi2, p, _, _ = logrank(t, e, g, strata if use else None)
    row.update(logrank_chi2=chi2, logrank_p=p, stratified=bool(use))
    hr = hazard_ratio(t, e, g, strata if use else None)
    row.update({k: hr[k] for k in ("hazard_ratio", "hr_ci_low", "hr_ci_high", "hr_p")})
    notes = [n for n in (hr.get("note", ""),) if n and n != "stratified Cox model"]
    if use:
        notes.insert(0, "log-rank test and Cox model stratified by stratum")
    if not math.isfinite(chi2):
        notes.append("log-rank test not estimable: no events after the landmark")
    row["note"] = "; ".join(notes)
    return row
