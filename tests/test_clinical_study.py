"""The clinical files in a study folder: loading, and what they change in trends and cohort.

The sample study's schedule (sample_data/infusions.csv) is the truth the tests
compare with: P01 one NK infusion of 1.8e7/kg; P02 two DLIs of 1e6/kg (days 0,
21) then CIK 3, 5 and 10 x 1e6/kg (days 42, 63, 84); P03 two NK infusions of
1.2e7/kg (days 0, 14).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_reading import report_text

import cytokit
from cytokit.errors import StudyError
from cytokit.study import load_study

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"

TREATMENTS = """patient,day,product,kind,dose,unit,dose_level,given
P01,0,NK,cells,18000000,cells/kg,1,yes
P01,1,IL-2,drug,1,MIU/m2,,yes
P01,3,IL-2,drug,1,MIU/m2,,yes
P01,5,IL-2,drug,1,MIU/m2,,yes
P01,7,IL-2,drug,1,MIU/m2,,yes
P01,9,IL-2,drug,1,MIU/m2,,yes
P02,0,DLI,cells,1000000,cells/kg,,yes
P02,21,DLI,cells,1000000,cells/kg,,yes
P02,42,CIK,cells,3000000,cells/kg,1,yes
P02,63,CIK,cells,5000000,cells/kg,2,yes
P02,84,CIK,cells,10000000,cells/kg,3,yes
P02,105,CIK,cells,20000000,cells/kg,4,no
P03,0,NK,cells,12000000,cells/kg,1,yes
P03,14,NK,cells,12000000,cells/kg,1,yes
P03,2,IL-2,drug,1,MIU/m2,,yes
P03,16,IL-2,drug,1,MIU/m2,,yes
"""


@pytest.fixture
def study(tmp_path):
    return shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("*.npz"))


def _problems(folder: Path) -> list[str]:
    with pytest.raises(StudyError) as err:
        load_study(folder, check_files=False)
    return str(err.value).split("\n  ")[1:]


def test_treatments_and_outcomes_are_loaded(study):
    (study / "infusions.csv").unlink()
    (study / "treatments.csv").write_text(TREATMENTS)
    (study / "outcomes.csv").write_text(
        "patient,response,response_day,last_followup_day,death_day\n"
        "P01,CR,100,400,\nP02,PD,100,,250\nP03,PR,100,365,\n"
    )
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[outcomes]\nlandmark_day = 21\n")
    loaded = load_study(study, check_files=False)
    assert len(loaded.clinical.treatments) == 16
    assert [o.patient for o in loaded.clinical.outcomes] == ["P01", "P02", "P03"]
    assert loaded.clinical.settings.landmark_day == 21
    # the infusions the trends read: given cell rows only (no IL-2, not the skipped CIK)
    assert sorted((i.patient, i.day, i.product) for i in loaded.infusions) == [
        ("P01", 0, "NK"),
        ("P02", 0, "DLI"),
        ("P02", 21, "DLI"),
        ("P02", 42, "CIK"),
        ("P02", 63, "CIK"),
        ("P02", 84, "CIK"),
        ("P03", 0, "NK"),
        ("P03", 14, "NK"),
    ]


def test_a_dose_per_kg_is_any_unit_per_kg(study):
    (study / "infusions.csv").unlink()
    (study / "treatments.csv").write_text(
        "patient,day,product,kind,dose,unit\n"
        "P01,0,NK,cells,1e7,CD3-CD56+ cells/kg\nP02,0,DLI,cells,1e6,CD3+ cells/kg\n"
        "P03,0,CIK,cells,2,bags\n"
    )
    doses = {i.patient: i.dose_per_kg for i in load_study(study, check_files=False).infusions}
    assert doses == {"P01": 1e7, "P02": 1e6, "P03": None}


def test_no_clinical_files_no_outcomes(study):
    (study / "infusions.csv").unlink()
    loaded = load_study(study, check_files=False)
    assert loaded.clinical.treatments == [] and loaded.clinical.outcomes is None
    assert loaded.infusions == []


def test_every_clinical_problem_joins_the_study_error(study):
    (study / "infusions.csv").unlink()
    (study / "treatments.csv").write_text(
        "patient,day,product,kind,dose,unit\nP01,0,NK,cells,1e7,cells/kg\nP01,2,IL-2,pill,1,MIU\n"
    )
    (study / "outcomes.csv").write_text("patient,response,last_followup_day\nP01,XX,100\n")
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[outcomes]\nlandmark_day = -3\n")
    lines = (study / "manifest.csv").read_text().splitlines()
    lines.append(lines[1])  # a manifest problem too: the same file listed twice
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    problems = _problems(study)
    text = "\n".join(problems)
    assert any("treatments.csv, line 3" in p and "'pill'" in p for p in problems), text
    assert any("outcomes.csv, line 2" in p and "XX" in p for p in problems), text
    assert any("[outcomes] landmark_day" in p for p in problems), text
    assert any("manifest.csv" in p and "listed again" in p for p in problems), text


def test_both_schedules_is_a_problem(study):
    (study / "treatments.csv").write_text(TREATMENTS)
    problems = _problems(study)
    assert len(problems) == 1 and "infusions.csv" in problems[0] and "treatments.csv" in problems[0]


def test_outcomes_outside_the_study_are_refused(study, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("patient,last_followup_day\nP01,100\n")
    (study / "outcomes.csv").symlink_to(outside)
    problems = _problems(study)
    assert len(problems) == 1 and "outcomes.csv" in problems[0]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The sample study analysed twice: with its infusions.csv, and with treatments.csv
    adding IL-2 courses and a skipped CIK infusion to the same cell infusions."""
    base = tmp_path_factory.mktemp("clin")
    plain = shutil.copytree(SAMPLE_DATA, base / "plain")
    with_drugs = shutil.copytree(SAMPLE_DATA, base / "drugs")
    (with_drugs / "infusions.csv").unlink()
    (with_drugs / "treatments.csv").write_text(TREATMENTS)
    return (
        cytokit.analyze(plain, base / "out-plain", workers=1),
        cytokit.analyze(with_drugs, base / "out-drugs", workers=1),
    )


