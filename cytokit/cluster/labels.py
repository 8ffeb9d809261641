"""How the clustering's figures name a metacluster (no plotting library here)."""

from __future__ import annotations

import pandas as pd

__all__ = ["MIN_MATCH_F1", "row_labels"]

#: Below this F1 with its best gate a metacluster is named by no gate (cluster_summary.csv,
#: the report's table): argmax of near-zero F1s would name the first gate.
MIN_MATCH_F1 = 0.1


def row_labels(medians: pd.DataFrame, summary: pd.DataFrame | None) -> list[str]:
    """``MC m (x.x%) ~ gate`` per metacluster: its share of events and, where its F1 is at
    least 0.5, the gate it matches best (from `summary`)."""
    labels = []
    for m in medians.index:
        text = f"MC {m}"
        if summary is not None:
            row = summary.loc[summary["metacluster"] == m]
            if len(row):
                r = row.iloc[0]
                text += f" ({100 * r['fraction']:.1f}%)"
                if "gate" in row.columns and r.get("f1", 0) >= 0.5:
                    text += f" ~ {r['gate']}"
        labels.append(text)
    return labels
