"""read_spillover_csv: both layouts, row order, and every rejection with its line."""

from __future__ import annotations

import numpy as np
import pytest

from cytokit.errors import CytokitError
from cytokit.study.spillover_csv import read_spillover_csv

NAMES = ("FITC-A", "PE-A", "APC-A")
MATRIX = np.array([[1.0, 0.125, 0.003], [0.02, 1.0, 0.01], [0.0, 4e-3, 1.0]])


def write(tmp_path, text: str):
    path = tmp_path / "spill.csv"
    path.write_text(text)
    return path


def test_plain_block(tmp_path):
    body = "\n".join(",".join(repr(v) for v in row) for row in MATRIX.tolist())
    spill = read_spillover_csv(write(tmp_path, ",".join(NAMES) + "\n" + body + "\n"))
    assert spill.channels == NAMES
    np.testing.assert_array_equal(spill.matrix, MATRIX)
    assert spill.source.endswith("spill.csv")


def test_labelled_rows_in_any_order_with_bom_and_spaces(tmp_path):
    rows = [f"{n}, {', '.join(repr(v) for v in MATRIX[i].tolist())}" for i, n in enumerate(NAMES)]
    text = "\ufeff," + ", ".join(NAMES) + "\n" + "\n".join(rows[::-1]) + "\n\n"
    spill = read_spillover_csv(write(tmp_path, text))
    assert spill.channels == NAMES
    np.testing.assert_array_equal(spill.matrix, MATRIX)


@pytest.mark.parametrize(
    "text, match",
    [
        ("FITC-A,PE-A\n1,0\n", "must be square"),
        ("FITC-A,FITC-A\n1,0\n0,1\n", "name each detector once"),
        ("FITC-A,PE-A\n1,0\n0\n", "line 3: 1 numbers, expected 2"),
        ("FITC-A,PE-A\n1,x\n0,1\n", r"line 2, column 'PE-A': 'x' is not a finite number"),
        ("FITC-A,PE-A\n1,nan\n0,1\n", "not a finite number"),
        (",FITC-A,PE-A\nFITC-A,1,0\nAPC-A,0,1\n", "line 3: row label 'APC-A'"),
        (",FITC-A,PE-A\nFITC-A,1,0\nFITC-A,0,1\n", "is repeated"),
        ("FITC-A,PE-A\n", "one row of numbers per detector"),
    ],
)
def test_rejections(tmp_path, text, match):
    with pytest.raises(CytokitError, match=match):
        read_spillover_csv(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(CytokitError, match="cannot read the spillover matrix CSV"):
        read_spillover_csv(tmp_path / "missing.csv")
