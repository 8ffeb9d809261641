"""`cytokit gate`'s per-population statistics: exact against numpy, in bounded memory.

The statistics come from `cytokit.kernels.population_stats` (blocks of events,
exact order statistics). The reference here is independent of the gating
core: compensation by solving with the file's spillover matrix in numpy,
membership from the strategy, then `numpy.mean`, `numpy.median` and
`numpy.quantile` (linear) on the materialised values.
"""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import cytokit
from cytokit import gating as G
from cytokit.engine.gate_files import population_statistics
from cytokit.simulate import benchmark_file

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
CORPUS_FILE = CORPUS / "flowkit" / "data" / "100715.fcs"
L = G.LogicleTransform()


def fl(channel: str) -> G.Dimension:
    return G.Dimension(channel, compensation=G.FCS, transform=L)


def _strategy(a: str, b: str, cut_a: float, cut_b: float) -> G.GatingStrategy:
    """A root rectangle on two compensated logicle channels, a child and a boolean."""
    return G.GatingStrategy(
        [
            G.RectangleGate(id="A+", dims=(fl(a),), min=(cut_a,), max=(None,)),
            G.RectangleGate(id="A+B+", parent="A+", dims=(fl(b),), min=(cut_b,), max=(None,)),
            G.BooleanGate(id="notA", op="not", operands=("A+",)),
        ]
    )


def _reference(sample, result, stats) -> None:
    spill = sample.spillover
    cols = [sample.channel_index(c) for c in spill.channels]
    raw = sample.events[:, cols].astype(np.float64)
    comp = np.linalg.solve(spill.matrix.T, raw.T).T  # comp @ S = raw
    assert len(stats) == len(result.populations) * len(spill.channels)
    for row in stats.itertuples():
        x = comp[result.membership(row.gate_id), spill.channels.index(row.channel)]
        x = x[~np.isnan(x)]
        assert row.count == x.size
        if x.size == 0:
            assert np.isnan([row.mean, row.median, row.rcv]).all()
            continue
        lo, hi = np.quantile(x, [0.1587, 0.8413])
        med = np.median(x)
        # exact order statistics of values that differ from numpy's compensation only by
        # rounding (a different summation order): relative 1e-9 of the channel's range
        scale = max(1.0, float(np.abs(comp[:, spill.channels.index(row.channel)]).max()))
        np.testing.assert_allclose(
            [row.mean, row.median, (hi - lo) * 50], [x.mean(), med, (hi - lo) * 50],
            rtol=1e-9, atol=1e-9 * scale,
        )  # fmt: skip
        if abs(med) > 1e-6 * scale:
            assert row.rcv == pytest.approx(50 * (hi - lo) / med, rel=1e-7)


def test_statistics_exact_against_numpy_on_simulated_file(tmp_path):
    path = benchmark_file(tmp_path / "sim.fcs", 30_000, seed=7)
    sample = cytokit.read_fcs(path)
    strategy = _strategy("APC-A", "PE-A", 0.45, 0.42)
    for membership in (True, False):  # stored membership, or the gates evaluated again
        result = strategy.apply(sample, membership=membership)
        stats = population_statistics(result)
        _reference(sample, strategy.apply(sample), stats)


@pytest.mark.corpus
def test_statistics_exact_against_numpy_on_corpus_file():
    if not CORPUS_FILE.exists():
        pytest.skip(f"corpus file missing: {CORPUS_FILE}")
    sample = cytokit.read_fcs(CORPUS_FILE)
    ch = sample.spillover.channels
    strategy = _strategy(ch[0], ch[1], 0.3, 0.3)
    result = strategy.apply(sample)
    _reference(sample, result, population_statistics(result))


def test_statistics_make_no_float64_copy_of_the_channels(tmp_path):
    """The design forbids a compensated float64 copy of every channel on the hot path:
    Python-side allocations while computing the statistics (histograms, partial sums,
    the values collected for the exact order statistics) stay well below half of such a
    copy (n_events x n_channels x 8 bytes)."""
    n = 400_000
    path = benchmark_file(tmp_path / "big.fcs", n, seed=3)
    sample = cytokit.read_fcs(path)
    strategy = _strategy("APC-A", "PE-A", 0.45, 0.42)
    result = strategy.apply(sample)
    population_statistics(result)  # compile and warm up outside the measurement
    peak = {}

    def measure() -> None:  # a fresh thread: no buffer kept from an earlier call
        tracemalloc.start()
        try:
            population_statistics(result)
            peak["bytes"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    t = threading.Thread(target=measure)
    t.start()
    t.join()
    copy = n * len(sample.spillover.channels) * 8
    assert peak["bytes"] < copy // 2, f"{peak['bytes']:,} bytes allocated; a copy is {copy:,}"
