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
"""

from __future__ import annotations

import math

import numpy as np

from ._config import jit
from .logicle import logicle_d

__all__ = ["BIEX_CHANNELS", "biex_fill_params"]

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
