"""Survival statistics against published values: Kaplan–Meier, Greenwood, log-rank, Cox, Aalen–Johansen."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("lifelines")

from cytokit.clinical import (
    cumulative_incidence,
    hazard_ratio,
    kaplan_meier,
    logrank,
    numbers_at_risk,
    summarise_curve,
)

# The AML maintenance trial of Embury et al. (West J Med 1977;126:267-272) as tabulated by
# Miller, Survival Analysis (Wiley 1981), and shipped as the `aml` data set of R's survival
# package (weeks of remission; + = censored).
MAINTAINED = [(9, 1), (13, 1), (13, 0), (18, 1), (23, 1), (28, 0), (31, 1), (34, 1), (45, 0),
              (48, 1), (161, 0)]  # fmt: skip
NONMAINTAINED = [(5, 1), (5, 1), (8, 1), (8, 1), (12, 1), (16, 0), (23, 1), (27, 1), (30, 1),
                 (33, 1), (43, 1), (45, 1)]  # fmt: skip

# Expected values: summary(survfit(Surv(time, status) ~ x, data = aml)) as recorded in the R
# survival package's own test output, tests/doaml.Rout.save (therneau/survival, "These results
# can be found in Miller"): time, n.risk, n.event, survival, std.err (Greenwood).
R_MAINTAINED = [
    (9, 11, 1, 0.909, 0.0867),
    (13, 10, 1, 0.818, 0.1163),
    (18, 8, 1, 0.716, 0.1397),
    (23, 7, 1, 0.614, 0.1526),
    (31, 5, 1, 0.491, 0.1642),
    (34, 4, 1, 0.368, 0.1627),
    (48, 2, 1, 0.184, 0.1535),
]
R_NONMAINTAINED = [
    (5, 12, 2, 0.8333, 0.1076),
    (8, 10, 2, 0.6667, 0.1361),
    (12, 8, 1, 0.5833, 0.1423),
    (23, 6, 1, 0.4861, 0.1481),
    (27, 5, 1, 0.3889, 0.1470),
    (30, 4, 1, 0.2917, 0.1387),
    (33, 3, 1, 0.1944, 0.1219),
    (43, 2, 1, 0.0972, 0.0919),
    (45, 1, 1, 0.0000, math.nan),  # R prints NaN: no Greenwood error once S reaches 0
]
# the same file: survfit medians 31 and 23 weeks; survdiff expected events 10.69 (maintained)
# and 7.31, (O-E)^2/V 3.40, p = 0.0653; coxph(method = "efron"): coef 0.916, se 0.512.


def _split(data):
    t, e = zip(*data, strict=True)
    return np.array(t, float), np.array(e, int)


@pytest.mark.parametrize(("data", "expected"), [(MAINTAINED, R_MAINTAINED), (NONMAINTAINED, R_NONMAINTAINED)])  # fmt: skip
def test_kaplan_meier_reproduces_the_published_aml_estimates(data, expected):
    steps = kaplan_meier(*_split(data)).set_index("time")
    for time, n_risk, n_event, survival, std_err in expected:
        row = steps.loc[float(time)]
        assert row["n_at_risk"] == n_risk and row["n_events"] == n_event
        assert row["estimate"] == pytest.approx(survival, abs=5e-4)  # 3 decimals
        if math.isnan(std_err):
            assert math.isnan(row["se"])
        else:
            assert row["se"] == pytest.approx(std_err, abs=5e-4)
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]


def test_median_and_horizon_of_the_aml_curves():
    for data, median in ((MAINTAINED, 31), (NONMAINTAINED, 23)):
        t, e = _split(data)
        stats = summarise_curve(kaplan_meier(t, e), t, horizon=26)
        assert stats["median"] == median
        assert stats["n"] == len(data) and stats["events"] == int(e.sum())
    # 26 weeks: the step of week 23 is in force (0.614 maintained)
    t, e = _split(MAINTAINED)
    stats = summarise_curve(kaplan_meier(t, e), t, horizon=26)
    assert stats["at_horizon"] == pytest.approx(0.614, abs=5e-4)
    # the curve says nothing past its last time: no estimate there, and the note says so
    stats = summarise_curve(kaplan_meier(t, e), t, horizon=200)
    assert math.isnan(stats["at_horizon"]) and "before day 200" in stats["note"]
    t, e = np.array([5.0, 8, 10, 12, 20]), np.array([1, 0, 0, 0, 0])  # S ends at 0.8
    stats = summarise_curve(kaplan_meier(t, e), t, horizon=10)
    assert math.isnan(stats["median"]) and "median not reached" in stats["note"]


def test_logrank_reproduces_survdiff_on_aml():
    (tm, em), (tn, en) = _split(MAINTAINED), _split(NONMAINTAINED)
    t, e = np.concatenate([tm, tn]), np.concatenate([em, en])
    maintained = np.r_[np.ones(tm.size), np.zeros(tn.size)].astype(bool)
    chi2, p, observed, expected = logrank(t, e, maintained)
    assert observed == 7 and expected == pytest.approx(10.69, abs=5e-3)
    assert chi2 == pytest.approx(3.40, abs=5e-3) and p == pytest.approx(0.0653, abs=5e-5)
    # the groups' roles are symmetric
    chi2_other, _, observed_other, expected_other = logrank(t, e, ~maintained)
    assert chi2_other == pytest.approx(chi2) and observed_other == 11
    assert expected_other == pytest.approx(7.31, abs=5e-3)
    # one stratum is the unstratified test; a stratum holding one group only adds nothing
    assert logrank(t, e, maintained, np.zeros(t.size))[0] == pytest.approx(chi2)


def test_stratified_logrank_sums_the_strata():
    (tm, em), (tn, en) = _split(MAINTAINED), _split(NONMAINTAINED)
    t = np.concatenate([tm, tn, tm + 1, tn + 1])
    e = np.concatenate([em, en, em, en])
    g = np.r_[np.ones(tm.size), np.zeros(tn.size), np.ones(tm.size), np.zeros(tn.size)]
    strata = np.r_[np.zeros(tm.size + tn.size), np.ones(tm.size + tn.size)]
    chi2, _, observed, expected = logrank(t, e, g, strata)
    # two identical strata: observed and expected double, the variance too, so chi2 doubles
    assert observed == 14 and expected == pytest.approx(2 * 10.69, abs=1e-2)
    assert chi2 == pytest.approx(2 * 3.396, abs=1e-2)


def test_cox_hazard_ratio_reproduces_coxph_efron_on_aml():
    (tm, em), (tn, en) = _split(MAINTAINED), _split(NONMAINTAINED)
    t, e = np.concatenate([tm, tn]), np.concatenate([em, en])
    nonmaintained = np.r_[np.zeros(tm.size), np.ones(tn.size)]
    hr = hazard_ratio(t, e, nonmaintained)
    assert math.log(hr["hazard_ratio"]) == pytest.approx(0.916, abs=5e-4)
    se = (math.log(hr["hr_ci_high"]) - math.log(hr["hr_ci_low"])) / (2 * 1.959963984540054)
    assert se == pytest.approx(0.512, abs=5e-4)
    assert hr["hr_p"] == pytest.approx(0.074, abs=5e-4)


def test_hazard_ratio_not_estimable_without_events_in_a_group():
    hr = hazard_ratio([5, 8, 9, 12], [1, 1, 0, 0], [1, 1, 0, 0])
    assert math.isnan(hr["hazard_ratio"]) and "no events in group 0" in hr["note"]


def test_cumulative_incidence_without_competing_events_is_one_minus_kaplan_meier():
    t, e = _split(NONMAINTAINED)
    km = kaplan_meier(t, e).set_index("time")
    ci = cumulative_incidence(t, e).set_index("time")
    assert np.allclose(ci["estimate"], 1 - km["estimate"], atol=1e-12)
    finite = km["se"].notna() & (km["estimate"] < 1)
    assert np.allclose(ci.loc[finite, "se"], km.loc[finite, "se"], atol=1e-12)


def test_cumulative_incidence_matches_lifelines_aalen_johansen_on_untied_data():
    from lifelines import AalenJohansenFitter

    rng = np.random.default_rng(11)
    t = rng.permutation(np.arange(1.0, 81.0))  # distinct times: lifelines does not jitter
    status = rng.choice([0, 1, 2], size=t.size, p=[0.3, 0.4, 0.3])
    ours = cumulative_incidence(t, status).set_index("time")
    theirs = AalenJohansenFitter(calculate_variance=True).fit(t, status, event_of_interest=1)
    cif = theirs.cumulative_density_.iloc[:, 0]
    assert np.allclose(ours["estimate"].reindex(cif.index), cif.to_numpy(), atol=1e-12)
    var = theirs.variance_.to_numpy()
    se = ours["se"].reindex(cif.index).to_numpy()
    ok = np.isfinite(var) & np.isfinite(se)
    assert ok.sum() > 50
    assert np.allclose(se[ok], np.sqrt(var[ok]), atol=1e-10)


def test_cumulative_incidence_counts_ties_exactly_and_competing_events_add_to_one():
    # every patient had an event: the incidences of the two causes sum to 1 - S = 1
    t = np.array([2, 2, 2, 5, 5, 7, 9, 9])
    status = np.array([1, 2, 1, 2, 1, 1, 2, 1])
    one = cumulative_incidence(t, status)
    two = cumulative_incidence(t, np.where(status == 1, 2, np.where(status == 2, 1, 0)))
    assert one["estimate"].iloc[-1] == pytest.approx(5 / 8)
    assert one["estimate"].iloc[-1] + two["estimate"].iloc[-1] == pytest.approx(1.0)
    # no censoring: the incidence at each time is the share of patients with the event by then
    assert one.set_index("time").loc[2.0, "estimate"] == pytest.approx(2 / 8)
    assert one.set_index("time").loc[5.0, "n_competing"] == 1


def test_numbers_at_risk_count_patients_still_followed():
    t, _ = _split(MAINTAINED)
    assert numbers_at_risk(t, [0, 9, 10, 48, 49, 200]).tolist() == [11, 11, 10, 2, 1, 0]


def test_bad_durations_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        kaplan_meier([1, -2], [1, 0])
    with pytest.raises(ValueError, match="one length"):
        kaplan_meier([1, 2], [1])
    assert kaplan_meier([], []).empty
    assert isinstance(cumulative_incidence([], []), pd.DataFrame)


def test_missing_lifelines_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lifelines", None)  # import lifelines now fails
    with pytest.raises(ImportError, match=r'pip install "cytokit-flow\[clinical\]"'):
        kaplan_meier([1.0, 2.0], [1, 0])


def test_no_event_by_the_horizon_has_the_exact_bound_not_zero_width():
    # 0 grade >= II GVHD among 24 patients: the incidence is 0 and its 95 % upper bound
    # the Clopper-Pearson one for 0 of 24 (beta quantile), not 0
    from scipy.stats import beta

    days = np.arange(100, 124, dtype=float)
    steps = cumulative_incidence(days, np.zeros(24, dtype=int))
    got = summarise_curve(steps, days, horizon=100, cumulative=True)
    assert got["at_horizon"] == 0.0 and got["at_horizon_ci_low"] == 0.0
    assert got["at_horizon_ci_high"] == pytest.approx(beta.ppf(0.975, 1, 24), rel=1e-9)
    # two died without GVHD before day 100: they are followed (out by the competing event)
    status = np.r_[np.full(22, 0), [2, 2]]
    days2 = np.r_[np.full(22, 150.0), [20.0, 40.0]]
    got = summarise_curve(cumulative_incidence(days2, status), days2, horizon=100, cumulative=True)
    assert got["at_horizon_ci_high"] == pytest.approx(beta.ppf(0.975, 1, 24), rel=1e-9)
    # no death by the horizon: survival 1, lower bound for 0 deaths among those followed
    km = summarise_curve(kaplan_meier(days, np.zeros(24, dtype=int)), days, horizon=110)
    assert km["at_horizon"] == 1.0 and km["at_horizon_ci_high"] == 1.0
    assert km["at_horizon_ci_low"] == pytest.approx(1 - beta.ppf(0.975, 1, 14), rel=1e-9)


def test_every_patient_had_the_event_before_the_horizon_gives_zero_not_blank():
    # 13 of 13 patients progressed, the last on day 195: S(365) is 0 (lifelines agrees),
    # not "follow-up ends before day 365"
    import lifelines
    from scipy.stats import beta

    days = np.array([12, 30, 33, 45, 60, 61, 80, 99, 110, 120, 150, 170, 195], dtype=float)
    events = np.ones(13, dtype=int)
    got = summarise_curve(kaplan_meier(days, events), days, horizon=365)
    fit = lifelines.KaplanMeierFitter().fit(days, events)
    assert got["at_horizon"] == float(fit.predict(365.0)) == 0.0
    assert got["at_horizon_ci_low"] == 0.0
    # nobody censored: no survivor of 13, the exact bound however the days are spaced
    assert got["at_horizon_ci_high"] == pytest.approx(beta.ppf(0.975, 1, 13), rel=1e-9)
    same_day = summarise_curve(
        kaplan_meier(np.full(13, 50.0), events), np.full(13, 50.0), horizon=365
    )
    assert same_day["at_horizon_ci_high"] == pytest.approx(got["at_horizon_ci_high"], rel=1e-12)
    assert "follow-up ends" not in got["note"] and "last value holds" in got["note"]
    # the last one censored: nothing is known beyond day 195
    events[-1] = 0
    got = summarise_curve(kaplan_meier(days, events), days, horizon=365)
    assert math.isnan(got["at_horizon"]) and "follow-up ends at day 195" in got["note"]


def test_an_incidence_every_patient_reached_has_its_interval():
    """A cumulative incidence of 100 % (one patient given DLI, who had GVHD on day 20; or
    13 of 13) had no interval ("100 % at day 42 (––– %)"), where the survival curve at 0
    has the exact one: the incidence's is its mirror."""
    from scipy.stats import beta

    one = summarise_curve(cumulative_incidence([20.0], [1]), [20.0], horizon=42, cumulative=True)
    assert one["at_horizon"] == pytest.approx(1.0)
    assert one["at_horizon_ci_high"] == 1.0
    assert one["at_horizon_ci_low"] == pytest.approx(1 - beta.ppf(0.975, 1, 1), rel=1e-9)
    days = np.array([12, 30, 33, 45, 60, 61, 80, 99, 110, 120, 150, 170, 195], dtype=float)
    status = np.ones(13, dtype=int)
    ci = summarise_curve(cumulative_incidence(days, status), days, horizon=365, cumulative=True)
    km = summarise_curve(kaplan_meier(days, status), days, horizon=365)
    assert ci["at_horizon"] == pytest.approx(1 - km["at_horizon"])
    assert ci["at_horizon_ci_low"] == pytest.approx(1 - km["at_horizon_ci_high"], rel=1e-9)
    assert ci["at_horizon_ci_high"] == 1.0
    # one censored before the last events: the bound before the last step times the exact one
    status[3] = 0
    ci = summarise_curve(cumulative_incidence(days, status), days, horizon=365, cumulative=True)
    steps = cumulative_incidence(days, status)
    assert ci["at_horizon"] == pytest.approx(1.0) and ci["at_horizon_ci_high"] == 1.0
    # below the step before's own lower bound, by the exact factor for the last at risk
    n_last = float(steps["n_at_risk"].iloc[-1])
    prior = 1.0 - float(steps["ci_low"].iloc[-2])
    assert ci["at_horizon_ci_low"] == pytest.approx(1 - prior * beta.ppf(0.975, 1, n_last))


