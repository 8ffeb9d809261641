"""``cytokit demo``: `analyze` on the bundled `sample_data/` study."""

from __future__ import annotations

from pathlib import Path

import typer

from cytokit.errors import StudyError


def sample_data_dir() -> Path:
    """The sample study: package data of an installed wheel, or a checkout's `sample_data/`."""
    import cytokit

    package = Path(cytokit.__file__).resolve().parent
    # a wheel ships it as cytokit/sample_data (package data); a checkout has it beside cytokit/
    for folder in (package / "sample_data", package.parent / "sample_data"):
        if (folder / "study.toml").is_file():
            return folder
    raise StudyError(
        f"the sample study is neither in {package / 'sample_data'} nor in "
        f"{package.parent / 'sample_data'} (no study.toml): this cytokit was installed without "
        "its package data; install a wheel of cytokit-flow, or a checkout with `pip install -e .`"
    )


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
        single_file: bool = typer.Option(
            False, "--single-file", help="The report as one self-contained report.html."
        ),
    ) -> None:
        """Run `analyze` on the bundled sample study (3 patients, 15 files) into ./cytokit-demo/."""
        from cytokit.cli.analyze import run_analysis

        code = run_analysis(
            sample_data_dir(),
            out,
            workers=workers,
            report=report,
            command="demo",
            single_file=single_file,
        )
        if code:
            raise typer.Exit(code)
