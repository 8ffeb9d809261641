"""Scale transforms of Gating-ML 2.0 and FlowJo, as Numba kernels.

Two layers share one implementation:

* a **scalar interface** for compiled callers (the fused gate evaluator):
  integer codes ``XF_*``, `transform_params` (Python: validates parameters
  and precomputes every constant into a float64 vector of length
  `XF_NPARAMS`), and the njit functions `transform_scalar` /
  `transform_inverse_scalar` that dispatch on the code;
* **vectorised kernels** (`logicle`, `asinh`, `hyperlog`, `log`, `linear`,
  `biex`, `ratio` and their inverses) that map the scalar functions over an
  array, in parallel over blocks of values.

Calling convention of the vectorised kernels (all the same):

* ``x``: array of any shape, float32 or float64 (integer and bool arrays are
  converted to float64); read-only and non-contiguous arrays are accepted and
  never modified.
* ``out``: optional float32 or float64 array of ``x``'s shape; the result is
  written there and ``out`` is returned. ``out`` may be ``x`` itself (in
  place). Without ``out`` a new **float64** array is returned. Arithmetic is
  always float64; a float32 ``out`` receives the rounded result.
* NaN maps to NaN. Infinities are documented per transform.

Gating-ML 2.0 bounds (``boundMin``/``boundMax``) are not applied here: they
belong to the gate that reads the value.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import prange

from ._config import jit, jit_parallel
from ._xftable import table_for, table_map_parallel, table_map_serial, table_scalar
from .biex import (
    biex_build_lut,
    biex_fill_params,
    biex_inverse_scalar,
    biex_lut_scalar,
    biex_map_parallel,
    biex_map_serial,
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
    "asinh",
    "asinh_inverse",
    "biex",
    "biex_inverse",
    "hyperlog",
    "hyperlog_inverse",
    "linear",
    "linear_inverse",
    "log",
    "log_inverse",
    "logicle",
    "logicle_inverse",
    "ratio",
    "ratio_inverse",
    "ratio_scalar",
    "transform_inverse_scalar",
    "transform_lut",
    "transform_params",
    "transform_scalar",
    "transform_scalar_lut",
]

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

LN10 = math.log(10.0)


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

    Returns float64. ``XF_NONE`` returns ``x`` unchanged; an unknown code returns NaN.

    Calling it in a loop that writes float64 arrays: LLVM cannot prove that
    ``params`` does not alias the output, so it reloads the parameters every
    iteration and stops vectorising; work on ``params.copy()`` made inside
    the kernel (a fresh allocation is known not to alias) to avoid that.
    For logicle, hyperlog and biex prefer `transform_scalar_lut`.
    """
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
    """Inverse of `transform_scalar`: the data value of scale value ``y``."""
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
        values, ~140 kB), accurate to ~1e-14 in the scale value. Biex:
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
    with `transform_scalar` to ~1e-14. For biex it replaces a Newton solve
    with a short table walk (same result). Other kinds ignore ``lut``.
    """
    if kind == XF_LOGICLE or kind == XF_HYPERLOG:
        return table_scalar(kind, params, lut, x)
    if kind == XF_BIEX:
        return biex_lut_scalar(lut, x)
    return transform_scalar(kind, params, x)


@jit
def ratio_scalar(x, y, A, B, C):
    """Gating-ML ``fratio``: ``A·(x − B)/(y − C)`` (IEEE: ``y == C`` gives ±inf or NaN)."""
    return (A * (x - B)) / (y - C)


# --- vectorised kernels ------------------------------------------------------------------------

_BLOCK = 16384  # values per parallel task: large enough to amortise scheduling


@jit
def _map_block(kind, params, inverse, x, out, start, stop):
    # One loop per transform (the dispatch hoisted out of the loop) so that
    # each loop stays small enough for LLVM to vectorise the closed forms.
    # The private copy cannot alias ``out``, so its loads leave the loop.
    p = params.copy()
    if inverse:
        if kind == XF_LINEAR:
            for i in range(start, stop):
                out[i] = _linear_inverse_scalar(p, np.float64(x[i]))
        elif kind == XF_LOG:
            for i in range(start, stop):
                out[i] = _log_inverse_scalar(p, np.float64(x[i]))
        elif kind == XF_ASINH:
            for i in range(start, stop):
                out[i] = _asinh_inverse_scalar(p, np.float64(x[i]))
        elif kind == XF_LOGICLE:
            for i in range(start, stop):
                out[i] = logicle_inverse_scalar(p, np.float64(x[i]))
        else:
            for i in range(start, stop):
                out[i] = transform_inverse_scalar(kind, p, np.float64(x[i]))
    else:
        if kind == XF_LINEAR:
            for i in range(start, stop):
                out[i] = _linear_scalar(p, np.float64(x[i]))
        elif kind == XF_LOG:
            for i in range(start, stop):
                out[i] = _log_scalar(p, np.float64(x[i]))
        elif kind == XF_ASINH:
            for i in range(start, stop):
                out[i] = _asinh_scalar(p, np.float64(x[i]))
        else:
            for i in range(start, stop):
                out[i] = transform_scalar(kind, p, np.float64(x[i]))


@jit
def _ratio_block(A, B, C, inverse, x, y, out, start, stop):
    if inverse:
        # x holds ratio values: recover the numerator column.
        for i in range(start, stop):
            out[i] = (np.float64(x[i]) * (np.float64(y[i]) - C)) / A + B
    else:
        for i in range(start, stop):
            out[i] = ratio_scalar(np.float64(x[i]), np.float64(y[i]), A, B, C)


# The parallel drivers only split the work into blocks; each block runs in a
# separately compiled serial function because Numba optimises loops inside
# a cached parallel region less well (numba#8085).


def _map_body(kind, params, inverse, x, out):
    n = x.shape[0]
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        start = blk * _BLOCK
        _map_block(kind, params, inverse, x, out, start, min(start + _BLOCK, n))


def _ratio_body(A, B, C, inverse, x, y, out):
    n = x.shape[0]
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        start = blk * _BLOCK
        _ratio_block(A, B, C, inverse, x, y, out, start, min(start + _BLOCK, n))


# One Python body, two compilations: the serial one avoids thread start-up on small inputs.
_map_serial = jit(_map_body)
_map_parallel = jit_parallel(_map_body)
_ratio_serial = jit(_ratio_body)
_ratio_parallel = jit_parallel(_ratio_body)

_PARALLEL_MIN = 4 * _BLOCK
# Building a logicle/hyperlog table costs ~0.5 ms (about 5,000 exact
# evaluations); below this many values the exact root finder is used directly.
_LUT_MIN = 8192


def _as_input(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype in (np.float32, np.float64):
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(f"{name} has dtype {arr.dtype}; expected a float32 or float64 array")


def _as_output(out, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float64)
    if not isinstance(out, np.ndarray) or out.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"out must be a float32 or float64 numpy array, got {type(out).__name__}"
            + (f" of dtype {out.dtype}" if isinstance(out, np.ndarray) else "")
        )
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}; expected {shape} (the input's shape)")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array")
    return out


def _flat_pair(x: np.ndarray, out: np.ndarray):
    """1-D views of ``x`` and ``out``; ``tmp`` is set when ``out`` cannot be viewed flat."""
    if x.ndim == 1:
        return x, out, None
    xf = x.reshape(-1)
    of = out.reshape(-1)
    if of.size and not np.shares_memory(of, out):
        return xf, np.empty(of.shape, dtype=out.dtype), of
    return xf, of, None


def _apply(kind: int, params: np.ndarray, inverse: bool, x, out) -> np.ndarray:
    xa = _as_input(x, "x")
    res = _as_output(out, xa.shape)
    xf, of, tmp = _flat_pair(xa, res)
    big = xf.shape[0] >= _PARALLEL_MIN
    if not inverse and kind in (XF_LOGICLE, XF_HYPERLOG) and xf.shape[0] >= _LUT_MIN:
        lut = transform_lut(kind, params)
        (table_map_parallel if big else table_map_serial)(kind, params, lut, xf, of)
    elif kind == XF_BIEX and xf.shape[0] >= _LUT_MIN:
        lut = transform_lut(kind, params)
        (biex_map_parallel if big else biex_map_serial)(lut, inverse, xf, of)
    else:
        (_map_parallel if big else _map_serial)(kind, params, inverse, xf, of)
    if tmp is not None:
        res[...] = of.reshape(res.shape)
    return res


def linear(x, T, A, *, out=None):
    """Gating-ML 2.0 ``flin``: ``(x + A) / (T + A)``.

    Parameters
    ----------
    x : array_like of float32 or float64, any shape
        Data values (not modified).
    T, A : float
        Top of scale (> 0) and bottom offset (``0 <= A <= T``).
    out : numpy.ndarray, optional
        float32 or float64, ``x``'s shape; may be ``x``.

    Returns
    -------
    numpy.ndarray
        ``out`` or a new float64 array. ±inf stays ±inf.
    """
    return _apply(XF_LINEAR, transform_params(XF_LINEAR, T=T, A=A), False, x, out)


def linear_inverse(y, T, A, *, out=None):
    """Inverse of `linear`: ``y·(T + A) − A`` (same conventions)."""
    return _apply(XF_LINEAR, transform_params(XF_LINEAR, T=T, A=A), True, y, out)


def log(x, T, M, *, out=None):
    """Gating-ML 2.0 ``flog``: ``log10(x / T) / M + 1``.

    Defined for ``x > 0``: ``x == 0`` gives ``-inf`` and ``x < 0`` gives NaN
    (as FlowKit/flowutils, so a range gate on the result excludes such
    events unless its lower bound is open). ``+inf`` gives ``+inf``.
    Other conventions as `linear`.
    """
    return _apply(XF_LOG, transform_params(XF_LOG, T=T, M=M), False, x, out)


def log_inverse(y, T, M, *, out=None):
    """Inverse of `log`: ``T·10^((y − 1)·M)`` (``-inf`` → 0)."""
    return _apply(XF_LOG, transform_params(XF_LOG, T=T, M=M), True, y, out)


def asinh(x, T, M, A, *, out=None):
    """Gating-ML 2.0 ``fasinh``: ``(asinh(x·sinh(M·ln10)/T) + A·ln10) / ((M + A)·ln10)``.

    Defined for all real ``x``; ``±inf`` → ``±inf``. Other conventions as `linear`.
    """
    return _apply(XF_ASINH, transform_params(XF_ASINH, T=T, M=M, A=A), False, x, out)


def asinh_inverse(y, T, M, A, *, out=None):
    """Inverse of `asinh` (same conventions; ``±inf`` → ``±inf``)."""
    return _apply(XF_ASINH, transform_params(XF_ASINH, T=T, M=M, A=A), True, y, out)


def logicle(x, T, W, M, A, *, out=None):
    """Logicle scale (Parks et al. 2006; Moore & Parks 2012; Gating-ML 2.0 ``logicle``).

    The root ``y`` of ``B(y, T, W, M, A) = x`` for the modified biexponential
    ``B`` (see `cytokit.kernels.logicle`): data 0 maps to ``x1 = (W + A)/(M + A)``,
    ``T`` to 1, and ``-T·10^-(M)``-ish negatives toward 0. Defined for all
    real ``x``; ``±inf`` → ``±inf``. Agrees with the published algorithm to
    ~1e-13 relative. Other conventions as `linear`.

    Parameters
    ----------
    x : array_like of float32 or float64, any shape
    T, W, M, A : float
        ``T > 0``, ``M > 0``, ``0 <= W <= M/2``, ``-W <= A <= M - 2W``.
    out : numpy.ndarray, optional

    Returns
    -------
    numpy.ndarray
    """
    return _apply(XF_LOGICLE, transform_params(XF_LOGICLE, T=T, W=W, M=M, A=A), False, x, out)


def logicle_inverse(y, T, W, M, A, *, out=None):
    """Inverse of `logicle`: ``B(y)`` (``±inf`` → ``±inf``)."""
    return _apply(XF_LOGICLE, transform_params(XF_LOGICLE, T=T, W=W, M=M, A=A), True, y, out)


def hyperlog(x, T, W, M, A, *, out=None):
    """Hyperlog scale (Bagwell 2005; Gating-ML 2.0 ``hyperlog``).

    The root ``y`` of ``EH(y, T, W, M, A) = x`` (see `cytokit.kernels.hyperlog`).
    Defined for all real ``x``; ``±inf`` → ``±inf``. ``T > 0``, ``M > 0``,
    ``0 < W <= M/2``, ``-W <= A <= M - 2W``. Other conventions as `linear`.
    """
    return _apply(XF_HYPERLOG, transform_params(XF_HYPERLOG, T=T, W=W, M=M, A=A), False, x, out)


def hyperlog_inverse(y, T, W, M, A, *, out=None):
    """Inverse of `hyperlog`: ``EH(y)`` (``±inf`` → ``±inf``)."""
    return _apply(XF_HYPERLOG, transform_params(XF_HYPERLOG, T=T, W=W, M=M, A=A), True, y, out)


def biex(x, negative, width, positive, max_value, *, out=None):
    """FlowJo 10's ``biex`` display transform: data value → channel in ``[0, 4096]``.

    Reproduces FlowJo's lookup table (4097 entries) and its linear
    interpolation exactly (see `cytokit.kernels.biex`); values beyond the
    table's ends, including ``±inf``, clip to channel 0 or 4096. Parameters
    are the workspace's ``neg``, ``width``, ``pos`` and ``maxRange``
    attributes (``negative >= 0``, ``width <= -1``, ``positive > 0``,
    ``max_value > 0``). Other conventions as `linear`.
    """
    p = transform_params(
        XF_BIEX, negative=negative, width=width, positive=positive, max_value=max_value
    )
    return _apply(XF_BIEX, p, False, x, out)


def biex_inverse(y, negative, width, positive, max_value, *, out=None):
    """Inverse of `biex`: channel (clipped to ``[0, 4096]``) → data value."""
    p = transform_params(
        XF_BIEX, negative=negative, width=width, positive=positive, max_value=max_value
    )
    return _apply(XF_BIEX, p, True, y, out)


def _ratio(x, y, A, B, C, inverse, out):
    for name, val in (("A", A), ("B", B), ("C", C)):
        if not math.isfinite(float(val)):
            raise ValueError(f"ratio {name}={val!r} must be finite")
    if inverse and float(A) == 0.0:
        raise ValueError("ratio A=0 has no inverse; A must be non-zero")
    xa = _as_input(x, "x")
    ya = _as_input(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x has shape {xa.shape} but y has {ya.shape}; they must match")
    res = _as_output(out, xa.shape)
    xf, of, tmp = _flat_pair(xa, res)
    yf = ya.reshape(-1)
    kernel = _ratio_parallel if xf.shape[0] >= _PARALLEL_MIN else _ratio_serial
    kernel(float(A), float(B), float(C), inverse, xf, yf, of)
    if tmp is not None:
        res[...] = of.reshape(res.shape)
    return res


def ratio(x, y, A, B, C, *, out=None):
    """Gating-ML 2.0 ``fratio`` of two columns: ``A·(x − B) / (y − C)``.

    Parameters
    ----------
    x, y : array_like of float32 or float64, same shape
        Numerator and denominator columns (not modified).
    A, B, C : float
        Finite constants.
    out : numpy.ndarray, optional
        float32 or float64 of the same shape; may be ``x`` or ``y``.

    Returns
    -------
    numpy.ndarray
        ``out`` or a new float64 array. IEEE semantics: ``y == C`` gives
        ±inf (or NaN when also ``x == B``); NaN in either column gives NaN.
    """
    return _ratio(x, y, A, B, C, False, out)


def ratio_inverse(r, y, A, B, C, *, out=None):
    """Numerator column from ratio values: ``r·(y − C)/A + B`` (``A != 0``)."""
    return _ratio(r, y, A, B, C, True, out)
