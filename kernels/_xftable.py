"""Fast path for the root-finding transforms (logicle, hyperlog): a piecewise-quintic table.

Both transforms are ``y = x1 ± u(|x|)`` with ``u`` increasing, so only ``u(v)``
for ``v >= 0`` is tabulated. The exact scalar functions (Halley iterations,
two ``exp`` per step) evaluate ``u``, ``du/dv`` and ``d²u/dv²`` at the table
nodes; between nodes the quintic Hermite interpolant of those is evaluated,
which needs no transcendental function at all.

Nodes sit where the float64 bit pattern of ``v`` has its low mantissa bits
zero: ``2**e · (1 + j/2**K)``, ``j < 2**K``. The bin of a value is then its bit
pattern shifted right, i.e. bins are log-spaced per octave and found without
a ``log``. With ``K = 6`` the interpolation error is ~1e-14 in ``y`` for logicle
and up to ~4e-13 for hyperlog at extreme parameters (``W = 5, M = 10, A = -5``),
measured against the exact scalar functions. Bin 0 covers
``v`` below the first node ``vmin`` (tiny ``|x|``, deep in the linear region)
with ``u = v / B'(x1)``, exact to far below rounding; at or above ``vmax``
(about 64·T), NaN and ±inf the exact scalar function is called.

Table layout (float64, 1-D): ``_HEADER`` slots, then ``_W = 7`` values per
bin ``(v_k, c0, …, c5)`` with ``u ≈ c0 + s·(c1 + s·(c2 + …))``, ``s = v − v_k``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import intrinsic

from . import hyperlog as _hyperlog
from . import logicle as _logicle
from ._config import jit
from .hyperlog import hyperlog_scalar
from .logicle import logicle_scalar

__all__ = ["build_table", "table_for", "table_scalar"]

K = 6  # mantissa bits per octave: 64 bins per factor of two
_SHIFT = 52 - K
_HEADER = 4
_W = 7  # values per bin: node, then 6 polynomial coefficients
# header slots
_H_BASE, _H_NBINS, _H_X1, _H_KIND = 0, 1, 2, 3
_BLOCK = 16384  # values per parallel task

# Code values duplicated from transforms (which imports this module).
_XF_LOGICLE = 4
_XF_HYPERLOG = 5


@intrinsic
def _f64_bits(typingctx, x):
    """Reinterpret a float64 as int64 (no conversion): the bin index of a value."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@jit
def _exact(kind, p, x):
    if kind == _XF_LOGICLE:
        return logicle_scalar(p, x)
    return hyperlog_scalar(p, x)


@jit
def _fill_nodes(kind, p, x1, nodes, u, du, ddu):
    """Exact ``u``, ``du/dv`` and ``d²u/dv²`` at ``nodes`` (inverse-function rule).

    With ``B`` the inverse transform, ``u' = 1/B'(u)`` and ``u'' = −B''(u)/B'(u)³``;
    ``B'`` and ``B''`` are closed forms, so no digits are lost to differencing.
    """
    for i in range(nodes.shape[0]):
        u[i] = _exact(kind, p, nodes[i]) - x1
        if kind == _XF_LOGICLE:
            P, Q, b, d = p[5], p[6], p[7], p[8]
            eb = P * math.exp(b * u[i])
            ed = Q * math.exp(-d * u[i])
            d1 = b * eb + d * ed
            d2 = b * b * eb - d * d * ed
        else:
            P, b, c = p[5], p[6], p[7]
            eb = P * math.exp(b * u[i])
            d1 = b * eb + c
            d2 = b * b * eb
        du[i] = 1.0 / d1
        ddu[i] = -d2 / (d1 * d1 * d1)