def _by_key(trends: pd.DataFrame) -> pd.DataFrame:
    keys = ["patient", "sample_type", "population", "measure"]
    return trends.set_index(keys).sort_index()


def test_il2_course_changes_no_half_life_and_no_cell_dose(analysed):
    plain, drugs = (_by_key(r.trends) for r in analysed)
    assert list(plain.index) == list(drugs.index)
    for column in ("half_life_days", "half_life_ci_low", "half_life_ci_high", "half_life_n"):
        pd.testing.assert_series_equal(plain[column], drugs[column], check_exact=False, rtol=1e-12)
    p01 = drugs.loc["P01"]
    assert (p01["n_infusions"] == 1).all() and (p01["total_dose_per_kg"] == 1.8e7).all()
    p03 = drugs.loc["P03"]
    assert (p03["n_infusions"] == 2).all() and (p03["total_dose_per_kg"] == 2.4e7).all()
    assert (drugs["last_infusion_day"] <= 84).all()  # the skipped CIK of day 105 is no infusion


def test_dli_and_cik_never_summed(analysed):
    for results in analysed:
        p02 = _by_key(results.trends).loc["P02"]
        assert p02["total_dose_per_kg"].isna().all()  # was 2e7 = 2 DLI + CIK 3+5+10 (x 1e6)
        assert (p02["dose_product"] == "DLI+CIK").all()
        assert (p02["doses_per_kg"] == "DLI: 2e+06; CIK: 1.8e+07").all()
        assert (p02["n_infusions"] == 5).all()
        cohort = results.cohort
        # the dose statistics read the NK patients' doses only: median of 1.8e7 and 2.4e7
        assert (cohort["dose_product"].fillna("").isin(["NK", ""])).all()
        nk = cohort[cohort["dose_product"] == "NK"]
        assert len(nk) and all(math.isclose(v, 2.1e7) for v in nk["dose_median"])


