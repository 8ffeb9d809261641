"""Acquisition QC on odd but real inputs: a time read between two clock ticks, a dead
detector with the margin check off, a misread last time, a Time channel declaring log
amplification, BD's TIMETICKS, a bad gain on the time parameter, absurd float values,
and which channels the stored plot keeps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from fcs_synth import dataset, float_keywords
from test_qc_scan import synthetic

import cytokit
from cytokit.qc import AcquisitionQCSettings, acquisition_qc
from cytokit.qc.apply import plot_bins, plot_channels
from cytokit.sample import Channel, Sample


def _off_tick(s: Sample, tick: float, part: float) -> None:
    """Move one event's time `part` of a tick later: the last of its tick, so the order
    stays."""
    t = s.events[:, 3].astype(np.float64)
    i = int(np.flatnonzero(np.diff(t) >= 0.99 * tick)[20])
    s.events[i, 3] = np.float32(t[i] + part * tick)


@pytest.mark.parametrize(
    ("n", "seconds", "tick", "part"),
    [
        (16_000, 20.0, 0.1, 0.3),
        (200_000, 10.0, 0.01, 0.3),
        # a third or a half of a tick: every difference is a multiple of it
        (16_000, 20.0, 0.1, 1 / 3),
        (16_000, 20.0, 0.1, 0.5),
        # 50 ticks: the glitch's two differences are 4 % of them
        (20_000, 5.0, 0.1, 0.3),
        (5_000, 30.0, 0.5, 0.3),
    ],
)
def test_one_time_between_two_ticks_does_not_set_the_clock_step(n, seconds, tick, part):
    """One event read 0.3 tick off the clock's grid made 0.3 tick the step: bins of 2
    and 3 ticks in turn, a rate that jumped by a third, and a clean file failed with
    83 % removed (or passed with "gaps" shorter than a tick)."""
    s = synthetic(n=n, seconds=seconds, tick=tick, seed=4)
    _off_tick(s, tick, part)
    qc = acquisition_qc(s)
    assert qc.bins.grid.quantum == pytest.approx(tick, rel=1e-4)
    assert qc.verdict == "pass" and qc.ranges == ()
    assert qc.bins.counts.sum() == s.n_events


def test_a_few_times_off_the_grid_in_a_short_run_keep_the_clock_step():
    """Three events 0.3 tick off in 200 ticks: 6 differences off the grid of about 200,
    more than 2 % of them, yet the clock's; 8 are allowed where there are 80 or more."""
    s = synthetic(n=16_000, seconds=20.0, tick=0.1, seed=4)
    t = s.events[:, 3].astype(np.float64)
    for i in np.flatnonzero(np.diff(t) >= 0.099)[[5, 92, 180]]:
        s.events[i, 3] = np.float32(t[i] + 0.03)
    qc = acquisition_qc(s)
    assert qc.bins.grid.quantum == pytest.approx(0.1, rel=1e-4) and qc.verdict == "pass"


@pytest.mark.parametrize("checks", [("rate", "signal"), ("signal",), ("rate",)])
def test_a_dead_detector_is_named_without_the_margin_check(checks):
    """The dead-detector sentence was made by the margin check only: with `checks`
    leaving it out, a channel reading one value in every event passed with no word."""
    s = synthetic()
    s.events[:, 2] = 500.0
    qc = acquisition_qc(s, AcquisitionQCSettings(checks=checks))
    assert qc.verdict == "warn" and qc.keep.all()
    assert "FL1-A reads 500 in every event" in qc.verdict_reason
    assert "--qc-exclude FL1-A" in qc.verdict_reason
    assert "margins" not in qc.checks_run
    # a channel with no finite value at all: the same, where the margin check is off
    s.events[:, 2] = np.nan
    qc = acquisition_qc(s, AcquisitionQCSettings(checks=checks))
    assert qc.verdict == "warn" and qc.keep.all()
    assert "FL1-A holds no finite value in any event" in qc.verdict_reason
    # with it, every event is removed for it, as before (a fail that names it)
    qc = acquisition_qc(s)
    assert qc.verdict == "fail" and "FL1-A 20000 not finite" in qc.verdict_reason
    # at its top in every event is a saturated detector, not a dead one; one finite value
    # among values that are not is said as such
    s.events[:, 2] = 262_143.0
    qc = acquisition_qc(s, AcquisitionQCSettings(checks=checks))
    assert "FL1-A is at its top (262143) in every event (saturated" in qc.verdict_reason
    s.events[:, 2] = np.nan
    s.events[5, 2] = 230.5
    qc = acquisition_qc(s, AcquisitionQCSettings(checks=checks))
    assert "FL1-A reads 230.5 in every event but 19999 not finite" in qc.verdict_reason


