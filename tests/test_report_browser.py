"""The report opened in a real browser (headless Chromium): its index, a patient's page
and the single-file page load with no console error, ask for nothing outside the results
folder (no network at all), and every image decodes (lazy ones are asked for). Skipped
where Chromium is not installed (Debian: apt-get install chromium)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from browser import find_chromium, visit
from results_fixture import make_results

from cytokit.report import build_report

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium here (Debian package `chromium`): browser check not run"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = make_results(
        tmp_path_factory.mktemp("results"), keep=lambda p, d: p in ("P01", "P02") and d <= 30
    )
    return build_report(out)


def _inside(url: str, folder: Path) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "data":
        return True
    if parsed.scheme != "file":
        return False
    return Path(unquote(parsed.path)).resolve().is_relative_to(folder.resolve())


@pytest.mark.parametrize("page", ["report.html", "patients/P02.html", "single-file"])
def test_report_loads_clean_in_chromium(report, page, tmp_path):
    if page == "single-file":
        root = shutil.copytree(report.parent, tmp_path / "single")
        path = build_report(root, single_file=True)
    else:
        root, path = report.parent, report.parent / page
    seen = visit(path, browser=BROWSER)
    assert seen.console_errors == []
    outside = [u for u in seen.requests if not _inside(u, root)]
    assert outside == [], f"requests outside the results folder: {outside[:5]}"
    assert seen.images, "the report shows no image"
    broken = [i["src"] for i in seen.images if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    files = [i["src"] for i in seen.images if not i["src"].startswith("data:")]
    if page == "single-file":
        assert files == []
    else:  # images are files of the folder, and the browser asked for each of them
        asked = [u for u in seen.requests if u.endswith((".png", ".svg"))]
        assert files and len(asked) == len(files)


def test_browser_check_sees_a_broken_image_and_an_external_request(report, tmp_path):
    # the check itself must be able to fail: a page with a missing image and a web font
    page = report.parent / "_probe.html"
    page.write_text(
        '<!doctype html><html><head><meta charset="utf-8"><title>p</title>'
        '<link rel="stylesheet" href="http://192.0.2.1/x.css"></head>'
        '<body><img src="plots/no-such.png" alt="x"></body></html>',
        encoding="utf-8",
    )
    try:
        seen = visit(page, browser=BROWSER)
    finally:
        page.unlink()
    assert any(not _inside(u, report.parent) for u in seen.requests)
    assert [i for i in seen.images if i["width"] == 0]
    assert seen.console_errors  # the failed loads are reported
