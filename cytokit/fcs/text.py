"""The HEADER and TEXT segments of an FCS data set.

HEADER
    58 ASCII bytes: ``FCSx.y``, four spaces, then six right-aligned 8-byte
    numbers: the first and last byte of TEXT, DATA and ANALYSIS, counted from
    the start of the data set's HEADER (blank or 0 when not given there).

TEXT
    Its first byte is the delimiter; then ``key<d>value<d>`` pairs. Two
    conventions meet in real files and cannot always be told apart locally:

    * FCS 3.x escapes a delimiter inside a key or value by doubling it, and
      forbids empty values;
    * many FCS 2.0 (and some 3.0) writers put an empty value as two delimiters
      in a row and never escape.

    `parse_text` reads a TEXT both ways when it holds doubled delimiters and
    keeps the reading that gives well-formed key/value pairs; when both do, the
    one whose keys look like FCS keywords (start with ``$``) wins, and on a tie
    the file's version decides. Under escaping, an odd run of delimiters holds
    one separator and the escaped delimiters go to the value side of it (a key
    is followed by its value, a value by the next key), which is how a value
    that starts or ends with the delimiter is written.

Bytes are decoded as UTF-8 per key and value, falling back to Latin-1 (old
Macintosh and Windows instruments write 8-bit code pages), so decoding never
fails. Keys keep their spelling; look-ups ignore case and surrounding spaces.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cytokit._paths import describe_start
from cytokit.fcs.problems import Notes

__all__ = ["HEADER_BYTES", "Header", "Keywords", "parse_header", "parse_text"]

HEADER_BYTES = 58
_FIELDS = ("TEXT begin", "TEXT end", "DATA begin", "DATA end", "ANALYSIS begin", "ANALYSIS end")
_VERSION = re.compile(rb"FCS\d\.\d\Z")
#: Versions of the FCS standard (ISAC): FCS 2.0 (1990), 3.0 (1997), 3.1 (2010), 3.2 (2020).
#: Any other ``FCSd.d`` HEADER is read with a warning, by the rules of 3.2 (a later
#: number) or 2.0 (an earlier one).
KNOWN_VERSIONS = (b"FCS2.0", b"FCS3.0", b"FCS3.1", b"FCS3.2")


@dataclass(frozen=True)
class Header:
    """The HEADER of one data set; offsets are relative to its first byte, inclusive."""

    version: str
    text: tuple[int, int]
    data: tuple[int, int]
    analysis: tuple[int, int]


def parse_header(raw: bytes, notes: Notes, base: int = 0) -> Header:
    """Parse the 58 HEADER bytes of the data set starting at byte `base` of the file."""
    where = f"at byte {base}" if base else "at the start of the file"
    if len(raw) < HEADER_BYTES or raw[:3] != b"FCS":
        if len(raw) < HEADER_BYTES and raw[:3] == b"FCS":
            raise notes.error(
                f"the FCS HEADER {where} is cut short ({len(raw)} of {HEADER_BYTES} bytes); "
                "the file is truncated"
            )
        # the file may be anything on the machine: say what it looks like, never its bytes
        if not raw:
            empty = (
                f"nothing at byte {base} (the file ends there)"
                if base
                else "it is empty (0 bytes: a copy or export that did not finish); export or "
                "copy it again"
            )
            raise notes.error(f"not an FCS file: {empty}")
        what = f"the data set at byte {base}" if base else "it"
        raise notes.error(
            f"not an FCS file: {what} starts with {describe_start(raw)}, not with 'FCS' and "
            "a version such as 'FCS3.1'"
        )
    version = raw[:6]
    if not _VERSION.match(version):
        raise notes.error(
            f"the HEADER {where} starts with 'FCS' but no version; expected 'FCS' and a "
            "version such as 'FCS3.1'"
        )
    if version not in KNOWN_VERSIONS:
        rules = "FCS 3.2" if version > KNOWN_VERSIONS[-1] else "FCS 2.0"
        notes.note(
            f"the HEADER {where} says {version.decode('ascii')}, which is not an FCS version "
            f"cytokit knows ({', '.join(v.decode('ascii') for v in KNOWN_VERSIONS)}); it was "
            f"read by the rules of {rules}: check its values against the instrument's software"
        )
    values = []
    for i, name in enumerate(_FIELDS):
        field = raw[10 + 8 * i : 18 + 8 * i]
        text = field.strip(b" \0")
        if not text:
            values.append(0)
            continue
        if not text.isdigit():
            first = base + 10 + 8 * i
            raise notes.error(
                f"HEADER bytes {first}-{first + 7} ({name}) hold {field!r}; "
                "expected a right-aligned whole number (or blanks)"
            )
        values.append(int(text))
    return Header(
        version=version.decode("ascii"),
        text=(values[0], values[1]),
        data=(values[2], values[3]),
        analysis=(values[4], values[5]),
    )


# -- TEXT ------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _split_escaped(body: bytes, d: bytes) -> tuple[list[bytes], bytes]:
    """Tokens under FCS 3.x escaping, and what follows the last separator.

    A maximal run of ``L`` delimiters is split assuming keys neither start nor
    end with the delimiter (values may): after a key, an odd run is the
    separator followed by ``(L - 1) / 2`` escaped delimiters opening the value,
    a run of 2 is one escaped delimiter inside the key, and a longer even run
    is a value made only of delimiters between two separators; after (inside)
    a value, an even run is escaped delimiters and an odd run is escaped
    delimiters closing the value, then the separator.
    """
    tokens: list[bytes] = []
    cur = bytearray()
    pos = 0
    for m in re.finditer(re.escape(d) + b"+", body):
        cur += body[pos : m.start()]
        run = m.end() - m.start()
        if len(tokens) % 2 == 0:  # in a key
            if run % 2:
                tokens.append(bytes(cur))
                cur = bytearray(d * (run // 2))
            elif run == 2 or not cur:
                cur += d * (run // 2)
            else:
                tokens.append(bytes(cur))
                tokens.append(d * (run // 2 - 1))
                cur = bytearray()
        elif run % 2:  # a value ends here
            cur += d * (run // 2)
            tokens.append(bytes(cur))
            cur = bytearray()
        else:
            cur += d * (run // 2)
        pos = m.end()
    cur += body[pos:]
    return tokens, bytes(cur)


def _well_formed(tokens: list[bytes]) -> bool:
    return len(tokens) % 2 == 0 and all(tokens[0::2])


def _dollar_keys(tokens: list[bytes]) -> int:
    return sum(1 for k in tokens[0::2] if k.startswith(b"$"))


def parse_text(
    raw: bytes, notes: Notes, *, segment: str = "TEXT", version: str = "FCS3.1"
) -> list[tuple[str, str]]:
    """The (key, value) pairs of a TEXT segment, in file order.

    Parameters
    ----------
    raw : bytes
        The whole segment, starting with its delimiter.
    notes : Notes
        Receives work-arounds (dangling key, no final delimiter).
    segment : str
        "TEXT" or "supplemental TEXT", for messages.
    version : str
        The HEADER version; decides between escaping and empty values on a tie.
    """
    if not raw:
        return []
    d = raw[:1]
    body = raw[1:]
    if d * 2 not in body:
        tokens = body.split(d)
        tail = tokens.pop()  # b"" when TEXT ends with the delimiter
    else:
        strict, strict_tail = _split_escaped(body, d)
        loose = body.split(d)
        loose_tail = loose.pop()
        strict_ok = _well_formed(strict if not strict_tail else [*strict, strict_tail])
        loose_ok = _well_formed(loose if not loose_tail else [*loose, loose_tail])
        if strict_ok != loose_ok:
            use_strict = strict_ok
        else:
            a, b = _dollar_keys(strict), _dollar_keys(loose)
            use_strict = a > b or (a == b and version >= "FCS3.0")
        tokens, tail = (strict, strict_tail) if use_strict else (loose, loose_tail)
    if tail.strip(b" \0\r\n\t"):
        tokens.append(tail)
        if len(tokens) % 2 == 0:
            notes.note(f"the {segment} segment does not end with its delimiter {d!r}")
    if len(tokens) % 2:
        dangling = tokens.pop()
        if dangling.strip(b" \0\r\n\t"):
            notes.note(
                f"the {segment} segment ends with keyword {_decode(dangling)!r} "
                "without a value; it was ignored"
            )
    pairs = []
    nameless = 0
    for i in range(0, len(tokens), 2):
        key = _decode(tokens[i])
        if not key.strip():
            nameless += 1
            continue
        pairs.append((key, _decode(tokens[i + 1])))
    if nameless:
        notes.note(f"the {segment} segment has {nameless} value(s) without a keyword; ignored")
    return pairs


def shorten(value: str, limit: int = 60) -> str:
    """`value` for a message: at most `limit` characters."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


