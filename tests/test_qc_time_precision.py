"""Acquisition QC on a clock stored as float32 far from 0 (a time-of-day clock).

`cytokit.read_fcs` returns float32 seconds: at 12 h a float32 holds steps of
0.004 s, at 23 h 0.008 s, against a clock of 0.01 s. The rounded values split
the clock's ticks unevenly, and bins cut on them read the unevenness as a
change of rate. QC takes the clock's step from ``$TIMESTEP`` there, so the
file gives what its times counted from 0 give; where float32 cannot tell the
ticks apart, the rate and signal checks do not run and the note says why.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cytokit import read_fcs, simulate, write_fcs
from cytokit.qc import RATE, SIGNAL, acquisition_qc
from cytokit.simulate import anomalies as A

TICKS_PER_HOUR = 360_000  # $TIMESTEP 0.01 s


@pytest.fixture(scope="module")
def clogged():
    design = simulate.preset_design("sample", seed=100401)
    plan = A.AnomalyPlan(clogs=(A.Clog(start=3.0, drop=1.0, drop_rate=0.2, burst=0.4),))
    sample, truth = simulate.simulate_sample(design, "P01", 7, 20_000, anomalies=plan)
    return sample, truth.anomalies.mask("clog")


def _at(sample, ticks: float, path, timestep: str | None = None):
    """The sample written with its Time channel shifted by `ticks` (and its $TIMESTEP
    set to `timestep`) and read back."""
    ev = sample.events.copy()
    t = [c.name for c in sample.channels].index("Time")
    ev[:, t] = (ev[:, t].astype(np.float64) + ticks).astype(np.float32)
    keywords = sample.keywords if timestep is None else {**sample.keywords, "$TIMESTEP": timestep}
    write_fcs(path, dataclasses.replace(sample, events=ev, keywords=keywords))
    return read_fcs(path)


def _removed(qc):
    return (qc.reasons & (RATE | SIGNAL)) != 0


@pytest.mark.parametrize("hours", [2, 12, 23])
def test_a_time_of_day_clock_gives_what_a_clock_from_zero_gives(clogged, hours, tmp_path):
    sample, clog = clogged
    base = acquisition_qc(_at(sample, 0, tmp_path / "zero.fcs"))
    late = acquisition_qc(_at(sample, hours * TICKS_PER_HOUR, tmp_path / "late.fcs"))
    a, b = _removed(base), _removed(late)
    assert np.count_nonzero(a != b) <= 0.005 * a.size, (base.summary(), late.summary())
    assert b[clog].mean() > 0.95 and b[~clog].mean() < 0.01
    assert all(r.events > 0 and r.end > r.start for r in late.ranges)
    assert late.bins is not None and late.bins.grid.quantum == pytest.approx(0.01, rel=1e-3)


def test_a_clock_float32_cannot_resolve_is_not_binned_and_says_why(clogged, tmp_path):
    sample, _ = clogged
    qc = acquisition_qc(_at(sample, 2**25, tmp_path / "far.fcs"))  # 93 h: 0.03 s apart
    assert "rate" not in qc.checks_run and not qc.ranges
    (note,) = [n for n in qc.notes if "not checked" in n]
    assert "float32" in note and "merged unevenly" in note
    # the file stores float32 ticks (4 apart there): read as float64 they are as merged
    wide = acquisition_qc(read_fcs(tmp_path / "far.fcs", dtype=np.float64))
    assert "rate" not in wide.checks_run and not wide.ranges
    assert any("the file stores its time values as float32" in n for n in wide.notes)
    # a fine clock (0.1 ms) at 8 h: float32 holds 2 ms steps, 20 ticks a value
    fine = acquisition_qc(_at(sample, 8 * 36_000_000, tmp_path / "fine.fcs", "0.0001"))
    assert "rate" not in fine.checks_run and not fine.ranges and fine.verdict != "fail"
    assert any("the file stores its time values as float32" in n for n in fine.notes)


def test_a_file_storing_float64_times_is_checked_when_read_as_float64(clogged, tmp_path):
    sample, clog = clogged
    ev = sample.events.astype(np.float64)
    ev[:, -1] += 2**25
    path = tmp_path / "d.fcs"
    write_fcs(path, dataclasses.replace(sample, events=ev), datatype="D")
    # read as float32 the times are 0.03 s apart: not binned, and the note says how to read it
    held = acquisition_qc(read_fcs(path, dtype=np.float32))
    assert "rate" not in held.checks_run
    assert any("read the file with dtype=numpy.float64" in n for n in held.notes)
    qc = acquisition_qc(read_fcs(path, dtype=np.float64))
    removed = _removed(qc)
    assert "rate" in qc.checks_run and removed[clog].mean() > 0.95 and removed[~clog].mean() < 0.01


def test_range_times_are_given_to_the_clocks_resolution(clogged, tmp_path):
    sample, _ = clogged
    qc = acquisition_qc(_at(sample, 12 * TICKS_PER_HOUR, tmp_path / "late.fcs"))
    frame = qc.ranges_frame()
    assert len(frame)
    for t in (*frame.start, *frame.end):  # whole milliseconds (edges halfway between ticks)
        assert abs(t * 1000 - round(t * 1000)) < 1e-6, t
        assert 12 * 3600 < t < 12 * 3600 + 30


def test_a_tiny_timestep_is_noted_and_its_ranges_keep_their_times(clogged, tmp_path):
    sample, _ = clogged
    keywords = {**sample.keywords, "$TIMESTEP": "1e-12"}
    write_fcs(tmp_path / "tiny.fcs", dataclasses.replace(sample, keywords=keywords))
    qc = acquisition_qc(read_fcs(tmp_path / "tiny.fcs"))
    assert any("shorter than any tube runs: check $TIMESTEP" in n for n in qc.notes), qc.notes
    frame = qc.ranges_frame()
    assert len(frame) and (frame.end > frame.start).all() and (frame.start > 0).all()


@pytest.mark.parametrize("step", ["abc", "0", "-0.01"])
def test_a_timestep_that_is_no_positive_number_is_noted(clogged, step):
    """The times are then the clock's own units: the notes say so, with the value, and the
    clog is found all the same."""
    sample, clog = clogged
    keywords = {k: v for k, v in sample.keywords.items() if k != "CYTOKIT_TIMESTEP"}
    qc = acquisition_qc(dataclasses.replace(sample, keywords={**keywords, "$TIMESTEP": step}))
    assert qc.ranges_frame()["time_unit"].eq("time units").all()
    assert any(f"$TIMESTEP = '{step}' is not a positive number" in n for n in qc.notes), qc.notes
    assert _removed(qc)[clog].mean() > 0.95
    # a usable one is not noted
    good = acquisition_qc(dataclasses.replace(sample, keywords={**keywords, "$TIMESTEP": "0.01"}))
    assert not any("$TIMESTEP =" in n for n in good.notes), good.notes


def test_a_failed_file_says_what_qc_noted(clogged, tmp_path):
    """A wrong $TIMESTEP may be what fails a file: the failure gives QC's notes."""
    from cytokit.qc import AcquisitionQCError, AcquisitionQCSettings, screen

    sample, _ = clogged
    keywords = {**sample.keywords, "$TIMESTEP": "1e-12"}
    write_fcs(tmp_path / "tiny.fcs", dataclasses.replace(sample, keywords=keywords))
    with pytest.raises(AcquisitionQCError) as e:
        screen(read_fcs(tmp_path / "tiny.fcs"), AcquisitionQCSettings(max_removed_pct=1.0))
    assert "QC notes: the acquisition lasts" in str(e.value) and "check $TIMESTEP" in str(e.value)


def test_no_range_without_events():
    """A coarse clock (0.1 s, 5,000 events): a flagged last bin whose change point falls
    after its last event is no range (it removed nothing, and listed 0 events)."""
    design = dataclasses.replace(simulate.preset_design("sample", seed=102001), timestep=0.1)
    sample, _ = simulate.simulate_sample(design, "P01", 7, 5000)
    qc = acquisition_qc(sample)
    assert all(r.events > 0 and r.end > r.start for r in qc.ranges), qc.ranges_frame()


def test_a_failed_files_notes_are_not_said_twice(clogged, tmp_path):
    from cytokit.qc import AcquisitionQCError, AcquisitionQCSettings, screen

    sample, _ = clogged
    path = tmp_path / "far.fcs"
    _at(sample, 2**25, path)
    with pytest.raises(AcquisitionQCError) as e:
        screen(read_fcs(path), AcquisitionQCSettings(max_removed_pct=0.0))
    text = str(e.value)
    assert text.count("merged unevenly") == 1, text
