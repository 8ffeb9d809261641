"""Messages that neither mislead nor flood, through the doors users take.

The CLI (`cytokit.cli.app.run`, as the ``cytokit`` command runs it),
`read_fcs`, `load_strategy`, `run_batch` and `GatingStrategy.apply`, on
files built byte by byte or taken from ``sample_data/`` and the corpus.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fcs_synth import dataset, float_keywords
from fs_helpers import read_only
from study_helpers import simulated_strategy

import cytokit
from cytokit import gating
from cytokit.cli.app import run
from cytokit.errors import FCSError
from cytokit.fcs import FCSWarning
from cytokit.gating.adaptive import AdaptiveGateWarning

HERE = Path(__file__).resolve().parent
SAMPLE_DATA = HERE.parent / "sample_data"
FCS_FILE = SAMPLE_DATA / "fcs" / "P01_day010.fcs"
CORPUS = HERE.parent.parent / "shared" / "corpus"
#: Control characters a terminal acts on: ESC (ANSI/OSC), BEL, CR, backspace, bidi override.
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _write(path: Path, pairs, n_par: int = 2, tot: int = 4, **options) -> Path:
    data = np.arange(n_par * tot, dtype="<f4").tobytes()
    path.write_bytes(dataset(pairs, data, **options))
    return path


def _keywords(**changes) -> list[tuple[str, str]]:
    return [(k, changes.get(k, v)) for k, v in float_keywords(2, 4)]


# -- terminal safety -------------------------------------------------------------------------------
HOSTILE_NAME = "FSC\x1b]0;owned\x07\rX\u202e"
HOSTILE_FIL = "run\x1b]8;;http://example.invalid\x07link\x1b]8;;\x07\rfake"


def test_inspect_escapes_control_characters(tmp_path, capsys):
    path = _write(
        tmp_path / "ctl.fcs", [*_keywords(**{"$P1N": HOSTILE_NAME}), ("$FIL", HOSTILE_FIL)]
    )
    assert run(["inspect", str(path), "--keywords"]) == 0
    out = capsys.readouterr().out
    assert not CONTROLS.search(out), repr(out)
    assert "FSC\\x1b]0;owned\\x07\\rX\\u202e" in out  # shown, inert
    assert "file name: run\\x1b]8;;" in out


def test_gate_error_escapes_control_characters(tmp_path, capsys):
    """The channel list of a 'reads channel' failure quotes $PnN; it reaches stderr inert."""
    path = _write(tmp_path / "ctl.fcs", _keywords(**{"$P1N": HOSTILE_NAME}))
    strategy = simulated_strategy().to_gatingml(tmp_path / "s.xml")
    code = run(["gate", str(strategy), str(path), "--out", str(tmp_path / "out"), "-j", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "FSC\\x1b]0;owned\\x07" in err
    assert not CONTROLS.search(err), repr(err)


# -- FCS reader ------------------------------------------------------------------------------------
def test_absurd_tot_is_quoted_not_printed(tmp_path):
    path = _write(tmp_path / "tot.fcs", _keywords(**{"$TOT": "1e300"}))
    with pytest.raises(FCSError) as err:
        cytokit.read_fcs(path)
    text = str(err.value)
    assert "$TOT=1e300" in text and "8.0e300" in text
    assert not re.search(r"\d{20,}", text), text
    assert len(text) < 300


def test_unknown_fcs_version_is_noted(tmp_path):
    path = _write(tmp_path / "v.fcs", _keywords(), version="FCS9.9")
    with pytest.warns(FCSWarning, match=r"says FCS9\.9, which is not an FCS version cytokit knows"):
        sample = cytokit.read_fcs(path)
    assert sample.n_events == 4  # read all the same


@pytest.mark.parametrize("version", ["FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2"])
def test_known_fcs_versions_are_not_noted(tmp_path, version):
    path = _write(tmp_path / "v.fcs", _keywords(), version=version)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FCSWarning)
        cytokit.read_fcs(path)


# -- strategies --------------------------------------------------------------------------------
def test_gatingml_with_a_workspace_comment_is_read_as_gatingml(tmp_path):
    path = simulated_strategy().to_gatingml(tmp_path / "s.xml")
    text = path.read_text()
    end = text.index("?>") + 2
    commented = tmp_path / "commented.xml"
    commented.write_text(
        text[:end] + "\n<!-- saved next to the lab's <Workspace> file -->\n" + text[end:]
    )
    plain = gating.load_strategy(path)
    loaded = gating.load_strategy(commented)
    assert loaded.paths == plain.paths
    sample = cytokit.read_fcs(FCS_FILE)
    assert loaded.apply(sample).counts["count"].tolist() == (
        plain.apply(sample).counts["count"].tolist()
    )


# -- batches ---------------------------------------------------------------------------------
def test_same_file_relative_and_absolute_is_gated_once(tmp_path, capsys, monkeypatch):
    strategy = simulated_strategy().to_gatingml(tmp_path / "s.xml")
    monkeypatch.chdir(FCS_FILE.parent)
    out = tmp_path / "out"
    code = run(["gate", str(strategy), FCS_FILE.name, str(FCS_FILE), "--out", str(out), "-j", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "1 of 1 file(s) gated" in err
    counts = pd.read_csv(out / "counts.csv")
    assert counts["file"].unique().tolist() == [FCS_FILE.name]


def test_unexpected_failure_reason_has_no_python_type(tmp_path):
    import batch_tasks as bt

    from cytokit.engine.runner import run_batch
    from cytokit.engine.store import RunStore

    boom = tmp_path / "boom.bin"
    boom.write_bytes(b"BOOM" + bytes(20))
    with RunStore(tmp_path / "results.sqlite") as store:
        report = run_batch([boom], bt.SummaryTask(), store, scheduler="serial")
    failure = report.failed[0]
    assert failure.error == "RuntimeError"  # the type stays where people debugging look
    assert not failure.reason.startswith("RuntimeError")
    assert re.match(r"unexpected failure \(boom\)", failure.reason), failure.reason


def test_read_only_output_folder_is_said_so(tmp_path, capsys):
    strategy = simulated_strategy().to_gatingml(tmp_path / "s.xml")
    out = tmp_path / "out"
    args = ["gate", str(strategy), str(FCS_FILE), "--out", str(out), "-j", "1"]
    assert run(args) == 0
    capsys.readouterr()
    with read_only(out):
        assert run(args) == 1
    err = capsys.readouterr().err
    # refused before anything runs, at the run log (the last thing a run writes)
    assert f"{out / 'runlog.jsonl'}: the run log cannot be appended to" in err, err
    (out / "runlog.jsonl").unlink()
    with read_only(out):
        assert run(args) == 1
    err = capsys.readouterr().err
    assert "not a cytokit results store" not in err and "delete the file" not in err
    assert "read-only" in err and str(out / "results.sqlite") in err
    assert run(args) == 0  # the store was fine all along


# -- adaptive gates ----------------------------------------------------------------------------
def _fallback_strategy(tmp_path: Path) -> Path:
    """sample_data's strategy, with its Live threshold unable to fit (it then uses 0.55)."""
    text = (SAMPLE_DATA / "strategy.yaml").read_text()
    old = "            single: negative\n            fallback: 0.55"
    assert old in text
    path = tmp_path / "fallback.yaml"
    path.write_text(
        text.replace(old, old.replace("fallback:", "min_events: 100000000\n            fallback:"))
    )
    return path


