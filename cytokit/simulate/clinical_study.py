"""A simulated trial with outcomes: FCS files, schedule and outcomes that tell one story.

`simulate_clinical_study` draws a cohort from the outcome model
(`cytokit.simulate.outcomes.OutcomeModel`) and then writes the FCS study of
that very cohort:

* the FCS simulator's infusions are the cohort's **given** cell infusions
  (an infusion skipped after GVHD >= II, progression or death is in
  ``treatments.csv`` with ``given = no`` and adds no donor cells);
* a patient whose donor cells do not persist in the outcome model has
  ``PatientSpec.persists = False``: its infused cells are rejected before
  the first sample, so no sample holds donor cells; a persisting patient's
  cells follow the FCS simulator's kinetics and are seen from the first
  sample after the infusion, which is the day the outcome model lowers the
  hazard (its ``detection_days`` are set to that day);
* samples are taken on `CLINICAL_DAYS` (up to the patient's progression or
  last follow-up, the day -7 baseline always), the manifest's ``stratum`` is
  the outcome model's stratum (A or B);
* ``treatments.csv`` and ``outcomes.csv`` are the cohort's, ``study.toml``
  gains ``[outcomes]`` (landmark day, population ``NK``) and ``truth/``
  holds ``outcomes.csv`` (per patient: persistent, detection day, event
  times), ``treatments.csv`` (with why each skipped infusion was skipped)
  and ``outcome_model.json`` (the hazard ratio among them).

The patients are in the NK arm (one NK infusion, IL-2 courses): donor NK
cells are the population the landmark reads, and in the FCS simulator DLI
and CIK give too few donor NK cells to be seen. ``analyze`` on the folder
then estimates the landmark hazard ratio of the model (stratified by
stratum), with progression the only PFS event when ``median_nrm`` is
infinite.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

import pandas as pd

from cytokit._io import atomic_write_text
from cytokit.errors import StudyError
from cytokit.simulate.design import DONOR_SIDES, Dose, PatientSpec, StudyDesign
from cytokit.simulate.outcomes import OutcomeCohort, OutcomeModel, simulate_cohort, write_cohort
from cytokit.simulate.study import simulate_study

__all__ = [
    "CLINICAL_DAYS",
    "clinical_design",
    "simulate_clinical_study",
    "tied_model",
    "trial_files",
]

#: Sampling days of the simulated trial (the landmark, day 28, among them).
CLINICAL_DAYS = (-7, 3, 14, 28, 60, 120)


def tied_model(model: OutcomeModel, days=CLINICAL_DAYS) -> OutcomeModel:
    """`model` in the NK arm, donor cells detected (and the hazard lowered) from the first
    sampling day after the infusion."""
    after = [d for d in days if d > 0]
    if not after:
        raise StudyError(f"days={tuple(days)!r} need a sampling day after the infusion (day > 0)")
    return replace(model, arms=("NK",), detection_days=(min(after), min(after)))


def clinical_design(
    cohort: OutcomeCohort, *, n_events: int = 5_000, days=CLINICAL_DAYS, seed: int | None = None
) -> StudyDesign:
    """The FCS study design of `cohort` (see the module docstring).

    Parameters
    ----------
    cohort : OutcomeCohort
        From `simulate_cohort` of a `tied_model`.
    n_events : int
        Events per FCS file.
    days : sequence of int
        Sampling days (each patient's up to its progression or last follow-up).
    seed : int, optional
        The FCS simulator's seed (default: the outcome model's).

    Returns
    -------
    StudyDesign
    """
    truth = cohort.truth.set_index("patient")
    outcomes = cohort.outcomes.set_index("patient")
    given = cohort.treatments[
        (cohort.treatments["kind"] == "cells") & (cohort.treatments["given"] == "yes")
    ]
    patients = []
    for i, pid in enumerate(truth.index):
        o = outcomes.loc[pid]
        ends = [o["progression_day"], o["last_followup_day"]]
        last = min(int(e) for e in ends if not pd.isna(e))
        mine = given[given["patient"] == pid]
        infusions = tuple(
            Dose(int(r.day), str(r.product), float(r.dose)) for r in mine.itertuples()
        )
        if not infusions or infusions[0].day != 0:
            raise StudyError(f"patient {pid}: no given cell infusion on day 0 in the cohort")
        patients.append(
            PatientSpec(
                id=str(pid),
                arm=str(truth.loc[pid, "arm"]),
                donor_is=DONOR_SIDES[i % 2],
                infusions=infusions,
                days=tuple(d for d in days if d <= 0 or d <= last),
                persists=bool(truth.loc[pid, "persistent"]),
                stratum=str(truth.loc[pid, "stratum"]),
            )
        )
    return StudyDesign(
        patients=tuple(patients),
        seed=cohort.model.seed if seed is None else seed,
        name="Simulated NK trial with outcomes",
        n_events=n_events,
    )


def trial_files(model: OutcomeModel, days=CLINICAL_DAYS) -> int:
    """How many FCS files `simulate_clinical_study` writes for `model` (cheap: no events)."""
    cohort = simulate_cohort(tied_model(model, days))
    return len(clinical_design(cohort, days=days).samples())


def simulate_clinical_study(
    out_dir: str | os.PathLike,
    model: OutcomeModel | None = None,
    *,
    n_events: int = 5_000,
    days=CLINICAL_DAYS,
    landmark_day: int = 28,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> OutcomeCohort:
    """Write a simulated trial with outcomes into `out_dir` (see the module docstring).

    Parameters
    ----------
    out_dir : path
    model : OutcomeModel, optional
        Its ``arms`` and ``detection_days`` are replaced (`tied_model`).
    n_events : int
        Events per FCS file.
    days : sequence of int
        Sampling days.
    landmark_day : int
        ``[outcomes] landmark_day`` written into study.toml.
    overwrite, workers, progress
        As `cytokit.simulate.simulate_study`.

    Returns
    -------
    OutcomeCohort
        The cohort written (its ``truth`` and ``model`` are the ground truth).
    """
    model = tied_model(model or OutcomeModel(n_patients=40), days)
    cohort = simulate_cohort(model)
    design = clinical_design(cohort, n_events=n_events, days=days)
    out = simulate_study(out_dir, design, overwrite=overwrite, workers=workers, progress=progress)
    (out / "infusions.csv").unlink()  # treatments.csv replaces it: skipped rows and IL-2 too
    write_cohort(out, cohort, persistence=False)
    toml = (out / "study.toml").read_text(encoding="utf-8")
    toml += (
        "\n[outcomes]  # simulated outcomes: truth/outcomes.csv, truth/outcome_model.json\n"
        f"landmark_day = {int(landmark_day)}\n"
        'population = "NK"\n'
    )
    atomic_write_text(out / "study.toml", toml)
    return cohort
