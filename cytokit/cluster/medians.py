"""Medians from histograms: bounded memory whatever the number of events."""

from __future__ import annotations

import numpy as np

__all__ = ["histogram_medians"]


def histogram_medians(hist: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Medians from histograms of `node_histograms`, interpolating within the median's bin.

    Parameters
    ----------
    hist : ndarray of int, shape (n_groups, d, n_bins)
    lo, hi : ndarray of float, shape (d,)

    Returns
    -------
    ndarray of float64, shape (n_groups, d)
        NaN where a group has no events.
    """
    n_bins = hist.shape[2]
    cum = np.cumsum(hist, axis=2)
    total = cum[:, :, -1]
    half = total / 2.0
    b = np.minimum((cum < half[:, :, None]).sum(axis=2), n_bins - 1)
    before = np.where(b > 0, np.take_along_axis(cum, np.maximum(b - 1, 0)[..., None], 2)[..., 0], 0)
    inside = np.take_along_axis(hist, b[..., None], 2)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(inside > 0, (half - before) / inside, 0.5)
    width = (hi - lo) / n_bins
    med = lo[None, :] + (b + frac) * width[None, :]
    med[total == 0] = np.nan
    return med
