"""Clustering a patient's or a cohort's gated events: two streaming passes, tables.

`cluster_study` needs no files: the caller's ``load(item)`` returns one
sample's gated events (already compensated and transformed, e.g. with
`transformed_events`), optionally their donor flags and manual-gate masks.

1. **Train**: ``per_sample`` random events of every sample (all of a smaller
   one) are pooled, so each sample weighs about the same whatever its event
   count; `FlowSOM` is fitted on the pool.
2. **Map**: sample by sample, every event gets its metacluster; counts per
   metacluster and origin (all, donor, recipient), per-metacluster marker
   histograms (for medians) and gate × metacluster overlaps are accumulated.
   Only one sample is in memory at a time.

Medians come from histograms of `median_bins` bins spanning the pooled
events' range (widened by 5%), so they are exact to within one bin
(range / `median_bins`, ~0.001 on a logicle scale) whatever the data size.

Matching to manual gates (F1 = 2·|G∩M| / (|G| + |M|) over all events): a
gate ``G`` is matched by the metaclusters most of whose events lie in it
(more than half); their union's precision, recall and F1 are reported,
together with the best single metacluster. A population the SOM splits
(T cells into CD8+ and CD8−) is thus still matched as a whole.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytokit.cluster.flowsom import FlowSOM
from cytokit.cluster.labels import MIN_MATCH_F1
from cytokit.cluster.medians import histogram_medians
from cytokit.errors import StudyError
from cytokit.kernels.som import node_histograms
from cytokit.study.settings import ClusteringSettings  # re-exported: cytokit.cluster API

__all__ = [
    "ORIGINS",
    "ClusterInput",
    "ClusterResult",
    "ClusteringSettings",
    "cluster_study",
]

ORIGINS = ("all", "donor", "recipient")
TABLE_COLUMNS = ("patient", "day", "file", "metacluster", "origin", "count", "total", "fraction")


@dataclass
class ClusterInput:
    """What ``load(item)`` returns for one sample (a plain tuple in this order also works).

    Attributes
    ----------
    events : ndarray, shape (n_events, n_markers)
        Gated events, transformed (float32 or float64), columns in `markers` order.
    donor : ndarray of bool, shape (n_events,), optional
        Donor flag of each event; without it only ``origin = "all"`` rows are made.
    gates : mapping of str to ndarray of bool, optional
        Manual-gate memberships of the same events, for matching.
    """

    events: np.ndarray
    donor: np.ndarray | None = None
    gates: Mapping[str, np.ndarray] | None = None


@dataclass
class ClusterResult:
    """What `cluster_study` found.

    Attributes
    ----------
    model : FlowSOM
        The fitted estimator (`predict` labels new events).
    markers : tuple of str
    table : DataFrame
        clusters.csv: one row per sample × metacluster × origin: ``patient, day,
        file, metacluster, origin, count, total`` (events of that origin in the
        sample), ``fraction = count / total``, and ``median_<marker>`` of the
        row's events (NaN when it has none).
    medians : DataFrame
        Metacluster × marker medians over every event of the study.
    summary : DataFrame
        Per metacluster: ``events, fraction, donor_events, origin_events``
        (its events in samples whose donor flags were given: a sample
        without them adds to ``events`` only), ``donor_fraction`` (donor
        events of origin events), ``nodes, gate`` (best-matching gate) and ``f1``.
    matching : DataFrame
        Per gate: ``gate, events, metaclusters`` (the matched set, ";"-joined),
        ``precision, recall, f1`` of their union, ``best_metacluster, best_f1``.
    f1 : DataFrame
        Gate × metacluster F1.
    n_events, n_train : int
        Events mapped, events the SOM was trained on.
    has_donor : bool
        Whether donor flags were given.
    settings : dict
        ``grid``, ``metaclusters``, ``seed``, ``per_sample`` and ``samples``
        (the number of samples), for reports.
    """

    model: FlowSOM
    markers: tuple[str, ...]
    table: pd.DataFrame
    medians: pd.DataFrame
    summary: pd.DataFrame
    matching: pd.DataFrame
    f1: pd.DataFrame
    n_events: int
    n_train: int
    has_donor: bool = False
    settings: dict = field(default_factory=dict)


def _describe(item) -> tuple[str, object, str]:
    if isinstance(item, Mapping):
        return str(item["patient"]), item.get("day"), str(item.get("file", ""))
    if hasattr(item, "patient"):
        return str(item.patient), getattr(item, "day", None), str(getattr(item, "file", ""))
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return str(item[0]), item[1], str(item[2])
    raise StudyError(
        f"sample item {item!r} must have patient, day and file (a mapping, an object "
        "with those attributes, or a (patient, day, file) tuple)"
    )


def _sample_key(item, desc: tuple[str, object, str]) -> str:
    """What keys a sample's training draw and its place in the pool: its content digest
    (``hash``) where the item gives one, so renaming a patient or a file (pseudonymising
    a study) changes nothing, else its patient, day and file."""
    digest = item.get("hash") if isinstance(item, Mapping) else getattr(item, "hash", None)
    if isinstance(digest, str) and digest:
        return digest
    patient, day, file = desc
    return f"{patient}|{day}|{file}"


def _as_input(value, n_markers: int, where: str) -> ClusterInput:
    if isinstance(value, ClusterInput):
        inp = value
    elif isinstance(value, tuple) and 1 <= len(value) <= 3:
        inp = ClusterInput(*value)
    else:
        inp = ClusterInput(value)
    ev = np.asarray(inp.events)
    if ev.ndim != 2 or ev.shape[1] != n_markers:
        raise StudyError(
            f"{where}: load() gave events of shape {ev.shape}; expected (n_events, {n_markers}), "
            "one column per clustering marker"
        )
    if ev.dtype not in (np.float32, np.float64):
        ev = ev.astype(np.float64)
    donor = None
    if inp.donor is not None:
        donor = np.asarray(inp.donor)
        if donor.dtype != bool or donor.shape != (ev.shape[0],):
            raise StudyError(
                f"{where}: donor flags must be a bool array of shape ({ev.shape[0]},); "
                f"got {donor.dtype} {donor.shape}"
            )
    gates = {}
    for name, mask in (inp.gates or {}).items():
        m = np.asarray(mask)
        if m.dtype != bool or m.shape != (ev.shape[0],):
            raise StudyError(
                f"{where}: gate {name!r} must be a bool mask of shape ({ev.shape[0]},); "
                f"got {m.dtype} {m.shape}"
            )
        gates[str(name)] = m
    return ClusterInput(ev, donor, gates)


def _subsample_rng(seed: int, key: str) -> np.random.Generator:
    # keyed on the sample, not its position: reordering items keeps each draw
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(key.encode("utf-8"))]))
    )


def cluster_study(
    load: Callable[[object], object],
    items: Iterable,
    markers: Sequence[str],
    *,
    grid: tuple[int, int] = (10, 10),
    n_metaclusters: int = 10,
    seed: int = 1,
    per_sample: int | None = None,
    gates: Sequence[str] | None = None,
    train_events: int = 100_000,
    median_bins: int = 1024,
    progress: Callable[[int, int, str], None] | None = None,
    pool_order: str = "key",
    **flowsom_params,
) -> ClusterResult:
    """FlowSOM on a study's gated events: balanced training pool, every event mapped.

    Parameters
    ----------
    load : callable
        ``load(item)`` → `ClusterInput` or ``(events, donor, gates)`` /
        ``(events, donor)`` / ``events``. Called twice per item (train, map).
    items : iterable
        Sample descriptors with ``patient``, ``day`` and ``file`` (mappings,
        objects with those attributes, or tuples), and optionally ``hash`` (the
        file's content digest). Each sample's training draw and its place in the
        pool are keyed on its ``hash`` where given (renaming a patient or a file
        changes nothing), else on its patient, day and file; never on the order
        of `items`.
    markers : sequence of str
        Names of the events' columns.
    grid, n_metaclusters, seed
        As ``[clustering]`` of study.toml (`ClusteringSettings`).
    per_sample : int, optional
        Training events drawn from each sample; default
        ``ceil(train_events / n_samples)``.
    gates : sequence of str, optional
        Gates to match (each must be in every sample's ``gates``); default
        every gate the first sample gives.
    train_events : int
        Target size of the training pool when `per_sample` is not given.
    median_bins : int
        Histogram bins per marker for the medians.
    progress : callable, optional
        ``progress(done, total, stage)`` after each sample; stage "train" or "map".
    pool_order : {"key", "items"}
        The training pool in the order of the samples' keys (the default), or of
        `items` (as cytokit built it before: the model of an older results folder
        is trained again that way).
    **flowsom_params
        Other `FlowSOM` parameters (``linkage``, ``algorithm``, ``rlen``...).

    Returns
    -------
    ClusterResult

    Raises
    ------
    StudyError
        No items, a sample's arrays of the wrong shape or with NaN/inf, a gate
        missing in a sample, bad parameters.
    """
    items = list(items)
    markers = tuple(str(m) for m in markers)
    if not items:
        raise StudyError("cluster_study: no samples to cluster; give at least one item")
    if not markers:
        raise StudyError("cluster_study: no markers; give the names of the events' columns")
    descs = [_describe(it) for it in items]
    if per_sample is None:
        per_sample = max(1, math.ceil(train_events / len(items)))
    if not isinstance(per_sample, int) or per_sample < 1:
        raise StudyError(f"cluster_study: per_sample={per_sample!r} must be an integer >= 1")
    if not isinstance(median_bins, int) or median_bins < 2:
        raise StudyError(f"cluster_study: median_bins={median_bins!r} must be an integer >= 2")
    n_m = len(markers)

    if pool_order not in ("key", "items"):
        raise StudyError(f"cluster_study: pool_order={pool_order!r} must be 'key' or 'items'")
    pool, first_gates = _training_pool(
        load, items, descs, n_m, per_sample, seed, progress, by_key=pool_order == "key"
    )
    if gates is None:
        gates = first_gates
    model, lo, hi = _fit(pool, grid, n_metaclusters, seed, flowsom_params)
    n_train = pool.shape[0]
    del pool

    k = int(n_metaclusters)
    gates = list(gates or [])
    acc = _MapTotals.empty(k, n_m, median_bins, len(gates))
    rows = _map_events(load, items, descs, model, markers, gates, lo, hi, acc, progress)

    table = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *(f"median_{m}" for m in markers)])
    medians = pd.DataFrame(
        histogram_medians(acc.study_hist, lo, hi),
        index=pd.RangeIndex(k, name="metacluster"),
        columns=list(markers),
    )
    f1, matching = _match(gates, acc.overlap, acc.gate_events, acc.sizes)
    summary = _summary(model, gates, acc, f1)
    return ClusterResult(
        model=model,
        markers=markers,
        table=table,
        medians=medians,
        summary=summary,
        matching=matching,
        f1=f1,
        n_events=acc.n_events,
        n_train=n_train,
        has_donor=acc.has_donor,
        settings={
            "grid": tuple(grid),
            "metaclusters": k,
            "seed": seed,
            "per_sample": per_sample,
            "samples": len(items),
        },
    )


def _training_pool(load, items, descs, n_m, per_sample, seed, progress, by_key=True):
    """Pass 1: a balanced pool (``per_sample`` events of each sample) and the first sample's gates."""
    parts = []
    first_gates = None
    for i, (item, (patient, day, file)) in enumerate(zip(items, descs, strict=True)):
        where = file or f"{patient} day {day}"
        inp = _as_input(load(item), n_m, where)
        n = inp.events.shape[0]
        key = _sample_key(item, (patient, day, file))
        if n > per_sample:
            idx = np.sort(_subsample_rng(seed, key).choice(n, per_sample, replace=False))
            parts.append((key, np.asarray(inp.events[idx], dtype=np.float32)))
        else:
            parts.append((key, np.asarray(inp.events, dtype=np.float32)))
        if i == 0:
            first_gates = list(inp.gates)
        del inp
        if progress is not None:
            progress(i + 1, len(items), "train")
    if by_key:  # in the keys' order, not the items': the model does not depend on the listing
        parts.sort(key=lambda kv: kv[0])
    pool = np.concatenate([p for _, p in parts]) if parts else np.empty((0, n_m), np.float32)
    del parts
    if pool.shape[0] == 0:
        raise StudyError("cluster_study: the samples have no events to cluster")
    if not np.isfinite(pool).all():
        raise StudyError(
            "cluster_study: events contain NaN or inf; transform them to finite values first"
        )
    return pool, first_gates


def _fit(pool, grid, n_metaclusters, seed, flowsom_params):
    """`FlowSOM` fitted on the pool, and the median histograms' range (pool's, widened 5%)."""
    model = FlowSOM(
        grid=tuple(grid),
        n_metaclusters=n_metaclusters,
        random_state=seed,
        max_train=None,
        **flowsom_params,
    )
    try:
        model.fit(pool)
    except ValueError as exc:  # ClusteringError and scikit-learn's checks
        raise StudyError(f"cluster_study: {exc}") from None
    span = pool.max(axis=0).astype(np.float64) - pool.min(axis=0)
    span = np.where(span > 0, span, 1.0)
    lo = pool.min(axis=0) - 0.05 * span
    hi = pool.max(axis=0) + 0.05 * span
    return model, lo, hi


@dataclass
class _MapTotals:
    """Pass 2's running totals over all samples (k metaclusters, n_m markers, g gates)."""

    study_hist: np.ndarray  # (k, n_m, bins) int64: marker histograms per metacluster
    sample_hist: np.ndarray  # (2k, n_m, bins) int64: scratch for one sample, donor at k..2k-1
    overlap: np.ndarray  # (g, k) int64: events in gate and metacluster
    gate_events: np.ndarray  # (g,) int64: events in each gate
    donor_counts: np.ndarray  # (k,) int64
    sizes: np.ndarray  # (k,) int64: events per metacluster
    origin_sizes: np.ndarray  # (k,) int64: events per metacluster of samples with an origin
    has_donor: bool = False
    n_events: int = 0

    @classmethod
    def empty(cls, k: int, n_m: int, bins: int, n_gates: int) -> _MapTotals:
        return cls(
            study_hist=np.zeros((k, n_m, bins), dtype=np.int64),
            sample_hist=np.zeros((2 * k, n_m, bins), dtype=np.int64),
            overlap=np.zeros((n_gates, k), dtype=np.int64),
            gate_events=np.zeros(n_gates, dtype=np.int64),
            donor_counts=np.zeros(k, dtype=np.int64),
            sizes=np.zeros(k, dtype=np.int64),
            origin_sizes=np.zeros(k, dtype=np.int64),
        )


def _map_events(load, items, descs, model, markers, gates, lo, hi, acc, progress) -> list[dict]:
    """Pass 2: every event, one sample at a time; totals into `acc`, the per-sample rows returned."""
    k = acc.sizes.shape[0]
    n_m = len(markers)
    sample_hist = acc.sample_hist
    rows: list[dict] = []
    for i, (item, (patient, day, file)) in enumerate(zip(items, descs, strict=True)):
        where = file or f"{patient} day {day}"
        inp = _as_input(load(item), n_m, where)
        try:
            labels = model.predict(inp.events)
        except ValueError as exc:
            raise StudyError(f"{where}: cannot cluster the events: {exc}") from None
        acc.n_events += labels.shape[0]
        for g, name in enumerate(gates):
            if name not in inp.gates:
                raise StudyError(
                    f"{where}: load() gave no gate {name!r} (gates given: "
                    f"{', '.join(inp.gates) or 'none'}); every sample needs the same gates"
                )
            acc.overlap[g] += np.bincount(labels[inp.gates[name]], minlength=k)
            acc.gate_events[g] += int(np.count_nonzero(inp.gates[name]))
        groups = labels
        if inp.donor is not None:
            acc.has_donor = True
            groups = labels.copy()
            groups[inp.donor] += k  # donor events are groups k .. 2k-1
        sample_hist[...] = 0
        node_histograms(inp.events, groups, lo, hi, sample_hist)
        hists = {"donor": sample_hist[k:], "recipient": sample_hist[:k]}
        hists["all"] = sample_hist[:k] + sample_hist[k:]
        acc.study_hist += hists["all"]
        by_group = np.bincount(groups, minlength=2 * k)
        counts = {"donor": by_group[k:], "recipient": by_group[:k]}
        counts["all"] = by_group[:k] + by_group[k:]
        acc.sizes += counts["all"]
        if inp.donor is not None:  # a sample without a usable donor marker has no origin:
            # its events are neither donor nor recipient in the donor share
            acc.origin_sizes += counts["all"]
            acc.donor_counts += counts["donor"]
        for origin in ORIGINS if inp.donor is not None else ("all",):
            c = counts[origin]
            total = int(c.sum())
            med = histogram_medians(hists[origin], lo, hi)
            for m in range(k):
                row = {
                    "patient": patient,
                    "day": day,
                    "file": file,
                    "metacluster": m,
                    "origin": origin,
                    "count": int(c[m]),
                    "total": total,
                    "fraction": c[m] / total if total else math.nan,
                }
                for j, marker in enumerate(markers):
                    row[f"median_{marker}"] = med[m, j]
                rows.append(row)
        del inp, labels, groups
        if progress is not None:
            progress(i + 1, len(items), "map")
    return rows


def _summary(model, gates, acc: _MapTotals, f1: pd.DataFrame) -> pd.DataFrame:
    """One row per metacluster: size, donor share, SOM nodes, best-matching gate."""
    k = acc.sizes.shape[0]
    sizes, donor_counts, origin = acc.sizes, acc.donor_counts, acc.origin_sizes
    summary = pd.DataFrame(
        {
            "metacluster": np.arange(k),
            "events": sizes,
            "fraction": sizes / max(1, acc.n_events),
            "donor_events": donor_counts if acc.has_donor else np.full(k, -1),
            "origin_events": origin if acc.has_donor else np.full(k, -1),
            "donor_fraction": np.where(origin > 0, donor_counts / np.maximum(origin, 1), np.nan)
            if acc.has_donor
            else np.full(k, np.nan),
            "nodes": np.bincount(model.node_labels_, minlength=k),
        }
    )
    if not acc.has_donor:
        summary = summary.drop(columns=["donor_events", "origin_events", "donor_fraction"])
    if len(gates):
        best = f1.to_numpy().argmax(axis=0)
        top = f1.to_numpy().max(axis=0)
        # a metacluster that matches no gate (B cells and monocytes: F1 0.0004 with NK_dim,
        # or 0 with every gate) is named by none, not by the first of them
        summary["gate"] = [
            gates[g] if s >= MIN_MATCH_F1 else "" for g, s in zip(best, top, strict=True)
        ]
        summary["f1"] = top
    return summary


def _match(gates, overlap, gate_events, sizes) -> tuple[pd.DataFrame, pd.DataFrame]:
    k = sizes.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2.0 * overlap / (gate_events[:, None] + sizes[None, :])
    f1 = np.nan_to_num(f1)
    rows = []
    for g, name in enumerate(gates):
        chosen = [m for m in range(k) if sizes[m] and overlap[g, m] > 0.5 * sizes[m]]
        best = int(f1[g].argmax())
        if not chosen:
            chosen = [best]
        tp = int(overlap[g, chosen].sum())
        predicted = int(sizes[chosen].sum())
        rows.append(
            {
                "gate": name,
                "events": int(gate_events[g]),
                "metaclusters": ";".join(str(m) for m in chosen),
                "precision": tp / predicted if predicted else math.nan,
                "recall": tp / gate_events[g] if gate_events[g] else math.nan,
                "f1": 2 * tp / (predicted + gate_events[g]) if predicted + gate_events[g] else 0.0,
                "best_metacluster": best,
                "best_f1": float(f1[g, best]),
            }
        )
    columns = [
        "gate",
        "events",
        "metaclusters",
        "precision",
        "recall",
        "f1",
        "best_metacluster",
        "best_f1",
    ]
    return (
        pd.DataFrame(f1, index=pd.Index(list(gates), name="gate"), columns=pd.RangeIndex(k)),
        pd.DataFrame(rows, columns=columns),
    )
