"""``tables.json``: the index of a results folder, so a table changed after it was written shows.

`cytokit.analysis.results.write_results` ends by writing ``OUT/tables.json``: for
every file it wrote (each table's CSV and/or Parquet file, and ``study.json``) its name, its size
in bytes, its SHA-256 and, for a table, its number of rows::

    {"format": 1, "cytokit_version": "0.1.0",
     "files": [{"name": "chimerism.csv", "rows": 75, "bytes": 10817,
                "sha256": "9f2c..."}, ...]}

It is written last and atomically, and removed before anything in the
folder is rewritten (`invalidate_index`), so a folder whose writing stopped
half-way (a crash between two tables) has no index. `check_index`, run by
`cytokit.analysis.results.load_results` (hence ``cytokit report`` and notebooks)
before anything is built, refuses a folder without an index, a file that is
missing, and a file whose bytes differ from the index (cut short, edited),
naming the file, what differs and the fix: run ``cytokit analyze`` again,
which takes every file already gated from ``results.sqlite``. `rerun_advice`
names the study to analyse again: the one whose run last gated into the folder
(a run stopped half-way may have been of another study than ``study.json``'s).

A results folder written before the index existed has none and is refused
the same way: its tables cannot be checked, and rerunning the analysis
writes them with their index.

The QC data ``qc/<sample>.npz`` are not listed: each array in them carries
its own CRC-32, which numpy checks on every read, and the report already
names a sample whose QC data is missing or unreadable instead of drawing it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath

from cytokit._io import atomic_write_text
from cytokit.errors import CytokitError

__all__ = ["INDEX_NAME", "check_index", "invalidate_index", "rerun_advice", "write_index"]

#: File name of the index (not ``manifest``: a study has a ``manifest.csv`` of its own).
INDEX_NAME = "tables.json"
FORMAT = 1


def invalidate_index(out: str | Path) -> None:
    """Remove `out`'s index before its files are rewritten (a stop half-way leaves none)."""
    (Path(out) / INDEX_NAME).unlink(missing_ok=True)


def write_index(out: str | Path, files: Mapping[str, int | None]) -> Path:
    """Write ``tables.json`` listing `files` (name relative to `out` -> rows, None if not a
    table) with their sizes and SHA-256 as they are now on disk, atomically."""
    from cytokit._version import __version__

    out = Path(out)
    entries = []
    for name, rows in files.items():
        data = (out / name).read_bytes()
        entry: dict[str, object] = {"name": name}
        if rows is not None:
            entry["rows"] = int(rows)
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        entries.append(entry)
    doc = {"format": FORMAT, "cytokit_version": __version__, "files": entries}
    return atomic_write_text(out / INDEX_NAME, json.dumps(doc, indent=1) + "\n")


def _epoch(stamp: object) -> float | None:
    """Seconds since 1970 of an ISO 8601 time (``runlog.jsonl``'s, ``study.json``'s)."""
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _study_json(out: Path) -> tuple[str | None, float | None]:
    """The study folder ``study.json`` names, and when it was written (None: unknown)."""
    path = out / "study.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        root = doc.get("root")
        written = path.stat().st_mtime
    except (OSError, ValueError, AttributeError):
        return None, None
    # a copy without its times (cp -r) is newer than the file: `created` (whole seconds)
    # bounds when the analysis wrote it
    created = _epoch(doc.get("created"))
    if created is not None:
        written = min(written, created + 1)
    return (root if isinstance(root, str) and root else None), written


def _last_batch(out: Path) -> float | None:
    """When the last batch in ``out/results.sqlite`` began (None: no store, no batch, or a
    store that cannot be read)."""
    from cytokit.engine.store import RunStore

    path = out / "results.sqlite"
    if not path.is_file():
        return None
    try:
        # a writing connection, only read, leaves the folder as it was (a read-only one
        # leaves the store's -wal and -shm files behind); a read-only folder gets neither
        try:
            store = RunStore(path)
        except CytokitError:
            store = RunStore(path, readonly=True)
        with store:
            runs = store.runs()
    except (CytokitError, OSError, ValueError, sqlite3.Error):
        return None
    return float(runs["started"].iloc[-1]) if len(runs) else None


