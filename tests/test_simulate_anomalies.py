"""Injected acquisition anomalies: what the truth says is what was done to the events."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit import simulate
from cytokit.errors import StudyError
from cytokit.simulate import anomalies as A
from cytokit.simulate.instrument import CHANNEL_NAMES, MAX_VALUE

DESIGN = simulate.preset_design("sample", seed=11)
N = 30_000
STEP = DESIGN.timestep


@pytest.fixture(scope="module")
def clean():
    return simulate.simulate_sample(DESIGN, "P01", 7, N)


def seconds(sample):
    return sample.events[:, -1].astype(np.float64) * STEP


def test_clog_slows_then_bursts_and_keeps_every_event(clean):
    sample, _ = clean
    clog = A.Clog(start=4.0, drop=2.0, drop_rate=0.2, burst=0.5, coincidence=0.0, spread=0.0)
    plan = A.AnomalyPlan(clogs=(clog,), corrupt_clogs=False)
    bad, at = A.inject(sample, plan, np.random.default_rng(1))
    assert bad.n_events == sample.n_events
    t = seconds(bad)
    assert np.all(np.diff(t) >= 0)
    rate = N / seconds(sample)[-1]
    drop = (t >= 4.0) & (t < 6.0)
    burst = (t >= 6.0) & (t < 6.5)
    # Poisson counts: within 5 SD of the planned rates
    for mask, want in ((drop, 0.2 * rate * 2.0), (burst, clog.burst_rate * rate * 0.5)):
        assert abs(mask.sum() - want) < 5 * np.sqrt(want), (mask.sum(), want)
    # the clog delays no event for good: the acquisition ends when it did (within a tick)
    assert t[-1] == pytest.approx(seconds(sample)[-1], abs=2 * STEP)
    np.testing.assert_array_equal(at.mask("clog"), drop | burst)
    # intensities scaled by `signal` (no spread asked for) inside, untouched outside
    cols = [CHANNEL_NAMES.index(c) for c in ("FSC-A", "PE-A")]
    inside = at.mask("clog") & ~at.clipped
    ratio = bad.events[inside][:, cols] / sample.events[inside][:, cols]
    np.testing.assert_allclose(ratio, clog.signal, rtol=1e-5)
    np.testing.assert_array_equal(
        bad.events[~at.mask("clog"), :-1], sample.events[~at.mask("clog"), :-1]
    )


def test_clog_corrupts_the_signals_of_its_offcentre_events_only(clean):
    sample, _ = clean
    clog = A.Clog(start=4.0, drop=2.0, drop_rate=0.2, burst=0.5, coincidence=0.0, spread=0.0)
    off, at = A.inject(sample, A.AnomalyPlan(clogs=(clog,)), np.random.default_rng(1))
    plain, pt = A.inject(
        sample, A.AnomalyPlan(clogs=(clog,), corrupt_clogs=False), np.random.default_rng(1)
    )
    # the switch changes the off-centre events and nothing else (times, other events)
    np.testing.assert_array_equal(off.events[:, -1], plain.events[:, -1])
    oc = at.mask("offcentre")
    assert not np.any(oc & ~at.mask("clog")) and not np.any(pt.mask("offcentre"))
    assert oc.sum() == pytest.approx(clog.offcentre * at.mask("clog").sum(), rel=0.05)
    np.testing.assert_array_equal(off.events[~oc], plain.events[~oc])
    # per-event factor in 0.3-0.7 with a per-channel spread of SD 0.3 on top of `signal`
    cols = [CHANNEL_NAMES.index(c) for c in ("FSC-A", "SSC-A", "FITC-A", "PE-A", "APC-A")]
    ok = oc & ~at.clipped & ~pt.clipped & (plain.events[:, cols] > 50).all(axis=1)
    logf = np.log(off.events[ok][:, cols] / plain.events[ok][:, cols])
    assert np.exp(np.median(logf)) == pytest.approx(0.5, abs=0.05)
    spread = np.std(logf - logf.mean(axis=1, keepdims=True), axis=0) * np.sqrt(5 / 4)
    np.testing.assert_allclose(spread, clog.offcentre_spread, rtol=0.1)
    with pytest.raises(StudyError, match="offcentre"):
        A.inject(
            sample,
            A.AnomalyPlan(clogs=(A.Clog(4.0, 2.0, 0.2, 0.5, offcentre=2.0),)),
            np.random.default_rng(1),
        )


def test_bubble_leaves_a_gap_with_slow_flanks(clean):
    sample, _ = clean
    bubble = A.Bubble(at=5.0, gap=0.8, flank=0.3, flank_rate=0.4)
    bad, at = A.inject(sample, A.AnomalyPlan(bubbles=(bubble,)), np.random.default_rng(2))
    t = seconds(bad)
    ((kind, start, end),) = at.windows
    assert kind == "bubble" and end - start == pytest.approx(0.3 + 0.8 + 0.3, abs=0.02)
    assert not np.any((t > start + 0.3 + STEP) & (t < start + 1.1 - STEP))  # the gap
    rate = N / seconds(sample)[-1]
    flanks = at.mask("bubble").sum()
    want = 2 * 0.3 * 0.4 * rate
    assert abs(flanks - want) < 5 * np.sqrt(want)


def test_drift_multiplies_the_laser_by_its_recorded_gain(clean):
    sample, _ = clean
    drift = A.Drift(start=3.0, change=-0.4, detectors=A.LASERS["red"])
    bad, at = A.inject(sample, A.AnomalyPlan(drifts=(drift,)), np.random.default_rng(3))
    t = seconds(bad)
    end = t[-1]
    want_gain = 1 - 0.4 * np.clip((t - 3.0) / (end - 3.0), 0, 1)
    # the file holds times floored to the clock tick; the gain followed the exact time
    np.testing.assert_allclose(at.gain, want_gain, rtol=0, atol=0.4 * 2 * STEP / (end - 3.0))
    for name in CHANNEL_NAMES[:-1]:
        c = CHANNEL_NAMES.index(name)
        want = sample.events[:, c] * (at.gain if name in A.LASERS["red"] else 1.0)
        np.testing.assert_allclose(bad.events[:, c], np.minimum(want, MAX_VALUE), rtol=2e-6)
    np.testing.assert_array_equal(at.mask("drift"), np.abs(at.gain - 1) >= 0.1 - 1e-6)


def test_margin_events_sit_at_the_limits(clean):
    sample, _ = clean
    plan = A.AnomalyPlan(
        margins=(A.MarginEvents(0.02, top=("PE-A",)), A.MarginEvents(0.01, floor=("FSC-A",)))
    )
    bad, at = A.inject(sample, plan, np.random.default_rng(4))
    marked = at.mask("margin")
    pe, fsc = CHANNEL_NAMES.index("PE-A"), CHANNEL_NAMES.index("FSC-A")
    hits = (bad.events[:, pe] == MAX_VALUE) | (bad.events[:, fsc] == 0)
    assert np.all(hits[marked])
    assert abs(marked.sum() - 0.03 * N) < 5 * np.sqrt(0.03 * N)
    measured = bad.events[:, :-1]
    at_limit = (measured >= MAX_VALUE).any(axis=1) | (measured[:, :3] <= 0).any(axis=1)
    np.testing.assert_array_equal(at.clipped, at_limit)


def test_values_pushed_past_the_top_saturate_there(clean):
    # a rising gain and a burst's coincident events push bright values past the
    # detector's range; the instrument stores them at its top, as a real one does
    sample, _ = clean
    plan = A.AnomalyPlan(
        clogs=(A.Clog(start=3.0, drop=1.0, drop_rate=0.2, burst=0.5, coincidence=0.9),),
        drifts=(A.Drift(start=6.0, change=0.5, detectors=A.LASERS["blue"]),),
    )
    bad, at = A.inject(sample, plan, np.random.default_rng(6))
    measured = bad.events[:, :-1]
    assert measured.max() == MAX_VALUE
    at_top = (measured == MAX_VALUE).any(axis=1)
    assert at_top.sum() > (sample.events[:, :-1] == MAX_VALUE).any(axis=1).sum()
    np.testing.assert_array_equal(at.clipped, at_top | (measured[:, :3] <= 0).any(axis=1))


def test_random_plans_have_the_kinds_asked_for():
    rng = np.random.default_rng(5)
    plan = A.random_plan(rng, 16.0, kinds=("clog", "bubble", "drift", "margin"))
    assert plan.kinds == ("clog", "bubble", "drift", "margin")
    c, b = plan.clogs[0], plan.bubbles[0]
    assert 0.1 * 16 <= c.start and c.start + c.drop + c.burst <= b.at - b.flank * b.flank_rate
    with pytest.raises(StudyError, match="unknown anomaly kind"):
        A.random_plan(rng, 16.0, kinds=("clot",))


def test_overlapping_anomalies_are_refused(clean):
    sample, _ = clean
    plan = A.AnomalyPlan(clogs=(A.Clog(4.0, 2.0, 0.2, 0.5),), bubbles=(A.Bubble(4.5, 0.5, 0.2),))
    with pytest.raises(StudyError, match="overlap"):
        A.inject(sample, plan, np.random.default_rng(6))


def test_simulate_sample_hook_is_reproducible_and_optional(clean):
    sample, _ = clean
    plan = A.AnomalyPlan(clogs=(A.Clog(4.0, 1.0, 0.3, 0.4),))
    a, ta = simulate.simulate_sample(DESIGN, "P01", 7, N, anomalies=plan)
    b, tb = simulate.simulate_sample(DESIGN, "P01", 7, N, anomalies=plan)
    np.testing.assert_array_equal(a.events, b.events)
    np.testing.assert_array_equal(ta.anomalies.kind, tb.anomalies.kind)
    np.testing.assert_array_equal(ta.label, clean[1].label)  # same cells, in the same order
    plain, tp = simulate.simulate_sample(DESIGN, "P01", 7, N)
    np.testing.assert_array_equal(plain.events, sample.events)
    assert tp.anomalies is None


def test_random_anomalies_are_drawn_per_file_from_the_seed():
    """`random_anomalies` (``cytokit simulate --anomalies``): the same seed, patient and day
    give the same plan, another day another; every kind asked for is there once; the
    parameters fit the design's run; an unknown kind is refused."""
    design = simulate.preset_design(seed=36201, n_patients=2, n_events=50_000)
    spec = design.patients[0]
    plan = A.random_anomalies(design, ["clog", "bubble", "drift", "margin"])
    assert plan(spec, 7) == plan(spec, 7) != plan(spec, 14)
    one = plan(spec, 7)
    assert one.kinds == ("clog", "bubble", "drift", "margin")
    seconds = design.n_events / design.event_rate
    assert 0 < one.clogs[0].start < one.bubbles[0].at < seconds and one.drifts[0].start < seconds
    with pytest.raises(StudyError, match="name one or more of clog, bubble, drift, margin"):
        A.random_anomalies(design, ["clot"])


