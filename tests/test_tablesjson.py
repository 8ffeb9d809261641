"""tables.json: the index written last into a results folder and checked before it is read."""

from __future__ import annotations

import hashlib
import json

import pytest

from cytokit.analysis.tablesjson import INDEX_NAME, check_index, invalidate_index, write_index
from cytokit.errors import CytokitError

TABLE = b'patient,day,note\nP01,7,"two\nlines"\nP02,14,x\n'


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.csv").write_bytes(TABLE)
    (tmp_path / "study.json").write_text('{"root": "/data/my study"}\n')
    write_index(tmp_path, {"a.csv": 2, "study.json": None})
    return tmp_path


def test_index_records_rows_bytes_and_sha256(folder):
    doc = json.loads((folder / INDEX_NAME).read_text())
    assert doc["format"] == 1
    assert doc["files"][0] == {
        "name": "a.csv",
        "rows": 2,
        "bytes": len(TABLE),
        "sha256": hashlib.sha256(TABLE).hexdigest(),
    }
    assert "rows" not in doc["files"][1]
    assert check_index(folder) == {
        "a.csv": TABLE,
        "study.json": (folder / "study.json").read_bytes(),
    }


def test_a_quoted_newline_is_not_a_row(folder):
    (folder / "a.csv").write_bytes(TABLE[:-9])  # the last row cut off
    with pytest.raises(CytokitError) as err:
        check_index(folder)
    assert f"a.csv has 1 row(s) in {len(TABLE) - 9} bytes where tables.json records 2 row(s)" in (
        str(err.value)
    )
    assert "run `cytokit analyze /data/my study --out" in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["files"][0].update(name="../a.csv"), "bad entry"),
        (lambda d: d.update(format=2), "format 2, this cytokit reads 1"),
        (lambda d: d.pop("files"), "'files'"),
    ],
)
def test_a_malformed_index_is_refused(folder, change, message):
    doc = json.loads((folder / INDEX_NAME).read_text())
    change(doc)
    (folder / INDEX_NAME).write_text(json.dumps(doc))
    with pytest.raises(CytokitError, match="not a readable table index") as err:
        check_index(folder)
    assert message in str(err.value)


def test_invalidated_index_is_gone(folder):
    invalidate_index(folder)
    invalidate_index(folder)  # twice is fine
    with pytest.raises(CytokitError, match=r"no tables\.json"):
        check_index(folder)


def test_write_results_stopped_while_writing_leaves_the_earlier_runs_tables(tmp_path, monkeypatch):
    """`analyze` wrote its tables one by one: killed part-way, a folder held a run's new
    samples.csv beside the earlier run's failures.csv and acquisition_qc.csv. Now each is
    written whole first and they are put in place together."""
    import pandas as pd

    from cytokit.analysis import results as R

    first = R.Results(
        samples=pd.DataFrame({"file": ["a.fcs"], "patient": ["P01"]}),
        failures=pd.DataFrame({"file": ["b.fcs"], "stage": ["read"], "reason": ["bad"]}),
        study={"name": "one"},
    )
    R.write_results(first, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != INDEX_NAME}
    second = R.Results(
        samples=pd.DataFrame({"file": ["a.fcs", "b.fcs"], "patient": ["P01", "P02"]}),
        study={"name": "two"},
    )
    real = R._table_bytes

    def stop_at_failures(name, *args, **kwargs):
        if name == "failures":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.setattr(R, "_table_bytes", stop_at_failures)
    with pytest.raises(KeyboardInterrupt):
        R.write_results(second, tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert INDEX_NAME not in after  # the index is gone: readers refuse the folder
    assert after == before
