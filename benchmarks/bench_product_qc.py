"""Product QC against bags of known composition: coverage of every interval and bound.

Draws bags from `cytokit.simulate.outcomes.simulate_bags` (apheresis product,
then CD3 depletion and CD56 selection with known recovery, purity, viability
and log depletion; events drawn multinomially) and prints how often each
interval of `cytokit.clinical.product_qc` covers the truth.

Usage::

    python benchmarks/bench_product_qc.py                 # 2,000 bags, 10,000 events per bag
    python benchmarks/bench_product_qc.py --bags 500 --events 50000
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from cytokit.clinical import product_qc
    from cytokit.simulate.outcomes import simulate_bags

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=2000)
    parser.add_argument("--events", type=int, default=10_000, help="events of each bag sample")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    samples, truth = simulate_bags(args.bags, seed=args.seed, events_post=args.events)
    start = time.perf_counter()
    qc = product_qc(samples).set_index("patient")
    took = time.perf_counter() - start
    truth = truth.set_index("patient").loc[qc.index]
    print(f"{args.bags} bags, {args.events} events per bag sample ({took:.1f} s)")
    print(f"{'quantity':<22} {'interval':<28} {'covers':>7}")
    for name, low, high, what in (
        ("nk_purity_pct", "nk_purity_ci_low", "nk_purity_ci_high", "exact, two-sided 95 %"),
        ("viability_pct", "viability_ci_low", "viability_ci_high", "exact, two-sided 95 %"),
        ("nk_recovery_pct", "nk_recovery_ci_low", "nk_recovery_ci_high", "2 exact at 97.5 %"),
        ("cd3_log_depletion", "cd3_log_depletion_ci_low", "cd3_log_depletion_ci_high", "2 exact at 97.5 %"),
    ):  # fmt: skip
        covers = np.mean((qc[low] <= truth[name]) & (truth[name] <= qc[high]))
        print(f"{name:<22} {what:<28} {covers:>7.1%}")
    covers = np.mean(truth["cd3_per_kg"] <= qc["cd3_per_kg_upper"])
    print(f"{'cd3_per_kg':<22} {'exact, one-sided 95 %':<28} {covers:>7.1%}")
    print(
        f"median CD3+ events in the bag sample: {np.median(qc['cd3_pct'] * qc['events'] / 100):.0f}; "
        f"rare-event limit: {qc['cd3_pct_limit'].iloc[0]:.4f} % of events"
    )


if __name__ == "__main__":
    main()
