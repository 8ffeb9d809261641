"""Panel: marker → channel resolution and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit import Channel, Panel, PanelError, Sample


@pytest.fixture
def sample() -> Sample:
    channels = [
        Channel(0, "FSC-A"),
        Channel(1, "FITC-A", "CD3 FITC"),
        Channel(2, "PE-A", "CD56 PE"),
        Channel(3, "APC-A", "HLA-A2 APC"),
        Channel(4, "APC-H7-A", "CD8"),
    ]
    events = np.arange(15, dtype=np.float32).reshape(3, 5)
    return Sample(events, channels, keywords={"$FIL": "p1_d7.fcs"})


def test_exact_pnn_then_pns_then_pattern(sample):
    panel = Panel({"FSC": "FSC-A", "CD8": "CD8", "CD3": "CD3 FITC", "CD56": r"CD56\b.*"})
    assert panel.columns(sample) == {"FSC": 0, "CD8": 4, "CD3": 1, "CD56": 2}
    assert panel.channel_names(sample)["CD56"] == "PE-A"


def test_pattern_must_match_the_whole_name(sample):
    with pytest.raises(PanelError, match="matches no channel"):
        Panel({"CD5": "CD5"}).column(sample, "CD5")


def test_ambiguous_pattern_names_the_channels(sample):
    with pytest.raises(PanelError, match=r"matches several channels .*APC-A.*APC-H7-A"):
        Panel({"X": "APC.*"}).column(sample, "X")


def test_missing_channel_lists_available_channels(sample):
    with pytest.raises(PanelError, match=r"channels are: FSC-A, FITC-A \(CD3 FITC\)"):
        Panel({"CD16": "BV421-A"}).column(sample, "CD16")


def test_marker_not_in_panel_says_how_to_add_it(sample):
    with pytest.raises(PanelError, match=r'Add a line CD16 = "<channel>"'):
        Panel({"CD3": "FITC-A"}).column(sample, "CD16")


def test_columns_reports_every_problem_at_once(sample):
    panel = Panel({"CD16": "BV421-A", "CD19": "BV510-A", "CD3": "FITC-A"})
    with pytest.raises(PanelError) as info:
        panel.columns(sample)
    text = str(info.value)
    assert "CD16" in text and "CD19" in text and "CD3 =" not in text


def test_empty_channel_spec_is_rejected():
    with pytest.raises(PanelError, match="non-empty"):
        Panel({"CD3": ""})


def test_from_toml(tmp_path, sample):
    path = tmp_path / "study.toml"
    path.write_text('[panel]\nCD3 = "FITC-A"\n"HLA-A2" = "HLA-A2.*"\n')
    panel = Panel.from_toml(path)
    assert panel.columns(sample) == {"CD3": 1, "HLA-A2": 3}


def test_from_toml_without_panel_table(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('[study]\nname = "x"\n')
    with pytest.raises(PanelError, match=r"no \[panel\] table"):
        Panel.from_toml(path)


def test_sample_channel_index_error_lists_channels(sample):
    with pytest.raises(PanelError, match="channels are: FSC-A"):
        sample.channel_index("CD99")
    assert sample.channel_index("CD3 FITC") == 1
    assert sample.keyword("$fil") == "p1_d7.fcs"
