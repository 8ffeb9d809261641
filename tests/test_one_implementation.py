"""Each shared idea is implemented once: helpers with one name are defined in one module."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import cytokit.engine.runner
import cytokit.simulate
from cytokit._cores import default_workers

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cytokit", "gating", "kernels", "cli")


def _definitions() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    where.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return where


@pytest.mark.parametrize("name", ["default_workers", "figure_bytes", "cluster_tables"])
def test_a_shared_helper_is_defined_once(name):
    assert len(_definitions().get(name, [])) <= 1, _definitions()[name]


@pytest.mark.parametrize(
    "code, home",
    [
        (".savefig(", "cytokit/_figures.py"),  # rendering a figure to bytes
        ("sched_getaffinity", "cytokit/_cores.py"),  # counting the usable cores
        ("np.convolve", "cytokit/stats/density.py"),  # kernel smoothing
        ("1.349", "cytokit/stats/density.py"),  # Silverman's robust spread
    ],
)
def test_one_idea_is_written_in_one_module(code, home):
    found = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if code in path.read_text(encoding="utf-8")
    )
    assert found == [home]


def test_default_workers_is_the_affinity_of_the_process_capped_on_request():
    cores = len(os.sched_getaffinity(0))
    assert default_workers() == cores
    assert default_workers(1) == 1
    assert default_workers(cores + 3) == cores
    assert cytokit.simulate.default_workers is cytokit.engine.runner.default_workers
