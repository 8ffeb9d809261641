"""`analyze`: the whole job on a study folder, and the results contract.

``cytokit.analyze(study, out)`` checks the study (`cytokit.study.load_study`,
every problem in one `StudyError`), gates every file once with the batch
engine (pass 1: counts, donor-marker histograms, phenotype values, QC data per
file, stored in ``OUT/results.sqlite`` so a rerun resumes), then computes the
study-level tables from those payloads (pass 2: donor-marker thresholds
calibrated per patient, chimerism, absolute counts, phenotype, trends,
clustering), checks the tables' invariants (`cytokit.invariants`: a violation
is a bug and raises instead of writing a wrong table) and writes them into
``OUT``.

Results contract (what ``cytokit report OUT`` and notebooks read)
------------------------------------------------------------------
Everything below is written atomically into ``OUT``; `load_results(OUT)`
rebuilds a `Results` from it without the FCS files. Tables are tidy CSV (one
row per item; empty cell = not available); `Results` holds each as a pandas
DataFrame attribute of the same name.

``samples.csv``
    One row per file analysed: patient, day, file (relative to the study
    folder), stratum, sample_type, events, channels, fcs_version, cytometer,
    spillover, count_method (``beads``, ``lymphocytes``, ``wbc`` or empty),
    reference (its gate path), reference_events, reference_per_ul, sha256 (of
    the file), warnings (raised while gating, e.g. an adaptive gate that fell
    back to its fixed position, or a stored result of the file that failed
    its checksum and was computed again; "; "-joined), nonfinite_events (events dropped
    for a NaN or infinite value in a channel the analysis reads; counts and
    percentages are of the other events, `cytokit.finite`), nonfinite_values
    (every channel holding such values: counts of NaN, +inf, -inf, "(not
    read)" when nothing reads it), donor_marker_check (``usable``,
    ``failed``; empty without a donor marker) and donor_marker_note (why it
    failed; `cytokit.markercheck`).
``counts.csv``
    One row per file and gate: patient, day, file, population (the study's
    name for the gate, else empty), gate_path, gate_id, parent_path, depth,
    count, parent_count, pct_parent, pct_total, per_ul (cells/µL; empty
    without absolute counting).
``chimerism.csv``
    One row per file and study population: patient, day, file, stratum,
    sample_type, population, gate_path, events, donor_events,
    recipient_events, donor_pct, ci_low, ci_high (95 % binomial interval,
    percent), per_ul, donor_per_ul, recipient_per_ul, status (``quantified``,
    ``not_quantifiable``, ``not_detected``; `cytokit.chimerism`; or
    ``marker_failed``: the sample's donor marker is unusable,
    `cytokit.markercheck`, and every donor value is empty), note (why, for
    ``marker_failed``).
``thresholds.csv``
    One row per file and marker threshold: patient, day, file, marker, purpose
    (``donor`` or ``phenotype``), parent (gate path the threshold was placed
    on: the threshold parent, or a study population that got its own donor
    cut, method ``population_valley``, `cytokit.chimerism.population_threshold`;
    every other population uses the parent's), threshold (transformed units,
    as gates see them), threshold_scale
    (compensated scale value), method, donor_side, recipient_mode,
    donor_mode, recipient_width, k, calibration_day, note.
``phenotype.csv``
    One row per file, population, origin (``all``, ``donor``, ``recipient``)
    and marker: patient, day, file, population, origin, marker, events,
    median (compensated scale value), pct_positive, threshold_scale
    (`cytokit.phenotype`).
``trends.csv``
    One row per patient, sample type, population and measure
    (``donor_per_ul``, ``donor_pct``): `cytokit.trends.TREND_COLUMNS` (peak,
    last detectable and quantified day, AUC, half-life with its 95 % CI, n,
    R², first day of the fit and a note, infusions and total dose).
``cohort.csv``
    One row per stratum, population and measure: `cytokit.trends.COHORT_COLUMNS`
    (patients, medians and ranges of peak, AUC and half-life, dose, and
    Spearman correlations of dose with AUC and peak).
``infusions.csv``
    patient, day, product, dose_per_kg, stratum (the study's infusions.csv).
``clusters.csv``, ``cluster_summary.csv``, ``cluster_matching.csv``
    With ``[clustering]``: per file, metacluster and origin: count, total,
    fraction and median_<marker>; per metacluster: events, fraction, donor
    share, nodes, best-matching population and F1, and its median marker
    values; per population: the metaclusters matching it and precision,
    recall, F1 (`cytokit.cluster.cluster_study`).
``failures.csv``
    file, patient, day, stage (``read``, ``panel``, ``values``, ``gate``,
    ``measure``...), kind, error, reason: every file that could not be
    processed. Stage ``values``: more than ``[qc] max_nonfinite`` (1 %) of its
    events hold a NaN or an infinity in a channel the analysis reads.
``qc.csv`` and ``qc/<sample>.npz``
    One row per file and gate: patient, day, file, sample (the npz stem,
    `cytokit.results.sample_id`), gate_path, gate_id, parent_path, kind, dims
    (JSON list of dimension labels), geometry (JSON of the concrete, fitted
    gate; `cytokit.qcdata`), count, parent_count, n_points. The npz holds,
    per gate id, ``gate:<id>``: a random subsample (≤ 2,000) of the gate's
    parent events in the gate's dimensions (float32, transformed as the gate
    sees them), and, for the threshold parent (``hist:__parent__``) and each
    study population (``hist:<name>``), the donor-marker histogram (float64,
    shape (2, n + 1): row 0 the bin edges, row 1 the counts and a trailing
    0). `Results.qc_points` and `Results.donor_histogram` read them.
``study.json``
    name, created, cytokit_version, root, populations (name → gate path),
    threshold_parent, patients (id, stratum, donor_marker, donor_is, days),
    markers (donor, phenotype, clustering), counting (gate paths), qc
    (min_events, ci), strategy (source, digest), task (the store key),
    clustering (what was done, or an error), config (study.toml as read).
``results.sqlite``
    The batch store: per-file payloads keyed by file content hash and task
    key, each row with a checksum verified on read (`cytokit.engine.store`).
``tables.json``
    Written last: name, rows, bytes and SHA-256 of every table above and
    ``study.json`` (`cytokit.tablesjson`); `load_results` refuses a folder
    whose files differ from it or that has none.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import cytokit
from cytokit._outdir import output_folder
from cytokit.errors import StudyError
from cytokit.invariants import check_results
from cytokit.measure import MeasureTask
from cytokit.passtwo import PatientTables, cluster_tables, patient_tables, trend_tables
from cytokit.results import TABLES, Results, conform, load_results, write_results
from cytokit.study.folder import Study, check_same_content, load_study
from cytokit.tablesjson import invalidate_index

__all__ = ["Results", "analyze", "load_results", "threshold_parent"]


def threshold_parent(strategy, paths) -> str:
    """The deepest gate that is an ancestor of every population in `paths`, as a path.

    Raises
    ------
    StudyError
        When the populations share no ancestor gate (give ``[chimerism] parent``).
    """

    def chain(key: str) -> list[str]:
        out, pop = [], strategy.population(key)
        while pop.parent is not None:
            pop = strategy.by_id(pop.parent)
            out.append(pop.id)
        return out[::-1]  # root first

    chains = [chain(p) for p in paths]
    common: list[str] = []
    for level in zip(*chains, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    if not chains or not common:
        raise StudyError(
            "the study populations share no parent gate to place the donor-marker threshold "
            'on; set [chimerism] parent = "<gate path>" in study.toml (e.g. live lymphocytes)'
        )
    return strategy.by_id(common[-1]).path


def _gate_markers(study: Study, sample) -> set[str]:
    """Panel markers whose channel some gate reads."""
    channels = {c.name: c for c in sample.channels}
    read: set[str] = set()
    for g in study.gating.gates:
        for d in g.dimensions:
            read.add(d.channel)
            if d.ratio is not None:
                read.update((d.ratio.numerator, d.ratio.denominator))
    out = set()
    for marker, name in study.panel.channel_names(sample).items():
        ch = channels[name]
        if name in read or (ch.marker and ch.marker in read) or marker in read:
            out.add(marker)
    return out


def _phenotype_markers(study: Study) -> tuple[str, ...]:
    s = study.settings
    if s.phenotype_markers is not None:
        return tuple(s.phenotype_markers)
    from cytokit.fcs import read_fcs

    donors = set(study.donor_markers())
    for row in study.rows:
        if row.file in study.unreadable:
            continue
        try:
            sample = read_fcs(row.file, mmap=True, scale=False)
        except cytokit.CytokitError:
            continue
        gated = _gate_markers(study, sample)
        return tuple(m for m in study.panel if m not in gated and m not in donors)
    return ()


def make_task(study: Study) -> MeasureTask:
    """The pass-1 batch task of `study` (see `cytokit.measure`)."""
    s = study.settings
    parent = s.chimerism_parent or threshold_parent(study.gating, s.populations.values())
    donors = tuple(study.donor_markers())
    pheno = _phenotype_markers(study)
    clustering = tuple(s.clustering.markers) if s.clustering else ()
    markers = list(dict.fromkeys((*donors, *pheno, *clustering)))
    return MeasureTask(
        strategy=study.gating,
        panel=study.panel,
        populations=tuple(s.populations.items()),
        parent=parent,
        donor_markers=donors,
        phenotype_markers=pheno,
        transforms=tuple((m, s.transform_of(m)) for m in markers),
        fixed_thresholds=tuple(sorted(s.phenotype_thresholds.items())),
        compensation=study.compensation(),
        beads=s.beads,
        max_events=s.phenotype_max_events,
        cluster_markers=tuple(s.clustering.markers) if s.clustering else (),
        cluster_events=s.clustering.events if s.clustering else 0,
        seed=s.gating_seed,
        max_nonfinite=s.max_nonfinite,
    )


def analyze(
    study: str | Path | Study,
    out: str | Path | None = None,
    *,
    strategy=None,
    workers: int | None = None,
    scheduler=None,
    progress: Callable[[int, int, str, str], None] | None = None,
) -> Results:
    """Run the whole analysis of a study folder.

    Parameters
    ----------
    study : path or Study
        The study folder (checked with `load_study` first: every problem is
        reported at once, before any gating) or a loaded study.
    out : path, optional
        Output folder (created); tables, QC data, ``study.json`` and the
        results store ``results.sqlite`` go there, and a rerun resumes from
        the store. Without it the store lives in a temporary folder and only
        the returned `Results` remain.
    strategy : GatingStrategy or path, optional
        Instead of ``[gating] strategy``.
    workers : int, optional
        Parallel workers for pass 1 (default: the cores available).
    scheduler : str or distributed.Client, optional
        See `cytokit.engine.runner.run_batch`.
    progress : callable, optional
        ``progress(done, total, file_name, status)`` after each file.

    Returns
    -------
    Results
        The tables as DataFrames (see the module docstring).

    Raises
    ------
    StudyError
        The study has problems (all listed), or two manifest lines name files
        with the same content (checked before any gating).
    CytokitError
        `out` is a file, or a name the results take in it is (before any gating).
    """
    from cytokit.engine.runner import hash_files, run_batch
    from cytokit.engine.store import RunStore

    if not isinstance(study, Study):
        study = load_study(study, strategy=strategy)
    elif study.gating is None or strategy is not None:
        study = load_study(study.root, strategy=strategy)
    task = make_task(study)
    with tempfile.TemporaryDirectory(prefix="cytokit-") as tmp:
        if out is None:
            folder = Path(tmp)
        else:  # checked before gating: a bad --out must not cost the whole batch
            names = (*(f"{name}.csv" for name in TABLES), "study.json", "results.sqlite")
            folder = output_folder(out, files=names, folders=("qc",))
        with RunStore(folder / "results.sqlite") as store:
            files = [str(r.file) for r in study.rows]
            # a copy of a file listed as another sample would count one measurement twice;
            # the hashes go into the store's cache, so the batch (and a rerun) reads no file
            # again to hash it
            infos = hash_files(files, store, workers=workers)
            check_same_content(study, _hashes(study, {p: i.hash for p, i in infos.items()}))

            def tick(done: int, total: int, path: str, status: str) -> None:
                if progress is not None:
                    progress(done, total, Path(path).name, status)

            many = workers is None or workers > 1
            if len(files) > 1 and many and scheduler in (None, "processes", "local"):
                # the first file in this process compiles the kernels once (or loads them from
                # Numba's on-disk cache); worker processes then load them instead of each
                # compiling the same kernels at the same time (minutes on a cold cache)
                run_batch(files[:1], task, store, workers=1)
            report = run_batch(
                files, task, store, workers=workers, scheduler=scheduler, progress=tick
            )
            results = _pass_two(study, task, store, report, folder if out is not None else None)
        if out is not None:
            write_results(results, folder)
    return results


def _hashes(study: Study, by_path: dict[str, str]) -> dict[Path, str]:
    """Content hash of each manifest row's file from hashes by absolute path."""
    found = ((r.file, by_path.get(os.path.abspath(r.file))) for r in study.rows)
    return {file: h for file, h in found if h is not None}


