"""Acquisition-QC kernels against the slow references of `naive_acquisition`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import naive_acquisition as naive
import numpy as np
import pytest

from cytokit.kernels.acquisition import (
    bin_bounds,
    bin_moments,
    margin_scan,
    running_median,
    sample_rows,
)
from cytokit.qc import AcquisitionPass
from cytokit.sample import Channel, Sample

DTYPES = [np.float32, np.float64]


def events_with_edges(seed: int, n: int, dtype) -> np.ndarray:
    """Events with values at, around and beyond the limits, NaN and inf, and a time column."""
    rng = np.random.default_rng(seed)
    ev = rng.normal(500.0, 400.0, (n, 5))
    ev[rng.random(n) < 0.05, 1] = 1023.0  # exactly at the top
    ev[rng.random(n) < 0.03, 1] = 1022.5
    ev[rng.random(n) < 0.05, 2] = 0.0  # exactly at the floor
    ev[rng.random(n) < 0.01, 3] = np.nan
    ev[rng.random(n) < 0.01, 3] = np.inf
    ev[rng.random(n) < 0.01, 0] = -np.inf
    ev[:, 4] = np.cumsum(rng.integers(0, 3, n)).astype(float)  # ticks, ties included
    return ev.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 1000, 100_000])
def test_margin_scan_matches_reference(dtype, n):
    ev = events_with_edges(1, n, dtype)
    cols, top, floor = [0, 1, 2, 3], [np.inf, 1022.75, 2000.0, 900.0], [-np.inf, -5.0, 0.0, -50.0]
    flags = np.zeros(n, dtype=np.uint8)
    got = margin_scan(ev, cols, top, floor, flags, bit=4, time_column=4)
    want_flags, want = naive.margin_scan(ev, cols, top, floor, time_column=4)
    np.testing.assert_array_equal(flags, np.where(want_flags, 4, 0).astype(np.uint8))
    for key in ("top", "floor", "not_finite"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    for key in ("max", "min"):
        np.testing.assert_array_equal(got[key], np.asarray(want[key], dtype=np.float64))
    np.testing.assert_array_equal(got["at_min"], want["at_min"])
    assert got["decreases"] == want["decreases"] == 0
    assert got["first_decrease"] == -1


def test_margin_scan_blocks_add_up_to_the_whole():
    ev = events_with_edges(2, 50_000, np.float32)
    ev[30_000, 4] = ev[29_999, 4] - 1  # one decrease, found across a block edge too
    cols, top, floor = [1, 2, 3], [1022.75, np.inf, 900.0], [-np.inf, 0.0, -np.inf]
    whole = np.zeros(len(ev), np.uint8)
    w = margin_scan(ev, cols, top, floor, whole, time_column=4)
    parts = np.zeros(len(ev), np.uint8)
    sums = {"top": 0, "floor": 0, "not_finite": 0, "decreases": 0}
    firsts = []
    for a, b in [(0, 7), (7, 30_000), (30_000, 30_001), (30_001, 50_000)]:
        r = margin_scan(
            ev[a:b], cols, top, floor, parts[a:b], time_column=4,
            prev_time=float(ev[a - 1, 4]) if a else np.nan,
        )  # fmt: skip
        for key in sums:
            sums[key] = sums[key] + r[key]
        if r["first_decrease"] >= 0:
            firsts.append(a + r["first_decrease"])
    np.testing.assert_array_equal(parts, whole)
    for key in ("top", "floor", "not_finite"):
        np.testing.assert_array_equal(sums[key], w[key])
    ev[::1000, 2] = -1e4  # a pile at the smallest value, spread over every block
    channels = (*(Channel(i, f"FSC{i}-A") for i in range(4)), Channel(4, "Time"))
    p = AcquisitionPass(Sample(ev, channels))
    for a, b in [(0, 7), (7, 30_000), (30_000, 30_001), (30_001, 50_000)]:
        p.update(a, b)
    assert p._min[2] == -1e4 and p._at_min[2] == 50
    assert w["decreases"] == sums["decreases"] == 1
    assert w["first_decrease"] == firsts[0] == 30_000


def test_margin_scan_nan_time_counts_as_disorder_and_other_bits_stay():
    ev = np.array([[0.0, 1.0], [0.0, np.nan], [0.0, 3.0], [0.0, 2.0]])
    flags = np.array([8, 0, 8, 0], dtype=np.uint8)
    r = margin_scan(ev, [0], [np.inf], [-np.inf], flags, bit=1, time_column=1)
    assert r["decreases"] == 2 and r["first_decrease"] == 1
    np.testing.assert_array_equal(flags, [8, 0, 8, 0])  # nothing at a margin, bit 8 kept


def test_margin_scan_reads_read_only_strided_events():
    ev = events_with_edges(3, 5000, np.float64)
    view = np.asfortranarray(ev)[:, ::-1]  # non-contiguous, reversed columns
    view.setflags(write=False)
    flags = np.zeros(5000, np.uint8)
    r = margin_scan(view, [3], [1022.75], [-np.inf], flags)  # column 3 of view = column 1
    assert r["top"][0] == int((ev[:, 1] >= 1022.75).sum())


def test_margin_scan_refuses_bad_arguments():
    ev = np.zeros((3, 2))
    with pytest.raises(ValueError, match="columns"):
        margin_scan(ev, [2], [1.0], [0.0], np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="flags"):
        margin_scan(ev, [0], [1.0], [0.0], np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="bit"):
        margin_scan(ev, [0], [1.0], [0.0], np.zeros(3, np.uint8), bit=3)
    with pytest.raises(TypeError, match="float32 or float64"):
        margin_scan(ev.astype(np.int32), [0], [1.0], [0.0], np.zeros(3, np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bin_bounds_is_searchsorted(dtype):
    t = np.sort(np.random.default_rng(4).integers(0, 500, 20_000)).astype(dtype)
    ev = np.column_stack([np.zeros_like(t), t])
    edges = np.arange(-0.5, 510, 7.0)
    np.testing.assert_array_equal(
        bin_bounds(ev, 1, edges), np.searchsorted(t.astype(np.float64), edges, side="left")
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cap", [1, 37, 256, 10_000])
def test_bin_moments_matches_reference(dtype, cap):
    ev = events_with_edges(5, 30_000, dtype)
    starts = np.array([0, 10, 10, 5000, 29_000])
    stops = np.array([10, 10, 5000, 29_000, 30_000])
    cols, cof, band = [0, 1, 2, 3], np.array([150.0, 1.0, 20.0, 0.5]), (0.5, 1.0)
    count, mean, sd = bin_moments(ev, cols, cof, starts, stops, band=band, max_per_bin=cap)
    w_count, w_mean, w_sd = naive.bin_moments(ev, cols, cof, starts, stops, band, cap)
    np.testing.assert_array_equal(count, w_count)
    # sums in a different order: a few ulps
    np.testing.assert_allclose(mean, w_mean, rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(sd, w_sd, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("cap", [37, 10_000])
def test_bin_moments_leaves_out_the_rows_skip_names(cap):
    """Margin events are not measurements: rows whose reason code has a bit of `skip_bits`
    add nothing to a bin's summaries, in any column; other bits are read as usual."""
    ev = events_with_edges(5, 30_000, np.float32)
    starts, stops = np.array([0, 5000, 29_000]), np.array([5000, 29_000, 30_000])
    cols, cof = [0, 1, 2], np.array([150.0, 1.0, 20.0])
    codes = np.random.default_rng(4).choice(np.array([0, 1, 4, 5], np.uint8), 30_000)
    got = bin_moments(ev, cols, cof, starts, stops, max_per_bin=cap, skip=codes, skip_bits=4)
    want = naive.bin_moments(ev, cols, cof, starts, stops, (0.5, 1.0), cap, skip=codes & 4)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-9, atol=1e-12, equal_nan=True)
    mask = (codes & 4) > 0  # a bool mask says the same
    same = bin_moments(ev, cols, cof, starts, stops, max_per_bin=cap, skip=mask)
    np.testing.assert_array_equal(same[0], got[0])
    assert (got[0] < bin_moments(ev, cols, cof, starts, stops, max_per_bin=cap)[0]).all()
    with pytest.raises(ValueError, match="one bool or uint8 per event"):
        bin_moments(ev, cols, cof, starts, stops, skip=mask[:-1])
    # a bin whose every row is skipped (a detector stuck at its top) is read whole, so its
    # plot shows what it holds; the other bins still leave theirs out
    codes[:5000] = 4
    got = bin_moments(ev, cols, cof, starts, stops, max_per_bin=cap, skip=codes, skip_bits=4)
    whole = bin_moments(ev, cols, cof, starts, stops, max_per_bin=cap)
    want = naive.bin_moments(ev, cols, cof, starts, stops, (0.5, 1.0), cap, skip=codes & 4)
    np.testing.assert_array_equal(got[0][0], whole[0][0])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12, equal_nan=True)
    assert (got[0][1:] < whole[0][1:]).all()


