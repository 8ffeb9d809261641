"""`Sample`: the events of one FCS data set with its channels and keywords.

A `Sample` holds data and metadata only. Compensation, transforms, gating and
plotting are functions that take a sample (or its arrays); they live elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cytokit.errors import PanelError

__all__ = [
    "MAX_SPILLOVER_CONDITION",
    "Channel",
    "Sample",
    "Spillover",
    "SpilloverWarning",
    "spillover_conditioning",
]

#: Condition number (2-norm) of a spillover matrix above which gating warns. A real
#: compensation matrix (1 on the diagonal, each dye brightest in its own detector) has a
#: condition number of a few units: at most 8.3 among the test corpus's FCS files,
#: FlowKit's CSV matrices and FlowJo and Gating-ML matrices. Far above it, some rows are
#: nearly proportional (two dyes the matrix cannot tell apart, or a typo), and compensation
#: multiplies noise and errors by up to that factor.
MAX_SPILLOVER_CONDITION = 1_000.0


class SpilloverWarning(UserWarning):
    """A spillover matrix used for compensation is nearly singular (`spillover_conditioning`)."""


def spillover_conditioning(matrix, names, *, limit: float = MAX_SPILLOVER_CONDITION) -> str | None:
    """Why compensating with `matrix` cannot be trusted, or None when it can.

    Parameters
    ----------
    matrix : array_like, shape (n, n)
        Spillover coefficients, one row per dye.
    names : sequence of str
        The channel (or dye) of each row.
    limit : float
        Largest acceptable condition number (`MAX_SPILLOVER_CONDITION`).

    Returns
    -------
    str or None
        Above `limit`: the condition number and the rows that are nearly a
        combination of each other: those that weigh most in the left singular
        vector of the smallest singular value (``u.T @ matrix ≈ 0``).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.size == 0 or not np.isfinite(m).all():
        return None  # compensation itself refuses these, with its own message
    u, s, _ = np.linalg.svd(m)
    cond = float(s[0] / s[-1]) if s[-1] > 0 else float("inf")
    if cond <= limit:
        return None
    weight = np.abs(u[:, -1])
    rows = [int(i) for i in np.argsort(-weight, kind="stable") if weight[i] >= 0.25 * weight.max()]
    culprits = [str(names[i]) for i in rows[:4]]
    which = culprits[0] if len(culprits) == 1 else f"{', '.join(culprits[:-1])} and {culprits[-1]}"
    if len(rows) > 4:
        which += f" (and {len(rows) - 4} more)"
    what = (
        f"the row of {which} is nearly zero"
        if len(rows) == 1
        else f"the rows of {which} are nearly proportional (or a combination of each other)"
    )
    return (
        f"condition number {cond:.2g}, above {limit:,.0f}: {what}, so compensation multiplies noise and "
        "errors up to that factor and compensated values, and the gates on them, cannot be "
        "trusted; check those coefficients"
    )


@dataclass(frozen=True)
class Channel:
    """One parameter ($Pn) of an FCS data set.

    Attributes
    ----------
    index : int
        Zero-based column in `Sample.events` (FCS numbers parameters from 1).
    name : str
        ``$PnN``, the short (detector) name, e.g. ``"FL1-A"``. Unique in a sample.
    marker : str
        ``$PnS``, the long name, usually the marker or stain (``"CD3 FITC"``);
        ``""`` when the file has none.
    range : float
        ``$PnR``, the range of stored values (integers are masked to the next
        power of two >= range, minus 1).
    bits : int
        ``$PnB``, the bits each stored value takes.
    log_decades, log_offset : float
        ``$PnE = f1,f2``. ``f1 == 0`` means linear amplification. For
        ``f1 > 0`` the scale value is ``10 ** (f1 * raw / range) * f2`` with
        ``f2 = 0`` read as 1 (FCS 2.0 files write ``f1,0``).
    gain : float
        ``$PnG``, the amplifier gain; linear scale values are ``raw / gain``.
    """

    index: int
    name: str
    marker: str = ""
    range: float = 0.0
    bits: int = 32
    log_decades: float = 0.0
    log_offset: float = 0.0
    gain: float = 1.0

    @property
    def label(self) -> str:
        """``"name (marker)"`` or just the name when there is no marker."""
        return f"{self.name} ({self.marker})" if self.marker else self.name

    @property
    def is_log(self) -> bool:
        return self.log_decades > 0


