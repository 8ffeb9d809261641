"""Agglomerative (hierarchical) clustering of a few hundred SOM nodes, and consensus clustering.

Metaclustering works on the codes of the SOM's nodes (100 for a 10 × 10
grid), so a plain O(K³) agglomeration over a dense distance matrix with the
Lance-Williams updates (Lance & Williams, Comput J 1967;9:373-380) takes
milliseconds and needs neither SciPy nor scikit-learn at run time (importing
scikit-learn costs ~150 MB of memory, more than clustering a million events).
Partitions equal scikit-learn's `AgglomerativeClustering` (checked in the
tests) up to ties between equal distances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LINKAGES", "agglomerate", "consensus"]

LINKAGES = ("complete", "average", "single", "ward")


def _pairwise(points: np.ndarray) -> np.ndarray:
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt((diff * diff).sum(axis=2))


def agglomerate(
    points: np.ndarray | None,
    n_clusters: int,
    linkage: str = "complete",
    *,
    distances: np.ndarray | None = None,
) -> np.ndarray:
    """Cut an agglomerative clustering at `n_clusters` clusters.

    Parameters
    ----------
    points : ndarray, shape (n, d), or None
        Points, compared by Euclidean distance.
    n_clusters : int
        1 ... n.
    linkage : {"complete", "average", "single", "ward"}
        Distance between merged clusters: largest, mean, smallest pairwise
        distance, or Ward's increase in within-cluster sum of squares.
    distances : ndarray, shape (n, n), optional
        A precomputed symmetric distance matrix instead of `points` (not with "ward").

    Returns
    -------
    ndarray of int64, shape (n,)
        Cluster of each point, numbered 0.. in order of each cluster's first point.
    """
    if distances is None:
        dist = _pairwise(np.asarray(points, dtype=np.float64))
    else:
        if linkage == "ward":
            raise ValueError("ward linkage needs points, not a precomputed distance matrix")
        dist = np.array(distances, dtype=np.float64)
    n = dist.shape[0]
    if not 1 <= n_clusters <= max(n, 1):
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the {n} points")
    if linkage not in LINKAGES:
        raise ValueError(f"linkage={linkage!r} must be one of {LINKAGES}")
    owner = np.arange(n)  # cluster (by representative index) of each point
    size = np.ones(n)
    np.fill_diagonal(dist, np.inf)
    active = np.ones(n, dtype=bool)
    for _ in range(n - n_clusters):
        # the closest pair of active clusters (first in row-major order on ties)
        flat = int(np.argmin(dist))
        i, j = divmod(flat, n)
        if i > j:
            i, j = j, i
        dij = dist[i, j]
        di, dj = dist[i], dist[j]
        ni, nj = size[i], size[j]
        if linkage == "complete":
            new = np.maximum(di, dj)
        elif linkage == "single":
            new = np.minimum(di, dj)
        elif linkage == "average":
            new = (ni * di + nj * dj) / (ni + nj)
        else:  # ward, on Euclidean distances
            nk = size
            new = np.sqrt(
                np.maximum(
                    ((ni + nk) * di * di + (nj + nk) * dj * dj - nk * dij * dij) / (ni + nj + nk),
                    0.0,
                )
            )
        new[~active] = np.inf
        new[i] = np.inf
        dist[i, :] = new
        dist[:, i] = new
        dist[j, :] = np.inf
        dist[:, j] = np.inf
        active[j] = False
        size[i] = ni + nj
        owner[owner == j] = i
    _, labels = np.unique(owner, return_inverse=True)
    # renumber by first appearance, so the numbering does not depend on merge order
    first = {}
    out = np.empty(n, dtype=np.int64)
    for p, c in enumerate(labels):
        out[p] = first.setdefault(int(c), len(first))
    return out


def consensus(
    points: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    n_resamples: int = 100,
    fraction: float = 0.9,
    linkage: str | Sequence[str] = "complete",
    distances: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """Consensus clustering (Monti et al., Mach Learn 2003;52:91-118).

    `n_resamples` times, a random `fraction` of the points is clustered with
    `agglomerate`; the consensus of two points is the share of the resamples
    holding both in which they fell together. The result is the average-linkage
    clustering of ``1 − consensus`` (as R's ConsensusClusterPlus, used by FlowSOM).

    Parameters
    ----------
    points : ndarray, shape (n, d)
    n_clusters : int
    rng : numpy.random.Generator
        Draws the resamples.
    n_resamples : int
    fraction : float
        Share of the points in each resample, in (0, 1].
    linkage : str or sequence of str
        Linkage of the resampled clusterings (see `agglomerate`); a sequence
        is used in turn, resample ``h`` with ``linkage[h % len(linkage)]``, so
        the consensus pools clusterings of different kinds (a cluster
        ensemble, Strehl & Ghosh, J Mach Learn Res 2002;3:583-617).
    distances : sequence of ndarray, shape (n, n), optional
        Dissimilarity matrices of the points to cluster instead of their
        Euclidean distances (not with "ward"). With several matrices and
        linkages, resample ``h`` takes member ``h % (len(distances) ·
        len(linkage))`` of every (matrix, linkage) pair, matrices first.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    points = np.asarray(points, dtype=np.float64)
    kinds = (linkage,) if isinstance(linkage, str) else tuple(linkage)
    if not kinds or any(k not in LINKAGES for k in kinds):
        raise ValueError(f"linkage={linkage!r} must be one of {LINKAGES} or a sequence of them")
    mats = [np.asarray(d, dtype=np.float64) for d in distances]
    if mats and "ward" in kinds:
        raise ValueError("ward linkage needs points, not precomputed dissimilarities")
    members = [(k, d) for d in mats for k in kinds] if mats else [(k, None) for k in kinds]
    n = points.shape[0]
    m = min(n, max(n_clusters, round(fraction * n)))
    together = np.zeros((n, n))
    sampled = np.zeros((n, n))
    for h in range(n_resamples):
        idx = np.sort(rng.choice(n, m, replace=False))
        kind, mat = members[h % len(members)]
        if mat is None:
            lab = agglomerate(points[idx], n_clusters, kind)
        else:
            lab = agglomerate(None, n_clusters, kind, distances=mat[np.ix_(idx, idx)])
        block = np.ix_(idx, idx)
        together[block] += lab[:, None] == lab[None, :]
        sampled[block] += 1.0
    distance = 1.0 - together / np.maximum(sampled, 1.0)
    np.fill_diagonal(distance, 0.0)
    return agglomerate(None, n_clusters, "average", distances=distance)
