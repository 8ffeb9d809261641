"""A study check says each problem once, where it is fixed, and refuses what cannot be analysed.

Every test edits a copy of ``sample_data/`` (15 files, 3 patients) the way a
lab gets it wrong, and loads it through `load_study` or ``cytokit analyze``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cytokit.cli.app import run
from cytokit.errors import GatingError, StudyError
from cytokit.study import load_study

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
N_FILES = 15
MAX_DAYS = 36_500  # the documented plausible range: 100 years either side of day 0


@pytest.fixture
def study(tmp_path):
    return shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("*.npz"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def _problems(study: Path, **options) -> list[str]:
    with pytest.raises(StudyError) as err:
        load_study(study, **options)
    first, *rest = str(err.value).split("\n  ")
    assert first.endswith(f"{len(rest)} problem(s) in the study:")
    return rest


def test_invalid_toml_is_the_only_problem(study):
    """Nothing that depends on study.toml is checked once it cannot be read."""
    _edit(study / "study.toml", "[panel]", "[panel")
    problems = _problems(study)
    assert len(problems) == 1, problems
    assert "not valid TOML" in problems[0]


def test_invalid_toml_leaves_manifest_problems(study):
    """...but the manifest's own faults are still reported with it."""
    _edit(study / "study.toml", "[qc]", "[qc")
    _edit(study / "manifest.csv", "P01,7,", "P01,three,")
    problems = _problems(study)
    assert len(problems) == 2, problems
    assert "not valid TOML" in problems[0] and "'three' is not a whole number" in problems[1]


def test_panel_typo_is_reported_at_the_panel(study, capsys):
    """CD56 spelt CD65 in [panel]: the entry is named, not [clustering] markers."""
    _edit(study / "study.toml", '"CD56" = "PE-A"', '"CD65" = "PE-A"')
    assert run(["analyze", str(study), "--out", str(study / "out")]) == 1
    err = capsys.readouterr().err
    assert "1 problem(s)" in err
    assert "[panel]: entry CD65 = 'PE-A' is used nowhere" in err
    assert "is CD65 a misspelling of CD56?" in err
    assert "[clustering] markers use" in err


def test_marker_typo_in_settings_suggests_the_panel_entry(study):
    """A setting misspells a marker the strategy reads: the setting is at fault."""
    _edit(study / "study.toml", '"CD16", "CD8"]', '"Cd16", "CD8"]')
    problems = _problems(study)
    assert problems == [
        f"{study / 'study.toml'}: marker 'Cd16' is not in [panel] (did you mean 'CD16'?), "
        "but [clustering] markers use it; [panel] has: HLA-A2, CD56, Viability, CD16, CD3, "
        'CD8, CD45. Add a line Cd16 = "<channel>" to [panel]'
    ]


def test_missing_marker_is_one_problem_for_every_place(study):
    """The donor marker every manifest row names is said once, with its lines."""
    text = (study / "manifest.csv").read_text().replace(",HLA-A2,", ",HLA-B7,")
    (study / "manifest.csv").write_text(text)
    _edit(study / "study.toml", 'marker = "HLA-A2"', 'marker = "HLA-B7"')
    problems = _problems(study)
    assert len(problems) == 1, problems
    assert "marker 'HLA-B7' is not in [panel]" in problems[0]
    assert "[chimerism] marker and the donor_marker of manifest.csv (lines 2-16)" in problems[0]
    assert "did you mean" not in problems[0]  # HLA-A2 is used: not a typo of it


def test_detector_typo_is_said_once_for_all_files(study, capsys):
    _edit(study / "study.toml", '"CD16" = "PE-Cy7-A"', '"CD16" = "PE-Cy7A"')
    problems = _problems(study)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"in all {N_FILES} files: panel entry CD16 = 'PE-Cy7A'")
    assert "(did you mean 'PE-Cy7-A'?)" in problems[0]
    # the YAML strategy's CD16 gate reads the same broken entry: not a second problem
    assert "the strategy reads" not in problems[0]
    assert run(["analyze", str(study), "--out", str(study / "out")]) == 1
    assert capsys.readouterr().err.count("PE-Cy7A") == 1


def test_problem_of_some_files_names_them(study):
    """A file whose detector is named otherwise: the problem says which files."""
    for name in ("P02_day064.fcs", "P02_day043.fcs"):
        path = study / "fcs" / name
        raw = path.read_bytes()  # the same length: TEXT offsets stay right
        assert raw.count(b"PE-Cy7-A") == 2  # $PnN and $SPILLOVER
        path.write_bytes(raw.replace(b"PE-Cy7-A", b"PE-Cy7-H"))
    problems = _problems(study)
    text = "\n".join(problems)
    assert f"in 2 of {N_FILES} files (" in text
    assert "P02_day064.fcs" in text and "P02_day043.fcs" in text
    assert "P01_day007.fcs" not in text


