"""The report's persistence and chimerism plots of one patient, drawn as SVG directly.

The same figures as `cytokit.plots.persistence` (same points, intervals, limits, status
marks, fitted decays, treatment marks and legends; see that module for every
convention), drawn on `cytokit.plots._canvas` instead of matplotlib: a patient's two
figures take milliseconds, not a third of a second, so a 100-patient report draws them
in about a second. `persistence_figure` and `chimerism_figure` stay the figures to
restyle or save as PNG/PDF from Python; these are what the report shows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cytokit.analysis.chimerism import MARKER_FAILED
from cytokit.plots._canvas import (
    PT,
    Axes,
    Canvas,
    LegendEntry,
    colour_of,
    legend_svg,
    marker_svg,
    text,
    text_width,
)
from cytokit.plots._points import (
    COURSE_COLOUR,
    LEGEND_MARKS,
    POPULATION_STYLES,
    STATUS_STYLE,
    TREATMENT_STYLE,
    dodge_steps,
    finite,
    fit_lines,
    infusion_text,
    label_rows,
    legend_marks,
    log_limits,
    panel_grid,
    patient_plan,
    treatment_kind,
)
from cytokit.plots._words import MEASURES

__all__ = ["chimerism_svg", "persistence_svg"]

_GREY = {"loq": colour_of("0.45"), "few": colour_of("0.55"), "key": colour_of("0.2")}


def _days_drawn(pts: pd.DataFrame, infusions, courses, fits) -> np.ndarray:
    days = [finite(pts["day"])] if len(pts) else []
    if infusions is not None and len(infusions):
        days.append(finite(infusions["day"]))
    if courses is not None and len(courses):
        days += [finite(courses["start_day"]), finite(courses["end_day"]) + 1.0]
    days += [seg[0] for fit in fits for seg in fit[1]]
    out = np.concatenate(days) if days else np.array([])
    return out[np.isfinite(out)]


def _xlim(days: np.ndarray) -> tuple[float, float]:
    """matplotlib's automatic limits: the days drawn and 5 % of their span each side."""
    if not days.size:
        return (-1.0, 1.0)
    lo, hi = float(days.min()), float(days.max())
    if hi == lo:
        return (lo - 1.0, hi + 1.0)
    pad = 0.05 * (hi - lo)
    return (lo - pad, hi + pad)


class _Points:
    """`measure_points`' columns as arrays: a figure selects its series by masks, which
    costs microseconds where a DataFrame selection costs a fraction of a millisecond."""

    def __init__(self, pts: pd.DataFrame):
        n = len(pts)
        self.day = finite(pts["day"]) if n else np.zeros(0)
        self.y = finite(pts["y"]) if n else np.zeros(0)
        self.low = finite(pts["low"]) if n else np.zeros(0)
        self.high = finite(pts["high"]) if n else np.zeros(0)
        self.loq = finite(pts["loq"]) if n else np.zeros(0)
        self.status = pts["status"].astype(str).to_numpy() if n else np.zeros(0, dtype=object)
        self.type = pts["sample_type"].astype(str).to_numpy() if n else self.status
        self.population = pts["population"].astype(str).to_numpy() if n else self.status
        few = pts["too_few"] if n and "too_few" in pts.columns else None
        self.too_few = few.to_numpy(bool) if few is not None else np.zeros(n, dtype=bool)

    def of(self, population: str, sample_type: str | None = None) -> np.ndarray:
        mask = self.population == population
        return mask if sample_type is None else mask & (self.type == sample_type)


