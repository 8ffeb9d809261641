"""A simulated blood sample for clustering benchmarks, independent of `cytokit.simulate`.

`cytokit.simulate` shares its assumptions with the code under test (the same
panel, populations drawn as Gaussians on the logicle scale, the same
transform in `cytokit.cluster.transformed_events`). This module draws a
different sample from different assumptions, so an accuracy figure on it is
less of a self-fulfilling one:

* 13 columns: FSC-A, FSC-H, SSC-A and ten fluorescence markers (CD45, CD3,
  CD4, CD8, CD19, CD56, CD16, CD14, HLA-DR and a viability dye);
* 14 labelled kinds of event with unequal sizes: neutrophils (~40 %), CD4 and
  CD8 T cells, monocytes, B cells, eosinophils, NK dim, CD3+CD56+ (NKT/CIK)
  cells, four rare populations of ~0.5 % (CD16+ monocytes, NK bright,
  plasmacytoid dendritic cells, and nothing else than their markers tells them
  apart), debris (~8 %), doublets (~5 %) and dead cells (~6 %) left in;
* intensities made in *linear* units: per cell a log-scale level drawn from a
  Student t (5 degrees of freedom, heavy tails) around the population's median,
  a size factor shared by scatter and markers (correlated, tilted shapes),
  markers expressed by a mixture of levels within a population (CD8 dim NK
  cells, CD16 dim NK cells, CD56+ T cells), autofluorescence, additive
  electronic noise and spillover spreading (noise in a channel growing with
  the square root of the signal in others, so negatives widen next to bright
  populations and markers overlap);
* doublets are the sum of two cells in linear units (FSC-H barely grows);
  dead cells are leukocytes of any kind with less scatter, halved markers,
  raised autofluorescence and a bright viability dye; debris is small,
  autofluorescent and partly dye-positive;
* fluorescence is transformed with ``asinh(x / 150) / asinh(262144 / 150)``
  (not logicle), scatter divided by 262,144 and clipped to the range the
  instrument saturates at.

Each seed is another donor: population sizes vary by a factor ``exp(N(0,
0.25))`` and population medians by ``N(0, 0.05)`` decades around the table
below; the instrument (spreading matrix) is the same for every seed.

Usage::

    from blood_mixture import LABELS, COLUMNS, blood_sample
    X, truth = blood_sample(1_000_000, seed=1)   # float32 (n, 13), int8 (n,)
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLUMNS", "LABELS", "MARKERS", "blood_sample"]

MARKERS = ("CD45", "CD3", "CD4", "CD8", "CD19", "CD56", "CD16", "CD14", "HLA-DR", "Viability")
COLUMNS = ("FSC-A", "FSC-H", "SSC-A", *MARKERS)
_M = {m: j for j, m in enumerate(MARKERS)}
TOP = 262_144.0
COFACTOR = 150.0
NEG = 2.0  # log10 of an unstained cell's autofluorescence
NOISE = 50.0  # sd of the additive electronic noise, linear units

# Live single cells: base fraction (%), FSC-A and SSC-A medians (linear), and the
# log10 median of each expressed marker; a list is a mixture [(weight, level), ...].
CELLS = {
    "neutrophil": (40.0, 105e3, 115e3, {"CD45": 3.0, "CD16": 4.2, "CD14": 2.6}),
    "eosinophil": (2.0, 100e3, 140e3, {"CD45": 3.4, "CD16": 2.2}),
    "monocyte": (
        6.0,
        115e3,
        55e3,
        {"CD45": 3.6, "CD14": [(0.8, 4.0), (0.2, 3.5)], "HLA-DR": 3.6, "CD4": 2.9},
    ),
    "monocyte_CD16": (0.5, 105e3, 45e3, {"CD45": 3.7, "CD14": 2.9, "CD16": 3.7, "HLA-DR": 3.5}),
    "B": (5.0, 65e3, 18e3, {"CD45": 3.7, "CD19": 3.5, "HLA-DR": 3.7}),
    "T_CD4": (14.0, 68e3, 18e3, {"CD45": 3.8, "CD3": 3.6, "CD4": 3.5}),
    "T_CD8": (
        7.0,
        68e3,
        19e3,
        {
            "CD45": 3.8,
            "CD3": 3.6,
            "CD8": [(0.9, 3.8), (0.1, 3.1)],
            "CD56": [(0.92, NEG), (0.08, 2.9)],
        },
    ),
    "NK_dim": (
        4.0,
        72e3,
        24e3,
        {
            "CD45": 3.7,
            "CD56": 3.1,
            "CD16": [(0.85, 3.8), (0.15, 3.0)],
            "CD8": [(0.65, NEG), (0.35, 2.9)],
        },
    ),
    "NK_bright": (0.5, 75e3, 22e3, {"CD45": 3.8, "CD56": 3.9, "CD16": [(0.6, 2.3), (0.4, 2.9)]}),
    "NKT": (
        1.5,
        70e3,
        22e3,
        {
            "CD45": 3.8,
            "CD3": 3.5,
            "CD56": 3.2,
            "CD8": [(0.8, 3.6), (0.2, NEG)],
            "CD16": [(0.8, NEG), (0.2, 3.2)],
        },
    ),
    "pDC": (0.5, 80e3, 25e3, {"CD45": 3.4, "HLA-DR": 4.0, "CD4": 3.0}),
}
OTHER = {"debris": 8.0, "doublet": 5.0, "dead": 6.0}
LABELS = (*CELLS, *OTHER)
_CODE = {name: i for i, name in enumerate(LABELS)}


def _instrument() -> np.ndarray:
    """Spillover-spreading matrix (source marker, target marker), the same for every seed."""
    rng = np.random.default_rng(20_240_617)
    k = len(MARKERS)
    ssm = rng.uniform(0.5, 4.0, size=(k, k)) * (rng.random((k, k)) < 0.3)
    np.fill_diagonal(ssm, 0.0)
    return ssm


def _levels(spec, n, rng, shift):
    """log10 medians of one population's markers for `n` cells, shape (n, n_markers)."""
    out = np.full((n, len(MARKERS)), NEG)
    for marker, level in spec.items():
        j = _M[marker]
        if isinstance(level, list):
            w = np.array([a for a, _ in level])
            lv = np.array([b for _, b in level])
            out[:, j] = lv[rng.choice(len(lv), size=n, p=w / w.sum())]
        else:
            out[:, j] = level
    expressed = out > NEG + 1e-9
    out[expressed] += shift[np.nonzero(expressed)[1]]
    return out


