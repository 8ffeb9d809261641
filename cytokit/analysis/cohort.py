"""The study's tables: every patient's, then the cohort's trends and clusters, as `Results`.

`study_tables` is the second half of `cytokit.analyze`: from the per-sample
payloads the batch stored, patient by patient (`cytokit.analysis.per_patient`),
then across patients:

* `trend_tables` builds trends.csv and cohort.csv from the chimerism table
  (`cytokit.analysis.trends`);
* `cluster_stored_events` clusters the stored threshold-parent events of every file
  (`cytokit.cluster.cluster_study`: a SOM trained on a balanced pool, every
  stored event mapped, donor flags from each sample's threshold, the study
  populations as the gates clusters are matched to).

The tables are conformed to the results contract (`cytokit.analysis.results`)
and their invariants checked before they are returned.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._version import __version__
from cytokit.analysis.chimerism import MARKER_FAILED
from cytokit.analysis.invariants import check_results
from cytokit.analysis.miflowcyt import miflowcyt_table
from cytokit.analysis.normalised import normalised_rows, reference_patient
from cytokit.analysis.outcomes import (
    clinical_inputs,
    outcome_tables,
    product_tables,
    schedule_tables,
    without_products,
)
from cytokit.analysis.per_patient import (
    PatientTables,
    acquisition_arrays,
    function_rows,
    patient_tables,
    write_qc_file,
)
from cytokit.analysis.per_sample import MeasureTask
from cytokit.analysis.results import SUMMARY_NUMBERS, TABLES, Results, as_read, conform, sample_id
from cytokit.analysis.sample_result import SampleResult
from cytokit.analysis.tablesjson import invalidate_index
from cytokit.analysis.trends import TREND_COLUMNS, cohort_summary, judged_values, trend_row
from cytokit.errors import CytokitError, not_found
from cytokit.study.folder import Study
from cytokit.study.tubes import DEFAULT_TUBE

__all__ = ["cluster_model", "cluster_stored_events", "study_tables", "trend_tables"]

MEASURES = ("donor_per_ul", "donor_pct")


def study_tables(
    study: Study, tasks: dict[str, MeasureTask] | MeasureTask, store, report, out: Path | None
) -> Results:
    """Every table of the study from the per-sample payloads a batch stored.

    Each tube's files are tabled with its own task, patient by patient; chimerism
    (and trends, clustering) come from the chimerism tube (``[chimerism] tube``)
    only, phenotype from every tube, and every per-file row says its tube.

    Parameters
    ----------
    study : Study
    tasks : dict of str to MeasureTask, or MeasureTask
        The per-sample task the batch ran for each tube (their keys find the
        payloads); one task: the default tube's.
    store : RunStore
    report : BatchReport
        What became of each file (failed files become failures.csv rows).
    out : Path, optional
        The results folder: QC data (``qc/<sample>.npz``) is written there.

    Returns
    -------
    Results
        Every table conformed to its columns and checked
        (`cytokit.analysis.invariants`).
    """
    if isinstance(tasks, MeasureTask):
        tasks = {DEFAULT_TUBE: tasks}
    chimerism_tube = study.chimerism_tube if study.chimerism_tube in tasks else next(iter(tasks))
    task = tasks[chimerism_tube]
    if out is not None:
        invalidate_index(out)  # QC data is rewritten from here on
    outcome = {Path(f.path).resolve(): f for f in report.files}
    failures = []
    by_patient: dict[str, list] = {}
    written: set[str] = set()  # the qc/<sample>.npz files of this run
    for row in study.rows:
        f = outcome.get(row.file.resolve())
        if f is None or f.status != "done":
            failures.append(
                {
                    "file": study.relative(row.file),
                    "patient": row.patient,
                    "day": row.day,
                    "tube": study.tube_of(row),
                    "stage": f.stage if f else "open",
                    "kind": f.kind if f else "",
                    "error": f.error if f else "",
                    "reason": _reason(study, row, f),
                }
            )
            if f is not None and f.stage == "acquisition_qc" and f.hash and out is not None:
                if _failed_qc_data(store, tasks.get(study.tube_of(row)), f.hash, row, study, out):
                    written.add(sample_id(study.relative(row.file)))
            continue
        by_patient.setdefault(row.patient, []).append((row, f.hash))
    tables = PatientTables()
    qc_dir = None if out is None else out / "qc"
    if qc_dir is not None:
        # every file analysed writes its qc/<sample>.npz below; one an earlier run left
        # (a file now failing, or gone from the manifest) would show its old data
        written |= {
            sample_id(study.relative(row.file)) for rows in by_patient.values() for row, _ in rows
        }
        _drop_stale_qc_files(qc_dir, written)
    paired = any(t.pairs_with for t in study.tubes.values())
    reference = reference_patient(study)
    references: dict[tuple, tuple] = {}  # (tube, day) -> (file, SampleCells)
    for patient in sorted(by_patient):
        cells = {}
        for tube, tube_task in tasks.items():
            items = [
                (row, h, _stored(store, tube_task, row, h, study))
                for row, h in by_patient[patient]
                if study.tube_of(row) == tube
            ]
            if not items:
                continue
            done = patient_tables(
                study, tube_task, items, qc_dir, tube=tube, chimerism=tube == chimerism_tube
            )
            if paired:
                for row, key, c in done.cells:
                    cells[(tube, row.day, row.sample_type)] = (row, key, c)
            if patient == reference:
                for row, key, c in done.cells:
                    references[(tube, row.day)] = (key["file"], c)
            tables.extend(done)
        if cells:
            tables.rows["function"].extend(function_rows(study, cells))
    tables.rows["phenotype_normalised"] = normalised_rows(tables.rows["phenotype"], references)
    del references
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
    trends, cohort = trend_tables(
        frames.get("chimerism", pd.DataFrame()), study, failed_days(study, failures)
    )
    done = [
        item
        for patient in sorted(by_patient)
        for item in by_patient[patient]
        if study.tube_of(item[0]) == chimerism_tube
    ]
    clusters, cluster_info = cluster_stored_events(
        study, task, store, done, frames.get("thresholds", pd.DataFrame())
    )
    meta = _study_meta(study, task)
    tube_rows = tube_table(study, tasks, chimerism_tube)
    if len(tasks) > 1 or chimerism_tube != DEFAULT_TUBE:  # a one-tube study.json as before
        meta["tubes"] = {r["tube"]: {k: v for k, v in r.items() if k != "tube"} for r in tube_rows}
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
        acquisition_qc=frames.get("acquisition_qc", pd.DataFrame()),
        miflowcyt=miflowcyt_table(study, qc_checks=_qc_checks(frames.get("samples"))),
        tubes=pd.DataFrame(tube_rows),
        repertoire=frames.get("repertoire", pd.DataFrame()),
        function=frames.get("function", pd.DataFrame()),
        phenotype_normalised=frames.get("phenotype_normalised", pd.DataFrame()),
        out=out,
    )
    for name, columns in TABLES.items():
        setattr(results, name, as_read(name, conform(getattr(results, name), columns)))
    results.clinical = {
        **schedule_tables(study, results.trends),
        **outcome_tables(study, results.chimerism, results.failures),
        **product_tables(study, results.counts),
    }
    check_results(results)  # a broken invariant is a bug: no table is written
    return results


def tube_table(study: Study, tasks: dict[str, MeasureTask], chimerism_tube: str) -> list[dict]:
    """tubes.csv: per tube the manifest lists files of, what was measured in it and
    whether its cells have origin (donor or recipient)."""
    rows = []
    for tube, task in tasks.items():
        files = sum(study.tube_of(r) == tube for r in study.rows)
        origin = bool(task.donor_markers)
        if origin:
            note = "donor and recipient told apart by " + ", ".join(task.donor_markers)
        else:
            note = (
                f"no donor marker ({study.settings.donor_marker or 'none in the study'}) in "
                "its panel: phenotype of all cells, without origin"
            )
        rows.append(
            {
                "tube": tube,
                "files": int(files),
                "origin": origin,
                "donor_markers": "; ".join(task.donor_markers),
                "chimerism": tube == chimerism_tube,
                "populations": "; ".join(n for n, _ in task.populations),
                "phenotype_markers": "; ".join(task.phenotype_markers),
                "strategy": study.tube(tube).strategy,
                "task": task.key,
                "note": note,
            }
        )
    return rows


def _stored(store, task, row, h: str, study) -> SampleResult:
    """The file's stored per-sample result, decoded (a payload of another layout is refused)."""
    items = store.payload(h, task.key)
    where = f"{store.path}: {study.relative(row.file)}"
    if items is None:
        raise CytokitError(f"{where}: no stored result; run the analysis again")
    return SampleResult.decode(items, where=where)


