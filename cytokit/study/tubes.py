"""Tubes: the panels a study stains its samples with, ``[tubes.<name>]`` of ``study.toml``.

A monitoring visit is often several tubes (a chimerism/counting tube, a
receptor tube, a function tube). The top-level tables of ``study.toml``
(``[panel]``, ``[gating] strategy``, ``[populations]``, ``[phenotype]``) are
the *default tube*, the one a manifest row without a ``tube`` value was
stained with; a one-tube study has nothing else and reads as it always did.
Each further tube is a table::

    [tubes.receptors]
    panel = { KIR2DL1 = "BV421-A", NKG2A = "BV605-A" }
    strategy = "receptors.yaml"
    populations = { NK = "/Lymphocytes/Singlets/Live/CD3-CD56+" }
    phenotype = { markers = ["KIR2DL1", "NKG2A"], thresholds = { NKG2A = 1000 } }

Unset keys inherit the top level. A tube's ``panel`` adds to (and overrides)
the top-level ``[panel]``: an inherited entry is dropped when one of the
tube's own entries names the same channel (``KIR2DL1 = "FITC-A"`` replaces
``HLA-A2 = "FITC-A"`` in that tube). A tube's file must carry its own
entries, the markers its strategy and phenotype read and, when the tube
has origin, the donor marker; inherited entries it does not use may be
absent from its files.

A tube *has origin* (its cells are told donor from recipient) when its
panel carries the study's donor marker (``[chimerism] marker``); a tube
without it gives phenotype without origin. ``[chimerism] tube`` names the
tube chimerism and counts come from (default: the default tube).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cytokit.errors import CytokitError
from cytokit.study.panel import Panel
from cytokit.study.settings import thresholds as check_thresholds

__all__ = ["DEFAULT_TUBE", "Tube", "chosen_tube", "parse_tubes"]

#: How the default tube (the top-level tables) is named in messages and outputs; the
#: manifest leaves its ``tube`` cell empty or writes this name.
DEFAULT_TUBE = "default"
_KEYS = {"panel", "strategy", "populations", "phenotype", "repertoire", "pairs_with"}
_REPERTOIRE_KEYS = {"receptors", "kirs", "inhibitory"}
_PHENOTYPE_KEYS = {"markers", "thresholds"}


@dataclass(frozen=True)
class Tube:
    """One tube of a study: its panel, strategy, populations and phenotype settings.

    Attributes
    ----------
    name : str
        ``DEFAULT_TUBE`` for the top-level tables.
    panel : Panel
        The tube's panel (its own entries over the inherited ones).
    own : tuple of str
        The markers the tube's table names itself (all markers for the default tube).
    strategy : str
        The strategy file, relative to the study folder.
    populations : dict of str to str
    phenotype_markers : tuple of str or None
        None: the panel markers no gate reads (as for the default tube).
    phenotype_thresholds : dict of str to float
    repertoire : dict
        ``receptors`` (tuple of markers, each a phenotype marker of the tube),
        ``kirs`` and ``inhibitory`` (subsets of them); empty: no repertoire.
    pairs_with : str
        The unstimulated tube a stimulated tube is paired with ('' none).
    """

    name: str
    panel: Panel
    own: tuple[str, ...]
    strategy: str
    populations: dict[str, str] = field(default_factory=dict)
    phenotype_markers: tuple[str, ...] | None = None
    phenotype_thresholds: dict[str, float] = field(default_factory=dict)
    repertoire: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pairs_with: str = ""

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_TUBE

    def has_origin(self, donor_marker: str) -> bool:
        """Whether the tube's cells can be told donor from recipient (its panel has `donor_marker`)."""
        return bool(donor_marker) and donor_marker in self.panel

    def required_markers(self, donor_marker: str) -> list[str]:
        """The markers every file of this tube must carry (the strategy's channels are
        checked apart): its own entries, its phenotype markers and thresholds, and the
        donor marker when the tube has origin."""
        need = [*self.own, *(self.phenotype_markers or ()), *self.phenotype_thresholds]
        if self.has_origin(donor_marker):
            need.append(donor_marker)
        return [m for m in dict.fromkeys(need) if m in self.panel]


