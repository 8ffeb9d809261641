"""Stored and written results cannot change silently: through ``cytokit analyze``, ``gate``
and ``report``.

* a count edited inside ``results.sqlite`` (valid bytes, so SQLite's integrity
  check still passes) is computed again, said on stderr and in samples.csv,
  and the tables are those of the untouched run;
* a file rewritten with its size and mtime put back (``touch -r``) is gated
  again: its counts are those of a fresh run on the new content;
* one file listed twice under another spelling (``fcs/../fcs``, a link) or a
  copy of it listed as another sample is a study problem naming both lines;
* a results folder whose tables were cut short, edited, deleted, or whose
  writing stopped half-way is refused by ``cytokit report`` (exit 1, one line
  naming the table), and ``cytokit analyze`` again repairs it.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from fs_helpers import rewrite_keeping_size_and_mtime
from study_helpers import make_study

import cytokit
import cytokit.analysis.results
import cytokit.engine.hashing
from cytokit.cli.app import run
from cytokit.engine.store import file_hash
from cytokit.errors import NO_EVENTS
from cytokit.simulate import preset_design

FILE = "fcs/P01_day007.fcs"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    design = preset_design("sample", seed=5, n_patients=2, n_events=5000, days=(-7, 7, 14))
    return make_study(tmp_path_factory.mktemp("integrity") / "study", design)


@pytest.fixture(scope="module")
def analysed(study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysed") / "out"
    assert run(["analyze", str(study), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    return out


def analyze(study: Path, out: Path, capsys) -> tuple[int, str]:
    code = run(["analyze", str(study), "--out", str(out), "--workers", "1", "--no-report"])
    return code, capsys.readouterr().err


def add_to_stored_count(store: Path, digest: str, gate_path: str, add: int) -> None:
    """Change one count of a stored ``counts`` item the way a flipped digit would (12156 ->
    22156): the item stays valid JSON and the database passes SQLite's integrity check."""
    with sqlite3.connect(store) as db:
        (data,) = db.execute(
            "SELECT data FROM items WHERE hash = ? AND name = 'counts'", (digest,)
        ).fetchone()
        doc = json.loads(data)
        counts = doc["data"][doc["columns"].index("count")]
        counts[doc["data"][doc["columns"].index("gate_path")].index(gate_path)] += add
        db.execute(
            "UPDATE items SET data = ? WHERE hash = ? AND name = 'counts'",
            (json.dumps(doc).encode(), digest),
        )
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- 5: a damaged store ------------------------------------------------------------------------


def test_analyze_computes_a_count_changed_in_the_store_again(study, analysed, tmp_path, capsys):
    out = shutil.copytree(analysed, tmp_path / "out")
    add_to_stored_count(out / "results.sqlite", file_hash(study / FILE), "/Lymphocytes", 10_000)
    code, err = analyze(study, out, capsys)
    assert code == 0, err
    assert "1 stored result(s)" in err and "computed again: P01_day007.fcs" in err, err
    for name in ("counts", "chimerism", "phenotype", "thresholds", "trends"):
        assert (out / f"{name}.csv").read_bytes() == (analysed / f"{name}.csv").read_bytes(), name
    warnings = pd.read_csv(out / "samples.csv").set_index("file")["warnings"].fillna("")
    assert "stored result was damaged" in warnings[FILE]
    assert not warnings.drop(FILE).str.contains("damaged").any()


def test_gate_computes_a_count_changed_in_the_store_again(study, tmp_path, capsys):
    files = [study / "fcs" / n for n in ("P01_day-07.fcs", "P01_day007.fcs", "P02_day014.fcs")]
    out = tmp_path / "gated"
    args = ["gate", str(study / "strategy.xml"), *map(str, files), "--out", str(out), "-j", "1"]
    assert run(args) == 0
    before = (out / "counts.csv").read_bytes()
    add_to_stored_count(out / "results.sqlite", file_hash(files[1]), "/Lymphocytes", 10_000)
    capsys.readouterr()
    assert run(args) == 0
    err = capsys.readouterr().err
    assert "3 of 3 file(s) gated (2 from the store)" in err, err
    assert "1 stored result(s)" in err and str(files[1]) in err
    assert (out / "counts.csv").read_bytes() == before


# -- 6: a file rewritten with its size and mtime -------------------------------------------------


def data_segment(data: bytes) -> slice:
    """The DATA segment of FCS bytes, from the HEADER's offsets."""
    return slice(int(data[26:34]), int(data[34:42]) + 1)


