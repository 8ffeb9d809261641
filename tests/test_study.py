"""Study loading: every problem of a study folder in one StudyError, before any gating."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from study_helpers import make_study

import cytokit
from cytokit.errors import StudyError
from cytokit.simulate import preset_design
from cytokit.study import check_same_content, load_study


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    design = preset_design("sample", seed=9, n_patients=2, n_events=2000, days=(-7, 7, 14))
    return make_study(tmp_path_factory.mktemp("study") / "s", design)


@pytest.fixture
def study(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "s")


def _refusal(study) -> str:
    """The StudyError load_study raises on `study`, as text."""
    with pytest.raises(StudyError) as err:
        load_study(study)
    return str(err.value)


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def test_good_study_loads(study):
    s = load_study(study)
    assert s.patients == ["P01", "P02"]
    assert s.gating is not None and s.settings.populations["NK"].endswith("CD3-CD56+")
    assert s.settings.beads == "/Beads" and s.settings.min_events == 50
    assert s.donor_markers() == ["HLA-A2"]
    assert s.unreadable == {}
    assert s.compensation() == "file"


def test_every_problem_in_one_error(study):
    """A file listed twice, an unknown marker and malformed rows: one error, all named."""
    lines = (study / "manifest.csv").read_text().splitlines()
    lines.append(lines[1])
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    _edit(study / "study.toml", 'marker = "HLA-A2"', 'marker = "HLA-B7"')
    lines = (study / "manifest.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",14,", ",fourteen,", 1)
    lines.append("fcs/P02_day014.fcs,P02")
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(StudyError) as err:
        load_study(study)
    text = str(err.value)
    assert "P01_day-07.fcs' is listed again (first on line 2)" in text
    assert "'HLA-B7' is not in [panel]" in text
    assert "'fourteen' is not a whole number of days" in text
    assert "2 fields but the header has 12" in text
    assert text.count("\n  ") >= 4
    # analyze checks first: nothing is gated and no store is made
    out = study / "out"
    with pytest.raises(StudyError, match="HLA-B7"):
        cytokit.analyze(study, out)
    assert not (out / "results.sqlite").exists()


def test_a_missing_file_fails_alone(study, tmp_path):
    """A file the manifest lists but that is not there is not a study problem: the
    other files are gated and it is a failures.csv row naming its manifest line; once
    copied in, a rerun gates it and nothing else."""
    gone = study / "fcs" / "P01_day007.fcs"
    kept = tmp_path / "kept.fcs"
    shutil.move(gone, kept)
    s = load_study(study)
    assert gone in s.unreadable and len(s.rows) == 6
    line = next(r.line for r in s.rows if r.file == gone)
    out = tmp_path / "out"
    first = cytokit.analyze(study, out, workers=1)
    fail = first.failures
    assert list(fail["file"]) == ["fcs/P01_day007.fcs"] and list(fail["error"]) == [
        "FileNotFoundError"
    ]
    assert fail["reason"][0].startswith(
        f"not found: manifest.csv line {line} lists 'fcs/P01_day007.fcs'; correct the name"
    )
    assert len(first.samples) == 5 and "fcs/P01_day007.fcs" not in set(first.counts["file"])
    shutil.move(kept, gone)
    again = cytokit.analyze(study, out, workers=1)
    assert again.failures.empty and len(again.samples) == 6
    counts = again.counts[again.counts["file"] != "fcs/P01_day007.fcs"].reset_index(drop=True)
    assert counts.equals(first.counts.reset_index(drop=True))
    # a Windows path in the manifest names no file here: the reason says how to write it
    manifest = study / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("fcs/P01_day007.fcs", "fcs\\P01_day007.fcs"))
    fail = cytokit.analyze(study, tmp_path / "win", workers=1).failures
    assert "correct the name there (with / between folders, not \\)" in fail["reason"][0]


def test_manifests_a_spreadsheet_writes_are_read_or_refused_with_the_fix(study):
    """A misspelt column of cytokit's was kept as metadata and its values dropped for a
    default (beads_per_tube: counted on lymphocytes, donor cells/µL 212 -> 123); a
    semicolon-separated file, a header in other case and UTF-16 text each say the fix."""
    manifest = study / "manifest.csv"
    text = manifest.read_text()
    manifest.write_text(text.replace("beads_per_test", "beads_per_tube", 1))
    assert _refusal(study).splitlines()[1].strip() == (
        f"{manifest}: column 'beads_per_tube' is not one cytokit reads (did you mean "
        "'beads_per_test'?); rename it 'beads_per_test' (a column of the lab's own is kept as metadata where "
        "its name and values are no near miss of one cytokit reads)"
    )
    manifest.write_text(text.replace(",", ";"))
    assert "the header is one column separated by ';'; cytokit reads comma-separated CSV" in (
        _refusal(study)
    )
    manifest.write_text(text.replace("file,patient", "File,Patient", 1))
    assert "column 'Patient' is not one cytokit reads (did you mean 'patient'?); rename it " in (
        _refusal(study)
    )
    manifest.write_text(text.replace("file,patient", "path,patient", 1))
    assert "missing column(s) file; the header must include file, patient, day" in (_refusal(study))
    # decimal commas in a semicolon file: the one problem, not one per line
    manifest.write_text(text.replace(",", ";").replace(";50000;", ";50000,5;"))
    assert _refusal(study).count("\n  ") == 1
    manifest.write_bytes(text.encode("utf-16-le"))  # no BOM: NUL bytes between the letters
    assert "is UTF-16 text (NUL bytes between the characters)" in _refusal(study)
    manifest.write_bytes(text.encode("utf-16"))
    assert "is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8; save it as " in (
        _refusal(study)
    )
    manifest.write_text(text.replace("product", "my_notes", 1))  # a column of the lab's own
    assert load_study(study).rows[0].metadata["my_notes"] == "NK"
    # the lab's own columns whose names are close to cytokit's, with their own values
    lines = text.splitlines()
    extra = {"patient_id": "P-17", "sample_date": "2026-01-05", "donor_id": "D2",
             "donor_sex": "F", "donor_marker_note": "bright", "sample_time": "10:30"}  # fmt: skip
    lines[0] += "," + ",".join(extra)
    lines[1:] = [line + "," + ",".join(extra.values()) for line in lines[1:]]
    manifest.write_text("\n".join(lines) + "\n")
    assert load_study(study).rows[0].metadata["donor_id"] == "D2"
    manifest.write_text(text.replace(",7,", ",1e1,", 1))  # read as day 10 before
    assert "day '1e1' is not a whole number of days" in _refusal(study)


def test_a_manifest_column_named_otherwise_than_documented_is_refused(study):
    """'Sample Type' (a spreadsheet's title) was kept as metadata: every sample type
    empty, product samples and the peripheral-blood series read as unnamed."""
    manifest = study / "manifest.csv"
    manifest.write_text(
        manifest.read_text().replace("sample_type", "Sample Type", 1).replace("product", "Product")
    )
    fix = "(header names are read as written: lower case, '_' between words)"
    assert [line.strip() for line in _refusal(study).splitlines()[1:]] == [
        f"{manifest}: column 'Sample Type' is not one cytokit reads (did you mean "
        f"'sample_type'?); rename it 'sample_type' {fix}",
        f"{manifest}: column 'Product' is not one cytokit reads (did you mean 'product'?); "
        f"rename it 'product' {fix}",
    ]


def test_a_manifest_with_two_day_columns_is_refused(study):
    """A `day ` column beside `day` replaced it: every day shifted, and exit 0."""
    manifest = study / "manifest.csv"
    lines = manifest.read_text().splitlines()
    at = lines[0].split(",").index("day")
    lines = [lines[0] + ",day "] + [
        f"{line},{int(line.split(',')[at]) + 1}" for line in lines[1:] if line
    ]
    manifest.write_text("\n".join(lines) + "\n")
    assert [line.strip() for line in _refusal(study).splitlines()[1:]] == [
        f"{manifest}: column {at + 1} 'day' and column {len(lines[0].split(','))} 'day ' have "
        "one name; rename or remove one (cytokit would read only the last)"
    ]


def test_a_study_toml_an_editor_saved_with_a_bom_or_old_mac_line_ends_is_read(study):
    """A UTF-8 BOM (Notepad, "UTF-8 with BOM") failed as "Invalid statement (at line 1,
    column 1)" and CR-only line ends as "invalid character '\\r'"; TOML allows neither,
    so reading them as the editor meant changes no valid file."""
    toml = study / "study.toml"
    text = toml.read_text()
    want = load_study(study).settings
    for edited in (
        "\ufeff" + text,
        "\ufeff" + text.replace("\n", "\r\n"),
        text.replace("\n", "\r"),
        text.replace("\n", "\r", 3),
    ):
        toml.write_bytes(edited.encode("utf-8"))
        assert load_study(study).settings == want


def test_near_misses_of_keys_in_open_tables_are_problems(study):
    """[study] and [report] keep the lab's own keys, so a misspelt one of cytokit's was
    dropped for the default without a word (data_root: the data roots refused on every
    manifest line); so was a misspelt [compensation] source, looked for as a CSV file."""
    toml = study / "study.toml"
    text = toml.read_text()
    toml.write_text(
        text.replace("[study]\n", '[study]\ndata_root = ["../x"]\nsponsor = "lab"\n', 1).replace(
            'source = "file"', 'source = "Flie"', 1
        )
        + '\n[report]\ncohort_population = { NK = ["NK"] }\n'
    )
    lines = [line.strip() for line in _refusal(study).splitlines()[1:]]
    assert lines == [
        f"{toml}: unknown key 'data_root' in [study] (did you mean 'data_roots'?); cytokit "
        "would not read it, and would use the default instead",
        f"{toml}: unknown key 'cohort_population' in [report] (did you mean "
        "'cohort_populations'?); cytokit would not read it, and would use the default instead",
        f"{toml}: [compensation] source = 'Flie' (did you mean 'file'?): use \"file\", "
        '"none" or the path of a CSV file',
    ]
    toml.write_text(text.replace('source = "file"', 'source = "File"', 1))
    assert load_study(study).settings.compensation == "file"


def test_settings_and_strategy_problems(study):
    _edit(study / "study.toml", "min_events = 50", "min_events = 0\nmin_event = 5")
    _edit(study / "study.toml", 'beads = "/Beads"', 'beads = "/Beadz"')
    _edit(study / "study.toml", "[clustering]", '[phenotype]\nmarkers = ["CD99"]\n\n[clustering]')
    _edit(study / "study.toml", 'type = "logicle"', 'type = "logicl"')
    with pytest.raises(StudyError) as err:
        load_study(study)
    text = str(err.value)
    assert "[qc] min_events = 0 must be a whole number >= 1" in text
    assert "unknown key 'min_event' in [qc]" in text
    assert "[counting] beads = '/Beadz': no such gate path" in text
    assert "marker 'CD99' is not in [panel], but [phenotype] markers use it" in text
    assert "unknown transform type 'logicl'" in text


def test_a_misspelt_table_is_a_problem_and_another_tools_table_is_not(study):
    """``[qcc]`` would be dropped without a word and [qc]'s defaults used; ``[normalize]``
    is cytokit's ``[normalise]``; a table of another tool is left alone."""
    _edit(study / "study.toml", "[qc]", "[qcc]")
    text = (study / "study.toml").read_text()
    (study / "study.toml").write_text(
        text + '\n[normalize]\nreference = "P01"\n\n[mytool]\nx = 1\n'
    )
    text = _refusal(study)
    assert "unknown table [qcc] (did you mean 'qc'?); cytokit would not read it" in text
    assert "unknown table [normalize] (did you mean 'normalise'?)" in text
    assert "mytool" not in text


