"""The acquisition-QC pass: time bins, what it says when it cannot check, verdicts, blocks."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import cytokit
from cytokit.errors import CytokitError
from cytokit.qc import (
    MARGIN,
    RATE,
    SIGNAL,
    AcquisitionPass,
    AcquisitionQCError,
    AcquisitionQCSettings,
    acquisition_qc,
    screen,
)
from cytokit.qc.scan import GAP_GUARD_EVENTS
from cytokit.sample import Channel, Sample

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def synthetic(n=20_000, seconds=100.0, *, tick=0.01, datatype="F", seed=0, scaled=True) -> Sample:
    """Steady Poisson acquisition: FSC/SSC log-normal, one marker with two populations."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, seconds, n))
    t = np.floor(t / tick) * tick if tick else t
    fsc = rng.lognormal(np.log(60_000), 0.2, n)
    ssc = rng.lognormal(np.log(20_000), 0.4, n)
    pos = rng.random(n) < 0.3
    fl = np.where(pos, rng.lognormal(np.log(5_000), 0.3, n), rng.normal(50, 80, n))
    ev = np.column_stack([fsc, ssc, fl, t]).astype(np.float32)
    ch = (
        Channel(0, "FSC-A", range=262_144),
        Channel(1, "SSC-A", range=262_144),
        Channel(2, "FL1-A", "CD3", range=262_144),
        Channel(3, "Time", range=262_144),
    )
    kw = {"$DATATYPE": datatype, "$TIMESTEP": repr(tick or 0.01), "$FIL": "synthetic.fcs"}
    return Sample(ev, ch, keywords=kw, scaled=scaled)


def test_steady_file_is_clean_and_bins_hold_whole_clock_ticks():
    # 4.37 ticks' worth of events per bin: bins must still be whole ticks, or the rate
    # would alternate between bins of 4 and 5 ticks and look like a flickering flow
    s = synthetic(n=20_000, seconds=8.74, tick=0.02)
    qc = acquisition_qc(s)
    g = qc.bins.grid
    assert g.quantum == pytest.approx(0.02, rel=1e-5)
    assert g.width / g.quantum == pytest.approx(round(g.width / g.quantum), abs=1e-6)
    assert qc.n_removed == 0 and qc.ranges == () and qc.verdict == "pass"
    assert qc.bins.counts.sum() == s.n_events


def test_a_gap_is_flagged_with_its_time_range():
    s = synthetic()
    t = s.events[:, 3]
    s.events[t >= 40.0, 3] += 5.0  # five seconds without events from t = 40 s
    qc = acquisition_qc(s)
    assert len(qc.ranges) == 1
    r = qc.ranges[0]
    # the gap, and beside it (steady flow, no slow flank) the events of GAP_GUARD_EVENTS
    # events' time at the usual rate (200 a second here: 0.125 s), the least guard
    guard = GAP_GUARD_EVENTS / 200.0
    assert r.start == pytest.approx(40.0 - guard, abs=0.1)
    assert r.end == pytest.approx(45.0 + guard, abs=0.1)
    assert r.reasons == "rate" and "no events at all for" in r.detail
    assert "beside the gap" in r.detail
    assert 1.5 * GAP_GUARD_EVENTS < qc.removed_by["rate"] < 2.5 * GAP_GUARD_EVENTS


def test_signal_step_is_flagged_and_only_there():
    s = synthetic()
    t = s.events[:, 3]
    s.events[(t >= 60) & (t < 75), 0] *= 0.7  # FSC 30 % dimmer for 15 s
    qc = acquisition_qc(s)
    sig = (qc.reasons & SIGNAL) != 0
    inside = (t >= 60) & (t < 75)
    assert sig[inside].mean() > 0.95 and sig[~inside].mean() < 0.01
    (r,) = qc.ranges
    shift = re.search(r"FSC-A ([+-]\d+)%", r.detail)
    assert shift and -33 <= int(shift.group(1)) <= -27, r.detail


def with_column(s: Sample, name: str, values) -> Sample:
    """`s` with one more channel (18-bit range) holding `values`."""
    ev = np.column_stack([s.events, np.asarray(values, dtype=s.events.dtype)])
    ch = (*s.channels, Channel(len(s.channels), name, range=262_144))
    return Sample(ev, ch, keywords=s.keywords, scaled=s.scaled)


