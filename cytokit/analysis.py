"""`analyze`: the whole job on a study folder.

What runs today: the study is loaded and checked (every problem reported at
once), then every file is opened and summarised in ``samples.csv``; a file that
cannot be read is listed in ``failures.csv`` and the run goes on. Gating,
chimerism, persistence trends, clustering and the report build on this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cytokit._io import write_csv
from cytokit.errors import CytokitError
from cytokit.study import Study, load_study

__all__ = ["Results", "analyze"]

SAMPLE_COLUMNS = (
    "patient",
    "day",
    "file",
    "events",
    "channels",
    "fcs_version",
    "spillover",
    "cytometer",
)
FAILURE_COLUMNS = ("file", "patient", "day", "stage", "reason")


@dataclass
class Results:
    """What `analyze` produced; tables are lists of row dicts."""

    study: Study
    samples: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    out: Path | None = None


def analyze(
    study: str | Path | Study,
    out: str | Path | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> Results:
    """Run the study job; write tables into `out` when given.

    Parameters
    ----------
    study : path or Study
        The study folder (checked with `load_study`) or a loaded study.
    out : path, optional
        Output folder; created if needed. Tables are written atomically.
    progress : callable, optional
        Called as ``progress(done, total, file_name)`` after each file.
    """
    from cytokit.fcs import read_fcs

    if not isinstance(study, Study):
        study = load_study(study)
    results = Results(study=study)
    total = len(study.rows)
    for done, row in enumerate(study.rows, start=1):
        rel = row.file.relative_to(study.root) if row.file.is_relative_to(study.root) else row.file
        try:
            sample = read_fcs(row.file, mmap=True)
        except CytokitError as exc:
            results.failures.append(
                {
                    "file": str(rel),
                    "patient": row.patient,
                    "day": row.day,
                    "stage": "read",
                    "reason": str(exc),
                }
            )
        else:
            results.samples.append(
                {
                    "patient": row.patient,
                    "day": row.day,
                    "file": str(rel),
                    "events": sample.n_events,
                    "channels": sample.n_channels,
                    "fcs_version": sample.version,
                    "spillover": sample.spillover.source if sample.spillover is not None else "",
                    "cytometer": sample.keyword("$CYT", ""),
                }
            )
        if progress is not None:
            progress(done, total, row.file.name)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "samples.csv", results.samples, SAMPLE_COLUMNS)
        write_csv(out / "failures.csv", results.failures, FAILURE_COLUMNS)
        results.out = out
    return results
