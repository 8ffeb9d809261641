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
import itertools

import numpy as np
import pandas as pd

from cytokit.errors import AcquisitionQCError
from cytokit.kernels.acquisition import compact_rows
from cytokit.qc.result import RATE, AcquisitionQC, by_departure, notes_besides
from cytokit.qc.scan import acquisition_qc
from cytokit.qc.settings import AcquisitionQCSettings
from cytokit.sample import Sample

__all__ = [
    "MAX_PLOT_BINS",
    "RANGE_COLUMNS",
    "RANGE_TYPES",
    "SUMMARY_COLUMNS",
    "SUMMARY_TYPES",
    "coarsen_bins",
    "file_record",
    "plot_bins",
    "plot_channels",
    "removed_events",
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
    "qc_notes",
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
    "qc_notes": "string",
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
#: Most time bins `plot_bins` stores per file (a 10-million-event file has about 50,000).
MAX_PLOT_BINS = 2000
#: Per-channel columns of the plot series that are the same in every bin.
_CONSTANT = ("level", "upper level", "cofactor")
#: Per-channel columns averaged on the channel's asinh scale, weighted by the bin's events.
_AVERAGED = ("mean", "low", "high", "upper")


def file_record(qc: AcquisitionQC) -> dict:
    """The plain values of a result: ``{"summary": {column: value}, "ranges": [row, ...]}``.

    ``summary`` holds `SUMMARY_COLUMNS` (events before and after QC, events
    removed per reason (None for a check that did not run), the % removed, the verdict and its
    reason, and the notes: what was not checked and why, channels left out, trends); ``ranges``
    one dict per flagged time range with `RANGE_COLUMNS` (start and end in
    seconds when the file has ``$TIMESTEP``, else in its time units).
    """
    s = qc.summary()
    summary = {
        "events_before_qc": int(s["events_before_qc"]),
        "events_after_qc": int(s["events_after_qc"]),
        **{
            f"qc_removed_{r}": None if s[f"qc_removed_{r}"] is None else int(s[f"qc_removed_{r}"])
            for r in ("rate", "signal", "margin")
        },
        "qc_pct_removed": None if s["qc_pct_removed"] is None else float(s["qc_pct_removed"]),
        "qc_verdict": s["qc_verdict"],
        "qc_reason": s["qc_reason"],
        "qc_notes": s["qc_notes"],
    }
    frame = qc.ranges_frame()
    ranges = [{k: r[k] for k in RANGE_COLUMNS} for r in frame.to_dict("records")]
    for r in ranges:
        r["start"], r["end"] = float(r["start"]), float(r["end"])
        r["first_event"], r["events"] = int(r["first_event"]), int(r["events"])
    return {"summary": summary, "ranges": ranges}


#: Channels whose per-bin signal is kept for the plot (those that departed most).
PLOT_CHANNELS = 4


def plot_bins(
    qc: AcquisitionQC, max_channels: int = PLOT_CHANNELS, max_bins: int = MAX_PLOT_BINS
) -> tuple[np.ndarray, np.ndarray, str]:
    """The per-bin series a plot of `qc` needs, small enough to store with the results.

    Parameters
    ----------
    qc : AcquisitionQC
    max_channels : int
        Signal columns are kept for the channels that departed most.
    max_bins : int
        At most this many rows: more time bins are merged by `coarsen_bins`.

    Returns
    -------
    values : ndarray of float64, shape (n_rows, n_columns)
        `AcquisitionQC.bins_frame` without its text columns, and only the
        signal columns of the `max_channels` channels that departed most from
        their stable level (all, when there are no more); at most `max_bins`
        rows (consecutive bins merged).
    columns : ndarray of str
        The column names.
    time_unit : str
    """
    bins = qc.bins_frame().select_dtypes("number")  # the text columns are not plotted
    if bins.empty or qc.bins is None:
        return np.zeros((0, 0)), np.array([], dtype=str), ""
    names = list(qc.bins.channels)
    if len(names) > max_channels:
        keep = set(plot_channels(qc)[:max_channels])
        names = [n for n in names if n in keep]
    skip = {f"{n} " for n in qc.bins.channels if n not in names}
    cols = [
        c for c in bins.columns if c != "time_unit" and not any(str(c).startswith(p) for p in skip)
    ]
    if "signal" not in qc.checks_run:  # no level was judged: none is drawn
        for n in names:
            bins[[f"{n} level", f"{n} upper level"]] = np.nan
    frame = coarsen_bins(bins[cols], names, max_bins)
    return frame.to_numpy(dtype=np.float64), np.array(cols, dtype=str), qc.bins.grid.unit


def plot_channels(qc: AcquisitionQC) -> list[str]:
    """The channels of `qc`'s bins in the order a plot keeps them: those the signal check
    flagged first, as the ranges' details name them (the one that departed most first),
    taking each range's in turn, so that a clog's and a drift's both show; then the
    others by `by_departure` (outside the bins flagged for the rate, then anywhere)."""
    b = qc.bins
    if b is None:
        return []
    # each range's channels in the order its detail names them, taken in turn across the
    # ranges; a range whose bins are not known (built by hand) names none
    lists = [[c for c, _, _ in b.signal_channels(*r.bins)] for r in qc.ranges if r.bins[0] >= 0]
    named = [n for row in itertools.zip_longest(*lists) for n in row if n is not None]
    named += [c for c, _, _ in b.signal_channels()]
    named = list(dict.fromkeys(named))
    rest = [n for n in by_departure(b.channels, b.z, (b.bits & RATE) == 0) if n not in named]
    return named + rest


def coarsen_bins(bins: pd.DataFrame, channels: list[str], max_bins: int) -> pd.DataFrame:
    """Merge runs of consecutive time bins so that at most `max_bins` rows are left.

    Each row of the result covers ``g = ceil(n / max_bins)`` bins (the last
    one fewer): ``start`` of its first and ``end`` of its last bin,
    ``first_event`` of its first, ``events`` and ``expected`` summed (so the
    rate, events over the row's time, is the bins' pooled rate), ``rate_z``
    and each ``<channel> z`` the bins' value furthest from 0, each
    ``<channel> mean/low/high/upper`` the bins' mean on the channel's asinh
    scale (``asinh(x / cofactor)``) weighted by their events, and the
    channel's levels and cofactor as they are. ``bin`` is the first merged
    bin's number. Nothing changes when there are at most `max_bins` bins.
    """
    n = len(bins)
    if max_bins < 1:
        raise ValueError(f"max_bins = {max_bins}; give at least 1")
    if n <= max_bins:
        return bins
    g = -(-n // max_bins)
    starts = np.arange(0, n, g)
    out: dict[str, np.ndarray] = {}
    events = bins["events"].to_numpy(np.float64) if "events" in bins else np.ones(n)

    def first(col):
        return bins[col].to_numpy()[starts]

    def furthest(col):
        v = bins[col].to_numpy(np.float64)
        a = np.where(np.isfinite(v), np.abs(v), -1.0)
        idx = np.arange(n)
        group = idx // g
        # the index of each group's largest |v|: sort by (group, |v|) and take each group's last
        order = np.lexsort((a, group))
        last = np.r_[starts[1:], n] - 1
        pick = order[last]
        return np.where(a[pick] >= 0, v[pick], np.nan)

    per_channel = {f"{c} {s}" for c in channels for s in (*_CONSTANT, *_AVERAGED, "z")}
    for col in bins.columns:
        name = str(col)
        if name in ("bin", "start", "first_event"):
            out[col] = first(col)
        elif name == "end":
            out[col] = bins[col].to_numpy()[np.r_[starts[1:], n] - 1]
        elif name in ("events", "expected"):
            out[col] = np.add.reduceat(bins[col].to_numpy(np.float64), starts)
        elif name == "rate_z" or (name in per_channel and name.endswith(" z")):
            out[col] = furthest(col)
        elif name in per_channel and name.endswith(_CONSTANT):
            out[col] = first(col)
        elif name in per_channel:
            chan = next(c for c in channels if name.startswith(f"{c} "))
            cof = bins[f"{chan} cofactor"].to_numpy(np.float64)
            y = np.arcsinh(bins[col].to_numpy(np.float64) / cof)
            w = np.where(np.isfinite(y), events, 0.0)
            sw = np.add.reduceat(w, starts)
            sy = np.add.reduceat(np.where(w > 0, y, 0.0) * w, starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                mu = np.where(sw > 0, sy / sw, np.nan)
            out[col] = first(f"{chan} cofactor") * np.sinh(mu)
        else:
            raise ValueError(f"coarsen_bins: no rule to merge column {name!r}")
    return pd.DataFrame(out, columns=bins.columns)


def screen(
    sample: Sample,
    settings: AcquisitionQCSettings,
    where: str | None = None,
    *,
    in_place: bool = False,
    keep_removed: bool = False,
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
    in_place : bool
        The caller owns ``sample.events`` and no longer needs the removed
        events: the kept rows are moved to the front of that array
        (`cytokit.kernels.acquisition.compact_rows`) and the result's events
        are a view of them, so no second copy of a large file is made.
        ``sample`` itself must not be used afterwards. An array that cannot be
        written (a memory map) is copied as without it.
    keep_removed : bool
        With `in_place`: the removed rows are not lost but follow the kept
        ones, in file order (``sample.events[kept.n_events:]``), for a caller
        that reads what a removed time range held (`removed_events`). It costs
        a copy of the removed rows only.

    Returns
    -------
    kept : Sample
        `sample` itself when nothing is removed, else the kept events (a copy,
        or with `in_place` a view of the front of ``sample.events``).
    qc : AcquisitionQC

    Raises
    ------
    ValueError
        ``settings.enabled`` is False (QC is off: nothing to screen).
    AcquisitionQCError
        The verdict is ``fail``: the message names the file, the % removed by
        reason and the limit, and how to proceed. A failed file gives no numbers;
        the error's ``qc`` attribute is its `AcquisitionQC` (to show why).
    """
    if not settings.enabled:
        # settings read from a study's table that turns QC off: screening would fail files
        # the study does not check at all
        raise ValueError(
            "screen: these settings have enabled = False (acquisition QC off); skip the "
            "screen, or pass settings with enabled=True to check the file"
        )
    qc = acquisition_qc(sample, settings)
    if qc.verdict == "fail":
        name = where or (str(sample.path) if sample.path is not None else sample.name)
        error = AcquisitionQCError(f"{name}: acquisition QC failed: {_failure(qc)}")
        error.qc = qc  # the result behind the verdict, for the caller's tables and plots
        raise error
    if qc.n_removed == 0:
        return sample, qc
    ev = sample.events
    if in_place and ev.flags.writeable and ev.flags.c_contiguous:
        gone = np.compress(~qc.keep, ev, axis=0) if keep_removed else None
        m = compact_rows(ev, qc.reasons)
        if gone is not None:
            ev[m:] = gone
        kept = ev[:m]
    else:
        kept = np.compress(qc.keep, ev, axis=0)
    return dataclasses.replace(sample, events=kept), qc


def removed_events(events: np.ndarray, kept: Sample, qc: AcquisitionQC) -> np.ndarray:
    """The rows `screen` removed, in file order (a view or a copy; none where it removed
    nothing).

    `events` is the array the screened sample held (``sample.events`` before
    the call) and `kept`, `qc` what `screen` returned; with ``in_place`` the
    call must have had ``keep_removed`` (without it the rows after the kept
    ones are not the removed ones). Read them before the kept events are
    changed in place again.
    """
    if qc.n_removed == 0:
        return events[:0]
    m = kept.n_events
    if np.shares_memory(kept.events, events):  # compacted in place: they follow the kept rows
        if m + qc.n_removed != events.shape[0]:
            raise ValueError("removed_events: the kept and removed rows do not fill the array")
        return events[m:]
    return np.compress(~qc.keep, events, axis=0)


def _failure(qc: AcquisitionQC) -> str:
    """Why a file failed and what to do: the verdict's reason, the way out, QC's notes."""
    if qc.n_events == 0:
        return (
            "the file has no events, so there is nothing to analyse. Export the acquisition "
            "again, or leave the file out"
        )
    if 2 * qc.removed_by["margin"] >= qc.n_removed:
        # most of it is margin events: a detector at its limit, or values not measured
        how = (
            "Most are margin events (at a detector's limit, or values not measured) in "
            "the channels named; a channel the analysis does not need can be left out "
            "of QC (cytokit gate: --qc-exclude CHANNEL; a study: [acquisition_qc] "
            "exclude_channels in study.toml)"
        )
    else:
        how = "Look at the file's acquisition (clogs, bubbles, a drifting signal)"
    raise_max = (
        "; if the removed events are fine to lose, raise the limit (cytokit gate: "
        "--qc-max-removed; a study: [acquisition_qc] max_removed_pct in study.toml)"
        if qc.n_removed < qc.n_events
        else ""
    )
    # what else QC noted (a likely wrong $TIMESTEP, a channel taken for a clock) may be
    # what explains the failure: the failure says it, as samples.csv's qc_notes would
    notes = notes_besides((*qc.notes, *qc.flat, *qc.trends), qc.verdict_reason)
    noted = f". QC notes: {'; '.join(notes)}" if notes else ""
    return f"{qc.verdict_reason}. {how}{raise_max}{noted}"