def test_missing_and_broken_strategy(study):
    (study / "strategy.xml").unlink()
    with pytest.raises(StudyError, match="strategy file not found"):
        load_study(study)
    (study / "strategy.xml").write_text("<not-gating-ml/>")
    with pytest.raises(StudyError, match=r"strategy\.xml"):
        load_study(study)
    # without check_files the strategy is not read (as the simulator's own check does)
    assert load_study(study, check_files=False).gating is None


def test_manifest_consistency(study):
    lines = (study / "manifest.csv").read_text().splitlines()
    lines.append(lines[1].replace("P01_day-07", "P01_day007", 1))  # the same file twice
    shutil.copy(study / "fcs" / "P01_day007.fcs", study / "fcs" / "P01_again.fcs")
    lines.append(lines[2].replace("P01_day007", "P01_again", 1))  # same patient, day, type
    lines[2] = lines[2].replace(",positive,", ",negative,")  # P01's donor side changes
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    (study / "infusions.csv").write_text(
        (study / "infusions.csv").read_text() + "P99,0,NK,1000000\n"
    )
    with pytest.raises(StudyError) as err:
        load_study(study)
    text = str(err.value)
    assert "is listed again" in text
    assert "day 7 sample_type 'PB' already has a file on line 3" in text
    assert "a patient has one donor" in text
    assert "patient 'P99' (day 0) is not in manifest.csv" in text


