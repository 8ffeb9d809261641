"""RunStore: payload round trips, the hash cache, checksums, transactions, old files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3

import numpy as np
import pandas as pd
import pytest
from fs_helpers import rewrite_keeping_size_and_mtime

from cytokit.engine.hashing import RACY_NS
from cytokit.engine.store import (
    SCHEMA_VERSION,
    FileInfo,
    RunStore,
    decode_item,
    encode_payload,
    file_hash,
    row_checksum,
)
from cytokit.errors import CytokitError


def info(name: str = "a.fcs", h: str = "h1") -> FileInfo:
    return FileInfo(f"/data/{name}", 100, 123456789, h)


def test_file_hash_is_sha256_of_the_bytes(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.bytes(3 * (1 << 20) + 17)  # several blocks and a partial one
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    assert file_hash(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_hash(empty, bytearray(8)) == hashlib.sha256(b"").hexdigest()


def test_payload_round_trip_exact():
    frame = pd.DataFrame(
        {
            "gate": ["/A", "/A/B", None],
            "count": np.array([10, 0, -3], dtype=np.int64),
            "small": np.array([1, 2, 3], dtype=np.uint16),
            "pct": [0.1 + 0.2, float("nan"), float("inf")],
            "f32": np.array([1 / 3, -0.0, 1e-40], dtype=np.float32),
            "flag": [True, False, True],
        },
        index=[7, 8, 9],
    )
    array = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    payload = {"counts": frame, "hist": array, "n": np.int64(3), "meta": {"a": [1, 2.5, None]}}
    items = encode_payload(payload)
    assert {k: v[0] for k, v in items.items()} == {
        "counts": "frame",
        "hist": "array",
        "n": "value",
        "meta": "value",
    }
    back = {k: decode_item(*v) for k, v in items.items()}
    pd.testing.assert_frame_equal(back["counts"], frame.reset_index(drop=True))
    assert back["counts"]["gate"].iloc[2] is None
    assert np.signbit(back["counts"]["f32"].iloc[1])
    np.testing.assert_array_equal(back["hist"], array)
    assert back["hist"].dtype == np.float32
    assert back["n"] == 3 and back["meta"] == {"a": [1, 2.5, None]}


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"x": object()}, "holds a object"),
        ({"x": np.array([object()])}, "object array"),
        ({"x": pd.DataFrame({"t": pd.to_datetime(["2024-01-01"])})}, "dtype datetime64"),
        ({"x": pd.DataFrame({"o": [object()]})}, "holds object values"),
        ({"": 1}, "non-empty strings"),
        ([1, 2], "must return a dict"),
    ],
)
def test_payload_refuses_what_it_cannot_hold(payload, match):
    with pytest.raises(TypeError, match=match):
        encode_payload(payload)


def test_results_failures_and_frames(tmp_path):
    path = tmp_path / "out" / "results.sqlite"
    with RunStore(path) as store:
        assert store.meta["schema_version"] == str(SCHEMA_VERSION)
        assert store.status("h1", "t") is None
        a = pd.DataFrame({"gate": ["/A"], "count": [5]})
        b = pd.DataFrame({"gate": ["/A", "/B"], "count": [7, 2]})
        store.put_result(info("a", "h1"), "t", encode_payload({"counts": a, "n": 5}), seconds=0.5)
        store.put_result(info("b", "h2"), "t", encode_payload({"counts": b, "n": 9}))
        store.put_failure(
            info("c", "h3"), "t", stage="read", kind="error", error="FCSError", reason="bad"
        )
        assert store.status("h1", "t") == "done"
        assert store.status("h1", "other") is None
        assert store.status("h3", "t") == "error"
        assert store.failure("h3", "t")["reason"] == "bad"
        assert store.payload("h3", "t") is None
        assert store.payload("h2", "t")["n"] == 9
        table = store.frame("t", "counts", [("b.fcs", "h2"), ("c.fcs", "h3"), ("a.fcs", "h1")])
        assert table.columns.tolist() == ["file", "gate", "count"]
        assert table["file"].tolist() == ["b.fcs", "b.fcs", "a.fcs"]
        assert table["count"].tolist() == [7, 2, 5]
        assert store.count("t") == {"results": 2, "failures": 1}
        # a later success replaces the failure of the same content and task, and vice versa
        store.put_result(info("c", "h3"), "t", encode_payload({"counts": a}))
        assert store.status("h3", "t") == "done" and store.failure("h3", "t") is None
        store.put_failure(
            info("a", "h1"), "t", stage="gate", kind="exception", error="X", reason="y"
        )
        assert store.status("h1", "t") == "exception"
        assert store.items("t", "counts", ["h1"]) == {}
        assert store.failures("t")["path"].tolist() == ["/data/a"]
    # everything committed is there after reopening
    with RunStore(path, readonly=True) as store:
        assert store.count("t") == {"results": 2, "failures": 1}
        with pytest.raises(CytokitError, match="read-only"):
            store.put_file(info())


def test_a_failure_keeps_what_the_task_measured_before_it(tmp_path):
    """Items stored with a failure are found by `items` and leave the file failed; a later
    result replaces them, and a later failure without items drops them."""
    with RunStore(tmp_path / "results.sqlite") as store:
        saw = encode_payload({"acquisition_qc": {"verdict": "fail"}, "acq_bins": np.arange(6.0)})
        store.put_failure(
            info("c", "h3"), "t", stage="acquisition_qc", kind="error", error="FCSError",
            reason="acquisition QC failed", items=saw,
        )  # fmt: skip
        assert store.lookup("h3", "t") == ("error", "")
        assert store.payload("h3", "t") is None and store.count("t")["results"] == 0
        assert store.items("t", "acquisition_qc", ["h3"]) == {"h3": {"verdict": "fail"}}
        np.testing.assert_array_equal(store.items("t", "acq_bins", ["h3"])["h3"], np.arange(6.0))
        assert store.items("other", "acq_bins", ["h3"]) == {}
        store.put_result(info("c", "h3"), "t", encode_payload({"n": 1}))
        assert store.items("t", "acq_bins", ["h3"]) == {} and store.status("h3", "t") == "done"
        store.put_failure(info("c", "h3"), "t", stage="read", kind="error", error="E", reason="r")
        assert store.items("t", "n", ["h3"]) == {}


def hashed_long_after(path) -> FileInfo:
    """`path`'s info as if hashed well after its last change (not a racy entry)."""
    st = os.stat(path)
    seen = max(st.st_mtime_ns, st.st_ctime_ns) + RACY_NS
    return FileInfo.from_stat(str(path), st, file_hash(path), seen)