def test_a_misread_last_time_is_named_as_one():
    """The last event's time read as 0 was "a counter that wrapped around at its range,
    or acquisitions joined", as one event mid-file is not."""
    s = synthetic()
    s.events[-1, 3] = 0.0
    qc = acquisition_qc(s)
    assert "rate" not in qc.checks_run
    assert "one event stands out of line" in qc.verdict_reason
    assert "a clock that misread" in qc.verdict_reason and "wrapped" not in qc.verdict_reason


@pytest.mark.parametrize(("row", "value"), [(-1, 65_535.0), (-1, 4_294_967_295.0), (0, -5_000.0)])
def test_a_time_far_beyond_the_run_at_an_end_is_named_as_misread(row, value):
    """The last event's time read as 65535 (or 2^32 - 1) was "a paused acquisition" (or
    "float32 ticks, 5.12 s apart, coarser than the clock's step"): one misread time."""
    s = synthetic()
    s.events[row, 3] = value
    qc = acquisition_qc(s)
    assert "rate" not in qc.checks_run and qc.keep.all()
    assert "one time misread" in qc.verdict_reason, qc.verdict_reason
    assert "paused" not in qc.verdict_reason and "float32" not in qc.verdict_reason


def test_a_time_channel_declaring_log_amplification_is_not_read_as_a_clock():
    """$PnE = 4,1 on Time: the reader decodes it as a log scale (as FlowKit does), and the
    times ran on a curve, read as "rate 1.66x to 140x the expected": 86 % removed and a
    failed file, blaming the flow."""
    s = synthetic()
    log_time = Channel(3, "Time", range=262_144, log_decades=4.0, log_offset=1.0)
    s = Sample(s.events, (*s.channels[:3], log_time), keywords=s.keywords)
    qc = acquisition_qc(s)
    assert qc.checks_run == ("margins",) and qc.keep.all() and qc.verdict == "warn"
    assert "declares log amplification ($P4E = 4,1)" in qc.verdict_reason
    assert "should be 0,0" in qc.verdict_reason


def test_bd_timeticks_gives_the_seconds():
    """FCS 2.0 files from BD software give no $TIMESTEP but TIMETICKS, the tick in ms (the
    corpus's FACSCalibur files: 50, 100 and 200 ms, borne out by $BTIM/$ETIM): ranges were
    in "time units"."""
    s = synthetic(n=20_000, seconds=100.0, tick=0.05, seed=2)
    ticks = np.round(s.events[:, 3].astype(np.float64) / 0.05)
    hole = (ticks >= 800) & (ticks < 840)  # 2 s with no event: a gap
    keep = ~hole
    events = s.events[keep].copy()
    events[:, 3] = ticks[keep]
    kw = {k: v for k, v in s.keywords.items() if k != "$TIMESTEP"}
    plain = Sample(events, s.channels, keywords=kw)
    assert acquisition_qc(plain).bins.grid.unit == "time units"
    timed = Sample(events, s.channels, keywords={**kw, "TIMETICKS": "50"})
    qc = acquisition_qc(timed)
    assert qc.bins.grid.unit == "s"
    r = qc.ranges_frame()
    assert len(r) == 1 and r["time_unit"].iloc[0] == "s"
    assert r["start"].iloc[0] <= 40.0 and r["end"].iloc[0] >= 42.0
    assert r["end"].iloc[0] - r["start"].iloc[0] < 5.0
    # a run said to last years names the keyword the seconds came from
    odd = acquisition_qc(Sample(events, s.channels, keywords={**kw, "TIMETICKS": "5e7"}))
    assert any("by TIMETICKS = 5e7" in n and "check TIMETICKS" in n for n in odd.notes)


def test_a_bad_gain_on_the_time_parameter_is_a_note_not_a_refusal(tmp_path):
    """The time parameter's $PnG is never applied, yet $P2G='abc' on Time refused the
    whole file."""
    n = 400
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.uniform(0, 1000, n), np.arange(n) * 0.01]).astype("<f4")
    kw = float_keywords(2, n)
    kw = [(k, {"$P2N": "Time", "$P1N": "FSC-A"}.get(k, v)) for k, v in kw]
    kw.append(("$P2G", "abc"))
    path = tmp_path / "gain.fcs"
    path.write_bytes(dataset(kw, data.tobytes()))
    with pytest.warns(UserWarning, match=r"\$P2G='abc' is not a valid gain"):
        s = cytokit.read_fcs(path)
    assert s.n_events == n
    np.testing.assert_allclose(s.events[:, 1], np.arange(n) * 0.01, rtol=1e-6)


