"""The study's CSV tables as spreadsheets and editors save them: read, or refused with the fix.

manifest.csv, treatments.csv (infusions.csv) and outcomes.csv all go through
`cytokit.study.tables`; a table that would be read otherwise than it says is a
problem naming the file, the line or header, the value and the fix.
"""

from __future__ import annotations

import pytest

from cytokit import StudyError
from cytokit.clinical import read_outcomes, read_treatments

TREATMENTS = (
    "patient,day,product,kind,dose,unit,given\n"
    "P01,0,NK,cells,1.5e7,cells/kg,yes\n"
    "P01,14,NK,cells,1.5e7,cells/kg,no\n"
)
OUTCOMES = (
    "patient,response,response_day,progression_day,last_followup_day,death_day\n"
    "P01,PR,28,120,300,\n"
    "P02,CR,28,,365,\n"
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refusal(read, path) -> list[str]:
    with pytest.raises(StudyError) as err:
        read(path)
    return [line.strip() for line in str(err.value).splitlines()[1:]]


@pytest.mark.parametrize(
    ("name", "text", "old", "new"),
    [
        # a skipped infusion counted as given: its dose doubled
        ("treatments.csv", TREATMENTS, "given", "Given"),
        ("treatments.csv", TREATMENTS, "given", " GIVEN "),
        # every dose empty
        ("treatments.csv", TREATMENTS, "dose", "Dose"),
        ("infusions.csv", "patient,day,product,dose_per_kg\nP01,0,NK,1e7\n", "dose_per_kg",
         "Dose_per_kg"),
        ("infusions.csv", "patient,day,product,dose_per_kg\nP01,0,NK,1e7\n", "dose_per_kg",
         "dose per kg"),
        # progression dropped: the median PFS longer
        ("outcomes.csv", OUTCOMES, "progression_day", "Progression_Day"),
        ("outcomes.csv", OUTCOMES, "progression_day", "progression-day"),
        ("outcomes.csv", OUTCOMES, "progression_day", "progresion_day"),
        # every response dropped
        ("outcomes.csv", OUTCOMES, "response,", "Response,"),
    ],
)  # fmt: skip
def test_a_misnamed_column_is_refused_not_dropped(tmp_path, name, text, old, new):
    """Header names were matched exactly and any other kept as metadata, so a column of
    cytokit's in other case, with spaces or hyphens, or misspelt was dropped without a
    word: a skipped infusion given, doses empty, progression or responses gone."""
    path = _write(tmp_path, name, text.replace(old, new, 1))
    read = read_outcomes if name == "outcomes.csv" else read_treatments
    column, new = old.rstrip(","), new.strip(" ,")
    why = (
        "a column of the lab's own is kept as metadata where its name and values are no near "
        "miss of one cytokit reads"
        if new == "progresion_day"
        else "header names are read as written: lower case, '_' between words"
    )
    assert _refusal(read, path) == [
        f"{path}: column {new!r} is not one cytokit reads (did you mean {column!r}?); "
        f"rename it {column!r} ({why})"
    ]


def test_every_problem_of_a_table_is_reported_with_its_misnamed_columns(tmp_path):
    path = _write(
        tmp_path,
        "treatments.csv",
        TREATMENTS.replace("given\n", "Given,End Day\n")
        .replace("yes\n", "yes,\n")
        .replace("no\n", "no,\n")
        .replace(",0,NK", ",x,NK"),
    )
    lines = _refusal(read_treatments, path)
    assert len(lines) == 3
    assert "column 'Given' is not one cytokit reads (did you mean 'given'?)" in lines[0]
    assert "column 'End Day' is not one cytokit reads (did you mean 'end_day'?)" in lines[1]
    assert lines[2] == f"{path}, line 2: day 'x' is not a whole number"


def test_a_misnamed_required_column_is_said_once(tmp_path):
    path = _write(tmp_path, "treatments.csv", TREATMENTS.replace("patient", "Patient"))
    assert _refusal(read_treatments, path) == [
        f"{path}: column 'Patient' is not one cytokit reads (did you mean 'patient'?); rename "
        "it 'patient' (header names are read as written: lower case, '_' between words)"
    ]


def test_the_labs_own_columns_are_kept(tmp_path):
    """Extra columns, even with names near cytokit's, are kept when their values are not
    those of the column they resemble, or when that column is there too."""
    path = _write(
        tmp_path,
        "treatments.csv",
        TREATMENTS.replace("given\n", "given,notes,comment,bag_id,days_note\n")
        .replace("yes\n", "yes,first,ok,B1,x\n")
        .replace("no\n", "no,,,B2,\n"),
    )
    rows = read_treatments(path)
    assert rows[0].metadata == {"notes": "first", "comment": "ok", "bag_id": "B1", "days_note": "x"}
    assert not rows[1].given
    path = _write(
        tmp_path,
        "outcomes.csv",
        OUTCOMES.replace("death_day\n", "death_day,death_date,patient_id,cgvhd_onset_day\n")
        .replace("300,\n", "300,,,P-1,90\n")
        .replace("365,\n", "365,,,P-2,\n")
        .replace("patient,", "patient,agvhd_max_grade,agvhd_onset_day,", 1)
        .replace("P01,", "P01,0,,", 1)
        .replace("P02,", "P02,0,,", 1),
    )
    rows = read_outcomes(path)
    assert rows[0].metadata == {"death_date": "", "patient_id": "P-1", "cgvhd_onset_day": "90"}
    assert rows[0].progression_day == 120 and rows[1].response == "CR"


def test_two_columns_of_one_name_are_refused(tmp_path):
    """`day` and `day ` (or `day` twice) collapsed into one column, the last winning: every
    day of the manifest shifted by one, without a word."""
    path = _write(tmp_path, "treatments.csv", "patient,day,product,kind,day \nP01,0,NK,cells,1\n")
    assert _refusal(read_treatments, path) == [
        f"{path}: column 2 'day' and column 5 'day ' have one name; rename or remove one "
        "(cytokit would read only the last)"
    ]
    path = _write(tmp_path, "outcomes.csv", OUTCOMES.replace("death_day", "response_day"))
    assert _refusal(read_outcomes, path) == [
        f"{path}: column 3 'response_day' and column 6 'response_day' have one name; rename "
        "or remove one (cytokit would read only the last)"
    ]


def test_a_table_in_another_encoding_names_the_line_and_value(tmp_path):
    """'is not UTF-8 text (byte 0xe9)' named neither the line nor the value, and said the
    same of UTF-16 with its byte-order mark."""
    fix = "save it as 'CSV UTF-8 (comma delimited)' from the spreadsheet, or convert it to UTF-8"
    path = tmp_path / "treatments.csv"
    path.write_bytes(TREATMENTS.replace("cells/kg,no", "MIU/m²,no").encode("cp1252"))
    assert _refusal(read_treatments, path) == [
        f"{path}, line 3: is not UTF-8 text (byte 0xb2 in 'MIU/m\\xb2'); {fix}"
    ]
    path = tmp_path / "outcomes.csv"  # MacRoman with old-Mac line ends (CR alone)
    path.write_bytes(
        (OUTCOMES + "P03,SD,28,,90,80\n")
        .replace("death_day", "death_day,death_cause")
        .replace(",\n", ",,\n")
        .replace("80\n", "80,sévère\n")
        .replace("\n", "\r")
        .encode("mac_roman")
    )
    assert _refusal(read_outcomes, path) == [
        f"{path}, line 4: is not UTF-8 text (byte 0x8e in 's\\x8ev\\x8fre'); {fix}"
    ]
    path.write_bytes(OUTCOMES.encode("utf-16"))
    assert _refusal(read_outcomes, path) == [
        f"{path}: is UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8; {fix}"
    ]


def test_a_semicolon_table_is_told_how_to_get_commas(tmp_path):
    """'CSV (comma delimited)' in an Excel of a decimal-comma region writes ';' again."""
    path = _write(tmp_path, "treatments.csv", TREATMENTS.replace(",", ";"))
    assert _refusal(read_treatments, path) == [
        f"{path}: the header is one column separated by ';'; cytokit reads comma-separated "
        "CSV: save it as 'CSV UTF-8 (comma delimited)' with ',' as the list separator (Excel "
        "writes the system's list separator, ';' where decimals have a comma: set it in the "
        "region settings) or, in LibreOffice, as Text CSV with the field delimiter ','"
    ]


def test_a_wrong_header_alone_is_not_said_to_leave_no_rows(tmp_path):
    """A header with trailing ',,,' over rows without them: every line is reported, and
    'no files listed, only the header' was added, which is untrue."""
    from cytokit.clinical.outcomes import parse_outcomes
    from cytokit.study.manifest import read_manifest

    path = _write(tmp_path, "manifest.csv", "file,patient,day,,,\na.fcs,P01,0\nb.fcs,P01,7\n")
    problems: list[str] = []
    assert read_manifest(path, problems, (tmp_path,)) == []
    assert problems == [
        f"{path}, line {n}: 3 fields but the header has 6 (file, patient, day, , , )"
        for n in (2, 3)
    ]
    path = _write(tmp_path, "outcomes.csv", OUTCOMES.replace("\n", ",,\n", 1))
    problems = []
    assert parse_outcomes(path, problems, required={"P01", "P02"}) == []
    assert [p.split(": ", 1)[1] for p in problems] == [
        "6 fields but the header has 8 (patient, response, response_day, progression_day, "
        "last_followup_day, death_day, , )"
    ] * 2


def test_a_number_split_by_its_thousands_separators_is_named(tmp_path):
    path = _write(
        tmp_path,
        "treatments.csv",
        TREATMENTS.replace("1.5e7,cells/kg,no", "15,000,000,cells/kg,no"),
    )
    assert _refusal(read_treatments, path) == [
        f"{path}, line 3: 9 fields but the header has 7 (patient, day, product, kind, dose, "
        "unit, given); '15,000,000' looks like one number split at its thousands separators: "
        "write it without them (15000000)"
    ]


def test_zero_width_characters_around_a_cell_are_dropped(tmp_path):
    """'P01' with an invisible zero-width space or a BOM inside the text was another
    patient: one patient split in two without a word."""
    text = TREATMENTS.replace("P01,0", "P01\u200b,0").replace("P01,14", "\ufeff P01 \u2060,14")
    rows = read_treatments(_write(tmp_path, "treatments.csv", text), patients={"P01"})
    assert [r.patient for r in rows] == ["P01", "P01"]
    header = TREATMENTS.replace("given", "given\u200c", 1)
    assert not read_treatments(_write(tmp_path, "treatments.csv", header))[1].given


def test_excel_text_formulas_are_read_as_their_text(tmp_path):
    """A cell written ="P01" (exports that keep "007" from becoming 7 write text so) was
    the patient '="P01"', another than P01, and a day ="14" no whole day."""
    text = TREATMENTS.replace("P01,0", '="P01",="0"').replace("P01,14", ' ="P01" ,14')
    rows = read_treatments(_write(tmp_path, "treatments.csv", text), patients={"P01"})
    assert [(r.patient, r.day) for r in rows] == [("P01", 0), ("P01", 14)]
    # a quote inside is doubled in the formula; the header may be written so too
    header = TREATMENTS.replace("product", '="product"', 1).replace(
        "NK,cells,1.5e7", '="N""K",cells,1.5e7', 1
    )
    assert read_treatments(_write(tmp_path, "treatments.csv", header))[0].product == 'N"K'
