"""A clock named otherwise than Time (``HDR-T``): acquisition QC reads it when the settings
name it (``[acquisition_qc] time_channel``, ``cytokit gate --qc-time``), and flags the same
events it flags when the clock is called Time; every door gives the same counts."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cytokit
from cytokit.cli.app import app
from cytokit.engine.gate_files import GateTask, gate_files, gate_qc_settings
from cytokit.errors import StudyError
from cytokit.qc import AcquisitionQCSettings, acquisition_qc, channel_plan
from cytokit.simulate import PatientSpec, StudyDesign
from cytokit.simulate.anomalies import AnomalyPlan, Clog
from cytokit.simulate.study import simulate_study
from cytokit.study import load_study

N_EVENTS = 30_000
CLOG_PLAN = AnomalyPlan(clogs=(Clog(start=3.0, drop=1.0, drop_rate=0.1, burst=0.4),))
CLOG_FILE = "fcs/A1_day007.fcs"


def _rename_clock(path, name: str) -> None:
    """Write `path` again with its Time channel called `name`, stored values unchanged."""
    raw = cytokit.read_fcs(path, scale=False)
    channels = tuple(
        dataclasses.replace(c, name=name) if c.name == "Time" else c for c in raw.channels
    )
    cytokit.write_fcs(path, dataclasses.replace(raw, channels=channels))


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The same study twice: its clock called Time, and called HDR-T."""
    root = tmp_path_factory.mktemp("clock")
    design = StudyDesign(
        patients=(PatientSpec("A1", "NK", "positive", days=(7, 14)),), seed=29, n_events=N_EVENTS
    )
    plans = {7: CLOG_PLAN, 14: None}
    time = simulate_study(root / "time", design, anomalies=lambda spec, day: plans[day])
    toml = time / "study.toml"
    toml.write_text(toml.read_text() + "\n[acquisition_qc]\nenabled = true\n")
    hdr = root / "hdr"
    shutil.copytree(time, hdr)
    for path in sorted((hdr / "fcs").glob("*.fcs")):
        _rename_clock(path, "HDR-T")
    toml = hdr / "study.toml"
    toml.write_text(toml.read_text() + 'time_channel = "HDR-T"\n')
    return time, hdr


def test_the_named_clock_flags_the_events_time_does(studies):
    time, hdr = studies
    own = cytokit.read_fcs(time / CLOG_FILE)
    other = cytokit.read_fcs(hdr / CLOG_FILE)
    assert [c.name for c in other.channels][-1] == "HDR-T"
    base = acquisition_qc(own)
    named = acquisition_qc(other, AcquisitionQCSettings(time_channel="HDR-T"))
    assert base.checks_run == named.checks_run == ("rate", "signal", "margins")
    assert base.ranges, "the clog was flagged"
    np.testing.assert_array_equal(base.keep, named.keep)
    assert base.pct_removed == named.pct_removed and base.verdict == named.verdict
    for a, b in zip(base.ranges, named.ranges, strict=True):
        assert (a.first_event, a.stop_event, a.reasons) == (b.first_event, b.stop_event, b.reasons)
        # Time was scaled by $TIMESTEP (0.01 s); HDR-T holds the clock's own ticks
        step = float(own.keyword("$TIMESTEP"))
        assert b.start * step == pytest.approx(a.start, abs=step)
    assert any("HDR-T" in n and "own units" in n for n in named.notes)
    # naming Time itself is the reader's choice, to the event
    again = acquisition_qc(own, AcquisitionQCSettings(time_channel="Time"))
    np.testing.assert_array_equal(base.keep, again.keep)
    assert again.ranges == base.ranges and again.notes == base.notes


