"""Gating-ML 2.0 import and export.

* The ISAC compliance suite: every truth file (exact per-event membership) from
  its single-gate document and from ``gml_all_gates.xml`` (plus FlowKit's
  Ellipsoid3D and ParQuadRect documents), on data1.fcs read by `read_fcs` and
  on FlowIO's preprocessed truth array.
* Export → import gives an equal strategy and identical membership, for every
  compliance document and for a strategy using every construct; FlowKit reads
  cytokit's export and gates the same events.
* Malformed documents fail with the file, line and element named; DTDs,
  entities and external references are refused without fetching anything.
* FlowJo's own Gating-ML export (no compensation-ref, ``Comp-`` channels) loads
  and matches FlowJo's counts where its gates are those of the workspace.
"""

from __future__ import annotations

import csv
import math
import re
import socket
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import naive_gates as naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cytokit
from cytokit import Channel, Sample, Spillover
from cytokit import gating as G
from cytokit.errors import GatingError
from cytokit.gating.gatingml import gatingml_bytes, read_gatingml, write_gatingml

CORPUS = naive.CORPUS
GML = naive.GATE_REF / "gml"
CASES_CSV = CORPUS / "derived" / "gatingml_compliance_cases.csv"
FLOWSOM = CORPUS / "github" / "SofieVG_FlowSOM" / "inst" / "extdata"

NS = (
    'xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
    'xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations" '
    'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"'
)


def _cases() -> list[tuple[str, str, str, bool]]:
    """(truth id, gate or quadrant id, single-gate document, in gml_all_gates.xml)."""
    if not CASES_CSV.exists():
        return []
    out = []
    with CASES_CSV.open(newline="") as fh:
        for row in csv.DictReader(fh):
            truth = row["truth_file"][len("truth/Results_") : -len(".txt")]
            gid = row["gate_or_quadrant_id"].split("::")[-1]
            out.append((truth, gid, row["individual_xml"], row["in_gml_all_gates_xml"] != "no"))
    return out


CASES = _cases()
DOCUMENTS = sorted(p.name for p in GML.glob("gml_*.xml")) if GML.exists() else []
VALID_DOCUMENTS = [d for d in DOCUMENTS if d != "gml_range_gate_attr_testing.xml"]


def need_corpus(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"corpus not found at {path}")
    return path


@pytest.fixture(scope="module", params=["read_fcs", "flowio_truth"])
def data1(request) -> Sample:
    """data1.fcs as scale values: from cytokit.read_fcs, and from FlowIO's truth array."""
    if request.param == "read_fcs":
        return cytokit.read_fcs(need_corpus(naive.GATE_REF / "data1.fcs"))
    events = np.load(need_corpus(naive.DATA1_SCALE))
    channels = tuple(Channel(i, n) for i, n in enumerate(naive.DATA1_CHANNELS))
    return Sample(events, channels)


# --- the ISAC compliance suite ------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(("truth", "gid", "doc", "in_all"), CASES, ids=[c[0] for c in CASES])
def test_compliance_single_gate_document(data1, truth, gid, doc, in_all):
    strategy = read_gatingml(need_corpus(GML / doc))
    result = strategy.apply(data1)
    want = naive.truth(truth)
    np.testing.assert_array_equal(result.membership(gid), want)
    assert result.count(gid) == want.sum()


@pytest.fixture(scope="module")
def all_gates(data1):
    strategy = read_gatingml(need_corpus(GML / "gml_all_gates.xml"))
    return strategy, strategy.apply(data1)


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("truth", "gid"), [(c[0], c[1]) for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]]
)
def test_compliance_all_gates_document(all_gates, truth, gid):
    _, result = all_gates
    np.testing.assert_array_equal(result.membership(gid), naive.truth(truth))


@pytest.mark.corpus
def test_compliance_table_is_complete(all_gates):
    """51 truth files: 49 ids of the ISAC document, 2 from FlowKit's own documents."""
    strategy, _ = all_gates
    truth_files = sorted(p.name for p in (naive.GATE_REF / "truth").glob("Results_*.txt"))
    assert len(truth_files) == len(CASES) == 51
    assert {f"Results_{c[0]}.txt" for c in CASES} == set(truth_files)
    in_all = {c[1] for c in CASES if c[3]}
    assert len(in_all) == 49
    assert in_all == {p.id for p in strategy.populations}
    assert {c[2] for c in CASES if not c[3]} == {
        "gml_ellipsoid3d_gate.xml",
        "gml_parent_quadrant_rect_gate.xml",
    }


@pytest.mark.corpus
def test_all_gates_structure(all_gates):
    strategy, _ = all_gates
    # 42 gate elements, two of them quadrant gates with 4 and 5 quadrants.
    assert len(strategy.gates) == 42 and len(strategy.populations) == 49
    assert set(strategy.matrices) == {"MySpill"}
    spill = strategy.matrices["MySpill"]
    assert spill.fluorochromes == ("FITC", "PE", "PerCP")
    assert spill.detectors == ("FL1-H", "FL2-H", "FL3-H")
    np.testing.assert_array_equal(spill.matrix[1], [0.11, 1, 0.07])
    assert strategy.population("ScalePar1").path == "/ScaleRect1/ScalePar1"
    r5 = strategy.gate("Rectangle5")
    assert r5.min == (7.0, 10.0) and r5.max == (90.0, None)
    rat = strategy.gate("RatRange1a").dims[0]
    assert rat.channel == "FL2Rat1" and rat.ratio == G.RatioTransform("FL2-H", "FL2-A", 1, 0, -1)
    assert rat.transform == G.LogTransform(T=100, M=2)
    assert strategy.gate("And3").complement == (False, True, False)
    assert strategy.gate("Polygon4").dims[0] == G.Dimension("PE", "MySpill")
    q2 = strategy.gate("FSCD-FL1P")
    assert [d.values for d in q2.dividers] == [(28.0654, 70.02725), (17.75,), (6.43567,)]


