"""``runlog.jsonl`` and ``cytokit verify``: every command door logs its run, verify sees what
changed since, a run re-executed from the log writes the same tables.

Hashes are checked against `hashlib` over the files' bytes, versions against the
imported packages, the settings against ``study.json``'s task key (the store's).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_helpers import make_study

from cytokit.cli.app import run
from cytokit.engine import runlog
from cytokit.engine.runlog import RUNLOG_NAME, RunlogError, append_record, read_runlog
from cytokit.engine.verify import rerun_argv, verify
from cytokit.simulate import preset_design


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cli(args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    design = preset_design("sample", seed=31, n_patients=2, n_events=4000, days=(-7, 7, 14))
    folder = make_study(tmp_path_factory.mktemp("prov") / "study", design)
    # the store trusts a cached hash only for a file last changed >= 2 s before it was hashed
    time.sleep(2.1)
    return folder


@pytest.fixture(scope="module")
def analysed(study, tmp_path_factory):
    """`cytokit analyze` into a fresh folder, counting which files the run log hashed."""
    out = tmp_path_factory.mktemp("analysed") / "out"
    hashed: list[str] = []
    real = runlog.file_hash

    def counting(path, buffer=None):
        hashed.append(str(path))
        return real(path, buffer)

    runlog.file_hash = counting
    try:
        code, _, err = cli(["analyze", study, "--out", out, "--workers", "1", "--no-report"])
    finally:
        runlog.file_hash = real
    assert code == 0, err
    return out, hashed


def test_analyze_logs_who_what_when_and_every_hash(analysed, study):
    out, hashed = analysed
    (record,) = read_runlog(out)
    assert record["command"] == "analyze" and record["exit_code"] == 0
    assert record["argv"] == ["cytokit", "analyze", str(study), "--out", str(out), "--workers",
                              "1", "--no-report"]  # fmt: skip
    assert Path(record["cwd"]).is_dir() and record["user"] and record["host"]
    assert record["started"].endswith("Z") and record["started"] <= record["finished"]
    assert record["versions"]["numpy"] == np.__version__
    assert record["versions"]["pandas"] == pd.__version__
    manifest = pd.read_csv(study / "manifest.csv")
    fcs = {str(study / f) for f in manifest["file"]}
    inputs = {i["path"]: i for i in record["inputs"]}
    assert {p for p, i in inputs.items() if i["role"] == "fcs"} == fcs
    for name, role in (("study.toml", "study"), ("manifest.csv", "manifest"),
                       ("strategy.xml", "strategy")):  # fmt: skip
        assert inputs[str(study / name)]["role"] == role
    for path, item in inputs.items():
        assert item["sha256"] == sha256(path) and item["size"] == Path(path).stat().st_size
    outputs = {o["path"]: o for o in record["outputs"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(outputs) == on_disk - {RUNLOG_NAME}
    assert {"counts.csv", "chimerism.csv", "study.json", "tables.json", "results.sqlite"} <= set(
        outputs
    )
    for rel, item in outputs.items():
        assert item["sha256"] == sha256(out / rel) and item["size"] == (out / rel).stat().st_size
    # the resolved settings: the task the store keyed the results by, as study.json says
    about = json.loads((out / "study.json").read_text())
    assert record["settings"]["task"] == about["task"]
    assert record["settings"]["strategy_digest"] == about["strategy"]["digest"]
    assert len(record["settings"]["sha256"]) == 64
    # the FCS files the store hashed were not read again for the log
    assert not [p for p in hashed if p.endswith(".fcs")]
    assert sorted(hashed) == sorted({str(out / o) for o in outputs} | (set(inputs) - fcs))


def test_verify_untouched_run_says_unchanged(analysed):
    out, _ = analysed
    code, text, _ = cli(["verify", out])
    assert code == 0, text
    assert "unchanged since run 1" in text
    code, text, _ = cli(["verify", out, "--json"])
    report = json.loads(text)
    assert code == 0 and report["changed"] is False and report["findings"] == []


@contextlib.contextmanager
def changed(path: Path, data: bytes):
    """`path` holding `data` for the body, then its own bytes again."""
    old = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(old)


def test_verify_sees_a_changed_fcs_file(analysed, study):
    out, _ = analysed
    path = sorted((study / "fcs").glob("*.fcs"))[1]
    data = bytearray(path.read_bytes())
    was = hashlib.sha256(data).hexdigest()
    data[-100] ^= 0x01  # one bit of one event, same size
    with changed(path, bytes(data)):
        code, text, _ = cli(["verify", out])
        assert code == 1, text
        assert f"input (fcs) changed: {path}" in text and "1 change(s) since run 1" in text
        report = verify(out).as_dict()
        (finding,) = report["findings"]
        assert finding["kind"] == "input_changed" and finding["role"] == "fcs"
        assert (finding["was"], finding["now"]) == (was, hashlib.sha256(data).hexdigest())
    assert cli(["verify", out])[0] == 0


def test_verify_says_an_input_it_cannot_read_is_unreadable_not_missing(
    analysed, study, monkeypatch
):
    """An FCS input made unreadable (chmod 000) was reported "input (fcs) missing"."""
    import cytokit.engine.verify as V

    out, _ = analysed
    path = sorted((study / "fcs").glob("*.fcs"))[1]
    real = V.file_hash

    def refuse(p, *args):
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real(p, *args)

    monkeypatch.setattr(V, "file_hash", refuse)
    code, text, _ = cli(["verify", out])
    assert code == 1 and f"input (fcs) unreadable: {path} (Permission denied)" in text, text
    (finding,) = verify(out).as_dict()["findings"]
    assert finding["kind"] == "input_unreadable" and finding["why"] == "Permission denied"


def test_verify_says_an_input_now_a_folder_is_unreadable_not_missing(analysed, study, tmp_path):
    """An FCS input replaced by a folder of its name was reported "input (fcs) missing",
    though something is there: it is unreadable, a folder, not a file."""
    out, _ = analysed
    path = sorted((study / "fcs").glob("*.fcs"))[1]
    aside = tmp_path / path.name
    shutil.move(path, aside)
    try:
        path.mkdir()
        code, text, _ = cli(["verify", out])
        (finding,) = verify(out).as_dict()["findings"]
    finally:
        path.rmdir()
        shutil.move(aside, path)
    assert code == 1 and f"input (fcs) unreadable: {path} (a folder, not a file)" in text, text
    assert finding["kind"] == "input_unreadable" and finding["why"] == "a folder, not a file"
    assert cli(["verify", out])[0] == 0


def test_an_export_into_the_results_logs_the_study_it_gated(analysed, study, tmp_path):
    """export-wsp gates every file again: its log line lists the FCS files, strategy and
    settings (it listed tables.json alone, so `verify --run` could not see them change)."""
    out = Path(shutil.copytree(analysed[0], tmp_path / "out"))
    code, _, err = cli(["export-wsp", out, out / "flowjo.wsp"])
    assert code == 0, err
    line = read_runlog(out)[-1]
    assert line["command"] == "export-wsp"
    roles = {i["role"] for i in line["inputs"]}
    assert {"results", "fcs", "strategy"} <= roles, roles
    path = sorted((study / "fcs").glob("*.fcs"))[1]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    with changed(path, bytes(data)):
        code, text, _ = cli(["verify", out, "--run", str(len(read_runlog(out)))])
        assert code == 1 and f"input (fcs) changed: {path}" in text, text


def test_verify_sees_a_changed_strategy_and_settings(analysed, study):
    out, _ = analysed
    strategy, toml = study / "strategy.xml", study / "study.toml"
    with changed(strategy, strategy.read_bytes().replace(b"28000", b"29000")):
        code, text, _ = cli(["verify", out])
        assert code == 1 and f"strategy changed: {strategy}" in text
    with changed(toml, toml.read_bytes() + b"\n# edited\n"):
        code, text, _ = cli(["verify", out])
        assert code == 1 and f"settings changed: {toml}" in text
    with changed(study / "manifest.csv", b""):
        assert "input (manifest) changed" in cli(["verify", out])[1]
    moved = study / "fcs" / "moved"
    first = sorted((study / "fcs").glob("*.fcs"))[0]
    first.rename(moved)
    try:
        code, text, _ = cli(["verify", out])
        assert code == 1 and f"input (fcs) missing: {first}" in text
    finally:
        moved.rename(first)


def test_verify_sees_edited_missing_and_added_outputs(analysed, tmp_path):
    out, _ = analysed
    copy = shutil.copytree(out, tmp_path / "copy")  # outputs are logged relative to the folder
    assert cli(["verify", copy])[0] == 0
    counts = copy / "counts.csv"
    counts.write_text(counts.read_text().replace("P01", "P09", 1))
    (copy / "chimerism.csv").unlink()
    (copy / "notes.txt").write_text("mine")
    code, text, _ = cli(["verify", copy])
    assert code == 1, text
    assert "output edited: counts.csv" in text
    assert "output missing: chimerism.csv" in text
    assert "output added: notes.txt (no logged run wrote it)" in text
    kinds = {
        f["path"]: f["kind"] for f in json.loads(cli(["verify", copy, "--json"])[1])["findings"]
    }
    assert kinds == {
        "counts.csv": "output_edited",
        "chimerism.csv": "output_missing",
        "notes.txt": "output_added",
    }


def test_verify_after_a_report_also_checks_the_run_that_made_the_tables(analysed, study, tmp_path):
    """After `cytokit report` the last run read only the tables, so an FCS file changed
    since the analysis went unsaid ("unchanged since run 2"); the analysis is checked too."""
    out, _ = analysed
    copy = shutil.copytree(out, tmp_path / "copy")
    # an export between them reads the FCS files too, but did not make the tables
    assert cli(["export-wsp", copy, str(copy / "w.wsp")])[0] == 0
    assert cli(["report", copy])[0] == 0  # with its QC plots, then without them (removed)
    assert cli(["report", copy, "--no-qc"])[0] == 0
    assert (copy / "plots").is_dir() and not list((copy / "plots").glob("qc/*.png"))
    code, text, _ = cli(["verify", copy])
    assert code == 0, text  # what the report removed is not the analysis' "missing" output
    path = sorted((study / "fcs").glob("*.fcs"))[1]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    with changed(path, bytes(data)):
        code, text, _ = cli(["verify", copy])
        assert code == 1 and f"input (fcs) changed: {path}" in text, text
        assert "run 1:" in text and "run 4:" in text
        assert [r["run"] for r in verify(copy).as_dict()["runs"]] == [1, 4]


def test_report_door_logs_and_later_runs_rewrite_without_a_change(analysed, tmp_path):
    out, _ = analysed
    copy = shutil.copytree(out, tmp_path / "copy")
    code, _, err = cli(["report", copy, "--no-qc"])
    assert code == 0, err
    first, second = read_runlog(copy)
    assert second["command"] == "report" and second["argv"][1:] == ["report", str(copy), "--no-qc"]
    assert {i["role"] for i in second["inputs"]} == {"results"}
    assert {i["path"] for i in second["inputs"]} >= {"counts.csv", "study.json", "tables.json"}
    wrote = {o["path"] for o in second["outputs"]}
    assert "report.html" in wrote and any(p.startswith("plots/") for p in wrote)
    assert not wrote & {o["path"] for o in first["outputs"]}
    assert second["settings"]["task"] is None
    assert cli(["verify", copy])[0] == 0
    code, text, _ = cli(["verify", copy, "--all"])
    assert code == 0 and "unchanged since run 1" in text and "unchanged since run 2" in text
    # analyze again: it rewrites run 1's files; the tables with the same bytes, study.json
    # (its time) and tables.json with others: rewritten by run 3, no change. study.json
    # keeps its time to the second: the next second starts first, so that it differs
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    again = cli(["analyze", first["argv"][2], "--out", copy, "--workers", "1", "--no-report"])
    assert again[0] == 0, again[2]
    code, text, _ = cli(["verify", copy, "--run", "1"])
    assert code == 0 and "rewritten by run 3: study.json" in text and "counts.csv" not in text
    assert cli(["verify", copy, "--run", "-1"])[0] == 0


def test_gate_doors_log_their_inputs(study, tmp_path):
    files = sorted((study / "fcs").glob("*.fcs"))[:3]
    out = tmp_path / "gated"
    code, _, err = cli(["gate", study / "strategy.xml", *files, "--out", out, "-j", "1"])
    assert code == 0, err
    (record,) = read_runlog(out)
    assert record["command"] == "gate"
    roles = {i["path"]: i["role"] for i in record["inputs"]}
    assert roles == {str(study / "strategy.xml"): "strategy", **{str(f): "fcs" for f in files}}
    assert {"counts.csv", "statistics.csv", "results.sqlite"} <= {
        o["path"] for o in record["outputs"]
    }
    assert record["settings"]["task"] and record["settings"]["strategy_digest"]
    with_study = tmp_path / "gated-study"
    code, _, err = cli(["gate", "--study", study, "--out", with_study, "-j", "1"])
    assert code == 0, err
    (record,) = read_runlog(with_study)
    roles = {Path(i["path"]).name: i["role"] for i in record["inputs"]}
    assert roles["study.toml"] == "study" and roles["strategy.xml"] == "strategy"
    assert sum(r == "fcs" for r in roles.values()) == 6
    assert cli(["verify", with_study])[0] == 0


def _refuse_appending(monkeypatch) -> None:
    """Opening a run log to append is refused, as without write permission (which root
    would not feel)."""
    import errno
    import os

    real = os.open

    def refusing(path, flags, *args, **kwargs):
        if Path(path).name == RUNLOG_NAME and flags & os.O_APPEND:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)


def test_a_run_log_that_cannot_be_appended_to_stops_the_run_before_it_starts(
    analysed, study, tmp_path, monkeypatch
):
    """A runlog.jsonl without write permission failed analyze after every table and the
    report were written, leaving a run no line logs (`verify`: outputs edited). It is
    said before anything is read or written, naming the file and the fix."""
    out, _ = analysed
    copy = shutil.copytree(out, tmp_path / "copy")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.iterdir() if p.is_file()}
    _refuse_appending(monkeypatch)
    said = (
        f"cytokit: error: {copy / RUNLOG_NAME}: the run log cannot be appended to (Permission "
        "denied); every run adds its line there after writing its results, so nothing was "
        f"started: make it a writable file (e.g. chmod u+w {copy / RUNLOG_NAME}), or give "
        "another output folder\n"
    )
    for args in (
        ["analyze", study, "--out", copy, "--workers", "1"],
        ["gate", "--study", study, "--out", copy, "-j", "1"],
        ["report", copy],
    ):
        code, _, err = cli(args)
        assert code == 1 and err.endswith(said) and err.count("\n") <= 2, err
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.iterdir() if p.is_file()}
    assert after == before
    monkeypatch.undo()
    code, text, _ = cli(["verify", copy])
    assert code == 0 and "unchanged since run 1" in text, text


def test_a_run_log_in_place_of_a_file_is_refused_without_waiting(tmp_path):
    import os

    from cytokit.engine.runlog import check_appendable
    from cytokit.errors import CytokitError

    check_appendable(tmp_path / "none")  # no folder yet, and no run log: the run makes them
    check_appendable(tmp_path)
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root writes a read-only file
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro" / RUNLOG_NAME).write_text("")
        (tmp_path / "ro" / RUNLOG_NAME).chmod(0o444)
        with pytest.raises(CytokitError, match=r"appended to \(Permission denied\)"):
            check_appendable(tmp_path / "ro")
    # a folder or a FIFO in the way: no permission to change, it is to be moved away
    (tmp_path / RUNLOG_NAME).mkdir()
    with pytest.raises(CytokitError, match=r"is a folder, not the run log file") as err:
        check_appendable(tmp_path)
    assert "move or remove it" in str(err.value) and "chmod" not in str(err.value)
    if hasattr(os, "mkfifo"):  # opened without blocking: no reader is waited for
        (tmp_path / "fifo").mkdir()
        os.mkfifo(tmp_path / "fifo" / RUNLOG_NAME)
        with pytest.raises(CytokitError, match=r"is a FIFO \(named pipe\), not the run log"):
            check_appendable(tmp_path / "fifo")


def test_a_folder_in_place_of_the_run_log_is_said_before_any_work(analysed, tmp_path):
    """A folder runlog.jsonl: `report` said "rebuilding plots..." before refusing, with
    the fix "chmod u+w" (no permission is at fault), and `verify` said "no runlog.jsonl
    in it". Both now name the folder in the way, before anything is done."""
    out, _ = analysed
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / RUNLOG_NAME).unlink()
    (copy / RUNLOG_NAME).mkdir()
    code, _, err = cli(["report", copy, "--no-qc"])
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"cytokit: error: {copy / RUNLOG_NAME}: is a folder, not the run log")
    assert "move or remove it" in err and "chmod" not in err
    code, _, err = cli(["verify", copy])
    assert code == 2 and f"{copy / RUNLOG_NAME}: the run log is a folder, not a file" in err, err
    assert "no runlog.jsonl" not in err


