"""A study folder: ``study.toml``, ``manifest.csv``, optional ``infusions.csv``, the FCS files.

`load_study` reads and checks everything before any work starts and reports
every problem it finds in one `StudyError`, so a lab fixes its manifest once
rather than once per error:

* ``study.toml``: valid TOML, a ``[panel]``, the analysis tables
  (`cytokit.study.settings.parse_settings`: unknown keys, bad values). When it
  cannot be read, nothing that depends on it (markers, strategy, files) is
  checked: its one problem is not followed by those it causes;
* ``manifest.csv``: the required columns, at least one row, one
  well-formed row per file (field count, whole-number days within
  ±`cytokit.study.manifest.MAX_DAYS` of the first infusion, non-negative counts, ``donor_is``),
  every file present and listed once (however its path is spelled: links and
  ``..`` are resolved), one (patient, day, sample_type) per file, one donor
  marker and side per patient; `check_same_content` (run by
  `cytokit.analyze` once the files are hashed) refuses two lines whose files
  hold the same bytes;
* ``infusions.csv``: well-formed rows (days as in the manifest) for
  patients of the manifest;
* ``[panel]``: no two markers on one channel (`cytokit.study.checks.panel_problems`;
  per file, entries that resolve to one channel);
* markers: the donor, phenotype and clustering markers and each
  ``[transform.<marker>]`` are in ``[panel]``
  (`cytokit.study.checks.marker_problems`: one problem per missing marker,
  at the ``[panel]`` entry when that is the likely typo);
* the gating strategy: the file exists, parses (a YAML strategy with the
  study's ``[panel]`` and ``[transform]``, `strategy_options`), and has every
  population the settings name (populations, counting gates, the chimerism
  parent). Each of those names (a path, a gate or quadrant id, a unique
  population name) is replaced by the canonical path of its population in
  `Study.settings`, so every table shows one spelling;
* tubes (`cytokit.study.tubes`): the ``[tubes.<name>]`` tables, each
  manifest row's ``tube`` among them, each further tube's strategy (read
  with the tube's panel) and its files checked against its own panel and
  strategy, a problem said once per tube ("tube 'receptors': in all 12
  files: …"); `Study.tube_origin` says which tubes carry the donor marker;
* the FCS files of the default tube (``check_files``): every panel marker resolves to a channel,
  and every channel a gate reads exists; a problem several files share is
  said once, naming them ("in all 15 files"). A file that cannot be read at all
  (corrupt, truncated) is not a study problem: it is listed in
  `Study.unreadable` and the analysis reports it as a failure while the
  other files go on.

Every path the study names (manifest rows, ``[gating] strategy``,
``[compensation] source``, and ``manifest.csv`` and ``infusions.csv``
themselves) must resolve, symbolic links followed, inside the study folder or
a folder listed in ``[study] data_roots``, and be a regular file; anything
else is a problem, and the file is not opened (`cytokit._paths`).
``study.toml`` must be inside the study folder itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cytokit._paths import refusal, study_roots
from cytokit.errors import CytokitError, GatingError, StudyError, did_you_mean, prefixed
from cytokit.study._toml import load_toml
from cytokit.study.checks import (
    file_problems,
    marker_problems,
    panel_problems,
    transform_problems,
)
from cytokit.study.clinical_files import ClinicalFiles, read_clinical_files
from cytokit.study.manifest import (
    Infusion,
    ManifestRow,
    read_manifest,
)
from cytokit.study.panel import Panel
from cytokit.study.settings import StudySettings, parse_settings
from cytokit.study.tubes import DEFAULT_TUBE, Tube, parse_tubes

__all__ = [
    "Study",
    "check_same_content",
    "load_study",
    "strategy_options",
]


@dataclass
class Study:
    """A loaded, checked study folder.

    Attributes
    ----------
    root : Path
    name : str
        ``[study] name`` (default: the folder name).
    config : dict
        ``study.toml`` as parsed.
    panel : Panel
    rows : list of ManifestRow
    infusions : list of Infusion
    strategy : Path or None
        The strategy file (None when a strategy object was given).
    settings : StudySettings
        The analysis options; once the strategy is loaded, every gate
        reference in them is the canonical path of its population.
    gating : GatingStrategy or None
        The loaded strategy (None when not checked: ``check_files=False``).
    unreadable : dict of Path to str
        Files that exist but could not be read, with the reason.
    tubes : dict of str to Tube
        Every tube (`cytokit.study.tubes`), the default tube (the top-level tables) first.
    chimerism_tube : str
        The tube chimerism and counts come from (``[chimerism] tube``).
    tube_gating : dict of str to GatingStrategy
        The loaded strategy of each tube other than the default (when checked).
    tube_origin : dict of str to bool
        Whether each tube the manifest uses carries its rows' donor marker in every
        readable file (its cells have origin, donor or recipient); when checked.
    clinical : ClinicalFiles
        ``treatments.csv`` (or ``infusions.csv``), ``outcomes.csv`` and
        ``[outcomes]``; `infusions` are its given cell infusions.
    """

    root: Path
    name: str
    config: dict[str, Any]
    panel: Panel
    rows: list[ManifestRow]
    infusions: list[Infusion]
    strategy: Path | None
    settings: StudySettings = field(default_factory=StudySettings)
    gating: Any = None
    unreadable: dict[Path, str] = field(default_factory=dict)
    tubes: dict[str, Tube] = field(default_factory=dict)
    chimerism_tube: str = DEFAULT_TUBE
    tube_gating: dict[str, Any] = field(default_factory=dict)
    tube_origin: dict[str, bool] = field(default_factory=dict)
    clinical: ClinicalFiles = field(default_factory=ClinicalFiles)
    _phenotype: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _tube_phenotype: dict[str, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def tube_of(self, row: ManifestRow) -> str:
        """The name of the tube a manifest row was stained with."""
        return row.tube or DEFAULT_TUBE

    def tubes_used(self) -> list[str]:
        """The tubes the manifest lists files of, in `tubes` order."""
        used = {self.tube_of(r) for r in self.rows}
        return [t for t in (self.tubes or {DEFAULT_TUBE: None}) if t in used]

    @property
    def patients(self) -> list[str]:
        return sorted({r.patient for r in self.rows})

    def donor_marker(self, row: ManifestRow) -> str:
        """The donor marker of a row (its own, else ``[chimerism] marker``; may be empty)."""
        return row.donor_marker or self.settings.donor_marker

    def donor_side(self, row: ManifestRow) -> int:
        """+1 when the row's donor cells are marker-positive, -1 when negative."""
        return -1 if (row.donor_is or self.settings.donor_is) == "negative" else 1

    def donor_markers(self) -> list[str]:
        """Every donor marker the study uses, in first-use order."""
        return list(dict.fromkeys(m for m in map(self.donor_marker, self.rows) if m))

    def phenotype_markers(self) -> tuple[str, ...]:
        """``[phenotype] markers``, or by default every panel marker that no gate reads
        and that is not a donor marker nor on a donor marker's detector (another typing
        stain: HLA-A3 beside HLA-A2 on FITC-A), decided on the first readable file."""
        s = self.settings
        if s.phenotype_markers is not None:
            return tuple(s.phenotype_markers)
        if self._phenotype is None:  # decided once per loaded study (Study.gate asks per file)
            self._phenotype = self._default_phenotype_markers()
        return self._phenotype

    def _default_phenotype_markers(self, tube: str = DEFAULT_TUBE) -> tuple[str, ...]:
        from cytokit.fcs import read_fcs

        strategy = self.tube_strategy(tube)
        panel = self.tube_panel(tube)
        donors = set(self.donor_markers())
        for row in self.rows:
            if row.file in self.unreadable or self.tube_of(row) != tube:
                continue
            try:
                sample = read_fcs(row.file, mmap=True, scale=False)
            except CytokitError:
                continue
            gated = gate_markers(strategy, panel, sample)
            # a stain on a donor marker's detector is another typing stain, not a phenotype
            typing = {panel.markers[m] for m in donors if m in panel.markers}
            return tuple(
                m
                for m in panel
                if m not in gated and m not in donors and panel.markers.get(m) not in typing
            )
        return ()

    # -- tubes ----------------------------------------------------------------------------
    def tube(self, name: str = DEFAULT_TUBE) -> Tube:
        """The `Tube` called `name` (``default``: the top-level tables)."""
        if name == DEFAULT_TUBE and name not in self.tubes:
            s = self.settings
            return Tube(
                DEFAULT_TUBE,
                self.panel,
                tuple(self.panel),
                s.strategy,
                dict(s.populations),
                s.phenotype_markers,
                dict(s.phenotype_thresholds),
            )
        if name not in self.tubes:
            raise CytokitError(
                f"{self.root}: no tube {name!r} in study.toml; its tubes are: "
                f"{', '.join(self.tubes) or DEFAULT_TUBE}"
            )
        return self.tubes[name]

    def tube_panel(self, name: str = DEFAULT_TUBE) -> Panel:
        """The panel tube `name`'s files are read with."""
        return self.panel if name == DEFAULT_TUBE else self.tube(name).panel

    def tube_strategy(self, name: str = DEFAULT_TUBE):
        """The gating strategy of tube `name` (loaded with its panel when not loaded yet)."""
        if name == DEFAULT_TUBE:
            return self.gating if self.gating is not None else self.load_strategy()
        if name in self.tube_gating:
            return self.tube_gating[name]
        from cytokit.gating import load_strategy

        tube = self.tube(name)
        path = self.root / tube.strategy
        strategy = load_strategy(path, **strategy_options(path, tube.panel, self.config))
        self.tube_gating[name] = strategy
        return strategy

    def tube_has_origin(self, name: str = DEFAULT_TUBE) -> bool:
        """Whether tube `name`'s cells are told donor from recipient: it carries the donor
        marker of its rows (checked on its files by `load_study`; else read from its panel)."""
        if name in self.tube_origin:
            return self.tube_origin[name]
        rows = [r for r in self.rows if self.tube_of(r) == name]
        panel = self.tube_panel(name)
        return bool(rows) and all((m := self.donor_marker(r)) and m in panel for r in rows)

    def tube_donor_markers(self, name: str = DEFAULT_TUBE) -> list[str]:
        """The donor markers tube `name` is measured with (none when it has no origin)."""
        if name == DEFAULT_TUBE:
            return self.donor_markers()
        if not self.tube_has_origin(name):
            return []
        rows = [r for r in self.rows if self.tube_of(r) == name]
        return list(dict.fromkeys(m for m in map(self.donor_marker, rows) if m))

    def tube_phenotype_markers(self, name: str = DEFAULT_TUBE) -> tuple[str, ...]:
        """The phenotype markers of tube `name` (`phenotype_markers` for the default tube):
        its own ``phenotype`` markers, else the panel markers no gate of its strategy reads."""
        if name == DEFAULT_TUBE:
            return self.phenotype_markers()
        tube = self.tube(name)
        if tube.phenotype_markers is not None:
            return tuple(tube.phenotype_markers)
        cache = self._tube_phenotype
        if name not in cache:
            cache[name] = self._default_phenotype_markers(name)
        return cache[name]

    def tube_measured_markers(self, name: str = DEFAULT_TUBE) -> tuple[str, ...]:
        """`measured_markers` of tube `name`: clustering markers only in the chimerism tube."""
        if name == DEFAULT_TUBE and self.chimerism_tube == DEFAULT_TUBE:
            return self.measured_markers()
        s = self.settings
        clustering = (
            tuple(s.clustering.markers) if s.clustering and name == self.chimerism_tube else ()
        )
        markers = (*self.tube_donor_markers(name), *self.tube_phenotype_markers(name), *clustering)
        return tuple(dict.fromkeys(markers))

    def measured_markers(self) -> tuple[str, ...]:
        """Every marker `cytokit.analyze` measures besides what the gates read: the
        donor markers, the phenotype markers and the clustering markers, each once."""
        s = self.settings
        clustering = tuple(s.clustering.markers) if s.clustering else ()
        markers = (*self.donor_markers(), *self.phenotype_markers(), *clustering)
        return tuple(dict.fromkeys(markers))

    def compensation(self):
        """What `FCS` dimensions are compensated with: "file", None, or a `Spillover`."""
        source = self.settings.compensation
        if source.lower() == "file":
            return "file"
        if source.lower() == "none":
            return None
        return read_spillover_csv(self.root / source)

    def load_strategy(self, path: str | Path | None = None):
        """A strategy file read as this study reads its own (`strategy_options`).

        Parameters
        ----------
        path : path, optional
            Relative to the study folder; default ``[gating] strategy``.

        Returns
        -------
        GatingStrategy

        Raises
        ------
        GatingError
            The file is missing or malformed, or (YAML) disagrees with the
            study's ``[panel]`` or ``[transform]``.
        """
        from cytokit.gating import load_strategy
        from cytokit.gating.flowjo.workspace import PerSampleGatesError

        path = self.root / (self.settings.strategy if path is None else path)
        try:
            return load_strategy(path, **strategy_options(path, self.panel, self.config))
        except PerSampleGatesError:
            raise GatingError(f"{path}: {_per_sample_gates(path)}") from None

    def gate(self, sample, *, membership: bool = True, tube: str = DEFAULT_TUBE):
        """Gate one sample exactly as `cytokit.analyze` does.

        The study's strategy (`gating`, else ``[gating] strategy``), its
        compensation (`compensation`) and ``[gating] seed``: the same counts as
        ``counts.csv`` of ``analyze`` for that file. With ``[acquisition_qc]``
        the sample is screened first (`cytokit.qc.screen`) and only the events
        QC keeps are gated, as ``analyze`` and ``cytokit gate --study`` do;
        events with a NaN or infinite value in a channel the gates read are
        dropped under ``[qc] max_nonfinite`` (`cytokit.finite`), as there. The
        result's memberships are then over the events kept.

        Parameters
        ----------
        sample : Sample
            Read with `cytokit.read_fcs` (scale values).
        membership : bool
            Keep memberships (see `GatingStrategy.apply`).
        tube : str
            The tube the sample was stained with (`tube_of` its manifest row):
            gated with that tube's strategy and panel, as ``analyze`` gates its files.

        Returns
        -------
        GatingResult

        Raises
        ------
        FCSError
            Acquisition QC failed the file, or more than ``[qc] max_nonfinite``
            of its events are not finite (the message says why).
        """
        strategy = self.tube_strategy(tube)
        qc = self.settings.qc_settings
        finite: tuple[int, ...] = ()
        if qc is not None:
            from cytokit.qc import screen

            sample, found = screen(sample, qc)
            finite = found.finite_columns
        from cytokit.finite import drop_nonfinite

        compensation = self.compensation()
        read = screened_columns(
            strategy, sample, self.tube_panel(tube), self.tube_measured_markers(tube), compensation
        )
        sample, _ = drop_nonfinite(
            sample,
            read,
            max_fraction=self.settings.max_nonfinite,
            hint="allow more with [qc] max_nonfinite in study.toml",
            known_finite=finite,
        )
        return strategy.apply(
            sample,
            compensation=compensation,
            membership=membership,
            seed=self.settings.gating_seed,
        )

    def gating_changes(self, recorded) -> list[str]:
        """The settings gating reads that differ from `recorded` (the ``config`` a results
        folder's ``study.json`` holds: study.toml as it was analysed), named as study.toml
        names them (``[acquisition_qc]``, ``[gating] seed``, ``[tubes.receptors] panel``);
        empty where they all agree or nothing was recorded. Both are read as the analysis
        reads them, so a default spelt out (a marker's own transform equal to the study's,
        QC switched off by ``enabled = false`` rather than by no table), a file named by
        another path to the same file, or a warning level of QC (it moves no event) is no
        change. What the files named hold is `gating_file_changes`'s to compare."""
        if not isinstance(recorded, dict):
            return []
        then, _ = parse_settings(recorded, "study.json")
        now = self.settings
        old_panel = _markers(recorded.get("panel"))
        out = [
            name
            for name, differs in (
                ("[panel]", old_panel != self.panel.markers),
                (
                    "[compensation]",
                    self._source(then.compensation) != self._source(now.compensation),
                ),
                (
                    "[transform]",
                    _transforms(then, old_panel) != _transforms(now, self.panel.markers),
                ),
                ("[acquisition_qc]", _moving(then.qc_settings) != _moving(now.qc_settings)),
                ("[gating] seed", then.gating_seed != now.gating_seed),
                ("[qc] max_nonfinite", then.max_nonfinite != now.max_nonfinite),
            )
            if differs
        ]
        if "[panel]" not in out:
            # a tube's own panel and strategy (a tube added since gated none of these files)
            tubes, _, _ = parse_tubes(recorded, "study.json", self.panel, then)
            for name, was in tubes.items():
                tube = self.tubes.get(name)
                if tube is None or name == DEFAULT_TUBE:
                    continue
                if was.panel.markers != tube.panel.markers:
                    out.append(f"[tubes.{name}] panel")
                if self._source(was.strategy) != self._source(tube.strategy):
                    out.append(f"[tubes.{name}] strategy")
        return out

    def gating_digests(self) -> dict:
        """What gating reads from files besides study.toml and the default strategy, for
        ``study.json``: each used tube's strategy digest (`GatingStrategy.digest`; a YAML
        strategy's, as built with the study's panel and transform) and, where
        ``[compensation] source`` is a CSV matrix, the matrix's digest."""
        out: dict = {
            "tubes": {
                t: self.tube_strategy(t).digest() for t in self.tubes_used() if t != DEFAULT_TUBE
            }
        }
        comp = self.compensation()
        if comp is not None and comp != "file":
            out["compensation"] = _matrix_digest(comp)
        return out

    def gating_file_changes(self, recorded) -> list[str]:
        """The files gating reads whose content differs from `recorded` (``study.json``'s
        ``gating_files``, `gating_digests`), named with where study.toml names them; empty
        where they agree or nothing was recorded (results of an older cytokit). Read after
        `gating_changes` finds nothing: a changed panel or transform changes a YAML
        strategy's digest too."""
        if not isinstance(recorded, dict):
            return []
        now = self.gating_digests()
        tubes = recorded.get("tubes")
        out = [
            f"{self.tubes[name].strategy} ([tubes.{name}] strategy)"
            for name, digest in (tubes if isinstance(tubes, dict) else {}).items()
            if name in now["tubes"] and now["tubes"][name] != digest
        ]
        digest = recorded.get("compensation")
        if isinstance(digest, str) and "compensation" in now and now["compensation"] != digest:
            out.append(f"{self.settings.compensation} ([compensation] source)")
        return out

    def _source(self, name: str) -> str:
        """A file setting as the file it names ("file" and "none" as themselves)."""
        if name.strip().lower() in ("file", "none"):
            return name.strip().lower()
        return str((self.root / name.strip()).resolve())

    def relative(self, path: Path) -> str:
        """`path` relative to the study folder when inside it (as the manifest names files)."""
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)

    def listing(self, row: ManifestRow) -> str:
        """Where the manifest names `row`'s file: ``manifest.csv line 3 lists 'fcs/x.fcs'``."""
        return f"manifest.csv line {row.line} lists {self.relative(row.file)!r}"


