"""The plots and ``report.html`` of a study analysis, rebuilt from its stored results.

`cytokit.report.build`
    `build_report`: read a results folder, write ``plots/`` and ``report.html``.
`cytokit.report.figures`
    `write_plots`: every figure of the report, rendered in worker processes.
`cytokit.report.page`
    `report_html`: the page, cohort summary first, a section per patient.
`cytokit.report.tables`
    The HTML tables of the page.
`cytokit.report.contents`
    What both the figures and the page read from `Results` (patients,
    populations, clustering tables) and `ReportPlots`, the rendered figures.

The names below load on first use (they import pandas and matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cytokit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from cytokit.report.build import REQUIRED_FILES, build_report, check_results_dir
    from cytokit.report.contents import ReportPlots
    from cytokit.report.figures import write_plots

_LAZY = {
    "REQUIRED_FILES": ".build",
    "ReportPlots": ".contents",
    "build_report": ".build",
    "check_results_dir": ".build",
    "write_plots": ".figures",
}

__all__ = ["REQUIRED_FILES", "ReportPlots", "build_report", "check_results_dir", "write_plots"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
