"""Non-finite event values: the counting kernel, the columns a strategy reads, the drop rule.

The kernel is checked against numpy on random arrays; the columns a
compensated strategy reads against the inverse spillover matrix computed by
numpy; the rule end to end through ``cytokit gate`` (`gate_files`) and
`cytokit.analyze` on simulated files with NaN and inf planted at known
events, against the same strategy applied to the file with those events
removed by numpy.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from study_helpers import make_study, simulated_strategy

import cytokit
from cytokit import gating as G
from cytokit.engine.gate_files import GateTask, gate_files
from cytokit.errors import FCSError
from cytokit.fcs import read_fcs, write_fcs
from cytokit.finite import MAX_NONFINITE, drop_nonfinite, scan_nonfinite
from cytokit.kernels import finite_rows, nonfinite_counts
from cytokit.simulate import PatientSpec, StudyDesign, simulate_sample

KINDS = (np.nan, np.inf, -np.inf)


def _planted(rng, n, k, dtype, share=0.01):
    ev = rng.normal(0.0, 1000.0, (n, k)).astype(dtype)
    where = rng.random((n, k)) < share
    ev[where] = rng.choice(KINDS, int(where.sum())).astype(dtype)
    return ev


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_counts_match_numpy(dtype, seed):
    rng = np.random.default_rng(seed)
    ev = _planted(rng, 5_000, 6, dtype)
    read = rng.random(6) < 0.5
    counts, events = nonfinite_counts(ev, read)
    assert counts.tolist() == [
        np.isnan(ev).sum(axis=0).tolist(),
        np.isposinf(ev).sum(axis=0).tolist(),
        np.isneginf(ev).sum(axis=0).tolist(),
    ]
    assert events == int((~np.isfinite(ev[:, read])).any(axis=1).sum())
    assert nonfinite_counts(ev)[1] == int((~np.isfinite(ev)).any(axis=1).sum())
    assert np.array_equal(finite_rows(ev, read), np.isfinite(ev[:, read]).all(axis=1))


def test_kernel_edge_cases():
    ev = np.array([[1.0, np.nan], [np.inf, 2.0], [3.0, 4.0]], dtype=np.float32)
    ro = ev.copy()
    ro.setflags(write=False)
    before = ro.copy()
    counts, events = nonfinite_counts(ro, [False, True])
    assert counts[:, 0].tolist() == [0, 1, 0] and counts[:, 1].tolist() == [1, 0, 0]
    assert events == 1 and np.array_equal(ro, before, equal_nan=True)
    # a strided view (every other column) is read correctly
    wide = np.zeros((3, 4), dtype=np.float64)
    wide[:, ::2] = ev
    assert nonfinite_counts(wide[:, ::2])[1] == 2
    assert nonfinite_counts(np.zeros((0, 3)))[1] == 0
    assert nonfinite_counts(np.arange(6).reshape(3, 2))[0].sum() == 0  # integers: finite
    with pytest.raises(ValueError, match=r"read has shape \(3,\); expected \(2,\)"):
        nonfinite_counts(ev, [True, True, True])


def test_kernel_reads_only_the_columns_it_is_given():
    """``columns`` limits the pass: counts of the others are 0, and only their events count."""
    rng = np.random.default_rng(5)
    ev = _planted(rng, 4_000, 6, np.float32, share=0.02)
    read = np.array([True, False, True, True, False, True])
    look = [4, 0, 2]
    counts, events = nonfinite_counts(ev, read, look)
    full, _ = nonfinite_counts(ev, read)
    assert np.array_equal(counts[:, look], full[:, look])
    assert not counts[:, [1, 3, 5]].any()
    assert events == int((~np.isfinite(ev[:, [0, 2]])).any(axis=1).sum())  # read and looked at
    assert nonfinite_counts(ev, read, []) == (pytest.approx(np.zeros((3, 6))), 0)
    assert nonfinite_counts(ev, read, range(6))[1] == nonfinite_counts(ev, read)[1]
    with pytest.raises(ValueError, match=r"columns \[0, 6\] must lie in 0\.\.5"):
        nonfinite_counts(ev, read, [6, 0])


@pytest.fixture(scope="module")
def simulated():
    design = StudyDesign(patients=(PatientSpec("N1", "NK", "positive"),), seed=11, n_events=8_000)
    sample, _ = simulate_sample(design, "N1", 7, workers=1)
    return sample


def test_read_columns_follow_the_inverse_spillover(simulated):
    """Every detector compensated into a gated channel is read, per numpy's inverse."""
    strategy = simulated_strategy()
    spill = simulated.spillover
    inv = np.linalg.inv(spill.matrix)
    col = {c.name: c.index for c in simulated.channels}
    gated = {d.channel for g in strategy.gates for d in g.dimensions}
    expected = {col[c] for c in gated}
    for c in gated & set(spill.channels):
        j = spill.channels.index(c)
        expected |= {col[spill.channels[m]] for m in np.flatnonzero(inv[:, j])}
    got = strategy.read_columns(simulated)
    assert set(got) == expected
    assert col["Time"] not in got and col["FITC-A"] in got  # FITC spills into PE (CD56)
    uncompensated = strategy.read_columns(simulated, compensation=None)
    assert set(uncompensated) == {col[c] for c in gated}
    # extra dimensions count too: an uncompensated Time dimension adds Time only
    extra = strategy.read_columns(simulated, [G.Dimension("Time")], compensation=None)
    assert set(extra) == set(uncompensated) | {col["Time"]}


