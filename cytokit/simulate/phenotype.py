"""What each population looks like: scatter and true (compensated) marker intensities.

Intensities are on the instrument's linear scale (0 ... 262,143) before
spillover and noise. Each marker of a population is lognormal (median, sd of
the natural log); a marker may be bimodal within a population (``p`` of the
cells at ``alt`` instead, e.g. the CD8+ majority of CIK cells, CD16+ monocytes).
HLA-A2 is set per event from the donor/recipient side (see `fill_cells`).

Levels follow the usual look of a lysed whole-blood CD45/CD3/CD56/CD16/CD8
stain: lymphocytes CD45 bright with low SSC, monocytes CD45+ with intermediate
scatter, granulocytes CD45dim with high SSC and bright CD16, NK CD56bright
cells CD16-/dim and CD56dim cells CD16+ (Cooper et al. 2001), CIK cells CD3+
with dim-to-intermediate CD56, mostly CD8+ and larger (activated blasts).
"""

from __future__ import annotations

import numpy as np

from cytokit.simulate.instrument import MARKERS, N_FLUOR
from cytokit.simulate.model import CODE, LABELS

__all__ = ["PHENOTYPES", "fill_cells"]

# Autofluorescence (median, unstained lymphocyte) per detector, in MARKERS order.
_AF = dict(zip(MARKERS, (120.0, 80.0, 60.0, 50.0, 40.0, 40.0, 90.0), strict=True))
_NEG_SD = 0.5
#: Log-sd of HLA-A2 on positive and negative cells.
HLA_SD_POS, HLA_SD_NEG = 0.3, 0.45
#: Shared log-size factor: bigger cells scatter more and stain brighter.
SIZE_TO_FLUOR = 0.1
#: FSC-H / FSC-A of single cells (BD area scaling makes A ≈ H for singlets).
HEIGHT_RATIO = 0.88

# fmt: off
_SPECS = {
    # fsc/ssc: (median, log-sd); af: autofluorescence factor; hla: HLA class I
    # expression relative to lymphocytes; markers: name -> (median, sd[, p, alt])
    "debris": dict(
        fsc=(5_000.0, 0.7), ssc=(3_000.0, 0.9), af=0.6, neg_sd=0.8, hla=None,
        markers={"Viability": (40.0, 0.8, 0.25, 5_000.0), "CD45": (60.0, 0.8, 0.2, 1_500.0)},
    ),
    "dead": dict(
        fsc=(35_000.0, 0.3), ssc=(25_000.0, 0.5), af=1.5, hla=0.5,
        markers={
            "CD45": (4_000.0, 0.6),
            "Viability": (20_000.0, 0.5),
            "CD3": (60.0, 0.5, 0.4, 3_000.0),
            "CD56": (120.0, 0.5, 0.1, 2_000.0),
            "CD16": (75.0, 0.5, 0.3, 5_000.0),
            "CD8": (60.0, 0.5, 0.15, 2_000.0),
        },
    ),
    "bead": dict(
        fsc=(20_000.0, 0.04), ssc=(60_000.0, 0.05), af=1.0, hla=None, size=0.0,
        markers={
            "HLA-A2": (80_000.0, 0.03),
            "CD56": (60_000.0, 0.03),
            "Viability": (50_000.0, 0.03),
            "CD16": (50_000.0, 0.03),
            "CD3": (70_000.0, 0.03),
            "CD8": (40_000.0, 0.03),
            "CD45": (60_000.0, 0.03),
        },
    ),
    "granulocyte": dict(
        fsc=(110_000.0, 0.10), ssc=(110_000.0, 0.20), af=3.0, hla=0.5,
        markers={"CD45": (7_000.0, 0.3), "CD16": (30_000.0, 0.35, 0.04, 150.0)},
    ),
    "monocyte": dict(
        fsc=(95_000.0, 0.10), ssc=(38_000.0, 0.20), af=2.0, hla=1.6,
        markers={"CD45": (18_000.0, 0.25), "CD16": (100.0, 0.5, 0.1, 6_000.0)},
    ),
    "B": dict(
        fsc=(52_000.0, 0.10), ssc=(11_000.0, 0.22), af=1.0, hla=1.3,
        markers={"CD45": (22_000.0, 0.25)},
    ),
    "T_CD8neg": dict(
        fsc=(55_000.0, 0.10), ssc=(12_000.0, 0.22), af=1.0, hla=1.0,
        markers={"CD45": (25_000.0, 0.25), "CD3": (12_000.0, 0.3)},
    ),
    "T_CD8pos": dict(
        fsc=(55_000.0, 0.10), ssc=(12_000.0, 0.22), af=1.0, hla=1.0,
        markers={"CD45": (25_000.0, 0.25), "CD3": (12_000.0, 0.3), "CD8": (10_000.0, 0.3)},
    ),
    "NK_bright": dict(
        fsc=(60_000.0, 0.10), ssc=(14_000.0, 0.22), af=1.0, hla=1.0,
        markers={
            "CD45": (28_000.0, 0.25),
            "CD56": (40_000.0, 0.3),
            "CD16": (50.0, 0.5, 0.3, 800.0),
            "CD8": (40.0, 0.5, 0.2, 1_000.0),
        },
    ),
    "NK_dim": dict(
        fsc=(60_000.0, 0.10), ssc=(16_000.0, 0.22), af=1.0, hla=1.0,
        markers={
            "CD45": (22_000.0, 0.25),
            "CD56": (5_000.0, 0.4),
            "CD16": (12_000.0, 0.4),
            "CD8": (40.0, 0.5, 0.35, 1_500.0),
        },
    ),
    "CIK": dict(
        fsc=(75_000.0, 0.12), ssc=(20_000.0, 0.25), af=1.2, hla=1.4,
        markers={
            "CD45": (28_000.0, 0.25),
            "CD3": (9_000.0, 0.35),
            "CD56": (3_500.0, 0.6),
            "CD8": (9_000.0, 0.35, 0.25, 48.0),
            "CD16": (60.0, 0.5, 0.2, 2_000.0),
        },
    ),
}
# fmt: on


class _Table:
    """`_SPECS` compiled to arrays indexed by label code."""

    def __init__(self) -> None:
        n = len(LABELS)
        self.log_fsc = np.zeros(n)
        self.sd_fsc = np.zeros(n)
        self.log_ssc = np.zeros(n)
        self.sd_ssc = np.zeros(n)
        self.size = np.zeros(n)
        self.hla = np.full(n, np.nan)
        self.log_mu = np.zeros((n, N_FLUOR))
        self.sd = np.zeros((n, N_FLUOR))
        self.p_alt = np.zeros((n, N_FLUOR))
        self.log_alt = np.zeros((n, N_FLUOR))
        for name, spec in _SPECS.items():
            c = CODE[name]
            self.log_fsc[c], self.sd_fsc[c] = np.log(spec["fsc"][0]), spec["fsc"][1]
            self.log_ssc[c], self.sd_ssc[c] = np.log(spec["ssc"][0]), spec["ssc"][1]
            self.size[c] = spec.get("size", SIZE_TO_FLUOR)
            if spec["hla"] is not None:
                self.hla[c] = spec["hla"]
            for m, marker in enumerate(MARKERS):
                value = spec["markers"].get(marker)
                if value is None:
                    value = (_AF[marker] * spec["af"], spec.get("neg_sd", _NEG_SD))
                self.log_mu[c, m] = np.log(value[0])
                self.sd[c, m] = value[1]
                if len(value) == 4:
                    self.p_alt[c, m] = value[2]
                    self.log_alt[c, m] = np.log(value[3])


PHENOTYPES = _Table()
_DEBRIS = CODE["debris"]


def fill_cells(
    code: int,
    rng: np.random.Generator,
    true: np.ndarray,
    scat: np.ndarray,
    donor: np.ndarray,
    *,
    donor_fraction: float,
    donor_positive: bool,
    hla_positive: float,
    hla_ratio: float,
) -> None:
    """Draw the true intensities, scatter and donor origin of ``len(true)`` events of one label.

    Parameters
    ----------
    code : int
        Label code (index in `LABELS`); not "doublet".
    rng : Generator
    true : ndarray of float64, shape (n, 7)
        Receives the true marker intensities (`MARKERS` order).
    scat : ndarray of float64, shape (n, 3)
        Receives noiseless FSC-A, FSC-H, SSC-A.
    donor : ndarray of bool, shape (n,)
        Receives the donor flag (drawn with probability `donor_fraction`).
    donor_fraction : float
        Probability that an event of this label is a donor cell.
    donor_positive : bool
        Donor cells are HLA-A2+ (recipient cells then HLA-A2-), or the reverse.
    hla_positive, hla_ratio : float
        Patient's median HLA-A2+ lymphocyte intensity and the +/- ratio.
    """
    n = true.shape[0]
    if n == 0:
        return
    t = PHENOTYPES
    z = rng.standard_normal(n)  # shared size factor
    if code == _DEBRIS:
        # debris piles up just above the FSC threshold
        scat[:, 0] = 4_000.0 + np.exp(t.log_fsc[code] + t.sd_fsc[code] * z)
        ratio_sd = 0.06
    else:
        scat[:, 0] = np.exp(t.log_fsc[code] + t.sd_fsc[code] * z)
        ratio_sd = 0.025
    scat[:, 1] = scat[:, 0] * (HEIGHT_RATIO * np.exp(ratio_sd * rng.standard_normal(n)))
    zs = rng.standard_normal(n)
    zs *= np.sqrt(0.75)
    zs += 0.5 * z
    scat[:, 2] = np.exp(t.log_ssc[code] + t.sd_ssc[code] * zs)

    logv = rng.standard_normal((n, N_FLUOR))
    z0 = logv[:, 0].copy()  # HLA-A2's own deviate (its level depends on the side)
    logv *= t.sd[code]
    logv += t.log_mu[code]
    for m in np.flatnonzero(t.p_alt[code]):
        alt = rng.random(n) < t.p_alt[code, m]
        logv[alt, m] += t.log_alt[code, m] - t.log_mu[code, m]
    if np.isnan(t.hla[code]):
        donor[:] = False
    else:
        np.less(rng.random(n), donor_fraction, out=donor)
        positive = donor == donor_positive
        level = np.log(hla_positive * t.hla[code])
        logv[:, 0] = np.where(
            positive, level + HLA_SD_POS * z0, level - np.log(hla_ratio) + HLA_SD_NEG * z0
        )
    if t.size[code]:
        logv += (t.size[code] * z)[:, None]
    np.exp(logv, out=true)
