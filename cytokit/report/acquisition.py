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

from cytokit.analysis.results import Results
from cytokit.errors import CytokitError
from cytokit.qc.result import notes_besides
from cytokit.report._html import esc, figure
from cytokit.report.contents import ReportPlots

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

    bins = results.acquisition_bins(file)
    mine = results.acquisition_ranges(file)
    return figure_bytes(acquisition_figure(bins, mine, title=title), "png")


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


def acquisition_section(results: Results) -> str:
    """HTML of the acquisition-QC section (``""`` when no file went through QC).

    Files QC failed come first, open, with the plot that shows why; flagged
    (``warn``) files are open too, passed ones collapsed.
    """
    from cytokit.report.figures import acquisition_files

    files = acquisition_files(results)
    if not files:
        return ""
    plots = _PLOTS.get()
    reasons = _reasons(results)
    parts = ['<section id="acquisition-qc">', "<h2>Acquisition QC</h2>"]
    for file, verdict in files:
        said, advice = reasons.get(file, ("", ""))
        head = f"{esc(file)}: <b>{esc(verdict)}</b>: {esc(said)}"
        advice = f'<p class="meta">{esc(advice)}</p>' if advice else ""
        if plots is not None and file in plots.acquisition_missing:
            parts.append(f"<p>{head}; no plot: {esc(plots.acquisition_missing[file])}</p>")
            continue
        if plots is not None and file in plots.acquisition:
            png = plots.acquisition[file]
        else:
            try:
                png = _drawn_here(results, file, f"{file}: {verdict}")
            except (CytokitError, OSError, KeyError) as exc:
                parts.append(f"<p>{head}; no plot: {esc(exc)}</p>")
                continue
        caption = f"Event rate and signal of {file} over the acquisition; removed ranges shaded."
        if _without_time_bins(results, file):
            caption = f"{file} has no time bins to plot: the rate and signal checks did not run."
        state = "" if verdict == "pass" else " open"
        body = advice + figure(png, caption)
        parts.append(f"<details{state}><summary>{head}</summary>{body}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def _without_time_bins(results: Results, file: str) -> bool:
    try:
        return results.acquisition_bins(file).empty
    except (CytokitError, OSError, KeyError):
        return False


def nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty
