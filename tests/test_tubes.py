"""Multi-tube studies: ``[tubes.<name>]`` tables, the manifest's ``tube`` column, per-tube checks."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_helpers import make_study

import cytokit
from cytokit.cli.app import run
from cytokit.errors import StudyError
from cytokit.sample import Channel
from cytokit.simulate import preset_design
from cytokit.study import load_study

RECEPTOR_TUBE = """
[tubes.receptors]
panel = { NKG2A = "BV421-A", KIR2DL1 = "FITC-A" }
phenotype = { markers = ["NKG2A", "KIR2DL1"] }
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    design = preset_design("sample", seed=11, n_patients=2, n_events=2000, days=(-7, 7, 14))
    return make_study(tmp_path_factory.mktemp("tubes") / "s", design)


@pytest.fixture
def study(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "s")


def _receptor_file(
    study, source: str, name: str, *, with_nkg2a: bool = True, keep_spillover: bool = False
) -> str:
    """A receptor-tube file: `source`'s events with FITC-A carrying KIR2DL1 (not HLA-A2)
    and, when asked, a BV421-A channel carrying NKG2A (outside the spillover matrix, which
    is dropped unless `keep_spillover`)."""
    sample = cytokit.read_fcs(study / source, scale=False)
    channels = [
        dataclasses.replace(c, marker="KIR2DL1") if c.name == "FITC-A" else c
        for c in sample.channels
    ]
    events = sample.events
    if with_nkg2a:
        rng = np.random.default_rng(3)
        extra = rng.uniform(0, 200_000, (len(events), 1)).astype(events.dtype)
        events = np.hstack([events, extra])
        channels.append(Channel(len(channels), "BV421-A", "NKG2A", range=262_144, bits=32))
    out = dataclasses.replace(
        sample, events=np.ascontiguousarray(events), channels=tuple(channels), keywords={}
    )
    if out.spillover is not None and with_nkg2a and not keep_spillover:
        out = dataclasses.replace(out, spillover=None)
    cytokit.write_fcs(study / name, out)
    return name


def _add_rows(study, rows: list[tuple[str, str, int, str]]) -> None:
    """Append manifest lines (file, patient, day, tube), giving every line a tube cell."""
    path = study / "manifest.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    out = [lines[0] + ",tube"] + [line + "," for line in lines[1:]]
    for file, patient, day, tube in rows:
        first = next(line for line in lines[1:] if line.split(",")[1] == patient).split(",")
        rec = dict(zip(header, first, strict=True))
        rec.update(file=file, patient=patient, day=str(day))
        out.append(",".join(rec[h] for h in header) + f",{tube}")
    path.write_text("\n".join(out) + "\n")


def test_second_tube_with_its_own_channel_loads(study):
    # one patient-day has a receptor tube with an NKG2A channel the other files lack:
    # the study loads, and the receptor tube is not looked for in the other files
    (study / "study.toml").write_text((study / "study.toml").read_text() + RECEPTOR_TUBE)
    name = _receptor_file(study, "fcs/P01_day007.fcs", "fcs/P01_day007_receptors.fcs")
    _add_rows(study, [(name, "P01", 7, "receptors")])
    s = load_study(study)
    assert list(s.tubes) == ["default", "receptors"]
    assert s.tubes_used() == ["default", "receptors"]
    receptors = [r for r in s.rows if s.tube_of(r) == "receptors"]
    assert [r.file.name for r in receptors] == ["P01_day007_receptors.fcs"]
    tube = s.tubes["receptors"]
    # FITC-A carries KIR2DL1 in this tube: the inherited HLA-A2 entry is dropped
    assert tube.panel.markers["KIR2DL1"] == "FITC-A" and "HLA-A2" not in tube.panel
    assert tube.panel.markers["CD3"] == s.panel.markers["CD3"]
    assert tube.populations["NK"] == s.settings.populations["NK"]
    assert s.tube_origin == {"default": True, "receptors": False}


