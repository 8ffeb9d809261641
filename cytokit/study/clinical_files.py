"""The study's clinical files: ``treatments.csv`` (or ``infusions.csv``), ``outcomes.csv``, ``[outcomes]``.

Both files are optional. ``treatments.csv`` wins when both it and the older
``infusions.csv`` exist (the older file is then a problem: two schedules
cannot both be right). ``infusions.csv`` keeps being read as it always was
(``patient, day, product, dose_per_kg``: every row a given cell infusion in
cells/kg) and may carry the ``treatments.csv`` columns (``kind``, ``dose``,
``unit``, ``dose_level``, ``given``). Like every study path, each file must be
inside the study folder or a ``data_roots`` folder; every problem joins the
study's one error.

The rows are parsed by `cytokit.clinical.treatments` and
`cytokit.clinical.outcomes` (which need only the study's table reader); the
survival statistics, which need lifelines, run later and only when outcomes
exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cytokit._paths import refusal
from cytokit.clinical.outcomes import Outcome, parse_outcomes
from cytokit.clinical.settings import OutcomesSettings
from cytokit.clinical.treatments import Treatment, parse_treatments
from cytokit.study.manifest import Infusion

__all__ = ["ClinicalFiles", "read_clinical_files"]


@dataclass
class ClinicalFiles:
    """What a study folder says about treatments and outcomes.

    Attributes
    ----------
    treatments : list of Treatment
        Every row of ``treatments.csv`` (or ``infusions.csv``); empty without one.
    outcomes : list of Outcome or None
        The rows of ``outcomes.csv``; None when the study has no such file.
    settings : OutcomesSettings
        ``[outcomes]`` of ``study.toml`` (the defaults when absent).
    source : Path or None
        The schedule file read.
    """

    treatments: list[Treatment] = field(default_factory=list)
    outcomes: list[Outcome] | None = None
    settings: OutcomesSettings = field(default_factory=OutcomesSettings)
    source: Path | None = None

    def infusions(self) -> list[Infusion]:
        """The given cell infusions, as the older ``infusions.csv`` rows.

        ``dose_per_kg`` is the dose when its unit is per kg (``cells/kg``,
        ``CD3+ cells/kg``...), else empty (a dose in another unit is no dose per kg).
        """
        return [
            Infusion(
                t.patient,
                t.day,
                t.product,
                t.dose if t.unit.strip().lower().endswith("/kg") else None,
            )
            for t in self.treatments
            if t.is_cells and t.given
        ]


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def read_clinical_files(
    root: Path,
    config: dict[str, Any],
    toml: Path,
    patients: set[str] | None,
    roots: tuple[Path, ...],
    problems: list[str],
) -> ClinicalFiles:
    """Read the clinical files of a study folder, appending every problem to `problems`.

    Parameters
    ----------
    root : Path
        The study folder.
    config : dict
        ``study.toml`` as parsed (its ``[outcomes]`` table is read).
    toml : Path
        ``study.toml`` (names the source of a settings problem).
    patients : set of str or None
        The manifest's patients (None: not checked, e.g. an unreadable manifest).
    roots : tuple of Path
        Where the study may read (`cytokit._paths.study_roots`).
    problems : list of str
        Appended to, one sentence per problem.

    Returns
    -------
    ClinicalFiles
    """
    found = ClinicalFiles()
    settings, bad = OutcomesSettings.parse(config.get("outcomes"), str(toml))
    problems += bad
    found.settings = settings
    new, old = root / "treatments.csv", root / "infusions.csv"
    if _exists(new) and _exists(old):
        problems.append(
            f"{old}: the study also has treatments.csv, which replaces it; merge its rows "
            "into treatments.csv and remove infusions.csv"
        )
    source = new if _exists(new) else old if _exists(old) else None
    if source is not None:
        why = refusal(source, roots)
        if why:
            problems.append(f"{source}: {why}")
        else:
            found.source = source
            found.treatments = parse_treatments(source, problems, patients=patients)
    path = root / "outcomes.csv"
    if _exists(path):
        why = refusal(path, roots)
        if why:
            problems.append(f"{path}: {why}")
        else:
            # the trial's patients (those treated, where a schedule says so; a healthy
            # control or reference sample of the manifest is none) each need a row
            treated = {t.patient for t in found.treatments}
            found.outcomes = parse_outcomes(
                path,
                problems,
                categories=settings.response_categories,
                patients=patients,
                required=treated or patients,
            )
    return found
