"""Checks of option values shared by several commands (a bad value is a usage error, exit 2),
and the declarations of ``cytokit gate``'s acquisition-QC options."""

from __future__ import annotations

import math
from pathlib import Path

import typer


def check_scheduler(value: str | None) -> str | None:
    """``--scheduler``: processes, threads, serial, local, or a Dask address such as tcp://HOST:PORT.

    Checked when the command line is read, not when the first file needs a
    worker (a rerun with every file in the store would never look at it).
    """
    from cytokit.engine.runner import SCHEDULERS

    if value is not None and "://" in value:
        from cytokit.engine.runner import require_distributed

        require_distributed()  # a CytokitError naming the extra, before anything is written
        return value
    if value is None or value in (*SCHEDULERS, "local"):
        return value
    raise typer.BadParameter(
        f"{value!r}: use one of {', '.join(SCHEDULERS)}, local, or a Dask scheduler address "
        "tcp://HOST:PORT"
    )


def check_table_format(value: str) -> str:
    """``--format``: csv, parquet or both (`cytokit.parquet.FORMATS`).

    Parquet without pyarrow is a `CytokitError` naming the extra (exit 1), raised when
    the command line is read: before anything is read, written or logged.
    """
    from cytokit.parquet import FORMATS, require_pyarrow

    if value in FORMATS:
        if value != "csv":
            require_pyarrow()
        return value
    raise typer.BadParameter(f"{value!r}: use one of {', '.join(FORMATS)}")


#: Help of ``--format`` (analyze and gate).
TABLE_FORMAT_HELP = (
    "Tables as csv (default), parquet (typed columns as the results contract states; "
    "needs the parquet extra: pip install 'cytokit-flow[parquet]') or both."
)


def check_sensitivity(value: str | None) -> str | None:
    """``--qc-sensitivity``: low, normal or high."""
    if value is not None and value not in ("low", "normal", "high"):
        raise typer.BadParameter(f"{value!r}: use low, normal or high")
    return value


#: ``--acquisition-qc/--no-acquisition-qc`` of ``cytokit gate``.
ACQUISITION_QC = typer.Option(
    None,
    "--acquisition-qc/--no-acquisition-qc",
    help="Acquisition QC before gating (flow rate, signal stability, margin events): "
    "removed events are not gated, a file above --qc-max-removed fails. Default: "
    "the study's [acquisition_qc] with --study, else off.",
    show_default=False,
)
#: ``--qc-sensitivity``.
QC_SENSITIVITY = typer.Option(
    None,
    "--qc-sensitivity",
    callback=check_sensitivity,
    help="Acquisition QC sensitivity (default normal, or the study's); turns QC on.",
    show_default=False,
)


def _percent(text: str) -> float:
    """A % of the events: a number from 0 to 100 (a word, nan, inf and the rest are
    refused, the value named)."""
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a number from 0 to 100 (a % of the events)"
        ) from None
    if not (math.isfinite(value) and 0 <= value <= 100):
        shown = f"{value:g}" if float(f"{value:g}") == value else repr(value)
        raise typer.BadParameter(f"{shown} is not a number from 0 to 100 (a % of the events)")
    return value + 0.0  # -0 is 0


#: ``--qc-max-removed``.
QC_MAX_REMOVED = typer.Option(
    None,
    "--qc-max-removed",
    parser=_percent,
    help="% of a file's events QC may remove before the file fails (default 20, or "
    "the study's); turns QC on.",
    show_default=False,
)


def _channel_names(value: list[str] | None) -> list[str] | None:
    """Channel names ($PnN): an empty or blank one names no channel."""
    for name in value or []:
        if not name.strip():
            raise typer.BadParameter(
                f"{name!r} names no channel; give a $PnN as the file spells it, such as FSC-W"
            )
    return value


#: ``--qc-exclude`` (repeatable).
QC_EXCLUDE = typer.Option(
    None,
    "--qc-exclude",
    callback=_channel_names,
    help="A channel ($PnN) acquisition QC leaves out, such as a dead detector the "
    "strategy does not read (repeat for more; added to the study's "
    "exclude_channels); turns QC on.",
    show_default=False,
)


def _channel_name(value: str | None) -> str | None:
    """One channel name ($PnN), not empty or blank."""
    return value if value is None else _channel_names([value])[0]


#: ``--qc-time``.
QC_TIME = typer.Option(
    None,
    "--qc-time",
    callback=_channel_name,
    help="The channel ($PnN) acquisition QC reads as the clock, for files that name it "
    "otherwise than Time (such as HDR-T); in place of the study's time_channel; turns QC on.",
    show_default=False,
)

