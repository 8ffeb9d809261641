"""The report of a results folder: a build from scratch, a rebuild that changed nothing and a
rebuild after one sample changed, against the analysis that made the folder; the pages' sizes
and how long Chromium takes to load the index.

Usage::

    python benchmarks/bench_report.py RESULTS [--analyze-seconds S] [--repeat N] [--demo N]

RESULTS is a folder written by ``cytokit analyze --no-report`` (its report is built here,
in a copy). ``--analyze-seconds`` is the wall time of that analyze, to print the ratio.
Each build runs ``cytokit report`` in a fresh process, as a user would; unchanged
rebuilds are the median of `--repeat` runs; the load average at the end says how busy
the machine was. ``--demo N`` first times N warm ``cytokit demo`` runs into new folders (after
one run that warms the Numba cache) and the report each ends with. Run by hand, never as
a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cytokit(*args: str) -> tuple[float, str]:
    """Run ``cytokit ARGS``: (wall seconds, its stderr)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [shutil.which("cytokit") or "cytokit", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return time.perf_counter() - t0, done.stderr


def _report(folder: Path, *extra: str) -> float:
    return _cytokit("report", str(folder), *extra)[0]


def _demo(runs: int) -> list[tuple[str, str]]:
    """A warm `cytokit demo` into a new folder, `runs` times after a warm-up: the whole
    command and the report it ends with (its own line: ``report: ... (X s)``)."""
    rows, whole, report = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        for i in range(runs + 1):
            wall, err = _cytokit("demo", "--out", str(Path(tmp) / f"d{i}"))
            m = re.search(r"^report: .* \(([\d.]+) s\)$", err, re.M)
            if i and m:
                whole.append(wall)
                report.append(float(m.group(1)))
    if whole:
        w = statistics.median(whole)
        rows.append((f"warm demo into a new folder (median of {len(whole)})", f"{w:.2f} s"))
        rows.append(("  its report", f"{statistics.median(report):.2f} s"))
    return rows


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _load_seconds(page: Path, runs: int) -> list[float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser import find_chromium, visit

    browser = find_chromium()
    if browser is None:
        return []
    times = []
    for _ in range(runs):
        seen = visit(page, browser=browser)
        if seen.console_errors:
            raise SystemExit(f"{page}: console errors {seen.console_errors[:3]}")
        times.append(seen.load_seconds)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--analyze-seconds", type=float, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--demo", type=int, default=0, help="Also time N warm `cytokit demo` runs.")
    args = ap.parse_args()
    demo = _demo(args.demo) if args.demo else []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(shutil.copytree(args.results, Path(tmp) / "r"))
        for name in ("plots", "patients"):
            shutil.rmtree(folder / name, ignore_errors=True)
        (folder / "report.html").unlink(missing_ok=True)
        scratch = _report(folder)
        again = statistics.median(_report(folder) for _ in range(args.repeat))
        qc = sorted((folder / "qc").glob("*.npz"))
        if qc:  # one sample's QC data changed (rewritten with one point less per gate)
            import numpy as np

            with np.load(qc[0]) as data:
                arrays = {k: (data[k][:-1] if k.startswith("gate:") else data[k]) for k in data}
            np.savez(qc[0], **arrays)
        one = _report(folder)
        index = folder / "report.html"
        pages = sorted((folder / "patients").glob("*.html"))
        loads = _load_seconds(index, args.repeat)
        rows = [
            *demo,
            ("report from scratch", f"{scratch:.2f} s"),
            (f"unchanged rebuild (median of {args.repeat})", f"{again:.2f} s"),
            ("rebuild after one sample's QC data changed", f"{one:.2f} s"),
            ("index page", f"{_size(index) / 1e6:.3f} MB"),
            (
                "patient pages",
                f"{len(pages)}, largest {max(map(_size, pages), default=0) / 1e3:.0f} kB",
            ),
            ("plots/", f"{_size(folder / 'plots') / 1e6:.1f} MB"),
            ("whole results folder", f"{_size(folder) / 1e6:.1f} MB"),
        ]
        if loads:
            rows.append(
                (
                    f"Chromium load of the index (median of {len(loads)})",
                    f"{statistics.median(loads):.2f} s",
                )
            )
        if args.analyze_seconds:
            rows.append(("report / analyze", f"{100 * scratch / args.analyze_seconds:.0f} %"))
        rows.append(("load average at the end", f"{os.getloadavg()[0]:.1f}"))
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