@pytest.mark.parametrize("direction", [1, -1])
def test_a_second_clock_is_not_checked_as_a_measurement(direction):
    """A clock or counter QC does not know by name (a second clock beside ``Time``) rises
    over the run: read as a fluorescence signal it was a drift of the whole file (82 % of a
    clogged file removed, the file failed). It is left out, with a note, and the result is
    that of the file without it; a clock that runs into its top loses no event either."""
    s = synthetic()
    t = s.events[:, 3].astype(np.float64)
    s.events[(t >= 60) & (t < 75), 0] *= 0.7
    base = acquisition_qc(s)
    clock = np.minimum(t * 3_000.0, 262_143.0)  # at its top for the last 13 s
    qc = acquisition_qc(with_column(s, "Ticks", clock[::direction]))
    np.testing.assert_array_equal(qc.reasons, base.reasons)
    assert qc.verdict == base.verdict and qc.verdict_reason == base.verdict_reason
    assert "Ticks moves one way with the events (a clock or an event counter" in qc.notes[0]
    assert "Ticks" not in qc.margins.names and "Ticks" not in qc.bins.channels
    assert qc.finite_columns == base.finite_columns
    # a measurement is never one: the same values shuffled are checked (top margin)
    rng = np.random.default_rng(1)
    mixed = acquisition_qc(with_column(s, "Ticks", rng.permutation(clock)))
    assert "Ticks" in mixed.margins.names and not mixed.notes
    # nor a ramp in a few hundred events (a test file's sorted channel)
    small = synthetic(n=600, seconds=3.0)
    ramp = acquisition_qc(with_column(small, "channel_A", np.arange(600.0)))
    assert "channel_A" in ramp.margins.names and not any("one way" in n for n in ramp.notes)


def test_hdr_t_is_a_clock_by_name_in_a_file_too_small_to_tell_by_its_values():
    """Below `CLOCK_MIN_EVENTS` QC does not tell a clock by its values; a ``HDR-T`` beside
    Time in an 800-event file was read as a signal that drifts over the whole run (most
    events removed, the file failed). It is a clock by its name: the result is that of the
    file without it."""
    s = synthetic(n=800, seconds=4.0)
    base = acquisition_qc(s)
    qc = acquisition_qc(with_column(s, "HDR-T", s.events[:, 3] * 3_000.0))
    np.testing.assert_array_equal(qc.reasons, base.reasons)
    assert qc.verdict == base.verdict == "pass" and "HDR-T" not in qc.margins.names


def test_a_file_sorted_by_a_marker_keeps_that_marker_checked():
    """A program sorted the rows by FL1-A: the Time channel says they are out of order, so
    FL1-A's rise is the sort, not a clock. Its saturated events are removed as in
    acquisition order (they were kept when FL1-A was taken for a clock), and the time
    problem names the channel the rows follow."""
    s = synthetic()
    rng = np.random.default_rng(3)
    top = rng.random(s.n_events) < 0.03
    s.events[top, 2] = 262_143.0
    base = acquisition_qc(s)
    s.events[:] = s.events[np.argsort(s.events[:, 2], kind="stable")]
    qc = acquisition_qc(s)
    assert base.removed_by["margin"] == qc.removed_by["margin"] == int(top.sum())
    assert "FL1-A" in qc.margins.names and qc.checks_run == ("margins",)
    assert "they are in the order of FL1-A's values" in qc.verdict_reason
    assert not any("one way" in n for n in qc.notes)


@pytest.mark.parametrize(("step", "offset"), [(0.5, 0.0), (0.5, 0.25), (0.75, 0.37)])
def test_a_coarse_clock_keeps_the_ticks_the_acquisition_started_and_stopped_in(step, offset):
    """On a clock of 0.5-0.75 s ticks (hundreds of events a tick, a bin a tick) the
    acquisition starts and stops within a tick: those ticks hold fewer events with nothing
    wrong, and were removed as rate anomalies (166-1,152 events, a warn). A real drop of
    the rate in the run's middle is still found."""
    rng = np.random.default_rng(int(step * 100 + offset * 100))
    s = synthetic(n=50_000, seconds=16.6, tick=0.0, seed=int(offset * 100))
    s.keywords = {**s.keywords, "$TIMESTEP": repr(step)}
    ticks = np.floor((s.events[:, 3].astype(np.float64) + offset) / step) * step
    s.events[:, 3] = ticks
    qc = acquisition_qc(s)
    assert qc.n_removed == 0 and qc.verdict == "pass", qc.verdict_reason
    # four ticks in the middle at a third of the rate
    mid = (ticks >= 6.0) & (ticks < 6.0 + 4 * step)
    drop = mid & (rng.random(s.n_events) < 2 / 3)
    s2 = Sample(s.events[~drop], s.channels, keywords=s.keywords, scaled=s.scaled)
    qc2 = acquisition_qc(s2)
    kept_mid = mid[~drop]
    assert qc2.removed_by["rate"] >= int(kept_mid.sum())


