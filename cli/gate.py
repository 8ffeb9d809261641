"""``cytokit gate STRATEGY FILES… --out DIR`` (or ``--study DIR``): batch gating."""

from __future__ import annotations

from pathlib import Path

import typer

from cytokit.cli._options import (
    GATE_COMPENSATION,
    GATE_OUT,
    GATE_TUBE,
    TABLE_FORMAT_HELP,
    check_scheduler,
    check_table_format,
    gate_arguments,
)
from cytokit.cli._qc_options import (
    ACQUISITION_QC,
    QC_CHECKS,
    QC_EXCLUDE,
    QC_MAX_REMOVED,
    QC_SENSITIVITY,
    QC_TIME,
    check_qc_exclusions,
    check_qc_flags,
)
from cytokit.cli._text import echo_warnings, printable
from cytokit.errors import CytokitError


def run_gate(
    strategy: Path | str | None,
    files: list[str] | None,
    out: Path,
    *,
    study: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    compensation: str | None = None,
    statistics: bool = True,
    retry_failures: bool = False,
    strict: bool = False,
    acquisition_qc: bool | None = None,
    qc_sensitivity: str | None = None,
    qc_max_removed: float | None = None,
    qc_exclude: list[str] | None = None,
    qc_time: str | None = None,
    qc_checks: tuple[str, ...] | None = None,
    log=None,
    table_format: str = "csv",
    tube: str | None = None,
) -> int:
    """Gate `files` into `out` with a progress bar on stderr; return the exit code.

    With `study`, the strategy (default: the study's ``[gating] strategy``) is read and
    applied with the study's panel, transform, compensation and seed, as ``analyze`` does.
    `compensation` (default ``file``) cannot be combined with `study`. `tube`: the study's
    tube gated (its strategy, panel and, without `files`, manifest files), needed without
    `files` when the manifest lists files of several tubes (`cytokit.study.chosen_tube`).
    The QC options: `cytokit.engine.gate_files.gate_qc_settings`; `table_format`: `gate_files`.

    0 when the batch finished (files that failed are in ``failures.csv``), or
    3 with `strict` when any file failed. None gated at all is a `CytokitError`.
    `log` (`cytokit.engine.runlog.RunRecorder`, for ``runlog.jsonl``) is told the inputs.
    """
    from cytokit.cli._progress import batch_progress, compile_notice
    from cytokit.engine.gate_files import GateTask, expand_files, gate_files, gate_qc_settings

    strategy, files = gate_arguments(strategy, files, study)
    qc_options = {
        "sensitivity": qc_sensitivity,
        "max_removed_pct": qc_max_removed,
        "exclude_channels": qc_exclude,
        "time_channel": qc_time,
        "checks": qc_checks,
    }
    # everything that can be wrong with the arguments is reported before the batch starts
    check_qc_flags(acquisition_qc, qc_options)
    if study is not None:
        from cytokit.study import chosen_tube, load_study

        if compensation is not None:
            raise typer.BadParameter(
                "--compensation and --study both say how to compensate: with --study the "
                "study's [compensation] is used; drop --compensation",
                param_hint="'--compensation'",
            )
        loaded = load_study(study, check_files=False)
        try:
            tube, files = chosen_tube(loaded, tube, files)
        except CytokitError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--tube'") from None
        qc = gate_qc_settings(loaded.settings.acquisition_qc, acquisition_qc, **qc_options)
        task = GateTask.for_study(
            loaded, strategy, statistics=statistics, acquisition_qc=qc or False, tube=tube
        )
    elif tube is not None:
        raise typer.BadParameter(
            "--tube names a tube of a study; give --study DIR with it", param_hint="'--tube'"
        )
    else:
        qc = gate_qc_settings(None, acquisition_qc, **qc_options)
        task = GateTask(
            strategy, compensation=compensation or "file", statistics=statistics, acquisition_qc=qc
        )
    paths = expand_files(files, left_out=(empty := []))
    for said in empty:  # the batch goes on with the files the others name
        typer.echo(printable(f"left out {said}"), err=True)
    check_qc_exclusions(qc, qc_exclude, study, paths, list(task.listed), qc_time)
    if log is not None:
        log.add_gate_inputs(paths, strategy, compensation, loaded if study is not None else None)
    if not paths:
        raise CytokitError("no FCS files given; name files, folders or patterns after STRATEGY")
    compile_notice(statistics=statistics, acquisition_qc=qc is not None)
    with batch_progress(len(paths), out) as progress:
        run = gate_files(
            task,
            paths,
            out,
            workers=workers,
            scheduler=scheduler,
            retry_failures=retry_failures,
            progress=progress,
            table_format=table_format,
        )
    report = run.report
    fresh = len(report.done) - report.n_cached
    rate = f", {run.n_events / report.elapsed:,.0f} events/s" if fresh == len(report.done) else ""
    if run.nonfinite_events:
        rate += f"; {run.nonfinite_events:,} event(s) with NaN/inf values dropped"
    typer.echo(
        f"{len(report.done)} of {len(paths)} file(s) gated ({report.n_cached} from the store), "
        f"{len(report.failed)} failed, {report.elapsed:.1f} s{rate}; tables in {out}",
        err=True,
    )
    echo_warnings(run.warnings, out / "warnings.csv", len(paths))
    if report.failed:
        first = report.failed[0]
        typer.echo(
            printable(f"failures in {out / 'failures.csv'}; first: {first.path}: {first.reason}"),
            err=True,
        )
        if not report.done:
            raise CytokitError(
                f"none of the {len(paths)} file(s) could be gated; first: {first.path} "
                f"({first.stage}): {first.reason}"
            )
        if strict:
            return 3
    return 0


