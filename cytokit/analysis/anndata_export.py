"""A results folder's events as one AnnData object (``.h5ad``) for scanpy, pytometry and readfcs users.

`results_anndata` rebuilds, from a results folder (``cytokit analyze --out``)
and the study folder it names, the events each file's numbers were measured
on: every file listed in ``samples.csv`` is checked against its SHA-256, read
and gated again as ``analyze`` gates it (`cytokit.study.Study.gate`: the
study's strategy, compensation, gating seed, acquisition QC and non-finite
rule). `export_anndata` writes it atomically.

Layout (the conventions of readfcs and pytometry: variables are channels,
``var`` has ``channel`` and ``marker``, raw values in a layer):

``X`` (float32 or float64, the files' dtype)
    Compensated values (the study's ``[compensation]``) with the study's
    transform (``[transform]`` or the marker's override) on every channel
    ``[panel]`` names; other channels (scatter, time, detectors the panel
    leaves out) are compensated scale values, untransformed.
``layers["raw"]``
    Scale values as read (`cytokit.read_fcs`): uncompensated, untransformed;
    what FlowIO's preprocessed array (and readfcs) give for the same file.
``layers["compensated"]``
    Compensated scale values, untransformed.
``var`` (index: ``$PnN``)
    ``channel`` ($PnN), ``marker`` ($PnS, "" when none), ``panel_marker``
    (the study's name for the channel, "" when ``[panel]`` has none),
    ``compensated`` (bool: in the matrix used), ``transform`` (e.g.
    ``logicle(T=262144, W=0.5, M=4.5, A=0)`` or ``none``).
``obs`` (one row per event; index ``<file>:<event>``)
    ``file``, ``patient``, ``day``, ``tube``, ``stratum``, ``sample_type``,
    ``event`` (the event's position among the events gating saw: after
    acquisition QC and the non-finite rule, as ``counts.csv`` counts them),
    ``in_<population>`` (bool) for each study population, ``origin``
    (``donor``/``recipient`` by the file's donor threshold on the threshold
    parent, ``thresholds.csv``, snapped to its histogram's nearest edge as
    chimerism counts; empty outside the parent, and for a file whose donor
    marker failed or got no threshold), ``origin_<population>`` for each
    study population (the origin chimerism gives its events: the
    population's own donor cut, ``population_valley``, where the file has
    one, else the parent's; empty outside the population), and
    ``metacluster`` (with ``[clustering]``: the metacluster of every
    threshold-parent event, -1 elsewhere; the SOM is trained again exactly
    as ``analyze`` trained it, from the results store).
``uns["cytokit"]``
    cytokit version, study name, results folder, tube, populations (name → gate
    path), threshold parent, donor markers, strategy source and digest,
    compensation, events per file (0 = all), seed, ``study_toml`` (the
    study's settings as JSON), and ``not_counted``: the populations
    ``counts.csv`` leaves uncounted, as lists ``file`` and ``population`` (a
    failed donor marker: their ``in_<population>`` flags are the gates as drawn).

With ``events=N`` each file contributes a random N of its events (all of a
smaller file; a generator seeded with `seed` and the file name); without it,
every event, so the ``in_<population>`` sums per file are ``counts.csv``'s
counts (but for the populations ``uns["cytokit"]["not_counted"]`` lists) and
the donor events per population are ``chimerism.csv``'s.
"""

from __future__ import annotations

import json
import os
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytokit._io import create_temporary
from cytokit._outdir import not_a_results_file, write_refusal
from cytokit.errors import CytokitError, StudyError
from cytokit.study.tubes import DEFAULT_TUBE, chosen_tube

__all__ = ["export_anndata", "results_anndata"]

_EXTRA = 'AnnData export needs the anndata package: install the extra, pip install "cytokit-flow[anndata]"'


def _anndata():
    try:
        import anndata
    except ImportError:
        raise CytokitError(_EXTRA) from None
    return anndata


def _describe(t) -> str:
    if t is None:
        return "none"
    params = ", ".join(f"{k}={v:g}" for k, v in t.params().items())
    return f"{t.kind}({params})"


def _study_of(results, study) -> Any:
    from cytokit.study import load_study

    if study is not None and not isinstance(study, (str, os.PathLike)):
        return study
    root = Path(study) if study is not None else Path(str(results.study.get("root", "")))
    if not (root / "study.toml").is_file():
        raise StudyError(
            f"{results.out}: the study folder {str(root)!r} that study.json names has no "
            "study.toml (moved or on another machine?); give the study folder: --study DIR"
        )
    return load_study(root)


def _check_same_strategy(results, study) -> None:
    """Refuse a study whose gating (or populations, or clustering: the AnnData holds the
    results' populations and clusters) changed since `results` were made."""
    from cytokit.study.settings import parse_settings

    meta = results.study
    again = f"run `cytokit analyze {study.root} --out {results.out}` again"
    config = meta.get("config")
    changed = study.gating_changes(config)
    if isinstance(config, dict):
        then, _ = parse_settings(config, "study.json")
        now = study.settings
        changed += [
            name
            for name, differs in (
                ("[populations]", dict(then.populations) != dict(now.populations)),
                ("[clustering]", then.clustering != now.clustering),
            )
            if differs
        ]
    if changed:
        raise StudyError(
            f"{results.out}: study.toml's {', '.join(changed)} changed since these results "
            "were made, so the AnnData would not hold the events, counts and populations of "
            f"the results; {again}, or set study.toml back"
        )
    recorded = (meta.get("strategy") or {}).get("digest", "")
    now_digest = study.gating.digest() if study.gating is not None else ""
    if recorded and now_digest and recorded != now_digest:
        raise StudyError(
            f"{results.out}: the study's strategy changed since these results were made "
            f"(digest {recorded[:12]}… then, {now_digest[:12]}… now); {again}"
        )
    files = study.gating_file_changes(meta.get("gating_files"))
    if files:
        raise StudyError(
            f"{results.out}: {', '.join(files)} changed since these results were made (what "
            f"it holds, under the same name); {again}, or put the file back"
        )


def _edges(results, file: str) -> np.ndarray | None:
    """The donor-marker histogram edges of `file` (chimerism snaps thresholds to them)."""
    try:
        return results.donor_histogram(file).edges
    except (CytokitError, OSError, KeyError):
        return None


def _donor_flags(values: np.ndarray, threshold: float, side: str, edges) -> np.ndarray:
    """Donor events by a threshold, snapped to the nearest histogram edge as chimerism does."""
    t = float(threshold)
    if edges is not None and len(edges):
        t = float(edges[int(np.argmin(np.abs(np.asarray(edges) - t)))])
    above = values >= t
    return above if side == "positive" else ~above


class _Layout:
    """The channels every file must share, and the compensation and transform of each."""

    def __init__(self, sample, study, task) -> None:
        self.names = sample.channel_names
        self.markers = sample.markers
        panel = task.panel
        self.panel_marker = [""] * len(self.names)
        self.transforms: list[Any] = [None] * len(self.names)
        for marker in panel:
            try:
                col = panel.column(sample, marker)
            except CytokitError:
                continue
            self.panel_marker[col] = marker
            self.transforms[col] = study.settings.transform_of(marker)

    def columns(self, sample) -> np.ndarray:
        """The column of `sample` holding each of the layout's channels (by ``$PnN``), -1
        for the time channel of a file that has none."""
        have = {name: j for j, name in enumerate(sample.channel_names)}
        return np.array([have.get(name, -1) for name in self.names], dtype=np.int64)


def _measured(sample) -> tuple[str, ...]:
    """`sample`'s ``$PnN`` but its time channel's (a file exported without one, or whose
    clock QC could not read, holds the same measurements)."""
    from cytokit.fcs.channels import time_column

    t = time_column(sample.keyword, sample.channels)
    return tuple(n for j, n in enumerate(sample.channel_names) if j != t)


def _plan_layout(study, task, samples: pd.DataFrame) -> _Layout | None:
    """The channels of the export, from every file's header, before any file is gated:
    the files must hold the same measured channels in the same order (one AnnData holds
    one panel); a file without a time channel gets NaN there. The layout is the first
    file's that has one (else the first file's); None without a file."""
    from cytokit.fcs import read_fcs

    first = measured = layout = fallback = None
    for file in map(str, samples["file"]):
        with warnings.catch_warnings():  # the analysis has reported what the reader met
            warnings.simplefilter("ignore")
            sample = read_fcs(study.root / file, mmap=True)
        mine = _measured(sample)
        if first is None:
            first, measured = (file, sample.channel_names), mine
            fallback = _Layout(sample, study, task)
        elif mine != measured:
            raise CytokitError(
                f"{file}: its channels ({', '.join(sample.channel_names)}) differ from "
                f"{first[0]}'s ({', '.join(first[1])}), of the same tube; one AnnData holds "
                "files of one panel: write the file again with those channels, or take it "
                "out of the manifest"
            )
        if layout is None and len(sample.channel_names) > len(mine):
            layout = _Layout(sample, study, task)
    return layout if layout is not None else fallback


def _check_files(study, samples: pd.DataFrame) -> None:
    """Every file of `samples` (rows of samples.csv) is there with the content it was
    analysed with."""
    from cytokit.engine._workers import read_failure
    from cytokit.engine.hashing import file_hash

    for file, sha in zip(samples["file"], samples["sha256"], strict=True):
        path = study.root / str(file)
        if not path.is_file():
            raise CytokitError(f"{path}: the file samples.csv lists is not there (moved?)")
        try:
            digest = file_hash(path)
        except OSError as exc:
            # one AnnData holds every analysed file: none is left out, as a changed one is not
            raise CytokitError(
                f"{path}: {read_failure(exc)} (the AnnData is written with every analysed file "
                "or not at all)"
            ) from None
        if isinstance(sha, str) and sha and digest != sha:
            raise CytokitError(
                f"{path}: its content changed since the analysis (its SHA-256 differs from "
                "samples.csv); run cytokit analyze again"
            )


def _per_file(study, task, results, row, layout: _Layout, events_n, seed, item, model):
    """(raw, compensated, X, obs frame, spillover columns) of one file's chosen events, in
    the layout's channels."""
    from cytokit import kernels as K
    from cytokit.fcs import read_fcs

    file = str(row["file"])
    path = study.root / file
    sample = read_fcs(path)
    result = study.gate(sample, tube=item.get("tube", DEFAULT_TUBE))
    kept = result.sample
    n = kept.n_events
    if events_n is not None and events_n < n:
        rng = np.random.default_rng([seed, zlib.crc32(file.encode())])
        idx = np.sort(rng.choice(n, events_n, replace=False))
    else:
        idx = np.arange(n)
    raw = np.ascontiguousarray(kept.events[idx])
    spill = result.compensation
    comp_cols: tuple[int, ...] = ()
    if spill is not None:
        comp_cols = tuple(kept.channel_index(c) for c in spill.channels)
        compensated = K.compensate(raw, spill.matrix, list(comp_cols))
    else:
        compensated = raw.copy()
    cols = layout.columns(kept)
    if not np.array_equal(cols, np.arange(kept.n_channels)):  # no time channel: NaN there
        have = cols >= 0
        raw, compensated = (_placed(a, cols, have) for a in (raw, compensated))
        comp_cols = tuple(int(np.flatnonzero(cols == c)[0]) for c in comp_cols)
    x = compensated.copy()
    for j, t in enumerate(layout.transforms):
        if t is not None:
            t.apply(compensated[:, j], out=x[:, j])
    obs = {
        "file": file,
        "patient": str(row["patient"]),
        "day": int(row["day"]),
        "tube": item.get("tube", "default"),
        "stratum": "" if pd.isna(row.get("stratum")) else str(row.get("stratum")),
        "sample_type": "" if pd.isna(row.get("sample_type")) else str(row.get("sample_type")),
    }
    frame = pd.DataFrame({"event": idx.astype(np.int64)})
    for k, v in obs.items():
        frame[k] = v
    for name, gate_path in task.populations:
        frame[f"in_{name}"] = result.membership(gate_path)[idx]
    _origins(frame, results, result, kept, task, file, idx, spill is not None)
    if model is not None:
        _metacluster(frame, model, result, kept, task, idx, spill is not None)
    return raw, compensated, x, frame, comp_cols


def _placed(values: np.ndarray, cols: np.ndarray, have: np.ndarray) -> np.ndarray:
    """`values` (a file's columns) in the layout's columns `cols`, NaN where it has none."""
    out = np.full((values.shape[0], cols.size), np.nan, dtype=values.dtype)
    out[:, have] = values[:, cols[have]]
    return out


