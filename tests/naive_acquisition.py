"""Slow, obvious references for the acquisition-QC kernels (`cytokit.kernels.acquisition`)."""

from __future__ import annotations

import numpy as np


def margin_scan(events, columns, top, floor, *, time_column=-1, prev_time=np.nan):
    """(flags, counts) with the kernel's semantics, one numpy comparison per column."""
    ev = np.asarray(events, dtype=np.float64)
    n = ev.shape[0]
    flags = np.zeros(n, dtype=bool)
    out = {"top": [], "floor": [], "not_finite": [], "max": [], "min": [], "at_min": []}
    for j, c in enumerate(columns):
        x = ev[:, c]
        at_top = x >= top[j]
        at_floor = x <= floor[j]
        bad = ~np.isfinite(x)
        flags |= at_top | at_floor | bad
        out["top"].append(int(at_top.sum()))
        out["floor"].append(int(at_floor.sum()))
        out["not_finite"].append(int(bad.sum()))
        fin = x[np.isfinite(x)]
        out["max"].append(float(fin.max()) if fin.size else -np.inf)
        out["min"].append(float(fin.min()) if fin.size else np.inf)
        out["at_min"].append(int(np.sum(fin == fin.min())) if fin.size else 0)
    dec = []
    if time_column >= 0 and n:
        t = ev[:, time_column]
        prev = np.concatenate(([prev_time], t[:-1]))
        dec = np.flatnonzero(np.isnan(t) | (t < prev))
    out["decreases"] = len(dec)
    out["first_decrease"] = int(dec[0]) if len(dec) else -1
    return flags, out


def bin_moments(events, columns, cofactors, starts, stops, band, max_per_bin, skip=None):
    """count, mean and SD per bin and column: every definition spelled out with numpy
    (rows where `skip` is true left out)."""
    ev = np.asarray(events, dtype=np.float64)
    b, k = len(starts), len(columns)
    count = np.zeros((b, k), dtype=np.int64)
    mean = np.full((b, k, 2), np.nan)
    sd = np.full((b, k, 2), np.nan)
    for g, (a, z) in enumerate(zip(starts, stops, strict=True)):
        n = z - a
        if n <= max_per_bin:
            rows = np.arange(a, z)
        else:
            s = np.arange(max_per_bin)
            rows = a + ((2 * s + 1) * n) // (2 * max_per_bin)
        if skip is not None:
            kept = rows[~np.asarray(skip, dtype=bool)[rows]]
            rows = kept if kept.size else rows  # a bin of skipped rows only: read whole
        for j, c in enumerate(columns):
            x = ev[rows, c]
            v = np.sort(np.arcsinh(x[np.isfinite(x)] / cofactors[j]))
            m = v.size
            count[g, j] = m
            if m == 0:
                continue
            mean[g, j, 0] = v.mean()
            if m > 1:
                sd[g, j, 0] = v.std(ddof=1)
            u = (np.arange(m) + 0.5) / m
            w = np.clip((u - band[0]) / (band[1] - band[0]), 0.0, 1.0)
            if w.sum() > 0:
                mu = np.sum(w * v) / w.sum()
                mean[g, j, 1] = mu
                if m > 1:
                    sd[g, j, 1] = np.sqrt(np.sum(w * (v - mu) ** 2) / w.sum())
    return count, mean, sd


def running_median(values, valid, half):
    """numpy's median of the valid entries of each centred window (NaN when none)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool)
    out = np.full(v.shape, np.nan)
    for i in range(v.shape[0]):
        lo, hi = max(0, i - half), min(v.shape[0], i + half + 1)
        w = v[lo:hi][ok[lo:hi]]
        if w.size:
            out[i] = np.median(w)
    return out
