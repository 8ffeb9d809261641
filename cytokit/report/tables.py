"""The tables of ``report.html``: cohort summary, persistence, chimerism, counts, phenotype.

Each function takes results tables (DataFrames of the results contract,
`cytokit.analysis.results`) and returns an HTML ``<table>`` built with
`cytokit.report._html.table`, which escapes every value; numbers are formatted by
`cytokit.report._html.fmt` and inserted as `Markup`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from cytokit._numbers import pct_text
from cytokit.analysis.trends import too_few_to_judge
from cytokit.cluster.labels import MIN_MATCH_F1
from cytokit.plots._words import MEASURES, format_dose, gate_name
from cytokit.report._html import Markup, as_float, day_text, esc, fmt, is_number, nonempty, table
from cytokit.report.reasons import code_html, reason_code, reason_html

__all__ = [
    "chimerism_table",
    "cluster_summary_table",
    "cohort_table",
    "half_life_cell",
    "patient_rows",
    "persistence_summary",
    "phenotype_table",
    "samples_table",
    "sorted_by",
    "split_by_patient",
    "thresholds_table",
    "trends_table",
]

#: The tag after the events of a chimerism cell that shows a share (a not-detected or
#: marker-failed cell shows none, and says so in words).
STATUS_TAG = {
    "quantified": "",
    "not_quantifiable": "NQ",
}


#: Within `split_by_patient`: per table (by identity, the table kept alive), its rows of
#: each patient, split once.
_SPLITS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("_SPLITS", default=None)


@contextlib.contextmanager
def split_by_patient() -> Iterator[None]:
    """Within the block `patient_rows` splits each table by patient once and then hands
    out the parts (the pages of a 100-patient study ask for a patient's rows of a dozen
    tables each: selecting them one by one was a quarter of the pages' time). The
    tables must not change inside the block."""
    token = _SPLITS.set({})
    try:
        yield
    finally:
        _SPLITS.reset(token)


def qc_anchor(file: str) -> str:
    """The id of `file`'s entry in the report's acquisition-QC section."""
    from cytokit.analysis.results import sample_id

    return f"qc-{sample_id(file)}"


def patient_rows(frame: pd.DataFrame | None, patient: str) -> pd.DataFrame:
    """The rows of `frame` whose ``patient`` is `patient` (as text), in the table's order."""
    if not nonempty(frame) or "patient" not in frame.columns:
        return pd.DataFrame(columns=[] if frame is None else frame.columns)
    cache = _SPLITS.get()
    if cache is None:
        return frame[frame["patient"].astype(str) == patient]
    entry = cache.get(id(frame))
    if entry is None or entry[0] is not frame:
        ids = frame["patient"].astype(str).to_numpy()
        order = np.argsort(ids, kind="stable")
        bounds = np.flatnonzero(ids[order][1:] != ids[order][:-1]) + 1
        parts = np.split(order, bounds)
        entry = (frame, {ids[part[0]]: part for part in parts if len(part)})
        cache[id(frame)] = entry
    rows = entry[1].get(patient)
    return frame.iloc[rows if rows is not None else []]


def sorted_by(frame: pd.DataFrame, *keys: str) -> pd.DataFrame:
    """`frame` sorted by `keys` (``day`` as a number), stably, missing values last."""
    keys = [k for k in keys if k in frame.columns]
    if not keys or len(frame) < 2:
        return frame
    columns = []  # lexsort's keys, the last one first; None where numpy cannot sort one
    for k in reversed(keys):
        if k == "day":
            columns.append(pd.to_numeric(frame["day"], errors="coerce").to_numpy(np.float64))
            continue
        col = frame[k]
        if col.dtype.kind in "biuf" and not col.isna().any():
            columns.append(col.to_numpy())
        elif col.dtype == object and all(isinstance(v, str) for v in col):
            columns.append(col.to_numpy())
        else:
            columns = None
            break
    if columns is not None:  # numpy's stable sort: NaN days last, as pandas puts them
        return frame.iloc[np.lexsort(columns)]
    order = frame.assign(_day=pd.to_numeric(frame.get("day"), errors="coerce"))
    keys = ["_day" if k == "day" else k for k in keys]
    return order.sort_values(keys, kind="stable").drop(columns="_day")


def _interval(low, high) -> str:
    if is_number(low) and is_number(high):
        return f"{fmt(low)}–{fmt(high)}"
    return ""


def _detected(row) -> bool:
    """Donor cells detected on some day of the row's series (a trends.csv row); a row
    without the column counts as detected (nothing says otherwise)."""
    if "last_detectable_day" not in row:
        return True
    return math.isfinite(as_float(row.get("last_detectable_day")))


def _failed_after(row, day) -> list[str]:
    """The row's failed days (trends.csv ``failed_days``) after `day`, or on or after day
    0 when `day` is not a number: days that may have held donor cells the row lacks."""
    text = row.get("failed_days")
    if not isinstance(text, str) or not text.strip():
        return []
    after = as_float(day)
    start = after if math.isfinite(after) else -0.5
    return [d.strip() for d in text.split(";") if d.strip() and float(d) > start]


def peak_text(row) -> str:
    """The peak, marked NQ where no point of the series was quantifiable (the peak is then
    the highest not-quantifiable value, as trends.csv takes it; the plot draws it open)."""
    text = fmt(row.get("peak_value"))
    nq = is_number(row.get("peak_value")) and not is_number(row.get("last_quantified_day"))
    return text + (" NQ" if nq and "last_quantified_day" in row else "")


def last_detected_text(row) -> str:
    """The last day donor cells were detected, and the failed days after it that might have
    shown them later ("14 (day 28 failed)"); "–" where none was."""
    last = row.get("last_detectable_day")
    if not is_number(last):
        return "–"
    later = _failed_after(row, last)
    return day_text(last) + (f" (day {', '.join(later)} failed)" if later else "")


def half_life_cell(row, too_small: bool = False) -> Markup:
    """An estimated half-life with its CI and points; else why not: "not detected" where
    donor cells never were (no decay to fit; "on the days measured" where a day on or
    after day 0 failed), or, for a % donor series (`too_small`: every day measured after
    day 0 was of a population too small to judge), "too few cells to judge"; the
    reason's code otherwise."""
    hl = as_float(row.get("half_life_days"))
    if not math.isfinite(hl) and not _detected(row):
        word = "not detected"
        if too_small and str(row.get("measure")) == "donor_pct":
            word = "too few cells to judge"
        failed = _failed_after(row, None)
        if failed:
            return Markup(
                f"{word} on the days measured (day {', '.join(failed)} failed)",
                ["not_detected"],
            )
        if word != "not detected":
            word += " on every day"
        return Markup(word, ["not_detected"])
    if math.isfinite(hl):
        text = f"{fmt(hl)} d"
        ci = _interval(row.get("half_life_ci_low"), row.get("half_life_ci_high"))
        if ci:
            text += f" (95 % CI {ci})"
        n = row.get("half_life_n")
        if is_number(n):
            text += f", n = {int(float(n))}"
        note = esc(row.get("half_life_note"))
        return Markup(text + (f"<br><small>{note}</small>" if note else ""))
    return Markup(f"<small>{reason_html(row.get('half_life_note'))}</small>", ["not_detected"])


def _range_text(row, prefix: str) -> Markup:
    """Median (range); one value alone where the range is a single value (one patient)."""
    med = row.get(f"{prefix}_median")
    if not is_number(med):
        return Markup("–")
    low, high = row.get(f"{prefix}_min"), row.get(f"{prefix}_max")
    if is_number(low) and is_number(high) and fmt(low) == fmt(high):
        return Markup(fmt(med))
    rng = _interval(low, high)
    return Markup(fmt(med) + (f" ({rng})" if rng else ""))


def _cohort_value(row, prefix: str, unit: str) -> Markup:
    """A stratum's peak or AUC: median (range) with its unit and, where it is of fewer
    patients than were detected (a failed day left a peak out), of how many; "–" bare."""
    text = _range_text(row, prefix)
    if str(text) == "–":
        return text
    n, detected = as_float(row.get(f"{prefix}_n")), as_float(row.get("n_detected"))
    of = ""
    if math.isfinite(n) and math.isfinite(detected) and n < detected:
        of = f", {int(n)} of {int(detected)} detected"
    return Markup(f"{text} {esc(unit)}{of}")


def _cohort_half_life(row) -> Markup:
    """The stratum's half-lives: median (range) and of how many patients; "–" where none
    was estimated (the table's note says why, once)."""
    n = as_float(row.get("half_life_n"))
    if not (math.isfinite(n) and n > 0):
        return Markup("–")
    of = as_float(row.get("n_patients"))
    whom = f"{int(n)} of {int(of)}" if math.isfinite(of) else f"{int(n)}"
    return Markup(f"{_range_text(row, 'half_life')}, {whom} patient{'s' if of != 1 else ''}")


def _cohort_reasons(trends: pd.DataFrame | None, keys: set) -> str:
    """The linked codes of why the half-lives of the (stratum, population, measure) `keys`
    were not estimated, from trends.csv's notes (series never detected left out)."""
    if not nonempty(trends) or "half_life_note" not in trends.columns:
        return ""
    codes: dict[str, str] = {}
    for _, r in trends.iterrows():
        key = (str(r.get("stratum")), str(r.get("population")), str(r.get("measure")))
        if key in keys and _detected(r):
            code = reason_code(r.get("half_life_note"))
            if code is not None:
                codes.setdefault(code, str(r.get("half_life_note")))
    return ", ".join(code_html(codes[c]) for c in sorted(codes))


#: Unit of each measure's AUC (the measure integrated over days).
AUC_UNITS = {"donor_per_ul": "cells/µL × days", "donor_pct": "% × days"}
#: Unit of each measure's peak.
PEAK_UNITS = {"donor_per_ul": "cells/µL", "donor_pct": "%"}


def cohort_table(
    cohort: pd.DataFrame,
    shown: dict[str, list[str]] | None = None,
    trends: pd.DataFrame | None = None,
) -> str:
    """The cohort summary: one row per stratum, population and measure detected in it.

    A population detected in no patient of a stratum (an NK arm's CIK cells) has no
    peak, AUC or half-life to summarise: it is not a row but named once below the
    table, so nothing looks measured that was not. Every measure carries its unit.
    `shown` (study.toml ``[report] cohort_populations``, stratum → populations) keeps
    only those populations of the strata it names, in its order; the note below the
    table says which it left out. A row with no half-life estimated shows "–", and one
    note below the table says so with the reasons' codes (from `trends`, trends.csv).
    """
    if not nonempty(cohort):
        return "<p>No cohort summary (no trends).</p>"
    rows = []
    no_half_life: set = set()
    never: dict[str, list[str]] = {}
    hidden: dict[str, list[str]] = {}
    frame = sorted_by(cohort, "stratum", "population", "measure")
    if shown:
        order = {(s, p): i for s, pops in shown.items() for i, p in enumerate(pops)}
        stratum = frame["stratum"].astype(str)
        named = stratum.isin(list(shown))
        listed = [(s, str(p)) in order for s, p in zip(stratum, frame["population"], strict=True)]
        keep = ~named | pd.Series(listed, index=named.index, dtype=bool)
        for s, p in zip(stratum[~keep], frame["population"][~keep], strict=True):
            names = hidden.setdefault(s, [])
            if str(p) not in names:
                names.append(str(p))
        frame = frame[keep]
        rank = [
            order.get((s, str(p)), 0)
            for s, p in zip(frame["stratum"].astype(str), frame["population"], strict=True)
        ]
        frame = (
            frame.assign(_rank=rank)
            .sort_values(["stratum", "_rank", "measure"], kind="stable")
            .drop(columns="_rank")
        )
    for _, r in frame.iterrows():
        measure = str(r.get("measure"))
        detected = as_float(r.get("n_detected"))
        if math.isfinite(detected) and detected == 0:
            names = never.setdefault(str(r.get("stratum")), [])
            if str(r.get("population")) not in names:
                names.append(str(r.get("population")))
            continue
        if not as_float(r.get("half_life_n")) > 0:
            no_half_life.add((str(r.get("stratum")), str(r.get("population")), measure))
        rows.append(
            [
                r.get("stratum"),
                r.get("population"),
                MEASURES.get(measure, measure),
                Markup(fmt(r.get("n_patients"), integer=True)),
                Markup(fmt(r.get("n_detected"), integer=True)),
                _cohort_value(r, "peak", PEAK_UNITS.get(measure, "")),
                _cohort_value(r, "auc", AUC_UNITS.get(measure, "")),
                _cohort_half_life(r),
                format_dose(r.get("dose_median")),
                Markup(fmt(r.get("dose_auc_spearman"))),
            ]
        )
    html = table(
        [
            "stratum",
            "population",
            "measure",
            "patients",
            "detected",
            "peak median (range)",
            "AUC median (range)",
            "half-life, days, median (range)",
            "median total dose",
            "Spearman ρ dose–AUC",
        ],
        rows,
        caption="Cohort summary by stratum (cohort.csv)",
        numeric=[False, False, False, True, True, True, True, True, True, True],
    )
    if no_half_life:
        why = _cohort_reasons(trends, no_half_life)
        html += (
            '<p class="meta">Half-life –: estimated in no patient of the stratum'
            + (f" ({why})" if why else "")
            + ".</p>"
        )
    if never:
        listed = "; ".join(
            f"{esc(stratum)}: {', '.join(esc(p) for p in pops)}" for stratum, pops in never.items()
        )
        html += f'<p class="meta">Detected in no patient of the stratum (not listed): {listed}.</p>'
    if hidden:
        listed = "; ".join(
            f"{esc(stratum)}: {', '.join(esc(p) for p in pops)}" for stratum, pops in hidden.items()
        )
        html += (
            '<p class="meta">Not shown for the stratum (study.toml [report] '
            f"cohort_populations): {listed}.</p>"
        )
    return html


def failed_days_note(trends: pd.DataFrame) -> str:
    """One line naming the series whose peak and AUC are not given because a sample
    failed (trends.csv ``failed_days``), with the days; empty where none did."""
    if "failed_days" not in trends.columns:
        return ""
    said: dict[str, set[str]] = {}
    for patient, days in zip(trends["patient"], trends["failed_days"], strict=True):
        if _failed_after({"failed_days": days}, None):  # a day on or after day 0
            # every series' failed days (a patient's blood and marrow fail apart)
            said.setdefault(str(patient), set()).update(
                d.strip() for d in str(days).split(";") if d.strip()
            )
    out = ""
    if said:
        listed = "; ".join(
            f"{esc(p)} (day {esc(', '.join(sorted(d, key=float)))})" for p, d in said.items()
        )
        out = (
            '<p class="meta">Peak and AUC not given where a sample failed (see Failures) and '
            f"might have held them: {listed}.</p>"
        )
    return out + _uncounted_days_note(trends)


def _uncounted_days_note(trends: pd.DataFrame) -> str:
    """The cells/µL series detected but without a peak though no day failed: a day on or
    after day 0 had no counting reference (`cytokit.analysis.cohort`), which samples.csv's
    warnings name."""
    need = {"measure", "peak_value", "last_detectable_day", "population"}
    if not need <= set(trends.columns):
        return ""
    rows = trends[trends["measure"].astype(str) == "donor_per_ul"]
    blank = pd.to_numeric(rows["peak_value"], errors="coerce").isna()
    seen = pd.to_numeric(rows["last_detectable_day"], errors="coerce").notna()
    failed = rows["failed_days"] if "failed_days" in rows.columns else pd.Series("", rows.index)
    none_failed = failed.isna() | (failed.astype(str).str.strip() == "")
    rows = rows[blank & seen & none_failed]
    if rows.empty:
        return ""
    by: dict[str, list[str]] = {}
    for patient, pop in zip(rows["patient"], rows["population"], strict=True):
        by.setdefault(str(patient), []).append(str(pop))
    listed = "; ".join(f"{esc(p)} ({esc(', '.join(v))})" for p, v in by.items())
    return (
        '<p class="meta">Cells/µL peak and AUC not given where a day after infusion had no '
        f"counting reference (samples.csv's warnings say which): {listed}.</p>"
    )


def several_types(frame: pd.DataFrame) -> bool:
    """Whether `frame` (a patient's rows of trends.csv or chimerism.csv) holds more than one
    sample type: each is a series of its own, to be named beside its population."""
    if "sample_type" not in frame.columns:
        return False
    types = frame["sample_type"].dropna().astype(str)
    return len(set(types[types != ""])) > 1


def series_name(population, sample_type, typed: bool) -> str:
    """A series' name (plain text): its population, then its sample type in brackets
    where the patient has several (`several_types`), as "CIK (PB)"."""
    kind = _type_text(sample_type)
    return f"{population} ({kind})" if typed and kind else str(population)


def _type_text(value) -> str:
    """A sample type as text ("" when missing)."""
    return value.strip() if isinstance(value, str) else ""


def persistence_summary(trends: pd.DataFrame, patients: list[str]) -> str:
    """Each patient's peak, last detection and half-life per population (donor cells/µL,
    else % donor). A population whose donor cells were detected on no day of the
    patient (an NK-arm patient's CIK cells) is no row, only named once below the table."""
    if not nonempty(trends):
        return ""
    sel = trends[trends["measure"] == "donor_per_ul"] if "measure" in trends.columns else trends
    sel = sel[pd.to_numeric(sel.get("n_days"), errors="coerce") > 0] if len(sel) else sel
    if sel.empty or not pd.to_numeric(sel.get("peak_value"), errors="coerce").notna().any():
        sel = trends[trends["measure"] == "donor_pct"] if "measure" in trends.columns else trends
    if sel.empty:
        return ""
    order = {p: i for i, p in enumerate(patients)}
    sel = sel.assign(_o=sel["patient"].astype(str).map(order)).sort_values(
        ["_o", "population"], kind="stable"
    )
    # a patient's series of several sample types (blood, marrow, the bag) are named by both
    typed = {
        p for p, g in trends.groupby(trends["patient"].astype(str), sort=False) if several_types(g)
    }
    rows = []
    never: dict[str, list[str]] = {}
    for _, r in sel.iterrows():
        patient = str(r.get("patient"))
        kind = _type_text(r.get("sample_type")) if patient in typed else ""
        if not _detected(r):  # nothing to summarise: named once below the table
            names = never.setdefault(patient, [])
            failed = _failed_after(r, None)
            said = ([kind] if kind else []) + (
                [f"day {', '.join(failed)} failed"] if failed else []
            )
            name = str(r.get("population")) + (f" ({'; '.join(said)})" if said else "")
            if name not in names:
                names.append(name)
            continue
        rows.append(
            [
                r.get("patient"),
                r.get("stratum"),
                series_name(r.get("population"), kind, patient in typed),
                Markup(peak_text(r)),
                Markup(day_text(r.get("peak_day")) if is_number(r.get("peak_day")) else "–"),
                Markup(last_detected_text(r)),
                half_life_cell(r),
                format_dose(r.get("total_dose_per_kg")),
            ]
        )
    measure = MEASURES.get(str(sel.iloc[0].get("measure")), "")
    note = ""
    if never:
        listed = "; ".join(
            f"{esc(p)}: {', '.join(esc(x) for x in pops)}" for p, pops in never.items()
        )
        note = f'<p class="meta">Donor cells detected on no day (not listed): {listed}.</p>'
    if not rows:
        return note
    return (
        table(
            [
                "patient",
                "stratum",
                "population",
                f"peak ({measure})",
                "peak day",
                "last detected day",
                "half-life",
                "total dose",
            ],
            rows,
            caption=f"Persistence by patient ({measure}; trends.csv; a peak marked NQ is of "
            "not-quantifiable values only)",
            numeric=[False, False, False, True, True, True, False, True],
        )
        + note
        + failed_days_note(sel)
    )


def chimerism_table(chim: pd.DataFrame, pops: list[str], failed: pd.DataFrame | None = None) -> str:
    """A patient's chimerism by sample; a file of the chimerism tube that failed (rows of
    `failed`, failures.csv) is a row of its own, so its day is not silently missing."""
    if chim.empty:
        return "<p>No chimerism results.</p>"
    names = [p for p in pops if p in set(chim["population"].astype(str))]
    keys = ["day", "file"] + (["sample_type"] if "sample_type" in chim.columns else [])
    # a row per sample (day, file, type), in order; records, not a DataFrame per sample
    samples: dict[tuple, list[dict]] = {}
    for r in sorted_by(chim, "day", "file").to_dict("records"):
        samples.setdefault(tuple(_key(r.get(k)) for k in keys), []).append(r)
    rows = []
    for g in samples.values():
        first = g[0]
        row: list = [Markup(day_text(first.get("day"))), first.get("file")]
        by_pop = {str(r["population"]): r for r in g}
        for name in names:
            r = by_pop.get(name)
            if r is None:
                row.append("")
                continue
            status = str(r.get("status", ""))
            if status == "marker_failed":  # no donor value at all: say so, never a number
                # the reason is a paragraph, said once in the flags above (and on hover): in
                # every cell of the row it made the table many screens wide
                row.append(
                    Markup(
                        f'<span title="{esc(r.get("note"))}">donor marker failed</span><br>'
                        f"<small>{fmt(r.get('events'), integer=True)} ev; see the flags</small>",
                        [status],
                    )
                )
                continue
            events = (
                f"{fmt(r.get('donor_events'), integer=True)} of "
                f"{fmt(r.get('events'), integer=True)} events"
            )
            if status == "not_detected":  # fewer than 20 donor events: no share is printed
                # in a population too small to judge (10 of 17 events donor), not "absent"
                small = bool(too_few_to_judge(as_float(r.get("events"))))
                word = "too few cells to judge" if small else "not detected"
                row.append(Markup(f"{word}<br><small>{events}</small>", [status]))
                continue
            pct = fmt(r.get("donor_pct"))
            ci = _interval(r.get("ci_low"), r.get("ci_high"))
            text = f"{pct} %" + (f" [{ci}]" if ci else "")
            if is_number(r.get("donor_per_ul")):
                text += f"<br>{fmt(r.get('donor_per_ul'))} /µL"
            text += f"<br><small>{events}"
            tag = STATUS_TAG.get(status, esc(status))
            text += f" {tag}</small>" if tag else "</small>"
            text += _imputed_text(r)
            row.append(Markup(text, [status if status in STATUS_TAG else ""]))
        rows.append((as_float(first.get("day")), row))
    tube = chim["tube"].dropna().astype(str) if "tube" in chim.columns else pd.Series([], dtype=str)
    if nonempty(failed):
        for _, f in failed.iterrows():
            if len(tube) and "tube" in failed.columns and str(f.get("tube")) not in set(tube):
                continue  # another tube's file: its own section says so
            cell = Markup(f"file failed ({esc(f.get('stage'))}): no chimerism", ["marker_failed"])
            rows.append(
                (
                    as_float(f.get("day")),
                    [Markup(day_text(f.get("day"))), f.get("file"), *[cell] * len(names)],
                )
            )
    rows = [row for _, row in sorted(rows, key=lambda x: x[0] if math.isfinite(x[0]) else math.inf)]
    return table(
        ["day", "file", *names],
        rows,
        caption="Donor chimerism: % donor [95 % CI], donor cells/µL, donor of population events "
        "(NQ: not quantifiable; not detected: fewer than 20 donor events, no share given; too "
        "few cells to judge: the same in a population of fewer than 80 events; donor "
        "marker failed: the sample's donor marker is unusable, no value; QC-imputed: the % donor "
        "with the time ranges acquisition QC removed filled in from the kept events beside them "
        "and the ranges' own well-measured cells, where what the ranges held differs from the "
        "kept events' mix)",
        numeric=[True, False] + [True] * len(names),
    )


def _key(value):
    """`value` as a grouping key: every missing value the same (NaN is not equal to itself)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _imputed_text(r) -> str:
    """The QC-imputed % donor under a cell, where acquisition QC removed some of the
    population's events (``imputed_events`` > 0): "" otherwise, or when it is not a number."""
    imputed = r.get("imputed_events")
    if not is_number(imputed) or float(imputed) <= 0 or not is_number(r.get("imputed_donor_pct")):
        return ""
    ci = _interval(r.get("imputed_ci_low"), r.get("imputed_ci_high"))
    pct = fmt(r.get("imputed_donor_pct")) + " %" + (f" [{ci}]" if ci else "")
    return f"<br><small>QC-imputed: {pct} (~{fmt(imputed, integer=True)} cells imputed)</small>"


def samples_table(
    samples: pd.DataFrame,
    counts: pd.DataFrame,
    pops: list[str],
    failed: pd.DataFrame | None = None,
    *,
    qc_link: str = "",
) -> str:
    """The patient page's samples: events (those acquisition QC kept, of the file's),
    QC verdict, counting and each population's count and cells/µL; `failed` (the
    patient's rows of ``failures.csv``) adds a row per file that gave no numbers, at its
    day, saying at which stage it failed (its reason is among the page's QC flags). A QC
    verdict other than pass links to the file's entry in the acquisition-QC section of the
    page `qc_link` (``""``: this page)."""
    failed = failed if failed is not None else pd.DataFrame()
    if samples.empty and failed.empty:
        return ""
    counts = (
        counts[counts["population"].notna() & (counts["population"].astype(str) != "")]
        if ("population" in counts.columns)
        else counts.iloc[0:0]
    )
    names = [
        p for p in pops if p in set(counts.get("population", pd.Series(dtype=str)).astype(str))
    ]
    # each file's first row per population, looked up rather than selected per cell
    first: dict[tuple[str, str], dict] = {}
    if len(counts) and names:
        for r in counts.to_dict("records"):
            first.setdefault((str(r.get("file")), str(r.get("population"))), r)
    # with acquisition QC the counts come from the events it kept: say so beside the file
    qc = "qc_verdict" in samples.columns and samples["qc_verdict"].fillna("").astype(bool).any()
    stages = failed.get("stage", pd.Series(dtype=str)).astype(str)
    qc = qc or bool((stages == "acquisition_qc").any())
    analysed = set(samples.get("file", pd.Series(dtype=str)).astype(str))
    lost = [
        {**r, "_failed": True}
        for r in failed.to_dict("records")
        if "file" in r and str(r.get("file")) not in analysed
    ]
    both = pd.concat([samples, pd.DataFrame(lost)], ignore_index=True) if lost else samples
    rows = []
    for s in sorted_by(both, "day", "file").to_dict("records"):
        if s.get("_failed") is True:
            # a file that gave no numbers: its day and name, and where it stopped
            stage = str(s.get("stage") or "")
            row = [Markup(day_text(s.get("day"))), s.get("file"), "", "–"]
            row += [f"failed ({stage}): no counts", ""]
            if qc:
                link = f'<a href="{esc(qc_link)}#{qc_anchor(str(s.get("file")))}">fail</a>'
                row.insert(4, Markup(link) if stage == "acquisition_qc" else "")
            rows.append(row + [""] * len(names))
            continue
        events = fmt(s.get("events"), integer=True)
        if qc and is_number(s.get("events_after_qc")):
            events = f"{fmt(s.get('events_after_qc'), integer=True)}<br>of {events}"
        row: list = [
            Markup(day_text(s.get("day"))),
            s.get("file"),
            s.get("sample_type"),
            Markup(events),
            s.get("count_method"),
            Markup(fmt(s.get("reference_events"), integer=True)),
        ]
        if qc:
            verdict = s.get("qc_verdict") if isinstance(s.get("qc_verdict"), str) else ""
            pct = s.get("qc_pct_removed")
            text = (
                f"{verdict}, {pct_text(pct)} % removed" if verdict and is_number(pct) else verdict
            )
            if verdict and verdict != "pass":  # why, in the QC section of the cohort page
                href = f"{esc(qc_link)}#{qc_anchor(str(s.get('file')))}"
                text = Markup(f'<a href="{href}">{esc(text)}</a>')
            row.insert(4, text)
        for name in names:
            r = first.get((str(s.get("file")), name))
            if r is None:
                row.append("")
                continue
            text = fmt(r.get("count"), integer=True)
            if is_number(r.get("per_ul")):
                text += f"<br>{fmt(r.get('per_ul'))} /µL"
            row.append(Markup(text))
        rows.append(row)
    head = ["day", "file", "type", "events", "counting", "reference events", *names]
    numeric = [True, False, False, True, False, True] + [True] * len(names)
    caption = "Samples and absolute counts: events in each population and cells/µL"
    if qc:
        head.insert(4, "acquisition QC")
        numeric.insert(4, False)
        caption += (
            "; events: those acquisition QC kept, of the file's (the counts are of the kept events)"
        )
    return table(head, rows, caption=caption, numeric=numeric)


def trends_table(
    trends: pd.DataFrame, pops: list[str], small: set[tuple[str, str]] = frozenset()
) -> str:
    """A patient's trends; `small`: (sample type, population) of the series whose every
    day measured after day 0 was too small to judge (`half_life_cell`)."""
    if trends.empty:
        return ""
    order = {p: i for i, p in enumerate(pops)}
    t = trends.assign(_o=trends["population"].astype(str).map(order).fillna(len(order)))
    t = t.sort_values(["_o", "measure"], kind="stable")
    # a patient's product bags are series of their own beside the blood: say which is which
    typed = several_types(t)
    rows = []
    for _, r in t.iterrows():
        measure = MEASURES.get(str(r.get("measure")), r.get("measure"))
        if typed and esc(r.get("sample_type")):
            measure = f"{measure} ({r.get('sample_type')})"
        rows.append(
            [
                r.get("population"),
                measure,
                Markup(fmt(r.get("n_days"), integer=True)),
                Markup(peak_text(r)),
                Markup(day_text(r.get("peak_day")) if is_number(r.get("peak_day")) else "–"),
                Markup(last_detected_text(r)),
                # an AUC only where donor cells were detected (else the area under
                # not-detected values, which says nothing), with its measure's unit
                Markup(
                    f"{fmt(r.get('auc'))} {esc(AUC_UNITS.get(str(r.get('measure')), ''))}"
                    if _detected(r) and is_number(r.get("auc"))
                    else "–"
                ),
                half_life_cell(
                    r, (_key(r.get("sample_type")) or "", str(r.get("population"))) in small
                ),
                # an R² only beside a half-life: a fit that gave none has nothing to qualify
                Markup(
                    fmt(r.get("half_life_r2"))
                    if math.isfinite(as_float(r.get("half_life_days")))
                    else "–"
                ),
            ]
        )
    return table(
        [
            "population",
            "measure",
            "days",
            "peak",
            "peak day",
            "last detected",
            "AUC",
            "half-life",
            "R²",
        ],
        rows,
        caption="Trends: peak (NQ: of not-quantifiable values only), last detection, area "
        "under the curve (from day 0), half-life",
        numeric=[False, False, True, True, True, True, True, False, True],
    ) + failed_days_note(trends)


def phenotype_table(pheno: pd.DataFrame) -> str:
    """A patient's phenotype.csv rows: a row per population, origin and marker, a column
    per day. Where the rows come from more than one tube, a tube column keeps each tube's
    row apart (two tubes may measure the same marker, e.g. a stimulated and an
    unstimulated one); a one-tube table has none."""
    if pheno.empty:
        return ""
    day = pd.to_numeric(pheno["day"], errors="coerce").to_numpy(dtype=np.float64)
    days = sorted({float(d) for d in day[np.isfinite(day)]})
    # columns as arrays, cells by position: selecting a row per cell costs more than the page
    none = np.full(len(pheno), None, dtype=object)
    median, pct, events = (
        pheno[c].to_numpy() if c in pheno.columns else none
        for c in ("median", "pct_positive", "events")
    )
    rows = []
    keys = ["population", "origin", "marker"]
    if "tube" in pheno.columns and pheno["tube"].nunique(dropna=False) > 1:
        keys.append("tube")
    for key, at in pheno.groupby(keys, sort=True, dropna=False).indices.items():
        by_day = {float(day[i]): i for i in at}  # a visit has one file per tube
        row: list = list(key)
        for d in days:
            i = by_day.get(d)
            if i is None:
                row.append("")
                continue
            text = fmt(median[i])
            if is_number(pct[i]):
                text += f" · {fmt(pct[i])} %+"
            text += f"<br><small>{fmt(events[i], integer=True)} ev</small>"
            row.append(Markup(text))
        rows.append(row)
    return table(
        [*keys, *[f"day {day_text(d)}" for d in days]],
        rows,
        caption="Phenotype: median (compensated scale) · % positive, by origin"
        + (" and tube" if "tube" in keys else ""),
        numeric=[False] * len(keys) + [True] * len(days),
    )


def thresholds_table(th: pd.DataFrame) -> str:
    if th.empty:
        return ""
    th = th[th["purpose"].astype(str) == "donor"] if "purpose" in th.columns else th
    rows = [
        [
            Markup(day_text(r.get("day"))),
            r.get("marker"),
            gate_name(r.get("parent")),
            Markup(fmt(r.get("threshold"))),
            Markup(fmt(r.get("threshold_scale"))),
            r.get("method"),
            r.get("note"),
        ]
        for _, r in sorted_by(th, "day", "marker").iterrows()
    ]
    return table(
        ["day", "marker", "placed on", "threshold", "(scale)", "method", "note"],
        rows,
        caption="Donor-marker thresholds (a population with its own cut has its own row)",
        numeric=[True, False, False, True, True, False, False],
    )


def cluster_summary_table(summary: pd.DataFrame) -> str:
    """The metaclusters table of the report (``cluster_summary.csv``).

    Shares of events as %, the donor share with the events it comes from ("1.3 %
    (152 of 11,738)": a share of 0-2 events reads as what it is), F1 with two
    decimals, and the best-matching gate only where that F1 is at least `MIN_MATCH_F1`
    (cluster_summary.csv names none below it; an older table did).
    """
    cols = [c for c in ("metacluster", "events", "fraction", "donor_fraction", "nodes", "gate",
                        "f1") if c in summary.columns]  # fmt: skip
    rows = []
    for _, r in summary.iterrows():
        f1 = as_float(r.get("f1"))
        matched = f1 is not None and math.isfinite(f1) and f1 >= MIN_MATCH_F1
        row = []
        for c in cols:
            v = r.get(c)
            if c == "fraction" and is_number(v):
                row.append(Markup(fmt(100.0 * float(v))))
            elif c == "donor_fraction":
                # of the events whose origin is known (an older table: of all its events)
                base = r.get("origin_events", r.get("events"))
                row.append(Markup(_donor_share(v, r.get("donor_events"), base)))
            elif c == "f1":
                row.append(Markup(f"{f1:.2f}" if f1 is not None and math.isfinite(f1) else "–"))
            elif c == "gate":
                row.append(v if matched and isinstance(v, str) and v else "–")
            elif is_number(v) and not isinstance(v, str):
                row.append(Markup(fmt(v, integer=c in ("metacluster", "events", "nodes"))))
            else:
                row.append(v)
        rows.append(row)
    names = {"fraction": "% of events", "donor_fraction": "% donor (events)", "gate": "best gate"}
    return table(
        [names.get(c, c) for c in cols],
        rows,
        caption="Metaclusters (cluster_summary.csv)",
        numeric=[c not in ("gate",) for c in cols],
    )


def _donor_share(fraction, donor_events, events) -> str:
    """ "1.3 (152 of 11,738)"; the bare percentage when the counts are not stored."""
    f = as_float(fraction)
    if f is None or not math.isfinite(f):
        return "–"
    d, n = as_float(donor_events), as_float(events)
    if d is None or n is None or not (math.isfinite(d) and math.isfinite(n)):
        return fmt(100.0 * f)
    return f"{fmt(100.0 * f)} ({fmt(d, integer=True)} of {fmt(n, integer=True)})"