def test_no_beads_or_no_volume_is_refused_not_zero_cells(study):
    """beads_per_test or sample_volume_ul of 0 would make every count of the file 0
    cells/µL (quantified) or silently count on another basis; a cell count of 0 is fine."""
    header, *rows = (study / "manifest.csv").read_text().splitlines()
    names = header.split(",")
    beads, volume, lympho = (names.index(c) for c in
                             ("beads_per_test", "sample_volume_ul", "lymphocytes_per_ul"))  # fmt: skip
    cells = [r.split(",") for r in rows]
    cells[0][beads], cells[1][volume], cells[2][lympho] = "0", "0", "0"
    (study / "manifest.csv").write_text("\n".join([header, *(",".join(c) for c in cells)]) + "\n")
    text = _refusal(study)
    assert "line 2: beads_per_test is 0; a bead count needs a positive beads_per_test" in text
    assert "line 3: sample_volume_ul is 0" in text
    assert "lymphocytes_per_ul" not in text


def test_one_file_under_another_spelling_or_as_a_copy(study):
    lines = (study / "manifest.csv").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("fcs/P01_day007.fcs,"))
    (study / "fcs" / "link.fcs").symlink_to("P01_day014.fcs")
    again = [
        lines[first].replace("fcs/P01_day007.fcs", "fcs/../fcs/P01_day007.fcs", 1),
        lines[first + 1].replace("fcs/P01_day014.fcs", "fcs/link.fcs", 1),
    ]
    again = [a.replace(",P01,7,", ",P01,10,").replace(",P01,14,", ",P01,21,") for a in again]
    (study / "manifest.csv").write_text("\n".join([*lines, *again]) + "\n")
    with pytest.raises(StudyError, match="2 problem") as err:
        load_study(study)
    n = len(lines)
    assert (
        f"line {n + 1}: file 'fcs/../fcs/P01_day007.fcs' is listed again (first on line "
        f"{first + 1} as 'fcs/P01_day007.fcs': the same file)" in str(err.value)
    )
    assert f"line {n + 2}: file 'fcs/link.fcs' is listed again (first on line {first + 2}" in str(
        err.value
    )
    # a copy is another file with the same bytes: found by content hash
    shutil.copy(study / "fcs" / "P01_day007.fcs", study / "fcs" / "P01_day010.fcs")
    copy = again[0].replace("fcs/../fcs/P01_day007.fcs", "fcs/P01_day010.fcs")
    (study / "manifest.csv").write_text("\n".join([*lines, copy]) + "\n")
    s = load_study(study)
    hashes = {r.file: hashlib.sha256(r.file.read_bytes()).hexdigest() for r in s.rows}
    with pytest.raises(StudyError, match="1 problem") as err:
        check_same_content(s, hashes)
    assert (
        f"line {n + 1}: file 'fcs/P01_day010.fcs' (patient P01, day 10) holds the same bytes as "
        f"line {first + 1}'s 'fcs/P01_day007.fcs' (patient P01, day 7;" in str(err.value)
    )
    del hashes[s.rows[-1].file]  # a file that could not be hashed is not compared
    check_same_content(s, hashes)