OUTCOMES = """patient,response,response_day,agvhd_max_grade,agvhd_onset_day,dlt,dlt_day,last_followup_day,death_day,progression_day
P01,CR,100,0,,no,,400,,
P02,PD,100,2,30,yes,35,,250,120
P03,PR,100,1,20,no,,365,,
"""


@pytest.fixture(scope="module")
def with_outcomes(tmp_path_factory):
    base = tmp_path_factory.mktemp("outcomes")
    study = shutil.copytree(SAMPLE_DATA, base / "s")
    (study / "infusions.csv").unlink()
    (study / "treatments.csv").write_text(TREATMENTS)
    (study / "outcomes.csv").write_text(OUTCOMES)
    return cytokit.analyze(study, base / "out", workers=1), base / "out"


def test_outcome_tables_are_written_with_outcomes(with_outcomes):
    results, out = with_outcomes
    for name in ("outcomes_summary", "survival", "landmark", "dose_escalation", "doses"):
        assert (out / f"{name}.csv").is_file(), name
    index = (out / "tables.json").read_text()
    assert "outcomes_summary.csv" in index and "survival.csv" in index
    summary = results.clinical["outcomes_summary"]
    row = summary[(summary["section"] == "os") & (summary["group_by"] == "all")].iloc[0]
    # by hand: 3 at risk, P02 dies on day 250, P01 and P03 censored at 400 and 365
    assert row["n"] == 3 and row["events"] == 1
    assert math.isclose(row["estimate"], 2 / 3, rel_tol=1e-9)
    pfs = summary[(summary["section"] == "pfs") & (summary["group_by"] == "all")].iloc[0]
    assert pfs["events"] == 1  # P02's progression on day 120
    doses = results.clinical["doses"].set_index(["patient", "product"])
    assert doses.loc[("P02", "DLI"), "total_dose"] == 2e6
    assert doses.loc[("P02", "CIK"), "total_dose"] == 1.8e7
    assert doses.loc[("P02", "CIK"), "n_skipped"] == 1
    landmark = results.clinical["landmark"]
    assert set(landmark["endpoint"]) == {"pfs", "os"} and (landmark["n_patients"] == 3).all()
    again = cytokit.load_results(out)
    assert sorted(again.clinical) == sorted(results.clinical)
    numbers = ["n", "events", "estimate", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(
        again.clinical["outcomes_summary"][numbers].astype(float).reset_index(drop=True),
        results.clinical["outcomes_summary"][numbers].astype(float).reset_index(drop=True),
        check_exact=False,
        rtol=1e-9,
    )


def test_no_outcomes_no_outcome_tables(analysed, tmp_path):
    plain, _ = analysed
    assert list(plain.clinical) == ["treatments", "dose_response"]  # no outcome table
    assert not any((plain.out / f"{n}.csv").exists() for n in ("survival", "landmark", "doses"))


def test_missing_lifelines_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    import sys

    from cytokit.analysis.outcomes import outcome_tables

    study = shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("*.npz"))
    (study / "outcomes.csv").write_text(OUTCOMES)
    loaded = load_study(study, check_files=False)
    monkeypatch.setitem(sys.modules, "lifelines", None)
    with pytest.raises(ImportError) as err:
        outcome_tables(loaded, pd.DataFrame())
    assert 'pip install "cytokit-flow[clinical]"' in str(err.value)
    assert "\n" not in str(err.value)


