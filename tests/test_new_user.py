"""A new user's walk through the doors the README opens, each kept as a regression test.

Each test names what a user did and what went wrong before it was fixed: a
relative study path, a bad option value, a folder from another command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from study_helpers import make_study
from test_cli_hostile import check_output

from cytokit.cli.app import run
from cytokit.simulate import preset_design


@pytest.fixture(scope="module")
def relative_run(tmp_path_factory) -> Path:
    """A small study analysed as the README's tour does it: relative paths from its folder."""
    base = tmp_path_factory.mktemp("new_user")
    design = preset_design("sample", seed=5, n_patients=2, n_events=2000, days=(-7, 7))
    make_study(base / "my_study", design)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        argv = ["analyze", "my_study", "--out", "results/", "--workers", "1", "--no-report"]
        assert run(argv) == 0
    finally:
        os.chdir(cwd)
    return base


def test_study_json_names_the_study_folder_from_anywhere(relative_run):
    # `cytokit analyze my_study --out results/` recorded root "my_study": relative to
    # the folder analyze ran in, so read from anywhere else it named no study
    root = json.loads((relative_run / "results" / "study.json").read_text())["root"]
    assert Path(root).is_absolute(), root
    assert (Path(root) / "study.toml").is_file()


def test_export_wsp_of_a_relative_analysis_from_another_folder(relative_run, tmp_path, capsys):
    # the user exports from their home folder, not from where analyze ran
    out = tmp_path / "flowjo" / "study.wsp"
    code = run(["export-wsp", str(relative_run / "results"), str(out)])
    check_output(code, capsys.readouterr().err, allowed=(0,))
    assert out.is_file()


def test_report_sees_a_changed_schedule_from_another_folder(relative_run, tmp_path, capsys):
    # the stale-clinical-input check looked for the study relative to the current folder,
    # so from elsewhere it checked nothing (or another folder of the same name)
    study = relative_run / "my_study"
    (study / "treatments.csv").write_text("patient,day,product,kind\nP01,0,NK,cells\n")
    try:
        argv = ["report", str(relative_run / "results"), "--out", str(tmp_path), "--no-qc"]
        code = run(argv)
        line = check_output(code, capsys.readouterr().err, allowed=(1,))
        assert "treatments.csv: was added since" in line
    finally:
        (study / "treatments.csv").unlink()


def test_export_wsp_group_by_is_a_usage_error(relative_run, tmp_path, capsys):
    # a bad option value is a usage error (exit 2), before any file is gated again
    code = run(
        ["export-wsp", str(relative_run / "results"), str(tmp_path / "x.wsp"), "--group-by", "day"]
    )
    err = capsys.readouterr().err
    line = check_output(code, err, allowed=(2,))
    assert "'day': use one of patient, tube, none" in line
    assert "gating the files" not in err
    assert not (tmp_path / "x.wsp").exists()


def test_analyze_retries_failures_as_the_batches_paragraph_says(
    relative_run, tmp_path, monkeypatch
):
    # the README's Batches paragraph (gate and analyze) names --retry-failures; analyze had
    # no such option, so a file that failed once stayed failed until results.sqlite was deleted
    from cytokit.analysis.per_sample import MeasureTask
    from cytokit.errors import CytokitError

    study, out = relative_run / "my_study", tmp_path / "results"
    argv = ["analyze", str(study), "--out", str(out), "--scheduler", "serial", "--no-report"]
    real = MeasureTask.__call__

    def flaky(self, path):
        if Path(path).name == "P01_day007.fcs":
            raise CytokitError(f"{path}: unreadable (the share was offline)")
        return real(self, path)

    with monkeypatch.context() as m:
        m.setattr(MeasureTask, "__call__", flaky)
        assert run(argv) == 0
    assert "P01_day007.fcs" in (out / "failures.csv").read_text()
    assert run(argv) == 0  # a rerun reports the stored failure again
    assert "P01_day007.fcs" in (out / "failures.csv").read_text()
    assert run([*argv, "--retry-failures"]) == 0
    assert "P01_day007.fcs" not in (out / "failures.csv").read_text()
    counts = (out / "counts.csv").read_text()
    assert "P01_day007.fcs" in counts


