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
    failed; `cytokit.analysis.marker_check`); then, with ``[acquisition_qc]``
    (`cytokit.qc`; all empty without it): events_before_qc (the file's events),
    events_after_qc (those acquisition QC kept; gating sees only these, less
    any nonfinite_events), qc_removed_rate, qc_removed_signal,
    qc_removed_margin (events removed for each reason; an event may count for
    two), qc_pct_removed, qc_verdict (``pass`` or ``warn``: a ``fail`` file is
    in failures.csv, stage ``acquisition_qc``, and has no row here) and
    qc_reason (the % removed by reason, or why the verdict is ``warn``).
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
    ``not_quantifiable``, ``not_detected``; `cytokit.analysis.chimerism`; or
    ``marker_failed``: the sample's donor marker is unusable,
    `cytokit.analysis.marker_check`, and every donor value is empty), note (why, for
    ``marker_failed``).
``thresholds.csv``
    One row per file and marker threshold: patient, day, file, marker, purpose
    (``donor`` or ``phenotype``), parent (gate path the threshold was placed
    on: the threshold parent, or a study population that got its own donor
    cut, method ``population_valley``, `cytokit.analysis.chimerism.population_threshold`;
    every other population uses the parent's), threshold (transformed units,
    as gates see them), threshold_scale
    (compensated scale value), method, donor_side, recipient_mode,
    donor_mode, recipient_width, k, calibration_day, note.
``phenotype.csv``
    One row per file, population, origin (``all``, ``donor``, ``recipient``)
    and marker: patient, day, file, population, origin, marker, events,
    median (compensated scale value), pct_positive, threshold_scale
    (`cytokit.analysis.phenotype`).
``trends.csv``
    One row per patient, sample type, population and measure
    (``donor_per_ul``, ``donor_pct``): `cytokit.analysis.trends.TREND_COLUMNS` (peak,
    last detectable and quantified day, AUC, half-life with its 95 % CI, n,
    R², first day of the fit and a note, infusions and total dose).
``cohort.csv``
    One row per stratum, population and measure: `cytokit.analysis.trends.COHORT_COLUMNS`
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
    events hold a NaN or an infinity in a channel the analysis reads. Stage
    ``acquisition_qc``: acquisition QC removed more than ``[acquisition_qc]
    max_removed_pct`` of its events (the reason gives the % by reason); such
    a file has no numbers in any table.
``acquisition_qc.csv``
    With ``[acquisition_qc]``: one row per time range acquisition QC removed:
    patient, day, file, start, end (seconds from the first event's clock, or
    the file's time units when it has no ``$TIMESTEP``; see time_unit),
    time_unit, first_event (index in the file), events, reasons (``rate``,
    ``signal`` or ``rate+signal``), detail (the rate against the expected
    rate, the channels whose signal departed). Margin events are removed one
    by one and are counted in samples.csv, not here. Empty without QC.
``qc.csv`` and ``qc/<sample>.npz``
    One row per file and gate: patient, day, file, sample (the npz stem,
    `cytokit.analysis.results.sample_id`), gate_path, gate_id, parent_path, kind, dims
    (JSON list of dimension labels), geometry (JSON of the concrete, fitted
    gate; `cytokit.analysis.qcdata`), count, parent_count, n_points. The npz holds,
    per gate id, ``gate:<id>``: a random subsample (≤ 2,000) of the gate's
    parent events in the gate's dimensions (float32, transformed as the gate
    sees them), and, for the threshold parent (``hist:__parent__``) and each
    study population (``hist:<name>``), the donor-marker histogram (float64,
    shape (2, n + 1): row 0 the bin edges, row 1 the counts and a trailing
    0). With ``[acquisition_qc]`` it also holds ``acq:bins`` (float64, one row
    per time bin; at most `cytokit.qc.apply.MAX_PLOT_BINS` = 2,000 rows, runs of
    bins merged by `cytokit.qc.apply.coarsen_bins` beyond that), ``acq:columns`` (their names: `cytokit.qc.AcquisitionQC.bins_frame`
    columns, signal columns of the ≤ 4 channels that departed most) and
    ``acq:time_unit``. `Results.qc_points`, `Results.donor_histogram` and
    `Results.acquisition_bins` read them.
