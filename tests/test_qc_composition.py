"""What acquisition QC's removal of a clog does to a population's donor share, per-event truth.

QC removes a clog's whole time range: the rate there is wrong and most of its
events are measured off-centre (`cytokit.simulate.anomalies.Clog.offcentre`).
Which events it removes is decided by time, never by what the cells are, so
on a file whose populations are spread evenly over the run the events it keeps
hold the file's donor share up to binomial sampling.
Where donor NK cells are denser in the clog's window (settling, carry-over:
`cytokit.simulate.timing.Enrichment`), the kept events' share is off by the
range's excess, and the range's well-measured events (the clog's events not
measured off-centre) still hold the range's share: the limit the README's
"Clogs and the donor %" states and `benchmarks/bench_qc_chimerism.py` measures.

Truth only (no gating), one 40,000-event file each: seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.simulate import AGGREGATES, LABELS, PatientSpec, StudyDesign, simulate_sample
from cytokit.simulate.anomalies import AnomalyPlan, Clog
from cytokit.simulate.timing import Enrichment

N_EVENTS = 40_000  # about 13 s at the simulator's 3,000 events/s
# a partial clog holding about 15 % of the events, inside the enriched window
CLOG = AnomalyPlan(clogs=(Clog(start=4.0, drop=1.6, drop_rate=0.15, burst=0.5),))
WINDOW = Enrichment(("NK",), window=(3.0, 7.0), factor=3.0, donor=True)


def simulated(seed: int, timing):
    design = StudyDesign(
        patients=(PatientSpec("C1", "NK", "positive", days=(7,)),), seed=seed, n_events=N_EVENTS
    )
    sample, truth = simulate_sample(design, "C1", 7, N_EVENTS, anomalies=CLOG, timing=timing)
    return sample, truth, acquisition_qc(sample)


def nk_donor(truth, keep: np.ndarray) -> tuple[float, int]:
    """(true donor share of the NK cells among `keep`, how many NK cells)."""
    nk = np.isin(truth.label, [LABELS.index(x) for x in AGGREGATES["NK"]]) & keep
    n = int(nk.sum())
    return float(truth.donor[nk].sum()) / n, n


def binomial_sd(p: float, n_kept: int, n_all: int) -> float:
    """SD of a share over a random subset of `n_kept` of `n_all` cells (finite population)."""
    return math.sqrt(p * (1 - p) * (1.0 / n_kept - 1.0 / n_all))


@pytest.mark.parametrize("seed", [6110, 6111])
def test_removal_by_time_keeps_the_donor_share_of_an_even_file(seed):
    sample, truth, qc = simulated(seed, timing=None)
    everything = np.ones(sample.n_events, dtype=bool)
    whole, n_all = nk_donor(truth, everything)
    kept, n_kept = nk_donor(truth, qc.keep)
    assert 0.05 < whole < 0.95, whole  # a share that can move either way
    assert n_kept < n_all - 100  # the clog's range was removed
    assert abs(kept - whole) <= 3 * binomial_sd(whole, n_kept, n_all), (kept, whole)


@pytest.mark.parametrize("seed", [6103, 6104])
def test_donor_enriched_clog_window_the_range_holds_the_missing_share(seed):
    sample, truth, qc = simulated(seed, timing=WINDOW)
    a = truth.anomalies
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    clog, off = a.mask("clog"), a.mask("offcentre")
    assert removed[off].mean() > 0.95  # the off-centre events are gone
    assert removed[~clog].mean() < 0.02  # and hardly anything else
    everything = np.ones(sample.n_events, dtype=bool)
    whole, n_all = nk_donor(truth, everything)
    kept, n_kept = nk_donor(truth, ~removed)
    # the kept events lack the range's extra donor NK cells: a shift beyond sampling
    assert whole - kept > 3 * binomial_sd(whole, n_kept, n_all), (kept, whole)
    # the range's well-measured events tell its share: counting every cell outside the
    # range and weighting them up to the range's size gives back the file's share
    inside, witnesses = removed, removed & ~off
    p_in, n_in = nk_donor(truth, inside)
    p_wit, n_wit = nk_donor(truth, witnesses)
    assert n_wit >= 20, n_wit
    est = (kept * n_kept + p_wit * n_in) / n_all
    sd = (n_in / n_all) * binomial_sd(p_in, n_wit, n_in)
    assert abs(est - whole) <= 3 * sd + 1e-9, (est, whole, sd)
