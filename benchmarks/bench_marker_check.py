"""False positives and detection of the donor-marker check (`cytokit.analysis.marker_check`).

Simulates studies with fresh seeds (instrument drift on; every other study
without counting beads, so without drift anchors; in every other study two
patients without a pre-infusion sample), measures every file with the
study's pass-1 task (`cytokit.analysis.make_task`) and runs the check of each
patient's samples:

* **false positives**: samples flagged among the unmodified ones (every one
  is a usable simulated stain: pre-infusion, post-infusion, near-complete
  chimerism, drifted);
* **detection**: for each patient one post-infusion sample has its donor
  marker channel (FITC-A, stored values) broken in each of several ways; a
  broken sample must be flagged, and the patient's other samples must stay
  usable (collateral flags are counted).

Broken kinds: ``zero``, ``constant`` (1000), ``top`` (262,143, the top of
``$PnR``), ``gain`` (×200, clipped at the top: a detector voltage far too
high), ``dim`` (×0.02: far too low), ``noise`` (a dead detector: electronic
noise only, beads included), ``unstained`` (the stain left out: cells at
autofluorescence level, the counting beads as they were), ``wrong`` (the CD45
detector's values: the panel names the wrong channel).

Usage::

    python benchmarks/bench_marker_check.py --seeds 1 2 3 4 --patients 4 --events 20000
    python benchmarks/bench_marker_check.py --seeds 1 2 --tolerances 0.25 0.15 0.1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("zero", "constant", "top", "gain", "dim", "noise", "unstained", "wrong")


def break_channel(events: np.ndarray, col: int, kind: str, rng, cd45: int, beads) -> None:
    """Replace the stored values of column `col` as the broken `kind` would read.

    `beads` marks the counting-bead events (their fluorescence is their own, stain or not).
    """
    n = events.shape[0]
    x = events[:, col]
    if kind == "zero":
        x[:] = 0.0
    elif kind == "constant":
        x[:] = 1000.0
    elif kind == "top":
        x[:] = 262_143.0
    elif kind == "gain":
        np.minimum(x * 200.0, 262_143.0, out=x)
    elif kind == "dim":
        x *= 0.02
    elif kind == "noise":
        x[:] = rng.normal(0.0, 15.0, n)
    elif kind == "unstained":
        cells = ~beads
        x[cells] = rng.lognormal(np.log(120.0), 0.5, cells.sum()) + rng.normal(0, 15, cells.sum())
    elif kind == "wrong":
        x[:] = events[:, cd45]
    else:
        raise ValueError(kind)


def design_for(seed: int, patients: int, events: int):
    from cytokit.simulate import DEFAULT_DAYS, StudyDesign, make_patients

    specs = list(make_patients(patients, seed=seed))
    if seed % 2:  # half the patients without a pre-infusion sample
        for i in range(0, len(specs), 2):
            days = tuple(d for d in DEFAULT_DAYS[specs[i].arm] if d >= 0)
            specs[i] = replace(specs[i], days=days)
    return StudyDesign(
        patients=tuple(specs), seed=seed, n_events=events, beads=seed % 2 == 0, drift=True
    )


def run_study(tmp: Path, seed: int, patients: int, events: int) -> list[dict]:
    """Every patient's check inputs: the clean samples, and each broken variant of one."""
    from study_helpers import make_study

    from cytokit.analysis import make_task
    from cytokit.analysis.per_patient import _hist
    from cytokit.analysis.sample_result import SampleResult
    from cytokit.fcs import read_fcs, write_fcs
    from cytokit.simulate import load_truth
    from cytokit.study import load_study

    folder = make_study(tmp / f"study{seed}", design_for(seed, patients, events))
    study = load_study(folder)
    task = make_task(study)
    rng = np.random.default_rng(seed)
    out = []
    for patient in study.patients:
        mine = sorted((r for r in study.rows if r.patient == patient), key=lambda r: r.day)
        marker = study.donor_marker(mine[0])

        def inputs(items, marker=marker):
            p = SampleResult.decode(items)  # what the task stores, as the analysis reads it
            anchors, pileup = p.anchors or {}, p.pileup or {}
            return _hist(p, marker, 0), anchors.get(marker), pileup.get(marker)

        clean = [inputs(task(r.file)) for r in mine]
        after = [i for i, r in enumerate(mine) if r.day > 0]
        k = int(rng.choice(after))
        sample = read_fcs(mine[k].file, scale=False)
        col = sample.channel_index("FITC-A")
        cd45 = sample.channel_index("V500-C-A")
        truth = load_truth(mine[k].file.with_name(mine[k].file.stem + ".truth.npz"))
        beads = truth.label == truth.code("bead")
        broken = {}
        for kind in KINDS:
            ev = sample.events.copy()
            break_channel(ev, col, kind, rng, cd45, beads)
            path = tmp / f"broken_{seed}_{patient}_{kind}.fcs"
            write_fcs(path, replace(sample, events=ev))
            broken[kind] = inputs(task(path))
            path.unlink()
        out.append(
            {
                "seed": seed,
                "patient": patient,
                "beads": bool(study.settings.beads),
                "side": study.donor_side(mine[0]),
                "days": [r.day for r in mine],
                "clean": clean,
                "broken_at": k,
                "broken": broken,
            }
        )
    return out


