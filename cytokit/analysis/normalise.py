"""Intensities comparable across days: quantile mapping against a reference sample per batch.

A cytometer's gains drift from day to day (a PMT voltage, a laser, a
cleaning), and a marker's raw median moves with them. Following CytoNorm
(Van Gassen et al., Cytometry A 2020;97:268-278), an aliquot of one
reference sample is acquired in every batch; its quantiles per marker are
mapped onto the mean of those quantiles over all batches (the goal), and
the same monotone mapping, a piecewise-linear spline through the quantile
pairs, is applied to every file of that batch. A population whose
intensity does not change biologically then keeps its median across days,
and the raw values stay beside the normalised ones.

Why reference samples rather than beads: beads calibrate a detector's
response, but not the staining (antibody lot, incubation) that moves a
marker's intensity too, and the lab's PBMC reference is already acquired
with the panel; bead (MESF) calibration needs a bead file per fluorochrome
that monitoring studies rarely have.

Beyond the outermost quantiles the map continues with the slope of its
outer 10 % (linear extrapolation), so bright and dim events are neither
clipped nor folded back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cytokit.errors import CytokitError

__all__ = ["QUANTILES", "QuantileMap", "goal_quantiles", "quantile_map"]

#: The quantiles the map is built on: 1 % to 99 % in 1 % steps.
QUANTILES = np.linspace(0.01, 0.99, 99)
#: Events a reference needs for its 1 % and 99 % quantiles to rest on several events each.
MIN_REFERENCE_EVENTS = 500


@dataclass(frozen=True)
class QuantileMap:
    """A monotone piecewise-linear map from one batch's scale to the goal's.

    Attributes
    ----------
    source, target : ndarray
        Increasing knots: the batch reference's quantiles and the goal's.
    """

    source: np.ndarray
    target: np.ndarray

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """`values` mapped (NaN stays NaN; a new array)."""
        x = np.asarray(values, dtype=np.float64)
        src, dst = self.source, self.target
        out = np.interp(x, src, dst)
        k = max(1, len(src) // 10)
        lo_slope = (dst[k] - dst[0]) / (src[k] - src[0])
        hi_slope = (dst[-1] - dst[-1 - k]) / (src[-1] - src[-1 - k])
        low, high = x < src[0], x > src[-1]
        out[low] = dst[0] + (x[low] - src[0]) * lo_slope
        out[high] = dst[-1] + (x[high] - src[-1]) * hi_slope
        return out


def _quantiles(values: np.ndarray, where: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < MIN_REFERENCE_EVENTS:
        raise CytokitError(
            f"{where}: {len(v)} events of the reference, fewer than the "
            f"{MIN_REFERENCE_EVENTS} quantile normalisation needs; acquire more of the "
            "reference sample, or leave this marker unnormalised"
        )
    return np.quantile(v, QUANTILES)


def goal_quantiles(references: Sequence[np.ndarray], where: str = "the references") -> np.ndarray:
    """The goal: the mean over batches of each reference's quantiles (`QUANTILES`)."""
    if not len(references):
        raise CytokitError(f"{where}: no reference sample to normalise against")
    return np.mean([_quantiles(r, f"{where} #{i + 1}") for i, r in enumerate(references)], axis=0)


def quantile_map(
    reference: np.ndarray, goal: np.ndarray, where: str = "the reference"
) -> QuantileMap:
    """The map taking one batch's `reference` values onto the `goal` quantiles.

    Parameters
    ----------
    reference : ndarray
        The marker's values of the batch's reference sample (one population).
    goal : ndarray
        `goal_quantiles` of all batches.
    where : str
        The reference file and marker, for messages.

    Raises
    ------
    CytokitError
        Too few events, or a reference whose quantiles do not spread (a
        dead or saturated channel: every event at a few values).
    """
    src = _quantiles(reference, where)
    keep = np.concatenate([[True], np.diff(src) > 0])  # ties: a discrete or clipped scale
    if keep.sum() < len(src) // 2:
        raise CytokitError(
            f"{where}: half the reference's quantiles are the same value (a dead, stuck or "
            "saturated channel); this batch cannot be normalised on it"
        )
    return QuantileMap(src[keep], np.asarray(goal, dtype=np.float64)[keep])
