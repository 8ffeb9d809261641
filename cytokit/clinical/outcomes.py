"""``outcomes.csv``: one row per patient, the clinical outcomes, and the endpoints drawn from them.

Columns (header names exact; only ``patient`` and ``last_followup_day`` are
required in the header; other columns are kept as metadata, except one that is a
column below in other case, with spaces or hyphens, or misspelt, which is a problem). Days are on the
manifest's axis (day 0 = the first infusion); an empty cell means what the
table says, never zero:

=====================  =========================================================
column                 meaning (empty cell)
=====================  =========================================================
``patient``            patient identifier, once per file
``response``           category at the protocol's assessment, one of
                       ``[outcomes] response_categories`` (not assessed)
``response_day``       day of that assessment (required with a response)
``agvhd_max_grade``    acute GVHD maximum grade: 0-4 or 0, I-IV (not assessed:
                       the patient is left out of the GVHD analysis)
``agvhd_onset_day``    onset day of acute GVHD (required when the grade is
                       >= 1, empty when it is 0)
``dlt``                dose-limiting toxicity: yes / no (not evaluable)
``dlt_day``            day of the DLT (required when dlt is yes)
``progression_day``    progression or relapse (none observed)
``last_followup_day``  last day the patient was seen (may be empty only when
                       ``death_day`` is given)
``death_day``          death (alive at the last follow-up)
``death_cause``        free text (only with a death day)
=====================  =========================================================

Every day of an event must be >= 0 (the analyses count from the first
infusion) and no later than the end of follow-up (the last follow-up or the
death day); a progression after death, or a follow-up after death, is a
problem. `read_outcomes` reports every problem of the file at once.

Endpoints (`endpoints`), in days from day 0:

* **PFS**: progression or death, whichever comes first; else censored at the
  end of follow-up.
* **OS**: death; else censored at the end of follow-up.
* **acute GVHD >= grade g** (``[outcomes] gvhd_grade``, default II): an event
  at the onset day of a patient whose maximum grade is >= g (the file holds
  one onset day, that of acute GVHD); death without such GVHD is the
  competing event; else censored at the end of follow-up. Patients whose
  grade was not assessed are left out (``gvhd_status`` empty).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.errors import StudyError, did_you_mean

__all__ = [
    "ENDPOINT_COLUMNS",
    "GVHD_CENSORED",
    "GVHD_COMPETING",
    "GVHD_EVENT",
    "Outcome",
    "endpoints",
    "parse_outcomes",
    "read_outcomes",
]

_ROMAN = {"0": 0, "I": 1, "II": 2, "III": 3, "IV": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_YES = {"yes": True, "y": True, "true": True, "1": True, "no": False, "n": False, "false": False, "0": False}  # fmt: skip
_DAYS = ("response_day", "agvhd_onset_day", "dlt_day", "progression_day", "last_followup_day", "death_day")  # fmt: skip
_KNOWN = ("patient", "response", "agvhd_max_grade", "dlt", "death_cause", *_DAYS)
GVHD_CENSORED, GVHD_EVENT, GVHD_COMPETING = 0, 1, 2
ENDPOINT_COLUMNS = (
    "patient", "stratum", "pfs_days", "pfs_event", "os_days", "os_event", "gvhd_days",
    "gvhd_status", "end_of_followup",
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """One row of ``outcomes.csv`` (see the module docstring; None = empty cell)."""

    patient: str
    last_followup_day: int
    response: str | None = None
    response_day: int | None = None
    agvhd_max_grade: int | None = None
    agvhd_onset_day: int | None = None
    dlt: bool | None = None
    dlt_day: int | None = None
    progression_day: int | None = None
    death_day: int | None = None
    death_cause: str = ""
    line: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def end_of_followup(self) -> int:
        """The last day the patient's status is known (death or last follow-up)."""
        return self.last_followup_day if self.death_day is None else self.death_day


def read_outcomes(
    path: str | Path,
    *,
    categories: Sequence[str] = ("CR", "PR", "SD", "PD"),
    patients: Iterable[str] | None = None,
) -> list[Outcome]:
    """Read and check ``outcomes.csv``.

    Parameters
    ----------
    path : path
    categories : sequence of str
        The response categories (``[outcomes] response_categories``); a
        response is matched case-insensitively and stored as spelled here.
    patients : iterable of str, optional
        The study's patients; a row of any other patient is a problem.

    Returns
    -------
    list of Outcome
        In file order.

    Raises
    ------
    StudyError
        Listing every problem of the file, one per line (file, line, value, fix).
    """
    problems: list[str] = []
    rows = parse_outcomes(path, problems, categories=categories, patients=patients)
    if problems:
        raise StudyError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return rows


