"""Acquisition QC as a step of gating: screen a sample in memory, keep its good events.

`screen` is what every door that gates a file calls when acquisition QC is on
(`cytokit.analyze`'s per-sample measurement, `cytokit gate`, `Study.gate`):
it runs `acquisition_qc` on the events already read, fails the file when the
verdict is ``fail`` and returns the sample without the removed events, so one
file gives one answer whichever door it goes through, and the file is read
once.

`file_record` turns the result into the plain values a run store keeps (the
samples-table columns and the flagged ranges).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cytokit.errors import FCSError
from cytokit.qc.result import AcquisitionQC
from cytokit.qc.scan import acquisition_qc
from cytokit.qc.settings import AcquisitionQCSettings
from cytokit.sample import Sample

__all__ = [
    "RANGE_COLUMNS",
    "RANGE_TYPES",
    "SUMMARY_COLUMNS",
    "SUMMARY_TYPES",
    "file_record",
    "plot_bins",
    "screen",
]

#: Per-file columns (samples.csv, the gate tables), in order.
SUMMARY_COLUMNS = (
    "events_before_qc",
    "events_after_qc",
    "qc_removed_rate",
    "qc_removed_signal",
    "qc_removed_margin",
    "qc_pct_removed",
    "qc_verdict",
    "qc_reason",
)
#: Columns of a flagged time range (acquisition_qc.csv, after the file's keys).
RANGE_COLUMNS = ("start", "end", "time_unit", "first_event", "events", "reasons", "detail")
#: Column types of `SUMMARY_COLUMNS` and `RANGE_COLUMNS` (`cytokit.parquet`): event counts
#: may be missing (a table row of a file without QC), a percentage is real, the rest text.
SUMMARY_TYPES = {
    "events_before_qc": "Int64",
    "events_after_qc": "Int64",
    "qc_removed_rate": "Int64",
    "qc_removed_signal": "Int64",
    "qc_removed_margin": "Int64",
    "qc_pct_removed": "float64",
    "qc_verdict": "string",
    "qc_reason": "string",
}
RANGE_TYPES = {
    "start": "float64",
    "end": "float64",
    "time_unit": "string",
    "first_event": "int64",
    "events": "int64",
    "reasons": "string",
    "detail": "string",
}


def file_record(qc: AcquisitionQC) -> dict:
    """The plain values of a result: ``{"summary": {column: value}, "ranges": [row, ...]}``.

    ``summary`` holds `SUMMARY_COLUMNS` (events before and after QC, events
    removed per reason, the % removed, the verdict and its reason); ``ranges``
    one dict per flagged time range with `RANGE_COLUMNS` (start and end in
    seconds when the file has ``$TIMESTEP``, else in its time units).
    """
    s = qc.summary()
    summary = {
        "events_before_qc": int(s["qc_events_before"]),
        "events_after_qc": int(s["qc_events_after"]),
        "qc_removed_rate": int(s["qc_removed_rate"]),
        "qc_removed_signal": int(s["qc_removed_signal"]),
        "qc_removed_margin": int(s["qc_removed_margin"]),
        "qc_pct_removed": float(s["qc_pct_removed"]),
        "qc_verdict": s["qc_verdict"],
        "qc_reason": s["qc_reason"],
    }
    frame = qc.ranges_frame()
    ranges = [{k: r[k] for k in RANGE_COLUMNS} for r in frame.to_dict("records")]
    for r in ranges:
        r["start"], r["end"] = float(r["start"]), float(r["end"])
        r["first_event"], r["events"] = int(r["first_event"]), int(r["events"])
    return {"summary": summary, "ranges": ranges}


def plot_bins(qc: AcquisitionQC, max_channels: int = 4) -> tuple[np.ndarray, np.ndarray, str]:
    """The per-bin series a plot of `qc` needs, small enough to store with the results.

    Returns
    -------
    values : ndarray of float64, shape (n_bins, n_columns)
        `AcquisitionQC.bins_frame` without its text columns, and only the
        signal columns of the `max_channels` channels that departed most from
        their stable level (all, when there are no more).
    columns : ndarray of str
        The column names.
    time_unit : str
    """
    bins = qc.bins_frame().select_dtypes("number")  # the text columns are not plotted
    if bins.empty or qc.bins is None:
        return np.zeros((0, 0)), np.array([], dtype=str), ""
    names = list(qc.bins.channels)
    if len(names) > max_channels:
        score = {
            n: float(np.nanmax(np.abs(bins[f"{n} z"].to_numpy(float)), initial=0)) for n in names
        }
        keep = set(sorted(names, key=lambda n: -score[n])[:max_channels])
        names = [n for n in names if n in keep]
    skip = {f"{n} " for n in qc.bins.channels if n not in names}
    cols = [
        c for c in bins.columns if c != "time_unit" and not any(str(c).startswith(p) for p in skip)
    ]
    return bins[cols].to_numpy(dtype=np.float64), np.array(cols, dtype=str), qc.bins.grid.unit


def screen(
    sample: Sample, settings: AcquisitionQCSettings, where: str | None = None
) -> tuple[Sample, AcquisitionQC]:
    """Acquisition QC of `sample` and the sample without the events it removes.

    Parameters
    ----------
    sample : Sample
        As read (every event of the file, in acquisition order).
    settings : AcquisitionQCSettings
        The checks, sensitivity and the % removed above which the file fails.
    where : str, optional
        How to name the file in an error (default: its path, else its name).

    Returns
    -------
    kept : Sample
        `sample` itself when nothing is removed, else a copy of the kept events.
    qc : AcquisitionQC

    Raises
    ------
    FCSError
        The verdict is ``fail``: the message names the file, the % removed by
        reason and the limit, and how to proceed. A failed file gives no numbers.
    """
    qc = acquisition_qc(sample, settings)
    if qc.verdict == "fail":
        name = where or (str(sample.path) if sample.path is not None else sample.name)
        raise FCSError(
            f"{name}: acquisition QC failed: {qc.verdict_reason}. Look at the file's "
            "acquisition (clogs, bubbles, a drifting signal); if the removed events are fine "
            "to lose, raise [acquisition_qc] max_removed_pct in study.toml "
            "(cytokit gate: --qc-max-removed)"
        )
    if qc.n_removed == 0:
        return sample, qc
    kept = np.compress(qc.keep, sample.events, axis=0)
    return dataclasses.replace(sample, events=kept), qc
