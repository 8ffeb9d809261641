"""Per-population statistics: exact against numpy, every layout and membership form, FlowKit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import naive_gates
import naive_stats as naive
import numba
import numpy as np
import pytest
from test_kernels_fused import layouts, random_events, random_plan

from cytokit import kernels as K
from cytokit.kernels import _statpass
from cytokit.kernels.fused import BLOCK
from cytokit.kernels.plan import PlanBuilder

LEVELS = [0.0, 0.01, 0.25, 0.5, 0.9, 1.0]
EXACT = ("count", "median", "quantiles", "rcv", "positive", "fraction_positive")
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
COMP_FCS = CORPUS / "flowkit" / "data" / "test_comp_example.fcs"
COMP_CSV = CORPUS / "flowkit" / "data" / "comp_complete_example.csv"


def thresholds_for(plan, seed):
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, 10.0, plan.n_dims)
    t[::3] = np.nan  # no threshold for some dimensions
    return t


def masks_for(gates, full, n):
    return np.array([np.ones(n, bool) if g < 0 else full[g] for g in gates]).reshape(len(gates), n)


def assert_matches(st, values, masks, thresholds, levels, label=""):
    """``st`` against the numpy reference on the same member values (those of `dimension_values`)."""
    want = naive.population_stats(values, masks, thresholds, levels)
    np.testing.assert_array_equal(st.events, want["events"], err_msg=f"{label}: events")
    for k in EXACT:
        np.testing.assert_array_equal(getattr(st, k), want[k], err_msg=f"{label}: {k}")
    # mean: summation order differs (blocks vs numpy's pairwise sum)
    for g in range(masks.shape[0]):
        for d in range(values.shape[0]):
            v = naive.member_values(values[d], masks[g])
            scale = float(np.mean(np.abs(v[np.isfinite(v)]))) if np.isfinite(v).any() else 0.0
            for k, tol in (("mean", 1e-12), ("sd", 1e-9)):
                got, ref = getattr(st, k)[g, d], want[k][g, d]
                if np.isfinite(ref):
                    assert abs(got - ref) <= tol * max(scale, abs(ref)), (label, k, g, d, got, ref)
                else:
                    np.testing.assert_array_equal(got, ref, err_msg=f"{label}: {k} [{g}, {d}]")


# --- equivalence with numpy on the kernel's own values ---------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 100, BLOCK + 1, 3 * BLOCK + 5])
def test_every_layout_and_membership_form(n):
    plan = random_plan(1)
    x = random_events(n, n)
    gates = [-1, *range(plan.n_gates), 3]
    dims = [*range(plan.n_dims), 0]
    thr = thresholds_for(plan, n)[dims]
    for label, xv in layouts(x):
        before = xv.copy()
        _, full = K.evaluate_plan(xv, plan)
        _, packed = K.evaluate_plan(xv, plan, packed=True)
        values = K.dimension_values(xv, plan, dims)
        masks = masks_for(gates, full, n)
        forms = {"bool": full, "packed": packed, "none": None}
        if label == "f64-readonly":
            for m in (full, packed):
                m.flags.writeable = False
        for form, mem in forms.items():
            mem_before = None if mem is None else mem.copy()
            st = K.population_stats(xv, plan, mem, gates, dims, thresholds=thr, quantiles=LEVELS)
            assert_matches(st, values, masks, thr, LEVELS, f"{label}/{form}/n={n}")
            np.testing.assert_array_equal(xv, before, err_msg=f"{label}: events modified")
            if mem is not None:
                np.testing.assert_array_equal(
                    mem, mem_before, err_msg=f"{label}: membership modified"
                )
            assert st.count.shape == (len(gates), len(dims)) and st.count.dtype == np.int64
            assert st.quantiles.shape == (len(gates), len(dims), len(LEVELS))


def test_dimension_values_match_reference():
    plan = random_plan(2)
    x = random_events(2, 2 * BLOCK + 9)
    want = naive_gates.dimension_values(x, plan)
    for label, xv in layouts(x):
        got = K.dimension_values(xv, plan, range(plan.n_dims))
        ref = want if xv.dtype == np.float64 else naive_gates.dimension_values(xv, plan)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=label)
    out = np.empty((2, x.shape[0]))
    assert K.dimension_values(x, plan, [3, 1], out=out) is out
    np.testing.assert_array_equal(out, K.dimension_values(x, plan, range(plan.n_dims))[[3, 1]])


@pytest.mark.parametrize("seed", [3, 4])
def test_membership_subset_rows(seed):
    plan = random_plan(seed)
    x = random_events(seed, 4000)
    rows = [5, 2, plan.n_gates - 1]
    _, sub = K.evaluate_plan(x, plan, membership=rows, packed=True)
    st = K.population_stats(
        x, plan, sub, [2, -1, 5], [1, 2], membership_gates=rows, quantiles=[0.3]
    )
    ref = K.population_stats(x, plan, None, [2, -1, 5], [1, 2], quantiles=[0.3])
    for k in (*EXACT, "mean", "sd", "events"):
        np.testing.assert_array_equal(getattr(st, k), getattr(ref, k), err_msg=k)


# --- the selection machinery: refinement, ties, extreme values, threads ----------------------------


def one_dim_plan(transform=K.XF_NONE, params=None):
    b = PlanBuilder()
    d = b.dimension(0, transform=transform, params=params)
    b.rectangle([d], [None], [None], name="all")  # every non-NaN event
    return b.build(), d


EXTREMES = np.array(
    [
        *(0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e-300, -1e-300, 1e300, -1e300),
        *(2.0**-64, 2.0**64, -(2.0**64), np.nextafter(2.0**-64, 0.0), 1.0, -1.0, np.nan),
        *(3.5, 3.5, 3.5),
    ]
)


@pytest.mark.parametrize("max_collect", [0, 7, 1 << 22])
@pytest.mark.parametrize(
    "kind", ["normal", "ties", "extremes", "narrow", "all-equal", "all-nan", "signed-zeros"]
)
def test_order_statistics_exact(kind, max_collect):
    rng = np.random.default_rng(7)
    n = 3 * BLOCK + 11
    v = {
        "normal": lambda: rng.normal(0.5, 0.05, n),
        "ties": lambda: rng.integers(-3, 40, n).astype(np.float64),
        "extremes": lambda: rng.choice(EXTREMES, n) * rng.choice([1.0, 3.0], n),
        "narrow": lambda: 1e6 + rng.integers(0, 5, n) * np.spacing(1e6),  # a few adjacent floats
        "all-equal": lambda: np.full(n, -2.25),
        "all-nan": lambda: np.full(n, np.nan),
        "signed-zeros": lambda: rng.choice([0.0, -0.0], n),
    }[kind]()
    plan, d = one_dim_plan()
    x = v[:, None]
    _, mem = K.evaluate_plan(x, plan)
    st = K.population_stats(
        x, plan, None, [-1, 0], [d], quantiles=LEVELS, max_collect=max_collect, thresholds=[0.0]
    )
    masks = np.vstack([np.ones(n, bool), mem[0]])
    assert_matches(st, v[None, :], masks, [0.0], LEVELS, f"{kind}/max_collect={max_collect}")
    if max_collect == 0 and kind in ("normal", "extremes"):
        assert st.passes > 2  # refined, not collected


def test_full_resolution_level1_on_2m_events():
    # from 2**21 events on, the level-1 histogram has all 65,536 bins
    rng = np.random.default_rng(11)
    n = (1 << 21) + 5
    v = np.where(rng.random(n) < 0.3, rng.normal(-50, 20, n), rng.lognormal(6, 1.2, n))
    plan, d = one_dim_plan()
    st = K.population_stats(v[:, None], plan, None, [-1], [d], quantiles=[0.001, 0.999])
    assert st.median[0, 0] == np.median(v) and st.passes == 2
    np.testing.assert_array_equal(st.quantiles[0, 0], np.quantile(v, [0.001, 0.999]))


def test_refined_and_collected_agree_with_many_populations():
    plan = random_plan(5)
    x = random_events(5, 6 * BLOCK)
    gates, dims = list(range(plan.n_gates)), list(range(plan.n_dims))
    a = K.population_stats(x, plan, None, gates, dims, quantiles=LEVELS)
    b = K.population_stats(x, plan, None, gates, dims, quantiles=LEVELS, max_collect=50)
    assert a.passes == 2 and b.passes > 2
    for k in (*EXACT, "mean", "sd"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


def test_result_independent_of_thread_count():
    plan = random_plan(6)
    x = random_events(6, 9 * BLOCK + 3)
    args = (x, plan, None, [-1, *range(plan.n_gates)], range(plan.n_dims))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = K.population_stats(*args, quantiles=LEVELS)
    finally:
        numba.set_num_threads(before)
    many = K.population_stats(*args, quantiles=LEVELS)
    for k in (*EXACT, "mean", "sd", "events"):
        np.testing.assert_array_equal(getattr(one, k), getattr(many, k), err_msg=k)


def test_level1_bins_are_ordered_and_cover_their_keys():
    rng = np.random.default_rng(0)
    v = np.sort(
        np.concatenate(
            [
                EXTREMES[~np.isnan(EXTREMES)],
                rng.standard_cauchy(5000) * 10.0 ** rng.integers(-30, 30, 5000),
                rng.standard_normal(5000) * 2.0 ** rng.integers(-1074, 1023, 5000),
            ]
        )
    )
    keys = np.array([_statpass._key(a) for a in v])
    assert np.all(np.diff(keys) >= 0)
    digits = np.array([_statpass._digit1(int(k)) for k in keys])
    assert np.all(np.diff(digits) >= 0) and digits.min() >= 0 and digits.max() < _statpass.NBINS1
    for k, d in zip(keys.tolist(), digits.tolist(), strict=True):
        lo, hi = _statpass._bin1_range(d)
        assert lo <= k <= hi and _statpass._digit1_py(k) == d
        assert _statpass._key_to_float(k) == v[np.searchsorted(keys, k)]


# --- semantics: thresholds, empty populations, NaN -------------------------------------------------


def test_positive_equals_a_rectangle_gate_count():
    plan0 = random_plan(8)
    x = random_events(8, 5000)
    b = PlanBuilder()
    d_fsc = b.dimension(0)
    d_cd3 = b.dimension(2, transform=K.XF_LOGICLE, params=dict(T=1000.0, W=0.5, M=4.5, A=0.0))
    parent = b.rectangle([d_fsc], [-15.0], [25.0], name="parent")
    child = b.rectangle([d_cd3], [0.3], [None], parent=parent, name="CD3+")
    plan = b.build()
    counts, mem = K.evaluate_plan(x, plan)
    st = K.population_stats(x, plan, mem, [parent], [d_cd3, d_fsc], thresholds=[0.3, np.nan])
    assert st.positive[0, 0] == counts[child] > 0
    assert st.fraction_positive[0, 0] == counts[child] / st.count[0, 0]
    assert st.positive[0, 1] == 0 and np.isnan(st.fraction_positive[0, 1])
    assert plan0.n_gates  # the random tree builds too


def test_empty_population_and_no_gates_or_dims():
    plan = random_plan(1)
    x = random_events(1, 300)
    b = PlanBuilder()
    d = b.dimension(0)
    b.rectangle([d], [1e9], [None], name="nobody")
    empty_plan = b.build()
    st = K.population_stats(x, empty_plan, None, [0], [d], quantiles=[0.5], thresholds=[0.0])
    assert st.events.tolist() == [0] and st.count.tolist() == [[0]]
    for k in ("mean", "sd", "median", "rcv", "quantiles", "fraction_positive"):
        assert np.isnan(getattr(st, k)).all(), k
    assert st.positive.tolist() == [[0]]
    none = K.population_stats(x, plan, None, [], [0, 1])
    assert none.count.shape == (0, 2) and none.events.shape == (0,) and none.passes == 0
    nodims = K.population_stats(x, plan, None, [-1, 2], [])
    assert nodims.count.shape == (2, 0)
    assert nodims.events.tolist() == [300, int(K.evaluate_plan(x, plan)[0][2])]


def test_one_event_and_nan_inf_semantics():
    plan, d = one_dim_plan()
    for v, want in (
        (2.5, dict(count=1, median=2.5, mean=2.5)),
        (np.inf, dict(count=1, median=np.inf, mean=np.inf)),
        (np.nan, dict(count=0, median=np.nan, mean=np.nan)),
    ):
        st = K.population_stats(np.array([[v]]), plan, None, [-1], [d], quantiles=[0.2])
        assert st.events.tolist() == [1]
        for k, w in want.items():
            np.testing.assert_array_equal(getattr(st, k)[0, 0], w, err_msg=f"{v}: {k}")
        assert np.isnan(st.sd[0, 0])  # ddof=1 needs two values
    # +inf and -inf together: mean NaN, SD NaN, median finite
    x = np.array([[np.inf], [-np.inf], [1.0], [np.nan]])
    st = K.population_stats(x, plan, None, [-1], [d])
    assert st.count[0, 0] == 3 and st.median[0, 0] == 1.0
    assert np.isnan(st.mean[0, 0]) and np.isnan(st.sd[0, 0])


def test_errors():
    plan = random_plan(1)
    x = random_events(1, 100)
    _, mem = K.evaluate_plan(x, plan, membership=[0, 1])
    with pytest.raises(ValueError, match="has no row in membership"):
        K.population_stats(x, plan, mem, [3], [0], membership_gates=[0, 1])
    with pytest.raises(ValueError, match=f"expected \\({plan.n_gates}, …\\)"):
        K.population_stats(x, plan, mem, [0], [0])  # rows are not plan.output
    with pytest.raises(ValueError, match="columns but 100 events"):
        K.population_stats(x, plan, mem[:, :50], [0], [0], membership_gates=[0, 1])
    with pytest.raises(TypeError, match="expected bool or uint64"):
        K.population_stats(x, plan, mem.astype(np.int8), [0], [0], membership_gates=[0, 1])
    with pytest.raises(ValueError, match="gates \\[99\\] outside"):
        K.population_stats(x, plan, None, [99], [0])
    with pytest.raises(ValueError, match="dims \\[-1\\] outside"):
        K.population_stats(x, plan, None, [0], [-1])
    with pytest.raises(ValueError, match="thresholds has 1 values for 2 dims"):
        K.population_stats(x, plan, None, [0], [0, 1], thresholds=[1.0])
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        K.population_stats(x, plan, None, [0], [0], quantiles=[50])
    with pytest.raises(ValueError, match="events have 3 columns"):
        K.population_stats(x[:, :3], plan, None, [0], [0])
    with pytest.raises(TypeError, match="out must be a numpy array of float64, got dtype float32"):
        K.dimension_values(x, plan, [0], out=np.empty((1, 100), dtype=np.float32))


# --- against FlowKit on a corpus file --------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.filterwarnings("ignore:FCS file test_comp_example.fcs reported incorrect data offset")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_against_flowkit_gated_compensated_and_logicle():
    fk = pytest.importorskip("flowkit")
    if not (COMP_FCS.exists() and COMP_CSV.exists()):
        pytest.skip(f"FlowKit compensation example not found at {COMP_FCS.parent}")
    logicle = dict(T=262144.0, W=0.5, M=4.5, A=0.0)
    sample = fk.Sample(str(COMP_FCS), ignore_offset_error=True)
    raw = sample.get_events(source="raw")
    sample.apply_compensation(str(COMP_CSV))
    matrix = sample.compensation  # spillover of the 14 detectors
    sample.apply_transform(fk.transforms.LogicleTransform(*logicle.values()))
    comp, xform = sample.get_events(source="comp"), sample.get_events(source="xform")
    names = sample.pnn_labels
    col = {c: i for i, c in enumerate(names)}

    # FlowKit's gating: scatter polygon -> a compensated, logicle-scaled range gate
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", matrix)
    gs.add_transform("lg", fk.transforms.LogicleTransform(*logicle.values()))
    verts = [(20000, 5000), (150000, 5000), (200000, 120000), (40000, 150000)]
    gs.add_gate(
        fk.gates.PolygonGate("cells", [fk.Dimension("FSC-A"), fk.Dimension("SSC-A")], verts),
        ("root",),
    )
    dim = fk.Dimension("PE-A", "spill", "lg", range_min=0.35)
    gs.add_gate(fk.gates.RectangleGate("PE+", [dim]), ("root", "cells"))
    res = gs.gate_sample(sample)
    fk_cells = res.get_gate_membership("cells")
    fk_pe = res.get_gate_membership("PE+")

    b = PlanBuilder()
    c = b.compensation(K.compensation_matrix(matrix.matrix), [col[d] for d in matrix.detectors])
    cells = b.polygon([b.dimension(col["FSC-A"]), b.dimension(col["SSC-A"])], verts)
    markers = ["PE-A", "Ax488-A", "PerCP-Cy55-A", "Ax647-A"]
    lg = [
        b.dimension(col[m], compensation=c, transform=K.XF_LOGICLE, params=logicle) for m in markers
    ]
    scale = [b.dimension(col[m], compensation=c) for m in markers]
    pe = b.rectangle([lg[0]], [0.35], [None], parent=cells)
    plan = b.build()
    counts, mem = K.evaluate_plan(raw, plan, packed=True)
    full = K.unpack_membership(mem, raw.shape[0])
    np.testing.assert_array_equal(full[cells], fk_cells)
    np.testing.assert_array_equal(full[pe], fk_pe)
    assert 0 < counts[pe] < counts[cells] < raw.shape[0]

    st = K.population_stats(
        raw, plan, mem, [-1, cells, pe], lg + scale, quantiles=[0.05, 0.95], thresholds=None
    )
    masks = [np.ones(raw.shape[0], bool), fk_cells, fk_pe]
    for g, m in enumerate(masks):
        assert st.events[g] == m.sum()
        for j, mk in enumerate(markers):
            for d, ref in ((j, xform[m, col[mk]]), (len(markers) + j, comp[m, col[mk]])):
                # FlowKit's values differ from cytokit's by float rounding (1e-13 on the
                # logicle scale, 1e-9 relative in compensation); order statistics move
                # by no more than the values do.
                tol = dict(rtol=1e-9, atol=1e-9)
                np.testing.assert_allclose(st.median[g, d], np.median(ref), **tol)
                np.testing.assert_allclose(
                    st.quantiles[g, d], np.quantile(ref, [0.05, 0.95]), **tol
                )
                np.testing.assert_allclose(st.mean[g, d], np.mean(ref), **tol)
                np.testing.assert_allclose(st.sd[g, d], np.std(ref, ddof=1), rtol=1e-8)
                assert st.count[g, d] == ref.shape[0]


# --- compilation: nothing at import, the cache in a second process ---------------------------------

_STATS_CALL = textwrap.dedent(
    """
    import numpy as np
    import cytokit.kernels as K
    from cytokit.kernels import _statpass
    b = K.PlanBuilder()
    d = b.dimension(0, transform=K.XF_LOGICLE, params=dict(T=1000.0, W=0.5, M=4.5, A=0.0))
    b.rectangle([d], [0.5], [None])
    plan = b.build()
    x = np.array([[1.0, 0.0], [500.0, 0.0], [700.0, 0.0]])
    assert not _statpass._pass.signatures  # nothing compiled by the imports
    st = K.population_stats(x, plan, None, [-1, 0], [d])
    s = _statpass._pass.stats
    print(sum(s.cache_hits.values()), sum(s.cache_misses.values()), st.count.tolist())
    """
)


@pytest.mark.slow
def test_stats_kernel_loads_from_cache_in_a_second_process(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = []
    for _ in range(2):
        res = subprocess.run(
            [sys.executable, "-c", _STATS_CALL],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert res.returncode == 0, res.stderr
        runs.append(res.stdout.strip().split(maxsplit=2))
    assert runs[0][:2] == ["0", "1"], runs  # cold: compiled, written to the cache
    assert runs[1][:2] == ["1", "0"], runs  # second process: loaded, not compiled
    assert runs[0][2] == runs[1][2] == "[[3], [2]]"