def test_absurd_float_values_give_no_numpy_warning():
    """A D file with values near 1e300 made "overflow encountered in multiply" reach the
    user, with no file, channel or fix; a $PnR near 1e308 made an infinite asinh cofactor,
    and QC stopped with a ValueError."""
    s = synthetic(datatype="D")
    ev = s.events.astype(np.float64)
    ev[:, 2] = np.abs(ev[:, 2]) * 1e297
    huge = Channel(2, "FL1-A", "CD3", range=1e308)  # the values are within its range
    s = Sample(ev, (*s.channels[:2], huge, s.channels[3]), keywords=s.keywords)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qc = acquisition_qc(s)
    assert qc.bins is not None


def _clog_and_drift(drifting: str = "FL4-A") -> Sample:
    """Six channels; a clog (rate down to a fifth, then a burst; every channel dimmed by
    half) at 20-26 s of 100, and FL4-A alone 35 % dimmer from 60 s to the end."""
    rng = np.random.default_rng(11)
    n = 40_000
    t = np.sort(rng.uniform(0, 100, n))
    clog = (t >= 20) & (t < 26)
    # the clog's events arrive late: most in its last second
    t[clog] = 20 + 6 * rng.power(6, clog.sum())
    t = np.sort(np.floor(t / 0.01) * 0.01)
    cols = [rng.lognormal(np.log(m), 0.35, n) for m in (60_000, 20_000, 3_000, 5_000, 8_000)]
    fl4 = np.where(rng.random(n) < 0.4, rng.lognormal(np.log(4_000), 0.3, n), 40.0)
    ev = np.column_stack([*cols, fl4, t]).astype(np.float32)
    ev[clog, :6] *= 0.5
    ev[t >= 60, 5] *= 0.65
    names = ("FSC-A", "SSC-A", "FL1-A", "FL2-A", "FL3-A", drifting, "Time")
    ch = tuple(Channel(i, nm, range=262_144) for i, nm in enumerate(names))
    return Sample(ev, ch, keywords={"$DATATYPE": "F", "$TIMESTEP": "0.01"})


@pytest.mark.parametrize("fl4", ["FL4-A", "FL4-A (CD56)"])
def test_the_stored_plot_keeps_the_channel_a_drift_was_flagged_for(fl4):
    """The plot kept the 4 channels with the largest departure over the whole file: a
    clog's dimmed events, which depart in every channel, outranked the one channel whose
    drift failed the file, and the plot showed four flat channels beside a shaded
    stretch. The channels a range's detail names come first now (a name with a
    parenthesis in it too: a first version cut it at " (")."""
    s = _clog_and_drift(fl4)
    qc = acquisition_qc(s)
    named = [c for c, _, _ in qc.bins.signal_channels()]
    assert fl4 in named
    detail = " ".join(qc.ranges_frame()["detail"])
    assert fl4 in detail
    order = plot_channels(qc)
    assert fl4 in order[: len(named)] and set(order) == set(qc.bins.channels)
    # each range's detail names its channels in the order the plot takes them
    for r in qc.ranges:
        first = [c for c, _, _ in qc.bins.signal_channels(*r.bins)][:1]
        assert not first or first[0] in order[: len(qc.ranges) + 1]
    _, columns, _ = plot_bins(qc)
    assert f"{fl4} mean" in set(map(str, columns))
    assert sum(str(c).endswith(" mean") for c in columns) == 4


def test_a_plot_without_the_signal_check_draws_no_stable_level():
    """With ``checks = ["rate", "margins"]`` the plot drew "stable level" lines and the
    caption spoke of channels that departed from it, though no level was judged."""
    from cytokit.plots.acquisition import acquisition_figure

    s = _clog_and_drift()
    qc = acquisition_qc(s, AcquisitionQCSettings(checks=("rate", "margins")))
    values, columns, _ = plot_bins(qc)
    frame = dict(zip(map(str, columns), values.T, strict=True))
    levels = [k for k in frame if k.endswith("level")]
    assert levels and all(np.isnan(frame[k]).all() for k in levels)
    bins = qc.bins_frame()
    for name in qc.bins.channels:
        bins[[f"{name} level", f"{name} upper level"]] = np.nan
    fig = acquisition_figure(bins, qc.ranges_frame())
    legend = [t.get_text() for t in fig.get_axes()[0].get_legend().get_texts()]
    assert "stable level" not in legend and "removed: rate" in legend
    # a file without time bins says so, without blaming its time axis
    none = acquisition_figure(bins.iloc[:0], None, why="the study's checks leave them out")
    text = " ".join(t.get_text() for ax in none.get_axes() for t in ax.texts)
    assert "no time bins to plot" in text and "usable" not in text
