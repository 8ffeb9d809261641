"""Where a data set's events are and how they are stored.

From the HEADER and the keywords this module works out the data sets of a file
(``$NEXTDATA``), the supplemental TEXT, the bytes of the DATA segment and the
layout of one event row: each parameter's byte offset, width, kind (unsigned
integer or float), byte order and, for integers, the ``$PnR`` bit mask.

Offsets in a data set's HEADER and TEXT count from the first byte of that data
set's HEADER; everything this module returns is absolute (from the start of the
file) unless said otherwise.

DATA offsets
------------
FCS 2.0 gives them in the HEADER; FCS 3.x also in ``$BEGINDATA``/``$ENDDATA``,
with the HEADER blank or 0 when the segment lies beyond byte 99,999,999. A
candidate *fits* when it lies after the HEADER, does not overlap TEXT, is
``$TOT`` × row bytes long (or one byte longer: several instruments write
``$ENDDATA`` one past the last byte) and those bytes are in the file. When HEADER
and TEXT disagree and exactly one fits, it is used with a note saying which;
otherwise the file is rejected.

Limits
------
A file is read in time and memory linear in its size, and bounded: one data
set's TEXT (primary and supplemental) holds at most `MAX_TEXT_BYTES`, all data
sets of a file together at most `MAX_FILE_TEXT_BYTES`, a file chains at most
`MAX_DATASETS` data sets with ``$NEXTDATA``, and each data set starts after
the end of the previous one's TEXT segments (overlapping data sets would have
the same bytes parsed again for every link). A file beyond a limit raises
`FCSError`; a ``$NEXTDATA`` that points back or into its own TEXT ends the list
of data sets with a warning, like any other broken link.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from cytokit.errors import FCSError
from cytokit.fcs.problems import Notes
from cytokit.fcs.text import (
    HEADER_BYTES,
    Header,
    Keywords,
    parse_header,
    parse_text,
    shorten,
)

__all__ = [
    "MAX_DATASETS",
    "MAX_FILE_TEXT_BYTES",
    "MAX_TEXT_BYTES",
    "Column",
    "DataSet",
    "RowLayout",
    "read_datasets",
    "row_layout",
]

_SUPPORTED_WIDTHS = (1, 2, 4, 8)

#: The most TEXT bytes (primary and supplemental together) one data set may hold. The
#: largest TEXT in the test corpus is 8 KiB; a 64 x 64 spillover matrix written with 20
#: characters a value takes 80 KiB.
MAX_TEXT_BYTES = 4 << 20
#: The most TEXT bytes all the data sets of one file may hold together.
MAX_FILE_TEXT_BYTES = 16 << 20
#: The most data sets one file may chain with ``$NEXTDATA`` (the corpus's most: 4).
MAX_DATASETS = 1_000


def _beyond_limit(message: str) -> FCSError:
    """The error for a file beyond one of the limits: raised whichever data set is at fault
    (not turned into a warning that ends the list of data sets)."""
    exc = FCSError(message)
    exc.beyond_limit = True
    return exc


def _check_text_size(notes: Notes, budget: int, *segments: tuple[int, int]) -> None:
    """Refuse TEXT segments (first, last byte) beyond the per-data-set or per-file limit."""
    total = sum(last - first + 1 for first, last in segments)
    if total > MAX_TEXT_BYTES:
        raise _beyond_limit(
            f"{notes.where}: its TEXT segments hold {total:,} bytes; cytokit reads at most "
            f"{MAX_TEXT_BYTES >> 20} MiB of TEXT per data set (far more than any instrument "
            "writes), so the TEXT offsets of the HEADER or $BEGINSTEXT/$ENDSTEXT are damaged"
        )
    if total > budget:
        raise _beyond_limit(
            f"{notes.where}: the data sets up to this one hold more than "
            f"{MAX_FILE_TEXT_BYTES >> 20} MiB of TEXT, the most cytokit reads from one file "
            "(far more than any instrument writes); the $NEXTDATA chain is damaged"
        )


@dataclass(frozen=True)
class DataSet:
    """One data set of an FCS file, described from its HEADER and TEXT (no events read).

    Attributes
    ----------
    index : int
        0 for the first data set.
    offset : int
        Byte of the file where its HEADER starts.
    version : str
        From its HEADER, e.g. ``"FCS3.1"``.
    n_events, n_channels : int
        ``$TOT`` (derived from the DATA size when absent) and ``$PAR``.
    datatype : str
        ``$DATATYPE``: "I", "F" or "D".
    byteorder : str
        ``$BYTEORD`` as written.
    text : (int, int)
        First and last byte of the primary TEXT.
    stext : (int, int)
        First and last byte of the supplemental TEXT that was read; (0, -1) when
        there is none.
    data : (int, int)
        First and last byte of the events actually read (``n_events`` rows);
        (0, -1) when there are none.
    next_offset : int
        Byte where the next data set starts, 0 for the last one.
    keywords : dict of str to str
        Primary and supplemental TEXT, keys as spelled in the file.
    layout : RowLayout
        Where each parameter sits in an event row.
    """

    index: int
    offset: int
    version: str
    n_events: int
    n_channels: int
    datatype: str
    byteorder: str
    text: tuple[int, int]
    stext: tuple[int, int]
    data: tuple[int, int]
    next_offset: int
    keywords: dict[str, str] = field(repr=False)
    layout: RowLayout = field(repr=False, compare=False)


@dataclass(frozen=True)
class Column:
    """How one parameter sits in an event row."""

    offset: int  # first byte within the row
    width: int  # bytes
    kind: str  # "u" (FCS I) or "f" (F, D)
    order: str | tuple[int, ...]  # "<", ">" or the $BYTEORD ranks (1 = least significant)
    mask: int | None  # AND mask from $PnR for integers, None when every bit counts

    @property
    def dtype(self) -> np.dtype | None:
        """The numpy dtype of the stored value, None when numpy has none (24-bit...)."""
        if self.width not in _SUPPORTED_WIDTHS or not isinstance(self.order, str):
            return None
        return np.dtype(f"{self.order}{self.kind}{self.width}")


@dataclass(frozen=True)
class RowLayout:
    """The layout of one event row."""

    columns: tuple[Column, ...]
    row_bytes: int

    @property
    def uniform(self) -> np.dtype | None:
        """The dtype every column shares, packed without gaps; None if they differ."""
        first = self.columns[0].dtype
        if first is None or any(c.dtype != first for c in self.columns):
            return None
        return first


# -- parameters ----------------------------------------------------------------------


def _byte_ranks(kw: Keywords) -> tuple[int, ...] | None:
    value = kw.get("$BYTEORD")
    if value is None:
        return None
    parts = value.replace(" ", "").split(",")
    ranks = tuple(int(p) for p in parts) if all(re.fullmatch(r"\d", p) for p in parts) else ()
    if not ranks or sorted(ranks) != list(range(1, len(ranks) + 1)) or len(ranks) > 8:
        raise kw.notes.error(
            f"$BYTEORD={shorten(value, 40)!r} is not a byte order; expected '1,2,3,4' (little-endian), "
            "'4,3,2,1' (big-endian) or another ordering of 1..n"
        )
    return ranks


def _order_for(ranks: tuple[int, ...] | None, width: int, kw: Keywords, n: int):
    if width == 1:
        return "<"
    if ranks is None:
        raise kw.notes.error(
            f"keyword $BYTEORD is missing but $P{n}B stores {8 * width}-bit values; "
            "expected $BYTEORD=1,2,3,4 or 4,3,2,1"
        )
    if ranks == tuple(range(1, len(ranks) + 1)):
        return "<"
    if ranks == tuple(range(len(ranks), 0, -1)):
        return ">"
    if len(ranks) == width:
        return ranks
    raise kw.notes.error(
        f"$BYTEORD={kw.get('$BYTEORD')!r} orders {len(ranks)} bytes but $P{n} stores "
        f"{8 * width}-bit values; a mixed byte order must name every byte of a value"
    )


def integer_mask(range_value: float, bits: int) -> int | None:
    """The ``$PnR`` bit mask of an integer parameter, or None when it keeps every bit.

    Values are masked to the smallest power of two that is at least ``$PnR``
    (minus one): an instrument with ``$PnR=1024`` stores 10-bit values and may
    set the unused high bits of the 16-bit word.
    """
    if not math.isfinite(range_value) or range_value <= 1:
        return None
    top = (math.ceil(range_value) - 1).bit_length()
    return None if top >= bits else (1 << top) - 1


def row_layout(kw: Keywords, n_par: int, datatype: str) -> RowLayout:
    """Each parameter's place in the event row, from ``$PnB``, ``$PnDATATYPE``, ``$BYTEORD``."""
    ranks = _byte_ranks(kw)
    columns = []
    offset = 0
    for n in range(1, n_par + 1):
        kind_code = (kw.get(f"$P{n}DATATYPE") or datatype).strip().upper()
        if kind_code not in ("I", "F", "D"):
            key = f"$P{n}DATATYPE" if f"$P{n}DATATYPE" in kw else "$DATATYPE"
            raise kw.notes.error(f"{key}={kind_code!r} is not supported; expected I, F or D")
        raw_bits = kw.get(f"$P{n}B")
        default_bits = {"F": 32, "D": 64}.get(kind_code)
        if raw_bits is None or (raw_bits.strip() == "*" and default_bits):
            if default_bits is None:
                raise kw.notes.error(
                    f"keyword $P{n}B is missing; expected the bits of parameter {n} "
                    "(8, 16, 24, 32 or 64)"
                )
            bits = default_bits
        else:
            bits = kw.parse_int(
                f"$P{n}B", raw_bits, expected="a whole number of bits (e.g. 16 or 32)", minimum=1
            )
        if kind_code in "FD" and bits != default_bits:
            raise kw.notes.error(
                f"$P{n}B={raw_bits!r} but data type {kind_code} stores {default_bits}-bit "
                f"values; expected $P{n}B={default_bits}"
            )
        if bits % 8 or bits > 64:
            raise kw.notes.error(
                f"$P{n}B={raw_bits!r}: cytokit reads values of 8 to 64 bits in whole bytes; "
                "bit-packed data are not supported"
            )
        width = bits // 8
        order = _order_for(ranks, width, kw, n)
        mask = None
        if kind_code == "I":
            rng = kw.get(f"$P{n}R")
            try:
                rng_value = float(rng.strip()) if rng is not None else math.nan
            except ValueError:
                rng_value = math.nan
            mask = integer_mask(rng_value, bits)
        kind = "u" if kind_code == "I" else "f"
        columns.append(Column(offset, width, kind, order, mask))
        offset += width
    return RowLayout(tuple(columns), offset)


