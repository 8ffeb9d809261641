"""Where batch jobs run: what a worker does with one file, and the schedulers that run it.

Used by `cytokit.engine.runner.run_batch`. A worker gets a path (and, to run the
task, the file's stamp and hash); it returns a small `Reply` with the encoded
payload or the failure as plain strings, never exception objects or event
data. Process workers get the task once, through their initializer, and
jobs refer to it by key; a Dask cluster gets it once by broadcast.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import errno
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cytokit._cores import default_workers
from cytokit._paths import special_kind
from cytokit.engine.codec import encode_payload
from cytokit.engine.hashing import file_hash, file_stamp
from cytokit.errors import CytokitError

__all__ = [
    "CHANGED",
    "SCHEDULERS",
    "DaskBackend",
    "PoolBackend",
    "Reply",
    "SerialBackend",
    "WorkerLost",
    "default_workers",
    "hash_job",
    "known_file_hash",
    "make_backend",
    "run_job",
    "stage",
]

#: Local schedulers; anything with ``://`` is a Dask scheduler address.
SCHEDULERS = ("processes", "threads", "serial")
_STAGE_ATTR = "_cytokit_stage"


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Label exceptions raised inside the block with the step `name` (``"read"``, ``"gate"``…).

    The innermost label wins; `cytokit.engine.runner.run_batch` reports it as the
    failure's stage.
    """
    try:
        yield
    except Exception as exc:
        if getattr(exc, _STAGE_ATTR, None) is None:
            try:
                setattr(exc, _STAGE_ATTR, name)
            except AttributeError:  # exceptions with __slots__
                pass
        raise


#: The SHA-256 of the file the task in this thread is running on (`run_job` sets it).
_FILE_HASH: contextvars.ContextVar[str | None] = contextvars.ContextVar("_FILE_HASH", default=None)


def known_file_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of `path`'s bytes: the one the batch hashed it under when a task of
    `run_job` asks (no second read), else read now. A task that draws at random per
    file seeds from it, so its stored result is the same whatever the file is named
    (the store keys results by content: a renamed file is not run again)."""
    known = _FILE_HASH.get()
    return known if known is not None else file_hash(path)


# -- what workers run ------------------------------------------------------------------------


@dataclass
class Reply:
    """A worker's answer: small and picklable (no exception objects, no file data)."""

    path: str
    stamp: tuple[int, int, int, int] | None = None  # `file_stamp` when hashed or run
    hash: str | None = None
    items: dict[str, tuple[str, bytes]] | None = None  # with a failure: what it measured before
    seconds: float = 0.0
    failure: tuple[str, str, str, str, str] | None = None  # stage, kind, error, reason, detail


@dataclass(frozen=True)
class _TaskRef:
    """Stands for the task installed in a worker process by its initializer."""

    key: str


_WORKER_TASKS: dict[str, object] = {}
_HASH_BUFFER: list[bytearray] = []


def _resolve(task):
    return _WORKER_TASKS[task.key] if isinstance(task, _TaskRef) else task


#: The failure of a file written while the batch ran (retried by the next run).
CHANGED = (
    "open",
    "exception",
    "FileChanged",
    "the file changed while the batch ran; rerun once it is complete",
    "",
)


def _changed(path: str) -> Reply:
    return Reply(path, failure=CHANGED)


def read_failure(exc: OSError) -> str:
    """Why a file could not be read, and what to do (it is tried again on the next run)."""
    fix = {
        errno.EACCES: "check its permissions (this user must be able to read it)",
        errno.EPERM: "check its permissions (this user must be able to read it)",
        errno.EIO: "the disk or network share failed to read it; check the drive and copy "
        "the file again",
    }.get(exc.errno or 0, "check the file and the drive it is on")
    return f"cannot read the file: {exc.strerror or exc}; {fix}, then run again"


def unexpected_reason(exc: BaseException) -> str:
    """A failure that is not a `CytokitError`, said in words rather than as a Python type.

    The type is kept in the failure's ``error`` field and the traceback in its
    ``detail``; the reason says what happened and what to do.
    """
    if isinstance(exc, MemoryError):
        return "ran out of memory on this file; run with fewer workers (--workers) or more memory"
    if isinstance(exc, OSError):
        return read_failure(exc)
    message = " ".join(str(exc).split()) or "no message"
    return (
        f"unexpected failure ({message}); cytokit does not know this input, or has a bug: "
        "please report it (the traceback is kept in the results store)"
    )


def hash_job(path: str) -> Reply:
    """Stat and hash one file (runs on a worker); the reply's stamp is the file's before and
    after hashing (a file written meanwhile is reported changed)."""
    if not _HASH_BUFFER:
        _HASH_BUFFER.append(bytearray(1 << 20))
    try:
        st = os.stat(path)
        kind = special_kind(st.st_mode)
        if kind is not None:  # as the coordinator checks, in case a worker sees another file
            reason = f"it is {kind}, not a regular file; give the file itself"
            return Reply(path, failure=("open", "error", "NotRegularFileError", reason, ""))
        before = file_stamp(st)
        digest = file_hash(path, _HASH_BUFFER[0])
        after = file_stamp(os.stat(path))
    except OSError as exc:
        reason = read_failure(exc)
        return Reply(path, failure=("open", "exception", type(exc).__name__, reason, ""))
    if before != after:
        return _changed(path)
    return Reply(path, before, digest)


