"""Every command on hostile input: one error line, the documented exit code, no traceback.

The README's promise: exit 0 on success; 1 on a cytokit error, with one line on
stderr naming the file, the value and the fix (a study with several problems
lists them on indented lines under it); 2 on a usage error; 3 when a batch
finished but files failed and ``--strict`` was given. Progress lines before
the error are fine; a traceback, a second error line or an "internal error"
(a bug) is not. A table of bad inputs drives every command; a bounded
hypothesis fuzz (`test_fuzz_*`) then throws random argument lists and study
and results folders damaged by deleting, truncating and corrupting files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from study_helpers import make_study

from cytokit.analysis.tablesjson import write_index
from cytokit.cli.app import run
from cytokit.simulate import preset_design

ERROR_LINE = ("cytokit: error:", "cytokit: usage error:")


def check_output(code: int, err: str, allowed=(0, 1, 2, 3)) -> str | None:
    """The error line of a run's stderr, after checking the output rules (None at exit 0/3)."""
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith(ERROR_LINE)]
    if code in (0, 3):
        assert not errors, err
        return None
    assert len(errors) == 1, err
    # a study's list of problems goes on indented lines; nothing else follows the error
    assert all(line.startswith("  ") for line in lines[errors[0] + 1 :]), err
    return lines[errors[0]]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    design = preset_design("sample", seed=11, n_patients=2, n_events=2000, days=(-7, 7))
    return make_study(tmp_path_factory.mktemp("hostile") / "study", design)


@pytest.fixture(scope="module")
def results(study) -> Path:
    out = study.parent / "results"
    code = run(["analyze", str(study), "--out", str(out), "--workers", "1", "--no-report"])
    assert code == 0
    return out


# -- a table of bad inputs, every command -----------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


def out_is_a_file(tmp, study, results):
    (tmp / "taken").write_text("not a folder")
    return ["analyze", study, "--out", tmp / "taken", "--workers", "1"]


def table_is_a_folder(tmp, study, results):
    (tmp / "out" / "counts.csv").mkdir(parents=True)
    strategy, fcs = study / "strategy.xml", next((study / "fcs").glob("*.fcs"))
    return ["gate", strategy, fcs, "--out", tmp / "out", "--scheduler", "serial"]


def analysis_table_is_a_folder(tmp, study, results):
    (tmp / "out" / "chimerism.csv").mkdir(parents=True)
    return ["analyze", study, "--out", tmp / "out", "--workers", "1"]


def toml_not_utf8(tmp, study, results):
    bad = _copy(study, tmp / "study")
    text = (bad / "study.toml").read_bytes()
    (bad / "study.toml").write_bytes(text.replace(b"[study]", b"# caf\xe9 latin-1\n[study]"))
    return ["analyze", bad, "--out", tmp / "out", "--workers", "1"]


def store_garbage(tmp, study, results):
    out = _copy(results, tmp / "results")
    db = sqlite3.connect(out / "results.sqlite")
    name, h, data = db.execute(
        "SELECT name, hash, data FROM items WHERE kind = 'frame' ORDER BY name, hash LIMIT 1"
    ).fetchone()
    middle = len(data) // 2
    garbage = data[:middle] + b"\xff\xfe\x00\x9c" + data[middle + 4 :]
    db.execute("UPDATE items SET data = ? WHERE name = ? AND hash = ?", (garbage, name, h))
    db.commit()
    db.close()
    return ["analyze", study, "--out", out, "--workers", "1", "--no-report"]


def _reindexed(out):
    """Index `out`'s files as they now are: the damage below is then not caught by
    tables.json but by the reader itself (as for a folder written by a faulty tool)."""
    entries = json.loads((out / "tables.json").read_text())["files"]
    write_index(out, {e["name"]: e.get("rows") for e in entries})
    return out


def study_json_broken(tmp, study, results):
    out = _copy(results, tmp / "results")
    (out / "study.json").write_text('{"name": "x", ')
    return ["report", _reindexed(out), "--no-qc"]


def study_json_not_an_object(tmp, study, results):
    out = _copy(results, tmp / "results")
    (out / "study.json").write_text("[1, 2]")
    return ["report", _reindexed(out), "--no-qc"]


