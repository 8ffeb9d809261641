"""Checks of option values shared by several commands (a bad value is a usage error, exit 2),
and declarations of ``cytokit gate``'s options (its acquisition-QC options:
`cytokit.cli._qc_options`)."""

from __future__ import annotations

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


#: ``--out`` of ``cytokit gate``.
GATE_OUT = typer.Option(
    ...,
    "--out",
    "-o",
    help="Folder for counts.csv, statistics.csv, failures.csv, warnings.csv (with "
    "QC qc_samples.csv, acquisition_qc.csv) and the store, results.sqlite.",
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