@pytest.mark.parametrize("seed", range(100801, 100841))
def test_random_plans_fit_a_short_run(seed):
    """A 2,000-event run lasts under a second: a clog and a bubble still fit their slots,
    within the run, and inject without error."""
    design = simulate.preset_design("sample", seed=seed)
    sample, _ = simulate.simulate_sample(design, "P01", 7, 2000)
    rng = np.random.default_rng(seed)
    plan = A.random_plan(rng, A.duration(sample), kinds=("clog", "bubble"))
    out, truth = A.inject(sample, plan, rng)
    assert truth.mask("clog").any() and truth.mask("bubble").any()
    assert np.all(np.diff(out.events[:, -1]) >= 0)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: A.Clog(start=1, drop=-1, drop_rate=0.2, burst=0.4), "drop = -1 must be"),
        (lambda: A.Clog(start=1, drop=1, drop_rate=0, burst=0.4), "drop_rate = 0 must be"),
        (lambda: A.Clog(start=1, drop=1, drop_rate=1.5, burst=0.4), "drop_rate = 1.5 must be"),
        (lambda: A.Clog(start=1, drop=1, drop_rate=0.2, burst=0), "burst = 0 must be"),
        (lambda: A.Clog(1, 1, 0.2, 0.4, coincidence=2), "coincidence = 2 must be"),
        (lambda: A.Clog(1, 1, 0.2, 0.4, signal=-1), "signal = -1 must be"),
        (lambda: A.Bubble(at=1, gap=-0.1, flank=0.2), "gap = -0.1 must be"),
        (lambda: A.Bubble(at=1, gap=0.1, flank=0.2, flank_rate=0), "flank_rate = 0 must be"),
        (lambda: A.Drift(start=-5, change=-0.3, detectors=("PE-A",)), "start = -5 must be"),
        (lambda: A.Drift(start=1, change=-0.3, detectors=("PE-A",), end=0.5), "end = 0.5"),
        (lambda: A.Drift(start=1, change=-0.3, detectors=()), "detectors = () must name"),
        (lambda: A.MarginEvents(0.01), "name the detectors saturated (top)"),
        (lambda: A.MarginEvents(1.5, top=("PE-A",)), "fraction = 1.5 must be"),
        (lambda: A.MarginEvents(0.1, top=("PE-A",), window=(5, 2)), "window end = 2"),
        (lambda: A.MarginEvents(0.1, floor=("PE-A",)), "must be scatter"),
    ],
)
def test_bad_anomaly_parameters_are_refused_by_name(make, words):
    with pytest.raises(StudyError) as e:
        make()
    assert words in str(e.value), str(e.value)


