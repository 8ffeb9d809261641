"""`GatingStrategy.apply_file`: gating a file while reading it gives `apply`'s counts, exactly.

The reference is ``strategy.apply(cytokit.read_fcs(path))``, itself checked
against external truth elsewhere (the Gating-ML compliance truth, FlowJo's
counts); here the streamed door must give the same count for every
population, on files of every kind the reader decodes (FCS 2.0/3.0/3.1,
integer and float, big- and little-endian, ``$PnG``, ``$TIMESTEP``,
compensated and transformed dimensions), with slices small enough that every
file is read in many, and against truth known by construction where a
population's events straddle the slices' boundaries.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import naive_gates as naive
import numpy as np
import pytest
from gatingml_cases import CASES, GML, NO_COVARIANCE, need_corpus

import cytokit
from cytokit import Channel, Sample, write_fcs
from cytokit import gating as G
from cytokit.errors import GatingError
from cytokit.fcs.reader import open_events
from cytokit.gating.gatingml import read_gatingml
from cytokit.gating.stream import FileSample

ROOT = Path(__file__).resolve().parents[1]
CORPUS = naive.CORPUS
FK = CORPUS / "flowkit" / "data"
FLOWSOM = CORPUS / "github" / "SofieVG_FlowSOM" / "inst" / "extdata"


def quiet_read(path, **kw) -> Sample:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cytokit.read_fcs(path, **kw)


def streamed(strategy: G.GatingStrategy, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return strategy.apply_file(path, **kw)


def assert_same_counts(strategy: G.GatingStrategy, path: Path, block_events: int):
    """apply_file's counts equal apply(read_fcs)'s, population by population; returns them."""
    want = strategy.apply(quiet_read(path), membership=False)
    got = streamed(strategy, path, block_events=block_events)
    assert got.n_events == want.n_events
    diff = {
        p.path: (int(a), int(b))
        for p, a, b in zip(strategy.populations, want.counts_array, got.counts_array, strict=True)
        if a != b
    }
    assert not diff, f"{path.name}: apply vs apply_file differ: {diff}"
    assert got.counts.equals(want.counts)
    return want.counts_array


# -- the Gating-ML compliance suite (data1.fcs: FCS 2.0, 16-bit integers, big-endian) ----------


@pytest.mark.corpus
def test_compliance_gates_streamed_equal_apply_and_the_truth():
    data1 = need_corpus(naive.GATE_REF / "data1.fcs")
    # every document but FlowKit's Ellipsoid3D, whose matrix is no covariance (refused)
    docs = [*sorted({doc for _, _, doc, _ in CASES} - {NO_COVARIANCE}), "gml_all_gates.xml"]
    checked = 0
    for doc in docs:
        strategy = read_gatingml(need_corpus(GML / doc))
        counts = assert_same_counts(strategy, data1, block_events=1000)
        got = dict(zip([p.id for p in strategy.populations], counts.tolist(), strict=True))
        for truth, gid, d, in_all in CASES:
            if d == doc or (doc == "gml_all_gates.xml" and in_all):
                assert got[gid] == naive.truth(truth).sum(), (doc, gid)
                checked += 1
    assert checked == 50 + 49


# -- FlowJo workspaces of the corpus with their FCS files -------------------------------------

WSP = [
    (
        FK / "simple_diamond_example" / "simple_diamond_example_quad_gate.wsp",
        "test_data_diamond_01.fcs",
    ),
    (FK / "simple_diamond_example" / "test_data_diamond_biex_rect.wsp", "test_data_diamond_01.fcs"),
    (FK / "simple_line_example" / "single_ellipse_51_events.wsp", "data_set_simple_line_100.fcs"),
    (FLOWSOM / "gating.wsp", "68983.fcs"),  # FCS 3.0, float big-endian, compensated, biex
]


@pytest.mark.corpus
@pytest.mark.parametrize(("wsp", "fcs"), WSP, ids=lambda x: Path(x).stem)
def test_flowjo_workspaces_streamed_equal_apply(wsp, fcs):
    ws = G.flowjo.load_workspace(need_corpus(wsp))
    counts = assert_same_counts(ws.strategy(), wsp.parent / fcs, block_events=4096)
    assert counts.max() > 0


# -- every kind of file the reader decodes ----------------------------------------------------

KINDS = [
    "flowkit/data/gate_ref/data1.fcs",  # FCS 2.0, I, 4,3,2,1
    "flowkit/data/100715.fcs",  # FCS 2.0, F, big-endian, spillover, $TIMESTEP
    "flowkit/data/test_comp_example.fcs",  # FCS 3.0, F, big-endian, spillover
    "github/taborlab_FlowCal/test/Data001.fcs",  # FCS 2.0, I, big-endian
    "github/taborlab_FlowCal/test/Data003.fcs",  # FCS 3.0, I, big-endian, $TIMESTEP
    "github/whitews_FlowIO/data/fcs_files/3FITC_4PE_004.fcs",  # FCS 2.0, I, little-endian
    "github/whitews_FlowIO/data/fcs_files/B01 KC-A-W---91-US.fcs",  # FCS 3.1, I, spillover
    "github/whitews_FlowIO/data/fcs_files/G11.fcs",  # FCS 3.1, F, little-endian, spillover
    "github/RGLab_flowWorkspaceData/inst/extdata/a2004_O1T2pb05i_A2_A02.fcs",  # FCS 3.0, F
]


def channel_strategy(sample: Sample) -> G.GatingStrategy:
    """A tree on the file's own channels: every kind of dimension `apply` computes.

    A rectangle on the first two channels (middle half of each), inside it
    the time channel's middle (scaled by ``$TIMESTEP``) when there is one, and
    rectangles and a quadrant on compensated, logicle-transformed detectors
    of the spillover matrix when there is one.
    """
    ev = sample.events.astype(np.float64)
    q = lambda j, a, b: tuple(float(v) for v in np.quantile(ev[:, j], [a, b]))  # noqa: E731
    names = sample.channel_names
    lo0, hi0 = q(0, 0.2, 0.8)
    lo1, hi1 = q(1, 0.1, 0.9)
    gates = [
        G.RectangleGate(
            id="core",
            dims=(G.Dimension(names[0]), G.Dimension(names[1])),
            min=(lo0, lo1),
            max=(hi0, hi1),
        )
    ]
    parent = "core"
    time = [c for c in names if c.lower() == "time"]
    if time:
        lo, hi = q(names.index(time[0]), 0.1, 0.7)
        gates.append(
            G.RectangleGate(
                id="steady", parent="core", dims=(G.Dimension(time[0]),), min=(lo,), max=(hi,)
            )
        )
        parent = "steady"
    if sample.spillover is not None:
        logicle = G.LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0)
        a, b = sample.spillover.channels[:2]
        da = G.Dimension(a, compensation=G.FCS, transform=logicle)
        db = G.Dimension(b, compensation=G.FCS, transform=logicle)
        seen = G.GatingStrategy(gates).values(sample, [da, db])  # what the gates see
        ca, cb = (float(np.nanmedian(seen[:, j])) for j in (0, 1))
        gates.append(
            G.QuadrantGate(
                id="quad",
                parent=parent,
                dividers=(G.Divider("da", da, (ca,)), G.Divider("db", db, (cb,))),
                quadrants=tuple(
                    G.Quadrant(
                        f"q{i}{j}",
                        (
                            ("da", float(ca + (2 * i - 1) * 0.01)),
                            ("db", float(cb + (2 * j - 1) * 0.01)),
                        ),
                    )
                    for i in (0, 1)
                    for j in (0, 1)
                ),
            )
        )
        gates.append(
            G.RectangleGate(id="bright", parent=parent, dims=(da,), min=(ca,), max=(None,))
        )
    return G.GatingStrategy(gates)


@pytest.mark.corpus
@pytest.mark.parametrize("rel", KINDS, ids=lambda r: Path(r).name)
def test_every_kind_of_file_streams_to_the_same_counts(rel):
    path = need_corpus(CORPUS / rel)
    sample = quiet_read(path)
    strategy = channel_strategy(sample)
    for block in (97, 5000):  # many slices; odd sizes put boundaries anywhere
        counts = assert_same_counts(strategy, path, block_events=block)
    assert 0 < counts[0] < sample.n_events  # the gates select, so a difference would show


# -- synthetic files: every reading route, boundaries inside a population ---------------------


def _write(tmp_path: Path, events: np.ndarray, name: str, **kw) -> Path:
    k = events.shape[1]
    chans = [
        Channel(i, "Time" if i == k - 1 else f"C{i}", range=1 << 18, gain=kw.pop(f"gain{i}", 1.0))
        for i in range(k)
    ]
    keywords = {"$TIMESTEP": "0.25"}
    return write_fcs(tmp_path / name, Sample(events, chans, keywords=keywords, scaled=False), **kw)


def _ordered_events(n: int, inside: tuple[int, int], dtype) -> np.ndarray:
    """Events whose rows ``inside`` (one run) are in the box 100..200 on C0 × C1, others not."""
    rng = np.random.default_rng(11)
    ev = rng.uniform(300, 1000, (n, 4))
    a, b = inside
    ev[a:b, :2] = rng.uniform(110, 190, (b - a, 2))
    ev[:, 3] = np.arange(n)  # time: the row number
    return ev.round().astype(dtype)


BOX = G.GatingStrategy(
    [
        G.RectangleGate(
            id="box", dims=(G.Dimension("C0"), G.Dimension("C1")), min=(100, 100), max=(200, 200)
        ),
        G.RectangleGate(  # the second half of the run, by time ($TIMESTEP 0.25 s a row)
            id="late", parent="box", dims=(G.Dimension("Time"),), min=(0.25 * 260_000,), max=(None,)
        ),
    ]
)


@pytest.mark.parametrize(
    ("name", "dtype", "kw"),
    [
        ("float-little.fcs", np.float32, {}),  # read straight into the slice
        ("float-big-gain.fcs", np.float32, {"byteorder": "big", "gain2": 2.5}),  # swap + scale
        ("double-big.fcs", np.float64, {"byteorder": "big"}),
        ("int-big.fcs", np.uint32, {"byteorder": "big"}),  # decoded in sub-blocks
    ],
)
def test_a_population_across_slice_boundaries(tmp_path, name, dtype, kw):
    n, run = 400_000, (250_000, 270_000)
    path = _write(tmp_path, _ordered_events(n, run, dtype), name, **kw)
    with open_events(path) as (_, reader):
        step = reader.step if reader.route != "direct" else 1
    block = max(step, 65_536 // step * step)
    assert any(run[0] < a < run[1] for a in range(0, n, block)), "no boundary inside the run"
    counts = assert_same_counts(BOX, path, block_events=65_536)
    assert counts.tolist() == [run[1] - run[0], run[1] - 260_000]  # truth by construction


def test_simulated_file_of_many_slices(tmp_path):
    """The simulator's NK patient (float32, $SPILLOVER, time) through a compensated, logicle
    tree, in 9 slices; counts equal apply's and the populations are real."""
    from cytokit.simulate import benchmark_file

    path = benchmark_file(tmp_path / "sim.fcs", n_events=150_000, seed=3, workers=1)
    logicle = G.LogicleTransform(T=262144.0, W=0.5, M=4.5, A=0.0)

    def fl(ch: str) -> G.Dimension:
        return G.Dimension(ch, compensation=G.FCS, transform=logicle)

    cd3 = G.Divider("cd3", fl("APC-A"), (0.45,))
    cd56 = G.Divider("cd56", fl("PE-A"), (0.45,))
    strategy = G.GatingStrategy(
        [
            G.PolygonGate(
                id="Lymphocytes",
                dims=(G.Dimension("FSC-A"), G.Dimension("SSC-A")),
                vertices=(
                    (46000, 3000),
                    (80000, 5000),
                    (98000, 16000),
                    (94000, 27000),
                    (70000, 23000),
                    (48000, 13000),
                ),
            ),
            G.RectangleGate(
                id="Live",
                parent="Lymphocytes",
                dims=(fl("PerCP-Cy5-5-A"),),
                min=(None,),
                max=(0.55,),
            ),
            G.QuadrantGate(
                id="q",
                parent="Live",
                dividers=(cd3, cd56),
                quadrants=(
                    G.Quadrant("NK", (("cd3", 0.0), ("cd56", 1.0))),
                    G.Quadrant("T", (("cd3", 1.0), ("cd56", 0.0))),
                ),
            ),
            G.BooleanGate(id="notNK", parent="Live", op="not", operands=("NK",)),
        ]
    )
    counts = assert_same_counts(strategy, path, block_events=16_384)
    lymph, live, nk, t, not_nk = counts.tolist()
    assert 0 < nk < live < lymph < 150_000 and t > 0 and not_nk == live - nk


