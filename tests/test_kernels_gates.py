"""Gate membership kernels against slow references, analytic cases, FlowKit and the Gating-ML truth."""

from __future__ import annotations

import naive_gates as naive
import numpy as np
import pytest

from cytokit.kernels import (
    boolean_membership,
    ellipsoid_membership,
    polygon_membership,
    quadrant_interval,
    quadrant_membership,
    rectangle_membership,
)


def variants(x: np.ndarray):
    """The same values in every layout and dtype a kernel must accept."""
    x = np.asarray(x, dtype=np.float64)
    yield "f64-C", x.copy()
    yield "f32-C", x.astype(np.float32)
    yield "f64-F", np.asfortranarray(x)
    wide = np.zeros((x.shape[0] * 2, x.shape[1] * 3))
    wide[::2, 1::3] = x
    yield "f64-strided", wide[::2, 1::3]
    ro = x.astype(np.float32)
    ro.flags.writeable = False
    yield "f32-readonly", ro


def events(rng, n, nd, scale=10.0):
    x = rng.normal(scale=scale, size=(n, nd))
    x[rng.random(n) < 0.02, rng.integers(nd)] = np.nan
    x[rng.random(n) < 0.01, rng.integers(nd)] = np.inf
    x[rng.random(n) < 0.01, rng.integers(nd)] = -np.inf
    return x


def check_all_variants(fn, ref, x, **kw):
    for label, xv in variants(x):
        before = xv.copy()
        got = fn(xv, **kw)
        # float32 inputs are compared with the reference on the float32 values
        want = ref(np.asarray(xv, dtype=np.float64))
        np.testing.assert_array_equal(got, want, err_msg=label)
        np.testing.assert_array_equal(xv, before, err_msg=f"{label}: input modified")


# --- rectangle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rectangle_matches_reference(seed):
    rng = np.random.default_rng(seed)
    x = events(rng, 3000, 3)
    x[:50, 0] = 1.5  # exactly on a lower bound
    x[50:100, 1] = 4.0  # exactly on an upper bound
    lo, hi = [1.5, None, -np.inf], [np.nan, 4.0, 2.0]
    check_all_variants(
        lambda v: rectangle_membership(v, lo, hi), lambda v: naive.rectangle(v, lo, hi), x
    )


