"""TOML loading with errors that name the file and line, within resource bounds.

A study's TOML (``study.toml``, a panel file) is refused with one `StudyError`
line, naming the file, the limit and the value, beyond these bounds, each far
above any real configuration: at most `MAX_TOML_BYTES`, values nested at most
`MAX_TOML_NESTING` levels (tables, arrays and inline tables each add one), and
integers within 64 bits (`MAX_INTEGER` in magnitude). A leading UTF-8 BOM and
old-Mac line ends (a carriage return alone) are read as their editor meant them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from cytokit.errors import StudyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["MAX_INTEGER", "MAX_TOML_BYTES", "MAX_TOML_NESTING", "load_toml", "readable_toml"]

MAX_TOML_BYTES = 2**20
MAX_TOML_NESTING = 32
MAX_INTEGER = 2**63 - 1

# a run of digits longer than Python converts to an int (its default limit is 4,300)
_HUGE_NUMBER = re.compile(r"[0-9][0-9_]{4000,}")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, raising `StudyError` that names the file on any problem.

    Raises
    ------
    StudyError
        The file is missing, unreadable, not UTF-8, not valid TOML, or beyond
        the module's bounds (size, nesting, integer size).
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise StudyError(f"{path}: file not found") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_TOML_BYTES:
        raise StudyError(
            f"{path}: the file is more than {MAX_TOML_BYTES:,} bytes; cytokit reads TOML "
            f"files of at most {MAX_TOML_BYTES:,} bytes (1 MiB), far above any real "
            "configuration: check that it is the file you meant"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        line = raw[: exc.start].count(b"\n") + 1
        raise StudyError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save the file as UTF-8"
        ) from None
    text = readable_toml(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        # the parser recurses once or twice per level, so only nesting far beyond the
        # bound gets here; _check_values words every other case the same way
        raise StudyError(
            f"{path}: values are nested too deeply to parse; cytokit reads TOML nested at "
            f"most {MAX_TOML_NESTING} levels, far above any real configuration"
        ) from None
    except ValueError as exc:
        # an integer too long for Python to convert: tomllib does not catch that error
        huge = _HUGE_NUMBER.search(text)
        if huge is None:
            raise StudyError(f"{path}: not valid TOML: {exc}") from None
        line = text.count("\n", 0, huge.start()) + 1
        raise StudyError(
            f"{path}, line {line}: an integer of {len(huge.group()):,} digits; cytokit reads "
            f"integers of at most {MAX_INTEGER:,} in magnitude (64 bits)"
        ) from None
    _check_values(data, path)
    return data


def readable_toml(text: str) -> str:
    """`text` as its editor meant it: a leading UTF-8 BOM (Notepad, "UTF-8 with BOM")
    dropped and a carriage return alone (old-Mac line ends) read as a line end.

    TOML allows neither (``tomllib`` refuses a lone CR even inside a string), so no
    valid file changes meaning.
    """
    return re.sub(r"\r(?!\n)", "\n", text.removeprefix("\ufeff"))


def _check_values(data: dict[str, Any], path: Path) -> None:
    """Refuse nesting deeper than `MAX_TOML_NESTING` and integers beyond 64 bits."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_TOML_NESTING:
                raise StudyError(
                    f"{path}: {_shown(key)} is nested {depth} levels deep; cytokit reads TOML "
                    f"nested at most {MAX_TOML_NESTING} levels, far above any real "
                    "configuration"
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                sub = f"{key}[{k}]" if isinstance(value, list) else f"{key}.{k}" if key else k
                stack.append((v, sub, depth + 1))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            raise StudyError(
                f"{path}: {_shown(key)} = an integer of {len(str(abs(value))):,} digits; "
                f"cytokit reads integers of at most {MAX_INTEGER:,} in magnitude (64 bits)"
            )


def _shown(key: str) -> str:
    return key if len(key) <= 80 else f"{key[:38]}…{key[-38:]}"
