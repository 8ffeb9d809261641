"""The plots and the HTML report of a study analysis, rebuilt from its stored results.

``build_report(OUT)`` reads the results folder (`cytokit.results.load_results`;
no FCS file, no study folder needed) and writes into it:

``plots/cohort_donor_per_ul.{png,svg}``, ``plots/cohort_donor_pct.{png,svg}``
    Every patient's persistence, coloured by stratum (`cytokit.plots.cohort_figure`).
``plots/<patient>_persistence.{png,svg}``, ``plots/<patient>_chimerism.{png,svg}``
    Per patient: donor cells/µL by population (% donor when the study has no
    absolute counts) and donor chimerism (`cytokit.plots`).
``plots/qc/<sample>.png``
    Per sample: every gate over its parent's events (PNG only: the dots are
    bitmaps in any format, and SVG would double the time for no gain).
``report.html``
    One self-contained page (`cytokit.reportpage`): images embedded as PNG
    data URIs, CSS inline, no script, no external resource.

A patient id becomes a file name as is when it is made of letters, digits,
``.``, ``_`` and ``-``; otherwise unsafe characters are replaced and a short
hash of the id keeps names distinct. Every file is written atomically; the
same results give the same bytes (figures are rendered deterministically and
the page holds no time of its own: the analysis time shown is study.json's).
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

from cytokit._io import atomic_write_bytes, atomic_write_text
from cytokit._outdir import output_folder
from cytokit.errors import CytokitError
from cytokit.results import Results, load_results

__all__ = ["REQUIRED_FILES", "ReportPlots", "build_report", "check_results_dir", "write_plots"]

#: Files a results folder must have for a report (the rest may be missing or empty).
REQUIRED_FILES = ("study.json", "samples.csv", "chimerism.csv")


def check_results_dir(path: str | Path) -> Path:
    """`path` if it is a results folder, else a `CytokitError` naming what is missing."""
    path = Path(path)
    if not path.exists():
        raise CytokitError(f"{path}: no such folder; give the --out folder of `cytokit analyze`")
    if not path.is_dir():
        raise CytokitError(
            f"{path}: not a folder; give the --out folder of `cytokit analyze`, not a file in it"
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CytokitError(
            f"{path}: not a cytokit results folder (missing {', '.join(missing)}); "
            "run `cytokit analyze STUDY --out " + str(path) + "` first"
        )
    return path


def file_stem(text: str) -> str:
    """A file name for an id: itself when safe, else a sanitised form plus a short hash."""
    text = str(text)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", text):
        return text
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60] or "id"
    return f"{safe}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class ReportPlots:
    """The figures of a report as PNG bytes (embedded in the page) and the files written.

    Attributes
    ----------
    cohort : dict of str to bytes
        Measure → PNG.
    persistence, chimerism : dict of str to bytes
        Patient → PNG.
    qc : dict of str to bytes
        QC sample id (qc.csv ``sample``) → PNG.
    qc_missing : dict of str to str
        Sample id → why its QC plot is missing.
    files : list of Path
    """

    cohort: dict[str, bytes] = field(default_factory=dict)
    persistence: dict[str, bytes] = field(default_factory=dict)
    persistence_measure: dict[str, str] = field(default_factory=dict)
    chimerism: dict[str, bytes] = field(default_factory=dict)
    qc: dict[str, bytes] = field(default_factory=dict)
    qc_missing: dict[str, str] = field(default_factory=dict)
    clusters: list[tuple[bytes, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def patients_of(results: Results) -> list[str]:
    """Patient ids in the study's order (study.json), then any others in the tables."""
    ids = [str(p.get("id")) for p in results.study.get("patients", []) if p.get("id") is not None]
    for frame in (results.samples, results.chimerism, results.failures):
        if frame is not None and "patient" in frame.columns:
            ids += [str(x) for x in frame["patient"].dropna()]
    return list(dict.fromkeys(ids))


