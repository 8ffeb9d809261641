"""MkDocs hooks of cytokit's documentation (named in mkdocs.yml; not a page).

* ``on_config``: the API reference is read from the source, and the source is
  not laid out as it imports (``kernels/`` is ``cytokit.kernels``, see
  ``[tool.setuptools.package-dir]`` in pyproject.toml). A temporary folder
  holds ``cytokit/`` as it is installed, made of links to the real files,
  and mkdocstrings reads from there.
* ``on_page_markdown``: the output-tables page is generated from the results
  contract (the docstring of `cytokit.analysis.results`, its ``TABLES``
  columns and the clinical tables' ``TABLE_COLUMNS``) and the docstrings of
  the modules that define further tables, so it cannot drift from the code;
  a table in ``TABLES`` that the contract does not describe fails the build.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
#: The placeholder of docs/tables.md that the generated contract replaces.
CONTRACT = "<!-- results contract -->"
#: ``<!-- docstring: cytokit.module -->``: that module's docstring, as Markdown.
DOCSTRING = re.compile(r"<!-- docstring: ([\w.]+) -->")
_overlay: list[Path] = []


def installed_layout(dest: Path) -> Path:
    """``dest/cytokit``: links to the package's files, each package where it imports."""
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["package-dir"]
    root = dest / "cytokit"
    root.mkdir(parents=True)
    for child in (REPO / dirs["cytokit"]).iterdir():
        if child.name != "__pycache__":
            (root / child.name).symlink_to(child, target_is_directory=child.is_dir())
    for package, folder in dirs.items():
        parts = package.split(".")
        if len(parts) == 2 and not (root / parts[1]).exists():
            (root / parts[1]).symlink_to(REPO / folder, target_is_directory=True)
    return dest


@event_priority(100)  # before mkdocstrings reads its handler's paths
def on_config(config):
    dest = Path(tempfile.mkdtemp(prefix="cytokit-docs-"))
    _overlay.append(dest)
    installed_layout(dest)
    handlers = config.plugins["mkdocstrings"].config.handlers
    handlers.setdefault("python", {})["paths"] = [str(dest)]
    return config


def on_shutdown():
    while _overlay:
        shutil.rmtree(_overlay.pop(), ignore_errors=True)


def contract_entries(doc: str) -> tuple[str, list[tuple[list[str], str]]]:
    """The introduction and the (file names, description) entries of the results contract.

    The contract is the part of the module docstring after its underlined
    "Results contract" title: paragraphs, then entries whose first line names
    the files (````name.csv````, ...) and whose indented lines describe them.
    """
    lines = textwrap.dedent(doc).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Results contract"))
    except StopIteration:
        raise PluginError("cytokit.analysis.results: no 'Results contract' section") from None
    intro: list[str] = []
    entries: list[tuple[list[str], list[str]]] = []
    for line in lines[start + 2 :]:
        if line.startswith("``"):
            names = [part.strip("`, ") for part in line.split("``")[1::2]]
            entries.append((names, []))
        elif entries and (line.startswith(" ") or not line.strip()):
            entries[-1][1].append(line)
        elif not entries:
            intro.append(line)
        else:
            raise PluginError(f"cytokit.analysis.results: contract line not understood: {line!r}")
    return "\n".join(intro).strip(), [
        (names, textwrap.dedent("\n".join(body)).strip()) for names, body in entries
    ]


def contract_markdown() -> str:
    """The output-tables section: every file of the contract, its description and columns."""
    from cytokit.analysis import results
    from cytokit.clinical.tables import TABLE_COLUMNS

    intro, entries = contract_entries(results.__doc__ or "")
    columns = {**{k: v for k, v in TABLE_COLUMNS.items()}, **results.TABLES}
    described = {name.removesuffix(".csv") for names, _ in entries for name in names}
    missing = sorted(set(results.TABLES) - described | set(results.CLINICAL_TABLES) - described)
    if missing:
        raise PluginError(
            f"the results contract (cytokit.analysis.results) does not describe the table(s) "
            f"{', '.join(missing)}: add them to its docstring"
        )
    out = [intro, ""]
    for names, body in entries:
        out += ["### " + ", ".join(f"`{n}`" for n in names), "", body, ""]
        for name in names:
            stem = name.removesuffix(".csv")
            cols = columns.get(stem)
            if cols:
                # the column types, where the contract states them (COLUMN_TYPES)
                types = getattr(results, "COLUMN_TYPES", {}).get(stem, {})
                listed = ", ".join(f"`{c}`" + (f" ({types[c]})" if c in types else "")
                                   for c in cols)  # fmt: skip
                out += [f"Columns of `{name}`, in order: {listed}.", ""]
    return "\n".join(out)


def module_docstring(name: str) -> str:
    """The docstring of module `name`, dedented (its first line kept as written)."""
    doc = importlib.import_module(name).__doc__
    if not doc:
        raise PluginError(f"module {name} has no docstring to show")
    first, _, rest = doc.partition("\n")
    return (first.strip() + "\n" + textwrap.dedent(rest)).strip()


def on_page_markdown(markdown, page, config, files):
    if CONTRACT in markdown:
        markdown = markdown.replace(CONTRACT, contract_markdown())
    return DOCSTRING.sub(lambda m: module_docstring(m.group(1)), markdown)
