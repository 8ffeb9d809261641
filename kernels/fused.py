"""One pass over the events for a whole gating tree: compensation, transforms, gates, counts.

`evaluate_plan` reads each event row once. Events are processed in blocks of
`BLOCK` events, in parallel over blocks (a serial ``nogil`` kernel called on
ranges of blocks from Python threads, `cytokit.kernels._threads`); each
block works in small private buffers (the values of the dimensions the
gates read, and the block's memberships), so no compensated or transformed
copy of the data is ever made. Per block, in order:

1. **sources**: every column a gate's dimension reads, raw or compensated
   (``Σ_m x[i, cols[m]]·inv[m, j]`` summed in float64 in the order
   ``m = 0..k-1``, from a tile of the matrix's columns gathered once);
2. **dimensions** the gates read (a plan may carry more, e.g. for
   `cytokit.kernels.population_stats`; those are skipped): ratio (if any), then the transform, with the transform
   kernels' own block loops (the same numerics as `transform_scalar_lut`:
   table-driven logicle/hyperlog/biex, exact to ~1e-13; NaN stays NaN);
3. **gates** in plan order: each gate's test (``in_range``,
   ``polygon_block``, ``in_ellipsoid`` of `cytokit.kernels.gates`, so
   memberships equal the standalone kernels') ANDed with its parent's
   membership; Boolean gates combine earlier rows;
4. per-block counts (summed after the parallel loop, so there are no races)
   and, if asked, the membership rows copied or bit-packed into the output.

Steps 1-2 run for every event only for the dimensions a top-level gate (or
the children of several gates) reads. A dimension that only the children of
one gate read is computed right after that gate, for its member events
alone, gathered and packed (`_scopes`): in a blood sample the compensated,
logicle-transformed markers under Lymphocytes/Singlets are computed for a
small part of the events. Each value is computed by the same operations in
the same order as for a whole block, so memberships are bit for bit the same.
"""

from __future__ import annotations

import numpy as np

from ._blocksteps import _dimension, _gate, _sources, _sources_at
from ._config import jit
from ._threads import run_ranges
from .compensation import event_matrix
from .gates import strided_entry
from .plan import GatingPlan

__all__ = ["BLOCK", "CountPass", "evaluate_plan", "unpack_membership"]

#: Events per block (a multiple of 64, so packed words never straddle blocks). Small enough
#: that a block's buffers stay in the core's cache.
BLOCK = 2048

_MODE_NONE, _MODE_BOOL, _MODE_PACKED = 0, 1, 2


