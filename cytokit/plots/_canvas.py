"""A small SVG canvas for line plots over days: axes with a linear or log y scale, ticks,
lines, markers, error bars, bands, spans, text and legends.

The report's persistence and chimerism plots (`cytokit.plots.persistence_svg`) are drawn
with it: a figure is a few milliseconds of string formatting where matplotlib takes a
quarter second, which decides how long a 100-patient report takes. Sizes are in pixels
at 100 per inch (the report's PNG resolution), text sizes in points as matplotlib's
(1 pt = 100/72 px). Coordinates are written with one decimal, so the same figure always
gives the same bytes. Text widths are estimated (the browser picks the font): layouts
leave room for the widest likely text rather than measuring it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cytokit.plots._svg import nice_ticks

__all__ = ["COLOURS", "Axes", "Canvas", "LegendEntry", "colour_of", "log_ticks", "text_width"]

#: matplotlib's default colour cycle (tab10), so that the SVG and matplotlib figures agree.
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_NAMED = {
    f"tab:{name}": hexa
    for name, hexa in zip(("blue", "orange", "green", "red", "purple", "brown", "pink", "gray",
                           "olive", "cyan"), COLOURS, strict=True)
}  # fmt: skip
#: Pixels per point.
PT = 100.0 / 72.0
#: Dash patterns of matplotlib's line styles, in points.
_DASHES = {"-": None, "--": (3.7, 1.6), "-.": (6.4, 1.6, 1.0, 1.6), ":": (1.0, 1.65)}


def colour_of(spec) -> str:
    """An SVG colour from a matplotlib-style spec: ``"C3"``, ``"0.45"`` (grey), a name, a hex."""
    text = str(spec)
    if len(text) == 2 and text[0] == "C" and text[1].isdigit():
        return COLOURS[int(text[1])]
    try:
        grey = float(text)
    except ValueError:
        return _NAMED.get(text, text)
    level = round(255 * min(max(grey, 0.0), 1.0))
    return f"#{level:02x}{level:02x}{level:02x}"


def _dash(style) -> str:
    """The ``stroke-dasharray`` attribute of a line style ('-', '--', '-.', ':' or
    matplotlib's ``(offset, (on, off, ...))``), scaled by points."""
    pattern = style[1] if isinstance(style, tuple) else _DASHES.get(style)
    if not pattern:
        return ""
    return ' stroke-dasharray="' + ",".join(f"{v * PT:.1f}" for v in pattern) + '"'


def text_width(text: str, size_pt: float) -> float:
    """Estimated width in pixels of `text` at `size_pt` in a sans-serif font."""
    return 0.62 * size_pt * PT * len(str(text))


def _f(v: float) -> str:
    return f"{v:.1f}"


def text(
    x: float,
    y: float,
    words: str,
    *,
    size: float = 9.0,
    anchor: str = "middle",
    colour: str = "#222",
    baseline: str = "",
    extra: str = "",
) -> str:
    """An SVG ``<text>`` at (x, y) px of `size` points, escaped."""
    more = f' dominant-baseline="{baseline}"' if baseline else ""
    more += f" {extra}" if extra else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size * PT:.1f}" text-anchor="{anchor}" '
        f'fill="{colour}"{more}>{html.escape(str(words))}</text>'
    )


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks of a log axis over [lo, hi]: 1, 2 and 5 per decade over fewer than three
    decades, else the powers of ten only."""
    if not (lo > 0 and hi > lo):
        return []
    subs = (1.0, 2.0, 5.0) if math.log10(hi / lo) < 3 else (1.0,)
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for s in subs:
            v = float(f"{s * 10.0**k:.12g}")
            if lo <= v <= hi:
                out.append(v)
    return out


def _tick_text(v: float) -> str:
    """A tick's number as matplotlib writes it (``g`` format, a true minus sign)."""
    return f"{v:g}".replace("-", "\u2212")


