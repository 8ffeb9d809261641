"""How the FCS reader reports what it finds wrong in a file.

A file that cannot be read correctly raises `FCSError`. A file that breaks the
standard in a way the reader can work around unambiguously (an off-by-one
``$ENDDATA``, a duplicated keyword, HEADER and TEXT offsets that disagree where
only one fits the file) is read, and each work-around becomes one `FCSWarning`.
The parsing code collects these notes in a `Notes` list; the public functions
emit them once parsing is done, so the warnings point at the caller's line. A
file with many data sets can repeat a fault in each: at most `MAX_WARNINGS`
are issued per call, then one saying how many more there were.
"""

from __future__ import annotations

import warnings

from cytokit.errors import FCSError

__all__ = ["MAX_WARNINGS", "FCSWarning", "Notes"]

#: Warnings issued for one file by one call; the rest are counted in one more.
MAX_WARNINGS = 10


class FCSWarning(UserWarning):
    """An FCS file breaks the standard in a way cytokit read around; the message says how."""


class Notes:
    """The work-arounds applied while reading one file, and its errors.

    Parameters
    ----------
    where : str
        The file (and data set) the messages are about; every message starts with it.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.file = where
        self.items: list[str] = []
        self._seen: set[str] = set()

    def note(self, message: str) -> None:
        """Record a work-around (emitted later as an `FCSWarning`)."""
        message = f"{self.where}: {message}"
        if message not in self._seen:
            self._seen.add(message)
            self.items.append(message)

    def error(self, message: str) -> FCSError:
        """An `FCSError` whose message names the file; the caller raises it."""
        return FCSError(f"{self.where}: {message}")

    def emit(self, stacklevel: int = 3) -> None:
        """Issue the recorded notes as `FCSWarning` (each once, at most `MAX_WARNINGS`
        and then one counting the rest) and forget them."""
        for message in self.items[:MAX_WARNINGS]:
            warnings.warn(FCSWarning(message), stacklevel=stacklevel)
        more = len(self.items) - MAX_WARNINGS
        if more > 0:
            warnings.warn(
                FCSWarning(f"{self.file}: and {more} more warning(s) about this file"),
                stacklevel=stacklevel,
            )
        self.items.clear()
        self._seen.clear()
