"""Benchmark: FlowSOM clustering of 1M events, cytokit vs the ``flowsom`` Python package.

Usage::

    python benchmarks/bench_cluster.py                     # 1M events, seeds 1-5, both tools, both data sets
    python benchmarks/bench_cluster.py --seeds 1 2 --n 200000
    python benchmarks/bench_cluster.py --sets blood        # only the independent generator's samples
    python benchmarks/bench_cluster.py --ten-million       # also cytokit at 10M events (slow)
    python benchmarks/bench_cluster.py --no-flowsom        # cytokit only
    python benchmarks/bench_cluster.py --baseline consensus  # also cytokit with the old metaclustering

Two data sets, each measured over the same seeds in the same run:

``blood`` (`blood_mixture.py`, a generator independent of `cytokit.simulate`):
seed ``s`` is another donor, ``blood_sample(n, s)``, 13 columns (3 scatter,
10 fluorescence markers incl. a viability dye), asinh-scaled, with debris,
doublets and dead cells left in, four rare populations of ~0.5 % and
unequal, donor-dependent sizes; the truth is its 14 event kinds, and both
tools get ``random_state=s``.

``sim``: one simulated sample (`cytokit.simulate.benchmark_study_design`,
patient P01, day 14, the NK arm at the donor peak) of `--n` events, its 10
non-time channels (FSC-A, FSC-H, SSC-A and the 7 fluorescence channels),
compensated with the sample's spillover and logicle-transformed (T=262144,
W=0.5, M=4.5, A=0), scatter divided by 262,144
(`cytokit.cluster.transformed_events`). The true populations are the
simulator's 12 event labels (debris, doublet, dead, bead, granulocyte,
monocyte, B, T CD8−, T CD8+, NK bright, NK dim, CIK) of *all* events; the
adjusted Rand index (scikit-learn) of each tool's metaclusters against them
is computed in this process from the labels the workers save; the data are
the same for every seed, only ``random_state`` changes.

Each tool runs in a **fresh subprocess** per seed (peak RSS = ``VmHWM``), on
the same float32 matrix loaded from a ``.npy`` file, with a 10 × 10 grid
and 10 metaclusters:

* cytokit: ``FlowSOM(grid=(10, 10), n_metaclusters=10, random_state=seed)
  .fit_predict(X)`` plus the median of every marker per metacluster
  (histogram kernel) — labels and the medians table, what `cluster_study`
  reports; with ``--baseline M`` also with ``metaclustering=M`` (e.g.
  ``consensus``, the default before ``connectivity``), its ARI per seed;
* flowsom 0.2: ``flowsom.FlowSOM(AnnData(X), n_clusters=10, xdim=10,
  ydim=10, seed=seed)``, its end-to-end call (SOM on every event, 10
  passes; metaclustering; per-node and per-metacluster statistics; MST).

Both workers first fit 2,000 events so that Numba compilation (flowsom's
kernels are not cached) and cytokit's cache load are not timed; the cold
first call of cytokit is reported separately. Times are medians over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHANNELS = [
    "FSC-A",
    "FSC-H",
    "SSC-A",
    "FITC-A",
    "PE-A",
    "PerCP-Cy5-5-A",
    "PE-Cy7-A",
    "APC-A",
    "APC-H7-A",
    "V500-C-A",
]
GRID = (10, 10)
METACLUSTERS = 10


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


# --- workers (run in a fresh process) -----------------------------------------------------------


def worker_cytokit(data: Path, seed: int, out: Path, repeats: int, params: dict) -> dict:
    from cytokit.cluster import FlowSOM, histogram_medians
    from cytokit.kernels import node_histograms

    X = np.load(data)
    rss_loaded = status_kib("VmRSS")

    def run():
        t0 = time.perf_counter()
        model = FlowSOM(grid=GRID, n_metaclusters=METACLUSTERS, random_state=seed, **params)
        labels = model.fit_predict(X)
        t1 = time.perf_counter()
        lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        hist = np.zeros((METACLUSTERS, X.shape[1], 1024), dtype=np.int64)
        node_histograms(X, labels, lo, hi + 1e-6 * (hi - lo + 1.0), hist)
        medians = histogram_medians(hist, lo, hi)
        t2 = time.perf_counter()
        return labels, medians, t1 - t0, t2 - t0

    t = time.perf_counter()
    FlowSOM(grid=GRID, n_metaclusters=METACLUSTERS, random_state=0).fit_predict(X[:2000])
    warmup = time.perf_counter() - t
    fit_times, total_times = [], []
    labels = medians = None
    for _ in range(repeats):
        labels = medians = None  # the last run's arrays are not kept through the next
        labels, medians, fit_t, total_t = run()
        fit_times.append(fit_t)
        total_times.append(total_t)
    np.save(out, labels)
    return {
        "tool": "cytokit",
        "warmup_s": warmup,
        "fit_predict_s": statistics.median(fit_times),
        "time_s": statistics.median(total_times),
        "first_s": total_times[0],
        "rss_loaded_kib": rss_loaded,
        "rss_peak_kib": status_kib("VmHWM"),
        "medians_finite": bool(np.isfinite(medians).any()),
    }


def worker_flowsom(data: Path, seed: int, out: Path) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    import anndata as ad
    import flowsom
    from loguru import logger

    logger.remove()  # flowsom logs every step at DEBUG level
    X = np.load(data)
    rss_loaded = status_kib("VmRSS")
    t = time.perf_counter()
    flowsom.FlowSOM(ad.AnnData(X[:2000]), n_clusters=METACLUSTERS, xdim=10, ydim=10, seed=0)
    warmup = time.perf_counter() - t
    t0 = time.perf_counter()
    fsom = flowsom.FlowSOM(
        ad.AnnData(X), n_clusters=METACLUSTERS, xdim=GRID[0], ydim=GRID[1], seed=seed
    )
    elapsed = time.perf_counter() - t0
    np.save(out, np.asarray(fsom.metacluster_labels, dtype=np.int32))
    return {
        "tool": "flowsom",
        "warmup_s": warmup,
        "time_s": elapsed,
        "rss_loaded_kib": rss_loaded,
        "rss_peak_kib": status_kib("VmHWM"),
    }


# --- driver -------------------------------------------------------------------------------------


def prepare_blood(n: int, seed: int, folder: Path) -> tuple[Path, np.ndarray]:
    sys.path.insert(0, str(Path(__file__).parent))
    from blood_mixture import blood_sample

    X, truth = blood_sample(n, seed)
    path = folder / f"blood_{n}_{seed}.npy"
    np.save(path, X)
    return path, truth


def prepare(n: int, folder: Path) -> tuple[Path, np.ndarray]:
    from cytokit import simulate
    from cytokit.cluster import transformed_events

    design = simulate.benchmark_study_design()
    sample, truth = simulate.simulate_sample(design, design.patients[0].id, 14, n_events=n)
    X = transformed_events(sample, CHANNELS)
    path = folder / f"X_{n}.npy"
    np.save(path, X)
    return path, np.asarray(truth.label)


def run_worker(
    tool: str, data: Path, seed: int, folder: Path, repeats: int, params: dict | None = None
) -> dict:
    tag = "_".join(f"{k}-{v}" for k, v in (params or {}).items())
    out = folder / f"labels_{tool}{tag}_{seed}_{data.stem}.npy"
    cmd = [sys.executable, __file__, "--worker", tool, "--data", str(data), "--seed", str(seed)]
    cmd += ["--labels", str(out), "--repeats", str(repeats), "--params", json.dumps(params or {})]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["labels"] = out
    return result


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--repeats", type=int, default=3, help="cytokit runs per worker (median)")
    ap.add_argument("--no-flowsom", action="store_true")
    ap.add_argument(
        "--sets", nargs="+", choices=["blood", "sim"], default=["blood", "sim"], help="data sets"
    )
    ap.add_argument("--ten-million", action="store_true", help="also cytokit at 10M events")
    ap.add_argument(
        "--baseline",
        choices=["consensus", "hierarchical"],
        help="also cytokit with this metaclustering (ARI per seed, same data)",
    )
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=["cytokit", "flowsom"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "cytokit":
        params = json.loads(args.params)
        print(json.dumps(worker_cytokit(args.data, args.seed, args.labels, args.repeats, params)))
        return
    if args.worker == "flowsom":
        print(json.dumps(worker_flowsom(args.data, args.seed, args.labels)))
        return

    from sklearn.metrics import adjusted_rand_score

    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        folder = Path(tmp)
        warmed = False
        for name in args.sets:
            print(f"\n## {name}", flush=True)
            rows = []
            for seed in args.seeds:
                t = time.perf_counter()
                if name == "sim":
                    if not rows:
                        sim_data, sim_truth = prepare(args.n, folder)
                    data, truth, kinds = sim_data, sim_truth, "12 simulator labels"
                else:
                    data, truth = prepare_blood(args.n, seed, folder)
                    kinds = "14 generator labels"
                size = data.stat().st_size
                print(
                    f"data: {args.n:,} events x {np.load(data, mmap_mode='r').shape[1]} columns "
                    f"float32 ({size / 2**20:,.0f} MiB), ready in {time.perf_counter() - t:.1f} s; "
                    f"truth: {kinds}",
                    flush=True,
                )
                if not warmed:
                    run_worker("cytokit", data, 0, folder, 1)  # fills the Numba cache if empty
                    warmed = True
                rows.append(one_seed(args, data, truth, seed, folder, adjusted_rand_score))
            summary(rows, size)
            if name == "sim" and args.ten_million:
                scale(args, folder, rows)


def one_seed(args, data: Path, truth: np.ndarray, seed: int, folder: Path, ari) -> dict:
    row = {"seed": seed, "cytokit": run_worker("cytokit", data, seed, folder, args.repeats)}
    if args.baseline:
        params = {"metaclustering": args.baseline}
        row["baseline"] = run_worker("cytokit", data, seed, folder, 1, params)
    if not args.no_flowsom:
        row["flowsom"] = run_worker("flowsom", data, seed, folder, 1)
    for tool in ("cytokit", "baseline", "flowsom"):
        if tool in row:
            row[tool]["ari"] = ari(truth, np.load(row[tool]["labels"]))
    c = row["cytokit"]
    line = (
        f"seed {seed}: cytokit {c['time_s']:.2f} s (fit_predict {c['fit_predict_s']:.2f} s, "
        f"first call {c['first_s']:.2f} s), ARI {c['ari']:.4f}, peak {mib(c['rss_peak_kib'])}"
    )
    if "baseline" in row:
        b = row["baseline"]
        line += f" | {args.baseline} {b['time_s']:.2f} s, ARI {b['ari']:.4f}"
    if "flowsom" in row:
        f = row["flowsom"]
        line += (
            f" | flowsom {f['time_s']:.1f} s, ARI {f['ari']:.4f}, peak "
            f"{mib(f['rss_peak_kib'])} | {f['time_s'] / c['time_s']:.1f}x faster, "
            f"{f['rss_peak_kib'] / c['rss_peak_kib']:.1f}x less memory"
        )
    print(line, flush=True)
    return row


def summary(rows: list[dict], size: int) -> None:
    c_ari = [r["cytokit"]["ari"] for r in rows]
    c_t = statistics.median(r["cytokit"]["time_s"] for r in rows)
    c_rss = statistics.median(r["cytokit"]["rss_peak_kib"] for r in rows)
    c_base = statistics.median(r["cytokit"]["rss_loaded_kib"] for r in rows)
    print(f"\n{len(rows)} seeds, medians:")
    print("| | time | peak RSS (after import + data load) | ARI mean | ARI min | ARI max |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| cytokit | {c_t:.2f} s | {mib(c_rss)} ({mib(c_base)}) | {np.mean(c_ari):.4f} | "
        f"{min(c_ari):.4f} | {max(c_ari):.4f} |"
    )
    if "baseline" in rows[0]:
        b_ari = [r["baseline"]["ari"] for r in rows]
        b_t = statistics.median(r["baseline"]["time_s"] for r in rows)
        print(
            f"| cytokit, old metaclustering | {b_t:.2f} s | | {np.mean(b_ari):.4f} | "
            f"{min(b_ari):.4f} | {max(b_ari):.4f} |"
        )
    if "flowsom" in rows[0]:
        f_ari = [r["flowsom"]["ari"] for r in rows]
        f_t = statistics.median(r["flowsom"]["time_s"] for r in rows)
        f_rss = statistics.median(r["flowsom"]["rss_peak_kib"] for r in rows)
        f_base = statistics.median(r["flowsom"]["rss_loaded_kib"] for r in rows)
        print(
            f"| flowsom | {f_t:.1f} s | {mib(f_rss)} ({mib(f_base)}) | {np.mean(f_ari):.4f} | "
            f"{min(f_ari):.4f} | {max(f_ari):.4f} |"
        )
        print(
            f"\nspeed-up {f_t / c_t:.1f}x; peak memory cytokit/flowsom = {c_rss / f_rss:.3f} "
            f"(1/{f_rss / c_rss:.1f}); ARI mean cytokit - flowsom = "
            f"{np.mean(c_ari) - np.mean(f_ari):+.4f}, min {min(c_ari) - min(f_ari):+.4f}"
        )
        wins = sum(c >= f for c, f in zip(c_ari, f_ari, strict=True))
        print(f"seeds with cytokit ARI >= flowsom's: {wins} of {len(rows)}")
    print(f"event data {size / 2**20:,.0f} MiB")


def scale(args, folder: Path, rows: list[dict]) -> None:
    from sklearn.metrics import adjusted_rand_score

    n10 = 10 * args.n
    t = time.perf_counter()
    data, truth = prepare(n10, folder)
    size = data.stat().st_size
    print(f"\n{n10:,} events ({size / 2**20:,.0f} MiB) prepared in {time.perf_counter() - t:.1f} s")
    seed = rows[0]["seed"]
    big = run_worker("cytokit", data, seed, folder, args.repeats)
    big["ari"] = adjusted_rand_score(truth, np.load(big["labels"]))
    small = rows[0]["cytokit"]
    base_small = small["rss_peak_kib"] * 1024 - size / 10
    base_big = big["rss_peak_kib"] * 1024 - size
    print("| events | time | fit_predict | peak RSS | peak RSS - event data | ARI |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, r, extra in ((args.n, small, base_small), (n10, big, base_big)):
        print(
            f"| {n:,} | {r['time_s']:.2f} s | {r['fit_predict_s']:.2f} s | {mib(r['rss_peak_kib'])} | "
            f"{extra / 2**20:,.0f} MiB | {r['ari']:.4f} |"
        )
    print(
        f"time ratio 10x events: {big['time_s'] / small['time_s']:.2f}x; "
        f"memory beyond the event data: {base_small / 2**20:,.0f} -> {base_big / 2**20:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