def test_an_empty_sample_measures_nothing():
    """No event: no check counted anything, so no count and no % (not a 0 of 0)."""
    s = synthetic()
    empty = Sample(s.events[:0], s.channels, keywords=s.keywords, scaled=s.scaled)
    row = acquisition_qc(empty).summary()
    assert row["qc_verdict"] == "fail" and row["qc_reason"] == "the file has no events"
    assert row["qc_pct_removed"] is None and row["qc_checks"] == ""
    assert all(row[f"qc_removed_{k}"] is None for k in ("rate", "signal", "margin"))
    one = Sample(s.events[:1], s.channels, keywords=s.keywords, scaled=s.scaled)
    reason = acquisition_qc(one).verdict_reason
    assert reason.startswith("0% of 1 event removed") and "1 event is too few" in reason


def test_a_dead_detector_is_named_and_the_file_is_not_a_bare_pass():
    """A channel reading 0 in every event measured nothing: its signal cannot be checked,
    so the verdict says so (it was a pass with no word); left out of QC, it passes."""
    s = synthetic()
    s.events[:, 2] = 0.0
    qc = acquisition_qc(s)
    assert qc.verdict == "warn" and qc.n_removed == 0
    assert "FL1-A reads 0 in every event" in qc.verdict_reason
    assert "--qc-exclude FL1-A" in qc.summary()["qc_notes"]
    assert acquisition_qc(s, AcquisitionQCSettings(exclude_channels=("FL1-A",))).verdict == "pass"
    # one value that is not finite (removed as a margin event) does not make it measure
    s.events[100, 2] = np.nan
    qc = acquisition_qc(s)
    assert qc.verdict == "warn" and "FL1-A reads 0 in every event" in qc.verdict_reason


def test_a_channel_without_a_range_says_its_top_was_not_checked():
    s = synthetic()
    s.channels = (Channel(0, "FSC-A", range=0), *s.channels[1:])
    s.events[:100, 0] = 262_143.0  # saturated, but the file gives no top
    qc = acquisition_qc(s)
    assert qc.removed_by["margin"] == 0
    assert "FSC-A: the file gives it no range ($PnR missing, 0 or 1), so its top margin " \
        "was not checked" in qc.notes  # fmt: skip


@pytest.mark.parametrize(("factor", "seed"), [(0.7, 1), (0.7, 2), (0.7, 3), (0.8, 3)])
def test_the_edges_of_a_noisy_step_keep_the_step(factor, seed):
    """FL1-A (a marker on 30 % of the cells: its mean is noisy per bin) dimmer from 60 s to
    140 s of 200: the windows' smear beside the step goes (2,142-6,168 good events were
    removed), and none of the step's own bins with it."""
    s = synthetic(n=40_000, seconds=200.0, seed=seed)
    t = s.events[:, 3].astype(np.float64)
    step = (t >= 60) & (t < 140)
    s.events[step, 2] *= factor
    removed = acquisition_qc(s).reasons != 0
    assert removed[step].mean() > 0.89
    assert np.count_nonzero(removed & ~step) < 800


def test_no_time_channel_runs_margins_only_and_says_so():
    s = synthetic()
    s = Sample(s.events[:, :3], s.channels[:3], keywords=s.keywords)
    qc = acquisition_qc(s)
    assert qc.checks_run == ("margins",) and qc.bins is None
    assert qc.verdict == "warn"
    assert "no Time channel" in qc.verdict_reason and "rate and signal" in qc.verdict_reason
    # a file QC warns about names the channels behind its margin events, however few
    s.events[:50, 0] = 262_143.0
    qc = acquisition_qc(s)
    assert qc.verdict == "warn" and qc.pct_removed < 2
    assert qc.verdict_reason.startswith("0.25% of 20,000 events removed (margin 0.25%: FSC-A 50 at")


