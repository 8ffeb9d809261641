"""Checks of option values shared by several commands: a bad value is a usage error (exit 2)."""

from __future__ import annotations

import typer


def check_scheduler(value: str | None) -> str | None:
    """``--scheduler``: processes, threads, serial, local, or a Dask address such as tcp://HOST:PORT.

    Checked when the command line is read, not when the first file needs a
    worker (a rerun with every file in the store would never look at it).
    """
    from cytokit.engine.runner import SCHEDULERS

    if value is None or value in (*SCHEDULERS, "local") or "://" in value:
        return value
    raise typer.BadParameter(
        f"{value!r}: use one of {', '.join(SCHEDULERS)}, local, or a Dask scheduler address "
        "tcp://HOST:PORT"
    )


def check_table_format(value: str) -> str:
    """``--format``: csv, parquet or both (`cytokit.parquet.FORMATS`)."""
    from cytokit.parquet import FORMATS

    if value in FORMATS:
        return value
    raise typer.BadParameter(f"{value!r}: use one of {', '.join(FORMATS)}")


#: Help of ``--format`` (analyze and gate).
TABLE_FORMAT_HELP = (
    "Tables as csv (default), parquet (typed columns as the results contract states; "
    "needs the parquet extra: pip install 'cytokit[parquet]') or both."
)


def check_sensitivity(value: str | None) -> str | None:
    """``--qc-sensitivity``: low, normal or high."""
    if value is not None and value not in ("low", "normal", "high"):
        raise typer.BadParameter(f"{value!r}: use low, normal or high")
    return value
