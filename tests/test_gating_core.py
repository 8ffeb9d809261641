"""The gating core: value objects, the strategy tree, compilation and GatingResult.

Memberships are checked against a slow reference written with numpy on the
dimension values (`naive_gates`), on a simulated sample with a real spillover
matrix, so compensation and logicle are exercised as well.
"""

from __future__ import annotations

from dataclasses import replace

import naive_gates as naive
import numpy as np
import pytest

from cytokit import Channel, Sample, Spillover
from cytokit import gating as G
from cytokit import kernels as K
from cytokit.errors import GatingError
from cytokit.simulate import sample_study_design, simulate_sample

L = G.LogicleTransform()


def fl(channel: str) -> G.Dimension:
    return G.Dimension(channel, compensation=G.FCS, transform=L)


FSC, SSC, FSCH = G.Dimension("FSC-A"), G.Dimension("SSC-A"), G.Dimension("FSC-H")


@pytest.fixture(scope="module")
def sample() -> Sample:
    design = sample_study_design()
    spec, day = design.samples()[2]
    s, _ = simulate_sample(design, spec, day)
    return s


def donor_tree() -> list[G.Gate]:
    cd3 = G.Divider("cd3", fl("APC-A"), (0.45,))
    cd56 = G.Divider("cd56", fl("PE-A"), (0.45,))
    quads = tuple(
        G.Quadrant(f"CD3{a}CD56{b}", (("cd3", i), ("cd56", j)))
        for a, i in (("+", 1.0), ("-", 0.0))
        for b, j in (("+", 1.0), ("-", 0.0))
    )
    return [
        G.BooleanGate(id="donorNK", op="and", operands=("CD3-CD56+", "HLA"), parent="Singlets"),
        G.RectangleGate(id="Lymphocytes", dims=(FSC, SSC), min=(30000, None), max=(120000, 60000)),
        G.PolygonGate(
            id="Singlets",
            parent="Lymphocytes",
            dims=(FSC, FSCH),
            vertices=((0, 0), (262144, 0), (262144, 235000), (0, 1)),
        ),
        G.QuadrantGate(id="Q", parent="Singlets", dividers=(cd3, cd56), quadrants=quads),
        G.RectangleGate(
            id="HLA",
            name="HLA-A2+",
            parent="Singlets",
            dims=(fl("FITC-A"),),
            min=(0.5,),
            max=(None,),
        ),
        G.EllipsoidGate(
            id="E",
            parent="Lymphocytes",
            dims=(fl("APC-A"), fl("PE-A")),
            mean=(0.6, 0.3),
            covariance=((0.01, 0.002), (0.002, 0.02)),
            distance_square=2.0,
        ),
        G.BooleanGate(id="notE", op="not", operands=("E",), complement=(False,)),
        G.BooleanGate(
            id="either", op="or", operands=("CD3+CD56+", "HLA"), complement=(False, True)
        ),
    ]


def reference(sample: Sample, strategy: G.GatingStrategy) -> dict[str, np.ndarray]:
    """Membership of every population, gate by gate with numpy (slow and obvious)."""
    res = strategy.resolver(sample)
    out: dict[str, np.ndarray] = {}
    everything = np.ones(sample.n_events, dtype=bool)
    for g in strategy.gates:
        parent = everything if g.parent is None else out[g.parent]
        if isinstance(g, G.BooleanGate):
            ops = np.array([out[o] for o in g.operands])
            own = naive.boolean(g.op, ops, np.array(g.complement))
            out[g.id] = own & parent
            continue
        from cytokit.gating.compile import dimension_values

        x = dimension_values(sample.events, res, g.dimensions)
        if isinstance(g, G.RectangleGate):
            own = naive.rectangle(x, g.min, g.max)
        elif isinstance(g, G.PolygonGate):
            own = naive.polygon(x, g.vertices)
        elif isinstance(g, G.EllipsoidGate):
            own = naive.ellipsoid(x, g.mean, g.covariance, g.distance_square)
        elif isinstance(g, G.QuadrantGate):
            rows = naive.quadrants(x, [d.values for d in g.dividers], g.intervals())
            for q, row in zip(g.quadrants, rows, strict=True):
                out[q.id] = row & parent
            continue
        out[g.id] = own & parent
    return out


