"""The study analysis: per-sample measurements, per-patient and cohort tables, the results.

`cytokit.analysis.run`
    `analyze`: check the study, run the per-sample task on every file, build
    and write the tables.
`cytokit.analysis.per_sample`
    `MeasureTask`: everything measured on one FCS file (counts, donor-marker
    histograms, phenotype values, QC data), run by `cytokit.engine`.
`cytokit.analysis.per_patient`
    One patient's tables from its samples' payloads: counting, donor-marker
    check and thresholds, chimerism, phenotype, QC.
`cytokit.analysis.cohort`
    Every patient's tables, then trends, cohort summary and clusters: `Results`.
`cytokit.analysis.results`
    `Results` and the results contract (every file and column of ``OUT``).
Domain modules
    `chimerism` (donor thresholds, chimerism and its interval), `counting`
    (cells/µL), `phenotype`, `trends` (persistence, half-life, cohort),
    `marker_check` (is the donor marker usable), `qcdata` (gate geometry and
    subsamples for the report), `invariants` (what every table must satisfy),
    `tablesjson` (the results folder's index), `anndata_export` (a results
    folder's events as AnnData: `export_anndata`, `results_anndata`).
    `tablesjson` (the results folder's index), `flowjo_export` (`export_wsp`: the
    analysis as a FlowJo 10 workspace).

The names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cytokit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from cytokit.analysis.anndata_export import export_anndata, results_anndata
    from cytokit.analysis.flowjo_export import export_wsp
    from cytokit.analysis.results import Results, load_results
    from cytokit.analysis.run import analyze, make_task, threshold_parent

_LAZY = {
    "Results": ".results",
    "analyze": ".run",
    "export_anndata": ".anndata_export",
    "export_wsp": ".flowjo_export",
    "load_results": ".results",
    "make_task": ".run",
    "results_anndata": ".anndata_export",
    "threshold_parent": ".run",
}

__all__ = [
    "Results",
    "analyze",
    "export_anndata",
    "export_wsp",
    "load_results",
    "make_task",
    "results_anndata",
    "threshold_parent",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
