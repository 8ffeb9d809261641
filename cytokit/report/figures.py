"""The plots of the report: one job per figure, rendered in worker processes, written atomically.

`write_plots` writes into ``OUT/plots`` (see `cytokit.report.build`): the
cohort plots and each patient's persistence and chimerism (SVG drawn without
matplotlib, `cytokit.plots.cohort_svg` and `cytokit.plots.persistence_svg`), each
sample's QC
plot (`cytokit.plots.qc_panels`: a PNG of 2-D histograms and the SVG drawn over
it) and the clustering's heatmap and abundance plots, and
returns them as `ReportPlots` for the page. A patient id becomes a file name
as is when safe (`file_stem`).

A figure is rendered only when what it is drawn from changed: each job has a
key, the SHA-256 of everything it is drawn from (its builder, its tables and
arguments, a QC plot's ``qc/<sample>.npz`` file, cytokit's version and source
(`cytokit._source.source_digest`), matplotlib's version), and
``plots/manifest.json`` keeps, per figure, the key and the SHA-256 of each file
written. A job whose key and files match is skipped; a changed sample
re-renders only its own QC plot and its patient's plots (and the cohort's).
Figures are written as they are drawn and the manifest is saved every few
seconds meanwhile, so a build cut short (Ctrl-C, a full disk) resumes.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cytokit._io import atomic_write_text, stat_key, write_if_changed
from cytokit.errors import CytokitError
from cytokit.report.contents import (
    ReportPlots,
    cluster_markers,
    drug_courses_of,
    min_events_of,
    patients_of,
    populations_of,
    read_cluster_tables,
)

if TYPE_CHECKING:  # pragma: no cover - the figures' workers need not import the results
    from cytokit.analysis.results import Results

__all__ = ["MANIFEST", "file_stem", "workers_started", "write_plots"]

#: The figures' keys and files, relative to the output folder.
MANIFEST = "plots/manifest.json"


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


def _qc_file(out: Path | None, sample: str) -> tuple[Path | None, str]:
    if out is None:
        return None, "the results were not written to a folder"
    path = out / "qc" / f"{sample}.npz"
    if not path.is_file():
        return None, f"qc/{sample}.npz is missing (run cytokit analyze again to write it)"
    if _cached_digest(path) is not None:
        return path, ""  # read by an earlier build, and not changed since
    try:
        with np.load(path, allow_pickle=False) as data:
            data.files  # noqa: B018 - a file that is not an npz archive is said here
    except (OSError, ValueError) as exc:
        return None, f"qc/{sample}.npz cannot be read ({exc})"
    return path, ""


#: SHA-256 of the files read and written, by size, times and inode, kept from build to
#: build: an unchanged file is not read again to be hashed (the qc/*.npz of a 1,000-sample
#: study are ~150 MB).
DIGESTS = "plots/digests.json"
_DIGEST_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "_DIGEST_CACHE", default=None
)


def _cached_digest(path: Path) -> str | None:
    cache = _DIGEST_CACHE.get()
    if cache is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    where = os.path.abspath(path)
    entry = cache["before"].get(where)
    if entry is not None and entry[:4] == stat_key(st):
        cache["now"][where] = entry
        return entry[4]
    return None


@contextlib.contextmanager
def _digest_cache(out: Path) -> Iterator[None]:
    """Within the block `_file_digest` reuses the digests of ``plots/digests.json`` whose
    file has the size, times and inode recorded; the digests used are saved."""
    base = os.path.abspath(out)
    try:
        data = json.loads((out / DIGESTS).read_text(encoding="utf-8"))
        before = {
            os.path.join(base, k): v  # an absolute k stays as it is
            for k, v in data.get("files", {}).items()
            if isinstance(v, list) and len(v) == 5
        }
    except (OSError, ValueError, AttributeError):
        before = {}
    cache = {"before": before, "now": {}}
    token = _DIGEST_CACHE.set(cache)
    try:
        yield
    finally:
        _DIGEST_CACHE.reset(token)
    files = {}
    for where, entry in cache["now"].items():
        p = Path(where)
        files[p.relative_to(base).as_posix() if p.is_relative_to(base) else where] = entry
    text = json.dumps({"version": 1, "files": files}, indent=0, sort_keys=True) + "\n"
    write_if_changed(out / DIGESTS, text.encode("utf-8"))


@dataclass(frozen=True)
class _QCPoints:
    """The gate points of ``qc/<sample>.npz`` (or, with `acquisition`, its acquisition-QC
    time bins), read when the figure is rendered (in the worker): a figure whose key did
    not change never loads its data."""

    path: Path
    digest: str
    acquisition: bool = False

    def load(self) -> dict[str, np.ndarray] | pd.DataFrame:
        with np.load(self.path, allow_pickle=False) as data:
            if not self.acquisition:
                return {k[5:]: data[k] for k in data.files if k.startswith("gate:")}
            frame = pd.DataFrame(data["acq:bins"], columns=[str(c) for c in data["acq:columns"]])
            frame["time_unit"] = str(data["acq:time_unit"])
            return frame


#: Values whose repr is their whole content, distinct between types (1, "1", 1.0, True).
_PLAIN = (str, int, float, bool, type(None))


def _feed(h, value) -> None:
    """Feed `value` to the hash `h` unambiguously (tables by content, not by object).

    A table is fed as its column names and types and the repr of its values (float reprs
    round-trip, so they are the values exactly); containers of plain values as one repr.
    """
    if isinstance(value, pd.DataFrame):
        head = (len(value), [str(c) for c in value.columns], [str(t) for t in value.dtypes])
        h.update(b"F" + repr(head).encode())
        h.update(repr(value.to_numpy(dtype=object).tolist()).encode())
    elif isinstance(value, pd.Series):
        h.update(b"S" + str(value.dtype).encode() + b"%d|" % len(value))
        data = value.to_numpy()
        if data.dtype.kind in "biufcmM":
            h.update(np.ascontiguousarray(data).tobytes())
        else:  # text and mixed columns: each value's repr, which tells 1 from "1" and 1.0
            h.update(repr(data.tolist()).encode())
    elif isinstance(value, np.ndarray):
        h.update(b"A" + str(value.dtype).encode() + str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, _QCPoints):
        h.update(b"Q" + value.digest.encode() + (b"A" if value.acquisition else b"P"))
    elif isinstance(value, dict):
        if all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in value.items()):
            h.update(b"d" + repr(sorted(value.items())).encode())
            return
        h.update(b"D%d" % len(value))
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        if all(isinstance(v, _PLAIN) for v in value):
            h.update(b"l" + repr(list(value)).encode())
            return
        h.update(b"L%d" % len(value))
        for v in value:
            _feed(h, v)
    else:
        h.update(b"V" + repr((type(value).__name__, value)).encode())


def _file_digest(path: Path) -> str:
    cached = _cached_digest(path)
    if cached is not None:
        return cached
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return _remember(path, st, h.hexdigest())


def _bytes_digest(path: Path, data: bytes) -> str:
    """SHA-256 of `data`, just written to `path`: `_file_digest` without reading it back."""
    return _remember(path, path.stat(), hashlib.sha256(data).hexdigest())


def _remember(path: Path, st: os.stat_result, digest: str) -> str:
    """`digest` of `path` as it stands (`st`), kept in `_digest_cache`'s record."""
    cache = _DIGEST_CACHE.get()
    if cache is not None:
        cache["now"][os.path.abspath(path)] = [*stat_key(st), digest]
    return digest


@functools.cache
def _matplotlib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("matplotlib")
    except PackageNotFoundError:  # pragma: no cover - matplotlib is a dependency
        return "?"


@dataclass(frozen=True)
class _Job:
    """One figure to render: ``module.builder(*args, **kwargs)`` (a matplotlib figure, or an
    object with ``to_bytes(format)`` such as a QC figure) in each of `formats`, the first
    the one the pages show."""

    module: str
    builder: str
    args: tuple
    kwargs: dict
    stem: Path
    formats: tuple[str, ...]
    put: Callable[[bytes], None] = field(compare=False, repr=False)
    #: Drawn first (a QC plot: the pages inline its SVG, put in once it is drawn).
    early: bool = False

    def key(self) -> str:
        """SHA-256 of everything the figure is drawn from (and the formats, cytokit's
        version and source, and matplotlib's version: other code may draw differently)."""
        from cytokit._source import source_digest
        from cytokit._version import __version__

        drawn_by = f"{__version__}|{source_digest()}|{_matplotlib_version()}"
        h = hashlib.sha256(f"{drawn_by}|{self.module}.{self.builder}".encode())
        _feed(h, [self.args, self.kwargs, list(self.formats)])
        return h.hexdigest()

    def files(self) -> list[Path]:
        return [self.stem.with_name(f"{self.stem.name}.{f}") for f in self.formats]


def _render(job: _Job) -> list[bytes]:
    """The job's figure as bytes, in each of its formats (runs in a worker)."""
    import importlib

    args = tuple(a.load() if isinstance(a, _QCPoints) else a for a in job.args)
    fig = getattr(importlib.import_module(job.module), job.builder)(*args, **job.kwargs)
    fmts = job.formats
    if hasattr(fig, "to_bytes"):
        return [fig.to_bytes(fmt) for fmt in fmts]
    from cytokit.plots import figure_bytes

    return [figure_bytes(fig, fmt) for fmt in fmts]


#: Fewest figures worth starting worker processes for (~1 s to start and import; a
#: figure takes ~5-15 ms, the clustering's heatmap ~0.15 s): fewer are drawn here.
_POOL_MIN_JOBS = 100

#: Builders of figures drawn from the whole study rather than one patient or sample.
_LONG = frozenset({"abundance_svg", "heatmap_svg", "cohort_svg"})


def _warm() -> None:
    """A worker's first task: import what the figures are drawn with (while the report's
    process computes the figures' keys)."""
    import importlib

    for module in ("cytokit.plots.qc", "cytokit.plots.persistence_svg"):
        importlib.import_module(module)


def _pool_size(workers: int | None, jobs: int) -> int:
    """Worker processes for `jobs` figures: 0 to draw them here (one core, few figures, or
    a main module the workers cannot import)."""
    from cytokit.engine._workers import _main_is_importable, default_workers

    n = min(default_workers() if workers is None else workers, jobs)
    return n if n > 1 and jobs >= _POOL_MIN_JOBS and _main_is_importable() else 0


