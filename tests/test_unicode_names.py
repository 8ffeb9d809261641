"""Names that print alike but are encoded otherwise (Unicode NFC against NFD).

macOS writes ``ü`` in file names as ``u`` and a combining diaeresis (NFD), while a
name typed in a spreadsheet is usually one code point (NFC). The two print the
same, so "patient 'Müller' is not in manifest.csv" beside a manifest listing
'Müller' told the user nothing. The messages now say what differs.
"""

from __future__ import annotations

import csv
import shutil
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

import cytokit
from cytokit.errors import StudyError

REPO = Path(__file__).resolve().parents[1]
NFC = unicodedata.normalize("NFC", "Müller")
NFD = unicodedata.normalize("NFD", "Müller")


def _study(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    shutil.copytree(REPO / "sample_data", study, ignore=shutil.ignore_patterns("truth"))
    return study


def _rewrite(path: Path, change) -> None:
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    for r in rows:
        change(r)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_a_patient_encoded_otherwise_in_infusions_csv_is_said_so(tmp_path):
    assert NFC != NFD
    study = _study(tmp_path)
    _rewrite(
        study / "manifest.csv", lambda r: r.update(patient=NFC) if r["patient"] == "P01" else 0
    )
    _rewrite(
        study / "infusions.csv", lambda r: r.update(patient=NFD) if r["patient"] == "P01" else 0
    )
    with pytest.raises(StudyError, match="encoded otherwise") as err:
        cytokit.load_study(study)
    assert "Unicode NFC against NFD" in str(err.value)


def test_a_file_name_encoded_otherwise_on_disk_is_said_so(tmp_path):
    study = _study(tmp_path)
    old = "fcs/P01_day007.fcs"
    (study / old).rename(study / "fcs" / f"{NFD}_day007.fcs")  # as macOS writes it
    _rewrite(
        study / "manifest.csv",
        lambda r: r.update(file=f"fcs/{NFC}_day007.fcs") if r["file"] == old else 0,
    )
    out = tmp_path / "out"
    cytokit.analyze(study, out, workers=1)
    failed = pd.read_csv(out / "failures.csv")
    assert len(failed) == 1
    assert (
        "is there: it looks the same but its accented letters are encoded otherwise"
        in (failed["reason"].iloc[0])
    )
