"""The ``cytokit`` command: one module per command, each a thin shell over the library.

Exit codes: 0 success; 1 a cytokit error (one line on stderr naming the file and
the fix; ``--debug`` shows the traceback); 2 a usage error. Progress goes to stderr.
"""

from __future__ import annotations

import sys

import typer

from cytokit.cli._text import printable
from cytokit.errors import CytokitError

app = typer.Typer(
    name="cytokit",
    help="Flow cytometry for monitoring donor NK and CIK cells after adoptive cell therapy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
) -> None:
    _state["debug"] = debug


def _register() -> None:
    from cytokit.cli import analyze, demo, gate, inspect, report, simulate

    for module in (inspect, gate, analyze, report, simulate, demo):
        module.register(app)


_register()


def run(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` and return the exit code (testable; never exits)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="cytokit")
    except SystemExit as exc:  # Typer ends every run, successful or not, this way
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except CytokitError as exc:
        if "--debug" in args:
            raise
        message = str(exc).strip() or type(exc).__name__
        typer.echo(f"cytokit: error: {printable(message, newlines=True)}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("cytokit: interrupted", err=True)
        return 130
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
