"""[acquisition_qc] settings: defaults, parsing from a TOML table, and every error at once."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cytokit.errors import StudyError
from cytokit.qc import THRESHOLDS, AcquisitionQCSettings, parse_acquisition_qc


def test_defaults():
    s = AcquisitionQCSettings()
    assert s.enabled and s.checks == ("rate", "signal", "margins")
    assert s.sensitivity == "normal" and s.thresholds is THRESHOLDS["normal"]
    assert (s.max_removed_pct, s.warn_removed_pct) == (20.0, 2.0)


def test_from_mapping_reads_every_key_and_orders_checks():
    s = AcquisitionQCSettings.from_mapping(
        {
            "enabled": False,
            "checks": ["margins", "rate"],
            "sensitivity": "high",
            "max_removed_pct": 30,
            "warn_removed_pct": 5.5,
            "exclude_channels": ["FSC-W"],
        },
        "study.toml",
    )
    assert not s.enabled and s.checks == ("rate", "margins")
    assert s.thresholds is THRESHOLDS["high"] and s.max_removed_pct == 30.0
    assert s.exclude_channels == ("FSC-W",)
    assert AcquisitionQCSettings.from_mapping(s.as_dict()) == s


def test_from_mapping_names_every_problem_with_the_file():
    bad = {
        "enabled": "yes",
        "checks": ["rate", "clogs"],
        "sensitivity": "extreme",
        "max_removed_pct": 120,
        "exclude_channels": "FSC-W",
        "threshold": 3,
    }
    with pytest.raises(StudyError) as info:
        AcquisitionQCSettings.from_mapping(bad, "/data/study/study.toml")
    text = str(info.value)
    for part in (
        "/data/study/study.toml: [acquisition_qc] unknown key 'threshold'",
        'enabled = "yes" must be true or false',
        'unknown check(s) "clogs"',
        'sensitivity = "extreme" must be one of "low", "normal", "high"',
        "max_removed_pct = 120 must be a number from 0 to 100",
        'exclude_channels = "FSC-W" must be a list',
    ):
        assert part in text


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"max_removed_pct": True}, "max_removed_pct = true must be a number"),
        ({"warn_removed_pct": False}, "warn_removed_pct = false must be a number"),
        ({"checks": [1]}, "checks = [1] must be a list such as"),
        ({"checks": ["rate", "clog"]}, 'checks = ["rate", "clog"]: unknown check(s) "clog"'),
    ],
)
def test_a_study_table_value_is_quoted_as_toml_writes_it(table, said):
    """The message quotes the value as the user wrote it in study.toml (true, "text",
    [1]), not as Python prints it (True, 'text', (1,))."""
    _, problems = parse_acquisition_qc(table, "study.toml")
    assert len(problems) == 1 and said in problems[0], problems


def test_a_python_argument_is_quoted_as_python_writes_it():
    with pytest.raises(StudyError, match=re.escape("enabled = 'yes' must be True or False")):
        AcquisitionQCSettings(enabled="yes")


def test_parse_collects_problems_and_falls_back_to_defaults():
    settings, problems = parse_acquisition_qc({"warn_removed_pct": 50}, "s.toml")
    assert settings == AcquisitionQCSettings()
    assert problems == [
        "s.toml: [acquisition_qc] warn_removed_pct = 50 is above max_removed_pct = 20 "
        "(the default); the warning level must not exceed the failing level"
    ]
    # values shown as written in the table, numpy numbers taken as numbers
    assert parse_acquisition_qc({"exclude_channels": [""]}, "s.toml")[1] == [
        's.toml: [acquisition_qc] exclude_channels = [""] must be a list of channel names, '
        'e.g. ["FSC-W"]'
    ]
    assert AcquisitionQCSettings(max_removed_pct=np.int64(30)).max_removed_pct == 30.0
    # two values that differ are never shown alike
    (text,) = parse_acquisition_qc({"warn_removed_pct": 20.0000001}, "s.toml")[1]
    assert "warn_removed_pct = 20.0000001 is above max_removed_pct = 20 (the default)" in text
    assert parse_acquisition_qc([1], "s.toml")[1] == [
        "s.toml: [acquisition_qc] must be a table, got [1]"
    ]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"checks": "rate"}, "must be a list"),
        ({"sensitivity": 5}, "sensitivity = 5"),
        ({"max_removed_pct": float("nan")}, "max_removed_pct = nan"),
        ({"max_removed_pct": True}, "max_removed_pct = True"),
        ({"exclude_channels": ("",)}, "exclude_channels"),
    ],
)
def test_construction_refuses_bad_values(kw, match):
    with pytest.raises(StudyError, match=match):
        AcquisitionQCSettings(**kw)


def test_no_check_is_refused_and_a_low_maximum_lowers_the_unset_warning_level():
    """``checks = []`` would pass every file having measured nothing; a maximum below the
    default warning level (2 %) is the user's one setting, so the unset warning level
    follows it, the same through the API, the study table and ``--qc-max-removed``."""
    with pytest.raises(StudyError, match=r"checks = \[\] names no check.*enabled = false"):
        AcquisitionQCSettings(checks=())
    _, problems = parse_acquisition_qc({"checks": []}, "x/study.toml")
    assert problems and problems[0].startswith("x/study.toml: [acquisition_qc] checks = []")
    # QC turned off need not name a check: the table was refused with "set enabled =
    # false", which it already said
    _, problems = parse_acquisition_qc({"enabled": False, "checks": []}, "x/study.toml")
    assert problems == []
    off = AcquisitionQCSettings(enabled=False, checks=())
    assert off.enabled is False
    # turned on from the command line (`cytokit gate --study --acquisition-qc` or a
    # `--qc-*` option), such a table runs every check, not a refusal naming the API class
    from cytokit.engine.gate_files import gate_qc_settings

    for kw in ({"enabled": True}, {"sensitivity": "high"}, {"exclude_channels": ["FSC-A"]}):
        on = gate_qc_settings(off, **kw)
        assert on.enabled and on.checks == AcquisitionQCSettings().checks
    assert AcquisitionQCSettings(max_removed_pct=1).warn_removed_pct == 1.0
    assert AcquisitionQCSettings(max_removed_pct=0).warn_removed_pct == 0.0
    assert AcquisitionQCSettings(max_removed_pct=50).warn_removed_pct == 2.0
    table = AcquisitionQCSettings.from_mapping({"max_removed_pct": 1})
    assert table == AcquisitionQCSettings(max_removed_pct=1, warn_removed_pct=1)
    from cytokit.engine.gate_files import gate_qc_settings

    assert gate_qc_settings(None, max_removed_pct=1) == table
    # and back up: a study's low maximum with no warning level of its own, raised by
    # --qc-max-removed, warns at the default again (it kept warning above 1 %)
    raised = gate_qc_settings(table, max_removed_pct=30)
    assert raised == AcquisitionQCSettings(max_removed_pct=30)
    assert raised.warn_removed_pct == 2.0
    # a warning level the study set stays, lowered to a maximum below it
    own = AcquisitionQCSettings.from_mapping({"max_removed_pct": 10, "warn_removed_pct": 5})
    assert gate_qc_settings(own, max_removed_pct=30).warn_removed_pct == 5.0
    assert gate_qc_settings(own, max_removed_pct=3).warn_removed_pct == 3.0
    # turned on for a study whose table says enabled = false: still unset
    from cytokit.engine.gate_files import _study_qc

    class _Settings:
        acquisition_qc = AcquisitionQCSettings.from_mapping(
            {"enabled": False, "max_removed_pct": 1}
        )

    class _Study:
        settings = _Settings()

    on = _study_qc(_Study(), True)
    assert on.enabled and on.warn_follows_max and on.warn_removed_pct == 1.0
    # both given, and contradicting each other: still refused, naming both
    with pytest.raises(StudyError, match="warn_removed_pct = 5 is above max_removed_pct = 1"):
        AcquisitionQCSettings.from_mapping({"max_removed_pct": 1, "warn_removed_pct": 5})


@pytest.mark.parametrize("value", [-1, -0.5, 150])
def test_a_bad_maximum_is_one_problem_not_one_more_about_the_warning_level_it_sets(value):
    """With ``warn_removed_pct`` not given, the warning level follows the maximum: a bad
    maximum is the caller's one mistake, so the error names it alone, never a
    ``warn_removed_pct`` nobody set, the same as the study table says it."""
    with pytest.raises(StudyError) as info:
        AcquisitionQCSettings(max_removed_pct=value)
    problems = str(info.value).split("; ")
    assert problems == [
        f"AcquisitionQCSettings: max_removed_pct = {value} must be a number from 0 to 100 "
        "(a % of the events)"
    ]
    _, table = parse_acquisition_qc({"max_removed_pct": value}, "s.toml")
    assert len(table) == 1 and "max_removed_pct" in table[0] and "warn" not in table[0]
    # a warning level given is still checked with it: two values, two problems
    with pytest.raises(StudyError) as info:
        AcquisitionQCSettings(max_removed_pct=value, warn_removed_pct=-2)
    assert "warn_removed_pct = -2" in str(info.value) and "max_removed_pct" in str(info.value)


def test_settings_built_in_python_are_not_blamed_on_a_study_file():
    """`AcquisitionQCSettings.from_mapping` called from a script said "study.toml: …" of a
    table no file held; the message names the call instead, and still the key, the value
    and what is allowed."""
    with pytest.raises(StudyError) as info:
        AcquisitionQCSettings.from_mapping({"sensitivity": "x"})
    text = str(info.value)
    assert text.startswith("AcquisitionQCSettings.from_mapping: [acquisition_qc] sensitivity")
    assert "study.toml" not in text and '"x"' in text
