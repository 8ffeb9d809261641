"""Fluorescence compensation: undo spillover with the inverse of the spillover matrix.

Convention (FCS ``$SPILLOVER``, FlowJo, FlowKit): row ``i`` of the spillover
matrix ``S`` says how much of fluorochrome ``i`` each detector sees, so
observed = true · S for one event (a row vector), and compensated =
observed · S⁻¹.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._config import check_out, jit, jit_parallel, native

__all__ = ["compensate", "compensation_matrix"]

_TILE = 512  # events per parallel task; two (k, 512) float64 tiles stay in L1/L2
_PARALLEL_MIN = 32 * _TILE


def event_matrix(events) -> np.ndarray:
    """`events` as a float32/float64 (n_events, n_channels) array; integers become float64.

    No copy of float input. Raises TypeError for other dtypes, ValueError when not 2-D.
    """
    ev = native(events)
    if ev.dtype.kind in "biu":
        ev = ev.astype(np.float64)
    elif ev.dtype not in (np.float32, np.float64):
        raise TypeError(f"events has dtype {ev.dtype}; expected float32 or float64")
    if ev.ndim != 2:
        raise ValueError(f"events must be 2-D (n_events, n_channels), got shape {ev.shape}")
    return ev


def compensation_matrix(spillover) -> np.ndarray:
    """Inverse of a spillover matrix, checked for singularity.

    Parameters
    ----------
    spillover : array_like, shape (k, k)
        Spillover matrix (rows: fluorochromes, columns: detectors), finite.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(k, k)``: ``S⁻¹``, so that compensated = observed @ S⁻¹.

    Raises
    ------
    ValueError
        Not a square 2-D matrix, non-finite entries, or (numerically) singular:
        the message gives the condition number and how to fix the matrix.
    """
    s = np.asarray(spillover, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"spillover matrix must be square (k, k) with k >= 1, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("spillover matrix has NaN or inf entries; every entry must be finite")
    cond = np.linalg.cond(s)
    if not np.isfinite(cond) or cond > 1.0 / np.finfo(np.float64).eps:
        raise ValueError(
            f"spillover matrix ({s.shape[0]}x{s.shape[0]}) is singular (condition number {cond:.3g}); "
            "check for duplicated or all-zero rows/columns (the diagonal is normally 1)"
        )
    return np.linalg.inv(s)


@jit
def _compensate_block(events, inv, cols, rest, out, start, b):
    """Compensate events ``start .. start + b`` (``b <= _TILE``)."""
    k = cols.shape[0]
    # Gather the block's fluorescence values into a (k, tile) float64 tile
    # so that the product runs over contiguous memory (SIMD-friendly, no
    # reassociation needed), then scatter back. Reading the whole block
    # before writing also makes out-is-events (in place) safe.
    tile = np.empty((k, _TILE), dtype=np.float64)
    res = np.zeros((k, _TILE), dtype=np.float64)
    for i in range(b):
        for m in range(k):
            tile[m, i] = events[start + i, cols[m]]
    for j in range(k):
        for m in range(k):
            c = inv[m, j]
            for i in range(b):
                res[j, i] += c * tile[m, i]
    for i in range(b):
        for c in rest:
            out[start + i, c] = events[start + i, c]
        for j in range(k):
            out[start + i, cols[j]] = res[j, i]


def _compensate_body(events, inv, cols, rest, out):
    # The work lives in a separately compiled serial function: inside a
    # cached parallel region Numba optimises loops less well (numba#8085),
    # which halved this kernel's speed.
    n = events.shape[0]
    nblocks = (n + _TILE - 1) // _TILE
    for blk in prange(nblocks):
        start = blk * _TILE
        _compensate_block(events, inv, cols, rest, out, start, min(start + _TILE, n) - start)


_compensate_serial = jit(_compensate_body)
_compensate_parallel = jit_parallel(_compensate_body)


def compensate(events, spillover, columns, *, out=None) -> np.ndarray:
    """Compensate fluorescence columns: ``events[:, columns] @ inv(spillover)``.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
        Raw (or scale) event values; read-only and non-contiguous arrays are
        accepted. Not modified unless ``out is events``.
    spillover : array_like, shape (k, k)
        Spillover matrix whose rows and columns both follow ``columns``.
    columns : sequence of int, length k
        Distinct channel indices (``0 <= c < n_channels``) of the fluorescence
        channels the matrix describes.
    out : numpy.ndarray, optional
        float32 or float64, shape ``(n_events, n_channels)``. ``out is events``
        compensates in place (only ``columns`` are rewritten); any other array
        receives a full copy with ``columns`` compensated.

    Returns
    -------
    numpy.ndarray
        ``out``, or a new array of ``events``' dtype (integer input gives
        float64) with the other columns copied through. Sums are accumulated
        in float64 whatever the storage dtype; NaN/inf in a compensated
        channel propagates to every compensated channel of that event.

    Raises
    ------
    ValueError
        Bad shapes or column indices, or a singular spillover matrix.
    """
    ev = event_matrix(events)
    inv = compensation_matrix(spillover)
    cols = np.asarray(columns)
    if cols.ndim != 1 or (cols.size and cols.dtype.kind not in "iu"):
        raise ValueError(f"columns must be a 1-D sequence of integer indices, got {columns!r}")
    cols = cols.astype(np.int64)
    k = inv.shape[0]
    if cols.shape[0] != k:
        raise ValueError(
            f"spillover matrix is {k}x{k} but {cols.shape[0]} columns were given; "
            "pass one column index per matrix row"
        )
    n_ch = ev.shape[1]
    bad = [int(c) for c in cols if not 0 <= c < n_ch]
    if bad:
        raise ValueError(f"column indices {bad} out of range for {n_ch} channels (0..{n_ch - 1})")
    if np.unique(cols).shape[0] != k:
        raise ValueError(f"column indices {cols.tolist()} contain duplicates")

    in_place = out is events and isinstance(events, np.ndarray)
    if out is None:
        res = np.empty(ev.shape, dtype=ev.dtype)
    else:
        check_out(out, ev.shape, (np.float32, np.float64))
        if not in_place and np.shares_memory(out, ev):
            raise ValueError(
                "out overlaps events without being events; pass events itself or a new array"
            )
        res = out
    kernel = _compensate_parallel if ev.shape[0] >= _PARALLEL_MIN else _compensate_serial
    # Channels outside ``columns`` are copied unless compensating in place.
    rest = np.setdiff1d(np.arange(n_ch, dtype=np.int64), cols) if not in_place else cols[:0]
    kernel(ev, inv, cols, rest, res)
    return res
