"""Plots of a clustering: a heatmap of metacluster medians, metacluster abundance over time.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot,
no global state, safe in threads), rendered by the package's one figure
writer (`cytokit._figures`: the same bytes on every run) and written
atomically. The format follows the file suffix (``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cytokit._figures import FORMATS, figure_bytes
from cytokit._io import atomic_write_bytes
from cytokit.cluster.flowsom import ClusteringError
from cytokit.cluster.labels import row_labels as _row_labels

__all__ = [
    "abundance_figure",
    "figure_bytes",
    "heatmap_figure",
    "plot_abundance",
    "plot_heatmap",
    "save_figure",
]

#: Resolution of PNG output: the heatmap's small labels want more than the report's plots.
DPI = 120


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` atomically, in the format its suffix names (`cytokit._figures`)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ClusteringError(
            f"{path}: cannot tell the image format from the suffix; use .png, .svg or .pdf"
        )
    return atomic_write_bytes(path, figure_bytes(fig, fmt, dpi=DPI))


def heatmap_figure(
    medians: pd.DataFrame, summary: pd.DataFrame | None = None, *, title: str | None = None
) -> Figure:
    """Heatmap of metacluster × marker medians.

    Parameters
    ----------
    medians : DataFrame
        Index: metacluster; columns: markers (`ClusterResult.medians`).
    summary : DataFrame, optional
        `ClusterResult.summary`: adds each metacluster's share of events and
        its best-matching gate (F1 >= 0.5) to the row labels.
    title : str, optional
    """
    values = medians.to_numpy(dtype=np.float64)
    n_rows, n_cols = values.shape
    fig = _new_figure(1.6 + 0.75 * n_cols + 1.8, 1.2 + 0.38 * n_rows)
    ax = fig.add_subplot()
    # a mesh of cells rather than an image: SVG output stays vector, no embedded bitmap
    image = ax.pcolormesh(np.ma.masked_invalid(values), cmap="viridis", edgecolors="none")
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)  # metacluster 0 on top
    ax.set_xticks(
        np.arange(n_cols) + 0.5, [str(c) for c in medians.columns], rotation=45, ha="right"
    )
    ax.set_yticks(np.arange(n_rows) + 0.5, _row_labels(medians, summary))
    finite = values[np.isfinite(values)]
    middle = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
    for i in range(n_rows):
        for j in range(n_cols):
            v = values[i, j]
            if np.isfinite(v):
                ax.text(
                    j + 0.5,
                    i + 0.5,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if v > middle else "white",
                )
    fig.colorbar(image, ax=ax, label="median (transformed scale)", shrink=0.8)
    ax.set_title(title or "Median marker values per metacluster")
    return fig


def abundance_figure(
    table: pd.DataFrame,
    *,
    origin: str = "all",
    patients: Sequence[str] | None = None,
    metaclusters: Sequence[int] | None = None,
    log: bool = False,
    title: str | None = None,
) -> Figure:
    """Metacluster abundance over time: one panel per patient, one line per metacluster.

    Parameters
    ----------
    table : DataFrame
        `ClusterResult.table` (clusters.csv).
    origin : {"all", "donor", "recipient"}
        Which events' fractions to plot.
    patients, metaclusters : sequence, optional
        Subsets to show (default all).
    log : bool
        Logarithmic y axis (zeros are not drawn).
    """
    data = table[table["origin"] == origin]
    if data.empty:
        raise ClusteringError(
            f"the clusters table has no rows with origin {origin!r}; origins there: "
            f"{', '.join(sorted(table['origin'].unique())) or 'none'}"
        )
    if patients is not None:
        data = data[data["patient"].isin(list(patients))]
    if metaclusters is not None:
        data = data[data["metacluster"].isin(list(metaclusters))]
    ids = list(dict.fromkeys(data["patient"]))
    mcs = sorted(data["metacluster"].unique())
    ncols = min(3, max(1, len(ids)))
    nrows = max(1, -(-len(ids) // ncols))
    fig = _new_figure(4.2 * ncols + 1.6, 3.0 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    colours = _colours(len(mcs))
    for p, ax in zip(ids, axes.ravel(), strict=False):
        rows = data[data["patient"] == p]
        # several files on one day: pool their events
        agg = rows.groupby(["metacluster", "day"], as_index=False)[["count", "total"]].sum()
        for m, colour in zip(mcs, colours, strict=True):
            line = agg[agg["metacluster"] == m].sort_values("day")
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = 100.0 * line["count"].to_numpy() / line["total"].to_numpy()
            if log:
                pct = np.where(pct > 0, pct, np.nan)
            ax.plot(line["day"], pct, marker="o", ms=3, lw=1.2, color=colour, label=f"MC {m}")
        ax.set_title(f"{p}", fontsize=10)
        ax.set_xlabel("day")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"% of {origin} events" if origin != "all" else "% of events")
    for ax in axes.ravel()[len(ids) :]:
        ax.set_visible(False)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, title="metacluster")
    default = "Metacluster abundance over time" + ("" if origin == "all" else f" ({origin} events)")
    fig.suptitle(title or default)
    return fig


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_heatmap(result, path: str | Path, *, title: str | None = None) -> Path:
    """Write the heatmap of a `ClusterResult` (or of a medians DataFrame) to `path`."""
    if isinstance(result, pd.DataFrame):
        return save_figure(heatmap_figure(result, title=title), path)
    return save_figure(heatmap_figure(result.medians, result.summary, title=title), path)


def plot_abundance(table, path: str | Path, **kwargs) -> Path:
    """Write `abundance_figure` of a clusters table (or a `ClusterResult`) to `path`."""
    if not isinstance(table, pd.DataFrame):
        table = table.table
    return save_figure(abundance_figure(table, **kwargs), path)
