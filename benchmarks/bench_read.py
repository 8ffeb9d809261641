"""Reading a large FCS file: cytokit.read_fcs against np.fromfile and FlowKit.

    python benchmarks/bench_read.py                       # 10M events, 5 repeats, 2 FlowKit runs
    python benchmarks/bench_read.py --n 1000000 --flowkit-repeats 1

A simulated FCS 3.1 file (float32, little-endian, 11 channels, ``$TIMESTEP``)
is written once to ``benchmarks/_data/`` by `cytokit.simulate.benchmark_file`.
Each measurement runs in a fresh Python process that imports what it needs,
then times one call; its peak RSS is ``VmHWM`` from ``/proc/self/status``.
The reference is ``np.fromfile`` of exactly the DATA segment (offset and
count), i.e. reading the bytes into a new array and nothing else. Each worker
first reads the whole file through a 1 MiB buffer (untimed), so every row reads
from the page cache; rows are interleaved and rotated, so the shared machine's
load drifts over all of them alike.

Rows:

* ``np.fromfile``: the reference.
* ``np.empty`` + ``readinto``: the floor, one unbuffered read into a new array
  (what `read_fcs` does for native float data).
* ``read_fcs``: the default, scale values; the time channel is multiplied by
  ``$TIMESTEP`` in place.
* ``read_fcs(scale=False)``: stored values.
* ``read_fcs(mmap=True, scale=False)``: a memory map (lazy: its time is the
  set-up, its pages are read when touched).
* ``flowkit.Sample(path)``: FlowKit 1.3 (FlowIO parsing, float64 copy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"

MODES = {
    "fromfile": "np.fromfile (DATA segment)",
    "readinto": "np.empty + readinto (DATA segment)",
    "read_fcs": "cytokit.read_fcs (scale values)",
    "read_fcs_raw": "cytokit.read_fcs(scale=False)",
    "read_fcs_mmap": "cytokit.read_fcs(mmap=True, scale=False)",
    "flowkit": "flowkit.Sample(path)",
}


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def worker(mode: str, path: str, offset: int, count: int) -> None:
    """Run one measurement and print it as JSON (runs in its own process)."""
    import warnings

    import numpy as np

    import cytokit

    if mode == "flowkit":
        import flowkit

        warnings.simplefilter("ignore")
    # the shared machine's other jobs can evict the file from the page cache:
    # read it through a small buffer first (page cache is not this process's RSS)
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(1 << 20)
        while fh.readinto(buf):
            pass
    del buf
    before = _status("VmRSS")
    t0 = time.perf_counter()
    if mode == "fromfile":
        out = np.fromfile(path, dtype="<f4", count=count, offset=offset)
    elif mode == "readinto":
        out = np.empty(count, dtype="<f4")
        with open(path, "rb", buffering=0) as fh:
            fh.seek(offset)
            view = memoryview(out.view(np.uint8))
            got = 0
            while got < view.nbytes:
                got += fh.readinto(view[got:])
    elif mode == "read_fcs":
        out = cytokit.read_fcs(path).events
    elif mode == "read_fcs_raw":
        out = cytokit.read_fcs(path, scale=False).events
    elif mode == "read_fcs_mmap":
        out = cytokit.read_fcs(path, mmap=True, scale=False).events
    elif mode == "flowkit":
        out = flowkit.Sample(path).get_events(source="raw")
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak": _status("VmHWM"),
                "before": before,
                "shape": list(np.shape(out)),
            }
        )
    )


def measure(mode: str, path: Path, offset: int, count: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, str(path), str(offset), str(count)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="events in the file")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--flowkit-repeats", type=int, default=2)
    ap.add_argument("--no-flowkit", action="store_true")
    args = ap.parse_args()

    from cytokit.fcs import read_fcs_datasets
    from cytokit.simulate import benchmark_file

    DATA.mkdir(exist_ok=True)
    path = DATA / f"read_{args.n}.fcs"
    if not path.exists():
        print(f"writing {path} ({args.n:,} events)...", file=sys.stderr)
        benchmark_file(path, args.n)
    ds = read_fcs_datasets(path)[0]
    offset, count = ds.data[0], ds.n_events * ds.n_channels
    nbytes = count * 4
    print(
        f"{path.name}: {ds.n_events:,} events x {ds.n_channels} float32 channels = "
        f"{nbytes / 2**20:,.0f} MiB of event data ({os.path.getsize(path) / 2**20:,.0f} MiB file)"
    )
    measure("fromfile", path, offset, count)  # warm the page cache

    # round robin, so that the shared machine's load drifts over every row alike
    runs: dict[str, list[dict]] = {m: [] for m in MODES if not (m == "flowkit" and args.no_flowkit)}
    order = list(runs)
    for rep in range(args.repeats):
        for mode in order[rep % len(order) :] + order[: rep % len(order)]:
            done = runs[mode]
            if mode == "flowkit" and rep >= args.flowkit_repeats:
                continue
            done.append(measure(mode, path, offset, count))
            print(f"  {MODES[mode]}: {done[-1]['seconds']:.3f} s", file=sys.stderr)
    rows = {
        mode: {
            "seconds": statistics.median(r["seconds"] for r in done),
            "best": min(r["seconds"] for r in done),
            "peak": statistics.median(r["peak"] for r in done),
            "before": statistics.median(r["before"] for r in done),
            "n": len(done),
        }
        for mode, done in runs.items()
    }

    ref = rows["fromfile"]["seconds"]
    print()
    print(
        f"| {'reader':<44} | runs | {'median':>8} | {'best':>8} | {'x fromfile':>10} | "
        f"{'peak RSS':>9} | {'peak / data':>11} | {'(peak - start) / data':>21} |"
    )
    print(f"|{'-' * 46}|------|{'-' * 10}|{'-' * 10}|{'-' * 12}|{'-' * 11}|{'-' * 13}|{'-' * 23}|")
    for mode, r in rows.items():
        print(
            f"| {MODES[mode]:<44} | {r['n']:>4} | {r['seconds']:>6.3f} s | {r['best']:>6.3f} s | "
            f"{r['seconds'] / ref:>9.2f}x | {r['peak'] / 2**20:>5,.0f} MiB | "
            f"{r['peak'] / nbytes:>10.2f}x | {(r['peak'] - r['before']) / nbytes:>20.2f}x |"
        )
    if "flowkit" in rows:
        print()
        fk = rows["flowkit"]["seconds"]
        for mode in ("read_fcs", "read_fcs_raw", "read_fcs_mmap"):
            print(f"FlowKit / {MODES[mode]}: {fk / rows[mode]['seconds']:,.1f}x")
    print()
    floor = rows["readinto"]["seconds"]
    print(
        f"read_fcs / readinto floor: {rows['read_fcs']['seconds'] / floor:.2f}x (scale values), "
        f"{rows['read_fcs_raw']['seconds'] / floor:.2f}x (stored values)"
    )
    t = rows["read_fcs"]["seconds"] / ref
    m = rows["read_fcs"]["peak"] / nbytes
    print(f"targets: read_fcs <= 1.5x np.fromfile: {t:.2f}x; peak <= 1.2x the event data: {m:.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