def test_a_failed_command_adds_no_line(tmp_path):
    out = tmp_path / "out"
    assert cli(["analyze", tmp_path / "nowhere", "--out", out])[0] == 1
    assert not (out / RUNLOG_NAME).exists()


def test_a_batch_that_fails_after_writing_its_tables_is_logged(study, tmp_path):
    """A gate batch whose every file fails exits 1 but has written its tables: with no
    line for it, `verify` called cytokit's own writes edits of the run before."""
    files = sorted((study / "fcs").glob("*.fcs"))[:2]
    out = tmp_path / "gated"
    assert cli(["gate", study / "strategy.xml", *files, "--out", out, "-j", "1"])[0] == 0
    broken = [tmp_path / f.name for f in files]  # files that fail to read
    for f in broken:
        f.write_bytes(b"FCS3.1 but not really")
    code, _, err = cli(["gate", study / "strategy.xml", *broken, "--out", out, "-j", "1"])
    assert code == 1 and "none of the 2 file(s) could be gated" in err
    _, second = read_runlog(out)
    assert second["exit_code"] == 1 and "failures.csv" in {o["path"] for o in second["outputs"]}
    code, text, _ = cli(["verify", out])
    assert code == 0 and "unchanged since run 2" in text, text


def test_a_run_stopped_before_its_inputs_adds_no_line_whatever_changed(tmp_path):
    """A run that fails its study check while another run writes into the same folder:
    the folder changed, but not by it, so it adds no line (it logged the other run's
    files as its own, with 0 inputs)."""
    from cytokit.cli._runlog import recorded
    from cytokit.errors import StudyError

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(StudyError), recorded(out, "analyze"):
        (out / "counts.csv").write_text("written by another run\n")
        raise StudyError("manifest row 2: no such file")
    assert not (out / RUNLOG_NAME).exists()