def populations_of(results: Results) -> list[str]:
    names = [str(p) for p in results.study.get("populations", {})]
    if "population" in results.chimerism.columns:
        names += [str(p) for p in results.chimerism["population"].dropna()]
    return list(dict.fromkeys(names))


def min_events_of(results: Results) -> int:
    qc = results.study.get("qc") or {}
    value = qc.get("min_events")
    if value is None:
        value = ((results.study.get("config") or {}).get("qc") or {}).get("min_events", 50)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 50


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

    me = min_events_of(results)
    pops = populations_of(results)
    chim, samples, infusions, trends = (
        results.chimerism,
        results.samples,
        results.infusions,
        results.trends,
    )
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
            {"infusions": infusions, "populations": pops},
            folder / f"{stem}_chimerism",
            formats,
            functools.partial(got.chimerism.__setitem__, pid),
        )
    if qc and not results.qc.empty and "sample" in results.qc.columns:
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
    _cluster_jobs(results, folder, formats, got, job)
    for j, images in zip(jobs, _render_all(jobs, workers), strict=True):
        for fmt, data in zip(("png", *(f for f in j.formats if f != "png")), images, strict=True):
            if fmt in j.formats:
                got.files.append(atomic_write_bytes(j.stem.with_name(f"{j.stem.name}.{fmt}"), data))
        j.put(images[0])
    return got


def _day(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(v)) if math.isfinite(v) and v == int(v) else f"{v:g}"


def cluster_markers(results: Results) -> list[str]:
    """The clustering markers: study.json ``clustering.markers`` (or ``markers.clustering``)."""
    info = results.study.get("clustering") or {}
    markers = info.get("markers") or (results.study.get("markers") or {}).get("clustering") or []
    return [str(m) for m in markers]


def cluster_tables(results: Results) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """clusters.csv, cluster_summary.csv and cluster_matching.csv (empty when missing)."""

    def get(name: str) -> pd.DataFrame:
        frame = getattr(results, name, None)
        return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()

    return get("clusters"), get("cluster_summary"), get("cluster_matching")


def _cluster_jobs(results: Results, folder: Path, formats, got: ReportPlots, job) -> None:
    """The clustering's heatmap and abundance plots, drawn by `cytokit.cluster` itself."""
    table, summary, _ = cluster_tables(results)
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


def build_report(
    results_or_out_dir: Results | str | Path,
    out_dir: str | Path | None = None,
    *,
    formats: tuple[str, ...] = ("png", "svg"),
    qc: bool = True,
) -> Path:
    """Write the plots and ``report.html`` of an analysis; return the report's path.

    Parameters
    ----------
    results_or_out_dir : Results or path
        The `Results` of `cytokit.analyze` (written to a folder: QC plots read
        ``qc/*.npz`` there), or a results folder (read with `load_results`).
    out_dir : path, optional
        Where to write ``plots/`` and ``report.html`` (default: the results folder).
    formats : tuple of {"png", "svg"}
        File formats of the cohort and patient plots.
    qc : bool
        Draw the QC plots of every sample.

    Returns
    -------
    Path
        ``out_dir/report.html``.

    Raises
    ------
    CytokitError
        The folder is not a results folder (naming the files missing), a file
        of it cannot be read, `out_dir` is a file or holds a folder named
        ``report.html``, or in-memory results were given without `out_dir`.
    """
    from cytokit.reportpage import report_html

    if isinstance(results_or_out_dir, Results):
        results = results_or_out_dir
    else:
        results = load_results(check_results_dir(results_or_out_dir))
    out = Path(out_dir) if out_dir is not None else results.out
    if out is None:
        raise CytokitError(
            "these results were not written to a folder; give out_dir= to build_report"
        )
    output_folder(out, files=("report.html",), folders=("plots", "plots/qc"))
    plots = write_plots(results, out, formats=formats, qc=qc)
    page = report_html(results, plots)
    return atomic_write_text(out / "report.html", page)
