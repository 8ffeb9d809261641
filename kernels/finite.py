"""Counting non-finite event values (NaN, +inf, -inf) per channel in one pass.

A NaN or an infinity in an FCS file is a value the instrument did not measure
(a float file written by software, a log decode overflowing). The gate kernels
keep IEEE semantics, so such an event is in no shape gate that reads the
channel (and so in a Boolean ``not`` of one);
callers decide what to do with it (`cytokit.finite` drops and counts it).
"""

from __future__ import annotations

import numpy as np

from ._config import jit, native

__all__ = ["finite_rows", "nonfinite_counts"]


@jit
def _scan(events, cols, read, counts):
    n = events.shape[0]
    k = cols.shape[0]
    bad = 0
    for i in range(n):
        # x * 0 is 0 for a finite x and NaN for NaN and ±inf: one test per event row
        acc = 0.0
        for c in range(k):
            acc += events[i, cols[c]] * 0.0
        if acc == 0.0:
            continue
        row_bad = False
        for c in range(k):
            j = cols[c]
            x = events[i, j]
            if np.isnan(x):
                counts[0, j] += 1
            elif x > 0:
                if np.isinf(x):
                    counts[1, j] += 1
                else:
                    continue
            elif np.isinf(x):
                counts[2, j] += 1
            else:
                continue
            if read[j]:
                row_bad = True
        if row_bad:
            bad += 1
    return bad


@jit
def _finite_rows(events, read, keep):
    n, k = events.shape
    for i in range(n):
        ok = True
        for j in range(k):
            if read[j] and not np.isfinite(events[i, j]):
                ok = False
                break
        keep[i] = ok


def finite_rows(events, read) -> np.ndarray:
    """Bool (n_events,): the events without a non-finite value in a `read` channel.

    Parameters
    ----------
    events : ndarray, shape (n_events, n_channels)
        float32 or float64.
    read : array_like of bool, shape (n_channels,)
    """
    ev = native(events)
    mask = np.asarray(read, dtype=np.bool_)
    if ev.ndim != 2 or mask.shape != (ev.shape[1],):
        raise ValueError(
            f"events of shape {ev.shape} and read of shape {mask.shape}: expected 2-D events "
            "and one flag per channel"
        )
    keep = np.ones(ev.shape[0], dtype=np.bool_)
    if ev.dtype.kind in "biu" or ev.shape[0] == 0:
        return keep
    _finite_rows(ev, mask, keep)
    return keep


def nonfinite_counts(events, read=None, columns=None) -> tuple[np.ndarray, int]:
    """Non-finite values of every channel, and the events holding one in a `read` channel.

    Parameters
    ----------
    events : ndarray, shape (n_events, n_channels)
        float32 or float64 (integer arrays hold no non-finite value: all zeros
        are returned without a pass).
    read : array_like of bool, shape (n_channels,), optional
        The channels whose non-finite values make an event count (default: all).
    columns : sequence of int, optional
        The channels to look at (default: all). The others are not read and
        count 0: for channels the caller already knows to be finite (acquisition
        QC's margin check removed their non-finite values), so that one pass
        over the events does not become two. No channel is read when it is empty.

    Returns
    -------
    counts : ndarray of int64, shape (3, n_channels)
        Rows: NaN, +inf, -inf values of each channel.
    events : int
        Events with at least one non-finite value in a `read` channel.
    """
    ev = native(events)
    if ev.ndim != 2:
        raise ValueError(f"events must be 2-D (n_events, n_channels), got shape {ev.shape}")
    k = ev.shape[1]
    mask = np.ones(k, dtype=np.bool_) if read is None else np.asarray(read, dtype=np.bool_)
    if mask.shape != (k,):
        raise ValueError(f"read has shape {mask.shape}; expected ({k},), one flag per channel")
    cols = np.arange(k, dtype=np.int64) if columns is None else np.asarray(columns, np.int64)
    cols = np.unique(cols.reshape(-1))
    if cols.size and (cols[0] < 0 or cols[-1] >= k):
        raise ValueError(f"columns {cols.tolist()} must lie in 0..{k - 1}")
    counts = np.zeros((3, k), dtype=np.int64)
    if ev.dtype.kind in "biu" or ev.shape[0] == 0 or cols.size == 0:
        return counts, 0
    if ev.dtype not in (np.float32, np.float64):
        raise TypeError(f"events has dtype {ev.dtype}; expected float32 or float64")
    return counts, int(_scan(ev, cols, mask, counts))