@pytest.mark.parametrize("checks", [("signal",), ("margins",), ("signal", "margins")])
def test_no_channel_to_read_is_a_check_not_run_as_no_time_channel_is(checks):
    """Every measured channel in exclude_channels: the signal and margin checks read
    nothing, so they did not run, as the rate and signal checks of a file without a Time
    channel do not (no count, not among the checks run, a note on why, warn when nothing
    ran). They passed the file with "0% of 20,000 events removed"."""
    s = synthetic()
    every = AcquisitionQCSettings(checks=checks, exclude_channels=("FSC-A", "SSC-A", "FL1-A"))
    qc = acquisition_qc(s, every)
    untimed = Sample(s.events[:, :3], s.channels[:3], keywords=s.keywords)
    no_time = acquisition_qc(untimed, AcquisitionQCSettings(checks=("rate", "signal")))
    for got in (qc, no_time):
        row = got.summary()
        assert got.checks_run == () and np.isnan(got.pct_removed) and got.keep.all()
        assert [row[f"qc_removed_{r}"] for r in ("rate", "signal", "margin")] == [None] * 3
        assert row["qc_pct_removed"] is None and row["qc_checks"] == ""
        assert got.verdict == "warn"
        assert got.verdict_reason.startswith("no check ran, so the 20,000 events go on unchecked")
    what = " and ".join(checks)
    why = (
        "exclude_channels leaves out all 3 measured channels of the file; leave out of "
        "exclude_channels (and cytokit gate's --qc-exclude) the channels to check"
    )
    assert qc.notes == (f"{what} not checked: {why}",)
    assert qc.verdict_reason.endswith(f"did not run: {why}") and qc.margins is None
    # a channel left to read is checked, whatever the others
    some = acquisition_qc(s, AcquisitionQCSettings(checks=checks, exclude_channels=("FSC-A",)))
    assert some.checks_run == checks and not some.notes


def test_with_the_rate_check_the_checks_with_no_channel_are_named_at_every_verdict():
    s = synthetic()
    s.events[s.events[:, 3] >= 40.0, 3] += 5.0  # a gap: the rate check removes events
    qc = acquisition_qc(s, AcquisitionQCSettings(exclude_channels=("FSC-A", "SSC-A", "FL1-A")))
    row = qc.summary()
    assert qc.checks_run == ("rate",) and row["qc_removed_rate"] > 0
    assert row["qc_removed_signal"] is None and row["qc_removed_margin"] is None
    assert qc.verdict == "warn" and qc.finite_columns == ()
    assert "the signal and margins checks did not run: exclude_channels leaves out all 3 " \
        "measured channels" in qc.verdict_reason  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (None, "the file has no channel but its Time channel"),
        ("Ticks", "the file has no measured channel (Ticks (moves one way with the events))"),
        ("HDR-T", "the file has no measured channel (HDR-T (not a measurement))"),
        ("Event", "the file has no measured channel (Event (not a measurement))"),
    ],
)
def test_a_file_with_no_measured_channel_says_so(extra, why):
    s = synthetic()
    only = Sample(s.events[:, 3:].copy(), (dataclasses.replace(s.channels[3], index=0),),
                  keywords=s.keywords)  # fmt: skip
    if extra:
        only = with_column(only, extra, np.arange(s.n_events, dtype=np.float64))
    qc = acquisition_qc(only, AcquisitionQCSettings(checks=("signal", "margins")))
    assert qc.checks_run == () and qc.verdict == "warn"
    assert qc.verdict_reason.endswith(f"the signal and margins checks did not run: {why}")


def test_time_out_of_order_is_named_with_the_event():
    s = synthetic()
    s.events[5000:, 3] -= 30.0  # a restarted clock
    qc = acquisition_qc(s)
    assert qc.checks_run == ("margins",)
    assert "decreases 1 time(s), first at event 5000" in qc.notes[0]
    assert "the clock starts again: a counter that wrapped around" in qc.notes[0]
    # two events out of order are no restart
    s = synthetic()
    s.events[[5000, 5001], 3] = s.events[[5001, 5000], 3] + np.float32([0.0, 0.02])
    qc = acquisition_qc(s)
    assert "decreases 1 time(s)" in qc.notes[0] and "starts again" not in qc.notes[0]
    # rows shuffled: reordered, not a clock that restarts
    s = synthetic()
    s.events[:] = s.events[np.random.default_rng(5).permutation(s.n_events)]
    qc = acquisition_qc(s)
    assert "the events were reordered" in qc.notes[0] and "starts again" not in qc.notes[0]
    # a clock running below 0 that falls once is not a restart either
    s = synthetic()
    s.events[:, 3] -= 1000.0
    s.events[5000:, 3] -= 1.0
    qc = acquisition_qc(s)
    assert "decreases 1 time(s)" in qc.notes[0] and "starts again" not in qc.notes[0]
    # three events whose times were misread half a second ahead: a glitch, not a restart
    s = synthetic()
    s.events[[4000, 9000, 15000], 3] += 0.5
    qc = acquisition_qc(s)
    assert "decreases 3 time(s), first at event 4001" in qc.notes[0]
    assert "3 events stand out of line with the times of the events beside them" in qc.notes[0]
    assert "starts again" not in qc.notes[0] and "reordered" not in qc.notes[0]
    # a time that is not a number after such a glitch is named, wherever it lies
    s.events[12000, 3] = np.nan
    qc = acquisition_qc(s)
    assert "the Time channel's value at event 12000 is nan, not a time" in qc.notes[0]