def parse_outcomes(
    path: str | Path,
    problems: list[str],
    *,
    categories: Sequence[str] = ("CR", "PR", "SD", "PD"),
    patients: Iterable[str] | None = None,
    required: Iterable[str] | None = None,
) -> list[Outcome]:
    """`read_outcomes` that appends its problems to `problems` (for a study's one error).
    `required`: the trial's patients, each of whom needs a row (None: not checked)."""
    from cytokit.study.tables import misnamed_columns, read_table

    path = Path(path)
    before = len(problems)
    header, records = read_table(path, problems)
    if not header:
        return []
    malformed = len(problems) > before  # lines read_table refused: their patients unknown
    upper = {c.upper() for c in categories}
    read = {
        **dict.fromkeys(_KNOWN, None),
        **dict.fromkeys(_DAYS, lambda v: _day(v, "", []) is not None),
        "response": lambda v: v.upper() in upper,
        "agvhd_max_grade": lambda v: v.upper() in _ROMAN,
        "dlt": lambda v: v.lower() in _YES,
    }
    # a column of ours named otherwise (Response, Progression_Day) would be kept as
    # metadata and its events dropped without a word
    misnamed = misnamed_columns(path, header, records, read, problems)
    missing = [c for c in ("patient", "last_followup_day") if c not in header]
    if missing:
        unsaid = [c for c in missing if c not in misnamed.values()]
        if unsaid:
            problems.append(
                f"{path}: missing column(s) {', '.join(unsaid)}; the header must include "
                "patient and last_followup_day and may have "
                + ", ".join(c for c in _KNOWN if c not in missing)
            )
        return []
    lookup = {c.upper(): c for c in categories}
    known = None if patients is None else set(patients)
    seen: dict[str, int] = {}
    out = []
    for line, rec in records:
        patient = rec["patient"].strip()
        if patient and patient in seen:
            problems.append(
                f"{path}, line {line}: patient {patient} already has a row (line "
                f"{seen[patient]}); one row per patient"
            )
            continue
        seen.setdefault(patient, line)
        row = _row(f"{path}, line {line}", line, rec, lookup, known, problems)
        if row is not None:
            out.append(row)
    wanted = None if required is None else set(required)
    absent = sorted(wanted - set(seen)) if wanted is not None and not malformed else []
    if absent:  # every outcome analysis would leave them out without a word
        shown = ", ".join(absent[:10]) + (
            f" and {len(absent) - 10} more" if len(absent) > 10 else ""
        )
        problems.append(
            f"{path}: no row for patient(s) {shown} of manifest.csv; every outcome analysis "
            "counts the study's patients: add a row for each (at least last_followup_day)"
        )
    return out


