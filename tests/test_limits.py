"""Resource bounds of the strategy and configuration readers (README "Limits").

Every bound is enforced through the doors a lab uses (`load_strategy`,
`load_workspace`, `load_study`, ``cytokit analyze``, ``cytokit gate``) with a
one-line error naming the file, the limit and the value, in seconds; and a
tree at the depth limit still gates exactly like the reference (the ISAC
compliance truth, FlowJo's own count).
"""

from __future__ import annotations

import re
import shutil
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import cytokit
from cytokit import GatingError, StudyError
from cytokit.cli.app import run
from cytokit.gating import (
    Dimension,
    Divider,
    GatingStrategy,
    Quadrant,
    QuadrantGate,
    RectangleGate,
    flowjo,
    load_strategy,
)
from cytokit.gating.yamlfmt import write_yaml_strategy
from cytokit.study._toml import load_toml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
CORPUS = ROOT.parent / "shared" / "corpus"
GATE_REF = CORPUS / "flowkit" / "data" / "gate_ref"
DIAMOND = CORPUS / "flowkit" / "data" / "simple_diamond_example"

NS = (
    'xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
    'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"'
)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"corpus file not found: {path}")
    return path


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    assert len(message) < 600, message
    return message


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (and no time) to make."""
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


# -- YAML strategies ----------------------------------------------------------------------


def alias_bomb(levels: int = 8, fan: int = 10) -> str:
    """Each anchor a list of `fan` aliases of the previous one: fan**levels values."""
    parts = ["&a0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels + 1):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "name: [" + ", ".join(parts) + "]\ngates:\n  - name: A\n    range: {FSC-A: [0, null]}\n"


def test_yaml_alias_bomb_is_refused_before_anything_expands(tmp_path):
    # 10**8 values from under a kilobyte: this exhausted memory after minutes
    path = write(tmp_path, "bomb.yaml", alias_bomb())
    with pytest.raises(GatingError) as exc:
        load_strategy(path)
    msg = one_line(exc)
    assert re.search(r"bomb\.yaml, line 1: .*aliases.*[\d,]+ values.*at most 1,000,000", msg)


def test_yaml_aliases_and_merges_within_bounds_read_as_written_out(tmp_path):
    shared = """
        transform: none
        compensation: uncompensated
        gates:
          - name: A
            range: {FSC-H: &r [10, 900], SSC-H: [0, null]}
            gates:
              - name: B
                range: {FSC-H: *r}
              - {name: C, <<: &p {polygon: [FSC-H, SSC-H], vertices: [[0, 0], [500, 0], [0, 500]]}}
              - {name: D, <<: *p}
        """
    plain = """
        transform: none
        compensation: uncompensated
        gates:
          - name: A
            range: {FSC-H: [10, 900], SSC-H: [0, null]}
            gates:
              - name: B
                range: {FSC-H: [10, 900]}
              - {name: C, polygon: [FSC-H, SSC-H], vertices: [[0, 0], [500, 0], [0, 500]]}
              - {name: D, polygon: [FSC-H, SSC-H], vertices: [[0, 0], [500, 0], [0, 500]]}
        """
    a = load_strategy(write(tmp_path, "a.yaml", textwrap.dedent(shared)))
    b = load_strategy(write(tmp_path, "b.yaml", textwrap.dedent(plain)))
    assert a.paths == b.paths == ("/A", "/A/B", "/A/C", "/A/D")
    assert [repr(g) for g in a.gates] == [repr(g) for g in b.gates]


@pytest.mark.parametrize(
    "text",
    [
        "name: &a [x, *a]\ngates: [{name: A, range: {FSC-A: [0, 1]}}]\n",
        "gates: &g [{name: A, range: {FSC-A: [0, 1]}, gates: *g}]\n",
    ],
    ids=["list", "gates"],
)
def test_yaml_alias_inside_itself_is_refused(tmp_path, text):
    with pytest.raises(GatingError, match=r"line 1: an alias .* it is inside") as exc:
        load_strategy(write(tmp_path, "loop.yaml", text))
    one_line(exc)


@pytest.mark.parametrize(
    "text",
    [
        "gates: " + "[" * 3000 + "]" * 3000 + "\n",
        "gates: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        "gates:\n" + "".join(" " * i + "- \n" for i in range(3000)),
    ],
    ids=["flow lists", "flow tables", "block lists"],
)
def test_yaml_nested_thousands_deep_is_refused(tmp_path, text):
    # a RecursionError traceback before
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "deep.yaml", text))
    assert re.search(r"deep\.yaml, line \d+: .*nested more than 320 levels", one_line(exc))


@pytest.mark.parametrize(
    "number",
    ["9" * 5000, ":".join(["59"] * 3000), str(2**63), "-" + str(2**63), "0x1" + "0" * 16],
    ids=["5000 digits", "base 60", "2**63", "-2**63", "hex"],
)
def test_yaml_integer_beyond_64_bits_is_refused(tmp_path, number):
    # 5,000 digits was a ValueError traceback; base 60 built a 5,000-digit integer
    text = f"name: x\ngates:\n  - name: A\n    range: {{FSC-A: [0, {number}]}}\n"
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "int.yaml", text))
    assert re.search(r"int\.yaml, line 4: the integer .* beyond 64 bits", one_line(exc))


def test_yaml_largest_integer_is_read(tmp_path):
    text = f"gates:\n  - name: A\n    range: {{FSC-A: [0, {2**63 - 1}]}}\n"
    gate = load_strategy(write(tmp_path, "int.yaml", text)).gates[0]
    assert gate.max == (float(2**63 - 1),)


def test_yaml_file_over_8_mib_is_refused_unread(tmp_path):
    path = write(tmp_path, "big.yaml", "gates: [{name: A, range: {FSC-A: [0, 1]}}]\n")
    with path.open("a") as fh:
        fh.write("#" * (8 * 2**20))
    with pytest.raises(GatingError) as exc:
        load_strategy(path)
    assert re.search(
        r"big\.yaml: the file is 8,388,6\d\d bytes; .* at most 8,388,608", one_line(exc)
    )


def test_yaml_quadrants_beyond_the_population_bound_are_refused(tmp_path):
    # 15 dimensions would make 32,768 quadrants, two gates of 14 make 32,768 populations
    dims = ", ".join(f"D{i}: 1" for i in range(15))
    with pytest.raises(GatingError, match=r"q\.yaml, line 2: 15 dimensions make 2\^15 quadrants"):
        load_strategy(write(tmp_path, "q.yaml", f"gates:\n  - quadrants: {{{dims}}}\n"))
    two = "gates:\n" + "".join(
        "  - quadrants: {" + ", ".join(f"{d}{i}: 1" for i in range(14)) + "}\n" for d in "DE"
    )
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "q2.yaml", two))
    assert "more than 20,000 populations" in one_line(exc)


def flat_chain_yaml(n: int) -> str:
    """`n` gates in one top-level list, each the parent of the one before it."""
    lines = ["transform: none", "gates:"]
    for i in reversed(range(n)):
        parent = f", parent: G{i - 1}" if i else ""
        lines.append(f"  - {{name: G{i}{parent}, range: {{FSC-H: [0, null]}}}}")
    return "\n".join(lines) + "\n"


def test_yaml_flat_parent_chain_deeper_than_the_limit_is_refused(tmp_path):
    # read in full before, building 2,000 paths that each repeat their ancestors
    path = write(tmp_path, "chain.yaml", flat_chain_yaml(2000))
    with pytest.raises(GatingError) as exc:
        load_strategy(path)
    assert re.search(r"chain\.yaml, line \d+: .*level 101 .* at most 100 levels", one_line(exc))
    assert (
        load_strategy(write(tmp_path, "ok.yaml", flat_chain_yaml(100))).populations[-1].depth == 100
    )


def test_yaml_parent_cycle_is_named(tmp_path):
    text = """\
        gates:
          - {name: A, parent: C, range: {FSC-A: [0, 1]}}
          - {name: B, parent: A, range: {FSC-A: [0, 1]}}
          - {name: C, parent: B, range: {FSC-A: [0, 1]}}
          - {name: D, range: {FSC-A: [0, 1]}}
        """
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "cycle.yaml", textwrap.dedent(text)))
    assert re.search(r"cycle\.yaml, line \d: .*cycle: (A → C → B → A|C → B → A → C)", one_line(exc))


def test_yaml_boolean_cycle_is_refused(tmp_path):
    text = "gates:\n  - {name: A, and: [B]}\n  - {name: B, or: [A]}\n"
    with pytest.raises(GatingError, match=r"cycle: /A → /B → /A|cycle: /B → /A → /B"):
        load_strategy(write(tmp_path, "bool.yaml", text))


# -- Gating-ML ----------------------------------------------------------------------------


def rect(gid: str, parent: str | None = None, dims=(("FSC-H", 0, None),)) -> str:
    par = f' gating:parent_id="{parent}"' if parent else ""
    body = ""
    for name, lo, hi in dims:
        bounds = "".join(
            f' gating:{k}="{v}"' for k, v in (("min", lo), ("max", hi)) if v is not None
        )
        body += (
            f'<gating:dimension gating:compensation-ref="uncompensated"{bounds}>'
            f'<data-type:fcs-dimension data-type:name="{name}"/></gating:dimension>'
        )
    return f'<gating:RectangleGate gating:id="{gid}"{par}>{body}</gating:RectangleGate>'


def gml(gates: list[str]) -> str:
    return (
        f'<?xml version="1.0"?>\n<gating:Gating-ML {NS}>\n'
        + "\n".join(gates)
        + "\n</gating:Gating-ML>\n"
    )


@pytest.mark.parametrize("order", ["parents first", "children first"])
def test_gatingml_parent_chain_of_thousands_is_refused(tmp_path, order):
    # children first was a RecursionError; parents first built every ancestor's path again
    gates = [rect(f"G{i}", f"G{i - 1}" if i else None) for i in range(5000)]
    if order == "children first":
        gates.reverse()
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "chain.xml", gml(gates)))
    msg = one_line(exc)
    assert re.search(
        r"chain\.xml: the gate tree is 5,000 levels deep \(at 'G4999'\).* 100 levels", msg
    )


def test_gatingml_deep_chain_is_refused_before_its_gates_are_built(tmp_path):
    # the last gate is malformed: the depth is what is reported, found before the reader
    # spends seconds building gates it would then refuse (20,000 levels took 12 s)
    gates = [rect(f"G{i}", f"G{i - 1}" if i else None) for i in range(5000)]
    gates[-1] = rect("G4999", "G4998", (("FSC-H", 5, 1),))
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "chain.xml", gml(gates)))
    assert "the gate tree is 5,000 levels deep (at 'G4999')" in one_line(exc)


@pytest.mark.parametrize("kind", ["parent_id", "Boolean"])
def test_gatingml_long_reference_cycle_is_refused_in_one_line(tmp_path, kind):
    n = 5000
    if kind == "parent_id":
        gates = [rect(f"G{i}", f"G{(i - 1) % n}") for i in range(n)]
    else:
        gates = [
            f'<gating:BooleanGate gating:id="G{i}"><gating:not><gating:gateReference '
            f'gating:ref="G{(i + 1) % n}"/></gating:not></gating:BooleanGate>'
            for i in range(n)
        ]
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "cycle.xml", gml(gates)))
    assert re.search(
        r"cycle\.xml: gates refer to each other in a cycle: G\d+ → .*4,99\d more", one_line(exc)
    )


def test_gatingml_with_too_many_populations_is_refused_before_building_gates(tmp_path):
    gates = [rect(f"G{i}") for i in range(20_001)]
    with pytest.raises(GatingError) as exc:
        load_strategy(write(tmp_path, "many.xml", gml(gates)))
    assert "many.xml: 20,001 populations; cytokit reads strategies of at most 20,000" in one_line(
        exc
    )


def test_gatingml_file_over_64_mib_is_refused_unread(tmp_path):
    path = sparse(tmp_path / "huge.xml", 64 * 2**20 + 1)
    with pytest.raises(GatingError) as exc:
        load_strategy(path)
    assert "huge.xml: the file is 67,108,865 bytes; cytokit reads a Gating-ML" in one_line(exc)


# -- the gate tree at the depth limit -------------------------------------------------------

RECT1 = (("SSC-H", 20, 80), ("FL1-H", 70, 200))  # the ISAC compliance suite's Rectangle1


def rectangle1_chain_yaml(n: int) -> str:
    """`n` copies of Rectangle1, each nested in the one before."""
    lines = ["transform: none", "compensation: uncompensated", "gates:"]
    for i in range(n):
        pad = "    " * i
        lines += [
            f"{pad}  - name: R{i}",
            f"{pad}    range: {{SSC-H: [20, 80], FL1-H: [70, 200]}}",
        ]
        if i < n - 1:
            lines.append(f"{pad}    gates:")
    return "\n".join(lines) + "\n"


@pytest.mark.corpus
def test_tree_at_the_depth_limit_gates_like_the_compliance_truth(tmp_path):
    data1 = cytokit.read_fcs(need(GATE_REF / "data1.fcs"))
    truth = np.loadtxt(need(GATE_REF / "truth" / "Results_Rectangle1.txt"), dtype=bool)
    chain = [rect(f"R{i}", f"R{i - 1}" if i else None, RECT1) for i in range(100)]
    strategies = {
        "Gating-ML": load_strategy(write(tmp_path, "chain.xml", gml(chain))),
        "YAML": load_strategy(write(tmp_path, "chain.yaml", rectangle1_chain_yaml(100))),
    }
    for fmt, s in strategies.items():
        leaf = s.populations[-1]
        assert leaf.depth == 100, fmt
        result = s.apply(data1)
        np.testing.assert_array_equal(result.membership(leaf.path), truth, err_msg=fmt)
        # written out and read back, in both formats: nothing on the way recurses too deep
        for name in ("again.yaml", "again.xml"):
            out = tmp_path / name
            write_yaml_strategy(s, out) if name.endswith(".yaml") else s.to_gatingml(out)
            again = load_strategy(out).apply(data1)
            np.testing.assert_array_equal(again.membership(leaf.path), truth, err_msg=fmt)
    for n in (101, 150):
        with pytest.raises(GatingError, match=r"at most 100 levels"):
            load_strategy(write(tmp_path, f"c{n}.yaml", rectangle1_chain_yaml(n)))


def quadrant_chain(n: int) -> GatingStrategy:
    """`n` quadrant gates, each inside the + quadrant of the one before: YAML's deepest nesting."""
    gates, parent = [], None
    for i in range(n):
        d = Dimension("FSC-A")
        quads = (Quadrant(f"Q{i}-", ((f"D{i}", 0.0),)), Quadrant(f"Q{i}+", ((f"D{i}", 2.0),)))
        gates.append(
            QuadrantGate(
                id=f"Q{i}", parent=parent, dividers=(Divider(f"D{i}", d, (1.0,)),), quadrants=quads
            )
        )
        parent = f"Q{i}+"
    return GatingStrategy(gates)


