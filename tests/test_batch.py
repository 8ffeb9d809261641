"""run_batch: skipping by content hash, failures, schedulers, crashes, kill and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import batch_tasks as bt
import numpy as np
import pandas as pd
import pytest
from fs_helpers import rewrite_keeping_size_and_mtime

import cytokit.engine._workers
import cytokit.engine.hashing
import cytokit.engine.runner
from cytokit.engine.runner import BatchReport, hash_files, run_batch
from cytokit.engine.store import RunStore, file_hash
from cytokit.errors import CytokitError

HERE = Path(__file__).resolve().parent


def make_files(folder: Path, n: int = 6, *, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        bt.write_values(folder / f"f{i:02d}.bin", rng.normal(i, 1.0, 50 + 10 * i)) for i in range(n)
    ]


def expected_summary(path: Path, scale: float = 1.0) -> list[float]:
    v = np.fromfile(path, dtype="<f8") * scale
    return [float(v.size), float(v.sum()), float(v.mean())]


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def tables(report: BatchReport, store: RunStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    name = lambda p: Path(p).name  # noqa: E731
    fail = report.failures_frame(label=name)[["file", "stage", "kind", "error"]]
    return report.frame(store, "summary", label=name), fail


def test_serial_results_failures_and_rerun(tmp_path):
    files = make_files(tmp_path / "in")
    bad = tmp_path / "in" / "bad.bin"
    bad.write_bytes(b"BAD" + bytes(20))
    boom = tmp_path / "in" / "boom.bin"
    boom.write_bytes(b"BOOM" + bytes(20))
    missing = tmp_path / "in" / "missing.bin"
    given = [files[0], bad, *files[1:3], missing, boom, *files[3:], files[0]]
    log = tmp_path / "calls.log"
    task = bt.SummaryTask(log=str(log))
    seen = []
    with RunStore(tmp_path / "results.sqlite") as store:
        report = run_batch(
            given, task, store, scheduler="serial", progress=lambda *a: seen.append(a)
        )
        assert [f.path for f in report.files] == [str(p) for p in given[:-1]]  # repeat dropped
        status = {Path(f.path).name: (f.status, f.stage, f.kind, f.error) for f in report.files}
        assert status["bad.bin"] == ("failed", "read", "error", "FCSError")
        assert status["boom.bin"] == ("failed", "summarise", "exception", "RuntimeError")
        assert status["missing.bin"] == ("failed", "open", "exception", "FileNotFoundError")
        assert all(status[p.name][0] == "done" for p in files)
        reason = next(f.reason for f in report.failed if f.stage == "read")
        assert reason.startswith("not a values file") and reason.endswith("rewrite it")
        assert len(seen) == 9 and seen[-1][:2] == (9, 9)
        table = report.frame(store, "summary")
        assert table["file"].unique().tolist() == [str(p) for p in (files[0], *files[1:])]
        for p in files:
            got = table.loc[table["file"] == str(p), "value"].tolist()
            assert got == expected_summary(p)
        assert store.payload(report.files[0].hash, task.key)["n"] == 50
        np.testing.assert_array_equal(
            store.payload(report.files[0].hash, task.key)["sorted"],
            np.sort(np.fromfile(files[0], dtype="<f8")),
        )
        assert "RuntimeError: boom" in store.failures(task.key)["detail"].str.cat()
        first = calls(log)
        assert sorted(first) == sorted([p.name for p in files] + ["bad.bin", "boom.bin"])

        # rerun: only the unexpected failure is tried again; the rest comes from the store
        again = run_batch(given, task, store, scheduler="serial")
        assert calls(log)[len(first) :] == ["boom.bin"]
        assert [(f.status, f.cached) for f in again.files] == [
            (f.status, f.path not in (str(boom), str(missing))) for f in report.files
        ]
        pd.testing.assert_frame_equal(tables(again, store)[0], tables(report, store)[0])
        # retry_failures runs the malformed file again too
        run_batch([bad], task, store, scheduler="serial", retry_failures=True)
        assert calls(log)[-1] == "bad.bin"
        assert store.runs()["status"].tolist() == ["finished"] * 3


def test_a_file_that_cannot_be_read_fails_with_the_fix(tmp_path, monkeypatch):
    """An unreadable file (chmod 000 to this user) failed with "cannot read the file:
    Permission denied" and no word of what to do; the reason now says it."""
    files = make_files(tmp_path / "in", 2)
    real = cytokit.engine._workers.file_hash

    def refuse(path, *args):
        if Path(path).name == files[0].name:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args)

    monkeypatch.setattr(cytokit.engine._workers, "file_hash", refuse)
    with RunStore(tmp_path / "r.sqlite") as store:
        report = run_batch(files, bt.SummaryTask(), store, scheduler="serial")
    failed = report.failures_frame()
    assert list(failed["reason"]) == [
        "cannot read the file: Permission denied; check its permissions (this user must be "
        "able to read it), then run again"
    ]
    assert len(report.done) == 1


def test_unchanged_content_is_not_recomputed(tmp_path):
    files = make_files(tmp_path / "in", 3)
    log = tmp_path / "calls.log"
    task = bt.SummaryTask(log=str(log))
    with RunStore(tmp_path / "r.sqlite") as store:
        run_batch(files, task, store, scheduler="serial")
        assert len(calls(log)) == 3
        os.utime(files[0], ns=(1, 10**18))  # touched: re-hashed, same content
        moved = shutil.copy(files[1], tmp_path / "copy.bin")  # same content elsewhere
        report = run_batch([files[0], moved], task, store, scheduler="serial")
        assert len(calls(log)) == 3 and report.n_cached == 2
        bt.write_values(files[2], np.arange(5.0))  # new content: recomputed
        report = run_batch(files, task, store, scheduler="serial")
        assert calls(log)[3:] == [files[2].name] and report.n_cached == 2
        assert report.frame(store, "summary")["value"].tolist()[-3:] == [5.0, 10.0, 2.0]
        # another task key (a changed option) recomputes everything
        run_batch(files, bt.SummaryTask(log=str(log), scale=2.0), store, scheduler="serial")
        assert len(calls(log)) == 7


def edit_summary(db_path: Path, digest: str, add: float) -> None:
    """Add `add` to the stored sum of one file, leaving the item valid JSON (a changed digit)."""
    with sqlite3.connect(db_path) as db:
        (data,) = db.execute(
            "SELECT data FROM items WHERE hash = ? AND name = 'summary'", (digest,)
        ).fetchone()
        doc = json.loads(data)
        doc["data"][doc["columns"].index("value")][1] += add
        db.execute(
            "UPDATE items SET data = ? WHERE hash = ? AND name = 'summary'",
            (json.dumps(doc).encode(), digest),
        )


def test_a_damaged_stored_result_is_computed_again_and_said(tmp_path):
    files = make_files(tmp_path / "in", 4)
    log = tmp_path / "calls.log"
    task = bt.SummaryTask(log=str(log))
    db = tmp_path / "r.sqlite"
    with RunStore(db) as store:
        first = run_batch(files, task, store, scheduler="serial")
    edit_summary(db, first.files[1].hash, 10_000.0)
    seen = []
    with RunStore(db) as store:
        again = run_batch(
            files, task, store, scheduler="serial", progress=lambda *a: seen.append(a)
        )
        assert calls(log)[4:] == [files[1].name]  # only the damaged file ran again
        assert [a[3] for a in seen] == ["cached", "recomputed", "cached", "cached"]
        assert [f.path for f in again.recomputed] == [str(files[1])]
        note = again.recomputed[0].note
        assert "stored result was damaged" in note and "'summary'" in note, note
        # the numbers are the file's own again, not the edited ones
        table = again.frame(store, "summary")
        for p in files:
            assert table.loc[table["file"] == str(p), "value"].tolist() == expected_summary(p)
        assert store.runs()["recomputed"].tolist() == [0, 1]
        third = run_batch(files, task, store, scheduler="serial")
        assert third.n_cached == 4 and not third.recomputed


