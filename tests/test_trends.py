"""Persistence trends: half-life fits (single and multi-infusion), AUC, peak, cohort summary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cytokit.analysis.trends import COHORT_COLUMNS, cohort_summary, fit_half_life, trend_row
from cytokit.simulate import Kinetics, persistence_curve

Q = "quantified"


def test_exact_exponential_decay():
    days = np.array([0, 2, 5, 9, 14, 21, 28])
    values = np.array([1.0, 100, 80, 40, 20, 10, 5])  # peak at 2, then halves every 5... roughly
    values[3:] = 80 * 2.0 ** (-(days[3:] - 5) / 6.0)
    status = [Q] * len(days)
    h = fit_half_life(days, values, status, infusions=[0])
    # the decay starts after the highest sample (day 2): days 5..28 lie on the curve
    assert h["half_life_days"] == pytest.approx(6.0, rel=1e-9)
    assert h["half_life_r2"] == pytest.approx(1.0)
    assert h["half_life_n"] == 5 and h["half_life_from_day"] == 5
    assert h["half_life_ci_low"] == pytest.approx(6.0) and h["half_life_ci_high"] == pytest.approx(
        6.0
    )


def test_noisy_decay_interval_covers_truth():
    rng = np.random.default_rng(7)
    days = np.array([0, 3, 7, 10, 14, 21, 28, 35])
    covered = 0
    runs = 300
    for _ in range(runs):
        y = 200 * 2.0 ** (-days / 5.0) * np.exp(0.15 * rng.standard_normal(days.size))
        y[0] = 1.0  # day 0 before the infusion
        y[1] = 300.0  # the peak sample
        h = fit_half_life(days, y, [Q] * days.size, infusions=[0])
        covered += h["half_life_ci_low"] <= 5.0 <= h["half_life_ci_high"]
    assert 0.9 <= covered / runs <= 0.99  # t-based 95 % interval


def test_shared_slope_over_infusions_matches_the_model():
    k = Kinetics(half_life_days=8.0, expansion_fold=1.5, peak_delay_days=2.0, recovery=0.25)
    doses = [(42, 1e6), (63, 2e6), (84, 3e6)]
    days = np.array([-7, 43, 49, 56, 63, 64, 70, 77, 84, 85, 88, 91, 98, 112])
    y = persistence_curve(days.astype(float), doses, k)
    h = fit_half_life(days, y, [Q] * days.size, infusions=[0, 21, 42, 63, 84])
    # after each infusion's peak every earlier infusion decays at the same rate, so the
    # segments share the slope exactly
    assert h["half_life_days"] == pytest.approx(8.0, rel=1e-6)
    assert "3 decay phases" in h["half_life_note"]


def test_not_estimable_cases():
    days = np.array([0, 3, 7, 14])
    h = fit_half_life(days, [0, 10, 50, 40], [Q] * 4, infusions=[0])
    assert math.isnan(h["half_life_days"]) and "not estimable" in h["half_life_note"]
    # rising counts
    days = np.array([0, 3, 7, 14, 21, 28])
    h = fit_half_life(days, [0, 50, 10, 20, 30, 40], [Q] * 6, infusions=[0])
    assert math.isnan(h["half_life_days"]) and "do not decay" in h["half_life_note"]
    # points below quantification do not count
    h = fit_half_life(
        days, [0, 100, 50, 25, 12, 6], [Q, Q, Q, Q, "not_quantifiable", "not_detected"], [0]
    )
    assert h["half_life_n"] == 2 and math.isnan(h["half_life_days"])
    # a decay whose interval reaches zero is not reported
    h = fit_half_life(days, [0, 100, 50, 60, 40, 49], [Q] * 6, infusions=[0])
    assert math.isnan(h["half_life_days"]) and "not significant" in h["half_life_note"]


def test_count_fit_recovers_an_exact_decay():
    """Counts exactly on the curve, per-point exposure varying: the count fit is exact."""
    days = np.array([0, 2, 5, 9, 14, 21, 28])
    per_event = np.array([0.1, 0.1, 0.12, 0.08, 0.1, 0.11, 0.09])  # cells/µL per event
    values = np.r_[0.0, 100.0, 80 * 2.0 ** (-(days[2:] - 5) / 6.0)]
    counts = values / per_event
    h = fit_half_life(days, values, [Q] * days.size, infusions=[0], counts=counts)
    assert h["half_life_days"] == pytest.approx(6.0, rel=1e-9)
    assert h["half_life_n"] == 5 and h["half_life_r2"] == pytest.approx(1.0)
    # the counting-noise floor keeps the interval open although the points fit exactly
    assert h["half_life_ci_low"] < 6.0 < h["half_life_ci_high"]


def _count_fits(seed, runs, days, expected, extra_sd=0.0, log_fit=False):
    """Fit `runs` simulated series of Poisson counts (rate ``expected`` times a lognormal
    factor of log-sd `extra_sd` per point: scatter beyond counting noise). Returns the
    half-life rows and (with `log_fit`) the log-fit half-lives of the same series."""
    rng = np.random.default_rng(seed)
    fits, log_fits = [], []
    for _ in range(runs):
        rate = expected * np.exp(extra_sd * rng.standard_normal(days.size))
        k = rng.poisson(rate).astype(float)
        values = 0.05 * k
        status = np.where(k >= 50, Q, np.where(k >= 20, "not_quantifiable", "not_detected"))
        fits.append(fit_half_life(days, values, status, infusions=[0], counts=k))
        if log_fit:
            log_fits.append(fit_half_life(days, values, status, infusions=[0])["half_life_days"])
    return pd.DataFrame(fits), np.array(log_fits)


def _coverage(fits, truth):
    ok = fits[fits.half_life_days.notna()]
    return float(((ok.half_life_ci_low <= truth) & (truth <= ok.half_life_ci_high)).mean())


def test_count_fit_on_poisson_counts_is_unbiased_and_covers():
    """Poisson counts decaying into the detection limit: few-event points count, weighted.

    With counting noise alone the interval is conservative (the wider of the counting
    floor and Student's t on a few degrees of freedom): 95-99.8 % coverage, not 100 %.
    """
    days = np.array([0, 3, 7, 10, 14, 21, 28, 35, 42])
    expected = 400 * 2.0 ** (-(days - 3) / 5.0)
    expected[0] = 0.0
    fits, log_fits = _count_fits(11, 1000, days, expected, log_fit=True)
    assert fits.half_life_days.notna().mean() > 0.99
    assert 0.95 <= _coverage(fits, 5.0) <= 0.998
    errors = fits.half_life_days / 5.0 - 1
    assert abs(np.nanmedian(errors)) < 0.02
    # the log fit over the quantified points only scatters more
    assert np.nanmedian(np.abs(errors)) < np.nanmedian(np.abs(log_fits / 5.0 - 1))


@pytest.mark.parametrize("extra_sd", [0.2, 0.3])
def test_count_fit_interval_widens_with_scatter_beyond_counting(extra_sd):
    """Counts scattered beyond Poisson (a lognormal factor per point, as biology and
    gating add): the 95 % interval keeps 90-99 % coverage of the true half-life, and its
    half-width (in slope) matches the spread of the slope estimates over 1,000 studies
    (1.96 sd, times up to 1.6 for Student's t on 4-6 degrees of freedom): not narrower,
    as a counting-only interval would be, nor needlessly wide."""
    days = np.array([0, 3, 7, 10, 14, 21, 28, 35, 42])
    expected = 4000 * 2.0 ** (-(days - 3) / 7.0)
    expected[0] = 0.0
    fits, _ = _count_fits(12, 1000, days, expected, extra_sd)
    ok = fits[fits.half_life_days.notna()]
    assert len(ok) >= 990
    assert 0.90 <= _coverage(fits, 7.0) <= 0.99
    ln2 = math.log(2.0)
    slope = -ln2 / ok.half_life_days
    half_width = (ln2 / ok.half_life_ci_low - ln2 / ok.half_life_ci_high) / 2
    ratio = half_width.median() / (1.96 * slope.std(ddof=1))
    assert 1.0 <= ratio <= 1.6, ratio
    assert slope.mean() == pytest.approx(-ln2 / 7.0, rel=0.03)


def test_count_fit_ignores_points_under_the_detection_limit():
    days = np.array([0, 3, 7, 14, 21, 28])
    values = np.array([0.0, 100.0, 50.0, 25.0, 12.5, 1.0])
    counts = values * 2  # the last point: 2 events
    h = fit_half_life(days, values, [Q] * 6, infusions=[0], counts=counts)
    assert h["half_life_n"] == 3  # days 7, 14, 21; day 28 has 2 events
    assert h["half_life_days"] == pytest.approx(7.0, rel=1e-9)


def test_trend_row_peak_auc_and_detection():
    days = [-7, 3, 7, 14, 28, 42]
    values = [0.1, 40.0, 100.0, 50.0, 4.0, 0.5]
    status = ["not_detected", Q, Q, Q, "not_quantifiable", "not_detected"]
    row = trend_row(days, values, status, infusions=[0, 14], doses=[1e7, 2e7])
    assert row["peak_day"] == 7 and row["peak_value"] == 100.0
    assert row["last_detectable_day"] == 28 and row["last_quantified_day"] == 14
    # trapezoid from (0, 0): pre-infusion values are not part of the area
    expected = np.trapezoid([0, 40, 100, 50, 4, 0.5], [0, 3, 7, 14, 28, 42])
    assert row["auc"] == pytest.approx(expected) and row["auc_days"] == 42
    assert row["n_infusions"] == 2 and row["total_dose_per_kg"] == 3e7
    assert row["last_infusion_day"] == 14
    nothing = trend_row([3, 7], [0.0, 0.0], ["not_detected"] * 2)
    assert math.isnan(nothing["peak_day"]) and math.isnan(nothing["last_detectable_day"])


def test_a_series_never_detected_has_auc_zero_and_one_never_judged_none():
    # 15 and 12 donor events a day: below the detection limit, so "not detected" in the
    # report; its area is 0, not the sum of the sub-limit values (here 600 cells/µL x days)
    never = trend_row([3, 28], [10.0, 20.0], ["not_detected"] * 2, counts=[15, 12])
    assert math.isnan(never["last_detectable_day"]) and never["auc"] == 0.0
    assert never["auc_days"] == 28
    # detected on day 3, but that day's % is of too few events to judge (NaN): no peak, and
    # no area over the rest (day 120's 0 % would make it 0 % x days, a measured-looking value)
    judged = trend_row([3, 120], [np.nan, 0.0], ["not_quantifiable", "not_detected"])
    assert judged["last_detectable_day"] == 3 and math.isnan(judged["peak_value"])
    assert math.isnan(judged["auc"])
    # with nothing judged at all the area stays empty, as before
    assert math.isnan(trend_row([3], [np.nan], ["not_detected"])["auc"])


def test_dose_correlation_reads_a_never_detected_patient_as_zero():
    # two strata rows of one population where no patient's donor cells were detected: the
    # AUCs are 0, so no correlation (a constant), never one read off sub-limit noise
    rows = [
        {
            **trend_row([7, 28], [v, v / 2], ["not_detected"] * 2, doses=[d], infusions=[0]),
            "patient": f"P{i}",
            "stratum": "NK",
            "population": "CIK",
            "measure": "donor_per_ul",
            "half_life_days": np.nan,
        }
        for i, (v, d) in enumerate([(0.3, 1e6), (0.1, 2e6), (0.5, 4e6), (0.2, 8e6)])
    ]
    out = cohort_summary(pd.DataFrame(rows)).iloc[0]
    assert out.n_detected == 0 and out.auc_n == 0
    assert math.isnan(out.dose_auc_spearman)


def test_cohort_summary_relates_dose_to_persistence():
    rows = []
    for i, dose in enumerate([1e6, 2e6, 4e6, 8e6]):
        rows.append(
            {
                "patient": f"P{i}",
                "stratum": "CIK",
                "population": "CIK",
                "measure": "donor_per_ul",
                "peak_value": 10.0 * (i + 1),
                "auc": 100.0 * (i + 1),
                "half_life_days": 8.0 + i,
                "total_dose_per_kg": dose,
                "last_detectable_day": 30.0,
            }
        )
    rows.append({**rows[0], "patient": "N1", "stratum": "NK", "half_life_days": np.nan})
    out = cohort_summary(pd.DataFrame(rows))
    assert list(out.columns) == list(COHORT_COLUMNS)
    cik = out[out.stratum == "CIK"].iloc[0]
    assert cik.n_patients == 4 and cik.half_life_n == 4
    assert cik.dose_auc_spearman == pytest.approx(1.0)
    assert cik.half_life_median == pytest.approx(9.5)
    nk = out[out.stratum == "NK"].iloc[0]
    assert nk.half_life_n == 0 and math.isnan(nk.dose_auc_spearman)
    assert cohort_summary(pd.DataFrame()).empty


# ---------------------------------------------------------------- the fitted decay line


def _line_at(h, day):
    """The stored fit's value at `day` (on the phase that contains it)."""
    from cytokit.analysis.trends import decay_phases

    for start, end, value in decay_phases(h["half_life_phases"]):
        if start <= day <= end:
            return value * math.exp(h["half_life_slope"] * (day - start))
    raise AssertionError(f"day {day} in no phase of {h['half_life_phases']!r}")


def test_stored_line_is_the_least_squares_fit_of_the_decay_points():
    rng = np.random.default_rng(3)
    days = np.array([0, 3, 7, 10, 14, 21, 28, 35])
    y = 200 * 2.0 ** (-days / 5.0) * np.exp(0.2 * rng.standard_normal(days.size))
    y[0], y[1] = 1.0, 300.0  # before the infusion, and the peak
    h = fit_half_life(days, y, [Q] * days.size, infusions=[0])
    assert math.isfinite(h["half_life_days"])
    decay = days >= 7  # the points after the peak
    slope, icept = np.polyfit(days[decay], np.log(y[decay]), 1)
    assert h["half_life_slope"] == pytest.approx(slope, rel=1e-9)
    assert h["half_life_days"] == pytest.approx(math.log(2) / -slope, rel=1e-9)
    assert h["half_life_phases"].startswith("7-35:")
    for d in days[decay]:
        assert _line_at(h, d) == pytest.approx(math.exp(icept + slope * d), rel=1e-6)


def test_count_fit_line_of_each_phase_reproduces_the_phase():
    """Decays after three infusions, counts exactly on the model: the quasi-Poisson
    fit's line of each phase is that phase's own log-linear fit."""
    k = Kinetics(half_life_days=8.0, expansion_fold=1.5, peak_delay_days=2.0, recovery=0.25)
    doses = [(42, 1e6), (63, 2e6), (84, 3e6)]
    days = np.array([-7, 43, 49, 56, 63, 64, 70, 77, 84, 85, 88, 91, 98, 112])
    y = persistence_curve(days.astype(float), doses, k)
    counts = y * (100.0 / y[y > 0].min())  # every point well above the 20-event limit
    h = fit_half_life(days, y, [Q] * days.size, infusions=[0, 21, 42, 63, 84], counts=counts)
    assert h["half_life_days"] == pytest.approx(8.0, rel=1e-6)
    phases = [tuple(p.split(":")[0].split("-")) for p in h["half_life_phases"].split("; ")]
    assert len(phases) == 3
    for start, end in phases:
        sel = (days >= float(start)) & (days <= float(end))
        slope, icept = np.polyfit(days[sel], np.log(y[sel]), 1)
        assert h["half_life_slope"] == pytest.approx(slope, rel=1e-6)
        for d in days[sel]:
            assert _line_at(h, d) == pytest.approx(math.exp(icept + slope * d), rel=1e-6)


def test_no_line_where_the_half_life_is_not_estimable():
    days = np.array([0, 3, 7, 14, 21])
    for values in ([0, 10, 50, 40, 30], [1, 50, 40, 60, 45]):  # too few points; no decay
        h = fit_half_life(days, values, [Q] * 5, infusions=[0])
        assert not math.isfinite(h["half_life_days"])
        assert math.isnan(h["half_life_slope"]) and h["half_life_phases"] == ""
    row = trend_row(days, [1, 50, 40, 60, 45], [Q] * 5, [0], [1.0])
    assert math.isnan(row["half_life_slope"]) and row["half_life_phases"] == ""


# ---------------------------------------------------------------- the fitted line's 95 % band


def _phase_design(days, phases):
    """Phase indicators and the day (not centred): ``log(y) = a_s + b · day``."""
    idx = np.concatenate(phases)
    x = np.zeros((idx.size, len(phases) + 1))
    for s, p in enumerate(phases):
        x[np.searchsorted(idx, p), s] = 1.0
    x[:, -1] = days[idx]
    return idx, x


def _at_starts(cov, starts):
    """``(var_a, cov_ab, var_b)`` of ``a_s + b · start_s`` and ``b`` from the covariance of
    ``(a_1 … a_S, b)``."""
    out = []
    for s, start in enumerate(starts):
        g = np.zeros(cov.shape[0])
        g[s], g[-1] = 1.0, start
        e = np.zeros(cov.shape[0])
        e[-1] = 1.0
        out.append((g @ cov @ g, g @ cov @ e, cov[-1, -1]))
    return out


def _stored(h):
    from cytokit.analysis.trends import decay_covariances

    return decay_covariances(h["half_life_cov"])


def test_log_fit_covariance_is_that_of_ordinary_least_squares():
    """Two decay phases sharing a slope: the stored covariance of each phase's
    (log value at its first day, slope) is σ²(XᵀX)⁻¹ of the OLS fit, σ² = RSS / dof."""
    from cytokit.stats.intervals import t_quantile

    rng = np.random.default_rng(11)
    days = np.array([0, 3, 7, 10, 14, 20, 21, 24, 28, 35, 42], dtype=float)
    y = np.where(days <= 20, 300 * 2.0 ** (-days / 6.0), 500 * 2.0 ** (-(days - 20) / 6.0))
    y = y * np.exp(0.2 * rng.standard_normal(days.size))
    y[1], y[6] = 1e4, 1e4  # each segment's highest sample: its decay starts after it
    h = fit_half_life(days, y, [Q] * days.size, infusions=[0, 20])
    phases = [np.flatnonzero((days > 3) & (days <= 20)), np.flatnonzero(days > 21)]
    idx, x = _phase_design(days, phases)
    beta, rss, *_ = np.linalg.lstsq(x, np.log(y[idx]), rcond=None)
    dof = idx.size - x.shape[1]
    cov = float(rss[0]) / dof * np.linalg.inv(x.T @ x)
    assert h["half_life_slope"] == pytest.approx(beta[-1], rel=1e-9)
    want = _at_starts(cov, [days[p[0]] for p in phases])
    got = _stored(h)
    assert len(got) == 2
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, rel=1e-9)
    assert h["half_life_quantile"] == pytest.approx(t_quantile(0.975, dof), rel=1e-12)
    # the slope's interval is the stored variance's: half-life CI = ln 2 / -(b ± q·se)
    half = h["half_life_quantile"] * math.sqrt(got[0][2])
    assert h["half_life_ci_high"] == pytest.approx(math.log(2) / -(beta[-1] + half), rel=1e-9)


@pytest.mark.parametrize("extra_scatter", [False, True])
def test_count_fit_covariance_is_that_of_the_poisson_regression(extra_scatter):
    """The count fit's stored covariance: the inverse Fisher information of the Poisson
    regression at its optimum (computed here by Newton's method on the uncentred
    days), times the Pearson dispersion when that scatter sets the interval."""
    from cytokit.stats.intervals import t_quantile

    rng = np.random.default_rng(1)
    days = np.array([0, 3, 7, 10, 14, 17, 21, 24, 28, 31, 35], dtype=float)
    exposure = np.linspace(1.5, 0.6, days.size)  # events per unit of the measure
    mean = 2000 * 2.0 ** (-days / 6.0) * (rng.lognormal(0, 0.3, days.size) if extra_scatter else 1)
    k = rng.poisson(exposure * mean).astype(float)
    k[1] = 1e5  # the peak
    h = fit_half_life(days, k / exposure, [Q] * days.size, infusions=[0], counts=k)
    phase = np.flatnonzero((days > 3) & (k >= 20))
    idx, x = _phase_design(days, [phase])
    offset = np.log(exposure[idx])
    beta = np.array([np.log(k[idx].mean() / exposure[idx].mean()), 0.0])
    for _ in range(200):
        mu = np.exp(x @ beta + offset)
        step = np.linalg.solve(x.T @ (x * mu[:, None]), x.T @ (k[idx] - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-14:
            break
    mu = np.exp(x @ beta + offset)
    info = np.linalg.inv(x.T @ (x * mu[:, None]))
    dof = idx.size - 2
    dispersion = float(np.sum((k[idx] - mu) ** 2 / mu)) / dof
    t = t_quantile(0.975, dof)
    scatter = t * math.sqrt(dispersion) > 1.959963984540054
    assert scatter == extra_scatter  # each branch of the interval is exercised
    cov = info * dispersion if scatter else info
    assert h["half_life_quantile"] == pytest.approx(t if scatter else 1.959963984540054)
    assert h["half_life_slope"] == pytest.approx(beta[-1], rel=1e-9)
    (got,) = _stored(h)
    (want,) = _at_starts(cov, [days[phase[0]]])
    assert got == pytest.approx(want, rel=1e-9)


def _band_coverage(kind: str, runs: int = 2000) -> np.ndarray:
    """Share of simulated series whose fitted line's 95 % band covers the true decay
    curve, at four days of the decay phase (first fitted day, inside, last)."""
    from cytokit.analysis.trends import decay_band, decay_covariances, decay_phases

    days = np.array([0, 3, 7, 10, 14, 21, 28], dtype=float)

    def true(d):
        return 400 * 2.0 ** (-(d - 3) / 5.0)

    check = np.array([7, 12, 17.5, 28.0])
    covered, n = np.zeros(check.size), 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        if kind == "log":
            y = true(days) * np.exp(0.25 * rng.standard_normal(days.size))
            counts = None
        else:
            counts = rng.poisson(0.8 * true(days)).astype(float)
            y = counts / 0.8
        y[0], y[1] = 1.0, 1e4  # before the infusion; the peak
        h = fit_half_life(days, y, [Q] * days.size, infusions=[0], counts=counts)
        if not math.isfinite(h["half_life_days"]):
            continue
        n += 1
        ((start, _end, value),) = decay_phases(h["half_life_phases"])
        (cov,) = decay_covariances(h["half_life_cov"])
        _fit, low, high = decay_band(
            check, start, value, h["half_life_slope"], cov, h["half_life_quantile"]
        )
        covered += (low <= true(check)) & (true(check) <= high)
    assert n >= 0.9 * runs
    return covered / n


@pytest.mark.slow
def test_band_covers_the_true_decay_95_percent_of_the_time():
    """Log-normal scatter: the band is Student's exact interval, coverage 95 % (2,000
    series: ± 2 % is four standard errors). Poisson counts: the interval is the wider
    of counting noise and the points' scatter, so at least 95 % and not much more."""
    log = _band_coverage("log")
    assert np.all(np.abs(log - 0.95) < 0.02), log
    counts = _band_coverage("counts")
    assert np.all((counts > 0.94) & (counts < 0.995)), counts


def test_a_pct_of_too_few_events_is_no_point_of_the_pct_trend():
    """Day 21's NK gate kept 3 events, all donor: 100 % (95 % CI 44-100) cannot judge
    chimerism. The donor_pct trend reads it as missing (not its peak, not in its AUC),
    as the plot draws it ("too few cells"); the cells/µL trend keeps its small count."""
    from types import SimpleNamespace

    from cytokit.analysis.cohort import trend_tables
    from cytokit.analysis.trends import judged_values

    days = np.array([3, 7, 14, 21, 28, 35, 42])
    events = np.array([2000, 2000, 2000, 3, 2000, 2000, 2000])
    pct = np.array([60.0, 55.0, 40.0, 100.0, 20.0, 10.0, 5.0])
    donor = np.round(pct * events / 100).astype(int)
    chim = pd.DataFrame(
        {
            "patient": "P1", "stratum": "A", "sample_type": "PB", "population": "NK",
            "day": days, "events": events, "donor_events": donor, "donor_pct": pct,
            "donor_per_ul": donor * 0.1,
            "status": np.where(donor < 20, "not_detected",
                               np.where(donor < 50, "not_quantifiable", "quantified")),
        }
    )  # fmt: skip
    trends, _ = trend_tables(chim, SimpleNamespace(infusions=[]))
    row = trends.set_index("measure").loc["donor_pct"]
    kept = chim[chim["day"] != 21]
    alone, _ = trend_tables(kept, SimpleNamespace(infusions=[]))
    want = alone.set_index("measure").loc["donor_pct"]
    for col in ("peak_value", "peak_day", "auc", "half_life_days", "half_life_n"):
        assert row[col] == pytest.approx(want[col]), col
    assert row["peak_value"] == 60.0 and np.isfinite(row["half_life_days"])
    cells = trends.set_index("measure").loc["donor_per_ul"]
    assert cells["auc"] != pytest.approx(alone.set_index("measure").loc["donor_per_ul"]["auc"])
    # the limit: 20 donor events of at least 80 in the population
    got = judged_values("donor_pct", [50.0, 50.0, 50.0], [79, 80, 5000])
    assert np.isnan(got[0]) and got[1] == 50.0 and got[2] == 50.0
    assert judged_values("donor_per_ul", [1.0], [3])[0] == 1.0


def test_the_cohort_summary_reads_each_patients_blood_series_once():
    """trends.csv holds a series per sample type; the cohort summary pooled a patient's
    product bags (their % donor is the product's) with the blood series, counting the
    patient twice and taking a bag's 61.9 % as a peak."""
    from cytokit.analysis.cohort import blood_series

    def series(patient, sample_type, peak):
        return {
            "patient": patient, "stratum": "A", "sample_type": sample_type,
            "population": "NK", "measure": "donor_pct", "peak_value": peak, "auc": 10 * peak,
            "half_life_days": np.nan, "total_dose_per_kg": 1e7, "last_detectable_day": 28.0,
        }  # fmt: skip

    trends = pd.DataFrame(
        [
            series("P1", "PB", 33.9),
            series("P1", "product_post", 61.9),
            series("P2", "product_pre", 50.0),
            series("P2", "PB", 20.0),
            series("P2", "BM", 45.0),  # beside the patient's PB: not a second series
            series("P3", "BM", 12.0),  # the patient's only blood-side series
        ]
    )
    row = cohort_summary(blood_series(trends)).iloc[0]
    assert row.n_patients == 3 and row.n_detected == 3 and row.peak_n == 3
    assert row.peak_max == 33.9 and row.peak_median == 20.0