def chimerism_binary(tmp, study, results):
    out = _copy(results, tmp / "results")
    (out / "chimerism.csv").write_bytes(bytes(range(256)) * 4)
    return ["report", _reindexed(out), "--no-qc"]


def chimerism_header_damaged(tmp, study, results):
    out = _copy(results, tmp / "results")
    text = (out / "chimerism.csv").read_bytes()
    (out / "chimerism.csv").write_bytes(b"\x00" + text[1:])  # "\x00atient,day,..."
    return ["report", _reindexed(out), "--no-qc"]


def report_out_is_a_file(tmp, study, results):
    (tmp / "taken").write_text("x")
    return ["report", results, "--out", tmp / "taken", "--no-qc"]


def gate_table_is_a_dangling_link(tmp, study, results):
    strategy, fcs = study / "strategy.xml", next((study / "fcs").glob("*.fcs"))
    argv = ["gate", str(strategy), str(fcs), "--out", str(tmp / "out"), "--scheduler", "serial"]
    assert run(argv) == 0
    (tmp / "out" / "warnings.csv").unlink()
    (tmp / "out" / "warnings.csv").symlink_to(tmp / "gone" / "w.csv")
    return argv


def report_is_a_dangling_link(tmp, study, results):
    out = _copy(results, tmp / "results")
    (out / "report.html").unlink(missing_ok=True)
    (out / "report.html").symlink_to(tmp / "gone" / "report.html")
    return ["report", out, "--no-qc"]


def simulate_table_is_a_folder(tmp, study, results):
    (tmp / "sim" / "manifest.csv").mkdir(parents=True)
    return ["simulate", tmp / "sim", "--patients", "1", "--events", "200", "--days", "0"]


def simulate_out_is_a_file(tmp, study, results):
    (tmp / "taken").write_text("x")
    return ["simulate", tmp / "taken", "--patients", "1", "--events", "200"]


def inspect_garbage(tmp, study, results):
    (tmp / "x.fcs").write_bytes(b"\x00\xff" * 100)
    return ["inspect", tmp / "x.fcs"]


def inspect_folder(tmp, study, results):
    return ["inspect", study]


def gate_strategy_garbage(tmp, study, results):
    (tmp / "s.xml").write_bytes(b"<?xml version='1.0'?>\n<gating:Gating-ML \xff\xfe")
    return ["gate", tmp / "s.xml", study / "fcs", "--out", tmp / "out"]


def demo_out_is_a_file(tmp, study, results):
    (tmp / "taken").write_text("x")
    return ["demo", "--out", tmp / "taken", "--no-report"]


def args(*argv):
    return lambda tmp, study, results: list(argv)


