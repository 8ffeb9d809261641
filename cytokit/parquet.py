"""Tables as Parquet files with a declared schema (pyarrow: the ``parquet`` extra).

Every table cytokit writes has its columns' types stated where its columns
are (`cytokit.analysis.results.COLUMN_TYPES`, the ``cytokit gate`` tables in
`cytokit.engine.gate_files`), in five words:

``int64``
    an integer that is always there (a count, an event number);
``Int64``
    an integer that may be missing (a day not known, a count not measured);
``float64``
    a real number; missing is null, never 0 (a failed measurement has no value);
``string``
    text; missing is null, and so is empty text (a CSV cannot tell the two
    apart, and the Parquet file says what the CSV says);
``bool``
    true or false (the CSV's ``True``/``False``); missing is null.

`frame_parquet` writes a DataFrame with exactly those types (Arrow
``int64``, ``double``, ``string``; only ``int64`` columns are declared not
nullable), never with what pandas would infer: a column of integers that
happens to hold a gap stays an integer column, and a text column of digits
stays text. A value that does not fit its column's type (a fraction in an
integer column, text in a number column) raises `ValueError`: the table
breaks its contract, which is a bug in cytokit, not in the input.

Text is stored raw: the quote that keeps a spreadsheet from running a CSV
cell as a formula (`cytokit._io.neutralise_cell`) is not added, as in JSON.

`read_parquet` gives the frame `pandas.read_csv` gives for the same table
written as CSV (integers without gaps as ``int64``, with gaps as
``float64``; text as objects, missing as NaN), so code reading a results
folder sees one kind of frame whichever format was written.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cytokit.errors import CytokitError

__all__ = [
    "COLUMN_KINDS",
    "FORMATS",
    "arrow_schema",
    "check_format",
    "frame_parquet",
    "read_parquet",
    "require_pyarrow",
    "suffixes",
]

#: The column types a table contract may state.
COLUMN_KINDS = ("int64", "Int64", "float64", "string", "bool")
#: Values of ``--format`` (`check_format`).
FORMATS = ("csv", "parquet", "both")


def check_format(value: str) -> str:
    """`value` if it is a table format (``csv``, ``parquet``, ``both``), else a `ValueError`."""
    if value not in FORMATS:
        raise ValueError(f"table format {value!r}: use one of {', '.join(FORMATS)}")
    return value


def suffixes(table_format: str) -> tuple[str, ...]:
    """The file suffixes `table_format` writes: ``(".csv",)``, ``(".parquet",)`` or both."""
    check_format(table_format)
    return {"csv": (".csv",), "parquet": (".parquet",), "both": (".csv", ".parquet")}[table_format]


def require_pyarrow():
    """The ``pyarrow`` module, or a `CytokitError` naming the extra that installs it."""
    try:
        import pyarrow
        import pyarrow.parquet  # the submodule is what writes and reads
    except ImportError:
        raise CytokitError(
            "Parquet tables need pyarrow, which is not installed: pip install "
            "'cytokit-flow[parquet]' (or pip install pyarrow), or write CSV tables (--format csv)"
        ) from None
    return pyarrow


def _arrow_type(pa, kind: str):
    if kind in ("int64", "Int64"):
        return pa.int64()
    if kind == "float64":
        return pa.float64()
    if kind == "string":
        return pa.string()
    if kind == "bool":
        return pa.bool_()
    raise ValueError(f"column type {kind!r}: use one of {', '.join(COLUMN_KINDS)}")


def arrow_schema(columns: Sequence[str], types: Mapping[str, str]):
    """The Arrow schema of a table with `columns` typed by `types` (column -> kind)."""
    pa = require_pyarrow()
    fields = []
    for name in columns:
        kind = types[name]
        fields.append(pa.field(name, _arrow_type(pa, kind), nullable=kind != "int64"))
    return pa.schema(fields)


def _absent(v) -> bool:
    """No value: None, NaN, NA or empty text (all an empty CSV cell)."""
    return v is None or (v == "" if isinstance(v, str) else bool(pd.isna(v)))


def _text(series: pd.Series) -> list:
    return [None if _absent(v) else str(v) for v in series.to_numpy(dtype=object)]


def _column(pa, table: str, name: str, kind: str, series: pd.Series):
    """`series` as an Arrow array of `kind`; a value that does not fit is a ValueError."""
    where = f"{table}: column {name!r} ({kind})"
    if kind == "string":
        return pa.array(_text(series), type=pa.string())
    plain = isinstance(series.dtype, np.dtype) and series.dtype.kind in "iuf"  # no NA, no text
    values = series.to_numpy() if plain else series.to_numpy(dtype=object)
    if kind == "bool":
        flags = [None if _absent(v) else v for v in values]
        if not all(f is None or isinstance(f, (bool, np.bool_)) for f in flags):
            bad = next(f for f in flags if f is not None and not isinstance(f, (bool, np.bool_)))
            raise ValueError(f"{where} holds {bad!r}, not true or false")
        return pa.array([None if f is None else bool(f) for f in flags], type=pa.bool_())
    if plain:  # a numpy numeric column: no value is text, test it at once
        numbers = series.to_numpy(dtype=np.float64)
        missing = np.isnan(numbers)
    else:
        missing = np.fromiter((_absent(v) for v in values), dtype=bool, count=len(values))
        given = np.where(missing, np.nan, values)
        try:
            numbers = pd.to_numeric(pd.Series(given), errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} holds a value that is not a number: {exc}") from None
    if kind == "float64":
        return pa.array(numbers, type=pa.float64(), mask=missing)
    if kind == "int64" and missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{where} is missing a value in row {row}; the contract says it never is")
    present = numbers[~missing]
    if present.size and not (np.isfinite(present).all() and (present == np.round(present)).all()):
        bad = present[~(np.isfinite(present) & (present == np.round(present)))][0]
        raise ValueError(f"{where} holds {float(bad)!r}, not an integer")
    ints = np.zeros(len(values), dtype=np.int64)
    if plain and series.dtype.kind in "iu":  # exact beyond 2**53, where float64 is not
        ints = series.to_numpy(dtype=np.int64)
    else:
        ints[~missing] = present.astype(np.int64)
    return pa.array(ints, type=pa.int64(), mask=missing if kind == "Int64" else None)


def frame_parquet(
    frame: pd.DataFrame, columns: Sequence[str], types: Mapping[str, str], *, table: str = ""
) -> bytes:
    """DataFrame `frame` as Parquet bytes with exactly `columns` (in order), typed by `types`.

    Parameters
    ----------
    frame : DataFrame
        The table; it must hold every one of `columns` (any other column is left out).
    columns : sequence of str
        The columns to write, in order.
    types : mapping of str to str
        Column -> one of `COLUMN_KINDS`.
    table : str
        The table's name, for error messages.

    Raises
    ------
    ValueError
        A value does not fit its column's type, or an ``int64`` column has a gap.
    CytokitError
        pyarrow is not installed.
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    schema = arrow_schema(columns, types)
    arrays = [
        _column(pa, table, name, types[name], frame[name].reset_index(drop=True))
        for name in columns
    ]
    data = pa.Table.from_arrays(arrays, schema=schema)
    buf = io.BytesIO()
    pq.write_table(data, buf, compression="zstd")
    return buf.getvalue()


def read_parquet(data: bytes) -> pd.DataFrame:
    """The table in Parquet bytes `data`, as `pandas.read_csv` would give it from the CSV.

    Integer columns: ``int64``, or ``float64`` with NaN where a value is
    missing; real numbers ``float64``; text ``object`` with NaN for missing,
    and a text column with no value at all ``float64`` NaN (as ``read_csv``
    reads an empty column). Raises what pyarrow raises on bytes that are not
    Parquet (`pyarrow.ArrowInvalid`, a `ValueError`).
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    out = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        values = column.to_pandas()
        if pa.types.is_integer(field.type):
            out[field.name] = (
                values.astype(np.float64) if column.null_count else values.astype(np.int64)
            )
        elif pa.types.is_floating(field.type):
            out[field.name] = values.astype(np.float64)
        elif pa.types.is_boolean(field.type) and not column.null_count:
            out[field.name] = values.astype(bool)
        elif column.null_count == len(column):
            out[field.name] = pd.Series(np.nan, index=values.index, dtype=np.float64)
        else:
            out[field.name] = values.astype(object).where(values.notna(), np.nan)
    return pd.DataFrame(out, columns=[f.name for f in table.schema])
