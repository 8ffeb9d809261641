"""The default report: an index page and a page per patient, images as files, rebuilt
incrementally; compared with the single self-contained page (``--single-file``) that
shows the same sections with the same images embedded.

Results come from `results_fixture` (the sample study gated for real): two patients,
five samples, so that the whole module runs in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from report_reading import tables
from results_fixture import make_results

from cytokit.analysis.results import load_results
from cytokit.cli.app import run
from cytokit.errors import CytokitError
from cytokit.report import build_report
from cytokit.report.build import BUILD_STAMP
from cytokit.report.contents import cohort_populations
from cytokit.report.figures import DIGESTS, MANIFEST, _Job
from cytokit.report.tables import cohort_table

PATIENTS = ("P01", "P02")


def _keep(patient: str, day: int) -> bool:
    return patient in PATIENTS and day <= 30


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("results"), keep=_keep)


@pytest.fixture(scope="module")
def built(results, tmp_path_factory):
    """The results with the default report built in them (the only build from scratch: the
    tests' builds reuse its figures, as a rebuild does)."""
    copy = Path(shutil.copytree(results, tmp_path_factory.mktemp("built") / "r"))
    build_report(copy)
    return copy


@pytest.fixture
def folder(built, tmp_path):
    """A copy of `built` for a test to change, rebuilt once: a copy's files have new change
    times and inodes, so its first build takes the full path (drawing nothing)."""
    copy = Path(shutil.copytree(built, tmp_path / "r"))
    build_report(copy)
    return copy


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


def _images_by_content(html: str, page: Path) -> str:
    """`html` with each image's src replaced by the SHA-256 of the PNG it shows (a data URI
    or SVG decoded, or the file the relative link names, read from beside `page`)."""

    def digest(match: re.Match) -> str:
        src = match.group(1)
        if src.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,")):
            data = base64.b64decode(src.split(",", 1)[1])
        else:
            data = (page.parent / unquote(src)).read_bytes()
        return f'src="{hashlib.sha256(data).hexdigest()}"'

    text = re.sub(r'src="([^"]*)"', digest, html)
    return text.replace(' loading="lazy"', "")


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in folder.rglob("*")
        if p.is_file()
        and (p.name == "report.html" or p.parts[-2] in ("plots", "qc", "patients"))
        and p.suffix in (".html", ".png", ".svg", ".json")
    }


def test_pages_show_the_sections_of_the_single_page(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "single")
    single = build_report(tmp_path / "single", single_file=True).read_text()
    index = (folder / "report.html").read_text()
    assert "data:image" not in index
    for anchor in ("cohort", "clusters", "failures"):
        if f'<section id="{anchor}">' in single:
            assert _images_by_content(_section(index, anchor), folder / "report.html") == (
                _images_by_content(_section(single, anchor), tmp_path / "single" / "report.html")
            ), anchor
    assert '<section id="patient-' not in index
    for i, pid in enumerate(PATIENTS, start=1):
        page = folder / "patients" / f"{pid}.html"
        html = page.read_text()
        assert "data:image" not in html
        assert f'href="patients/{pid}.html"' in index
        mine = _images_by_content(_section(html, f"patient-{i}"), page)
        theirs = _images_by_content(_section(single, f"patient-{i}"), tmp_path / "single")
        assert mine == theirs, pid
        assert mine.count("<img") >= 3  # persistence, chimerism and QC plots
    assert sorted(p.name for p in (folder / "patients").iterdir()) == ["P01.html", "P02.html"]


def test_every_link_of_every_page_resolves_inside_the_folder(folder):
    pages = [folder / "report.html", *sorted((folder / "patients").glob("*.html"))]
    for page in pages:
        html = page.read_text()
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        for _attr, value in re.findall(r'\b(src|href)="([^"]*)"', html):
            if value.startswith("#"):
                assert value[1:] in ids, (page.name, value)
                continue
            assert not re.match(r"[a-z][a-z0-9+.-]*:|//", value, re.I), (page.name, value)
            target = (page.parent / unquote(value.split("#")[0])).resolve()
            assert target.is_file(), (page.name, value)
            assert target.is_relative_to(folder.resolve()), (page.name, value)


def test_a_rebuild_that_changed_nothing_writes_nothing(folder):
    before = _stamps(folder)
    assert any(k.startswith("plots/qc/") for k in before)
    build_report(folder)
    assert _stamps(folder) == before


def test_a_changed_sample_redraws_only_its_figures(folder):
    manifest = json.loads((folder / MANIFEST).read_text())["figures"]
    before = _stamps(folder)
    r = load_results(folder)
    chim = r.chimerism
    mine = (chim["patient"].astype(str) == "P01") & (chim["status"] == "quantified")
    row = chim.index[mine][0]  # one population on one day of P01, drawn on both its plots
    for column in ("donor_events", "donor_pct", "ci_low", "ci_high"):
        chim.loc[row, column] = chim.loc[row, column] / 2
    build_report(r, folder)
    after = _stamps(folder)
    changed = sorted(k for k in before if after[k] != before[k])
    assert {"plots/P01_persistence.svg", "plots/P01_chimerism.svg"} <= set(changed)
    assert "plots/P02_persistence.svg" not in changed
    assert not [k for k in changed if k.startswith("plots/qc/")]
    assert "patients/P02.html" not in changed
    drawn = {k for k in changed if k.endswith((".png", ".svg"))}
    assert drawn <= {f for stem in manifest for f in manifest[stem]["files"]}
    # a figure file removed or edited since is drawn again, the others are kept
    victim = folder / "plots" / "P02_chimerism.svg"
    good = victim.read_bytes()
    victim.write_bytes(b"not a png")
    before = _stamps(folder)
    build_report(r, folder)
    assert victim.read_bytes() == good
    after = _stamps(folder)
    changed = sorted(k for k in before if after[k] != before[k] and k != DIGESTS)
    assert changed == ["plots/P02_chimerism.svg"]  # and the digest kept for it


def test_switching_layout_removes_the_other_layouts_pages(folder):
    build_report(folder, single_file=True)
    assert not list((folder / "patients").glob("*.html"))
    assert '<section id="patient-1">' in (folder / "report.html").read_text()
    build_report(folder)
    assert sorted(p.name for p in (folder / "patients").glob("*.html")) == ["P01.html", "P02.html"]


def test_report_command_writes_what_build_report_writes(built, tmp_path, capsys):
    """`cytokit report` writes the bytes `build_report` wrote, and ``--single-file`` the
    page of ``single_file=True``."""
    cli, api = (Path(shutil.copytree(built, tmp_path / name)) for name in ("cli", "api"))
    shutil.rmtree(cli / "patients")
    (cli / "report.html").unlink()
    assert run(["report", str(cli)]) == 0
    assert "a page per patient" in capsys.readouterr().err
    # every file but plots/build.json and plots/digests.json, which record the files' times
    timed = {BUILD_STAMP, DIGESTS}
    mine = {k: (cli / k).read_bytes() for k in _stamps(cli) if k not in timed}
    assert mine == {k: (built / k).read_bytes() for k in _stamps(built) if k not in timed}
    assert run(["report", str(cli), "--single-file"]) == 0
    assert "a page per patient" not in capsys.readouterr().err
    build_report(api, single_file=True)
    assert (cli / "report.html").read_bytes() == (api / "report.html").read_bytes()
    assert not list((cli / "patients").glob("*.html"))


def test_cohort_populations_choose_the_rows_of_a_stratum(built):
    """study.toml ``[report] cohort_populations``: the named stratum shows those populations
    in that order (each as cohort.csv has it), the rest are named below the table."""
    r = load_results(built)
    r.study.setdefault("config", {})["report"] = {"cohort_populations": {"NK": ["NK_dim", "NK"]}}
    html = cohort_table(r.cohort, cohort_populations(r))
    (shown,) = tables(html, "Cohort summary")
    nk = [row for row in shown.rows if row[0] == "NK"]
    assert [row[1] for row in nk] == ["NK_dim", "NK_dim", "NK", "NK"]
    want = r.cohort[(r.cohort["stratum"] == "NK") & r.cohort["population"].isin(["NK", "NK_dim"])]
    assert sorted(row[3] for row in nk) == sorted(str(n) for n in want["n_patients"])
    assert "Not shown for the stratum (study.toml [report] cohort_populations): NK: " in html
    assert "NK_bright" in html.split("Not shown")[1]
    everything = cohort_table(r.cohort)
    (every,) = tables(everything, "Cohort summary")
    assert "Not shown" not in everything and len([x for x in every.rows if x[0] == "NK"]) > 4
    # a stratum the table does not name keeps all its rows
    assert [x for x in shown.rows if x[0] != "NK"] == [x for x in every.rows if x[0] != "NK"]
    r.study["config"]["report"] = {"cohort_populations": {"NK": ["NK", "NKT"]}}
    with pytest.raises(CytokitError, match=r"cohort_populations: NK names 'NKT', not a population"):
        cohort_populations(r)