def test_hash_cache_by_stat_ctime_inode_device(tmp_path):
    path = tmp_path / "a.fcs"
    path.write_bytes(b"A" * 1000)
    with RunStore(tmp_path / "s.sqlite") as store:
        assert store.cached_hash(str(path), os.stat(path)) is None
        info = hashed_long_after(path)
        store.put_file(info)
        assert store.cached_hash(str(path), os.stat(path)) == info.hash
        assert store.cached_hash(str(tmp_path / "b.fcs"), os.stat(path)) is None
        # rewritten in place with the same size, its mtime put back (touch -r): ctime moved
        rewrite_keeping_size_and_mtime(path, b"B" * 1000)
        assert store.cached_hash(str(path), os.stat(path)) is None
        # replaced by another file of the same size and times: another inode
        store.put_file(hashed_long_after(path))
        other = tmp_path / "other.fcs"
        other.write_bytes(b"C" * 1000)
        now = os.stat(path)
        os.utime(other, ns=(now.st_atime_ns, now.st_mtime_ns))
        os.replace(other, path)
        assert os.stat(path).st_ino != now.st_ino
        assert store.cached_hash(str(path), os.stat(path)) is None
        # another device (a different file system mounted at the same path)
        info = hashed_long_after(path)
        store.put_file(FileInfo(**{**info.__dict__, "device": info.device + 1}))
        assert store.cached_hash(str(path), os.stat(path)) is None
        store.put_file(info)
        assert store.cached_hash(str(path), os.stat(path)) == info.hash


def test_hash_cache_ignores_racy_and_damaged_entries(tmp_path):
    path = tmp_path / "a.fcs"
    path.write_bytes(b"A" * 1000)
    st = os.stat(path)
    with RunStore(tmp_path / "s.sqlite") as store:
        # hashed in the same clock tick as the last write: that write may not show in the times
        store.put_file(FileInfo.from_stat(str(path), st, file_hash(path), st.st_ctime_ns))
        assert store.cached_hash(str(path), st) is None
        store.put_file(hashed_long_after(path))
        assert store.cached_hash(str(path), st) == file_hash(path)
    with sqlite3.connect(tmp_path / "s.sqlite") as db:  # an edited hash fails the checksum
        db.execute("UPDATE files SET hash = ?", ("0" * 64,))
    with RunStore(tmp_path / "s.sqlite") as store:
        assert store.cached_hash(str(path), st) is None


