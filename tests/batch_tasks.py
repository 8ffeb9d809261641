"""Small batch tasks for the runner tests (importable by worker processes, hence a module).

Input files are raw little-endian float64 values. A file starting with
``BAD`` is malformed (a cytokit error), ``BOOM`` raises an unexpected
exception, ``KILL`` ends its worker process abruptly.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit.engine.runner import stage
from cytokit.errors import FCSError


def write_values(path: Path, values: np.ndarray) -> Path:
    np.asarray(values, dtype="<f8").tofile(path)
    return path


@dataclass(frozen=True)
class SummaryTask:
    """Sum, mean and sorted values of a file; logs every call to `log` (one line per call)."""

    log: str = ""
    delay: float = 0.0
    scale: float = 1.0
    kind = "summary"

    @property
    def key(self) -> str:
        return f"summary-v1-scale={self.scale!r}"

    def describe(self) -> dict:
        return {"scale": self.scale}

    def __call__(self, path: Path) -> dict:
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(f"{path.name}\n")
        if self.delay:
            time.sleep(self.delay)
        head = path.read_bytes()[:4]
        with stage("read"):
            if head.startswith(b"BAD"):
                raise FCSError(f"{path}: not a values file (starts with {head!r}); rewrite it")
            if head.startswith(b"KILL"):
                os._exit(9)
            values = np.fromfile(path, dtype="<f8") * self.scale
        with stage("summarise"):
            if head.startswith(b"BOOM"):
                raise RuntimeError("boom")
            table = pd.DataFrame(
                {
                    "stat": ["n", "sum", "mean"],
                    "value": [float(values.size), float(values.sum()), float(values.mean())],
                    "positive": [bool(values.size), bool(values.sum() > 0), values.mean() > 0],
                }
            )
        return {"summary": table, "sorted": np.sort(values), "n": int(values.size)}


@dataclass(frozen=True)
class BadPayloadTask:
    """Returns something the store cannot hold."""

    key: str = "bad-payload"

    def __call__(self, path: Path) -> dict:
        return {"object": object()}