def marker_svg(x: float, y: float, kind: str, size_pt: float, face: str, edge: str, width: float):
    """One marker of matplotlib's kinds ``o``, ``v``, ``^``, ``D``, ``x``, ``|`` centred at
    (x, y)."""
    r = size_pt * PT / 2.0
    stroke = f'stroke="{edge}" stroke-width="{width * PT:.1f}"'
    if kind == "o":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}" fill="{face}" {stroke}/>'
    if kind == "v":
        pts = f"{_f(x - r)},{_f(y - r)} {_f(x + r)},{_f(y - r)} {_f(x)},{_f(y + r)}"
        return f'<polygon points="{pts}" fill="{face}" {stroke}/>'
    if kind == "^":
        pts = f"{_f(x - r)},{_f(y + r)} {_f(x + r)},{_f(y + r)} {_f(x)},{_f(y - r)}"
        return f'<polygon points="{pts}" fill="{face}" {stroke}/>'
    if kind == "D":
        pts = f"{_f(x)},{_f(y - r)} {_f(x + r)},{_f(y)} {_f(x)},{_f(y + r)} {_f(x - r)},{_f(y)}"
        return f'<polygon points="{pts}" fill="{face}" {stroke}/>'
    if kind == "x":
        return (
            f'<path d="M{_f(x - r)},{_f(y - r)}L{_f(x + r)},{_f(y + r)}'
            f'M{_f(x - r)},{_f(y + r)}L{_f(x + r)},{_f(y - r)}" fill="none" {stroke}/>'
        )
    if kind == "|":
        return f'<path d="M{_f(x)},{_f(y - r)}L{_f(x)},{_f(y + r)}" fill="none" {stroke}/>'
    raise ValueError(f"marker {kind!r} is not one of o, v, ^, D, x, |")


@dataclass
class LegendEntry:
    """A legend's row: a line (with `dash`, `width`, `opacity`), a marker, both, or a patch."""

    label: str
    colour: str = "#333"
    line: bool = False
    dash: object = "-"
    width: float = 1.3
    opacity: float = 1.0
    marker: str = ""
    face: str = ""
    patch: bool = False

    def key_svg(self, x: float, y: float, length: float) -> str:
        parts = []
        if self.patch:
            parts.append(
                f'<rect x="{_f(x)}" y="{_f(y - 5)}" width="{_f(length)}" height="10" '
                f'fill="{self.colour}" fill-opacity="{self.opacity:g}"/>'
            )
        if self.line:
            parts.append(
                f'<path d="M{_f(x)},{_f(y)}H{_f(x + length)}" stroke="{self.colour}" '
                f'stroke-width="{self.width * PT:.1f}" stroke-opacity="{self.opacity:g}" '
                f'fill="none"{_dash(self.dash)}/>'
            )
        if self.marker:
            parts.append(
                marker_svg(x + length / 2, y, self.marker, 5.5, self.face or "white",
                           self.colour, 1.1)
            )  # fmt: skip
        return "".join(parts)