def test_sample_rows_spread_evenly_and_inside_the_bin():
    rows = sample_rows(100, 1100, 256)
    assert rows.size == 256 and rows.min() >= 100 and rows.max() < 1100
    assert np.all(np.diff(rows) >= 3) and np.all(np.diff(rows) <= 4)
    np.testing.assert_array_equal(sample_rows(5, 9, 256), [5, 6, 7, 8])


def test_bin_moments_of_many_bins_on_threads_match_reference():
    """Enough bins and values (400 x 100 rows x 4 columns) that the bins are shared out
    over threads where Numba has more than one; each bin is read as on its own."""
    ev = events_with_edges(7, 40_000, np.float64)
    starts = np.arange(0, 40_000, 100)
    stops = starts + 100
    stops[7] = starts[7]  # an empty bin among them
    cols, cof = [0, 1, 2, 3], np.array([150.0, 1.0, 20.0, 0.5])
    got = bin_moments(ev, cols, cof, starts, stops, max_per_bin=64)
    want = naive.bin_moments(ev, cols, cof, starts, stops, (0.5, 1.0), 64)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-9, atol=1e-12, equal_nan=True)


_PARALLEL_AFTER_QC = textwrap.dedent(
    """
    import sys
    from numba.core.registry import CPUDispatcher
    from cytokit import simulate
    from cytokit.qc import acquisition_qc

    design = simulate.preset_design("sample", seed=3, n_patients=1)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, 200_000)
    qc = acquisition_qc(sample)
    assert qc.bins is not None and qc.bins.counts.size > 500, qc.notes
    ran = sorted(
        f"{name}.{key}"
        for name, mod in list(sys.modules.items())
        if name.startswith("cytokit")
        for key, obj in vars(mod).items()
        if isinstance(obj, CPUDispatcher)
        and obj.targetoptions.get("parallel")
        and obj.signatures
    )
    print("parallel kernels run:", len(ran), *ran)
    """
)


