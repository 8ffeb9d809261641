"""`Results`: the tables of a study analysis, written to and read back from its output folder.

The folder layout and every table's columns are described in
`cytokit.analysis` (the results contract). `write_results` writes each table
atomically, then the folder's index ``tables.json`` (`cytokit.tablesjson`);
`load_results` checks every file against that index, then rebuilds a
`Results` from the folder alone (no FCS files, no study folder), which is
what ``cytokit report`` and notebooks use.
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
from cytokit.errors import CytokitError
from cytokit.tablesjson import check_index, invalidate_index, write_index

__all__ = ["TABLES", "Results", "conform", "load_results", "write_results"]

#: Table name -> columns, in the contract's order (clusters: whatever clustering gives).
TABLES: dict[str, tuple[str, ...]] = {
    "samples": (
        "patient", "day", "file", "stratum", "sample_type", "events", "channels",
        "fcs_version", "cytometer", "spillover", "count_method", "reference",
        "reference_events", "reference_per_ul", "sha256", "warnings", "nonfinite_events",
        "nonfinite_values", "donor_marker_check", "donor_marker_note",
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
    "trends": (),  # cytokit.trends.TREND_COLUMNS
    "cohort": (),  # cytokit.trends.COHORT_COLUMNS
    "infusions": ("patient", "day", "product", "dose_per_kg", "stratum"),
    "clusters": (),
    "cluster_summary": (),
    "cluster_matching": (),
    "failures": ("file", "patient", "day", "stage", "kind", "error", "reason"),
    "qc": (
        "patient", "day", "file", "sample", "gate_path", "gate_id", "parent_path", "kind",
        "dims", "geometry", "count", "parent_count", "n_points",
    ),
}  # fmt: skip


def _fill_columns() -> None:
    from cytokit.trends import COHORT_COLUMNS, TREND_COLUMNS

    TABLES["trends"] = TREND_COLUMNS
    TABLES["cohort"] = COHORT_COLUMNS


_fill_columns()


@dataclass
class Results:
    """What `cytokit.analyze` produced (see `cytokit.analysis` for every column).

    Attributes
    ----------
    study : dict
        ``study.json``: name, populations, patients, markers, strategy, config.
    samples, counts, chimerism, thresholds, phenotype, trends, cohort, infusions,
    clusters, cluster_summary, cluster_matching, failures, qc : pandas.DataFrame
    out : Path or None
        The folder the results were written to.
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
    out: Path | None = None

    def qc_points(self, file: str, gate_id: str) -> np.ndarray:
        """The QC subsample of `gate_id`'s parent events in `file` (float32, (n, n_dims))."""
        return self._qc_item(file, f"gate:{gate_id}")

    def donor_histogram(self, file: str, name: str = "__parent__"):
        """The donor-marker `Histogram` of the threshold parent (or population `name`) in `file`."""
        from cytokit.stats.density import Histogram

        return Histogram.from_array(self._qc_item(file, f"hist:{name}"))

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
    their index ``tables.json`` (`cytokit.tablesjson`); the old index is removed first, so a
    stop half-way leaves none."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    invalidate_index(out)
    index: dict[str, int | None] = {}
    for name, columns in TABLES.items():
        frame = getattr(results, name)
        atomic_write_bytes(out / f"{name}.csv", _csv_bytes(frame, columns))
        index[f"{name}.csv"] = len(frame)
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
        index): `cytokit.tablesjson.check_index`; or a file is not what
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
    return Results(**kw)