@pytest.mark.parametrize("wrote", [True, False])
def test_an_interrupted_run_logs_what_it_wrote(tmp_path, wrote):
    """Ctrl-C after a run drew some plots: the resumed run keeps them (same bytes) without
    writing them again, so they were files no logged run wrote (`verify`: output added).
    The interrupted run logs them, exit 130; one that wrote nothing adds no line."""
    from cytokit.cli._runlog import recorded

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "study.toml").write_text("")
    with pytest.raises(KeyboardInterrupt), recorded(out, "analyze") as log:
        assert log.exit_code == 0
        log.add_inputs("study", [tmp_path / "study.toml"])  # its inputs checked
        if wrote:
            (out / "plots").mkdir()
            (out / "plots" / "a.svg").write_text("<svg/>")
        raise KeyboardInterrupt
    if not wrote:
        assert not (out / RUNLOG_NAME).exists()
        return
    (record,) = read_runlog(out)
    assert record["exit_code"] == 130
    assert [o["path"] for o in record["outputs"]] == ["plots/a.svg"]
    with recorded(out, "analyze"):
        pass  # the resumed run: keeps the plot as it is
    code, text, _ = cli(["verify", out])
    assert code == 0 and "output added" not in text, text


def test_verify_usage_errors_exit_2(analysed, tmp_path):
    out, _ = analysed
    code, _, err = cli(["verify", tmp_path])
    assert code == 2 and "no runlog.jsonl" in err
    assert cli(["verify", out, "--run", "5"])[0] == 2
    assert cli(["verify", out, "--run", "1", "--all"])[0] == 2
    copy = shutil.copytree(out, tmp_path / "copy")
    with open(copy / RUNLOG_NAME, "ab") as fh:
        fh.write(b'{"runlog": 1, "command": "ana')  # a line cut short by a crash
    code, _, err = cli(["verify", copy])
    assert code == 2 and "line 2 is not a run record" in err


