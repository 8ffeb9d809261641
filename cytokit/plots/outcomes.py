"""Outcome plots: survival and cumulative incidence with numbers at risk, persistence by response.

* `survival_figure`: the curves of one analysis of the ``survival`` table
  (`cytokit.clinical.tables`) by one grouping: Kaplan–Meier survival (PFS,
  OS, from a landmark) or the cumulative incidence of acute GVHD, each a step
  line with its 95 % interval as a band and a tick at every censored time;
  under the plot, the numbers at risk of each group at the x ticks (patients
  still followed and event-free at that day).
* `response_figure`: one persistence measure (AUC, peak, last detectable
  day) of each assessed patient by response category, with the category's
  median and n; patients whose donor cells were never detected are open
  circles (their AUC and peak are background), and values a log axis cannot
  show (or a last detectable day they do not have) are counted under the
  category.

* `mark_drug_courses`: drug courses (IL-2, immunosuppression) as shaded
  bands on a time axis, labelled with the drug: they add no donor cells, so
  they are not infusion lines.

The figures are `matplotlib.figure.Figure` objects on their own Agg canvas
(no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from cytokit.errors import CytokitError
from cytokit.plots._figure import log_axis, new_figure, plain
from cytokit.plots._points import COURSE_COLOUR, finite

__all__ = [
    "COURSE_COLOUR",
    "at_risk_table",
    "mark_drug_courses",
    "response_figure",
    "survival_figure",
]

_TITLES = {
    "pfs": "Progression-free survival",
    "os": "Overall survival",
    "pfs_landmark": "Progression-free survival from the landmark",
    "os_landmark": "Overall survival from the landmark",
    "agvhd": "Cumulative incidence of acute GVHD",
}
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def at_risk_table(steps: pd.DataFrame, times: Sequence[float]) -> list[int]:
    """Patients at risk at each of `times` from one group's step table.

    Every distinct time of the group has a row, so the row of the first time
    >= t holds the number still followed at t; after the last time, none.
    """
    t = steps["time"].to_numpy(dtype=np.float64)
    n = steps["n_at_risk"].to_numpy(dtype=np.int64)
    out = []
    for x in times:
        i = int(np.searchsorted(t, x, side="left"))
        out.append(int(n[i]) if i < t.size else 0)
    return out


def survival_figure(
    survival: pd.DataFrame,
    analysis: str = "pfs",
    group_by: str = "all",
    *,
    title: str | None = None,
    xlabel: str | None = None,
    max_day: float | None = None,
) -> Figure:
    """Curves of `analysis` by `group_by` with their intervals and the numbers at risk.

    Parameters
    ----------
    survival : DataFrame
        The ``survival`` table (`cytokit.clinical.tables.SURVIVAL_COLUMNS`).
    analysis : str
        ``pfs``, ``os``, ``pfs_landmark``, ``os_landmark`` or ``agvhd``.
    group_by : str
        ``all``, ``stratum``, ``product``, ``dose_level`` or the landmark grouping.
    title, xlabel : str, optional
    max_day : float, optional
        Right end of the x axis (default: the last time).

    Returns
    -------
    Figure

    Raises
    ------
    CytokitError
        When the table has no such curve (naming the ones it has).
    """
    sel = survival[(survival["analysis"] == analysis) & (survival["group_by"] == group_by)]
    if sel.empty:
        have = sorted(
            {f"{a}/{g}" for a, g in zip(survival["analysis"], survival["group_by"], strict=True)}
        )
        raise CytokitError(
            f"no {analysis!r} curve by {group_by!r} in the survival table; it has "
            + (", ".join(have) or "none")
        )
    groups = list(dict.fromkeys(sel["group"].astype(str)))
    cumulative = analysis == "agvhd"
    right = float(max_day if max_day is not None else sel["time"].max())
    right = right if right > 0 else 1.0
    # inches: the plot, the x label, then one line of numbers at risk per group
    plot_h, label_h, row_h, left, width = 2.8, 0.75, 0.2, 1.2, 4.9
    table_h = row_h * (len(groups) + 1)
    height = 0.35 + plot_h + label_h + table_h
    fig = new_figure(left + width + 0.3, height, layout=None)
    total_w = left + width + 0.3
    ax = fig.add_axes(
        (left / total_w, (table_h + label_h) / height, width / total_w, plot_h / height)
    )
    table_ax = fig.add_axes((left / total_w, 0.05 / height, width / total_w, table_h / height))
    for k, group in enumerate(groups):
        steps = sel[sel["group"].astype(str) == group].sort_values("time")
        colour = _PALETTE[k % len(_PALETTE)]
        _draw_curve(ax, steps, colour, f"{group} (n = {int(steps['n_at_risk'].iloc[0])})")
    ax.set_xlim(0, right)
    table_ax.set_xlim(0, right)
    ax.set_ylim(-0.02, 1.02)
    ylabel = "cumulative incidence" if cumulative else "probability event-free"
    if analysis in ("os", "os_landmark"):
        ylabel = "probability alive"
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=True, min_n_ticks=4))
    ax.set_xlabel(xlabel or ("days from the landmark" if "landmark" in analysis else "days"))
    ax.set_title(plain(title or f"{_TITLES.get(analysis, analysis)} ({group_by})"), fontsize=9)
    ax.grid(alpha=0.25, lw=0.5)
    ax.legend(loc="upper left" if cumulative else "upper right", fontsize=7, frameon=False)
    ticks = [t for t in ax.get_xticks() if 0 <= t <= right]
    _at_risk(table_ax, sel, groups, ticks)
    return fig


def _draw_curve(ax, steps: pd.DataFrame, colour: str, label: str) -> None:
    # the curve ends at the group's last time: it says nothing beyond its follow-up
    t = steps["time"].to_numpy(dtype=np.float64)
    y = steps["estimate"].to_numpy(dtype=np.float64)
    lo = steps["ci_low"].to_numpy(dtype=np.float64)
    hi = steps["ci_high"].to_numpy(dtype=np.float64)
    ax.step(t, y, where="post", color=colour, lw=1.4, label=plain(label))
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.fill_between(t, lo, hi, where=ok, step="post", color=colour, alpha=0.15, lw=0)
    censored = steps["n_censored"].to_numpy() > 0
    ax.plot(
        steps["time"].to_numpy()[censored],
        steps["estimate"].to_numpy()[censored],
        ls="none",
        marker="|",
        ms=6,
        mew=1.0,
        color=colour,
    )


def _at_risk(ax, sel: pd.DataFrame, groups: list[str], ticks: list[float]) -> None:
    ax.set_axis_off()
    rows = len(groups) + 1
    ax.text(-0.04, 1.0 - 0.5 / rows, "number at risk", transform=ax.transAxes, fontsize=7,
            ha="right", va="center", weight="bold")  # fmt: skip
    for k, group in enumerate(groups):
        steps = sel[sel["group"].astype(str) == group].sort_values("time")
        counts = at_risk_table(steps, ticks)
        y = 1.0 - (k + 1.5) / rows
        colour = _PALETTE[k % len(_PALETTE)]
        ax.text(-0.04, y, plain(group), transform=ax.transAxes, fontsize=7, ha="right",
                va="center", color=colour)  # fmt: skip
        for t, n in zip(ticks, counts, strict=True):
            ax.text(t, y, str(n), transform=ax.get_xaxis_transform(), fontsize=7,
                    ha="center", va="center", color=colour)  # fmt: skip


def response_figure(
    per_patient: pd.DataFrame,
    measure: str = "auc",
    *,
    categories: Sequence[str] = ("CR", "PR", "SD", "PD"),
    ylabel: str | None = None,
    title: str | None = None,
) -> Figure:
    """Each assessed patient's persistence `measure` by response category.

    Parameters
    ----------
    per_patient : DataFrame
        `cytokit.clinical.response.persistence_by_response` (``response``,
        ``detected`` and `measure`).
    measure : str
        ``auc``, ``peak_value`` or ``last_detectable_day``.
    categories : sequence of str
        The order of the categories on the x axis.

    Returns
    -------
    Figure
    """
    fig = new_figure(5.0, 3.4, layout=None)
    ax = fig.add_axes((0.15, 0.2, 0.8, 0.68))
    empty = len(per_patient) == 0
    values = np.array([]) if empty else finite(per_patient[measure])
    detected = np.zeros(0, bool) if empty else per_patient["detected"].to_numpy(dtype=bool)
    log = measure in ("auc", "peak_value") and bool(np.any(values > 0))
    labels = []
    for k, category in enumerate(categories):
        sel = np.zeros(0, bool) if empty else (per_patient["response"] == category).to_numpy()
        v, det = values[sel], detected[sel]
        shown = np.isfinite(v) & ((v > 0) if log else True)
        offsets = _spread(v.size)
        colour = _PALETTE[k % len(_PALETTE)]
        for filled, which in ((True, shown & det), (False, shown & ~det)):
            ax.plot(k + offsets[which], v[which], "o", ms=4, color=colour, alpha=0.85,
                    mfc=colour if filled else "none", mew=0 if filled else 0.9)  # fmt: skip
        if shown.any():
            ax.hlines(float(np.median(v[shown])), k - 0.3, k + 0.3, color="0.15", lw=1.5)
        hidden = int((~shown).sum())
        labels.append(
            f"{plain(category)}\nn = {v.size}" + (f"\n({hidden} not shown)" if hidden else "")
        )
    ax.set_xticks(range(len(categories)), labels)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    if log:
        log_axis(ax, values[values > 0], headroom=5.0)
    handles = [
        Line2D([], [], ls="none", marker="o", ms=4, color="0.3", label="donor cells detected"),
        Line2D(
            [], [], ls="none", marker="o", ms=4, color="0.3", mfc="none", label="never detected"
        ),
        Line2D([], [], color="0.15", lw=1.5, label="median"),
    ]
    ax.legend(handles=handles, fontsize=6.5, frameon=False, loc="upper right")
    names = {
        "auc": "AUC to the response day",
        "peak_value": "peak to the response day",
        "last_detectable_day": "last detectable day",
    }
    ax.set_ylabel(plain(ylabel or names.get(measure, measure)))
    ax.set_title(plain(title or "Donor-cell persistence by response"), fontsize=9)
    ax.grid(axis="y", alpha=0.25, lw=0.5)
    return fig


def _spread(n: int) -> np.ndarray:
    """Deterministic horizontal offsets for `n` points of one category (no random jitter)."""
    if n <= 1:
        return np.zeros(n)
    return (np.arange(n) / (n - 1) - 0.5) * min(0.5, 0.05 * n)


#: Colour of the shaded drug courses (`mark_drug_courses`).


def mark_drug_courses(ax, courses: pd.DataFrame, *, colour: str = COURSE_COLOUR) -> None:
    """Shade each drug course of one patient on `ax`, labelled at the top.

    Parameters
    ----------
    ax : Axes
        With days on the x axis.
    courses : DataFrame
        `cytokit.clinical.drug_courses` rows of one patient (product,
        start_day, end_day); a one-day course is shaded one day wide.
    """
    if courses is None or courses.empty:
        return
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for row in courses.sort_values("start_day").itertuples():
        start, end = float(row.start_day), float(row.end_day) + 1.0
        ax.axvspan(start, end, color=colour, alpha=0.18, lw=0, zorder=0.2)
        ax.text(start, 0.02, f" {plain(row.product)}", transform=top, fontsize=6.5,
                color="0.3", ha="left", va="bottom", clip_on=True)  # fmt: skip