def gate_markers(strategy, panel: Panel, sample) -> set[str]:
    """Markers of `panel` whose channel some gate of `strategy` reads."""
    channels = {c.name: c for c in sample.channels}
    read: set[str] = set()
    for g in strategy.gates:
        for d in g.dimensions:
            read.add(d.channel)
            if d.ratio is not None:
                read.update((d.ratio.numerator, d.ratio.denominator))
    out = set()
    for marker, name in panel.channel_names(sample).items():
        ch = channels[name]
        if name in read or (ch.marker and ch.marker in read) or marker in read:
            out.add(marker)
    return out


def screened_columns(strategy, sample, panel: Panel, markers, compensation) -> list[int]:
    """The columns whose NaN or infinite values drop an event, the same through every
    door that knows the study (`cytokit.analyze`, ``cytokit gate --study``, `Study.gate`):
    those the gates read and those of the measured `markers`, each with the detectors
    its compensation mixes into it (`GatingStrategy.read_columns`).

    Raises
    ------
    PanelError
        A marker has no channel in `sample` (all such markers named).
    """
    from cytokit.gating import FCS, UNCOMPENSATED, Dimension

    markers = list(markers)
    columns = panel.columns(sample, markers)
    kind = UNCOMPENSATED if compensation is None else FCS
    dims = [Dimension(sample.channels[columns[m]].name, compensation=kind) for m in markers]
    return strategy.read_columns(sample, dims, compensation=compensation)


