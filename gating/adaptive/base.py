"""Shared pieces of the adaptive gates (`cytokit.gating.adaptive`): failures and densities."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from cytokit._numbers import counted
from cytokit.errors import GatingError
from cytokit.gating.gates import Gate
from cytokit.stats.density import gaussian_smooth, silverman_bandwidth

__all__ = ["AdaptiveGateWarning", "smoothed_density"]

_BINS = 512


class AdaptiveGateWarning(UserWarning):
    """An adaptive gate could not be fitted and used its fixed fallback bounds."""


class NoFit(Exception):
    """The data do not allow a fit (the message says why)."""


def number(v, gate: str, what: str, *, allow_none: bool = True) -> float | None:
    """`v` as a finite float (None passes when allowed); else a `GatingError` naming the gate."""
    if v is None and allow_none:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise GatingError(f"gate {gate!r}: {what}={v!r} is not a number") from None
    if not math.isfinite(x):
        raise GatingError(f"gate {gate!r}: {what}={v!r} must be finite")
    return x


# -- one-dimensional density ------------------------------------------------------------
def finite(x: np.ndarray) -> np.ndarray:
    """The finite values of `x`, flattened, as float64."""
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def bandwidth(x: np.ndarray, quantiles: tuple[float, ...] = ()):
    """Silverman's rule of thumb (robust spread) on the values `x`.

    With `quantiles`, returns ``(np.quantile(x, quantiles), bandwidth)``: one
    partial sort of `x` gives both (the same numbers as separate calls, each
    quantile being the same interpolation between the same order statistics).
    """
    q = np.quantile(x, [*quantiles, 0.75, 0.25])
    bw = silverman_bandwidth(float(np.std(x)), q[-2] - q[-1], x.size)
    return (q[:-2], bw) if quantiles else bw


def smoothed_density(
    x: np.ndarray, lo: float, hi: float, bandwidth: float, bins: int = _BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of `x` on `bins` bins over [lo, hi] smoothed by a Gaussian of sd `bandwidth`.

    Returns
    -------
    centers, density : ndarray of float64, shape (bins,)
        Bin centres and smoothed counts (not normalised).
    """
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    step = edges[1] - edges[0]
    dens = gaussian_smooth(counts, max(bandwidth / step, 1.0))
    return 0.5 * (edges[:-1] + edges[1:]), dens


#: The fallbacks used while `collect_fallbacks` is active (per thread and task, not global).
_FALLBACKS: ContextVar[list[str] | None] = ContextVar("cytokit_adaptive_fallbacks", default=None)


@contextmanager
def collect_fallbacks() -> Iterator[list[str]]:
    """Gather the messages of fallbacks used inside the block instead of warning at once.

    `GatingStrategy.fit` uses it to issue one `AdaptiveGateWarning` per
    fallback that names the sample.
    """
    found: list[str] = []
    token = _FALLBACKS.set(found)
    try:
        yield found
    finally:
        _FALLBACKS.reset(token)


#: A gate that cannot be placed on fewer events than this (all a file's, or its parent's)
#: says so before any advice on its parameters: the likely cause is a file cut short or
#: nearly empty, not the gate (a sample's file holds tens of thousands of events or more).
FEW_EVENTS = 1_000


def _few_events(gate: Gate, events: int | None) -> str:
    """The sentence that leads the failure of a gate fitted on very few events ("" if not)."""
    if events is None or events >= FEW_EVENTS:
        return ""
    had = counted(int(events), "event")
    if gate.parent is None:
        return (
            f"the file holds only {had} to fit it on: it may be cut short or nearly empty "
            "(copy or export it again, or acquire the sample again). "
        )
    return (
        f"its parent {gate.parent!r} holds only {had} to fit it on: the file may be cut "
        "short or nearly empty, or hold few of these cells. "
    )


def use_fallback(gate: Gate, why: str, fallback, *, events: int | None = None):
    """Use `fallback` with a warning (or a note for `collect_fallbacks`), or raise the failure.

    `events`: how many events the gate was given to fit on (all the file's for a top-level
    gate, else its parent's); a failure on fewer than `FEW_EVENTS` says so first.
    """
    if fallback is None:
        stop = "" if why.endswith((".", "?", "!")) else "."
        few = _few_events(gate, events)
        if few:
            why = f"The fit: {why}"
        raise GatingError(
            f"adaptive gate {gate.id!r} cannot be placed: {few}{why}{stop} Give it fixed "
            "fallback bounds, or loosen its limits"
        )
    message = f"adaptive gate {gate.id!r} used its fixed fallback: {why}"
    found = _FALLBACKS.get()
    if found is not None:
        found.append(message)
    else:
        warnings.warn(message, AdaptiveGateWarning, stacklevel=3)
    return fallback