def test_anomalies_outside_the_run_or_overlapping_are_refused_in_seconds(clean):
    sample, _ = clean
    rng = np.random.default_rng(0)
    run = float(seconds(sample)[-1])
    for plan, words in [
        (A.AnomalyPlan(clogs=(A.Clog(run + 5, 1.0, 0.2, 0.4),)), "of the clean run, which lasts"),
        (A.AnomalyPlan(bubbles=(A.Bubble(run + 5, 0.2, 0.2),)), "place it within the run"),
        (A.AnomalyPlan(drifts=(A.Drift(run + 5, -0.3, ("PE-A",)),)), "before the drift starts"),
        (
            A.AnomalyPlan(margins=(A.MarginEvents(0.1, top=("PE-A",), window=(run + 5, run + 9)),)),
            "holds no event",
        ),
        (
            A.AnomalyPlan(clogs=(A.Clog(3.0, 1.0, 0.2, 0.4), A.Clog(3.3, 1.0, 0.2, 0.4))),
            "the clog at 3 s (3-4.4 s of the clean run) and the clog at 3.3 s",
        ),
    ]:
        with pytest.raises(StudyError) as e:
            A.inject(sample, plan, rng)
        assert words in str(e.value), str(e.value)


def test_windows_hold_every_event_of_their_anomaly_on_the_stored_clock(clean):
    plan = A.AnomalyPlan(
        clogs=(A.Clog(2.0, 1.0, 0.2, 0.4),), bubbles=(A.Bubble(at=5.0, gap=0.3, flank=0.2),)
    )
    out, truth = A.inject(clean[0], plan, np.random.default_rng(3))
    t = seconds(out)
    for kind, start, end in truth.windows:
        if kind in ("clog", "bubble"):
            inside = t[truth.mask(kind)]
            assert inside.min() >= start - 1e-9 and inside.max() < end - 1e-9, kind
            assert round(start / STEP, 6).is_integer() and round(end / STEP, 6).is_integer()
    # $ETIM follows the last event, which the bubble's gap moved
    import datetime as dt

    b, e = (dt.datetime.strptime(out.keyword(k), "%H:%M:%S") for k in ("$BTIM", "$ETIM"))
    assert (e - b).total_seconds() >= t[-1]


