"""``cytokit report RESULTS_DIR``: rebuild the plots and report.html from stored results."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def _read_by_report(name: str) -> bool:
    """Whether the report reads `name` (relative to the results folder): the tables,
    study.json and tables.json, and the QC data in qc/."""
    return name.startswith("qc/") or ("/" not in name and name.endswith((".csv", ".json")))


def run_report(results: Path, out: Path | None = None, *, qc: bool = True) -> Path:
    """Rebuild plots and report.html of `results` into `out` (default: `results`).

    Progress and a summary go to stderr; the report's path is returned.
    """
    from cytokit.cli._runlog import recorded
    from cytokit.engine.runlog import snapshot
    from cytokit.report import build_report, check_results_dir

    t0 = time.perf_counter()
    check_results_dir(results)
    typer.echo(f"rebuilding plots and report from {results} ...", err=True)
    with recorded(results if out is None else out, "report", options={"qc": qc}) as log:
        # what the report reads: the folder's tables, study.json, tables.json and qc/
        read = [p for p in snapshot(results) if _read_by_report(p)]
        log.add_inputs("results", (Path(results) / p for p in read))
        path = build_report(results, out, qc=qc)
    size = path.stat().st_size / 1e6
    typer.echo(
        f"report: {path} ({size:.1f} MB), plots in {path.parent / 'plots'}; "
        f"{time.perf_counter() - t0:.1f} s",
        err=True,
    )
    return path


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        results: Path = typer.Argument(..., help="A folder written by `cytokit analyze --out`."),
        out: Path = typer.Option(
            None, "--out", "-o", help="Write plots/ and report.html here (default: RESULTS)."
        ),
        qc: bool = typer.Option(
            True, "--qc/--no-qc", help="Draw the QC plots of every gate on every sample."
        ),
    ) -> None:
        """Rebuild plots (PNG, SVG) and the self-contained report.html from stored results."""
        path = run_report(results, out, qc=qc)
        typer.echo(str(path))
