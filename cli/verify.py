"""``cytokit verify RESULTS_DIR``: what changed since a run, from ``runlog.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cytokit.cli._text import printable


def _usage(exc: Exception) -> typer.BadParameter:
    return typer.BadParameter(str(exc), param_hint="RESULTS_DIR")


def run_verify(
    results: Path, *, run: int | None = None, all_runs: bool = False, as_json: bool = False
) -> int:
    """Print what changed since the run(s) of `results`; 0 when nothing did, else 1."""
    from cytokit.engine.runlog import RunlogError
    from cytokit.engine.verify import verify

    if run is not None and all_runs:
        raise typer.BadParameter("give --run K or --all, not both", param_hint="'--run'")
    try:
        found = verify(results, run=run, all_runs=all_runs)
    except RunlogError as exc:
        raise _usage(exc) from None
    if as_json:
        typer.echo(json.dumps(found.as_dict(), indent=2))
    else:
        for line in found.lines():
            typer.echo(printable(line))
    return 1 if found.changed else 0


def run_rerun(results: Path, out: Path, *, run: int | None = None, as_json: bool = False) -> int:
    """Run a logged command again into `out` and compare the tables; 0 when identical."""
    from cytokit.engine.runlog import RunlogError
    from cytokit.engine.verify import compare_outputs, rerun, same_inputs

    try:
        code = rerun(results, out, run=run)
    except RunlogError as exc:
        raise _usage(exc) from None
    if code not in (0, 3):
        typer.echo(f"the command run again ended with exit code {code}; nothing compared", err=True)
        return 1
    inputs = same_inputs(results, out, run_a=run)
    differ, how = compare_outputs(results, out, run_a=run)
    if as_json:
        report = {"identical": not differ and not inputs, "inputs_changed": inputs}
        typer.echo(json.dumps(report | {"differ": differ, "notes": how}, indent=2))
    else:
        for line in [*(f"input changed since the run: {i}" for i in inputs), *differ, *how]:
            typer.echo(printable(line))
        verdict = "differ" if differ else "are identical (timestamps aside)"
        typer.echo(printable(f"the outputs of the run again in {out} {verdict}"))
    return 1 if differ or inputs else 0


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_command(
        results: Path = typer.Argument(
            ..., help="A folder a cytokit command wrote into (it holds runlog.jsonl)."
        ),
        run: int = typer.Option(
            None,
            "--run",
            help="Which run: its line in runlog.jsonl, 1 the oldest, -1 the last (default: the "
            "last, with the inputs of the run that wrote the tables a report read).",
            show_default=False,
        ),
        all_runs: bool = typer.Option(False, "--all", help="Check every logged run."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
        rerun: Path = typer.Option(
            None,
            "--rerun",
            help="Run the logged command again, in its working directory, into this new "
            "folder, and compare what both runs wrote (timestamps aside).",
            show_default=False,
        ),
    ) -> None:
        """Re-hash a run's inputs and outputs and say what changed since it ran.

        Every input file (FCS files, manifest, study.toml, strategy, spillover,
        treatments, outcomes) and every file the run wrote is read again and
        its SHA-256 compared with runlog.jsonl: an input changed or missing, an
        output edited, missing, or added since. Exit status 0 when nothing
        changed, 1 when something did, 2 for a usage error (no runlog.jsonl, a
        line of it that is not a run record, no such run).
        """
        if rerun is not None:
            if all_runs:
                raise typer.BadParameter("--rerun runs one run again; drop --all")
            code = run_rerun(results, rerun, run=run, as_json=as_json)
        else:
            code = run_verify(results, run=run, all_runs=all_runs, as_json=as_json)
        if code:
            raise typer.Exit(code)
