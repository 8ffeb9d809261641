"""The report's Outcomes section: survival, landmark, GVHD, dose escalation, response.

`outcomes_section` renders it from the outcome tables of `Results.clinical`
(written by ``cytokit analyze`` when the study has ``outcomes.csv``); a
study without them gets no section. The figures are embedded in the page
(Kaplan-Meier PFS and OS with 95 % intervals and the numbers at risk under
each plot; the cumulative incidence of acute GVHD), the landmark result is one
plain sentence per endpoint, and dose escalation and response against
persistence are tables, after a table of the survival medians, the estimates at
the horizon, the follow-up and the response rates (``outcomes_summary.csv``).
"""

from __future__ import annotations

import math

import pandas as pd

from cytokit._figures import figure_bytes
from cytokit.analysis.results import Results
from cytokit.errors import CytokitError
from cytokit.report._html import esc, figure, fmt, nonempty, table

__all__ = ["outcomes_section"]

_ENDPOINTS = {"pfs": "progression-free survival", "os": "overall survival"}


def _curve(survival: pd.DataFrame, analysis: str, group_by: str, caption: str) -> str:
    from cytokit.plots.outcomes import survival_figure  # matplotlib, only where there is a curve

    try:
        fig = survival_figure(survival, analysis, group_by)
    except CytokitError:
        return ""
    return figure(figure_bytes(fig, "png"), caption)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cells(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    out = []
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            if isinstance(v, str):
                cells.append(v)
            elif v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
                cells.append("")
            else:
                x = _number(v)  # counts and levels are whole numbers: no "1.00"
                cells.append(fmt(x, integer=math.isfinite(x) and x == int(x)))
        out.append(cells)
    return out


def landmark_sentence(row) -> str:
    """One plain sentence of a ``landmark.csv`` row."""
    endpoint = _ENDPOINTS.get(str(row["endpoint"]), str(row["endpoint"]))
    day = int(_number(row["landmark_day"]))
    kinds = ("n_excluded_event", "n_excluded_followup", "n_excluded_no_sample", "n_excluded_failed")
    excluded = sum(int(_number(row.get(c))) for c in kinds if math.isfinite(_number(row.get(c))))
    failed = _number(row.get("n_excluded_failed"))
    why = (
        f", {int(failed)} of them because a sample failed and none showed donor cells"
        if math.isfinite(failed) and failed > 0
        else ""
    )
    head = (
        f"Landmark at day {day} ({endpoint}): {int(_number(row['n_eligible']))} of "
        f"{int(_number(row['n_patients']))} patients were alive and event-free then, "
        f"with a usable sample ({excluded} excluded{why})"
    )
    hr = _number(row["hazard_ratio"])
    p = _number(row.get("logrank_p"))
    note = str(row["note"]) if isinstance(row.get("note"), str) and row["note"] else ""
    n1, n0 = _number(row.get("n_1")), _number(row.get("n_0"))
    if not (math.isfinite(hr) or math.isfinite(p)) or not (n1 > 0 and n0 > 0):
        return f"{head}; no comparison" + (f": {note}." if note else ".")
    groups = (
        f"{row['group_1']} ({int(n1)} patients, {int(_number(row['events_1']))} events) "
        f"against {row['group_0']} ({int(n0)}, {int(_number(row['events_0']))})"
    )
    stratified = " (stratified by stratum)" if "stratified" in note else ""
    if math.isfinite(hr):
        low, high = fmt(_number(row["hr_ci_low"])), fmt(_number(row["hr_ci_high"]))
        said = f"hazard ratio {fmt(hr)} (95 % CI {low}–{high})"
    else:  # the log-rank test stands where the Cox model has no estimate
        said = "hazard ratio not estimable" + (f" ({note})" if note else "")
    tail = f", log-rank p = {fmt(p)}" if math.isfinite(p) else ""
    return f"{head}; {groups}: {said}{tail}{stratified}."


def outcomes_section(results: Results) -> str:
    """The Outcomes section's HTML, or "" when the results have no outcome tables."""
    tables = results.clinical
    if "outcomes_summary" not in tables:  # a schedule alone (treatments) has no outcomes
        return ""
    parts = ['<section id="outcomes">', "<h2>Outcomes</h2>"]
    survival = tables.get("survival", pd.DataFrame())
    if nonempty(survival):
        for analysis in ("pfs", "os"):
            title = _ENDPOINTS[analysis].capitalize()
            parts.append(_curve(survival, analysis, "all", f"{title}, 95 % CI, numbers at risk"))
            parts.append(_curve(survival, analysis, "stratum", f"{title} by stratum"))
        parts.append(
            _curve(survival, "agvhd", "all", "Cumulative incidence of acute GVHD (death competing)")
        )
    summary = tables.get("outcomes_summary", pd.DataFrame())
    if nonempty(summary):
        parts.append(_summary_table(summary))
    landmark = tables.get("landmark", pd.DataFrame())
    if nonempty(landmark):
        items = "".join(f"<li>{esc(landmark_sentence(r))}</li>" for _, r in landmark.iterrows())
        parts.append(f"<h3>Landmark analysis by persistence</h3><ul>{items}</ul>")
    escalation = tables.get("dose_escalation", pd.DataFrame())
    if nonempty(escalation):
        cols = ["product", "dose_level", "dose", "unit", "n_patients", "n_evaluable", "n_dlt"]
        cols += ["decision", "mtd", "note"]
        parts.append("<h3>Dose escalation</h3>")
        parts.append(table(cols, _cells(escalation, cols)))
    response = tables.get("response", pd.DataFrame())
    if nonempty(response):
        cols = ["group", "n", "n_detected", "n_not_detected", "peak_median", "auc_median"]
        cols += ["last_detectable_day_median", "p_peak", "p_auc", "p_last_detectable_day"]
        cols += ["p_detected", "test", "note"]
        unit, auc = _units(results)
        heads = ["group", "patients", "donor cells detected", "not detected",
                 f"peak, median ({unit})", f"AUC, median ({auc})", "last detectable day, median",
                 "p (peak)", "p (AUC)", "p (last day)", "p (detected)", "test", "note"]  # fmt: skip
        parts.append("<h3>Response against persistence</h3>")
        parts.append(table(heads, _cells(response, cols), caption=_RESPONSE_CAPTION))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


_RESPONSE_CAPTION = (
    "Persistence up to the response day by response (medians of the patients with a value)"
)


def _units(results: Results) -> tuple[str, str]:
    """The persistence measure's unit and its AUC's (``[outcomes] measure``)."""
    measure = ((results.study.get("config") or {}).get("outcomes") or {}).get("measure")
    if measure == "donor_pct":
        return "% donor", "% × days"
    return "donor cells/µL", "cells/µL × days"


_SECTIONS = {
    "pfs": "progression-free survival",
    "os": "overall survival",
    "followup": "follow-up (reverse Kaplan–Meier)",
    "agvhd": "acute GVHD, cumulative incidence (death competing)",
}


def _summary_table(summary: pd.DataFrame) -> str:
    """Medians with their 95 % intervals, the estimate at the horizon, follow-up and
    response rates: the numbers ``outcomes_summary.csv`` holds, in words."""
    rows = []
    for r in summary.to_dict("records"):
        section = str(r.get("section"))
        if section not in (*_SECTIONS, "response"):
            continue
        group = "all" if r.get("group_by") == "all" else f"{r.get('group_by')} {r.get('group')}"
        if section == "response":
            what, group = f"response {r.get('group')}", "all assessed"
            median = ""
            n, k = _number(r.get("n")), _number(r.get("events"))
            at = f"{fmt(k, integer=True)} of {fmt(n, integer=True)} patients"
        elif section == "agvhd":  # an incidence at the horizon: no median time
            what, median, at = _SECTIONS[section], "", ""
        else:
            what = _SECTIONS[section]
            m, lo, hi = (
                _number(r.get(c)) for c in ("median_days", "median_ci_low", "median_ci_high")
            )
            if not math.isfinite(m):  # its interval's lower end may be known all the same
                median = "not reached" + (
                    f" (95 % CI from {fmt(lo)} d)" if math.isfinite(lo) else ""
                )
            else:
                median = (
                    f"{fmt(m)} d ({fmt(lo) if math.isfinite(lo) else '–'}–"
                    f"{fmt(hi) if math.isfinite(hi) else 'not reached'})"
                )
            at = ""
        est, lo, hi = (_number(r.get(c)) for c in ("estimate", "ci_low", "ci_high"))
        horizon = _number(r.get("horizon_day"))
        if math.isfinite(est):
            where = f" at day {fmt(horizon, integer=True)}" if math.isfinite(horizon) else ""
            at = (at + "; " if at else "") + (
                f"{fmt(100 * est)} %{where} ({fmt(100 * lo)}–{fmt(100 * hi)} %)"
            )
        events = "" if section == "response" else fmt(_number(r.get("events")), integer=True)
        rows.append([what, group, fmt(_number(r.get("n")), integer=True), events, median, at,
                     r.get("note") if isinstance(r.get("note"), str) else ""])  # fmt: skip
    if not rows:
        return ""
    heads = ["", "group", "patients", "events", "median (95 % CI)", "estimate (95 % CI)", "note"]
    return table(
        heads, rows, caption="Survival, follow-up and response (outcomes_summary.csv)",
        numeric=[False, False, True, True, True, True, False],
    )  # fmt: skip
