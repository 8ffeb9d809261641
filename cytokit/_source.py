"""A digest of cytokit's own source, for caches whose contents the code decides.

The report keeps figures and pages from an earlier build when what they are drawn
from is unchanged (`cytokit.report.figures`, `cytokit.report.build`). The version
number alone does not say that: a working copy, or an install of an unreleased
commit, draws differently under the same number. The digest covers the text of
every module of the ``cytokit`` package, so any change to the code that draws
or words the report renders it again.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

__all__ = ["source_digest"]


@functools.cache
def source_digest() -> str:
    """SHA-256 of the relative path and bytes of every ``.py`` file of the package
    (about 1.5 MB of text: a few milliseconds, once per process)."""
    root = Path(__file__).resolve().parent
    files: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in names:
            if name.endswith(".py"):
                path = Path(folder, name)
                files.append((path.relative_to(root).as_posix(), path))
    h = hashlib.sha256()
    for rel, path in sorted(files):
        data = path.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
