"""Survival statistics: Kaplan–Meier, log-rank, Cox hazard ratio, Aalen–Johansen incidence.

* `kaplan_meier`: the product-limit estimate (lifelines' `KaplanMeierFitter`)
  as a step table with the Greenwood standard error of S(t) (Greenwood 1926;
  the ``std.err`` R's ``summary(survfit())`` prints) and lifelines' 95 %
  interval, log(−log) transformed ("exponential Greenwood"), which stays
  inside [0, 1] (where S reaches 0 it has none: the step has the exact
  binomial bound instead); `summarise_curve` gives the median with its interval and
  the estimate at a horizon day.
* `logrank`: the log-rank test, stratified when strata are given (per-stratum
  observed minus expected and hypergeometric variance summed; Peto & Peto
  1972), chi-square on 1 degree of freedom; without strata it is R's
  ``survdiff``.
* `hazard_ratio`: a Cox proportional-hazards fit of one binary covariate
  (lifelines' `CoxPHFitter`, Efron's method for ties), stratified when strata
  are given: the hazard ratio, its 95 % Wald interval and p-value.
* `cumulative_incidence`: the Aalen–Johansen estimate of the cumulative
  incidence of one event in the presence of a competing one (Aalen &
  Johansen 1978), computed directly so that tied days (every day-resolution
  data set has them) stay exact; lifelines' fitter jitters tied times with
  the global random state instead. Its variance is the delta-method
  (Greenwood-type) formula of Collett, *Modelling Survival Data in Medical
  Research*, 3rd ed., p. 411, which lifelines also uses, with the same
  log(−log) interval.

lifelines is an optional dependency: ``pip install "cytokit-flow[clinical]"``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

__all__ = [
    "STEP_COLUMNS",
    "cumulative_incidence",
    "hazard_ratio",
    "kaplan_meier",
    "logrank",
    "numbers_at_risk",
    "summarise_curve",
]

#: Columns of a step table (one row per distinct time, time 0 first).
STEP_COLUMNS = (
    "time", "n_at_risk", "n_events", "n_censored", "n_competing", "estimate", "se", "ci_low",
    "ci_high",
)  # fmt: skip
_Z95 = 1.959963984540054


def _lifelines():
    """The lifelines package, or a `MissingExtraError` (an ImportError) saying which extra
    installs it."""
    from cytokit.errors import MissingExtraError

    try:
        import lifelines as module
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            "the outcome analyses need lifelines; install cytokit's clinical extra: "
            'pip install "cytokit-flow[clinical]"'
        ) from exc
    return module


def _arrays(durations, events) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(durations, dtype=np.float64)
    e = np.asarray(events, dtype=np.int64)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(f"durations {t.shape} and events {e.shape} must be 1-d of one length")
    if t.size and (not np.isfinite(t).all() or (t < 0).any()):
        raise ValueError("durations must be finite and >= 0")
    return t, e


def kaplan_meier(durations, events, *, level: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier survival as a step table.

    Parameters
    ----------
    durations : array_like of float, shape (n,)
        Days to the event or to censoring (>= 0).
    events : array_like of int, shape (n,)
        1 event, 0 censored.
    level : float
        Confidence level of the interval.

    Returns
    -------
    DataFrame
        `STEP_COLUMNS`, one row per distinct time (time 0 first, with every
        patient at risk): ``estimate`` S(t), ``se`` its Greenwood standard
        error (NaN once S reaches 0), ``ci_low``/``ci_high`` the log(−log)
        interval (1–1 while S = 1; where S reaches 0, 0 to the exact bound of
        `_end_bound`, which `summarise_curve` gives too); ``n_competing`` is 0.
    """
    t, e = _arrays(durations, events)
    if t.size == 0:
        return pd.DataFrame(columns=list(STEP_COLUMNS))
    fitter = _lifelines().KaplanMeierFitter(alpha=1.0 - level)
    fitter.fit(t, event_observed=e, label="S")
    table = fitter.event_table
    survival = fitter.survival_function_["S"].reindex(table.index).to_numpy(dtype=np.float64)
    ci = fitter.confidence_interval_.reindex(table.index)
    n = table["at_risk"].to_numpy(dtype=np.float64)
    d = table["observed"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d / (n * (n - d)), 0.0)
        se = survival * np.sqrt(np.cumsum(terms))
    se = np.where(survival > 0, se, np.nan)
    out = pd.DataFrame(
        {
            "time": table.index.to_numpy(dtype=np.float64),
            "n_at_risk": table["at_risk"].to_numpy(dtype=np.int64),
            "n_events": table["observed"].to_numpy(dtype=np.int64),
            "n_censored": table["censored"].to_numpy(dtype=np.int64),
            "n_competing": 0,
            "estimate": survival,
            "se": se,
            "ci_low": ci.iloc[:, 0].to_numpy(dtype=np.float64),
            "ci_high": ci.iloc[:, 1].to_numpy(dtype=np.float64),
        }
    )
    if out["time"].iloc[0] > 0:  # the curve starts at 1 with everyone at risk
        start = {**dict.fromkeys(STEP_COLUMNS, 0), "time": 0.0, "n_at_risk": int(t.size)}
        start.update(estimate=1.0, se=0.0, ci_low=1.0, ci_high=1.0)
        out = pd.concat([pd.DataFrame([start]), out], ignore_index=True)
    out.loc[out["estimate"] >= 1.0, ["ci_low", "ci_high", "se"]] = [1.0, 1.0, 0.0]
    end = _end_bound(out, t.size, level, cumulative=False)
    if end is not None:  # S reached 0: the exact bound, not log(-log)'s zero width
        out.loc[end[0], ["ci_low", "ci_high"]] = [0.0, end[1]]
    return out[list(STEP_COLUMNS)]


