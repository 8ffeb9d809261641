"""A 1,000-file study through ``cytokit analyze``: throughput, where the time goes, peak memory, Dask.

The study: ``--patients`` × ``--visits`` files of ``--events`` events
(default 100 × 10 × 200,000 = 200 M events, ~8.8 GB). Simulating every file
would take longer than analysing them, so ``--sources`` patients (default 5,
so 50 distinct files) are simulated (`cytokit.simulate`, ``sample`` preset,
drift on) and each of the study's patients gets the visits of one of them:
patient ``S017``'s files are copies of source patient ``017 mod 5``'s. Each
copy gets another ``$FIL`` value of the same length (so the copies are
different files, as `analyze` refuses two manifest rows with the same
content; the events and every other keyword are the source's). Per-patient
tables of two patients with the same source are then equal; the work of the
run is that of 1,000 files.

Then ``cytokit analyze STUDY --out OUT --no-report`` runs in a fresh process
(2 local worker processes unless ``--workers``), after one small run that
puts the kernels in Numba's cache (compiling is not what this measures). A
sampler thread sums the resident memory (RSS) of the process and all its
children every 0.1 s (psutil, else ``/proc``). The analyze process is a
small wrapper that times its phases (wall clock, with the 1-min load average
at the end of each): hashing every file, the in-process first file, pass 1
(every file read, gated and measured on the workers; results written to the
store by the coordinator), the per-patient and cohort tables, clustering
(training on the stored subsamples, and pass 2, mapping every stored event),
writing the tables. Pass 1 is split per file afterwards on a few files in
this process (read, per-sample task, encoding the payload), with the store
writes the coordinator timed.

With ``--dask`` the same study is analysed again on a Dask ``LocalCluster``
(2 worker processes × 1 thread; ``--scheduler tcp://...``) and every table
is compared byte for byte with the local run's.

With ``--study DIR`` an existing study folder is analysed instead (kept; the
event count is the sum of ``samples.csv``'s ``events``): run the script with
two installations' interpreters in turn to compare them on the same files.

Usage::

    python benchmarks/bench_scale.py                               # 100 x 10 x 200,000, + Dask
    python benchmarks/bench_scale.py --patients 10 --visits 5 --events 50000 --sources 2
    python benchmarks/bench_scale.py --no-dask --keep /scratch/scale  # keep the study folder
    python benchmarks/bench_scale.py --study S --no-dask            # an existing study

The study folder is deleted at the end unless ``--keep`` names where to put it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DAYS = (-7, 3, 7, 14, 21, 28, 42, 56, 90, 180)

# The analyze process: phases timed by wrapping the functions `analyze` calls.
WRAPPER = r"""
import json, os, sys, time, threading
PHASES = []
def _wrap(module, name, label):
    import importlib
    mod = importlib.import_module(module)
    fn = getattr(mod, name)
    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            t1 = time.perf_counter()
            PHASES.append({"phase": label, "start": t0 - T0, "end": t1 - T0, "load": os.getloadavg()[0]})
    setattr(mod, name, timed)
    return timed
