"""Donor % of NK after acquisition QC on clogged files, against the simulator's truth.

Two files of one patient, each with a clog (`cytokit.simulate.anomalies`): on
day 14 the populations are spread evenly over the acquisition, on day 7
donor NK cells arrive three times denser in a window that the clog falls in
(`cytokit.simulate.timing`: settling, carry-over). With QC the file's donor %
must be the true donor % of the events QC kept (the gating of the kept events
is right, whatever door), and on the even file the truth of the whole file.
On the time-structured file, removing the clog's range moves the true donor %
itself (measured here from the per-event truth): ``donor_pct``, the kept
events' own share, carries that shift, and ``imputed_donor_pct``, which
fills the removed range in from the kept events beside it
(`cytokit.analysis.chimerism.stratified_row`), must take away at least half
of it. A third pair of files (another patient)
has a clog that corrupts signals (`Clog.offcentre`): its off-centre NK cells
leave the NK gate without QC, the donor % stays within 1 pp of the truth
with and without QC, and QC removes the off-centre events.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit.simulate import AGGREGATES, LABELS, PatientSpec, StudyDesign
from cytokit.simulate.anomalies import OFFCENTRE, AnomalyPlan, Clog
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


def res_removed(res, file: str, n: int) -> np.ndarray:
    """Events of `file` in QC's removed time ranges (file order)."""
    out = np.zeros(n, dtype=bool)
    ranges = res.acquisition_qc[res.acquisition_qc["file"] == file]
    for first, k in zip(ranges["first_event"], ranges["events"], strict=True):
        out[int(first) : int(first) + int(k)] = True
    return out


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


def test_time_structured_file_removed_range_is_imputed_from_its_neighbours(analysed):
    study, res = analysed
    file = "fcs/C1_day007.fcs"
    row = nk_row(res, file)
    whole = true_pct(study, res, file, kept_only=False)
    kept = true_pct(study, res, file, kept_only=True)
    # the clog's removed range held extra donor NK: removing it lowers the true share
    assert kept < whole - 0.5
    # donor_pct, the kept events' own share, is that lowered truth (their gating is right) ...
    kept_only = float(row["donor_pct"])
    assert kept_only == pytest.approx(kept, abs=1.0)
    # ... and the imputed donor % fills the range in: the NK cells it held, most of the shift
    t = load_truth(study / "fcs/C1_day007.truth.npz")
    nk = np.isin(t.label, [LABELS.index(x) for x in AGGREGATES["NK"]])
    held = int((nk & res_removed(res, file, nk.size)).sum())
    assert float(row["imputed_events"]) == pytest.approx(held, rel=0.3)
    measured = float(row["imputed_donor_pct"])
    assert abs(measured - whole) <= 0.5 * abs(kept_only - whole), (measured, kept_only, whole)
    # the clog's range was removed for its rate: its own gated cells are read too
    assert "from the ranges' own gated cells" in str(row["note"]), row["note"]
    assert float(row["imputed_ci_low"]) <= whole <= float(row["imputed_ci_high"])


def test_the_patient_page_shows_the_imputed_donor_pct_where_qc_removed_cells(analysed):
    """The report's chimerism table gives, under the kept events' own % donor, the
    QC-imputed one of chimerism.csv where cells were imputed into QC's removed ranges, and
    nothing more where none were."""
    import re

    from cytokit.report import build_report
    from cytokit.report._html import fmt

    _, res = analysed
    out = build_report(res.out, qc=False).parent
    html = (out / "patients" / "C1.html").read_text()
    shown = re.findall(
        r"QC-imputed: ([0-9.,]+) %(?: \[[^\]<]*\])? \(~([0-9.,]+) cells imputed\)", html
    )
    c = res.chimerism
    rows = c[(c["population"] == "NK") & (c["imputed_events"] > 0)]
    assert len(rows) >= 1
    for _, r in rows.iterrows():
        want = (fmt(r["imputed_donor_pct"]), fmt(r["imputed_events"], integer=True))
        assert want in shown, (want, shown)
    imputed = c[c["imputed_events"] > 0]
    assert len(shown) == len(imputed[imputed["status"].isin(["quantified", "not_quantifiable"])])


# -- a clog that corrupts signals (off-centre events) on files spread evenly in time --------
# A partial clog holding about 16 % of the events, 80 % of them measured off-centre
# (`Clog.offcentre`: every intensity x 0.3-0.7, per-channel spread). The off-centre cells
# mostly leave the scatter and lineage gates instead of being counted with the wrong
# origin, so without QC the NK count falls short but the donor % barely moves; with QC the
# clog's range is removed and the donor % is the file's truth.
BAD_CLOG = AnomalyPlan(clogs=(Clog(start=4.0, drop=1.6, drop_rate=0.15, burst=0.5),))


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qc_chim_offcentre")
    design = StudyDesign(
        patients=(PatientSpec("D1", "NK", "positive", days=(7, 14)),), seed=5311, n_events=N_EVENTS
    )
    study = simulate_study(tmp / "s", design, anomalies=lambda spec, day: BAD_CLOG)
    plain = cytokit.analyze(study, tmp / "plain", scheduler="serial")
    toml = study / "study.toml"
    toml.write_text(toml.read_text() + "\n[acquisition_qc]\nenabled = true\n")
    qc = cytokit.analyze(study, tmp / "qc", scheduler="serial")
    return study, plain, qc


@pytest.mark.parametrize("file", ["fcs/D1_day007.fcs", "fcs/D1_day014.fcs"])
def test_signal_corrupting_clog_donor_pct_with_and_without_qc(corrupted, file):
    study, plain, qc = corrupted
    t = load_truth(study / (file.removesuffix(".fcs") + ".truth.npz"))
    off = (t.arrays["anomaly_kind"] & OFFCENTRE) != 0
    assert 0.08 < off.mean() < 0.2, off.mean()  # the clog's off-centre share of the file
    nk = np.isin(t.label, [LABELS.index(x) for x in AGGREGATES["NK"]])
    # without QC the off-centre NK cells are lost from the NK gate (not counted elsewhere)
    row = nk_row(plain, file)
    assert int(row["events"]) <= nk.sum() - 0.5 * (nk & off).sum(), (row["events"], nk.sum())
    truth = true_pct(study, qc, file, kept_only=False)
    assert float(row["donor_pct"]) == pytest.approx(truth, abs=1.0)
    # nothing removed without QC: nothing imputed, the imputed donor % is donor_pct exactly
    assert float(row["imputed_events"]) == 0.0 == float(row["imputed_donor_events"])
    assert float(row["imputed_donor_pct"]) == float(row["donor_pct"])
    assert float(row["donor_pct"]) == 100.0 * int(row["donor_events"]) / int(row["events"])
    # with QC: the clog's range removed, the donor % is the whole file's truth; on an
    # even file the kept events beside the range hold the rest's mix, so nothing is
    # imputed and the imputed donor % is donor_pct with its interval
    q = nk_row(qc, file)
    assert float(q["donor_pct"]) == pytest.approx(truth, abs=1.0)
    assert float(q["imputed_events"]) == 0.0 == float(q["imputed_donor_events"])
    assert float(q["imputed_donor_pct"]) == float(q["donor_pct"])
    assert (q["imputed_ci_low"], q["imputed_ci_high"]) == (q["ci_low"], q["ci_high"])
    assert "nothing imputed" in q["note"]
    removed = res_removed(qc, file, off.size)
    assert removed[off].mean() > 0.95  # QC removed the off-centre events
