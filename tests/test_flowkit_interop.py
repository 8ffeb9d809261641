"""FlowKit objects through cytokit: the counts equal FlowKit's own ``gate_sample``.

* Every Gating-ML document of the ISAC compliance suite, parsed by FlowKit, converted
  with `from_flowkit` and applied to `sample_from_flowkit`'s sample: per-event
  membership equal to FlowKit's and to the suite's truth files.
* Every FlowJo workspace of the corpus whose FCS files are there: FlowKit's
  ``Workspace`` analysis against cytokit on the converted objects, per gate.
* The reverse (`to_flowkit`): cytokit's reading of ``gml_all_gates.xml`` gated by
  FlowKit gives the truth files' counts.
"""

from __future__ import annotations

from pathlib import Path

import naive_gates as naive
import numpy as np
import pandas as pd
import pytest
from gatingml_cases import CASES, DOCUMENTS, GML, NO_COVARIANCE, need_corpus

import cytokit
from cytokit import gating as G
from cytokit.errors import GatingError
from cytokit.gating import from_flowkit, sample_from_flowkit, to_flowkit
from cytokit.gating.flowkit_objects import flowkit_gate_path

fk = pytest.importorskip("flowkit")

CORPUS = naive.CORPUS
FKDATA = CORPUS / "flowkit" / "data"
DATA1 = naive.GATE_REF / "data1.fcs"

#: FlowJo workspaces of the corpus and the FCS files their samples are (those present).
WORKSPACES = {
    "simple_diamond_example_quad_gate.wsp": "simple_diamond_example/test_data_diamond_01.fcs",
    "test_data_diamond_asinh_rect.wsp": "simple_diamond_example/test_data_diamond_01.fcs",
    "test_data_diamond_asinh_rect2.wsp": "simple_diamond_example/test_data_diamond_01.fcs",
    "test_data_diamond_biex_rect.wsp": "simple_diamond_example/test_data_diamond_01.fcs",
    "simple_poly_and_rect.wsp": "simple_line_example/data_set_simple_line_100.fcs",
    "simple_poly_and_rect_v2_poly50.wsp": "simple_line_example/data_set_simple_line_100.fcs",
    "single_ellipse_51_events.wsp": "simple_line_example/data_set_simple_line_100.fcs",
}
FLOWSOM = CORPUS / "github" / "SofieVG_FlowSOM" / "inst" / "extdata"


def _corpus_workspaces() -> list[Path]:
    """Every FlowJo workspace of the corpus: the FlowJo 10 .wsp files and FlowJo 9's XML."""
    if not CORPUS.is_dir():
        return []
    return [*sorted(CORPUS.glob("**/*.wsp")), V9]


V9 = CORPUS / "github" / "RGLab_flowWorkspaceData" / "inst" / "extdata" / "A2004Analysis.xml"


def fk_counts(report: pd.DataFrame) -> dict[str, int]:
    """FlowKit's report as {cytokit id: count} (ids are FlowKit paths; see the module)."""
    out = {}
    for row in report.itertuples():
        path = tuple(row.gate_path)
        if isinstance(row.quadrant_parent, str):
            path = (*path, row.quadrant_parent)
        out["/" + "/".join([*path[1:], row.gate_name])] = int(row.count)
    return out


def ck_counts(result) -> dict[str, int]:
    return {p.id: int(result.count(p.id)) for p in result.strategy.populations}


@pytest.fixture(scope="module")
def fk_data1():
    return fk.Sample(str(need_corpus(DATA1)))


# -- samples ----------------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(
    "rel",
    [
        "flowkit/data/gate_ref/data1.fcs",
        "github/SofieVG_FlowSOM/inst/extdata/68983.fcs",
        "flowkit/data/test_comp_example.fcs",
        "flowkit/data/100715.fcs",
    ],
)
def test_sample_equals_read_fcs(rel):
    path = need_corpus(CORPUS / rel)
    ours = cytokit.read_fcs(path)
    theirs = sample_from_flowkit(fk.Sample(str(path), ignore_offset_error=True))
    assert theirs.channel_names == ours.channel_names
    assert theirs.markers == ours.markers
    assert theirs.scaled and theirs.n_events == ours.n_events
    # FlowKit keeps float64 of the same values (float32 files: exactly those floats)
    np.testing.assert_allclose(theirs.events, ours.events, rtol=1e-6, atol=0)
    for c_ours, c_theirs in zip(ours.channels, theirs.channels, strict=True):
        assert (c_theirs.range, c_theirs.gain, c_theirs.log_decades) == (
            c_ours.range,
            c_ours.gain,
            c_ours.log_decades,
        )
    for key in ("$TOT", "$PAR", "$P1N", "$DATATYPE"):
        assert theirs.keyword(key) == ours.keyword(key)
    assert theirs.spillover == ours.spillover
    assert theirs.version == ours.version


def test_sample_refuses_other_objects():
    with pytest.raises(TypeError, match=r"flowkit\.Sample"):
        sample_from_flowkit(np.zeros((3, 2)))


def test_unpreprocessed_sample_says_stored_values(tmp_path):
    s = fk.Sample(
        np.arange(12, dtype=float).reshape(6, 2), sample_id="a", channel_labels=["A", "B"]
    )
    ck = sample_from_flowkit(s)
    assert ck.scaled is bool(s.is_preprocessed)
    assert np.shares_memory(ck.events, s.get_events(source="raw"))
    assert ck.channel_names == ("A", "B")


# -- the Gating-ML compliance suite ------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize("doc", DOCUMENTS)
def test_gatingml_counts_equal_flowkit(doc, fk_data1):
    try:
        gs = fk.parse_gating_xml(str(need_corpus(GML / doc)))
    except ValueError as exc:  # gml_range_gate_attr_testing.xml: a malformed <sample> wrapper
        pytest.skip(f"corpus: FlowKit itself does not read {doc} ({exc}); nothing to compare")
    if doc == NO_COVARIANCE:  # FlowKit gates on a matrix that is no covariance; cytokit refuses
        with pytest.raises(GatingError, match="is not symmetric"):
            from_flowkit(gs)
        return
    theirs = gs.gate_sample(fk_data1)
    strategy = from_flowkit(gs)
    result = strategy.apply(sample_from_flowkit(fk_data1))
    want = fk_counts(theirs.report)
    assert ck_counts(result) == want
    for p in strategy.populations:
        gate_path = tuple(["root", *p.id.strip("/").split("/")[:-1]])
        m = theirs.get_gate_membership(p.id.rsplit("/", 1)[-1], gate_path=gate_path)
        np.testing.assert_array_equal(result.membership(p.id), m)


@pytest.mark.corpus
def test_gatingml_truth_through_flowkit_objects(fk_data1):
    gs = fk.parse_gating_xml(str(need_corpus(GML / "gml_all_gates.xml")))
    result = from_flowkit(gs).apply(sample_from_flowkit(fk_data1))
    checked = 0
    for truth, gid, _doc, in_all in CASES:
        if not in_all:
            continue
        np.testing.assert_array_equal(result.membership(gid), naive.truth(truth))
        checked += 1
    assert checked == 49


@pytest.mark.corpus
def test_to_flowkit_gates_the_truth():
    """cytokit's own reading of the ISAC document, handed to FlowKit, gives the truth."""
    ours = G.read_gatingml(need_corpus(GML / "gml_all_gates.xml"))
    gs = to_flowkit(ours)
    theirs = gs.gate_sample(fk.Sample(str(DATA1)))
    for truth, gid, _doc, in_all in CASES:
        if not in_all:
            continue
        name, path = flowkit_gate_path(ours, gid)
        np.testing.assert_array_equal(
            theirs.get_gate_membership(name, gate_path=path), naive.truth(truth), err_msg=gid
        )
    back = from_flowkit(gs)
    assert sorted(p.path for p in back.populations) == sorted(p.path for p in ours.populations)


# -- FlowJo workspaces -----------------------------------------------------------------------


def _workspace_case(wsp: Path) -> tuple[Path, Path]:
    if wsp == V9:
        pytest.skip(
            "corpus: A2004Analysis.xml is a FlowJo 9 workspace, which FlowKit 1.3 does not read "
            "(FlowJo 10 or higher only); cytokit's own reader is checked on it in test_flowjo.py"
        )
    if wsp.name in WORKSPACES:
        return wsp, FKDATA / WORKSPACES[wsp.name]
    if wsp == FLOWSOM / "gating.wsp":
        return wsp, FLOWSOM / "68983.fcs"
    pytest.skip(
        f"corpus: the FCS files of {wsp.relative_to(CORPUS)} are not in this copy of the corpus "
        "(its MANIFEST lists them as left out), so there is nothing to gate"
    )


@pytest.mark.corpus
@pytest.mark.parametrize(
    "wsp", _corpus_workspaces(), ids=lambda p: p.name if isinstance(p, Path) else str(p)
)
def test_workspace_counts_equal_flowkit(wsp):
    wsp, fcs = _workspace_case(wsp)
    ws = fk.Workspace(str(wsp), fcs_samples=str(need_corpus(fcs)))
    sid = ws.get_sample_ids()[0]
    ws.analyze_samples(sample_id=sid, use_mp=False)
    want = fk_counts(ws.get_gating_results(sid).report)
    strategy = from_flowkit(ws, sample_id=sid)
    result = strategy.apply(sample_from_flowkit(ws.get_sample(sid)))
    assert ck_counts(result) == want


@pytest.mark.corpus
@pytest.mark.parametrize("wsp", [p for p in _corpus_workspaces() if p != V9], ids=lambda p: p.name)
def test_workspace_tree_equals_cytokits_own_reader(wsp):
    """Without FCS files too: FlowKit's reading of each sample's tree, converted, has the
    populations cytokit's FlowJo reader finds (quadrant gates aside, which FlowJo stores as
    rectangles: both read them as such)."""
    try:
        ws = fk.Workspace(str(wsp), load_missing_file_data=True)
    except fk.exceptions.GateTreeError as exc:  # 8_color_ICS_dot_gate_name.wsp: a gate named '.'
        pytest.skip(f"corpus: FlowKit itself refuses {wsp.name} ({exc}); nothing to convert")
    ours = G.load_workspace(wsp)
    checked = 0
    for sid in ws.get_sample_ids(loaded_only=False):
        try:
            theirs = from_flowkit(ws, sample_id=sid)
        except GatingError as exc:
            assert "complement" in str(exc) or "log axis" in str(exc), exc
            continue
        mine = ours.strategy(sample=sid, skip_unsupported=True)
        assert sorted(p.path for p in theirs.populations) == sorted(
            p.path for p in mine.populations
        ), sid
        checked += 1
    assert checked >= 1


@pytest.mark.corpus
def test_workspace_named_matrix_is_flowkits_copy():
    ws = fk.Workspace(
        str(need_corpus(FLOWSOM / "gating.wsp")), fcs_samples=str(FLOWSOM / "68983.fcs")
    )
    st = from_flowkit(ws)
    m = st.matrices["Acquisition-defined"]
    np.testing.assert_array_equal(m.matrix, ws.get_comp_matrix("68983.fcs").matrix)
    assert st.gate("/Lymphocytes/Singlets/Singlets2/NK1_1+").dims[0].compensation == (
        "Acquisition-defined"
    )


# -- doors compared, and refusals --------------------------------------------------------------


@pytest.mark.corpus
def test_session_strategy_and_gatingml_reader_agree(fk_data1):
    """A FlowKit Session, its GatingStrategy and cytokit's own reader: one answer."""
    doc = str(need_corpus(GML / "gml_all_gates.xml"))
    session = fk.Session(gating_strategy=doc)
    a = from_flowkit(session).apply(sample_from_flowkit(fk_data1))
    b = from_flowkit(fk.parse_gating_xml(doc)).apply(sample_from_flowkit(fk_data1))
    c = G.read_gatingml(doc).apply(cytokit.read_fcs(DATA1))
    assert ck_counts(a) == ck_counts(b)
    by_name = {p.name: int(c.count(p.id)) for p in c.strategy.populations}
    assert {p.name: int(a.count(p.id)) for p in a.strategy.populations} == by_name


def test_adaptive_strategy_is_refused_until_fitted_then_gates_alike():
    """sample_data's adaptive strategy: refused as it is; fitted to a file, FlowKit's
    gate_sample on the same file counts what cytokit counts."""
    root = Path(__file__).resolve().parents[1] / "sample_data"
    strategy = G.load_strategy(root / "strategy.yaml")
    with pytest.raises(GatingError, match=r"fit them to a sample first"):
        to_flowkit(strategy)
    path = root / "fcs" / "P01_day007.fcs"
    sample = cytokit.read_fcs(path)
    fitted = strategy.fit(sample)
    ours = fitted.apply(sample)
    gs = to_flowkit(fitted)
    theirs = gs.gate_sample(fk.Sample(str(path)))
    checked = 0
    for p in fitted.populations:
        name, path = flowkit_gate_path(fitted, p.id)
        m = theirs.get_gate_membership(name, gate_path=path)
        np.testing.assert_array_equal(ours.membership(p.id), m, err_msg=p.path)
        checked += 1
    assert checked == len(fitted.populations) >= 8


def test_complement_gate_is_refused_with_its_path():
    gs = fk.GatingStrategy()
    dim = fk.Dimension("A", range_min=1.0)
    gs.add_gate(fk.gates.RectangleGate("outside", [dim], use_complement=True), ("root",))
    with pytest.raises(GatingError, match=r"'/outside' uses its complement"):
        from_flowkit(gs)


def test_workspace_with_several_samples_needs_sample_id(tmp_path):
    wsp = need_corpus(FKDATA / "8_color_data_set" / "8_color_ICS.wsp")
    ws = fk.Workspace(str(wsp))
    with pytest.raises(GatingError, match=r"sample_id="):
        from_flowkit(fk.Workspace(str(wsp), load_missing_file_data=True))
    with pytest.raises(GatingError, match=r"not in the FlowKit workspace"):
        from_flowkit(ws, sample_id="nope.fcs")


@pytest.mark.corpus
def test_workspace_group_is_the_strategy_its_samples_share():
    wsp = need_corpus(FKDATA / "8_color_data_set" / "8_color_ICS.wsp")
    ws = fk.Workspace(str(wsp), load_missing_file_data=True)
    ids = ws.get_sample_ids(group_name="DEN", loaded_only=False)
    assert len(ids) == 3
    per_sample = [from_flowkit(ws, sample_id=sid) for sid in ids]
    # each sample carries its own acquisition matrix and transforms: no shared strategy
    assert len({st.digest() for st in per_sample}) > 1
    with pytest.raises(GatingError, match=r"gated differently.*sample_id="):
        from_flowkit(ws, group="DEN")
    one = from_flowkit(ws, group="DEN", sample_id=ids[1])
    assert one.digest() == per_sample[1].digest()
    with pytest.raises(GatingError, match=r"no sample group 'nope'.*'DEN'"):
        from_flowkit(ws, group="nope")
    with pytest.raises(GatingError, match=r"group 'GEN' .* has no samples"):
        from_flowkit(ws, group="GEN")
    diamond = FKDATA / "simple_diamond_example"
    ws = fk.Workspace(
        str(diamond / "simple_diamond_example_quad_gate.wsp"),
        fcs_samples=str(diamond / "test_data_diamond_01.fcs"),
    )
    shared = from_flowkit(ws, group="All Samples")
    assert shared.digest() == from_flowkit(ws).digest() and shared.name == "All Samples"


def test_other_objects_are_refused():
    with pytest.raises(TypeError, match=r"GatingStrategy, Session or Workspace"):
        from_flowkit("strategy.xml")
    with pytest.raises(TypeError, match=r"cytokit GatingStrategy"):
        to_flowkit(fk.GatingStrategy())


def test_a_split_by_quadrant_written_as_gatingml_is_gated_by_flowkit(tmp_path):
    """A fitted `split_by: CD3` quadrant (CD56 cut once below the CD3 divider, once above)
    was written as one quadrant gate with two dividers on PE-A, which FlowKit could not
    gate (a broadcast error). It is written as a rectangle per quadrant: FlowKit's counts
    are cytokit's, and cytokit reads back the same events of every population."""
    import warnings

    from cytokit.cli.app import run
    from cytokit.study import load_study

    args = ["--seed", "31", "--patients", "1", "--events", "4000", "--days", "14"]
    assert run(["simulate", str(tmp_path / "s"), *args]) == 0
    study = load_study(tmp_path / "s")  # the simulator's strategy.yaml: split_by: CD3
    path = study.rows[0].file
    sample = cytokit.read_fcs(path)
    result = study.gate(sample)
    placed = result.strategy
    assert any(
        isinstance(g, G.QuadrantGate) and len({d.dimension for d in g.dividers}) < len(g.dividers)
        for g in placed.gates
    )
    xml = placed.to_gatingml(tmp_path / "placed.xml")
    back = G.load_strategy(xml).apply(sample)
    for pop in result.counts["gate_path"]:
        np.testing.assert_array_equal(back.membership(pop), result.membership(pop), err_msg=pop)
    session = fk.Session(gating_strategy=str(xml))
    session.add_samples(fk.Sample(str(path)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.analyze_samples(sample_id=path.name)
    report = session.get_gating_results(path.name).report
    # FlowKit names a Gating-ML population by its document id ('_Lymphocytes_Singlets')
    theirs = sorted(int(c) for c in report["count"])
    assert len(theirs) == 18 and theirs == sorted(int(c) for c in result.counts["count"])
