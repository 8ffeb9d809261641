"""``cytokit simulate OUT_DIR``: write a simulated study with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_command(
        out: Path = typer.Argument(..., help="Folder to write the study into."),
    ) -> None:
        """Write a simulated NK/CIK monitoring study (FCS files, manifest, config, truth)."""
        raise typer.Exit(1)