def evaluate(patients: list[dict]) -> pd.DataFrame:
    """One row per sample checked: clean samples, and each broken one with its collateral."""
    from cytokit.analysis.marker_check import check_donor_marker

    def check(items, p):
        hists, anchors, pileups = zip(*items, strict=True)
        return check_donor_marker(list(hists), p["days"], p["side"], list(anchors), list(pileups))

    rows = []
    for p in patients:
        base = {"seed": p["seed"], "patient": p["patient"], "beads": p["beads"]}
        base["side"] = "positive" if p["side"] > 0 else "negative"
        base["pre_infusion"] = min(p["days"]) < 0
        clean = check(p["clean"], p)
        for day, why in zip(p["days"], clean, strict=True):
            rows.append({**base, "day": day, "kind": "clean", "flagged": bool(why), "why": why})
        k = p["broken_at"]
        for kind, item in p["broken"].items():
            items = list(p["clean"])
            items[k] = item
            got = check(items, p)
            extra = sum(bool(w) and not c for i, (w, c) in enumerate(zip(got, clean, strict=True))
                        if i != k)  # fmt: skip
            rows.append(
                {
                    **base,
                    "day": p["days"][k],
                    "kind": kind,
                    "flagged": bool(got[k]),
                    "collateral": extra,
                    "why": got[k],
                }
            )
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, verbose: bool) -> None:
    clean = table[table.kind == "clean"]
    print(f"false positives: {int(clean.flagged.sum())} of {len(clean)} unmodified samples")
    for key, g in clean.groupby(["beads", "pre_infusion"]):
        print(
            f"  beads={key[0]!s:5} pre-infusion sample={key[1]!s:5}: {int(g.flagged.sum())}/{len(g)}"
        )
    if verbose:
        for _, r in clean[clean.flagged].iterrows():
            print(f"  flagged: seed {r.seed} {r.patient} day {r.day}: {r.why}")
    broken = table[table.kind != "clean"]
    print("detection of broken donor-marker channels (flagged / broken; collateral flags):")
    for kind in KINDS:
        g = broken[broken.kind == kind]
        sides = ", ".join(
            f"donor {s}: {int(h.flagged.sum())}/{len(h)}" for s, h in g.groupby("side")
        )
        print(
            f"  {kind:10} {int(g.flagged.sum()):3d}/{len(g):<3d} collateral "
            f"{int(g.collateral.sum())}  ({sides})"
        )


def main(argv=None) -> int:
    from cytokit.analysis import marker_check as markercheck

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument(
        "--tolerances",
        type=float,
        nargs="*",
        default=[],
        help="also evaluate these TOLERANCE values (shares of the separation)",
    )
    ap.add_argument("--csv", type=Path, help="write every row (default tolerance) here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    patients = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cytokit-markercheck-") as tmp:
        for seed in args.seeds:
            t = time.perf_counter()
            patients += run_study(Path(tmp), seed, args.patients, args.events)
            print(f"seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    table = evaluate(patients)
    if args.csv:
        table.to_csv(args.csv, index=False)
    n_clean = int((table.kind == "clean").sum())
    print(
        f"{len(args.seeds)} studies, {args.patients} patients each, {n_clean} unmodified "
        f"samples, {args.events} events per file, {time.perf_counter() - t0:.0f} s"
    )
    print(f"TOLERANCE = {markercheck.TOLERANCE:.3g} (the default)")
    report(table, verbose=True)
    default = markercheck.TOLERANCE
    try:
        for tol in args.tolerances:
            markercheck.TOLERANCE = tol
            print(f"\nTOLERANCE = {tol:.3g}")
            report(evaluate(patients), verbose=False)
    finally:
        markercheck.TOLERANCE = default
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
