"""Writing one `Sample` as an FCS 3.1 (or 3.0) file.

The file has three segments: the 58-byte HEADER, the primary TEXT (every
keyword) and DATA (the events, list mode). There is no ANALYSIS and no
supplemental TEXT: keywords a sample read from supplemental TEXT are written
to the primary TEXT.

What the writer owns
--------------------
These keywords describe the file layout or the channels and are always dropped
from ``sample.keywords`` (matched case-insensitively) and written afresh:

* ``$BEGINDATA $ENDDATA $BEGINANALYSIS $ENDANALYSIS $BEGINSTEXT $ENDSTEXT
  $NEXTDATA $TOT $PAR $DATATYPE $BYTEORD $MODE``;
* ``$PnN $PnS $PnB $PnE $PnG $PnR`` and ``$PnDATATYPE`` of every parameter,
  regenerated from `Sample.channels` (``$PnS`` only when the marker is not
  empty, ``$PnG`` only when the gain is not 1);
* ``$SPILLOVER``, ``$SPILL`` and ``SPILL``, replaced by one ``$SPILLOVER``
  written from `Sample.spillover`.

Other ``$Pn*`` keywords (``$PnV``, ``$PnD``, ``$PnTYPE``, ``$PnL``...) are kept
and renumbered when a channel sits at a different column than in the file the
keywords came from: channel ``i`` takes the ``$Pn*`` keywords of the ``n`` whose
``$PnN`` is its name (``n = i + 1`` first). ``$Pn*`` keywords of parameters that
are no longer in the sample are dropped. Every other keyword is copied with its
spelling, value and order. TEXT holds the writer's keywords first, then the copied
ones, then `extra_keywords` that did not replace a copied one.

Scaled samples
--------------
When ``sample.scaled`` is True the events are scale values, so the file must
not ask a reader to scale them again: every parameter gets ``$PnE=0,0`` and no
``$PnG``, and ``$TIMESTEP`` (which readers multiply into the time channel) is
renamed ``CYTOKIT_TIMESTEP`` with its value unchanged, in the same position.
Reading such a file with ``scale=True`` gives back the same events, bit for
bit. When ``sample.scaled`` is False, ``$PnE``, ``$PnG`` and ``$TIMESTEP`` are
written as the channels and keywords say.

TEXT encoding
-------------
The delimiter is ``/`` unless some key or value contains it; then it is the
first of ``| FF RS ~ ! # % & @ ; = `` that no key or value contains (FF and RS
are the control characters 0x0C and 0x1E), then any other ASCII character 1-126
that none contains, so that nothing needs escaping. Only when every one of them
occurs is the delimiter ``/`` with each ``/`` in a key or value doubled, as FCS
3.1 specifies; since doubling cannot tell a key that starts or ends with ``/``
(or holds ``//``) from its neighbouring values, such a key is then refused with
`FCSError`. FCS 3.1 forbids empty values: an empty value is written as a single
space. Keys and values are written as UTF-8.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cytokit._io import create_temporary, replaced
from cytokit.errors import FCSError
from cytokit.sample import Sample

__all__ = ["write_fcs"]

#: Keywords about the file layout, always regenerated (upper case).
STRUCTURAL_KEYWORDS = frozenset(
    "$BEGINDATA $ENDDATA $BEGINANALYSIS $ENDANALYSIS $BEGINSTEXT $ENDSTEXT "
    "$NEXTDATA $TOT $PAR $DATATYPE $BYTEORD $MODE".split()
)
#: Spillover keywords replaced by one ``$SPILLOVER`` (upper case).
SPILLOVER_KEYWORDS = frozenset({"$SPILLOVER", "$SPILL", "SPILL"})
#: ``$Pn<suffix>`` suffixes regenerated from the channels (upper case).
REGENERATED_PARAMETER_SUFFIXES = frozenset({"N", "S", "B", "E", "G", "R", "DATATYPE"})
#: Where ``$TIMESTEP`` goes when the events are already scale values.
TIMESTEP_KEEP_KEYWORD = "CYTOKIT_TIMESTEP"

_VERSIONS = ("3.1", "3.0")
_BYTEORD = {"little": "1,2,3,4", "big": "4,3,2,1"}
_DATATYPES = ("F", "D", "I")
_HEADER_BYTES = 58
_HEADER_MAX_OFFSET = 99_999_999
# Bytes of events per block when they must be converted or byte-swapped: large
# enough that per-block overhead vanishes, small next to any real event array.
_BLOCK_BYTES = 4 << 20
_PREFERRED_DELIMITERS = ("/", "|", "\x0c", "\x1e", "~", "!", "#", "%", "&", "@", ";", "=")
# Then any other character FCS allows as a delimiter (ASCII 1-126), so that the
# doubling fallback is needed only when a TEXT segment uses every one of them; never a
# letter, digit or '$': the keys and the offsets written after the choice ($BEGINDATA's
# digits) are made of them, and a delimiter among them makes the file unreadable.
_DELIMITERS = _PREFERRED_DELIMITERS + tuple(
    c
    for c in map(chr, range(1, 127))
    if c not in _PREFERRED_DELIMITERS and not c.isalnum() and c != "$"
)
_PARAM_KEY = re.compile(r"^\$P(\d+)([A-Z].*)$", re.DOTALL)


def write_fcs(
    path: str | os.PathLike[str],
    sample: Sample,
    *,
    version: str = "3.1",
    byteorder: str = "little",
    datatype: str | None = None,
    extra_keywords: Mapping[str, str | int | float] | None = None,
) -> Path:
    """Write `sample` as a one-data-set FCS file, atomically.

    Parameters
    ----------
    path : str or path-like
        The file to write. Its directory must exist. The file appears only when
        complete: the writer fills a temporary file in the same directory and
        renames it over `path`; on any error the temporary file is removed and
        an existing file at `path` is left untouched.
    sample : Sample
        ``sample.events`` of shape (n_events, n_channels), any float or integer
        dtype, any memory layout (a read-only array or memory map is fine; it
        is never modified and never copied whole).
    version : {"3.1", "3.0"}
        The FCS version in the HEADER ("FCS3.1" etc. are accepted too). Both
        write the same keywords; FCS 3.0 does not promise UTF-8 values.
        FCS 2.0 is not written.
    byteorder : {"little", "big"}
        ``$BYTEORD`` ``1,2,3,4`` or ``4,3,2,1``.
    datatype : {None, "F", "D", "I"}
        ``$DATATYPE``. None picks from ``sample.events.dtype``: float32 and
        float16 → F, float64 → D, (un)signed integers → I with ``$PnB`` the
        dtype's width. "F" and "D" convert (float64 → F rounds to float32;
        values beyond its range become ±inf). "I" requires finite,
        non-negative, integral values; for integer events ``$PnB`` is their
        width, for float events the channels' common ``$PnB`` when it is 8, 16,
        32 or 64 and holds the largest value, else the smallest of 16, 32, 64
        that does. All channels share one width.
    extra_keywords : mapping of str to str, int or float, optional
        Keywords to add after the sample's, or to replace the value of a
        sample keyword with the same (case-insensitive) name. They may not be
        keywords the writer owns (see the module docstring). Numbers are
        written as integers when integral, else with ``repr``.

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    FCSError
        Bad `version`, `byteorder`, `datatype` or events for the data type
        (negative, NaN or fractional values for "I"); an empty or duplicate
        keyword; a spillover channel name containing a comma; or the file
        cannot be written (missing directory, no permission, disk full...).

    Notes
    -----
    ``$PnR`` is ``Channel.range`` when positive (for "I", and when it exceeds
    the channel's largest value: otherwise readers that mask integers to
    ``$PnR`` would corrupt them, so ``2 ** $PnB`` is written instead). A channel
    without a range gets ``floor(max finite value) + 1`` (at least 1) for F and
    D, and ``2 ** $PnB`` for I. ``$PnE``, ``$PnG`` and ``$TIMESTEP`` follow the
    rules in the module docstring for scaled and stored samples.

    When the data segment ends beyond byte 99,999,999 the HEADER holds 0 for
    its offsets and ``$BEGINDATA``/``$ENDDATA`` the real ones (FCS 3.1). With no
    events the DATA segment is empty: ``$BEGINDATA`` is the byte after TEXT and
    ``$ENDDATA`` one less (so ``end - begin + 1 == 0``).
    """
    path = Path(path)
    version = _check_version(version)
    if byteorder not in _BYTEORD:
        raise FCSError(
            f"byteorder={byteorder!r} is not supported; use 'little' ($BYTEORD 1,2,3,4) "
            "or 'big' ($BYTEORD 4,3,2,1)"
        )
    events = np.asarray(sample.events)
    if events.ndim != 2 or events.shape[1] != len(sample.channels):
        raise FCSError(
            f"sample events have shape {events.shape} but the sample has "
            f"{len(sample.channels)} channels; expected (n_events, {len(sample.channels)})"
        )
    code, out_dtype, rng_values = _plan_data(sample, events, datatype, byteorder)
    keywords = _build_keywords(sample, code, out_dtype, rng_values, byteorder, extra_keywords)
    header, text = _layout(
        keywords, version, events.shape[0] * events.shape[1] * out_dtype.itemsize
    )
    _write_atomically(path, header, text, events, out_dtype)
    return path


# -- options -------------------------------------------------------------------------


def _check_version(version: str) -> str:
    v = str(version).upper().removeprefix("FCS")
    if v in _VERSIONS:
        return v
    if v in ("2.0", "1.0"):
        raise FCSError(
            f"version={version!r}: writing FCS {v} is not supported (it has no "
            "$SPILLOVER, no UTF-8 and caps files at 99,999,999 bytes); use '3.1' or '3.0'"
        )
    raise FCSError(f"version={version!r} is not supported; use '3.1' (default) or '3.0'")


def _plan_data(
    sample: Sample, events: np.ndarray, datatype: str | None, byteorder: str
) -> tuple[str, np.dtype, list[float]]:
    """The data type code, the on-disk dtype and each channel's ``$PnR`` value."""
    kind = events.dtype.kind
    if kind not in "fiu" or events.dtype.itemsize > 8:
        raise FCSError(
            f"sample events have dtype {events.dtype}, which FCS cannot store; "
            "convert them to float32, float64 or an unsigned integer type"
        )
    if datatype is None:
        code = "I" if kind in "iu" else ("D" if events.dtype.itemsize == 8 else "F")
    else:
        code = str(datatype).upper()
        if code not in _DATATYPES:
            raise FCSError(
                f"datatype={datatype!r} is not supported; use None (from the events' "
                "dtype), 'F' (float32), 'D' (float64) or 'I' (unsigned integers; needs "
                "non-negative integral values)"
            )
    order = "<" if byteorder == "little" else ">"
    channels = sample.channels
    where = _sample_name(sample)
    if code in "FD":
        out = np.dtype(f"{order}f{4 if code == 'F' else 8}")
        ranges = [c.range if math.isfinite(c.range) and c.range > 0 else 0.0 for c in channels]
        missing = [i for i, r in enumerate(ranges) if r == 0.0]
        if missing:
            top = _max_finite(events, missing)
            for i, m in zip(missing, top, strict=True):
                ranges[i] = float(max(1, math.floor(m) + 1)) if math.isfinite(m) else 1.0
        return code, out, ranges

    # I: every value must survive as an unsigned integer of the chosen width.
    lo, hi = _int_stats(events, where, [c.name for c in channels])
    if events.shape[0] and np.any(lo < 0):
        bad = [channels[i].name for i in np.flatnonzero(lo < 0)]
        raise FCSError(
            f"{where}: datatype 'I' stores unsigned integers but channel(s) "
            f"{', '.join(bad)} hold negative values (minimum {lo.min():g}); "
            "write with datatype='F' or 'D' instead"
        )
    top = float(hi.max(initial=0.0)) if events.shape[0] else 0.0
    if kind in "iu":
        bits = events.dtype.itemsize * 8
    else:
        common = {c.bits for c in channels}
        bits = 0
        if len(common) == 1 and (b := common.pop()) in (8, 16, 32, 64) and top < 2.0**b:
            bits = b
        if not bits:
            if top >= 2.0**64:
                raise FCSError(
                    f"{where}: datatype 'I' holds at most 64-bit integers but the largest "
                    f"value is {top:g}; write with datatype='D' instead"
                )
            bits = next(b for b in (16, 32, 64) if top < 2.0**b)
    out = np.dtype(f"{order}u{bits // 8}")
    ranges = []
    for i, c in enumerate(channels):
        ok = math.isfinite(c.range) and c.range > 0
        ok = ok and (events.shape[0] == 0 or float(hi[i]) < c.range) and c.range <= 2.0**bits
        ranges.append(c.range if ok else float(2**bits))
    return code, out, ranges


def _row_blocks(n_rows: int, row_bytes: int):
    step = max(1, _BLOCK_BYTES // max(1, row_bytes))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def _max_finite(events: np.ndarray, columns: list[int]) -> list[float]:
    """Largest finite value of each of `columns` (NaN where there is none)."""
    if events.shape[0] == 0:
        return [math.nan] * len(columns)
    sub_cols = np.asarray(columns)
    best = np.full(len(columns), -np.inf)
    step = max(1, _BLOCK_BYTES // max(1, events.shape[1] * events.dtype.itemsize))
    tmp = np.empty((min(step, events.shape[0]), len(columns)), dtype=np.float64)
    mask = np.empty(tmp.shape, dtype=bool)
    for a, b in _row_blocks(events.shape[0], events.shape[1] * events.dtype.itemsize):
        t, m = tmp[: b - a], mask[: b - a]
        np.copyto(t, events[a:b][:, sub_cols])
        np.isfinite(t, out=m)
        np.logical_not(m, out=m)
        np.copyto(t, -np.inf, where=m)  # NaN and ±inf cannot set a range
        np.maximum(best, t.max(axis=0), out=best)
    return [float(x) if x > -np.inf else math.nan for x in best]


def _int_stats(events: np.ndarray, where: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min (inf for unsigned events) and max; float events must be finite integers."""
    n, k = events.shape
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    if n == 0:
        return lo, hi
    is_float = events.dtype.kind == "f"
    step = max(1, _BLOCK_BYTES // max(1, k * events.dtype.itemsize))
    if is_float:
        tmp = np.empty((min(step, n), k), dtype=events.dtype)
        flag = np.empty(tmp.shape, dtype=bool)
    for a, b in _row_blocks(n, k * events.dtype.itemsize):
        block = events[a:b]
        if is_float:
            f = flag[: b - a]
            np.isfinite(block, out=f)
            if not f.all():
                col = int(np.flatnonzero(~f.all(axis=0))[0])
                raise FCSError(
                    f"{where}: datatype 'I' cannot store NaN or infinite values, found in "
                    f"channel {names[col]!r}; write with datatype='F' or 'D' instead"
                )
            t = tmp[: b - a]
            np.trunc(block, out=t)
            np.equal(t, block, out=f)
            if not f.all():
                row, col = (int(x[0]) for x in np.nonzero(~f))
                raise FCSError(
                    f"{where}: datatype 'I' stores integers but event {a + row} of channel "
                    f"{names[col]!r} is {float(block[row, col])!r}; round the events first or "
                    "write with datatype='F' or 'D'"
                )
        if events.dtype.kind != "u":
            np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
    return lo, hi


def _sample_name(sample: Sample) -> str:
    name = sample.name
    return "sample" if name == "sample" else f"sample {name!r}"


# -- keywords ------------------------------------------------------------------------


def _fmt(x: float) -> str:
    """A number as FCS text: integral values without a decimal point."""
    x = float(x)
    # every integer up to 2**64 (a 64-bit channel's $PnR) in digits: readers parse $PnR
    # with int(), which refuses 1.8446744073709552e+19
    if math.isfinite(x) and x.is_integer() and abs(x) <= 2.0**64:
        return str(int(x))
    return repr(x)


def _value_text(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, (int, np.integer)) else _fmt(value)
    raise FCSError(
        f"keyword {key!r} has a value of type {type(value).__name__}; "
        "keyword values must be str (or a number)"
    )


def _parameter_map(sample: Sample) -> dict[int, int]:
    """Parameter number in ``sample.keywords`` → parameter number in the new file."""
    upper = {}
    for k, v in sample.keywords.items():
        upper.setdefault(k.upper(), v)
    by_name: dict[str, list[int]] = {}
    for k, v in upper.items():
        m = _PARAM_KEY.match(k)
        if m and m.group(2) == "N":
            by_name.setdefault(v, []).append(int(m.group(1)))
    mapping: dict[int, int] = {}
    for i, ch in enumerate(sample.channels):
        here = upper.get(f"$P{i + 1}N")
        if here == ch.name:
            old = i + 1
        elif len(by_name.get(ch.name, ())) == 1:
            old = by_name[ch.name][0]
        elif here is None:
            old = i + 1  # nothing else claims these keywords
        else:
            continue
        mapping.setdefault(old, i + 1)
    return mapping


def _build_keywords(
    sample: Sample,
    code: str,
    out_dtype: np.dtype,
    ranges: list[float],
    byteorder: str,
    extra: Mapping[str, object] | None,
) -> list[tuple[str, str]]:
    """Every keyword but ``$BEGINDATA``/``$ENDDATA``, in writing order."""
    scaled = bool(sample.scaled)
    n_par = len(sample.channels)
    bits = out_dtype.itemsize * 8
    owned = [(k, "0") for k in ("$BEGINANALYSIS", "$ENDANALYSIS", "$BEGINSTEXT", "$ENDSTEXT")]
    owned += [("$BYTEORD", _BYTEORD[byteorder]), ("$DATATYPE", code), ("$MODE", "L")]
    owned += [("$NEXTDATA", "0"), ("$PAR", str(n_par)), ("$TOT", str(sample.events.shape[0]))]
    for i, ch in enumerate(sample.channels):
        n = i + 1
        owned.append((f"$P{n}N", ch.name))
        if ch.marker:
            owned.append((f"$P{n}S", ch.marker))
        owned.append((f"$P{n}B", str(bits)))
        if scaled:
            owned.append((f"$P{n}E", "0,0"))
        else:
            owned.append((f"$P{n}E", f"{_fmt(ch.log_decades)},{_fmt(ch.log_offset)}"))
            if ch.gain != 1:
                owned.append((f"$P{n}G", _fmt(ch.gain)))
        owned.append((f"$P{n}R", _fmt(ranges[i])))
    if sample.spillover is not None:
        owned.append(("$SPILLOVER", _spillover_text(sample)))

    renumber = _parameter_map(sample)
    # a CYTOKIT_TIMESTEP left by an earlier write gives way to a $TIMESTEP being renamed
    renaming = scaled and any(k.upper() == "$TIMESTEP" for k in sample.keywords)
    copied: list[tuple[str, str]] = []
    for key, value in sample.keywords.items():
        up = key.upper()
        if up in STRUCTURAL_KEYWORDS or up in SPILLOVER_KEYWORDS:
            continue
        if renaming and up == TIMESTEP_KEEP_KEYWORD:
            continue
        m = _PARAM_KEY.match(up)
        if m:
            if m.group(2) in REGENERATED_PARAMETER_SUFFIXES:
                continue
            new = renumber.get(int(m.group(1)))
            if new is None:
                continue  # a parameter the sample no longer has
            key = f"{key[:2]}{new}{key[2 + len(m.group(1)) :]}"
        elif scaled and up == "$TIMESTEP":
            key = TIMESTEP_KEEP_KEYWORD  # see the module docstring
        copied.append((key, _value_text(key, value)))
    for key, value in (extra or {}).items():
        key = str(key)
        up = key.upper()
        m = _PARAM_KEY.match(up)
        if (
            up in STRUCTURAL_KEYWORDS
            or up in SPILLOVER_KEYWORDS
            or (m and m.group(2) in REGENERATED_PARAMETER_SUFFIXES)
        ):
            raise FCSError(
                f"extra keyword {key!r} is written by write_fcs from the sample (its "
                "events, channels or spillover); change the sample instead"
            )
        if m and not 1 <= int(m.group(1)) <= n_par:
            raise FCSError(
                f"extra keyword {key!r} names parameter {m.group(1)} but the sample "
                f"has {n_par} channels"
            )
        text = _value_text(key, value)
        for j, (k, _) in enumerate(copied):
            if k.upper() == up:
                copied[j] = (key, text)
                break
        else:
            copied.append((key, text))

    out = owned + copied
    seen: dict[str, str] = {}
    for key, _ in out:
        if not key:
            raise FCSError("a keyword name is empty; FCS keywords need a name")
        if key.upper() in seen:
            raise FCSError(
                f"keywords {seen[key.upper()]!r} and {key!r} are the same FCS keyword "
                "(names are case-insensitive); keep one of them"
            )
        seen[key.upper()] = key
    return out


def _spillover_text(sample: Sample) -> str:
    """``$SPILLOVER`` (FCS 3.1): n, the n names, then the matrix row by row."""
    spill = sample.spillover
    names = list(spill.channels)
    for name in names:
        if "," in name or not name:
            raise FCSError(
                f"{_sample_name(sample)}: spillover channel name {name!r} cannot be written "
                "in $SPILLOVER, whose fields are separated by commas; rename the channel"
            )
    values = np.asarray(spill.matrix, dtype=np.float64).ravel()
    # repr round-trips every float64 exactly
    return ",".join([str(len(names)), *names, *(repr(float(v)) for v in values)])


# -- TEXT and HEADER -----------------------------------------------------------------


def _pick_delimiter(keywords: list[tuple[str, str]]) -> tuple[str, bool]:
    """A delimiter that occurs in no key or value, else ``("/", True)`` (escape by doubling).

    Doubling cannot tell a key that starts or ends with the delimiter (or holds
    a run of it) from a neighbouring value that does: such keys are refused
    rather than written ambiguously.
    """
    used = set("".join(k + v for k, v in keywords))
    for d in _DELIMITERS:
        if d not in used:
            return d, False
    for k, _ in keywords:
        if k.startswith("/") or k.endswith("/") or "//" in k:
            raise FCSError(
                f"keyword {k!r} cannot be written unambiguously: the TEXT segment uses every "
                "character FCS allows as a delimiter, so '/' must be escaped by doubling, and a "
                "key that starts or ends with '/' (or holds '//') would merge with its "
                "neighbours; rename the keyword"
            )
    return "/", True


def _encode_pairs(pairs: list[tuple[str, str]], delim: str, escape: bool) -> bytes:
    """``k/v/k/v/`` (no leading delimiter); empty values become one space."""
    parts = []
    for k, v in pairs:
        v = v if v else " "  # FCS 3.1 forbids empty values
        if escape:
            k = k.replace(delim, delim + delim)
            v = v.replace(delim, delim + delim)
        parts.append(f"{k}{delim}{v}{delim}")
    return "".join(parts).encode("utf-8")


def _layout(keywords: list[tuple[str, str]], version: str, data_nbytes: int) -> tuple[bytes, bytes]:
    """The HEADER and TEXT bytes for a DATA segment of `data_nbytes` right after TEXT."""
    delim, escape = _pick_delimiter(keywords)
    body = _encode_pairs(keywords, delim, escape)
    d = delim.encode("ascii")
    text_begin = _HEADER_BYTES
    # TEXT's length depends on the digits of the offsets it holds: iterate from a
    # guess that is too small; each step can only lengthen TEXT, so this settles.
    begin = text_begin + 1 + len(body)
    for _ in range(8):
        end = begin + data_nbytes - 1
        offsets = _encode_pairs([("$BEGINDATA", str(begin)), ("$ENDDATA", str(end))], delim, False)
        text = d + offsets + body
        if text_begin + len(text) == begin:
            break
        begin = text_begin + len(text)
    else:  # pragma: no cover - the loop settles in at most 3 steps
        raise FCSError("could not lay out the FCS TEXT segment (offsets did not settle)")
    text_end = text_begin + len(text) - 1
    if text_end > _HEADER_MAX_OFFSET:
        raise FCSError(
            f"the TEXT segment would end at byte {text_end}, beyond the 99,999,999 "
            "bytes the HEADER can address; drop some keywords"
        )
    # FCS 3.1: a segment reaching beyond byte 99,999,999 has 0,0 in the HEADER
    d_begin, d_end = (begin, end) if end <= _HEADER_MAX_OFFSET else (0, 0)
    header = f"FCS{version}    " + "".join(
        f"{x:>8d}" for x in (text_begin, text_end, d_begin, d_end, 0, 0)
    )
    return header.encode("ascii"), text


# -- the file --------------------------------------------------------------------------


def _write_atomically(
    path: Path, header: bytes, text: bytes, events: np.ndarray, out_dtype: np.dtype
) -> None:
    if path.is_dir():
        raise FCSError(f"cannot write FCS file {path}: it is a directory; give a file name")
    path, mode = replaced(path)  # a link's target; the replaced file's permissions kept
    tmp, fd = _open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.write(text)
            _write_events(fh, events, out_dtype)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must never expose unwritten blocks
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _os_error(path, exc) from exc
        raise


def _open_temporary(path: Path) -> tuple[str, int]:
    """Create a fresh file next to `path` (`cytokit._io`'s temporary, as every atomic write
    makes it: mode 0o666 less the umask, a name within 255 bytes)."""
    try:
        fd, tmp = create_temporary(path.parent, path.name)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    return tmp, fd


def _os_error(path: Path, exc: OSError) -> FCSError:
    parent = path.parent
    if isinstance(exc, FileNotFoundError) and not parent.exists():
        why = f"directory {parent} does not exist; create it first"
    elif isinstance(exc, NotADirectoryError):
        why = f"{parent} is not a directory"
    elif isinstance(exc, PermissionError):
        why = f"permission denied in {parent}; choose a folder you can write to"
    elif isinstance(exc, IsADirectoryError):
        why = "it is a directory; give a file name"
    else:
        why = exc.strerror or str(exc)
    return FCSError(f"cannot write FCS file {path}: {why}")


def _write_events(fh, events: np.ndarray, out_dtype: np.dtype) -> None:
    """Stream `events` as `out_dtype` rows, never holding more than one block extra."""
    n, k = events.shape
    if n == 0 or k == 0:
        return
    if events.dtype == out_dtype and events.flags.c_contiguous:
        # already the file's bytes: write straight from the array, no copy
        flat = memoryview(events.reshape(-1).view(np.uint8))
        step = 8 * _BLOCK_BYTES
        for a in range(0, flat.nbytes, step):
            fh.write(flat[a : a + step])
        return
    rows = max(1, _BLOCK_BYTES // (k * out_dtype.itemsize))
    buf = np.empty((min(rows, n), k), dtype=out_dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # float64 → F may overflow to inf
        for a, b in _row_blocks(n, k * out_dtype.itemsize):
            block = buf[: b - a]
            np.copyto(block, events[a:b], casting="unsafe")
            fh.write(memoryview(block.reshape(-1).view(np.uint8)))