def _cells(name, n, rng, shifts):
    """Linear FSC-A, FSC-H, SSC-A and marker intensities of `n` live singlets of one kind."""
    _, fsc, ssc, spec = CELLS[name]
    size = rng.normal(0.0, 0.06, n)  # log10 size factor shared by scatter and markers
    t = np.clip(rng.standard_t(5, size=(n, len(MARKERS))), -6.0, 6.0) * 0.12
    level = _levels(spec, n, rng, shifts[name]) + t + size[:, None]
    level[:, _M["Viability"]] = NEG + rng.normal(0.0, 0.15, n)
    fl = 10.0**level
    fsc_a = fsc * 10.0 ** (2.0 * size + rng.normal(0.0, 0.05, n))
    ssc_a = ssc * 10.0 ** (size + np.clip(rng.standard_t(5, n), -6.0, 6.0) * 0.06)
    fsc_h = fsc_a * rng.uniform(0.78, 0.9, n)
    return np.column_stack([fsc_a, fsc_h, ssc_a, fl])


def _mixed(n, live, rng, shifts):
    """`n` live singlets of random kinds, drawn by the sample's proportions `live`."""
    kinds = rng.choice(len(CELLS), size=n, p=live)
    out = np.empty((n, len(COLUMNS)))
    for i, name in enumerate(CELLS):
        rows = np.flatnonzero(kinds == i)
        if rows.size:
            out[rows] = _cells(name, rows.size, rng, shifts)
    return out


