"""Tables as Parquet (``--format parquet|both``): the same cells as the CSV, the contract's types.

Each Parquet file is compared with the CSV of the same run cell by cell: a
number formatted as the CSV formats it (``%.10g``), a null where the CSV cell
is empty, text raw where the CSV neutralised a formula-like cell. The
schema of each file is the one `cytokit.analysis.results.COLUMN_TYPES` (and
`cytokit.engine.gate_files.TABLE_TYPES`) states, nullability included.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit._io import restore_cell
from cytokit.analysis.results import (
    CLINICAL_TABLES,
    COLUMN_TYPES,
    TABLES,
    column_types,
    load_results,
)
from cytokit.analysis.tablesjson import check_index
from cytokit.cli.app import run
from cytokit.engine.gate_files import TABLE_TYPES
from cytokit.errors import CytokitError
from cytokit.parquet import frame_parquet, read_parquet
from cytokit.simulate import preset_design, simulate_study

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
OUTCOMES = """patient,response,response_day,agvhd_max_grade,agvhd_onset_day,dlt,dlt_day,last_followup_day,death_day,progression_day
P01,CR,100,0,,no,,400,,
P02,PD,100,2,30,yes,35,,250,120
P03,PR,100,1,20,no,,365,,
"""


def _cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(list(args))
    return code, err.getvalue()


@pytest.fixture(scope="module")
def sample_both(tmp_path_factory):
    """The sample study, with outcomes (every clinical table), analysed with --format both."""
    base = tmp_path_factory.mktemp("pq-sample")
    study = shutil.copytree(SAMPLE_DATA, base / "study")
    (study / "outcomes.csv").write_text(OUTCOMES)
    out = base / "out"
    cytokit.analyze(study, out, workers=1, table_format="both")
    return out


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A simulated study with drift and acquisition QC (its own adaptive YAML strategy)."""
    base = tmp_path_factory.mktemp("pq-sim")
    design = preset_design("sample", seed=5, n_patients=2, n_events=4000, days=(-7, 7, 21))
    study = simulate_study(base / "study", design, workers=1)
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[acquisition_qc]\nenabled = true\n")
    return study


@pytest.fixture(scope="module")
def simulated_both(simulated, tmp_path_factory):
    out = tmp_path_factory.mktemp("pq-sim-out") / "out"
    code, err = _cli(
        "analyze", str(simulated), "--out", str(out), "-j", "1", "--no-report", "--format", "both"
    )
    assert code == 0, err
    return out


def _cell(value, digits: bool) -> str:
    """A Parquet value as the CSV writes it: analyze's tables with 10 significant digits,
    gate's as Python writes a float (the shortest text that reads back the same)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}" if digits else str(value)
    return str(value)


def assert_same_table(parquet: Path, csv: Path, *, digits: bool = True) -> int:
    """Every cell of `parquet` is the CSV's (see the module docstring); returns the rows."""
    text = pd.read_csv(csv, dtype=str, keep_default_na=False).map(restore_cell)
    table = pq.read_table(parquet)
    assert table.column_names == [str(c) for c in text.columns], parquet.name
    assert table.num_rows == len(text), parquet.name
    for name, column in zip(table.column_names, table.columns, strict=True):
        got = [_cell(v, digits) for v in column.to_pylist()]
        want = text[name].tolist()
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        assert not bad, f"{parquet.name} column {name}: first differences {bad[:3]}"
        nulls = [i for i, v in enumerate(column.to_pylist()) if v is None]
        assert nulls == [i for i, w in enumerate(want) if w == ""], (parquet.name, name)
    return table.num_rows


def assert_contract_schema(parquet: Path, types: dict[str, str]) -> None:
    schema = pq.read_schema(parquet)
    arrow = {
        "int64": pa.int64(),
        "Int64": pa.int64(),
        "float64": pa.float64(),
        "string": pa.string(),
        "bool": pa.bool_(),
    }
    for field in schema:
        kind = types[field.name]
        assert field.type == arrow[kind], (parquet.name, field.name, field.type, kind)
        assert field.nullable == (kind != "int64"), (parquet.name, field.name)


def _tables(out: Path) -> list[str]:
    return [n for n in (*TABLES, *CLINICAL_TABLES) if (out / f"{n}.parquet").is_file()]


@pytest.mark.slow
def test_sample_study_parquet_equals_csv(sample_both):
    names = _tables(sample_both)
    listed = {e["name"] for e in json.loads((sample_both / "tables.json").read_text())["files"]}
    assert {f"{n}.parquet" for n in names} == {n for n in listed if n.endswith(".parquet")}
    assert set(TABLES) <= set(names) and {"survival", "treatments", "landmark"} <= set(names)
    rows = {
        name: assert_same_table(sample_both / f"{name}.parquet", sample_both / f"{name}.csv")
        for name in names
    }
    assert rows["chimerism"] == 75 and rows["samples"] == 15 and rows["survival"] > 0


