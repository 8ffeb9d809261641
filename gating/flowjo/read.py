"""Reading a FlowJo workspace document into a `Workspace`.

A FlowJo 10 workspace (``<Workspace version="20.0" flowJoVersion="10.x">``)
holds ``<Groups>`` of ``<GroupNode>`` (membership in ``<SampleRefs>``, a
template in ``<Subpopulations>``) and a ``<SampleList>`` of ``<Sample>``: the
file (``<DataSet uri>``), its ``<spilloverMatrix>``, ``<Transformations>``,
``<Keywords>`` and the ``<SampleNode>`` tree. FlowJo 9 documents
(``version="2.0"``) are handed to `cytokit.gating.flowjo.v9`.
"""

from __future__ import annotations

from pathlib import Path

from cytokit.errors import GatingError
from cytokit.gating.flowjo.axes import parse_matrix, parse_transform
from cytokit.gating.flowjo.tree import Issue, count_of, parse_nodes
from cytokit.gating.flowjo.workspace import Workspace, WorkspaceGroup, WorkspaceSample
from cytokit.gating.flowjo.xml import Element, child, children, parse_workspace_xml, where

__all__ = ["read_workspace"]


def read_workspace(path: Path) -> Workspace:
    """Parse the workspace at `path` (FlowJo 10, or FlowJo 9 XML)."""
    root = parse_workspace_xml(path)
    if root.tag != "Workspace":
        raise GatingError(
            f"{path}: the document element is <{root.tag}>, not <Workspace>: this is not a "
            "FlowJo workspace"
        )
    version = root.get("version", "")
    if version.split(".")[0] in ("1", "2") or child(root, "SampleList") is None:
        from cytokit.gating.flowjo.v9 import read_v9

        return read_v9(root, path)
    return _read_v10(root, path)


def _groups(root: Element, path: Path) -> list[WorkspaceGroup]:
    out = []
    groups = child(root, "Groups")
    for gn in children(groups, "GroupNode") if groups is not None else []:
        refs: list[str] = []
        g = child(gn, "Group")
        if g is not None:
            sr = child(g, "SampleRefs")
            refs = [r.get("sampleID", "") for r in children(sr, "SampleRef")] if sr else []
        out.append(
            WorkspaceGroup(
                name=gn.get("name", ""),
                sample_ids=tuple(refs),
                line=gn.line,
                nodes=parse_nodes(gn, path),
            )
        )
    return out


def _read_v10(root: Element, path: Path) -> Workspace:
    groups = _groups(root, path)
    notes: list[Issue] = []
    samples = []
    for s in children(child(root, "SampleList"), "Sample"):
        node = child(s, "SampleNode")
        if node is None:
            raise GatingError(f"{where(path, s)}: sample without a <SampleNode>")
        ds = child(s, "DataSet")
        sid = node.get("sampleID") or (ds.get("sampleID", "") if ds is not None else "")
        transforms = {}
        xfs = child(s, "Transformations")
        for el in list(xfs) if xfs is not None else []:
            xf = parse_transform(el, path)
            transforms[xf.parameter] = xf
        matrices = children(s, "spilloverMatrix")
        matrix = parse_matrix(matrices[0], path) if matrices else None
        owner = f"sample {node.get('name', sid)!r}"
        if len(matrices) > 1:
            notes.append(
                Issue(
                    owner,
                    "",
                    "spilloverMatrix",
                    matrices[1].line,
                    "the sample has several compensation matrices; the first is used",
                )
            )
        kw = child(s, "Keywords")
        keywords = (
            {k.get("name", ""): k.get("value", "") for k in children(kw, "Keyword")}
            if kw is not None
            else {}
        )
        samples.append(
            WorkspaceSample(
                id=sid,
                name=node.get("name", ""),
                uri=ds.get("uri", "") if ds is not None else "",
                keywords=keywords,
                count=count_of(node),
                transforms=transforms,
                compensation=matrix,
                groups=tuple(g.name for g in groups if sid in g.sample_ids),
                line=s.line,
                nodes=parse_nodes(node, path),
            )
        )
    ids = [s.id for s in samples]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise GatingError(f"{path}: sample ids {dup} are used by more than one <Sample>")
    return Workspace(path, root.get("flowJoVersion", ""), samples, groups, notes)