def _series(ax: Axes, p: _Points, mask: np.ndarray, colour: str, dash="-", shift=0.0) -> None:
    """One series' line, intervals and status marks (as `persistence._draw_series`); its
    days moved by `shift`."""
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(p.day[idx], kind="stable")]
    day, y, status = p.day[idx] + shift, p.y[idx], p.status[idx]
    failed = status == MARKER_FAILED
    ax.edge_marks(day[failed], "x", colour, size=6, width=1.3)
    ax.edge_marks(day[p.too_few[idx]], "|", _GREY["few"], size=7, width=1.5)
    keep = ~failed
    detected = keep & (status != "not_detected")
    ax.line(day[detected], y[detected], colour, width=1.3, dash=dash)
    has_y = np.isfinite(y)
    for name, style in STATUS_STYLE.items():
        sel = keep & (status == name) & has_y
        if not sel.any():
            continue
        if name != "not_detected":
            lo, hi = p.low[idx][sel], p.high[idx][sel]
            lo = np.where(np.isfinite(lo), np.minimum(lo, y[sel]), y[sel])
            hi = np.where(np.isfinite(hi), np.maximum(hi, y[sel]), y[sel])
            ax.errorbars(day[sel], lo, hi, colour)
        face = colour if style["filled"] else "white"
        ax.markers(day[sel], y[sel], style["marker"], colour, face=face)


def _limits_line(ax: Axes, p: _Points, mask: np.ndarray) -> None:
    """The LOQ: a dashed line through the median limit of each day's files."""
    ok = mask & np.isfinite(p.loq)
    days = np.unique(p.day[ok])
    loq = np.array([np.median(p.loq[ok & (p.day == d)]) for d in days])
    keep = loq > 0
    days, loq = days[keep], loq[keep]
    if len(loq) == 1:
        ax.hline(float(loq[0]), _GREY["loq"], width=1.0, dash="--")
    elif len(loq):
        ax.line(days, loq, _GREY["loq"], width=1.0, dash="--", under=True)


def _treatments(ax: Axes, infusions: pd.DataFrame | None, courses: pd.DataFrame | None) -> None:
    """Cell products and drugs as vertical lines with a caret and a label above the area
    (on two alternating rows where neighbours are close); drug courses shaded."""
    if courses is not None and len(courses):
        for row in courses.sort_values("start_day").itertuples():
            start, end = float(row.start_day), float(row.end_day) + 1.0
            ax.vspan(start, end, COURSE_COLOUR, 0.18)
            x = float(ax.x(start))
            if ax.left <= x <= ax.left + ax.width:
                ax.frame.append(text(x + 2, ax.bottom - 4, f"{row.product}", size=6.5,
                                     anchor="start", colour=colour_of("0.3")))  # fmt: skip
    if infusions is None or infusions.empty:
        return
    drawn = []
    for _, row in infusions.sort_values("day").iterrows():
        day = float(pd.to_numeric(row["day"], errors="coerce"))
        if math.isfinite(day):
            drawn.append((row, day, infusion_text(row)))
    places = label_rows([float(ax.x(day)) for _, day, _ in drawn],
                        [text_width(label, 7) for _, _, label in drawn],
                        ax.left, ax.left + ax.width)  # fmt: skip
    for (row, day, label), place in zip(drawn, places, strict=True):
        style = TREATMENT_STYLE[treatment_kind(row)]
        c = colour_of(style["colour"])
        ax.vline(day, c, width=0.9, dash=style["ls"])
        caret = marker_svg(float(ax.x(day)), ax.top - 3.2, style["marker"], 4.5, c, c, 0)
        if place is None:  # no room above: the caret says it on hover
            caret = f"<g><title>{html.escape(label)}</title>{caret}</g>"
        ax.frame.append(caret)
        if place is not None:
            level, x, anchor = place
            ax.frame.append(text(x, ax.top - (4 + 9 * level) * PT - 4, label, size=7,
                                 colour=c, anchor=anchor))  # fmt: skip


def _status_entries(
    with_loq: bool, extra: Sequence[LegendEntry] = (), *, failed=False, too_few=False
) -> list[LegendEntry]:
    key = _GREY["key"]
    out = [
        LegendEntry(s["label"], key, marker=s["marker"], face=key if s["filled"] else "white")
        for s in STATUS_STYLE.values()
    ]
    for k in legend_marks(with_loq, failed=failed, too_few=too_few):
        m = LEGEND_MARKS[k]
        colour = colour_of(m["colour"])
        out.append(LegendEntry(m["label"], colour, line=m["ls"] is not None, dash=m["ls"] or "-",
                               width=1.0, marker=m["marker"],
                               face=colour if m.get("filled") else ""))  # fmt: skip
    out.extend(extra)
    return out


