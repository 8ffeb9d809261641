"""``treatments.csv``: what each patient was given, cells and drugs, and what was skipped.

Columns (header names exact; other columns are kept as metadata, except one that is
a column below in other case, with spaces or hyphens, or misspelt, which is a problem):

==============  ========  ====================================================
column          required  meaning
==============  ========  ====================================================
``patient``     yes       patient identifier (as in the manifest)
``day``         yes       whole day on the manifest's axis
``product``     yes       e.g. ``NK``, ``DLI``, ``CIK``, ``IL-2``
``kind``        yes       ``cells`` (an infusion of donor cells) or ``drug``
``dose``        no        non-negative number in `unit` (empty: unknown)
``unit``        with dose e.g. ``cells/kg``, ``CD3+ cells/kg``, ``MIU/m2``;
                          one unit per product in the whole file
``dose_level``  no        whole number (dose-escalation level)
``given``       no        ``yes`` or ``no``: a skipped infusion stays a row
                          (empty or no column: ``yes``)
``end_day``     no        last day of a drug course given as one row
==============  ========  ====================================================

The older ``infusions.csv`` (``patient, day, product, dose_per_kg``) is still
read: every row is a given cell infusion of ``dose_per_kg`` cells/kg.

Bookkeeping, for the persistence and outcome analyses:

* `segment_days`: only **given cell** infusions start a persistence segment
  (the half-life fit cuts there); drugs and skipped infusions do not.
* `dose_totals`: doses summed per patient and product over given rows, never
  across products (a DLI dose in CD3+ cells/kg and a CIK dose are different
  things); a total with a given dose unknown is left empty and says so.
* `drug_courses`: drug rows as day ranges (bands on plots): one row with an
  ``end_day`` is one course; single-day rows of one drug at most
  `COURSE_GAP` days apart join into one course (IL-2 every other day).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.errors import StudyError, did_you_mean
from cytokit.study.manifest import MAX_DAYS

__all__ = [
    "COURSE_GAP",
    "DOSE_TOTAL_COLUMNS",
    "KINDS",
    "Treatment",
    "dose_totals",
    "drug_courses",
    "parse_treatments",
    "read_treatments",
    "segment_days",
    "treatments_frame",
    "treatments_from_frame",
]

KINDS = ("cells", "drug")
#: Largest gap (days) between single-day rows of one drug that still join into one course.
COURSE_GAP = 3
_YES = {"yes": True, "y": True, "true": True, "1": True, "no": False, "n": False, "false": False, "0": False}  # fmt: skip
_KNOWN = ("patient", "day", "product", "kind", "dose", "unit", "dose_level", "given", "end_day")


def _is_whole(text: str) -> bool:
    return _whole(text, "", []) is not None


def _is_dose(text: str) -> bool:
    return _dose(text, "", "", []) is not None


#: Every column read -> whether a value fits it (None: any text), for
#: `cytokit.study.tables.misnamed_columns`.
_READ = {
    "patient": None,
    "day": _is_whole,
    "product": None,
    "kind": lambda v: v.lower() in KINDS,
    "dose": _is_dose,
    "dose_per_kg": _is_dose,
    "unit": None,
    "dose_level": _is_whole,
    "given": lambda v: v.lower() in _YES,
    "end_day": _is_whole,
}
DOSE_TOTAL_COLUMNS = (
    "patient", "product", "kind", "unit", "n_given", "n_skipped", "total_dose", "first_day",
    "last_day", "max_dose_level", "note",
)  # fmt: skip


@dataclass(frozen=True)
class Treatment:
    """One row of ``treatments.csv`` (see the module docstring)."""

    patient: str
    day: int
    product: str
    kind: str = "cells"
    dose: float | None = None
    unit: str = ""
    dose_level: int | None = None
    given: bool = True
    end_day: int | None = None
    line: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def is_cells(self) -> bool:
        return self.kind == "cells"


def read_treatments(path: str | Path, *, patients: Iterable[str] | None = None) -> list[Treatment]:
    """Read and check ``treatments.csv`` (or the older ``infusions.csv``).

    Parameters
    ----------
    path : path
    patients : iterable of str, optional
        The study's patients (the manifest's); a row of any other patient is a problem.

    Returns
    -------
    list of Treatment
        In file order.

    Raises
    ------
    StudyError
        Listing every problem of the file, one per line (file, line, value, fix).
    """
    problems: list[str] = []
    rows = parse_treatments(path, problems, patients=patients)
    if problems:
        raise StudyError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return rows


def parse_treatments(
    path: str | Path, problems: list[str], *, patients: Iterable[str] | None = None
) -> list[Treatment]:
    """`read_treatments` that appends its problems to `problems` (for a study's one error).

    Returns the well-formed rows (rows with a problem are left out).
    """
    from cytokit.study.tables import misnamed_columns, read_table

    path = Path(path)
    header, records = read_table(path, problems)
    if not header:
        return []
    # a column of ours named otherwise (Given, Dose) would be kept as metadata, unread
    misnamed = misnamed_columns(path, header, records, _READ, problems)
    # the older infusions.csv: every row a cell infusion in cells/kg (dose_per_kg optional)
    legacy = "dose" not in header and (
        "dose_per_kg" in header or (path.name == "infusions.csv" and "kind" not in header)
    )
    need = ["patient", "day", "product"] + ([] if legacy else ["kind"])
    missing = [c for c in need if c not in header]
    if missing:
        unsaid = [c for c in missing if c not in misnamed.values()]
        if unsaid:
            problems.append(
                f"{path}: missing column(s) {', '.join(unsaid)}; the header must include "
                "patient, day, product, kind (cells or drug) and may have dose, unit, "
                f"dose_level, given, end_day (it has {', '.join(header)})"
            )
        return []
    known_patients = None if patients is None else set(patients)
    out: list[Treatment] = []
    for line, rec in records:
        row = _row(path, line, rec, legacy, known_patients, problems)
        if row is not None:
            out.append(row)
    _check_rows(path, out, problems)
    return out


def _row(path, line, rec, legacy, known_patients, problems) -> Treatment | None:
    where = f"{path}, line {line}"
    found = len(problems)
    patient = rec["patient"].strip()
    product = rec["product"].strip()
    if not patient:
        problems.append(f"{where}: empty 'patient'")
    elif known_patients is not None and patient not in known_patients:
        problems.append(
            f"{where}: patient {patient!r} (day {rec['day'].strip()}) is not in manifest.csv"
            + did_you_mean(patient, known_patients)
        )
    if not product:
        problems.append(f"{where}: empty 'product'; name it (e.g. NK, DLI, CIK, IL-2)")
    day = _whole(rec["day"], f"{where}: day", problems, required=True)
    if day is not None and abs(day) > MAX_DAYS:
        problems.append(
            f"{where}: day {rec['day'].strip()!r} is beyond ±{MAX_DAYS:,} days (100 years) of "
            "the first infusion; days count from the first infusion: is it a date or a typo?"
        )
        day = None
    kind = rec.get("kind", "").strip().lower()
    if legacy and not kind:
        kind = "cells"  # infusions.csv: every row an infusion of cells
    if kind not in KINDS:
        problems.append(f"{where}: kind {rec.get('kind', '')!r} must be 'cells' or 'drug'")
    dose_text = rec.get("dose_per_kg" if legacy else "dose", "")
    dose = _dose(dose_text, where, "dose_per_kg" if legacy else "dose", problems)
    unit = "cells/kg" if legacy else rec.get("unit", "").strip()
    if dose is not None and not unit:
        problems.append(
            f"{where}: dose {dose_text.strip()!r} has no unit; give the unit column "
            "(e.g. cells/kg, CD3+ cells/kg, MIU/m2)"
        )
    level = _whole(rec.get("dose_level", ""), f"{where}: dose_level", problems)
    given_text = rec.get("given", "").strip().lower() or "yes"
    given = _YES.get(given_text)
    if given is None:
        problems.append(
            f"{where}: given {rec.get('given', '')!r} must be yes or no "
            "(no: a scheduled infusion that was skipped)"
        )
    end_day = _whole(rec.get("end_day", ""), f"{where}: end_day", problems)
    if end_day is not None and day is not None and end_day < day:
        problems.append(f"{where}: end_day {end_day} is before day {day}")
    if len(problems) > found:
        return None
    return Treatment(
        patient=patient,
        day=int(day),
        product=product,
        kind=kind,
        dose=dose,
        unit=unit,
        dose_level=level,
        given=bool(given),
        end_day=end_day,
        line=line,
        metadata={k: v for k, v in rec.items() if k not in (*_KNOWN, "dose_per_kg")},
    )


def _whole(text: str, where: str, problems: list[str], *, required: bool = False) -> int | None:
    text = (text or "").strip()
    if not text:
        if required:
            problems.append(f"{where} is empty; give a whole number of days")
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        problems.append(f"{where} {text!r} is not a whole number")
        return None
    return int(number)


def _dose(text: str, where: str, column: str, problems: list[str]) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        problems.append(
            f"{where}: {column} {text!r} is not a non-negative number (leave it empty when unknown)"
        )
        return None
    return number


def _check_rows(path: Path, rows: list[Treatment], problems: list[str]) -> None:
    seen: dict[tuple[str, int, str], int] = {}
    units: dict[str, tuple[str, int]] = {}
    kinds: dict[str, tuple[str, int]] = {}
    for r in rows:
        key = (r.patient, r.day, r.product)
        if key in seen:
            problems.append(
                f"{path}, line {r.line}: patient {r.patient} already has {r.product} on day "
                f"{r.day} (line {seen[key]}); one row per product and day"
            )
        seen.setdefault(key, r.line)
        first_kind = kinds.setdefault(r.product, (r.kind, r.line))
        if first_kind[0] != r.kind:
            problems.append(
                f"{path}, line {r.line}: {r.product} is kind {r.kind!r} here but "
                f"{first_kind[0]!r} on line {first_kind[1]}; a product is cells or a drug"
            )
        if r.unit:
            first = units.setdefault(r.product, (r.unit, r.line))
            if first[0] != r.unit:
                problems.append(
                    f"{path}, line {r.line}: {r.product} dose in {r.unit!r} but in {first[0]!r} "
                    f"on line {first[1]}; give every {r.product} dose in one unit so doses add up"
                )


def treatments_frame(treatments: Sequence[Treatment]) -> pd.DataFrame:
    """The rows as a DataFrame: patient, day, product, kind, dose, unit, dose_level, given, end_day."""
    columns = [*_KNOWN]
    return pd.DataFrame(
        [
            {
                "patient": t.patient,
                "day": t.day,
                "product": t.product,
                "kind": t.kind,
                "dose": np.nan if t.dose is None else t.dose,
                "unit": t.unit,
                "dose_level": pd.NA if t.dose_level is None else t.dose_level,
                "given": t.given,
                "end_day": pd.NA if t.end_day is None else t.end_day,
            }
            for t in treatments
        ],
        columns=columns,
    ).astype({"dose_level": "Int64", "end_day": "Int64"})


def treatments_from_frame(frame: pd.DataFrame) -> list[Treatment]:
    """The rows of a `treatments_frame` (e.g. a results folder's ``treatments.csv``) back.

    Inverse of `treatments_frame` for the columns it writes (``line`` is the
    row's position from 1, ``metadata`` is empty). A missing ``kind`` is
    ``cells`` and a missing ``given`` is ``yes``, as in ``treatments.csv``.
    """
    out: list[Treatment] = []
    if frame is None or frame.empty:
        return out

    def _opt_int(value) -> int | None:
        return None if value is None or pd.isna(value) else int(value)

    for line, row in enumerate(frame.to_dict("records"), start=1):
        dose = row.get("dose")
        given = row.get("given", True)
        if isinstance(given, str):
            given = _YES.get(given.strip().lower() or "yes", True)
        out.append(
            Treatment(
                patient=str(row["patient"]),
                day=int(row["day"]),
                product=str(row["product"]),
                kind="cells" if pd.isna(row.get("kind", "cells")) else str(row.get("kind")),
                dose=None if dose is None or pd.isna(dose) else float(dose),
                unit="" if pd.isna(row.get("unit", "")) else str(row.get("unit", "")),
                dose_level=_opt_int(row.get("dose_level")),
                given=True if given is None or pd.isna(given) else bool(given),
                end_day=_opt_int(row.get("end_day")),
                line=line,
            )
        )
    return out


def segment_days(
    treatments: Sequence[Treatment], *, products: Iterable[str] | None = None
) -> dict[str, tuple[int, ...]]:
    """Days that start a persistence segment, per patient: its given cell infusions.

    Drug rows (IL-2, immunosuppression) and skipped infusions (``given = no``)
    start none: they add no donor cells. The trends half-life fit cuts its
    decay phases at these days (`cytokit.analysis.trends.fit_half_life` ``infusions``).

    Parameters
    ----------
    treatments : sequence of Treatment
    products : iterable of str, optional
        Only these cell products (default: every cell product).

    Returns
    -------
    dict of str to tuple of int
        Patient → sorted distinct days; patients without a given cell infusion are absent.
    """
    keep = None if products is None else set(products)
    days: dict[str, set[int]] = {}
    for t in treatments:
        if t.is_cells and t.given and (keep is None or t.product in keep):
            days.setdefault(t.patient, set()).add(t.day)
    return {p: tuple(sorted(d)) for p, d in sorted(days.items())}


def dose_totals(treatments: Sequence[Treatment]) -> pd.DataFrame:
    """Per patient and product: given and skipped rows and the total given dose.

    Never sums across products. ``total_dose`` is empty (with a note) when a
    given row's dose is unknown, since any sum would be too low.

    Returns
    -------
    DataFrame
        `DOSE_TOTAL_COLUMNS`, one row per patient and product, sorted.
    """
    groups: dict[tuple[str, str], list[Treatment]] = {}
    for t in treatments:
        groups.setdefault((t.patient, t.product), []).append(t)
    rows = []
    for (patient, product), items in sorted(groups.items()):
        given = [t for t in items if t.given]
        unknown = sum(t.dose is None for t in given)
        total = math.nan if unknown or not given else float(sum(t.dose for t in given))
        levels = [t.dose_level for t in given if t.dose_level is not None]
        days = [t.day for t in given]
        # a drug course given as one row lasts to its end_day
        ends = [t.end_day if t.end_day is not None else t.day for t in given]
        note = f"dose unknown for {unknown} given row(s)" if unknown else ""
        rows.append(
            {
                "patient": patient,
                "product": product,
                "kind": items[0].kind,
                "unit": next((t.unit for t in items if t.unit), ""),
                "n_given": len(given),
                "n_skipped": len(items) - len(given),
                "total_dose": total,
                "first_day": min(days) if days else pd.NA,
                "last_day": max(ends) if ends else pd.NA,
                "max_dose_level": max(levels) if levels else pd.NA,
                "note": note,
            }
        )
    frame = pd.DataFrame(rows, columns=list(DOSE_TOTAL_COLUMNS))
    return frame.astype({"first_day": "Int64", "last_day": "Int64", "max_dose_level": "Int64"})


def drug_courses(treatments: Sequence[Treatment], *, gap: int = COURSE_GAP) -> pd.DataFrame:
    """Given drug rows as courses: patient, product, start_day, end_day, n_rows.

    A row with ``end_day`` is a course of its own; single-day rows of one
    drug join the previous course when at most `gap` days after its end.
    """
    rows: list[dict] = []
    by_drug: dict[tuple[str, str], list[Treatment]] = {}
    for t in treatments:
        if t.kind == "drug" and t.given:
            by_drug.setdefault((t.patient, t.product), []).append(t)
    for (patient, product), items in sorted(by_drug.items()):
        current: dict | None = None
        for t in sorted(items, key=lambda t: t.day):
            end = t.end_day if t.end_day is not None else t.day
            joins = (
                current is not None
                and t.end_day is None
                and current["single"]
                and t.day - current["end_day"] <= gap
            )
            if joins:
                current["end_day"] = max(current["end_day"], end)
                current["n_rows"] += 1
                continue
            current = {
                "patient": patient,
                "product": product,
                "start_day": t.day,
                "end_day": end,
                "n_rows": 1,
                "single": t.end_day is None,
            }
            rows.append(current)
    frame = pd.DataFrame(rows, columns=["patient", "product", "start_day", "end_day", "n_rows"])
    return frame.reset_index(drop=True)