def build_table(kind: int, p: np.ndarray, top: float, x1: float, t0: float) -> np.ndarray:
    """Table for ``kind`` (``XF_LOGICLE`` or ``XF_HYPERLOG``) with parameter vector ``p``.

    ``top`` is the transform's ``T``; ``x1`` its value at data zero; ``t0`` its
    slope ``dB/dy`` at ``x1``. Returns the float64 table described above.
    """
    # |u| = v/t0 <= 1e-7 below vmin: the dropped cubic term is ~(b·u)²/6 relative.
    e_lo = math.floor(math.log2(t0 * 1e-7))
    e_hi = math.ceil(math.log2(top)) + 6
    per = 1 << K
    j = np.arange(per, dtype=np.float64)
    octaves = np.ldexp(1.0, np.arange(e_lo, e_hi))
    nodes = np.concatenate([(octaves[:, None] * (1.0 + j / per)).ravel(), [math.ldexp(1.0, e_hi)]])
    u = np.empty_like(nodes)
    du = np.empty_like(nodes)
    ddu = np.empty_like(nodes)
    # a writeable copy: a plan's frozen parameter vector would be another type signature
    # (read-only arrays are), compiling the exact transforms a second time
    _fill_nodes(kind, np.array(p, dtype=np.float64), x1, nodes, u, du, ddu)
    h = np.diff(nodes)
    # Quintic Hermite: match u, u', u'' at both ends of each bin.
    c0, c1, c2 = u[:-1], du[:-1], 0.5 * ddu[:-1]
    dd = u[1:] - (c0 + h * (c1 + h * c2))
    de = (du[1:] - (c1 + 2.0 * c2 * h)) * h
    df = (ddu[1:] - 2.0 * c2) * h * h
    nb = (e_hi - e_lo) * per
    tab = np.zeros(_HEADER + _W * (nb + 1), dtype=np.float64)
    coef = tab[_HEADER:].reshape(nb + 1, _W)
    # Bin 0 is the linear region below the first node: u = v / t0.
    coef[0, 2] = 1.0 / t0
    coef[1:, 0] = nodes[:-1]
    coef[1:, 1] = c0
    coef[1:, 2] = c1
    coef[1:, 3] = c2
    coef[1:, 4] = (10.0 * dd - 4.0 * de + 0.5 * df) / h**3
    coef[1:, 5] = (-15.0 * dd + 7.0 * de - df) / h**4
    coef[1:, 6] = (6.0 * dd - 3.0 * de + 0.5 * df) / h**5
    # Bin of v: (bits(v) >> _SHIFT) - base, which is 1 at the first node.
    tab[_H_BASE] = float((int(np.float64(nodes[0]).view(np.int64)) >> _SHIFT) - 1)
    tab[_H_NBINS] = nb
    tab[_H_X1] = x1
    tab[_H_KIND] = kind
    return tab


def table_for(kind: int, p: np.ndarray) -> np.ndarray:
    """Table for a logicle or hyperlog parameter vector made by ``transform_params``."""
    m = _logicle if kind == _XF_LOGICLE else _hyperlog
    return build_table(kind, p, float(p[m._T]), float(p[m._X1]), float(p[m._T0]))


@jit
def _bin(base, v):
    """Unclamped bin of ``v = |x|`` (> number of bins for v >= vmax, inf and NaN)."""
    return max((_f64_bits(v) >> _SHIFT) - base, 0)


@jit
def _poly(tab, k, v):
    o = _HEADER + _W * k
    s = v - tab[o]
    return tab[o + 1] + s * (
        tab[o + 2] + s * (tab[o + 3] + s * (tab[o + 4] + s * (tab[o + 5] + s * tab[o + 6])))
    )


@jit
def table_fits(kind, tab):
    """Whether `tab` is a table of `kind` of its own stated length (so a read of any bin
    stays inside it); a table for other parameters of the same kind is not detected."""
    if tab.shape[0] < _HEADER:
        return False
    nb = tab[_H_NBINS]
    if not (nb >= 0.0 and nb < 1e9):  # NaN fails too
        return False
    return tab[_H_KIND] == kind and tab.shape[0] == _HEADER + _W * (np.int64(nb) + 1)


@jit
def table_scalar(kind, p, tab, x):
    """Transform one value with the table (the exact scalar function beyond the table)."""
    v = abs(np.float64(x))
    k = _bin(np.int64(tab[_H_BASE]), v)
    if k > np.int64(tab[_H_NBINS]):
        return _exact(kind, p, x)  # NaN, ±inf and values beyond ~64·T
    return tab[_H_X1] + math.copysign(_poly(tab, k, v), x)


@jit
def _table_block(kind, p, tab, x, out, start, stop):
    # Header values in locals: ``out`` may alias ``tab`` as far as LLVM knows.
    nb = np.int64(tab[_H_NBINS])
    base = np.int64(tab[_H_BASE])
    x1 = tab[_H_X1]
    # Branch-free main loop (the sign is applied with copysign, the bin
    # clamped); values off the table are redone exactly in a second pass,
    # which keeps the root finder out of the hot loop.
    off = False
    for i in range(start, stop):
        v = abs(np.float64(x[i]))
        k = _bin(base, v)
        off |= k > nb
        out[i] = x1 + math.copysign(_poly(tab, min(k, nb), v), x[i])
    if off:
        for i in range(start, stop):
            v = abs(np.float64(x[i]))
            if _bin(base, v) > nb:
                out[i] = _exact(kind, p, np.float64(x[i]))


@jit
def table_map_range(b0, b1, kind, p, tab, x, out):
    """Blocks ``b0 .. b1 - 1`` of ``_BLOCK`` values (`cytokit.kernels._threads.run_ranges`)."""
    n = x.shape[0]
    for blk in range(b0, b1):
        start = blk * _BLOCK
        _table_block(kind, p, tab, x, out, start, min(start + _BLOCK, n))
