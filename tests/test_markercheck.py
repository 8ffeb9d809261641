"""The donor-marker check: usable stains pass, failed detectors give ``marker_failed``, never a value.

Unit tests build each sample's marker distribution from known mixtures
(recipient and donor peaks at chosen positions, drift shifts); the end-to-end
tests break the donor-marker detector of one simulated file the ways a real
one fails (dead at 0, stuck at a value, saturated at the top of ``$PnR``) and
compare everything downstream with what the other days alone give.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_reading import report_text
from study_helpers import make_study

import cytokit
from cytokit.analysis.marker_check import PILEUP_SHARE, check_donor_marker, value_pileup
from cytokit.analysis.trends import trend_row
from cytokit.errors import CytokitError
from cytokit.fcs import read_fcs, write_fcs
from cytokit.plots.persistence import measure_points, persistence_figure
from cytokit.report import build_report
from cytokit.report.tables import chimerism_table
from cytokit.simulate import PatientSpec, StudyDesign
from cytokit.stats.density import Histogram, histogram_edges
from cytokit.study import load_study

REC, DON, SD = 0.40, 0.66, 0.035  # logicle-like positions of recipient and donor peaks


def _hist(rng, donor_share, *, shift=0.0, n=20_000, side=1):
    nd = rng.binomial(n, donor_share)
    rec, don = (REC, DON) if side > 0 else (DON, REC)
    v = np.concatenate([rng.normal(rec, SD, n - nd), rng.normal(don, SD * 0.7, nd)]) + shift
    return Histogram.of(v, histogram_edges(v))


def test_value_pileup():
    rng = np.random.default_rng(0)
    assert value_pileup(np.full(500, 1000.0)) == {
        "n": 500, "share": 1.0, "value": 1000.0, "at": "constant",
    }  # fmt: skip
    top = np.concatenate([np.full(600, 262_143.0), rng.uniform(0, 1e5, 400)])
    p = value_pileup(rng.permutation(top))
    assert p["share"] == pytest.approx(0.6) and p["at"] == "maximum"
    low = np.concatenate([np.zeros(700), rng.uniform(1, 1e5, 300)])
    assert value_pileup(low)["at"] == "minimum"
    assert value_pileup(rng.normal(500, 100, 10_000))["share"] < 0.01
    assert value_pileup(np.array([]))["n"] == 0


@pytest.mark.parametrize("side", [1, -1])
@pytest.mark.parametrize("beads", [True, False])
def test_legitimate_samples_pass(side, beads):
    """Pre-infusion, 0 %, rising, near-complete chimerism, drift: all usable."""
    rng = np.random.default_rng(3 if beads else 4)
    days = [-7, 3, 7, 14, 28, 60]
    shares = [0.0, 0.05, 0.35, 0.97, 0.6, 0.0]
    shifts = [0.0, 0.03, -0.03, 0.02, -0.02, 0.03]  # up to ~35 % gain drift
    hists = [_hist(rng, s, shift=d, side=side) for s, d in zip(shares, shifts, strict=True)]
    anchors = [0.9 + d for d in shifts] if beads else None
    assert check_donor_marker(hists, days, side, anchors) == [""] * len(days)
    # without a pre-infusion sample the two-mode samples are the reference
    assert check_donor_marker(hists[1:], days[1:], side, anchors and anchors[1:]) == [""] * 5


@pytest.mark.parametrize("side", [1, -1])
def test_a_misplaced_distribution_fails(side):
    rng = np.random.default_rng(5)
    days = [-7, 7, 14, 28]
    hists = [_hist(rng, s, side=side) for s in (0.0, 0.3, 0.2, 0.1)]
    for wrong in (0.12, 0.53, 0.9):  # a dead channel, between the peaks, far beyond the donor
        v = rng.normal(wrong, 0.02, 20_000)
        broken = list(hists)
        broken[2] = Histogram.of(v, histogram_edges(v))
        reasons = check_donor_marker(broken, days, side)
        assert reasons[0] == reasons[1] == reasons[3] == ""
        assert "is not where this patient's donor marker reads" in reasons[2]
    # a lone donor mode where the donor should be is near-complete chimerism, not a failure
    v = rng.normal(DON if side > 0 else REC, 0.025, 20_000)
    ok = list(hists)
    ok[2] = Histogram.of(v, histogram_edges(v))
    assert check_donor_marker(ok, days, side)[2] == ""


def test_one_odd_sample_does_not_move_the_reference():
    """A broken pre-infusion sample is outvoted; a bump below a recipient peak is no pair."""
    rng = np.random.default_rng(8)
    days = [-7, 7, 14, 28]
    hists = [_hist(rng, s) for s in (0.0, 0.3, 0.25, 0.2)]
    v = rng.normal(0.15, 0.02, 20_000)  # the pre-infusion detector reads noise
    reasons = check_donor_marker([Histogram.of(v, histogram_edges(v)), *hists[1:]], days, 1)
    assert reasons[0] != "" and reasons[1:] == ["", "", ""]
    # a recipient peak with a 4 % bump 0.2 below it is not a recipient/donor pair
    bump = np.concatenate([rng.normal(REC, SD, 19_200), rng.normal(REC - 0.2, SD / 2, 800)])
    alone = [hists[0], Histogram.of(bump, histogram_edges(bump))]
    assert check_donor_marker(alone, [-7, 14], 1) == ["", ""]


def test_without_separation_only_the_recipient_side_is_checked():
    rng = np.random.default_rng(6)
    days = [-7, 7, 14]
    hists = [_hist(rng, 0.0) for _ in days]  # no sample shows a donor mode
    low = rng.normal(0.1, 0.02, 20_000)
    high = rng.normal(0.9, 0.02, 20_000)
    assert check_donor_marker(hists, days, 1)[1] == ""
    assert check_donor_marker([hists[0], Histogram.of(low, histogram_edges(low)), hists[2]],
                              days, 1)[1] != ""  # fmt: skip
    # a single mode on the donor side cannot be told from complete chimerism
    assert check_donor_marker([hists[0], Histogram.of(high, histogram_edges(high)), hists[2]],
                              days, 1)[1] == ""  # fmt: skip


def test_pileup_fails_any_sample_even_alone():
    rng = np.random.default_rng(7)
    hist = _hist(rng, 0.0)
    piled = {"n": 5000, "share": PILEUP_SHARE, "value": 262_143.0, "at": "maximum"}
    reasons = check_donor_marker([hist], [-7], 1, pileups=[piled])
    assert "50 % of the 5000 parent events read its maximum 262143 (saturated)" in reasons[0]
    small = {**piled, "n": 19}  # too few events to judge
    assert check_donor_marker([hist], [-7], 1, pileups=[small]) == [""]


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def test_stained_channels_of_real_files_do_not_pile_up():
    """Every stained fluorescence channel of the external corpus passes the pile-up rule."""
    if not CORPUS.is_dir():
        pytest.skip(f"the external corpus is not at {CORPUS}")
    stained, piled = [], []
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix.lower() not in (".fcs", ".lmd"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sample = read_fcs(path)
        except CytokitError:
            continue
        if sample.n_events < 500:
            continue
        for c in sample.channels:
            name = c.name.upper()
            if name.startswith(("FSC", "SSC", "FS ", "SS ")) or "TIME" in name:
                continue
            if name.endswith("-W") or "WIDTH" in name:
                continue
            share = value_pileup(sample.events[:, c.index])["share"]
            if c.marker and c.marker != c.name:
                stained.append(share)
            if share >= PILEUP_SHARE:
                piled.append((path.name, c.name, c.marker))
    assert len(stained) >= 60 and max(stained) < 0.05
    # what does pile up: unnamed channels and a linear copy of a log one (FL1 Lin)
    assert all(not marker or marker == name for _, name, marker in piled) and len(piled) == 3


# -- end to end --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    design = StudyDesign(
        patients=(PatientSpec("P1", "NK", "positive"), PatientSpec("P2", "NK", "negative")),
        seed=77,
        n_events=12_000,
        days=(-7, 3, 7, 14, 28),
    )
    return make_study(tmp_path_factory.mktemp("marker") / "study", design)


@pytest.fixture(scope="module")
def clean(study, tmp_path_factory):
    return cytokit.analyze(study, tmp_path_factory.mktemp("clean") / "out", workers=1)


def test_simulated_stains_are_usable(clean):
    assert (clean.samples.donor_marker_check == "usable").all()
    assert clean.samples.donor_marker_note.isna().all()
    assert "marker_failed" not in set(clean.chimerism.status)


def test_only_a_failed_detector_is_said_to_reach_the_counts(clean):
    """A marker failed for where its cells read (a stain left out, another channel) was
    measured by a working detector, which compensation reads rightly: no word on counts."""
    from cytokit.analysis.marker_check import BEADS_MOVED, detector_failed
    from cytokit.analysis.per_patient import _counts_too

    spills = {"spills_into": [["PE-A (CD56)", 0.21]]}
    piled = {"n": 5000, "share": 1.0, "value": 0.0, "at": "constant", **spills}
    placed = {"n": 5000, "share": 0.001, "value": 3.0, "at": "", **spills}
    assert detector_failed("the donor-marker channel is constant", piled)
    assert detector_failed(f"{BEADS_MOVED} 2.1 on the donor marker", placed)
    assert not detector_failed("its main mode lies far from the recipient", placed)
    assert "PE-A (CD56) by 21 % of it" in _counts_too("constant", piled)
    assert "are not counted either" in _counts_too("constant", piled)
    # beads read elsewhere (a gain changed, or a few bead events misread): counts kept, said
    beads = _counts_too(f"{BEADS_MOVED} 2.1 on the donor marker", placed)
    assert "its counts may be off too" in beads and "not counted" not in beads
    from cytokit.analysis.per_patient import _piled

    assert _piled("constant", piled) and not _piled(f"{BEADS_MOVED} 2.1", placed)
    assert _counts_too("its main mode lies far from the recipient", placed) == ""
    assert _counts_too("constant", {**piled, "spills_into": []}) == ""  # nothing compensated
    assert clean.samples.donor_marker_note.isna().all()


@pytest.mark.parametrize(
    ("file", "value"),
    [("fcs/P1_day007.fcs", 0.0), ("fcs/P2_day007.fcs", 1000.0), ("fcs/P2_day014.fcs", 262_143.0)],
)
def test_a_dead_donor_marker_detector_is_marker_failed(study, clean, tmp_path, file, value):
    """A constant HLA-A2 channel used to read as 0 % or 100 % donor, quantified."""
    copy = shutil.copytree(study, tmp_path / "study")
    sample = read_fcs(copy / file, scale=False)
    ev = sample.events.copy()
    ev[:, sample.channel_index("FITC-A")] = value
    sample.events = ev
    write_fcs(copy / file, sample)
    out = tmp_path / "out"
    results = cytokit.analyze(copy, out, workers=1)

    chim = results.chimerism[results.chimerism.file == file]
    assert len(chim) == 5 and (chim.status == "marker_failed").all()
    donor_cols = ["donor_events", "recipient_events", "donor_pct", "ci_low", "ci_high"]
    assert chim[[*donor_cols, "donor_per_ul", "recipient_per_ul"]].isna().all().all()
    assert chim.note.str.contains(f"all .* parent events read {value:g}").all()
    assert chim.note.str.contains("donor marker HLA-A2: check its detector").all()  # the fix
    sample_row = results.samples.set_index("file").loc[file]
    assert sample_row.donor_marker_check == "failed"
    assert "constant" in sample_row.donor_marker_note
    # ... and its counts are not given where the detector reached them: CD56 is compensated
    # against it (a saturated one took NK from 1,372 to 14; a dead one T cells to 0 /µL,
    # shown as counts beside a note that they may be off)
    inverse = np.linalg.inv(sample.spillover.matrix)
    names = list(sample.spillover.channels)
    share = abs(inverse[names.index("FITC-A"), names.index("PE-A")])
    said = "the gates reading a channel compensated against it are not counted either"
    assert said in sample_row.donor_marker_note
    assert f"PE-A (CD56) by {100 * share:.2g} % of it" in sample_row.donor_marker_note
    assert chim.note.str.contains(said).all()
    counts = results.counts[results.counts.file == file].set_index("gate_path")
    ref = clean.counts[clean.counts.file == file].set_index("gate_path")
    strategy = load_study(copy).load_strategy()
    row_of = inverse[names.index("FITC-A")]
    spilled = {"FITC-A"} | {n for n, v in zip(names, row_of, strict=True) if abs(v) >= 1e-3}
    for path, row in counts.iterrows():
        gate_of = {g.id: g for g in strategy.gates} | {p.id: p.gate for p in strategy.populations}
        gate_reads = {
            d.channel for i in (row.gate_id, *strategy.ancestors(row.gate_id))
            for d in gate_of[i].dimensions
        }  # fmt: skip
        if gate_reads & spilled:  # the marker's channel, or one compensated against it
            assert pd.isna(row["count"]) and np.isnan(row.per_ul) and np.isnan(row.pct_parent)
            assert row.note.startswith("not counted: "), path
        else:  # scatter, viability: counted on the cells' own values, as in the clean file
            assert row["count"] == ref.at[path, "count"] and pd.isna(row.note), path
    assert counts["count"].isna().any() and counts["count"].notna().any()
    # the populations under those gates have no events or cells/µL, nor phenotype
    lost = set(counts.index[counts["count"].isna()])
    gone = chim.gate_path.isin(lost)
    assert gone.any() and chim.loc[gone, ["events", "per_ul"]].isna().all().all()
    assert (chim.loc[~gone, "events"] == ref.loc[chim.gate_path[~gone], "count"].values).all()
    ph_pops = set(results.phenotype.loc[results.phenotype.file == file, "population"])
    assert not ph_pops & set(chim.population[gone])
    others = results.samples[results.samples.file != file]
    assert (others.donor_marker_check == "usable").all()  # no collateral damage
    th = results.thresholds[(results.thresholds.file == file)]
    th = th[th.purpose == "donor"]
    assert list(th.method) == ["none"] and th.threshold.isna().all()
    assert th.note.iloc[0].startswith("donor marker unusable")
    ph = results.phenotype[results.phenotype.file == file]
    assert set(ph.origin) <= {"all"}
    # written as such: empty cells, the status and the reason
    disk = pd.read_csv(out / "chimerism.csv")
    disk = disk[disk.file == file]
    assert (disk.status == "marker_failed").all() and disk.donor_pct.isna().all()
    # trends: the day is missing, not 0; it may have held the peak, so the peak and the
    # AUC are not given (as for a failed file) and the row names the day
    patient = file.split("/")[1].split("_")[0]
    day = int(sample_row.day)
    nk = results.chimerism[
        (results.chimerism.patient == patient) & (results.chimerism.population == "NK")
    ]
    kept = nk[nk.day != day].sort_values("day")
    for measure in ("donor_pct", "donor_per_ul"):
        want = trend_row(kept.day, kept[measure], kept.status, [0], [1.0], kept.donor_events)
        tr = results.trends.set_index(["patient", "population", "measure"])
        got = tr.loc[(patient, "NK", measure)]
        assert np.isnan(got.auc) and np.isnan(got.peak_value) and np.isnan(got.peak_day)
        assert str(got.failed_days) == str(day)
        assert got.last_detectable_day == want["last_detectable_day"] or (
            np.isnan(got.last_detectable_day) and np.isnan(want["last_detectable_day"])
        )
        assert got.n_days == 5
    # the report says so in plain words, and the plot draws no point for it
    html = report_text(build_report(out, formats=("png",), qc=False))  # as `cytokit report`
    assert "donor marker failed" in html and "no chimerism for this sample" in html
    # the reason is said once, in the flags: in every cell it made the table screens wide
    cells = re.findall(r'<td class="[^"]*marker_failed[^"]*">(.*?)</td>', html, flags=re.S)
    seen = [re.sub(r"<[^>]*>", "", c) for c in cells]
    assert cells and all(len(t) < 60 for t in seen), seen
    pts = measure_points(nk, "donor_pct")
    assert np.isnan(pts.loc[pts.day == day, "y"]).all()


def test_marker_failed_rows_are_shown_and_drawn_as_missing():
    """Report cell and plot point of a marker_failed row (a table as `cytokit report` reads it)."""
    rows = pd.DataFrame(
        {
            "patient": ["P", "P", "P"],
            "day": [3, 7, 14],
            "file": ["a.fcs", "b.fcs", "c.fcs"],
            "population": ["NK"] * 3,
            "sample_type": ["PB"] * 3,
            "events": [900, 1000, 800],
            "donor_events": [300.0, np.nan, 100.0],
            "donor_pct": [100 / 3, np.nan, 12.5],
            "ci_low": [30.0, np.nan, 10.0],
            "ci_high": [36.0, np.nan, 15.0],
            "per_ul": [90.0, 100.0, 80.0],
            "donor_per_ul": [30.0, np.nan, 10.0],
            "status": ["quantified", "marker_failed", "quantified"],
            "note": [np.nan, "the donor-marker channel is constant", np.nan],
        }
    )
    for measure in ("donor_pct", "donor_per_ul"):
        pts = measure_points(rows, measure)
        assert np.isnan(pts.y.iloc[1]) and pts.y.iloc[[0, 2]].notna().all()
    html = chimerism_table(rows, ["NK"])
    assert "donor marker failed" in html and "the donor-marker channel is constant" in html
    assert "nan" not in html.lower()
    fig = persistence_figure(rows, "P", measure="donor_pct")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "failed (donor marker or file): no value" in labels


def test_exports_of_a_sample_whose_detector_failed_say_what_was_not_counted(study, tmp_path):
    """export-wsp stopped on counts.csv's empty counts (an internal error), and the AnnData
    flags of populations analyze left uncounted read as counts with nothing to say so."""
    from cytokit.analysis.flowjo_export import export_wsp

    copy = shutil.copytree(study, tmp_path / "study")
    file = "fcs/P1_day014.fcs"
    sample = read_fcs(copy / file, scale=False)
    ev = sample.events.copy()
    ev[:, sample.channel_index("FITC-A")] = 0.0
    sample.events = ev
    write_fcs(copy / file, sample)
    out = tmp_path / "out"
    results = cytokit.analyze(copy, out, workers=1)
    lost = results.chimerism[(results.chimerism.file == file) & results.chimerism.events.isna()]
    assert len(lost)
    done = export_wsp(out, tmp_path / "study.wsp", study=copy)
    assert any("not counted in counts.csv" in n for n in done.notes), done.notes
    assert not any("gated again" in n for n in done.notes)  # every counted gate agrees
    pytest.importorskip("anndata")
    import anndata

    from cytokit.analysis.anndata_export import export_anndata

    adata = anndata.read_h5ad(export_anndata(out, tmp_path / "x.h5ad", study=copy))
    pairs = adata.uns["cytokit"]["not_counted"]
    said = {file: sorted(lost.population)}
    assert list(pairs["file"]) == [file] * len(lost)
    assert list(pairs["population"]) == said[file]
    obs = adata.obs
    for f, rows in results.chimerism.groupby("file"):
        mine = obs[obs.file == f]
        for r in rows.itertuples():
            if f == file and r.population in said[file]:
                continue
            assert int(mine[f"in_{r.population}"].sum()) == r.events, (f, r.population)