def test_report_has_the_outcomes_section_first(with_outcomes):
    from cytokit.report import build_report

    _, out = with_outcomes
    page = build_report(out, qc=False).read_text()
    assert page.index('<section id="outcomes">') < page.index('<section id="cohort">')
    section = page[page.index('<section id="outcomes">') :].split("</section>")[0]
    assert section.count("<img") >= 3  # PFS, OS, GVHD curves
    # P02 (CIK arm) is first sampled after an infusion on day 43: no sample by the landmark
    assert "Landmark at day 28 (overall survival): 2 of 3 patients" in section
    assert "(1 excluded)" in section
    assert "Dose escalation" in section
    # the medians, the estimates at the horizon and the response rates of
    # outcomes_summary.csv are in the section, in words
    res, _ = with_outcomes
    summary = res.clinical["outcomes_summary"]
    assert "Survival, follow-up and response (outcomes_summary.csv)" in section
    os_all = summary[(summary["section"] == "os") & (summary["group_by"] == "all")].iloc[0]
    from cytokit.report._html import fmt

    if pd.notna(os_all["estimate"]):
        assert f"{fmt(100 * os_all['estimate'])} % at day " in section
    n_rows = summary["section"].isin(["pfs", "os", "followup", "response", "agvhd"]).sum()
    table_html = section[section.index("outcomes_summary.csv") :].split("</table>")[0]
    assert table_html.count("<tr>") == n_rows + 1  # the header and a row each
    # acute GVHD's rows too (they were left out, the curve shown alone)
    assert summary["section"].eq("agvhd").any()
    assert "acute GVHD, cumulative incidence (death competing)" in table_html


def test_results_carry_the_whole_schedule(analysed):
    from cytokit.clinical import read_treatments, treatments_from_frame

    plain, drugs = analysed
    frame = drugs.clinical["treatments"]
    assert len(frame) == 16  # every row: IL-2 courses and the skipped CIK included
    assert (frame["kind"] == "drug").sum() == 7 and (~frame["given"].astype(bool)).sum() == 1
    again = cytokit.load_results(drugs.out).clinical["treatments"]
    keys = ("patient", "day", "product", "kind", "dose", "unit", "dose_level", "given", "end_day")
    source = read_treatments(drugs.out.parent / "drugs" / "treatments.csv")
    back = treatments_from_frame(again)
    assert [tuple(getattr(t, k) for k in keys) for t in back] == [
        tuple(getattr(t, k) for k in keys) for t in source
    ]
    # each cell product's dose against persistence: P02's CIK dose alone (DLI apart)
    dr = drugs.clinical["dose_response"]
    cik = dr[(dr["product"] == "CIK") & (dr["population"] == "NK")].iloc[0]
    assert cik["dose_median"] == 1.8e7 and cik["n_several_products"] == 1
    assert set(dr["product"]) == {"NK", "DLI", "CIK"}  # never IL-2
    # infusions.csv is a schedule too: its rows, all given cells
    legacy = plain.clinical["treatments"]
    assert len(legacy) == 8 and (legacy["kind"] == "cells").all() and legacy["given"].all()


def test_drug_courses_are_shaded_on_the_persistence_plots(analysed, tmp_path, monkeypatch):
    from cytokit.plots import persistence_figure
    from cytokit.report import figures

    plain, drugs = analysed
    jobs = []

    def capture(js, workers, meanwhile=None, pool=None, submitted=None):  # nothing drawn
        jobs.extend(js)
        for then in (submitted, meanwhile):
            if then is not None:
                then()
        return [(i, [b"png"] * len(j.formats)) for i, j in enumerate(js)]

    monkeypatch.setattr(figures, "_render_all", capture)
    figures.write_plots(cytokit.load_results(drugs.out), tmp_path / "d", qc=False)
    persistence = {j.args[1]: j for j in jobs if j.builder == "persistence_svg"}
    chimerism = {j.args[1]: j for j in jobs if j.builder == "chimerism_svg"}
    # by hand: IL-2 on days 1, 3, 5, 7, 9 (2 days apart, within 3) is one course 1-9;
    # P03's IL-2 on days 2 and 16 are two courses; P02 had no drug. Each patient's plots
    # get (and are keyed by) that patient's courses only
    got = []
    for pid in ("P01", "P02", "P03"):
        courses = persistence[pid].kwargs["courses"]
        assert courses.equals(chimerism[pid].kwargs["courses"])
        assert set(courses["patient"].astype(str)) <= {pid}
        got += courses[["patient", "product", "start_day", "end_day"]].itertuples(index=False)
    assert sorted(tuple(r) for r in got) == [
        ("P01", "IL-2", 1, 9),
        ("P03", "IL-2", 2, 2),
        ("P03", "IL-2", 16, 16),
    ]
    jobs.clear()
    figures.write_plots(cytokit.load_results(plain.out), tmp_path / "p", qc=False)
    assert all(j.kwargs.get("courses") is None for j in jobs if "courses" in j.kwargs)
    # drawn: each panel of P01 has one band from day 1 to the end of day 9
    job = persistence["P01"]
    fig = persistence_figure(*job.args, **job.kwargs)
    for ax in fig.axes:
        if not ax.get_visible() or not ax.has_data():
            continue
        spans = [p.get_x() for p in ax.patches] + [p.get_x() + p.get_width() for p in ax.patches]
        assert sorted(spans) == [1.0, 10.0], spans
    # and in the report's SVG: one band per panel over the same days, labelled
    from cytokit.plots._points import COURSE_COLOUR
    from cytokit.plots.persistence_svg import persistence_svg

    canvas = persistence_svg(*job.args, **job.kwargs)
    svg = canvas.to_bytes("svg").decode()
    bands = re.findall(
        rf'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="200.0" '
        rf'fill="{COURSE_COLOUR}"',
        svg,
    )  # fmt: skip (the panels' height)
    assert len(bands) == len(canvas.panels)
    for (x, w), ax in zip(bands, canvas.panels, strict=True):
        assert abs(float(x) - float(ax.x(1.0))) <= 0.05
        assert abs(float(x) + float(w) - float(ax.x(10.0))) <= 0.1
    assert svg.count(">IL-2</text>") == len(canvas.panels)


