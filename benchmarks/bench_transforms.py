"""Benchmark: logicle vs flowutils, and compensation vs numpy, on synthetic events.

Usage::

    python benchmarks/bench_transforms.py            # 10M values, 5 timed runs each
    python benchmarks/bench_transforms.py --n 1000000 --repeats 3

Every timing is the median of ``--repeats`` runs after one warm-up call (which
also pays any Numba compile or cache load). Output buffers are allocated once
and reused where the API allows, so the numbers measure the kernels rather
than first-touch page faults; "fresh" rows include allocating the result.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import cytokit.kernels as ck


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: compile / load cache, fault in buffers
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_logicle(n: int, repeats: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    # Compensated-looking data: a negative-spread bulk plus log-normal positives.
    x = np.concatenate([rng.normal(0, 300, n // 2), rng.lognormal(7, 1.5, n - n // 2)]).astype(
        np.float32
    )
    rng.shuffle(x)
    T, W, M, A = 262144.0, 0.5, 4.5, 0.0
    out64 = np.empty(n, dtype=np.float64)
    out32 = np.empty(n, dtype=np.float32)
    rows = [
        (
            "cytokit logicle, float32 in -> float64 out=",
            lambda: ck.logicle(x, T, W, M, A, out=out64),
        ),
        (
            "cytokit logicle, float32 in -> float32 out=",
            lambda: ck.logicle(x, T, W, M, A, out=out32),
        ),
        ("cytokit logicle, fresh float64 result", lambda: ck.logicle(x, T, W, M, A)),
    ]
    try:
        import flowutils.transforms as fu

        x64 = x.astype(np.float64)
        # flowutils copies its input to float64 and transforms the copy.
        rows.append(
            (
                "flowutils logicle (float64 copy + C scale)",
                lambda: fu.logicle(x64, None, t=T, w=W, m=M, a=A),
            )
        )
    except ImportError:
        pass
    return [(name, _median_seconds(fn, repeats) / n * 1e9) for name, fn in rows]


def bench_compensation(n: int, p: int, repeats: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(1)
    events = rng.normal(1000, 800, (n, p)).astype(np.float32)
    spill = np.eye(p) + rng.uniform(0, 0.2, (p, p)) * (rng.random((p, p)) < 0.5)
    np.fill_diagonal(spill, 1.0)
    inv = np.linalg.inv(spill)
    cols = np.arange(p)
    out = np.empty_like(events)
    inv32 = inv.astype(np.float32)
    out_np = np.empty_like(events)
    rows = [
        ("cytokit compensate, float32, out=", lambda: ck.compensate(events, spill, cols, out=out)),
        ("cytokit compensate, float32, fresh result", lambda: ck.compensate(events, spill, cols)),
        ("numpy events @ inv (float32 BLAS, out=)", lambda: np.matmul(events, inv32, out=out_np)),
        ("numpy events @ inv (float64, fresh result)", lambda: events @ inv),
    ]
    return [(name, _median_seconds(fn, repeats) / n * 1e9) for name, fn in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="values / events (default 10M)")
    ap.add_argument("--channels", type=int, default=8, help="compensated channels (default 8)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row (median)")
    args = ap.parse_args()

    import numba

    print(f"numba {numba.__version__}, threads {numba.get_num_threads()}, n={args.n:,}")
    print("\nlogicle (T=262144, W=0.5, M=4.5, A=0)          ns/value")
    rows = bench_logicle(args.n, args.repeats)
    for name, ns in rows:
        print(f"  {name:<46} {ns:8.2f}")
    ref = dict(rows).get("flowutils logicle (float64 copy + C scale)")
    if ref:
        best = min(ns for name, ns in rows if name.startswith("cytokit") and "out=" in name)
        fresh = dict(rows)["cytokit logicle, fresh float64 result"]
        print(
            f"  speed-up vs flowutils: {ref / best:.1f}x (out=), {ref / fresh:.1f}x (fresh result)"
        )

    print(f"\ncompensation ({args.n:,} x {args.channels}, all channels)   ns/event")
    for name, ns in bench_compensation(args.n, args.channels, args.repeats):
        print(f"  {name:<46} {ns:8.2f}")


if __name__ == "__main__":
    main()