def test_a_failed_write_leaves_nothing_half_done(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        items = encode_payload({"a": 1, "b": 2})
        items["b"] = ("nonsense-kind", b"x")  # violates the CHECK constraint mid-transaction
        with pytest.raises(sqlite3.IntegrityError):
            store.put_result(info(), "t", items)
        assert store.status("h1", "t") is None
        assert store.items("t", "a", ["h1"]) == {}
        assert store._db.execute("SELECT count(*) FROM files").fetchone()[0] == 0


def test_runs_are_recorded(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        run = store.begin_run("t", 3, "serial x1")
        runs = store.runs()
        assert runs["status"].tolist() == ["running"] and runs["finished"].isna().all()
        store.end_run(run, "finished", done=2, cached=0, failed=1)
        row = store.runs().iloc[0]
        assert (row["status"], row["done"], row["failed"]) == ("finished", 2, 1)
        store.put_task("t", "gate", {"strategy": "s.xml"})
        assert store.task_description("t") == {"strategy": "s.xml"}


def test_refuses_other_files(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, I am not a database " * 50)
    with pytest.raises(CytokitError, match="not a cytokit results store"):
        RunStore(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(CytokitError, match="not a cytokit results store"):
        RunStore(other)
    with pytest.raises(CytokitError, match="not found"):
        RunStore(tmp_path / "missing.sqlite", readonly=True)


@pytest.mark.parametrize(
    "version, advice",
    [(SCHEMA_VERSION + 1, "Upgrade"), (1, "no checksums.*Delete"), (0, "Delete")],
)
def test_refuses_other_schema_versions(tmp_path, version, advice):
    path = tmp_path / "s.sqlite"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {version}")
    with pytest.raises(CytokitError, match=f"schema version {version}.*{advice}"):
        RunStore(path)


def edit(path, sql: str, *params) -> None:
    """Change the store's file behind its back, as a disk fault or a hand edit would."""
    with sqlite3.connect(path) as db:
        assert db.execute(sql, params).rowcount == 1
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)  # SQLite sees nothing


def counts_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"gate": ["/A", "/A/B"], "count": [n, n // 3]})


@pytest.mark.parametrize(
    "sql, params, problem",
    [
        # one digit of a stored count (12156 -> 22156), the bytes still valid JSON
        (
            "UPDATE items SET data = CAST(replace(CAST(data AS TEXT), '12156', '22156') AS BLOB)"
            " WHERE name = 'counts' AND hash = 'h1'",
            (),
            "item.*'counts'.*checksum",
        ),
        ("DELETE FROM items WHERE name = 'n' AND hash = 'h1'", (), "items or its row"),
        ("UPDATE items SET name = 'm' WHERE name = 'n' AND hash = 'h1'", (), "'m'"),
        ("UPDATE results SET path = '/data/z' WHERE hash = 'h1'", (), "items or its row"),
    ],
)
def test_a_changed_result_is_damaged_on_every_read(tmp_path, sql, params, problem):
    path = tmp_path / "s.sqlite"
    with RunStore(path) as store:
        store.put_result(
            info("a", "h1"), "t", encode_payload({"counts": counts_frame(12156), "n": 5})
        )
        store.put_result(
            info("b", "h2"), "t", encode_payload({"counts": counts_frame(900), "n": 9})
        )
        assert store.lookup("h1", "t") == ("done", "")
    edit(path, sql, *params)
    with RunStore(path) as store:
        status, why = store.lookup("h1", "t")
        assert status == "damaged" and re.search(problem, why), why
        assert store.status("h1", "t") == "damaged"
        with pytest.raises(
            CytokitError, match=r"s\.sqlite: the stored result of /data/[az] is damaged"
        ):
            store.payload("h1", "t")
        if "counts" in problem:
            with pytest.raises(CytokitError, match="'counts' does not match its checksum"):
                store.items("t", "counts", ["h2", "h1"])
            with pytest.raises(CytokitError, match="damaged"):
                store.frame("t", "counts", [("a.fcs", "h1")])
        # the other file is untouched
        assert store.lookup("h2", "t") == ("done", "")
        assert store.payload("h2", "t")["counts"]["count"].tolist() == [900, 300]
        # writing the result again repairs it
        store.put_result(
            info("a", "h1"), "t", encode_payload({"counts": counts_frame(12156), "n": 5})
        )
        assert store.payload("h1", "t")["counts"]["count"].tolist() == [12156, 4052]


def test_a_changed_failure_is_damaged(tmp_path):
    path = tmp_path / "s.sqlite"
    with RunStore(path) as store:
        store.put_failure(info(), "t", stage="read", kind="error", error="FCSError", reason="bad")
        assert store.lookup("h1", "t") == ("error", "")
    edit(path, "UPDATE failures SET kind = 'exception'")
    with RunStore(path) as store:
        assert store.lookup("h1", "t") == (
            "damaged",
            "the stored failure does not match its checksum",
        )


def test_row_checksum_is_unambiguous():
    assert row_checksum("ab", "c") != row_checksum("a", "bc")
    assert row_checksum("1") != row_checksum(1) != row_checksum(b"1")
    assert row_checksum(None) != row_checksum("")
    expected = hashlib.sha256(b"s" + (2).to_bytes(8, "little") + b"ab").hexdigest()
    assert row_checksum("ab") == expected
    assert json.dumps(row_checksum(b"\x00", 0))  # any bytes, any int


def test_a_full_disk_is_the_machines_refusal_not_a_bug(tmp_path):
    """SQLite's "database or disk is full" became an internal error ("this is a bug in
    cytokit"); it is an OSError ENOSPC naming the store, which the CLI reports as the
    machine's refusal with the fix. SQLite's page limit stands in for the full disk."""
    import errno

    from cytokit.engine.store import RunStore

    with RunStore(tmp_path / "results.sqlite") as store:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(OSError) as err:
            store.put_task("k", "kind", {"text": "x" * 200_000})
        assert err.value.errno == errno.ENOSPC
        assert err.value.filename == str(tmp_path / "results.sqlite")


@pytest.mark.parametrize(("limit", "number"), [(1_024_000, "EFBIG"), (None, "EIO")])
def test_a_disk_io_error_is_the_machines_refusal_not_a_bug(tmp_path, monkeypatch, limit, number):
    """SQLite's "disk I/O error" (a write past ``ulimit -f``, a failing disk) was an
    internal error; it is an OSError naming the store, the file-size limit where one is
    set, and nothing committed before it is lost."""
    import errno

    import cytokit.engine.store as store_module
    from cytokit.engine.store import RunStore

    class Refusing:  # the connection, failing the commit as SQLite does on EFBIG or EIO
        def __init__(self, db):
            self.db = db

        def __getattr__(self, name):
            return getattr(self.db, name)

        def execute(self, sql, *args):
            if sql == "COMMIT":  # SQLite rolls the transaction back on an I/O error
                self.db.execute("ROLLBACK")
                raise sqlite3.OperationalError("disk I/O error")
            return self.db.execute(sql, *args)

    monkeypatch.setattr(store_module, "_file_size_limit", lambda: limit)
    path = tmp_path / "results.sqlite"
    with RunStore(path) as store:
        store.put_task("kept", "kind", {})
        db, store._db = store._db, Refusing(store._db)
        with pytest.raises(OSError) as err:
            store.put_task("lost", "kind", {})
        store._db = db
        assert err.value.errno == getattr(errno, number) and err.value.filename == str(path)
        said = "SQLite could not write it (disk I/O error)"
        if limit is not None:
            said += ": this process may write files of at most 1,024,000 bytes"
        assert err.value.strerror == said
        assert store.task_description("kept") == {} and store.task_description("lost") is None


def test_a_store_opens_read_only_in_a_folder_of_any_name(tmp_path, monkeypatch):
    """The read-only open goes through a URI: a folder named "r#1" was "not a cytokit
    results store" and one named "r%41" opened the store of its sibling "rA"."""
    from cytokit.engine.store import RunStore

    names = ["rA", "r#1", "r%41", "r?mode=rw", "r 1", "résultats", "r%2541"]
    for name in names:
        with RunStore(tmp_path / name / "results.sqlite") as store:
            store.put_task(name, "kind", {"folder": name})
    for name in names:
        with RunStore(tmp_path / name / "results.sqlite", readonly=True) as store:
            assert store.task_description(name) == {"folder": name}, name
    monkeypatch.chdir(tmp_path)  # a relative path too
    with RunStore("r#1/results.sqlite", readonly=True) as store:
        assert store.task_description("r#1") == {"folder": "r#1"}


def test_a_file_system_without_locks_runs_without_the_folder_lock(tmp_path, monkeypatch):
    """NFS without lockd answers flock with ENOLCK: that was an internal error for every
    analyze and gate; the run goes on unlocked, as before the lock existed."""
    import errno
    import fcntl

    from cytokit._outdir import writing_into

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with writing_into(tmp_path):
        (tmp_path / "written").write_text("x")
    assert (tmp_path / "written").is_file()


def test_a_killed_runs_temporaries_are_removed_when_the_folder_is_held_again(tmp_path):
    """`kill -9` between a table's temporary file and its rename leaves ``.name.<hex>.tmp``;
    the next run holding the folder removes it (a resumed run ends with the files of a fresh
    one), but not a temporary written to just now, nor a user's own dot-file."""
    import os
    import time

    from cytokit._io import STALE_SECONDS
    from cytokit._outdir import writing_into

    old = time.time() - STALE_SECONDS - 60
    (tmp_path / "plots").mkdir()
    stale = [
        tmp_path / ".counts.csv.0123456789abcdef.tmp",
        tmp_path / "plots" / ".a.png.fedcba9876543210.tmp",
    ]
    fresh = tmp_path / ".phenotype.csv.00000000000000aa.tmp"
    mine = tmp_path / ".notes.tmp"
    for path in [*stale, fresh, mine]:
        path.write_text("part")
    for path in [*stale, mine]:
        os.utime(path, (old, old))
    with writing_into(tmp_path):
        pass
    assert not any(p.exists() for p in stale)
    assert fresh.is_file() and mine.is_file()
