"""The report's acquisition-QC section: per file the verdict, and a plot of the acquisition.

`acquisition_section` renders it from stored results (samples.csv's QC
columns, acquisition_qc.csv and the ``acq:*`` arrays of ``qc/<sample>.npz``):
one line per file with its verdict, % removed and reason, and the figure of
`cytokit.plots.acquisition.acquisition_figure` (event rate and each
channel's signal over time, removed ranges shaded), open when the file was
flagged (``warn``) and collapsed when it passed. Empty without acquisition QC.

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


def _drawn_here(results: Results, file: str, mine, title: str):
    from cytokit.plots._figure import figure_bytes
    from cytokit.plots.acquisition import acquisition_figure

    bins = results.acquisition_bins(file)
    return figure_bytes(acquisition_figure(bins, mine, title=title), "png")


def acquisition_section(results: Results) -> str:
    """HTML of the acquisition-QC section (``""`` when no file went through QC)."""
    s = results.samples
    if s is None or s.empty or "qc_verdict" not in s or s["qc_verdict"].isna().all():
        return ""
    plots = _PLOTS.get()
    ranges = results.acquisition_qc
    parts = ['<section id="acquisition-qc">', "<h2>Acquisition QC</h2>"]
    for _, r in s[s["qc_verdict"].notna()].iterrows():
        file = str(r["file"])
        verdict = str(r["qc_verdict"])
        head = f"{esc(file)}: <b>{esc(verdict)}</b>: {esc(r['qc_reason'])}"
        if plots is not None and file in plots.acquisition_missing:
            parts.append(f"<p>{head}; no plot: {esc(plots.acquisition_missing[file])}</p>")
            continue
        if plots is not None and file in plots.acquisition:
            png = plots.acquisition[file]
        else:
            mine = ranges[ranges["file"] == file] if nonempty(ranges) else None
            try:
                png = _drawn_here(results, file, mine, f"{file}: {verdict}")
            except (CytokitError, OSError, KeyError) as exc:
                parts.append(f"<p>{head}; no plot: {esc(exc)}</p>")
                continue
        caption = f"Event rate and signal of {file} over the acquisition; removed ranges shaded."
        state = "" if verdict == "pass" else " open"
        parts.append(f"<details{state}><summary>{head}</summary>{figure(png, caption)}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty
