"""Text from files made safe for a terminal.

FCS keywords (``$PnN``, ``$FIL``...), file names and the messages quoting them
are written by instruments and people; a carriage return, an ANSI or OSC
escape sequence or a bidirectional override in them would move the cursor,
retitle the window, hide text or plant a link when printed raw. `printable`
writes every such character as its Python escape (``\\r``, ``\\x1b``,
``\\u202e``) instead, so it is visible and inert.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import typer

__all__ = ["FILES_SHOWN", "echo_warnings", "file_size", "printable"]

#: Files whose warnings a batch command prints; the others are counted.
FILES_SHOWN = 10


def _escape(ch: str) -> str:
    return ch.encode("unicode_escape").decode("ascii")


def printable(text: object, *, newlines: bool = False) -> str:
    """`text` with every control or format character escaped.

    Parameters
    ----------
    text : object
        Converted with ``str``.
    newlines : bool
        Keep line feeds (for messages that are several lines by design).

    Returns
    -------
    str
    """
    text = str(text)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(
        ch
        if (ch == "\n" and newlines)
        or (ch == " ")
        or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")
        else _escape(ch)
        for ch in text
    )


def echo_warnings(notes: Mapping[str, Sequence[str]], table: Path, n_files: int) -> None:
    """Print, on stderr, each file's warnings once and a summary line.

    Parameters
    ----------
    notes : mapping of str to sequence of str
        The warnings of each file that has some (file as the user named it).
    table : Path
        Where every warning is listed (``warnings.csv``, ``samples.csv``).
    n_files : int
        Files in the batch, for the summary.
    """
    if not notes:
        return
    for file, found in list(notes.items())[:FILES_SHOWN]:
        typer.echo(printable(f"cytokit: warning: {file}: {'; '.join(found)}"), err=True)
    more = len(notes) - FILES_SHOWN
    fallbacks = sum(any("used its fixed fallback" in w for w in found) for found in notes.values())
    why = f"; an adaptive gate used its fixed fallback in {fallbacks}" if fallbacks else ""
    typer.echo(
        printable(
            f"warnings about {len(notes)} of {n_files} file(s){why}"
            + (f" ({more} not shown above)" if more > 0 else "")
            + f"; every one is listed in {table}"
        ),
        err=True,
    )


def file_size(path: Path) -> str:
    """`path`'s size for a message: ``"2.4 MB"``, or ``"38 kB"`` under 0.1 MB (a small
    report or export reads ``"0.0 MB"`` otherwise)."""
    size = path.stat().st_size
    if size < 100_000:
        return f"{max(1, round(size / 1e3)) if size else 0} kB"
    return f"{size / 1e6:.1f} MB"
