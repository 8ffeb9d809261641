"""The one kernel smoothing and mode finding shared by chimerism, phenotype and adaptive gates."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit.gating.adaptive import Valley, find_valley
from cytokit.gating.adaptive.base import smoothed_density
from cytokit.stats.density import gaussian_smooth, peaks, silverman_bandwidth


def test_a_kernel_wider_than_the_range_gives_one_gaussian_value_per_bin():
    # every value at 0: the smoothed density must be the Gaussian itself, centred on
    # the bin holding 0, with one value per bin whatever the bandwidth
    x = np.zeros(1_000)
    centres, dens = smoothed_density(x, -1.0, 1.0, 0.3, bins=512)
    assert dens.shape == centres.shape == (512,)
    c0 = centres[256]  # np.histogram puts 0 in the bin [0, step)
    expected = np.exp(-0.5 * ((centres - c0) / 0.3) ** 2)
    np.testing.assert_allclose(dens / dens.max(), expected, rtol=0, atol=1e-9)


def test_heavy_smoothing_still_sizes_a_lone_mode_from_its_true_place():
    # one N(0, 1) population: the lone negative mode is at 0 and the cut 4 sd above it;
    # smooth=40 makes the kernel wider than the 512-bin range
    x = np.random.default_rng(3).normal(0.0, 1.0, 20_000)
    t, how = find_valley(x, Valley(smooth=40.0, single="negative", spread=4.0))
    assert how == "negative mode"
    assert t == pytest.approx(4.0, abs=0.3)


@pytest.mark.parametrize("sigma", [0.7, 3.0, 40.0, 400.0])
def test_gaussian_smooth_keeps_the_mass_inside_and_the_length(sigma):
    # a point mass far from the ends keeps all its mass when the kernel fits inside
    counts = np.zeros(2_001)
    counts[1_000] = 7.0
    f = gaussian_smooth(counts, sigma)
    assert f.shape == counts.shape
    if 4 * sigma < 1_000:
        assert f.sum() == pytest.approx(7.0, rel=1e-12)
    assert int(np.argmax(f)) == 1_000


def test_silverman_bandwidth_matches_the_published_rule():
    # Silverman (1986), eq. 3.31: 0.9 · min(sd, IQR / 1.34) · n^(-1/5); 1.349 is the
    # IQR of a standard normal
    assert silverman_bandwidth(2.0, 1.349, 32) == pytest.approx(0.9 * 1.0 / 2.0, rel=1e-12)
    assert silverman_bandwidth(1.0, 4.0, 1) == pytest.approx(0.9, rel=1e-12)
    assert silverman_bandwidth(0.0, 0.0, 10, fallback=0.5) == pytest.approx(
        0.9 * 0.5 * 10 ** (-0.2), rel=1e-12
    )


def test_peaks_at_the_ends_only_when_asked():
    f = np.array([3.0, 1.0, 2.0, 1.0, 0.0, 4.0])
    assert peaks(f).tolist() == [0, 2, 5]
    assert peaks(f, ends=False).tolist() == [2]
    assert peaks(np.zeros(5)).size == 0
