"""The tables of one patient, from the stored per-sample results of its files.

Work goes patient by patient (a patient's samples share the donor-marker
calibration), so only one patient's results (`SampleResult`) are in memory at a time:

1. per sample, the counting basis (`cytokit.analysis.counting`) and the counts table;
2. the donor-marker check of each sample (`cytokit.analysis.marker_check`: a constant,
   saturated or misplaced distribution makes the sample ``marker_failed``,
   and it takes no part in the patient's calibration), then the donor-marker
   threshold of each usable sample, placed with the patient's other
   samples (`cytokit.analysis.chimerism.patient_thresholds`: calibration on the latest
   pre-infusion sample, offsets re-anchored on each day's recipient peak and
   bead intensity);
3. each population's donor cut (the sample threshold, or the population's own
   valley: `cytokit.analysis.chimerism.population_threshold`) and its chimerism from
   the exact histogram counts, with the binomial interval and status, and beside
   it the donor % with the time ranges acquisition QC removed imputed from the
   kept events next to them (`cytokit.analysis.chimerism.stratified_row`);
4. phenotype per population and origin, origins from the same cuts
   (`cytokit.analysis.phenotype`);
5. QC rows and the sample's ``qc/<sample>.npz``.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from cytokit._io import atomic_write_bytes
from cytokit.analysis.chimerism import (
    MIN_FLANK_EVENTS,
    Threshold,
    chimerism_row,
    failed_row,
    own_cells_agree,
    patient_thresholds,
    population_threshold,
    stratified_row,
)
from cytokit.analysis.counting import count_basis
from cytokit.analysis.marker_check import check_donor_marker, detector_failed, piled_up
from cytokit.analysis.phenotype import phenotype_rows
from cytokit.analysis.results import sample_id
from cytokit.analysis.sample_result import SampleResult
from cytokit.analysis.trends import DETECTED
from cytokit.finite import NonFinite
from cytokit.stats.density import Histogram

__all__ = [
    "PatientTables",
    "SampleCells",
    "acquisition_arrays",
    "function_rows",
    "patient_tables",
    "write_qc_file",
]


class PatientTables:
    """Rows of every per-sample table, accumulated."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = defaultdict(list)
        #: per sample of the patient: (row, key, `SampleCells`), for the tables that pair
        #: tubes (function.csv); not carried from patient to patient by `extend`
        self.cells: list[tuple] = []

    def extend(self, other: PatientTables) -> None:
        for name, rows in other.rows.items():
            self.rows[name].extend(rows)


def _inverse(transform, x: float) -> float:
    if transform is None or not math.isfinite(x):
        return x
    return float(transform.inverse(np.array([x]))[0])


def patient_tables(
    study, task, items, qc_dir: Path | None, *, tube: str = "default", chimerism: bool = True
) -> PatientTables:
    """Tables of one patient's samples of one tube.

    Parameters
    ----------
    study : Study
    task : MeasureTask
        The tube's task.
    items : list of (ManifestRow, content hash, SampleResult)
        The patient's files of the tube.
    qc_dir : Path or None
        Where to write ``<sample>.npz`` QC files (None: not written).
    tube : str
        The tube's name (every row's ``tube``).
    chimerism : bool
        Whether chimerism and absolute counts come from this tube
        (``[chimerism] tube``). Another tube with origin still places its donor
        thresholds (phenotype by origin) but writes no chimerism rows, and its
        counts have no counting basis.

    Returns
    -------
    PatientTables
    """
    out = PatientTables()
    # FMO controls (the manifest's control column) place thresholds for their visit's files
    controls = sorted((t for t in items if t[0].control), key=lambda t: t[0].day)
    fmo: dict[tuple, dict] = {}
    for row, _, p in controls:
        fmo.setdefault((row.day, row.sample_type), {})[row.control] = (study.relative(row.file), p)
    items = sorted((t for t in items if not t[0].control), key=lambda t: t[0].day)
    if items:
        _stained(out, study, task, items, qc_dir, tube, chimerism, fmo)
    for row, digest, p in controls:  # the file's facts, counts and QC; no phenotype of its own
        file = study.relative(row.file)
        key = {"patient": row.patient, "day": row.day, "file": file, "tube": tube}
        basis = count_basis(row, {})
        out.rows["samples"].append(_sample_row(key, row, digest, p, basis, "", ""))
        _acquisition_qc_ranges(out, key, p)
        _count_rows(out, key, p.counts, basis, dict(task.populations))
        _qc(out, key, p, p.counts, {}, qc_dir, file)
    return out


