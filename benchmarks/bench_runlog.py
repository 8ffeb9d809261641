"""Benchmark: what ``runlog.jsonl`` costs a run, and what ``cytokit verify`` costs.

Usage::

    python benchmarks/bench_runlog.py                      # sample_data + 8 patients x 200k events
    python benchmarks/bench_runlog.py --patients 12 --events 500000 --repeats 3

For each study (``sample_data/``, then a study written by ``cytokit simulate``
into ``benchmarks/_data/runlog-<patients>x<events>/``, kept for later runs),
``cytokit analyze STUDY --out OUT --no-report`` runs as a subprocess into a
fresh folder, ``--repeats`` times. Printed, as medians:

* the command's wall time and the line's own cost (``log_seconds``: listing
  the folder before and after, reading the store, hashing), and their ratio;
* the same-run reference: hashing every input and output of the line from
  scratch (``hashlib.sha256`` over each file, as a log without the store's
  hash cache would), and the share of it the log avoided;
* ``cytokit verify OUT`` wall time (it re-reads every byte).

The page cache is warm for all of them (the run has just read the files).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cytokit(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cytokit.cli.app", *args], check=True,
                   stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - t0


def full_hash_seconds(folder: Path, record: dict) -> tuple[float, int]:
    paths = [Path(i["path"]) if Path(i["path"]).is_absolute() else folder / i["path"]
             for i in record["inputs"]] + [folder / o["path"] for o in record["outputs"]]  # fmt: skip
    t0, size = time.perf_counter(), 0
    for p in paths:
        data = p.read_bytes()
        size += len(data)
        hashlib.sha256(data).hexdigest()
    return time.perf_counter() - t0, size


def bench(study: Path, repeats: int, workers: int) -> None:
    rows = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="cytokit-runlog-") as tmp:
            out = Path(tmp) / "out"
            wall = cytokit(
                "analyze", str(study), "--out", str(out), "--no-report", "-j", str(workers)
            )
            record = json.loads((out / "runlog.jsonl").read_text().splitlines()[-1])
            full, size = full_hash_seconds(out, record)
            verify = cytokit("verify", str(out))
            rows.append((wall, record["log_seconds"], full, verify, size, len(record["inputs"]),
                         len(record["outputs"])))  # fmt: skip
    med = [statistics.median(c) for c in zip(*rows, strict=True)]
    wall, log, full, verify, size, n_in, n_out = med
    print(
        f"{study.name}: {int(n_in)} inputs + {int(n_out)} outputs, {size / 1e6:.1f} MB; analyze "
        f"{wall:.1f} s, log {log:.3f} s ({100 * log / wall:.2f} %); hashing everything from "
        f"scratch {full:.3f} s (log/that = {log / full:.2f}); verify {verify:.1f} s "
        f"(median of {repeats})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bench(ROOT / "sample_data", args.repeats, args.workers)
    big = ROOT / "benchmarks" / "_data" / f"runlog-{args.patients}x{args.events}"
    if not (big / "study.toml").is_file():
        shutil.rmtree(big, ignore_errors=True)
        cytokit("simulate", str(big), "--seed", "7", "--patients", str(args.patients),
                "--events", str(args.events))  # fmt: skip
        time.sleep(2.1)  # the store trusts a cached hash of a file changed >= 2 s before
    bench(big, args.repeats, args.workers)


if __name__ == "__main__":
    main()
