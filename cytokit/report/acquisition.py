"""The report's acquisition-QC section: per file the verdict, and a plot of the acquisition.

`acquisition_section` renders it from stored results (samples.csv's QC
columns, acquisition_qc.csv and the ``acq:*`` arrays of ``qc/<sample>.npz``):
one line per file with its verdict, % removed and reason, and the figure of
`cytokit.plots.acquisition.acquisition_figure` (event rate and each
channel's signal over time, removed ranges shaded), open when the file was
flagged (``warn``) and collapsed when it passed. Files QC failed
(``failures.csv``, stage ``acquisition_qc``) come first, open, with what to
do and the plot of why (their ``qc/<sample>.npz``). Empty without
acquisition QC.

Within `drawn_figures` (the report's build) the figures are those
`cytokit.report.figures.write_plots` drew and keeps from build to build
(``plots/acquisition/<sample>.png``); elsewhere each is drawn here.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import pandas as pd

from cytokit._numbers import pct_text
from cytokit.analysis.results import Results
from cytokit.errors import CytokitError
from cytokit.qc.apply import PLOT_CHANNELS
from cytokit.qc.result import notes_besides
from cytokit.report._html import Markup, esc, figure, fmt, is_number, table
from cytokit.report.contents import ReportPlots
from cytokit.report.tables import qc_anchor

__all__ = ["acquisition_section", "drawn_figures"]

_PLOTS: contextvars.ContextVar[ReportPlots | None] = contextvars.ContextVar("_PLOTS", default=None)


@contextlib.contextmanager
def drawn_figures(plots: ReportPlots) -> Iterator[None]:
    """Within the block, `acquisition_section` shows the figures of `plots`."""
    token = _PLOTS.set(plots)
    try:
        yield
    finally:
        _PLOTS.reset(token)


def _drawn_here(results: Results, file: str, title: str):
    from cytokit.plots._figure import figure_bytes
    from cytokit.plots.acquisition import acquisition_figure
    from cytokit.report.figures import _no_bins_why

    bins = results.acquisition_bins(file)
    mine = results.acquisition_ranges(file)
    why = _no_bins_why(results, file) if bins.empty else ""
    return figure_bytes(acquisition_figure(bins, mine, title=title, why=why), "png")


def _reasons(results: Results) -> dict[str, tuple[str, str]]:
    """Each QC'd file's ``(verdict reason, advice)``: a sample's ``qc_reason`` and its
    ``qc_notes``; a failed file's failure reason split after "…% allowed" (`cytokit.qc.screen`
    writes the verdict's reason, then what to do and QC's notes)."""
    out = {}
    f = results.failures
    if nonempty(f) and "stage" in f:
        for _, r in f[f["stage"] == "acquisition_qc"].iterrows():
            text = str(r["reason"]).removeprefix("acquisition QC failed: ")
            said, sep, advice = text.partition(" allowed. ")
            out[str(r["file"])] = (said + " allowed", advice) if sep else (text, "")
    s = results.samples
    if nonempty(s) and "qc_reason" in s:
        notes = s["qc_notes"] if "qc_notes" in s else [None] * len(s)
        for file, reason, note in zip(s["file"], s["qc_reason"], notes, strict=True):
            # what QC noted besides its verdict (a likely wrong $TIMESTEP, a second clock);
            # a check that did not run is in the reason already
            parts = notes_besides(note.split("; ") if isinstance(note, str) else [], reason)
            said = f"QC notes: {'; '.join(parts)}" if parts else ""
            out.setdefault(str(file), (str(reason), said))
    return out


def _summary(results: Results, file: str) -> dict:
    """`Results.acquisition_summary` of `file`, ``{}`` where it has none."""
    try:
        return results.acquisition_summary(file)
    except (CytokitError, OSError, KeyError):
        return {}


def _summary_table(files: list[tuple[str, str]], summaries: dict[str, dict]) -> str:
    """One row per file: verdict (linked to its entry below), events kept of the file's,
    removed by reason and in all (`Results.acquisition_summary`)."""
    rows = []
    for file, verdict in files:
        r = summaries[file]
        link = Markup(f'<a href="#{qc_anchor(file)}">{esc(file)}</a>')
        kept = fmt(r.get("events_after_qc"), integer=True)
        if is_number(r.get("events_before_qc")):
            kept += f" of {fmt(r.get('events_before_qc'), integer=True)}"
        pct = r.get("qc_pct_removed")
        by = [fmt(r.get(f"qc_removed_{k}"), integer=True) for k in ("rate", "signal", "margin")]
        pct_cell = f"{pct_text(pct)} %" if is_number(pct) else "–"
        if verdict == "fail":  # a failed file goes on to no count: nothing is kept
            kept = "none (failed)"
            if r.get("events_before_qc") is None:  # no figures kept
                kept, pct_cell = "–", "see below"
        rows.append([link, verdict, kept, *by, pct_cell])
    return table(
        ["file", "verdict", "events kept", "rate", "signal", "margin", "removed"],
        rows,
        caption=(
            "Each file's verdict and events removed by reason (an event may count for "
            "more than one reason; – where a check did not run); failed files first, "
            "then those QC warned about"
        ),
        numeric=[False, False, True, True, True, True, True],
    )


def acquisition_section(results: Results) -> str:
    """HTML of the acquisition-QC section (``""`` when no file went through QC).

    A table of every file's verdict and removals first; then per file its entry (id
    `qc_anchor`): files QC failed first, open, with the plot that shows why; flagged
    (``warn``) files next, open too; passed ones last, collapsed.
    """
    from cytokit.report.figures import acquisition_files

    files = acquisition_files(results)
    if not files:
        return ""
    order = {"fail": 0, "warn": 1}
    files = sorted(files, key=lambda fv: order.get(fv[1], 2))  # stable: file order within
    plots = _PLOTS.get()
    reasons = _reasons(results)
    summaries = {file: _summary(results, file) for file, _ in files}
    parts = ['<section id="acquisition-qc">', "<h2>Acquisition QC</h2>"]
    parts.append(_summary_table(files, summaries))
    for file, verdict in files:
        said, advice = reasons.get(file, ("", ""))
        anchor = qc_anchor(file)
        head = f"{esc(file)}: <b>{esc(verdict)}</b>: {esc(said)}"
        advice = f'<p class="meta">{esc(advice)}</p>' if advice else ""
        if plots is not None and file in plots.acquisition_missing:
            missing = esc(plots.acquisition_missing[file])
            parts.append(f'<p id="{anchor}">{head}; no plot: {missing}</p>')
            continue
        if plots is not None and file in plots.acquisition:
            png = plots.acquisition[file]
        else:
            try:
                png = _drawn_here(results, file, f"{file}: {verdict}")
            except (CytokitError, OSError, KeyError) as exc:
                parts.append(f'<p id="{anchor}">{head}; no plot: {esc(exc)}</p>')
                continue
        caption = _caption(results, file, summaries[file])
        state = "" if verdict == "pass" else " open"
        body = advice + figure(png, caption) + _ranges_table(results, file)
        parts.append(f'<details id="{anchor}"{state}><summary>{head}</summary>{body}</details>')
    parts.append("</section>")
    return "\n".join(parts)


def _ranges_table(results: Results, file: str) -> str:
    """The time ranges QC removed in `file` and why (``acquisition_qc.csv``'s rows, or a
    failed file's own from its ``qc/<sample>.npz``); ``""`` where it removed none."""
    try:
        ranges = results.acquisition_ranges(file)
    except (CytokitError, OSError, KeyError):
        return ""
    if ranges.empty:
        return ""
    rows = []
    for _, r in ranges.iterrows():
        unit = str(r.get("time_unit") or "")
        span = f"{float(r['start']):.10g}–{float(r['end']):.10g}"  # as the CSV has them
        rows.append([f"{span} {unit}".strip(), fmt(r.get("events"), integer=True),
                     str(r["reasons"]), str(r.get("detail") or "")])  # fmt: skip
    return table(
        ["time", "events", "removed for", "what QC saw"],
        rows,
        caption=(
            f"The time ranges QC found in {file}, which failed QC as a whole and is not in "
            "acquisition_qc.csv (Results.acquisition_ranges gives them)"
            if file in results.qc_failed_files()
            else f"The time ranges removed from {file}, as acquisition_qc.csv lists them"
        ),
        numeric=[True, True, False, False],  # a time range is not cut at its dash
    )


def _caption(results: Results, file: str, summary: dict) -> str:
    """What the figure of `file` shows, and what it cannot: margin events are single
    events, not time ranges; only the channels that departed most are kept with the
    results (`cytokit.qc.apply.plot_bins`)."""
    try:
        bins = results.acquisition_bins(file)
    except (CytokitError, OSError, KeyError):
        bins = None
    if bins is not None and bins.empty:
        return f"{file} has no time bins to plot: the rate and signal checks did not run."
    text = f"Event rate and signal of {file} over the acquisition; removed ranges shaded"
    if bins is not None:
        shown = sum(str(c).endswith(" mean") for c in bins.columns)
        some = f"{shown} channel{'s' if shown != 1 else ''}"
        kept = shown == PLOT_CHANNELS
        most = f"at most {PLOT_CHANNELS} are kept with the results" if kept else ""
        signal = summary.get("qc_removed_signal")
        if not is_number(signal):
            text += f"; the signal per bin of {some}, not judged (the signal check did not run)"
        elif not signal:
            # nothing flagged: the panels are the channels that departed most, no more
            why = "; ".join(x for x in ("the signal check removed nothing", most) if x)
            text += (
                f"; the signal of the {some} whose signal departed most from its stable "
                f"level ({why})"
            )
        else:
            text += (
                f"; the signal of {some}: first those the signal check flagged, as the "
                "ranges below name them, then those whose signal departed most from its "
                "stable level" + (f" ({most})" if most else "")
            )
        text += "; channel values on an asinh scale, the line a bin's mean, the band ± 1 SD"
    margin = summary.get("qc_removed_margin")
    if is_number(margin) and margin:
        text += (
            f"; {fmt(margin, integer=True)} margin events removed, each on its own (at the "
            "top or the floor of a channel), so not shaded"
        )
    return text + "."


def nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty
