"""Events of one sample, generated in fixed-size blocks with bounded memory.

A sample's events are made block by block (`BLOCK_EVENTS` each); block ``k``
draws from its own stream ``SeedSequence([seed, tag, crc32(patient), day, k])``,
so the output does not depend on how the caller buffers it, and memory beyond
the output array is a few tens of MB whatever the event count.

Within a block the labels are a multinomial draw over the sample's label
probabilities; each label's events are drawn together (vectorised), then the
block is shuffled so labels interleave as they would in acquisition order.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import os
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cytokit._cores import default_workers
from cytokit.errors import StudyError
from cytokit.sample import Sample
from cytokit.simulate import instrument as ins
from cytokit.simulate.design import PatientSpec, StudyDesign
from cytokit.simulate.model import (
    CELL_LABELS,
    CODE,
    LABELS,
    TAG_EVENTS,
    PatientModel,
    SampleParameters,
    patient_model,
    sample_parameters,
    stream,
)
from cytokit.simulate.phenotype import fill_cells

__all__ = [
    "BLOCK_EVENTS",
    "SampleTruth",
    "TruthArrays",
    "default_workers",
    "generate_events",
    "load_truth",
    "sample_file_stem",
    "save_truth",
    "simulate_sample",
]

#: Events per generation block. Part of the determinism contract: changing it
#: changes every simulated file.
BLOCK_EVENTS = 1 << 16
N_COLUMNS = len(ins.CHANNEL_NAMES)
_DOUBLET = CODE["doublet"]
# $DATE months (FCS 3.1: dd-mmm-yyyy), not locale-dependent strftime("%b")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def sample_file_stem(patient: str, day: int) -> str:
    """File stem of a sample: ``P01_day-07``, ``P01_day014``."""
    return f"{patient}_day{day:03d}"


@dataclass
class SampleTruth:
    """The ground truth of one simulated sample.

    Attributes
    ----------
    label : ndarray of uint8, shape (n_events,)
        Code of each event's population (index in `label_names`).
    donor : ndarray of bool, shape (n_events,)
        Whether the event is (or, for a doublet, contains) a donor cell.
    label_names : tuple of str
        `cytokit.simulate.LABELS`.
    parameters : SampleParameters
        True counts, donor fractions and label probabilities of the sample.
    drift : Drift
        Gains of the acquisition session.
    signals : ndarray of float32, shape (n_events, 7), or None
        With ``keep_signals=True``: the noiseless marker intensities times the
        session's gains (what compensating with the file's ``$SPILLOVER``
        estimates), `MARKERS` order. Doublets hold the sum of their two cells.
    anomalies : cytokit.simulate.anomalies.AnomalyTruth or None
        With acquisition anomalies injected: what was injected, per event.
    """

    label: np.ndarray
    donor: np.ndarray
    label_names: tuple
    parameters: SampleParameters
    drift: ins.Drift
    signals: np.ndarray | None = None
    anomalies: object | None = None

    def counts(self) -> dict[str, int]:
        """Events of each label."""
        c = np.bincount(self.label, minlength=len(self.label_names))
        return {name: int(c[i]) for i, name in enumerate(self.label_names)}

    def donor_counts(self) -> dict[str, int]:
        """Donor events of each label."""
        c = np.bincount(self.label[self.donor], minlength=len(self.label_names))
        return {name: int(c[i]) for i, name in enumerate(self.label_names)}


@dataclass
class _Context:
    params: SampleParameters
    model: PatientModel
    drift: ins.Drift
    donor_fraction: np.ndarray  # per label code (0 for non-cells)
    cell_p: np.ndarray


def _context(design: StudyDesign, spec: PatientSpec, day: int) -> _Context:
    model = patient_model(design, spec)
    params = sample_parameters(design, model, day)
    frac = np.zeros(len(LABELS))
    for name in CELL_LABELS:
        frac[CODE[name]] = params.donor_fraction[name]
    frac[CODE["dead"]] = params.donor_fraction["dead"]
    drift = ins.instrument_drift(design, spec.id, day)
    return _Context(params, model, drift, frac, params.cell_probabilities())


def _fill(ctx, code, rng, true, scat, donor) -> None:
    m = ctx.model
    fill_cells(
        code,
        rng,
        true,
        scat,
        donor,
        donor_fraction=ctx.donor_fraction[code],
        donor_positive=m.spec.donor_is == "positive",
        hla_positive=m.hla_positive,
        hla_ratio=m.hla_ratio,
    )


def _fill_labels(ctx, counts, rng, true, scat, donor) -> None:
    """Fill consecutive segments of label `counts` (doublets need `_doublets`)."""
    start = 0
    for code, c in enumerate(counts):
        if c:
            s = slice(start, start + c)
            if code == _DOUBLET:
                _doublets(ctx, rng, true[s], scat[s], donor[s])
            else:
                _fill(ctx, code, rng, true[s], scat[s], donor[s])
            start += c


def _doublets(ctx, rng, true, scat, donor) -> None:
    """Two random leukocytes together: areas add, height grows a little."""
    n = true.shape[0]
    counts = rng.multinomial(2 * n, ctx.cell_p)
    t2 = np.empty((2 * n, ins.N_FLUOR))
    s2 = np.empty((2 * n, 3))
    d2 = np.empty(2 * n, dtype=bool)
    _fill_labels(ctx, counts, rng, t2, s2, d2)
    order = rng.permutation(2 * n)
    a, b = order[:n], order[n:]
    np.add(t2[a], t2[b], out=true)
    scat[:, 0] = s2[a, 0] + s2[b, 0]
    scat[:, 2] = s2[a, 2] + s2[b, 2]
    scat[:, 1] = np.maximum(s2[a, 1], s2[b, 1]) * rng.uniform(1.0, 1.25, n)
    np.logical_or(d2[a], d2[b], out=donor)


#: Threads the simulator starts when none are given, at most: beyond 4 its blocks wait
#: on memory rather than on cores.
MAX_THREADS = 4


class _Buffers:
    """Work arrays of one block (one set per worker thread)."""

    def __init__(self) -> None:
        self.true = np.empty((BLOCK_EVENTS, ins.N_FLUOR))
        self.det = np.empty((ins.N_FLUOR, BLOCK_EVENTS))
        self.scat = np.empty((BLOCK_EVENTS, 3))
        self.donor = np.empty(BLOCK_EVENTS, dtype=bool)
        self.rows = np.empty((BLOCK_EVENTS, N_COLUMNS), dtype=np.float32)


_CODES = np.arange(len(LABELS), dtype=np.uint8)


def _block(ctx, design, pid, day, k, a, b, out, label, donor, signals, local) -> np.ndarray:
    """Write block `k` (events a..b) except Time; return its arrival times from 0."""
    bufs = getattr(local, "buffers", None)
    if bufs is None:
        bufs = local.buffers = _Buffers()
    m = b - a
    rng = stream(design.seed, TAG_EVENTS, pid, day, k)
    counts = rng.multinomial(m, ctx.params.probabilities)
    t, sc, d, rows, det = bufs.true[:m], bufs.scat[:m], bufs.donor[:m], bufs.rows[:m], bufs.det
    _fill_labels(ctx, counts, rng, t, sc, d)  # label by label, in segments
    ins.detect(t, ctx.drift, rng, det[:, :m])
    ins.scatter(sc, ctx.drift, rng)
    rows[:, 0:3] = sc
    rows[:, 3 : 3 + ins.N_FLUOR] = det[:, :m].T
    # acquisition order: a random permutation interleaves the labels
    order = rng.permutation(m)
    np.take(rows, order, axis=0, out=out[a:b], mode="clip")
    np.take(np.repeat(_CODES, counts), order, out=label[a:b], mode="clip")
    np.take(d, order, out=donor[a:b], mode="clip")
    if signals is not None:
        np.take(t, order, axis=0, out=signals[a:b], mode="clip")
    # Time: Poisson arrivals (in $TIMESTEP units), offset by the caller
    return np.cumsum(rng.standard_exponential(m) / (design.event_rate * design.timestep))


def generate_events(
    design: StudyDesign,
    patient: str | PatientSpec,
    day: int,
    out: np.ndarray,
    label: np.ndarray,
    donor: np.ndarray,
    *,
    signals: np.ndarray | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SampleParameters, ins.Drift]:
    """Fill preallocated arrays with the events of (patient, day), block by block.

    Parameters
    ----------
    design : StudyDesign
    patient : str or PatientSpec
    day : int
    out : ndarray of float32, shape (n_events, 11)
        Receives the events (channel order of `cytokit.simulate.CHANNEL_NAMES`);
        C-contiguous, may be a memory map.
    label : ndarray of uint8, shape (n_events,)
    donor : ndarray of bool, shape (n_events,)
    signals : ndarray of float32, shape (n_events, 7), optional
        Receives the noiseless, gain-scaled marker intensities.
    workers : int
        Threads generating blocks concurrently (numpy releases the GIL in its
        random fills and array arithmetic). The output is the same for any
        number: each block has its own stream and Time offsets are added in
        block order.
    progress : callable(events_done, n_events), optional

    Returns
    -------
    (SampleParameters, Drift)
    """
    spec = design.patient(patient)
    day = int(day)
    n = out.shape[0]
    arrays = [(out, (n, N_COLUMNS), np.float32), (label, (n,), np.uint8), (donor, (n,), bool)]
    if signals is not None:
        arrays.append((signals, (n, ins.N_FLUOR), np.float32))
    for arr, shape, dtype in arrays:
        if arr.shape != shape or arr.dtype != dtype or not arr.flags.c_contiguous:
            raise StudyError(
                f"output array of shape {arr.shape}, dtype {arr.dtype}: expected a "
                f"C-contiguous {np.dtype(dtype)} array of shape {shape}"
            )
    if workers < 1:
        raise StudyError(f"workers={workers} must be >= 1")
    ctx = _context(design, spec, day)
    starts = range(0, n, BLOCK_EVENTS)
    local = threading.local()

    def run(k: int) -> np.ndarray:
        a = starts[k]
        b = min(n, a + BLOCK_EVENTS)
        return _block(ctx, design, spec.id, day, k, a, b, out, label, donor, signals, local)

    clock = 0.0

    def finish(k: int, arrivals: np.ndarray) -> None:
        nonlocal clock
        a = starts[k]
        arrivals += clock
        clock = float(arrivals[-1])
        out[a : a + len(arrivals), N_COLUMNS - 1] = np.floor(arrivals)
        if progress is not None:
            progress(a + len(arrivals), n)

    if workers == 1 or len(starts) < 2:
        for k in range(len(starts)):
            finish(k, run(k))
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # map yields in block order, and holds at most the pending blocks' times
            for k, arrivals in enumerate(pool.map(run, range(len(starts)))):
                finish(k, arrivals)
    return ctx.params, ctx.drift


def _keywords(design: StudyDesign, spec: PatientSpec, day: int, n: int, duration: float):
    index = next((i for i, p in enumerate(design.patients) if p.id == spec.id), 0)
    days = design.days_of(spec)
    date = _dt.date(*design.start_date) + _dt.timedelta(days=11 * index + day - min(days))
    start = _dt.datetime.combine(date, _dt.time(9, 0)) + _dt.timedelta(
        minutes=(37 * index + 13 * (day % 17)) % 300
    )
    end = start + _dt.timedelta(seconds=int(np.ceil(duration)))
    stem = sample_file_stem(spec.id, day)
    return {
        "$CYT": "FACSCanto II",
        "$DATE": f"{start.day:02d}-{_MONTHS[start.month - 1]}-{start.year}",
        "$BTIM": start.strftime("%H:%M:%S"),
        "$ETIM": end.strftime("%H:%M:%S"),
        "$FIL": f"{stem}.fcs",
        "$SRC": f"{spec.id} day {day}",
        "$TIMESTEP": repr(float(design.timestep)),
        "EXPERIMENT NAME": design.name,
        "TUBE NAME": "NK CIK chimerism",
        "PATIENT ID": spec.id,
        "CYTOKIT SIMULATION": f"seed={design.seed} patient={spec.id} day={day} events={n}",
    }


def simulate_sample(
    design: StudyDesign,
    patient: str | PatientSpec,
    day: int,
    n_events: int | None = None,
    *,
    keep_signals: bool = False,
    workers: int | None = None,
    anomalies=None,
    timing=None,
) -> tuple[Sample, SampleTruth]:
    """Simulate one sample (patient, day) in memory.

    Parameters
    ----------
    design : StudyDesign
    patient : str or PatientSpec
        A patient id of the design (or a spec).
    day : int
        Sampling day (need not be one of the design's days).
    n_events : int, optional
        Default ``design.n_events``.
    keep_signals : bool
        Also return the noiseless marker intensities (`SampleTruth.signals`).
    workers : int, optional
        Threads (see `generate_events`); default the cores available, at most `MAX_THREADS`. The
        result does not depend on it.
    anomalies : cytokit.simulate.anomalies.AnomalyPlan, optional
        Acquisition anomalies (clogs, bubbles, drift, margin events) to inject
        (`cytokit.simulate.anomalies.inject`, with the sample's own random
        stream); their truth is ``truth.anomalies``.
    timing : cytokit.simulate.timing.Enrichment, optional
        Cells of some populations arriving preferentially in a time window
        (`cytokit.simulate.timing.place`, before any anomaly is injected);
        the truth's per-event arrays follow the cells.

    Returns
    -------
    sample : Sample
        ``events`` float32 of shape (n_events, 11) as stored in the file
        (``scaled=False``: Time in ``$TIMESTEP`` units), channels with ``$PnS``
        markers, keywords, and that session's spillover matrix.
    truth : SampleTruth

    Notes
    -----
    Needs ``n_events × 46`` bytes (+ 28 with `keep_signals`) plus about 20 MB;
    `benchmark_file` writes bigger files through a disk-backed buffer.
    """
    spec = design.patient(patient)
    n = design.n_events if n_events is None else int(n_events)
    if n < 0:
        raise StudyError(f"n_events={n} must be >= 0")
    out = np.empty((n, N_COLUMNS), dtype=np.float32)
    label = np.empty(n, dtype=np.uint8)
    donor = np.empty(n, dtype=bool)
    signals = np.empty((n, ins.N_FLUOR), dtype=np.float32) if keep_signals else None
    params, drift = generate_events(
        design,
        spec,
        day,
        out,
        label,
        donor,
        signals=signals,
        workers=workers or default_workers(MAX_THREADS),
    )
    if timing is not None:
        place_cells(design, spec, int(day), out, label, donor, timing, signals)
    sample = make_sample(design, spec, int(day), out, drift)
    truth = SampleTruth(label, donor, LABELS, params, drift, signals)
    if anomalies is not None:
        sample, truth.anomalies = inject_anomalies(design, spec, int(day), sample, anomalies)
    return sample, truth


def place_cells(design, spec, day, events, label, donor, plan, signals=None) -> int:
    """`cytokit.simulate.timing.place` with the stream of (design seed, patient, day)."""
    from cytokit.simulate.timing import TAG_TIMING, place

    rng = stream(design.seed, TAG_TIMING, spec.id, day)
    return place(events, label, donor, plan, rng, timestep=design.timestep, signals=signals)


def inject_anomalies(design: StudyDesign, spec: PatientSpec, day: int, sample: Sample, plan):
    """`cytokit.simulate.anomalies.inject` with the stream of (design seed, patient, day)."""
    from cytokit.simulate.anomalies import TAG_ANOMALIES, inject

    return inject(sample, plan, stream(design.seed, TAG_ANOMALIES, spec.id, day))


def make_sample(
    design: StudyDesign, spec: PatientSpec, day: int, events: np.ndarray, drift: ins.Drift
) -> Sample:
    """Wrap simulated events as a `Sample` with channels, keywords and spillover."""
    n = events.shape[0]
    last = float(events[-1, N_COLUMNS - 1]) if n else 0.0
    channels = list(ins.channels(time_range=float(max(ins.RANGE, np.floor(last) + 1))))
    donor = len(ins.SCATTER_NAMES)  # the FITC-A detector carries the patient's donor marker
    channels[donor] = dataclasses.replace(channels[donor], marker=design.donor_marker_of(spec))
    return Sample(
        events=events,
        channels=tuple(channels),
        keywords=_keywords(design, spec, day, n, last * design.timestep),
        spillover=drift.as_spillover(),
        version="FCS3.1",
        scaled=False,
    )


# -- truth files -------------------------------------------------------------------


def _truth_arrays(truth: SampleTruth) -> dict[str, np.ndarray]:
    p = truth.parameters
    frac = np.full(len(LABELS), np.nan)
    cells = np.full(len(LABELS), np.nan)
    for name in CELL_LABELS:
        frac[CODE[name]] = p.donor_fraction[name]
        cells[CODE[name]] = p.cells_per_ul[name]
    frac[CODE["dead"]] = p.donor_fraction["dead"]
    return {
        "label": np.ascontiguousarray(truth.label, dtype=np.uint8),
        "donor": np.ascontiguousarray(truth.donor, dtype=bool),
        "label_names": np.array(truth.label_names),
        "probabilities": p.probabilities,
        "donor_fraction": frac,
        "cells_per_ul": cells,
        "drift_fluorescence": truth.drift.fluorescence,
        "drift_scatter": np.array([truth.drift.fsc, truth.drift.ssc]),
        **_anomaly_arrays(truth.anomalies),
    }


def _anomaly_arrays(anomalies) -> dict[str, np.ndarray]:
    if anomalies is None:
        return {}
    return {
        "anomaly_kind": np.ascontiguousarray(anomalies.kind, dtype=np.uint8),
        "anomaly_gain": np.ascontiguousarray(anomalies.gain, dtype=np.float32),
        "anomaly_clipped": np.ascontiguousarray(anomalies.clipped, dtype=bool),
    }


def save_truth(path: str | os.PathLike, truth: SampleTruth) -> Path:
    """Write ``<stem>.truth.npz`` byte-reproducibly (fixed zip timestamps), atomically.

    Arrays: ``label`` (uint8), ``donor`` (bool), ``label_names`` (str),
    ``probabilities``, ``donor_fraction``, ``cells_per_ul`` (float64 per label;
    NaN where not a cell), ``drift_fluorescence`` (7,), ``drift_scatter`` (FSC, SSC);
    with injected acquisition anomalies also ``anomaly_kind`` (uint8 bits per event,
    `cytokit.simulate.anomalies`), ``anomaly_gain`` (float32) and ``anomaly_clipped`` (bool).
    Read with `load_truth` or ``numpy.load``.
    """
    from cytokit._io import atomic_write_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in _truth_arrays(truth).items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=6)
    return atomic_write_bytes(path, buf.getvalue())


@dataclass(frozen=True)
class TruthArrays:
    """The per-event arrays of a ``.truth.npz`` file (see `save_truth`)."""

    label: np.ndarray
    donor: np.ndarray
    label_names: tuple[str, ...]
    arrays: dict

    def code(self, name: str) -> int:
        return self.label_names.index(name)


def load_truth(path: str | os.PathLike) -> TruthArrays:
    """Read a ``.truth.npz`` written by `save_truth`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise StudyError(f"{path}: cannot read simulation truth: {exc}") from None
    missing = {"label", "donor", "label_names"} - set(arrays)
    if missing:
        raise StudyError(f"{path}: not a simulation truth file (no {', '.join(sorted(missing))})")
    names = tuple(str(s) for s in arrays["label_names"])
    return TruthArrays(arrays["label"], arrays["donor"], names, arrays)
