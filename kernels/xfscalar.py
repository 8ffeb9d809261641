"""Scalar interface of the transforms, for compiled callers such as the fused gate evaluator.

* integer codes ``XF_*`` (module constants);
* `transform_params` (Python): validates parameters and precomputes every
  constant into a float64 vector of length `XF_NPARAMS`;
* njit `transform_scalar` / `transform_inverse_scalar`: one value, dispatch
  on the code;
* `transform_lut` (Python) and njit `transform_scalar_lut`: the same with a
  precomputed table for the transforms that otherwise need a root finder
  (logicle, hyperlog) or FlowJo's table search (biex);
* njit `ratio_scalar` for Gating-ML ``fratio`` (two columns).

The vectorised kernels in `cytokit.kernels.transforms` are loops over these
same functions, so there is one implementation of each transform.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._config import jit
from ._xftable import table_fits, table_for, table_scalar
from .biex import (
    biex_build_lut,
    biex_fill_params,
    biex_inverse_scalar,
    biex_lut_scalar,
    biex_scalar,
)
from .hyperlog import hyperlog_fill_params, hyperlog_inverse_scalar, hyperlog_scalar
from .logicle import logicle_fill_params, logicle_inverse_scalar, logicle_scalar

__all__ = [
    "XF_ASINH",
    "XF_BIEX",
    "XF_HYPERLOG",
    "XF_LINEAR",
    "XF_LOG",
    "XF_LOGICLE",
    "XF_NONE",
    "XF_NPARAMS",
    "ratio_scalar",
    "transform_inverse_scalar",
    "transform_lut",
    "transform_params",
    "transform_scalar",
    "transform_scalar_lut",
]

LN10 = math.log(10.0)

#: Transform codes understood by `transform_scalar`.
XF_NONE = 0
XF_LINEAR = 1
XF_LOG = 2
XF_ASINH = 3
XF_LOGICLE = 4
XF_HYPERLOG = 5
XF_BIEX = 6

#: Length of every parameter vector made by `transform_params`.
XF_NPARAMS = 16

_NAMES = {
    XF_NONE: "none",
    XF_LINEAR: "linear",
    XF_LOG: "log",
    XF_ASINH: "asinh",
    XF_LOGICLE: "logicle",
    XF_HYPERLOG: "hyperlog",
    XF_BIEX: "biex",
}
_PARAM_NAMES = {
    XF_NONE: (),
    XF_LINEAR: ("T", "A"),
    XF_LOG: ("T", "M"),
    XF_ASINH: ("T", "M", "A"),
    XF_LOGICLE: ("T", "W", "M", "A"),
    XF_HYPERLOG: ("T", "W", "M", "A"),
    XF_BIEX: ("negative", "width", "positive", "max_value"),
}


def _check(ok: bool, kind: int, name: str, value: float, rule: str) -> None:
    if not ok:
        raise ValueError(f"{_NAMES[kind]} {name}={float(value):g} must satisfy {rule}")


def transform_params(kind: int, **params: float) -> np.ndarray:
    """Validate transform parameters and precompute a scalar-evaluation vector.

    Parameters
    ----------
    kind : int
        One of ``XF_NONE, XF_LINEAR, XF_LOG, XF_ASINH, XF_LOGICLE,
        XF_HYPERLOG, XF_BIEX``.
    **params : float
        Exactly the parameters of that transform:

        ========== ===================================== =====================================
        kind       parameters                            valid ranges
        ========== ===================================== =====================================
        NONE       —                                     —
        LINEAR     ``T, A`` (Gating-ML ``flin``)         ``T > 0``, ``0 <= A <= T``
        LOG        ``T, M`` (``flog``)                   ``T > 0``, ``M > 0``
        ASINH      ``T, M, A`` (``fasinh``)              ``T > 0``, ``M > 0``, ``0 <= A <= M``
        LOGICLE    ``T, W, M, A`` (``logicle``)          ``T > 0``, ``M > 0``, ``0 <= W <= M/2``,
                                                         ``-W <= A <= M - 2W``
        HYPERLOG   ``T, W, M, A`` (``hyperlog``)         ``T > 0``, ``M > 0``, ``0 < W <= M/2``,
                                                         ``-W <= A <= M - 2W``
        BIEX       ``negative, width, positive,          ``negative >= 0``, ``width <= -1``,
                   max_value`` (FlowJo ``biex``)         ``positive > 0``, ``max_value > 0``
        ========== ===================================== =====================================

    Returns
    -------
    numpy.ndarray
        float64, shape ``(XF_NPARAMS,)``. Slot 0 holds ``kind``; the other
        slots are private to the transform (pass the vector back unchanged).

    Raises
    ------
    ValueError
        Unknown code, missing or unexpected parameter names, non-finite
        values, or a value outside its range (the message names the value
        and the range).
    """
    kind = int(kind)
    if kind not in _NAMES:
        raise ValueError(f"unknown transform code {kind}; expected one of {sorted(_NAMES)}")
    names = _PARAM_NAMES[kind]
    missing = [n for n in names if n not in params]
    extra = [n for n in params if n not in names]
    if missing or extra:
        raise ValueError(
            f"{_NAMES[kind]} takes parameters {list(names)}; missing {missing}, unexpected {extra}"
        )
    v = {}
    for n in names:
        try:
            v[n] = float(params[n])
        except (TypeError, ValueError):
            raise ValueError(f"{_NAMES[kind]} {n}={params[n]!r} must be a number") from None
        _check(math.isfinite(v[n]), kind, n, params[n], "finite")
    p = np.zeros(XF_NPARAMS, dtype=np.float64)
    p[0] = kind
    if kind in (XF_LINEAR, XF_LOG, XF_ASINH, XF_LOGICLE, XF_HYPERLOG):
        _check(v["T"] > 0, kind, "T", v["T"], "T > 0")
    if "M" in v:
        _check(v["M"] > 0, kind, "M", v["M"], "M > 0")
    for n in ("M", "positive"):  # decades: 10**M beyond ~308 is no float64
        if n in v:
            _check(v[n] <= 300, kind, n, v[n], f"{n} <= 300 decades")
    if kind == XF_LINEAR:
        T, A = v["T"], v["A"]
        _check(0 <= A <= T, kind, "A", A, f"0 <= A <= T={T:g}")
        p[1], p[2] = T, A
    elif kind == XF_LOG:
        p[1], p[2] = v["T"], v["M"]
    elif kind == XF_ASINH:
        T, M, A = v["T"], v["M"], v["A"]
        _check(0 <= A <= M, kind, "A", A, f"0 <= A <= M={M:g}")
        p[1], p[2], p[3] = T, M, A
        p[4] = math.sinh(M * LN10) / T
        p[5] = A * LN10
        p[6] = (M + A) * LN10
    elif kind in (XF_LOGICLE, XF_HYPERLOG):
        T, W, M, A = v["T"], v["W"], v["M"], v["A"]
        if kind == XF_LOGICLE:
            _check(0 <= W <= M / 2, kind, "W", W, f"0 <= W <= M/2={M / 2:g}")
        else:
            _check(0 < W <= M / 2, kind, "W", W, f"0 < W <= M/2={M / 2:g}")
        _check(-W <= A <= M - 2 * W, kind, "A", A, f"-W={-W:g} <= A <= M-2W={M - 2 * W:g}")
        if kind == XF_LOGICLE:
            logicle_fill_params(p, T, W, M, A)
        else:
            hyperlog_fill_params(p, T, W, M, A)
    elif kind == XF_BIEX:
        neg, width, pos, top = v["negative"], v["width"], v["positive"], v["max_value"]
        _check(neg >= 0, kind, "negative", neg, "negative >= 0")
        _check(width <= -1, kind, "width", width, "width <= -1 (FlowJo's width basis)")
        _check(pos > 0, kind, "positive", pos, "positive > 0")
        _check(top > 0, kind, "max_value", top, "max_value > 0")
        _check(
            pos > math.log10(-width) / 2,
            kind,
            "positive",
            pos,
            f"positive > log10(-width)/2={math.log10(-width) / 2:g}",
        )
        biex_fill_params(p, neg, width, pos, top)
    return p


# --- scalar functions --------------------------------------------------------------------------


@jit
def _linear_scalar(p, x):
    return (x + p[2]) / (p[1] + p[2])


@jit
def _linear_inverse_scalar(p, y):
    return y * (p[1] + p[2]) - p[2]


@jit
def _log_scalar(p, x):
    # log10 of 0 is -inf and of a negative number NaN (error_model="numpy").
    return (1.0 / p[2]) * math.log10(x / p[1]) + 1.0


@jit
def _log_inverse_scalar(p, y):
    return p[1] * 10.0 ** ((y - 1.0) * p[2])


@jit
def _asinh_scalar(p, x):
    return (math.asinh(x * p[4]) + p[5]) / p[6]


@jit
def _asinh_inverse_scalar(p, y):
    return math.sinh(y * p[6] - p[5]) / p[4]


@jit
def transform_scalar(kind, params, x):
    """Transform one data value: ``kind`` is an ``XF_*`` code, ``params`` its `transform_params`.

    Returns float64. ``XF_NONE`` returns ``x`` unchanged; an unknown code, or ``params``
    that is not a `transform_params` vector of that code (its length, its slot 0),
    returns NaN: never a read past the vector's end, nor another transform's value.

    Calling it in a loop that writes float64 arrays: LLVM cannot prove that
    ``params`` does not alias the output, so it reloads the parameters every
    iteration and stops vectorising; work on ``params.copy()`` made inside
    the kernel (a fresh allocation is known not to alias) to avoid that.
    For logicle, hyperlog and biex prefer `transform_scalar_lut`.
    """
    if params.shape[0] != XF_NPARAMS or params[0] != kind:
        return math.nan
    if kind == XF_LOGICLE:
        return logicle_scalar(params, x)
    if kind == XF_ASINH:
        return _asinh_scalar(params, x)
    if kind == XF_LINEAR:
        return _linear_scalar(params, x)
    if kind == XF_NONE:
        return float(x)
    if kind == XF_LOG:
        return _log_scalar(params, x)
    if kind == XF_HYPERLOG:
        return hyperlog_scalar(params, x)
    if kind == XF_BIEX:
        return biex_scalar(params, x)
    return math.nan


@jit
def transform_inverse_scalar(kind, params, y):
    """Inverse of `transform_scalar`: the data value of scale value ``y`` (NaN for an
    unknown code or ``params`` of the wrong length or of another code)."""
    if params.shape[0] != XF_NPARAMS or params[0] != kind:
        return math.nan
    if kind == XF_LOGICLE:
        return logicle_inverse_scalar(params, y)
    if kind == XF_ASINH:
        return _asinh_inverse_scalar(params, y)
    if kind == XF_LINEAR:
        return _linear_inverse_scalar(params, y)
    if kind == XF_NONE:
        return float(y)
    if kind == XF_LOG:
        return _log_inverse_scalar(params, y)
    if kind == XF_HYPERLOG:
        return hyperlog_inverse_scalar(params, y)
    if kind == XF_BIEX:
        return biex_inverse_scalar(params, y)
    return math.nan


@functools.lru_cache(maxsize=64)
def _cached_lut(kind: int, key: bytes) -> np.ndarray:
    p = np.frombuffer(key, dtype=np.float64)
    lut = biex_build_lut(p) if kind == XF_BIEX else table_for(kind, p)
    lut.flags.writeable = False
    return lut


_NO_LUT = np.zeros(1, dtype=np.float64)
_NO_LUT.flags.writeable = False


def transform_lut(kind: int, params: np.ndarray) -> np.ndarray:
    """Lookup table that makes `transform_scalar_lut` fast for logicle, hyperlog and biex.

    Parameters
    ----------
    kind : int
        ``XF_*`` code.
    params : numpy.ndarray
        Its vector from `transform_params`.

    Returns
    -------
    numpy.ndarray
        Read-only float64 1-D array, cached per parameter set. Logicle and
        hyperlog: a piecewise-quintic table of the exact transform (~17,000
        values, ~140 kB), accurate to ~1e-13 in the scale value. Biex:
        FlowJo's 4097-entry table plus a search index (~5,400 values), giving
        the same result as the exact evaluation. Other kinds need no table
        and get a 1-element placeholder.
    """
    kind = int(kind)
    if kind in (XF_LOGICLE, XF_HYPERLOG, XF_BIEX):
        p = np.ascontiguousarray(params, dtype=np.float64)
        if p.shape != (XF_NPARAMS,) or int(p[0]) != kind:
            raise ValueError("params must be the transform_params vector of the same kind")
        return _cached_lut(kind, p.tobytes())
    return _NO_LUT


@jit
def transform_scalar_lut(kind, params, lut, x):
    """`transform_scalar` using the table from `transform_lut` where there is one.

    For logicle and hyperlog this replaces two to four Halley iterations (each
    two ``exp``) with one table read and a degree-5 polynomial; results agree
    with `transform_scalar` to ~1e-13. For biex it replaces a Newton solve
    with a short table walk (same result). Other kinds ignore ``lut``. ``params`` of the
    wrong length or of another code gives NaN, as in `transform_scalar`, and so does a
    logicle or hyperlog ``lut`` that is not a table of that code (its header, its
    length); ``lut`` must be ``transform_lut(kind, params)``: a table made for other
    parameters of the same code is not detected.
    """
    if params.shape[0] != XF_NPARAMS or params[0] != kind:
        return math.nan
    if kind == XF_LOGICLE or kind == XF_HYPERLOG:
        if not table_fits(kind, lut):
            return math.nan
        return table_scalar(kind, params, lut, x)
    if kind == XF_BIEX:
        return biex_lut_scalar(lut, x)
    return transform_scalar(kind, params, x)


@jit
def ratio_scalar(x, y, A, B, C):
    """Gating-ML ``fratio``: ``A·(x − B)/(y − C)`` (IEEE: ``y == C`` gives ±inf or NaN)."""
    return (A * (x - B)) / (y - C)
