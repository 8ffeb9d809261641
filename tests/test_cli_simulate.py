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
    # usage errors, naming the option and the value
    assert run(["simulate", str(tmp_path / "a"), "--days", "x"]) == 2
    assert "'--days': 'x'" in capsys.readouterr().err
    assert run(["simulate", str(tmp_path / "b"), "--preset", "huge"]) == 2
    assert "'--preset'" in (err := capsys.readouterr().err) and "'huge'" in err
    assert run(["simulate", str(tmp_path / "c"), "--patients", "0"]) == 2
    # a negative seed was an internal error; a repeated day exited 1, and a day the study's
    # manifest refuses (beyond 100 years) was written as a study analyze could not read
    assert run(["simulate", str(tmp_path / "e"), "--seed", "-1"]) == 2
    assert "'--seed'" in capsys.readouterr().err
    assert run(["simulate", str(tmp_path / "f"), "--days", "7,7"]) == 2
    assert "repeat a day" in capsys.readouterr().err
    assert run(["simulate", str(tmp_path / "g"), "--days", "7,100000"]) == 2
    assert "beyond ±36,500 days" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "efg")


def test_simulate_anomalies_matches_the_library_and_its_truth_table(tmp_path, capsys):
    """``--anomalies`` is `random_anomalies` through `simulate_study`: the same files byte
    for byte; truth/anomalies.csv agrees with each file's per-event truth; QC finds the
    clogs where the table says; a kind it does not know is refused before anything runs."""
    import numpy as np
    import pandas as pd

    from cytokit.fcs import read_fcs
    from cytokit.qc import RATE, SIGNAL, acquisition_qc
    from cytokit.simulate.anomalies import random_anomalies
    from cytokit.simulate.events import load_truth

    out = tmp_path / "s"
    opts = ["--patients", "1", "--events", "20000", "--days", "7,14", "--seed", "36101"]
    assert run(["simulate", str(out), *opts, "--anomalies", "clog, margin"]) == 0
    assert "each with a random clog, margin (truth/anomalies.csv)" in capsys.readouterr().err
    design = preset_design(seed=36101, n_patients=1, n_events=20000, days=[7, 14])
    ref = simulate_study(
        tmp_path / "ref", design, anomalies=random_anomalies(design, ["clog", "margin"])
    )
    for name in sorted(p.name for p in (out / "fcs").iterdir()):
        assert (out / "fcs" / name).read_bytes() == (ref / "fcs" / name).read_bytes(), name
    table = pd.read_csv(out / "truth" / "anomalies.csv")
    assert sorted(zip(table["file"], table["kind"], strict=True)) == [
        (f"fcs/P01_day{d:03d}.fcs", k) for d in (7, 14) for k in ("clog", "margin")
    ]
    for (file, kind), row in table.set_index(["file", "kind"]).iterrows():
        truth = load_truth((out / file).with_suffix(".truth.npz"))
        bits = {"clog": 1, "margin": 8}[kind]
        assert row["events"] == np.count_nonzero(truth.arrays["anomaly_kind"] & bits) > 0
        if kind != "clog":
            assert pd.isna(row["start"]) and pd.isna(row["offcentre"])
            continue
        assert 0 < row["offcentre"] < row["events"] and row["start"] < row["end"]
        sample = read_fcs(out / file)
        qc = acquisition_qc(sample)
        t = sample.events[:, sample.channel_index("Time")]  # seconds (read_fcs scales it)
        gone = (qc.reasons & (RATE | SIGNAL)) != 0
        window = (t >= row["start"]) & (t < row["end"])
        assert gone[window].mean() > 0.9 and gone[~window].mean() < 0.02, file
    # without --events, files as long as the anomalies' parameters were chosen for
    assert run(["simulate", str(tmp_path / "d"), "--days", "7", "--patients", "1",
                "--anomalies", "all"]) == 0  # fmt: skip
    assert "50,000 events each" in capsys.readouterr().err
    assert run(["simulate", str(tmp_path / "x"), "--anomalies", "clot"]) == 2
    assert "'clot': name one or more of clog, bubble, drift, margin" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_anomalies_reach_only_the_chimerism_files_not_the_other_tubes(tmp_path, capsys):
    """With --tubes the receptor, function, FMO, REF and HC files were built from the
    chimerism file as acquired, clog and all, at new times and with no anomaly in their
    truth: QC removed 48 % of a healthy control for a clog that was never injected there.
    They are now the files of the same study without anomalies, byte for byte."""
    import numpy as np

    from cytokit.fcs import read_fcs

    common = ["--patients", "1", "--events", "10000", "--days", "7", "--seed", "99650"]
    assert run(["simulate", str(tmp_path / "a"), *common, "--tubes", "--anomalies", "clog"]) == 0
    assert run(["simulate", str(tmp_path / "c"), *common, "--tubes"]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in (tmp_path / "c" / "fcs").glob("*.fcs"))
    assert len(names) == 7 and not list(tmp_path.glob(".clean-*"))
    for name in names:
        a, c = read_fcs(tmp_path / "a" / "fcs" / name), read_fcs(tmp_path / "c" / "fcs" / name)
        assert np.array_equal(a.events, c.events) == (name != "P01_day007.fcs"), name


def test_the_reference_sample_is_one_acquisition(tmp_path, capsys):
    """The reference sample holds the first file's cells several times over; their times
    were repeated too, so its clock restarted at each copy and QC could not check it."""
    import numpy as np

    from cytokit.fcs import read_fcs
    from cytokit.qc import acquisition_qc

    out = tmp_path / "s"
    args = ["--patients", "1", "--events", "5000", "--days", "7", "--seed", "3", "--tubes"]
    assert run(["simulate", str(out), *args]) == 0
    capsys.readouterr()
    ref = read_fcs(out / "fcs" / "REF_day007_receptors.fcs")
    t = ref.events[:, [c.name for c in ref.channels].index("Time")]
    assert ref.n_events == 4 * 5000 and bool(np.all(np.diff(t) > -1e-6))
    qc = acquisition_qc(ref)
    assert qc.checks_run == ("rate", "signal", "margins") and qc.verdict == "pass"