def test_the_report_names_the_drug_courses(analysed):
    from cytokit.report import build_report

    _, drugs = analysed
    page = report_text(build_report(drugs.out, qc=False))
    assert "drugs: IL-2 day 1–9" in page
    assert "drugs: IL-2 day 2; IL-2 day 16" in page
    assert "shaded: drug courses" in page


def test_report_refuses_outcome_tables_of_changed_clinical_files(with_outcomes, capsys):
    """The report reads the outcome tables analyze wrote (it rebuilds from the results folder
    alone); a schedule, outcomes file or [outcomes] table changed since is refused."""
    from cytokit.analysis.outcomes import check_clinical_inputs
    from cytokit.cli.app import run
    from cytokit.errors import CytokitError
    from cytokit.report import build_report

    _, out = with_outcomes
    study = out.parent / "s"
    meta = cytokit.load_results(out).study
    assert meta["clinical_inputs"]["files"]["infusions.csv"] is None
    check_clinical_inputs(meta, out)  # unchanged: nothing to say
    build_report(out, qc=False)  # a build to compare with (plots/build.json)
    edits = [
        (study / "outcomes.csv", OUTCOMES.replace("P01,CR", "P01,PR"), "outcomes.csv: changed"),
        (study / "treatments.csv", TREATMENTS + "P03,30,IL-2,drug,1,MIU/m2,,yes\n", "changed"),
        (study / "study.toml", None, r"\[outcomes\] changed"),
        (study / "study.toml", "BOM", r"\[outcomes\] changed"),  # an editor's BOM: read
        (study / "infusions.csv", "patient,day,product,dose_per_kg\n", "infusions.csv: was added"),
    ]
    for path, text, message in edits:
        before = path.read_bytes() if path.exists() else None
        try:
            if text is None or text == "BOM":
                bom = b"\xef\xbb\xbf" if text == "BOM" else b""
                path.write_bytes(bom + before + b"\n[outcomes]\nlandmark_day = 21\n")
            else:
                path.write_text(text)
            with pytest.raises(CytokitError, match=message):
                check_clinical_inputs(meta, out)
            with pytest.raises(CytokitError, match="stale"):  # not taken as an unchanged rebuild
                build_report(out, qc=False)
            if path.name == "outcomes.csv":
                with pytest.raises(CytokitError, match="stale"):
                    build_report(out, qc=False)
                assert run(["report", str(out)]) == 1
                assert "cytokit analyze" in capsys.readouterr().err
        finally:
            if before is None:
                path.unlink()
            else:
                path.write_bytes(before)
    check_clinical_inputs(meta, out)
    # a results folder whose study is not reachable (moved, archived) is reported as written
    check_clinical_inputs({**meta, "root": str(out / "no-such-study")}, out)


