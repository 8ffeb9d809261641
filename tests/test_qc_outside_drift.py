"""A gain drift on one detector to the end of the run, in files written apart from the simulator.

An audit with its own generator (lognormal populations, a marker positive on
a share of the cells, Poisson arrivals, one channel's gain ramping by 20-40 %
over the last 30-50 % of a 20,000-60,000-event run) found 8 of 60 such
files passed with nothing removed: where the ramp runs to the end of the
run, the longest window (81 bins) that judges a drift is cut by the end
and holds as much of the level as of the ramp, and its median stayed
under ``signal_z``; and the brightest cells' level, which must follow a
drift another series sees (`cytokit.qc.stability._not_gain`), was read
against a level that the drift's own bins, not yet flagged, had pulled its
way. The broken line through the drifting series now judges such a drift
by its fitted end (`_line_drift`), and the bright level is read from the
bins outside the stretch. A ramp over less than the last third of the run
was no drift by the run's thirds (18 of 60 further files, gains 20-30 %
off at the end of ramps over the last 25-34 %, passed; 14 still do): a
series whose end sixth is off the other end's third is now judged by its
line too (`_end_series`, `_end_line`).
"""

from __future__ import annotations

import numpy as np
import pytest

from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.sample import Channel, Sample

TOP = 262_144
STEP = 0.01
NAMES = ("FITC-A", "PE-A", "PerCP-Cy5-5-A", "APC-A", "BV421-A")


# scatter of each kind of cell: (mean, SD) of lymphocytes, monocytes and granulocytes, then
# the debris' lognormal (median, sigma)
FSC = ((55e3, 7e3), (95e3, 11e3), (115e3, 14e3), (9e3, 0.6))
SSC = ((16e3, 4e3), (50e3, 9e3), (125e3, 22e3), (4e3, 0.8))


def scatter(rng, kind, params):
    """One scatter value per event of `kind` (0-2 cells, 3 debris) from `params`."""
    n = kind.size
    *cells, (median, sigma) = params
    draws = [rng.normal(mean, sd, n) for mean, sd in cells]
    return np.choose(kind, [*draws, rng.lognormal(np.log(median), sigma, n)])


def outside_file(seed: int, n: int, channel: int, change: float, span: float, rate=800.0):
    """Lymphocytes, monocytes, granulocytes and debris in scatter; five markers, each
    lognormal negatives (median 80-400, electronic noise SD 40) and positive on a random
    share of some kinds of cell (median 1,500-40,000); events at `rate` a second. The
    gain of marker `channel` ramps to ``1 + change`` over the last `span` of the run.
    (sample, the gain of each event)"""
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, size=n, p=[0.35, 0.08, 0.47, 0.10])
    fsc = scatter(rng, kind, FSC)
    ssc = scatter(rng, kind, SSC)
    marks = []
    for _ in NAMES:
        v = rng.lognormal(np.log(rng.uniform(80, 400)), 0.7, n)
        for k, share in enumerate(rng.uniform(0.0, 0.6, 4) * (rng.random(4) < 0.65)):
            pos = (kind == k) & (rng.random(n) < share)
            median = np.exp(rng.uniform(np.log(1500), np.log(40000)))
            v[pos] = rng.lognormal(np.log(median), rng.uniform(0.3, 0.6), int(pos.sum()))
        v[kind == 2] *= rng.uniform(1.2, 2.5)  # granulocytes' autofluorescence
        marks.append(v + rng.normal(0, 40, n))
    t = np.cumsum(rng.exponential(1 / rate, n))
    start = (1 - span) * t[-1]
    gain = 1 + change * np.clip((t - start) / (t[-1] - start), 0, 1)
    marks[channel] = marks[channel] * gain
    ev = np.column_stack([np.floor(t / STEP), fsc, ssc, *marks]).astype(np.float32)
    ev[:, 1:] = np.minimum(ev[:, 1:], TOP - 1)
    channels = (
        Channel(0, "Time", range=2**24),
        Channel(1, "FSC-A", range=TOP),
        Channel(2, "SSC-A", range=TOP),
        *(Channel(3 + j, name, range=TOP) for j, name in enumerate(NAMES)),
    )
    return Sample(ev, channels, keywords={"$TIMESTEP": str(STEP)}, scaled=True), gain