def test_a_long_infusion_table_is_folded(built):
    """A large study's schedule (here the fixture's, repeated) is folded under its count;
    every row is still in the table."""
    from dataclasses import replace

    import pandas as pd

    from cytokit.report.contents import ReportPlots, patients_of
    from cytokit.report.page import _cohort

    r = load_results(built)
    short = _cohort(r, ReportPlots(), patients_of(r))
    assert "<summary>Infusions" not in short and tables(short, "Infusions")
    many = replace(r, infusions=pd.concat([r.infusions] * 12, ignore_index=True))
    html = _cohort(many, ReportPlots(), patients_of(many))
    assert f"<details><summary>Infusions ({len(many.infusions)})</summary>" in html
    assert len(tables(html, "Infusions")[0].rows) == len(many.infusions) > 20


def test_a_changed_decay_fit_redraws_the_patients_persistence_plot(built):
    """The persistence figures' keys cover trends.csv's fitted line (half_life_slope,
    half_life_phases) and its band (half_life_cov, half_life_quantile): a changed fit
    redraws that patient's plot and no other."""
    from cytokit.report.figures import ReportPlots, _patient_jobs

    r = load_results(built)
    fit = {"half_life_slope", "half_life_phases", "half_life_cov", "half_life_quantile"}
    assert fit <= set(r.trends.columns)

    def keys():
        jobs = {}

        def job(builder, args, kwargs, stem, fmts, put, module="cytokit.plots", **more):
            jobs[stem.name] = _Job(module, builder, args, kwargs, stem, tuple(fmts), put).key()

        _patient_jobs(r, built / "plots", ReportPlots(), job)
        return jobs

    for text in ("half_life_phases", "half_life_cov"):
        r.trends[text] = r.trends[text].astype(object)
    before = keys()
    mine = r.trends.index[r.trends["patient"].astype(str) == "P01"][0]
    for column, value in (
        ("half_life_slope", -0.1),
        ("half_life_phases", "5-20:100"),
        ("half_life_cov", "0.01,-0.001,0.0001"),
        ("half_life_quantile", 2.5),
    ):
        r.trends.loc[mine, column] = value
        after = keys()
        assert [k for k in before if after[k] != before[k]] == ["P01_persistence"], column
        before = after


def test_a_folder_written_before_the_added_columns_still_reports(folder):
    # a results folder of an earlier cytokit: trends.csv without the decay-fit columns and
    # counts.csv without the tube column; loading fills what they stood for then (no fit
    # stored, the default tube) and the report draws no fitted line, instead of refusing
    import pandas as pd

    from cytokit.analysis.results import ADDED_COLUMNS
    from cytokit.analysis.tablesjson import write_index

    index = json.loads((folder / "tables.json").read_text())
    fit = ["half_life_slope", "half_life_phases", "half_life_cov", "half_life_quantile"]
    for name, drop in (("trends.csv", fit), ("counts.csv", ["tube"])):
        path = folder / name
        pd.read_csv(path).drop(columns=drop).to_csv(path, index=False)
    write_index(folder, {e["name"]: e.get("rows") for e in index["files"]})
    old = load_results(folder)
    assert old.trends["half_life_slope"].isna().all()
    assert (old.trends["half_life_phases"].fillna("") == "").all()
    assert (old.trends["half_life_cov"].fillna("") == "").all()
    assert old.trends["half_life_quantile"].isna().all()
    assert (old.counts["tube"] == ADDED_COLUMNS["tube"]).all()
    assert build_report(folder) == folder / "report.html"