def _no_event_bound(n, level: float):
    """Exact (Clopper-Pearson) upper bound on a risk of which `n` patients followed showed
    no event: ``1 - ((1 - level) / 2) ** (1 / n)`` (1 where nobody was followed). A curve
    at its start value (S = 1, F = 0), or at S = 0, has no Greenwood variance, and a
    zero-width interval there would claim the risk is known exactly."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(n > 0, 1.0 - ((1.0 - level) / 2.0) ** (1.0 / np.maximum(n, 1.0)), 1.0)


def _end_bound(steps: pd.DataFrame, n: int, level: float, cumulative: bool):
    """``(row, bound)`` where the curve reaches its end, S = 0 (the incidence 1: every
    patient still at risk had the event), else None. There S has no Greenwood variance and
    no log(−log) interval; `bound` is the exact upper bound of S: for no survivor of the `n`
    patients when nobody was censored before (`_no_event_bound`), else the upper bound of
    the step before times the exact one for no survivor among the last at risk. The
    incidence's lower bound is 1 − `bound`."""
    if not len(steps):
        return None
    values = steps["estimate"].to_numpy(dtype=np.float64)
    end = values >= 1.0 - 1e-12 if cumulative else values <= 0.0
    if not end.any():
        return None
    zero = int(np.argmax(end))
    if int(steps["n_censored"].iloc[: zero + 1].sum()) == 0:
        return zero, float(_no_event_bound(n, level))
    # the survival's upper bound before the last step (the incidence's lower)
    slow = "ci_low" if cumulative else "ci_high"
    prior = float(steps[slow].iloc[zero - 1]) if zero > 0 else (0.0 if cumulative else 1.0)
    prior = 1.0 - prior if cumulative else prior
    return zero, prior * float(_no_event_bound(float(steps["n_at_risk"].iloc[zero]), level))


def numbers_at_risk(durations, times) -> np.ndarray:
    """Patients still followed (duration >= t) at each of `times`."""
    t = np.sort(np.asarray(durations, dtype=np.float64))
    return t.size - np.searchsorted(t, np.asarray(times, dtype=np.float64), side="left")


def _step_value(steps: pd.DataFrame, day: float, column: str) -> float:
    """`column` of the step in force at `day` (the last row with time <= day)."""
    i = int(np.searchsorted(steps["time"].to_numpy(), day, side="right")) - 1
    return float(steps[column].iloc[i]) if i >= 0 else math.nan


