"""Gate membership kernels: rectangle (range), polygon, ellipsoid, quadrant, Boolean.

These are the standalone kernels; `cytokit.kernels.fused.evaluate_plan`
evaluates a whole gating tree in one pass with the same tests (``in_range``,
``polygon_block`` — the vectorised form of ``in_polygon`` —, ``in_ellipsoid``),
so both give identical memberships.

Calling convention (every geometric gate)
-----------------------------------------
* ``x``: array of shape ``(n_events, n_dims)``; column ``j`` holds the values of
  the gate's ``j``-th dimension (already compensated/transformed as the gate
  requires). float32 or float64 (integer and bool arrays are converted to
  float64), C- or F-ordered or any strided view, read-only accepted, never
  modified. A 1-D ``x`` is read as one dimension, ``(n_events, 1)``.
* Geometry: float64 array-likes, validated in Python.
* ``out``: optional writeable bool array of shape ``(n_events,)`` (quadrants:
  ``(n_quadrants, n_events)``); returned. Without it a new array is returned.
* Comparisons are made in float64 (float32 values convert exactly).

Edge semantics (checked against the ISAC Gating-ML 2.0 compliance truth)
-----------------------------------------------------------------------
* **NaN**: an event with NaN in any dimension a gate reads is outside that
  gate (and outside every quadrant that names the dimension). Boolean gates
  combine memberships as plain booleans, so ``NOT g`` *contains* such events.
* **Rectangle / range**: inside iff ``min <= v < max`` in every dimension
  (Gating-ML 2.0: minimum inclusive, maximum exclusive). A bound given as NaN,
  ``-inf`` (min) or ``+inf`` (max) is open: no limit on that side, so
  ``v = ±inf`` is inside an open side.
* **Polygon** (2-D, vertices in order, closed implicitly): the **even-odd**
  rule. The compliance polygon ``Polygon3NS`` folds over itself; even-odd
  reproduces its truth exactly, non-zero winding puts 2 events too many in
  the doubly-wound part. Points on the boundary follow the half-open
  crossing rule: a horizontal ray to the right counts an edge when
  ``(y0 > y) != (y1 > y)`` and the point is strictly left of the edge,
  decided by the sign of an exact-as-possible cross product (no division;
  the division form misplaces points on a diagonal edge of ``Polygon1``).
  For an axis-aligned rectangle this is ``xmin <= x < xmax``,
  ``ymin <= y < ymax`` — the rectangle gate's rule; in general, points on
  edges bounding the polygon from the left or below are inside, those on
  edges bounding it from the right or above are outside. ±inf coordinates
  are outside.
* **Ellipsoid** (n-D): inside iff ``(x − μ)ᵀ C⁻¹ (x − μ) <= d²``
  (Gating-ML 2.0 ``distanceSquare``; boundary inclusive). ``C`` must be a
  covariance matrix: symmetric to rounding and positive definite (otherwise
  the region is unbounded; `check_covariance` refuses it, and so FlowKit's
  ``Ellipsoid3D`` test document, whose matrix is neither); it is used as given.
* **Quadrant**: each divider has sorted values ``v_0 < … < v_{m-1}`` that cut
  its dimension into ``m + 1`` intervals ``[v_{k-1}, v_k)`` (``v_{-1} = -inf``,
  ``v_m = +inf``): a value equal to a divider value belongs to the interval
  above it (checked on data1.fcs, where 42 events have SSC-H exactly 17.75).
  A quadrant is a set of (divider, interval) pairs; a divider a quadrant
  does not name is not read. Gating-ML names the interval by a ``location``
  inside it: `quadrant_interval` converts.
* **Boolean**: AND / OR over operands, each optionally complemented
  (Gating-ML ``use-as-complement``); NOT takes exactly one operand.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange, types

from ._config import check_out, jit, jit_parallel, native
from .geometry import (
    ellipsoid_geometry,
    polygon_geometry,
    quadrant_bounds,
    quadrant_interval,
    range_bounds,
)

__all__ = [
    "GATE_AND",
    "GATE_ELLIPSOID",
    "GATE_NOT",
    "GATE_OR",
    "GATE_POLYGON",
    "GATE_QUADRANT",
    "GATE_RECTANGLE",
    "boolean_membership",
    "ellipsoid_membership",
    "in_ellipsoid",
    "in_polygon",
    "in_range",
    "polygon_block",
    "polygon_membership",
    "quadrant_interval",
    "quadrant_membership",
    "rectangle_membership",
]

#: Gate kind codes (shared with `cytokit.kernels.plan.GatingPlan`).
GATE_RECTANGLE = 0
GATE_POLYGON = 1
GATE_ELLIPSOID = 2
GATE_QUADRANT = 3
GATE_AND = 4
GATE_OR = 5
GATE_NOT = 6

_BLOCK = 16384  # events per parallel task
_PARALLEL_MIN = 4 * _BLOCK

# --- scalar tests (shared with the fused evaluator) --------------------------------------------


@jit
def in_range(v, lo, hi):
    """``lo <= v < hi`` with ``lo = -inf`` / ``hi = +inf`` meaning an open side; NaN is outside.

    Bounds must already be normalised (NaN bounds replaced by ``∓inf``).
    """
    return v >= lo and (v < hi or hi == math.inf)


@jit
def in_polygon(px, py, geom, off, nv):
    """Even-odd test of ``(px, py)`` against a polygon stored in ``geom``.

    ``geom[off:off + 4]`` is the bounding box ``(xmin, xmax, ymin, ymax)``,
    then ``nv`` vertices as ``x0, y0, x1, y1, …``.
    """
    if not (
        px >= geom[off] and px <= geom[off + 1] and py >= geom[off + 2] and py <= geom[off + 3]
    ):
        return False  # also rejects NaN and ±inf
    v = off + 4
    inside = False
    xj = geom[v + 2 * (nv - 1)]
    yj = geom[v + 2 * (nv - 1) + 1]
    for k in range(nv):
        xi = geom[v + 2 * k]
        yi = geom[v + 2 * k + 1]
        if (yi > py) != (yj > py):
            # Edge from (xj, yj) to (xi, yi) straddles the ray's line. The
            # point is strictly left of the edge's crossing iff this cross
            # product has the sign of (yi - yj); no division, so a point on a
            # diagonal edge is exactly on it (cross == 0) and not counted.
            cross = (xi - xj) * (py - yj) - (px - xj) * (yi - yj)
            if (cross > 0.0) == (yi > yj) and cross != 0.0:
                inside = not inside
        xj = xi
        yj = yi
    return inside


@jit
def polygon_block(x, y, geom, off, nv, out, nb):
    """``out[i] &= in_polygon(x[i], y[i], …)`` for ``i < nb``, edge by edge.

    The same crossing test as `in_polygon`, branch-free and with the edge
    loop outside, so the loop over events vectorises: per edge, an event
    flips its parity when the edge straddles its ``y`` and the point is
    strictly left of it (the cross product times the edge's direction sign
    is > 0, an exact sign flip). Only candidates go through the edges:
    events with ``out[i]`` set inside the closed bounding box (which also
    removes NaN and ±inf coordinates), gathered first, so a gate under a
    small parent, or a small polygon, costs little more than one pass.
    """
    x0 = geom[off]
    x1 = geom[off + 1]
    y0 = geom[off + 2]
    y1 = geom[off + 3]
    idx = np.empty(nb, dtype=np.int64)
    cnt = 0
    for i in range(nb):  # branch-free compaction
        ok = out[i] & (x[i] >= x0) & (x[i] <= x1) & (y[i] >= y0) & (y[i] <= y1)
        out[i] = False
        idx[cnt] = i
        cnt += ok
    xs = np.empty(cnt, dtype=np.float64)
    ys = np.empty(cnt, dtype=np.float64)
    for k in range(cnt):
        xs[k] = x[idx[k]]
        ys[k] = y[idx[k]]
    inside = np.zeros(cnt, dtype=np.bool_)
    v = off + 4
    xj = geom[v + 2 * (nv - 1)]
    yj = geom[v + 2 * (nv - 1) + 1]
    for e in range(nv):
        xi = geom[v + 2 * e]
        yi = geom[v + 2 * e + 1]
        if yi != yj:  # horizontal edges never straddle
            dx = xi - xj
            dy = yi - yj
            sgn = 1.0 if yi > yj else -1.0
            for k in range(cnt):
                cross = dx * (ys[k] - yj) - (xs[k] - xj) * dy
                inside[k] ^= ((yi > ys[k]) != (yj > ys[k])) & (cross * sgn > 0.0)
        xj = xi
        yj = yi
    for k in range(cnt):
        out[idx[k]] = inside[k]


@jit
def in_ellipsoid(d, geom, off, nd):
    """``(d − μ)ᵀ C⁻¹ (d − μ) <= d²`` for ``d`` a float64 vector of length ``nd``.

    ``geom[off:]`` holds ``μ`` (``nd``), ``C⁻¹`` row-major (``nd²``), then ``d²``.
    """
    m = off
    inv = off + nd
    q = 0.0
    for a in range(nd):
        da = d[a] - geom[m + a]
        row = 0.0
        for b in range(nd):
            row += geom[inv + a * nd + b] * (d[b] - geom[m + b])
        q += da * row
    return q <= geom[inv + nd * nd]  # NaN (from NaN or inf coordinates) is outside


# --- array kernels ------------------------------------------------------------------------------


def _rectangle_body(x, lo, hi, out):
    n = x.shape[0]
    nd = x.shape[1]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        for i in range(blk * _BLOCK, min(blk * _BLOCK + _BLOCK, n)):
            ok = True
            for j in range(nd):
                if not in_range(np.float64(x[i, j]), lo[j], hi[j]):
                    ok = False
                    break
            out[i] = ok


@jit
def _polygon_block(x, geom, nv, out, start, nb):
    xs = np.empty(nb, dtype=np.float64)
    ys = np.empty(nb, dtype=np.float64)
    for i in range(nb):
        xs[i] = x[start + i, 0]
        ys[i] = x[start + i, 1]
    m = out[start : start + nb]
    m[:] = True
    polygon_block(xs, ys, geom, 0, nv, m, nb)


def _polygon_body(x, geom, nv, out):
    # Blocks run in a separately compiled function: Numba optimises loops in a
    # cached parallel region less well (numba#8085).
    n = x.shape[0]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        start = blk * _BLOCK
        _polygon_block(x, geom, nv, out, start, min(_BLOCK, n - start))


def _ellipsoid_body(x, geom, out):
    n = x.shape[0]
    nd = x.shape[1]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        d = np.empty(nd, dtype=np.float64)
        for i in range(blk * _BLOCK, min(blk * _BLOCK + _BLOCK, n)):
            for j in range(nd):
                d[j] = x[i, j]
            out[i] = in_ellipsoid(d, geom, 0, nd)


def _quadrant_body(x, lo, hi, used, out):
    n = x.shape[0]
    nd = x.shape[1]
    nq = lo.shape[0]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        for i in range(blk * _BLOCK, min(blk * _BLOCK + _BLOCK, n)):
            for q in range(nq):
                ok = True
                for j in range(nd):
                    if used[q, j] and not in_range(np.float64(x[i, j]), lo[q, j], hi[q, j]):
                        ok = False
                        break
                out[q, i] = ok


def _boolean_body(op, operands, complement, out):
    n = out.shape[0]
    k = operands.shape[0]
    nblocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        for i in range(blk * _BLOCK, min(blk * _BLOCK + _BLOCK, n)):
            if op == 0:  # and
                r = True
                for j in range(k):
                    if operands[j, i] == complement[j]:
                        r = False
                        break
            elif op == 1:  # or
                r = False
                for j in range(k):
                    if operands[j, i] != complement[j]:
                        r = True
                        break
            else:  # not
                r = operands[0, i] == complement[0]
            out[i] = r


_rectangle_kernel = jit_parallel(_rectangle_body)
_polygon_kernel = jit_parallel(_polygon_body)
_ellipsoid_kernel = jit_parallel(_ellipsoid_body)
_quadrant_kernel = jit_parallel(_quadrant_body)
_boolean_kernel = jit_parallel(_boolean_body)


_ENTRIES: dict = {}


def call_strided(kernel, *args, strided=(0,)) -> None:
    """Call ``kernel`` with the arguments at positions ``strided`` typed as strided ('A') arrays.

    Numba compiles one version per array layout; typing the event array (by
    default the first argument) as 'A' lets C-ordered, F-ordered and sliced
    inputs share one compilation (and one on-disk cache entry) per dtype,
    for one extra stride multiply per element read. Every other argument
    keeps its exact Numba type and the whole signature is the key, so a
    compiled version is only ever called with the types it was compiled for.
    """
    strided_entry(kernel, *args, strided=strided)(*args)


def strided_entry(kernel, *args, strided=(0,)):
    """The compiled version of ``kernel`` that `call_strided` would call with ``args``."""
    sig = tuple(
        types.Array(numba.from_dtype(a.dtype), a.ndim, "A") if i in strided else numba.typeof(a)
        for i, a in enumerate(args)
    )
    key = (kernel, sig)
    entry = _ENTRIES.get(key)
    if entry is None:
        entry = _ENTRIES[key] = kernel.compile(sig)
    return entry


# --- validation helpers -------------------------------------------------------------------------


def _as_events(x, n_dims: int | None, what: str) -> np.ndarray:
    arr = native(x)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{what}: x must be 2-D (n_events, n_dims), got shape {arr.shape}")
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what}: x has dtype {arr.dtype}; expected float32 or float64")
    if n_dims is not None and arr.shape[1] != n_dims:
        raise ValueError(
            f"{what}: x has {arr.shape[1]} columns but the gate has {n_dims} dimensions; "
            f"pass x of shape (n_events, {n_dims})"
        )
    return arr


def _as_out(out, shape: tuple[int, ...], what: str) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.bool_)
    return check_out(out, shape, (np.bool_,), what)


# --- public wrappers -----------------------------------------------------------------------------


def rectangle_membership(x, lo, hi, *, out=None) -> np.ndarray:
    """Events inside a rectangle (range) gate: ``lo <= x < hi`` in every dimension.

    Parameters
    ----------
    x : array_like, shape (n_events, n_dims) or (n_events,)
        Dimension values, float32 or float64 (see the module's calling convention).
    lo, hi : array_like of float, shape (n_dims,)
        Minimum (inclusive) and maximum (exclusive); NaN/None, ``-inf`` (min)
        or ``+inf`` (max) leave that side open.
    out : numpy.ndarray of bool, shape (n_events,), optional

    Returns
    -------
    numpy.ndarray of bool, shape (n_events,)
        NaN values are outside.
    """
    lo, hi = range_bounds(lo, hi)
    xa = _as_events(x, lo.shape[0], "rectangle")
    res = _as_out(out, (xa.shape[0],), "rectangle")
    call_strided(_rectangle_kernel, xa, lo, hi, res)
    return res


def polygon_membership(x, vertices, *, out=None) -> np.ndarray:
    """Events inside a 2-D polygon gate (even-odd rule; edges as the module describes).

    Parameters
    ----------
    x : array_like, shape (n_events, 2)
    vertices : array_like of float, shape (n_vertices >= 3, 2)
    out : numpy.ndarray of bool, shape (n_events,), optional

    Returns
    -------
    numpy.ndarray of bool, shape (n_events,)
    """
    geom = polygon_geometry(vertices)
    xa = _as_events(x, 2, "polygon")
    res = _as_out(out, (xa.shape[0],), "polygon")
    call_strided(_polygon_kernel, xa, geom, (geom.shape[0] - 4) // 2, res)
    return res


def ellipsoid_membership(x, mean, covariance, distance_square, *, out=None) -> np.ndarray:
    """Events inside an n-D ellipsoid: ``(x − μ)ᵀ C⁻¹ (x − μ) <= d²``.

    Parameters
    ----------
    x : array_like, shape (n_events, n_dims)
    mean : array_like of float, shape (n_dims,)
    covariance : array_like of float, shape (n_dims, n_dims)
    distance_square : float
    out : numpy.ndarray of bool, shape (n_events,), optional

    Returns
    -------
    numpy.ndarray of bool, shape (n_events,)
    """
    geom = ellipsoid_geometry(mean, covariance, distance_square)
    nd = np.asarray(mean).size
    xa = _as_events(x, nd, "ellipsoid")
    res = _as_out(out, (xa.shape[0],), "ellipsoid")
    call_strided(_ellipsoid_kernel, xa, geom, res)
    return res


def quadrant_membership(x, dividers, quadrants, *, out=None) -> np.ndarray:
    """Membership of each quadrant of a quadrant gate.

    Parameters
    ----------
    x : array_like, shape (n_events, n_dims)
        Column ``j`` is divider ``j``'s dimension.
    dividers : sequence of array_like, length n_dims
        Each divider's values, strictly increasing.
    quadrants : array_like of int, shape (n_quadrants, n_dims)
        Interval index of each quadrant on each divider (`quadrant_interval`),
        -1 where the quadrant does not name the divider.
    out : numpy.ndarray of bool, shape (n_quadrants, n_events), optional

    Returns
    -------
    numpy.ndarray of bool, shape (n_quadrants, n_events)
        Row ``q`` is quadrant ``q``. A value equal to a divider value is on
        the upper side; NaN in a named divider's dimension is outside.
    """
    lo, hi, used = quadrant_bounds(dividers, quadrants)
    xa = _as_events(x, lo.shape[1], "quadrant")
    res = _as_out(out, (lo.shape[0], xa.shape[0]), "quadrant")
    call_strided(_quadrant_kernel, xa, lo, hi, used, res)
    return res


_OPS = {"and": 0, "or": 1, "not": 2}


def boolean_membership(op: str, operands, complement=None, *, out=None) -> np.ndarray:
    """Combine gate memberships with AND, OR or NOT.

    Parameters
    ----------
    op : {"and", "or", "not"}
    operands : array_like of bool, shape (n_operands, n_events), or a sequence of (n_events,) arrays
        ``not`` takes exactly one operand; ``and``/``or`` at least one.
    complement : array_like of bool, shape (n_operands,), optional
        Use operand ``j`` as its complement (Gating-ML ``use-as-complement``).
    out : numpy.ndarray of bool, shape (n_events,), optional

    Returns
    -------
    numpy.ndarray of bool, shape (n_events,)
    """
    if op not in _OPS:
        raise ValueError(f"boolean op={op!r} is not one of {sorted(_OPS)}")
    if not isinstance(operands, np.ndarray):
        operands = list(operands)
        lengths = {np.shape(o) for o in operands}
        if len(lengths) > 1:
            raise ValueError(
                f"boolean {op!r}: the operands have different shapes {sorted(lengths)}; each "
                "must be one membership per event of the same sample"
            )
    ops = np.asarray(operands)
    if ops.size == 0 and ops.ndim <= 1:  # [] (no operands) is read as float64 (1, 0)
        raise ValueError(f"boolean {op!r} got no operands; 'not' takes 1, 'and'/'or' at least 1")
    if ops.ndim == 1:
        ops = ops.reshape(1, -1)
    if ops.ndim != 2 or ops.dtype != np.bool_:
        raise ValueError(
            f"boolean operands must be bool of shape (n_operands, n_events), got {ops.dtype} {ops.shape}"
        )
    k = ops.shape[0]
    if k == 0 or (op == "not" and k != 1):
        raise ValueError(f"boolean {op!r} got {k} operands; 'not' takes 1, 'and'/'or' at least 1")
    comp = (
        np.zeros(k, dtype=np.bool_)
        if complement is None
        else np.asarray(complement, dtype=np.bool_)
    )
    if comp.shape != (k,):
        raise ValueError(
            f"boolean complement has shape {comp.shape}; expected ({k},), one flag per operand"
        )
    res = _as_out(out, (ops.shape[1],), "boolean")
    _boolean_kernel(_OPS[op], ops, comp, res)
    return res
