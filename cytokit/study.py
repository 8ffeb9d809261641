"""A study folder: ``study.toml``, ``manifest.csv``, optional ``infusions.csv``, the FCS files.

`load_study` reads and checks everything before any work starts and reports
every problem it finds in one `StudyError`, so a lab fixes its manifest once
rather than once per error:

* ``study.toml``: valid TOML, a ``[panel]``, the analysis tables
  (`cytokit.settings.parse_settings`: unknown keys, bad values). When it
  cannot be read, nothing that depends on it (markers, strategy, files) is
  checked: its one problem is not followed by those it causes;
* ``manifest.csv``: the required columns, at least one row, one
  well-formed row per file (field count, whole-number days within
  ±`MAX_DAYS` of the first infusion, non-negative counts, ``donor_is``),
  every file present and listed once (however its path is spelled: links and
  ``..`` are resolved), one (patient, day, sample_type) per file, one donor
  marker and side per patient; `check_same_content` (run by
  `cytokit.analyze` once the files are hashed) refuses two lines whose files
  hold the same bytes;
* ``infusions.csv``: well-formed rows (days as in the manifest) for
  patients of the manifest;
* markers: the donor, phenotype and clustering markers are in ``[panel]``
  (`cytokit.studycheck.marker_problems`: one problem per missing marker,
  at the ``[panel]`` entry when that is the likely typo);
* the gating strategy: the file exists, parses (a YAML strategy with the
  study's ``[panel]`` and ``[transform]``, `strategy_options`), and has every
  population the settings name (populations, counting gates, the chimerism
  parent). Each of those names (a path, a gate or quadrant id, a unique
  population name) is replaced by the canonical path of its population in
  `Study.settings`, so every table shows one spelling;
* the FCS files (``check_files``): every panel marker resolves to a channel,
  and every channel a gate reads exists; a problem several files share is
  said once, naming them ("in all 15 files"). A file that cannot be read at all
  (corrupt, truncated) is not a study problem: it is listed in
  `Study.unreadable` and the analysis reports it as a failure while the
  other files go on.

Every path the study names (manifest rows, ``[gating] strategy``,
``[compensation] source``, and ``manifest.csv`` and ``infusions.csv``
themselves) must resolve, symbolic links followed, inside the study folder or
a folder listed in ``[study] data_roots``, and be a regular file; anything
else is a problem, and the file is not opened (`cytokit._paths`).
``study.toml`` must be inside the study folder itself.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytokit._io import restore_cell
from cytokit._paths import open_regular, refusal, study_roots
from cytokit._toml import load_toml
from cytokit.errors import CytokitError, StudyError
from cytokit.panel import Panel
from cytokit.settings import StudySettings, parse_settings
from cytokit.studycheck import file_problems, marker_problems

__all__ = [
    "Infusion",
    "ManifestRow",
    "Study",
    "check_same_content",
    "load_study",
    "strategy_options",
]

REQUIRED_COLUMNS = ("file", "patient", "day")
NUMERIC_COLUMNS = ("wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul")
DONOR_SIDES = ("positive", "negative")
#: Largest manifest.csv or infusions.csv read (a manifest of 100,000 files is ~10 MB).
MAX_CSV_BYTES = 64 * 2**20
#: Days (from the first infusion) a manifest or infusions.csv may give: 100 years either
#: side. A value beyond it is a typo or a date (20240108) written as a day.
MAX_DAYS = 36_500


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
    """A loaded, checked study folder.

    Attributes
    ----------
    root : Path
    name : str
        ``[study] name`` (default: the folder name).
    config : dict
        ``study.toml`` as parsed.
    panel : Panel
    rows : list of ManifestRow
    infusions : list of Infusion
    strategy : Path or None
        The strategy file (None when a strategy object was given).
    settings : StudySettings
        The analysis options; once the strategy is loaded, every gate
        reference in them is the canonical path of its population.
    gating : GatingStrategy or None
        The loaded strategy (None when not checked: ``check_files=False``).
    unreadable : dict of Path to str
        Files that exist but could not be read, with the reason.
    """

    root: Path
    name: str
    config: dict[str, Any]
    panel: Panel
    rows: list[ManifestRow]
    infusions: list[Infusion]
    strategy: Path | None
    settings: StudySettings = field(default_factory=StudySettings)
    gating: Any = None
    unreadable: dict[Path, str] = field(default_factory=dict)

    @property
    def patients(self) -> list[str]:
        return sorted({r.patient for r in self.rows})

    def donor_marker(self, row: ManifestRow) -> str:
        """The donor marker of a row (its own, else ``[chimerism] marker``; may be empty)."""
        return row.donor_marker or self.settings.donor_marker

    def donor_side(self, row: ManifestRow) -> int:
        """+1 when the row's donor cells are marker-positive, -1 when negative."""
        return -1 if (row.donor_is or self.settings.donor_is) == "negative" else 1

    def donor_markers(self) -> list[str]:
        """Every donor marker the study uses, in first-use order."""
        return list(dict.fromkeys(m for m in map(self.donor_marker, self.rows) if m))

    def compensation(self):
        """What `FCS` dimensions are compensated with: "file", None, or a `Spillover`."""
        source = self.settings.compensation
        if source.lower() == "file":
            return "file"
        if source.lower() == "none":
            return None
        return read_spillover_csv(self.root / source)

    def load_strategy(self, path: str | Path | None = None):
        """A strategy file read as this study reads its own (`strategy_options`).

        Parameters
        ----------
        path : path, optional
            Relative to the study folder; default ``[gating] strategy``.

        Returns
        -------
        GatingStrategy

        Raises
        ------
        GatingError
            The file is missing or malformed, or (YAML) disagrees with the
            study's ``[panel]`` or ``[transform]``.
        """
        from cytokit.gating import load_strategy

        path = self.root / (self.settings.strategy if path is None else path)
        return load_strategy(path, **strategy_options(path, self.panel, self.config))

    def gate(self, sample, *, membership: bool = True):
        """Gate one sample exactly as `cytokit.analyze` does.

        The study's strategy (`gating`, else ``[gating] strategy``), its
        compensation (`compensation`) and ``[gating] seed``: the same counts as
        ``counts.csv`` of ``analyze`` for that file.

        Parameters
        ----------
        sample : Sample
            Read with `cytokit.read_fcs` (scale values).
        membership : bool
            Keep memberships (see `GatingStrategy.apply`).

        Returns
        -------
        GatingResult
        """
        strategy = self.gating if self.gating is not None else self.load_strategy()
        return strategy.apply(
            sample,
            compensation=self.compensation(),
            membership=membership,
            seed=self.settings.gating_seed,
        )

    def relative(self, path: Path) -> str:
        """`path` relative to the study folder when inside it (as the manifest names files)."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


def _parse_int(value: str) -> int:
    value = value.strip()
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


def _read_csv(
    path: Path, problems: list[str]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            problems.append(
                f"{path}: the file is {path.stat().st_size:,} bytes; cytokit reads study tables "
                f"of at most {MAX_CSV_BYTES:,} bytes (64 MiB): check that it is the right file"
            )
            return [], []
        with open_regular(path, "r", newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = list(reader)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return [], []
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return [], []
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return [], []
    if not rows:
        problems.append(f"{path}: empty; it needs a header line")
        return [], []
    # a cell cytokit wrote with a quote against spreadsheet formulas is read as its raw value
    rows = [[restore_cell(v) for v in values] for values in rows]
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


def _manifest(path: Path, problems: list[str], roots: tuple[Path, ...]) -> list[ManifestRow]:
    why = refusal(path, roots)
    if why:
        problems.append(f"{path}: {why}")
        return []
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
    if not records:
        problems.append(
            f"{path}: no files listed, only the header; nothing to analyse. Add one row per "
            f"FCS file ({', '.join(REQUIRED_COLUMNS)}, ...)"
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
        elif file_value and not file_path.is_file():
            problems.append(f"{where}: FCS file {file_value!r} not found (looked for {file_path})")
            bad = True
        # one file under two spellings ("fcs/../fcs/a.fcs", a link) would count twice
        same = file_path.resolve()
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
                **numbers,
            )
        )
    _check_rows(path, rows, problems)
    return rows


def read_spillover_csv(path: Path):
    """The ``[compensation] source`` CSV matrix (`cytokit.spillover_csv`), errors as `StudyError`."""
    from cytokit.spillover_csv import read_spillover_csv as read

    try:
        return read(path)
    except CytokitError as exc:
        message = str(exc)
        if str(path) not in message:
            message = f"{path}: {message}"
        raise StudyError(f"{message} ([compensation] source in study.toml)") from None


def _check_rows(path: Path, rows: list[ManifestRow], problems: list[str]) -> None:
    seen: dict[tuple[str, int, str], int] = {}
    donor: dict[str, tuple[str, str, int]] = {}
    for r in rows:
        key = (r.patient, r.day, r.sample_type)
        if key in seen:
            problems.append(
                f"{path}, line {r.line}: patient {r.patient} day {r.day}"
                + (f" sample_type {r.sample_type!r}" if r.sample_type else "")
                + f" already has a file on line {seen[key]}; give each tube its own sample_type"
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


def _infusions(path: Path, problems: list[str], roots: tuple[Path, ...]) -> list[Infusion]:
    if not path.exists() and not path.is_symlink():
        return []
    why = refusal(path, roots)
    if why:
        problems.append(f"{path}: {why}")
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
            _parse_int(rec["day"])
            dose = _parse_float(rec.get("dose_per_kg", ""))
        except ValueError:
            problems.append(
                f"{path}, line {line}: day must be a whole number and dose_per_kg a number"
            )
            continue
        day = _parse_day(rec["day"], f"{path}, line {line}", problems)
        if day is None:
            continue
        out.append(Infusion(rec["patient"].strip(), day, rec["product"].strip(), dose))
    return out


def strategy_options(path: str | Path, panel: Panel, config: dict) -> dict:
    """Options of `cytokit.gating.load_strategy` that read `path` as a study does.

    A YAML strategy names markers and may leave transforms to the study: it
    gets the study's ``[panel]`` and ``[transform]`` (a ``[transform]`` of
    per-marker tables only has the logicle default added, as the settings
    read it). Gating-ML and FlowJo files carry their own channels and
    transforms and get nothing.
    """
    if Path(path).suffix.lower() not in (".yaml", ".yml"):
        return {}
    table = config.get("transform") or None
    if isinstance(table, dict) and all(isinstance(v, dict) for v in table.values()):
        table = {"type": "logicle", **table}
    return {"panel": panel, "transform": table}


def _canonical(settings: StudySettings, strategy, where, problems: list[str]) -> StudySettings:
    """`settings` with each gate reference replaced by the path of the population it names."""
    paths: dict[str, str] = {}
    owner: dict[str, str] = {}
    for what, ref in settings.gate_paths().items():
        found = strategy.matches(ref)
        if len(found) == 1:
            paths[ref] = found[0][0].path
        elif found:
            problems.append(
                f"study.toml {what} = {ref!r} names {len(found)} populations of {where}: "
                + "; ".join(f"{p.path} (by its {how})" for p, how in found)
                + "; give the full path of the one you mean"
            )
            continue
        else:
            problems.append(
                f"study.toml {what} = {ref!r}: no such gate path in {where}"
                f"{strategy.did_you_mean(ref)}; its paths are: {', '.join(strategy.paths)}"
            )
            continue
        if what.startswith("[populations]"):
            first = owner.setdefault(paths[ref], what)
            if first != what:
                problems.append(
                    f"study.toml {what} = {ref!r} and {first} name the same population "
                    f"{paths[ref]}; a gate is one population of the study, keep one of them"
                )
    return settings.with_gate_paths(paths)


def _load_strategy(
    root: Path, settings: StudySettings, given, problems: list[str], panel: Panel, config: dict
):
    """The strategy (given, or read from [gating] strategy), its path, and the settings with
    canonical gate paths."""
    from cytokit.gating import GatingStrategy, load_strategy

    path = None
    strategy = None
    if isinstance(given, GatingStrategy):
        strategy = given
    else:
        name = given if given is not None else settings.strategy
        if not name:
            return None, None, settings
        path = root / str(name)
        if not path.is_file():
            problems.append(
                f"{path}: strategy file not found; [gating] strategy in study.toml names it "
                "relative to the study folder"
            )
            return None, path, settings
        try:
            strategy = load_strategy(path, **strategy_options(path, panel, config))
        except ImportError as exc:
            problems.append(f"{path}: cannot read this strategy format: {exc}")
        except CytokitError as exc:
            problems.append(f"{path}: {exc}")
    if strategy is not None:
        where = path or strategy.source or "the strategy"
        settings = _canonical(settings, strategy, where, problems)
    return strategy, path, settings


def load_study(folder: str | Path, *, check_files: bool = True, strategy=None) -> Study:
    """Load and check a study folder.

    Parameters
    ----------
    folder : path
        The folder holding ``study.toml`` and ``manifest.csv``.
    check_files : bool
        Also read the strategy and check it has every gate path the settings
        name, and open every FCS file to check that every marker the study
        uses resolves to a channel and every channel a gate reads exists.
    strategy : GatingStrategy or path, optional
        Use this strategy instead of ``[gating] strategy`` (a path is relative
        to the study folder). Always checked.

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        Listing every problem found (missing files, unknown markers, bad days,
        malformed rows, bad settings, gate paths missing from the strategy),
        one per line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StudyError(
            f"{root}: not a folder; give the study folder holding study.toml and manifest.csv"
        )
    problems: list[str] = []
    config: dict[str, Any] = {}
    toml = root / "study.toml"
    toml_read = False  # when study.toml is unreadable, what depends on it is not checked
    why = refusal(toml, (root.resolve(),))  # it says where else the study may read
    if why:
        problems.append(f"{toml}: {why}")
    else:
        try:
            config = load_toml(toml)
            toml_read = True
        except StudyError as exc:
            problems.append(str(exc))
    panel = Panel({})
    table = config.get("panel")
    found_panel: list[str] = []
    if toml_read and not isinstance(table, dict):
        found_panel.append(f"{toml}: no [panel] table naming the channel of each marker")
    elif table:
        try:
            panel = Panel(table, source=str(toml))
        except CytokitError as exc:
            found_panel.append(str(exc))
    problems += found_panel
    settings, found = parse_settings(config, str(toml)) if config else (StudySettings(), [])
    problems += found
    roots, found = study_roots(root, settings.data_roots, f"{toml}: [study] data_roots")
    problems += found
    source = settings.compensation
    if source.lower() not in ("file", "none"):
        why = refusal(root / source, roots)
        if why:
            problems.append(f"{toml}: [compensation] source = {source!r} {why}")
        else:
            try:
                read_spillover_csv(root / source)
            except StudyError as exc:
                problems.append(str(exc))
    rows = _manifest(root / "manifest.csv", problems, roots)
    infusions = _infusions(root / "infusions.csv", problems, roots)
    patients = {r.patient for r in rows}
    for inf in infusions:
        if rows and inf.patient not in patients:
            problems.append(
                f"{root / 'infusions.csv'}: patient {inf.patient!r} (day {inf.day}) is not in "
                "manifest.csv"
            )
    gating, strategy_path = None, None
    why = refusal(root / settings.strategy, roots) if settings.strategy else None
    if why and strategy is None:  # a strategy given by the caller is the caller's choice
        problems.append(f"{toml}: [gating] strategy = {settings.strategy!r} {why}")
    elif check_files or strategy is not None:
        gating, strategy_path, settings = _load_strategy(
            root, settings, strategy, problems, panel, config
        )
    elif settings.strategy:
        strategy_path = root / settings.strategy
    markers = list(panel)
    # without study.toml (or its [panel]) the study's markers are unknown, not missing
    panel_ok = toml_read and isinstance(table, dict) and not found_panel
    if panel_ok:
        problems += marker_problems(
            toml, root / "manifest.csv", panel, settings, rows, strategy=gating
        )
        if rows and settings.populations and not any(r.donor_marker for r in rows):
            if not settings.donor_marker:
                problems.append(
                    f'{toml}: no donor marker: set [chimerism] marker (e.g. marker = "HLA-A2") '
                    "or the manifest's donor_marker column"
                )
    unreadable: dict[Path, str] = {}
    if check_files and toml_read:
        panel_used = panel if panel_ok else None
        problems += file_problems(rows, panel_used, markers, gating, unreadable)
    if problems:
        raise StudyError(
            f"{root}: {len(problems)} problem(s) in the study:\n  " + "\n  ".join(problems)
        )
    name = (
        str(config.get("study", {}).get("name", root.name))
        if isinstance(config.get("study"), dict)
        else root.name
    )
    return Study(
        root, name, config, panel, rows, infusions, strategy_path, settings, gating, unreadable
    )


def check_same_content(study: Study, hashes: dict[Path, str]) -> None:
    """Refuse manifest lines whose files hold the same bytes (a copy listed as another sample).

    Parameters
    ----------
    study : Study
    hashes : dict of Path to str
        Content hash of each row's file (``ManifestRow.file``); rows missing
        from it (files that cannot be read) are not compared.

    Raises
    ------
    StudyError
        Listing every repeated file with both manifest lines.
    """
    manifest = study.root / "manifest.csv"
    first: dict[str, ManifestRow] = {}
    problems = []
    for row in study.rows:
        digest = hashes.get(row.file)
        if digest is None:
            continue
        other = first.setdefault(digest, row)
        if other is not row:
            problems.append(
                f"{manifest}, line {row.line}: file {study.relative(row.file)!r} (patient "
                f"{row.patient}, day {row.day}) holds the same bytes as line {other.line}'s "
                f"{study.relative(other.file)!r} (patient {other.patient}, day {other.day}; "
                f"SHA-256 {digest[:16]}…); list each measurement once, with its own file"
            )
    if problems:
        raise StudyError(
            f"{study.root}: {len(problems)} problem(s) in the study:\n  " + "\n  ".join(problems)
        )
