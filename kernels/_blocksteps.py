"""The steps of one block of the fused pass: sources, dimensions, gates.

Shared by `cytokit.kernels.fused` (the gating pass) and
`cytokit.kernels._statpass` (statistics), so both see the same values and
memberships. Each function works on one block of at most ``BLOCK`` events
held in private buffers; see `cytokit.kernels.fused` for the order of the
steps and the layout of the plan tables they read.
"""

from __future__ import annotations

import numpy as np

from ._config import jit
from .gates import (
    GATE_AND,
    GATE_ELLIPSOID,
    GATE_NOT,
    GATE_OR,
    GATE_POLYGON,
    in_ellipsoid,
    polygon_block,
)

# Block loops of the transform kernels (same numerics as `transform_scalar_lut`).
from ._xftable import _table_block  # isort: skip
from .biex import _biex_block  # isort: skip
from .transforms import XF_BIEX, XF_HYPERLOG, XF_LOGICLE, XF_NONE, _closed_block, ratio_scalar

__all__ = ["_block_values", "_dimension", "_gate", "_gates", "_sources", "_sources_at"]


@jit
def _sources(
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
    slot_used,
    tile,
    src,
):
    """Raw and compensated source columns of one block into ``src`` (n_slots, BLOCK), float64.

    Only the slots flagged in ``slot_used`` are filled (the others are left as they are).
    """
    for c in range(cslot_ptr.shape[0] - 1):
        s0 = cslot_ptr[c]
        s1 = cslot_ptr[c + 1]
        used = False
        for s in range(s0, s1):
            used = used or slot_used[s]
        if not used:
            continue  # no dimension asked for reads this matrix
        k0 = comp_ptr[c]
        k = comp_ptr[c + 1] - k0
        base = comp_inv_ptr[c]
        # Gather the matrix's columns into a contiguous (k, nb) tile, then each
        # needed output column is k contiguous multiply-adds (SIMD-friendly),
        # summed in the order m = 0..k-1 like `cytokit.kernels.compensate`.
        for m in range(k):
            col = comp_cols[k0 + m]
            t = tile[m]
            for i in range(nb):
                t[i] = events[start + i, col]
        for s in range(s0, s1):
            if not slot_used[s]:
                continue
            j = slot_index[s]
            row = src[s]
            for i in range(nb):
                row[i] = 0.0
            for m in range(k):
                coef = comp_inv[base + m * k + j]
                t = tile[m]
                for i in range(nb):
                    row[i] += coef * t[i]
    for s in range(n_cslots, slot_index.shape[0]):
        if not slot_used[s]:
            continue
        col = slot_index[s]
        row = src[s]
        for i in range(nb):
            row[i] = events[start + i, col]


@jit
def _sources_at(
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
    slot_used,
    tile,
    src,
):
    """`_sources` for the ``cnt`` rows ``start + idx[:cnt]`` only, packed into ``src[s, :cnt]``.

    The same products summed in the same order, so each value is bit for bit
    the one `_sources` gives for that row.
    """
    for c in range(cslot_ptr.shape[0] - 1):
        s0 = cslot_ptr[c]
        s1 = cslot_ptr[c + 1]
        used = False
        for s in range(s0, s1):
            used = used or slot_used[s]
        if not used:
            continue
        k0 = comp_ptr[c]
        k = comp_ptr[c + 1] - k0
        base = comp_inv_ptr[c]
        for m in range(k):
            col = comp_cols[k0 + m]
            t = tile[m]
            for i in range(cnt):
                t[i] = events[start + idx[i], col]
        for s in range(s0, s1):
            if not slot_used[s]:
                continue
            j = slot_index[s]
            row = src[s]
            for i in range(cnt):
                row[i] = 0.0
            for m in range(k):
                coef = comp_inv[base + m * k + j]
                t = tile[m]
                for i in range(cnt):
                    row[i] += coef * t[i]
    for s in range(n_cslots, slot_index.shape[0]):
        if not slot_used[s]:
            continue
        col = slot_index[s]
        row = src[s]
        for i in range(cnt):
            row[i] = events[start + idx[i], col]


@jit
def _dimension(kind, params, lut, a, b, abc, src, scratch, out, nb):
    """One dimension of one block: ratio (if ``b >= 0``), then the transform, into ``out``."""
    if b >= 0:
        ra = abc[0]
        rb = abc[1]
        rc = abc[2]
        xa = src[a]
        xb = src[b]
        for i in range(nb):
            scratch[i] = ratio_scalar(xa[i], xb[i], ra, rb, rc)
        x = scratch
    else:
        x = src[a]
    # The transforms' own block loops: dispatch hoisted out of the loop and, for
    # the table-driven kinds, a branch-free main loop with an exact fix-up pass
    # (~2-3 ns per value, against ~25-45 ns for `transform_scalar_lut` called
    # per value, whose inlined root finder defeats the loop's optimisation).
    if kind == XF_NONE:
        for i in range(nb):
            out[i] = x[i]
    elif kind == XF_LOGICLE or kind == XF_HYPERLOG:
        _table_block(kind, params, lut, x, out, 0, nb)
    elif kind == XF_BIEX:
        _biex_block(lut, False, x, out, 0, nb)
    else:  # the closed forms: linear, log, asinh
        _closed_block(kind, params, x, out, 0, nb)