def test_gate_path_typo_suggests_the_path(study):
    _edit(study / "study.toml", 'NK = "/Lymphocytes/Singlets/', 'NK = "/Lymphocytes/Singlet/')
    problems = _problems(study)
    assert len(problems) == 1, problems
    assert (
        "no such gate path in " in problems[0]
        and "(did you mean '/Lymphocytes/Singlets/Live/CD3-CD56+'?)" in problems[0]
    )


@pytest.mark.parametrize(
    ("word", "options", "expected"),
    [
        ("CD56", ["CD65", "CD16", "CD3"], ["CD65"]),  # neighbours swapped
        ("CD56", ["CD16", "CD3", "CD8"], []),  # another marker, not a typo
        ("PE-Cy7A", ["PE-Cy7-A", "PE-A", "APC-Cy7-A"], ["PE-Cy7-A"]),
        ("hla-a2", ["HLA-A2", "HLA-A3"], ["HLA-A2"]),  # case only: nothing else
        ("X", ["A", "B"], []),
    ],
)
def test_near_misses_are_few_and_near(word, options, expected):
    from cytokit.errors import near_misses

    assert near_misses(word, options) == expected


def test_did_you_mean_is_bounded():
    from cytokit.errors import did_you_mean

    options = [f"CD{i}" for i in range(100, 200)]
    text = did_you_mean("CD1000", options)
    assert 1 <= text.count("'CD") <= 3


def test_header_only_manifest_is_an_error(study, capsys):
    header = (study / "manifest.csv").read_text().splitlines()[0]
    (study / "manifest.csv").write_text(header + "\n")
    problems = _problems(study)
    assert len(problems) == 1 and "no files listed, only the header" in problems[0]
    assert run(["analyze", str(study), "--out", str(study / "out")]) == 1
    err = capsys.readouterr().err
    assert "nothing to analyse" in err and "0 of 0" not in err


@pytest.mark.parametrize("day", ["20240108", str(MAX_DAYS + 1), str(-MAX_DAYS - 1)])
def test_implausible_day_is_refused(study, day):
    _edit(study / "manifest.csv", "P01,7,", f"P01,{day},")
    problems = _problems(study)
    assert len(problems) == 1, problems
    assert f"day '{day}' is beyond ±36,500 days" in problems[0]
    assert "manifest.csv, line 3" in problems[0]


def test_a_day_in_exponent_notation_is_no_whole_number_of_days(study):
    _edit(study / "manifest.csv", "P01,7,", "P01,1e15,")
    (problem,) = _problems(study)
    assert "day '1e15' is not a whole number of days" in problem


def test_plausible_days_load(study):
    from cytokit.study.manifest import MAX_DAYS as documented

    assert documented == MAX_DAYS
    _edit(study / "manifest.csv", "P01,7,", f"P01,{MAX_DAYS},")
    _edit(study / "manifest.csv", "P01,-7,", f"P01,{-MAX_DAYS},")
    days = {r.day for r in load_study(study, check_files=False).rows}
    assert {MAX_DAYS, -MAX_DAYS} <= days


def test_implausible_infusion_day_is_refused(study):
    with (study / "infusions.csv").open("a") as fh:
        fh.write("P01,1e15,NK,18000000\n")
    problems = _problems(study, check_files=False)
    assert len(problems) == 1 and "infusions.csv" in problems[0] and "'1e15'" in problems[0]


def test_same_file_spelt_twice_in_the_manifest(study):
    lines = (study / "manifest.csv").read_text().splitlines()
    again = lines[1].replace("fcs/P01_day-07.fcs", "./fcs/../fcs/P01_day-07.fcs", 1)
    lines.append(again.replace(",-7,", ",-6,", 1))
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    problems = _problems(study, check_files=False)
    assert len(problems) == 1 and "is listed again (first on line 2 as " in problems[0]


def test_the_end_of_a_path_is_answered_with_the_whole_path():
    """'Singlets/Live' (the end of a path) got no hint while a near miss of the whole path
    did; the paths it ends are offered."""
    from cytokit.gating import load_strategy

    strategy = load_strategy(Path(__file__).resolve().parents[1] / "sample_data" / "strategy.yaml")
    assert strategy.did_you_mean("Singlets/Live") == (
        " (did you mean '/Lymphocytes/Singlets/Live'?)"
    )
    with pytest.raises(GatingError, match=r"did you mean '/Lymphocytes/Singlets/Live/CD3-CD56\+'"):
        strategy.population("Live/CD3-CD56+")