def test_an_unnamed_or_misnamed_clock_is_not_read_and_the_note_says_the_fix(studies):
    _, hdr = studies
    other = cytokit.read_fcs(hdr / CLOG_FILE)
    plain = acquisition_qc(other)
    assert plain.checks_run == ("margins",)
    said = " ".join(plain.notes)
    assert "'HDR-T' is not read as one" in said and "time_channel = 'HDR-T'" in said
    assert "--qc-time 'HDR-T'" in said
    typo = acquisition_qc(other, AcquisitionQCSettings(time_channel="hdr-t"))
    assert typo.checks_run == ("margins",)
    assert "did you mean 'HDR-T'?" in " ".join(typo.notes)
    # a clock of a name that is not a counter's is a measurement until it is named the clock
    clock = dataclasses.replace(
        other,
        channels=tuple(
            dataclasses.replace(c, name="Clock") if c.name == "HDR-T" else c for c in other.channels
        ),
    )
    assert "Clock" in channel_plan(clock).names
    assert "Clock" not in channel_plan(clock, time="Clock").names
    timed = acquisition_qc(clock, AcquisitionQCSettings(time_channel="Clock"))
    named = acquisition_qc(other, AcquisitionQCSettings(time_channel="HDR-T"))
    np.testing.assert_array_equal(timed.keep, named.keep)


def test_the_setting_is_parsed_checked_and_left_out_of_old_task_keys():
    from cytokit.qc.settings import parse_acquisition_qc

    s, problems = parse_acquisition_qc({"time_channel": "HDR-T"})
    assert problems == [] and s.time_channel == "HDR-T"
    assert s.as_dict()["time_channel"] == "HDR-T"
    # a study that names no clock keeps the settings' record (and its stored results' keys)
    assert "time_channel" not in AcquisitionQCSettings().as_dict()
    for bad in ("", "  ", 5, ["HDR-T"]):
        _, problems = parse_acquisition_qc({"time_channel": bad}, "s/study.toml")
        assert len(problems) == 1 and "time_channel" in problems[0], problems
        assert "must be a channel name ($PnN)" in problems[0]
    with pytest.raises(StudyError, match="time_channel"):
        AcquisitionQCSettings(time_channel="")
    # --qc-time turns QC on, and replaces the study's clock
    assert gate_qc_settings(None, time_channel="HDR-T").time_channel == "HDR-T"
    own = AcquisitionQCSettings(time_channel="HDR-T", sensitivity="high")
    s = gate_qc_settings(own, time_channel="Clock")
    assert (s.time_channel, s.sensitivity) == ("Clock", "high")


def test_every_door_gives_the_counts_the_clock_called_time_gives(studies, tmp_path):
    time, hdr = studies
    ref = cytokit.analyze(time, tmp_path / "ref", scheduler="serial")
    res = cytokit.analyze(hdr, tmp_path / "a", scheduler="serial")
    cols = ["file", "events_before_qc", "events_after_qc", "qc_pct_removed", "qc_verdict"]
    pd.testing.assert_frame_equal(ref.samples[cols], res.samples[cols])
    row = res.samples.set_index("file").loc[CLOG_FILE]
    assert row["events_after_qc"] < N_EVENTS and row["qc_verdict"] in ("pass", "warn")

    def by_gate(counts, file):
        rows = counts[counts["file"].astype(str).str.endswith(file.split("/")[-1])]
        return rows.set_index("gate_path")["count"].astype(int).sort_index()

    want = by_gate(ref.counts, CLOG_FILE)
    pd.testing.assert_series_equal(by_gate(res.counts, CLOG_FILE), want, check_names=False)
    study = load_study(hdr)
    assert study.settings.acquisition_qc.time_channel == "HDR-T"
    run = gate_files(
        GateTask.for_study(study, statistics=False), [r.file for r in study.rows],
        tmp_path / "g", scheduler="serial",
    )  # fmt: skip
    pd.testing.assert_series_equal(by_gate(run.counts, CLOG_FILE), want, check_names=False)
    direct = study.gate(cytokit.read_fcs(hdr / CLOG_FILE), membership=False).counts
    got = direct.set_index("gate_path")["count"].astype(int).sort_index()
    pd.testing.assert_series_equal(got, want, check_names=False)
    # cytokit gate: the study's table, and --qc-time over a table that names no clock
    runner = CliRunner()
    plain = tmp_path / "plain"
    shutil.copytree(hdr, plain)
    toml = plain / "study.toml"
    toml.write_text(toml.read_text().replace('time_channel = "HDR-T"\n', ""))
    for name, study_dir, extra in (("cli", hdr, []), ("opt", plain, ["--qc-time", "HDR-T"])):
        out = tmp_path / name
        args = ["gate", "--study", str(study_dir), "--no-stats", "-o", str(out), "-j", "1"]
        done = runner.invoke(app, [*args, *extra])
        assert done.exit_code == 0, done.output
        counts = pd.read_csv(out / "counts.csv")
        pd.testing.assert_series_equal(by_gate(counts, CLOG_FILE), want, check_names=False)
        qc_rows = pd.read_csv(out / "qc_samples.csv")
        clog = qc_rows[qc_rows["file"].str.endswith("A1_day007.fcs")].iloc[0]
        assert clog["events_after_qc"] == row["events_after_qc"]


