"""Benchmark: donor % of NK and CIK cells on clogged files, with and without acquisition QC.

Usage::

    python benchmarks/bench_qc_chimerism.py --seeds 2001 2004 --patients 4 --events 50000
    python benchmarks/bench_qc_chimerism.py --even ...     # populations spread evenly in time

For each seed a simulated study (``cytokit.simulate.preset_design("sample")``
with fresh seeds) is written in which every file has a time-structured
donor population and a clog near it: donor NK and CIK cells arrive
``--factor`` times denser within a window of ``--window`` of the acquisition
(`cytokit.simulate.timing.Enrichment`, placed at random; settling or
carry-over), and one clog (`cytokit.simulate.anomalies.Clog`, the random
parameters of ``random_plan``: slow flow, a burst, dimmed and coincident
events) starts within that window. With ``--even`` the populations stay
spread evenly and the clog falls anywhere (the previous set-up). The study
is analysed twice through `cytokit.analyze`: without ``[acquisition_qc]``
and with it (defaults). Each NK and CIK row of ``chimerism.csv`` with status
``quantified`` is compared with the simulator's truth for the file
(``truth/populations.csv``: donor_events / events of the population among all
the file's events); the absolute error in percentage points is summarised
(median, 95th percentile, maximum) for both runs. Files that QC failed are
counted, not compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

POPULATIONS = ("NK", "CIK")


def clogged_study(
    folder: Path, seed: int, patients: int, events: int, window: float, factor: float
) -> Path:
    """A simulated study with a clog in every file, near a donor-enriched window (see above)."""
    from cytokit import simulate
    from cytokit.simulate import anomalies as A
    from cytokit.simulate.study import simulate_study
    from cytokit.simulate.timing import Enrichment

    design = simulate.preset_design(
        "sample", seed=seed, n_patients=patients, n_events=events, days=(7, 14, 28)
    )
    seconds = events / design.event_rate

    def rng_of(spec, day):
        return np.random.default_rng([seed, zlib.crc32(spec.id.encode()), day])

    def where(spec, day):
        start = rng_of(spec, day).uniform(0.05, 0.95 - window) * seconds
        return start, start + window * seconds

    def timing(spec, day):
        if not factor > 1:
            return None
        return Enrichment(POPULATIONS, window=where(spec, day), factor=factor, donor=True)

    def plan(spec, day):
        rng = rng_of(spec, day)
        clog = A.random_plan(rng, seconds, kinds=("clog",)).clogs[0]
        if factor > 1:  # the clog starts within the enriched window
            a, b = where(spec, day)
            b = max(a, min(b, 0.97 * seconds - clog.drop - clog.burst))  # ends in the run
            clog = dataclasses.replace(clog, start=rng.uniform(a, b))
        return A.AnomalyPlan(clogs=(clog,))

    return simulate_study(folder, design, anomalies=plan, timing=timing)


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
    pairs = zip(m["file"], m["population"], strict=True)
    m["kept_pct"] = [kept_truth(study, res, f, p) for f, p in pairs]
    m["removal_pp"] = (m["kept_pct"] - m["true_pct"]).abs()
    m["gating_pp"] = (m["donor_pct"].astype(float) - m["kept_pct"]).abs()
    failed = int((res.failures["stage"] == "acquisition_qc").sum()) if len(res.failures) else 0
    cols = ["file", "population", "events", "donor_pct", "true_pct", "error_pp"]
    return m[[*cols, "removal_pp", "gating_pp"]], failed


def kept_truth(study: Path, res, file: str, population: str) -> float:
    """The true donor % of `population` among the events outside QC's removed time ranges."""
    from cytokit.simulate import AGGREGATES, LABELS
    from cytokit.simulate.events import load_truth

    t = load_truth(study / Path(file).with_suffix(".truth.npz"))
    keep = np.ones(t.label.shape[0], dtype=bool)
    ranges = res.acquisition_qc
    if ranges is not None and len(ranges):
        for _, r in ranges[ranges["file"] == file].iterrows():
            keep[int(r["first_event"]) : int(r["first_event"]) + int(r["events"])] = False
    labels = AGGREGATES.get(population, (population,))
    pop = np.isin(t.label, [LABELS.index(x) for x in labels]) & keep
    return 100.0 * float(t.donor[pop].sum()) / max(int(pop.sum()), 1)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs=2, default=(2001, 2004), metavar=("FIRST", "LAST"))
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--window", type=float, default=0.2, help="enriched share of the run")
    ap.add_argument("--factor", type=float, default=3.0, help="donor NK/CIK density in it")
    ap.add_argument("--even", action="store_true", help="no time structure (factor 1)")
    args = ap.parse_args()
    factor = 1.0 if args.even else args.factor
    rows = {False: [], True: []}
    failed = {False: 0, True: 0}
    tmp = Path(tempfile.mkdtemp(prefix="bench_qc_chim_"))
    try:
        for seed in range(args.seeds[0], args.seeds[1] + 1):
            study = clogged_study(
                tmp / f"s{seed}", seed, args.patients, args.events, args.window, factor
            )
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
        if qc:
            r, g = f["removal_pp"], f["gating_pp"]
            print(
                f"    of which: removing QC's time ranges moves the true donor % by median "
                f"{r.median():.2f} pp (max {r.max():.2f}); gating the kept events: median "
                f"{g.median():.2f} pp (max {g.max():.2f})"
            )
        for pop in POPULATIONS:
            sub = f[f["population"] == pop]["error_pp"]
            if len(sub):
                print(f"    {pop}: n={len(sub)}, median {sub.median():.2f}, max {sub.max():.2f} pp")


if __name__ == "__main__":
    main()
