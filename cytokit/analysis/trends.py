"""Persistence over time: peak, last detection, area under the curve, half-life; cohort summary.

One trend per patient, sample type, population and measure (``donor_per_ul``,
the absolute persistence of donor cells, and ``donor_pct``, chimerism), from
the chimerism table's points (day, value, status).

* **peak**: the largest value among days >= 0 whose status is
  ``quantified`` (if none is, among detected days; else empty).
* **last_detectable_day**: the last day with donor cells detected (status
  ``quantified`` or ``not_quantifiable``: at least 20 donor events);
  **last_quantified_day**: the last ``quantified`` day.
* **auc**: trapezoidal area under the measure over the sampled days from day
  0 (the first infusion) to the last sampled day; donor cells are absent
  before the first infusion, so a point (0, 0) starts the curve when there is
  no day-0 sample. Every sampled value counts (not-detected values are small
  and measured), but for ``donor_pct`` a point whose population had too few
  events to judge chimerism (`judged_values`: fewer than 80) is missing, for
  the peak and the half-life too. A series never detected has AUC 0 (its
  values are all below the detection limit); one detected only on days too
  small to judge has no peak and no AUC. Units: cells/µL × days, or % × days.
  ``auc_days`` is the span.
* **half-life** (`fit_half_life`): an exponential fit of the decay phases.
  The days are cut into segments at the infusion days (a sample on an
  infusion day precedes that infusion); in each segment the decay phase is
  the points after the segment's highest point. All segments share one slope
  ``b`` (each has its own intercept, since every infusion adds cells):
  ``log(y) = a_s + b · day``. Only segments with at least two decay points
  inform the slope. The decay phase starts at the first point after a
  segment's highest sample, not at that sample, which may still be on the
  rise (on simulated studies including it biases half-lives upwards by
  ~5-20 %).

  With the donor event count behind each value (as `trend_row` gets it from
  the chimerism table), the fit is a **quasi-Poisson regression** of those
  counts, each point's value per event as its exposure: every point with
  donor cells detected (at least 20 events) counts, weighted by its events.
  Keeping only points above a higher count limit (``quantified``) would
  discard information and select late points by their noise; weighting lets
  the few-event points count for what they are worth. The slope's 95 %
  interval is the wider of counting noise alone (Poisson variance, normal
  quantile) and the scatter the points show (Pearson dispersion, Student's t
  on ``n − segments − 1`` degrees of freedom): biological and gating scatter
  beyond counting noise widen it, and three points that happen to lie on a
  line do not narrow it below what their counts allow. Without counts the
  fit is least squares on ``log(y)`` over the ``quantified`` points, the
  interval from the residuals and Student's t. Half-life = ln 2 / −b, its
  interval from the slope's; R² is of the within-segment fit on the log
  scale (weighted like the fit). Not estimable (an empty half-life and a note
  saying why) with fewer than 3 decay points, no degree of freedom left, or
  a decay that is not significant (the slope's 95 % interval reaches 0; the
  note then gives the point estimate).

  The fitted line, so that a plot can draw it: ``half_life_slope``, the
  shared slope ``b`` of ``log(measure)`` per day, and ``half_life_phases``,
  one ``start-end:value`` entry per decay phase joined by ``"; "`` (the
  phase's first and last fitted day and the fitted value of the measure at
  its first day, ``exp(a_s + b · start)``), e.g. ``5-28:80.1; 45-70:41``.
  Between ``start`` and ``end`` the fit is ``value · exp(b · (day − start))``.
  Both are empty wherever the half-life is not estimable (never a zero slope).

  The fitted line's uncertainty, so that a plot can draw its 95 % band:
  ``half_life_cov``, one ``var_a,cov_ab,var_b`` entry per decay phase (in the
  order of ``half_life_phases``, joined by ``"; "``): the covariance of ``a``,
  the log of the fitted value at the phase's first day, and the slope ``b``;
  ``half_life_quantile``, the critical value the slope's 95 % interval used
  (Student's t on the residual degrees of freedom, or the normal 1.96 where
  counting noise alone sets the interval; the covariance is that of the same
  choice: residual scatter or Poisson variance). The pointwise 95 % interval
  of the fitted line at ``day`` in a phase is ``exp(a + b·s ± q·sqrt(var_a +
  2·s·cov_ab + s²·var_b))`` with ``s = day − start`` (`decay_band`). Both are
  empty where the half-life is not estimable.

The cohort summary (`cohort_summary`) gives, per stratum, population and
measure, the number of patients, the median and range of peak, AUC and
half-life, the median total dose per kg, and Spearman's rank correlation of
total dose with AUC and with peak (with at least three patients), so
persistence can be related to dose.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cytokit.analysis.chimerism import DETECTION_EVENTS
from cytokit.stats.intervals import t_quantile

__all__ = [
    "COHORT_COLUMNS",
    "TREND_COLUMNS",
    "cohort_summary",
    "decay_band",
    "decay_covariances",
    "decay_phases",
    "fit_half_life",
    "trend_row",
]

TREND_COLUMNS = (
    "patient", "stratum", "sample_type", "population", "measure", "n_days", "first_day",
    "last_day", "peak_day", "peak_value", "last_detectable_day", "last_quantified_day", "auc",
    "auc_days", "half_life_days", "half_life_ci_low", "half_life_ci_high", "half_life_n",
    "half_life_r2", "half_life_from_day", "half_life_note", "n_infusions", "total_dose_per_kg",
    "last_infusion_day", "dose_product", "doses_per_kg", "half_life_slope", "half_life_phases",
    "half_life_cov", "half_life_quantile", "failed_days",
)  # fmt: skip
COHORT_COLUMNS = (
    "stratum", "population", "measure", "n_patients", "n_detected", "peak_median", "peak_min",
    "peak_max", "auc_median", "auc_min", "auc_max", "half_life_n", "half_life_median",
    "half_life_min", "half_life_max", "dose_median", "dose_auc_spearman", "dose_peak_spearman",
    "dose_product", "peak_n", "auc_n",
)  # fmt: skip
DETECTED = ("quantified", "not_quantifiable")
MIN_POINTS = 3
#: Donor events a point needs to enter a count-based fit (as for ``not_quantifiable``).
MIN_FIT_EVENTS = 20
#: Two-sided 95 % quantile of the standard normal distribution.
_Z95 = 1.959963984540054
#: Largest detection limit of a donor % a trend reads: 20 donor events (the detection
#: limit) in a population of at least 80. A smaller population's % (3 of 3 events:
#: 100 %, 95 % CI 44-100) cannot judge chimerism; the plot draws it as "too few cells"
#: and a donor_pct trend counts it as missing (not as its peak, nor in its AUC).
MAX_PCT_LOD = 25.0


def too_few_to_judge(events) -> np.ndarray:
    """Whether a population of `events` is too small to judge chimerism: its donor %
    detection limit (`DETECTION_EVENTS` of its events) is above `MAX_PCT_LOD` (fewer
    than 80 events; none, or a missing count, too)."""
    events = np.asarray(events, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lod = 100.0 * DETECTION_EVENTS / events
    return ~(lod <= MAX_PCT_LOD)


def judged_values(measure: str, values, events) -> np.ndarray:
    """`values` of `measure` as a trend reads them: a ``donor_pct`` whose population had
    too few events to judge (`too_few_to_judge`) is NaN; cells/µL (a count, however
    small) as they are."""
    values = np.asarray(values, dtype=np.float64)
    if measure != "donor_pct":
        return values
    return np.where(too_few_to_judge(events), np.nan, values)


def _segments(days: np.ndarray, infusions: list[int]) -> np.ndarray:
    """Segment index of each day: the number of infusions strictly before it."""
    cuts = np.array(sorted(set(infusions)), dtype=np.float64)
    return np.searchsorted(cuts, days, side="left")


def fit_half_life(
    days,
    values,
    status,
    infusions=(),
    *,
    counts=None,
    min_points: int = MIN_POINTS,
    from_peak: bool = False,
) -> dict:
    """Half-life (days) from the decay phases (see the module docstring).

    Parameters
    ----------
    days, values : array_like, shape (n,)
    status : sequence of str, shape (n,)
    infusions : sequence of int
        Infusion days.
    counts : array_like, shape (n,), optional
        Donor events behind each value: fit them by quasi-Poisson regression
        (points with at least `MIN_FIT_EVENTS`). Without: least squares on
        the logs of the ``quantified`` values.
    min_points : int
    from_peak : bool
        Start each decay phase at its highest point instead of after it.

    Returns
    -------
    dict
        half_life_days, half_life_ci_low, half_life_ci_high, half_life_n,
        half_life_r2, half_life_from_day, half_life_note, half_life_slope,
        half_life_phases, half_life_cov, half_life_quantile.
    """
    days = np.asarray(days, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    status = np.asarray(status, dtype=object)
    k = None if counts is None else np.asarray(counts, dtype=np.float64)
    out = {
        "half_life_days": float("nan"),
        "half_life_ci_low": float("nan"),
        "half_life_ci_high": float("nan"),
        "half_life_n": 0,
        "half_life_r2": float("nan"),
        "half_life_from_day": float("nan"),
        "half_life_note": "",
        "half_life_slope": float("nan"),
        "half_life_phases": "",
        "half_life_cov": "",
        "half_life_quantile": float("nan"),
    }
    order = np.argsort(days)
    days, values, status = days[order], values[order], status[order]
    if k is not None:
        k = k[order]
        usable = np.isfinite(k) & (k >= MIN_FIT_EVENTS)
        kind = f"point(s) with >= {MIN_FIT_EVENTS} donor events"
    else:
        usable = status == "quantified"
        kind = "quantified point(s)"
    seg = _segments(days, list(infusions))
    phases = []
    for s in np.unique(seg):
        sel = np.flatnonzero((seg == s) & np.isfinite(values) & (days >= 0))
        if sel.size < 2:
            continue
        peak = sel[np.argmax(values[sel])]
        first = peak if from_peak else peak + 1
        decay = [i for i in sel if i >= first and usable[i] and values[i] > 0]
        if len(decay) >= 2:
            phases.append(np.array(decay))
    n = sum(len(p) for p in phases)
    out["half_life_n"] = int(n)
    dof = n - len(phases) - 1
    if n < min_points or dof < 1:
        out["half_life_note"] = (
            f"not estimable: {n} {kind} in decay phases (need {min_points}, "
            "and more points than decay phases + 1)"
        )
        return out
    starts = np.array([days[p[0]] for p in phases])
    if k is None:
        fit = _log_fit(days, values, phases, dof, starts)
    else:
        fit = _count_fit(days, values, k, phases, dof, starts)
    slope, half_width, r2, icepts, quantile, covs = fit
    out["half_life_r2"] = r2
    out["half_life_from_day"] = float(min(days[p[0]] for p in phases))
    if not slope < 0:
        out["half_life_note"] = f"not estimable: counts do not decay (slope {slope:.3g}/day)"
        return out
    hi_slope = slope + half_width
    lo_slope = slope - half_width
    ln2 = math.log(2.0)
    if hi_slope >= 0:
        out["half_life_note"] = (
            f"not estimable: the decay is not significant (slope {slope:.3g}/day, 95 % CI "
            f"{lo_slope:.3g} to {hi_slope:.3g}; point estimate {ln2 / -slope:.3g} days)"
        )
        return out
    out["half_life_days"] = ln2 / -slope
    out["half_life_ci_low"] = ln2 / -lo_slope
    out["half_life_ci_high"] = ln2 / -hi_slope
    if len(phases) > 1:
        out["half_life_note"] = f"shared slope over {len(phases)} decay phases"
    out["half_life_slope"] = slope
    out["half_life_phases"] = "; ".join(
        f"{days[p[0]]:g}-{days[p[-1]]:g}:{math.exp(a + slope * days[p[0]]):.8g}"
        for p, a in zip(phases, icepts, strict=True)
    )
    out["half_life_cov"] = "; ".join(f"{va:.10g},{cab:.10g},{vb:.10g}" for va, cab, vb in covs)
    out["half_life_quantile"] = quantile
    return out


def decay_phases(text) -> list[tuple[float, float, float]]:
    """``(start, end, value at start)`` of each phase of a ``half_life_phases`` entry
    (empty for an empty or missing one)."""
    if not isinstance(text, str) or not text.strip():
        return []
    out = []
    for part in text.split(";"):
        span, value = part.strip().split(":")
        start, end = span.split("-")
        out.append((float(start), float(end), float(value)))
    return out


def decay_covariances(text) -> list[tuple[float, float, float]]:
    """``(var_a, cov_ab, var_b)`` of each phase of a ``half_life_cov`` entry (empty for
    an empty or missing one)."""
    if not isinstance(text, str) or not text.strip():
        return []
    out = []
    for part in text.split(";"):
        var_a, cov_ab, var_b = (float(v) for v in part.strip().split(","))
        out.append((var_a, cov_ab, var_b))
    return out


def decay_band(
    days, start: float, value: float, slope: float, cov, quantile: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted line of one decay phase at `days` and its pointwise 95 % interval.

    Parameters
    ----------
    days : array_like
    start, value : float
        The phase's first day and the fitted value there (`decay_phases`).
    slope : float
        ``half_life_slope``.
    cov : tuple of float
        ``(var_a, cov_ab, var_b)`` of the phase (`decay_covariances`).
    quantile : float
        ``half_life_quantile``.

    Returns
    -------
    fit, low, high : ndarray
        ``exp(a + b·s)`` and ``exp(a + b·s ∓ q·se)`` with ``s = day − start`` and
        ``se² = var_a + 2·s·cov_ab + s²·var_b`` (the interval of the fitted
        mean on the log scale, back-transformed).
    """
    s = np.asarray(days, dtype=np.float64) - start
    var_a, cov_ab, var_b = cov
    se = np.sqrt(np.maximum(var_a + 2.0 * s * cov_ab + s * s * var_b, 0.0))
    log_fit = math.log(value) + slope * s
    return np.exp(log_fit), np.exp(log_fit - quantile * se), np.exp(log_fit + quantile * se)