def test_quadrant_tree_at_the_depth_limit_round_trips_through_yaml(tmp_path):
    s = quadrant_chain(100)
    out = write_yaml_strategy(s, tmp_path / "quads.yaml")
    again = load_strategy(out)
    assert again.paths == s.paths and max(p.depth for p in again.populations) == 100
    with pytest.raises(GatingError, match=r"the gate tree is 101 levels deep"):
        quadrant_chain(101)


def test_paths_are_not_stored(tmp_path):
    # a 99-level chain of 40-character names with 10,000 leaves at the bottom: stored
    # paths would take 40 MB (each ~4,000 characters); built on demand they take none
    dim = (Dimension("FSC-A"),)
    gates, parent = [], None
    for i in range(99):
        gates.append(
            RectangleGate(
                id=f"C{i}",
                parent=parent,
                name=f"{i:02d}" + "x" * 38,
                dims=dim,
                min=(0.0,),
                max=(None,),
            )
        )
        parent = f"C{i}"
    gates += [
        RectangleGate(id=f"L{j}", parent=parent, dims=dim, min=(0.0,), max=(None,))
        for j in range(10_000)
    ]
    tracemalloc.start()
    try:
        s = GatingStrategy(gates)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"building the strategy peaked at {peak / 1e6:.0f} MB"
    leaf = "/" + "/".join(f"{i:02d}" + "x" * 38 for i in range(99)) + "/L9999"
    assert s.population(leaf).id == "L9999" and s.population("L9999").path == leaf
    assert len(leaf) == 4065 and s.paths[-1] == leaf


def test_path_longer_than_4096_characters_is_refused():
    dim = (Dimension("FSC-A"),)
    a = RectangleGate(id="a", name="A" * 3000, dims=dim, min=(0.0,), max=(None,))
    b = RectangleGate(id="b", parent="a", name="B" * 1100, dims=dim, min=(0.0,), max=(None,))
    with pytest.raises(GatingError) as exc:
        GatingStrategy([a, b])
    assert re.search(
        r"population '/AAA+…B+' has a path of 4,102 characters; .* at most 4,096", one_line(exc)
    )
    GatingStrategy(
        [a, RectangleGate(id="c", parent="a", name="C" * 1094, dims=dim, min=(0.0,), max=(None,))]
    )


def test_same_path_through_a_name_holding_a_slash_is_refused_and_lookups_are_exact():
    dim = (Dimension("FSC-A"),)

    def g(gid, parent=None, name=""):
        return RectangleGate(id=gid, parent=parent, name=name, dims=dim, min=(0.0,), max=(None,))

    s = GatingStrategy(
        [g("a", name="A"), g("ab", "a", "B"), g("x", "ab", "C/D"), g("y", "a", "B/C")]
    )
    assert s.population("/A/B/C/D").id == "x" and s.population("/A/B/C").id == "y"
    assert s.population("A/B").id == "ab" and "/A/B/C/D/" not in s.paths
    with pytest.raises(GatingError, match=r"'abc' and 'z' have the same path '/A/B/C'"):
        GatingStrategy(
            [g("a", name="A"), g("ab", "a", "B"), g("abc", "ab", "C"), g("z", "a", "B/C")]
        )


