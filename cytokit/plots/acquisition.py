"""Acquisition QC plot: event rate and each channel's signal over time, removed ranges shaded.

Inputs are the tables of one file's `cytokit.qc.AcquisitionQC`:
``bins_frame()`` (one row per time bin: ``start, end, events, expected``,
and per channel ``<channel> mean/low/high/level/upper/upper level/z``) and
``ranges_frame()`` (``start, end, reasons``), so the figure can be drawn
again from stored tables without the FCS file.

* Top panel: events per second (per time unit without ``$TIMESTEP``) in
  each bin, and the rate the rate check expected (dashed).
* One panel per channel: the bin's mean of ``asinh(x / c)`` mapped back to
  the channel's values (line) with ± one SD (band), the upper-weighted mean
  (thin line), and the stable levels (dotted); an
  ``asinh`` y axis, linear within ``c`` of 0.
* Removed ranges shaded in every panel, coloured by reason.
"""

from __future__ import annotations

import math
import re
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.scale import AsinhLocator
from matplotlib.ticker import FuncFormatter

from cytokit.plots._figure import grid_figure, plain

__all__ = ["REASON_COLOURS", "acquisition_figure"]

#: Shading of removed ranges by reason.
REASON_COLOURS = {"rate": "#d62728", "signal": "#ff7f0e", "rate+signal": "#9467bd"}
_LINE, _BAND, _TOP, _LEVEL = "#1f5fa8", "#a9c4e6", "#4a4a4a", "0.45"
_PANEL = (7.5, 1.05)
_MAX_CHANNELS = 16
_SUFFIX = re.compile(r"^(?P<name>.+) mean$")


def _tick_text(v: float, _pos=None) -> str:
    """A tick label as plain digits, 3 significant ones: ``120,000``, ``-100``, ``0.5``."""
    r = float(f"{v:.3g}")
    if r == 0:
        return "0"
    if abs(r) >= 1000:
        return f"{r:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(r))))
    text = f"{r:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_PLAIN = FuncFormatter(_tick_text)
_NONE = FuncFormatter(lambda _v, _pos: "")


class _SpacedAsinhLocator(AsinhLocator):
    """`AsinhLocator` without ticks whose labels would touch: going down from the top, a
    tick closer than `MIN_GAP` of the axis (on its asinh scale) to the last one kept is
    left out (0 and -100 on a scatter channel whose band dips below 0). An axis that
    would show fewer than two ticks (less than a decade) gets three, evenly spaced on its
    scale and rounded to two digits."""

    MIN_GAP = 0.15

    def tick_values(self, vmin, vmax):
        ticks = np.asarray(super().tick_values(vmin, vmax), dtype=float)
        c = self.linear_width
        lo, hi = sorted((np.arcsinh(vmin / c), np.arcsinh(vmax / c)))
        gap = self.MIN_GAP * (hi - lo)
        low, high = sorted((vmin, vmax))
        # 0 where the axis holds it (the level a reader looks for), then from the top
        kept: list[float] = [0.0] if low <= 0 <= high and np.any(ticks == 0) else []
        for t in sorted(ticks, reverse=True):
            u = np.arcsinh(t / c)
            if all(abs(np.arcsinh(k / c) - u) >= gap for k in kept):
                kept.append(float(t))
        if sum(low <= t <= high for t in kept) < 2:  # within a decade: three even steps
            u = lo + (hi - lo) * np.array([0.15, 0.5, 0.85])
            return np.array([float(f"{x:.2g}") for x in c * np.sinh(u)])
        return np.array(sorted(kept))


