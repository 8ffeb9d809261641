"""Hyperlog scale (Bagwell 2005; Gating-ML 2.0 ``hyperlog``).

The hyperlog value ``y`` of a data value ``x`` is the root of ``EH(y) = x``:

    EH(y) = a·e^(b·y) + c·y − f               for y ≥ x1
    EH(y) = −EH(2·x1 − y)                     for y < x1

with ``w = W/(M+A)``, ``x2 = A/(M+A)``, ``x1 = x2 + w``, ``x0 = x2 + 2w``,
``b = (M+A)·ln 10``, ``e0 = e^(b·x0)``, ``ca = e0/w``,
``fa = e^(b·x1) + ca·x1``, ``a = T/(e^b + ca − fa)``, ``c = ca·a``,
``f = fa·a`` (Gating-ML 2.0, section on ``hyperlog``). So ``EH(x1) = 0`` and
``EH(1) = T``.

Numerics: relative to ``x1``, ``EH(x1 + u) = P·expm1(b·u) + c·u`` with
``P = a·e^(b·x1)``; both terms are positive for ``u > 0``, so there is no
cancellation near data zero. The forward transform solves it by Halley's
method (the function is increasing and convex for ``u ≥ 0``).
"""

from __future__ import annotations

import math

import numpy as np

from ._config import jit

__all__ = ["hyperlog_fill_params"]

LN10 = math.log(10.0)

# Slots of the parameter vector (slot 0 holds the transform code).
_T, _W, _M, _A, _P, _B, _C, _X1, _T0, _AA = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10


def hyperlog_fill_params(p: np.ndarray, T: float, W: float, M: float, A: float) -> None:
    """Precompute the hyperlog constants into ``p[1:11]`` (parameters already validated)."""
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2.0 * w
    b = (M + A) * LN10
    e0 = math.exp(b * x0)
    ca = e0 / w
    fa = math.exp(b * x1) + ca * x1
    a = T / (math.exp(b) + ca - fa)
    c = ca * a
    P = a * math.exp(b * x1)
    p[_T], p[_W], p[_M], p[_A] = T, W, M, A
    p[_P], p[_B], p[_C], p[_X1] = P, b, c, x1
    p[_T0] = P * b + c  # dEH/dy at y = x1
    p[_AA] = a


@jit
def _eh_rel(p, u):
    """``EH(x1 + u)`` for ``u >= 0``."""
    return p[_P] * math.expm1(p[_B] * u) + p[_C] * u


@jit
def hyperlog_inverse_scalar(p, y):
    """Data value of hyperlog scale value ``y`` (``±inf`` → ``±inf``, NaN → NaN)."""
    u = y - p[_X1]
    if u >= 0.0:
        return _eh_rel(p, u)
    if u < 0.0:
        return -_eh_rel(p, -u)
    return u  # NaN


@jit
def _hyperlog_solve(p, v):
    """``u >= 0`` with ``EH(x1 + u) = v`` for finite ``v >= 0`` (Halley)."""
    if v == 0.0:
        return 0.0
    P, b, c = p[_P], p[_B], p[_C]
    # Convex with slope t0 at u = 0: v/t0 is an upper bound of the root.
    u = v / p[_T0]
    ulog = (math.log(v) - math.log(p[_AA])) / b - p[_X1]
    if 0.0 < ulog < u:
        u = ulog
    for _ in range(50):
        eb = P * math.exp(b * u)
        f = (P * math.expm1(b * u) + c * u) - v
        df = b * eb + c
        ddf = b * b * eb
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
def hyperlog_scalar(p, x):
    """Hyperlog scale value of data value ``x`` (``±inf`` → ``±inf``, NaN → NaN)."""
    x1 = p[_X1]
    if x >= 0.0:
        if x == math.inf:
            return math.inf
        return x1 + _hyperlog_solve(p, x)
    if x < 0.0:
        if x == -math.inf:
            return -math.inf
        return x1 - _hyperlog_solve(p, -x)
    return x  # NaN