def _origins(frame, results, result, kept, task, file, idx, compensated) -> None:
    """``origin`` and ``origin_<population>`` from thresholds.csv, as chimerism counts them."""
    from cytokit.gating import FCS, UNCOMPENSATED, Dimension

    empty = np.full(len(idx), "", dtype=object)
    frame["origin"] = empty
    for name, _ in task.populations:
        frame[f"origin_{name}"] = empty
    th = results.thresholds
    rows = th[(th["file"] == file) & (th["purpose"] == "donor")] if not th.empty else th
    samples = results.samples[results.samples["file"] == file]
    failed = not samples.empty and samples.iloc[0].get("donor_marker_check") == "failed"
    if rows.empty or failed:
        return
    marker = str(rows.iloc[0]["marker"])
    channel = kept.channels[task.panel.column(kept, marker)].name
    xf = dict(task.transforms).get(marker)
    dim = Dimension(channel, compensation=FCS if compensated else UNCOMPENSATED, transform=xf)
    values = result.strategy.values(kept, [dim], idx, compensation=result.compensation)[:, 0]
    edges = _edges(results, file)
    by_parent = {str(r.parent): r for r in rows.itertuples(index=False)}

    def labels(r, inside) -> np.ndarray:
        out = empty.copy()
        if r is None or not isinstance(r.method, str) or r.method == "none":
            return out
        if not np.isfinite(r.threshold):
            return out
        donor = _donor_flags(values, r.threshold, str(r.donor_side), edges)
        out[inside & donor] = "donor"
        out[inside & ~donor] = "recipient"
        return out

    parent_cut = by_parent.get(task.parent)
    frame["origin"] = labels(parent_cut, np.asarray(result.membership(task.parent))[idx])
    for name, gate_path in task.populations:
        inside = np.asarray(result.membership(gate_path))[idx]
        frame[f"origin_{name}"] = labels(by_parent.get(gate_path, parent_cut), inside)


def _model(study, task, results):
    """The clustering model of ``analyze`` (None when it did not cluster)."""
    info = results.study.get("clustering") or {}
    if study.settings.clustering is None or not task.cluster_markers or not info:
        return None
    if "error" in info:
        return None
    from cytokit.analysis.cohort import cluster_model

    return cluster_model(study, task, results)


def _metacluster(frame, model, result, kept, task, idx, compensated) -> None:
    """Each threshold-parent event's metacluster (-1 elsewhere), on the values ``analyze`` used."""
    from cytokit.gating import FCS, UNCOMPENSATED, Dimension

    labels = np.full(len(idx), -1, dtype=np.int32)
    inside = np.asarray(result.membership(task.parent))[idx]
    rows = idx[inside]
    if rows.size:
        dims = [
            Dimension(
                kept.channels[task.panel.column(kept, m)].name,
                compensation=FCS if compensated else UNCOMPENSATED,
                transform=dict(task.transforms).get(m),
            )
            for m in task.cluster_markers
        ]
        values = result.strategy.values(kept, dims, rows, compensation=result.compensation)
        labels[inside] = model.predict(values.astype(np.float32))
    frame["metacluster"] = labels


