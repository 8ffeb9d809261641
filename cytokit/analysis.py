"""`analyze`: the whole job on a study folder, and the results contract.

``cytokit.analyze(study, out)`` checks the study (`cytokit.study.load_study`,
every problem in one `StudyError`), gates every file once with the batch
engine (pass 1: counts, donor-marker histograms, phenotype values, QC data per
file, stored in ``OUT/results.sqlite`` so a rerun resumes), then computes the
study-level tables from those payloads (pass 2: donor-marker thresholds
calibrated per patient, chimerism, absolute counts, phenotype, trends,
clustering) and writes them into ``OUT``.

Results contract (what ``cytokit report OUT`` and notebooks read)
------------------------------------------------------------------
Everything below is written atomically into ``OUT``; `load_results(OUT)`
rebuilds a `Results` from it without the FCS files. Tables are tidy CSV (one
row per item; empty cell = not available); `Results` holds each as a pandas
DataFrame attribute of the same name.

``samples.csv``
    One row per file gated: patient, day, file (relative to the study folder),
    stratum, sample_type, events, channels, fcs_version, cytometer, spillover,
    count_method (``beads``, ``lymphocytes``, ``wbc`` or empty), reference_events,
    reference_per_ul, sha256.
``counts.csv``
    One row per file and gate: patient, day, file, population (the study's
    name for the gate, else empty), gate_path, gate_id, parent_path, depth,
    count, parent_count, pct_parent, pct_total, per_ul (cells/µL when absolute
    counting is configured).
``chimerism.csv``
    One row per file and study population: patient, day, file, stratum,
    population, gate_path, events, donor_events, recipient_events, donor_pct,
    ci_low, ci_high (95 % binomial interval, percent), per_ul, donor_per_ul,
    recipient_per_ul, status (``quantified``, ``not_quantifiable``,
    ``not_detected``).
``thresholds.csv``
    One row per file and marker threshold: patient, day, file, marker, purpose
    (``donor`` or ``phenotype``), parent (gate path the threshold was placed
    on), threshold (transformed units, as gates see them), threshold_scale
    (compensated scale value), method, donor_side, recipient_mode,
    donor_mode, recipient_width, k, calibration_day, note.
``phenotype.csv``
    One row per file, population, origin (``all``, ``donor``, ``recipient``)
    and marker: patient, day, file, population, origin, marker, events,
    median (compensated scale value), pct_positive, threshold_scale.
``trends.csv``
    One row per patient, population and measure (``donor_per_ul``,
    ``donor_pct``): patient, stratum, population, measure, n_days, first_day,
    last_day, peak_day, peak_value, last_detectable_day, auc, auc_days,
    half_life_days, half_life_ci_low, half_life_ci_high, half_life_n,
    half_life_r2, half_life_from_day, half_life_note, n_infusions,
    total_dose_per_kg, last_infusion_day.
``cohort.csv``
    One row per stratum, population and measure: summaries of trends.csv
    (patients, medians and ranges of peak, AUC and half-life, total dose).
``infusions.csv``
    patient, day, product, dose_per_kg, stratum (the study's infusions.csv).
``clusters.csv``
    Per patient, day and metacluster: count, fraction, plus median marker
    values per metacluster (when ``[clustering]`` is configured).
``failures.csv``
    file, patient, day, stage, reason: every file that could not be processed.
``qc.csv`` and ``qc/<sample>.npz``
    One row per file and gate: patient, day, file, sample (the npz stem),
    gate_path, gate_id, parent_path, kind, dims (JSON list of dimension
    labels), geometry (JSON of the concrete, fitted gate), count,
    parent_count, n_points. The npz holds, per gate id, ``gate:<id>``: a
    random subsample (≤ 2,000) of the parent's events in the gate's
    dimensions (float32, transformed as the gate sees them), and per study
    population plus the threshold parent ``hist:<name>``: the donor-marker
    histogram (float64, shape (2, n+1): row 0 the bin edges, row 1 the counts
    with a trailing 0).
``study.json``
    name, created, cytokit version, populations (name → gate path), patients
    (id, stratum, donor_marker, donor_is, days), markers (donor, phenotype,
    clustering), strategy (source, digest), config (study.toml as read).
``results.sqlite``
    The batch store: per-file payloads keyed by file content hash and task key.
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
