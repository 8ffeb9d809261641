"""Receptor repertoire: 2^k combinations of receptors with binomial intervals, against known truth."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from cytokit.analysis.repertoire import repertoire
from cytokit.errors import CytokitError

# independent expression probabilities of a donor NK repertoire (orders of magnitude as in
# healthy donors: each KIR on a fifth to a third of NK cells, NKG2A on about half)
P = {"KIR2DL1": 0.25, "KIR2DL2/3": 0.35, "KIR3DL1": 0.2, "NKG2A": 0.5}
KIRS = ("KIR2DL1", "KIR2DL2/3", "KIR3DL1")
INHIBITORY = (*KIRS, "NKG2A")


def _truth() -> dict[str, float]:
    """The probability of each combination and summary, written out by enumeration."""
    out = {}
    for signs in itertools.product((False, True), repeat=len(P)):
        p = 1.0
        for q, s in zip(P.values(), signs, strict=True):
            p *= q if s else 1 - q
        label = " ".join(f"{m}{'+' if s else '-'}" for m, s in zip(P, signs, strict=True))
        out[label] = p
        n_kir = sum(s for m, s in zip(P, signs, strict=True) if m in KIRS)
        out["single-KIR+"] = out.get("single-KIR+", 0.0) + p * (n_kir == 1)
        out["no KIR"] = out.get("no KIR", 0.0) + p * (n_kir == 0)
        out["no inhibitory receptor"] = out.get("no inhibitory receptor", 0.0) + p * (
            not any(signs)
        )
    return out


def _draw(rng, n):
    return {m: rng.random(n) < q for m, q in P.items()}


def test_counts_are_the_events_of_each_combination():
    rng = np.random.default_rng(101)
    labels = _draw(rng, 5000)
    table = repertoire(labels, kirs=KIRS, inhibitory=INHIBITORY)
    seen = Counter(" ".join(f"{m}{'+' if labels[m][i] else '-'}" for m in P) for i in range(5000))
    combos = table[table.kind == "combination"]
    assert len(combos) == 16 and combos.events.sum() == 5000
    assert dict(zip(combos.row, combos.events, strict=True)) == {
        r: seen.get(r, 0) for r in combos.row
    }
    n_kir = sum(labels[m].astype(int) for m in KIRS)
    summary = table.set_index("row")
    assert summary.loc["single-KIR+", "events"] == int((n_kir == 1).sum())
    assert summary.loc["no KIR", "events"] == int((n_kir == 0).sum())
    none = ~np.any([labels[m] for m in INHIBITORY], axis=0)
    assert summary.loc["no inhibitory receptor", "events"] == int(none.sum())
    # SPICE layout: a +/- column per receptor, the first receptor's - rows first
    assert list(table.columns[:4]) == list(P)
    assert table.iloc[0]["row"] == "KIR2DL1- KIR2DL2/3- KIR3DL1- NKG2A-"
    assert table.iloc[15]["KIR2DL1"] == "+" and table.iloc[16]["KIR2DL1"] == ""


@pytest.mark.parametrize("method", ["wilson", "clopper-pearson"])
def test_frequencies_and_interval_coverage_against_truth(method):
    # a seed not used while writing the module; n as the NK gate of a receptor tube (the
    # sampling SD of a 45 % row is then 0.56 pp, so 2 pp is 3.6 SD)
    truth = _truth()
    rng = np.random.default_rng(20261202)
    n, reps = 8000, 200
    covered = Counter()
    close = Counter()
    counted = Counter()
    for _ in range(reps):
        t = repertoire(_draw(rng, n), kirs=KIRS, inhibitory=INHIBITORY, method=method)
        for row, pct, lo, hi in zip(t.row, t.pct, t.ci_low, t.ci_high, strict=True):
            p = 100 * truth[row]
            covered[row] += lo <= p <= hi
            if truth[row] * n >= 200:  # the acceptance's rows: >= 200 events expected
                counted[row] += 1
                close[row] += abs(pct - p) <= 2.0
    for row in truth:
        assert covered[row] / reps >= 0.90, (row, covered[row] / reps)
    assert counted  # several rows reach 200 events
    for row in counted:
        assert close[row] / counted[row] >= 0.95, (row, close[row] / counted[row])


def test_bad_input_is_refused():
    with pytest.raises(CytokitError, match="not among the receptors"):
        repertoire({"NKG2A": np.zeros(3, bool)}, kirs=("KIR2DL1",))
    with pytest.raises(CytokitError, match="one Boolean array per receptor"):
        repertoire({"NKG2A": np.zeros(3), "KIR2DL1": np.zeros(3, bool)})
    empty = repertoire({"NKG2A": np.zeros(0, bool)})
    assert empty.pct.isna().all() and (empty.total == 0).all()