def test_gate_reads_a_file_rewritten_with_its_size_and_mtime_again(
    study, tmp_path, capsys, monkeypatch
):
    # trust hash cache entries however fresh: only the stat recorded in them can tell
    monkeypatch.setattr(cytokit.engine.hashing, "RACY_NS", 0)
    fcs = tmp_path / "fcs"
    fcs.mkdir()
    a, b = (shutil.copy2(study / "fcs" / n, fcs / n) for n in ("P01_day007.fcs", "P02_day014.fcs"))
    out = tmp_path / "out"
    args = ["gate", str(study / "strategy.xml"), str(a), str(b), "--out", str(out), "-j", "1"]
    assert run(args) == 0
    old = pd.read_csv(out / "counts.csv")
    # a's HEADER and TEXT around b's events: the same size, other counts
    mine, other = Path(a).read_bytes(), Path(b).read_bytes()
    seg, theirs = data_segment(mine), data_segment(other)
    assert seg.stop - seg.start == theirs.stop - theirs.start
    rewrite_keeping_size_and_mtime(Path(a), mine[: seg.start] + other[theirs] + mine[seg.stop :])
    capsys.readouterr()
    assert run(args) == 0
    err = capsys.readouterr().err
    assert "(1 from the store)" in err, err
    got = pd.read_csv(out / "counts.csv")
    fresh_out = tmp_path / "fresh"
    assert run(["gate", str(study / "strategy.xml"), str(a), "--out", str(fresh_out)]) == 0
    fresh = pd.read_csv(fresh_out / "counts.csv")
    pd.testing.assert_frame_equal(got[got["file"] == str(a)].reset_index(drop=True), fresh)
    assert not old[old["file"] == str(a)]["count"].equals(fresh["count"])


# -- 7: one file listed twice --------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["dotdot", "link", "copy"])
def test_analyze_refuses_one_file_listed_twice(study, tmp_path, capsys, spelling):
    root = shutil.copytree(study, tmp_path / "study")
    again = "fcs/P01_day010.fcs"
    if spelling == "dotdot":
        again = "fcs/../fcs/P01_day007.fcs"
    elif spelling == "link":
        (root / again).symlink_to("P01_day007.fcs")
    else:
        shutil.copy2(root / FILE, root / again)
    lines = (root / "manifest.csv").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(FILE + ","))
    added = lines[first].replace(FILE, again).replace(",P01,7,", ",P01,10,")
    assert added != lines[first]
    (root / "manifest.csv").write_text("\n".join([*lines, added]) + "\n")
    out = tmp_path / "out"
    code, err = analyze(root, out, capsys)
    assert code == 1, err
    line, first_line = len(lines) + 1, first + 1
    assert f"manifest.csv, line {line}: file {again!r}" in err, err
    if spelling == "copy":
        assert f"holds the same bytes as line {first_line}'s {FILE!r}" in err
    else:
        assert f"is listed again (first on line {first_line} as {FILE!r}: the same file)" in err
    assert not (out / "counts.csv").exists()


def test_two_empty_files_are_two_failures_not_one_file_listed_twice(study, tmp_path, capsys):
    """Two failed transfers leave two empty files with the same (no) bytes: each is a
    failure of its own and the batch goes on, as `gate --study` does."""
    root = shutil.copytree(study, tmp_path / "study")
    lines = (root / "manifest.csv").read_text().splitlines()[1:]
    empty = [line.split(",")[0] for line in lines[:2]]
    for name in empty:
        (root / name).write_bytes(b"")
    out = tmp_path / "out"
    code, err = analyze(root, out, capsys)
    assert code == 0, err
    failed = pd.read_csv(out / "failures.csv")
    assert sorted(failed["file"]) == sorted(empty)
    assert set(failed["reason"]) == {
        "not an FCS file: it is empty (0 bytes: a copy or export that did not finish); "
        "export or copy it again"
    }
    assert len(pd.read_csv(out / "samples.csv")) == len(lines) - 2


