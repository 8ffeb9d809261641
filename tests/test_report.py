"""report.html: sections, failures notice, escaping, no external resources, determinism.

Results come from `results_fixture` (the sample study gated for real, donor
cells from the simulator's truth) with a hostile patient id, a file name full
of HTML metacharacters and one truncated FCS file. One slow test runs the
real analysis on the sample study with a corrupt file among the good ones.
"""

from __future__ import annotations

import base64
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_reading import assert_chimerism_matches, assert_printed, tables
from results_fixture import SAMPLE_DATA, make_results
from scipy import stats

from cytokit.analysis.results import Results, load_results, write_results
from cytokit.errors import CytokitError
from cytokit.report import build_report, check_results_dir
from cytokit.report.figures import file_stem

HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_FILE = "fcs/a&b\"c'd <i>.fcs"
CORRUPT = "fcs/P02_day043.fcs"
#: Days kept per patient (10 files of the 15: fast enough for the suite, still several
#: infusions and decay phases).
DAYS = {"P01": (-7, 7, 21), "P02": (-7, 43, 64, 85), "P03": (-7, 7, 14)}
N_SAMPLES = 9  # analysed: the 10 kept minus the corrupt one
URL_ATTRIBUTES = {"src", "href", "xlink:href", "action", "formaction", "srcset", "poster", "data"}
FORBIDDEN_TAGS = {"script", "link", "iframe", "object", "embed", "base", "form", "frame", "audio",
                  "video", "source", "track"}  # fmt: skip


class Page(HTMLParser):
    """Every start tag with its attributes, the text, and the text of each section."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self._section: str | None = None
        self._style = False
        self.styles: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = attrs.get("id")
            self.sections[self._section] = []
        self._style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        self._style = False

    def handle_data(self, data):
        if self._style:
            self.styles.append(data)
        self.text.append(data)
        if self._section is not None:
            self.sections[self._section].append(data)

    def section(self, key: str) -> str:
        """The section's text, whitespace runs as one space."""
        return re.sub(r"\s+", " ", "".join(self.sections[key]))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = make_results(
        tmp_path_factory.mktemp("results"),
        patients={"P01": HOSTILE_ID},
        files={"fcs/P03_day007.fcs": HOSTILE_FILE},
        corrupt=(CORRUPT,),
        keep=lambda p, d: d in DAYS[p],
    )
    _add_clusters(out)
    build_report(out, single_file=True)
    return out