def summarise_curve(
    steps: pd.DataFrame,
    durations,
    *,
    horizon: float,
    cumulative: bool = False,
    level: float = 0.95,
) -> dict:
    """The median (survival, or the incidence's 50 % point) and the estimate at `horizon`.

    Parameters
    ----------
    steps : DataFrame
        A step table of `kaplan_meier` or `cumulative_incidence`.
    durations : array_like
        The times the table was fitted on (the follow-up they cover).
    horizon : float
        Day of the reported estimate (e.g. 365).
    cumulative : bool
        `steps` is a cumulative incidence (rising) instead of a survival curve.

    Returns
    -------
    dict
        n, events, median, median_ci_low, median_ci_high (NaN when not
        reached; the note says so), horizon, at_horizon, at_horizon_ci_low,
        at_horizon_ci_high, note. The estimate at `horizon` is NaN when
        follow-up ends before it: the curve says nothing beyond its last time,
        unless every patient left it by an event (none censored at the last
        time): the curve is then final and its last value holds. Where the
        curve is still at its start (S = 1, F = 0) at `horizon`, the bound
        away from it is the exact one for no event among the patients followed
        to `horizon` (`level`).
    """
    t = np.asarray(durations, dtype=np.float64)
    out = {
        "n": int(t.size),
        "events": int(steps["n_events"].sum()) if len(steps) else 0,
        "median": math.nan,
        "median_ci_low": math.nan,
        "median_ci_high": math.nan,
        "horizon": float(horizon),
        "at_horizon": math.nan,
        "at_horizon_ci_low": math.nan,
        "at_horizon_ci_high": math.nan,
        "note": "",
    }
    notes = []
    if not len(steps):
        out["note"] = "no patients"
        return out

    def crossing(column: str) -> float:
        values = steps[column].to_numpy(dtype=np.float64)
        hit = values >= 0.5 if cumulative else values <= 0.5
        hit &= np.isfinite(values)
        return float(steps["time"].to_numpy()[np.argmax(hit)]) if hit.any() else math.nan

    out["median"] = crossing("estimate")
    # the later bound of the median comes from the curve's slower limit
    slow, fast = ("ci_low", "ci_high") if cumulative else ("ci_high", "ci_low")
    out["median_ci_low"], out["median_ci_high"] = crossing(fast), crossing(slow)
    if not math.isfinite(out["median"]):
        notes.append("median not reached")
    elif not math.isfinite(out["median_ci_high"]):
        notes.append("upper limit of the median not reached")
    last = steps.iloc[-1]
    # nobody left to follow, and the last ones left by an event: the curve is final
    final = int(last["n_censored"]) == 0 and int(last["n_events"]) + int(
        last["n_competing"]
    ) == int(last["n_at_risk"])
    if t.size and (t.max() >= horizon or final):
        out["at_horizon"] = _step_value(steps, horizon, "estimate")
        out["at_horizon_ci_low"] = _step_value(steps, horizon, "ci_low")
        out["at_horizon_ci_high"] = _step_value(steps, horizon, "ci_high")
        at_start = out["at_horizon"] <= 0.0 if cumulative else out["at_horizon"] >= 1.0
        if at_start and horizon > 0:
            # no event among the patients followed to the horizon (or out of it by the
            # competing event before it): the exact bound, not Greenwood's zero width
            before = steps["time"].to_numpy() < horizon
            n = float(numbers_at_risk(t, [horizon])[0]) + float(
                steps["n_competing"].to_numpy()[before].sum()
            )
            bound = float(_no_event_bound(n, level))
            if cumulative:
                out["at_horizon_ci_low"], out["at_horizon_ci_high"] = 0.0, bound
            else:
                out["at_horizon_ci_low"], out["at_horizon_ci_high"] = 1.0 - bound, 1.0
        elif out["at_horizon"] >= 1.0 - 1e-12 if cumulative else out["at_horizon"] <= 0.0:
            # S reached 0 (the incidence 1): the last patients at risk all had the event;
            # the exact bound, as the step table's row has it
            _, bound = _end_bound(steps, t.size, level, cumulative)
            if cumulative:
                out["at_horizon_ci_low"], out["at_horizon_ci_high"] = 1.0 - bound, 1.0
            else:
                out["at_horizon_ci_low"], out["at_horizon_ci_high"] = 0.0, bound
        if t.max() < horizon:
            notes.append(
                f"no patient followed after day {t.max():g}, the last leaving by an event: "
                f"the curve's last value holds at day {horizon:g}"
            )
    else:
        notes.append(
            f"follow-up ends at day {t.max():g}, before day {horizon:g}: no estimate there"
        )
    out["note"] = "; ".join(notes)
    return out