def test_corrupt_file_is_not_a_study_problem(study):
    bad = study / "fcs" / "P02_day007.fcs"
    bad.write_bytes(b"FCS3.1    garbage" + bytes(100))
    s = load_study(study)
    assert list(s.unreadable) == [bad]


def test_strategy_channels_checked_against_files(study):
    from study_helpers import simulated_strategy

    from cytokit import gating as G

    strategy = simulated_strategy()
    extra = G.RectangleGate(id="X", dims=(G.Dimension("BV421-A"),), min=(0,), max=(None,))
    with pytest.raises(StudyError, match="the strategy reads channels the file lacks"):
        load_study(study, strategy=G.GatingStrategy([*strategy.gates, extra]))


def test_compensation_matrix_from_csv(study):
    spill = "FITC-A,PE-A\n1,0.1\n0.02,1\n"
    (study / "comp.csv").write_text(spill)
    _edit(study / "study.toml", 'source = "file"', 'source = "comp.csv"')
    s = load_study(study)
    comp = s.compensation()
    assert comp.channels == ("FITC-A", "PE-A") and comp.matrix[0, 1] == 0.1
    (study / "comp.csv").write_text("FITC-A,PE-A\n1,x\n")
    with pytest.raises(StudyError, match=r"comp\.csv"):
        load_study(study)


