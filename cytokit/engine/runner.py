"""Run one task over many files in parallel, keeping every finished file in a `RunStore`.

A *task* is a picklable, top-level object with

* ``key``: a string digest of everything that determines its output (for
  gating: the strategy's digest, the options and the cytokit version);
* ``__call__(path) -> payload``: read the file and return a dict of
  DataFrames, numpy arrays and JSON values (see `cytokit.engine.store.encode_payload`);
* optionally ``kind`` (a short name such as ``"gate"``), ``describe()``
  (a JSON-able dict kept in the store beside the key) and ``listed`` (absolute
  path -> where a list names the file, such as its manifest line: a file that
  is not there fails saying so).

`run_batch` hashes each file's content (on the workers, in parallel; a file
whose stat is as it was when last hashed is not re-read, see
`cytokit.engine.hashing.FileInfo.describes`), skips files whose (content hash, task
key) the store already holds, runs the rest on local processes, threads, in
this process, or on a Dask cluster, and writes each result into the store
the moment it arrives. Workers only read files and return small encoded
payloads; only the coordinating process writes. A file written while the
batch runs (its size, mtime, ctime or inode moved) fails as ``FileChanged``
and is retried by the next run.

A stored result whose rows do not match their checksums (the store was
edited or damaged on disk) counts as absent: the file is run again, and its
`FileOutcome.note` and the progress status ``"recomputed"`` say so.

Failures do not stop the batch. A `CytokitError` (a malformed file, a
channel missing for a gate, ...) is stored as final for that content and
task: a rerun reports it again without retrying. Any other exception is
stored with its type and traceback and retried by the next run. A task marks
which step failed with `stage`.

Memory stays bounded: at most `IN_FLIGHT_PER_WORKER` files per worker are
submitted at a time, each worker holds one file while it runs, and payloads
are small.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from cytokit._paths import special_kind
from cytokit.engine._workers import (
    CHANGED,
    SCHEDULERS,
    DaskBackend,
    PoolBackend,
    Reply,
    WorkerLost,
    default_workers,
    hash_job,
    known_file_hash,
    make_backend,
    require_distributed,
    run_job,
    stage,
)
from cytokit.engine.hashing import file_hash, file_stamp
from cytokit.engine.store import FileInfo, RunStore
from cytokit.errors import CytokitError, not_found

__all__ = [
    "IN_FLIGHT_PER_WORKER",
    "SCHEDULERS",
    "BatchReport",
    "FileOutcome",
    "Task",
    "default_workers",
    "hash_files",
    "known_file_hash",
    "require_distributed",
    "run_batch",
    "stage",
]

#: Files submitted per worker at a time: one running, one ready to start.
IN_FLIGHT_PER_WORKER = 2
_MAX_BROKEN = 3  # the pool dying this often in a row with no progress ends the batch


@runtime_checkable
class Task(Protocol):
    """What `run_batch` runs on each file (see the module docstring)."""

    key: str

    def __call__(self, path: Path) -> Mapping[str, object]: ...


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file of a batch.

    Attributes
    ----------
    path : str
        As given to `run_batch`.
    status : str
        ``"done"`` or ``"failed"``.
    cached : bool
        Taken from the store without running the task.
    hash : str or None
        Content hash (None when the file could not be read at all).
    stage, kind, error, reason : str
        For failures: the step (``"open"``, ``"read"``, ``"gate"``, ``"worker"``,
        ``"task"``…), ``"error"`` (a cytokit error, final) or ``"exception"``
        (retried by the next run), the exception type and a one-line reason.
    seconds : float
        Time the task took on its worker (0 when cached).
    note : str
        Why the file was run although the store held it: its stored result
        was damaged (failed its checksum); empty otherwise.
    """

    path: str
    status: str
    cached: bool = False
    hash: str | None = None
    stage: str = ""
    kind: str = ""
    error: str = ""
    reason: str = ""
    seconds: float = 0.0
    note: str = ""