# -- segments ------------------------------------------------------------------------


def _keyword_pair(kw: Keywords, first: str, last: str) -> tuple[int, int] | None:
    a, b = kw.get(first), kw.get(last)
    if a is None or b is None:
        return None
    pa = kw.parse_int(first, a, expected="a byte offset (a whole number)")
    pb = kw.parse_int(last, b, expected="a byte offset (a whole number)")
    return pa, pb


def _supplemental(
    read, kw: Keywords, header: Header, base: int, size: int, version: str, budget: int
) -> tuple[int, int]:
    """Add the supplemental TEXT's keywords, if any, after the primary ones.

    Returns its absolute first and last byte, (0, -1) when none was read.
    """
    none = (0, -1)
    try:
        pair = _keyword_pair(kw, "$BEGINSTEXT", "$ENDSTEXT")
    except FCSError:  # a malformed pointer to optional keywords
        kw.notes.note(
            f"$BEGINSTEXT/$ENDSTEXT ({kw.get('$BEGINSTEXT')!r}, {kw.get('$ENDSTEXT')!r}) "
            "are not byte offsets; the supplemental TEXT was ignored"
        )
        return none
    if pair is None or pair == (0, 0):
        return none
    first, last = pair
    if (first, last) == header.text:
        return none  # points at the primary TEXT again
    if not (HEADER_BYTES <= first <= last and base + last < size):
        kw.notes.note(
            f"the supplemental TEXT ($BEGINSTEXT={first}, $ENDSTEXT={last}) is not "
            f"inside the file ({size} bytes); it was ignored"
        )
        return none
    _check_text_size(kw.notes, budget, header.text, (first, last))
    raw = read(base + first, last - first + 1)
    kw.add(
        parse_text(raw, kw.notes, segment="supplemental TEXT", version=version), "supplemental TEXT"
    )
    return base + first, base + last


