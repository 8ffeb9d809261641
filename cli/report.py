"""``cytokit report RESULTS_DIR``: rebuild the plots and report.html from stored results."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def _read_by_report(name: str) -> bool:
    """Whether the report reads `name` (relative to the results folder): the tables,
    study.json and tables.json, and the QC data in qc/."""
    return name.startswith("qc/") or ("/" not in name and name.endswith((".csv", ".json")))


def run_report(
    results: Path,
    out: Path | None = None,
    *,
    qc: bool = True,
    single_file: bool = False,
    svg: bool = False,
) -> Path:
    """Rebuild plots and the report's pages of `results` into `out` (default: `results`).

    Progress and a summary go to stderr; the report's path is returned.
    """
    from cytokit.analysis.run import hold_output

    with hold_output(results):  # an analyze writing its tables there is said as such
        return _rebuild(results, out, qc=qc, single_file=single_file, svg=svg)


def _rebuild(results: Path, out: Path | None, *, qc: bool, single_file: bool, svg: bool) -> Path:
    from cytokit.cli._runlog import recorded
    from cytokit.cli._text import file_size
    from cytokit.engine.runlog import snapshot
    from cytokit.report import build_report, check_results_dir

    t0 = time.perf_counter()
    check_results_dir(results)
    options = {"qc": qc, "single_file": single_file}
    if svg:  # logged only when asked for: earlier runs' settings keep their hash
        options["svg"] = True
    formats = ("png",)
    # the run log is checked first: a refusal comes before any word of work
    with recorded(results if out is None else out, "report", options=options) as log:
        typer.echo(f"rebuilding plots and report from {results} ...", err=True)
        if svg:
            typer.echo(
                "note: --svg is no longer needed: every figure of the report is an SVG file "
                "already (a QC plot: its PNG of histograms and the SVG drawn over it)",
                err=True,
            )
        # what the report reads: the folder's tables, study.json, tables.json and qc/
        read = [p for p in snapshot(results) if _read_by_report(p)]
        log.add_inputs("results", (Path(results) / p for p in read))
        path = build_report(results, out, formats=formats, qc=qc, single_file=single_file)
    pages = "" if single_file else f", a page per patient in {path.parent / 'patients'}"
    typer.echo(
        f"report: {path} ({file_size(path)}){pages}, plots in {path.parent / 'plots'}; "
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
        single_file: bool = typer.Option(
            False,
            "--single-file",
            help="One self-contained report.html (images embedded) instead of an index "
            "and a page per patient.",
        ),
        svg: bool = typer.Option(
            False,
            "--svg",
            hidden=True,
            help="No longer needed: every figure of the report is an SVG file already.",
        ),
    ) -> None:
        """Rebuild plots, report.html and a page per patient from stored results.

        Only figures whose inputs changed are drawn again (plots/manifest.json)."""
        path = run_report(results, out, qc=qc, single_file=single_file, svg=svg)
        typer.echo(str(path))
