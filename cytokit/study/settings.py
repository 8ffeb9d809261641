"""`StudySettings`: the analysis options of ``study.toml``, checked and typed.

`parse_settings` reads every table the analysis uses and returns the
settings together with a list of problems (each naming the table, the key,
the bad value and what is allowed), so `cytokit.study.load_study` can report
them with the manifest's problems in one error. Tables other than those below
are left alone (other tools may keep their own settings there) unless the
name is a near miss of one cytokit reads (`STUDY_TABLES`: ``[qcc]``,
``[Chimerism]``), which is a problem; unknown keys inside these tables are
problems, since they are usually typos.

=================  ===========================  ==========================================
table              key                          meaning (default)
=================  ===========================  ==========================================
``[study]``        ``data_roots``               folders outside the study folder that its
                                                paths may lead into, e.g. a shared drive
                                                (none; relative to the study folder)
``[compensation]`` ``source``                   ``"file"`` (the FCS spillover keyword),
                                                ``"none"``, or a CSV matrix path relative
                                                to the study folder (header: detector
                                                ``$PnN`` names; one row per fluorochrome,
                                                an optional first label column)
``[transform]``    ``type``, parameters         the fluorescence transform of donor and
                                                phenotype markers (logicle defaults);
                   ``[transform.<marker>]``     a per-marker override table
``[gating]``       ``strategy``                 strategy file (required)
                   ``seed``                     adaptive gate fitting seed (0)
``[populations]``  ``<name> = "<gate path>"``   the study's populations (required); a
                                                gate path, a gate or quadrant id or a
                                                unique population name: `load_study`
                                                replaces each with its canonical path
``[chimerism]``    ``marker``                   donor marker (per patient: manifest
                                                ``donor_marker``); no marker: no chimerism
                   ``donor_is``                 ``positive`` / ``negative`` (``positive``;
                                                manifest ``donor_is`` overrides)
                   ``parent``                   gate path the threshold is placed on (the
                                                deepest gate containing every population)
                   ``ci``                       ``wilson`` / ``clopper-pearson`` (``wilson``)
``[qc]``           ``min_events``               donor events to quantify (50)
                   ``max_nonfinite``            largest fraction of a file's events dropped
                                                for NaN/inf values before the file fails
                                                (0.01; `cytokit.finite`)
``[counting]``     ``beads``                    bead gate path (bead-based counting)
                   ``lymphocytes``              gate counted against manifest
                                                ``lymphocytes_per_ul`` (the ``[chimerism]
                                                parent`` default: live single lymphocytes)
                   ``leukocytes``               gate counted against ``wbc_per_ul`` (none)
``[phenotype]``    ``markers``                  markers to describe (panel markers that no
                                                gate reads and that are not donor markers
                                                nor on a donor marker's detector)
                   ``thresholds``               ``{marker = value}``: fixed positivity
                                                thresholds (compensated scale values);
                                                other markers: adaptive (valley)
                   ``max_events``               events kept per population for medians
                                                (50,000; exact below it)
``[clustering]``   ``markers``, ``grid``,       passed to `cytokit.cluster.cluster_study`
                   ``metaclusters``, ``seed``   (grid [10, 10], 10 metaclusters, seed 1)
                   ``events``                   threshold-parent events kept per file for
                                                clustering (20,000; all below it)
=================  ===========================  ==========================================

``[[reagents]]`` (``marker``, ``fluorochrome``, ``clone``, ``vendor``, ``catalog``,
``lot``; `cytokit.study.reagents`): what stained each marker, for the MIFlowCyt
table (``miflowcyt.csv``); optional.

``[acquisition_qc]`` (``enabled``, ``checks``, ``sensitivity``, ``max_removed_pct``,
``warn_removed_pct``, ``exclude_channels``, ``time_channel``; `cytokit.qc.settings`):
acquisition QC before gating. Without the table there is no QC (a study's tables stay as they
were); with it QC runs unless ``enabled = false``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cytokit.errors import CytokitError, StudyError, did_you_mean
from cytokit.stats.intervals import METHODS as CI_METHODS
from cytokit.study.reagents import Reagent, parse_reagents

__all__ = [
    "ClusteringSettings",
    "StudySettings",
    "cohort_populations",
    "normalise_reference",
    "parse_settings",
]

DONOR_SIDES = ("positive", "negative")
_KNOWN = {
    "compensation": {"source"},
    "gating": {"strategy", "seed"},
    "chimerism": {"marker", "donor_is", "parent", "ci", "tube"},
    "qc": {"min_events", "max_nonfinite"},
    "counting": {"beads", "lymphocytes", "leukocytes"},
    "phenotype": {"markers", "thresholds", "max_events"},
    "clustering": {"markers", "grid", "metaclusters", "seed", "events"},
}


@dataclass(frozen=True)
class ClusteringSettings:
    """The ``[clustering]`` table of ``study.toml``.

    `parse_settings` reads it with the study's other tables (every problem
    listed); `from_config` reads it alone, for `cytokit.cluster` users
    (the first problem raised).

    Attributes
    ----------
    markers : tuple of str
        Markers (of ``[panel]``) the SOM clusters on.
    grid : (int, int)
    metaclusters : int
    seed : int
    events : int
        Threshold-parent events kept per file for clustering (all below it).
    """

    markers: tuple[str, ...]
    grid: tuple[int, int] = (10, 10)
    metaclusters: int = 10
    seed: int = 1
    events: int = 20_000

    @classmethod
    def from_config(cls, config: Mapping, source: str = "study.toml") -> ClusteringSettings:
        """Read and check ``config["clustering"]`` (the parsed study.toml).

        The same checks as `parse_settings` (one implementation), every
        problem in one error.

        Raises
        ------
        StudyError
            Naming `source`, the key, the bad value and an example of a good one.
        """
        table = config.get("clustering")
        if not isinstance(table, Mapping):
            raise StudyError(
                f"{source}: no [clustering] table; add one, e.g.\n[clustering]\n"
                'markers = ["CD3", "CD56", "CD16", "CD8"]\ngrid = [10, 10]\nmetaclusters = 10\nseed = 1'
            )
        problems: list[str] = []
        settings = _clustering(dict(table), f"{source}: ", problems)
        if problems or settings is None:
            raise StudyError("\n".join(problems))
        return settings


@dataclass(frozen=True)
class StudySettings:
    """Everything the analysis reads from ``study.toml`` (see the module docstring)."""

    populations: dict[str, str] = field(default_factory=dict)
    compensation: str = "file"
    transform: Any = None  # cytokit.gating.Transform or None
    marker_transforms: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    data_roots: tuple[str, ...] = ()
    gating_seed: int = 0
    donor_marker: str = ""
    donor_is: str = "positive"
    chimerism_parent: str = ""
    ci: str = "wilson"
    min_events: int = 50
    max_nonfinite: float = 0.01
    beads: str = ""
    lymphocytes: str = ""
    leukocytes: str = ""
    phenotype_markers: tuple[str, ...] | None = None
    phenotype_thresholds: dict[str, float] = field(default_factory=dict)
    phenotype_max_events: int = 50_000
    clustering: ClusteringSettings | None = None
    #: ``[acquisition_qc]``: None without the table (no QC, as before the table existed)
    acquisition_qc: Any = None  # cytokit.qc.AcquisitionQCSettings or None
    #: ``[[reagents]]``: what stained each marker (`cytokit.study.reagents`)
    reagents: tuple[Reagent, ...] = ()

    @property
    def qc_settings(self):
        """The acquisition-QC settings when QC runs (table present and enabled), else None."""
        a = self.acquisition_qc
        return a if a is not None and a.enabled else None

    def transform_of(self, marker: str):
        """The transform of `marker` (its override, else the default)."""
        return self.marker_transforms.get(marker, self.transform)

    def gate_paths(self) -> dict[str, str]:
        """Every gate reference the settings hold: ``{what: reference}``, for checking a strategy."""
        out = {f"[populations] {k}": v for k, v in self.populations.items()}
        for key in ("beads", "lymphocytes", "leukocytes"):
            if getattr(self, key):
                out[f"[counting] {key}"] = getattr(self, key)
        if self.chimerism_parent:
            out["[chimerism] parent"] = self.chimerism_parent
        return out

    def with_gate_paths(self, paths: Mapping[str, str]) -> StudySettings:
        """These settings with each gate reference `r` of `gate_paths` replaced by ``paths[r]``
        (references not in `paths` are kept)."""

        def canon(ref: str) -> str:
            return paths.get(ref, ref) if ref else ref

        return replace(
            self,
            populations={k: canon(v) for k, v in self.populations.items()},
            beads=canon(self.beads),
            lymphocytes=canon(self.lymphocytes),
            leukocytes=canon(self.leukocytes),
            chimerism_parent=canon(self.chimerism_parent),
        )


def _int(value, where: str, problems: list[str], *, minimum: int = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{where} = {value!r} must be a whole number >= {minimum}")
        return None
    return value


def _path(value, where: str, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(f'{where} = {value!r} must be a gate path such as "/Lymphocytes"')
        return ""
    # as written: a gate's name may begin or end with a space, as the strategy's
    # readers and the Python API keep it (a stray space is refused, with a "did you mean")
    return value


def _markers(value, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) and m for m in value):
        problems.append(f'{where} = {value!r} must be a list of marker names, e.g. ["CD16", "CD8"]')
        return None
    return tuple(value)


def parse_settings(config: Mapping[str, Any], source: str = "study.toml"):
    """Check and type the analysis tables of a parsed ``study.toml``.

    Parameters
    ----------
    config : mapping
        The parsed TOML document.
    source : str
        The file name, starting every problem.

    Returns
    -------
    settings : StudySettings
        With defaults where a value was missing or bad.
    problems : list of str
        Each a complete sentence naming `source`, the table and key.
    """
    problems: list[str] = []
    at = f"{source}: "
    _misspelt_tables(config, at, problems)
    tables = _tables(config, at, problems)
    kw: dict[str, Any] = {}
    # one table at a time; this order is the order of the problems reported
    _study_keys(config, at, problems, kw)
    _populations(tables, at, problems, kw)
    _scales(tables, source, at, problems, kw)
    _gating(tables, at, problems, kw)
    _chimerism(tables, at, problems, kw)
    _qc_counting(tables, at, problems, kw)
    _phenotype(tables, at, problems, kw)
    cl = tables["clustering"]
    if cl:
        kw["clustering"] = _clustering(cl, at, problems)
    kw["reagents"], found = parse_reagents(config, at)
    problems += found
    if "acquisition_qc" in config:
        from cytokit.qc.settings import parse_acquisition_qc

        acq, found = parse_acquisition_qc(config["acquisition_qc"], source)
        problems += found
        kw["acquisition_qc"] = None if found else acq
    return StudySettings(**kw), problems


#: Every top-level table cytokit reads from ``study.toml`` (here and elsewhere: the panel,
#: tubes, reagents, normalisation, outcomes and report options).
STUDY_TABLES = (
    "study", "panel", "compensation", "transform", "gating", "populations", "counting",
    "chimerism", "qc", "phenotype", "clustering", "acquisition_qc", "reagents", "normalise",
    "tubes", "outcomes", "report",
)  # fmt: skip


def _misspelt_tables(config: Mapping[str, Any], at: str, problems: list[str]) -> None:
    """A table whose name is a near miss of one cytokit reads (``[qcc]``, ``[Chimerism]``) is
    a problem: its settings would be dropped without a word and the defaults used.
    Tables with other names are left to the tools that keep them."""
    from cytokit.errors import did_you_mean

    for name in config:
        if name in STUDY_TABLES:
            continue
        hint = did_you_mean(name, STUDY_TABLES)
        if hint:
            problems.append(
                f"{at}unknown table [{name}]{hint}; cytokit would not read it, and would use "
                "its defaults instead"
            )


def _tables(config: Mapping[str, Any], at: str, problems: list[str]) -> dict[str, dict]:
    """The known tables of `config` (empty when missing or not a table); unknown keys reported."""
    tables: dict[str, dict] = {}
    for name in (*_KNOWN, "transform", "populations"):
        table = config.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{at}[{name}] must be a table, got {table!r}")
            table = {}
        tables[name] = table
        known = _KNOWN.get(name)
        if known is not None:
            for key in table:
                if key not in known:
                    problems.append(
                        f"{at}unknown key {key!r} in [{name}]; known keys: {', '.join(sorted(known))}"
                    )
    return tables


#: Keys cytokit reads from tables whose other keys are the lab's own (a study's
#: description, a sponsor): a near miss of one of these is a problem, other keys are kept.
_OPEN_TABLES = {"study": ("name", "seed", "data_roots"), "report": ("cohort_populations",)}


def _misspelt_keys(config: Mapping[str, Any], at: str, problems: list[str]) -> None:
    """A key of ``[study]`` or ``[report]`` that is a near miss of one cytokit reads
    (``data_root``): its setting would be dropped for the default without a word."""
    for name, known in _OPEN_TABLES.items():
        table = config.get(name)
        for key in table if isinstance(table, dict) else ():
            hint = "" if key in known else did_you_mean(key, known)
            if hint:
                problems.append(
                    f"{at}unknown key {key!r} in [{name}]{hint}; cytokit would not read it, "
                    "and would use the default instead"
                )


def _study_keys(config: Mapping[str, Any], at: str, problems: list[str], kw: dict) -> None:
    """``[study] name`` and ``data_roots``."""
    _misspelt_keys(config, at, problems)
    study = config.get("study")  # its other keys (the simulator's seed) are not checked
    if isinstance(study, dict) and "name" in study:
        name = study["name"]
        if not isinstance(name, str) or not name.strip():
            problems.append(
                f"{at}[study] name = {name!r} must be text naming the study, e.g. "
                'name = "NK trial 2024" (default: the folder name)'
            )
    if isinstance(study, dict) and "data_roots" in study:
        roots = study["data_roots"]
        if not isinstance(roots, list) or not all(isinstance(r, str) and r.strip() for r in roots):
            problems.append(
                f"{at}[study] data_roots = {roots!r} must be a list of folders, e.g. "
                'data_roots = ["/mnt/cytometer"]'
            )
        else:
            kw["data_roots"] = tuple(r.strip() for r in roots)


def _populations(tables: dict, at: str, problems: list[str], kw: dict) -> None:
    """``[populations]``: name = gate path."""
    pops = tables["populations"]
    if not pops:
        problems.append(
            f'{at}no [populations] table; name each population\'s gate path, e.g. NK = "/Lymphocytes/CD3-CD56+"'
        )
    kw["populations"] = {}
    for name, path in pops.items():
        p = _path(path, f"{at}[populations] {name}", problems)
        if p:
            kw["populations"][str(name)] = p


def _scales(tables: dict, source: str, at: str, problems: list[str], kw: dict) -> None:
    """``[compensation]`` and ``[transform]`` (with per-marker ``[transform.M]``)."""
    from cytokit.gating import transform_from_config

    comp = tables["compensation"].get("source", "file")
    if not isinstance(comp, str) or not comp.strip():
        problems.append(f'{at}[compensation] source = {comp!r}: use "file", "none" or a CSV path')
    elif comp.strip().lower() in ("file", "none"):
        kw["compensation"] = comp.strip().lower()
    elif not any(c in comp for c in "./\\") and (
        hint := did_you_mean(comp.strip(), ("file", "none"))
    ):
        # "Flie" would be looked for as a CSV file of that name
        problems.append(
            f"{at}[compensation] source = {comp!r}{hint}: "
            'use "file", "none" or the path of a CSV file'
        )
    else:
        kw["compensation"] = comp.strip()

    xf = dict(tables["transform"])
    overrides = {k: xf.pop(k) for k in list(xf) if isinstance(xf[k], dict)}
    try:
        kw["transform"] = transform_from_config(xf or {"type": "logicle"}, f"{source} [transform]")
    except CytokitError as exc:
        problems.append(str(exc))
    kw["marker_transforms"] = {}
    for marker, table in overrides.items():
        try:
            kw["marker_transforms"][marker] = transform_from_config(
                table, f"{source} [transform.{marker}]"
            )
        except CytokitError as exc:
            problems.append(str(exc))


def _gating(tables: dict, at: str, problems: list[str], kw: dict) -> None:
    """``[gating]``: the strategy file and the adaptive gates' seed."""
    gating = tables["gating"]
    strategy = gating.get("strategy")
    if not isinstance(strategy, str) or not strategy.strip():
        problems.append(
            f'{at}[gating] strategy must name the strategy file, e.g. strategy = "strategy.yaml"'
        )
    else:
        kw["strategy"] = strategy.strip()
    if "seed" in gating:
        kw["gating_seed"] = _int(gating["seed"], f"{at}[gating] seed", problems) or 0


def _chimerism(tables: dict, at: str, problems: list[str], kw: dict) -> None:
    """``[chimerism]``: donor marker, side, parent gate, interval method."""
    chim = tables["chimerism"]
    if "marker" in chim:
        if isinstance(chim["marker"], str) and chim["marker"].strip():
            kw["donor_marker"] = chim["marker"].strip()
        else:
            problems.append(f"{at}[chimerism] marker = {chim['marker']!r} must be a marker name")
    side = chim.get("donor_is", "positive")
    if side not in DONOR_SIDES:
        problems.append(f"{at}[chimerism] donor_is = {side!r} must be 'positive' or 'negative'")
    else:
        kw["donor_is"] = side
    if "parent" in chim:
        kw["chimerism_parent"] = _path(chim["parent"], f"{at}[chimerism] parent", problems)
    ci = chim.get("ci", "wilson")
    if ci not in CI_METHODS:
        problems.append(f"{at}[chimerism] ci = {ci!r} must be one of {', '.join(CI_METHODS)}")
    else:
        kw["ci"] = ci


def _qc_counting(tables: dict, at: str, problems: list[str], kw: dict) -> None:
    """``[qc]`` limits and ``[counting]`` gate paths."""
    if "min_events" in tables["qc"]:
        value = _int(tables["qc"]["min_events"], f"{at}[qc] min_events", problems, minimum=1)
        if value is not None:
            kw["min_events"] = value

    if "max_nonfinite" in tables["qc"]:
        value = tables["qc"]["max_nonfinite"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            problems.append(
                f"{at}[qc] max_nonfinite = {value!r} must be a fraction in [0, 1), "
                "e.g. 0.01 (1 % of a file's events)"
            )
        else:
            kw["max_nonfinite"] = float(value)

    for key in ("beads", "lymphocytes", "leukocytes"):
        if key in tables["counting"]:
            kw[key] = _path(tables["counting"][key], f"{at}[counting] {key}", problems)


def _phenotype(tables: dict, at: str, problems: list[str], kw: dict) -> None:
    """``[phenotype]``: markers, fixed thresholds, events kept per sample."""
    ph = tables["phenotype"]
    if "markers" in ph:
        kw["phenotype_markers"] = _markers(ph["markers"], f"{at}[phenotype] markers", problems)
    if "thresholds" in ph:
        th = thresholds(ph["thresholds"], f"{at}[phenotype] thresholds", "CD16", problems)
        if th is not None:
            kw["phenotype_thresholds"] = th
    if "max_events" in ph:
        value = _int(ph["max_events"], f"{at}[phenotype] max_events", problems, minimum=100)
        if value is not None:
            kw["phenotype_max_events"] = value


def thresholds(value, where: str, example: str, problems: list[str]) -> dict[str, float] | None:
    """A phenotype ``thresholds`` table (``[phenotype]``, a tube's ``phenotype``): marker =
    finite number, else None and a problem (NaN or inf would leave every row of the
    marker without a percentage)."""
    ok = isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in value.values()
    )
    if not ok:
        problems.append(
            f"{where} = {value!r} must be a table of marker = finite number (compensated "
            f"scale value), e.g. {{ {example} = 1000 }}"
        )
        return None
    return {str(k): float(v) for k, v in value.items()}


