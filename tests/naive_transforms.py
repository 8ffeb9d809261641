"""Slow, obvious references for the transform and compensation kernels.

Each function follows the published definition as literally as possible
(Gating-ML 2.0 formulas, bisection for the implicitly defined scales, a
materialised lookup table for FlowJo's biex) with plain Python/numpy, so it
shares no numerics with `cytokit.kernels`. Also here: a minimal reader of the
single-rectangle Gating-ML compliance files, enough to turn transform and
compensation results into per-event gate membership.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

LN10 = math.log(10.0)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


# --- closed-form transforms ----------------------------------------------------------------------


def linear(x, T, A):
    return (np.asarray(x, dtype=np.float64) + A) / (T + A)


def linear_inverse(y, T, A):
    return np.asarray(y, dtype=np.float64) * (T + A) - A


def log(x, T, M):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(x, dtype=np.float64) / T) / M + 1.0


def log_inverse(y, T, M):
    return T * 10.0 ** ((np.asarray(y, dtype=np.float64) - 1.0) * M)


def asinh(x, T, M, A):
    x = np.asarray(x, dtype=np.float64)
    return (np.arcsinh(x * np.sinh(M * LN10) / T) + A * LN10) / ((M + A) * LN10)


def asinh_inverse(y, T, M, A):
    y = np.asarray(y, dtype=np.float64)
    return np.sinh(y * (M + A) * LN10 - A * LN10) * T / np.sinh(M * LN10)


def ratio(x, y, A, B, C):
    with np.errstate(divide="ignore", invalid="ignore"):
        return A * (np.asarray(x, np.float64) - B) / (np.asarray(y, np.float64) - C)


# --- root-defined transforms ---------------------------------------------------------------------


def _bisect(f, lo, hi, iters=200):
    """Root of increasing ``f`` in ``[lo, hi]`` by plain bisection."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _invert(B, x1, x):
    """``y`` with ``B(y) = x`` for an increasing ``B``; NaN/inf handled like the kernels."""
    out = np.empty(len(x))
    for i, v in enumerate(np.asarray(x, dtype=np.float64).tolist()):
        if math.isnan(v) or math.isinf(v):
            out[i] = v
            continue
        lo, hi = x1 - 1.0, x1 + 1.0
        while B(lo) > v:
            lo = x1 - 2.0 * (x1 - lo)
        while B(hi) < v:
            hi = x1 + 2.0 * (hi - x1)
        out[i] = _bisect(lambda y, v=v: B(y) - v, lo, hi)
    return out


def logicle_constants(T, W, M, A):
    """Gating-ML 2.0 / Moore & Parks 2012 constants ``a, b, c, d, f, x1``."""
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * LN10
    if w == 0:
        d = b
    else:
        d = _bisect(lambda d: 2 * (math.log(d) - math.log(b)) + w * (b + d), 1e-300, b)
    ca = math.exp(x0 * (b + d))
    mfa = math.exp(b * x1) - ca * math.exp(-d * x1)
    a = T / (math.exp(b) - mfa - ca * math.exp(-d))
    return a, b, ca * a, d, -mfa * a, x1


def _logicle_B(T, W, M, A):
    a, b, c, d, f, x1 = logicle_constants(T, W, M, A)

    def B(y):
        if y >= x1:
            return a * math.exp(b * y) - c * math.exp(-d * y) + f
        z = 2 * x1 - y
        return -(a * math.exp(b * z) - c * math.exp(-d * z) + f)

    return B, x1


def logicle(x, T, W, M, A):
    B, x1 = _logicle_B(T, W, M, A)
    return _invert(B, x1, x)


def logicle_inverse(y, T, W, M, A):
    B, _ = _logicle_B(T, W, M, A)
    return np.array([B(v) if math.isfinite(v) else v for v in np.asarray(y, float).tolist()])


def _hyperlog_EH(T, W, M, A):
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * LN10
    e0 = math.exp(b * x0)
    ca = e0 / w
    fa = math.exp(b * x1) + ca * x1
    a = T / (math.exp(b) + ca - fa)
    c = ca * a
    f = fa * a

    def EH(y):
        if y >= x1:
            return a * math.exp(b * y) + c * y - f
        z = 2 * x1 - y
        return -(a * math.exp(b * z) + c * z - f)

    return EH, x1


def hyperlog(x, T, W, M, A):
    EH, x1 = _hyperlog_EH(T, W, M, A)
    return _invert(EH, x1, x)


def hyperlog_inverse(y, T, W, M, A):
    EH, _ = _hyperlog_EH(T, W, M, A)
    return np.array([EH(v) if math.isfinite(v) else v for v in np.asarray(y, float).tolist()])


# --- FlowJo biex: materialise the table, then interpolate ------------------------------------------


