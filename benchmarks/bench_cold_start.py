"""`cytokit demo` as a new user meets it: a fresh checkout, a fresh virtual environment, no caches.

Each cold run copies the source tree (without ``.git``, virtual environments
and ``__pycache__``, so no Python bytecode and no Numba cache come along) into
a temporary folder, makes a fresh virtual environment there that sees this
environment's dependencies (a ``.pth`` line; numpy, numba, pandas... are not
reinstalled) and installs the copy into it (``pip install --no-deps -e``),
then times ``cytokit demo --out DIR`` in a new process with an empty
``NUMBA_CACHE_DIR``. A warm run follows in the same environment (the cache
the last cold run wrote). Reported per run: wall time, CPU time of the
process tree, and the compile share: the wall time spent inside Numba's
``Dispatcher.compile`` (outermost calls) of the main process, measured by a
wrapper script that patches it before cytokit is imported (worker processes
load the kernels the main process compiled first).

``--tree`` can be given several times (e.g. a checkout of main and this
one); the runs then alternate between the trees, so the machine's load hits
both alike. Medians per tree at the end, with the load average beside them.

Usage::

    python benchmarks/bench_cold_start.py                       # this tree, 3 cold + 1 warm
    python benchmarks/bench_cold_start.py --tree ../main --tree . --runs 3
    python benchmarks/bench_cold_start.py --no-report --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run inside the fresh environment: times Numba's compilation, then runs the CLI.
WRAPPER = r"""
import json, os, sys, threading, time
from numba.core import dispatcher
_orig = dispatcher.Dispatcher.compile
_tl = threading.local()
_tot = [0.0]
def _compile(self, sig):
    depth = getattr(_tl, "depth", 0)
    _tl.depth = depth + 1
    t0 = time.perf_counter()
    try:
        return _orig(self, sig)
    finally:
        _tl.depth = depth
        if depth == 0:
            _tot[0] += time.perf_counter() - t0
dispatcher.Dispatcher.compile = _compile
if __name__ == "__main__":
    import atexit
    out = os.environ["BENCH_COMPILE_OUT"]
    atexit.register(lambda: open(out, "w").write(json.dumps({"compile": _tot[0]})))
    from cytokit.cli.app import main
    sys.argv = ["cytokit", *sys.argv[1:]]
    main()
"""

SKIP = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
    "cytokit-demo", "site", "*.egg-info", "build", "dist",
)  # fmt: skip


def fresh_install(tree: Path, where: Path) -> Path:
    """Copy `tree` into `where`, make a virtual environment there with it installed; its python."""
    src = where / "src"
    shutil.copytree(tree, src, ignore=SKIP)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # the dependencies of this environment (not cytokit: its editable finder is a .pth here,
    # and .pth files of a path added this way are not run)
    (Path(site) / "_bench_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
            "--no-build-isolation", "-e", str(src),
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    (where / "wrapper.py").write_text(WRAPPER)
    return py


def load_average() -> float:
    return os.getloadavg()[0]


def timed_demo(py: Path, where: Path, cache: Path, args, label: str) -> dict:
    out = where / f"demo-{label}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "BENCH_COMPILE_OUT": str(where / "c.json")}
    env.pop("PYTHONPATH", None)
    cmd = [str(py), str(where / "wrapper.py"), "demo", "--out", str(out)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if not args.report:
        cmd += ["--no-report"]
    load0 = load_average()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"{label}: cytokit demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    compile_s = json.loads((where / "c.json").read_text())["compile"]
    load = (load0 + load_average()) / 2
    return {"wall": wall, "cpu": cpu, "compile": compile_s, "load": load, "out": out}


def tables_of(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.csv")) if p.name != "miflowcyt.csv"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tree", action="append", type=Path, help="source tree (default: this one)")
    ap.add_argument("--runs", type=int, default=3, help="cold runs per tree (default 3)")
    ap.add_argument("--workers", type=int, default=None, help="demo --workers (default: its own)")
    ap.add_argument("--no-report", dest="report", action="store_false", help="demo --no-report")
    args = ap.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    rows: dict[Path, list[dict]] = {t: [] for t in trees}
    warm: dict[Path, dict] = {}
    tables: dict[Path, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cytokit-cold-") as tmp:
        for r in range(args.runs):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                where = Path(tmp) / f"t{trees.index(tree)}-r{r}"
                where.mkdir()
                py = fresh_install(tree, where)
                cache = where / "numba-cache"
                cache.mkdir()
                res = timed_demo(py, where, cache, args, "cold")
                rows[tree].append(res)
                print(
                    f"{tree.name:>12} cold {r + 1}: wall {res['wall']:6.1f} s, CPU {res['cpu']:6.1f} s, "
                    f"compiling {res['compile']:5.1f} s (load {res['load']:.1f})",
                    flush=True,
                )
                tables.setdefault(tree, tables_of(res["out"]))
                if r == args.runs - 1:
                    w = timed_demo(py, where, cache, args, "warm")
                    warm[tree] = w
                    print(
                        f"{tree.name:>12} warm  : wall {w['wall']:6.1f} s, CPU {w['cpu']:6.1f} s, "
                        f"compiling {w['compile']:5.1f} s (load {w['load']:.1f})",
                        flush=True,
                    )
                shutil.rmtree(where / "src", ignore_errors=True)
                shutil.rmtree(where / "venv", ignore_errors=True)
    print("\nmedians of the cold runs")
    print("| tree | cold wall | cold CPU | compiling (wall) | load | warm wall | cold / warm |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for tree in trees:
        med = {
            k: statistics.median(x[k] for x in rows[tree])
            for k in ("wall", "cpu", "compile", "load")
        }
        w = warm[tree]["wall"]
        print(
            f"| {tree.name} | {med['wall']:.1f} s | {med['cpu']:.1f} s | {med['compile']:.1f} s "
            f"({100 * med['compile'] / med['wall']:.0f} %) | {med['load']:.1f} | {w:.1f} s | "
            f"{med['wall'] / w:.2f} |"
        )
    if len(trees) > 1:
        first = tables[trees[0]]
        for tree in trees[1:]:
            same = tables[tree] == first
            print(
                f"tables of {tree.name} {'identical to' if same else 'DIFFER from'} {trees[0].name}'s"
            )


if __name__ == "__main__":
    main()
