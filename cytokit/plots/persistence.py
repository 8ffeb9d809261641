"""Persistence and chimerism of one patient over time, from the chimerism table.

Points, intervals and limits (`measure_points`)
-----------------------------------------------
Every chimerism row (one file, one population) gives a point at its ``day``.

* **% donor** (``donor_pct``): the value and its 95 % binomial interval
  (``ci_low``, ``ci_high``) come from the table.
* **donor cells/µL** (``donor_per_ul``): absolute counts are ``events ×
  reference_per_ul / reference_events`` (`cytokit.analysis.counting`), so every event
  of a file stands for ``f = per_ul / events`` cells/µL (from the row, or from
  ``samples.csv``'s reference when the population has no events). The
  interval is the Poisson score interval of the donor event count ``k``,
  ``k + z²/2 ± z·sqrt(k + z²/4)`` with z = 1.96, times ``f``: the counting
  error of the donor events; the error of the reference count (beads, a
  haematology analyser) is not in it.
* **Limits**: the limit of detection (LOD) is `DETECTION_EVENTS` (20) donor
  events and the limit of quantification (LOQ) ``[qc] min_events`` donor
  events (the thresholds of the ``status`` column), converted per file: × f
  for cells/µL, ÷ the population's events × 100 for % donor. They differ
  between files (each has its own reference count), so the LOQ is drawn as a
  dashed line through the files' limits.
* **Status**: ``quantified`` points are filled circles with their interval;
  ``not_quantifiable`` points (LOD ≤ donor events < LOQ) open circles with
  their interval; ``not_detected`` points (fewer than 20 donor events,
  including none) are open downward triangles drawn *at the file's LOD*, the
  upper bound of what could have gone unseen, never at their measured value
  (which may be 0 and has no place on a log axis). A point with no LOD
  (no events in the population, or no absolute counting) is not drawn.
* **Too few cells** (% donor only): a not-detected point whose LOD is above
  `MAX_PCT_LOD` (25 %: fewer than 80 events in the population) cannot tell
  full recipient from mixed chimerism; it is flagged ``too_few`` and drawn on
  no % axis (a grey bar on the panel's lower edge says "too few cells").
  Nothing is ever drawn above 100 %.
* ``marker_failed`` points (the sample's donor marker is unusable,
  `cytokit.analysis.marker_check`) have no value: they are never drawn as a point, the
  line does not pass through them, and `persistence_figure` marks their day
  with a cross on the panel's lower edge (``failed (donor marker or file): no value``;
  the report adds such a row for each file of the patient that failed).

Fitted decay (`persistence_figure` with ``trends``)
---------------------------------------------------
Where trends.csv has an estimated half-life for the population, sample type
and measure, the fitted line ``value · exp(slope · (day − start))`` of each
decay phase (``half_life_phases``, ``half_life_slope``) is drawn as a broad
pale line in the series' colour, only over the days it was fitted on, labelled in the
panel's legend ``t½ = X d (95 % CI a–b)`` (the one place the half-life is
given: the panel's title names the population only). Around it, paler, the
pointwise 95 % interval of the fitted line (``half_life_cov``,
``half_life_quantile``; `cytokit.analysis.trends.decay_band`) over the same
days: where the decay curve itself may lie, narrowest in the middle of the
fitted days. Nothing is drawn where the half-life is not estimable, and no
band for a trends.csv written before the band's columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from cytokit.analysis.chimerism import MARKER_FAILED
from cytokit.plots._figure import finish_grid, grid_figure, log_axis, mark_infusions, plain
from cytokit.plots._points import (
    LEGEND_MARKS,
    MAX_PCT_LOD,
    POPULATION_STYLES,
    STATUS_STYLE,
    dodge_steps,
    finite,
    fit_lines,
    legend_marks,
    measure_points,
    panel_grid,
    patient_plan,
    poisson_interval,
)
from cytokit.plots._words import MEASURES
from cytokit.plots.outcomes import COURSE_COLOUR, mark_drug_courses

__all__ = [
    "MAX_PCT_LOD",
    "MEASURES",
    "chimerism_figure",
    "fit_lines",
    "measure_points",
    "persistence_figure",
    "poisson_interval",
]


def _edge_marks(ax, days, *, marker: str, ms: float, mew: float, color) -> None:
    """Marks on the plot's lower edge at `days` (a day with no value to draw)."""
    if len(days):
        ax.plot(
            days,
            np.zeros(len(days)),
            ls="none",
            marker=marker,
            ms=ms,
            mew=mew,
            color=color,
            transform=blended_transform_factory(ax.transData, ax.transAxes),
            clip_on=False,
            zorder=3,
        )


