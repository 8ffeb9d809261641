"""What cytokit agrees to open, and where a study may read.

Two rules guard the files cytokit reads:

* **Only regular files are opened.** ``open()`` on a FIFO waits for a writer
  (forever, in practice), a character device such as ``/dev/zero`` never
  ends and a socket cannot be read at all. `open_regular` opens without
  blocking, looks at what it opened and refuses anything but a regular file
  before reading a byte. This holds for every path, including those typed on
  the command line.
* **A study reads only inside its own folders.** Every path a study names (a
  manifest row, ``[gating] strategy``, ``[compensation] source``, the study's
  own tables) must resolve, symbolic links followed, inside the study folder
  or a folder listed in ``[study] data_roots``; `outside` finds those that do
  not, so they are refused without being opened. A study folder received from
  elsewhere can then not make cytokit read, and echo into its tables and
  report, a file such as ``/etc/passwd``.

`describe_start` says what the first bytes of a file look like without
repeating them, for messages about files that are not what they should be.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ROOTS_RULE",
    "NotRegularFileError",
    "describe_start",
    "loops",
    "open_regular",
    "outside",
    "refusal",
    "special_kind",
    "study_roots",
]

#: The rule a refused study path breaks, as messages state it.
ROOTS_RULE = (
    "a study reads only files inside its folder or a folder listed in [study] data_roots "
    "of study.toml"
)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
# magic numbers of files often picked by mistake; named, never shown
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (.zip, .xlsx, .docx...)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\0", "an SQLite database"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x89PNG", "a PNG image"),
)


class NotRegularFileError(OSError):
    """A path names a FIFO, device, socket or directory where a file was expected.

    ``strerror`` says which (e.g. "a FIFO (named pipe), not a regular file").
    """


def special_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)"...), None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def open_regular(path: str | os.PathLike, mode: str = "rb", **kwargs):
    """Open a regular file for reading, refusing FIFOs, devices, sockets and directories.

    The file is opened with ``O_NONBLOCK``, so opening a FIFO returns at once
    instead of waiting for a writer; it is then checked with ``fstat`` (the
    object opened, not a name that may have been swapped) and closed again
    unless it is a regular file.

    Parameters
    ----------
    path : path
    mode : str
        A reading mode of `open` ("rb", "r").
    **kwargs
        Passed to `os.fdopen` (``buffering``, ``encoding``, ``newline``...).

    Returns
    -------
    file object

    Raises
    ------
    NotRegularFileError
        `path` is not a regular file; ``strerror`` names what it is.
    OSError
        It cannot be opened (missing, permission denied...).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFileError(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)  # a regular file ignores it; leave no surprise behind
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def outside(path: str | os.PathLike, roots: Sequence[Path]) -> Path | None:
    """Where `path` really leads when that is outside every folder of `roots`, else None.

    Parameters
    ----------
    path : path
        Relative paths count from the current directory; symbolic links are
        followed (``Path.resolve``), ``..`` is resolved after them.
    roots : sequence of Path
        Resolved folders (`Path.resolve`); `path` may lie anywhere below one.

    Returns
    -------
    Path or None
        The resolved path when it lies outside all of `roots`.
    """
    real = _real(path)
    if any(real.is_relative_to(root) for root in roots):
        return None
    return real


def _real(path: str | os.PathLike) -> Path:
    """`Path.resolve` that never raises: a loop of symbolic links is left as far as it
    resolves (``Path.resolve`` raises RuntimeError there before Python 3.13)."""
    return Path(os.path.realpath(path))


def loops(path: str | os.PathLike) -> bool:
    """Whether following `path`'s symbolic links goes round in a loop (never reaching a
    file): ``a.fcs -> b.fcs -> a.fcs``, or a loop among its folders."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def study_roots(
    folder: Path, entries: Sequence[str], where: str
) -> tuple[tuple[Path, ...], list[str]]:
    """The resolved folders a study may read in: its own, then its ``data_roots``.

    Parameters
    ----------
    folder : Path
        The study folder.
    entries : sequence of str
        ``[study] data_roots``: absolute, ``~/``, or relative to `folder`.
    where : str
        Starts each problem (e.g. "study.toml: [study] data_roots").

    Returns
    -------
    roots : tuple of Path
    problems : list of str
        One per entry that is not an existing folder (it is left out).
    """
    roots = [_real(folder)]
    problems = []
    for entry in entries:
        real = _real(folder / Path(entry).expanduser())
        if real.is_dir():
            roots.append(real)
        else:
            problems.append(f"{where} entry {entry!r} is not a folder (looked for {real})")
    return tuple(roots), problems


def refusal(path: Path, roots: Sequence[Path]) -> str | None:
    """Why a study may not read `path` (a phrase to follow the path), None when it may.

    A path that leads outside `roots` (`study_roots`) is refused whether or not
    it exists, and one that is not a regular file (a FIFO, a device...) or a loop of
    symbolic links too. A
    missing file inside is left to the caller, which knows what it is for.
    """
    if loops(path):  # checked first: where a loop "resolves to" means nothing
        return (
            "is a loop of symbolic links (following them never reaches a file); name the "
            "file itself"
        )
    real = outside(path, roots)
    if real is not None:
        where = "the study folder" + (" and its data_roots" if len(roots) > 1 else "")
        return f"resolves to {real}, outside {where}; {ROOTS_RULE}"
    try:
        kind = special_kind(Path(path).stat().st_mode)
    except OSError:
        return None
    return None if kind is None else f"is {kind}, not a regular file; name the file itself"


def describe_start(raw: bytes) -> str:
    """What the bytes `raw` (the start of a file) look like, without repeating them.

    Returns a phrase such as "text", "binary data" or "a ZIP archive (.zip,
    .xlsx, .docx...)", for messages like "it starts with text, not 'FCS'":
    a message about a file that is not what it was expected to be must not
    copy the file's bytes (it may be any file on the machine).
    """
    if not raw:
        return "nothing"
    for magic, name in _MAGIC:
        if raw.startswith(magic):
            return name
    text = None
    for cut in range(4):  # the read may end inside a multi-byte character
        try:
            text = raw[: len(raw) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        if text.lstrip().startswith("<"):
            return "text that looks like XML or HTML"
        return "text"
    return "binary data"
