"""Absolute counts: method choice and the bead / dual-platform formulas against simulator truth."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from study_helpers import simulated_strategy

from cytokit.analysis.counting import CountBasis, count_basis
from cytokit.simulate import LABELS, preset_design, simulate_sample
from cytokit.study import ManifestRow

ROW = ManifestRow(
    line=2,
    file=Path("a.fcs"),
    patient="P1",
    day=7,
    wbc_per_ul=5000.0,
    lymphocytes_per_ul=1200.0,
    beads_per_test=50_000.0,
    sample_volume_ul=50.0,
)
COUNTS = {"/Beads": 2000, "/Lymphocytes": 6000, "/Leukocytes": 24_000}


def test_beads_first():
    b = count_basis(ROW, COUNTS, beads="/Beads", lymphocytes="/Lymphocytes")
    assert b.method == "beads" and b.reference_per_ul == 1000.0
    # cells/µL = events / bead events × beads per test / volume
    assert b.per_ul(300) == pytest.approx(300 / 2000 * 50_000 / 50)


def test_dual_platform_fallbacks():
    no_beads = replace(ROW, beads_per_test=None)
    b = count_basis(no_beads, COUNTS, beads="/Beads", lymphocytes="/Lymphocytes")
    assert b.method == "lymphocytes" and "beads_per_test" in b.note
    assert b.per_ul(600) == pytest.approx(600 / 6000 * 1200)
    b = count_basis(ROW, {**COUNTS, "/Beads": 0}, beads="/Beads", lymphocytes="/Lymphocytes")
    assert b.method == "lymphocytes" and "no events in the bead gate" in b.note
    only_wbc = replace(ROW, beads_per_test=None, lymphocytes_per_ul=None)
    b = count_basis(only_wbc, COUNTS, beads="/Beads", lymphocytes="/L", leukocytes="/Leukocytes")
    assert b.method == "wbc" and b.per_ul(240) == pytest.approx(240 / 24_000 * 5000)
    none = count_basis(replace(only_wbc, wbc_per_ul=None), COUNTS, leukocytes="/Leukocytes")
    assert none.method == "" and math.isnan(none.per_ul(10))
    assert math.isnan(CountBasis().factor)


@pytest.fixture(scope="module")
def gated():
    design = preset_design("sample", seed=77, n_events=200_000)
    sample, truth = simulate_sample(design, "P01", 7, workers=1)
    return design, truth, simulated_strategy().apply(sample)


def test_bead_counts_match_truth(gated):
    """Gated counts with beads give the simulated cells/µL (Poisson error ~1-3 %)."""
    design, truth, result = gated
    p = truth.parameters
    row = replace(
        ROW, beads_per_test=design.beads_per_test, sample_volume_ul=design.sample_volume_ul
    )
    counts = {path: result.count(path) for path in result.strategy.paths}
    basis = count_basis(row, counts, beads="/Beads")
    assert basis.method == "beads"
    # the bead gate holds exactly the bead events
    assert basis.reference_events == int(np.sum(truth.label == LABELS.index("bead")))
    live = "/Lymphocytes/Singlets/Live"
    for path, labels in {
        f"{live}/CD3-CD56+": ("NK_bright", "NK_dim"),
        f"{live}/CD3+CD56+": ("CIK",),
        f"{live}/CD3+CD56-": ("T_CD8neg", "T_CD8pos"),
    }.items():
        true = sum(p.cells_per_ul[n] for n in labels)
        n = counts[path]
        sd = true / math.sqrt(n)
        assert basis.per_ul(n) == pytest.approx(true, abs=4 * sd + 0.02 * true), path


def test_dual_platform_matches_truth(gated):
    """With a pure lymphocyte reference (the true lymphoid events), dual platform is exact.

    The fixed test strategy's live-lymphocyte gate also holds monocytes (after
    lymphodepletion about as many as lymphocytes), so dual-platform counts are
    only as good as the reference gate; the analysis reports which was used.
    """
    _, truth, result = gated
    p = truth.parameters
    lymphoid = ("B", "T_CD8neg", "T_CD8pos", "NK_bright", "NK_dim", "CIK")
    reference = int(np.isin(truth.label, [LABELS.index(n) for n in lymphoid]).sum())
    row = replace(ROW, beads_per_test=None, lymphocytes_per_ul=p.lymphocytes_per_ul)
    live = "/Lymphocytes/Singlets/Live"
    counts = {path: result.count(path) for path in result.strategy.paths}
    counts["lymphoid"] = reference
    basis = count_basis(row, counts, beads="/Beads", lymphocytes="lymphoid")
    assert basis.method == "lymphocytes"
    n = counts[f"{live}/CD3-CD56+"]
    true = p.cells_per_ul["NK_bright"] + p.cells_per_ul["NK_dim"]
    assert basis.per_ul(n) == pytest.approx(true, abs=4 * true / math.sqrt(n) + 0.02 * true)
