"""``cytokit simulate --outcomes``: FCS files, treatments.csv and outcomes.csv of one cohort.

The truth is the outcome model's: which patients' donor cells persist, their
strata, the given and skipped infusions, and the hazard ratio of persisting
donor cells (`cytokit.simulate.outcomes.OutcomeModel`).
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit.cli.app import run
from cytokit.clinical import endpoints, landmark_analysis, read_outcomes
from cytokit.simulate import simulate_clinical_study, trial_files
from cytokit.simulate.outcomes import OutcomeModel
from cytokit.study import load_study


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_files_tell_one_story(tmp_path):
    model = OutcomeModel(n_patients=10, seed=7, hazard_ratio=0.4)
    out = tmp_path / "trial"
    cohort = simulate_clinical_study(out, model, n_events=1_500, days=(-7, 3, 28))
    truth = cohort.truth.set_index("patient")
    assert not (out / "infusions.csv").exists()  # treatments.csv replaces it
    study = load_study(out)  # no problem in any file, every patient in the manifest
    assert study.clinical.settings.landmark_day == 28
    assert study.clinical.settings.population == "NK"
    # the schedule: every cohort row, IL-2 and skipped ones too
    treatments = _rows(out / "treatments.csv")
    assert len(treatments) == len(cohort.treatments) == len(study.clinical.treatments)
    assert {r["product"] for r in treatments} == {"NK", "IL-2"}
    # the FCS simulator's infusions are the given cell rows
    given = cohort.treatments[
        (cohort.treatments["kind"] == "cells") & (cohort.treatments["given"] == "yes")
    ]
    sim = pd.read_csv(out / "truth" / "infusions.csv")
    assert sorted(zip(sim["patient"], sim["day"], sim["dose_per_kg"], strict=True)) == sorted(
        zip(given["patient"], given["day"], given["dose"], strict=True)
    )
    # strata are the outcome model's; samples stop at progression or last follow-up
    outcomes = pd.read_csv(out / "outcomes.csv").set_index("patient")
    for row in _rows(out / "manifest.csv"):
        pid, day = row["patient"], int(row["day"])
        assert row["stratum"] == truth.loc[pid, "stratum"]
        ends = outcomes.loc[pid, ["progression_day", "last_followup_day"]].dropna()
        assert day <= 0 or day <= ends.min()
    # donor NK cells exactly where the outcome model says they persist
    pops = pd.read_csv(out / "truth" / "populations.csv")
    nk = pops[(pops["population"] == "NK") & (pops["day"] > 0)]
    for pid, rows in nk.groupby("patient"):
        if truth.loc[pid, "persistent"]:
            assert (rows["donor_per_ul"] > 1).all(), pid
        else:
            assert (rows["donor_per_ul"] == 0).all(), pid
    # the model written is the one used: detection (and the lower hazard) from day 3
    assert cohort.model.detection_days == (3, 3) and cohort.model.arms == ("NK",)
    assert trial_files(model, (-7, 3, 28)) == len(_rows(out / "manifest.csv"))


def test_cli_outcomes_writes_the_library_trial(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["simulate", str(out), "--outcomes", "--patients", "4", "--events", "800"]
    assert run([*args, "--days", "-7,3", "--seed", "2", "--hazard-ratio", "0.3"]) == 0
    assert "4 patient(s) with treatments.csv and outcomes.csv" in capsys.readouterr().err
    ref = tmp_path / "ref"
    simulate_clinical_study(
        ref, OutcomeModel(n_patients=4, seed=2, hazard_ratio=0.3), n_events=800, days=(-7, 3)
    )
    for name in ("treatments.csv", "outcomes.csv", "manifest.csv", "study.toml"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    fcs = sorted(p.name for p in (out / "fcs").glob("*.fcs"))
    assert fcs and fcs == sorted(p.name for p in (ref / "fcs").glob("*.fcs"))
    assert run([*args, "--days", "-7,3", "--seed", "2"]) == 1  # exists: --force to replace


def _truth_points(out, truth: pd.DataFrame) -> pd.DataFrame:
    """Persistence as the model has it, on the manifest's days: detected iff persistent."""
    rows = []
    for r in _rows(out / "manifest.csv"):
        day = int(r["day"])
        seen = bool(truth.loc[r["patient"], "persistent"]) and day > 0
        rows.append(
            {
                "patient": r["patient"],
                "day": day,
                "value": 1.0 if seen else 0.0,
                "status": "quantified" if seen else "not_detected",
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_analyze_recovers_the_landmark_hazard_ratio(tmp_path):
    """Three seeds of 24 patients (bounded: ~45 s each). In every seed analyze's landmark
    table is the landmark analysis of the true persistence (same groups, events and hazard
    ratio); over the seeds the 95 % CI covers the simulated hazard ratio and the estimate
    lies below 1 in at least 2 of 3 (a 95 % interval misses 1 seed in 3 with probability
    ~0.14, so the bound is loose on purpose)."""
    hr, covered, below = 0.3, 0, 0
    for seed in (3, 4, 5):
        model = OutcomeModel(n_patients=24, seed=seed, hazard_ratio=hr, median_nrm=math.inf)
        study = tmp_path / f"s{seed}"
        cohort = simulate_clinical_study(study, model, n_events=4_000, days=(-7, 3, 14, 28))
        results = cytokit.analyze(study, tmp_path / f"out{seed}", workers=1)
        got = results.clinical["landmark"].set_index("endpoint").loc["pfs"]
        ends = endpoints(read_outcomes(study / "outcomes.csv"), strata=cohort.strata)
        truth = cohort.truth.set_index("patient")
        want = landmark_analysis(ends, _truth_points(study, truth), landmark_day=28).row
        for key in ("n_eligible", "n_excluded_event", "n_1", "events_1", "n_0", "events_0"):
            assert got[key] == want[key], (seed, key)
        assert np.isclose(got["hazard_ratio"], want["hazard_ratio"], rtol=1e-9)
        covered += got["hr_ci_low"] <= hr <= got["hr_ci_high"]
        below += got["hazard_ratio"] < 1
    assert covered >= 2 and below >= 2, (covered, below)