def _pass_two(study: Study, task: MeasureTask, store, report, out: Path | None) -> Results:
    # the files as gated, should one have been replaced by a copy of another since hashing
    gated = {os.path.abspath(f.path): f.hash for f in report.done}
    check_same_content(study, _hashes(study, gated))
    if out is not None:
        invalidate_index(out)  # QC data is rewritten from here on
    outcome = {Path(f.path).resolve(): f for f in report.files}
    failures = []
    by_patient: dict[str, list] = {}
    for row in study.rows:
        f = outcome.get(row.file.resolve())
        if f is None or f.status != "done":
            failures.append(
                {
                    "file": study.relative(row.file),
                    "patient": row.patient,
                    "day": row.day,
                    "stage": f.stage if f else "open",
                    "kind": f.kind if f else "",
                    "error": f.error if f else "",
                    "reason": f.reason if f else "not processed",
                }
            )
            continue
        by_patient.setdefault(row.patient, []).append((row, f.hash))
    tables = PatientTables()
    qc_dir = None if out is None else out / "qc"
    for patient in sorted(by_patient):
        items = [(row, h, store.payload(h, task.key)) for row, h in by_patient[patient]]
        tables.extend(patient_tables(study, task, items, qc_dir))
    frames = {name: pd.DataFrame(rows) for name, rows in tables.rows.items()}
    if report.recomputed and "samples" in frames:
        notes = {study.relative(Path(f.path)): f.note for f in report.recomputed}
        samples = frames["samples"]
        samples["warnings"] = [
            "; ".join(w for w in (warn, notes.get(file, "")) if w)
            for file, warn in zip(samples["file"], samples["warnings"], strict=True)
        ]
    infusions = pd.DataFrame(
        [
            {
                "patient": i.patient,
                "day": i.day,
                "product": i.product,
                "dose_per_kg": i.dose_per_kg,
                "stratum": _stratum(study, i.patient),
            }
            for i in study.infusions
        ],
        columns=list(TABLES["infusions"]),
    )
    trends, cohort = trend_tables(frames.get("chimerism", pd.DataFrame()), study)
    done = [item for patient in sorted(by_patient) for item in by_patient[patient]]
    clusters, cluster_info = cluster_tables(
        study, task, store, done, frames.get("thresholds", pd.DataFrame())
    )
    meta = _study_meta(study, task)
    meta["clustering"] = cluster_info
    results = Results(
        study=meta,
        samples=frames.get("samples", pd.DataFrame()),
        counts=frames.get("counts", pd.DataFrame()),
        chimerism=frames.get("chimerism", pd.DataFrame()),
        thresholds=frames.get("thresholds", pd.DataFrame()),
        phenotype=frames.get("phenotype", pd.DataFrame()),
        trends=trends,
        cohort=cohort,
        infusions=infusions,
        clusters=clusters.get("clusters", pd.DataFrame()),
        cluster_summary=clusters.get("cluster_summary", pd.DataFrame()),
        cluster_matching=clusters.get("cluster_matching", pd.DataFrame()),
        failures=pd.DataFrame(failures, columns=list(TABLES["failures"])),
        qc=frames.get("qc", pd.DataFrame()),
        out=out,
    )
    for name, columns in TABLES.items():
        setattr(results, name, conform(getattr(results, name), columns))
    check_results(results)  # a broken invariant is a bug: no table is written
    return results


