"""Acquisition QC in the pipeline: study.toml, `analyze`, `cytokit gate`, `Study.gate`.

The files are simulated with a clog injected (`cytokit.simulate.anomalies`), so
the per-event truth of what was injected is known; the doors must agree on
every count, and the removed range must cover the injected clog.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cytokit
from cytokit._numbers import pct_text
from cytokit.cli.app import app
from cytokit.engine.gate_files import GateTask, gate_files
from cytokit.errors import CytokitError, StudyError
from cytokit.qc import MARGIN, AcquisitionQCSettings
from cytokit.report._html import esc
from cytokit.simulate import PatientSpec, StudyDesign
from cytokit.simulate.anomalies import BUBBLE, CLOG, AnomalyPlan, Clog
from cytokit.simulate.study import simulate_study
from cytokit.study import load_study
from cytokit.study.settings import parse_settings

N_EVENTS = 30_000
#: The per-file QC columns of samples.csv and qc_samples.csv (the results contract).
SUMMARY_COLUMNS = (
    "events_before_qc", "events_after_qc", "qc_removed_rate", "qc_removed_signal",
    "qc_removed_margin", "qc_pct_removed", "qc_verdict", "qc_reason", "qc_notes",
)  # fmt: skip
#: A clog a third of the way in: 1 s at 10 % of the rate, then a 0.4 s burst (the clean file
#: lasts about 10 s).
CLOG_PLAN = AnomalyPlan(clogs=(Clog(start=3.0, drop=1.0, drop_rate=0.1, burst=0.4),))


def _study(tmp_path, table: str | None, name="s"):
    design = StudyDesign(
        patients=(PatientSpec("A1", "NK", "positive", days=(7, 14)),), seed=23, n_events=N_EVENTS
    )
    plans = {7: CLOG_PLAN, 14: None}
    out = simulate_study(tmp_path / name, design, anomalies=lambda spec, day: plans[day])
    if table is not None:
        toml = out / "study.toml"
        toml.write_text(toml.read_text() + "\n[acquisition_qc]\n" + table)
    return out


@pytest.fixture(scope="module")
def qc_study(tmp_path_factory):
    return _study(tmp_path_factory.mktemp("qc"), "enabled = true\n")


@pytest.fixture(scope="module")
def qc_results(qc_study, tmp_path_factory):
    return cytokit.analyze(qc_study, tmp_path_factory.mktemp("out") / "a", scheduler="serial")


# -- settings --------------------------------------------------------------------------------


def test_the_qc_columns_have_one_type_through_analyze_and_load_results(tmp_path):
    """A count a check did not measure is missing through either door, as the same
    dtype: not None in one and NaN in the other."""
    from cytokit.analysis.results import load_results

    study = _study(tmp_path, 'enabled = true\nchecks = ["margins", "rate"]\n')
    res = cytokit.analyze(study, tmp_path / "o", scheduler="serial")
    back = load_results(tmp_path / "o")
    for column in SUMMARY_COLUMNS:
        assert res.samples[column].dtype == back.samples[column].dtype, column
    assert res.samples["qc_removed_signal"].isna().all()
    assert (res.samples["qc_removed_rate"] >= 0).all()


def test_a_file_without_a_usable_time_axis_has_no_bins_with_the_usual_columns(tmp_path):
    import dataclasses

    study = _study(tmp_path, "enabled = true\nmax_removed_pct = 60\n")
    path = study / "fcs" / "A1_day014.fcs"
    sample = cytokit.read_fcs(path, scale=False)
    t = [c.name for c in sample.channels].index("Time")
    ev = sample.events.copy()
    ev[:, t] = ev[::-1, t]  # the clock runs backwards: no acquisition order to bin
    cytokit.write_fcs(path, dataclasses.replace(sample, events=ev))
    res = cytokit.analyze(study, tmp_path / "o", scheduler="serial")
    row = res.samples.set_index("file").loc["fcs/A1_day014.fcs"]
    assert pd.isna(row["qc_removed_rate"]) and "not in acquisition order" in row["qc_notes"]
    # MIFlowCyt 1.8 says which checks ran on each file, and the limits
    item = res.miflowcyt[res.miflowcyt["miflowcyt"] == "1.8"].set_index("file")["value"]
    assert item["fcs/A1_day014.fcs"].startswith(
        "acquisition QC (margins; not run on this file: rate, signal (samples.csv qc_reason);"
    )
    assert item["fcs/A1_day007.fcs"].startswith("acquisition QC (rate, signal, margins;")
    assert (item.str.contains("a file fails above 60% of its events removed")).all()
    bins = res.acquisition_bins("fcs/A1_day014.fcs")
    assert bins.empty and list(bins.columns) == ["bin", "start", "end", "time_unit", "events"]
    assert int(bins["events"].sum()) == 0
    # the report gives a note once: the check that did not run is in the verdict's reason
    from dataclasses import replace

    from cytokit.report.acquisition import acquisition_section

    html = acquisition_section(res)
    assert "not in acquisition order" in html and "QC notes:" not in html
    # its figure's caption does not promise a rate and shaded ranges it cannot show
    assert "fcs/A1_day014.fcs has no time bins to plot" in html
    assert "Event rate and signal of fcs/A1_day014.fcs" not in html
    # what QC noted besides the reason is shown under the file's verdict
    samples = res.samples.copy()
    at = samples.index[samples["file"] == "fcs/A1_day014.fcs"][0]
    samples.loc[at, "qc_notes"] += "; FITC-A: values above its $PnR, top not checked"
    html = acquisition_section(replace(res, samples=samples))
    assert '<p class="meta">QC notes: FITC-A: values above its $PnR, top not checked</p>' in html


def test_a_file_no_check_could_run_on_has_no_pct_removed_through_every_door(tmp_path):
    """Only the rate check asked for, on a file whose clock runs backwards: nothing was
    measured, so no door shows "0.00% removed" (a failed measurement is never a 0): the
    % is missing, the verdict warns that the events go on unchecked, and all are kept."""
    import dataclasses

    from cytokit.analysis.results import load_results
    from cytokit.qc import acquisition_qc

    study = _study(tmp_path, 'enabled = true\nchecks = ["rate"]\n')
    path = study / "fcs" / "A1_day014.fcs"
    sample = cytokit.read_fcs(path, scale=False)
    t = [c.name for c in sample.channels].index("Time")
    ev = sample.events.copy()
    ev[:, t] = ev[::-1, t]
    cytokit.write_fcs(path, dataclasses.replace(sample, events=ev))
    api = acquisition_qc(cytokit.read_fcs(path), AcquisitionQCSettings(checks=("rate",)))
    assert api.checks_run == () and np.isnan(api.pct_removed)
    row = api.summary()
    assert row["qc_pct_removed"] is None and row["qc_removed"] == 0
    assert api.verdict == "warn" and "no check ran" in api.verdict_reason
    assert "removed" not in api.verdict_reason.split(";")[0]
    res = cytokit.analyze(study, tmp_path / "o", scheduler="serial")  # invariants checked
    for got in (res, load_results(tmp_path / "o")):
        s = got.samples.set_index("file")
        bad, good = s.loc["fcs/A1_day014.fcs"], s.loc["fcs/A1_day007.fcs"]
        assert pd.isna(bad["qc_pct_removed"]) and bad["qc_reason"] == api.verdict_reason
        assert bad["events_after_qc"] == bad["events_before_qc"]
        assert good["qc_pct_removed"] > 0  # the clog's file was measured
        item = got.miflowcyt[got.miflowcyt["miflowcyt"] == "1.8"].set_index("file")["value"]
        assert "(no check ran on this file" in item["fcs/A1_day014.fcs"]
        assert item["fcs/A1_day007.fcs"].startswith("acquisition QC (rate; sensitivity")
    gate_files(study / "strategy.yaml", [path], tmp_path / "g", statistics=False,
               scheduler="serial", acquisition_qc=AcquisitionQCSettings(checks=("rate",)))  # fmt: skip
    g = pd.read_csv(tmp_path / "g" / "qc_samples.csv", keep_default_na=False).iloc[0]
    assert g["qc_pct_removed"] == "" and g["qc_reason"] == api.verdict_reason


def test_checks_left_no_channel_by_exclude_channels_did_not_run_as_without_a_time_channel(
    tmp_path,
):
    """A check with no channel to read (every measured channel in exclude_channels) did
    not run, as the rate and signal checks of a file without a Time channel do not: its
    count is empty in samples.csv (never a 0), it is not among the checks run, a note
    names exclude_channels and the fix, and a file no check ran on warns that its events
    go on unchecked. It passed with "0% of N events removed" and a signal count of 0."""
    import dataclasses

    from cytokit.qc import acquisition_qc

    design = StudyDesign(
        patients=(PatientSpec("A1", "NK", "positive", days=(7, 14)),), seed=179011, n_events=3000
    )
    study = simulate_study(tmp_path / "s", design)
    # day 14 without its Time channel: the case QC already handled
    path = study / "fcs" / "A1_day014.fcs"
    raw = cytokit.read_fcs(path, scale=False)
    keep = [c.index for c in raw.channels if c.name != "Time"]
    channels = tuple(dataclasses.replace(raw.channels[i], index=j) for j, i in enumerate(keep))
    cytokit.write_fcs(
        path, dataclasses.replace(raw, events=raw.events[:, keep].copy(), channels=channels)
    )
    measured = [c.name for c in channels]
    toml = study / "study.toml"
    base = toml.read_text()
    every = "exclude_channels = [" + ", ".join(f'"{n}"' for n in measured) + "]\n"

    def samples(table: str, out: str) -> pd.DataFrame:
        toml.write_text(base + "\n[acquisition_qc]\n" + table)
        cytokit.analyze(study, tmp_path / out, scheduler="serial")
        return pd.read_csv(tmp_path / out / "samples.csv").set_index("file")

    no_time = samples('checks = ["signal"]\n', "o1").loc["fcs/A1_day014.fcs"]
    no_channel = samples('checks = ["signal"]\n' + every, "o2").loc["fcs/A1_day007.fcs"]
    empty = [c for c in SUMMARY_COLUMNS if pd.isna(no_time[c])]
    assert empty == ["qc_removed_rate", "qc_removed_signal", "qc_removed_margin", "qc_pct_removed"]
    assert [c for c in SUMMARY_COLUMNS if pd.isna(no_channel[c])] == empty
    lead = "no check ran, so the 3,000 events go on unchecked; the signal check did not run: "
    for row in (no_time, no_channel):
        assert row["qc_verdict"] == "warn" and row["qc_reason"].startswith(lead)
        assert row["events_after_qc"] == row["events_before_qc"] == 3000
    why = no_channel["qc_reason"].removeprefix(lead)
    assert why.startswith("exclude_channels leaves out all 10 measured channels of the file; ")
    assert "leave out of exclude_channels" in why and "--qc-exclude" in why
    assert no_channel["qc_notes"] == f"signal not checked: {why}"
    # the API says the same and lists no check as run
    settings = AcquisitionQCSettings(checks=("signal",), exclude_channels=tuple(measured))
    api = acquisition_qc(cytokit.read_fcs(study / "fcs" / "A1_day007.fcs"), settings)
    assert api.checks_run == () and api.summary()["qc_checks"] == ""
    assert api.verdict_reason == no_channel["qc_reason"]

    # all three checks: the rate runs and counts, signal and margins are empty and noted
    three = samples(every, "o3")
    row = three.loc["fcs/A1_day007.fcs"]
    assert row["qc_removed_rate"] >= 0 and row["qc_pct_removed"] >= 0
    assert pd.isna(row["qc_removed_signal"]) and pd.isna(row["qc_removed_margin"])
    assert row["qc_verdict"] == "warn"
    assert f"the signal and margins checks did not run: {why}" in row["qc_reason"]
    assert row["qc_notes"].startswith(f"signal and margins not checked: {why}")
    api = acquisition_qc(
        cytokit.read_fcs(study / "fcs" / "A1_day007.fcs"),
        AcquisitionQCSettings(exclude_channels=tuple(measured)),
    )
    assert api.summary()["qc_checks"] == "rate" and api.margins is None
    # no Time channel and no channel either: nothing ran, both reasons are given
    both = three.loc["fcs/A1_day014.fcs"]
    assert [c for c in SUMMARY_COLUMNS if pd.isna(both[c])] == empty
    assert both["qc_reason"].startswith(
        "no check ran, so the 3,000 events go on unchecked; the rate, signal and margins "
        f"checks did not run: {why}; the file has no Time channel"
    )


def test_study_toml_table_is_parsed_and_absent_means_no_qc():
    base = {"gating": {"strategy": "s.yaml"}, "populations": {"NK": "/NK"}}
    settings, problems = parse_settings(base)
    assert problems == [] and settings.acquisition_qc is None and settings.qc_settings is None
    table = {"sensitivity": "high", "max_removed_pct": 10, "checks": ["rate", "margins"]}
    settings, problems = parse_settings({**base, "acquisition_qc": table})
    assert problems == []
    qc = settings.qc_settings
    assert (qc.sensitivity, qc.max_removed_pct, qc.checks) == ("high", 10.0, ("rate", "margins"))
    off, problems = parse_settings({**base, "acquisition_qc": {"enabled": False}})
    assert problems == [] and off.acquisition_qc is not None and off.qc_settings is None


def test_bad_acquisition_qc_keys_are_study_problems_naming_key_and_fix():
    base = {"gating": {"strategy": "s.yaml"}, "populations": {"NK": "/NK"}}
    bad = {"sensitivty": "high", "max_removed_pct": 150}
    _, problems = parse_settings({**base, "acquisition_qc": bad}, "x/study.toml")
    text = " | ".join(problems)
    assert "x/study.toml: [acquisition_qc] unknown key 'sensitivty'" in text
    assert "max_removed_pct = 150 must be a number from 0 to 100" in text


def test_load_study_reports_a_bad_table(tmp_path):
    out = _study(tmp_path, 'sensitivity = "extreme"\n')
    with pytest.raises(StudyError, match=r'\[acquisition_qc\] sensitivity = "extreme"'):
        load_study(out, check_files=False)


def test_gate_options_choose_the_settings():
    from cytokit.engine.gate_files import gate_qc_settings

    assert gate_qc_settings(None) is None
    assert gate_qc_settings(None, True) == AcquisitionQCSettings()
    s = gate_qc_settings(None, sensitivity="low", max_removed_pct=1.5)
    assert (s.sensitivity, s.max_removed_pct, s.warn_removed_pct) == ("low", 1.5, 1.5)
    own = AcquisitionQCSettings(sensitivity="high", exclude_channels=("APC-A",))
    assert gate_qc_settings(own) == own
    assert gate_qc_settings(own, False) is None
    # --qc-exclude adds to the study's channels and turns QC on by itself
    s = gate_qc_settings(own, exclude_channels=["PE-A", "APC-A"])
    assert s.exclude_channels == ("APC-A", "PE-A") and s.sensitivity == "high"
    assert gate_qc_settings(None, exclude_channels=["PE-A"]).exclude_channels == ("PE-A",)
    # --qc-checks replaces the study's checks, in the settings' own order
    s = gate_qc_settings(own, checks=("margins", "rate"))
    assert s.checks == ("rate", "margins") and s.exclude_channels == ("APC-A",)
    assert gate_qc_settings(None, checks=("signal",)).checks == ("signal",)


@pytest.mark.parametrize("value", ["nan", "inf", "120", "-1", "abc", "5%"])
def test_qc_max_removed_must_be_a_percent(value, tmp_path):
    res = CliRunner().invoke(
        app, ["gate", "s.yaml", "f.fcs", "-o", str(tmp_path / "o"), "--qc-max-removed", value]
    )
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "is not a number from 0 to 100 (a % of the events)" in said
    assert value.strip("-") in said  # the value given is named, a word as well as a number


@pytest.mark.parametrize("value", ["", "  "])
def test_qc_exclude_must_name_a_channel(value, tmp_path):
    args = ["gate", "s.yaml", "f.fcs", "-o", str(tmp_path / "o"), f"--qc-exclude={value}"]
    res = CliRunner().invoke(app, args)
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "--qc-exclude" in said and "names no channel" in said, said


# -- one file, one answer, whichever door -------------------------------------------------------


def test_doors_agree_with_qc_and_the_removed_range_covers_the_clog(qc_study, qc_results, tmp_path):
    res = qc_results
    study = load_study(qc_study)
    run = gate_files(
        GateTask.for_study(study, statistics=False), [r.file for r in study.rows],
        tmp_path / "g", scheduler="serial",
    )  # fmt: skip
    clog_file = "fcs/A1_day007.fcs"
    row = res.samples.set_index("file").loc[clog_file]
    assert row["events_before_qc"] == N_EVENTS
    with np.load(qc_study / "fcs" / "A1_day007.truth.npz") as truth:
        injected = (truth["anomaly_kind"] & CLOG) != 0
    removed = N_EVENTS - row["events_after_qc"]
    # most of the clog's events are removed, and little else
    assert removed >= 0.8 * injected.sum()
    assert removed <= injected.sum() + 0.02 * N_EVENTS
    assert row["qc_verdict"] in ("pass", "warn") and row["qc_removed_rate"] > 0
    ranges = res.acquisition_qc[res.acquisition_qc["file"] == clog_file]
    assert len(ranges) >= 1
    first = int(ranges["first_event"].min())
    last = int((ranges["first_event"] + ranges["events"]).max())
    idx = np.flatnonzero(injected)
    inside = np.mean((idx >= first) & (idx < last))
    assert inside >= 0.8, inside
    # the gated root's parent count is what QC kept (no non-finite values in simulated files)
    counts = res.counts[res.counts["file"] == clog_file]
    assert counts["parent_count"].iloc[0] == row["events_after_qc"]
    # the three doors: analyze, cytokit gate --study, Study.gate
    by_gate = run.counts[run.counts["file"].str.endswith("A1_day007.fcs")]
    a = counts.set_index("gate_path")["count"].astype(int)
    g = by_gate.set_index("gate_path")["count"].astype(int)
    pd.testing.assert_series_equal(a.sort_index(), g.sort_index(), check_names=False)
    assert set(by_gate["events_after_qc"]) == {row["events_after_qc"]}
    direct = study.gate(cytokit.read_fcs(qc_study / clog_file), membership=False).counts
    d = direct.set_index("gate_path")["count"].astype(int)
    pd.testing.assert_series_equal(a.sort_index(), d.sort_index(), check_names=False)
    qc_rows = pd.read_csv(tmp_path / "g" / "qc_samples.csv")
    assert list(qc_rows.columns) == ["file", *SUMMARY_COLUMNS]
    assert (tmp_path / "g" / "acquisition_qc.csv").is_file()


def test_a_failed_verdict_is_a_failure_with_no_numbers(tmp_path):
    out = _study(tmp_path, "max_removed_pct = 2\nwarn_removed_pct = 1\n")
    res = cytokit.analyze(out, tmp_path / "o", scheduler="serial")
    fail = res.failures.set_index("file")
    assert "fcs/A1_day007.fcs" in fail.index
    assert fail.loc["fcs/A1_day007.fcs", "stage"] == "acquisition_qc"
    assert fail.loc["fcs/A1_day007.fcs", "error"] == "AcquisitionQCError"  # not a bad file
    reason = fail.loc["fcs/A1_day007.fcs", "reason"]
    assert "acquisition QC failed" in reason and "max_removed_pct" in reason
    for table in (res.samples, res.counts, res.chimerism):
        assert "fcs/A1_day007.fcs" not in set(table["file"])
    assert list(res.samples["file"]) == ["fcs/A1_day014.fcs"]


def test_a_file_qc_failed_keeps_what_qc_saw_for_the_report(tmp_path):
    """The failed file's plot and removed ranges are kept with its failure: the report shows
    them first, open, with what to do; they are the API's, cover the clog, and a resumed run
    and a rebuilt report give the same."""
    from cytokit.analysis.results import load_results
    from cytokit.fcs import read_fcs
    from cytokit.qc import acquisition_qc
    from cytokit.report.acquisition import acquisition_section

    study = _study(tmp_path, "max_removed_pct = 2\nwarn_removed_pct = 1\n")
    res = cytokit.analyze(study, tmp_path / "o", scheduler="serial")
    file = "fcs/A1_day007.fcs"
    assert res.qc_failed_files() == [file]
    sample = read_fcs(study / file)
    api = acquisition_qc(sample, AcquisitionQCSettings(max_removed_pct=2, warn_removed_pct=1))
    assert api.verdict == "fail"
    mine = res.acquisition_ranges(file)
    # every column of acquisition_qc.csv, the events a range held too
    want = api.ranges_frame().drop(columns="file")
    pd.testing.assert_frame_equal(mine, want, check_dtype=False)
    assert (mine["events"] > 0).all()
    kept = "fcs/A1_day014.fcs"  # an analysed file: its rows of the table, the same columns
    assert list(res.acquisition_ranges(kept).columns) == list(mine.columns)
    # its figures, which samples.csv has no row for, are the API's; a sample's are its row's
    s = api.summary()
    failed = res.failures[res.failures["file"] == file].iloc[0]
    assert res.acquisition_summary(file) == {
        "events_before_qc": s["events_before_qc"],
        "events_after_qc": s["events_after_qc"],
        **{f"qc_removed_{r}": s[f"qc_removed_{r}"] for r in ("rate", "signal", "margin")},
        "qc_pct_removed": pytest.approx(s["qc_pct_removed"]),
        # the verdict too: an API user tells a failed file from a warned one
        "qc_verdict": "fail",
        "qc_reason": failed["reason"],
        "qc_notes": None,
    }
    row = res.samples[res.samples["file"] == kept].iloc[0]
    got = res.acquisition_summary(kept)
    assert got["events_after_qc"] == row["events_after_qc"] and got["qc_removed_rate"] == 0
    assert got["qc_verdict"] == row["qc_verdict"] in ("pass", "warn")
    with pytest.raises(CytokitError, match=re.escape("no sample 'fcs/nope.fcs'")):
        res.acquisition_summary("fcs/nope.fcs")
    # a file not in the results, or failed at a later stage, has no rows to read as
    # "nothing removed": it is named instead
    with pytest.raises(CytokitError, match=re.escape("no sample 'fcs/nope.fcs'")):
        res.acquisition_ranges("fcs/nope.fcs")
    from dataclasses import replace

    later = res.failures.assign(stage="gate", file="fcs/A1_day021.fcs")
    with pytest.raises(CytokitError, match=r"failed at stage 'gate'.*not kept") as err:
        replace(res, failures=later).acquisition_ranges("fcs/A1_day021.fcs")
    # the way to see it again keeps the study's settings (its exclude_channels, say)
    assert "AcquisitionQCSettings.from_mapping" in str(err.value)
    # a file that could not be read never reached QC: rerunning QC would fail alike
    unread = res.failures.assign(
        stage="read", file="fcs/A1_day021.fcs", reason="the file holds no events ($TOT = 0)"
    )
    with pytest.raises(CytokitError, match=r"'read'.*before acquisition QC.*\$TOT = 0") as err:
        replace(res, failures=unread).acquisition_summary("fcs/A1_day021.fcs")
    assert "rerun it alone" not in str(err.value)
    start, drop, burst = 3.0, 1.0, 0.4  # CLOG_PLAN
    assert mine["start"].min() <= start + 0.1 and mine["end"].max() >= start + drop + burst - 0.1
    bins = res.acquisition_bins(file)
    assert bins["events"].sum() == sample.n_events
    html = acquisition_section(res)
    assert html.count("<figure>") == 2
    table = html[html.index("<table>") : html.index("</table>")]
    # the failed file goes on to no count: it keeps no event, whatever its ranges leave
    row = table[table.index("fcs/A1_day007.fcs</a>") :]
    row = row[: row.index("</tr>")]
    assert "none (failed)" in row and f"{s['events_after_qc']:,}" not in row
    assert f"{pct_text(s['qc_pct_removed'])} %" in row
    # why each range went, with what QC saw there, under the plot (the failed file's too)
    for _, r in mine.iterrows():
        assert esc(str(r["detail"])) in html
    first = html.index(
        '<details id="qc-fcs__A1_day007" open><summary>fcs/A1_day007.fcs: <b>fail</b>: '
    )
    assert first < html.index("fcs/A1_day014.fcs: <b>pass</b>")
    assert "more than the 2% allowed</summary>" in html and "max_removed_pct" in html
    # the patient's samples table has the failed file at its day, not only the flags
    from cytokit.report.tables import samples_table

    table = samples_table(res.samples, res.counts, ["NK"], res.failures)
    assert table.index(file) < table.index("fcs/A1_day014.fcs")
    assert "failed (acquisition_qc): no counts" in table
    assert '<td><a href="#qc-fcs__A1_day007">fail</a></td>' in table  # its QC entry
    # the Failures section does not say the QC plot above is missing
    from cytokit.report.page import _failures

    said = _failures(res)
    assert "no counts or donor values" in said and "keeps its QC plot" in said
    # the index's patients table lists the failed file's day as failed (a study whose
    # files all failed showed no day at all)
    from cytokit.report.page import _patient_list, patient_flags, patients_of

    listed = _patient_list(res, patients_of(res), lambda i, p: p, patient_flags(res))
    assert "7 (failed)" in listed and "14" in listed
    # resumed from the store (the failure is not run again) and rebuilt from the folder
    npz = tmp_path / "o" / "qc" / "fcs__A1_day007.npz"
    before = npz.read_bytes()
    npz.unlink()
    again = cytokit.analyze(study, tmp_path / "o", scheduler="serial")
    assert npz.read_bytes() == before
    assert acquisition_section(again) == html
    assert acquisition_section(load_results(tmp_path / "o")) == html


def test_a_rerun_leaves_no_qc_file_of_a_sample_it_no_longer_has(tmp_path):
    """qc/<sample>.npz of a file an earlier run analysed (here, one QC failed, whose plot
    was kept) stayed when the file left the manifest (or, with QC turned off, failed at the
    gates): the folder no longer matched a fresh run, and the old series was still there
    to read. A rerun removes it, and `cytokit verify` finds the folder as its run left it."""

    study = _study(tmp_path, "max_removed_pct = 2\nwarn_removed_pct = 1\n")
    out = tmp_path / "o"
    runner = CliRunner()
    analyze = ["analyze", str(study), "--out", str(out), "--scheduler", "serial"]
    assert runner.invoke(app, analyze).exit_code == 0
    stale = out / "qc" / "fcs__A1_day007.npz"
    assert stale.exists()
    manifest = study / "manifest.csv"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(x for x in lines if "A1_day007" not in x))
    assert runner.invoke(app, analyze).exit_code == 0
    assert sorted(p.name for p in (out / "qc").glob("*.npz")) == ["fcs__A1_day014.npz"]
    fresh = tmp_path / "fresh"
    cytokit.analyze(study, fresh, scheduler="serial")
    assert sorted(p.name for p in (fresh / "qc").glob("*.npz")) == ["fcs__A1_day014.npz"]
    got = runner.invoke(app, ["verify", str(out)])
    assert got.exit_code == 0 and "unchanged since run 2" in got.output, got.output


def test_without_the_table_nothing_is_removed(tmp_path):
    out = _study(tmp_path, None)
    res = cytokit.analyze(out, tmp_path / "o", scheduler="serial")
    assert set(SUMMARY_COLUMNS) <= set(res.samples.columns)
    assert res.samples["events_after_qc"].isna().all()
    assert res.acquisition_qc.empty
    root = res.counts.groupby("file")["parent_count"].first()
    assert (root == N_EVENTS).all()


def test_doors_agree_on_a_bubbles_flank(tmp_path):
    """A bubble whose flank (`cytokit.qc.flank`) is read from the rows beside its gap: the
    API, `cytokit gate --study` (QC fed block by block while gating) and analyze keep the
    same events, and the removal reaches past the gap into its flank on both sides."""
    from cytokit.qc import acquisition_qc
    from cytokit.simulate.anomalies import Bubble

    design = StudyDesign(
        patients=(PatientSpec("A1", "NK", "positive", days=(7,)),), seed=29, n_events=N_EVENTS
    )
    plan = AnomalyPlan(bubbles=(Bubble(at=4.0, gap=0.3, flank=0.05, flank_rate=0.5),))
    study_dir = simulate_study(tmp_path / "s", design, anomalies=lambda spec, day: plan)
    toml = study_dir / "study.toml"
    toml.write_text(toml.read_text() + "\n[acquisition_qc]\nenabled = true\n")
    fcs = study_dir / "fcs" / "A1_day007.fcs"
    qc = acquisition_qc(cytokit.read_fcs(fcs))
    (r,) = qc.ranges
    assert "gap" in r.detail and qc.n_removed > 2 * 25
    res = cytokit.analyze(study_dir, tmp_path / "a", scheduler="serial")
    study = load_study(study_dir)
    run = gate_files(
        GateTask.for_study(study, statistics=False), [fcs], tmp_path / "g", scheduler="serial"
    )
    kept = N_EVENTS - qc.n_removed
    assert res.samples.set_index("file").loc["fcs/A1_day007.fcs", "events_after_qc"] == kept
    assert set(run.counts["events_after_qc"]) == {kept}
    with np.load(study_dir / "fcs" / "A1_day007.truth.npz") as truth:
        flank = np.flatnonzero((truth["anomaly_kind"] & BUBBLE) != 0)
    assert r.first_event <= flank.min() + 5 and r.first_event + r.events >= flank.max() - 5


def test_cli_gate_acquisition_qc(qc_study, tmp_path):
    files = [str(qc_study / "fcs" / "A1_day007.fcs")]
    strategy = str(qc_study / "strategy.yaml")
    runner = CliRunner()
    on = runner.invoke(
        app, ["gate", "--study", str(qc_study), *files, "-o", str(tmp_path / "on"), "-j", "1"]
    )
    assert on.exit_code == 0, on.output
    counts = pd.read_csv(tmp_path / "on" / "counts.csv")
    assert counts["events_before_qc"].iloc[0] == N_EVENTS
    assert counts["events_after_qc"].iloc[0] < N_EVENTS
    off = runner.invoke(
        app,
        ["gate", "--study", str(qc_study), "--no-acquisition-qc", *files,
         "-o", str(tmp_path / "off"), "-j", "1"],
    )  # fmt: skip
    assert off.exit_code == 0, off.output
    plain = pd.read_csv(tmp_path / "off" / "counts.csv")
    assert "events_after_qc" not in plain.columns
    assert not (tmp_path / "off" / "acquisition_qc.csv").exists()
    strict = runner.invoke(
        app,
        ["gate", "--study", str(qc_study), strategy, *files, "--qc-max-removed", "1",
         "-o", str(tmp_path / "strict"), "-j", "1"],
    )  # fmt: skip
    failures = pd.read_csv(tmp_path / "strict" / "failures.csv")
    assert list(failures["stage"]) == ["acquisition_qc"], strict.output


def test_gate_without_qc_leaves_no_qc_table_of_an_earlier_run(qc_study, tmp_path):
    """A folder gated with QC and then again without it (or without statistics) must not
    keep tables that describe other counts; ``--no-acquisition-qc`` beside a ``--qc-*``
    option, which turns QC on, is a usage error rather than a silently dropped option."""
    files = [str(qc_study / "fcs" / "A1_day007.fcs")]
    out = tmp_path / "g"
    runner = CliRunner()
    args = ["gate", "--study", str(qc_study), *files, "-o", str(out), "-j", "1"]
    first = runner.invoke(app, [*args, "--format", "both"])
    assert first.exit_code == 0, first.output
    for name in ("qc_samples", "acquisition_qc", "statistics"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.parquet").is_file()
    again = runner.invoke(app, [*args, "--no-acquisition-qc", "--no-stats"])
    assert again.exit_code == 0, again.output
    left = sorted(p.name for p in out.iterdir() if p.suffix in (".csv", ".parquet"))
    assert left == ["counts.csv", "failures.csv", "warnings.csv"]
    counts = pd.read_csv(out / "counts.csv")
    assert "events_after_qc" not in counts and counts["parent_count"].iloc[0] == N_EVENTS
    both = runner.invoke(app, [*args, "--no-acquisition-qc", "--qc-sensitivity", "high"])
    said = " ".join(both.output.replace("│", " ").split())
    assert both.exit_code == 2 and "--qc-sensitivity set acquisition QC, which" in said


def test_qc_exclude_and_the_study_table_leave_out_the_same_channels(qc_study, tmp_path):
    """``--qc-exclude`` and ``exclude_channels`` in the study's table are two doors to the same
    settings: the same QC columns file by file, and other than with nothing left out."""
    import shutil

    excl = tmp_path / "excl"
    shutil.copytree(qc_study, excl)
    toml = excl / "study.toml"
    toml.write_text(toml.read_text() + 'exclude_channels = ["PE-A", "FSC-A"]\n')
    runner = CliRunner()

    def qc_rows(study, name, *options):
        out = tmp_path / name
        res = runner.invoke(
            app, ["gate", "--study", str(study), "--no-stats", "-o", str(out), "-j", "1", *options]
        )
        assert res.exit_code == 0, res.output
        rows = pd.read_csv(out / "qc_samples.csv")
        rows["file"] = [Path(f).name for f in rows["file"]]
        return rows.sort_values("file", ignore_index=True)

    by_table = qc_rows(excl, "table")
    by_option = qc_rows(qc_study, "option", "--qc-exclude", "PE-A", "--qc-exclude", "FSC-A")
    pd.testing.assert_frame_equal(by_table, by_option)
    # and the option adds to the table's list: naming a listed channel again changes nothing
    again = qc_rows(excl, "again", "--qc-exclude", "FSC-A")
    pd.testing.assert_frame_equal(by_table, again)
    everything = qc_rows(qc_study, "all")
    assert not everything["qc_removed_margin"].equals(by_table["qc_removed_margin"])


def test_qc_checks_and_the_study_table_run_the_same_checks(qc_study, tmp_path):
    """``--qc-checks`` and ``checks`` in the study's table are two doors to the same settings:
    the same QC columns file by file, a check left out has empty counts, and the option
    replaces the table's list; without a study the option turns QC on by itself."""
    import shutil

    only = tmp_path / "only"
    shutil.copytree(qc_study, only)
    toml = only / "study.toml"
    toml.write_text(toml.read_text() + 'checks = ["rate", "margins"]\n')
    runner = CliRunner()

    def qc_rows(name, *args):
        out = tmp_path / name
        res = runner.invoke(app, ["gate", *args, "--no-stats", "-o", str(out), "-j", "1"])
        assert res.exit_code == 0, res.output
        rows = pd.read_csv(out / "qc_samples.csv")
        rows["file"] = [Path(f).name for f in rows["file"]]
        return rows.sort_values("file", ignore_index=True)

    by_table = qc_rows("table", "--study", str(only))
    by_option = qc_rows("option", "--study", str(qc_study), "--qc-checks", "margins,rate")
    pd.testing.assert_frame_equal(by_table, by_option)
    assert by_table["qc_removed_signal"].isna().all()
    assert by_table["qc_removed_rate"].max() > 0 and by_table["qc_removed_margin"].notna().all()
    wider = qc_rows("wider", "--study", str(only), "--qc-checks", "rate,signal,margins")
    pd.testing.assert_frame_equal(wider, qc_rows("all", "--study", str(qc_study)))
    files = [str(p) for p in sorted((qc_study / "fcs").glob("*.fcs"))]
    alone = qc_rows("alone", str(qc_study / "strategy.yaml"), *files, "--qc-checks", "margins")
    assert alone["qc_removed_rate"].isna().all() and alone["qc_removed_signal"].isna().all()
    assert (alone["qc_removed_margin"] == by_table["qc_removed_margin"]).all()


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("rate,clogs", "'clogs' is not a check"),
        ("rate,,margins", "'' is not a check"),
        (" , ", "names no check"),
    ],
)
def test_qc_checks_must_name_checks(value, said, tmp_path):
    args = ["gate", "s.yaml", "f.fcs", "-o", str(tmp_path / "o"), f"--qc-checks={value}"]
    res = CliRunner().invoke(app, args)
    text = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and said in text and "rate, signal, margins" in text, text
    off = CliRunner().invoke(app, [*args, "--no-acquisition-qc"])
    assert off.exit_code == 2


def test_an_excluded_channel_no_file_has_is_refused_before_anything_runs(qc_study, tmp_path):
    """A misspelt name would leave the meant channel in QC: each door refuses it, names it,
    says the fix (the case, or the channel of a marker) and writes nothing."""
    import shutil

    runner = CliRunner()

    def gate(study, name, *options):
        out = tmp_path / name
        args = ["gate", "--study", str(study), "--no-stats", "-o", str(out), "-j", "1", *options]
        return runner.invoke(app, args), out

    res, out = gate(qc_study, "typo", "--qc-exclude", "PE-A", "--qc-exclude", "pe-a ")
    assert res.exit_code == 2 and "'pe-a '" in res.output and "the channels are" in res.output
    assert not (out / "counts.csv").exists()
    res, _ = gate(qc_study, "case", "--qc-exclude", "fsc-a")
    assert res.exit_code == 2 and "did you mean 'FSC-A'" in res.output
    res, _ = gate(qc_study, "marker", "--qc-exclude", "CD56")
    assert res.exit_code == 2 and "'CD56' is the marker of PE-A" in " ".join(res.output.split())
    # the study's table: analyze (the API) and gate --study both refuse it
    bad = tmp_path / "bad"
    shutil.copytree(qc_study, bad)
    toml = bad / "study.toml"
    toml.write_text(toml.read_text() + 'exclude_channels = ["FSC-W"]\n')
    with pytest.raises(StudyError, match="exclude_channels names 'FSC-W'"):
        cytokit.analyze(bad, tmp_path / "api")
    assert not (tmp_path / "api" / "samples.csv").exists()
    res, _ = gate(bad, "table")
    assert isinstance(res.exception, StudyError) and "names 'FSC-W'" in str(res.exception)
    # without a study, against the files given
    files = sorted(str(f) for f in (qc_study / "fcs").glob("*.fcs"))
    args = ["gate", str(qc_study / "strategy.yaml"), *files, "-o", str(tmp_path / "plain")]
    res = runner.invoke(app, [*args, "--no-stats", "--qc-exclude", "FL9-H"])
    assert res.exit_code == 2 and "'FL9-H'" in res.output
    # one file: the message names it (it said "not a channel of the file")
    one = ["gate", str(qc_study / "strategy.yaml"), files[0], "-o", str(tmp_path / "one")]
    res = runner.invoke(app, [*one, "--no-stats", "--qc-exclude", "FL9-H"])
    said = "".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and f"notachannelof{files[0]}".replace(" ", "") in said, said
    # and the API's batch door, which the CLI calls
    from cytokit.engine.gate_files import gate_files

    qc = AcquisitionQCSettings(exclude_channels=("PE-A", "FL9-H"))
    with pytest.raises(ValueError, match=r"exclude_channels names 'FL9-H'.*the channels are"):
        gate_files(qc_study / "strategy.yaml", files, tmp_path / "gf", acquisition_qc=qc)
    assert not (tmp_path / "gf").exists()


def _gate_one(strategy: Path, path: Path, out: Path, *options: str):
    """``cytokit gate STRATEGY PATH -o OUT -j 1 OPTIONS``: (its result, OUT)."""
    res = CliRunner().invoke(
        app, ["gate", str(strategy), str(path), "-o", str(out), "-j", "1", *options]
    )
    return res, out


def test_a_dead_detector_is_named_and_can_be_left_out_of_qc(tmp_path):
    """A channel that recorded nothing (every value NaN) makes every event a margin event:
    the failure names the channel and the way out, and ``--qc-exclude`` leaves it out, so a
    strategy that does not read it gets the counts it gets without QC."""
    from test_qc_scan import synthetic

    s = synthetic()
    s.events[:, 2] = np.nan  # FL1-A
    path = tmp_path / "dead.fcs"
    cytokit.write_fcs(path, s)
    strategy = tmp_path / "s.yaml"
    strategy.write_text(
        "transform: none\ncompensation: uncompensated\n"
        "gates:\n  - name: cells\n    range: {FSC-A: [40000, null]}\n"
    )

    def gate(name, *options):
        return _gate_one(strategy, path, tmp_path / name, "--no-stats", *options)

    res, out = gate("qc", "--acquisition-qc")
    assert res.exit_code == 1
    reason = pd.read_csv(out / "failures.csv")["reason"].iloc[0]
    assert "margin 100%: FL1-A 20000 not finite" in reason, reason
    assert "--qc-exclude CHANNEL" in reason and "exclude_channels" in reason
    res, out = gate("excluded", "--qc-exclude", "FL1-A")
    assert res.exit_code == 0, res.output
    with_qc = pd.read_csv(out / "counts.csv")
    res, out = gate("plain")
    assert res.exit_code == 0, res.output
    plain = pd.read_csv(out / "counts.csv")
    assert with_qc["events_before_qc"].iloc[0] == 20_000
    assert with_qc["count"].iloc[0] == plain["count"].iloc[0] > 0
    assert with_qc["count"].iloc[0] <= with_qc["events_after_qc"].iloc[0]
    # with the statistics on, they read FL1-A: the failure says so and how to gate
    res, out = _gate_one(strategy, path, tmp_path / "stats", "--qc-exclude", "FL1-A")
    assert res.exit_code == 1
    reason = pd.read_csv(out / "failures.csv")["reason"].iloc[0]
    assert "FL1-A: only the per-population statistics read it" in reason, reason
    assert "--no-stats" in reason and "export the file again" not in reason