def logrank(durations, events, groups, strata=None) -> tuple[float, float, float, float]:
    """Log-rank test of two groups, stratified when `strata` are given.

    Parameters
    ----------
    durations, events : array_like, shape (n,)
    groups : array_like of bool or {0, 1}, shape (n,)
        The group of each patient; observed and expected count group 1.
    strata : array_like, shape (n,), optional

    Returns
    -------
    (chi2, p, observed, expected)
        Chi-square on 1 degree of freedom, its p-value, and group 1's observed
        and expected events (summed over strata). NaN chi2 and p when the
        variance is 0 (no events, or one group empty).
    """
    t, e = _arrays(durations, events)
    g = np.asarray(groups).astype(bool)
    s = np.zeros(t.size, dtype=np.int64) if strata is None else pd.factorize(np.asarray(strata))[0]
    observed = expected = variance = 0.0
    for k in np.unique(s):
        sel = s == k
        tk, ek, gk = t[sel], e[sel], g[sel]
        times = np.unique(tk[ek == 1])
        if times.size == 0:
            continue
        order = np.sort(tk)
        n = tk.size - np.searchsorted(order, times, side="left")
        n1 = np.array([np.count_nonzero(gk & (tk >= x)) for x in times], dtype=np.float64)
        d = np.array([np.count_nonzero((tk == x) & (ek == 1)) for x in times], dtype=np.float64)
        d1 = np.array(
            [np.count_nonzero((tk == x) & (ek == 1) & gk) for x in times], dtype=np.float64
        )
        n = n.astype(np.float64)
        observed += float(d1.sum())
        expected += float(np.sum(d * n1 / n))
        with np.errstate(invalid="ignore", divide="ignore"):
            v = d * (n1 / n) * (1 - n1 / n) * np.where(n > 1, (n - d) / (n - 1), 0.0)
        variance += float(np.nansum(v))
    if not variance > 0:
        return math.nan, math.nan, observed, expected
    chi2 = (observed - expected) ** 2 / variance
    return chi2, math.erfc(math.sqrt(chi2 / 2.0)), observed, expected


