"""Gating-ML 2.0 import and export.

`read_gatingml` reads a Gating-ML 2.0 document (every gate type, parent
hierarchies, compensation references, every transformation) into a
`GatingStrategy`; `write_gatingml` writes one back. A written strategy reads
back equal, with the same per-event membership. Details of each direction are
in `cytokit.gating.gatingml.read` and `cytokit.gating.gatingml.write`.

Reference: J. Spidlen et al., "Gating-ML 2.0: International Society for
Advancement of Cytometry (ISAC) standard for representing gating descriptions
in flow cytometry", Cytometry A 87(7):683-687 (2015). The ISAC compliance suite
(``data1.fcs`` and its 51 truth files) is what the implementation is tested
against.
"""

from __future__ import annotations

from cytokit.gating.gatingml.read import read_gatingml
from cytokit.gating.gatingml.write import gatingml_bytes, write_gatingml

__all__ = ["gatingml_bytes", "read_gatingml", "write_gatingml"]
