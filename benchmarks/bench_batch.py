"""Benchmark: ``cytokit gate`` on a batch of simulated files — throughput, memory, kill and resume.

Usage::

    python benchmarks/bench_batch.py                          # 200 files x 1M events, 2 workers
    python benchmarks/bench_batch.py --files 24 --events 200000
    python benchmarks/bench_batch.py --no-dask --no-kill      # throughput only

The files are written once into ``benchmarks/_data/batch-<files>x<events>/``
(kept for later runs; ``--clean`` deletes them afterwards) by the project's
simulator (an NK patient, one seed and sampling day per file, float32 FCS 3.1
with ``$SPILLOVER``); one file in the middle is replaced by a truncated copy
of its neighbour, so the batch holds one corrupt file. The strategy is the
lab's donor tree as Gating-ML (Lymphocytes → Singlets → Live → CD3 × CD56
quadrants, HLA-A2+, donor NK = CD3−CD56+ AND HLA-A2+: 9 populations; 7
compensated, logicle-transformed fluorescence dimensions).

Runs, each ``cytokit gate`` as a subprocess into its own output folder:

1. **uninterrupted** with ``--workers`` processes: wall time, files/s,
   events/s; memory of the command's process tree (the coordinator, the fork
   server and the workers), sampled every 50 ms: the largest sum of RSS seen
   and each process's own peak (``VmHWM``);
2. **killed and resumed**: the same command, its whole process group killed
   with SIGKILL once half the files are stored, then run again; its tables
   must equal run 1's byte for byte;
3. **Dask**: a ``LocalCluster`` (``--workers`` single-threaded worker
   processes) started here, the command run with ``--scheduler tcp://…``;
   tables identical to run 1;
4. **counts only** (``--no-stats``) for the cost of the statistics;
5. **one process** (``--workers 1``) on the first ``--serial-files`` files,
   for the same-run parallel speed-up.

The corrupt file must appear in ``failures.csv`` and nowhere else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "_data"
TABLES = ("counts.csv", "statistics.csv", "failures.csv")
FILE_BYTES_PER_EVENT = 44  # 11 float32 channels


def donor_strategy():
    from cytokit import gating as G

    logicle = G.LogicleTransform()

    def fl(channel: str) -> G.Dimension:
        return G.Dimension(channel, compensation=G.FCS, transform=logicle)

    fsc, fsch, ssc = G.Dimension("FSC-A"), G.Dimension("FSC-H"), G.Dimension("SSC-A")
    cd3 = G.Divider("cd3", fl("APC-A"), (0.45,))
    cd56 = G.Divider("cd56", fl("PE-A"), (0.42,))
    quads = tuple(
        G.Quadrant(f"CD3{a}CD56{b}", (("cd3", i), ("cd56", j)))
        for a, i in (("+", 1.0), ("-", 0.0))
        for b, j in (("+", 1.0), ("-", 0.0))
    )
    gates = [
        G.RectangleGate(
            id="Lymphocytes", dims=(fsc, ssc), min=(28_000, None), max=(170_000, 42_000)
        ),
        G.PolygonGate(
            id="Singlets",
            parent="Lymphocytes",
            dims=(fsc, fsch),
            vertices=((0, 0), (262_144, 0.78 * 262_144), (262_144, 262_144)),
        ),
        G.RectangleGate(
            id="Live", parent="Singlets", dims=(fl("PerCP-Cy5-5-A"),), min=(None,), max=(0.5,)
        ),
        G.QuadrantGate(id="Q", parent="Live", dividers=(cd3, cd56), quadrants=quads),
        G.RectangleGate(
            id="HLA", name="HLA-A2+", parent="Live", dims=(fl("FITC-A"),), min=(0.5,), max=(None,)
        ),
        G.BooleanGate(
            id="donorNK", name="donor NK", parent="Live", op="and", operands=("CD3-CD56+", "HLA")
        ),
    ]
    return G.GatingStrategy(gates, name="donor cells")


# --- data ---------------------------------------------------------------------------------------


def make_data(n_files: int, n_events: int) -> tuple[Path, Path, str]:
    """The batch folder, the strategy file and the corrupt file's name (written once)."""
    from cytokit.simulate import benchmark_file

    folder = DATA_DIR / f"batch-{n_files}x{n_events}"
    done = folder / ".complete"
    bad = f"S{n_files // 2:04d}.fcs"
    if not done.exists():
        need = n_files * (n_events * FILE_BYTES_PER_EVENT + 4096) * 1.1
        free = shutil.disk_usage(DATA_DIR.parent).free
        if need > free:
            sys.exit(
                f"not enough disk space: {n_files} files of {n_events} events need "
                f"~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free; use --files/--events"
            )
        (folder / "fcs").mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        for i in range(n_files):
            path = folder / "fcs" / f"S{i:04d}.fcs"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                benchmark_file(tmp, n_events=n_events, seed=1000 + i, day=3 + i % 60)
                tmp.replace(path)
            if i % 20 == 19:
                print(f"  wrote {i + 1}/{n_files} files ({time.perf_counter() - t0:.0f} s)")
        neighbour = (folder / "fcs" / f"S{n_files // 2 - 1:04d}.fcs").read_bytes()
        (folder / "fcs" / bad).write_bytes(neighbour[: len(neighbour) * 2 // 3])
        donor_strategy().to_gatingml(folder / "strategy.xml")
        done.write_text("ok\n")
    return folder / "fcs", folder / "strategy.xml", bad


# --- memory of a process tree --------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


class TreeMemory:
    """Samples the RSS of a process and all its descendants until stopped."""

    def __init__(self, roots: list[int], interval: float = 0.05) -> None:
        self.roots, self.interval = roots, interval
        self.peak_sum = 0
        self.hwm: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            kids = _children()
            todo, seen = list(self.roots), set()
            while todo:
                p = todo.pop()
                if p not in seen:
                    seen.add(p)
                    todo.extend(kids.get(p, []))
            total = 0
            for p in seen:
                st = _status(p)
                total += st.get("VmRSS", 0)
                self.hwm[p] = max(self.hwm.get(p, 0), st.get("VmHWM", 0))
            self.peak_sum = max(self.peak_sum, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        top = sorted(self.hwm.values(), reverse=True)
        return (
            f"peak sum of RSS {self.peak_sum / 2**20:,.0f} MiB; per-process peaks (VmHWM) "
            + ", ".join(f"{v / 2**20:,.0f}" for v in top[:6])
            + f" MiB (sum {sum(top) / 2**20:,.0f} MiB over {len(top)} processes)"
        )


# --- runs -----------------------------------------------------------------------------------------


def gate_command(strategy: Path, files: list[str], out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cytokit.cli.app", "gate", str(strategy), *files,
            "--out", str(out), *extra]  # fmt: skip


def run_timed(command: list[str], label: str, roots_extra=()) -> tuple[float, str, TreeMemory]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    with TreeMemory([proc.pid, *roots_extra]) as mem:
        _, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{label}: exit code {proc.returncode}\n{err}")
    summary = [ln for ln in err.splitlines() if "file(s) gated" in ln]
    return wall, summary[-1] if summary else err.strip(), mem


def stored(out: Path) -> int:
    try:
        with sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial-files", type=int, default=20)
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--clean", action="store_true", help="delete the files afterwards")
    args = ap.parse_args()

    print(f"data: {args.files} files x {args.events:,} events")
    fcs, strategy, bad = make_data(args.files, args.events)
    files = [str(fcs)]
    n_good = args.files - 1
    events = n_good * args.events
    runs = DATA_DIR / "batch-runs"
    shutil.rmtree(runs, ignore_errors=True)
    j = ["--workers", str(args.workers)]
    results = []

    def report(label: str, wall: float, line: str, mem: TreeMemory | None, n: int) -> None:
        rate = f"{n / wall:.2f} files/s, {n * args.events / wall / 1e6:.2f} M events/s"
        print(f"\n{label}: {wall:.1f} s wall, {rate}\n  {line}")
        if mem is not None:
            print(f"  {mem.summary()}")
        results.append((label, wall, n))

    # 1. uninterrupted
    base = runs / "uninterrupted"
    wall, line, mem = run_timed(gate_command(strategy, files, base, *j), "uninterrupted")
    report(f"uninterrupted, {args.workers} worker processes", wall, line, mem, n_good)
    want = tables(base)
    failures = want["failures.csv"].decode().splitlines()
    assert len(failures) == 2 and bad in failures[1], failures
    for name in ("counts.csv", "statistics.csv"):
        assert bad.encode() not in want[name], f"{bad} in {name}"
    print(f"  failures.csv: {failures[1][:160]}")

    # 2. killed half-way, resumed
    if not args.no_kill:
        out = runs / "killed"
        proc = subprocess.Popen(gate_command(strategy, files, out, *j),
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        t0 = time.perf_counter()
        while proc.poll() is None and stored(out) < n_good // 2:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = stored(out)
        print(f"\nkilled (SIGKILL to the process group) after {time.perf_counter() - t0:.1f} s "
              f"with {at_kill} files stored")  # fmt: skip
        wall, line, mem = run_timed(gate_command(strategy, files, out, *j), "resumed")
        report("resumed after the kill", wall, line, mem, n_good - at_kill)
        same = tables(out) == want
        print(f"  tables identical to the uninterrupted run: {same}")
        assert same

    # 3. Dask LocalCluster
    if not args.no_dask:
        from distributed import LocalCluster

        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:  # fmt: skip
            out = runs / "dask"
            workers = [p for p in _children().get(os.getpid(), [])]
            cmd = gate_command(strategy, files, out, "--scheduler", cluster.scheduler_address)
            wall, line, mem = run_timed(cmd, "dask", roots_extra=workers)
        report(
            f"Dask LocalCluster, {args.workers} single-threaded workers", wall, line, mem, n_good
        )
        same = tables(out) == want
        print(f"  tables identical to the uninterrupted run: {same}")
        assert same

    # 4. counts only
    out = runs / "no-stats"
    wall, line, mem = run_timed(gate_command(strategy, files, out, *j, "--no-stats"), "no-stats")
    report("counts only (--no-stats)", wall, line, mem, n_good)
    counts_same = (out / "counts.csv").read_bytes() == want["counts.csv"]
    print(f"  counts.csv identical: {counts_same}")
    assert counts_same

    # 5. one process on the first files, and the same files with the workers
    if args.serial_files:
        some = sorted(str(p) for p in fcs.glob("*.fcs") if p.name != bad)[: args.serial_files]
        one, _, _ = run_timed(gate_command(strategy, some, runs / "one", "--workers", "1"), "one")
        par, _, _ = run_timed(gate_command(strategy, some, runs / "par", *j), "par")
        print(f"\n{len(some)} files: 1 process {one:.1f} s, {args.workers} processes {par:.1f} s: "
              f"speed-up {one / par:.2f}x (includes start-up)")  # fmt: skip

    print(f"\n{events / 1e6:,.0f} M events in {n_good} good files + 1 corrupt; "
          f"input {sum(p.stat().st_size for p in fcs.glob('*.fcs')) / 2**30:.2f} GiB")  # fmt: skip
    if args.clean:
        shutil.rmtree(fcs.parent)
    shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
