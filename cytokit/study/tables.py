"""The study's CSV tables (``manifest.csv``, ``infusions.csv``, the clinical tables), read safely.

`read_table` reads a CSV table as a header and its rows, and reports every
problem (a file too large, unreadable, empty, a line with the wrong number of
fields) as one line in the caller's list instead of raising, so that a study
lists all its problems at once. A cell cytokit wrote with a quote against
spreadsheet formulas (`cytokit._io.neutralise_cell`) is read as its raw value.
"""

from __future__ import annotations

import csv
from pathlib import Path

from cytokit._io import restore_cell
from cytokit._paths import open_regular

__all__ = ["MAX_CSV_BYTES", "read_table"]

#: Largest manifest.csv or infusions.csv read (a manifest of 100,000 files is ~10 MB).
MAX_CSV_BYTES = 64 * 2**20


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
        Stripped column names; empty when the file cannot be read.
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
        with open_regular(path, "r", newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = list(reader)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return [], []
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return [], []
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        problems.append(
            f"{path}: is not UTF-8 text (byte 0x{bad}); save it as 'CSV UTF-8 (comma "
            "delimited)' from the spreadsheet, or convert it to UTF-8"
        )
        return [], []
    except csv.Error as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return [], []
    if not rows:
        problems.append(f"{path}: empty; it needs a header line")
        return [], []
    if any("\x00" in v for values in rows[:2] for v in values):  # UTF-16 without its BOM
        problems.append(
            f"{path}: is UTF-16 text (NUL bytes between the characters), not UTF-8; save it "
            "as 'CSV UTF-8 (comma delimited)' from the spreadsheet, or convert it to UTF-8"
        )
        return [], []
    # a cell cytokit wrote with a quote against spreadsheet formulas is read as its raw value
    rows = [[restore_cell(v) for v in values] for values in rows]
    header = [h.strip() for h in rows[0]]
    sep = next((s for s in (";", "\t", "|") if s in header[0]), None) if len(header) == 1 else None
    if sep is not None:  # one problem, not one per line whose decimal commas split it
        problems.append(
            f"{path}: the header is one column separated by {sep!r}; cytokit reads "
            "comma-separated CSV: save it as 'CSV (comma delimited)'"
        )
        return [], []
    out = []
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            problems.append(
                f"{path}, line {number}: {len(values)} fields but the header has "
                f"{len(header)} ({', '.join(header)})"
            )
            continue
        out.append((number, dict(zip(header, values, strict=True))))
    return header, out