def test_tube_problems_said_once_per_tube(study):
    (study / "study.toml").write_text((study / "study.toml").read_text() + RECEPTOR_TUBE)
    a = _receptor_file(study, "fcs/P01_day007.fcs", "fcs/r1.fcs", with_nkg2a=False)
    b = _receptor_file(study, "fcs/P02_day014.fcs", "fcs/r2.fcs", with_nkg2a=False)
    _add_rows(study, [(a, "P01", 7, "receptors"), (b, "P02", 14, "receptors")])
    with pytest.raises(StudyError) as err:
        load_study(study)
    text = str(err.value)
    assert "1 problem(s)" in text, text
    (line,) = [x for x in text.splitlines() if "NKG2A" in x]
    assert line.strip().startswith("tube 'receptors': in all 2 files:"), line
    assert "BV421-A" in line


def test_unknown_tube_and_bad_tube_table(study):
    (study / "study.toml").write_text(
        (study / "study.toml").read_text()
        + '\n[tubes.function]\nstrategy = "strategy.xml"\ncolour = "red"\n'
        + 'phenotype = { markers = ["CD107a"] }\n'
    )
    name = _receptor_file(study, "fcs/P01_day007.fcs", "fcs/r1.fcs")
    _add_rows(study, [(name, "P01", 7, "recepters")])
    with pytest.raises(StudyError) as err:
        load_study(study)
    text = str(err.value)
    assert "unknown key 'colour'" in text
    assert "phenotype marker 'CD107a' is not in the tube's panel" in text
    assert "tube 'recepters' is not a tube of study.toml" in text


def test_one_file_per_tube_per_visit(study):
    # two files of one tube on one visit are refused; one per tube is a visit of two tubes
    (study / "study.toml").write_text((study / "study.toml").read_text() + RECEPTOR_TUBE)
    a = _receptor_file(study, "fcs/P01_day007.fcs", "fcs/r1.fcs")
    b = _receptor_file(study, "fcs/P01_day014.fcs", "fcs/r2.fcs")
    _add_rows(study, [(a, "P01", 7, "receptors"), (b, "P01", 7, "receptors")])
    with pytest.raises(
        StudyError,
        match="tube 'receptors' already has a file on line 8; a visit has one file per tube",
    ):
        load_study(study)


def test_one_tube_study_unchanged(study):
    s = load_study(study)
    assert list(s.tubes) == ["default"] and s.chimerism_tube == "default"
    assert s.tubes_used() == ["default"] and s.tube_origin == {"default": True}
    assert all(s.tube_of(r) == "default" and r.tube == "" for r in s.rows)


def test_analyze_measures_every_tube(study, tmp_path, capsys):
    # a receptor tube on one visit: its file is gated with its own panel and measured, the
    # chimerism tube's tables are those of the study without it, and every row says its tube
    base = cytokit.analyze(study, out=tmp_path / "base", workers=1)
    (study / "study.toml").write_text((study / "study.toml").read_text() + RECEPTOR_TUBE)
    name = _receptor_file(study, "fcs/P01_day007.fcs", "fcs/r1.fcs", keep_spillover=True)
    _add_rows(study, [(name, "P01", 7, "receptors")])
    res = cytokit.analyze(study, out=tmp_path / "out", workers=1)
    assert res.failures.empty, res.failures.to_dict("records")
    by_tube = res.samples.set_index("file")["tube"].to_dict()
    assert by_tube.pop(name) == "receptors" and set(by_tube.values()) == {"default"}
    # chimerism (and its trends) from the chimerism tube only, unchanged by the second tube
    assert (res.chimerism["tube"] == "default").all()
    keep = [c for c in base.chimerism.columns if c != "tube"]
    pd.testing.assert_frame_equal(res.chimerism[keep], base.chimerism[keep])
    pd.testing.assert_frame_equal(res.trends, base.trends)
    # the receptor file holds the default file's scatter, CD3, CD56 and viability events:
    # the same gates count the same events, and it has no counting basis
    counts = res.counts.set_index(["file", "gate_path"])["count"]
    source = counts.loc["fcs/P01_day007.fcs"]
    assert counts.loc[name].reindex(source.index).tolist() == source.tolist()
    assert res.counts.loc[res.counts["file"] == name, "per_ul"].isna().all()
    # phenotype of the receptor tube: its own markers, no origin (no HLA-A2 in its panel)
    ph = res.phenotype[res.phenotype["tube"] == "receptors"]
    assert set(ph["marker"]) == {"NKG2A", "KIR2DL1"} and set(ph["origin"]) == {"all"}
    default = res.phenotype[res.phenotype["tube"] == "default"]
    pd.testing.assert_frame_equal(
        default[keep_ph := [c for c in base.phenotype.columns if c != "tube"]].reset_index(
            drop=True
        ),
        base.phenotype[keep_ph],
    )
    # the receptor tube's NK medians are those of the NK events Study.gate finds in its file
    s = load_study(study)
    sample = cytokit.read_fcs(study / name)
    gated = s.gate(sample, tube="receptors")
    nk = gated.membership(s.tubes["receptors"].populations["NK"])
    columns = s.tube_panel("receptors").columns(sample, ["NKG2A", "KIR2DL1"])
    # compensated with the file's matrix (BV421-A is outside it: its values as acquired)
    spill = sample.spillover
    names = [c.name for c in sample.channels]
    at = [names.index(c) for c in spill.channels]
    values = sample.events.astype(np.float64)
    values[:, at] = values[:, at] @ np.linalg.inv(np.asarray(spill.matrix, dtype=np.float64))
    for marker, column in columns.items():
        want = float(np.median(values[nk, column]))
        row = ph[(ph["population"] == "NK") & (ph["marker"] == marker)]
        assert row["median"].item() == pytest.approx(want, rel=1e-5, abs=1e-3)
        assert row["events"].item() == nk.sum()
    # the statement per tube: which has origin
    tubes = res.tubes.set_index("tube")
    assert tubes.loc["default", "origin"] and tubes.loc["default", "chimerism"]
    assert not tubes.loc["receptors", "origin"] and not tubes.loc["receptors", "chimerism"]
    assert "without origin" in tubes.loc["receptors", "note"]
    assert res.study["tubes"]["receptors"]["origin"] is False

    # the doors agree per tube: analyze, cytokit gate --study --tube, Study.gate
    def by_gate(frame):
        return {
            (Path(f).name, g): (int(c), int(pc))
            for f, g, c, pc in zip(
                frame["file"],
                frame["gate_path"],
                frame["count"],
                frame["parent_count"],
                strict=True,
            )
        }

    for tube in ("default", "receptors"):
        files = [r.file for r in s.rows if s.tube_of(r) == tube]
        names = {f.name for f in files}
        analysed = res.counts[res.counts["tube"] == tube]
        want = by_gate(analysed)
        assert {k[0] for k in want} == names
        code = run(["gate", "--study", str(study), "--tube", tube, "--out", str(tmp_path / tube),
                    "--workers", "1"])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        assert by_gate(pd.read_csv(tmp_path / tube / "counts.csv")) == want, tube
        api = {}
        for f in files:
            api.update(by_gate(s.gate(cytokit.read_fcs(f), tube=tube).counts.assign(file=str(f))))
        assert api == want, tube
    # without --tube, a study of two tubes is refused rather than gated with one strategy
    assert run(["gate", "--study", str(study), "--out", str(tmp_path / "g")]) == 2
    assert "give --tube NAME" in " ".join(capsys.readouterr().err.split())
    # and it reads back from the folder
    back = cytokit.load_results(tmp_path / "out")
    assert back.tubes["origin"].tolist() == [True, False]
    assert (back.phenotype["tube"] == res.phenotype["tube"]).all()


def test_chimerism_tube_names_a_tube(study):
    (study / "study.toml").write_text(
        (study / "study.toml").read_text().replace("[chimerism]\n", '[chimerism]\ntube = "cells"\n')
        + RECEPTOR_TUBE
    )
    with pytest.raises(
        StudyError,
        match=r"\[chimerism\] tube = 'cells' names no tube; tubes are: default, receptors",
    ):
        load_study(study)
    text = (study / "study.toml").read_text().replace('tube = "cells"', 'tube = "receptors"')
    (study / "study.toml").write_text(text)
    assert load_study(study).chimerism_tube == "receptors"