@jit
def _output(mem, nb, start, row_of_gate, mode, mem_out, packed_out):
    if mode == _MODE_BOOL:
        for g in range(row_of_gate.shape[0]):
            r = row_of_gate[g]
            if r >= 0:
                for i in range(nb):
                    mem_out[r, start + i] = mem[g, i]
    elif mode == _MODE_PACKED:
        w0 = start // 64
        for g in range(row_of_gate.shape[0]):
            r = row_of_gate[g]
            if r >= 0:
                for w in range((nb + 63) // 64):
                    word = np.uint64(0)
                    for bit in range(min(64, nb - 64 * w)):
                        if mem[g, 64 * w + bit]:
                            word |= np.uint64(1) << np.uint64(bit)
                    packed_out[r, w0 + w] = word


@jit
def _scoped_values(events, start, nb, member, slots, comps, dims, grp, idx, bufs, vals):
    """The dimensions of scope group ``grp`` for the events with ``member[i]``, into ``vals``.

    Gathers those events' rows, computes the group's dimensions on them packed
    (`_sources_at`, then `_dimension` on ``cnt`` values) and scatters the
    results to their rows of ``vals``; other rows of those dimensions are left
    as they are (no gate reads them, see `_scopes`).
    """
    slot_index, n_cslots, _ = slots
    cslot_ptr, comp_inv, comp_inv_ptr, comp_cols, comp_ptr = comps
    dim_a, dim_b, dim_ratio, dim_xf, dim_params, lut_buf, lut_ptr = dims[:7]
    grp_ptr, grp_dims, grp_slots = dims[7], dims[8], dims[9]
    src, tile, scratch, packed = bufs
    # np.int64, not the literal 0: Numba types the calls below while it infers the loop's
    # types, and a counter first seen as Literal[int](0) compiled every callee (the
    # whole transform code) a second time for that literal signature
    cnt = np.int64(0)
    for i in range(nb):  # branch-free compaction
        idx[cnt] = i
        cnt += member[i]
    if cnt == 0:
        return
    in_place = cnt == nb
    if in_place:
        # every event (always so before the first gate): the block's rows in place, no
        # gather or scatter; `_sources` computes each value as `_sources_at` does
        _sources(
            events,
            start,
            nb,
            slot_index,
            n_cslots,
            cslot_ptr,
            comp_inv,
            comp_inv_ptr,
            comp_cols,
            comp_ptr,
            grp_slots[grp],
            tile,
            src,
        )
    else:
        _sources_at(
            events,
            start,
            idx,
            cnt,
            slot_index,
            n_cslots,
            cslot_ptr,
            comp_inv,
            comp_inv_ptr,
            comp_cols,
            comp_ptr,
            grp_slots[grp],
            tile,
            src,
        )
    for j in range(grp_ptr[grp], grp_ptr[grp + 1]):
        d = grp_dims[j]
        lut = lut_buf[lut_ptr[d] : lut_ptr[d + 1]]
        params = dim_params[d].copy()  # private: cannot alias the outputs
        dest = vals[d] if in_place else packed  # in place: straight into the block's row
        _dimension(
            dim_xf[d], params, lut, dim_a[d], dim_b[d], dim_ratio[d], src, scratch, dest, cnt
        )
        if not in_place:
            row = vals[d]
            for k in range(cnt):
                row[idx[k]] = packed[k]


@jit
def _block(blk, events, slots, comps, dims, gates, out, counts_blk, work):
    """Evaluate block ``blk``: sources → dimensions → gates → output; private buffers.

    Each scope group (``dims[7:11]``, `_scopes`) is computed by
    `_scoped_values`: the dimensions every event needs before the first gate,
    the others right after their scope gate, for its members only. One call
    site for all of them, so the transform code is compiled into the pass once.
    """
    grp_gate = dims[10]
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
        _max_dims,
    ) = gates
    row_of_gate, mode, mem_out, packed_out = out
    start = blk * BLOCK
    nb = min(BLOCK, events.shape[0] - start)
    bufs, vals, idx, mem, everyone, dbuf = work
    counts = counts_blk[blk]
    n_groups = grp_gate.shape[0]
    grp = np.int64(0)  # not the literal 0: see `_scoped_values`
    for g in range(-1, gate_kind.shape[0]):
        if g >= 0:
            _gate(
                g,
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
                counts,
            )
        while grp < n_groups and grp_gate[grp] == g:
            member = mem[g] if g >= 0 else everyone
            _scoped_values(events, start, nb, member, slots, comps, dims, grp, idx, bufs, vals)
            grp += 1
    _output(mem, nb, start, row_of_gate, mode, mem_out, packed_out)


@jit
def _evaluate(b0, b1, events, slots, comps, dims, gates, out, counts_blk):
    """Blocks ``b0 .. b1 - 1``: one thread's share of `evaluate_plan` (`_threads.run_ranges`).

    The blocks' work buffers are allocated once here, not per block: no gate
    reads a value or membership a block has not written first (see `_gate`).
    """
    slot_index, _, max_k = slots
    src = np.empty((slot_index.shape[0], BLOCK), dtype=np.float64)
    tile = np.empty((max_k, BLOCK), dtype=np.float64)
    bufs = (src, tile, np.empty(BLOCK, dtype=np.float64), np.empty(BLOCK, dtype=np.float64))
    vals = np.empty((dims[0].shape[0], BLOCK), dtype=np.float64)
    work = (
        bufs,
        vals,
        np.empty(BLOCK, dtype=np.int64),
        np.empty((gates[0].shape[0], BLOCK), dtype=np.bool_),
        np.ones(BLOCK, dtype=np.bool_),
        np.empty(gates[-1], dtype=np.float64),
    )
    for blk in range(b0, b1):
        _block(blk, events, slots, comps, dims, gates, out, counts_blk, work)


