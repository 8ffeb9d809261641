"""Benchmark: gate a whole file in one fused pass (cytokit) vs FlowKit's shortest path.

Usage::

    python benchmarks/bench_gating.py                      # 10M events, 5 cytokit runs, 1 FlowKit run
    python benchmarks/bench_gating.py --n 1000000 --flowkit-repeats 2
    python benchmarks/bench_gating.py --no-flowkit         # cytokit only

The script writes a simulated FCS 3.1 file with the project's simulator
(`cytokit.simulate.benchmark_file`: one NK patient at day 7, float32, 11
channels, ``$SPILLOVER`` over the 7 fluorescence detectors) under
``benchmarks/_data/`` (deleted afterwards unless ``--keep``), then runs each
tool in a **fresh subprocess** so its peak RSS is its own:

* cytokit: ``read_fcs`` → compile the strategy to a `GatingPlan` (compensation
  with the file's spillover, logicle on the fluorescence channels) → one
  ``evaluate_plan(..., membership=False)`` giving every count. The first run
  also pays the Numba cache load (reported separately); the time printed is
  the median of the remaining runs.
* FlowKit: ``Sample(path)`` → a ``GatingStrategy`` with the same
  compensation (``Matrix``), logicle transforms and gates → ``gate_sample``.

Statistics stage (timed separately from the chain): the median, mean, SD
and rCV of 4 markers (CD3, CD56, CD16, CD8; compensated, logicle) in all 10
populations. cytokit: ``evaluate_plan(..., packed=True)`` then
``population_stats`` (exact medians, two passes, no copy of the member
values). Compared on the same values with numpy (``np.median`` of each
population's values, given the materialised values and boolean masks; a
third subprocess) and with FlowKit's shortest route to the same medians
(``apply_compensation`` + ``apply_transform`` on the Sample, its gate
memberships, ``np.median``).

The gating tree (the lab's donor-cell strategy): Lymphocytes (polygon,
FSC-A × SSC-A) → Singlets (polygon, FSC-A × FSC-H) → Live (viability below a
cut) → CD3 × CD56 quadrants and HLA-A2+ (range); donor NK = CD3−CD56+ AND
HLA-A2+, donor CIK = CD3+CD56+ AND HLA-A2+. Counts of both tools are
compared gate by gate and must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "_data"
TIMES: dict[str, list[float]] = {}  # phases, per run
PEAKS: dict[str, int] = {}  # peak RSS at the end of a stage of the first run

# The simulator's panel (marker -> detector), as in sample_data/study.toml; checked against
# the file's $PnS in the cytokit run.
PANEL = {
    "HLA-A2": "FITC-A",
    "CD56": "PE-A",
    "Viability": "PerCP-Cy5-5-A",
    "CD16": "PE-Cy7-A",
    "CD3": "APC-A",
    "CD8": "APC-H7-A",
    "CD45": "V500-C-A",
}
N_CHANNELS = 11  # FSC-A, FSC-H, SSC-A, the 7 detectors above, Time
LOGICLE = {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}

# Gate geometry (scatter in scale units; fluorescence on the logicle scale, 0..1), placed on
# the simulator's populations like the fallbacks of sample_data/strategy.yaml.
LYMPH = [
    (46000, 3000),
    (80000, 5000),
    (98000, 16000),
    (94000, 27000),
    (70000, 23000),
    (48000, 13000),
]
# FSC-H / FSC-A between 0.78 and 1.02: single cells (doublets have a lower ratio)
SINGLET = [(20000, 15600), (262143, 204472), (262143, 267386), (20000, 20400)]
VIABILITY_MAX = 0.55
CD3_CUT, CD56_CUT = 0.45, 0.45
HLA_MIN = 0.58
STAT_MARKERS = ["CD3", "CD56", "CD16", "CD8"]
POPULATIONS = ["Lymphocytes", "Singlets", "Live", "CD3-CD56-", "CD3+CD56-", "CD3-CD56+"]
POPULATIONS += ["CD3+CD56+", "HLA-A2+", "donor NK", "donor CIK"]
# quadrant name: (CD3 side, CD56 side), 0 = below the cut, 1 = at or above
QUADRANTS = {"CD3-CD56-": (0, 0), "CD3+CD56-": (1, 0), "CD3-CD56+": (0, 1), "CD3+CD56+": (1, 1)}


def idx_marker(marker: str) -> str:
    return PANEL[marker]


def write_file(path: Path, n: int, seed: int) -> None:
    """The project's simulator: one NK patient at day 7 (donor NK near their peak)."""
    from cytokit.simulate import benchmark_file

    benchmark_file(path, n_events=n, seed=seed)


def parse_spill(text: str) -> tuple[list[str], np.ndarray]:
    parts = [p.strip() for p in text.split(",")]
    k = int(parts[0])
    return parts[1 : 1 + k], np.array([float(v) for v in parts[1 + k :]]).reshape(k, k)


def read_events(path: Path) -> tuple[np.ndarray, list[str], tuple[list[str], np.ndarray]]:
    """Events (float32 scale values), channel names and spillover, by `cytokit.read_fcs`."""
    import cytokit

    s = cytokit.read_fcs(path)
    markers = {c.marker: c.name for c in s.channels if c.marker}
    if any(markers.get(m) != d for m, d in PANEL.items()):
        raise SystemExit(f"{path}: panel {markers} is not the simulator's {PANEL}")
    spill = (list(s.spillover.channels), np.asarray(s.spillover.matrix))
    return s.events, [c.name for c in s.channels], spill


# --- the two pipelines ------------------------------------------------------------------------------


def phase(name: str, seconds: float) -> None:
    TIMES.setdefault(name, []).append(seconds)


def cytokit_plan(names, spill_names, spill):
    """The strategy as a `GatingPlan`: (plan, {population: gate}, [statistics dimensions])."""
    import cytokit.kernels as K

    col = {n: i for i, n in enumerate(names)}
    b = K.PlanBuilder()
    comp = b.compensation(K.compensation_matrix(spill), [col[n] for n in spill_names])

    def fl(marker: str) -> int:
        return b.dimension(
            col[idx_marker(marker)], compensation=comp, transform=K.XF_LOGICLE, params=LOGICLE
        )

    fsc_a, fsc_h, ssc_a = (
        b.dimension(col["FSC-A"]),
        b.dimension(col["FSC-H"]),
        b.dimension(col["SSC-A"]),
    )
    g = {}
    g["Lymphocytes"] = b.polygon([fsc_a, ssc_a], LYMPH, name="Lymphocytes")
    g["Singlets"] = b.polygon([fsc_a, fsc_h], SINGLET, parent=g["Lymphocytes"], name="Singlets")
    g["Live"] = b.rectangle(
        [fl("Viability")], [None], [VIABILITY_MAX], parent=g["Singlets"], name="Live"
    )
    qnames = list(QUADRANTS)
    quads = b.quadrants(
        [fl("CD3"), fl("CD56")],
        [[CD3_CUT], [CD56_CUT]],
        [QUADRANTS[q] for q in qnames],
        parent=g["Live"],
        names=qnames,
    )
    g.update(zip(qnames, quads, strict=True))
    g["HLA-A2+"] = b.rectangle([fl("HLA-A2")], [HLA_MIN], [None], parent=g["Live"], name="HLA-A2+")
    g["donor NK"] = b.boolean("and", [g["CD3-CD56+"], g["HLA-A2+"]], name="donor NK")
    g["donor CIK"] = b.boolean("and", [g["CD3+CD56+"], g["HLA-A2+"]], name="donor CIK")
    stat_dims = [fl(m) for m in STAT_MARKERS]  # not read by gates: evaluate_plan skips them
    return b.build(), g, stat_dims


def cytokit_counts(path: Path) -> dict:
    """The chain (load → plan → one fused pass → counts), then the statistics stage."""
    import cytokit.kernels as K

    t0 = time.perf_counter()
    events, names, (spill_names, spill) = read_events(path)
    phase("load", time.perf_counter() - t0)
    t0 = time.perf_counter()
    plan, g, stat_dims = cytokit_plan(names, spill_names, spill)
    counts, _ = K.evaluate_plan(events, plan, membership=False)
    phase("gate", time.perf_counter() - t0)
    PEAKS.setdefault("chain", peak_rss())  # before the statistics stage allocates its own
    chain = TIMES["load"][-1] + TIMES["gate"][-1]
    # statistics stage (not part of the chain's time)
    gates = [g[p] for p in POPULATIONS]
    t0 = time.perf_counter()
    _, packed = K.evaluate_plan(events, plan, membership=gates, packed=True)
    phase("membership", time.perf_counter() - t0)
    t0 = time.perf_counter()
    st = K.population_stats(events, plan, packed, gates, stat_dims, membership_gates=gates)
    phase("stats", time.perf_counter() - t0)
    return {
        "chain": chain,
        "counts": {name: int(counts[i]) for name, i in g.items()},
        "medians": st.median.tolist(),
        "rcv": st.rcv.tolist(),
        "passes": st.passes,
    }


