"""Signal drift that brightens late in the run: the level the run started at is the stable one.

A lab reads a drift as a departure from the level the acquisition started at
and held longest. When a laser's detectors creep brighter over the last part
of a run, the bin means of a drifting channel spread along the drift, and a
level taken from the densest half of them (or the median of all) lies partway
along it: QC then flagged the undisturbed start and kept the drifted end, or
flagged nothing. Here one simulated file gets a linear brightening of the red
laser's detectors (APC, APC-H7: only CD3+ and CD8+ cells are bright there)
from 40 % of the run to its end, and QC is scored against the simulator's
per-event truth (`cytokit.simulate.anomalies.Drift`; an event is a drift
event when its gain is off by >= 10 %). One 30,000-event file per case:
seconds.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from cytokit import simulate
from cytokit.kernels.acquisition import sample_rows
from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.qc.result import VERDICTS
from cytokit.qc.settings import THRESHOLDS, AcquisitionQCSettings
from cytokit.qc.stability import bright_moments, check_stability, drift_onset, trend_z
from cytokit.simulate import anomalies as A

N_EVENTS = 30_000


def drifted(seed: int, change: float, start: float = 0.4):
    """A 30,000-event file whose red-laser gain moves linearly from `start` (share of the run)."""
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, N_EVENTS)
    seconds = A.duration(sample)
    plan = A.AnomalyPlan(drifts=(A.Drift(start * seconds, change, A.LASERS["red"]),))
    return A.inject(sample, plan, np.random.default_rng(seed))


# 8732 and 8735: the densest half of the drifting bins was the drifted end, so the start
# was removed and the end kept; 8740: nothing was flagged; 8713: a dimming drift
@pytest.mark.parametrize(
    ("seed", "change"), [(8732, 0.40), (8735, 0.40), (8740, 0.40), (8713, -0.35)]
)
def test_late_drift_is_flagged_and_the_early_level_kept(seed, change):
    sample, truth = drifted(seed, change)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    untouched = truth.gain == 1.0  # before the drift starts
    assert 0.25 < drift.mean() < 0.6, drift.mean()  # the truth the test is about
    assert untouched.mean() > 0.35
    # the start of the run is the stable level: (almost) none of it removed (the
    # population mix wanders, so the run may begin a few bins before the gain is off)
    assert removed[untouched].mean() < 0.1, removed[untouched].mean()
    # the drifted part is what goes, the end of the run above all
    assert removed[drift].mean() > 0.9, removed[drift].mean()
    assert removed[-N_EVENTS // 5 :].mean() > 0.95
    tp = int(np.sum(removed & drift))
    f1 = 2 * tp / (removed.sum() + drift.sum())
    assert f1 > 0.8, f1


# --- a red-laser drift judged on the bright cells ------------------------------------------------


def bench_file(seed: int, kind: str = "drift", events: int = 50_000):
    """(sample, truth) of a file of `benchmarks/bench_acquisition_qc.py` (50,000 events, its
    recipe): one anomaly of `kind`, or nothing injected for ``"clean"`` (truth None);
    ``"mixed"``: one of every kind at once (its ``--mixed``)."""
    design = simulate.preset_design("sample", seed=seed, n_patients=4)
    rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])
    samples = design.samples()
    spec, day = samples[int(rng.integers(len(samples)))]
    sample, _ = simulate.simulate_sample(design, spec.id, day, events)
    if kind == "clean":
        return sample, None
    kinds = tuple(A.KINDS) if kind == "mixed" else (kind,)
    plan = A.random_plan(rng, A.duration(sample), kinds=kinds)
    return A.inject(sample, plan, rng)


# Red-laser drifts (APC, APC-H7: only CD3+ and CD8+ cells are bright there) on which the
# union of the channels' noisy rank means started the flagged run 33-83 bins (of 237)
# before the gain was 10 % off: 9,539, 17,533 and 9,933 events removed before the drift
# (F1 0.80, 0.65, 0.81), the file failed. Judged on the bright cells' series (`bright_moments`),
# the run starts within a few bins of where the gain is 10 % off.
@pytest.mark.parametrize(("seed", "change"), [(8534, 0.26), (1015, -0.26), (8433, -0.25)])
def test_a_red_laser_drift_starts_where_the_gain_is_ten_percent_off(seed, change):
    sample, truth = bench_file(seed)
    (d,) = truth.plan.drifts
    assert d.detectors == A.LASERS["red"] and d.change == pytest.approx(change, abs=0.01)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    early = int(np.sum(removed & ~drift))
    # a few bins (of ~210 events) at the onset, where the gain is 1.05-1.1
    assert early < 3_000, early
    assert removed[drift].mean() > 0.97, removed[drift].mean()
    tp = int(np.sum(removed & drift))
    f1 = 2 * tp / (removed.sum() + drift.sum())
    assert f1 > 0.9, f1


# Late red-laser drifts in 20,000-event files (95 bins): the longest window (81 bins)
# centred near the end holds mostly the flat part, so its median stayed within the shift
# and the run began where the gain was 1.2-1.25: 29 % and 52 % of the drift's events kept
# (F1 0.45 and 0.64). The broken line through the bright series says where the gain is
# 10 % off, and the drift's run starts there (83 % and 96 % of them removed now).
@pytest.mark.parametrize("seed", [30251, 30239])
def test_a_late_drift_in_a_short_file_is_removed_from_where_the_gain_is_off(seed):
    sample, truth = bench_file(seed, events=20_000)
    (d,) = truth.plan.drifts
    assert d.detectors == A.LASERS["red"] and d.change > 0.25
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    assert removed[drift].mean() > 0.8, removed[drift].mean()
    assert np.sum(removed & ~drift) < 1_000  # a few bins of ~210 events at the onset


# A gain that starts to move while a clog lasts: the windows skip the clog's bins, so
# a window just after the clog held the ramp's far side only, its median leaned up the
# ramp, and the run began right after the clog, 81-100 % of the events between the
# clog's end and the point where the gain is 10 % off removed (17-33 % now, where the
# gain is 1.07-1.1 off).
@pytest.mark.parametrize("seed", [8901, 8902])
def test_a_drift_that_starts_during_a_clog_is_removed_from_where_the_gain_is_off(seed):
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, 50_000)
    s = A.duration(sample)
    plan = A.AnomalyPlan(
        clogs=(A.Clog(0.3 * s, 2.0, 0.3, 0.4),),
        drifts=(A.Drift(0.3 * s + 0.3, -0.28, A.LASERS["blue"]),),
    )
    bad, truth = A.inject(sample, plan, np.random.default_rng(seed))
    qc = acquisition_qc(bad)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    clog, drift = truth.mask("clog"), truth.mask("drift")
    between = np.zeros_like(clog)
    between[np.flatnonzero(clog)[-1] + 1 : np.flatnonzero(drift)[0]] = True
    assert between.sum() > 5_000  # the gain is 1-10 % off there: not a drift event yet
    assert removed[between].mean() < 0.5, removed[between].mean()
    assert removed[drift].mean() > 0.99 and removed[clog].mean() > 0.99


# Short runs (10,000 events, ~4 s, ~50 bins) holding a clog, a bubble and a drift at once
# (the benchmark's ``--mixed`` recipe): the clog and the bubble's gap left out half of the
# bins, most of them before the drift's far part. Cut into thirds of the judged bins, the
# middle third held mostly drifted bins, the drift read as one early in the run that
# settles, and its broken line bent at the run's start: a creep, reported with nothing
# removed (201417, 201424: 6-8 % of the drift's events removed), or on the blue laser the
# run's undrifted start removed and the drift kept (202432: all of the 1,637 events before
# the drift that no anomaly touched removed, 36 % of the drift's). Cut into thirds of time,
# the drift leaves the start's level (`cytokit.qc.stability._late`).
@pytest.mark.parametrize("seed", [201417, 201424, 202432])
def test_a_drift_after_a_clog_and_a_bubble_in_a_short_run_is_removed(seed):
    _drift_removed_and_its_start_kept(*bench_file(seed, "mixed", events=10_000), 1_000)


def _drift_removed_and_its_start_kept(sample, truth, least_before: int) -> None:
    """QC on a file of the ``--mixed`` recipe removes over 95 % of its drift and under 5 %
    of the events before it that no anomaly touched (at least `least_before` of them), and
    names no trend on the drifting channel."""
    (d,) = truth.plan.drifts
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    seconds = sample.events[:, -1] * float(sample.keyword("$TIMESTEP"))
    before = (seconds < d.start) & ~truth.mask("clog") & ~truth.mask("bubble")
    assert before.sum() > least_before and drift.sum() > 3_000  # the truth the test is about
    assert removed[drift].mean() > 0.95, removed[drift].mean()
    assert removed[before].mean() < 0.05, removed[before].mean()
    assert not any(t.startswith(d.detectors[0]) for t in qc.trends), qc.trends


# A drift that starts while a clog lasts or as it ends, in a short run (10,000 events,
# ~50 bins): the clog's bins are left out, so the series held its level over the 4-7 judged
# bins before them only. Its broken line bent in the clog's gap or among those few bins, at
# 4-11 % of the run: below `CREEP_ONSET`, a creep with no steady part, and 5-15 % of the
# drift's events removed (201413, 202900); or, with a bubble's gap too and 2 judged bins in
# the middle third of the run's time, the line straight then flat fitted a hair better
# than flat then straight, the drift read as one that settles early, and the run's start
# was removed instead (201437). A level held up to a gap, where a line bending in it fits
# within `GAP_CHI2` of the best, is a drift's reference, and the early reading must fit
# better by `GAP_CHI2` (`_held_to_gap`, `_late`).
@pytest.mark.parametrize("seed", [201413, 202900, 201437])
def test_a_drift_that_starts_within_a_clog_or_as_it_ends_is_removed(seed):
    sample, truth = bench_file(seed, "mixed", events=10_000)
    (d,) = truth.plan.drifts
    (clog,) = truth.plan.clogs
    assert clog.start < d.start < clog.start + clog.drop + clog.burst + 0.05
    _drift_removed_and_its_start_kept(sample, truth, 500)


def test_a_drift_that_settles_early_is_read_so_across_a_gap():
    # 50 bins, the first 12 a ramp 0.35 down to the level held after them, bins 14-33 left
    # out (the middle third of the run's time holds none, so the broken lines decide): the
    # early reading fits far better than GAP_CHI2, and the level is the end's
    from cytokit.qc.settings import THRESHOLDS
    from cytokit.qc.stability import _drift_shape

    th = THRESHOLDS["normal"]
    x = np.arange(50)
    m = np.full(50, 200.0)
    use = np.ones(50, dtype=bool)
    use[14:34] = False
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y = np.where(x < 12, 6.0 + 0.35 * (12 - x) / 12, 6.0) + rng.normal(0, 0.07, 50)
        reference, _, _, late, _ = _drift_shape(y, m, use, 1.0, th)
        assert not late and reference == pytest.approx(6.0, abs=th.signal_shift), (seed, reference)


# A drift that reaches its change halfway through the rest of the run and holds it (the
# benchmark's drift with `Drift.end` set; 20,000 events): the broken line, flat then
# straight to the run's end, was fitted through the ramp and the held level after it, bent
# early and rose too slowly, so it left the level by the shift before the gain did: 1,452
# and 1,689 events removed before the gain was 10 % off (F1 0.939, 0.922). Where a line
# that holds after its ramp fits better by `STEP_CHI2`, the run starts where it is off.
@pytest.mark.parametrize("seed", [204501, 204515])
def test_a_drift_that_reaches_its_change_and_holds_it_starts_where_the_gain_is_off(seed):
    design = simulate.preset_design("sample", seed=seed, n_patients=4)
    rng = np.random.default_rng([seed, zlib.crc32(b"drift")])
    samples = design.samples()
    spec, day = samples[int(rng.integers(len(samples)))]
    sample, _ = simulate.simulate_sample(design, spec.id, day, 20_000)
    seconds = A.duration(sample)
    plan = A.random_plan(rng, seconds, kinds=("drift",))
    (d,) = plan.drifts
    held = dataclasses.replace(d, end=d.start + 0.5 * (seconds - d.start))
    sample, truth = A.inject(sample, dataclasses.replace(plan, drifts=(held,)), rng)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    assert drift.sum() > 5_000  # the truth the test is about
    assert removed[drift].mean() > 0.95, removed[drift].mean()
    assert np.sum(removed & ~drift) < 600, np.sum(removed & ~drift)


# A drift from a held start that reaches its change by the run's middle and holds it (from
# 20 % of a 20,000-event run to 45 %): the middle third sits with the last, as a warm-up that
# settles leaves it, and a straight line from the run's first bin, flat after, fit about as
# well as one that holds the start's level for a fifth of the run. The run read as a
# warm-up: its untouched start and the ramp's first part were removed, and 80-90 % of the
# drift kept (11 of 12 such files). Where a line that holds the start's level for at least
# `HELD_START` of the run before its ramp fits within `GAP_CHI2` of the settling one, the
# start is the level held.
@pytest.mark.parametrize(
    ("seed", "laser", "change"),
    [(205302, "red", 0.3), (205303, "blue", -0.3), (205304, "violet", 0.3)],
)
def test_a_drift_from_a_held_start_that_holds_its_change_by_mid_run_is_removed_not_the_start(
    seed, laser, change
):
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, 20_000)
    s = A.duration(sample)
    plan = A.AnomalyPlan(drifts=(A.Drift(0.2 * s, change, A.LASERS[laser], 0.45 * s),))
    sample, truth = A.inject(sample, plan, np.random.default_rng(seed))
    removed = (acquisition_qc(sample).reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    untouched = truth.gain == 1.0
    assert drift.mean() > 0.5 and untouched.mean() > 0.15  # the truth the test is about
    assert removed[drift].mean() > 0.95, removed[drift].mean()
    assert removed[untouched].mean() < 0.05, removed[untouched].mean()


# A clog's turn from slow flow to its burst can leave one bin of about the usual count
# between the rate's flagged bins, holding the clog's dimmed and off-centre events. Read for
# the signal, that bin (0.4 below its neighbours) bent the broken line of a drift that starts
# during the clog to the run's start: a creep, 18 % of the drift's events removed. A bin
# between two of the rate's flagged bins is not read for the signal's levels and windows.
def test_a_clogs_turn_between_its_flagged_bins_is_not_read_for_a_drift():
    sample, truth = bench_file(202410, "mixed", events=10_000)
    (d,) = truth.plan.drifts
    (clog,) = truth.plan.clogs
    assert clog.start < d.start < clog.start + clog.drop + clog.burst  # during the clog
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    assert removed[truth.mask("drift")].mean() > 0.95
    assert not any(t.startswith(d.detectors[0]) for t in qc.trends), qc.trends


# 5,000-event files (1.7 s, 25 bins). A drift was read only over 30 bins or more, so a
# red-laser gain 35-40 % up over the last half passed with nothing removed; a bubble's
# 0.8-0.9 s gap emptied 7 of 25 bins, more than the 25 % of a paused clock, and the rate
# and signal checks did not run. Now drifts are read over 15 bins or more (`DRIFT_BINS`)
# and a clock pauses when it empties more than 40 % of the bins (`MAX_EMPTY`).
@pytest.mark.parametrize(
    ("seed", "kind", "recall"),
    [(30504, "drift", 0.8), (30505, "drift", 0.9), (30502, "bubble", 0.95), (30516, "bubble", 0.9)],
)
def test_a_drift_or_a_long_bubble_in_a_5000_event_file_is_removed(seed, kind, recall):
    sample, truth = bench_file(seed, kind, events=5_000)
    qc = acquisition_qc(sample)
    assert qc.checks_run == ("rate", "signal", "margins"), qc.notes
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    want = truth.mask(kind)
    assert removed[want].mean() > recall, removed[want].mean()
    assert np.sum(removed & ~want) < 100


def test_a_drift_of_the_bright_cells_vouches_for_the_run_it_follows():
    # A drifting channel's run is kept only where its bright cells' level follows it
    # (`_not_gain`). That level was the median of the bins not yet flagged, which lies
    # partway along a drift the first round had not flagged in full: on a file holding a
    # clog, a bubble and a violet-laser drift (mixed benchmark, seed 30903) 84 bins of the
    # drift did not seem followed and 78 % of its events were kept. Where the bright
    # series drifts too, its level is where its drift started.
    from cytokit.qc.settings import THRESHOLDS
    from cytokit.qc.stability import _not_gain, _prepare

    th = THRESHOLDS["normal"]
    b = 200
    bins = np.arange(b)
    ramp = np.clip((bins - 40) / 159, 0, 1)  # the gain falls from bin 40 on
    rng = np.random.default_rng(3)
    mean = 6.0 - 0.4 * ramp + rng.normal(0, 0.005, b)
    bright = _prepare(mean, np.full(b, 0.05), np.full(b, 200), th, None)
    assert bright.drift == pytest.approx(6.0, abs=0.01)  # the level the drift left
    # the median of all bins lies along the drift: 0.1 below the start, where the run's
    # series (as far off as the bright cells) is 0.25 below
    assert np.median(mean) == pytest.approx(5.85, abs=0.01)
    run = (bins >= 100) & (bins < 180)
    dev = np.where(run, mean - 6.0, 0.0)
    assert not _not_gain(run, dev, bright, np.ones(b, dtype=bool)).any()
    # bright cells that hold their level while the run's series moves: a composition change
    flat = _prepare(6.0 + rng.normal(0, 0.005, b), np.full(b, 0.05), np.full(b, 200), th, None)
    assert flat.drift is None
    assert _not_gain(run, dev, flat, np.ones(b, dtype=bool))[run].all()


def test_the_broken_line_speaks_only_where_its_flat_part_holds_the_level():
    # The drift's run follows the broken line only where the line is off the level on its
    # sloped part; a line whose flat part is off the level too (a level read from few
    # bins, as in a short file with a clog set aside) would make the whole run a drift.
    from cytokit.qc.settings import THRESHOLDS
    from cytokit.qc.stability import _drift_start, _prepare

    th = THRESHOLDS["normal"]
    b = 60
    bins = np.arange(b)
    mean = 6.0 - 0.4 * np.clip((bins - 30) / 29, 0, 1)  # flat, then 0.4 down
    ser = _prepare(mean, np.full(b, 0.05), np.full(b, 200), th, None)
    first, last = _drift_start(ser, 6.0, th, near=b)
    # off by the shift (0.10) a quarter of the way down the ramp, at bin 37-38
    assert 36 <= first <= 39 and last == b - 1
    assert _drift_start(ser, 6.15, th, near=b) is None  # the flat part is 0.15 off


def naive_bright(events, columns, cofactors, tops, starts, stops, cap):
    """`bright_moments` spelled out bin by bin with `sample_rows`."""
    b, k = len(starts), len(columns)
    count = np.zeros((b, k), dtype=np.int64)
    mean = np.full((b, k), np.nan)
    sd = np.full((b, k), np.nan)
    for g, (a, z) in enumerate(zip(starts, stops, strict=True)):
        rows = sample_rows(a, z, cap)
        for j, c in enumerate(columns):
            v = events[rows, c].astype(np.float64)
            x = np.maximum(v[np.isfinite(v) & (v < tops[j])], 0.0)
            count[g, j] = x.size
            if x.sum() > 0:
                cm = np.sum(x * x) / np.sum(x)
                mean[g, j] = np.arcsinh(cm / cofactors[j])
                s = np.sqrt(np.mean(x * x * (x - cm) ** 2)) / np.mean(x)
                sd[g, j] = s / np.sqrt(cm * cm + cofactors[j] ** 2)
    return count, mean, sd


def test_bright_moments_match_a_naive_reference_and_follow_a_gain_exactly():
    rng = np.random.default_rng(16)
    n = 5_000
    # a dim majority, a bright minority (5 %), negatives, saturated and missing values
    ev = rng.normal(300.0, 200.0, (n, 3))
    bright = rng.random(n) < 0.05
    ev[bright] = rng.lognormal(np.log(40_000.0), 0.1, (int(bright.sum()), 3))
    ev[rng.random(n) < 0.01, 1] = 262_143.0
    ev[rng.random(n) < 0.01, 2] = np.nan
    ev = ev.astype(np.float32)
    starts = np.array([0, 100, 100, 700, 1_300])
    stops = np.array([100, 100, 700, 1_300, 5_000])  # an empty bin; bins of 600 > cap
    cols, cof, tops = [0, 1, 2], np.array([150.0, 150.0, 150.0]), np.array([262_142.7] * 3)
    got = bright_moments(ev, cols, cof, tops, starts, stops, 256)
    want = naive_bright(ev, cols, cof, tops, starts, stops, 256)
    np.testing.assert_array_equal(got[0], want[0])
    for g, w in zip(got[1:], want[1:], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, equal_nan=True)
    assert np.all(got[0][1] == 0) and np.all(np.isnan(got[1][1]))
    # a gain of 1.2 on the bright cells' level: asinh(1.2 C / c) - asinh(C / c) ~ ln 1.2
    scaled = bright_moments(ev * np.float32(1.2), cols, cof, tops * 1.2, starts, stops, 256)
    shift = (scaled[1] - got[1])[[0, 2, 3, 4]]
    np.testing.assert_allclose(shift, np.log(1.2), atol=2e-4)


# --- a signal that creeps over the whole run -----------------------------------------------------


@pytest.mark.parametrize(("seed", "change"), [(8801, 0.40), (8802, -0.35)])
def test_a_creep_over_the_whole_run_is_reported_not_removed(seed, change):
    # no part of the run holds a level to tell a departure from: removing the part that
    # left the first bins' level would throw most of the file away for a gentle slope
    sample, truth = drifted(seed, change, 0.0)
    assert truth.mask("drift").mean() > 0.6  # most events are > 10 % off the start's gain
    qc = acquisition_qc(sample)
    assert np.mean((qc.reasons & SIGNAL) != 0) < 0.01
    assert qc.verdict == "warn"
    said = [t for t in qc.trends if "creeps" in t]
    assert said and all(t.split(":")[0] in A.LASERS["red"] for t in said), qc.trends
    sign = "+" if change > 0 else "-"
    assert all(f"creeps {sign}" in t for t in said), said
    assert all("check the instrument" in t for t in said), said  # the gain moved


def _held_ramps(bins, start, end, change, sd, seeds=20):
    """(seed, `_drift_shape` of it) for series at 5.0 up to `start` (a share of the run), then
    a ramp by `change` up to `end`, held after; noise `sd` a bin of 200 values."""
    from cytokit.qc.stability import _drift_shape

    x = (np.arange(bins) + 0.5) / bins
    m, use = np.full(bins, 200.0), np.ones(bins, dtype=bool)
    for seed in range(seeds):
        y = 5.0 + change * np.clip((x - start) / (end - start), 0.0, 1.0)
        y += np.random.default_rng(seed).normal(0.0, sd, bins)
        yield seed, _drift_shape(y, m, use, sd * np.sqrt(200), THRESHOLDS["normal"])


def test_a_drift_from_a_held_start_that_holds_its_change_is_no_creep():
    # 120 bins at a level up to 34 % of the run, a ramp 0.33 down by 54 %, held to the end:
    # the line flat and then straight to the run's end bent before `CREEP_ONSET` to pass
    # between the ramp and the level after it, and 6 of these 20 series read as a creep
    # (nothing removed); a line that holds the start's level, ramps and holds its change
    # fits them far better. Creeps stay creeps: a straight one and one that slows down,
    # which a line holding the start's level for `CREEP_ONSET` fits no better than a ramp
    # from the first bins does.
    from cytokit.qc.stability import _drift_shape

    th = THRESHOLDS["normal"]
    for seed, (reference, creep, _, late, _) in _held_ramps(120, 0.34, 0.54, -0.33, 0.1):
        assert np.isnan(creep) and late, seed
        assert reference == pytest.approx(5.0, abs=th.signal_shift / 2), seed
    for bins, slows in ((120, False), (240, True)):
        t = (np.arange(bins) + 0.5) / bins
        shape = np.log1p(5 * t) / np.log(6) if slows else t
        for seed in range(30):
            y = 5.0 + 0.4 * shape + np.random.default_rng(seed).normal(0.0, 0.03, bins)
            noise = 0.03 * np.sqrt(200)
            got = _drift_shape(y, np.full(bins, 200.0), np.ones(bins, dtype=bool), noise, th)
            assert got[0] is None and got[1] > 0.2, (bins, seed)


def test_a_ramp_from_a_held_start_is_no_step():
    # a ramp 0.33 down from 21 % to 36 % of the run, held after (240 bins): the thirds read
    # it as early, and two levels split at the ramp's middle beat the settling line, so 12 of
    # these 20 read as a step there, their run starting halfway down the ramp; the line that
    # holds the start, ramps and holds fits about as well as the step, and is the reading
    th = THRESHOLDS["normal"]
    for seed, (reference, creep, _, late, step) in _held_ramps(240, 0.21, 0.36, -0.33, 0.12):
        assert step == -1 and late and np.isnan(creep), seed
        assert reference == pytest.approx(5.0, abs=th.signal_shift / 2), seed


def test_a_brief_held_start_that_fits_clearly_better_is_no_warm_up():
    # held for a tenth of the run only, then a ramp of 0.3 to 30 % (240 bins, noise 0.05 a
    # bin): shorter than `HELD_START`, so 15 of these 20 read as a warm-up settling at the
    # ramp's end, the start removed and the drift kept; where a line that holds the start
    # for `HELD_BRIEF` of the run fits better than the settling line by `STEP_CHI2`, the
    # start is the level. Warm-ups that settle from the first bin stay warm-ups.
    from cytokit.qc.stability import _drift_shape

    th = THRESHOLDS["normal"]
    for seed, (reference, _, _, late, _) in _held_ramps(240, 0.1, 0.3, 0.3, 0.05):
        assert late and reference == pytest.approx(5.0, abs=th.signal_shift / 2), seed
    x = (np.arange(240) + 0.5) / 240
    for sd in (0.03, 0.1):
        for seed in range(30):
            y = 5.0 + 0.4 * np.clip(1 - x / 0.35, 0.0, 1.0)
            y += np.random.default_rng(seed).normal(0.0, sd, 240)
            got = _drift_shape(y, np.full(240, 200.0), np.ones(240, bool), sd * np.sqrt(200), th)
            assert not got[3] and got[0] == pytest.approx(5.0, abs=th.signal_shift), (sd, seed)


@pytest.mark.parametrize("start", [0.25, 0.3])
def test_a_drift_after_a_held_start_is_still_removed(start):
    # the boundary: a quarter of the run at the start's level is a level to depart from
    sample, truth = drifted(8803, -0.4, start)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    drift = truth.mask("drift")
    assert removed[drift].mean() > 0.9, removed[drift].mean()
    assert not any("creeps" in t for t in qc.trends)


def test_drift_onset_finds_where_the_level_stops_holding():
    rng = np.random.default_rng(5)
    x = np.linspace(0.0, 1.0, 300)
    m = np.full(300, 200.0)
    use = np.ones(300, dtype=bool)
    noise = rng.normal(0.0, 0.01, 300)
    late = np.where(x < 0.4, 2.0, 2.0 + 0.5 * (x - 0.4)) + noise
    assert drift_onset(late, m, use) == pytest.approx(0.4, abs=0.03)
    creep = 2.0 + 0.3 * x + noise
    assert drift_onset(creep, m, use) < 0.05
    settles = np.where(x < 0.3, 2.0 - (0.3 - x), 2.0) + noise  # warms up, then holds
    assert drift_onset(settles, m, use, late=False) == pytest.approx(0.7, abs=0.03)


# --- a change in how many cells are bright is not a change of gain ----------------------------------


def test_a_clean_file_whose_bright_share_wanders_passes():
    # the benchmark's clean file of seed 16077: T cells (APC-A CD3 bright) are 9.3 % of the
    # first 20,000 events and 10.4 % of the rest by chance (iid labels); the upper-half means
    # of APC-A, PE-A, FITC-A and APC-H7-A followed the share (-9 to -18 %), the brightest
    # cells' level did not move, and the first half (49 % of the file) was removed as a drift
    sample, _ = bench_file(16077, "clean")
    qc = acquisition_qc(sample)
    assert np.count_nonzero(qc.reasons & SIGNAL) < 500  # was 24,417
    assert qc.verdict == "pass", qc.verdict_reason


# T cells three times denser in the first half of the run (settling): before the bright
# cells' level was consulted, 83 % and 92 % of these files were removed and both failed
@pytest.mark.parametrize("seed", [8811, 8813])
def test_t_cells_arriving_unevenly_are_not_a_signal_change(seed):
    from cytokit.simulate.timing import Enrichment

    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    clean, _ = simulate.simulate_sample(design, spec.id, day, N_EVENTS)
    seconds = A.duration(clean)
    dense = Enrichment(("T",), window=(0.0, 0.5 * seconds), factor=3.0)
    sample, _ = simulate.simulate_sample(design, spec.id, day, N_EVENTS, timing=dense)
    qc = acquisition_qc(sample)
    assert np.mean((qc.reasons & SIGNAL) != 0) < 0.01, qc.verdict_reason
    assert qc.verdict != "fail"
    # a trend it names is put down to the cells, not to the instrument
    assert all("not the detector's gain" in t for t in qc.trends), qc.trends
    # the same file with the gain of the red laser down 30 % in its second half still is
    plan = A.AnomalyPlan(drifts=(A.Drift(0.5 * seconds, -0.3, A.LASERS["red"], 0.55 * seconds),))
    dimmed, truth = A.inject(sample, plan, np.random.default_rng(seed))
    qc = acquisition_qc(dimmed)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    assert removed[truth.mask("drift")].mean() > 0.9


def mix_changed(seed: int, population: str, factor: float, span, n: int = 5_000):
    """A clean simulated file in which `population` holds `factor` times its share over
    `span` (shares of the run): events of the rest swapped for its own (or its own for
    the rest's) from outside the span, their times kept. The cells change, no detector."""
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, truth = simulate.simulate_sample(design, spec.id, day, n)
    label = np.asarray(truth.label)
    pop = list(truth.label_names).index(population)
    rng = np.random.default_rng(seed)
    inside = np.arange(int(span[0] * n), int(span[1] * n))
    outside = np.setdiff1d(np.arange(n), inside)
    mine = label[inside] == pop
    share = mine.mean()
    want = min(share * factor, 0.9)
    if want > share:
        k, to, source = want - share, inside[~mine], outside[label[outside] == pop]
    else:
        k, to, source = share - want, inside[mine], outside[label[outside] != pop]
    to = rng.choice(to, size=int(k * inside.size), replace=False)
    source = rng.choice(source, size=to.size, replace=True)
    cols = [i for i, c in enumerate(sample.channels) if c.name != "Time"]
    values = sample.events.copy()
    values[np.ix_(to, cols)] = sample.events[np.ix_(source, cols)]
    sample.events = values
    return sample


MIXES = [
    # 5,000-event files (23 bins) whose granulocytes or beads change their share for a while:
    # the stretch's bins departed one by one (then left out of the windows as spikes), or a
    # channel flagged one or two bins beside another's stretch, and the change-of-mix reading
    # passed over both; 17-25 % of the events were removed (three of these files failed).
    # Read as one stretch, their values lie where the rest's do
    *(
        pytest.param(seed, population, factor, span, 5_000, id=f"bin-by-bin-{seed}-{population}")
        for seed, population, factor, span in [
            (3, "granulocyte", 0.4, (0.18, 0.42)), (15, "granulocyte", 0.4, (0.46, 0.64)),
            (7, "bead", 2.5, (0.59, 0.75)), (13, "bead", 2.5, (0.16, 0.43)),
        ]
    ),
    # beads 2.5 times denser over 12-35 % of a 20,000-event run: the bins before the best
    # split (at the change's end) were mostly the change's, their median was read as the
    # level the run started at, and every other bin was removed (100 %, failed); in 4 the
    # first sixth of the run sat within the shift of that median, but nearer the step's level
    *(
        pytest.param(seed, "bead", 2.5, (0.12, 0.35), 20_000, id=f"early-{seed}-bead")
        for seed in (4, 11, 14)
    ),
    # granulocytes 2.5 times their share for a quarter of the run: dimmer than the
    # lymphocytes on HLA-A2, CD8, CD45, they slide those channels' positive values down as a
    # dimmer gain would, and the slopes read a gain; 20-30 % of the events were removed and
    # the files failed. Within cells of like scatter the values stayed where they were
    *(
        pytest.param(seed, "granulocyte", 2.5, span, n, id=f"scatter-{seed}-{n}")
        for seed, span, n in [
            (2, (0.15, 0.39), 5_000), (13, (0.15, 0.39), 5_000),
            (1, (0.12, 0.35), 20_000), (15, (0.12, 0.35), 20_000),
        ]
    ),
]  # fmt: skip


@pytest.mark.parametrize(("seed", "population", "factor", "span", "n"), MIXES)
def test_a_change_of_mix_is_kept(seed, population, factor, span, n):
    qc = acquisition_qc(mix_changed(seed, population, factor, span, n))
    assert np.mean((qc.reasons & SIGNAL) != 0) < 0.02, qc.verdict_reason
    assert qc.verdict != "fail"


def test_a_change_of_mix_is_read_within_scatter_whatever_the_scatter_is_named():
    # Beckman Coulter names its scatter FS INT and SS INT; read only as FSC and SSC, this
    # file's granulocyte stretch was removed (28 % of the events)
    sample = mix_changed(1, "granulocyte", 2.5, (0.12, 0.35), 20_000)
    names = {"FSC-A": "FS INT", "FSC-H": "FS PEAK", "SSC-A": "SS INT"}
    sample.channels = tuple(
        dataclasses.replace(c, name=names.get(c.name, c.name)) for c in sample.channels
    )
    qc = acquisition_qc(sample)
    assert "FS INT" in qc.bins.channels
    assert np.mean((qc.reasons & SIGNAL) != 0) < 0.02, qc.verdict_reason
    assert qc.verdict != "fail"
    # a forward-scatter area that reads one value (a dead detector) is passed over: the
    # height stands in (read on the dead area alone, the stretch was removed)
    dead = sample.events.copy()
    dead[:, [c.name for c in sample.channels].index("FS INT")] = 1000.0
    qc = acquisition_qc(dataclasses.replace(sample, events=dead))
    assert np.mean((qc.reasons & SIGNAL) != 0) < 0.02, qc.verdict_reason
    # without scatter there are no cells to read within, and QC still runs
    qc = acquisition_qc(sample, AcquisitionQCSettings(exclude_channels=tuple(names.values())))
    assert not {"FS INT", "SS INT"} & set(qc.bins.channels) and qc.verdict in VERDICTS


def test_a_laser_drift_that_moves_the_scatter_is_removed_whole():
    # a blue-laser drift (scatter and four fluorescence channels, gain 1.27 at the end):
    # the scatter moved with the gain, so within cells of like scatter the fluorescence
    # values seemed to stay, and read so 217 of its events were kept. The scatter's own
    # move says those cells are not the reference's
    sample, truth = bench_file(201038, "drift", 20_000)
    assert truth.plan.drifts[0].detectors == A.LASERS["blue"]
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    assert removed[truth.mask("drift")].mean() > 0.99


def test_a_clog_does_not_carry_the_stretch_after_it():
    # the benchmark's clog file of seed 18009: after the clog (events 33,767-39,956) the
    # upper-half means ran a little low for 3 s while the brightest cells stayed put; the
    # clog's dimmed bins, which do move the bright level, vouched for that stretch, and
    # 8,654 events beyond the clog were removed (the file failed)
    sample, truth = bench_file(18009, "clog")
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    clog = truth.mask("clog")
    assert removed[clog].mean() > 0.95
    assert np.count_nonzero(removed & ~clog) < 500
    assert qc.verdict != "fail"


def test_a_trend_within_the_cells_chance_wander_is_not_named():
    """A small clean file's thirds hold ~3,300 events each, and a population's share in
    them wanders by chance: on 3 of 200 clean 10,000-event files a channel's mean moved
    20-25 % from the first third to the last, 2.5-2.8 noise SDs, and the verdict warned
    of a trend. A trend is now named only beyond `signal_z` SDs as well; a gain drift
    is 6-40 SDs at 50,000 events (here one the check removes, so the trend of the bins
    kept, which QC names, is gone)."""
    for seed in (22116, 22151, 22161):
        sample, _ = bench_file(seed, "clean", 10_000)
        qc = acquisition_qc(sample)
        assert qc.verdict == "pass" and not qc.trends, qc.trends
    sample, truth = bench_file(19002)
    qc = acquisition_qc(sample)
    assert qc.removed_by["signal"] > 0.9 * truth.mask("drift").sum() and not qc.trends
    b, th = qc.bins, THRESHOLDS["normal"]
    j = b.channels.index(truth.plan.drifts[0].detectors[0])
    every = np.ones(b.counts.shape[0], dtype=bool)
    assert trend_z(b.mean[:, j, 0], b.sd[:, j, 0], b.values[:, j], every, th) > th.signal_z


# The benchmark's clog files with their times evened out (one event every 1/3,000 s): the
# clog is then a step of the signal with no change of rate. The windows beside the step
# hold part of it, their medians lean its way, and the run grew 15-25 bins past each side
# (3,792 and 5,962 good events removed); the run's edges are now placed where the bin means
# split best into bins at the level and bins at the run's own level.
@pytest.mark.parametrize("seed", [98409, 98411])
def test_a_signal_step_without_a_rate_change_is_cut_at_the_step(seed):
    sample, truth = bench_file(seed, "clog")
    t = [c.name for c in sample.channels].index("Time")
    ev = sample.events
    ev[:, t] = np.round(np.linspace(ev[0, t], ev[-1, t], ev.shape[0]), 2)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    clog = truth.mask("clog")
    assert removed[clog].mean() > 0.98
    assert np.count_nonzero(removed & ~clog) < 1000


def blocked(seed: int, channel: str, gain: float, n: int = 20_000, span=(0.45, 0.75)):
    """A file whose `channel` read `gain` times its values from 45 % to 75 % of the run
    (`span`), then as before (a gain changed for a while and restored), and the events it
    touched."""
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, n)
    block = np.zeros(n, dtype=bool)
    block[int(span[0] * n) : int(span[1] * n)] = True
    ev = sample.events.copy()
    ev[block, [c.name for c in sample.channels].index(channel)] *= gain
    sample.events = ev
    return sample, block