def read_spillover_csv(path: Path):
    """The ``[compensation] source`` CSV matrix (`cytokit.study.spillover_csv`), errors as `StudyError`."""
    from cytokit.study.spillover_csv import read_spillover_csv as read

    try:
        return read(path)
    except CytokitError as exc:
        raise StudyError(f"{prefixed(path, exc)} ([compensation] source in study.toml)") from None


def strategy_options(path: str | Path, panel: Panel, config: dict) -> dict:
    """Options of `cytokit.gating.load_strategy` that read `path` as a study does.

    A YAML strategy names markers and may leave transforms to the study: it
    gets the study's ``[panel]`` and ``[transform]`` (a ``[transform]`` of
    per-marker tables only has the logicle default added, as the settings
    read it). Gating-ML and FlowJo files carry their own channels and
    transforms and get nothing.
    """
    if Path(path).suffix.lower() not in (".yaml", ".yml"):
        return {}
    table = config.get("transform") or None
    if isinstance(table, dict) and all(isinstance(v, dict) for v in table.values()):
        table = {"type": "logicle", **table}
    return {"panel": panel, "transform": table}


def _canonical(settings: StudySettings, strategy, where, problems: list[str]) -> StudySettings:
    """`settings` with each gate reference replaced by the path of the population it names."""
    paths: dict[str, str] = {}
    owner: dict[str, str] = {}
    for what, ref in settings.gate_paths().items():
        found = strategy.matches(ref)
        if len(found) == 1:
            paths[ref] = found[0][0].path
        elif found:
            problems.append(
                f"study.toml {what} = {ref!r} names {len(found)} populations of {where}: "
                + "; ".join(f"{p.path} (by its {how})" for p, how in found)
                + "; give the full path of the one you mean"
            )
            continue
        else:
            problems.append(
                f"study.toml {what} = {ref!r}: no such gate path in {where}"
                f"{strategy.did_you_mean(ref)}; its paths are: {', '.join(strategy.paths)}"
            )
            continue
        if what.startswith("[populations]"):
            first = owner.setdefault(paths[ref], what)
            if first != what:
                problems.append(
                    f"study.toml {what} = {ref!r} and {first} name the same population "
                    f"{paths[ref]}; a gate is one population of the study, keep one of them"
                )
    return settings.with_gate_paths(paths)