@pytest.mark.corpus
def test_forward_references(tmp_path, data1):
    """Gates, transformations and matrices may be used before the document defines them."""
    src = need_corpus(GML / "gml_all_gates.xml").read_text()
    root = ET.fromstring(src)
    kids = list(root)
    for k in kids:
        root.remove(k)
    root.extend(reversed(kids))
    path = tmp_path / "reversed.xml"
    path.write_bytes(ET.tostring(root))
    result = read_gatingml(path).apply(data1)
    for truth, gid, _, in_all in CASES:
        if in_all:
            np.testing.assert_array_equal(result.membership(gid), naive.truth(truth))


@pytest.mark.corpus
def test_load_strategy_dispatches_here():
    path = need_corpus(GML / "gml_all_gates.xml")
    assert G.load_strategy(path).digest() == read_gatingml(path).digest()


# --- FlowKit's extra documents without truth ----------------------------------------------------


@pytest.mark.corpus
def test_malformed_sample_wrapper_is_refused():
    """gml_range_gate_attr_testing.xml wraps its gate in a <sample> element the schema forbids."""
    path = need_corpus(GML / "gml_range_gate_attr_testing.xml")
    with pytest.raises(GatingError, match=r"line 7, <sample>: unexpected element directly inside"):
        read_gatingml(path)


@pytest.mark.corpus
def test_ellipse2_matches_its_geometry(data1):
    """gml_ellipse2_gate.xml has no truth file; its custom_info says a=37, b=30, rotated -45°.

    The covariance must be that ellipse's, and membership that of the rotated
    ellipse computed directly from the half-axes.
    """
    strategy = read_gatingml(need_corpus(GML / "gml_ellipse2_gate.xml"))
    (gate,) = strategy.gates
    assert isinstance(gate, G.EllipsoidGate)
    assert sorted(np.linalg.eigvalsh(np.array(gate.covariance))) == pytest.approx([30**2, 37**2])
    x = data1.column("FSC-H") - 40.0
    y = data1.column("SSC-H") - 40.0
    t = math.radians(-45.0)
    u = x * math.cos(t) + y * math.sin(t)
    v = -x * math.sin(t) + y * math.cos(t)
    q = (u / 37.0) ** 2 + (v / 30.0) ** 2
    got = strategy.apply(data1).membership("myEllipse2")
    assert got.sum() > 100
    ambiguous = np.abs(q - 1) < 1e-9
    np.testing.assert_array_equal(got[~ambiguous], (q <= 1)[~ambiguous])


# --- export and re-import -----------------------------------------------------------------------


def assert_same_strategy(a: G.GatingStrategy, b: G.GatingStrategy) -> None:
    assert a.gates == b.gates
    assert a.matrices == b.matrices
    assert a.name == b.name
    assert a.paths == b.paths
    assert a.digest() == b.digest()


@pytest.mark.corpus
@pytest.mark.parametrize("doc", VALID_DOCUMENTS)
def test_round_trip_compliance_documents(tmp_path, data1, doc):
    original = read_gatingml(need_corpus(GML / doc))
    out = write_gatingml(original, tmp_path / "out.xml")
    again = read_gatingml(out)
    assert_same_strategy(original, again)
    # Writing the re-read strategy gives the same bytes.
    assert gatingml_bytes(again) == out.read_bytes()
    a, b = original.apply(data1), again.apply(data1)
    for p in original.populations:
        np.testing.assert_array_equal(a.membership(p.id), b.membership(p.id))


# Float parameters: the core keeps ints as given, and digest() reads repr (see the report).
LOGICLE = G.LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0)


