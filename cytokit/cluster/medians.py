"""Medians from histograms: bounded memory whatever the number of events."""

from __future__ import annotations

import numpy as np

__all__ = ["histogram_medians"]


def histogram_medians(hist: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Medians from histograms of `node_histograms`, exact to within one bin.

    The median is the middle event (odd count) or the mean of the two middle ones
    (even count), each placed within its bin by its rank among the bin's events
    (the ``j``-th of ``m`` at ``(j - 0.5) / m`` of the bin's width): two events in
    bins far apart have their mean between them, not an end of the lower bin.

    Parameters
    ----------
    hist : ndarray of int, shape (n_groups, d, n_bins)
    lo, hi : ndarray of float, shape (d,)

    Returns
    -------
    ndarray of float64, shape (n_groups, d)
        NaN where a group has no events.
    """
    cum = np.cumsum(hist, axis=2)
    total = cum[:, :, -1]
    low = (total + 1) // 2  # the ranks (from 1) of the two middle events, equal when odd
    high = total // 2 + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        med = 0.5 * (_ranked(hist, cum, low, lo, hi) + _ranked(hist, cum, high, lo, hi))
    med[total == 0] = np.nan
    return med


def _ranked(hist, cum, rank, lo, hi) -> np.ndarray:
    """Where the event of each `rank` (from 1) lies: its bin, and its place in it."""
    n_bins = hist.shape[2]
    b = np.minimum((cum < rank[:, :, None]).sum(axis=2), n_bins - 1)
    before = np.where(b > 0, np.take_along_axis(cum, np.maximum(b - 1, 0)[..., None], 2)[..., 0], 0)
    inside = np.take_along_axis(hist, b[..., None], 2)[..., 0]
    frac = np.where(inside > 0, (rank - before - 0.5) / inside, 0.5)
    width = (hi - lo) / n_bins
    return lo[None, :] + (b + frac) * width[None, :]
