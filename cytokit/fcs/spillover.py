"""The spillover matrix an FCS file carries in ``$SPILLOVER``, ``$SPILL`` or ``SPILL``.

The value is ``n,name_1,...,name_n,s_11,s_12,...,s_nn`` (row by row). Real files
add spaces and line breaks, end with a stray comma, name detectors by their
``$PnS`` instead of ``$PnN``, or (European locales) write decimal commas, so that
every coefficient takes two fields (``0,05``). All of these are read; names are
mapped to ``$PnN``. A value that still does not parse is noted and ignored (the
events are fine; only the file's compensation is unusable).
"""

from __future__ import annotations

import math
import re

import numpy as np

from cytokit.fcs.text import Keywords
from cytokit.sample import Channel, Spillover

__all__ = ["SPILLOVER_KEYWORDS", "read_spillover"]

#: Where the matrix is looked for, in this order.
SPILLOVER_KEYWORDS = ("$SPILLOVER", "$SPILL", "SPILL", "SPILLOVER")
_INT = re.compile(r"\d{1,9}\Z")
_DIGITS = re.compile(r"\d+\Z")


def _numbers(fields: list[str], count: int) -> list[float] | None:
    """`count` floats from `fields`, joining decimal-comma pairs when that is what fits."""

    def parse(items):
        try:
            vals = [float(x) for x in items]
        except ValueError:
            return None
        return vals if all(math.isfinite(v) for v in vals) else None

    if len(fields) == count:
        return parse(fields)
    if len(fields) == 2 * count and all(_DIGITS.match(f.lstrip("+-")) for f in fields[0::2]):
        if all(_DIGITS.match(f) for f in fields[1::2]):
            return parse(f"{a}.{b}" for a, b in zip(fields[0::2], fields[1::2], strict=True))
    return None


def _map_names(names: list[str], channels: tuple[Channel, ...]) -> list[str] | None:
    """Spillover names as ``$PnN``: by ``$PnN``, else a unique ``$PnS``, else ``$P<n>``.

    Each look-up is exact first, then ignoring surrounding spaces (``"a, b"``
    for channels ``a`` and ``b``).
    """
    pnn = {c.name: c.name for c in channels}
    pnn_loose = {c.name.strip(): c.name for c in channels}
    pns: dict[str, list[str]] = {}
    pns_loose: dict[str, list[str]] = {}
    for c in channels:
        if c.marker:
            pns.setdefault(c.marker, []).append(c.name)
            pns_loose.setdefault(c.marker.strip(), []).append(c.name)
    numbered = all(_INT.match(x.strip()) for x in names) and not set(names) & set(pnn)
    out = []
    for name in names:
        key = name.strip()
        for table, k in ((pnn, name), (pnn_loose, key)):
            if k in table:
                out.append(table[k])
                break
        else:
            hits = pns.get(name) or pns_loose.get(key) or []
            if len(hits) == 1:
                out.append(hits[0])
            elif numbered and 1 <= int(key) <= len(channels):
                out.append(channels[int(key) - 1].name)  # some writers number the detectors
            else:
                return None
    return out


def read_spillover(kw: Keywords, channels: tuple[Channel, ...]) -> Spillover | None:
    """The first spillover keyword of `SPILLOVER_KEYWORDS` that the file has, parsed."""
    for key in SPILLOVER_KEYWORDS:
        value = kw.get(key)
        if value is not None:
            break
    else:
        return None
    spelled = kw.spelling(key)
    raw_fields = value.split(",")
    while raw_fields and not raw_fields[-1].strip():
        raw_fields.pop()
    fields = [f.strip() for f in raw_fields]
    if not fields or fields == ["0"]:
        return None

    def ignore(why: str) -> None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        kw.notes.note(
            f"{spelled}={shown!r} cannot be read ({why}); the file's spillover matrix was ignored"
        )

    if not _INT.match(fields[0]) or int(fields[0]) == 0:
        ignore(f"it should start with the number of channels, not {fields[0]!r}")
        return None
    n = int(fields[0])
    if len(fields) < 1 + n + n * n:
        ignore(f"{n} channels need {n} names and {n * n} coefficients")
        return None
    names = raw_fields[1 : 1 + n]
    values = _numbers(fields[1 + n :], n * n)
    if values is None:
        ignore(f"expected {n * n} numbers after the {n} names")
        return None
    mapped = _map_names(names, channels)
    if mapped is None:
        unknown = [m for m in names if m not in {c.name for c in channels}]
        kw.notes.note(
            f"{spelled} names {', '.join(repr(u) for u in unknown)}, which match no "
            "channel's $PnN or $PnS; the names were kept as written"
        )
        mapped = names
    if len(set(mapped)) != n:
        ignore("a channel is named twice")
        return None
    matrix = np.array(values, dtype=np.float64).reshape(n, n)
    return Spillover(tuple(mapped), matrix, key)