def _fit_asinh(ax, c: float, *series: np.ndarray) -> None:
    """Y limits around `series` with 5 % of their span as margin on the asinh scale
    (matplotlib's margins are taken on the values, which reach far below 0 there)."""
    y = np.concatenate([np.arcsinh(np.asarray(v, float) / c) for v in series])
    y = y[np.isfinite(y)]
    if y.size == 0:
        return
    lo, hi = float(y.min()), float(y.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    ax.set_ylim(c * math.sinh(lo - pad), c * math.sinh(hi + pad))


def _channels(bins: pd.DataFrame) -> list[str]:
    return [m.group("name") for c in bins.columns if (m := _SUFFIX.match(str(c)))]


def _pick(bins: pd.DataFrame, names: list[str], limit: int) -> list[str]:
    """At most `limit` channels, keeping those that departed most outside the bins removed
    for the rate (where a clog's events depart in every channel), then anywhere (file
    order kept)."""
    if len(names) <= limit:
        return names
    # here, not at the top: drawing a stored plot (4 channels) loads no QC code
    from cytokit.qc.result import by_departure

    calm = np.ones(len(bins), dtype=bool)
    if "reasons" in bins:
        calm = ~bins["reasons"].astype(str).str.contains("rate").to_numpy()
    z = np.column_stack([bins[f"{n} z"].to_numpy(dtype=float) for n in names])
    keep = set(by_departure(names, z, calm)[:limit])
    return [n for n in names if n in keep]


def _shade(ax, ranges: pd.DataFrame | None) -> None:
    if ranges is None or ranges.empty:
        return
    for _, r in ranges.iterrows():
        colour = REASON_COLOURS.get(str(r["reasons"]), "#7f7f7f")
        ax.axvspan(float(r["start"]), float(r["end"]), color=colour, alpha=0.22, lw=0, zorder=0)


def _steps(bins: pd.DataFrame, values: np.ndarray):
    """(x, y) of a step line over the bins (each bin's value held from start to end)."""
    x = np.column_stack([bins["start"].to_numpy(float), bins["end"].to_numpy(float)]).ravel()
    y = np.repeat(values, 2)
    return x, y


def acquisition_figure(
    bins: pd.DataFrame,
    ranges: pd.DataFrame | None = None,
    *,
    title: str = "",
    channels: list[str] | None = None,
    max_channels: int = _MAX_CHANNELS,
    why: str = "",
) -> Figure:
    """The acquisition QC figure of one file.

    Parameters
    ----------
    bins : DataFrame
        ``AcquisitionQC.bins_frame()``.
    ranges : DataFrame, optional
        ``AcquisitionQC.ranges_frame()``: shaded.
    title : str
        Shown above the figure (e.g. the file, verdict and % removed).
    channels : list of str, optional
        Channels to draw (default: every channel of `bins`, at most
        `max_channels`, keeping those that departed most from their level).
    why : str
        Why the file has no time bins, shown where it has none (the QC
        result's note or verdict reason).

    Returns
    -------
    matplotlib.figure.Figure
        On its own Agg canvas. A file without time bins gives a one-panel
        figure saying so.
    """
    if bins is None or bins.empty or "events" not in bins:
        text = "no time bins to plot: the rate and signal checks did not run"
        lines = textwrap.wrap(f"{text}: {plain(why)}" if why else text, 110)
        text = "\n".join(lines)
        height = 0.5 + 0.16 * len(lines)
        fig, axes = grid_figure(1, 1, (_PANEL[0], height), margins=(0.3, 0.3, 0.2, 0.5))
        ax = axes[0, 0]
        ax.set_axis_off()
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8,
                transform=ax.transAxes)  # fmt: skip
        if title:
            fig.suptitle(plain(title), fontsize=9)
        return fig
    names = channels if channels is not None else _pick(bins, _channels(bins), max_channels)
    missing = [n for n in names if f"{n} mean" not in bins]
    if missing:
        raise KeyError(f"no signal columns for channel(s) {', '.join(missing)} in the bins table")
    unit = str(bins["time_unit"].iloc[0]) if "time_unit" in bins else "s"
    rows = 1 + len(names)
    fig, axes = grid_figure(
        rows, 1, _PANEL, margins=(1.45, 0.25, 0.5, 0.85), gaps=(0.3, 0.12), sharex=True
    )
    width = (bins["end"] - bins["start"]).to_numpy(float)
    safe = np.where(width > 0, width, np.nan)
    ax = axes[0, 0]
    x, y = _steps(bins, bins["events"].to_numpy(float) / safe)
    ax.plot(x, y, color=_LINE, lw=0.9)
    if "expected" in bins:
        xe, ye = _steps(bins, bins["expected"].to_numpy(float) / safe)
        ax.plot(xe, ye, color=_LEVEL, lw=0.8, ls="--")
    ax.set_ylabel(f"events/{unit if unit == 's' else 'unit'}", fontsize=8)
    ax.set_ylim(bottom=0)
    _shade(ax, ranges)
    judged = False
    for i, name in enumerate(names, start=1):
        ax = axes[i, 0]
        mean = bins[f"{name} mean"].to_numpy(float)
        xs, ym = _steps(bins, mean)
        _, lo = _steps(bins, bins[f"{name} low"].to_numpy(float))
        _, hi = _steps(bins, bins[f"{name} high"].to_numpy(float))
        ax.fill_between(xs, lo, hi, color=_BAND, lw=0, alpha=0.8)
        ax.plot(xs, ym, color=_LINE, lw=0.9)
        levels = [float(bins[f"{name} level"].iloc[0])]
        shown = [lo, hi, ym]
        if f"{name} upper" in bins:
            _, yt = _steps(bins, bins[f"{name} upper"].to_numpy(float))
            ax.plot(xs, yt, color=_TOP, lw=0.6)
            levels.append(float(bins[f"{name} upper level"].iloc[0]))
            shown.append(yt)
        levels = [v for v in levels if math.isfinite(v)]  # none where no level was judged
        judged = judged or bool(levels)
        for level in levels:
            ax.axhline(level, color=_LEVEL, lw=0.7, ls=":")
        c = float(bins[f"{name} cofactor"].iloc[0]) if f"{name} cofactor" in bins else 1.0
        c = c if math.isfinite(c) and c > 0 else 1.0
        ax.set_yscale("asinh", linear_width=c)
        _fit_asinh(ax, c, *shown, np.array(levels))
        # few ticks, plain numbers: a narrow range on this scale otherwise gets a dozen
        # labels like 7.44869 × 10⁴
        ax.yaxis.set_major_locator(_SpacedAsinhLocator(c, numticks=4))
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_formatter(_NONE)
        # placed by matplotlib left of the widest tick label (7.4e+04 on a narrow range)
        # and aligned across the panels below; a long name wraps at 16 characters, which
        # the left margin holds beside the ticks
        label = "\n".join(textwrap.wrap(plain(name), 16, break_on_hyphens=False)) or name
        ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center", labelpad=9)
        ax.tick_params(labelsize=7)
        _shade(ax, ranges)
    axes[-1, 0].set_xlabel(f"acquisition time ({unit})", fontsize=8)
    axes[0, 0].set_xlim(float(bins["start"].iloc[0]), float(bins["end"].iloc[-1]))
    present = set() if ranges is None or ranges.empty else set(ranges["reasons"].astype(str))
    handles = [
        Patch(color=REASON_COLOURS[r], alpha=0.35, label=f"removed: {r}")
        for r in REASON_COLOURS
        if r in present
    ]
    # what the lines are, and the removed ranges, above the rate panel (no burst under it)
    series = [
        Line2D([], [], color=_LINE, lw=0.9, label="per bin: rate, channel mean"),
        Line2D([], [], color=_TOP, lw=0.6, label="upper-half mean"),
        Patch(color=_BAND, alpha=0.8, label="mean ± SD"),
        Line2D([], [], color=_LEVEL, lw=0.8, ls="--", label="expected rate"),
    ]
    if judged:
        series.append(Line2D([], [], color=_LEVEL, lw=0.7, ls=":", label="stable level"))
    both = series + handles
    axes[0, 0].legend(handles=both, fontsize=7, frameon=False, loc="lower center",
                      bbox_to_anchor=(0.5, 1.0), borderaxespad=0.2,
                      ncols=min(len(both), 4))  # fmt: skip
    fig.align_ylabels(axes[1:, 0])
    if title:
        fig.suptitle(plain(title), fontsize=9)
    return fig