def test_strategy_with_too_many_populations_is_refused():
    dim = (Dimension("FSC-A"),)
    gates = [RectangleGate(id=f"G{i}", dims=dim, min=(0.0,), max=(None,)) for i in range(20_001)]
    with pytest.raises(GatingError, match=r"20,001 populations; .* at most 20,000"):
        GatingStrategy(gates)


# -- FlowJo workspaces ----------------------------------------------------------------------


def deep_workspace(levels: int, name=lambda i: f"P{i}") -> str:
    """The diamond example with its one rectangle gate nested `levels` deep."""
    text = need(DIAMOND / "test_data_diamond_biex_rect.wsp").read_text()
    gate = re.search(r"<Gate gating:id.*?</Gate>", text, re.S).group(0)
    head, rest = text.split("<Subpopulations>", 1)
    tail = rest.split("</Subpopulations>", 1)[1]
    body = "".join(
        f'<Population name="{name(i)}" count="50605">{gate}<Subpopulations>' for i in range(levels)
    )
    body += "</Subpopulations></Population>" * levels
    return head + "<Subpopulations>" + body + "</Subpopulations>" + tail


@pytest.mark.corpus
def test_flowjo_tree_thousands_deep_is_refused(tmp_path):
    # a RecursionError traceback before
    path = write(tmp_path, "deep.wsp", deep_workspace(2000))
    with pytest.raises(GatingError) as exc:
        load_strategy(path)
    assert re.search(
        r"deep\.wsp, <Population> at line \d+: .*level 101.*at most 100 levels", one_line(exc)
    )


