"""Pass 2 of `cytokit.analyze`: the study tables from the stored per-file payloads.

Work goes patient by patient (a patient's samples share the donor-marker
calibration), so only one patient's payloads are in memory at a time:

1. per sample, the counting basis (`cytokit.counting`) and the counts table;
2. the donor-marker check of each sample (`cytokit.markercheck`: a constant,
   saturated or misplaced distribution makes the sample ``marker_failed``,
   and it takes no part in the patient's calibration), then the donor-marker
   threshold of each usable sample, placed with the patient's other
   samples (`cytokit.chimerism.patient_thresholds`: calibration on the latest
   pre-infusion sample, offsets re-anchored on each day's recipient peak and
   bead intensity);
3. each population's donor cut (the sample threshold, or the population's own
   valley: `cytokit.chimerism.population_threshold`) and its chimerism from
   the exact histogram counts, with the binomial interval and status;
4. phenotype per population and origin, origins from the same cuts
   (`cytokit.phenotype`);
5. QC rows and the sample's ``qc/<sample>.npz``.

`trend_tables` then builds trends.csv and cohort.csv from the chimerism table,
and `cluster_tables` clusters the stored threshold-parent events of every file
(`cytokit.cluster.cluster_study`: a SOM trained on a balanced pool, every
stored event mapped, donor flags from each sample's threshold, the study
populations as the gates clusters are matched to).
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._io import atomic_write_bytes
from cytokit.chimerism import (
    Threshold,
    chimerism_row,
    failed_row,
    patient_thresholds,
    population_threshold,
)
from cytokit.counting import count_basis
from cytokit.finite import NonFinite
from cytokit.markercheck import check_donor_marker
from cytokit.phenotype import phenotype_rows
from cytokit.results import sample_id
from cytokit.stats.density import Histogram
from cytokit.trends import TREND_COLUMNS, cohort_summary, trend_row

__all__ = ["PatientTables", "cluster_tables", "patient_tables", "trend_tables"]

MEASURES = ("donor_per_ul", "donor_pct")


class PatientTables:
    """Rows of every per-sample table, accumulated."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = defaultdict(list)

    def extend(self, other: PatientTables) -> None:
        for name, rows in other.rows.items():
            self.rows[name].extend(rows)


def _inverse(transform, x: float) -> float:
    if transform is None or not math.isfinite(x):
        return x
    return float(transform.inverse(np.array([x]))[0])


def patient_tables(study, task, items, qc_dir: Path | None) -> PatientTables:
    """Tables of one patient's samples.

    Parameters
    ----------
    study : Study
    task : MeasureTask
    items : list of (ManifestRow, content hash, payload)
    qc_dir : Path or None
        Where to write ``<sample>.npz`` QC files (None: not written).

    Returns
    -------
    PatientTables
    """
    out = PatientTables()
    s = study.settings
    items = sorted(items, key=lambda t: t[0].day)
    row0 = items[0][0]
    marker = study.donor_marker(row0)
    side = study.donor_side(row0)
    xf = dict(task.transforms)
    names = [n for n, _ in task.populations]
    paths = dict(task.populations)
    thresholds: list[Threshold | None] = [None] * len(items)
    failed = [""] * len(items)
    if marker:
        thresholds, failed = _thresholds(items, marker, side)
    for (row, digest, p), threshold, why in zip(items, thresholds, failed, strict=True):
        file = study.relative(row.file)
        key = {"patient": row.patient, "day": row.day, "file": file}
        counts = p["counts"]
        by_path = dict(zip(counts["gate_path"], counts["count"].astype(int), strict=True))
        basis = count_basis(
            row,
            by_path,
            beads=s.beads,
            lymphocytes=s.lymphocytes or task.parent,
            leukocytes=s.leukocytes,
        )
        info = p["info"]
        out.rows["samples"].append(
            {
                **key,
                "stratum": row.stratum,
                "sample_type": row.sample_type,
                **{k: info.get(k) for k in ("events", "channels", "fcs_version", "cytometer")},
                "spillover": info.get("spillover", ""),
                "count_method": basis.method,
                "reference": basis.reference,
                "reference_events": basis.reference_events if basis.method else None,
                "reference_per_ul": basis.reference_per_ul if basis.method else None,
                "sha256": digest,
                "warnings": "; ".join(p.get("warnings", [])),
                "nonfinite_events": info.get("nonfinite_events", 0),
                "nonfinite_values": NonFinite.from_dict(p.get("nonfinite")).summary() or None,
                "donor_marker_check": ("failed" if why else "usable") if marker else None,
                "donor_marker_note": why or None,
            }
        )
        pop_of = {v: k for k, v in paths.items()}
        for r in counts.itertuples(index=False):
            out.rows["counts"].append(
                {
                    **key,
                    "population": pop_of.get(r.gate_path, ""),
                    "gate_path": r.gate_path,
                    "gate_id": r.gate_id,
                    "parent_path": r.parent_path,
                    "depth": r.depth,
                    "count": r.count,
                    "parent_count": r.parent_count,
                    "pct_parent": r.pct_parent,
                    "pct_total": r.pct_total,
                    "per_ul": basis.per_ul(r.count),
                }
            )
        qc_arrays: dict[str, np.ndarray] = {}
        if threshold is not None:
            out.rows["thresholds"].append(_threshold_row(key, marker, task.parent, threshold, xf))
            qc_arrays["hist:__parent__"] = _hist(p, marker, 0).to_array()
        cuts: dict[str, Threshold] = {}
        for i, name in enumerate(names, start=1):
            n = by_path.get(paths[name], 0)
            chim = {
                **key,
                "stratum": row.stratum,
                "sample_type": row.sample_type,
                "population": name,
                "gate_path": paths[name],
                "per_ul": basis.per_ul(n),
            }
            if threshold is None:
                chim["events"] = n
            elif why:  # no donor value, never a 0 (cytokit.markercheck)
                qc_arrays[f"hist:{name}"] = _hist(p, marker, i).to_array()
                chim.update(failed_row(n, why))
                chim["donor_per_ul"] = chim["recipient_per_ul"] = float("nan")
            else:
                h = _hist(p, marker, i)
                qc_arrays[f"hist:{name}"] = h.to_array()
                cut = cuts[name] = population_threshold(threshold, h)
                if cut is not threshold:
                    out.rows["thresholds"].append(_threshold_row(key, marker, paths[name], cut, xf))
                c = chimerism_row(n, cut.donor_events(h), min_events=s.min_events, ci=s.ci)
                chim.update(c)
                chim["donor_per_ul"] = basis.per_ul(c["donor_events"])
                chim["recipient_per_ul"] = basis.per_ul(c["recipient_events"])
            out.rows["chimerism"].append(chim)
        _phenotype(out, key, p, task, marker, side, cuts, xf)
        _qc(out, key, p, counts, qc_arrays, qc_dir, file)
    return out


def _thresholds(items, marker: str, side: int) -> tuple[list[Threshold], list[str]]:
    """Each sample's donor-marker threshold, and why its marker is unusable ('' if usable).

    A sample with an unusable marker takes no part in placing the others'
    thresholds (its histogram counts as empty) and gets no threshold.
    """
    hists = [_hist(p, marker, 0) for _, _, p in items]
    days = [row.day for row, _, _ in items]
    anchors = [p["anchors"].get(marker) for _, _, p in items]
    pileups = [p.get("pileup", {}).get(marker) for _, _, p in items]
    failed = check_donor_marker(hists, days, side, anchors, pileups)
    usable = [
        Histogram(h.edges, np.zeros_like(h.counts)) if why else h
        for h, why in zip(hists, failed, strict=True)
    ]
    placed = patient_thresholds(usable, days, side, anchors)
    out = [
        Threshold(float("nan"), "none", side, note=f"donor marker unusable: {why}") if why else t
        for t, why in zip(placed, failed, strict=True)
    ]
    return out, failed


def _hist(payload: dict, marker: str, row: int) -> Histogram:
    return Histogram(payload[f"edges:{marker}"], payload[f"hist:{marker}"][row].astype(np.int64))


def _threshold_row(key: dict, marker: str, parent: str, t: Threshold, xf: dict) -> dict:
    return {
        **key,
        "marker": marker,
        "purpose": "donor",
        "parent": parent,
        "threshold": t.value,
        "threshold_scale": _inverse(xf.get(marker), t.value),
        "method": t.method,
        "donor_side": "positive" if t.donor_side > 0 else "negative",
        "recipient_mode": t.recipient_mode,
        "donor_mode": t.donor_mode,
        "recipient_width": t.recipient_width,
        "k": t.k,
        "calibration_day": t.calibration_day,
        "note": t.note,
    }


def _phenotype(out, key, p, task, marker, side, cuts: dict[str, Threshold], xf) -> None:
    """Phenotype rows of one sample; origins from each population's donor cut (`cuts`)."""
    markers = list(task.phenotype_markers)
    if not markers:
        return
    th = p.get("pheno_thresholds", {})
    for m in markers:
        t = th.get(m, {})
        out.rows["thresholds"].append(
            {
                **key,
                "marker": m,
                "purpose": "phenotype",
                "parent": task.parent,
                "threshold": t.get("threshold"),
                "threshold_scale": t.get("threshold_scale"),
                "method": t.get("method", "none"),
            }
        )
    scale = {m: (th.get(m, {}).get("threshold_scale") or float("nan")) for m in markers}
    nd = len(task.donor_markers)
    for name, _ in task.populations:
        block = p.get(f"pheno:{name}")
        if block is None:
            continue
        donor = None
        cut = cuts.get(name)
        if cut is not None and cut.method != "none":
            v = block[:, list(task.donor_markers).index(marker)].astype(np.float64)
            donor = v >= cut.value if side > 0 else v < cut.value
        for r in phenotype_rows(block[:, nd:], donor, markers, scale):
            out.rows["phenotype"].append({**key, "population": name, **r})


def _qc(out, key, p, counts, arrays, qc_dir, file) -> None:
    stem = sample_id(file)
    by_id = {r.gate_id: r for r in counts.itertuples(index=False)}
    for g in p.get("gates", []):
        pts = p.get(f"qc:{g['gate_id']}")
        if pts is not None:
            arrays[f"gate:{g['gate_id']}"] = pts
        r = by_id.get(g["gate_id"])
        out.rows["qc"].append(
            {
                **key,
                "sample": stem,
                "gate_path": r.gate_path if r is not None else "",
                "gate_id": g["gate_id"],
                "parent_path": r.parent_path if r is not None else "",
                "kind": g["kind"],
                "dims": json.dumps(g["dims"]),
                "geometry": g["geometry"],
                "count": r.count if r is not None else None,
                "parent_count": r.parent_count if r is not None else None,
                "n_points": g["n_points"],
            }
        )
    if qc_dir is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(qc_dir / f"{stem}.npz", buf.getvalue())


def trend_tables(chimerism: pd.DataFrame, study) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trends.csv and cohort.csv from the chimerism table (see `cytokit.trends`)."""
    rows = []
    if chimerism.empty or "donor_pct" not in chimerism.columns:
        return pd.DataFrame(columns=list(TREND_COLUMNS)), cohort_summary(pd.DataFrame())
    infusions = defaultdict(list)
    for i in study.infusions:
        infusions[i.patient].append(i)
    keys = ["patient", "sample_type", "population"]
    for (patient, sample_type, population), g in chimerism.groupby(keys, sort=True):
        inf = infusions.get(patient, [])
        days = [i.day for i in inf]
        doses = [np.nan if i.dose_per_kg is None else i.dose_per_kg for i in inf]
        for measure in MEASURES:
            values = g[measure].to_numpy(dtype=np.float64)
            if not np.isfinite(values).any():
                continue
            row = {
                "patient": patient,
                "stratum": g["stratum"].iloc[0],
                "sample_type": sample_type,
                "population": population,
                "measure": measure,
            }
            counts = g["donor_events"].to_numpy(dtype=np.float64)
            row.update(
                trend_row(g["day"].to_numpy(), values, g["status"].to_numpy(), days, doses, counts)
            )
            rows.append(row)
    trends = pd.DataFrame(rows, columns=list(TREND_COLUMNS))
    return trends, cohort_summary(trends)


def cluster_tables(study, task, store, items, thresholds: pd.DataFrame) -> tuple[dict, dict]:
    """Cluster the study's stored threshold-parent events with `cytokit.cluster.cluster_study`.

    Parameters
    ----------
    study : Study
    task : MeasureTask
    store : RunStore
    items : list of (ManifestRow, content hash)
        The files analysed.
    thresholds : DataFrame
        thresholds.csv rows (donor flags of the events come from them).

    Returns
    -------
    tables : dict of str to DataFrame
        ``clusters``, ``cluster_summary``, ``cluster_matching`` (empty without
        ``[clustering]``).
    info : dict
        What was done (settings, events), or ``error`` when clustering failed.
    """
    settings = study.settings.clustering
    if settings is None or not task.cluster_markers or not items:
        return {}, {}
    from cytokit.cluster import cluster_study
    from cytokit.errors import CytokitError

    donor = {}
    if not thresholds.empty:
        # the sample thresholds (placed on the parent, whose events are clustered)
        th = thresholds[(thresholds["purpose"] == "donor") & (thresholds["parent"] == task.parent)]
        for r in th.itertuples(index=False):
            if isinstance(r.method, str) and r.method != "none":
                donor[r.file] = (r.marker, float(r.threshold), r.donor_side == "positive")
    names = [n for n, _ in task.populations]
    nc = len(task.cluster_markers)
    descs = [
        {"patient": row.patient, "day": row.day, "file": study.relative(row.file), "hash": h}
        for row, h in items
    ]

    def load(item):
        values = store.items(task.key, "cluster", [item["hash"]])[item["hash"]]
        member = store.items(task.key, "cluster_gates", [item["hash"]])[item["hash"]]
        flags = None
        if item["file"] in donor:
            marker, t, positive = donor[item["file"]]
            v = values[:, nc + list(task.donor_markers).index(marker)]
            flags = v >= t if positive else v < t
        gates = {n: member[:, j].astype(bool) for j, n in enumerate(names)}
        return values[:, :nc], flags, gates

    try:
        result = cluster_study(
            load,
            descs,
            task.cluster_markers,
            grid=settings.grid,
            n_metaclusters=settings.metaclusters,
            seed=settings.seed,
            gates=names,
        )
    except CytokitError as exc:
        return {}, {"error": str(exc)}
    summary = result.summary.copy()
    medians = result.medians.reset_index()
    summary = summary.merge(medians, on="metacluster", how="left")
    return (
        {"clusters": result.table, "cluster_summary": summary, "cluster_matching": result.matching},
        {
            "markers": list(task.cluster_markers),
            "parent": task.parent,
            "events_per_file": task.cluster_events,
            "events": int(result.n_events),
            "trained_on": int(result.n_train),
            **{k: v for k, v in result.settings.items() if k != "grid"},
            "grid": list(settings.grid),
        },
    )