def _per_sample_gates(path: Path) -> str:
    """Why a workspace of per-sample gates is no study's strategy, and what to do."""
    return (
        "its gates are each sample's own, and a study gates every file with one strategy: "
        "in FlowJo put the gates on a group (such as 'All Samples') and save the workspace "
        f"again, or give a Gating-ML or YAML strategy; `cytokit gate {path.name} FILES --out "
        "DIR` (without --study) gates each file with its own sample's gates"
    )


def _load_strategy(
    root: Path, settings: StudySettings, given, problems: list[str], panel: Panel, config: dict
):
    """The strategy (given, or read from [gating] strategy), its path, and the settings with
    canonical gate paths."""
    from cytokit.gating import GatingStrategy, load_strategy
    from cytokit.gating.flowjo.workspace import PerSampleGatesError

    path = None
    strategy = None
    if isinstance(given, GatingStrategy):
        strategy = given
    else:
        name = given if given is not None else settings.strategy
        if not name:
            return None, None, settings
        path = root / str(name)
        if not path.is_file():
            problems.append(
                f"{path}: strategy file not found; [gating] strategy in study.toml names it "
                "relative to the study folder"
            )
            return None, path, settings
        try:
            strategy = load_strategy(path, **strategy_options(path, panel, config))
        except ImportError as exc:
            problems.append(f"{path}: cannot read this strategy format: {exc}")
        except PerSampleGatesError:  # e.g. one `cytokit export-wsp` wrote: fitted per file
            problems.append(f"{path}: {_per_sample_gates(path)}")
        except CytokitError as exc:
            problems.append(prefixed(path, exc))
    if strategy is not None:
        where = path or strategy.source or "the strategy"
        settings = _canonical(settings, strategy, where, problems)
    return strategy, path, settings