def numpy_medians(path: Path) -> dict:
    """np.median of each population's values of the same dimensions (materialised first)."""
    import cytokit.kernels as K

    events, names, (spill_names, spill) = read_events(path)
    plan, g, stat_dims = cytokit_plan(names, spill_names, spill)
    gates = [g[p] for p in POPULATIONS]
    t0 = time.perf_counter()
    _, mem = K.evaluate_plan(events, plan, membership=gates)
    values = K.dimension_values(events, plan, stat_dims)
    phase("materialise", time.perf_counter() - t0)
    t0 = time.perf_counter()
    with np.errstate(invalid="ignore"):  # an empty population's median is NaN
        med = [[float(np.median(v[m])) if m.any() else np.nan for v in values] for m in mem]
    phase("median", time.perf_counter() - t0)
    return {"chain": 0.0, "medians": med}


def flowkit_counts(path: Path) -> dict:
    import flowkit as fk

    t_start = time.perf_counter()
    sample = fk.Sample(str(path))
    spill_names, spill = parse_spill(sample.metadata["spillover"])
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", fk.Matrix(spill, spill_names))
    gs.add_transform(
        "logicle",
        fk.transforms.LogicleTransform(LOGICLE["T"], LOGICLE["W"], LOGICLE["M"], LOGICLE["A"]),
    )

    def fl(marker, lo=None, hi=None):
        return fk.Dimension(idx_marker(marker), "spill", "logicle", range_min=lo, range_max=hi)

    def lin(name):
        return fk.Dimension(name)

    root = ("root",)
    p_lym = (*root, "Lymphocytes")
    p_sing = (*p_lym, "Singlets")
    p_live = (*p_sing, "Live")
    gs.add_gate(fk.gates.PolygonGate("Lymphocytes", [lin("FSC-A"), lin("SSC-A")], LYMPH), root)
    gs.add_gate(fk.gates.PolygonGate("Singlets", [lin("FSC-A"), lin("FSC-H")], SINGLET), p_lym)
    gs.add_gate(fk.gates.RectangleGate("Live", [fl("Viability", hi=VIABILITY_MAX)]), p_sing)
    dividers = [
        fk.QuadrantDivider("cd3", idx_marker("CD3"), "spill", [CD3_CUT], "logicle"),
        fk.QuadrantDivider("cd56", idx_marker("CD56"), "spill", [CD56_CUT], "logicle"),
    ]
    quads = []
    for name, (s3, s56) in QUADRANTS.items():
        r3 = (CD3_CUT, None) if s3 else (None, CD3_CUT)
        r56 = (CD56_CUT, None) if s56 else (None, CD56_CUT)
        quads.append(fk.gates.Quadrant(name, ["cd3", "cd56"], [r3, r56]))
    gs.add_gate(fk.gates.QuadrantGate("CD3xCD56", dividers, quads), p_live)
    gs.add_gate(fk.gates.RectangleGate("HLA-A2+", [fl("HLA-A2", lo=HLA_MIN)]), p_live)
    for name, quad in (("donor NK", "CD3-CD56+"), ("donor CIK", "CD3+CD56+")):
        refs = [
            {"ref": quad, "path": (*p_live, "CD3xCD56"), "complement": False},
            {"ref": "HLA-A2+", "path": p_live, "complement": False},
        ]
        gs.add_gate(fk.gates.BooleanGate(name, "and", refs), root)
    res = gs.gate_sample(sample)
    counts = {n: int(res.get_gate_count(n)) for n in POPULATIONS}
    chain = time.perf_counter() - t_start
    # statistics: FlowKit's shortest route to the medians of the same values
    t0 = time.perf_counter()
    sample.apply_compensation(gs.get_comp_matrix("spill"))
    sample.apply_transform(gs.get_transform("logicle"))
    xform = sample.get_events(source="xform")
    cols = [sample.pnn_labels.index(idx_marker(m)) for m in STAT_MARKERS]
    med = []
    for name in POPULATIONS:
        m = res.get_gate_membership(name)
        med.append([float(np.median(xform[m, c])) if m.any() else np.nan for c in cols])
    phase("stats", time.perf_counter() - t0)
    return {"chain": chain, "counts": counts, "medians": med}


