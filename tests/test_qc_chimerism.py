"""Donor % of NK after acquisition QC on clogged files, against the simulator's truth.

Two files of one patient, each with a clog (`cytokit.simulate.anomalies`): on
day 14 the populations are spread evenly over the acquisition, on day 7
donor NK cells arrive three times denser in a window that the clog falls in
(`cytokit.simulate.timing`: settling, carry-over). With QC the file's donor %
must be the true donor % of the events QC kept (the gating of the kept events
is right, whatever door), and on the even file the truth of the whole file.
On the time-structured file, removing the clog's range moves the true donor %
itself: that shift is measured here from the per-event truth, and the error
may not exceed it by more than 1 pp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit.simulate import AGGREGATES, LABELS, PatientSpec, StudyDesign
from cytokit.simulate.anomalies import AnomalyPlan, Clog
from cytokit.simulate.events import load_truth
from cytokit.simulate.study import simulate_study
from cytokit.simulate.timing import Enrichment

N_EVENTS = 40_000  # about 13 s at the simulator's 3,000 events/s
CLOG = AnomalyPlan(clogs=(Clog(start=4.0, drop=1.2, drop_rate=0.1, burst=0.4),))
WINDOW = Enrichment(("NK",), window=(3.0, 6.0), factor=3.0, donor=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qc_chim")
    design = StudyDesign(
        patients=(PatientSpec("C1", "NK", "positive", days=(7, 14)),), seed=5107, n_events=N_EVENTS
    )
    study = simulate_study(
        tmp / "s",
        design,
        anomalies=lambda spec, day: CLOG,
        timing=lambda spec, day: WINDOW if day == 7 else None,
    )
    toml = study / "study.toml"
    toml.write_text(toml.read_text() + "\n[acquisition_qc]\nenabled = true\n")
    res = cytokit.analyze(study, tmp / "out", scheduler="serial")
    return study, res


def true_pct(study, res, file: str, kept_only: bool) -> float:
    t = load_truth(study / (file.removesuffix(".fcs") + ".truth.npz"))
    keep = np.ones(t.label.shape[0], dtype=bool)
    if kept_only:
        ranges = res.acquisition_qc[res.acquisition_qc["file"] == file]
        assert len(ranges) >= 1, f"QC removed no time range of {file}"
        for first, n in zip(ranges["first_event"], ranges["events"], strict=True):
            keep[int(first) : int(first) + int(n)] = False
    nk = np.isin(t.label, [LABELS.index(x) for x in AGGREGATES["NK"]]) & keep
    return 100.0 * t.donor[nk].sum() / nk.sum()


def nk_row(res, file: str) -> pd.Series:
    c = res.chimerism
    row = c[(c["file"] == file) & (c["population"] == "NK")]
    assert len(row) == 1 and row["status"].iloc[0] == "quantified", row.to_dict("records")
    return row.iloc[0]


def test_even_file_donor_pct_after_qc_is_the_files_truth(analysed):
    study, res = analysed
    file = "fcs/C1_day014.fcs"
    measured = float(nk_row(res, file)["donor_pct"])
    assert measured == pytest.approx(true_pct(study, res, file, kept_only=False), abs=1.0)
    assert measured == pytest.approx(true_pct(study, res, file, kept_only=True), abs=1.0)


def test_time_structured_file_error_is_the_removals_shift_and_no_more(analysed):
    study, res = analysed
    file = "fcs/C1_day007.fcs"
    measured = float(nk_row(res, file)["donor_pct"])
    whole = true_pct(study, res, file, kept_only=False)
    kept = true_pct(study, res, file, kept_only=True)
    # the clog's removed range held extra donor NK: removing it lowers the true share
    assert kept < whole - 0.5
    assert measured == pytest.approx(kept, abs=1.0)
    assert abs(measured - whole) <= (whole - kept) + 1.0