def test_the_time_channel_read_is_named_when_not_plain_time():
    s = synthetic()
    s.channels = (*s.channels[:3], Channel(3, "TIME", range=262_144))
    s.events[:, 3] = 5.0
    qc = acquisition_qc(s)
    words = "does not advance (every event at time 5) (the time channel read: TIME)"
    assert words in qc.notes[0]


def test_a_run_of_days_is_noted_as_a_likely_timestep_error():
    s = synthetic()
    s.events[:, 3] *= 10_000.0  # 100 s read as 1e6 s
    qc = acquisition_qc(s)
    assert qc.checks_run == ("rate", "signal", "margins")
    assert any("lasts 1e+06 s (11.6 days)" in n and "check $TIMESTEP" in n for n in qc.notes)
    assert not any("check $TIMESTEP" in n for n in acquisition_qc(synthetic()).notes)


def test_the_reason_a_check_did_not_run_holds_only_its_own_notes():
    s = synthetic()
    s = Sample(s.events[:, :3].copy(), s.channels[:3], keywords=s.keywords)
    s.events[5, 2] = 300_000.0  # FL1-A above its $PnR: a note of the margin check
    qc = acquisition_qc(s)
    assert len(qc.notes) == 2
    why = qc.verdict_reason.split("did not run: ", 1)[1]
    assert why == "the file has no Time channel ($PnN 'Time' or $PnTYPE 'Time')"
    assert qc.summary()["qc_notes"] == "; ".join(qc.notes)


def test_a_channel_whose_name_says_time_but_is_no_clock_name_is_named():
    """A clock written 'Time (s)' is not read (only a channel named Time, or typed Time by
    $PnTYPE, is): the reason says which channel was passed over, so the user sees why."""
    import dataclasses

    s = synthetic()
    channels = (*s.channels[:3], dataclasses.replace(s.channels[3], name="Time (s)"))
    qc = acquisition_qc(Sample(s.events, channels, keywords=s.keywords))
    assert "rate" not in qc.checks_run
    assert "no Time channel ($PnN 'Time' or $PnTYPE 'Time'); 'Time (s)' is not read as one" in (
        qc.verdict_reason
    )


@pytest.mark.parametrize(
    ("row", "value", "words"),
    [
        (-1, np.inf, "time channel's last value (event 19999) is inf, not a time"),
        (0, -np.inf, "time channel's first value (event 0) is -inf, not a time"),
        (0, np.nan, "Time channel's value at event 0 is nan, not a time"),
        (7000, np.inf, "Time channel's value at event 7000 is inf, not a time"),
        (7000, np.nan, "Time channel's value at event 7000 is nan, not a time"),
    ],
)
def test_a_non_finite_time_is_named_not_a_crash(row, value, words):
    """A NaN or infinite Time value anywhere (the ends too: +inf last used to raise an
    OverflowError) stops the time checks with a sentence; the margin check still runs."""
    s = synthetic()
    s.events[row, 3] = value
    qc = acquisition_qc(s)
    assert qc.checks_run == ("margins",) and qc.bins is None
    assert words in qc.notes[0], qc.notes


@pytest.mark.parametrize(("saturated", "verdict"), [(0, "warn"), (600, "warn"), (5000, "fail")])
def test_a_check_that_did_not_run_has_no_count_and_is_named_at_every_verdict(saturated, verdict):
    """Rate and signal cannot run on a file whose Time holds a NaN: their counts are
    missing (not 0 events removed), and the verdict's reason says so whether or not the
    margin events alone put the file over the warn or fail limit."""
    s = synthetic()
    s.events[7000, 3] = np.nan
    s.events[:saturated, 0] = 262_143.0  # FSC-A at its top: margin events
    qc = acquisition_qc(s)
    row = qc.summary()
    assert qc.checks_run == ("margins",)
    assert row["qc_removed_rate"] is None and row["qc_removed_signal"] is None
    assert row["qc_removed_margin"] == saturated == qc.n_removed
    assert qc.verdict == verdict
    assert "the rate and signal checks did not run: the Time channel's value at event " \
        "7000 is nan" in qc.verdict_reason  # fmt: skip
    if verdict == "fail":
        # the limit still ends the sentence (the report splits the advice after it)
        assert qc.verdict_reason.endswith("more than the 20% allowed")
    # a check left out by the settings has no count either
    only = acquisition_qc(synthetic(), AcquisitionQCSettings(checks=("rate", "margins")))
    assert only.summary()["qc_removed_signal"] is None
    assert only.summary()["qc_removed_rate"] == 0 and only.verdict == "pass"


