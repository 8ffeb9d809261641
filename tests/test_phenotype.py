"""Phenotype by origin against the simulator's per-event truth.

Two simulated samples a week after an NK infusion, one patient whose donor cells
are HLA-A2 positive and one whose donor cells are negative; the NK cells (the
simulator's own labels) hold both donor and recipient cells. Each origin's row
must describe exactly the events the simulator made donor or recipient: their
number, medians and % positive as numpy computes them on those events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytokit.analysis.phenotype import ORIGINS, phenotype_rows, positivity_threshold
from cytokit.kernels import compensate
from cytokit.simulate import LABELS, preset_design, simulate_sample

MARKERS = ["CD16", "CD8", "HLA-A2"]
NK = [LABELS.index("NK_bright"), LABELS.index("NK_dim")]
#: Fixed positivity thresholds (compensated scale values).
THRESHOLDS = {"CD16": 1000.0, "CD8": 500.0, "HLA-A2": 2000.0}


@pytest.fixture(scope="module", params=["P01", "P03"])
def nk_cells(request):
    """Compensated CD16, CD8 and HLA-A2 of the NK cells of one sample, their true donor
    flags and the patient's donor side (P01: donor HLA-A2+, P03: donor HLA-A2-)."""
    design = preset_design("sample", seed=2718, n_patients=4, n_events=30_000, days=(7,))
    spec = next(p for p in design.patients if p.id == request.param)
    sample, truth = simulate_sample(design, spec, 7, workers=1)
    spill = sample.spillover
    columns = [sample.channel_index(c) for c in spill.channels]
    comp = compensate(sample.events.astype(np.float64), spill.matrix, columns)
    values = comp[:, [sample.channel_index(m) for m in MARKERS]]
    nk = np.isin(truth.label, NK)
    return values[nk], truth.donor[nk], spec.donor_is


def test_each_origin_describes_the_simulated_donor_or_recipient_cells(nk_cells):
    values, donor, donor_is = nk_cells
    assert 200 <= donor.sum() <= donor.size - 100  # both origins well represented
    rows = pd.DataFrame(phenotype_rows(values, donor, MARKERS, THRESHOLDS))
    assert sorted(set(rows.origin)) == sorted(ORIGINS)
    cells = {"all": np.ones_like(donor), "donor": donor, "recipient": ~donor}
    for r in rows.itertuples():
        sel = cells[r.origin]
        v = values[sel, MARKERS.index(r.marker)]
        assert r.events == sel.sum(), (r.origin, r.marker)
        assert r.median == pytest.approx(np.median(v), rel=1e-12), (r.origin, r.marker)
        want = 100.0 * np.count_nonzero(v >= THRESHOLDS[r.marker]) / v.size
        assert r.pct_positive == pytest.approx(want, rel=1e-12), (r.origin, r.marker)
    hla = rows[rows.marker == "HLA-A2"].set_index("origin")
    # the donor marker itself: donor cells on the side the patient's donor_is says
    positive = "donor" if donor_is == "positive" else "recipient"
    negative = "recipient" if positive == "donor" else "donor"
    assert hla.loc[positive, "pct_positive"] > 97 and hla.loc[negative, "pct_positive"] < 3
    assert hla.loc[positive, "median"] > 5 * hla.loc[negative, "median"]


def test_without_chimerism_only_all(nk_cells):
    values, _, _ = nk_cells
    rows = phenotype_rows(values, None, MARKERS, {"CD16": 1000.0})
    assert [r["origin"] for r in rows] == ["all"] * len(MARKERS)
    by_marker = {r["marker"]: r for r in rows}
    assert np.isnan(by_marker["CD8"]["pct_positive"])  # no threshold, no % positive
    assert by_marker["CD16"]["events"] == values.shape[0]


def test_positivity_threshold_separates_cd16_positive_from_negative_cells():
    """CD16 on live lymphocytes: NK-dim cells are CD16+, T cells CD16- (the simulator's
    phenotypes); the adaptive threshold, placed on logicle values, puts >= 95 % of the
    NK-dim cells above it and <= 2 % of the T cells."""
    from cytokit.kernels import logicle

    design = preset_design("sample", seed=2718, n_patients=1, n_events=30_000, days=(14,))
    sample, truth = simulate_sample(design, design.patients[0], 14, workers=1)
    spill = sample.spillover
    columns = [sample.channel_index(c) for c in spill.channels]
    comp = compensate(sample.events.astype(np.float64), spill.matrix, columns)
    cd16 = logicle(comp[:, sample.channel_index("CD16")], 262144.0, 0.5, 4.5, 0.0)
    names = ("B", "T_CD8neg", "T_CD8pos", "NK_bright", "NK_dim", "CIK")
    lymphocytes = np.isin(truth.label, [LABELS.index(n) for n in names])
    t = positivity_threshold(cd16[lymphocytes])
    assert np.isfinite(t)
    nk_dim = truth.label == LABELS.index("NK_dim")
    t_cells = np.isin(truth.label, [LABELS.index("T_CD8neg"), LABELS.index("T_CD8pos")])
    assert np.mean(cd16[nk_dim] >= t) >= 0.95
    assert np.mean(cd16[t_cells] >= t) <= 0.02
    # one population alone (unimodal) gets no threshold
    assert np.isnan(positivity_threshold(cd16[t_cells]))
