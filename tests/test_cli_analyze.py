"""``cytokit analyze`` and ``cytokit demo``: exit codes, outputs, one error listing every problem."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from report_reading import assert_chimerism_matches, report_text
from study_helpers import make_study

import cytokit
from cytokit.cli.app import run
from cytokit.engine.runlog import read_runlog
from cytokit.errors import CytokitError
from cytokit.simulate import preset_design

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    design = preset_design("sample", seed=77, n_patients=2, n_events=5000, days=(-7, 7, 14))
    return make_study(tmp_path_factory.mktemp("cli") / "study", design)


@pytest.fixture(scope="module")
def analysed(study, tmp_path_factory):
    """`cytokit analyze` on the study: exit code, stderr, output folder."""
    out = tmp_path_factory.mktemp("analysed") / "out"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(["analyze", str(study), "--out", str(out), "--workers", "1"])
    return code, err.getvalue(), out


def test_analyze_writes_the_tables(analysed):
    code, err, out = analysed
    assert code == 0, err
    assert "6 of 6 file(s) analysed, 0 failed" in err
    for name in ("samples", "counts", "chimerism", "thresholds", "phenotype", "trends", "cohort"):
        assert (out / f"{name}.csv").is_file(), name
    assert (out / "study.json").is_file() and (out / "results.sqlite").is_file()
    chim = pd.read_csv(out / "chimerism.csv")
    assert len(chim) == 6 * 5 and set(chim.patient) == {"P01", "P02"}


def test_analyze_builds_the_report_of_its_tables(analysed, study):
    """report.html is written and shows chimerism.csv, whose donor shares are the
    simulator's (within 3 pp where a population has >= 100 events)."""
    code, err, out = analysed
    assert code == 0, err
    assert f"report: {out / 'report.html'}" in err
    chim = pd.read_csv(out / "chimerism.csv", dtype={"patient": str})
    assert assert_chimerism_matches(report_text(out / "report.html"), chim) == 30
    assert any((out / "plots").glob("*_persistence.svg"))
    truth = pd.read_csv(study / "truth" / "populations.csv", dtype={"patient": str})
    merged = chim.merge(truth, on=["patient", "day", "population"], suffixes=("", "_true"))
    big = merged[merged.events >= 100]
    assert len(big) >= 10
    assert (big.donor_pct - 100.0 * big.donor_events_true / big.events_true).abs().max() <= 3.0


