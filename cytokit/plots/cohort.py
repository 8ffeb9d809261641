"""The cohort at a glance: every patient's persistence, one panel per population.

Each patient has its own colour and its id written at the end of its line;
the stratum is the line style (legend).

Points follow `cytokit.plots.persistence.measure_points` (intervals are left
out here so that many patients stay readable; each patient's own figure has
them): filled markers are quantified, open circles not quantifiable, open
downward triangles not detected, drawn at the file's limit of detection; a
sample whose donor marker failed has no point and the patient's line skips it.
Infusion days are marked by small carets on the time axis in the colour of
the patient.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from cytokit.analysis.chimerism import MARKER_FAILED
from cytokit.plots._figure import finish_grid, grid_figure, log_axis, plain
from cytokit.plots._points import STATUS_STYLE, CohortPlan, cohort_plan, stratum_colours
from cytokit.plots.persistence import MEASURES

__all__ = ["cohort_figure", "stratum_colours"]


def cohort_figure(
    chimerism: pd.DataFrame,
    *,
    measure: str = "donor_per_ul",
    samples: pd.DataFrame | None = None,
    infusions: pd.DataFrame | None = None,
    patients: Sequence[dict] | None = None,
    populations: Sequence[str] | None = None,
    min_events: int = 50,
    title: str | None = None,
) -> Figure:
    """Every patient's `measure` over time, a colour and end label per patient, a panel per population.

    Donor cells/µL on a log axis; % donor on a linear 0-100 % axis (the scale of each
    patient's chimerism plot: a log % axis stretched a few false-positive events near 0 %
    over decades).

    Parameters
    ----------
    chimerism : DataFrame
        chimerism.csv.
    measure : {"donor_per_ul", "donor_pct"}
    samples, infusions : DataFrame, optional
        samples.csv (limits of files without events) and infusions.csv.
    patients : sequence of dict, optional
        study.json ``patients`` (id, stratum), for strata missing from the table.
    populations : sequence of str, optional
        Panels, in order (default: every population of the table).
    min_events : int
        ``[qc] min_events``.
    title : str, optional

    Returns
    -------
    Figure
    """
    plan = cohort_plan(chimerism, measure, samples=samples, patients=patients,
                       populations=populations, min_events=min_events)  # fmt: skip
    pts, names = plan.points, plan.panels
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    spare = nrows * ncols > len(names)
    fig, axes = grid_figure(
        nrows,
        ncols,
        (2.9, 2.0),
        margins=(0.7, 0.15 if spare else 2.0, 0.5, 0.5),
        gaps=(0.55, 0.45),
        sharex=True,
    )
    inf = infusions if infusions is not None and not infusions.empty else None
    for ax, name in zip(axes.ravel(), names, strict=False):
        sel = pts[pts["population"].astype(str) == name]
        _plot_patients(ax, sel, plan.colours, plan.patient_styles())
        if inf is not None:
            _plot_infusions(ax, inf, plan.colours)
        if sel["y"].notna().any():
            if measure == "donor_pct":  # linear 0-100 %, as each patient's chimerism plot
                ax.set_ylim(-2.0, 102.0)
            else:
                log_axis(ax, sel["y"], headroom=1.6)
        else:
            ax.text(0.5, 0.5, "nothing to plot", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_title(plain(name), fontsize=9)
        ax.grid(alpha=0.25)
    handles = _legend_handles(plan)
    finish_grid(
        fig,
        axes,
        len(names),
        "day after first infusion",
        MEASURES[measure],
        handles,
        title="stratum",
        loc="center right",
        bbox_to_anchor=(1.0, 0.5),
    )
    height = fig.get_figheight()
    fig.suptitle(
        plain(title or f"Cohort: {MEASURES[measure]} by patient"),
        fontsize=10,
        y=1 - 0.1 / height,
        va="top",
    )
    return fig


def _plot_patients(ax, sel: pd.DataFrame, colours: dict, styles: dict) -> None:
    """One population's panel: each patient's series (its colour, its stratum's line
    style), a line through the detected points and the patient's id at its last point."""
    for pid, rows in sel.groupby(sel["patient"].astype(str), sort=True):
        colour = colours.get(pid, "C0")
        ls = styles.get(pid, "-")
        for _t, series in rows.groupby("sample_type", sort=True):
            series = series.sort_values("day")
            det = series[~series["status"].isin(["not_detected", MARKER_FAILED])]
            ax.plot(det["day"], det["y"], color=colour, lw=1.1, ls=ls, alpha=0.9, zorder=2)
            end = series[series["y"].notna()].tail(1)
            if len(end):
                ax.annotate(plain(pid), (float(end["day"].iloc[0]), float(end["y"].iloc[0])),
                            xytext=(4, 0), textcoords="offset points", fontsize=7,
                            color=colour, va="center", ha="left", annotation_clip=False)  # fmt: skip
            for status, style in STATUS_STYLE.items():
                s = series[(series["status"] == status) & series["y"].notna()]
                ax.plot(
                    s["day"],
                    s["y"],
                    ls="none",
                    marker=style["marker"],
                    ms=4,
                    mec=colour,
                    mfc=colour if style["filled"] else "white",
                    mew=0.9,
                    zorder=3,
                )


def _plot_infusions(ax, inf: pd.DataFrame, colours: dict) -> None:
    """Infusion days as triangles on the panel's x axis, in the patient's colour."""
    base = blended_transform_factory(ax.transData, ax.transAxes)
    for _, row in inf.iterrows():
        colour = colours.get(str(row["patient"]), "0.3")
        ax.plot(
            [row["day"]],
            [0.0],
            marker="^",
            ms=5,
            color=colour,
            alpha=0.7,
            transform=base,
            clip_on=False,
            zorder=4,
            ls="none",
        )


def _legend_handles(plan: CohortPlan) -> list:
    """Strata as line styles (with patient counts), point statuses and the infusion marker."""
    handles = [
        Line2D([], [], color="0.3", ls=ls, lw=1.2, label=plain(label))
        for label, ls in plan.stratum_labels()
    ]
    handles += [
        Line2D(
            [],
            [],
            ls="none",
            marker=st["marker"],
            mec="0.2",
            mfc="0.2" if st["filled"] else "white",
            label=st["label"],
        )
        for st in STATUS_STYLE.values()
    ]
    handles.append(Line2D([], [], ls="none", marker="^", color="0.3", label="infusion"))
    return handles
