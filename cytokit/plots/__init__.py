"""Plots of a study analysis: persistence, chimerism, the cohort, and QC of every gate.

Every function takes the results tables (pandas DataFrames with the columns
of the results contract, `cytokit.analysis.results`) and returns a
`matplotlib.figure.Figure` on its own Agg canvas (no pyplot, no global
state). `save_figure` writes PNG and SVG atomically and deterministically.
The QC plots are drawn without matplotlib: `qc_panels` returns a `QCFigure`,
2-D histograms as a PNG under an SVG of the axes and gates.

Typical use::

    from cytokit import plots
    from cytokit.analysis import load_results

    r = load_results("results/")
    fig = plots.persistence_figure(r.chimerism, "P01", samples=r.samples,
                                   infusions=r.infusions, trends=r.trends)
    plots.save_figure(fig, "results/plots/P01_persistence")   # .png and .svg
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cytokit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from cytokit.plots._figure import figure_bytes, mark_infusions, new_figure, save_figure
    from cytokit.plots._words import MEASURES, format_dose
    from cytokit.plots.acquisition import acquisition_figure
    from cytokit.plots.cohort import cohort_figure, stratum_colours
    from cytokit.plots.persistence import (
        chimerism_figure,
        measure_points,
        persistence_figure,
        poisson_interval,
    )
    from cytokit.plots.qc import QCFigure, gate_histograms, gate_panels, qc_panels

# Names load on first use: the QC plots (`qc_panels`) need neither matplotlib nor
# anything of the other figures, so a process drawing only those does not import them.
_LAZY = {
    "figure_bytes": "._figure",
    "format_dose": "._words",
    "mark_infusions": "._figure",
    "new_figure": "._figure",
    "save_figure": "._figure",
    "acquisition_figure": ".acquisition",
    "cohort_figure": ".cohort",
    "stratum_colours": ".cohort",
    "MEASURES": "._words",
    "chimerism_figure": ".persistence",
    "measure_points": ".persistence",
    "persistence_figure": ".persistence",
    "poisson_interval": ".persistence",
    "QCFigure": ".qc",
    "gate_histograms": ".qc",
    "gate_panels": ".qc",
    "qc_panels": ".qc",
}

__all__ = [
    "MEASURES",
    "QCFigure",
    "acquisition_figure",
    "chimerism_figure",
    "cohort_figure",
    "figure_bytes",
    "format_dose",
    "gate_histograms",
    "gate_panels",
    "mark_infusions",
    "measure_points",
    "new_figure",
    "persistence_figure",
    "poisson_interval",
    "qc_panels",
    "save_figure",
    "stratum_colours",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