def test_a_dead_detector_the_compensation_reads_is_named_with_the_way_out(tmp_path):
    """A dead detector the strategy never names, left out of QC, but in the file's spillover
    matrix: compensating the channel the gates read mixes its NaN in. The failure says the
    compensation reads it, not "export the file again", and its advice gates the file."""
    import dataclasses

    from test_qc_scan import synthetic

    s = synthetic()
    fl2 = s.events[:, 2:3] * 0.5
    ev = np.hstack([s.events[:, :3], fl2, s.events[:, 3:]]).astype(np.float32)
    ev[:, 3] = np.nan  # FL2-A recorded nothing
    ch = (*s.channels[:3], cytokit.Channel(3, "FL2-A", "CD56", range=262_144))
    ch = (*ch, dataclasses.replace(s.channels[3], index=4))
    spill = cytokit.Spillover(("FL1-A", "FL2-A"), np.array([[1.0, 0.1], [0.05, 1.0]]))
    path = tmp_path / "dead.fcs"
    cytokit.write_fcs(path, cytokit.Sample(ev, ch, keywords=dict(s.keywords), spillover=spill))
    strategy = tmp_path / "s.yaml"
    strategy.write_text(
        "transform: none\ngates:\n  - name: cells\n    range: {FSC-A: [40000, null]}\n"
        "  - name: cd3\n    parent: cells\n    range: {FL1-A: [1000, null]}\n"
    )

    def gate(name, *options):
        return _gate_one(strategy, path, tmp_path / name, "--qc-exclude", "FL2-A", *options)

    res, out = gate("comp", "--no-stats")
    assert res.exit_code == 1
    reason = pd.read_csv(out / "failures.csv")["reason"].iloc[0]
    assert "FL2-A: the gates do not read it, but the compensation mixes it in" in reason, reason
    assert "--compensation none" in reason and "export the file again" not in reason
    res, out = gate("stats")  # the statistics would read it too: the advice says --no-stats
    reason = pd.read_csv(out / "failures.csv")["reason"].iloc[0]
    assert "--compensation none" in reason and "--no-stats" in reason, reason
    res, out = gate("none", "--compensation", "none", "--no-stats")
    assert res.exit_code == 0, res.output
    counts = pd.read_csv(out / "counts.csv")
    assert (counts["count"] > 0).all() and counts["events_before_qc"].iloc[0] == 20_000


#: samples.csv / qc_samples.csv column -> key of `AcquisitionQC.summary()`.
BATCH_TO_API = {
    "events_before_qc": "events_before_qc",
    "events_after_qc": "events_after_qc",
    "qc_removed_rate": "qc_removed_rate",
    "qc_removed_signal": "qc_removed_signal",
    "qc_removed_margin": "qc_removed_margin",
}


@pytest.mark.corpus
def test_corpus_files_get_the_same_qc_through_the_batch_and_the_api(tmp_path):
    """The batch (QC fed the reader's blocks, the door of ``cytokit gate`` and ``analyze``)
    and `acquisition_qc` on the whole file keep the same events of every corpus file with a
    Time channel, and say the same."""
    import warnings

    from test_qc_scan import corpus_samples

    from cytokit.qc import acquisition_qc
    from cytokit.qc.channels import time_column

    settings = AcquisitionQCSettings(max_removed_pct=100.0)  # every file gives its numbers
    seen = 0
    for i, (path, sample) in enumerate(corpus_samples()):
        tcol = time_column(sample)
        if tcol is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qc = acquisition_qc(sample, settings).summary()
        first = next(c.name for c in sample.channels if c.index != tcol)
        strategy = tmp_path / f"s{i}.yaml"
        strategy.write_text(
            "transform: none\ncompensation: uncompensated\n"
            f"gates:\n  - name: all\n    range: {{'{first}': [-1.0e30, null]}}\n"
        )
        out = tmp_path / f"o{i}"
        gate_files(strategy, [path], out, statistics=False, scheduler="serial",
                   acquisition_qc=settings)  # fmt: skip
        rows = pd.read_csv(out / "qc_samples.csv", keep_default_na=False)
        assert len(rows) == 1, (path, pd.read_csv(out / "failures.csv"))
        row = rows.iloc[0]
        for key, api in BATCH_TO_API.items():
            # a check that did not run (no usable Time) has no count in either: not a 0
            assert row[key] == "" if qc[api] is None else int(row[key]) == qc[api], (path, key)
        assert (row["qc_verdict"], row["qc_reason"]) == (qc["qc_verdict"], qc["qc_reason"]), path
        assert row["qc_notes"] == qc["qc_notes"], path  # what was not checked reaches the table
        seen += 1
    assert seen >= 12


# -- invariants and the report ---------------------------------------------------------------


def _planted(results, table, column, row, value):
    from dataclasses import replace

    frame = getattr(results, table).copy()
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[row], column] = value
    return replace(results, **{table: frame})


@pytest.mark.parametrize(
    ("table", "column", "value", "rule"),
    [
        ("samples", "events_after_qc", N_EVENTS + 1, "events_after_qc must be in"),
        ("samples", "qc_verdict", "fail", "qc_verdict must be pass or warn"),
        ("samples", "qc_pct_removed", 50.0, "qc_pct_removed must be"),
        ("acquisition_qc", "events", 10 * N_EVENTS, "the range's events must lie within"),
    ],
)
def test_invariants_catch_broken_qc_columns(qc_results, table, column, value, rule):
    from cytokit.analysis.invariants import violations

    assert violations(qc_results) == []
    broken = _planted(qc_results, table, column, 0, value)
    assert any(rule in v for v in violations(broken)), violations(broken)


def test_root_counts_must_be_the_events_qc_kept(qc_results):
    from cytokit.analysis.invariants import violations

    counts = qc_results.counts.copy()
    root = counts.index[
        (counts["file"] == "fcs/A1_day007.fcs") & (counts["parent_path"].fillna("") == "")
    ]
    counts.loc[root, "parent_count"] = N_EVENTS
    from dataclasses import replace

    found = violations(replace(qc_results, counts=counts))
    assert any("parent_count must be events_after_qc" in v for v in found), found