# -- keywords --------------------------------------------------------------------------


def norm(key: str) -> str:
    """The look-up form of a keyword: upper case, no surrounding spaces."""
    return key.strip().upper()


class Keywords:
    """The keywords of one data set, in file order, with their spelling.

    Look-ups ignore case and surrounding spaces. A keyword given twice keeps its
    first value (a note says so).
    """

    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.items: dict[str, str] = {}
        self._index: dict[str, str] = {}

    def add(self, pairs: list[tuple[str, str]], segment: str = "TEXT") -> None:
        repeated = []
        for key, value in pairs:
            n = norm(key)
            first = self._index.get(n)
            if first is None:
                self._index[n] = key
                self.items[key] = value
                continue
            old = self.items[first]
            same = "same value" if old == value else f"{shorten(old)!r}, then {shorten(value)!r}"
            repeated.append(f"{shorten(key)!r} ({same})")
        if repeated:
            shown = "; ".join(repeated[:5]) + (
                f"; and {len(repeated) - 5} more" if len(repeated) > 5 else ""
            )
            self.notes.note(
                f"{segment} repeats keyword(s) {shown}; the first value of each is used"
            )

    def __contains__(self, key: str) -> bool:
        return norm(key) in self._index

    def get(self, key: str, default: str | None = None) -> str | None:
        real = self._index.get(norm(key))
        return self.items[real] if real is not None else default

    def spelling(self, key: str) -> str:
        return self._index.get(norm(key), key)

    def integer(self, key: str, *, expected: str, minimum: int = 0) -> int:
        """A required whole-number keyword."""
        value = self.get(key)
        if value is None:
            raise self.notes.error(
                f"keyword {key} is missing; expected {expected} (a required keyword: the "
                "file's TEXT is damaged or was not written whole; export it again)"
            )
        return self.parse_int(key, value, expected=expected, minimum=minimum)

    def parse_int(self, key: str, value: str, *, expected: str, minimum: int = 0) -> int:
        text = value.strip()
        try:
            number = int(text) if len(text) <= 30 else None
        except ValueError:
            number = None
            try:  # "1024.0" is a whole number too
                f = float(text)
                if math.isfinite(f) and f.is_integer():
                    number = int(f)
            except ValueError:
                pass
        if number is None or number < minimum:
            raise self.notes.error(
                f"{self.spelling(key)}={shorten(value)!r} is not valid; expected {expected}"
            )
        return number

    def number(self, key: str, *, expected: str, default: float) -> float:
        """An optional finite number keyword."""
        value = self.get(key)
        if value is None or not value.strip():
            return default
        try:
            f = float(value.strip())
        except ValueError:
            f = math.nan
        if not math.isfinite(f):
            raise self.notes.error(
                f"{self.spelling(key)}={shorten(value)!r} is not valid; expected {expected}"
            )
        return f