def test_a_rerun_resumes_however_the_study_path_is_spelled(study, tmp_path, capsys):
    """The store's key names the strategy by its digest, not by the path it was read from:
    the same study given relative, absolute or through a link resumes every file, and
    the tables are the same bytes."""
    import os

    root = shutil.copytree(study, tmp_path / "study")
    link = tmp_path / "link"
    link.symlink_to(root)
    out = tmp_path / "out"
    assert analyze(root, out, capsys)[0] == 0
    tables = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        for spelling in (Path("study"), link):
            code, err = analyze(spelling, out, capsys)
            assert code == 0, err
            # one stored result per file: nothing measured again under another task key
            with sqlite3.connect(out / "results.sqlite") as db:
                (stored,) = db.execute("SELECT COUNT(*) FROM results").fetchone()
                (tasks,) = db.execute("SELECT COUNT(*) FROM tasks").fetchone()
            assert stored == len(pd.read_csv(out / "samples.csv")) and tasks == 1, spelling
            assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == tables
    finally:
        os.chdir(here)


def test_what_reading_a_file_warned_is_in_its_samples_row(study, tmp_path, capsys):
    """A file whose $BEGINDATA disagrees with its HEADER is read (the HEADER trusted) with a
    warning: analyze lists it in samples.csv, as gate lists it in warnings.csv, without
    the machine's path."""
    root = shutil.copytree(study, tmp_path / "study")
    data = bytearray((root / FILE).read_bytes())
    start = int(data[10:18])  # the HEADER's TEXT offset; TEXT opens with its delimiter
    delim = data[start : start + 1]
    at = data.index(b"$BEGINDATA" + delim, start) + len(b"$BEGINDATA") + 1
    end = data.index(delim, at)
    value = data[at:end]
    data[at:end] = str(int(value) + 8).rjust(len(value)).encode()  # same length: TEXT stays
    (root / FILE).write_bytes(bytes(data))
    out = tmp_path / "out"
    code, err = analyze(root, out, capsys)
    assert code == 0, err
    s = pd.read_csv(out / "samples.csv", keep_default_na=False).set_index("file")
    said = s.loc[FILE, "warnings"]
    assert "the HEADER was trusted" in said and str(tmp_path) not in said


def test_a_file_without_events_fails_the_same_way_through_analyze_and_gate(study, tmp_path, capsys):
    """Nothing was acquired: the file fails at reading, saying so, not as an adaptive gate
    that cannot be placed (whose advice, to loosen the gate, would be wrong)."""
    root = shutil.copytree(study, tmp_path / "study")
    s = cytokit.read_fcs(root / FILE)
    empty = cytokit.Sample(s.events[:0], s.channels, s.keywords, s.spillover)
    cytokit.write_fcs(root / FILE, empty)
    code, err = analyze(root, tmp_path / "a", capsys)
    assert code == 0, err
    failed = pd.read_csv(tmp_path / "a" / "failures.csv").set_index("file").loc[FILE]
    assert (failed["stage"], failed["reason"]) == ("read", NO_EVENTS)
    assert run(["gate", "--study", str(root), "--out", str(tmp_path / "g"), "-j", "1"]) == 0
    gated = pd.read_csv(tmp_path / "g" / "failures.csv")
    assert gated[["stage", "reason"]].values.tolist() == [["read", NO_EVENTS]]
    # and analyze does not write over gate's tables (as gate refuses analyze's)
    code, err = analyze(root, tmp_path / "g", capsys)
    assert code == 1 and "holds the results of `cytokit gate`" in err, err


# -- 8: tables changed after they were written --------------------------------------------------


def report(out: Path, capsys) -> tuple[int, str]:
    code = run(["report", str(out), "--no-qc"])
    return code, capsys.readouterr().err


def test_report_refuses_a_truncated_table_until_analyze_rewrites_it(
    study, analysed, tmp_path, capsys
):
    out = shutil.copytree(analysed, tmp_path / "out")
    rows = len(pd.read_csv(analysed / "chimerism.csv"))
    size = (out / "chimerism.csv").stat().st_size
    (out / "chimerism.csv").write_bytes((out / "chimerism.csv").read_bytes()[:300])
    code, err = report(out, capsys)
    assert code == 1, err
    error = [line for line in err.splitlines() if line.startswith("cytokit: error:")]
    assert len(error) == 1, err
    assert (
        f"chimerism.csv has 1 row(s) in 300 bytes where tables.json records {rows} row(s) in "
        f"{size:,} bytes" in error[0]
    )
    assert f"run `cytokit analyze {study} --out {out}` again" in error[0]
    assert not (out / "report.html").exists()
    with pytest.raises(cytokit.CytokitError, match=r"chimerism\.csv has 1 row"):
        cytokit.load_results(out)
    # the fix the message gives
    code, err = analyze(study, out, capsys)
    assert code == 0, err
    assert (out / "chimerism.csv").read_bytes() == (analysed / "chimerism.csv").read_bytes()
    code, err = report(out, capsys)
    assert code == 0, err
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("change", ["edited", "deleted", "no_index"])
def test_report_refuses_a_changed_folder(analysed, tmp_path, capsys, change):
    out = shutil.copytree(analysed, tmp_path / "out")
    if change == "edited":  # one digit, same size
        text = (out / "counts.csv").read_text()
        at = re.search(r",/Lymphocytes,[^,]*,,1,(\d)", text).start(1)  # a lymphocyte count
        text = text[:at] + str(int(text[at]) % 9 + 1) + text[at + 1 :]
        (out / "counts.csv").write_text(text)
        expected = "counts.csv differs from what tables.json records (same size, other content)"
    elif change == "deleted":
        (out / "phenotype.csv").unlink()
        expected = "phenotype.csv is missing"
    else:  # a folder written before the index existed
        (out / "tables.json").unlink()
        expected = "no tables.json, so its tables cannot be checked (written by an older cytokit"
    code, err = report(out, capsys)
    assert code == 1 and expected in err, err
    assert not (out / "report.html").exists()


