"""cytokit: flow cytometry for monitoring donor NK and CIK cells after adoptive cell therapy.

Importing cytokit compiles nothing: the Numba kernels compile (or load from the
on-disk cache) on first call.
"""

from __future__ import annotations

from cytokit.errors import CytokitError, FCSError, GatingError, PanelError, StudyError
from cytokit.fcs import read_fcs, write_fcs
from cytokit.panel import Panel
from cytokit.sample import Channel, Sample, Spillover

__version__ = "0.1.0"

__all__ = [
    "Channel",
    "CytokitError",
    "FCSError",
    "GatingError",
    "Panel",
    "PanelError",
    "Sample",
    "Spillover",
    "StudyError",
    "__version__",
    "read_fcs",
    "write_fcs",
]