def test_a_file_rewritten_with_its_size_and_mtime_is_read_again(tmp_path, monkeypatch):
    # trust cache entries however fresh: only the recorded stat can tell the rewrite
    monkeypatch.setattr(cytokit.engine.hashing, "RACY_NS", 0)
    hashed = []
    monkeypatch.setattr(
        cytokit.engine._workers,
        "file_hash",
        lambda path, buf=None: hashed.append(path) or file_hash(path),
    )
    files = make_files(tmp_path / "in", 3)
    task = bt.SummaryTask()
    with RunStore(tmp_path / "r.sqlite") as store:
        run_batch(files, task, store, scheduler="serial")
        assert len(hashed) == 3
        assert run_batch(files, task, store, scheduler="serial").n_cached == 3
        assert len(hashed) == 3  # unchanged files: the hash cache holds
        values = np.fromfile(files[0], dtype="<f8")
        rewrite_keeping_size_and_mtime(files[0], (values[::-1] * 2.0).astype("<f8").tobytes())
        report = run_batch(files, task, store, scheduler="serial")
        assert hashed[3:] == [os.path.abspath(files[0])]
        assert [f.cached for f in report.files] == [False, True, True]
        got = report.frame(store, "summary")
        assert got.loc[got["file"] == str(files[0]), "value"].tolist() == expected_summary(files[0])


def test_a_file_rewritten_after_the_batch_started_is_not_given_a_stale_hash(tmp_path, monkeypatch):
    files = make_files(tmp_path / "in", 2)
    real = cytokit.engine.runner.hash_job

    def rewrite_then_hash(path):  # written between the batch's stat and the worker's read
        if path == os.path.abspath(files[0]):
            values = np.fromfile(path, dtype="<f8")
            rewrite_keeping_size_and_mtime(Path(path), (values + 1.0).astype("<f8").tobytes())
        return real(path)

    monkeypatch.setattr(cytokit.engine.runner, "hash_job", rewrite_then_hash)
    with RunStore(tmp_path / "r.sqlite") as store:
        report = run_batch(files, bt.SummaryTask(), store, scheduler="serial")
        changed = report.files[0]
        assert (changed.status, changed.error, changed.kind) == (
            "failed",
            "FileChanged",
            "exception",
        )
        assert store._db.execute("SELECT count(*) FROM files").fetchone()[0] == 1
        monkeypatch.undo()
        again = run_batch(files, bt.SummaryTask(), store, scheduler="serial")
        assert [f.status for f in again.files] == ["done", "done"]
        got = again.frame(store, "summary")
        assert got.loc[got["file"] == str(files[0]), "value"].tolist() == expected_summary(files[0])


def test_hash_files_uses_and_fills_the_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(cytokit.engine.hashing, "RACY_NS", 0)
    files = make_files(tmp_path / "in", 5)
    link = tmp_path / "link.bin"
    link.symlink_to(files[2])
    with RunStore(tmp_path / "r.sqlite") as store:
        infos = hash_files([*files, files[0], link, tmp_path / "missing.bin"], store, workers=2)
        assert set(infos) == {os.path.abspath(p) for p in (*files, link)}
        for p in (*files, link):
            assert infos[os.path.abspath(p)].hash == file_hash(p)
        assert infos[str(link)].hash == infos[str(files[2])].hash
        # every hash is now cached: a batch of the same files reads none of them to hash it
        hashed = []
        monkeypatch.setattr(
            cytokit.engine._workers,
            "file_hash",
            lambda p, buf=None: hashed.append(p) or file_hash(p),
        )
        report = run_batch(files, bt.SummaryTask(), store, scheduler="serial")
        assert hashed == [] and len(report.done) == 5


