"""The clustering kernels compiled beside other work on a first run.

On a machine whose Numba cache does not hold them yet, a study's clustering
compiles the SOM kernels (training, mapping, histograms: a few seconds of
one core) after every file was gated. `cytokit.analyze` compiles them in
another process (`cytokit.engine.warm.compile_aside`) while its first file
compiles the gating kernels in the main process, so the two compilations
share the cores instead of following each other; the clustering then loads
them from the cache.

`compile_kernels` calls each kernel on a few events of the array types a
study's clustering passes (float32 events, a column slice of the stored
values for mapping and histograms, a contiguous pool for training), so the
cache gets exactly the signatures the run needs (tests/test_cluster.py
checks that a study's clustering compiles nothing more).
"""

from __future__ import annotations

import numpy as np

__all__ = ["compile_kernels", "kernels_cached"]


def _kernels():
    from cytokit.kernels import som

    return (som._online, som._map_range, som._histograms)


def kernels_cached() -> bool:
    """Whether Numba's on-disk cache holds every clustering kernel for this machine."""
    from cytokit.kernels import _config

    return all(_config.is_cached(k) for k in _kernels())


def compile_kernels() -> None:
    """Compile (or load) the clustering kernels for the types a study's clustering uses."""
    from cytokit.cluster.flowsom import FlowSOM
    from cytokit.kernels.som import node_histograms

    rng = np.random.default_rng(0)
    n_markers = 3
    # the store gives clustering markers and donor markers side by side; the markers are a
    # column slice of it (strided), the training pool a contiguous float32 copy of samples
    stored = rng.normal(size=(256, n_markers + 1)).astype(np.float32)
    events = stored[:, :n_markers]
    pool = np.ascontiguousarray(events)
    model = FlowSOM(grid=(3, 3), n_metaclusters=2, random_state=0).fit(pool)
    labels = model.predict(events)
    k = int(labels.max()) + 1
    groups = labels.copy()
    groups[: groups.shape[0] // 2] += k  # donor events are groups k .. 2k-1
    hist = np.zeros((2 * k, n_markers, 16), dtype=np.int64)
    node_histograms(events, groups, np.full(n_markers, -5.0), np.full(n_markers, 5.0), hist)
