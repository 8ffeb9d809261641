"""Gating-ML 2.0 documents that are malformed, not Gating-ML, or hostile.

Every error names the file, the line and the element, and what was expected;
DTDs, entities and external references are refused without fetching anything.
"""

from __future__ import annotations

import socket

import pytest
from gatingml_cases import (
    NS,
)

from cytokit.errors import GatingError
from cytokit.gating.gatingml import read_gatingml

# --- malformed documents ------------------------------------------------------------------------

RANGE = """<gating:RectangleGate gating:id="R">
  <gating:dimension gating:compensation-ref="uncompensated" gating:min="1">
    <data-type:fcs-dimension data-type:name="FSC-H" />
  </gating:dimension>
</gating:RectangleGate>"""


def doc(body: str) -> str:
    """A document whose body starts on line 3."""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<gating:Gating-ML {NS}>\n{body}\n</gating:Gating-ML>\n'


def quadrant(position: str) -> str:
    return f"""<gating:QuadrantGate gating:id="Q">
  <gating:divider gating:id="D" gating:compensation-ref="uncompensated">
    <data-type:fcs-dimension data-type:name="FL1-H" />
    <gating:value>10</gating:value>
  </gating:divider>
  <gating:Quadrant gating:id="Q+">
    {position}
  </gating:Quadrant>
</gating:QuadrantGate>"""


def xform(inner: str, attrs: str = "") -> str:
    return f'<transforms:transformation transforms:id="X"{attrs}>\n  {inner}\n</transforms:transformation>\n{RANGE}'


def dim_with(attrs: str, axis: str = '<data-type:fcs-dimension data-type:name="FSC-H" />') -> str:
    return f"""<gating:RectangleGate gating:id="R">
  <gating:dimension gating:compensation-ref="uncompensated" gating:min="1" {attrs}>
    {axis}
  </gating:dimension>
</gating:RectangleGate>"""


LOGICLE_X = xform(
    '<transforms:logicle transforms:T="1000" transforms:W="0.5" transforms:M="4.5" transforms:A="0" />'
)
RATIO_X = xform(
    '<transforms:fratio transforms:A="1" transforms:B="0" transforms:C="0">'
    '<data-type:fcs-dimension data-type:name="FL2-H" /><data-type:fcs-dimension data-type:name="FL2-A" />'
    "</transforms:fratio>"
)
VERTEX = '<gating:vertex><gating:coordinate data-type:value="{}" /><gating:coordinate data-type:value="1" /></gating:vertex>'
POLY_DIMS = """<gating:dimension gating:compensation-ref="FCS"><data-type:fcs-dimension data-type:name="FL2-H" /></gating:dimension>
<gating:dimension gating:compensation-ref="FCS"><data-type:fcs-dimension data-type:name="FL3-H" /></gating:dimension>"""
ELLIPSE = """<gating:EllipsoidGate gating:id="E">
{dims}
<gating:mean><gating:coordinate data-type:value="1" /><gating:coordinate data-type:value="2" /></gating:mean>
<gating:covarianceMatrix>
<gating:row><gating:entry data-type:value="1" /><gating:entry data-type:value="{c}" /></gating:row>
<gating:row><gating:entry data-type:value="{c}" /><gating:entry data-type:value="1" /></gating:row>
</gating:covarianceMatrix>
<gating:distanceSquare data-type:value="1" />
</gating:EllipsoidGate>"""
BOOL = (
    """<gating:BooleanGate gating:id="B">
  <gating:{op}>
    <gating:gateReference gating:ref="R" {extra} />
    {more}
  </gating:{op}>
</gating:BooleanGate>
"""
    + RANGE
)
SPILL = (
    """<transforms:spectrumMatrix transforms:id="S">
  <transforms:fluorochromes><data-type:fcs-dimension data-type:name="FITC" /><data-type:fcs-dimension data-type:name="PE" /></transforms:fluorochromes>
  <transforms:detectors><data-type:fcs-dimension data-type:name="FL1-H" /><data-type:fcs-dimension data-type:name="FL2-H" /></transforms:detectors>
  <transforms:spectrum><transforms:coefficient transforms:value="1" /><transforms:coefficient transforms:value="0.1" /></transforms:spectrum>
  {row}
</transforms:spectrumMatrix>
"""
    + RANGE
)

