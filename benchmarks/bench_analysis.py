"""Accuracy of `cytokit.analyze` against the simulator's ground truth, and its run time.

Simulates studies with fresh seeds (instrument drift on), analyses each with a
strategy, and compares with ``truth/``:

* donor_pct against the realised donor share of each population's events
  (truth/populations.csv: donor_events / events), over cells with >= 200
  events: the measurement error (threshold and gating), without sampling noise;
  and against the true donors among the events the strategy gated (the
  threshold's error alone; re-gates every file, so it takes a while);
* 95 % CI coverage of the model's donor fraction (truth donor_fraction, the
  binomial parameter the events were drawn with), over all cells with events;
* cells/µL against the realised truth (true events of the population / true
  bead events × beads per µL: counting error without Poisson noise) and
  against the model's cells/µL (cells with >= 2,000 events, where Poisson
  noise is below ~2 %);
* half-lives of donor cells/µL against truth/kinetics.csv, and the same fit
  on the realised true counts (what sampling noise alone allows).

Usage::

    python benchmarks/bench_analysis.py --seeds 101 102 --patients 6 --events 50000
    python benchmarks/bench_analysis.py --strategy sample_data/strategy.yaml

Without ``--strategy`` the fixed-gate strategy of ``tests/study_helpers.py`` is used.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
POPULATIONS = ("NK", "NK_bright", "NK_dim", "CIK", "T")


def study_folder(tmp: Path, seed: int, patients: int, events: int, strategy: str | None) -> Path:
    from cytokit.simulate import preset_design, simulate_study

    sys.path.insert(0, str(ROOT / "tests"))
    from study_helpers import make_study

    design = preset_design("sample", seed=seed, n_patients=patients, n_events=events)
    folder = tmp / f"study{seed}"
    if strategy is None:
        return make_study(folder, design)
    simulate_study(folder, design)
    shutil.copy(strategy, folder / Path(strategy).name)
    toml = (folder / "study.toml").read_text()
    (folder / "study.toml").write_text(toml.replace('"strategy.yaml"', f'"{Path(strategy).name}"'))
    return folder


def compare(folder: Path, results) -> dict[str, pd.DataFrame]:
    truth = pd.read_csv(folder / "truth" / "populations.csv", dtype={"patient": str})
    samples = pd.read_csv(folder / "truth" / "samples.csv", dtype={"patient": str})
    truth = truth.merge(samples[["patient", "day", "beads_per_ul"]], on=["patient", "day"])
    beads = truth[truth.population == "bead"].set_index(["patient", "day"])["events"]
    truth = truth[truth.population.isin(POPULATIONS)].copy()
    truth["bead_events"] = [beads[(p, d)] for p, d in zip(truth.patient, truth.day, strict=True)]
    truth["realised_pct"] = 100.0 * truth.donor_events / truth.events
    truth["realised_per_ul"] = truth.events / truth.bead_events * truth.beads_per_ul
    chim = results.chimerism.merge(
        truth[
            [
                "patient", "day", "population", "events", "donor_events", "donor_fraction",
                "cells_per_ul", "realised_pct", "realised_per_ul",
            ]
        ],
        on=["patient", "day", "population"],
        suffixes=("", "_true"),
    )  # fmt: skip
    chim["pct_error"] = chim.donor_pct - chim.realised_pct
    p = 100.0 * chim.donor_fraction
    chim["covered"] = (chim.ci_low <= p) & (p <= chim.ci_high)
    chim["count_error_realised"] = chim.per_ul / chim.realised_per_ul - 1.0
    chim["count_error_model"] = chim.per_ul / chim.cells_per_ul - 1.0
    kin = pd.read_csv(folder / "truth" / "kinetics.csv", dtype={"patient": str})
    tr = results.trends[results.trends.measure == "donor_per_ul"].merge(
        kin[["patient", "population", "half_life_days"]],
        on=["patient", "population"],
        suffixes=("", "_true"),
    )
    tr["hl_error"] = tr.half_life_days / tr.half_life_days_true - 1.0
    # the same fit on the realised true counts: what sampling noise alone allows
    from cytokit.analysis.trends import fit_half_life

    infusions = pd.read_csv(folder / "infusions.csv", dtype={"patient": str})
    realised = {}
    for (patient, population), g in truth.groupby(["patient", "population"]):
        g = g.sort_values("day")
        days = infusions[infusions.patient == patient].day.tolist()
        k = g.donor_events.to_numpy(dtype=float)
        per_ul = k / g.bead_events.to_numpy(dtype=float) * g.beads_per_ul.to_numpy(dtype=float)
        status = np.where(k >= 50, "quantified", "not_detected")
        fit = fit_half_life(g.day.to_numpy(), per_ul, status, days, counts=k)
        realised[(patient, population)] = fit["half_life_days"]
    tr["half_life_realised"] = [
        realised.get((p, q), np.nan) for p, q in zip(tr.patient, tr.population, strict=True)
    ]
    return {"chimerism": chim, "trends": tr}


def gated_truth(folder: Path, results) -> pd.DataFrame:
    """Per file and population: true donor events among the gated events, our count."""
    import cytokit
    from cytokit.simulate import load_truth
    from cytokit.study import load_study

    strategy = load_study(folder).gating
    rows = []
    for row in results.samples.itertuples():
        sample = cytokit.read_fcs(folder / row.file)
        truth = load_truth((folder / row.file).with_suffix(".truth.npz"))
        gated = strategy.apply(sample)
        for name, path in results.study["populations"].items():
            m = gated.membership(path)
            rows.append(
                {
                    "patient": row.patient,
                    "day": row.day,
                    "population": name,
                    "gated_events": int(m.sum()),
                    "gated_donors": int(truth.donor[m].sum()),
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102])
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--strategy", default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--keep", default=None, help="keep the studies and outputs in this folder")
    args = ap.parse_args(argv)
    import cytokit

    chims, trends, times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            folder = study_folder(base, seed, args.patients, args.events, args.strategy)
            t0 = time.perf_counter()
            results = cytokit.analyze(folder, base / f"out{seed}", workers=args.workers)
            times.append(time.perf_counter() - t0)
            got = compare(folder, results)
            g = gated_truth(folder, results)
            got["chimerism"] = got["chimerism"].merge(g, on=["patient", "day", "population"])
            chims.append(got["chimerism"].assign(seed=seed))
            trends.append(got["trends"].assign(seed=seed))
    chim = pd.concat(chims, ignore_index=True)
    tr = pd.concat(trends, ignore_index=True)
    big = chim[chim.events >= 200]
    n_files = len(chim) // len(POPULATIONS)
    print(f"{len(args.seeds)} studies, {n_files} files of {args.events} events")
    print(f"analyze: {np.median(times):.1f} s per study (median)")
    print(
        f"donor_pct error vs realised (cells with >= 200 events, n={len(big)}): "
        f"max |err| {big.pct_error.abs().max():.3f} pp, mean {big.pct_error.mean():+.3f} pp, "
        f"> 1 pp: {(big.pct_error.abs() > 1).sum()}"
    )
    same = (big.gated_events == big.events).mean()
    gated_err = 100.0 * (big.donor_events - big.gated_donors) / big.events
    print(
        f"donor_pct error vs the true donors among the gated events (threshold only; "
        f"re-gating reproduces {100 * same:.0f} % of the counts): max |err| "
        f"{gated_err.abs().max():.3f} pp, mean {gated_err.mean():+.3f} pp"
    )
    covered = chim[chim.events > 0]
    print(
        f"95% CI covers the model donor fraction: {100 * covered.covered.mean():.1f} % of "
        f"{len(covered)} cells; >= 200 events: {100 * big.covered.mean():.1f} % of {len(big)}"
    )
    print(
        f"cells/uL vs realised truth (>= 200 events): max |err| "
        f"{100 * big.count_error_realised.abs().max():.2f} %, median "
        f"{100 * big.count_error_realised.abs().median():.2f} %"
    )
    large = chim[chim.events >= 2000]
    print(
        f"cells/uL vs model truth (>= 2000 events, n={len(large)}): max |err| "
        f"{100 * large.count_error_model.abs().max():.2f} %, median "
        f"{100 * large.count_error_model.abs().median():.2f} %"
    )
    est = tr[np.isfinite(tr.half_life_days)]
    print(
        f"half-lives estimated: {len(est)} of {len(tr)} patient x population trends; "
        f"|error| max {100 * est.hl_error.abs().max():.1f} %, median "
        f"{100 * est.hl_error.abs().median():.1f} %, within 20 %: "
        f"{(est.hl_error.abs() <= 0.2).sum()} of {len(est)}"
    )
    both = tr[np.isfinite(tr.half_life_days) & np.isfinite(tr.half_life_realised)]
    real = tr[np.isfinite(tr.half_life_realised)]
    real_err = real.half_life_realised / real.half_life_days_true - 1.0
    print(
        f"the same fit on the realised true counts: {len(real)} estimable, within 20 % of the "
        f"simulated: {(real_err.abs() <= 0.2).sum()}, max |error| {100 * real_err.abs().max():.1f} "
        f"%; cytokit vs that fit ({len(both)} trends): max |difference| "
        f"{100 * (both.half_life_days / both.half_life_realised - 1).abs().max():.1f} %"
    )
    inside = (est.half_life_ci_low <= est.half_life_days_true) & (
        est.half_life_days_true <= est.half_life_ci_high
    )
    print(f"half-life 95 % CIs cover the simulated half-life: {inside.sum()} of {len(est)}")
    pd.set_option("display.width", 200)
    worst = big.reindex(big.pct_error.abs().sort_values(ascending=False).index[:5])
    print(
        worst[
            [
                "seed",
                "patient",
                "day",
                "population",
                "events",
                "donor_events",
                "donor_events_true",
                "donor_pct",
                "realised_pct",
            ]
        ].to_string(index=False)
    )
    cols = [
        "seed",
        "patient",
        "population",
        "half_life_days",
        "half_life_days_true",
        "half_life_ci_low",
        "half_life_ci_high",
        "half_life_realised",
        "half_life_n",
    ]
    print(
        est.reindex(est.hl_error.abs().sort_values(ascending=False).index[:8])[cols].to_string(
            index=False
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