def every_construct() -> G.GatingStrategy:
    """A strategy using every construct the exporter writes, with awkward names."""
    fl = lambda ch, comp="FCS": G.Dimension(ch, comp, LOGICLE)  # noqa: E731
    spill = G.SpectrumMatrix(
        "Panel spill", ("FITC", "PE"), ("FL1-A", "FL2-A"), [[1.0, 0.1234567890123], [0.02, 1.0]]
    )
    ratio = G.RatioTransform("FL1-A", "FL2-A", A=2.5, B=-1e-7, C=3.0)
    q1 = G.QuadrantGate(
        id="Q1",
        parent="Cells",
        name="CD3 × CD56",
        dividers=(G.Divider("d", fl("FL1-A"), (0.3, 0.55)), G.Divider("e", fl("FL2-A"), (0.4,))),
        quadrants=(
            G.Quadrant("Q1++", (("d", 0.9), ("e", 0.9)), name='CD3+ & "CD56"+ <bright>'),
            G.Quadrant("Q1-mid", (("d", 0.4),)),
            G.Quadrant("Q1--", (("d", 0.0), ("e", 0.0)), name="double\tnegative\n"),
        ),
    )
    q2 = G.QuadrantGate(  # same divider ids as Q1: renamed in the document, restored on reading
        id="Q2",
        dividers=(
            G.Divider("d", G.Dimension("FSC-A"), (5e4,)),
            G.Divider("e", fl("FL3-A"), (0.5,)),
        ),
        quadrants=(G.Quadrant("Q2a", (("d", 1e6), ("e", 0.0))),),
    )
    gates = [
        G.RectangleGate(
            id="Cells",
            name="Lymphocytes (FSC/SSC)",
            dims=(G.Dimension("FSC-A"), G.Dimension("SSC-A", transform=G.LinearTransform(T=1e5))),
            min=(2.0e4, -math.inf),
            max=(None, 0.8),
        ),
        q1,
        q2,
        G.RectangleGate(
            id="R-ratio", dims=(G.Dimension("r1", ratio=ratio),), min=(0.1,), max=(None,)
        ),
        G.RectangleGate(
            id="R-ratio-log",
            parent="Q1++",
            dims=(G.Dimension("r1", ratio=ratio, transform=G.LogTransform(T=100.0, M=2.0)),),
            min=(None,),
            max=(0.7,),
        ),
        G.PolygonGate(
            id="P",
            parent="Q1-mid",
            dims=(
                G.Dimension("FITC", "Panel spill", G.AsinhTransform(T=1e4, M=4.0, A=1.0)),
                fl("PE", "Panel spill"),
            ),
            vertices=((0.1, 0.1), (0.9, 0.15), (0.5, 0.95), (0.55, 0.3)),
        ),
        G.EllipsoidGate(
            id="E3",
            dims=(
                fl("FL1-A"),
                fl("FL2-A"),
                G.Dimension(
                    "FL3-A", "uncompensated", G.HyperlogTransform(T=1e4, W=1.0, M=4.5, A=0.0)
                ),
            ),
            mean=(0.5, 0.45, 0.4),
            covariance=((0.02, 0.005, 0.0), (0.005, 0.03, 0.001), (0.0, 0.001, 0.04)),
            distance_square=2.25,
        ),
        G.BooleanGate(
            id="And", op="and", operands=("P", "E3", "Q2a"), complement=(False, True, False)
        ),
        G.BooleanGate(id="Or", parent="Cells", op="or", operands=("R-ratio", "Q1--")),
        G.BooleanGate(id="Not", op="not", operands=("Or",)),
    ]
    return G.GatingStrategy(gates, matrices={spill.id: spill}, name="Lab panel #3 – NK/CIK")


@pytest.fixture(scope="module")
def synthetic() -> Sample:
    rng = np.random.default_rng(7)
    n = 20000
    names = ["FSC-A", "SSC-A", "FL1-A", "FL2-A", "FL3-A"]
    events = np.column_stack(
        [
            rng.uniform(0, 1.2e5, n),
            rng.uniform(0, 1.2e5, n),
            rng.lognormal(6, 2, n) - 200,
            rng.lognormal(6, 2, n) - 200,
            rng.lognormal(5, 2, n) - 100,
        ]
    )
    spill = Spillover(
        ("FL1-A", "FL2-A", "FL3-A"), np.array([[1, 0.2, 0.05], [0.1, 1, 0.3], [0, 0.05, 1]])
    )
    return Sample(events, tuple(Channel(i, c) for i, c in enumerate(names)), spillover=spill)


def test_round_trip_every_construct(tmp_path, synthetic):
    original = every_construct()
    out = original.to_gatingml(tmp_path / "deep" / "strategy.xml")
    text = out.read_text(encoding="utf-8")
    # The logicle transform used by six dimensions is written once; the ratio once, by its name.
    assert text.count("<transforms:logicle ") == 1
    assert text.count("<transforms:fratio ") == 1 and 'transforms:id="r1"' in text
    assert 'gating:id="Q2.d"' in text  # divider ids are unique in a Gating-ML document
    again = read_gatingml(out)
    assert_same_strategy(original, again)
    assert again.population("Q1--").name == "double\tnegative\n"
    a, b = original.apply(synthetic), again.apply(synthetic)
    assert (a.counts_array > 0).sum() >= 10
    for p in original.populations:
        np.testing.assert_array_equal(a.membership(p.id), b.membership(p.id))


def test_export_renames_colliding_ratio_id(tmp_path, synthetic):
    """A ratio named like a gate gets a generated transformation id; membership is unchanged."""
    ratio = G.RatioTransform("FL1-A", "FL2-A")
    s = G.GatingStrategy(
        [G.RectangleGate(id="R", dims=(G.Dimension("R", ratio=ratio),), min=(0.5,), max=(2,))]
    )
    again = read_gatingml(write_gatingml(s, tmp_path / "s.xml"))
    dim = again.gate("R").dims[0]
    assert dim.channel != "R" and dim.ratio == ratio
    np.testing.assert_array_equal(
        s.apply(synthetic).membership("R"), again.apply(synthetic).membership("R")
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    bounds=st.lists(st.tuples(finite, finite), min_size=1, max_size=3),
    vertices=st.lists(st.tuples(finite, finite), min_size=3, max_size=6),
)
def test_floats_round_trip_exactly(bounds, vertices):
    dims = tuple(G.Dimension(f"ch{j}") for j in range(len(bounds)))
    lo = tuple(min(a, b) for a, b in bounds)
    hi = tuple(max(a, b) for a, b in bounds)
    s = G.GatingStrategy(
        [
            G.RectangleGate(id="R", dims=dims, min=lo, max=hi),
            G.PolygonGate(id="P", dims=dims[:1] * 2, vertices=tuple(vertices)),
        ]
    )
    with tempfile.TemporaryDirectory() as d:
        again = read_gatingml(write_gatingml(s, Path(d) / "s.xml"))
    assert_same_strategy(s, again)


def test_adaptive_gate_cannot_be_exported(tmp_path):
    class Median(G.AdaptiveGate):
        def fit(self, values, rng):
            m = float(np.nanmedian(values[:, 0]))
            return G.RectangleGate(id=self.id, dims=self.dims, min=(m,), max=(None,))

    s = G.GatingStrategy([Median(id="hi", dims=(G.Dimension("FSC-A"),))])
    target = tmp_path / "s.xml"
    target.write_text("previous")
    with pytest.raises(GatingError, match=r"'hi' is adaptive .*apply\(sample\)\.strategy"):
        s.to_gatingml(target)
    assert target.read_text() == "previous"  # nothing written


def test_fitted_strategy_can_be_exported(tmp_path, synthetic):
    class Median(G.AdaptiveGate):
        def fit(self, values, rng):
            m = float(np.nanmedian(values[:, 0]))
            return G.RectangleGate(id=self.id, dims=self.dims, min=(m,), max=(None,))

    s = G.GatingStrategy([Median(id="hi", dims=(G.Dimension("FSC-A"),))])
    result = s.apply(synthetic)
    again = read_gatingml(result.strategy.to_gatingml(tmp_path / "fitted.xml"))
    np.testing.assert_array_equal(again.apply(synthetic).membership("hi"), result.membership("hi"))


def test_biex_cannot_be_exported():
    dim = G.Dimension("FL1-A", "FCS", G.BiexTransform())
    s = G.GatingStrategy([G.RectangleGate(id="B", dims=(dim,), min=(1000,), max=(None,))])
    with pytest.raises(GatingError, match=r"gate 'B' .*biex transform, which Gating-ML 2.0 cannot"):
        gatingml_bytes(s)


def test_control_characters_are_refused():
    s = G.GatingStrategy(
        [G.RectangleGate(id="A\x01", dims=(G.Dimension("x"),), min=(1,), max=(2,))]
    )
    with pytest.raises(GatingError, match="control character"):
        gatingml_bytes(s)


# --- boundMin / boundMax ------------------------------------------------------------------------


def bounded_doc(gates: str) -> str:
    return f"""<?xml version="1.0"?>
<gating:Gating-ML {NS}>
  <transforms:transformation transforms:id="L" transforms:boundMin="0.2" transforms:boundMax="0.6">
    <transforms:logicle transforms:T="10000" transforms:W="0.5" transforms:M="4.5" transforms:A="0" />
  </transforms:transformation>
{gates}
</gating:Gating-ML>
"""


def bounded_range(gid: str, lo: float | None, hi: float | None) -> str:
    attrs = "".join(f' gating:{k}="{v}"' for k, v in (("min", lo), ("max", hi)) if v is not None)
    return f"""  <gating:RectangleGate gating:id="{gid}">
    <gating:dimension gating:compensation-ref="uncompensated" gating:transformation-ref="L"{attrs}>
      <data-type:fcs-dimension data-type:name="FL1-H" />
    </gating:dimension>
  </gating:RectangleGate>"""


BOUND_CASES = {
    "inside": (0.3, 0.5),
    "below_min": (0.1, 0.5),
    "above_max": (0.3, 0.9),
    "all": (0.1, 0.9),
    "none_high": (0.7, 0.9),
    "none_low": (0.0, 0.15),
    "open_low": (None, 0.4),
    "open_high_bound": (0.6, None),
    "at_bounds": (0.2, 0.6),
}


@pytest.mark.corpus
def test_transformation_bounds_clamp_rectangles(tmp_path, data1):
    """boundMin/boundMax clamp the transformed value (Gating-ML 2.0); checked with numpy."""
    path = tmp_path / "bounded.xml"
    path.write_text(bounded_doc("\n".join(bounded_range(k, *v) for k, v in BOUND_CASES.items())))
    strategy = read_gatingml(path)
    result = strategy.apply(data1)
    v = G.LogicleTransform(T=10000, W=0.5, M=4.5, A=0).apply(data1.column("FL1-H"))
    clamped = np.clip(v, 0.2, 0.6)
    for gid, (lo, hi) in BOUND_CASES.items():
        want = np.ones(v.shape, bool)
        if lo is not None:
            want &= clamped >= lo
        if hi is not None:
            want &= clamped < hi
        np.testing.assert_array_equal(result.membership(gid), want, err_msg=gid)
    assert result.count("all") == data1.n_events and result.count("none_high") == 0
    # Folded into plain bounds, they survive a round trip.
    again = read_gatingml(write_gatingml(strategy, tmp_path / "again.xml"))
    for gid in BOUND_CASES:
        np.testing.assert_array_equal(again.apply(data1).membership(gid), result.membership(gid))


def test_transformation_bounds_on_a_polygon_are_refused(tmp_path):
    poly = """  <gating:PolygonGate gating:id="P">
    <gating:dimension gating:compensation-ref="uncompensated" gating:transformation-ref="L">
      <data-type:fcs-dimension data-type:name="FL1-H" />
    </gating:dimension>
    <gating:dimension gating:compensation-ref="uncompensated">
      <data-type:fcs-dimension data-type:name="FL2-H" />
    </gating:dimension>
    <gating:vertex><gating:coordinate data-type:value="0" /><gating:coordinate data-type:value="0" /></gating:vertex>
    <gating:vertex><gating:coordinate data-type:value="1" /><gating:coordinate data-type:value="0" /></gating:vertex>
    <gating:vertex><gating:coordinate data-type:value="1" /><gating:coordinate data-type:value="1" /></gating:vertex>
  </gating:PolygonGate>"""
    path = tmp_path / "p.xml"
    path.write_text(bounded_doc(poly))
    with pytest.raises(GatingError, match=r"line 7, <gating:dimension>: .*boundMin/boundMax.*'P'"):
        read_gatingml(path)


@pytest.mark.corpus
def test_spectrum_matrix_inverted_already(tmp_path, data1):
    """matrix-inverted-already="true" gives the compensation matrix; Polygon4 keeps its truth."""
    text = need_corpus(GML / "gml_matrix_poly4_gate.xml").read_text()
    m = np.array([[1, 0.02, 0.06], [0.11, 1, 0.07], [0.09, 0.01, 1]])
    inv = np.linalg.inv(m)
    for row_old, row_new in zip(m, inv, strict=True):
        old = "".join(f'<transforms:coefficient transforms:value="{v:g}" />' for v in row_old)
        new = "".join(
            f'<transforms:coefficient transforms:value="{float(v)!r}" />' for v in row_new
        )
        squashed = re.sub(r"\s*(<transforms:coefficient[^>]*/>)\s*", r"\1", text)
        assert old in squashed
        text = squashed.replace(old, new)
    text = text.replace(
        'transforms:id="MySpill"',
        'transforms:id="MySpill" transforms:matrix-inverted-already="true"',
    )
    path = tmp_path / "inverted.xml"
    path.write_text(text)
    strategy = read_gatingml(path)
    np.testing.assert_allclose(strategy.matrices["MySpill"].matrix, m, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(
        strategy.apply(data1).membership("Polygon4"), naive.truth("Polygon4")
    )


# --- malformed documents ------------------------------------------------------------------------

RANGE = """<gating:RectangleGate gating:id="R">
  <gating:dimension gating:compensation-ref="uncompensated" gating:min="1">
    <data-type:fcs-dimension data-type:name="FSC-H" />
  </gating:dimension>
</gating:RectangleGate>"""


def doc(body: str) -> str:
    """A document whose body starts on line 3."""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<gating:Gating-ML {NS}>\n{body}\n</gating:Gating-ML>\n'


def quadrant(position: str) -> str:
    return f"""<gating:QuadrantGate gating:id="Q">
  <gating:divider gating:id="D" gating:compensation-ref="uncompensated">
    <data-type:fcs-dimension data-type:name="FL1-H" />
    <gating:value>10</gating:value>
  </gating:divider>
  <gating:Quadrant gating:id="Q+">
    {position}
  </gating:Quadrant>
</gating:QuadrantGate>"""


def xform(inner: str, attrs: str = "") -> str:
    return f'<transforms:transformation transforms:id="X"{attrs}>\n  {inner}\n</transforms:transformation>\n{RANGE}'


def dim_with(attrs: str, axis: str = '<data-type:fcs-dimension data-type:name="FSC-H" />') -> str:
    return f"""<gating:RectangleGate gating:id="R">
  <gating:dimension gating:compensation-ref="uncompensated" gating:min="1" {attrs}>
    {axis}
  </gating:dimension>
</gating:RectangleGate>"""


LOGICLE_X = xform(
    '<transforms:logicle transforms:T="1000" transforms:W="0.5" transforms:M="4.5" transforms:A="0" />'
)
RATIO_X = xform(
    '<transforms:fratio transforms:A="1" transforms:B="0" transforms:C="0">'
    '<data-type:fcs-dimension data-type:name="FL2-H" /><data-type:fcs-dimension data-type:name="FL2-A" />'
    "</transforms:fratio>"
)
VERTEX = '<gating:vertex><gating:coordinate data-type:value="{}" /><gating:coordinate data-type:value="1" /></gating:vertex>'
POLY_DIMS = """<gating:dimension gating:compensation-ref="FCS"><data-type:fcs-dimension data-type:name="FL2-H" /></gating:dimension>
<gating:dimension gating:compensation-ref="FCS"><data-type:fcs-dimension data-type:name="FL3-H" /></gating:dimension>"""
ELLIPSE = """<gating:EllipsoidGate gating:id="E">
{dims}
<gating:mean><gating:coordinate data-type:value="1" /><gating:coordinate data-type:value="2" /></gating:mean>
<gating:covarianceMatrix>
<gating:row><gating:entry data-type:value="1" /><gating:entry data-type:value="{c}" /></gating:row>
<gating:row><gating:entry data-type:value="{c}" /><gating:entry data-type:value="1" /></gating:row>
</gating:covarianceMatrix>
<gating:distanceSquare data-type:value="1" />
</gating:EllipsoidGate>"""
BOOL = (
    """<gating:BooleanGate gating:id="B">
  <gating:{op}>
    <gating:gateReference gating:ref="R" {extra} />
    {more}
  </gating:{op}>
</gating:BooleanGate>
"""
    + RANGE
)
SPILL = (
    """<transforms:spectrumMatrix transforms:id="S">
  <transforms:fluorochromes><data-type:fcs-dimension data-type:name="FITC" /><data-type:fcs-dimension data-type:name="PE" /></transforms:fluorochromes>
  <transforms:detectors><data-type:fcs-dimension data-type:name="FL1-H" /><data-type:fcs-dimension data-type:name="FL2-H" /></transforms:detectors>
  <transforms:spectrum><transforms:coefficient transforms:value="1" /><transforms:coefficient transforms:value="0.1" /></transforms:spectrum>
  {row}
</transforms:spectrumMatrix>
"""
    + RANGE
)

MALFORMED = {
    "missing gate id": (
        RANGE.replace(' gating:id="R"', ""),
        r"line 3, <gating:RectangleGate>: missing attribute gating:id",
    ),
    "non-numeric min": (
        RANGE.replace('min="1"', 'min="1_000"'),
        r"line 4, <gating:dimension>: gating:min='1_000' is not a number",
    ),
    "no min or max": (
        RANGE.replace(' gating:min="1"', ""),
        r"line 4, <gating:dimension>: a rectangle dimension needs gating:min, gating:max",
    ),
    "min above max": (
        RANGE.replace('min="1"', 'min="5" gating:max="2"'),
        r"line 4, <gating:dimension>: min=5.0 > max=2.0",
    ),
    "unknown transformation-ref": (
        dim_with('gating:transformation-ref="Nope"'),
        r"line 4, <gating:dimension>: unknown transformation-ref 'Nope'",
    ),
    "ratio as scale transformation": (
        RATIO_X.replace(
            'compensation-ref="uncompensated"',
            'compensation-ref="uncompensated" gating:transformation-ref="X"',
        ),
        r"line 7, <gating:dimension>: transformation-ref 'X' is not a scale transformation",
    ),
    "scale transformation as new dimension": (
        LOGICLE_X.replace(
            '<data-type:fcs-dimension data-type:name="FSC-H" />',
            '<data-type:new-dimension data-type:transformation-ref="X" />',
        ),
        r"line 8, <data-type:new-dimension>: transformation-ref 'X' is not a transforms:fratio",
    ),
    "unknown compensation-ref": (
        RANGE.replace('"uncompensated"', '"MySpill"'),
        r"line 4, <gating:dimension>: unknown compensation-ref 'MySpill'",
    ),
    "two axes": (
        dim_with(
            "",
            '<data-type:fcs-dimension data-type:name="A" /><data-type:fcs-dimension data-type:name="B" />',
        ),
        r"line 4, <gating:dimension>: needs exactly one data-type:fcs-dimension or data-type:new-dimension, found 2",
    ),
    "axis without name": (
        dim_with("", "<data-type:fcs-dimension />"),
        r"line 5, <data-type:fcs-dimension>: missing attribute data-type:name",
    ),
    "unexpected child": (
        RANGE.replace("</gating:RectangleGate>", "<gating:vertex />\n</gating:RectangleGate>"),
        r"line 7, <gating:vertex>: unexpected element inside <gating:RectangleGate>; expected gating:dimension",
    ),
    "unknown gate reference": (
        BOOL.format(op="and", extra="", more='<gating:gateReference gating:ref="Nope" />'),
        r"line 6, <gating:gateReference>: unknown gate reference ref='Nope'.*defines B, R",
    ),
    "unknown parent": (
        RANGE.replace('gating:id="R"', 'gating:id="R" gating:parent_id="Lymphs"'),
        r"line 3, <gating:RectangleGate id=\"R\">: unknown gate reference parent_id='Lymphs'",
    ),
    "duplicate id": (
        RANGE + "\n" + RANGE,
        r"line 8, <gating:RectangleGate id=\"R\">: id 'R' is already used by <gating:RectangleGate> on line 3",
    ),
    "bad use-as-complement": (
        BOOL.format(
            op="and",
            extra='gating:use-as-complement="yes"',
            more='<gating:gateReference gating:ref="R" />',
        ),
        r"line 5, <gating:gateReference>: use-as-complement='yes' must be true or false",
    ),
    "not with two operands": (
        BOOL.format(op="not", extra="", more='<gating:gateReference gating:ref="R" />'),
        r"line 4, <gating:not>: gating:not takes exactly one gateReference, got 2",
    ),
    "two boolean operators": (
        BOOL.format(op="and", extra="", more="").replace(
            "</gating:BooleanGate>", "<gating:or />\n</gating:BooleanGate>", 1
        ),
        r"line 3, <gating:BooleanGate id=\"B\">: needs exactly one of gating:and, gating:or, gating:not; got 2",
    ),
    "quadrant divider_ref unknown": (
        quadrant('<gating:position gating:divider_ref="CD3" gating:location="15" />'),
        r"line 9, <gating:position>: bad quadrant position: divider_ref 'CD3' is not a divider of this gate \(its dividers are D\)",
    ),
    "quadrant location not a number": (
        quadrant('<gating:position gating:divider_ref="D" gating:location="high" />'),
        r"line 9, <gating:position>: gating:location='high' is not a number",
    ),
    "quadrant location missing": (
        quadrant('<gating:position gating:divider_ref="D" />'),
        r"line 9, <gating:position>: missing attribute gating:location",
    ),
    "quadrant divider named twice": (
        quadrant(
            '<gating:position gating:divider_ref="D" gating:location="15" />'
            '<gating:position gating:divider_ref="D" gating:location="5" />'
        ),
        r"line 9, <gating:position>: bad quadrant position: divider 'D' is named twice",
    ),
    "quadrant without positions": (
        quadrant(""),
        r"line 8, <gating:Quadrant id=\"Q\+\">: bad quadrant: it needs at least one gating:position",
    ),
    "divider value not a number": (
        quadrant('<gating:position gating:divider_ref="D" gating:location="15" />').replace(
            ">10<", ">ten<"
        ),
        r"line 6, <gating:value>: divider value 'ten' is not a finite number",
    ),
    "polygon with two vertices": (
        f'<gating:PolygonGate gating:id="P">\n{POLY_DIMS}\n{VERTEX.format(1)}\n{VERTEX.format(2)}\n</gating:PolygonGate>',
        r"line 3, <gating:PolygonGate id=\"P\">: a polygon needs at least 3 gating:vertex, got 2",
    ),
    "vertex with one coordinate": (
        f'<gating:PolygonGate gating:id="P">\n{POLY_DIMS}\n<gating:vertex><gating:coordinate data-type:value="1" /></gating:vertex>\n</gating:PolygonGate>',
        r"line 6, <gating:vertex>: a vertex needs 2 gating:coordinate, got 1",
    ),
    "ellipse mean too short": (
        ELLIPSE.format(dims=POLY_DIMS + "\n" + POLY_DIMS.split("\n")[0], c="0.5"),
        r"line 7, <gating:mean>: has 2 coordinates for 3 dimensions",
    ),
    "ellipse singular covariance": (
        ELLIPSE.format(dims=POLY_DIMS, c="1"),
        r"line 3, <gating:EllipsoidGate id=\"E\">: .*singular",
    ),
    "ellipse without distanceSquare": (
        ELLIPSE.format(dims=POLY_DIMS, c="0.5").replace(
            '<gating:distanceSquare data-type:value="1" />', ""
        ),
        r"line 3, <gating:EllipsoidGate id=\"E\">: needs exactly one <gating:distanceSquare>, found 0",
    ),
    "transformation without function": (
        xform(""),
        r"line 3, <transforms:transformation id=\"X\">: needs exactly one of transforms:flin, .*found none",
    ),
    "unknown transformation function": (
        xform('<transforms:biex transforms:T="1" />'),
        r"line 3, <transforms:transformation id=\"X\">: needs exactly one of .*found transforms:biex",
    ),
    "transformation parameter missing": (
        xform('<transforms:logicle transforms:T="1000" transforms:M="4.5" transforms:A="0" />'),
        r"line 4, <transforms:logicle>: missing attribute transforms:W",
    ),
    "transformation parameter out of range": (
        xform(
            '<transforms:logicle transforms:T="1000" transforms:W="3" transforms:M="4.5" transforms:A="0" />'
        ),
        r"line 4, <transforms:logicle>: logicle transform: .*W",
    ),
    "bounds reversed": (
        LOGICLE_X.replace(
            'transforms:id="X"', 'transforms:id="X" transforms:boundMin="1" transforms:boundMax="0"'
        ),
        r"line 3, <transforms:transformation id=\"X\">: boundMin=1.0 and boundMax=0.0",
    ),
    "fratio with one channel": (
        xform(
            '<transforms:fratio transforms:A="1" transforms:B="0" transforms:C="0"><data-type:fcs-dimension data-type:name="FL2-H" /></transforms:fratio>'
        ),
        r"line 4, <transforms:fratio>: needs two data-type:fcs-dimension",
    ),
    "spectrum row missing": (
        SPILL.format(row=""),
        r"line 3, <transforms:spectrumMatrix id=\"S\">: has 1 transforms:spectrum rows for 2 fluorochromes",
    ),
    "spectrum row too short": (
        SPILL.format(
            row='<transforms:spectrum><transforms:coefficient transforms:value="1" /></transforms:spectrum>'
        ),
        r"line 7, <transforms:spectrum>: has 1 coefficients for 2 detectors",
    ),
    "unexpected top-level element": (
        f"<gating:Gate />\n{RANGE}",
        r"line 3, <gating:Gate>: unexpected element directly inside <gating:Gating-ML>",
    ),
    "no gates": (
        LOGICLE_X.split("<gating:RectangleGate")[0],
        r"the Gating-ML document defines no gates",
    ),
    "cycle": (
        RANGE.replace('gating:id="R"', 'gating:id="R" gating:parent_id="S"')
        + "\n"
        + RANGE.replace('gating:id="R"', 'gating:id="S" gating:parent_id="R"'),
        r"cycle: .*R → S → R|cycle: .*S → R → S",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_documents_name_file_line_and_element(tmp_path, case):
    body, pattern = MALFORMED[case]
    path = tmp_path / "bad.xml"
    path.write_text(doc(body), encoding="utf-8")
    with pytest.raises(GatingError, match=pattern) as info:
        read_gatingml(path)
    assert str(info.value).startswith(str(path))


NOT_GATINGML = {
    "not XML at all": (b"\x00\x01binary", r"not a well-formed XML document: .* line 1, column 1"),
    "FCS file": (b"FCS3.1    256", r"this is an FCS data file, not a gating strategy"),
    "empty": (b"", r"the file is empty"),
    "truncated": (
        doc(RANGE).encode()[:-30],
        r"not a well-formed XML document: unclosed token at line 7",
    ),
    "wrong root": (
        b'<?xml version="1.0"?>\n<strategy />',
        r"line 2: wrong root element: .*<strategy>",
    ),
    "root without namespace": (
        b"<Gating-ML />",
        r"line 1: wrong root element: .*namespace \(none\)",
    ),
    "Gating-ML 1.5": (
        b'<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v1.5/gating" />',
        r"Gating-ML 1.5 document",
    ),
    "FlowJo workspace": (b"<Workspace version='20.0' />", r"this is a FlowJo workspace"),
}


@pytest.mark.parametrize("case", sorted(NOT_GATINGML))
def test_not_gatingml(tmp_path, case):
    data, pattern = NOT_GATINGML[case]
    path = tmp_path / "x.xml"
    path.write_bytes(data)
    with pytest.raises(GatingError, match=pattern):
        read_gatingml(path)


def test_missing_file_and_unknown_option(tmp_path):
    with pytest.raises(GatingError, match=r"nope.xml: Gating-ML file not found"):
        read_gatingml(tmp_path / "nope.xml")
    path = tmp_path / "ok.xml"
    path.write_text(doc(RANGE))
    with pytest.raises(GatingError, match=r"unknown option\(s\) group; it takes name="):
        read_gatingml(path, group="All Samples")
    assert read_gatingml(path, name="mine").name == "mine"


# --- XML attacks --------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gating:Gating-ML {ns}><data-type:custom_info>&lol9;</data-type:custom_info></gating:Gating-ML>
"""


def test_entity_expansion_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(BILLION_LAUGHS.format(ns=NS))
    with pytest.raises(GatingError, match=r"bomb.xml, line 2: the document has a <!DOCTYPE>"):
        read_gatingml(path)


def test_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        f'<gating:Gating-ML {NS}><gating:RectangleGate gating:id="&xxe;" /></gating:Gating-ML>'
    )
    with pytest.raises(GatingError, match="DOCTYPE") as info:
        read_gatingml(path)
    assert "SECRET" not in str(info.value)


def test_undeclared_entity_reference_is_not_resolved(tmp_path):
    path = tmp_path / "ent.xml"
    path.write_text(doc(RANGE.replace('gating:id="R"', 'gating:id="&xxe;"')))
    with pytest.raises(GatingError, match=r"not a well-formed XML document: undefined entity"):
        read_gatingml(path)


def test_external_dtd_is_never_fetched(tmp_path):
    """A DOCTYPE pointing at a server: refused, and the server sees no connection."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        path = tmp_path / "dtd.xml"
        path.write_text(
            f'<?xml version="1.0"?>\n<!DOCTYPE gating:Gating-ML SYSTEM "http://127.0.0.1:{port}/g.dtd">\n'
            + doc(RANGE).split("\n", 1)[1]
        )
        with pytest.raises(GatingError, match="line 2: the document has a <!DOCTYPE>"):
            read_gatingml(path)
        with pytest.raises(BlockingIOError):
            server.accept()


# --- FlowJo's own Gating-ML export --------------------------------------------------------------


@pytest.fixture(scope="module")
def flowjo_export() -> G.GatingStrategy:
    return read_gatingml(need_corpus(FLOWSOM / "manualGating.xml"))


@pytest.mark.corpus
def test_flowjo_export_structure(flowjo_export):
    """No compensation-ref and FlowJo's Comp- names: read as the file's own spillover."""
    s = flowjo_export
    assert len(s.gates) == 15 and max(p.depth for p in s.populations) == 7
    assert all(p.name == p.id for p in s.populations)
    dims = {d for g in s.gates for d in g.dimensions}
    assert G.Dimension("PE-Cy7-A", G.FCS) in dims and G.Dimension("FSC-A") in dims
    assert not any(d.channel.startswith("Comp-") for d in dims)
    assert all(d.compensation == G.FCS for d in dims if not d.channel.startswith(("FSC", "SSC")))


def _wsp_gate_keys(wsp: Path) -> dict[float, str]:
    """FlowJo population name by its gate's first number (rectangle min / first vertex x)."""
    g = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
    d = "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}"
    out = {}
    for pop in ET.parse(wsp).getroot().iter("Population"):
        (gate,) = list(pop.find("Gate"))
        if gate.tag == g + "RectangleGate":
            key = gate.find(g + "dimension").get(g + "min")
        else:
            key = gate.find(g + "vertex").find(g + "coordinate").get(d + "value")
        out.setdefault(float(key), pop.get("name"))
    return out


@pytest.mark.corpus
def test_flowjo_export_counts_match_flowjo(flowjo_export):
    """Where the export's gate is the workspace's gate, counts are FlowJo's within 0.1 %.

    The export was saved from a later edit of gating.wsp, so only gates with the
    same geometry are compared (found by their numbers, not by hand). NK1_1-
    is gated on compensated PE-A: uncompensated it would hold about half.
    """
    sample = cytokit.read_fcs(need_corpus(FLOWSOM / "68983.fcs"))
    keys = _wsp_gate_keys(FLOWSOM / "gating.wsp")
    counts_csv = (
        CORPUS
        / "derived"
        / "wsp_counts"
        / "github__SofieVG_FlowSOM__inst__extdata__gating.wsp.counts.csv"
    )
    with need_corpus(counts_csv).open(newline="") as fh:
        flowjo = {r["population"]: int(r["flowjo_count"]) for r in csv.DictReader(fh)}
    result = flowjo_export.apply(sample)
    matched = {}
    for g in flowjo_export.gates:
        first = g.min[0] if isinstance(g, G.RectangleGate) else g.vertices[0][0]
        if first in keys:
            matched[keys[first]] = result.count(g.id)
    assert set(matched) >= {"Lymphocytes", "Singlets", "Singlets2", "NK1_1-"}
    for name, count in matched.items():
        assert count == pytest.approx(flowjo[name], rel=1e-3), name
    uncompensated = flowjo_export.apply(sample, compensation=None)
    nk_neg = next(
        g.id
        for g in flowjo_export.gates
        if keys.get(g.min[0] if isinstance(g, G.RectangleGate) else None) == "NK1_1-"
    )
    assert uncompensated.count(nk_neg) < 0.6 * flowjo["NK1_1-"]


# --- FlowKit reads cytokit's export -------------------------------------------------------------


@pytest.mark.corpus
def test_flowkit_reads_the_export(tmp_path):
    fk = pytest.importorskip("flowkit")
    data_path = need_corpus(naive.GATE_REF / "data1.fcs")
    strategy = read_gatingml(need_corpus(GML / "gml_all_gates.xml"))
    out = write_gatingml(strategy, tmp_path / "cytokit.xml")
    fk_result = fk.parse_gating_xml(str(out)).gate_sample(fk.Sample(str(data_path)))
    ours = strategy.apply(cytokit.read_fcs(data_path))
    for p in strategy.populations:
        np.testing.assert_array_equal(
            np.asarray(fk_result.get_gate_membership(p.id), dtype=bool),
            ours.membership(p.id),
            err_msg=p.id,
        )