def _draw_series(ax, pts: pd.DataFrame, colour, label: str, ls="-") -> None:
    pts = pts.sort_values("day")
    failed = pts[pts["status"] == MARKER_FAILED]
    # no value: a cross on the lower edge at its day, never a point
    _edge_marks(ax, failed["day"], marker="x", ms=6, mew=1.3, color=colour)
    few = pts[pts["too_few"]] if "too_few" in pts.columns else pts.iloc[:0]
    # too few cells to judge chimerism: a grey bar on the lower edge, no value
    _edge_marks(ax, few["day"], marker="|", ms=7, mew=1.5, color="0.55")
    pts = pts[pts["status"] != MARKER_FAILED]
    detected = pts[pts["status"] != "not_detected"]
    ax.plot(detected["day"], detected["y"], color=colour, lw=1.3, ls=ls, label=plain(label),
            zorder=2)  # fmt: skip
    for status, style in STATUS_STYLE.items():
        sel = pts[(pts["status"] == status) & pts["y"].notna()]
        if sel.empty:
            continue
        face = colour if style["filled"] else "white"
        if status != "not_detected":
            err = np.vstack([sel["y"] - sel["low"], sel["high"] - sel["y"]])
            err = np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)
            ax.errorbar(
                sel["day"],
                sel["y"],
                yerr=err,
                fmt="none",
                ecolor=colour,
                elinewidth=0.9,
                capsize=2.5,
                zorder=2,
            )
        ax.plot(
            sel["day"],
            sel["y"],
            ls="none",
            marker=style["marker"],
            ms=5.5,
            mfc=face,
            mec=colour,
            mew=1.1,
            zorder=3,
        )


def _limits_line(ax, pts: pd.DataFrame) -> None:
    loq = pts.dropna(subset=["loq"]).groupby("day")["loq"].median().sort_index()
    loq = loq[loq > 0]
    if len(loq):
        style = {"color": "0.45", "lw": 1.0, "ls": "--", "zorder": 1}
        if len(loq) == 1:
            ax.axhline(float(loq.iloc[0]), **style)
        else:
            ax.plot(loq.index, loq.to_numpy(), **style)


def _draw_fit(ax, fit, colour) -> Line2D | None:
    """Draw a `fit_lines` result; returns its legend handle."""
    if fit is None:
        return None
    label, segs = fit
    # broad and pale under the points: seen beside the data line, and along it where they agree
    style = {"color": colour, "lw": 4.0, "alpha": 0.3, "solid_capstyle": "butt"}
    for d, y, low, high in segs:
        if low is not None:
            ax.fill_between(d, low, high, color=colour, alpha=0.1, lw=0, zorder=1.2)
        ax.plot(d, y, zorder=1.5, label=label, **style)
    return Line2D([], [], label=label, **style)


def _course_handles(courses: pd.DataFrame | None) -> list:
    """A legend entry for the shaded drug courses, when the patient has any."""
    if courses is None or courses.empty:
        return []
    return [Patch(facecolor=COURSE_COLOUR, alpha=0.18, lw=0, label="drug course")]


def _status_handles(
    with_loq: bool, extra: Sequence[Line2D] = (), failed: bool = False, too_few: bool = False
) -> list[Line2D]:
    handles = [
        Line2D(
            [],
            [],
            ls="none",
            marker=s["marker"],
            ms=5.5,
            mec="0.2",
            mfc="0.2" if s["filled"] else "white",
            label=s["label"],
        )
        for s in STATUS_STYLE.values()
    ]
    for key in legend_marks(with_loq, failed=failed, too_few=too_few):
        m = LEGEND_MARKS[key]
        handles.append(
            Line2D([], [], ls=m["ls"] or "none", marker=m["marker"] or "None", color=m["colour"],
                   label=m["label"], **_MARK_SIZES.get(key, {}))
        )  # fmt: skip
    handles.extend(extra)
    return handles