def _fits(cand, *, expected, base, text, size):
    """None when DATA candidate `cand` fits, else why not."""
    first, last = cand
    span = last - first + 1
    if first < HEADER_BYTES:
        return f"it starts at byte {first}, inside the HEADER"
    if first <= text[1] and last >= text[0]:
        return f"it overlaps the TEXT segment (bytes {text[0]}-{text[1]})"
    if span not in (expected, expected + 1):
        return f"it is {span} bytes long but the events need {_amount(expected)}"
    if base + first + expected > size:
        return (
            f"the events need bytes {base + first}-{_amount(base + first + expected - 1)} but "
            f"the file has {size} bytes (it is truncated: copy it again, or export it again from the acquisition software)"
        )
    return None


def _amount(n: int) -> str:
    """`n` as it is, or as ``4.0e300`` when it is absurdly long."""
    text = str(n)
    return text if len(text) <= 15 else f"{text[0]}.{text[1]}e{len(text) - 1}"


def _nothing_in_data(kw, header, base, size, row_bytes, from_text, from_header) -> None:
    """Refuse $TOT = 0 where a DATA segment inside the file, clear of HEADER and TEXT,
    holds whole events: reading it as an empty sample would drop them without a word
    (a file written with no events has an empty segment, or none)."""
    for cand, src in ((from_text, "$BEGINDATA/$ENDDATA"), (from_header, "the HEADER")):
        if cand is None:
            continue
        n = (cand[1] - cand[0] + 1) // row_bytes
        inside = cand[0] >= HEADER_BYTES and base + cand[1] < size
        clear = cand[0] > header.text[1] or cand[1] < header.text[0]
        if n > 0 and inside and clear:
            raise kw.notes.error(
                f"$TOT is 0 but the DATA segment from {src} (bytes {cand[0]}-{cand[1]}) "
                f"holds {n:,} events of {row_bytes} bytes: the file contradicts itself; "
                "export it again from the acquisition software"
            )