def _stratum(study: Study, patient: str) -> str:
    for r in study.rows:
        if r.patient == patient:
            return r.stratum
    return ""


def _qc_checks(samples: pd.DataFrame | None) -> dict[str, str] | None:
    """Per file of `samples` the acquisition QC checks that ran on it, ``+``-joined (a
    check that did not run leaves its ``qc_removed_*`` empty), or None without QC."""
    from cytokit.qc.result import CHECK_OF

    cols = {CHECK_OF[reason]: f"qc_removed_{reason}" for reason in CHECK_OF}
    if samples is None or not set(cols.values()) <= set(samples.columns):
        return None
    ran = {check: samples[col].notna().to_numpy() for check, col in cols.items()}
    return {
        str(f): "+".join(check for check in cols if ran[check][i])
        for i, f in enumerate(samples["file"])
    }


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
        "cytokit_version": __version__,
        # absolute: the results are read (report, export-wsp) from any folder
        "root": os.path.abspath(study.root),
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
        # the other files gating reads: the exports refuse them changed since
        "gating_files": study.gating_digests(),
        "task": task.key,
        "config": study.config,
        "clinical_inputs": clinical_inputs(study.root, study.config),
    }


def _reason(study: Study, row, f) -> str:
    """A failed file's reason; a file the manifest lists but that is not there says
    which line lists it and what to do (the other files were gated meanwhile)."""
    if f is None:
        return "not processed"
    if f.error == "FileNotFoundError":
        return not_found(study.listing(row), row.file)
    return f.reason