@pytest.mark.corpus
def test_flowjo_tree_at_the_depth_limit_counts_like_flowjo(tmp_path):
    # every level is FlowJo's upper_right gate, so the deepest population is upper_right,
    # whose count FlowJo stored in the workspace: 50,605
    path = write(tmp_path, "deep.wsp", deep_workspace(100))
    sample = cytokit.read_fcs(need(DIAMOND / "test_data_diamond_01.fcs"))
    ws = flowjo.load_workspace(path)
    assert max(p.path.count("/") for p in ws.samples[0].populations) == 100
    result = ws.strategy().apply(sample, membership=False)
    counts = result.counts.set_index("gate_path")["count"]
    assert counts.iloc[-1] == counts.iloc[0] == 50605 and len(counts) == 100


@pytest.mark.corpus
def test_flowjo_long_paths_and_many_populations_are_refused(tmp_path):
    path = write(tmp_path, "long.wsp", deep_workspace(2, name=lambda i: "N" * 3000))
    with pytest.raises(GatingError) as exc:
        flowjo.load_workspace(path)
    assert re.search(
        r"long\.wsp, <Population> at line \d+: .*6,002 characters.* at most 4,096", one_line(exc)
    )
    text = need(DIAMOND / "test_data_diamond_biex_rect.wsp").read_text()
    many = "".join(f'<Population name="P{i}"/>' for i in range(20_001))
    head, rest = text.split("<Subpopulations>", 1)
    path = write(tmp_path, "many.wsp", head + "<Subpopulations>" + many + rest)
    with pytest.raises(GatingError) as exc:
        flowjo.load_workspace(path)
    assert "more than 20,000 populations" in one_line(exc)