@contextlib.contextmanager
def _worker_pool(n: int) -> Iterator:
    """`n` worker processes, started at once (each importing the plotting modules)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with cf.ProcessPoolExecutor(n, mp_context=mp.get_context(method)) as pool:
        for _ in range(n):
            pool.submit(_warm)
        yield pool


_EARLY_POOL: contextvars.ContextVar = contextvars.ContextVar("_EARLY_POOL", default=None)


@contextlib.contextmanager
def workers_started(out: str | Path, figures: int) -> Iterator[None]:
    """Within the block, `write_plots` into `out` draws on worker processes started now,
    when this is a first build (no manifest in `out`) of at least `_POOL_MIN_JOBS`
    `figures` on several cores: they start and import while the results are loaded."""
    n = 0 if _read_manifest(Path(out)) else _pool_size(None, figures)
    if not n:
        yield
        return
    with _worker_pool(n) as pool:
        token = _EARLY_POOL.set(pool)
        try:
            yield
        finally:
            _EARLY_POOL.reset(token)


def _render_all(
    jobs: list[_Job],
    workers: int | None,
    meanwhile: Callable[[], None] | None = None,
    pool=None,
    submitted: Callable[[], None] | None = None,
) -> Iterator[tuple[int, list[bytes]]]:
    """Render `jobs`, yielding ``(index, bytes)`` of each as soon as it is drawn (so that
    they are written and forgotten one by one), on worker processes (`pool`, or started
    here) when there are several cores and enough jobs to repay starting them.

    `submitted` runs here once the jobs are handed to the workers, then `meanwhile`,
    while they draw (before any is drawn when they are all drawn here); the `_Job.early`
    ones are drawn first. Figures are built inside the workers from the (small) tables
    and QC points the jobs carry; their output does not depend on the process, so the
    bytes are those of a serial run.
    """
    early = [i for i, j in enumerate(jobs) if j.early]
    # then the figures of the whole study (tenths of a second on a large one), so that
    # no worker is left drawing one at the end while the other is idle
    late = sorted(
        (i for i, j in enumerate(jobs) if not j.early),
        key=lambda i: jobs[i].builder not in _LONG,
    )
    order = early + late
    n = pool._max_workers if pool is not None else _pool_size(workers, len(order))
    if not n or len(order) < _POOL_MIN_JOBS:
        for then in (submitted, meanwhile):
            if then is not None:
                then()
        yield from ((i, _render(jobs[i])) for i in order)
        return
    payload = [dataclasses.replace(jobs[i], put=None) for i in order]  # callbacks stay here
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(_worker_pool(n))
        # in chunks: most figures take milliseconds, about what sending one costs
        chunk = max(1, min(32, len(payload) // (8 * n)))
        drawn = zip(order, pool.map(_render, payload, chunksize=chunk), strict=True)
        for then in (submitted, meanwhile):
            if then is not None:
                then()
        yield from drawn


def write_plots(
    results: Results,
    out: str | Path,
    *,
    formats: tuple[str, ...] = ("png",),
    qc: bool = True,
    workers: int | None = None,
    meanwhile: Callable[[ReportPlots], None] | None = None,
) -> ReportPlots:
    """Render every plot of the report and write them into ``out/plots``.

    Parameters
    ----------
    results : Results
    out : path
        The folder to write ``plots/`` into.
    formats : tuple of {"png", "svg"}
        Kept for callers of earlier versions, whose figures were PNG with SVG copies on
        request; unused: every figure is now drawn as SVG (`cytokit.plots.cohort_svg`,
        `cytokit.plots.persistence_svg`, `cytokit.plots.clusters_svg`), a QC plot as a
        PNG of histograms and the SVG drawn over it, an acquisition-QC plot as a PNG.
    qc : bool
        Render the QC plots (the bulk of the time on large studies).
    workers : int, optional
        Processes rendering figures (default: the cores available; 1 renders here).
    meanwhile : callable, optional
        Called here with the `ReportPlots` (every figure's path known, none necessarily
        drawn yet) while worker processes draw them, such as writing the pages that
        link to them; the figures are all written when `write_plots` returns.

    Returns
    -------
    ReportPlots
    """
    out = Path(out)
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    with _digest_cache(out):
        return _write_plots(results, out, folder, qc, workers, meanwhile)


def _write_plots(
    results: Results, out: Path, folder: Path, qc, workers, meanwhile=None
) -> ReportPlots:
    got = ReportPlots()
    jobs: list[_Job] = []

    def job(builder, args, kwargs, stem, fmts, put, module="cytokit.plots", early=False):
        jobs.append(_Job(module, builder, args, kwargs, stem, tuple(fmts), put, early))

    _cohort_jobs(results, folder, got, job)
    _patient_jobs(results, folder, got, job)
    if qc:
        _qc_jobs(results, folder, got, job)
    _acquisition_jobs(results, folder, got, job)
    _cluster_jobs(results, folder, got, job)
    before = _read_manifest(out)
    with contextlib.ExitStack() as stack:
        # a first build draws every figure: its workers start now (or were started by
        # `workers_started`), and import what they draw with while the keys are computed
        pool = _EARLY_POOL.get() if workers is None and not before else None
        n = 0 if before or pool is not None else _pool_size(workers, len(jobs))
        pool = stack.enter_context(_worker_pool(n)) if n else pool
        return _draw(out, jobs, before, workers, got, meanwhile, pool)


def _draw(out: Path, jobs: list[_Job], before: dict, workers, got, meanwhile, pool):
    """Draw the `jobs` whose figures are not kept, write them and the manifest."""
    keys: list[str] = []
    if before:  # the keys say which figures are kept
        keys += [j.key() for j in jobs]
        todo = [
            i
            for i, (j, k) in enumerate(zip(jobs, keys, strict=True))
            if not _kept(out, j, k, before)
        ]
    else:  # a first build draws them all: their keys are computed while they are drawn
        todo = list(range(len(jobs)))
    for j in jobs:  # every figure's path, known before it is drawn
        j.put(_shown_of(j))
    done: dict[str, dict] = {}
    saved = time.monotonic()
    hook = None if meanwhile is None else functools.partial(meanwhile, got)

    def keys_meanwhile() -> None:
        if not keys:
            keys.extend(j.key() for j in jobs)

    drawing = _render_all([jobs[i] for i in todo], workers, hook, pool, keys_meanwhile)
    for k, images in drawing:
        i = todo[k]
        j = jobs[i]
        files = {}
        for fmt, data in zip(j.formats, images, strict=True):
            # no fsync: the manifest holds each file's SHA-256, and a lost file is drawn again
            path = j.stem.with_name(f"{j.stem.name}.{fmt}")
            write_if_changed(path, data, durable=False)
            files[_rel(out, path)] = _bytes_digest(path, data)
        done[_rel(out, j.stem)] = {
            "key": keys[i],
            "files": files,
        }
        if time.monotonic() - saved > _SAVE_SECONDS:  # a build cut short resumes from here
            _write_manifest(out, {**before, **done})
            saved = time.monotonic()
    rendered = set(todo)
    manifest = {}
    for i, (j, k) in enumerate(zip(jobs, keys, strict=True)):
        files = j.files()
        got.files.extend(files)
        name = _rel(out, j.stem)
        manifest[name] = done[name] if i in rendered else {"key": k, "files": before[name]["files"]}
    got.rendered, got.skipped = len(rendered), len(jobs) - len(rendered)
    _remove_stale(out, before, manifest)
    _write_manifest(out, manifest)
    return got


#: Seconds between saves of the manifest while figures are drawn.
_SAVE_SECONDS = 10.0


def _write_manifest(out: Path, figures: dict) -> None:
    text = json.dumps({"version": 1, "figures": figures}, indent=1, sort_keys=True) + "\n"
    path = out / MANIFEST
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def _shown_of(job: _Job) -> Path:
    """The file the pages show: the job's first format."""
    return job.files()[0]


