"""The progress bar of a batch command, and what it says when interrupted."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer


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
        if status == "recomputed":
            recomputed.append(path)
        bar.update(1)

    with typer.progressbar(length=n_files, label="gating", file=sys.stderr, show_pos=True) as bar:
        try:
            yield lambda *args: tick(bar, *args)
        except KeyboardInterrupt:
            typer.echo(
                f"\nfiles finished so far are kept in {out / 'results.sqlite'}; run the same "
                "command again to resume",
                err=True,
            )
            raise
    if recomputed:
        more = f" and {len(recomputed) - 1} more" if len(recomputed) > 1 else ""
        typer.echo(
            f"cytokit: warning: {len(recomputed)} stored result(s) in "
            f"{out / 'results.sqlite'} did not match their checksums (the store was changed on "
            f"disk) and were computed again: {recomputed[0]}{more}",
            err=True,
        )