def _phase_covariances(cov: np.ndarray, starts: np.ndarray, centre: float) -> list:
    """``(var_a, cov_ab, var_b)`` per phase from the covariance `cov` of the
    parameters ``(a_1 … a_S, b)`` of ``log(y) = a_s + b · (day − centre)``, for ``a``
    moved to each phase's first day: ``a_s + b · (start_s − centre)``."""
    var_b = float(cov[-1, -1])
    out = []
    for s, start in enumerate(starts):
        u = float(start) - centre
        var_a = float(cov[s, s] + 2.0 * u * cov[s, -1] + u * u * var_b)
        out.append((var_a, float(cov[s, -1] + u * var_b), var_b))
    return out


def _log_fit(days, values, phases, dof, starts) -> tuple:
    """Shared slope of ``log(values)`` over the phases (own intercepts).

    Returns the slope, the half-width of its 95 % interval, R², each
    phase's intercept (``log(value)`` at day 0), the interval's quantile
    (Student's t) and each phase's ``(var_a, cov_ab, var_b)`` at its first day.
    """
    xc = np.concatenate([days[p] - days[p].mean() for p in phases])
    ys = [np.log(values[p]) for p in phases]
    yc = np.concatenate([y - y.mean() for y in ys])
    sxx = float(xc @ xc)
    slope = float(xc @ yc) / sxx
    resid = yc - slope * xc
    sse = float(resid @ resid)
    syy = float(yc @ yc)
    sigma2 = sse / dof
    q = t_quantile(0.975, dof)
    half_width = q * math.sqrt(sigma2 / sxx)
    icepts = [
        float(y.mean()) - slope * float(days[p].mean()) for p, y in zip(phases, ys, strict=True)
    ]
    # each phase's mean log is independent of the slope (centred days): at the
    # phase's first day, a = mean + b·(start − mean day)
    covs = []
    for p, start in zip(phases, starts, strict=True):
        u = float(start) - float(days[p].mean())
        covs.append((sigma2 / p.size + u * u * sigma2 / sxx, u * sigma2 / sxx, sigma2 / sxx))
    r2 = 1.0 - sse / syy if syy > 0 else float("nan")
    return slope, half_width, r2, icepts, q, covs


