"""The cytometer: channels, spillover, spreading error, day-to-day drift.

The simulated instrument is a three-laser BD FACSCanto II-like analyser with
an 18-bit linear scale (0 ... 262,143) and float32 data. Seven fluorescence
detectors carry the panel (detector names as BD FACSDiva writes them):

=================  ===========  =========================================
detector ($PnN)    $PnS         stain
=================  ===========  =========================================
FITC-A             HLA-A2       anti-HLA-A2 (BB7.2) FITC, the donor marker
PE-A               CD56         CD56 PE
PerCP-Cy5-5-A      Viability    7-AAD (dead cells bright)
PE-Cy7-A           CD16         CD16 PE-Cy7
APC-A              CD3          CD3 APC
APC-H7-A           CD8          CD8 APC-H7
V500-C-A           CD45         CD45 V500-C
=================  ===========  =========================================

plus FSC-A, FSC-H, SSC-A and Time: 11 channels.

Signal model
------------
For an event with true (compensated) fluorochrome intensities ``x`` (one per
stain) the noiseless detector values are ``x @ S`` where ``S`` is the spillover
matrix (row = fluorochrome, column = detector, unit diagonal). A detector
counts photoelectrons, so its noise is Poisson-like: the sd grows with the
square root of its signal, ``sqrt(signal / Q)`` with ``Q`` photoelectrons per
unit, plus Gaussian electronic noise. After compensation that noise spreads
negative populations in the detectors that receive spillover (spillover
spreading; Roederer, Cytometry 2001;45:194-205; Nguyen et al., Cytometry A
2013;83:306-315). The off-diagonal coefficients below (0.002-0.25) are of the
size single-stain controls give for these dye pairs on such instruments.

Drift
-----
Day to day (per acquisition session), laser power and detector sensitivity
move: each detector ``i`` gets a gain ``g_i`` (a shared part plus its own
part), the scatter detectors ``g_FSC``, ``g_SSC``. With gains the detectors read
``(x * g) @ S'`` where ``S'[j, i] = S[j, i] * g_i / g_j`` is that day's spillover
matrix, which the file carries in ``$SPILLOVER`` (as a lab's daily single-stain
compensation would): compensating with it recovers ``x * g``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cytokit.sample import Channel, Spillover
from cytokit.simulate.design import StudyDesign
from cytokit.simulate.model import TAG_DRIFT, stream

__all__ = [
    "CHANNELS",
    "DETECTORS",
    "MARKERS",
    "RANGE",
    "SPILLOVER",
    "Drift",
    "instrument_drift",
    "panel",
]

RANGE = 262_144.0
MAX_VALUE = RANGE - 1.0
#: (detector $PnN, marker $PnS) of the fluorescence channels, in file order.
DETECTORS = (
    ("FITC-A", "HLA-A2"),
    ("PE-A", "CD56"),
    ("PerCP-Cy5-5-A", "Viability"),
    ("PE-Cy7-A", "CD16"),
    ("APC-A", "CD3"),
    ("APC-H7-A", "CD8"),
    ("V500-C-A", "CD45"),
)
MARKERS = tuple(m for _, m in DETECTORS)
FLUOR_NAMES = tuple(d for d, _ in DETECTORS)
SCATTER_NAMES = ("FSC-A", "FSC-H", "SSC-A")
CHANNEL_NAMES = (*SCATTER_NAMES, *FLUOR_NAMES, "Time")
N_FLUOR = len(DETECTORS)

#: Spillover S[fluorochrome, detector] (rows/columns in `DETECTORS` order).
SPILLOVER = np.array(
    [
        # FITC   PE     PerCP  PE-Cy7 APC    APC-H7 V500-C
        [1.000, 0.220, 0.040, 0.008, 0.000, 0.000, 0.004],  # FITC
        [0.012, 1.000, 0.180, 0.035, 0.002, 0.000, 0.000],  # PE
        [0.000, 0.080, 1.000, 0.250, 0.030, 0.020, 0.000],  # 7-AAD
        [0.000, 0.020, 0.040, 1.000, 0.006, 0.120, 0.000],  # PE-Cy7
        [0.000, 0.000, 0.012, 0.002, 1.000, 0.160, 0.000],  # APC
        [0.000, 0.000, 0.003, 0.030, 0.060, 1.000, 0.000],  # APC-H7
        [0.045, 0.010, 0.002, 0.000, 0.000, 0.000, 1.000],  # V500-C
    ]
)
SPILLOVER.setflags(write=False)
#: Photoelectrons per linear unit of each detector (red and far-red detectors lower).
PHOTOELECTRONS = np.array([0.12, 0.20, 0.06, 0.08, 0.10, 0.05, 0.08])
#: Electronic noise sd of each detector (linear units).
ELECTRONIC_SD = np.array([15.0, 12.0, 20.0, 18.0, 15.0, 25.0, 20.0])
#: Scatter: multiplicative (CV) and additive (sd) noise of FSC-A, FSC-H, SSC-A.
SCATTER_CV = np.array([0.01, 0.01, 0.015])
SCATTER_SD = np.array([150.0, 150.0, 100.0])


def channels(time_range: float = RANGE) -> tuple[Channel, ...]:
    """The 11 `Channel` objects of a simulated file, in column order."""
    out = [Channel(i, n, "", RANGE, 32) for i, n in enumerate(SCATTER_NAMES)]
    out += [Channel(3 + i, d, m, RANGE, 32) for i, (d, m) in enumerate(DETECTORS)]
    out.append(Channel(len(out), "Time", "", float(time_range), 32))
    return tuple(out)


CHANNELS = channels()


def panel() -> dict[str, str]:
    """``[panel]`` of study.toml: marker → detector ($PnN)."""
    return {m: d for d, m in DETECTORS}


@dataclass(frozen=True)
class Drift:
    """Gains of one acquisition session (1.0 everywhere without drift).

    Attributes
    ----------
    fsc, ssc : float
        Gains of FSC (FSC-A and FSC-H) and SSC-A.
    fluorescence : ndarray of float64, shape (7,)
        Gain of each fluorescence detector, in `DETECTORS` order.
    """

    fsc: float
    ssc: float
    fluorescence: np.ndarray

    def spillover(self) -> np.ndarray:
        """That session's spillover matrix ``S[j, i] * g_i / g_j``, shape (7, 7)."""
        g = self.fluorescence
        return SPILLOVER * g[None, :] / g[:, None]

    def as_spillover(self) -> Spillover:
        return Spillover(FLUOR_NAMES, self.spillover(), "$SPILLOVER")


