"""Gating-ML 2.0 import: the ISAC compliance suite and real producers' documents.

* Every truth file (exact per-event membership) from its single-gate document
  and from ``gml_all_gates.xml`` (plus FlowKit's ParQuadRect document; its
  Ellipsoid3D one is refused: its matrix is no covariance), on data1.fcs read by
  `read_fcs` and on FlowIO's truth array.
* FlowKit's extra documents without truth, transformation bounds, matrices
  given inverted.
* FlowJo's own Gating-ML export (no compensation-ref, ``Comp-`` channels) loads
  and matches FlowJo's counts where its gates are those of the workspace.
"""

from __future__ import annotations

import csv
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import gatingml_cases
import naive_gates as naive
import numpy as np
import pytest
from gatingml_cases import (
    CASES,
    CORPUS,
    FLOWSOM,
    GML,
    NO_COVARIANCE,
    NS,
    need_corpus,
)

import cytokit
from cytokit import gating as G
from cytokit.errors import GatingError
from cytokit.gating.gatingml import read_gatingml, write_gatingml


@pytest.fixture(scope="module", params=["read_fcs", "flowio_truth"])
def data1(request):
    """data1.fcs as scale values: from cytokit.read_fcs, and from FlowIO's truth array."""
    return gatingml_cases.data1(request.param)


GATED = [c for c in CASES if c[2] != NO_COVARIANCE]


# --- the ISAC compliance suite ------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(("truth", "gid", "doc", "in_all"), GATED, ids=[c[0] for c in GATED])
def test_compliance_single_gate_document(data1, truth, gid, doc, in_all):
    strategy = read_gatingml(need_corpus(GML / doc))
    result = strategy.apply(data1)
    want = naive.truth(truth)
    np.testing.assert_array_equal(result.membership(gid), want)
    assert result.count(gid) == want.sum()


@pytest.mark.corpus
def test_a_document_whose_ellipsoid_has_no_covariance_is_refused():
    """FlowKit's Ellipsoid3D: a gate on that matrix is unbounded (FlowKit counts 4191 events)."""
    path = need_corpus(GML / NO_COVARIANCE)
    with pytest.raises(
        GatingError,
        match=rf"^{re.escape(str(path))}, line \d+, <gating:EllipsoidGate id=\"Ellipsoid3D\">: "
        r"gate 'Ellipsoid3D': covariance matrix \[\[2.5, 7.5, 17.5\], .* is not symmetric: row 0 "
        r"column 2 is 17.5 but row 2 column 0 is 15.5; a covariance matrix is symmetric",
    ):
        read_gatingml(path)


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
