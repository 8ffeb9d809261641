"""Fine histograms and the smoothed densities, modes and valleys read from them.

A `Histogram` keeps one population's values of one marker in fixed bins
(values beyond the ends fall in the end bins, so counts on either side of
any threshold inside the range are exact). `smooth` applies a Gaussian kernel
with Silverman's bandwidth computed from the robust spread,
``0.9 · min(sd, IQR / 1.349) · n^(-1/5)`` (at least two bins); `peaks` finds
local maxima and `valley` the lowest point between two of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["N_BINS", "Histogram", "histogram_edges", "peaks", "smooth", "valley"]

#: Histogram bins between the robust ends of the data.
N_BINS = 2048


@dataclass(frozen=True)
class Histogram:
    """Counts of values in fixed bins; values beyond the ends fall in the end bins.

    Attributes
    ----------
    edges : ndarray of float64, shape (n + 1,)
    counts : ndarray of int64, shape (n,)
    """

    edges: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, edges: np.ndarray) -> Histogram:
        """Histogram of `values` (NaN ignored) on `edges`, out-of-range values clipped in."""
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        n = edges.size - 1
        idx = np.searchsorted(edges, v, side="right") - 1
        np.clip(idx, 0, n - 1, out=idx)
        return cls(edges, np.bincount(idx, minlength=n).astype(np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    def above(self, threshold: float) -> int:
        """Events in bins at or above `threshold` (snapped to the nearest edge)."""
        i = int(np.argmin(np.abs(self.edges - threshold)))
        return int(self.counts[i:].sum())

    def to_array(self) -> np.ndarray:
        """float64 (2, n + 1): edges; counts followed by a 0 (the QC file layout)."""
        return np.vstack([self.edges, np.append(self.counts, 0).astype(np.float64)])

    @classmethod
    def from_array(cls, a: np.ndarray) -> Histogram:
        a = np.asarray(a, dtype=np.float64)
        return cls(a[0].copy(), a[1, :-1].astype(np.int64))


def histogram_edges(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin edges spanning the robust range of `values` (0.05-99.95 %) plus a margin.

    Returns
    -------
    ndarray of float64, shape (n_bins + 1,)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.linspace(0.0, 1.0, n_bins + 1)
    lo, hi = np.quantile(v, [0.0005, 0.9995])
    span = hi - lo
    if not span > 0:
        span = max(abs(lo), 1.0) * 0.1
    return np.linspace(lo - 0.1 * span, hi + 0.1 * span, n_bins + 1)


def smooth(hist: Histogram) -> tuple[np.ndarray, float]:
    """Kernel-smoothed counts per bin and the bandwidth in bins (see the module docstring)."""
    counts = hist.counts.astype(np.float64)
    n = counts.sum()
    if n <= 0:
        return counts, 2.0
    centres = hist.centres
    step = float(centres[1] - centres[0]) if centres.size > 1 else 1.0
    cum = np.cumsum(counts)
    q25, q75 = np.interp([0.25 * n, 0.75 * n], cum, centres)
    mean = float((counts * centres).sum() / n)
    sd = float(np.sqrt(max((counts * (centres - mean) ** 2).sum() / n, 0.0)))
    spread = min(sd, (q75 - q25) / 1.349) or sd or step
    bw = max(0.9 * spread * n ** (-0.2) / step, 2.0)
    half = int(np.ceil(4 * bw))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / bw) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.zeros(half), counts, np.zeros(half)])
    return np.convolve(padded, kernel, mode="valid"), bw


def peaks(f: np.ndarray) -> np.ndarray:
    """Indices of local maxima (plateaus: their first bin)."""
    left = np.concatenate([[-np.inf], f[:-1]])
    right = np.concatenate([f[1:], [-np.inf]])
    return np.flatnonzero((f > left) & (f >= right) & (f > 0))


def valley(f: np.ndarray, a: int, b: int) -> int:
    """Index of the lowest point of `f` between indices `a` and `b` (inclusive)."""
    lo, hi = min(a, b), max(a, b)
    seg = f[lo : hi + 1]
    where = np.flatnonzero(seg == seg.min())
    return lo + int(where[len(where) // 2])  # middle of a flat minimum
