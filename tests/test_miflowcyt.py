"""miflowcyt.csv: MIFlowCyt 1.0 items from FCS keywords, study.toml's [[reagents]] and settings.

The keyword items are compared with FlowIO's reading of the same TEXT
segments on every FCS file of the corpus, and with a file written here with
known keywords; the reagent items with the ``[[reagents]]`` entries given.
"""

from __future__ import annotations

import glob
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cytokit
from cytokit.analysis.miflowcyt import (
    CHANNEL_ITEMS,
    KEYWORD_ITEMS,
    MIFLOWCYT_COLUMNS,
    REAGENT_ITEMS,
    keyword_rows,
    miflowcyt_table,
)
from cytokit.errors import StudyError
from cytokit.fcs import read_fcs, write_fcs
from cytokit.sample import Channel, Sample
from cytokit.study import load_study

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


def _corpus_files() -> list[str]:
    return sorted(glob.glob(str(CORPUS / "**" / "*.fcs"), recursive=True))


def _by_source(rows: list[dict]) -> dict[str, dict]:
    return {r["source"]: r for r in rows}


@pytest.mark.corpus
def test_keyword_items_equal_flowio_on_the_corpus():
    flowio = pytest.importorskip("flowio")
    files = _corpus_files()
    if not files:
        pytest.skip(f"corpus: no FCS file under {CORPUS}")
    checked = present = 0
    seen: set[str] = set()
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sample = read_fcs(path, mmap=True, scale=False)
                text = flowio.FlowData(path, only_text=True).text
            except Exception:  # a file one of the readers refuses is the reader tests' concern
                continue
        truth = {k.lower().lstrip("$"): str(v).strip() for k, v in text.items()}
        rows = _by_source(keyword_rows(sample))
        expected_sources = {k for _, _, k in KEYWORD_ITEMS}
        for c in sample.channels:
            if "TIME" not in c.name.upper():
                expected_sources |= {p.format(n=c.index + 1) for _, _, p in CHANNEL_ITEMS}
        assert set(rows) == expected_sources, path
        for keyword, row in rows.items():
            want = truth.get(keyword.lower().lstrip("$"), "")
            assert row["value"] == want, (path, keyword)
            assert row["status"] == ("present" if want else "missing"), (path, keyword)
            assert bool(row["note"]) == (not want)
            present += bool(want)
            if want:
                seen.add(keyword if not keyword.startswith("$P") else keyword[-1])
        checked += 1
    assert checked >= 10, f"only {checked} corpus files read by both readers"
    # the corpus holds real instruments' settings: models, serials, voltages, filters, lasers
    assert {"$CYT", "$CYTSN", "$DATE", "$BTIM", "$OP", "CREATOR", "$SYS"} <= seen
    assert {"V", "F", "L"} <= seen
    assert present > 100


@pytest.mark.corpus
def test_attune_file_detectors():
    """G11.fcs (an Attune NxT): its serial number and the SSC detector's settings."""
    path = CORPUS / "github" / "whitews_FlowIO" / "data" / "fcs_files" / "G11.fcs"
    if not path.is_file():
        pytest.skip(f"corpus file {path} not found")
    rows = _by_source(keyword_rows(read_fcs(path, mmap=True, scale=False)))
    assert rows["$CYTSN"]["value"] == "2AFC210070815"
    assert rows["$CYT"]["value"].endswith("Attune NxT Acoustic Focusing Cytometer (Lasers: BRVY)")
    assert rows["$P3V"]["value"] == "340" and rows["$P3F"]["value"] == "488/10"
    assert rows["$P3L"]["value"] == "488" and rows["$P3V"]["miflowcyt"] == "3.3"
    assert "$P1V" not in rows  # the time channel has no detector


def _known_sample() -> Sample:
    rng = np.random.default_rng(3)
    names = ["FSC-A", "SSC-A", "FITC-A", "PE-A", "Time"]
    markers = ["", "", "CD3", "CD56", ""]
    channels = [
        Channel(i, n, marker=m, range=262144.0)
        for i, (n, m) in enumerate(zip(names, markers, strict=True))
    ]
    return Sample(rng.uniform(0, 1000, (50, 5)).astype(np.float32), channels, scaled=True)


KNOWN = {
    "$CYT": "LSRFortessa",
    "$CYTSN": "H47100123",
    "$INST": "Clinic of Haematology",
    "$OP": "A. Operator",
    "$DATE": "08-JAN-2024",
    "$BTIM": "11:10:00",
    "$ETIM": "11:12:30",
    "$SRC": "peripheral blood",
    "$SYS": "Windows 10",
    "CREATOR": "BD FACSDiva Software Version 9.0",
    "$P3V": "450",
    "$P3F": "530/30",
    "$P3L": "488",
    "$P4V": "520",
    "$P4T": "PMT",
}


def test_a_file_with_known_keywords(tmp_path):
    path = write_fcs(tmp_path / "known.fcs", _known_sample(), extra_keywords=KNOWN)
    rows = keyword_rows(read_fcs(path, mmap=True, scale=False))
    by = _by_source(rows)
    for keyword, value in KNOWN.items():
        assert by[keyword]["value"] == value and by[keyword]["status"] == "present", keyword
    assert by["$P3V"]["channel"] == "FITC-A" and by["$P4T"]["channel"] == "PE-A"
    missing = {r["source"] for r in rows if r["status"] == "missing"}
    assert {"$EXP", "$CELLS", "$P3T", "$P4F", "$P1V", "CYTOMETER CONFIG NAME"} <= missing
    assert not any(r["source"].startswith("$P5") for r in rows)  # Time
    assert by["$CYTSN"]["item"] == "instrument serial number" and by["$CYTSN"]["miflowcyt"] == "3.2"
    assert by["$P1V"]["note"] == "the file has no $P1V for FSC-A"


REAGENTS = """
[[reagents]]
marker = "CD3"
fluorochrome = "APC"
clone = "UCHT1"
vendor = "BioLegend"
catalog = 300412
lot = "B301234"

[[reagents]]
marker = "CD56"
fluorochrome = "PE"
"""


@pytest.fixture
def study_with_reagents(tmp_path):
    folder = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    with (folder / "study.toml").open("a") as fh:
        fh.write(REAGENTS)
    return folder


def test_reagent_items_come_from_study_toml(study_with_reagents):
    study = load_study(study_with_reagents)
    assert [r.marker for r in study.settings.reagents] == ["CD3", "CD56"]
    assert study.settings.reagents[0].catalog == "300412"  # a number typed bare is kept as text
    table = miflowcyt_table(study)
    assert tuple(table.columns) == MIFLOWCYT_COLUMNS
    assert list(dict.fromkeys(table["file"])) == [study.relative(r.file) for r in study.rows]
    first = table[table["file"] == table["file"].iloc[0]]
    reagents = first[first["miflowcyt"] == "2.4"].set_index(["marker", "item"])
    cd3 = reagents.loc["CD3"]
    assert cd3.loc["clone", "value"] == "UCHT1" and cd3.loc["lot", "value"] == "B301234"
    assert cd3.loc["reporter (fluorochrome)", "value"] == "APC"
    assert (cd3["status"] == "present").all() and (cd3["channel"] == "APC-A").all()
    cd56 = reagents.loc["CD56"]
    assert cd56.loc["reporter (fluorochrome)", "status"] == "present"
    assert cd56.loc["clone", "status"] == "missing"
    assert cd56.loc["clone", "note"] == (
        'add clone = "..." to the [[reagents]] entry of CD56 in study.toml'
    )
    cd8 = reagents.loc["CD8"]
    assert (cd8.drop("analyte")["status"] == "missing").all()
    assert "add a [[reagents]] entry for CD8" in cd8.loc["clone", "note"]
    # every panel marker the file carries is an analyte; one row per reagent item each
    assert len(reagents) == len(study.panel) * (1 + len(REAGENT_ITEMS))
    # the file's keywords (the simulator writes these) and the study's analysis items
    items = first.set_index("item")
    assert items.loc["instrument model", "value"] == "FACSCanto II"
    assert items.loc["acquisition date", "status"] == "present"
    assert items.loc["data transformation", "value"] == "logicle (T=262144, W=0.5, M=4.5, A=0)"
    assert items.loc["compensation", "value"].startswith("the file's spillover matrix ($SPILL")
    assert items.loc["instrument manufacturer", "status"] == "missing"
    # the items in MIFlowCyt order, the operator (no item number) last
    numbers = [n for n in first["miflowcyt"] if n]
    assert numbers == sorted(numbers) and first["miflowcyt"].iloc[-1] == ""


