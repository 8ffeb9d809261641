"""The run log of a command: one line in its output folder's ``runlog.jsonl``
(`cytokit.engine.runlog`) for every ``analyze``, ``gate``, ``report`` and ``demo`` that
finishes. A command that ends in an error (exit 1) adds no line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The command line being run, set by `cytokit.cli.app.run` (``argv[0]`` is ``cytokit``).
ARGV: list[str] = ["cytokit"]


def set_argv(args: list[str]) -> None:
    ARGV[:] = ["cytokit", *args]


@contextmanager
def recorded(
    folder: Path, command: str, *, store: Path | None = None, options: dict | None = None
) -> Iterator:
    """A `RunRecorder` for the body; its line is appended when the body ends without an
    error, with the exit code the body set on it (``recorder.exit_code``, default 0)."""
    from cytokit.engine.runlog import RunRecorder

    argv = list(ARGV)
    ARGV[:] = ["cytokit"]  # used once: a later call from Python is not this command line
    recorder = RunRecorder(folder, command, argv, options=dict(options or {}), store=store)
    yield recorder
    recorder.finish()
