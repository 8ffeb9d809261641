"""Small file helpers: every output is written atomically (temporary file, then rename),
with the permissions the umask allows (as `open` gives)."""

from __future__ import annotations

import csv
import io
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_csv"]


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new, empty file in `folder` for writing, mode 0o666 less the umask (as `open` makes).

    ``tempfile.mkstemp`` would make it 0o600 whatever the umask, and the rename
    would keep that: colleagues sharing the output folder could not open a
    table or the report.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
    raise FileExistsError(f"{folder}: cannot create a temporary file for {name}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666
    less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_csv(
    path: str | Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]
) -> Path:
    """Write `rows` (mappings) as CSV with exactly `columns`, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())
