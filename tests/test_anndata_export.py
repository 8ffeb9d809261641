"""AnnData export of a results folder, checked against FlowIO and the folder's own tables.

The bundled sample study is analysed once; its export must hold FlowIO's values
(raw layer, channel order), counts.csv's gate counts, chimerism.csv's donor and
recipient events, clusters.csv's metacluster counts, and an X that is cytokit's
transform of the raw layer compensated with numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fs_helpers import read_only, unreadable

import cytokit
from cytokit.analysis import anndata_export, export_anndata, results_anndata
from cytokit.cli.app import run
from cytokit.errors import CytokitError, StudyError

ad = pytest.importorskip("anndata")
flowio = pytest.importorskip("flowio")

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    results = cytokit.analyze(SAMPLE_DATA, out, workers=1)
    return results, out


@pytest.fixture(scope="module")
def adata(analysed):
    return results_anndata(analysed[1])


def test_raw_layer_is_what_flowio_reads(adata):
    files = adata.obs["file"].cat.categories
    assert len(files) == 15
    for file in files:
        fd = flowio.FlowData(str(SAMPLE_DATA / file))
        assert list(adata.var["channel"]) == list(fd.pnn_labels)
        want = fd.as_array(preprocess=True)
        rows = (adata.obs["file"] == file).to_numpy()
        raw = adata.layers["raw"][rows].astype(np.float64)
        # the stored float32 values, exactly; the time channel is $TIMESTEP x stored value,
        # which cytokit keeps in float32 (the file's type) and FlowIO computes in float64
        t = fd.time_index
        keep = [j for j in range(raw.shape[1]) if j != t]
        np.testing.assert_array_equal(raw[:, keep], want[:, keep])
        np.testing.assert_allclose(raw[:, t], want[:, t], rtol=1.2e-7, atol=0)
        assert list(adata.var["marker"]) == [p or "" for p in fd.pns_labels]


def test_gate_membership_sums_are_counts_csv(adata, analysed):
    results, _ = analysed
    pops = adata.uns["cytokit"]["populations"]
    assert set(pops) == {"NK", "NK_bright", "NK_dim", "CIK", "T"}
    for name, path in pops.items():
        got = adata.obs.groupby("file", observed=True)[f"in_{name}"].sum()
        want = results.counts[results.counts.gate_path == path].set_index("file")["count"]
        assert {str(k): int(v) for k, v in got.items()} == {k: int(v) for k, v in want.items()}


def test_origin_counts_are_chimerism_csv(adata, analysed):
    results, _ = analysed
    chim = results.chimerism
    for name in adata.uns["cytokit"]["populations"]:
        inside = adata.obs[f"in_{name}"].to_numpy()
        origin = adata.obs[f"origin_{name}"]
        rows = chim[chim.population == name].set_index("file")
        for side in ("donor", "recipient"):
            got = adata.obs[inside & (origin == side).to_numpy()].groupby("file", observed=True)
            got = got.size().reindex(rows.index, fill_value=0)
            want = rows[f"{side}_events"].fillna(0).astype(np.int64)
            np.testing.assert_array_equal(got.to_numpy(), want.to_numpy(), err_msg=f"{name} {side}")
    # an event outside the populations and the threshold parent has no origin
    outside = ~adata.obs[[c for c in adata.obs if c.startswith("in_")]].any(axis=1)
    parent_origin = adata.obs["origin"][outside]
    assert set(parent_origin.unique()) <= {"", "donor", "recipient"}


def test_x_is_cytokit_transform_of_numpy_compensated_raw(adata):
    from cytokit.gating import LogicleTransform

    logicle = LogicleTransform(T=262144, W=0.5, M=4.5, A=0.0)
    file = adata.obs["file"].cat.categories[0]
    rows = (adata.obs["file"] == file).to_numpy()
    sample = cytokit.read_fcs(SAMPLE_DATA / file)
    spill = sample.spillover
    cols = [list(adata.var_names).index(c) for c in spill.channels]
    raw = adata.layers["raw"][rows].astype(np.float64)
    comp = raw.copy()
    comp[:, cols] = np.linalg.solve(spill.matrix.T, raw[:, cols].T).T
    np.testing.assert_allclose(adata.layers["compensated"][rows], comp, rtol=2e-6, atol=1e-3)
    transformed = adata.var["transform"] != "none"
    assert list(adata.var_names[transformed]) == [
        "FITC-A", "PE-A", "PerCP-Cy5-5-A", "PE-Cy7-A", "APC-A", "APC-H7-A", "V500-C-A"
    ]  # fmt: skip
    assert set(adata.var["transform"][transformed]) == {"logicle(T=262144, W=0.5, M=4.5, A=0)"}
    want = comp.copy()
    want[:, transformed.to_numpy()] = logicle.apply(comp[:, transformed.to_numpy()])
    np.testing.assert_allclose(adata.X[rows], want, rtol=1e-5, atol=1e-5)
    assert adata.var["compensated"].to_numpy()[cols].all()
    assert not adata.var.loc[["FSC-A", "SSC-A", "Time"], "compensated"].any()


def test_metacluster_counts_are_clusters_csv(adata, analysed):
    results, _ = analysed
    want = results.clusters[results.clusters.origin == "all"]
    want = want[want["count"] > 0]  # clusters.csv also lists empty metaclusters
    want = {(f, int(m)): int(c) for f, m, c in want[["file", "metacluster", "count"]].to_numpy()}
    obs = adata.obs[adata.obs["metacluster"] >= 0]
    got = obs.groupby(["file", "metacluster"], observed=True).size()
    assert {(str(f), int(m)): int(c) for (f, m), c in got.items()} == want
    # every threshold-parent event has a metacluster, every other event -1
    parent = results.counts[results.counts.gate_path == adata.uns["cytokit"]["threshold_parent"]]
    per_file = obs.groupby("file", observed=True).size().sort_index()
    np.testing.assert_array_equal(per_file.to_numpy(), parent.sort_values("file")["count"])
    assert set(adata.obs["metacluster"].unique()) == {-1, *range(10)}


def test_a_folder_clustered_before_content_keys_still_exports(tmp_path, monkeypatch):
    """The clustering's training draw came to be keyed on each file's content, not its
    names: a folder an older cytokit wrote (its clusters.csv trained the old way) was
    refused as "edited, or from another cytokit" by every export until analysed again,
    which rewrote its clusters. Its model is trained again the way it was made."""
    from cytokit.analysis import cohort

    real = cohort._cluster
    monkeypatch.setattr(cohort, "_cluster", lambda *a, **k: real(*a, **{**k, "legacy": True}))
    out = tmp_path / "older"
    older = cytokit.analyze(SAMPLE_DATA, out, workers=1)
    monkeypatch.undo()
    adata = results_anndata(out, events=300)
    obs = adata.obs[adata.obs["metacluster"] >= 0]
    assert len(obs) and obs["metacluster"].max() < 10
    # and it is the old way that reproduces the folder: the new one gives other counts
    fresh = cytokit.analyze(SAMPLE_DATA, tmp_path / "fresh", workers=1)
    a = older.clusters.sort_values(["file", "metacluster", "origin"])["count"].to_numpy()
    b = fresh.clusters.sort_values(["file", "metacluster", "origin"])["count"].to_numpy()
    assert not np.array_equal(a, b)


def test_settings_in_uns(adata, analysed):
    _, out = analysed
    uns = adata.uns["cytokit"]
    study = json.loads((out / "study.json").read_text())
    assert json.loads(uns["study_toml"]) == json.loads(json.dumps(study["config"], default=str))
    assert uns["strategy_digest"] == study["strategy"]["digest"]
    assert uns["threshold_parent"] == "/Lymphocytes/Singlets/Live"
    assert uns["events_per_file"] == 0


def test_events_per_file_cli_and_python_agree(adata, analysed, tmp_path, capsys):
    _, out = analysed
    h5 = tmp_path / "sub.h5ad"
    assert run(["export-anndata", str(out), str(h5), "--events", "500", "--seed", "3"]) == 0
    sub = ad.read_h5ad(h5)
    again = results_anndata(out, events=500, seed=3)
    assert sub.n_obs == again.n_obs == 15 * 500
    np.testing.assert_array_equal(sub.X, again.X)
    np.testing.assert_array_equal(sub.layers["raw"], again.layers["raw"])
    assert list(sub.obs_names) == list(again.obs_names)
    # the subset is a subset of the full export: the same rows, the same values
    full = adata[sub.obs_names]
    np.testing.assert_array_equal(full.layers["raw"], sub.layers["raw"])
    pd.testing.assert_frame_equal(
        full.obs.reset_index(drop=True).astype(str), sub.obs.reset_index(drop=True).astype(str)
    )
    other = results_anndata(out, events=500, seed=4)
    assert list(other.obs_names) != list(sub.obs_names)
    written = export_anndata(out, tmp_path / "py.h5ad", events=500, seed=3)
    assert ad.read_h5ad(written).n_obs == sub.n_obs


def test_missing_anndata_names_the_extra(analysed, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(CytokitError, match=r'pip install "cytokit-flow\[anndata\]"'):
        results_anndata(analysed[1])
    assert run(["export-anndata", str(analysed[1]), str(tmp_path / "x.h5ad")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cytokit: ") and "cytokit-flow[anndata]" in err[-1]
    assert not (tmp_path / "x.h5ad").exists()


def test_moved_study_and_changed_file_are_refused(analysed, tmp_path):
    _, out = analysed
    with pytest.raises(StudyError, match=r"--study DIR"):
        results_anndata(out, study=tmp_path / "nowhere")
    copy = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, copy)
    # the study moved: --study names it, and the export is the same (model from the store)
    moved, here = results_anndata(out, study=copy, events=50), results_anndata(out, events=50)
    np.testing.assert_array_equal(moved.X, here.X)
    pd.testing.assert_frame_equal(moved.obs, here.obs)
    fcs = sorted((copy / "fcs").glob("*.fcs"))[0]
    data = bytearray(fcs.read_bytes())
    data[-40] ^= 1  # one bit of an event value
    fcs.write_bytes(bytes(data))
    with pytest.raises(CytokitError, match=r"content changed since the analysis"):
        results_anndata(out, study=copy)
    with pytest.raises(CytokitError, match=r"events=0"):
        results_anndata(out, events=0)


def test_output_that_is_not_a_file_is_refused(analysed, tmp_path, capsys):
    _, out = analysed
    for target in (tmp_path, Path(os.devnull)):
        assert run(["export-anndata", str(out), str(target)]) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("cytokit: ") and "not a regular file" in err
    assert Path(os.devnull).is_char_device()
    assert run(["export-anndata", str(out), str(tmp_path / "x.h5ad"), "--events", "0"]) == 2


def test_a_symbolic_link_at_the_output_is_written_through_or_refused(analysed, tmp_path, capsys):
    """The link was replaced by a plain file, even one into a folder that does not exist,
    where every other writer keeps a link and refuses a dangling one."""
    _, out = analysed
    dangling = tmp_path / "a.h5ad"
    dangling.symlink_to(tmp_path / "nowhere" / "a.h5ad")
    assert run(["export-anndata", str(out), str(dangling), "--events", "50"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is a symbolic link to" in err and "make the folder or remove the link" in err
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()
    (tmp_path / "real").mkdir()
    link = tmp_path / "b.h5ad"
    link.symlink_to(tmp_path / "real" / "b.h5ad")
    assert run(["export-anndata", str(out), str(link), "--events", "50"]) == 0
    assert link.is_symlink() and (tmp_path / "real" / "b.h5ad").is_file()


def test_an_unreadable_file_is_refused_saying_to_check_its_permissions(analysed, tmp_path, capsys):
    """One AnnData holds every analysed file, so an unreadable one stops the export (as a
    changed one does) before any file is gated; the fix is the file's permissions, not
    another folder."""
    _, out = analysed
    fcs = SAMPLE_DATA / "fcs" / "P01_day007.fcs"
    with unreadable(fcs):
        assert run(["export-anndata", str(out), str(tmp_path / "x.h5ad")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"cytokit: error: {fcs}: cannot read the file: Permission denied; check its "
        "permissions (this user must be able to read it), then run again (the AnnData is "
        "written with every analysed file or not at all)"
    )
    assert "[1/15]" not in err and not (tmp_path / "x.h5ad").exists()


def test_a_folder_that_cannot_be_written_is_named_with_the_fix(
    analysed, adata, tmp_path, capsys, monkeypatch
):
    """Refused before any file is read; and where the system refuses only at the write, the
    message names the .h5ad (not the hidden temporary beside it) and the fix."""
    _, out = analysed
    ro = tmp_path / "ro"
    ro.mkdir()
    target = ro / "x.h5ad"
    fix = f"choose a writable folder, or change the permissions of {ro}"
    monkeypatch.setattr(anndata_export, "results_anndata", lambda *a, **k: adata)
    with read_only(ro):
        assert run(["export-anndata", str(out), str(target)]) == 1
        err = capsys.readouterr().err.splitlines()[-1]
        assert err == f"cytokit: error: {target}: cannot be written ({ro} is not writable); {fix}"
        with monkeypatch.context() as m:
            m.setattr(os, "access", lambda *a, **k: True)  # a check the system passes
            for where in (target, ro / "new" / "x.h5ad"):
                assert run(["export-anndata", str(out), str(where)]) == 1
                last = capsys.readouterr().err.splitlines()[-1]
                assert last.startswith(f"cytokit: error: {where}: cannot write the AnnData file (")
                assert last.endswith(f"); {fix}") and ".tmp" not in last
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda t: t + '\n[acquisition_qc]\nsensitivity = "high"\n', r"\[acquisition_qc\]"),
        (lambda t: t.replace("[qc]\n", "[qc]\nmax_nonfinite = 0.5\n", 1), r"\[qc\] max_nonfinite"),
    ],
)
def test_settings_changed_since_the_analysis_are_refused_by_both_exports(
    analysed, tmp_path, edit, named
):
    """The exports gate the files again with the study as it is now: with [acquisition_qc]
    turned on or changed since the analysis, export-anndata held other events than
    samples.csv kept (5,338 against 7,180) and export-wsp wrote other gates, both with
    exit 0. A change of what gating reads is refused, naming it."""
    from cytokit.analysis import export_wsp

    _, out = analysed
    copy = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, copy)
    toml = copy / "study.toml"
    text = toml.read_text()
    toml.write_text(edit(text))
    assert toml.read_text() != text
    with pytest.raises(StudyError, match=rf"study.toml's {named} changed since these results"):
        results_anndata(out, study=copy, events=50)
    with pytest.raises(CytokitError, match=rf"study.toml's {named} changed since the results"):
        export_wsp(out, tmp_path / "x.wsp", study=copy)
    assert not (tmp_path / "x.wsp").exists()


def test_a_population_added_since_the_analysis_is_named_not_a_crash(analysed, tmp_path):
    """A population added to study.toml since the analysis crashed export-anndata
    (IndexError in the clustering's training pool); the export names it."""
    _, out = analysed
    copy = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, copy)
    toml = copy / "study.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[populations]\n", '[populations]\nAll = "/Lymphocytes"\n', 1))
    assert toml.read_text() != text
    with pytest.raises(StudyError, match=r"study.toml's \[populations\] changed since"):
        results_anndata(out, study=copy, events=50)


def test_gating_changes_reads_the_settings_as_the_analysis_does():
    """study.toml compared as the analysis reads it: a default spelt out, QC off by
    `enabled = false` rather than by no table, an integer for a float, or a setting
    gating does not read is no change; what gating reads is, by name."""
    import copy

    from cytokit.study import load_study

    study = load_study(SAMPLE_DATA)
    same = copy.deepcopy(study.config)

    def changes(edit):
        recorded = copy.deepcopy(same)
        edit(recorded)
        return study.gating_changes(json.loads(json.dumps(recorded)))

    assert study.gating_changes(None) == [] and changes(lambda c: None) == []
    assert changes(lambda c: c["gating"].update(seed=0)) == []
    assert changes(lambda c: c["qc"].update(max_nonfinite=0.01)) == []
    assert changes(lambda c: c.update(acquisition_qc={"enabled": False})) == []
    assert changes(lambda c: c["transform"].update(T=int(c["transform"]["T"]))) == []
    assert changes(lambda c: c["populations"].update(NK2="/Lymphocytes")) == []
    assert changes(lambda c: c.update(acquisition_qc={})) == ["[acquisition_qc]"]
    assert changes(lambda c: c["gating"].update(seed=7)) == ["[gating] seed"]
    assert changes(lambda c: c["qc"].update(max_nonfinite=0.5)) == ["[qc] max_nonfinite"]
    assert changes(lambda c: c["panel"].update(CD3="PE-A")) == ["[panel]"]
    assert changes(lambda c: c["compensation"].update(source="none")) == ["[compensation]"]
    # a marker's own transform equal to the study's is none; another is a change
    study_transform = {k: v for k, v in same["transform"].items() if not isinstance(v, dict)}
    assert changes(lambda c: c["transform"].update(CD56=dict(study_transform))) == []
    other = {**study_transform, "W": 1.0}
    assert changes(lambda c: c["transform"].update(CD56=other)) == ["[transform]"]
    # QC's warning level moves no event
    qc = {"enabled": True}
    no_qc = replace(study, settings=replace(study.settings, acquisition_qc=None))
    assert no_qc.gating_changes({**same, "acquisition_qc": qc}) == ["[acquisition_qc]"]
    on = load_study_text(study, same, acquisition_qc=qc)
    assert on.gating_changes({**same, "acquisition_qc": {**qc, "warn_removed_pct": 5}}) == []
    assert on.gating_changes({**same, "acquisition_qc": {**qc, "max_removed_pct": 5}}) == [
        "[acquisition_qc]"
    ]
    # the channels QC leaves out, in another order or one named twice, remove the same
    # events: no change (both exports refused the results); another channel is one
    two = {**qc, "exclude_channels": ["FSC-H", "SSC-A"]}
    both = load_study_text(study, same, acquisition_qc=two)
    for other in (["SSC-A", "FSC-H"], ["FSC-H", "SSC-A", "FSC-H"]):
        assert (
            both.gating_changes({**same, "acquisition_qc": {**qc, "exclude_channels": other}}) == []
        )
    assert both.gating_changes(
        {**same, "acquisition_qc": {**qc, "exclude_channels": ["FSC-H"]}}
    ) == ["[acquisition_qc]"]


def load_study_text(study, config: dict, **tables):
    """`study` as load_study reads its folder with `tables` set in study.toml."""
    from cytokit.study.settings import parse_settings

    settings, problems = parse_settings({**config, **tables}, "study.toml")
    assert not problems
    return replace(study, settings=settings, config={**config, **tables})


@pytest.fixture(scope="module")
def files_study(tmp_path_factory):
    """A simulated study with tubes, a tube strategy of its own file and a compensation
    matrix from a CSV, analysed."""
    from cytokit.fcs import read_fcs

    root = tmp_path_factory.mktemp("files") / "study"
    args = ["--patients", "1", "--events", "5000", "--days", "7", "--seed", "5", "--tubes"]
    assert run(["simulate", str(root), *args]) == 0
    spill = read_fcs(next((root / "fcs").glob("P01_day007*.fcs"))).spillover
    lines = [",".join(spill.channels)]
    lines += [",".join(f"{x:.6f}" for x in row) for row in spill.matrix]
    (root / "comp.csv").write_text("\n".join(lines) + "\n")
    shutil.copy(root / "strategy.yaml", root / "strategy_r.yaml")
    toml = root / "study.toml"
    text = toml.read_text().replace('source = "file"', 'source = "comp.csv"')
    head, tube, rest = text.partition("[tubes.receptors]\n")
    assert tube and 'source = "comp.csv"' in text
    toml.write_text(head + tube + 'strategy = "strategy_r.yaml"\n' + rest)
    out = root.parent / "results"
    cytokit.analyze(root, out, workers=1)
    return root, out


def _edited(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    edit(dst)
    return dst


def test_the_files_gating_reads_are_compared_by_content_not_by_path(files_study, tmp_path):
    """A compensation CSV or a tube's strategy edited under the same name was gated with
    its new content by both exports (exit 0, 657 T cells where counts.csv has 658); the
    same files named ./comp.csv or by their absolute path were refused as changed."""
    from cytokit.analysis import export_wsp
    from cytokit.study import load_study

    root, out = files_study
    meta = json.loads((out / "study.json").read_text())
    assert set(meta["gating_files"]) == {"tubes", "compensation"}

    def changes(study: Path) -> tuple[list[str], list[str]]:
        st = load_study(study)
        return st.gating_changes(meta["config"]), st.gating_file_changes(meta["gating_files"])

    def toml(old: str, new: str):
        def edit(d: Path) -> None:
            p = d / "study.toml"
            assert old in p.read_text()
            p.write_text(p.read_text().replace(old, new))

        return edit

    assert changes(root) == ([], [])
    for i, (old, new) in enumerate(
        [
            ('source = "comp.csv"', 'source = "./comp.csv"'),
            ('strategy = "strategy_r.yaml"', 'strategy = "./strategy_r.yaml"'),
            ('strategy = "strategy.yaml"', 'strategy = "./strategy.yaml"'),
        ]
    ):
        assert changes(_edited(root, tmp_path / f"same{i}", toml(old, new))) == ([], []), new

    def matrix(d: Path) -> None:
        lines = (d / "comp.csv").read_text().splitlines()
        cells = lines[1].split(",")
        cells[1] = f"{float(cells[1]) + 0.05:.6f}"
        lines[1] = ",".join(cells)
        (d / "comp.csv").write_text("\n".join(lines) + "\n")

    def receptors(d: Path) -> None:
        p = d / "strategy_r.yaml"
        text = p.read_text()
        p.write_text(text.replace("fallback: 0.", "fallback: 0.0", 1))
        assert p.read_text() != text

    comp = _edited(root, tmp_path / "comp", matrix)
    assert changes(comp) == ([], ["comp.csv ([compensation] source)"])
    tube = _edited(root, tmp_path / "tube", receptors)
    assert changes(tube) == ([], ["strategy_r.yaml ([tubes.receptors] strategy)"])
    named = r"comp.csv \(\[compensation\] source\) changed since"
    with pytest.raises(StudyError, match=named):
        results_anndata(out, study=comp, events=20)
    with pytest.raises(CytokitError, match=named):
        export_wsp(out, tmp_path / "x.wsp", study=comp)
    assert not (tmp_path / "x.wsp").exists()
    with pytest.raises(CytokitError, match=r"strategy_r.yaml \(\[tubes.receptors\] strategy\)"):
        export_wsp(out, tmp_path / "x.wsp", study=tube)


def _without_time(path: Path) -> None:
    """Rewrite `path` without its Time channel (the last) and its $TIMESTEP."""
    from cytokit.fcs import read_fcs

    s = read_fcs(path, scale=False)
    assert s.channel_names[-1] == "Time"
    keywords = {k: v for k, v in s.keywords.items() if not k.upper().startswith(("$P", "$TIME"))}
    cytokit.write_fcs(
        path,
        cytokit.Sample(
            events=s.events[:, :-1].copy(), channels=s.channels[:-1], keywords=keywords,
            spillover=s.spillover, scaled=False,
        ),
    )  # fmt: skip


def test_a_file_without_a_time_channel_is_exported_with_nan_there(tmp_path):
    """analyze keeps a file without a Time channel (QC checks its margins only); the
    export refused the study ("export a tube at a time", of a one-tube study) after
    gating the files before it. Its events now have NaN in the Time column."""
    study = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[acquisition_qc]\nenabled = true\nmax_removed_pct = 60\n")
    _without_time(study / "fcs" / "P01_day007.fcs")
    results = cytokit.analyze(study, tmp_path / "out", workers=1)
    data = results_anndata(tmp_path / "out")
    assert list(data.var_names)[-1] == "Time"
    per_file = data.obs["file"].value_counts()
    kept = results.samples.set_index("file")["events_after_qc"]
    assert all(per_file[f] == kept[f] for f in kept.index)
    mine = (data.obs["file"] == "fcs/P01_day007.fcs").to_numpy()
    for values in (data.X, data.layers["raw"], data.layers["compensated"]):
        assert np.isnan(values[mine, -1]).all() and np.isfinite(values[~mine, -1]).all()
        assert np.isfinite(values[mine, :-1]).all()


def test_files_of_other_channels_are_refused_before_any_is_gated(tmp_path):
    """A file with a further channel: refused from the headers, naming both files, before
    the files before it were gated again (the progress callback is never called)."""
    study = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    from cytokit.fcs import read_fcs
    from cytokit.sample import Channel

    path = study / "fcs" / "P02_day043.fcs"
    s = read_fcs(path, scale=False)
    extra = Channel(len(s.channels), "FSC-W", range=262_144)
    events = np.column_stack([s.events, s.events[:, 0]])
    cytokit.write_fcs(path, replace(s, events=events, channels=(*s.channels, extra)))
    cytokit.analyze(study, tmp_path / "out", workers=1)
    calls = []
    with pytest.raises(
        CytokitError,
        match=r"P02_day043\.fcs: its channels .* differ from .*take it out of the manifest",
    ):
        results_anndata(tmp_path / "out", progress=lambda *a: calls.append(a))
    assert calls == []