def test_every_file_has_the_same_items(study_with_reagents):
    table = miflowcyt_table(load_study(study_with_reagents))
    per_file = table.groupby("file")[["miflowcyt", "item", "channel"]].apply(
        lambda g: tuple(map(tuple, g.to_numpy()))
    )
    assert per_file.nunique() == 1 and len(per_file) == 15  # the same panel and instrument
    assert set(table["status"]) == {"present", "missing"}
    assert ((table["status"] == "present") == (table["value"] != "")).all()


def test_analyze_writes_what_the_function_gives(study_with_reagents, tmp_path):
    out = tmp_path / "out"
    results = cytokit.analyze(study_with_reagents, out, workers=1)
    written = pd.read_csv(out / "miflowcyt.csv", dtype=str, keep_default_na=False)
    direct = miflowcyt_table(load_study(study_with_reagents)).astype(str)
    pd.testing.assert_frame_equal(written, direct)
    assert len(results.miflowcyt) == len(direct)
    assert "miflowcyt.csv" in (out / "tables.json").read_text()
    back = cytokit.load_results(out).miflowcyt
    assert list(back.columns) == list(MIFLOWCYT_COLUMNS) and len(back) == len(direct)


@pytest.mark.parametrize(
    ("toml", "problems"),
    [
        ('[[reagents]]\nmarker = "CD3"\nclne = "UCHT1"\n',
         [r"\[\[reagents\]\] entry 1 \(marker CD3\): unknown key 'clne' \(did you mean 'clone'\?\)"]),
        ('[[reagents]]\nmarker = "CD3"\n[[reagents]]\nmarker = "CD3"\nclone = "SK7"\n',
         [r"entry 2 \(marker CD3\): marker CD3 already has \[\[reagents\]\] entry 1"]),
        ('[[reagents]]\nclone = "UCHT1"\n',
         [r'entry 1: no marker; name the \[panel\] marker it stains, e.g. marker = "CD3"']),
        ('[[reagents]]\nmarker = "CD3"\nlot = 3.5\n',
         [r'entry 1 \(marker CD3\): lot = 3.5 must be text, e.g. lot = "B301234"']),
        ('reagents = "CD3 UCHT1"\n',
         [r"reagents = 'CD3 UCHT1' must be a list of tables, one per marker"]),
        ('[[reagents]]\nmarker = "CD33"\nclone = "P67.6"\n',
         [r"marker 'CD33' is not in \[panel\].*but \[\[reagents\]\] use it"]),
    ],
)  # fmt: skip
def test_reagent_problems_name_the_entry_key_and_fix(tmp_path, toml, problems):
    folder = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    config = (folder / "study.toml").read_text()
    # a top-level key goes before the first table; an array of tables anywhere after it
    config = config + "\n" + toml if toml.startswith("[[") else toml + config
    (folder / "study.toml").write_text(config)
    with pytest.raises(StudyError) as info:
        load_study(folder)
    message = str(info.value)
    for pattern in problems:
        assert re.search(pattern, message), message


def test_an_unreadable_file_has_one_row(tmp_path):
    folder = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    study = load_study(folder)
    victim = Path(study.rows[0].file)
    victim.write_bytes(victim.read_bytes()[:40])  # the HEADER, cut short
    table = miflowcyt_table(study)
    rows = table[table["file"] == study.relative(victim)]
    assert len(rows) == 1 and rows.iloc[0]["item"] == "list-mode data file"
    assert rows.iloc[0]["status"] == "missing" and "cannot be read" in rows.iloc[0]["note"]


