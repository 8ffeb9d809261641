"""Safe reading of FlowJo workspace XML, with line numbers for messages.

Workspaces are parsed with `defusedxml` (no entity expansion, no external
resources). Namespace prefixes are dropped from element and attribute names
(FlowJo 10 mixes the Gating-ML ``gating:``, ``transforms:`` and
``data-type:`` prefixes with unprefixed names, inconsistently between
versions), and every element remembers the line it starts on so that errors
can point at it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from cytokit.errors import GatingError
from cytokit.gating.limits import MAX_FILE_BYTES, check_size, too_large

__all__ = ["Element", "child", "children", "number", "parse_workspace_xml", "where"]


class Element(ET.Element):
    """An XML element with the line it starts on (`line`) and local names only."""

    line: int = 0


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1] if name.startswith("{") else name.split(":")[-1]


class _Builder(ET.TreeBuilder):
    def __init__(self) -> None:
        super().__init__(element_factory=self._element)
        self.parser = None

    def _element(self, tag: str, attrs: dict[str, str]) -> Element:
        local = {}
        for k, v in attrs.items():
            local.setdefault(_local(k), v)
        el = Element(_local(tag), local)
        el.line = self.parser.parser.CurrentLineNumber if self.parser is not None else 0
        return el


def parse_workspace_xml(path: Path) -> Element:
    """The root element of a workspace file.

    Raises
    ------
    GatingError
        The file cannot be read, is larger than
        ``cytokit.gating.limits.MAX_FILE_BYTES["workspace"]``, is not
        well-formed XML (the message gives the line and column), or uses
        entities or external references, which a workspace never needs and
        which `defusedxml` refuses for safety.
    """
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    builder = _Builder()
    parser = DefusedXMLParser(target=builder)
    builder.parser = parser
    limit = MAX_FILE_BYTES["workspace"]
    try:
        check_size(path, "workspace")
        with open(path, "rb") as fh:
            read = 0
            while chunk := fh.read(1 << 20):
                read += len(chunk)
                if read > limit:  # grew since stat, or a pipe
                    raise too_large(path, "workspace")
                parser.feed(chunk)
            root = parser.close()
    except OSError as exc:
        raise GatingError(f"{path}: cannot read the workspace: {exc.strerror or exc}") from None
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        msg = str(exc).split(":", 1)[0]
        raise GatingError(
            f"{path}: not well-formed XML at line {line}, column {col + 1} ({msg}); the "
            "workspace is damaged or truncated: save it again from FlowJo"
        ) from None
    except DefusedXmlException as exc:
        raise GatingError(
            f"{path}: refused to read the workspace: {exc}. FlowJo workspaces never use "
            "entity declarations or external references"
        ) from None
    return root


def where(path: Path | str, el: Element) -> str:
    """``"file.wsp, <Tag> at line N"`` for messages."""
    return f"{Path(path).name}, <{el.tag}> at line {el.line}"


def children(el: Element, tag: str) -> list[Element]:
    """Direct children with local name `tag`."""
    return [c for c in el if c.tag == tag]


def child(el: Element, tag: str) -> Element | None:
    """The first direct child with local name `tag`, or None."""
    for c in el:
        if c.tag == tag:
            return c
    return None


def number(el: Element, attr: str, path: Path | str, default: float | None = None) -> float:
    """Attribute `attr` of `el` as a float.

    Raises
    ------
    GatingError
        Missing (and no default) or not a number; names the file, element and line.
    """
    raw = el.get(attr)
    if raw is None:
        if default is not None:
            return default
        raise GatingError(f"{where(path, el)}: attribute {attr!r} is missing")
    try:
        return float(raw)
    except ValueError:
        raise GatingError(f"{where(path, el)}: attribute {attr}={raw!r} is not a number") from None