# -- what the door refuses, and what its result holds ------------------------------------------


def test_an_adaptive_strategy_is_refused_naming_the_gate():
    strategy = G.load_strategy(ROOT / "sample_data" / "strategy.yaml")
    adaptive = [g.id for g in strategy.gates if isinstance(g, G.AdaptiveGate)]
    assert adaptive
    path = ROOT / "sample_data" / "fcs" / "P01_day007.fcs"
    with pytest.raises(GatingError) as err:
        strategy.apply_file(path)
    msg = str(err.value)
    assert repr(adaptive[0]) in msg and "P01_day007.fcs" in msg and "fit" in msg
    # fitted on the file, the same strategy is static and streams to apply's counts
    fitted = strategy.fit(quiet_read(path))
    assert_same_counts(fitted, path, block_events=3000)


def test_bad_block_size_and_missing_file_are_clear(tmp_path):
    with pytest.raises(GatingError, match="block_events=0"):
        BOX.apply_file(ROOT / "sample_data" / "fcs" / "P01_day007.fcs", block_events=0)
    with pytest.raises(cytokit.FCSError, match="no such file"):
        BOX.apply_file(tmp_path / "absent.fcs")


def test_result_sample_reads_its_events_when_asked(tmp_path):
    ev = _ordered_events(5000, (100, 300), np.float32)
    ev[7, 0] = np.nan  # non-finite values are kept, as apply keeps them
    path = _write(tmp_path, ev, "lazy.fcs")
    got = BOX.apply_file(path, block_events=512)
    want = BOX.apply(cytokit.read_fcs(path), membership=False)
    assert isinstance(got.sample, FileSample) and got.sample._events is None
    assert got.n_events == 5000 and "not read" in repr(got.sample)
    assert got.sample.channel_names == want.sample.channel_names
    assert got.nonfinite_events == want.nonfinite_events == 1
    np.testing.assert_array_equal(got.sample.events, want.sample.events)
    with pytest.raises(GatingError, match="memberships were not kept"):
        got.membership("box")