``study.json``
    name, created, cytokit_version, root (the study folder, absolute), populations
    (name → gate path), threshold_parent, patients (id, stratum, donor_marker, donor_is, days),
    markers (donor, phenotype, clustering), counting (gate paths), qc
    (min_events, ci), strategy (source, digest), task (the store key),
    clustering (what was done, or an error), config (study.toml as read),
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
    dose with AUC and peak, PB series; empty below 3 patients), note.
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

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._io import atomic_write_bytes, atomic_write_text, frame_csv, restore_frame
from cytokit.analysis.tablesjson import check_index, invalidate_index, write_index
from cytokit.errors import CytokitError

__all__ = ["CLINICAL_TABLES", "TABLES", "Results", "conform", "load_results", "write_results"]

#: Table name -> columns, in the contract's order (clusters: whatever clustering gives).
TABLES: dict[str, tuple[str, ...]] = {
    "samples": (
        "patient", "day", "file", "stratum", "sample_type", "events", "channels",
        "fcs_version", "cytometer", "spillover", "count_method", "reference",
        "reference_events", "reference_per_ul", "sha256", "warnings", "nonfinite_events",
        "nonfinite_values", "donor_marker_check", "donor_marker_note", "events_before_qc",
        "events_after_qc", "qc_removed_rate", "qc_removed_signal", "qc_removed_margin",
        "qc_pct_removed", "qc_verdict", "qc_reason",
    ),
    "counts": (
        "patient", "day", "file", "population", "gate_path", "gate_id", "parent_path", "depth",
        "count", "parent_count", "pct_parent", "pct_total", "per_ul",
    ),
    "chimerism": (
        "patient", "day", "file", "stratum", "sample_type", "population", "gate_path", "events",
        "donor_events", "recipient_events", "donor_pct", "ci_low", "ci_high", "per_ul",
        "donor_per_ul", "recipient_per_ul", "status", "note",
    ),
    "thresholds": (
        "patient", "day", "file", "marker", "purpose", "parent", "threshold", "threshold_scale",
        "method", "donor_side", "recipient_mode", "donor_mode", "recipient_width", "k",
        "calibration_day", "note",
    ),
    "phenotype": (
        "patient", "day", "file", "population", "origin", "marker", "events", "median",
        "pct_positive", "threshold_scale",
    ),
    "trends": (),  # cytokit.analysis.trends.TREND_COLUMNS
    "cohort": (),  # cytokit.analysis.trends.COHORT_COLUMNS
    "infusions": ("patient", "day", "product", "dose_per_kg", "stratum"),
    "clusters": (),
    "cluster_summary": (),
    "cluster_matching": (),
    "failures": ("file", "patient", "day", "stage", "kind", "error", "reason"),
    "qc": (
        "patient", "day", "file", "sample", "gate_path", "gate_id", "parent_path", "kind",
        "dims", "geometry", "count", "parent_count", "n_points",
    ),
    "acquisition_qc": (
        "patient", "day", "file", "start", "end", "time_unit", "first_event", "events", "reasons",
        "detail",
    ),
}  # fmt: skip


def _fill_columns() -> None:
    from cytokit.analysis.trends import COHORT_COLUMNS, TREND_COLUMNS

    TABLES["trends"] = TREND_COLUMNS
    TABLES["cohort"] = COHORT_COLUMNS


_fill_columns()

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
    clusters, cluster_summary, cluster_matching, failures, qc, acquisition_qc : pandas.DataFrame
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
        """The acquisition-QC time bins of `file` (``bins_frame`` columns; see ``qc/*.npz``)."""
        values = self._qc_item(file, "acq:bins")
        columns = [str(c) for c in self._qc_item(file, "acq:columns")]
        frame = pd.DataFrame(values, columns=columns)
        frame["time_unit"] = str(self._qc_item(file, "acq:time_unit"))
        return frame

    def _qc_item(self, file: str, key: str) -> np.ndarray:
        if self.out is None:
            raise CytokitError("these results were not written to a folder; QC data is kept there")
        rows = self.samples[self.samples["file"] == file] if not self.samples.empty else None
        if rows is None or rows.empty:
            raise CytokitError(f"no sample {file!r} in the results at {self.out}")
        path = self.out / "qc" / f"{sample_id(file)}.npz"
        with np.load(path, allow_pickle=False) as data:
            if key not in data:
                raise CytokitError(
                    f"{path}: no item {key!r}; it has {', '.join(sorted(data.files))}"
                )
            return data[key]

    def __repr__(self) -> str:
        name = self.study.get("name", "")
        return (
            f"<Results {name!r}: {len(self.samples)} samples, {len(self.chimerism)} chimerism "
            f"rows, {len(self.failures)} failures>"
        )


