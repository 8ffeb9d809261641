"""File-system helpers for the tests of the hash cache and the results store."""

from __future__ import annotations

import os
import time
from pathlib import Path


def next_tick(path: Path) -> None:
    """Wait until the file-time clock has moved past `path`'s ctime (a few ms at most).

    File times come from a coarse clock (a jiffy): a write in the same tick
    as the last one leaves the ctime as it was. After this, the next write
    to `path` gives it another ctime.
    """
    probe = path.with_name(path.name + ".tick")
    try:
        while True:
            probe.write_bytes(b"")
            if os.stat(probe).st_ctime_ns > os.stat(path).st_ctime_ns:
                return
            time.sleep(0.001)
    finally:
        probe.unlink(missing_ok=True)


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Overwrite `path` in place with `data` (of its size) and put its times back (touch -r)."""
    st = os.stat(path)
    assert len(data) == st.st_size
    next_tick(path)
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
