"""Encoding of batch payloads for the results store: tables, arrays and JSON values as bytes.

A task returns a mapping of names to items; each item is stored as ``(kind, bytes)``:

* ``"frame"``: a pandas DataFrame as JSON with column names, dtypes and
  values. Booleans, integers, floats (exactly, NaN and ±inf included) and
  strings (None for missing) are supported; the index is not kept.
* ``"array"``: a numpy array as ``.npy`` bytes (no pickles, so no object arrays).
* ``"value"``: JSON: numbers, strings, booleans, None, and lists and dicts of them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cytokit.errors import CytokitError

__all__ = ["decode_item", "encode_payload", "json_value"]


def _frame_bytes(name: str, frame: pd.DataFrame) -> bytes:
    columns, dtypes, data = [], [], []
    for col in frame.columns:
        s = frame[col]
        kind = s.dtype.kind
        if kind == "b":
            values = [bool(v) for v in s.to_numpy()]
        elif kind in "iu":
            values = [int(v) for v in s.to_numpy()]
        elif kind == "f":
            values = [float(v) for v in s.to_numpy()]
        elif kind in "OSUT" or isinstance(s.dtype, pd.StringDtype):
            values = []
            for v in s.tolist():
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    values.append(None)
                elif isinstance(v, str):
                    values.append(v)
                else:
                    raise TypeError(
                        f"payload item {name!r}: column {col!r} holds {type(v).__name__} values; "
                        "frames may hold numbers, booleans and strings only"
                    )
        else:
            raise TypeError(
                f"payload item {name!r}: column {col!r} has dtype {s.dtype}; frames may hold "
                "numbers, booleans and strings only (convert it first)"
            )
        columns.append(str(col))
        dtypes.append(str(s.dtype) if kind in "biuf" else "object")
        data.append(values)
    return json.dumps({"columns": columns, "dtypes": dtypes, "data": data}).encode()


def json_value(name: str, value):
    """`value` as plain JSON types (numpy scalars unwrapped); TypeError naming item `name`."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(name, v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_value(name, v) for k, v in value.items()}
    raise TypeError(
        f"payload item {name!r} holds a {type(value).__name__}; payloads hold DataFrames, numpy "
        "arrays, and numbers, strings, booleans, None, lists and dicts of them"
    )


def encode_payload(payload: Mapping[str, object]) -> dict[str, tuple[str, bytes]]:
    """Encode a task's payload for the store: ``{name: (kind, bytes)}``.

    DataFrames become ``'frame'`` items, numpy arrays ``'array'`` items
    (``.npy`` bytes, object arrays refused), anything else must be
    JSON-serialisable (``'value'``).

    Raises
    ------
    TypeError
        An item of a type the store cannot hold (the message names it).
    """
    if not isinstance(payload, Mapping):
        raise TypeError(
            f"a task returned {type(payload).__name__}; it must return a dict of name -> "
            "DataFrame, numpy array or JSON value"
        )
    out: dict[str, tuple[str, bytes]] = {}
    for name, value in payload.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"payload names must be non-empty strings, got {name!r}")
        if isinstance(value, pd.DataFrame):
            out[name] = ("frame", _frame_bytes(name, value))
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError(f"payload item {name!r} is an object array; use a numeric dtype")
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            out[name] = ("array", buf.getvalue())
        else:
            out[name] = ("value", json.dumps(json_value(name, value)).encode())
    return out


def decode_item(kind: str, data: bytes, *, where: str = "results store item"):
    """The object an encoded item holds (see `encode_payload`).

    Parameters
    ----------
    kind : {"frame", "array", "value"}
    data : bytes
    where : str
        Names the item in errors (the store file and the item).

    Raises
    ------
    CytokitError
        `data` is not an item of that kind (the store was damaged on disk),
        or `kind` is unknown.
    """
    if kind not in ("array", "value", "frame"):
        raise CytokitError(f"{where}: of unknown kind {kind!r}; is the store newer?")
    try:
        if kind == "array":
            return np.load(io.BytesIO(data), allow_pickle=False)
        doc = json.loads(data)
        return doc if kind == "value" else _frame(doc)
    except (ValueError, TypeError, EOFError, OSError) as exc:  # UnicodeDecodeError included
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CytokitError(
            f"{where}: damaged, not a stored {kind} ({reason}); delete the results store (its "
            "files are processed again) or use another output folder"
        ) from exc


def _frame(doc) -> pd.DataFrame:
    keys = ("columns", "dtypes", "data")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in keys):
        raise ValueError(f"a frame needs the lists {', '.join(keys)}")
    cols = {}
    for name, dtype, values in zip(doc["columns"], doc["dtypes"], doc["data"], strict=True):
        if not isinstance(values, list):
            raise ValueError(f"column {name!r} holds no list of values")
        cols[name] = pd.Series(values, dtype=None if dtype == "object" else dtype)
        if dtype == "object":
            cols[name] = cols[name].astype(object)
    return pd.DataFrame(cols, columns=doc["columns"])
