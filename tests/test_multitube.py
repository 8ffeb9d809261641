"""Multi-tube analysis against the simulator's truth: receptor repertoire and function assays.

A small simulated study gets a receptor tube and a stimulated/unstimulated
function pair (`cytokit.simulate.tubes.add_tubes`: per-event truth of every
receptor and function marker, donor and recipient NK repertoires that
differ, ±30 % gain drift of the further detectors). ``cytokit analyze``'s
repertoire.csv and function.csv are compared with the true events and with
the probabilities the events were drawn with (interval coverage).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit.simulate import preset_design, simulate_study
from cytokit.simulate.tubes import add_tubes, function_truth, positivity_truth, repertoire_truth


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multitube") / "s"
    design = preset_design("sample", seed=7, n_patients=2, n_events=12_000, days=(7, 14))
    simulate_study(folder, design, workers=1)
    add_tubes(folder, seed=7)
    return folder, cytokit.analyze(folder, folder / "results", workers=1)


def test_add_tubes_lists_every_file_it_wrote_each_with_its_truth(tmp_path):
    """What add_tubes returns is what it added to the manifest (the reference and control
    samples too), and every file it wrote has its per-event truth; an FMO control's says
    that no cell carries the receptor left out."""
    folder = tmp_path / "s"
    design = preset_design("sample", seed=3, n_patients=1, n_events=2_000, days=(7,))
    simulate_study(folder, design, workers=1)
    before = set(pd.read_csv(folder / "manifest.csv")["file"])
    written = add_tubes(folder, seed=3)
    after = set(pd.read_csv(folder / "manifest.csv")["file"])
    assert sorted(written) == sorted(after - before) and len(written) == 6
    for rel in written:
        with np.load((folder / rel).with_suffix(".truth.npz")) as z:
            markers = [str(m) for m in z["markers"]]
            if "_fmo_" in rel:
                assert not z["positive"][:, markers.index("NKG2A")].any()
                assert z["positive"].any()  # the other receptors as stained


def test_every_tube_measured_with_origin(analysed):
    _, res = analysed
    assert res.failures.empty, res.failures.to_dict("records")
    tubes = res.tubes.set_index("tube")
    assert list(tubes.index) == ["default", "receptors", "stimulated", "unstimulated"]
    assert tubes["origin"].all() and tubes["chimerism"].tolist() == [True, False, False, False]
    # the receptor tube has its FMO controls and the reference and control samples
    assert tubes["files"].tolist() == [4, 12, 4, 4]
    assert set(res.chimerism["tube"]) == {"default"}
    assert set(res.phenotype["tube"]) == set(tubes.index)


def test_repertoire_of_nk_cells_against_truth(analysed):
    folder, res = analysed
    truth = pd.DataFrame(repertoire_truth(folder))
    rep = res.repertoire[(res.repertoire["population"] == "NK")]
    rep = rep[rep["kind"] == "combination"]
    both = truth.merge(rep, on=["file", "origin", "combination"], suffixes=("_truth", ""))
    assert len(both) == len(truth) == 4 * 2 * 16
    sized = both[both["total_truth"] >= 100]
    assert len(sized) >= 4 * 16  # donor and recipient NK of several files
    error = sized["pct"] - 100.0 * sized["events_truth"] / sized["total_truth"]
    assert np.abs(error).max() <= 2.0, error.abs().max()
    counted = both[both["total"] > 0]
    p = 100.0 * counted["probability"]
    coverage = ((counted["ci_low"] <= p) & (p <= counted["ci_high"])).mean()
    assert coverage >= 0.85, coverage
    # the donor repertoire differs from the recipient's as drawn: KIR2DL1+ single-KIR
    # cells are several times more frequent among donor NK cells
    kir2dl1 = sized[sized["combination"].str.startswith("KIR2DL1+ KIR2DL2/3- KIR3DL1-")]
    by = kir2dl1.groupby("origin")["pct"].mean()
    assert by["donor"] > 2 * by["recipient"]


def test_background_subtracted_function_against_truth(analysed):
    folder, res = analysed
    truth = pd.DataFrame(function_truth(folder))
    fun = res.function[res.function["population"] == "NK"]
    both = truth.merge(fun, on=["file", "origin", "marker"], suffixes=("_truth", ""))
    assert len(both) == len(truth) == 4 * 2 * 2
    counted = both[both["events_stim"] >= 100]
    assert len(counted) >= 8
    error = counted["pct_net"] - counted["pct_net_truth"]
    assert np.abs(error).max() <= 2.0, error.abs().max()
    covered = (counted["ci_low"] <= counted["p_net"]) & (counted["p_net"] <= counted["ci_high"])
    assert covered.mean() >= 0.75, covered.mean()
    # every row pairs the visit's stimulated file with its unstimulated one
    assert (fun["control_file"] == fun["file"].str.replace("_stim.", "_unstim.")).all()
    assert set(fun["threshold_method"]) == {"fixed (stimulated file)"}


def test_fmo_positivity_against_truth(analysed):
    # NKG2A is cut at its FMO control's 99.5th percentile (the fixed 1000 of study.toml
    # gives way to the visit's control), and the % positive is the true one within 1 pp
    folder, res = analysed
    truth = pd.DataFrame(positivity_truth(folder, "NKG2A"))
    ph = res.phenotype
    ph = ph[(ph["population"] == "NK") & (ph["origin"] == "all") & (ph["marker"] == "NKG2A")]
    both = truth.merge(ph, on=["file", "marker"], suffixes=("_truth", ""))
    assert len(both) == len(truth) == 4
    error = both["pct_positive"] - both["pct_positive_truth"]
    assert np.abs(error).max() <= 1.0, error.abs().max()
    th = res.thresholds
    nk = th[(th["marker"] == "NKG2A") & (th["parent"].str.endswith("/CD3-CD56+"))]
    assert len(nk) == 4 and set(nk["method"]) <= {"fmo", "fmo_pooled"}
    assert (nk["threshold_scale"] < 1000).all()
    # the controls are files of the study (counted, QC'd) without phenotype of their own
    controls = res.samples[res.samples["file"].str.contains("_fmo_")]
    assert len(controls) == 4 and set(controls["tube"]) == {"receptors"}
    assert not res.phenotype["file"].str.contains("_fmo_").any()


def test_a_pooled_fmo_threshold_counts_each_control_cell_once(analysed):
    """With fewer than 1,000 control events in a population, the threshold comes from the
    control's events of every population: NK_dim and NK_bright lie within NK, so pooling
    them all would count those cells twice (and pass the 1,000-event floor on fewer cells).
    The pooled threshold is the 99.5th percentile of the distinct cells."""
    from cytokit.analysis.per_patient import _outermost
    from cytokit.analysis.positivity import fmo_threshold
    from cytokit.kernels import compensate

    assert _outermost([("NK", "/L/NK"), ("NK_dim", "/L/NK/dim"), ("T", "/L/T"),
                       ("CIK", "/L/T/CIK"), ("NKish", "/L/NKish")]) == {"NK", "T", "NKish"}  # fmt: skip
    folder, res = analysed
    study = cytokit.load_study(folder)
    paths = list(dict.fromkeys(study.settings.populations.values()))
    th = res.thresholds
    pooled = th[(th["method"] == "fmo_pooled") & (th["marker"] == "NKG2A")]
    assert len(pooled), "the fixture has no pooled threshold to check"
    for note, got in pooled.groupby("note")["threshold_scale"].first().items():
        control = folder / note.removeprefix("control ").split(":")[0]
        sample = cytokit.read_fcs(control)
        gated = study.gate(sample, tube="receptors")
        cells = np.logical_or.reduce([gated.membership(p) for p in paths])
        sp = sample.spillover
        comp = compensate(sample.events, sp.matrix, [sample.channel_index(c) for c in sp.channels])
        x = comp[:, study.tube_panel("receptors").column(sample, "NKG2A")].astype(np.float64)
        assert cells.sum() >= 1000
        assert got == pytest.approx(fmo_threshold(x[cells]), rel=1e-6), control


def test_report_sections(analysed):
    # the index sections say what the plots show; each patient's part has a figure and a
    # summary table, the net values with their intervals as function.csv holds them, and
    # nothing without rows
    from cytokit.report._html import fmt
    from cytokit.report.page import OPTIONAL_SECTIONS, PATIENT_SECTIONS
    from cytokit.report.tubes import (
        function_patient,
        function_section,
        repertoire_patient,
        repertoire_section,
    )

    _, res = analysed
    assert OPTIONAL_SECTIONS["repertoire"][1] is repertoire_section
    assert OPTIONAL_SECTIONS["function"][1] is function_section
    assert PATIENT_SECTIONS["repertoire"] is repertoire_patient
    assert PATIENT_SECTIONS["function"] is function_patient
    html = repertoire_section(res)
    patients = sorted(res.repertoire["patient"].astype(str).unique())
    assert html.startswith('<section id="repertoire">') and "<figure>" not in html
    parts = [repertoire_patient(res, p) for p in patients]
    assert all(part.count("<figure>") == 1 for part in parts)
    assert all("single-KIR+" in part and "no inhibitory receptor" in part for part in parts)
    assert repertoire_patient(res, "no such patient") == ""
    fun = "".join(function_patient(res, p) for p in patients)
    assert fun.count("<figure>") == len(res.function["patient"].unique())
    assert function_section(res).startswith('<section id="function">')
    from cytokit.report.contents import min_events_of

    least = min_events_of(res)
    r = res.function[res.function["pct_net"].notna() & (res.function["events_stim"] >= least)]
    r = r.iloc[0]
    assert f"({fmt(r['ci_low'])} to {fmt(r['ci_high'])})" in fun
    # a group of a few cells gives its count, not "0 % (-79.3 to 79.3)"
    fun_rows = res.function[res.function["pct_net"].notna()]
    shown = fun_rows[fun_rows["population"] == "NK"]  # the rows the table has
    few = shown[shown["events_stim"] < least]
    assert len(few) and fun.count(">too few cells</td>") == len(few)
    empty = cytokit.Results()
    assert repertoire_section(empty) == "" and function_section(empty) == ""
    assert repertoire_patient(empty, "P01") == "" and function_patient(empty, "P01") == ""


@pytest.fixture(scope="module")
def report(analysed, tmp_path_factory):
    """The report of `analysed`: its index's path (the patients' pages beside it)."""
    from cytokit.report import build_report

    _, res = analysed
    return build_report(res, tmp_path_factory.mktemp("multitube_report"), qc=False)


def test_index_names_each_tubes_phenotype_markers(analysed, report):
    """The cohort facts name the phenotype markers of every tube (tubes.csv), not only the
    default tube's; tubes with the same markers share one entry."""
    import re

    _, res = analysed
    html = report.read_text(encoding="utf-8")
    (line,) = re.findall(r"<li>Donor marker\(s\):[^<]*</li>", html)
    text = line.removeprefix("<li>").removesuffix("</li>").replace("&#x27;", "'")
    by_markers: dict[str, list[str]] = {}
    for r in res.tubes.itertuples():
        by_markers.setdefault(r.phenotype_markers.replace("; ", ", "), []).append(r.tube)
    assert len(by_markers) == 3  # default; receptors; stimulated and unstimulated
    entries = [
        f"{markers} (tube{'s' if len(tubes) > 1 else ''} {', '.join(tubes)})"
        for markers, tubes in by_markers.items()
    ]
    assert text == "Donor marker(s): HLA-A2; phenotype markers: " + "; ".join(entries) + ".", text


