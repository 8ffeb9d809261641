"""Slow, obvious reference for `cytokit.kernels.population_stats`.

Every population's member values are materialised and handed to numpy: the
definitions are numpy's own (``np.median``, ``np.quantile`` with the default
"linear" method, ``np.std(ddof=1)``), applied after dropping NaN values, and
``rcv = 100 · ½ · (Q(0.8413) − Q(0.1587)) / median``.
"""

from __future__ import annotations

import numpy as np

RCV_LEVELS = (0.1587, 0.8413)


def member_values(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The non-NaN values of the members, float64."""
    v = np.asarray(values, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    return v[~np.isnan(v)]


def summarise(v: np.ndarray, threshold: float, levels) -> dict:
    """Every statistic of one population's values ``v`` (NaN already removed)."""
    n = v.shape[0]
    nan = float("nan")
    out = {
        "count": n,
        "mean": nan,
        "sd": nan,
        "median": nan,
        "rcv": nan,
        "quantiles": np.full(len(levels), nan),
        "positive": 0,
        "fraction_positive": nan,
    }
    if not np.isnan(threshold):
        out["positive"] = int((v >= threshold).sum())
        if n:
            out["fraction_positive"] = out["positive"] / n
    if n == 0:
        return out
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out["mean"] = float(np.mean(v))
        if n > 1:
            out["sd"] = float(np.std(v, ddof=1))
        out["median"] = float(np.median(v))
        if len(levels):
            out["quantiles"] = np.quantile(v, np.asarray(levels, dtype=np.float64))
        lo, hi = np.quantile(v, RCV_LEVELS)
        out["rcv"] = float(100.0 * 0.5 * (hi - lo) / out["median"])
    return out


def population_stats(values, masks, thresholds=None, levels=()) -> dict:
    """Statistics of ``values`` (n_dims, n_events) in every ``masks`` row (n_gates, n_events).

    Returns a dict of arrays shaped like `PopulationStats`'s: ``[gate, dim(, level)]``.
    """
    values = np.asarray(values, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    n_g, n_d = masks.shape[0], values.shape[0]
    thr = np.full(n_d, np.nan) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    keys = ("count", "mean", "sd", "median", "rcv", "positive", "fraction_positive")
    out = {k: np.zeros((n_g, n_d)) for k in keys}
    out["quantiles"] = np.zeros((n_g, n_d, len(levels)))
    out["events"] = masks.sum(axis=1)
    for g in range(n_g):
        for d in range(n_d):
            s = summarise(member_values(values[d], masks[g]), thr[d], levels)
            for k, v in s.items():
                out[k][g, d] = v
    out["count"] = out["count"].astype(np.int64)
    out["positive"] = out["positive"].astype(np.int64)
    return out
