"""The study's CSV tables (``manifest.csv``, ``infusions.csv``, the clinical tables), read safely.

`read_table` reads a CSV table as a header and its rows, and reports every
problem (a file too large, unreadable, empty, a line with the wrong number of
fields) as one line in the caller's list instead of raising, so that a study
lists all its problems at once. A cell cytokit wrote with a quote against
spreadsheet formulas (`cytokit._io.neutralise_cell`) is read as its raw value.

`misnamed_columns` is every reader's header check: a column that is one of the
reader's under another spelling (other case, spaces or hyphens for
underscores, a close misspelling holding that column's kind of values) would
be kept as the lab's own metadata and its values lost, so it is a problem.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cytokit._io import restore_cell
from cytokit._paths import open_regular

__all__ = ["MAX_CSV_BYTES", "misnamed_columns", "read_table"]

#: Largest manifest.csv or infusions.csv read (a manifest of 100,000 files is ~10 MB).
MAX_CSV_BYTES = 64 * 2**20


_SAVE_UTF8 = "save it as 'CSV UTF-8 (comma delimited)' from the spreadsheet, or convert it to UTF-8"


def _not_utf8(path: Path, raw: bytes, at: int) -> str:
    """Where byte `at` of `raw`, no UTF-8, is: its line and its cell, the byte escaped."""
    line = len(re.findall(rb"\r\n|\r|\n", raw[:at])) + 1
    start = max(raw.rfind(b, 0, at) for b in (b"\n", b"\r", b",")) + 1
    ends = [e for b in (b"\n", b"\r", b",") if (e := raw.find(b, at)) >= 0]
    cell = raw[start : min(ends, default=len(raw))].decode("utf-8", "backslashreplace")
    cell = cell.strip().strip('"')
    shown = cell if len(cell) <= 40 else cell[:37] + "..."
    return (
        f"{path}, line {line}: is not UTF-8 text (byte 0x{raw[at]:02x} in '{shown}'); {_SAVE_UTF8}"
    )


#: Invisible characters a cell may carry around its text (zero-width space, non-joiner,
#: joiner, word joiner, a byte-order mark pasted inside the file), dropped as spaces are.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_EDGES = re.compile(f"^[\\s{_INVISIBLE}]+|[\\s{_INVISIBLE}]+$")


def _trimmed(cell: str) -> str:
    """`cell` without the invisible characters (`_INVISIBLE`) and spaces around its text;
    a cell without them is returned as it is (its spaces are the reader's to strip).
    A cell written as Excel's text formula, ``="P01"`` (how some exports keep ``007`` from
    becoming 7), is its text."""
    if any(c in cell for c in _INVISIBLE):
        cell = _EDGES.sub("", cell)
    if (m := _TEXT_FORMULA.fullmatch(cell.strip())) is not None:
        return m.group(1).replace('""', '"')
    return cell


#: Excel's formula of a text constant: ``="..."`` (a quote inside doubled).
_TEXT_FORMULA = re.compile(r'="((?:[^"]|"")*)"', re.DOTALL)


def _split_number(values: Sequence[str]) -> str | None:
    """The first run of fields that reads as one number written with thousands separators
    (``15``, ``000``, ``000``: a comma-separated file split ``15,000,000``), or None."""
    for i, value in enumerate(values):
        if not re.fullmatch(r"[+-]?\d{1,3}", value.strip()):
            continue
        run = [value.strip()]
        for nxt in values[i + 1 :]:
            if not re.fullmatch(r"\d{3}(\.\d*)?", nxt):
                break
            run.append(nxt)
            if "." in nxt:
                break
        if len(run) > 1:
            return ",".join(run)
    return None


def read_table(
    path: Path, problems: list[str]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the non-empty rows of a CSV table; problems appended to `problems`.

    Parameters
    ----------
    path : Path
        Opened only when it is a regular file (`cytokit._paths.open_regular`).
    problems : list of str
        Each problem found is appended as one line naming the file (and line).

    Returns
    -------
    header : list of str
        Stripped column names; empty when the file cannot be read, or two columns
        have one name (``day`` and ``day ``: a row would keep only the last one's value).
    rows : list of (int, dict of str to str)
        Line number and ``{column: value}`` of each well-formed, non-blank line.
    """
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            problems.append(
                f"{path}: the file is {path.stat().st_size:,} bytes; cytokit reads study tables "
                f"of at most {MAX_CSV_BYTES:,} bytes (64 MiB): check that it is the right file"
            )
            return [], []
        with open_regular(path, "rb") as fh:
            raw = fh.read(MAX_CSV_BYTES + 1)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return [], []
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return [], []
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        problems.append(
            f"{path}: is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8; "
            f"{_SAVE_UTF8}"
        )
        return [], []
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    except UnicodeDecodeError as exc:
        problems.append(_not_utf8(path, raw, exc.start))
        return [], []
    except csv.Error as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return [], []
    if not rows:
        problems.append(f"{path}: empty; it needs a header line")
        return [], []
    if any("\x00" in v for values in rows[:2] for v in values):  # UTF-16 without its BOM
        problems.append(
            f"{path}: is UTF-16 text (NUL bytes between the characters), not UTF-8; {_SAVE_UTF8}"
        )
        return [], []
    # a cell cytokit wrote with a quote against spreadsheet formulas is read as its raw value
    rows = [[restore_cell(v) for v in values] for values in rows]
    header = [_trimmed(h).strip() for h in rows[0]]
    sep = next((s for s in (";", "\t", "|") if s in header[0]), None) if len(header) == 1 else None
    if sep is not None:  # one problem, not one per line whose decimal commas split it
        problems.append(
            f"{path}: the header is one column separated by {sep!r}; cytokit reads "
            "comma-separated CSV: save it as 'CSV UTF-8 (comma delimited)' with ',' as the "
            "list separator (Excel writes the system's list separator, ';' where decimals "
            "have a comma: set it in the region settings) or, in LibreOffice, as Text CSV "
            "with the field delimiter ','"
        )
        return [], []
    first: dict[str, int] = {}
    found = len(problems)
    for at, name in enumerate(header):
        if name and name in first:  # a row's dict would keep the last one's values only
            problems.append(
                f"{path}: column {first[name] + 1} {rows[0][first[name]]!r} and column "
                f"{at + 1} {rows[0][at]!r} have one name; rename or remove one (cytokit "
                "would read only the last)"
            )
        first.setdefault(name, at)
    if len(problems) > found:
        return [], []
    out = []
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            split = _split_number(values) if len(values) > len(header) else None
            problems.append(
                f"{path}, line {number}: {len(values)} fields but the header has "
                f"{len(header)} ({', '.join(header)})"
                + (
                    f"; {split!r} looks like one number split at its thousands separators: "
                    f"write it without them ({split.replace(',', '')})"
                    if split
                    else ""
                )
            )
            continue
        values = [_trimmed(v) for v in values]
        out.append((number, dict(zip(header, values, strict=True))))
    return header, out