def _rel(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix()


def _read_manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        figures = data.get("figures") if data.get("version") == 1 else None
        return figures if isinstance(figures, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}  # none yet, or unreadable: every figure is rendered


def _kept(out: Path, job: _Job, key: str, before: dict) -> bool:
    """Whether the job's files are there as an earlier build wrote them for the same key."""
    entry = before.get(_rel(out, job.stem))
    if not isinstance(entry, dict) or entry.get("key") != key:
        return False
    files = entry.get("files")
    if not isinstance(files, dict) or set(files) != {_rel(out, f) for f in job.files()}:
        return False
    for name, digest in files.items():
        path = out / name
        if not path.is_file() or _file_digest(path) != digest:
            return False  # removed or edited since: written again
    return True


def _remove_stale(out: Path, before: dict, now: dict) -> None:
    """Delete the figure files an earlier build wrote and this one did not (a patient or
    sample no longer in the results, a format no longer asked for)."""
    keep = {name for entry in now.values() for name in entry["files"]}
    for entry in before.values():
        files = entry.get("files") if isinstance(entry, dict) else None
        for name in files if isinstance(files, dict) else ():
            path = out / name
            if name not in keep and path.resolve().is_relative_to((out / "plots").resolve()):
                path.unlink(missing_ok=True)


def _cohort_jobs(results: Results, folder: Path, got: ReportPlots, job) -> None:
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
                "cohort_svg",
                (chim,),
                kwargs,
                folder / f"cohort_{measure}",
                ("svg",),
                functools.partial(got.cohort.__setitem__, measure),
                module="cytokit.plots.cohort_svg",
            )


def _mine(frame: pd.DataFrame | None, pid: str) -> pd.DataFrame | None:
    """The patient's rows of `frame` (all of it without a patient column): a patient's
    figures are drawn from, and keyed by, that patient's rows only."""
    if frame is None or "patient" not in frame.columns:
        return frame
    return frame[frame["patient"].astype(str) == pid]


#: The module drawing each patient's figures: SVG straight from the tables, milliseconds
#: a figure (matplotlib's versions, `cytokit.plots.persistence`, take ~0.1-0.3 s).
_PATIENT_FIGURES = "cytokit.plots.persistence_svg"


