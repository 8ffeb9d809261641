"""Benchmark: gate a whole file in one fused pass (cytokit) vs FlowKit's shortest path.

Usage::

    python benchmarks/bench_gating.py                      # 10M events, 5 cytokit runs, 1 FlowKit run
    python benchmarks/bench_gating.py --n 1000000 --flowkit-repeats 2
    python benchmarks/bench_gating.py --no-flowkit         # cytokit only

The script writes a simulated FCS 3.1 file (float32, little-endian, with a
``$SPILLOVER`` keyword) under ``benchmarks/_data/`` (deleted afterwards unless
``--keep``), then runs each tool in a **fresh subprocess** so its peak RSS
is its own:

* cytokit: ``read_fcs`` → compile the strategy to a `GatingPlan` (compensation
  with the file's spillover, logicle on the fluorescence channels) → one
  ``evaluate_plan(..., membership=False)`` giving every count. The first run
  also pays the Numba cache load (reported separately); the time printed is
  the median of the remaining runs.
* FlowKit: ``Sample(path)`` → a ``GatingStrategy`` with the same
  compensation (``Matrix``), logicle transforms and gates → ``gate_sample``.

The gating tree (the lab's donor-cell strategy): Lymphocytes (polygon,
FSC-A × SSC-A) → Singlets (polygon, FSC-A × FSC-H) → Live (viability below a
cut) → CD3 × CD56 quadrants and HLA-A2+ (range); donor NK = CD3−CD56+ AND
HLA-A2+, donor CIK = CD3+CD56+ AND HLA-A2+. Counts of both tools are
compared gate by gate and must be identical.
"""

from __future__ import annotations

import argparse
import array
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
TIMES: dict[str, list[float]] = {"load": [], "gate": []}  # cytokit's phases, per run

CHANNELS = [
    ("FSC-A", ""),
    ("FSC-H", ""),
    ("SSC-A", ""),
    ("SSC-H", ""),
    ("FITC-A", "CD3"),
    ("PE-A", "CD56"),
    ("PerCP-Cy5-5-A", "CD8"),
    ("APC-A", "HLA-A2"),
    ("BV421-A", "Viability"),
    ("BV510-A", "CD16"),
    ("PE-Cy7-A", "CD45"),
    ("Time", ""),
]
FLUOR = [name for name, marker in CHANNELS if marker]
LOGICLE = {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}

# Gate geometry (scatter in scale units; fluorescence on the logicle scale, 0..1).
LYMPH = [
    (30000, 8000),
    (95000, 8000),
    (110000, 30000),
    (90000, 52000),
    (40000, 50000),
    (25000, 25000),
]
SINGLET = [(20000, 15000), (140000, 118000), (140000, 150000), (20000, 30000)]
VIABILITY_MAX = 0.42
CD3_CUT, CD56_CUT = 0.43, 0.41
HLA_MIN = 0.45
# quadrant name: (CD3 side, CD56 side), 0 = below the cut, 1 = at or above
QUADRANTS = {"CD3-CD56-": (0, 0), "CD3+CD56-": (1, 0), "CD3-CD56+": (0, 1), "CD3+CD56+": (1, 1)}


# --- simulated data -------------------------------------------------------------------------------


def spillover_matrix() -> np.ndarray:
    rng = np.random.default_rng(11)
    k = len(FLUOR)
    s = np.eye(k)
    for i in range(k):
        for j in range(k):
            if i != j:
                s[i, j] = rng.uniform(0.0, 0.04) if abs(i - j) > 1 else rng.uniform(0.05, 0.25)
    return s


