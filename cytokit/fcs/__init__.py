"""Reading and writing FCS 2.0, 3.0, 3.1 (and 3.2 data types) files."""

from __future__ import annotations

from cytokit.fcs.layout import DataSet
from cytokit.fcs.problems import FCSWarning
from cytokit.fcs.reader import read_fcs, read_fcs_datasets
from cytokit.fcs.writer import write_fcs

__all__ = ["DataSet", "FCSWarning", "read_fcs", "read_fcs_datasets", "write_fcs"]