@pytest.mark.parametrize(("pause", "filled"), [(1000.0, 10), (200.0, 33)])
def test_a_paused_clock_is_named_not_judged_on_a_few_bins(pause, filled):
    """A pause of the clock (here after event 10,000 of a 100 s run) leaves most bins empty:
    the rate line and the signal levels would rest on the few that hold events, and the
    file would pass as checked. The checks say why they did not run instead."""
    s = synthetic()
    s.events[10_000:, 3] += pause
    qc = acquisition_qc(s)
    assert qc.checks_run == ("margins",) and qc.bins is None
    assert f"the events fill only {filled} of the" in qc.notes[0], qc.notes
    assert f"jumps by {pause:g} s at event 10000" in qc.notes[0]
    assert qc.verdict == "warn"
    assert "checks did not run: the events fill only" in qc.verdict_reason  # said once
    # a short gap (a bubble's) leaves the checks running
    s = synthetic()
    s.events[10_000:, 3] += 2.0
    assert acquisition_qc(s).checks_run == ("rate", "signal", "margins")


@pytest.mark.parametrize(
    ("n", "seconds", "tick", "words"),
    [(300, 10.0, 0.01, "300 events are too few"), (20_000, 0.08, 0.01, "only 8 steps of 0.01")],
)
def test_too_short_to_bin_says_why(n, seconds, tick, words):
    qc = acquisition_qc(synthetic(n=n, seconds=seconds, tick=tick))
    assert qc.bins is None and words in qc.notes[0]


def test_no_events_fails():
    s = synthetic()
    qc = acquisition_qc(Sample(s.events[:0], s.channels, keywords=s.keywords))
    assert qc.verdict == "fail" and qc.verdict_reason == "the file has no events"
    assert qc.summary()["events_before_qc"] == 0
    with pytest.raises(AcquisitionQCError, match="no events, so there is nothing to analyse") as e:
        screen(Sample(s.events[:0], s.channels, keywords=s.keywords), AcquisitionQCSettings())
    assert "margin" not in str(e.value) and "--qc-exclude" not in str(e.value)


def test_verdicts_follow_the_settings():
    s = synthetic()
    s.events[::66, 2][:300] = 262_143.0  # 1.5 % saturated on FL1-A, spread over the run
    assert acquisition_qc(s).verdict == "pass"
    qc = acquisition_qc(s, AcquisitionQCSettings(warn_removed_pct=1.0))
    # a file QC warns about names the channels behind its margin events
    reason = "1.5% of 20,000 events removed (margin 1.5%: FL1-A 300 at the top)"
    assert qc.verdict == "warn" and reason in qc.verdict_reason
    assert qc.margin_channels() == "FL1-A 300 at the top"
    # a file that passes keeps the short form
    assert acquisition_qc(s).verdict_reason == "1.5% of 20,000 events removed (margin 1.5%)"
    qc = acquisition_qc(s, AcquisitionQCSettings(max_removed_pct=1.0, warn_removed_pct=0.5))
    assert qc.verdict == "fail" and "more than the 1% allowed" in qc.verdict_reason
    summary = qc.summary()
    assert summary["qc_removed_margin"] == summary["qc_removed"] == 300
    assert summary["events_after_qc"] == 20_000 - 300


def test_a_file_with_every_event_removed_fails_whatever_the_limit():
    """With max_removed_pct = 100 a file QC emptied passed on to the gates, which failed it
    for 0 events without a word of QC; it is a QC failure, and raising the limit is not
    offered as the way out."""
    s = synthetic()
    s.events[:, 2] = np.nan  # FL1-A not measured: every event is a margin event
    settings = AcquisitionQCSettings(max_removed_pct=100)
    qc = acquisition_qc(s, settings)
    assert qc.verdict == "fail" and qc.n_removed == s.n_events
    assert qc.verdict_reason.endswith("every event was removed, none is left to analyse")
    from cytokit.errors import AcquisitionQCError
    from cytokit.qc import screen

    with pytest.raises(AcquisitionQCError, match="FL1-A 20000 not finite") as err:
        screen(s, settings, where="x.fcs")
    assert "--qc-exclude CHANNEL" in str(err.value) and "max_removed_pct" not in str(err.value)


