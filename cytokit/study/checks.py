"""Checks of a study's markers against its ``[panel]``, and of its FCS files against both.

`load_study` (`cytokit.study`) calls these once ``study.toml`` and
``manifest.csv`` are read. Each problem is said once, where it is to be
fixed:

* a marker the study uses (``[chimerism] marker``, ``[phenotype]``,
  ``[clustering] markers``, ``[[reagents]]``, the manifest's ``donor_marker``) but ``[panel]``
  lacks is one problem listing every place that uses it; when an entry of
  ``[panel]`` that nothing uses is a near miss of it (``CD65`` for ``CD56``),
  the problem is reported at that entry, the likely typo;
* a ``[transform.<marker>]`` table for a marker no panel has (``[transform.CD99]``):
  its transform would apply to nothing (`transform_problems`);
* two ``[panel]`` markers on one detector (the same value, or values that
  resolve to the same channel of a file): the second would read the first's
  values (`panel_problems`, and per file layout);
* a problem every file shares (a panel entry naming a detector no file has,
  a channel the strategy reads) is one line saying which files: "in all 15
  files", "in 2 of 15 files (…)".

Near misses of markers, channels and gate names are suggested
(`cytokit.errors.did_you_mean`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from cytokit.errors import CytokitError, FCSError, did_you_mean, near_misses, prefixed
from cytokit.study.panel import Panel

__all__ = [
    "file_problems",
    "marker_problems",
    "panel_problems",
    "transform_problems",
    "which_files",
]

#: Files named in a problem shared by several of them; the rest are counted.
NAMED_FILES = 3


def _lines(lines: Sequence[int]) -> str:
    """``line 4``, ``lines 2-16`` (a run) or ``lines 2, 5, 9 and 4 more``."""
    lines = sorted(set(lines))
    if len(lines) == 1:
        return f"line {lines[0]}"
    if lines[-1] - lines[0] == len(lines) - 1:
        return f"lines {lines[0]}-{lines[-1]}"
    shown = ", ".join(map(str, lines[:NAMED_FILES]))
    more = len(lines) - NAMED_FILES
    return f"lines {shown}" + (f" and {more} more" if more > 0 else "")


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def marker_problems(
    toml: Path, manifest: Path, panel: Panel, settings, rows, *, strategy=None
) -> list[str]:
    """One problem per marker the study uses that `panel` does not have.

    When exactly one entry of `panel` is a near miss of such a marker and
    nothing uses it (no setting, no manifest row, and the strategy reads no
    channel it names), the problem is reported at that entry.

    Parameters
    ----------
    toml, manifest : Path
        ``study.toml`` and ``manifest.csv``, for the messages.
    panel : Panel
        The study's ``[panel]``.
    settings : StudySettings
    rows : sequence of ManifestRow
    strategy : GatingStrategy, optional
        The study's strategy as loaded (with the panel).

    Returns
    -------
    list of str
    """
    uses: dict[str, list[str]] = {}

    def use(marker: str, where: str) -> None:
        places = uses.setdefault(marker, [])
        if where not in places:
            places.append(where)

    if settings.donor_marker:
        use(settings.donor_marker, "[chimerism] marker")
    for m in settings.phenotype_markers or ():
        use(m, "[phenotype] markers")
    for m in settings.phenotype_thresholds:
        use(m, "[phenotype] thresholds")
    if settings.clustering is not None:
        for m in settings.clustering.markers:
            use(m, "[clustering] markers")
    for reagent in getattr(settings, "reagents", ()):
        use(reagent.marker, "[[reagents]]")
    lines: dict[str, list[int]] = {}
    for row in rows:
        if row.donor_marker:
            lines.setdefault(row.donor_marker, []).append(row.line)
    for m, at in lines.items():
        use(m, f"the donor_marker of {manifest.name} ({_lines(at)})")
    read = set()
    if strategy is not None:
        for g in strategy.gates:
            for d in g.dimensions:
                read |= {d.channel} if d.ratio is None else {d.ratio.numerator, d.ratio.denominator}
    unused = [m for m in panel if m not in uses and m not in read and panel.markers[m] not in read]
    have = ", ".join(panel) or "none"
    problems = []
    for marker, places in uses.items():
        if marker in panel:
            continue
        typo = near_misses(marker, unused)
        if len(typo) == 1:  # the entry nothing uses is the misspelt one
            entry = typo[0]
            problems.append(
                f"{toml} [panel]: entry {entry} = {panel.markers[entry]!r} is used nowhere, "
                f"and marker {marker!r}, which {_join(places)} use, is not in [panel]: is "
                f"{entry} a misspelling of {marker}? Rename the entry (or, if {entry} is "
                f"right, fix {_join(places)})"
            )
            continue
        problems.append(
            f"{toml}: marker {marker!r} is not in [panel]{did_you_mean(marker, panel)}, "
            f"but {_join(places)} use it; [panel] has: {have}. Add a line "
            f'{marker} = "<channel>" to [panel]'
        )
    return problems


def _shared(panel: Panel, markers: Iterable[str]) -> str:
    return _join([f"{m} = {panel.markers[m]!r}" for m in markers])


def panel_problems(
    toml: Path, panel: Panel, donors: Iterable[str] = (), read: Iterable[str] = ()
) -> list[str]:
    """One problem per channel value ``[panel]`` gives more than one marker read from it:
    the markers would read the same column, every one after the first another's values.

    `donors` are the study's donor markers (the manifest's ``donor_marker`` column, else
    ``[chimerism] marker``): a file reads one, so typing stains on one detector (HLA-A2,
    HLA-B7 and HLA-A3 on FITC-A) are no conflict, and a marker that shares their
    detector is not described by default (`Study.phenotype_markers`); it is a conflict
    only where something reads it by name (`read`: ``[phenotype] markers``,
    ``[clustering] markers``, the gates)."""
    donors, read = set(donors), set(read)
    by_value: dict[str, list[str]] = {}
    for marker, value in panel.markers.items():
        by_value.setdefault(value, []).append(marker)
    out = []
    for ms in by_value.values():
        if len(ms) < 2:
            continue
        if donors.intersection(ms):
            others = [m for m in ms if m not in donors and m in read]
            if not others:
                continue
            ms = [next(m for m in ms if m in donors), *others]
        out.append(
            f"{toml} [panel]: {_shared(panel, ms)} name the same channel, so {_join(ms[1:])} "
            f"would read {ms[0]}'s values; give each marker its own channel (the files' $PnS "
            "labels say which marker each detector carries)"
        )
    return out


def transform_problems(toml: Path, config: dict, markers: Sequence[str]) -> list[str]:
    """One problem per ``[transform.<marker>]`` table whose marker is not among `markers`
    (those of ``[panel]`` and of the tubes' panels): its transform would be used for nothing."""
    table = config.get("transform")
    names = [k for k, v in table.items() if isinstance(v, dict)] if isinstance(table, dict) else []
    return [
        f"{toml}: [transform.{name}] is for marker {name!r}, which is not in [panel]"
        f"{did_you_mean(name, markers)}, so no marker would use it; rename the table "
        f"to a marker of [panel] ({', '.join(markers) or 'none'})"
        for name in names
        if name not in markers
    ]


def which_files(files: Sequence[Path], n_read: int) -> str:
    """Where a problem shared by `files` (of the `n_read` files read) holds, for its prefix."""
    if len(files) == 1:
        return str(files[0])
    if len(files) == n_read:
        return f"in all {n_read} files"
    named = ", ".join(str(f) for f in files[:NAMED_FILES])
    more = len(files) - NAMED_FILES
    return f"in {len(files)} of {n_read} files ({named}" + (
        f" and {more} more)" if more > 0 else ")"
    )


def _layout_problems(channels, panel: Panel, need: Iterable[str], strategy) -> list[str]:
    """What is wrong with one channel layout: markers that do not resolve, channels the
    strategy reads that it lacks. The messages name no file."""
    from cytokit.gating.compile import Resolver

    out = []
    failing: set[str] = set()  # channel names of panel entries that match no channel
    by_channel: dict[int, list[str]] = {}
    for marker in need:
        found = panel.find(channels, marker)
        if isinstance(found, str):
            out.append(found)
            if marker in panel:
                failing.add(panel.markers[marker])
        else:
            by_channel.setdefault(found, []).append(marker)
    for index, ms in by_channel.items():
        # the same value twice is `panel_problems`' to report, once for the study
        if len({panel.markers[m] for m in ms}) > 1:
            ch = next(c for c in channels if c.index == index)
            out.append(
                f"panel entries {_shared(panel, ms)}{f' ({panel.source})' if panel.source else ''} "
                f"resolve to the same channel {ch.label}, so {_join(ms[1:])} would read "
                f"{ms[0]}'s values; give each marker its own channel"
            )
    if strategy is None:
        return out
    resolver = Resolver(channels, None, strategy.matrices, "the file")
    missing = []
    for g in strategy.gates:
        for d in g.dimensions:
            names = {d.channel} if d.ratio is None else {d.ratio.numerator, d.ratio.denominator}
            if names & failing:  # a YAML strategy's marker mapped by a broken panel entry
                continue
            try:
                resolver.dimension(d, g.id)
            except CytokitError as exc:
                missing.append(str(exc).splitlines()[0])
    if missing:
        out.append(
            "the strategy reads channels the file lacks: " + "; ".join(dict.fromkeys(missing))
        )
    return out


def file_problems(
    rows,
    panel: Panel | None,
    markers: list[str],
    strategy,
    unreadable: dict[Path, str],
    *,
    donor: bool = True,
    seen: list | None = None,
) -> list[str]:
    """Open every file's header: markers resolve, gate channels exist.

    Each problem is said once for all the files it holds in (`which_files`).
    A file that cannot be read at all goes into `unreadable` (the analysis
    lists it as a failure) instead.

    Parameters
    ----------
    rows : sequence of ManifestRow
    panel : Panel or None
        None when the study's ``[panel]`` could not be read: markers are not
        checked (that problem is reported already).
    markers : list of str
        The markers every file must have (each row's donor marker is added).
    strategy : GatingStrategy or None
    unreadable : dict
        Filled with ``{path: reason}``.
    donor : bool
        Also require each row's donor marker (False for a tube without origin).
    seen : list, optional
        Given, each readable file's channels are appended to it as a tuple of
        ``($PnN, $PnS)`` pairs.
    """
    from cytokit.fcs import read_fcs

    found: dict[str, list[Path]] = {}
    cache: dict[tuple, list[str]] = {}
    problems = []
    n_read = 0
    for row in rows:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sample = read_fcs(row.file, mmap=True, scale=False)
        except FCSError as exc:
            unreadable[row.file] = str(exc)
            continue
        except (CytokitError, OSError) as exc:
            problems.append(prefixed(row.file, exc))
            continue
        n_read += 1
        need: list[str] = []
        if panel is not None:  # a marker [panel] lacks is `marker_problems`' to report
            mine = [row.donor_marker] if donor else []
            need = [m for m in dict.fromkeys([*markers, *mine]) if m in panel]
        pairs = tuple((c.name, c.marker) for c in sample.channels)
        if seen is not None:
            seen.append(pairs)
        layout = (pairs, tuple(need))
        if layout not in cache:
            cache[layout] = _layout_problems(sample.channels, panel or Panel({}), need, strategy)
        for text in cache[layout]:
            found.setdefault(text, []).append(row.file)
    problems += [f"{which_files(files, n_read)}: {text}" for text, files in found.items()]
    return problems
