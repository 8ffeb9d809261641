"""cytokit: flow cytometry for monitoring donor NK and CIK cells after adoptive cell therapy.

Importing cytokit compiles nothing: the Numba kernels compile (or load from the
on-disk cache) on first call. The study analysis (`analyze`, `load_study`,
`load_results`, `Results`, `Study`) is imported on first use.

Typical use::

    import cytokit
    results = cytokit.analyze("study/", out="results/")   # Results: DataFrames
    results.chimerism                                     # donor_pct with 95 % CI per sample
    results = cytokit.load_results("results/")            # later, without the FCS files
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cytokit._lazy import lazy_exports
from cytokit._version import __version__
from cytokit.errors import CytokitError, FCSError, GatingError, PanelError, StudyError
from cytokit.fcs import read_fcs, write_fcs
from cytokit.sample import Channel, Sample, Spillover
from cytokit.study.panel import Panel

if TYPE_CHECKING:  # pragma: no cover
    from cytokit.analysis.results import Results, load_results
    from cytokit.analysis.run import analyze
    from cytokit.study.folder import Study, load_study


__all__ = [
    "Channel",
    "CytokitError",
    "FCSError",
    "GatingError",
    "Panel",
    "PanelError",
    "Results",
    "Sample",
    "Spillover",
    "Study",
    "StudyError",
    "__version__",
    "analyze",
    "load_results",
    "load_study",
    "read_fcs",
    "write_fcs",
]

_LAZY = {
    "analyze": "cytokit.analysis.run",
    "Results": "cytokit.analysis.results",
    "load_results": "cytokit.analysis.results",
    "Study": "cytokit.study.folder",
    "load_study": "cytokit.study.folder",
}


# the analysis pulls in pandas and the batch engine; plain FCS reading should not
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
