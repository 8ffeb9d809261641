"""What a simulated study is: patients, infusion schedules, sampling days, acquisition settings.

`StudyDesign` is a frozen value object: everything else (per-patient biology,
per-sample parameters, the events) is derived from it and its ``seed``, so a
design plus a seed is the whole recipe of a study.

Infusion protocols modelled (doses per kg of recipient body weight):

* **NK**: haploidentical donor NK cells (CD3-depleted, CD56-selected), one
  infusion at day 0, optionally a second one; doses of the order of
  10^6-10^7 NK cells/kg as in Miller et al., Blood 2005;105:3051-3057 and
  Curti et al., Blood 2011;118:3273-3279. The recipient is lymphodepleted
  (fludarabine/cyclophosphamide) before the infusion, as in Miller et al.
* **CIK**: two donor lymphocyte infusions (DLI) three weeks apart, then three
  donor CIK infusions in escalating doses every three weeks (doses as CD3+
  cells/kg), after the sequential DLI + CIK scheme of Introna et al.,
  Haematologica 2007;92:952-959 and Biol Blood Marrow Transplant
  2017;23:2070-2078.

Samples taken on an infusion day are drawn before the infusion.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from cytokit._numbers import MAX_DAYS
from cytokit.errors import StudyError

__all__ = [
    "DEFAULT_DAYS",
    "PRODUCTS",
    "Dose",
    "PatientSpec",
    "StudyDesign",
    "benchmark_study_design",
    "default_infusions",
    "make_patients",
    "preset_design",
    "sample_study_design",
]

#: Products an infusion can be (``Dose.product``); the patient's arm is NK or CIK.
PRODUCTS = ("NK", "DLI", "CIK")
ARMS = ("NK", "CIK")
DONOR_SIDES = ("positive", "negative")

#: Default sampling days per arm: a pre-infusion baseline, then dense early
#: sampling and, for CIK, samples right after each CIK infusion and a tail after
#: the last one (so a half-life can be fitted to the post-peak decay).
DEFAULT_DAYS = {
    "NK": (-7, 1, 3, 7, 14, 21, 28, 35, 42, 60, 90),
    "CIK": (-7, 7, 14, 21, 42, 43, 49, 63, 64, 70, 84, 85, 88, 91, 98, 112, 126),
}

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True)
class Dose:
    """One infusion.

    Attributes
    ----------
    day : int
        Day relative to the first infusion (the first one is at day 0).
    product : {"NK", "DLI", "CIK"}
        NK: haploidentical NK cells, dose in CD3-CD56+ cells/kg. DLI and CIK:
        dose in CD3+ cells/kg.
    dose_per_kg : float
        Cells per kg of body weight (> 0).
    """

    day: int
    product: str
    dose_per_kg: float

    def __post_init__(self) -> None:
        if self.product not in PRODUCTS:
            raise StudyError(
                f"infusion product {self.product!r} is not one of {', '.join(PRODUCTS)}"
            )
        if not (math.isfinite(self.dose_per_kg) and self.dose_per_kg > 0):
            raise StudyError(
                f"infusion dose_per_kg={self.dose_per_kg!r} must be a positive number of cells/kg"
            )
        object.__setattr__(self, "day", _as_int(self.day, "infusion day"))

    @property
    def dose_unit(self) -> str:
        return "CD3-CD56+ cells/kg" if self.product == "NK" else "CD3+ cells/kg"


def default_infusions(arm: str, *, second_nk_day: int | None = None, scale: float = 1.0):
    """The standard schedule of an arm (see the module docstring).

    Parameters
    ----------
    arm : {"NK", "CIK"}
    second_nk_day : int, optional
        NK arm: give a second NK infusion (same dose) on this day.
    scale : float
        Multiplies every dose (patient-to-patient product yield).

    Returns
    -------
    tuple of Dose
    """
    if arm == "NK":
        doses = [Dose(0, "NK", 1.5e7 * scale)]
        if second_nk_day is not None:
            doses.append(Dose(second_nk_day, "NK", 1.5e7 * scale))
        return tuple(doses)
    if arm == "CIK":
        return (
            Dose(0, "DLI", 1e6 * scale),
            Dose(21, "DLI", 1e6 * scale),
            Dose(42, "CIK", 3e6 * scale),
            Dose(63, "CIK", 5e6 * scale),
            Dose(84, "CIK", 1e7 * scale),
        )
    raise StudyError(f"arm {arm!r} is not one of {', '.join(ARMS)}")


@dataclass(frozen=True)
class PatientSpec:
    """One patient of a simulated study.

    Attributes
    ----------
    id : str
        Identifier, also the start of file names: letters, digits, ``_ . -``.
    arm : {"NK", "CIK"}
        Which product the patient gets (drives the default schedule, days and
        lymphodepletion).
    donor_is : {"positive", "negative"}
        The donor's side of the donor marker (HLA-A2): "positive" means an
        HLA-A2+ donor into an HLA-A2- recipient, "negative" the reverse.
    infusions : tuple of Dose
        Empty: the arm's standard schedule (`default_infusions`).
    days : tuple of int
        Sampling days. Empty: the study's `StudyDesign.days`, else the arm's
        `DEFAULT_DAYS`.
    persists : bool
        False: the infused donor cells are rejected before the first sample
        after an infusion (no donor cell in any sample; the outcome
        simulator's non-persisting patients, `cytokit.simulate.clinical_study`).
    stratum : str
        The manifest's ``stratum`` (empty: the arm).
    """

    id: str
    arm: str = "NK"
    donor_is: str = "positive"
    infusions: tuple[Dose, ...] = ()
    days: tuple[int, ...] = ()
    persists: bool = True
    stratum: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise StudyError(
                f"patient id {self.id!r} must be 1-40 letters, digits, '_', '.' or '-' "
                "(it names the FCS files)"
            )
        if self.arm not in ARMS:
            raise StudyError(f"patient {self.id}: arm {self.arm!r} must be 'NK' or 'CIK'")
        if self.donor_is not in DONOR_SIDES:
            raise StudyError(
                f"patient {self.id}: donor_is {self.donor_is!r} must be 'positive' or 'negative'"
            )
        infusions = tuple(self.infusions) or default_infusions(self.arm)
        infusions = tuple(sorted(infusions, key=lambda d: d.day))
        if infusions[0].day != 0:
            raise StudyError(
                f"patient {self.id}: the first infusion is on day {infusions[0].day}; days "
                "count from the first infusion, so it must be on day 0"
            )
        object.__setattr__(self, "infusions", infusions)
        object.__setattr__(self, "days", _days(self.days, f"patient {self.id}: days"))


@dataclass(frozen=True)
class StudyDesign:
    """A simulated NK/CIK monitoring study.

    Attributes
    ----------
    patients : tuple of PatientSpec
        At least one; ids unique.
    seed : int
        Everything random derives from it (>= 0).
    name : str
        ``[study] name`` in study.toml.
    n_events : int
        Events per FCS file (>= 1).
    days : tuple of int
        Sampling days for patients without their own; empty: per-arm defaults.
    beads : bool
        Counting beads in every tube (single-platform absolute counts).
    beads_per_test, sample_volume_ul : float
        Beads in each tube (lot value, e.g. ~50,000 for BD Trucount tubes) and
        µL of blood stained; cells/µL = cell events / bead events ×
        beads_per_test / sample_volume_ul.
    donor_markers : tuple of str
        The anti-HLA stains telling donor from recipient; patient ``i`` (in
        order) is typed with ``donor_markers[i % len]``, as a lab picks the
        allele that differs between each donor and recipient. All are stained
        in the same fluorochrome (the FITC-A detector, whose ``$PnS`` names the
        patient's marker in its files), so study.toml's panel maps each one to
        FITC-A and the manifest gives each patient's ``donor_marker``.
    drift : bool
        Day-to-day instrument drift of scatter and fluorescence gains.
    drift_max : float
        Largest relative drift, e.g. 0.35: gains between 1/1.35 and 1.35.
    event_rate : float
        Acquisition rate (events/s), for the Time channel.
    timestep : float
        Seconds per Time unit (``$TIMESTEP``).
    min_events : int
        ``[qc] min_events`` in study.toml.
    """

    patients: tuple[PatientSpec, ...]
    seed: int = 1
    name: str = "Simulated NK/CIK persistence study"
    n_events: int = 50_000
    days: tuple[int, ...] = ()
    beads: bool = True
    beads_per_test: float = 50_000.0
    sample_volume_ul: float = 50.0
    donor_markers: tuple[str, ...] = ("HLA-A2",)
    drift: bool = True
    drift_max: float = 0.35
    event_rate: float = 3_000.0
    timestep: float = 0.01
    min_events: int = 50
    sample_type: str = "PB"
    start_date: tuple[int, int, int] = field(default=(2024, 1, 8))

    def __post_init__(self) -> None:
        patients = tuple(self.patients)
        if not patients:
            raise StudyError("a study design needs at least one patient; got none")
        for p in patients:
            if not isinstance(p, PatientSpec):
                raise StudyError(f"patients must be PatientSpec objects; got {p!r}")
        ids = [p.id for p in patients]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise StudyError(f"patient ids must be unique; repeated: {', '.join(dupes)}")
        object.__setattr__(self, "patients", patients)
        seed = _as_int(self.seed, "seed")
        if seed < 0:
            raise StudyError(f"seed={seed} must be >= 0")
        object.__setattr__(self, "seed", seed)
        n = _as_int(self.n_events, "n_events")
        if n < 1:
            raise StudyError(f"n_events={n} must be >= 1 (events per FCS file)")
        object.__setattr__(self, "n_events", n)
        object.__setattr__(self, "days", _days(self.days, "days"))
        for name in ("beads_per_test", "sample_volume_ul", "event_rate", "timestep"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise StudyError(f"{name}={value!r} must be a positive number")
        if not (0 <= self.drift_max < 1):
            raise StudyError(
                f"drift_max={self.drift_max!r} must be in [0, 1) (a relative gain change, "
                "e.g. 0.35 for up to ±35%)"
            )
        if _as_int(self.min_events, "min_events") < 0:
            raise StudyError(f"min_events={self.min_events} must be >= 0")
        if not self.name.strip():
            raise StudyError("name must not be empty (it is [study] name in study.toml)")
        markers = tuple(self.donor_markers) if not isinstance(self.donor_markers, str) else ()
        taken = {"CD56", "Viability", "CD16", "CD3", "CD8", "CD45"}
        if (
            not markers
            or len(set(markers)) != len(markers)
            or not all(isinstance(m, str) and _ID.match(m) and m not in taken for m in markers)
        ):
            raise StudyError(
                f"donor_markers={self.donor_markers!r} must be one or more distinct marker "
                "names (letters, digits, '_ . -') other than the panel's, e.g. ('HLA-A2', 'HLA-B7')"
            )
        object.__setattr__(self, "donor_markers", markers)

    def patient(self, patient: str | PatientSpec) -> PatientSpec:
        """The `PatientSpec` of a patient id (or `patient` itself)."""
        if isinstance(patient, PatientSpec):
            return patient
        for p in self.patients:
            if p.id == patient:
                return p
        raise StudyError(
            f"no patient {patient!r} in the design; patients are "
            + ", ".join(p.id for p in self.patients)
        )

    def donor_marker_of(self, patient: str | PatientSpec) -> str:
        """The donor marker a patient is typed with (see `donor_markers`)."""
        p = self.patient(patient)
        index = next(i for i, q in enumerate(self.patients) if q.id == p.id)
        return self.donor_markers[index % len(self.donor_markers)]

    def days_of(self, patient: str | PatientSpec) -> tuple[int, ...]:
        """Sampling days of a patient (its own, else the study's, else its arm's)."""
        p = self.patient(patient)
        return p.days or self.days or DEFAULT_DAYS[p.arm]

    def samples(self) -> list[tuple[PatientSpec, int]]:
        """Every (patient, day) of the study, patient by patient, days ascending."""
        return [(p, d) for p in self.patients for d in self.days_of(p)]


def make_patients(
    n: int,
    *,
    seed: int = 1,
    arm: str | None = None,
    days: tuple[int, ...] = (),
) -> tuple[PatientSpec, ...]:
    """`n` patients ``P01, P02, ...`` with varied, seed-determined protocols.

    Arms alternate NK, CIK (or are all `arm`); donor sides alternate positive,
    negative; every second NK patient gets a second NK infusion on day 14; each
    patient's doses are the standard ones times a lognormal yield factor
    (median 1, sd 0.3 in log) rounded to two significant digits.
    """
    n = _as_int(n, "number of patients")
    if n < 1:
        raise StudyError(f"number of patients={n} must be >= 1")
    if arm is not None and arm not in ARMS:
        raise StudyError(f"product {arm!r} must be 'NK' or 'CIK'")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x5EED])))
    scales = rng.lognormal(0.0, 0.3, size=n)
    out = []
    n_nk = 0
    for i in range(n):
        a = arm or ARMS[i % 2]
        scale = float(f"{scales[i]:.2g}")
        second = None
        if a == "NK":
            second = 14 if n_nk % 2 == 1 else None
            n_nk += 1
        out.append(
            PatientSpec(
                id=f"P{i + 1:02d}",
                arm=a,
                donor_is=DONOR_SIDES[(i // 2) % 2] if arm is None else DONOR_SIDES[i % 2],
                infusions=default_infusions(a, second_nk_day=second, scale=scale),
                days=days,
            )
        )
    return tuple(out)


def sample_study_design() -> StudyDesign:
    """The design of ``sample_data/``: 3 patients, 15 files of 10,000 events (~7 MB).

    P01 (NK arm, HLA-A2+ donor) sampled at baseline and twice a week for three
    weeks after its NK infusion (days -7, 7, 10, 14, 17, 21): four points in
    the NK decay phase with at least 20 donor events, so the demo estimates a
    half-life and draws its fitted line. P02 (CIK arm, HLA-A2- donor) on days
    -7, 43, 64, 85 (after each CIK infusion). P03 (NK arm, HLA-A2- donor,
    second NK infusion on day 14) on days -7, 3, 7, 14, 28. Seed 20240108.
    """
    patients = (
        PatientSpec(
            "P01", "NK", "positive", default_infusions("NK", scale=1.2), (-7, 7, 10, 14, 17, 21)
        ),
        PatientSpec("P02", "CIK", "negative", default_infusions("CIK"), (-7, 43, 64, 85)),
        PatientSpec(
            "P03",
            "NK",
            "negative",
            default_infusions("NK", second_nk_day=14, scale=0.8),
            (-7, 3, 7, 14, 28),
        ),
    )
    return StudyDesign(
        patients=patients,
        seed=20240108,
        name="cytokit sample study (simulated)",
        n_events=10_000,
    )


def benchmark_study_design() -> StudyDesign:
    """A larger study for benchmarks: 6 patients (3 NK, 3 CIK), per-arm default days, 100,000 events per file (~4.4 MB each)."""
    return StudyDesign(
        patients=make_patients(6, seed=2),
        seed=2,
        name="cytokit benchmark study (simulated)",
        n_events=100_000,
    )


def preset_design(
    preset: str = "sample",
    *,
    seed: int | None = None,
    n_patients: int | None = None,
    n_events: int | None = None,
    days: tuple[int, ...] | list[int] | None = None,
    arm: str | None = None,
    drift: bool | None = None,
) -> StudyDesign:
    """A preset design with optional overrides (what ``cytokit simulate`` calls).

    Parameters
    ----------
    preset : {"sample", "benchmark"}
        `sample_study_design` or `benchmark_study_design`.
    seed : int, optional
        Replaces the preset's seed (the patients' protocols stay those of the
        preset unless `n_patients` or `arm` is given).
    n_patients : int, optional
        Replace the patients by `make_patients(n_patients, seed=seed, arm=arm)`.
    n_events : int, optional
        Events per file.
    days : sequence of int, optional
        Sampling days for every patient (replacing per-patient and per-arm days).
    arm : {"NK", "CIK"}, optional
        Every patient in this arm (patients are rebuilt with `make_patients`).
    drift : bool, optional
        False: no day-to-day instrument drift.

    Returns
    -------
    StudyDesign
    """
    presets = {"sample": sample_study_design, "benchmark": benchmark_study_design}
    if preset not in presets:
        raise StudyError(f"preset {preset!r} is not one of {', '.join(presets)}")
    design = presets[preset]()
    changes: dict = {}
    if seed is not None:
        changes["seed"] = seed
    if n_events is not None:
        changes["n_events"] = n_events
    if drift is not None:
        changes["drift"] = bool(drift)
    patients = design.patients
    if n_patients is not None or arm is not None:
        count = len(patients) if n_patients is None else n_patients
        patients = make_patients(count, seed=design.seed if seed is None else seed, arm=arm)
    if days is not None:
        days = _days(tuple(days), "days")
        if not days:
            raise StudyError("days is empty; give at least one sampling day")
        patients = tuple(replace(p, days=()) for p in patients)
        changes["days"] = days
    changes["patients"] = patients
    return replace(design, **changes)


def _as_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StudyError(f"{what}={value!r} must be a whole number")
    return int(value)


def _days(days, what: str) -> tuple[int, ...]:
    days = tuple(_as_int(d, what) for d in days)
    if len(set(days)) != len(days):
        raise StudyError(f"{what} {days} repeat a day; each sampling day must be unique")
    far = [d for d in days if abs(d) > MAX_DAYS]
    if far:  # the study's own manifest would refuse it
        raise StudyError(
            f"{what}: day {far[0]} is beyond ±{MAX_DAYS:,} days of the first infusion, which "
            "a study's manifest refuses"
        )
    return tuple(sorted(days))


def days_from_text(text: str, what: str = "days") -> tuple[int, ...]:
    """Sampling days written as ``"-7,3,7,14,28"`` (`cytokit simulate --days`): whole
    numbers, each once, within ±`MAX_DAYS`; a `StudyError` says which is not."""
    try:
        days = [int(d) for d in text.replace(" ", "").split(",")]
    except ValueError:
        raise StudyError(
            f"{text!r}: give whole days separated by commas, e.g. -7,3,7,14,28"
        ) from None
    return _days(days, what)
