"""Gating-ML 2.0 export: exact round trips, schema validity, FlowKit reading cytokit's files."""

from __future__ import annotations

import importlib.util
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import gatingml_cases
import naive_gates as naive
import numpy as np
import pytest
from gatingml_cases import (
    GML,
    VALID_DOCUMENTS,
    assert_same_strategy,
    every_construct,
    need_corpus,
    synthetic_sample,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cytokit
from cytokit import gating as G
from cytokit.errors import GatingError
from cytokit.gating.gatingml import gatingml_bytes, read_gatingml, write_gatingml


@pytest.fixture(scope="module", params=["read_fcs", "flowio_truth"])
def data1(request):
    """data1.fcs as scale values: from cytokit.read_fcs, and from FlowIO's truth array."""
    return gatingml_cases.data1(request.param)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_sample()


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
    """A ratio named like a gate gets another transformation id; reading restores the name."""
    ratio = G.RatioTransform("FL1-A", "FL2-A")
    s = G.GatingStrategy(
        [G.RectangleGate(id="R", dims=(G.Dimension("R", ratio=ratio),), min=(0.5,), max=(2.0,))]
    )
    out = write_gatingml(s, tmp_path / "s.xml")
    assert 'transforms:id="R_2"' in out.read_text()
    again = read_gatingml(out)
    assert_same_strategy(s, again)
    np.testing.assert_array_equal(
        s.apply(synthetic).membership("R"), again.apply(synthetic).membership("R")
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    bounds=st.lists(st.tuples(finite, finite), min_size=1, max_size=3),
    vertices=st.lists(st.tuples(finite, finite), min_size=0, max_size=3),
)
def test_floats_round_trip_exactly(bounds, vertices):
    dims = tuple(G.Dimension(f"ch{j}") for j in range(len(bounds)))
    lo = tuple(min(a, b) for a, b in bounds)
    hi = tuple(max(a, b) for a, b in bounds)
    # a triangle first: a polygon whose vertices lie on one line is refused, not written
    vertices = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), *vertices]
    try:  # still on one line at the scale of a drawn vertex near the float range
        poly = G.PolygonGate(id="P", dims=(dims[0], G.Dimension("y")), vertices=tuple(vertices))
    except GatingError:
        assume(False)
    s = G.GatingStrategy([G.RectangleGate(id="R", dims=dims, min=lo, max=hi), poly])
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
    with pytest.raises(
        GatingError, match=r"'hi' is adaptive .*strategy\.fit\(sample\)\.to_gatingml"
    ):
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


# --- schema validity and FlowKit -----------------------------------------------------------------


@pytest.fixture(scope="module")
def gatingml_schema():
    """ISAC's Gating-ML 2.0 XML schema (the copy FlowKit ships), compiled by lxml."""
    etree = pytest.importorskip("lxml.etree")
    spec = importlib.util.find_spec("flowkit")
    xsd = None if spec is None else Path(spec.origin).parent / "_resources" / "Gating-ML.v2.0.xsd"
    if xsd is None or not xsd.exists():
        pytest.skip("the Gating-ML 2.0 XSD (shipped with flowkit) is not installed")
    schema = etree.XMLSchema(etree.parse(str(xsd)))

    def errors(path: Path) -> list[str]:
        ok = schema.validate(etree.parse(str(path)))
        return [] if ok else [f"line {e.line}: {e.message}" for e in schema.error_log]

    return errors


@pytest.mark.corpus
@pytest.mark.parametrize("doc", VALID_DOCUMENTS)
def test_export_is_schema_valid(tmp_path, gatingml_schema, doc):
    out = write_gatingml(read_gatingml(need_corpus(GML / doc)), tmp_path / "out.xml")
    assert gatingml_schema(out) == []


def test_every_construct_export_is_schema_valid(tmp_path, gatingml_schema):
    """Ids that are not xs:IDs ("Q1++", "Panel spill") are respelled; the validator is not vacuous."""
    out = every_construct().to_gatingml(tmp_path / "s.xml")
    assert gatingml_schema(out) == []
    bad = tmp_path / "bad.xml"
    bad.write_text(out.read_text().replace('gating:id="Q1__"', 'gating:id="Q1++"'))
    assert any("xs:ID" in e for e in gatingml_schema(bad))


