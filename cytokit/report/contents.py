"""What the report shows, read from `Results`, and the figures rendered for it.

Shared by the plot jobs (`cytokit.report.figures`) and the page
(`cytokit.report.page`): the patients and populations in the study's order,
the minimum donor events, the clustering tables, the drug courses, and `ReportPlots`, the
rendered figures the page embeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover - the figures' workers need not import the results
    from cytokit.analysis.results import Results

__all__ = [
    "ReportPlots",
    "cluster_markers",
    "cohort_populations",
    "drug_courses_of",
    "min_events_of",
    "patients_of",
    "populations_of",
    "read_cluster_tables",
]


@dataclass
class ReportPlots:
    """The figures of a report as the paths of their PNG files, and the files written.

    Attributes
    ----------
    cohort : dict of str to Path
        Measure → PNG.
    persistence, chimerism : dict of str to Path
        Patient → PNG.
    qc : dict of str to Path
        QC sample id (qc.csv ``sample``) → PNG.
    qc_missing : dict of str to str
        Sample id → why its QC plot is missing.
    acquisition, acquisition_missing : dict of str to Path, dict of str to str
        File → its acquisition-QC plot (PNG), or why it is missing.
    files : list of Path
        Every figure file of the report (written now or kept from an earlier build).
    rendered, skipped : int
        Figures drawn by this build, and figures kept because nothing they show changed.
    """

    cohort: dict[str, Path] = field(default_factory=dict)
    persistence: dict[str, Path] = field(default_factory=dict)
    persistence_measure: dict[str, str] = field(default_factory=dict)
    chimerism: dict[str, Path] = field(default_factory=dict)
    qc: dict[str, Path] = field(default_factory=dict)
    qc_missing: dict[str, str] = field(default_factory=dict)
    acquisition: dict[str, Path] = field(default_factory=dict)
    acquisition_missing: dict[str, str] = field(default_factory=dict)
    clusters: list[tuple[Path, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    rendered: int = 0
    skipped: int = 0


def patients_of(results: Results) -> list[str]:
    """Patient ids in the study's order (study.json), then any others in the tables."""
    ids = [str(p.get("id")) for p in results.study.get("patients", []) if p.get("id") is not None]
    for frame in (results.samples, results.chimerism, results.failures):
        if frame is not None and "patient" in frame.columns:
            ids += [str(x) for x in frame["patient"].dropna()]
    return list(dict.fromkeys(ids))


def populations_of(results: Results) -> list[str]:
    names = [str(p) for p in results.study.get("populations", {})]
    if "population" in results.chimerism.columns:
        names += [str(p) for p in results.chimerism["population"].dropna()]
    return list(dict.fromkeys(names))


def cohort_populations(results: Results) -> dict[str, list[str]] | None:
    """Which populations the cohort summary shows per stratum: study.toml's ``[report]
    cohort_populations`` (stratum → populations; strata not named show all theirs), or
    None when the study does not say.

    Raises
    ------
    CytokitError
        The table is not stratum = [population, ...], or names a population the study
        does not have (the message names the key, the value and the populations there are).
    """
    from cytokit.errors import CytokitError
    from cytokit.study.settings import cohort_populations as check

    table = ((results.study.get("config") or {}).get("report") or {}).get("cohort_populations")
    where = "study.toml [report] cohort_populations"
    shown, problems = check(table, where, populations_of(results))
    if problems:  # `load_study` refuses these: a study analysed before it did
        raise CytokitError(f"{problems[0]} and run `cytokit analyze` again")
    return shown


def min_events_of(results: Results) -> int:
    qc = results.study.get("qc") or {}
    value = qc.get("min_events")
    if value is None:
        value = ((results.study.get("config") or {}).get("qc") or {}).get("min_events", 50)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 50


def cluster_markers(results: Results) -> list[str]:
    """The clustering markers: study.json ``clustering.markers`` (or ``markers.clustering``)."""
    info = results.study.get("clustering") or {}
    markers = info.get("markers") or (results.study.get("markers") or {}).get("clustering") or []
    return [str(m) for m in markers]


def read_cluster_tables(results: Results) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """clusters.csv, cluster_summary.csv and cluster_matching.csv (empty when missing)."""

    def get(name: str) -> pd.DataFrame:
        frame = getattr(results, name, None)
        return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()

    return get("clusters"), get("cluster_summary"), get("cluster_matching")


def drug_courses_of(results: Results) -> pd.DataFrame | None:
    """The drug courses of the results' schedule (``treatments.csv``), or None without one.

    Courses as `cytokit.clinical.drug_courses` joins them (IL-2 every other day
    is one course), shaded on each patient's persistence and chimerism plots.
    """
    global _LAST_COURSES
    frame = results.clinical.get("treatments")
    if frame is None or frame.empty:
        return None
    last = _LAST_COURSES  # one read: a pair another thread replaces whole, never half
    if last is not None and last[0] is frame:  # each patient's page asks: joined once
        return last[1]
    from cytokit.clinical.treatments import drug_courses, treatments_from_frame

    courses = drug_courses(treatments_from_frame(frame))
    courses = courses if len(courses) else None
    _LAST_COURSES = (frame, courses)
    return courses


#: The last treatments table `drug_courses_of` joined, and its courses (the table is
#: kept, so that its identity stands for its contents while it lives).
_LAST_COURSES: tuple | None = None
