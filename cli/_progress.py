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
    and how to resume, then lets the interrupt go on.
    """
    with typer.progressbar(length=n_files, label="gating", file=sys.stderr, show_pos=True) as bar:
        try:
            yield lambda *_: bar.update(1)
        except KeyboardInterrupt:
            typer.echo(
                f"\nfiles finished so far are kept in {out / 'results.sqlite'}; run the same "
                "command again to resume",
                err=True,
            )
            raise