def _stained(out, study, task, items, qc_dir, tube, chimerism, fmo) -> None:
    """The rows of a patient's stained files of one tube (`patient_tables`)."""
    s = study.settings
    row0 = items[0][0]
    marker = study.donor_marker(row0)
    if marker not in task.donor_markers:  # a tube without origin
        marker = ""
    side = study.donor_side(row0)
    xf = dict(task.transforms)
    paths = dict(task.populations)
    thresholds: list[Threshold | None] = [None] * len(items)
    failed = [""] * len(items)
    if marker:
        thresholds, failed = _thresholds(items, marker, side)
    for (row, digest, p), threshold, why in zip(items, thresholds, failed, strict=True):
        file = study.relative(row.file)
        key = {"patient": row.patient, "day": row.day, "file": file, "tube": tube}
        counts = p.counts
        by_path = dict(zip(counts["gate_path"], counts["count"].astype(int), strict=True))
        lost = _uncounted(counts, p, marker, why)
        basis = count_basis(
            row,
            {k: v for k, v in by_path.items() if k not in lost} if chimerism else {},
            beads=s.beads if chimerism else "",
            lymphocytes=(s.lymphocytes or task.parent) if chimerism else "",
            leukocytes=s.leukocytes if chimerism else "",
        )
        out.rows["samples"].append(_sample_row(key, row, digest, p, basis, marker, why))
        _acquisition_qc_ranges(out, key, p)
        _count_rows(out, key, counts, basis, paths, lost)
        cuts, qc_arrays = _chimerism_rows(
            out, key, row, p, by_path, basis, s, task, marker, threshold, why, xf, chimerism,
            lost=lost,
        )  # fmt: skip
        controls = fmo.get((row.day, row.sample_type), {})
        cells = _phenotype(out, key, p, task, marker, side, cuts, xf, controls, lost)
        if cells is not None:
            repertoire = study.tube(tube).repertoire if tube in study.tubes else {}
            if repertoire:
                _repertoire_rows(out, key, cells, repertoire, s.ci)
            out.cells.append((row, key, cells))
        _qc(out, key, p, counts, qc_arrays, qc_dir, file)


def _sample_row(key: dict, row, digest: str, p: SampleResult, basis, marker, why: str) -> dict:
    """The sample's samples.csv row: file facts, counting basis, donor-marker check."""
    info = p.info
    # a bead-counted study's file without its bead numbers: why its cells/µL are empty
    no_counts = [f"no cells/µL: {basis.note}"] if basis.note and not basis.method else []
    return {
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
        "warnings": "; ".join([*p.warnings, *no_counts]),
        "nonfinite_events": info.get("nonfinite_events", 0),
        "nonfinite_values": NonFinite.from_dict(p.nonfinite).summary() or None,
        "donor_marker_check": ("failed" if why else "usable") if marker else None,
        "donor_marker_note": why or None,
        **_acquisition_qc_columns(p),
    }


def _count_rows(
    out: PatientTables, key: dict, counts, basis, paths: dict, lost: dict | None = None
) -> None:
    """One counts.csv row per gate of the sample, with its concentration; a gate in `lost`
    (`_uncounted`) has no count, %, or cells/µL, and its note says why."""
    pop_of = {v: k for k, v in paths.items()}
    lost = lost or {}
    nan = float("nan")
    for r in counts.itertuples(index=False):
        row = {
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
            "note": lost.get(r.gate_path),
        }
        if r.gate_path in lost:
            row.update(count=None, pct_parent=nan, pct_total=nan, per_ul=nan)
            if r.parent_path in lost:
                row["parent_count"] = None
        out.rows["counts"].append(row)


