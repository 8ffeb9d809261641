"""The package's layering, read from the source: every import, including those inside functions.

The rules (docs/architecture.md explains them):

* no cycle between modules;
* ``kernels`` imports nothing of cytokit but itself;
* the base layer imports only itself and ``kernels``; ``gating`` imports of
  the rest of cytokit only the base layer;
* inside ``cytokit/``, a stage imports only its own or earlier stages (read →
  study → engine → analysis → report);
* ``cli`` stays thin: it reaches the library through public modules only and
  no command module grows past `CLI_MAX_LINES`;
* every package of the tree is listed in pyproject.toml, so a wheel holds it.

Imports inside ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: What ``gating`` may import of cytokit: exceptions, `Sample`, file helpers, FCS
#: reading (FlowJo import reads keywords to match samples to files) and the
#: numeric estimators. The base layer itself imports only these and ``kernels``.
BASE = (
    "cytokit._cores",
    "cytokit._figures",
    "cytokit._lazy",
    "cytokit._version",
    "cytokit._source",
    "cytokit.errors",
    "cytokit.sample",
    "cytokit._io",
    "cytokit._paths",
    "cytokit._outdir",
    "cytokit._numbers",
    "cytokit.parquet",
    "cytokit.finite",
    "cytokit.fcs",
    "cytokit.stats",
)

#: The stages in data order; a module may import its own stage or an earlier one.
#: Packages beside the main line sit at the stage of what they need: ``qc`` and
#: ``simulate`` need only the base layer, ``cluster`` reads the study's
#: ``[clustering]`` settings, ``plots`` and ``clinical`` read analysis tables.
STAGES = (
    ("cytokit.kernels",),
    BASE,
    ("cytokit.gating", "cytokit.qc", "cytokit.simulate"),
    # the clinical files' readers need only the study's table reader: the study loads them
    (
        "cytokit.study",
        "cytokit.clinical.treatments",
        "cytokit.clinical.outcomes",
        "cytokit.clinical.settings",
    ),
    ("cytokit.engine", "cytokit.cluster"),
    # the outcome tables are built beside the study tables, from the trends' persistence
    ("cytokit.analysis", "cytokit.clinical"),
    ("cytokit.plots",),
    ("cytokit.report",),
    ("cytokit", "cytokit.cli"),
)

#: A command module parses options, calls one library function and prints; the
#: longest (``cytokit gate``: argument rules, summary line, failures) is ~200 lines.
CLI_MAX_LINES = 250

#: Imports that close a cycle and are kept on purpose, each with its reason.
CYCLE_ALLOWED = {
    # GatingStrategy.to_gatingml (public API, used by tests and benchmarks) hands the
    # strategy to the Gating-ML writer, imported when the method is called; the writer
    # needs the class it writes. Removing the method would break the API.
    ("cytokit.gating.strategy", "cytokit.gating.gatingml.write"),
}


def _sources() -> dict[str, Path]:
    """Module name -> file, for every module of the installed package tree."""
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    mapped = {folder for pkg, folder in dirs.items() if pkg != "cytokit"}
    out = {}
    for pkg, folder in dirs.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base)
            if pkg == "cytokit" and rel.parts[0] in mapped:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([pkg, *parts])] = path
    return out


MODULES = _sources()


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(name: str, path: Path) -> set[str]:
    """The cytokit modules `name` imports anywhere in its body (not under TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return {m for m in found if m == "cytokit" or m.startswith("cytokit.")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _stage(module: str) -> int:
    # the most specific prefix decides: cytokit.study.panel is "cytokit.study", not "cytokit"
    best, rank = -1, -1
    for i, prefixes in enumerate(STAGES):
        for p in prefixes:
            if _within(module, (p,)) and len(p) > best:
                best, rank = len(p), i
    return rank


def _edges(source_prefixes, target_filter):
    return sorted(
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if _within(m, source_prefixes)
        for t in targets
        if target_filter(m, t)
    )


def test_the_graph_is_read():
    """The reader sees the tree (a broken reader would pass every rule below)."""
    assert len(MODULES) > 150
    assert "cytokit.kernels.fused" in MODULES and "cytokit.cli.app" in MODULES
    assert "cytokit.gating.yamlfmt.reader" in GRAPH["cytokit.gating.io"]
    # a function-level import is seen
    assert "cytokit.fcs" in GRAPH["cytokit.gating.flowjo.match"]
    # one under TYPE_CHECKING is not
    assert "cytokit.analysis.run" not in GRAPH["cytokit"]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                connect(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_cycle_finder_finds_a_cycle():
    for edge in CYCLE_ALLOWED:  # an allowed edge that no longer exists must go from the list
        assert edge[1] in GRAPH[edge[0]], f"{edge} is allowed but no longer imported"
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    # a package importing its own submodules is not a cycle; a submodule importing its
    # package's __init__ back (for a name it re-exports) would be
    graph = {m: {t for t in ts if (m, t) not in CYCLE_ALLOWED} for m, ts in GRAPH.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_kernels_import_nothing_of_cytokit():
    bad = _edges(("cytokit.kernels",), lambda m, t: not _within(t, ("cytokit.kernels",)))
    assert not bad, "\n".join(bad)


def test_base_layer_imports_only_itself_and_kernels():
    bad = _edges(BASE, lambda m, t: not _within(t, (*BASE, "cytokit.kernels")))
    assert not bad, "\n".join(bad)


def test_gating_imports_only_the_base_layer():
    allowed = (*BASE, "cytokit.kernels", "cytokit.gating")
    bad = _edges(("cytokit.gating",), lambda m, t: not _within(t, allowed))
    assert not bad, "\n".join(bad)


def test_stages_import_only_earlier_stages():
    unplaced = sorted(m for m in MODULES if _stage(m) < 0)
    assert not unplaced, f"modules in no stage of STAGES: {unplaced}"
    bad = _edges(("cytokit",), lambda m, t: _stage(t) > _stage(m))
    assert not bad, "\n".join(bad)


def test_cli_is_thin():
    """Commands reach the library through public modules and stay short."""
    private = _edges(
        ("cytokit.cli",),
        lambda m, t: (
            not _within(t, ("cytokit.cli",)) and any(part.startswith("_") for part in t.split("."))
        ),
    )
    assert not private, "cli imports private modules:\n" + "\n".join(private)
    long = {
        name: n
        for name, path in MODULES.items()
        if _within(name, ("cytokit.cli",))
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > CLI_MAX_LINES
    }
    assert not long, f"cli modules over {CLI_MAX_LINES} lines (move the logic out): {long}"


def test_every_package_is_in_pyproject():
    """A wheel holds exactly the packages pyproject.toml lists: every folder with an __init__."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    tree = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    # data only (the sample study, shipped for `cytokit demo`): a folder of its own in
    # package-dir, with package data and not one module, and its data folders (each a
    # package of its own to setuptools, which otherwise warns that it will ignore them)
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    data = set()
    for pkg, folder in dirs.items():
        root = ROOT / folder
        if root.is_dir() and not any(root.rglob("*.py")):
            data.add(pkg)
            data |= {
                ".".join((pkg, *sub.relative_to(root).parts))
                for sub in root.rglob("*")
                if sub.is_dir() and "__pycache__" not in sub.parts
            }
    assert data <= set(PYPROJECT["tool"]["setuptools"]["package-data"]), data
    assert data <= listed, f"data folders missing from [tool.setuptools] packages: {data - listed}"
    assert tree - listed == set(), f"missing from [tool.setuptools] packages: {tree - listed}"
    assert listed - tree - data == set(), f"listed but not in the tree: {listed - tree - data}"


def test_source_digest_covers_every_module_of_every_package():
    """`cytokit._source.source_digest` keys the report's figures on the code: it must read
    every module of every package pyproject.toml maps, the folders beside ``cytokit/``
    included, each once."""
    from cytokit._source import source_files

    names = [name for name, _ in source_files()]
    assert len(names) == len(set(names))
    paths = {path for _, path in source_files()}
    assert len(paths) == len(names)
    want = set(_sources().values())
    assert {p.resolve() for p in want} <= paths
    assert len(paths) == len(want)


#: What the repository's root holds: the fixed layout (docs/architecture.md) and its
#: documentation, benchmarks, CI and configuration; a scratch file (a log, a traceback)
#: committed there by mistake is not part of the project.
ROOT_ENTRIES = {
    ".ci", ".gitignore", "README.md", "benchmarks", "cli", "cytokit", "docs", "gating",
    "kernels", "mkdocs.yml", "pyproject.toml", "sample_data", "tests",
}  # fmt: skip


def test_the_root_holds_only_the_project_layout():
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    listed = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode("utf-8", "surrogateescape")
    top = {name.split("/", 1)[0] for name in listed.split("\0") if name}
    assert top - ROOT_ENTRIES == set(), f"unexpected at the repository root: {top - ROOT_ENTRIES}"