def blood_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` events of one simulated donor, on the scale a SOM works on, and their true kinds.

    Parameters
    ----------
    n : int
        Events (>= 1).
    seed : int
        Donor and draw; the same seed gives the same events.

    Returns
    -------
    X : numpy.ndarray of float32, shape (n, 13)
        Columns `COLUMNS`: scatter divided by 262,144 (0 ... 1), fluorescence
        ``asinh(x / 150) / asinh(262144 / 150)`` (about -0.1 ... 1).
    truth : numpy.ndarray of int8, shape (n,)
        Index into `LABELS` of each event.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    base = np.array([CELLS[c][0] for c in CELLS] + list(OTHER.values()))
    frac = base * np.exp(rng.normal(0.0, 0.25, base.shape[0]))
    counts_all = rng.multinomial(n, frac / frac.sum())
    counts = dict(zip(LABELS, counts_all.tolist(), strict=True))
    shifts = {c: rng.normal(0.0, 0.05, len(MARKERS)) for c in CELLS}
    live = counts_all[: len(CELLS)] / counts_all[: len(CELLS)].sum()

    parts, labels = [], []
    for name in CELLS:
        parts.append(_cells(name, counts[name], rng, shifts))
        labels.append(np.full(counts[name], _CODE[name], dtype=np.int8))

    # doublets: two live cells through the laser together; area adds up, height barely
    nd = counts["doublet"]
    pair = [_mixed(nd, live, rng, shifts) for _ in range(2)]
    dbl = pair[0] + pair[1]
    dbl[:, 1] = np.maximum(pair[0][:, 1], pair[1][:, 1]) * rng.uniform(1.0, 1.25, nd)
    parts.append(dbl)
    labels.append(np.full(nd, _CODE["doublet"], dtype=np.int8))

    # dead cells: any kind of leukocyte, shrunken, dimmer, autofluorescent, dye-bright
    nx = counts["dead"]
    dead = _mixed(nx, live, rng, shifts)
    dead[:, 0] *= 10.0 ** rng.normal(np.log10(0.55), 0.08, nx)
    dead[:, 1] = dead[:, 0] * rng.uniform(0.75, 0.9, nx)
    dead[:, 2] *= 10.0 ** rng.normal(np.log10(1.15), 0.1, nx)
    dead[:, 3:] = dead[:, 3:] * 0.5 + 10.0 ** rng.normal(2.3, 0.2, (nx, 1))
    dead[:, 3 + _M["Viability"]] = 10.0 ** rng.normal(3.9, 0.2, nx)
    parts.append(dead)
    labels.append(np.full(nx, _CODE["dead"], dtype=np.int8))

    # debris: small, autofluorescent, some of it dye-positive fragments of dead cells
    nb = counts["debris"]
    deb = np.empty((nb, len(COLUMNS)))
    deb[:, 0] = 10.0 ** rng.normal(np.log10(12e3), 0.25, nb)
    deb[:, 1] = deb[:, 0] * rng.uniform(0.7, 1.0, nb)
    deb[:, 2] = 10.0 ** rng.normal(np.log10(7e3), 0.3, nb)
    deb[:, 3:] = 10.0 ** (rng.normal(1.9, 0.3, (nb, 1)) + rng.normal(0.0, 0.2, (nb, len(MARKERS))))
    fragments = rng.random(nb) < 0.3
    deb[fragments, 3 + _M["Viability"]] = 10.0 ** rng.normal(3.3, 0.4, int(fragments.sum()))
    parts.append(deb)
    labels.append(np.full(nb, _CODE["debris"], dtype=np.int8))

    ev = np.concatenate(parts)
    truth = np.concatenate(labels)
    order = rng.permutation(ev.shape[0])  # acquisition order carries no label information
    ev, truth = ev[order], truth[order]

    fl = ev[:, 3:]
    # spreading: the sd grows with the square root of the (saturating) signal in other channels
    spread = np.sqrt(np.clip(fl, 0.0, TOP)) @ _instrument()
    fl += rng.normal(0.0, 1.0, fl.shape) * np.hypot(spread, NOISE)
    X = np.empty(ev.shape, dtype=np.float32)
    X[:, :3] = np.clip(ev[:, :3], 0.0, TOP - 1.0) / TOP
    X[:, 3:] = np.arcsinh(np.clip(fl, -TOP, TOP - 1.0) / COFACTOR) / np.arcsinh(TOP / COFACTOR)
    return X, truth