def peak_rss() -> int:
    """This process's peak resident set size in bytes.

    ``VmHWM`` is reset when a process execs; ``ru_maxrss`` is not on Linux (a
    child would report its parent's peak), so it is only the fallback.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(tool: str, path: Path, repeats: int) -> None:
    """Run one tool ``repeats`` times in this (fresh) process and print JSON."""
    fn = {"cytokit": cytokit_counts, "flowkit": flowkit_counts, "numpy": numpy_medians}[tool]
    if tool == "flowkit":
        import flowkit  # noqa: F401  (import cost is not part of the timing)
    else:
        import cytokit.kernels  # noqa: F401
    rss_import = peak_rss()
    runs = [fn(path) for _ in range(repeats)]
    result = {
        "times": [r["chain"] for r in runs],
        "last": runs[-1],
        "rss_import": rss_import,
        "rss_peak": peak_rss(),
        "rss_chain": PEAKS.get("chain"),
        "phases": TIMES,
    }
    print(json.dumps(result))


def run_script(script: str, tool: str, *args: str) -> dict:
    """Run ``script --child tool ARGS`` in a fresh process; its last stdout line is JSON."""
    res = subprocess.run(
        [sys.executable, script, "--child", tool, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"{tool} run failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_child(tool: str, path: Path, repeats: int) -> dict:
    return run_script(__file__, tool, "--path", str(path), "--repeats", str(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000_000, help="events in the simulated file")
    ap.add_argument("--repeats", type=int, default=5, help="timed cytokit runs (after one warm-up)")
    ap.add_argument("--flowkit-repeats", type=int, default=1)
    ap.add_argument("--no-flowkit", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the simulated file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", choices=["cytokit", "flowkit", "numpy"], help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.repeats)
        return

    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"bench_gating_{args.n}_{args.seed}.fcs"
    if not path.exists():
        t0 = time.perf_counter()
        write_file(path, args.n, args.seed)
        print(
            f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s"
        )
    data_bytes = args.n * N_CHANNELS * 4
    mib = 2**20

    def rss(r: dict) -> str:
        text = (
            f"peak RSS {r['rss_peak'] / mib:6.0f} MiB = {r['rss_peak'] / data_bytes:5.2f}x the event data "
            f"(after imports {r['rss_import'] / mib:.0f} MiB)"
        )
        if r.get("rss_chain"):
            c = r["rss_chain"]
            text += f"; the chain alone {c / mib:.0f} MiB = {c / data_bytes:.2f}x"
        return text

    def med(xs):
        return statistics.median(xs[1:] if len(xs) > 1 else xs)

    try:
        ck = run_child("cytokit", path, args.repeats + 1)
        first, rest = ck["times"][0], ck["times"][1:]
        t_ck = statistics.median(rest)
        ph = ck["phases"]
        print(f"events: {args.n:,} x {N_CHANNELS} float32 = {data_bytes / mib:.0f} MiB")
        print(f"cytokit  first run (incl. Numba cache load)   {first:7.3f} s")
        print(f"cytokit  median of {len(rest)} runs                  {t_ck:7.3f} s")
        print(f"           runs: {', '.join(f'{t:.3f}' for t in rest)}")
        print(
            f"           load {med(ph['load']):.3f} s; plan + compensate + logicle + gates + counts "
            f"{med(ph['gate']):.3f} s"
        )
        print(f"cytokit  {rss(ck)}  (chain and statistics stage)")
        ck_med = np.array(ck["last"]["medians"])
        t_mem, t_stats = med(ph["membership"]), med(ph["stats"])
        npr = run_child("numpy", path, 3)
        t_np = med(npr["phases"]["median"])
        same = np.array_equal(ck_med, np.array(npr["last"]["medians"]), equal_nan=True)
        print(
            f"statistics, {len(POPULATIONS)} populations x {len(STAT_MARKERS)} markers "
            "(compensated, logicle):"
        )
        print(
            f"  cytokit population_stats (median, mean, SD, rCV; {ck['last']['passes']} passes) "
            f"{t_stats:7.3f} s  (+ packed membership {t_mem:.3f} s)"
        )
        print(
            f"  numpy np.median on materialised values       {t_np:7.3f} s  "
            f"(materialising values + masks {med(npr['phases']['materialise']):.3f} s)"
        )
        print(f"  speed-up vs numpy (same run): {t_np / t_stats:.1f}x; medians identical: {same}")
        if not args.no_flowkit:
            fkr = run_child("flowkit", path, args.flowkit_repeats)
            t_fk = statistics.median(fkr["times"])
            t_fks = statistics.median(fkr["phases"]["stats"])
            fk_med = np.array(fkr["last"]["medians"])
            print(
                f"  flowkit comp + transform + masks + np.median  {t_fks:7.3f} s  "
                f"({t_fks / t_stats:.1f}x cytokit); max |median difference| "
                f"{np.nanmax(np.abs(fk_med - ck_med)):.2e} (NaN: empty population)"
            )
            print(f"flowkit  median of {len(fkr['times'])} runs                  {t_fk:7.3f} s")
            print(f"flowkit  {rss(fkr)}")
            print(f"speed-up (same run): {t_fk / t_ck:.1f}x")
            fk_counts = fkr["last"]["counts"]
            diff = {
                k: (v, fk_counts[k]) for k, v in ck["last"]["counts"].items() if fk_counts[k] != v
            }
            print("counts identical:", not diff)
            for k, (a, b) in diff.items():
                print(f"  {k}: cytokit {a}, flowkit {b}")
        print("counts:", json.dumps(ck["last"]["counts"]))
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