def chosen_tube(study, tube: str | None, files: list[str] | None) -> tuple[str, list[str]]:
    """The tube a command gates and its files: `tube`, or the default one when the manifest
    lists files of one tube only or `files` are given; `files`, or else the tube's files in
    the manifest.

    Raises
    ------
    CytokitError
        No `tube` while the manifest lists files of several tubes and no file is given
        (each tube has its own strategy and panel), or `tube` is not a tube of the study.
    """
    used = study.tubes_used()
    if tube is None and not files and len(used) > 1:
        raise CytokitError(
            f"the manifest of {study.root} lists files of {len(used)} tubes "
            f"({', '.join(used)}), each gated with its own strategy and panel; "
            "give --tube NAME for one tube's files"
        )
    tube = tube or DEFAULT_TUBE
    study.tube(tube)  # a CytokitError naming the study's tubes when it is none of them
    return tube, list(files) if files else [
        str(r.file) for r in study.rows if study.tube_of(r) == tube
    ]


def _merged_panel(base: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    taken = set(own.values())
    out = {m: c for m, c in base.items() if c not in taken and m not in own}
    out.update(own)
    return out


def parse_tubes(
    config: Mapping[str, Any], source: str, panel: Panel, settings
) -> tuple[dict[str, Tube], str, list[str]]:
    """Read the ``[tubes.<name>]`` tables and ``[chimerism] tube`` of a parsed ``study.toml``.

    Parameters
    ----------
    config : mapping
        The parsed TOML document.
    source : str
        The file name, starting every problem.
    panel : Panel
        The top-level ``[panel]``.
    settings : StudySettings
        The top-level settings (the default tube; inherited values).

    Returns
    -------
    tubes : dict of str to Tube
        The default tube first, then the others in file order.
    chimerism_tube : str
        The tube chimerism and counts come from.
    problems : list of str
    """
    at = f"{source}: "
    problems: list[str] = []
    default = Tube(
        DEFAULT_TUBE,
        panel,
        tuple(panel),
        settings.strategy,
        dict(settings.populations),
        settings.phenotype_markers,
        dict(settings.phenotype_thresholds),
    )
    tubes = {DEFAULT_TUBE: default}
    table = config.get("tubes", {})
    if not isinstance(table, dict):
        problems.append(f"{at}[tubes] must hold tables [tubes.<name>], got {table!r}")
        table = {}
    for name, spec in table.items():
        where = f"{at}[tubes.{name}]"
        if name == DEFAULT_TUBE:
            problems.append(
                f"{where}: {DEFAULT_TUBE!r} is the name of the top-level tables' tube; "
                "give this tube another name"
            )
            continue
        if not isinstance(spec, dict):
            problems.append(
                f'{where} must be a table, e.g. [tubes.{name}] strategy = "{name}.yaml"'
            )
            continue
        for key in spec:
            if key not in _KEYS:
                problems.append(
                    f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(_KEYS))}"
                )
        own = spec.get("panel", {})
        if not isinstance(own, dict):
            problems.append(
                f'{where} panel = {own!r} must be a table, e.g. {{ NKG2A = "BV605-A" }}'
            )
            own = {}
        try:
            tube_panel = Panel(_merged_panel(panel.markers, own), source=f"{source} [tubes.{name}]")
        except CytokitError as exc:
            problems.append(f"{where}: {exc}")
            continue
        strategy = spec.get("strategy", settings.strategy)
        if not isinstance(strategy, str) or not strategy.strip():
            problems.append(f'{where} strategy = {strategy!r} must name a file, e.g. "{name}.yaml"')
            strategy = settings.strategy
        pops = spec.get("populations", settings.populations)
        if not isinstance(pops, dict) or not all(
            isinstance(v, str) and v.strip() for v in pops.values()
        ):
            problems.append(
                f"{where} populations = {pops!r} must be a table of name = gate path, e.g. "
                '{ NK = "/Lymphocytes/CD3-CD56+" }'
            )
            pops = dict(settings.populations)
        ph = spec.get("phenotype", {})
        markers, thresholds = settings.phenotype_markers, dict(settings.phenotype_thresholds)
        if not isinstance(ph, dict):
            problems.append(f"{where} phenotype = {ph!r} must be a table (markers, thresholds)")
            ph = {}
        for key in ph:
            if key not in _PHENOTYPE_KEYS:
                problems.append(
                    f"{where}: unknown key {key!r} in phenotype; known keys: markers, thresholds"
                )
        if "markers" in ph:
            value = ph["markers"]
            if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
                problems.append(
                    f'{where} phenotype markers = {value!r} must be a list of marker names, e.g. ["NKG2A"]'
                )
            else:
                markers = tuple(value)
        if "thresholds" in ph:
            found = check_thresholds(
                ph["thresholds"], f"{where} phenotype thresholds", "NKG2A", problems
            )
            thresholds = thresholds if found is None else found
        repertoire = _repertoire(spec.get("repertoire", {}), where, problems)
        pairs = spec.get("pairs_with", "")
        if not isinstance(pairs, str):
            problems.append(f'{where} pairs_with = {pairs!r} must name a tube, e.g. "unstimulated"')
            pairs = ""
        tube = Tube(
            str(name),
            tube_panel,
            tuple(own),
            strategy.strip(),
            {str(k): v for k, v in pops.items()},
            markers,
            thresholds,
            repertoire,
            pairs.strip(),
        )
        measured = set(markers or ()) | set(thresholds)
        for m in repertoire.get("receptors", ()):
            if markers is not None and m not in measured:
                problems.append(
                    f"{where}: repertoire receptor {m!r} is not among the tube's phenotype "
                    f"markers; add it to phenotype markers"
                )
        for m in dict.fromkeys((*(markers or ()), *thresholds)):  # each marker said once
            if m not in tube_panel:
                problems.append(
                    f"{where}: phenotype marker {m!r} is not in the tube's panel (its own "
                    f'entries or [panel]); add {m} = "<channel>" to its panel'
                )
        tubes[tube.name] = tube
    for tube in tubes.values():
        if tube.pairs_with and tube.pairs_with not in tubes:
            problems.append(
                f"{at}[tubes.{tube.name}] pairs_with = {tube.pairs_with!r} names no tube; "
                f"tubes are: {', '.join(tubes)}"
            )
        elif tube.pairs_with == tube.name:
            problems.append(
                f"{at}[tubes.{tube.name}] pairs_with names the tube itself; name its "
                "unstimulated tube"
            )
    chim = config.get("chimerism", {})
    chosen = chim.get("tube", DEFAULT_TUBE) if isinstance(chim, dict) else DEFAULT_TUBE
    if chosen not in tubes:
        problems.append(
            f"{at}[chimerism] tube = {chosen!r} names no tube; tubes are: {', '.join(tubes)}"
        )
        chosen = DEFAULT_TUBE
    return tubes, chosen, problems


