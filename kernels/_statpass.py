"""Passes over the events for `cytokit.kernels.stats`: the Numba kernels and the selection driver.

A pass runs `_chunk` on one contiguous chunk of blocks per thread. Per
block it recomputes the requested dimensions with `_blocksteps._block_values`,
fills each population's membership (from `evaluate_plan`'s bool or packed
rows, or by evaluating the gates), gathers each (population, dimension)
pair's non-NaN member values into a block-sized buffer and hands them to
the pair's *tasks*: the level-1 histogram (65,536 bins on the value's
order-preserving key), a refinement histogram over a key interval, or the
collection of the values in a key interval. `_select` plans the tasks of
each pass from the previous pass's histograms until every requested order
statistic is known exactly. See `cytokit.kernels.stats` for the design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import prange
from numba.cpython.unsafe.numbers import trailing_zeros

from ._blocksteps import _block_values, _gates
from ._config import jit, jit_parallel
from ._xftable import _f64_bits
from .fused import BLOCK, _gates_args, _plan_args
from .gates import call_strided

_MEM_ALL, _MEM_BOOL, _MEM_PACKED, _MEM_COMPUTE = 0, 1, 2, 3
_T_LEVEL1, _T_HIST, _T_COLLECT = 0, 1, 2

NBINS1 = 65536
_E0 = 1023 - 64  # biased exponent of 2**-64: the first binade with its own bins
_REFINE_BITS = 12  # refinement histograms have at most 2**12 bins
_SIGN_MASK = 0x7FFFFFFFFFFFFFFF

# --- kernels ------------------------------------------------------------------------------------


@jit
def _key(v):
    """Order-preserving int64 key of a float64: the bit pattern, negatives' magnitude bits flipped."""
    b = _f64_bits(v)
    return b ^ ((b >> 63) & _SIGN_MASK)


@jit
def _digit1(key):
    """Level-1 bin of a key (0 … 65535), non-decreasing in the key; see the module docstring.

    Branch-free (min/max and a sign mask), as value signs and magnitudes vary
    unpredictably within a block.
    """
    neg = key >> 63  # -1 for negative values, else 0
    a = key ^ neg  # bit pattern of |v|
    p = ((a >> 52) - _E0) << 8 | ((a >> 44) & 255)
    p = min(max(p, 0), 32767)
    return 32768 + (p ^ neg)  # 32767 - p for negative values


