"""Benchmark: the public API chain on one file against reading it with ``np.fromfile``.

Usage::

    python benchmarks/bench_chain.py                       # 10M events, 5 runs per row, 1 FlowKit run
    python benchmarks/bench_chain.py --n 1000000 --no-flowkit

What a pipeline author writes, timed from the file name to the counts::

    sample = cytokit.read_fcs(path)
    strategy = cytokit.gating.load_strategy("strategy.xml")    # Gating-ML 2.0
    result = strategy.apply(sample)                            # result.counts

and the streaming door of a static strategy, which gates the file while it
is read (slices of 262,144 events, each read into a reused buffer and gated
there by one of two threads; same counts)::

    strategy = cytokit.gating.load_strategy("strategy.xml")
    result = strategy.apply_file(path)                         # result.counts

against the floor of any tool that must read the events: ``np.fromfile`` of
the file's DATA segment (offset and count from its TEXT, float32), and
against FlowKit (``Sample`` + the same tree → ``gate_sample``, built as in
`bench_gating.py`). The file is `bench_gating.py`'s (the simulator's NK
patient at day 7, 11 float32 channels, ``$SPILLOVER`` over 7 detectors) and
so is the tree: two polygons on scatter, then compensated, logicle-
transformed viability, CD3 × CD56 quadrants, HLA-A2 and two Boolean gates
(10 populations), written as Gating-ML with `GatingStrategy.to_gatingml`.

Every run is a fresh process (``--rounds`` per row, the rows interleaved and
their order rotated between rounds); each first reads the file through a
1 MiB buffer, untimed, so every row reads from the page cache. The cytokit
process has loaded its compiled kernels from Numba's cache before timing (a
64-event file gated first), as a pipeline's second file would. The counts
of cytokit (both doors) and FlowKit are compared population by population.
Each child also reports the peak resident memory its timed work added
(``ru_maxrss`` after it minus before it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gating as BG  # the same file, tree and FlowKit route

DATA_DIR = BG.DATA_DIR


def strategy_xml(path: Path) -> None:
    """`bench_gating`'s tree as a cytokit strategy, written as Gating-ML 2.0."""
    from cytokit import gating as G

    logicle = G.LogicleTransform(**BG.LOGICLE)

    def fl(marker: str) -> G.Dimension:
        return G.Dimension(BG.PANEL[marker], compensation=G.FCS, transform=logicle)

    fsc, fsch, ssc = G.Dimension("FSC-A"), G.Dimension("FSC-H"), G.Dimension("SSC-A")
    cd3 = G.Divider("cd3", fl("CD3"), (BG.CD3_CUT,))
    cd56 = G.Divider("cd56", fl("CD56"), (BG.CD56_CUT,))
    quads = tuple(
        G.Quadrant(name, (("cd3", float(s3)), ("cd56", float(s56))))
        for name, (s3, s56) in BG.QUADRANTS.items()
    )
    gates = [
        G.PolygonGate(id="Lymphocytes", dims=(fsc, ssc), vertices=tuple(BG.LYMPH)),
        G.PolygonGate(
            id="Singlets", parent="Lymphocytes", dims=(fsc, fsch), vertices=tuple(BG.SINGLET)
        ),
        G.RectangleGate(
            id="Live",
            parent="Singlets",
            dims=(fl("Viability"),),
            min=(None,),
            max=(BG.VIABILITY_MAX,),
        ),
        G.QuadrantGate(id="CD3xCD56", parent="Live", dividers=(cd3, cd56), quadrants=quads),
        G.RectangleGate(
            id="HLA-A2+", parent="Live", dims=(fl("HLA-A2"),), min=(BG.HLA_MIN,), max=(None,)
        ),
    ]
    for name, quad in (("donor NK", "CD3-CD56+"), ("donor CIK", "CD3+CD56+")):
        gid = name.replace(" ", "_")
        gates.append(G.BooleanGate(id=gid, name=name, op="and", operands=(quad, "HLA-A2+")))
    G.GatingStrategy(gates, name="donor cells").to_gatingml(path)


def data_segment(path: Path) -> tuple[int, int]:
    """Byte offset and float32 count of the DATA segment (from the file's TEXT)."""
    from cytokit.fcs.reader import read_fcs_datasets

    ds = read_fcs_datasets(path)[0]
    return ds.data[0], ds.n_events * ds.n_channels


def preread(path: Path) -> None:
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(1 << 20)
        while fh.readinto(buf):
            pass


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (``VmHWM``).

    Not ``ru_maxrss``: Linux keeps that across ``exec``, so a child would
    report its parent's peak (the simulator writing the file).
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(tool: str, path: Path, xml: Path) -> dict:
    if tool == "stream":
        import cytokit
        from cytokit import gating

        warm = path.with_name("warm.fcs")
        gating.load_strategy(xml).apply_file(warm)  # kernels from the cache
        preread(path)
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        strategy = gating.load_strategy(xml)
        result = strategy.apply_file(path)
        counts = result.counts
        dt = time.perf_counter() - t0
        names = dict(zip(counts["gate_id"], counts["count"], strict=True))
        by_pop = {p: int(names[p.replace(" ", "_")]) for p in BG.POPULATIONS}
        return {"time": dt, "counts": by_pop, "rss": peak_rss_mib(), "rss0": rss0}
    if tool == "cytokit":
        import cytokit
        from cytokit import gating

        warm = path.with_name("warm.fcs")
        gating.load_strategy(xml).apply(cytokit.read_fcs(warm))  # kernels from the cache
        preread(path)
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        sample = cytokit.read_fcs(path)
        strategy = gating.load_strategy(xml)
        result = strategy.apply(sample)
        counts = result.counts
        dt = time.perf_counter() - t0
        names = dict(zip(counts["gate_id"], counts["count"], strict=True))
        by_pop = {p: int(names[p.replace(" ", "_")]) for p in BG.POPULATIONS}
        return {"time": dt, "counts": by_pop, "rss": peak_rss_mib(), "rss0": rss0}
    if tool == "fromfile":
        offset, count = data_segment(path)
        preread(path)
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        x = np.fromfile(path, dtype="<f4", count=count, offset=offset)
        dt = time.perf_counter() - t0
        assert x.shape[0] == count
        return {"time": dt, "rss": peak_rss_mib(), "rss0": rss0}
    import flowkit  # noqa: F401  (import cost is not part of the timing)

    preread(path)
    res = BG.flowkit_counts(path)
    return {"time": res["chain"], "counts": res["counts"]}


def run(tool: str, path: Path, xml: Path) -> dict:
    return BG.run_script(__file__, tool, "--path", str(path), "--xml", str(xml))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000_000, help="events in the simulated file")
    ap.add_argument("--rounds", type=int, default=5, help="fresh processes per row")
    ap.add_argument("--flowkit-repeats", type=int, default=1)
    ap.add_argument("--no-flowkit", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the simulated file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--child", choices=["cytokit", "stream", "fromfile", "flowkit"], help=argparse.SUPPRESS
    )
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--xml", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path, args.xml)))
        return

    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"chain_{args.n}_{args.seed}.fcs"
    xml = DATA_DIR / "chain_strategy.xml"
    if not path.exists():
        print(f"writing {args.n:,} events to {path} ...", flush=True)
        BG.write_file(path, args.n, args.seed)
    BG.write_file(path.with_name("warm.fcs"), 64, 2)
    strategy_xml(xml)
    mib = args.n * BG.N_CHANNELS * 4 / 2**20
    print(f"{args.n:,} events x {BG.N_CHANNELS} float32 = {mib:.0f} MiB of event data")

    rows = ["fromfile", "cytokit", "stream"]
    times: dict[str, list[float]] = {t: [] for t in rows}
    rss: dict[str, list[float]] = {t: [] for t in rows}  # the process's peak
    added: dict[str, list[float]] = {t: [] for t in rows}  # what the timed work added to it
    counts = {}
    for r in range(args.rounds):
        for tool in rows[r % len(rows) :] + rows[: r % len(rows)]:
            out = run(tool, path, xml)
            times[tool].append(out["time"])
            rss[tool].append(out["rss"])
            added[tool].append(out["rss"] - out["rss0"])
            counts.setdefault(tool, out.get("counts"))
    if not args.no_flowkit:
        times["flowkit"] = []
        for _ in range(args.flowkit_repeats):
            out = run("flowkit", path, xml)
            times["flowkit"].append(out["time"])
            counts["flowkit"] = out["counts"]

    floor = statistics.median(times["fromfile"])
    floor_best = min(times["fromfile"])
    print()
    print("| row | median | best | x np.fromfile (median; best) | peak RSS (added) |")
    print("| --- | --- | --- | --- | --- |")
    for tool, label in (
        ("fromfile", "`np.fromfile` of the DATA segment"),
        ("cytokit", "cytokit: `read_fcs` + `load_strategy(xml)` + `apply`"),
        ("stream", "cytokit: `load_strategy(xml)` + `apply_file`"),
        ("flowkit", "FlowKit: `Sample` + `gate_sample`"),
    ):
        if tool not in times:
            continue
        med, best = statistics.median(times[tool]), min(times[tool])
        mem = "-"
        if rss.get(tool):
            mem = f"{statistics.median(rss[tool]):.0f} MiB ({statistics.median(added[tool]):.0f})"
        print(
            f"| {label} | {med:.3f} s | {best:.3f} s | {med / floor:.2f}x; "
            f"{best / floor_best:.2f}x | {mem} |"
        )
    print()
    for tool in ("cytokit", "stream"):
        r = [t / f for t, f in zip(times[tool], times["fromfile"], strict=True)]
        print(f"{tool} / np.fromfile, same round, median: {statistics.median(r):.2f}x")
    ratios = [s / c for s, c in zip(times["stream"], times["cytokit"], strict=True)]
    print(f"apply_file / read_fcs + apply, same round, median: {statistics.median(ratios):.2f}x")
    print("apply_file counts identical to apply's:", counts["stream"] == counts["cytokit"])
    if "flowkit" in times:
        ratio = statistics.median(times["flowkit"]) / statistics.median(times["cytokit"])
        print(f"\nFlowKit / cytokit (medians): {ratio:.1f}x")
        same = counts["flowkit"] == counts["cytokit"]
        print("counts identical to FlowKit's:", same)
        if not same:
            for p in BG.POPULATIONS:
                print(f"  {p}: cytokit {counts['cytokit'][p]}, FlowKit {counts['flowkit'][p]}")
    print("cytokit counts:", json.dumps(counts["cytokit"]))
    print("runs:", json.dumps(times))
    print("peak RSS (MiB):", json.dumps({t: [round(x) for x in v] for t, v in rss.items()}))
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