def test_rerun_from_the_log_writes_identical_tables(analysed, tmp_path):
    """The logged command run again (its argv, its working directory) into a new folder:
    every table byte for byte; study.json and tables.json equal but for the time."""
    out, _ = analysed
    again = tmp_path / "again"
    code, text, err = cli(["verify", out, "--rerun", again])
    assert code == 0, text + err
    assert "are identical (timestamps aside)" in text
    assert "results.sqlite: left out" in text
    tables = sorted(p.name for p in out.glob("*.csv"))
    assert len(tables) >= 8
    for name in tables:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    a, b = (json.loads((f / "study.json").read_text()) for f in (out, again))
    assert a.pop("created") != "" and b.pop("created") != "" and a == b
    (first,), (second,) = read_runlog(out), read_runlog(again)
    assert second["argv"][1:] == rerun_argv(first, again)
    assert second["settings"] == first["settings"]


def test_rerun_compares_with_what_the_folder_held_after_the_run(study, tmp_path):
    """A resumed run rewrites only what changed, and a report run writes no table: the
    rerun is compared with what the folder held after the run, not with what that run
    itself wrote. analyze, analyze again (resumed), report: each run's rerun is identical,
    and --json prints one JSON object (report's own stdout goes to stderr)."""
    out = tmp_path / "out"
    args = ["analyze", study, "--out", out, "--workers", "1"]
    assert cli(args)[0] == 0
    assert cli(args)[0] == 0  # resumed: rewrites report.html, study.json, tables.json
    assert cli(["report", out])[0] == 0  # unchanged: writes nothing
    runs = read_runlog(out)
    assert [r["command"] for r in runs] == ["analyze", "analyze", "report"]
    assert len(runs[2]["outputs"]) == 0 and len(runs[1]["outputs"]) < len(runs[0]["outputs"])
    for k, run_k in enumerate(("3", "2", "1"), start=1):
        again = tmp_path / f"again{k}"
        code, text, err = cli(["verify", out, "--run", run_k, "--rerun", again, "--json"])
        got = json.loads(text)
        assert code == 0 and got["identical"], (run_k, got, err)
        if run_k == "3":  # the tables are analyze's, not report's
            assert any("not an output of report" in n for n in got["notes"])
        if run_k == "1":  # where run 2 rewrote study.json (other bytes: its own time),
            # with the same settings and inputs, run 2's file is what is compared
            sha = [{o["path"]: o["sha256"] for o in r["outputs"]} for r in runs[:2]]
            now = sha256(out / "study.json")
            if (
                sha[1].get("study.json") not in (None, sha[0]["study.json"])
                and now == sha[1]["study.json"]
            ):
                assert any("compared with run 2's rewrite" in n for n in got["notes"]), got
    # a table edited after the run is a difference
    table = out / "chimerism.csv"
    table.write_text(table.read_text().replace("quantified", "quantifyed", 1))
    code, text, _ = cli(["verify", out, "--run", "1", "--rerun", tmp_path / "again4"])
    assert code == 1 and "differ" in text


