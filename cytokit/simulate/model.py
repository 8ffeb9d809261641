"""The biology: populations, donor persistence curves, per-patient and per-sample parameters.

Event labels
------------
Every simulated event has one label (``uint8`` code = index in `LABELS`):

====  ===============  =====================================================
code  name             what
====  ===============  =====================================================
0     debris           low FSC/SSC particles (platelets, RBC ghosts, fragments)
1     doublet          two leukocytes passing together (FSC-A ≈ 2 × a singlet's)
2     dead             dead leukocytes (viability dye bright)
3     bead             counting beads (bright in every fluorescence channel)
4     granulocyte      CD45dim, SSC high, CD16 bright (neutrophils)
5     monocyte         CD45+, SSC intermediate
6     B                CD3-CD56- lymphocytes
7     T_CD8neg         CD3+CD56-CD8-
8     T_CD8pos         CD3+CD56-CD8+
9     NK_bright        CD3-CD56bright, CD16-/dim
10    NK_dim           CD3-CD56dim CD16+
11    CIK              CD3+CD56+ (mostly CD8+)
====  ===============  =====================================================

Donor persistence
-----------------
Donor cells/µL of a population are a sum over infusions ``k`` of
``dose_k × content(product_k, population) × g(t - day_k)`` where, for the
population's lineage (NK, CIK or T) with recovery ``R``, expansion fold ``E``
reached after ``d`` days and half-life ``h``:

    g(s) = 0                                    s <= 0 (samples precede same-day infusions)
    g(s) = R / BV × exp(ln(E) × s / d)          0 < s <= d
    g(s) = R / BV × E × 2 ** (-(s - d) / h)     s > d

``BV`` = 70,000 µL/kg, the adult blood volume (~70 mL/kg). All infusions of a
lineage share its kinetics, so after the last infusion's peak the donor count
decays exactly with half-life ``h``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from cytokit.simulate.design import PatientSpec, StudyDesign

__all__ = [
    "AGGREGATES",
    "CELL_LABELS",
    "LABELS",
    "LINEAGES",
    "Kinetics",
    "PatientModel",
    "SampleParameters",
    "patient_model",
    "persistence_curve",
    "population_peak",
    "sample_parameters",
]

LABELS = (
    "debris",
    "doublet",
    "dead",
    "bead",
    "granulocyte",
    "monocyte",
    "B",
    "T_CD8neg",
    "T_CD8pos",
    "NK_bright",
    "NK_dim",
    "CIK",
)
CODE = {name: i for i, name in enumerate(LABELS)}
#: Labels that are live single leukocytes (have cells/µL and a donor fraction).
CELL_LABELS = LABELS[4:]
LYMPHOID = ("B", "T_CD8neg", "T_CD8pos", "NK_bright", "NK_dim", "CIK")
#: Populations the truth tables also report, as sums of labels.
AGGREGATES = {
    "NK": ("NK_bright", "NK_dim"),
    "T": ("T_CD8neg", "T_CD8pos"),
    "Lymphocytes": LYMPHOID,
    "Leukocytes": CELL_LABELS,
}
#: Kinetic lineage of each label that infusions feed.
LINEAGES = {
    "NK_bright": "NK",
    "NK_dim": "NK",
    "CIK": "CIK",
    "T_CD8neg": "T",
    "T_CD8pos": "T",
}

BLOOD_VOLUME_UL_PER_KG = 70_000.0

#: Infused cells of each label per dosed cell. NK products are CD3-depleted,
#: CD56-selected (>90% CD3-CD56+, ~10-15% CD56bright; residual CD3+ ~1e-3, as in
#: Miller et al. 2005). DLI is unmanipulated donor lymphocytes dosed as CD3+:
#: CD3+CD56+ ~5% of T cells, CD8+ ~35%, plus NK ~15% of the CD3+ count (adult
#: reference ranges, Bisset et al., Eur J Haematol 2004;72:203-212). CIK
#: products (dosed as CD3+) are ~30-40% CD3+CD56+ and mostly CD8+ (Introna et
#: al. 2007).
PRODUCT_CONTENT = {
    "NK": {"NK_dim": 0.85, "NK_bright": 0.14, "T_CD8neg": 4e-4, "T_CD8pos": 4e-4, "CIK": 2e-4},
    "DLI": {"T_CD8neg": 0.60, "T_CD8pos": 0.35, "CIK": 0.05, "NK_dim": 0.13, "NK_bright": 0.015},
    "CIK": {"CIK": 0.35, "T_CD8pos": 0.45, "T_CD8neg": 0.20, "NK_dim": 0.03},
}

#: Per lineage: median half-life (days), expansion fold, days to peak, and the
#: lognormal sd of each across patients (draws truncated at ±2 sd). NK: expansion peaking in the second
#: week after lymphodepletion + IL-2 (Miller et al. 2005), short persistence
#: afterwards; CIK: little expansion, short persistence; T (from DLI): slow
#: expansion and long persistence.
KINETICS_PRIOR = {
    "NK": {"half_life": (5.0, 0.3), "expansion": (3.0, 0.35), "peak_delay": (7.0, 0.25)},
    "CIK": {"half_life": (8.0, 0.3), "expansion": (1.5, 0.25), "peak_delay": (2.0, 0.25)},
    "T": {"half_life": (30.0, 0.25), "expansion": (4.0, 0.35), "peak_delay": (14.0, 0.2)},
}

# Stream tags of the SeedSequence entropy (one stream per purpose and sample).
TAG_PATIENT = 1
TAG_DAY = 2
TAG_DRIFT = 3
TAG_EVENTS = 4


def stream(design_seed: int, tag: int, patient: str, day: int | None = None, *more: int):
    """The `np.random.Generator` of one purpose (tag), patient and (optionally) day.

    Entropy is ``[seed, tag, crc32(patient), day + 2**20, *more]`` so each sample's
    streams are independent of the study's other patients and days.
    """
    entropy = [design_seed, tag, zlib.crc32(patient.encode("utf-8"))]
    if day is not None:
        entropy.append(day + (1 << 20))
    entropy.extend(more)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


@dataclass(frozen=True)
class Kinetics:
    """In vivo kinetics of one donor lineage in one patient (see the module docstring)."""

    half_life_days: float
    expansion_fold: float
    peak_delay_days: float
    recovery: float

    def curve(self, s: np.ndarray | float) -> np.ndarray:
        """Donor cells/µL per infused cell/kg, ``s`` days after an infusion.

        Parameters
        ----------
        s : array_like of float
            Days since the infusion (any shape).

        Returns
        -------
        ndarray of float64, the shape of `s`
        """
        s = np.asarray(s, dtype=np.float64)
        c0 = self.recovery / BLOOD_VOLUME_UL_PER_KG
        d = self.peak_delay_days
        rise = np.log(self.expansion_fold) / d if d > 0 else 0.0
        decay = np.log(2.0) / self.half_life_days
        up = c0 * np.exp(rise * np.minimum(s, d))
        down = np.exp(-decay * np.maximum(s - d, 0.0))
        return np.where(s > 0, up * down, 0.0)


def persistence_curve(
    t: np.ndarray | float, doses: list[tuple[float, float]], kinetics: Kinetics
) -> np.ndarray:
    """Donor cells/µL at days `t` from infusions ``(day, cells/kg of this population)``.

    Returns
    -------
    ndarray of float64, the shape of `t`
    """
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros(t.shape)
    for day, cells in doses:
        out += cells * kinetics.curve(t - day)
    return out


def population_peak(doses: list[tuple[float, float]], kinetics: Kinetics) -> tuple[float, float]:
    """Exact (day, cells/µL) of the maximum of `persistence_curve`.

    Each infusion's term is exponential in pieces, so between consecutive
    infusion days and peak days the sum is convex and its maximum lies at a
    piece end: just after an infusion or at an infusion's own peak.
    """
    if not doses:
        return float("nan"), 0.0
    eps = 1e-9
    candidates = sorted(
        {day + eps for day, _ in doses} | {day + kinetics.peak_delay_days for day, _ in doses}
    )
    values = persistence_curve(np.array(candidates), doses, kinetics)
    i = int(np.argmax(values))
    return float(np.round(candidates[i], 6)), float(values[i])


@dataclass(frozen=True)
class PatientModel:
    """Everything about one patient that does not change from day to day.

    Attributes
    ----------
    spec : PatientSpec
    baseline_per_ul : dict of str to float
        Recipient cells/µL of each cell label before any treatment.
    kinetics : dict of str to Kinetics
        Per lineage ("NK", "CIK", "T").
    hla_positive : float
        Median HLA-A2 intensity of HLA-A2+ lymphocytes (compensated scale).
    hla_ratio : float
        HLA-A2+ / HLA-A2- median intensity ratio (10-30).
    lymphodepletion_depth, lymphodepletion_recovery_days : float
        NK arm: recipient lymphocytes fall by ``depth`` at day 0 after
        fludarabine/cyclophosphamide and recover exponentially.
    day_sd : float
        Lognormal day-to-day variation of recipient counts.
    """

    spec: PatientSpec
    baseline_per_ul: dict
    kinetics: dict
    hla_positive: float
    hla_ratio: float
    lymphodepletion_depth: float
    lymphodepletion_recovery_days: float
    day_sd: float

    def infused(self, label: str) -> list[tuple[float, float]]:
        """``(day, infused cells/kg)`` of `label` for each infusion."""
        return [
            (d.day, d.dose_per_kg * PRODUCT_CONTENT[d.product].get(label, 0.0))
            for d in self.spec.infusions
            if PRODUCT_CONTENT[d.product].get(label, 0.0) > 0
        ]

    def donor_per_ul(self, label: str, t) -> np.ndarray:
        """True donor cells/µL of `label` at days `t` (0 for labels no product contains)."""
        if label not in LINEAGES or not self.spec.persists:
            return np.zeros(np.shape(t))
        return persistence_curve(t, self.infused(label), self.kinetics[LINEAGES[label]])

    def peak(self, label: str) -> tuple[float, float]:
        """(day, donor cells/µL) of the donor peak of `label`."""
        if label not in LINEAGES or not self.spec.persists:
            return float("nan"), 0.0
        return population_peak(self.infused(label), self.kinetics[LINEAGES[label]])

    def lymphodepletion(self, day: int) -> float:
        """Factor on recipient lymphocytes on `day` (1 without lymphodepletion)."""
        if self.lymphodepletion_depth == 0 or day < -1:
            return 1.0  # conditioning runs from day -6 to day -2; the baseline precedes it
        s = max(day, 0)
        return 1.0 - self.lymphodepletion_depth * np.exp(-s / self.lymphodepletion_recovery_days)


def patient_model(design: StudyDesign, patient: str | PatientSpec) -> PatientModel:
    """Draw one patient's biology from the design's seed and the patient id.

    Recipient counts follow adult lymphocyte subset proportions (T ~65%, B ~10%,
    NK ~20% of lymphocytes, CD56bright ~10% of NK; Bisset et al. 2004; Cooper,
    Fehniger & Caligiuri, Trends Immunol 2001;22:633-640) at the reduced
    lymphocyte counts of treated patients (median 1,200/µL).
    """
    spec = design.patient(patient)
    rng = stream(design.seed, TAG_PATIENT, spec.id)
    lymph = 1_200.0 * np.exp(0.35 * rng.standard_normal())
    # lymphocyte composition: T, B, NK, CD3+CD56+
    t, b, nk, cik = rng.dirichlet(40.0 * np.array([0.65, 0.10, 0.20, 0.05]))
    cd8 = rng.beta(18.0, 22.0)  # CD8+ share of T (~45%, inverted ratios are common after SCT)
    bright = rng.beta(10.0, 90.0)  # CD56bright share of NK (~10%)
    baseline = {
        "granulocyte": 3_000.0 * np.exp(0.4 * rng.standard_normal()),
        "monocyte": 450.0 * np.exp(0.3 * rng.standard_normal()),
        "B": lymph * b,
        "T_CD8neg": lymph * t * (1 - cd8),
        "T_CD8pos": lymph * t * cd8,
        "NK_bright": lymph * nk * bright,
        "NK_dim": lymph * nk * (1 - bright),
        "CIK": lymph * cik,
    }
    kinetics = {}
    recovery = float(np.clip(0.25 * np.exp(0.25 * rng.standard_normal()), 0.05, 0.6))
    for lineage, prior in KINETICS_PRIOR.items():
        # truncated at ±2 sd: the extreme tails would make kinetics no
        # sampling schedule can resolve (e.g. a 2-day NK half-life)
        draws = {
            k: median * np.exp(sd * np.clip(rng.standard_normal(), -2.0, 2.0))
            for k, (median, sd) in prior.items()
        }
        kinetics[lineage] = Kinetics(
            half_life_days=float(np.round(draws["half_life"], 3)),
            expansion_fold=float(max(1.0, np.round(draws["expansion"], 3))),
            peak_delay_days=float(np.clip(np.round(draws["peak_delay"], 3), 0.5, 21.0)),
            recovery=recovery,
        )
    nk_arm = spec.arm == "NK"
    depth = float(rng.uniform(0.6, 0.9))
    recovery_days = float(20.0 * np.exp(0.3 * rng.standard_normal()))
    return PatientModel(
        spec=spec,
        baseline_per_ul={k: float(v) for k, v in baseline.items()},
        kinetics=kinetics,
        hla_positive=float(9_000.0 * np.exp(0.2 * rng.standard_normal())),
        hla_ratio=float(rng.uniform(10.0, 30.0)),
        lymphodepletion_depth=depth if nk_arm else 0.0,
        lymphodepletion_recovery_days=recovery_days,
        day_sd=0.12,
    )


@dataclass(frozen=True)
class SampleParameters:
    """The true state of one (patient, day) sample.

    Attributes
    ----------
    patient : str
    day : int
    recipient_per_ul, donor_per_ul, cells_per_ul : dict of str to float
        Per cell label (`CELL_LABELS`).
    donor_fraction : dict of str to float
        ``donor / cells`` per cell label, plus "dead" (the donor share of all
        leukocytes, which dead cells inherit).
    wbc_per_ul, lymphocytes_per_ul : float
    beads_per_ul : float
        Beads per µL of stained blood (0 without beads).
    fraction_debris, fraction_doublet, fraction_dead : float
        Shares of all events.
    probabilities : ndarray of float64, shape (len(LABELS),)
        Probability that an event has each label (sums to 1). Live singlet
        cells and beads share ``1 - debris - doublet - dead`` in proportion to
        their concentrations, so cell events / bead events × beads per µL is an
        unbiased estimate of cells/µL.
    """

    patient: str
    day: int
    recipient_per_ul: dict
    donor_per_ul: dict
    cells_per_ul: dict
    donor_fraction: dict
    wbc_per_ul: float
    lymphocytes_per_ul: float
    beads_per_ul: float
    fraction_debris: float
    fraction_doublet: float
    fraction_dead: float
    probabilities: np.ndarray

    def cell_probabilities(self) -> np.ndarray:
        """Label probabilities of one leukocyte (for doublet partners), shape (len(LABELS),)."""
        p = np.zeros(len(LABELS))
        for name in CELL_LABELS:
            p[CODE[name]] = self.cells_per_ul[name]
        return p / p.sum()


def sample_parameters(
    design: StudyDesign, patient: str | PatientSpec | PatientModel, day: int
) -> SampleParameters:
    """The true cell counts, donor fractions and event probabilities of one sample."""
    model = patient if isinstance(patient, PatientModel) else patient_model(design, patient)
    pid = model.spec.id
    rng = stream(design.seed, TAG_DAY, pid, int(day))
    noise = np.exp(model.day_sd * rng.standard_normal(len(CELL_LABELS)))
    depletion = model.lymphodepletion(int(day))
    recipient, donor, cells, frac = {}, {}, {}, {}
    for i, name in enumerate(CELL_LABELS):
        base = model.baseline_per_ul[name] * noise[i]
        recipient[name] = float(base * (depletion if name in LYMPHOID else 1.0))
        donor[name] = float(model.donor_per_ul(name, float(day)))
        cells[name] = recipient[name] + donor[name]
        frac[name] = donor[name] / cells[name]
    wbc = sum(cells.values())
    frac["dead"] = sum(donor.values()) / wbc
    lymphocytes = sum(cells[n] for n in LYMPHOID)
    f_debris = float(rng.uniform(0.03, 0.10))
    f_doublet = float(rng.uniform(0.015, 0.04))
    f_dead = float(rng.uniform(0.01, 0.06))
    beads = design.beads_per_test / design.sample_volume_ul if design.beads else 0.0
    p = np.zeros(len(LABELS))
    live = 1.0 - f_debris - f_doublet - f_dead
    total = wbc + beads
    for name in CELL_LABELS:
        p[CODE[name]] = live * cells[name] / total
    p[CODE["bead"]] = live * beads / total
    p[CODE["debris"]] = f_debris
    p[CODE["doublet"]] = f_doublet
    p[CODE["dead"]] = f_dead
    p /= p.sum()  # exact 1 despite rounding
    return SampleParameters(
        patient=pid,
        day=int(day),
        recipient_per_ul=recipient,
        donor_per_ul=donor,
        cells_per_ul=cells,
        donor_fraction=frac,
        wbc_per_ul=float(wbc),
        lymphocytes_per_ul=float(lymphocytes),
        beads_per_ul=float(beads),
        fraction_debris=f_debris,
        fraction_doublet=f_doublet,
        fraction_dead=f_dead,
        probabilities=p,
    )