def _course_entries(courses: pd.DataFrame | None) -> list[LegendEntry]:
    if courses is None or courses.empty:
        return []
    return [LegendEntry("drug course", COURSE_COLOUR, patch=True, opacity=0.18)]


def _title(canvas: Canvas, words: str) -> None:
    canvas.add(text(canvas.width / 2, 10 + 10 * PT, words, size=10))


def persistence_svg(
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
) -> Canvas:
    """Persistence of one patient's donor cells, one log panel per population, as SVG.

    Takes the arguments of `cytokit.plots.persistence_figure` and draws the same figure;
    returns a `Canvas` (``to_bytes("svg")``).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure={measure!r} must be one of {', '.join(MEASURES)}")
    plan = patient_plan(chimerism, patient, measure, samples=samples, infusions=infusions,
                        courses=courses, min_events=min_events, populations=populations)  # fmt: skip
    pts, inf, drugs, names = plan.points, plan.infusions, plan.courses, plan.names or [""]
    ncols, nrows, spare = panel_grid(len(names))
    pw, ph, gw, gh = 290.0, 200.0, 55.0, 80.0
    left, right, bottom, top = 70.0, 15.0, 50.0 if spare else 105.0, 85.0
    canvas = Canvas(left + right + ncols * pw + (ncols - 1) * gw,
                    top + bottom + nrows * ph + (nrows - 1) * gh)  # fmt: skip
    p = _Points(pts)
    types = sorted(set(p.type)) if len(pts) else [""]
    colours = {t: colour_of(f"C{i % 10}") for i, t in enumerate(types)}
    mine = trends
    if trends is not None and len(trends) and "patient" in trends.columns:
        mine = trends[trends["patient"].astype(str) == str(patient)]
    fits = {}
    for name in names:
        if not np.isfinite(p.y[p.of(name)]).any():
            continue
        for t in types:
            fit = fit_lines(mine, patient, name, measure, t)
            if fit is not None:
                fits[name, t] = fit
    xlim = _xlim(_days_drawn(pts, inf, drugs, list(fits.values())))
    for k, name in enumerate(names):
        r, c = divmod(k, ncols)
        mask = p.of(name)
        drawn = [a[mask] for a in (p.y, p.high, p.low, p.loq)]
        drawn += [seg[1] for (n, _t), fit in fits.items() if n == name for seg in fit[1]]
        ylim = log_limits(np.concatenate(drawn)) if np.isfinite(p.y[mask]).any() else None
        ax = canvas.axes(left + c * (pw + gw), top + r * (ph + gh), pw, ph, xlim,
                         ylim or (1.0, 10.0), ylog=True)  # fmt: skip
        handles = []
        for t in types:
            _series(ax, p, mask & (p.type == t), colours[t])
            fit = fits.get((name, t))
            if fit is not None:
                label, segs = fit
                for d, y, lo, hi in segs:
                    if lo is not None:
                        ax.band(d, lo, hi, colours[t], 0.1)
                    ax.line(d, y, colours[t], width=4.0, opacity=0.3, under=True)
                handles.append(LegendEntry(label, colours[t], line=True, width=4.0, opacity=0.3))
        _limits_line(ax, p, mask)
        _treatments(ax, inf, drugs)
        if ylim is None:
            ax.text(0.5, 0.5, "nothing to plot", size=9, colour="#666")
        if handles:
            leg, w, _h = legend_svg(handles, 0, 0)
            ax.frame.append(f'<g transform="translate({ax.left + ax.width - w - 6:.1f},'
                            f'{ax.top + 4:.1f})">{leg}</g>')  # fmt: skip
        ax.title_pad = 38.0 if inf is not None and len(inf) else 8.0
        last_row = r == nrows - 1 or k + ncols >= len(names)
        canvas.add(
            ax.svg(
                xlabel="day after first infusion" if last_row else "",
                ylabel=MEASURES[measure] if c == 0 else "",
                xticklabels=last_row,
                title=str(name),
            )
        )
    extra = []
    if len(types) > 1:
        extra = [LegendEntry(str(t), colours[t], line=True) for t in types]
    extra += _course_entries(drugs)
    entries = _status_entries(
        bool(np.isfinite(p.loq).any()),
        extra,
        failed=bool((p.status == MARKER_FAILED).any()),
    )
    if spare:  # the first empty slot holds the legend
        k = len(names)
        r, c = divmod(k, ncols)
        x0, y0 = left + c * (pw + gw), top + r * (ph + gh)
        leg, w, h = legend_svg(entries, 0, 0, ncols=1)
        canvas.add(f'<g transform="translate({x0 + (pw - w) / 2:.1f},{y0 + (ph - h) / 2:.1f})">'
                   f"{leg}</g>")  # fmt: skip
    else:
        leg, _w, h = legend_svg(entries, canvas.width / 2, 0, ncols=3, anchor="center")
        canvas.add(f'<g transform="translate(0,{canvas.height - h - 6:.1f})">{leg}</g>')
    _title(canvas, title or f"{patient}: {MEASURES[measure]} by population")
    return canvas


def chimerism_svg(
    chimerism: pd.DataFrame,
    patient: str,
    *,
    infusions: pd.DataFrame | None = None,
    courses: pd.DataFrame | None = None,
    populations: Sequence[str] | None = None,
    log: bool = False,
    title: str | None = None,
) -> Canvas:
    """Donor chimerism (% donor) of every population of one patient on one axes, as SVG.

    Takes the arguments of `cytokit.plots.chimerism_figure` and draws the same figure
    (a linear 0-100 % axis unless `log`); returns a `Canvas`.
    """
    plan = patient_plan(chimerism, patient, "donor_pct", infusions=infusions, courses=courses,
                        populations=populations)  # fmt: skip
    pts, inf, drugs, names = plan.points, plan.infusions, plan.courses, plan.names
    left, top, w, h = 70.0, 80.0, 460.0, 260.0
    canvas = Canvas(left + w + 150.0, top + h + 105.0)
    p = _Points(pts)
    span = float(np.nanmax(p.day) - np.nanmin(p.day)) if np.isfinite(p.day).any() else 0.0
    # a population and its subset (NK, NK_dim) often share their values: each its own
    # line style and a small sideways step, so one does not hide the other
    shifts = dodge_steps(len(names), span)
    shifted = np.concatenate([p.day[p.of(n)] + d for n, d in zip(names, shifts, strict=True)]
                             or [np.zeros(0)])  # fmt: skip
    xlim = _xlim(_days_drawn(pd.DataFrame({"day": shifted}), inf, drugs, []))
    ylim = None
    if log and np.isfinite(p.y).any():
        ylim = log_limits(np.concatenate([p.y, p.high, p.low]))
    ax = canvas.axes(left, top, w, h, xlim, ylim or (-2.0, 102.0), ylog=ylim is not None)
    entries = []
    for i, (name, shift) in enumerate(zip(names, shifts, strict=True)):
        mask = p.of(name)
        types = sorted(set(p.type[mask]))
        colour, dash = colour_of(f"C{i % 10}"), POPULATION_STYLES[i % len(POPULATION_STYLES)]
        for t in types:
            _series(ax, p, mask & (p.type == t), colour, dash, shift)
            label = name if len(types) == 1 else f"{name} ({t})"
            entries.append(LegendEntry(label, colour, line=True, dash=dash))
    _treatments(ax, inf, drugs)
    if not names:
        ax.text(0.5, 0.5, "nothing to plot", size=9, colour="#666")
    ax.title_pad = 8.0
    canvas.add(ax.svg(xlabel="day after first infusion", ylabel="% donor (95 % CI)"))
    if entries:
        leg, _w, _h = legend_svg(entries, left + w + 8, top, title="population")
        canvas.add(leg)
    failed = bool((p.status == MARKER_FAILED).any())
    few = bool(p.too_few.any())
    status = _status_entries(False, _course_entries(drugs), failed=failed, too_few=few)
    leg, _w, lh = legend_svg(status, canvas.width / 2, 0, ncols=3, anchor="center")
    canvas.add(f'<g transform="translate(0,{canvas.height - lh - 6:.1f})">{leg}</g>')
    _title(canvas, title or f"{patient}: donor chimerism")
    return canvas