def test_phenotype_table_shows_every_tubes_row_once(analysed, report):
    """Two tubes measure the same marker (CD107a and IFN-g in the stimulated and the
    unstimulated tube): the patient's page keeps them apart by a tube column and shows
    every phenotype.csv row's median, % positive and events exactly once."""
    import re

    from report_reading import assert_printed, tables

    _, res = analysed
    ph = res.phenotype
    shared = ph.groupby(["patient", "day", "population", "origin", "marker"])["tube"].nunique()
    assert (shared > 1).any(), "the fixture has no marker measured in two tubes"
    pages = report.parent / "patients"
    for patient, mine in ph.groupby("patient"):
        html = (pages / f"{patient}.html").read_text(encoding="utf-8")
        (t,) = tables(html, "Phenotype:")
        several = mine["tube"].nunique() > 1
        labels = ["population", "origin", "marker"] + (["tube"] if several else [])
        assert t.header[: len(labels)] == labels, t.header
        days = [int(h.removeprefix("day ")) for h in t.header[len(labels) :]]
        shown = 0
        for cells in t.rows:
            key = dict(zip(labels, cells, strict=False))
            for day, text in zip(days, cells[len(labels) :], strict=True):
                r = mine[(mine["day"] == day)]
                for k, v in key.items():
                    r = r[r[k].astype(str) == v]
                if not text:
                    assert r.empty, (patient, key, day)
                    continue
                assert len(r) == 1, (patient, key, day, r["file"].tolist())
                m = re.match(r"(\S+)(?: · (\S+) %\+)?\n(\S+) ev$", text)
                assert m is not None, text
                r = r.iloc[0]
                assert_printed(m.group(1), r["median"], f"{patient} {key} median")
                assert_printed(m.group(2), r["pct_positive"], f"{patient} {key} %+")
                assert int(m.group(3).replace(",", "")) == r["events"]
                shown += 1
        assert shown == len(mine), (patient, shown, len(mine))


