"""``cytokit gate``'s acquisition-QC options: their declarations, and the checks of their
values (a bad value is a usage error, exit 2) and of what they name."""

from __future__ import annotations

import math
from pathlib import Path

import typer


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


def _check_names(value: str | None) -> tuple[str, ...] | None:
    """``--qc-checks``: a comma-separated list of rate, signal and margins."""
    if value is None:
        return None
    from cytokit.qc.settings import CHECKS

    names = [n.strip() for n in value.split(",")]
    bad = list(dict.fromkeys(n for n in names if n not in CHECKS))
    if bad:
        what = (
            " names no check"
            if not value.replace(",", "").strip()
            else f": {', '.join(map(repr, bad))} {'is' if len(bad) == 1 else 'are'} not a check"
        )
        raise typer.BadParameter(
            f"{value!r}{what}; name checks from {', '.join(CHECKS)}, comma-separated "
            "(such as rate,margins)"
        )
    return tuple(dict.fromkeys(names))


#: ``--qc-checks``.
QC_CHECKS = typer.Option(
    None,
    "--qc-checks",
    callback=_check_names,
    metavar="CHECKS",
    help="The acquisition QC checks run: rate, signal, margins, comma-separated "
    "(default all, or the study's checks); turns QC on.",
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
    metavar="CHANNEL",
    help="The channel ($PnN) acquisition QC reads as the clock, for files that name it "
    "otherwise than Time (such as HDR-T); in place of the study's time_channel; turns QC on.",
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
            "checks": "--qc-checks",
        }
        named = ", ".join(flags.get(k, "--qc-exclude") for k in given)
        raise typer.BadParameter(
            f"{named} set acquisition QC, which --no-acquisition-qc turns off; drop one",
            param_hint="'--no-acquisition-qc'",
        )