def _row(where, line, rec, lookup, known, problems) -> Outcome | None:
    found = len(problems)
    patient = rec["patient"].strip()
    if not patient:
        problems.append(f"{where}: empty 'patient'")
    elif known is not None and patient not in known:
        problems.append(
            f"{where}: patient {patient!r} is not in manifest.csv{did_you_mean(patient, known)}"
        )
    days = {c: _day(rec.get(c, ""), f"{where}: {c}", problems) for c in _DAYS}
    response = rec.get("response", "").strip() or None
    if response is not None:
        canonical = lookup.get(response.upper())
        if canonical is None:
            problems.append(
                f"{where}: response {response!r} is not one of {', '.join(lookup.values())}; "
                "use one of them or set [outcomes] response_categories in study.toml"
            )
        response = canonical
        if days["response_day"] is None and rec.get("response_day", "").strip() == "":
            problems.append(f"{where}: response {rec['response'].strip()!r} has no response_day")
    grade_text = rec.get("agvhd_max_grade", "").strip().upper()
    grade = _ROMAN.get(grade_text) if grade_text else None
    if grade_text and grade is None:
        problems.append(
            f"{where}: agvhd_max_grade {rec['agvhd_max_grade'].strip()!r} must be 0-4 or 0, I-IV "
            "(empty: not assessed)"
        )
    onset = days["agvhd_onset_day"]
    if grade is not None and grade >= 1 and onset is None and _blank(rec, "agvhd_onset_day"):
        problems.append(f"{where}: acute GVHD grade {grade_text} needs agvhd_onset_day")
    if onset is not None and (grade is None or grade == 0):
        problems.append(
            f"{where}: agvhd_onset_day {onset} but agvhd_max_grade is "
            f"{grade_text or 'empty'}; give the grade, or leave the onset day empty"
        )
    dlt_text = rec.get("dlt", "").strip().lower()
    dlt = _YES.get(dlt_text) if dlt_text else None
    if dlt_text and dlt is None:
        problems.append(
            f"{where}: dlt {rec['dlt'].strip()!r} must be yes or no (empty: not evaluable)"
        )
    if dlt and days["dlt_day"] is None and _blank(rec, "dlt_day"):
        problems.append(f"{where}: dlt is yes but dlt_day is empty")
    if days["dlt_day"] is not None and not dlt:
        problems.append(f"{where}: dlt_day {days['dlt_day']} but dlt is {dlt_text or 'empty'}")
    death, last = days["death_day"], days["last_followup_day"]
    cause = rec.get("death_cause", "").strip()
    if cause and death is None and _blank(rec, "death_day"):
        problems.append(f"{where}: death_cause {cause!r} without a death_day")
    if last is None and death is None and _blank(rec, "last_followup_day"):
        problems.append(
            f"{where}: last_followup_day is empty; give the last day the patient was seen "
            "(the survival analyses censor there)"
        )
    if death is not None and last is not None and last > death:
        problems.append(f"{where}: last_followup_day {last} is after death_day {death}")
    end = death if death is not None else last
    if end is not None:
        for c in ("response_day", "agvhd_onset_day", "dlt_day", "progression_day"):
            if days[c] is not None and days[c] > end:
                problems.append(
                    f"{where}: {c} {days[c]} is after the end of follow-up (day {end}, "
                    f"{'death' if death is not None else 'last follow-up'}); check both days"
                )
    if len(problems) > found:
        return None
    return Outcome(
        patient=patient,
        last_followup_day=int(last if last is not None else death),
        response=response,
        response_day=days["response_day"],
        agvhd_max_grade=grade,
        agvhd_onset_day=onset,
        dlt=dlt,
        dlt_day=days["dlt_day"],
        progression_day=days["progression_day"],
        death_day=death,
        death_cause=cause,
        line=line,
        metadata={k: v for k, v in rec.items() if k not in _KNOWN},
    )


def _blank(rec: Mapping[str, str], column: str) -> bool:
    """The cell is empty (a malformed one was already reported)."""
    return not rec.get(column, "").strip()


def _day(text: str, where: str, problems: list[str]) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        problems.append(f"{where} {text!r} is not a whole number of days")
        return None
    if number < 0:
        problems.append(
            f"{where} {text!r} is before day 0 (the first infusion); the outcome analyses count "
            "from the first infusion, so an outcome day must be >= 0"
        )
        return None
    return int(number)


def endpoints(
    outcomes: Sequence[Outcome],
    *,
    strata: Mapping[str, str] | None = None,
    gvhd_grade: int = 2,
) -> pd.DataFrame:
    """Per patient: PFS, OS and acute GVHD competing-risk times (see the module docstring).

    Parameters
    ----------
    outcomes : sequence of Outcome
    strata : mapping, optional
        Patient → stratum (the manifest's); empty when absent.
    gvhd_grade : int
        Lowest acute GVHD grade counted as an event.

    Returns
    -------
    DataFrame
        `ENDPOINT_COLUMNS`: days (float) and events (0/1; ``gvhd_status`` 0
        censored, 1 GVHD, 2 death without it; empty when not assessed).
    """
    strata = strata or {}
    rows = []
    for o in outcomes:
        end = o.end_of_followup
        firsts = [d for d in (o.progression_day, o.death_day) if d is not None]
        pfs_days, pfs_event = (min(firsts), 1) if firsts else (end, 0)
        os_days, os_event = (o.death_day, 1) if o.death_day is not None else (end, 0)
        gvhd_days, status = math.nan, math.nan
        if o.agvhd_max_grade is not None:
            if o.agvhd_max_grade >= gvhd_grade:
                gvhd_days, status = o.agvhd_onset_day, GVHD_EVENT
            elif o.death_day is not None:
                gvhd_days, status = o.death_day, GVHD_COMPETING
            else:
                gvhd_days, status = end, GVHD_CENSORED
        rows.append(
            {
                "patient": o.patient,
                "stratum": strata.get(o.patient, ""),
                "pfs_days": float(pfs_days),
                "pfs_event": pfs_event,
                "os_days": float(os_days),
                "os_event": os_event,
                "gvhd_days": float(gvhd_days),
                "gvhd_status": status,
                "end_of_followup": float(end),
            }
        )
    frame = pd.DataFrame(rows, columns=list(ENDPOINT_COLUMNS))
    frame["gvhd_status"] = frame["gvhd_status"].astype("Float64").astype("Int64")
    return frame.astype({"pfs_event": np.int64, "os_event": np.int64})
