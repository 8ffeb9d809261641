"""QC data of gated samples: fitted gate geometry as JSON, and subsamples of gate inputs.

What the report needs to show how every gate was placed in every sample,
without the FCS files:

* `gate_to_dict`: the concrete (fitted) gate as plain JSON types, generic
  over the gate dataclasses: ``{"type": "PolygonGate", "id": ..., "parent":
  ..., "dims": [{"type": "Dimension", "channel": ..., "compensation": ...,
  "transform": {"type": "LogicleTransform", "T": ..., ...}}], "vertices":
  [[x, y], ...]}``; rectangles have ``min``/``max`` (null = open), ellipsoids
  ``mean``/``covariance``/``distance_square``, quadrant gates ``dividers``
  and ``quadrants``, Boolean gates ``op``/``operands``/``complement``.
* `gate_points`: a random subsample (at most `QC_POINTS`) of the gate's
  parent events in the gate's dimensions, float32, transformed as the gate
  sees them (so the geometry and the points share axes).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

__all__ = ["QC_POINTS", "gate_points", "gate_to_dict", "gate_to_json"]

#: Parent events kept per gate and sample for QC plots.
QC_POINTS = 2000


def _plain(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            # private caches (a transform's parameter vector), and what a reader derived
            # to check the file (not the gate's own geometry)
            if not f.name.startswith("_") and not f.metadata.get("derived"):
                out[f.name] = _plain(getattr(obj, f.name))
        return out
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def gate_to_dict(gate) -> dict:
    """A gate (any `cytokit.gating.Gate`) as a dict of plain JSON types (see the module docstring)."""
    return _plain(gate)


def gate_to_json(gate) -> str:
    return json.dumps(gate_to_dict(gate), separators=(",", ":"))


def gate_points(
    result, gate, rng: np.random.Generator, n: int = QC_POINTS, compensation="file"
) -> np.ndarray:
    """A random subsample of `gate`'s parent events in its dimensions.

    Parameters
    ----------
    result : GatingResult
    gate : Gate
        A gate of ``result.strategy`` (concrete).
    rng : numpy.random.Generator
    n : int
        At most this many events.
    compensation : "file", None or Spillover
        As the strategy was applied with.

    Returns
    -------
    ndarray of float32, shape (m, len(gate.dimensions)), m <= n
        Empty (0, 0) for gates without dimensions (Boolean gates).
    """
    dims = list(gate.dimensions)
    if not dims:
        return np.zeros((0, 0), dtype=np.float32)
    if gate.parent is None:
        idx = np.arange(result.n_events)
    else:
        idx = result.indices(result.strategy.by_id(gate.parent).path)
    if idx.size > n:
        idx = np.sort(rng.choice(idx, n, replace=False))
    values = result.strategy.values(result.sample, dims, idx, compensation=compensation)
    return values.astype(np.float32)