def test_an_empty_file_gives_zero_counts(tmp_path):
    path = _write(tmp_path, np.zeros((0, 4), np.float32), "empty.fcs")
    got = BOX.apply_file(path)
    assert got.n_events == 0 and got.counts_array.tolist() == [0, 0]


def test_count_pass_set_up_once_counts_like_evaluate_plan(tmp_path):
    from cytokit import kernels as K
    from cytokit.kernels.fused import CountPass

    sample = cytokit.read_fcs(
        _write(tmp_path, _ordered_events(9000, (4000, 4500), np.float32), "c.fcs")
    )
    plan, _ = BOX.compile(sample)
    count = CountPass(plan, np.float32)
    for a, b in ((0, 9000), (0, 1), (4100, 8999), (5, 5)):
        want = K.evaluate_plan(sample.events[a:b], plan, membership=False)[0]
        np.testing.assert_array_equal(count(sample.events[a:b]), want)
        np.testing.assert_array_equal(count(sample.events[a:b], serial=True), want)
    assert count(sample.events).tolist() == [500, 0]  # the run; none late (time < 65,000 s)
    with pytest.raises(TypeError, match="float32"):
        count(sample.events.astype(np.float64))


def test_a_read_error_in_a_reading_thread_reaches_the_caller(tmp_path, monkeypatch):
    """The file changing under the readers (here: from its third slice on, reads fail) raises in
    the caller, after every reading thread has stopped, and leaves no thread behind."""
    import threading

    from cytokit.fcs.data import EventReader

    # $TIMESTEP scales the time channel: slices are whole sub-blocks of 65,536 rows
    path = _write(tmp_path, _ordered_events(300_000, (10, 20), np.float32), "t.fcs")
    real = EventReader.read

    def failing(self, a, b, dest):
        if a >= 2 * 65_536:
            raise cytokit.FCSError(f"{path}: the file ended at byte 123 while reading events")
        return real(self, a, b, dest)

    monkeypatch.setattr(EventReader, "read", failing)
    with pytest.raises(cytokit.FCSError, match=r"t\.fcs: the file ended"):
        BOX.apply_file(path, block_events=4096)
    assert not [t for t in threading.enumerate() if t.name == "cytokit-read"]


BOX_ONLY = G.GatingStrategy([BOX.gates[0]])  # reads C0 and C1 only, not the scaled time


def test_a_forked_reader_scales_only_the_columns_asked_for(tmp_path):
    """`EventReader.fork(columns)`: the listed columns keep read_fcs's bits; the others stay as
    stored (no $PnG, no $TIMESTEP), and a native float file is then read straight in."""
    ev = _ordered_events(100_000, (10, 20), np.float32)
    path = _write(tmp_path, ev, "gain.fcs", gain2=2.5)
    sample = quiet_read(path)
    assert not np.array_equal(sample.events[:, 2:], ev[:, 2:])  # both are scaled by read_fcs
    with open_events(path) as (_, reader):
        assert reader.route == "in place"
        for cols, route in (([0, 1], "direct"), ([0, 3], "in place"), (None, "in place")):
            part = reader.fork(cols)
            assert part.route == route
            got = np.empty_like(sample.events)
            for a in range(0, 100_000, 65_536):  # the reader's sub-blocks
                part.read(a, min(100_000, a + 65_536), got[a : a + 65_536])
            for j in range(4):
                want = sample.events[:, j] if cols is None or j in cols else ev[:, j]
                np.testing.assert_array_equal(got[:, j], want)


def test_streaming_a_tree_that_reads_no_scaled_column_counts_like_apply(tmp_path):
    """Time scaled by $TIMESTEP and a gain on C2, neither read by the gate: apply_file reads the
    file straight into its slices, with apply's counts."""
    n, run = 300_000, (150_000, 170_000)
    path = _write(tmp_path, _ordered_events(n, run, np.float32), "t.fcs", gain2=2.5)
    for block in (4096, 65_536, 10**6):
        counts = assert_same_counts(BOX_ONLY, path, block_events=block)
        assert counts.tolist() == [run[1] - run[0]]


def test_streaming_without_positional_reads_counts_like_apply(tmp_path, monkeypatch):
    """Where the system has no os.preadv (Windows), the reading threads take turns to seek and
    read the shared file: the same counts."""
    import cytokit.fcs.data as data

    monkeypatch.setattr(data, "_PREADV", None)
    n, run = 400_000, (250_000, 270_000)
    for name, kw in (("little.fcs", {}), ("big.fcs", {"byteorder": "big", "gain2": 2.5})):
        path = _write(tmp_path, _ordered_events(n, run, np.float32), name, **kw)
        counts = assert_same_counts(BOX, path, block_events=4096)
        assert counts.tolist() == [run[1] - run[0], run[1] - 260_000]


def test_every_worker_count_gives_the_same_counts(tmp_path, monkeypatch):
    """One thread (a file of one slice), two, or more than the slices: the same counts."""
    from cytokit.gating import stream

    n, run = 200_000, (50_000, 150_000)
    path = _write(tmp_path, _ordered_events(n, run, np.float32), "w.fcs")
    want = [run[1] - run[0], run[1] - 260_000 if run[1] > 260_000 else 0]
    for workers in (1, 2, 3, 8):
        monkeypatch.setattr(stream, "_workers", lambda n_slices, w=workers: min(w, n_slices))
        counts = assert_same_counts(BOX, path, block_events=8192)
        assert counts.tolist() == want