def _drop_stale_qc_files(qc_dir: Path, keep: set[str]) -> None:
    """Remove ``qc_dir/*.npz`` files whose sample is not in `keep` (this run's)."""
    if not qc_dir.is_dir():
        return
    for path in qc_dir.glob("*.npz"):
        if path.stem not in keep:
            path.unlink(missing_ok=True)


def _failed_qc_data(store, task, h: str, row, study: Study, out: Path) -> bool:
    """``qc/<sample>.npz`` of a file acquisition QC failed: its plot series and removed
    ranges (``acq:ranges`` start and end, ``acq:range_reasons``, ``acq:range_events`` first
    event and events, ``acq:range_detail``) and its summary's numbers
    (``acq:summary_keys``, ``acq:summary``: `SUMMARY_NUMBERS`, NaN for a check that did
    not run), from what the task stored
    with the failure, so the report can show why. Nothing when the store holds none (a
    failure stored by an older cytokit)."""

    if task is None:
        return False
    record = store.items(task.key, "acquisition_qc", [h]).get(h)
    bins = store.items(task.key, "acq_bins", [h]).get(h)
    if not isinstance(record, dict) or not isinstance(bins, np.ndarray):
        return False
    ranges = record.get("ranges", [])
    arrays = {
        **acquisition_arrays(record, bins),
        "acq:ranges": np.array([[r["start"], r["end"]] for r in ranges], float).reshape(-1, 2),
        "acq:range_reasons": np.array([str(r["reasons"]) for r in ranges], dtype=str),
        "acq:range_events": np.array(
            [[r["first_event"], r["events"]] for r in ranges], np.int64
        ).reshape(-1, 2),
        "acq:range_detail": np.array([str(r["detail"]) for r in ranges], dtype=str),
    }
    summary = record.get("summary")
    if isinstance(summary, dict):  # its samples.csv QC figures, which it has no row for
        keys = [k for k in SUMMARY_NUMBERS if k in summary]
        arrays["acq:summary_keys"] = np.array(keys, dtype=str)
        arrays["acq:summary"] = np.array(
            [np.nan if summary[k] is None else float(summary[k]) for k in keys], float
        )
    write_qc_file(out / "qc", sample_id(study.relative(row.file)), arrays)
    return True


def failed_days(study, failures: list[dict]) -> dict[tuple[str, str], list[int]]:
    """The days of each patient and sample type whose file of the chimerism tube failed."""
    kind = {(r.patient, r.day, study.tube_of(r)): r.sample_type for r in study.rows}
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for f in failures:
        if f["tube"] == study.chimerism_tube:
            key = (f["patient"], kind.get((f["patient"], f["day"], f["tube"]), ""))
            out[key].append(int(f["day"]))
    return {k: sorted(set(v)) for k, v in out.items()}