def run_job(
    path: str, task, stamp: tuple[int, int, int, int], digest: str, numba_threads: int = 0
) -> Reply:
    """Run the task on one file whose hash is known (runs on a worker).

    `stamp` is the file's `file_stamp` when it was hashed: a file written
    since (size, mtime, ctime or inode changed) is reported changed, not run.
    ``numba_threads > 0`` caps the threads of Numba's parallel kernels called
    from this thread (Dask runs one job per worker thread; the cluster's
    workers already use the cores).
    """
    task = _resolve(task)
    if numba_threads > 0:
        import numba

        numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
    t0 = time.perf_counter()
    try:
        if file_stamp(os.stat(path)) != tuple(stamp):
            return _changed(path)
        token = _FILE_HASH.set(digest)
        try:
            payload = task(Path(path))
        finally:
            _FILE_HASH.reset(token)
        with stage("store"):
            items = encode_payload(payload)
    except Exception as exc:
        where = getattr(exc, _STAGE_ATTR, None) or "task"
        if isinstance(exc, CytokitError):
            kind, reason = "error", str(exc).strip() or type(exc).__name__
        else:
            kind, reason = "exception", unexpected_reason(exc)
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        reason = " ".join(reason.split())
        for prefix in (f"{path}: ", f"{path}, "):  # the failure is reported beside its path
            if reason.startswith(prefix) and len(reason) > len(prefix):
                reason = reason[len(prefix) :]
                break
        failure = (where, kind, type(exc).__name__, reason, detail)
        return Reply(
            path,
            stamp,
            digest,
            _partial(exc),
            seconds=time.perf_counter() - t0,
            failure=failure,
        )
    return Reply(path, stamp, digest, items, time.perf_counter() - t0)


def _partial(exc: Exception) -> dict[str, tuple[str, bytes]] | None:
    """The encoded ``payload`` a failing task attached to its exception: what it measured
    before it failed (acquisition QC's result of a file QC failed), stored with the failure.
    None without one, or when it cannot be encoded (the failure is stored all the same)."""
    payload = getattr(exc, "payload", None)
    if not isinstance(payload, Mapping):
        return None
    try:
        return encode_payload(payload)
    except Exception:
        return None


def _watch_parent(pid: int) -> None:
    """End this worker when the coordinator is gone (killed with SIGKILL, say)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as fh:  # a killed, unreaped parent is a zombie
                gone = fh.read().rsplit(")", 1)[1].split()[0] == "Z"
        except ProcessLookupError:
            gone = True
        except OSError:
            gone = False
        if gone:
            os._exit(70)


def _init_worker(task, numba_threads: int, parent: int) -> None:
    # Ctrl-C reaches the whole process group; the coordinator decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(numba_threads)
    _WORKER_TASKS[task.key] = task
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


# -- where jobs run -----------------------------------------------------------------------------


class WorkerLost(Exception):
    """A worker process died while a job was in flight."""


def _check_picklable(task) -> None:
    try:
        pickle.dumps(task)
    except Exception as exc:
        raise TypeError(
            f"the task {type(task).__name__} cannot be pickled ({exc}); tasks must be top-level "
            "objects holding plain data (or use scheduler='serial')"
        ) from exc


class _Done:
    """A finished job of the serial backend (hashable by identity)."""

    __slots__ = ("reply",)

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class SerialBackend:
    name = "serial"
    numba_threads = 0

    def __init__(self, task) -> None:
        self.slots = 1
        self.task = task

    def submit(self, fn, *args):
        return _Done(fn(*args))

    def wait(self, handles, *, all_: bool = False):
        return list(handles)

    def result(self, handle):
        return handle.reply

    def cancel(self, handles) -> None:
        pass

    def restart(self) -> None:  # pragma: no cover - nothing can break
        pass

    def close(self, cancel: bool = False) -> None:
        pass


def _main_is_importable() -> bool:
    """False when worker processes could not re-import ``__main__`` (a script read from stdin)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(path)