def test_checks_can_be_left_out():
    s = synthetic()
    s.events[:300, 2] = 262_143.0
    s.events[s.events[:, 3] >= 40.0, 3] += 5.0
    qc = acquisition_qc(s, AcquisitionQCSettings(checks=("rate",)))
    assert qc.checks_run == ("rate",) and qc.margins is None
    assert not (qc.reasons & (SIGNAL | MARGIN)).any() and (qc.reasons & RATE).any()


def test_blocks_give_the_same_result_and_the_input_is_untouched():
    s = synthetic()
    s.events[:300, 2] = 262_143.0
    t = s.events[:, 3]
    s.events[(t >= 60) & (t < 75), 0] *= 0.7
    s.events.setflags(write=False)
    before = s.events.copy()
    whole = acquisition_qc(s)
    p = AcquisitionPass(s)
    for a in range(0, s.n_events, 4096):
        p.update(a, min(a + 4096, s.n_events))
    parts = p.finish()
    np.testing.assert_array_equal(parts.reasons, whole.reasons)
    assert parts.summary() == whole.summary()
    np.testing.assert_array_equal(s.events, before)


def test_blocks_must_come_in_order():
    s = synthetic()
    p = AcquisitionPass(s)
    p.update(0, 100)
    with pytest.raises(CytokitError, match="expected the block starting at row 100"):
        p.update(200, 300)
    with pytest.raises(CytokitError, match="scanned 100 of 20000 events"):
        p.finish()


def test_tables():
    s = synthetic()
    s.events[s.events[:, 3] >= 40.0, 3] += 5.0
    qc = acquisition_qc(s)
    ranges = qc.ranges_frame()
    assert list(ranges.columns) == [
        "file", "start", "end", "time_unit", "first_event", "events", "reasons", "detail"
    ]  # fmt: skip
    assert ranges["time_unit"].iloc[0] == "s" and ranges["file"].iloc[0] == "synthetic.fcs"
    bins = qc.bins_frame()
    assert bins["events"].sum() == s.n_events
    assert {"FSC-A mean", "FSC-A low", "FSC-A high", "FSC-A level", "FSC-A z"} <= set(bins)