def test_landmark_sentence_keeps_the_log_rank_test_where_the_hazard_ratio_fails():
    """A group without events has no hazard ratio, but its log-rank test stands: the
    sentence gives the groups, their events and p, as landmark.csv does, and says when
    the comparison was stratified."""
    from cytokit.report.outcomes import landmark_sentence

    row = {
        "endpoint": "pfs", "landmark_day": 28, "n_patients": 10, "n_eligible": 8,
        "n_excluded_event": 1, "n_excluded_followup": 0, "n_excluded_no_sample": 1,
        "n_excluded_failed": 0, "group_1": "donor cells detected", "n_1": 4, "events_1": 0,
        "group_0": "not detected", "n_0": 4, "events_0": 3, "hazard_ratio": float("nan"),
        "hr_ci_low": float("nan"), "hr_ci_high": float("nan"), "logrank_p": 0.00616,
        "note": "not estimable: no events in group 1",
    }  # fmt: skip
    text = landmark_sentence(row)
    assert "donor cells detected (4 patients, 0 events) against not detected (4, 3)" in text
    assert "hazard ratio not estimable (not estimable: no events in group 1)" in text
    assert "log-rank p = 0.00616" in text
    both = row | {
        "hazard_ratio": 0.32, "hr_ci_low": 0.1, "hr_ci_high": 0.99, "events_1": 2,
        "note": "log-rank test and Cox model stratified by stratum",
    }  # fmt: skip
    text = landmark_sentence(both)
    assert "hazard ratio 0.320 (95 % CI 0.100–0.990), log-rank p = 0.00616 (stratified by" in text
    alone = row | {"n_0": 0, "logrank_p": float("nan"), "note": "too few patients to compare"}
    assert landmark_sentence(alone).endswith("no comparison: too few patients to compare.")


def test_outcomes_without_lifelines_are_refused_before_anything_is_written(
    study, tmp_path, monkeypatch, capsys
):
    """outcomes.csv needs lifelines: without it `analyze` gated every file, then stopped with
    an "internal error" and a folder of no tables. Now it is said with the study's check,
    in one line naming the extra, and no output folder is made."""
    import sys

    from cytokit.cli.app import run

    (study / "outcomes.csv").write_text("patient,last_followup_day\nP01,400\nP02,300\nP03,200\n")
    monkeypatch.setitem(sys.modules, "lifelines", None)  # import lifelines: ImportError
    out = tmp_path / "out"
    assert run(["analyze", str(study), "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "cytokit-flow[clinical]" in err and "internal error" not in err
    assert not out.exists()
    with pytest.raises(ImportError, match="lifelines"):
        cytokit.analyze(study, out, workers=1)
    assert not out.exists()
    # a Dask address without distributed installed: the same, when the options are read
    monkeypatch.setitem(sys.modules, "distributed", None)
    args = ["analyze", str(study), "--out", str(out), "--scheduler", "tcp://127.0.0.1:1"]
    assert run(args) == 1
    err = capsys.readouterr().err
    assert "cytokit-flow[dask]" in err and "internal error" not in err
    assert not out.exists()


def test_a_median_not_reached_shows_its_known_lower_limit():
    """The follow-up median not reached with a lower 95 % limit of 481 days read "not
    reached" alone; the limit outcomes_summary.csv holds is shown beside it."""
    from cytokit.report.outcomes import _summary_table

    rows = pd.DataFrame(
        [
            {"section": "followup", "group_by": "all", "group": "all", "median_days": np.nan,
             "median_ci_low": 481.0, "median_ci_high": np.nan},
            {"section": "os", "group_by": "all", "group": "all", "median_days": np.nan,
             "median_ci_low": np.nan, "median_ci_high": np.nan},
        ]
    )  # fmt: skip
    html = _summary_table(rows)
    assert "not reached (95 % CI from 481 d)" in html
    assert html.count("not reached") == 2
