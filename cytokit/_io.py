"""Small file helpers: every output is written atomically (temporary file, then rename),
with the permissions the umask allows (as `open` gives).

Every CSV cytokit writes is safe to open in a spreadsheet: a text cell that a
spreadsheet would run as a formula (one starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: the OWASP "CSV injection" rule) is written
with a single quote in front (`neutralise_cell`); numbers, and text that is a
plain decimal number such as ``-7``, are written as they are. Reading a
cytokit CSV back, `restore_cell` removes exactly the quotes `neutralise_cell`
added, so the round trip gives the raw value. To keep that exact, a value
that itself starts with quotes followed by one of those characters (``'=x``)
gets one more quote. JSON and the results store keep raw values.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cytokit.errors import OutputError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "create_temporary",
    "csv_bytes",
    "destination",
    "frame_csv",
    "neutralise_cell",
    "neutralise_frame",
    "remove_temporaries",
    "replace_together",
    "replaced",
    "restore_cell",
    "restore_frame",
    "stat_key",
    "write_csv",
    "write_if_changed",
]

#: Leading characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_CHARS = "=+-@\t\r"
_NEUTRALISE = re.compile(f"'*[{re.escape(FORMULA_CHARS)}]")  # the danger, or quotes before it
_NEUTRALISED = re.compile(f"'+[{re.escape(FORMULA_CHARS)}]")  # a cell a quote was added to
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new, empty file in `folder` for writing, mode 0o666 less the umask (as `open` makes).

    ``tempfile.mkstemp`` would make it 0o600 whatever the umask, and the rename
    would keep that: colleagues sharing the output folder could not open a
    table or the report.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # the name cut so that the temporary's stays within 255 bytes (a 244-byte name
        # was refused as "File name too long", blaming the user's name)
        short = name.encode("utf-8")[:200].decode("utf-8", "ignore")
        tmp = os.path.join(folder, f".{short}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
    raise FileExistsError(f"{folder}: cannot create a temporary file for {name}")


_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


#: A temporary file not written to for this long is a killed writer's (one being written
#: has a fresh modification time, and is renamed as soon as it is whole).
STALE_SECONDS = 10.0


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files `atomic_write_bytes` left in `folder` and below it when
    its process was killed before the rename (``kill -9``, a power cut); return them.

    Call it only while holding the folder (`cytokit._outdir.writing_into`); a temporary
    written to in the last `STALE_SECONDS` is kept (an export writing into the folder
    does not hold it).
    """
    gone = []
    now = time.time()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if _TEMPORARY.fullmatch(name):
                path = Path(root, name)
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > STALE_SECONDS:
                        path.unlink()
                        gone.append(path)
    return gone


