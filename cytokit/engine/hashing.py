"""What identifies a file and a stored row: content hashes, stat stamps, row checksums.

`cytokit.engine.store` keys results by a file's content hash (`file_hash`) and
caches that hash by the file's stat (`FileInfo`); its rows carry checksums
(`row_checksum`) verified on every read. `cytokit.engine._workers` compares a
file's `file_stamp` before and after reading it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

__all__ = ["RACY_NS", "FileInfo", "file_hash", "file_stamp", "row_checksum"]

_BLOCK = 1 << 20
#: A stat taken less than this long (ns) after the file last changed may miss a write: file
#: times tick coarsely (a jiffy; 2 s on FAT), so a write just after the stat can leave them
#: as they were. A hash cache entry that young is not used (the file is hashed again).
RACY_NS = 2_000_000_000


def row_checksum(*fields: str | bytes | int | None) -> str:
    """SHA-256 (hex) of a row's `fields`, each typed and length-prefixed.

    The prefix makes the encoding unambiguous: no two different rows (say
    ``("ab", "c")`` and ``("a", "bc")``) feed the hash the same bytes.
    """
    h = hashlib.sha256()
    for value in fields:
        if value is None:
            tag, data = b"n", b""
        elif isinstance(value, bytes):
            tag, data = b"b", value
        elif isinstance(value, str):
            tag, data = b"s", value.encode("utf-8")
        elif isinstance(value, int):
            tag, data = b"i", str(value).encode("ascii")
        else:
            raise TypeError(f"row_checksum takes str, bytes, int or None, not {type(value)}")
        h.update(tag + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _int64(value: int) -> int:
    """`value` (an unsigned 64-bit inode or device number) as SQLite's signed INTEGER."""
    return value - (1 << 64) if value >= 1 << 63 else value


def file_stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """``(size, mtime_ns, ctime_ns, inode)``: what changes when a file is written or replaced.

    Workers compare it before and after reading a file. The device is left
    out: a Dask worker mounting the same file system sees another device number.
    """
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, _int64(st.st_ino))


@dataclass(frozen=True)
class FileInfo:
    """A file as the store knows it: where, its stat when hashed, and its content hash.

    Attributes
    ----------
    path : str
    size, mtime_ns, ctime_ns, inode, device : int
        From ``os.stat`` (inode and device as signed 64-bit integers). The
        ctime cannot be set by a user: it moves on any write, ``touch -r``
        and ``os.utime`` included, so it tells a rewritten file whose mtime
        was put back.
    hash : str
        SHA-256 of the content.
    seen_ns : int
        Wall-clock time (ns) just before the stat was taken.
    """

    path: str
    size: int
    mtime_ns: int
    hash: str
    ctime_ns: int = 0
    inode: int = 0
    device: int = 0
    seen_ns: int = 0

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, hash: str, seen_ns: int) -> FileInfo:
        """The info of `path` hashed to `hash` with stat `st` taken at `seen_ns`."""
        size, mtime, ctime, inode = file_stamp(st)
        return cls(path, size, mtime, hash, ctime, inode, _int64(st.st_dev), seen_ns)

    @property
    def stamp(self) -> tuple[int, int, int, int]:
        """``(size, mtime_ns, ctime_ns, inode)`` as `file_stamp` gives them."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.inode)

    def describes(self, st: os.stat_result) -> bool:
        """True when `st` shows the file as it was when hashed, so the hash still holds.

        Size, mtime, ctime, inode and device must all be equal, and the stat
        must have been taken at least `RACY_NS` after the file last changed.
        """
        if (self.stamp, self.device) != (file_stamp(st), _int64(st.st_dev)):
            return False
        return max(self.mtime_ns, self.ctime_ns) <= self.seen_ns - RACY_NS

    def checksum(self) -> str:
        """`row_checksum` of every field: the hash cache entry's checksum."""
        return row_checksum(
            self.path, self.size, self.mtime_ns, self.ctime_ns, self.inode, self.device,
            self.hash, self.seen_ns,
        )  # fmt: skip


def file_hash(path: str | os.PathLike, buffer: bytearray | None = None) -> str:
    """SHA-256 of a file's bytes as hex, read in 1 MiB blocks into a reused buffer.

    Raises
    ------
    OSError
        The file cannot be opened or read.
    """
    h = hashlib.sha256()
    buf = buffer if buffer is not None else bytearray(_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()