def results_anndata(
    results_dir: str | os.PathLike,
    *,
    events: int | None = None,
    seed: int = 0,
    study=None,
    tube: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Any:
    """The events behind a results folder as an ``anndata.AnnData`` (see the module).

    Parameters
    ----------
    results_dir : path
        A folder written by ``cytokit analyze`` (checked against its ``tables.json``).
    events : int, optional
        Events per file (a random subset); default every event.
    seed : int
        Seed of that subset (with each file's name).
    study : path or Study, optional
        The study folder; default the one ``study.json`` names.
    tube : str, optional
        The tube whose files to export (one AnnData holds one panel). Needed when the
        manifest lists files of several tubes; default the study's one tube.
    progress : callable, optional
        Called as ``progress(done, total, file)`` before each file is read and gated
        again, once the results folder and the study have been checked.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    CytokitError
        anndata is not installed (the message names the extra), the results
        folder is incomplete or edited, the study folder is missing or its
        strategy changed, a file changed since the analysis, the files'
        channels differ, or no `tube` is given for a study of several tubes.
    """
    ad = _anndata()
    from cytokit._version import __version__
    from cytokit.analysis.results import load_results
    from cytokit.analysis.run import make_task

    if events is not None and (not isinstance(events, (int, np.integer)) or events < 1):
        raise CytokitError(f"events={events!r}: give a number of events per file of at least 1")
    results = load_results(results_dir)
    study = _study_of(results, study)
    _check_same_strategy(results, study)
    tube, _ = chosen_tube(study, tube, None)
    task = make_task(study, tube)
    samples = results.samples
    if "tube" in samples:
        samples = samples[samples["tube"].astype(str) == tube]
    _check_files(study, samples)
    layout = _plan_layout(study, task, samples)
    model = _model(study, task, results)
    raws, comps, xs, frames = [], [], [], []
    comp_cols: set[int] = set()
    for i, row in enumerate(samples.to_dict("records")):
        if progress is not None:
            progress(i, len(samples), str(row["file"]))
        item = {"tube": tube}
        raw, comp, x, frame, cols = _per_file(
            study, task, results, row, layout, events, seed, item, model
        )
        comp_cols.update(cols)
        raws.append(raw)
        comps.append(comp)
        xs.append(x)
        frames.append(frame)
    if not frames:
        raise CytokitError(
            f"{results.out}: samples.csv lists no analysed file of tube {tube!r}; nothing to export"
        )
    obs = pd.concat(frames, ignore_index=True)
    x_all = np.concatenate(xs)
    del xs
    obs.index = (obs["file"] + ":" + obs["event"].astype(str)).to_numpy()
    for col in ("file", "patient", "tube", "stratum", "sample_type"):
        obs[col] = obs[col].astype("category")
    origin_cols = [c for c in obs.columns if c == "origin" or c.startswith("origin_")]
    for col in origin_cols:
        obs[col] = pd.Categorical(obs[col], categories=["", "donor", "recipient"])
    var = pd.DataFrame(
        {
            "channel": list(layout.names),
            "marker": list(layout.markers),
            "panel_marker": layout.panel_marker,
            "compensated": [j in comp_cols for j in range(len(layout.names))],
            "transform": [_describe(t) for t in layout.transforms],
        },
        index=pd.Index(list(layout.names)),
    )
    adata = ad.AnnData(X=x_all, obs=obs, var=var)
    adata.layers["raw"] = np.concatenate(raws)
    del raws
    adata.layers["compensated"] = np.concatenate(comps)
    del comps
    s = study.settings
    adata.uns["cytokit"] = {
        "version": __version__,
        "study": study.name,
        "results": str(Path(results_dir)),
        "tube": tube,
        "populations": {k: v for k, v in task.populations},
        "threshold_parent": task.parent,
        "donor_markers": list(task.donor_markers),
        "strategy_source": str((results.study.get("strategy") or {}).get("source", "")),
        "strategy_digest": str((results.study.get("strategy") or {}).get("digest", "")),
        "compensation": s.compensation,
        "events_per_file": int(events or 0),
        "seed": int(seed),
        "study_toml": json.dumps(study.config, default=str, sort_keys=True),
        "not_counted": _not_counted(results, set(obs["file"].astype(str))),
    }
    return adata


def _not_counted(results, files: set[str]) -> dict[str, list[str]]:
    """``{"file": [...], "population": [...]}``, a pair per population chimerism.csv gives
    no events (its gates read a failed donor marker, or a channel compensated against its
    failed detector): its ``in_<population>`` flags are the gates as drawn, not counts
    cytokit stands by. (Two lists, not a mapping by file: HDF5 reads a ``/`` in a key as
    a group.)"""
    ch = results.chimerism
    if ch.empty or "events" not in ch.columns:
        return {"file": [], "population": []}
    lost = ch[ch["events"].isna() & ch["file"].astype(str).isin(files)]
    pairs = sorted(set(zip(lost["file"].astype(str), lost["population"].astype(str), strict=True)))
    return {"file": [f for f, _ in pairs], "population": [p for _, p in pairs]}


def _target(named: Path) -> Path:
    """`named` checked as a place for a new file (a regular file is replaced; nothing else),
    as the file to write: a symbolic link's target (the link stays one), refused where that
    target's folder does not exist, as every writer of cytokit does (`_io.destination`)."""
    from cytokit._io import destination
    from cytokit.errors import OutputError

    parent = named.parent
    if parent.exists() and not parent.is_dir():
        raise CytokitError(f"{named}: {parent} is not a folder; give a path inside a folder")
    try:
        out, _ = destination(named)
    except OutputError:
        raise
    except OSError as exc:
        raise CytokitError(write_refusal(named, exc, "the AnnData file")) from None
    if out.exists() and not out.is_file():
        raise CytokitError(
            f"{out}: exists and is not a regular file; give the path of a .h5ad file to write"
        )
    return out


def export_anndata(
    results_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    events: int | None = None,
    seed: int = 0,
    study=None,
    tube: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write `results_anndata` to `out` (``.h5ad``) atomically; returns the path.

    The file is written beside `out` under a temporary name, then renamed, so a
    reader sees the old file or the whole new one. The arguments are those of
    `results_anndata`; `out`'s folder is made when missing. A folder that
    cannot be written is refused before any file is read; a write the system
    refuses later is a `CytokitError` naming `out` (not the temporary) and the fix.
    """
    out = _target(Path(out))
    not_a_results_file(results_dir, out, ".h5ad")
    adata = results_anndata(
        results_dir, events=events, seed=seed, study=study, tube=tube, progress=progress
    )
    try:
        fd, tmp = create_temporary(out.parent, out.name)
    except OSError as exc:
        raise CytokitError(write_refusal(out, exc, "the AnnData file")) from None
    os.close(fd)
    try:
        adata.write_h5ad(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CytokitError(write_refusal(out, exc, "the AnnData file")) from None
        raise
    return out