def _clustering(cl: dict, at: str, problems: list[str]) -> ClusteringSettings | None:
    """``[clustering]``: the one check behind `parse_settings` and `ClusteringSettings.from_config`."""
    where = f"{at}[clustering]"
    markers = _markers(cl.get("markers"), f"{where} markers", problems)
    if markers is not None and not markers:
        problems.append(f'{where} markers = [] must name at least one marker, e.g. ["CD3", "CD56"]')
        markers = None
    if markers is not None and len(set(markers)) != len(markers):
        problems.append(f"{where} markers = {list(markers)!r} repeats a marker; list each once")
        markers = None
    grid = cl.get("grid", [10, 10])
    if (
        not isinstance(grid, (list, tuple))
        or len(grid) != 2
        or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in grid)
    ):
        problems.append(f"{where} grid = {grid!r} must be two whole numbers >= 1, e.g. [10, 10]")
        grid = [10, 10]
    meta = _int(cl.get("metaclusters", 10), f"{where} metaclusters", problems, minimum=2)
    seed = _int(cl.get("seed", 1), f"{where} seed", problems)
    events = _int(cl.get("events", 20_000), f"{where} events", problems, minimum=100)
    if meta is not None and meta > grid[0] * grid[1]:
        problems.append(
            f"{where} metaclusters = {meta} is more than the {grid[0] * grid[1]} nodes "
            f"of the {grid[0]}x{grid[1]} grid; use at most {grid[0] * grid[1]} or a larger grid"
        )
        meta = None
    if markers is None or meta is None or seed is None or events is None:
        return None
    return ClusteringSettings(markers, (int(grid[0]), int(grid[1])), meta, seed, events)