def test_repertoire_table_says_too_few_cells_as_the_function_table_does(analysed):
    """A summary group of fewer than [qc] min_events cells reads "too few cells" with its
    count (repertoire.csv keeps its % and interval), as in the function table; every other
    group shows repertoire.csv's % and interval."""
    from report_reading import assert_printed, tables

    from cytokit.report.contents import min_events_of
    from cytokit.report.tubes import repertoire_patient, repertoire_section

    _, res = analysed
    least = min_events_of(res)
    rep = res.repertoire
    summary = rep[(rep["kind"] == "summary") & (rep["population"] == "NK") & rep["pct"].notna()]
    assert (summary["total"] < least).any() and (summary["total"] >= least).any()
    seen = 0
    for patient, mine in summary.groupby("patient"):
        (t,) = tables(repertoire_patient(res, str(patient)))
        assert t.header == ["day", "origin", "", "% (95 % CI)", "cells"]
        for day, origin, combination, text, cells in t.rows:
            (r,) = mine[(mine["day"] == int(day)) & (mine["origin"] == origin)
                        & (mine["combination"] == combination)].itertuples()  # fmt: skip
            assert int(cells.replace(",", "")) == r.total
            if r.total < least:
                assert text == "too few cells", (patient, day, origin, combination, text)
            else:
                pct, _, ci = text.partition(" % (")
                low, _, high = ci.removesuffix(")").partition("–")
                assert_printed(pct, r.pct, "pct")
                assert_printed(low, r.ci_low, "ci_low")
                assert_printed(high, r.ci_high, "ci_high")
            seen += 1
    assert seen == len(summary)
    assert f"fewer than {least} cells are not drawn, and the table gives their count only" in (
        repertoire_section(res)
    )


