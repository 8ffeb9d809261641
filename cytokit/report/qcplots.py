"""A sample's QC plot on a page: its PNG of 2-D histograms with its SVG inlined over it.

`cytokit.report.figures` writes each sample's QC figure as ``plots/qc/<sample>.png``
(the histograms) and ``plots/qc/<sample>.svg`` (a standalone SVG: the PNG as its
background, then every panel's axes, labels and gate). The page shows the PNG as an
``<img>`` (a relative, lazily loaded file; a data URI in the single-file report) and the
SVG without its background inline over it, both scaled together, so text and outlines
stay sharp at any zoom and the page loads no image it does not show.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from cytokit.plots.qc import overlay_of
from cytokit.report._html import esc, img

__all__ = ["QC_CAPTION", "qc_figure_html", "qc_figures_later", "resolve_qc_figures"]

#: What the colours of a QC plot mean (each plot's caption).
QC_CAPTION = (
    "each over its parent's events (n and % of parent), axes named by marker. Blue: "
    "events the gate keeps; grey: events it leaves out (darker where more events fall, "
    "mixed where a square holds both); red outline: the gate. On a one-marker gate the "
    "kept range is shaded red over the histogram of the parent's events."
)

_WIDTH = re.compile(r'<svg [^>]*?width="(\d+)"')


def qc_figure_html(png: Path, file: str) -> str:
    """The QC figure of one sample (`png`: its ``plots/qc/<sample>.png``), with its caption.

    Falls back to the PNG alone, saying so, when the SVG beside it cannot be read. Inside
    `qc_figures_later` the SVG is not read yet: a mark stands in the page for the figure
    until `resolve_qc_figures` puts it there (the same text).
    """
    caption = f"Gates of {file}, {QC_CAPTION}"
    later = _LATER.get()
    if later is not None:  # the image links now (they depend on the page's folder)
        later.append((Path(png), caption, img(png, f"Gates of {file}"), img(png, caption)))
        return f"\x00qc{later.nonce}:{len(later) - 1}\x00"
    return _figure(png, caption, lambda: img(png, f"Gates of {file}"), lambda: img(png, caption))


def _figure(png: Path, caption: str, shown, fallback) -> str:
    try:
        svg = overlay_of(Path(png).with_suffix(".svg").read_text(encoding="utf-8"))
    except OSError as exc:
        return (
            f"<figure>{fallback()}<figcaption>{esc(caption)} (The labels and gates "
            f"could not be drawn: {esc(exc.strerror or exc)}.)</figcaption></figure>"
        )
    m = _WIDTH.match(svg)
    width = f' style="max-width:{m.group(1)}px"' if m else ""
    return (
        f'<figure class="qc"><div class="qcfig"{width}>{shown()}{svg}'
        f"</div><figcaption>{esc(caption)}</figcaption></figure>"
    )


class _Later(list):
    """The QC figures marked in pages, in order; `nonce` makes this build's marks its own
    (no text from a file can name one)."""

    def __init__(self) -> None:
        super().__init__()
        self.nonce = secrets.token_hex(8)


_LATER: contextvars.ContextVar[_Later | None] = contextvars.ContextVar("_LATER", default=None)


@contextlib.contextmanager
def qc_figures_later() -> Iterator[list]:
    """Within the block, pages get a mark for each QC figure instead of its SVG, so that
    they can be written while the figures are drawn; `resolve_qc_figures` with the list
    yielded puts the figures in."""
    later = _Later()
    token = _LATER.set(later)
    try:
        yield later
    finally:
        _LATER.reset(token)


def resolve_qc_figures(text: str, later: list) -> str:
    """`text` with each mark of `qc_figures_later` replaced by its QC figure, now drawn."""

    def figure(m: re.Match) -> str:
        png, caption, shown, fallback = later[int(m.group(1))]
        return _figure(png, caption, lambda: shown, lambda: fallback)

    if not later:
        return text
    return re.sub(f"\x00qc{later.nonce}:(\\d+)\x00", figure, text)
