"""Gate geometry in the flat float64 layouts the gate kernels read, validated in Python.

Every function checks its input once, at the public boundary, and raises
`ValueError` naming the gate (``what``), the value and the valid range; the
compiled kernels then assume valid geometry. Layouts (see `cytokit.kernels.gates`
for the membership rules):

* rectangle / range: ``lo``, ``hi`` per dimension, open sides as ``∓inf``;
* polygon: ``xmin, xmax, ymin, ymax`` then ``x0, y0, x1, y1, …``;
* ellipsoid: ``μ``, ``C⁻¹`` row-major, ``d²``;
* quadrants: per quadrant and divider, ``[lo, hi)`` and whether it is named.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "check_covariance",
    "ellipsoid_geometry",
    "polygon_geometry",
    "quadrant_bounds",
    "quadrant_interval",
    "range_bounds",
]


#: Largest ``|C[i, j] - C[j, i]|``, relative to the largest ``|C|``, of a covariance taken
#: as symmetric: room for a fitted matrix printed to 4 significant digits (its two halves
#: rounded apart by one unit of the last digit), none for a real asymmetry.
SYMMETRY_TOLERANCE = 1e-3


def _vector(v, what: str, name: str) -> np.ndarray:
    a = np.array(v, dtype=np.float64, ndmin=1)
    if a.ndim != 1:
        raise ValueError(f"{what}: {name} must be 1-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: {name}={a.tolist()} must be finite")
    return a


def range_bounds(lo, hi, what: str = "rectangle", names=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise rectangle bounds: open sides become ``-inf`` / ``+inf``.

    Parameters
    ----------
    lo, hi : array_like of float, shape (n_dims,)
        Minimum (inclusive) and maximum (exclusive) per dimension; NaN, ``-inf``
        (for ``lo``) or ``+inf`` (for ``hi``) mean no bound. ``None`` entries
        are read as NaN.
    names : sequence of str, optional
        The dimensions' names, for messages (default: their positions).

    Returns
    -------
    lo, hi : numpy.ndarray of float64, shape (n_dims,)

    Raises
    ------
    ValueError
        Different lengths, ``lo = +inf`` or ``hi = -inf``, or ``lo > hi``. (``lo
        == hi`` is empty but taken: Gating-ML's clamped bounds fold to it; a
        format a person writes refuses it.)
    """
    # numpy reads None as NaN for a float dtype.
    lo = np.array(lo, dtype=np.float64, ndmin=1)
    hi = np.array(hi, dtype=np.float64, ndmin=1)
    if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
        raise ValueError(
            f"{what}: lo and hi must be 1-D of the same length >= 1, got shapes {lo.shape} and {hi.shape}"
        )
    if np.any(lo == np.inf) or np.any(hi == -np.inf):
        raise ValueError(
            f"{what}: lo={lo.tolist()}, hi={hi.tolist()}: a minimum of +inf or a maximum of -inf "
            "is not a bound; use NaN for an open side"
        )
    lo = np.where(np.isnan(lo), -np.inf, lo)
    hi = np.where(np.isnan(hi), np.inf, hi)
    if np.any(lo > hi):
        j = int(np.argmax(lo > hi))
        dim = names[j] if names is not None else f"dimension {j}"
        raise ValueError(
            f"{what}: {dim} has min={float(lo[j])!r} > max={float(hi[j])!r}; swap them (min < max)"
        )
    return lo, hi


