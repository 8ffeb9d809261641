"""SOM kernels against slow, obvious NumPy references (same numerics, same seeds)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cytokit.kernels as k
from cytokit.cluster import grid_distances, grid_positions

# --- references ---------------------------------------------------------------------------------


def naive_sq_dists(data, codes):
    """Squared distances (n, K) summed over dimensions in order j = 0, 1, ... (as the kernels)."""
    x = np.asarray(data, dtype=np.float64)
    acc = np.zeros((x.shape[0], codes.shape[0]))
    for j in range(x.shape[1]):
        diff = x[:, j, None] - codes[None, :, j]
        acc += diff * diff
    return acc


def naive_map(data, codes):
    d = naive_sq_dists(data, codes)
    bmu = np.argmin(d, axis=1) if d.shape[0] else np.zeros(0, dtype=np.int64)
    bad = np.isnan(d).any(axis=1)
    bmu[bad] = -1
    return bmu, np.where(bad, np.nan, np.sqrt(d[np.arange(d.shape[0]), np.maximum(bmu, 0)]))


def naive_online(data, codes, grid_dist, order, alpha, radius):
    codes = codes.copy()
    x_all = np.asarray(data, dtype=np.float64)
    n = len(order)
    for t, i in enumerate(order):
        x = x_all[i]
        b = int(np.argmin(naive_sq_dists(x[None, :], codes)[0]))
        a = alpha[0] + (alpha[1] - alpha[0]) * (t / n)
        r = radius[0] + (radius[1] - radius[0]) * (t / n)
        for node in range(codes.shape[0]):
            if grid_dist[b, node] <= r:
                codes[node] += a * (x - codes[node])
    return codes


def naive_batch(data, codes, grid_dist, radii):
    codes = codes.copy()
    x = np.asarray(data, dtype=np.float64)
    for r in radii:
        bmu = np.argmin(naive_sq_dists(x, codes), axis=1)
        sums = np.zeros_like(codes)
        np.add.at(sums, bmu, x)
        counts = np.bincount(bmu, minlength=codes.shape[0]).astype(float)
        h = np.exp(-0.5 * (grid_dist / r) ** 2) if r > 0 else np.eye(codes.shape[0])
        den = h.T @ counts
        ok = den > 1e-12
        codes[ok] = (h.T @ sums)[ok] / den[ok, None]
    return codes


def _grid(xdim, ydim):
    return grid_distances(grid_positions((xdim, ydim)))


def _blobs(rng, n, d, dtype=np.float64, centres=4):
    c = rng.uniform(0, 1, (centres, d))
    lab = rng.integers(0, centres, n)
    return (c[lab] + rng.normal(0, 0.05, (n, d))).astype(dtype), lab


# --- mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 17, 40_000])
def test_map_nodes_equals_brute_force(dtype, n):
    rng = np.random.default_rng(n)
    data, _ = _blobs(rng, n, 7, dtype)
    codes = rng.uniform(0, 1, (25, 7))
    before = data.copy()
    got = k.map_nodes(data, codes)
    want, _ = naive_map(data, codes)
    assert got.dtype == np.int32 and got.shape == (n,)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(data, before)


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly"])
def test_map_nodes_any_layout_not_modified(layout):
    rng = np.random.default_rng(5)
    base, _ = _blobs(rng, 30_000, 10, np.float32)
    if layout == "fortran":
        data = np.asfortranarray(base)
    elif layout == "strided":
        data = base[::2, ::2]
    else:
        data = base.copy()
        data.setflags(write=False)
    codes = rng.uniform(0, 1, (12, data.shape[1]))
    before = np.array(data, copy=True)
    np.testing.assert_array_equal(k.map_nodes(data, codes), naive_map(data, codes)[0])
    np.testing.assert_array_equal(data, before)


def test_map_nodes_lookup_out_and_distances():
    rng = np.random.default_rng(2)
    data, _ = _blobs(rng, 20_000, 4)
    codes = rng.uniform(0, 1, (9, 4))
    lookup = rng.integers(0, 3, 9)
    out = np.full(20_000, -5, dtype=np.int64)
    dist = np.empty(20_000, dtype=np.float32)
    assert k.map_nodes(data, codes, lookup=lookup, out=out, distances=dist) is out
    bmu, want_dist = naive_map(data, codes)
    np.testing.assert_array_equal(out, lookup[bmu])
    np.testing.assert_allclose(dist, want_dist, rtol=1e-6)


def test_map_nodes_gives_infinite_events_minus_one_as_it_says():
    """An event with ±inf has no nearest node either: -1 (even with a lookup), distance NaN;
    the docstring says so, not only of NaN."""
    codes = np.array([[0.0, 0.0], [1.0, 1.0]])
    data = np.array([[0.0, 0.0], [np.inf, 0.0], [0.0, -np.inf], [np.nan, 1.0], [1.0, 1.0]])
    dist = np.empty(5)
    got = k.map_nodes(data, codes, lookup=[5, 6], distances=dist)
    np.testing.assert_array_equal(got, [5, -1, -1, -1, 6])
    assert np.isnan(dist[1:4]).all() and (dist[[0, 4]] == 0).all()
    assert "-1 for events with NaN or ±inf" in " ".join(k.map_nodes.__doc__.split())


def test_map_nodes_ties_go_to_the_lowest_node_and_nan_to_minus_one():
    codes = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    data = np.array([[0.1, 0.0], [0.9, 1.0], [0.5, 0.5], [np.nan, 0.0]])
    dist = np.empty(4)
    got = k.map_nodes(data, codes, distances=dist)
    np.testing.assert_array_equal(got, [0, 1, 0, -1])
    assert math.isnan(dist[3]) and dist[0] == pytest.approx(0.1)


_values = st.floats(-1e3, 1e3, allow_nan=False, width=32) | st.sampled_from([0.0, 1.0, -1.0])


@settings(max_examples=60, deadline=None)
@given(
    data=hnp.arrays(
        np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=40), elements=_values
    ),
    n_nodes=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_map_nodes_property(data, n_nodes, seed):
    # duplicated codes and repeated values make ties: the first node must win
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.array([0.0, 1.0, -1.0, 7.5]), size=(n_nodes, data.shape[1]))
    np.testing.assert_array_equal(k.map_nodes(data, codes), naive_map(data, codes)[0])


def test_map_nodes_rejects_bad_input():
    data = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"codes has shape \(4, 3\); expected \(n_nodes >= 1, 2\)"):
        k.map_nodes(data, np.zeros((4, 3)))
    with pytest.raises(TypeError, match="out must be a numpy array of int32 or int64"):
        k.map_nodes(data, np.zeros((4, 2)), out=np.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match=r"lookup has shape \(2,\); expected \(4,\)"):
        k.map_nodes(data, np.zeros((4, 2)), lookup=[0, 1])
    with pytest.raises(TypeError, match="expected float32 or float64"):
        k.map_nodes(np.zeros((3, 2), dtype=np.int16), np.zeros((4, 2)))


# --- online training ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_som_online_matches_reference(dtype):
    rng = np.random.default_rng(11)
    data, _ = _blobs(rng, 300, 3, dtype)
    gd = _grid(3, 4)
    codes = np.array(data[rng.choice(300, 12, replace=False)], dtype=np.float64)
    order = rng.integers(0, 300, 900)
    want = naive_online(data, codes, gd, order, (0.05, 0.01), (2.0, 0.0))
    got = k.som_online(data, codes.copy(), gd, order, alpha=(0.05, 0.01), radius=(2.0, 0.0))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_som_online_in_place_and_input_untouched():
    rng = np.random.default_rng(1)
    data, _ = _blobs(rng, 500, 4, np.float32)
    data.setflags(write=False)
    before = data.copy()
    codes = rng.uniform(0, 1, (16, 4))
    start = codes.copy()
    assert k.som_online(data, codes, _grid(4, 4), np.arange(500), radius=(2, 0)) is codes
    assert not np.array_equal(codes, start)
    np.testing.assert_array_equal(data, before)


def test_som_online_learns_the_data():
    # quantisation error (mean distance to the BMU) falls far below the initial codes'
    rng = np.random.default_rng(3)
    data, _ = _blobs(rng, 4000, 5, centres=6)
    codes = rng.uniform(0, 1, (25, 5))
    q0 = naive_map(data, codes)[1].mean()
    k.som_online(data, codes, _grid(5, 5), rng.integers(0, 4000, 40_000), radius=(3, 0))
    q1 = naive_map(data, codes)[1].mean()
    assert q1 < 0.4 * q0


def test_som_online_edge_cases():
    gd = _grid(2, 2)
    codes = np.arange(8, dtype=np.float64).reshape(4, 2)
    # no visits: unchanged; one event visited once with radius 0 moves its BMU only
    assert np.array_equal(k.som_online(np.zeros((0, 2)), codes.copy(), gd, []), codes)
    one = np.array([[0.0, 0.0]], dtype=np.float32)
    got = k.som_online(one, codes.copy(), gd, [0], alpha=(0.5, 0.5), radius=(0, 0))
    np.testing.assert_array_equal(got[1:], codes[1:])
    np.testing.assert_array_equal(got[0], [0.0, 0.5])
    # an event with NaN is skipped rather than poisoning every code
    nan = np.array([[np.nan, 1.0]])
    np.testing.assert_array_equal(k.som_online(nan, codes.copy(), gd, [0, 0]), codes)


def test_som_online_rejects_bad_input():
    data = np.zeros((5, 2))
    codes = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"order holds indices in \[0, 5\] but there are 5 events"):
        k.som_online(data, codes, _grid(2, 2), [0, 5])
    with pytest.raises(ValueError, match=r"grid_dist has shape \(9, 9\); expected \(4, 4\)"):
        k.som_online(data, codes, _grid(3, 3), [0])
    with pytest.raises(TypeError, match="codes must be a 2-D float64"):
        k.som_online(data, codes.astype(np.float32), _grid(2, 2), [0])
    ro = codes.copy()
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="codes is read-only"):
        k.som_online(data, ro, _grid(2, 2), [0])
    # a NaN rate would turn every code into NaN without a word
    with pytest.raises(ValueError, match=r"alpha=\(nan, 0.1\) must be two finite numbers"):
        k.som_online(data, codes, _grid(2, 2), [0], alpha=(np.nan, 0.1))
    with pytest.raises(ValueError, match=r"radius=\(-1.0, 0.0\)"):
        k.som_online(data, codes, _grid(2, 2), [0], radius=(-1.0, 0.0))


# --- batch training -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 300, 20_000])
def test_som_batch_matches_reference(dtype, n):
    rng = np.random.default_rng(n)
    data, _ = _blobs(rng, n, 3, dtype)
    gd = _grid(3, 3)
    codes = rng.uniform(0, 1, (9, 3))
    radii = np.linspace(2.0, 0.0, 6)
    want = naive_batch(data, codes, gd, radii)
    got = k.som_batch(data, codes.copy(), gd, radii)
    # the kernel sums per chunk, then chunks: same terms, another order
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_som_batch_is_the_same_for_any_thread_count():
    rng = np.random.default_rng(9)
    data, _ = _blobs(rng, 50_000, 4, np.float32)
    codes = rng.uniform(0, 1, (16, 4))
    gd = _grid(4, 4)
    radii = np.linspace(2, 0, 5)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = k.som_batch(data, codes.copy(), gd, radii)
    finally:
        numba.set_num_threads(threads)
    many = k.som_batch(data, codes.copy(), gd, radii)
    np.testing.assert_array_equal(one, many)


def test_som_batch_empty_and_bad_radii():
    codes = np.ones((4, 2))
    assert np.array_equal(k.som_batch(np.zeros((0, 2)), codes.copy(), _grid(2, 2), [1.0]), codes)
    with pytest.raises(ValueError, match="radii must be finite and >= 0"):
        k.som_batch(np.zeros((3, 2)), codes, _grid(2, 2), [1.0, -1.0])


# --- histograms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_node_histograms_match_numpy(dtype):
    rng = np.random.default_rng(4)
    data = rng.normal(0.5, 0.3, (5000, 3)).astype(dtype)
    data[7, 1] = np.nan
    groups = rng.integers(-1, 4, 5000)
    lo, hi = np.array([0.0, 0.1, -1.0]), np.array([1.0, 0.9, 2.0])
    hist = np.zeros((4, 3, 50), dtype=np.int64)
    k.node_histograms(data, groups, lo, hi, hist)
    for g in range(4):
        for j in range(3):
            x = data[groups == g, j].astype(np.float64)
            x = x[~np.isnan(x)]
            # the kernel's bin index: floor((x - lo) * n_bins / (hi - lo)), clamped
            b = np.clip(np.floor((x - lo[j]) * (50 / (hi[j] - lo[j]))), 0, 49).astype(int)
            np.testing.assert_array_equal(hist[g, j], np.bincount(b, minlength=50))
    # accumulates: a second call doubles
    k.node_histograms(data, groups, lo, hi, hist)
    assert hist.sum() == 2 * (np.count_nonzero(groups >= 0) * 3 - (groups[7] >= 0))


def test_node_histograms_rejects_bad_ranges():
    hist = np.zeros((1, 2, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="finite lo < hi"):
        k.node_histograms(np.zeros((2, 2)), [0, 0], [0, 1], [1, 1], hist)
    with pytest.raises(ValueError, match="hist must be a writeable int64 array"):
        k.node_histograms(np.zeros((2, 2)), [0, 0], [0, 0], [1, 1], hist.astype(np.int32))
