"""Acceptance of multi-tube analysis: repertoire, function and FMO positivity against the truth.

For each seed, ``cytokit simulate OUT --tubes`` writes a study whose visits
have the chimerism tube, a receptor tube (KIR2DL1, KIR2DL2/3, KIR3DL1,
NKG2A; donor and recipient NK repertoires differ) with its NKG2A FMO
control, and a stimulated/unstimulated function pair (CD107a, IFN-γ), the
further detectors' gains drifting ±30 % per visit; ``cytokit analyze`` then
measures it, and its tables are compared with the simulator's per-event
truth (`cytokit.simulate.tubes`):

* **repertoire**: donor NK combinations (repertoire.csv, population NK,
  origin donor) of every file whose donor NK total is >= ``--min-total``
  (200): |pct − true %| (the true events' share), and the coverage of the
  combination's drawn probability by the 95 % interval; also reported for
  the combinations that hold >= 200 events themselves;
* **function**: background-subtracted CD107a and IFN-γ of donor NK cells
  (function.csv) with >= ``--min-total`` cells: |pct_net − true net| and the
  coverage of the drawn difference by Newcombe's interval;
* **FMO**: NKG2A % positive of NK cells (phenotype.csv, cut at the FMO
  control's 99.5th percentile) against the true % positive.

* **gain drift** (``--drift-seed``): one study simulated twice from the same
  seed, with the receptor detectors' gain drifting ±30 % from day to day and
  without; the coefficient of variation over days of the healthy control's
  NK NKG2A median (the same cells every day: a stable population), raw
  (phenotype.csv) and normalised on the day's reference sample
  (phenotype_normalised.csv).

Usage::

    python benchmarks/bench_multitube.py --seeds 501 502 503 --patients 4 --events 60000
    python benchmarks/bench_multitube.py --drift-seed 701 --events 60000 --days 7,14,21,28,35,42
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def _run(args: list[str]) -> None:
    code = "import sys; from cytokit.cli.app import main; sys.argv[0] = 'cytokit'; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"cytokit {' '.join(args)} failed:\n{done.stderr}")


def measure(folder: Path, min_total: int) -> dict[str, pd.DataFrame]:
    from cytokit import load_results
    from cytokit.simulate.tubes import function_truth, positivity_truth, repertoire_truth

    res = load_results(folder / "results")
    rep = res.repertoire[
        (res.repertoire["population"] == "NK") & (res.repertoire["kind"] == "combination")
    ]
    truth = pd.DataFrame(repertoire_truth(folder))
    r = truth.merge(rep, on=["file", "origin", "combination"], suffixes=("_truth", ""))
    r = r[(r["origin"] == "donor") & (r["total_truth"] >= min_total)].copy()
    r["error"] = r["pct"] - 100.0 * r["events_truth"] / r["total_truth"]
    p = 100.0 * r["probability"]
    r["covered"] = (r["ci_low"] <= p) & (p <= r["ci_high"])

    fun = res.function[res.function["population"] == "NK"]
    f = pd.DataFrame(function_truth(folder)).merge(
        fun, on=["file", "origin", "marker"], suffixes=("_truth", "")
    )
    f = f[(f["origin"] == "donor") & (f["events_stim"] >= min_total)].copy()
    f["error"] = f["pct_net"] - f["pct_net_truth"]
    f["covered"] = (f["ci_low"] <= f["p_net"]) & (f["p_net"] <= f["ci_high"])

    ph = res.phenotype
    ph = ph[(ph["population"] == "NK") & (ph["origin"] == "all") & (ph["marker"] == "NKG2A")]
    qt = pd.DataFrame(positivity_truth(folder, "NKG2A"))
    q = qt.merge(ph, on=["file", "marker"], suffixes=("_truth", ""))
    for file in sorted(set(qt["file"]) - set(q["file"])):  # say why a file has no row
        why = res.failures.loc[res.failures["file"] == file, "reason"]
        print(
            f"  {folder.name}: {file}: no NK NKG2A row; {'; '.join(why) or 'not in failures.csv'}"
        )
    q["error"] = q["pct_positive"] - q["pct_positive_truth"]
    th = res.thresholds
    q["method"] = q["file"].map(
        th[(th["marker"] == "NKG2A") & th["parent"].str.endswith("/CD3-CD56+")].set_index("file")[
            "method"
        ]
    )
    return {"repertoire": r, "function": f, "fmo": q}


def drift_cv(seed: int, events: int, days: str, workers: int) -> None:
    """CV over days of the healthy control's NK NKG2A median, with and without drift."""
    from cytokit import load_results

    def cv(x: pd.Series) -> float:
        x = x.to_numpy(dtype=float)
        return float(100.0 * x.std(ddof=1) / x.mean())

    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-multitube-drift-") as tmp:
        for name, extra in (("drift", []), ("no drift", ["--no-drift"])):
            folder = Path(tmp) / name.replace(" ", "_")
            _run(["simulate", str(folder), "--tubes", "--seed", str(seed), "--patients", "1",
                  "--events", str(events), "--days", days, *extra])  # fmt: skip
            _run(["analyze", str(folder), "--out", str(folder / "results"), "--workers",
                  str(workers), "--no-report"])  # fmt: skip
            n = load_results(folder / "results").phenotype_normalised
            hc = n[(n["patient"] == "HC") & (n["population"] == "NK") & (n["origin"] == "all")]
            hc = hc[hc["marker"] == "NKG2A"].sort_values("day")
            out[name] = (cv(hc["median"]), cv(hc["median_normalised"]), len(hc))
    (raw, norm, k), (raw0, norm0, _) = out["drift"], out["no drift"]
    print(f"\ngain drift, seed {seed}, {events:,} events, days {days} ({k} days)")
    print(f"  healthy control NK NKG2A median, CV over days with ±30 % drift: raw {raw:.1f} %, "
          f"normalised {norm:.1f} %")  # fmt: skip
    print(f"  without drift: raw {raw0:.1f} %, normalised {norm0:.1f} %")
    print(f"  normalised with drift / raw without drift: {norm / raw0:.2f} (acceptance <= 1.5)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[501, 502, 503])
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--days", default="7,14,28")
    ap.add_argument("--min-total", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--drift-seed", type=int, default=None, help="measure gain drift only")
    a = ap.parse_args()
    if a.drift_seed is not None:
        drift_cv(a.drift_seed, a.events, a.days, a.workers)
        return
    parts: dict[str, list[pd.DataFrame]] = {"repertoire": [], "function": [], "fmo": []}
    with tempfile.TemporaryDirectory(prefix="bench-multitube-") as tmp:
        for seed in a.seeds:
            folder = Path(tmp) / f"s{seed}"
            t0 = time.perf_counter()
            _run(["simulate", str(folder), "--tubes", "--seed", str(seed), "--patients",
                  str(a.patients), "--events", str(a.events), "--days", a.days])  # fmt: skip
            _run(["analyze", str(folder), "--out", str(folder / "results"), "--workers",
                  str(a.workers), "--no-report"])  # fmt: skip
            got = measure(folder, a.min_total)
            for k, v in got.items():
                parts[k].append(v.assign(seed=seed))
            print(f"seed {seed}: simulated and analysed in {time.perf_counter() - t0:.0f} s")
    rep, fun, fmo = (
        pd.concat(parts[k], ignore_index=True) for k in ("repertoire", "function", "fmo")
    )
    big = rep[rep["events_truth"] >= 200]
    print(f"\nseeds {a.seeds}, {a.patients} patients, {a.events:,} events, days {a.days}")
    print(
        f"repertoire, donor NK (files with >= {a.min_total} donor NK cells): "
        f"{len(rep)} combinations, max |error| {rep['error'].abs().max():.2f} pp, "
        f"mean |error| {rep['error'].abs().mean():.3f} pp, "
        f"CI coverage {100 * rep['covered'].mean():.1f} %"
    )
    if len(big):
        print(
            f"  combinations of >= 200 events: {len(big)}, max |error| "
            f"{big['error'].abs().max():.2f} pp, CI coverage {100 * big['covered'].mean():.1f} %"
        )
    print(
        f"function, donor NK CD107a and IFN-g (>= {a.min_total} cells): {len(fun)} rows, "
        f"max |error| {fun['error'].abs().max():.2f} pp, CI coverage "
        f"{100 * fun['covered'].mean():.1f} %"
    )
    print(
        f"FMO, NKG2A % positive of NK cells: {len(fmo)} files, max |error| "
        f"{fmo['error'].abs().max():.2f} pp (methods: "
        f"{', '.join(sorted(set(fmo['method'].astype(str))))})"
    )
    print(
        f"worst repertoire rows:\n{rep.reindex(rep['error'].abs().sort_values().index[-3:])[['seed', 'file', 'combination', 'total', 'pct', 'error']]}"
    )


if __name__ == "__main__":
    main()