@pytest.mark.slow
def test_simulated_study_parquet_equals_csv(simulated_both):
    names = _tables(simulated_both)
    assert set(TABLES) <= set(names)  # and the schedule's tables: the simulator writes one
    for name in names:
        assert_same_table(simulated_both / f"{name}.parquet", simulated_both / f"{name}.csv")
    samples = pq.read_table(simulated_both / "samples.parquet")
    assert samples.column("events_after_qc").null_count == 0  # acquisition QC ran
    assert samples.schema.field("events_after_qc").type == pa.int64()


@pytest.mark.slow
def test_schemas_are_the_contracts(sample_both, simulated_both):
    for out in (sample_both, simulated_both):
        for name in _tables(out):
            path = out / f"{name}.parquet"
            assert_contract_schema(path, column_types(name, pq.read_schema(path).names))
    # a table's typed columns are its contract's columns, in order
    for name, columns in TABLES.items():
        assert list(COLUMN_TYPES[name])[: len(columns)] == list(columns), name
    from cytokit.analysis.dose_response import DOSE_RESPONSE_COLUMNS
    from cytokit.clinical.tables import TABLE_COLUMNS
    from cytokit.clinical.treatments import treatments_frame

    clinical = {
        **TABLE_COLUMNS,
        "dose_response": DOSE_RESPONSE_COLUMNS,
        "treatments": tuple(treatments_frame([]).columns),
    }
    for name in CLINICAL_TABLES:
        assert tuple(COLUMN_TYPES[name]) == tuple(clinical[name]), name
    # counts are integers, a failed measurement a null: chimerism's donor values, and the
    # events of a population whose gates read a failed donor-marker detector
    chim = pq.read_schema(sample_both / "chimerism.parquet")
    assert chim.field("events").type == pa.int64() and chim.field("events").nullable
    assert chim.field("donor_events").nullable and chim.field("donor_pct").type == pa.float64()
    counts = pq.read_schema(sample_both / "counts.parquet")
    assert counts.field("count").type == pa.int64() and counts.field("count").nullable
    assert counts.field("depth").type == pa.int64() and not counts.field("depth").nullable


@pytest.mark.slow
def test_tables_json_lists_the_parquet_files(sample_both):
    index = json.loads((sample_both / "tables.json").read_text())
    listed = {e["name"]: e for e in index["files"]}
    for name in _tables(sample_both):
        entry = listed[f"{name}.parquet"]
        assert entry["rows"] == pq.read_metadata(sample_both / f"{name}.parquet").num_rows
        assert entry["rows"] == listed[f"{name}.csv"]["rows"]
    assert "study.json" in listed and set(check_index(sample_both)) == set(listed)


@pytest.mark.slow
def test_an_edited_parquet_table_is_refused(sample_both, tmp_path):
    out = shutil.copytree(sample_both, tmp_path / "out")
    path = out / "chimerism.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 10), path)
    with pytest.raises(CytokitError, match=r"chimerism.parquet has 10 row\(s\).*records 75 row"):
        load_results(out)


@pytest.mark.slow
def test_parquet_only_folder_reads_as_the_csv_one(sample_both, tmp_path, monkeypatch):
    """`load_results` (what `cytokit report` reads) gives the same frames from Parquet, of
    the same types (an empty text column is text from both; a float column of whole
    numbers float64 from both)."""
    from_csv = load_results(sample_both)
    study = json.loads((sample_both / "study.json").read_text())["root"]
    only = shutil.copytree(sample_both, tmp_path / "only")
    code, err = _cli("analyze", study, "--out", str(only), "-j", "1", "--no-report",
                     "--format", "parquet")  # fmt: skip
    assert code == 0, err
    assert not list(only.glob("*.csv")), "the CSV tables of the earlier run are removed"
    from_parquet = load_results(only)
    for name in TABLES:
        a, b = getattr(from_csv, name), getattr(from_parquet, name)
        pd.testing.assert_frame_equal(a, b, rtol=5e-10, obj=name)
    assert set(from_csv.clinical) == set(from_parquet.clinical)
    for name in from_csv.clinical:
        pd.testing.assert_frame_equal(
            from_csv.clinical[name], from_parquet.clinical[name], rtol=5e-10, obj=name
        )
    # without pyarrow such a folder is refused in one line naming the extra
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(CytokitError, match=r"need pyarrow.*pip install 'cytokit-flow\[parquet\]'"):
        load_results(only)
    code, err = _cli("report", str(only))
    assert code == 1 and "cytokit-flow[parquet]" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_builds_from_a_parquet_only_folder(simulated, tmp_path):
    out = tmp_path / "out"
    code, err = _cli("analyze", str(simulated), "--out", str(out), "-j", "1", "--format", "parquet")
    assert code == 0, err
    assert (out / "report.html").is_file() and not list(out.glob("*.csv"))
    (out / "report.html").unlink()
    code, err = _cli("report", str(out), "--no-qc")
    assert code == 0, err
    assert (out / "report.html").stat().st_size > 10_000


