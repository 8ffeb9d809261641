"""``cytokit export-anndata RESULTS_DIR OUT.h5ad``: a results folder's events as AnnData."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def run_export(
    results: Path,
    out: Path,
    *,
    events: int | None,
    seed: int,
    study: Path | None,
    tube: str | None = None,
) -> Path:
    """Write the AnnData file; progress and a summary go to stderr."""
    from cytokit.analysis.anndata_export import export_anndata
    from cytokit.cli._progress import again_progress
    from cytokit.cli._runlog import recorded_if_inside
    from cytokit.cli._text import file_size

    t0 = time.perf_counter()
    which = "every event" if events is None else f"{events:,} events per file"
    tick = again_progress(f"reading and gating the files of {results} again ({which}) ...")
    options = {"events": events, "seed": seed, "tube": tube}
    with recorded_if_inside(results, out, "export-anndata", options, study):
        path = export_anndata(
            results, out, events=events, seed=seed, study=study, tube=tube, progress=tick
        )
    typer.echo(f"anndata: {path} ({file_size(path)}); {time.perf_counter() - t0:.1f} s", err=True)
    return path


def register(app: typer.Typer) -> None:
    @app.command("export-anndata")
    def export_anndata_command(
        results: Path = typer.Argument(..., help="A folder written by `cytokit analyze --out`."),
        out: Path = typer.Argument(..., help="The .h5ad file to write."),
        events: int = typer.Option(
            None, "--events", min=1, help="Events per file, chosen at random (default: all)."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the --events choice."),
        study: Path = typer.Option(
            None, "--study", help="The study folder (default: the one study.json names)."
        ),
        tube: str = typer.Option(
            None,
            "--tube",
            help="The tube whose files to export (needed when the study has several tubes).",
        ),
    ) -> None:
        """Write the events behind a results folder as AnnData (.h5ad): X compensated and
        transformed, layers raw and compensated, obs with file, patient, day, gates, origin
        and metacluster (needs the anndata extra)."""
        path = run_export(results, out, events=events, seed=seed, study=study, tube=tube)
        typer.echo(str(path))