def _repertoire(value, where: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    """A tube's ``repertoire = { receptors = [...], kirs = [...], inhibitory = [...] }``."""
    example = '{ receptors = ["KIR2DL1", "KIR3DL1", "NKG2A"], kirs = ["KIR2DL1", "KIR3DL1"] }'
    if not isinstance(value, dict):
        problems.append(f"{where} repertoire = {value!r} must be a table, e.g. {example}")
        return {}
    if not value:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for key, v in value.items():
        if key not in _REPERTOIRE_KEYS:
            problems.append(
                f"{where}: unknown key {key!r} in repertoire; known keys: "
                + ", ".join(sorted(_REPERTOIRE_KEYS))
            )
        elif not isinstance(v, list) or not all(isinstance(m, str) and m for m in v):
            problems.append(f"{where} repertoire {key} = {v!r} must be a list of markers")
        else:
            out[key] = tuple(v)
    receptors = out.get("receptors", ())
    if not receptors or len(receptors) > 12:
        problems.append(
            f"{where} repertoire needs 1 to 12 receptors (2^k combinations), e.g. {example}"
        )
        return {}
    for key in ("kirs", "inhibitory"):
        extra = [m for m in out.get(key, ()) if m not in receptors]
        if extra:
            problems.append(f"{where} repertoire {key} {extra} are not among its receptors")
    return out
