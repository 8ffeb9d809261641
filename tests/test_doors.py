"""One FCS file and one strategy give one answer, whichever door the lab uses.

The doors: ``cytokit analyze`` (counts.csv), ``cytokit gate`` (with ``--study``,
and plain for a strategy that carries its transform), the Python API
(``load_strategy(path).apply(sample)`` and `Study.gate`). They are compared gate
by gate and file by file on ``sample_data/`` and on fresh simulated studies,
and the plain door is checked against the simulator's per-event truth.

Then the other half of "one answer": every way of naming a population in
study.toml (path, path without its leading ``/``, gate id, quadrant id,
unique name) gives the same analysis tables, with the canonical path in each.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from study_helpers import make_study, simulated_strategy

import cytokit
from cytokit import gating as G
from cytokit.analysis import make_task
from cytokit.cli.app import run
from cytokit.errors import GatingError, StudyError
from cytokit.gating import load_strategy
from cytokit.simulate import preset_design, simulate_study
from cytokit.study import load_study

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
LIVE = "/Lymphocytes/Singlets/Live"
# simulator labels of the populations the sample strategy gates
TRUTH = {
    f"{LIVE}/CD3-CD56+": ("NK_bright", "NK_dim"),
    f"{LIVE}/CD3-CD56+/CD56bright": ("NK_bright",),
    f"{LIVE}/CD3+CD56+": ("CIK",),
    f"{LIVE}/CD3+CD56-": ("T_CD8neg", "T_CD8pos"),
    "/Beads": ("bead",),
}
TABLES = ("counts", "chimerism", "thresholds", "phenotype", "trends", "samples", "qc")


def _by_gate(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, int]]:
    """{(file name, gate path): (count, parent count)} of a counts table."""
    return {
        (Path(f).name, p): (int(c), int(pc))
        for f, p, c, pc in zip(
            frame["file"], frame["gate_path"], frame["count"], frame["parent_count"], strict=True
        )
    }


def _api(files, gate) -> dict:
    out = {}
    for f in files:
        counts = gate(cytokit.read_fcs(f)).counts.assign(file=str(f))
        out.update(_by_gate(counts))
    return out


def _gate_cli(args, capsys) -> dict:
    code = run(["gate", *map(str, args), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    out = Path(args[args.index("--out") + 1])
    assert (out / "failures.csv").read_text().count("\n") == 1  # the header only
    return _by_gate(pd.read_csv(out / "counts.csv"))


def _same(doors: dict[str, dict]) -> None:
    """Every door gives every file and gate the same (count, parent count)."""
    (first, want), *rest = doors.items()
    assert want, first
    for name, got in rest:
        assert got.keys() == want.keys(), (first, name)
        diff = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
        assert not diff, f"{name} differs from {first}: {dict(list(diff.items())[:5])}"


# -- item 1: the strategy carries what it needs; gate and analyze agree ------------------------
def test_plain_sample_strategy_gates_like_the_study():
    """sample_data/strategy.yaml read plainly gates P01 day 7 as the study does (the report's
    file: Live 697 against 3221, CD3+CD56+ 638 against 31 before), and close to the truth."""
    study = load_study(SAMPLE_DATA)
    path = SAMPLE_DATA / "fcs" / "P01_day007.fcs"
    sample = cytokit.read_fcs(path)
    plain = load_strategy(SAMPLE_DATA / "strategy.yaml").apply(sample)
    measured = _by_gate(make_task(study)(path)["counts"].assign(file=str(path)))
    _same(
        {
            "analyze pass 1": measured,
            "load_strategy(path).apply": _by_gate(plain.counts.assign(file=str(path))),
        }
    )
    via_study = _by_gate(study.gate(sample).counts.assign(file=str(path)))
    _same({"analyze pass 1": measured, "Study.gate": via_study})
    truth = np.load(path.with_suffix(".truth.npz"))
    names = [str(x) for x in truth["label_names"]]
    for gate_path, labels in TRUTH.items():
        t = np.isin(truth["label"], [names.index(x) for x in labels])
        m = plain.membership(gate_path)
        assert 2 * np.sum(m & t) / (m.sum() + t.sum()) >= 0.95, gate_path


def test_streamed_door_gates_like_the_others(tmp_path):
    """`apply_file` (the file gated while it is read) against analyze's pass 1, Study.gate and
    apply, on P01 day 7 with the sample strategy fitted on it, as Gating-ML too."""
    study = load_study(SAMPLE_DATA)
    path = SAMPLE_DATA / "fcs" / "P01_day007.fcs"
    sample = cytokit.read_fcs(path)
    strategy = load_strategy(SAMPLE_DATA / "strategy.yaml")
    with pytest.raises(GatingError, match="adaptive gate"):
        strategy.apply_file(path)
    fitted = strategy.fit(sample)
    xml = fitted.to_gatingml(tmp_path / "P01_day007.xml")
    doors = {
        "analyze pass 1": _by_gate(make_task(study)(path)["counts"].assign(file=str(path))),
        "load_strategy(path).apply": _api([path], strategy.apply),
        "fit(sample).apply_file": _by_gate(
            fitted.apply_file(path, block_events=4096).counts.assign(file=str(path))
        ),
        "Gating-ML apply_file": _by_gate(
            load_strategy(xml).apply_file(path, block_events=5000).counts.assign(file=str(path))
        ),
    }
    _same(doors)


@pytest.mark.slow
def test_three_doors_on_sample_data(tmp_path, capsys):
    files = [r.file for r in load_study(SAMPLE_DATA).rows]
    assert len(files) == 15
    results = cytokit.analyze(SAMPLE_DATA, tmp_path / "analyze", workers=1)
    assert len(results.failures) == 0
    study = load_study(SAMPLE_DATA)
    strategy = load_strategy(SAMPLE_DATA / "strategy.yaml")
    _same(
        {
            "analyze counts.csv": _by_gate(pd.read_csv(tmp_path / "analyze" / "counts.csv")),
            "gate --study": _gate_cli(["--study", SAMPLE_DATA, "--out", tmp_path / "g1"], capsys),
            "gate STRATEGY FILES": _gate_cli(
                [SAMPLE_DATA / "strategy.yaml", SAMPLE_DATA / "fcs", "--out", tmp_path / "g2"],
                capsys,
            ),
            "Study.gate": _api(files, study.gate),
            "load_strategy(path).apply": _api(files, strategy.apply),
        }
    )


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A fresh study from ``cytokit simulate`` whose gating seed matters: its lymphocyte and
    bead gates fit on a random 2,000 of their events, and study.toml sets [gating] seed."""
    folder = tmp_path_factory.mktemp("doors") / "sim"
    args = "--seed 31 --patients 2 --events 12000 --days=-7,7,14 --workers 1".split()
    code = run(["simulate", str(folder), *args])
    assert code == 0
    yaml = folder / "strategy.yaml"
    text = yaml.read_text()
    assert text.count("    cluster: [FSC-A, SSC-A]\n") == 2
    yaml.write_text(
        text.replace(
            "    cluster: [FSC-A, SSC-A]\n", "    cluster: [FSC-A, SSC-A]\n    fit_events: 2000\n"
        )
    )
    toml = folder / "study.toml"
    toml.write_text(toml.read_text().replace("[gating]\n", "[gating]\nseed = 7\n"))
    return folder


@pytest.mark.slow
def test_three_doors_on_a_simulated_study(simulated, tmp_path, capsys):
    study = load_study(simulated)
    assert study.settings.gating_seed == 7
    files = [r.file for r in study.rows]
    cytokit.analyze(simulated, tmp_path / "analyze", workers=1)
    strategy = load_strategy(simulated / "strategy.yaml")
    doors = {
        "analyze counts.csv": _by_gate(pd.read_csv(tmp_path / "analyze" / "counts.csv")),
        "gate --study": _gate_cli(["--study", simulated, "--out", tmp_path / "g1"], capsys),
        "gate --study STRATEGY FILES": _gate_cli(
            ["--study", simulated, simulated / "strategy.yaml", *files, "--out", tmp_path / "g2"],
            capsys,
        ),
        "Study.gate": _api(files, study.gate),
        "load_strategy(path).apply(seed=7)": _api(files, lambda s: strategy.apply(s, seed=7)),
    }
    _same(doors)
    # the seed is part of the answer: gating with another one moves some adaptive gate
    other = _api(files, lambda s: strategy.apply(s, seed=0))
    assert other != doors["Study.gate"]


def test_gate_usage_errors(capsys):
    assert run(["gate", "--out", "x"]) == 2
    assert "give a STRATEGY file" in capsys.readouterr().err
    assert run(["gate", str(SAMPLE_DATA / "strategy.yaml"), "--out", "x"]) == 2
    code = run(["gate", "--study", str(SAMPLE_DATA), "--compensation", "none", "--out", "x"])
    assert code == 2
    assert "drop --compensation" in capsys.readouterr().err


def test_a_file_the_manifest_lists_but_that_is_gone_is_named_by_its_line_in_both_doors(
    tmp_path, capsys
):
    """analyze's failure of a missing file named its manifest line; gate --study said only
    "check the path", leaving the user to find which line of the manifest to correct."""
    study = _study_copy(tmp_path)
    (study / "fcs" / "P01_day007.fcs").unlink()
    said = "not found: manifest.csv line 3 lists 'fcs/P01_day007.fcs'; correct the name there"
    for args in (["analyze", str(study), "--no-report"], ["gate", "--study", str(study)]):
        out = tmp_path / args[0]
        assert run([*args, "--out", str(out), "--workers", "1"]) == 0  # the others are done
        assert said in capsys.readouterr().err
        failed = pd.read_csv(out / "failures.csv")
        assert len(failed) == 1 and failed["reason"].iloc[0].startswith(said)


SAMPLE_TRANSFORM = "transform: {type: logicle, T: 262144, W: 0.5, M: 4.5, A: 0}\n"


def _study_copy(tmp_path: Path) -> Path:
    """sample_data without its FCS files' truth (a study to edit)."""
    out = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, out, ignore=shutil.ignore_patterns("*.npz", "truth"))
    return out


def test_a_strategy_without_its_transform_does_not_load_plainly(tmp_path):
    folder = _study_copy(tmp_path)
    yaml = folder / "strategy.yaml"
    text = yaml.read_text()
    assert SAMPLE_TRANSFORM in text
    yaml.write_text(text.replace(SAMPLE_TRANSFORM, ""))
    with pytest.raises(GatingError, match=r"reads Viability, a fluorescence dimension.*--study"):
        load_strategy(yaml)
    # the study gives its [transform]: the same gates as the file that states it
    got = load_study(folder, check_files=False).load_strategy()
    assert got.gates == load_study(SAMPLE_DATA, check_files=False).load_strategy().gates


def test_strategy_and_study_transforms_must_agree(tmp_path):
    folder = _study_copy(tmp_path)
    toml = folder / "study.toml"
    toml.write_text(toml.read_text().replace("W = 0.5", "W = 1.0"))
    with pytest.raises(
        StudyError,
        match=r"strategy\.yaml, line \d+: gate 'Live' reads Viability as "
        r"LogicleTransform\(T=262144.0, W=0.5.*makes it LogicleTransform\(T=262144.0, W=1.0",
    ):
        load_study(folder, check_files=False, strategy="strategy.yaml")
    code = run(["gate", "--study", str(folder), "--out", str(tmp_path / "g")])
    assert code == 1


def test_strategy_panel_and_study_panel_must_agree(tmp_path):
    folder = _study_copy(tmp_path)
    yaml = folder / "strategy.yaml"
    yaml.write_text(
        yaml.read_text().replace(SAMPLE_TRANSFORM, SAMPLE_TRANSFORM + "panel: {CD3: PE-A}\n")
    )
    with pytest.raises(StudyError, match=r"panel: maps CD3 to 'PE-A' but .* maps it to 'APC-A'"):
        load_study(folder, check_files=False, strategy="strategy.yaml")
    yaml.write_text(yaml.read_text().replace("{CD3: PE-A}", "{CD3: APC-A}"))
    want = load_study(SAMPLE_DATA, check_files=False).load_strategy().gates
    assert load_study(folder, check_files=False, strategy="strategy.yaml").gating.gates == want


def test_a_marker_the_file_does_not_name_needs_a_panel(tmp_path):
    """Without $PnS markers the strategy's CD3 is no channel: an error naming the fix; a panel
    (the file's panel:, or panel=) makes it the channel the panel says."""
    rng = np.random.default_rng(5)
    events = np.column_stack([rng.uniform(0, 2e5, 2000), 10 ** rng.uniform(0, 5, 2000)]).astype(
        np.float32
    )
    sample = cytokit.Sample(events, [cytokit.Channel(0, "FSC-A"), cytokit.Channel(1, "APC-A")])
    text = "transform: logicle\ngates:\n  - {name: T, range: {CD3: [0.5, null]}}\n"
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(GatingError, match=r"'CD3'.*If 'CD3' is a marker.*--study DIR.*panel="):
        load_strategy(tmp_path / "s.yaml").apply(sample)
    want = (G.LogicleTransform().apply(events[:, 1].astype(np.float64)) >= 0.5).sum()
    got = load_strategy(tmp_path / "s.yaml", panel={"CD3": "APC-A"}).apply(sample).count("/T")
    assert got == want > 0
    (tmp_path / "p.yaml").write_text(text.replace("gates:", "panel: {CD3: APC-A}\ngates:"))
    assert load_strategy(tmp_path / "p.yaml").apply(sample).count("/T") == want


# -- item 2: every way of naming a population, one canonical path ------------------------------
def test_population_names_resolve_to_one_population_or_fail_listing_them():
    s = load_strategy(SAMPLE_DATA / "strategy.yaml")
    nk = f"{LIVE}/CD3-CD56+"
    assert s.population(nk).id == nk  # a YAML quadrant's id is its path
    assert s.population(nk[1:]).path == nk
    assert s.population("CD56bright").path == s.population(f"{nk}/CD56bright"[1:]).path
    assert s.population("CD56bright").path == f"{nk}/CD56bright"
    with pytest.raises(GatingError, match=r"'HLA-A2\+' names 4 populations.*CD3-CD56\+/HLA-A2\+"):
        s.population("HLA-A2+")
    # an id that is also a top-level path without its '/', of another population
    a = G.RectangleGate(id="B", name="A", dims=(G.Dimension("FSC-A"),), min=(0,), max=(1,))
    b = G.RectangleGate(id="x", name="B", dims=(G.Dimension("FSC-A"),), min=(0,), max=(2,))
    two = G.GatingStrategy([a, b])
    with pytest.raises(
        GatingError,
        match=r"'B' names 2 populations of the strategy: /A \(by its id\); /B \(by its path\)",
    ):
        two.population("B")
    assert two.population("/B").id == "x" and two.by_id("B").path == "/A"
    with pytest.raises(GatingError, match="is the path of another population"):
        G.GatingStrategy([a, G.RectangleGate(id="/A", name="C", dims=a.dims, min=(0,), max=(1,))])


def _named_study(base: Path, folder: Path, names: dict[str, str]) -> Path:
    """A copy of the study `base` whose [populations] are `names`."""
    shutil.copytree(base, folder)
    toml = folder / "study.toml"
    text = toml.read_text()
    head, rest = text.split("[populations]\n", 1)
    rest = rest.split("\n\n", 1)[1]
    table = "".join(f'{k} = "{v}"\n' for k, v in names.items())
    toml.write_text(head + "[populations]\n" + table + "\n" + rest)
    return folder


def _tables(folder: Path, out: Path) -> dict[str, pd.DataFrame]:
    results = cytokit.analyze(folder, out, workers=1)
    assert len(results.failures) == 0
    return {name: pd.read_csv(out / f"{name}.csv") for name in TABLES}


def _assert_same_tables(a: dict, b: dict) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


CANONICAL = {
    "NK": f"{LIVE}/CD3-CD56+",
    "NK_bright": f"{LIVE}/CD3-CD56+/CD56bright",
    "NK_dim": f"{LIVE}/CD3-CD56+/CD56dim",
    "CIK": f"{LIVE}/CD3+CD56+",
    "T": f"{LIVE}/CD3+CD56-",
}


@pytest.fixture(scope="module")
def small_yaml_study(tmp_path_factory):
    design = preset_design("sample", seed=12, n_patients=2, n_events=6000, days=(-7, 7, 14))
    folder = simulate_study(tmp_path_factory.mktemp("names") / "yaml", design, workers=1)
    yaml = folder / "strategy.yaml"
    text = yaml.read_text()
    dim = "                    - name: CD56dim\n"
    assert dim in text
    yaml.write_text(text.replace(dim, dim + "                      id: nkdim\n"))
    return folder


def test_every_way_of_naming_a_yaml_population_gives_the_same_tables(small_yaml_study, tmp_path):
    canonical = _tables(
        _named_study(small_yaml_study, tmp_path / "a", CANONICAL), tmp_path / "out_a"
    )
    names = {
        "NK": CANONICAL["NK"][1:],  # the path without its leading '/'
        "NK_bright": "CD56bright",  # a unique name
        "NK_dim": "nkdim",  # a gate id
        "CIK": CANONICAL["CIK"],  # a quadrant id (in YAML, its path)
        "T": "Lymphocytes/Singlets/Live/CD3+CD56-",
    }
    folder = _named_study(small_yaml_study, tmp_path / "b", names)
    text = (folder / "study.toml").read_text()
    (folder / "study.toml").write_text(
        text.replace('beads = "/Beads"', 'beads = "Beads"').replace(
            "[chimerism]\n", '[chimerism]\nparent = "Live"\n'
        )
    )
    study = load_study(folder)
    assert study.settings.populations == CANONICAL
    assert (study.settings.beads, study.settings.chimerism_parent) == ("/Beads", LIVE)
    _assert_same_tables(canonical, _tables(folder, tmp_path / "out_b"))
    counts = canonical["counts"].set_index(["file", "gate_path"])["population"]
    for name, gate_path in CANONICAL.items():
        assert set(counts.xs(gate_path, level="gate_path")) == {name}


def test_gatingml_quadrant_ids_name_populations(tmp_path):
    """The report's case: [populations] NK = "NK", the Gating-ML quadrant id of CD3-CD56+."""
    base = simulated_strategy()
    quads = {"CD3-CD56+": "NK", "CD3+CD56+": "CIK", "CD3+CD56-": "T", "CD3-CD56-": "DN"}
    q = next(g for g in base.gates if isinstance(g, G.QuadrantGate))
    renamed = G.QuadrantGate(
        id="Q",
        parent=q.parent,
        dividers=q.dividers,
        quadrants=tuple(G.Quadrant(quads[x.id], x.positions, x.id) for x in q.quadrants),
    )
    gates = [renamed if g is q else g for g in base.gates]
    gates = [g if g.parent != "CD3-CD56+" else _with_parent(g, "NK") for g in gates]
    strategy = G.GatingStrategy(gates)
    assert strategy.population("NK").path == CANONICAL["NK"]
    design = preset_design("sample", seed=5, n_patients=2, n_events=3000, days=(-7, 7, 14))
    base_dir = make_study(tmp_path / "base", design, strategy=strategy)
    assert load_strategy(base_dir / "strategy.xml").population("NK").path == CANONICAL["NK"]
    canonical = _tables(_named_study(base_dir, tmp_path / "a", CANONICAL), tmp_path / "out_a")
    by_id = {"NK": "NK", "NK_bright": "CD56bright", "NK_dim": "CD56dim", "CIK": "CIK", "T": "T"}
    named = _tables(_named_study(base_dir, tmp_path / "b", by_id), tmp_path / "out_b")
    _assert_same_tables(canonical, named)
    chim = named["chimerism"]
    assert (chim["recipient_events"] >= 0).all() and (chim["events"] > 0).any()
    nk = chim[chim.population == "NK"]
    assert set(nk.gate_path) == {CANONICAL["NK"]}
    counted = nk.donor_events.notna()
    assert (nk.events[counted] == (nk.donor_events + nk.recipient_events)[counted]).all()


def _with_parent(gate, parent):
    from dataclasses import replace

    return replace(gate, parent=parent)


def test_ambiguous_or_repeated_population_names_are_study_problems(small_yaml_study, tmp_path):
    folder = _named_study(small_yaml_study, tmp_path / "a", {**CANONICAL, "donor": "HLA-A2+"})
    with pytest.raises(StudyError) as err:
        load_study(folder, check_files=False, strategy="strategy.yaml")
    text = str(err.value)
    assert "[populations] donor = 'HLA-A2+' names 4 populations" in text
    assert f"{LIVE}/HLA-A2+ (by its name)" in text and "give the full path" in text
    folder = _named_study(small_yaml_study, tmp_path / "b", {**CANONICAL, "NK2": "CD3-CD56+"})
    with pytest.raises(
        StudyError, match=r"NK2 = 'CD3-CD56\+' and \[populations\] NK name the same"
    ):
        load_study(folder, check_files=False, strategy="strategy.yaml")
