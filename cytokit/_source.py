"""A digest of cytokit's own source, for caches whose contents the code decides.

The report keeps figures and pages from an earlier build when what they are drawn
from is unchanged (`cytokit.report.figures`, `cytokit.report.build`). The version
number alone does not say that: a working copy, or an install of an unreleased
commit, draws differently under the same number. The digest covers the text of
every module of the ``cytokit`` package, including the subpackages a checkout
keeps in folders of their own (``kernels/``, ``gating/``, ``cli/``), so any
change to the code that draws or words the report renders it again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

__all__ = ["source_digest", "source_files"]

#: Subpackages that a checkout (an editable install) maps from folders beside ``cytokit/``.
_MAPPED = ("kernels", "gating", "cli")


def source_files() -> list[tuple[str, Path]]:
    """Every ``.py`` file of the package, wherever its folders are: ``(name, path)`` pairs,
    the name relative to the folder's parent (``kernels/fused.py``), sorted by name."""
    main = Path(__file__).resolve().parent
    roots = {main}
    for name in _MAPPED:
        spec = importlib.util.find_spec(f"cytokit.{name}")  # the package is not imported
        for p in spec.submodule_search_locations or ():
            if not Path(p).resolve().is_relative_to(main):  # inside it in an installed wheel
                roots.add(Path(p).resolve())
    files = {
        (p.relative_to(root.parent).as_posix(), p)
        for root in roots
        for p in root.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    return sorted(files)


@functools.cache
def source_digest() -> str:
    """SHA-256 of the name and bytes of each of `source_files` (about 2 MB of text: a few
    milliseconds, once per process).

    The kernels' cache stamp (`cytokit.kernels._config.sources_stamp`) hashes the same
    way, but importing it imports Numba, which a report rebuild that finds nothing
    changed does not otherwise load.
    """
    h = hashlib.sha256()
    for name, path in source_files():
        data = path.read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