def test_drop_rule(simulated):
    ev = simulated.events.copy()
    n = ev.shape[0]
    col = {c.name: c.index for c in simulated.channels}
    bad = np.arange(0, n, 200)  # 0.5 % of the events
    ev[bad, col["FSC-A"]] = np.inf
    ev[bad[:10], col["APC-A"]] = np.nan  # the same events: still 40 dropped, not 50
    ev[1::1000, col["Time"]] = np.nan  # nothing reads Time
    sample = cytokit.Sample(ev, simulated.channels, simulated.keywords, simulated.spillover)
    read = simulated_strategy().read_columns(sample)
    kept, found = drop_nonfinite(sample, read)
    assert found.events == bad.size and kept.n_events == n - bad.size
    assert found.fraction == pytest.approx(bad.size / n)
    assert np.isfinite(kept.events[:, list(read)]).all()
    summary = found.summary()
    assert f"FSC-A {bad.size} +inf" in summary and "APC-A 10 NaN" in summary
    assert f"Time {len(range(1, n, 1000))} NaN (not read)" in summary
    # the events kept are the file's other events, in order
    assert np.array_equal(kept.events, np.delete(ev, bad, axis=0), equal_nan=True)
    assert scan_nonfinite(sample, []).events == 0  # counted per channel, nothing read
    # above the limit: refused, naming the channel and the fraction
    ev[:, col["APC-A"]] = np.nan
    whole = cytokit.Sample(ev, simulated.channels, simulated.keywords, simulated.spillover)
    with pytest.raises(FCSError, match=r"8000 of 8000 events \(100 %\).*APC-A 8000 NaN.*1 %"):
        drop_nonfinite(whole, read, max_fraction=MAX_NONFINITE)


def test_gating_result_says_how_many_events_are_non_finite(simulated):
    ev = simulated.events.copy()
    ev[:25, simulated.channel_index("APC-A")] = np.nan
    ev[25:30, simulated.channel_index("Time")] = np.inf
    sample = cytokit.Sample(ev, simulated.channels, simulated.keywords, simulated.spillover)
    result = simulated_strategy().apply(sample)
    assert result.nonfinite_events == 25
    # the kernels' semantics: the NaN events are in the total and in no CD3 gate
    assert result.n_events == sample.n_events
    q = [result.membership(f"CD3{a}CD56{b}")[:25] for a in "+-" for b in "+-"]
    assert not np.logical_or.reduce(q).any()
    # ... and so in a Boolean not of a gate on that channel: its complement
    fl = G.Dimension("APC-A", compensation=G.UNCOMPENSATED)
    on = G.RectangleGate(id="pos", dims=(fl,), min=(1000.0,), max=(None,))
    off = G.BooleanGate(id="notpos", op="not", operands=("pos",))
    got = G.GatingStrategy([on, off]).apply(sample)
    assert not got.membership("pos")[:25].any() and got.membership("notpos")[:25].all()
    assert got.count("pos") + got.count("notpos") == sample.n_events


def _write(folder, sample, name):
    path = folder / name
    write_fcs(path, sample)
    return path


def test_gate_command_drops_counts_and_refuses(simulated, tmp_path):
    """``cytokit gate``: the counts of a file with NaN events equal those of the file without them."""
    strategy = simulated_strategy()
    ev = simulated.events.copy()
    bad = np.arange(3, ev.shape[0], 250)  # 0.4 %
    ev[bad, simulated.channel_index("PE-A")] = np.nan
    some = cytokit.Sample(ev, simulated.channels, simulated.keywords, simulated.spillover)
    clean = cytokit.Sample(
        np.delete(ev, bad, axis=0), simulated.channels, simulated.keywords, simulated.spillover
    )
    ev2 = simulated.events.copy()
    ev2[::20, simulated.channel_index("SSC-A")] = -np.inf  # 5 %
    many = cytokit.Sample(ev2, simulated.channels, simulated.keywords, simulated.spillover)
    files = [
        _write(tmp_path, some, "some.fcs"),
        _write(tmp_path, clean, "clean.fcs"),
        _write(tmp_path, many, "many.fcs"),
    ]
    run = gate_files(GateTask(strategy), files, tmp_path / "out", workers=1)
    counts = run.counts.set_index(["file", "gate_path"])["count"]
    a = counts.xs(str(files[0]), level="file")
    b = counts.xs(str(files[1]), level="file")
    assert a.equals(b) and a.sum() > 0
    assert run.nonfinite_events == bad.size
    fail = run.failures.set_index("file").loc[str(files[2])]
    assert fail["stage"] == "values" and "SSC-A 400 -inf" in fail["reason"]
    on_disk = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert list(on_disk.file) == [str(files[2])]
    # the tables account for the dropped events, not only the terminal
    said = pd.read_csv(tmp_path / "out" / "warnings.csv").set_index("file")["warning"]
    assert said[str(files[0])] == (
        f"{bad.size} event(s) with NaN or infinite values in a channel the gates read were "
        f"dropped before gating (PE-A {bad.size} NaN)"
    )
    assert str(files[1]) not in said.index
    # the same file passes when the limit allows it
    lax = gate_files(GateTask(strategy, max_nonfinite=0.1), files[2:], tmp_path / "lax", workers=1)
    assert lax.failures.empty and lax.nonfinite_events == 400


# -- cytokit.analyze ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    design = StudyDesign(
        patients=(PatientSpec("P1", "NK", "positive"),),
        seed=31,
        n_events=12_000,
        days=(-7, 3, 7, 14, 28),
    )
    return make_study(tmp_path_factory.mktemp("finite") / "study", design)


def _plant(study, folder, file, plant):
    copy = shutil.copytree(study, folder)
    sample = read_fcs(copy / file, scale=False)
    ev = sample.events.copy()
    plant(ev, sample)
    sample.events = ev
    write_fcs(copy / file, sample)
    return copy


def test_analyze_drops_and_reports_non_finite_events(study, tmp_path):
    file = "fcs/P1_day007.fcs"
    n = 12_000
    bad = np.arange(5, n, 150)  # 80 events, 0.67 %

    def plant(ev, s):
        ev[bad, s.channel_index("FSC-A")] = np.inf
        ev[bad[:20], s.channel_index("APC-A")] = np.nan
        ev[7::600, s.channel_index("Time")] = np.nan

    folder = _plant(study, tmp_path / "study", file, plant)
    results = cytokit.analyze(folder, tmp_path / "out", workers=1)
    assert results.failures.empty
    row = results.samples.set_index("file").loc[file]
    assert row["events"] == n and row["nonfinite_events"] == bad.size
    assert "FSC-A 80 +inf" in row["nonfinite_values"]
    assert "APC-A 20 NaN" in row["nonfinite_values"]
    assert "Time 20 NaN (not read)" in row["nonfinite_values"]
    on_disk = pd.read_csv(tmp_path / "out" / "samples.csv").set_index("file")
    assert on_disk.loc[file, "nonfinite_events"] == bad.size
    # the counts are those of the file without the planted events
    s = read_fcs(folder / file)
    clean = cytokit.Sample(np.delete(s.events, bad, axis=0), s.channels, s.keywords, s.spillover)
    truth = simulated_strategy().apply(clean).counts.set_index("gate_path")
    got = results.counts[results.counts.file == file].set_index("gate_path")
    assert got["count"].to_dict() == truth["count"].to_dict()
    assert got.loc["/Lymphocytes", "parent_count"] == n - bad.size
    others = results.samples[results.samples.file != file]
    assert (others.nonfinite_events == 0).all()