@dataclass
class BatchReport:
    """The outcome of `run_batch`: one `FileOutcome` per file, in input order."""

    task: str
    files: list[FileOutcome]
    elapsed: float
    scheduler: str
    workers: int
    run: int

    @property
    def done(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "done"]

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def recomputed(self) -> list[FileOutcome]:
        """Files whose stored result was damaged and were run again (`FileOutcome.note`)."""
        return [f for f in self.files if f.note]

    @property
    def n_cached(self) -> int:
        """Finished files whose result was taken from the store."""
        return sum(f.cached for f in self.done)

    def frame(
        self,
        store: RunStore,
        name: str,
        *,
        label: Callable[[str], str] = str,
        column: str = "file",
    ) -> pd.DataFrame:
        """Payload item `name` of every finished file stacked, in input order.

        The first column (`column`) is ``label(path)`` of each file.
        """
        return store.frame(
            self.task, name, [(label(f.path), f.hash) for f in self.done], label=column
        )

    def failures_frame(self, *, label: Callable[[str], str] = str) -> pd.DataFrame:
        """``file, stage, kind, error, reason`` of every failed file, in input order."""
        rows = [
            {
                "file": label(f.path),
                "stage": f.stage,
                "kind": f.kind,
                "error": f.error,
                "reason": f.reason,
            }
            for f in self.failed
        ]
        return pd.DataFrame(rows, columns=["file", "stage", "kind", "error", "reason"])

    def __repr__(self) -> str:
        return (
            f"<BatchReport {len(self.files)} files: {len(self.done)} done "
            f"({self.n_cached} from the store), {len(self.failed)} failed, {self.elapsed:.1f} s>"
        )


# -- the coordinator ----------------------------------------------------------------------------


@dataclass
class _Job:
    path: str  # as given
    abspath: str
    stat: os.stat_result  # at the start of the batch: what its hash is recorded against
    seen_ns: int  # when that stat was taken
    info: FileInfo | None = None  # None: hash it first
    isolate: bool = False  # a worker died with it in flight: run it alone
    note: str = ""  # why a file the store held is run again


@dataclass
class _State:
    task: object
    store: RunStore
    retry: bool
    total: int
    progress: Callable[[int, int, str, str], None] | None
    outcomes: dict[str, FileOutcome] = field(default_factory=dict)

    def finish(self, outcome: FileOutcome) -> None:
        self.outcomes[outcome.path] = outcome
        if self.progress is not None:
            status = outcome.status
            if status == "done" and outcome.cached:
                status = "cached"
            elif status == "done" and outcome.note:
                status = "recomputed"
            self.progress(len(self.outcomes), self.total, outcome.path, status)

    def decide(self, job: _Job) -> bool:
        """Finish `job` from the store if it can be; True when it still has to run."""
        info = job.info
        status, problem = self.store.lookup(info.hash, self.task.key)
        if status == "done":
            self.finish(FileOutcome(job.path, "done", True, info.hash))
            return False
        if status == "damaged":
            job.note = f"its stored result was damaged ({problem}); computed again"
            return True
        if status == "error" and not self.retry:
            f = self.store.failure(info.hash, self.task.key) or {}
            self.finish(
                FileOutcome(
                    job.path,
                    "failed",
                    True,
                    info.hash,
                    f.get("stage", ""),
                    f.get("kind", ""),
                    f.get("error", ""),
                    f.get("reason", ""),
                )
            )
            return False
        return True

    def reply(self, job: _Job, reply: Reply) -> bool:
        """Record a worker's reply; True when the job must now run the task."""
        if reply.failure is not None:
            where, kind, error, reason, detail = reply.failure
            if reply.hash is not None:  # the task itself failed on known content
                self.store.put_failure(
                    job.info,
                    self.task.key,
                    stage=where,
                    kind=kind,
                    error=error,
                    reason=reason,
                    detail=detail,
                    items=reply.items,
                )
            self.finish(
                FileOutcome(
                    job.path, "failed", False, reply.hash, where, kind, error, reason,
                    reply.seconds, job.note,
                )
            )  # fmt: skip
            return False
        if job.info is None:  # a hash job
            if reply.stamp != file_stamp(job.stat):  # written since the batch started
                self.finish(FileOutcome(job.path, "failed", False, None, *CHANGED[:4]))
                return False
            job.info = FileInfo.from_stat(job.abspath, job.stat, reply.hash, job.seen_ns)
            self.store.put_file(job.info)
            return self.decide(job)
        info = job.info
        self.store.put_result(info, self.task.key, reply.items, seconds=reply.seconds)
        self.finish(
            FileOutcome(job.path, "done", False, info.hash, seconds=reply.seconds, note=job.note)
        )
        return False

    def lost(self, job: _Job, message: str) -> None:
        reason = (
            "the worker process died while processing this file (killed, or out of memory?)"
            + (f": {message}" if message else "")
        )
        if job.info is not None:
            self.store.put_failure(
                job.info,
                self.task.key,
                stage="worker",
                kind="exception",
                error="WorkerLost",
                reason=reason,
            )
        h = None if job.info is None else job.info.hash
        self.finish(
            FileOutcome(
                job.path, "failed", False, h, "worker", "exception", "WorkerLost", reason,
                note=job.note,
            )
        )  # fmt: skip