def _patient_jobs(results: Results, folder: Path, got: ReportPlots, job) -> None:
    """Per patient: persistence over time and chimerism per population, drug courses shaded,
    as SVG (vector, and a few kB)."""
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
        rows = _with_failed_files(rows, _mine(results.failures, pid))
        stem = file_stem(pid)
        measure = "donor_per_ul" if _has_absolute(chim, pid) else "donor_pct"
        kwargs = {
            "measure": measure,
            "samples": _mine(samples, pid),
            "infusions": _mine(infusions, pid),
            "trends": _mine(trends, pid),
            "courses": _mine(courses, pid),
            "min_events": me,
            "populations": pops,
        }
        job(
            "persistence_svg",
            (rows, pid),
            kwargs,
            folder / f"{stem}_persistence",
            ("svg",),
            functools.partial(got.persistence.__setitem__, pid),
            module=_PATIENT_FIGURES,
        )
        got.persistence_measure[pid] = measure
        job(
            "chimerism_svg",
            (rows, pid),
            {
                "infusions": _mine(infusions, pid),
                "courses": _mine(courses, pid),
                "populations": pops,
            },
            folder / f"{stem}_chimerism",
            ("svg",),
            functools.partial(got.chimerism.__setitem__, pid),
            module=_PATIENT_FIGURES,
        )


def _with_failed_files(rows: pd.DataFrame, failed: pd.DataFrame | None) -> pd.DataFrame:
    """A patient's chimerism rows and, for each file of their tube that failed, a row per
    population with no value (status ``marker_failed``): the plots mark its day as failed
    and break the line there, rather than joining the days around it."""
    from cytokit.analysis.chimerism import MARKER_FAILED

    if failed is None or failed.empty or "day" not in failed.columns:
        return rows
    tubes = set(rows["tube"].astype(str)) if "tube" in rows.columns else None
    if tubes is not None and "tube" in failed.columns:
        failed = failed[failed["tube"].astype(str).isin(tubes)]
    first = rows.iloc[0]
    extra = [
        {
            "patient": first["patient"],
            "day": day,
            "file": file,
            "population": pop,
            "sample_type": first.get("sample_type", ""),
            "status": MARKER_FAILED,
        }
        for day, file in zip(failed["day"], failed["file"], strict=True)
        for pop in dict.fromkeys(rows["population"].astype(str))
    ]
    if not extra:
        return rows
    return pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)


def _qc_jobs(results: Results, folder: Path, got: ReportPlots, job) -> None:
    """Per sample: the QC plot from its stored points (the histograms' PNG and the SVG over
    them, milliseconds each), drawn before the pages, which inline the SVG; missing points
    noted."""
    panel = ((results.study.get("config") or {}).get("panel")) or {}
    markers = {str(ch): str(m) for m, ch in panel.items() if isinstance(ch, str)}
    if not results.qc.empty and "sample" in results.qc.columns:
        counts = results.counts
        # each file's counts, split once (selecting them file by file took a second on a
        # 1,000-sample study)
        by_file = (
            dict(tuple(counts.groupby(counts["file"].astype(str), sort=False)))
            if "file" in counts.columns
            else None
        )
        for sample, rows in results.qc.groupby(results.qc["sample"].astype(str), sort=True):
            file = str(rows.iloc[0].get("file", sample))
            try:  # the name qc.csv records; none where it records one for several files
                stem = results.qc_file(file).stem if results.out is not None else sample
            except CytokitError as exc:
                got.qc_missing[sample] = str(exc)
                continue
            path, why = _qc_file(results.out, stem)
            if path is None:
                got.qc_missing[sample] = why
                continue
            points = _QCPoints(path, _file_digest(path))
            mine = counts if by_file is None else by_file.get(file, counts.iloc[0:0])
            day = rows.iloc[0].get("day")
            title = f"{rows.iloc[0].get('patient', '')}, day {_day(day)}: {file}"
            stem = file_stem(sample)
            job(
                "qc_panels",
                (rows, points),
                {"counts": mine, "title": title, "markers": markers, "image": f"{stem}.png"},
                folder / "qc" / stem,
                ("png", "svg"),
                functools.partial(got.qc.__setitem__, sample),
                module="cytokit.plots.qc",
                early=True,  # the page inlines its SVG
            )


def _day(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(v)) if math.isfinite(v) and v == int(v) else f"{v:g}"


