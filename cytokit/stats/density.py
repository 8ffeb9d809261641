"""Fine histograms and the smoothed densities, modes and valleys read from them.

The one implementation of kernel smoothing and mode finding, used by the
donor-chimerism thresholds (`cytokit.analysis.chimerism`), the phenotype
positivity thresholds (`cytokit.analysis.phenotype`) and the adaptive gates
(`cytokit.gating.adaptive`). Each of those keeps its own rule for which pair
of modes and which point of their valley to cut at, because they answer
different questions; the pieces below are shared.

A `Histogram` keeps one population's values of one marker in fixed bins
(values beyond the ends fall in the end bins, so counts on either side of
any threshold inside the range are exact). `silverman_bandwidth` is
Silverman's rule on the robust spread,
``0.9 · min(sd, IQR / 1.349) · n^(-1/5)``; `gaussian_smooth` convolves counts
with a Gaussian truncated at 4 sd, as if the bins beyond the ends were empty
(the result has as many bins as the input, whatever the width). `smooth`
applies both to a `Histogram` (at least two bins wide); `peaks` finds local
maxima, `valley` the lowest point between two of them and `dip_valley` that
point only when the two peaks are separate modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DIP",
    "N_BINS",
    "Histogram",
    "dip_valley",
    "gaussian_smooth",
    "histogram_edges",
    "peaks",
    "silverman_bandwidth",
    "smooth",
    "valley",
]

#: Histogram bins between the robust ends of the data.
N_BINS = 2048
#: Two peaks are separate modes when the lower is at least this many times their valley.
DIP = 1.5


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

    def edge_index(self, threshold: float) -> int:
        """Index of the edge nearest `threshold`: bins from it on are at or above it."""
        return int(np.argmin(np.abs(self.edges - threshold)))

    def above(self, threshold: float) -> int:
        """Events in bins at or above `threshold` (snapped to the nearest edge)."""
        return int(self.counts[self.edge_index(threshold) :].sum())

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


def silverman_bandwidth(sd: float, iqr: float, n: float, fallback: float = 0.0) -> float:
    """Silverman's rule of thumb on the robust spread: ``0.9 · min(sd, IQR/1.349) · n^(-1/5)``.

    Parameters
    ----------
    sd, iqr : float
        Standard deviation and interquartile range of the values.
    n : float
        Number of values.
    fallback : float
        Spread used when both `sd` and the IQR are 0 (the rule would give 0).

    Returns
    -------
    float
        Bandwidth in the values' units.
    """
    spread = min(sd, iqr / 1.349) or sd or fallback
    return 0.9 * spread * n ** (-0.2)


def gaussian_smooth(counts: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """`counts` convolved with a Gaussian of sd `sigma` bins, truncated at `truncate` sd.

    Bins beyond the ends count as empty, so the result has the length of
    `counts` for any `sigma` (a kernel wider than the data included).

    Returns
    -------
    ndarray of float64, shape like `counts`
    """
    counts = np.asarray(counts, dtype=np.float64)
    half = int(np.ceil(truncate * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.zeros(half), counts, np.zeros(half)])
    return np.convolve(padded, kernel, mode="valid")


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
    bw = max(silverman_bandwidth(sd, q75 - q25, n, fallback=step) / step, 2.0)
    return gaussian_smooth(counts, bw), bw


def peaks(f: np.ndarray, *, ends: bool = True) -> np.ndarray:
    """Indices of local maxima above 0 (plateaus: their first bin).

    With ``ends=False`` the first and last bins are never peaks (a density cut
    off at the end of its range is not a mode).
    """
    left = np.concatenate([[-np.inf], f[:-1]])
    right = np.concatenate([f[1:], [-np.inf]])
    found = np.flatnonzero((f > left) & (f >= right) & (f > 0))
    if not ends:
        found = found[(found > 0) & (found < f.size - 1)]
    return found


def valley(f: np.ndarray, a: int, b: int) -> int:
    """Index of the lowest point of `f` between indices `a` and `b` (inclusive)."""
    lo, hi = min(a, b), max(a, b)
    seg = f[lo : hi + 1]
    where = np.flatnonzero(seg == seg.min())
    return lo + int(where[len(where) // 2])  # middle of a flat minimum


def dip_valley(f: np.ndarray, a: int, b: int, bw: float, dip: float = DIP) -> int | None:
    """The valley between peaks `a` and `b` of `f` when they are separate modes, else None.

    Separate: at least 3 bandwidths `bw` (in bins) apart, and the lower peak at
    least `dip` times the valley's density.
    """
    if abs(b - a) < 3 * bw:
        return None
    m = valley(f, a, b)
    if min(f[a], f[b]) < dip * f[m]:
        return None
    return m
