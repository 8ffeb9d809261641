"""Logicle scale (Parks et al. 2006; Moore & Parks 2012; Gating-ML 2.0 ``logicle``).

The logicle value ``y`` of a data value ``x`` is the root of ``B(y) = x`` where
``B`` is the modified biexponential

    B(y) = a·e^(b·y) − c·e^(−d·y) + f          for y ≥ x1
    B(y) = −B(2·x1 − y)                        for y < x1

with ``w = W/(M+A)``, ``x2 = A/(M+A)``, ``x1 = x2 + w``, ``x0 = x2 + 2w``,
``b = (M+A)·ln 10`` and ``d`` the root of ``w = 2·ln(d/b) / (b + d)``
(Moore & Parks 2012, eq. 4; ``d = b`` when ``W = 0``). ``a``, ``c`` and ``f``
make ``B(1) = T``, ``B(x1) = 0`` and ``B''(x1) = 0``.

Numerics. Around ``x1`` the published code sums a 16-term Taylor series to
avoid the cancellation of ``a·e^(by)`` against ``c·e^(−dy)``. Here the same
function is written relative to ``x1``:

    B(x1 + u) = P·expm1(b·u) − Q·expm1(−d·u),   P = a·e^(b·x1), Q = c·e^(−d·x1)

whose two first-order terms (``P·b·u`` and ``Q·d·u``) have the same sign, so
it carries full relative precision for every ``u ≥ 0`` with no series. The
forward transform solves ``B(x1 + u) = |x|`` by Halley's method (cubic
convergence, as in Moore & Parks) from a bracketing start.

The parameter vector layout (slots after the kind code in slot 0) is private
to this module; build it with `cytokit.kernels.transform_params`.
"""

from __future__ import annotations

import math

import numpy as np

from ._config import jit

__all__ = ["logicle_d", "logicle_fill_params"]

LN10 = math.log(10.0)

# Slots of the parameter vector (slot 0 holds the transform code).
_T, _W, _M, _A, _P, _Q, _B, _D, _X1, _T0, _AA = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11


def logicle_d(b: float, w: float) -> float:
    """Solve ``2·(ln d − ln b) + w·(b + d) = 0`` for ``d`` in ``(0, b]``.

    Parameters
    ----------
    b : float
        ``(M + A)·ln 10``, > 0.
    w : float
        ``W / (M + A)``, ``0 <= w <= 1/2``.

    Returns
    -------
    float
        ``d``; ``b`` when ``w == 0`` (the scale is then a pure arcsinh).

    Notes
    -----
    The left side is increasing in ``d`` (derivative ``2/d + w > 0``), negative
    as ``d → 0`` and ``w·2b >= 0`` at ``d = b``, so the root is bracketed.
    Safeguarded Newton: a Newton step is taken when it stays inside the
    bracket, otherwise bisection, until the bracket collapses to one ulp.
    """
    if w == 0.0:
        return b
    lo, hi = 0.0, b
    d = 0.5 * b
    fb = -2.0 * math.log(b) + w * b
    for _ in range(200):
        f = 2.0 * math.log(d) + w * d + fb
        if f == 0.0:
            return d
        if f < 0.0:
            lo = d
        else:
            hi = d
        step = f / (2.0 / d + w)
        nd = d - step
        if not (lo < nd < hi):
            nd = 0.5 * (lo + hi)
        if nd == d or hi - lo <= 4.0 * math.ulp(hi):
            return nd
        d = nd
    return d


def logicle_fill_params(p: np.ndarray, T: float, W: float, M: float, A: float) -> None:
    """Precompute the logicle constants into ``p[1:12]`` (parameters already validated)."""
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2.0 * w
    b = (M + A) * LN10
    d = logicle_d(b, w)
    # Moore & Parks 2012 closed forms for a, c, f given b, d, x0, x1.
    c_a = math.exp(x0 * (b + d))
    mf_a = math.exp(b * x1) - c_a / math.exp(d * x1)
    a = T / ((math.exp(b) - mf_a) - c_a / math.exp(d))
    c = c_a * a
    P = a * math.exp(b * x1)
    Q = c * math.exp(-d * x1)
    p[_T], p[_W], p[_M], p[_A] = T, W, M, A
    p[_P], p[_Q], p[_B], p[_D], p[_X1] = P, Q, b, d, x1
    p[_T0] = P * b + Q * d  # dB/dy at y = x1: data units per scale unit at zero
    p[_AA] = a


@jit
def _biex_rel(p, u):
    """``B(x1 + u)`` for ``u >= 0`` (accurate relative to the result)."""
    return p[_P] * math.expm1(p[_B] * u) - p[_Q] * math.expm1(-p[_D] * u)


@jit
def logicle_inverse_scalar(p, y):
    """Data value of logicle scale value ``y`` (``±inf`` → ``±inf``, NaN → NaN)."""
    x1 = p[_X1]
    u = y - x1
    if u >= 0.0:
        return _biex_rel(p, u)
    if u < 0.0:
        return -_biex_rel(p, -u)
    return u  # NaN


@jit
def _logicle_solve(p, v):
    """``u >= 0`` with ``B(x1 + u) = v`` for finite ``v >= 0`` (Halley)."""
    if v == 0.0:
        return 0.0
    P, Q, b, d = p[_P], p[_Q], p[_B], p[_D]
    # B(x1 + u) is convex for u > 0 with slope t0 at 0, so v/t0 bounds the
    # root from above; the logarithmic guess is better for large v.
    u = v / p[_T0]
    ulog = (math.log(v) - math.log(p[_AA])) / b - p[_X1]
    if 0.0 < ulog < u:
        u = ulog
    for _ in range(50):
        eb = P * math.exp(b * u)
        ed = Q * math.exp(-d * u)
        f = (P * math.expm1(b * u) - Q * math.expm1(-d * u)) - v
        df = b * eb + d * ed
        ddf = b * b * eb - d * d * ed
        if df == math.inf:
            break  # |x| near the float64 limit: the logarithmic guess is exact there
        # Halley's step, arranged so that huge |x| cannot overflow df².
        r = f / df
        delta = r / (1.0 - 0.5 * r * (ddf / df))
        u -= delta
        if abs(delta) <= 4e-16 * (1.0 + u):
            break
    return u


@jit
def logicle_scalar(p, x):
    """Logicle scale value of data value ``x`` (``±inf`` → ``±inf``, NaN → NaN)."""
    x1 = p[_X1]
    if x >= 0.0:
        if x == math.inf:
            return math.inf
        return x1 + _logicle_solve(p, x)
    if x < 0.0:
        if x == -math.inf:
            return -math.inf
        return x1 - _logicle_solve(p, -x)
    return x  # NaN