def _stratum(study: Study, patient: str) -> str:
    for r in study.rows:
        if r.patient == patient:
            return r.stratum
    return ""


def _study_meta(study: Study, task: MeasureTask) -> dict:
    patients = []
    for p in study.patients:
        rows = [r for r in study.rows if r.patient == p]
        patients.append(
            {
                "id": p,
                "stratum": rows[0].stratum,
                "donor_marker": study.donor_marker(rows[0]),
                "donor_is": "positive" if study.donor_side(rows[0]) > 0 else "negative",
                "days": sorted({r.day for r in rows}),
            }
        )
    return {
        "name": study.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cytokit_version": cytokit.__version__,
        "root": str(study.root),
        "populations": dict(study.settings.populations),
        "threshold_parent": task.parent,
        "patients": patients,
        "markers": {
            "donor": list(task.donor_markers),
            "phenotype": list(task.phenotype_markers),
            "clustering": list(study.settings.clustering.markers)
            if study.settings.clustering
            else [],
        },
        "counting": {
            "beads": study.settings.beads,
            "lymphocytes": study.settings.lymphocytes or task.parent,
            "leukocytes": study.settings.leukocytes,
        },
        "qc": {"min_events": study.settings.min_events, "ci": study.settings.ci},
        "strategy": {
            "source": str(study.strategy or study.gating.source or ""),
            "digest": study.gating.digest(),
        },
        "task": task.key,
        "config": study.config,
    }