def legend_svg(
    entries: Sequence[LegendEntry],
    x: float,
    y: float,
    *,
    ncols: int = 1,
    size: float = 7.0,
    anchor: str = "left",
    title: str = "",
) -> tuple[str, float, float]:
    """A legend of `entries` in `ncols` columns whose top edge is at `y` and whose left
    edge (``anchor="left"``) or centre (``"center"``) is at `x`; returns the SVG, its
    width and its height in pixels."""
    if not entries:
        return "", 0.0, 0.0
    key, gap, row_h = 22.0, 5.0, size * PT * 1.6
    rows = -(-len(entries) // ncols)
    col_w = [
        key + gap + max(text_width(e.label, size) for e in entries[c * rows : (c + 1) * rows])
        for c in range(ncols)
        if entries[c * rows : (c + 1) * rows]
    ]
    width = sum(col_w) + 14.0 * (len(col_w) - 1)
    # centred, never past the canvas's left edge (its keys were cut in half there where
    # the estimated widths of the labels put it wider than the canvas)
    left = max(x - width / 2, 2.0) if anchor == "center" else x
    parts, top = [], y
    if title:
        parts.append(text(left, top + size * PT, title, size=size, anchor="start"))
        top += row_h
    cx = left
    for c, w in enumerate(col_w):
        for r, e in enumerate(entries[c * rows : (c + 1) * rows]):
            cy = top + r * row_h + row_h / 2
            parts.append(e.key_svg(cx, cy, key))
            parts.append(
                text(cx + key + gap, cy, e.label, size=size, anchor="start", baseline="central")
            )
        cx += w + 14.0
    return "".join(parts), width, (top - y) + rows * row_h


@dataclass
class Axes:
    """A plot area at (`left`, `top`), `width` × `height` pixels, over days `xlim` and
    values `ylim` (log10 scale with `ylog`). Data drawn through it is clipped to the area;
    marks of the frame (edge marks, treatment carets and labels) are not."""

    left: float
    top: float
    width: float
    height: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    ylog: bool = False
    clip: str = ""
    data: list[str] = field(default_factory=list)
    under: list[str] = field(default_factory=list)
    frame: list[str] = field(default_factory=list)

    def x(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        lo, hi = self.xlim
        return self.left + (v - lo) / (hi - lo) * self.width

    def y(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        lo, hi = self.ylim
        if self.ylog:
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (np.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            t = (v - lo) / (hi - lo)
        return self.top + (1.0 - t) * self.height

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def _path(self, xs, ys) -> list[str]:
        """Path data of the finite runs of (xs, ys), in pixels."""
        px, py = self.x(xs), self.y(ys)
        ok = np.isfinite(px) & np.isfinite(py)
        runs, cur = [], []
        for a, b, good in zip(px, py, ok, strict=True):
            if good:
                cur.append(f"{'L' if cur else 'M'}{_f(a)},{_f(b)}")
            elif cur:
                runs.append("".join(cur))
                cur = []
        if cur:
            runs.append("".join(cur))
        return runs

    def line(self, xs, ys, colour: str, *, width=1.3, dash="-", opacity=1.0, under=False):
        d = "".join(self._path(xs, ys))
        if d:
            (self.under if under else self.data).append(
                f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width * PT:.1f}" '
                f'stroke-opacity="{opacity:g}" stroke-linejoin="round"{_dash(dash)}/>'
            )

    def band(self, xs, lo, hi, colour: str, opacity: float = 0.1) -> None:
        px, plo, phi = self.x(xs), self.y(lo), self.y(hi)
        ok = np.isfinite(px) & np.isfinite(plo) & np.isfinite(phi)
        if ok.sum() < 2:
            return
        pts = [f"{_f(a)},{_f(b)}" for a, b in zip(px[ok], phi[ok], strict=True)]
        pts += [f"{_f(a)},{_f(b)}" for a, b in zip(px[ok][::-1], plo[ok][::-1], strict=True)]
        self.under.append(
            f'<polygon points="{" ".join(pts)}" fill="{colour}" fill-opacity="{opacity:g}"/>'
        )

    def hline(self, value: float, colour: str, *, width=1.0, dash="-") -> None:
        y = float(self.y(value))
        if math.isfinite(y):
            self.under.append(
                f'<path d="M{_f(self.left)},{_f(y)}H{_f(self.left + self.width)}" '
                f'stroke="{colour}" stroke-width="{width * PT:.1f}" fill="none"{_dash(dash)}/>'
            )

    def vline(self, day: float, colour: str, *, width=0.9, dash="-") -> None:
        x = float(self.x(day))
        self.under.append(
            f'<path d="M{_f(x)},{_f(self.top)}V{_f(self.bottom)}" stroke="{colour}" '
            f'stroke-width="{width * PT:.1f}" fill="none"{_dash(dash)}/>'
        )

    def vspan(self, start: float, end: float, colour: str, opacity: float = 0.18) -> None:
        x0, x1 = float(self.x(start)), float(self.x(end))
        self.under.append(
            f'<rect x="{_f(x0)}" y="{_f(self.top)}" width="{_f(max(x1 - x0, 0.5))}" '
            f'height="{_f(self.height)}" fill="{colour}" fill-opacity="{opacity:g}"/>'
        )

    def markers(self, xs, ys, kind: str, colour: str, *, face="white", size=5.5, width=1.1):
        px, py = self.x(xs), self.y(ys)
        for a, b in zip(px, py, strict=True):
            if math.isfinite(a) and math.isfinite(b):
                self.data.append(marker_svg(a, b, kind, size, face, colour, width))

    def errorbars(self, xs, lo, hi, colour: str, *, width=0.9, cap=2.5) -> None:
        px, plo, phi = self.x(xs), self.y(lo), self.y(hi)
        c = cap * PT
        d = []
        for a, b, t in zip(px, plo, phi, strict=True):
            if math.isfinite(a) and math.isfinite(b) and math.isfinite(t):
                d.append(
                    f"M{_f(a)},{_f(b)}V{_f(t)}M{_f(a - c)},{_f(b)}H{_f(a + c)}"
                    f"M{_f(a - c)},{_f(t)}H{_f(a + c)}"
                )
        if d:
            self.data.append(
                f'<path d="{"".join(d)}" stroke="{colour}" stroke-width="{width * PT:.1f}" '
                'fill="none"/>'
            )

    def edge_marks(self, days, kind: str, colour: str, *, size=6.0, width=1.3) -> None:
        """Marks on the lower edge at `days` (a day with no value to draw)."""
        for a in self.x(days):
            if math.isfinite(a):
                self.frame.append(marker_svg(a, self.bottom, kind, size, "none", colour, width))

    def text(self, x_frac: float, y_frac: float, words: str, **kw) -> None:
        """Text at a position given as fractions of the area (0, 0: lower left)."""
        self.frame.append(
            text(self.left + x_frac * self.width, self.bottom - y_frac * self.height, words, **kw)
        )

    def yticks(self) -> list[float]:
        lo, hi = self.ylim
        return log_ticks(lo, hi) if self.ylog else nice_ticks(lo, hi, 6)

    def svg(
        self, *, xlabel: str = "", ylabel: str = "", xticklabels: bool = True, title: str = ""
    ) -> str:
        """The axes: grid, what was drawn under and over the data, frame, ticks, labels."""
        parts = []
        xt = nice_ticks(*self.xlim, 7)
        grid = []
        for v in xt:
            x = float(self.x(v))
            grid.append(f"M{_f(x)},{_f(self.top)}V{_f(self.bottom)}")
        yt = self.yticks()
        for v in yt:
            y = float(self.y(v))
            grid.append(f"M{_f(self.left)},{_f(y)}H{_f(self.left + self.width)}")
        if grid:
            parts.append(f'<path d="{"".join(grid)}" stroke="#e3e3e3" stroke-width="0.8"/>')
        clip = f' clip-path="url(#{self.clip})"' if self.clip else ""
        parts.append(f"<g{clip}>{''.join(self.under)}{''.join(self.data)}</g>")
        parts.append(
            f'<rect x="{_f(self.left)}" y="{_f(self.top)}" width="{_f(self.width)}" '
            f'height="{_f(self.height)}" fill="none" stroke="#333" stroke-width="1"/>'
        )
        ticks = []
        for v in xt:
            x = float(self.x(v))
            ticks.append(f"M{_f(x)},{_f(self.bottom)}v4.9")
            if xticklabels:
                parts.append(text(x, self.bottom + 17, _tick_text(v), size=8.5))
        for v in yt:
            y = float(self.y(v))
            ticks.append(f"M{_f(self.left)},{_f(y)}h-4.9")
            parts.append(
                text(self.left - 7, y, _tick_text(v), size=8.5, anchor="end", baseline="central")
            )
        if ticks:
            parts.append(f'<path d="{"".join(ticks)}" stroke="#333" stroke-width="1"/>')
        if xlabel:
            parts.append(text(self.left + self.width / 2, self.bottom + 36, xlabel, size=9))
        if ylabel:
            cx, cy = self.left - 52, self.top + self.height / 2
            parts.append(
                text(cx, cy, ylabel, size=9, extra=f'transform="rotate(-90 {_f(cx)} {_f(cy)})"')
            )
        if title:
            parts.append(text(self.left + self.width / 2, self.top - self.title_pad, title, size=9))
        parts.extend(self.frame)
        return "".join(parts)

    #: Pixels between the area's top edge and its title's baseline.
    title_pad: float = 8.0


@dataclass
class Canvas:
    """A figure of `width` × `height` pixels holding axes and free SVG."""

    width: float
    height: float
    parts: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    #: The plot areas, in the order they were made (their scales map data to pixels).
    panels: list[Axes] = field(default_factory=list)

    def axes(self, left, top, width, height, xlim, ylim, *, ylog=False) -> Axes:
        cid = f"a{len(self.clips)}"
        self.clips.append(
            f'<clipPath id="{cid}"><rect x="{_f(left)}" y="{_f(top)}" width="{_f(width)}" '
            f'height="{_f(height)}"/></clipPath>'
        )
        self.panels.append(Axes(left, top, width, height, xlim, ylim, ylog, clip=cid))
        return self.panels[-1]

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def svg(self) -> str:
        w, h = math.ceil(self.width), math.ceil(self.height)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif">'
            f'<defs>{"".join(self.clips)}</defs><rect width="100%" height="100%" fill="white"/>'
            + "".join(self.parts)
            + "</svg>\n"
        )

    def to_bytes(self, fmt: str = "svg") -> bytes:
        if fmt != "svg":
            raise ValueError(f"this figure is drawn as SVG only, not {fmt!r}")
        return self.svg().encode("utf-8")