CASES: dict[str, tuple[Callable, int, str]] = {
    "analyze --out is a file": (out_is_a_file, 1, "taken: is a file, not a folder"),
    "gate: counts.csv is a folder": (table_is_a_folder, 1, "counts.csv: is a folder"),
    "analyze: chimerism.csv is a folder": (analysis_table_is_a_folder, 1, "chimerism.csv: is a"),
    "analyze: study.toml not UTF-8": (toml_not_utf8, 1, "study.toml: not UTF-8 text (byte 0xe9"),
    # a stored item that fails its checksum is computed again, and the run says so
    "analyze: garbage in the store": (store_garbage, 0, "did not match their checksums"),
    "report: study.json not JSON": (study_json_broken, 1, "study.json: not JSON"),
    "report: study.json a list": (study_json_not_an_object, 1, "study.json: not a JSON object"),
    "report: chimerism.csv binary": (chimerism_binary, 1, "chimerism.csv: not a CSV table"),
    "report: a damaged header": (chimerism_header_damaged, 1, "chimerism.csv: no column patient"),
    "report --out is a file": (report_out_is_a_file, 1, "taken: is a file, not a folder"),
    # a symbolic link into a folder that is gone, where an output goes: refused, not a bug
    "gate: warnings.csv a dangling link": (
        gate_table_is_a_dangling_link,
        1,
        "warnings.csv: is a symbolic link to",
    ),
    "report: report.html a dangling link": (
        report_is_a_dangling_link,
        1,
        "report.html: is a symbolic link to",
    ),
    "simulate: manifest.csv is a folder": (simulate_table_is_a_folder, 1, "manifest.csv: is a"),
    "simulate OUT is a file": (simulate_out_is_a_file, 1, "is not a folder"),
    "inspect garbage": (inspect_garbage, 1, "x.fcs"),
    "inspect a folder": (inspect_folder, 1, "is a directory, not a regular file"),
    "gate: strategy garbage": (gate_strategy_garbage, 1, "s.xml"),
    "demo --out is a file": (demo_out_is_a_file, 1, "taken: is a file, not a folder"),
    "no such command": (args("frobnicate"), 2, "No such command"),
    "analyze without STUDY": (args("analyze"), 2, "Missing argument"),
    "gate -j 0": (args("gate", "s.xml", "a.fcs", "--out", "o", "-j", "0"), 2, "--workers"),
    "gate --scheduler gpu": (
        args("gate", "s.xml", "a.fcs", "-o", "o", "--scheduler", "gpu"),
        2,
        "'gpu'",
    ),
    "analyze --scheduler --out": (args("analyze", "s", "--scheduler", "--out"), 2, "--scheduler"),
    "report unknown option": (args("report", "r", "--bogus"), 2, "--bogus"),
    "simulate --patients 0": (args("simulate", "x", "--patients", "0"), 2, "--patients"),
    "simulate --arm NKK": (args("simulate", "x", "--arm", "NKK"), 2, "'--arm'"),
    "simulate --preset bench": (args("simulate", "x", "--preset", "bench"), 2, "'--preset'"),
    "simulate --days 7,,14": (args("simulate", "x", "--days", "7,,14"), 2, "'--days': '7,,14'"),
    "report on a study folder": (
        lambda tmp, study, results: ["report", str(study)],
        1,
        "a study folder (it holds study.toml), not the results of one",
    ),
    "inspect --dataset text": (args("inspect", "a.fcs", "--dataset", "two"), 2, "--dataset"),
    "export-wsp: not a results folder": (
        args("export-wsp", "nowhere", "o.wsp"),
        1,
        "not an analysis output folder",
    ),
    "export-wsp --group-by day": (
        args("export-wsp", "r", "o.wsp", "--group-by", "day"),
        2,
        "'day': use one of patient, tube, none",
    ),
    "export-wsp without OUT": (args("export-wsp", "r"), 2, "Missing argument"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_error_line(case, study, results, tmp_path, capsys):
    setup, want, text = CASES[case]
    argv = [str(a) for a in setup(tmp_path, study, results)]
    capsys.readouterr()
    code = run(argv)
    err = capsys.readouterr().err
    line = check_output(code, err, allowed=(want,))
    assert text in (line if want == 2 else err), err
    if want == 2:
        assert "--help" in line  # says where the usage is


def test_a_file_as_out_is_refused_before_the_study_is_read(study, tmp_path, capsys):
    """analyze and demo say a bad --out at once: no study checked or loaded first."""
    (tmp_path / "taken").write_text("x")
    for argv in (
        ["analyze", study, "--out", tmp_path / "taken"],
        ["demo", "--out", tmp_path / "taken"],
    ):
        capsys.readouterr()
        assert run([str(a) for a in argv]) == 1
        err = capsys.readouterr().err
        assert "is a file, not a folder" in err and "checking" not in err, err


# -- --strict ---------------------------------------------------------------------------------


def test_strict_exits_3_when_files_failed(study, tmp_path, capsys):
    broken = _copy(study, tmp_path / "study")
    victim = sorted((broken / "fcs").glob("*.fcs"))[-1]
    victim.write_bytes(victim.read_bytes()[:400])  # truncated inside TEXT
    out = tmp_path / "out"
    base = ["analyze", str(broken), "--out", str(out), "--workers", "1", "--no-report"]
    code = run([*base, "--strict"])
    err = capsys.readouterr().err
    assert check_output(code, err, allowed=(3,)) is None
    assert "3 of 4 file(s) analysed, 1 failed" in err and victim.name in err
    assert run(base) == 0  # the default: finished, failures listed in failures.csv
    capsys.readouterr()
    gated = tmp_path / "gated"
    gate = ["gate", str(broken / "strategy.xml"), str(broken / "fcs"), "--out", str(gated)]
    assert run([*gate, "--scheduler", "serial", "--strict"]) == 3
    assert run([*gate, "--scheduler", "serial"]) == 0
    code = run(["gate", str(broken / "strategy.xml"), str(victim), "--out", str(gated), "--strict"])
    assert "none of the 1 file(s) could be gated" in check_output(code, capsys.readouterr().err)
    assert code == 1  # nothing gated at all is an error, --strict or not


def test_strict_with_no_failures_exits_0(results, study, capsys):
    code = run(["analyze", str(study), "--out", str(results), "-j", "1", "--no-report", "--strict"])
    assert check_output(code, capsys.readouterr().err, allowed=(0,)) is None


@pytest.mark.skipif(os.name != "posix", reason="no ulimit -f")
def test_a_file_size_limit_is_one_line_and_a_rerun_resumes(study, results, tmp_path, capsys):
    """Past ``ulimit -f`` SQLite says only "disk I/O error": once an internal error, it is
    one line naming the store and the limit; the files stored before it are kept."""
    import subprocess
    import sys

    # half the finished store: the write-ahead log passes it part-way through the batch
    limit = (results / "results.sqlite").stat().st_size // 2
    out = tmp_path / "out"
    args = ["analyze", str(study), "--out", str(out), "--workers", "1", "--no-report"]
    code = (
        "import resource, sys\n"
        "hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), hard))\n"
        "from cytokit.cli.app import run\n"
        "sys.exit(run(sys.argv[2:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(limit), *args], capture_output=True, text=True
    )
    line = check_output(done.returncode, done.stderr, allowed=(1,))
    assert line == (
        f"cytokit: error: {out / 'results.sqlite'}: SQLite could not write it (disk I/O "
        f"error): this process may write files of at most {limit:,} bytes; raise the "
        "file-size limit (ulimit -f), or choose a folder on a file system that takes larger "
        "files"
    )
    assert check_output(run(args), capsys.readouterr().err, allowed=(0,)) is None
    runs = sqlite3.connect(out / "results.sqlite").execute(
        "SELECT status, done, cached FROM runs ORDER BY id"
    )
    (first, kept, _), (second, _, cached) = runs.fetchall()
    assert (first, second) == ("failed", "finished") and cached == kept >= 1


# -- what is not a cytokit error --------------------------------------------------------------


def test_unexpected_exception_is_an_internal_error_in_one_line(monkeypatch, tmp_path, capsys):
    import cytokit.cli.inspect as inspect_cli

    def boom(path, **kw):
        raise ZeroDivisionError("float division by zero\nin a kernel")

    monkeypatch.setattr(inspect_cli, "inspect_fcs", boom)
    code = run(["inspect", str(tmp_path / "a.fcs")])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("cytokit: internal error: ZeroDivisionError: float division")
    assert "--debug" in lines[0] and "report" in lines[0]
    with pytest.raises(ZeroDivisionError):
        run(["--debug", "inspect", str(tmp_path / "a.fcs")])


@pytest.mark.parametrize(
    ("number", "fix"),
    [
        (errno.ENOSPC, "free some space"),
        (errno.EACCES, "permissions"),
        (errno.EROFS, "writable"),
        (errno.EFBIG, "raise the file-size limit (ulimit -f)"),
        (errno.EIO, "check the disk"),
    ],
)
def test_system_refusals_are_one_line_errors(number, fix, monkeypatch, tmp_path, capsys):
    import cytokit.cli.inspect as inspect_cli

    target = str(tmp_path / "out" / "counts.csv")

    def refuse(path, **kw):
        raise OSError(number, "refused by the system", target)

    monkeypatch.setattr(inspect_cli, "inspect_fcs", refuse)
    code = run(["inspect", str(tmp_path / "a.fcs")])
    line = check_output(code, capsys.readouterr().err, allowed=(1,))
    assert line == f"cytokit: error: {target}: refused by the system; " + line.split("; ", 1)[1]
    assert fix in line


def test_other_os_errors_are_internal(monkeypatch, tmp_path, capsys):
    import cytokit.cli.inspect as inspect_cli

    def missing(path, **kw):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y.npz")

    monkeypatch.setattr(inspect_cli, "inspect_fcs", missing)
    assert run(["inspect", str(tmp_path / "a.fcs")]) == 1
    assert "internal error: FileNotFoundError" in capsys.readouterr().err


# -- the fuzz: random argument lists, damaged study and results folders -----------------------
#
# Bounded for CI: every example runs in-process on four small files; analyses resume from a
# copy of the valid run's store (only damaged files are gated again); simulations are tiny;
# report figures are built from the (damaged) tables but not drawn, the drawing being
# matplotlib's work on a built figure at ~1 s a figure. A failure shows the arguments or the
# damage that caused it.

FUZZ = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PATHS = (
    "STUDY", "STUDY/fcs", "STUDY/strategy.xml", "STUDY/study.toml", "STUDY/manifest.csv",
    "FCS", "STUDY/fcs/*.fcs", "RESULTS", "RESULTS/chimerism.csv", "RESULTS/study.json",
    "new", "new/deeper", "missing.fcs", "", "-", "/dev/null",
)  # fmt: skip
VALUES = (
    "0", "1", "2", "-1", "abc", "1.5", "serial", "threads", "none", "file", "NK", "CIK",
    "benchmark", "sample", "-7,7", ",", "0,7", "x,y", "STUDY/strategy.yaml", "",
)  # fmt: skip
# per command: its arguments as a valid call would give them, its options, and bounds put
# first (no report, one process, tiny simulations) that a random option may still override
COMMANDS = {
    "inspect": (("FCS",), ("--dataset", "--keywords", "-k", "--stats", "--json"), ()),
    "gate": (
        ("STUDY/strategy.xml", "STUDY/fcs", "--out", "new"),
        ("--out", "-o", "--workers", "-j", "--scheduler", "--compensation", "--stats",
         "--no-stats", "--retry-failures", "--strict"),
        ("-j", "1", "--scheduler", "serial"),
    ),
    "analyze": (
        ("STUDY", "--out", "new"),
        ("--out", "-o", "--workers", "-j", "--scheduler", "--strict", "--no-report"),
        ("-j", "1", "--scheduler", "serial", "--no-report"),
    ),
    "report": (("RESULTS",), ("--out", "-o", "--qc", "--no-qc"), ("--no-qc",)),
    "export-anndata": (
        ("RESULTS", "new.h5ad"),
        ("--events", "--seed", "--study"),
        ("--events", "50"),
    ),
    "simulate": (
        ("new",),
        ("--preset", "--seed", "--patients", "--events", "--days", "--arm", "--no-drift",
         "--force", "--workers"),
        ("--patients", "1", "--events", "300", "--days", "0,7"),
    ),
    "export-wsp": (("RESULTS", "new.wsp"), ("--group-by", "--study"), ()),
}  # fmt: skip
OPTIONS = [*sorted({o for _, opts, _ in COMMANDS.values() for o in opts}), "--help", "-x"]
TOKENS = st.sampled_from(PATHS + VALUES + tuple(OPTIONS))


@st.composite
def argument_lists(draw) -> list[str]:
    """A valid call of a command, then tokens replaced, dropped or added, and options."""
    command = draw(st.sampled_from([*COMMANDS, "", "frobnicate"]))
    call, options, bounds = COMMANDS.get(command, ((), (), ()))
    argv = list(call)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(argv)))
        how = draw(st.sampled_from(["replace", "drop", "add"]))
        if how == "add" or at == len(argv):
            argv.insert(at, draw(TOKENS))
        elif how == "replace":
            argv[at] = draw(TOKENS)
        else:
            del argv[at]
    for _ in range(draw(st.integers(0, 2))):
        argv.append(draw(st.sampled_from(options or OPTIONS) | st.sampled_from(OPTIONS)))
        argv += draw(st.lists(st.sampled_from(VALUES + PATHS), max_size=1))
    return [*([command] if command else []), *bounds, *argv]


