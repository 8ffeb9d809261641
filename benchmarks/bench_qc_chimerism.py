"""Benchmark: donor % of NK and CIK cells on clogged files, with and without acquisition QC.

Usage::

    python benchmarks/bench_qc_chimerism.py --seeds 2001 2004 --patients 4 --events 50000
    python benchmarks/bench_qc_chimerism.py --even ...     # populations spread evenly in time
    python benchmarks/bench_qc_chimerism.py --no-corrupt ...  # clogs change rate, dim mildly
    python benchmarks/bench_qc_chimerism.py --occlusion --even ...  # clogs that bias origin
    python benchmarks/bench_qc_chimerism.py --near ...     # the clog beside the window, not in it

For each seed a simulated study (``cytokit.simulate.preset_design("sample")``
with fresh seeds) is written in which every file has a time-structured
donor population and a clog near it: donor NK and CIK cells arrive
``--factor`` times denser within a window of ``--window`` of the acquisition
(`cytokit.simulate.timing.Enrichment`, placed at random; settling or
carry-over), and one clog (`cytokit.simulate.anomalies.Clog`, the random
parameters of ``random_plan``: slow flow, a burst, dimmed and coincident
events; with the plan's default ``corrupt_clogs`` 80 % of the clog's
events are also measured off-centre, intensities × 0.3-0.7 with a
per-channel spread, ``Clog.offcentre``; ``--no-corrupt`` leaves them out;
``--occlusion`` dims their fluorescence only, × 0.3-0.6, keeping their
scatter, `cytokit.simulate.anomalies.partial_occlusion`, so that cells stay
in their gates and some donor cells fall below the HLA-A2 threshold) starts
within that window (with ``--near`` it ends 0-1 s before the window or
starts 0-1 s after it, whichever fits in the run). With ``--even`` the populations stay spread
evenly and the clog falls anywhere. The study
is analysed twice through `cytokit.analyze`: without ``[acquisition_qc]``
and with it (defaults). Each NK and CIK row of ``chimerism.csv`` with status
``quantified`` is compared with the simulator's truth for the file
(``truth/populations.csv``: donor_events / events of the population among all
the file's events); the absolute error in percentage points is summarised
(median, 95th percentile, maximum) for both runs, and with QC also for
``imputed_donor_pct`` (the removed ranges imputed from the kept events beside
them where those hold another mix than the rest, `cytokit.analysis.chimerism.stratified_row`) and how often its interval
covers the truth. Files that QC failed are counted, not compared.
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
    folder: Path,
    seed: int,
    patients: int,
    events: int,
    window: float,
    factor: float,
    corrupt: bool = True,
    occlusion: bool = False,
    near: bool = False,
    same_length: bool = False,
) -> Path:
    """A simulated study with a clog in every file, near a donor-enriched window (see above)."""
    from cytokit import simulate
    from cytokit.simulate import anomalies as A
    from cytokit.simulate.study import simulate_study
    from cytokit.simulate.timing import Enrichment

    design = simulate.preset_design(
        "sample", seed=seed, n_patients=patients, n_events=events, days=(7, 14, 28)
    )
    if same_length:  # the run lasts as long as 50,000 events at the preset's rate
        design = dataclasses.replace(design, event_rate=design.event_rate * events / 50_000)
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
        if factor > 1 and near:  # the clog ends before the window or starts after it
            a, b = where(spec, day)
            length, gap = clog.drop + clog.burst, rng.uniform(0.0, 1.0)
            before, after = a - gap - length, b + gap
            fits = [x for x in (before, after) if 0.03 * seconds <= x <= 0.97 * seconds - length]
            start = fits[int(rng.integers(len(fits)))] if fits else after
            clog = dataclasses.replace(clog, start=start)
        elif factor > 1:  # the clog starts within the enriched window
            a, b = where(spec, day)
            last = 0.97 * seconds - clog.drop - clog.burst  # the latest start that ends in the run
            if last < a:  # too long to start in the window and end in the run: shortened
                scale = max(0.97 * seconds - a, 0.1) / (clog.drop + clog.burst)
                clog = dataclasses.replace(clog, drop=clog.drop * scale, burst=clog.burst * scale)
                last = a
            clog = dataclasses.replace(clog, start=rng.uniform(a, min(b, last)))
        if occlusion:
            clog = A.partial_occlusion(clog)
        return A.AnomalyPlan(clogs=(clog,), corrupt_clogs=corrupt)

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
    truth = truth.assign(
        true_pct=100 * truth["donor_events"] / truth["events"], true_events=truth["events"]
    )
    chim = res.chimerism[
        res.chimerism["population"].isin(POPULATIONS) & (res.chimerism["status"] == "quantified")
    ]
    m = chim.merge(
        truth[["file", "population", "true_pct", "true_events"]], on=["file", "population"]
    )
    m["error_pp"] = (m["donor_pct"].astype(float) - m["true_pct"]).abs()
    # imputed_donor_pct: QC's removed ranges filled in from their neighbours (chimerism.py)
    m["imputed_error_pp"] = (m["imputed_donor_pct"].astype(float) - m["true_pct"]).abs()
    low, high = m["imputed_ci_low"], m["imputed_ci_high"]
    m["ci_covers"] = (low <= m["true_pct"]) & (m["true_pct"] <= high)
    m["ci_half"] = (high.astype(float) - low.astype(float)) / 2
    m["true_events"] = m["true_events"].astype(int)
    pairs = zip(m["file"], m["population"], strict=True)
    m["kept_pct"] = [kept_truth(study, res, f, p) for f, p in pairs]
    m["removal_pp"] = (m["kept_pct"] - m["true_pct"]).abs()
    m["gating_pp"] = (m["donor_pct"].astype(float) - m["kept_pct"]).abs()
    pairs = zip(m["file"], m["population"], strict=True)
    limit = [witness_limit(study, res, f, p) for f, p in pairs]
    m["floor_pp"] = [x[0] for x in limit]
    m["witness_pp"] = [x[1] for x in limit]
    failed = int((res.failures["stage"] == "acquisition_qc").sum()) if len(res.failures) else 0
    cols = ["file", "population", "events", "true_events", "donor_pct", "true_pct", "error_pp"]
    m["imputed_pct"] = m["imputed_donor_pct"].astype(float)
    m["imputed_events"] = m["imputed_events"].astype(float)
    more = [
        "imputed_pct",
        "imputed_events",
        "imputed_error_pp",
        "ci_covers",
        "ci_half",
        "removal_pp",
        "gating_pp",
        "floor_pp",
        "witness_pp",
    ]
    return m[[*cols, *more]], failed


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


def witness_limit(study: Path, res, file: str, population: str) -> tuple[float, float]:
    """(sampling floor, error of the best estimate from well-measured cells), both in pp.

    Inside QC's removed time ranges only the clog's events that were not
    measured off-centre (truth bit `OFFCENTRE` clear) can tell the population's
    donor share there; the off-centre ones leave the gates. The best any
    method can do is count every cell outside the ranges and, inside them,
    weight the well-measured cells of the population up to the range's true
    size (a stratified estimate, with each cell's true origin). The floor is
    that estimate's binomial SD: ``(N_r / N) * sqrt(p_r (1 - p_r) (1/m_r -
    1/N_r))`` with ``N_r`` the population's cells in the ranges, ``m_r`` the
    well-measured ones among them, ``p_r`` their true donor share and ``N``
    the population's cells in the file. The second figure is that estimate's
    actual error on this file against the whole file's truth.
    """
    from cytokit.simulate import AGGREGATES, LABELS
    from cytokit.simulate.anomalies import OFFCENTRE
    from cytokit.simulate.events import load_truth

    t = load_truth(study / Path(file).with_suffix(".truth.npz"))
    inside = np.zeros(t.label.shape[0], dtype=bool)
    ranges = res.acquisition_qc
    if ranges is not None and len(ranges):
        for _, r in ranges[ranges["file"] == file].iterrows():
            inside[int(r["first_event"]) : int(r["first_event"]) + int(r["events"])] = True
    kind = t.arrays.get("anomaly_kind")
    good = np.ones_like(inside) if kind is None else (kind & OFFCENTRE) == 0
    labels = AGGREGATES.get(population, (population,))
    pop = np.isin(t.label, [LABELS.index(x) for x in labels])
    donor = t.donor.astype(bool)
    n = int(pop.sum())
    n_r = int((pop & inside).sum())
    wit = pop & inside & good
    m_r = int(wit.sum())
    whole = float(donor[pop].sum()) / max(n, 1)
    if n_r == 0:
        return 0.0, 0.0
    if m_r == 0:
        return float("nan"), float("nan")
    p_r = float(donor[wit].sum()) / m_r
    out = float(donor[pop & ~inside].sum())
    est = (out + n_r * p_r) / n
    sd = (n_r / n) * np.sqrt(p_r * (1 - p_r) * max(1.0 / m_r - 1.0 / n_r, 0.0))
    return 100.0 * float(sd), 100.0 * abs(est - whole)


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
    ap.add_argument(
        "--no-corrupt", action="store_true", help="clogs without off-centre (corrupted) events"
    )
    ap.add_argument(
        "--occlusion",
        action="store_true",
        help="off-centre events dimmed in fluorescence only (partial_occlusion)",
    )
    ap.add_argument(
        "--near",
        action="store_true",
        help="the clog ends 0-1 s before the enriched window or starts 0-1 s after it",
    )
    ap.add_argument(
        "--same-length",
        action="store_true",
        help="raise the event rate so that the run lasts as long as 50,000 events would "
        "(clogs and windows then hold the same share of a larger file)",
    )
    ap.add_argument("--table", help="also write each run's rows to TABLE.qc.csv, TABLE.plain.csv")
    args = ap.parse_args()
    factor = 1.0 if args.even else args.factor
    rows = {False: [], True: []}
    failed = {False: 0, True: 0}
    tmp = Path(tempfile.mkdtemp(prefix="bench_qc_chim_"))
    try:
        for seed in range(args.seeds[0], args.seeds[1] + 1):
            study = clogged_study(
                tmp / f"s{seed}",
                seed,
                args.patients,
                args.events,
                args.window,
                factor,
                corrupt=not args.no_corrupt,
                occlusion=args.occlusion,
                near=args.near,
                same_length=args.same_length,
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
        if f.empty:  # every file failed QC, or no row was quantified
            print(f"{label}: no quantified NK/CIK row; files failed by QC: {failed[qc]}")
            continue
        print(
            f"{label}: {len(f)} NK/CIK rows, |donor % - truth| median {e.median():.2f} pp, "
            f"p95 {e.quantile(0.95):.2f} pp, max {e.max():.2f} pp; files failed by QC: "
            f"{failed[qc]}"
        )
        if qc:
            k = f["imputed_error_pp"]
            print(
                f"    imputed_donor_pct (removed ranges filled in from their neighbours): median "
                f"{k.median():.2f} pp, p95 {k.quantile(0.95):.2f} pp, max {k.max():.2f} pp; its "
                f"95 % interval covers the truth in {100 * f['ci_covers'].mean():.0f} % of rows "
                f"(half width median {f['ci_half'].median():.2f} pp, max {f['ci_half'].max():.2f}); "
                f"ranges imputed in {int((f['imputed_events'] > 0).sum())} of {len(f)} rows (the "
                f"others' flanks hold the kept events' mix: imputed_donor_pct = donor_pct)"
            )
            r, g = f["removal_pp"], f["gating_pp"]
            print(
                f"    of which: removing QC's time ranges moves the true donor % by median "
                f"{r.median():.2f} pp (max {r.max():.2f}); gating the kept events: median "
                f"{g.median():.2f} pp (max {g.max():.2f})"
            )
            fl, w = f["floor_pp"], f["witness_pp"]
            print(
                f"    best estimate from the well-measured cells (stratified, true origins): "
                f"|error| median {w.median():.2f} pp, p95 {w.quantile(0.95):.2f}, max "
                f"{w.max():.2f}; its sampling SD median {fl.median():.2f} pp, max {fl.max():.2f}"
            )
            within = (f["error_pp"] <= np.maximum(1.0, 1.96 * f["floor_pp"])).mean()
            print(
                f"    rows with QC's error <= max(1 pp, 1.96 x that SD): {100 * within:.0f} %; "
                f"population events (true) median {int(f['true_events'].median())}"
            )
        if args.table:
            f.to_csv(f"{args.table}.{'qc' if qc else 'plain'}.csv", index=False)
        for pop in POPULATIONS:
            sub = f[f["population"] == pop]["error_pp"]
            if len(sub):
                print(f"    {pop}: n={len(sub)}, median {sub.median():.2f}, max {sub.max():.2f} pp")


if __name__ == "__main__":
    main()
