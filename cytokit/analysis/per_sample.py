"""The per-sample measurement of `cytokit.analyze`: everything measured on one FCS file, a task.

`MeasureTask` follows the `cytokit.engine.runner` task protocol (picklable, ``key``,
``__call__(path) -> payload``). It reads the file, applies the strategy once
(adaptive gates fitted on this sample) and returns what the study-level pass
needs, so the FCS files are read once and a rerun takes finished files from
the store. That is a `cytokit.analysis.sample_result.SampleResult`, stored as
the items below (`SampleResult.encode`; its docstring gives each field's
units and shape):

=======================  ==================================================================
payload item             what
=======================  ==================================================================
``info``                 events, channels, fcs_version, cytometer, spillover source,
                         nonfinite_events (dropped, `cytokit.finite`)
``nonfinite``            `cytokit.finite.NonFinite.as_dict`: non-finite values per channel
``counts``               `GatingResult.counts` (every gate)
``gates``                per gate: id, JSON geometry of the fitted gate, dimension labels
``qc:<gate id>``         ≤ `QC_POINTS` parent events in the gate's dimensions (float32)
``edges:<marker>``       donor-marker histogram edges of the sample (float64), per donor marker
``hist:<marker>``        int64 (n_populations + 1, n_bins): histogram of the threshold parent
                         (row 0) and of each study population (rows in `populations` order)
``anchors``              per donor marker: median of the bead gate's events (drift anchor)
``pileup``               per donor marker: `cytokit.analysis.marker_check.value_pileup` of the
                         threshold parent's stored values (a constant or saturated detector)
``pheno:<population>``   float32 (n, n_donor + n_phenotype): donor markers (transformed) then
                         phenotype markers (compensated scale) of ≤ max_events events
``pheno_thresholds``     per phenotype marker: positivity threshold (scale and transformed)
                         and how it was placed
``pheno_events``         events of each population before subsampling
``cluster``              float32 (n, n_cluster + n_donor): clustering markers (transformed)
                         then donor markers of ≤ ``cluster_events`` random threshold-parent
                         events (only with clustering markers)
``cluster_gates``        uint8 (n, n_populations): each of those events in each population
``warnings``             warnings raised while reading and gating (adaptive gates that fell
                         back...), and a panel marker read from a channel whose ``$PnS``
                         names another marker of the panel
``acquisition_qc``       with acquisition QC on: `cytokit.qc.file_record` (the samples-table
                         columns, the flagged time ranges), ``bin_columns`` and ``time_unit``
``acq_bins``             float64 (n_rows, n_columns): the QC plot's series
                         (`cytokit.qc.apply.plot_bins`, at most 2,000 rows)
``strata``               with removed time ranges: per range its events, flanks (indices
                         into ``flank_events``) and, for a range removed for its rate,
                         ``own`` (the index of its own events' stratum); per stratum
                         (flanks, then own events) ``flank_events``, its events, and
                         ``parent``, those in the threshold parent
``flank:<marker>``       int64 (n_strata * n_populations, n_bins): donor-marker histogram of
                         each study population in each stratum (stratum-major), on ``edges``
=======================  ==================================================================

A file acquisition QC fails gives no payload, only a failure; the error
carries ``acquisition_qc`` and ``acq_bins`` as above (``payload``), which the
store keeps with the failure, so the report can show why the file failed.

Stages reported on failure: ``read`` (the FCS file), ``acquisition_qc`` (the
file failed acquisition QC, `cytokit.qc.screen`), ``panel`` (a marker's
channel), ``values`` (more non-finite values than ``[qc] max_nonfinite`` allows,
`cytokit.finite`), ``gate`` (applying the strategy), ``measure``.

Events with a NaN or infinite value in a channel the analysis reads (the
gates', the markers' and the detectors compensated into them) are dropped
before gating and counted (`cytokit.finite`).

With acquisition QC on (``acquisition_qc`` settings), QC runs on the events
already in memory right after the read; the events it removes are left out of
everything after it, and a file whose verdict is ``fail`` fails (no numbers).
When it removes time ranges, the kept events just before and after each
range (`cytokit.analysis.chimerism.FLANK_EVENTS` on each side) are the
range's flanks: their donor-marker histograms per population let the
per-patient pass impute what the range held
(`cytokit.analysis.chimerism.stratified_row`). The events of a range removed
for its event rate (a clog, a bubble) are kept aside too
(`cytokit.qc.screen` with ``keep_removed``) and gated by the strategy as
fitted on the kept events: their histograms are the range's own stratum.
They count nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cytokit._version import __version__
from cytokit.analysis.marker_check import value_pileup
from cytokit.analysis.phenotype import positivity_threshold
from cytokit.analysis.qcdata import QC_POINTS, gate_points, gate_to_json
from cytokit.analysis.sample_result import SampleResult
from cytokit.engine.gate_files import about_file
from cytokit.engine.runner import known_file_hash, stage
from cytokit.errors import NO_EVENTS, CytokitError, FCSError
from cytokit.finite import MAX_NONFINITE, drop_nonfinite
from cytokit.kernels import finite_rows
from cytokit.stats.density import Histogram, histogram_edges
from cytokit.study.folder import screened_columns

__all__ = ["MEASURE_VERSION", "MeasureTask"]

#: Bumped whenever the payload changes; part of the task key.
MEASURE_VERSION = 45  # 45: a creep too faint to name does not lead a series that held a level
PARENT_ROW = "__parent__"


def _fresh(strategy):
    """A copy of `strategy` without compiled-plan caches (small to pickle)."""
    from cytokit.gating import GatingStrategy

    return GatingStrategy(
        strategy.gates,
        matrices=strategy.matrices,
        name=strategy.name,
        source=strategy.source,
        aliases=strategy.aliases,
    )


_BLAS: list = []


def _one_blas_thread() -> AbstractContextManager:
    """A context in which BLAS (numpy's matrix products) uses one thread.

    The task's products are small (events x detectors times a detectors x
    detectors matrix) and run where the engine already gives each file a
    core: a multithreaded BLAS then waits for its own threads behind the
    other workers', which cost a loaded machine more than the product itself.
    The partition of a product between threads does not change its values.
    """
    from threadpoolctl import ThreadpoolController

    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


#: Smallest share of a detector's value that compensation takes from a gated channel for
#: a failure of that detector to be said to reach the channel's counts (0.1 %).
SPILL_SAID = 1e-3


def spilled_into(result, sample, channel: str) -> dict[str, tuple[str, float]]:
    """The gated channels whose compensated values take a share of `channel`'s: ``$PnN``
    -> (label, share: the inverse spillover matrix's coefficient), largest share first.

    A failed detector (dead, saturated) is compensated out of these channels by what it
    read, not by what the cells gave: the gates on them may count wrongly too.
    """
    from cytokit.gating import UNCOMPENSATED

    comp = result.compensation
    if comp is None or channel not in comp.channels:
        return {}
    try:
        inverse = np.linalg.inv(np.asarray(comp.matrix, dtype=np.float64))
    except np.linalg.LinAlgError:
        return {}
    row = inverse[list(comp.channels).index(channel)]
    found: dict[str, tuple[str, float]] = {}
    for gate in result.strategy.gates:
        for d in gate.dimensions:
            if d.compensation == UNCOMPENSATED or d.ratio is not None:
                continue
            try:
                c = sample.channels[sample.channel_index(d.channel)]
            except CytokitError:
                continue
            if c.name == channel or c.name not in comp.channels:
                continue
            share = abs(float(row[list(comp.channels).index(c.name)]))
            if share >= SPILL_SAID:
                found[c.name] = (c.label, share)
    return dict(sorted(found.items(), key=lambda kv: (-kv[1][1], kv[1][0])))


def reading(result, sample, names: set[str]) -> list[str]:
    """Ids of the populations whose membership reads a channel named in `names` (``$PnN``):
    through their own gate's dimensions or those of a gate they depend on (parents and
    Boolean operands, `GatingStrategy.ancestors`); a ratio reads both its channels."""
    strategy = result.strategy
    memo: dict[str, bool] = {}

    def reads(gate) -> bool:
        if gate.id not in memo:
            found = False
            for d in gate.dimensions:
                wanted = (
                    [d.channel] if d.ratio is None else [d.ratio.numerator, d.ratio.denominator]
                )
                for channel in wanted:
                    try:
                        found |= sample.channels[sample.channel_index(channel)].name in names
                    except CytokitError:
                        continue
            memo[gate.id] = found
        return memo[gate.id]

    if not names:
        return []
    # a quadrant's parent is its QuadrantGate, whose id names no population
    gate_of = {g.id: g for g in strategy.gates} | {p.id: p.gate for p in strategy.populations}
    return sorted(
        p.id
        for p in strategy.populations
        if any(reads(gate_of[i]) for i in (p.id, *strategy.ancestors(p.id)))
    )


@dataclass(frozen=True)
class MeasureTask:
    """Measure one FCS file for the study analysis (see the module docstring).

    Attributes
    ----------
    strategy : GatingStrategy
    panel : Panel
    populations : tuple of (name, gate path)
        Each population may be named as `GatingStrategy.population` allows;
        the task holds its canonical path.
    parent : str
        Gate path of the threshold parent (likewise).
    donor_markers : tuple of str
    phenotype_markers : tuple of str
    transforms : tuple of (marker, Transform or None)
        Transform of every donor and phenotype marker.
    fixed_thresholds : tuple of (marker, scale value)
    compensation : "file", None or Spillover
    beads : str
        Bead gate path ('' when none).
    max_events : int
        Events kept per population for phenotype statistics.
    cluster_markers : tuple of str
        Markers to keep for clustering ('' none).
    cluster_events : int
        Threshold-parent events kept per file for clustering.
    seed : int
        Adaptive-gate fitting and subsampling seed (with the file name).
    max_nonfinite : float
        Largest fraction of events dropped for non-finite values before the
        file fails (`cytokit.finite`).
    acquisition_qc : cytokit.qc.AcquisitionQCSettings or None
        Acquisition QC before gating (None: none).
    """

    strategy: object
    panel: object
    populations: tuple
    parent: str
    donor_markers: tuple = ()
    phenotype_markers: tuple = ()
    transforms: tuple = ()
    fixed_thresholds: tuple = ()
    compensation: object = "file"
    beads: str = ""
    max_events: int = 50_000
    cluster_markers: tuple = ()
    cluster_events: int = 20_000
    seed: int = 0
    max_nonfinite: float = MAX_NONFINITE
    acquisition_qc: object = None
    _digest: str = field(default="", repr=False, compare=False)
    kind = "analyze"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategy", _fresh(self.strategy))
        # every table keys populations by path: resolve ids and names once, here
        path = self._canonical_path
        object.__setattr__(self, "populations", tuple((n, path(p)) for n, p in self.populations))
        object.__setattr__(self, "parent", path(self.parent))
        if self.beads:
            object.__setattr__(self, "beads", path(self.beads))
        object.__setattr__(self, "_digest", self._make_key())

    def _canonical_path(self, key: str) -> str:
        return self.strategy.population(key).path

    def describe(self) -> dict:
        comp = self.compensation
        return {
            "version": MEASURE_VERSION,
            "cytokit": __version__,
            "strategy": self.strategy.digest(),
            "strategy_source": self.strategy.source,
            "panel": dict(self.panel.markers),
            "populations": [list(p) for p in self.populations],
            "parent": self.parent,
            "donor_markers": list(self.donor_markers),
            "phenotype_markers": list(self.phenotype_markers),
            "transforms": {m: repr(t) for m, t in self.transforms},
            "fixed_thresholds": {m: v for m, v in self.fixed_thresholds},
            "compensation": comp
            if isinstance(comp, str) or comp is None
            else {"channels": list(comp.channels), "matrix": np.asarray(comp.matrix).tolist()},
            "beads": self.beads,
            "max_events": self.max_events,
            "cluster_markers": list(self.cluster_markers),
            "cluster_events": self.cluster_events,
            "qc_points": QC_POINTS,
            "seed": self.seed,
            "max_nonfinite": self.max_nonfinite,
        } | ({"acquisition_qc": self.acquisition_qc.as_dict()} if self.acquisition_qc else {})

    def _make_key(self) -> str:
        # the strategy's digest names it; where its file was read from (the study path as
        # typed, through a link, after a move) must not make a stored file stale
        identity = {k: v for k, v in self.describe().items() if k != "strategy_source"}
        text = json.dumps(identity, sort_keys=True, default=str)
        return "analyze-" + hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def key(self) -> str:
        return self._digest

    # -- the work ---------------------------------------------------------------------------
    def __call__(self, path: Path) -> dict:
        with _one_blas_thread():
            return self._measure(Path(path))

    def _measure(self, path: Path) -> dict:
        from cytokit.fcs import read_fcs
        from cytokit.gating import FCS, UNCOMPENSATED, Dimension

        with stage("read"), warnings.catch_warnings(record=True) as read_caught:
            warnings.simplefilter("always")  # kept: samples.csv says what reading the file said
            sample = read_fcs(path)
            if sample.n_events == 0:
                raise FCSError(NO_EVENTS)
        n_file = sample.n_events
        qc_record = flanks = held = None
        finite: tuple[int, ...] = ()
        if self.acquisition_qc is not None:
            from cytokit.qc.apply import file_record, plot_bins, screen

            with stage("acquisition_qc"):
                full = sample.events
                try:
                    sample, qc = screen(
                        sample,
                        self.acquisition_qc,
                        where=str(path),
                        in_place=True,
                        keep_removed=bool(self.donor_markers),
                    )
                except CytokitError as exc:
                    failed = getattr(exc, "qc", None)
                    if failed is not None:  # the file failed QC: what QC saw goes with it
                        exc.payload = _qc_items(file_record(failed), plot_bins(failed))
                    raise
                qc_record, finite = file_record(qc), qc.finite_columns
                qc_bins = plot_bins(qc)
                flanks = _flanks(qc)
                if flanks is not None and self.donor_markers:
                    held = _held(full, sample, qc)
                del full
        with stage("panel"):
            markers = list(
                dict.fromkeys((*self.donor_markers, *self.phenotype_markers, *self.cluster_markers))
            )
            columns = self.panel.columns(sample, markers)
            relabelled = self.panel.relabelled(sample.channels, markers, self.donor_markers)
        comp_kind = UNCOMPENSATED if self.compensation is None else FCS
        # the file's draws (clustered, phenotyped and stored events) follow its content,
        # as the store's key does: a renamed file resumed gives what a fresh run gives
        seed = [self.seed, int(known_file_hash(path)[:16], 16)]
        with stage("gate"):
            read = screened_columns(self.strategy, sample, self.panel, markers, self.compensation)
        with stage("values"):
            before = sample
            sample, nonfinite = drop_nonfinite(
                sample,
                read,
                max_fraction=self.max_nonfinite,
                hint="allow more with [qc] max_nonfinite in study.toml",
                known_finite=finite,
            )
            if flanks is not None and sample is not before:
                flanks = _renumber(flanks, finite_rows(before.events, _mask(before, read)))
        with stage("gate"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self.strategy.apply(sample, compensation=self.compensation, seed=self.seed)
        with stage("measure"):
            rng = np.random.default_rng(seed)
            res = SampleResult(
                info={
                    "events": n_file,
                    "nonfinite_events": nonfinite.events,
                    "channels": sample.n_channels,
                    "fcs_version": sample.version,
                    "cytometer": sample.keyword("$CYT", "") or "",
                    "spillover": sample.spillover.source if sample.spillover is not None else "",
                },
                counts=result.counts,
                nonfinite=nonfinite.as_dict(),
                # each once, without the file's path (the table names the file; a path of
                # this machine would make the table depend on where the study lies)
                warnings=about_file(
                    [*(str(w.message) for w in (*read_caught, *caught)), *relabelled], path
                ),
                gates=[],
            )
            gates = res.gates
            if qc_record is not None:
                items = _qc_items(qc_record, qc_bins)
                res.acquisition_qc, res.acq_bins = items["acquisition_qc"], items["acq_bins"]
            for g in result.strategy.gates:
                pts = gate_points(result, g, rng, compensation=result.compensation)
                gates.append(
                    {
                        "gate_id": g.id,
                        "kind": g.kind,
                        "dims": [d.label for d in g.dimensions],
                        "geometry": gate_to_json(g),
                        "n_points": int(pts.shape[0]),
                    }
                )
                if pts.size:
                    res.qc_points[g.id] = pts
            if not markers:
                return res.encode()
            names = [p for _, p in self.populations]
            masks = [result.membership(self.parent)] + [result.membership(p) for p in names]
            union = np.logical_or.reduce(masks)
            rows = np.flatnonzero(union)
            channel = {m: sample.channels[columns[m]].name for m in markers}
            raw = [Dimension(channel[m], compensation=comp_kind) for m in markers]
            scale = self.strategy.values(sample, raw, rows, compensation=result.compensation)
            at = {m: j for j, m in enumerate(markers)}
            transformed = self._transformed(scale, markers)
            local = [mask[rows] for mask in masks]
            self._donor_items(res, result, sample, transformed, at, local, comp_kind, channel)
            if flanks is not None and self.donor_markers:
                own = None
                if held is not None:
                    own = self._range_cells(held, sample, result, read, channel, comp_kind)
                _flank_items(res, flanks, rows, transformed, at, local, self.donor_markers, own)
            parent_rows = rows[local[0]]
            res.pileup = {}
            for m in self.donor_markers:
                spills = spilled_into(result, sample, channel[m])
                res.pileup[m] = {
                    **value_pileup(sample.events[parent_rows, columns[m]]),
                    "spills_into": [[label, share] for label, share in spills.values()],
                    # the populations a failure of this marker leaves uncounted (per_patient)
                    "reads": reading(result, sample, {channel[m]}),
                    "spill_reads": reading(result, sample, set(spills)),
                }
            self._phenotype_items(res, scale, transformed, at, local, rng)
            if self.cluster_markers:
                self._cluster_items(res, transformed, at, local, rng)
        return res.encode()

    def _range_cells(self, held, sample, result, read, channel, comp_kind):
        """The gated cells of the events of QC's rate-flagged time ranges (`_held`).

        They are gated by the strategy as fitted on the kept events (an
        adaptive gate is not placed again on them). Returns (range index per
        event, the threshold parent's and each population's membership, the
        donor markers' transformed values), over the events that fall in the
        parent or a population, and the range index of every finite event.
        """
        from cytokit.gating import Dimension

        events, which = held
        cols = sorted(set(read))
        ok = np.isfinite(events[:, cols]).all(axis=1) if cols else np.ones(len(which), bool)
        part = replace(sample, events=events[ok] if not ok.all() else events)
        which = which[ok]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the kept events' gating said what there is to say
            got = result.strategy.apply(part, compensation=self.compensation, seed=self.seed)
        masks = [got.membership(self.parent)] + [got.membership(p) for _, p in self.populations]
        rows = np.flatnonzero(np.logical_or.reduce(masks))
        raw = [Dimension(channel[m], compensation=comp_kind) for m in self.donor_markers]
        scale = self.strategy.values(part, raw, rows, compensation=got.compensation)
        values = self._transformed(scale, self.donor_markers)
        at = {m: j for j, m in enumerate(self.donor_markers)}
        return which[rows], [mask[rows] for mask in masks], values, at, which

    def _transformed(self, scale: np.ndarray, markers) -> np.ndarray:
        """`scale` (a column per marker, in `markers`' order) on each marker's transform
        of the study (as it is where the marker has none)."""
        xf = dict(self.transforms)
        out = np.empty_like(scale)
        for j, m in enumerate(markers):
            t = xf.get(m)
            out[:, j] = scale[:, j] if t is None else t.apply(scale[:, j])
        return out

    def _cluster_items(self, res: SampleResult, transformed, at, local, rng):
        idx = np.flatnonzero(local[0])
        if idx.size > self.cluster_events:
            idx = np.sort(rng.choice(idx, self.cluster_events, replace=False))
        cols = [at[m] for m in (*self.cluster_markers, *self.donor_markers)]
        res.cluster = transformed[np.ix_(idx, cols)].astype(np.float32)
        res.cluster_gates = np.column_stack(
            [sel[idx] for sel in local[1:]] or [np.zeros(idx.size, bool)]
        ).astype(np.uint8)

    def _donor_items(
        self, res: SampleResult, result, sample, transformed, at, local, comp_kind, channel
    ):
        from cytokit.gating import Dimension

        anchors = {}
        for m in self.donor_markers:
            x = transformed[:, at[m]]
            edges = histogram_edges(x[local[0]])
            res.edges[m] = edges
            res.hists[m] = np.vstack([Histogram.of(x[sel], edges).counts for sel in local])
            if self.beads:
                beads = result.indices(self.beads)
                if beads.size:
                    dim = Dimension(
                        channel[m], compensation=comp_kind, transform=dict(self.transforms).get(m)
                    )
                    v = self.strategy.values(sample, [dim], beads, compensation=result.compensation)
                    anchors[m] = float(np.nanmedian(v[:, 0]))
        res.anchors = anchors

    def _phenotype_items(self, res: SampleResult, scale, transformed, at, local, rng):
        thresholds = {}
        fixed = dict(self.fixed_thresholds)
        xf = dict(self.transforms)
        for m in self.phenotype_markers:
            t = xf.get(m)
            if m in fixed:
                value = fixed[m]
                tvalue = value if t is None else float(t.apply(np.array([value]))[0])
                method = "fixed"
            else:
                tvalue = positivity_threshold(transformed[local[0], at[m]])
                value = (
                    tvalue
                    if (t is None or not np.isfinite(tvalue))
                    else float(t.inverse(np.array([tvalue]))[0])
                )
                method = "valley" if np.isfinite(tvalue) else "none"
            thresholds[m] = {"threshold_scale": value, "threshold": tvalue, "method": method}
        res.pheno_thresholds = thresholds
        cols = [at[m] for m in self.donor_markers] + [at[m] for m in self.phenotype_markers]
        n_events = {}
        for (name, _), sel in zip(self.populations, local[1:], strict=True):
            idx = np.flatnonzero(sel)
            n_events[name] = int(idx.size)
            if idx.size > self.max_events:
                idx = np.sort(rng.choice(idx, self.max_events, replace=False))
            block = np.empty((idx.size, len(cols)), dtype=np.float32)
            nd = len(self.donor_markers)
            for j, c in enumerate(cols):
                block[:, j] = (transformed if j < nd else scale)[idx, c]
            res.pheno[name] = block
        res.pheno_events = n_events


def _qc_items(record: dict, plot: tuple) -> dict:
    """The ``acquisition_qc`` and ``acq_bins`` items from `file_record` and `plot_bins`."""
    bins, bin_columns, unit = plot
    record = {**record, "bin_columns": bin_columns.tolist(), "time_unit": unit}
    return {"acquisition_qc": record, "acq_bins": bins}


def _flanks(qc) -> dict | None:
    """QC's removed time ranges and the kept rows beside each: ``{"ranges", "slices"}``.

    Each flank is a run of `FLANK_EVENTS` kept events (fewer at the file's
    ends, and between two ranges closer than two flanks, which share the kept
    events between them halfway) just before or just after a range, as a half-open slice of the kept
    rows; ``ranges`` gives each range's events in the file and its flanks
    (indices into ``slices``). None when QC removed no time range.
    """
    from cytokit.analysis.chimerism import FLANK_EVENTS

    if not qc.ranges:
        return None
    kept = np.flatnonzero(qc.keep)  # file index of each kept row
    bounds = [
        (int(np.searchsorted(kept, r.first_event)), int(np.searchsorted(kept, r.stop_event)))
        for r in qc.ranges
    ]
    slices, ranges = [], []
    for i, (r, (at, after)) in enumerate(zip(qc.ranges, bounds, strict=True)):
        # two ranges closer than two flanks share the kept rows between them halfway, so
        # that no row stands for both (the interval counts each flank row once more)
        floor = (bounds[i - 1][1] + at) // 2 if i > 0 else 0
        ceil = (after + bounds[i + 1][0]) // 2 if i + 1 < len(bounds) else kept.size
        sides = []
        for lo, hi in (
            (max(at - FLANK_EVENTS, floor, 0), at),
            (after, min(after + FLANK_EVENTS, ceil, kept.size)),
        ):
            if hi > lo:
                sides.append(len(slices))
                slices.append((lo, hi))
        ranges.append({"events": int(r.events), "flanks": sides})
    return {"ranges": ranges, "slices": slices}


def _mask(sample, read) -> np.ndarray:
    mask = np.zeros(sample.n_channels, dtype=bool)
    mask[sorted(set(read))] = True
    return mask


def _renumber(flanks: dict, keep: np.ndarray) -> dict:
    """`flanks` on the rows left after dropping those where `keep` is False."""
    before = np.concatenate([[0], np.cumsum(keep)])
    slices = [(int(before[lo]), int(before[hi])) for lo, hi in flanks["slices"]]
    return {**flanks, "slices": slices}


def _held(events: np.ndarray, kept, qc) -> tuple[np.ndarray, np.ndarray] | None:
    """The events of QC's removed time ranges with a rate anomaly (a clog, a bubble) that
    QC removed for the rate and not as margin events, copied, and the index of the range
    (in ``qc.ranges``) of each; None without such a range. A range removed for a signal
    change alone is not held: its values moved; nor, in a range that holds both, the
    events removed for the signal alone (a drift a bubble merged with), nor a detector's
    saturated events (read as bright, a donor marker's would count as donor cells)."""
    from cytokit.qc import MARGIN, RATE
    from cytokit.qc.apply import removed_events

    spans = [(i, r) for i, r in enumerate(qc.ranges) if "rate" in r.reasons]
    if not spans:
        return None
    gone = removed_events(events, kept, qc)
    at = np.flatnonzero(~qc.keep)  # file index of each removed row
    bits = np.asarray(qc.reasons)[at]
    measured = ((bits & RATE) != 0) & ((bits & MARGIN) == 0)
    parts, which = [], []
    for i, r in spans:
        lo, hi = np.searchsorted(at, r.first_event), np.searchsorted(at, r.stop_event)
        own = measured[lo:hi]
        parts.append(gone[lo:hi][own])
        which.append(np.full(int(own.sum()), i, dtype=np.int64))
    if not sum(len(w) for w in which):
        return None
    return np.concatenate(parts), np.concatenate(which)


def _flank_items(
    res: SampleResult, flanks: dict, rows, transformed, at, local, markers, own=None
) -> None:
    """``strata`` and per donor marker ``flank:<marker>`` (see the module docstring).

    `local` holds the threshold parent's membership, then each population's;
    `own` is `MeasureTask._range_cells` of the rate-flagged ranges, or None.
    """
    inside = [(rows >= lo) & (rows < hi) for lo, hi in flanks["slices"]]
    ranges = [dict(r) for r in flanks["ranges"]]
    sizes = [hi - lo for lo, hi in flanks["slices"]]
    parent = [int((w & local[0]).sum()) for w in inside]
    if own is not None:
        where, own_local, own_values, own_at, which = own
        held = sorted({int(i) for i in which})
        own_inside = [where == i for i in held]
        for i, w in zip(held, own_inside, strict=True):
            ranges[i]["own"] = len(sizes)
            sizes.append(int((which == i).sum()))
            parent.append(int((w & own_local[0]).sum()))
    res.strata = {"ranges": ranges, "flank_events": sizes, "parent": parent}
    for m in markers:
        x, edges = transformed[:, at[m]], res.edges[m]
        blocks = [Histogram.of(x[w & sel], edges).counts for w in inside for sel in local[1:]]
        if own is not None:
            y = own_values[:, own_at[m]]
            blocks += [
                Histogram.of(y[w & sel], edges).counts for w in own_inside for sel in own_local[1:]
            ]
        shape = (0, edges.size - 1)
        res.flanks[m] = (np.vstack(blocks) if blocks else np.zeros(shape)).astype(np.int64)