#: Sizes of the legend's marks on matplotlib's figures.
_MARK_SIZES = {"failed": {"mew": 1.3}, "too_few": {"mew": 1.5}, "infusion": {"ms": 4}}


_BELOW = {"loc": "lower center", "bbox_to_anchor": (0.5, 0.0), "ncols": 3}


def _suptitle(fig: Figure, text: str) -> None:
    height = fig.get_figheight()
    fig.suptitle(text, fontsize=10, y=1 - 0.1 / height, va="top")


def persistence_figure(
    chimerism: pd.DataFrame,
    patient: str,
    *,
    measure: str = "donor_per_ul",
    samples: pd.DataFrame | None = None,
    infusions: pd.DataFrame | None = None,
    trends: pd.DataFrame | None = None,
    courses: pd.DataFrame | None = None,
    min_events: int = 50,
    populations: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Persistence of one patient's donor cells: one log-scale panel per population.

    Each panel shows `measure` against day with 95 % intervals, status
    markers, the LOQ line, the infusions (product and dose) and, from
    `trends`, the half-life (see the module docstring for every convention).

    Parameters
    ----------
    chimerism : DataFrame
        chimerism.csv (any patients; `patient`'s rows are used).
    patient : str
    measure : {"donor_per_ul", "donor_pct"}
    samples, infusions, trends : DataFrame, optional
        samples.csv, infusions.csv and trends.csv.
    courses : DataFrame, optional
        Drug courses (`cytokit.clinical.drug_courses`, e.g. IL-2), shaded
        apart from the cell infusions.
    min_events : int
        ``[qc] min_events`` (study.json ``qc.min_events``).
    populations : sequence of str, optional
        Panel order (default: as in the table).
    title : str, optional

    Returns
    -------
    Figure
    """
    plan = patient_plan(chimerism, patient, measure, samples=samples, infusions=infusions,
                        courses=courses, min_events=min_events, populations=populations)  # fmt: skip
    pts, inf, drugs, names = plan.points, plan.infusions, plan.courses, plan.names or [""]
    ncols, nrows, spare = panel_grid(len(names))
    fig, axes = grid_figure(
        nrows,
        ncols,
        (2.9, 2.0),
        margins=(0.7, 0.15, 0.5 if spare else 1.05, 0.85),
        gaps=(0.55, 0.8),
        sharex=True,
    )
    types = sorted(set(pts["sample_type"])) if len(pts) else [""]
    colours = {t: f"C{i}" for i, t in enumerate(types)}
    for ax, name in zip(axes.ravel(), names, strict=False):
        sel = pts[pts["population"].astype(str) == name]
        fits, fit_values = [], []
        for t in types:
            _draw_series(ax, sel[sel["sample_type"] == t], colours[t], t)
            fit = fit_lines(trends, patient, name, measure, t) if sel["y"].notna().any() else None
            handle = _draw_fit(ax, fit, colours[t])
            if handle is not None:
                fits.append(handle)
                # the band's ends may reach far: the axis keeps the line, not the band
                fit_values += [y for _d, y, _lo, _hi in fit[1]]
        if fits:
            ax.legend(handles=fits, loc="best", fontsize=7, frameon=False, handlelength=2.2)
        _limits_line(ax, sel)
        mark_infusions(ax, inf)
        mark_drug_courses(ax, drugs)
        if sel["y"].notna().any():
            drawn = [finite(sel[c]) for c in ("y", "high", "low", "loq")] + fit_values
            log_axis(ax, np.concatenate(drawn))
        else:
            ax.text(0.5, 0.5, "nothing to plot", transform=ax.transAxes, ha="center", color="0.4")
        # the half-life is in the legend, with its interval: the title names the population
        ax.set_title(
            plain(name),
            fontsize=9,
            pad=24 if inf is not None and len(inf) else 6,
        )
        ax.grid(alpha=0.25, which="major")
    extra = []
    if len(types) > 1:
        extra = [Line2D([], [], color=colours[t], lw=1.3, label=plain(t)) for t in types]
    extra += _course_handles(drugs)
    handles = _status_handles(
        bool(pts["loq"].notna().any()) if len(pts) else False,
        extra,
        failed=bool((pts["status"] == MARKER_FAILED).any()) if len(pts) else False,
    )
    finish_grid(fig, axes, len(names), "day after first infusion", MEASURES[measure], handles,
                **_BELOW)  # fmt: skip
    _suptitle(fig, plain(title or f"{patient}: {MEASURES[measure]} by population"))
    return fig


def chimerism_figure(
    chimerism: pd.DataFrame,
    patient: str,
    *,
    infusions: pd.DataFrame | None = None,
    courses: pd.DataFrame | None = None,
    populations: Sequence[str] | None = None,
    log: bool = False,
    title: str | None = None,
) -> Figure:
    """Donor chimerism (% donor) of every population of one patient on one axes.

    Intervals are the table's 95 % binomial intervals; statuses and the
    not-detected convention as in `persistence_figure` (on a linear axis a
    not-detected point sits at its LOD too, so it reads as "below this").
    Each population has its own colour and line style and is drawn a small step
    (0.4 % of the days shown) beside the next, so that a population and its
    subset with the same values (NK and NK_dim) are both seen.

    Parameters
    ----------
    chimerism : DataFrame
    patient : str
    infusions : DataFrame, optional
        infusions.csv; rows with ``kind == "drug"`` are drawn as drugs.
    courses : DataFrame, optional
        Drug courses (`cytokit.clinical.drug_courses`), shaded.
    populations : sequence of str, optional
    log : bool
        Logarithmic % axis (default linear, 0-100).
    title : str, optional
    """
    plan = patient_plan(chimerism, patient, "donor_pct", infusions=infusions, courses=courses,
                        populations=populations)  # fmt: skip
    pts, names = plan.points, plan.names
    fig, axes = grid_figure(1, 1, (4.6, 2.6), margins=(0.7, 1.5, 1.05, 0.8))
    ax = axes[0, 0]
    days = finite(pts["day"]) if len(pts) else np.array([])
    span = float(np.nanmax(days) - np.nanmin(days)) if np.isfinite(days).any() else 0.0
    # a population and its subset (NK, NK_dim) often share their values: each its own
    # line style and a small sideways step, so one does not hide the other
    for i, (name, step) in enumerate(zip(names, dodge_steps(len(names), span), strict=True)):
        sel = pts[pts["population"].astype(str) == name]
        sel = sel.assign(day=finite(sel["day"]) + step)
        types = sorted(set(sel["sample_type"]))
        for t in types:
            label = name if len(types) == 1 else f"{name} ({t})"
            _draw_series(ax, sel[sel["sample_type"] == t], f"C{i % 10}", label,
                         POPULATION_STYLES[i % len(POPULATION_STYLES)])  # fmt: skip
    mark_infusions(ax, plan.infusions)
    mark_drug_courses(ax, plan.courses)
    if log and pts["y"].notna().any():
        log_axis(ax, np.concatenate([finite(pts[c]) for c in ("y", "high", "low")]))
    else:
        ax.set_ylim(-2.0, 102.0)  # labels of infusions sit above the axes, not in it
    if not names:
        ax.text(0.5, 0.5, "nothing to plot", transform=ax.transAxes, ha="center", color="0.4")
    ax.set_xlabel("day after first infusion")
    ax.set_ylabel("% donor (95 % CI)")
    ax.grid(alpha=0.25)
    if names:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=7,
            title="population",
            title_fontsize=7,
            frameon=False,
        )
    failed = bool((pts["status"] == MARKER_FAILED).any()) if len(pts) else False
    few = bool(pts["too_few"].any()) if len(pts) else False
    extra = _course_handles(plan.courses)
    fig.legend(handles=_status_handles(False, extra, failed=failed, too_few=few), fontsize=7,
               frameon=False, **_BELOW)  # fmt: skip
    _suptitle(fig, plain(title or f"{patient}: donor chimerism"))
    return fig