def _place(token: str, root: Path) -> str:
    for name in ("STUDY", "RESULTS", "FCS"):
        if token.startswith(name):
            first = sorted((root / "STUDY" / "fcs").glob("*.fcs"))[0]
            base = str(first) if name == "FCS" else str(root / name)
            return base + token[len(name) :]
    if token in ("new", "new/deeper", "missing.fcs"):
        return str(root / token)
    return token


@contextlib.contextmanager
def _workspace(study: Path, results: Path) -> Iterator[Path]:
    """A scratch folder with copies of the study and results, also the working directory
    (random relative paths land there), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="cytokit-fuzz-"))
    here = os.getcwd()
    try:
        shutil.copytree(study, root / "STUDY")
        shutil.copytree(results, root / "RESULTS")
        os.chdir(root)
        yield root
    finally:
        os.chdir(here)
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = run(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def undrawn(monkeypatch):
    """Report figures built (from the tables) but not drawn, and built in this process."""
    import matplotlib.pyplot as plt

    def encode(fig, fmt="png", *, dpi=None) -> bytes:
        plt.close(fig)
        return b""

    monkeypatch.setattr("cytokit.plots.figure_bytes", encode)
    monkeypatch.setattr("cytokit.engine._workers.default_workers", lambda: 1)


@pytest.mark.slow
@settings(max_examples=40, **FUZZ)
@given(argv=argument_lists())
def test_fuzz_argument_lists(argv, study, results, undrawn, capsys):
    with _workspace(study, results) as root:
        check_output(*_run([_place(t, root) for t in argv], capsys))


def _damage(path: Path, how: str, where: float, blob: bytes) -> None:
    """Delete, truncate or corrupt one file (`where` in [0, 1) places the damage)."""
    if how == "delete":
        path.unlink()
        return
    data = path.read_bytes()
    at = int(where * len(data))
    if how == "truncate":
        data = data[:at]
    elif how == "overwrite":
        data = data[:at] + blob + data[at + len(blob) :]
    elif how == "insert":
        data = data[:at] + blob + data[at:]
    elif how == "replace":
        data = blob
    elif how == "drop line":
        lines = data.splitlines(keepends=True)
        if lines:
            del lines[int(where * len(lines))]
        data = b"".join(lines)
    elif how == "repeat line":
        lines = data.splitlines(keepends=True)
        if lines:
            i = int(where * len(lines))
            lines.insert(i, lines[i])
        data = b"".join(lines)
    path.write_bytes(data)


DAMAGE = st.tuples(
    st.sampled_from(
        ["delete", "truncate", "overwrite", "insert", "replace", "drop line", "repeat line"]
    ),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=24)
    | st.sampled_from([b"\xff\xfe", b"\x00", b",", b'"', b"\n", b"=", b"[panel]\n", b"nan"]),
)


def _files(folder: Path) -> list[Path]:
    """The files of a folder that cytokit reads (not the simulator's ground truth)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and "truth" not in p.relative_to(folder).parts and ".truth." not in p.name
    )


