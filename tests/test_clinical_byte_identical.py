"""A study without clinical files is analysed exactly as before the clinical layer.

Truth: the SHA-256 of every table and QC file that ``cytokit analyze`` wrote for
sample_data without its infusions.csv before the clinical layer reached
``analyze`` (tests/data/preclinical_sample_digests.json). Today's tables must be
those bytes, except the columns the clinical layer added and documented
(``trends.csv``: dose_product, doses_per_kg; ``cohort.csv``: dose_product),
which are dropped before comparing; and no clinical table may be written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import cytokit
from cytokit.analysis.results import CLINICAL_TABLES

HERE = Path(__file__).resolve().parent
SAMPLE_DATA = HERE.parents[0] / "sample_data"


@pytest.mark.slow
def test_no_clinical_files_same_tables_as_before(tmp_path):
    reference = json.loads((HERE / "data" / "preclinical_sample_digests.json").read_text())
    study = shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("*.npz"))
    (study / "infusions.csv").unlink()
    out = tmp_path / "out"
    results = cytokit.analyze(study, out, workers=1)
    assert results.clinical == {}
    assert not any((out / f"{name}.csv").exists() for name in CLINICAL_TABLES)
    written = {p.name for p in out.glob("*.csv")} | {
        f"qc/{p.name}" for p in (out / "qc").glob("*.npz")
    }
    assert written == set(reference["files"])
    differ = []
    for name, digest in reference["files"].items():
        data = (out / name).read_bytes()
        if name in reference["new_columns"]:
            frame = pd.read_csv(out / name, dtype=str, keep_default_na=False)
            frame = frame.drop(columns=reference["new_columns"][name])
            data = frame.to_csv(index=False).encode()
        if hashlib.sha256(data).hexdigest() != digest:
            differ.append(name)
    assert not differ, f"not the bytes written before the clinical layer: {differ}"