def sample_id(file: str) -> str:
    """The QC file stem of a sample: its manifest path with separators replaced."""
    stem = str(file)
    if stem.lower().endswith(".fcs"):
        stem = stem[:-4]
    return "".join(c if c.isalnum() or c in "-_." else "__" for c in stem)


def conform(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """`frame` with `columns` first, in order (missing ones added empty), then any others."""
    if not columns:
        return frame
    missing = {c: pd.Series(dtype=object, index=frame.index) for c in columns if c not in frame}
    if missing:
        frame = frame.assign(**missing)
    return frame[list(columns) + [c for c in frame.columns if c not in columns]]


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


def write_results(results: Results, out: str | Path) -> Path:
    """Write every table of `results` and ``study.json`` into `out`, each atomically, and last
    their index ``tables.json`` (`cytokit.analysis.tablesjson`); the old index is removed first, so a
    stop half-way leaves none. A clinical table this analysis has none of is removed, so
    one an earlier run left (its study had outcomes.csv then) cannot pass for this one's."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    invalidate_index(out)
    index: dict[str, int | None] = {}
    for name, columns in TABLES.items():
        frame = getattr(results, name)
        atomic_write_bytes(out / f"{name}.csv", _csv_bytes(frame, columns))
        index[f"{name}.csv"] = len(frame)
    for name in CLINICAL_TABLES:
        if name in results.clinical:
            frame = results.clinical[name]
            atomic_write_bytes(out / f"{name}.csv", _csv_bytes(frame, ()))
            index[f"{name}.csv"] = len(frame)
        else:  # left by an earlier run (outcomes.csv since removed, or another study's)
            (out / f"{name}.csv").unlink(missing_ok=True)
    atomic_write_text(
        out / "study.json", json.dumps(results.study, indent=2, default=_json_default) + "\n"
    )
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


def _read_csv(path: Path, data: bytes) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            io.BytesIO(data), keep_default_na=True, dtype={"file": str, "patient": str}
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (UnicodeDecodeError, ValueError, OSError) as exc:  # pandas' ParserError is a ValueError
        raise _unreadable(path, "a CSV table", exc) from exc
    return restore_frame(frame)


def _read_study(path: Path, data: bytes) -> dict:
    try:
        study = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
        raise _unreadable(path, "JSON", exc) from exc
    if not isinstance(study, dict):
        raise _unreadable(path, "a JSON object", TypeError(f"it holds a {type(study).__name__}"))
    return study


def load_results(out: str | Path) -> Results:
    """Rebuild the `Results` of an analysis from its output folder.

    Text cells of the tables come back raw (the quote that neutralised a
    formula-like cell is removed, `cytokit._io.restore_cell`).

    Parameters
    ----------
    out : path
        A folder written by `cytokit.analyze` (``cytokit analyze --out``).

    Raises
    ------
    CytokitError
        The folder or its ``study.json`` / ``samples.csv`` is missing, or a
        file differs from the folder's index ``tables.json`` (or there is no
        index): `cytokit.analysis.tablesjson.check_index`; or a file is not what
        `cytokit.analyze` writes (not UTF-8, not CSV, a table without its
        columns, not a JSON object). The message names the file.
    """
    out = Path(out)
    if not (out / "study.json").is_file() or not (out / "samples.csv").is_file():
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
        path = out / f"{name}.csv"
        data = checked.get(f"{name}.csv")
        kw[name] = _read_csv(path, data) if data is not None else pd.DataFrame(columns=columns)
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
        name: _read_csv(out / f"{name}.csv", checked[f"{name}.csv"])
        for name in CLINICAL_TABLES
        if checked.get(f"{name}.csv") is not None
    }
    return Results(**kw)
