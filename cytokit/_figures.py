"""Figures rendered in memory and written atomically, the same bytes on every run.

The one rendering path of the report's plots (`cytokit.plots`) and of the
clustering's (`cytokit.cluster`): a fixed SVG hash salt, text as paths in SVG,
no date in SVG and PDF, and no ``Software`` chunk (it names matplotlib's
version) in PNG.
"""

from __future__ import annotations

import io
from pathlib import Path

from cytokit._io import atomic_write_bytes
from cytokit.errors import CytokitError

__all__ = ["DPI", "FORMATS", "RC", "figure_bytes", "save_figure"]

#: Resolution of PNG output (dots per inch) unless a caller gives its own.
DPI = 100
#: Formats a figure can be rendered as.
FORMATS = ("png", "svg", "pdf")
#: matplotlib settings of every figure (also while it is built: text sizes follow them).
RC = {"svg.hashsalt": "cytokit", "svg.fonttype": "path", "font.size": 9.0}


def figure_bytes(fig, fmt: str = "png", *, dpi: float | None = None) -> bytes:
    """`fig` rendered as ``"png"``, ``"svg"`` or ``"pdf"`` bytes, identical on every run.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    fmt : {"png", "svg", "pdf"}
    dpi : float, optional
        Default `DPI`.

    Raises
    ------
    CytokitError
        An unknown format.
    """
    if fmt not in FORMATS:
        raise CytokitError(f"image format {fmt!r} must be one of {', '.join(FORMATS)}")
    import matplotlib  # only figures need it; keeps the base layer light to import

    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None}
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format=fmt, dpi=dpi or DPI, metadata=meta)
    return buf.getvalue()


def save_figure(
    fig, path: str | Path, formats: tuple[str, ...] = ("png", "svg"), *, dpi: float | None = None
) -> dict[str, Path]:
    """Write `fig` as ``<path>.png`` and ``<path>.svg`` (or `formats`), each atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path
        The file path without suffix; a suffix of `FORMATS` is replaced.
    formats : tuple of {"png", "svg", "pdf"}
    dpi : float, optional
        Default `DPI`.

    Returns
    -------
    dict of str to Path
        Format → file written.
    """
    path = Path(path)
    if path.suffix.lower().lstrip(".") in FORMATS:
        path = path.with_suffix("")
    return {
        fmt: atomic_write_bytes(
            path.with_name(f"{path.name}.{fmt}"), figure_bytes(fig, fmt, dpi=dpi)
        )
        for fmt in formats
    }
