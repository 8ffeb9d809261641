"""The documentation (mkdocs.yml, docs/): it builds with no warning, the API reference
has every public name, and the guides' examples run as written.

* The build is ``mkdocs build --strict`` (a warning fails it: a broken link or
  anchor, a docstring mkdocstrings cannot read, an object it cannot find).
* Every name in ``__all__`` of `cytokit`, `cytokit.gating`, `cytokit.kernels`,
  `cytokit.cluster`, and of the other public packages (`cytokit.qc`,
  `cytokit.simulate`, `cytokit.clinical`, `cytokit.plots`) must have its own
  entry (an HTML anchor named by its path) in the built site: a public name
  added later is checked without any change here.
* Every fenced block of docs/*.md tagged ``python`` runs: the blocks of a page
  in order, as one script (a page's examples follow one another; each block
  on its own lines of the page, so a traceback names the page's line) pasted
  into Python's standard input, as `tests/test_readme.py` runs the README's,
  in a folder that holds the sample study as ``sample_data/``. ``text`` blocks are shown, ``toml`` blocks must parse, and a block
  with another tag, or none, fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from test_readme import fenced_blocks

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PUBLIC = (
    "cytokit", "cytokit.gating", "cytokit.kernels", "cytokit.cluster",
    "cytokit.qc", "cytokit.simulate", "cytokit.clinical", "cytokit.plots",
)  # fmt: skip
RUN, SHOWN = {"python"}, {"text", "toml"}
PAGES = sorted(DOCS.glob("*.md"))


def _page_id(path: Path) -> str:
    return path.name


def test_every_docs_block_is_tagged():
    for page in PAGES:
        for line, tag, code in fenced_blocks(page.read_text(encoding="utf-8")):
            assert tag in RUN | SHOWN, (
                f"docs/{page.name} line {line}: a block tagged {tag!r}; tag it python, text or toml"
            )
            if tag == "toml":
                try:
                    tomllib.loads(code)
                except tomllib.TOMLDecodeError as exc:
                    pytest.fail(
                        f"docs/{page.name} line {line}: the toml block does not parse: {exc}"
                    )
    assert sum(tag == "python" for p in PAGES for _, tag, _ in fenced_blocks(p.read_text())) >= 10


def test_the_guides_call_analyze_under_a_main_guard():
    """analyze's worker processes import the calling script again: an example pasted into
    a script stops ("worker processes keep dying") unless the call sits under
    ``if __name__ == "__main__":``, so the examples show the guard themselves."""
    calls = 0
    for page in PAGES:
        for start, tag, code in fenced_blocks(page.read_text(encoding="utf-8")):
            if tag != "python":
                continue
            guard = None  # the guard's indentation while inside it
            for k, text in enumerate(code.splitlines()):
                indent = len(text) - len(text.lstrip())
                if text.strip().startswith('if __name__ == "__main__":'):
                    guard = indent
                elif text.strip() and guard is not None and indent <= guard:
                    guard = None
                if re.search(r"\banalyze\(", text.split("#")[0]):
                    calls += 1
                    assert guard is not None, (
                        f"docs/{page.name} line {start + k + 1}: analyze is called outside "
                        '`if __name__ == "__main__":`; put the call under the guard'
                    )
    assert calls >= 1


def test_the_contract_page_covers_every_table():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e .[docs])")
    spec = importlib.util.spec_from_file_location("cytokit_docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    from cytokit.analysis.results import CLINICAL_TABLES, TABLES

    page = hooks.contract_markdown()
    for name in (*TABLES, *CLINICAL_TABLES):
        assert f"`{name}.csv`" in page, name
    for name, columns in TABLES.items():
        if columns:
            head = f"Columns of `{name}.csv`, in order: "
            (line,) = [line for line in page.splitlines() if line.startswith(head)]
            assert re.findall(r"`([^`]+)`", line[len(head) :]) == list(columns), name
    intro, entries = hooks.contract_entries(
        "T\n\nResults contract\n----------------\nIntro.\n\n``a.csv``, ``b.csv``\n    One row.\n"
        "    Two.\n``c.csv``\n    C.\n"
    )
    assert intro == "Intro." and entries == [
        (["a.csv", "b.csv"], "One row.\nTwo."),
        (["c.csv"], "C."),
    ]


def _anchors(site: Path) -> set[str]:
    ids: set[str] = set()
    for page in site.rglob("*.html"):
        ids.update(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
    return ids


@pytest.mark.slow
def test_docs_build_strict_with_every_public_name(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e .[docs])")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings-python missing")
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
         "-d", str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-4000:]
    assert "WARNING" not in output, output[-4000:]
    ids = _anchors(site)
    missing = []
    for module_name in PUBLIC:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if f"{module_name}.{name}" in ids:
                continue
            # a function documented where it is defined, when a submodule has its name
            obj = getattr(module, name)
            if f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}" not in ids:
                missing.append(f"{module_name}.{name}")
    assert not missing, (
        f"not in the built API reference: {missing}. The reference is read from the source "
        "(griffe): a name its package loads lazily needs an import under `if TYPE_CHECKING:` "
        "in the package's __init__.py; a name shadowed by a submodule of the same name needs "
        "its own `::: module.name` entry in docs/api/"
    )
    assert (site / "tables" / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if "```python" in p.read_text()], ids=_page_id)
def test_docs_examples_run(page, tmp_path):
    text = page.read_text(encoding="utf-8")
    # one script with each block on its own lines of the page: a traceback names the page's line
    lines = [""] * len(text.splitlines())
    for start, tag, block in fenced_blocks(text):
        if tag == "python":
            for k, line in enumerate(block.splitlines()):
                lines[start + k] = line
    script = "\n".join(lines) + "\n"
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data", target_is_directory=True)
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-"], input=script, cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"docs/{page.name}: an example failed (<stdin>'s line numbers are the page's):"
        f"\n{done.stderr[-4000:]}"
    )
