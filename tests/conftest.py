"""Accounting of the tests that check against external truth (the reference corpus).

Tests that read the external reference corpus (``../shared/corpus`` beside the
repository: the Gating-ML compliance suite, FCS files of many instruments,
FlowJo workspaces with FlowJo's counts) carry the ``corpus`` marker and skip,
saying which file is missing, when it is absent. So that a green run cannot
silently contain no external check at all:

* the terminal summary says ``corpus: N tests ran, M skipped``;
* a test that skips for a missing corpus file without the marker is counted
  too, and named in the summary (give it the marker);
* under ``CI=true`` (any of 1, true, yes) a missing corpus is an error: the
  session stops before running anything when corpus tests are selected and
  the corpus folder is absent, and fails at the end when corpus tests were
  selected but none of them ran. (Single missing files only skip: this copy
  of the corpus leaves out files its catalogue lists, see its MANIFEST.md.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
MARKER = "corpus"


def in_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}: needs ../shared/corpus (external truth)")
    config.pluginmanager.register(CorpusAccount(config), "cytokit-corpus-account")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def _for_corpus(reason: str) -> bool:
    """A skip reason that says the corpus (or a file of it) is missing."""
    text = reason.lower()
    return MARKER in text or str(CORPUS).lower() in text


class CorpusAccount:
    """Counts corpus tests that ran and were skipped; enforces the corpus under CI."""

    def __init__(self, config):
        self.config = config
        self.ran: set[str] = set()
        self.skipped: dict[str, str] = {}  # marked tests: node id -> skip reason
        self.unmarked: dict[str, str] = {}  # skipped for the corpus, not marked
        self.stopped = False  # stopped before running: the corpus is missing (CI)

    def pytest_collection_finish(self, session):
        if self.config.option.collectonly or not in_ci() or CORPUS.is_dir():
            return
        wanted = [item for item in session.items if item.get_closest_marker(MARKER)]
        if wanted:
            self.stopped = True
            pytest.exit(
                f"CI=true but the reference corpus is missing: {CORPUS} does not exist, so "
                f"the {len(wanted)} selected corpus test(s) would all skip and this run would "
                "contain no external check. Put the corpus there (the shared corpus folder "
                "beside the repository), or run without CI=true to let them skip.",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )

    def pytest_runtest_logreport(self, report):
        marked = MARKER in report.keywords
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _skip_reason(report)
            if marked:
                self.skipped[report.nodeid] = reason
            elif _for_corpus(reason):
                self.unmarked[report.nodeid] = reason
        elif marked and (report.when == "call" or report.failed):
            self.ran.add(report.nodeid)

    def none_ran(self) -> bool:
        """Corpus tests were selected, and every one of them skipped."""
        return not self.ran and bool(self.skipped or self.unmarked)

    def pytest_sessionfinish(self, session, exitstatus):
        if in_ci() and self.none_ran() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        if config.option.collectonly or self.stopped:
            return
        tr = terminalreporter
        ran, skipped = len(self.ran), len(self.skipped) + len(self.unmarked)
        tr.write_line(f"corpus: {ran} tests ran, {skipped} skipped")
        if self.unmarked:
            tr.write_line(
                f"corpus: {len(self.unmarked)} test(s) skipped for the corpus without the "
                f"'{MARKER}' marker (add @pytest.mark.{MARKER}):"
            )
            for nodeid in sorted(self.unmarked)[:20]:
                tr.write_line(f"  {nodeid}")
        if in_ci() and self.none_ran():
            nodeid, reason = min({**self.skipped, **self.unmarked}.items())
            tr.write_line(
                f"corpus: CI=true and not one corpus test ran (first skipped: {nodeid}: "
                f"{reason}); the run fails: restore the corpus at {CORPUS}",
                red=True,
            )
