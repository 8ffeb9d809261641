"""A clog that biases the donor %: with acquisition QC the NK donor % is the truth again.

In a partial occlusion (`cytokit.simulate.anomalies.partial_occlusion`) the
clog's off-centre cells keep their scatter but lose fluorescence: they stay in
the lymphocyte and NK gates while the donor marker (HLA-A2) of some falls
below its threshold, so an HLA-A2+ donor's cells are counted as the
recipient's and, with an HLA-A2- donor, HLA-A2+ recipient cells as the
donor's. Two even files (one of each donor side), the clog holding about 16 %
of the events: gated as `cytokit.analyze` gates them (`Study.gate`), without
QC the donor % of NK cells is off in the direction the mechanism says, with
QC (the clog's range removed) it is within 1 pp of the simulator's truth.
One 30,000-event file per case: seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import cytokit
from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.simulate import AGGREGATES, LABELS, PatientSpec, StudyDesign
from cytokit.simulate.anomalies import CLOG as CLOG_BIT
from cytokit.simulate.anomalies import OFFCENTRE, AnomalyPlan, Clog, partial_occlusion
from cytokit.simulate.events import load_truth
from cytokit.simulate.study import simulate_study

N_EVENTS = 30_000  # 10 s at the simulator's 3,000 events/s
CLOG = AnomalyPlan(
    clogs=(partial_occlusion(Clog(3.0, drop=1.2, drop_rate=0.15, burst=0.4, coincidence=0.1)),)
)


def simulated(tmp_path, seed: int):
    design = StudyDesign(
        patients=(
            PatientSpec("O1", "NK", "positive", days=(14,)),
            PatientSpec("O2", "NK", "negative", days=(14,)),
        ),
        seed=seed,
        n_events=N_EVENTS,
    )
    folder = simulate_study(tmp_path / "s", design, anomalies=lambda s, d: CLOG)
    path = folder / "fcs" / "O1_day014.fcs"
    return (
        cytokit.load_study(folder),
        cytokit.read_fcs(path),
        load_truth(path.with_suffix(".truth.npz")),
    )


def nk_gate(result) -> str:
    (path,) = [g for g in result.counts["gate_path"] if g.endswith("/CD3-CD56+")]
    return path


def donor_pct(result) -> float:
    counts = result.counts.set_index("gate_path")["count"]
    nk = nk_gate(result)
    return 100.0 * int(counts[nk + "/HLA-A2+"]) / int(counts[nk])


@pytest.mark.parametrize("seed", [8812, 8815])
def test_occlusion_counts_donor_cells_as_recipient_and_qc_removes_them(tmp_path, seed):
    study, sample, truth = simulated(tmp_path, seed)
    nk = np.isin(truth.label, [LABELS.index(x) for x in AGGREGATES["NK"]])
    donor = truth.donor.astype(bool)
    true = 100.0 * float(donor[nk].mean())
    kind = truth.arrays["anomaly_kind"]
    clog, off = (kind & CLOG_BIT) != 0, (kind & OFFCENTRE) != 0
    assert 0.1 < clog.mean() < 0.25, clog.mean()
    # without QC: the off-centre donor NK cells stay in the NK gate, and many of them
    # fall below the HLA-A2 threshold (counted as the recipient's, an HLA-A2+ donor here)
    plain = study.gate(sample)
    gate = nk_gate(plain)
    in_nk, positive = plain.membership(gate), plain.membership(gate + "/HLA-A2+")
    cells = nk & donor & off
    assert in_nk[cells].mean() > 0.8, in_nk[cells].mean()
    assert (in_nk & ~positive)[cells].mean() > 0.2, (in_nk & ~positive)[cells].mean()
    bias = donor_pct(plain) - true
    assert bias < -0.5, bias
    # with QC the clog's range goes, and the donor % is the file's truth
    qc = acquisition_qc(sample)
    removed = (qc.reasons & (RATE | SIGNAL)) != 0
    assert removed[clog].mean() > 0.95 and removed[~clog].mean() < 0.02
    kept = dataclasses.replace(sample, events=sample.events[qc.keep])
    with_qc = donor_pct(study.gate(kept, membership=False))
    kept_true = 100.0 * float(donor[nk & qc.keep].mean())
    assert with_qc == pytest.approx(kept_true, abs=0.5)  # gating of the kept events
    assert with_qc == pytest.approx(true, abs=1.0), (with_qc, true, bias)
    assert abs(with_qc - true) < abs(bias)