@pytest.mark.slow
@settings(max_examples=12, **FUZZ)
@given(damage=st.lists(st.tuples(st.integers(0, 10**6), DAMAGE), min_size=1, max_size=3))
def test_fuzz_damaged_study_folders(damage, study, results, capsys):
    with _workspace(study, results) as root:
        files = _files(root / "STUDY")
        for which, (how, where, blob) in damage:
            path = files[which % len(files)]
            if path.exists():
                _damage(path, how, where, blob)
        out = root / "out"
        out.mkdir()
        shutil.copy(root / "RESULTS" / "results.sqlite", out)  # unchanged files resume
        argv = ["analyze", str(root / "STUDY"), "--out", str(out), *COMMANDS["analyze"][2]]
        check_output(*_run(argv, capsys))


@pytest.mark.slow
@settings(max_examples=8, **FUZZ)
@given(damage=st.lists(st.tuples(st.integers(0, 10**6), DAMAGE), min_size=1, max_size=2))
def test_fuzz_damaged_results_folders(damage, study, results, undrawn, capsys):
    with _workspace(study, results) as root:
        files = [p for p in _files(root / "RESULTS") if p.suffix != ".sqlite"]
        for which, (how, where, blob) in damage:
            path = files[which % len(files)]
            if path.exists():
                _damage(path, how, where, blob)
        argv = ["report", str(root / "RESULTS"), "--out", str(root / "report"), "--no-qc"]
        check_output(*_run(argv, capsys))
        argv = ["export-wsp", str(root / "RESULTS"), str(root / "x.wsp")]
        check_output(*_run(argv, capsys))
