"""Which files cytokit reads: a study only inside its folders, nothing but regular files.

A study folder may come from anyone. Its manifest rows, ``[gating] strategy``
and ``[compensation] source`` may try to lead outside it (``..``, an absolute
path, a symbolic link) or at a FIFO; each such path must be refused with one
line naming the row or key and the rule, without the file being read, so its
bytes reach no table, message or report. ``[study] data_roots`` admits shared
folders explicitly. FIFOs are refused everywhere (study files, ``cytokit
gate``); those tests run in a subprocess with a timeout so that a regression
fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import make_study

from cytokit._paths import ROOTS_RULE
from cytokit.cli.app import run
from cytokit.errors import GatingError, StudyError
from cytokit.gating import load_strategy
from cytokit.simulate import preset_design
from cytokit.study import load_study

SECRET = "root:x:0:0:SECRET-first-line:/root:/bin/bash"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    design = preset_design("sample", seed=9, n_patients=2, n_events=2000, days=(-7, 7, 14))
    return make_study(tmp_path_factory.mktemp("paths") / "s", design)


@pytest.fixture
def study(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "s", symlinks=True)


@pytest.fixture
def shared(tmp_path):
    """A folder beside the study: a text file posing as FCS, a real FCS file, a matrix."""
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "secret.fcs").write_text(SECRET + "\n")
    (folder / "comp.csv").write_text(SECRET + "\n1,0\n0,1\n")
    return folder


def add_rows(study: Path, files: list[str]) -> list[int]:
    """Append one manifest row per file (new patients); returns their line numbers."""
    manifest = study / "manifest.csv"
    lines = manifest.read_text().splitlines()
    template = lines[1].split(",")
    numbers = []
    for i, name in enumerate(files):
        lines.append(",".join([name, f"P{50 + i}", "1", *template[3:]]))
        numbers.append(len(lines))
    manifest.write_text("\n".join(lines) + "\n")
    return numbers


def set_key(study: Path, table: str, key: str, value: str) -> None:
    """Set ``key = value`` (TOML source) in ``[table]`` of study.toml (the key is unique)."""
    toml = study / "study.toml"
    lines = [ln for ln in toml.read_text().splitlines() if not ln.startswith(f"{key} =")]
    lines.insert(lines.index(f"[{table}]") + 1, f"{key} = {value}")
    toml.write_text("\n".join(lines) + "\n")


def problems(study: Path) -> list[str]:
    with pytest.raises(StudyError) as err:
        load_study(study)
    return [line.strip() for line in str(err.value).splitlines()[1:]]


def test_paths_leading_out_of_the_study_are_refused_one_line_each(study, shared):
    secret = (shared / "secret.fcs").resolve()
    (study / "fcs" / "out.fcs").symlink_to(secret)
    # a link within is fine (to a file no other row names: one file listed twice is a problem)
    shutil.copy(study / "fcs" / "P01_day007.fcs", study / "fcs" / "target.fcs")
    (study / "fcs" / "in.fcs").symlink_to("target.fcs")
    files = ["../shared/secret.fcs", str(secret), "fcs/out.fcs", "fcs/in.fcs"]
    if Path("/etc/passwd").is_file():
        files.append("../" * 30 + "etc/passwd")
    numbers = add_rows(study, files)
    shutil.copy(study / "strategy.xml", shared / "strategy.xml")
    set_key(study, "gating", "strategy", '"../shared/strategy.xml"')
    set_key(study, "compensation", "source", f'"{(shared / "comp.csv").as_posix()}"')

    found = problems(study)
    manifest = study / "manifest.csv"
    rule = f"outside the study folder; {ROOTS_RULE}"
    expected = [
        f"{study / 'study.toml'}: [compensation] source = '{(shared / 'comp.csv').as_posix()}' "
        f"resolves to {(shared / 'comp.csv').resolve()}, {rule}",
        f"{manifest}, line {numbers[0]}: FCS file '{files[0]}' resolves to {secret}, {rule}",
        f"{manifest}, line {numbers[1]}: FCS file '{files[1]}' resolves to {secret}, {rule}",
        f"{manifest}, line {numbers[2]}: FCS file 'fcs/out.fcs' resolves to {secret}, {rule}",
    ]
    if len(files) > 4:
        expected.append(
            f"{manifest}, line {numbers[4]}: FCS file '{files[4]}' resolves to "
            f"{Path('/etc/passwd').resolve()}, {rule}"
        )
    expected.append(
        f"{study / 'study.toml'}: [gating] strategy = '../shared/strategy.xml' resolves to "
        f"{(shared / 'strategy.xml').resolve()}, {rule}"
    )
    assert found == expected
    assert not any("SECRET" in line or "root:x" in line for line in found)


def test_data_roots_admit_shared_folders(study, shared):
    for name in ("a.fcs", "b.fcs"):
        shutil.copy(study / "fcs" / "P01_day007.fcs", shared / name)
    shutil.copy(study / "strategy.xml", shared / "strategy.xml")
    (study / "fcs" / "out.fcs").symlink_to(shared / "b.fcs")
    add_rows(study, [str(shared / "a.fcs"), "fcs/out.fcs"])
    set_key(study, "gating", "strategy", '"../shared/strategy.xml"')
    set_key(study, "study", "data_roots", '["../shared"]')  # relative to the study folder
    s = load_study(study)
    assert len(s.rows) == 8 and s.rows[-2].file == shared / "a.fcs"
    assert s.strategy == study / "../shared/strategy.xml" and s.gating is not None

    set_key(study, "study", "data_roots", f'["{shared.as_posix()}"]')  # or absolute
    assert len(load_study(study).rows) == 8

    set_key(study, "study", "data_roots", '["../shared", "../nowhere"]')
    assert problems(study) == [
        f"{study / 'study.toml'}: [study] data_roots entry '../nowhere' is not a folder "
        f"(looked for {(study / '../nowhere').resolve()})"
    ]
    set_key(study, "study", "data_roots", '"../shared"')
    assert problems(study)[0].endswith(
        "[study] data_roots = '../shared' must be a list of folders, e.g. "
        'data_roots = ["/mnt/cytometer"]'
    )


def test_symbolic_link_loops_are_study_problems(study, tmp_path, capsys):
    """A loop of links (a.fcs -> b.fcs -> a.fcs) never reaches a file: each path a study
    names through one is a problem naming its row or key, not an internal error."""
    (study / "fcs" / "P02_day007.fcs").unlink()
    (study / "fcs" / "P02_day007.fcs").symlink_to("b.fcs")
    (study / "fcs" / "b.fcs").symlink_to("P02_day007.fcs")
    (study / "loop").symlink_to("loop")
    (study / "strategy.xml").rename(study / "real.xml")
    (study / "strategy.xml").symlink_to("strategy.xml")
    set_key(study, "study", "data_roots", '["loop"]')
    manifest = study / "manifest.csv"
    line = 1 + next(
        i for i, row in enumerate(manifest.read_text().splitlines()) if "P02_day007" in row
    )
    loop = "is a loop of symbolic links (following them never reaches a file); name the file itself"
    assert problems(study) == [
        f"{study / 'study.toml'}: [study] data_roots entry 'loop' is not a folder (looked for "
        f"{study / 'loop'})",
        f"{manifest}, line {line}: FCS file 'fcs/P02_day007.fcs' {loop}",
        f"{study / 'study.toml'}: [gating] strategy = 'strategy.xml' {loop}",
    ]
    # the commands say so as the study problem it is
    for args in (
        ["analyze", study, "--out", tmp_path / "o1"],
        ["gate", "--study", study, "--out", tmp_path / "o2"],
    ):
        assert run([str(a) for a in args]) == 1
        err = capsys.readouterr().err
        assert (
            "internal error" not in err
            and f"line {line}: FCS file 'fcs/P02_day007.fcs' {loop}" in err
        )


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter; a hang fails the test after five minutes."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


@needs_fifo
def test_fifos_named_by_a_study_are_refused(pristine, tmp_path):
    cases = {
        "row": "fcs/pipe.fcs",
        "manifest": "manifest.csv",
        "toml": "study.toml",
        "strategy": "strategy.xml",
        "matrix": "comp.csv",
    }
    for case, name in cases.items():
        folder = shutil.copytree(pristine, tmp_path / case)
        if case == "row":
            add_rows(folder, [name])
        if case == "matrix":
            set_key(folder, "compensation", "source", '"comp.csv"')
        (folder / name).unlink(missing_ok=True)
        os.mkfifo(folder / name)
    code = (
        "import sys\n"
        "from cytokit.study import load_study\n"
        "for folder in sys.argv[1:]:\n"
        "    try:\n"
        "        load_study(folder)\n"
        "    except Exception as exc:\n"
        "        print([ln.strip() for ln in str(exc).splitlines() if 'FIFO' in ln])\n"
    )
    done = _run(code, *(str(tmp_path / case) for case in cases))
    assert done.returncode == 0, done.stderr
    fifo = "is a FIFO (named pipe), not a regular file; name the file itself"
    assert done.stdout.splitlines() == [
        str([f"{tmp_path / 'row' / 'manifest.csv'}, line 8: FCS file 'fcs/pipe.fcs' {fifo}"]),
        str([f"{tmp_path / 'manifest' / 'manifest.csv'}: {fifo}"]),
        str([f"{tmp_path / 'toml' / 'study.toml'}: {fifo}"]),
        str([f"{tmp_path / 'strategy' / 'study.toml'}: [gating] strategy = 'strategy.xml' {fifo}"]),
        str([f"{tmp_path / 'matrix' / 'study.toml'}: [compensation] source = 'comp.csv' {fifo}"]),
    ]


@needs_fifo
def test_gate_refuses_a_fifo_and_gates_the_rest(pristine, tmp_path):
    fifo = tmp_path / "pipe.fcs"
    os.mkfifo(fifo)
    good = pristine / "fcs" / "P01_day007.fcs"
    out = tmp_path / "out"
    code = "import sys\nfrom cytokit.cli.app import run\nsys.exit(run(sys.argv[1:]))\n"
    args = ["gate", str(pristine / "strategy.xml"), str(fifo), str(good), "--out", str(out)]
    done = _run(code, *args, "--workers", "1")
    assert done.returncode == 0, done.stderr
    failures = pd.read_csv(out / "failures.csv")
    assert failures.to_dict("records") == [
        {
            "file": str(fifo),
            "stage": "open",
            "reason": "it is a FIFO (named pipe), not a regular file; give the file itself",
        }
    ]
    assert set(pd.read_csv(out / "counts.csv").file) == {str(good)}
    # the run log lists the FIFO without reading it (no hash), the file with its hash
    (line,) = (out / "runlog.jsonl").read_text().splitlines()
    hashes = {i["path"]: i["sha256"] for i in json.loads(line)["inputs"]}
    assert hashes[str(fifo)] is None and hashes[str(good)] is not None

    # a worker hashing the file checks again (a Dask worker may see another file system)
    code = "import sys\nfrom cytokit.engine._workers import hash_job\nprint(hash_job(sys.argv[1]).failure)"
    done = _run(code, str(fifo))
    assert done.stdout.strip() == str(
        ("open", "error", "NotRegularFileError", failures.reason[0], "")
    )


@needs_fifo
def test_a_fifo_strategy_is_not_called_missing(tmp_path, capsys):
    fifo = tmp_path / "strategy.xml"
    os.mkfifo(fifo)
    with pytest.raises(GatingError, match=r"not a regular file .*; give the strategy file"):
        load_strategy(fifo)
    assert run(["gate", str(fifo), str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert f"{fifo}: not a regular file" in capsys.readouterr().err


@pytest.mark.slow
def test_a_file_that_is_not_fcs_is_never_quoted_in_outputs(study, tmp_path, capsys):
    """A manifest row inside the study that is not an FCS file: described in failures.csv,
    stderr and the report, its bytes in none of them (nor in any other output)."""
    (study / "fcs" / "notes.fcs").write_text(SECRET + "\n" + "x" * 200 + "\n")
    add_rows(study, ["fcs/notes.fcs"])
    out = tmp_path / "out"
    code = run(["analyze", str(study), "--out", str(out), "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures.file) == ["fcs/notes.fcs"]
    assert failures.reason[0] == (
        "not an FCS file: it starts with text, not with 'FCS' and a version such as 'FCS3.1'"
    )
    assert "not an FCS file: it starts with text" in (out / "report.html").read_text()
    assert "SECRET" not in captured.err + captured.out
    for path in out.rglob("*"):
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path
