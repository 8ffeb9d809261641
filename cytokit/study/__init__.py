"""A study folder, loaded and checked before any work starts.

`load_study` (`cytokit.study.folder`) reads ``study.toml``, ``manifest.csv``,
``infusions.csv``, the gating strategy and the FCS files' channels, and
reports every problem in one `StudyError`. Its parts:

`cytokit.study.folder`
    `load_study`, `Study` (the checked folder), `check_same_content`.
`cytokit.study.manifest`
    ``manifest.csv`` and ``infusions.csv`` rows (`ManifestRow`, `Infusion`).
`cytokit.study.settings`
    The analysis tables of ``study.toml`` (`StudySettings`, `ClusteringSettings`).
`cytokit.study.panel`
    `Panel`: which channel carries which marker.
`cytokit.study.checks`
    Markers against the ``[panel]``, FCS files against both.
`cytokit.study.spillover_csv`, `cytokit.study.tables`
    Spillover matrices and study tables from CSV files.

The names below load on first use, so ``import cytokit`` (which needs only
`Panel`) does not import the gating package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cytokit._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from cytokit.study.folder import Study, check_same_content, load_study, strategy_options
    from cytokit.study.manifest import Infusion, ManifestRow
    from cytokit.study.panel import Panel
    from cytokit.study.settings import ClusteringSettings, StudySettings
    from cytokit.study.tubes import chosen_tube

_LAZY = {
    "ClusteringSettings": ".settings",
    "Infusion": ".manifest",
    "ManifestRow": ".manifest",
    "Panel": ".panel",
    "Study": ".folder",
    "StudySettings": ".settings",
    "check_same_content": ".folder",
    "chosen_tube": ".tubes",
    "load_study": ".folder",
    "strategy_options": ".folder",
}

__all__ = [
    "ClusteringSettings",
    "Infusion",
    "ManifestRow",
    "Panel",
    "Study",
    "StudySettings",
    "check_same_content",
    "chosen_tube",
    "load_study",
    "strategy_options",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
