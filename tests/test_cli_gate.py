"""``cytokit gate`` and `GateTask`: tables, statistics, failures, resume after a kill, schedulers.

The acceptance test of batch gating, scaled down: 12 simulated files (20k
events) and one truncated file; the command killed (SIGKILL) part-way and
rerun gives the same tables as an uninterrupted run; serial, process-pool and
Dask LocalCluster runs give identical tables; the truncated file appears in
``failures.csv`` only. Statistics are checked against numpy on values
compensated independently of the gating core.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit import gating as G
from cytokit.cli.app import run
from cytokit.engine.gate_files import (
    COUNT_TABLE,
    STATISTICS_TABLE,
    GateTask,
    expand_files,
    gate_files,
    population_statistics,
)
from cytokit.simulate import benchmark_file

N_FILES, N_EVENTS = 12, 20_000
L = G.LogicleTransform()
FSC, FSCH, SSC = G.Dimension("FSC-A"), G.Dimension("FSC-H"), G.Dimension("SSC-A")


def fl(channel: str) -> G.Dimension:
    return G.Dimension(channel, compensation=G.FCS, transform=L)


def donor_strategy() -> G.GatingStrategy:
    """Lymphocytes → Singlets → Live → CD3 × CD56 quadrants, HLA-A2+ and donor NK (AND)."""
    cd3 = G.Divider("cd3", fl("APC-A"), (0.45,))
    cd56 = G.Divider("cd56", fl("PE-A"), (0.42,))
    quads = tuple(
        G.Quadrant(f"CD3{a}CD56{b}", (("cd3", i), ("cd56", j)))
        for a, i in (("+", 1.0), ("-", 0.0))
        for b, j in (("+", 1.0), ("-", 0.0))
    )
    return G.GatingStrategy(
        [
            G.RectangleGate(
                id="Lymphocytes", dims=(FSC, SSC), min=(28_000, None), max=(170_000, 42_000)
            ),
            G.PolygonGate(
                id="Singlets",
                parent="Lymphocytes",
                dims=(FSC, FSCH),
                vertices=((0, 0), (262_144, 0.78 * 262_144), (262_144, 262_144)),
            ),
            G.RectangleGate(
                id="Live", parent="Singlets", dims=(fl("PerCP-Cy5-5-A"),), max=(0.5,), min=(None,)
            ),
            G.QuadrantGate(id="Q", parent="Live", dividers=(cd3, cd56), quadrants=quads),
            G.RectangleGate(
                id="HLA",
                name="HLA-A2+",
                parent="Live",
                dims=(fl("FITC-A"),),
                min=(0.5,),
                max=(None,),
            ),
            G.BooleanGate(
                id="donorNK",
                name="donor NK",
                parent="Live",
                op="and",
                operands=("CD3-CD56+", "HLA"),
            ),
        ],
        name="donor cells",
    )


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """``fcs/`` with 12 simulated files and a truncated one; ``strategy.xml`` (Gating-ML)."""
    root = tmp_path_factory.mktemp("batch")
    fcs = root / "fcs"
    fcs.mkdir()
    for i in range(N_FILES):
        benchmark_file(fcs / f"S{i:02d}.fcs", n_events=N_EVENTS, seed=i, day=7 + i, workers=1)
    whole = (fcs / "S03.fcs").read_bytes()
    (fcs / "S03b_truncated.fcs").write_bytes(whole[: len(whole) * 2 // 3])
    donor_strategy().to_gatingml(root / "strategy.xml")
    return root


def csv_tables(out: Path) -> dict[str, bytes]:
    return {n: (out / f"{n}.csv").read_bytes() for n in ("counts", "statistics", "failures")}


def gate(args: list[str], capsys) -> tuple[int, str]:
    code = run(["gate", *map(str, args)])
    return code, capsys.readouterr().err


def test_gate_task_counts_and_statistics(batch):
    path = batch / "fcs" / "S01.fcs"
    strategy = G.load_strategy(batch / "strategy.xml")
    task = GateTask(strategy)
    payload = task(path)
    sample = cytokit.read_fcs(path)
    result = strategy.apply(sample)
    pd.testing.assert_frame_equal(payload["counts"], result.counts)
    assert payload["n_events"] == N_EVENTS and payload["warnings"] == []
    stats = payload["statistics"]
    assert stats.columns.tolist() == list(STATISTICS_TABLE[1:])
    spill = sample.spillover
    assert stats["channel"].unique().tolist() == list(spill.channels)
    # reference: compensation by solving with the spillover matrix directly, numpy statistics
    cols = [sample.channel_index(c) for c in spill.channels]
    raw = sample.events[:, cols].astype(np.float64)
    comp = np.linalg.solve(spill.matrix.T, raw.T).T  # comp @ S = raw
    for row in stats.itertuples():
        x = comp[result.membership(row.gate_id), spill.channels.index(row.channel)]
        assert row.count == x.size == result.count(row.gate_id)
        lo, hi = np.quantile(x, [0.1587, 0.8413])
        np.testing.assert_allclose(
            [row.mean, row.median, row.rcv],
            [x.mean(), np.median(x), 50 * (hi - lo) / np.median(x)],
            rtol=1e-9,
            atol=1e-9,
        )
    assert stats.loc[stats["channel"] == "PE-A", "marker"].iloc[0] == "CD56"
    # CD56 is far brighter on NK cells than on T cells
    med = {(r.gate_id, r.channel): r.median for r in stats.itertuples()}
    assert med["CD3-CD56+", "PE-A"] > 5 * med["CD3+CD56-", "PE-A"]


def test_gate_task_options_and_key(batch, tmp_path):
    strategy = G.load_strategy(batch / "strategy.xml")
    path = batch / "fcs" / "S02.fcs"
    sample = cytokit.read_fcs(path)
    base = GateTask(strategy)
    assert base.key == GateTask(G.load_strategy(batch / "strategy.xml")).key
    moved = tmp_path / "elsewhere.xml"
    moved.write_bytes((batch / "strategy.xml").read_bytes())
    assert GateTask(moved).key == base.key  # where the strategy is kept does not matter
    assert GateTask(moved).describe()["strategy_source"].endswith("elsewhere.xml")
    csv = tmp_path / "spill.csv"
    names = sample.spillover.channels
    lines = [",".join(["", *names])]
    lines += [
        ",".join([n, *map(repr, row.tolist())])
        for n, row in zip(names, sample.spillover.matrix, strict=True)
    ]
    csv.write_text("\n".join(lines[:1] + lines[1:][::-1]) + "\n")  # rows in another order
    from_csv = GateTask(strategy, compensation=csv)
    none = GateTask(strategy, compensation="none", statistics=False)
    keys = {base.key, from_csv.key, none.key, GateTask(strategy, seed=1).key}
    assert len(keys) == 4
    # the same matrix from a CSV gives the same counts and statistics as the file's keyword
    a, b = base(path), from_csv(path)
    pd.testing.assert_frame_equal(a["counts"], b["counts"])
    pd.testing.assert_frame_equal(a["statistics"], b["statistics"])
    c = none(path)
    assert "statistics" not in c
    assert not c["counts"]["count"].equals(a["counts"]["count"])
    uncomp = population_statistics(strategy.apply(sample, compensation=None))
    assert uncomp["channel"].tolist()[:8] == ["FITC-A", "PE-A", "PerCP-Cy5-5-A", "PE-Cy7-A",
                                              "APC-A", "APC-H7-A", "V500-C-A", "FITC-A"]  # fmt: skip
    lymph = sample.events[strategy.apply(sample).membership("Lymphocytes")]
    assert uncomp["median"].iloc[0] != a["statistics"]["median"].iloc[0]
    assert uncomp["mean"].iloc[0] == pytest.approx(lymph[:, 3].astype(np.float64).mean())


def test_expand_files(batch, tmp_path):
    fcs = batch / "fcs"
    everything = expand_files([fcs])
    assert len(everything) == N_FILES + 1 and everything == sorted(everything)
    assert expand_files([str(fcs / "S0[12].fcs"), fcs / "S01.fcs", "missing.fcs"]) == [
        str(fcs / "S01.fcs"),
        str(fcs / "S02.fcs"),
        "missing.fcs",
    ]
    with pytest.raises(cytokit.CytokitError, match=r"no \.fcs files"):
        expand_files([tmp_path])
    with pytest.raises(cytokit.CytokitError, match="no files match"):
        expand_files([str(tmp_path / "*.fcs")])
    # a weekly batch whose drop folder is empty this week: said, and the rest is gated
    left: list[str] = []
    got = expand_files([tmp_path, str(tmp_path / "*.fcs"), fcs / "S01.fcs"], left_out=left)
    assert got == [str(fcs / "S01.fcs")]
    assert left == [f"{tmp_path}: no .fcs files in this folder",
                    f"{tmp_path / '*.fcs'}: no files match this pattern"]  # fmt: skip
    with pytest.raises(cytokit.CytokitError, match="no files match"):
        expand_files([str(tmp_path / "*.fcs")], left_out=[])  # nothing at all: no batch


def _unlistable(monkeypatch, name: str) -> None:
    """Folders named `name` cannot be listed (as without read permission; chmod cannot
    keep root out, so the listing is refused here instead)."""
    scandir = os.scandir

    def refusing(path="."):
        if os.path.basename(os.path.normpath(os.fspath(path))) == name:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)


@pytest.fixture
def odd_folder(batch, tmp_path) -> Path:
    """A folder of one FCS file beside entries named ``*.fcs`` that are no regular file:
    a dangling link, a link loop, a FIFO, an empty folder ``x.fcs``; a folder ``y.fcs``
    holding a file, and a folder ``locked`` holding another."""
    folder = tmp_path / "drop"
    (folder / "x.fcs").mkdir(parents=True)
    (folder / "y.fcs").mkdir()
    (folder / "locked").mkdir()
    for target in ("S01.fcs", "y.fcs/S02.fcs", "locked/S04.fcs"):
        (folder / target).write_bytes((batch / "fcs" / Path(target).name).read_bytes())
    (folder / "dangling.fcs").symlink_to("nowhere.fcs")
    (folder / "loop_a.fcs").symlink_to("loop_b.fcs")
    (folder / "loop_b.fcs").symlink_to("loop_a.fcs")
    os.mkfifo(folder / "pipe.fcs")
    return folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_folder_leaves_out_nothing_without_a_word(odd_folder, monkeypatch):
    """Every entry named *.fcs is kept for the batch to fail with its reason, and a folder
    that cannot be listed is said: none is skipped in silence."""
    _unlistable(monkeypatch, "locked")
    left: list[str] = []
    got = expand_files([odd_folder], left_out=left)
    names = ["S01.fcs", "dangling.fcs", "loop_a.fcs", "loop_b.fcs", "pipe.fcs", "x.fcs"]
    assert got == sorted([*(str(odd_folder / n) for n in names), str(odd_folder / "y.fcs/S02.fcs")])
    said = (
        f"{odd_folder / 'locked'}: Permission denied; it cannot be listed, so no FCS file in it "
        "is gated: check its permissions"
    )
    assert left == [said]
    with pytest.raises(cytokit.CytokitError, match="locked: Permission denied"):
        expand_files([odd_folder])  # without left_out, what would be left out is an error
    # a pattern into the folder: left out alike, the rest gated, an error only when alone
    left = []
    got = expand_files([str(odd_folder / "locked" / "*.fcs"), odd_folder / "S01.fcs"], left)
    assert got == [str(odd_folder / "S01.fcs")] and left == [said]
    left = []
    assert expand_files([str(odd_folder / "**" / "S0*.fcs")], left) == [
        str(odd_folder / "S01.fcs"),
        str(odd_folder / "y.fcs/S02.fcs"),
    ]
    assert left == [said]
    with pytest.raises(cytokit.CytokitError, match="locked: Permission denied"):
        expand_files([str(odd_folder / "locked" / "*.fcs")], left_out=[])


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads a folder without r"
)
def test_a_folder_without_read_permission_is_said(batch, tmp_path):
    locked = tmp_path / "drop" / "locked"
    locked.mkdir(parents=True)
    (locked / "S02.fcs").write_bytes((batch / "fcs" / "S02.fcs").read_bytes())
    locked.chmod(0)
    try:
        left: list[str] = []
        assert expand_files([tmp_path / "drop", batch / "fcs" / "S01.fcs"], left) == [
            str(batch / "fcs" / "S01.fcs")
        ]
        assert left == [
            f"{locked}: Permission denied; it cannot be listed, so no FCS file in it is "
            "gated: check its permissions"
        ]
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_cli_gate_reports_every_fcs_entry_of_a_folder(
    batch, odd_folder, tmp_path, capsys, monkeypatch
):
    _unlistable(monkeypatch, "locked")
    out = tmp_path / "out"
    code, err = gate([batch / "strategy.xml", odd_folder, "--out", out, "-j", "1"], capsys)
    assert code == 0, err
    assert f"left out {odd_folder / 'locked'}: Permission denied;" in err
    assert "2 of 7 file(s) gated (0 from the store), 5 failed" in err
    failures = pd.read_csv(out / "failures.csv").set_index("file")["reason"]
    assert failures[str(odd_folder / "pipe.fcs")].startswith("it is a FIFO (named pipe)")
    assert failures[str(odd_folder / "x.fcs")].startswith("it is a directory")
    assert failures[str(odd_folder / "dangling.fcs")].startswith(
        "cannot open the file: No such file"
    )
    for loop in ("loop_a.fcs", "loop_b.fcs"):
        assert failures[str(odd_folder / loop)].startswith("cannot open the file: Too many")
    # a pattern into the folder that cannot be listed no longer stops the batch
    code, err = gate(
        [batch / "strategy.xml", str(odd_folder / "locked" / "*.fcs"), batch / "fcs" / "S01.fcs",
         "--out", tmp_path / "o2", "-j", "1"],
        capsys,
    )  # fmt: skip
    assert code == 0 and f"left out {odd_folder / 'locked'}: Permission denied;" in err
    assert "1 of 1 file(s) gated" in err


def test_cli_gate_tables_failures_and_rerun(batch, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = gate(
        [batch / "strategy.xml", batch / "fcs", "--out", out, "--scheduler", "serial"], capsys
    )
    assert code == 0, err
    assert "12 of 13 file(s) gated (0 from the store), 1 failed" in err
    counts = pd.read_csv(out / "counts.csv")
    assert counts.columns.tolist() == list(COUNT_TABLE)
    assert counts["file"].nunique() == N_FILES and len(counts) == N_FILES * 9
    assert not counts["file"].str.contains("truncated").any()
    stats = pd.read_csv(out / "statistics.csv")
    assert len(stats) == N_FILES * 9 * 7 and not stats["file"].str.contains("truncated").any()
    failures = pd.read_csv(out / "failures.csv")
    assert failures["file"].tolist() == [str(batch / "fcs" / "S03b_truncated.fcs")]
    assert failures["stage"].tolist() == ["read"]
    assert failures["reason"].iloc[0].startswith("the DATA segment")  # the path is beside it
    assert "truncated" in failures["reason"].iloc[0]
    # the counts are those of gating each file directly
    strategy = G.load_strategy(batch / "strategy.xml")
    one = counts[counts["file"].str.endswith("S05.fcs")].reset_index(drop=True)
    want = strategy.apply(cytokit.read_fcs(batch / "fcs" / "S05.fcs")).counts
    assert one["count"].tolist() == want["count"].tolist()
    np.testing.assert_allclose(one["pct_parent"], want["pct_parent"], rtol=1e-15)
    before = csv_tables(out)
    code, err = gate([batch / "strategy.xml", batch / "fcs", "--out", out], capsys)
    assert code == 0 and "(12 from the store), 1 failed" in err
    assert csv_tables(out) == before
    runs = sqlite3.connect(out / "results.sqlite").execute("SELECT status FROM runs").fetchall()
    assert runs == [("finished",), ("finished",)]


def test_cli_gate_errors(batch, tmp_path, capsys):
    code, err = gate([tmp_path / "nope.xml", batch / "fcs", "--out", tmp_path / "o"], capsys)
    assert code == 1 and "strategy file not found" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = gate([batch / "strategy.xml", empty, "--out", tmp_path / "o"], capsys)
    assert code == 1 and "no .fcs files" in err
    one = batch / "fcs" / "S01.fcs"
    code, err = gate([batch / "strategy.xml", empty, one, "--out", tmp_path / "o1"], capsys)
    assert code == 0 and f"left out {empty}: no .fcs files in this folder" in err
    assert pd.read_csv(tmp_path / "o1" / "counts.csv")["file"].unique().tolist() == [str(one)]
    # a file named that is not there: its failure says the fix too
    code, err = gate(
        [batch / "strategy.xml", one, tmp_path / "nope.fcs", "--out", tmp_path / "o2"], capsys
    )
    reason = pd.read_csv(tmp_path / "o2" / "failures.csv")["reason"].tolist()
    assert reason == ["cannot open the file: No such file or directory; check the path (or "
                      "copy the file in) and run again"]  # fmt: skip
    code, err = gate(
        [batch / "strategy.xml", batch / "fcs" / "S03b_truncated.fcs", "--out", tmp_path / "o"],
        capsys,
    )
    assert code == 1 and "none of the 1 file(s) could be gated" in err
    code, err = gate(
        [batch / "strategy.xml", batch / "fcs", "-o", tmp_path / "o", "--compensation", "x.csv"],
        capsys,
    )
    assert code == 1 and "x.csv" in err
    code, _ = gate([batch / "strategy.xml", batch / "fcs", "-o", tmp_path / "o", "-j", "0"], capsys)
    assert code == 2


@pytest.mark.slow
def test_schedulers_give_identical_tables(batch, tmp_path):
    distributed = pytest.importorskip("distributed")
    files = expand_files([batch / "fcs"])
    strategy = batch / "strategy.xml"
    runs = {
        "serial": gate_files(strategy, files, tmp_path / "serial", scheduler="serial"),
        "processes": gate_files(strategy, files, tmp_path / "processes", workers=2),
    }
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        runs["dask"] = gate_files(
            strategy, files, tmp_path / "dask", scheduler=cluster.scheduler_address
        )
    assert runs["dask"].report.scheduler == "dask"
    want = csv_tables(tmp_path / "serial")
    for name in ("processes", "dask"):
        assert csv_tables(tmp_path / name) == want, name
        pd.testing.assert_frame_equal(runs[name].counts, runs["serial"].counts)
        pd.testing.assert_frame_equal(runs[name].statistics, runs["serial"].statistics)
    assert runs["serial"].n_events == N_FILES * N_EVENTS


def test_a_cold_cache_gates_the_first_file_here_with_the_same_tables(batch, tmp_path, monkeypatch):
    """On a cold Numba cache the first file is gated in this process before the workers
    start (so that they load the kernels instead of each compiling them): the tables are
    those of a plain run, and the file counts as gated by this run, not from the store."""
    import cytokit.engine.gate_files as gf

    files = expand_files([batch / "fcs"])
    strategy = batch / "strategy.xml"
    plain = gate_files(strategy, files, tmp_path / "plain", workers=2)
    seen = []
    monkeypatch.setattr(gf, "_compile_first", lambda *a: seen.append(a) or True)
    cold = gate_files(strategy, files, tmp_path / "cold", workers=2)
    assert seen and csv_tables(tmp_path / "cold") == csv_tables(tmp_path / "plain")
    assert cold.report.n_cached == 0 and len(cold.report.done) == len(plain.report.done)
    first = next(f for f in cold.report.files if f.path == files[0])
    assert not first.cached and first.seconds > 0
    monkeypatch.undo()
    # warm (as here, after the runs above), or one worker: no first run of its own
    assert not gf._compile_first(files, 2, None, True)
    assert not gf._compile_first(files, 1, None, True)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="process groups and SIGKILL")
def test_killed_command_resumes_to_the_same_tables(batch, tmp_path, capsys):
    strategy, files = batch / "strategy.xml", batch / "fcs"
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "cytokit.cli.app", "gate", str(strategy), str(files)]
    for _ in range(5):  # the batch is quick: kill it as soon as one file is stored
        proc = subprocess.Popen(
            [*command, "--out", str(killed), "-j", "2"],
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        stored = 0
        while proc.poll() is None and stored == 0:
            time.sleep(0.01)
            try:
                with sqlite3.connect(f"file:{killed / 'results.sqlite'}?mode=ro", uri=True) as db:
                    stored = db.execute("SELECT count(*) FROM results").fetchone()[0]
            except sqlite3.Error:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers, as a crash would
            proc.wait()
            break
        proc.wait()
        for p in killed.iterdir():
            p.unlink()
    else:
        pytest.skip("the batch always finished before it could be killed")
    assert not (killed / "counts.csv").exists()
    with sqlite3.connect(killed / "results.sqlite") as db:
        done = db.execute("SELECT count(*) FROM results").fetchone()[0]
        assert db.execute("SELECT status FROM runs").fetchall() == [("running",)]
    assert 1 <= done < N_FILES
    code, err = gate([strategy, files, "--out", killed, "-j", "2"], capsys)
    assert code == 0 and f"({done} from the store)" in err
    clean = tmp_path / "clean"
    assert gate([strategy, files, "--out", clean, "--scheduler", "serial"], capsys)[0] == 0
    assert csv_tables(killed) == csv_tables(clean)
    assert pd.read_csv(killed / "failures.csv")["file"].str.endswith("truncated.fcs").all()


def test_a_file_of_several_data_sets_says_only_its_first_was_gated(tmp_path, capsys):
    """coulter.lmd holds two data sets; gate read the first and said nothing (a Guava
    file's first data set can be a 108-event calibration run)."""
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    lmd = corpus / "flowkit" / "data" / "multi_dataset_fcs" / "coulter.lmd"
    if not lmd.is_file():
        pytest.skip(f"corpus file not found: {lmd}")
    (tmp_path / "s.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<gating:Gating-ML '
        'xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
        'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">'
        '<gating:RectangleGate gating:id="FL1pos"><gating:dimension '
        'gating:compensation-ref="uncompensated" gating:min="10"><data-type:fcs-dimension '
        'data-type:name="FL1 Log" /></gating:dimension></gating:RectangleGate></gating:Gating-ML>'
    )
    code, err = gate([tmp_path / "s.xml", lmd, "--out", tmp_path / "out", "-j", "1"], capsys)
    assert code == 0, err
    warned = pd.read_csv(tmp_path / "out" / "warnings.csv")
    assert (
        warned["warning"]
        .str.startswith("the file holds more than one data set and only the first was read")
        .any()
    )
    first = cytokit.read_fcs(lmd, dataset=0)
    counts = pd.read_csv(tmp_path / "out" / "counts.csv")
    expected = int((first.events[:, first.channel_index("FL1 Log")] >= 10).sum())
    assert counts.loc[counts["gate_id"] == "FL1pos", "count"].tolist() == [expected]


def test_gate_says_when_it_compiles_the_kernels(batch, tmp_path, capsys, monkeypatch):
    """A first `cytokit gate` on a machine spent half a minute compiling without a word,
    where analyze and demo said so; it says so too (a cold cache simulated here)."""
    import cytokit.analysis.run as analysis_run

    monkeypatch.setattr(analysis_run, "kernels_need_compiling", lambda **_: True)
    files = sorted((batch / "fcs").glob("S01*.fcs"))
    code, err = gate([batch / "strategy.xml", *files, "--out", tmp_path / "out", "-j", "1"], capsys)
    assert code == 0, err
    assert err.startswith("compiling the kernels this run needs, once per installation")


@pytest.mark.parametrize("stats", [True, False])
def test_gate_says_so_when_only_its_statistics_pass_is_not_compiled(
    batch, tmp_path, capsys, monkeypatch, stats
):
    """After a first `analyze` (or demo) compiled the gating kernels, a first `cytokit gate`
    still spent some 20 s compiling the statistics pass without a word."""
    from cytokit.kernels import _config, _statpass

    cached = _config.is_cached
    monkeypatch.setattr(_config, "is_cached", lambda d: d is not _statpass._pass and cached(d))
    files = sorted((batch / "fcs").glob("S01*.fcs"))
    more = [] if stats else ["--no-stats"]
    args = [batch / "strategy.xml", *files, "--out", tmp_path / "out", "-j", "1", *more]
    code, err = gate(args, capsys)
    assert code == 0, err
    assert err.startswith("compiling the kernels") == stats, err


def test_a_copy_of_a_file_under_another_name_is_warned_about(batch, tmp_path, capsys):
    """Two names of the same bytes were both counted without a word (analyze refuses it)."""
    import shutil

    one = batch / "fcs" / "S01.fcs"
    copy = tmp_path / "S01_copy.fcs"
    shutil.copyfile(one, copy)
    code, err = gate([batch / "strategy.xml", one, copy, "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    warned = pd.read_csv(tmp_path / "out" / "warnings.csv")
    said = warned.loc[warned["file"] == str(copy), "warning"].tolist()
    assert said == [f"holds the same bytes as {one}: both are counted; leave one out if they "
                    "are one sample"]  # fmt: skip
    assert pd.read_csv(tmp_path / "out" / "counts.csv")["file"].nunique() == 2