MALFORMED = {
    "missing gate id": (
        RANGE.replace(' gating:id="R"', ""),
        r"line 3, <gating:RectangleGate>: missing attribute gating:id",
    ),
    "non-numeric min": (
        RANGE.replace('min="1"', 'min="1_000"'),
        r"line 4, <gating:dimension>: gating:min='1_000' is not a number",
    ),
    "no min or max": (
        RANGE.replace(' gating:min="1"', ""),
        r"line 4, <gating:dimension>: a rectangle dimension needs gating:min, gating:max",
    ),
    "min above max": (
        RANGE.replace('min="1"', 'min="5" gating:max="2"'),
        r"line 4, <gating:dimension>: min=5.0 > max=2.0",
    ),
    "unknown transformation-ref": (
        dim_with('gating:transformation-ref="Nope"'),
        r"line 4, <gating:dimension>: unknown transformation-ref 'Nope'",
    ),
    "ratio as scale transformation": (
        RATIO_X.replace(
            'compensation-ref="uncompensated"',
            'compensation-ref="uncompensated" gating:transformation-ref="X"',
        ),
        r"line 7, <gating:dimension>: transformation-ref 'X' is not a scale transformation",
    ),
    "scale transformation as new dimension": (
        LOGICLE_X.replace(
            '<data-type:fcs-dimension data-type:name="FSC-H" />',
            '<data-type:new-dimension data-type:transformation-ref="X" />',
        ),
        r"line 8, <data-type:new-dimension>: transformation-ref 'X' is not a transforms:fratio",
    ),
    "unknown compensation-ref": (
        RANGE.replace('"uncompensated"', '"MySpill"'),
        r"line 4, <gating:dimension>: unknown compensation-ref 'MySpill'",
    ),
    "two axes": (
        dim_with(
            "",
            '<data-type:fcs-dimension data-type:name="A" /><data-type:fcs-dimension data-type:name="B" />',
        ),
        r"line 4, <gating:dimension>: needs exactly one data-type:fcs-dimension or data-type:new-dimension, found 2",
    ),
    "axis without name": (
        dim_with("", "<data-type:fcs-dimension />"),
        r"line 5, <data-type:fcs-dimension>: missing attribute data-type:name",
    ),
    "unexpected child": (
        RANGE.replace("</gating:RectangleGate>", "<gating:vertex />\n</gating:RectangleGate>"),
        r"line 7, <gating:vertex>: unexpected element inside <gating:RectangleGate>; expected gating:dimension",
    ),
    "unknown gate reference": (
        BOOL.format(op="and", extra="", more='<gating:gateReference gating:ref="Nope" />'),
        r"line 6, <gating:gateReference>: unknown gate reference ref='Nope'.*defines B, R",
    ),
    "unknown parent": (
        RANGE.replace('gating:id="R"', 'gating:id="R" gating:parent_id="Lymphs"'),
        r"line 3, <gating:RectangleGate id=\"R\">: unknown gate reference parent_id='Lymphs'",
    ),
    "duplicate id": (
        RANGE + "\n" + RANGE,
        r"line 8, <gating:RectangleGate id=\"R\">: id 'R' is already used by <gating:RectangleGate> on line 3",
    ),
    "bad use-as-complement": (
        BOOL.format(
            op="and",
            extra='gating:use-as-complement="yes"',
            more='<gating:gateReference gating:ref="R" />',
        ),
        r"line 5, <gating:gateReference>: use-as-complement='yes' must be true or false",
    ),
    "not with two operands": (
        BOOL.format(op="not", extra="", more='<gating:gateReference gating:ref="R" />'),
        r"line 4, <gating:not>: gating:not takes exactly one gateReference, got 2",
    ),
    "two boolean operators": (
        BOOL.format(op="and", extra="", more="").replace(
            "</gating:BooleanGate>", "<gating:or />\n</gating:BooleanGate>", 1
        ),
        r"line 3, <gating:BooleanGate id=\"B\">: needs exactly one of gating:and, gating:or, gating:not; got 2",
    ),
    "reference to a quadrant gate": (
        quadrant('<gating:position gating:divider_ref="D" gating:location="15" />')
        + "\n"
        + RANGE.replace('gating:id="R"', 'gating:id="R" gating:parent_id="Q"'),
        r"line 12, <gating:RectangleGate id=\"R\">: parent_id='Q' names a quadrant gate, which is "
        r"not a population; name one of its quadrants \(Q\+\)",
    ),
    "quadrant divider_ref unknown": (
        quadrant('<gating:position gating:divider_ref="CD3" gating:location="15" />'),
        r"line 9, <gating:position>: bad quadrant position: divider_ref 'CD3' is not a divider of this gate \(its dividers are D\)",
    ),
    "quadrant location not a number": (
        quadrant('<gating:position gating:divider_ref="D" gating:location="high" />'),
        r"line 9, <gating:position>: gating:location='high' is not a number",
    ),
    "quadrant location missing": (
        quadrant('<gating:position gating:divider_ref="D" />'),
        r"line 9, <gating:position>: missing attribute gating:location",
    ),
    "quadrant divider named twice": (
        quadrant(
            '<gating:position gating:divider_ref="D" gating:location="15" />'
            '<gating:position gating:divider_ref="D" gating:location="5" />'
        ),
        r"line 9, <gating:position>: bad quadrant position: divider 'D' is named twice",
    ),
    "quadrant without positions": (
        quadrant(""),
        r"line 8, <gating:Quadrant id=\"Q\+\">: bad quadrant: it needs at least one gating:position",
    ),
    "divider value not a number": (
        quadrant('<gating:position gating:divider_ref="D" gating:location="15" />').replace(
            ">10<", ">ten<"
        ),
        r"line 6, <gating:value>: divider value 'ten' is not a finite number",
    ),
    "polygon with two vertices": (
        f'<gating:PolygonGate gating:id="P">\n{POLY_DIMS}\n{VERTEX.format(1)}\n{VERTEX.format(2)}\n</gating:PolygonGate>',
        r"line 3, <gating:PolygonGate id=\"P\">: a polygon needs at least 3 gating:vertex, got 2",
    ),
    "vertex with one coordinate": (
        f'<gating:PolygonGate gating:id="P">\n{POLY_DIMS}\n<gating:vertex><gating:coordinate data-type:value="1" /></gating:vertex>\n</gating:PolygonGate>',
        r"line 6, <gating:vertex>: a vertex needs 2 gating:coordinate, got 1",
    ),
    "ellipse mean too short": (
        ELLIPSE.format(dims=POLY_DIMS + "\n" + POLY_DIMS.split("\n")[0], c="0.5"),
        r"line 7, <gating:mean>: has 2 coordinates for 3 dimensions",
    ),
    "ellipse singular covariance": (
        ELLIPSE.format(dims=POLY_DIMS, c="1"),
        r"line 3, <gating:EllipsoidGate id=\"E\">: .*singular",
    ),
    "ellipse covariance with a negative variance": (
        ELLIPSE.format(dims=POLY_DIMS, c="0.5").replace(
            '<gating:entry data-type:value="1" /></gating:row>\n</gating:covarianceMatrix>',
            '<gating:entry data-type:value="-1" /></gating:row>\n</gating:covarianceMatrix>',
        ),
        r"line 3, <gating:EllipsoidGate id=\"E\">: gate 'E': covariance matrix \[\[1.0, 0.5\], "
        r"\[0.5, -1.0\]\] has variance -1.0 on row 1; the diagonal of a covariance matrix holds "
        r"variances, each > 0",
    ),
    "ellipse indefinite covariance": (
        ELLIPSE.format(dims=POLY_DIMS, c="2"),
        r"line 3, <gating:EllipsoidGate id=\"E\">: gate 'E': covariance matrix \[\[1.0, 2.0\], "
        r"\[2.0, 1.0\]\] is not positive definite \(eigenvalues \[-1.0, 3.0\]\)",
    ),
    "ellipse asymmetric covariance": (
        ELLIPSE.format(dims=POLY_DIMS, c="0.5").replace(
            '<gating:row><gating:entry data-type:value="0.5" />',
            '<gating:row><gating:entry data-type:value="0" />',
        ),
        r"line 3, <gating:EllipsoidGate id=\"E\">: gate 'E': covariance matrix \[\[1.0, 0.5\], "
        r"\[0.0, 1.0\]\] is not symmetric: row 0 column 1 is 0.5 but row 1 column 0 is 0.0",
    ),
    "polygon on one line": (
        f'<gating:PolygonGate gating:id="P">\n{POLY_DIMS}\n'
        + "".join(VERTEX.replace('value="1"', f'value="{v}"').format(v) for v in (1, 2, 3))
        + "\n</gating:PolygonGate>",
        r"line 3, <gating:PolygonGate id=\"P\">: gate 'P': vertices \[\[1.0, 1.0\], \[2.0, 2.0\], "
        r"\[3.0, 3.0\]\] lie on one line",
    ),
    "polygon on one dimension twice": (
        f'<gating:PolygonGate gating:id="P">\n{POLY_DIMS.replace("FL3-H", "FL2-H")}\n'
        + "".join(VERTEX.format(v) for v in (1, 2, 3)).replace(
            VERTEX.format(3), VERTEX.format(3).replace('value="1"', 'value="5"')
        )
        + "\n</gating:PolygonGate>",
        r"line 3, <gating:PolygonGate id=\"P\">: gate 'P' reads FL2-H \[FCS\] on two of its axes",
    ),
    "ellipse without distanceSquare": (
        ELLIPSE.format(dims=POLY_DIMS, c="0.5").replace(
            '<gating:distanceSquare data-type:value="1" />', ""
        ),
        r"line 3, <gating:EllipsoidGate id=\"E\">: needs exactly one <gating:distanceSquare>, found 0",
    ),
    "transformation without function": (
        xform(""),
        r"line 3, <transforms:transformation id=\"X\">: needs exactly one of transforms:flin, .*found none",
    ),
    "unknown transformation function": (
        xform('<transforms:biex transforms:T="1" />'),
        r"line 3, <transforms:transformation id=\"X\">: needs exactly one of .*found transforms:biex",
    ),
    "transformation parameter missing": (
        xform('<transforms:logicle transforms:T="1000" transforms:M="4.5" transforms:A="0" />'),
        r"line 4, <transforms:logicle>: missing attribute transforms:W",
    ),
    "transformation parameter out of range": (
        xform(
            '<transforms:logicle transforms:T="1000" transforms:W="3" transforms:M="4.5" transforms:A="0" />'
        ),
        r"line 4, <transforms:logicle>: logicle transform: .*W",
    ),
    "bounds reversed": (
        LOGICLE_X.replace(
            'transforms:id="X"', 'transforms:id="X" transforms:boundMin="1" transforms:boundMax="0"'
        ),
        r"line 3, <transforms:transformation id=\"X\">: boundMin=1.0 and boundMax=0.0",
    ),
    "fratio with one channel": (
        xform(
            '<transforms:fratio transforms:A="1" transforms:B="0" transforms:C="0"><data-type:fcs-dimension data-type:name="FL2-H" /></transforms:fratio>'
        ),
        r"line 4, <transforms:fratio>: needs two data-type:fcs-dimension",
    ),
    "spectrum row missing": (
        SPILL.format(row=""),
        r"line 3, <transforms:spectrumMatrix id=\"S\">: has 1 transforms:spectrum rows for 2 fluorochromes",
    ),
    "spectrum row too short": (
        SPILL.format(
            row='<transforms:spectrum><transforms:coefficient transforms:value="1" /></transforms:spectrum>'
        ),
        r"line 7, <transforms:spectrum>: has 1 coefficients for 2 detectors",
    ),
    "unexpected top-level element": (
        f"<gating:Gate />\n{RANGE}",
        r"line 3, <gating:Gate>: unexpected element directly inside <gating:Gating-ML>",
    ),
    "no gates": (
        LOGICLE_X.split("<gating:RectangleGate")[0],
        r"the Gating-ML document defines no gates",
    ),
    "cycle": (
        RANGE.replace('gating:id="R"', 'gating:id="R" gating:parent_id="S"')
        + "\n"
        + RANGE.replace('gating:id="R"', 'gating:id="S" gating:parent_id="R"'),
        r"cycle: .*R → S → R|cycle: .*S → R → S",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_documents_name_file_line_and_element(tmp_path, case):
    body, pattern = MALFORMED[case]
    path = tmp_path / "bad.xml"
    path.write_text(doc(body), encoding="utf-8")
    with pytest.raises(GatingError, match=pattern) as info:
        read_gatingml(path)
    assert str(info.value).startswith(str(path))


NOT_GATINGML = {
    "not XML at all": (b"\x00\x01binary", r"not a well-formed XML document: .* line 1, column 1"),
    "FCS file": (b"FCS3.1    256", r"this is an FCS data file, not a gating strategy"),
    "empty": (b"", r"the file is empty"),
    "truncated": (
        doc(RANGE).encode()[:-30],
        r"not a well-formed XML document: unclosed token at line 7",
    ),
    "wrong root": (
        b'<?xml version="1.0"?>\n<strategy />',
        r"line 2: wrong root element: .*<strategy>",
    ),
    "root without namespace": (
        b"<Gating-ML />",
        r"line 1: wrong root element: .*namespace \(none\)",
    ),
    "Gating-ML 1.5": (
        b'<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v1.5/gating" />',
        r"Gating-ML 1.5 document",
    ),
    "FlowJo workspace": (b"<Workspace version='20.0' />", r"this is a FlowJo workspace"),
}


@pytest.mark.parametrize("case", sorted(NOT_GATINGML))
def test_not_gatingml(tmp_path, case):
    data, pattern = NOT_GATINGML[case]
    path = tmp_path / "x.xml"
    path.write_bytes(data)
    with pytest.raises(GatingError, match=pattern):
        read_gatingml(path)


def test_missing_file_and_unknown_option(tmp_path):
    with pytest.raises(GatingError, match=r"nope.xml: Gating-ML file not found"):
        read_gatingml(tmp_path / "nope.xml")
    path = tmp_path / "ok.xml"
    path.write_text(doc(RANGE))
    with pytest.raises(GatingError, match=r"unknown option\(s\) group; it takes name="):
        read_gatingml(path, group="All Samples")
    assert read_gatingml(path, name="mine").name == "mine"


# --- XML attacks --------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gating:Gating-ML {ns}><data-type:custom_info>&lol9;</data-type:custom_info></gating:Gating-ML>
"""


def test_entity_expansion_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.xml"
    path.write_text(BILLION_LAUGHS.format(ns=NS))
    with pytest.raises(GatingError, match=r"bomb.xml, line 2: the document has a <!DOCTYPE>"):
        read_gatingml(path)


def test_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        f'<gating:Gating-ML {NS}><gating:RectangleGate gating:id="&xxe;" /></gating:Gating-ML>'
    )
    with pytest.raises(GatingError, match="DOCTYPE") as info:
        read_gatingml(path)
    assert "SECRET" not in str(info.value)


def test_undeclared_entity_reference_is_not_resolved(tmp_path):
    path = tmp_path / "ent.xml"
    path.write_text(doc(RANGE.replace('gating:id="R"', 'gating:id="&xxe;"')))
    with pytest.raises(GatingError, match=r"not a well-formed XML document: undefined entity"):
        read_gatingml(path)


def test_external_dtd_is_never_fetched(tmp_path):
    """A DOCTYPE pointing at a server: refused, and the server sees no connection."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        path = tmp_path / "dtd.xml"
        path.write_text(
            f'<?xml version="1.0"?>\n<!DOCTYPE gating:Gating-ML SYSTEM "http://127.0.0.1:{port}/g.dtd">\n'
            + doc(RANGE).split("\n", 1)[1]
        )
        with pytest.raises(GatingError, match="line 2: the document has a <!DOCTYPE>"):
            read_gatingml(path)
        with pytest.raises(BlockingIOError):
            server.accept()