@pytest.mark.parametrize(
    "days",
    [
        np.zeros(8),  # every patient had the event on day 0: the curve is at its end at once
        np.array([10, 20, 30, 40, 50, 60, 70, 80], dtype=float),
        np.full(8, 50.0),
    ],
)
def test_the_step_where_every_patient_left_by_the_event_has_the_exact_interval(days):
    """Where S reaches 0 (the incidence 1) the step table gave 0-0 (Kaplan-Meier: zero width,
    as if S were known exactly) or no interval (the incidence), while outcomes_summary gave the
    exact bound for no survivor of 8: 0 % (0-36.9 %), 100 % (63.1-100 %). The table's row is
    now that interval (Clopper-Pearson for 0 of 8; scipy's beta quantile)."""
    from scipy.stats import beta

    bound = beta.ppf(0.975, 1, 8)
    events = np.ones(8, dtype=int)
    km, ci = kaplan_meier(days, events), cumulative_incidence(days, events)
    for steps, cumulative, want in ((km, False, (0.0, bound)), (ci, True, (1 - bound, 1.0))):
        last = steps.iloc[-1]
        assert last["estimate"] == (1.0 if cumulative else 0.0)
        assert (last["ci_low"], last["ci_high"]) == pytest.approx(want, rel=1e-9)
        summary = summarise_curve(steps, days, horizon=365, cumulative=cumulative)
        got = (summary["at_horizon_ci_low"], summary["at_horizon_ci_high"])
        assert got == pytest.approx((last["ci_low"], last["ci_high"]), rel=1e-12)
        # the row before any event (S = 1, F = 0 at day 0, nobody yet out) is exact: 1-1, 0-0
        if days.min() > 0:
            first = steps.iloc[0]
            assert (first["time"], first["ci_low"], first["ci_high"]) == (0.0,) + (
                (0.0, 0.0) if cumulative else (1.0, 1.0)
            )


def test_the_end_step_after_a_censored_patient_agrees_with_the_summary():
    days = np.array([12, 30, 33, 45, 60, 61, 80, 99, 110, 120, 150, 170, 195], dtype=float)
    status = np.ones(13, dtype=int)
    status[3] = 0
    for fit, cumulative in ((kaplan_meier, False), (cumulative_incidence, True)):
        steps = fit(days, status)
        summary = summarise_curve(steps, days, horizon=365, cumulative=cumulative)
        last = steps.iloc[-1]
        assert np.isfinite([last["ci_low"], last["ci_high"]]).all()
        got = (summary["at_horizon_ci_low"], summary["at_horizon_ci_high"])
        assert got == pytest.approx((last["ci_low"], last["ci_high"]), rel=1e-12)
