"""The reagent table of ``study.toml``: what stained each marker of the panel.

MIFlowCyt 1.0 (item 2.4) asks, for every fluorescence reagent, what it
measures, its reporter (fluorochrome), clone, manufacturer and catalogue
number; clinical labs add the lot. None of that is in an FCS file, so a study
lists it once, one ``[[reagents]]`` table per marker::

    [[reagents]]
    marker = "CD3"            # a marker of [panel] (required)
    fluorochrome = "APC"
    clone = "UCHT1"
    vendor = "BioLegend"
    catalog = "300412"
    lot = "B301234"

Every key but ``marker`` may be left out (the MIFlowCyt table,
`cytokit.analysis.miflowcyt`, then lists it as missing). `parse_reagents`
checks the table with the study's other settings: an entry that is not a
table, a missing or repeated marker, an unknown key (with a near miss) or a
value that is not text is a problem naming the entry, the key and the fix; a
marker that is not in ``[panel]`` is reported by the study's marker check
(`cytokit.study.checks.marker_problems`), with the study's other markers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cytokit.errors import did_you_mean

__all__ = ["REAGENT_KEYS", "Reagent", "parse_reagents"]

#: Keys of a ``[[reagents]]`` entry, in the order the MIFlowCyt table lists them.
REAGENT_KEYS = ("marker", "fluorochrome", "clone", "vendor", "catalog", "lot")


@dataclass(frozen=True)
class Reagent:
    """One ``[[reagents]]`` entry (an empty string: not given)."""

    marker: str
    fluorochrome: str = ""
    clone: str = ""
    vendor: str = ""
    catalog: str = ""
    lot: str = ""


def _entry_name(i: int, entry: Mapping) -> str:
    marker = entry.get("marker")
    named = f" (marker {marker})" if isinstance(marker, str) and marker.strip() else ""
    return f"[[reagents]] entry {i}{named}"


def parse_reagents(config: Mapping[str, Any], at: str) -> tuple[tuple[Reagent, ...], list[str]]:
    """The ``[[reagents]]`` entries of a parsed ``study.toml`` and the problems found.

    Parameters
    ----------
    config : mapping
        The parsed TOML document.
    at : str
        Prefix of every problem (``"study.toml: "``).

    Returns
    -------
    reagents : tuple of Reagent
        The entries without problems, in file order.
    problems : list of str
    """
    if "reagents" not in config:
        return (), []
    table = config["reagents"]
    example = '[[reagents]]\nmarker = "CD3"\nfluorochrome = "APC"\nclone = "UCHT1"'
    if not isinstance(table, list) or not all(isinstance(e, Mapping) for e in table):
        return (), [
            f"{at}reagents = {table!r} must be a list of tables, one per marker, each written "
            f"as [[reagents]] with its keys under it, e.g.\n{example}"
        ]
    problems: list[str] = []
    out: list[Reagent] = []
    first: dict[str, int] = {}
    for i, entry in enumerate(table, start=1):
        where = f"{at}{_entry_name(i, entry)}"
        for key in entry:
            if key not in REAGENT_KEYS:
                problems.append(
                    f"{where}: unknown key {key!r}{did_you_mean(key, REAGENT_KEYS)}; known keys: "
                    f"{', '.join(REAGENT_KEYS)}"
                )
        values: dict[str, str] = {}
        for key in REAGENT_KEYS:
            if key not in entry:
                continue
            value = entry[key]
            if key in ("catalog", "lot") and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # a number typed without quotes is still the number's text
            if not isinstance(value, str) or not value.strip():
                problems.append(
                    f'{where}: {key} = {value!r} must be text, e.g. {key} = "{_EXAMPLES[key]}"'
                )
                continue
            values[key] = value.strip()
        marker = values.get("marker")
        if marker is None:
            if "marker" not in entry:
                problems.append(
                    f'{where}: no marker; name the [panel] marker it stains, e.g. marker = "CD3"'
                )
            continue
        if marker in first:
            problems.append(
                f"{where}: marker {marker} already has [[reagents]] entry {first[marker]}; "
                "give each marker one entry (remove or merge this one)"
            )
            continue
        first[marker] = i
        out.append(Reagent(**values))  # its marker is checked against [panel] with the others
    return tuple(out), problems


_EXAMPLES = {
    "marker": "CD3",
    "fluorochrome": "APC",
    "clone": "UCHT1",
    "vendor": "BioLegend",
    "catalog": "300412",
    "lot": "B301234",
}
