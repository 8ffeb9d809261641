"""How events connect the nodes of a SOM, and the node dissimilarities built on it.

Two nodes whose codes lie in one population have many events between them;
two nodes on either side of a gap between populations have few, however close
their codes are. The connectivity matrix of Taşdemir and Merényi (IEEE Trans
Neural Netw 2009;20:549-562) counts them: ``conn[i, j]`` is the number of
events whose nearest node is ``i`` and second nearest ``j``, or the other way
round. Here an event counts only when it lies *between* the two, its
distance to the second node at most `RATIOS` times its distance to the first:
at the edge of a population, an event's second-nearest node can be a node of
the population next to it, far away, and counting such events tied a
population's fringe to a small neighbour (CD8 T cells to CIK cells in the
simulated studies). `dissimilarities` turns a matrix into the two
dissimilarities that FlowSOM's ``metaclustering="connectivity"`` pools
(`cytokit.cluster.hierarchy.consensus`).

Distances are summed in numpy a feature at a time, in float64 (as the mapping
kernel sums them), so no kernel is compiled for this and the counts are the
same on every machine for the same codes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DAMPING", "MAX_EVENTS", "RATIOS", "connectivity", "dissimilarities"]

#: How strongly connectivity shrinks the distance between two nodes' codes:
#: ``‖c_i − c_j‖ · exp(−DAMPING · strength_ij)``. On blood with debris,
#: doublets and dead cells (`benchmarks/blood_mixture.py`, seeds 1-10 at
#: 200,000 events, every event counted, before `RATIOS`) 2, 5, 10, 20 and 40
#: gave mean ARI 0.909-0.921; 10 is the middle of that plateau.
DAMPING = 10.0
#: Events counted by default: on the same benchmark (also before `RATIOS`)
#: 10,000, 25,000, 50,000 and 100,000 events gave mean ARI 0.918-0.925 with
#: the same lowest seed; 100,000 cost 0.3 s of numpy, 25,000 a quarter of that.
MAX_EVENTS = 25_000
#: An event counts between its nearest node and its second nearest when its
#: distance to the second is at most this many times its distance to the
#: first; one matrix per ratio. On the benchmark's seeds 1-20 the cut is
#: sensitive to the ratio: 1.5 and 2 alone gave mean ARI 0.922, but 1.75 split
#: the neutrophils of seed 10 in two (ARI 0.63, against 0.94 and 0.92), so two
#: ratios are pooled (mean 0.917, lowest 0.80); 3 or no limit let the
#: simulated studies' CD8 T cells into the CIK metacluster (F1 0.89 < 0.95).
RATIOS = (1.5, 2.0)
_BLOCK = 256  # events per block: (256, n_nodes) float64 scratch stays in cache


def connectivity(
    events: np.ndarray,
    codes: np.ndarray,
    *,
    ratios: tuple[float, ...] = RATIOS,
    max_events: int = MAX_EVENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Events between each pair of nodes, one matrix per ratio, and each node's events.

    Parameters
    ----------
    events : ndarray, shape (n, d)
        Events (any float dtype, any layout); every ``ceil(n / max_events)``-th
        is counted, so at most `max_events` (a stride, not a random draw: the
        result depends on the events and codes only).
    codes : ndarray, shape (n_nodes, d)
    ratios : tuple of float
        Each >= 1: an event counts between its nearest node ``i`` and second
        nearest ``j`` when ``‖x − c_j‖ <= ratio · ‖x − c_i‖``.
    max_events : int

    Returns
    -------
    conn : ndarray of float64, shape (len(ratios), n_nodes, n_nodes)
        Symmetric; ``conn[r, i, j]`` counted events between nodes ``i`` and
        ``j`` under ``ratios[r]``; zero diagonal.
    counts : ndarray of float64, shape (n_nodes,)
        Counted events whose nearest node is each node.
    """
    by_feature = np.ascontiguousarray(np.asarray(codes, dtype=np.float64).T)
    d, k = by_feature.shape
    limits = np.square(np.asarray(ratios, dtype=np.float64))  # on squared distances
    step = max(1, -(-events.shape[0] // max_events))
    sample = events[::step]
    conn = np.zeros((limits.shape[0], k * k))
    counts = np.zeros(k)
    rows = np.arange(_BLOCK)
    scratch = np.empty((2, _BLOCK, k))
    for a in range(0, sample.shape[0], _BLOCK):
        block = sample[a : a + _BLOCK].astype(np.float64)
        b = block.shape[0]
        acc, term = scratch[0, :b], scratch[1, :b]
        acc[...] = 0.0
        for j in range(d):  # Σ_j (x_j − c_j)², in feature order, without temporaries
            np.subtract(block[:, j, None], by_feature[j], out=term)
            np.multiply(term, term, out=term)
            acc += term
        first = acc.argmin(axis=1)
        counts += np.bincount(first, minlength=k)
        if k < 2:
            continue
        nearest = acc[rows[:b], first]
        acc[rows[:b], first] = np.inf
        second = acc.argmin(axis=1)
        beside = acc[rows[:b], second]
        pair = first * k + second
        for r, limit in enumerate(limits):
            conn[r] += np.bincount(pair[beside <= limit * nearest], minlength=k * k)
    conn = conn.reshape(-1, k, k)
    return conn + conn.transpose(0, 2, 1), counts


def dissimilarities(
    codes: np.ndarray, conn: np.ndarray, counts: np.ndarray, *, damping: float = DAMPING
) -> tuple[np.ndarray, np.ndarray]:
    """The topological and the damped code dissimilarity of every pair of nodes.

    With ``strength_ij = conn_ij / sqrt(n_i · n_j)`` (events between two nodes
    relative to the events of each; a node without counted events counts as
    one):

    * topological: ``1 − strength_ij / max(strength)``, 1 for nodes no event
      connects; blind to how far apart the codes are;
    * damped: ``‖c_i − c_j‖ · exp(−damping · strength_ij)``, the Euclidean
      distance of the codes, shrunk where events fill the space between them.

    Parameters
    ----------
    codes : ndarray, shape (n_nodes, d)
    conn : ndarray, shape (n_nodes, n_nodes)
        One matrix of `connectivity`.
    counts : ndarray, shape (n_nodes,)
    damping : float

    Returns
    -------
    topological, damped : ndarray of float64, shape (n_nodes, n_nodes)
        Symmetric, zero diagonal.
    """
    codes = np.asarray(codes, dtype=np.float64)
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    strength = np.asarray(conn, dtype=np.float64) / np.sqrt(n[:, None] * n[None, :])
    top = strength.max() if strength.size else 0.0
    topological = 1.0 - strength / top if top > 0 else np.ones_like(strength)
    diff = codes[:, None, :] - codes[None, :, :]
    damped = np.sqrt((diff * diff).sum(axis=2)) * np.exp(-damping * strength)
    np.fill_diagonal(topological, 0.0)
    np.fill_diagonal(damped, 0.0)
    return topological, damped