def test_qc_runs_no_parallel_kernel():
    """QC's kernels run on cytokit's threads (`cytokit.kernels._threads`), as the gating
    pass does, never as ``parallel=True`` kernels, whose compilation is the slow part of a
    first run."""
    res = subprocess.run(
        [sys.executable, "-c", _PARALLEL_AFTER_QC], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "parallel kernels run: 0" in res.stdout, res.stdout


def test_bin_moments_refuses_bad_arguments():
    ev = np.zeros((10, 2))
    with pytest.raises(ValueError, match="cofactors"):
        bin_moments(ev, [0], [0.0], [0], [10])
    with pytest.raises(ValueError, match="beyond"):
        bin_moments(ev, [0], [1.0], [0], [11])
    with pytest.raises(ValueError, match="band"):
        bin_moments(ev, [0], [1.0], [0], [10], band=(0.9, 0.5))


@pytest.mark.parametrize("half", [0, 1, 4, 40])
def test_running_median_matches_reference(half):
    rng = np.random.default_rng(6)
    v = rng.normal(size=300)
    ok = rng.random(300) > 0.3
    ok[100:190] = False  # a stretch with nothing to read: NaN where a window is empty
    np.testing.assert_array_equal(running_median(v, ok, half), naive.running_median(v, ok, half))