def register(app: typer.Typer) -> None:
    @app.command("gate")
    def gate_command(
        strategy: str = typer.Argument(
            None,
            help="Gating strategy: .xml (Gating-ML 2.0), .wsp (FlowJo 10) or .yaml. With "
            "--study it may be left out (the strategy study.toml names).",
            metavar="STRATEGY",
            show_default=False,
        ),
        files: list[str] = typer.Argument(
            None,
            help="FCS files, folders (every .fcs inside) or patterns such as 'runs/*.fcs'. "
            "With --study they may be left out (the manifest's files).",
            metavar="FILES",
            show_default=False,
        ),
        out: Path = GATE_OUT,
        study: Path = typer.Option(
            None,
            "--study",
            help="A study folder: gate with its panel and transform (for a YAML strategy), "
            "compensation, gating seed and [acquisition_qc], as cytokit analyze does.",
            show_default=False,
        ),
        workers: int = typer.Option(
            None, "--workers", "-j", min=1, help="Local worker processes (default: every core)."
        ),
        scheduler: str = typer.Option(
            None,
            "--scheduler",
            callback=check_scheduler,
            help="A Dask scheduler tcp://HOST:PORT (workers read the files themselves), "
            "or processes, threads, serial.",
        ),
        compensation: str = GATE_COMPENSATION,
        stats: bool = typer.Option(
            True, "--stats/--no-stats", help="Per-population channel statistics."
        ),
        retry_failures: bool = typer.Option(
            False, "--retry-failures", help="Try files that failed with a cytokit error again."
        ),
        strict: bool = typer.Option(
            False, "--strict", help="Exit with status 3 when any file failed (default: 0)."
        ),
        acquisition_qc: bool = ACQUISITION_QC,
        qc_sensitivity: str = QC_SENSITIVITY,
        qc_max_removed: float = QC_MAX_REMOVED,
        qc_exclude: list[str] = QC_EXCLUDE,
        qc_time: str = QC_TIME,
        qc_checks: str = QC_CHECKS,
        table_format: str = typer.Option(
            "csv", "--format", callback=check_table_format, help=TABLE_FORMAT_HELP
        ),
        tube: str = GATE_TUBE,
    ) -> None:
        """Gate many FCS files with one strategy: per-file, per-gate counts and statistics.

        cytokit gate STRATEGY FILES... --out DIR gates with the strategy as it
        stands (a YAML strategy must state its transform). cytokit gate --study
        DIR [STRATEGY] [FILES...] --out OUT gates with the study's settings and
        gives each file the counts cytokit analyze gives it.

        Finished files are kept in OUT/results.sqlite: running the same command
        again skips them, so an interrupted batch resumes where it stopped. A file
        that fails is listed in OUT/failures.csv and the batch goes on; with
        --strict the command then exits with status 3.
        """
        from cytokit.cli._runlog import recorded

        with recorded(out, "gate", store=out / "results.sqlite") as log:
            log.exit_code = run_gate(
                strategy,
                files,
                out,
                study=study,
                workers=workers,
                scheduler=scheduler,
                compensation=compensation,
                statistics=stats,
                retry_failures=retry_failures,
                strict=strict,
                acquisition_qc=acquisition_qc,
                qc_sensitivity=qc_sensitivity,
                qc_max_removed=qc_max_removed,
                qc_exclude=qc_exclude,
                qc_time=qc_time,
                qc_checks=qc_checks,
                log=log,
                table_format=table_format,
                tube=tube,
            )
        if log.exit_code:
            raise typer.Exit(log.exit_code)
