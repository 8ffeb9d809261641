"""How many workers to start when the caller does not say: the cores this process may use."""

from __future__ import annotations

import os

__all__ = ["default_workers"]


def default_workers(at_most: int | None = None) -> int:
    """Cores this process may use (its CPU affinity), at least 1 and at most `at_most`.

    Parameters
    ----------
    at_most : int, optional
        Upper bound (the simulator keeps its threads to 4: beyond that its
        blocks wait on memory, not on cores).

    Returns
    -------
    int
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if at_most is not None:
        cores = min(at_most, cores)
    return max(1, cores)
