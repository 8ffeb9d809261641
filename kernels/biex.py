"""FlowJo's biexponential ("biex") display transform, as used when importing FlowJo 10 workspaces.

FlowJo does not evaluate a closed form for ``biex``: it builds a lookup table
of ``R + 1 = 4097`` data values, one per display channel ``0 … R``, and maps a
data value to channels by linear interpolation in that table (values below
the first entry map to channel 0, above the last to channel ``R``). FlowKit
reproduces FlowJo's counts the same way. The table is samples of a
biexponential in the channel number ``ch``:

    g(ch) = m·(e^(kp·ch) − S·e^(−kn·ch) − s0)        for ch ≥ z
    g(ch) = −g(2z − ch)                               for ch < z

From the workspace attributes ``neg`` (extra negative decades), ``width``
(the width basis, ``<= -1``), ``pos`` (positive decades) and ``maxRange``:
``lw = log10(−width)``, ``D = pos − lw/2``, ``E = max(neg, 0) + lw/2``,
``z = int(min(int(E·R/(E + D)), R/2))`` and, when ``z > 0``, ``D = E·R/z``;
``wn = lw/(2D)``; ``kp·(R+1) = D·ln 10``; ``m = maxRange·e^(−D·ln 10)``;
``kn·(R+1)`` is the logicle ``d`` for ``b = D·ln 10`` and ``w = wn``;
``S = e^((kp + kn)(R+1)(wn + E/D))`` and ``s0`` makes ``g(z) = 0``.

Here no table is stored: ``g`` is evaluated at the two integer channels that
bracket ``x`` (found by a safeguarded Newton solve of ``g(ch) = x`` and then
checked against ``g`` at the integers), so the result is exactly the
piecewise-linear table lookup while the parameters fit in the fixed-length
vector the fused gate evaluator carries.

Fast path (`biex_build_lut`, `biex_lut_scalar`): the 4097 table values plus a
search index. The index has one entry per 1/64 octave of ``|x|`` (found from
the float's bit pattern, no ``log``) holding the last table entry at or below
that bin's left edge, so a lookup walks at most a few entries. Negative data
use the table's mirror symmetry ``g(z − t) = −g(z + t)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import jit
from ._xftable import _f64_bits
from .logicle import logicle_d

__all__ = ["BIEX_CHANNELS", "biex_build_lut", "biex_fill_params"]

LN10 = math.log(10.0)

#: Channels of FlowJo's biex display (the table has ``BIEX_CHANNELS + 1`` entries).
BIEX_CHANNELS = 4096

# Slots of the parameter vector (slot 0 holds the transform code).
_NEG, _WIDTH, _POS, _TOP, _MIN, _KP, _KN, _S, _S0, _Z, _R = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11


def biex_fill_params(
    p: np.ndarray, negative: float, width: float, positive: float, max_value: float
) -> None:
    """Precompute the biex constants into ``p[1:12]`` (parameters already validated)."""
    R = BIEX_CHANNELS
    n_points = R + 1
    lw = math.log10(-width)
    decades = positive - lw / 2.0
    extra = max(negative, 0.0) + lw / 2.0
    z = int(min(int(extra * R / (extra + decades)), R / 2))
    if z > 0:
        decades = extra * R / z
    wn = lw / (2.0 * decades)
    pr = LN10 * decades
    minimum = max_value / math.exp(pr)
    nr = logicle_d(pr, wn)
    kp = pr / n_points
    kn = nr / n_points
    S = math.exp((pr + nr) * (wn + extra / decades))
    s0 = math.exp(z * kp) - S * math.exp(-z * kn)
    p[_NEG], p[_WIDTH], p[_POS], p[_TOP] = negative, width, positive, max_value
    p[_MIN], p[_KP], p[_KN], p[_S], p[_S0] = minimum, kp, kn, S, s0
    p[_Z], p[_R] = z, R


@jit
def _g_upper(p, ch):
    """``g(ch)`` for ``ch >= z`` (real-valued channel)."""
    return p[_MIN] * ((math.exp(ch * p[_KP]) - p[_S] * math.exp(-ch * p[_KN])) - p[_S0])


@jit
def _g(p, ch):
    z = p[_Z]
    if ch >= z:
        return _g_upper(p, ch)
    return -_g_upper(p, 2.0 * z - ch)


@jit
def _solve_upper(p, v):
    """Channel ``ch`` in ``[z, R]`` with ``g(ch) = v`` for ``0 <= v < g(R)``."""
    lo, hi = p[_Z], p[_R]
    t = v / p[_MIN] + p[_S0]
    ch = math.log(t) / p[_KP] if t > 1.0 else lo
    if not (lo < ch < hi):
        ch = 0.5 * (lo + hi)
    for _ in range(100):
        ep = math.exp(ch * p[_KP])
        en = p[_S] * math.exp(-ch * p[_KN])
        f = p[_MIN] * ((ep - en) - p[_S0]) - v
        if f < 0.0:
            lo = ch
        else:
            hi = ch
        df = p[_MIN] * (p[_KP] * ep + p[_KN] * en)
        nch = ch - f / df
        if not (lo < nch < hi):
            nch = 0.5 * (lo + hi)
        if abs(nch - ch) < 1e-7 or hi - lo < 1e-7:
            return nch
        ch = nch
    return ch


@jit
def biex_scalar(p, x):
    """Display channel in ``[0, 4096]`` of data value ``x`` (NaN → NaN; clipped at both ends)."""
    if x != x:
        return x
    R = p[_R]
    if x <= _g(p, 0.0):
        return 0.0
    if x >= _g(p, R):
        return R
    z = p[_Z]
    if x >= 0.0:
        ch = _solve_upper(p, x)
    else:
        ch = 2.0 * z - _solve_upper(p, -x)
    i = min(max(math.floor(ch), 0.0), R - 1.0)
    lo = _g(p, i)
    hi = _g(p, i + 1.0)
    # The solve is accurate to ~1e-7 channel; settle on the table bin exactly.
    while i > 0.0 and x < lo:
        i -= 1.0
        hi = lo
        lo = _g(p, i)
    while i < R - 1.0 and x > hi:
        i += 1.0
        lo = hi
        hi = _g(p, i + 1.0)
    return i + (x - lo) / (hi - lo)


@jit
def biex_inverse_scalar(p, ch):
    """Data value of display channel ``ch`` (clipped to ``[0, 4096]``; NaN → NaN)."""
    if ch != ch:
        return ch
    R = p[_R]
    c = min(max(ch, 0.0), R)
    i = min(math.floor(c), R - 1.0)
    lo = _g(p, i)
    hi = _g(p, i + 1.0)
    return lo + (c - i) * (hi - lo)


# --- fast path: materialised table + bit-pattern search index ---------------------------------

_K = 6  # index bins per octave: 2**_K
_SHIFT = 52 - _K
_HDR = 8
_L_BASE, _L_NBINS, _L_Z, _L_R, _L_GR, _L_G2Z = 0, 1, 2, 3, 4, 5


@jit
def _fill_table(p, g):
    for i in range(g.shape[0]):
        g[i] = _g(p, float(i))


def biex_build_lut(p: np.ndarray) -> np.ndarray:
    """Table and search index for `biex_lut_scalar` (float64 1-D, ~5,400 values)."""
    R = int(p[_R])
    z = int(p[_Z])
    g = np.empty(R + 1, dtype=np.float64)
    _fill_table(p, g)
    pos = g[z:]  # increasing from g[z] = 0
    e_lo = math.floor(math.log2(pos[1]))
    e_hi = math.ceil(math.log2(pos[-1])) + 1
    per = 1 << _K
    edges = (np.ldexp(1.0, np.arange(e_lo, e_hi))[:, None] * (1.0 + np.arange(per) / per)).ravel()
    # last table entry (channel >= z, < R) whose value is <= the bin's left edge
    idx = np.clip(np.searchsorted(g[z:R], edges, side="right") - 1 + z, z, R - 1)
    lut = np.zeros(_HDR + g.size + idx.size, dtype=np.float64)
    lut[_L_BASE] = float(int(np.float64(edges[0]).view(np.int64)) >> _SHIFT)
    lut[_L_NBINS] = idx.size
    lut[_L_Z] = z
    lut[_L_R] = R
    lut[_L_GR] = g[R]
    lut[_L_G2Z] = g[2 * z]
    lut[_HDR : _HDR + g.size] = g
    lut[_HDR + g.size :] = idx
    return lut


@jit
def _pos_channel(lut, v, z, R, base, nbins):
    """Interpolated channel of ``0 <= v < g(R)`` on the table's positive side."""
    k = (_f64_bits(v) >> _SHIFT) - base
    if k < 0:
        i = z
    else:
        i = np.int64(lut[_HDR + R + 1 + min(k, nbins - 1)])
    while i < R - 1 and lut[_HDR + i + 1] <= v:
        i += 1
    lo = lut[_HDR + i]
    return i + (v - lo) / (lut[_HDR + i + 1] - lo)