def test_report_command_rebuilds_the_report(analysed, tmp_path, capsys):
    """`cytokit report` on a copy of the results without its report: report.html and
    plots again, showing the stored tables."""
    code, err, out = analysed
    assert code == 0, err
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / "report.html").unlink()
    shutil.rmtree(copy / "plots")
    assert run(["report", str(copy)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(copy / "report.html")
    assert "rebuilding plots and report" in captured.err
    # the size it prints is the page's (a small page in kB, never "0.0 MB")
    size = (copy / "report.html").stat().st_size
    said = re.search(r"report\.html \((\d+(?:\.\d)?) (kB|MB)\)", captured.err)
    assert said, captured.err
    assert abs(float(said[1]) * (1e3 if said[2] == "kB" else 1e6) - size) <= (
        500 if said[2] == "kB" else 50_000
    )
    assert (said[2] == "kB") == (size < 100_000) and said[1] not in ("0", "0.0")
    html = report_text(copy / "report.html")
    assert assert_chimerism_matches(html, pd.read_csv(copy / "chimerism.csv")) == 30
    assert any((copy / "plots").glob("*_persistence.svg"))
    assert run(["report", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_every_report_figure_is_svg_and_svg_changes_nothing(analysed, tmp_path):
    """Every figure of the report is an SVG file (drawn without matplotlib); a QC plot is
    its PNG of histograms and the SVG over it. ``cytokit report --svg`` (which used to add
    SVG copies of PNG figures) is still accepted: it says it is not needed and changes no
    file."""
    import xml.etree.ElementTree as ET

    code, err, out = analysed
    assert code == 0, err
    copy = shutil.copytree(out, tmp_path / "copy")
    plots = copy / "plots"
    figures = sorted(p.name for p in plots.glob("*.*") if p.suffix in (".png", ".svg"))
    assert figures and all(f.endswith(".svg") for f in figures)
    assert {"clusters_heatmap.svg", "cohort_donor_pct.svg"} <= set(figures)
    for svg in plots.glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg"), svg.name
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and "plots" in p.parts}
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert run(["report", str(copy), "--svg"]) == 0
    assert "--svg is no longer needed" in stderr.getvalue()
    after = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and "plots" in p.parts}
    # build.json and digests.json record the files' times and inodes, a copy's own
    changed = {p.name for p in before if after.get(p) != before[p]} - {
        "build.json",
        "digests.json",
    }
    assert not changed and set(after) == set(before)


def test_analyze_single_file_is_the_report_commands_single_file(analysed, study, tmp_path):
    """``analyze --single-file`` (a rerun into a copy of the results: files from the store)
    builds the page ``cytokit report --single-file`` builds from the same folder."""
    code, err, out = analysed
    assert code == 0, err
    copy = shutil.copytree(out, tmp_path / "copy")
    args = ["analyze", str(study), "--out", str(copy), "--workers", "1", "--single-file"]
    assert run(args) == 0
    assert not list((copy / "patients").glob("*.html"))  # the earlier pages are gone
    again = shutil.copytree(copy, tmp_path / "again")
    assert run(["report", str(again), "--single-file"]) == 0
    assert (copy / "report.html").read_bytes() == (again / "report.html").read_bytes()
    assert "data:image/png;base64," in (copy / "report.html").read_text()


def test_analyze_without_report(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["analyze", str(study), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    assert (out / "chimerism.csv").is_file()
    assert not (out / "report.html").exists() and "report:" not in capsys.readouterr().err


def test_analyze_without_report_says_an_earlier_report_is_stale(analysed, study, tmp_path, capsys):
    """A rerun with ``--no-report`` into a folder with a report says that page is out of date."""
    code, err, out = analysed
    assert code == 0, err
    copy = shutil.copytree(out, tmp_path / "copy")
    capsys.readouterr()
    args = ["analyze", str(study), "--out", str(copy), "--workers", "1", "--no-report"]
    assert run(args) == 0
    said = capsys.readouterr().err
    assert "report.html" in said and "earlier run" in said and f"cytokit report {copy}" in said


def test_analyze_reports_a_bad_study_in_one_error(study, tmp_path, capsys):
    bad = shutil.copytree(study, tmp_path / "bad")
    toml = (bad / "study.toml").read_text()
    (bad / "study.toml").write_text(toml.replace('marker = "HLA-A2"', 'marker = "HLA-X"'))
    lines = (bad / "manifest.csv").read_text().splitlines()
    assert "P01_day014.fcs" in lines[3]
    lines.append(lines[3])  # listed twice
    lines[2] = lines[2].replace(",7,", ",7.5,", 1)
    (bad / "manifest.csv").write_text("\n".join(lines) + "\n")
    code = run(["analyze", str(bad), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "3 problem(s)" in err
    assert "P01_day014.fcs" in err and "'HLA-X'" in err and "'7.5'" in err
    assert not (tmp_path / "out").exists()


def test_a_day_without_cells_per_ul_blanks_that_series_peak_and_auc(study, tmp_path):
    """A file whose manifest line gives no counting reference has counts but no cells/µL:
    samples.csv says why, and the cells/µL series' peak and AUC are not given (the AUC ran
    straight from day 0 to day 14), while its % donor series keeps them."""
    bare = shutil.copytree(study, tmp_path / "bare")
    manifest = pd.read_csv(bare / "manifest.csv", dtype=str, keep_default_na=False)
    day7 = manifest["file"] == "fcs/P01_day007.fcs"
    for column in ("wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul"):
        manifest.loc[day7, column] = ""
    manifest.to_csv(bare / "manifest.csv", index=False)
    out = cytokit.analyze(bare, tmp_path / "out", workers=1)
    full = cytokit.analyze(study, tmp_path / "full", workers=1)
    samples = out.samples.set_index("file")
    assert (
        "no cells/µL: no beads_per_test/sample_volume_ul"
        in samples.at["fcs/P01_day007.fcs", "warnings"]
    )
    assert pd.isna(samples.at["fcs/P01_day007.fcs", "count_method"])
    key = ["patient", "sample_type", "population", "measure"]
    got, ref = out.trends.set_index(key), full.trends.set_index(key)
    for (patient, *_, measure), row in got.iterrows():
        if patient == "P01" and measure == "donor_per_ul":
            assert pd.isna(row["peak_value"]) and pd.isna(row["auc"]), row.name
            assert pd.isna(row["failed_days"])  # a measured day, not a failed one
        else:
            assert row["auc"] == pytest.approx(ref.at[row.name, "auc"], nan_ok=True), row.name
    # the report says why those peaks are missing
    from cytokit.report.tables import failed_days_note

    note = failed_days_note(out.trends)
    assert "Cells/µL peak and AUC not given where a day after infusion had no counting" in note
    assert "P01 (" in note and "P02" not in note
    # the outcome analyses read such a day as a failed point of the cells/µL measure
    from cytokit.analysis.outcomes import persistence_points

    for measure, lost in (("donor_per_ul", 1), ("donor_pct", 0)):
        points = persistence_points(out.chimerism, "NK", measure)
        assert (points["status"] == "failed").sum() == lost


def test_analyze_lists_a_corrupt_file(study, tmp_path, capsys):
    broken = shutil.copytree(study, tmp_path / "broken")
    (broken / "fcs" / "P02_day007.fcs").write_bytes(b"FCS3.1" + bytes(64))
    code = run(["analyze", str(broken), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert "5 of 6 file(s) analysed, 1 failed" in err
    assert "FAILED: 1 file(s)" in err and "P02_day007.fcs" in err
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert list(failures.file) == ["fcs/P02_day007.fcs"]
    # the day not measured may have held the peak: P02's peak and AUC are not given (the
    # AUC ran straight across day 7), and the trend says which day failed
    trends = pd.read_csv(tmp_path / "out" / "trends.csv", dtype={"failed_days": str})
    # the API and load_results give the same empty cells: NaN, not '' in one of them
    from cytokit import load_results

    api = cytokit.analyze(broken, tmp_path / "out", workers=1).trends
    for got in (api, load_results(tmp_path / "out").trends):
        assert got["failed_days"].notna().sum() == trends["failed_days"].notna().sum()
    p02, p01 = trends[trends.patient == "P02"], trends[trends.patient == "P01"]
    assert len(p02) and (p02.failed_days == "7").all()
    assert p02[["peak_value", "peak_day", "auc"]].isna().all().all()
    assert p01.failed_days.isna().all() and p01.peak_value.notna().any()
    text = report_text(tmp_path / "out" / "report.html")
    assert (
        "Peak and AUC not given where a sample failed (see Failures) and might have held them: P02 (day 7)."
        in text
    )
    page = (tmp_path / "out" / "patients" / "P02.html").read_text()
    assert page.count("file failed (read): no chimerism") == 5  # its day, every population
    assert 'see <a href="../report.html#failures">Failures</a>)' in page  # a link, not text
    # the plots mark the failed day (a cross, the line broken) instead of joining 0 and 14
    for kind in ("persistence", "chimerism"):
        svg = (tmp_path / "out" / "plots" / f"P02_{kind}.svg").read_text()
        assert "failed (donor marker or file): no value" in svg, kind


def test_analyze_where_every_file_failed_exits_1(study, tmp_path, capsys):
    """Nothing measured is not a success a pipeline could take for one: exit 1 without
    --strict, with failures.csv and the report written."""
    broken = shutil.copytree(study, tmp_path / "broken")
    for f in (broken / "fcs").glob("*.fcs"):
        f.write_bytes(b"FCS3.1" + bytes(64))
    out = tmp_path / "out"
    code = run(["analyze", str(broken), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "0 of 6 file(s) analysed, 6 failed" in err
    assert err.rstrip().endswith(f"no file could be analysed; see {out / 'failures.csv'}")
    assert len(pd.read_csv(out / "failures.csv")) == 6 and (out / "report.html").is_file()


def test_an_out_of_the_users_own_files_or_an_empty_name_is_refused(study, tmp_path, capsys):
    """--out naming a folder of the user's own files (a counts.csv of theirs) is refused
    before any gating, by analyze and gate alike; so is an empty name, which wrote every
    table into the current folder (an unset $OUT in a script)."""
    mine = tmp_path / "mywork"
    mine.mkdir()
    (mine / "counts.csv").write_text("my,own\n1,2\n")
    for args in (["analyze", str(study)], ["gate", "--study", str(study)]):
        code = run([*args, "--out", str(mine), "--workers", "1"])
        err = capsys.readouterr().err
        assert code == 1, err
        assert f"{mine / 'counts.csv'}: exists, and {mine} holds no cytokit results" in err
        assert (mine / "counts.csv").read_text() == "my,own\n1,2\n"
        assert sorted(p.name for p in mine.iterdir()) == ["counts.csv"]
        for empty in (["--out", ""], ["--out="], ["-o", " "], ["-o="]):
            code = run([*args, *empty, "--workers", "1"])
            err = capsys.readouterr().err
            assert code == 2 and "usage error: an empty value after " in err, err
    assert not any(Path.cwd().glob("counts.csv"))
    with pytest.raises(CytokitError, match="the output folder is an empty name"):
        cytokit.analyze(study, "")


def test_sigterm_stops_a_run_as_ctrl_c_does(study, tmp_path, capsys, monkeypatch):
    """`kill`, `timeout` or a scheduler's stop (SIGTERM) ended the process at once (exit
    143, no resume hint, leaked semaphores); it now stops the run as Ctrl-C does, with
    the files finished so far kept, and exit 143. The handler is put back afterwards."""
    import os
    import signal
    import time

    import cytokit.engine.runner as runner

    real = runner.run_batch
    calls = []

    def stopped(files, task, store, **kw):
        calls.append(1)
        if len(calls) == 2:  # the second batch: the first file is in the store
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        return real(files, task, store, **kw)

    monkeypatch.setattr(runner, "run_batch", stopped)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    code = run(["analyze", str(study), "--out", str(out), "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 143, err
    assert err.rstrip().endswith("cytokit: terminated (SIGTERM)")
    assert signal.getsignal(signal.SIGTERM) is before
    assert [r["exit_code"] for r in read_runlog(out)] == [143]  # the stopped run is logged
    monkeypatch.setattr(runner, "run_batch", real)
    assert run(["analyze", str(study), "--out", str(out), "--workers", "1"]) == 0
    assert "6 of 6 file(s) analysed" in capsys.readouterr().err


def test_a_sigterm_whose_exception_is_lost_still_stops_the_run(
    study, tmp_path, capsys, monkeypatch
):
    """Raised inside a callback of the kernel compiler, the handler's exception is
    ignored by Python ("Exception ignored in ..."), and the run went on to exit 0 with
    the report written. The next progress tick now stops it (exit 143, resumable)."""
    import os
    import signal

    import cytokit.engine.runner as runner

    real = runner.run_batch
    calls = []

    def lost(files, task, store, **kw):
        calls.append(1)
        if len(calls) == 1:
            try:  # as a C callback does: the exception goes nowhere
                os.kill(os.getpid(), signal.SIGTERM)
            except KeyboardInterrupt:
                pass
        return real(files, task, store, **kw)

    monkeypatch.setattr(runner, "run_batch", lost)
    out = tmp_path / "out"
    code = run(["analyze", str(study), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 143, err
    assert err.rstrip().endswith("cytokit: terminated (SIGTERM)")
    assert not (out / "report.html").exists()  # stopped, not run to its end
    assert [r["exit_code"] for r in read_runlog(out)] == [143]  # as the process exits
    monkeypatch.setattr(runner, "run_batch", real)
    assert run(["analyze", str(study), "--out", str(out), "--workers", "1"]) == 0


def test_a_second_run_into_a_folder_being_written_is_refused(study, tmp_path, capsys):
    """analyze and gate into one folder at the same time left analyze's study.json beside
    gate's counts.csv (and two analyze runs gated every file twice): the folder is held
    by the run writing into it, and a second is refused at once, naming it."""
    import threading

    from cytokit._outdir import writing_into

    out = tmp_path / "out"
    out.mkdir()
    held, done = threading.Event(), threading.Event()

    def other_run():  # another thread holds it, as another process's run would
        with writing_into(out):
            held.set()
            done.wait(60)

    holder = threading.Thread(target=other_run)
    holder.start()
    try:
        assert held.wait(60)
        for args in (["analyze", str(study)], ["gate", "--study", str(study)], ["report"]):
            code = run([*args, "--out", str(out), "--workers", "1"] if args != ["report"]
                       else ["report", str(out)])  # fmt: skip
            err = capsys.readouterr().err
            assert code == 1, err
            assert f"{out}: another cytokit run is writing into this folder" in err
    finally:
        done.set()
        holder.join()
    assert sorted(p.name for p in out.iterdir()) == ["results.sqlite"]
    assert run(["analyze", str(study), "--out", str(out), "--workers", "1"]) == 0


def test_a_workspace_of_per_sample_gates_as_a_studys_strategy_says_the_fix(
    analysed, study, tmp_path, capsys
):
    """A workspace `export-wsp` wrote holds each sample's fitted gates: as a study's
    strategy it was refused with "pass sample= or group=", which study.toml cannot say;
    analyze and gate --study now say what to do instead."""
    _, _, out = analysed
    copy = shutil.copytree(study, tmp_path / "s")
    assert run(["export-wsp", str(out), str(copy / "strategy.wsp")]) == 0
    toml = copy / "study.toml"
    toml.write_text(re.sub(r"(?m)^strategy = .*$", 'strategy = "strategy.wsp"', toml.read_text()))
    capsys.readouterr()
    fix = (
        "strategy.wsp: its gates are each sample's own, and a study gates every file with one "
        "strategy: in FlowJo put the gates on a group (such as 'All Samples') and save the "
        "workspace again"
    )
    for args in (["analyze", str(copy)], ["gate", "--study", str(copy)]):
        code = run([*args, "--out", str(tmp_path / "out"), "--workers", "1"])
        err = capsys.readouterr().err
        assert code == 1 and fix in err and "pass sample= or group=" not in err, err


def test_an_export_into_the_results_folder_is_logged(analysed, tmp_path, capsys):
    """export-wsp (and export-anndata) may write into the results folder; its file was one
    no logged run wrote, so `cytokit verify` failed ("output added"). An export written
    there is logged; one written elsewhere adds no line."""
    _, _, out = analysed
    res = shutil.copytree(out, tmp_path / "res")
    before = len(read_runlog(res))
    assert run(["export-wsp", str(res), str(tmp_path / "elsewhere.wsp")]) == 0
    assert len(read_runlog(res)) == before
    assert run(["export-wsp", str(res), str(res / "review.wsp")]) == 0
    last = read_runlog(res)[-1]
    assert last["command"] == "export-wsp" and "review.wsp" in {o["path"] for o in last["outputs"]}
    capsys.readouterr()
    assert run(["verify", str(res)]) == 0, capsys.readouterr()


def test_an_export_says_it_gates_again_only_when_it_does(analysed, tmp_path, capsys):
    """An export refused before it reads a file (here: its output would replace a table)
    printed "gating the files ... again" first; it now says so, with each file as it goes,
    only once the folder and the study have been checked."""
    _, _, out = analysed
    capsys.readouterr()
    assert run(["export-wsp", str(out), str(out / "counts.csv")]) == 1
    err = capsys.readouterr().err
    assert "again" not in err and "counts.csv" in err, err
    assert run(["export-wsp", str(out), str(tmp_path / "w.wsp")]) == 0
    err = capsys.readouterr().err
    n = len(pd.read_csv(out / "samples.csv"))
    assert err.index("gating the files of") < err.index(f"[1/{n}] ") < err.index(f"[{n}/{n}] ")


def test_usage_errors(capsys):
    assert run(["analyze"]) == 2
    assert run(["analyze", "nowhere", "--out", "x"]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.skipif(
    not (SAMPLE_DATA / "strategy.yaml").is_file(), reason="sample_data/strategy.yaml not there yet"
)
def test_demo_runs_on_sample_data(tmp_path, capsys):
    out = tmp_path / "demo"
    code = run(["demo", "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "15 of 15 file(s) analysed, 0 failed" in err
    chim = pd.read_csv(out / "chimerism.csv", dtype={"patient": str})
    assert (chim.status == "quantified").any()
    html = report_text(out / "report.html")
    assert assert_chimerism_matches(html, chim) == 15 * 5
    # the demo shows a half-life (README, Start here): P01's NK cells/µL, near the
    # simulator's truth and inside its 95 % interval, with its fitted line and band stored
    trends = pd.read_csv(out / "trends.csv", dtype={"patient": str})
    truth = pd.read_csv(SAMPLE_DATA / "truth" / "kinetics.csv", dtype={"patient": str})
    nk = trends[(trends.patient == "P01") & (trends.population == "NK")
                & (trends.measure == "donor_per_ul")].iloc[0]  # fmt: skip
    true = truth[(truth.patient == "P01") & (truth.population == "NK")].half_life_days.iloc[0]
    assert nk.half_life_ci_low < true < nk.half_life_ci_high
    assert nk.half_life_days == pytest.approx(true, rel=0.1)
    assert nk.half_life_n >= 4 and nk.half_life_phases and nk.half_life_cov
    page = (out / "patients" / "P01.html").read_text(encoding="utf-8")
    assert re.search(r"\d d \(95 % CI [\d.]+–[\d.]+\), n = \d", page)
    # the run is logged as the demo, with the sample study's files as inputs
    (record,) = read_runlog(out)
    assert record["command"] == "demo" and record["argv"][1] == "demo"
    fcs = {i["path"] for i in record["inputs"] if i["role"] == "fcs"}
    assert fcs == {str(p) for p in (SAMPLE_DATA / "fcs").glob("*.fcs")}
    assert "report.html" in {o["path"] for o in record["outputs"]}
    assert run(["verify", str(out)]) == 0


def test_analyze_says_when_a_donor_marker_is_unusable(study, tmp_path, capsys):
    from cytokit.fcs import read_fcs, write_fcs

    broken = shutil.copytree(study, tmp_path / "broken")
    path = broken / "fcs" / "P01_day007.fcs"
    sample = read_fcs(path, scale=False)
    sample.events = sample.events.copy()
    sample.events[:, sample.channel_index("FITC-A")] = 0.0  # a dead HLA-A2 detector
    write_fcs(path, sample)
    code = run(["analyze", str(broken), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert "DONOR MARKER UNUSABLE in 1 file(s)" in err and "fcs/P01_day007.fcs" in err
    assert "constant" in err


def test_a_file_size_reads_in_kb_below_a_tenth_of_a_megabyte(tmp_path):
    from cytokit.cli._text import file_size

    f = tmp_path / "page.html"
    for size, text in (
        (0, "0 kB"),
        (300, "1 kB"),
        (38_400, "38 kB"),
        (99_999, "100 kB"),
        (100_000, "0.1 MB"),
    ):
        f.write_bytes(b"x" * size)
        assert file_size(f) == text, size
    with f.open("wb") as fh:
        fh.truncate(2_449_000)
    assert file_size(f) == "2.4 MB"
