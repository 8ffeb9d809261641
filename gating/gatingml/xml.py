"""Gating-ML 2.0 vocabulary, safe line-numbered XML parsing, and helpers of the reader and writer.

`parse_xml` parses with defusedxml's expat parser with every protection on:
a ``<!DOCTYPE>`` is refused outright (so no entity can be defined, and no
entity-expansion bomb built), external entities and DTDs are never fetched.
ElementTree drops source positions, so each element is stamped with the line
its start tag is on, for error messages.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from cytokit.errors import GatingError
from cytokit.gating.transforms import (
    AsinhTransform,
    HyperlogTransform,
    LinearTransform,
    LogicleTransform,
    LogTransform,
    Transform,
)

__all__ = [
    "CYTOKIT",
    "DATATYPES",
    "GATE_KINDS",
    "GATING",
    "PREFIXES",
    "SCALE_TRANSFORMS",
    "TRANSFORMS",
    "UNBOUNDED",
    "Element",
    "attr",
    "check_root",
    "cytokit_children",
    "cytokit_info",
    "fold_clamp",
    "parse_double",
    "parse_xml",
    "qname",
]

GATING = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATATYPES = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
#: Namespace of cytokit's own annotations inside ``data-type:custom_info``.
CYTOKIT = "urn:cytokit:gating-ml:1"
PREFIXES = {GATING: "gating", TRANSFORMS: "transforms", DATATYPES: "data-type", CYTOKIT: "cytokit"}

#: Gating-ML scale transformations: element → (class, parameters in document order).
SCALE_TRANSFORMS: dict[str, tuple[type[Transform], tuple[str, ...]]] = {
    "flin": (LinearTransform, ("T", "A")),
    "flog": (LogTransform, ("T", "M")),
    "fasinh": (AsinhTransform, ("T", "M", "A")),
    "logicle": (LogicleTransform, ("T", "W", "M", "A")),
    "hyperlog": (HyperlogTransform, ("T", "W", "M", "A")),
}
#: A clamp that does not clamp (a transformation without boundMin/boundMax).
UNBOUNDED = (-math.inf, math.inf)
GATE_KINDS = ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")

# xsd:double lexical space, plus the spellings Python writes (inf, nan).
_DOUBLE = re.compile(r"[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|inf|infinity)|nan", re.IGNORECASE)


class Element(ET.Element):
    """An element that knows the line its start tag is on."""

    line = 0


class _LineBuilder:
    """ElementTree target that stamps each element with expat's current line."""

    def __init__(self) -> None:
        self._builder = ET.TreeBuilder(element_factory=Element)
        self.expat = None

    def start(self, tag, attrs):
        el = self._builder.start(tag, attrs)
        el.line = self.expat.CurrentLineNumber
        return el

    def end(self, tag):
        return self._builder.end(tag)

    def data(self, text):
        self._builder.data(text)

    def close(self):
        return self._builder.close()


def parse_xml(data: bytes, where: str) -> Element:
    """Parse `data` safely (no DTD, no entities, nothing external) into line-stamped elements."""
    target = _LineBuilder()
    parser = DefusedXMLParser(
        target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    target.expat = parser.parser
    try:
        parser.feed(data)
        return parser.close()
    except ET.ParseError as exc:
        line, col = exc.position
        reason = str(exc).split(":", 1)[0]
        hint = ""
        if data[:3] == b"FCS":
            hint = " (this is an FCS data file, not a gating strategy)"
        elif not data.strip():
            hint = " (the file is empty)"
        raise GatingError(
            f"{where}: not a well-formed XML document{hint}: {reason} at line {line}, "
            f"column {col + 1}; a Gating-ML 2.0 strategy is an XML file"
        ) from None
    except DTDForbidden:
        raise GatingError(
            f"{where}, line {parser.parser.CurrentLineNumber}: the document has a <!DOCTYPE> "
            "declaration, which cytokit refuses (a DTD can define entity-expansion bombs or "
            "fetch external files); Gating-ML 2.0 needs no DTD, so delete it"
        ) from None
    except (EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise GatingError(
            f"{where}, line {parser.parser.CurrentLineNumber}: the document declares or "
            f"references an XML entity ({type(exc).__name__}); cytokit refuses entities "
            "(expansion bombs, external files). Write the values out instead"
        ) from None


def qname(tag: str) -> str:
    """``{ns}local`` as ``prefix:local`` with the Gating-ML prefixes."""
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        prefix = PREFIXES.get(ns)
        return f"{prefix}:{local}" if prefix else f"{local} (namespace {ns})"
    return tag


def parse_double(text: str | None) -> float | None:
    """An xsd:double (or Python's spelling of one); None if it is not a number."""
    if text is None:
        return None
    s = text.strip()
    if not _DOUBLE.fullmatch(s):
        return None
    return float(s)


def attr(el: Element, ns: str, name: str) -> str | None:
    # Gating-ML attributes are namespace-qualified; unqualified spellings are accepted too.
    v = el.get(f"{{{ns}}}{name}")
    return el.get(name) if v is None else v


def check_root(root: Element, where: str) -> None:
    """Raise `GatingError` unless `root` is <gating:Gating-ML> (saying what the file is instead)."""
    if root.tag == f"{{{GATING}}}Gating-ML":
        return
    local = root.tag.rsplit("}", 1)[-1]
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if local == "Gating-ML" and "v1.5" in ns:
        msg = (
            f"this is a Gating-ML 1.5 document (namespace {ns}); cytokit reads Gating-ML 2.0 "
            f"({GATING}). Convert it to 2.0 (e.g. re-export it from the tool that wrote it)"
        )
    elif local == "Gating-ML":
        msg = (
            f"the root element is in namespace {ns or '(none)'}; a Gating-ML 2.0 document's "
            f"root is <gating:Gating-ML> with xmlns:gating={GATING!r}"
        )
    elif local == "Workspace":
        msg = (
            "this is a FlowJo workspace, not Gating-ML; read it with "
            "cytokit.gating.load_strategy, which recognises workspaces"
        )
    else:
        msg = (
            f"the root element is <{qname(root.tag)}>; a Gating-ML 2.0 document's root is "
            f"<gating:Gating-ML> with xmlns:gating={GATING!r}"
        )
    raise GatingError(f"{where}, line {root.line}: wrong root element: {msg}")


def fold_clamp(lo, hi, clamp):
    """Rectangle bounds on a clamped value, as bounds on the unclamped value (exact)."""
    if clamp == UNBOUNDED:
        return lo, hi
    low, high = clamp
    if lo is not None:
        if lo <= low:
            lo = None  # every clamped value is >= low >= lo
        elif lo > high:
            return 0.0, 0.0  # no clamped value reaches lo: an empty interval
    if hi is not None:
        if hi > high:
            hi = None
        elif hi <= low:
            return 0.0, 0.0
    return lo, hi


def cytokit_children(el: Element, local: str) -> list[Element]:
    """cytokit's <cytokit:`local`> annotations in the custom_info of `el`."""
    return [
        m
        for info in el.findall(f"{{{DATATYPES}}}custom_info")
        for m in info.findall(f"{{{CYTOKIT}}}{local}")
    ]


def cytokit_info(el: Element, local: str) -> dict[str, str]:
    found = cytokit_children(el, local)
    return dict(found[0].attrib) if found else {}