def _data_offsets(
    kw: Keywords, header: Header, base: int, size: int, row_bytes: int
) -> tuple[int, int]:
    """The absolute first byte of the events and their count."""
    notes = kw.notes
    from_text = _keyword_pair(kw, "$BEGINDATA", "$ENDDATA")
    if from_text == (0, 0):
        from_text = None
    from_header = header.data if header.data[0] > 0 else None
    tot_text = kw.get("$TOT")
    if tot_text is None:
        cand = from_text or from_header
        if cand is None:
            raise notes.error(
                "keywords $TOT, $BEGINDATA/$ENDDATA and HEADER DATA offsets are all missing"
            )
        span = cand[1] - cand[0] + 1
        if span < 0 or span % row_bytes not in (0, 1) or cand[0] < HEADER_BYTES:
            raise notes.error(
                f"keyword $TOT is missing and the DATA segment (bytes {cand[0]}-{cand[1]}) "
                f"is not a whole number of {row_bytes}-byte events"
            )
        tot = span // row_bytes
        notes.note(f"keyword $TOT is missing; {tot} events were counted from the DATA size")
    else:
        tot = kw.parse_int("$TOT", tot_text, expected="the number of events (a whole number)")
    if tot == 0:
        _nothing_in_data(kw, header, base, size, row_bytes, from_text, from_header)
        return 0, 0
    expected = tot * row_bytes
    # a $TOT of hundreds of digits ('1e300') is quoted as written, not printed out
    shown = str(tot) if len(str(tot)) <= 15 else shorten(tot_text.strip(), 40)

    def fits(cand):
        return _fits(cand, expected=expected, base=base, text=header.text, size=size)

    if from_header and from_text and from_header != from_text:
        why_h, why_t = fits(from_header), fits(from_text)
        h = f"HEADER says DATA is bytes {from_header[0]}-{from_header[1]}"
        t = f"$BEGINDATA/$ENDDATA say {from_text[0]}-{from_text[1]}"
        if why_h is None and why_t is not None:
            notes.note(f"{h} but {t}; the HEADER was trusted (TEXT's segment: {why_t})")
            return base + from_header[0], tot
        if why_t is None and why_h is not None:
            notes.note(f"{h} but {t}; TEXT was trusted (the HEADER's segment: {why_h})")
            return base + from_text[0], tot
        if why_h is None:
            raise notes.error(
                f"{h} but {t}; both fit $TOT={shown}, so which holds the events is unknown"
            )
        raise notes.error(
            f"{h} but {t}, and neither fits $TOT={shown}: HEADER {why_h}; TEXT {why_t}"
        )
    cand = from_text or from_header
    if cand is None:
        raise notes.error("no DATA offsets: the HEADER has 0 and $BEGINDATA/$ENDDATA are missing")
    why = fits(cand)
    if why is not None:
        src = "$BEGINDATA/$ENDDATA" if cand is from_text else "the HEADER"
        raise notes.error(
            f"the DATA segment from {src} (bytes {cand[0]}-{cand[1]}) does not hold "
            f"$TOT={shown} events of {row_bytes} bytes: {why}"
        )
    return base + cand[0], tot


