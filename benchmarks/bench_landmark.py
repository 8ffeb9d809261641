"""The landmark analysis against the simulator's hazard ratio, and the guarantee-time trap.

For each seed, a cohort is drawn from `cytokit.simulate.outcomes.OutcomeModel`
(donor cells, once detectable, lower the hazard of progression by a known
hazard ratio; detection happens by day 21) and two comparisons of
progression-free survival are made:

* **landmark** (`cytokit.clinical.landmark_analysis`, day 28): patients alive
  and progression-free at day 28, grouped by donor cells detected on or
  before it, followed from day 28; Cox model stratified by stratum;
* **naive**: every patient from day 0, grouped by donor cells "ever
  detected" during follow-up; the same Cox model. A patient must survive
  long enough to be seen persisting, so this flatters persistence.

Printed: per method, the median hazard ratio, the mean log hazard ratio
against the true one (bias), and how often the 95 % interval covers the
true ratio.

Usage::

    python benchmarks/bench_landmark.py                  # 50 seeds x 400 patients
    python benchmarks/bench_landmark.py --seeds 20 --patients 400 --hr 0.5
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_ever_detected(cohort, ends):
    """Cox hazard ratio of "ever detected" vs "never", counted from day 0 (biased on purpose)."""
    from cytokit.clinical import hazard_ratio, persistence_table

    detected = persistence_table(cohort.points, summaries=False).set_index("patient")["detected"]
    group = ends["patient"].map(detected).eq(True).to_numpy()
    return hazard_ratio(ends["pfs_days"], ends["pfs_event"], group, ends["stratum"])


def run(seeds: int, patients: int, hr: float, landmark: int, median_nrm: float) -> dict:
    from cytokit.clinical import endpoints, landmark_analysis, read_outcomes
    from cytokit.simulate.outcomes import OutcomeModel, simulate_cohort, write_cohort

    results = {"landmark": [], "naive": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, seeds + 1):
            model = OutcomeModel(
                n_patients=patients, seed=seed, hazard_ratio=hr, median_nrm=median_nrm
            )
            cohort = simulate_cohort(model)
            folder = Path(tmp) / f"seed{seed}"
            write_cohort(folder, cohort)
            ends = endpoints(read_outcomes(folder / "outcomes.csv"), strata=cohort.strata)
            lm = landmark_analysis(ends, cohort.points, landmark_day=landmark).row
            results["landmark"].append((lm["hazard_ratio"], lm["hr_ci_low"], lm["hr_ci_high"]))
            nv = naive_ever_detected(cohort, ends)
            results["naive"].append((nv["hazard_ratio"], nv["hr_ci_low"], nv["hr_ci_high"]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--hr", type=float, default=0.5)
    parser.add_argument("--landmark", type=int, default=28)
    parser.add_argument(
        "--median-nrm",
        type=float,
        default=math.inf,
        help="median days to non-relapse death (default: none, so the PFS hazard ratio is --hr)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    results = run(args.seeds, args.patients, args.hr, args.landmark, args.median_nrm)
    took = time.perf_counter() - start
    print(
        f"{args.seeds} seeds x {args.patients} patients, true hazard ratio {args.hr:g}, "
        f"landmark day {args.landmark}, median non-relapse death {args.median_nrm:g} days "
        f"({took:.0f} s)"
    )
    print(f"{'method':<10} {'median HR':>10} {'bias (log HR)':>14} {'95% CI covers':>14}")
    for method, rows in results.items():
        a = np.array(rows, dtype=np.float64)
        ok = np.isfinite(a).all(axis=1)
        a = a[ok]
        covers = np.mean((a[:, 1] <= args.hr) & (args.hr <= a[:, 2]))
        bias = float(np.mean(np.log(a[:, 0])) - math.log(args.hr))
        print(f"{method:<10} {np.median(a[:, 0]):>10.3f} {bias:>+14.3f} {covers:>13.0%}")


if __name__ == "__main__":
    main()