def test_two_markers_on_one_channel_are_a_problem(study):
    """CD8 mapped to CD3's detector would read CD3's values without a word."""
    toml = study / "study.toml"
    text = toml.read_text()
    _edit(toml, '"CD8" = "APC-H7-A"', '"CD8" = "APC-A"')
    assert (
        f"{toml} [panel]: CD3 = 'APC-A' and CD8 = 'APC-A' name the same channel, so CD8 "
        "would read CD3's values; give each marker its own channel"
    ) in _refusal(study)
    # the same channel by its $PnS label: said for the files it resolves in
    toml.write_text(text.replace('"CD8" = "APC-H7-A"', '"CD8" = "CD3"'))
    assert (
        "in all 6 files: panel entries CD3 = 'APC-A' and CD8 = 'CD3' "
        f"({toml}) resolve to the same channel APC-A (CD3), so CD8 would read CD3's values"
    ) in _refusal(study)


def test_typing_stains_may_share_the_donor_markers_detector(study):
    """HLA-A2 and HLA-A3 on FITC-A: a lab types each patient with one stain, and a file
    reads one donor marker, so that is no problem; HLA-A3 is not described by default
    (its "phenotype" would be HLA-A2's signal), and it is a problem where a setting reads
    it by name."""
    toml = study / "study.toml"
    _edit(toml, '"HLA-A2" = "FITC-A"', '"HLA-A2" = "FITC-A"\n"HLA-A3" = "FITC-A"')
    s = load_study(study)
    assert "HLA-A3" not in s.phenotype_markers() and "CD8" in s.phenotype_markers()
    text = toml.read_text()
    with toml.open("a") as fh:
        fh.write('\n[phenotype]\nmarkers = ["CD8", "HLA-A3"]\n')
    assert (
        f"{toml} [panel]: HLA-A2 = 'FITC-A' and HLA-A3 = 'FITC-A' name the same channel, so "
        "HLA-A3 would read HLA-A2's values"
    ) in _refusal(study)
    # a gate reading a marker on the donor marker's detector: its events would be cut on
    # HLA-A2's values
    toml.write_text(
        text.replace('"HLA-A3" = "FITC-A"', '"CD57" = "FITC-A"').replace(
            '"strategy.xml"', '"strategy.yaml"'
        )
    )
    strategy = study / "strategy.yaml"
    gates = strategy.read_text()
    assert "\ngates:\n" in gates
    strategy.write_text(gates.rstrip() + "\n  - name: CD57+\n    rectangle: {CD57: [0.5, null]}\n")
    assert "CD57 would read HLA-A2's values" in _refusal(study)


