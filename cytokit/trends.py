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
  and measured). Units: cells/µL × days, or % × days. ``auc_days`` is the span.
* **half-life** (`fit_half_life`): log-linear least squares on the decay
  phases. The days are cut into segments at the infusion days (a sample on an
  infusion day precedes that infusion); in each segment the decay phase is
  the ``quantified`` points after the segment's highest point. All segments
  share one slope ``b`` (each has its own intercept, since every infusion
  adds cells): ``log(y) = a_s + b · day``. Only segments with at least two
  decay points inform the slope. Half-life = ln 2 / −b, with a 95 % interval
  from the slope's standard error and Student's t on ``n − segments − 1``
  degrees of freedom; R² is of the within-segment fit. The decay phase starts
  at the first point after a segment's highest sample, not at that sample,
  which may still be on the rise (on simulated studies including it biases
  half-lives upwards by ~5-20 %). Not estimable (an empty half-life and a note
  saying why) with fewer than 3 decay points, no degree of freedom left, or a
  decay that is not significant (the slope's 95 % interval reaches 0; the
  note then gives the point estimate).

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

from cytokit.intervals import t_quantile

__all__ = ["COHORT_COLUMNS", "TREND_COLUMNS", "cohort_summary", "fit_half_life", "trend_row"]

TREND_COLUMNS = (
    "patient", "stratum", "sample_type", "population", "measure", "n_days", "first_day",
    "last_day", "peak_day", "peak_value", "last_detectable_day", "last_quantified_day", "auc",
    "auc_days", "half_life_days", "half_life_ci_low", "half_life_ci_high", "half_life_n",
    "half_life_r2", "half_life_from_day", "half_life_note", "n_infusions", "total_dose_per_kg",
    "last_infusion_day",
)  # fmt: skip
COHORT_COLUMNS = (
    "stratum", "population", "measure", "n_patients", "n_detected", "peak_median", "peak_min",
    "peak_max", "auc_median", "auc_min", "auc_max", "half_life_n", "half_life_median",
    "half_life_min", "half_life_max", "dose_median", "dose_auc_spearman", "dose_peak_spearman",
)  # fmt: skip
DETECTED = ("quantified", "not_quantifiable")
MIN_POINTS = 3


def _segments(days: np.ndarray, infusions: list[int]) -> np.ndarray:
    """Segment index of each day: the number of infusions strictly before it."""
    cuts = np.array(sorted(set(infusions)), dtype=np.float64)
    return np.searchsorted(cuts, days, side="left")


def fit_half_life(
    days, values, status, infusions=(), *, min_points: int = MIN_POINTS, from_peak: bool = False
) -> dict:
    """Half-life (days) from the decay phases (see the module docstring).

    Parameters
    ----------
    days, values : array_like, shape (n,)
    status : sequence of str, shape (n,)
    infusions : sequence of int
        Infusion days.
    min_points : int

    Returns
    -------
    dict
        half_life_days, half_life_ci_low, half_life_ci_high, half_life_n,
        half_life_r2, half_life_from_day, half_life_note.
    """
    days = np.asarray(days, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    status = np.asarray(status, dtype=object)
    out = {
        "half_life_days": float("nan"),
        "half_life_ci_low": float("nan"),
        "half_life_ci_high": float("nan"),
        "half_life_n": 0,
        "half_life_r2": float("nan"),
        "half_life_from_day": float("nan"),
        "half_life_note": "",
    }
    order = np.argsort(days)
    days, values, status = days[order], values[order], status[order]
    seg = _segments(days, list(infusions))
    xs, ys, groups = [], [], []
    for s in np.unique(seg):
        sel = np.flatnonzero((seg == s) & np.isfinite(values) & (days >= 0))
        if sel.size < 2:
            continue
        peak = sel[np.argmax(values[sel])]
        first = peak if from_peak else peak + 1
        decay = [i for i in sel if i >= first and status[i] == "quantified" and values[i] > 0]
        if len(decay) >= 2:
            xs.append(days[decay])
            ys.append(np.log(values[decay]))
            groups.append(s)
    n = sum(len(x) for x in xs)
    out["half_life_n"] = int(n)
    dof = n - len(xs) - 1
    if n < min_points or dof < 1:
        out["half_life_note"] = (
            f"not estimable: {n} quantified point(s) in decay phases (need {min_points}, "
            "and more points than decay phases + 1)"
        )
        return out
    # shared slope: centre each segment on its own means
    xc = np.concatenate([x - x.mean() for x in xs])
    yc = np.concatenate([y - y.mean() for y in ys])
    sxx = float(xc @ xc)
    slope = float(xc @ yc) / sxx
    resid = yc - slope * xc
    sse = float(resid @ resid)
    syy = float(yc @ yc)
    se = math.sqrt(sse / dof / sxx)
    out["half_life_r2"] = 1.0 - sse / syy if syy > 0 else float("nan")
    out["half_life_from_day"] = float(min(x[0] for x in xs))
    if slope >= 0:
        out["half_life_note"] = f"not estimable: counts do not decay (slope {slope:.3g}/day)"
        return out
    t = t_quantile(0.975, dof)
    hi_slope = slope + t * se
    lo_slope = slope - t * se
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
    if len(xs) > 1:
        out["half_life_note"] = f"shared slope over {len(xs)} decay phases"
    return out


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


def trend_row(days, values, status, infusions=(), doses=()) -> dict:
    """Peak, last detection, AUC and half-life of one patient's population over time.

    Parameters
    ----------
    days, values : array_like, shape (n,)
    status : sequence of str
    infusions : sequence of int
        The patient's infusion days.
    doses : sequence of float
        Dose per kg of each infusion (NaN when unknown).

    Returns
    -------
    dict
        The `TREND_COLUMNS` from ``n_days`` on (the caller adds the keys).
    """
    days = np.asarray(days, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    status = np.asarray(status, dtype=object)
    order = np.argsort(days)
    days, values, status = days[order], values[order], status[order]
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
    row.update(fit_half_life(days, values, status, infusions))
    doses = np.asarray(doses, dtype=np.float64)
    row["n_infusions"] = len(infusions)
    row["total_dose_per_kg"] = float(np.nansum(doses)) if doses.size else float("nan")
    row["last_infusion_day"] = float(max(infusions)) if len(infusions) else float("nan")
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
        hl = g["half_life_days"].to_numpy(dtype=float)
        dose = g["total_dose_per_kg"].to_numpy(dtype=float)
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
                "auc_median": stat(auc, np.median),
                "auc_min": stat(auc, np.min),
                "auc_max": stat(auc, np.max),
                "half_life_n": int(hl_ok.size),
                "half_life_median": stat(hl, np.median),
                "half_life_min": stat(hl, np.min),
                "half_life_max": stat(hl, np.max),
                "dose_median": stat(dose, np.median),
                "dose_auc_spearman": _spearman(dose, auc),
                "dose_peak_spearman": _spearman(dose, peak),
            }
        )
    return pd.DataFrame(rows, columns=list(COHORT_COLUMNS))