def polygon_geometry(vertices, what: str = "polygon") -> np.ndarray:
    """Flat polygon geometry: bounding box then vertices (see `in_polygon`).

    Parameters
    ----------
    vertices : array_like of float, shape (n_vertices, 2)
        At least 3 finite vertices, in order (either orientation), not all on
        one line; the last connects back to the first (do not repeat the first).

    Returns
    -------
    numpy.ndarray of float64, shape (4 + 2 * n_vertices,)
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
        raise ValueError(f"{what}: vertices must have shape (n >= 3, 2), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what}: vertices must be finite, got {v.tolist()}")
    # scaled to at most 1 first, so that coordinates near the float range do not overflow
    top = float(np.max(np.abs(v)))
    u = v / top if top > 0 else v
    spread = np.linalg.svd(u - u.mean(axis=0), compute_uv=False)
    if not spread[0] > 0 or spread[1] <= 1e-12 * spread[0]:
        raise ValueError(
            f"{what}: vertices {v.tolist()} lie on one line (or repeat), so the polygon "
            "encloses nothing; give at least three vertices not on one line"
        )
    box = [v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max()]
    return np.concatenate([np.asarray(box, dtype=np.float64), v.reshape(-1)])


def ellipsoid_geometry(mean, covariance, distance_square, what: str = "ellipsoid") -> np.ndarray:
    """Flat ellipsoid geometry ``(μ, C⁻¹ row-major, d²)`` (see `in_ellipsoid`).

    Parameters
    ----------
    mean : array_like of float, shape (n_dims,)
    covariance : array_like of float, shape (n_dims, n_dims)
        A covariance matrix (`check_covariance`): symmetric to rounding, positive
        definite, invertible; used as given (not symmetrised).
    distance_square : float
        ``d² > 0``.

    Raises
    ------
    ValueError
        Naming `what` and the matrix: wrong shape, not finite, a variance <= 0,
        singular, not symmetric or not positive definite (its "ellipsoid" would be
        unbounded and take in events however far from the mean).

    Returns
    -------
    numpy.ndarray of float64, shape (n_dims + n_dims**2 + 1,)
    """
    mu = _vector(mean, what, "mean")
    c = np.asarray(covariance, dtype=np.float64)
    nd = mu.shape[0]
    if c.shape != (nd, nd):
        raise ValueError(
            f"{what}: covariance has shape {c.shape}; expected ({nd}, {nd}) for a {nd}-D mean"
        )
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{what}: covariance must be finite, got {c.tolist()}")
    diag = np.diag(c)
    if np.any(diag <= 0):
        k = int(np.argmax(diag <= 0))
        raise ValueError(
            f"{what}: covariance matrix {c.tolist()} has variance {float(diag[k])!r} on row {k}; "
            "the diagonal of a covariance matrix holds variances, each > 0"
        )
    cond = np.linalg.cond(c)
    if not np.isfinite(cond) or cond > 1e12:
        raise ValueError(
            f"{what}: covariance matrix {c.tolist()} is singular (condition number {cond:.3g}); "
            "an ellipsoid needs an invertible covariance"
        )
    check_covariance(c, what)
    d2 = float(distance_square)
    if not (math.isfinite(d2) and d2 > 0):
        raise ValueError(f"{what}: distance_square={distance_square!r} must be finite and > 0")
    return np.concatenate([mu, np.linalg.inv(c).reshape(-1), [d2]])


def check_covariance(covariance, what: str = "ellipsoid") -> None:
    """Raise unless `covariance` is symmetric (to a relative `SYMMETRY_TOLERANCE`, room for
    decimal rounding) and positive definite: an ellipsoid, not a hyperboloid.

    `ellipsoid_geometry` calls it, so every ellipsoid (kernel, plan, gate, file) passes it.

    Parameters
    ----------
    covariance : array_like of float, shape (n_dims, n_dims)
        Finite.
    """
    c = np.asarray(covariance, dtype=np.float64)
    scale = float(np.max(np.abs(c))) if c.size else 0.0
    gap = np.abs(c - c.T)
    if np.any(gap > SYMMETRY_TOLERANCE * scale):
        i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise ValueError(
            f"{what}: covariance matrix {c.tolist()} is not symmetric: row {i} column {j} is "
            f"{float(c[i, j])!r} but row {j} column {i} is {float(c[j, i])!r}; a covariance "
            "matrix is symmetric, make them equal"
        )
    eig = np.linalg.eigvalsh((c + c.T) / 2)
    if np.any(eig <= 0):
        raise ValueError(
            f"{what}: covariance matrix {c.tolist()} is not positive definite (eigenvalues "
            f"{eig.tolist()}), so it bounds no ellipsoid and would take in events however far "
            "from the mean; give a covariance matrix with every eigenvalue > 0 (in 2-D: each "
            "|covariance| < the product of the two standard deviations)"
        )


def quadrant_interval(values, location: float) -> int:
    """Interval index of ``location`` among a divider's sorted ``values``.

    Interval ``k`` is ``[values[k-1], values[k])`` (``k = 0``: below the first
    value; ``k = len(values)``: at or above the last), so the result is the
    number of values ``<= location``. Gating-ML 2.0 names a quadrant's side
    of a divider by such a location.
    """
    v = _vector(values, "quadrant divider", "values")
    if v.size == 0 or (v.size > 1 and not np.all(np.diff(v) > 0)):
        raise ValueError(
            f"quadrant divider: values={v.tolist()} must be non-empty and strictly increasing"
        )
    x = float(location)
    if not np.isfinite(x):
        raise ValueError(f"quadrant divider: location={x} must be finite (a point on its side)")
    return int(np.searchsorted(v, x, side="right"))


def quadrant_bounds(
    dividers, quadrants, what: str = "quadrant"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-quadrant, per-divider bounds ``[lo, hi)`` and which dividers each quadrant reads.

    Parameters
    ----------
    dividers : sequence of array_like, length n_dims
        Divider values of each dimension, strictly increasing, finite, >= 1 each.
    quadrants : array_like of int, shape (n_quadrants, n_dims)
        Interval index per divider (see `quadrant_interval`), or -1 where the
        quadrant does not name that divider.

    Returns
    -------
    lo, hi : numpy.ndarray of float64, shape (n_quadrants, n_dims)
        Normalised bounds (``∓inf`` on open sides).
    used : numpy.ndarray of bool, shape (n_quadrants, n_dims)
    """
    divs = [_vector(d, what, f"divider {j} values") for j, d in enumerate(dividers)]
    nd = len(divs)
    q = np.asarray(quadrants)
    if q.ndim != 2 or q.shape[1] != nd or (q.size and q.dtype.kind not in "iu"):
        raise ValueError(
            f"{what}: quadrants must be an integer array of shape (n_quadrants, {nd}), got {q.shape} {q.dtype}"
        )
    for j, d in enumerate(divs):
        if d.size == 0 or np.any(np.diff(d) <= 0):
            raise ValueError(
                f"{what}: divider {j} values {d.tolist()} must be non-empty and strictly increasing"
            )
    lo = np.full(q.shape, -np.inf)
    hi = np.full(q.shape, np.inf)
    used = q >= 0
    for r in range(q.shape[0]):
        if not used[r].any():
            raise ValueError(f"{what}: quadrant {r} names no divider")
        for j, d in enumerate(divs):
            k = int(q[r, j])
            if k < -1 or k > d.size:
                raise ValueError(
                    f"{what}: quadrant {r} interval {k} for divider {j} is out of range -1..{d.size}"
                )
            if k > 0:
                lo[r, j] = d[k - 1]
            if 0 <= k < d.size:
                hi[r, j] = d[k]
    return lo, hi, used
