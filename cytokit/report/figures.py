"""The plots of the report: one job per figure, rendered in worker processes, written atomically.

`write_plots` writes into ``OUT/plots`` (see `cytokit.report.build`): the
cohort plots, each patient's persistence and chimerism, each sample's QC
plot (PNG only) and the clustering's heatmap and abundance plots, and
returns them as `ReportPlots` for the page. A patient id becomes a file name
as is when safe (`file_stem`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._io import atomic_write_bytes
from cytokit.analysis.results import Results
from cytokit.report.contents import (
    ReportPlots,
    cluster_markers,
    drug_courses_of,
    min_events_of,
    patients_of,
    populations_of,
    read_cluster_tables,
)

__all__ = ["file_stem", "write_plots"]


def file_stem(text: str) -> str:
    """A file name for an id: itself when safe, else a sanitised form plus a short hash."""
    text = str(text)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", text):
        return text
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60] or "id"
    return f"{safe}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def _has_absolute(chimerism: pd.DataFrame, patient: str | None = None) -> bool:
    if "donor_per_ul" not in chimerism.columns:
        return False
    rows = chimerism if patient is None else chimerism[chimerism["patient"].astype(str) == patient]
    return bool(pd.to_numeric(rows["donor_per_ul"], errors="coerce").notna().any())


def _qc_points(out: Path | None, sample: str) -> tuple[dict[str, np.ndarray] | None, str]:
    if out is None:
        return None, "the results were not written to a folder"
    path = out / "qc" / f"{sample}.npz"
    if not path.is_file():
        return None, f"qc/{sample}.npz is missing"
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k[5:]: data[k] for k in data.files if k.startswith("gate:")}, ""
    except (OSError, ValueError) as exc:
        return None, f"qc/{sample}.npz cannot be read ({exc})"


@dataclass(frozen=True)
class _Job:
    """One figure to render: ``module.builder(*args, **kwargs)`` as PNG, then `formats`."""

    module: str
    builder: str
    args: tuple
    kwargs: dict
    stem: Path
    formats: tuple[str, ...]
    put: Callable[[bytes], None] = field(compare=False, repr=False)


def _render(job: _Job) -> list[bytes]:
    """The job's figure as bytes: PNG first, then its other formats (runs in a worker)."""
    import importlib

    from cytokit.plots import figure_bytes

    fig = getattr(importlib.import_module(job.module), job.builder)(*job.args, **job.kwargs)
    return [figure_bytes(fig, fmt) for fmt in ("png", *(f for f in job.formats if f != "png"))]


def _render_all(jobs: list[_Job], workers: int | None) -> list[list[bytes]]:
    """Render `jobs` in order, on worker processes when there are several cores and jobs.

    Figures are built inside the workers from the (small) tables and QC points
    the jobs carry; matplotlib's output does not depend on the process, so the
    bytes are those of a serial run.
    """
    from cytokit.engine._workers import _main_is_importable, default_workers

    n = min(default_workers() if workers is None else workers, len(jobs))
    if n <= 1 or len(jobs) < 4 or not _main_is_importable():
        return [_render(j) for j in jobs]
    import concurrent.futures as cf
    import multiprocessing as mp

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    payload = [dataclasses.replace(j, put=None) for j in jobs]  # callbacks stay here
    with cf.ProcessPoolExecutor(n, mp_context=mp.get_context(method)) as pool:
        return list(pool.map(_render, payload, chunksize=1))


def write_plots(
    results: Results,
    out: str | Path,
    *,
    formats: tuple[str, ...] = ("png", "svg"),
    qc: bool = True,
    workers: int | None = None,
) -> ReportPlots:
    """Render every plot of the report and write them into ``out/plots``.

    Parameters
    ----------
    results : Results
    out : path
        The folder to write ``plots/`` into.
    formats : tuple of {"png", "svg"}
        Formats of the cohort and patient plots (QC plots are PNG only).
    qc : bool
        Render the QC plots (the bulk of the time on large studies).
    workers : int, optional
        Processes rendering figures (default: the cores available; 1 renders here).

    Returns
    -------
    ReportPlots
    """
    folder = Path(out) / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    got = ReportPlots()
    jobs: list[_Job] = []

    def job(builder, args, kwargs, stem, fmts, put, module="cytokit.plots"):
        jobs.append(_Job(module, builder, args, kwargs, stem, tuple(fmts), put))

    _cohort_jobs(results, folder, formats, got, job)
    _patient_jobs(results, folder, formats, got, job)
    if qc:
        _qc_jobs(results, folder, got, job)
    _cluster_jobs(results, folder, formats, got, job)
    for j, images in zip(jobs, _render_all(jobs, workers), strict=True):
        for fmt, data in zip(("png", *(f for f in j.formats if f != "png")), images, strict=True):
            if fmt in j.formats:
                got.files.append(atomic_write_bytes(j.stem.with_name(f"{j.stem.name}.{fmt}"), data))
        j.put(images[0])
    return got


