"""Phenotype of each population by origin: median intensity and % positive per marker.

Which markers
-------------
``[phenotype] markers`` when given; otherwise every panel marker that no gate
of the strategy reads and that is not a donor marker (in the sample study:
CD16 and CD8), so the description adds to what gating already fixed.

Positivity thresholds (`positivity_threshold`)
----------------------------------------------
A fixed threshold from ``[phenotype] thresholds`` (compensated scale value)
wins. Otherwise the threshold is placed per sample on the marker's
transformed values of the threshold parent (the chimerism parent, e.g. live
lymphocytes, which holds both negative and positive cells for the usual
markers): the smoothed density's valley between the two modes holding the
most events (each at least 1 % of the events, the lower peak at least
`cytokit.stats.density.DIP` times the valley). Without two such modes the marker
has no threshold in that sample and ``pct_positive`` is empty (NaN): an
adaptive threshold cannot tell an all-negative from an all-positive
population. Positive means ``value >= threshold``.

Statistics (`phenotype_rows`)
-----------------------------
Medians are of compensated scale values (not transformed), computed with
numpy on the population's events, split by origin with the sample's donor
threshold (``donor`` / ``recipient``; ``all`` ignores origin). Populations
larger than ``[phenotype] max_events`` are described from a uniform random
subsample of that size (medians then carry subsampling error; counts and
chimerism never do).
"""

from __future__ import annotations

import numpy as np

from cytokit.stats.density import DIP, Histogram, dip_valley, histogram_edges, peaks, smooth

__all__ = ["ORIGINS", "phenotype_rows", "positivity_threshold"]

ORIGINS = ("all", "donor", "recipient")
_MIN_SHARE = 0.01


def positivity_threshold(values: np.ndarray) -> float:
    """Adaptive positivity threshold (transformed units) of one marker, NaN when unimodal.

    Parameters
    ----------
    values : ndarray of float, shape (n,)
        Transformed values of the threshold parent's events (NaN ignored).

    Returns
    -------
    float
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 50:
        return float("nan")
    hist = Histogram.of(v, histogram_edges(v, 512))
    f, bw = smooth(hist)
    found = peaks(f).tolist()
    counts = hist.counts
    n = float(hist.total)
    best, best_score = None, 0.0
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            m = dip_valley(f, a, b, bw, DIP)
            if m is None:
                continue
            left, right = float(counts[:m].sum()), float(counts[m:].sum())
            if min(left, right) < _MIN_SHARE * n:
                continue
            score = min(left, right)
            if score > best_score:
                best, best_score = m, score
    return float("nan") if best is None else float(hist.centres[best])


def phenotype_rows(
    values: np.ndarray,
    donor: np.ndarray | None,
    markers: list[str],
    thresholds: dict[str, float],
) -> list[dict]:
    """Per origin and marker: events, median and % positive of one population in one sample.

    Parameters
    ----------
    values : ndarray of float, shape (n, len(markers))
        Compensated scale values of the population's events.
    donor : ndarray of bool, shape (n,), or None
        Donor flag of each event (None: no chimerism; only origin ``all``).
    markers : list of str
    thresholds : dict of str to float
        Positivity threshold of each marker (compensated scale value); a
        marker missing or NaN gets no % positive.

    Returns
    -------
    list of dict
        Keys origin, marker, events, median, pct_positive, threshold_scale.
    """
    values = np.asarray(values, dtype=np.float64)
    rows = []
    groups = [("all", slice(None))]
    if donor is not None:
        groups += [("donor", donor), ("recipient", ~donor)]
    for origin, sel in groups:
        part = values[sel]
        n = part.shape[0]
        for j, marker in enumerate(markers):
            col = part[:, j]
            col = col[np.isfinite(col)]
            t = thresholds.get(marker, float("nan"))
            rows.append(
                {
                    "origin": origin,
                    "marker": marker,
                    "events": int(n),
                    "median": float(np.median(col)) if col.size else float("nan"),
                    "pct_positive": (
                        100.0 * float((col >= t).sum()) / col.size
                        if col.size and np.isfinite(t)
                        else float("nan")
                    ),
                    "threshold_scale": t,
                }
            )
    return rows
