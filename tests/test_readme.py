"""README.md's code blocks run as written, in a clean copy of the repository.

Every fenced block of README.md tagged ``bash``, ``sh``, ``shell`` or ``python``
is run, in the README's order, in one copy of the repository's tracked files
(no build products, no results of earlier runs), from the copy's root as a
reader would: shell blocks with ``bash -e``, Python blocks pasted into this
interpreter (on its standard input, so the current folder leads ``sys.path``).
A block added to the README is run by this test without any change here.
Blocks tagged ``text`` are shown, not run; blocks tagged ``toml`` (study.toml
snippets) must parse as TOML; a block with no tag, or another one, fails the
test (say which it is).

What stands in for the reader's setup:

* The virtual environment and ``pip install -e ".[dev]"`` of "Start here" are
  this test's environment: those commands are dropped from their ``&&``
  chains and the environment's ``bin`` folder leads ``PATH``, so the
  ``cytokit`` and ``pytest`` commands are the ones installed here (and
  ``cytokit demo`` analyses the installed checkout's ``sample_data/``).
* ``pytest`` alone (the suite) only collects in the copy
  (``pytest --collect-only -q``): this run is the suite, and running it inside
  itself would recurse; collecting checks that it imports from a clean copy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fs_helpers import copy_tracked

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RUN = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python"}
SHOWN = {"text", "toml"}
#: Setup steps that this test's environment stands for (see the module docstring).
SETUP = (re.compile(r"^python3? -m venv \S+$"), re.compile(r"^\. \S*/bin/activate$"),
         re.compile(r"^pip install .*$"))  # fmt: skip
#: Seconds a block may take (the tour analyses two studies on a shared machine).
TIMEOUT = 1800


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, tag, code) of every fenced block of a Markdown text."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(`{3,}|~{3,})\s*(\S*)", lines[i])
        if m is None:
            i += 1
            continue
        fence, tag, start = m.group(1), m.group(2).lower(), i + 1
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            i += 1
        out.append((start, tag, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return out


def as_run_here(code: str) -> str:
    """A shell block with the setup steps dropped and the suite only collected."""
    out = []
    for line in code.splitlines():
        parts = [p.strip() for p in line.split("&&")]
        kept = [p for p in parts if not any(s.match(p) for s in SETUP)]
        kept = ["pytest --collect-only -q" if p == "pytest" else p for p in kept]
        if kept or not line.strip():
            out.append(" && ".join(kept))
    return "\n".join(out) + "\n"


def test_readme_blocks_are_tagged():
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    untagged = [(line, tag) for line, tag, _ in blocks if tag not in RUN and tag not in SHOWN]
    assert not untagged, (
        f"README.md blocks at lines {untagged}: tag each bash, python, toml or text"
    )
    for line, tag, code in blocks:
        if tag == "toml":
            try:
                tomllib.loads(code)
            except tomllib.TOMLDecodeError as exc:
                pytest.fail(f"README.md line {line}: the toml block does not parse: {exc}")
    kinds = [RUN[tag] for _, tag, _ in blocks if tag in RUN]
    assert kinds.count("shell") >= 3 and kinds.count("python") >= 1


def test_setup_steps_are_what_is_replaced():
    start = (
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && cytokit demo'
    )
    assert as_run_here(start) == "cytokit demo\n"
    assert as_run_here("pytest\n") == "pytest --collect-only -q\n"
    assert as_run_here("cytokit report results/   # x\n") == "cytokit report results/   # x\n"


@pytest.mark.slow
def test_readme_code_blocks_run_in_a_clean_checkout(tmp_path):
    copy = copy_tracked(tmp_path / "checkout")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    blocks = [b for b in fenced_blocks((copy / "README.md").read_text(encoding="utf-8"))]
    ran = 0
    for line, tag, code in blocks:
        if tag not in RUN:
            continue
        if RUN[tag] == "python":
            cmd, stdin = [sys.executable, "-"], code
        else:
            script = tmp_path / f"readme_line{line}.sh"
            script.write_text(as_run_here(code), encoding="utf-8")
            cmd, stdin = ["bash", "-e", "-o", "pipefail", str(script)], None
        done = subprocess.run(
            cmd, cwd=copy, env=env, input=stdin, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert done.returncode == 0, (
            f"README.md block at line {line} ({tag}) failed with exit code "
            f"{done.returncode}:\n{code}\n--- stderr ---\n{done.stderr[-3000:]}"
        )
        ran += 1
    assert ran >= 4