def _cluster_jobs(results: Results, folder: Path, got: ReportPlots, job) -> None:
    """The clustering's heatmap and abundance plots (`cytokit.plots.clusters_svg`)."""
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
            "heatmap_svg",
            (medians, summary),
            {},
            folder / "clusters_heatmap",
            ("svg",),
            put(caption),
            module="cytokit.plots.clusters_svg",
        )
    from cytokit.plots.clusters_svg import PER_PATIENT_MAX

    many = table["patient"].nunique() > PER_PATIENT_MAX if "patient" in table else False
    how = (
        " A panel per metacluster: a thin line per patient, the median of the patients "
        "sampled that day in black."
        if many
        else " A panel per patient, a line per metacluster."
    )
    least = min_events_of(results)
    for origin, caption in (
        ("all", "Share of each sample's events in each metacluster." + how),
        (
            "donor",
            "Share of each sample's donor events in each metacluster."
            + how
            + f" A sample with fewer than {least} donor events is not drawn.",
        ),
    ):
        mine = table[table["origin"] == origin]
        if len(mine) and (origin == "all" or (mine["total"] >= least).any()):
            job(
                "abundance_svg",
                (table,),
                {"origin": origin, "min_total": least if origin != "all" else 0},
                folder / f"clusters_abundance_{origin}",
                ("svg",),
                put(caption),
                module="cytokit.plots.clusters_svg",
            )


def acquisition_files(results: Results) -> list[tuple[str, str]]:
    """``(file, verdict)`` of every file acquisition QC ran on: those it failed first
    (``failures.csv``; their plot says why), then the samples with a verdict."""
    out = [(f, "fail") for f in results.qc_failed_files()]
    s = results.samples
    if s is not None and not s.empty and "qc_verdict" in s:
        mine = s[s["qc_verdict"].notna()]
        out += [(str(f), str(v)) for f, v in zip(mine["file"], mine["qc_verdict"], strict=True)]
    return out


def _qc_reason(results: Results, file: str) -> str:
    """The verdict reason of `file`: its ``qc_reason``, or its failure's reason."""
    s = results.samples
    if s is not None and not s.empty and "qc_reason" in s:
        got = s.loc[s["file"] == file, "qc_reason"]
        if len(got) and isinstance(got.iloc[0], str):
            return got.iloc[0]
    f = results.failures
    if f is not None and not f.empty and "reason" in f:
        got = f.loc[f["file"] == file, "reason"]
        if len(got):
            return str(got.iloc[0]).removeprefix("acquisition QC failed: ")
    return ""


def _no_bins_why(results: Results, file: str) -> str:
    """Why `file` has no time bins: the verdict's reason where a time check asked for did
    not run (it says why), else the settings left the rate and signal checks out."""
    reason = _qc_reason(results, file)
    if "did not run" in reason or "no check ran" in reason:
        return reason
    return "the study's [acquisition_qc] checks leave them out"


def _acquisition_jobs(results: Results, folder: Path, got: ReportPlots, job) -> None:
    """Per file that went through acquisition QC: its event rate and signals over time
    (`cytokit.plots.acquisition_figure`), drawn from ``qc/<sample>.npz`` like a QC plot,
    so an unchanged rebuild draws none of them."""
    from cytokit.analysis.results import sample_id

    for file, verdict in acquisition_files(results):
        try:
            stem = results.qc_file(file).stem if results.out is not None else sample_id(file)
        except CytokitError as exc:  # a QC file an older cytokit wrote for several files
            got.acquisition_missing[file] = str(exc)
            continue
        path, why = _qc_file(results.out, stem)
        if path is not None:
            with np.load(path, allow_pickle=False) as data:
                lacking = sorted({"acq:bins", "acq:columns", "acq:time_unit"} - set(data.files))
                binned = not lacking and data["acq:columns"].size > 0
            if lacking:
                path, why = None, f"{path.name} has no {', '.join(lacking)}"
        if path is None:
            got.acquisition_missing[file] = why
            continue
        try:
            mine = results.acquisition_ranges(file)
        except (CytokitError, KeyError) as exc:
            got.acquisition_missing[file] = str(exc)
            continue
        job(
            "acquisition_figure",
            (_QCPoints(path, _file_digest(path), acquisition=True), mine),
            # a file without time bins: its plot says why on its own
            {"title": f"{file}: {verdict}", "why": "" if binned else _no_bins_why(results, file)},
            folder / "acquisition" / file_stem(sample_id(file)),
            ("png",),
            functools.partial(got.acquisition.__setitem__, file),
        )