def test_schedulers_give_identical_tables(tmp_path):
    files = make_files(tmp_path / "in", 8)
    bad = files[3].with_name("bad.bin")
    bad.write_bytes(b"BAD!")
    given = [*files[:3], bad, *files[3:]]
    task = bt.SummaryTask()
    results = {}
    for scheduler, workers in (("serial", None), ("threads", 3), ("processes", 2)):
        with RunStore(tmp_path / f"{scheduler}.sqlite") as store:
            report = run_batch(given, task, store, scheduler=scheduler, workers=workers)
            assert report.workers == (workers or 1)
            results[scheduler] = tables(report, store)
    for scheduler in ("threads", "processes"):
        for got, want in zip(results[scheduler], results["serial"], strict=True):
            pd.testing.assert_frame_equal(got, want)
    assert results["serial"][1]["file"].tolist() == ["bad.bin"]


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_tables(tmp_path):
    distributed = pytest.importorskip("distributed")
    files = make_files(tmp_path / "in", 6)
    bad = files[0].with_name("bad.bin")
    bad.write_bytes(b"BAD!")
    given = [bad, *files]
    task = bt.SummaryTask()
    with RunStore(tmp_path / "serial.sqlite") as store:
        want = tables(run_batch(given, task, store, scheduler="serial"), store)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with RunStore(tmp_path / "dask.sqlite") as store:
            report = run_batch(given, task, store, scheduler=cluster.scheduler_address)
            assert report.scheduler == "dask" and report.workers == 2
            got = tables(report, store)
            assert store.runs()["scheduler"].iloc[0] == f"dask {cluster.scheduler_address}"
        with distributed.Client(cluster) as client, RunStore(tmp_path / "c.sqlite") as store:
            got_client = tables(run_batch(given, task, store, scheduler=client), store)
    for a, b, c in zip(got, got_client, want, strict=True):
        pd.testing.assert_frame_equal(a, c)
        pd.testing.assert_frame_equal(b, c)


def test_a_worker_that_dies_fails_only_its_file(tmp_path):
    files = make_files(tmp_path / "in", 5)
    killer = files[0].with_name("kill.bin")
    killer.write_bytes(b"KILL" + bytes(12))
    given = [files[0], files[1], killer, *files[2:]]
    with RunStore(tmp_path / "r.sqlite") as store:
        report = run_batch(given, bt.SummaryTask(), store, scheduler="processes", workers=2)
        status = {Path(f.path).name: (f.status, f.stage) for f in report.files}
        assert status.pop("kill.bin") == ("failed", "worker")
        assert set(status.values()) == {("done", "")}
        # the death is not final: a rerun tries the file again
        assert store.status(report.files[2].hash, bt.SummaryTask().key) == "exception"


def test_bad_payload_is_a_failure(tmp_path):
    files = make_files(tmp_path / "in", 2)
    with RunStore(tmp_path / "r.sqlite") as store:
        report = run_batch(files, bt.BadPayloadTask(), store, scheduler="serial")
        assert {(f.stage, f.kind, f.error) for f in report.files} == {
            ("store", "exception", "TypeError")
        }


def test_ctrl_c_keeps_what_finished(tmp_path):
    files = make_files(tmp_path / "in", 6)
    log = tmp_path / "calls.log"
    task = bt.SummaryTask(log=str(log))

    def interrupt_after_two(done, total, path, status):
        if done == 2:
            raise KeyboardInterrupt

    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run_batch(files, task, store, scheduler="serial", progress=interrupt_after_two)
        assert store.count(task.key)["results"] == 2
        assert store.runs()["status"].tolist() == ["interrupted"]
        report = run_batch(files, task, store, scheduler="serial")
        assert report.n_cached == 2 and len(report.done) == 6
        assert sorted(calls(log)) == sorted(p.name for p in files)