@jit
def _gates(
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
):
    """Every gate of one block, in plan order, into ``mem`` (n_gates, BLOCK); counts per gate."""
    for g in range(gate_kind.shape[0]):
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


@jit
def _gate(
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
):
    """Gate ``g`` of one block into ``mem[g]`` and ``counts[g]`` (its parent already done).

    ``vals`` need only hold the right values for the events of the gate's
    parent: every test is ANDed with the parent's membership, and the
    ellipsoid reads values only where that membership holds.
    """
    kind = gate_kind[g]
    p = gate_parent[g]
    m = mem[g]
    d0 = dims_ptr[g]
    nd = dims_ptr[g + 1] - d0
    g0 = geom_ptr[g]
    o0 = op_ptr[g]
    no = op_ptr[g + 1] - o0
    # Start from the parent (or everything): every test below only ANDs.
    if p >= 0:
        mp = mem[p]
        for i in range(nb):
            m[i] = mp[i]
    else:
        for i in range(nb):
            m[i] = True
    if kind == GATE_POLYGON:
        nv = (geom_ptr[g + 1] - g0 - 4) // 2
        polygon_block(vals[gate_dims[d0]], vals[gate_dims[d0 + 1]], geom, g0, nv, m, nb)
    elif kind == GATE_ELLIPSOID:
        for i in range(nb):
            if m[i]:
                for j in range(nd):
                    dbuf[j] = vals[gate_dims[d0 + j], i]
                m[i] = in_ellipsoid(dbuf, geom, g0, nd)
    elif kind == GATE_AND:
        for j in range(no):
            src = mem[operands[o0 + j]]
            c = op_compl[o0 + j]
            for i in range(nb):
                m[i] = m[i] & (src[i] != c)
    elif kind == GATE_OR:
        acc = np.zeros(nb, dtype=np.bool_)
        for j in range(no):
            src = mem[operands[o0 + j]]
            c = op_compl[o0 + j]
            for i in range(nb):
                acc[i] = acc[i] | (src[i] != c)
        for i in range(nb):
            m[i] = m[i] & acc[i]
    elif kind == GATE_NOT:
        src = mem[operands[o0]]
        c = op_compl[o0]
        for i in range(nb):
            m[i] = m[i] & (src[i] == c)
    elif nd == 2:  # rectangle or quadrant on two dimensions: one pass (the test below)
        v = vals[gate_dims[d0]]
        w = vals[gate_dims[d0 + 1]]
        lo = geom[g0]
        hi = geom[g0 + 1]
        lo2 = geom[g0 + 2]
        hi2 = geom[g0 + 3]
        hi_open = hi == np.inf
        hi2_open = hi2 == np.inf
        for i in range(nb):
            m[i] = (
                m[i]
                & (v[i] >= lo)
                & ((v[i] < hi) | hi_open)
                & (w[i] >= lo2)
                & ((w[i] < hi2) | hi2_open)
            )
    else:  # rectangle or quadrant: lo <= v < hi per dimension (see `in_range`)
        for j in range(nd):
            v = vals[gate_dims[d0 + j]]
            lo = geom[g0 + 2 * j]
            hi = geom[g0 + 2 * j + 1]
            hi_open = hi == np.inf
            for i in range(nb):
                m[i] = m[i] & (v[i] >= lo) & ((v[i] < hi) | hi_open)
    cnt = 0
    for i in range(nb):
        cnt += m[i]
    counts[g] = cnt


@jit
def _block_values(
    events, start, nb, slots, comps, dims, dim_list, slot_used, src, tile, scratch, vals
):
    """The dimensions ``dim_list`` of the block at ``start`` into ``vals[d, :nb]`` (float64).

    ``slot_used`` flags the sources those dimensions read (`_slots_for`); ``src``
    (n_slots, BLOCK), ``tile`` (max_k, BLOCK) and ``scratch`` (BLOCK,) are work
    buffers. Shared by `evaluate_plan` and `cytokit.kernels.stats`, so both see
    the same values.
    """
    slot_index, n_cslots, _ = slots
    cslot_ptr, comp_inv, comp_inv_ptr, comp_cols, comp_ptr = comps
    dim_a, dim_b, dim_ratio, dim_xf, dim_params, lut_buf, lut_ptr = dims
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
        slot_used,
        tile,
        src,
    )
    for j in range(dim_list.shape[0]):
        d = dim_list[j]
        lut = lut_buf[lut_ptr[d] : lut_ptr[d + 1]]
        params = dim_params[d].copy()  # private: cannot alias the outputs
        _dimension(
            dim_xf[d], params, lut, dim_a[d], dim_b[d], dim_ratio[d], src, scratch, vals[d], nb
        )
