"""A study folder: ``study.toml``, ``manifest.csv``, optional ``infusions.csv``, the FCS files.

`load_study` reads and checks everything before any work starts and reports
every problem it finds in one `StudyError`, so a lab fixes its manifest once
rather than once per error.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytokit._toml import load_toml
from cytokit.errors import CytokitError, StudyError
from cytokit.panel import Panel

__all__ = ["Infusion", "ManifestRow", "Study", "load_study"]

REQUIRED_COLUMNS = ("file", "patient", "day")
NUMERIC_COLUMNS = ("wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul")
DONOR_SIDES = ("positive", "negative")


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


@dataclass(frozen=True)
class Infusion:
    """One row of ``infusions.csv``."""

    patient: str
    day: int
    product: str
    dose_per_kg: float | None = None


@dataclass
class Study:
    """A loaded, checked study folder."""

    root: Path
    name: str
    config: dict[str, Any]
    panel: Panel
    rows: list[ManifestRow]
    infusions: list[Infusion]
    strategy: Path | None

    @property
    def patients(self) -> list[str]:
        return sorted({r.patient for r in self.rows})


def _parse_int(value: str) -> int:
    value = value.strip()
    number = float(value)  # accepts "7", "7.0", "-7"
    if not math.isfinite(number) or number != int(number):
        raise ValueError(value)
    return int(number)


def _parse_float(value: str) -> float | None:
    value = value.strip()
    if value == "" or value.upper() in ("NA", "NAN"):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(value)
    return number


def _read_csv(
    path: Path, problems: list[str]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = list(reader)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return [], []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return [], []
    if not rows:
        problems.append(f"{path}: empty; it needs a header line")
        return [], []
    header = [h.strip() for h in rows[0]]
    out = []
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(
                f"{path}, line {number}: {len(values)} fields but the header has "
                f"{len(header)} ({', '.join(header)})"
            )
            continue
        out.append((number, dict(zip(header, values, strict=True))))
    return header, out


def _manifest(path: Path, problems: list[str]) -> list[ManifestRow]:
    header, records = _read_csv(path, problems)
    if not header:
        return []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        problems.append(
            f"{path}: missing column(s) {', '.join(missing)}; the header must include "
            f"{', '.join(REQUIRED_COLUMNS)} (it has {', '.join(header)})"
        )
        return []
    known = (
        set(REQUIRED_COLUMNS)
        | set(NUMERIC_COLUMNS)
        | {
            "stratum",
            "sample_type",
            "timepoint",
            "donor_marker",
            "donor_is",
        }
    )
    rows: list[ManifestRow] = []
    seen: dict[Path, int] = {}
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
        try:
            day = _parse_int(rec["day"])
        except ValueError:
            problems.append(
                f"{where}: day {rec['day']!r} is not a whole number of days "
                "(relative to the first infusion; negative before it)"
            )
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
        donor_is = rec.get("donor_is", "").strip().lower()
        if donor_is and donor_is not in DONOR_SIDES:
            problems.append(
                f"{where}: donor_is {rec['donor_is']!r} must be 'positive' or 'negative'"
            )
            bad = True
        file_path = (path.parent / file_value) if file_value else path.parent
        if file_value and not file_path.is_file():
            problems.append(f"{where}: FCS file {file_value!r} not found (looked for {file_path})")
            bad = True
        if file_value and file_path in seen:
            problems.append(
                f"{where}: file {file_value!r} is listed again (first on line {seen[file_path]})"
            )
            bad = True
        seen.setdefault(file_path, line)
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
                **numbers,
            )
        )
    return rows


def _infusions(path: Path, problems: list[str]) -> list[Infusion]:
    if not path.exists():
        return []
    header, records = _read_csv(path, problems)
    need = ("patient", "day", "product")
    if header and any(c not in header for c in need):
        problems.append(
            f"{path}: the header must include {', '.join(need)}, dose_per_kg (optional)"
        )
        return []
    out = []
    for line, rec in records:
        try:
            day = _parse_int(rec["day"])
            dose = _parse_float(rec.get("dose_per_kg", ""))
        except ValueError:
            problems.append(
                f"{path}, line {line}: day must be a whole number and dose_per_kg a number"
            )
            continue
        out.append(Infusion(rec["patient"].strip(), day, rec["product"].strip(), dose))
    return out


def _check_markers(
    study_rows: Iterable[ManifestRow], panel: Panel, markers: list[str], problems: list[str]
) -> None:
    from cytokit.fcs import read_fcs

    for row in study_rows:
        try:
            sample = read_fcs(row.file, mmap=True, scale=False)
        except CytokitError as exc:
            problems.append(f"{row.file}: {exc}")
            continue
        need = list(markers)
        if row.donor_marker and row.donor_marker not in need:
            need.append(row.donor_marker)
        try:
            panel.columns(sample, need)
        except CytokitError as exc:
            problems.append(str(exc))


def load_study(folder: str | Path, *, check_files: bool = True) -> Study:
    """Load and check a study folder.

    Parameters
    ----------
    folder : path
        The folder holding ``study.toml`` and ``manifest.csv``.
    check_files : bool
        Also open every FCS file and check that every marker the study uses
        resolves to a channel.

    Raises
    ------
    StudyError
        Listing every problem found (missing files, unknown markers, bad days,
        malformed rows), one per line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StudyError(
            f"{root}: not a folder; give the study folder holding study.toml and manifest.csv"
        )
    problems: list[str] = []
    config: dict[str, Any] = {}
    try:
        config = load_toml(root / "study.toml")
    except StudyError as exc:
        problems.append(str(exc))
    panel = Panel({})
    table = config.get("panel")
    if config and not isinstance(table, dict):
        problems.append(
            f"{root / 'study.toml'}: no [panel] table naming the channel of each marker"
        )
    elif table:
        try:
            panel = Panel(table, source=str(root / "study.toml"))
        except CytokitError as exc:
            problems.append(str(exc))
    rows = _manifest(root / "manifest.csv", problems)
    infusions = _infusions(root / "infusions.csv", problems)
    strategy = None
    gating = config.get("gating", {})
    if isinstance(gating, dict) and gating.get("strategy"):
        strategy = root / str(gating["strategy"])
    markers = [m for m in panel]
    chim = config.get("chimerism", {})
    if isinstance(chim, dict) and chim.get("marker") and chim["marker"] not in markers:
        problems.append(
            f"{root / 'study.toml'}: [chimerism] marker {chim['marker']!r} is not in [panel] "
            f"(panel has: {', '.join(markers) or 'none'})"
        )
    for row in rows:
        if row.donor_marker and row.donor_marker not in panel:
            problems.append(
                f"{root / 'manifest.csv'}, line {row.line}: donor_marker {row.donor_marker!r} "
                f"is not in [panel] (panel has: {', '.join(markers) or 'none'})"
            )
    if check_files:
        _check_markers(rows, panel, markers, problems)
    if problems:
        raise StudyError(
            f"{root}: {len(problems)} problem(s) in the study:\n  " + "\n  ".join(problems)
        )
    name = (
        str(config.get("study", {}).get("name", root.name))
        if isinstance(config.get("study"), dict)
        else root.name
    )
    return Study(root, name, config, panel, rows, infusions, strategy)
