"""The run log of a command: one line in its output folder's ``runlog.jsonl``
(`cytokit.engine.runlog`) for every ``analyze``, ``gate``, ``report`` and ``demo`` (and an export written into the folder) that
finishes, and for one that ends in an error or is interrupted after it wrote into the
folder (exit 1 or 130; its outputs are what it wrote before it stopped), so that every
file in the folder is one a logged run wrote. A command that stops before writing
anything, or before its inputs were checked, adds no line."""

from __future__ import annotations

import contextlib
import json
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
    """A `RunRecorder` for the body; its line is appended when the body ends, with the exit
    code the body set on it (``recorder.exit_code``, default 0); when the body raises, only
    if it got as far as its inputs and wrote into the folder, with exit code 130
    (interrupted) or 1, and the exception goes on."""
    from cytokit.cli._progress import Terminated, was_signalled
    from cytokit.engine.runlog import RunRecorder, check_appendable

    argv = list(ARGV)
    ARGV[:] = ["cytokit"]  # used once: a later call from Python is not this command line
    check_appendable(folder)  # before any work: the line is the last thing written
    recorder = RunRecorder(folder, command, argv, options=dict(options or {}), store=store)
    try:
        yield recorder
    except BaseException as exc:
        code = getattr(exc, "exit_code", 130 if isinstance(exc, KeyboardInterrupt) else 1)
        if not getattr(exc, "wrote_nothing", False):  # refused: another run holds the folder
            _log_stopped(recorder, code if isinstance(code, int) else 1)
        raise
    with _signals_held():  # the run is done: its line is written whole, whatever arrives
        if was_signalled():  # a SIGTERM whose exception was lost: the command exits 143
            recorder.finish(exit_code=Terminated.exit_code)
        else:
            recorder.finish()


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM dropped for the body: they came after the run's work was done (an
    interrupt while the line was hashed left the folder's tables without it). Where
    handlers cannot be set (not the main thread) the body runs as it is."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _log_stopped(recorder, code: int) -> None:
    """The line of a run that stopped, when it wrote or removed files in its folder (an
    interrupted run's plots, a batch that wrote its tables and then failed): without it
    those files would be ones no logged run wrote. Only a run that got as far as its
    inputs (told to the recorder once they are checked, before anything is written): the
    folder of one that stopped before may have changed under another run writing there.
    Never in the way of the error itself."""
    from cytokit.engine.runlog import snapshot

    try:
        if recorder.inputs and snapshot(recorder.folder) != recorder.before:
            recorder.finish(exit_code=code)
    except (Exception, KeyboardInterrupt):
        pass


@contextmanager
def recorded_if_inside(
    results: Path, out: Path, command: str, options: dict, study: Path | None = None
) -> Iterator:
    """`recorded` in `results` for an export whose `out` lies inside that folder, so that
    the file it writes there is one a logged run wrote (`cytokit verify` stays clean);
    nothing is logged for an export written elsewhere. Its inputs are the results' index
    and the study the export gates again (`study`, else the one ``study.json`` names):
    its FCS files, strategy and settings, so that `cytokit verify` sees them change."""
    folder = Path(results).resolve()
    if folder not in Path(out).resolve().parents:
        yield None
        return
    with recorded(results, command, options=options) as log:
        index = Path(results) / "tables.json"
        log.add_inputs("results", [index] if index.is_file() else [])
        with contextlib.suppress(Exception):  # an unreadable study is the export's to say
            from cytokit.study import load_study

            root = study or json.loads((Path(results) / "study.json").read_text())["root"]
            log.add_study(load_study(root, check_files=False))
        yield log
