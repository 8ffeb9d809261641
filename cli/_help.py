"""Help pages that read as written at any terminal width.

Click wraps help text where a word has a hyphen, so ``--qc-max-removed`` or
``'cytokit-flow[parquet]'`` could be cut over two lines and no longer be
copied whole. `HelpGroup` gives every command a formatter that wraps at spaces
only: hyphens are held as a non-breaking stand-in while the text is laid out,
and written back as hyphens.
"""

from __future__ import annotations

from typer.core import TyperGroup

try:  # typer 0.2x runs on its own copy of click
    from typer._click import Context, HelpFormatter
except ImportError:  # older typer runs on click itself
    from click import Context, HelpFormatter

__all__ = ["HelpGroup"]

#: Stands in for "-" while a help page is wrapped (one column wide, never a break).
_HELD = "\u2011"


def _hold(text: str) -> str:
    return text.replace("-", _HELD)


class _Formatter(HelpFormatter):
    def write_text(self, text: str) -> None:
        super().write_text(_hold(text))

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        super().write_dl([(_hold(a), _hold(b)) for a, b in rows], col_max, col_spacing)

    def getvalue(self) -> str:
        return super().getvalue().replace(_HELD, "-")


class _Context(Context):
    formatter_class = _Formatter


class HelpGroup(TyperGroup):
    """The ``cytokit`` group: it and each command lay out help with `_Formatter`."""

    context_class = _Context

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            command.context_class = _Context