def test_a_bad_transform_is_one_problem_at_study_toml(study):
    """The YAML strategy reads [transform] too: its mistake is said once, at study.toml."""
    _edit(study / "study.toml", 'type = "logicle"', 'type = "logicel"')
    assert _problems(study) == [
        f"{study / 'study.toml'} [transform]: unknown transform type 'logicel'; use one of "
        "none, linear, log, asinh, logicle, hyperlog, biex"
    ]


def test_a_strategy_problem_names_the_file_once(study):
    _edit(study / "strategy.yaml", "    distance: 5", "    distanse: 5")
    (problem,) = _problems(study)
    assert problem.startswith(f"{study / 'strategy.yaml'}, line 19: cluster gate: unknown key ")


def test_a_quoted_number_or_name_is_refused(study):
    """``W = "0.5"`` is refused as ``[qc] min_events = "50"`` is; a study's name is text."""
    toml = study / "study.toml"
    _edit(toml, "W = 0.5", 'W = "0.5"')
    _edit(toml, 'name = "cytokit sample study (simulated)"', "name = 5")
    assert _problems(study) == [
        f"{toml}: [study] name = 5 must be text naming the study, e.g. "
        'name = "NK trial 2024" (default: the folder name)',
        f"{toml} [transform]: logicle transform parameters must be numbers, got W = '0.5'; "
        "write them unquoted, e.g. W = 0.5",
    ]


def test_a_transform_table_of_a_marker_not_in_the_panel_is_a_problem(study):
    """``[transform.CD99]`` (a typo of CD8?) would be used for no marker, without a word."""
    toml = study / "study.toml"
    _edit(toml, "[gating]", '[transform.CD5]\ntype = "logicle"\nW = 1.0\n\n[gating]')
    assert _problems(study) == [
        f"{toml}: [transform.CD5] is for marker 'CD5', which is not in [panel] (did you mean "
        "'CD56' or 'CD45'?), so no marker would use it; rename the table to a marker of "
        "[panel] (HLA-A2, CD56, Viability, CD16, CD3, CD8, CD45)"
    ]


def test_a_threshold_of_a_marker_not_described_is_a_problem(study):
    """CD16 is read by a gate, so not a default phenotype marker: its threshold would be
    dropped without a word."""
    toml = study / "study.toml"
    _edit(
        toml, "[clustering]", "[phenotype]\nthresholds = { CD16 = 1000, CD8 = 500 }\n\n[clustering]"
    )
    assert _problems(study) == [
        f"{toml}: [phenotype] thresholds has CD16 = 1000, but CD16 is not a described "
        "phenotype marker (they are: CD8, CD45), so the threshold would be unused; add CD16 "
        "to [phenotype] markers, or remove its threshold"
    ]
    _edit(toml, "thresholds =", 'markers = ["CD8", "CD16"]\nthresholds =')
    assert load_study(study).settings.phenotype_thresholds == {"CD16": 1000.0, "CD8": 500.0}
    _edit(toml, '"CD8", "CD16"', '"CD8", "CD45"')
    _edit(toml, "CD16 = 1000", "CD4 = 1000")  # not in [panel]: said once, as such
    (problem,) = _problems(study)
    assert "marker 'CD4' is not in [panel]" in problem


def test_normalise_and_report_tables_are_checked_with_the_study(study):
    """``[normalise]`` and ``[report] cohort_populations`` were refused only later (before
    the gating, or by the report after it): now with every other problem."""
    toml = study / "study.toml"
    text = toml.read_text()
    toml.write_text(
        text + '\n[normalise]\nrefrence = "P01"\n\n[report]\n'
        'cohort_populations = { NK = ["NK", "NKT"], CIK = "CIK" }\n'
    )
    where = f"{toml} [report] cohort_populations"
    assert _problems(study) == [
        f'{toml} [normalise]: give only reference = "<patient id of the reference sample>", '
        "got {'refrence': 'P01'} (did you mean 'reference'?)",
        f"{where}: NK names 'NKT', not a population of the study (NK, NK_bright, NK_dim, "
        "CIK, T); fix the name in study.toml",
        f"{where}: CIK = 'CIK' must be a list of population names; e.g. cohort_populations "
        '= { NK = ["NK", "NK_dim"], CIK = ["CIK"] }',
    ]
    for ref, shown in (('"NOPE"', "'NOPE'"), ('""', "''"), ("5", "5")):
        toml.write_text(text + f"\n[normalise]\nreference = {ref}\n")
        assert _problems(study) == [
            f"{toml} [normalise]: reference = {shown} is not a patient of manifest.csv; name "
            "the patient id the reference sample's files are listed under"
        ]
    toml.write_text(text + '\n[normalise]\nreference = "P01"\n')
    assert load_study(study)
