"""Compensation kernel vs numpy's solver, FlowKit's compensation and the Gating-ML MySpill gates."""

from __future__ import annotations

import naive_transforms as nv
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cytokit.kernels as k

MYSPILL = np.array([[1, 0.02, 0.06], [0.11, 1, 0.07], [0.09, 0.01, 1]])


def _spill(rng, m):
    s = np.eye(m) + rng.uniform(0, 0.3, (m, m)) * (rng.random((m, m)) < 0.6)
    np.fill_diagonal(s, 1.0)
    return s


def _events(rng, n, p, dtype=np.float64):
    return rng.normal(1000, 800, (n, p)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 257, 70_000])
def test_matches_solve(dtype, n):
    rng = np.random.default_rng(n)
    ev = _events(rng, n, 10, dtype)
    cols = [7, 2, 3, 9, 5]
    s = _spill(rng, 5)
    before = ev.copy()
    got = k.compensate(ev, s, cols)
    assert got.dtype == dtype and got.shape == ev.shape
    expected = nv.compensate(ev, s, cols)
    tol = dict(rtol=1e-6, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got, expected, **tol)
    # the other columns are copied through bit for bit; the input is untouched
    other = [c for c in range(10) if c not in cols]
    np.testing.assert_array_equal(got[:, other], ev[:, other])
    np.testing.assert_array_equal(ev, before)


def test_float32_accumulates_in_float64():
    # float32 sums would lose the small compensated value next to huge terms
    ev = np.array([[1e7, 1e7 * 0.5 + 3.0]], dtype=np.float32)
    s = np.array([[1.0, 0.5], [0.0, 1.0]])
    got = k.compensate(ev, s, [0, 1])
    assert got[0, 1] == pytest.approx(3.0, abs=0.5)


def test_in_place_and_out():
    rng = np.random.default_rng(3)
    ev = _events(rng, 50_000, 6)
    s = _spill(rng, 3)
    expected = nv.compensate(ev, s, [0, 4, 5])
    out = np.full(ev.shape, -1.0, dtype=np.float32)
    assert k.compensate(ev, s, [0, 4, 5], out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-3)
    same = ev.copy()
    assert k.compensate(same, s, [0, 4, 5], out=same) is same
    np.testing.assert_allclose(same, expected, rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match="overlaps"):
        k.compensate(ev, s, [0, 4, 5], out=ev[:, :])


def test_readonly_noncontiguous_and_int():
    rng = np.random.default_rng(4)
    big = np.asfortranarray(_events(rng, 40_000, 8))
    big.flags.writeable = False
    view = big[::3]
    s = _spill(rng, 4)
    got = k.compensate(view, s, [1, 2, 3, 6])
    np.testing.assert_allclose(got, nv.compensate(view, s, [1, 2, 3, 6]), rtol=1e-12, atol=1e-9)
    ints = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = k.compensate(ints, np.eye(2), [0, 1])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, ints)


def test_nan_and_inf_propagate_within_event():
    ev = np.array([[np.nan, 1.0, 5.0], [1.0, np.inf, 5.0], [1.0, 2.0, 5.0]])
    got = k.compensate(ev, MYSPILL[:2, :2], [0, 1])
    assert np.isnan(got[0, :2]).all() and got[0, 2] == 5.0
    assert not np.isfinite(got[1, :2]).any()
    assert np.isfinite(got[2]).all()


@pytest.mark.parametrize(
    ("spill", "cols", "exc", "match"),
    [
        (np.array([[1.0, 1.0], [1.0, 1.0]]), [0, 1], ValueError, "singular"),
        (np.zeros((2, 2)), [0, 1], ValueError, "singular"),
        (np.eye(3), [0, 1], ValueError, "3x3 but 2 columns"),
        (np.ones((2, 3)), [0, 1], ValueError, "square"),
        (np.array([[1.0, np.nan], [0, 1]]), [0, 1], ValueError, "finite"),
        (np.eye(2), [0, 9], ValueError, r"out of range for 4 channels"),
        (np.eye(2), [1, 1], ValueError, "duplicates"),
        (np.eye(2), [0.5, 1.5], ValueError, "integer"),
    ],
)
def test_errors(spill, cols, exc, match):
    with pytest.raises(exc, match=match):
        k.compensate(np.ones((3, 4)), spill, cols)


def test_compensation_matrix():
    inv = k.compensation_matrix(MYSPILL)
    np.testing.assert_allclose(inv @ MYSPILL, np.eye(3), atol=1e-15)
    with pytest.raises(ValueError, match=r"singular \(condition number"):
        k.compensation_matrix([[1.0, 2.0], [2.0, 4.0]])


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 40),
)
def test_undoes_spillover(m, seed, n):
    """Spilling true signals with S and compensating recovers them; identity changes nothing."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1000, (n, m + 2))
    s = _spill(rng, m)
    cols = list(rng.permutation(m + 2)[:m])
    observed = true.copy()
    observed[:, cols] = true[:, cols] @ s
    np.testing.assert_allclose(k.compensate(observed, s, cols), true, rtol=1e-9, atol=1e-8)
    np.testing.assert_array_equal(k.compensate(true, np.eye(m), cols), true)


# --- external truth -------------------------------------------------------------------------------

COMP_FCS = nv.CORPUS / "flowkit" / "data" / "test_comp_example.fcs"
COMP_CSV = nv.CORPUS / "flowkit" / "data" / "comp_complete_example.csv"


@pytest.mark.corpus
@pytest.mark.filterwarnings("ignore:FCS file test_comp_example.fcs reported incorrect data offset")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_against_flowkit_comp_example():
    fk = pytest.importorskip("flowkit")
    if not (COMP_FCS.exists() and COMP_CSV.exists()):
        pytest.skip("FlowKit compensation example missing (needs ../shared/corpus)")
    sample = fk.Sample(str(COMP_FCS), ignore_offset_error=True)
    raw = sample.get_events(source="raw")
    sample.apply_compensation(str(COMP_CSV))
    expected = sample.get_events(source="comp")
    matrix = sample.compensation
    cols = [sample.pnn_labels.index(d) for d in matrix.detectors]
    assert len(cols) == 14
    got = k.compensate(raw, matrix.matrix, cols)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-8)
    got32 = k.compensate(raw.astype(np.float32), matrix.matrix, cols)
    np.testing.assert_allclose(got32, expected, rtol=1e-5, atol=0.05)


@pytest.mark.corpus
@pytest.mark.parametrize("gate_id", ["Rectangle3", "Rectangle4", "Rectangle5", "Polygon4"])
def test_myspill_gates(gate_id):
    """Gating-ML compliance gates on MySpill-compensated data (rows = FITC/PE/PerCP)."""
    if not nv.DATA1.exists():
        pytest.skip("Gating-ML compliance data missing (needs ../shared/corpus)")
    events = np.load(nv.DATA1)
    comp = k.compensate(events, MYSPILL, [2, 3, 4])  # FL1-H, FL2-H, FL3-H
    fitc, pe, percp, fsc = comp[:, 2], comp[:, 3], comp[:, 4], events[:, 0]
    fname = {
        "Rectangle3": "gml_matrix_rect3_gate.xml",
        "Rectangle4": "gml_matrix_rect4_gate.xml",
        "Rectangle5": "gml_matrix_rect5_gate.xml",
    }
    truth = nv.truth_membership(gate_id)
    if gate_id == "Polygon4":
        # Triangle on PE x PerCP (even-odd rule; no event sits on an edge).
        verts = _polygon_vertices(nv.GML_DIR / "gml" / "gml_matrix_poly4_gate.xml")
        member = _in_polygon(pe, percp, verts)
    else:
        _, dims, _, matrices = nv.read_rectangle_gml(nv.GML_DIR / "gml" / fname[gate_id])
        np.testing.assert_array_equal(matrices.get("MySpill", (None, None, MYSPILL))[2], MYSPILL)
        values = {"FITC": fitc, "PE": pe, "PerCP": percp, "FSC-H": fsc}
        member = np.ones(events.shape[0], dtype=bool)
        for d in dims:
            v = values[d["name"]]
            member &= (v >= d["lo"]) & (v < d["hi"])
    np.testing.assert_array_equal(member, truth)


def _polygon_vertices(path):
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    gating = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
    value = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}value"
    verts = []
    for v in root.iter(f"{gating}vertex"):
        verts.append([float(c.get(value)) for c in v])
    return np.array(verts)


def _in_polygon(x, y, verts):
    inside = np.zeros(x.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % n]
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside
