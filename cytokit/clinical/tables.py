"""`analyze_outcomes`: every clinical table from treatments, outcomes and persistence.

Tables (tidy, one row per item; an empty cell is "not available", never 0):

``outcomes_summary``
    `SUMMARY_COLUMNS`, one row per section, grouping and group. Sections
    ``pfs`` and ``os`` (Kaplan–Meier: n, events, median days with its 95 %
    interval, the estimate at ``[outcomes] horizon_day`` with its interval),
    ``followup`` (median follow-up by the reverse Kaplan–Meier method),
    ``agvhd`` (cumulative incidence of acute GVHD >= ``gvhd_grade`` at
    ``gvhd_horizon_day``, death without it competing; by product and dose
    level), ``response`` (patients per category and responders, the
    proportion of the assessed with its exact 95 % interval). ``group_by`` is
    ``all``, ``stratum``, ``product`` or ``dose_level``.
``survival``
    `SURVIVAL_COLUMNS`: the curves as step tables (`cytokit.clinical.survival.
    STEP_COLUMNS`) per ``analysis`` (``pfs``, ``os``, ``pfs_landmark``,
    ``os_landmark`` (days from the landmark), ``agvhd``), ``group_by`` and
    ``group``: ``estimate`` is survival, or cumulative incidence for
    ``agvhd``.
``landmark``
    `cytokit.clinical.landmark.LANDMARK_COLUMNS`, for PFS and OS.
``dose_escalation``
    `cytokit.clinical.escalation.ESCALATION_COLUMNS`.
``response``
    `cytokit.clinical.response.RESPONSE_COLUMNS`.
``product_qc``
    `cytokit.clinical.product.PRODUCT_QC_COLUMNS` (when product samples are given).
``doses``
    `cytokit.clinical.treatments.DOSE_TOTAL_COLUMNS`: per patient and product.

Acute GVHD by product and dose level counts from the patient's first given
infusion of that product (or level) to their next given cell infusion of
anything else, so GVHD is attributed to the exposure in force at its onset
and a level skipped after GVHD does not gather it; its ``horizon_day`` is
then the shorter of ``gvhd_horizon_day`` and the longest such window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytokit.clinical.escalation import ESCALATION_COLUMNS, dose_escalation
from cytokit.clinical.landmark import LANDMARK_COLUMNS, landmark_analysis
from cytokit.clinical.outcomes import GVHD_EVENT, Outcome, endpoints
from cytokit.clinical.product import PRODUCT_QC_COLUMNS, product_qc
from cytokit.clinical.response import RESPONSE_COLUMNS, response_vs_persistence
from cytokit.clinical.settings import OutcomesSettings
from cytokit.clinical.survival import (
    STEP_COLUMNS,
    cumulative_incidence,
    kaplan_meier,
    summarise_curve,
)
from cytokit.clinical.treatments import DOSE_TOTAL_COLUMNS, Treatment, dose_totals
from cytokit.stats.intervals import clopper_pearson_interval

__all__ = [
    "SUMMARY_COLUMNS",
    "SURVIVAL_COLUMNS",
    "TABLE_COLUMNS",
    "OutcomeTables",
    "analyze_outcomes",
]

SUMMARY_COLUMNS = (
    "section", "group_by", "group", "n", "events", "median_days", "median_ci_low",
    "median_ci_high", "horizon_day", "estimate", "ci_low", "ci_high", "note",
)  # fmt: skip
SURVIVAL_COLUMNS = ("analysis", "group_by", "group", *STEP_COLUMNS)
#: Table name (the CSV file's stem) -> columns.
TABLE_COLUMNS = {
    "outcomes_summary": SUMMARY_COLUMNS,
    "survival": SURVIVAL_COLUMNS,
    "landmark": LANDMARK_COLUMNS,
    "dose_escalation": ESCALATION_COLUMNS,
    "response": RESPONSE_COLUMNS,
    "product_qc": PRODUCT_QC_COLUMNS,
    "doses": DOSE_TOTAL_COLUMNS,
}


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(TABLE_COLUMNS[name]))


@dataclass
class OutcomeTables:
    """The clinical tables (see the module docstring); ``landmark_cohorts`` keeps, per
    endpoint, each patient's landmark status and group (for plots)."""

    outcomes_summary: pd.DataFrame = field(default_factory=lambda: _empty("outcomes_summary"))
    survival: pd.DataFrame = field(default_factory=lambda: _empty("survival"))
    landmark: pd.DataFrame = field(default_factory=lambda: _empty("landmark"))
    dose_escalation: pd.DataFrame = field(default_factory=lambda: _empty("dose_escalation"))
    response: pd.DataFrame = field(default_factory=lambda: _empty("response"))
    product_qc: pd.DataFrame = field(default_factory=lambda: _empty("product_qc"))
    doses: pd.DataFrame = field(default_factory=lambda: _empty("doses"))
    landmark_cohorts: dict[str, pd.DataFrame] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Table name -> DataFrame, with the columns of `TABLE_COLUMNS` in order."""
        return {
            name: getattr(self, name).reindex(columns=list(columns))
            for name, columns in TABLE_COLUMNS.items()
        }


def analyze_outcomes(
    treatments: Sequence[Treatment],
    outcomes: Sequence[Outcome],
    points: pd.DataFrame | None = None,
    *,
    settings: OutcomesSettings | None = None,
    strata: Mapping[str, str] | None = None,
    product_samples: pd.DataFrame | None = None,
) -> OutcomeTables:
    """Every clinical table.

    Parameters
    ----------
    treatments : sequence of Treatment
        `cytokit.clinical.read_treatments`.
    outcomes : sequence of Outcome
        `cytokit.clinical.read_outcomes`.
    points : DataFrame, optional
        Persistence points of the population ``[outcomes] population``
        (`cytokit.clinical.landmark.POINT_COLUMNS`); without them no landmark
        or response-persistence table.
    settings : OutcomesSettings, optional
    strata : mapping, optional
        Patient → stratum (the manifest's).
    product_samples : DataFrame, optional
        `cytokit.clinical.product.SAMPLE_COLUMNS`.

    Returns
    -------
    OutcomeTables
    """
    settings = settings or OutcomesSettings()
    ends = endpoints(outcomes, strata=strata, gvhd_grade=settings.gvhd_grade)
    tables = OutcomeTables()
    summary: list[dict] = []
    curves: list[pd.DataFrame] = []
    has_strata = ends["stratum"].astype(bool).any()
    for analysis in ("pfs", "os"):
        groupings = [("all", None)] + ([("stratum", "stratum")] if has_strata else [])
        for group_by, column in groupings:
            for group, sub in _groups(ends, column):
                steps = kaplan_meier(sub[f"{analysis}_days"], sub[f"{analysis}_event"])
                curves.append(_tag(steps, analysis, group_by, group))
                stats = summarise_curve(
                    steps, sub[f"{analysis}_days"], horizon=settings.horizon_day
                )
                summary.append(_summary_row(analysis, group_by, group, stats))
    if len(ends):
        reverse = kaplan_meier(ends["os_days"], 1 - ends["os_event"])
        stats = summarise_curve(reverse, ends["os_days"], horizon=settings.horizon_day)
        row = _summary_row("followup", "all", "all", stats)
        # the reverse curve's events are the patients last seen alive; deaths censor it
        alive, deaths = int((1 - ends["os_event"]).sum()), int(ends["os_event"].sum())
        row.update(events=alive, horizon_day=math.nan, estimate=math.nan)
        row.update(
            ci_low=math.nan,
            ci_high=math.nan,
            note=f"reverse Kaplan-Meier: its events are the {alive} patient(s) last seen "
            f"alive; the {deaths} death(s) censor it",
        )
        summary.append(row)
    summary += _gvhd(ends, treatments, settings, curves)
    summary += _responses(outcomes, settings)
    if points is not None and len(ends):
        rows = []
        for endpoint in ("pfs", "os"):
            result = landmark_analysis(
                ends,
                points,
                landmark_day=settings.landmark_day,
                by=settings.landmark_by,
                endpoint=endpoint,
                min_group=settings.min_group,
            )
            rows.append(result.row)
            tables.landmark_cohorts[endpoint] = result.cohort
            eligible = result.cohort[result.cohort["status"] == "eligible"]
            for label, sub in eligible.groupby("label", sort=True):
                steps = kaplan_meier(sub["days"], sub["event"])
                curves.append(_tag(steps, f"{endpoint}_landmark", settings.landmark_by, label))
        tables.landmark = pd.DataFrame(rows, columns=list(LANDMARK_COLUMNS))
        tables.response = response_vs_persistence(
            outcomes,
            points,
            categories=settings.response_categories,
            responders=settings.responders,
            min_group=settings.min_group,
        )
    if settings.escalation != "none":
        tables.dose_escalation = dose_escalation(treatments, outcomes, rule=settings.escalation)
    if product_samples is not None:
        tables.product_qc = product_qc(
            product_samples, settings.release, treatments=treatments, outcomes=outcomes
        )
    tables.doses = dose_totals(treatments)
    tables.outcomes_summary = pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS))
    if curves:
        tables.survival = pd.concat(curves, ignore_index=True)[list(SURVIVAL_COLUMNS)]
    return tables


def _groups(frame: pd.DataFrame, column: str | None):
    if column is None:
        return [("all", frame)]
    return [(str(k), g) for k, g in frame.groupby(column, sort=True)]


def _tag(steps: pd.DataFrame, analysis: str, group_by: str, group) -> pd.DataFrame:
    return steps.assign(analysis=analysis, group_by=group_by, group=str(group))


def _summary_row(section: str, group_by: str, group, stats: dict) -> dict:
    return {
        "section": section,
        "group_by": group_by,
        "group": str(group),
        "n": stats["n"],
        "events": stats["events"],
        "median_days": stats["median"],
        "median_ci_low": stats["median_ci_low"],
        "median_ci_high": stats["median_ci_high"],
        "horizon_day": stats["horizon"],
        "estimate": stats["at_horizon"],
        "ci_low": stats["at_horizon_ci_low"],
        "ci_high": stats["at_horizon_ci_high"],
        "note": stats["note"],
    }


def _exposures(assessed: pd.DataFrame, treatments: Sequence[Treatment]):
    """GVHD cohorts per product and per product dose level, each from its infusion.

    A window starts at the patient's first given infusion of the product
    (or of the level) and ends at their next given cell infusion of anything
    else: GVHD is attributed to the exposure in force at its onset, so a
    level skipped after GVHD cannot gather that GVHD. Patients with GVHD
    before the window are left out of it.
    """
    given: dict[str, list[Treatment]] = {}
    for t in sorted(treatments, key=lambda t: t.day):
        if t.is_cells and t.given:
            given.setdefault(t.patient, []).append(t)
    windows: dict[tuple[str, str], list[dict]] = {}
    for r in assessed.itertuples():
        infusions = given.get(r.patient, [])
        keys = {("product", t.product) for t in infusions}
        keys |= {
            ("dose_level", f"{t.product} level {t.dose_level}")
            for t in infusions
            if t.dose_level is not None
        }
        for group_by, group in keys:
            mine = [
                t
                for t in infusions
                if (t.product if group_by == "product" else f"{t.product} level {t.dose_level}")
                == group
            ]
            start = mine[0].day
            later = [t.day for t in infusions if t.day > start and t not in mine]
            stop = min(later) if later else math.inf
            if r.gvhd_status == GVHD_EVENT and r.gvhd_days < start:
                continue
            days, status = float(r.gvhd_days), int(r.gvhd_status)
            if days > stop:
                days, status = stop, 0
            windows.setdefault((group_by, group), []).append(
                {"gvhd_days": days - start, "gvhd_status": status, "window": stop - start}
            )
    order = sorted(windows, key=lambda k: (k[0] != "product", k[1]))
    return [(g_by, g, pd.DataFrame(windows[(g_by, g)])) for g_by, g in order]


def _gvhd(ends, treatments, settings: OutcomesSettings, curves: list) -> list[dict]:
    assessed = ends[ends["gvhd_status"].notna()].copy()
    if assessed.empty:
        return []
    assessed["gvhd_status"] = assessed["gvhd_status"].astype(np.int64)
    cohorts = [("all", "all", assessed.assign(window=math.inf))]
    cohorts += _exposures(assessed, treatments)
    rows = []
    label = f"acute GVHD grade >= {settings.gvhd_grade}, death without it competing"
    for group_by, group, sub in cohorts:
        steps = cumulative_incidence(sub["gvhd_days"], sub["gvhd_status"])
        curves.append(_tag(steps, "agvhd", group_by, group))
        longest = float(sub["window"].max())
        horizon = min(float(settings.gvhd_horizon_day), longest)
        stats = summarise_curve(steps, sub["gvhd_days"], horizon=horizon, cumulative=True)
        row = _summary_row("agvhd", group_by, group, stats)
        row.update(median_days=math.nan, median_ci_low=math.nan, median_ci_high=math.nan)
        notes = [n for n in stats["note"].split("; ") if n and "median" not in n]
        if group_by == "all":
            notes.insert(0, f"{label}; days from day 0")
        else:
            window = "" if math.isinf(longest) else f" (at most {longest:g} days)"
            notes.insert(0, f"{label}; days from the infusion to the next cell infusion{window}")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def _responses(outcomes: Sequence[Outcome], settings: OutcomesSettings) -> list[dict]:
    assessed = [o for o in outcomes if o.response is not None]
    if not outcomes:
        return []
    n = len(assessed)
    rows = []
    groups = [(c, sum(o.response == c for o in assessed)) for c in settings.response_categories]
    groups.append(
        (
            "responders (" + "+".join(settings.responders) + ")",
            sum(o.response in settings.responders for o in assessed),
        )
    )
    for group, k in groups:
        low, high = clopper_pearson_interval(k, n) if n else (math.nan, math.nan)
        rows.append(
            {
                "section": "response",
                "group_by": "response",
                "group": group,
                "n": n,
                "events": k,
                "median_days": math.nan,
                "median_ci_low": math.nan,
                "median_ci_high": math.nan,
                "horizon_day": math.nan,
                "estimate": k / n if n else math.nan,
                "ci_low": float(low),
                "ci_high": float(high),
                "note": f"{len(outcomes) - n} patient(s) not assessed" if len(outcomes) > n else "",
            }
        )
    return rows