def test_report_has_a_qc_plot_per_file_open_when_flagged(qc_results):
    from cytokit.report.acquisition import acquisition_section

    html = acquisition_section(qc_results)
    assert html.count("<figure>") == 2
    # each image's alt text is its caption's first clause: a screen reader reads the
    # caption too, and would read it twice
    for file in ("fcs/A1_day007.fcs", "fcs/A1_day014.fcs"):
        alt = f"Event rate and signal of {file} over the acquisition"
        assert f'alt="{alt}"' in html
        assert f"<figcaption>{alt}; removed ranges shaded" in html
    warned = '<details id="qc-fcs__A1_day007" open><summary>fcs/A1_day007.fcs: <b>warn</b>'
    assert warned in html
    assert '<details id="qc-fcs__A1_day014"><summary>fcs/A1_day014.fcs: <b>pass</b>' in html
    # a table of every file first, each linked to its entry, with the samples.csv figures
    table = html[html.index("<table>") : html.index("</table>")]
    assert html.index("</table>") < html.index(warned)
    for r in qc_results.samples.itertuples():
        assert f'<a href="#qc-{r.file[:-4].replace("/", "__")}">{r.file}</a>' in table
        assert f"{r.events_after_qc:,} of {r.events_before_qc:,}" in table
        assert f"{pct_text(r.qc_pct_removed)} %" in table


def test_a_figure_caption_says_flagged_channels_only_where_the_signal_check_removed(
    qc_results,
):
    """A file the signal check removed nothing from shows the channels that departed most;
    its caption does not speak of channels the check flagged, nor gives a count of them."""
    from cytokit.report.acquisition import _caption

    samples = qc_results.samples.set_index("file")
    assert samples.loc["fcs/A1_day014.fcs", "qc_removed_signal"] == 0
    assert samples.loc["fcs/A1_day007.fcs", "qc_removed_signal"] > 0
    for file, signal in samples["qc_removed_signal"].items():
        text = _caption(qc_results, file, {"qc_removed_signal": signal})
        flagged = "first those the signal check flagged, as the ranges below name them"
        assert (flagged in text) == (signal > 0), text
        assert ("the signal check removed nothing" in text) == (signal == 0), text
        assert "channels the signal check flagged" not in text


def test_the_pct_removed_reads_alike_in_every_table_and_page(qc_results):
    """The verdict's reason (samples.csv, the QC section's lines), the QC table and the
    patient page show the % removed with the same digits: from the stored value."""
    from cytokit.report.acquisition import acquisition_section
    from cytokit.report.tables import samples_table

    html = acquisition_section(qc_results)
    page = samples_table(qc_results.samples, qc_results.counts, ["NK"])
    for r in qc_results.samples.itertuples():
        text = pct_text(r.qc_pct_removed)
        assert r.qc_reason.startswith(f"{text}% of {r.events_before_qc:,} events removed")
        assert f"{r.qc_verdict}, {text} % removed" in page
        assert f"<td>{r.qc_verdict}</td>" in html


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.035, "0.035"),
        (3.2149, "3.21"),
        (100, "100"),
        (12.5, "12.5"),
        (1.2e-5, "0.000012"),
        # the half as samples.csv writes it rounds up: 635 of 20,000 events is 3.175 there,
        # 3.17 on the report (the binary fraction just below), which read as a mistake
        (100 * 635 / 20_000, "3.18"),
        (100 * 837 / 20_000, "4.19"),
        (100 * 1351 / 20_000, "6.76"),
        (-3.175, "-3.18"),
        # not whole, so never read as a whole number (the look of a limit: "10 % allowed")
        (9.995, "9.995"),
        (99.96, "99.96"),
        (19.99999, "19.99999"),
        (1e29, "100000000000000000000000000000"),
    ],
)
def test_pct_text(value, text):
    assert pct_text(value) == text