def stat_key(st: os.stat_result) -> list[int]:
    """What says a file is unchanged since it was last read: its size, modification and
    change times and inode (a rewrite that puts the modification time back, ``touch -r``,
    still changes the change time)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def replaced(path: str | Path) -> tuple[Path, int | None]:
    """Where a file written in place of `path` goes, and the permissions it keeps: a
    symbolic link's target (the link stays one), and the mode of the file there (None:
    none yet, the umask's)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        return path, path.stat().st_mode & 0o7777
    except OSError:
        return path, None


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part.

    A new file gets the mode a plain ``open(path, "w")`` would give it (0o666
    less the umask); a file replaced keeps its own (a 0o600 file of patient data
    stays private), and a symbolic link stays one, its target rewritten. With
    `durable` (the default) the data reach the disk before the
    file replaces the old one; without, a crash may lose them (for files checked and
    written again on the next run, such as the report's figures, whose manifest holds
    their SHA-256: an fsync each cost a 1,000-sample report seconds).
    """
    named = Path(path)
    path, mode = destination(named)
    try:
        fd, tmp = create_temporary(path.parent, path.name)
    except OSError as exc:
        raise _about_target(exc, named) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _about_target(exc, named) from None
        raise
    return path


def destination(named: Path) -> tuple[Path, int | None]:
    """Where a file written in place of `named` goes and the mode it keeps (`replaced`),
    with `named`'s folder made; a dangling link into a folder that does not exist is an
    error naming the link (no folders are made at its target)."""
    path, mode = replaced(named)
    named.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.is_dir():
        raise OutputError(
            f"{named}: is a symbolic link to {path}, whose folder does not exist; make the "
            "folder or remove the link"
        )
    return path, mode


def replace_together(files: Mapping[Path, bytes | None]) -> None:
    """Write each of `files` (None: remove it) so that a stop part-way leaves them all as
    they were: tables that describe one another (counts and failures) are never a mix
    of two runs.

    Every file is first written whole to a temporary file beside it (and to disk);
    only once all are there are they renamed into place, one after the other, and the
    removals made. A full disk or a kill while writing leaves the old files; only a
    kill within the renames, microseconds, can split them.
    """
    staged: list[tuple[str, Path, Path]] = []
    try:
        for named, data in files.items():
            if data is None:
                continue
            path, mode = destination(Path(named))
            try:
                fd, tmp = create_temporary(path.parent, path.name)
            except OSError as exc:
                raise _about_target(exc, named) from None
            staged.append((tmp, path, Path(named)))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                if mode is not None:
                    os.chmod(tmp, mode)
            except OSError as exc:
                raise _about_target(exc, named) from None
    except BaseException:
        for tmp, _, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    for i, (tmp, path, named) in enumerate(staged):
        try:
            os.replace(tmp, path)
        except OSError as exc:
            for left, _, _ in staged[i:]:
                Path(left).unlink(missing_ok=True)
            raise _about_target(exc, named) from None
    for named, data in files.items():
        if data is None:
            Path(named).unlink(missing_ok=True)


def _about_target(exc: OSError, target: str | Path) -> OSError:
    """`exc` naming `target`, the file being written, instead of the hidden temporary file
    it is written through or no file at all (a full disk's error names none): the user
    knows the one, not the other."""
    if exc.errno is None:
        return exc
    out = type(exc)(exc.errno, exc.strerror, str(target))
    out.__cause__ = exc.__cause__
    return out


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_if_changed(path: str | Path, data: bytes, *, durable: bool = True) -> bool:
    """`atomic_write_bytes` unless `path` holds exactly `data` already (a rebuild that changed
    nothing leaves the file, and its time, as it was); True when it wrote."""
    path = Path(path)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data, durable=durable)
    return True


def neutralise_cell(value):
    """`value` as a CSV cell that no spreadsheet runs as a formula.

    A string starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
    (after any leading single quotes) gets a single quote in front, unless it
    is a plain decimal number (``-7``, ``+1.5e3``), which no spreadsheet runs.
    Anything else, numbers included, is returned unchanged.
    """
    if isinstance(value, str) and _NEUTRALISE.match(value) and not _DECIMAL.fullmatch(value):
        return "'" + value
    return value


def restore_cell(value):
    """The raw value of a cell `neutralise_cell` wrote: the quote it added removed.

    Only a string of one or more single quotes followed by ``=``, ``+``,
    ``-``, ``@``, tab or carriage return loses its first quote; any other
    value, a negative number stored as text included, is returned unchanged.
    """
    if isinstance(value, str) and _NEUTRALISED.match(value):
        return value[1:]
    return value


def _text_columns(frame) -> list[int]:
    return [
        i
        for i, dtype in enumerate(frame.dtypes)
        if dtype.kind == "O" or getattr(dtype, "name", "") == "string"
    ]


def _map_frame(frame, cell, touches=None):
    """`frame` with `cell` applied to its text cells, column names and index; `touches`, if
    given, tells whether a text value may change (columns with none are kept as they are:
    a restored table is mostly text that never began with a quote)."""
    out = frame.copy(deep=touches is None)
    for i in _text_columns(out):
        column = out.iloc[:, i]
        if touches is not None and not any(map(touches, column.to_numpy())):
            continue
        out.isetitem(i, column.map(cell, na_action="ignore"))
    out.columns = out.columns.map(cell)
    if out.index.dtype.kind == "O":
        out.index = out.index.map(cell)
    if out.index.name is not None:
        out.index.name = cell(out.index.name)
    return out


def neutralise_frame(frame):
    """A copy of DataFrame `frame` ready for ``to_csv``: `neutralise_cell` on every text
    cell, column name and index label; numeric columns untouched."""
    return _map_frame(frame, neutralise_cell)


def restore_frame(frame):
    """The inverse of `neutralise_frame` on a frame read from a cytokit CSV (`restore_cell`)."""
    return _map_frame(frame, restore_cell, _quoted)


def _quoted(value) -> bool:
    """Whether `restore_cell` may change `value`: a string that starts with a quote."""
    return isinstance(value, str) and value[:1] == "'"


def _lf_rows(text: str) -> str:
    """CSV text written with CRLF row ends, with LF row ends instead.

    The csv writers quote a cell holding a line break only if the break is in
    their line terminator, so tables are written with CRLF (a cell holding a
    lone carriage return would otherwise be left bare and start a new row in a
    spreadsheet) and the row ends are then rewritten. Outside quotes, a CRLF
    can only be a row end: no bare cell holds a quote or a line break.
    """
    parts = text.split('"')
    parts[::2] = [p.replace("\r\n", "\n") for p in parts[::2]]
    return '"'.join(parts)


def frame_csv(frame, *, index: bool = False, float_format: str | None = None) -> str:
    """DataFrame `frame` as CSV text: cells neutralised (`neutralise_frame`), LF row ends."""
    text = neutralise_frame(frame).to_csv(
        index=index, float_format=float_format, lineterminator="\r\n"
    )
    return _lf_rows(text)


def write_csv(
    path: str | Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]
) -> Path:
    """Write `rows` (mappings) as CSV with exactly `columns`, atomically.

    Text cells and column names are neutralised (`neutralise_cell`); None is an empty cell.
    """
    return atomic_write_bytes(path, csv_bytes(rows, columns))


def csv_bytes(rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> bytes:
    """The bytes `write_csv` writes."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([neutralise_cell(c) for c in columns])
    writer = csv.DictWriter(
        buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n"
    )
    for row in rows:
        writer.writerow({k: ("" if v is None else neutralise_cell(v)) for k, v in row.items()})
    return _lf_rows(buf.getvalue()).encode("utf-8")