def _parameter_count(kw: Keywords) -> int:
    n_par = kw.integer("$PAR", expected="the number of parameters (a whole number >= 1)", minimum=1)
    # every parameter needs at least its $PnB: a $PAR beyond the keyword count is corrupt
    # (and would otherwise make the reader loop over millions of missing parameters)
    if n_par > len(kw.items):
        raise kw.notes.error(
            f"$PAR={shorten(kw.get('$PAR') or '', 40)!r} but TEXT holds only {len(kw.items)} keywords; "
            "expected one $PnB (and $PnN, $PnR) per parameter"
        )
    return n_par


def _datatype(kw: Keywords) -> str:
    value = kw.get("$DATATYPE")
    if value is None:
        raise kw.notes.error("keyword $DATATYPE is missing; expected I, F or D")
    code = value.strip().upper()
    if code == "A":
        raise kw.notes.error(
            "$DATATYPE=A (ASCII values) is not supported; expected I, F or D "
            "(convert the file with the instrument's software)"
        )
    if code not in ("I", "F", "D"):
        raise kw.notes.error(
            f"$DATATYPE={shorten(value, 40)!r} is not supported; expected I, F or D"
        )
    mode = (kw.get("$MODE") or "L").strip().upper()
    if mode not in ("L", ""):
        raise kw.notes.error(
            f"$MODE={kw.get('$MODE')!r} (histogram data) is not supported; expected L (list mode)"
        )
    return code


def describe(
    read, size: int, index: int, base: int, notes: Notes, budget: int = MAX_FILE_TEXT_BYTES
) -> DataSet:
    """Parse the HEADER and TEXT of the data set at `base` and locate its events.

    `budget` is how many TEXT bytes the file's earlier data sets left of
    `MAX_FILE_TEXT_BYTES`.
    """
    header = parse_header(read(base, HEADER_BYTES), notes, base)
    t0, t1 = header.text
    if not (HEADER_BYTES <= t0 <= t1):
        raise notes.error(
            f"HEADER gives TEXT as bytes {t0}-{t1}; expected a segment after the "
            f"{HEADER_BYTES}-byte HEADER"
        )
    if base + t1 >= size:
        raise notes.error(
            f"TEXT is bytes {base + t0}-{base + t1} but the file has {size} bytes (it is truncated: copy it again, or export it again from the acquisition software)"
        )
    _check_text_size(notes, budget, header.text)
    kw = Keywords(notes)
    kw.add(parse_text(read(base + t0, t1 - t0 + 1), notes, version=header.version))
    stext = _supplemental(read, kw, header, base, size, header.version, budget)
    datatype = _datatype(kw)
    n_par = _parameter_count(kw)
    layout = row_layout(kw, n_par, datatype)
    first, tot = _data_offsets(kw, header, base, size, layout.row_bytes)
    data = (first, first + tot * layout.row_bytes - 1) if tot else (0, -1)
    next_offset = _next(kw, base, size)
    return DataSet(
        index=index,
        offset=base,
        version=header.version,
        n_events=tot,
        n_channels=n_par,
        datatype=datatype,
        byteorder=kw.get("$BYTEORD") or "",
        text=(base + t0, base + t1),
        stext=stext,
        data=data,
        next_offset=next_offset,
        keywords=kw.items,
        layout=layout,
    )


