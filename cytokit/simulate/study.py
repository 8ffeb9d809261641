"""Writing a simulated study folder (see DESIGN.md, "Study folder").

::

    OUT/
      study.toml                 configuration ([panel], [compensation], [transform], ...)
      manifest.csv               one row per FCS file
      infusions.csv              patient, day, product, dose_per_kg
      fcs/<stem>.fcs             the events (FCS 3.1, float32)
      fcs/<stem>.truth.npz       per-event truth: label, donor (see `save_truth`)
      truth/populations.csv      per patient, day, population: events, donor events,
                                 true donor fraction, cells/µL, donor cells/µL
      truth/kinetics.csv         per patient, population: half-life, peak day and value
      truth/samples.csv          per sample: counts, debris/doublet/dead shares, drift
      truth/patients.csv         per patient: baseline counts, HLA-A2 levels
      truth/infusions.csv        the schedule with the cells of each population infused
      truth/labels.csv           label codes
      truth/anomalies.csv        with acquisition anomalies: per file and kind injected,
                                 start and end (s), events, off-centre events, detail
      truth/design.json          the StudyDesign

      strategy.yaml              the adaptive gating strategy ``[gating] strategy``
                                 names (`DEFAULT_STRATEGY`; kept when already there)

So ``cytokit simulate OUT && cytokit analyze OUT`` runs without further set-up.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cytokit._io import atomic_write_text, write_csv
from cytokit._outdir import output_folder
from cytokit.errors import StudyError
from cytokit.fcs import write_fcs
from cytokit.simulate import instrument as ins
from cytokit.simulate.anomalies import anomaly_rows
from cytokit.simulate.design import PatientSpec, StudyDesign
from cytokit.simulate.events import (
    MAX_THREADS,
    N_COLUMNS,
    SampleTruth,
    default_workers,
    generate_events,
    inject_anomalies,
    make_sample,
    place_cells,
    sample_file_stem,
    save_truth,
)
from cytokit.simulate.model import (
    AGGREGATES,
    CELL_LABELS,
    LABELS,
    LINEAGES,
    PRODUCT_CONTENT,
    PatientModel,
    patient_model,
    population_peak,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "POPULATION_GATES",
    "benchmark_file",
    "simulate_study",
    "study_toml",
]

#: The adaptive strategy every simulated study gets (the sample study's own).
DEFAULT_STRATEGY = Path(__file__).with_name("strategy.yaml")

#: ``[populations]`` of study.toml: name -> gate path in the strategy.
POPULATION_GATES = {
    "NK": "/Lymphocytes/Singlets/Live/CD3-CD56+",
    "NK_bright": "/Lymphocytes/Singlets/Live/CD3-CD56+/CD56bright",
    "NK_dim": "/Lymphocytes/Singlets/Live/CD3-CD56+/CD56dim",
    "CIK": "/Lymphocytes/Singlets/Live/CD3+CD56+",
    "T": "/Lymphocytes/Singlets/Live/CD3+CD56-",
}
BEAD_GATE = "/Beads"
MANIFEST_COLUMNS = (
    "file", "patient", "day", "stratum", "sample_type", "donor_marker", "donor_is",
    "wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul", "product",
)  # fmt: skip
#: Columns of truth/anomalies.csv (`cytokit.simulate.anomalies.anomaly_rows`).
ANOMALY_COLUMNS = (
    "file",
    "patient",
    "day",
    "kind",
    "start",
    "end",
    "events",
    "offcentre",
    "detail",
)
LABEL_NOTES = {
    "debris": "low FSC/SSC particles",
    "doublet": "two leukocytes together (FSC-A off the singlet FSC-A/FSC-H diagonal)",
    "dead": "dead leukocytes, viability dye bright",
    "bead": "counting beads, bright in every fluorescence channel",
    "granulocyte": "CD45dim SSC-high CD16bright",
    "monocyte": "CD45+ SSC-intermediate",
    "B": "CD3-CD56- lymphocytes",
    "T_CD8neg": "CD3+CD56-CD8-",
    "T_CD8pos": "CD3+CD56-CD8+",
    "NK_bright": "CD3-CD56bright CD16-/dim",
    "NK_dim": "CD3-CD56dim CD16+",
    "CIK": "CD3+CD56+ (mostly CD8+)",
}
# in-memory buffer up to this size; beyond it a disk-backed scratch array
_MEMORY_LIMIT = 1 << 30


def _num(x: float) -> str:
    return "" if x is None or not np.isfinite(x) else f"{float(x):.10g}"


def study_toml(design: StudyDesign) -> str:
    """The text of ``study.toml`` for a simulated study."""
    lines = [
        "# Simulated by cytokit.simulate; ground truth in truth/ and fcs/*.truth.npz",
        "[study]",
        f"name = {json.dumps(design.name)}",
        f"seed = {design.seed}",
        "",
        "[panel]  # marker = detector ($PnN)",
    ]
    lines += [f'"{m}" = "{d}"' for m, d in ins.panel().items()]
    donor_detector = ins.DETECTORS[0][0]
    lines += [f'"{m}" = "{donor_detector}"' for m in design.donor_markers if m != ins.MARKERS[0]]
    donor_is = design.patients[0].donor_is
    lines += [
        "",
        "[compensation]",
        'source = "file"',
        "",
        "[transform]",
        'type = "logicle"',
        "T = 262144",
        "W = 0.5",
        "M = 4.5",
        "A = 0.0",
        "",
        "[gating]",
        'strategy = "strategy.yaml"',
        "",
        "[populations]",
    ]
    lines += [f'{k} = "{v}"' for k, v in POPULATION_GATES.items()]
    lines += [
        "",
        "[counting]",
        f'beads = "{BEAD_GATE}"' if design.beads else "# no counting beads: dual platform",
        "",
        "[chimerism]",
        f"marker = {json.dumps(design.donor_markers[0])}",
        f'donor_is = "{donor_is}"  # per patient in manifest.csv',
        "",
        "[qc]",
        f"min_events = {design.min_events}",
        "",
        "[clustering]",
        'markers = ["CD3", "CD56", "CD16", "CD8"]',
        "grid = [10, 10]",
        "metaclusters = 10",
        "seed = 1",
        "",
    ]
    return "\n".join(lines)


def _owned_paths(out: Path) -> list[Path]:
    """Files a previous simulation may have left that a new one replaces."""
    names = ("study.toml", "manifest.csv", "infusions.csv", "treatments.csv", "outcomes.csv")
    found = [out / n for n in names]  # the last two: a simulated trial with outcomes
    for folder, patterns in (("fcs", ("*.fcs", "*.truth.npz")), ("truth", ("*.csv", "*.json"))):
        for pattern in patterns:
            found += sorted((out / folder).glob(pattern))
    return [p for p in found if p.is_file()]


def simulate_study(
    out_dir: str | os.PathLike,
    design: StudyDesign,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    anomalies: Callable | None = None,
    timing: Callable | None = None,
) -> Path:
    """Write a simulated study folder with ground truth.

    Parameters
    ----------
    out_dir : path
        Created if missing. ``strategy.yaml`` is written from `DEFAULT_STRATEGY`
        unless one is there already; other files in it (a README, an edited
        strategy) are left alone.
    design : StudyDesign
    overwrite : bool
        Replace a previous study there (its study.toml, manifest.csv,
        infusions.csv, ``fcs/*.fcs``, ``fcs/*.truth.npz``, ``truth/*``);
        otherwise such files are an error.
    workers : int, optional
        Threads generating each file's event blocks; default
        the cores available, at most 4 (`MAX_THREADS`). Files are the same for any number.
    progress : callable(done, total, file_name), optional
        Called after each FCS file with the number written, the total and its name.
    anomalies : callable(PatientSpec, day) -> AnomalyPlan or None, optional
        Acquisition anomalies to inject into a file
        (`cytokit.simulate.anomalies`); their per-event truth goes into the
        file's ``.truth.npz``. The file's events are then held in memory.
    timing : callable(PatientSpec, day) -> Enrichment or None, optional
        Populations arriving preferentially in a time window of a file
        (`cytokit.simulate.timing`), applied before the anomalies. The file's
        events are then held in memory.

    Returns
    -------
    Path
        `out_dir`.

    Raises
    ------
    StudyError
        `out_dir` holds a study and `overwrite` is False, or is not a folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StudyError(f"{out}: exists and is not a folder; give a folder to write the study to")
    old = _owned_paths(out) if out.exists() else []
    if old and not overwrite:
        raise StudyError(
            f"{out}: already holds a study ({old[0].relative_to(out)} ...); "
            "replace it with --force (`cytokit simulate`) or overwrite=True (Python)"
        )
    # a folder where a table goes is found now, not after every file is simulated
    output_folder(  # a study, not results: its own files are `old`, checked above
        out,
        files=("study.toml", "manifest.csv", "infusions.csv"),
        folders=("fcs", "truth"),
        results=False,
    )
    for p in old:
        p.unlink()
    (out / "fcs").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)

    models = {p.id: patient_model(design, p) for p in design.patients}
    samples = design.samples()
    manifest, populations, sample_rows, injected = [], [], [], []
    written: list[Path] = []
    for i, (spec, day) in enumerate(samples):
        stem = sample_file_stem(spec.id, day)
        fcs = out / "fcs" / f"{stem}.fcs"
        written += [fcs, out / "fcs" / f"{stem}.truth.npz"]
        try:
            truth = _write_sample(
                design,
                spec,
                day,
                fcs,
                out / "fcs" / f"{stem}.truth.npz",
                workers=workers,
                anomalies=anomalies(spec, day) if anomalies is not None else None,
                timing=timing(spec, day) if timing is not None else None,
            )
        except BaseException:
            # no half study: the files of this run go (a bad anomaly plan, Ctrl-C)
            for path in written:
                path.unlink(missing_ok=True)
            raise
        rel = f"fcs/{stem}.fcs"
        p = truth.parameters
        manifest.append(
            {
                "file": rel,
                "patient": spec.id,
                "day": day,
                "stratum": spec.stratum or spec.arm,
                "sample_type": design.sample_type,
                "donor_marker": design.donor_marker_of(spec),
                "donor_is": spec.donor_is,
                "wbc_per_ul": round(p.wbc_per_ul),
                "lymphocytes_per_ul": round(p.lymphocytes_per_ul),
                "beads_per_test": _num(design.beads_per_test) if design.beads else "",
                "sample_volume_ul": _num(design.sample_volume_ul) if design.beads else "",
                "product": spec.arm,
            }
        )
        populations += _population_rows(rel, truth)
        sample_rows.append(_sample_row(rel, truth, design.n_events))
        if truth.anomalies is not None:
            where = {"file": rel, "patient": spec.id, "day": day}
            injected += [{**where, **r} for r in anomaly_rows(truth.anomalies)]
        if progress is not None:
            progress(i + 1, len(samples), fcs.name)

    write_csv(out / "manifest.csv", manifest, MANIFEST_COLUMNS)
    infusions = [
        {"patient": s.id, "day": d.day, "product": d.product, "dose_per_kg": _num(d.dose_per_kg)}
        for s in design.patients
        for d in s.infusions
    ]
    write_csv(out / "infusions.csv", infusions, ("patient", "day", "product", "dose_per_kg"))
    atomic_write_text(out / "study.toml", study_toml(design))
    if not (out / "strategy.yaml").exists():
        atomic_write_text(out / "strategy.yaml", DEFAULT_STRATEGY.read_text(encoding="utf-8"))
    _write_truth_tables(out / "truth", design, models, populations, sample_rows)
    if injected:
        for r in injected:
            r["start"], r["end"] = (
                None if x is None else round(x, 4) for x in (r["start"], r["end"])
            )
        write_csv(out / "truth" / "anomalies.csv", injected, ANOMALY_COLUMNS)
    return out


def _write_sample(
    design: StudyDesign,
    spec: PatientSpec,
    day: int,
    fcs: Path,
    truth_path: Path | None,
    *,
    in_memory: bool | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    anomalies=None,
    timing=None,
) -> SampleTruth:
    """Generate one sample into RAM or a scratch file beside `fcs`, write it (and its truth)."""
    n = design.n_events
    if in_memory is None:
        in_memory = (
            n * N_COLUMNS * 4 <= _MEMORY_LIMIT or anomalies is not None or timing is not None
        )
    scratch = None
    if in_memory:
        events = np.empty((n, N_COLUMNS), dtype=np.float32)
    else:
        scratch = fcs.with_name(f".{fcs.name}.events.tmp")
        events = np.lib.format.open_memmap(scratch, "w+", np.float32, (n, N_COLUMNS))
    try:
        label = np.empty(n, dtype=np.uint8)
        donor = np.empty(n, dtype=bool)
        params, drift = generate_events(
            design,
            spec,
            day,
            events,
            label,
            donor,
            workers=workers or default_workers(MAX_THREADS),
            progress=progress,
        )
        if timing is not None:
            place_cells(design, spec, day, events, label, donor, timing)
        sample = make_sample(design, spec, day, events, drift)
        truth = SampleTruth(label, donor, LABELS, params, drift)
        if anomalies is not None:
            sample, truth.anomalies = inject_anomalies(design, spec, day, sample, anomalies)
        write_fcs(fcs, sample)
        if truth_path is not None:
            save_truth(truth_path, truth)
    finally:
        del events
        if scratch is not None:
            scratch.unlink(missing_ok=True)
    return truth


def _population_rows(rel: str, truth: SampleTruth) -> list[dict]:
    p = truth.parameters
    events = truth.counts()
    donors = truth.donor_counts()
    rows = []
    for i, name in enumerate(LABELS):
        cell = name in CELL_LABELS
        rows.append(
            {
                "patient": p.patient,
                "day": p.day,
                "file": rel,
                "population": name,
                "events": events[name],
                "donor_events": donors[name],
                "probability": _num(p.probabilities[i]),
                "donor_fraction": _num(p.donor_fraction.get(name, np.nan)),
                "cells_per_ul": _num(p.cells_per_ul[name]) if cell else "",
                "donor_per_ul": _num(p.donor_per_ul[name]) if cell else "",
                "recipient_per_ul": _num(p.recipient_per_ul[name]) if cell else "",
            }
        )
    for name, members in AGGREGATES.items():
        cells = sum(p.cells_per_ul[m] for m in members)
        donor = sum(p.donor_per_ul[m] for m in members)
        rows.append(
            {
                "patient": p.patient,
                "day": p.day,
                "file": rel,
                "population": name,
                "events": sum(events[m] for m in members),
                "donor_events": sum(donors[m] for m in members),
                "probability": _num(sum(p.probabilities[LABELS.index(m)] for m in members)),
                "donor_fraction": _num(donor / cells),
                "cells_per_ul": _num(cells),
                "donor_per_ul": _num(donor),
                "recipient_per_ul": _num(cells - donor),
            }
        )
    return rows


def _sample_row(rel: str, truth: SampleTruth, n_events: int) -> dict:
    p, d = truth.parameters, truth.drift
    row = {
        "patient": p.patient,
        "day": p.day,
        "file": rel,
        "events": n_events,
        "wbc_per_ul": _num(p.wbc_per_ul),
        "lymphocytes_per_ul": _num(p.lymphocytes_per_ul),
        "beads_per_ul": _num(p.beads_per_ul),
        "fraction_debris": _num(p.fraction_debris),
        "fraction_doublet": _num(p.fraction_doublet),
        "fraction_dead": _num(p.fraction_dead),
        "gain_FSC": _num(d.fsc),
        "gain_SSC": _num(d.ssc),
    }
    for name, g in zip(ins.FLUOR_NAMES, d.fluorescence, strict=True):
        row[f"gain_{name}"] = _num(g)
    return row


def _lineage_doses(model: PatientModel, members) -> list[tuple[float, float]]:
    by_day: dict[float, float] = {}
    for m in members:
        for day, cells in model.infused(m):
            by_day[day] = by_day.get(day, 0.0) + cells
    return sorted(by_day.items())


def _write_truth_tables(folder: Path, design, models, populations, sample_rows) -> None:
    write_csv(folder / "populations.csv", populations, list(populations[0]))
    write_csv(folder / "samples.csv", sample_rows, list(sample_rows[0]))
    kinetics, patients, infusions = [], [], []
    groups = {
        "NK": ("NK_bright", "NK_dim"),
        "NK_bright": ("NK_bright",),
        "NK_dim": ("NK_dim",),
        "CIK": ("CIK",),
        "T": ("T_CD8neg", "T_CD8pos"),
        "T_CD8neg": ("T_CD8neg",),
        "T_CD8pos": ("T_CD8pos",),
    }
    for pid, model in models.items():
        for name, members in groups.items():
            lineage = LINEAGES[members[0]]
            k = model.kinetics[lineage]
            doses = _lineage_doses(model, members)
            peak_day, peak = population_peak(doses, k) if model.spec.persists else (math.nan, 0.0)
            kinetics.append(
                {
                    "patient": pid,
                    "arm": model.spec.arm,
                    "population": name,
                    "lineage": lineage,
                    "half_life_days": _num(k.half_life_days),
                    "expansion_fold": _num(k.expansion_fold),
                    "peak_delay_days": _num(k.peak_delay_days),
                    "recovery": _num(k.recovery),
                    "infused_per_kg": _num(sum(c for _, c in doses)),
                    "peak_day": _num(peak_day),
                    "peak_per_ul": _num(peak),
                    "last_infusion_day": max(d.day for d in model.spec.infusions),
                }
            )
        row = {
            "patient": pid,
            "arm": model.spec.arm,
            "donor_marker": design.donor_marker_of(model.spec),
            "donor_is": model.spec.donor_is,
            "hla_positive": _num(model.hla_positive),
            "hla_ratio": _num(model.hla_ratio),
            "lymphodepletion_depth": _num(model.lymphodepletion_depth),
            "lymphodepletion_recovery_days": _num(model.lymphodepletion_recovery_days),
            "day_to_day_sd": _num(model.day_sd),
        }
        for name in CELL_LABELS:
            row[f"baseline_{name}_per_ul"] = _num(model.baseline_per_ul[name])
        patients.append(row)
        for d in model.spec.infusions:
            row = {
                "patient": pid,
                "day": d.day,
                "product": d.product,
                "dose_per_kg": _num(d.dose_per_kg),
                "dose_unit": d.dose_unit,
            }
            for name in LINEAGES:
                row[f"{name}_per_kg"] = _num(
                    d.dose_per_kg * PRODUCT_CONTENT[d.product].get(name, 0)
                )
            infusions.append(row)
    write_csv(folder / "kinetics.csv", kinetics, list(kinetics[0]))
    write_csv(folder / "patients.csv", patients, list(patients[0]))
    write_csv(folder / "infusions.csv", infusions, list(infusions[0]))
    labels = [{"code": i, "name": n, "description": LABEL_NOTES[n]} for i, n in enumerate(LABELS)]
    write_csv(folder / "labels.csv", labels, ("code", "name", "description"))
    atomic_write_text(
        folder / "design.json", json.dumps(dataclasses.asdict(design), indent=2) + "\n"
    )


def benchmark_file(
    path: str | os.PathLike,
    n_events: int = 10_000_000,
    *,
    seed: int = 0,
    day: int = 7,
    in_memory: bool | None = None,
    truth: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write one large simulated FCS file (an NK patient at `day`) for benchmarks.

    Parameters
    ----------
    path : path
        The FCS file to write (its folder must exist).
    n_events : int
        Events (>= 1).
    seed : int
    day : int
        Sampling day (day 7: donor NK near their peak).
    in_memory : bool, optional
        Hold the events in RAM (``n_events × 44`` bytes) or in a scratch file
        beside `path`, removed afterwards. Default: RAM up to 1 GiB.
    truth : bool
        Also write ``<stem>.truth.npz`` beside the file.
    workers : int, optional
        Threads; default the cores available, at most 4 (`MAX_THREADS`). The file is the same for any number.
    progress : callable(events_done, n_events), optional

    Returns
    -------
    Path
        `path`.
    """
    path = Path(path)
    design = StudyDesign(
        patients=(PatientSpec("BENCH01", "NK", "positive"),),
        seed=seed,
        n_events=n_events,
        name="cytokit benchmark file (simulated)",
        event_rate=20_000.0,
    )
    truth_path = path.with_name(f"{path.stem}.truth.npz") if truth else None
    _write_sample(
        design,
        design.patients[0],
        day,
        path,
        truth_path,
        in_memory=in_memory,
        workers=workers,
        progress=progress,
    )
    return path
