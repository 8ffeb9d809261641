"""Non-finite event values: counted per channel, dropped, or the file refused.

An FCS file stores what the instrument measured; a NaN or an infinity in it
(a float file written by other software, a log decode that overflowed) is a
value that was not measured. The gate kernels keep IEEE semantics, so such an
event falls in no shape gate that reads the channel (and so in a Boolean
``not`` of one), and a NaN in one detector
spreads through compensation into every detector it is compensated against:
left alone, a file with a NaN column reports every population as 0 events.
The rule, applied to every file by `cytokit.analyze` and ``cytokit gate``:

* every channel's NaN, +inf and -inf values are counted (`NonFinite.channels`,
  reported in ``samples.csv``);
* an event with a non-finite value in a channel the analysis *reads* is
  dropped before gating, and counted (`NonFinite.events`). Read channels are
  the channels of the gates' dimensions, of the markers the analysis measures
  (donor, phenotype and clustering markers, or the statistics channels of
  ``cytokit gate``) and, for a compensated one, every detector the inverse
  spillover matrix mixes into it (`cytokit.gating.GatingStrategy.read_columns`).
  Counts, percentages and cells/µL are then those of the measured events;
* when more than `MAX_NONFINITE` (1 %; ``[qc] max_nonfinite`` in study.toml)
  of a file's events would be dropped, the file is refused with an `FCSError`
  naming the channels and the fraction: it is listed in ``failures.csv``
  (stage ``values``), never reported as populations of 0 events.

Values in channels nothing reads (e.g. Time when no gate uses it) are counted
and reported but drop no event. The count is one pass over the events
(`cytokit.kernels.nonfinite_counts`): 15-40 ms per million events of 11
float32 channels on the shared 2-core machine, against 130-190 ms to read
such a file and ~300 ms to gate it. After acquisition QC it reads only the
channels QC's margin check did not (`cytokit.qc.AcquisitionQC.finite_columns`:
QC removed every event with a non-finite value there, so those channels count
0 either way), e.g. Time alone. The copy of the finite events
(`cytokit.kernels.finite_rows`) is made only when there is something to drop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cytokit.errors import FCSError
from cytokit.kernels import finite_rows, nonfinite_counts
from cytokit.sample import Sample

__all__ = ["MAX_NONFINITE", "NonFinite", "drop_nonfinite", "scan_nonfinite"]

#: Largest fraction of a file's events that may be dropped for non-finite values.
MAX_NONFINITE = 0.01
_KINDS = ("NaN", "+inf", "-inf")


@dataclass(frozen=True)
class NonFinite:
    """The non-finite values of one file.

    Attributes
    ----------
    total : int
        Events in the file.
    events : int
        Events with a non-finite value in a read channel (dropped).
    channels : tuple of (name, nan, +inf, -inf, read)
        Every channel holding a non-finite value: its ``$PnN``, the counts of
        each kind and whether the analysis reads it.
    """

    total: int
    events: int = 0
    channels: tuple[tuple[str, int, int, int, bool], ...] = ()

    @property
    def fraction(self) -> float:
        """`events` / `total` (0 for an empty file)."""
        return self.events / self.total if self.total else 0.0

    def summary(self) -> str:
        """One line per channel, e.g. ``APC-A 120 NaN; Time 3 +inf (not read)``."""
        parts = []
        for name, *kinds, read in self.channels:
            text = ", ".join(f"{n} {k}" for n, k in zip(kinds, _KINDS, strict=True) if n)
            parts.append(f"{name} {text}" + ("" if read else " (not read)"))
        return "; ".join(parts)

    def as_dict(self) -> dict:
        """JSON-able form (a batch payload item)."""
        return {
            "total": self.total,
            "events": self.events,
            "channels": [list(c) for c in self.channels],
        }

    @classmethod
    def from_dict(cls, d: dict | None) -> NonFinite:
        if not d:
            return cls(0)
        chans = tuple(
            (str(c[0]), int(c[1]), int(c[2]), int(c[3]), bool(c[4])) for c in d["channels"]
        )
        return cls(int(d["total"]), int(d["events"]), chans)


def scan_nonfinite(
    sample: Sample, read: Iterable[int], known_finite: Iterable[int] = ()
) -> NonFinite:
    """Count `sample`'s non-finite values per channel, and the events with one in `read`.

    Parameters
    ----------
    sample : Sample
    read : iterable of int
        Columns the analysis reads.
    known_finite : iterable of int
        Columns known to hold no non-finite value (acquisition QC's margin
        check removed every event with one: `cytokit.qc.AcquisitionQC.finite_columns`);
        they are not read again and count 0.
    """
    mask = np.zeros(sample.n_channels, dtype=bool)
    mask[list(read)] = True
    skip = set(known_finite)
    look = [j for j in range(sample.n_channels) if j not in skip]
    counts, events = nonfinite_counts(sample.events, mask, look)
    chans = tuple(
        (c.name, int(counts[0, j]), int(counts[1, j]), int(counts[2, j]), bool(mask[j]))
        for j, c in enumerate(sample.channels)
        if counts[:, j].any()
    )
    return NonFinite(sample.n_events, events, chans)


def drop_nonfinite(
    sample: Sample,
    read: Iterable[int],
    *,
    max_fraction: float = MAX_NONFINITE,
    hint: str = "",
    known_finite: Iterable[int] = (),
    optional: tuple[Iterable[int], str] | None = None,
) -> tuple[Sample, NonFinite]:
    """Apply the module's rule to one sample.

    Parameters
    ----------
    sample : Sample
    read : iterable of int
        Columns the analysis reads.
    max_fraction : float
        Largest fraction of events that may be dropped.
    hint : str
        How to allow more (appended to the error).
    known_finite : iterable of int
        Columns known to be finite in every event (see `scan_nonfinite`).
    optional : (columns, advice), optional
        Read columns the caller can do without (a batch's statistics channels)
        and how: when every read channel holding such values is one of them,
        the error gives that advice (the values are then no reason to export
        the file again).

    Returns
    -------
    sample : Sample
        `sample` itself when no event is dropped, else a copy without them.
    found : NonFinite

    Raises
    ------
    FCSError
        More than `max_fraction` of the events would be dropped.
    """
    read = sorted(set(read))
    found = scan_nonfinite(sample, read, known_finite)
    if found.events == 0:
        return sample, found
    if found.fraction > max_fraction:
        where = sample.path if sample.path is not None else sample.name
        bad = {name for name, *_, was_read in found.channels if was_read}
        spare = {sample.channels[j].name for j in optional[0]} if optional is not None else set()
        if optional is not None and bad and bad <= spare:
            how = f"{', '.join(sorted(bad))}: {optional[1]}"
        else:
            how = "export the file again from the acquisition software" + (
                f", or {hint}" if hint else ""
            )
        raise FCSError(
            f"{where}: {found.events} of {found.total} events ({100 * found.fraction:.3g} %) "
            f"have a NaN or infinite value in channels the analysis reads ({found.summary()}); "
            f"at most {100 * max_fraction:.3g} % may be dropped. These values were not "
            f"measured: {how}"
        )
    mask = np.zeros(sample.n_channels, dtype=bool)
    mask[read] = True
    keep = finite_rows(sample.events, mask)
    return dataclasses.replace(sample, events=np.compress(keep, sample.events, axis=0)), found
