"""Function assays: % positive in a stimulated tube minus its unstimulated background.

A function tube (CD107a degranulation, IFN-γ) is acquired stimulated (against
target cells) and unstimulated, from the same visit. The response of a
population is its % positive stimulated minus % positive unstimulated. The
two tubes are independent samples of cells, so the difference gets
Newcombe's hybrid score interval (Newcombe, Stat Med 1998;17:873-890,
method 10), built from the Wilson interval of each proportion: close to
nominal coverage at the small percentages function assays give, and defined
at 0 positive events, where the Wald interval of a difference collapses.

A background above `HIGH_BACKGROUND` % positive is flagged: the cells were
activated before stimulation (or the marker's threshold is too low), and the
difference then says less about the response to the target cells.
"""

from __future__ import annotations

import math

import numpy as np

from cytokit.errors import CytokitError
from cytokit.stats.intervals import wilson_interval

__all__ = ["HIGH_BACKGROUND", "background_subtracted"]

#: % positive of the unstimulated tube above which a response is flagged (many
#: laboratories reject CD107a/IFN-γ assays whose unstimulated control passes 5 %).
HIGH_BACKGROUND = 5.0


def background_subtracted(
    positive_stim: int,
    events_stim: int,
    positive_unstim: int,
    events_unstim: int,
    *,
    level: float = 0.95,
    high_background: float = HIGH_BACKGROUND,
) -> dict:
    """% positive stimulated minus unstimulated, with Newcombe's interval of the difference.

    Parameters
    ----------
    positive_stim, events_stim : int
        Positive events and events of the population in the stimulated tube.
    positive_unstim, events_unstim : int
        The same in the unstimulated tube of the same visit.
    level : float
        Confidence level.
    high_background : float
        % positive unstimulated above which ``high_background`` is True.

    Returns
    -------
    dict
        ``pct_stim``, ``pct_unstim``, ``pct_net`` (the difference, percentage
        points, may be negative), ``ci_low``, ``ci_high`` (of ``pct_net``),
        ``high_background`` (bool), ``ci_method`` (``"newcombe"``). With no
        events in either tube every number is NaN and ``high_background`` is
        False: nothing was measured.

    Raises
    ------
    CytokitError
        A count that is negative, not whole, or more positives than events.
    """
    counts = {
        "positive_stim": positive_stim,
        "events_stim": events_stim,
        "positive_unstim": positive_unstim,
        "events_unstim": events_unstim,
    }
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise CytokitError(f"background_subtracted: {name} = {value!r} must be a count >= 0")
    if positive_stim > events_stim or positive_unstim > events_unstim:
        raise CytokitError(
            f"background_subtracted: more positive events than events ({positive_stim}/"
            f"{events_stim} stimulated, {positive_unstim}/{events_unstim} unstimulated)"
        )
    nan = float("nan")
    if events_stim == 0 or events_unstim == 0:
        return {
            "pct_stim": nan if events_stim == 0 else 100.0 * positive_stim / events_stim,
            "pct_unstim": nan if events_unstim == 0 else 100.0 * positive_unstim / events_unstim,
            "pct_net": nan,
            "ci_low": nan,
            "ci_high": nan,
            "high_background": False,
            "ci_method": "newcombe",
        }
    p1 = positive_stim / events_stim
    p2 = positive_unstim / events_unstim
    (l1, l2), (u1, u2) = wilson_interval(
        [positive_stim, positive_unstim], [events_stim, events_unstim], level
    )
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return {
        "pct_stim": 100.0 * p1,
        "pct_unstim": 100.0 * p2,
        "pct_net": 100.0 * d,
        "ci_low": 100.0 * low,
        "ci_high": 100.0 * high,
        "high_background": bool(100.0 * p2 > high_background),
        "ci_method": "newcombe",
    }