def test_rectangle_bounds_min_inclusive_max_exclusive_and_open_sides():
    x = np.array([[0.0], [1.0], [2.0], [np.nan], [np.inf], [-np.inf]])
    np.testing.assert_array_equal(rectangle_membership(x, [1.0], [2.0]), [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(rectangle_membership(x, [1.0], [None]), [0, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(rectangle_membership(x, [-np.inf], [np.inf]), [1, 1, 1, 0, 1, 1])
    # 1-D input is one dimension
    np.testing.assert_array_equal(rectangle_membership(x[:, 0], [1.0], [2.0]), [0, 1, 0, 0, 0, 0])


def test_rectangle_empty_one_event_and_out():
    assert rectangle_membership(np.zeros((0, 2)), [0, 0], [1, 1]).shape == (0,)
    np.testing.assert_array_equal(
        rectangle_membership(np.array([[0.5, 0.5]]), [0, 0], [1, 1]), [True]
    )
    out = np.zeros(3, dtype=bool)
    res = rectangle_membership(np.array([[0.5], [2.0], [0.0]]), [0], [1], out=out)
    assert res is out
    np.testing.assert_array_equal(out, [True, False, True])


def test_rectangle_errors():
    with pytest.raises(ValueError, match=r"min=2\.0 > max=1\.0"):
        rectangle_membership(np.zeros((2, 1)), [2.0], [1.0])
    with pytest.raises(ValueError, match="2 dimensions"):
        rectangle_membership(np.zeros((2, 3)), [0, 0], [1, 1])
    with pytest.raises(ValueError, match="use NaN for an open side"):
        rectangle_membership(np.zeros((2, 1)), [np.inf], [None])
    with pytest.raises(TypeError, match="dtype"):
        rectangle_membership(np.zeros((2, 1), dtype=np.complex128), [0], [1])
    ro = np.zeros(2, dtype=bool)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        rectangle_membership(np.zeros((2, 1)), [0], [1], out=ro)


# --- polygon -----------------------------------------------------------------------------------

SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
# A self-intersecting polygon whose centre is wound twice (non-zero: inside; even-odd: outside).
PENTAGRAM = [(np.cos(a), np.sin(a)) for a in np.pi / 2 + 2 * np.pi * np.arange(0, 10, 2) / 5]


def test_polygon_square_edges_are_half_open():
    pts = np.array(
        [
            [0, 2],
            [4, 2],
            [2, 0],
            [2, 4],
            [0, 0],
            [4, 0],
            [4, 4],
            [0, 4],
            [2, 2],
            [-1, 2],
            [np.nan, 2],
        ],
        dtype=np.float64,
    )
    # left/bottom edges and their corner inside; right/top edges outside (like a rectangle gate)
    want = [1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]
    np.testing.assert_array_equal(polygon_membership(pts, SQUARE), want)
    np.testing.assert_array_equal(
        polygon_membership(pts, SQUARE), rectangle_membership(pts, [0, 0], [4, 4])
    )
    # orientation does not matter
    np.testing.assert_array_equal(polygon_membership(pts, SQUARE[::-1]), want)


def test_polygon_even_odd_for_self_intersecting():
    pts = np.array([[0.0, 0.0], [0.0, 0.8], [0.0, 1.5]])
    np.testing.assert_array_equal(polygon_membership(pts, PENTAGRAM), [False, True, False])


def test_polygon_points_on_diagonal_edge():
    # Triangle with a 45° hypotenuse: points exactly on it (x == y) are left of the
    # right-hand edge, so inside, exactly as Polygon1 of the compliance suite requires.
    tri = [(5.0, 5.0), (500.0, 5.0), (500.0, 500.0)]
    v = np.random.default_rng(3).uniform(5.0, 500.0, 2000)
    pts = np.column_stack([v, v])
    assert polygon_membership(pts, tri).all()
    np.testing.assert_array_equal(polygon_membership(pts, tri), naive.polygon(pts, tri))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_polygon_matches_exact_reference(seed):
    rng = np.random.default_rng(seed)
    verts = rng.uniform(-10, 10, size=(int(rng.integers(3, 12)), 2))  # often self-intersecting
    x = events(rng, 1500, 2, scale=8.0)
    # some points exactly on vertices and on axis-aligned lines through vertices
    x[:20] = verts[rng.integers(len(verts), size=20)]
    x[20:40, 0] = verts[rng.integers(len(verts), size=20), 0]
    check_all_variants(lambda v: polygon_membership(v, verts), lambda v: naive.polygon(v, verts), x)


def test_polygon_errors():
    with pytest.raises(ValueError, match=r"shape \(n >= 3, 2\)"):
        polygon_membership(np.zeros((2, 2)), [(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="finite"):
        polygon_membership(np.zeros((2, 2)), [(0, 0), (1, np.nan), (2, 0)])
    with pytest.raises(ValueError, match="2 dimensions"):
        polygon_membership(np.zeros((2, 3)), SQUARE)


# --- ellipsoid ---------------------------------------------------------------------------------


def test_ellipsoid_circle_boundary_inclusive():
    pts = np.array([[3.0, 0.0], [0.0, -3.0], [3.0, 0.1], [0.0, 0.0], [np.nan, 0.0], [np.inf, 0.0]])
    np.testing.assert_array_equal(
        ellipsoid_membership(pts, [0, 0], np.eye(2), 9.0), [1, 1, 0, 1, 0, 0]
    )


@pytest.mark.parametrize("nd", [1, 2, 3, 5])
def test_ellipsoid_matches_reference(nd):
    rng = np.random.default_rng(nd)
    a = rng.normal(size=(nd, nd))
    cov = a @ a.T + nd * np.eye(nd)
    mean = rng.normal(size=nd)
    x = events(rng, 2000, nd, scale=3.0)
    check_all_variants(
        lambda v: ellipsoid_membership(v, mean, cov, 2.5),
        lambda v: naive.ellipsoid(v, mean, cov, 2.5),
        x,
    )


def test_ellipsoid_errors():
    with pytest.raises(ValueError, match="singular"):
        ellipsoid_membership(np.zeros((2, 2)), [0, 0], [[1, 1], [1, 1]], 1)
    with pytest.raises(ValueError, match="distance_square"):
        ellipsoid_membership(np.zeros((2, 2)), [0, 0], np.eye(2), 0)
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        ellipsoid_membership(np.zeros((2, 2)), [0, 0], np.eye(3), 1)


# Far from the mean of a matrix that is no covariance: an indefinite matrix takes in (1e6, -1e6),
# as an ellipse of radius 1 cannot; a lopsided one is read as its symmetric part by no rule.
NO_COVARIANCE = {
    "indefinite": ([[1, 2], [2, 1]], r"is not positive definite \(eigenvalues \[-1.0, 3.0\]\)"),
    "lopsided": ([[1, 0.5], [0, 1]], r"is not symmetric: row 0 column 1 is 0.5 but row 1 column 0"),
    "indefinite 3-D": (
        [[2.5, 7.5, 17.5], [7.5, 7, 13.5], [15.5, 13.5, 4.3]],  # FlowKit's Ellipsoid3D document
        r"is not symmetric: row 0 column 2 is 17.5 but row 2 column 0 is 15.5",
    ),
}


@pytest.mark.parametrize("case", sorted(NO_COVARIANCE))
def test_ellipsoid_refuses_a_matrix_that_is_no_covariance(case):
    cov, match = NO_COVARIANCE[case]
    nd = len(cov)
    x = np.array([[0, 0], [100, 100], [1000, -1000], [1e6, -1e6], [50, 0]], float)
    x = np.column_stack([x] + [x[:, :1]] * (nd - 2))
    with pytest.raises(ValueError, match=r"^ellipsoid: covariance matrix \[\[.*" + match):
        ellipsoid_membership(x, [0] * nd, cov, 1.0)


def test_ellipsoid_takes_a_covariance_printed_to_four_digits():
    """A fitted [[62.5, 37.505], [37.495, 62.5]] printed to 4 digits: 37.51 and 37.49."""
    cov = [[62.5, 37.51], [37.49, 62.5]]
    x = np.random.default_rng(4).normal(scale=10, size=(2000, 2))
    np.testing.assert_array_equal(
        ellipsoid_membership(x, [0, 0], cov, 1.0), naive.ellipsoid(x, [0, 0], cov, 1.0)
    )


# --- quadrants ---------------------------------------------------------------------------------


def test_quadrant_interval_and_ties_go_up():
    assert quadrant_interval([1.0, 5.0], 0.0) == 0
    assert quadrant_interval([1.0, 5.0], 1.0) == 1
    assert quadrant_interval([1.0, 5.0], 7.0) == 2
    x = np.array([[1.0, 0.0], [0.999, 0.0], [np.nan, 0.0], [np.inf, -np.inf]])
    m = quadrant_membership(x, [[1.0], [0.0]], [[1, 1], [0, -1], [1, 0]])
    np.testing.assert_array_equal(m, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


@pytest.mark.parametrize("seed", [0, 1])
def test_quadrants_match_reference(seed):
    rng = np.random.default_rng(seed)
    dividers = [np.sort(rng.normal(size=k)) for k in (1, 2, 3)]
    quads = np.array([[rng.integers(-1, len(d) + 1) for d in dividers] for _ in range(8)])
    quads[quads.max(axis=1) < 0, 0] = 0
    x = events(rng, 2000, 3, scale=1.5)
    x[:30, 1] = dividers[1][0]  # ties on a divider value
    check_all_variants(
        lambda v: quadrant_membership(v, dividers, quads),
        lambda v: naive.quadrants(v, dividers, quads),
        x,
    )


def test_quadrant_errors():
    with pytest.raises(ValueError, match="strictly increasing"):
        quadrant_membership(np.zeros((2, 1)), [[2.0, 1.0]], [[0]])
    with pytest.raises(ValueError, match="names no divider"):
        quadrant_membership(np.zeros((2, 1)), [[1.0]], [[-1]])
    with pytest.raises(ValueError, match="out of range"):
        quadrant_membership(np.zeros((2, 1)), [[1.0]], [[2]])


# --- boolean -----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["and", "or"])
def test_boolean_matches_reference(op):
    rng = np.random.default_rng(5)
    ops = rng.random((3, 5000)) < 0.5
    comp = [False, True, False]
    before = ops.copy()
    np.testing.assert_array_equal(
        boolean_membership(op, ops, comp), naive.boolean(op, list(ops), comp)
    )
    np.testing.assert_array_equal(boolean_membership(op, list(ops)), naive.boolean(op, list(ops)))
    np.testing.assert_array_equal(ops, before)


def test_boolean_not_and_errors():
    a = np.array([True, False, True])
    np.testing.assert_array_equal(boolean_membership("not", [a]), ~a)
    np.testing.assert_array_equal(boolean_membership("not", [a], [True]), a)
    with pytest.raises(ValueError, match="'not' takes 1"):
        boolean_membership("not", [a, a])
    with pytest.raises(ValueError, match="not one of"):
        boolean_membership("xor", [a, a])
    with pytest.raises(ValueError, match="must be bool"):
        boolean_membership("and", np.ones((2, 3)))
    assert boolean_membership("and", np.zeros((2, 0), dtype=bool)).shape == (0,)
    # no operands at all: said so, not "got float64 (1, 0)"
    with pytest.raises(ValueError, match="'and' got no operands"):
        boolean_membership("and", [])
    # masks of two samples: named as such, not numpy's "inhomogeneous shape"
    with pytest.raises(ValueError, match=r"different shapes \[\(2,\), \(3,\)\]"):
        boolean_membership("and", [a, a[:2]])
    np.testing.assert_array_equal(boolean_membership("and", (m for m in (a, a))), a)


def test_quadrant_interval_refuses_what_has_no_side():
    from cytokit.kernels import quadrant_interval

    assert quadrant_interval([0.0, 1.0], 0.5) == 1 and quadrant_interval([0.0, 1.0], 1.0) == 2
    with pytest.raises(ValueError, match="location=nan must be finite"):
        quadrant_interval([0.0, 1.0], np.nan)
    with pytest.raises(ValueError, match="strictly increasing"):
        quadrant_interval([1.0, 0.0], 0.5)


# --- FlowKit as an oracle on random data ---------------------------------------------------------


@pytest.fixture(scope="module")
def fk():
    return pytest.importorskip("flowkit")


def _df(x):
    import pandas as pd

    return pd.DataFrame(x, columns=[f"d{j}" for j in range(x.shape[1])])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_polygon_matches_flowkit(fk, seed):
    rng = np.random.default_rng(seed)
    verts = rng.uniform(-10, 10, size=(int(rng.integers(3, 10)), 2))
    x = rng.normal(scale=8.0, size=(5000, 2))
    gate = fk.gates.PolygonGate("p", [fk.Dimension("d0"), fk.Dimension("d1")], verts.tolist())
    np.testing.assert_array_equal(polygon_membership(x, verts), gate.apply(_df(x)))


@pytest.mark.parametrize("seed", [0, 1])
def test_ellipsoid_matches_flowkit(fk, seed):
    rng = np.random.default_rng(seed)
    nd = 2 + seed
    a = rng.normal(size=(nd, nd))
    cov = a @ a.T + np.eye(nd)
    mean = rng.normal(size=nd)
    x = rng.normal(scale=2.0, size=(5000, nd))
    dims = [fk.Dimension(f"d{j}") for j in range(nd)]
    gate = fk.gates.EllipsoidGate("e", dims, mean.tolist(), cov.tolist(), 2.0)
    np.testing.assert_array_equal(ellipsoid_membership(x, mean, cov, 2.0), gate.apply(_df(x)))


def test_quadrants_match_flowkit(fk):
    rng = np.random.default_rng(7)
    dividers = [[-0.3], [-0.5, 0.6]]
    x = rng.normal(size=(5000, 2))
    x[:100, 0] = -0.3  # ties
    x[100:200, 1] = 0.6
    fk_divs = [
        fk.QuadrantDivider(f"v{j}", f"d{j}", "uncompensated", list(v))
        for j, v in enumerate(dividers)
    ]
    quads = [[0, 0], [1, 1], [1, 2], [0, -1], [-1, 1]]
    fk_quads = []
    for q, ks in enumerate(quads):
        refs, ranges = [], []
        for j, k in enumerate(ks):
            if k < 0:
                continue
            v = dividers[j]
            refs.append(f"v{j}")
            ranges.append((v[k - 1] if k > 0 else None, v[k] if k < len(v) else None))
        fk_quads.append(fk.gates.Quadrant(f"q{q}", refs, ranges))
    want = fk.gates.QuadrantGate("Q", fk_divs, fk_quads).apply(_df(x))
    got = quadrant_membership(x, dividers, quads)
    for q in range(len(quads)):
        np.testing.assert_array_equal(got[q], want[f"q{q}"], err_msg=f"quadrant {q}")


# --- Gating-ML 2.0 compliance truth (standalone kernels, uncompensated gates) ---------------------


@pytest.fixture(scope="module")
def data1():
    if not naive.DATA1_SCALE.exists() or not naive.GATE_REF.exists():
        pytest.skip(f"Gating-ML compliance corpus not found at {naive.GATE_REF}")
    d = naive.data1_scale()
    return {c: d[:, j] for j, c in enumerate(naive.DATA1_CHANNELS)}


def cols(data1, *names):
    return np.column_stack([data1[n] for n in names])


@pytest.mark.corpus
def test_compliance_rectangles_and_ranges(data1):
    ranges = {
        "Range1": (("FSC-H",), [100], [None]),
        "Range2": (("Time",), [20], [80]),
        "Rectangle1": (("SSC-H", "FL1-H"), [20, 70], [80, 200]),
        "Rectangle2": (("SSC-H", "FL1-H"), [20, 70], [80, 200]),  # "FCS" comp, file has none
    }
    for gid, (names, lo, hi) in ranges.items():
        got = rectangle_membership(cols(data1, *names), lo, hi)
        np.testing.assert_array_equal(got, naive.truth(gid), err_msg=gid)
    # Range2's bounds are hit exactly (Time is integer): 90 events at 20 (in), 60 at 80 (out)
    assert (data1["Time"] == 20).sum() == 90 and (data1["Time"] == 80).sum() == 60


POLYGONS = {
    "Polygon1": (("FL2-H", "FL3-H"), [(5, 5), (500, 5), (500, 500)]),
    "Polygon2": (("FL1-H", "FL4-H"), [(20, 10), (120, 10), (120, 160), (20, 160)]),
    "Polygon3NS": (
        ("SSC-H", "FL3-H"),
        [
            (10, 10),
            (500, 10),
            (500, 390),
            (100, 390),
            (100, 180),
            (200, 180),
            (200, 300),
            (10, 300),
        ],
    ),
}


@pytest.mark.corpus
@pytest.mark.parametrize("gid", sorted(POLYGONS))
def test_compliance_polygons(data1, gid):
    names, verts = POLYGONS[gid]
    got = polygon_membership(cols(data1, *names), verts)
    np.testing.assert_array_equal(got, naive.truth(gid))


@pytest.mark.corpus
def test_compliance_polygon3ns_needs_even_odd(data1):
    """Non-zero winding would add the 2 events in Polygon3NS's doubly wound square."""
    names, verts = POLYGONS["Polygon3NS"]
    x = cols(data1, *names)
    t = naive.truth("Polygon3NS")
    doubly = (x[:, 0] > 100) & (x[:, 0] < 200) & (x[:, 1] > 180) & (x[:, 1] < 300)
    assert doubly.sum() == 2 and not t[doubly].any()
    np.testing.assert_array_equal(polygon_membership(x, verts), t)


@pytest.mark.corpus
def test_compliance_ellipsoids(data1):
    e1 = ellipsoid_membership(
        cols(data1, "FL3-H", "FL4-H"), [12.99701, 16.22941], [[62.5, 37.5], [37.5, 62.5]], 1
    )
    np.testing.assert_array_equal(e1, naive.truth("Ellipse1"))
    # FlowKit's Ellipsoid3D matrix is no covariance: see NO_COVARIANCE


@pytest.mark.corpus
def test_compliance_quadrants(data1):
    q1 = [[12.14748], [14.22417]]
    ids1 = {"FL2P-FL4P": (15, 15), "FL2N-FL4P": (5, 15), "FL2N-FL4N": (5, 5), "FL2P-FL4N": (15, 5)}
    quads = [[quadrant_interval(q1[j], loc) for j, loc in enumerate(v)] for v in ids1.values()]
    m = quadrant_membership(cols(data1, "FL2-H", "FL4-H"), q1, quads)
    for r, gid in enumerate(ids1):
        np.testing.assert_array_equal(m[r], naive.truth(gid), err_msg=gid)

    q2 = [[28.0654, 70.02725], [17.75], [6.43567]]
    ids2 = {
        "FSCN-SSCN": (10, 10, None),
        "FSCD-SSCN-FL1N": (30, 10, 5),
        "FSCP-SSCN-FL1N": (80, 10, 5),
        "FSCD-FL1P": (30, None, 10),
        "FSCN-SSCP-FL1P": (10, 20, 15),
    }
    quads = [
        [-1 if loc is None else quadrant_interval(q2[j], loc) for j, loc in enumerate(v)]
        for v in ids2.values()
    ]
    m = quadrant_membership(cols(data1, "FSC-H", "SSC-H", "FL1-H"), q2, quads)
    for r, gid in enumerate(ids2):
        np.testing.assert_array_equal(m[r], naive.truth(gid), err_msg=gid)
    # 42 events sit exactly on the SSC divider 17.75; the truth puts them above it.
    assert (data1["SSC-H"] == 17.75).sum() == 42


@pytest.mark.corpus
def test_compliance_booleans(data1):
    range1 = rectangle_membership(data1["FSC-H"], [100], [None])
    range2 = rectangle_membership(data1["Time"], [20], [80])
    rect2 = rectangle_membership(cols(data1, "SSC-H", "FL1-H"), [20, 70], [80, 200])
    poly1 = polygon_membership(cols(data1, "FL2-H", "FL3-H"), POLYGONS["Polygon1"][1])
    ell1 = ellipsoid_membership(
        cols(data1, "FL3-H", "FL4-H"), [12.99701, 16.22941], [[62.5, 37.5], [37.5, 62.5]], 1
    )
    fl2n_fl4n = quadrant_membership(
        cols(data1, "FL2-H", "FL4-H"), [[12.14748], [14.22417]], [[0, 0]]
    )[0]
    not1 = boolean_membership("not", [ell1])
    cases = {
        "And1": boolean_membership("and", [poly1, range2]),
        "And2": boolean_membership("and", [range1, ell1, poly1]),
        "And3": boolean_membership("and", [range1, ell1, poly1], [False, True, False]),
        "And4": boolean_membership("and", [range1, not1, poly1]),
        "Or1": boolean_membership("or", [range1, ell1, poly1]),
        "Or2": boolean_membership("or", [rect2, fl2n_fl4n], [False, True]),
        "Not1": not1,
        "ParAnd2": boolean_membership("and", [range1, ell1]) & poly1,
        "ParAnd3": boolean_membership("and", [ell1, poly1], [True, False]) & range1,
    }
    for gid, got in cases.items():
        np.testing.assert_array_equal(got, naive.truth(gid), err_msg=gid)


# --- every gate kernel on empty input, one event, and one all-NaN event ---------------------------


@pytest.mark.parametrize(
    ("label", "x", "inside"),
    [
        ("empty", np.zeros((0, 2)), []),
        ("one", np.array([[0.5, 0.5]]), [True]),
        ("one-f32-readonly", np.array([[0.5, 0.5]], dtype=np.float32), [True]),
        ("nan", np.array([[np.nan, np.nan]]), [False]),
    ],
)
def test_every_gate_kernel_empty_one_and_nan(label, x, inside):
    if label.endswith("readonly"):
        x.flags.writeable = False
    before = x.copy()
    square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    got = {
        "rectangle": rectangle_membership(x, [0.0, 0.0], [1.0, 1.0]),
        "polygon": polygon_membership(x, square),
        "ellipsoid": ellipsoid_membership(x, [0.5, 0.5], np.eye(2), 1.0),
        "quadrant": quadrant_membership(x, [[0.0], [1.0]], [[1, 0]])[0],
    }
    for name, m in got.items():
        assert m.dtype == np.bool_ and m.tolist() == inside, name
    ops = np.vstack([got["rectangle"], got["polygon"]])
    assert boolean_membership("and", ops).tolist() == inside
    assert boolean_membership("not", ops[:1]).tolist() == [not v for v in inside]
    np.testing.assert_array_equal(x, before)