def test_analyze_into_the_study_folder_is_refused(relative_run, tmp_path, capsys):
    # `cytokit analyze trial --out trial` replaced the study's infusions.csv with the
    # results' table and added treatments.csv beside it, so the next analyze refused the study
    import shutil

    study = Path(shutil.copytree(relative_run / "my_study", tmp_path / "trial"))
    schedule = (study / "infusions.csv").read_bytes()
    before = sorted(p.name for p in study.iterdir())
    code = run(["analyze", str(study), "--out", str(study), "--workers", "1", "--no-report"])
    line = check_output(code, capsys.readouterr().err, allowed=(1,))
    assert "is the study folder itself" in line and "--out" in line
    assert (study / "infusions.csv").read_bytes() == schedule
    assert sorted(p.name for p in study.iterdir()) == before


@pytest.mark.parametrize("command", ["export-wsp", "export-anndata"])
def test_exports_never_write_over_a_results_table(command, relative_run, capsys):
    # `cytokit export-wsp results results/counts.csv` (likewise export-anndata) replaced
    # counts.csv with the export, after which report and load_results refused the folder
    if command == "export-anndata":
        pytest.importorskip("anndata", reason="export-anndata needs the anndata extra")
    results = relative_run / "results"
    counts = (results / "counts.csv").read_bytes()
    code = run([command, str(results), str(results / "counts.csv")])
    line = check_output(code, capsys.readouterr().err, allowed=(1,))
    assert "counts.csv: is a file of the results folder" in line
    assert (results / "counts.csv").read_bytes() == counts


def test_verify_rerun_of_a_report_run_is_identical(relative_run, tmp_path, capsys):
    # `cytokit report results/` then `cytokit verify results --rerun NEW`: the run again
    # reads the same tables (logged relative to results/ by one run, absolute by the
    # other) and writes the same report.html (no study.json beside it to take the
    # time from): both were reported as differences, exit 1
    import shutil

    results = Path(shutil.copytree(relative_run / "results", tmp_path / "results"))
    assert run(["report", str(results), "--no-qc"]) == 0
    capsys.readouterr()
    code = run(["verify", str(results), "--rerun", str(tmp_path / "again")])
    out = capsys.readouterr().out
    assert "input changed" not in out and "differs" not in out.replace(" differ\n", ""), out
    assert code == 0, out
    assert "are identical (timestamps aside)" in out


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--hazard-ratio", "0.3"], "--hazard-ratio"),  # without --outcomes: a plain study
        (["--outcomes", "--arm", "CIK"], "--arm"),  # the tied trial is NK-arm only
        (["--outcomes", "--preset", "benchmark"], "--preset"),
        (["--outcomes", "--no-drift"], "--no-drift"),
    ],
)
def test_simulate_refuses_options_its_mode_would_drop(argv, option, tmp_path, capsys):
    # these ran and wrote a study that silently lacked what the option asked for
    code = run(["simulate", str(tmp_path / "sim"), "--patients", "1", *argv])
    line = check_output(code, capsys.readouterr().err, allowed=(2,))
    assert option in line
    assert not (tmp_path / "sim").exists()


def test_analyze_again_removes_clinical_tables_it_no_longer_has(relative_run, tmp_path):
    # a study analysed with outcomes.csv, then without (or another study into the same
    # folder): survival.csv and the other outcome tables of the first run stayed beside
    # the new tables, and verify called the folder unchanged
    import shutil

    from cytokit.analysis.results import CLINICAL_TABLES

    out = Path(shutil.copytree(relative_run / "results", tmp_path / "results"))
    stale = [n for n in ("survival", "landmark", "response") if n in CLINICAL_TABLES]
    assert stale
    for name in stale:
        (out / f"{name}.csv").write_text("time,survival\n0,1\n")
    argv = ["analyze", str(relative_run / "my_study"), "--out", str(out), "--no-report"]
    assert run([*argv, "--workers", "1"]) == 0
    assert not [n for n in stale if (out / f"{n}.csv").exists()]
    log = [json.loads(line) for line in (out / "runlog.jsonl").read_text().splitlines()]
    assert {f"{n}.csv" for n in stale} <= set(log[-1]["removed"])


def test_gate_into_an_analysis_folder_is_refused(relative_run, tmp_path, capsys):
    # `cytokit gate --study my_study --out results/` replaced analyze's counts.csv and
    # failures.csv with gate's (other columns): report then refused the whole folder
    import shutil

    out = Path(shutil.copytree(relative_run / "results", tmp_path / "results"))
    counts = (out / "counts.csv").read_bytes()
    code = run(["gate", "--study", str(relative_run / "my_study"), "--out", str(out)])
    line = check_output(code, capsys.readouterr().err, allowed=(1,))
    assert "holds the results of `cytokit analyze`" in line
    assert (out / "counts.csv").read_bytes() == counts
