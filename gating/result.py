"""`GatingResult`: counts and memberships of every population of one gated sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cytokit import kernels as K
from cytokit.errors import GatingError
from cytokit.gating.gates import Dimension
from cytokit.sample import Sample, Spillover

if TYPE_CHECKING:  # annotations only: the strategy builds results (GatingStrategy.apply)
    from cytokit.gating.strategy import GatingStrategy, Population

__all__ = ["COUNT_COLUMNS", "GatingResult"]

#: Columns of `GatingResult.counts`.
COUNT_COLUMNS = (
    "gate_path",
    "gate_id",
    "name",
    "parent_path",
    "depth",
    "count",
    "parent_count",
    "pct_parent",
    "pct_total",
)


@dataclass(eq=False)
class GatingResult:
    """What `GatingStrategy.apply` found in one sample.

    Attributes
    ----------
    strategy : GatingStrategy
        The strategy as applied: adaptive gates are replaced by the concrete
        gates fitted on this sample.
    sample : Sample
        The gated sample (not copied).
    counts_array : ndarray of int64
        Events in each population, in ``strategy.populations`` order.
    packed : ndarray of uint64 or None
        Bit-packed membership rows in the same order (see
        `cytokit.kernels.unpack_membership`), or None when not kept.
    compensation : Spillover or None
        The matrix `FCS` dimensions were compensated with.
    """

    strategy: GatingStrategy
    sample: Sample
    counts_array: np.ndarray
    packed: np.ndarray | None = None
    compensation: Spillover | None = None
    _row: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._row = {p.id: i for i, p in enumerate(self.strategy.populations)}

    @property
    def n_events(self) -> int:
        return self.sample.n_events

    @property
    def populations(self) -> tuple[Population, ...]:
        return self.strategy.populations

    @property
    def nonfinite_events(self) -> int:
        """Events with a NaN or an infinite value in a channel the gates read.

        The kernels keep IEEE semantics, so such an event is in no shape gate
        that reads the channel (nor, when compensated, in any gate on a detector
        the value spreads into), and so in a Boolean ``not`` of one (the
        complement), and it is in the total (`n_events`, the root gates'
        parent count). `cytokit gate` and `cytokit.analyze` drop such events
        before gating and report how many (`cytokit.finite`); here they are kept
        so that memberships line up with the sample's events.
        """
        cols = self.strategy.read_columns(self.sample, compensation=self.compensation)
        read = np.zeros(self.sample.n_channels, dtype=bool)
        read[list(cols)] = True
        return K.nonfinite_counts(self.sample.events, read)[1]

    def count(self, key: str) -> int:
        """Events in the population `key` names (`GatingStrategy.population`)."""
        return int(self.counts_array[self._row[self.strategy.population(key).id]])

    def parent_count(self, key: str) -> int:
        """Events in the parent of the population `key` names (all events at the top)."""
        pop = self.strategy.population(key)
        return (
            self.n_events if pop.parent is None else int(self.counts_array[self._row[pop.parent]])
        )

    @property
    def counts(self) -> pd.DataFrame:
        """One row per population: `COUNT_COLUMNS`; percentages are 0–100 (NaN over 0 events)."""
        rows = []
        by_id = {p.id: p for p in self.populations}
        total = self.n_events
        for p, c in zip(self.populations, self.counts_array.tolist(), strict=True):
            parent = total if p.parent is None else int(self.counts_array[self._row[p.parent]])
            rows.append(
                (
                    p.path,
                    p.id,
                    p.name,
                    "" if p.parent is None else by_id[p.parent].path,
                    p.depth,
                    c,
                    parent,
                    100.0 * c / parent if parent else float("nan"),
                    100.0 * c / total if total else float("nan"),
                )
            )
        return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))

    def membership(self, key: str) -> np.ndarray:
        """Bool array (n_events,): which events are in the population `key` names.

        `key` is a path, a gate or quadrant id or a unique name
        (`GatingStrategy.population`).
        """
        if self.packed is None:
            raise GatingError("memberships were not kept; apply the strategy with membership=True")
        row = self._row[self.strategy.population(key).id]
        return K.unpack_membership(self.packed[row : row + 1], self.n_events)[0]

    def indices(self, key: str) -> np.ndarray:
        """Event indices (int64, ascending) of the population `key`."""
        return np.flatnonzero(self.membership(key))

    def values(self, dims: list[Dimension], key: str | None = None) -> np.ndarray:
        """Values the gates see on `dims` for the events of population `key` (all if None)."""
        rows = None if key is None else self.indices(key)
        return self.strategy.values(self.sample, dims, rows, compensation=self.compensation)

    def __repr__(self) -> str:
        return (
            f"<GatingResult {self.sample.name!r}: {self.n_events} events, "
            f"{len(self.populations)} populations>"
        )
