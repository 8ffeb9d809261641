"""cytokit's own gating-strategy format: a short YAML file a lab writes by hand.

The format is documented in `cytokit.gating.yamlfmt.reader`; `gates` and
`shapes` turn its entries into gates, `writer` writes a strategy back.
"""

from __future__ import annotations

from cytokit.gating.yamlfmt.reader import read_yaml_strategy, write_yaml_strategy

__all__ = ["read_yaml_strategy", "write_yaml_strategy"]