def normalise_reference(table, where: str, patients) -> tuple[str, list[str]]:
    """``[normalise] reference`` (a patient id; '' without the table) and its problems.

    `where` names the table (``study.toml [normalise]``); `patients` are the manifest's
    (None: not known, the id is not looked up).
    """
    if table is None:
        return "", []
    if not isinstance(table, dict) or set(table) - {"reference"}:
        hint = (
            "".join(did_you_mean(str(k), ("reference",)) for k in table if k != "reference")
            if isinstance(table, dict)
            else ""
        )
        return "", [
            f'{where}: give only reference = "<patient id of the reference sample>", got '
            f"{table!r}{hint}"
        ]
    ref = table.get("reference")
    if not isinstance(ref, str) or not ref or (patients is not None and ref not in patients):
        return "", [
            f"{where}: reference = {ref!r} is not a patient of manifest.csv; name the patient "
            "id the reference sample's files are listed under"
        ]
    return ref, []


def cohort_populations(table, where: str, known) -> tuple[dict[str, list[str]] | None, list[str]]:
    """``[report] cohort_populations`` (stratum → populations; None without it) and its
    problems; `known` are the study's population names."""
    if table is None:
        return None, []
    example = 'e.g. cohort_populations = { NK = ["NK", "NK_dim"], CIK = ["CIK"] }'
    if not isinstance(table, dict):
        return None, [f"{where} = {table!r}: must be a table of stratum = [populations]; {example}"]
    known = list(known)
    out: dict[str, list[str]] = {}
    problems = []
    for stratum, pops in table.items():
        if not isinstance(pops, list) or not all(isinstance(x, str) for x in pops):
            problems.append(
                f"{where}: {stratum} = {pops!r} must be a list of population names; {example}"
            )
            continue
        unknown = [x for x in pops if x not in known]
        if unknown:
            problems.append(
                f"{where}: {stratum} names {', '.join(map(repr, unknown))}, not a population of "
                f"the study ({', '.join(known)}); fix the name in study.toml"
            )
            continue
        out[str(stratum)] = list(pops)
    return (out if not problems else None), problems
