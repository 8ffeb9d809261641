"""`RunStore`: an embedded SQLite store of per-file results, keyed by content and task.

A batch (`cytokit.engine.runner.run_batch`) writes one row per finished file into
the store as soon as it finishes, so a rerun skips what is done and a crash
loses nothing that finished. Results are keyed by

* the file's **content hash** (SHA-256 of its bytes, streamed; ``sha256sum``
  gives the same), so a file that is moved, copied or touched is still
  recognised; the hash itself is cached by path, size, mtime, ctime, inode
  and device (`cytokit.engine.hashing.FileInfo.describes`), so an unchanged file is
  not re-read while any write to it (even one that keeps its size and puts
  its mtime back) or its replacement makes it read again;
* the **task key**: a digest of everything that determines the task's output
  (strategy, options, cytokit version), so changing any of them recomputes.

Every row a result depends on carries a SHA-256 **checksum** of its fields
(`row_checksum`): each payload item (over file hash, task, name, kind and
bytes), the result (over its items' names and checksums, so a missing or
added item shows), each failure and each hash cache entry. Reads verify
them: `lookup` reports a damaged result or failure as ``"damaged"``
(`cytokit.engine.runner.run_batch` computes that file again and says so);
`payload`, `items` and `frame` raise a `CytokitError` naming the store, the
file and the item; a damaged hash cache entry is ignored. (SQLite's
integrity check does not see an edited value.)

Schema (``PRAGMA user_version`` = `SCHEMA_VERSION`, ``application_id`` marks
the file as a cytokit store)::

    meta     (key PRIMARY KEY, value)                     schema, creator version, created
    files    (path PRIMARY KEY, size, mtime_ns, ctime_ns, inode, device, hash, seen_ns,
              checksum)                                    the hash cache
    tasks    (key PRIMARY KEY, kind, description JSON, created)
    results  (hash, task, path, seconds, created, checksum) PRIMARY KEY (hash, task)
    items    (hash, task, name, kind, data BLOB, checksum) PRIMARY KEY (hash, task, name)
    failures (hash, task, path, stage, kind, error, reason, detail, created, checksum)
                                                           PRIMARY KEY (hash, task)
    runs     (id, task, started, finished, status, files, done, cached, failed,
              recomputed, scheduler, cytokit_version)

A store of schema version 1 (no checksums, so nothing in it can be
verified) is refused with a message: delete it (every file is gated again)
or write to another folder.

A result's payload is a mapping of names to items, each stored as one row of
``items`` (see `cytokit.engine.codec`): a pandas DataFrame (``kind = 'frame'``),
a numpy array (``'array'``) or a JSON value (``'value'``).

One process writes (the coordinator of a batch); the database runs in WAL
mode, so readers never block it and every write is one transaction: a result
and its items appear together or not at all.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from cytokit.engine.codec import decode_item, encode_payload, json_value
from cytokit.engine.hashing import FileInfo, file_hash, file_stamp, row_checksum
from cytokit.errors import CytokitError

__all__ = [
    "HASH_NAME",
    "SCHEMA_VERSION",
    "FileInfo",
    "RunStore",
    "decode_item",
    "encode_payload",
    "file_hash",
    "file_stamp",
    "row_checksum",
]

#: Version of the table layout; a store with another version is refused.
#: 2: checksums on every row a result depends on; ctime, inode and device in the hash cache.
SCHEMA_VERSION = 2
#: ``PRAGMA application_id`` of a cytokit store: "CKRS" (cytokit results store).
APPLICATION_ID = 0x434B5253
HASH_NAME = "sha256"
_CHUNK = 500  # bound parameters per IN (...) query (SQLite's limit is 32766 or 999)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    hash TEXT NOT NULL,
    seen_ns INTEGER NOT NULL,
    checksum TEXT NOT NULL
);
CREATE INDEX files_hash ON files (hash);
CREATE TABLE tasks (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE results (
    hash TEXT NOT NULL,
    task TEXT NOT NULL,
    path TEXT NOT NULL,
    seconds REAL,
    created REAL NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (hash, task)
) WITHOUT ROWID;
CREATE TABLE items (
    hash TEXT NOT NULL,
    task TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('frame', 'array', 'value')),
    data BLOB NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (hash, task, name)
) WITHOUT ROWID;
CREATE INDEX items_task_name ON items (task, name);
CREATE TABLE failures (
    hash TEXT NOT NULL,
    task TEXT NOT NULL,
    path TEXT NOT NULL,
    stage TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('error', 'exception')),
    error TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    created REAL NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (hash, task)
) WITHOUT ROWID;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    files INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    cached INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    recomputed INTEGER NOT NULL DEFAULT 0,
    scheduler TEXT NOT NULL,
    cytokit_version TEXT NOT NULL
);
"""


def _item_checksum(hash: str, task: str, name: str, kind: str, data: bytes) -> str:
    return row_checksum(hash, task, name, kind, data)


def _result_checksum(hash: str, task: str, path: str, items: Iterable[tuple[str, str, str]]):
    """Over the result's key, path and every (name, kind, item checksum), sorted by name."""
    fields: list[str] = [hash, task, path]
    for name, kind, checksum in sorted(items):
        fields += [name, kind, checksum]
    return row_checksum(*fields)


def _create_empty(path: Path) -> None:
    """Create `path` empty (an empty file is an empty SQLite database) unless it exists.

    SQLite would create it 0o644 less the umask; made here it is 0o666 less the
    umask, like every other output, and its WAL and shared-memory files follow
    its mode.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError:  # it exists, or SQLite will say what is wrong when it opens it
        pass


def _cannot_open(path: Path, exc: sqlite3.OperationalError) -> str:
    """Why SQLite could not open or write `path`, said as what to do about it.

    These errors say nothing about the file's content: a valid store in a
    read-only folder (or owned by another user) gives them too.
    """
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return (
            f"{path}: the results store is locked by another process ({text}); wait for the "
            "other cytokit run to finish, or use another output folder"
        )
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return (
            f"{path}: cannot write the results store ({text}): the folder {path.parent} or the "
            "file is read-only or belongs to another user. Make it writable, or give another "
            "output folder"
        )
    return f"{path}: cannot use the results store ({text}); check the folder and disk"


def _file_size_limit() -> int | None:
    """The largest file this process may write, in bytes (``ulimit -f``); None: no limit."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _write_refused(path: Path) -> OSError:
    """The OSError for SQLite's "disk I/O error" on a write to `path`.

    SQLite does not say which error the system gave. Past a file-size limit
    (``ulimit -f``: the write fails with EFBIG, Python ignoring SIGXFSZ) it is
    that limit, said with its size; else the disk (failing, or full where the
    file system says so this way). Either is the machine's refusal, not a bug:
    the CLI says it in one line with the fix, and the files finished before it
    stay in the store for the rerun.
    """
    limit = _file_size_limit()
    if limit is not None:
        return OSError(
            errno.EFBIG,
            f"SQLite could not write it (disk I/O error): this process may write files of at "
            f"most {limit:,} bytes",
            str(path),
        )
    return OSError(errno.EIO, "SQLite could not write it (disk I/O error)", str(path))


# -- the store --------------------------------------------------------------------------------------


class RunStore:
    """Per-file task results in one SQLite file.

    Parameters
    ----------
    path : path
        The database file; created (with its folder) when missing.
    readonly : bool
        Open an existing store for reading only.

    Raises
    ------
    CytokitError
        The file is not a SQLite database or not a cytokit store, or was
        written by an incompatible cytokit version, or it cannot be opened or
        written here (a read-only folder, another user's file, a lock): the
        message says which, and what to do.

    Notes
    -----
    Use one `RunStore` per process and thread; only the process that runs
    a batch writes. It is a context manager (closes on exit).
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False) -> None:
        from cytokit._version import __version__

        self.path = Path(path)
        self.readonly = readonly
        self._version = __version__
        if readonly and not self.path.is_file():
            raise CytokitError(f"{self.path}: results store not found")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_empty(self.path)
        # a URI, so that SQLite opens it read-only: as_uri escapes what a URI would read as
        # syntax ("r#1" lost its name at '#', "r%41" opened the store of a folder "rA")
        uri = f"{self.path.resolve().as_uri()}?mode=ro" if readonly else str(self.path)
        try:
            self._db = sqlite3.connect(uri, uri=readonly, isolation_level=None, timeout=30.0)
            self._open()
        except sqlite3.OperationalError as exc:
            # the file may be a fine store that cannot be opened or written here
            self.close()
            raise CytokitError(_cannot_open(self.path, exc)) from exc
        except sqlite3.DatabaseError as exc:
            self.close()
            raise CytokitError(
                f"{self.path}: not a cytokit results store ({exc}); use another output folder "
                "or delete the file"
            ) from exc

    def _open(self) -> None:
        db = self._db
        app = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        n_tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app == 0 and n_tables == 0 and not self.readonly:
            self._create()
        elif app != APPLICATION_ID:
            raise CytokitError(
                f"{self.path}: this SQLite file is not a cytokit results store; use another "
                "output folder or delete the file"
            )
        elif version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            writer = self._meta().get("cytokit_version", "unknown version")
            why = " (it keeps no checksums, so its results cannot be verified)"
            raise CytokitError(
                f"{self.path}: results store of schema version {version}, written by "
                f"{'a newer' if newer else 'an older'} cytokit ({writer})"
                f"{why if version == 1 else ''}; "
                f"this cytokit ({self._version}) reads version {SCHEMA_VERSION}. "
                + (
                    "Upgrade cytokit, or write to another output folder."
                    if newer
                    else "Delete the file (every file is gated again on the next run) or write "
                    "to another output folder."
                )
            )
        if not self.readonly:
            db.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on disk before the next file is reported done
            db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")

    def _create(self) -> None:
        with self._transaction() as db:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("cytokit_version", self._version),
                    ("created", repr(time.time())),
                    ("hash", HASH_NAME),
                    ("checksum", HASH_NAME),
                ],
            )
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _meta(self) -> dict[str, str]:
        try:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            return {}

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise CytokitError(f"{self.path}: the results store was opened read-only")
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite rolls back itself on some errors (a full disk)
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):  # "database or disk is full": the machine's, not a bug
                raise OSError(errno.ENOSPC, "the disk is full", str(self.path)) from exc
            if "disk i/o error" in str(exc).lower():  # a write the system refused, as above
                raise _write_refused(self.path) from exc
            raise

    # -- life cycle ------------------------------------------------------------------------------
    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunStore {str(self.path)!r}>"

    @property
    def meta(self) -> dict[str, str]:
        """Schema version, the cytokit version that created the store, creation time."""
        return self._meta()

    # -- the hash cache --------------------------------------------------------------------------
    def cached_hash(self, path: str, st: os.stat_result) -> str | None:
        """The content hash recorded for `path` if the file is as it was when hashed.

        Parameters
        ----------
        path : str
            The absolute path, as recorded.
        st : os.stat_result
            The file's stat now.

        Returns
        -------
        str or None
            None when nothing is recorded, when the entry fails its checksum,
            or when it does not describe `st` (`FileInfo.describes`).
        """
        row = self._db.execute(
            "SELECT size, mtime_ns, ctime_ns, inode, device, hash, seen_ns, checksum FROM files "
            "WHERE path = ?",
            (path,),
        ).fetchone()
        if row is None:
            return None
        info = FileInfo(path, row[0], row[1], row[5], row[2], row[3], row[4], row[6])
        return info.hash if info.checksum() == row[7] and info.describes(st) else None

    def put_file(self, info: FileInfo) -> None:
        """Record `info.path`'s hash (replacing what was known about that path)."""
        with self._transaction() as db:
            self._upsert_file(db, info)

    @staticmethod
    def _upsert_file(db: sqlite3.Connection, info: FileInfo) -> None:
        db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.path, info.size, info.mtime_ns, info.ctime_ns, info.inode, info.device,
                info.hash, info.seen_ns, info.checksum(),
            ),
        )  # fmt: skip

    # -- tasks and runs --------------------------------------------------------------------------
    def put_task(self, key: str, kind: str, description: Mapping[str, object]) -> None:
        """Describe a task key (kept once; for people reading the store)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO tasks VALUES (?, ?, ?, ?)",
                (key, kind, json.dumps(json_value("description", description)), time.time()),
            )

    def task_description(self, key: str) -> dict | None:
        row = self._db.execute("SELECT description FROM tasks WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def begin_run(self, task: str, n_files: int, scheduler: str) -> int:
        """Record the start of a batch run; returns its id."""
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (task, started, status, files, scheduler, cytokit_version) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (task, time.time(), n_files, scheduler, self._version),
            )
            return int(cur.lastrowid)

    def end_run(
        self, run: int, status: str, *, done: int, cached: int, failed: int, recomputed: int = 0
    ) -> None:
        """Record how run `run` ended (``finished`` or ``interrupted``) and its tallies
        (`recomputed`: files whose stored result was damaged and computed again)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, done = ?, cached = ?, failed = ?, "
                "recomputed = ? WHERE id = ?",
                (time.time(), status, done, cached, failed, recomputed, run),
            )

    def runs(self) -> pd.DataFrame:
        """Every recorded run, oldest first (a killed run stays ``running`` with no end)."""
        return pd.read_sql_query("SELECT * FROM runs ORDER BY id", self._db)

    # -- results and failures --------------------------------------------------------------------
    def lookup(self, hash: str, task: str) -> tuple[str | None, str]:
        """What is stored for (`hash`, `task`), checksums verified: ``(status, problem)``.

        `status` is ``'done'``, ``'error'`` / ``'exception'`` (a stored failure's
        kind), ``'damaged'`` (rows that do not match their checksums; `problem`
        says which) or None (nothing stored).
        """
        rows, problem = self._result_rows(hash, task)
        if rows is not None:
            return ("damaged", problem) if problem else ("done", "")
        row = self._db.execute(
            "SELECT path, stage, kind, error, reason, detail, checksum FROM failures "
            "WHERE hash = ? AND task = ?",
            (hash, task),
        ).fetchone()
        if row is None:
            return None, ""
        if row_checksum(hash, task, *row[:6]) != row[6]:
            return "damaged", "the stored failure does not match its checksum"
        return row[2], ""

    def status(self, hash: str, task: str) -> str | None:
        """``'done'``, ``'error'`` / ``'exception'``, ``'damaged'`` or None (see `lookup`)."""
        return self.lookup(hash, task)[0]

    def _result_rows(self, hash: str, task: str) -> tuple[list | None, str]:
        """The item rows ``(name, kind, data)`` of a stored result (None when there is none)
        and what fails its checksum ("" when everything matches)."""
        head = self._db.execute(
            "SELECT path, checksum FROM results WHERE hash = ? AND task = ?", (hash, task)
        ).fetchone()
        if head is None:
            return None, ""
        path, checksum = head
        rows, listed, bad = [], [], []
        for name, kind, data, item_sum in self._db.execute(
            "SELECT name, kind, data, checksum FROM items WHERE hash = ? AND task = ?",
            (hash, task),
        ):
            data = bytes(data)
            if _item_checksum(hash, task, name, kind, data) != item_sum:
                bad.append(name)
            rows.append((name, kind, data))
            listed.append((name, kind, item_sum))
        if bad:
            return rows, f"item(s) {', '.join(map(repr, sorted(bad)))} do not match their checksum"
        if _result_checksum(hash, task, path, listed) != checksum:
            return rows, "its items or its row do not match the result's checksum"
        return rows, ""

    def _damaged(self, hash: str, task: str, problem: str) -> CytokitError:
        row = self._db.execute(
            "SELECT path FROM results WHERE hash = ? AND task = ?", (hash, task)
        ).fetchone()
        what = row[0] if row else f"content {hash[:12]}"
        return CytokitError(
            f"{self.path}: the stored result of {what} is damaged: {problem} (the store was "
            "changed after it was written); run the same command again, which computes "
            "damaged results again"
        )

    def put_result(
        self,
        info: FileInfo,
        task: str,
        items: Mapping[str, tuple[str, bytes]],
        *,
        seconds: float | None = None,
    ) -> None:
        """Store a finished file's encoded payload (see `encode_payload`) in one transaction.

        A stored failure of the same file and task is removed; the file's hash
        cache entry is updated in the same transaction. Every item and the
        result get their checksums.
        """
        rows = [
            (info.hash, task, n, k, sqlite3.Binary(b), _item_checksum(info.hash, task, n, k, b))
            for n, (k, b) in items.items()
        ]
        checksum = _result_checksum(info.hash, task, info.path, [(r[2], r[3], r[5]) for r in rows])
        with self._transaction() as db:
            self._upsert_file(db, info)
            db.execute("DELETE FROM items WHERE hash = ? AND task = ?", (info.hash, task))
            db.execute("DELETE FROM failures WHERE hash = ? AND task = ?", (info.hash, task))
            db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                (info.hash, task, info.path, seconds, time.time(), checksum),
            )
            db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", rows)

    def put_failure(
        self,
        info: FileInfo,
        task: str,
        *,
        stage: str,
        kind: str,
        error: str,
        reason: str,
        detail: str = "",
        items: Mapping[str, tuple[str, bytes]] | None = None,
    ) -> None:
        """Store why a file failed (`kind` ``'error'``: a cytokit error, final for that
        content and task; ``'exception'``: anything else, retried by the next run).

        `items`: what the task measured before it failed (encoded as for
        `put_result`), such as acquisition QC's result of a file QC failed;
        `items` finds them, and the file stays failed (no result row).
        """
        fields = (info.path, stage, kind, error, reason, detail)
        checksum = row_checksum(info.hash, task, *fields)
        rows = [
            (info.hash, task, n, k, sqlite3.Binary(b), _item_checksum(info.hash, task, n, k, b))
            for n, (k, b) in (items or {}).items()
        ]
        with self._transaction() as db:
            self._upsert_file(db, info)
            db.execute("DELETE FROM results WHERE hash = ? AND task = ?", (info.hash, task))
            db.execute("DELETE FROM items WHERE hash = ? AND task = ?", (info.hash, task))
            db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (info.hash, task, *fields, time.time(), checksum),
            )
            db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", rows)

    def payload(self, hash: str, task: str) -> dict[str, object] | None:
        """The decoded payload of one file, or None when not stored.

        Raises
        ------
        CytokitError
            The stored rows do not match their checksums (naming the file and the items).
        """
        rows, problem = self._result_rows(hash, task)
        if rows is None:
            return None
        if problem:
            raise self._damaged(hash, task, problem)
        return {
            name: decode_item(kind, data, where=self._item_name(hash, name))
            for name, kind, data in rows
        }

    def _item_name(self, hash: str, name: str) -> str:
        return f"{self.path}: item {name!r} of the file with hash {hash[:12]}"

    def items(self, task: str, name: str, hashes: Iterable[str]) -> dict[str, object]:
        """Item `name` of every stored result of `task` among `hashes`: ``{hash: object}``.

        Raises
        ------
        CytokitError
            An item does not match its checksum.
        """
        out: dict[str, object] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), _CHUNK):
            part = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            for h, kind, data, checksum in self._db.execute(
                f"SELECT hash, kind, data, checksum FROM items WHERE task = ? AND name = ? "
                f"AND hash IN ({marks})",
                (task, name, *part),
            ):
                data = bytes(data)
                if _item_checksum(h, task, name, kind, data) != checksum:
                    raise self._damaged(h, task, f"item {name!r} does not match its checksum")
                out[h] = decode_item(kind, data, where=self._item_name(h, name))
        return out

    def frame(
        self, task: str, name: str, files: Sequence[tuple[str, str]], *, label: str = "file"
    ) -> pd.DataFrame:
        """Frame item `name` of many files stacked, with a first column naming each file.

        Parameters
        ----------
        task : str
            The task key.
        name : str
            The payload item (a DataFrame in every payload).
        files : sequence of (label, hash)
            In the order wanted; files without a stored result are left out.
        label : str
            Name of the added first column.
        """
        found = self.items(task, name, (h for _, h in files))
        parts = []
        for file, h in files:
            frame = found.get(h)
            if frame is None:
                continue
            if not isinstance(frame, pd.DataFrame):
                raise CytokitError(f"payload item {name!r} of task {task[:12]} is not a table")
            parts.append(frame.assign(**{label: file})[[label, *frame.columns]])
        if not parts:
            return pd.DataFrame(columns=[label])
        return pd.concat(parts, ignore_index=True)

    def failures(self, task: str, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Stored failures of `task` (all, or those among `hashes`)."""
        cols = "hash, path, stage, kind, error, reason, detail, created"
        if hashes is None:
            return pd.read_sql_query(
                f"SELECT {cols} FROM failures WHERE task = ? ORDER BY created",
                self._db,
                params=(task,),
            )
        wanted = list(dict.fromkeys(hashes))
        parts = []
        for i in range(0, len(wanted), _CHUNK):
            part = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            parts.append(
                pd.read_sql_query(
                    f"SELECT {cols} FROM failures WHERE task = ? AND hash IN ({marks})",
                    self._db,
                    params=(task, *part),
                )
            )
        if not parts:
            return pd.DataFrame(columns=[c.strip() for c in cols.split(",")])
        return pd.concat(parts, ignore_index=True)

    def failure(self, hash: str, task: str) -> dict | None:
        """One stored failure as a dict (stage, kind, error, reason, detail), or None."""
        row = self._db.execute(
            "SELECT stage, kind, error, reason, detail FROM failures WHERE hash = ? AND task = ?",
            (hash, task),
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("stage", "kind", "error", "reason", "detail"), row, strict=True))

    def count(self, task: str | None = None) -> dict[str, int]:
        """How many results and failures are stored (for `task`, or in all)."""
        where, params = ("WHERE task = ?", (task,)) if task is not None else ("", ())
        done = self._db.execute(f"SELECT count(*) FROM results {where}", params).fetchone()[0]
        failed = self._db.execute(f"SELECT count(*) FROM failures {where}", params).fetchone()[0]
        return {"results": int(done), "failures": int(failed)}
