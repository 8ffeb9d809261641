"""Spillover matrices from CSV files (``[compensation] source = "matrix.csv"``, ``--compensation``).

Two layouts are read, both with detector (``$PnN``) names in the header row:

* a square block of numbers under the names, one row per fluorochrome in the
  header's order::

      FITC-A,PE-A,APC-A
      1,0.12,0.003
      0.02,1,0.01
      0,0.004,1

* the same with each row labelled by its detector in the first column (the
  header's first cell empty), as FlowJo and most instrument software export;
  rows may come in any order and are matched to the columns by name.

Row ``i`` is how much of fluorochrome ``i`` each detector sees (the FCS
``$SPILLOVER`` convention).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from cytokit._paths import open_regular
from cytokit.errors import CytokitError
from cytokit.sample import Spillover

__all__ = ["read_spillover_csv"]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_spillover_csv(path: str | os.PathLike) -> Spillover:
    """Read a spillover matrix from a CSV file (see the module docstring for the layouts).

    Returns
    -------
    Spillover
        With ``source`` the file's path.

    Raises
    ------
    CytokitError
        The file is missing or unreadable, not square, has repeated or
        unmatched names, or a cell that is not a finite number (the message
        gives the line and column).
    """
    path = Path(path)
    try:  # a FIFO or device is refused, not waited on
        with open_regular(path, "r", newline="", encoding="utf-8-sig") as fh:
            rows = [[c.strip() for c in r] for r in csv.reader(fh) if any(c.strip() for c in r)]
    except OSError as exc:
        raise CytokitError(
            f"{path}: cannot read the spillover matrix CSV ({exc.strerror or exc})"
        ) from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CytokitError(f"{path}: cannot read the spillover matrix CSV ({exc})") from exc
    if len(rows) < 2:
        raise CytokitError(
            f"{path}: a spillover CSV needs a header row of detector names and one row of numbers "
            "per detector"
        )
    header, body = rows[0], rows[1:]
    labelled = header[0] == "" or _number(body[0][0]) is None
    names = header[1:] if labelled else header
    k = len(names)
    if k == 0 or any(not n for n in names) or len(set(names)) != k:
        raise CytokitError(
            f"{path}: line 1 must name each detector once (got {header!r}); put the $PnN names "
            "in the header"
        )
    if len(body) != k:
        raise CytokitError(
            f"{path}: {k} detectors in the header but {len(body)} rows of numbers; the matrix "
            "must be square"
        )
    matrix = np.empty((k, k))
    order = list(range(k))
    seen: dict[str, int] = {}
    for i, row in enumerate(body):
        line = i + 2
        cells = row[1:] if labelled else row
        if len(cells) != k:
            raise CytokitError(
                f"{path}, line {line}: {len(cells)} numbers, expected {k} (one per detector)"
            )
        if labelled:
            if row[0] not in names or row[0] in seen:
                raise CytokitError(
                    f"{path}, line {line}: row label {row[0]!r} is not a detector of the header "
                    "or is repeated; label each row with one header name"
                )
            seen[row[0]] = i
        for j, cell in enumerate(cells):
            value = _number(cell)
            if value is None:
                raise CytokitError(
                    f"{path}, line {line}, column {names[j]!r}: {cell!r} is not a finite number"
                )
            matrix[i, j] = value
    if labelled:
        order = [seen[n] for n in names]
    return Spillover(tuple(names), matrix[order], source=str(path))