def instrument_drift(design: StudyDesign, patient: str, day: int) -> Drift:
    """The gains of the session that acquired (patient, day).

    With ``design.drift`` each gain is ``exp(a + b_i)`` with a shared part ``a``
    uniform in ``±0.6 L`` and a per-detector part ``b_i`` uniform in ``±0.4 L``,
    ``L = ln(1 + drift_max)``: every gain lies within ``1/(1+drift_max)`` and
    ``1 + drift_max``. Scatter gains are uniform in log within ``±0.7 L``.
    Deterministic in (seed, patient, day).
    """
    if not design.drift or design.drift_max == 0:
        return Drift(1.0, 1.0, np.ones(N_FLUOR))
    rng = stream(design.seed, TAG_DRIFT, patient, int(day))
    span = np.log1p(design.drift_max)
    shared = rng.uniform(-0.6 * span, 0.6 * span)
    own = rng.uniform(-0.4 * span, 0.4 * span, size=N_FLUOR)
    fsc, ssc = np.exp(rng.uniform(-0.7 * span, 0.7 * span, size=2))
    return Drift(float(fsc), float(ssc), np.exp(shared + own))


def detect(true: np.ndarray, drift: Drift, rng: np.random.Generator, out: np.ndarray) -> None:
    """Detector values of fluorochrome intensities, with gains, spreading error and saturation.

    Parameters
    ----------
    true : ndarray of float64, shape (n, 7)
        True (compensated-scale) intensities; scaled in place by the gains.
    drift : Drift
    rng : Generator
    out : ndarray of float64, shape (7, n)
        Receives the detector values, one row per detector (≤ 262,143;
        negatives allowed).
    """
    g = drift.fluorescence
    true *= g
    x = np.ascontiguousarray(true.T)
    # x @ S' as explicit sums over contiguous rows: elementwise IEEE arithmetic
    # in a fixed order gives the same bits on every CPU, which a BLAS kernel
    # (FMA or not, blocking) does not promise
    s = drift.spillover()
    tmp = np.empty(out.shape[1])
    for i in range(N_FLUOR):
        row = out[i]
        np.multiply(x[0], s[0, i], out=row)
        for j in range(1, N_FLUOR):
            if s[j, i] != 0.0:
                np.multiply(x[j], s[j, i], out=tmp)
                row += tmp
    # photoelectron noise: a gain moves signal and its noise together, so the
    # number of photoelectrons (signal / (g Q)) sets the CV
    sd = np.maximum(out, 0.0, out=x)
    sd *= (g / PHOTOELECTRONS)[:, None]
    sd += (ELECTRONIC_SD**2)[:, None]
    np.sqrt(sd, out=sd)
    sd *= rng.standard_normal(out.shape)
    out += sd
    np.minimum(out, MAX_VALUE, out=out)


def scatter(values: np.ndarray, drift: Drift, rng: np.random.Generator) -> None:
    """Apply scatter gains and noise in place to (n, 3) FSC-A, FSC-H, SSC-A; clip to [0, 262143]."""
    values[:, :2] *= drift.fsc
    values[:, 2] *= drift.ssc
    noise = rng.standard_normal(values.shape)
    noise *= SCATTER_CV * values + SCATTER_SD
    values += noise
    np.clip(values, 0.0, MAX_VALUE, out=values)
