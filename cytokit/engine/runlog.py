"""``runlog.jsonl``: one line per command run into a results folder, so a table can be traced.

Every run of ``cytokit analyze``, ``gate``, ``report`` and ``demo`` that
finishes (exit 0 or 3), or that stops on an error or an interrupt after it
wrote into its folder (exit 1 or 130), appends one JSON object, on one line,
to ``runlog.jsonl`` in the folder it wrote into (`RUNLOG_NAME`). The line says who
ran what, when, with which software, on which inputs, and what it wrote:

``runlog``
    Format version of the line (`FORMAT`).
``run_id``
    128 random bits (hex), to name a run outside its folder.
``command``, ``argv``, ``cwd``, ``exit_code``
    The command (``analyze``...), the exact argument list (``argv[0]`` is
    ``cytokit``), the working directory it ran in and its exit code.
``user``, ``host``
    The login name (or the numeric user id when the system has no name for
    it) and the host name.
``started``, ``finished``
    UTC, ISO 8601 with milliseconds and a ``Z``.
``versions``
    cytokit, python, numpy, numba, pandas, matplotlib (installed
    distributions; ``null`` when absent) and the platform string.
``settings``
    ``sha256`` of the resolved settings: the canonical JSON (sorted keys) of
    the command's options and, for ``analyze`` and ``gate``, the description
    of the task the results store keys its results by (strategy digest,
    panel, transforms, compensation, seeds, QC settings, cytokit version);
    ``task`` that store key and ``strategy_digest`` the strategy's content
    digest (`GatingStrategy.digest`), both ``null`` for ``report``.
``inputs``
    One object per input file: ``role`` (``fcs``, ``manifest``, ``study``
    (study.toml), ``strategy``, ``spillover``, ``treatments``, ``outcomes``,
    ``results`` for the tables ``report`` reads), ``path`` (relative to the
    folder when inside it, else absolute), ``size`` (bytes) and ``sha256``;
    ``size`` and ``sha256`` are ``null`` for a file missing when the run
    ended, or not a regular file (a FIFO is never read).
``outputs``
    One object per file the run wrote: ``path`` (relative to the folder, with
    ``/``), ``size`` and ``sha256``. A file counts as written when it is new
    or its size, mtime, ctime or inode changed during the run (every output
    is replaced atomically, so a rewrite with the same bytes counts too).
``removed``
    Files of the folder the run deleted.
``log_seconds``
    What the line cost the run: listing the folder before and after, reading
    the store, hashing inputs and outputs.

Left out of ``outputs`` (and of `cytokit.engine.verify`'s checks): the log
itself, SQLite's ``-wal``/``-shm``/``-journal`` files beside the store, and
the hidden temporaries of atomic writes.

The line is appended with a single ``write`` on a file opened with
``O_APPEND``, under an exclusive ``flock`` where the system has one: two runs
ending at the same moment each add a whole line, never interleaved bytes. A
line cut short by a crash is left as it is (`read_runlog` names it), and the
next line starts on a line of its own.

Hashing reuses what the run already did: an FCS file the results store hashed
(and that has not changed since, `cytokit.engine.hashing.FileInfo.describes`)
is not read again; every other file is read once.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import secrets
import socket
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cytokit._paths import special_kind
from cytokit.engine.hashing import file_hash, file_stamp
from cytokit.errors import CytokitError

__all__ = [
    "FORMAT",
    "RUNLOG_NAME",
    "RunRecorder",
    "RunlogError",
    "append_record",
    "check_appendable",
    "read_runlog",
    "snapshot",
    "study_inputs",
    "versions",
]

RUNLOG_NAME = "runlog.jsonl"
FORMAT = 1
#: Distributions whose versions each line records (beside cytokit and python).
DEPENDENCIES = ("numpy", "numba", "pandas", "matplotlib")
_SIDECARS = ("-wal", "-shm", "-journal")


class RunlogError(CytokitError):
    """A folder has no ``runlog.jsonl``, or a line of it is not a run record."""


def utc_now() -> str:
    """The time now in UTC, ISO 8601 with milliseconds and ``Z``."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name for this uid (a container)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def versions() -> dict[str, str | None]:
    """cytokit, python, `DEPENDENCIES` and the platform, without importing any of them."""
    from importlib import metadata

    from cytokit._version import __version__

    out: dict[str, str | None] = {"cytokit": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["platform"] = platform.platform()
    return out


def _ignored(name: str) -> bool:
    """Files of a results folder that are no run's output: the log, SQLite's sidecars,
    the hidden temporaries of atomic writes."""
    return (
        name == RUNLOG_NAME
        or name.endswith(_SIDECARS)
        or (name.startswith(".") and name.endswith(".tmp"))
    )


def snapshot(folder: str | os.PathLike) -> dict[str, tuple[int, int, int, int]]:
    """``{path relative to folder (with /): (size, mtime_ns, ctime_ns, inode)}`` of every
    regular file under `folder` (links not followed), `_ignored` files left out."""
    folder = Path(folder)
    out: dict[str, tuple[int, int, int, int]] = {}
    if not folder.is_dir():
        return out
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        rel = Path(top).relative_to(folder)
        for name in sorted(files):
            if _ignored(name):
                continue
            path = os.path.join(top, name)
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:  # removed meanwhile
                continue
            if os.path.isfile(path) and not os.path.islink(path):
                out[(rel / name).as_posix()] = file_stamp(st)
    return out


def canonical_sha256(value: object) -> str:
    """SHA-256 of `value` as canonical JSON (sorted keys, no spaces, ASCII)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def study_inputs(study) -> list[tuple[str, Path]]:
    """``(role, path)`` of every file a loaded `cytokit.study.Study` is read from.

    study.toml, manifest.csv, the strategy (and each further tube's), a
    spillover CSV named by ``[compensation] source``, treatments.csv (or
    infusions.csv) and outcomes.csv when present, then every manifest row's
    FCS file.
    """
    root = Path(study.root)
    out: list[tuple[str, Path]] = [
        ("study", root / "study.toml"),
        ("manifest", root / "manifest.csv"),
    ]
    if study.strategy is not None:
        out.append(("strategy", Path(study.strategy)))
    for tube in (study.tubes or {}).values():
        name = getattr(tube, "strategy", None)
        if name:
            out.append(("strategy", root / name))
    source = study.settings.compensation
    if source and source.lower() not in ("file", "none"):
        out.append(("spillover", root / source))
    if study.clinical.source is not None:
        out.append(("treatments", Path(study.clinical.source)))
    if (root / "outcomes.csv").is_file():
        out.append(("outcomes", root / "outcomes.csv"))
    out.extend(("fcs", Path(r.file)) for r in study.rows)
    return out


@dataclass
class RunRecorder:
    """One run being recorded: start it before the command writes anything, `finish` it after.

    Parameters
    ----------
    folder : path
        The folder the command writes into; the line goes to its ``runlog.jsonl``.
    command : str
        ``analyze``, ``gate``, ``report``, ``demo``...
    argv : list of str
        The command line, ``argv[0]`` being ``cytokit``.
    options : dict
        The command's options that shape what it writes (hashed into ``settings``).
    store : path, optional
        The results store the command used: FCS files it hashed are not read
        again, and its last batch's task gives the resolved settings.
    exit_code : int
        Recorded by `finish`.

    The folder is listed (`snapshot`) when the recorder is made: what differs
    from that list when it finishes is what the run wrote.
    """

    folder: Path
    command: str
    argv: list[str]
    cwd: str = field(default_factory=os.getcwd)
    started: str = field(default_factory=utc_now)
    before: dict = field(default_factory=dict)
    inputs: list[tuple[str, Path]] = field(default_factory=list)
    options: dict = field(default_factory=dict)
    store: Path | None = None
    exit_code: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        t0 = time.perf_counter()
        self.folder = Path(self.folder)
        self.argv = [str(a) for a in self.argv]
        self.before = snapshot(self.folder)
        self.seconds = time.perf_counter() - t0

    def add_inputs(self, role: str, paths: Iterable[str | os.PathLike]) -> None:
        """Record `paths` as inputs of `role` (hashed when the run finishes)."""
        self.inputs.extend((role, Path(p)) for p in paths)

    def add_study(self, study) -> None:
        """Record every file of a loaded study as an input (`study_inputs`)."""
        self.inputs.extend(study_inputs(study))

    def add_gate_inputs(self, files, strategy=None, compensation=None, study=None) -> None:
        """The inputs of ``cytokit gate``: the FCS `files`, the `strategy` file (None: the
        study's), a spillover CSV given as `compensation`, and with a loaded `study` its
        files other than the manifest's FCS files."""
        if strategy is not None:
            self.add_inputs("strategy", [strategy])
        if study is not None:
            skip = {"fcs"} | ({"strategy"} if strategy is not None else set())
            self.inputs.extend((r, p) for r, p in study_inputs(study) if r not in skip)
        if compensation is not None and str(compensation).lower() not in ("file", "none"):
            self.add_inputs("spillover", [compensation])
        self.add_inputs("fcs", files)

    def finish(self, exit_code: int | None = None) -> dict:
        """Hash the inputs and what the run wrote, append the line; return the record.

        `exit_code` defaults to the attribute ``exit_code`` (0 unless set).
        """
        if exit_code is not None:
            self.exit_code = int(exit_code)
        finished = utc_now()
        t0 = time.perf_counter()
        buffer = bytearray(1 << 20)
        db = _open_store(self.store)
        try:
            task = _task(db) if db is not None else {}
            inputs = self._hash_inputs(db, buffer)
        finally:
            if db is not None:
                db.close()
        # after the store is closed: it leaves the folder as the run left it
        after = snapshot(self.folder)
        written = sorted(p for p, stamp in after.items() if self.before.get(p) != stamp)
        outputs = []
        for rel in written:
            path = self.folder / rel
            try:
                size, digest = path.stat().st_size, file_hash(path, buffer)
            except OSError:  # removed since the snapshot
                continue
            outputs.append({"path": rel, "size": size, "sha256": digest})
        options = dict(self.options)
        settings = {
            "sha256": canonical_sha256(
                {"command": self.command, "options": options, "task": task.get("description")}
            ),
            "task": task.get("key"),
            "strategy_digest": (task.get("description") or {}).get("strategy"),
        }
        record = {
            "runlog": FORMAT,
            "run_id": secrets.token_hex(16),
            "command": self.command,
            "argv": self.argv,
            "cwd": self.cwd,
            "exit_code": self.exit_code,
            "user": _user(),
            "host": socket.gethostname(),
            "started": self.started,
            "finished": finished,
            "versions": versions(),
            "settings": settings,
            "inputs": inputs,
            "outputs": outputs,
            "removed": sorted(p for p in self.before if p not in after),
            "log_seconds": round(self.seconds + time.perf_counter() - t0, 3),
        }
        append_record(self.folder, record)
        return record

    def _hash_inputs(self, db, buffer: bytearray) -> list[dict]:
        """Each input once (by absolute path): the store's cached hash when it still holds."""
        inputs, seen = [], set()
        for role, path in self.inputs:
            where = os.path.abspath(path)
            if where in seen:
                continue
            seen.add(where)
            size = digest = None
            try:
                st = os.stat(where)
                if stat.S_ISREG(st.st_mode):  # reading a FIFO would wait for a writer forever
                    digest = db.cached_hash(where, st) if db is not None else None
                    digest = digest or file_hash(where, buffer)
                    size = st.st_size
            except OSError:  # missing or unreadable: recorded without a hash
                size = digest = None
            inputs.append(
                {"role": role, "path": self.relative(where), "size": size, "sha256": digest}
            )
        return inputs

    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the folder (with ``/``) when inside it, else absolute."""
        path = Path(os.path.abspath(path))
        folder = Path(os.path.abspath(self.folder))
        return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _open_store(store: Path | None):
    """The results store, or None when there is none or it cannot be read (then no hash is
    reused and no task recorded).

    Opened for writing although only read: a read-only connection to a store in WAL mode
    leaves ``-wal`` and ``-shm`` files behind, a writing one removes them on closing and
    leaves the database file as it was (bytes, mtime, ctime).
    """
    if store is None or not Path(store).is_file():
        return None
    from cytokit.engine.store import RunStore

    try:
        return RunStore(store)
    except CytokitError:
        return None


def _task(db) -> dict:
    """``{"key", "description"}`` of the task of the store's last batch run."""
    runs = db.runs()
    key = str(runs["task"].iloc[-1]) if len(runs) else None
    return {"key": key, "description": db.task_description(key) if key else None}


def check_appendable(folder: str | os.PathLike) -> None:
    """Refuse a folder whose ``runlog.jsonl`` exists but cannot be appended to.

    Called before a run writes anything: the line is appended last, so a run
    log without write permission (or a folder, or a FIFO, in its place) would
    otherwise fail the run after every table was written, leaving outputs no
    logged run wrote (`cytokit verify` calls them edited). A missing file is
    fine (the run creates it, in a folder it writes into anyway). Nothing is
    written, and a FIFO is not waited on (opened without blocking).

    Raises
    ------
    CytokitError
        Naming the file, why and the fix.
    """
    path = Path(folder) / RUNLOG_NAME
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return  # no run log yet, or no folder: the output folder's own check says so
    except OSError as exc:
        kind = _in_the_way(path)
        if kind is not None:
            raise _in_place_of_runlog(path, kind) from None
        raise _not_appendable(path, exc.strerror or str(exc)) from None
    try:
        kind = special_kind(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    if kind is not None:
        raise _in_place_of_runlog(path, _named(kind))


def _in_the_way(path: Path) -> str | None:
    """What stands at `path` in place of a run log file ("a folder", "a FIFO (named
    pipe)"...), None for a file or nothing."""
    try:
        kind = special_kind(path.stat().st_mode)
    except OSError:
        return None
    return None if kind is None else _named(kind)


def _named(kind: str) -> str:
    return "a folder" if kind == "a directory" else kind


def _in_place_of_runlog(path: Path, kind: str) -> CytokitError:
    return CytokitError(
        f"{path}: is {kind}, not the run log file every run adds its line to, so nothing was "
        "started: move or remove it (a run then starts a new run log), or give another "
        "output folder"
    )


def _not_appendable(path: Path, why: str) -> CytokitError:
    return CytokitError(
        f"{path}: the run log cannot be appended to ({why}); every run adds its line there "
        "after writing its results, so nothing was started: make it a writable file (e.g. "
        f"chmod u+w {path}), or give another output folder"
    )


def append_record(folder: str | os.PathLike, record: Mapping) -> Path:
    """Append `record` as one JSON line to ``folder/runlog.jsonl``, whole or not at all.

    One ``os.write`` of the whole line on an ``O_APPEND`` descriptor, under an
    exclusive ``flock`` where available, then ``fsync``. When the file does not
    end with a line break (a line cut short by a crash), one is written first so
    the new line stands on its own.
    """
    path = Path(folder) / RUNLOG_NAME
    line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
    data = line.encode("ascii")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666)
    try:
        _lock(fd)
        size = os.fstat(fd).st_size
        if size and _last_byte(path, size) != b"\n":
            data = b"\n" + data
        while data:  # one write on a regular file; the loop only after a short write
            n = os.write(fd, data)
            data = data[n:]
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    return path


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: O_APPEND alone
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)


#: Keys every run record has (`read_runlog` checks them).
REQUIRED = ("runlog", "command", "argv", "cwd", "started", "finished", "inputs", "outputs")


def read_runlog(folder: str | os.PathLike) -> list[dict]:
    """Every run recorded in ``folder/runlog.jsonl``, oldest first.

    Raises
    ------
    RunlogError
        `folder` has no log, the log holds no run, or a line is not a run
        record (the message names the line number and the fix).
    """
    path = Path(folder) / RUNLOG_NAME
    kind = _in_the_way(path)
    if kind is not None:
        raise RunlogError(
            f"{path}: the run log is {kind}, not a file, so no run can be verified: move or "
            f"remove it (a cytokit command run into {folder} then starts a new run log)"
        )
    if not path.is_file():
        where = f"no {RUNLOG_NAME} in it" if Path(folder).is_dir() else "not a folder"
        raise RunlogError(
            f"{folder}: {where}; give a folder written by cytokit analyze, gate or report "
            "(each run appends a line to its runlog.jsonl)"
        )
    runs = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (UnicodeDecodeError, ValueError):
                record = None
            if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
                raise RunlogError(
                    f"{path}: line {number} is not a run record (cut short by a crash, or "
                    "edited); remove that line to verify the other runs"
                )
            if record["runlog"] != FORMAT:
                raise RunlogError(
                    f"{path}: line {number} has format {record['runlog']!r}; this cytokit reads "
                    f"format {FORMAT}: use the cytokit that wrote it"
                )
            record["line"] = number
            runs.append(record)
    if not runs:
        raise RunlogError(f"{path}: holds no run; run a cytokit command into {folder} first")
    return runs