def test_flowjo_workspace_over_1_gib_is_refused_unread(tmp_path):
    for name in ("huge.wsp", "huge.xml"):
        path = sparse(tmp_path / name, 2**30 + 1)
        if name.endswith(".xml"):  # a workspace saved as .xml is recognised by its root
            with path.open("r+b") as fh:
                fh.write(b'<?xml version="1.0"?><Workspace version="20.0">')
        with pytest.raises(GatingError) as exc:
            flowjo.load_workspace(path) if name.endswith(".wsp") else load_strategy(path)
        assert f"{name}: the file is 1,073,741,825 bytes; cytokit reads a FlowJo" in one_line(exc)


# -- study.toml and the study's tables ------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ("x = " + "[" * 5000 + "]" * 5000, r"nested too deeply to parse; .* at most 32 levels"),
        ("x = " + "[" * 40 + "]" * 40, r"x\[0\].*\[0\] is nested 33 levels deep; .* at most 32"),
        ("[" + ".".join(f"t{i}" for i in range(40)) + "]\ny = 1", r"t0\.t1\..* is nested 33"),
        ("x = " + "9" * 5000, r"line 2: an integer of 5,000 digits; .*\(64 bits\)"),
        ("[qc]\nmin_events = " + "9" * 40, r"qc\.min_events = an integer of 40 digits"),
        ("x = 1\n" + "#" * 2**20, r"more than 1,048,576 bytes; .* at most 1,048,576 bytes"),
    ],
    ids=["5000 arrays", "40 arrays", "40 tables", "5000 digits", "40 digits", "size"],
)
def test_toml_beyond_bounds_is_a_one_line_study_error(tmp_path, body, message):
    # the first and fourth were RecursionError and ValueError tracebacks
    path = write(tmp_path, "study.toml", "[study]\n" + body + "\n")
    with pytest.raises(StudyError) as exc:
        load_toml(path)
    assert re.search(message, one_line(exc)), str(exc.value)


def test_toml_within_bounds_is_read(tmp_path):
    body = f"[study]\nx = {2**63 - 1}\ny = " + "[" * 31 + "1" + "]" * 31 + "\n"
    data = load_toml(write(tmp_path, "study.toml", body))
    assert data["study"]["x"] == 2**63 - 1


def test_toml_that_is_not_utf8_is_a_study_error(tmp_path):
    path = tmp_path / "study.toml"
    path.write_bytes(b"[study]\nname = '\xff'\n")
    with pytest.raises(StudyError, match=r"study\.toml: not UTF-8 text"):
        load_toml(path)


@pytest.fixture
def study(tmp_path):
    return shutil.copytree(SAMPLE_DATA, tmp_path / "study")


def test_analyze_refuses_an_alias_bomb_strategy_in_one_line(study, tmp_path, capsys):
    (study / "strategy.yaml").write_text(alias_bomb())
    code = run(["analyze", str(study), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert re.search(r"strategy\.yaml, line 1: .*at most 1,000,000 values", err)


def test_analyze_refuses_a_deep_study_toml_in_one_line(study, tmp_path, capsys):
    toml = study / "study.toml"
    toml.write_text(toml.read_text() + "\n[extra]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    code = run(["analyze", str(study), "--out", str(tmp_path / "out"), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert "study.toml: values are nested too deeply to parse" in err


def test_manifest_over_64_mib_is_a_study_problem(study):
    sparse(study / "manifest.csv", 64 * 2**20 + 1)
    with pytest.raises(StudyError, match=r"manifest\.csv: the file is 67,108,865 bytes; .*64 MiB"):
        cytokit.load_study(study, check_files=False)


def test_gate_refuses_an_alias_bomb_strategy_in_one_line(tmp_path, capsys):
    bomb = write(tmp_path, "bomb.yaml", alias_bomb())
    fcs = SAMPLE_DATA / "fcs" / "P01_day007.fcs"
    code = run(["gate", str(bomb), str(fcs), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "Traceback" not in err, err
    assert re.fullmatch(r"cytokit: error: \S*bomb\.yaml, line 1: [^\n]*1,000,000 values[^\n]*", err)