#: ``--compensation`` of ``cytokit gate``.
GATE_COMPENSATION = typer.Option(
    None,
    "--compensation",
    help="file (each file's spillover keyword; the default), none, or a CSV spillover "
    "matrix. Not with --study, whose study.toml says.",
    show_default=False,
)

#: ``--tube`` of ``cytokit gate``.
GATE_TUBE = typer.Option(
    None,
    "--tube",
    help="With --study: the tube gated ([tubes.<name>] of study.toml, or default): "
    "its strategy and panel, and its files in the manifest unless FILES are given.",
    show_default=False,
)


def check_qc_exclusions(
    qc, given: list[str] | None, study: Path | None, paths, study_files=(), time=None
) -> None:
    """Refuse excluded QC channels that none of the gated files has (a typo'd name), and
    a QC time channel none has.

    `given`: ``--qc-exclude``'s names; the rest of ``qc.exclude_channels`` came
    from `study`'s ``study.toml`` and are looked for in `study_files` (every file
    of the study, of every tube) too: a channel of another tube's files is no typo.
    `time`: ``--qc-time``; else ``qc.time_channel`` came from the study's table.
    """
    from cytokit.engine.gate_files import file_channels
    from cytokit.errors import StudyError
    from cytokit.qc.settings import unknown_exclusions

    if qc is None:
        return
    one = str(paths[0]) if len(paths) == 1 else ""
    for hint, names in (
        ("'--qc-exclude'", list(given or [])),
        ("'--qc-time'", [time] if time else []),
    ):
        if names:  # the options' names: in the files gated
            channels, n_files = file_channels(paths, names)
            flag = unknown_exclusions(names, channels, "", n_files, one)
            if flag:
                raise typer.BadParameter("; ".join(flag), param_hint=hint)
    mine = [c for c in qc.exclude_channels if c not in (given or [])]
    clock = [qc.time_channel] if qc.time_channel is not None and time is None else []
    toml = f"{Path(study) / 'study.toml'}: [acquisition_qc] " if study else ""
    every = list(dict.fromkeys(Path(p).resolve() for p in [*paths, *study_files]))
    for key, names in (("exclude_channels", mine), ("time_channel", clock)):
        if names:  # the study's names: in any of its files
            channels, n_files = file_channels(every, names)
            found = unknown_exclusions(names, channels, toml and toml + key, n_files)
            if found:
                raise StudyError("\n".join(found))


def check_qc_flags(enabled: bool | None, options: dict) -> None:
    """Refuse ``--no-acquisition-qc`` beside a ``--qc-*`` option, which turns QC on: the
    command says two things, and running without QC would drop the option silently."""
    given = [k for k, v in options.items() if v not in (None, [], ())]
    if enabled is False and given:
        flags = {
            "sensitivity": "--qc-sensitivity",
            "max_removed_pct": "--qc-max-removed",
            "time_channel": "--qc-time",
        }
        named = ", ".join(flags.get(k, "--qc-exclude") for k in given)
        raise typer.BadParameter(
            f"{named} set acquisition QC, which --no-acquisition-qc turns off; drop one",
            param_hint="'--no-acquisition-qc'",
        )


#: Suffixes of strategy files (`cytokit.gating.load_strategy`); anything else is an FCS argument.
STRATEGY_SUFFIXES = (".xml", ".wsp", ".yaml", ".yml")


def gate_arguments(
    strategy: Path | str | None, files: list[str] | None, study: Path | None
) -> tuple[Path | None, list[str]]:
    """(strategy, files) from the positional arguments.

    Without ``--study`` the first is the strategy and at least one file follows.
    With it both may be left out: the first argument is the strategy only when
    it has a strategy file's suffix.
    """
    given = [str(a) for a in ([strategy] if strategy is not None else []) + list(files or [])]
    if study is None:
        if len(given) < 2:
            raise typer.BadParameter(
                "give a STRATEGY file and the FCS FILES to gate, e.g. "
                "cytokit gate strategy.xml runs/ --out gated/ (or --study DIR to gate with a "
                "study's strategy and settings)",
                param_hint="STRATEGY FILES...",
            )
        return Path(given[0]), given[1:]
    if given and Path(given[0]).suffix.lower() in STRATEGY_SUFFIXES:
        # a strategy named on the command line is relative to where the command runs
        return Path(given[0]).absolute(), given[1:]
    return None, given