def test_a_file_of_non_finite_values_is_a_failure_not_zeros(study, tmp_path):
    """NaN in the whole CD3 channel used to give every population 0 events and 0 cells/µL."""
    file = "fcs/P1_day007.fcs"

    def plant(ev, s):
        ev[:, s.channel_index("APC-A")] = np.nan

    folder = _plant(study, tmp_path / "study", file, plant)
    results = cytokit.analyze(folder, tmp_path / "out", workers=1)
    fail = results.failures.set_index("file").loc[file]
    assert fail["stage"] == "values"
    assert "APC-A 12000 NaN" in fail["reason"] and "(100 %)" in fail["reason"]
    assert file not in set(results.chimerism.file) and file not in set(results.counts.file)
    assert 7 not in set(results.chimerism.day)
    # the trends see four days, not a fifth at zero
    tr = results.trends[(results.trends.population == "NK")]
    assert (tr.n_days == 4).all()


def test_every_door_applies_the_studys_non_finite_rule(study, tmp_path):
    """analyze, ``gate --study`` (`GateTask.for_study`) and `Study.gate` drop the same events,
    give the same counts and parent counts, and fail a file under the study's own
    ``[qc] max_nonfinite`` (the gate door used to apply the default 1 % and the API none)."""
    file = "fcs/P1_day007.fcs"
    n = 12_000
    bad = np.arange(5, n, 150)  # 80 events, 0.67 %

    def plant(ev, s):
        ev[bad, s.channel_index("FSC-A")] = np.inf

    folder = _plant(study, tmp_path / "study", file, plant)
    results = cytokit.analyze(folder, tmp_path / "out", workers=1)
    want = results.counts[results.counts.file == file].set_index("gate_path")
    loaded = cytokit.load_study(folder)
    api = loaded.gate(read_fcs(folder / file)).counts.set_index("gate_path")
    run = gate_files(GateTask.for_study(loaded), [folder / file], tmp_path / "gate", workers=1)
    door = run.counts.set_index("gate_path")
    for got in (api, door):
        assert got["count"].to_dict() == want["count"].to_dict()
        assert got["parent_count"].to_dict() == want["parent_count"].to_dict()
    assert want.loc["/Lymphocytes", "parent_count"] == n - bad.size

    # a stricter study limit (0.5 %) fails the file through every door
    toml = folder / "study.toml"
    toml.write_text(toml.read_text().replace("[qc]\n", "[qc]\nmax_nonfinite = 0.005\n"))
    strict = cytokit.analyze(folder, tmp_path / "out2", workers=1)
    assert file in set(strict.failures.file)
    assert file not in set(strict.counts.file)
    loaded = cytokit.load_study(folder)
    with pytest.raises(FCSError, match="max_nonfinite"):
        loaded.gate(read_fcs(folder / file))
    run = gate_files(GateTask.for_study(loaded), [folder / file], tmp_path / "gate2", workers=1)
    assert run.counts.empty and len(run.failures) == 1
    assert run.failures.iloc[0]["stage"] == "values"


