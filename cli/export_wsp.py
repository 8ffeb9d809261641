"""``cytokit export-wsp RESULTS_DIR OUT.wsp``: the analysis as a FlowJo 10 workspace."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cytokit.cli._text import printable


def run_export_wsp(
    results: Path, out: Path, *, group_by: str = "patient", study: Path | None = None
):
    """Write the workspace of `results` to `out`; a summary and notes go to stderr.

    Returns the `cytokit.analysis.flowjo_export.WorkspaceExport`.
    """
    from cytokit.analysis import export_wsp
    from cytokit.cli._progress import again_progress
    from cytokit.cli._runlog import recorded_if_inside

    t0 = time.perf_counter()
    tick = again_progress(f"gating the files of {results} again for their FlowJo gates ...")
    with recorded_if_inside(results, out, "export-wsp", {"group_by": group_by}, study):
        done = export_wsp(results, out, group_by=group_by, study=study, progress=tick)
    for file, why in done.skipped.items():
        typer.echo(printable(f"left out {file}: {why}"), err=True)
    for note in done.notes:
        typer.echo(printable(f"note: {note}"), err=True)
    groups = f", groups {', '.join(done.groups)}" if done.groups else ""
    typer.echo(
        printable(
            f"workspace: {done.path} ({len(done.samples)} samples{groups}; "
            f"{len(done.skipped)} left out); {time.perf_counter() - t0:.1f} s"
        ),
        err=True,
    )
    return done


def register(app: typer.Typer) -> None:
    @app.command("export-wsp")
    def export_wsp_command(
        results: Path = typer.Argument(..., help="A folder written by `cytokit analyze --out`."),
        out: Path = typer.Argument(..., help="The FlowJo workspace to write (.wsp)."),
        group_by: str = typer.Option(
            "patient", "--group-by", help="One FlowJo group per: patient, tube, or none."
        ),
        study: Path = typer.Option(
            None, "--study", help="The study folder, if it moved since the analysis."
        ),
    ) -> None:
        """Write a FlowJo 10 workspace: every sample with the gates that counted it."""
        from cytokit.analysis.flowjo_export import GROUP_BY

        if group_by not in GROUP_BY:
            raise typer.BadParameter(
                f"{group_by!r}: use one of {', '.join(GROUP_BY)}", param_hint="'--group-by'"
            )
        done = run_export_wsp(results, out, group_by=group_by, study=study)
        typer.echo(str(done.path))
