"""FlowJo workspace import: samples, groups and their gating trees as cytokit strategies.

Typical use::

    from cytokit.gating import flowjo
    ws = flowjo.load_workspace("analysis.wsp")   # cytokit.gating.flowjo.load_workspace
    ws.samples                       # WorkspaceSample: name, file, keywords, transforms, tree
    matches = ws.match_files(paths)  # which FCS file is which sample (report: matches.report())
    sample = cytokit.read_fcs(path)
    strategy = ws.strategy(sample=sample)      # that sample's own tree (or sample="id"/name)
    result = strategy.apply(sample)
    ws.compare_counts(result, ws.find(sample).id)   # cytokit next to FlowJo's own counts

FlowJo 10 workspaces (``.wsp``) and FlowJo 9 XML workspaces are read (see
`cytokit.gating.flowjo.v9`). FlowJo keeps a gating tree for every sample,
with that sample's transforms and compensation matrix, and a template per
group; `Workspace.strategy` turns either into a `GatingStrategy` that
reproduces FlowJo's gating: coordinates stored as data values are tested on
FlowJo's display axes (the sample's transforms), as FlowJo draws them (see
`cytokit.gating.flowjo.gates`). Population paths are FlowJo's names joined by
``/``, and each population's gate id is its path, so one tree has the same ids
in every sample. What cannot be reproduced is listed in
`Workspace.unsupported` and raises `GatingError` (or is left out, with a
warning, when asked) when a strategy needs it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from cytokit.errors import GatingError
from cytokit.gating.flowjo.axes import AxisMaker, FlowJoMatrix, FlowJoTransform
from cytokit.gating.flowjo.gates import gate_from_element
from cytokit.gating.flowjo.match import FileMatches, find_sample, match_files
from cytokit.gating.flowjo.tree import (
    Issue,
    Node,
    WorkspacePopulation,
    build_strategy,
    populations,
)
from cytokit.gating.strategy import GatingStrategy
from cytokit.sample import Sample

__all__ = [
    "FileMatches",
    "Issue",
    "PerSampleGatesError",
    "Workspace",
    "WorkspaceGroup",
    "WorkspacePopulation",
    "WorkspaceSample",
]

#: FlowJo's group of every sample; its template is the default strategy.
ALL_SAMPLES = "All Samples"


class PerSampleGatesError(GatingError):
    """A workspace whose gates are its samples' own (no group's), asked for one strategy
    without saying which sample's or group's tree."""


@dataclass(eq=False)
class WorkspaceSample:
    """One sample of a workspace, with its own gating tree.

    Attributes
    ----------
    id : str
        FlowJo's ``sampleID`` (unique in the workspace).
    name : str
        The sample's name in FlowJo (normally the FCS file name).
    uri : str
        Where FlowJo read the file (``DataSet uri``), "" if not recorded.
    keywords : dict of str to str
        The FCS keywords FlowJo stored for it (``$FIL``, ``$TOT``...).
    count : int or None
        Events FlowJo read.
    transforms : dict of str to FlowJoTransform
        Display transform per FlowJo parameter name.
    compensation : FlowJoMatrix or None
    groups : tuple of str
        Groups the sample belongs to.
    populations : tuple of WorkspacePopulation
        Its tree, parents first, with FlowJo's counts.
    line : int
    """

    id: str
    name: str
    uri: str
    keywords: dict[str, str]
    count: int | None
    transforms: dict[str, FlowJoTransform]
    compensation: FlowJoMatrix | None
    groups: tuple[str, ...]
    line: int
    nodes: list[Node] = field(default_factory=list, repr=False)

    @property
    def populations(self) -> tuple[WorkspacePopulation, ...]:
        return populations(self.nodes)

    @property
    def file_name(self) -> str:
        """The file name of `uri` (or `name` when there is no URI)."""
        if not self.uri:
            return self.name
        return unquote(urlparse(self.uri).path).replace("\\", "/").rsplit("/", 1)[-1]

    def keyword(self, key: str) -> str | None:
        """The stored keyword `key`, matched case-insensitively."""
        key = key.upper()
        for k, v in self.keywords.items():
            if k.upper() == key:
                return v
        return None

    @property
    def fil(self) -> str | None:
        """The file's ``$FIL`` keyword as FlowJo recorded it."""
        return self.keyword("$FIL")

    @property
    def event_count(self) -> int | None:
        """``$TOT`` as recorded (or FlowJo's count of the sample)."""
        tot = self.keyword("$TOT")
        try:
            return int(tot) if tot is not None else self.count
        except ValueError:
            return self.count

    @property
    def counts(self) -> dict[str, int | None]:
        """FlowJo's count of each population, by path."""
        return {p.path: p.count for p in self.populations}


@dataclass(eq=False)
class WorkspaceGroup:
    """A FlowJo group: its samples and its template tree (possibly empty)."""

    name: str
    sample_ids: tuple[str, ...]
    line: int
    nodes: list[Node] = field(default_factory=list, repr=False)

    @property
    def populations(self) -> tuple[WorkspacePopulation, ...]:
        return populations(self.nodes)

    @property
    def has_gates(self) -> bool:
        return bool(self.nodes)


class Workspace:
    """A parsed FlowJo workspace (see `load_workspace`).

    Attributes
    ----------
    path : Path
    version : str
        FlowJo's version that saved it (``flowJoVersion``).
    samples : tuple of WorkspaceSample
    groups : tuple of WorkspaceGroup
    """

    def __init__(
        self,
        path: Path,
        version: str,
        samples: Iterable[WorkspaceSample],
        groups: Iterable[WorkspaceGroup],
        notes: Iterable[Issue] = (),
        *,
        axes=None,
        convert=None,
    ) -> None:
        self.path = Path(path)
        # FlowJo 9 documents bring their own axes (calibration tables) and gate shapes.
        self._axes = axes if axes is not None else self._v10_axes
        self._convert = convert if convert is not None else gate_from_element
        self.version = version
        self.samples = tuple(samples)
        self.groups = tuple(groups)
        self._notes = list(notes)
        self._unsupported: list[Issue] | None = None

    def __repr__(self) -> str:
        return (
            f"<FlowJo workspace {self.path.name!r} (FlowJo {self.version or '?'}): "
            f"{len(self.samples)} samples, groups {[g.name for g in self.groups]}>"
        )

    # -- look-ups ---------------------------------------------------------------------
    def sample(self, key: str | int) -> WorkspaceSample:
        """The sample with FlowJo id, name or file name `key`.

        Raises
        ------
        GatingError
            No such sample, or a name several samples share (use the id).
        """
        key = str(key)
        for attr in ("id", "name", "file_name"):
            hits = [s for s in self.samples if getattr(s, attr) == key]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise GatingError(
                    f"{self.path.name}: {len(hits)} samples are called {key!r}; choose by id: "
                    + ", ".join(f"{s.id} ({s.event_count} events)" for s in hits)
                )
        raise GatingError(f"{self.path.name}: no sample {key!r}; {self._listing()}")

    def find(self, fcs: Sample) -> WorkspaceSample:
        """The workspace sample that the read FCS file `fcs` is (by its link, name, $FIL, $TOT).

        Raises
        ------
        GatingError
            None or several samples fit.
        """
        return find_sample(self.samples, fcs, where=self.path.name, folder=self.path.parent)

    def group(self, name: str) -> WorkspaceGroup:
        """The group called `name`."""
        for g in self.groups:
            if g.name == name:
                return g
        raise GatingError(f"{self.path.name}: no group {name!r}; {self._listing()}")

    def _listing(self) -> str:
        samples = ", ".join(f"{s.name!r} (id {s.id})" for s in self.samples) or "none"
        groups = (
            ", ".join(f"{g.name!r}" + ("" if g.has_gates else " (no gates)") for g in self.groups)
            or "none"
        )
        return f"samples: {samples}; groups: {groups}"

    # -- strategies -------------------------------------------------------------------
    def axes(self, sample: WorkspaceSample | None):
        """Transforms and compensation of `sample` (None: none known), as gate axes."""
        return self._axes(sample)

    def _v10_axes(self, sample: WorkspaceSample | None) -> AxisMaker:
        if sample is None:
            return AxisMaker({}, None, {}, self.path)
        return AxisMaker(sample.transforms, sample.compensation, sample.keywords, self.path)

    def _group_axes(self, group: WorkspaceGroup):
        members = [s for s in self.samples if s.id in group.sample_ids]
        owner = f"group {group.name!r}"
        if not members:
            note = Issue(
                owner,
                "",
                "GroupNode",
                group.line,
                "the group has no samples, so its transforms and compensation are unknown: "
                "gates are read on untransformed, uncompensated data",
            )
            return self.axes(None), [note]
        first = members[0]
        notes = []
        for s in members[1:]:
            differ = _differences(first, s)
            if differ:
                notes.append(
                    Issue(
                        owner,
                        "",
                        "GroupNode",
                        group.line,
                        f"sample {s.name!r} (id {s.id}) differs from {first.name!r} (id "
                        f"{first.id}), whose settings the group strategy uses, in: "
                        f"{', '.join(differ)}; use strategy(sample=...) for each sample's own tree",
                    )
                )
        return self.axes(first), notes

    def strategy(
        self,
        sample: str | int | Sample | None = None,
        group: str | None = None,
        *,
        skip_unsupported: bool = False,
    ) -> GatingStrategy:
        """The gating strategy of a sample's tree or a group's template.

        Parameters
        ----------
        sample : str, int or cytokit.Sample, optional
            A sample's id, name or file name, or a read FCS file (matched as
            `find` does): its own tree, transforms and compensation (what
            FlowJo counted).
        group : str, optional
            A group's template, with the transforms and compensation of the
            group's first sample.
        skip_unsupported : bool
            Leave out (with a warning) populations that cannot be converted,
            and what depends on them, instead of raising.

        With neither: the only sample's tree when there is one sample, else
        the ``All Samples`` template if it has gates.

        Raises
        ------
        GatingError
            No such sample or group, no default to choose (the message lists
            the samples and groups), or a population that cannot be converted.
        """
        if isinstance(sample, Sample):
            sample = self.find(sample).id
        if sample is not None and group is not None:
            raise GatingError(
                f"{self.path.name}: give sample= or group=, not both ({sample!r}, {group!r})"
            )
        if sample is None and group is None:
            if len(self.samples) == 1:
                sample = self.samples[0].id
            elif any(g.name == ALL_SAMPLES and g.has_gates for g in self.groups):
                group = ALL_SAMPLES
            else:
                raise PerSampleGatesError(
                    f"{self.path.name} has {len(self.samples)} samples and no gates in the "
                    f"{ALL_SAMPLES!r} group, so which tree to use is not clear; pass sample= "
                    f"or group= ({self._listing()}); `cytokit gate` gates each file with its "
                    "own sample's tree"
                )
        strategy, issues = self._build(sample, group, skip_unsupported)
        if issues and skip_unsupported:
            warnings.warn(
                f"{self.path.name}: left out {len(issues)} population(s): "
                + "; ".join(str(i) for i in issues),
                stacklevel=2,
            )
        return strategy

    def _build(self, sample, group, skip: bool) -> tuple[GatingStrategy, list[Issue]]:
        if sample is not None:
            s = self.sample(sample)
            return build_strategy(
                s.nodes,
                self.axes(s),
                path=self.path,
                owner=f"sample {s.name!r}",
                name=s.name,
                skip_unsupported=skip,
                convert=self._convert,
            )
        g = self.group(group)
        if not g.has_gates:
            raise GatingError(
                f"{self.path.name}: group {g.name!r} has no gates of its own; {self._listing()}"
            )
        axes, notes = self._group_axes(g)
        strategy, issues = build_strategy(
            g.nodes,
            axes,
            path=self.path,
            owner=f"group {g.name!r}",
            name=g.name,
            skip_unsupported=skip,
            convert=self._convert,
        )
        return strategy, notes + issues

    @property
    def unsupported(self) -> list[Issue]:
        """Everything in the workspace cytokit cannot reproduce, for every sample and group."""
        if self._unsupported is None:
            out = list(self._notes)
            for s in self.samples:
                out += self._try(sample=s.id)
            for g in self.groups:
                if g.has_gates:
                    out += self._try(group=g.name)
            self._unsupported = out
        return list(self._unsupported)

    def _try(self, **which) -> list[Issue]:
        try:
            return self._build(which.get("sample"), which.get("group"), True)[1]
        except GatingError as exc:
            owner = (
                f"sample {which['sample']!r}" if "sample" in which else f"group {which['group']!r}"
            )
            return [Issue(owner, "", "Workspace", 0, str(exc))]

    # -- files and counts -------------------------------------------------------------
    def match_files(self, paths: Iterable[str | os.PathLike[str]]) -> FileMatches:
        """Which FCS file is which sample: by link, then file name, then ``$FIL``, ``$TOT``
        breaking ties.

        See `cytokit.gating.flowjo.match.match_files`.
        """
        return match_files(self.samples, paths, where=self.path.name, folder=self.path.parent)

    def flowjo_counts(self) -> pd.DataFrame:
        """FlowJo's own counts: one row per sample and population.

        Columns: ``sample_id, sample, population_path, node, gate_type, count``
        (``count`` is missing where FlowJo did not compute it).
        """
        rows = []
        for s in self.samples:
            for p in s.populations:
                rows.append((s.id, s.name, p.path, p.node, p.gate_type, p.count))
        cols = ["sample_id", "sample", "population_path", "node", "gate_type", "count"]
        df = pd.DataFrame(rows, columns=cols)
        df["count"] = df["count"].astype("Int64")
        return df

    def compare_counts(self, result, sample: str | int) -> pd.DataFrame:
        """cytokit's counts in `result` next to FlowJo's for `sample`, by population path.

        Returns
        -------
        DataFrame
            ``population_path, flowjo, cytokit, difference, parent_count,
            tolerance`` where ``tolerance`` is max(15, 0.1% of the parent count).
        """
        s = self.sample(sample)
        ours = result.counts.set_index("gate_path")
        rows = []
        for p in s.populations:
            if p.path not in ours.index:
                continue
            mine = int(ours.at[p.path, "count"])
            parent = int(ours.at[p.path, "parent_count"])
            fj = p.count
            diff = None if fj is None else mine - fj
            rows.append((p.path, fj, mine, diff, parent, max(15, 0.001 * parent)))
        cols = ["population_path", "flowjo", "cytokit", "difference", "parent_count", "tolerance"]
        return pd.DataFrame(rows, columns=cols)


def _differences(a: WorkspaceSample, b: WorkspaceSample) -> list[str]:
    """What makes two samples' gates differ: transforms by parameter, and compensation."""
    out = []
    for k in sorted(set(a.transforms) | set(b.transforms)):
        ta, tb = a.transforms.get(k), b.transforms.get(k)
        if ta is None or tb is None or (ta.kind, dict(ta.params)) != (tb.kind, dict(tb.params)):
            out.append(f"transform of {k!r}")
    ma, mb = a.compensation, b.compensation
    if (ma is None) != (mb is None) or (
        ma is not None and (ma.name, ma.detectors, ma.matrix) != (mb.name, mb.detectors, mb.matrix)
    ):
        out.append("compensation matrix")
    return out
