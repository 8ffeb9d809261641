"""Every output gets the permissions the umask allows, as a plain ``open()`` would give.

On a shared analysis server colleagues read each other's results: with umask
022 a report must be world-readable, with 027 group-readable, whatever way
cytokit wrote it (atomic rename, SQLite, the FCS writer). Expected modes are
``0o666 & ~umask`` for files and ``0o777 & ~umask`` for folders.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import numpy as np
import pytest

from cytokit import Channel, Sample, write_fcs
from cytokit._io import atomic_write_bytes, write_csv
from cytokit.cli.app import run
from cytokit.engine.store import RunStore
from cytokit.errors import OutputError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def wrong_modes(paths, mask: int) -> dict[str, str]:
    """Each path whose permission bits differ from what `open`/`mkdir` give under `mask`."""
    out = {}
    for p in paths:
        mode = p.lstat().st_mode
        want = (0o777 if stat.S_ISDIR(mode) else 0o666) & ~mask
        if stat.S_IMODE(mode) != want:
            out[str(p)] = f"{stat.S_IMODE(mode):o}, expected {want:o}"
    return out


def a_sample() -> Sample:
    events = np.random.default_rng(3).normal(1000, 100, size=(50, 2)).astype(np.float32)
    channels = [Channel(index=i, name=n) for i, n in enumerate(("FSC-A", "SSC-A"))]
    return Sample(events, channels)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o027, 0o077])
def test_atomic_writes_the_fcs_writer_and_the_store_follow_the_umask(tmp_path, mask):
    with umask(mask):
        made = [
            write_csv(tmp_path / "t" / "a.csv", [{"x": 1}], ["x"]),
            atomic_write_bytes(tmp_path / "t" / "b.bin", b"\0"),
            write_fcs(tmp_path / "c.fcs", a_sample()),
        ]
        with RunStore(tmp_path / "store" / "results.sqlite") as store:
            store.put_task("k", "test", {})
            db = sorted((tmp_path / "store").iterdir())
            assert len(db) == 3  # the database, its WAL and shared-memory files, while open
            wrong = wrong_modes(db, mask)
    assert wrong == {}
    assert wrong_modes([*made, tmp_path / "t", tmp_path / "store"], mask) == {}


@pytest.mark.slow
@pytest.mark.parametrize("mask", [0o027])  # group bits differ from the usual 022
def test_every_output_of_the_commands_follows_the_umask(tmp_path, mask, capsys):
    study, results, report, gated = (tmp_path / n for n in ("study", "res", "rep", "gated"))
    with umask(mask):
        sim = ["simulate", str(study), "--seed", "9", "--patients", "2", "--events", "2000"]
        assert run([*sim, "--days=-7,7,14", "--workers", "1"]) == 0
        assert run(["analyze", str(study), "--out", str(results), "--workers", "1"]) == 0
        assert run(["report", str(results), "--out", str(report)]) == 0
        strategy = str(study / "strategy.yaml")
        assert (
            run(["gate", strategy, str(study / "fcs"), "--out", str(gated), "--workers", "1"]) == 0
        )
        write_fcs(tmp_path / "written.fcs", a_sample())
    capsys.readouterr()
    outputs = [p for top in (study, results, report, gated) for p in [top, *top.rglob("*")]]
    names = {p.name for p in outputs}
    # what each command writes is there: FCS files, tables, plots, report, stores
    assert {"manifest.csv", "chimerism.csv", "report.html", "counts.csv"} <= names
    assert sum(p.name == "results.sqlite" for p in outputs) == 2
    assert any(p.suffix == ".fcs" for p in outputs) and any(p.suffix == ".png" for p in outputs)
    assert wrong_modes([*outputs, tmp_path / "written.fcs"], mask) == {}


def test_a_table_written_through_a_dangling_link_makes_no_folders_at_its_target(tmp_path):
    """A table whose name is a symbolic link into a folder that is gone made that folder
    (and its parents) to write through the link; it is now an error naming the link, and
    once the folder is there the table is written through the link, which stays one."""
    link = tmp_path / "out" / "counts.csv"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "gone" / "deeper" / "counts.csv")
    with pytest.raises(OutputError, match=r"counts\.csv: is a symbolic link to .*make"):
        atomic_write_bytes(link, b"a\n1\n")
    assert not (tmp_path / "gone").exists()
    (tmp_path / "gone" / "deeper").mkdir(parents=True)
    atomic_write_bytes(link, b"a\n1\n")
    assert link.is_symlink() and link.read_bytes() == b"a\n1\n"
    # a plain file's own missing folders are still made, as before
    atomic_write_bytes(tmp_path / "new" / "t.csv", b"x\n")
    assert (tmp_path / "new" / "t.csv").read_bytes() == b"x\n"


def test_a_failed_write_names_the_file_being_written(tmp_path, monkeypatch):
    """A full disk's error named no file ("No space left on device; free some space"), and
    a folder that cannot be written named the hidden temporary file
    (".manifest.json.deb9….tmp: Permission denied"): both now name the file written."""
    import errno

    import cytokit._io as io

    target = tmp_path / "counts.csv"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic_write_bytes(target, b"a\n")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert not list(tmp_path.iterdir())  # the temporary file is gone
    monkeypatch.undo()

    def refused(folder, name):
        raise PermissionError(errno.EACCES, "Permission denied", f"{folder}/.{name}.ab.tmp")

    monkeypatch.setattr(io, "create_temporary", refused)
    with pytest.raises(PermissionError) as err:
        atomic_write_bytes(target, b"a\n")
    assert err.value.filename == str(target)


def _disk_full_at_second_fsync(monkeypatch) -> None:
    """The disk fills up when the second file written is flushed to it."""
    import errno

    import cytokit._io as io

    real, calls = io.os.fsync, []

    def fill_on_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(io.os, "fsync", fill_on_second)


def test_tables_replaced_together_are_never_a_mix_of_two_runs(tmp_path, monkeypatch):
    """`cytokit gate` wrote its tables one by one: a kill or a full disk between two left
    counts.csv of the new run beside failures.csv of the old one. They are now all
    written first and renamed together: a failure while writing leaves every old file."""
    import cytokit._io as io

    old = {tmp_path / n: f"old {n}\n".encode() for n in ("counts.csv", "failures.csv", "x.csv")}
    for path, data in old.items():
        path.write_bytes(data)
    new = {tmp_path / "counts.csv": b"new\n", tmp_path / "failures.csv": b"new\n"}
    _disk_full_at_second_fsync(monkeypatch)
    with pytest.raises(OSError) as err:
        io.replace_together({**new, tmp_path / "x.csv": None})
    assert err.value.filename == str(tmp_path / "failures.csv")
    assert {p: p.read_bytes() for p in old} == old  # nothing replaced, nothing removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", "failures.csv", "x.csv"]
    monkeypatch.undo()
    io.replace_together({**new, tmp_path / "x.csv": None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", "failures.csv"]
    assert all(p.read_bytes() == b"new\n" for p in new)
    # a dangling link into a folder that is gone: the same error as a single write gives
    link = tmp_path / "warnings.csv"
    link.symlink_to(tmp_path / "gone" / "warnings.csv")
    with pytest.raises(OutputError, match=r"warnings\.csv: is a symbolic link to"):
        io.replace_together({tmp_path / "counts.csv": b"newer\n", link: b"w\n"})
    assert not (tmp_path / "gone").exists() and (tmp_path / "counts.csv").read_bytes() == b"new\n"
    # a rename refused part-way names the table and leaves no temporary file
    real_replace, seen = io.os.replace, []

    def refuse_second(a, b):
        seen.append(b)
        if len(seen) == 2:
            raise PermissionError(13, "Permission denied", a)
        real_replace(a, b)

    monkeypatch.setattr(io.os, "replace", refuse_second)
    link.unlink()
    with pytest.raises(PermissionError) as err:
        io.replace_together({tmp_path / "counts.csv": b"3\n", tmp_path / "failures.csv": b"3\n"})
    assert err.value.filename == str(tmp_path / "failures.csv")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_gate_run_stopped_while_writing_its_tables_leaves_the_old_ones(tmp_path, monkeypatch):
    """A full disk while `gate_files` writes its tables leaves the earlier run's tables
    whole, not counts.csv of one run beside failures.csv of another."""
    from pathlib import Path

    from cytokit.engine.gate_files import gate_files

    data = Path(__file__).resolve().parents[1] / "sample_data"
    files = sorted(str(p) for p in (data / "fcs").glob("P01_*.fcs"))
    out = tmp_path / "g"
    gate_files(data / "strategy.yaml", files[:2], out, workers=1)
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    assert {"counts.csv", "statistics.csv", "failures.csv"} <= set(before)
    _disk_full_at_second_fsync(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        gate_files(data / "strategy.yaml", files, out, workers=1, statistics=False)
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before