def _uncounted(counts, p: SampleResult, marker: str, why: str) -> dict[str, str]:
    """Gate path -> why it has no count, for a sample whose donor marker failed (`why`):
    the gates that read the marker's channel (directly or through a gate they depend on),
    and, where its detector's values piled at one (dead, stuck, saturated: `_piled`), those
    reading a channel compensated against that detector (`per_sample.reading`). Their
    events were counted on values that are not the cells': a count there would be a
    failed measurement read as one. Beads read elsewhere than on the other days (a gain
    changed; judged on a few bead events it may be a false alarm) leave those counts,
    said to be possibly off."""
    pile = (p.pileup or {}).get(marker) if why else None
    if not pile:
        return {}
    own = f"not counted: it depends on the donor marker {marker}, which failed for this sample"
    spill = (
        f"not counted: it reads a channel compensated against the failed donor-marker "
        f"detector ({marker}), so its events moved with that detector's false values"
    )
    ids = {i: own for i in pile.get("reads", [])}
    if _piled(why, pile):
        for i in pile.get("spill_reads", []):
            ids.setdefault(i, spill)
    if not ids:
        return {}
    return {
        path: ids[gid] for gid, path in zip(counts["gate_id"], counts["gate_path"], strict=True)
        if gid in ids
    }  # fmt: skip


def _chimerism_rows(
    out, key, row, p, by_path, basis, s, task, marker, threshold, why, xf, chimerism=True,
    lost=None,
) -> tuple[dict[str, Threshold], dict[str, np.ndarray]]:  # fmt: skip
    """Thresholds and chimerism rows of one sample; each population's cut and the QC histograms.

    A sample without a threshold (no donor marker) gets event counts only; one
    whose marker failed its check gets ``marker_failed`` rows, never a 0, and no
    events where its gate is in `lost` (`_uncounted`). A
    sample of a tube that is not the chimerism tube gets its thresholds and
    cuts but no chimerism rows.
    """
    names = [n for n, _ in task.populations]
    paths = dict(task.populations)
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
        elif why:  # no donor value, never a 0 (cytokit.analysis.marker_check)
            qc_arrays[f"hist:{name}"] = _hist(p, marker, i).to_array()
            chim.update(failed_row(n, why))
            chim["donor_per_ul"] = chim["recipient_per_ul"] = float("nan")
            if paths[name] in (lost or {}):
                chim["events"], chim["per_ul"] = None, float("nan")
        else:
            h = _hist(p, marker, i)
            qc_arrays[f"hist:{name}"] = h.to_array()
            cut = cuts[name] = population_threshold(threshold, h)
            if cut is not threshold:
                out.rows["thresholds"].append(_threshold_row(key, marker, paths[name], cut, xf))
            c = chimerism_row(n, cut.donor_events(h), min_events=s.min_events, ci=s.ci)
            c["imputed_events"] = c["imputed_donor_events"] = 0.0
            c["imputed_donor_pct"] = c["donor_pct"]
            c["imputed_ci_low"], c["imputed_ci_high"] = c["ci_low"], c["ci_high"]
            ranges = _removed_ranges(p, marker, i, len(names), cut)
            if ranges:  # acquisition QC removed time ranges: impute them (chimerism.py)
                c.update(stratified_row(n, c["donor_events"], ranges, ci=s.ci))
            chim.update(c)
            if row.day < 0 and c["status"] in DETECTED:
                # donor cells cannot be there yet: a table reader sees what the report flags
                said = (
                    f"donor cells before the first infusion ({c['donor_events']} donor "
                    "events): check the donor-marker threshold"
                )
                chim["note"] = "; ".join(x for x in (str(chim.get("note") or ""), said) if x)
            chim["donor_per_ul"] = basis.per_ul(c["donor_events"])
            chim["recipient_per_ul"] = basis.per_ul(c["recipient_events"])
        if chimerism:
            out.rows["chimerism"].append(chim)
    return cuts, qc_arrays