def hazard_ratio(durations, events, groups, strata=None, *, level: float = 0.95) -> dict:
    """Cox hazard ratio of group 1 versus group 0 (Efron ties), stratified when asked.

    Returns
    -------
    dict
        hazard_ratio, hr_ci_low, hr_ci_high, hr_p (Wald), note. Not estimable
        (NaN, the note says why) without events in a group, or when the fit
        does not converge.
    """
    t, e = _arrays(durations, events)
    g = np.asarray(groups).astype(bool)
    out = {
        "hazard_ratio": math.nan,
        "hr_ci_low": math.nan,
        "hr_ci_high": math.nan,
        "hr_p": math.nan,
    }
    for flag, name in ((True, "group 1"), (False, "group 0")):
        if not np.any(e[g == flag] == 1):
            out["note"] = f"hazard ratio not estimable: no events in {name}"
            return out
    frame = pd.DataFrame({"time": t, "event": e, "group": g.astype(np.float64)})
    strata_cols = None
    if strata is not None and len(set(np.asarray(strata).tolist())) > 1:
        frame["stratum"] = pd.factorize(np.asarray(strata))[0]
        strata_cols = ["stratum"]
    fitter = _lifelines().CoxPHFitter(alpha=1.0 - level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=_lifelines().utils.ConvergenceWarning)
            fitter.fit(frame, "time", "event", strata=strata_cols)
    except (_lifelines().exceptions.ConvergenceError, _lifelines().utils.ConvergenceWarning) as exc:
        out["note"] = f"hazard ratio not estimable: the Cox fit did not converge ({exc})".split(
            "\n"
        )[0]
        return out
    summary = fitter.summary.loc["group"]
    beta, se = float(summary["coef"]), float(summary["se(coef)"])
    z = _normal_quantile(0.5 + level / 2.0)
    out.update(
        hazard_ratio=math.exp(beta),
        hr_ci_low=math.exp(beta - z * se),
        hr_ci_high=math.exp(beta + z * se),
        hr_p=math.erfc(abs(beta / se) / math.sqrt(2.0)),
        note="stratified Cox model" if strata_cols else "",
    )
    return out


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def cumulative_incidence(durations, status, *, level: float = 0.95) -> pd.DataFrame:
    """Aalen–Johansen cumulative incidence of event 1 with event 2 competing.

    Parameters
    ----------
    durations : array_like of float, shape (n,)
    status : array_like of int, shape (n,)
        0 censored, 1 the event of interest, 2 the competing event.
    level : float

    Returns
    -------
    DataFrame
        `STEP_COLUMNS`, one row per distinct time (time 0 first):
        ``n_events`` events of interest, ``n_competing`` competing events,
        ``estimate`` the cumulative incidence F(t), ``se`` its delta-method
        standard error, ``ci_low``/``ci_high`` the log(−log) interval (where
        F reaches 1, 1 − the exact bound of `_end_bound` to 1, as
        `summarise_curve` gives).

    Notes
    -----
    With S the all-cause Kaplan–Meier curve, n_i at risk, d_i all events and
    d1_i events of interest at time t_i:
    ``F(t) = Σ_{t_i <= t} S(t_{i-1}) d1_i / n_i``; with no competing events
    F = 1 − S.
    """
    t, s = _arrays(durations, status)
    if t.size == 0:
        return pd.DataFrame(columns=list(STEP_COLUMNS))
    times = np.unique(np.concatenate([[0.0], t]))
    at_risk = (t.size - np.searchsorted(np.sort(t), times, side="left")).astype(np.float64)
    idx = np.searchsorted(times, t)
    d1 = np.bincount(idx[s == 1], minlength=times.size).astype(np.float64)
    d2 = np.bincount(idx[s == 2], minlength=times.size).astype(np.float64)
    censored = np.bincount(idx[s == 0], minlength=times.size)
    d = d1 + d2
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, d / at_risk, 0.0)
        survival = np.cumprod(1.0 - hazard)
        before = np.concatenate([[1.0], survival[:-1]])  # S(t_{i-1})
        jump = np.where(at_risk > 0, before * d1 / at_risk, 0.0)
    cif = np.cumsum(jump)
    # Collett's variance: for each t, sum over t_i <= t
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((d > 0) & (at_risk > d), d / (at_risk * (at_risk - d)), 0.0)
        b = np.where(at_risk > 0, before**2 * d1 * (at_risk - d1) / at_risk**3, 0.0)
        c = np.where(at_risk > 0, before * d1 / at_risk**2, 0.0)
    gap = cif[:, None] - cif[None, :]  # F(t) - F(t_i), row t, column t_i
    upto = np.tri(times.size, dtype=bool)
    variance = np.where(upto, gap**2 * a + b - 2.0 * gap * c, 0.0).sum(axis=1)
    se = np.sqrt(np.maximum(variance, 0.0))
    z = _normal_quantile(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_f = np.log(cif)
        half = z * se / (cif * np.abs(log_f))
        lo = np.exp(-np.exp(np.log(-log_f) + half))
        hi = np.exp(-np.exp(np.log(-log_f) - half))
    empty = cif <= 0
    lo = np.where(empty, 0.0, lo)
    hi = np.where(empty, 0.0, hi)
    # once every patient has had an event the variance is undefined, as Greenwood's is
    gone = survival <= 0
    se, lo, hi = (np.where(gone, np.nan, x) for x in (se, lo, hi))
    out = pd.DataFrame(
        {
            "time": times,
            "n_at_risk": at_risk.astype(np.int64),
            "n_events": d1.astype(np.int64),
            "n_censored": censored.astype(np.int64),
            "n_competing": d2.astype(np.int64),
            "estimate": cif,
            "se": se,
            "ci_low": lo,
            "ci_high": hi,
        }
    )[list(STEP_COLUMNS)]
    end = _end_bound(out, t.size, level, cumulative=True)
    if end is not None:  # F reached 1: the mirror of the survival's exact bound at 0
        out.loc[end[0], ["ci_low", "ci_high"]] = [1.0 - end[1], 1.0]
    return out