# (seed, events, marker, change, span): the first three passed with nothing removed before
# the broken line judged a drift to the run's end; the next two, ramps over less than the
# last third, were no drift by the run's thirds and passed until the end sixth was read;
# the last, a ramp over the last 90 %, passed while the mean of all values, steadiest but
# diluted by the negative cells, read a creep too faint to name and led the channel, until
# the bright cells' held level led it instead
CASES = [
    (194018, 52_626, 4, 0.318, 0.40),
    (194733, 20_114, 1, 0.257, 0.35),
    (194736, 20_792, 2, 0.337, 0.37),
    (194001, 38_524, 4, -0.296, 0.34),
    (194009, 35_517, 3, 0.333, 0.34),
    (195205, 31_594, 3, -0.294, 0.266),
    (195241, 34_554, 1, 0.212, 0.299),
    (207483, 39_696, 2, -0.26, 0.9),
]


@pytest.mark.parametrize(("seed", "n", "channel", "change", "span"), CASES)
def test_a_gain_drift_to_the_end_of_the_run_is_removed(seed, n, channel, change, span):
    sample, gain = outside_file(seed, n, channel, change, span)
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    # the part of the ramp whose gain is well past the 10 % QC removes from goes, and the
    # run before the ramp stays
    assert removed[np.abs(gain - 1) >= 0.15].mean() > 0.9, qc.ranges_frame()
    assert removed[gain == 1].mean() < 0.005
    assert qc.verdict != "pass"
    assert NAMES[channel] in " ".join(qc.ranges_frame()["detail"])


def test_the_same_files_without_the_drift_keep_their_events():
    for seed, n, channel, _, span in CASES:
        sample, _ = outside_file(seed, n, channel, 0.0, span)
        qc = acquisition_qc(sample)
        assert ((qc.reasons & (RATE | SIGNAL)) != 0).mean() < 0.005, (seed, qc.ranges_frame())
        assert qc.verdict == "pass"


def test_the_bright_level_a_drift_must_move_is_read_outside_the_drift():
    # A stretch over the last 60 % of the run that the round before did not flag: the
    # brightest cells follow it by 0.095, more than half the run's 0.16 (and less than
    # the shift, so that they do not read as a drift of their own), but the median of all
    # the bins lies among the stretch's and they seemed not to move at all.
    from cytokit.qc.settings import THRESHOLDS
    from cytokit.qc.stability import _not_gain, _prepare

    th = THRESHOLDS["normal"]
    b = 200
    run = np.arange(b) >= 80
    dev = np.where(run, -0.16, 0.0)
    rng = np.random.default_rng(194301)
    level = 6.0 - 0.095 * run + rng.normal(0, 0.01, b)
    bright = _prepare(level, np.full(b, 0.14), np.full(b, 200), th, None)
    everywhere = np.ones(b, dtype=bool)
    assert bright.drift is None
    assert np.median(level) < 5.95  # the median of every bin is the stretch's
    assert not _not_gain(run, dev, bright, everywhere).any()
    # a bright level that stays put while the run's series moves is a change of mix
    flat = _prepare(6.0 + rng.normal(0, 0.01, b), np.full(b, 0.14), np.full(b, 200), th, None)
    assert _not_gain(run, dev, flat, everywhere)[run].all()


def test_a_drift_over_the_last_sixth_of_the_run_has_the_level_it_left():
    # A ramp over the last 25 % of the run to +0.25 (asinh units): the last third's median
    # sits at +0.06, within the shift, so the thirds see no drift; the last sixth's is off
    # by +0.14. Read from the end sixth, the drift departs from the start's level, and its
    # broken line says where the series is off by the shift.
    from cytokit.qc.settings import THRESHOLDS
    from cytokit.qc.stability import _drift_shape, _end_series, _line_drift, _prepare

    th = THRESHOLDS["normal"]
    b = 240
    x = np.arange(b) / (b - 1)
    ramp = 0.25 * np.clip((x - 0.75) / 0.25, 0, 1)
    rng = np.random.default_rng(195301)
    y = 5.0 + ramp + rng.normal(0, 0.01, b)
    count, sd = np.full(b, 200), np.full(b, 0.14)
    assert _prepare(y, sd, count, th, None).drift is None
    series = _end_series(_prepare(y, sd, count, th, None), th)
    assert series.late and abs(series.drift - 5.0) < 0.01
    first, last = _line_drift(series, series.drift, th, False)
    assert last == b - 1 and abs(ramp[first] - th.signal_shift) < 0.03
    # the same at the run's start: a drift that settles
    early = _drift_shape(
        y[::-1].copy(), count.astype(float), np.ones(b, dtype=bool), 0.14, th, True
    )
    assert not early[3] and abs(early[0] - 5.0) < 0.01
    # a series that stays at its level drifts at neither end
    flat = _end_series(_prepare(5.0 + rng.normal(0, 0.01, b), sd, count, th, None), th)
    assert flat.drift is None