def simulate(n: int, seed: int) -> np.ndarray:
    """Events in scale units, float32 (n, len(CHANNELS)): a PBMC-like mixture after NK/CIK infusion."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, len(CHANNELS)), dtype=np.float32)
    spill = spillover_matrix()
    # population: weight, FSC mean, SSC mean, {marker: log10 mean of true intensity}
    pops = [
        (0.12, 15000, 6000, {}),  # debris
        (0.22, 62000, 22000, {"CD3": 3.6, "CD8": 3.3, "CD45": 4.0}),  # T cells
        (0.08, 66000, 25000, {"CD56": 3.7, "CD16": 3.5, "CD45": 4.0}),  # NK
        (0.05, 70000, 27000, {"CD3": 3.6, "CD56": 3.4, "CD8": 3.5, "CD45": 4.0}),  # CIK / NKT-like
        (0.08, 60000, 20000, {"CD45": 3.9}),  # B cells
        (0.15, 95000, 60000, {"CD45": 3.8, "CD16": 2.8}),  # monocytes
        (0.30, 110000, 140000, {"CD45": 3.5, "CD16": 3.9}),  # granulocytes
    ]
    weights = np.array([p[0] for p in pops])
    chunk = 1 << 20
    idx = {name: j for j, (name, _) in enumerate(CHANNELS)}
    for s0 in range(0, n, chunk):
        m = min(chunk, n - s0)
        pop = rng.choice(len(pops), size=m, p=weights / weights.sum())
        fsc = np.empty(m)
        ssc = np.empty(m)
        true = np.exp(rng.normal(np.log(30.0), 1.0, size=(m, len(FLUOR))))  # autofluorescence
        for p, (_, f, s, markers) in enumerate(pops):
            sel = pop == p
            c = sel.sum()
            fsc[sel] = rng.normal(f, 0.12 * f, c)
            ssc[sel] = rng.normal(s, 0.18 * s, c)
            for marker, mu in markers.items():
                j = FLUOR.index(idx_marker(marker))
                true[sel, j] += 10 ** rng.normal(mu, 0.25, c)
        # HLA-A2: donor cells (NK, CIK) mostly positive, recipient cells negative
        donor = np.isin(pop, [2, 3]) & (rng.random(m) < 0.8) | (rng.random(m) < 0.05)
        true[donor, FLUOR.index("APC-A")] += 10 ** rng.normal(3.8, 0.2, donor.sum())
        # dead cells: bright viability dye
        dead = rng.random(m) < 0.1
        true[dead, FLUOR.index("BV421-A")] += 10 ** rng.normal(4.0, 0.2, dead.sum())
        # doublets: FSC-A about twice FSC-H
        doublet = rng.random(m) < 0.06
        height = fsc * rng.normal(0.85, 0.03, m)
        fsc[doublet] *= 1.9
        obs = true @ spill + rng.normal(0.0, 40.0, size=true.shape)  # spillover + electronic noise
        block = out[s0 : s0 + m]
        block[:, idx["FSC-A"]] = np.clip(fsc, 0, 262143)
        block[:, idx["FSC-H"]] = np.clip(height, 0, 262143)
        block[:, idx["SSC-A"]] = np.clip(ssc, 0, 262143)
        block[:, idx["SSC-H"]] = np.clip(ssc * 0.9, 0, 262143)
        block[:, [idx[c] for c in FLUOR]] = np.minimum(obs, 262143)
        block[:, idx["Time"]] = (s0 + np.arange(m)) * (600.0 / n)
    return out


def idx_marker(marker: str) -> str:
    return next(name for name, mk in CHANNELS if mk == marker)


def write_file(path: Path, n: int, seed: int) -> None:
    try:  # the project's own simulator and writer, when present
        from cytokit.simulate import benchmark_file  # type: ignore[attr-defined]

        benchmark_file(path, n_events=n, seed=seed)
        return
    except (ImportError, NotImplementedError):
        pass
    import flowio

    ev = simulate(n, seed)
    flat = array.array("f")
    flat.frombytes(ev.tobytes())
    del ev
    spill = spillover_matrix()
    spill_text = ",".join([str(len(FLUOR)), *FLUOR, *(repr(float(v)) for v in spill.ravel())])
    with open(path, "wb") as fh:
        flowio.create_fcs(
            fh,
            flat,
            [c for c, _ in CHANNELS],
            [m for _, m in CHANNELS],
            metadata_dict={"$SPILLOVER": spill_text},
        )


# --- reading (fallback until cytokit.read_fcs exists) ----------------------------------------------


def parse_spill(text: str) -> tuple[list[str], np.ndarray]:
    parts = [p.strip() for p in text.split(",")]
    k = int(parts[0])
    return parts[1 : 1 + k], np.array([float(v) for v in parts[1 + k :]]).reshape(k, k)


def read_events(path: Path) -> tuple[np.ndarray, list[str], tuple[list[str], np.ndarray]]:
    """Events (float32), channel names and spillover, via cytokit.read_fcs when it is available."""
    import cytokit

    try:
        s = cytokit.read_fcs(path)
        spill = (list(s.spillover.channels), np.asarray(s.spillover.matrix))
        return s.events, [c.name for c in s.channels], spill
    except NotImplementedError:
        pass
    # Minimal reader for the little-endian float32 list-mode file this script writes.
    with open(path, "rb") as fh:
        head = fh.read(58)
        t0, t1 = int(head[10:18]), int(head[18:26])
        fh.seek(t0)
        text = fh.read(t1 - t0 + 1).decode("latin-1")
    delim = text[0]
    fields = text[1:].split(delim)
    kw = {fields[i].upper(): fields[i + 1] for i in range(0, len(fields) - 1, 2)}
    assert kw["$DATATYPE"] == "F" and kw["$BYTEORD"] == "1,2,3,4", "unexpected file layout"
    npar, ntot = int(kw["$PAR"]), int(kw["$TOT"])
    ev = np.fromfile(path, dtype="<f4", count=npar * ntot, offset=int(kw["$BEGINDATA"]))
    names = [kw[f"$P{i}N"] for i in range(1, npar + 1)]
    return ev.reshape(ntot, npar), names, parse_spill(kw["$SPILLOVER"])


# --- the two pipelines ------------------------------------------------------------------------------


def cytokit_counts(path: Path) -> dict[str, int]:
    import cytokit.kernels as K

    t0 = time.perf_counter()
    events, names, (spill_names, spill) = read_events(path)
    TIMES["load"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
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
    counts, _ = K.evaluate_plan(events, b.build(), membership=False)
    TIMES["gate"].append(time.perf_counter() - t0)
    return {name: int(counts[i]) for name, i in g.items()}


def flowkit_counts(path: Path) -> dict[str, int]:
    import flowkit as fk

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
    names = ["Lymphocytes", "Singlets", "Live", *QUADRANTS, "HLA-A2+", "donor NK", "donor CIK"]
    return {n: int(res.get_gate_count(n)) for n in names}


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
    fn = cytokit_counts if tool == "cytokit" else flowkit_counts
    if tool == "cytokit":
        import cytokit.kernels  # noqa: F401  (import cost is not part of the timing)
    else:
        import flowkit  # noqa: F401
    rss_import = peak_rss()
    times, counts = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        counts = fn(path)
        times.append(time.perf_counter() - t0)
    peak = peak_rss()
    result = {"times": times, "counts": counts, "rss_import": rss_import, "rss_peak": peak}
    print(json.dumps({**result, "phases": TIMES}))


def run_child(tool: str, path: Path, repeats: int) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", tool, "--path", str(path), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"{tool} run failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--child", choices=["cytokit", "flowkit"], help=argparse.SUPPRESS)
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
    data_bytes = args.n * len(CHANNELS) * 4
    mib = 2**20

    def rss(r: dict) -> str:
        return (
            f"peak RSS {r['rss_peak'] / mib:6.0f} MiB = {r['rss_peak'] / data_bytes:5.2f}x the event data "
            f"(after imports {r['rss_import'] / mib:.0f} MiB)"
        )

    try:
        ck = run_child("cytokit", path, args.repeats + 1)
        first, rest = ck["times"][0], ck["times"][1:]
        t_ck = statistics.median(rest)
        load = statistics.median(ck["phases"]["load"][1:])
        gate = statistics.median(ck["phases"]["gate"][1:])
        print(f"events: {args.n:,} x {len(CHANNELS)} float32 = {data_bytes / mib:.0f} MiB")
        print(f"cytokit  first run (incl. Numba cache load)   {first:7.3f} s")
        print(f"cytokit  median of {len(rest)} runs                  {t_ck:7.3f} s")
        print(f"           runs: {', '.join(f'{t:.3f}' for t in rest)}")
        print(
            f"           load {load:.3f} s; plan + compensate + logicle + gates + counts {gate:.3f} s"
        )
        print(f"cytokit  {rss(ck)}")
        if not args.no_flowkit:
            fkr = run_child("flowkit", path, args.flowkit_repeats)
            t_fk = statistics.median(fkr["times"])
            print(f"flowkit  median of {len(fkr['times'])} runs                  {t_fk:7.3f} s")
            print(f"flowkit  {rss(fkr)}")
            print(f"speed-up (same run): {t_fk / t_ck:.1f}x")
            diff = {
                k: (v, fkr["counts"][k]) for k, v in ck["counts"].items() if fkr["counts"][k] != v
            }
            print("counts identical:", not diff)
            for k, (a, b) in diff.items():
                print(f"  {k}: cytokit {a}, flowkit {b}")
        print("counts:", json.dumps(ck["counts"]))
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