def trend_tables(
    chimerism: pd.DataFrame, study, failed: dict[tuple[str, str], list[int]] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trends.csv and cohort.csv from the chimerism table (see `cytokit.analysis.trends`).

    `failed` gives the days of each (patient, sample type) whose file failed
    (`failed_days`); with the days whose donor marker failed (``marker_failed``) they
    are the row's ``failed_days``. Where one is on or after day 0, the peak and the AUC
    are not given: the day not measured may have held the peak, and the AUC would run
    straight across it (as `cytokit.clinical.landmark.persistence_table` does). So too
    for a cells/µL series with a day on or after day 0 whose file had no counting
    reference (samples.csv says why): it has counts, so it is no failed day, but no
    cells/µL.
    """
    failed = failed or {}
    rows = []
    if chimerism.empty or "donor_pct" not in chimerism.columns:
        return pd.DataFrame(columns=list(TREND_COLUMNS)), cohort_summary(pd.DataFrame())
    infusions = defaultdict(list)
    for i in study.infusions:
        infusions[i.patient].append(i)
    keys = ["patient", "sample_type", "population"]
    for (patient, sample_type, population), g in chimerism.groupby(keys, sort=True):
        inf = infusions.get(patient, [])
        days = [i.day for i in inf]
        doses = [np.nan if i.dose_per_kg is None else i.dose_per_kg for i in inf]
        products = [i.product for i in inf]
        dead = g.loc[g["status"] == MARKER_FAILED, "day"].astype(int).tolist()
        lost = sorted({*failed.get((patient, sample_type), []), *dead})
        for measure in MEASURES:
            if not np.isfinite(g[measure].to_numpy(dtype=np.float64)).any():
                continue  # no value at all (a donor marker that failed every day)
            # a population too small to judge every day: a row of its own, no values
            values = judged_values(measure, g[measure], g["events"])
            row = {
                "patient": patient,
                "stratum": g["stratum"].iloc[0],
                "sample_type": sample_type,
                "population": population,
                "measure": measure,
            }
            counts = g["donor_events"].to_numpy(dtype=np.float64)
            row.update(
                trend_row(
                    g["day"].to_numpy(),
                    values,
                    g["status"].to_numpy(),
                    days,
                    doses,
                    counts,
                    products=products,
                )
            )
            row["failed_days"] = "; ".join(str(d) for d in lost)
            # a day measured without cells/µL (no counting reference for its file) is as
            # unknown to that series as a failed one
            raw = g[measure].to_numpy(dtype=np.float64)
            blank = (g["status"] != MARKER_FAILED).to_numpy() & ~np.isfinite(raw)
            unmeasured = measure == "donor_per_ul" and bool((blank & (g["day"] >= 0)).any())
            if unmeasured or any(d >= 0 for d in lost):
                row.update(peak_value=np.nan, peak_day=np.nan, auc=np.nan, auc_days=np.nan)
            rows.append(row)
    trends = pd.DataFrame(rows, columns=list(TREND_COLUMNS))
    return trends, cohort_summary(blood_series(trends))


def blood_series(trends: pd.DataFrame) -> pd.DataFrame:
    """The trends rows a cohort summary reads: one series per patient, population and
    measure, never a product bag's (`without_products`: its % donor is the product's, and
    it would count the patient twice), and the patient's peripheral-blood (``PB``) series
    where it has one beside others, as the outcome analyses read it."""
    if trends.empty or "sample_type" not in trends.columns:
        return trends
    rows = without_products(trends)
    has_pb = set(rows.loc[rows["sample_type"].astype(str) == "PB", "patient"].astype(str))
    other = rows["patient"].astype(str).isin(has_pb) & (rows["sample_type"].astype(str) != "PB")
    return rows[~other]


def cluster_stored_events(study, task, store, items, thresholds: pd.DataFrame) -> tuple[dict, dict]:
    """Cluster the study's stored threshold-parent events with `cytokit.cluster.cluster_study`.

    Parameters
    ----------
    study : Study
    task : MeasureTask
    store : RunStore
    items : list of (ManifestRow, content hash)
        The files analysed.
    thresholds : DataFrame
        thresholds.csv rows (donor flags of the events come from them).

    Returns
    -------
    tables : dict of str to DataFrame
        ``clusters``, ``cluster_summary``, ``cluster_matching`` (empty without
        ``[clustering]``).
    info : dict
        What was done (settings, events), or ``error`` when clustering failed.
    """
    settings = study.settings.clustering
    if settings is None or not task.cluster_markers or not items:
        return {}, {}
    from cytokit.errors import CytokitError

    try:
        result = _cluster(study, task, store, items, thresholds)
    except CytokitError as exc:
        return {}, {"error": str(exc)}
    summary = result.summary.copy()
    medians = result.medians.reset_index()
    summary = summary.merge(medians, on="metacluster", how="left")
    return (
        {"clusters": result.table, "cluster_summary": summary, "cluster_matching": result.matching},
        {
            "markers": list(task.cluster_markers),
            "parent": task.parent,
            "events_per_file": task.cluster_events,
            "events": int(result.n_events),
            "trained_on": int(result.n_train),
            **{k: v for k, v in result.settings.items() if k != "grid"},
            "grid": list(settings.grid),
        },
    )


def _cluster(
    study, task, store, items, thresholds: pd.DataFrame, key: str | None = None, legacy=False
):
    """The `cytokit.cluster.ClusterResult` of the stored threshold-parent events of `items`
    (stored under `key`, default the task's); `legacy`: trained as cytokit did before each
    file's draw was keyed on its content (names, in the items' order)."""
    from cytokit.cluster import cluster_study

    key = key or task.key
    settings = study.settings.clustering
    donor = {}
    if not thresholds.empty:
        # the sample thresholds (placed on the parent, whose events are clustered)
        th = thresholds[(thresholds["purpose"] == "donor") & (thresholds["parent"] == task.parent)]
        for r in th.itertuples(index=False):
            if isinstance(r.method, str) and r.method != "none":
                donor[r.file] = (r.marker, float(r.threshold), r.donor_side == "positive")
    names = [n for n, _ in task.populations]
    nc = len(task.cluster_markers)
    # "hash" keys the file's training draw (`cluster_study`); "sha" finds its stored events
    descs = [
        {
            "patient": row.patient,
            "day": row.day,
            "file": study.relative(row.file),
            "hash": None if legacy else h,
            "sha": h,
        }
        for row, h in items
    ]

    def load(item):
        values = store.items(key, "cluster", [item["sha"]])[item["sha"]]
        member = store.items(key, "cluster_gates", [item["sha"]])[item["sha"]]
        flags = None
        if item["file"] in donor:
            marker, t, positive = donor[item["file"]]
            v = values[:, nc + list(task.donor_markers).index(marker)]
            flags = v >= t if positive else v < t
        gates = {n: member[:, j].astype(bool) for j, n in enumerate(names)}
        return values[:, :nc], flags, gates

    return cluster_study(
        load,
        descs,
        task.cluster_markers,
        grid=settings.grid,
        n_metaclusters=settings.metaclusters,
        seed=settings.seed,
        gates=names,
        pool_order="items" if legacy else "key",
    )


def cluster_model(study, task, results):
    """The FlowSOM model `analyze` fitted for `results`, trained again from its store.

    The same stored events in the same order and seed give the same model;
    its per-file counts are checked against ``clusters.csv``.

    Raises
    ------
    CytokitError
        No store, or the model trained again does not give ``clusters.csv``.
    """
    from cytokit.engine.store import RunStore
    from cytokit.errors import CytokitError

    path = Path(results.out) / "results.sqlite"
    if not path.is_file():
        raise CytokitError(f"{path}: the results store is missing; run cytokit analyze again")
    done = set(results.samples["file"])
    if "tube" in results.samples.columns:  # clustering is of the chimerism tube's files
        chim = results.samples["tube"].fillna(DEFAULT_TUBE) == study.chimerism_tube
        done = set(results.samples.loc[chim, "file"])
    by_patient: dict[str, list] = {}
    sha = dict(zip(results.samples["file"], results.samples["sha256"], strict=True))
    for row in study.rows:
        rel = study.relative(row.file)
        if rel in done:
            by_patient.setdefault(row.patient, []).append((row, sha[rel]))
    items = [item for patient in sorted(by_patient) for item in by_patient[patient]]
    key = str(results.study.get("task") or task.key)  # the folder may have moved since
    want = results.clusters
    # a folder cytokit wrote before each file's draw was keyed on its content is trained as
    # it was then (its clusters.csv is the model's, and stays so until analysed again)
    for legacy in (False, True):
        with RunStore(path, readonly=True) as store:
            try:
                result = _cluster(study, task, store, items, results.thresholds, key, legacy)
            except KeyError:
                raise CytokitError(
                    f"{path}: the store lacks the clustering events of these results (another "
                    "run's store?); run cytokit analyze again"
                ) from None
        if want.empty or _same_counts(result.table, want):
            return result.model
    raise CytokitError(
        f"{results.out}: clustering the stored events again does not give clusters.csv "
        "(edited, or from another cytokit); run cytokit analyze again"
    )


def _same_counts(got: pd.DataFrame, want: pd.DataFrame) -> bool:
    """Whether a model's per-file counts are ``clusters.csv``'s."""
    cols = ["file", "metacluster", "origin", "count"]
    a = got[cols].sort_values(cols[:3]).to_numpy().tolist()
    b = want[cols].sort_values(cols[:3]).to_numpy().tolist()
    return [tuple(map(str, r)) for r in a] == [tuple(map(str, r)) for r in b]