def _next(kw: Keywords, base: int, size: int) -> int:
    value = kw.get("$NEXTDATA")
    if value is None or not value.strip():
        return 0
    text = value.strip()
    if not re.fullmatch(r"\d{1,30}", text):
        kw.notes.note(
            f"$NEXTDATA={shorten(value, 40)!r} is not a byte offset; later data sets were ignored"
        )
        return 0
    rel = int(text)
    if rel == 0:
        return 0
    if base + rel + HEADER_BYTES > size:
        kw.notes.note(
            f"$NEXTDATA={shorten(value, 40)!r} points past the end of the file ({size} bytes); "
            "later data sets were ignored"
        )
        return 0
    return base + rel


def read_datasets(read, size: int, notes: Notes, *, upto: int | None = None) -> list[DataSet]:
    """Describe the data sets of a file, following ``$NEXTDATA``.

    Parameters
    ----------
    read : callable(offset, n) -> bytes
    size : int
        File size in bytes.
    notes : Notes
    upto : int, optional
        Stop after data set `upto` (0-based); an error in it is raised. Without
        it every data set is described, and a broken ``$NEXTDATA`` link ends the
        list with a note.

    Raises
    ------
    FCSError
        The first data set (or `upto`) cannot be read, or the file is beyond a
        limit (`MAX_DATASETS`, `MAX_TEXT_BYTES`, `MAX_FILE_TEXT_BYTES`).
    """
    out: list[DataSet] = []
    base = 0
    spent = 0  # TEXT bytes parsed so far: with no overlap allowed, at most the file size
    where = notes.where
    while True:
        index = len(out)
        if index >= MAX_DATASETS:
            raise _beyond_limit(
                f"{where}: more than {MAX_DATASETS:,} data sets are chained with $NEXTDATA, "
                "the most cytokit reads from one file (far more than any instrument writes); "
                "the $NEXTDATA chain is damaged"
            )
        if index:
            notes.where = f"{where} (data set {index + 1}, at byte {base})"
        here = notes.where
        try:
            ds = describe(read, size, index, base, notes, MAX_FILE_TEXT_BYTES - spent)
        except FCSError as exc:
            if index == 0 or upto is not None or getattr(exc, "beyond_limit", False):
                raise
            notes.where = where
            why = str(exc).removeprefix(f"{here}: ")
            notes.note(
                f"data set {index + 1} (at byte {base}, from $NEXTDATA) cannot be read: "
                f"{why}; it and any later data sets were ignored"
            )
            break
        finally:
            notes.where = where
        out.append(ds)
        spent += (ds.text[1] - ds.text[0] + 1) + (ds.stext[1] - ds.stext[0] + 1)
        if upto is not None and index >= upto:
            break
        nxt = ds.next_offset
        if not nxt:
            break
        if nxt <= base:
            notes.note(
                f"$NEXTDATA of data set {index + 1} points back into the file (byte {nxt}); "
                "later data sets were ignored"
            )
            break
        end = max(ds.text[1], ds.stext[1])
        if nxt <= end:
            # data sets whose TEXT segments overlap would be parsed again for each link
            notes.note(
                f"$NEXTDATA of data set {index + 1} points into its own TEXT (byte {nxt}; "
                f"the TEXT ends at byte {end}); data sets may not overlap, so later data "
                "sets were ignored"
            )
            break
        base = nxt
    return out
