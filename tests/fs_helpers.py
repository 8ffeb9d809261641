"""File-system helpers of the tests: file-time ticks, a clean copy of the checkout, files
and folders this process may not read or write (even as root)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


def copy_tracked(dest: Path) -> Path:
    """The repository's tracked files (as in the working tree) copied into `dest`;
    skips the test outside a git checkout (tracked files cannot be told from build products)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot tell tracked files from build products")
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for raw in filter(None, names):
        rel = raw.decode()
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` and its files made read-only for this process, even as root."""
    paths = [folder, *folder.iterdir()]
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p in paths:
                p.chmod(modes[p])
        return
    # root ignores permission bits; the immutable attribute binds it too
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    if done.returncode != 0:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True, check=False)
        pytest.skip(f"cannot make a folder read-only as root here: {done.stderr.decode()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


@contextmanager
def unreadable(path: Path) -> Iterator[None]:
    """`path` made unreadable to this process, as ``chmod 000`` makes it for a user.

    Root reads any file whatever its mode (and no attribute stops it), so as root
    opening `path` in this process raises the `PermissionError` the system would give.
    """
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    target = os.path.realpath(path)

    def refusing(real):
        def opener(file, *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and os.path.realpath(file) == target:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
            return real(file, *args, **kwargs)

        return opener

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", refusing(builtins.open))
        mp.setattr(io, "open", refusing(io.open))
        mp.setattr(os, "open", refusing(os.open))
        yield
