"""Self-organising map kernels: training (online and batch), nearest-node mapping, histograms.

A SOM has ``K`` nodes on a grid; each node has a *code*, a point in the
``d``-dimensional event space. Codes are float64 arrays of shape ``(K, d)``.
The grid enters only through ``grid_dist``, a ``(K, K)`` float64 matrix of
distances between node positions on the grid (FlowSOM uses the Chebyshev
distance of a rectangular grid), so any topology works.

Distances between events and codes are squared Euclidean, summed in float64
over the dimensions in order ``j = 0 .. d-1``; the nearest node (best-matching
unit, BMU) is the first one with the smallest distance (ties go to the lower
node index), exactly as ``numpy.argmin`` on the same sums picks it. Events are
float32 or float64 of any memory layout and are never modified.

Kernels:

* `som_online` — Kohonen's online rule as FlowSOM uses it (Van Gassen et al.,
  Cytometry A 2015;87:636-645): events are visited in a given order; each
  pulls every node within the current grid radius of its BMU towards itself,
  ``code += alpha · (x − code)``; ``alpha`` and the radius fall linearly over
  the visits. Serial by nature.
* `som_batch` — the batch rule (Kohonen, *Self-Organizing Maps*, 3rd ed.,
  2001, §3.14): per epoch every event is assigned to its BMU (in parallel)
  and each code becomes the neighbourhood-weighted mean of the events, with a
  Gaussian neighbourhood of shrinking width. Deterministic for any number of
  threads (per-chunk sums are reduced in a fixed order).
* `map_nodes` — BMU (or a per-node label looked up from it) of every event,
  in parallel over blocks, optionally with the distance to it.
* `node_histograms` — per-group, per-dimension histograms of events, for
  streaming medians of large data sets.

Random choices (initial codes, the visiting order) are made by the caller and
passed in as arrays, so the kernels themselves are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._config import check_out, jit, jit_parallel, native
from ._threads import run_ranges

__all__ = ["map_nodes", "node_histograms", "som_batch", "som_online"]

_BLOCK = 2048  # events per parallel mapping task
_PARALLEL_MIN = 8 * _BLOCK
_CHUNKS = 64  # fixed number of partial sums per batch epoch (not the thread count)


def _blocks(n: int) -> int:
    return (n + _BLOCK - 1) // _BLOCK


# --- shared inner loops -------------------------------------------------------------------------


@jit
def _sq_dists(x, ct, acc):
    """``acc[k] = Σ_j (x[j] − ct[j, k])²`` for a float64 event ``x`` and codes ``ct`` (d, K).

    The codes are kept transposed so that the innermost loop runs over the
    nodes, contiguous in memory: it vectorises without reordering any sum.
    """
    d, n_nodes = ct.shape
    for k in range(n_nodes):
        acc[k] = 0.0
    for j in range(d):
        xj = x[j]
        for k in range(n_nodes):
            diff = xj - ct[j, k]
            acc[k] += diff * diff


@jit
def _argmin(acc):
    """First index of the smallest value; -1 when none is smaller than inf (NaN rows)."""
    best = -1
    best_d = np.inf
    for k in range(acc.shape[0]):
        if acc[k] < best_d:
            best_d = acc[k]
            best = k
    return best


# --- online training ----------------------------------------------------------------------------


@jit
def _online(data, ct, grid_dist, order, a0, a1, r0, r1):
    d, n_nodes = ct.shape
    n_iter = order.shape[0]
    x = np.empty(d)
    acc = np.empty(n_nodes)
    rate = np.empty(n_nodes)
    for t in range(n_iter):
        i = order[t]
        for j in range(d):
            x[j] = data[i, j]
        _sq_dists(x, ct, acc)
        b = _argmin(acc)
        if b < 0:  # a NaN event: no nearest node, nothing to learn
            continue
        f = t / n_iter
        alpha = a0 + (a1 - a0) * f
        radius = r0 + (r1 - r0) * f
        # A per-node rate (alpha inside the radius, 0 outside) keeps the
        # update loop branch-free and contiguous; adding 0·(x − c) leaves
        # c unchanged for finite codes.
        for k in range(n_nodes):
            rate[k] = alpha if grid_dist[b, k] <= radius else 0.0
        for j in range(d):
            xj = x[j]
            for k in range(n_nodes):
                ct[j, k] += rate[k] * (xj - ct[j, k])


def _check_codes(codes, data, name="codes"):
    if not isinstance(codes, np.ndarray) or codes.dtype != np.float64 or codes.ndim != 2:
        raise TypeError(f"{name} must be a 2-D float64 numpy array (n_nodes, n_dims)")
    if codes.shape[0] < 1 or codes.shape[1] != data.shape[1]:
        raise ValueError(
            f"{name} has shape {codes.shape}; expected (n_nodes >= 1, {data.shape[1]}) "
            "to match the events' dimensions"
        )


def _as_events(data):
    ev = native(data)
    if ev.dtype not in (np.float32, np.float64):
        raise TypeError(f"events have dtype {ev.dtype}; expected float32 or float64")
    if ev.ndim != 2:
        raise ValueError(f"events must be 2-D (n_events, n_dims), got shape {ev.shape}")
    return ev


def _training_args(data, codes, grid_dist):
    """The events and grid distances of a training call, with `codes` checked (writeable)."""
    ev = _as_events(data)
    _check_codes(codes, ev)
    if not codes.flags.writeable:
        raise ValueError("codes is read-only; pass a writeable float64 array")
    return ev, _check_grid(grid_dist, codes.shape[0])


def _check_grid(grid_dist, n_nodes):
    g = np.ascontiguousarray(grid_dist, dtype=np.float64)
    if g.shape != (n_nodes, n_nodes):
        raise ValueError(
            f"grid_dist has shape {g.shape}; expected ({n_nodes}, {n_nodes}), one row per node"
        )
    return g


def som_online(data, codes, grid_dist, order, *, alpha=(0.05, 0.01), radius=(1.0, 0.0)):
    """Train SOM codes in place with the online rule, visiting events in `order`.

    Visit ``t`` (of ``T = len(order)``) takes event ``x = data[order[t]]``,
    finds its BMU ``b`` and, for every node ``k`` with
    ``grid_dist[b, k] <= r_t``, sets ``codes[k] += a_t · (x − codes[k])``,
    where ``a_t = alpha[0] + (alpha[1] − alpha[0])·t/T`` and
    ``r_t = radius[0] + (radius[1] − radius[0])·t/T``. With integer grid
    distances a radius below 1 updates the BMU alone (as FlowSOM does).

    Parameters
    ----------
    data : numpy.ndarray, shape (n_events, d), float32 or float64
        Training events; any layout; not modified. Events with NaN are skipped.
    codes : numpy.ndarray, shape (n_nodes, d), float64
        Initial codes, updated in place.
    grid_dist : array_like, shape (n_nodes, n_nodes)
        Distances between node positions on the grid.
    order : array_like of int, shape (T,)
        Indices into `data` in visiting order (``0 <= order[t] < n_events``);
        draw it from the caller's random generator.
    alpha : (float, float)
        Learning rate at the first and the last visit.
    radius : (float, float)
        Neighbourhood radius (in grid-distance units) at the first and the last visit.

    Returns
    -------
    numpy.ndarray
        `codes`.
    """
    ev, g = _training_args(data, codes, grid_dist)
    idx = np.asarray(order)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise ValueError("order must be a 1-D array of integer event indices")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= ev.shape[0]):
        raise ValueError(
            f"order holds indices in [{idx.min()}, {idx.max()}] but there are "
            f"{ev.shape[0]} events; every index must be in [0, {ev.shape[0] - 1}]"
        )
    a0, a1 = (float(v) for v in alpha)
    r0, r1 = (float(v) for v in radius)
    for name, pair in (("alpha", (a0, a1)), ("radius", (r0, r1))):
        # a NaN rate or radius would turn every code into NaN without a word
        if not all(np.isfinite(v) and v >= 0 for v in pair):
            raise ValueError(
                f"{name}={pair} must be two finite numbers >= 0 (at the first and last visit)"
            )
    if idx.size == 0:
        return codes
    ct = np.ascontiguousarray(codes.T)
    _online(ev, ct, g, idx, a0, a1, r0, r1)
    codes[...] = ct.T
    return codes


# --- batch training -----------------------------------------------------------------------------


@jit
def _accumulate(data, ct, sums, counts, start, stop):
    """Per-node sums and counts of events ``start .. stop`` (one chunk)."""
    d, n_nodes = ct.shape
    x = np.empty(d)
    acc = np.empty(n_nodes)
    for k in range(n_nodes):
        counts[k] = 0.0
        for j in range(d):
            sums[j, k] = 0.0
    for i in range(start, stop):
        for j in range(d):
            x[j] = data[i, j]
        _sq_dists(x, ct, acc)
        b = _argmin(acc)
        if b < 0:
            continue
        counts[b] += 1.0
        for j in range(d):
            sums[j, b] += x[j]


def _accumulate_body(data, ct, sums, counts):
    n = data.shape[0]
    n_chunks = sums.shape[0]
    per = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        _accumulate(data, ct, sums[c], counts[c], min(n, c * per), min(n, (c + 1) * per))


_accumulate_serial = jit(_accumulate_body)
_accumulate_parallel = jit_parallel(_accumulate_body)


@jit
def _batch_update(ct, grid_dist, r, sums, counts):
    """Reduce the chunks' sums in a fixed order (thread-count independent), then smooth."""
    d, n_nodes = ct.shape
    total = np.zeros((d, n_nodes))
    total_n = np.zeros(n_nodes)
    for c in range(sums.shape[0]):
        for k in range(n_nodes):
            total_n[k] += counts[c, k]
        for j in range(d):
            for k in range(n_nodes):
                total[j, k] += sums[c, j, k]
    h = np.empty(n_nodes)
    for k in range(n_nodes):
        den = 0.0
        for b in range(n_nodes):
            if r > 0.0:
                z = grid_dist[b, k] / r
                h[b] = math.exp(-0.5 * z * z)
            else:
                h[b] = 1.0 if b == k else 0.0
            den += h[b] * total_n[b]
        if den > 1e-12:  # a node with no events in reach keeps its code
            for j in range(d):
                num = 0.0
                for b in range(n_nodes):
                    num += h[b] * total[j, b]
                ct[j, k] = num / den


