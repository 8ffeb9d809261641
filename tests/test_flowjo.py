"""FlowJo workspace import, checked against FlowJo's own counts in the corpus workspaces."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath

import cytokit
from cytokit import GatingError
from cytokit.gating import (
    FCS,
    UNCOMPENSATED,
    BiexTransform,
    BooleanGate,
    EllipsoidGate,
    LogicleTransform,
    PolygonGate,
    RectangleGate,
    flowjo,
    load_strategy,
)
from cytokit.gating.flowjo.gates import ellipse_in_display

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
FK = CORPUS / "flowkit" / "data"
DIAMOND = FK / "simple_diamond_example"
LINE = FK / "simple_line_example"
EIGHT = FK / "8_color_data_set"
FLOWSOM = CORPUS / "github" / "SofieVG_FlowSOM" / "inst" / "extdata"
V9 = CORPUS / "github" / "RGLab_flowWorkspaceData" / "inst" / "extdata"

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module", autouse=True)
def _corpus():
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")


def flowjo_truth(wsp: Path) -> pd.DataFrame:
    """FlowJo's counts for `wsp` from derived/wsp_counts (made from the workspace's count=)."""
    rel = wsp.relative_to(CORPUS).as_posix().replace("/", "__")
    df = pd.read_csv(CORPUS / "derived" / "wsp_counts" / f"{rel}.counts.csv")
    return df[df.node_type != "SampleNode"]


def gate_counts(wsp: Path, fcs: Path, **which) -> tuple[flowjo.Workspace, pd.DataFrame]:
    ws = flowjo.load_workspace(wsp)
    result = ws.strategy(**which).apply(cytokit.read_fcs(fcs))
    sample = which.get("sample", ws.samples[0].id)
    return ws, ws.compare_counts(result, sample)


# -- FlowJo's counts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "wsp, fcs",
    [
        (DIAMOND / "simple_diamond_example_quad_gate.wsp", DIAMOND / "test_data_diamond_01.fcs"),
        (DIAMOND / "test_data_diamond_asinh_rect.wsp", DIAMOND / "test_data_diamond_01.fcs"),
        (DIAMOND / "test_data_diamond_asinh_rect2.wsp", DIAMOND / "test_data_diamond_01.fcs"),
        (DIAMOND / "test_data_diamond_biex_rect.wsp", DIAMOND / "test_data_diamond_01.fcs"),
        (LINE / "single_ellipse_51_events.wsp", LINE / "data_set_simple_line_100.fcs"),
    ],
    ids=lambda p: p.stem,
)
def test_counts_equal_flowjo_exactly(wsp, fcs):
    _, cmp = gate_counts(wsp, fcs)
    truth = flowjo_truth(wsp).set_index("population_path")["flowjo_count"]
    assert len(cmp) == len(truth)
    for row in cmp.itertuples():
        assert row.flowjo == truth[row.population_path]
        assert row.cytokit == row.flowjo, row.population_path


def test_flowsom_counts_within_tolerance_of_flowjo():
    wsp = FLOWSOM / "gating.wsp"
    _, cmp = gate_counts(wsp, FLOWSOM / "68983.fcs")
    truth = flowjo_truth(wsp)
    assert sorted(cmp.population_path) == sorted(truth.population_path)
    off = cmp[cmp.difference.abs() > cmp.tolerance]
    assert off.empty, off.to_string()
    # 68983.fcs holds the events of the lymphocyte gate as another program drew it
    # (all 19225 lie inside the polygon); FlowJo's own count was 19212.
    assert cmp.difference.abs().max() <= 13
    exact = cmp.difference == 0
    assert exact.sum() >= 5


def test_flowsom_dimensions_are_compensated_biex_detectors():
    st = flowjo.read_workspace_strategy(FLOWSOM / "gating.wsp")
    g = st.gate("/Lymphocytes/Singlets/Singlets2/NK1_1+")
    pe, fsc = g.dims
    assert pe.channel == "PE-A" and pe.compensation == FCS
    assert pe.transform == BiexTransform(
        negative=0.0, width=-100.0, positive=4.418539922, max_value=262144.0
    )
    assert fsc.channel == "FSC-A" and fsc.compensation == UNCOMPENSATED and fsc.transform is None
    assert st.matrices == {}


def test_named_matrix_becomes_a_spectrum_matrix_with_the_same_counts(tmp_path):
    text = (FLOWSOM / "gating.wsp").read_text()
    renamed = tmp_path / "named.wsp"
    renamed.write_text(text.replace('name="Acquisition-defined"', 'name="Lab matrix"'))
    ws = flowjo.load_workspace(renamed)
    st = ws.strategy()
    assert list(st.matrices) == ["Lab matrix"]
    m = st.matrices["Lab matrix"]
    assert m.detectors[0] == "FITC-A" and m.matrix[0, 2] == pytest.approx(0.7135625482)
    dims = st.gate("/Lymphocytes/Singlets/Singlets2/NK1_1+").dims
    assert dims[0].compensation == "Lab matrix"
    sample = cytokit.read_fcs(FLOWSOM / "68983.fcs")
    named = st.apply(sample, membership=False).counts.set_index("gate_path")["count"]
    own = flowjo.read_workspace_strategy(FLOWSOM / "gating.wsp").apply(sample, membership=False)
    # The workspace's copy of the matrix is rounded to 10 digits: same counts.
    assert named.to_dict() == own.counts.set_index("gate_path")["count"].to_dict()


# -- structure of every corpus workspace -------------------------------------------------

WORKSPACES = [*sorted((CORPUS / "flowkit").rglob("*.wsp")), FLOWSOM / "gating.wsp"]


@pytest.mark.parametrize("wsp", WORKSPACES, ids=lambda p: p.stem)
def test_tree_matches_flowjo_population_list(wsp):
    ws = flowjo.load_workspace(wsp)
    truth = flowjo_truth(wsp)
    mine = ws.flowjo_counts()
    key = ["sample", "population_path"]
    merged = truth.merge(mine, on=key, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    fj = merged["flowjo_count"].fillna(-1).astype(int)
    assert (fj == merged["count"].fillna(-1).astype(int)).all()
    assert (merged.node_type == merged.node).all()
    pops = merged[merged.node == "Population"]
    assert (pops.gate_type_x == pops.gate_type_y).all()
    bools = merged[merged.node != "Population"]
    assert (bools.gate_type_y == bools.node.str[:-4].str.lower()).all()
    if wsp.stem == "8_color_ICS_dot_gate_name":
        return
    for s in ws.samples:
        st = ws.strategy(sample=s.id)
        paths = [p.path for p in s.populations]
        assert sorted(st.paths) == sorted(paths)
        for p in s.populations:
            assert st.population(p.path).name == p.name
    assert ws.unsupported == [] or all("group" in i.owner for i in ws.unsupported)


@pytest.mark.parametrize("wsp", sorted(EIGHT.glob("*.wsp")), ids=lambda p: p.stem)
def test_eight_colour_transforms_and_compensation(wsp):
    ws = flowjo.load_workspace(wsp)
    for s in ws.samples:
        assert len(s.transforms) == 23
        kinds = {t.kind for t in s.transforms.values()}
        assert kinds in ({"linear", "logicle"}, {"linear", "biex"})
        assert s.compensation.name == "Acquisition-defined"
        assert s.compensation.prefix == "Comp-" and len(s.compensation.detectors) == 8
        assert s.uri.endswith(s.name) and s.file_name == s.name
        assert s.event_count == s.count


def test_eight_colour_gate_types():
    ws = flowjo.load_workspace(EIGHT / "8_color_ICS_boolean_gate_testing.wsp")
    st = ws.strategy(sample="101_DEN084Y5_15_E03_009_clean.fcs")
    cd4 = "/Time/Singlets/aAmine-/CD3+/CD4+"
    g = st.gate(f"{cd4}/IL2+-")
    assert isinstance(g, BooleanGate) and g.op == "not" and g.parent == cd4
    assert g.operands == (f"{cd4}/IL2+",)
    g = st.gate(f"{cd4}/CD107a+ or IFNg+")
    assert g.op == "or" and g.operands == (f"{cd4}/CD107a+", f"{cd4}/IFNg+")
    assert st.gate(f"{cd4}/CD107a+ & IFNg+").op == "and"
    child = st.population("/Time/Singlets/aAmine-/CD3+/CD8+/TNFa+-/CD107a+")
    assert child.parent == "/Time/Singlets/aAmine-/CD3+/CD8+/TNFa+-"
    poly = st.gate(cd4)
    assert isinstance(poly, PolygonGate)
    assert [d.channel for d in poly.dims] == ["CD4 PE-Cy7 FLR-A", "CD8 PerCP-Cy55 FLR-A"]
    assert poly.dims[0].transform == LogicleTransform(T=262144, W=1, M=4.418539922, A=0)
    assert all(d.compensation == FCS for d in poly.dims)
    rect = st.gate(f"{cd4}/CD107a+")
    assert isinstance(rect, RectangleGate)
    # max 1394738.5 is beyond the logicle display (T = 262144): the side is open.
    assert rect.max[1] is None and rect.min[1] == pytest.approx(
        float(LogicleTransform(T=262144, W=1, M=4.418539922, A=0).apply([3979.6330566406])[0])
    )


def test_polygons_match_flowkit_conversion():
    fk = pytest.importorskip("flowkit")
    wsp = EIGHT / "8_color_ICS.wsp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fws = fk.Workspace(str(wsp), load_missing_file_data=True)
    ws = flowjo.load_workspace(wsp)
    name = "101_DEN084Y5_15_E03_009_clean.fcs"
    st = ws.strategy(sample=name)
    fgs = fws.get_gating_strategy(name)
    n = 0
    for gate_id, gate_path in fgs.get_gate_ids():
        theirs = fgs.get_gate(gate_id, gate_path)
        mine = st.gate("/" + "/".join([*gate_path[1:], gate_id]))
        if isinstance(mine, PolygonGate):
            # FlowKit puts linear axes through flin (x / 262144 here); cytokit keeps data values.
            scale = [262144.0 if d.transform is None else 1.0 for d in mine.dims]
            got = np.asarray(mine.vertices) / scale
            np.testing.assert_allclose(got, theirs.vertices, rtol=1e-9, atol=1e-12)
            assert [d.channel for d in mine.dims] == [d.id for d in theirs.dimensions]
            n += 1
    assert n == 5


def test_time_gate_uses_flowjo_gain_and_timestep():
    ws = flowjo.load_workspace(EIGHT / "8_color_ICS.wsp")
    s = ws.sample("101_DEN084Y5_15_E03_009_clean.fcs")
    assert s.transforms["Time"].gain == pytest.approx(0.0100853049)
    g = ws.strategy(sample=s.id).gate("/Time")
    assert g.dims[0].channel == "Time" and g.dims[0].transform is None
    # FlowJo's time is stored value × gain; cytokit's is stored value × $TIMESTEP.
    assert g.min[0] == pytest.approx(1.2799999714 * 0.01 / 0.0100853049)
    assert g.max == (None, None)  # both beyond the display range (72 s; 262144)


def test_ellipse_matches_flowkit_polygon_and_flowjo_edges():
    fk = pytest.importorskip("flowkit")
    wsp = EIGHT / "8_color_ICS_with_ellipse.wsp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fws = fk.Workspace(str(wsp), load_missing_file_data=True)
    name = "101_DEN084Y5_15_E03_009_clean.fcs"
    path = ("root", "Time", "Singlets", "aAmine-", "CD3+")
    theirs = fws.get_gating_strategy(name).get_gate("ellipse1", path)
    mine = (
        flowjo.load_workspace(wsp)
        .strategy(sample=name)
        .gate("/Time/Singlets/aAmine-/CD3+/ellipse1")
    )
    assert isinstance(mine, EllipsoidGate)
    v = np.asarray(theirs.vertices) - mine.mean
    d2 = np.einsum("ij,jk,ik->i", v, np.linalg.inv(mine.covariance), v)
    # FlowKit's polygon has its vertices on the same ellipse (its major axis comes
    # from one rounded edge point, ours from the mean of two).
    np.testing.assert_allclose(d2, 1.0, atol=0.03)


def test_ellipse_from_foci_and_edges_is_exact():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = sorted(rng.uniform(5, 60, 2))[::-1]
        t = rng.uniform(-math.pi, math.pi)
        c0 = rng.uniform(50, 200, 2)
        u = np.array([math.cos(t), math.sin(t)])
        v = np.array([-u[1], u[0]])
        f = math.sqrt(a * a - b * b)
        foci = np.array([c0 - f * u, c0 + f * u])
        edges = np.array([c0 + a * u, c0 - a * u, c0 + b * v, c0 - b * v])
        mean, cov = ellipse_in_display(foci, edges)
        np.testing.assert_allclose(mean, c0)
        want = a * a * np.outer(u, u) + b * b * np.outer(v, v)
        np.testing.assert_allclose(cov, want, rtol=1e-9, atol=1e-9)


# -- choosing a tree -----------------------------------------------------------------------


def test_load_strategy_dispatches_wsp_to_the_single_sample():
    st = load_strategy(DIAMOND / "simple_diamond_example_quad_gate.wsp")
    assert st.paths == (
        "/Q1: channel_A- , channel_B+",
        "/Q2: channel_A+ , channel_B+",
        "/Q3: channel_A+ , channel_B-",
        "/Q4: channel_A- , channel_B-",
    )
    assert st.source.endswith("simple_diamond_example_quad_gate.wsp")


def test_several_samples_without_all_samples_gates_is_a_clear_error():
    with pytest.raises(GatingError, match=r"3 samples.*sample= or group=.*'DEN'"):
        load_strategy(EIGHT / "8_color_ICS.wsp")
    st = load_strategy(EIGHT / "8_color_ICS.wsp", group="DEN")
    assert "/Time/Singlets/aAmine-/CD3+/CD4+/IFNg+" in st.paths
    with pytest.raises(GatingError, match=r"no sample 'nope'.*samples: '101_DEN"):
        load_strategy(EIGHT / "8_color_ICS.wsp", sample="nope")
    with pytest.raises(GatingError, match=r"group 'Beads' has no gates"):
        load_strategy(EIGHT / "8_color_ICS.wsp", group="Beads")


def test_group_template_and_custom_sample_gates():
    ws = flowjo.load_workspace(LINE / "simple_poly_and_rect.wsp")
    # The sample's gates come from the group template: same gates either way.
    assert ws.strategy(group="my_group").gates == ws.strategy(sample="1").gates
    ws = flowjo.load_workspace(LINE / "simple_poly_and_rect_v2_poly50.wsp")
    pops = ws.sample("1").populations
    assert [p.owning_group for p in pops] == ["", ""]  # the sample's own, edited gates
    assert ws.strategy(group="my_group").gates != ws.strategy(sample="1").gates
    sample = cytokit.read_fcs(LINE / "data_set_simple_line_100.fcs")
    r = ws.strategy(sample="1").apply(sample)
    # Linear axes: the polygon in data space is FlowJo's polygon.
    v = ws.strategy(sample="1").gate("/poly1").vertices
    inside = MplPath(np.asarray(v)).contains_points(sample.events.astype(np.float64))
    assert r.count("/poly1") == inside.sum() == 50
    assert r.count("/rect1") == 0


def test_dot_gate_name_is_rejected_clearly():
    wsp = EIGHT / "8_color_ICS_dot_gate_name.wsp"
    ws = flowjo.load_workspace(wsp)  # the document itself is fine
    assert any(i.path.endswith("/.") for i in ws.unsupported)
    with pytest.raises(
        GatingError,
        match=r"8_color_ICS_dot_gate_name\.wsp: sample '101_DEN084Y5_15_E03_009_clean\.fcs', "
        r"population '/Time/Singlets/aAmine-/CD3\+/CD4\+/\.' \(<Population> at line 2958\): "
        r"a population named '\.'.*rename it in FlowJo",
    ):
        ws.strategy(sample="101_DEN084Y5_15_E03_009_clean.fcs")
    with pytest.raises(GatingError, match=r"named '\.'"):
        load_strategy(wsp, group="DEN")
    with pytest.warns(UserWarning, match=r"left out 1 population"):
        st = ws.strategy(sample="101_DEN084Y5_15_E03_009_clean.fcs", skip_unsupported=True)
    assert not any(p.endswith("/.") for p in st.paths) and len(st.paths) == 13


def test_sample_without_gates_gives_an_empty_strategy():
    ws = flowjo.load_workspace(EIGHT / "8_color_ICS_sample_without_gates.wsp")
    assert len(ws.strategy(sample="101_DEN084Y5_15_E05_010_clean.fcs")) == 0
    assert len(ws.strategy(sample="101_DEN084Y5_15_E01_008_clean.fcs")) == 4


# -- Boolean nodes, on real events -------------------------------------------------------

_BOOL = """
<AndNode name="Q1 and Q2" count="0"><Dependents>
  <Dependent name="Q1: channel_A- , channel_B+" /><Dependent name="Q2: channel_A+ , channel_B+" />
</Dependents></AndNode>
<OrNode name="top" count="0"><Dependents>
  <Dependent name="Q1: channel_A- , channel_B+" /><Dependent name="Q2: channel_A+ , channel_B+" />
</Dependents><Subpopulations>
  <NotNode name="not Q2" count="0"><Dependents>
    <Dependent name="Q2: channel_A+ , channel_B+" /></Dependents></NotNode>
</Subpopulations></OrNode>
"""


def test_boolean_nodes_on_the_diamond(tmp_path):
    text = (DIAMOND / "simple_diamond_example_quad_gate.wsp").read_text()
    head, tail = text.rsplit("</Subpopulations>\n       </SampleNode>", 1)
    wsp = tmp_path / "bool.wsp"
    wsp.write_text(head + _BOOL + "</Subpopulations>\n       </SampleNode>" + tail)
    sample = cytokit.read_fcs(DIAMOND / "test_data_diamond_01.fcs")
    r = flowjo.read_workspace_strategy(wsp).apply(sample)
    x, y = sample.events[:, 0].astype(np.float64), sample.events[:, 1].astype(np.float64)
    q1 = (x < 49536.60093896714) & (y >= 49866.83420593368)
    q2 = (x >= 49536.60093896714) & (y >= 49866.83420593368)
    assert r.count("/Q1 and Q2") == 0
    np.testing.assert_array_equal(r.membership("/top"), q1 | q2)
    # NOT is evaluated inside its parent population (the OR), as FlowJo does.
    np.testing.assert_array_equal(r.membership("/top/not Q2"), q1)
    assert r.count("/top") == 49671 + 50596


def test_boolean_operand_that_does_not_exist(tmp_path):
    text = (DIAMOND / "simple_diamond_example_quad_gate.wsp").read_text()
    bad = _BOOL.replace(
        'Dependent name="Q2: channel_A+ , channel_B+" /></Dependents></NotNode>',
        'Dependent name="Q9" /></Dependents></NotNode>',
    )
    head, tail = text.rsplit("</Subpopulations>\n       </SampleNode>", 1)
    wsp = tmp_path / "bool.wsp"
    wsp.write_text(head + bad + "</Subpopulations>\n       </SampleNode>" + tail)
    with pytest.raises(
        GatingError, match=r"population '/top/not Q2' \(<NotNode> at line \d+\): operand 'Q9'"
    ):
        flowjo.read_workspace_strategy(wsp)


# -- unsupported and malformed input -----------------------------------------------------


def test_unsupported_transform_and_complement_are_named(tmp_path):
    text = (DIAMOND / "test_data_diamond_biex_rect.wsp").read_text()
    wsp = tmp_path / "odd.wsp"
    wsp.write_text(
        text.replace("<transforms:biex ", "<transforms:miltenyi ", 1).replace(
            "</transforms:biex>", "</transforms:miltenyi>", 1
        )
    )
    ws = flowjo.load_workspace(wsp)
    assert ws.samples[0].transforms["channel_A"].problem
    with pytest.raises(
        GatingError, match=r"population '/upper_right'.*'miltenyi' is not supported"
    ):
        ws.strategy()
    assert len(ws.unsupported) == 1 and "miltenyi" in ws.unsupported[0].reason
    wsp.write_text(text.replace('eventsInside="1"', 'eventsInside="0"'))
    with pytest.raises(GatingError, match=r"RectangleGate> at line \d+.*eventsInside=0"):
        flowjo.read_workspace_strategy(wsp)


def test_malformed_xml_names_line(tmp_path):
    text = (DIAMOND / "simple_diamond_example_quad_gate.wsp").read_text()
    wsp = tmp_path / "cut.wsp"
    wsp.write_text(text[: len(text) // 2])
    with pytest.raises(GatingError, match=r"cut\.wsp: not well-formed XML at line \d+, column \d+"):
        flowjo.load_workspace(wsp)
    bomb = tmp_path / "bomb.wsp"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE Workspace [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><Workspace version="20.0">&b;</Workspace>'
    )
    with pytest.raises(GatingError, match=r"bomb\.wsp: refused to read"):
        flowjo.load_workspace(bomb)
    other = tmp_path / "other.wsp"
    other.write_text('<?xml version="1.0"?><Gating-ML/>')
    with pytest.raises(GatingError, match=r"not <Workspace>: this is not a FlowJo workspace"):
        flowjo.load_workspace(other)
    with pytest.raises(GatingError, match="workspace file not found"):
        flowjo.load_workspace(tmp_path / "missing.wsp")


def test_bad_number_names_element_and_line(tmp_path):
    text = (DIAMOND / "test_data_diamond_biex_rect.wsp").read_text()
    wsp = tmp_path / "nan.wsp"
    wsp.write_text(text.replace('gating:max="127585.76474245574"', 'gating:max="12x"'))
    line = next(i for i, s in enumerate(wsp.read_text().splitlines(), 1) if '"12x"' in s)
    with pytest.raises(
        GatingError,
        match=rf"nan\.wsp, <dimension> at line {line}: attribute max='12x' is not a number",
    ):
        flowjo.read_workspace_strategy(wsp)


# -- matching samples to files -----------------------------------------------------------


def test_match_files_by_name_fil_and_event_count(tmp_path):
    ws = flowjo.load_workspace(FLOWSOM / "gating.wsp")
    (tmp_path / "moved").mkdir()
    moved = tmp_path / "moved" / "68983.fcs"
    moved.symlink_to(FLOWSOM / "68983.fcs")
    m = ws.match_files([moved, DIAMOND / "test_data_diamond_01.fcs"])
    assert m.complete and m.matched == {"1": moved} and m.how["1"] == "file name"
    assert m.unused == [DIAMOND / "test_data_diamond_01.fcs"]
    renamed = tmp_path / "renamed.fcs"
    renamed.symlink_to(FLOWSOM / "68983.fcs")
    m = ws.match_files([renamed])
    assert m.matched == {"1": renamed} and m.how["1"] == "$FIL"
    # The same name twice: the event count tells them apart.
    (tmp_path / "a").mkdir()
    decoy = tmp_path / "a" / "68983.fcs"
    decoy.symlink_to(DIAMOND / "test_data_diamond_01.fcs")
    m = ws.match_files([decoy, moved])
    assert m.matched == {"1": moved} and m.how["1"] == "file name + $TOT"
    m = ws.match_files([DIAMOND / "test_data_diamond_01.fcs"])
    assert not m.complete and m.missing == ["1"]
    assert re.search(r"MISSING '68983\.fcs' \(id 1\)", m.report())


def test_match_files_reports_ambiguous(tmp_path):
    ws = flowjo.load_workspace(DIAMOND / "test_data_diamond_biex_rect.wsp")
    copies = []
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        p = tmp_path / d / "test_data_diamond_01.fcs"
        p.symlink_to(DIAMOND / "test_data_diamond_01.fcs")
        copies.append(p)
    m = ws.match_files(copies)
    assert not m.complete and m.ambiguous == {"1": copies}
    assert "AMBIGUOUS 'test_data_diamond_01.fcs' (id 1): could be" in m.report()


# -- FlowJo 9 ------------------------------------------------------------------------------

A2004 = V9 / "A2004Analysis.xml"


def test_flowjo9_tree_matches_flowjo_population_list():
    ws = flowjo.load_workspace(A2004)
    assert ws.version == "9.2" and [s.id for s in ws.samples] == ["1", "2"]
    truth = flowjo_truth(A2004)
    mine = ws.flowjo_counts()
    mine["sample"] = mine["sample"] + "#sampleID=" + mine["sample_id"]
    merged = truth.merge(mine, on=["sample", "population_path"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == 38
    fj = merged["flowjo_count"].fillna(-1).astype(int)
    assert (fj == merged["count"].fillna(-1).astype(int)).all()
    for s in ws.samples:
        st = ws.strategy(sample=s.id)
        assert sorted(st.paths) == sorted(p.path for p in s.populations)
        assert st.gate("/Live/APC/mDC/IFNa+").dims[0].channel == "FITC-A"
        assert list(st.matrices) == ["A2004-A2005_06i"]
    with pytest.raises(GatingError, match=r"2 samples are called 'a2004_O1T2pb05i'; choose by id"):
        ws.sample("a2004_O1T2pb05i")
    magnetic = {i.path for i in ws.unsupported if "magnetic" in i.reason}
    assert magnetic == {"/Live/APC/B Cell", "/Live/Monocytes"}


def test_flowjo9_counts_within_tolerance_of_flowjo():
    ws = flowjo.load_workspace(A2004)
    fcs = V9 / "a2004_O1T2pb05i_A2_A02.fcs"
    m = ws.match_files([fcs])
    assert m.matched == {"2": fcs} and m.how["2"] == "$FIL" and m.missing == ["1"]
    cmp = ws.compare_counts(ws.strategy(sample="2").apply(cytokit.read_fcs(fcs)), "2")
    known = cmp[cmp.flowjo.notna()]
    assert len(known) == 18
    off = known[known.difference.abs() > known.tolerance]
    assert off.empty, off.to_string()
    assert (known.difference == 0).sum() >= 9


def test_flowjo9_polygon_is_flowjos_polygon_in_channels():
    """The data-value polygon has the same members as FlowJo's straight polygon in channels."""
    ws = flowjo.load_workspace(A2004)
    st = ws.strategy(sample="2")
    axes = ws.axes(ws.sample("2"))
    gate = st.gate("/Live/APC")
    ax = [axes.axis(n, "test") for n in ("<PerCP-CY5-5-A>", "<PE-CY7-A>")]
    shape = ws.sample("2").nodes[0].children[0].gate
    raw = np.array([[float(v.get("x")), float(v.get("y"))] for v in shape[0]])
    chan = np.column_stack([ax[0].channel(raw[:, 0]), ax[1].channel(raw[:, 1])])
    rng = np.random.default_rng(0)
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    pts = rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), size=(40_000, 2))
    pc = np.column_stack([ax[0].channel(pts[:, 0]), ax[1].channel(pts[:, 1])])
    want = MplPath(chan).contains_points(pc)
    got = MplPath(np.asarray(gate.vertices)).contains_points(pts)
    assert want.sum() > 2_000
    assert (want != got).sum() == 0


def test_flowjo9_through_load_strategy_and_find():
    fcs = cytokit.read_fcs(V9 / "a2004_O1T2pb05i_A2_A02.fcs")
    # Two samples, and the All Samples template has gates: that is the default.
    default = load_strategy(A2004)
    assert default.name == "All Samples" and len(default) == 19
    ws = flowjo.load_workspace(A2004)
    assert ws.find(fcs).id == "2"
    st = load_strategy(A2004, sample=fcs)
    assert st.paths == ws.strategy(sample="2").paths
    other = cytokit.read_fcs(DIAMOND / "test_data_diamond_01.fcs")
    with pytest.raises(GatingError, match=r"no sample matches test_data_diamond_01\.fcs"):
        ws.find(other)
