"""FlowJo 9 XML workspaces."""

from __future__ import annotations

from cytokit.errors import GatingError


def read_v9(root, path):
    raise GatingError(f"{path}: FlowJo 9 workspaces are not supported yet")
