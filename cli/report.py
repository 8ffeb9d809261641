"""``cytokit report RESULTS_DIR``: rebuild tables, plots and the report from stored results."""

from __future__ import annotations

from pathlib import Path

import typer

from cytokit.errors import CytokitError


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        results: Path = typer.Argument(..., help="A folder written by `cytokit analyze`."),
    ) -> None:
        """Rebuild tables, plots and report.html from stored results."""
        raise CytokitError(
            f"cytokit report: {results} cannot be rebuilt: the results store and report are "
            "not available in this version yet"
        )