def _read_toml(root: Path, toml: Path, problems: list[str]) -> tuple[dict[str, Any], bool]:
    """study.toml parsed (empty when refused or unreadable) and whether it was read."""
    why = refusal(toml, (root.resolve(),))  # it says where else the study may read
    if why:
        problems.append(f"{toml}: {why}")
        return {}, False
    try:
        return load_toml(toml), True
    except StudyError as exc:
        problems.append(str(exc))
        return {}, False


def _transforms(settings: StudySettings, markers) -> tuple:
    """Each marker's transform as gating reads it: the study's, or the marker's own (a
    marker's own transform equal to the study's is none), over `markers` and every marker
    given one."""
    names = sorted({*(markers or {}), *settings.marker_transforms})
    return settings.transform, [(m, settings.transform_of(m)) for m in names]


def _moving(qc):
    """Acquisition QC's settings less what moves no event: its warning level, and the
    order and repeats of the channels it leaves out."""
    if qc is None:
        return None
    return replace(
        qc, warn_removed_pct=0.0, exclude_channels=tuple(sorted(set(qc.exclude_channels)))
    )


def _matrix_digest(spillover) -> str:
    """SHA-256 of a spillover matrix's detectors and values."""
    import hashlib

    import numpy as np

    h = hashlib.sha256(repr(tuple(spillover.channels)).encode())
    h.update(np.ascontiguousarray(spillover.matrix, dtype="<f8").tobytes())
    return h.hexdigest()


def _markers(table) -> dict[str, str] | None:
    """The markers of a ``[panel]`` table as `Panel` reads them (None: not a panel)."""
    if table is None:
        return {}
    try:
        return Panel(table).markers if isinstance(table, dict) else None
    except CytokitError:
        return None


def _read_panel(table, toml: Path, toml_read: bool) -> tuple[Panel, list[str]]:
    """The ``[panel]`` table as a `Panel` (empty when missing or bad) and its problems."""
    panel = Panel({})
    found_panel: list[str] = []
    if toml_read and not isinstance(table, dict):
        found_panel.append(f"{toml}: no [panel] table naming the channel of each marker")
    elif table:
        try:
            panel = Panel(table, source=str(toml))
        except CytokitError as exc:
            found_panel.append(str(exc))
    return panel, found_panel


def _check_compensation(root: Path, toml: Path, source: str, roots, problems: list[str]) -> None:
    """A ``[compensation] source`` naming a CSV must be inside the roots and readable."""
    if source.lower() not in ("file", "none"):
        why = refusal(root / source, roots)
        if why:
            problems.append(f"{toml}: [compensation] source = {source!r} {why}")
        else:
            try:
                read_spillover_csv(root / source)
            except StudyError as exc:
                problems.append(str(exc))


def load_study(folder: str | Path, *, check_files: bool = True, strategy=None) -> Study:
    """Load and check a study folder.

    Parameters
    ----------
    folder : path
        The folder holding ``study.toml`` and ``manifest.csv``.
    check_files : bool
        Also read the strategy and check it has every gate path the settings
        name, and open every FCS file to check that every marker the study
        uses resolves to a channel and every channel a gate reads exists.
    strategy : GatingStrategy or path, optional
        Use this strategy instead of ``[gating] strategy`` (a path is relative
        to the study folder). Always checked.

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        Listing every problem found (missing files, unknown markers, bad days,
        malformed rows, bad settings, gate paths missing from the strategy),
        one per line.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StudyError(
            f"{root}: not a folder; give the study folder holding study.toml and manifest.csv"
        )
    problems: list[str] = []
    toml = root / "study.toml"
    # when study.toml is unreadable, what depends on it is not checked
    config, toml_read = _read_toml(root, toml, problems)
    table = config.get("panel")
    panel, found_panel = _read_panel(table, toml, toml_read)
    problems += found_panel
    settings, found_settings = (
        parse_settings(config, str(toml)) if config else (StudySettings(), [])
    )
    problems += found_settings
    # a [transform] study.toml got wrong is said once, at study.toml: the strategies are
    # read without it rather than refused for it again
    bad_transform = any(p.startswith(f"{toml} [transform") for p in found_settings)
    read_with = {k: v for k, v in config.items() if k != "transform" or not bad_transform}
    roots, found = study_roots(root, settings.data_roots, f"{toml}: [study] data_roots")
    problems += found
    _check_compensation(root, toml, settings.compensation, roots, problems)
    if not (root / "manifest.csv").exists():  # before read_manifest's "file not found"
        problems.append(
            f"{root / 'manifest.csv'}: file not found; a study folder lists its FCS files in "
            "manifest.csv, a row per file with columns file, patient, day (see the README's "
            "'A study folder'; `cytokit simulate DIR` writes an example study)"
        )
        rows = []
    else:
        rows = read_manifest(root / "manifest.csv", problems, roots)
    patients = {r.patient for r in rows}
    clinical = read_clinical_files(root, config, toml, patients or None, roots, problems)
    infusions = clinical.infusions()
    gating, strategy_path = None, None
    why = refusal(root / settings.strategy, roots) if settings.strategy else None
    if why and strategy is None:  # a strategy given by the caller is the caller's choice
        problems.append(f"{toml}: [gating] strategy = {settings.strategy!r} {why}")
    elif check_files or strategy is not None:
        gating, strategy_path, settings = _load_strategy(
            root, settings, strategy, problems, panel, read_with
        )
    elif settings.strategy:
        strategy_path = root / settings.strategy
    markers = list(panel)
    # without study.toml (or its [panel]) the study's markers are unknown, not missing
    panel_ok = toml_read and isinstance(table, dict) and not found_panel
    if panel_ok:
        # a reagent of a marker only a further tube's panel has is that tube's, not a typo
        tube_panels = config.get("tubes") if isinstance(config.get("tubes"), dict) else {}
        in_tubes = {
            m for t in tube_panels.values() if isinstance(t, dict)
            for m in (t.get("panel") if isinstance(t.get("panel"), dict) else {})
        }  # fmt: skip
        checked = replace(
            settings, reagents=tuple(r for r in settings.reagents if r.marker not in in_tubes)
        )
        problems += marker_problems(
            toml, root / "manifest.csv", panel, checked, rows, strategy=gating
        )
        donor_markers = {settings.donor_marker, *(r.donor_marker for r in rows)} - {None, ""}
        # what reads a marker by name: the settings, and the gates, whose dimensions hold
        # the detector the panel resolved a marker to (a gate on a donor marker's detector
        # may mean any marker [panel] puts there)
        gated = {
            d.channel for g in (gating.gates if gating is not None else ()) for d in g.dimensions
        }
        read = {
            *(settings.phenotype_markers or ()),
            *(settings.clustering.markers if settings.clustering else ()),
            *gated,
            *(m for m, value in panel.markers.items() if value in gated),
        }
        problems += panel_problems(toml, panel, donor_markers, read)
        problems += transform_problems(toml, config, [*panel, *sorted(in_tubes - set(panel))])
        if rows and settings.populations and not any(r.donor_marker for r in rows):
            if not settings.donor_marker:
                problems.append(
                    f'{toml}: no donor marker: set [chimerism] marker (e.g. marker = "HLA-A2") '
                    "or the manifest's donor_marker column"
                )
    unreadable: dict[Path, str] = {}
    seen: list = []  # every readable file's channels, for [acquisition_qc] exclude_channels
    if check_files and toml_read:
        panel_used = panel if panel_ok else None
        default_rows = [r for r in rows if not r.tube]  # other tubes: `_check_tubes`
        problems += file_problems(default_rows, panel_used, markers, gating, unreadable, seen=seen)
    tubes, chimerism_tube, found = (
        parse_tubes(config, str(toml), panel, settings) if panel_ok else ({}, DEFAULT_TUBE, [])
    )
    problems += found
    tube_gating, tube_origin = _check_tubes(
        root,
        rows,
        tubes,
        settings,
        read_with,
        roots,
        problems,
        unreadable,
        check_files,
        gating,
        seen,
    )
    if settings.acquisition_qc is not None:
        from cytokit.qc.settings import unknown_exclusions

        known = [pair for found in seen for pair in found]
        qc = settings.acquisition_qc
        problems += unknown_exclusions(
            qc.exclude_channels, known, f"{toml}: [acquisition_qc] exclude_channels", len(seen)
        )
        if qc.time_channel is not None:  # a clock no file has: a typo, as above
            problems += unknown_exclusions(
                [qc.time_channel], known, f"{toml}: [acquisition_qc] time_channel", len(seen)
            )
    name = (
        str(config.get("study", {}).get("name", root.name))
        if isinstance(config.get("study"), dict)
        else root.name
    )
    study = Study(
        root,
        name,
        config,
        panel,
        rows,
        infusions,
        strategy_path,
        settings,
        gating,
        unreadable,
        tubes,
        chimerism_tube,
        tube_gating,
        tube_origin,
        clinical=clinical,
    )
    problems += _report_problems(config, toml, settings, tubes, patients)
    # the default phenotype markers are read from a file: only once the files are known good
    readable = gating and not problems and DEFAULT_TUBE in study.tubes_used()
    if panel_ok and (settings.phenotype_markers is not None or readable):
        problems += _threshold_problems(study, toml)
    if problems:
        raise StudyError(
            f"{root}: {len(problems)} problem(s) in the study:\n  " + "\n  ".join(problems)
        )
    return study


def _report_problems(config: dict, toml: Path, settings, tubes, patients) -> list[str]:
    """``[normalise]`` and ``[report] cohort_populations``, checked with the other settings
    rather than after the gating (the rules are those the analysis and the report apply)."""
    from cytokit.study.settings import cohort_populations, normalise_reference

    _, problems = normalise_reference(
        config.get("normalise"), f"{toml} [normalise]", patients or None
    )
    report = config.get("report")
    if isinstance(report, dict):
        known = dict.fromkeys(
            [*settings.populations, *(p for t in tubes.values() for p in t.populations)]
        )
        problems += cohort_populations(
            report.get("cohort_populations"), f"{toml} [report] cohort_populations", known
        )[1]
    return problems


def _threshold_problems(study: Study, toml: Path) -> list[str]:
    """A ``[phenotype] thresholds`` entry for a panel marker that is not described (one a
    gate reads, a donor marker, one left out of ``[phenotype] markers``) would be dropped."""
    described = study.phenotype_markers()
    out = []
    for marker in study.settings.phenotype_thresholds:
        if marker in described or marker not in study.panel:  # not in [panel]: said already
            continue
        out.append(
            f"{toml}: [phenotype] thresholds has {marker} = "
            f"{study.settings.phenotype_thresholds[marker]:g}, but {marker} is not a described "
            f"phenotype marker{did_you_mean(marker, described)} (they are: "
            f"{', '.join(described) or 'none'}), so the threshold would be unused; add "
            f"{marker} to [phenotype] markers, or remove its threshold"
        )
    return out


#: SHA-256 of zero bytes (an empty file).
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def check_same_content(study: Study, hashes: dict[Path, str]) -> None:
    """Refuse manifest lines whose files hold the same bytes (a copy listed as another sample).

    Parameters
    ----------
    study : Study
    hashes : dict of Path to str
        Content hash of each row's file (``ManifestRow.file``); rows missing
        from it, empty files and files the study check could not read are not
        compared (each fails on its own).

    Raises
    ------
    StudyError
        Listing every repeated file with both manifest lines.
    """
    manifest = study.root / "manifest.csv"
    first: dict[str, ManifestRow] = {}
    problems = []
    for row in study.rows:
        digest = hashes.get(row.file)
        # files that cannot be read (two empty files after a failed transfer) are each a
        # failure of their own, not a copy of each other
        if digest is None or digest == EMPTY_SHA256 or row.file in study.unreadable:
            continue
        other = first.setdefault(digest, row)
        if other is not row:
            problems.append(
                f"{manifest}, line {row.line}: file {study.relative(row.file)!r} (patient "
                f"{row.patient}, day {row.day}) holds the same bytes as line {other.line}'s "
                f"{study.relative(other.file)!r} (patient {other.patient}, day {other.day}; "
                f"SHA-256 {digest[:16]}…); list each measurement once, with its own file"
            )
    if problems:
        raise StudyError(
            f"{study.root}: {len(problems)} problem(s) in the study:\n  " + "\n  ".join(problems)
        )


def _check_tubes(
    root: Path,
    rows: list[ManifestRow],
    tubes: dict[str, Tube],
    settings: StudySettings,
    config: dict,
    roots,
    problems: list[str],
    unreadable: dict[Path, str],
    check_files: bool,
    gating,
    seen: list | None = None,
) -> tuple[dict[str, Any], dict[str, bool]]:
    """Check the manifest's tubes: each named in study.toml, each tube's strategy and files.

    A problem is said once per tube, for all the files of the tube it holds in
    (a receptor tube's channels are not looked for in the chimerism tube's
    files). Returns the loaded strategy of each further tube and whether each
    used tube has origin.
    """
    manifest = root / "manifest.csv"
    if not tubes:  # study.toml or its [panel] unreadable: reported already
        return {}, {}
    by_tube: dict[str, list[ManifestRow]] = {}
    for row in rows:
        name = row.tube or DEFAULT_TUBE
        if name not in tubes:
            problems.append(
                f"{manifest}, line {row.line}: tube {row.tube!r} is not a tube of study.toml; "
                f"its tubes are: {', '.join(tubes)} (add a [tubes.{row.tube}] table, or fix "
                "the tube column)"
            )
            continue
        by_tube.setdefault(name, []).append(row)
        tube = tubes[name]
        markers = tube.phenotype_markers if tube.phenotype_markers is not None else None
        if row.control and (
            row.control not in tube.panel or (markers is not None and row.control not in markers)
        ):
            problems.append(
                f"{manifest}, line {row.line}: control {row.control!r} is not a phenotype "
                f"marker of tube {name!r}; the control column names the marker the file is "
                "the FMO (or isotype) control of, in its row's tube"
            )
    strategies: dict[str, Any] = {}
    origin: dict[str, bool] = {}
    for name, tube in tubes.items():
        if tube.is_default:  # its files were checked for each row's donor marker
            mine = by_tube.get(name, [])
            if check_files and mine:
                origin[name] = all((r.donor_marker or settings.donor_marker) for r in mine)
            continue
        where = f"{root / 'study.toml'} [tubes.{name}]"
        why = refusal(root / tube.strategy, roots)
        if why and tube.strategy != settings.strategy:  # the top level's is reported already
            problems.append(f"{where}: strategy = {tube.strategy!r} {why}")
        if why:
            continue
        if not check_files:
            continue
        found: list[str] = []
        tube_settings = StudySettings(populations=tube.populations, strategy=tube.strategy)
        strategy, _, tube_settings = _load_strategy(
            root, tube_settings, None, found, tube.panel, config
        )
        problems += [f"{where}: {p}" for p in found]
        tubes[name] = replace(tube, populations=tube_settings.populations)
        strategies[name] = strategy
        mine = by_tube.get(name, [])
        if not mine:
            continue
        has = _has_origin(mine, tube.panel, settings, unreadable)
        origin[name] = has
        need = tube.required_markers(settings.donor_marker if has else "")
        found = file_problems(mine, tube.panel, need, strategy, unreadable, donor=has, seen=seen)
        problems += [f"tube {name!r}: {p}" for p in found]
    return strategies, origin


def _has_origin(rows, panel, settings: StudySettings, unreadable: dict[Path, str]) -> bool:
    """Whether every readable file of `rows` carries its row's donor marker in `panel`."""
    import warnings

    from cytokit.fcs import read_fcs

    if not rows:
        return False
    for row in rows:
        marker = row.donor_marker or settings.donor_marker
        if not marker or marker not in panel:
            return False
        if row.file in unreadable:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sample = read_fcs(row.file, mmap=True, scale=False)
        except (CytokitError, OSError):
            continue  # reported by the file checks
        if isinstance(panel.find(sample.channels, marker), str):
            return False
    return True