def test_a_panel_entry_on_another_markers_label_is_a_warning_of_the_file(study):
    """CD3 and CD56 swapped in [panel]: each file's samples.csv warnings say so (labs
    relabel, so it is no study problem); labels are compared leniently."""
    from cytokit.analysis.run import make_tasks
    from cytokit.study.panel import Panel

    toml = study / "study.toml"
    _edit(toml, '"CD56" = "PE-A"', '"CD56" = "APC-X"')
    _edit(toml, '"CD3" = "APC-A"', '"CD3" = "PE-A"')
    _edit(toml, '"CD56" = "APC-X"', '"CD56" = "APC-A"')
    s = load_study(study)
    row = s.rows[0]
    said = make_tasks(s)["default"](row.file)["warnings"]
    assert (
        "[panel] CD3 = 'PE-A' reads channel PE-A, whose $PnS label in this file is 'CD56' "
        "(CD56 in [panel]); if the channel is not CD3's, fix [panel] in study.toml "
        "(a relabelled file needs no change)"
    ) in said
    assert not any(str(row.file) in w for w in said)  # samples.csv names the file
    # `cytokit gate --study` says the same of the file (it said nothing)
    from cytokit.engine.gate_files import GateTask

    gated = GateTask.for_study(s)(row.file)["warnings"]
    assert [w for w in gated if w.startswith("[panel]")] == [
        w for w in said if w.startswith("[panel]")
    ]

    channels = [cytokit.Channel(0, "APC-A", "cd3  apc"), cytokit.Channel(1, "PE-A", "CD38 PE")]
    panel = Panel({"CD3": "APC-A", "CD38": "PE-A", "CD56": "FITC-A"})
    assert panel.label_conflicts(channels) == []
    panel = Panel({"CD3": "PE-A", "CD38": "APC-A"})
    assert panel.label_conflicts(channels) == [
        ("CD3", "PE-A", "CD38 PE", "CD38"),
        ("CD38", "APC-A", "cd3  apc", "CD3"),
    ]
    # a label naming no marker of the panel (a fluorochrome) is no conflict
    assert Panel({"CD4": "APC-A"}).label_conflicts(channels) == []
    # a cocktail names each of its parts ("CD16/56": CD16 and CD56), and the height channel
    # of a detector carries the area channel's label (BD DiVa): neither is a conflict
    channels = [
        cytokit.Channel(0, "PE-A", "CD16/56"),
        cytokit.Channel(1, "V500-C-A", "CD45 V500"),
        cytokit.Channel(2, "V500-C-H", "CD45 V500"),
    ]
    panel = Panel({"CD16": "FITC-A", "CD56": "PE-A", "CD45": "V500-C-A", "CD45-H": "V500-C-H"})
    assert panel.label_conflicts(channels) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_threshold_that_is_not_finite_is_a_problem(study, value):
    """``CD8 = nan`` would leave every CD8 phenotype row without pct_positive."""
    toml = study / "study.toml"
    _edit(toml, "[clustering]", f"[phenotype]\nthresholds = {{ CD8 = {value} }}\n\n[clustering]")
    assert (
        f"{toml}: [phenotype] thresholds = {{'CD8': {float(value)!r}}} must be a table of "
        "marker = finite number (compensated scale value), e.g. { CD16 = 1000 }"
    ) in _refusal(study)