STORE = {"put_result": 0.0, "n": 0}
def _store_timer():
    from cytokit.engine.store import RunStore
    put = RunStore.put_result
    def timed(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return put(self, *a, **k)
        finally:
            STORE["put_result"] += time.perf_counter() - t0
            STORE["n"] += 1
    RunStore.put_result = timed
if __name__ == "__main__":
    T0 = time.perf_counter()
    import atexit
    out = os.environ["BENCH_PHASES_OUT"]
    atexit.register(lambda: open(out, "w").write(json.dumps({"phases": PHASES, "store": STORE, "total": time.perf_counter() - T0, "t0_unix": time.time() - (time.perf_counter() - T0)})))
    import cytokit.engine.runner
    _wrap("cytokit.engine.runner", "hash_files", "hash")
    _wrap("cytokit.engine.runner", "run_batch", "batch")
    _wrap("cytokit.analysis.run", "study_tables", "tables")
    _wrap("cytokit.analysis.run", "write_results", "write")
    _wrap("cytokit.analysis.cohort", "cluster_stored_events", "clustering")
    _wrap("cytokit.cluster.study", "_map_events", "pass 2")
    _store_timer()
    from cytokit.cli.app import main
    sys.argv = ["cytokit", *sys.argv[1:]]
    main()
"""


# --- building the study -------------------------------------------------------------------------


def build_study(where: Path, args) -> tuple[Path, int]:
    from cytokit.simulate import preset_design, simulate_study

    src = where / "sources"
    t0 = time.perf_counter()
    design = preset_design(
        "sample", seed=args.seed, n_patients=args.sources, n_events=args.events,
        days=DAYS[: args.visits],
    )  # fmt: skip
    simulate_study(src, design)
    t_sim = time.perf_counter() - t0
    manifest = pd.read_csv(src / "manifest.csv", dtype={"patient": str})
    sources = sorted(manifest.patient.unique())
    study = where / "study"
    (study / "fcs").mkdir(parents=True)
    for name in ("study.toml", "strategy.yaml"):
        shutil.copy(src / name, study / name)
    rows, extra = [], {}
    for name in ("infusions.csv", "treatments.csv", "outcomes.csv"):
        if (src / name).is_file():
            extra[name] = (pd.read_csv(src / name, dtype={"patient": str}), [])
    t0 = time.perf_counter()
    n_bytes = 0
    for p in range(args.patients):
        source = sources[p % len(sources)]
        patient = f"S{p:03d}"
        for v, row in enumerate(manifest[manifest.patient == source].itertuples(index=False)):
            data = (src / row.file).read_bytes()
            name = f"{patient}_{Path(row.file).name.split('_', 1)[1]}"
            (study / "fcs" / name).write_bytes(_retag(data, f"c{p:03d}v{v:02d}"))
            n_bytes += len(data)
            rows.append({**row._asdict(), "file": f"fcs/{name}", "patient": patient})
        for table, out in extra.values():
            out.append(table[table.patient == source].assign(patient=patient))
    pd.DataFrame(rows).to_csv(study / "manifest.csv", index=False)
    for name, (_, parts) in extra.items():
        pd.concat(parts).to_csv(study / name, index=False)
    shutil.rmtree(src)
    print(
        f"study: {args.patients} patients x {args.visits} visits = {len(rows)} files of "
        f"{args.events:,} events ({n_bytes / 2**30:.2f} GiB); {args.sources * args.visits} "
        f"distinct files simulated in {t_sim:.0f} s, the others copies of them with another "
        f"$FIL (written in {time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    return study, len(rows) * args.events


def _retag(data: bytes, tag: str) -> bytes:
    """`data` (an FCS file) with its ``$FIL`` value replaced by `tag`, padded to the same length."""
    text_end = int(data[18:26])
    delim = data[58:59]
    key = delim + b"$FIL" + delim
    i = data.index(key, 58, text_end + 1) + len(key)
    j = data.index(delim, i)
    if j - i < len(tag):
        raise ValueError(f"$FIL value {data[i:j]!r} is shorter than the tag {tag!r}")
    return data[:i] + tag.encode().ljust(j - i, b"_") + data[j:]


# --- memory of a process tree -------------------------------------------------------------------


def _tree_rss(pids: list[int]) -> int:
    try:
        import psutil
    except ImportError:
        psutil = None
    total = 0
    seen: set[int] = set()
    for pid in pids:
        if psutil is not None:
            try:
                procs = [psutil.Process(pid)]
                procs += procs[0].children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        else:
            total += _proc_tree_rss(pid, seen)
    return total


def _proc_tree_rss(pid: int, seen: set[int]) -> int:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


class Sampler(threading.Thread):
    def __init__(self, pids: list[int], every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time(), _tree_rss(self.pids)))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, t0: float | None = None, t1: float | None = None) -> int:
        vals = [r for t, r in self.samples if (t0 is None or t >= t0) and (t1 is None or t <= t1)]
        return max(vals, default=0)


# --- running analyze ----------------------------------------------------------------------------


def run_analyze(study: Path, out: Path, where: Path, args, scheduler: str | None, extra_pids=()):
    wrapper = where / "phases_wrapper.py"
    wrapper.write_text(WRAPPER)
    phases_out = where / f"phases-{out.name}.json"
    cmd = [sys.executable, str(wrapper), "analyze", str(study), "--out", str(out), "--no-report"]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    else:
        cmd += ["--workers", str(args.workers)]
    env = {**os.environ, "BENCH_PHASES_OUT": str(phases_out)}
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler([proc.pid, *extra_pids])
    sampler.start()
    _, stderr = proc.communicate()
    sampler.stop()
    wall = time.time() - t0
    if proc.returncode:
        sys.exit(f"analyze failed ({proc.returncode}):\n{stderr[-4000:]}")
    info = json.loads(phases_out.read_text())
    info["wall"] = wall
    info["stderr"] = stderr
    base = info["t0_unix"]
    for ph in info["phases"]:
        ph["peak_rss"] = sampler.peak(base + ph["start"], base + ph["end"])
    info["peak_rss"] = sampler.peak()
    return info


def report(info: dict, n_events: int, n_files: int, label: str, workers: int) -> float:
    ph = info["phases"]
    batches = [p for p in ph if p["phase"] == "batch"]
    pass1 = batches[-1]
    first = batches[0] if len(batches) > 1 else None
    dur = {p["phase"]: p["end"] - p["start"] for p in ph}
    p1 = pass1["end"] - pass1["start"]
    n1 = n_events - (n_events // n_files if first else 0)
    rate = n1 / p1
    print(f"\n{label}: analyze wall {info['wall']:.1f} s, peak RSS of the process tree "
          f"{info['peak_rss'] / 2**20:,.0f} MiB")  # fmt: skip
    print("| phase | wall (s) | events/s | load at end | peak RSS (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    tables = dur.get("tables", 0.0)
    clustering = dur.get("clustering", 0.0)
    pass2 = dur.get("pass 2", 0.0)
    for p in ph:
        d = p["end"] - p["start"]
        name = p["phase"]
        ev = ""
        if p is pass1:
            name = f"pass 1 ({n_files - (1 if first else 0)} files on {workers} workers)"
            ev = f"{rate / 1e6:.2f} M ({rate / 1e6 / workers:.2f} M per core)"
        elif p is first:
            name = "first file, in process (kernels from the cache)"
        elif name == "hash":
            ev = f"{n_events / d / 1e6:.1f} M"
        elif name == "tables":
            name = "tables (per patient, cohort, clustering below)"
        elif name == "clustering":
            name = f"  clustering: training + pass 2 ({clustering - pass2:.1f} s without it)"
        elif name == "pass 2":
            name = "  pass 2: every stored event mapped"
        print(f"| {name} | {d:.1f} | {ev} | {p['load']:.1f} | {p['peak_rss'] / 2**20:,.0f} |")
    store = info["store"]
    print(f"store writes by the coordinator (in pass 1): {store['put_result']:.1f} s for "
          f"{store['n']} files; per-patient and cohort tables without clustering: "
          f"{tables - clustering:.1f} s")  # fmt: skip
    return rate


def _cpu() -> float:
    """CPU time of this process so far (user + system, all its threads), seconds."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_file_split(study: Path, n: int) -> None:
    """Pass 1's work per file, in this process: read, the rest of the task, encoding."""
    from cytokit import read_fcs
    from cytokit.analysis.run import make_task
    from cytokit.engine.store import encode_payload
    from cytokit.study import load_study

    st = load_study(study)
    task = make_task(st)
    files = [r.file for r in st.rows][:n]
    task(files[0])  # warm: kernels loaded
    t_read, t_task, t_enc, c_task = [], [], [], []
    for f in files[1:]:
        t0 = time.perf_counter()
        read_fcs(f)
        t1 = time.perf_counter()
        c1 = _cpu()
        payload = task(f)
        c_task.append(_cpu() - c1)
        t2 = time.perf_counter()
        encode_payload(payload)
        t3 = time.perf_counter()
        t_read.append(t1 - t0)
        t_task.append(t2 - t1)
        t_enc.append(t3 - t2)
    r, t, e, c = (float(np.median(x)) * 1e3 for x in (t_read, t_task, t_enc, c_task))
    print(
        f"\nper file, one process, median of {len(files) - 1} files (load {os.getloadavg()[0]:.1f}): "
        f"read_fcs {r:.1f} ms; the whole per-sample task (its own read included) {t:.1f} ms "
        f"({c:.1f} ms CPU, every thread of the process), so measuring ~{t - r:.1f} ms; "
        f"encoding the payload {e:.1f} ms"
    )
    # where the task's time goes: cumulative time of its steps under cProfile (shares only:
    # the profiler slows Python-level code more than the kernels)
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for f in files[1:]:
        task(f)
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(tt for (_, _, _), (_, _, tt, _, _) in stats.items())
    steps = [
        ("read_fcs", "fcs/reader.py", "read_fcs"),
        ("acquisition QC screen", "qc/apply.py", "screen"),
        ("non-finite screen", "finite.py", "drop_nonfinite"),
        ("strategy.apply", "gating/strategy.py", "apply"),
        ("  adaptive gates fitted (in apply)", "gating/strategy.py", "_fit"),
        ("  fused pass (evaluate_plan, all calls)", "kernels/fused.py", "evaluate_plan"),
        ("marker values (strategy.values)", "gating/strategy.py", "values"),
        ("gate points for QC plots", "analysis/qcdata.py", "gate_points"),
        ("donor items", "analysis/per_sample.py", "_donor_items"),
        ("phenotype items", "analysis/per_sample.py", "_phenotype_items"),
        ("clustering subsample", "analysis/per_sample.py", "_cluster_items"),
    ]
    print(f"| step (cProfile, {len(files) - 1} files) | share of the task |")
    print("| --- | --- |")
    for label, where, name in steps:
        ct = sum(v[3] for (fn, _, func), v in stats.items() if func == name and fn.endswith(where))
        if ct:
            print(f"| {label} | {100 * ct / total:.0f} % |")


def compare_tables(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.csv"))
    same = True
    for name in names:
        if name == "miflowcyt.csv":  # names the scheduler and the run's times
            continue
        eq = (b / name).is_file() and (a / name).read_bytes() == (b / name).read_bytes()
        same &= eq
        if not eq:
            print(f"  {name}: DIFFERS")
    print(f"tables {'identical' if same else 'not identical'} ({len(names)} CSV files compared)")
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--visits", type=int, default=10, help=f"at most {len(DAYS)}")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--sources", type=int, default=5, help="patients actually simulated")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", dest="dask", action="store_false")
    ap.add_argument("--keep", type=Path, help="build the study here and keep it")
    ap.add_argument("--split-files", type=int, default=11, help="files for the per-file split")
    ap.add_argument("--study", type=Path, help="analyse this existing study folder (kept)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    if not 1 <= args.visits <= len(DAYS):
        sys.exit(f"--visits must be 1..{len(DAYS)}")
    tmp = tempfile.mkdtemp(prefix="cytokit-scale-", dir=args.keep.parent if args.keep else None)
    where = Path(tmp)
    try:
        import cytokit

        print(f"load average at the start: {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores; "
              f"cytokit from {Path(cytokit.__file__).parent}")  # fmt: skip
        if args.study:
            study, n_events = args.study.resolve(), 0
            n_files = len(pd.read_csv(study / "manifest.csv"))
        else:
            study, n_events = build_study(where, args)
            n_files = args.patients * args.visits
        # kernels into Numba's cache first: a small study of the same design, analysed
        from cytokit.analysis.run import analyze

        warm = where / "warm"
        shutil.copytree(
            study, warm, ignore=lambda d, names: [n for n in names if n.endswith(".fcs")]
        )
        rows = pd.read_csv(study / "manifest.csv", dtype={"patient": str})
        rows = rows[rows.patient == rows.patient.iloc[0]]  # the first patient's visits
        (warm / "fcs").mkdir(exist_ok=True)
        for f in rows.file:
            shutil.copy(study / f, warm / f)
        rows.to_csv(warm / "manifest.csv", index=False)
        for name in ("infusions.csv", "treatments.csv", "outcomes.csv"):
            if (warm / name).is_file():
                t = pd.read_csv(warm / name, dtype={"patient": str})
                t[t.patient == rows.patient.iloc[0]].to_csv(warm / name, index=False)
        analyze(warm, where / "warm-out", workers=1)
        local = run_analyze(study, where / "out-local", where, args, None)
        n_events = n_events or int(pd.read_csv(where / "out-local" / "samples.csv").events.sum())
        report(local, n_events, n_files, "local processes", args.workers)
        if args.split_files > 1:
            per_file_split(study, args.split_files)
        if args.dask:
            from distributed import LocalCluster

            with LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True,
                dashboard_address=None, memory_limit=0,
            ) as cluster:  # fmt: skip
                # the cluster's scheduler runs in this process, its workers are children of it:
                # this process's tree is counted too (with what it holds itself)
                info = run_analyze(
                    study, where / "out-dask", where, args, cluster.scheduler_address, [os.getpid()]
                )
            report(info, n_events, n_files, "Dask LocalCluster", args.workers)
            compare_tables(where / "out-local", where / "out-dask")
    finally:
        if args.keep:
            target = args.keep
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(where), str(target))
            print(f"kept in {target}")
        else:
            shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
