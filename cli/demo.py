"""``cytokit demo``: `analyze` on the bundled `sample_data/` study."""

from __future__ import annotations

from pathlib import Path

import typer

from cytokit.errors import StudyError


def sample_data_dir() -> Path:
    """The `sample_data/` folder of a cytokit checkout."""
    import cytokit

    folder = Path(cytokit.__file__).resolve().parents[1] / "sample_data"
    if not (folder / "study.toml").is_file():
        raise StudyError(
            f"sample_data not found at {folder}; the demo needs a source checkout of cytokit "
            "installed with `pip install -e .`"
        )
    return folder


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        out: Path = typer.Option(Path("cytokit-demo"), "--out", "-o", help="Output folder."),
        workers: int = typer.Option(
            None, "--workers", "-j", min=1, help="Parallel workers (default: the cores available)."
        ),
        report: bool = typer.Option(
            True, "--report/--no-report", help="Build the plots and report.html afterwards."
        ),
    ) -> None:
        """Run `analyze` on the bundled sample study (3 patients, 15 files) into ./cytokit-demo/."""
        from cytokit.cli.analyze import run_analysis

        code = run_analysis(sample_data_dir(), out, workers=workers, report=report, command="demo")
        if code:
            raise typer.Exit(code)