def test_every_door_screens_the_studys_measured_markers(study, tmp_path):
    """A NaN in a channel only a measured marker reads (no gate reads it once compensation
    is off) drops the same events through analyze, ``gate --study`` and `Study.gate`:
    all three screen the gates' channels and the study's measured markers' (before, the
    API and ``gate`` without statistics kept those events and gave other parent counts)."""
    file = "fcs/P1_day007.fcs"
    n = 12_000
    bad = np.arange(7, n, 200)  # 60 events, 0.5 %
    folder = shutil.copytree(study, tmp_path / "study")
    toml = folder / "study.toml"
    toml.write_text(toml.read_text().replace('source = "file"', 'source = "none"'))
    loaded = cytokit.load_study(folder)
    sample = read_fcs(folder / file, scale=False)
    gated = {d.channel for g in loaded.gating.gates for d in g.dimensions}
    names = loaded.panel.channel_names(sample)
    # the case: a phenotype marker (measured by default) whose channel no gate reads
    channel = next(
        names[m]
        for m in loaded.panel
        if names[m] not in gated and m not in gated and m not in loaded.donor_markers()
    )

    ev = sample.events.copy()
    ev[bad, sample.channel_index(channel)] = np.nan
    sample.events = ev
    write_fcs(folder / file, sample)

    results = cytokit.analyze(folder, tmp_path / "out", workers=1)
    want = results.counts[results.counts.file == file].set_index("gate_path")
    assert want.loc["/Lymphocytes", "parent_count"] == n - bad.size
    loaded = cytokit.load_study(folder)
    api = loaded.gate(read_fcs(folder / file)).counts.set_index("gate_path")
    doors = {"Study.gate": api}
    for stats in (False, True):
        run = gate_files(
            GateTask.for_study(loaded, statistics=stats),
            [folder / file],
            tmp_path / f"gate{stats}",
            workers=1,
        )
        doors[f"gate --study, statistics={stats}"] = run.counts.set_index("gate_path")
        assert run.nonfinite_events == bad.size
    for name, got in doors.items():
        assert got["count"].to_dict() == want["count"].to_dict(), name
        assert got["parent_count"].to_dict() == want["parent_count"].to_dict(), name


def test_after_acquisition_qc_the_screen_skips_the_channels_qc_made_finite(simulated, tmp_path):
    """QC's margin check removes every event with a non-finite value in its channels
    (`AcquisitionQC.finite_columns`), so the non-finite screen after it reads only the
    others (Time here): what it finds, drops and reports is what a full pass finds, and
    ``cytokit gate --acquisition-qc`` counts the file as `Study`-free gating of QC's kept
    events with a full screen does."""
    from cytokit.qc import AcquisitionQCSettings, screen

    ev = simulated.events.copy()
    col = {c.name: c.index for c in simulated.channels}
    n = ev.shape[0]
    ev[np.arange(0, n, 211), col["FSC-A"]] = np.inf
    ev[np.arange(3, n, 307), col["APC-A"]] = np.nan
    ev[np.arange(5, n, 401), col["PE-A"]] = -np.inf
    ev[-1, col["Time"]] = np.inf  # not a time: QC names it, and the screen drops it
    sample = cytokit.Sample(ev, simulated.channels, simulated.keywords, simulated.spillover)
    settings = AcquisitionQCSettings()
    kept, qc = screen(sample, settings)
    finite = qc.finite_columns
    assert {col["FSC-A"], col["APC-A"], col["PE-A"]} <= set(finite)
    assert col["Time"] not in finite
    assert np.isfinite(kept.events[:, list(finite)]).all()
    assert qc.removed_by["margin"] >= len(range(0, n, 211))
    read = simulated_strategy().read_columns(kept, [G.Dimension("Time")])
    fast, found_fast = drop_nonfinite(kept, read, known_finite=finite)
    full, found_full = drop_nonfinite(kept, read)
    assert found_fast == found_full and found_full.events == 1  # the +inf time, read here
    assert "Time 1 +inf" in found_full.summary()
    assert np.array_equal(fast.events, full.events)
    # the command: QC fused with the screen, against QC's kept events gated after a full one
    path = _write(tmp_path, sample, "planted.fcs")
    strategy = simulated_strategy()
    run = gate_files(
        GateTask(strategy, acquisition_qc=settings), [path], tmp_path / "out", workers=1
    )
    want = strategy.apply(drop_nonfinite(kept, strategy.read_columns(kept))[0]).counts
    got = run.counts.set_index("gate_path")["count"]
    assert got.to_dict() == want.set_index("gate_path")["count"].to_dict()
    assert got.sum() > 0 and run.nonfinite_events == 0