def test_ctrl_c_tracebacks_of_the_pool_are_not_printed():
    """Ctrl-C reaches the fork server and the pool's manager thread too: the server imports
    its modules with SIGINT ignored (and puts the handler back for its workers), and the
    manager thread's InvalidStateError on a cancelled job is dropped, so the command's own
    one line is what the user reads; any other thread error still shows."""
    import concurrent.futures as cf
    import threading

    from cytokit.cli._progress import _quiet_pool_race

    seen = []
    hook = _quiet_pool_race(seen.append)

    def args(exc):
        return threading.ExceptHookArgs((type(exc), exc, None, None))

    hook(args(cf.InvalidStateError("CANCELLED: <Future state=cancelled>")))
    other = RuntimeError("a real bug")
    hook(args(other))
    assert [a.exc_value for a in seen] == [other]
    code = (
        "import signal, cytokit.engine._forkserver_preload; "
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def _session_pids(sid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-s", str(sid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


@pytest.mark.skipif(sys.platform != "linux", reason="uses ps -s and /proc")
def test_killed_run_resumes_to_the_same_tables(tmp_path):
    files = make_files(tmp_path / "in", 12)
    files.insert(5, files[0].with_name("bad.bin"))
    files[5].write_bytes(b"BAD!")
    log = tmp_path / "calls.log"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import batch_tasks as bt
        from cytokit.engine.runner import run_batch
        from cytokit.engine.store import RunStore
        files = {[str(p) for p in files]!r}
        with RunStore({str(tmp_path / "killed.sqlite")!r}) as store:
            run_batch(files, bt.SummaryTask(log={str(log)!r}, delay=0.3), store,
                      scheduler="processes", workers=2)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    task = bt.SummaryTask(log=str(log))
    store = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if (tmp_path / "killed.sqlite").exists():
                try:  # the file exists a moment before the batch has made it a store
                    store = store or RunStore(tmp_path / "killed.sqlite", readonly=True)
                except CytokitError:
                    continue
                if store.count(task.key)["results"] >= 4:
                    break
        assert proc.poll() is None, "the batch finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the coordinator only: its workers must notice
        proc.wait()
        deadline = time.monotonic() + 10
        while _session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session_pids(proc.pid) == [], "worker processes outlived their coordinator"
    finally:
        if store is not None:
            store.close()
        if _session_pids(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    with RunStore(tmp_path / "killed.sqlite") as store:
        before = store.count(task.key)["results"]
        assert 4 <= before < 12
        n_calls = len(calls(log))
        resumed = run_batch(files, task, store, scheduler="processes", workers=2)
        assert resumed.n_cached == before
        rerun = calls(log)[n_calls:]
        assert len(rerun) == 13 - before and "bad.bin" in rerun
        got = tables(resumed, store)
        assert store.runs()["status"].tolist() == ["running", "finished"]
    with RunStore(tmp_path / "clean.sqlite") as store:
        want = tables(run_batch(files, task, store, scheduler="serial"), store)
    for a, b in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert want[1]["file"].tolist() == ["bad.bin"]


def test_argument_errors(tmp_path, monkeypatch):
    files = make_files(tmp_path / "in", 1)
    with RunStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(TypeError, match="not a batch task"):
            run_batch(files, lambda p: {}, store)
        with pytest.raises(ValueError, match="scheduler='gpu'"):
            run_batch(files, bt.SummaryTask(), store, scheduler="gpu")
        with pytest.raises(ValueError, match="workers=0"):
            run_batch(files, bt.SummaryTask(), store, workers=0)

        class Local:  # not picklable: defined in a function
            key = "local"

            def __call__(self, path):
                return {}

        with pytest.raises(TypeError, match="cannot be pickled"):
            run_batch(files, Local(), store, scheduler="processes", workers=2)
        assert run_batch(files, Local(), store, scheduler="serial").done
        monkeypatch.setitem(sys.modules, "distributed", None)
        with pytest.raises(ImportError, match=r"cytokit-flow\[dask\]"):
            run_batch(files, bt.SummaryTask(scale=3.0), store, scheduler="tcp://127.0.0.1:1")
