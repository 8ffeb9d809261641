"""Each command's --help, as a user reads it at 80 columns: every option name whole, and
the help text as written (square brackets included: ``[acquisition_qc]`` is a TOML
table, ``'cytokit-flow[parquet]'`` a pip extra, not markup)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from cytokit.cli.app import app

COMMANDS = sorted(c.name for c in typer.main.get_command(app).commands.values())


def _help(command: str) -> str:
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_every_option_whole_and_keeps_brackets(command):
    click_command = typer.main.get_command(app).commands[command]
    text = _help(command)
    flat = " ".join(text.split())
    for param in click_command.params:
        if getattr(param, "hidden", False):
            continue
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("-"):
                assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), (command, name)
        said = " ".join((getattr(param, "help", None) or "").split())
        for bracketed in re.findall(r"\[[^\]]+\]", said):
            assert bracketed in flat, (command, param.name, bracketed)
    assert "…" not in text


def test_help_of_gate_says_what_the_readme_tells_users_to_type():
    flat = " ".join(_help("gate").split())
    assert "[acquisition_qc]" in flat
    assert "pip install 'cytokit-flow[parquet]'" in flat
    assert "([tubes.<name>] of study.toml, or default)" in flat
    assert "--no-acquisition-qc" in flat and "--qc-max-removed" in flat


def test_version_prints_the_installed_version(capsys):
    """`cytokit --version` was a usage error (exit 2)."""
    import cytokit
    from cytokit.cli.app import run

    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cytokit {cytokit.__version__}"