def test_a_stopped_run_is_said_so(study, tmp_path):
    """A run logged with exit code 130 (interrupted) is said to have stopped, in the text
    and the JSON, though its outputs are unchanged since."""
    out = tmp_path / "out"
    assert cli(["analyze", study, "--out", out, "--workers", "1", "--no-report"])[0] == 0
    log = out / "runlog.jsonl"
    record = json.loads(log.read_text())
    log.write_text(json.dumps(record | {"exit_code": 130}) + "\n")
    code, text, _ = cli(["verify", out])
    assert code == 0 and "run 1 stopped before its end (exit code 130)" in text
    code, text, _ = cli(["verify", out, "--json"])
    assert json.loads(text)["runs"][0]["exit_code"] == 130


def test_rerun_argv_replaces_every_spelling_of_out():
    rec = {"argv": ["cytokit", "gate", "s.xml", "a.fcs", "-o", "x", "--out=y", "-oz"]}
    assert rerun_argv(rec, "N") == ["gate", "s.xml", "a.fcs", "-o", "N", "--out=N", "-oN"]
    assert rerun_argv({"argv": ["cytokit", "demo"]}, "N") == ["demo", "--out", "N"]


def _append_many(folder: str, worker: int, n: int) -> None:
    for i in range(n):
        # lines of 60-260 kB: far beyond the pipe buffer and a page, so a split write would show
        pad = "x" * (60_000 + 50_000 * ((worker + i) % 5))
        append_record(folder, {"runlog": 1, "worker": worker, "i": i, "pad": pad})