@jit
def biex_lut_scalar(lut, x):
    """Same result as `biex_scalar` (to rounding) using the table from `biex_build_lut`."""
    x = np.float64(x)
    if x != x:
        return x
    R = np.int64(lut[_L_R])
    z = np.int64(lut[_L_Z])
    base = np.int64(lut[_L_BASE])
    nbins = np.int64(lut[_L_NBINS])
    v = abs(x)
    if x >= 0.0:
        if v >= lut[_L_GR]:
            return float(R)
        return _pos_channel(lut, v, z, R, base, nbins)
    if v >= lut[_L_G2Z]:
        return 0.0
    return 2.0 * z - _pos_channel(lut, v, z, R, base, nbins)


@jit
def biex_lut_inverse_scalar(lut, ch):
    """Same result as `biex_inverse_scalar` using the table."""
    ch = np.float64(ch)
    if ch != ch:
        return ch
    R = lut[_L_R]
    c = min(max(ch, 0.0), R)
    i = np.int64(min(math.floor(c), R - 1.0))
    lo = lut[_HDR + i]
    return lo + (c - i) * (lut[_HDR + i + 1] - lo)


_BLOCK = 16384


@jit
def _biex_block(lut, inverse, x, out, start, stop):
    if inverse:
        for i in range(start, stop):
            out[i] = biex_lut_inverse_scalar(lut, x[i])
    else:
        for i in range(start, stop):
            out[i] = biex_lut_scalar(lut, x[i])


@jit
def biex_map_range(b0, b1, lut, inverse, x, out):
    """Blocks ``b0 .. b1 - 1`` of ``_BLOCK`` values (`cytokit.kernels._threads.run_ranges`)."""
    n = x.shape[0]
    for blk in range(b0, b1):
        start = blk * _BLOCK
        _biex_block(lut, inverse, x, out, start, min(start + _BLOCK, n))