def hash_files(
    files: Iterable[str | os.PathLike], store: RunStore, *, workers: int | None = None
) -> dict[str, FileInfo]:
    """The content hash of every file, from `store`'s hash cache where it still holds.

    Files the cache does not vouch for are read in `workers` threads (hashing
    and reading release the GIL) and recorded in the cache, so a later
    `run_batch` of the same files reads none of them again just to hash it.

    Parameters
    ----------
    files : iterable of path
    store : RunStore
    workers : int, optional
        Threads (default: the cores available).

    Returns
    -------
    dict of str to FileInfo
        By absolute path (``os.path.abspath``). A file that cannot be read,
        or that was written while it was hashed, is left out (`run_batch`
        reports it).
    """
    todo: dict[str, tuple[os.stat_result, int]] = {}
    out: dict[str, FileInfo] = {}
    for f in files:
        path = os.path.abspath(os.fspath(f))
        if path in out or path in todo:
            continue
        seen = time.time_ns()
        try:
            st = os.stat(path)
        except OSError:
            continue
        digest = store.cached_hash(path, st)
        if digest is None:
            todo[path] = (st, seen)
        else:
            out[path] = FileInfo.from_stat(path, st, digest, seen)

    def one(path: str) -> FileInfo | None:
        st, seen = todo[path]
        try:
            digest = file_hash(path)
            if file_stamp(os.stat(path)) != file_stamp(st):
                return None
        except OSError:
            return None
        return FileInfo.from_stat(path, st, digest, seen)

    if todo:
        n = max(1, min(workers or default_workers(), len(todo)))
        with ThreadPoolExecutor(n, thread_name_prefix="cytokit-hash") as pool:
            for info in pool.map(one, list(todo)):
                if info is not None:
                    store.put_file(info)
                    out[info.path] = info
    return out


def run_batch(
    files: Iterable[str | os.PathLike],
    task: Task,
    store: RunStore,
    *,
    workers: int | None = None,
    scheduler=None,
    progress: Callable[[int, int, str, str], None] | None = None,
    retry_failures: bool = False,
) -> BatchReport:
    """Run `task` on every file, in parallel, storing each result as it arrives.

    Parameters
    ----------
    files : iterable of path
        Files to process; a path given twice is processed once.
    task : Task
        A picklable object with ``key`` and ``__call__(path) -> payload``.
    store : RunStore
        Where results go; files whose (content hash, ``task.key``) it holds
        are not run again.
    workers : int, optional
        Local processes or threads (default: the cores available). With one
        worker and no `scheduler`, files run in this process.
    scheduler : str or distributed.Client, optional
        ``"processes"`` (default when ``workers > 1``; ``"local"`` is the
        same), ``"threads"`` (tasks calling Numba's parallel kernels need a
        thread-safe threading layer: omp or tbb, not workqueue), ``"serial"``
        (this process, one file at a time),
        a Dask scheduler address ``"tcp://HOST:PORT"``, or a
        ``distributed.Client``. Dask workers must read the same files (a shared
        file system) at the same paths: a file whose size, mtime, ctime or
        inode differs there is reported as changed.
    progress : callable, optional
        ``progress(finished, total, path, status)`` after each file, with
        status ``"done"``, ``"cached"``, ``"recomputed"`` (done again because
        its stored result was damaged) or ``"failed"``.
    retry_failures : bool
        Run files again whose stored failure is a cytokit error (by default
        such failures are final for unchanged content and task).

    Returns
    -------
    BatchReport

    Raises
    ------
    KeyboardInterrupt
        After stopping the workers; everything finished is in the store.
    CytokitError
        The Dask cluster was lost, or worker processes keep dying at start-up.
    ImportError
        A Dask scheduler was asked for without dask/distributed installed.
    """
    t0 = time.perf_counter()
    key = getattr(task, "key", None)
    if not isinstance(key, str) or not key or not callable(task):
        raise TypeError(
            f"{type(task).__name__} is not a batch task: it needs a non-empty string `key` and "
            "__call__(path) -> dict"
        )
    paths: dict[str, str] = {}
    for f in files:
        paths.setdefault(os.path.abspath(os.fspath(f)), os.fspath(f))
    state = _State(task, store, retry_failures, len(paths), progress)
    describe = getattr(task, "describe", None)
    store.put_task(key, getattr(task, "kind", type(task).__name__), describe() if describe else {})

    queue: deque[_Job] = deque()
    for abspath, given in paths.items():
        seen = time.time_ns()
        try:
            st = os.stat(abspath)
        except OSError as exc:
            why = (
                f"cannot open the file: {exc.strerror or exc}; check the path (or copy the "
                "file in) and run again"
            )
            listed = getattr(task, "listed", None) or {}
            if isinstance(exc, FileNotFoundError) and abspath in listed:
                why = not_found(listed[abspath], abspath)
            state.finish(
                FileOutcome(given, "failed", False, None, "open", "exception", type(exc).__name__,
                            why)
            )  # fmt: skip
            continue
        kind = special_kind(st.st_mode)
        if kind is not None:  # hashing a FIFO would wait for a writer forever
            state.finish(
                FileOutcome(given, "failed", False, None, "open", "error", "NotRegularFileError",
                            f"it is {kind}, not a regular file; give the file itself")
            )  # fmt: skip
            continue
        job = _Job(given, abspath, st, seen)
        digest = store.cached_hash(abspath, st)
        if digest is not None:
            job.info = FileInfo.from_stat(abspath, st, digest, seen)
            if not state.decide(job):
                continue
        queue.append(job)

    backend = make_backend(scheduler, workers, task, len(queue)) if queue else None
    name = "none" if backend is None else backend.name
    n_workers = 0 if backend is None else backend.slots
    run = store.begin_run(key, len(paths), name if backend is None else _where(backend))
    status = "failed"
    try:
        if backend is not None:
            _drive(backend, queue, state)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        if backend is not None:
            backend.close(cancel=status != "finished")
        outs = state.outcomes.values()
        store.end_run(
            run,
            status,
            done=sum(o.status == "done" and not o.cached for o in outs),
            cached=sum(o.cached for o in outs),
            failed=sum(o.status == "failed" for o in outs),
            recomputed=sum(bool(o.note) for o in outs),
        )
    ordered = [state.outcomes[p] for p in paths.values() if p in state.outcomes]
    return BatchReport(key, ordered, time.perf_counter() - t0, name, n_workers, run)