def test_a_clock_no_file_has_is_refused_before_the_batch(studies, tmp_path):
    _, hdr = studies
    bad = tmp_path / "bad"
    shutil.copytree(hdr, bad)
    toml = bad / "study.toml"
    toml.write_text(toml.read_text().replace('"HDR-T"', '"HDR_T"'))
    with pytest.raises(StudyError, match=r"time_channel names 'HDR_T', which is not a channel"):
        load_study(bad)
    files = [str(hdr / CLOG_FILE)]
    strategy = str(hdr / "strategy.yaml")
    task = GateTask(strategy, acquisition_qc=AcquisitionQCSettings(time_channel="HDR_T"))
    with pytest.raises(ValueError, match=r"time_channel names 'HDR_T', which is not a channel"):
        gate_files(task, files, tmp_path / "api", scheduler="serial")
    assert not (tmp_path / "api" / "counts.csv").exists()
    runner = CliRunner()
    typo = runner.invoke(
        app, ["gate", strategy, *files, "--qc-time", "hdr-t", "-o", str(tmp_path / "o")]
    )
    said = " ".join(typo.output.replace("│", " ").split())
    assert typo.exit_code == 2 and "--qc-time" in said and "did you mean 'HDR-T'?" in said, said
    off = runner.invoke(
        app,
        ["gate", strategy, *files, "--no-acquisition-qc", "--qc-time", "HDR-T",
         "-o", str(tmp_path / "p")],
    )  # fmt: skip
    said = " ".join(off.output.replace("│", " ").split())
    assert off.exit_code == 2 and "--qc-time set acquisition QC, which" in said, said
    blank = runner.invoke(app, ["gate", strategy, *files, "--qc-time=", "-o", str(tmp_path / "q")])
    assert blank.exit_code == 2 and "names no channel" in blank.output


def test_inspect_names_the_clock_or_how_to_read_one(studies, capsys):
    """``cytokit inspect`` says which channel QC reads as the time and how long the run
    lasted, or, without a Time channel, which channel may hold the clock and how to
    name it."""
    import json

    from cytokit.cli.app import run

    time, hdr = studies
    own = cytokit.read_fcs(time / CLOG_FILE)
    assert run(["inspect", str(time / CLOG_FILE)]) == 0
    span = float(own.events[-1, -1] - own.events[0, -1])  # seconds: Time was scaled
    assert f"  time: Time, {span:.4g} s from the first event to the last" in capsys.readouterr().out
    assert run(["inspect", str(hdr / CLOG_FILE), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["time"] == {"channel": None, "candidates": ["HDR-T"]}
    assert run(["inspect", str(hdr / CLOG_FILE)]) == 0
    said = capsys.readouterr().out
    assert "time: no Time channel" in said and "'HDR-T' may hold the clock" in said
    assert "time_channel = 'HDR-T'" in said and "--qc-time 'HDR-T'" in said