def test_a_reagent_of_a_further_tubes_marker_is_no_problem(tmp_path):
    """KIR2DL1 is in the receptor tube's panel only: its reagent is that tube's, not a typo;
    the default tube's table (what analyze describes) has no row for it."""
    folder = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    config = (folder / "study.toml").read_text()
    config += '\n[tubes.receptors]\npanel = { KIR2DL1 = "BV421-A" }\n'
    config += '\n[[reagents]]\nmarker = "KIR2DL1"\nclone = "143211"\n'
    (folder / "study.toml").write_text(config)
    study = load_study(folder)
    assert [r.marker for r in study.settings.reagents] == ["KIR2DL1"]
    assert "KIR2DL1" not in set(miflowcyt_table(study)["marker"])


def test_each_files_reagents_come_from_its_tubes_panel(tmp_path):
    """A receptor tube adds KIR2DL1 on BV421-A with its [[reagents]] entry: its files list
    every marker of their own tube's panel that they carry (the FCS file's $PnS names it),
    KIR2DL1 with the entry's clone; the default tube's files list theirs, no KIR2DL1."""
    from cytokit.simulate import preset_design, simulate_study
    from cytokit.simulate.tubes import add_tubes

    folder = tmp_path / "s"
    design = preset_design("sample", seed=3, n_patients=1, n_events=2_000, days=(7,))
    simulate_study(folder, design, workers=1)
    add_tubes(folder, seed=3)
    with (folder / "study.toml").open("a") as fh:
        fh.write('\n[[reagents]]\nmarker = "KIR2DL1"\nfluorochrome = "BV421"\nclone = "HP-MA4"\n')
    study = load_study(folder)
    table = miflowcyt_table(study)
    tubes = {study.relative(r.file): study.tube_of(r) for r in study.rows}
    assert {"default", "receptors", "stimulated"} <= set(tubes.values())
    for file, rows in table.groupby("file"):
        panel = study.tube_panel(tubes[file])
        stained = {c.name: c.marker for c in read_fcs(study.root / file, mmap=True).channels}
        want = {(ch, m) for ch, m in stained.items() if m in panel.markers}
        analytes = rows[rows["item"] == "analyte"]
        assert set(zip(analytes["channel"], analytes["value"], strict=True)) == want, file
        assert len(rows[rows["miflowcyt"] == "2.4"]) == len(want) * (1 + len(REAGENT_ITEMS))
        kir = rows[(rows["marker"] == "KIR2DL1")].set_index("item")
        if tubes[file] == "receptors":
            assert ("BV421-A", "KIR2DL1") in want
            assert kir.loc["clone", "value"] == "HP-MA4", file
            assert kir.loc["reporter (fluorochrome)", "value"] == "BV421"
            assert (kir["channel"] == "BV421-A").all()
        else:
            assert kir.empty, file


@pytest.mark.parametrize(
    ("toml", "ran", "value", "note"),
    [
        ("", None, "", "add an [acquisition_qc] table to study.toml"),
        ("[acquisition_qc]\nenabled = false\n", None, "", "acquisition QC is off"),
        ("[acquisition_qc]\n", None,
         "acquisition QC (rate, signal, margins; sensitivity normal; a file fails above 20% of "
         "its events removed, warns above 2%)", ""),
        ('[acquisition_qc]\nmax_removed_pct = 55\nexclude_channels = ["PE-Cy7-A"]\n', "margins",
         "acquisition QC (margins; not run on this file: rate, signal (samples.csv qc_reason); "
         "sensitivity normal; a file fails above 55% of its events removed, warns above 2%; "
         "channels left out: PE-Cy7-A)", ""),
        ('[acquisition_qc]\nchecks = ["rate"]\n', "",
         "acquisition QC (no check ran on this file (samples.csv qc_reason); sensitivity normal; "
         "a file fails above 20% of its events removed, warns above 2%)", ""),
    ],
)  # fmt: skip
def test_the_qc_item_says_what_ran_on_the_file_and_the_limits(tmp_path, toml, ran, value, note):
    """1.8 named the study's checks for a file none of them ran on (no Time channel: the
    margins only; or none), left out the limits, and asked for a table that was there."""
    from cytokit.analysis.miflowcyt import _qc_row

    folder = shutil.copytree(SAMPLE_DATA, tmp_path / "study")
    with (folder / "study.toml").open("a") as fh:
        fh.write("\n" + toml)
    row = _qc_row(load_study(folder).settings, ran)
    assert row["value"] == value and row["status"] == ("present" if value else "missing")
    assert note in row["note"]
