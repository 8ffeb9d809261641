"""Benchmark: donor % of NK and CIK cells on clogged files, with and without acquisition QC.

Usage::

    python benchmarks/bench_qc_chimerism.py --seeds 2001 2004 --patients 4 --events 50000

For each seed a simulated study (``cytokit.simulate.preset_design("sample")``
with fresh seeds) is written with one clog injected into every file
(`cytokit.simulate.anomalies.random_plan`, kind ``clog``: slow flow, a burst,
dimmed and coincident events), then analysed twice through `cytokit.analyze`:
without ``[acquisition_qc]`` and with it (defaults). Each NK and CIK row of
``chimerism.csv`` with status ``quantified`` is compared with the simulator's
truth for the file (``truth/populations.csv``: donor_events / events of the
population among all the file's events); the absolute error in percentage
points is summarised (median, 95th percentile, maximum) for both runs.
Files that QC failed are counted, not compared.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

POPULATIONS = ("NK", "CIK")


def clogged_study(folder: Path, seed: int, patients: int, events: int) -> Path:
    from cytokit import simulate
    from cytokit.simulate import anomalies as A
    from cytokit.simulate.study import simulate_study

    design = simulate.preset_design(
        "sample", seed=seed, n_patients=patients, n_events=events, days=(7, 14, 28)
    )
    seconds = events / design.event_rate

    def plan(spec, day):
        rng = np.random.default_rng([seed, zlib.crc32(spec.id.encode()), day])
        return A.random_plan(rng, seconds, kinds=("clog",))

    return simulate_study(folder, design, anomalies=plan)


def errors(study: Path, out: Path, qc: bool) -> tuple[pd.DataFrame, int]:
    """(one row per file and population: error in pp, number of files failed)."""
    import cytokit

    toml = study / "study.toml"
    base = toml.read_text().split("\n[acquisition_qc]")[0]
    toml.write_text(base + ("\n[acquisition_qc]\nenabled = true\n" if qc else ""))
    res = cytokit.analyze(study, out, scheduler="serial")
    truth = pd.read_csv(study / "truth" / "populations.csv", dtype={"patient": str})
    truth = truth[truth["population"].isin(POPULATIONS)]
    truth = truth.assign(true_pct=100 * truth["donor_events"] / truth["events"])
    chim = res.chimerism[
        res.chimerism["population"].isin(POPULATIONS) & (res.chimerism["status"] == "quantified")
    ]
    m = chim.merge(truth[["file", "population", "true_pct"]], on=["file", "population"])
    m["error_pp"] = (m["donor_pct"].astype(float) - m["true_pct"]).abs()
    failed = int((res.failures["stage"] == "acquisition_qc").sum()) if len(res.failures) else 0
    return m[["file", "population", "events", "donor_pct", "true_pct", "error_pp"]], failed


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs=2, default=(2001, 2004), metavar=("FIRST", "LAST"))
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--events", type=int, default=50_000)
    args = ap.parse_args()
    rows = {False: [], True: []}
    failed = {False: 0, True: 0}
    tmp = Path(tempfile.mkdtemp(prefix="bench_qc_chim_"))
    try:
        for seed in range(args.seeds[0], args.seeds[1] + 1):
            study = clogged_study(tmp / f"s{seed}", seed, args.patients, args.events)
            for qc in (False, True):
                frame, n_failed = errors(study, tmp / f"o{seed}_{int(qc)}", qc)
                rows[qc].append(frame.assign(seed=seed))
                failed[qc] += n_failed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for qc in (False, True):
        f = pd.concat(rows[qc], ignore_index=True)
        e = f["error_pp"]
        label = "with QC   " if qc else "without QC"
        print(
            f"{label}: {len(f)} NK/CIK rows, |donor % - truth| median {e.median():.2f} pp, "
            f"p95 {e.quantile(0.95):.2f} pp, max {e.max():.2f} pp; files failed by QC: "
            f"{failed[qc]}"
        )
        for pop in POPULATIONS:
            sub = f[f["population"] == pop]["error_pp"]
            if len(sub):
                print(f"    {pop}: n={len(sub)}, median {sub.median():.2f}, max {sub.max():.2f} pp")


if __name__ == "__main__":
    main()