def _study_of_run(out: Path, began: float) -> str | None:
    """The study folder of the logged run into `out` whose batch began at `began` (None:
    no line of ``runlog.jsonl`` covers it, as for a run killed with no time to log)."""
    from cytokit.engine.runlog import RunlogError, read_runlog

    try:
        records = read_runlog(out)
    except (RunlogError, OSError):
        return None
    for record in reversed(records):
        start, end = _epoch(record.get("started")), _epoch(record.get("finished"))
        # the log's times are cut to milliseconds
        if start is None or end is None or not start - 0.001 <= began <= end + 0.001:
            continue
        for item in record.get("inputs") or []:
            if isinstance(item, dict) and item.get("role") == "study" and item.get("path"):
                toml = Path(str(item["path"]))
                return os.fspath((toml if toml.is_absolute() else out / toml).parent)
        return None
    return None


def rerun_advice(out: str | Path) -> str:
    """The command that rewrites the results folder `out`, naming the study to analyse.

    ``study.json`` names the study of the last analysis that finished there. A run
    that stopped after gating (its batch in ``results.sqlite`` began after
    ``study.json`` was written) may have been of another study, and it left the
    folder half-written: that run's study is named from its line in
    ``runlog.jsonl`` (a run stopped by Ctrl-C, SIGTERM or an error logs one); a
    run that left none (killed outright) is not known, and no study is named.
    """
    out = Path(out)
    root, written = _study_json(out)
    began = _last_batch(out)
    if began is not None and written is not None and began > written:
        root = _study_of_run(out, began)
        if root is None:
            return (
                f"a later run gated into it and stopped with no record of its study: run "
                f"`cytokit analyze STUDY --out {out}` again with that run's study folder to "
                "rewrite it (files already gated come from its results.sqlite)"
            )
    return (
        f"run `cytokit analyze {root or 'STUDY'} --out {out}` again to rewrite it (files "
        "already gated come from its results.sqlite)"
    )


def _rows(name: str, data: bytes) -> int | None:
    """Records after the header of CSV `data`, or rows of a Parquet file (None when it is
    not readable as such)."""
    if name.endswith(".parquet"):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
        except (ImportError, ValueError, OSError):  # pyarrow's ArrowInvalid is a ValueError
            return None
    try:
        return max(0, sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8")))) - 1)
    except (UnicodeDecodeError, csv.Error):
        return None


def _difference(entry: Mapping, data: bytes) -> str:
    name = entry["name"]
    if "rows" not in entry:
        what, recorded = f"{len(data):,} bytes", f"{entry['bytes']:,} bytes"
    else:
        rows = _rows(name, data)
        what = f"{'unreadable' if rows is None else rows} row(s) in {len(data):,} bytes"
        recorded = f"{entry['rows']} row(s) in {entry['bytes']:,} bytes"
    if what == recorded:
        return f"{name} differs from what {INDEX_NAME} records (same size, other content)"
    return f"{name} has {what} where {INDEX_NAME} records {recorded}"


def check_index(out: str | Path) -> dict[str, bytes]:
    """Check every file `out`'s ``tables.json`` lists against it; return their bytes.

    Parameters
    ----------
    out : path
        A results folder.

    Returns
    -------
    dict of str to bytes
        Each listed file's content, as checked (read it from here, not again
        from disk).

    Raises
    ------
    CytokitError
        No index (a folder from an older cytokit, or one whose writing
        stopped half-way), an unreadable index, or files missing or differing
        from it; one line naming the first such file, what differs, and the fix.
    """
    out = Path(out)
    path = out / INDEX_NAME
    if not path.is_file():
        raise CytokitError(
            f"{out}: no {INDEX_NAME}, so its tables cannot be checked (written by an older "
            f"cytokit, or the run writing them stopped before the end); {rerun_advice(out)}"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = doc["files"]
        if doc.get("format") != FORMAT or not isinstance(entries, list):
            raise ValueError(f"format {doc.get('format')!r}, this cytokit reads {FORMAT}")
        for e in entries:
            name = PurePosixPath(e["name"])
            if name.is_absolute() or ".." in name.parts or not isinstance(e["sha256"], str):
                raise ValueError(f"bad entry {e!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CytokitError(
            f"{path}: not a readable table index ({exc}); {rerun_advice(out)}"
        ) from None
    contents: dict[str, bytes] = {}
    problems = []
    for entry in entries:
        name = entry["name"]
        try:
            data = (out / name).read_bytes()
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        except OSError as exc:
            problems.append(f"{name} cannot be read ({exc.strerror or exc})")
            continue
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(_difference(entry, data))
            continue
        contents[name] = data
    if problems:
        more = ""
        if len(problems) > 1:
            more = f" (and {len(problems) - 1} more file(s) differ)"
        raise CytokitError(
            f"{out}: {problems[0]}{more}: the folder changed after `cytokit analyze` wrote it; "
            f"{rerun_advice(out)}"
        )
    return contents