def test_an_enrichment_window_outside_the_run_is_refused():
    from cytokit.simulate.timing import Enrichment

    design = simulate.preset_design("sample", seed=100842)
    plan = Enrichment(("NK",), window=(500.0, 600.0), factor=2.0)
    with pytest.raises(StudyError, match="holds no event; the acquisition lasts"):
        simulate.simulate_sample(design, "P01", 7, 5000, timing=plan)
    with pytest.raises(StudyError, match="factor = '2' must be a number"):
        Enrichment(("NK",), window=(1.0, 2.0), factor="2")


def test_a_study_that_stops_part_way_leaves_no_files(tmp_path):
    from cytokit.simulate.study import simulate_study

    design = simulate.preset_design("sample", seed=100843, n_patients=1, n_events=3000)
    calls = []

    def plan(spec, day):
        calls.append(day)
        if len(calls) == 2:
            return A.AnomalyPlan(clogs=(A.Clog(start=500.0, drop=1.0, drop_rate=0.2, burst=0.4),))
        return None

    with pytest.raises(StudyError, match="place it within the run"):
        simulate_study(tmp_path / "s", design, anomalies=plan)
    assert len(calls) == 2
    assert not list((tmp_path / "s").rglob("*.fcs")) and not list((tmp_path / "s").rglob("*.npz"))
    assert not (tmp_path / "s" / "manifest.csv").exists()
