"""A built wheel works without the repository: ``pip install`` it, then ``cytokit demo``.

The wheel is built from the repository's tracked files (a clean copy, as a
release would be, with no stale ``build/`` folder), installed into a new
virtual environment, and ``cytokit demo`` runs from a folder outside any
checkout. The demo's tables must be the checkout's: the sample study travels
inside the wheel as package data (``cytokit/sample_data``).

Offline and quick: the new environment gets no packages from an index.
Instead, every distribution the wheel *declares* it needs (its
``Requires-Dist`` without extras, followed recursively) is linked into the
environment from the one running the tests, and nothing else is; a
dependency that cytokit imports but the wheel does not declare is missing
there, and the demo fails. A full install from the index took about
3 minutes on the 2-core CI machine, this about 1.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest
from fs_helpers import copy_tracked
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
DIST = "cytokit-flow"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_closure(requires: list[str]) -> dict[str, md.Distribution]:
    """The installed distributions that `requires` needs (no extras), recursively."""
    env = {"extra": ""}
    found: dict[str, md.Distribution] = {}
    todo = [Requirement(r) for r in requires]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        key = _norm(req.name)
        if key in found:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            pytest.fail(f"the wheel needs {req}, which the test environment does not have")
        assert req.specifier.contains(dist.version, prereleases=True), (
            f"the wheel needs {req}; the test environment has {dist.version}"
        )
        found[key] = dist
        todo.extend(Requirement(r) for r in dist.requires or ())
    return found


def _link_distribution(dist: md.Distribution, site: Path) -> None:
    """Link a distribution's top-level files and folders (code and its dist-info) into `site`."""
    origin = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
    for top in tops:
        src, dst = origin / top, site / top
        if src.exists() and not dst.exists() and not top.endswith(".pth"):
            dst.symlink_to(src, target_is_directory=src.is_dir())


def _wheel_requires(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]  # fmt: skip


@pytest.mark.slow
def test_wheel_demo_outside_the_checkout(tmp_path):
    # the checkout's demo, for the numbers to compare with: started first, it runs beside
    # the build and the wheel's Numba compilation (one core each)
    checkout = subprocess.Popen(
        [sys.executable, "-m", "cytokit.cli.app", "demo", "--out", str(tmp_path / "checkout"),
         "--workers", "1", "--no-report"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wheel_demo(tmp_path)
    finally:
        _, err = checkout.communicate(timeout=900)
    assert checkout.returncode == 0, err[-3000:]
    out = tmp_path / "elsewhere" / "demo-out"
    wheel_counts = pd.read_csv(out / "counts.csv", dtype={"patient": str})
    checkout_counts = pd.read_csv(tmp_path / "checkout" / "counts.csv", dtype={"patient": str})
    assert len(wheel_counts) > 15 * 5
    pd.testing.assert_frame_equal(wheel_counts, checkout_counts)


def _wheel_demo(tmp_path: Path) -> None:
    """Build the wheel, install it in a new environment, run its demo outside the checkout."""
    source = copy_tracked(tmp_path / "source")
    wheels = tmp_path / "wheels"
    # no build isolation: setuptools and wheel come from the dev extra, so no index is needed
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("cytokit_flow-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / Path(sys.executable).name
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    assert site != Path(sysconfig.get_path("purelib"))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    for dist in _declared_closure(_wheel_requires(wheel)).values():
        _link_distribution(dist, site)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=os.pathsep.join([str(bindir), env.get("PATH", "")]), MPLBACKEND="Agg")
    where = subprocess.run(
        [str(python), "-c", "import cytokit; print(cytokit.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(site), f"cytokit imported from {where}, not the wheel"

    shipped = site / "cytokit" / "sample_data"
    before = sorted((str(f.relative_to(shipped)), f.stat().st_size) for f in shipped.rglob("*"))
    assert ("study.toml", (REPO / "sample_data" / "study.toml").stat().st_size) in before

    # every file of the sample study, its FCS files and truth folder too, is in the wheel
    def files(root: Path) -> list[str]:
        return sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())

    assert files(shipped) == files(source / "sample_data")
    demo = subprocess.run(
        [str(bindir / "cytokit"), "demo", "--out", "demo-out", "--workers", "2"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "15 of 15 file(s) analysed, 0 failed" in demo.stderr
    out = elsewhere / "demo-out"
    for name in ("report.html", "counts.csv", "chimerism.csv", "trends.csv", "tables.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert any((out / "plots").iterdir())
    # the installed study is only read (site-packages may be read-only)
    after = sorted((str(f.relative_to(shipped)), f.stat().st_size) for f in shipped.rglob("*"))
    assert after == before


def test_demo_finds_the_study_of_a_wheel_or_a_checkout(tmp_path, monkeypatch):
    import cytokit
    from cytokit.cli.demo import sample_data_dir
    from cytokit.errors import StudyError

    package = tmp_path / "site" / "cytokit"
    package.mkdir(parents=True)
    monkeypatch.setattr(cytokit, "__file__", str(package / "__init__.py"))
    with pytest.raises(StudyError, match=r"sample study is neither in .*site/cytokit/sample_data"):
        sample_data_dir()
    (tmp_path / "site" / "sample_data").mkdir()
    (tmp_path / "site" / "sample_data" / "study.toml").write_text("")
    assert sample_data_dir() == tmp_path / "site" / "sample_data"  # a checkout's layout
    (package / "sample_data").mkdir()
    (package / "sample_data" / "study.toml").write_text("")
    assert sample_data_dir() == package / "sample_data"  # the wheel's comes first
