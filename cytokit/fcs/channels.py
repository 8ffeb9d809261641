"""Channels of a data set and the arithmetic that turns stored values into scale values.

Scale values (FCS 3.1, section 3.3; the values Gating-ML gates and FlowJo work on):

* a logarithmic parameter, ``$PnE = f1,f2`` with ``f1 > 0``, stores channel
  numbers ``x``; its scale value is ``10 ** (f1 * x / $PnR) * f2``, with
  ``f2 = 0`` read as 1 (FCS 2.0 files write ``f1,0``);
* a linear parameter with an amplifier gain ``$PnG`` has scale value ``x / $PnG``;
* the time parameter (``$PnN`` "Time" in any case, or ``$PnTYPE`` "Time") is
  multiplied by ``$TIMESTEP``. Its ``$PnG`` is not applied: instruments (BD's
  among them) write the time step there too, and an amplifier gain means
  nothing for a clock; FlowIO and FlowKit read it the same way.

The same rules hold for every data type. FCS 3.1 asks float data (``F``,
``D``) to carry ``$PnE=0,0``, but a float file that declares log amplification
(Guava Muse does; so does `cytokit.write_fcs` for stored values of a log
channel) is decoded with the formula above, as FlowIO and FlowKit decode it.
``$PnG`` on a logarithmic parameter is not applied (the standard defines it for
linear amplification only), with a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cytokit.fcs.layout import DataSet
from cytokit.fcs.text import Keywords
from cytokit.sample import Channel

__all__ = [
    "ScalePlan",
    "clock_names",
    "make_channels",
    "positive_keyword",
    "scale_plan",
    "time_column",
    "time_unit_seconds",
    "timeticks_seconds",
]


@dataclass(frozen=True)
class ScalePlan:
    """What must be done to stored values to get scale values, column by column."""

    divide: tuple[tuple[int, float], ...] = ()  # (column, $PnG) of linear channels
    log: tuple[tuple[int, float, float, float], ...] = ()  # (column, f1, $PnR, f2 or 1)
    time: tuple[int, float] | None = None  # (column, $TIMESTEP)

    @property
    def needed(self) -> bool:
        return bool(self.divide or self.log or self.time)


def _log_params(kw: Keywords, n: int, strict: bool) -> tuple[float, float]:
    key = f"$P{n}E"
    value = kw.get(key)
    if value is None or not value.strip():
        return 0.0, 0.0
    parts = [p.strip() for p in value.replace(";", ",").split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1 and numbers[0] == 0:
        numbers = [0.0, 0.0]
    ok = (
        len(numbers) == 2
        and all(math.isfinite(x) for x in numbers)
        and numbers[0] >= 0
        and numbers[1] >= 0
    )
    if ok:
        return numbers[0], numbers[1]
    message = (
        f"{kw.spelling(key)}={value!r} is not valid; expected two numbers 'f1,f2' "
        "(decades and offset, e.g. '0,0' for linear or '4,1')"
    )
    if strict:
        raise kw.notes.error(message)
    kw.notes.note(f"{message}; read as linear (0,0)")
    return 0.0, 0.0


def _gain(kw: Keywords, n: int, strict: bool) -> float:
    key = f"$P{n}G"
    value = kw.get(key)
    if value is None or not value.strip():
        return 1.0
    try:
        gain = float(value.strip())
    except ValueError:
        gain = math.nan
    if gain == 0:
        kw.notes.note(f"{kw.spelling(key)}={value!r}: a gain of 0 was read as 1 (no gain)")
        return 1.0
    if math.isfinite(gain) and gain > 0:
        return gain
    message = f"{kw.spelling(key)}={value!r} is not a valid gain; expected a positive number"
    if strict:
        raise kw.notes.error(message)
    kw.notes.note(f"{message}; read as 1")
    return 1.0


def _range(kw: Keywords, n: int) -> float:
    value = kw.get(f"$P{n}R")
    if value is None:
        return 0.0
    try:
        r = float(value.strip())
    except ValueError:
        return 0.0
    return r if math.isfinite(r) and r > 0 else 0.0


def make_channels(kw: Keywords, ds: DataSet, *, strict: bool) -> tuple[Channel, ...]:
    """One `Channel` per parameter; `strict` makes bad ``$PnE``/``$PnG`` errors, not notes."""
    channels = []
    seen: dict[str, int] = {}
    for i, col in enumerate(ds.layout.columns):
        n = i + 1
        raw_name = kw.get(f"$P{n}N")
        # names and markers are kept exactly as written (spaces too): they are
        # what panels, spillover matrices and gating strategies refer to
        name = raw_name if raw_name else f"P{n}"
        if name in seen:
            new = f"{name} [P{n}]"
            kw.notes.note(
                f"$P{n}N={raw_name!r} repeats the name of parameter {seen[name]}; "
                f"channel {n} is called {new!r}"
            )
            name = new
        seen[name] = n
        f1, f2 = _log_params(kw, n, strict)
        # the time parameter's $PnG is never applied (`scale_plan`): a bad one is a note
        clock = _named_time(name) or _typed_time(kw.get, n)
        channels.append(
            Channel(
                index=i,
                name=name,
                marker=kw.get(f"$P{n}S") or "",
                range=_range(kw, n),
                bits=8 * col.width,
                log_decades=f1,
                log_offset=f2,
                gain=_gain(kw, n, strict and not clock),
            )
        )
    return tuple(channels)


def _named_time(name: str) -> bool:
    """``$PnN`` "Time", in any case, spaces around it aside."""
    return name.strip().upper() == "TIME"


def _typed_time(keyword: Callable[[str], str | None], n: int) -> bool:
    """``$PnTYPE`` "Time" (FCS 3.2), in any case (`keyword`: a keyword's value by name)."""
    return (keyword(f"$P{n}TYPE") or "").strip().upper() == "TIME"


def time_column(keyword: Callable[[str], str | None], channels: tuple[Channel, ...]) -> int | None:
    """The column of the time parameter (the first named Time, else the first typed
    Time), or None. `keyword` gives a keyword's value by name, case aside
    (`Keywords.get` while reading, `cytokit.Sample.keyword` after)."""
    for c in channels:
        if _named_time(c.name):
            return c.index
    for c in channels:
        if _typed_time(keyword, c.index + 1):
            return c.index
    return None


def clock_names(channels: tuple[Channel, ...]) -> list[str]:
    """``$PnN`` of the channels named like a clock that the reader does not read as the
    time (``Time (s)``, ``TIME_LSW``, ``HDR-T``): a file without a Time channel may
    hold its clock in one of them."""
    return [
        c.name
        for c in channels
        if ("TIME" in c.name.upper() or c.name == "HDR-T") and not _named_time(c.name)
    ]


def positive_keyword(keyword: Callable[[str], str | None], name: str) -> float | None:
    """The keyword `name` as a positive finite number, or None (absent, or anything else)."""
    try:
        v = float(str(keyword(name)).strip())
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def timeticks_seconds(keyword: Callable[[str], str | None]) -> float | None:
    """Seconds per tick of the time column of an FCS 2.0 file from BD software that gives
    no ``$TIMESTEP`` but ``TIMETICKS``, the tick in milliseconds (the span of ticks over
    ``$ETIM`` − ``$BTIM`` bears it out on the corpus's FACSCalibur files: 50 ms, 100 ms
    and 200 ms ticks); None without it."""
    ms = positive_keyword(keyword, "TIMETICKS")
    return ms / 1000.0 if ms is not None else None


def time_unit_seconds(keyword: Callable[[str], str | None], scaled: bool) -> float | None:
    """Seconds per unit of the values of the time column (`time_column`), or None when
    the file does not say.

    Scale values (`scaled`) already hold seconds when the file has ``$TIMESTEP``
    (or ``CYTOKIT_TIMESTEP``, the name `cytokit.write_fcs` gives it for scale
    values); stored values are in ``$TIMESTEP`` units; either way ``TIMETICKS``
    (`timeticks_seconds`) gives the seconds where ``$TIMESTEP`` does not.
    """
    step = positive_keyword(keyword, "$TIMESTEP")
    if scaled:
        if step is not None or positive_keyword(keyword, "CYTOKIT_TIMESTEP") is not None:
            return 1.0
        return timeticks_seconds(keyword)
    return step if step is not None else timeticks_seconds(keyword)


def scale_plan(kw: Keywords, ds: DataSet, channels: tuple[Channel, ...]) -> ScalePlan:
    """What turns this data set's stored values into scale values (see the module docstring)."""
    divide, log = [], []
    j_time = time_column(kw.get, channels)
    for c in channels:
        if c.is_log:
            if c.range <= 0:
                raise kw.notes.error(
                    f"$P{c.index + 1}R={kw.get(f'$P{c.index + 1}R')!r}: the logarithmic "
                    f"parameter {c.index + 1} needs a positive range to be scaled; "
                    "read it with scale=False"
                )
            if c.gain != 1:
                kw.notes.note(
                    f"$P{c.index + 1}G={c.gain:g} on a logarithmic parameter was not applied "
                    "(FCS defines gain for linear amplification)"
                )
            log.append((c.index, c.log_decades, c.range, c.log_offset or 1.0))
        elif c.gain != 1 and c.index != j_time:
            divide.append((c.index, c.gain))
    time = None
    j = j_time
    step_text = kw.get("$TIMESTEP")
    if j is not None and step_text is not None and step_text.strip():
        try:
            step = float(step_text.strip())
        except ValueError:
            step = math.nan
        if not (math.isfinite(step) and step > 0):
            kw.notes.note(
                f"$TIMESTEP={step_text!r} is not a positive number; the time channel "
                "was left in its stored units"
            )
        elif step != 1:
            time = (j, step)
    return ScalePlan(tuple(divide), tuple(log), time)