@dataclass(frozen=True)
class Spillover:
    """A spillover matrix: row ``i`` is how much of fluorochrome ``i`` each detector sees.

    Attributes
    ----------
    channels : tuple of str
        ``$PnN`` names of the detectors, in matrix order (rows and columns).
    matrix : ndarray of float64, shape (n, n)
        Spillover coefficients; the diagonal is normally 1.
    source : str
        Where it came from: the keyword (``"$SPILLOVER"``, ``"$SPILL"``,
        ``"SPILL"``), a file path, or ``""``.
    """

    channels: tuple[str, ...]
    matrix: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        n = len(self.channels)
        if m.shape != (n, n):
            raise ValueError(
                f"spillover matrix has shape {m.shape} but names {n} channels; "
                f"it must be ({n}, {n})"
            )
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "channels", tuple(self.channels))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spillover):
            return NotImplemented
        return self.channels == other.channels and np.array_equal(self.matrix, other.matrix)

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class Sample:
    """The events of one FCS data set and what describes them.

    Attributes
    ----------
    events : ndarray, shape (n_events, n_channels)
        One row per event, one column per channel, in file order. With
        ``read_fcs(..., scale=True)`` (the default) these are *scale* values:
        ``$PnE`` log decoding and ``$PnG`` gain applied, the time channel in
        seconds when ``$TIMESTEP`` is given; float32 when the file stores
        float32, float64 otherwise unless a dtype was asked for. With
        ``scale=False`` they are the values as stored (integers masked to
        ``$PnR``).
    channels : tuple of Channel
        One per column of `events`, in column order: ``channels[i].index == i``
        (a `ValueError` otherwise; lookups by name read a channel's index).
    keywords : dict of str to str
        Every TEXT keyword (primary and supplemental) as written, in file
        order, with keys as the file spells them. Use `keyword` for a
        case-insensitive look-up.
    spillover : Spillover or None
        From ``$SPILLOVER``, ``$SPILL`` or ``SPILL`` when the file has one.
    path : Path or None
        The file it was read from.
    dataset : int
        Which data set of the file (0 for the first).
    version : str
        ``"FCS2.0"``, ``"FCS3.0"``, ``"FCS3.1"``, ...
    scaled : bool
        Whether `events` hold scale values (True) or stored values (False).
    """

    events: np.ndarray
    channels: tuple[Channel, ...]
    keywords: dict[str, str] = field(default_factory=dict)
    spillover: Spillover | None = None
    path: Path | None = None
    dataset: int = 0
    version: str = "FCS3.1"
    scaled: bool = True

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if self.events.ndim != 2 or self.events.shape[1] != len(self.channels):
            raise ValueError(
                f"events have shape {self.events.shape} but there are "
                f"{len(self.channels)} channels; expected (n_events, {len(self.channels)})"
            )
        # lookups read a channel's `index`: one that is not its place would read another
        # column without a word (channels taken from another sample, reordered or a subset)
        moved = [(i, c) for i, c in enumerate(self.channels) if c.index != i]
        if moved:
            i, c = moved[0]
            raise ValueError(
                f"channel {c.name!r} has index {c.index} but is column {i} of the events: "
                "each channel describes the column at its place; give channels in column "
                "order with index = place (dataclasses.replace(c, index=i))"
            )
        self._upper = {k.upper(): k for k in self.keywords}

    # -- sizes -------------------------------------------------------------
    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """``$PnN`` of every channel, in column order."""
        return tuple(c.name for c in self.channels)

    @property
    def markers(self) -> tuple[str, ...]:
        """``$PnS`` of every channel (``""`` where absent), in column order."""
        return tuple(c.marker for c in self.channels)

    @property
    def name(self) -> str:
        """The file name, or ``$FIL``, or ``"sample"``."""
        if self.path is not None:
            return Path(self.path).name
        return self.keyword("$FIL", "sample")

    # -- look-ups ------------------------------------------------------------
    def keyword(self, key: str, default: str | None = None) -> str | None:
        """The value of keyword `key`, matched case-insensitively, or `default`."""
        real = self._upper.get(key.upper())
        return self.keywords[real] if real is not None else default

    def channel_index(self, name: str) -> int:
        """Column of the channel whose ``$PnN`` (first) or ``$PnS`` is `name`.

        Raises
        ------
        PanelError
            When no channel matches, or a ``$PnS`` matches several channels;
            the message lists the channels there are.
        """
        for c in self.channels:
            if c.name == name:
                return c.index
        hits = [c.index for c in self.channels if c.marker and c.marker == name]
        if len(hits) == 1:
            return hits[0]
        where = f" in {self.name}"
        if len(hits) > 1:
            names = ", ".join(self.channels[i].name for i in hits)
            raise PanelError(
                f"marker {name!r} names several channels{where} ({names}); "
                "use the channel ($PnN) name instead"
            )
        raise PanelError(
            f"no channel or marker {name!r}{where}; channels are: "
            + ", ".join(c.label for c in self.channels)
        )

    def column(self, name: str) -> np.ndarray:
        """The events of one channel (a view, not a copy)."""
        return self.events[:, self.channel_index(name)]

    def select(self, names: Sequence[str]) -> np.ndarray:
        """The events of several channels as a new (n_events, len(names)) array."""
        return self.events[:, [self.channel_index(n) for n in names]]

    def __repr__(self) -> str:
        where = f" from {self.name!r}" if self.path is not None else ""
        return (
            f"<Sample{where}: {self.n_events} events × {self.n_channels} channels, "
            f"{self.version}, {'scale' if self.scaled else 'stored'} values {self.events.dtype}>"
        )


def keywords_upper(keywords: Mapping[str, str]) -> dict[str, str]:
    """A copy of `keywords` with upper-case keys (the first spelling wins)."""
    out: dict[str, str] = {}
    for k, v in keywords.items():
        out.setdefault(k.upper(), v)
    return out