def test_adaptive_fallback_is_a_cytokit_message_once_per_file(tmp_path):
    files = [SAMPLE_DATA / "fcs" / n for n in ("P01_day010.fcs", "P01_day007.fcs")]
    out = tmp_path / "out"
    # the console script, as a lab runs it: nothing reaches stderr behind cytokit's back
    done = subprocess.run(
        [sys.executable, "-m", "cytokit.cli.app", "gate", str(_fallback_strategy(tmp_path)),
         *map(str, files), "--out", str(out), "-j", "1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "AdaptiveGateWarning" not in err and "warnings.warn" not in err
    assert not re.search(r"\.py:\d+:", err), err  # no Python source location
    for f in files:
        line = f"cytokit: warning: {f}: adaptive gate '/Lymphocytes/Singlets/Live' used its fixed"
        assert err.count(line) == 1, err
    assert "warnings about 2 of 2 file(s); an adaptive gate used its fixed fallback in 2" in err
    table = pd.read_csv(out / "warnings.csv")
    assert table["file"].tolist() == [str(f) for f in files]
    assert table["warning"].str.startswith("adaptive gate '/Lymphocytes/Singlets/Live'").all()


@pytest.mark.slow
def test_analyze_summarises_fallbacks_once_per_file(tmp_path):
    import shutil

    study = shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("*.npz"))
    shutil.copy(_fallback_strategy(tmp_path), study / "strategy.yaml")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "cytokit.cli.app", "analyze", str(study), "--out", str(out),
         "--no-report", "-j", "1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert not re.search(r"\.py:\d+:", err) and "AdaptiveGateWarning" not in err, err
    shown = re.findall(
        r"^cytokit: warning: (\S+): adaptive gate '/Lymphocytes/Singlets/Live'", err, re.M
    )
    assert len(shown) == len(set(shown)) == 10  # each file once, the first ten
    assert (
        "warnings about 15 of 15 file(s); an adaptive gate used its fixed fallback in 15 "
        f"(5 not shown above); every one is listed in {out / 'samples.csv'}"
    ) in err
    samples = pd.read_csv(out / "samples.csv")
    assert samples["warnings"].str.contains("used its fixed fallback").all()


def test_adaptive_fallback_warning_names_the_sample(tmp_path):
    strategy = gating.load_strategy(_fallback_strategy(tmp_path))
    for name in ("P01_day010.fcs", "P01_day007.fcs"):
        with pytest.warns(AdaptiveGateWarning) as caught:
            strategy.apply(cytokit.read_fcs(SAMPLE_DATA / "fcs" / name))
        messages = [str(w.message) for w in caught]
        assert len(messages) == 1 and messages[0].startswith(f"{name}: adaptive gate '/Lymph")


# -- spillover conditioning --------------------------------------------------------------------
def _nearly_singular_matrix() -> tuple[tuple[str, ...], np.ndarray]:
    """The file's own spillover matrix with the PE-A row a hair from the FITC-A row."""
    spill = cytokit.read_fcs(FCS_FILE).spillover
    m = np.array(spill.matrix)
    i, j = spill.channels.index("FITC-A"), spill.channels.index("PE-A")
    m[j] = m[i]
    m[j, j] += 4e-11
    assert 1e9 < np.linalg.cond(m) < 1e13  # far beyond any real matrix, not singular
    return spill.channels, m


def _nearly_singular(tmp_path: Path) -> Path:
    names, m = _nearly_singular_matrix()
    spill = cytokit.Spillover(names, m)
    path = tmp_path / "bad.csv"
    rows = [",".join(spill.channels)] + [",".join(repr(float(v)) for v in r) for r in m]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_ill_conditioned_spillover_warns_naming_the_channels(tmp_path, capsys):
    strategy = simulated_strategy().to_gatingml(tmp_path / "s.xml")
    bad = _nearly_singular(tmp_path)
    out = tmp_path / "out"
    args = ["gate", str(strategy), str(FCS_FILE), "--out", str(out), "--compensation", str(bad)]
    assert run([*args, "-j", "1"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("cytokit: warning:"))
    assert re.search(r"has condition number [0-9.e+]+, above 1,000", line), line
    assert re.search(r"the rows of (FITC-A and PE-A|PE-A and FITC-A) are nearly proportional", line)
    assert pd.read_csv(out / "warnings.csv")["warning"].str.contains("condition number").all()


def test_ill_conditioned_spillover_in_the_file(tmp_path, capsys):
    """The file's own $SPILLOVER: inspect says so, and gating it warns naming the file."""
    import dataclasses

    from cytokit.sample import SpilloverWarning

    names, m = _nearly_singular_matrix()
    sample = cytokit.read_fcs(FCS_FILE)
    bad = tmp_path / "bad_spill.fcs"
    cytokit.write_fcs(bad, dataclasses.replace(sample, spillover=cytokit.Spillover(names, m)))
    assert run(["inspect", str(bad)]) == 0
    err = capsys.readouterr().err
    assert re.search(
        r"cytokit: warning: .*bad_spill\.fcs: the spillover matrix .* has condition", err
    )
    with pytest.warns(SpilloverWarning, match=r"^bad_spill\.fcs: the spillover matrix"):
        simulated_strategy().apply(cytokit.read_fcs(bad))


def test_a_spillover_naming_a_missing_detector_says_whose_matrix_and_the_fix(tmp_path, capsys):
    """A file whose own $SPILLOVER names a detector it does not have (anonymised files in
    the corpus do): the failure names the file's keyword and how to gate it anyway, and a
    statistics channel that reads it is not called gate ''."""
    import dataclasses

    sample = cytokit.read_fcs(FCS_FILE)
    spill = sample.spillover
    wrong = ("NOPE-A", *spill.channels[1:])
    bad = tmp_path / "bad_names.fcs"
    cytokit.write_fcs(
        bad, dataclasses.replace(sample, spillover=cytokit.Spillover(wrong, spill.matrix))
    )
    out = tmp_path / "o"
    code = run(["gate", str(SAMPLE_DATA / "strategy.yaml"), str(bad), "--out", str(out)])
    reason = pd.read_csv(out / "failures.csv")["reason"].iloc[0]
    assert code == 1, capsys.readouterr().err
    assert "gate ''" not in reason
    assert "the file's own spillover matrix ($SPILLOVER) names detector 'NOPE-A'" in reason
    assert reason.endswith("gate it uncompensated (cytokit gate --compensation none) or with "
                           "a matrix that names its channels (--compensation MATRIX.csv)")  # fmt: skip


def test_well_conditioned_spillover_does_not_warn():
    from cytokit.sample import SpilloverWarning

    strategy = simulated_strategy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpilloverWarning)
        strategy.apply(cytokit.read_fcs(FCS_FILE))


def _corpus_matrices():
    """(where, matrix, names) of every spillover matrix in the corpus."""
    from cytokit.study.spillover_csv import read_spillover_csv

    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(CORPUS.rglob("*")):
            suffix = path.suffix.lower()
            try:
                if suffix in (".fcs", ".lmd"):
                    spill = cytokit.read_fcs(path, mmap=True).spillover
                    if spill is not None:
                        found.append((path, spill.matrix, spill.channels))
                elif suffix == ".csv" and "comp" in path.name:
                    spill = read_spillover_csv(path)
                    found.append((path, spill.matrix, spill.channels))
                elif suffix in (".wsp", ".xml"):
                    for m in gating.load_strategy(path).matrices.values():
                        found.append((path, m.matrix, m.fluorochromes))
            except Exception:  # files the corpus holds to be refused are not matrices
                continue
    return found


@pytest.mark.corpus
def test_no_real_spillover_matrix_is_called_ill_conditioned():
    from cytokit.sample import MAX_SPILLOVER_CONDITION, spillover_conditioning

    if not CORPUS.is_dir():
        pytest.skip(f"the corpus is not at {CORPUS}")
    found = _corpus_matrices()
    assert len(found) >= 20  # FCS $SPILL/$SPILLOVER, FlowKit CSVs, FlowJo and Gating-ML
    worst = max(np.linalg.cond(m) for _, m, _ in found)
    assert worst < MAX_SPILLOVER_CONDITION / 100  # 8.3 in this corpus
    assert [str(p) for p, m, names in found if spillover_conditioning(m, names)] == []


def test_an_output_folder_that_is_a_dangling_link_is_named_so(tmp_path, capsys):
    """`--out` naming a symbolic link whose target does not exist said "cannot be created as
    a folder (File exists)", which hides the link; the message names it, its target and the
    fix, for every command that writes a folder. A link to a folder is written through."""
    link = tmp_path / "res"
    link.symlink_to(tmp_path / "nowhere" / "out")
    for args in (
        ["analyze", str(SAMPLE_DATA), "--out", str(link), "--workers", "1"],
        ["gate", str(SAMPLE_DATA / "strategy.yaml"), str(SAMPLE_DATA / "fcs"), "--out", str(link)],
    ):
        code = run(args)
        err = capsys.readouterr().err
        assert code == 1, err
        assert (
            f"{link}: is a symbolic link to {tmp_path / 'nowhere' / 'out'}, which does not exist"
            in err
        )
        assert "File exists" not in err and "create that folder" in err
        assert not (tmp_path / "nowhere").exists()
    from cytokit._outdir import output_folder

    (tmp_path / "real").mkdir()
    there = tmp_path / "there"
    there.symlink_to(tmp_path / "real")
    assert output_folder(there, files=("counts.csv",)) == there


def test_an_output_folder_of_other_files_is_refused(tmp_path, capsys):
    """`--out` naming a folder of the user's other files (no cytokit results in it) mixed the
    tables with them, and `cytokit verify` then said "output added: notes.txt". It is refused
    before anything is written; a new folder, one with hidden files only, or one cytokit
    wrote is taken."""
    from cytokit._outdir import output_folder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep\n")
    code = run(["analyze", str(SAMPLE_DATA), "--out", str(mine), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "notes.txt" in err and "new or empty output folder" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".DS_Store").write_bytes(b"")
    assert output_folder(hidden, files=("counts.csv",)) == hidden
    (mine / "runlog.jsonl").write_text("")  # a folder cytokit wrote: its own files may be there
    assert output_folder(mine, files=("counts.csv",)) == mine
    # what a system puts there (a drive's root, a share Explorer opened) is not the user's
    system = tmp_path / "drive"
    (system / "lost+found").mkdir(parents=True)
    (system / "Thumbs.db").write_bytes(b"")
    (system / "empty").mkdir()
    assert output_folder(system, files=("counts.csv",)) == system
    # a report folder an older cytokit wrote (report.html and plots/, no run log)
    web = tmp_path / "web"
    (web / "plots").mkdir(parents=True)
    (web / "report.html").write_text("<html></html>")
    (web / "plots" / "manifest.json").write_text("{}")
    assert output_folder(web, files=("report.html",), folders=("plots",)) == web
