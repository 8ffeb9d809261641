"""`analyze`: the whole job on a study folder.

``cytokit.analyze(study, out)`` checks the study (`cytokit.study.load_study`,
every problem in one `StudyError`), gates every file once with the batch
engine (`cytokit.engine`) running the per-sample task
(`cytokit.analysis.per_sample`: counts, donor-marker histograms, phenotype
values, QC data per file, stored in ``OUT/results.sqlite`` so a rerun
resumes), then computes the study tables from those payloads
(`cytokit.analysis.cohort.study_tables`: per patient, donor-marker thresholds
calibrated per patient, chimerism, absolute counts, phenotype
(`cytokit.analysis.per_patient`); for the cohort, trends and clustering),
checks the tables' invariants (`cytokit.analysis.invariants`: a violation is a
bug and raises instead of writing a wrong table) and writes them into ``OUT``
(the results contract: `cytokit.analysis.results`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cytokit._outdir import not_under_a_file, output_folder, writing_into
from cytokit.analysis.cohort import study_tables
from cytokit.analysis.per_sample import MeasureTask
from cytokit.analysis.results import (
    CLINICAL_TABLES,
    TABLES,
    Results,
    load_results,
    write_results,
)
from cytokit.errors import CytokitError, StudyError
from cytokit.parquet import require_pyarrow, suffixes
from cytokit.study.folder import Study, check_same_content, load_study
from cytokit.study.tubes import DEFAULT_TUBE

__all__ = [
    "Results",
    "analyze",
    "check_output",
    "load_results",
    "make_task",
    "make_tasks",
    "threshold_parent",
]


def threshold_parent(strategy, paths) -> str:
    """The deepest gate that is an ancestor of every population in `paths`, as a path.

    Raises
    ------
    StudyError
        When the populations share no ancestor gate (give ``[chimerism] parent``).
    """

    def chain(key: str) -> list[str]:
        out, pop = [], strategy.population(key)
        while pop.parent is not None:
            pop = strategy.by_id(pop.parent)
            out.append(pop.id)
        return out[::-1]  # root first

    chains = [chain(p) for p in paths]
    common: list[str] = []
    for level in zip(*chains, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    if not chains or not common:
        raise StudyError(
            "the study populations share no parent gate to place the donor-marker threshold "
            'on; set [chimerism] parent = "<gate path>" in study.toml (e.g. live lymphocytes)'
        )
    return strategy.by_id(common[-1]).path


def kernels_need_compiling(*, statistics: bool = False, acquisition_qc: bool = False) -> bool:
    """Whether the first file of a run will compile kernels in this installation.

    False once Numba's on-disk cache holds the fused gating kernel (every later
    run loads it in well under a second) and, for a run that needs them, the
    statistics pass (`cytokit gate`'s ``statistics.csv``) and acquisition QC's
    row scan: a run that first needs one of those compiles it for some seconds.
    """
    from cytokit.kernels import _config, _statpass, acquisition, fused

    needed = [fused._evaluate]
    if statistics:
        needed.append(_statpass._pass)
    if acquisition_qc:
        needed.append(acquisition._scan_tiles)
    return not all(_config.is_cached(d) for d in needed)


def make_task(study: Study, tube: str = DEFAULT_TUBE) -> MeasureTask:
    """The per-sample batch task of `study`'s files of `tube` (see
    `cytokit.analysis.per_sample`): the tube's strategy, panel, populations, phenotype
    markers and fixed thresholds; its donor markers when it has origin; the clustering
    markers in the chimerism tube only."""
    s = study.settings
    t = study.tube(tube)
    strategy = study.tube_strategy(tube)
    populations = s.populations if tube == DEFAULT_TUBE else t.populations
    parent = _parent(study, strategy, populations)
    donors = tuple(study.tube_donor_markers(tube))
    pheno = study.tube_phenotype_markers(tube)
    chimerism = tube == study.chimerism_tube
    clustering = tuple(s.clustering.markers) if s.clustering and chimerism else ()
    markers = list(dict.fromkeys((*donors, *pheno, *clustering)))
    fixed = s.phenotype_thresholds if tube == DEFAULT_TUBE else t.phenotype_thresholds
    return MeasureTask(
        strategy=strategy,
        panel=study.tube_panel(tube),
        populations=tuple(populations.items()),
        parent=parent,
        donor_markers=donors,
        phenotype_markers=pheno,
        transforms=tuple((m, s.transform_of(m)) for m in markers),
        fixed_thresholds=tuple(sorted(fixed.items())),
        compensation=study.compensation(),
        beads=s.beads if chimerism else "",
        max_events=s.phenotype_max_events,
        cluster_markers=clustering,
        cluster_events=s.clustering.events if s.clustering else 0,
        seed=s.gating_seed,
        max_nonfinite=s.max_nonfinite,
        acquisition_qc=s.qc_settings,
    )


def make_tasks(study: Study) -> dict[str, MeasureTask]:
    """The per-sample task of every tube the manifest lists files of, in `Study.tubes` order."""
    return {tube: make_task(study, tube) for tube in study.tubes_used()}


def _parent(study: Study, strategy, populations) -> str:
    """The threshold parent of a tube: ``[chimerism] parent`` when its strategy has that
    gate, else the deepest gate shared by the tube's populations."""
    given = study.settings.chimerism_parent
    if given:
        try:
            return strategy.population(given).path
        except CytokitError:
            pass
    return threshold_parent(strategy, populations.values())