def test_the_advice_names_the_study_of_the_run_that_stopped(
    study, analysed, tmp_path, capsys, monkeypatch
):
    """A folder holding one study's results, into which an analysis of another study was
    interrupted after gating (its tables.json gone): report and both exports refuse it,
    naming the interrupted run's study (its runlog.jsonl line), not study.json's; when that
    run could not log (kill -9) no study is named; with no later run, study.json's is."""
    out = shutil.copytree(analysed, tmp_path / "out")
    (out / "tables.json").unlink()  # by hand: study.json's run was the last to gate here
    code, err = report(out, capsys)
    assert code == 1 and f"run `cytokit analyze {study} --out {out}` again" in err, err
    other = shutil.copytree(study, tmp_path / "other study")
    shutil.copy(analysed / "tables.json", out / "tables.json")

    def interrupted(files):
        raise KeyboardInterrupt

    monkeypatch.setattr(cytokit.analysis.results, "replace_together", interrupted)
    assert run(["analyze", str(other), "--out", str(out), "--workers", "1", "--no-report"]) == 130
    monkeypatch.undo()
    assert not (out / "tables.json").exists()
    assert json.loads((out / "study.json").read_text())["root"] == str(study)
    log = (out / "runlog.jsonl").read_text().splitlines(keepends=True)
    assert json.loads(log[-1])["exit_code"] == 130
    commands = (["report", str(out), "--no-qc"], ["export-wsp", str(out), str(tmp_path / "x.wsp")],
                ["export-anndata", str(out), str(tmp_path / "x.h5ad")])  # fmt: skip
    for args in commands:
        assert run(args) == 1
        err = capsys.readouterr().err
        assert f"run `cytokit analyze {other} --out {out}` again" in err, err
    (out / "runlog.jsonl").write_text("".join(log[:-1]))  # killed with no time to log
    for args in commands:
        assert run(args) == 1
        err = capsys.readouterr().err
        assert "stopped with no record of its study" in err, err
        assert f"`cytokit analyze STUDY --out {out}`" in err and str(study) not in err
    assert not list(out.glob("results.sqlite-*"))  # the store was read, the folder left as is


def test_a_folder_whose_writing_stopped_half_way_is_refused(
    study, analysed, tmp_path, capsys, monkeypatch
):
    out = shutil.copytree(analysed, tmp_path / "out")
    together = cytokit.analysis.results.replace_together
    create = cytokit._io.create_temporary
    written = []

    def disk_full_at_the_third_table(files):
        def temporary(folder, name):
            written.append(name)
            if len(written) == 3:
                raise OSError(28, "No space left on device")
            return create(folder, name)

        with monkeypatch.context() as m:
            m.setattr(cytokit._io, "create_temporary", temporary)
            return together(files)

    monkeypatch.setattr(cytokit.analysis.results, "replace_together", disk_full_at_the_third_table)
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    with pytest.raises(OSError, match="No space left"):
        cytokit.analyze(study, out, workers=1)
    monkeypatch.undo()
    assert written == ["samples.csv", "counts.csv", "chimerism.csv"]
    # the tables are the earlier run's, whole, and no temporary is left
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before
    assert not list(out.glob(".*.tmp"))
    code, err = report(out, capsys)
    assert code == 1, err
    assert "no tables.json" in err and "the run writing them stopped before the end" in err