def _fcs_header(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(3) == b"FCS"


def corpus_samples():
    """(path, sample) of every corpus FCS file cytokit reads (its warnings silenced), in
    path order; the calling test skips when the corpus is absent. Files are FCS by their
    header, not their name: flowCore's ``0877408774.B08`` (a plate well) is one."""
    if not CORPUS.exists():
        pytest.skip(f"corpus not found at {CORPUS}")
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file() and _fcs_header(p)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sample = cytokit.read_fcs(path)
            except cytokit.FCSError:
                continue
        yield path, sample


@pytest.mark.corpus
def test_every_corpus_file_with_a_time_channel_runs():
    seen = 0
    for _, sample in corpus_samples():
        qc = acquisition_qc(sample)
        assert qc.verdict in ("pass", "warn", "fail")
        assert qc.reasons.shape == (sample.n_events,)
        seen += qc.bins is not None
    assert seen >= 10


@pytest.mark.corpus
def test_coarse_corpus_clock_is_reported():
    path = CORPUS / "github/taborlab_FlowCal/test/Data002.fcs"  # Time holds 5 values
    if not path.exists():
        pytest.skip(f"{path} not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qc = acquisition_qc(cytokit.read_fcs(path))
    assert "only 5 steps of 1" in qc.notes[0] and qc.verdict == "warn"


@pytest.mark.corpus
def test_a_corpus_file_whose_signal_creeps_is_warned_not_cut():
    # FlowSOM's 68983.fcs: the dim PE-A (NK1.1) and PE-Texas Red (CD4) populations brighten
    # steadily from the first second to the last while the rate falls gently; there is no
    # steady part to remove a departure from (68 % was removed as one, and the file failed)
    path = CORPUS / "github/SofieVG_FlowSOM/inst/extdata/68983.fcs"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qc = acquisition_qc(cytokit.read_fcs(path))
    assert qc.removed_by["signal"] < 0.01 * qc.n_events  # a spike off its course at most
    assert qc.verdict == "warn"
    # PE-A climbs +37 % (10 noise SDs); PE-Texas Red-A and PE-Cy5-A creep too (+17 %, +16 %),
    # but by 3.4 SDs only: kept and not named
    crept = {t.split(":")[0] for t in qc.trends if "creeps +" in t}
    assert crept == {"PE-A"}, qc.trends
    # its bright cells stay put (the 90th percentile is flat): the cells, not the gain
    assert "not the detector's gain" in qc.trends[0]


def test_an_all_infinite_channel_raises_no_numpy_warning():
    import warnings

    s = synthetic()
    s.events[:, 2] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qc = acquisition_qc(s)
    assert qc.verdict == "fail" and "FL1-A" in qc.verdict_reason


def test_screen_refuses_settings_that_turn_qc_off():
    """A study table with ``enabled = false`` read into settings: screening with them would
    fail files the study does not check at all."""
    sample = synthetic(2000, 20.0)
    off = AcquisitionQCSettings.from_mapping({"enabled": False})
    with pytest.raises(ValueError, match="enabled = False"):
        screen(sample, off)
    _kept, qc = screen(sample, AcquisitionQCSettings())
    assert qc.n_events == sample.n_events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_bubbles_dimmed_flank_before_its_gap_is_removed_with_it(seed):
    """A bubble: slow flow with dimmed, spread signals for ~0.12 s, then no events for 0.9 s,
    then the same again. The run's first bin, flagged for rate and for signal, was read
    with the next for the rate change point, which then fell at the gap and kept the
    flank (8 of 450 events removed)."""
    s = synthetic(10_000, 4.3, tick=0.005, seed=seed)
    rng = np.random.default_rng(100 + seed)
    t = s.events[:, 3].astype(np.float64)
    flank = ((t >= 1.15) & (t < 1.265)) | ((t >= 2.165) & (t < 2.28))
    gap = (t >= 1.265) & (t < 2.165)
    keep = ~gap & ~(flank & (rng.random(t.size) < 0.4))  # the flanks at 0.6x the rate
    ev = s.events[keep].copy()
    f = flank[keep]
    ev[f, :3] *= (0.65 * np.exp(rng.normal(0, 0.5, (f.sum(), 3)))).astype(np.float32)
    s = Sample(ev, s.channels, keywords=s.keywords, scaled=True)
    qc = acquisition_qc(s)
    removed = ~qc.keep
    assert removed[f].mean() >= 0.8, removed[f].mean()
    assert removed[~f].sum() < 0.03 * (~f).sum()


def test_big_endian_events_give_what_native_ones_give():
    """A hand-built Sample of an FCS file's DATA in big-endian order was refused ("events
    have dtype >f4"), though every kernel reads it; it now gives the native result."""
    import dataclasses

    s = synthetic()
    big = dataclasses.replace(s, events=s.events.astype(s.events.dtype.newbyteorder(">")))
    a, b = acquisition_qc(s), acquisition_qc(big)
    np.testing.assert_array_equal(a.reasons, b.reasons)
    assert a.summary() == b.summary()


def test_a_dead_detector_leaves_the_other_channels_signal_bins():
    """A bin's level is read without its margin events; a file whose every event is one
    (FL1 dead: every value NaN) left every channel's bins empty, and its plot showed no
    signal at all. A bin of margin events only is read whole."""
    s = synthetic()
    s.events[:, s.channel_index("FL1-A")] = np.nan
    qc = acquisition_qc(s, AcquisitionQCSettings(max_removed_pct=100))
    assert (qc.reasons & MARGIN).all()
    bins = qc.bins_frame()
    for name in ("FSC-A", "SSC-A"):
        level = bins[next(c for c in bins.columns if c.startswith(name) and " z" not in c)]
        assert np.isfinite(level.to_numpy(float)).all(), name


def test_rows_of_gives_every_row_or_evenly_spaced_ones_without_listing_them_all():
    """The event rows of some bins, at most `most` of them evenly spaced: the same as
    listing every row of the bins in order and taking every (total / most)-th."""
    from cytokit.qc.shape import rows_of

    rng = np.random.default_rng(7)
    bounds = np.concatenate(([0], np.cumsum(rng.integers(0, 50, 400))))
    for bins, most in (
        (np.arange(400), 40_000),
        (np.sort(rng.choice(400, 90, replace=False)), 500),
    ):
        every = np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in bins])
        want = every if every.size <= most else every[(np.arange(most) * every.size) // most]
        np.testing.assert_array_equal(rows_of(bounds, bins, most), want)
    assert rows_of(bounds, np.array([], dtype=np.int64)).size == 0