def test_a_pct_is_never_shown_as_the_limit_it_passed():
    """20.004 % removed against 20 % allowed does not read "20% ...; more than the 20%
    allowed", nor 99.96 % as 100 %."""
    from cytokit.qc.result import AcquisitionQC

    qc = AcquisitionQC.__new__(AcquisitionQC)
    object.__setattr__(qc, "settings", AcquisitionQCSettings())
    assert qc._pct(20.004) == "20.004"
    assert qc._pct(99.96) == "99.96"
    assert qc._pct(20.0) == "20"
    assert qc._pct(3.2149) == "3.21"


@pytest.mark.parametrize(
    ("removed", "pct", "verdict"),
    [(50_001, 2.00004, "warn"), (50_000, 2.0, "pass"), (1, 0.00004, "pass"), (0, 0.0, "pass")],
)
def test_the_stored_pct_of_millions_of_events_is_not_a_limit_it_is_not(removed, pct, verdict):
    """In a file of 2.5 million events 50,001 margin events are 2.00004 %: more than the 2 %
    a warning starts at, so neither the table nor the reason may say 2 (4 decimals would);
    one event is not 0 %."""
    from cytokit.qc.result import AcquisitionQC

    reasons = np.zeros(2_500_000, dtype=np.uint8)
    reasons[:removed] = MARGIN
    checks = ("rate", "signal", "margins")
    s = AcquisitionQC("f.fcs", reasons.size, reasons, AcquisitionQCSettings(), checks).summary()
    assert s["qc_pct_removed"] == pct and s["qc_verdict"] == verdict
    assert s["qc_reason"].startswith(f"{pct_text(pct)}% of 2,500,000 events removed")
    if verdict == "warn":
        assert "2.00004% of 2,500,000 events removed (margin 2.00004%" in s["qc_reason"]


def test_patient_samples_table_says_qc_verdict_and_kept_events(qc_results):
    """The patient page's counts come from the events QC kept: its samples table shows
    those of the file's, and the verdict with the % removed, as samples.csv holds them."""
    from cytokit.report.tables import samples_table

    s = qc_results.samples
    html = samples_table(s, qc_results.counts, ["NK"])
    assert "<th>acquisition QC</th>" in html
    for r in s.itertuples():
        assert f"{r.events_after_qc:,}<br>of {r.events_before_qc:,}" in html
        assert f"{r.qc_verdict}, " in html
    plain = s.assign(qc_verdict="", events_after_qc=pd.NA)
    assert "acquisition QC" not in samples_table(plain, qc_results.counts, ["NK"])


def test_report_page_links_the_qc_section_only_when_qc_ran(qc_results, tmp_path):
    from dataclasses import replace

    from cytokit.report.contents import ReportPlots
    from cytokit.report.page import report_html

    html = report_html(qc_results, ReportPlots())
    nav = html[html.index("<nav>") : html.index("</nav>")]
    assert '<a href="#acquisition-qc">Acquisition QC</a>' in nav
    assert html.count('<section id="acquisition-qc">') == 1
    # the section sits after the clusters and before the failures, as it did before
    assert html.index('id="acquisition-qc"') < html.index('id="failures"')
    no_qc = qc_results.samples.drop(columns=["qc_verdict"])
    plain = report_html(replace(qc_results, samples=no_qc), ReportPlots())
    assert "acquisition-qc" not in plain


def test_report_keeps_acquisition_plots_as_files_drawn_once(qc_results, tmp_path):
    """The acquisition plots are figures of the report's manifest: files the index links,
    the bytes `acquisition_figure` draws, and not drawn again by an unchanged rebuild."""
    import shutil

    from cytokit.analysis.results import sample_id
    from cytokit.plots import acquisition_figure, figure_bytes
    from cytokit.report import build_report

    out = Path(shutil.copytree(qc_results.out, tmp_path / "r"))
    build_report(out, formats=("png",), qc=False)
    index = (out / "report.html").read_text()
    manifest = json.loads((out / "plots" / "manifest.json").read_text())["figures"]
    ranges = qc_results.acquisition_qc
    for file in qc_results.samples["file"]:
        png = out / "plots" / "acquisition" / f"{sample_id(file)}.png"
        assert f'src="plots/acquisition/{png.name}"' in index
        assert f"plots/acquisition/{png.stem}" in manifest
        verdict = qc_results.samples.set_index("file").loc[file, "qc_verdict"]
        fig = acquisition_figure(
            qc_results.acquisition_bins(file),
            ranges[ranges["file"] == file],
            title=f"{file}: {verdict}",
        )
        assert png.read_bytes() == figure_bytes(fig, "png")
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*") if p.is_file()}
    build_report(out, formats=("png",), qc=False)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*") if p.is_file()}
    assert after == stamps


def test_a_study_may_leave_out_a_channel_only_another_tubes_files_have(tmp_path):
    """``exclude_channels`` names the receptor tube's BV786-A: ``analyze`` takes the study,
    and so does ``gate --study`` of each tube (the name is checked against the study's
    files, not only the tube's), while a misspelt name is still refused."""
    runner = CliRunner()
    study = tmp_path / "st"
    args = ["simulate", str(study), "--seed", "5", "--patients", "1", "--days", "7"]
    res = runner.invoke(app, [*args, "--events", "5000", "--tubes"])
    assert res.exit_code == 0, res.output
    loaded = load_study(study, check_files=False)
    fcs = cytokit.read_fcs
    default = [r.file for r in loaded.rows if not r.tube]
    other = [r.file for r in loaded.rows if r.tube == "receptors"]
    only = "BV786-A"
    assert only not in fcs(default[0]).channel_names and only in fcs(other[0]).channel_names
    toml = study / "study.toml"
    toml.write_text(toml.read_text() + f'\n[acquisition_qc]\nexclude_channels = ["{only}"]\n')
    for tube in ("default", "receptors"):
        out = tmp_path / f"g_{tube}"
        res = runner.invoke(
            app, ["gate", "--study", str(study), "--tube", tube, "--no-stats", "-o", str(out)]
        )
        assert res.exit_code == 0, (tube, res.output)
        assert len(pd.read_csv(out / "qc_samples.csv")) == len(
            default if tube == "default" else other
        )
    toml.write_text(toml.read_text().replace(only, "BV768-A"))
    res = runner.invoke(
        app,
        [
            "gate",
            "--study",
            str(study),
            "--tube",
            "default",
            "--no-stats",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert isinstance(res.exception, StudyError) and "names 'BV768-A'" in str(res.exception)
    # every file of the study once: the gated tube's files are among them, not counted twice
    files = len({r.file for r in loaded.rows})
    assert f"any of the {files} files" in str(res.exception), str(res.exception)
