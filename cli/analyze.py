"""``cytokit analyze STUDY_DIR --out DIR``: the whole job on a study folder."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cytokit.cli._options import TABLE_FORMAT_HELP, check_scheduler, check_table_format
from cytokit.cli._text import echo_warnings, printable


def run_analysis(
    study: Path,
    out: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    report: bool = True,
    strict: bool = False,
    command: str = "analyze",
    retry_failures: bool = False,
    table_format: str = "csv",
    single_file: bool = False,
) -> int:
    """Analyse `study` into `out` with progress on stderr; return the exit code.

    0 when the analysis finished (files that failed are in ``failures.csv``
    and the report), or 3 with `strict` when any file failed.

    The study is checked first (every problem in one error, before any gating);
    then the plots and report.html are built from the results (`cytokit.report`).
    `table_format` (csv, parquet, both) says how the tables are written; `single_file`
    builds the report as one self-contained page.
    The run is recorded in ``out/runlog.jsonl`` as `command`.
    """
    from cytokit.analysis.run import check_output
    from cytokit.cli._runlog import recorded
    from cytokit.parquet import require_pyarrow, suffixes

    check_output(out)  # a file given as --out is said before the study is read
    if ".parquet" in suffixes(table_format):
        require_pyarrow()  # a missing extra is said before anything is read or written
    options = {"report": report, "retry_failures": retry_failures, "format": table_format}
    if single_file:  # logged only when asked for: earlier runs' settings keep their hash
        options["single_file"] = True
    with recorded(out, command, store=Path(out) / "results.sqlite", options=options) as log:
        log.exit_code = _analyze(
            study,
            out,
            log,
            workers,
            scheduler,
            report,
            strict,
            retry_failures,
            table_format,
            single_file,
        )
    return log.exit_code


def _analyze(
    study,
    out,
    log,
    workers,
    scheduler,
    report,
    strict,
    retry_failures,
    table_format,
    single_file=False,
) -> int:
    from cytokit.analysis import analyze
    from cytokit.analysis.run import check_extras, check_output_for, hold_output
    from cytokit.cli._progress import batch_progress, compile_notice
    from cytokit.study import load_study

    t0 = time.perf_counter()
    typer.echo(f"checking {study} ...", err=True)
    loaded = load_study(study)
    check_extras(loaded)  # with the study's check: nothing written, nothing gated
    log.add_study(loaded)
    n = len(loaded.rows)
    typer.echo(
        f"{loaded.name}: {n} file(s), {len(loaded.patients)} patient(s), "
        f"{len(loaded.settings.populations)} population(s)",
        err=True,
    )
    folder = check_output_for(loaded, out)  # before the progress bar: a refusal is no run
    with hold_output(folder):  # the tables and the report: one run's at a time
        compile_notice(acquisition_qc=loaded.settings.qc_settings is not None)
        with batch_progress(n, out) as progress:
            results = analyze(
                loaded,
                out,
                workers=workers,
                scheduler=scheduler,
                progress=progress,
                retry_failures=retry_failures,
                table_format=table_format,
            )
        chim = results.chimerism
        quantified = int((chim["status"] == "quantified").sum()) if "status" in chim else 0
        typer.echo(
            f"{len(results.samples)} of {n} file(s) analysed, {len(results.failures)} failed; "
            f"{quantified} of {len(chim)} population(s) × sample(s) quantified; "
            f"{time.perf_counter() - t0:.1f} s. Tables in {out}",
            err=True,
        )
        samples = results.samples
        if "donor_marker_check" in samples and (samples["donor_marker_check"] == "failed").any():
            bad = samples[samples["donor_marker_check"] == "failed"]
            first = bad.iloc[0]
            typer.echo(
                f"DONOR MARKER UNUSABLE in {len(bad)} file(s): no chimerism for them "
                f"(samples.csv donor_marker_note); first: {first['file']}: "
                f"{first['donor_marker_note']}",
                err=True,
            )
        if "warnings" in samples and "file" in samples:
            said = samples[samples["warnings"].fillna("").astype(str) != ""]
            notes = {
                str(f): [w.removeprefix(f"{Path(str(f)).name}: ") for w in str(text).split("; ")]
                for f, text in zip(said["file"], said["warnings"], strict=True)
            }
            echo_warnings(notes, out / "samples.csv", n)
        if len(results.failures):
            first = results.failures.iloc[0]
            typer.echo(
                printable(
                    f"FAILED: {len(results.failures)} file(s), listed in {out / 'failures.csv'}; "
                    f"first: {first['file']} ({first['stage']}): {first['reason']}"
                ),
                err=True,
            )
        if report:
            _report(out, single_file)
        elif (out / "report.html").is_file():
            typer.echo(
                f"report.html in {out} is from an earlier run and does not show these tables; "
                f"rebuild it with: cytokit report {out}",
                err=True,
            )
        if len(results.failures) and results.samples.empty:  # nothing measured: not a success
            typer.echo(f"no file could be analysed; see {out / 'failures.csv'}", err=True)
            return 1
        return 3 if strict and len(results.failures) else 0


def _report(out: Path, single_file: bool = False) -> None:
    try:
        from cytokit.report import build_report
    except ImportError:  # the report is built by its own module, which may be absent
        typer.echo("no report: cytokit.report is not available in this installation", err=True)
        return
    t0 = time.perf_counter()
    path = build_report(out, single_file=single_file)
    typer.echo(f"report: {path} ({time.perf_counter() - t0:.1f} s)", err=True)


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_command(
        study: Path = typer.Argument(
            ..., help="Study folder with study.toml, manifest.csv and the strategy."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder for tables and QC data."),
        workers: int = typer.Option(
            None, "--workers", "-j", min=1, help="Parallel workers (default: the cores available)."
        ),
        scheduler: str = typer.Option(
            None,
            "--scheduler",
            callback=check_scheduler,
            help="processes (default), threads, serial, or a Dask scheduler address tcp://HOST:PORT.",
        ),
        report: bool = typer.Option(
            True, "--report/--no-report", help="Build the plots and report.html afterwards."
        ),
        strict: bool = typer.Option(
            False, "--strict", help="Exit with status 3 when any file failed (default: 0)."
        ),
        retry_failures: bool = typer.Option(
            False, "--retry-failures", help="Try files that failed with a cytokit error again."
        ),
        table_format: str = typer.Option(
            "csv", "--format", callback=check_table_format, help=TABLE_FORMAT_HELP
        ),
        single_file: bool = typer.Option(
            False,
            "--single-file",
            help="Build the report as one self-contained report.html (images embedded) "
            "instead of an index and a page per patient.",
        ),
    ) -> None:
        """Run the whole job on a study folder: gate, chimerism, trends, clustering, report.

        The study is checked first (every problem at once); then every file is gated,
        and chimerism, absolute counts, phenotype, trends, clustering, plots and
        report.html follow. Finished files are kept in OUT/results.sqlite: a rerun
        resumes where it stopped. A file that fails is listed in OUT/failures.csv
        and the report; with --strict the command then exits with status 3."""
        code = run_analysis(
            study,
            out,
            workers=workers,
            scheduler=scheduler,
            report=report,
            strict=strict,
            retry_failures=retry_failures,
            table_format=table_format,
            single_file=single_file,
        )
        if code:
            raise typer.Exit(code)