def test_concurrent_appends_keep_every_line_whole(tmp_path):
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = (tmp_path / RUNLOG_NAME).read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert sorted((r["worker"], r["i"]) for r in records) == [
        (w, i) for w in range(4) for i in range(15)
    ]


def test_a_torn_last_line_does_not_swallow_the_next(tmp_path):
    (tmp_path / RUNLOG_NAME).write_bytes(b'{"runlog": 1, "comm')
    append_record(tmp_path, {"runlog": 1, "command": "x"})
    first, second = (tmp_path / RUNLOG_NAME).read_bytes().split(b"\n")[:2]
    assert first == b'{"runlog": 1, "comm' and json.loads(second)["command"] == "x"
    with pytest.raises(RunlogError, match="line 1 is not a run record"):
        read_runlog(tmp_path)


def test_an_interrupt_while_the_line_is_written_is_dropped(tmp_path):
    """Ctrl-C in the last moments of a run, while its line was hashed: the folder kept its
    tables and lost the line (verify: "no runlog.jsonl"), or the line said 0 and the exit
    was 130. The run's work is done: the line is written whole and the signal dropped.
    (In a process of its own: the signal goes to its main thread.)"""
    import subprocess
    import sys

    script = f"""
import os, signal, sys, time
from pathlib import Path
from cytokit.cli import _runlog
from cytokit.engine import runlog
real = runlog.RunRecorder.finish
def finish(self, exit_code=None):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # delivered here, were it not held
    return real(self) if exit_code is None else real(self, exit_code)
runlog.RunRecorder.finish = finish
out = Path({str(tmp_path)!r})
with _runlog.recorded(out, "gate"):
    (out / "counts.csv").write_text("file\\n")
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
print("done")
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "done", res.stderr
    (line,) = read_runlog(tmp_path)
    assert line["exit_code"] == 0 and line["command"] == "gate"


def test_a_run_refused_because_another_holds_the_folder_adds_no_line(tmp_path):
    """The other run's tables appeared while the refused one stopped: its line claimed
    them ("stopped before its end ... wrote part of its outputs")."""
    from cytokit._outdir import writing_into
    from cytokit.cli import _runlog
    from cytokit.errors import CytokitError

    with writing_into(tmp_path):
        import threading

        def refused():
            with pytest.raises(CytokitError, match="another cytokit run"):
                with _runlog.recorded(tmp_path, "gate") as log:
                    log.add_inputs("fcs", [])
                    log.inputs.append(("fcs", tmp_path / "counts.csv"))
                    (tmp_path / "counts.csv").write_text("file\n")  # the holder's table
                    with writing_into(tmp_path):
                        pass

        t = threading.Thread(target=refused)  # another thread: the lock is not re-entered
        t.start()
        t.join()
    assert not (tmp_path / RUNLOG_NAME).exists()
