"""Clinical outcomes from a known model: persistence, progression, GVHD, skipped infusions, bags.

`simulate_cohort` draws a cohort of patients with treatment schedules,
outcomes and donor-cell persistence points from `OutcomeModel`, and keeps
the truth behind every value, so the clinical layer (`cytokit.clinical`) can
be checked against it.

The model
---------
* **Strata and arms.** Stratum A (marrow relapse after transplant) or B
  (induction failure or persistent disease), half each; arm NK (one NK
  infusion on day 0, CD3−CD56+ cells/kg, then IL-2 every other day from day 1,
  six doses) or CIK (DLI on days 0 and 21, then CIK at dose levels 1, 2, 3 on
  days 42, 63, 84; CD3+ cells/kg), taken in turn from ``arms`` (both, alternating).
* **Persistence.** Donor cells of a patient persist with probability
  ``p_persist``: they become detectable at a day drawn uniformly from
  ``detection_days`` (by the landmark, day 28), then cells/µL decay from a
  lognormal level with half-life ``half_life_days``. Every later given cell
  infusion (CIK, from day `LATE_INFUSION_DAY`) adds a transient wave of
  infused cells (``transient_per_ul`` donor cells/µL the next day, half-life
  `TRANSIENT_HALF_LIFE` days), detectable for about a week, that does not
  change the hazard. Samples are taken on `SAMPLE_DAYS` while the patient is alive,
  progression-free and followed.
* **Progression.** Hazard ``ln 2 / median_pfs[stratum]`` while donor cells
  are not (yet) detectable, times ``hazard_ratio`` from the day they are: a
  time-dependent covariate whose effect is ``hazard_ratio`` exactly. Among
  patients alive and progression-free at a landmark after every detection
  day, those detected have ``hazard_ratio`` times the hazard of the others
  in each stratum: what a landmark analysis stratified by stratum estimates.
  Comparing "ever detected" with "never" from day 0 is biased: a CIK
  patient must be alive and progression-free to receive a CIK infusion and
  be seen with its transient wave, and patients who progress before their
  persisting cells are seen count as never detected.
* **Death.** After progression with hazard ``ln 2 / median_os_after_progression``;
  without progression (non-relapse mortality) with hazard ``ln 2 /
  median_nrm`` (``math.inf``: none), times ``severe_gvhd_nrm`` after grade
  III-IV acute GVHD. Non-relapse deaths are PFS events that persistence
  does not prevent, so with them the PFS hazard ratio is nearer 1 than
  ``hazard_ratio``.
* **Acute GVHD.** Each given infusion of ``d`` CD3+ cells/kg (the NK bag's
  residual CD3+ dose for NK) starts grade >= II GVHD with probability
  ``1 − exp(−gvhd_per_1e6 · d / 10⁶)``, onset 10-25 days later; grade III-IV
  with probability ``p_severe`` (a DLT, on its onset day). A scheduled
  infusion after the onset of grade >= II GVHD is not given (``given = no``),
  as the DLI + CIK protocol says; nor after progression or death. Patients
  without grade >= II have grade 0, or grade I with probability ``p_grade1``.
* **Response** at day ``response_day``: PD when progression came first (on
  the progression day), none when the patient died or left follow-up before;
  else CR/PR/SD with ``response_persistent`` or ``response_other`` probabilities.
* **Follow-up.** Uniform accrual over ``accrual_days``, analysis
  ``accrual_days + min_followup_days`` after the first patient.

`simulate_bags` draws product bags of known composition and their
pre/post-selection events (`cytokit.clinical.product.SAMPLE_COLUMNS`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._io import atomic_write_text, write_csv
from cytokit.errors import StudyError

__all__ = [
    "SAMPLE_DAYS",
    "OutcomeCohort",
    "OutcomeModel",
    "simulate_bags",
    "simulate_cohort",
    "write_cohort",
]

#: Sampling days of the persistence monitoring per arm (while progression-free and followed);
#: CIK patients are also sampled the day after each CIK infusion and a week later.
SAMPLE_DAYS = {
    "NK": (-7, 3, 7, 14, 21, 28, 42, 60, 90, 120, 180, 270, 365, 540, 730),
    "CIK": (-7, 3, 7, 14, 21, 28, 42, 43, 49, 63, 64, 70, 84, 85, 91, 120, 180, 270, 365, 540, 730),
}  # fmt: skip
#: Half-life (days) of the transient wave of infused cells after a later infusion.
TRANSIENT_HALF_LIFE = 3.0
#: Infusions from this day on add a transient wave (earlier ones found the persisting cells).
LATE_INFUSION_DAY = 30
NK_DOSE, DLI_DOSE = 1.5e7, 1e6
CIK_LEVELS = {1: 3e6, 2: 5e6, 3: 1e7}
IL2_DAYS = (1, 3, 5, 7, 9, 11)
#: Donor cells/µL: limit of quantification and of detection (status of a point).
LOQ, LOD = 0.5, 0.05


@dataclass(frozen=True)
class OutcomeModel:
    """Parameters of the outcome model (see the module docstring)."""

    n_patients: int = 60
    seed: int = 1
    hazard_ratio: float = 0.5
    p_persist: float = 0.5
    detection_days: tuple[int, int] = (3, 28)
    half_life_days: float = 40.0
    transient_per_ul: float = 2.0
    median_pfs: dict[str, float] = field(default_factory=lambda: {"A": 180.0, "B": 60.0})
    median_os_after_progression: float = 120.0
    median_nrm: float = 3000.0
    severe_gvhd_nrm: float = 8.0
    gvhd_per_1e6: float = 0.04
    p_severe: float = 0.35
    p_grade1: float = 0.15
    nk_bag_cd3_per_kg: float = 3e4
    response_day: int = 100
    response_persistent: tuple[float, float, float] = (0.5, 0.3, 0.2)
    response_other: tuple[float, float, float] = (0.2, 0.3, 0.5)
    accrual_days: int = 730
    min_followup_days: int = 365
    arms: tuple[str, ...] = ("NK", "CIK")

    def __post_init__(self) -> None:
        if not (isinstance(self.n_patients, int) and self.n_patients >= 1):
            raise StudyError(f"n_patients={self.n_patients!r} must be a whole number >= 1")
        if not (self.hazard_ratio > 0 and math.isfinite(self.hazard_ratio)):
            raise StudyError(f"hazard_ratio={self.hazard_ratio!r} must be a positive number")
        if not 0 <= self.p_persist <= 1:
            raise StudyError(f"p_persist={self.p_persist!r} must be a probability in [0, 1]")
        if not self.arms or any(a not in ("NK", "CIK") for a in self.arms):
            raise StudyError(f"arms={self.arms!r} must name 'NK' and/or 'CIK' (taken in turn)")
        lo, hi = self.detection_days
        if not 0 < lo <= hi:
            raise StudyError(f"detection_days={self.detection_days!r} must be 0 < first <= last")


@dataclass
class OutcomeCohort:
    """A simulated cohort.

    Attributes
    ----------
    model : OutcomeModel
    treatments : DataFrame
        ``treatments.csv`` rows (patient, day, product, kind, dose, unit,
        dose_level, given).
    outcomes : DataFrame
        ``outcomes.csv`` rows.
    points : DataFrame
        Persistence points (patient, day, value, status), as chimerism.csv
        would give them.
    strata : dict
        Patient → stratum.
    truth : DataFrame
        Per patient: stratum, arm, persistent, detection_day, hazard (per
        day, before detection), progression/death/GVHD days before censoring,
        end of follow-up, and why each skipped infusion was skipped.
    """

    model: OutcomeModel
    treatments: pd.DataFrame
    outcomes: pd.DataFrame
    points: pd.DataFrame
    strata: dict[str, str]
    truth: pd.DataFrame


def _schedule(arm: str) -> list[dict]:
    if arm == "NK":
        rows = [{"day": 0, "product": "NK", "kind": "cells", "dose": NK_DOSE, "unit": "CD3-CD56+ cells/kg", "dose_level": None}]  # fmt: skip
        rows += [
            {"day": d, "product": "IL-2", "kind": "drug", "dose": 1.0, "unit": "MIU/m2", "dose_level": None}
            for d in IL2_DAYS
        ]  # fmt: skip
        return rows
    rows = [
        {"day": d, "product": "DLI", "kind": "cells", "dose": DLI_DOSE, "unit": "CD3+ cells/kg", "dose_level": None}
        for d in (0, 21)
    ]  # fmt: skip
    rows += [
        {"day": 21 * (level + 1), "product": "CIK", "kind": "cells", "dose": dose, "unit": "CD3+ cells/kg", "dose_level": level}
        for level, dose in CIK_LEVELS.items()
    ]  # fmt: skip
    return rows


def _time_to_event(e: float, hazard: float, change_day: float, factor: float) -> float:
    """The time at which the cumulative hazard reaches `e`: `hazard` per day before
    `change_day`, `hazard · factor` after (inversion of a unit exponential `e`)."""
    if hazard <= 0:
        return math.inf
    if e < hazard * change_day:
        return e / hazard
    return change_day + (e - hazard * change_day) / (hazard * factor)


def simulate_cohort(model: OutcomeModel | None = None) -> OutcomeCohort:
    """Draw a cohort from `model` (same model and seed, same cohort).

    Returns
    -------
    OutcomeCohort
    """
    model = model or OutcomeModel()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([model.seed, 0x0C7C])))
    width = len(str(model.n_patients))
    analysis_day = model.accrual_days + model.min_followup_days
    treatments, outcomes, points, truth = [], [], [], []
    strata: dict[str, str] = {}
    for i in range(model.n_patients):
        patient = f"P{i + 1:0{max(width, 2)}d}"
        stratum = "A" if rng.random() < 0.5 else "B"
        arm = model.arms[i % len(model.arms)]
        strata[patient] = stratum
        followup = analysis_day - rng.uniform(0, model.accrual_days)
        persistent = bool(rng.random() < model.p_persist)
        lo, hi = model.detection_days
        detection = float(rng.integers(lo, hi + 1)) if persistent else math.inf
        hazard = math.log(2) / model.median_pfs[stratum]
        progression = _time_to_event(rng.exponential(), hazard, detection, model.hazard_ratio)
        schedule = _schedule(arm)
        bag_cd3 = model.nk_bag_cd3_per_kg * float(rng.lognormal(0.0, 0.5))
        course, gvhd_onset, gvhd_grade, nrm = _course(model, rng, schedule, progression, bag_cd3)
        if gvhd_grade == 0 and rng.random() < model.p_grade1:
            gvhd_grade, grade1_onset = 1, float(rng.integers(7, 40))
        else:
            grade1_onset = math.inf
        death_after = progression + rng.exponential(model.median_os_after_progression / math.log(2))
        death = nrm if nrm < progression else death_after
        progression_seen = progression if progression < death else math.inf
        end = min(followup, death)
        prog_day = _day_of(progression_seen) if progression_seen <= end else None
        death_day = _day_of(death) if death <= followup else None
        end_day = death_day if death_day is not None else math.floor(followup)
        if prog_day is not None and prog_day > end_day:
            prog_day = end_day
        treatments += [
            {"patient": patient, **row} for row in course if row["day"] <= end_day
        ]  # rows due after the analysis day are not in the file yet
        onset = gvhd_onset if gvhd_grade >= 2 else grade1_onset
        onset_day = _day_of(onset) if math.isfinite(onset) and onset <= end_day else None
        grade = gvhd_grade if onset_day is not None else 0
        severe = grade >= 3
        response, response_day = _response(
            model, rng, persistent, prog_day, end_day, death_day
        )  # fmt: skip
        outcomes.append(
            {
                "patient": patient,
                "response": response or "",
                "response_day": response_day,
                "agvhd_max_grade": grade,
                "agvhd_onset_day": onset_day,
                "dlt": "yes" if severe else "no",
                "dlt_day": onset_day if severe else None,
                "progression_day": prog_day,
                "last_followup_day": end_day,
                "death_day": death_day,
                "death_cause": "" if death_day is None else ("relapse" if prog_day is not None else "non-relapse"),
            }
        )  # fmt: skip
        boosts = [
            r["day"]
            for r in course
            if r["kind"] == "cells" and r["given"] == "yes" and r["day"] >= LATE_INFUSION_DAY
        ]
        points += _points(model, rng, patient, arm, detection, boosts, prog_day, end_day)
        truth.append(
            {
                "patient": patient,
                "stratum": stratum,
                "arm": arm,
                "persistent": persistent,
                "detection_day": detection if persistent else math.nan,
                "hazard_per_day": hazard,
                "hazard_ratio": model.hazard_ratio,
                "progression_time": progression,
                "death_time": death,
                "gvhd_onset_time": gvhd_onset if gvhd_grade >= 2 else math.nan,
                "gvhd_grade": gvhd_grade,
                "nk_bag_cd3_per_kg": bag_cd3 if arm == "NK" else math.nan,
                "followup_time": followup,
            }
        )
    t_frame = pd.DataFrame(treatments)
    t_frame["dose_level"] = t_frame["dose_level"].astype("Int64")
    o_frame = pd.DataFrame(outcomes)
    for c in ("response_day", "agvhd_onset_day", "dlt_day", "progression_day", "death_day"):
        o_frame[c] = o_frame[c].astype("Int64")
    return OutcomeCohort(
        model,
        t_frame,
        o_frame,
        pd.DataFrame(points, columns=["patient", "day", "value", "status"]),
        strata,
        pd.DataFrame(truth),
    )


def _course(model, rng, schedule, progression, bag_cd3):
    """The schedule as given, acute GVHD >= II and the non-relapse death time.

    In day order: a row is skipped after the onset of GVHD >= II (cell
    products), after progression or after death; each given T-cell dose may
    start GVHD (while none is under way), whose grade III-IV raises the
    non-relapse mortality from its onset.
    """
    e_nrm = rng.exponential()
    mu = math.log(2) / model.median_nrm
    onset, grade = math.inf, 0
    rows = []
    for row in schedule:
        day = row["day"]
        severe_onset = onset if grade >= 3 else math.inf
        reason = ""
        if row["kind"] == "cells" and day >= onset:
            reason = "acute GVHD >= II"
        elif day > 0 and day >= progression:
            reason = "progression"
        elif day > 0 and day >= _time_to_event(e_nrm, mu, severe_onset, model.severe_gvhd_nrm):
            reason = "death"
        rows.append({**row, "given": "no" if reason else "yes", "skip_reason": reason})
        if reason or row["kind"] != "cells" or math.isfinite(onset):
            continue
        cd3 = bag_cd3 if row["product"] == "NK" else row["dose"]
        if rng.random() < 1.0 - math.exp(-model.gvhd_per_1e6 * cd3 / 1e6):
            onset = day + float(rng.integers(10, 26))
            grade = int(rng.choice([3, 4])) if rng.random() < model.p_severe else 2
    nrm = _time_to_event(e_nrm, mu, onset if grade >= 3 else math.inf, model.severe_gvhd_nrm)
    return rows, onset, grade, nrm


def _day_of(t: float) -> int | None:
    """A continuous time as the whole day it falls on (day 0.3 is day 1)."""
    return math.ceil(t) if math.isfinite(t) else None


def _response(model, rng, persistent, prog_day, end_day, death_day):
    day = model.response_day
    if prog_day is not None and prog_day <= day:
        return "PD", prog_day
    if end_day < day or (death_day is not None and death_day <= day):
        return None, None
    p = model.response_persistent if persistent else model.response_other
    return str(rng.choice(["CR", "PR", "SD"], p=list(p))), day


def _points(model, rng, patient, arm, detection, boosts, prog_day, end_day) -> list[dict]:
    """Monitoring samples while progression-free and followed; the true level with 20 % noise.

    The persisting cells (from `detection` on) plus, after each later given
    infusion in `boosts`, a transient wave of infused cells (peak the next
    day, half-life `TRANSIENT_HALF_LIFE` days) that does not alter the hazard.
    """
    last = min(x for x in (prog_day, end_day) if x is not None)
    level = float(rng.lognormal(math.log(5.0), 0.8))
    rows = []
    for day in SAMPLE_DAYS[arm]:
        if day > last:
            break
        value = 0.01
        if day >= detection:
            value += level * 2.0 ** (-(day - detection) / model.half_life_days)
        for boost in boosts:
            if day > boost:
                value += model.transient_per_ul * 2.0 ** (-(day - boost - 1) / TRANSIENT_HALF_LIFE)
        value *= float(rng.lognormal(0.0, 0.2))
        status = (
            "quantified" if value >= LOQ else "not_quantifiable" if value >= LOD else "not_detected"
        )
        rows.append({"patient": patient, "day": day, "value": value, "status": status})
    return rows


def simulate_bags(
    n: int,
    *,
    seed: int = 1,
    events_pre: int = 50_000,
    events_post: int = 10_000,
    weight_kg: float = 70.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Product bags of known composition and their pre- and post-selection events.

    Each bag: an apheresis product (nucleated cells/mL and volume; live
    fraction, NK and CD3+ shares of live cells) and, after CD3 depletion and
    CD56 selection, the bag (NK purity, CD3+ share, viability, volume). The
    events of each sample are drawn multinomially from those fractions.

    Returns
    -------
    samples : DataFrame
        `cytokit.clinical.product.SAMPLE_COLUMNS`, a pre and a post row per bag.
    truth : DataFrame
        Per bag: patient, day, product, nk_purity_pct, viability_pct,
        nk_recovery_pct, cd3_log_depletion, cd3_per_kg, nk_per_kg.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xBA6])))
    samples, truth = [], []
    for i in range(n):
        patient = f"B{i + 1:03d}"
        pre = {
            "nucleated_per_ml": float(rng.uniform(5e7, 2e8)),
            "volume_ml": float(rng.uniform(200, 400)),
            "viable": float(rng.uniform(0.95, 0.99)),
            "nk": float(rng.uniform(0.05, 0.15)),
            "cd3": float(rng.uniform(0.4, 0.7)),
        }
        cells_pre = pre["nucleated_per_ml"] * pre["volume_ml"]
        while True:  # a bag whose NK and CD3+ shares leave room for other cells
            recovery = float(rng.uniform(0.3, 0.7))
            log_depletion = float(rng.uniform(3.0, 4.5))
            purity = float(rng.uniform(0.8, 0.98))
            nk_post_cells = cells_pre * pre["viable"] * pre["nk"] * recovery
            cd3_post_cells = cells_pre * pre["viable"] * pre["cd3"] / 10**log_depletion
            live_post = nk_post_cells / purity
            cd3_share = cd3_post_cells / live_post
            if purity + cd3_share < 0.995:
                break
        viable_post = float(rng.uniform(0.85, 0.98))
        cells_post = live_post / viable_post
        post = {
            "volume_ml": float(rng.uniform(50, 150)),
            "viable": viable_post,
            "nk": purity,
            "cd3": cd3_share,
        }
        post["nucleated_per_ml"] = cells_post / post["volume_ml"]
        for stage, spec, events in (("pre", pre, events_pre), ("post", post, events_post)):
            live = spec["viable"]
            p = [
                1 - live,
                live * spec["nk"],
                live * spec["cd3"],
                live * (1 - spec["nk"] - spec["cd3"]),
            ]
            _, nk, cd3, other = rng.multinomial(events, p)
            samples.append(
                {
                    "patient": patient,
                    "day": 0,
                    "product": "NK",
                    "stage": stage,
                    "events": int(events),
                    "live": int(nk + cd3 + other),
                    "nk": int(nk),
                    "cd3": int(cd3),
                    "nucleated_per_ml": spec["nucleated_per_ml"],
                    "volume_ml": spec["volume_ml"],
                    "weight_kg": weight_kg,
                }
            )
        truth.append(
            {
                "patient": patient,
                "day": 0,
                "product": "NK",
                "nk_purity_pct": 100 * purity,
                "viability_pct": 100 * viable_post,
                "nk_recovery_pct": 100 * recovery,
                "cd3_log_depletion": log_depletion,
                "cd3_per_kg": cd3_post_cells / weight_kg,
                "nk_per_kg": nk_post_cells / weight_kg,
            }
        )
    return pd.DataFrame(samples), pd.DataFrame(truth)


def write_cohort(
    folder: str | Path, cohort: OutcomeCohort, *, persistence: bool = True
) -> dict[str, Path]:
    """Write ``treatments.csv``, ``outcomes.csv``, ``persistence.csv`` and ``truth/outcomes*``.

    ``persistence=False`` leaves ``persistence.csv`` out (a study whose FCS
    files are the persistence, `cytokit.simulate.clinical_study`).

    Returns
    -------
    dict of str to Path
        What was written.
    """
    folder = Path(folder)
    written = {}
    t_cols = ["patient", "day", "product", "kind", "dose", "unit", "dose_level", "given"]
    o_cols = list(cohort.outcomes.columns)
    for name, frame, cols in (
        ("treatments.csv", cohort.treatments, t_cols),
        ("outcomes.csv", cohort.outcomes, o_cols),
        *([("persistence.csv", cohort.points, list(cohort.points.columns))] if persistence else []),
        ("truth/outcomes.csv", cohort.truth, list(cohort.truth.columns)),
        ("truth/treatments.csv", cohort.treatments, [*t_cols, "skip_reason"]),
    ):
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        written[name] = write_csv(folder / name, rows, cols)
    model = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cohort.model).items()}
    written["truth/outcome_model.json"] = atomic_write_text(
        folder / "truth" / "outcome_model.json", pd.Series(model).to_json(indent=2) + "\n"
    )
    return written