def _removed_ranges(p: SampleResult, marker: str, i: int, n_pop: int, cut: Threshold) -> list:
    """Per time range QC removed: (its events, [(flank events, population, donor events)],
    its own gated cells or None), as `stratified_row` takes them.

    A range QC removed for its event rate (a clog, a bubble) has its own gated
    cells: ``(parent share, parent events, population events, donor events)``,
    the threshold parent's share of all events in its flanks (the kept events
    beside it, those `stratified_row` reads) and the range's own cells in the
    parent, the population and its donor side.
    """
    if p.strata is None or marker not in p.flanks:
        return []
    block, edges = p.flanks[marker], p.edges[marker]
    size, parent = p.strata["flank_events"], p.strata["parent"]

    # the population's histogram in each stratum (flanks, then the ranges' own events)
    hists = [Histogram(edges, block[j * n_pop + i - 1].astype(np.int64)) for j in range(len(size))]

    def cells(j):
        return hists[j].total, cut.donor_events(hists[j])

    out = []
    for r in p.strata["ranges"]:
        sides = [(int(size[j]), *cells(j)) for j in r["flanks"]]
        own = None
        read = [j for j in r["flanks"] if size[j] >= MIN_FLANK_EVENTS]
        if "own" in r and read and own_cells_agree(hists[r["own"]], [hists[j] for j in read], cut):
            share = sum(parent[j] for j in read) / sum(size[j] for j in read)
            own = (share, int(parent[r["own"]]), *cells(r["own"]))
        out.append((int(r["events"]), sides, own))
    return out


def _thresholds(items, marker: str, side: int) -> tuple[list[Threshold], list[str]]:
    """Each sample's donor-marker threshold, and why its marker is unusable ('' if usable).

    A sample with an unusable marker takes no part in placing the others'
    thresholds (its histogram counts as empty) and gets no threshold.
    """
    hists = [_hist(p, marker, 0) for _, _, p in items]
    days = [row.day for row, _, _ in items]
    anchors = [(p.anchors or {}).get(marker) for _, _, p in items]
    pileups = [(p.pileup or {}).get(marker) for _, _, p in items]
    failed = check_donor_marker(hists, days, side, anchors, pileups)
    # the table's reader has no page around the note: name the marker and what to do
    failed = [
        f"{why} (donor marker {marker}: check its detector, stain and [panel] channel; the "
        "sample gives no donor value until acquired again)" + _counts_too(why, pile)
        if why
        else why
        for why, pile in zip(failed, pileups, strict=True)
    ]
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


def _piled(why: str, pileup: dict | None) -> bool:
    """Whether the marker failed (`why`) with its detector's values piled at one
    (`marker_check.piled_up`), not for beads read elsewhere."""
    return bool(why) and piled_up(pileup)


def _counts_too(why: str, pileup: dict | None) -> str:
    """What a failed donor-marker detector did to the sample's counts: the gated channels
    compensated against it took its false values (`per_sample.spilled_into`)."""
    spills = (pileup or {}).get("spills_into") or []
    if not spills or not detector_failed(why, pileup):
        return ""
    named = ", ".join(f"{label} by {100 * share:.2g} % of it" for label, share in spills)
    if not _piled(why, pileup):  # beads moved: a gain changed, or a few beads misread
        return (
            "; its counts may be off too: compensation corrects the gated channels with what "
            f"this detector recorded, not what the cells gave ({named})"
        )
    return (
        "; the gates reading a channel compensated against it are not counted either "
        "(counts.csv says which): compensation corrected those channels with what this "
        f"detector recorded, not what the cells gave ({named})"
    )


def _hist(p: SampleResult, marker: str, row: int) -> Histogram:
    return Histogram(p.edges[marker], p.hists[marker][row].astype(np.int64))


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


class SampleCells:
    """The phenotype events of one sample: per population its stored events' phenotype
    values (compensated scale) and donor flags (None without origin), and per population
    and marker the positivity threshold (scale value) and how it was placed."""

    def __init__(self, markers, populations, thresholds, methods):
        self.markers = markers
        self.populations = populations  # name -> (values (n, k), donor or None)
        self.thresholds = thresholds  # name -> marker -> scale value
        self.methods = methods  # name -> marker -> method

    def groups(self, name: str):
        """(origin, values) of population `name`: all, then donor and recipient when known."""
        values, donor = self.populations[name]
        yield "all", values
        if donor is not None:
            yield "donor", values[donor]
            yield "recipient", values[~donor]