def _where(backend) -> str:
    if isinstance(backend, DaskBackend):
        return f"dask {backend.address}"
    return f"{backend.name} x{backend.slots}"


def _drive(backend, queue: deque[_Job], state: _State) -> None:
    """Keep at most ``slots * IN_FLIGHT_PER_WORKER`` jobs in flight until the queue is empty."""
    window = backend.slots * IN_FLIGHT_PER_WORKER
    inflight: dict[object, _Job] = {}
    try:
        _loop(backend, queue, state, inflight, window)
    except BaseException:
        backend.cancel(list(inflight))
        raise


def _loop(backend, queue: deque[_Job], state: _State, inflight: dict, window: int) -> None:
    broken = 0
    while queue or inflight:
        while queue and len(inflight) < window:
            if any(j.isolate for j in inflight.values()):
                break
            job = queue[0]
            if job.isolate and inflight:
                break
            queue.popleft()
            if job.info is None:
                handle = backend.submit(hash_job, job.abspath)
            else:
                handle = backend.submit(
                    run_job,
                    job.abspath,
                    backend.task,
                    job.info.stamp,
                    job.info.hash,
                    backend.numba_threads,
                )
            inflight[handle] = job
        lost: list[tuple[_Job, str]] = []
        done = backend.wait(list(inflight))
        while done:
            for handle in done:
                job = inflight.pop(handle)
                try:
                    reply = backend.result(handle)
                except WorkerLost as exc:
                    lost.append((job, str(exc)))
                    continue
                broken = 0
                if state.reply(job, reply):
                    job.isolate = False
                    queue.appendleft(job)  # its hash is known: run it next
            # a dead process pool fails every job in flight: collect them all, then restart it
            drain = lost and inflight and isinstance(backend, PoolBackend)
            done = backend.wait(list(inflight), all_=True) if drain else []
        if not lost:
            continue
        broken += 1
        if broken > _MAX_BROKEN:
            raise CytokitError(
                "worker processes keep dying before finishing any file; run with --workers 1 "
                "(or scheduler='serial') to see the error. From a script: the workers import "
                'it again, so call cytokit.analyze under `if __name__ == "__main__":`'
            )
        backend.restart()
        for job, message in reversed(lost):
            if job.isolate or isinstance(backend, DaskBackend):
                state.lost(job, message)
            else:
                job.isolate = True  # run alone next, so a crash names the culprit
                queue.appendleft(job)
