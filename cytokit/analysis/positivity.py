"""Positivity thresholds from an FMO (fluorescence-minus-one) or isotype control.

An FMO control is the tube stained with every antibody but the marker's: what
its cells read in the marker's channel is the spread of negative cells
(autofluorescence and spillover of the other dyes), so the marker's
threshold is placed above nearly all of them: at the `FMO_PERCENTILE`-th
percentile of the control's events of the same population (0.5 % of
negative cells read above it). It serves where the stained sample shows no
valley (a dim marker, or one almost every cell carries), where a density
valley would fall anywhere.

The percentile is read with linear interpolation between order statistics
(numpy's default); the control must hold enough events that several lie
above it (`min_control_events`).
"""

from __future__ import annotations

import numpy as np

from cytokit._numbers import counted
from cytokit.errors import CytokitError

__all__ = ["FMO_PERCENTILE", "fmo_threshold", "min_control_events"]

#: Percentile of the FMO control's events a marker's threshold is placed at.
FMO_PERCENTILE = 99.5
#: Events of the control that must lie above its percentile for the threshold to be read.
_ABOVE = 5


def min_control_events(percentile: float = FMO_PERCENTILE) -> int:
    """Events a control needs so that at least 5 of them lie above `percentile` (1,000 at 99.5)."""
    return int(np.ceil(_ABOVE / (1.0 - percentile / 100.0) - 1e-9))


def fmo_threshold(
    control: np.ndarray, *, percentile: float = FMO_PERCENTILE, where: str = "the control"
) -> float:
    """The positivity threshold of a marker from its FMO control's values.

    Parameters
    ----------
    control : ndarray of float
        The marker channel's values (on the scale the threshold is applied
        on) of the control's events of the population.
    percentile : float
        In (50, 100).
    where : str
        The control file and population, for messages.

    Returns
    -------
    float

    Raises
    ------
    CytokitError
        Too few finite events (`min_control_events`), or a percentile
        outside (50, 100).
    """
    if not 50.0 < percentile < 100.0:
        raise CytokitError(
            f"FMO percentile {percentile!r} must be between 50 and 100 (e.g. {FMO_PERCENTILE})"
        )
    values = np.asarray(control, dtype=np.float64)
    values = values[np.isfinite(values)]
    need = min_control_events(percentile)
    if len(values) < need:
        raise CytokitError(
            f"{where}: {counted(len(values), 'event')}, fewer than the {need} an FMO threshold "
            f"at the {percentile} th percentile needs; acquire more events of the control, or give "
            "the marker a fixed threshold"
        )
    return float(np.percentile(values, percentile))
