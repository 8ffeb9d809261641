"""Scale transforms of Gating-ML 2.0 and FlowJo, as Numba kernels.

Two layers share one implementation:

* a **scalar interface** for compiled callers (the fused gate evaluator),
  defined in `cytokit.kernels.xfscalar` and re-exported here: integer codes
  ``XF_*``, `transform_params` (Python: validates parameters and precomputes
  every constant into a float64 vector of length `XF_NPARAMS`), the njit
  functions `transform_scalar` / `transform_inverse_scalar` that dispatch on
  the code, and `transform_lut` / `transform_scalar_lut` (table-driven);
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

import math

import numpy as np

from ._config import check_out, jit, native
from ._threads import run_ranges
from ._xftable import table_map_range
from .biex import biex_map_range
from .logicle import logicle_inverse_scalar
from .xfscalar import (
    XF_ASINH,
    XF_BIEX,
    XF_HYPERLOG,
    XF_LINEAR,
    XF_LOG,
    XF_LOGICLE,
    XF_NONE,
    XF_NPARAMS,
    _asinh_inverse_scalar,
    _asinh_scalar,
    _linear_inverse_scalar,
    _linear_scalar,
    _log_inverse_scalar,
    _log_scalar,
    ratio_scalar,
    transform_inverse_scalar,
    transform_lut,
    transform_params,
    transform_scalar,
    transform_scalar_lut,
)

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
def _closed_block(kind, params, x, out, start, stop):
    """Forward `linear`, `log` or `asinh` (``kind``) of ``x[start:stop]``: `_map_block`'s loops.

    For the fused evaluator, which sends the table-driven kinds elsewhere:
    without `_map_block`'s fallback to `transform_scalar` and the inverse
    branches, it compiles no root finder (a cold start compiles several
    seconds less). Any other ``kind`` is taken as `asinh` (plans never hold one).
    """
    p = params.copy()
    if kind == XF_LINEAR:
        for i in range(start, stop):
            out[i] = _linear_scalar(p, np.float64(x[i]))
    elif kind == XF_LOG:
        for i in range(start, stop):
            out[i] = _log_scalar(p, np.float64(x[i]))
    else:
        for i in range(start, stop):
            out[i] = _asinh_scalar(p, np.float64(x[i]))


@jit
def _ratio_block(A, B, C, inverse, x, y, out, start, stop):
    if inverse:
        # x holds ratio values: recover the numerator column.
        for i in range(start, stop):
            out[i] = (np.float64(x[i]) * (np.float64(y[i]) - C)) / A + B
    else:
        for i in range(start, stop):
            out[i] = ratio_scalar(np.float64(x[i]), np.float64(y[i]), A, B, C)


# One serial nogil driver per kernel, run on ranges of blocks from Python threads
# (`_threads.run_ranges`, as the fused pass): one compilation serves small and large
# inputs, where a serial twin and a `prange` twin each compiled the whole block code.


@jit
def _map_range(b0, b1, kind, params, inverse, x, out):
    n = x.shape[0]
    for blk in range(b0, b1):
        start = blk * _BLOCK
        _map_block(kind, params, inverse, x, out, start, min(start + _BLOCK, n))


@jit
def _ratio_range(b0, b1, A, B, C, inverse, x, y, out):
    n = x.shape[0]
    for blk in range(b0, b1):
        start = blk * _BLOCK
        _ratio_block(A, B, C, inverse, x, y, out, start, min(start + _BLOCK, n))


def _blocks(n: int) -> int:
    return (n + _BLOCK - 1) // _BLOCK


# Building a logicle/hyperlog table costs ~0.5 ms (about 5,000 exact
# evaluations); below this many values the exact root finder is used directly.
_LUT_MIN = 8192


def _as_input(x, name: str) -> np.ndarray:
    arr = native(x)
    if arr.dtype in (np.float32, np.float64):
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(f"{name} has dtype {arr.dtype}; expected a float32 or float64 array")


def _as_output(out, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float64)
    return check_out(out, shape, (np.float32, np.float64))


def _flat_pair(x: np.ndarray, out: np.ndarray):
    """1-D views of ``x`` and ``out``; ``tmp`` is set when ``out`` cannot be viewed flat."""
    if x.ndim == 1:
        return x, out, None
    xf = x.reshape(-1)
    of = out.reshape(-1)
    if of.size and not np.shares_memory(of, out):
        return xf, np.empty(of.shape, dtype=out.dtype), of
    return xf, of, None


#: Values per contiguous piece when the input or the output is strided (e.g. a column of
#: an events array): the pieces go through two reused buffers, so the block code is
#: compiled for contiguous arrays only (a strided array is another type signature, which
#: compiled every transform a second time on a first run).
_PIECE = 1 << 16


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `a` and `b` are the same elements in the same order (in place)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def _apply(kind: int, params: np.ndarray, inverse: bool, x, out) -> np.ndarray:
    xa = _as_input(x, "x")
    res = _as_output(out, xa.shape)
    if res is not xa and np.shares_memory(res, xa) and not _same_view(res, xa):
        # blocks write ahead of what they read: a shifted view would read written values
        raise ValueError("out overlaps x without being x; pass x itself or a new array")
    xf, of, tmp = _flat_pair(xa, res)
    n = xf.shape[0]
    # the table or the exact root finder is chosen by the whole input's size, never a piece's
    if not inverse and kind in (XF_LOGICLE, XF_HYPERLOG) and n >= _LUT_MIN:
        lut = transform_lut(kind, params)

        def run(xs, os_):
            run_ranges(table_map_range, _blocks(xs.shape[0]), kind, params, lut, xs, os_)
    elif kind == XF_BIEX and n >= _LUT_MIN:
        lut = transform_lut(kind, params)

        def run(xs, os_):
            run_ranges(biex_map_range, _blocks(xs.shape[0]), lut, inverse, xs, os_)
    else:

        def run(xs, os_):
            run_ranges(_map_range, _blocks(xs.shape[0]), kind, params, inverse, xs, os_)

    if xf.flags.c_contiguous and of.flags.c_contiguous:
        run(xf, of)
    else:
        xb = np.empty(min(n, _PIECE), dtype=xf.dtype)
        ob = np.empty(min(n, _PIECE), dtype=of.dtype)
        for a in range(0, n, _PIECE):
            m = min(_PIECE, n - a)
            xb[:m] = xf[a : a + m]
            run(xb[:m], ob[:m])
            of[a : a + m] = ob[:m]
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
    ``T`` to 1, and the most negative on-scale value ``-B(2·x1)`` to 0. Defined
    for all real ``x``; ``±inf`` → ``±inf``. Agrees with the published algorithm to
    ~1e-12 relative (3.5e-12 measured against flowutils where ``|y| > 1e-3``). Other
    conventions as `linear`.

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
    for name, arr in (("x", xa), ("y", ya)):
        if res is not arr and np.shares_memory(res, arr) and not _same_view(res, arr):
            # as in `_apply`: a shifted view would read values the blocks wrote already
            raise ValueError(f"out overlaps {name} without being {name}; pass a new array")
    xf, of, tmp = _flat_pair(xa, res)
    yf = ya.reshape(-1)
    run_ranges(
        _ratio_range, _blocks(xf.shape[0]), float(A), float(B), float(C), inverse, xf, yf, of
    )
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