def test_apply_matches_reference(sample):
    strategy = G.GatingStrategy(donor_tree())
    result = strategy.apply(sample)
    want = reference(sample, strategy)
    assert set(want) == {p.id for p in strategy.populations}
    for p in strategy.populations:
        np.testing.assert_array_equal(result.membership(p.id), want[p.id], err_msg=p.path)
        assert result.count(p.path) == want[p.id].sum()
    assert result.count("donorNK") > 0


def test_paths_counts_and_lookups(sample):
    strategy = G.GatingStrategy(donor_tree())
    # parents come before children whatever the input order
    order = [g.id for g in strategy.gates]
    assert order.index("Lymphocytes") < order.index("Singlets") < order.index("donorNK")
    assert "/Lymphocytes/Singlets/CD3-CD56+" in strategy.paths
    assert "/Lymphocytes/Singlets/HLA-A2+" in strategy.paths
    assert strategy.population("Lymphocytes/Singlets").id == "Singlets"
    result = strategy.apply(sample)
    counts = result.counts
    assert list(counts.columns) == list(G.result.COUNT_COLUMNS)
    row = counts.set_index("gate_id").loc["Singlets"]
    assert row.parent_count == result.count("Lymphocytes")
    assert row.pct_parent == pytest.approx(100 * row["count"] / row.parent_count)
    assert row.pct_total == pytest.approx(100 * row["count"] / sample.n_events)
    assert counts.set_index("gate_id").loc["notE"].parent_count == sample.n_events
    with pytest.raises(GatingError, match="no population 'nope'"):
        result.membership("nope")
    # an id that is itself path-like (FlowKit's quadrant ids) names it without its "/" too
    tree = [replace(g, id="/Q/" + g.id) if g.id == "Lymphocytes" else g for g in donor_tree()]
    tree = [replace(g, parent="/Q/Lymphocytes") if g.parent == "Lymphocytes" else g for g in tree]
    odd = G.GatingStrategy(tree)
    assert odd.population("Q/Lymphocytes").id == odd.population("/Q/Lymphocytes").id


def test_compensation_choices(sample):
    strategy = G.GatingStrategy(donor_tree())
    with_file = strategy.apply(sample)
    none = strategy.apply(sample, compensation=None)
    assert with_file.count("HLA") != none.count("HLA")
    same = strategy.apply(sample, compensation=sample.spillover)
    np.testing.assert_array_equal(same.counts_array, with_file.counts_array)
    # a sample without spillover: FCS dimensions stay uncompensated (Gating-ML)
    bare = replace(sample, spillover=None)
    np.testing.assert_array_equal(strategy.apply(bare).counts_array, none.counts_array)
    with pytest.raises(GatingError, match="compensation='bogus'"):
        strategy.apply(sample, compensation="bogus")


def test_named_matrix_and_fluorochromes(sample):
    spill = sample.spillover
    fluor = tuple(f"dye{i}" for i in range(len(spill.channels)))
    m = G.SpectrumMatrix("M", fluor, spill.channels, spill.matrix)
    j = spill.channels.index("APC-A")
    named = G.RectangleGate(
        id="r",
        dims=(G.Dimension(fluor[j], compensation="M", transform=L),),
        min=(0.5,),
        max=(None,),
    )
    file_ = G.RectangleGate(id="r", dims=(fl("APC-A"),), min=(0.5,), max=(None,))
    a = G.GatingStrategy([named], matrices={"M": m}).apply(sample)
    b = G.GatingStrategy([file_]).apply(sample)
    np.testing.assert_array_equal(a.membership("r"), b.membership("r"))


def test_plan_is_cached_per_panel(sample):
    strategy = G.GatingStrategy(donor_tree())
    p1, _ = strategy.compile(sample)
    p2, _ = strategy.compile(sample)
    assert p1 is p2
    p3, _ = strategy.compile(sample, compensation=None)
    assert p3 is not p1


class MedianSplit(G.AdaptiveGate):
    """Test adaptive gate: events above the parent's median on the first dimension."""

    def fit(self, values, rng):
        return G.RectangleGate(
            id=self.id, dims=self.dims, min=(float(np.nanmedian(values[:, 0])),), max=(None,)
        )


def test_adaptive_gates_fit_on_their_parent(sample):
    gates = [g for g in donor_tree() if g.id in ("Lymphocytes", "Singlets")]
    gates.append(MedianSplit(id="hi", parent="Singlets", dims=(fl("APC-A"),)))
    gates.append(MedianSplit(id="hihi", parent="hi", dims=(fl("APC-A"),)))
    strategy = G.GatingStrategy(gates)
    assert strategy.is_adaptive
    result = strategy.apply(sample)
    assert not result.strategy.is_adaptive
    singlets = result.count("Singlets")
    # half of the parent (ties aside), then half of that
    assert abs(result.count("hi") - singlets / 2) <= 1
    assert abs(result.count("hihi") - result.count("hi") / 2) <= 1
    v = result.values([fl("APC-A")], "Singlets")[:, 0]
    assert result.strategy.gate("hi").min[0] == pytest.approx(np.median(v))
    with pytest.raises(GatingError, match="adaptive"):
        G.GatingStrategy(gates).compile(sample)


@pytest.mark.parametrize(
    "gates, match",
    [
        (
            [
                G.RectangleGate(id="a", dims=(FSC,), min=(1,), max=(2,)),
                G.RectangleGate(id="a", dims=(FSC,), min=(1,), max=(2,)),
            ],
            "used twice",
        ),
        ([G.RectangleGate(id="a", parent="zz", dims=(FSC,), min=(1,), max=(2,))], "'zz'"),
        (
            [
                G.RectangleGate(id="a", parent="b", dims=(FSC,), min=(1,), max=(2,)),
                G.RectangleGate(id="b", parent="a", dims=(FSC,), min=(1,), max=(2,)),
            ],
            "cycle",
        ),
        (
            [
                G.RectangleGate(id="a", name="x", dims=(FSC,), min=(1,), max=(2,)),
                G.RectangleGate(id="b", name="x", dims=(FSC,), min=(1,), max=(2,)),
            ],
            "same path",
        ),
        (
            [
                G.RectangleGate(
                    id="a", dims=(G.Dimension("FL1", compensation="S"),), min=(1,), max=(2,)
                )
            ],
            "compensation 'S'",
        ),
    ],
)
def test_strategy_errors(gates, match):
    with pytest.raises(GatingError, match=match):
        G.GatingStrategy(gates)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: G.RectangleGate(id="a", dims=(FSC,), min=(None,), max=(None,)), "every side"),
        (lambda: G.RectangleGate(id="a", dims=(FSC,), min=(3,), max=(2,)), "min=3.0 > max=2.0"),
        (lambda: G.RectangleGate(id="a", dims=(FSC, SSC), min=(1,), max=(2,)), "one of each"),
        (lambda: G.PolygonGate(id="p", dims=(FSC, SSC), vertices=((0, 0), (1, 1))), "n >= 3"),
        (lambda: G.PolygonGate(id="p", dims=(FSC,), vertices=((0, 0),) * 3), "exactly 2"),
        (
            lambda: G.EllipsoidGate(
                id="e", dims=(FSC, SSC), mean=(0, 0), covariance=((1, 1), (1, 1)), distance_square=1
            ),
            "singular",
        ),
        (lambda: G.BooleanGate(id="b", op="xor", operands=("a",)), "op 'xor'"),
        (lambda: G.BooleanGate(id="b", op="not", operands=("a", "c")), "one operand"),
        (lambda: G.Divider("d", FSC, (2.0, 1.0)), "strictly increasing"),
        (lambda: G.LogicleTransform(W=3.0), "logicle transform"),
        (lambda: G.Dimension(""), "channel name"),
        (lambda: G.transform_from_config({"type": "cubic"}), "unknown transform type 'cubic'"),
        (lambda: G.transform_from_config({"type": "logicle", "Q": 1}), "no parameter"),
    ],
)
def test_value_object_errors(make, match):
    with pytest.raises(GatingError, match=match):
        make()


def test_unknown_channel_lists_the_sample_channels(sample):
    strategy = G.GatingStrategy(
        [G.RectangleGate(id="a", dims=(G.Dimension("CD99"),), min=(1,), max=(2,))]
    )
    with pytest.raises(GatingError, match=r"reads channel 'CD99'.*FSC-A"):
        strategy.apply(sample)


def test_stored_values_are_refused_where_scaling_changes_a_gated_channel():
    """Gates are on scale values: a sample read with scale=False whose gated channel has
    log amplification ($PnE) gave other counts without a word; a linear channel at gain 1
    stores its scale values, and is gated."""
    rng = np.random.default_rng(1)
    events = rng.uniform(0, 1023, size=(400, 2)).astype(np.float32)
    log = Channel(0, "FL1-H", "CD3", range=1024, log_decades=4.0, log_offset=1.0)
    lin = Channel(1, "FSC-H", range=1024)
    stored = Sample(events, (log, lin), scaled=False)
    on_log = G.GatingStrategy(
        [G.RectangleGate(id="a", dims=(G.Dimension("FL1-H"),), min=(10,), max=(None,))]
    )
    with pytest.raises(GatingError, match=r"holds stored values .* scaling changes FL1-H"):
        on_log.apply(stored)
    on_lin = G.GatingStrategy(
        [G.RectangleGate(id="b", dims=(G.Dimension("FSC-H"),), min=(500,), max=(None,))]
    )
    assert on_lin.apply(stored).count("b") == int((events[:, 1] >= 500).sum())


def test_marker_names_resolve_through_pns():
    rng = np.random.default_rng(0)
    events = rng.normal(100, 30, size=(500, 2)).astype(np.float32)
    s = Sample(events, (Channel(0, "FL1-A", "CD3"), Channel(1, "FL2-A", "CD56")))
    by_marker = G.GatingStrategy(
        [G.RectangleGate(id="a", dims=(G.Dimension("CD3"),), min=(100,), max=(None,))]
    )
    assert by_marker.apply(s).count("a") == int((events[:, 0] >= 100).sum())


def test_transform_config_and_inverse():
    t = G.transform_from_config({"type": "logicle", "T": 262144, "W": 0.5, "M": 4.5, "A": 0})
    assert t == L
    assert G.transform_from_config({"type": "none"}) is None
    x = np.array([-100.0, 0.0, 10.0, 1e3, 1e5])
    np.testing.assert_allclose(t.inverse(t.apply(x)), x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(t.apply(x), K.logicle(x, 262144, 0.5, 4.5, 0.0))


def test_empty_sample_and_digest(sample):
    strategy = G.GatingStrategy(donor_tree())
    empty = replace(sample, events=sample.events[:0])
    r = strategy.apply(empty)
    assert r.counts["count"].sum() == 0
    assert r.counts["pct_total"].isna().all()
    assert strategy.digest() == G.GatingStrategy(list(reversed(donor_tree()))).digest()
    other = G.GatingStrategy(donor_tree()[1:3])
    assert other.digest() != strategy.digest()


def test_spillover_channel_missing_is_reported(sample):
    spill = Spillover(("FITC-A", "NOPE-A"), np.eye(2))
    strategy = G.GatingStrategy(
        [G.RectangleGate(id="h", dims=(fl("FITC-A"),), min=(0.5,), max=(None,))]
    )
    with pytest.raises(GatingError, match="detector 'NOPE-A'"):
        strategy.apply(sample, compensation=spill)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_dimension_values_gather_is_the_expression_it_replaces(dtype):
    """The compensated block adaptive fits see is ``events[rows][:, cols]`` as float64,
    values and memory layout alike, so its product with the inverse matrix is the same
    BLAS call (the fitted gates' last bits depend on it)."""
    from cytokit.gating.compile import _gather

    rng = np.random.default_rng(5)
    base = (np.abs(rng.normal(size=(60, 9))) * 1000).astype(dtype)
    for events in (base, np.asfortranarray(base), base[:, ::-1]):
        for n in (0, 1, 2, 17, 60):
            rows = np.sort(rng.choice(60, n, replace=False))
            for cols in ([4], [4, 1], [0, 2, 3, 5, 8]):
                cols = np.array(cols)
                inv = rng.normal(size=(cols.size, cols.size))
                for r, m in ((rows, n), (slice(None), 60)):
                    want = np.asarray(events[r][:, cols], dtype=np.float64)
                    got = _gather(events, r, m, cols)
                    assert got.dtype == np.float64 and got.strides == want.strides
                    np.testing.assert_array_equal(got, want)
                    assert (got @ inv).tobytes() == (want @ inv).tobytes()
