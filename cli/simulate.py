"""``cytokit simulate OUT_DIR``: write a simulated study with ground truth."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import typer

#: Events per file with ``--anomalies`` unless ``--events``: ~17 s at the simulated 3,000
#: events/s, the run `cytokit.simulate.anomalies.random_plan`'s seconds were chosen for.
ANOMALY_EVENTS = 50_000


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
    outcomes: bool = False,
    hazard_ratio: float = 0.5,
    tubes: bool = False,
    anomalies: str | None = None,
) -> Path:
    """Simulate a study into `out` with a progress bar on stderr; returns the folder.

    With `tubes`, every visit also gets a receptor tube and a stimulated/unstimulated
    function pair (`cytokit.simulate.tubes.add_tubes`; their gains drift ±30 % from day
    to day unless `drift` is off). `anomalies`: kinds (``clog,bubble,drift,margin`` or
    ``all``) injected into every file (`cytokit.simulate.anomalies.random_anomalies`)."""
    from cytokit.errors import StudyError
    from cytokit.simulate import preset_design, simulate_study
    from cytokit.simulate.design import days_from_text

    if seed is not None and seed < 0:
        raise typer.BadParameter(f"{seed}: give a seed of 0 or more", param_hint="'--seed'")
    try:
        day_list = list(days_from_text(days)) if days else None
    except StudyError as exc:  # as the study's manifest would refuse them
        raise typer.BadParameter(str(exc), param_hint="'--days'") from None
    if outcomes:
        return _simulate_trial(out, seed, patients, events, day_list, hazard_ratio, force, workers)
    if anomalies is not None and events is None:
        events = ANOMALY_EVENTS  # the run the anomalies' parameters fit (see the option's help)
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
    inject, said = None, ""
    if anomalies is not None:
        from cytokit.simulate.anomalies import random_anomalies

        kinds = anomaly_kinds(anomalies)
        inject = random_anomalies(design, kinds)
        said = f", each with a random {', '.join(kinds)} (truth/anomalies.csv)"
    with typer.progressbar(
        length=total, label="simulating files", file=sys.stderr, show_pos=True
    ) as bar:
        simulate_study(
            out,
            design,
            overwrite=force,
            workers=workers,
            progress=lambda done, n, name: bar.update(1),
            anomalies=inject,
        )
    extra = ""
    if tubes:
        import shutil
        import tempfile

        from cytokit.simulate.tubes import add_tubes

        # the other tubes are acquired on their own: their cells come from the study
        # simulated without the chimerism files' anomalies
        clean = Path(tempfile.mkdtemp(prefix=".clean-", dir=out.parent)) if inject else None
        try:
            if clean is not None:
                simulate_study(clean / "s", design, workers=workers)
            source = clean / "s" if clean is not None else None
            written = add_tubes(out, seed=design.seed, drift=0.3 if drift else 0.0, source=source)
        finally:
            if clean is not None:
                shutil.rmtree(clean, ignore_errors=True)
        extra = f" and {len(written)} file(s) of the receptor and function tubes"
    typer.echo(
        f"{total} FCS file(s) of {len(design.patients)} patient(s){said}"
        f"{',' if said and extra else ''}{extra}, {design.n_events:,} events each, written to "
        f"{out} (ground truth in {out / 'truth'})",
        err=True,
    )
    return out


def anomaly_kinds(text: str) -> list[str]:
    """The kinds ``--anomalies`` names (``all``: every kind); a usage error names the
    unknown ones."""
    from cytokit.simulate.anomalies import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    kinds = list(KINDS) if kinds == ["all"] else kinds
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise typer.BadParameter(
            f"{text!r}: name one or more of {', '.join(KINDS)} (comma-separated), or all",
            param_hint="'--anomalies'",
        )
    return kinds


def _simulate_trial(out, seed, patients, events, days, hazard_ratio, force, workers) -> Path:
    """``--outcomes``: an NK trial whose FCS files, treatments.csv and outcomes.csv agree."""
    from cytokit.simulate import CLINICAL_DAYS, simulate_clinical_study, trial_files
    from cytokit.simulate.outcomes import OutcomeModel

    model = OutcomeModel(
        n_patients=patients or 40, seed=1 if seed is None else seed, hazard_ratio=hazard_ratio
    )
    days = tuple(days) if days else CLINICAL_DAYS
    with typer.progressbar(
        length=trial_files(model, days), label="simulating files", file=sys.stderr, show_pos=True
    ) as bar:
        cohort = simulate_clinical_study(
            out,
            model,
            n_events=events or 5_000,
            days=days,
            overwrite=force,
            workers=workers,
            progress=lambda done, n, name: bar.update(1),
        )
    typer.echo(
        f"{len(cohort.truth)} patient(s) with treatments.csv and outcomes.csv (hazard ratio "
        f"{cohort.model.hazard_ratio:g} for persisting donor cells) written to {out} "
        f"(ground truth in {out / 'truth'})",
        err=True,
    )
    return out


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_command(
        out: Path = typer.Argument(..., help="Folder to write the study into."),
        preset: Literal["sample", "benchmark"] = typer.Option(
            "sample", "--preset", help="Starting design: 'sample' (small) or 'benchmark'."
        ),
        seed: int | None = typer.Option(
            None,
            "--seed",
            help="Random seed, 0 or more (same seed, same files; without it the preset's "
            "fixed seed).",
        ),
        patients: int | None = typer.Option(
            None, "--patients", min=1, help="Number of patients (alternating NK and CIK arms)."
        ),
        events: int | None = typer.Option(None, "--events", min=1, help="Events per FCS file."),
        days: str | None = typer.Option(
            None, "--days", help="Sampling days for every patient, e.g. -7,3,7,14,28."
        ),
        arm: Literal["NK", "CIK"] | None = typer.Option(
            None, "--arm", help="Put every patient in arm NK or CIK."
        ),
        no_drift: bool = typer.Option(False, "--no-drift", help="No day-to-day instrument drift."),
        force: bool = typer.Option(
            False, "--force", help="Replace a simulated study already in OUT."
        ),
        workers: int | None = typer.Option(
            None, "--workers", min=1, help="Threads per file (files are the same for any number)."
        ),
        outcomes: bool = typer.Option(
            False,
            "--outcomes",
            help="A trial with treatments.csv and outcomes.csv tied to the FCS files "
            "(NK arm, strata A/B, 40 patients unless --patients).",
        ),
        hazard_ratio: float | None = typer.Option(
            None,
            "--hazard-ratio",
            min=0.01,
            help="With --outcomes: HR of persisting donor cells.  [default: 0.5]",
            show_default=False,
        ),
        tubes: bool = typer.Option(
            False,
            "--tubes",
            help="Add a receptor tube (KIR2DL1, KIR2DL2/3, KIR3DL1, NKG2A) and a stimulated/"
            "unstimulated function pair (CD107a, IFN-g) to every visit, with per-event truth.",
        ),
        anomalies: str | None = typer.Option(
            None,
            "--anomalies",
            help="Acquisition anomalies with random parameters in every file: clog, bubble, "
            "drift, margin (comma-separated) or all; per-event truth in fcs/*.truth.npz, "
            "a list in truth/anomalies.csv. Files then have 50,000 events unless --events.",
            show_default=False,
        ),
    ) -> None:
        """Write a simulated NK/CIK monitoring study (FCS files, manifest, config, truth)."""
        # an option the chosen simulation does not use is refused, never silently dropped
        if outcomes:
            ignored = {
                "--arm": arm is not None,
                "--preset": preset != "sample",
                "--no-drift": no_drift,
                "--tubes": tubes,
                "--anomalies": anomalies is not None,
            }
            for name in (n for n, given in ignored.items() if given):
                raise typer.BadParameter(
                    "--outcomes simulates an NK-arm trial of its own design; drop " + name,
                    param_hint=f"'{name}'",
                )
        elif hazard_ratio is not None:
            raise typer.BadParameter(
                "only a trial with --outcomes has a hazard ratio; add --outcomes",
                param_hint="'--hazard-ratio'",
            )
        if anomalies is not None:
            anomaly_kinds(anomalies)  # refused before any file is written
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
            outcomes=outcomes,
            hazard_ratio=0.5 if hazard_ratio is None else hazard_ratio,
            tubes=tubes,
            anomalies=anomalies,
        )