def _plan_args(plan: GatingPlan) -> tuple:
    """The ``slots`` and ``comps`` tuples of `_block_values` for ``plan``."""
    a = plan._arrays
    return (
        (a.slot_index, a.n_cslots, a.max_k),
        (a.cslot_ptr, a.comp_inv, a.comp_inv_ptr, a.comp_cols, a.comp_ptr),
    )


def _dims_args(plan: GatingPlan) -> tuple:
    """The ``dims`` tuple of `_block_values` for ``plan`` (every dimension's recipe)."""
    a = plan._arrays
    return (
        a.dim_a,
        a.dim_b,
        plan.dim_ratio,
        plan.dim_transform,
        plan.dim_transform_params,
        a.lut_buf,
        a.lut_ptr,
    )


def _gates_args(plan: GatingPlan) -> tuple:
    """The gate tables `_gates` reads, as one tuple."""
    return (
        plan.gate_kind,
        plan.gate_parent,
        plan.dims_ptr,
        plan.gate_dims,
        plan.geom_ptr,
        plan.geometry,
        plan.operands_ptr,
        plan.operands,
        plan.operand_complement,
        plan._arrays.max_dims,
    )


def _slots_for(plan: GatingPlan, dim_list: np.ndarray) -> np.ndarray:
    """Flags of the source slots that the dimensions ``dim_list`` read."""
    a = plan._arrays
    used = np.zeros(a.slot_index.shape[0], dtype=np.bool_)
    used[a.dim_a[dim_list]] = True
    b = a.dim_b[dim_list]
    used[b[b >= 0]] = True
    return used


def _scopes(plan: GatingPlan) -> tuple:
    """Which events each dimension the gates read must be computed for.

    A dimension that only children of one gate ``p`` read is needed only for
    ``p``'s members (every child's test is ANDed with ``p``), so the fused pass
    computes it after ``p``, for those events alone: in a blood sample, the
    compensated, transformed markers of a tree under Lymphocytes/Singlets
    are computed for a few tens of per cent of the events. Any other
    dimension (read by a top-level gate or by children of several gates) is
    computed for every event, before the first gate (scope gate -1).

    Returns
    -------
    tuple
        ``(grp_ptr, grp_dims, grp_slots, grp_gate)``: the scope groups (CSR
        over ``grp_dims``), one per scope gate in plan order (-1 first), each
        with its source flags (``(n_groups, n_slots)`` bool) and its gate.
    """
    scope: dict[int, int] = {}
    for g in range(plan.n_gates):
        p = int(plan.gate_parent[g])
        for d in plan.gate_dims[plan.dims_ptr[g] : plan.dims_ptr[g + 1]].tolist():
            scope[d] = p if scope.get(d, p) == p else -1
    gates = sorted(set(scope.values()))
    groups = [
        np.array(sorted(d for d, p in scope.items() if p == g), dtype=np.int64) for g in gates
    ]
    n_slots = plan._arrays.slot_index.shape[0]
    grp_slots = np.zeros((len(groups), n_slots), dtype=np.bool_)
    for i, dl in enumerate(groups):
        grp_slots[i] = _slots_for(plan, dl)
    grp_ptr = np.zeros(len(groups) + 1, dtype=np.int64)
    grp_ptr[1:] = np.cumsum([len(dl) for dl in groups])
    grp_dims = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    return grp_ptr, grp_dims, grp_slots, np.array(gates, dtype=np.int64)