def test_mixed_compensation_in_one_gate(synthetic):
    """Each dimension has its own compensation-ref (E3 mixes FCS and uncompensated)."""
    flowutils = pytest.importorskip("flowutils")
    gate = every_construct().gate("E3")
    ev = synthetic.events
    comp = ev[:, 2:5] @ np.linalg.inv(synthetic.spillover.matrix)
    cols = [
        flowutils.transforms.logicle(comp[:, [0]], [0], t=262144, m=4.5, w=0.5, a=0)[:, 0],
        flowutils.transforms.logicle(comp[:, [1]], [0], t=262144, m=4.5, w=0.5, a=0)[:, 0],
        flowutils.transforms.hyperlog(ev[:, [4]], [0], t=1e4, m=4.5, w=1, a=0)[:, 0],
    ]
    x = np.column_stack(cols) - np.array(gate.mean)
    q = np.einsum("ia,ab,ib->i", x, np.linalg.inv(np.array(gate.covariance)), x)
    got = G.GatingStrategy([gate]).apply(synthetic).membership("E3")
    clear = np.abs(q - gate.distance_square) > 1e-9
    assert got.sum() > 100
    np.testing.assert_array_equal(got[clear], (q <= gate.distance_square)[clear])


@pytest.fixture(scope="module")
def fk():
    return pytest.importorskip("flowkit")


@pytest.mark.corpus
def test_flowkit_reads_the_compliance_export(tmp_path, fk):
    data_path = need_corpus(naive.GATE_REF / "data1.fcs")
    strategy = read_gatingml(need_corpus(GML / "gml_all_gates.xml"))
    out = write_gatingml(strategy, tmp_path / "cytokit.xml")
    fk_result = fk.parse_gating_xml(str(out)).gate_sample(fk.Sample(str(data_path)))
    ours = strategy.apply(cytokit.read_fcs(data_path))
    for p in strategy.populations:
        theirs = np.asarray(fk_result.get_gate_membership(p.id), dtype=bool)
        np.testing.assert_array_equal(theirs, ours.membership(p.id), err_msg=p.id)


def _document_ids(path: Path) -> dict[str, str]:
    """cytokit population id -> the id the document gives it (they differ when respelled)."""
    g, d = (
        "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}",
        "{http://www.isac-net.org/std/Gating-ML/v2.0/datatypes}",
    )
    c = "{urn:cytokit:gating-ml:1}"
    out = {}
    for el in ET.parse(path).getroot():
        if el.get(g + "id") is None:
            continue
        for m in el.iterfind(f"{d}custom_info/{c}quadrant"):
            out[m.get("id")] = m.get("ref")
        pop = el.find(f"{d}custom_info/{c}population")
        out.setdefault(el.get(g + "id") if pop is None else pop.get("id"), el.get(g + "id"))
    return out


# FlowKit takes log10 of negative values in flog and lets numpy warn.
@pytest.mark.filterwarnings("ignore:invalid value encountered in log10:RuntimeWarning")
def test_flowkit_gates_every_construct_alike(tmp_path, fk, synthetic):
    """FlowKit reads the export of a strategy using every construct and gates the same events.

    Two FlowKit 1.3.2 limitations are stepped around (cytokit follows the
    standard in both, see test_mixed_compensation_in_one_gate): a ratio
    dimension needs both min and max, and one compensation-ref serves all of a
    gate's dimensions.
    """
    s = every_construct()
    e3 = s.gate("E3")
    s = s.replace_gates(
        [
            replace(s.gate("R-ratio"), max=(50.0,)),
            replace(s.gate("R-ratio-log"), min=(-5.0,)),
            replace(e3, dims=(*e3.dims[:2], replace(e3.dims[2], compensation=G.FCS))),
        ]
    )
    out = s.to_gatingml(tmp_path / "s.xml")
    fcs = cytokit.write_fcs(tmp_path / "synthetic.fcs", synthetic)
    ours = s.apply(cytokit.read_fcs(fcs))
    theirs = fk.parse_gating_xml(str(out)).gate_sample(fk.Sample(str(fcs)))
    ids = _document_ids(out)
    assert ids["Q1++"] == "Q1__"
    for p in s.populations:
        got = np.asarray(theirs.get_gate_membership(ids.get(p.id, p.id)), dtype=bool)
        np.testing.assert_array_equal(got, ours.membership(p.id), err_msg=p.id)
        assert ours.count(p.id) > 0, p.id


def test_a_rectangle_dimension_open_on_both_sides_round_trips(tmp_path, synthetic):
    """A dimension with no bound is no condition (a FlowJo time gate's y axis): Gating-ML
    2.0 cannot write it, so it is left out, and the document reads back to the same
    memberships."""
    names = [c.name for c in synthetic.channels]
    a, b = G.Dimension(names[0]), G.Dimension(names[1])
    lo = float(np.median(synthetic.events[:, 0]))
    gate = G.RectangleGate(id="Cells", dims=(a, b), min=(lo, None), max=(None, None))
    original = G.GatingStrategy([gate], name="open")
    again = read_gatingml(original.to_gatingml(tmp_path / "open.xml"))
    assert again.gate("Cells").dims == (a,)
    np.testing.assert_array_equal(
        original.apply(synthetic).membership("Cells"), again.apply(synthetic).membership("Cells")
    )
    assert 0 < original.apply(synthetic).membership("Cells").sum() < synthetic.n_events


@pytest.mark.filterwarnings("ignore:invalid value encountered in log10:RuntimeWarning")
def test_the_sample_study_strategy_exports_valid_gatingml(tmp_path, gatingml_schema, fk):
    """The README's export: sample_data's strategy fitted to a file. Its one-operand AND
    (HLA-A2+ under NK) is written with the operand twice, as the schema wants two or
    more; cytokit reads it back as it was and gates the same events, FlowKit reads it."""
    root = Path(__file__).resolve().parents[1] / "sample_data"
    fcs = root / "fcs" / "P01_day007.fcs"
    fitted = G.load_strategy(root / "strategy.yaml").fit(cytokit.read_fcs(fcs))
    single = [g for g in fitted.gates if isinstance(g, G.BooleanGate) and len(g.operands) == 1]
    assert any(g.op == "and" for g in single)  # the case this test is about
    out = fitted.to_gatingml(tmp_path / "s.xml")
    assert gatingml_schema(out) == []
    ours = fitted.apply(cytokit.read_fcs(fcs))
    back = read_gatingml(out)
    again = back.apply(cytokit.read_fcs(fcs))
    for g in single:
        assert back.gate(g.id).operands == g.operands  # read once again
    for p in fitted.populations:
        np.testing.assert_array_equal(again.membership(p.id), ours.membership(p.id), p.id)
    # FlowKit reads it (it refused the one-operand and); it cannot gate this strategy,
    # whose CD3 x CD56 quadrant splits CD56 at two places (one per side of CD3)
    theirs = {g[0] for g in fk.parse_gating_xml(str(out)).get_gate_ids()}
    ids = _document_ids(out)
    assert {ids.get(g.id, g.id) for g in single} <= theirs


@pytest.mark.filterwarnings("ignore:invalid value encountered in log10:RuntimeWarning")
def test_a_strategy_read_back_answers_to_the_ids_in_its_file(tmp_path):
    """An id that is no xs:ID ('/Lymphocytes/Singlets/Live') is written respelled
    ('_Lymphocytes_Singlets_Live'), the id FlowKit and a reader of the file know: read back,
    every population answers to its id in the file, with the count of before."""
    root = Path(__file__).resolve().parents[1] / "sample_data"
    sample = cytokit.read_fcs(root / "fcs" / "P01_day007.fcs")
    fitted = G.load_strategy(root / "strategy.yaml").fit(sample)
    out = fitted.to_gatingml(tmp_path / "fitted.xml")
    ours = fitted.apply(sample)
    back = G.load_strategy(out)
    again = back.apply(sample)
    ids = _document_ids(out)
    assert ids["/Lymphocytes/Singlets/Live"] == "_Lymphocytes_Singlets_Live"
    for p in fitted.populations:
        doc_id = ids.get(p.id, p.id)
        assert back.population(doc_id).path == p.path, doc_id
        assert again.count(doc_id) == ours.count(p.id), doc_id
    # cytokit's own ids still name them
    assert again.count("/Lymphocytes/Singlets/Live") == ours.count("/Lymphocytes/Singlets/Live")