def _repertoire_rows(out, key, cells: SampleCells, settings: dict, ci: str) -> None:
    """repertoire.csv rows of one sample: every combination of the tube's receptors per
    population and origin (`cytokit.analysis.repertoire`)."""
    from cytokit.analysis.repertoire import repertoire

    receptors = list(settings["receptors"])
    for name in cells.populations:
        cut, how = cells.thresholds[name], cells.methods[name]
        missing = [m for m in receptors if not np.isfinite(cut.get(m, np.nan))]
        method = "; ".join(f"{m} {how.get(m, 'none')}" for m in receptors)
        for origin, values in cells.groups(name):
            base = {**key, "population": name, "origin": origin, "threshold_method": method}
            if missing:  # no positivity threshold: nothing is counted, never a 0
                out.rows["repertoire"].append(
                    {
                        **base,
                        "total": len(values),
                        "note": f"no positivity threshold for {', '.join(missing)} in this sample",
                    }
                )
                continue
            positive = {m: values[:, cells.markers.index(m)] >= cut[m] for m in receptors}
            table = repertoire(
                positive,
                kirs=settings.get("kirs", ()),
                inhibitory=settings.get("inhibitory", ()),
                method="clopper-pearson" if ci == "clopper-pearson" else "wilson",
            )
            for r in table.itertuples(index=False):
                out.rows["repertoire"].append(
                    {
                        **base,
                        "combination": r.row,
                        "kind": r.kind,
                        "events": int(r.events),
                        "total": int(r.total),
                        "pct": float(r.pct),
                        "ci_low": float(r.ci_low),
                        "ci_high": float(r.ci_high),
                        "ci_method": r.ci_method,
                    }
                )


def _phenotype(
    out, key, p, task, marker, side, cuts: dict[str, Threshold], xf, controls=None, lost=None
):
    """Phenotype rows of one sample; origins from each population's donor cut (`cuts`).
    A marker with an FMO control on the visit (`controls`: marker -> (control file, its
    SampleResult)) is cut per population at the control's 99.5th percentile
    (`cytokit.analysis.positivity`). A population whose gate is in `lost` (`_uncounted`)
    has no rows: its events are not the cells'. Returns the sample's `SampleCells` (None
    without phenotype markers)."""
    markers = list(task.phenotype_markers)
    if not markers:
        return None
    th = p.pheno_thresholds or {}
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
    method = {m: th.get(m, {}).get("method", "none") for m in markers}
    fmo = _fmo_thresholds(controls or {}, task, markers)
    nd = len(task.donor_markers)
    populations, thresholds, methods = {}, {}, {}
    paths = dict(task.populations)
    for name, _ in task.populations:
        block = p.pheno.get(name)
        if block is None or paths[name] in (lost or {}):
            continue
        donor = None
        cut = cuts.get(name)
        if cut is not None and cut.method != "none":
            v = block[:, list(task.donor_markers).index(marker)].astype(np.float64)
            donor = v >= cut.value if side > 0 else v < cut.value
        here, how = dict(scale), dict(method)
        for m, (value, kind, note) in fmo.get(name, {}).items():
            here[m], how[m] = value, kind
            out.rows["thresholds"].append(
                {
                    **key,
                    "marker": m,
                    "purpose": "phenotype",
                    "parent": paths[name],
                    "threshold": _forward(xf.get(m), value),
                    "threshold_scale": value,
                    "method": kind,
                    "note": note,
                }
            )
        for r in phenotype_rows(block[:, nd:], donor, markers, here):
            out.rows["phenotype"].append({**key, "population": name, **r})
        populations[name] = (np.asarray(block[:, nd:], dtype=np.float64), donor)
        thresholds[name], methods[name] = here, how
    return SampleCells(markers, populations, thresholds, methods)


def _forward(transform, x: float) -> float:
    if transform is None or not math.isfinite(x):
        return x
    return float(transform.apply(np.array([x]))[0])


def _outermost(populations) -> set[str]:
    """Names of the `populations` ((name, gate path)) whose path lies under no other's:
    a gate's events are within its parent's, so these hold every cell of them all, each
    cell once where the outer populations do not overlap (sibling gates)."""
    paths = {name: path.rstrip("/") for name, path in populations}
    return {
        name
        for name, path in paths.items()
        if not any(other != path and path.startswith(other + "/") for other in paths.values())
    }


def _fmo_thresholds(controls: dict, task, markers) -> dict[str, dict[str, tuple]]:
    """Per population and marker with an FMO control: (threshold scale value, method, note).

    The threshold is the 99.5th percentile of the control's events of the population
    (`cytokit.analysis.positivity.fmo_threshold`); a population with fewer events than
    that needs takes the control's events of every study population of the tube together,
    each cell once (the outermost populations, `_outermost`; method ``fmo_pooled``); with
    fewer still the marker keeps the sample's own threshold.
    """
    from cytokit.analysis.positivity import fmo_threshold, min_control_events

    out: dict[str, dict[str, tuple]] = {}
    need = min_control_events()
    # each cell once: a population gated inside another's path (NK_dim within NK, CIK
    # within T) holds cells the outer one holds already
    outer = _outermost(task.populations)
    nd = len(task.donor_markers)
    for m, (file, control) in controls.items():
        if m not in markers:
            continue
        j = nd + list(markers).index(m)
        blocks = {name: control.pheno.get(name) for name, _ in task.populations}
        pooled = [b[:, j] for name, b in blocks.items() if b is not None and name in outer]
        pooled = np.concatenate(pooled).astype(np.float64) if pooled else np.empty(0)
        for name, block in blocks.items():
            values = np.empty(0) if block is None else block[:, j].astype(np.float64)
            if np.isfinite(values).sum() >= need:
                out.setdefault(name, {})[m] = (fmo_threshold(values), "fmo", f"control {file}")
            elif np.isfinite(pooled).sum() >= need:
                out.setdefault(name, {})[m] = (
                    fmo_threshold(pooled),
                    "fmo_pooled",
                    f"control {file}: {values.size} events of the population, fewer than "
                    f"{need}; the control's events of every population, each cell once",
                )
    return out


def _acquisition_qc_columns(p) -> dict:
    """The file's acquisition-QC columns of samples.csv (empty without QC)."""
    from cytokit.qc.apply import SUMMARY_COLUMNS

    record = p.acquisition_qc
    if record is None:
        return dict.fromkeys(SUMMARY_COLUMNS)
    # .get: a stored result of an older version has no qc_notes
    return {c: record["summary"].get(c) for c in SUMMARY_COLUMNS}


def _acquisition_qc_ranges(out, key, p) -> None:
    """The file's flagged time ranges: rows of acquisition_qc.csv."""
    if p.acquisition_qc is not None:
        for r in p.acquisition_qc["ranges"]:
            out.rows["acquisition_qc"].append({**key, **r})


def _qc(out, key, p, counts, arrays, qc_dir, file) -> None:
    stem = sample_id(file)
    record = p.acquisition_qc
    if record is not None and p.acq_bins is not None:
        arrays.update(acquisition_arrays(record, p.acq_bins))
    by_id = {r.gate_id: r for r in counts.itertuples(index=False)}
    for g in p.gates:
        pts = p.qc_points.get(g["gate_id"])
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
        write_qc_file(qc_dir, stem, arrays)


def acquisition_arrays(record: dict, bins: np.ndarray) -> dict[str, np.ndarray]:
    """The ``acq:bins``, ``acq:columns`` and ``acq:time_unit`` arrays of ``qc/<sample>.npz``
    from a stored ``acquisition_qc`` record and its ``acq_bins``."""
    return {
        "acq:bins": bins,
        "acq:columns": np.array(record.get("bin_columns", []), dtype=str),
        "acq:time_unit": np.array(record.get("time_unit", ""), dtype=str),
    }


