"""``cytokit simulate OUT_DIR``: write a simulated study with ground truth."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def run_simulation(
    out: Path,
    *,
    preset: str = "sample",
    seed: int | None = None,
    patients: int | None = None,
    events: int | None = None,
    days: str | None = None,
    arm: str | None = None,
    drift: bool = True,
    force: bool = False,
    workers: int | None = None,
) -> Path:
    """Simulate a study into `out` with a progress bar on stderr; returns the folder."""
    from cytokit.errors import StudyError
    from cytokit.simulate import preset_design, simulate_study

    day_list = None
    if days:
        try:
            day_list = [int(d) for d in days.replace(" ", "").split(",") if d]
        except ValueError:
            raise StudyError(
                f"--days {days!r}: give whole days separated by commas, e.g. -7,3,7,14,28"
            ) from None
    design = preset_design(
        preset,
        seed=seed,
        n_patients=patients,
        n_events=events,
        days=day_list,
        arm=arm,
        drift=None if drift else False,
    )
    total = len(design.samples())
    with typer.progressbar(
        length=total, label="simulating files", file=sys.stderr, show_pos=True
    ) as bar:
        simulate_study(
            out,
            design,
            overwrite=force,
            workers=workers,
            progress=lambda done, n, name: bar.update(1),
        )
    typer.echo(
        f"{total} FCS file(s) of {len(design.patients)} patient(s), "
        f"{design.n_events:,} events each, written to {out} (ground truth in {out / 'truth'})",
        err=True,
    )
    return out


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_command(
        out: Path = typer.Argument(..., help="Folder to write the study into."),
        preset: str = typer.Option(
            "sample", "--preset", help="Starting design: 'sample' (small) or 'benchmark'."
        ),
        seed: int | None = typer.Option(
            None, "--seed", help="Random seed (same seed, same files)."
        ),
        patients: int | None = typer.Option(
            None, "--patients", min=1, help="Number of patients (alternating NK and CIK arms)."
        ),
        events: int | None = typer.Option(None, "--events", min=1, help="Events per FCS file."),
        days: str | None = typer.Option(
            None, "--days", help="Sampling days for every patient, e.g. -7,3,7,14,28."
        ),
        arm: str | None = typer.Option(None, "--arm", help="Put every patient in arm NK or CIK."),
        no_drift: bool = typer.Option(False, "--no-drift", help="No day-to-day instrument drift."),
        force: bool = typer.Option(
            False, "--force", help="Replace a simulated study already in OUT_DIR."
        ),
        workers: int | None = typer.Option(
            None, "--workers", min=1, help="Threads per file (files are the same for any number)."
        ),
    ) -> None:
        """Write a simulated NK/CIK monitoring study (FCS files, manifest, config, truth)."""
        run_simulation(
            out,
            preset=preset,
            seed=seed,
            patients=patients,
            events=events,
            days=days,
            arm=arm,
            drift=not no_drift,
            force=force,
            workers=workers,
        )
