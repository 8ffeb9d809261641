"""Per-population statistics of plan dimensions: counts, mean, SD, exact median and quantiles, rCV.

`population_stats` takes the events, a `GatingPlan`, the membership that
`evaluate_plan` returned (bool or bit-packed; or None to evaluate the gates
again inside the statistics passes), a list of gates (populations) and a
list of plan dimensions, and returns, for every (gate, dimension) pair:

============== ==========================================================================
``count``      members whose value is not NaN (the sample size of everything below)
``mean``       arithmetic mean
``sd``         sample standard deviation (``ddof=1``; NaN below 2 values)
``median``     exactly ``np.median`` of the member values
``quantiles``  exactly ``np.quantile(values, q)`` (numpy's default "linear" method)
``rcv``        robust CV, ``100 · ½ · (Q(0.8413) − Q(0.1587)) / median`` with ``Q`` as
               above: the percentage a normal distribution's SD is of its median
               (FlowJo's definition). Signed: negative when the median is.
``positive``   members with ``value >= threshold`` (the rectangle gate's inclusive
               lower bound), and ``fraction_positive = positive / count``
============== ==========================================================================

A dimension is a plan dimension (column, optional compensation, transform),
computed by the same block code as the gates see (`_blocksteps._block_values`):
add a dimension with ``XF_NONE`` for compensated scale values, or with the
gates' transform for values on the gating scale. Values are float64.

Edge semantics
--------------
* **NaN** values are left out of every statistic (and of ``count``); the
  gate's member count is ``events``. With ``count == 0`` every statistic is
  NaN and ``positive`` is 0.
* **±inf** values are ordinary ordered values: they can be a median or a
  quantile, and make ``mean`` ±inf (NaN if both signs occur) and ``sd`` NaN,
  exactly as numpy does on the same values.
* ``-0.0`` orders just below ``+0.0``; as the two compare equal, medians and
  quantiles still equal numpy's.

Design: exact order statistics in bounded memory
------------------------------------------------
Every statistic is computed from passes over the events in blocks of
`BLOCK` events (the dimension values of a block are recomputed in each pass
into a cache-sized buffer; no per-gate copy of the member values is ever
made). Blocks are split into one contiguous chunk per thread, and each chunk
has private accumulators, so nothing races and the result does not depend on
the number of threads beyond float rounding in the mean.

1. **Pass 1**: per block, the non-NaN member values of each pair are
   gathered into a small buffer; from it, the count, the block sum and the
   block's sum of squared deviations from its own mean (combined exactly
   afterwards with Chan's formula, so the SD needs no second pass), the
   count above the threshold, and a **histogram of 65,536 bins** on the
   value's float64 bit pattern (an order-preserving integer ``key``):
   256 bins per power of two for ``2**-64 <= |v| < 2**64``, one bin each
   for smaller magnitudes (including 0) and for larger ones (including
   inf), per sign. Bins are therefore ~0.4 % wide relative to the value,
   whatever its scale.
2. The order statistics the median and quantiles need (ranks ``k`` and
   ``k + 1`` of numpy's interpolation) are located in the merged histogram:
   each lies in a known bin, at a known rank inside it.
3. **Pass 2 (and rarely more)**: for each such bin, either its values are
   **collected** (exactly as many as the histogram counted, written at
   offsets known from the per-chunk counts) and the rank is selected with
   `numpy.partition`; or, when collecting all such bins would exceed
   ``max_collect`` values, the bin is **refined**: a 4,096-bin histogram of
   the keys inside it (with the bin's smallest and largest key) narrows it
   4,096-fold, and the next pass collects or refines again. A bin holding a
   single key (all its values equal) is resolved without collecting, so
   many tied values cost at most two refinements.

The selected order statistics are the member values themselves, so the
median and quantiles are combined from them with numpy's own formulas and
equal numpy's results bit for bit. Memory: the level-1 histograms take
``n_threads × n_pairs × 256 KiB`` (pairs are processed in batches so this
stays under ~64 MiB); the collected values at most ``max_collect × 8``
bytes (default 4 Mi values, 32 MiB); the rest is per-block partial sums,
``n_blocks × n_pairs × 32`` bytes. A typical file needs 2 passes; each pass
costs about as much as one `evaluate_plan` restricted to the requested
dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._config import check_out
from ._statpass import (
    _MEM_BOOL,
    _MEM_COMPUTE,
    _MEM_PACKED,
    _T_LEVEL1,
    NBINS1,
    _bin1_range,
    _chunks,
    _Passes,
    _select,
    _split,
    _tasks,
    _values,
)
from .fused import BLOCK, _check_events, _dims_args, _plan_args, _slots_for
from .gates import call_strided
from .plan import GatingPlan

__all__ = ["PopulationStats", "dimension_values", "population_stats"]

#: rCV's percentiles: the normal distribution's mean ± 1 SD.
RCV_LOW, RCV_HIGH = 0.1587, 0.8413

_MAX_COLLECT = 1 << 22
_HIST1_BUDGET = 64 << 20  # bytes of level-1 histograms per batch of pairs


# --- the public functions -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PopulationStats:
    """Statistics of ``dims`` (plan dimensions) in ``gates`` (populations); see the module docstring.

    Arrays are indexed ``[gate position, dimension position(, quantile)]``.
    """

    gates: np.ndarray  #: int64 (n_g,): gate indices (-1: all events)
    dims: np.ndarray  #: int64 (n_d,): plan dimension indices
    quantile_levels: np.ndarray  #: float64 (n_q,)
    thresholds: np.ndarray  #: float64 (n_d,): NaN where none was given
    events: np.ndarray  #: int64 (n_g,): members of each gate
    count: np.ndarray  #: int64 (n_g, n_d): members with a non-NaN value
    mean: np.ndarray  #: float64 (n_g, n_d)
    sd: np.ndarray  #: float64 (n_g, n_d), ddof=1
    median: np.ndarray  #: float64 (n_g, n_d)
    rcv: np.ndarray  #: float64 (n_g, n_d), percent
    quantiles: np.ndarray  #: float64 (n_g, n_d, n_q)
    positive: np.ndarray  #: int64 (n_g, n_d): values >= threshold
    fraction_positive: np.ndarray  #: float64 (n_g, n_d): positive / count (NaN: no threshold)
    passes: int  #: passes made over the events


def _int_list(a, name: str, lo: int, hi: int, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D sequence of {what}, got {a!r}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < lo) | (arr > hi)]
    if bad.size:
        raise ValueError(f"{name} {bad.tolist()} outside {lo}..{hi} ({what})")
    return arr


def _membership(membership, membership_gates, plan: GatingPlan, gates: np.ndarray, n: int):
    """Mode, per-population source row, and the two membership arrays for the kernel."""
    none_b = np.zeros((0, 0), dtype=np.bool_)
    none_p = np.zeros((0, 0), dtype=np.uint64)
    if membership is None:
        return _MEM_COMPUTE, gates.copy(), none_b, none_p
    mem = np.asarray(membership)
    rows_of = plan.output if membership_gates is None else membership_gates
    rows_of = _int_list(rows_of, "membership_gates", 0, plan.n_gates - 1, "gate indices")
    if mem.ndim != 2 or mem.shape[0] != rows_of.shape[0]:
        raise ValueError(
            f"membership has shape {mem.shape}; expected ({rows_of.shape[0]}, …): one row per gate "
            "in membership_gates (default plan.output), as evaluate_plan returns it"
        )
    if mem.dtype == np.bool_:
        mode, width, b, p = _MEM_BOOL, n, mem, none_p
    elif mem.dtype == np.uint64:
        mode, width, b, p = _MEM_PACKED, (n + 63) // 64, none_b, mem
    else:
        raise TypeError(
            f"membership has dtype {mem.dtype}; expected bool or uint64 (evaluate_plan(..., packed=True))"
        )
    if mem.shape[1] != width:
        raise ValueError(
            f"membership has {mem.shape[1]} columns but {n} events need {width}; was it computed "
            "on these events?"
        )
    row = {int(g): r for r, g in enumerate(rows_of.tolist())}
    src = np.full(gates.shape[0], -1, dtype=np.int64)
    for i, g in enumerate(gates.tolist()):
        if g < 0:
            continue
        if g not in row:
            raise ValueError(
                f"gate {g} ({plan.gate_names[g]!r}) has no row in membership (its rows are gates "
                f"{rows_of.tolist()}); evaluate it with evaluate_plan(..., membership=[...]) or pass "
                "membership=None"
            )
        src[i] = row[g]
    return mode, src, b, p


def _ranks(count: int, levels: np.ndarray) -> list[int]:
    """0-based order statistics that np.median and np.quantile(levels) read from ``count`` values."""
    if count == 0:
        return []
    r = {(count - 1) // 2, count // 2}
    for q in levels.tolist():
        v = (count - 1) * q
        if v >= count - 1:
            r.add(count - 1)
        else:
            f = math.floor(v)
            r.update((f, f + 1))
    return sorted(r)


def _quantile(order: dict[int, float], count: int, q: float) -> float:
    """numpy's "linear" quantile from the order statistics, step by step as numpy takes it.

    Even at the top (``q = 1``) numpy interpolates between the last value and
    itself, with weight ``count``: an infinite last value gives NaN there, and
    so it does here.
    """
    v = (count - 1) * q
    if v >= count - 1:
        i = j = count - 1
        t = v + 1.0  # numpy's gamma: the virtual index minus its sentinel -1
    else:
        i = math.floor(v)
        j = i + 1
        t = v - i
    a, b = np.float64(order[i]), np.float64(order[j])
    with np.errstate(invalid="ignore", over="ignore"):
        d = b - a
        return float(b - d * (1.0 - t)) if t >= 0.5 else float(a + d * t)


def _median(order: dict[int, float], count: int) -> float:
    if count % 2:
        return order[(count - 1) // 2]
    with np.errstate(invalid="ignore", over="ignore"):
        return float((np.float64(order[count // 2 - 1]) + np.float64(order[count // 2])) / 2.0)


def _batch(run, pp, levels, shift1, max_collect, out, *, first, gates) -> None:
    """Pass 1 (moments, level-1 histograms), then the selection passes, for pairs ``pp``."""
    P = pp.shape[0]
    nb1 = NBINS1 >> shift1
    tasks = _tasks([_T_LEVEL1] * P, [0] * P, [0] * P, [shift1] * P, np.arange(P) * nb1)
    acc = run(
        tasks, np.arange(P + 1, dtype=np.int64), moments=True, hist_size=P * nb1, collect_size=0
    )
    ge, n_blk, s_blk, m2_blk, pos_blk, hist = acc[1:7]
    if first:
        out["events"][gates >= 0] = ge.sum(axis=0)[gates >= 0]
    c = n_blk.sum(axis=0)
    out["count"][pp] = c
    out["positive"][pp] = pos_blk.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # Chan et al.: block sums of squares about the block means, plus the
        # spread of the block means about the overall mean.
        mu = s_blk.sum(axis=0) / c
        mu_b = s_blk / np.where(n_blk > 0, n_blk, 1)
        dev = np.where(n_blk > 0, mu_b - mu, 0.0)
        m2 = m2_blk.sum(axis=0) + (n_blk * dev * dev).sum(axis=0)
        out["mean"][pp] = mu
        out["sd"][pp] = np.where(c > 1, np.sqrt(m2 / np.maximum(c - 1, 1)), np.nan)
    hist = hist.reshape(hist.shape[0], P, nb1)
    tot = hist.sum(axis=0, dtype=np.int64)

    def bin_range(b):
        return _bin1_range(b << shift1)[0], _bin1_range(((b + 1) << shift1) - 1)[1]

    all_levels = np.concatenate([levels, [RCV_LOW, RCV_HIGH]])
    order: list[dict] = [{} for _ in range(P)]
    groups = []
    for j in range(P):
        ranks = _ranks(int(c[j]), all_levels)
        if ranks:
            groups += _split(j, 0, ranks, tot[j], hist[:, j, :], bin_range)
    del hist, acc
    _select(run, groups, order, max_collect)
    for j, p in enumerate(pp.tolist()):
        cj = int(c[j])
        if cj == 0:
            continue
        out["median"][p] = med = _median(order[j], cj)
        out["quantiles"][p] = [_quantile(order[j], cj, q) for q in levels.tolist()]
        lo, hi = (_quantile(order[j], cj, q) for q in (RCV_LOW, RCV_HIGH))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out["rcv"][p] = 100.0 * 0.5 * (np.float64(hi) - lo) / np.float64(med)


def population_stats(
    events,
    plan: GatingPlan,
    membership,
    gates,
    dims,
    *,
    membership_gates=None,
    thresholds=None,
    quantiles=(),
    max_collect: int = _MAX_COLLECT,
) -> PopulationStats:
    """Count, mean, SD, exact median and quantiles, rCV and % positive per population and dimension.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
        Scale values as given to `evaluate_plan` (any layout, read-only
        accepted, never modified).
    plan : GatingPlan
    membership : numpy.ndarray or None
        `evaluate_plan`'s membership on these events: bool ``(n_rows,
        n_events)`` or bit-packed uint64 ``(n_rows, ceil(n_events / 64))``,
        read-only accepted. None: the gates are evaluated again inside each
        pass (no membership array at all; each pass then costs a full
        `evaluate_plan`).
    gates : sequence of int
        The populations: gate indices of ``plan`` (-1: all events).
    dims : sequence of int
        Plan dimension indices whose values are summarised.
    membership_gates : sequence of int, optional
        The gates of ``membership``'s rows, in order (default ``plan.output``,
        the rows `evaluate_plan` returns by default). Every gate in ``gates``
        must be among them.
    thresholds : sequence of float, optional
        Per dimension (``len(dims)``): count values ``>= threshold`` as
        positive. NaN: no threshold for that dimension.
    quantiles : sequence of float
        Extra quantile levels in [0, 1] (numpy's "linear" method, exact).
    max_collect : int
        At most this many member values are held at once for the exact order
        statistics (8 bytes each); beyond, bins are refined by another pass.

    Returns
    -------
    PopulationStats

    Raises
    ------
    ValueError
        Bad indices, shapes or levels (the message names the argument).
    TypeError
        ``events`` or ``membership`` of an unsupported dtype.
    """
    ev = _check_events(events, plan)
    n = ev.shape[0]
    gates = _int_list(gates, "gates", -1, plan.n_gates - 1, "gate indices, -1 for all events")
    dims = _int_list(dims, "dims", 0, plan.n_dims - 1, "plan dimension indices")
    levels = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    if not np.all((levels >= 0) & (levels <= 1)):
        raise ValueError(f"quantiles {levels.tolist()} must lie in [0, 1]")
    n_g, n_d, n_q = gates.shape[0], dims.shape[0], levels.shape[0]
    thr = np.full(n_d, np.nan)
    if thresholds is not None:
        thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if thr.shape != (n_d,):
            raise ValueError(
                f"thresholds has {thr.shape[0]} values for {n_d} dims; give one per dimension "
                "(NaN for none)"
            )
    max_collect = int(max_collect)
    if max_collect < 0:
        raise ValueError(f"max_collect={max_collect} must be >= 0")
    mem = _membership(membership, membership_gates, plan, gates, n)
    # The dimensions asked for, and those the gates read when they are evaluated here.
    gate_dims = plan.gate_dims if mem[0] == _MEM_COMPUTE else np.zeros(0, dtype=np.int64)
    dim_list = np.unique(np.concatenate([dims, gate_dims]))
    dims_t = (*_dims_args(plan), dim_list, _slots_for(plan, dim_list))

    shape = (n_g * n_d,)
    out = {
        "events": np.zeros(n_g, dtype=np.int64),
        "count": np.zeros(shape, dtype=np.int64),
        "positive": np.zeros(shape, dtype=np.int64),
        **{k: np.full(shape, np.nan) for k in ("mean", "sd", "median", "rcv")},
        "quantiles": np.full((n_g * n_d, n_q), np.nan),
    }
    passes = 0
    nblocks = (n + BLOCK - 1) // BLOCK
    if n and n_g:
        out["events"][gates < 0] = n
        chunk_ptr = _chunks(n, nblocks)
        # Level-1 bins: about n/64 (at least 256, at most 65,536): enough that the
        # bins holding the order statistics are small, few enough to stay cheap
        # to clear and scan for small files.
        shift1 = 16 - min(16, max(8, n.bit_length() - 6))
        per_pair = (chunk_ptr.shape[0] - 1) * (NBINS1 >> shift1) * 4
        step = max(1, _HIST1_BUDGET // per_pair)
        for p0 in range(0, max(n_g * n_d, 1), step):
            pp = np.arange(p0, min(p0 + step, n_g * n_d), dtype=np.int64)
            j = pp % max(n_d, 1)
            run = _Passes(ev, plan, mem, dims_t, chunk_ptr, pp // max(n_d, 1), dims[j], thr[j], n_g)
            _batch(run, pp, levels, shift1, max_collect, out, first=p0 == 0, gates=gates)
            passes += run.count
    count, positive = out["count"], out["positive"]
    has_thr = np.tile(~np.isnan(thr), n_g)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(has_thr & (count > 0), positive / np.maximum(count, 1), np.nan)
    positive[~has_thr] = 0

    def grid(a):
        return a.reshape((n_g, n_d, *a.shape[1:]))

    return PopulationStats(
        gates=gates,
        dims=dims,
        quantile_levels=levels,
        thresholds=thr,
        events=out["events"],
        count=grid(count),
        mean=grid(out["mean"]),
        sd=grid(out["sd"]),
        median=grid(out["median"]),
        rcv=grid(out["rcv"]),
        quantiles=grid(out["quantiles"]),
        positive=grid(positive),
        fraction_positive=grid(frac),
        passes=passes,
    )


def dimension_values(events, plan: GatingPlan, dims, *, out=None) -> np.ndarray:
    """The values of plan dimensions for every event, as the gates and `population_stats` see them.

    For plots and checks: this materialises ``len(dims) × n_events`` float64
    values, which the gating and statistics passes never do.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
    plan : GatingPlan
    dims : sequence of int
        Plan dimension indices.
    out : numpy.ndarray, optional
        float64, C-contiguous, writeable, shape ``(len(dims), n_events)``.

    Returns
    -------
    numpy.ndarray of float64, shape (len(dims), n_events)
    """
    ev = _check_events(events, plan)
    dims = _int_list(dims, "dims", 0, plan.n_dims - 1, "plan dimension indices")
    shape = (dims.shape[0], ev.shape[0])
    if out is None:
        out = np.empty(shape, dtype=np.float64)
    else:
        check_out(out, shape, (np.float64,), contiguous=True)
    if shape[0] and shape[1]:
        dims_t = (*_dims_args(plan), dims, _slots_for(plan, dims))
        call_strided(_values, ev, *_plan_args(plan), dims_t, out)
    return out