def write_qc_file(qc_dir: Path, stem: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``<qc_dir>/<stem>.npz`` (compressed) atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    qc_dir.mkdir(exist_ok=True)
    atomic_write_bytes(qc_dir / f"{stem}.npz", buf.getvalue())


def function_rows(study, cells: dict, level: float = 0.95) -> list[dict]:
    """function.csv rows of one patient: each stimulated tube's file (``[tubes.<name>]
    pairs_with``) against the unstimulated tube's file of the same visit, per population,
    origin and marker both tubes measure (`cytokit.analysis.function.background_subtracted`).

    Parameters
    ----------
    study : Study
    cells : dict of (tube, day, sample_type) to (ManifestRow, key, SampleCells)

    The positivity threshold is the stimulated file's (where the positive cells are),
    applied to both files so that the difference is of one cut; without one, the
    unstimulated file's; without either the row has no numbers and says why.
    """
    from cytokit.analysis.function import background_subtracted

    rows = []
    for (tube, day, stype), (row, key, stim) in sorted(cells.items(), key=lambda kv: kv[0][1]):
        pair = study.tubes[tube].pairs_with if tube in study.tubes else ""
        if not pair:
            continue
        found = cells.get((pair, day, stype))
        if found is None:  # nothing to subtract from: a row per marker that says so
            listed = next(
                (
                    r
                    for r in study.rows
                    if (r.patient, r.day, r.sample_type) == (row.patient, day, stype)
                    and study.tube_of(r) == pair
                    and not r.control
                ),
                None,
            )
            why = (
                f"the {pair} file of this visit ({study.relative(listed.file)}) failed (see "
                "failures.csv): nothing to subtract"
                if listed is not None
                else f"no {pair} file of this visit (day {day}) in the manifest: nothing to "
                "subtract; add it to the manifest"
            )
            for name in stim.populations:
                for marker in stim.markers:
                    rows.append(
                        {
                            "patient": row.patient,
                            "day": day,
                            "tube": tube,
                            "file": key["file"],
                            "control_tube": pair,
                            "control_file": "",
                            "population": name,
                            "origin": "all",
                            "marker": marker,
                            "events_stim": len(stim.populations[name][0]),
                            "note": why,
                        }
                    )
            continue
        _, ckey, unstim = found
        markers = [m for m in stim.markers if m in unstim.markers]
        for name in stim.populations:
            if name not in unstim.populations:
                continue
            s_groups = dict(stim.groups(name))
            u_groups = dict(unstim.groups(name))
            for marker in markers:
                t = stim.thresholds[name].get(marker, np.nan)
                method, where = stim.methods[name].get(marker, "none"), "stimulated"
                if not np.isfinite(t):
                    t = unstim.thresholds[name].get(marker, np.nan)
                    method, where = unstim.methods[name].get(marker), "unstimulated"
                for origin in ("all", "donor", "recipient"):
                    if origin not in s_groups or origin not in u_groups:
                        continue
                    a = s_groups[origin][:, stim.markers.index(marker)]
                    b = u_groups[origin][:, unstim.markers.index(marker)]
                    base = {
                        "patient": row.patient,
                        "day": day,
                        "tube": tube,
                        "file": key["file"],
                        "control_tube": pair,
                        "control_file": ckey["file"],
                        "population": name,
                        "origin": origin,
                        "marker": marker,
                        "events_stim": int(a.size),
                        "events_unstim": int(b.size),
                    }
                    if not np.isfinite(t):
                        rows.append(
                            {
                                **base,
                                "note": "no positivity threshold in either file; give "
                                f"{marker} a fixed threshold or an FMO control",
                            }
                        )
                        continue
                    pos_a, pos_b = int((a >= t).sum()), int((b >= t).sum())
                    r = background_subtracted(pos_a, int(a.size), pos_b, int(b.size), level=level)
                    rows.append(
                        {
                            **base,
                            "positive_stim": pos_a,
                            "positive_unstim": pos_b,
                            **r,
                            "threshold_scale": float(t),
                            "threshold_method": f"{method} ({where} file)",
                        }
                    )
    return rows