def _count_fit(days, values, counts, phases, dof, starts) -> tuple:
    """Quasi-Poisson fit of the counts: ``counts ~ exposure · exp(a_s + b · day)``.

    Iteratively reweighted least squares from the log fit; exposure = counts
    per value. Returns the slope, the half-width of its 95 % interval, the
    weighted R² of the logs and each phase's intercept (``log(value)`` at day 0). The interval is the wider of two: counting
    noise alone (Poisson variance, normal quantile) and the scatter the
    points show (Pearson dispersion, Student's t on `dof`), so neither a few
    points that happen to lie on a line nor scatter beyond counting noise
    make it too narrow. Then the interval's quantile and each phase's
    ``(var_a, cov_ab, var_b)`` at its first day, from the information matrix
    (Poisson) or it times the dispersion, whichever set the interval.
    """
    idx = np.concatenate(phases)
    phase = np.repeat(np.arange(len(phases)), [p.size for p in phases])
    k = counts[idx]
    lv = np.log(values[idx])
    offset = np.log(k) - lv  # log exposure: events per unit of the measure
    x = np.zeros((idx.size, len(phases) + 1))
    x[np.arange(idx.size), phase] = 1.0
    centre = float(days[idx].mean())
    x[:, -1] = days[idx] - centre
    beta = np.linalg.lstsq(x, lv, rcond=None)[0]
    for _ in range(100):
        mu = np.exp(x @ beta + offset)
        z = x @ beta + (k - mu) / mu
        xw = x * mu[:, None]
        new = np.linalg.solve(x.T @ xw, xw.T @ z)
        done = np.max(np.abs(new - beta)) < 1e-12
        beta = new
        if done:
            break
    mu = np.exp(x @ beta + offset)
    info = np.linalg.inv(x.T @ (x * mu[:, None]))
    dispersion = float(np.sum((k - mu) ** 2 / mu)) / dof
    t = t_quantile(0.975, dof)
    if t * math.sqrt(dispersion) > _Z95:  # scatter beyond counting noise sets the interval
        q, cov = t, info * dispersion
    else:
        q, cov = _Z95, info
    half_width = q * math.sqrt(cov[-1, -1])
    # weighted R² of log(values) within the phases (the fit's residuals are on that scale)
    resid = lv - x @ beta
    means = np.bincount(phase, mu * lv) / np.bincount(phase, mu)
    centred = lv - means[phase]
    sse = float(mu @ resid**2)
    syy = float(mu @ centred**2)
    r2 = 1.0 - sse / syy if syy > 0 else float("nan")
    b = float(beta[-1])
    covs = _phase_covariances(cov, starts, centre)
    return b, half_width, r2, [float(a) - b * centre for a in beta[:-1]], q, covs


