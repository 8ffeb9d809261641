"""Margin limits from $PnR, $PnE, $PnG and the data type, checked against the stored values.

The truth is what the file stores, read by FlowIO (not by cytokit): an event is
at a channel's top when its stored value is at least ``$PnR - 1``, and at a
scatter channel's floor when the file holds integers and its stored value is
0, or when the file holds floats and the value is the channel's smallest, at
most 0, shared by at least two events (a clipped channel; float values that
merely spread below 0 are measurements). cytokit's QC
works on scale values (log decoded, gain divided out), so these tests check
that the limits survive that arithmetic on integer, log-amplified, gain and
float files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import cytokit
from cytokit.qc import AcquisitionQCSettings, acquisition_qc, channel_plan, channel_role
from cytokit.qc.channels import time_axis, time_column

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
# integer linear + log + gain (FACSCalibur), integer log saturating, float BD, float Attune,
# integer 24-bit Accuri, 10-bit FACScan without a Time channel
FILES = [
    "flowkit/data/gate_ref/data1.fcs",
    "github/taborlab_FlowCal/test/Data001.fcs",
    "github/RGLab_flowWorkspaceData/inst/extdata/diva/124500.fcs",
    "github/RGLab_flowWorkspaceData/inst/extdata/a2004_O1T2pb05i_A2_A02.fcs",
    "github/whitews_FlowIO/data/fcs_files/G11.fcs",
    "github/whitews_FlowIO/data/fcs_files/B01 KC-A-W---91-US.fcs",
    "github/whitews_FlowIO/data/fcs_files/3FITC_4PE_004.fcs",
]


def corpus_file(rel: str) -> Path:
    path = CORPUS / rel
    if not path.exists():
        pytest.skip(f"corpus file {rel} not found in {CORPUS}")
    return path


def read(path: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cytokit.read_fcs(path, **kw)


@pytest.mark.corpus
@pytest.mark.parametrize("rel", FILES)
def test_margins_on_scale_values_are_the_stored_limits(rel):
    flowio = pytest.importorskip("flowio")
    path = corpus_file(rel)
    stored = flowio.FlowData(str(path)).as_array(preprocess=False)
    sample = read(path)
    qc = acquisition_qc(sample, AcquisitionQCSettings(checks=("margins",)))
    want_event = np.zeros(sample.n_events, dtype=bool)
    checked = set(qc.margins.names)
    for c in sample.channels:
        role = channel_role(c.name)
        if c.name not in checked:
            assert role == "other" or c.index == time_column(sample), c.name
            continue
        x = stored[:, c.index]
        top = x >= c.range - 1
        floor = np.zeros_like(top)
        if role == "scatter" and sample.keyword("$DATATYPE") == "I":
            floor = x <= 0
        elif role == "scatter" and not c.is_log:  # float: a pile at the minimum, <= 0
            low = x[np.isfinite(x)].min()
            floor = x == low if low <= 0 and np.sum(x == low) >= 2 else floor
        j = qc.margins.names.index(c.name)
        assert qc.margins.top[j] == int(top.sum()), f"{rel} {c.name} top"
        assert qc.margins.floor[j] == int(floor.sum()), f"{rel} {c.name} floor"
        want_event |= top | floor
    np.testing.assert_array_equal((qc.reasons & 4) != 0, want_event)


@pytest.mark.corpus
def test_log_channel_saturation_is_found_on_scale_values():
    # Data001: FL2-H and FL3-H are log-amplified (4 decades, 10-bit); a third of the
    # events sit at stored 1023, scale 10 ** (4 * 1023 / 1024) = 9910.46
    path = corpus_file("github/taborlab_FlowCal/test/Data001.fcs")
    qc = acquisition_qc(read(path), AcquisitionQCSettings(checks=("margins",)))
    m = qc.margins.frame().set_index("channel")
    assert m.loc["FL2-H", "top"] == 7592 and m.loc["FL3-H", "top"] == 8036
    assert m.loc["FL2-H", "top_limit"] == pytest.approx(10 ** (4 * 1022.5 / 1024), rel=1e-12)
    assert "log" in m.loc["FL2-H", "top_rule"]
    # fluorescence has no floor: the events at stored 0 of a log channel are negatives
    assert m.loc["FL1-H", "floor"] == 0 and m.loc["FL1-H", "floor_limit"] == -np.inf


@pytest.mark.corpus
def test_stored_values_give_the_same_margins_as_scale_values():
    path = corpus_file("flowkit/data/gate_ref/data1.fcs")  # gains 3.67 and 8, log channels
    a = acquisition_qc(read(path), AcquisitionQCSettings(checks=("margins",)))
    b = acquisition_qc(read(path, scale=False), AcquisitionQCSettings(checks=("margins",)))
    np.testing.assert_array_equal(a.reasons, b.reasons)
    np.testing.assert_array_equal(a.margins.top, b.margins.top)


@pytest.mark.corpus
def test_a_float_channel_above_its_range_gets_no_top(tmp_path):
    # scale values of log channels written back keep $PnR = 1024 with values up to 10^4:
    # that $PnR is no top, and taking it for one would mark good events as saturated
    src = read(corpus_file("flowkit/data/gate_ref/data1.fcs"))
    out = cytokit.write_fcs(tmp_path / "scaled.fcs", src)
    qc = acquisition_qc(read(out), AcquisitionQCSettings(checks=("margins",)))
    m = qc.margins.frame().set_index("channel")
    for name in ("FL2-H", "FL3-H", "FL4-H"):  # values above 1024
        assert m.loc[name, "top"] == 0 and m.loc[name, "top_limit"] == np.inf
        assert any(n.startswith(f"{name}: values up to") for n in qc.notes)
    assert not (qc.reasons & 4).any()


@pytest.mark.corpus
def test_linear_float_scatter_has_no_floor():
    # Data004 (FACSAria II, bacteria-sized particles): half the events have FSC-A <= 0,
    # baseline-restored values spread around 0, not clipped at a floor
    path = corpus_file("github/taborlab_FlowCal/test/Data004.fcs")
    sample = read(path)
    fsc = sample.column("FSC-A")
    assert (fsc <= 0).mean() > 0.4 and (fsc == fsc.min()).sum() == 1
    qc = acquisition_qc(sample, AcquisitionQCSettings(checks=("margins",)))
    m = qc.margins.frame().set_index("channel")
    assert m.loc["FSC-A", "floor"] == 0 and m.loc["FSC-A", "floor_limit"] == -np.inf


def test_channel_roles():
    assert channel_role("FSC-A") == channel_role("SSC-H") == channel_role("FS INT") == "scatter"
    assert channel_role("FSC-W") == channel_role("FSCW") == channel_role("Width") == "width"
    assert channel_role("PE-Cy7-A") == channel_role("FL1") == "fluorescence"
    assert channel_role("Time") == channel_role("Event #") == channel_role("TIME MSW") == "other"


def test_time_axis_units():
    from cytokit.sample import Channel, Sample

    ch = (Channel(0, "FSC-A", range=1024), Channel(1, "Time", range=1024))
    ev = np.zeros((3, 2))
    stored = Sample(ev, ch, keywords={"$TIMESTEP": "0.01"}, scaled=False)
    scaled = Sample(ev, ch, keywords={"$TIMESTEP": "0.01"}, scaled=True)
    rewritten = Sample(ev, ch, keywords={"CYTOKIT_TIMESTEP": "0.01"}, scaled=True)
    bare = Sample(ev, ch, keywords={}, scaled=True)
    assert time_axis(stored) == 0.01
    assert time_axis(scaled) == time_axis(rewritten) == 1.0
    assert time_axis(bare) is None
    assert time_column(stored) == 1


def test_exclude_channels():
    from cytokit.sample import Channel, Sample

    ch = (Channel(0, "FSC-A", range=1024), Channel(1, "FL1-H", range=1024))
    plan = channel_plan(Sample(np.zeros((2, 2)), ch), exclude=["FL1-H", "not-there"])
    assert plan.names == ("FSC-A",)
    assert plan.excluded == ("FL1-H (excluded by the settings)",)
