"""FlowJo 10 workspace export (`cytokit export-wsp`, `cytokit.analysis.export_wsp`,
`cytokit.gating.flowjo.write`) and per-sample fitting (`GatingStrategy.fit`).

The truth is ``counts.csv`` of a real ``analyze`` run: the exported workspace,
read back by FlowKit (an independent FlowJo reader) and by cytokit's own
reader, must give every sample's count of every gate exactly, for the bundled
sample study (adaptive cluster, singlet, valley, tilted-valley and split
quadrant gates, Boolean AND/NOT) and for a simulated study with instrument
drift (each file's adaptive gates placed differently).
"""

from __future__ import annotations

import os
import shutil
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pytest
from fs_helpers import read_only, unreadable

import cytokit
from cytokit import gating as G
from cytokit.analysis import export_wsp
from cytokit.cli.app import run as cli
from cytokit.errors import CytokitError, GatingError
from cytokit.gating.flowjo.match import linked_file
from cytokit.gating.flowjo.write import (
    WorkspaceEntry,
    WorkspaceWriteNotes,
    workspace_bytes,
    write_workspace,
)

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
LOGICLE = G.LogicleTransform(T=262144, W=0.5, M=4.5, A=0)


def _analyze(study: Path, out: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cytokit.analyze(study, out, workers=1)
    return pd.read_csv(out / "counts.csv")


def _truth(counts: pd.DataFrame) -> dict[tuple[str, str], int]:
    return {
        (Path(f).name, p): int(c)
        for f, p, c in zip(counts["file"], counts["gate_path"], counts["count"], strict=True)
    }


def _cytokit_counts(wsp: Path, files: dict[str, Path]) -> dict[tuple[str, str], int]:
    """Each sample's counts as cytokit's FlowJo reader rebuilds its gates from the workspace."""
    ws = G.load_workspace(wsp)
    out = {}
    for s in ws.samples:
        sample = cytokit.read_fcs(files[s.name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = ws.strategy(sample=s.id).apply(sample, membership=False)
        for p, c in zip(result.counts["gate_path"], result.counts["count"], strict=True):
            out[(s.name, p)] = int(c)
    return out


def _flowkit_counts(wsp: Path) -> dict[tuple[str, str], int]:
    """Each sample's counts by FlowKit, which finds the files through the workspace's links."""
    fk = pytest.importorskip("flowkit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(wsp), find_fcs_files_from_wsp=True)
        ws.analyze_samples(group_name="All Samples", use_mp=False)
        report = ws.get_analysis_report()
    return {
        (s, "/" + "/".join([*path[1:], name])): int(c)
        for s, path, name, c in zip(
            report["sample_id"],
            report["gate_path"],
            report["gate_name"],
            report["count"],
            strict=True,
        )
    }


def _compare(truth: dict, got: dict, who: str) -> None:
    missing = sorted(set(truth) - set(got))
    assert not missing, f"{who} lacks {len(missing)} sample×gate counts, e.g. {missing[:3]}"
    wrong = {k: (v, got[k]) for k, v in truth.items() if got[k] != v}
    assert not wrong, f"{who}: {len(wrong)} of {len(truth)} counts differ (csv, {who}): {wrong}"


@pytest.fixture(scope="module")
def sample_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsp-sample")
    counts = _analyze(SAMPLE_DATA, root / "results")
    done = export_wsp(root / "results", root / "export" / "study.wsp")
    files = {Path(f).name: SAMPLE_DATA / f for f in counts["file"].unique()}
    return root, counts, done, files


def test_sample_study_round_trip_through_cytokit_reader(sample_export):
    _, counts, done, files = sample_export
    assert len(done.samples) == 15 and not done.skipped and not done.notes
    truth = _truth(counts)
    assert len(truth) == 15 * 18
    _compare(truth, _cytokit_counts(done.path, files), "cytokit's FlowJo reader")


def test_sample_study_round_trip_through_flowkit(sample_export):
    _, counts, done, _ = sample_export
    _compare(_truth(counts), _flowkit_counts(done.path), "FlowKit")


def test_cytokit_gate_reads_the_exported_workspace_sample_by_sample(sample_export, capsys):
    """``cytokit gate OUT.wsp FILES``: the export's samples carry their own gates (no
    ``All Samples`` template), so each file is gated with its own sample's tree, as FlowJo
    does; the counts are analyze's. A file that is no sample of it fails on its own."""
    root, counts, done, files = sample_export
    stray = root / "stray.fcs"
    sample = cytokit.read_fcs(files["P01_day007.fcs"])
    cytokit.write_fcs(stray, sample.__class__(sample.events[:500], sample.channels, {}))
    out = root / "gated"
    code = cli(["gate", str(done.path), *map(str, files.values()), str(stray), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    gated = pd.read_csv(out / "counts.csv")
    _compare(_truth(counts), _truth(gated[gated["file"] != str(stray)]), "cytokit gate")
    failed = pd.read_csv(out / "failures.csv")
    assert list(failed["file"]) == [str(stray)] and "stray.fcs" in failed["reason"].iloc[0]


def test_an_export_path_that_cannot_be_written_is_refused_before_gating(sample_export):
    """A folder, or a path under a file: said at once, not after every file is gated."""
    root = sample_export[0]
    (root / "afile").write_text("x")
    with pytest.raises(CytokitError, match=r"afile: is a file, not a folder \(it would hold"):
        export_wsp(root / "results", root / "afile" / "x.wsp")
    (root / "adir.wsp").mkdir()
    with pytest.raises(CytokitError, match=r"adir\.wsp: is a folder; give the export's file"):
        export_wsp(root / "results", root / "adir.wsp")


def test_workspace_carries_counts_groups_and_relative_links(sample_export):
    _, counts, done, files = sample_export
    ws = G.load_workspace(done.path)
    stored = ws.flowjo_counts()
    got = {
        (s, p): int(c)
        for s, p, c in zip(
            stored["sample"], stored["population_path"], stored["count"], strict=True
        )
    }
    _compare(_truth(counts), got, "the workspace's own counts")
    manifest = pd.read_csv(SAMPLE_DATA / "manifest.csv")
    groups = {g.name: g for g in ws.groups}
    assert sorted(groups) == ["All Samples", "P01", "P02", "P03"] == ["All Samples", *done.groups]
    for patient, rows in manifest.groupby("patient"):
        want = sorted(Path(f).name for f in rows["file"])
        assert sorted(ws.sample(i).name for i in groups[patient].sample_ids) == want
    for s in ws.samples:
        assert not s.uri.startswith(("/", "file:"))
        linked = (done.path.parent / unquote(s.uri)).resolve()
        assert linked == files[s.name].resolve()
        assert s.compensation is not None and s.compensation.name == "Acquisition-defined"
        assert s.event_count == cytokit.read_fcs(linked).n_events


def test_cli_and_python_write_the_same_workspace(sample_export, capsys):
    root, _, done, _ = sample_export
    other = root / "export" / "cli.wsp"
    assert cli(["export-wsp", str(root / "results"), str(other)]) == 0
    assert other.read_bytes() == done.path.read_bytes()
    err = capsys.readouterr().err
    assert "15 samples, groups P01, P02, P03; 0 left out" in err
    by_tube = export_wsp(root / "results", root / "export" / "tube.wsp", group_by="tube")
    assert by_tube.groups == ["default"]
    flat = export_wsp(root / "results", root / "export" / "flat.wsp", group_by="none")
    assert flat.groups == [] and [g.name for g in G.load_workspace(flat.path).groups] == [
        "All Samples"
    ]


@pytest.mark.slow
def test_simulated_study_with_drift_round_trip(tmp_path):
    study = tmp_path / "sim"
    assert cli(["simulate", str(study), "--seed", "11", "--patients", "2", "--events",
                "20000", "--days=-7,7,28"]) == 0  # fmt: skip
    counts = _analyze(study, tmp_path / "results")
    done = export_wsp(tmp_path / "results", tmp_path / "sim.wsp")
    assert len(done.samples) == 6 and not done.skipped
    truth = _truth(counts)
    files = {Path(f).name: study / f for f in counts["file"].unique()}
    # drift: the adaptive gates of the files are placed differently
    ws = G.load_workspace(done.path)
    cuts = {ws.strategy(sample=s.id).gate("/Lymphocytes/Singlets/Live").max[0] for s in ws.samples}
    assert len(cuts) == 6
    _compare(truth, _cytokit_counts(done.path, files), "cytokit's FlowJo reader")
    _compare(truth, _flowkit_counts(done.path), "FlowKit")


@pytest.fixture(scope="module")
def shared_names(tmp_path_factory):
    """A simulated study whose two visits are filed as ``fcs/day 7/x.fcs`` and
    ``fcs/day 14/x.fcs`` (one base name, the same event count), analysed: (study, results
    folder, counts.csv)."""
    root = tmp_path_factory.mktemp("shared-names")
    study = root / "sim"
    assert cli(["simulate", str(study), "--seed", "158701", "--patients", "1", "--events",
                "20000", "--days=7,14"]) == 0  # fmt: skip
    manifest = pd.read_csv(study / "manifest.csv")
    for i, day in enumerate(manifest["day"]):
        new = f"fcs/day {day}/x.fcs"
        (study / new).parent.mkdir()
        (study / manifest.at[i, "file"]).rename(study / new)
        manifest.at[i, "file"] = new
    manifest.to_csv(study / "manifest.csv", index=False)
    return study, root / "results", _analyze(study, root / "results")


@pytest.mark.slow
def test_files_sharing_a_name_are_gated_back_by_their_links(shared_names, tmp_path, capsys):
    """The export names the samples by their paths and links each to its file; ``cytokit
    gate`` finds each file's sample through its link, or through the name when the
    workspace has moved away from the files, and counts what ``counts.csv`` has."""
    study, results, counts = shared_names
    wsp = study.parent / "flowjo" / "I.wsp"
    assert cli(["export-wsp", str(results), str(wsp)]) == 0
    ws = G.load_workspace(wsp)
    files = [study / "fcs" / "day 7" / "x.fcs", study / "fcs" / "day 14" / "x.fcs"]
    assert sorted(s.name for s in ws.samples) == ["fcs/day 14/x.fcs", "fcs/day 7/x.fcs"]
    assert sorted(s.uri for s in ws.samples) == [f"../sim/fcs/day%20{d}/x.fcs" for d in (14, 7)]

    def truth(table: pd.DataFrame) -> dict[tuple[str, str], int]:
        keys = [Path(f).resolve().relative_to(study.resolve()).as_posix() for f in table["file"]]
        return {
            (k, p): int(c) for k, p, c in zip(keys, table["gate_path"], table["count"], strict=True)
        }

    want = truth(counts.assign(file=[str(study / f) for f in counts["file"]]))
    moved = tmp_path / "copy" / "deeper" / "I.wsp"  # its links lead nowhere: names decide
    moved.parent.mkdir(parents=True)
    shutil.copy(wsp, moved)
    for w in (wsp, moved):
        out = tmp_path / f"gated-{w.parent.name}"
        assert cli(["gate", str(w), str(study / "fcs"), "-o", str(out)]) == 0, capsys.readouterr()
        assert not (out / "failures.csv").exists() or pd.read_csv(out / "failures.csv").empty
        _compare(want, truth(pd.read_csv(out / "counts.csv")), f"cytokit gate {w.name}")
    matches = ws.match_files(files)
    assert matches.complete and set(matches.how.values()) == {"DataSet uri"}
    assert set(G.load_workspace(moved).match_files(files).how.values()) == {"sample name"}


def test_an_unreadable_file_is_left_out_saying_to_check_its_permissions(
    shared_names, tmp_path, capsys
):
    """Like a changed file, an unreadable one is left out and the others exported; the line
    says why and the fix in words (no ``[Errno 13]``), as export-anndata's refusal does."""
    study, results, _ = shared_names
    with unreadable(study / "fcs" / "day 7" / "x.fcs"):
        assert cli(["export-wsp", str(results), str(tmp_path / "I.wsp")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert (
        "left out fcs/day 7/x.fcs: cannot read the file: Permission denied; check its "
        "permissions (this user must be able to read it), then run again"
    ) in err
    assert not any("Errno" in line for line in err)
    assert [s.name for s in G.load_workspace(tmp_path / "I.wsp").samples] == ["fcs/day 14/x.fcs"]


def test_a_folder_that_cannot_be_written_is_named_with_the_fix(
    shared_names, tmp_path, capsys, monkeypatch
):
    """Refused before the files are gated again; and where the system refuses only at the
    write, the message names the workspace (not its temporary file) and the fix."""
    _, results, _ = shared_names
    ro = tmp_path / "ro"
    ro.mkdir()
    target = ro / "x.wsp"
    fix = f"choose a writable folder, or change the permissions of {ro}"
    with read_only(ro):
        assert cli(["export-wsp", str(results), str(target)]) == 1
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == (
            f"cytokit: error: {target}: cannot be written ({ro} is not writable); {fix}"
        )
        assert "[1/2]" not in err  # said before any file was gated again
        monkeypatch.setattr(os, "access", lambda *a, **k: True)  # a check the system passes
        assert cli(["export-wsp", str(results), str(target)]) == 1
        monkeypatch.undo()
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"cytokit: error: {target}: cannot write the workspace (")
    assert last.endswith(f"); {fix}") and ".tmp" not in last
    assert list(ro.iterdir()) == []


def test_a_samples_link_is_read_as_flowjo_writes_it(tmp_path):
    """Relative links from the workspace's folder, ``file:`` URLs, percent-encoding; a
    Windows path or another host names no file here."""
    here = tmp_path / "a b.fcs"
    assert linked_file("a%20b.fcs", tmp_path) == here
    assert linked_file("../x/a.fcs", tmp_path / "w") == tmp_path / "w" / ".." / "x" / "a.fcs"
    assert linked_file(f"file://{quote(str(here))}", None) == here
    assert linked_file(f"file:{quote(str(here))}", None) == here
    assert linked_file("a.fcs", None) is None
    for elsewhere in ("file:/V:/flowkit/a.fcs", "C:\\data\\a.fcs", "file://server/a.fcs"):
        assert linked_file(elsewhere, tmp_path) is None or os.name == "nt"
    assert linked_file("http://example.org/a.fcs", tmp_path) is None


def test_changed_file_is_left_out_and_changed_strategy_refused(sample_export, tmp_path):
    root = sample_export[0]
    study = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study)
    results = root / "results"
    with pytest.raises(CytokitError, match="has moved, give its folder"):
        export_wsp(results, tmp_path / "x.wsp", study=tmp_path / "nowhere")
    changed = study / "fcs" / "P02_day064.fcs"
    changed.write_bytes(changed.read_bytes() + b"\0")
    done = export_wsp(results, tmp_path / "x.wsp", study=study)
    assert list(done.skipped) == ["fcs/P02_day064.fcs"]
    assert "SHA-256 differs" in done.skipped["fcs/P02_day064.fcs"]
    assert len(done.samples) == 14
    strategy = study / "strategy.yaml"
    strategy.write_text(strategy.read_text().replace("fallback: 0.58", "fallback: 0.59"))
    with pytest.raises(CytokitError, match="not the one the results"):
        export_wsp(results, tmp_path / "y.wsp", study=study)
    assert not (tmp_path / "y.wsp").exists()


# -- every gate shape, on a static strategy --------------------------------------------------


def _shapes() -> G.GatingStrategy:
    fsc, ssc = G.Dimension("FSC-A"), G.Dimension("SSC-A")
    cd3, cd56 = G.Dimension("APC-A", G.FCS, LOGICLE), G.Dimension("PE-A", G.FCS, LOGICLE)
    cd16 = G.Dimension("PE-Cy7-A", G.FCS, LOGICLE)
    return G.GatingStrategy(
        [
            G.EllipsoidGate(id="ell", dims=(fsc, ssc), mean=(58000, 14000),
                            covariance=((4e8, 5e7), (5e7, 6e7)), distance_square=4.0),
            G.RectangleGate(id="range", parent="ell", dims=(cd3,), min=(0.3,), max=(None,)),
            G.RectangleGate(id="box", parent="ell", dims=(cd3, cd56), min=(0.1, 0.2),
                            max=(0.5, 0.9)),
            G.QuadrantGate(
                id="quad", parent="ell",
                dividers=(G.Divider("d3", cd3, (0.45,)), G.Divider("d56", cd56, (0.3, 0.6))),
                quadrants=(
                    G.Quadrant("q1", (("d3", 0.1), ("d56", 0.1))),
                    G.Quadrant("q2", (("d3", 0.9), ("d56", 0.45))),
                    G.Quadrant("q3", (("d3", 0.9), ("d56", 0.9))),
                ),
            ),
            G.PolygonGate(id="poly", parent="ell", dims=(cd16, cd56),
                          vertices=((0.2, 0.3), (0.8, 0.35), (0.7, 0.9), (0.3, 0.8))),
            G.EllipsoidGate(id="ell2", parent="ell", dims=(cd3, cd56), mean=(0.3, 0.6),
                            covariance=((0.01, 0.004), (0.004, 0.02)), distance_square=1.0),
            G.RectangleGate(id="child", parent="q2", dims=(cd16,), min=(0.4,), max=(0.8,)),
            G.BooleanGate(id="and", parent="ell", op="and", operands=("range", "poly")),
            G.BooleanGate(id="or", parent="ell", op="or", operands=("q1", "ell2")),
            G.BooleanGate(id="not", parent="ell", op="not", operands=("box",)),
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def shapes_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wsp-shapes")
    files = {p.name: p for p in sorted((SAMPLE_DATA / "fcs").glob("P0[13]_day0[02]*.fcs"))}
    entries, truth = [], {}
    strategy = _shapes()
    for name, path in files.items():
        result = strategy.apply(cytokit.read_fcs(path), membership=False)
        rel = Path(os.path.relpath(path.resolve(), folder)).as_posix()
        entries.append(WorkspaceEntry(result, name, rel, ("patient " + name[:3],)))
        for p, c in zip(result.counts["gate_path"], result.counts["count"], strict=True):
            truth[(name, p)] = int(c)
    path = write_workspace(folder / "shapes.wsp", entries)
    return path, files, truth


def test_every_shape_round_trips_through_cytokit_reader(shapes_export):
    path, files, truth = shapes_export
    assert len(files) >= 3 and len(truth) == len(files) * 12
    _compare(truth, _cytokit_counts(path, files), "cytokit's FlowJo reader")
    kinds = {p.gate_type for p in G.load_workspace(path).samples[0].populations}
    assert kinds == {"EllipsoidGate", "RectangleGate", "PolygonGate", "and", "or", "not"}


def test_every_shape_round_trips_through_flowkit(shapes_export):
    # FlowKit draws a FlowJo ellipse as a 128-vertex polygon inside it, so an event in
    # the sliver between them could differ; none does in these files
    path, _, truth = shapes_export
    _compare(truth, _flowkit_counts(path), "FlowKit")


def test_ellipse_is_stored_as_foci_and_edges_on_the_display_grid(shapes_export):
    path, _, _ = shapes_export
    ws = G.load_workspace(path)
    g = ws.strategy(sample=ws.samples[0].id).gate("/ell")
    want = _shapes().gate("ell")
    np.testing.assert_allclose(g.mean, want.mean, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(g.covariance) * g.distance_square,
        np.asarray(want.covariance) * want.distance_square,
        rtol=1e-9,
    )
    root = ET.parse(path).getroot()
    ns = "{http://www.isac-net.org/std/Gating-ML/v2.0/gating}"
    ell = next(root.iter(f"{ns}EllipsoidGate"))
    assert [len(list(ell.find(f"{ns}{t}"))) for t in ("foci", "edge")] == [2, 4]


# -- fit: the static strategy of one sample -----------------------------------------------------


def test_fit_gives_the_static_strategy_of_a_sample(tmp_path):
    study = cytokit.load_study(SAMPLE_DATA)
    sample = cytokit.read_fcs(SAMPLE_DATA / "fcs" / "P02_day064.fcs")
    comp, seed = study.compensation(), study.settings.gating_seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adaptive = study.gating.apply(sample, compensation=comp, seed=seed)
        fitted = study.gating.fit(sample, compensation=comp, seed=seed)
        assert study.gating.is_adaptive and not fitted.is_adaptive
        assert fitted.fit(sample) is fitted
        static = fitted.apply(sample, compensation=comp)
        path = fitted.to_gatingml(tmp_path / "fitted.xml")
        again = G.load_strategy(path).apply(sample, compensation=comp)
    want = adaptive.counts.set_index("gate_path")["count"]
    assert want.equals(static.counts.set_index("gate_path")["count"])
    assert want.equals(again.counts.set_index("gate_path")["count"].reindex(want.index))
    assert want.equals(study.gate(sample).counts.set_index("gate_path")["count"])


# -- what FlowJo cannot hold ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_sample():
    return cytokit.read_fcs(SAMPLE_DATA / "fcs" / "P01_day007.fcs")


def test_adaptive_gates_are_refused(one_sample):
    study = cytokit.load_study(SAMPLE_DATA)

    class Unfitted:  # a result whose strategy still has its adaptive gates
        strategy = study.gating
        sample = one_sample
        compensation = one_sample.spillover

    with pytest.raises(GatingError, match=r"adaptive.*export the result of applying"):
        workspace_bytes([WorkspaceEntry(Unfitted, "a.fcs", "a.fcs")])


@pytest.mark.parametrize(
    ("gates", "match"),
    [
        (
            [
                G.RectangleGate(id="a", dims=(G.Dimension("FSC-A"),), min=(1.0,), max=(None,)),
                G.BooleanGate(id="b", op="and", operands=("a", "a2"), complement=(True, False)),
                G.RectangleGate(id="a2", dims=(G.Dimension("SSC-A"),), min=(1.0,), max=(None,)),
            ],
            "complement",
        ),
        (
            [
                G.RectangleGate(id="a", dims=(G.Dimension("APC-A", G.FCS, LOGICLE),),
                                min=(0.2,), max=(None,)),
                G.RectangleGate(id="b", dims=(G.Dimension("APC-A", G.FCS, None),),
                                min=(100.0,), max=(None,)),
            ],
            "one transform per sample",
        ),
        (
            [
                G.RectangleGate(id="a", name="x/y", dims=(G.Dimension("FSC-A"),), min=(1.0,),
                                max=(None,)),
            ],
            "contains '/'",
        ),
        (
            [
                G.RectangleGate(id="a", name="x\x01", dims=(G.Dimension("FSC-A"),), min=(1.0,),
                                max=(None,)),
            ],
            "control character",
        ),
    ],
)  # fmt: skip
def test_what_flowjo_cannot_hold_is_refused(one_sample, gates, match):
    result = G.GatingStrategy(gates).apply(one_sample, membership=False)
    with pytest.raises(GatingError, match=match):
        workspace_bytes([WorkspaceEntry(result, "a.fcs", "a.fcs")])


def test_repeated_sample_names_are_refused(one_sample):
    result = _shapes().apply(one_sample, membership=False)
    entry = WorkspaceEntry(result, "a.fcs", "a.fcs")
    with pytest.raises(GatingError, match="unique names"):
        workspace_bytes([entry, entry])


def test_a_side_on_flowjos_axis_end_is_noted_with_what_it_changes(one_sample, tmp_path):
    # FlowJo piles events below its axis (logicle 0) on the axis start, inside a gate
    # starting there: cytokit's reader does as FlowJo, and the writer says so
    cd3 = G.Dimension("APC-A", G.FCS, LOGICLE)
    strategy = G.GatingStrategy([G.RectangleGate(id="low", dims=(cd3,), min=(-0.05,), max=(0.5,))])
    result = strategy.apply(one_sample)
    below = int((strategy.values(one_sample, [cd3])[:, 0] < -0.05).sum())
    assert below > 0
    notes = WorkspaceWriteNotes()
    path = write_workspace(tmp_path / "w.wsp", [WorkspaceEntry(result, "a.fcs", "a.fcs")],
                           notes=notes)  # fmt: skip
    assert len(notes.notes) == 1 and "'low' starts at -0.05 on Comp-APC-A" in notes.notes[0]
    again = G.load_workspace(path).strategy(sample="a.fcs").apply(one_sample)
    assert again.count("/low") == result.count("/low") + below


def test_the_export_checks_can_see_a_difference(sample_export, one_sample):
    # the checks behind "no notes": a count that differs from counts.csv, and a
    # workspace whose gate does not give cytokit's count back, are each noted
    from cytokit.analysis.flowjo_export import _check_counts, _read_back

    root, counts, _, _ = sample_export
    study = cytokit.load_study(SAMPLE_DATA)
    result = study.gate(one_sample, membership=False)
    rows = counts[counts["file"] == "fcs/P01_day007.fcs"].copy()
    notes: list[str] = []
    _check_counts("P01_day007.fcs", result, rows, notes)
    assert notes == []
    rows.loc[rows["gate_path"] == "/Lymphocytes", "count"] += 1
    _check_counts("P01_day007.fcs", result, rows, notes)
    assert (
        len(notes) == 1 and "/Lymphocytes has 3,297 events where counts.csv has 3,298" in notes[0]
    )
    other = study.gate(cytokit.read_fcs(SAMPLE_DATA / "fcs" / "P01_day014.fcs"), membership=False)
    wrong = WorkspaceEntry(other, "P01_day007.fcs", "x")  # another file's gates under this name
    path = write_workspace(root / "wrong.wsp", [wrong])
    shifted = WorkspaceEntry(result, "P01_day007.fcs", "x")
    _read_back(path, [shifted], notes)
    assert len(notes) > 1 and "read back by cytokit's FlowJo reader" in notes[-1]


# -- FlowJo's own workspaces, written again ------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
_DIAMOND = CORPUS / "flowkit" / "data" / "simple_diamond_example"
_LINE = CORPUS / "flowkit" / "data" / "simple_line_example"
_FLOWSOM = CORPUS / "github" / "SofieVG_FlowSOM" / "inst" / "extdata"


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("wsp", "fcs", "exact"),
    [
        (_DIAMOND / "simple_diamond_example_quad_gate.wsp", _DIAMOND / "test_data_diamond_01.fcs",
         True),
        (_DIAMOND / "test_data_diamond_asinh_rect.wsp", _DIAMOND / "test_data_diamond_01.fcs",
         True),
        (_DIAMOND / "test_data_diamond_biex_rect.wsp", _DIAMOND / "test_data_diamond_01.fcs",
         True),
        (_LINE / "single_ellipse_51_events.wsp", _LINE / "data_set_simple_line_100.fcs", True),
        (_FLOWSOM / "gating.wsp", _FLOWSOM / "68983.fcs", False),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)  # fmt: skip
def test_flowjo_workspaces_of_the_corpus_written_again(wsp, fcs, exact, tmp_path):
    # FlowJo's gates (linear, fasinh, biex and logicle axes, FlowJo's ellipse, its own
    # compensation matrix) read by cytokit and written again keep every count; where
    # cytokit reproduces FlowJo exactly (the diamond and line sets) that is FlowJo's count
    if not wsp.is_file() or not fcs.is_file():
        pytest.skip(f"corpus file missing: {wsp if not wsp.is_file() else fcs}")
    ws = G.load_workspace(wsp)
    sample = cytokit.read_fcs(fcs)
    result = ws.strategy(sample=sample).apply(sample, membership=False)
    name = ws.find(sample).name
    rel = Path(os.path.relpath(fcs, tmp_path)).as_posix()
    path = write_workspace(tmp_path / "again.wsp", [WorkspaceEntry(result, name, rel)])
    truth = {(name, p): int(c) for p, c in zip(result.counts["gate_path"],
                                                result.counts["count"], strict=True)}  # fmt: skip
    _compare(truth, _cytokit_counts(path, {name: fcs}), "cytokit's FlowJo reader")
    if exact:
        flowjo = {(name, p): c for p, c in ws.sample(ws.find(sample).id).counts.items()}
        _compare(flowjo, truth, "cytokit on FlowJo's gates")
    _compare(truth, _flowkit_counts(path), "FlowKit")


def test_samples_gated_after_qc_removed_events_are_said_in_one_note(tmp_path):
    """With acquisition QC every file loses a few events (margin events), and the export
    printed a note per file that FlowJo's counts will differ (69 lines for 69 files,
    burying any other note); it is one note naming how many and the most removed."""
    study = shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("truth"))
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[acquisition_qc]\nenabled = true\n")
    res = cytokit.analyze(study, tmp_path / "out", workers=1)
    cut = res.samples[res.samples["events_after_qc"] < res.samples["events_before_qc"]]
    assert len(cut) > 1
    done = export_wsp(tmp_path / "out", tmp_path / "w.wsp")
    said = [n for n in done.notes if "FlowJo gates every event" in n]
    assert len(said) == 1 and said[0].startswith(f"{len(cut)} sample(s): cytokit gated fewer")
