"""`Panel`: which channel of a sample carries which marker.

A study names its markers (``CD3``, ``CD56``, ``HLA-A2``...) in the ``[panel]``
table of ``study.toml``; each value names the channel that carries the marker in
the FCS files, as written in ``$PnN`` (the detector, ``"FITC-A"``) or ``$PnS``
(the stain, ``"CD3 FITC"``), either exactly or as a regular expression that must
match the whole name. Resolution order for one marker:

1. a channel whose ``$PnN`` equals the value;
2. a channel whose ``$PnS`` equals the value;
3. channels whose ``$PnN`` or ``$PnS`` the value matches as a full regular
   expression (``re.fullmatch``); exactly one channel must match.

Anything else is a `PanelError` that lists the channels the sample has and
suggests a near miss (``did you mean 'PE-Cy7-A'?``).

`Panel.label_conflicts` finds a marker read from a channel whose ``$PnS`` names
another marker of the panel (``CD3`` mapped to the channel labelled ``CD56``),
for a per-file warning: labs relabel, so it is not an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cytokit.errors import PanelError, did_you_mean
from cytokit.sample import Sample

__all__ = ["Panel"]


@dataclass(frozen=True)
class Panel:
    """A mapping from marker names to channel names or patterns.

    Parameters
    ----------
    markers : mapping of str to str
        ``{"CD3": "FITC-A", "CD56": "CD56.*"}``.
    source : str
        Where the panel came from (a file path), used in error messages.
    """

    markers: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        clean: dict[str, str] = {}
        for marker, channel in dict(self.markers).items():
            if not isinstance(channel, str) or not channel.strip():
                raise PanelError(
                    f"panel entry {marker!r}{where} must name a channel as a non-empty "
                    f'string, e.g. {marker} = "FITC-A"; got {channel!r}'
                )
            clean[str(marker)] = channel
        object.__setattr__(self, "markers", clean)

    # -- construction --------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> Panel:
        """Read the ``[panel]`` table of a ``study.toml``."""
        from cytokit.study._toml import load_toml

        path = Path(path)
        data = load_toml(path)
        table = data.get("panel")
        if not isinstance(table, dict) or not table:
            raise PanelError(
                f"{path}: no [panel] table; add one that names the channel of each "
                'marker, e.g.\n[panel]\nCD3 = "FITC-A"'
            )
        return cls(table, source=str(path))

    # -- queries -------------------------------------------------------------
    def __contains__(self, marker: object) -> bool:
        return marker in self.markers

    def __iter__(self):
        return iter(self.markers)

    def __len__(self) -> int:
        return len(self.markers)

    def column(self, sample: Sample, marker: str) -> int:
        """Column of `sample.events` that carries `marker`.

        Raises
        ------
        PanelError
            When the marker is not in the panel, or its channel is not in the
            sample, or a pattern matches several channels. A near miss
            (``"PE-Cy7A"`` for ``"PE-Cy7-A"``) is suggested.
        """
        found = self.find(sample.channels, marker)
        if isinstance(found, str):
            prefix = "" if marker not in self.markers else f"{sample.name}: "
            raise PanelError(prefix + found)
        return found

    def find(self, channels, marker: str) -> int | str:
        """Index of the channel among `channels` that carries `marker`, or why there is none.

        The reason names the panel entry and the channels, not the file (a
        study says once which of its files it is true of).
        """
        where = f" ({self.source})" if self.source else ""
        if marker not in self.markers:
            known = ", ".join(self.markers) or "none"
            return (
                f"marker {marker!r} is not in the panel{where}"
                f"{did_you_mean(marker, self.markers)}; the panel has: {known}. "
                f'Add a line {marker} = "<channel>" to [panel]'
            )
        spec = self.markers[marker]
        for c in channels:
            if c.name == spec:
                return c.index
        exact = [c.index for c in channels if c.marker == spec]
        if len(exact) == 1:
            return exact[0]
        try:
            pattern = re.compile(spec)
        except re.error:
            pattern = None
        hits = exact
        if not hits and pattern is not None:
            hits = [
                c.index
                for c in channels
                if pattern.fullmatch(c.name) or (c.marker and pattern.fullmatch(c.marker))
            ]
        if len(hits) == 1:
            return hits[0]
        by_index = {c.index: c for c in channels}
        if hits:
            names = ", ".join(by_index[i].label for i in hits)
            return (
                f"panel entry {marker} = {spec!r}{where} matches several "
                f"channels ({names}); name one $PnN exactly"
            )
        names = [c.name for c in channels] + [c.marker for c in channels if c.marker]
        return (
            f"panel entry {marker} = {spec!r}{where} matches no channel"
            f"{did_you_mean(spec, names)}; channels are: " + ", ".join(c.label for c in channels)
        )

    def label_conflicts(
        self, channels, markers=None, alternatives=()
    ) -> list[tuple[str, str, str, str]]:
        """Markers read from a channel whose ``$PnS`` names another marker of the panel.

        The label is compared leniently (case, spaces, hyphens; ``"CD3 APC"`` carries
        ``CD3``, ``"CD38"`` does not): a label naming no marker of the panel (empty, a
        fluorochrome) or naming the marker itself is no conflict. `markers`: those the
        file reads (default every marker of the panel). `alternatives`: markers of which
        a file reads one (the study's donor-typing stains, HLA-A2 or HLA-B7 on one
        detector): a label naming another of them is no conflict.

        Returns
        -------
        list of (marker, channel $PnN, channel $PnS, the marker the label names)
        """
        either = set(alternatives)
        out = []
        for marker in self.markers if markers is None else markers:
            if marker not in self.markers:
                continue
            found = self.find(channels, marker)
            if isinstance(found, str):
                continue  # the file checks report a marker without a channel
            channel = next(c for c in channels if c.index == found)
            if not channel.marker or _names(channel.marker, marker):
                continue
            others = [
                m
                for m in self.markers
                if m != marker
                and _names(channel.marker, m)
                and not (marker in either and m in either)
                and not _variant(marker, m)
            ]
            if others:
                out.append((marker, channel.name, channel.marker, others[0]))
        return out

    def relabelled(self, channels, markers=None, alternatives=()) -> list[str]:
        """`label_conflicts` as the per-file warnings `cytokit analyze` and `cytokit gate
        --study` give (one sentence each, without the file: the table names it)."""
        return [
            f"[panel] {m} = {self.markers[m]!r} reads channel {name}, whose $PnS label in "
            f"this file is {label!r} ({other} in [panel]); if the channel is not {m}'s, fix "
            "[panel] in study.toml (a relabelled file needs no change)"
            for m, name, label, other in self.label_conflicts(channels, markers, alternatives)
        ]

    def columns(self, sample: Sample, markers: Iterable[str] | None = None) -> dict[str, int]:
        """Columns of every marker (or of `markers`), checking all before failing.

        Every marker that cannot be resolved is reported in one `PanelError`.
        """
        wanted = list(self.markers if markers is None else markers)
        found: dict[str, int] = {}
        problems: list[str] = []
        for m in wanted:
            try:
                found[m] = self.column(sample, m)
            except PanelError as exc:
                problems.append(str(exc))
        if problems:
            raise PanelError("\n".join(problems))
        return found

    def channel_names(self, sample: Sample) -> dict[str, str]:
        """``{marker: $PnN}`` for every marker of the panel in `sample`."""
        return {m: sample.channels[i].name for m, i in self.columns(sample).items()}


def _squeezed(text: str) -> str:
    return re.sub(r"[\s_-]+", "", text).lower()


def _names(label: str, marker: str) -> bool:
    """Whether a ``$PnS`` label names `marker`: it holds the marker's name, case, spaces
    and hyphens aside, not followed by a digit (``"CD3 APC"`` names CD3, ``"CD38"`` not);
    a cocktail's parts each count, a bare number taking the prefix before it (``"CD16/56"``
    names CD16 and CD56)."""
    want = _squeezed(marker)
    if not want:
        return False
    parts, prefix = [], ""
    for part in re.split(r"[/+,&]", label):
        part = _squeezed(part)
        if part.isdigit() and prefix:
            part = prefix + part
        else:
            prefix = re.match(r"[a-z]*", part).group(0)
        parts.append(part)
    return any(re.search(re.escape(want) + r"(?![0-9])", p) for p in [_squeezed(label), *parts])


def _variant(marker: str, of: str) -> bool:
    """`marker` is a reading of `of` on another parameter of its detector (``CD45-H``, the
    height channel of ``CD45``): one label names both."""
    a, b = _squeezed(marker), _squeezed(of)
    return a != b and a.startswith(b) and not a[len(b)].isdigit()