def biex_table(negative, width, positive, max_value, channels=4096):
    """FlowJo's biex table: data value at each of the ``channels + 1`` display channels."""
    lw = math.log10(-width)
    decades = positive - lw / 2
    extra = max(negative, 0.0) + lw / 2
    zero = int(min(int(extra * channels / (extra + decades)), channels / 2))
    if zero > 0:
        decades = extra * channels / zero
    wn = lw / (2 * decades)
    pr = decades * LN10
    nr = pr if wn == 0 else _bisect(lambda d: 2 * math.log(d / pr) + wn * (pr + d), 1e-300, pr)
    n = channels + 1
    i = np.arange(n, dtype=np.float64)
    s = math.exp((pr + nr) * (wn + extra / decades))
    pos = np.exp(i / n * pr)
    neg = s * np.exp(-i / n * nr)
    table = (max_value / math.exp(pr)) * (pos - neg - (pos[zero] - neg[zero]))
    table[:zero] = -table[2 * zero - np.arange(zero)]
    return table


def biex(x, negative, width, positive, max_value):
    table = biex_table(negative, width, positive, max_value)
    return np.interp(np.asarray(x, np.float64), table, np.arange(table.size, dtype=np.float64))


def biex_inverse(ch, negative, width, positive, max_value):
    table = biex_table(negative, width, positive, max_value)
    return np.interp(np.asarray(ch, np.float64), np.arange(table.size, dtype=np.float64), table)


# --- compensation --------------------------------------------------------------------------------


def compensate(events, spillover, columns):
    out = np.array(events, dtype=np.float64)
    cols = list(columns)
    s = np.asarray(spillover, dtype=np.float64)
    out[:, cols] = np.linalg.solve(s.T, out[:, cols].T).T
    return out


# --- Gating-ML compliance: single RectangleGate files ----------------------------------------------

GML_DIR = CORPUS / "flowkit" / "data" / "gate_ref"
DATA1 = CORPUS / "github" / "whitews_FlowIO" / "data" / "truth" / "data1_preprocessed.npy"
DATA1_CHANNELS = ["FSC-H", "SSC-H", "FL1-H", "FL2-H", "FL3-H", "FL2-A", "FL4-H", "Time"]
_NS = {
    "gating": "http://www.isac-net.org/std/Gating-ML/v2.0/gating",
    "transforms": "http://www.isac-net.org/std/Gating-ML/v2.0/transformations",
    "data-type": "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes",
}


def _attr(el, ns, name):
    return el.get(f"{{{_NS[ns]}}}{name}")


def read_rectangle_gml(path):
    """Parse a compliance file holding one RectangleGate.

    Returns ``(gate_id, dims, transforms, matrices)``: ``dims`` is a list of
    ``dict(name=..., ratio=..., comp=..., xform=..., lo=..., hi=...)``,
    ``transforms`` maps id → ``(kind, params, dims)`` and ``matrices`` maps id →
    ``(fluorochromes, detectors, spillover)``.
    """
    root = ET.parse(path).getroot()
    transforms = {}
    for t in root.findall("transforms:transformation", _NS):
        (el,) = list(t)
        kind = el.tag.split("}")[1]
        params = {k.split("}")[1]: float(v) for k, v in el.attrib.items()}
        dims = [_attr(d, "data-type", "name") for d in el.findall("data-type:fcs-dimension", _NS)]
        transforms[_attr(t, "transforms", "id")] = (kind, params, dims)
    matrices = {}
    for m in root.findall("transforms:spectrumMatrix", _NS):
        names = [
            [_attr(d, "data-type", "name") for d in m.find(f"transforms:{part}", _NS)]
            for part in ("fluorochromes", "detectors")
        ]
        rows = [
            [float(_attr(c, "transforms", "value")) for c in s]
            for s in m.findall("transforms:spectrum", _NS)
        ]
        matrices[_attr(m, "transforms", "id")] = (names[0], names[1], np.array(rows))
    (gate,) = root.findall("gating:RectangleGate", _NS)
    dims = []
    for d in gate.findall("gating:dimension", _NS):
        fcs = d.find("data-type:fcs-dimension", _NS)
        new = d.find("data-type:new-dimension", _NS)
        lo, hi = _attr(d, "gating", "min"), _attr(d, "gating", "max")
        dims.append(
            dict(
                name=_attr(fcs, "data-type", "name") if fcs is not None else None,
                ratio=_attr(new, "data-type", "transformation-ref") if new is not None else None,
                comp=_attr(d, "gating", "compensation-ref"),
                xform=_attr(d, "gating", "transformation-ref"),
                lo=-math.inf if lo is None else float(lo),
                hi=math.inf if hi is None else float(hi),
            )
        )
    return _attr(gate, "gating", "id"), dims, transforms, matrices


def truth_membership(gate_id):
    return np.loadtxt(GML_DIR / "truth" / f"Results_{gate_id}.txt", dtype=np.int64).astype(bool)