def _cohort_jobs(results: Results, folder: Path, formats, got: ReportPlots, job) -> None:
    """The cohort plots: every patient's donor cells/µL (when counted) and donor %."""
    me = min_events_of(results)
    pops = populations_of(results)
    chim, samples, infusions = results.chimerism, results.samples, results.infusions
    if not chim.empty:
        for measure in ("donor_per_ul", "donor_pct"):
            if measure == "donor_per_ul" and not _has_absolute(chim):
                continue
            kwargs = {
                "measure": measure,
                "samples": samples,
                "infusions": infusions,
                "patients": results.study.get("patients"),
                "populations": pops,
                "min_events": me,
            }
            job(
                "cohort_figure",
                (chim,),
                kwargs,
                folder / f"cohort_{measure}",
                formats,
                functools.partial(got.cohort.__setitem__, measure),
            )


def _patient_jobs(results: Results, folder: Path, formats, got: ReportPlots, job) -> None:
    """Per patient: persistence over time and chimerism per population, drug courses shaded."""
    courses = drug_courses_of(results)
    me = min_events_of(results)
    pops = populations_of(results)
    chim, samples, infusions, trends = (
        results.chimerism,
        results.samples,
        results.infusions,
        results.trends,
    )
    for pid in patients_of(results):
        rows = chim[chim["patient"].astype(str) == pid] if "patient" in chim.columns else chim
        if rows.empty:
            continue
        stem = file_stem(pid)
        measure = "donor_per_ul" if _has_absolute(chim, pid) else "donor_pct"
        kwargs = {
            "measure": measure,
            "samples": samples,
            "infusions": infusions,
            "trends": trends,
            "courses": courses,
            "min_events": me,
            "populations": pops,
        }
        job(
            "persistence_figure",
            (rows, pid),
            kwargs,
            folder / f"{stem}_persistence",
            formats,
            functools.partial(got.persistence.__setitem__, pid),
        )
        got.persistence_measure[pid] = measure
        job(
            "chimerism_figure",
            (rows, pid),
            {"infusions": infusions, "courses": courses, "populations": pops},
            folder / f"{stem}_chimerism",
            formats,
            functools.partial(got.chimerism.__setitem__, pid),
        )


def _qc_jobs(results: Results, folder: Path, got: ReportPlots, job) -> None:
    """Per sample: the QC plot from its stored points (PNG only); missing points noted."""
    if not results.qc.empty and "sample" in results.qc.columns:
        for sample, rows in results.qc.groupby(results.qc["sample"].astype(str), sort=True):
            points, why = _qc_points(results.out, sample)
            if points is None:
                got.qc_missing[sample] = why
                continue
            file = str(rows.iloc[0].get("file", sample))
            counts = results.counts
            if "file" in counts.columns:
                counts = counts[counts["file"].astype(str) == file]
            day = rows.iloc[0].get("day")
            title = f"{rows.iloc[0].get('patient', '')}, day {_day(day)}: {file}"
            job(
                "qc_figure",
                (rows, points),
                {"counts": counts, "title": title},
                folder / "qc" / file_stem(sample),
                ("png",),
                functools.partial(got.qc.__setitem__, sample),
            )


def _day(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(v)) if math.isfinite(v) and v == int(v) else f"{v:g}"


def _cluster_jobs(results: Results, folder: Path, formats, got: ReportPlots, job) -> None:
    """The clustering's heatmap and abundance plots, drawn by `cytokit.cluster` itself."""
    table, summary, _ = read_cluster_tables(results)
    if table.empty or not {"origin", "metacluster"} <= set(table.columns):
        return
    try:
        import cytokit.cluster  # noqa: F401
    except ImportError:  # a build of cytokit without clustering
        return

    def put(caption: str):
        return lambda png: got.clusters.append((png, caption))

    markers = [m for m in cluster_markers(results) if m in summary.columns]
    if markers and "metacluster" in summary.columns:
        medians = summary.set_index("metacluster")[markers]
        caption = "Median marker values per metacluster (all events clustered)."
        job(
            "heatmap_figure",
            (medians, summary),
            {},
            folder / "clusters_heatmap",
            formats,
            put(caption),
            module="cytokit.cluster",
        )
    for origin, caption in (
        ("all", "Share of each sample's events in each metacluster."),
        ("donor", "Share of each sample's donor events in each metacluster."),
    ):
        if (table["origin"] == origin).any():
            job(
                "abundance_figure",
                (table,),
                {"origin": origin},
                folder / f"clusters_abundance_{origin}",
                formats,
                put(caption),
                module="cytokit.cluster",
            )
