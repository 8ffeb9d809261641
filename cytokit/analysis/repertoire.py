"""Receptor repertoire: Boolean combinations of receptors of one population, as frequencies.

NK cells are read by the combination of inhibitory receptors they carry
(KIR2DL1, KIR2DL2/3, KIR3DL1, NKG2A...): with k receptors there are 2^k
combinations, and a cell is in exactly one. `repertoire` counts each among
a population's events (of one origin, donor or recipient, when the caller
splits them), with the percentage and its binomial confidence interval, in
the tidy layout SPICE reads: one row per combination, one ``+``/``-`` column
per receptor. Summary rows follow: ``single-KIR+`` (exactly one KIR),
``no KIR`` and ``no inhibitory receptor`` (none of the inhibitory receptors).

Intervals are Wilson score intervals by default (``[chimerism] ci`` chooses
Clopper–Pearson instead; `cytokit.stats.intervals`): each row is one
binomial proportion of the population's events; the rows are not corrected
for being read together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cytokit.errors import CytokitError
from cytokit.stats.intervals import binomial_interval

__all__ = ["COLUMNS", "combination_label", "repertoire"]

#: Columns of `repertoire` after the receptors' own ``+``/``-`` columns.
COLUMNS = ("row", "kind", "events", "total", "pct", "ci_low", "ci_high", "ci_method")


def combination_label(signs: Mapping[str, bool]) -> str:
    """``"KIR2DL1+ NKG2A-"``: a combination written as SPICE and flow papers write it."""
    return " ".join(f"{m}{'+' if v else '-'}" for m, v in signs.items())


def repertoire(
    positive: Mapping[str, np.ndarray],
    *,
    kirs: Sequence[str] = (),
    inhibitory: Sequence[str] = (),
    method: str = "wilson",
    level: float = 0.95,
) -> pd.DataFrame:
    """Frequencies of every combination of receptors among one population's events.

    Parameters
    ----------
    positive : mapping of str to ndarray of bool
        Per receptor, whether each event is positive (one array per receptor,
        all of the population's events, in one order). At most 12 receptors.
    kirs : sequence of str
        The receptors that are KIRs (for ``single-KIR+`` and ``no KIR``).
    inhibitory : sequence of str
        The inhibitory receptors (for ``no inhibitory receptor``); KIRs and
        NKG2A, typically.
    method : {"wilson", "clopper-pearson"}
    level : float
        Confidence level of the intervals.

    Returns
    -------
    DataFrame
        One row per combination (``kind`` = ``combination``, receptors in the
        order given, the first receptor's ``-`` rows first), then the summary
        rows (``kind`` = ``summary``); columns: one per receptor (``+``,
        ``-``, or empty on summary rows), then `COLUMNS`. ``pct`` and the
        interval are percentages of ``total``; with no events they are NaN.

    Raises
    ------
    CytokitError
        No receptor, more than 12, arrays of different lengths or not
        Boolean, or a KIR or inhibitory receptor that is not among them.
    """
    markers = list(positive)
    if not markers or len(markers) > 12:
        raise CytokitError(
            f"repertoire of {len(markers)} receptor(s): give 1 to 12 (2^k combinations)"
        )
    for name, group in (("kirs", kirs), ("inhibitory", inhibitory)):
        unknown = [m for m in group if m not in positive]
        if unknown:
            raise CytokitError(
                f"repertoire: {name} {unknown} are not among the receptors {markers}; "
                "name receptors whose positivity is given"
            )
    arrays = [np.asarray(positive[m]) for m in markers]
    n = {a.shape for a in arrays}
    if len(n) != 1 or arrays[0].ndim != 1 or any(a.dtype != bool for a in arrays):
        raise CytokitError(
            "repertoire: give one Boolean array per receptor, all of the population's events "
            f"(got shapes {sorted(n)} and dtypes {sorted({str(a.dtype) for a in arrays})})"
        )
    total = len(arrays[0])
    k = len(markers)
    # the combination of each event as a k-bit code, the first receptor the highest bit
    code = np.zeros(total, dtype=np.int64)
    for a in arrays:
        code = (code << 1) | a.astype(np.int64)
    counts = np.bincount(code, minlength=2**k)
    rows = []
    for c in range(2**k):
        signs = {m: bool((c >> (k - 1 - i)) & 1) for i, m in enumerate(markers)}
        rows.append((signs, combination_label(signs), "combination", int(counts[c])))
    kir_bits = np.array([m in kirs for m in markers])
    inh_bits = np.array([m in inhibitory for m in markers])
    pattern = np.array([[(c >> (k - 1 - i)) & 1 for i in range(k)] for c in range(2**k)], bool)
    if len(kirs):
        n_kir = pattern[:, kir_bits].sum(axis=1)
        rows.append(({}, "single-KIR+", "summary", int(counts[n_kir == 1].sum())))
        rows.append(({}, "no KIR", "summary", int(counts[n_kir == 0].sum())))
    if len(inhibitory):
        none = ~pattern[:, inh_bits].any(axis=1)
        rows.append(({}, "no inhibitory receptor", "summary", int(counts[none].sum())))
    events = np.array([r[3] for r in rows])
    totals = np.full(len(rows), total)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(totals > 0, 100.0 * events / np.maximum(totals, 1), np.nan)
    lo, hi = binomial_interval(events, totals, level, method)
    lo = np.where(totals > 0, 100.0 * np.asarray(lo, float), np.nan)
    hi = np.where(totals > 0, 100.0 * np.asarray(hi, float), np.nan)
    table = {m: [("+" if r[0][m] else "-") if r[0] else "" for r in rows] for m in markers}
    table.update(
        row=[r[1] for r in rows],
        kind=[r[2] for r in rows],
        events=events,
        total=totals,
        pct=pct,
        ci_low=lo,
        ci_high=hi,
        ci_method=method,
    )
    return pd.DataFrame(table)