def removed_in_and_out(seed: int, channel: str, gain: float, span=(0.45, 0.75), n=20_000):
    """(share of the block's events, share of the others) that QC removes (`blocked`)."""
    sample, block = blocked(seed, channel, gain, n=n, span=span)
    removed = (acquisition_qc(sample).reasons & (RATE | SIGNAL)) != 0
    return float(removed[block].mean()), float(removed[~block].mean())


# each was kept whole before the bright cells' level judged a channel that does not drift
@pytest.mark.parametrize(
    ("seed", "channel", "gain"),
    [(172501, "PE-A", 1.35), (172502, "FITC-A", 1.35), (172502, "APC-A", 0.7),
     (172503, "APC-A", 0.7), (172502, "PerCP-Cy5-5-A", 1.35)],
)  # fmt: skip
def test_a_gain_changed_for_a_while_and_restored_is_removed(seed, channel, gain):
    inside, outside = removed_in_and_out(seed, channel, gain)
    assert inside > 0.95, inside
    assert outside < 0.1, outside


LATE = (0.54, 0.82)
BLOCKS = [
    # a block from 54 % to 82 % of the run leaves the last third's median off the first's, as
    # a drift to the end (or a creep over the run) would, while the last sixth is back at the
    # level: read as a drift, the block went unremoved (172707, 172705) or a third of it kept
    # (172703); read as a creep, unremoved (172704, 172708). A drift or a creep is now off at
    # its far end, and this is a gain changed for a while and restored
    *(
        pytest.param(seed, channel, gain, LATE, 0.05, id=f"far-end-{seed}-{channel}")
        for seed, channel, gain in [
            (172707, "PerCP-Cy5-5-A", 0.77), (172705, "PE-A", 1.3), (172703, "FITC-A", 0.77),
            (172704, "FITC-A", 0.77), (172708, "PE-A", 1.3),
        ]
    ),
    # the same blocks, where the mean of all values (or of the upper half) still reads as an
    # early drift that settles (the block lifts the middle and last thirds alike) and leads
    # the channel; the lead's windows find nothing there, and the bright cells' level, which
    # shows the block at 6.6-19 of its bin SDs, was never read. It now judges a stretch off
    # its level in a channel that another series leads (one that overlaps the lead's run is
    # the drift's own)
    *(
        pytest.param(seed, channel, gain, LATE, 0.05, id=f"settling-{seed}-{channel}")
        for seed, channel, gain in [
            (172702, "PE-A", 1.3), (172703, "PerCP-Cy5-5-A", 0.77), (172704, "PE-A", 1.3),
            (172706, "PerCP-Cy5-5-A", 0.77), (172706, "FITC-A", 0.77),
        ]
    ),
    # a block over a fifth of the run that starts after a tenth of it: the first third's
    # median lies in the block, so the run read as a drift from the block's level (or a step
    # from it) to the end, and QC removed 78-87 % of the events outside the block and kept
    # the block. The run's first and last sixths sit at one level: it came back, and the
    # block is what departs
    *(
        pytest.param(seed, channel, gain, span, 0.07, id=f"early-{seed}-{channel}")
        for seed, channel, gain, span in [
            (200203, "PE-Cy7-A", 0.74, (0.111, 0.237)), (200208, "FITC-A", 1.395, (0.155, 0.452)),
            (200210, "V500-C-A", 1.271, (0.135, 0.313)),
            (200229, "V500-C-A", 1.255, (0.164, 0.396)), (200239, "APC-A", 0.739, (0.143, 0.349)),
        ]
    ),
    # a block of 10-17 % of the run that the bright cells' level shows at 5-27 of its bin SDs
    # was kept as a change in the mix of bright populations: the upper half's mean did not
    # follow it by a third as much. Over 10-15 bins that mean's median has an SD of about a
    # third of the move (200212, 200220, 200228, 200232); in 200219 its level was read in the
    # block itself, where that series read as a step from the block's level to the rest
    *(
        pytest.param(seed, channel, gain, span, 0.05, id=f"short-{seed}-{channel}")
        for seed, channel, gain, span in [
            (200212, "FITC-A", 1.348, (0.661, 0.763)), (200219, "APC-H7-A", 0.762, (0.151, 0.32)),
            (200220, "APC-A", 0.793, (0.510, 0.656)), (200228, "PE-A", 0.763, (0.373, 0.528)),
            (200232, "FITC-A", 0.758, (0.459, 0.599)),
        ]
    ),
    # a block from 11 % to 39 % of the run, or from 66 % to 94 %: its bins and the noise of
    # the run's end sixths made the thirds read a drift to the end from the block's level (or
    # one from the start's level that the block begins), and 26.8 % (10.7 %) of the other
    # events went. One level inside the block and one outside it, on both sides, fits the
    # series better than the drift's line by far: the run came back (`_block_fits`)
    *(
        pytest.param(seed, channel, gain, span, 0.05, id=f"back-{seed}-{channel}")
        for seed, channel, gain, span in [
            (203161, "V500-C-A", 0.72896, (0.10853, 0.39327)),
            (203200, "PE-A", 1.37536, (0.65569, 0.94057)),
        ]
    ),
]  # fmt: skip


