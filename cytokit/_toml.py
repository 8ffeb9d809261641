"""TOML loading with errors that name the file and line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cytokit.errors import StudyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, raising `StudyError` that names the file on any problem."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise StudyError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        line = exc.object[: exc.start].count(b"\n") + 1
        raise StudyError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); "
            "save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot read: {exc.strerror}") from None