def _check_events(events, plan: GatingPlan) -> np.ndarray:
    """``events`` as a float32/float64 2-D array wide enough for ``plan`` (no copy unless integer)."""
    if not isinstance(plan, GatingPlan):
        raise TypeError(f"plan must be a GatingPlan, got {type(plan).__name__}")
    ev = event_matrix(events)
    max_column = plan._arrays.max_column
    if max_column >= ev.shape[1]:
        raise ValueError(
            f"the plan reads column {max_column} but events have {ev.shape[1]} columns; "
            "was the plan compiled for another panel?"
        )
    return ev


def _rows(plan: GatingPlan, membership) -> np.ndarray | None:
    if membership is None or membership is False:
        return None
    if membership is True:
        return plan.output
    rows = np.asarray(membership)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(
            f"membership must be True, False or a 1-D sequence of gate indices, got {membership!r}"
        )
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= plan.n_gates):
        raise ValueError(f"membership gate indices {rows.tolist()} outside 0..{plan.n_gates - 1}")
    return rows


def _pass_tables(plan: GatingPlan, out: tuple) -> tuple:
    """The arguments of `_evaluate` between the events and the per-block counts."""
    return (
        *_plan_args(plan),
        (*_dims_args(plan), *_scopes(plan)),
        _gates_args(plan),
        out,
    )


class CountPass:
    """``evaluate_plan(events, plan, membership=False)[0]`` for many arrays, set up once.

    `evaluate_plan` builds the plan's tables and looks up its compiled entry
    on every call (~0.4-0.8 ms, mostly Numba typing its arguments): nothing
    next to a whole file, but a cost per slice when a file is gated slice by
    slice (`cytokit.gating.stream`). Here that is done once for arrays of
    one dtype; each call runs the same kernel on the same tables, so the
    counts are `evaluate_plan`'s.

    Parameters
    ----------
    plan : GatingPlan
    dtype : float32 or float64
        The dtype of every events array given to `__call__`.
    """

    def __init__(self, plan: GatingPlan, dtype) -> None:
        if not isinstance(plan, GatingPlan):
            raise TypeError(f"plan must be a GatingPlan, got {type(plan).__name__}")
        self.plan = plan
        self.dtype = np.dtype(dtype)
        ng = plan.n_gates
        out = (
            np.full(ng, -1, dtype=np.int64),
            _MODE_NONE,
            np.zeros((0, 0), dtype=np.bool_),
            np.zeros((0, 0), dtype=np.uint64),
        )
        self._tables = _pass_tables(plan, out) if ng else ()
        self._entry = None
        if ng:
            like = np.zeros((1, plan._arrays.max_column + 1), dtype=self.dtype)
            counts = np.zeros((1, ng), dtype=np.int64)
            self._entry = strided_entry(_evaluate, 0, 0, like, *self._tables, counts, strided=(2,))

    def __call__(self, events: np.ndarray, *, serial: bool = False) -> np.ndarray:
        """Counts of every gate of the plan (int64, ``(n_gates,)``) in ``events``.

        ``serial``: on the calling thread alone (the kernel releases the GIL,
        so callers on several threads run at the same time), instead of
        sharing the blocks with `cytokit.kernels._threads`' pool.
        """
        ev = _check_events(events, self.plan)
        if ev.dtype != self.dtype:
            raise TypeError(f"events are {ev.dtype}; this pass was set up for {self.dtype}")
        nblocks = (ev.shape[0] + BLOCK - 1) // BLOCK
        counts_blk = np.zeros((nblocks, self.plan.n_gates), dtype=np.int64)
        if self._entry is not None:
            if serial:
                self._entry(0, nblocks, ev, *self._tables, counts_blk)
            else:
                run_ranges(self._entry, nblocks, ev, *self._tables, counts_blk)
        return counts_blk.sum(axis=0)


