"""FlowJo workspace import (``.wsp``, FlowJo 10 and 9): samples, groups and gating trees.

`load_workspace` reads a workspace into a `Workspace`
(`cytokit.gating.flowjo.workspace`, where its use is shown);
`read_workspace_strategy` is what `cytokit.gating.load_strategy` calls for a
``.wsp``. The parts: `read` (the FlowJo 10 document), `v9` (FlowJo 9 XML),
`tree` (population trees into strategies), `gates` (FlowJo gate elements),
`axes` (per-sample transforms and compensation), `match` (samples to FCS
files), `xml` (safe XML with line numbers). Export: `write` (``write_workspace``:
static, per-sample strategies as a FlowJo 10 workspace; ``cytokit export-wsp``
writes a study's analysis with it).
"""

from __future__ import annotations

import os
from pathlib import Path

from cytokit.errors import GatingError
from cytokit.gating.flowjo.read import read_workspace
from cytokit.gating.flowjo.workspace import (
    FileMatches,
    Issue,
    Workspace,
    WorkspaceGroup,
    WorkspacePopulation,
    WorkspaceSample,
)
from cytokit.gating.strategy import GatingStrategy

__all__ = [
    "FileMatches",
    "Issue",
    "Workspace",
    "WorkspaceGroup",
    "WorkspacePopulation",
    "WorkspaceSample",
    "load_workspace",
    "read_workspace_strategy",
]


def load_workspace(path: str | os.PathLike[str]) -> Workspace:
    """Read a FlowJo workspace.

    Parameters
    ----------
    path : path
        A FlowJo 10 ``.wsp`` file, or a FlowJo 9 workspace saved as XML.

    Returns
    -------
    Workspace

    Raises
    ------
    GatingError
        Missing file, malformed or unsafe XML (the message names the line), a
        document that is not a FlowJo workspace, a broken element, or a file or
        population tree beyond the bounds of `cytokit.gating.limits` (1 GiB;
        per tree 100 levels, 20,000 populations, paths of 4,096 characters).
    """
    path = Path(path)
    if not path.is_file():
        raise GatingError(f"{path}: workspace file not found")
    return read_workspace(path)


def read_workspace_strategy(
    path: str | os.PathLike[str],
    *,
    sample: str | int | None = None,
    group: str | None = None,
    skip_unsupported: bool = False,
) -> GatingStrategy:
    """The gating strategy in a FlowJo workspace (what `cytokit.gating.load_strategy` calls).

    See `Workspace.strategy` for how `sample` and `group` choose the tree.
    """
    return load_workspace(path).strategy(
        sample=sample, group=group, skip_unsupported=skip_unsupported
    )
