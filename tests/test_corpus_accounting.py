"""The corpus accounting of ``tests/conftest.py``, run on a small suite of its own.

Each case lays out ``repo/tests/`` (this conftest and a few tests) and, or not,
``shared/corpus`` beside ``repo``, and runs pytest on it in a subprocess, with
and without ``CI=true``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

SUITE = """
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def need(name):
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not found in {CORPUS}")
    return path


@pytest.mark.corpus
def test_reads_the_corpus():
    assert need("truth.txt").read_text() == "42"


@pytest.mark.corpus
def test_uses_nothing_of_it():
    assert True


def test_plain():
    assert True


def test_plain_skip():
    pytest.skip("flowkit is not installed")
"""

UNMARKED = """
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def test_forgot_the_marker():
    if not (CORPUS / "truth.txt").exists():
        pytest.skip(f"corpus not found at {CORPUS}")
"""


def _layout(root: Path, *, corpus: bool, unmarked: bool = False) -> Path:
    tests = root / "repo" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "test_suite.py").write_text(SUITE)
    if unmarked:
        (tests / "test_unmarked.py").write_text(UNMARKED)
    if corpus:
        (root / "shared" / "corpus").mkdir(parents=True)
        (root / "shared" / "corpus" / "truth.txt").write_text("42")
    return tests


def _run(pytester, monkeypatch, tests: Path, ci: bool, *args: str):
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    return pytester.runpytest_subprocess(str(tests), "-p", "no:cacheprovider", *args)


def test_summary_counts_corpus_tests_that_ran(pytester, monkeypatch):
    tests = _layout(pytester.path, corpus=True)
    result = _run(pytester, monkeypatch, tests, ci=True)
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["corpus: 2 tests ran, 0 skipped"])
    assert result.ret == 0


def test_without_the_corpus_they_skip_and_say_so(pytester, monkeypatch):
    tests = _layout(pytester.path, corpus=False)
    result = _run(pytester, monkeypatch, tests, ci=False)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["corpus: 1 tests ran, 1 skipped"])
    assert result.ret == 0


def test_under_ci_a_missing_corpus_is_an_error(pytester, monkeypatch):
    tests = _layout(pytester.path, corpus=False)
    result = _run(pytester, monkeypatch, tests, ci=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert "CI=true but the reference corpus is missing" in out
    assert str(pytester.path / "shared" / "corpus") in out
    assert "passed" not in result.stdout.str()  # nothing ran
    # selecting no corpus test needs no corpus
    result = _run(pytester, monkeypatch, tests, True, "-m", "not corpus")
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 0


def test_under_ci_a_run_where_no_corpus_test_ran_fails(pytester, monkeypatch):
    """An emptied corpus folder: the corpus tests selected all skip, and under CI the
    run fails; a single missing file only skips (and is counted)."""
    tests = _layout(pytester.path, corpus=True)
    (pytester.path / "shared" / "corpus" / "truth.txt").unlink()
    result = _run(pytester, monkeypatch, tests, True, "-k", "reads_the_corpus or plain")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        ["corpus: 0 tests ran, 1 skipped", "corpus: CI=true and not one corpus test ran*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _run(pytester, monkeypatch, tests, False, "-k", "reads_the_corpus").ret == 0
    result = _run(pytester, monkeypatch, tests, ci=True)
    result.stdout.fnmatch_lines(["corpus: 1 tests ran, 1 skipped"])
    assert result.ret == 0


def test_an_unmarked_corpus_test_is_counted_and_named(pytester, monkeypatch):
    tests = _layout(pytester.path, corpus=False, unmarked=True)
    result = _run(pytester, monkeypatch, tests, ci=False)
    result.stdout.fnmatch_lines(
        [
            "corpus: 1 tests ran, 2 skipped",
            "corpus: 1 test(s) skipped for the corpus without the 'corpus' marker*",
            "*test_unmarked.py::test_forgot_the_marker",
        ]
    )