def evaluate_plan(events, plan: GatingPlan, *, membership=True, packed: bool = False):
    """Evaluate every gate of a plan in one parallel pass over the events.

    Parameters
    ----------
    events : numpy.ndarray, shape (n_events, n_channels), float32 or float64
        Scale values, uncompensated and untransformed (the plan says what to
        do to each column). C- or F-ordered or strided, read-only accepted;
        never modified. Integer arrays are converted to float64 (a copy).
    plan : GatingPlan
    membership : bool or sequence of int
        ``True`` (default): return the membership rows of ``plan.output``;
        ``False``/``None``: counts only (the fastest; no O(n_events) output);
        a sequence of gate indices: those gates' rows, in that order.
    packed : bool
        Return membership bit-packed: uint64 words, event ``i`` of a row in
        word ``i // 64``, bit ``i % 64`` (least significant first), padding
        bits 0; 8× less memory. `unpack_membership` turns it back into bool.

    Returns
    -------
    counts : numpy.ndarray of int64, shape (n_gates,)
        Events in each gate (in its parent and its own test), every gate.
    membership : numpy.ndarray or None
        bool, shape ``(n_rows, n_events)``, C-contiguous; or with ``packed``
        uint64, shape ``(n_rows, ceil(n_events / 64))``; None if not asked.

    Raises
    ------
    ValueError
        ``events`` not 2-D or with too few columns for the plan.
    TypeError
        ``events`` not a numeric array, or ``plan`` not a `GatingPlan`.
    """
    ev = _check_events(events, plan)
    n = ev.shape[0]
    ng = plan.n_gates
    rows = _rows(plan, membership)
    row_of_gate = np.full(ng, -1, dtype=np.int64)
    mem_out = np.zeros((0, 0), dtype=np.bool_)
    packed_out = np.zeros((0, 0), dtype=np.uint64)
    mode = _MODE_NONE
    dup = None
    if rows is not None:
        # A gate listed twice is evaluated once and its row copied afterwards.
        first = {}
        for r, g in enumerate(rows.tolist()):
            if g in first:
                dup = dup or []
                dup.append((r, first[g]))
            else:
                first[g] = r
                row_of_gate[g] = r
        if packed:
            mode = _MODE_PACKED
            packed_out = np.empty((rows.shape[0], (n + 63) // 64), dtype=np.uint64)
        else:
            mode = _MODE_BOOL
            mem_out = np.empty((rows.shape[0], n), dtype=np.bool_)
    nblocks = (n + BLOCK - 1) // BLOCK
    counts_blk = np.zeros((nblocks, ng), dtype=np.int64)
    if ng:  # only the dimensions some gate reads (a plan may carry more, for statistics)
        tables = _pass_tables(plan, (row_of_gate, mode, mem_out, packed_out))
        entry = strided_entry(_evaluate, 0, 0, ev, *tables, counts_blk, strided=(2,))
        run_ranges(entry, nblocks, ev, *tables, counts_blk)
    counts = counts_blk.sum(axis=0)
    if rows is None:
        return counts, None
    out = packed_out if packed else mem_out
    for r, r0 in dup or ():
        out[r] = out[r0]
    return counts, out


def unpack_membership(packed: np.ndarray, n_events: int) -> np.ndarray:
    """Bool rows from `evaluate_plan(..., packed=True)` output.

    Parameters
    ----------
    packed : numpy.ndarray of uint64, shape (n_rows, ceil(n_events / 64))
    n_events : int

    Returns
    -------
    numpy.ndarray of bool, shape (n_rows, n_events)
    """
    p = np.ascontiguousarray(packed, dtype=np.uint64)
    if p.ndim != 2 or p.shape[1] != (n_events + 63) // 64:
        raise ValueError(
            f"packed has shape {p.shape}; expected (n_rows, {(n_events + 63) // 64}) for {n_events} events"
        )
    bits = np.unpackbits(p.astype("<u8").view(np.uint8), axis=1, bitorder="little")
    return bits[:, :n_events].astype(np.bool_)
