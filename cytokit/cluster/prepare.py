"""What a SOM sees: compensated, logicle-transformed fluorescence and linearly scaled scatter.

Distances in the SOM mix channels, so every column must be on a comparable
scale of about 0 to 1: fluorescence channels are compensated with the
sample's spillover and logicle-transformed (default T = 262,144, W = 0.5,
M = 4.5, A = 0, the study default), scatter channels (``FSC*``, ``SSC*``)
divided by their range. Events are processed in blocks, so the only large
array made is the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cytokit.cluster.flowsom import ClusteringError
from cytokit.kernels import compensate, logicle
from cytokit.sample import Sample, Spillover

__all__ = ["LOGICLE", "is_scatter", "transformed_events"]

#: Default logicle parameters (T, W, M, A) of fluorescence channels.
LOGICLE = (262_144.0, 0.5, 4.5, 0.0)
_BLOCK = 1 << 16


def is_scatter(name: str) -> bool:
    """Whether a channel ($PnN) is a scatter channel (scaled linearly, not logicle)."""
    return name.upper().startswith(("FSC", "SSC"))


def _column_indices(sample: Sample, columns, panel) -> list[int]:
    if panel is not None:
        found = panel.columns(sample, list(columns))
        return [found[m] for m in columns]
    return [
        int(c) if isinstance(c, (int, np.integer)) else sample.channel_index(c) for c in columns
    ]


def _spillover(sample: Sample, compensation) -> tuple[np.ndarray, list[int]] | None:
    if isinstance(compensation, Spillover):
        spill = compensation
    elif compensation == "file":
        spill = sample.spillover
    elif compensation in ("none", None):
        return None
    else:
        raise ClusteringError(
            f"compensation={compensation!r} must be 'file', 'none' or a Spillover"
        )
    if spill is None:
        return None
    names = sample.channel_names
    missing = [c for c in spill.channels if c not in names]
    if missing:
        raise ClusteringError(
            f"{sample.name}: the spillover matrix names channels {missing} that the sample "
            f"does not have (channels: {', '.join(names)}); give a matching matrix or "
            "compensation='none'"
        )
    return np.asarray(spill.matrix), [names.index(c) for c in spill.channels]


def transformed_events(
    sample: Sample,
    columns: Sequence[str | int],
    *,
    panel=None,
    rows=None,
    compensation="file",
    logicle_params: tuple[float, float, float, float] = LOGICLE,
    scatter_range: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The events of `columns`, on the scale the SOM works on.

    Parameters
    ----------
    sample : Sample
    columns : sequence of str or int
        Channel names ($PnN or $PnS), column indices, or (with `panel`) markers.
    panel : Panel, optional
        Resolves `columns` as marker names.
    rows : array_like of bool (n_events,) or of int, optional
        Events to take (e.g. a gate's membership); default all.
    compensation : "file", "none" or Spillover
        "file": the sample's own spillover matrix, when it has one.
    logicle_params : (T, W, M, A)
        Logicle of the fluorescence channels.
    scatter_range : float, optional
        Scatter values are divided by it; default each channel's ``$PnR``
        (262,144 when the file gives none).
    out : numpy.ndarray of float32, shape (n_rows, len(columns)), optional

    Returns
    -------
    numpy.ndarray of float32, shape (n_rows, len(columns))

    Raises
    ------
    PanelError
        A column names no channel.
    ClusteringError
        The time channel was asked for, or the spillover does not fit the sample.
    """
    cols = _column_indices(sample, columns, panel)
    for c in cols:
        if sample.channels[c].name.upper() == "TIME":
            raise ClusteringError(
                f"{sample.name}: channel {sample.channels[c].name!r} is the time channel; "
                "cluster on markers and scatter only"
            )
    comp = _spillover(sample, compensation)
    events = sample.events
    if rows is None:
        index = None
        n = events.shape[0]
    else:
        r = np.asarray(rows)
        index = np.flatnonzero(r) if r.dtype == bool else r.astype(np.int64, copy=False)
        if r.dtype == bool and r.shape != (events.shape[0],):
            raise ClusteringError(
                f"{sample.name}: rows mask has shape {r.shape}; expected ({events.shape[0]},)"
            )
        n = index.shape[0]
    shape = (n, len(cols))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ClusteringError(f"out must be a float32 array of shape {shape}")
    scale = []
    for c in cols:
        ch = sample.channels[c]
        full = scatter_range or (ch.range if ch.range > 0 else 262_144.0)
        scale.append(1.0 / full if is_scatter(ch.name) else None)
    T, W, M, A = logicle_params
    buf = np.empty((min(_BLOCK, max(n, 1)), events.shape[1]), dtype=np.float32)
    for a in range(0, n, _BLOCK):
        b = min(n, a + _BLOCK)
        block = events[a:b] if index is None else events[index[a:b]]
        if comp is not None:
            block = compensate(block, comp[0], comp[1], out=buf[: b - a])
        for j, c in enumerate(cols):
            if scale[j] is not None:
                np.multiply(block[:, c], scale[j], out=out[a:b, j], casting="unsafe")
            else:
                logicle(block[:, c], T, W, M, A, out=out[a:b, j])
    return out
