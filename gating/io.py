"""`load_strategy`: read a gating strategy from a file, whatever its format."""

from __future__ import annotations

from pathlib import Path

from cytokit.errors import GatingError
from cytokit.gating.strategy import GatingStrategy

__all__ = ["load_strategy"]

FORMATS = {
    ".xml": "Gating-ML 2.0 (or a FlowJo workspace saved as .xml)",
    ".wsp": "FlowJo 10 workspace",
    ".yaml": "cytokit YAML strategy",
    ".yml": "cytokit YAML strategy",
}


def _root_tag(path: Path) -> str:
    """The local name of the document element, read from the first 64 KiB.

    The prolog is skipped as XML defines it: the declaration and processing
    instructions (``<?…?>``), comments (``<!--…-->``, which may hold markup
    such as ``<Workspace>``) and a ``<!DOCTYPE …>`` with its internal subset.
    """
    with path.open("rb") as fh:
        head = fh.read(65536).decode("utf-8", "replace")
    i = 0
    while True:
        i = head.find("<", i)
        if i < 0 or i + 1 >= len(head):
            return ""
        for start, end in (("<!--", "-->"), ("<?", "?>"), ("<![CDATA[", "]]>")):
            if head.startswith(start, i):
                j = head.find(end, i + len(start))
                if j < 0:
                    return ""
                i = j + len(end)
                break
        else:
            if head[i + 1] == "!":  # <!DOCTYPE name [internal subset]>
                bracket, close = head.find("[", i), head.find(">", i)
                if 0 <= bracket < close:
                    close = head.find(">", max(head.find("]", bracket), bracket))
                if close < 0:
                    return ""
                i = close + 1
                continue
            name = head[i + 1 :].split(None, 1)[0].split(">", 1)[0].split("/", 1)[0]
            return name.split(":")[-1]


def load_strategy(path: str | Path, **options) -> GatingStrategy:
    """Read a gating strategy.

    Parameters
    ----------
    path : path
        ``.xml`` (Gating-ML 2.0; a FlowJo workspace exported as XML is
        recognised by its root element), ``.wsp`` (FlowJo 10 workspace) or
        ``.yaml``/``.yml`` (cytokit's own format).
    **options
        Passed to the format's reader (e.g. ``group=`` or ``sample=`` for a
        FlowJo workspace).

    Raises
    ------
    GatingError
        The file does not exist, has an unknown suffix, is malformed (the
        message names the element or line), or is beyond the bounds of
        `cytokit.gating.limits` (file size, tree depth, populations, path
        length; for YAML also nesting, aliases and integers).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GatingError(
            f"{path}: unknown strategy format {suffix or '(no suffix)'!r}; use "
            + ", ".join(f"{k} ({v})" for k, v in FORMATS.items())
        )
    if not path.is_file():
        if path.exists():  # reading a FIFO would wait for a writer forever
            raise GatingError(
                f"{path}: not a regular file (a folder, FIFO or device); give the strategy file"
            )
        raise GatingError(f"{path}: strategy file not found")
    if suffix in (".yaml", ".yml"):
        from cytokit.gating.yamlfmt.reader import read_yaml_strategy

        return read_yaml_strategy(path, **options)
    if suffix == ".wsp" or _root_tag(path) == "Workspace":
        from cytokit.gating.flowjo import read_workspace_strategy

        return read_workspace_strategy(path, **options)
    from cytokit.gating.gatingml import read_gatingml

    return read_gatingml(path, **options)