def test_an_unchanged_rebuild_reads_no_table(folder, monkeypatch):
    """plots/build.json: with every input and output as the last build left them, a rebuild
    returns without loading the results; a touched input or a removed page takes the full
    path again (which redraws nothing that did not change)."""
    import cytokit.report.build as build

    calls = []
    real = build.load_results
    monkeypatch.setattr(build, "load_results", lambda f: calls.append(f) or real(f))
    before = _stamps(folder)
    assert build_report(folder) == folder / "report.html"
    assert calls == [] and _stamps(folder) == before
    npz = sorted((folder / "qc").glob("*.npz"))[0]
    st = npz.stat()
    os.utime(npz, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, a new time
    build_report(folder)
    assert len(calls) == 1
    after = _stamps(folder)
    changed = sorted(k for k in before if after[k] != before[k])
    assert changed == ["plots/build.json", "plots/digests.json"]  # the npz's new time
    (folder / "patients" / "P02.html").unlink()
    build_report(folder)
    assert len(calls) == 2 and (folder / "patients" / "P02.html").is_file()
    build_report(folder)
    assert len(calls) == 2
    build_report(folder, single_file=True)  # other options: a full build
    assert len(calls) == 3


def test_an_edit_with_its_time_put_back_is_not_an_unchanged_rebuild(folder, tmp_path):
    """A table edited in place to the same size with its modification time put back
    (``touch -r``) is still a change: the rebuild checks the tables against tables.json
    and refuses, instead of taking the shortcut and logging the edited table as read."""
    copy = shutil.copytree(folder, tmp_path / "copy")
    build_report(copy)  # a build of this copy to take the shortcut from
    table = copy / "counts.csv"
    st = table.stat()
    text = table.read_text()
    digits = [i for i, c in enumerate(text) if c in "123456789"]
    i = digits[len(digits) // 2]
    table.write_text(text[:i] + str(int(text[i]) % 9 + 1) + text[i + 1 :])
    os.utime(table, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert table.stat().st_size == st.st_size and table.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(CytokitError, match=r"counts\.csv"):
        build_report(copy)


def test_changed_code_draws_every_figure_again(folder, monkeypatch):
    """The figures' keys and the unchanged-rebuild shortcut cover cytokit's source, not
    only its version number: code that draws differently under the same version (a working
    copy, an unreleased commit) leaves no stale image behind."""
    import json

    import cytokit._source as source
    import cytokit.report.build as build

    def keys():
        figures = json.loads((folder / "plots" / "manifest.json").read_text())["figures"]
        return {name: entry["key"] for name, entry in figures.items()}

    calls = []
    real = build.load_results
    monkeypatch.setattr(build, "load_results", lambda f: calls.append(f) or real(f))
    before = keys()
    assert len(before) >= 5
    monkeypatch.setattr(source, "source_digest", lambda: "0" * 64)
    build_report(folder)
    assert len(calls) == 1  # not the shortcut: the code is not the one of the last build
    after = keys()
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)  # every figure drawn again


def test_a_changed_qc_file_redraws_its_qc_plot_only(folder):
    """The digests of qc/*.npz are kept by size and time (plots/digests.json): a file
    rewritten with other points is read again and its sample's QC plot redrawn."""
    import numpy as np

    npz = sorted((folder / "qc").glob("*.npz"))[0]
    with np.load(npz) as data:
        arrays = {k: (data[k][:-1] if k.startswith("gate:") else data[k]) for k in data.files}
    before = _stamps(folder)
    np.savez(npz, **arrays)
    build_report(folder)
    after = _stamps(folder)
    changed = {k for k in before if after[k] != before[k]}
    qc = {f"plots/qc/{npz.stem}.png", f"plots/qc/{npz.stem}.svg"}
    assert qc <= changed
    assert not {k for k in changed if k.startswith("plots/qc/")} - qc
    digests = json.loads((folder / DIGESTS).read_text())["files"]
    assert digests[f"qc/{npz.name}"][-1] == hashlib.sha256(npz.read_bytes()).hexdigest()


def test_pages_and_qc_plots_are_built_without_matplotlib(folder):
    """The report's own process writes the pages and draws the QC plots; matplotlib is
    imported only by the workers drawing the other figures (its import is a third of a
    second the small report's critical path does not pay twice)."""
    qc_png = sorted((folder / "plots" / "qc").glob("*.png"))[0]
    qc_png.unlink()  # one QC plot to draw again here; the other figures are kept
    script = (
        "import sys\n"
        "from cytokit.report.build import build_report\n"
        f"build_report({str(folder)!r})\n"
        "print('matplotlib' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
    assert qc_png.is_file()


def test_a_build_on_worker_processes_writes_what_a_serial_build_writes(
    built, tmp_path, monkeypatch
):
    """A large study's figures are drawn by worker processes; the pages, which inline each
    QC plot's SVG, are written once those are drawn, and every page and figure is the
    serial build's, byte for byte."""
    import cytokit.report.figures as figures

    copy = Path(shutil.copytree(built, tmp_path / "r"))
    shutil.rmtree(copy / "plots")
    monkeypatch.setattr(figures, "_POOL_MIN_JOBS", 1)  # workers for this small study too
    monkeypatch.setattr("cytokit.engine._workers.default_workers", lambda: 2)
    build_report(copy)
    for page in [built / "report.html", *(built / "patients").glob("*.html")]:
        text = (copy / page.relative_to(built)).read_text(encoding="utf-8")
        assert text == page.read_text(encoding="utf-8"), page.name
    pages = "".join(p.read_text(encoding="utf-8") for p in (copy / "patients").glob("*.html"))
    assert pages.count('<figure class="qc">') == len(list((copy / "plots" / "qc").glob("*.svg")))
    assert "could not be drawn" not in pages
    for fig in (built / "plots").rglob("*.*"):
        if fig.suffix in (".png", ".svg"):
            assert (copy / fig.relative_to(built)).read_bytes() == fig.read_bytes(), fig.name


def test_sorted_by_and_patient_rows_match_pandas():
    """The report's fast paths (numpy's stable sort, tables split by patient once) give the
    rows and order pandas gives, missing days and all."""
    import numpy as np
    import pandas as pd

    from cytokit.report.tables import patient_rows, sorted_by, split_by_patient

    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({
        "patient": rng.choice(["P1", "P2", "P10", 7], n),
        "day": rng.choice([-7, 0, 3.5, 14, np.nan], n),
        "file": rng.choice(["b.fcs", "a.fcs", "c.fcs"], n),
        "marker": rng.choice(["CD3", "HLA-A2"], n).astype(object),
        "count": rng.integers(0, 5, n),
    })  # fmt: skip
    frame.loc[::37, "marker"] = np.nan  # a missing text value: pandas' own sort
    for keys in (("day",), ("day", "file"), ("day", "marker"), ("day", "count"), ("file",)):
        slow = frame.assign(_day=pd.to_numeric(frame["day"], errors="coerce"))
        slow = slow.sort_values(["_day" if k == "day" else k for k in keys], kind="stable")
        assert sorted_by(frame, *keys).index.tolist() == slow.index.tolist(), keys
    with split_by_patient():
        for pid in ("P1", "P2", "P10", "7", "P99"):
            want = frame[frame["patient"].astype(str) == pid]
            assert patient_rows(frame, pid).index.tolist() == want.index.tolist()
            assert patient_rows(frame, pid).columns.tolist() == frame.columns.tolist()


def test_a_qc_figure_whose_svg_is_gone_is_shown_as_its_png_and_said_so(built, tmp_path):
    """The pages are written while the figures are drawn, with a mark where each QC
    figure goes; the marks are resolved once the figures are there, the same text as
    when the page reads the figure directly (here: its SVG unreadable, the PNG shown)."""
    from cytokit.report.qcplots import qc_figure_html, qc_figures_later, resolve_qc_figures

    qc = built / "plots" / "qc"
    png = sorted(qc.glob("*.png"))[0]
    direct = qc_figure_html(png, "a.fcs")
    assert direct.startswith('<figure class="qc">')
    with qc_figures_later() as later:
        marked = f"<p>{qc_figure_html(png, 'a.fcs')}</p>"
    assert "\x00" in marked and "<svg" not in marked
    assert resolve_qc_figures(marked, later) == f"<p>{direct}</p>"
    # only this build's marks: text that looks like one (from a file, say) stays as it is
    forged = marked.replace(later.nonce, "0" * len(later.nonce))
    assert resolve_qc_figures(forged, later) == forged
    copy = tmp_path / png.name
    shutil.copy(png, copy)  # no SVG beside it
    with qc_figures_later() as later:
        marked = qc_figure_html(copy, "a.fcs")
    shown = resolve_qc_figures(marked, later)
    assert shown == qc_figure_html(copy, "a.fcs")
    assert "could not be drawn" in shown and "<img" in shown
