"""`SampleResult`: what the per-sample measurement stores and the per-patient tables read.

`cytokit.analysis.per_sample.MeasureTask` returns one per FCS file; the runner
stores it as named items (`SampleResult.encode`, one store item each, see
`cytokit.engine.codec`), and `cytokit.analysis.per_patient` gets it back with
`SampleResult.decode`, which checks every item's name and type, so a payload
of another layout fails with a message instead of being misread.

The store's item names (the on-disk layout) are::

    info  counts  nonfinite  warnings  gates       always
    qc:<gate id>                                   a gate's QC points (gates with points)
    edges:<marker>  hist:<marker>                  per donor marker
    anchors  pileup                                with donor markers
    pheno:<population>  pheno_thresholds  pheno_events   with phenotype markers
    cluster  cluster_gates                         with clustering markers
    acquisition_qc  acq_bins                       with acquisition QC
    strata  flank:<marker>                         QC removed time ranges (donor markers)

Which payload a store item belongs to is fixed by the task key, which holds
`cytokit.analysis.per_sample.MEASURE_VERSION`: a change of this layout bumps
that version, so stored results of the old layout are measured again, never
decoded with the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cytokit.errors import CytokitError

__all__ = ["SampleResult"]

# name prefixes of the per-key items: store prefix -> attribute
_KEYED = {
    "qc": "qc_points",
    "edges": "edges",
    "hist": "hists",
    "pheno": "pheno",
    "flank": "flanks",
}
_PLAIN = (
    "info",
    "counts",
    "nonfinite",
    "warnings",
    "gates",
    "anchors",
    "pileup",
    "pheno_thresholds",
    "pheno_events",
    "cluster",
    "cluster_gates",
    "acquisition_qc",
    "acq_bins",
    "strata",
)
_REQUIRED = ("info", "counts", "nonfinite", "warnings", "gates")
_TYPES = {
    "info": dict,
    "counts": pd.DataFrame,
    "nonfinite": dict,
    "warnings": list,
    "gates": list,
    "anchors": dict,
    "pileup": dict,
    "pheno_thresholds": dict,
    "pheno_events": dict,
    "cluster": np.ndarray,
    "cluster_gates": np.ndarray,
    "acquisition_qc": dict,
    "acq_bins": np.ndarray,
    "strata": dict,
}


@dataclass
class SampleResult:
    """Everything measured on one FCS file that the per-patient tables need.

    Attributes
    ----------
    info : dict
        ``events`` (in the file), ``nonfinite_events`` (dropped for NaN/inf,
        `cytokit.finite`), ``channels``, ``fcs_version``, ``cytometer``
        ($CYT, '' if absent), ``spillover`` (source of the matrix, '' if none).
    counts : DataFrame
        `GatingResult.counts`: one row per gate (gate_path, gate_id,
        parent_path, depth, count, parent_count, pct_parent, pct_total).
    nonfinite : dict
        `cytokit.finite.NonFinite.as_dict`: non-finite values per channel.
    warnings : list of str
        Warnings raised while gating (adaptive gates that fell back...), once each.
    gates : list of dict
        Per gate of the fitted strategy: ``gate_id``, ``kind``, ``dims``
        (dimension labels), ``geometry`` (JSON of the fitted gate), ``n_points``.
    qc_points : dict of str to ndarray
        Gate id → float32 (n ≤ `QC_POINTS`, n_dims): parent events in the
        gate's dimensions, for the QC plot; gates without points are absent.
    edges : dict of str to ndarray
        Donor marker → float64 (n_bins + 1,): the sample's histogram edges,
        on the marker's transformed scale.
    hists : dict of str to ndarray
        Donor marker → int64 (n_populations + 1, n_bins): event counts of the
        threshold parent (row 0) and of each study population (rows in the
        task's `populations` order), on `edges`.
    anchors : dict of str to float
        Donor marker → median of the bead gate's events (transformed scale),
        the drift anchor; empty without beads or donor markers.
    pileup : dict of str to dict
        Donor marker → `cytokit.analysis.marker_check.value_pileup` of the
        threshold parent's stored values (a constant or saturated detector).
    pheno : dict of str to ndarray
        Population → float32 (n ≤ max_events, n_donor + n_phenotype): donor
        markers (transformed) then phenotype markers (compensated scale) of
        a random subset of its events.
    pheno_thresholds : dict of str to dict
        Phenotype marker → ``threshold`` (transformed), ``threshold_scale``
        (compensated scale), ``method`` ("fixed", "valley" or "none").
    pheno_events : dict of str to int
        Population → its events before subsampling.
    cluster : ndarray or None
        float32 (n ≤ cluster_events, n_cluster + n_donor): clustering markers
        (transformed) then donor markers of random threshold-parent events;
        None without clustering markers.
    cluster_gates : ndarray or None
        uint8 (n, n_populations): each of those events in each population.
    acquisition_qc : dict or None
        With acquisition QC: `cytokit.qc.file_record` (samples-table columns,
        flagged ranges) with ``bin_columns`` and ``time_unit``.
    acq_bins : ndarray or None
        float64 (n_bins, n_columns): the QC plot's series (`cytokit.qc.apply.plot_bins`).
    strata : dict or None
        When acquisition QC removed time ranges (and the tube has donor
        markers): ``ranges``, per range ``events`` (in the file), ``flanks``
        (indices of its kept neighbours, before then after) and, for a range
        removed for its event rate, ``own`` (the index of its own gated
        events); per stratum (the flanks, then the ranges' own events)
        ``flank_events``, its events, and ``parent``, those in the threshold
        parent.
    flanks : dict of str to ndarray
        Donor marker → int64 (n_strata * n_populations, n_bins): each study
        population's donor-marker histogram in each stratum (stratum-major),
        on `edges`.
    """

    info: dict
    counts: pd.DataFrame
    nonfinite: dict
    warnings: list
    gates: list
    qc_points: dict = field(default_factory=dict)
    edges: dict = field(default_factory=dict)
    hists: dict = field(default_factory=dict)
    anchors: dict | None = None
    pileup: dict | None = None
    pheno: dict = field(default_factory=dict)
    pheno_thresholds: dict | None = None
    pheno_events: dict | None = None
    cluster: np.ndarray | None = None
    cluster_gates: np.ndarray | None = None
    acquisition_qc: dict | None = None
    acq_bins: np.ndarray | None = None
    strata: dict | None = None
    flanks: dict = field(default_factory=dict)

    def encode(self) -> dict[str, object]:
        """The store's items: ``{name: DataFrame, array or JSON value}`` (module docstring).

        Items left at None are not stored (the same as before they existed).
        """
        out: dict[str, object] = {}
        for name in _REQUIRED:
            out[name] = getattr(self, name)
        for key, value in self.qc_points.items():
            out[f"qc:{key}"] = value
        for marker in self.edges:
            out[f"edges:{marker}"] = self.edges[marker]
            out[f"hist:{marker}"] = self.hists[marker]
        if self.anchors is not None:
            out["anchors"] = self.anchors
        if self.pileup is not None:
            out["pileup"] = self.pileup
        if self.pheno_thresholds is not None:
            out["pheno_thresholds"] = self.pheno_thresholds
        for name, block in self.pheno.items():
            out[f"pheno:{name}"] = block
        if self.pheno_events is not None:
            out["pheno_events"] = self.pheno_events
        if self.cluster is not None:
            out["cluster"] = self.cluster
            out["cluster_gates"] = self.cluster_gates
        if self.acquisition_qc is not None:
            out["acquisition_qc"] = self.acquisition_qc
            out["acq_bins"] = self.acq_bins
        if self.strata is not None:
            out["strata"] = self.strata
        for marker, block in self.flanks.items():
            out[f"flank:{marker}"] = block
        return out

    @classmethod
    def decode(cls, items: Mapping[str, object], where: str = "stored result") -> SampleResult:
        """A `SampleResult` from the store's items (as `encode` wrote them).

        Parameters
        ----------
        items : mapping
            Item name → decoded object (`RunStore.payload`).
        where : str
            Names the stored result in errors (the file).

        Raises
        ------
        CytokitError
            An item of an unknown name or the wrong type, a required item
            missing, or a donor marker with a histogram but no edges (or the
            reverse): a payload of another layout, never read as this one.
        """
        fix = "delete the results store (its files are measured again) or use another output folder"
        kw: dict[str, object] = {attr: {} for attr in _KEYED.values()}
        for name, value in items.items():
            prefix, sep, key = name.partition(":")
            if sep and prefix in _KEYED and key:
                if not isinstance(value, np.ndarray):
                    raise CytokitError(
                        f"{where}: item {name!r} is a {type(value).__name__}, expected an array; "
                        f"{fix}"
                    )
                kw[_KEYED[prefix]][key] = value
            elif name in _PLAIN:
                if not isinstance(value, _TYPES[name]):
                    raise CytokitError(
                        f"{where}: item {name!r} is a {type(value).__name__}, expected "
                        f"{_TYPES[name].__name__}; {fix}"
                    )
                kw[name] = value
            else:
                raise CytokitError(
                    f"{where}: unknown item {name!r} in the stored per-sample result (another "
                    f"layout of the store); {fix}"
                )
        missing = [n for n in _REQUIRED if n not in kw]
        if set(kw["edges"]) != set(kw["hists"]):
            missing += sorted(
                f"edges:{m}" if m not in kw["edges"] else f"hist:{m}"
                for m in set(kw["edges"]) ^ set(kw["hists"])
            )
        missing += sorted(f"edges:{m}" for m in set(kw["flanks"]) - set(kw["edges"]))
        if kw["flanks"] and "strata" not in kw:
            missing.append("strata")
        if missing:
            raise CytokitError(
                f"{where}: the stored per-sample result lacks {', '.join(missing)}; {fix}"
            )
        return cls(**kw)
