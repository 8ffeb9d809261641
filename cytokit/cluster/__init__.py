"""Clustering without gates: a FlowSOM-style SOM, metaclusters, and their trends over time.

Typical use::

    from cytokit.cluster import FlowSOM
    labels = FlowSOM(grid=(10, 10), n_metaclusters=10, random_state=1).fit_predict(X)

    from cytokit import cluster
    result = cluster.cluster_study(load, items, markers, grid=(10, 10), n_metaclusters=10, seed=1)
    result.table                      # the rows of clusters.csv
    cluster.write_cluster_outputs(result, "out/")
    html = cluster.report_section(result)

The estimator and `transformed_events` load with the package; the study
pipeline (pandas), plots and report (matplotlib) load on first use, so
``from cytokit.cluster import FlowSOM`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cytokit.cluster.flowsom import ClusteringError, FlowSOM, grid_distances, grid_positions
from cytokit.cluster.medians import histogram_medians
from cytokit.cluster.prepare import LOGICLE, is_scatter, transformed_events

if TYPE_CHECKING:  # pragma: no cover  (for type checkers and the API reference; loaded lazily)
    from cytokit.cluster.plots import (
        abundance_figure,
        heatmap_figure,
        plot_abundance,
        plot_heatmap,
        save_figure,
    )
    from cytokit.cluster.report import report_section, write_cluster_outputs
    from cytokit.cluster.study import (
        ORIGINS,
        ClusteringSettings,
        ClusterInput,
        ClusterResult,
        cluster_study,
    )

_LAZY = {
    "ORIGINS": "study",
    "ClusterInput": "study",
    "ClusterResult": "study",
    "ClusteringSettings": "study",
    "cluster_study": "study",
    "abundance_figure": "plots",
    "heatmap_figure": "plots",
    "plot_abundance": "plots",
    "plot_heatmap": "plots",
    "save_figure": "plots",
    "report_section": "report",
    "write_cluster_outputs": "report",
}

__all__ = [
    "LOGICLE",
    "ORIGINS",
    "ClusterInput",
    "ClusterResult",
    "ClusteringError",
    "ClusteringSettings",
    "FlowSOM",
    "abundance_figure",
    "cluster_study",
    "grid_distances",
    "grid_positions",
    "heatmap_figure",
    "histogram_medians",
    "is_scatter",
    "plot_abundance",
    "plot_heatmap",
    "report_section",
    "save_figure",
    "transformed_events",
    "write_cluster_outputs",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cytokit.cluster' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cytokit.cluster.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
