"""Reading and writing FCS 2.0, 3.0, 3.1 (and 3.2 data types) files."""

from __future__ import annotations

from cytokit.fcs.reader import read_fcs
from cytokit.fcs.writer import write_fcs

__all__ = ["read_fcs", "write_fcs"]
