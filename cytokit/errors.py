"""The exceptions cytokit raises on bad input.

Every message names the file (or object), the value at fault, what was expected
and, where there is one, the fix. Library code raises; only the CLI prints.
"""

from __future__ import annotations

__all__ = ["CytokitError", "FCSError", "GatingError", "PanelError", "StudyError"]


class CytokitError(Exception):
    """Base class of every error cytokit raises on purpose."""


class FCSError(CytokitError, ValueError):
    """An FCS file is malformed, truncated, unsupported or not an FCS file."""


class PanelError(CytokitError, KeyError):
    """A marker or channel named in a panel is not in the sample."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class GatingError(CytokitError, ValueError):
    """A gating strategy is malformed or cannot be applied to a sample."""


class StudyError(CytokitError, ValueError):
    """A study folder, manifest or configuration is invalid."""