@pytest.mark.parametrize(("seed", "channel", "gain", "span", "spill"), BLOCKS)
def test_a_gain_changed_for_a_while_is_removed_and_little_else(seed, channel, gain, span, spill):
    inside, outside = removed_in_and_out(seed, channel, gain, span=span)
    assert inside > 0.95, inside
    assert outside < spill, outside


# a 10,000-event file has 45-50 bins: below 50 the bright cells' level judged drifts only,
# and each of these blocks (10-24 % of the run, gain 0.71-1.26) was kept whole, as were 45 of
# 60 such files of `bench_acquisition_qc.py --blocks --events 10000`; now 2 of 60
@pytest.mark.parametrize(
    ("seed", "channel", "gain", "span"),
    [(204902, "APC-A", 0.70633, (0.42959, 0.53184)), (204913, "FITC-A", 0.7701, (0.48777, 0.72373)),
     (204917, "PE-A", 1.2604, (0.49897, 0.70225))],
)  # fmt: skip
def test_a_gain_changed_for_a_while_in_a_10000_event_file_is_removed(seed, channel, gain, span):
    inside, outside = removed_in_and_out(seed, channel, gain, span=span, n=10_000)
    assert inside > 0.95, inside
    assert outside < 0.05, outside


def steady_series(b: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sd) of `check_stability` for one channel of `b` bins whose three series
    sit at their levels (2, 4, 6 asinh), bin means drawn with the noise of 200, 75 and 200
    values."""
    rng = np.random.default_rng(7)
    count = np.empty((b, 1, 3), dtype=np.int64)
    count[:, 0] = (200, 75, 200)
    sd = np.empty((b, 1, 3))
    sd[:, 0] = (1.0, 1.5, 1.0)
    mean = np.empty((b, 1, 3))
    for p, level in enumerate((2.0, 4.0, 6.0)):
        mean[:, 0, p] = level + rng.normal(0.0, sd[0, 0, p] / np.sqrt(count[0, 0, p]), b)
    return count, mean, sd


def flagged_bins(off_all: slice, off_bright: slice, b: int = 100) -> np.ndarray:
    """Bins `check_stability` flags in one channel whose mean of all values and upper half sit
    0.3 (asinh) off their level over `off_all`, its bright cells' level over `off_bright`
    (`steady_series` otherwise)."""
    count, mean, sd = steady_series(b)
    mean[off_all, 0, :2] += 0.3
    mean[off_bright, 0, 2] += 0.3
    return np.flatnonzero(check_stability(count, mean, sd, THRESHOLDS["normal"]).channel_flagged)


def test_the_bright_cells_place_a_stretchs_edge_but_not_at_the_runs_start():
    # the other series' stretch starts three bins before the bright cells' step: it starts
    # at the bin next to the step (the step may fall within it), not at 40
    assert flagged_bins(slice(40, 56), slice(43, 53))[0] == 42
    # a stretch at the run's start has no level before it: its first bins stay flagged where
    # the bright cells' level sits at the level there (a noisy bright series; an outside
    # file's warm-up lost its first 3 bins, 515 drifted events, that way)
    assert flagged_bins(slice(0, 12), slice(3, 12))[0] == 0


def leaning_block(block: slice, lean: slice, b: int = 100) -> np.ndarray:
    """Bins `check_stability` flags in one channel whose three series sit 0.3 (asinh) below
    their level over `block`, and whose mean of all values and upper half sit 0.08 below it
    over `lean` too (a chance lean within the shift; `steady_series` otherwise)."""
    count, mean, sd = steady_series(b)
    mean[block, 0, :] -= 0.3
    mean[lean, 0, :2] -= 0.08
    return np.flatnonzero(check_stability(count, mean, sd, THRESHOLDS["normal"]).channel_flagged)


def test_a_block_grown_to_the_runs_start_or_end_is_cut_where_a_window_lies_at_the_level():
    # the windows of the upper half, leaning a little below its level before a block from
    # the 14th bin (or after one to the 86th), held the block and grew its run to the run's
    # start (end); the bright cells' level, which sits at its level there, did not cut it, as
    # there is no level beside a run's start. Where the bins it leaves at the level fill a
    # 9-bin window, it now does (an outside 50,000-event file lost the 28 bins before such a
    # block, 15 % of its other events)
    assert leaning_block(slice(14, 45), slice(0, 14))[0] >= 12
    assert leaning_block(slice(55, 86), slice(86, 100))[-1] <= 87


def stepped(seed: int, channel: str, gain: float, at: float, n: int = 20_000):
    """A file whose `channel` reads `gain` times its values from `at` (share of the events)
    to the end (a laser's power changed and stayed), and the events it touched."""
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, n)
    step = np.zeros(n, dtype=bool)
    step[int(at * n) :] = True
    ev = sample.events.copy()
    ev[step, [c.name for c in sample.channels].index(channel)] *= gain
    sample.events = ev
    return sample, step


# a step before the middle of the run leaves the middle third with the last, as an early
# drift that settles does: each was read as one, and the start removed, the step kept; the
# removal starts at the step
@pytest.mark.parametrize(
    ("seed", "channel", "gain", "at"),
    [(172601, "SSC-A", 1.2, 0.3), (172602, "SSC-A", 1.2, 0.4), (172603, "PE-A", 0.75, 0.35),
     (172604, "APC-A", 1.3, 0.25), (172605, "FSC-A", 0.75, 0.4)],
)  # fmt: skip
def test_a_gain_stepped_before_mid_run_and_held_is_removed_not_the_start(seed, channel, gain, at):
    sample, step = stepped(seed, channel, gain, at)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    assert removed[step].mean() > 0.95, (removed[step].mean(), qc.verdict_reason)
    # from the step on, not where a window or a line through it leans before it (4-18 %
    # of the events before the step went with it)
    assert removed[~step].mean() < 0.03, (removed[~step].mean(), qc.verdict_reason)
