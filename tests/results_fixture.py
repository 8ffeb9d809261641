"""A results folder (the `cytokit.analysis.results` contract) made from the bundled sample study.

For the plot and report tests, independent of the analysis pipeline: every
file of ``sample_data/`` is read and gated for real with the fixed strategy
of `study_helpers.simulated_strategy` (plus an ellipse and a Boolean gate, so
every kind of gate geometry is drawn); donor cells are the simulator's
per-event truth (``fcs/*.truth.npz``), so chimerism is what a perfect donor
threshold would give. Absolute counts use the beads, trends and the cohort
summary come from `cytokit.analysis.trends`, tables are written by
`cytokit.analysis.results.write_results` and QC data as the contract says.

Options rename patients and files (hostile ids for escaping tests), drop
samples (a patient with one day) and corrupt files (a truncated copy that
`read_fcs` rejects lands in failures.csv with the reader's message).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from study_helpers import FSC, SSC, fl, simulated_strategy

import cytokit
from cytokit import gating as G
from cytokit.analysis.chimerism import chimerism_row
from cytokit.analysis.qcdata import gate_points, gate_to_json
from cytokit.analysis.results import Results, sample_id, write_results
from cytokit.analysis.trends import TREND_COLUMNS, cohort_summary, trend_row
from cytokit.errors import CytokitError
from cytokit.study._toml import load_toml
from cytokit.study.panel import Panel

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
MIN_EVENTS = 50
PHENOTYPE = ("CD16", "CD8")
#: A fixed positivity threshold on the (uncompensated) scale values of the phenotype markers.
POSITIVE = 1000.0


def fixture_strategy() -> G.GatingStrategy:
    """`simulated_strategy` plus an ellipse (large lymphocytes), a Boolean gate and a quadrant
    gate whose CD56 divider differs between CD3- and CD3+ cells (as the sample study's own)."""
    base = simulated_strategy()
    cd3 = G.Divider("s-cd3", fl("APC-A"), (0.45,))
    low = G.Divider("s-cd56|cd3-", fl("PE-A"), (0.42,))
    high = G.Divider("s-cd56|cd3+", fl("PE-A"), (0.55,))
    split = tuple(
        G.Quadrant(f"S{a}{b}", (("s-cd3", x), (div.id, y)))
        for a, x, div in (("CD3-", 0.0, low), ("CD3+", 1.0, high))
        for b, y in (("CD56-", 0.0), ("CD56+", 1.0))
    )
    extra = [
        G.QuadrantGate(id="QS", parent="Live", dividers=(cd3, low, high), quadrants=split),
        G.EllipsoidGate(
            id="Large",
            parent="Lymphocytes",
            dims=(FSC, SSC),
            mean=(95_000.0, 22_000.0),
            covariance=((3.0e8, 2.0e7), (2.0e7, 3.0e7)),
            distance_square=4.0,
        ),
        G.BooleanGate(id="NotBeads", op="not", operands=("Beads",)),
    ]
    return G.GatingStrategy(list(base.gates) + extra, name=base.name)


def _population_path(strategy, gate_id: str) -> str:
    try:
        return strategy.population(gate_id).path
    except (KeyError, CytokitError):
        return ""


def _qc_rows(result, base: dict, rng) -> tuple[list[dict], dict[str, np.ndarray]]:
    rows, arrays = [], {}
    strategy = result.strategy
    counts = result.counts.set_index("gate_id")
    for g in strategy.gates:
        pts = gate_points(result, g, rng)
        path = _population_path(strategy, g.id)
        parent = _population_path(strategy, g.parent) if g.parent else ""
        count = counts["count"].get(g.id, np.nan) if path else np.nan
        parent_count = counts["count"].get(g.parent, np.nan) if g.parent else float(result.n_events)
        rows.append(
            {
                **base,
                "gate_path": path,
                "gate_id": g.id,
                "parent_path": parent,
                "kind": g.kind,
                "dims": json.dumps([d.label for d in g.dimensions]),
                "geometry": gate_to_json(g),
                "count": count,
                "parent_count": parent_count if path else np.nan,
                "n_points": int(pts.shape[0]),
            }
        )
        if pts.size:
            arrays[f"gate:{g.id}"] = pts
    return rows, arrays


def _phenotype_rows(sample, panel, result, donor, populations, base) -> list[dict]:
    rows = []
    for name in ("NK", "CIK", "T"):
        member = result.membership(populations[name])
        for origin, sel in (
            ("all", member),
            ("donor", member & donor),
            ("recipient", member & ~donor),
        ):
            for marker in PHENOTYPE:
                v = sample.events[sel, panel.column(sample, marker)].astype(np.float64)
                rows.append(
                    {
                        **base,
                        "population": name,
                        "origin": origin,
                        "marker": marker,
                        "events": int(v.size),
                        "median": float(np.median(v)) if v.size else np.nan,
                        "pct_positive": 100.0 * float(np.mean(v >= POSITIVE)) if v.size else np.nan,
                        "threshold_scale": POSITIVE,
                    }
                )
    return rows


def _trends(chimerism: pd.DataFrame, infusions: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (patient, sample_type, population), g in chimerism.groupby(
        ["patient", "sample_type", "population"], sort=True
    ):
        inf = infusions[infusions["patient"] == patient]
        for measure in ("donor_per_ul", "donor_pct"):
            row = {
                "patient": patient,
                "stratum": g["stratum"].iloc[0],
                "sample_type": sample_type,
                "population": population,
                "measure": measure,
            }
            row.update(
                trend_row(
                    g["day"].to_numpy(),
                    g[measure].to_numpy(dtype=np.float64),
                    g["status"].to_numpy(),
                    inf["day"].tolist(),
                    inf["dose_per_kg"].tolist(),
                )
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TREND_COLUMNS))


def make_results(
    out: str | Path,
    *,
    patients: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
    keep: Callable[[str, int], bool] | None = None,
    corrupt: tuple[str, ...] = (),
) -> Path:
    """Write a results folder for the sample study into `out`; return `out`.

    Parameters
    ----------
    out : path
    patients : mapping, optional
        Sample-study patient id → id to use instead (e.g. hostile HTML).
    files : mapping, optional
        Manifest file path → file name to use instead.
    keep : callable, optional
        ``keep(patient, day)`` (original ids): which samples to include.
    corrupt : tuple of str
        Manifest file paths to truncate (into ``out/_corrupt``) and fail to read.
    """
    out = Path(out)
    patients, files = dict(patients or {}), dict(files or {})
    config = load_toml(SAMPLE_DATA / "study.toml")
    populations = dict(config["populations"])
    panel = Panel.from_toml(SAMPLE_DATA / "study.toml")
    manifest = pd.read_csv(SAMPLE_DATA / "manifest.csv", dtype={"patient": str})
    infusions = pd.read_csv(SAMPLE_DATA / "infusions.csv", dtype={"patient": str})
    strata = manifest.drop_duplicates("patient").set_index("patient")["stratum"]
    infusions["stratum"] = infusions["patient"].map(strata)
    infusions["patient"] = infusions["patient"].map(lambda p: patients.get(p, p))
    strategy = fixture_strategy()
    tables: dict[str, list] = {k: [] for k in ("samples", "counts", "chimerism", "phenotype", "qc")}
    tables["failures"], tables["thresholds"] = [], []
    (out / "qc").mkdir(parents=True, exist_ok=True)
    for row in manifest.itertuples(index=False):
        if keep is not None and not keep(row.patient, int(row.day)):
            continue
        pid, name = patients.get(row.patient, row.patient), files.get(row.file, row.file)
        base = {"patient": pid, "day": int(row.day), "file": name}
        path = SAMPLE_DATA / row.file
        if row.file in corrupt:
            path = out / "_corrupt" / Path(row.file).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes((SAMPLE_DATA / row.file).read_bytes()[:3000])
        try:
            sample = cytokit.read_fcs(path)
        except CytokitError as exc:
            tables["failures"].append(
                {**base, "stage": "read", "kind": "error", "error": type(exc).__name__,
                 "reason": str(exc)}
            )  # fmt: skip
            continue
        result = strategy.apply(sample)
        donor = np.load(str(path).replace(".fcs", ".truth.npz"))["donor"].astype(bool)
        beads = int(result.count("Beads"))
        ref_per_ul = row.beads_per_test / row.sample_volume_ul
        per_event = ref_per_ul / beads
        tables["samples"].append(
            {**base, "stratum": row.stratum, "sample_type": row.sample_type,
             "events": sample.n_events, "channels": sample.n_channels,
             "fcs_version": sample.version, "cytometer": sample.keyword("$CYT", ""),
             "spillover": sample.spillover.source if sample.spillover is not None else "",
             "count_method": "beads", "reference": "/Beads", "reference_events": beads,
             "reference_per_ul": ref_per_ul, "sha256": "", "warnings": ""}
        )  # fmt: skip
        names = {path_: n for n, path_ in populations.items()}
        for c in result.counts.itertuples(index=False):
            tables["counts"].append(
                {**base, "population": names.get(c.gate_path, ""), "gate_path": c.gate_path,
                 "gate_id": c.gate_id, "parent_path": c.parent_path, "depth": c.depth,
                 "count": c.count, "parent_count": c.parent_count, "pct_parent": c.pct_parent,
                 "pct_total": c.pct_total, "per_ul": c.count * per_event}
            )  # fmt: skip
        for pop, gate_path in populations.items():
            member = result.membership(gate_path)
            events, d = int(member.sum()), int((member & donor).sum())
            chim = chimerism_row(events, d, min_events=MIN_EVENTS)
            tables["chimerism"].append(
                {**base, "stratum": row.stratum, "sample_type": row.sample_type,
                 "population": pop, "gate_path": gate_path, **chim,
                 "per_ul": events * per_event, "donor_per_ul": d * per_event,
                 "recipient_per_ul": (events - d) * per_event}
            )  # fmt: skip
        tables["phenotype"] += _phenotype_rows(sample, panel, result, donor, populations, base)
        tables["thresholds"].append(
            {**base, "marker": "HLA-A2", "purpose": "donor", "parent": "/Lymphocytes/Singlets/Live",
             "method": "truth", "note": "donor cells from the simulator's per-event truth"}
        )  # fmt: skip
        sid = sample_id(name)
        qc_rows, arrays = _qc_rows(result, {**base, "sample": sid}, np.random.default_rng(0))
        tables["qc"] += qc_rows
        np.savez_compressed(out / "qc" / f"{sid}.npz", **arrays)
    frames = {k: pd.DataFrame(v) for k, v in tables.items()}
    chim = frames["chimerism"]
    trends = _trends(chim, infusions) if len(chim) else pd.DataFrame(columns=list(TREND_COLUMNS))
    meta = []
    for p, g in manifest.groupby("patient", sort=True):
        if keep is not None:
            g = g[[keep(p, int(d)) for d in g["day"]]]
        if len(g):
            meta.append(
                {"id": patients.get(p, p), "stratum": g["stratum"].iloc[0],
                 "donor_marker": "HLA-A2", "donor_is": g["donor_is"].iloc[0],
                 "days": sorted(int(d) for d in g["day"])}
            )  # fmt: skip
    study = {
        "name": config["study"]["name"],
        "created": "2024-01-08T12:00:00+00:00",
        "cytokit_version": cytokit.__version__,
        "populations": populations,
        "threshold_parent": "/Lymphocytes/Singlets/Live",
        "patients": meta,
        "markers": {"donor": ["HLA-A2"], "phenotype": list(PHENOTYPE), "clustering": []},
        "qc": {"min_events": MIN_EVENTS, "ci": "wilson"},
        "strategy": {"source": "tests/study_helpers.py", "digest": strategy.digest()},
        "config": config,
    }
    results = Results(
        study=study,
        **{k: frames[k] for k in ("samples", "counts", "chimerism", "thresholds", "phenotype")},
        trends=trends,
        cohort=cohort_summary(trends),
        infusions=infusions[infusions["patient"].isin([m["id"] for m in meta])],
        failures=frames["failures"],
        qc=frames["qc"],
    )
    write_results(results, out)
    return out
