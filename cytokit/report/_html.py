"""Small HTML building blocks for the report: escaping, numbers, tables, images, the page shell.

Everything that comes from a file (ids, names, keyword values, reasons) goes
through `esc` (``html.escape`` with quotes) before it reaches the page; the
functions here take plain values and escape them themselves, so callers
cannot forget. The page carries a Content-Security-Policy that allows no
network request and no script at all: even a value that slipped through
could not load or run anything.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import html
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["Markup", "document", "esc", "figure", "fmt", "images_as_files", "img", "table"]

#: No network and no script. A page of the multi-page report shows PNG files of its own
#: folder ('self': the results folder opened from disk); the single file only data URIs.
CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: #1d2228; margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2em 1.6em 3em; background: #fff; }
h1 { font-size: 1.6em; margin: .2em 0; }
h2 { font-size: 1.3em; border-bottom: 2px solid #d8dde3; padding-bottom: .15em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 .4em; }
nav { font-size: .92em; margin: .6em 0 1em; }
nav a { margin-right: .8em; white-space: nowrap; }
a { color: #1f5fa8; }
.meta { color: #5b6570; font-size: .9em; }
.alert { background: #fdecea; border: 1px solid #e0a19b; color: #8a1f11; padding: .6em .9em;
         border-radius: 4px; font-weight: 600; margin: .8em 0; }
.ok { background: #eaf6ec; border: 1px solid #9fd0a8; color: #1f5e2c; padding: .5em .9em;
      border-radius: 4px; margin: .8em 0; }
.flags { background: #fff8e6; border: 1px solid #e8cf8a; padding: .4em 1em .4em 1.6em;
         border-radius: 4px; }
.flags li { margin: .2em 0; }
table { border-collapse: collapse; margin: .4em 0 1em; font-size: .86em; }
.wide { max-width: 100%; overflow-x: auto; }
caption { text-align: left; font-weight: 600; padding: .2em 0; }
th, td { border: 1px solid #d8dde3; padding: .22em .5em; vertical-align: top; }
th { background: #eef1f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.not_detected { color: #7a828a; font-style: italic; }
td.not_quantifiable { color: #7a5a00; }
td.marker_failed { color: #a12622; background: #fbeaea; white-space: normal; }
@media print { .wide { overflow: visible; } main { max-width: none; } }
figure { margin: .6em 0 1.2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { font-size: .85em; color: #5b6570; }
.qcfig { position: relative; }
.qcfig img { display: block; width: 100%; height: auto; border: 0; image-rendering: pixelated; }
.qcfig > svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
details { margin: .3em 0 .6em; }
summary { cursor: pointer; font-weight: 600; }
.badge { display: inline-block; font-size: .75em; padding: .05em .5em; border-radius: 3px;
         background: #e4e9ef; color: #36414c; vertical-align: middle; margin-left: .4em; }
code { font-size: .92em; }
"""


def esc(value) -> str:
    """`value` as escaped text; missing values (None, NaN) as an empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return html.escape(str(value), quote=True)


def fmt(value, *, digits: int = 3, integer: bool = False, missing: str = "–") -> str:
    """A number for a table cell (not escaped: digits only): 3 significant digits, thousands
    separated; `missing` for NaN/None/non-numbers."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return missing
    if not math.isfinite(v):
        return missing
    if integer or v == int(v):  # a whole number reads as one: 3, not 3.00
        return f"{round(v):,}"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    if a >= 1e-3:
        decimals = max(0, digits - 1 - math.floor(math.log10(a)))
        return f"{v:.{decimals}f}"
    return f"{v:.{digits - 1}e}"


