"""The progress bar of a batch command, and what it says when interrupted."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a batch scheduler's or a container's stop): the run
    stops as on Ctrl-C (the pool shut down, the stopped run logged, the resume hint),
    with exit code 143 (128 + SIGTERM)."""

    exit_code = 128 + signal.SIGTERM


#: A SIGTERM the command line's handler saw (`cytokit.cli.app`): its exception can be
#: lost, raised where Python ignores exceptions (a callback of the kernel compiler), so
#: the next progress tick raises it again and the run stops as Ctrl-C stops it.
_SIGNALLED = {"term": False}


def signalled(value: bool = True) -> None:
    """Record (or clear) a SIGTERM for the progress callbacks to act on."""
    _SIGNALLED["term"] = value


def was_signalled() -> bool:
    """Whether a SIGTERM came during this command (`signalled`)."""
    return bool(_SIGNALLED["term"])


def _stop_if_signalled() -> None:
    if _SIGNALLED["term"]:
        raise Terminated


def _quiet_pool_race(previous):
    """A thread excepthook that drops the one error a process pool's manager thread raises
    when Ctrl-C cancels its jobs while it marks them broken (an ``InvalidStateError`` on a
    cancelled future, from the standard library): the interruption is said in one line."""
    from concurrent.futures import InvalidStateError

    def hook(args) -> None:
        if isinstance(args.exc_value, InvalidStateError):
            return
        previous(args)

    return hook


@contextmanager
def batch_progress(n_files: int, out: Path) -> Iterator[Callable[..., None]]:
    """A "gating" bar on stderr over `n_files`; yields the ``progress`` callback for a batch.

    On Ctrl-C it says that finished files are kept in ``out/results.sqlite``
    and how to resume, then lets the interrupt go on. After the bar, one line
    names the files whose stored result was damaged and computed again
    (progress status ``"recomputed"``).
    """
    recomputed: list[str] = []

    def tick(bar, done: int, total: int, path: str, status: str) -> None:
        _stop_if_signalled()
        if status == "recomputed":
            recomputed.append(path)
        bar.update(1)

    previous = threading.excepthook
    threading.excepthook = _quiet_pool_race(previous)
    with typer.progressbar(length=n_files, label="gating", file=sys.stderr, show_pos=True) as bar:
        try:
            yield lambda *args: tick(bar, *args)
        except KeyboardInterrupt:
            # the hook stays: a process pool's manager thread may still be winding down
            typer.echo(
                f"\nfiles finished so far are kept in {out / 'results.sqlite'}; run the same "
                "command again to resume",
                err=True,
            )
            raise
    threading.excepthook = previous
    if recomputed:
        more = f" and {len(recomputed) - 1} more" if len(recomputed) > 1 else ""
        typer.echo(
            f"cytokit: warning: {len(recomputed)} stored result(s) in "
            f"{out / 'results.sqlite'} did not match their checksums (the store was changed on "
            f"disk) and were computed again: {recomputed[0]}{more}",
            err=True,
        )


def compile_notice(*, statistics: bool = False, acquisition_qc: bool = False) -> None:
    """Say so when this run will compile Numba kernels (the first run of an installation,
    or the first to need the statistics pass or acquisition QC): `analyze`, `demo` and
    `gate` are otherwise silent for that while."""
    from cytokit.analysis.run import kernels_need_compiling

    if kernels_need_compiling(statistics=statistics, acquisition_qc=acquisition_qc):
        typer.echo(
            "compiling the kernels this run needs, once per installation (about 6-10 s on 2 "
            "cores; later runs load them from the cache)",
            err=True,
        )


def again_progress(heading: str) -> Callable[[int, int, str], None]:
    """The ``progress`` callback of an export that gates a results folder's files again:
    `heading` once, when the first file starts (a refused folder prints nothing of it),
    then one line per file on stderr."""
    from cytokit.cli._text import printable

    def tick(done: int, total: int, file: str) -> None:
        _stop_if_signalled()
        if done == 0:
            typer.echo(printable(heading), err=True)
        typer.echo(printable(f"  [{done + 1}/{total}] {file}"), err=True)

    return tick
