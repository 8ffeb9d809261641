"""Which channels acquisition QC reads, their margin limits, and the time axis.

Channel roles (from ``$PnN``, case-insensitive):

* **time**: ``$PnN`` "Time" or ``$PnTYPE`` "Time" (as `cytokit.read_fcs` finds
  it), or the channel the settings' ``time_channel`` names; never checked for
  margins or stability, it is the axis;
* **other**: names of counters and instrument bookkeeping (containing
  ``TIME`` or ``EVENT``, or ``SORT``, ``INDEX``, ``ORIGINAL_ID``; ``HDR-T``,
  a second clock beside Time): not
  measurements, left out (a clock or a counter of another name is found by its
  values once the events are read: `cytokit.qc.scan.AcquisitionPass`);
* **width**: pulse widths (``...-W``, ``FSCW``/``SSCW``, names containing
  ``WIDTH``);
* **scatter**: ``FSC*``, ``SSC*`` (``FS``/``SS`` followed by a space or ``-``)
  other than widths;
* **fluorescence**: every other channel.

Margin limits
-------------
The top of a detector is its largest stored value, ``$PnR − 1`` (FCS 3.1,
``$PnR``: "the range of parameter n", stored values 0 .. ``$PnR − 1``). The
check compares *scale* values, so the limit goes through the same arithmetic
`cytokit.read_fcs` applies (`cytokit.fcs.channels`):

* linear channel: ``($PnR − 1) / $PnG``;
* log-amplified channel (``$PnE = f1,f2``, ``f1 > 0``; integer data, or float
  data that declare it): ``10 ** (f1 · ($PnR − 1) / $PnR) · f2`` (``f2 = 0``
  read as 1);
* stored values (``Sample.scaled`` False): ``$PnR − 1`` itself.

Integer data hold whole numbers, so the limit is placed half a stored step
below the top (stored ``$PnR − 1.5``), which every saturated value passes
and no other does. Float data (``$DATATYPE`` F or D) hold real values; the
limit is the top less a relative 1e-6 (float32 rounding of a value at the
top). A channel without a positive ``$PnR`` has no top. Neither has a float
channel whose values go above ``$PnR`` itself: its ``$PnR`` does not bound
its values (a file of transformed values, or scale values written with the
range of the stored ones), and a top taken from it would mark good events;
the result says so.

The floor is the lowest value the detector records, where the converter
clips. It is checked on scatter channels only:

* integer data: stored 0 (scale 0 on a linear channel, ``f2`` on a
  log-amplified one), limit half a stored step above it;
* float data of a log-amplified channel: stored 0 (scale ``f2``);
* linear float data: no limit is declared. Instruments write
  baseline-restored values that spread on both sides of 0 for particles a
  detector barely sees (a bacterial sample triggered on fluorescence has
  half its FSC-A below 0), and those are measurements. Where a channel *is*
  clipped, its smallest value holds a pile of events at exactly the same
  number: when the smallest value is 0 or below and at least two events sit
  exactly at it, that value is the floor (found by the scan; marking those
  events reads that one column once more).

Fluorescence channels have no floor check: the events at the bottom of a
fluorescence channel are the cells negative for its marker (an integer log
channel piles them at stored 0), and removing them would bias exactly the
populations the study counts. Width channels have no floor either (0 means
no pulse was measured, a setting of the instrument, not a fault).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cytokit.fcs.channels import positive_keyword, time_unit_seconds, timeticks_seconds
from cytokit.fcs.channels import time_column as fcs_time_column
from cytokit.sample import Channel, Sample

__all__ = [
    "ChannelPlan",
    "channel_plan",
    "channel_role",
    "clock_step",
    "time_axis",
    "time_column",
]

_OTHER = re.compile(r"TIME|EVENT|SORT|INDEX|ORIGINAL_ID|^HDR-T$")
_WIDTH = re.compile(r"(-W$|^(FSC|SSC|FS|SS)W$|WIDTH)")
_SCATTER = re.compile(r"^(FSC|SSC|FS[ -]|SS[ -])")
# relative distance below a float channel's top that still counts as the top
_FLOAT_TOLERANCE = 1e-6


def time_column(sample: Sample, name: str | None = None) -> int | None:
    """The column of the time parameter, or None.

    Without `name`, the reader's rule (`cytokit.fcs.channels.time_column`):
    ``$PnN`` "Time", spaces around it aside, else ``$PnTYPE`` "Time"; the reader
    scaled that column by ``$TIMESTEP``. With `name` (the settings'
    ``time_channel``), the channel whose ``$PnN`` is `name`, case and all.
    """
    if name is None:
        return fcs_time_column(sample.keyword, sample.channels)
    return next((c.index for c in sample.channels if c.name == name), None)


def _own_clock(sample: Sample, column: int | None) -> bool:
    """Whether `column` (None: the reader's) is the column the reader read as the time:
    the one ``$TIMESTEP`` (and ``TIMETICKS``) describe."""
    return column is None or column == time_column(sample)


def time_axis(sample: Sample, column: int | None = None) -> float | None:
    """Seconds per unit of the sample's time column, or None when the file does not say
    (`cytokit.fcs.channels.time_unit_seconds`). A `column` other than the reader's time
    column (a clock the settings name) has no unit the file states: None."""
    if not _own_clock(sample, column):
        return None
    return time_unit_seconds(sample.keyword, sample.scaled)


def bd_tick(sample: Sample) -> float | None:
    """Seconds per tick of BD's ``TIMETICKS`` (`cytokit.fcs.channels.timeticks_seconds`)."""
    return timeticks_seconds(sample.keyword)


def clock_step(sample: Sample, column: int | None = None) -> float | None:
    """The clock's step in the sample's time column units, or None when not known.

    Scale values hold seconds, and the step is ``$TIMESTEP`` (``CYTOKIT_TIMESTEP``);
    stored values count the clock's ticks, whatever the data type, so no step is
    assumed for them, nor for a `column` other than the reader's time column.
    """
    if not sample.scaled or not _own_clock(sample, column):
        return None
    return positive_keyword(sample.keyword, "$TIMESTEP") or positive_keyword(
        sample.keyword, "CYTOKIT_TIMESTEP"
    )


def channel_role(name: str) -> str:
    """``"scatter"``, ``"width"``, ``"fluorescence"`` or ``"other"`` (see the module docstring)."""
    upper = name.upper()
    if _OTHER.search(upper):
        return "other"
    if _WIDTH.search(upper):
        return "width"
    if _SCATTER.match(upper):
        return "scatter"
    return "fluorescence"


@dataclass(frozen=True)
class ChannelPlan:
    """The channels QC reads and their limits, as arrays for the kernels.

    Attributes
    ----------
    names : tuple of str
        ``$PnN`` of the checked channels.
    columns : tuple of int
        Their columns in ``Sample.events``.
    roles : tuple of str
        `channel_role` of each.
    top, floor : tuple of float
        Margin limits in the sample's values (``inf`` / ``-inf``: none); an event
        is at the top when its value is ``>= top``, at the floor when ``<= floor``.
    top_rule, floor_rule : tuple of str
        How each limit was derived, for reports (``""`` when there is none).
    cofactor : tuple of float
        The asinh cofactor the stability check uses for each channel.
    pile_floor : tuple of bool
        Linear float scatter channels: their floor is found in the data (see
        the module docstring), so ``floor`` is ``-inf`` until the scan has seen
        their smallest value.
    ceiling : tuple of float
        For float data: the value of stored ``$PnR`` itself; a channel with
        values above it does not keep to its ``$PnR`` (a file of transformed or
        rescaled values), so its top is not checked. ``inf`` for integer data
        (whose values cannot exceed their bits) and channels without a range.
    excluded : tuple of str
        Channels left out, each ``"name (why)"``.
    """

    names: tuple[str, ...]
    columns: tuple[int, ...]
    roles: tuple[str, ...]
    top: tuple[float, ...]
    floor: tuple[float, ...]
    top_rule: tuple[str, ...]
    floor_rule: tuple[str, ...]
    cofactor: tuple[float, ...]
    pile_floor: tuple[bool, ...]
    ceiling: tuple[float, ...]
    excluded: tuple[str, ...]


def _is_integer_data(sample: Sample) -> bool:
    return (sample.keyword("$DATATYPE") or "").strip().upper() == "I"


def _to_scale(c: Channel, stored: float, scaled: bool) -> float:
    """The scale value of stored value `stored` of channel `c` (as `read_fcs` computes it)."""
    if not scaled:
        return stored
    if c.is_log:
        return 10.0 ** (c.log_decades * stored / c.range) * (c.log_offset or 1.0)
    return stored / c.gain


def _limits(sample: Sample, c: Channel, role: str) -> tuple[float, float, str, str]:
    integer = _is_integer_data(sample)
    scaled = sample.scaled
    top, floor, top_rule, floor_rule = math.inf, -math.inf, "", ""
    log = scaled and c.is_log
    if c.range > 0 and not (log and c.range <= 1):
        r = c.range
        if integer:
            top = _to_scale(c, r - 1.5, scaled)
        else:
            top = _to_scale(c, r - 1.0, scaled)
            top -= abs(top) * _FLOAT_TOLERANCE
        exact = _to_scale(c, r - 1.0, scaled)
        how = "log" if log else ("/ $PnG" if scaled and c.gain != 1 else "")
        top_rule = f"$PnR - 1 = {r - 1:g}" + (f" ({how}: {exact:.6g})" if how else "")
    if role == "scatter":
        if integer:
            floor = _to_scale(c, 0.5, scaled)
            floor_rule = f"stored 0 ({_to_scale(c, 0.0, scaled):.6g})"
        elif log:
            floor = _to_scale(c, 0.0, scaled) * (1.0 + _FLOAT_TOLERANCE)
            floor_rule = f"stored 0 ({_to_scale(c, 0.0, scaled):.6g})"
    return top, floor, top_rule, floor_rule


def _ceiling(sample: Sample, c: Channel) -> float:
    log = sample.scaled and c.is_log
    if _is_integer_data(sample) or c.range <= 0 or (log and c.range <= 1):
        return math.inf
    return _to_scale(c, c.range, sample.scaled) * (1.0 + _FLOAT_TOLERANCE)


def _cofactor(c: Channel, scaled: bool) -> float:
    """An asinh cofactor near the channel's noise floor: 150 on an 18-bit linear scale."""
    if scaled and c.is_log:
        return c.log_offset or 1.0  # asinh(x / f2) is ln(2 x / f2) over the whole log range
    if c.range > 0:
        scale = c.range / (c.gain if scaled else 1.0)
        # within float64 whatever the file says ($PnR 1e308 overflowed to an infinite
        # cofactor, which the kernel refuses)
        v = scale * (150.0 / 262_144.0)
        return min(max(v, 1e-9), 1e300) if not math.isnan(v) else 1.0
    return 1.0


def channel_plan(sample: Sample, exclude=(), time: str | None = None) -> ChannelPlan:
    """The channels of `sample` QC checks (every measurement but those in `exclude`).

    Parameters
    ----------
    sample : Sample
    exclude : iterable of str
        ``$PnN`` names to leave out; names the sample does not have are ignored
        (a study lists channels of all its files).
    time : str, optional
        The settings' ``time_channel``: that channel is the time axis, not a
        measurement (`time_column`).
    """
    clocks = {time_column(sample, time), time_column(sample)}  # the file's own Time too
    skip = set(exclude)
    names, cols, roles, tops, floors, trules, frules, cofs, piles, ceils, excluded = (
        [] for _ in range(11)
    )
    for c in sample.channels:
        if c.index in clocks:
            continue
        role = channel_role(c.name)
        if role == "other":
            excluded.append(f"{c.name} (not a measurement)")
            continue
        if c.name in skip:
            excluded.append(f"{c.name} (excluded by the settings)")
            continue
        top, floor, trule, frule = _limits(sample, c, role)
        names.append(c.name)
        cols.append(c.index)
        roles.append(role)
        tops.append(top)
        floors.append(floor)
        trules.append(trule)
        frules.append(frule)
        cofs.append(_cofactor(c, sample.scaled))
        piles.append(role == "scatter" and not _is_integer_data(sample) and not frule)
        ceils.append(_ceiling(sample, c))
    return ChannelPlan(
        tuple(names),
        tuple(cols),
        tuple(roles),
        tuple(tops),
        tuple(floors),
        tuple(trules),
        tuple(frules),
        tuple(cofs),
        tuple(piles),
        tuple(ceils),
        tuple(excluded),
    )
