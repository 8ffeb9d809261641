"""Acquisition-QC kernels: margin events and time order in one pass; signal moments per time bin.

Two kernels serve `cytokit.qc`:

* `margin_scan` reads each event row once (tiles of rows on threads) and,
  for the columns it is given, marks events at or above a column's top
  limit, at or below its floor, or not finite; it also counts where the time
  column decreases. It works on any row block of a larger matrix, so a pass
  that already reads the events in blocks (the gating pass) can call it block
  by block: its counts add up over blocks.
* `bin_moments` gives, for each time bin (a contiguous row range, since
  events are in acquisition order), the mean and SD of ``asinh(x / cofactor)``
  of each column, of all values and with weights rising over their ranks,
  from an evenly spaced subsample of at most `max_per_bin` of the bin's rows
  (all of them when the bin has fewer), skipping non-finite values.

Both are serial ``nogil`` kernels run over ranges of tiles or bins on
cytokit's thread pool (`cytokit.kernels._threads`), as the gating pass is:
one compiled kernel each and no ``parallel=True`` twin, whose compilation is
the slow part of an installation's first run (see ``benchmarks/README.md``).

Edge semantics: ``x >= top`` and ``x <= floor`` are inclusive; NaN compares
false to both and is counted (and marked) as not finite; ``+inf`` is at the
top and ``-inf`` at the floor, and both are also counted as not finite. A time
that is NaN, or smaller than the time before it, counts as a decrease.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import jit, native
from ._threads import run_ranges

__all__ = [
    "bin_bounds",
    "bin_moments",
    "compact_rows",
    "margin_scan",
    "running_median",
    "sample_rows",
]

_TILE = 4096  # rows per task of the row scan
#: Values read (bin summaries) below which one thread does it all.
_THREADED_VALUES = 1 << 16


@jit
def _scan_tile(
    events, cols, top, floor, tcol, flags, bit, a, b, prev, n_top, n_floor, n_bad, hi, lo, n_lo
):
    """Mark rows a..b; per-column counts and extremes into the given rows; (decreases, first)."""
    k = cols.shape[0]
    dec = 0
    first = -1
    for i in range(a, b):
        hit = False
        for j in range(k):
            x = events[i, cols[j]]
            if x >= top[j]:
                n_top[j] += 1
                hit = True
            if x <= floor[j]:
                n_floor[j] += 1
                hit = True
            if math.isfinite(x):
                if x > hi[j]:
                    hi[j] = x
                if x < lo[j]:
                    lo[j] = x
                    n_lo[j] = 1
                elif x == lo[j]:
                    n_lo[j] += 1
            else:
                n_bad[j] += 1
                hit = True
        if hit:
            flags[i] |= bit
        if tcol >= 0:
            t = events[i, tcol]
            p = prev if i == 0 else events[i - 1, tcol]
            # a NaN time counts once, where it is; t < NaN (after one) is False
            if math.isnan(t) or t < p:
                dec += 1
                if first < 0:
                    first = i
    return dec, first


@jit
def _scan_tiles(
    t0,
    t1,
    events,
    cols,
    top,
    floor,
    tcol,
    flags,
    bit,
    prev,
    n_top,
    n_floor,
    n_bad,
    hi,
    lo,
    n_lo,
    dec,
    first,
):
    """Scan tiles ``t0 .. t1 - 1`` of `_TILE` rows, each into its own row of the outputs."""
    n = events.shape[0]
    for t in range(t0, t1):
        a = t * _TILE
        b = min(n, a + _TILE)
        d, f = _scan_tile(
            events,
            cols,
            top,
            floor,
            tcol,
            flags,
            bit,
            a,
            b,
            prev,
            n_top[t],
            n_floor[t],
            n_bad[t],
            hi[t],
            lo[t],
            n_lo[t],
        )
        dec[t] = d
        first[t] = f


def margin_scan(events, columns, top, floor, flags, *, bit=1, time_column=-1, prev_time=np.nan):
    """Mark margin events and count time decreases in one pass over the rows.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
        Any memory layout; read only.
    columns : sequence of int, length k
        Columns to check.
    top, floor : array_like of float64, length k
        Per column: values ``>= top`` are at the top margin, values ``<= floor``
        at the floor (``inf`` / ``-inf`` to check neither).
    flags : numpy.ndarray of uint8, shape (n_events,)
        ``flags[i] |= bit`` for every event with a margin or non-finite value
        in a checked column; other bits are left alone.
    bit : int
        The bit to set (1..128).
    time_column : int
        Column of the acquisition time, or -1 for none.
    prev_time : float
        The time of the event before row 0 (when `events` is a block of a
        larger matrix), NaN for none.

    Returns
    -------
    dict
        ``top``, ``floor``, ``not_finite``: int64 arrays of length k (events per
        column; an event can count in several columns); ``max``, ``min``: the
        largest and smallest finite value of each column (float64, ``-inf`` and
        ``inf`` when none); ``at_min``: events at exactly that smallest value
        (int64; blocks combine by keeping the counts of the smaller minimum); ``decreases``: rows
        whose time is NaN or below the previous row's; ``first_decrease``: the
        first such row, or -1.
    """
    ev = native(events)
    if ev.dtype not in (np.float32, np.float64) or ev.ndim != 2:
        raise TypeError(f"events must be a 2-D float32 or float64 array, got {ev.dtype} {ev.shape}")
    n, m = ev.shape
    cols = np.asarray(columns, dtype=np.int64).reshape(-1)
    k = cols.shape[0]
    if np.any((cols < 0) | (cols >= m)):
        raise ValueError(f"columns {cols.tolist()} must lie in 0..{m - 1}")
    top = np.ascontiguousarray(top, dtype=np.float64).reshape(-1)
    floor = np.ascontiguousarray(floor, dtype=np.float64).reshape(-1)
    if top.shape[0] != k or floor.shape[0] != k:
        raise ValueError(f"top and floor need one value per column ({k})")
    if not (isinstance(flags, np.ndarray) and flags.dtype == np.uint8 and flags.shape == (n,)):
        raise ValueError(f"flags must be a uint8 array of shape ({n},)")
    if not 1 <= int(bit) <= 128 or int(bit) & (int(bit) - 1):
        raise ValueError(f"bit={bit} must be one of 1, 2, 4, ..., 128")
    tcol = int(time_column)
    if not -1 <= tcol < m:
        raise ValueError(f"time_column={tcol} must be -1 or lie in 0..{m - 1}")
    ntiles = max(1, (n + _TILE - 1) // _TILE)
    n_top = np.zeros((ntiles, k), dtype=np.int64)
    n_floor = np.zeros((ntiles, k), dtype=np.int64)
    n_bad = np.zeros((ntiles, k), dtype=np.int64)
    hi = np.full((ntiles, k), -np.inf)
    lo = np.full((ntiles, k), np.inf)
    n_lo = np.zeros((ntiles, k), dtype=np.int64)
    dec = np.zeros(ntiles, dtype=np.int64)
    first = np.full(ntiles, -1, dtype=np.int64)
    if n:
        # fewer than 4 tiles a thread (32,768 rows on 2): run_ranges does it all inline
        run_ranges(_scan_tiles, ntiles, ev, cols, top, floor, tcol, flags, np.uint8(bit),
                   float(prev_time), n_top, n_floor, n_bad, hi, lo, n_lo, dec, first)  # fmt: skip
    hits = first[first >= 0]
    low = lo.min(axis=0)
    return {
        "top": n_top.sum(axis=0),
        "floor": n_floor.sum(axis=0),
        "not_finite": n_bad.sum(axis=0),
        "max": hi.max(axis=0),
        "min": low,
        "at_min": np.where(lo == low, n_lo, 0).sum(axis=0),
        "decreases": int(dec.sum()),
        "first_decrease": int(hits.min()) if hits.size else -1,
    }


@jit
def _bounds(events, tcol, edges, out):
    """out[j] = first row whose time is >= edges[j] (times nondecreasing)."""
    n = events.shape[0]
    for j in range(edges.shape[0]):
        e = edges[j]
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) // 2
            if events[mid, tcol] < e:
                lo = mid + 1
            else:
                hi = mid
        out[j] = lo


def bin_bounds(events, time_column: int, edges) -> np.ndarray:
    """Row where each bin starts, for events in nondecreasing time order.

    Equivalent to ``np.searchsorted(events[:, time_column], edges, side="left")``
    without copying the (strided) time column.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
    time_column : int
    edges : array_like of float64, length B + 1
        Increasing bin edges.

    Returns
    -------
    numpy.ndarray of int64, length B + 1
        Bin ``j`` holds rows ``out[j] .. out[j + 1] - 1``.
    """
    ev = native(events)
    edges = np.ascontiguousarray(edges, dtype=np.float64).reshape(-1)
    out = np.empty(edges.shape[0], dtype=np.int64)
    _bounds(ev, int(time_column), edges, out)
    return out


@jit
def _asinh(x):
    # log(|x| + sqrt(x^2 + 1)) with the sign: about twice as fast as math.asinh here, and
    # as exact as this use needs (absolute error ~1e-16 near 0)
    a = abs(x)
    r = math.log(a + math.sqrt(a * a + 1.0))
    return r if x >= 0 else -r


@jit
def _moments_of_bin(events, cols, cofactor, a, b, cap, band, skip, bits, count, mean, sd):
    """Count, and mean and SD of asinh(x / cofactor): of all values, and rank-weighted by `band`."""
    n = b - a
    m = n if n <= cap else cap
    buf = np.empty(max(m, 1), dtype=np.float64)
    skipping = skip.shape[0] > 0
    if skipping:  # a bin whose every row is to be skipped is read whole (it has nothing else)
        kept = 0
        for s in range(m):
            i = a + s if n <= cap else a + ((2 * s + 1) * n) // (2 * m)
            if (skip[i] & bits) == 0:
                kept += 1
        skipping = kept > 0
    for j in range(cols.shape[0]):
        c = cols[j]
        inv = 1.0 / cofactor[j]
        cnt = 0
        for s in range(m):
            # row of sample s: the middle of its 1/m share of the bin (all rows when n <= cap)
            i = a + s if n <= cap else a + ((2 * s + 1) * n) // (2 * m)
            if skipping and (skip[i] & bits) != 0:
                continue
            x = events[i, c]
            if math.isfinite(x):
                buf[cnt] = _asinh(x * inv)
                cnt += 1
        count[j] = cnt
        v = buf[:cnt]
        v.sort()  # in place: no array allocated per bin and channel
        s1 = 0.0
        for i in range(cnt):
            s1 += v[i]
        mu = s1 / cnt if cnt > 0 else np.nan
        s2 = 0.0
        for i in range(cnt):
            s2 += (v[i] - mu) * (v[i] - mu)
        mean[j, 0] = mu
        sd[j, 0] = math.sqrt(s2 / (cnt - 1)) if cnt > 1 else np.nan
        # upper-weighted mean: rank weights rising linearly from 0 at rank fraction band[0]
        # to 1 at band[1] and beyond (smooth in the ranks, so no value flips in or out)
        w1 = 0.0
        s1 = 0.0
        for i in range(cnt):
            u = (i + 0.5) / cnt
            w = min(1.0, max(0.0, (u - band[0]) / (band[1] - band[0])))
            w1 += w
            s1 += w * v[i]
        mu = s1 / w1 if w1 > 0 else np.nan
        s2 = 0.0
        for i in range(cnt):
            u = (i + 0.5) / cnt
            w = min(1.0, max(0.0, (u - band[0]) / (band[1] - band[0])))
            s2 += w * (v[i] - mu) * (v[i] - mu)
        mean[j, 1] = mu
        sd[j, 1] = math.sqrt(s2 / w1) if w1 > 0 and cnt > 1 else np.nan


@jit
def _moments_bins(
    g0, g1, events, cols, cofactor, starts, stops, cap, band, skip, bits, count, mean, sd
):
    """Summaries of bins ``g0 .. g1 - 1``."""
    for g in range(g0, g1):
        _moments_of_bin(
            events,
            cols,
            cofactor,
            starts[g],
            stops[g],
            cap,
            band,
            skip,
            bits,
            count[g],
            mean[g],
            sd[g],
        )


def sample_rows(start: int, stop: int, max_per_bin: int) -> np.ndarray:
    """The rows `bin_moments` reads of the bin ``start .. stop - 1`` (for references and tests)."""
    n = stop - start
    if n <= max_per_bin:
        return np.arange(start, stop, dtype=np.int64)
    s = np.arange(max_per_bin, dtype=np.int64)
    return start + ((2 * s + 1) * n) // (2 * max_per_bin)


def bin_moments(
    events,
    columns,
    cofactors,
    starts,
    stops,
    *,
    band=(0.5, 1.0),
    max_per_bin=256,
    skip=None,
    skip_bits=0xFF,
):
    """Signal summaries of columns within each bin of rows, on the ``asinh(x / cofactor)`` scale.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
    columns : sequence of int, length k
    cofactors : array_like of float, length k
        Positive asinh cofactor of each column.
    starts, stops : array_like of int, length B
        Bin ``g`` is rows ``starts[g] .. stops[g] - 1`` (empty when equal).
    band : (float, float)
        The second summary weighs the sorted values by their rank fraction
        ``u = (i + 0.5) / n``: weight ``clip((u - band[0]) / (band[1] - band[0]), 0, 1)``,
        0 below ``band[0]`` rising to 1 at ``band[1]``; ``0 <= band[0] < band[1] <= 1``.
        Its SD is the weighted SD (weights summing to their total, no correction).
    max_per_bin : int
        A bin with more rows is subsampled evenly: row
        ``start + ((2 s + 1) n) // (2 max_per_bin)`` for ``s = 0 .. max_per_bin - 1``
        (see `sample_rows`); non-finite values are skipped.
    skip : array_like of bool or uint8, shape (n_events,), optional
        Rows to leave out (nonzero), in every column: those already judged not to be
        measurements, such as margin events. The rows read are the same
        (`sample_rows`); a skipped one adds nothing, unless every row a bin reads
        is to be skipped: that bin is read whole (its summaries are then those of
        what it holds, as a plot of it shows).
    skip_bits : int
        With uint8 `skip` (a reason bitmask per event), the bits that leave a row out.

    Returns
    -------
    count : numpy.ndarray of int64, shape (B, k)
        Finite values read.
    mean, sd : numpy.ndarray of float64, shape (B, k, 2)
        Mean and SD of the transformed values: ``[..., 0]`` of all of them
        (SD with ``ddof=1``), ``[..., 1]`` weighted by `band`. NaN where there are
        no values (mean) or fewer than 2 (SD).
    """
    ev = native(events)
    if ev.dtype not in (np.float32, np.float64) or ev.ndim != 2:
        raise TypeError(f"events must be a 2-D float32 or float64 array, got {ev.dtype} {ev.shape}")
    cols = np.asarray(columns, dtype=np.int64).reshape(-1)
    if np.any((cols < 0) | (cols >= ev.shape[1])):
        raise ValueError(f"columns {cols.tolist()} must lie in 0..{ev.shape[1] - 1}")
    cof = np.ascontiguousarray(cofactors, dtype=np.float64).reshape(-1)
    if cof.shape != cols.shape or not np.all(cof > 0) or not np.all(np.isfinite(cof)):
        raise ValueError("cofactors must be one positive, finite number per column")
    starts = np.ascontiguousarray(starts, dtype=np.int64).reshape(-1)
    stops = np.ascontiguousarray(stops, dtype=np.int64).reshape(-1)
    if starts.shape != stops.shape or np.any(starts < 0) or np.any(stops < starts):
        raise ValueError("starts and stops must have one value per bin with 0 <= start <= stop")
    if stops.size and stops.max() > ev.shape[0]:
        raise ValueError(f"a bin stops at row {stops.max()} beyond the {ev.shape[0]} events")
    cap = int(max_per_bin)
    if cap < 1:
        raise ValueError(f"max_per_bin={cap} must be >= 1")
    band = np.asarray(band, dtype=np.float64).reshape(-1)
    if band.shape != (2,) or not 0 <= band[0] < band[1] <= 1:
        raise ValueError(f"band={band.tolist()} must be two fractions 0 <= lo < hi <= 1")
    if skip is None:
        skip = np.empty(0, dtype=np.uint8)
    else:
        skip = np.asarray(skip).reshape(-1)
        # a bool mask is read as its bytes, uint8 codes as they are: no copy of a large file
        skip = np.ascontiguousarray(skip.view(np.uint8) if skip.dtype == np.bool_ else skip)
        if skip.dtype != np.uint8 or skip.shape[0] != ev.shape[0]:
            raise ValueError(
                f"skip must be one bool or uint8 per event ({ev.shape[0]}), got {skip.dtype} "
                f"{skip.shape}"
            )
    b, k = starts.shape[0], cols.shape[0]
    count = np.zeros((b, k), dtype=np.int64)
    mean = np.full((b, k, 2), np.nan)
    sd = np.full((b, k, 2), np.nan)
    if b and k:
        args = (ev, cols, cof, starts, stops, cap, band, skip, np.uint8(skip_bits), count, mean, sd)
        if int(np.minimum(stops - starts, cap).sum()) * k >= _THREADED_VALUES:
            run_ranges(_moments_bins, b, *args)
        else:  # too little work to hand to threads
            _moments_bins(0, b, *args)
    return count, mean, sd


@jit
def _running_median(values, valid, half, out):
    b = values.shape[0]
    buf = np.empty(2 * half + 1, dtype=np.float64)
    for i in range(b):
        cnt = 0
        for j in range(max(0, i - half), min(b, i + half + 1)):
            if valid[j]:
                buf[cnt] = values[j]
                cnt += 1
        out[i] = np.median(buf[:cnt]) if cnt else np.nan


def running_median(values, valid, half: int) -> np.ndarray:
    """Centred moving median over ``2 * half + 1`` entries, of the `valid` ones only.

    Parameters
    ----------
    values : array_like of float, shape (B,)
    valid : array_like of bool, shape (B,)
        Entries the windows may read (others are skipped, as if absent).
    half : int
        Half-width; windows are truncated at the ends.

    Returns
    -------
    numpy.ndarray of float64, shape (B,)
        numpy's median (the mean of the two middle values for an even count) of
        the valid entries of each window; NaN where a window has none.
    """
    v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    ok = np.ascontiguousarray(valid, dtype=np.bool_).reshape(-1)
    if ok.shape != v.shape:
        raise ValueError(f"valid has shape {ok.shape}; values have {v.shape}")
    if int(half) < 0:
        raise ValueError(f"half={half} must be >= 0")
    out = np.empty_like(v)
    _running_median(v, ok, int(half), out)
    return out


@jit
def _compact(events, reasons):
    n, k = events.shape
    w = 0
    for i in range(n):
        if reasons[i] == 0:
            if w != i:  # w < i: moving rows forward, element by element, is overlap-safe
                for j in range(k):
                    events[w, j] = events[i, j]
            w += 1
    return w


def compact_rows(events, reasons) -> int:
    """Move the rows whose `reasons` are 0 to the front of `events`, in order, in place.

    The kept rows' count ``m`` is returned; ``events[:m]`` then holds them, in
    their original order (rows ``m ..`` are left as they happen to be). No
    array is allocated: this replaces ``events[reasons == 0]`` when the caller
    owns `events` and no longer needs the removed rows.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
        Writeable and C-contiguous.
    reasons : numpy.ndarray of uint8, shape (n_events,)
        0 keeps a row.
    """
    if not (events.flags.writeable and events.flags.c_contiguous) or events.ndim != 2:
        raise ValueError("compact_rows needs a writeable, C-contiguous 2-D events array")
    r = np.ascontiguousarray(reasons, dtype=np.uint8).reshape(-1)
    if r.shape[0] != events.shape[0]:
        raise ValueError(f"reasons has {r.shape[0]} entries for {events.shape[0]} events")
    return int(_compact(events, r))