class PoolBackend:
    """A `concurrent.futures` pool of processes (task installed once per process) or threads."""

    def __init__(self, kind: str, task, workers: int) -> None:
        if kind == "processes" and not _main_is_importable():
            # a script on stdin: new processes would try to run "<stdin>" and die
            # at start; Numba's kernels release the GIL, so threads still share the work
            kind = "threads"
        self.name = kind
        self.slots = workers
        self._kind = kind
        self._raw_task = task
        self.task = task
        # threads share one process: each caps its own kernels' threads (processes do it once)
        self.numba_threads = max(1, default_workers() // workers) if kind == "threads" else 0
        if kind == "processes":
            _check_picklable(task)
            self.task = _TaskRef(task.key)
        self._pool: cf.Executor | None = None

    def _start(self) -> cf.Executor:
        if self._pool is None:
            if self._kind == "threads":
                self._pool = cf.ThreadPoolExecutor(self.slots, thread_name_prefix="cytokit")
            else:
                import multiprocessing as mp

                # never fork this process (its threads and Numba's thread pool do not survive
                # a fork); a fork server with cytokit imported starts workers in milliseconds
                if "forkserver" in mp.get_all_start_methods():
                    context = mp.get_context("forkserver")
                    context.set_forkserver_preload(["cytokit.engine._forkserver_preload"])
                else:  # pragma: no cover - not Linux
                    context = mp.get_context("spawn")
                threads = max(1, default_workers() // self.slots)
                self._pool = cf.ProcessPoolExecutor(
                    self.slots,
                    mp_context=context,
                    initializer=_init_worker,
                    initargs=(self._raw_task, threads, os.getpid()),
                )
        return self._pool

    def submit(self, fn, *args):
        try:
            return self._start().submit(fn, *args)
        except cf.process.BrokenProcessPool as exc:  # died since the last wait: lost as well
            future: cf.Future = cf.Future()
            future.set_exception(exc)
            return future

    def wait(self, handles, *, all_: bool = False):
        when = cf.ALL_COMPLETED if all_ else cf.FIRST_COMPLETED
        return list(cf.wait(handles, return_when=when).done)

    def result(self, handle):
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as exc:
            raise WorkerLost(str(exc)) from exc

    def cancel(self, handles) -> None:
        for h in handles:
            h.cancel()

    def restart(self) -> None:
        self.close(cancel=True)

    def close(self, cancel: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.shutdown(wait=not cancel, cancel_futures=cancel)
        if cancel and isinstance(pool, cf.ProcessPoolExecutor):
            # shutdown(wait=False) leaves running jobs to finish; stop them now
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.terminate()


def require_distributed():
    """The ``distributed`` module, or a `MissingExtraError` naming the extra that installs it
    (checked when a command line names a scheduler address, before anything is written)."""
    from cytokit.errors import MissingExtraError

    try:
        import distributed
    except ImportError as exc:
        raise MissingExtraError(
            "running on a Dask cluster needs dask and distributed, which are not installed: "
            "pip install 'cytokit-flow[dask]', or leave out --scheduler to run here"
        ) from exc
    return distributed


class DaskBackend:
    """A Dask distributed cluster: the task is scattered to every worker once."""

    name = "dask"
    numba_threads = 1  # parallel over files: one core per worker thread

    def __init__(self, scheduler, task) -> None:
        distributed = require_distributed()
        self._d = distributed
        self.address = scheduler if isinstance(scheduler, str) else str(scheduler)
        if isinstance(scheduler, str):
            try:
                self._client = distributed.Client(scheduler, set_as_default=False, timeout="30s")
            except OSError as exc:
                raise CytokitError(
                    f"cannot reach the Dask scheduler at {scheduler} ({exc}); check the address "
                    "(tcp://HOST:PORT) and that the scheduler is running"
                ) from exc
            self._own = True
        else:
            self._client, self._own = scheduler, False
        self.slots = max(1, sum(self._client.nthreads().values()))
        _check_picklable(task)
        self.task = self._client.scatter(task, broadcast=True, hash=False)

    def submit(self, fn, *args):
        return self._client.submit(fn, *args, pure=False)  # a fresh key for every job

    def wait(self, handles, *, all_: bool = False):
        when = "ALL_COMPLETED" if all_ else "FIRST_COMPLETED"
        with self._client.as_current():  # distributed.wait uses the current client
            return list(self._d.wait(handles, return_when=when).done)

    def result(self, handle):
        try:
            return handle.result()
        except self._d.KilledWorker as exc:
            raise WorkerLost(str(exc)) from exc
        except (OSError, self._d.CancelledError) as exc:
            raise CytokitError(
                f"lost the Dask cluster at {self.address} ({type(exc).__name__}: {exc}); "
                "finished files are kept in the store, rerun to resume"
            ) from exc

    def cancel(self, handles) -> None:
        self._client.cancel(list(handles), force=True)

    def restart(self) -> None:
        pass  # Dask replaces lost workers itself

    def close(self, cancel: bool = False) -> None:
        try:
            self._client.cancel([self.task], force=True)
        finally:
            if self._own:
                self._client.close()


def make_backend(scheduler, workers: int | None, task, n_jobs: int):
    """The scheduler `run_batch` was asked for, sized for `n_jobs` files."""
    if scheduler is not None and not isinstance(scheduler, str):
        return DaskBackend(scheduler, task)  # a distributed.Client
    if scheduler is not None and "://" in scheduler:
        return DaskBackend(scheduler, task)
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers={workers} should be >= 1")
    n = max(1, min(n, n_jobs))
    kind = scheduler or ("processes" if n > 1 else "serial")
    if kind == "local":
        kind = "processes"
    if kind not in SCHEDULERS:
        raise ValueError(
            f"scheduler={scheduler!r}: use one of {', '.join(SCHEDULERS)}, 'local', or a Dask "
            "scheduler address tcp://HOST:PORT"
        )
    return SerialBackend(task) if kind == "serial" else PoolBackend(kind, task, n)