@jit
def _fill_members(mode, src, mem_bool, mem_packed, mem, start, nb, idx):
    """Block positions of one population's members, in order, into ``idx``; returns how many."""
    cnt = 0
    if src < 0 or mode == _MEM_ALL:
        for i in range(nb):
            idx[i] = i
        return nb
    if mode == _MEM_PACKED:
        w0 = start // 64
        for w in range((nb + 63) // 64):
            word = mem_packed[src, w0 + w]
            base = 64 * w
            while word:  # one step per set bit (padding bits are 0)
                low = word & (~word + np.uint64(1))
                idx[cnt] = base + np.int64(trailing_zeros(low))
                cnt += 1
                word ^= low
        return cnt
    if mode == _MEM_BOOL:
        for i in range(nb):
            idx[cnt] = i
            cnt += mem_bool[src, start + i]
        return cnt
    m = mem[src]
    for i in range(nb):
        idx[cnt] = i
        cnt += m[i]
    return cnt


@jit
def _block_moments(x, cnt):
    """Sum of ``x[:cnt]`` and the sum of squared deviations from its mean (0 for ``cnt == 0``).

    Four interleaved accumulators: a single running sum is bound by the
    latency of the additions (3x slower), and the rounding stays that of a
    short pairwise sum.
    """
    s0 = s1 = s2 = s3 = 0.0
    k = 0
    while k + 4 <= cnt:
        s0 += x[k]
        s1 += x[k + 1]
        s2 += x[k + 2]
        s3 += x[k + 3]
        k += 4
    for j in range(k, cnt):
        s0 += x[j]
    s = (s0 + s1) + (s2 + s3)
    if cnt == 0:
        return s, 0.0
    mu = s / cnt
    q0 = q1 = q2 = q3 = 0.0
    k = 0
    while k + 4 <= cnt:
        d0 = x[k] - mu
        d1 = x[k + 1] - mu
        d2 = x[k + 2] - mu
        d3 = x[k + 3] - mu
        q0 += d0 * d0
        q1 += d1 * d1
        q2 += d2 * d2
        q3 += d3 * d3
        k += 4
    for j in range(k, cnt):
        d0 = x[j] - mu
        q0 += d0 * d0
    return s, (q0 + q1) + (q2 + q3)


@jit
def _pair_tasks(x, cnt, p, t0, t1, tasks, c, hist, kmin, kmax, buf, cursor):
    """Histogram or collect the ``cnt`` values ``x`` of pair ``p`` for its tasks ``t0 … t1-1``."""
    mode, lo, hi, shift, off, want = tasks
    h = hist[c]
    if t1 == t0 + 1 and mode[t0] == _T_LEVEL1:
        o = off[t0]
        s = shift[t0]  # coarser level-1 bins for small inputs
        for k in range(cnt):
            h[o + (_digit1(_key(x[k])) >> s)] += 1
        return
    if t1 == t0:
        return
    # Refinement and collection: each task's interval lies in one level-1 bin,
    # flagged in the pair's bitmap ``want``. Most values are in no such bin:
    # they cost one well-predicted branch (interval tests on every value
    # mispredict, as values fall unpredictably below, inside and above).
    w = want[p]
    for k in range(cnt):
        key = _key(x[k])
        d = _digit1(key)
        if not (w[d >> 6] >> np.uint64(d & 63)) & np.uint64(1):
            continue
        for t in range(t0, t1):
            if key < lo[t] or key > hi[t]:
                continue
            if mode[t] == _T_COLLECT:
                pos = cursor[c, t]
                buf[pos] = x[k]
                cursor[c, t] = pos + 1
            else:
                h[off[t] + ((key - lo[t]) >> shift[t])] += 1
                kmin[c, t] = min(kmin[c, t], key)
                kmax[c, t] = max(kmax[c, t], key)
            break


@jit
def _chunk(
    c,
    events,
    mem_bool,
    mem_packed,
    chunk_ptr,
    slots,
    comps,
    dims,
    gates,
    mem_t,
    pairs_t,
    tasks,
    acc,
):
    """One chunk of blocks, serially, with buffers allocated once."""
    dim_list, slot_used = dims[7], dims[8]
    mode_mem, gate_src = mem_t
    pair_gate, pair_dim, pair_thr, task_ptr = pairs_t
    moments, gate_events, n_blk, sum_blk, m2_blk, pos_blk, hist, kmin, kmax, buf, cursor = acc
    (
        gate_kind,
        gate_parent,
        dims_ptr,
        gate_dims,
        geom_ptr,
        geom,
        op_ptr,
        operands,
        op_compl,
        max_dims,
    ) = gates
    n = events.shape[0]
    src = np.empty((slots[0].shape[0], BLOCK), dtype=np.float64)
    tile = np.empty((slots[2], BLOCK), dtype=np.float64)
    vals = np.empty((dims[0].shape[0], BLOCK), dtype=np.float64)
    scratch = np.empty(BLOCK, dtype=np.float64)
    n_g = gate_src.shape[0]
    members = np.empty((n_g, BLOCK), dtype=np.int32)
    n_members = np.empty(n_g, dtype=np.int64)
    mem = np.empty((gate_kind.shape[0] if mode_mem == _MEM_COMPUTE else 0, BLOCK), dtype=np.bool_)
    dbuf = np.empty(max_dims, dtype=np.float64)
    gcounts = np.empty(gate_kind.shape[0], dtype=np.int64)
    x = np.empty(BLOCK, dtype=np.float64)
    for blk in range(chunk_ptr[c], chunk_ptr[c + 1]):
        start = blk * BLOCK
        nb = min(BLOCK, n - start)
        _block_values(
            events, start, nb, slots, comps, dims[:7], dim_list, slot_used, src, tile, scratch, vals
        )
        if mode_mem == _MEM_COMPUTE:
            _gates(
                vals,
                nb,
                gate_kind,
                gate_parent,
                dims_ptr,
                gate_dims,
                geom_ptr,
                geom,
                op_ptr,
                operands,
                op_compl,
                mem,
                dbuf,
                gcounts,
            )
        for gi in range(n_g):
            e = _fill_members(
                mode_mem, gate_src[gi], mem_bool, mem_packed, mem, start, nb, members[gi]
            )
            n_members[gi] = e
            if moments:
                gate_events[blk, gi] = e
        for p in range(pair_gate.shape[0]):
            gi = pair_gate[p]
            idx = members[gi]
            v = vals[pair_dim[p]]
            cnt = 0
            for k in range(n_members[gi]):
                val = v[idx[k]]
                x[cnt] = val
                cnt += not np.isnan(val)
            if moments:
                s, m2 = _block_moments(x, cnt)
                n_blk[blk, p] = cnt
                sum_blk[blk, p] = s
                m2_blk[blk, p] = m2
                thr = pair_thr[p]
                if not np.isnan(thr):
                    pos = 0
                    for k in range(cnt):
                        pos += x[k] >= thr
                    pos_blk[blk, p] = pos
            _pair_tasks(
                x, cnt, p, task_ptr[p], task_ptr[p + 1], tasks, c, hist, kmin, kmax, buf, cursor
            )


@jit_parallel
def _pass(
    events, mem_bool, mem_packed, chunk_ptr, slots, comps, dims, gates, mem_t, pairs_t, tasks, acc
):
    # Only the split into chunks runs in the parallel region (numba#8085, as in `fused`).
    for c in prange(chunk_ptr.shape[0] - 1):
        _chunk(
            c,
            events,
            mem_bool,
            mem_packed,
            chunk_ptr,
            slots,
            comps,
            dims,
            gates,
            mem_t,
            pairs_t,
            tasks,
            acc,
        )


@jit
def _values_block(blk, events, slots, comps, dims, out):
    dim_list, slot_used = dims[7], dims[8]
    start = blk * BLOCK
    nb = min(BLOCK, events.shape[0] - start)
    src = np.empty((slots[0].shape[0], BLOCK), dtype=np.float64)
    tile = np.empty((slots[2], BLOCK), dtype=np.float64)
    vals = np.empty((dims[0].shape[0], BLOCK), dtype=np.float64)
    scratch = np.empty(BLOCK, dtype=np.float64)
    _block_values(
        events, start, nb, slots, comps, dims[:7], dim_list, slot_used, src, tile, scratch, vals
    )
    for j in range(dim_list.shape[0]):
        row = vals[dim_list[j]]
        o = out[j]
        for i in range(nb):
            o[start + i] = row[i]


@jit_parallel
def _values(events, slots, comps, dims, out):
    for blk in prange((events.shape[0] + BLOCK - 1) // BLOCK):
        _values_block(blk, events, slots, comps, dims, out)


# --- keys and bins (Python side) ----------------------------------------------------------------


def _key_to_float(key: int) -> float:
    b = np.array([key], dtype=np.int64)
    b ^= (b >> 63) & _SIGN_MASK
    return float(b.view(np.float64)[0])


def _digit1_py(key: int) -> int:
    """`_digit1` in Python (for planning)."""
    a = key if key >= 0 else ~key
    p = min(max(((a >> 52) - _E0) << 8 | ((a >> 44) & 255), 0), 32767)
    return 32768 + p if key >= 0 else 32767 - p


def _bin1_range(d: int) -> tuple[int, int]:
    """The smallest and largest key whose level-1 bin is ``d`` (NaN keys excluded)."""
    p = d - 32768 if d >= 32768 else 32767 - d
    if p == 0:
        a0, a1 = 0, (_E0 << 52) + (1 << 44) - 1
    elif p == 32767:
        a0, a1 = ((_E0 + 127) << 52) | (255 << 44), 0x7FF << 52  # up to inf
    else:
        a0 = ((_E0 + (p >> 8)) << 52) | ((p & 255) << 44)
        a1 = a0 + (1 << 44) - 1
    if d >= 32768:
        return a0, a1
    return ~a1, ~a0


# --- the pass driver ----------------------------------------------------------------------------


@dataclass
class _Group:
    """Order statistics of one pair that lie in the key interval ``[lo, hi]``."""

    pair: int
    lo: int
    hi: int
    below: int  # values of the pair with a key < lo
    ranks: list  # their global 0-based ranks
    count: int  # values of the pair in the interval
    chunk_counts: np.ndarray  # the same, per chunk
    collect: bool = False


def _split(pair, below, ranks, tot, chunk_counts, bin_range, clip=None) -> list[_Group]:
    """The groups of ``ranks`` over a histogram ``tot`` whose bin ``b`` holds keys ``bin_range(b)``."""
    cum = np.cumsum(tot)
    by_bin: dict[int, list] = {}
    for r in ranks:
        by_bin.setdefault(int(np.searchsorted(cum, r - below, side="right")), []).append(r)
    out = []
    for b, rs in by_bin.items():
        lo, hi = bin_range(b)
        if clip is not None:  # the smallest and largest key seen in the interval
            lo, hi = max(lo, clip[0]), min(hi, clip[1])
        counts = np.ascontiguousarray(chunk_counts[:, b], dtype=np.int64)
        out.append(_Group(pair, lo, hi, below + int(cum[b] - tot[b]), rs, int(tot[b]), counts))
    return out


def _tasks(modes, los, his, shifts, offs, pairs=None, n_pairs: int = 0) -> tuple:
    """The kernel's task tuple; with ``pairs``, the bitmap of each pair's level-1 bins with a task."""
    arrays = tuple(np.asarray(a, dtype=np.int64) for a in (modes, los, his, shifts, offs))
    want = np.zeros((n_pairs if pairs is not None else 0, NBINS1 // 64), dtype=np.uint64)
    if pairs is not None:
        for p, lo, hi in zip(pairs, arrays[1].tolist(), arrays[2].tolist(), strict=True):
            for d in range(_digit1_py(lo), _digit1_py(hi) + 1):
                want[p, d >> 6] |= np.uint64(1) << np.uint64(d & 63)
    return (*arrays, want)


class _Passes:
    """Runs passes over the events for one batch of (population, dimension) pairs."""

    def __init__(self, ev, plan, mem, dims_t, chunk_ptr, pair_gate, pair_dim, pair_thr, n_g):
        self.ev, self.mem, self.dims_t, self.chunk_ptr = ev, mem, dims_t, chunk_ptr
        self.plan_args = _plan_args(plan)
        self.gates_t = _gates_args(plan)
        self.pairs = (pair_gate, pair_dim, pair_thr)
        self.n_g = n_g
        self.n_chunks = chunk_ptr.shape[0] - 1
        self.n_pairs = pair_gate.shape[0]
        self.count = 0

    def __call__(self, tasks, task_ptr, *, moments, hist_size, collect_size, cursor0=None):
        C, P, T = self.n_chunks, self.n_pairs, tasks[0].shape[0]
        nb = int(self.chunk_ptr[-1]) if moments else 0
        acc = (
            moments,
            np.zeros((nb, self.n_g), dtype=np.int64),  # members per gate
            np.zeros((nb, P), dtype=np.int64),  # non-NaN values
            np.zeros((nb, P), dtype=np.float64),  # sum
            np.zeros((nb, P), dtype=np.float64),  # squared deviations from the block mean
            np.zeros((nb, P), dtype=np.int64),  # values >= threshold
            np.zeros((C, hist_size), dtype=np.int32),
            np.full((C, T), np.iinfo(np.int64).max, dtype=np.int64),
            np.full((C, T), np.iinfo(np.int64).min, dtype=np.int64),
            np.empty(collect_size, dtype=np.float64),
            np.zeros((C, T), dtype=np.int64) if cursor0 is None else cursor0.copy(),
        )
        mode, gate_src, mem_b, mem_p = self.mem
        call_strided(
            _pass,
            self.ev,
            mem_b,
            mem_p,
            self.chunk_ptr,
            *self.plan_args,
            self.dims_t,
            self.gates_t,
            (mode, gate_src),
            (*self.pairs, task_ptr),
            tasks,
            acc,
            strided=(0, 1, 2),
        )
        self.count += 1
        return acc


def _select(passes: _Passes, groups: list[_Group], order: list[dict], max_collect: int) -> None:
    """Resolve every group's ranks into ``order[pair][rank]``, one pass per round."""
    C, P = passes.n_chunks, passes.n_pairs
    while True:
        pending = []
        for g in groups:
            if g.lo == g.hi:  # one key: every value in the interval is the same
                v = _key_to_float(g.lo)
                for r in g.ranks:
                    order[g.pair][r] = v
            else:
                pending.append(g)
        if not pending:
            return
        total = 0
        for g in sorted(pending, key=lambda g: g.count):
            if total + g.count > max_collect:
                break
            total += g.count
            g.collect = True
        pending.sort(key=lambda g: g.pair)  # tasks are grouped by pair
        modes, shifts, offs = [], [], []
        cursor0 = np.zeros((C, len(pending)), dtype=np.int64)
        hist_size = coll = 0
        for t, g in enumerate(pending):
            if g.collect:
                modes.append(_T_COLLECT)
                shifts.append(0)
                offs.append(coll)
                cursor0[:, t] = coll + np.cumsum(g.chunk_counts) - g.chunk_counts
                coll += g.count
            else:
                s = max(0, (g.hi - g.lo).bit_length() - _REFINE_BITS)
                modes.append(_T_HIST)
                shifts.append(s)
                offs.append(hist_size)
                hist_size += ((g.hi - g.lo) >> s) + 1
        tasks = _tasks(
            modes,
            [g.lo for g in pending],
            [g.hi for g in pending],
            shifts,
            offs,
            [g.pair for g in pending],
            P,
        )
        task_ptr = np.searchsorted([g.pair for g in pending], np.arange(P + 1)).astype(np.int64)
        acc = passes(
            tasks,
            task_ptr,
            moments=False,
            hist_size=hist_size,
            collect_size=coll,
            cursor0=cursor0,
        )
        hist, kmin, kmax, buf, cursor = acc[6:]
        groups = []
        for t, g in enumerate(pending):
            if g.collect:
                if not np.array_equal(cursor[:, t], cursor0[:, t] + g.chunk_counts):
                    raise RuntimeError(
                        f"population_stats: pass {passes.count} found other values than the pass "
                        "before it; were the events or the membership modified during the call?"
                    )
                rr = np.array(g.ranks, dtype=np.int64) - g.below
                part = np.partition(buf[offs[t] : offs[t] + g.count], rr)
                for r, k in zip(g.ranks, rr.tolist(), strict=True):
                    order[g.pair][r] = float(part[k])
                continue
            s = shifts[t]
            sub = hist[:, offs[t] : offs[t] + ((g.hi - g.lo) >> s) + 1]
            tot = sub.sum(axis=0, dtype=np.int64)
            if int(tot.sum()) != g.count:
                raise RuntimeError(
                    f"population_stats: pass {passes.count} counted {int(tot.sum())} values where "
                    f"the pass before it counted {g.count}; were the events or the membership "
                    "modified during the call?"
                )

            def sub_range(b, lo=g.lo, hi=g.hi, s=s):
                return lo + (b << s), min(hi, lo + ((b + 1) << s) - 1)

            clip = (int(kmin[:, t].min()), int(kmax[:, t].max()))
            groups += _split(g.pair, g.below, g.ranks, tot, sub, sub_range, clip)


def _chunks(n: int, nblocks: int) -> np.ndarray:
    """Block boundaries of one chunk per thread (chunks under 2**30 events: int32 counts)."""
    c = min(nblocks, max(numba.get_num_threads(), -(-n // (1 << 30))))
    return np.array([nblocks * i // c for i in range(c + 1)], dtype=np.int64)
