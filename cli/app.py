"""The ``cytokit`` command: one module per command, each a thin shell over the library.

Exit codes: 0 success; 1 a cytokit error (one line on stderr naming the file and
the fix; ``--debug`` shows the traceback); 2 a usage error (one line); 3 the
batch finished but some files failed (only with ``--strict``). Progress goes to
stderr. Anything else that goes wrong is a bug: it is reported in one line as an
internal error, exit 1, and ``--debug`` shows its traceback.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading

import typer

from cytokit.cli._help import HelpGroup
from cytokit.cli._progress import Terminated, signalled, was_signalled
from cytokit.cli._runlog import set_argv
from cytokit.cli._text import printable
from cytokit.errors import DISK_FIXES, CytokitError

try:  # typer 0.2x runs on its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_errors

app = typer.Typer(
    name="cytokit",
    help="Flow cytometry for monitoring donor NK and CIK cells after adoptive cell therapy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: Rich's reads "[acquisition_qc]" as a style tag and drops it, and its
    # table cuts option names ("--acquisition-…") at 80 columns
    rich_markup_mode=None,
    cls=HelpGroup,
)

_state = {"debug": False}


def _terminate(signum, frame) -> None:
    # typer turns the exception into exit code 130 (`run` makes it 143); recorded too, as
    # it is raised again at the next progress tick should this one be lost
    signalled()
    raise Terminated()


#: OSErrors that are the machine's answer, not cytokit's mistake: no check made
#: beforehand can rule them out, so they are reported like a cytokit error.
_SYSTEM_REFUSALS = {
    errno.EACCES: "check its permissions, or choose another folder",
    errno.EPERM: "check its permissions, or choose another folder",
    **DISK_FIXES,
    errno.EFBIG: "raise the file-size limit (ulimit -f), or choose a folder on a file system "
    "that takes larger files",
    errno.EIO: "check the disk (is it full, or failing?), or choose a folder on another disk",
}


def _version(value: bool) -> None:
    if value:
        import cytokit

        typer.echo(f"cytokit {cytokit.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


def _register() -> None:
    from cytokit.cli import (
        analyze,
        demo,
        export_anndata,
        export_wsp,
        gate,
        inspect,
        report,
        simulate,
        verify,
    )

    modules = (inspect, gate, analyze, report, simulate, demo, export_wsp, verify, export_anndata)
    for module in modules:
        module.register(app)


_register()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(message: str, code: int) -> int:
    typer.echo(f"cytokit: {message}", err=True)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` and return the exit code (testable; never exits).

    Every failure ends in one line on stderr starting with ``cytokit:``: a
    usage error (exit 2), a cytokit error or a refusal of the system such as
    a full disk (exit 1; a study with several problems lists them on the
    indented lines that follow), or an internal error (exit 1), which is a bug
    to report. ``--debug`` re-raises instead, for the traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = False
    set_argv(args)

    def debug() -> bool:
        return _state["debug"] or "--debug" in args

    empty = next(
        (a for a in args if not a.strip() or (a.startswith("-") and a.endswith("="))), None
    )
    if empty is not None:  # a path given as "" would be read as the current folder
        where = args[args.index(empty) - 1] if not empty.strip() and args.index(empty) else empty
        return _error(
            f"usage error: an empty value after {where.rstrip('=')!r} (an unset variable in a "
            "script?); give its value (see `cytokit COMMAND --help`)",
            2,
        )
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    signalled(False)
    try:
        code = _dispatch(args, debug)
        # a SIGTERM whose exception was lost (raised inside a callback of the kernel
        # compiler) after the last progress tick: the work ended, but the run was told to
        # stop and says so, never a plain 0
        if was_signalled() and code in (0, 130):
            return _error("terminated (SIGTERM)", Terminated.exit_code)
        return code
    finally:
        signalled(False)
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _dispatch(args: list[str], debug) -> int:
    try:
        code = app(args=args, prog_name="cytokit", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:  # no command: the help, then why
        where = exc.ctx.command_path if exc.ctx is not None else "cytokit"
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc))
        return _error(f"usage error: no command given (see `{where} --help`)", 2)
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "cytokit"
        return _error(f"usage error: {_one_line(exc.format_message())} (see `{where} --help`)", 2)
    except click_errors.ClickException as exc:  # a file option click could not open
        return _error(f"error: {_one_line(exc.format_message())}", exc.exit_code or 1)
    except typer.Abort:  # end of input at a prompt
        return _error("aborted", 1)
    except CytokitError as exc:
        if debug():
            raise
        message = printable(str(exc).strip() or type(exc).__name__, newlines=True)
        first, *more = message.splitlines()
        # a list under the message (a study's problems) stays indented under its one line
        return _error("\n".join([f"error: {first}", *(f"  {m.lstrip()}" for m in more)]), 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except OSError as exc:
        if debug():
            raise
        if exc.errno not in _SYSTEM_REFUSALS:
            return _internal(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or _one_line(exc)
        return _error(f"error: {where}{reason}; {_SYSTEM_REFUSALS[exc.errno]}", 1)
    except Exception as exc:
        if debug():
            raise
        return _internal(exc)
    return code if isinstance(code, int) else 0


def _internal(exc: BaseException) -> int:
    detail = _one_line(exc)[:300]
    return _error(
        f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}; this is a bug "
        "in cytokit: run the same command with `cytokit --debug ...` and report the traceback",
        1,
    )


def main() -> None:
    """Console-script entry point. Once the command has returned (its tables and run-log
    line written), a Ctrl-C or SIGTERM no longer changes its exit code."""
    code = run()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    main()
