"""Figures without global state, deterministic rendering, atomic files, shared drawing helpers.

Every figure is a `matplotlib.figure.Figure` with its own Agg canvas: no
pyplot, no interactive backend, nothing shared between threads. PNG output
carries no creation date; SVG output uses a fixed ``svg.hashsalt`` and no
date, so the same figure always gives the same bytes (for one matplotlib
version).
"""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from cytokit._figures import DPI, RC, figure_bytes, save_figure
from cytokit.plots._canvas import PT, text_width
from cytokit.plots._points import (
    TREATMENT_STYLE,
    infusion_text,
    label_rows,
    log_limits,
    treatment_kind,
)
from cytokit.plots._words import format_dose, gate_name

__all__ = [
    "DPI",
    "figure_bytes",
    "format_dose",
    "gate_name",
    "grid_figure",
    "log_axis",
    "mark_infusions",
    "new_figure",
    "plain",
    "save_figure",
]


def new_figure(width: float, height: float, *, layout: str | None = "constrained") -> Figure:
    """A figure of `width` × `height` inches on its own Agg canvas."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout=layout, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def grid_figure(
    nrows: int,
    ncols: int,
    panel: tuple[float, float],
    *,
    margins: tuple[float, float, float, float] = (0.75, 0.2, 0.6, 0.5),
    gaps: tuple[float, float] = (0.6, 0.6),
    sharex: bool = False,
):
    """A figure of `nrows` × `ncols` panels laid out in inches, without a layout engine.

    Parameters
    ----------
    panel : (width, height)
        Size of one panel, inches.
    margins : (left, right, bottom, top)
        Inches around the grid (labels, legends, titles go there).
    gaps : (horizontal, vertical)
        Inches between panels.

    Returns
    -------
    (Figure, ndarray of Axes with shape (nrows, ncols))

    Notes
    -----
    Fixed margins instead of constrained layout: the layout engine draws the
    figure several times, which more than doubles rendering time.
    """
    left, right, bottom, top = margins
    width = left + right + ncols * panel[0] + (ncols - 1) * gaps[0]
    height = bottom + top + nrows * panel[1] + (nrows - 1) * gaps[1]
    fig = new_figure(width, height, layout=None)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gaps[0] / panel[0],
        hspace=gaps[1] / panel[1],
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
    return fig, axes


def finish_grid(fig: Figure, axes, n: int, xlabel: str, ylabel: str, handles, **legend) -> None:
    """Label a panel grid of `n` used panels, hide the spare slots, place the legend.

    The legend goes into the first spare slot when there is one (the caller
    then needs no margin for it), else beside the grid as `legend` says
    (``loc``, ``bbox_to_anchor``, ``ncols``...). The x tick labels of a
    panel above a spare slot are switched back on (shared x axes show them
    only on the bottom row).
    """
    nrows, ncols = axes.shape
    flat = axes.ravel()
    for k, ax in enumerate(flat):
        r, c = divmod(k, ncols)
        if k >= n:
            ax.set_axis_off()
            if r > 0 and k - ncols < n:
                above = flat[k - ncols]
                above.xaxis.set_tick_params(labelbottom=True)
                above.set_xlabel(xlabel)
        elif r == nrows - 1:
            ax.set_xlabel(xlabel)
        if c == 0 and k < n:
            ax.set_ylabel(ylabel)
    style = {"fontsize": 7, "frameon": False, **{k: v for k, v in legend.items() if k == "title"}}
    if style.get("title"):
        style["title_fontsize"] = 7
    if n < flat.size:
        flat[n].legend(handles=handles, loc="center", **style)
    else:
        fig.legend(handles=handles, **{**style, **legend})


def infusion_label(row) -> str:
    """``"CIK 3×10⁶/kg"`` from an infusions row (product, dose_per_kg), for matplotlib."""
    return plain(infusion_text(row))


def mark_infusions(ax, infusions: pd.DataFrame | None, *, labels: bool = True, colour=None):
    """Treatment days as vertical lines, with a caret and a label above the plot area.

    Cell products (``product dose/kg``) are dotted grey lines with a ``v``
    caret; drugs (rows whose ``kind`` column is ``drug``, e.g. IL-2 courses
    from `cytokit.clinical`) dashed purple lines with a diamond. Labels sit
    above the axes, horizontal, on two alternating rows where neighbours
    are close, so they never cover data nor get cut off (callers leave about
    0.3 inch above each axes).

    Parameters
    ----------
    ax : Axes
    infusions : DataFrame or None
        Rows of one patient (``day, product, dose_per_kg`` and optionally ``kind``).
    labels : bool
        Write the label above each line.
    colour : optional
        Override the colour of every mark.
    """
    if infusions is None or infusions.empty:
        return
    top = blended_transform_factory(ax.transData, ax.transAxes)
    rows = [r for _, r in infusions.sort_values("day").iterrows()]
    days = [float(r["day"]) for r in rows]
    finite_days = [d for d in days if math.isfinite(d)]
    if not finite_days:
        return
    lo, hi = ax.dataLim.intervalx if ax.dataLim.width > 0 else (0.0, 0.0)
    first = min(min(finite_days), lo)
    span = max(max(finite_days), hi) - first or 1.0
    # label places in points along the axes (7-pt text), as the SVG figures place them
    width_pt = ax.get_position().width * ax.figure.get_figwidth() * 72.0
    drawn = [(r, d) for r, d in zip(rows, days, strict=True) if math.isfinite(d)]
    centres = [(d - first) / span * width_pt for _, d in drawn]
    widths = [text_width(infusion_label(r), 7) / PT for r, _ in drawn]  # px to points
    places = label_rows(centres, widths, 0.0, width_pt)
    for (row, day), centre, place in zip(drawn, centres, places, strict=True):
        style = TREATMENT_STYLE[treatment_kind(row)]
        c = colour if colour is not None else style["colour"]
        ax.axvline(day, color=c, lw=0.9, ls=style["ls"], zorder=0.5)
        # a scatter, not a line: the caret is a mark of the axes frame, not a data point
        ax.scatter([day], [1.0], s=20, marker=style["marker"], color=c, transform=top,
                   clip_on=False, zorder=4, linewidths=0)  # fmt: skip
        if labels and place is not None:
            level, x, anchor = place
            ha = {"middle": "center", "start": "left", "end": "right"}[anchor]
            ax.annotate(infusion_label(row), (day, 1.0), xycoords=top,
                        xytext=(x - centre, 4 + 9 * level), textcoords="offset points",
                        ha=ha, va="bottom", fontsize=7, color=c,
                        annotation_clip=False)  # fmt: skip


def plain(text) -> str:
    """`text` for a matplotlib label, shown as written: ``$`` escaped so that ids and names
    from files never start mathtext (which can fail to parse and then fails the figure)."""
    return str(text).replace("$", r"\$")


def log_axis(ax, values, *, headroom: float = 3.0) -> None:
    """A log y axis over the positive `values`, at least 1.5 decades, labelled in plain numbers.

    `headroom` multiplies the top, leaving space for the infusion labels.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    limits = log_limits(values, headroom)
    if limits is None:
        return
    lo, hi = limits
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    decades = math.log10(hi / lo)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 3 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    # no minor ticks: each is a Tick object with its own texts, and they cost most of the draw
    ax.yaxis.set_minor_locator(NullLocator())