@pytest.fixture(scope="module")
def html(folder):
    return (folder / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(html):
    return Page(html)


def _add_clusters(out: Path) -> None:
    """Cluster tables in the contract's shape, derived from the gated counts: each study
    population plays a metacluster (its phenotype medians are the marker medians)."""
    r = load_results(out)
    pops = list(r.study["populations"])
    counts = r.counts[r.counts["population"].isin(pops)]
    live = r.counts[r.counts["gate_path"] == "/Lymphocytes/Singlets/Live"].set_index("file")
    rows = []
    for c in counts.itertuples(index=False):
        total = int(live.loc[c.file, "count"])
        rows.append(
            {"patient": c.patient, "day": c.day, "file": c.file,
             "metacluster": pops.index(c.population), "origin": "all", "count": int(c.count),
             "total": total, "fraction": c.count / total}
        )  # fmt: skip
    r.clusters = pd.DataFrame(rows)
    pheno = r.phenotype[r.phenotype["origin"] == "all"]
    medians = pheno.pivot_table(index="population", columns="marker", values="median")
    events = r.clusters.groupby("metacluster")["count"].sum()
    r.cluster_summary = pd.DataFrame(
        {
            "metacluster": range(len(pops)),
            "events": [int(events.get(i, 0)) for i in range(len(pops))],
            "fraction": [events.get(i, 0) / events.sum() for i in range(len(pops))],
            "gate": ["NK", "<b>bright</b>", "NK_dim", "CIK", "T"],
            "f1": 1.0,
            **{m: [medians[m].get(p, np.nan) for p in pops] for m in medians.columns},
        }
    )
    r.cluster_matching = pd.DataFrame(
        {"gate": pops, "metaclusters": [str(i) for i in range(len(pops))], "f1": 1.0}
    )
    r.study["clustering"] = {"markers": list(medians.columns), "grid": [2, 3], "seed": 1}
    write_results(r, out)


# ---------------------------------------------------------------- structure


def test_cohort_first_then_every_patient_then_clusters_and_failures(page):
    ids = [a.get("id") for tag, a in page.tags if tag == "section"]
    assert ids == ["cohort", "patient-1", "patient-2", "patient-3", "clusters", "failures"]
    for i, (pid, stratum) in enumerate(((HOSTILE_ID, "NK"), ("P02", "CIK"), ("P03", "NK")), 1):
        words = [t.strip() for t in page.sections[f"patient-{i}"] if t.strip()]
        assert words[:2] == [f"Patient {pid}", stratum]
    nav = [a["href"] for tag, a in page.tags if tag == "a"]
    assert nav[:7] == ["#failures", "#cohort", "#patient-1", "#patient-2", "#patient-3",
                       "#clusters", "#failures"]  # fmt: skip


def test_cohort_section_summarises_the_study(page, folder):
    text = page.section("cohort")
    r = load_results(folder)
    assert f"3 patients, {N_SAMPLES} samples analysed, 1 file failed." in text
    assert "not quantifiable (NQ) below [qc] min_events = 50" in text
    for product, dose in (("DLI", "10⁶/kg"), ("CIK", "10⁷/kg"), ("NK", "1.8×10⁷/kg")):
        assert product in text and dose in text
    assert "Cohort summary by stratum" in text and "Persistence by patient" in text
    assert len(r.cohort) > 0


def test_patient_sections_hold_tables_plots_and_flags(page, folder):
    r = load_results(folder)
    p2 = page.section("patient-2")
    assert "donor marker HLA-A2, donor cells negative" in p2
    assert "day 42: CIK 3×10⁶/kg" in p2 and "day 84: CIK 10⁷/kg" in p2
    for caption in ("Trends:", "Donor chimerism:", "Samples and absolute counts", "Phenotype:",
                    "Donor-marker thresholds", "QC: gates on each sample"):  # fmt: skip
        assert caption in p2, caption
    # the corrupt file is flagged in its patient's section too
    assert f"{CORRUPT} could not be processed (read)" in p2
    # a half-life or the reason it is not estimable (nothing detected to fit, or a code),
    # for every trend row of the patient
    mine = r.trends[r.trends["patient"] == "P02"]
    n_nd = int(mine["last_detectable_day"].isna().sum())
    assert p2.count("not detected") >= n_nd
    shown = p2.count("not estimable") + len(re.findall(r"\d d \(95 % CI", p2))
    assert shown >= len(mine) - n_nd
    # one QC plot per sample of the patient
    for i, n in ((1, 3), (2, 3), (3, 3)):
        sec = page.sections[f"patient-{i}"]
        assert sum(re.fullmatch(r"day -?\d+: .*\.fcs", t) is not None for t in sec) == n


#: The figures drawn as SVG (not matplotlib), written as SVG only.
SVG_DRAWN = ("_persistence.svg", "_chimerism.svg", "clusters_abundance_all.svg",
             "clusters_abundance_donor.svg", "cohort_donor_per_ul.svg",
             "cohort_donor_pct.svg", "clusters_heatmap.svg")  # fmt: skip


def test_images_are_embedded(page, folder):
    images = [a for tag, a in page.tags if tag == "img"]
    # 2 cohort plots, 2 per patient, one QC plot per sample, 2 cluster plots
    assert len(images) == 2 + 2 * 3 + N_SAMPLES + 2
    kinds = []
    for a in images:
        head, data = a["src"].split(",", 1)
        raw = base64.b64decode(data)
        if head == "data:image/svg+xml;base64":  # cohort, patient and abundance plots
            assert raw.startswith(b"<svg ") and raw.rstrip().endswith(b"</svg>")
            kinds.append("svg")
        else:
            assert head == "data:image/png;base64"
            assert raw[:8] == b"\x89PNG\r\n\x1a\n"
            kinds.append("png")
        assert a.get("alt")
    clusters = len(list(folder.glob("plots/clusters_*.svg")))  # the heatmap and abundance
    assert kinds.count("svg") == 2 + 2 * 3 + clusters
    files = {p.relative_to(folder / "plots").as_posix() for p in (folder / "plots").rglob("*.*")}
    stem = file_stem(HOSTILE_ID)
    assert {f"{stem}_persistence.svg", "cohort_donor_pct.svg"} <= files
    # every figure but the QC plots is drawn as SVG, and written as SVG only
    svg = [f for f in files if f.endswith(".svg") and not f.startswith("qc/")]
    assert svg and all(f.endswith(SVG_DRAWN) for f in svg)
    assert not [f for f in files if f.endswith(".png") and not f.startswith("qc/")]
    # each sample's QC plot: its histograms (PNG) and the SVG drawn over them
    qc = [f for f in files if f.startswith("qc/")]
    assert len(qc) == 2 * N_SAMPLES and {f[-4:] for f in qc} == {".png", ".svg"}
    assert not any(p.name.endswith(".tmp") for p in folder.rglob("*"))


# ---------------------------------------------------------------- numbers


def test_chimerism_cells_show_the_numbers_of_chimerism_csv(html, folder):
    """Each cell: % donor, its 95 % interval, donor cells/µL, donor/population events and
    status tag of its chimerism.csv row, to the printed precision."""
    chim = pd.read_csv(folder / "chimerism.csv", dtype={"patient": str})
    assert assert_chimerism_matches(html, chim) == N_SAMPLES * 5


def test_chimerism_csv_holds_the_simulated_donors(folder):
    """The table the report shows: % donor is donor/population events, the interval is
    Wilson's (scipy), and the share is the simulator's within 2.5 pp where >= 200 events.
    (CSV numbers carry 10 significant digits.)"""
    chim = pd.read_csv(folder / "chimerism.csv", dtype={"patient": str})
    for r in chim.itertuples(index=False):
        assert r.donor_events + r.recipient_events == r.events
        if r.events == 0:
            continue
        assert r.donor_pct == pytest.approx(100.0 * r.donor_events / r.events, rel=1e-9)
        ci = stats.binomtest(int(r.donor_events), int(r.events)).proportion_ci(method="wilson")
        assert (r.ci_low, r.ci_high) == pytest.approx((100 * ci.low, 100 * ci.high), rel=1e-9)
    truth = pd.read_csv(SAMPLE_DATA / "truth" / "populations.csv", dtype={"patient": str})
    truth["patient"] = truth["patient"].replace("P01", HOSTILE_ID)
    merged = chim.merge(truth, on=["patient", "day", "population"], suffixes=("", "_true"))
    big = merged[merged.events >= 200]
    assert len(big) >= 15
    realised = 100.0 * big.donor_events_true / big.events_true
    assert (big.donor_pct - realised).abs().max() <= 2.5


def test_trend_and_phenotype_cells_show_their_tables(html, folder):
    """The per-patient trends table (peak, AUC, R²) and the phenotype table (median,
    % positive, events) show trends.csv and phenotype.csv."""
    trends = pd.read_csv(folder / "trends.csv", dtype={"patient": str})
    pheno = pd.read_csv(folder / "phenotype.csv", dtype={"patient": str})
    chim = pd.read_csv(folder / "chimerism.csv", dtype={"patient": str})
    found = tables(html, "Trends:")
    assert len(found) == 3
    for t, patient in zip(found, (HOSTILE_ID, "P02", "P03"), strict=True):
        mine = trends[trends.patient == patient]
        assert len(t.rows) == len(mine)
        for cells in t.rows:
            row = dict(zip(t.header, cells, strict=True))
            measure = "donor_pct" if "%" in row["measure"] else "donor_per_ul"
            r = mine[(mine.population == row["population"]) & (mine.measure == measure)].iloc[0]
            # NQ beside a peak of not-quantifiable values only (no quantified day)
            nq = np.isfinite(r.peak_value) and not np.isfinite(r.last_quantified_day)
            assert row["peak"].endswith(" NQ") == nq, (patient, r.population, row["peak"])
            assert_printed(row["peak"].removesuffix(" NQ"), r.peak_value, f"{patient} peak")
            detected = np.isfinite(r.last_detectable_day)
            unit = {"donor_pct": " % × days", "donor_per_ul": " cells/µL × days"}[measure]
            if detected:  # an AUC with its unit only where donor cells were detected
                assert row["AUC"].endswith(unit), row["AUC"]
                assert_printed(row["AUC"].removesuffix(unit), r.auc, f"{patient} {r.population}")
            else:
                assert row["AUC"] == "–", row["AUC"]
            if np.isfinite(r.half_life_days):
                assert_printed(row["R²"], r.half_life_r2, f"{patient} {r.population} r2")
            else:  # these short series: not estimable, or nothing detected to fit
                assert row["R²"] == "–"
                # a % of populations under 80 events on every day after 0 says nothing
                after = chim[(chim.patient == patient) & (chim.population == r.population)]
                tiny = measure == "donor_pct" and (after[after.day >= 0].events < 80).all()
                want = "too few cells to judge" if tiny else "not detected"
                want = "not estimable" if detected else want
                assert want in row["half-life"], row["half-life"]
    found = tables(html, "Phenotype:")
    assert len(found) == 3
    for t, patient in zip(found, (HOSTILE_ID, "P02", "P03"), strict=True):
        mine = pheno[pheno.patient == patient]
        days = [h.removeprefix("day ") for h in t.header[3:]]
        for cells in t.rows:
            pop, origin, marker = cells[:3]
            for day, text in zip(days, cells[3:], strict=True):
                r = mine[(mine.population == pop) & (mine.origin == origin)
                         & (mine.marker == marker) & (mine.day == int(day))]  # fmt: skip
                if not text:
                    assert r.empty
                    continue
                m = re.match(r"(\S+)(?: · (\S+) %\+)?\n(\S+) ev$", text)
                assert m is not None and len(r) == 1, text
                r = r.iloc[0]
                assert_printed(m.group(1), r["median"], f"{patient} {pop} {origin} median")
                assert_printed(m.group(2), r.pct_positive, f"{patient} {pop} {origin} %+")
                assert int(m.group(3).replace(",", "")) == r.events


def test_half_life_cell_shows_the_fit():
    """A half-life with its 95 % interval and points, as trends.csv holds them."""
    from cytokit.report.tables import trends_table

    row = {"patient": "P9", "population": "NK", "measure": "donor_per_ul", "n_days": 7,
           "peak_value": 123.456, "peak_day": 7, "last_detectable_day": 42, "auc": 2345.6,
           "half_life_days": 6.4321, "half_life_ci_low": 4.987, "half_life_ci_high": 9.876,
           "half_life_n": 5, "half_life_r2": 0.9512, "half_life_note": ""}  # fmt: skip
    (t,) = tables(trends_table(pd.DataFrame([row]), ["NK"]))
    cells = dict(zip(t.header, t.rows[0], strict=True))
    assert cells["half-life"] == "6.43 d (95 % CI 4.99–9.88), n = 5"
    assert (cells["peak"], cells["AUC"], cells["R²"]) == ("123", "2,346 cells/µL × days", "0.951")


# ---------------------------------------------------------------- failures


def test_failures_are_announced_at_the_top_and_listed(page):
    alerts = [i for i, t in enumerate(page.text) if "could not be processed —" in t]
    assert alerts, "no failures notice"
    first_section = next(i for i, t in enumerate(page.text) if t == "Cohort")
    assert alerts[0] < first_section
    notice = page.text[alerts[0]]
    assert notice.startswith("1 file could not be processed")
    failures = page.section("failures")
    assert CORRUPT in failures and "read" in failures and "truncated" in failures
    assert "1 file could not be processed; it has no counts" in failures


def test_no_failures_says_every_file_was_processed(tmp_path):
    out = make_results(tmp_path / "r", keep=lambda p, d: p == "P02" and d in DAYS[p])
    html = build_report(out, single_file=True).read_text()
    assert "could not be processed" not in html
    assert "Every file was processed." in html


# ---------------------------------------------------------------- safety


def test_no_external_resources(page, html):
    for tag, attrs in page.tags:
        assert tag not in FORBIDDEN_TAGS, tag
        for name, value in attrs.items():
            value = value or ""
            if name in URL_ATTRIBUTES:
                assert value.startswith(("data:", "#")), (tag, name, value[:60])
            assert not name.startswith("on"), (tag, name)  # no event handlers
            if name == "style":
                assert "url(" not in value
    css = " ".join(page.styles)
    assert "url(" not in css and "@import" not in css
    csp = [a for tag, a in page.tags if tag == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in csp[0]["content"]
    for attr_value in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert not re.match(r"\s*(https?:|//|ftp:|file:)", attr_value, re.I)


def test_values_from_files_are_escaped(html, page):
    assert "<script>" not in html and "<i>" not in html and "<b>bright" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b&quot;c&#x27;d &lt;i&gt;.fcs" in html
    assert "&lt;b&gt;bright&lt;/b&gt;" in html
    text = " ".join(page.text)
    assert HOSTILE_ID in text and HOSTILE_FILE in text
    assert not any(tag in ("i", "script") for tag, _ in page.tags)


# ---------------------------------------------------------------- rebuild


def test_rebuild_gives_the_same_bytes(folder, tmp_path):
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.suffix in (".html", ".png", ".svg")}
    again = build_report(folder, single_file=True)
    assert again == folder / "report.html"
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.suffix in (".html", ".png", ".svg")}
    assert after.keys() == before.keys()
    changed = [p.name for p in before if before[p] != after[p]]
    assert changed == []
    other = build_report(folder, tmp_path / "elsewhere", single_file=True)
    assert other.read_bytes() == before[folder / "report.html"]
    # pages first, then one file: the patients' pages go, and no empty folder stays
    paged = build_report(folder, tmp_path / "paged")
    assert any((paged.parent / "patients").glob("*.html"))
    build_report(folder, tmp_path / "paged", single_file=True)
    assert not (paged.parent / "patients").exists()


def test_build_report_from_results_object_and_errors(folder, tmp_path):
    r = load_results(folder)
    path = build_report(r, tmp_path / "copy", formats=("png",), qc=False, single_file=True)
    html = path.read_text()
    assert "QC plot of day" in html and "not drawn" in html
    svg = [p.name for p in (tmp_path / "copy" / "plots").glob("*.svg")]
    assert all(n.endswith(SVG_DRAWN) for n in svg)
    with pytest.raises(CytokitError, match="give out_dir"):
        build_report(Results(study=r.study, chimerism=r.chimerism, samples=r.samples))
    with pytest.raises(CytokitError, match="no such folder"):
        build_report(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "samples.csv").write_text("patient\n")
    # an analysis stopped while writing its tables (samples.csv, no study.json yet): told
    # to run it again into the same folder, not that it is `cytokit gate`'s
    (tmp_path / "half" / "counts.csv").write_text("file\n")
    with pytest.raises(CytokitError, match="stopped before its end") as err:
        check_results_dir(tmp_path / "half")
    assert f"--out {tmp_path / 'half'}" in str(err.value)
    with pytest.raises(CytokitError, match="stopped before its end"):
        load_results(tmp_path / "half")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x\n")
    with pytest.raises(CytokitError, match=r"missing study\.json, samples\.csv"):
        check_results_dir(tmp_path / "other")
    # a folder of `cytokit gate`: not told to run analyze into it (which it refuses)
    (tmp_path / "gated").mkdir()
    (tmp_path / "gated" / "counts.csv").write_text("file\n")
    with pytest.raises(CytokitError, match="the tables of `cytokit gate`") as err:
        check_results_dir(tmp_path / "gated")
    assert "--out RESULTS" in str(err.value)
    # an analysis with a table gone: run it again, naming the study it analysed
    (tmp_path / "half" / "study.json").write_text('{"root": "/data/my study"}')
    with pytest.raises(CytokitError, match=r"lacks chimerism\.csv") as err:
        check_results_dir(tmp_path / "half")
    assert "cytokit analyze /data/my study --out" in str(err.value)
    # a study folder given for its results: not told to write the results into it
    study = Path(__file__).resolve().parents[1] / "sample_data"
    with pytest.raises(CytokitError, match="a study folder") as err:
        check_results_dir(study)
    assert "--out RESULTS" in str(err.value) and f"--out {study}" not in str(err.value)


def test_missing_qc_data_is_reported(folder, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(folder, copy)
    victim = sorted((copy / "qc").glob("*.npz"))[0]
    victim.unlink()
    html = build_report(copy, single_file=True).read_text()
    assert f"qc/{victim.name} is missing (run cytokit analyze again to write it)" in html


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_analysis_of_a_study_with_a_corrupt_file(tmp_path):
    """The real pipeline: a truncated FCS among good ones is listed and announced."""
    from cytokit.analysis import analyze

    study = tmp_path / "study"
    shutil.copytree(SAMPLE_DATA, study, ignore=shutil.ignore_patterns("*.truth.npz", "truth"))
    bad = study / CORRUPT
    bad.write_bytes(bad.read_bytes()[:5000])
    out = tmp_path / "out"
    analyze(study, out, workers=1)
    path = build_report(out, single_file=True)
    page = Page(path.read_text())
    notice = next(t for t in page.text if "could not be processed —" in t)
    assert notice.startswith("1 file could not be processed")
    assert CORRUPT in page.section("failures")
    assert [a.get("id") for tag, a in page.tags if tag == "section"][:4] == [
        "cohort", "patient-1", "patient-2", "patient-3",
    ]  # fmt: skip