def _auc(days: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    sel = (days >= 0) & np.isfinite(values)
    d, v = days[sel], values[sel]
    if d.size == 0:
        return float("nan"), 0.0
    if d[0] > 0:
        d = np.concatenate([[0.0], d])
        v = np.concatenate([[0.0], v])
    if d.size < 2:
        return 0.0, 0.0
    return float(np.sum((d[1:] - d[:-1]) * (v[1:] + v[:-1]) / 2.0)), float(d[-1] - d[0])


def trend_row(days, values, status, infusions=(), doses=(), counts=None, *, products=()) -> dict:
    """Peak, last detection, AUC and half-life of one patient's population over time.

    Parameters
    ----------
    days, values : array_like, shape (n,)
    status : sequence of str
    infusions : sequence of int
        The patient's infusion days.
    doses : sequence of float
        Dose per kg of each infusion (NaN when unknown).
    counts : array_like, optional
        Donor events behind each value (the half-life is then a count fit).
    products : sequence of str, optional
        The cell product of each infusion. Doses are summed per product, never
        across products: ``total_dose_per_kg`` is the total of a patient who
        received one product (named in ``dose_product``) and empty for one who
        received several (``dose_product`` then names them, joined by ``+``);
        ``doses_per_kg`` gives each product's total (``DLI: 2e+06; CIK: 1.8e+07``).

    Returns
    -------
    dict
        The `TREND_COLUMNS` from ``n_days`` on (the caller adds the keys).
    """
    days = np.asarray(days, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    status = np.asarray(status, dtype=object)
    row_counts = None if counts is None else np.asarray(counts, dtype=np.float64)
    order = np.argsort(days)
    days, values, status = days[order], values[order], status[order]
    if row_counts is not None:
        row_counts = row_counts[order]
    after = days >= 0
    row: dict = {
        "n_days": int(days.size),
        "first_day": float(days[0]) if days.size else float("nan"),
        "last_day": float(days[-1]) if days.size else float("nan"),
    }
    peak_day = peak = float("nan")
    for ok in (status == "quantified", np.isin(status, DETECTED)):
        sel = np.flatnonzero(ok & after & np.isfinite(values))
        if sel.size:
            i = sel[np.argmax(values[sel])]
            peak_day, peak = float(days[i]), float(values[i])
            break
    row["peak_day"], row["peak_value"] = peak_day, peak
    det = np.flatnonzero(np.isin(status, DETECTED) & after)
    quant = np.flatnonzero((status == "quantified") & after)
    row["last_detectable_day"] = float(days[det[-1]]) if det.size else float("nan")
    row["last_quantified_day"] = float(days[quant[-1]]) if quant.size else float("nan")
    row["auc"], row["auc_days"] = _auc(days, values)
    if not det.size and np.isfinite(row["auc"]):
        # below the detection limit on every day: not detected, so its area is 0 (what the
        # report shows and the dose correlation reads), not the sum of sub-limit values
        row["auc"] = 0.0
    elif det.size and not np.isfinite(peak):
        # detected only on days with too few events to judge: the curve is not known there,
        # and an area over the other days would read as a measured one
        row["auc"] = float("nan")
    row.update(fit_half_life(days, values, status, infusions, counts=row_counts))
    doses = np.asarray(doses, dtype=np.float64)
    row["n_infusions"] = len(infusions)
    names = [str(p) for p in products] if len(products) == doses.size else [""] * doses.size
    totals: dict[str, float] = {}
    for name, dose in zip(names, doses, strict=True):
        # an unknown dose makes its product's total unknown: any sum would be too low
        totals[name] = totals.get(name, 0.0) + float(dose)
    single = len(totals) == 1
    row["total_dose_per_kg"] = next(iter(totals.values())) if single else float("nan")
    row["last_infusion_day"] = float(max(infusions)) if len(infusions) else float("nan")
    row["dose_product"] = "+".join(totals)
    row["doses_per_kg"] = "; ".join(f"{k}: {v:.6g}" for k, v in totals.items() if k)
    return row


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan")
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def cohort_summary(trends: pd.DataFrame) -> pd.DataFrame:
    """Per stratum, population and measure: summaries of `trends` (see the module docstring)."""
    rows = []
    if trends.empty:
        return pd.DataFrame(columns=list(COHORT_COLUMNS))
    keys = ["stratum", "population", "measure"]
    for (stratum, pop, measure), g in trends.groupby(keys, sort=True, dropna=False):
        peak = g["peak_value"].to_numpy(dtype=float)
        auc = g["auc"].to_numpy(dtype=float)
        # the AUC summarised is that of the patients whose donor cells were detected, as
        # each patient's page shows it (the area under not-detected values says nothing);
        # the dose correlation reads every patient's, a not-detected one's 0 included
        detected = np.isfinite(g["last_detectable_day"].to_numpy(float))
        auc_shown = np.where(detected, auc, np.nan)
        hl = g["half_life_days"].to_numpy(dtype=float)
        dose = g["total_dose_per_kg"].to_numpy(dtype=float)
        # a correlation of dose with persistence reads one product's doses: when the
        # patients' single products differ, no dose statistic (never across products)
        with_dose = np.isfinite(dose)
        named = g["dose_product"] if "dose_product" in g else pd.Series([""] * len(g))
        dose_products = sorted({str(p) for p in named.to_numpy(dtype=object)[with_dose]})
        if len(dose_products) > 1:
            dose = np.full_like(dose, np.nan)
        hl_ok = hl[np.isfinite(hl)]

        def stat(a, fn):
            a = a[np.isfinite(a)]
            return float(fn(a)) if a.size else float("nan")

        rows.append(
            {
                "stratum": stratum,
                "population": pop,
                "measure": measure,
                "n_patients": int(g["patient"].nunique()),
                "n_detected": int(np.isfinite(g["last_detectable_day"].to_numpy(float)).sum()),
                "peak_median": stat(peak, np.median),
                "peak_min": stat(peak, np.min),
                "peak_max": stat(peak, np.max),
                "auc_median": stat(auc_shown, np.median),
                "auc_min": stat(auc_shown, np.min),
                "auc_max": stat(auc_shown, np.max),
                "half_life_n": int(hl_ok.size),
                "half_life_median": stat(hl, np.median),
                "half_life_min": stat(hl, np.min),
                "half_life_max": stat(hl, np.max),
                "dose_median": stat(dose, np.median),
                "dose_auc_spearman": _spearman(dose, auc),
                "dose_peak_spearman": _spearman(dose, peak),
                "dose_product": "; ".join(str(p) for p in dose_products),
                # how many patients the medians are of (a failed day leaves a peak out)
                "peak_n": int(np.isfinite(peak).sum()),
                "auc_n": int(np.isfinite(auc_shown).sum()),
            }
        )
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))
