"""QC files are named by `sample_id`, one per sample: two samples never share one.

Every character but letters, digits, ``-``, ``_`` and ``.`` used to be written
``__`` with nothing else, so ``fcs/d7 x.fcs``, ``fcs/d7&x.fcs`` and
``fcs/d7/x.fcs`` shared ``qc/fcs__d7__x.npz``: each sample's QC plot and stored
histograms showed another sample's, without a word.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit.analysis.results import _legacy_sample_id, qc_npz, sample_id
from cytokit.analysis.tablesjson import write_index
from cytokit.errors import CytokitError
from cytokit.report import build_report

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


RENAMED = {
    "fcs/P01_day007.fcs": "fcs/d7 x.fcs",
    "fcs/P02_day043.fcs": "fcs/d7&x.fcs",
    "fcs/P03_day028.fcs": "fcs/d7/x.fcs",
}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The sample study with three files named so that an older cytokit gave them one QC
    file, analysed: (results folder, Results)."""
    tmp_path = tmp_path_factory.mktemp("ids")
    study = tmp_path / "study"
    shutil.copytree(REPO / "sample_data", study, ignore=shutil.ignore_patterns("truth"))
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[acquisition_qc]\nenabled = true\n")  # its plots read qc/ too
    rows = list(csv.DictReader((study / "manifest.csv").open()))
    renamed = RENAMED
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
    return out, cytokit.analyze(study, out, workers=1)


def test_three_names_that_shared_a_qc_file_get_one_each(analysed):
    out, res = analysed
    files = list(RENAMED.values())
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


def test_an_older_name_is_not_taken_where_other_files_had_it_too(tmp_path):
    """The older name of a file without its own QC file: another sample's where a file of
    the folder has that name now (the file is then missing), and refused where the older
    cytokit gave it to other files too (it holds one of them only)."""
    out = tmp_path / "out"
    (out / "qc").mkdir(parents=True)
    file = "fcs/d7 x.fcs"
    legacy = out / "qc" / f"{_legacy_sample_id(file)}.npz"
    np.savez(legacy, a=np.arange(3))
    new = out / "qc" / f"{sample_id(file)}.npz"
    assert qc_npz(out, file, [file, "fcs/P01.fcs"]) == legacy
    assert qc_npz(out, file, [file, "fcs/d7/x.fcs"]) == new  # fcs__d7__x is that one's
    with pytest.raises(CytokitError, match=r"older cytokit under one name for 2 files"):
        qc_npz(out, file, [file, "fcs/d7&x.fcs"])


def _first_gate(res, file: str) -> str:
    return str(res.qc.loc[res.qc["file"] == file, "gate_id"].iloc[0])


def _acquisition_line(report: str, file: str) -> str:
    """The report's Acquisition QC entry of `file` (its paragraph or its details)."""
    section = report.split('<section id="acquisition-qc">', 1)[1].split("</section>", 1)[0]
    (entry,) = [e for e in section.split("\n") if f">{file}: <b>" in e.replace("&amp;", "&")]
    return entry


def test_a_missing_qc_file_is_missing_not_another_samples(analysed, tmp_path):
    """With ``qc/fcs__d7__x-05f771d4.npz`` (of ``fcs/d7 x.fcs``) gone, the API fell back to
    the name an older cytokit gave it, ``fcs__d7__x.npz``: the QC file of ``fcs/d7/x.fcs``,
    whose points it returned as the missing sample's; the acquisition plot too. Both now
    say the file is missing, as the report's QC plot does."""
    out, res = analysed
    copy = Path(shutil.copytree(out, tmp_path / "out"))
    gone, owner = "fcs/d7 x.fcs", "fcs/d7/x.fcs"
    (copy / "qc" / f"{sample_id(gone)}.npz").unlink()
    assert (copy / "qc" / f"{_legacy_sample_id(gone)}.npz").is_file()  # owner's, by new naming
    again = cytokit.load_results(copy)
    with pytest.raises(CytokitError, match=r"fcs__d7__x-05f771d4\.npz.*is missing.*analyze"):
        again.qc_points(gone, _first_gate(res, gone))
    points = again.qc_points(owner, _first_gate(res, owner))
    assert np.array_equal(points, res.qc_points(owner, _first_gate(res, owner)))
    report = build_report(again).read_text(encoding="utf-8")
    assert "missing" in _acquisition_line(report, gone)
    assert "<details" in _acquisition_line(report, owner)


def _as_an_older_cytokit_wrote(out: Path, files) -> None:
    """`out` as a cytokit that named QC files by `_legacy_sample_id` left it: each
    ``qc/*.npz`` under that name (of files sharing one, the last written stays), qc.csv's
    ``sample`` column so, the index written again."""
    for file in files:
        (out / "qc" / f"{sample_id(file)}.npz").replace(
            out / "qc" / f"{_legacy_sample_id(file)}.npz"
        )
    qc = pd.read_csv(out / "qc.csv", dtype=str, keep_default_na=False)
    qc["sample"] = [_legacy_sample_id(f) for f in qc["file"]]
    qc.to_csv(out / "qc.csv", index=False)
    entries = json.loads((out / "tables.json").read_text())["files"]
    write_index(out, {e["name"]: e.get("rows") for e in entries})


def test_an_older_folders_shared_qc_file_is_shown_for_none_of_its_files(analysed, tmp_path):
    """An older cytokit wrote ``fcs/d7 x.fcs``, ``fcs/d7&x.fcs`` and ``fcs/d7/x.fcs`` to one
    ``qc/fcs__d7__x.npz`` (the last one's data): the report showed that QC plot on all
    three pages, and the API returned its points for each. Neither now shows it for any of
    them; both say why, and to analyse again."""
    out, res = analysed
    old = Path(shutil.copytree(out, tmp_path / "old"))
    files = [str(f) for f in res.samples["file"]]
    _as_an_older_cytokit_wrote(old, files)
    assert not (old / "qc" / f"{sample_id('fcs/d7 x.fcs')}.npz").exists()
    again = cytokit.load_results(old)
    said = r"older cytokit under one name for 3 files.*cytokit analyze STUDY --out"
    for file in RENAMED.values():
        with pytest.raises(CytokitError, match=said):
            again.qc_points(file, _first_gate(res, file))
    other = next(f for f in files if f not in RENAMED.values())
    assert np.array_equal(
        again.qc_points(other, _first_gate(res, other)),
        res.qc_points(other, _first_gate(res, other)),
    )
    report = build_report(again)
    pages = "".join(p.read_text(encoding="utf-8") for p in (old / "patients").glob("*.html"))
    assert "fcs__d7__x.png" not in pages and "fcs__d7__x.svg" not in pages
    assert pages.count("written by an older cytokit under one name for 3 files") == 3
    html = report.read_text(encoding="utf-8")
    for file in RENAMED.values():
        assert "older cytokit" in _acquisition_line(html, file)