def test_invariants_catch_broken_repertoire_and_function(analysed):
    import dataclasses

    from cytokit.analysis.invariants import violations

    _, res = analysed
    assert violations(res) == []
    rep = res.repertoire.copy()
    i = rep.index[rep["events"].fillna(0) > 0][0]
    rep.loc[i, "events"] += 1  # one event counted twice: pct and the combinations' sum break
    fun = res.function.copy()
    j = fun.index[fun["pct_net"].notna()][0]
    fun.loc[j, "pct_net"] += 1.0
    found = violations(dataclasses.replace(res, repertoire=rep, function=fun))
    assert any("pct must be 100 * events / total" in v for v in found), found
    assert any("add up to the total" in v for v in found), found
    assert any("pct_net must be pct_stim - pct_unstim" in v for v in found), found


def test_normalised_medians_follow_the_cells_not_the_gain(analysed):
    # the healthy control's cells are the same on both days; the receptor detectors' gain
    # is not: its raw NKG2A median moves with the true gain, its normalised one stays
    folder, res = analysed
    n = res.phenotype_normalised
    hc = n[(n["patient"] == "HC") & (n["population"] == "NK") & (n["origin"] == "all")]
    hc = hc[hc["marker"] == "NKG2A"].set_index("day")
    assert hc["median_normalised"].notna().all(), hc["note"].tolist()
    gains = {
        day: np.load(folder / "fcs" / f"HC_day{day:03d}_receptors.truth.npz")["gain"][3]
        for day in (7, 14)
    }
    raw = hc.loc[14, "median"] / hc.loc[7, "median"]
    assert raw == pytest.approx(gains[14] / gains[7], rel=0.1)
    assert hc.loc[14, "median_normalised"] / hc.loc[7, "median_normalised"] == pytest.approx(
        1.0, abs=0.12
    )
    # the raw medians are phenotype.csv's, beside the normalised ones
    ph = res.phenotype.set_index(["file", "population", "origin", "marker"])["median"]
    keys = list(zip(n["file"], n["population"], n["origin"], n["marker"], strict=True))
    assert np.allclose(ph.loc[keys].to_numpy(), n["median"].to_numpy(), equal_nan=True)


