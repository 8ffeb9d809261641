"""Screening in place: the kept rows moved to the front of the file's own array, no copy."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit.kernels.acquisition import compact_rows
from cytokit.qc import AcquisitionQCSettings, screen
from cytokit.simulate import anomalies as A
from cytokit.simulate import preset_design, simulate_sample


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compact_rows_equals_boolean_indexing(dtype):
    rng = np.random.default_rng(5)
    ev = rng.normal(size=(5_000, 7)).astype(dtype)
    reasons = (rng.random(5_000) < 0.3).astype(np.uint8) * rng.integers(1, 8, 5_000, dtype=np.uint8)
    reasons[:10] = 0
    reasons[2_000:2_600] = 1  # a removed time range, as rate and signal flags give
    want = ev[reasons == 0].copy()
    m = compact_rows(ev, reasons)
    assert m == want.shape[0]
    np.testing.assert_array_equal(ev[:m], want)


def test_compact_rows_refuses_what_it_cannot_write():
    ev = np.zeros((4, 3), dtype=np.float32)
    ev.flags.writeable = False
    with pytest.raises(ValueError, match="writeable, C-contiguous"):
        compact_rows(ev, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="reasons has 3 entries for 4 events"):
        compact_rows(np.zeros((4, 3)), np.zeros(3, np.uint8))


def _clogged(seed: int, draw: int, kinds=("clog", "margin")):
    """A simulated 30,000-event file with a clog and margin events (or `kinds`)."""
    design = preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    clean, _ = simulate_sample(design, spec.id, day, 30_000)
    rng = np.random.default_rng(draw)
    plan = A.random_plan(rng, A.duration(clean), kinds=kinds)
    return A.inject(clean, plan, rng)[0]


def test_screen_in_place_gives_the_same_events_and_verdict_as_a_copy():
    sample = _clogged(31, 8)
    settings = AcquisitionQCSettings(max_removed_pct=90)
    kept, qc = screen(sample, settings)
    assert 0 < qc.n_removed < sample.n_events
    before = sample.events.copy()
    own = type(sample)(before, sample.channels, keywords=sample.keywords, scaled=sample.scaled)
    kept2, qc2 = screen(own, settings, in_place=True)
    np.testing.assert_array_equal(kept2.events, kept.events)
    np.testing.assert_array_equal(qc2.reasons, qc.reasons)
    assert np.shares_memory(kept2.events, before)  # a view of the caller's array, not a copy
    assert qc2.summary() == qc.summary()


@pytest.mark.parametrize("in_place", [True, False])
def test_the_removed_rows_are_kept_in_file_order_for_the_caller_that_asks(in_place):
    """With keep_removed the rows screen removes follow the kept ones; `removed_events`
    gives them whether the array was compacted in place or copied."""
    from cytokit.qc.apply import removed_events

    sample = _clogged(33, 9)
    settings = AcquisitionQCSettings(max_removed_pct=90)
    original = sample.events.copy()
    own = type(sample)(
        original.copy(), sample.channels, keywords=sample.keywords, scaled=sample.scaled
    )
    array = own.events
    kept, qc = screen(own, settings, in_place=in_place, keep_removed=True)
    assert 0 < qc.n_removed < sample.n_events
    np.testing.assert_array_equal(kept.events, original[qc.keep])
    np.testing.assert_array_equal(removed_events(array, kept, qc), original[~qc.keep])
    assert np.shares_memory(kept.events, array) == in_place


@pytest.mark.parametrize(
    ("seed", "draw", "kinds"),
    [
        (35, 135, ("clog", "margin")),
        (31, 8, ("clog", "margin")),
        *((41, d, ("clog", "bubble", "drift", "margin")) for d in (1, 2, 3, 4)),
    ],
)
def test_the_rate_counts_the_same_events_whichever_other_checks_ran(seed, draw, kinds):
    """A bin the signal check flags inside a clog's run of rate-flagged bins counts for
    the rate too, as it would were the signal check not run: ``qc_removed_rate`` does not
    hang on ``checks`` (on the first file 243 of 6,746 rate events were counted for the
    signal alone when both checks ran). Nor where a drift's longer run of signal-flagged
    bins holds the clog or the bubble: their edge bins were inner bins of that run, whose
    events all counted for the rate (or, in the bin beside one, for the signal alone),
    not split where the rate changes as the rate alone splits them."""
    from cytokit.qc import RATE, acquisition_qc

    sample = _clogged(seed, draw, kinds)

    def rate_events(*checks):
        qc = acquisition_qc(sample, AcquisitionQCSettings(checks=checks, max_removed_pct=100))
        return (qc.reasons & RATE) != 0

    alone = rate_events("rate")
    assert alone.sum() > 1000
    for checks in (("rate", "signal"), ("rate", "signal", "margins"), ("rate", "margins")):
        np.testing.assert_array_equal(rate_events(*checks), alone, err_msg=str(checks))