def som_batch(data, codes, grid_dist, radii):
    """Train SOM codes in place with the batch rule, one epoch per radius.

    Each epoch assigns every event to its BMU under the current codes, then
    sets ``codes[k] = Σ_b h(b, k)·S_b / Σ_b h(b, k)·N_b`` where ``S_b`` and
    ``N_b`` are the sum and count of the events whose BMU is ``b`` and
    ``h(b, k) = exp(−½ (grid_dist[b, k] / r)²)`` (``r = 0``: ``h`` is the
    identity, a k-means step). Nodes with no weight in reach keep their code.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_events, d), float32 or float64
        Training events; any layout; not modified. Events with NaN are ignored.
    codes : numpy.ndarray, shape (n_nodes, d), float64
        Initial codes, updated in place.
    grid_dist : array_like, shape (n_nodes, n_nodes)
    radii : array_like of float, shape (n_epochs,)
        Neighbourhood width of each epoch (>= 0), usually decreasing.

    Returns
    -------
    numpy.ndarray
        `codes`.
    """
    ev, g = _training_args(data, codes, grid_dist)
    r = np.ascontiguousarray(radii, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"radii must be finite and >= 0, got {r.tolist()}")
    if r.size == 0 or ev.shape[0] == 0:
        return codes
    n_nodes, d = codes.shape
    n_chunks = min(_CHUNKS, max(1, ev.shape[0] // 1024))
    sums = np.empty((n_chunks, d, n_nodes))
    counts = np.empty((n_chunks, n_nodes))
    ct = np.ascontiguousarray(codes.T)
    kernel = _accumulate_parallel if ev.shape[0] >= _PARALLEL_MIN else _accumulate_serial
    for radius in r:  # the epoch loop stays in Python around two compiled steps
        kernel(ev, ct, sums, counts)
        _batch_update(ct, g, radius, sums, counts)
    codes[...] = ct.T
    return codes


# --- mapping ------------------------------------------------------------------------------------


@jit
def _map_block(data, ct, lookup, use_lookup, out, dist, want_dist, start, stop):
    d, n_nodes = ct.shape
    x = np.empty(d)
    acc = np.empty(n_nodes)
    for i in range(start, stop):
        for j in range(d):
            x[j] = data[i, j]
        _sq_dists(x, ct, acc)
        b = _argmin(acc)
        if use_lookup:
            out[i] = lookup[b] if b >= 0 else -1
        else:
            out[i] = b
        if want_dist:
            dist[i] = math.sqrt(acc[b]) if b >= 0 else np.nan


@jit
def _map_range(b0, b1, data, ct, lookup, use_lookup, out, dist, want_dist):
    # blocks b0 .. b1 - 1, one thread's share (`_threads.run_ranges`): one serial kernel
    # serves small and large inputs, where a serial and a `prange` twin each compiled the
    # block code (and the parallel one per array layout)
    n = data.shape[0]
    for blk in range(b0, b1):
        start = blk * _BLOCK
        _map_block(
            data, ct, lookup, use_lookup, out, dist, want_dist, start, min(n, start + _BLOCK)
        )


#: Events per contiguous piece when the events are strided (a column selection of a larger
#: array): copied into one reused buffer, so the mapping is compiled for contiguous events only
_PIECE = 1 << 16


def map_nodes(data, codes, *, lookup=None, out=None, distances=None):
    """Nearest node (BMU) of every event, or a label of it.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_events, d), float32 or float64
        Any layout; not modified.
    codes : array_like, shape (n_nodes, d)
        Node codes (converted to float64).
    lookup : array_like of int, shape (n_nodes,), optional
        Write ``lookup[bmu]`` instead of ``bmu`` (e.g. each node's metacluster),
        so a labelling takes one pass and one output array.
    out : numpy.ndarray of int32 or int64, shape (n_events,), optional
        Receives the result; a new int32 array when omitted.
    distances : numpy.ndarray of float32 or float64, shape (n_events,), optional
        Receives the Euclidean distance of each event to its BMU.

    Returns
    -------
    numpy.ndarray
        `out`: BMU index (``0 <= bmu < n_nodes``), or its `lookup` value; -1 for
        events with NaN or ±inf in any dimension (no node is nearest; their
        distance is NaN).
    """
    ev = _as_events(data)
    c = np.asarray(codes, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] != ev.shape[1]:
        raise ValueError(
            f"codes has shape {c.shape}; expected (n_nodes >= 1, {ev.shape[1]}) "
            "to match the events' dimensions"
        )
    n = ev.shape[0]
    if out is None:
        out = np.empty(n, dtype=np.int32)
    else:
        check_out(out, (n,), (np.int32, np.int64))
    if lookup is None:
        lut = np.zeros(1, dtype=np.int64)
        use_lookup = False
    else:
        lut = np.ascontiguousarray(lookup, dtype=np.int64)
        if lut.shape != (c.shape[0],):
            raise ValueError(
                f"lookup has shape {lut.shape}; expected ({c.shape[0]},), one per node"
            )
        use_lookup = True
    if distances is None:
        dist = np.zeros(1)
        want = False
    else:
        dist = check_out(distances, (n,), (np.float32, np.float64), name="distances")
        want = True
    if n == 0:
        return out
    ct = np.ascontiguousarray(c.T)
    if ev.flags.c_contiguous:
        run_ranges(_map_range, _blocks(n), ev, ct, lut, use_lookup, out, dist, want)
        return out
    buf = np.empty((min(n, _PIECE), ev.shape[1]), dtype=ev.dtype)
    for a in range(0, n, _PIECE):
        m = min(_PIECE, n - a)
        buf[:m] = ev[a : a + m]
        o = out[a : a + m]
        dd = dist[a : a + m] if want else dist
        run_ranges(_map_range, _blocks(m), buf[:m], ct, lut, use_lookup, o, dd, want)
    return out


# --- histograms ---------------------------------------------------------------------------------


@jit
def _histograms(data, groups, lo, scale, hist):
    n_groups, d, n_bins = hist.shape
    top = n_bins - 1
    for i in range(data.shape[0]):
        g = groups[i]
        if g < 0 or g >= n_groups:
            continue
        for j in range(d):
            v = (np.float64(data[i, j]) - lo[j]) * scale[j]
            if v != v:  # NaN is not counted
                continue
            if v < 0.0:
                b = 0
            elif v >= top:
                b = top
            else:
                b = int(v)
            hist[g, j, b] += 1


def node_histograms(data, groups, lo, hi, hist):
    """Add events to per-group, per-dimension histograms (in place).

    Bin ``b`` of dimension ``j`` spans ``lo[j] + b·w .. lo[j] + (b+1)·w`` with
    ``w = (hi[j] − lo[j]) / n_bins``; values below ``lo`` count in the first
    bin, values at or above ``hi`` in the last (so a median stays right while
    fewer than half the values lie outside), NaN is not counted.

    Parameters
    ----------
    data : numpy.ndarray, shape (n_events, d), float32 or float64
        Any layout; not modified.
    groups : array_like of int, shape (n_events,)
        Group of each event (a node or metacluster); events with a group
        outside ``0 .. n_groups-1`` (e.g. -1) are skipped.
    lo, hi : array_like of float, shape (d,)
        Histogram range per dimension (``lo < hi``).
    hist : numpy.ndarray of int64, shape (n_groups, d, n_bins)
        Counts, incremented in place.

    Returns
    -------
    numpy.ndarray
        `hist`.
    """
    ev = _as_events(data)
    g = np.asarray(groups)
    if g.shape != (ev.shape[0],) or (g.size and g.dtype.kind not in "iu"):
        raise ValueError(f"groups must be integers of shape ({ev.shape[0]},), got {g.shape}")
    if (
        not isinstance(hist, np.ndarray)
        or hist.dtype != np.int64
        or hist.ndim != 3
        or hist.shape[1] != ev.shape[1]
        or hist.shape[2] < 1
        or not hist.flags.writeable
    ):
        raise ValueError(
            f"hist must be a writeable int64 array of shape (n_groups, {ev.shape[1]}, n_bins)"
        )
    lo = np.ascontiguousarray(lo, dtype=np.float64).reshape(-1)
    hi = np.ascontiguousarray(hi, dtype=np.float64).reshape(-1)
    if lo.shape != (ev.shape[1],) or hi.shape != (ev.shape[1],):
        raise ValueError(f"lo and hi must have shape ({ev.shape[1]},)")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise ValueError(f"histogram ranges need finite lo < hi; got lo={lo}, hi={hi}")
    if ev.shape[0] == 0:
        return hist
    scale = hist.shape[2] / (hi - lo)
    _histograms(ev, g, lo, scale, hist)
    return hist