def test_every_row_without_a_normalised_median_says_why(analysed):
    """phenotype_normalised.csv's note explains every empty median_normalised: a population
    with no events of the origin has no median to normalise (the row says so), and a note
    names the reference file once, without a stray count of references."""
    _, res = analysed
    n = res.phenotype_normalised
    empty = n[n["median_normalised"].isna()]
    assert (n["events"] == 0).any() and len(empty)
    assert empty["note"].fillna("").str.len().gt(0).all(), empty[empty["note"].isna()].head()
    none = n[n["events"] == 0]
    who = none["population"].where(
        none["origin"] == "all", none["origin"] + " " + none["population"]
    )
    assert (none["note"] == "no " + who + " events in the file: no median to normalise").all()
    for note, ref in zip(
        n["note"].dropna(), n.loc[n["note"].notna(), "reference_file"], strict=True
    ):
        assert "#1" not in note and (pd.isna(ref) or note.count(ref) <= 1), note


def test_a_reference_with_too_few_events_gives_one_plain_note():
    from cytokit.analysis.normalise import MIN_REFERENCE_EVENTS
    from cytokit.analysis.normalised import normalised_rows
    from cytokit.analysis.per_patient import SampleCells

    rng = np.random.default_rng(1)

    def cells(n):
        return SampleCells(["KIR2DL1"], {"NK_bright": (rng.normal(100, 30, (n, 1)), None)}, {}, {})

    references = {("receptors", 7): ("fcs/REF_day007_receptors.fcs", cells(268)),
                  ("receptors", 14): ("fcs/REF_day014_receptors.fcs", cells(900))}  # fmt: skip
    row = {"patient": "P01", "tube": "receptors", "population": "NK_bright", "origin": "all",
           "marker": "KIR2DL1", "events": 66, "median": 95.0}  # fmt: skip
    rows = normalised_rows(
        [{**row, "day": d, "file": f"fcs/P01_day{d:03d}_receptors.fcs"} for d in (7, 14)],
        references,
    )
    assert rows[0]["note"] == (
        "the reference fcs/REF_day007_receptors.fcs has 268 NK_bright events, fewer than the "
        f"{MIN_REFERENCE_EVENTS} quantile normalisation needs"
    )
    assert "median_normalised" not in rows[0]
    assert np.isfinite(rows[1]["median_normalised"]) and not rows[1].get("note")
    # a dead channel of the reference: its file named once, no count of references
    dead = SampleCells(["KIR2DL1"], {"NK_bright": (np.zeros((900, 1)), None)}, {}, {})
    references[("receptors", 21)] = ("fcs/REF_day021_receptors.fcs", dead)
    (row,) = normalised_rows([{**row, "day": 21, "file": "fcs/P01_day021.fcs"}], references)
    assert row["note"] == (
        "reference fcs/REF_day021_receptors.fcs NK_bright KIR2DL1: half the reference's "
        "quantiles are the same value (a dead, stuck or saturated channel); this batch cannot "
        "be normalised on it"
    )