@dataclass
class _Files:
    """Where the page being written puts its images: PNG files under `out`, referenced from
    a page `depth` folders below it. Images given as bytes are written once, named by their
    SHA-256 (``plots/img/<hash>.png``), so that the same figure is the same file."""

    out: Path
    depth: int = 0
    used: set[Path] = field(default_factory=set)

    def src(self, image: bytes | Path) -> str:
        if isinstance(image, (bytes, bytearray)):
            from cytokit._io import atomic_write_bytes

            path = self.out / "plots" / "img" / f"{hashlib.sha256(image).hexdigest()[:24]}.png"
            if path not in self.used and not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, bytes(image))
        else:
            path = Path(image)
        self.used.add(path)
        rel = Path(os.path.relpath(path, self.out)).as_posix()
        return "../" * self.depth + rel


_FILES: contextvars.ContextVar[_Files | None] = contextvars.ContextVar("_FILES", default=None)


@contextlib.contextmanager
def images_as_files(out: Path, depth: int = 0, used: set[Path] | None = None) -> Iterator[_Files]:
    """Within the block, `img` and `figure` reference PNG files under `out` from a page
    `depth` folders below it instead of embedding them (the paths used are collected in
    `used`); outside any such block every image is a data URI (the single-file report)."""
    files = _Files(Path(out), depth, used if used is not None else set())
    token = _FILES.set(files)
    try:
        yield files
    finally:
        _FILES.reset(token)


def img(png: bytes | Path, alt: str) -> str:
    """An ``<img>`` of a PNG or SVG (bytes, or the path of the file): a relative link inside
    `images_as_files`, else the image embedded as a data URI."""
    files = _FILES.get()
    if files is not None:
        return f'<img src="{esc(files.src(png))}" alt="{esc(alt)}" loading="lazy">'
    if not isinstance(png, (bytes, bytearray)):
        png = Path(png).read_bytes()
    mime = "image/png" if bytes(png[:8]) == b"\x89PNG\r\n\x1a\n" else "image/svg+xml"
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:{mime};base64,{data}" alt="{esc(alt)}">'


def figure(png: bytes | Path | None, caption: str) -> str:
    """A figure with its caption; the image's alt text is the caption's first clause (up to
    its first ";"), so that a screen reader does not read the whole caption twice."""
    if png is None:
        return ""
    alt = caption.split(";", 1)[0].strip().rstrip(".") or caption
    return f"<figure>{img(png, alt)}<figcaption>{esc(caption)}</figcaption></figure>"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence],
    *,
    caption: str = "",
    numeric: Sequence[bool] | None = None,
) -> str:
    """A table whose cells are plain values (escaped here) or `Markup` (inserted as is).

    Parameters
    ----------
    header : sequence of str
    rows : iterable of sequences
        Plain values are escaped; a `Markup` is inserted as is.
    caption : str
    numeric : sequence of bool, optional
        Columns to right-align.
    """
    numeric = list(numeric or [False] * len(header))
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for j, value in enumerate(row):
            classes = ["num"] if j < len(numeric) and numeric[j] else []
            if isinstance(value, Markup):
                text = str(value)
                classes += value.classes
            else:
                text = esc(value)
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    # in a box that scrolls sideways: a table wider than the page moves only itself
    return (
        f'<div class="wide"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


class Markup(str):
    """HTML built by this module's callers from escaped parts (inserted without escaping)."""

    classes: tuple[str, ...] = ()

    def __new__(cls, text: str, classes: Sequence[str] = ()):
        obj = super().__new__(cls, text)
        obj.classes = tuple(c for c in classes if c)
        return obj


def frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[list]:
    """`frame`'s values in `columns` (missing columns give empty cells)."""
    out = []
    for _, row in frame.iterrows():
        out.append([row[c] if c in frame.columns else None for c in columns])
    return out


def document(title: str, body: str) -> str:
    """The whole page: UTF-8, inline CSS, a CSP without network or scripts."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def is_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and isinstance(frame, pd.DataFrame) and not frame.empty


def sorted_days(values) -> list:
    return sorted({float(v) for v in values if is_number(v)})


def day_text(value) -> str:
    v = as_float(value)
    if not math.isfinite(v):
        return esc(value)
    return str(int(v)) if v == int(v) else f"{v:g}"
