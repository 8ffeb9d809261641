"""``cytokit gate STRATEGY FILES… --out DIR``: batch gating."""

from __future__ import annotations

from pathlib import Path

import typer

from cytokit.errors import CytokitError


def run_gate(
    strategy: Path,
    files: list[str],
    out: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    compensation: str = "file",
    statistics: bool = True,
    retry_failures: bool = False,
) -> int:
    """Gate `files` into `out` with a progress bar on stderr; return the exit code."""
    from cytokit.cli._progress import batch_progress
    from cytokit.gatebatch import GateTask, expand_files, gate_files

    # everything that can be wrong with the arguments is reported before the batch starts
    task = GateTask(strategy, compensation=compensation, statistics=statistics)
    paths = expand_files(files)
    if not paths:
        raise CytokitError("no FCS files given; name files, folders or patterns after STRATEGY")
    with batch_progress(len(paths), out) as progress:
        run = gate_files(
            task,
            paths,
            out,
            workers=workers,
            scheduler=scheduler,
            retry_failures=retry_failures,
            progress=progress,
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
    if report.failed:
        first = report.failed[0]
        typer.echo(
            f"failures in {out / 'failures.csv'}; first: {first.path}: {first.reason}", err=True
        )
        if not report.done:
            raise CytokitError(
                f"none of the {len(paths)} file(s) could be gated; first: {first.path} "
                f"({first.stage}): {first.reason}"
            )
    return 0


def register(app: typer.Typer) -> None:
    @app.command("gate")
    def gate_command(
        strategy: Path = typer.Argument(
            ..., help="Gating strategy: .xml (Gating-ML 2.0), .wsp (FlowJo 10) or .yaml."
        ),
        files: list[str] = typer.Argument(
            ..., help="FCS files, folders (every .fcs inside) or patterns such as 'runs/*.fcs'."
        ),
        out: Path = typer.Option(
            ..., "--out", "-o", help="Folder for counts.csv, statistics.csv and failures.csv."
        ),
        workers: int = typer.Option(
            None, "--workers", "-j", min=1, help="Local worker processes (default: every core)."
        ),
        scheduler: str = typer.Option(
            None,
            "--scheduler",
            help="A Dask scheduler tcp://HOST:PORT (workers read the files themselves), "
            "or processes, threads, serial.",
        ),
        compensation: str = typer.Option(
            "file",
            "--compensation",
            help="file (each file's spillover keyword), none, or a CSV spillover matrix.",
        ),
        stats: bool = typer.Option(
            True, "--stats/--no-stats", help="Per-population channel statistics."
        ),
        retry_failures: bool = typer.Option(
            False, "--retry-failures", help="Try files that failed with a cytokit error again."
        ),
    ) -> None:
        """Gate many FCS files with one strategy: per-file, per-gate counts and statistics.

        Finished files are kept in OUT/results.sqlite: running the same command
        again skips them, so an interrupted batch resumes where it stopped.
        """
        code = run_gate(
            strategy,
            files,
            out,
            workers=workers,
            scheduler=scheduler,
            compensation=compensation,
            statistics=stats,
            retry_failures=retry_failures,
        )
        if code:
            raise typer.Exit(code)