def test_export_wsp_gates_each_file_with_its_tubes_strategy(tmp_path):
    # a tube with its own strategy: the workspace holds each file with the gates its tube
    # counted it with, so gating it again gives counts.csv's counts (no note)
    from cytokit.analysis import export_wsp

    folder = tmp_path / "s"
    design = preset_design("sample", seed=5, n_patients=1, n_events=8_000, days=(7,))
    simulate_study(folder, design, workers=1)
    add_tubes(folder, seed=5)
    text = (folder / "strategy.yaml").read_text()
    assert "distance: 6" in text
    (folder / "receptors.yaml").write_text(text.replace("distance: 6", "distance: 3.5", 1))
    toml = (folder / "study.toml").read_text()
    toml = toml.replace("[tubes.receptors]\n", '[tubes.receptors]\nstrategy = "receptors.yaml"\n')
    (folder / "study.toml").write_text(toml)
    res = cytokit.analyze(folder, tmp_path / "results", workers=1)
    assert res.failures.empty, res.failures.to_dict("records")
    lymph = res.counts[res.counts["gate_path"] == "/Lymphocytes"].set_index("file")["count"]
    done = export_wsp(tmp_path / "results", out=tmp_path / "out.wsp")
    assert not done.skipped and len(done.samples) == len(res.samples)
    assert not [n for n in done.notes if "gated again" in n], done.notes
    # the receptor tube's tighter ellipse is what counted its files
    study = cytokit.load_study(folder)
    for row in study.rows:
        file = study.relative(row.file)
        if study.tube_of(row) == "receptors":
            default = study.gate(cytokit.read_fcs(row.file), membership=False)
            other = default.counts.set_index("gate_path")["count"]["/Lymphocytes"]
            assert lymph[file] < other, (file, lymph[file], other)


def test_export_anndata_one_tube_at_a_time(analysed):
    # one AnnData holds one panel: a study of several tubes is exported a tube at a time,
    # each file gated with its tube's strategy, so the in_<population> sums are counts.csv's
    pytest.importorskip("anndata")
    from cytokit.analysis.anndata_export import results_anndata
    from cytokit.errors import CytokitError

    folder, res = analysed
    with pytest.raises(CytokitError, match="--tube") as err:
        results_anndata(folder / "results")
    assert "receptors" in str(err.value)
    adata = results_anndata(folder / "results", tube="receptors")
    files = set(res.samples.loc[res.samples["tube"] == "receptors", "file"])
    assert set(adata.obs["file"].astype(str)) == files
    assert adata.uns["cytokit"]["tube"] == "receptors"
    assert "KIR2DL1" in set(adata.var["panel_marker"])
    counts = res.counts.set_index(["file", "gate_path"])["count"]
    populations = dict(adata.uns["cytokit"]["populations"])
    for file, rows in adata.obs.groupby("file", observed=True):
        for name, path in populations.items():
            assert int(rows[f"in_{name}"].sum()) == int(counts[(str(file), path)]), (file, name)


