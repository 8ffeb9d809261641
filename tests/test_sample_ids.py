"""QC files are named by `sample_id`, one per sample: two samples never share one.

Every character but letters, digits, ``-``, ``_`` and ``.`` used to be written
``__`` with nothing else, so ``fcs/d7 x.fcs``, ``fcs/d7&x.fcs`` and
``fcs/d7/x.fcs`` shared ``qc/fcs__d7__x.npz``: each sample's QC plot and stored
histograms showed another sample's, without a word.
"""

from __future__ import annotations

import csv
import itertools
import shutil
from pathlib import Path

import numpy as np

import cytokit
from cytokit.analysis.results import _legacy_sample_id, qc_npz, sample_id

REPO = Path(__file__).resolve().parents[1]


def test_common_names_keep_their_id_and_awkward_ones_never_collide():
    assert sample_id("fcs/P01_day007.fcs") == "fcs__P01_day007"  # as older folders have it
    assert sample_id("P-01.day7.fcs") == "P-01.day7"
    assert sample_id("P-01.day7.FCS") != sample_id("P-01.day7.fcs")
    names = [
        "fcs/d7 x.fcs", "fcs/d7&x.fcs", "fcs/d7/x.fcs", "fcs/d7__x.fcs", "fcs/d7_/x.fcs",
        "fcs/d7/_x.fcs", "fcs/d7#x.fcs", "fcs/d7%x.fcs", "fcs/d7x.fcs", "fcs/d7x",
        "fcs/Müller d7.fcs", "fcs/Müller/d7.fcs", "fcs//d7.fcs", "fcs/d7.fcs.fcs", "fcs/d7x.FCS",
    ]  # fmt: skip
    ids = [sample_id(n) for n in names]
    assert len(set(ids)) == len(names), dict(zip(names, ids, strict=True))
    # each id is a plain file name
    assert all("/" not in i and " " not in i for i in ids)
    for a, b in itertools.combinations(names, 2):
        assert sample_id(a) != sample_id(b)


def test_three_names_that_shared_a_qc_file_get_one_each(tmp_path):
    study = tmp_path / "study"
    shutil.copytree(REPO / "sample_data", study, ignore=shutil.ignore_patterns("truth"))
    rows = list(csv.DictReader((study / "manifest.csv").open()))
    renamed = {
        "fcs/P01_day007.fcs": "fcs/d7 x.fcs",
        "fcs/P02_day043.fcs": "fcs/d7&x.fcs",
        "fcs/P03_day028.fcs": "fcs/d7/x.fcs",
    }
    (study / "fcs" / "d7").mkdir()
    for old, new in renamed.items():
        (study / old).rename(study / new)
    for r in rows:
        r["file"] = renamed.get(r["file"], r["file"])
    with (study / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out"
    res = cytokit.analyze(study, out, workers=1)
    files = list(renamed.values())
    paths = {qc_npz(out, f) for f in files}
    assert len(paths) == 3 and all(p.is_file() for p in paths)
    # each file's stored histogram is its own: its events are its NK count
    hists = [res.donor_histogram(f) for f in files]
    assert len({int(np.asarray(h.counts).sum()) for h in hists}) == 3
    qc = res.qc[res.qc["file"].isin(files)]
    assert qc.groupby("sample")["file"].nunique().max() == 1
    assert qc["sample"].nunique() == 3


def test_an_older_folders_qc_file_is_still_found(tmp_path):
    out = tmp_path / "out"
    (out / "qc").mkdir(parents=True)
    file = "fcs/d7 x.fcs"
    legacy = out / "qc" / f"{_legacy_sample_id(file)}.npz"
    np.savez(legacy, a=np.arange(3))
    assert qc_npz(out, file) == legacy
    new = out / "qc" / f"{sample_id(file)}.npz"
    np.savez(new, a=np.arange(3))
    assert qc_npz(out, file) == new
