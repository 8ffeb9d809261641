"""``manifest.csv``: one row per FCS file, checked; `Infusion`, one given cell infusion.

`read_manifest` returns the well-formed rows and appends
every problem found to the caller's list (see `cytokit.study.load_study`):
the required columns, whole-number days within ±`MAX_DAYS` of the first
infusion, non-negative counts (``beads_per_test`` and ``sample_volume_ul``
above 0), ``donor_is``, every file present, inside the study's roots and
listed once, one (patient, day, sample_type) per file and one donor marker
and side per patient.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cytokit._numbers import MAX_DAYS
from cytokit._paths import refusal
from cytokit.errors import did_you_mean
from cytokit.study.tables import misnamed_columns, read_table

__all__ = ["MAX_DAYS", "Infusion", "ManifestRow", "read_manifest"]

REQUIRED_COLUMNS = ("file", "patient", "day")
NUMERIC_COLUMNS = ("wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul")
#: Of those, the ones a count divides or multiplies by, never 0 (a cell count may be 0).
POSITIVE_COLUMNS = ("beads_per_test", "sample_volume_ul")
DONOR_SIDES = ("positive", "negative")
#: The optional text columns cytokit reads (a column of the same name in other case is
#: taken for a misspelling of one).
OPTIONAL_TEXT = (
    "stratum",
    "sample_type",
    "timepoint",
    "donor_marker",
    "donor_is",
    "tube",
    "control",
)


@dataclass(frozen=True)
class ManifestRow:
    """One row of ``manifest.csv``: one FCS file of one patient on one day."""

    line: int
    file: Path
    patient: str
    day: int
    stratum: str = ""
    sample_type: str = ""
    timepoint: str = ""
    donor_marker: str = ""
    donor_is: str = ""
    wbc_per_ul: float | None = None
    lymphocytes_per_ul: float | None = None
    beads_per_test: float | None = None
    sample_volume_ul: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    tube: str = ""  # the manifest's tube column; empty: the default tube
    control: str = ""  # the control column: the marker this file is an FMO control for


@dataclass(frozen=True)
class Infusion:
    """One row of ``infusions.csv``."""

    patient: str
    day: int
    product: str
    dose_per_kg: float | None = None


def _parse_int(value: str) -> int:
    value = value.strip()
    if not re.fullmatch(r"[+-]?\d+(\.0*)?", value):  # "1e1", "0x7", "7_0", "inf" are no day
        raise ValueError(value)
    number = float(value)  # accepts "7", "7.0", "-7"
    if not math.isfinite(number) or number != int(number):
        raise ValueError(value)
    return int(number)


def _parse_day(value: str, where: str, problems: list[str]) -> int | None:
    """A day relative to the first infusion, within ±`MAX_DAYS`; else a problem and None."""
    shown = value.strip() if len(value.strip()) <= 40 else value.strip()[:37] + "..."
    try:
        day = _parse_int(value)
    except ValueError:
        problems.append(
            f"{where}: day {shown!r} is not a whole number of days "
            "(relative to the first infusion; negative before it)"
        )
        return None
    if abs(day) > MAX_DAYS:
        problems.append(
            f"{where}: day {shown!r} is beyond ±{MAX_DAYS:,} days (100 "
            "years) of the first infusion; days count from the first infusion (negative "
            "before it): is it a date or a typo?"
        )
        return None
    return day


def _parse_float(value: str) -> float | None:
    value = value.strip()
    if value == "" or value.upper() in ("NA", "NAN"):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(value)
    return number


def _is_number(value: str) -> bool:
    try:
        _parse_float(value)
    except ValueError:
        return False
    return True


def _is_day(value: str) -> bool:
    try:
        _parse_int(value)
    except ValueError:
        return False
    return True


#: Every column cytokit reads from the manifest -> whether a value fits it (None: any
#: text), for `cytokit.study.tables.misnamed_columns`; the product-sample columns are
#: read from a row's metadata (`cytokit.analysis.outcomes`).
READ_COLUMNS = {
    "file": None,
    "patient": None,
    "day": _is_day,
    **dict.fromkeys(NUMERIC_COLUMNS, _is_number),
    **dict.fromkeys(OPTIONAL_TEXT, None),
    "donor_is": lambda v: v.lower() in DONOR_SIDES,
    "product": None,
    **dict.fromkeys(("nucleated_per_ml", "volume_ml", "weight_kg"), _is_number),
}


def read_manifest(path: Path, problems: list[str], roots: tuple[Path, ...]) -> list[ManifestRow]:
    why = refusal(path, roots)
    if why:
        problems.append(f"{path}: {why}")
        return []
    before = len(problems)
    header, records = read_table(path, problems)
    if not header:
        return []
    malformed = len(problems) > before  # lines read_table refused: not "only the header"
    # a column of cytokit's named otherwise would be kept as metadata, and its values
    # dropped for a default without a word (beads_per_tube: counted on lymphocytes)
    misnamed = misnamed_columns(path, header, records, READ_COLUMNS, problems)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        unsaid = [c for c in missing if c not in misnamed.values()]
        if unsaid:
            named = ", ".join(c + did_you_mean(c, header) for c in unsaid)
            problems.append(
                f"{path}: missing column(s) {named}; the header must include "
                f"{', '.join(REQUIRED_COLUMNS)} (it has {', '.join(header)})"
            )
        return []
    if not records:
        if malformed:
            return []
        problems.append(
            f"{path}: no files listed, only the header; nothing to analyse. Add one row per "
            f"FCS file ({', '.join(REQUIRED_COLUMNS)}, ...)"
        )
        return []
    # the columns kept out of a row's metadata (tube and control are read, and kept too)
    known = {*REQUIRED_COLUMNS, *NUMERIC_COLUMNS, *OPTIONAL_TEXT} - {"tube", "control"}
    rows: list[ManifestRow] = []
    seen: dict[Path, tuple[int, str]] = {}  # resolved path -> first line and its spelling
    for line, rec in records:
        where = f"{path}, line {line}"
        bad = False
        file_value = rec["file"].strip()
        if not file_value:
            problems.append(f"{where}: empty 'file'")
            bad = True
        patient = rec["patient"].strip()
        if not patient:
            problems.append(f"{where}: empty 'patient'")
            bad = True
        day = _parse_day(rec["day"], where, problems)
        if day is None:
            bad = True
            day = 0
        numbers: dict[str, float | None] = {}
        for col in NUMERIC_COLUMNS:
            if col in rec:
                try:
                    numbers[col] = _parse_float(rec[col])
                except ValueError:
                    problems.append(
                        f"{where}: {col} {rec[col]!r} is not a non-negative number "
                        "(leave it empty when unknown)"
                    )
                    bad = True
                    continue
                if numbers[col] == 0 and col in POSITIVE_COLUMNS:
                    # no beads, or no volume, is no bead count at all: 0 would make every
                    # count 0 cells/µL (or silently count on another basis)
                    problems.append(
                        f"{where}: {col} is 0; a bead count needs a positive {col} "
                        "(leave it empty when unknown)"
                    )
                    bad = True
        donor_is = rec.get("donor_is", "").strip().lower()
        if donor_is and donor_is not in DONOR_SIDES:
            problems.append(
                f"{where}: donor_is {rec['donor_is']!r} must be 'positive' or 'negative'"
            )
            bad = True
        file_path = (path.parent / file_value) if file_value else path.parent
        why = refusal(file_path, roots) if file_value else None
        if why:
            problems.append(f"{where}: FCS file {file_value!r} {why}")
            bad = True
        # one file under two spellings ("fcs/../fcs/a.fcs", a link) would count twice
        same = Path(os.path.realpath(file_path))  # Path.resolve raises on a link loop
        if file_value and not why and same in seen:
            first, spelled = seen[same]
            also = "" if spelled == file_value else f" as {spelled!r}: the same file"
            problems.append(
                f"{where}: file {file_value!r} is listed again (first on line {first}{also}); "
                "list each file once"
            )
            bad = True
        if not why:  # a refused path is reported as such, not as listed again
            seen.setdefault(same, (line, file_value))
        if bad:
            continue
        rows.append(
            ManifestRow(
                line=line,
                file=file_path,
                patient=patient,
                day=day,
                stratum=rec.get("stratum", "").strip(),
                sample_type=rec.get("sample_type", "").strip(),
                timepoint=rec.get("timepoint", "").strip(),
                donor_marker=rec.get("donor_marker", "").strip(),
                donor_is=donor_is,
                metadata={k: v for k, v in rec.items() if k not in known},
                # "default" names the top-level tables' tube, as an empty cell does
                tube=""
                if rec.get("tube", "").strip() == "default"
                else rec.get("tube", "").strip(),
                control=rec.get("control", "").strip(),
                **numbers,
            )
        )
    _check_rows(path, rows, problems)
    return rows


def _check_rows(path: Path, rows: list[ManifestRow], problems: list[str]) -> None:
    seen: dict[tuple[str, int, str, str, str], int] = {}
    donor: dict[str, tuple[str, str, int]] = {}
    for r in rows:
        # a visit holds one file per tube, and one FMO control per tube and marker
        key = (r.patient, r.day, r.sample_type, r.tube, r.control)
        if key in seen:
            problems.append(
                f"{path}, line {r.line}: patient {r.patient} day {r.day}"
                + (f" sample_type {r.sample_type!r}" if r.sample_type else "")
                + (f" tube {r.tube!r}" if r.tube else "")
                + (f" control {r.control!r}" if r.control else "")
                + f" already has a file on line {seen[key]}; "
                + (
                    "a visit has one file per tube"
                    if r.tube
                    else "give each tube its own sample_type, or a tube column naming its panel"
                )
            )
        seen.setdefault(key, r.line)
        mine = (r.donor_marker, r.donor_is)
        first = donor.setdefault(r.patient, (*mine, r.line))
        if first[:2] != mine:
            problems.append(
                f"{path}, line {r.line}: patient {r.patient} has donor_marker/donor_is "
                f"{mine[0] or '(default)'}/{mine[1] or '(default)'} but line {first[2]} says "
                f"{first[0] or '(default)'}/{first[1] or '(default)'}; a patient has one donor"
            )
