"""Resource bounds on gating strategies, the same through every reader.

A strategy file is input a lab may receive from anywhere, so every reader
(`load_strategy`, `read_gatingml`, `read_yaml_strategy`, `load_workspace`) and
`GatingStrategy` itself refuse, with one `GatingError` line naming the file,
the limit and the value, anything beyond these bounds instead of exhausting
memory, time or Python's stack. Each bound is far above any real strategy: the
corpus's largest FlowJo workspace is 0.8 MB with trees 7 levels deep, 49
populations at most and paths of at most 69 characters.

Attributes
----------
MAX_DEPTH : int
    Levels of a gate tree (a top-level population is level 1; Boolean
    operands do not add levels, parents do).
MAX_POPULATIONS : int
    Populations of one strategy (a quadrant gate defines one per quadrant);
    a FlowJo workspace may hold this many in each sample's and group's tree.
MAX_PATH_LENGTH : int
    Characters of one population path (``/Lymphocytes/Singlets/...``).
MAX_FILE_BYTES : dict
    Largest file each reader opens: ``"yaml"``, ``"gatingml"``, ``"workspace"``.
MAX_YAML_NESTING : int
    Lists and tables inside one another in a YAML strategy (a gate nested in a
    gate takes 2 levels, in a quadrant 3, so a tree `MAX_DEPTH` deep fits).
MAX_YAML_VALUES : int
    Values of a YAML strategy once aliases (``*name``) and merges (``<<``) are
    expanded: the file as written counts too.
MAX_INTEGER : int
    Largest integer magnitude in a YAML strategy or a study's TOML (64 bits).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cytokit.errors import GatingError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INTEGER",
    "MAX_PATH_LENGTH",
    "MAX_POPULATIONS",
    "MAX_YAML_NESTING",
    "MAX_YAML_VALUES",
    "check_size",
    "deepest",
    "read_bounded",
    "shorten",
    "too_large",
]

MAX_DEPTH = 100
MAX_POPULATIONS = 20_000
MAX_PATH_LENGTH = 4_096
MAX_FILE_BYTES = {
    "yaml": 8 * 2**20,
    "gatingml": 64 * 2**20,
    "workspace": 2**30,
}
MAX_YAML_NESTING = 320
MAX_YAML_VALUES = 1_000_000
MAX_INTEGER = 2**63 - 1

_WHAT = {
    "yaml": ("a YAML strategy", "split it, or check that it is the strategy you meant"),
    "gatingml": ("a Gating-ML document", "check that it is the strategy you meant"),
    "workspace": (
        "a FlowJo workspace",
        "save a copy in FlowJo with only the samples and groups you need",
    ),
}


def _size(n: int) -> str:
    return f"{n // 2**30} GiB" if n >= 2**30 else f"{n // 2**20} MiB"


def check_size(path: Path, kind: str) -> None:
    """Refuse `path` when the file system says it is over ``MAX_FILE_BYTES[kind]``.

    Raises
    ------
    GatingError
        The file is too large. `OSError` passes through for the caller to word.
    """
    if Path(path).stat().st_size > MAX_FILE_BYTES[kind]:
        raise too_large(path, kind)


def read_bounded(path: Path, kind: str) -> bytes:
    """The bytes of `path`, refused when longer than ``MAX_FILE_BYTES[kind]``.

    The size is checked before reading, and at most one byte more than the
    limit is read, so neither a file that grows nor a pipe or device can make
    the read unbounded.

    Raises
    ------
    GatingError
        The file is too large. `FileNotFoundError` and other `OSError` pass
        through for the caller to word.
    """
    check_size(path, kind)
    limit = MAX_FILE_BYTES[kind]
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise too_large(path, kind)
    return data


def too_large(path: Path, kind: str) -> GatingError:
    """The error for a file of `kind` over its size limit."""
    limit = MAX_FILE_BYTES[kind]
    what, fix = _WHAT[kind]
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0
    # a pipe or device has no size; a growing file may have been smaller when stat'ed
    shown = f"{size:,} bytes" if size > limit else f"more than {limit:,} bytes"
    return GatingError(
        f"{path}: the file is {shown}; cytokit reads {what} of at most {limit:,} bytes "
        f"({_size(limit)}); {fix}"
    )


def deepest(parent_of: Mapping[str, str | None]) -> tuple[str | None, int]:
    """The deepest id of the tree ``{id: parent id or None}`` describes, and its level.

    For readers to refuse a deep tree before building its gates. Levels are
    found once each, walking up with a list, not recursion; a parent that is
    missing counts as the top, and ids on a cycle are given level 0 (the
    strategy names the cycle later).
    """
    level: dict[str, int] = {}
    best, best_level = None, 0
    for start in parent_of:
        trail: list[str] = []
        on_trail: set[str] = set()
        node = start
        while node is not None and node in parent_of and node not in level:
            if node in on_trail:
                break
            trail.append(node)
            on_trail.add(node)
            node = parent_of[node]
        if node is not None and node in on_trail:
            level.update(dict.fromkeys(trail, 0))
            continue
        d = level.get(node, 0) if node is not None else 0
        for t in reversed(trail):
            d += 1
            level[t] = d
            if d > best_level:
                best, best_level = t, d
    return best, best_level


def shorten(text: str, keep: int = 80) -> str:
    """`text` as it is, or its start and end around an ellipsis when longer than `keep`."""
    if len(text) <= keep:
        return text
    half = (keep - 1) // 2
    return f"{text[:half]}…{text[-half:]}"
