"""Donor chimerism: intervals (against scipy), histograms, thresholds against simulator truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cytokit import gating as G
from cytokit.analysis.chimerism import (
    calibrate,
    chimerism_row,
    chimerism_status,
    patient_thresholds,
    place_threshold,
    population_threshold,
)
from cytokit.simulate import CELL_LABELS, LABELS, preset_design, simulate_sample
from cytokit.stats.density import Histogram, histogram_edges
from cytokit.stats.intervals import (
    binomial_interval,
    clopper_pearson_interval,
    incomplete_beta,
    t_quantile,
    wilson_interval,
)

HLA = G.Dimension("FITC-A", compensation=G.FCS, transform=G.LogicleTransform())
ALL = G.GatingStrategy(
    [G.RectangleGate(id="all", dims=(G.Dimension("FSC-A"),), min=(-1e12,), max=(None,))]
)
LYMPHOID = [LABELS.index(n) for n in ("B", "T_CD8neg", "T_CD8pos", "NK_bright", "NK_dim", "CIK")]


# -- intervals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 50, 1000])
def test_wilson_matches_scipy(n):
    for k in sorted({0, 1, n // 3, n - 1, n}):
        lo, hi = wilson_interval(k, n)
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert float(lo) == pytest.approx(ci.low, abs=1e-12)
        assert float(hi) == pytest.approx(ci.high, abs=1e-12)


@pytest.mark.parametrize("n", [1, 7, 50, 1000])
def test_clopper_pearson_matches_scipy(n):
    ks = np.array(sorted({0, 1, n // 3, n - 1, n}))
    lo, hi = clopper_pearson_interval(ks, n)
    for k, a, b in zip(ks, lo, hi, strict=True):
        ci = stats.binomtest(int(k), n).proportion_ci(method="exact")
        assert a == pytest.approx(ci.low, abs=1e-10)
        assert b == pytest.approx(ci.high, abs=1e-10)


def test_interval_edges_and_names():
    lo, hi = wilson_interval(np.array([0, 0]), np.array([0, 5]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert lo[1] == 0.0 and 0 < hi[1] < 1
    with pytest.raises(ValueError, match="wilson, clopper-pearson"):
        binomial_interval(1, 2, method="wald")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 15, 60, 500])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_matches_scipy(df, p):
    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)
    assert t_quantile(1 - p, df) == pytest.approx(stats.t.ppf(1 - p, df), rel=1e-9)


def test_incomplete_beta_matches_scipy():
    for a, b in [(0.5, 0.5), (2, 3), (30, 4), (400, 600)]:
        for x in (0.01, 0.3, 0.5, 0.77, 0.99):
            assert incomplete_beta(x, a, b) == pytest.approx(stats.beta.cdf(x, a, b), abs=1e-12)


def test_wilson_coverage_is_near_nominal():
    rng = np.random.default_rng(5)
    n, p = 300, 0.07
    k = rng.binomial(n, p, size=4000)
    lo, hi = wilson_interval(k, n)
    cover = np.mean((lo <= p) & (p <= hi))
    assert 0.93 <= cover <= 0.97


# -- status and rows ---------------------------------------------------------------------------
def test_status_counts_donor_events():
    # the contract (DESIGN.md, [qc]): below 20 donor events not detected, below
    # min_events not quantifiable
    assert chimerism_status(19, 50) == "not_detected"
    assert chimerism_status(20, 50) == "not_quantifiable"
    assert chimerism_status(49, 50) == "not_quantifiable"
    assert chimerism_status(50, 50) == "quantified"
    row = chimerism_row(10_000, 10, min_events=50)
    assert row["status"] == "not_detected"  # 0.1 % of many events is still 10 cells
    assert chimerism_row(10_000, 19, min_events=50)["status"] == "not_detected"
    assert chimerism_row(10_000, 20, min_events=50)["status"] == "not_quantifiable"
    row = chimerism_row(400, 100, min_events=50)
    assert row["donor_pct"] == 25.0 and row["recipient_events"] == 300
    assert row["ci_low"] < 25 < row["ci_high"]
    empty = chimerism_row(0, 0, min_events=50)
    assert np.isnan(empty["donor_pct"]) and empty["status"] == "not_detected"


@pytest.mark.parametrize(
    ("events", "donors"), [(1, 0), (1, 1), (57, 20), (1000, 3), (12_345, 12_000)]
)
def test_row_counts_and_interval(events, donors):
    """Counts as given, % donor by arithmetic, the 95 % Wilson interval as scipy has it."""
    row = chimerism_row(events, donors, min_events=50)
    assert (row["events"], row["donor_events"]) == (events, donors)
    assert row["recipient_events"] == events - donors
    assert row["donor_pct"] == pytest.approx(100.0 * donors / events, rel=1e-15)
    ci = stats.binomtest(donors, events).proportion_ci(confidence_level=0.95, method="wilson")
    assert row["ci_low"] == pytest.approx(100.0 * ci.low, abs=1e-10)
    assert row["ci_high"] == pytest.approx(100.0 * ci.high, abs=1e-10)


# -- histograms --------------------------------------------------------------------------------
def test_histogram_counts_are_exact_at_edges():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0.3, 0.05, 5000), rng.normal(0.7, 0.03, 800), [np.nan, 9.0]])
    edges = histogram_edges(x)
    h = Histogram.of(x, edges)
    assert h.total == 5801  # NaN dropped, the outlier clipped into the last bin
    for t in edges[[10, 700, 1000, 1500, 2040]]:
        assert h.above(t) == int(np.sum(x[np.isfinite(x)] >= t))
    back = Histogram.from_array(h.to_array())
    assert np.array_equal(back.counts, h.counts) and np.array_equal(back.edges, h.edges)


# -- thresholds on simulated samples -------------------------------------------------------------
def _patient(design, patient, n_events):
    out = []
    for day in design.days_of(patient):
        sample, truth = simulate_sample(design, patient, day, n_events, workers=1)
        v = ALL.values(sample, [HLA])[:, 0]
        parent = np.isin(truth.label, LYMPHOID)
        edges = histogram_edges(v[parent])
        bead = float(np.median(v[truth.label == LABELS.index("bead")]))
        out.append((day, Histogram.of(v[parent], edges), bead, v, truth, edges))
    return out


@pytest.fixture(scope="module")
def patients():
    design = preset_design(
        "sample", seed=314, n_patients=4, n_events=15_000, days=(-7, 3, 7, 21, 43, 64, 90)
    )
    return [(p, _patient(design, p, 15_000)) for p in design.patients]


def _placed(patients):
    """Each simulated sample with the threshold `patient_thresholds` placed for it."""
    for spec, samples in patients:
        side = 1 if spec.donor_is == "positive" else -1
        ths = patient_thresholds(
            [s[1] for s in samples], [s[0] for s in samples], side, [s[2] for s in samples]
        )
        yield from zip(samples, ths, strict=True)


def test_patient_thresholds_match_truth(patients):
    worst = 0.0
    methods = set()
    for (day, _, _, v, truth, edges), t in _placed(patients):
        methods.add(t.method)
        if day < 0:
            assert t.calibration_day == day
        for name in CELL_LABELS[2:]:
            sel = truth.label == LABELS.index(name)
            if sel.sum() < 200:
                continue
            est = t.donor_events(Histogram.of(v[sel], edges))
            err = 100.0 * abs(est - truth.donor[sel].sum()) / sel.sum()
            worst = max(worst, err)
    assert worst <= 1.0
    assert {"valley", "patient_offset"} <= methods


def test_donor_and_recipient_events_are_exact_counts_at_each_cut(patients):
    """At every placed cut inside the histogram's range, on both donor sides, the events
    counted as donor and as recipient are exactly the events on either side of it
    (counted on the values; values beyond the range share the end bins)."""
    sides, checked = set(), 0
    for (_, _, _, v, truth, edges), t in _placed(patients):
        sides.add(t.donor_side)
        for names in (("NK_bright", "NK_dim"), ("CIK",), ("T_CD8neg", "T_CD8pos")):
            sel = np.isin(truth.label, [LABELS.index(n) for n in names])
            x = v[sel]
            h = Histogram.of(x, edges)
            for cut in (t, population_threshold(t, h)):
                if not edges[0] < cut.value < edges[-1]:
                    continue
                checked += 1
                above = int(np.sum(x >= cut.value))
                below = int(np.sum(x < cut.value))
                donors, recipients = (above, below) if cut.donor_side > 0 else (below, above)
                assert cut.donor_events(h) == donors
                assert h.total - cut.donor_events(h) == recipients
                row = chimerism_row(h.total, cut.donor_events(h), min_events=50)
                assert (row["donor_events"], row["recipient_events"]) == (donors, recipients)
    assert sides == {1, -1} and checked >= 100


def test_lone_mode_without_calibration_is_recipient(patients):
    spec, samples = patients[0]
    side = 1 if spec.donor_is == "positive" else -1
    day, h, *_ = samples[0]  # pre-infusion: all recipient
    t = place_threshold(h, side)
    assert t.method == "recipient_width"
    assert t.donor_events(h) <= 0.002 * h.total
    cal = calibrate(h, side, day)
    assert cal is not None and cal.reach > 0
    t2 = place_threshold(h, side, cal)
    assert t2.method == "calibrated"
    # the calibrated reach lets about FALSE_POSITIVE_RATE of recipients through
    assert t2.donor_events(h) <= 0.003 * h.total


def test_near_complete_chimerism_is_recognised():
    """A lone donor mode (every cell donor) is placed from the donor peak, not counted as recipient."""
    rng = np.random.default_rng(2)
    rec = rng.normal(0.35, 0.04, 20_000)  # recipient HLA-A2- (donor positive)
    mixed = np.concatenate([rng.normal(0.35, 0.04, 8000), rng.normal(0.66, 0.03, 4000)])
    donor_only = np.concatenate([rng.normal(0.66, 0.03, 12_000), rng.normal(0.35, 0.04, 20)])
    hists = [Histogram.of(x, histogram_edges(x)) for x in (rec, mixed, donor_only)]
    ths = patient_thresholds(hists, [-7, 7, 14], 1)
    assert [t.method for t in ths] == ["patient_offset", "valley", "donor_offset"]
    last = ths[2]
    assert abs(last.donor_events(hists[2]) - 12_000) <= 30
    assert ths[0].donor_events(hists[0]) <= 20


def test_negative_donor_side():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.66, 0.03, 9000), rng.normal(0.30, 0.05, 1000)])
    h = Histogram.of(x, histogram_edges(x))
    t = place_threshold(h, -1)
    assert t.method == "valley" and t.donor_side == -1
    assert abs(t.donor_events(h) - 1000) <= 5


def test_empty_parent():
    h = Histogram(np.linspace(0, 1, 11), np.zeros(10, dtype=np.int64))
    t = place_threshold(h, 1)
    assert t.method == "none" and t.donor_events(h) == 0


# -- each population's cut -------------------------------------------------------------------------
def _parent_and_population(side: int, seed: int = 4):
    """Recipient-majority parent; a donor-majority population whose recipients sit lower.

    Early after an NK infusion: the parent (other lineages brighter on the
    marker) is mostly recipient; the NK gate is 60 % donor and its recipient
    peak lies below the parent's.
    """
    rng = np.random.default_rng(seed)
    parent_rec = rng.normal(0.46, 0.04, 20_000)
    pop_rec = rng.normal(0.40, 0.05, 1_200)
    pop_don = rng.normal(0.68, 0.05, 1_800)
    parent = np.concatenate([parent_rec, pop_rec, pop_don])
    pop = np.concatenate([pop_rec, pop_don])
    if side < 0:  # mirror: donors negative
        parent, pop = 1.1 - parent, 1.1 - pop
    edges = histogram_edges(parent)
    return Histogram.of(parent, edges), Histogram.of(pop, edges), pop_don.size


@pytest.mark.parametrize("side", [1, -1])
def test_population_valley_counts_a_donor_majority(side):
    parent, pop, donors = _parent_and_population(side)
    sample = place_threshold(parent, side)
    assert sample.method == "valley"
    cut = population_threshold(sample, pop)
    assert cut.method == "population_valley" and cut.donor_side == side
    assert side * (cut.value - sample.value) < 0  # moved towards the population's recipients
    lost_by_sample = donors - sample.donor_events(pop)
    err = abs(cut.donor_events(pop) - donors) / pop.total
    assert lost_by_sample / pop.total > 0.01  # the parent's valley loses > 1 pp of this population
    assert err < 0.003
    assert side * cut.recipient_mode < side * cut.value < side * cut.donor_mode


def test_population_keeps_the_sample_threshold_without_two_modes():
    parent, _, _ = _parent_and_population(1)
    sample = place_threshold(parent, 1)
    rng = np.random.default_rng(5)
    one_mode = Histogram.of(rng.normal(0.40, 0.05, 3000), parent.edges)
    assert population_threshold(sample, one_mode) is sample
    # a donor minority under POPULATION_MINORITY (here 3 %) places no valley of its own
    few = np.concatenate([rng.normal(0.40, 0.05, 9700), rng.normal(0.64, 0.045, 300)])
    assert population_threshold(sample, Histogram.of(few, parent.edges)) is sample
    empty = Histogram(parent.edges, np.zeros_like(parent.counts))
    assert population_threshold(sample, empty) is sample
    none = place_threshold(empty, 1)
    assert population_threshold(none, one_mode) is none


def test_population_cuts_match_truth(patients):
    """On simulated samples, each lineage's own cut is within 1 pp of its true donors."""
    worst, moved = 0.0, 0
    for (_, _, _, v, truth, edges), t in _placed(patients):
        for names in (("NK_bright", "NK_dim"), ("CIK",), ("T_CD8neg", "T_CD8pos")):
            sel = np.isin(truth.label, [LABELS.index(n) for n in names])
            if sel.sum() < 200:
                continue
            h = Histogram.of(v[sel], edges)
            cut = population_threshold(t, h)
            moved += cut is not t
            err = 100.0 * abs(cut.donor_events(h) - truth.donor[sel].sum()) / sel.sum()
            worst = max(worst, err)
    assert worst <= 1.0
    assert moved > 0
