"""Small pieces of figures drawn without matplotlib: PNG bytes of an RGB array, axis ticks,
SVG text.

Used by the QC plots (`cytokit.plots.qc`), which are a 2-D histogram as a PNG under an SVG
of the axes, labels and gates: a figure is a few milliseconds instead of a quarter second.
PNG bytes depend only on the array (no date, no software name), so the same histogram
gives the same file.
"""

from __future__ import annotations

import html
import math
import struct
import zlib

import numpy as np

__all__ = ["nice_ticks", "png_bytes", "svg_text", "tick_label"]


def png_bytes(rgb: np.ndarray, *, level: int = 6) -> bytes:
    """A PNG of an 8-bit RGB image.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (height, width, 3)
        Row 0 is the top of the image.
    level : int
        zlib compression level (1 fastest, 9 smallest).

    Returns
    -------
    bytes
        The PNG file (8-bit truecolour, no interlace, no ancillary chunk).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(
            f"png_bytes: need a non-empty uint8 (h, w, 3) array, got {rgb.dtype} {rgb.shape}"
        )
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # filter byte 0 (none) per row
    rows[:, 1:] = rgb.reshape(height, 3 * width)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + chunk(b"IEND", b"")
    )


def nice_ticks(lo: float, hi: float, most: int = 4) -> list[float]:
    """At most `most` round values (1, 2, 2.5 or 5 × 10^k apart) within [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    step = 10.0 ** math.floor(math.log10((hi - lo) / most))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0, 20.0):
        if math.floor(hi / (m * step)) - math.ceil(lo / (m * step)) + 1 <= most:
            step *= m
            break
    first = math.ceil(lo / step)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step) + 1)]


def tick_label(value: float) -> str:
    """A tick's text: 3 significant digits, thousands as k (``250k``), 0 as ``0``."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}" if a >= 1e-12 else "0"


def svg_text(
    x: float, y: float, text: str, *, size: float = 10, anchor: str = "middle", extra: str = ""
) -> str:
    """An SVG ``<text>`` (escaped), `extra` being further attributes."""
    more = f" {extra}" if extra else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" text-anchor="{anchor}"{more}>'
        f"{html.escape(text)}</text>"
    )
