"""`Results`: the tables of a study analysis, written to and read back from its output folder.

`write_results` writes each table atomically, then the folder's index
``tables.json`` (`cytokit.analysis.tablesjson`); `load_results` checks every
file against that index, then rebuilds a `Results` from the folder alone (no
FCS files, no study folder), which is what ``cytokit report`` and notebooks
use. The folder and every table's columns are the results contract below.

Results contract (what ``cytokit report OUT`` and notebooks read)
------------------------------------------------------------------
Everything below is written atomically into ``OUT``; `load_results(OUT)`
rebuilds a `Results` from it without the FCS files. Tables are tidy CSV (one
row per item; empty cell = not available); `Results` holds each as a pandas
DataFrame attribute of the same name.

With ``table_format="parquet"`` (``cytokit analyze --format parquet``) each
table is ``<name>.parquet`` instead, and ``"both"`` writes both. The type of
every column is stated in `COLUMN_TYPES`: int64 (an integer always there),
Int64 (an integer that may be missing), float64, string or bool, and the
Parquet files are written with exactly those types (`cytokit.parquet`); a
value not available is a null, never 0, in both formats. A column the
contract does not type cannot be written as Parquet; the clustering tables'
marker columns (``median_CD3``... of clusters.csv, ``CD3``... of
cluster_summary.csv: one per clustering marker) are float64.
`load_results` reads the text columns as text.

Every per-file table (samples, counts, chimerism, thresholds, phenotype,
qc, acquisition_qc, failures) has a ``tube`` column after ``file``: the tube
the file was stained with (``default`` for the top-level tables of
study.toml; `cytokit.study.tubes`). Each tube's files are gated with its own
strategy and panel; chimerism and absolute counts come from the tube that
study.toml's ``[chimerism]`` key ``tube`` names, phenotype from every tube.

``samples.csv``
    One row per file analysed: patient, day, file (relative to the study
    folder), tube, stratum, sample_type, events, channels, fcs_version, cytometer,
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
    failed; `cytokit.analysis.marker_check`); then, with ``[acquisition_qc]``
    (`cytokit.qc`; all empty without it): events_before_qc (the file's events),
    events_after_qc (those acquisition QC kept; gating sees only these, less
    any nonfinite_events), qc_removed_rate, qc_removed_signal,
    qc_removed_margin (events removed for each reason; an event may count for
    two), qc_pct_removed, qc_verdict (``pass`` or ``warn``: a ``fail`` file is
    in failures.csv, stage ``acquisition_qc``, and has no row here),
    qc_reason (the % removed by reason, or why the verdict is ``warn``) and
    qc_notes (what QC did not check and why, channels it found were not
    measurements such as a second clock, trends it saw, a likely wrong
    ``$TIMESTEP``; "; "-joined, empty when none).
``counts.csv``
    One row per file and gate: patient, day, file, tube, population (the study's
    name for the gate, else empty), gate_path, gate_id, parent_path, depth,
    count, parent_count, pct_parent, pct_total, per_ul (cells/µL; empty
    without absolute counting, and in a tube other than the chimerism tube),
    note (why a gate is not counted: it reads a donor marker that failed for
    the sample, or a channel compensated against its failed detector; count,
    percentages and cells/µL are then empty, never 0).
``chimerism.csv``
    One row per file of the chimerism tube and study population: patient, day, file,
    tube, stratum,
    sample_type, population, gate_path, events, donor_events,
    recipient_events, donor_pct, ci_low, ci_high (95 % binomial interval,
    percent), imputed_events and imputed_donor_events (the population's and
    its donor cells estimated in the time ranges acquisition QC removed, from
    the kept events beside them and a clog's own gated cells; 0 when none was
    removed), imputed_donor_pct
    (100 · (donor_events + imputed_donor_events) / (events +
    imputed_events)), imputed_ci_low, imputed_ci_high (its 95 % interval,
    widened by the imputed part; the imputed values are empty when a range
    had no kept neighbour, where donor_pct is (no kept event of the
    population), and in folders written before they existed), per_ul, donor_per_ul, recipient_per_ul, status (``quantified``,
    ``not_quantifiable``, ``not_detected``; `cytokit.analysis.chimerism`; or
    ``marker_failed``: the sample's donor marker is unusable,
    `cytokit.analysis.marker_check`, and every donor value is empty, and so are
    events, per_ul where counts.csv leaves the population's gate not counted),
    note (why, for ``marker_failed``; what was imputed, or why nothing was,
    where acquisition QC removed time ranges; donor cells before the first
    infusion).
``thresholds.csv``
    One row per file and marker threshold: patient, day, file, tube, marker, purpose
    (``donor`` or ``phenotype``), parent (gate path the threshold was placed
    on: the threshold parent, or a study population that got its own donor
    cut, method ``population_valley``, `cytokit.analysis.chimerism.population_threshold`;
    every other population uses the parent's), threshold (transformed units,
    as gates see them), threshold_scale
    (compensated scale value), method, donor_side, recipient_mode,
    donor_mode, recipient_width, k, calibration_day, note.
``phenotype.csv``
    One row per file, population, origin (``all``, ``donor``, ``recipient``)
    and marker: patient, day, file, tube, population, origin, marker, events,
    median (compensated scale value), pct_positive, threshold_scale
    (`cytokit.analysis.phenotype`).
``trends.csv``
    One row per patient, sample type, population and measure
    (``donor_per_ul``, ``donor_pct``): `cytokit.analysis.trends.TREND_COLUMNS` (peak,
    last detectable and quantified day, AUC, half-life with its 95 % CI, n,
    R², first day of the fit and a note, infusions and total dose, and the
    fitted decay line: the slope of log(measure) per day and each decay
    phase's days and fitted value at its start, and for its 95 % band each
    phase's covariance of log(value at start) and slope and the quantile;
    empty where not estimable).
``cohort.csv``
    One row per stratum, population and measure: `cytokit.analysis.trends.COHORT_COLUMNS`
    (patients, medians and ranges of peak, AUC and half-life, dose, and
    Spearman correlations of dose with AUC and peak).
``infusions.csv``
    patient, day, product, dose_per_kg, stratum (the study's infusions.csv).
``clusters.csv``, ``cluster_summary.csv``, ``cluster_matching.csv``
    With ``[clustering]``: per file, metacluster and origin: count, total,
    fraction and ``median_CD3``... (one per marker); per metacluster: events, fraction, donor
    share, nodes, best-matching population and F1, and its median marker
    values; per population: the metaclusters matching it and precision,
    recall, F1 (`cytokit.cluster.cluster_study`).
``failures.csv``
    file, patient, day, tube, stage (``read``, ``panel``, ``values``, ``gate``,
    ``measure``...), kind, error, reason: every file that could not be
    processed. Stage ``values``: more than ``[qc] max_nonfinite`` (1 %) of its
    events hold a NaN or an infinity in a channel the analysis reads. Stage
    ``acquisition_qc``: acquisition QC removed more than ``[acquisition_qc]
    max_removed_pct`` of its events (the reason gives the % by reason); such
    a file has no numbers in any table.
``acquisition_qc.csv``
    With ``[acquisition_qc]``: one row per time range acquisition QC removed:
    patient, day, file, tube, start, end (seconds from the first event's clock, or
    the file's time units when it has no ``$TIMESTEP``; see time_unit),
    time_unit, first_event (index in the file), events, reasons (``rate``,
    ``signal`` or ``rate+signal``), detail (the rate against the expected
    rate, the channels whose signal departed). Margin events are removed one
    by one and are counted in samples.csv, not here. Empty without QC.
``qc.csv`` and ``qc/<sample>.npz``
    One row per file and gate: patient, day, file, tube, sample (the npz stem,
    `cytokit.analysis.results.sample_id`), gate_path, gate_id, parent_path, kind, dims
    (JSON list of dimension labels), geometry (JSON of the concrete, fitted
    gate; `cytokit.analysis.qcdata`), count, parent_count (of the gate as drawn: where
    counts.csv leaves a gate uncounted, for a failed donor marker, these still count
    its events and the QC plot titles it "not counted"), n_points. The npz holds,
    per gate id, ``gate:<id>``: a random subsample (≤ 2,000) of the gate's
    parent events in the gate's dimensions (float32, transformed as the gate
    sees them), and, for the threshold parent (``hist:__parent__``) and each
    study population (``hist:<name>``), the donor-marker histogram (float64,
    shape (2, n + 1): row 0 the bin edges, row 1 the counts and a trailing
    0). With ``[acquisition_qc]`` it also holds ``acq:bins`` (float64, one row
    per time bin; at most `cytokit.qc.apply.MAX_PLOT_BINS` = 2,000 rows, runs of
    bins merged by `cytokit.qc.apply.coarsen_bins` beyond that), ``acq:columns`` (their names: `cytokit.qc.AcquisitionQC.bins_frame`
    columns, signal columns of the ≤ 4 channels that departed most) and
    ``acq:time_unit``. A file acquisition QC failed (no row in the tables
    above) has an npz of its own with these three and its removed ranges,
    ``acq:ranges`` (float64 (n, 2): start, end), ``acq:range_events`` (int64
    (n, 2): first event, events), ``acq:range_reasons`` and ``acq:range_detail``.
    `Results.qc_points`, `Results.donor_histogram`, `Results.acquisition_bins`
    and `Results.acquisition_ranges` read them.
``miflowcyt.csv``
    One row per file and MIFlowCyt 1.0 item (and channel, for a channel's
    item): patient, day, file, miflowcyt (the item's number, e.g. ``3.3``;
    empty for a fact the standard does not ask for, such as the operator),
    item, channel (``$PnN``), marker, value, source (the FCS keyword, e.g.
    ``$P4V``, or the study file and key), status (``present`` or
    ``missing``), note (for a missing item: where to supply it). Filled from
    each file's FCS keywords, study.toml (``[[reagents]]``, compensation,
    transform, strategy, acquisition QC) and the manifest
    (`cytokit.analysis.miflowcyt`).
``tubes.csv``
    One row per tube the manifest lists files of: tube, files, origin (True
    when its panel carries the donor marker, so its cells are told donor
    from recipient; False: its phenotype is of all cells, origin ``all``),
    donor_markers, chimerism (True for the tube chimerism and counts come
    from), populations, phenotype_markers (``; ``-joined), strategy, task
    (its store key), note (the statement in words).
``repertoire.csv``
    With a tube's ``repertoire = { receptors, kirs, inhibitory }``: one row per
    file of that tube, population, origin (``all``, ``donor``, ``recipient``
    when the tube has origin) and combination of its receptors (SPICE's
    layout: the combination written ``KIR2DL1+ NKG2A-``, kind
    ``combination``; then the summary rows ``single-KIR+``, ``no KIR``, ``no
    inhibitory receptor``, kind ``summary``): patient, day, file, tube,
    population, origin, combination, kind, events, total, pct (of total),
    ci_low, ci_high (binomial interval, percent; `cytokit.analysis.repertoire`),
    ci_method, threshold_method (how each receptor's positivity threshold was
    placed in that file: ``fixed``, ``valley``), note (why a row has no
    numbers: a receptor without a threshold). Events are of the stored
    events of the population (all of them up to ``[phenotype] max_events``).
``function.csv``
    With a stimulated tube's ``pairs_with = "<unstimulated tube>"``: one row
    per visit with both files, population, origin and marker both tubes
    measure: patient, day, tube, file (stimulated), control_tube,
    control_file, population, origin, marker, events_stim, positive_stim,
    events_unstim, positive_unstim, pct_stim, pct_unstim, pct_net
    (stimulated minus unstimulated, percentage points), ci_low, ci_high
    (Newcombe's interval of the difference, `cytokit.analysis.function`),
    ci_method, high_background (unstimulated above 5 % positive),
    threshold_scale (one cut for both files: the stimulated file's, else the
    unstimulated file's), threshold_method, note.
``phenotype_normalised.csv``
    With ``[normalise] reference = "<patient>"`` (that patient's files are a
    reference sample acquired on every day, with each tube's panel): one row
    per phenotype.csv row of a tube the reference has files of: patient, day,
    file, tube, population, origin, marker, events, median (raw, as in
    phenotype.csv), median_normalised (mapped with the day's quantile map of
    the reference's events of the population onto their mean over days;
    `cytokit.analysis.normalised`), batch (``day <n>``: a day is a batch),
    reference_file, note (why a row has no normalised value).
``study.json``
    name, created, cytokit_version, root (the study folder, absolute), populations
    (name → gate path), threshold_parent, patients (id, stratum, donor_marker, donor_is, days),
    markers (donor, phenotype, clustering), counting (gate paths), qc
    (min_events, ci), strategy (source, digest), gating_files (``tubes``: each
    used tube's strategy digest; ``compensation``: a CSV matrix's digest; the
    exports refuse their change, `cytokit.study.Study.gating_file_changes`),
    task (the store key),
    clustering (what was done, or an error), config (study.toml as read),
    tubes (with more than the default tube: tubes.csv's rows by tube),
    clinical_inputs (``files``: SHA-256 of treatments.csv, infusions.csv and
    outcomes.csv as analyze read them, null when absent; ``outcomes``: the
    ``[outcomes]`` table; ``cytokit report`` refuses results whose study
    folder, when reachable, now differs: `cytokit.analysis.outcomes.
    check_clinical_inputs`).
``treatments.csv``
    Only when the study has a schedule (``treatments.csv`` or ``infusions.csv``):
    every row of it as read, drugs and skipped infusions included: patient,
    day, product, kind (``cells`` or ``drug``), dose, unit, dose_level, given
    (True/False), end_day (`cytokit.clinical.treatments_frame`). The report
    shades each patient's drug courses (`cytokit.clinical.drug_courses`) on
    the persistence and chimerism plots from it. ``Results.clinical``
    holds it.
``dose_response.csv``
    With a schedule too: per cell product, population and measure
    (`cytokit.analysis.dose_response.DOSE_RESPONSE_COLUMNS`): product, unit,
    population, measure, n_patients (given the product), n_several_products
    (of them, also given another cell product), dose_median, dose_min,
    dose_max (that product's total per patient, in its unit),
    dose_auc_spearman, dose_peak_spearman (Spearman's rank correlation of that
    dose with AUC and peak, PB series; empty below 3 patients), n_auc_spearman,
    n_peak_spearman (the patients each read: a dose and a value), note.
``outcomes_summary.csv``, ``survival.csv``, ``landmark.csv``, ``dose_escalation.csv``, ``response.csv``, ``doses.csv``
    Only when the study has ``outcomes.csv`` (`cytokit.analysis.outcomes`):
    Kaplan-Meier PFS/OS and GVHD cumulative incidence summaries and their
    step tables, the landmark analysis by persistence, the 3+3 dose
    escalation, response against persistence (``response.csv``: one row per
    response category, ``responders``, ``non-responders`` and ``responders
    vs non-responders``, which alone holds the p-values;
    `cytokit.clinical.response.RESPONSE_COLUMNS`), doses per patient and
    product (`cytokit.clinical.tables.TABLE_COLUMNS`). ``Results.clinical``
    holds them.
``product_qc.csv``
    Only when the manifest lists product samples (``sample_type``
    ``product_pre``, ``product_post`` or ``product``; `cytokit.analysis.outcomes.
    product_tables`): per infused bag, `cytokit.clinical.product.PRODUCT_QC_COLUMNS`
    (NK purity, viability, NK recovery and CD3 log10 depletion with 95 %
    exact intervals, nucleated cells, NK and residual CD3+ cells/kg with the
    one-sided upper bound, the rare-event limit of the events acquired,
    release against ``[outcomes.release]``, the treatment's dose level and the
    patient's acute GVHD grade). Counts from the bag's gating; volume_ml,
    nucleated_per_ml and weight_kg from its manifest row.
``*.h5ad`` (not written by ``analyze``)
    ``cytokit export-anndata OUT FILE.h5ad`` writes the events behind these
    tables as AnnData (`cytokit.analysis.anndata_export`, where its ``X``,
    layers, ``var``, ``obs`` and ``uns`` are documented); it reads this
    folder, the study folder and ``results.sqlite`` and changes none of them.
``results.sqlite``
    The batch store: per-file payloads keyed by file content hash and task
    key, each row with a checksum verified on read (`cytokit.engine.store`).
``runlog.jsonl``
    Not written by `write_results`: each finished ``cytokit analyze``,
    ``gate``, ``report`` and ``demo`` appends one JSON line to it
    (`cytokit.engine.runlog`, which documents every field): runlog (format
    version), run_id, command, argv, cwd, exit_code, user, host, started,
    finished (UTC ISO 8601), versions (cytokit, python, numpy, numba,
    pandas, matplotlib, platform), settings (sha256 of the resolved settings,
    task: the store key as in ``study.json``, strategy_digest), inputs (role,
    path, size, sha256 of each input file), outputs (path relative to the
    folder, size, sha256 of each file the run wrote), removed, log_seconds.
    ``cytokit verify`` (`cytokit.engine.verify`) checks a folder against it.
``tables.json``
    Written last: name, rows, bytes and SHA-256 of every table above and
    ``study.json`` (`cytokit.analysis.tablesjson`); `load_results` refuses a folder
    whose files differ from it or that has none.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._io import (
    frame_csv,
    replace_together,
    restore_frame,
)
from cytokit.analysis.tablesjson import check_index, invalidate_index, write_index
from cytokit.errors import CytokitError
from cytokit.parquet import frame_parquet, read_parquet, require_pyarrow, suffixes
from cytokit.qc import RANGE_TYPES, SUMMARY_TYPES
from cytokit.qc.apply import SUMMARY_COLUMNS

__all__ = [
    "CLINICAL_TABLES",
    "COLUMN_TYPES",
    "TABLES",
    "Results",
    "column_types",
    "conform",
    "load_results",
    "table_file",
    "write_results",
]

#: Table name -> columns, in the contract's order (clusters: whatever clustering gives).
TABLES: dict[str, tuple[str, ...]] = {
    "samples": (
        "patient", "day", "file", "tube", "stratum", "sample_type", "events", "channels",
        "fcs_version", "cytometer", "spillover", "count_method", "reference",
        "reference_events", "reference_per_ul", "sha256", "warnings", "nonfinite_events",
        "nonfinite_values", "donor_marker_check", "donor_marker_note", "events_before_qc",
        "events_after_qc", "qc_removed_rate", "qc_removed_signal", "qc_removed_margin",
        "qc_pct_removed", "qc_verdict", "qc_reason", "qc_notes",
    ),
    "counts": (
        "patient", "day", "file", "tube", "population", "gate_path", "gate_id", "parent_path", "depth",
        "count", "parent_count", "pct_parent", "pct_total", "per_ul", "note",
    ),
    "chimerism": (
        "patient", "day", "file", "tube", "stratum", "sample_type", "population", "gate_path", "events",
        "donor_events", "recipient_events", "donor_pct", "ci_low", "ci_high", "imputed_events",
        "imputed_donor_events", "imputed_donor_pct", "imputed_ci_low", "imputed_ci_high", "per_ul",
        "donor_per_ul", "recipient_per_ul", "status", "note",
    ),
    "thresholds": (
        "patient", "day", "file", "tube", "marker", "purpose", "parent", "threshold", "threshold_scale",
        "method", "donor_side", "recipient_mode", "donor_mode", "recipient_width", "k",
        "calibration_day", "note",
    ),
    "phenotype": (
        "patient", "day", "file", "tube", "population", "origin", "marker", "events", "median",
        "pct_positive", "threshold_scale",
    ),
    "trends": (),  # cytokit.analysis.trends.TREND_COLUMNS
    "cohort": (),  # cytokit.analysis.trends.COHORT_COLUMNS
    "infusions": ("patient", "day", "product", "dose_per_kg", "stratum"),
    "clusters": (),
    "cluster_summary": (),
    "cluster_matching": (),
    "failures": ("file", "patient", "day", "tube", "stage", "kind", "error", "reason"),
    "qc": (
        "patient", "day", "file", "tube", "sample", "gate_path", "gate_id", "parent_path", "kind",
        "dims", "geometry", "count", "parent_count", "n_points",
    ),
    "acquisition_qc": (
        "patient", "day", "file", "tube", "start", "end", "time_unit", "first_event", "events", "reasons",
        "detail",
    ),
    "miflowcyt": (),  # cytokit.analysis.miflowcyt.MIFLOWCYT_COLUMNS
    "tubes": (
        "tube", "files", "origin", "donor_markers", "chimerism", "populations",
        "phenotype_markers", "strategy", "task", "note",
    ),
    "repertoire": (
        "patient", "day", "file", "tube", "population", "origin", "combination", "kind",
        "events", "total", "pct", "ci_low", "ci_high", "ci_method", "threshold_method", "note",
    ),
    "function": (
        "patient", "day", "tube", "file", "control_tube", "control_file", "population",
        "origin", "marker", "events_stim", "positive_stim", "events_unstim", "positive_unstim",
        "pct_stim", "pct_unstim", "pct_net", "ci_low", "ci_high", "ci_method",
        "high_background", "threshold_scale", "threshold_method", "note",
    ),
    "phenotype_normalised": (
        "patient", "day", "file", "tube", "population", "origin", "marker", "events", "median",
        "median_normalised", "batch", "reference_file", "note",
    ),
}  # fmt: skip


def _fill_columns() -> None:
    from cytokit.analysis.miflowcyt import MIFLOWCYT_COLUMNS
    from cytokit.analysis.trends import COHORT_COLUMNS, TREND_COLUMNS

    TABLES["trends"] = TREND_COLUMNS
    TABLES["cohort"] = COHORT_COLUMNS
    TABLES["miflowcyt"] = MIFLOWCYT_COLUMNS


_fill_columns()

#: Column types of every table (`cytokit.parquet`: ``int64`` an integer always there,
#: ``Int64`` an integer that may be missing, ``float64`` a real number, ``string`` text,
#: ``bool`` true/false;
#: a missing value is an empty CSV cell and a Parquet null, never 0). The Parquet files
#: are written with exactly these types (`write_results` with ``table_format``).
_S, _I, _N, _F = "string", "int64", "Int64", "float64"
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "samples": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "stratum": _S, "sample_type": _S, "events": _I,
        "channels": _I, "fcs_version": _S, "cytometer": _S, "spillover": _S,
        "count_method": _S, "reference": _S, "reference_events": _N, "reference_per_ul": _F,
        "sha256": _S, "warnings": _S, "nonfinite_events": _I, "nonfinite_values": _S,
        "donor_marker_check": _S, "donor_marker_note": _S, **SUMMARY_TYPES,
    },
    "counts": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "population": _S, "gate_path": _S, "gate_id": _S,
        "parent_path": _S, "depth": _I, "count": _N, "parent_count": _N, "pct_parent": _F,
        "pct_total": _F, "per_ul": _F, "note": _S,
    },
    "chimerism": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "stratum": _S, "sample_type": _S,
        "population": _S, "gate_path": _S, "events": _N, "donor_events": _N,
        "recipient_events": _N, "donor_pct": _F, "ci_low": _F, "ci_high": _F,
        "imputed_events": _F, "imputed_donor_events": _F, "imputed_donor_pct": _F,
        "imputed_ci_low": _F, "imputed_ci_high": _F, "per_ul": _F,
        "donor_per_ul": _F, "recipient_per_ul": _F, "status": _S, "note": _S,
    },
    "thresholds": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "marker": _S, "purpose": _S, "parent": _S,
        "threshold": _F, "threshold_scale": _F, "method": _S, "donor_side": _S,
        "recipient_mode": _F, "donor_mode": _F, "recipient_width": _F, "k": _F,
        "calibration_day": _N, "note": _S,
    },
    "phenotype": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "population": _S, "origin": _S, "marker": _S,
        "events": _I, "median": _F, "pct_positive": _F, "threshold_scale": _F,
    },
    "trends": {
        "patient": _S, "stratum": _S, "sample_type": _S, "population": _S, "measure": _S,
        "n_days": _I, "first_day": _N, "last_day": _N, "peak_day": _N, "peak_value": _F,
        "last_detectable_day": _N, "last_quantified_day": _N, "auc": _F, "auc_days": _N,
        "half_life_days": _F, "half_life_ci_low": _F, "half_life_ci_high": _F,
        "half_life_n": _I, "half_life_r2": _F, "half_life_from_day": _N, "half_life_note": _S,
        "n_infusions": _I, "total_dose_per_kg": _F, "last_infusion_day": _N,
        "dose_product": _S, "doses_per_kg": _S, "half_life_slope": _F, "half_life_phases": _S,
        "half_life_cov": _S, "half_life_quantile": _F, "failed_days": _S,
    },
    "cohort": {
        "stratum": _S, "population": _S, "measure": _S, "n_patients": _I, "n_detected": _I,
        "peak_median": _F, "peak_min": _F, "peak_max": _F, "auc_median": _F, "auc_min": _F,
        "auc_max": _F, "half_life_n": _I, "half_life_median": _F, "half_life_min": _F,
        "half_life_max": _F, "dose_median": _F, "dose_auc_spearman": _F,
        "dose_peak_spearman": _F, "dose_product": _S, "peak_n": _I, "auc_n": _I,
    },
    "infusions": {"patient": _S, "day": _I, "product": _S, "dose_per_kg": _F, "stratum": _S},
    # further columns: median_<marker> (float64)
    "clusters": {
        "patient": _S, "day": _I, "file": _S, "metacluster": _I, "origin": _S, "count": _I,
        "total": _I, "fraction": _F,
    },
    # further columns: each clustering marker's median (float64)
    "cluster_summary": {
        "metacluster": _I, "events": _I, "fraction": _F, "donor_events": _N,
        "origin_events": _N, "donor_fraction": _F, "nodes": _I, "gate": _S, "f1": _F,
    },
    "cluster_matching": {
        "gate": _S, "events": _I, "metaclusters": _S, "precision": _F, "recall": _F, "f1": _F,
        "best_metacluster": _N, "best_f1": _F,
    },
    "failures": {
        "file": _S, "patient": _S, "day": _N, "tube": _S, "stage": _S, "kind": _S, "error": _S,
        "reason": _S,
    },
    "qc": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "sample": _S, "gate_path": _S, "gate_id": _S,
        "parent_path": _S, "kind": _S, "dims": _S, "geometry": _S, "count": _N,
        "parent_count": _N, "n_points": _I,
    },
    "acquisition_qc": {"patient": _S, "day": _I, "file": _S, "tube": _S, **RANGE_TYPES},
    "miflowcyt": {
        "patient": _S, "day": _I, "file": _S, "miflowcyt": _S, "item": _S, "channel": _S,
        "marker": _S, "value": _S, "source": _S, "status": _S, "note": _S,
    },
    "treatments": {
        "patient": _S, "day": _I, "product": _S, "kind": _S, "dose": _F, "unit": _S,
        "dose_level": _N, "given": "bool", "end_day": _N,
    },
    "dose_response": {
        "product": _S, "unit": _S, "population": _S, "measure": _S, "n_patients": _I,
        "n_several_products": _I, "dose_median": _F, "dose_min": _F, "dose_max": _F,
        "dose_auc_spearman": _F, "dose_peak_spearman": _F, "n_auc_spearman": _N,
        "n_peak_spearman": _N, "note": _S,
    },
    "product_qc": {
        "patient": _S, "day": _I, "product": _S, "dose_level": _N, "events": _N,
        "nk_purity_pct": _F, "nk_purity_ci_low": _F, "nk_purity_ci_high": _F,
        "viability_pct": _F, "viability_ci_low": _F, "viability_ci_high": _F,
        "nk_recovery_pct": _F, "nk_recovery_ci_low": _F, "nk_recovery_ci_high": _F,
        "cd3_log_depletion": _F, "cd3_log_depletion_ci_low": _F,
        "cd3_log_depletion_ci_high": _F, "nucleated_cells": _F, "nk_per_kg": _F,
        "cd3_per_kg": _F, "cd3_per_kg_upper": _F, "cd3_pct": _F, "cd3_pct_upper": _F,
        "cd3_pct_limit": _F, "cd3_per_kg_limit": _F, "release": _S, "release_note": _S,
        "agvhd_max_grade": _N, "note": _S,
    },
    "outcomes_summary": {
        "section": _S, "group_by": _S, "group": _S, "n": _I, "events": _N,
        "median_days": _F, "median_ci_low": _F, "median_ci_high": _F, "horizon_day": _N,
        "estimate": _F, "ci_low": _F, "ci_high": _F, "note": _S,
    },
    "survival": {
        "analysis": _S, "group_by": _S, "group": _S, "time": _F, "n_at_risk": _I,
        "n_events": _I, "n_censored": _I, "n_competing": _N, "estimate": _F, "se": _F,
        "ci_low": _F, "ci_high": _F,
    },
    "landmark": {
        "endpoint": _S, "landmark_day": _I, "group_by": _S, "threshold": _F,
        "n_patients": _I, "n_eligible": _I, "n_excluded_event": _I, "n_excluded_followup": _I,
        "n_excluded_no_sample": _I, "n_excluded_failed": _I, "group_1": _S, "n_1": _N,
        "events_1": _N, "group_0": _S, "n_0": _N, "events_0": _N, "hazard_ratio": _F,
        "hr_ci_low": _F, "hr_ci_high": _F,
        "hr_p": _F, "logrank_chi2": _F, "logrank_p": _F, "stratified": "bool", "note": _S,
    },
    "dose_escalation": {
        "product": _S, "dose_level": _N, "dose": _F, "unit": _S, "n_patients": _I,
        "n_evaluable": _I, "n_dlt": _I, "dlt_rate": _F, "dlt_patients": _S, "decision": _S,
        "mtd": _S, "note": _S,
    },
    "response": {
        "group": _S, "n": _I, "n_detected": _N, "n_not_detected": _N, "peak_median": _F,
        "peak_q1": _F, "peak_q3": _F, "auc_median": _F, "auc_q1": _F, "auc_q3": _F,
        "last_detectable_day_median": _F, "last_detectable_day_q1": _F,
        "last_detectable_day_q3": _F, "p_peak": _F, "p_auc": _F, "p_last_detectable_day": _F,
        "p_detected": _F, "test": _S, "note": _S,
    },
    "doses": {
        "patient": _S, "product": _S, "kind": _S, "unit": _S, "n_given": _I, "n_skipped": _I,
        "total_dose": _F, "first_day": _N, "last_day": _N, "max_dose_level": _N, "note": _S,
    },
    "tubes": {
        "tube": _S, "files": _I, "origin": "bool", "donor_markers": _S, "chimerism": "bool",
        "populations": _S, "phenotype_markers": _S, "strategy": _S, "task": _S, "note": _S,
    },
    "repertoire": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "population": _S, "origin": _S,
        "combination": _S, "kind": _S, "events": _N, "total": _I, "pct": _F, "ci_low": _F,
        "ci_high": _F, "ci_method": _S, "threshold_method": _S, "note": _S,
    },
    "function": {
        "patient": _S, "day": _I, "tube": _S, "file": _S, "control_tube": _S,
        "control_file": _S, "population": _S, "origin": _S, "marker": _S, "events_stim": _I,
        "positive_stim": _N, "events_unstim": _I, "positive_unstim": _N, "pct_stim": _F,
        "pct_unstim": _F, "pct_net": _F, "ci_low": _F, "ci_high": _F, "ci_method": _S,
        "high_background": "bool", "threshold_scale": _F, "threshold_method": _S, "note": _S,
    },
    "phenotype_normalised": {
        "patient": _S, "day": _I, "file": _S, "tube": _S, "population": _S, "origin": _S,
        "marker": _S, "events": _I, "median": _F, "median_normalised": _F, "batch": _S,
        "reference_file": _S, "note": _S,
    },
}  # fmt: skip
#: Failure stages (failures.csv) that come before acquisition QC: the file was never read.
_BEFORE_QC = ("open", "read")

#: Tables whose columns beyond `COLUMN_TYPES` (one per clustering marker) are float64.
MARKER_COLUMN_TABLES = ("clusters", "cluster_summary")


def column_types(name: str, columns) -> dict[str, str]:
    """The type of each of `columns` of table `name` (`COLUMN_TYPES`; a clustering table's
    marker columns are float64); a column the contract does not type is a ValueError."""
    declared = COLUMN_TYPES[name]
    out = {}
    for column in columns:
        if column in declared:
            out[column] = declared[column]
        elif name in MARKER_COLUMN_TABLES:
            out[column] = "float64"
        else:
            raise ValueError(
                f"{name}: column {column!r} has no type in cytokit.analysis.results.COLUMN_TYPES"
            )
    return out


#: Tables written only when the study has a schedule (treatments) or outcomes.csv
#: (the others; `cytokit.analysis.outcomes`).
CLINICAL_TABLES = (
    "treatments", "dose_response", "outcomes_summary", "survival", "landmark", "dose_escalation",
    "response", "doses", "product_qc",
)  # fmt: skip


@dataclass
class Results:
    """What `cytokit.analyze` produced (see this module for every column).

    Attributes
    ----------
    study : dict
        ``study.json``: name, populations, patients, markers, strategy, config.
    samples, counts, chimerism, thresholds, phenotype, trends, cohort, infusions,
    clusters, cluster_summary, cluster_matching, failures, qc, acquisition_qc, miflowcyt, tubes, repertoire, function, phenotype_normalised : pandas.DataFrame
    out : Path or None
        The folder the results were written to.
    clinical : dict of str to DataFrame
        The clinical tables (`CLINICAL_TABLES`): ``treatments`` when the study
        has a schedule, the outcome tables when it has ``outcomes.csv``;
        empty otherwise.
    """

    study: dict = field(default_factory=dict)
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    chimerism: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)
    phenotype: pd.DataFrame = field(default_factory=pd.DataFrame)
    trends: pd.DataFrame = field(default_factory=pd.DataFrame)
    cohort: pd.DataFrame = field(default_factory=pd.DataFrame)
    infusions: pd.DataFrame = field(default_factory=pd.DataFrame)
    clusters: pd.DataFrame = field(default_factory=pd.DataFrame)
    cluster_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    cluster_matching: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    qc: pd.DataFrame = field(default_factory=pd.DataFrame)
    acquisition_qc: pd.DataFrame = field(default_factory=pd.DataFrame)
    miflowcyt: pd.DataFrame = field(default_factory=pd.DataFrame)
    tubes: pd.DataFrame = field(default_factory=pd.DataFrame)
    repertoire: pd.DataFrame = field(default_factory=pd.DataFrame)
    function: pd.DataFrame = field(default_factory=pd.DataFrame)
    phenotype_normalised: pd.DataFrame = field(default_factory=pd.DataFrame)
    out: Path | None = None
    clinical: dict[str, pd.DataFrame] = field(default_factory=dict)

    def qc_points(self, file: str, gate_id: str) -> np.ndarray:
        """The QC subsample of `gate_id`'s parent events in `file` (float32, (n, n_dims))."""
        return self._qc_item(file, f"gate:{gate_id}")

    def donor_histogram(self, file: str, name: str = "__parent__"):
        """The donor-marker `Histogram` of the threshold parent (or population `name`) in `file`."""
        from cytokit.stats.density import Histogram

        return Histogram.from_array(self._qc_item(file, f"hist:{name}"))

    def acquisition_bins(self, file: str) -> pd.DataFrame:
        """The acquisition-QC time bins of `file` (``bins_frame`` columns; see ``qc/*.npz``),
        a sample's or a file QC failed."""
        got = self._qc_items(file, ("acq:bins", "acq:columns", "acq:time_unit"))
        columns = [str(c) for c in got["acq:columns"]]
        if not columns:  # no usable time axis: no bins, the columns of `bins_frame`'s then
            return pd.DataFrame(columns=["bin", "start", "end", "time_unit", "events"])
        frame = pd.DataFrame(got["acq:bins"], columns=columns)
        frame["time_unit"] = str(got["acq:time_unit"])
        return frame

    def acquisition_ranges(self, file: str) -> pd.DataFrame:
        """The time ranges acquisition QC removed in `file`, with the columns of
        ``acquisition_qc.csv`` after ``file``: ``start, end, time_unit, first_event,
        events, reasons, detail``.

        A sample's are its rows of ``acquisition_qc.csv``; a file QC failed
        (`qc_failed_files`) has no rows there, and its ranges are read from
        its ``qc/<sample>.npz`` (one written by an older cytokit holds start,
        end and reasons only: the other columns are then empty). A file that
        failed at a later stage (gating, say) or is not in the results raises
        `CytokitError`: no rows would read as "nothing removed".
        """
        from cytokit.qc.apply import RANGE_COLUMNS

        cols = list(RANGE_COLUMNS)
        if file in self.qc_failed_files():
            got = self._qc_items(
                file,
                ("acq:ranges", "acq:range_reasons", "acq:time_unit"),
                optional=("acq:range_events", "acq:range_detail"),
            )
            se = got["acq:ranges"]
            n = se.shape[0]
            reasons = [str(x) for x in got["acq:range_reasons"]]
            if "acq:range_events" in got:
                first, events = got["acq:range_events"][:, 0], got["acq:range_events"][:, 1]
                detail = [str(x) for x in got.get("acq:range_detail", [""] * n)]
            else:  # an npz of an older cytokit: not known
                first = events = pd.array([None] * n, dtype="Int64")
                detail = [""] * n
            unit = str(got["acq:time_unit"])
            return pd.DataFrame(
                {
                    "start": se[:, 0],
                    "end": se[:, 1],
                    "time_unit": [unit] * n,
                    "first_event": first,
                    "events": events,
                    "reasons": reasons,
                    "detail": detail,
                },
                columns=cols,
            )
        if not self._analysed(file):
            # no rows would read as "QC removed nothing": say what happened instead
            raise self._no_qc_record(file)
        r = self.acquisition_qc
        if r is None or r.empty:
            return pd.DataFrame(columns=cols)
        return r[r["file"] == file][cols].reset_index(drop=True)

    def acquisition_summary(self, file: str) -> dict:
        """`file`'s acquisition-QC figures under their ``samples.csv`` names:
        ``events_before_qc``, ``events_after_qc``, ``qc_removed_rate``,
        ``qc_removed_signal``, ``qc_removed_margin`` (None where that check did not run)
        and ``qc_pct_removed`` (None where no check ran), and its ``qc_verdict``
        (``pass``, ``warn`` or ``fail``), ``qc_reason`` and ``qc_notes`` (None where
        empty). A sample's come from ``samples.csv``; a file QC failed has no row
        there: its numbers come from its ``qc/<sample>.npz`` (none where an older
        cytokit wrote that) and its reason from ``failures.csv``. Raises
        `CytokitError` as `acquisition_ranges` does."""
        text: dict = {}
        if file in self.qc_failed_files():
            got = self._qc_items(file, (), optional=("acq:summary_keys", "acq:summary"))
            pairs = zip(got.get("acq:summary_keys", ()), got.get("acq:summary", ()), strict=True)
            values = {str(k): float(v) for k, v in pairs}
            f = self.failures
            reason = f.loc[(f["file"] == file) & (f["stage"] == "acquisition_qc"), "reason"]
            text = {"qc_verdict": "fail", "qc_reason": str(reason.iloc[0]), "qc_notes": None}
        elif self._analysed(file):
            row = self.samples[self.samples["file"] == file].iloc[0]
            values = {k: row[k] for k in SUMMARY_NUMBERS if k in row.index}
            for k in ("qc_verdict", "qc_reason", "qc_notes"):
                v = row[k] if k in row.index else None
                text[k] = None if v is None or pd.isna(v) or str(v) == "" else str(v)
        else:
            raise self._no_qc_record(file)
        out: dict = {}
        for k, v in values.items():
            ok = v is not None and not pd.isna(v)
            out[k] = (float(v) if k == "qc_pct_removed" else int(v)) if ok else None
        return {**out, **text}

    def qc_failed_files(self) -> list[str]:
        """Files acquisition QC failed (``failures.csv`` stage ``acquisition_qc``), in order."""
        f = self.failures
        if f is None or f.empty or "stage" not in f:
            return []
        return [str(x) for x in f.loc[f["stage"] == "acquisition_qc", "file"]]

    def _analysed(self, file: str) -> bool:
        return not self.samples.empty and bool((self.samples["file"] == file).any())

    def _no_qc_record(self, file: str) -> CytokitError:
        """Why `file`, not analysed nor failed by QC, has no QC record here."""
        f = self.failures
        known = f is not None and not f.empty and "stage" in f
        row = f[f["file"] == file] if known else []
        if len(row):
            stage = str(row["stage"].iloc[0])
            reason = str(row["reason"].iloc[0]) if "reason" in row else ""
            if stage in _BEFORE_QC:
                # the file was never read, so QC never ran: rerunning QC would fail alike
                return CytokitError(
                    f"{file} failed at stage {stage!r} (failures.csv), before acquisition QC "
                    f"could run, so it has no QC record: {reason or 'see failures.csv'}"
                )
            return CytokitError(
                f"{file} failed at stage {stage!r} (failures.csv), after "
                f"acquisition QC: what QC removed there is not kept; rerun it alone, with "
                f"the study's settings (the defaults leave no channel out), as "
                f"cytokit.qc.acquisition_qc(cytokit.read_fcs(path), "
                f"cytokit.qc.AcquisitionQCSettings.from_mapping(TABLE)), TABLE being "
                f"study.toml's [acquisition_qc] table as a dict"
            )
        return CytokitError(f"no sample {file!r} in the results at {self.out}")

    def qc_file(self, file: str) -> Path:
        """`file`'s ``qc/<sample>.npz`` (it may be missing): the name qc.csv records for
        it, else the one `qc_npz` finds among the folder's files. Every reader of QC data
        (the API, the report's QC and acquisition plots) finds it here.

        Raises
        ------
        CytokitError
            The results were not written to a folder; or qc.csv records one QC file for
            `file` and other files (an older cytokit named them alike: it holds one
            file's data, not known which).
        """
        if self.out is None:
            raise CytokitError("these results were not written to a folder; QC data is kept there")
        file = str(file)
        recorded = self._qc_names().get(file)
        if recorded is not None:
            sample, files = recorded
            if len(files) > 1:
                raise CytokitError(shared_qc_file(self.out, sample, files))
            if sample in (sample_id(file), _legacy_sample_id(file)):
                return Path(self.out) / "qc" / f"{sample}.npz"
        folder = [*self._qc_names(), *self.qc_failed_files()]
        if not self.samples.empty and "file" in self.samples:
            folder += [str(f) for f in self.samples["file"]]
        return qc_npz(self.out, file, folder)

    def _qc_names(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each file of qc.csv: the QC name (``sample``) it records for it, and every file
        it records under that name. Kept while `qc` is the same table (a report asks once
        per sample)."""
        q = self.qc
        kept = self.__dict__.get("_qc_names_of")
        if kept is not None and kept[0] is q:
            return kept[1]
        names: dict[str, tuple[str, tuple[str, ...]]] = {}
        if q is not None and not q.empty and {"file", "sample"} <= set(q.columns):
            pairs = q[["file", "sample"]].astype(str).drop_duplicates()
            by_name = pairs.groupby("sample", sort=False)["file"].agg(tuple)
            names = {
                f: (n, by_name[n]) for f, n in zip(pairs["file"], pairs["sample"], strict=True)
            }
        self.__dict__["_qc_names_of"] = (q, names)
        return names

    def _qc_item(self, file: str, key: str) -> np.ndarray:
        return self._qc_items(file, (key,))[key]

    def _qc_items(self, file: str, keys, optional=()) -> dict[str, np.ndarray]:
        """Items `keys` (each required) and `optional` (left out when absent) of `file`'s
        ``qc/<sample>.npz``, read in one opening of it."""
        if self.out is None:
            raise CytokitError("these results were not written to a folder; QC data is kept there")
        if not self._analysed(file) and file not in self.qc_failed_files():
            raise self._no_qc_record(file)
        path = self.qc_file(file)
        if not path.is_file():
            raise CytokitError(
                f"{path}: the QC file of {file!r} is missing; run `cytokit analyze STUDY --out "
                f"{self.out}` again to write it"
            )
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data]
            if missing:
                raise CytokitError(
                    f"{path}: no item {missing[0]!r}; it has {', '.join(sorted(data.files))}"
                )
            return {k: data[k] for k in (*keys, *optional) if k in data}

    def __repr__(self) -> str:
        name = self.study.get("name", "")
        return (
            f"<Results {name!r}: {len(self.samples)} samples, {len(self.chimerism)} chimerism "
            f"rows, {len(self.failures)} failures>"
        )


#: The numbers of a QC summary (`cytokit.qc.apply`) kept for a file QC failed.
SUMMARY_NUMBERS = SUMMARY_COLUMNS[:6]


def sample_id(file: str) -> str:
    """The QC file stem of a sample: its manifest path with each ``/`` written ``__``.

    That is one-to-one only for ``.fcs`` paths of letters, digits, ``-``, ``_``, ``.``
    and ``/`` with no ``_`` beside a ``/`` or another ``_``; any other path (a space, a
    ``&``, ``a__b`` beside ``a/b``, ``x.FCS`` beside ``x.fcs``) gets every other
    character written ``__`` too and a short hash of the whole path, so two samples
    never share a QC file.
    """
    file = str(file)
    stem = file.removesuffix(".fcs")
    plain = _legacy_sample_id(file)
    if (
        stem != file  # `x` and `x.FCS` beside `x.fcs` take a hash
        and all(c.isalnum() or c in "-_./" for c in stem)
        and not any(pair in stem for pair in ("__", "_/", "/_"))
    ):
        return plain
    return f"{plain}-{hashlib.sha1(file.encode('utf-8')).hexdigest()[:8]}"


def _legacy_sample_id(file: str) -> str:
    """`sample_id` as cytokit wrote it before it was one-to-one (every character but
    letters, digits, ``-``, ``_`` and ``.`` written ``__``): the QC files of an older
    results folder are found under it."""
    stem = str(file)
    if stem.lower().endswith(".fcs"):
        stem = stem[:-4]
    return "".join(c if c.isalnum() or c in "-_." else "__" for c in stem)


def qc_npz(out: Path, file: str, files: Iterable[str] = ()) -> Path:
    """``out/qc/<sample_id>.npz`` of `file`, or the name an older cytokit gave it where
    only that one is there and no other of `files` (the folder's) has that name now: a
    missing QC file is then missing, not another sample's.

    Raises
    ------
    CytokitError
        The older name is that of other `files` too: an older cytokit wrote their QC data
        to one file, which holds one of them only.
    """
    file = str(file)
    path = Path(out) / "qc" / f"{sample_id(file)}.npz"
    old = _legacy_sample_id(file)
    legacy = path.with_name(f"{old}.npz")
    if path.exists() or old == path.stem or not legacy.exists():
        return path
    others = {str(f) for f in files} - {file}
    if any(sample_id(f) == old for f in others):
        return path  # that name is another sample's
    sharing = sorted(f for f in others if _legacy_sample_id(f) == old)
    if sharing:
        raise CytokitError(shared_qc_file(out, old, [file, *sharing]))
    return legacy


def shared_qc_file(out: Path, sample: str, files) -> str:
    """Why the QC file `sample` of `files` is shown for none of them (`Results.qc_file`)."""
    listed = ", ".join(repr(f) for f in sorted(files))
    return (
        f"qc/{sample}.npz was written by an older cytokit under one name for {len(files)} "
        f"files ({listed}) and holds the QC data of one of them only: run `cytokit analyze "
        f"STUDY --out {out}` again to write one QC file per sample"
    )


def conform(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """`frame` with `columns` first, in order (missing ones added empty), then any others."""
    if not columns:
        return frame
    missing = {c: pd.Series(dtype=object, index=frame.index) for c in columns if c not in frame}
    if missing:
        frame = frame.assign(**missing)
    return frame[list(columns) + [c for c in frame.columns if c not in columns]]


def as_read(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the values a table's CSV is read back with: a column `COLUMN_TYPES`
    types as a number that holds Python objects (None for a value not measured) becomes
    numeric, NaN where missing, and an empty text (no note, no failed day) is NaN, as
    `load_results` gives them (one door, one dtype: ``failed_days.notna()`` selects the
    same rows of either)."""
    numbers = {}
    for column, kind in COLUMN_TYPES.get(name, {}).items():
        if column not in frame or frame[column].dtype != object:
            continue
        if kind in ("int64", "Int64", "float64"):
            try:
                numbers[column] = pd.to_numeric(frame[column])
            except (TypeError, ValueError):  # not numbers: left as they are
                pass
        elif kind == _S:
            empty = frame[column].eq("")
            if empty.any():
                numbers[column] = frame[column].mask(empty, np.nan)
    return frame.assign(**numbers) if numbers else frame


def _csv_bytes(frame: pd.DataFrame, columns) -> bytes:
    return frame_csv(conform(frame, columns), float_format="%.10g").encode()


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _table_bytes(name: str, frame: pd.DataFrame, columns, suffix: str) -> bytes:
    """Table `name` as the bytes of its ``.csv`` or ``.parquet`` file."""
    if suffix == ".csv":
        return _csv_bytes(frame, columns)
    frame = conform(frame, columns)
    names = [str(c) for c in frame.columns]
    return frame_parquet(frame, names, column_types(name, names), table=name)


def write_results(results: Results, out: str | Path, *, table_format: str = "csv") -> Path:
    """Write every table of `results` and ``study.json`` into `out`, together, and last
    their index ``tables.json`` (`cytokit.analysis.tablesjson`); the old index is removed first, so a
    stop half-way leaves none. The tables are written whole first and then put in place
    together (`cytokit._io.replace_together`), so a stop while writing them leaves the
    earlier run's tables, never a run's samples beside another's failures.

    `table_format` is ``csv`` (the default), ``parquet`` (each table as
    ``<name>.parquet`` with the types of `COLUMN_TYPES`; needs pyarrow) or
    ``both``. A table's file in the format not written (left by an earlier
    run) is removed, and so is a clinical table this analysis has none of (its
    study had outcomes.csv then, or it was another study's), so the folder
    holds one run's tables only."""
    written = suffixes(table_format)
    if ".parquet" in written:
        require_pyarrow()  # before anything in the folder changes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    invalidate_index(out)
    tables = [(name, getattr(results, name), columns) for name, columns in TABLES.items()]
    tables += [(n, results.clinical[n], ()) for n in CLINICAL_TABLES if n in results.clinical]
    index: dict[str, int | None] = {}
    files: dict[Path, bytes | None] = {}
    stale = [n for n in CLINICAL_TABLES if n not in results.clinical]
    for name, frame, columns in tables:
        for suffix in (".csv", ".parquet"):
            path = out / f"{name}{suffix}"
            if suffix in written:
                files[path] = _table_bytes(name, frame, columns, suffix)
                index[path.name] = len(frame)
            else:
                files[path] = None
    for name in stale:  # left by an earlier run (outcomes.csv since removed, or another study's)
        for suffix in (".csv", ".parquet"):
            files[out / f"{name}{suffix}"] = None
    study = json.dumps(results.study, indent=2, default=_json_default) + "\n"
    files[out / "study.json"] = study.encode("utf-8")
    replace_together(files)
    index["study.json"] = None
    write_index(out, index)
    results.out = out
    return out


def _unreadable(path: Path, what: str, exc: Exception) -> CytokitError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return CytokitError(
        f"{path}: not {what} as `cytokit analyze` writes it ({reason}); run `cytokit analyze "
        f"STUDY --out {path.parent}` again to rewrite the results folder"
    )


def _read_csv(path: Path, data: bytes, name: str = "") -> pd.DataFrame:
    # text columns stay text ("1.1", a stratum "2"), as in the Parquet file
    text = {c: str for c, kind in COLUMN_TYPES.get(name, {}).items() if kind == "string"}
    try:
        frame = pd.read_csv(
            io.BytesIO(data), keep_default_na=True, dtype={"file": str, "patient": str, **text}
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (UnicodeDecodeError, ValueError, OSError) as exc:  # pandas' ParserError is a ValueError
        raise _unreadable(path, "a CSV table", exc) from exc
    return restore_frame(frame)


def _read_table(path: Path, data: bytes) -> pd.DataFrame:
    if path.suffix != ".parquet":
        return _as_contract(_read_csv(path, data, path.stem), path.stem)
    require_pyarrow()
    try:
        return _as_contract(read_parquet(data), path.stem)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise _unreadable(path, "a Parquet table", exc) from exc


def _as_contract(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """`frame` with the contract's types, whichever format it was read from: text as
    text (NaN where missing; a column with no value too, not float NaN), real numbers
    as float64 (a column of whole numbers read from CSV too). Integer columns are left
    as read: int64, or float64 with NaN where a value is missing (an empty table's:
    int64)."""
    kinds = COLUMN_TYPES.get(name, {})
    for column, kind in kinds.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if frame.empty:  # no row to tell: an empty CSV column reads as text
            frame[column] = values.astype(
                object if kind == _S else np.float64 if kind == _F else np.int64
            )
        elif kind == _S and values.dtype != object:
            frame[column] = values.astype(object).where(values.notna(), np.nan)
        elif kind == _F and values.dtype != np.float64 and pd.api.types.is_numeric_dtype(values):
            frame[column] = values.astype(np.float64)
    return frame


def table_file(checked: dict[str, bytes], name: str) -> str | None:
    """The file of table `name` among the files `checked` (its CSV, else its Parquet)."""
    for suffix in (".csv", ".parquet"):
        if f"{name}{suffix}" in checked:
            return f"{name}{suffix}"
    return None


def _read_study(path: Path, data: bytes) -> dict:
    try:
        study = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
        raise _unreadable(path, "JSON", exc) from exc
    if not isinstance(study, dict):
        raise _unreadable(path, "a JSON object", TypeError(f"it holds a {type(study).__name__}"))
    return study


#: Columns added to tables after the first results folders were written, with the value
#: they stand for in an older folder: every file of the default tube; no decay fit stored
#: (the half-life columns themselves are there, so no fitted line, nor its band, is drawn).
ADDED_COLUMNS: dict[str, object] = {
    "tube": "default",
    "half_life_slope": float("nan"),
    "half_life_phases": "",
    "half_life_cov": "",
    "half_life_quantile": float("nan"),
    # chimerism.csv before acquisition QC's removed ranges were imputed: not computed
    "imputed_events": float("nan"),
    "imputed_donor_events": float("nan"),
    "imputed_donor_pct": float("nan"),
    "imputed_ci_low": float("nan"),
    "imputed_ci_high": float("nan"),
    # samples.csv before acquisition QC's notes were a column: not recorded
    "qc_notes": float("nan"),
    # counts.csv before a gate could be left uncounted (a failed donor-marker detector)
    "note": float("nan"),
    # dose_response.csv before it said how many patients each correlation read
    "n_auc_spearman": float("nan"),
    "n_peak_spearman": float("nan"),
}


def load_results(out: str | Path) -> Results:
    """Rebuild the `Results` of an analysis from its output folder.

    Text cells of the tables come back raw (the quote that neutralised a
    formula-like cell is removed, `cytokit._io.restore_cell`), and a column
    `COLUMN_TYPES` calls text is read as text (a stratum ``2`` stays ``"2"``). A table
    written as Parquet only (``--format parquet``) is read from its
    ``.parquet`` file (pyarrow needed), into the frame its CSV would give
    (`cytokit.parquet.read_parquet`); with both, the CSV is read.

    Parameters
    ----------
    out : path
        A folder written by `cytokit.analyze` (``cytokit analyze --out``).

    Raises
    ------
    CytokitError
        The folder or its ``study.json`` / ``samples.csv`` (or ``.parquet``) is missing, or a
        file differs from the folder's index ``tables.json`` (or there is no
        index): `cytokit.analysis.tablesjson.check_index`; or a file is not what
        `cytokit.analyze` writes (not UTF-8, not CSV, a table without its
        columns, not a JSON object). The message names the file.
    """
    out = Path(out)
    samples = any((out / f"samples{x}").is_file() for x in (".csv", ".parquet"))
    if not (out / "study.json").is_file() and samples:
        raise CytokitError(
            f"{out}: an analysis that stopped before its end (samples.csv but no study.json "
            f"yet); run `cytokit analyze STUDY --out {out}` again: it resumes from the files "
            "done"
        )
    if not (out / "study.json").is_file() or not samples:
        raise CytokitError(
            f"{out}: not an analysis output folder (no study.json or samples.csv); "
            "run `cytokit analyze STUDY --out` first"
        )
    checked = check_index(out)
    if "study.json" not in checked:
        raise CytokitError(
            f"{out}: its tables.json does not list study.json; run `cytokit analyze` again"
        )
    kw: dict = {"study": _read_study(out / "study.json", checked["study.json"]), "out": out}
    for name, columns in TABLES.items():
        found = table_file(checked, name)
        path = out / (found or f"{name}.csv")
        kw[name] = _read_table(path, checked[found]) if found else pd.DataFrame(columns=columns)
        later = {c: v for c, v in ADDED_COLUMNS.items() if c in columns}
        if found and any(c not in kw[name].columns for c in later):
            # written before these columns were: their value then (see ADDED_COLUMNS)
            fill = {c: v for c, v in later.items() if c not in kw[name].columns}
            kw[name] = conform(kw[name].assign(**fill), columns)
        missing = [c for c in columns if c not in kw[name].columns]
        if missing:  # a damaged header would otherwise surface as a KeyError deep in the report
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if missing[5:] else ""
            )
            raise CytokitError(
                f"{path}: no column {shown}; the table is damaged or was not written by this "
                f"cytokit: run `cytokit analyze STUDY --out {out}` again to rewrite it"
            )
    kw["clinical"] = {
        name: _read_table(out / found, checked[found])
        for name in CLINICAL_TABLES
        if (found := table_file(checked, name)) is not None
    }
    return Results(**kw)