def test_missing_pyarrow_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    code, err = _cli("analyze", str(SAMPLE_DATA), "--out", str(tmp_path / "o"), "--format",
                     "parquet")  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "pip install 'cytokit-flow[parquet]'" in err and "--format csv" in err
    assert not (tmp_path / "o").exists()  # refused before anything was read or written
    code, err = _cli("gate", "--study", str(SAMPLE_DATA), "--out", str(tmp_path / "g"),
                     "--format", "both")  # fmt: skip
    assert code == 1 and "cytokit-flow[parquet]" in err and not (tmp_path / "g").exists()


def test_a_bad_format_is_a_usage_error(tmp_path):
    for args in (["analyze", str(SAMPLE_DATA)], ["gate", "--study", str(SAMPLE_DATA)]):
        code, err = _cli(*args, "--out", str(tmp_path / args[0]), "--format", "xlsx")
        assert code == 2 and "use one of csv, parquet, both" in err, err


def test_declared_types_are_written_not_inferred():
    frame = pd.DataFrame(
        {
            "patient": ["007", "=1+2", None],  # digits stay text, formula text stays raw
            "day": [1.0, np.nan, 3.0],  # floats with a gap, declared a nullable integer
            "count": [1, 2, 3],
            "value": [np.nan, 0.5, np.inf],
        }
    )
    types = {"patient": "string", "day": "Int64", "count": "int64", "value": "float64"}
    data = frame_parquet(frame, list(types), types, table="t")
    table = pq.read_table(pa.BufferReader(data))
    assert table.schema.field("day").type == pa.int64()
    assert table.to_pydict() == {
        "patient": ["007", "=1+2", None],
        "day": [1, None, 3],
        "count": [1, 2, 3],
        "value": [None, 0.5, math.inf],
    }
    back = read_parquet(data)  # what read_csv would give: gaps as NaN, text as objects
    assert back["day"].dtype == np.float64 and back["count"].dtype == np.int64
    assert back["patient"].tolist()[:2] == ["007", "=1+2"] and math.isnan(back["patient"][2])


@pytest.mark.parametrize(
    ("values", "kind", "message"),
    [
        ([1.0, 2.5], "Int64", r"t: column 'x' \(Int64\) holds 2.5, not an integer"),
        ([1.0, np.nan], "int64", r"missing a value in row 1; the contract says it never is"),
        (["a", "b"], "float64", r"holds a value that is not a number"),
    ],
)
def test_a_value_that_breaks_the_contract_is_refused(values, kind, message):
    with pytest.raises(ValueError, match=message):
        frame_parquet(pd.DataFrame({"x": values}), ["x"], {"x": kind}, table="t")


def test_an_untyped_column_is_refused():
    with pytest.raises(ValueError, match=r"counts: column 'extra' has no type"):
        column_types("counts", ["patient", "extra"])
    assert column_types("clusters", ["median_CD3"]) == {"median_CD3": "float64"}


@pytest.mark.slow
def test_gate_parquet_equals_csv(simulated, tmp_path):
    out = tmp_path / "gated"
    code, err = _cli("gate", "--study", str(simulated), "--out", str(out), "-j", "1",
                     "--format", "both")  # fmt: skip
    assert code == 0, err
    names = ("counts", "statistics", "failures", "warnings", "qc_samples", "acquisition_qc")
    for name in names:
        assert_same_table(out / f"{name}.parquet", out / f"{name}.csv", digits=False)
        columns = pq.read_schema(out / f"{name}.parquet").names
        assert_contract_schema(out / f"{name}.parquet", {c: TABLE_TYPES[name][c] for c in columns})
    counts = pq.read_table(out / "counts.parquet")
    assert counts.num_rows > 0 and counts.schema.field("count").type == pa.int64()
    # parquet only: the CSV tables go, the store answers every file
    code, err = _cli("gate", "--study", str(simulated), "--out", str(out), "--format", "parquet")
    assert code == 0 and "from the store" in err, err
    assert not list(out.glob("*.csv"))
    assert pq.read_table(out / "counts.parquet").equals(counts)