def test_export_anndata_command_takes_the_tube(analysed, tmp_path, capsys):
    anndata = pytest.importorskip("anndata")
    from cytokit.cli.app import run

    folder, res = analysed
    assert run(["export-anndata", str(folder / "results"), str(tmp_path / "a.h5ad")]) == 1
    assert "--tube" in capsys.readouterr().err
    out = tmp_path / "b.h5ad"
    args = ["export-anndata", str(folder / "results"), str(out), "--tube", "stimulated"]
    assert run([*args, "--events", "50"]) == 0
    adata = anndata.read_h5ad(out)
    files = set(res.samples.loc[res.samples["tube"] == "stimulated", "file"])
    assert set(adata.obs["file"].astype(str)) == files and adata.n_obs == 50 * len(files)


def test_a_stimulated_file_without_its_unstimulated_one_is_said_not_dropped(tmp_path):
    """A visit whose unstimulated file is not in the manifest has nothing to subtract: its
    stimulated file's function.csv rows say so (no numbers), rather than no row at all."""
    from cytokit.analysis.invariants import violations

    folder = tmp_path / "s"
    design = preset_design("sample", seed=4, n_patients=1, n_events=4_000, days=(7, 14))
    simulate_study(folder, design, workers=1)
    add_tubes(folder, seed=4)
    manifest = folder / "manifest.csv"
    lines = manifest.read_text().splitlines()
    gone = next(line for line in lines if "day014_unstim" in line)
    manifest.write_text("\n".join(line for line in lines if line != gone) + "\n")
    res = cytokit.analyze(folder, folder / "results", workers=1)
    fun = res.function
    lone = fun[fun["file"].str.contains("day014_stim")]
    assert len(lone) and lone["pct_net"].isna().all()
    assert lone["note"].str.contains("no unstimulated file of this visit").all()
    paired = fun[fun["file"].str.contains("day007_stim")]
    assert paired["pct_net"].notna().any()
    assert violations(res) == []


def test_a_stimulated_file_whose_unstimulated_one_failed_names_that_file(tmp_path):
    """A failed unstimulated file is in the manifest: its visit's function.csv rows said
    "not in the manifest: add it to the manifest"; they name the failed file."""
    import warnings

    from cytokit.analysis.invariants import violations

    folder = tmp_path / "s"
    design = preset_design("sample", seed=5, n_patients=1, n_events=4_000, days=(7, 14))
    simulate_study(folder, design, workers=1)
    add_tubes(folder, seed=5)
    broken = next((folder / "fcs").glob("*day014_unstim.fcs"))
    broken.write_bytes(broken.read_bytes()[:3000])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # pandas' fillna downcasting
        res = cytokit.analyze(folder, folder / "results", workers=1)
    receptors = next((folder / "fcs").glob("*day007_receptors.fcs"))
    assert list(res.failures["file"]) == [f"fcs/{broken.name}"]
    lone = res.function[res.function["file"].str.contains("day014_stim")]
    assert len(lone) and lone["pct_net"].isna().all()
    assert (
        lone["note"]
        == f"the unstimulated file of this visit (fcs/{broken.name}) failed (see failures.csv): "
        "nothing to subtract"
    ).all()
    assert violations(res) == []
    # the report's tables of those tubes say which visits' files failed
    from cytokit.report import build_report

    receptors.write_bytes(receptors.read_bytes()[:3000])
    res = cytokit.analyze(folder, folder / "results", workers=1)
    page = build_report(folder / "results", qc=False).parent / "patients"
    text = " ".join(p.read_text() for p in page.glob("*.html"))
    for name in (broken.name, receptors.name):
        assert f"fcs/{name}" in text
    assert text.count('Not measured (the file failed; see <a href="../report.html#failures">') == 2
    # receptor and function tubes carry no beads by design: no "no absolute counts" flag,
    # which listed each of their files' days once per file
    assert "no absolute counts" not in text