#: A close misspelling of a column read as free text (no values to judge by) is at least
#: this alike (`difflib` ratio); the lab's ``patient_id`` (0.82) stays its own column.
TEXT_NEAR_MISS = 0.9


def _folded(name: str) -> str:
    """`name` in lower case with spaces, hyphens, dots and underscores as one ``_``."""
    return re.sub(r"[\s_.\-]+", "_", name.casefold()).strip("_")


def misnamed_columns(
    path: Path,
    header: Sequence[str],
    records: Sequence[tuple[int, Mapping[str, str]]],
    columns: Mapping[str, Callable[[str], bool] | None],
    problems: list[str],
) -> dict[str, str]:
    """Header names that are one of `columns` named otherwise, each a problem in `problems`.

    A header is taken for column ``c`` when it is ``c`` up to case, spaces,
    hyphens and underscores (``Given``, ``dose per kg``, ``Progression-Day``),
    or, when ``c`` is not in the header itself, a close misspelling of it
    (`cytokit.errors.near_misses`) whose filled values all pass ``columns[c]``
    (a whole number for a day, yes/no for a flag...); for a text column
    (``None``) the name alone must be at least `TEXT_NEAR_MISS` alike. Any
    other column is the lab's own (``notes``, ``patient_id``, ``death_date``).

    Parameters
    ----------
    path : Path
        Named in each problem.
    header : sequence of str
    records : sequence of (int, mapping)
        The rows (`read_table`), whose values judge a close misspelling.
    columns : mapping of str to callable or None
        The columns the reader reads -> whether one filled value fits it.
    problems : list of str
        One line per misnamed column, naming it, the column it resembles and the fix.

    Returns
    -------
    dict of str to str
        Misnamed header name -> the column it was taken for.
    """
    import difflib

    from cytokit.errors import near_misses

    out: dict[str, str] = {}
    for col in header:
        if not col or col in columns:
            continue
        same = [c for c in columns if _folded(c) == _folded(col)]
        target = same[0] if same else None
        if target is None:
            absent = [c for c in columns if c not in header]
            values = [v.strip() for _, rec in records if (v := rec.get(col, "")).strip()]
            for c in near_misses(col, absent):
                fits = columns[c]
                if fits is None:  # by name alone: two letters swapped, or very close
                    ratio = difflib.SequenceMatcher(None, col.casefold(), c).ratio()
                    if ratio < TEXT_NEAR_MISS and sorted(col.casefold()) != sorted(c):
                        continue
                elif not values or not all(fits(v) for v in values):
                    continue
                target = c
                break
        if target is None:
            continue
        out[col] = target
        why = (
            "header names are read as written: lower case, '_' between words"
            if same
            else "a column of the lab's own is kept as metadata where its name and values "
            "are no near miss of one cytokit reads"
        )
        problems.append(
            f"{path}: column {col!r} is not one cytokit reads (did you mean {target!r}?); "
            f"rename it {target!r} ({why})"
        )
    return out