def check_output(out: str | os.PathLike) -> None:
    """Refuse an output folder that is a file (or under one) before a study is read:
    `analyze` checks it again, with the study, before gating."""
    not_under_a_file(out)


def check_output_for(study: Study, out: str | os.PathLike) -> Path:
    """The output folder `analyze` writes `study`'s results into, checked and created as
    analyze does before gating (not the study folder, not a `cytokit gate` folder, no
    folder or user's file where a table goes); a caller that shows progress checks it
    first. Returns the folder."""
    _not_the_study(study, Path(out))
    _not_a_gate_folder(Path(out))
    names = (
        *(f"{name}{x}" for name in (*TABLES, *CLINICAL_TABLES) for x in (".csv", ".parquet")),
        "study.json",
        "results.sqlite",
    )
    return output_folder(out, files=names, folders=("qc",))


def check_extras(study: Study) -> None:
    """A `MissingExtraError` when the study needs an optional package that is not installed
    (``outcomes.csv``: lifelines), raised with the study's check, before any gating."""
    if study.clinical is not None and study.clinical.outcomes is not None:
        from cytokit.clinical.survival import _lifelines

        _lifelines()


def hold_output(folder: str | os.PathLike):
    """A context holding the output `folder` for this run (`cytokit._outdir.writing_into`):
    a command that writes its tables and then its report into it holds it for both, so
    that no other run writes there meanwhile."""
    return writing_into(Path(folder))


