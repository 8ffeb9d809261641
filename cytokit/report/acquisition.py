"""The report's acquisition-QC section: per file the verdict, and a plot of the acquisition.

`acquisition_section` renders it from stored results (samples.csv's QC
columns, acquisition_qc.csv and the ``acq:*`` arrays of ``qc/<sample>.npz``):
one line per file with its verdict, % removed and reason, and the figure of
`cytokit.plots.acquisition.acquisition_figure` (event rate and each
channel's signal over time, removed ranges shaded), open when the file was
flagged (``warn``) and collapsed when it passed. Empty without acquisition QC.
"""

from __future__ import annotations

import pandas as pd

from cytokit.analysis.results import Results
from cytokit.errors import CytokitError
from cytokit.plots._figure import figure_bytes
from cytokit.report._html import esc, figure

__all__ = ["acquisition_section"]


def acquisition_section(results: Results) -> str:
    """HTML of the acquisition-QC section (``""`` when no file went through QC)."""
    from cytokit.plots.acquisition import acquisition_figure

    s = results.samples
    if s is None or s.empty or "qc_verdict" not in s or s["qc_verdict"].isna().all():
        return ""
    ranges = results.acquisition_qc
    parts = ['<section id="acquisition-qc">', "<h2>Acquisition QC</h2>"]
    for _, r in s[s["qc_verdict"].notna()].iterrows():
        file = str(r["file"])
        verdict = str(r["qc_verdict"])
        head = f"{esc(file)}: <b>{esc(verdict)}</b>: {esc(r['qc_reason'])}"
        mine = ranges[ranges["file"] == file] if nonempty(ranges) else None
        try:
            bins = results.acquisition_bins(file)
        except (CytokitError, OSError, KeyError) as exc:
            parts.append(f"<p>{head}; no plot: {esc(exc)}</p>")
            continue
        fig = acquisition_figure(bins, mine, title=f"{file}: {verdict}")
        caption = f"Event rate and signal of {file} over the acquisition; removed ranges shaded."
        state = "" if verdict == "pass" else " open"
        parts.append(
            f"<details{state}><summary>{head}</summary>{figure(figure_bytes(fig, 'png'), caption)}</details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty
