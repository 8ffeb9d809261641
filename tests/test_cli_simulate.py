"""``cytokit simulate``: writes a study that matches the library call, with clear errors."""

from __future__ import annotations

import csv

from cytokit.cli.app import run
from cytokit.simulate import preset_design, simulate_study


def test_simulate_writes_the_same_study_as_the_library(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["simulate", str(out), "--patients", "2", "--events", "1500", "--days", "-7,7"]
    assert run([*args, "--seed", "5"]) == 0
    err = capsys.readouterr().err
    assert "4 FCS file(s) of 2 patient(s)" in err
    ref = simulate_study(
        tmp_path / "ref", preset_design(seed=5, n_patients=2, n_events=1500, days=[-7, 7])
    )
    names = sorted(p.name for p in (out / "fcs").iterdir())
    assert names == sorted(p.name for p in (ref / "fcs").iterdir())
    for name in names:
        assert (out / "fcs" / name).read_bytes() == (ref / "fcs" / name).read_bytes()
    with (out / "manifest.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4


def test_simulate_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["simulate", str(out), "--patients", "1", "--events", "500", "--days", "3"]
    assert run(args) == 0
    assert run(args) == 1
    assert "--force" in capsys.readouterr().err
    assert run([*args, "--force"]) == 0


def test_simulate_bad_options(tmp_path, capsys):
    assert run(["simulate", str(tmp_path / "a"), "--days", "x"]) == 1
    assert "--days 'x'" in capsys.readouterr().err
    assert run(["simulate", str(tmp_path / "b"), "--preset", "huge"]) == 1
    assert "preset 'huge'" in capsys.readouterr().err
    assert run(["simulate", str(tmp_path / "c"), "--patients", "0"]) == 2