def analyze(
    study: str | Path | Study,
    out: str | Path | None = None,
    *,
    strategy=None,
    workers: int | None = None,
    scheduler=None,
    progress: Callable[[int, int, str, str], None] | None = None,
    retry_failures: bool = False,
    table_format: str = "csv",
) -> Results:
    """Run the whole analysis of a study folder.

    Parameters
    ----------
    study : path or Study
        The study folder (checked with `load_study` first: every problem is
        reported at once, before any gating) or a loaded study.
    out : path, optional
        Output folder (created); tables, QC data, ``study.json`` and the
        results store ``results.sqlite`` go there, and a rerun resumes from
        the store. Without it the store lives in a temporary folder and only
        the returned `Results` remain.
    strategy : GatingStrategy or path, optional
        Instead of ``[gating] strategy``.
    workers : int, optional
        Parallel workers for the per-sample measurement (default: the cores available).
    scheduler : str or distributed.Client, optional
        See `cytokit.engine.runner.run_batch`.
    progress : callable, optional
        ``progress(done, total, file_name, status)`` after each file.
    retry_failures : bool
        Gate again the files whose cytokit error is in the store (by default a
        rerun reports them as they failed, without reading them again).
    table_format : {"csv", "parquet", "both"}
        How the tables are written into `out` (`write_results`): CSV (the
        default), Parquet with the contract's column types (needs pyarrow,
        the ``parquet`` extra; checked before any gating), or both.

    Returns
    -------
    Results
        The tables as DataFrames (see `cytokit.analysis.results`).

    Raises
    ------
    StudyError
        The study has problems (all listed), or two manifest lines name files
        with the same content (checked before any gating).
    CytokitError
        `out` is a file, or a name the results take in it is, or `out` is the
        study folder itself (before any gating); Parquet is asked for and
        pyarrow is not installed.
    ValueError
        `table_format` is not one of the three.
    """
    from cytokit.engine.runner import hash_files, run_batch
    from cytokit.engine.store import RunStore

    if ".parquet" in suffixes(table_format) and out is not None:
        require_pyarrow()
    if not isinstance(study, Study):
        study = load_study(study, strategy=strategy)
    elif study.gating is None or strategy is not None:
        study = load_study(study.root, strategy=strategy)
    tasks = make_tasks(study)
    check_extras(study)
    with tempfile.TemporaryDirectory(prefix="cytokit-") as tmp, contextlib.ExitStack() as hold:
        if out is None:
            folder = Path(tmp)
        else:  # checked before gating: a bad --out must not cost the whole batch
            folder = check_output_for(study, out)
            hold.enter_context(writing_into(folder))  # until its tables are written
            _not_a_gate_folder(folder)  # a `gate` that held it until a moment ago
        with RunStore(folder / "results.sqlite") as store:
            files = [str(r.file) for r in study.rows]
            # a copy of a file listed as another sample would count one measurement twice;
            # the hashes go into the store's cache, so the batch (and a rerun) reads no file
            # again to hash it
            infos = hash_files(files, store, workers=workers)
            check_same_content(study, _hashes(study, {p: i.hash for p, i in infos.items()}))

            offset = 0  # files of the tubes gated before this one

            def tick(done: int, total: int, path: str, status: str) -> None:
                if progress is not None:
                    progress(offset + done, len(files), Path(path).name, status)

            many = workers is None or workers > 1
            aside = None
            first = True
            reports = []
            for tube, task in tasks.items():  # each tube's files with the tube's task
                mine = [str(r.file) for r in study.rows if study.tube_of(r) == tube]
                if first and len(files) > 1 and many and scheduler in (None, "processes", "local"):
                    # on a first run: the kernels needed after the first file's gating are
                    # compiled meanwhile on another core
                    from cytokit.engine.warm import compile_aside

                    aside = compile_aside(clustering=bool(task.cluster_markers))
                    # the first file in this process compiles the kernels once (or loads them
                    # from Numba's on-disk cache); worker processes then load them instead of
                    # each compiling the same kernels at the same time (minutes on a cold cache)
                    run_batch(mine[:1], task, store, workers=1)
                first = False
                reports.append(
                    run_batch(
                        mine,
                        task,
                        store,
                        workers=workers,
                        scheduler=scheduler,
                        progress=tick,
                        retry_failures=retry_failures,
                    )
                )
                offset += len(mine)
            report = _joined(reports)
            # the files as gated, should one have been replaced by a copy of another since
            # hashing
            gated = {os.path.abspath(f.path): f.hash for f in report.done}
            if aside is not None:
                aside.join()
            check_same_content(study, _hashes(study, gated))
            results = study_tables(study, tasks, store, report, folder if out is not None else None)
        if out is not None:
            write_results(results, folder, table_format=table_format)
    return results


def _not_a_gate_folder(out: Path) -> None:
    """Refuse an --out that holds `cytokit gate`'s tables (its warnings.csv, which analyze
    never writes, and no study.json): analyze would replace its counts.csv and
    failures.csv and leave its other tables beside results they do not describe, as
    gate refuses an analyze folder."""
    if (out / "study.json").is_file():
        return
    if any((out / f"warnings{x}").is_file() for x in (".csv", ".parquet")):
        raise CytokitError(
            f"{out}: holds the results of `cytokit gate` (warnings.csv, no study.json); the "
            "tables of `cytokit analyze` would replace its counts.csv and failures.csv: give "
            "another --out"
        )


def _not_the_study(study: Study, out: Path) -> None:
    """Refuse to write the results into the study folder itself: tables such as
    ``treatments.csv`` and ``infusions.csv`` share their names with its inputs and
    would replace them."""
    if out.is_dir() and os.path.samefile(out, study.root):
        raise CytokitError(
            f"{out}: is the study folder itself; the results (treatments.csv, infusions.csv, "
            "...) would overwrite its inputs; give a folder of its own as --out, e.g. "
            f"{Path(out) / 'results'}"
        )


def _joined(reports):
    """The per-tube batch reports as one (files in run order)."""
    from cytokit.engine.runner import BatchReport

    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    return BatchReport(
        task=first.task,
        files=[f for r in reports for f in r.files],
        elapsed=sum(r.elapsed for r in reports),
        scheduler=first.scheduler,
        workers=first.workers,
        run=first.run,
    )


def _hashes(study: Study, by_path: dict[str, str]) -> dict[Path, str]:
    """Content hash of each manifest row's file from hashes by absolute path."""
    found = ((r.file, by_path.get(os.path.abspath(r.file))) for r in study.rows)
    return {file: h for file, h in found if h is not None}
