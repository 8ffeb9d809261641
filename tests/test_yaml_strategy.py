"""cytokit's YAML strategy format: reading, defaults, errors, round trips, the sample study."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cytokit
from cytokit.errors import GatingError
from cytokit.gating import (
    FCS,
    UNCOMPENSATED,
    BooleanGate,
    EllipsoidGate,
    LinearTransform,
    LogicleTransform,
    QuadrantGate,
    RectangleGate,
    load_strategy,
)
from cytokit.gating.adaptive import ClusterGate, SingletGate, ValleyGate, ValleyQuadrantGate
from cytokit.gating.yamlfmt import read_yaml_strategy, write_yaml_strategy
from cytokit.study._toml import load_toml

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "sample_data"
PANEL = {"CD3": "APC-A", "CD56": "PE-A", "Viability": "PerCP-Cy5-5-A", "HLA-A2": "FITC-A"}
LOGICLE = {"type": "logicle", "T": 262144, "W": 0.5, "M": 4.5, "A": 0}


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def _sample(n=5_000, seed=0) -> cytokit.Sample:
    """Scatter on a linear scale, four markers spread over the logicle range; no spillover."""
    rng = np.random.default_rng(seed)
    names = ["FSC-A", "FSC-H", "SSC-A", "FITC-A", "PE-A", "PerCP-Cy5-5-A", "APC-A"]
    ev = np.empty((n, len(names)), dtype=np.float32)
    ev[:, 0] = rng.uniform(0, 200_000, n)
    ev[:, 1] = ev[:, 0] * rng.uniform(0.5, 1.0, n)
    ev[:, 2] = rng.uniform(0, 200_000, n)
    ev[:, 3:] = 10 ** rng.uniform(0, 5, (n, 4))
    channels = [cytokit.Channel(i, c) for i, c in enumerate(names)]
    return cytokit.Sample(ev, channels)


# -- the format ------------------------------------------------------------------------------------
FIXED = """
    name: every fixed shape
    gates:
      - name: Box
        range: {FSC-A: [20000, 150000], SSC-A: [null, 100000]}
        gates:
          - name: Tri
            polygon: [FSC-A, SSC-A]
            vertices: [[20000, 0], [150000, 0], [150000, 100000]]
          - name: Round
            ellipse: [FSC-A, SSC-A]
            center: [80000, 50000]
            axes: [40000, 20000]
            angle: 30
          - name: CD3+
            range: {CD3: [0.5, null]}
          - name: Q
            quadrants: {CD3: 0.5, CD56: 0.45}
            names: {CD3-CD56+: NK}
            gates:
              NK:
                - name: bright
                  range: {CD56: [0.8, null]}
          - name: Either
            or: [Tri, Round]
          - name: Tri not round
            and: [Tri, {not: Round}]
          - name: Outside
            not: Either
"""


def test_every_fixed_shape_reads_and_gates_like_numpy(tmp_path):
    s = read_yaml_strategy(_write(tmp_path, FIXED), panel=PANEL, transform=LOGICLE)
    paths = [p.path for p in s.populations]
    assert "/Box/NK/bright" in paths and "/Box/CD3-CD56-" in paths and "/Box/Outside" in paths
    kinds = {p.path: type(p.gate) for p in s.populations}
    assert kinds["/Box"] is RectangleGate and kinds["/Box/Round"] is EllipsoidGate
    assert issubclass(kinds["/Box/NK"], QuadrantGate) and kinds["/Box/Either"] is BooleanGate
    sample = _sample()
    r = s.apply(sample)
    ev = sample.events.astype(np.float64)
    lg = LogicleTransform()
    fsc, ssc = ev[:, 0], ev[:, 2]
    cd3, cd56 = lg.apply(ev[:, 6]), lg.apply(ev[:, 4])
    box = (fsc >= 20000) & (fsc < 150000) & (ssc < 100000)
    tri = box & (fsc > 20000) & (fsc < 150000) & (ssc > 0) & (ssc < (fsc - 20000) / 1.3)
    np.testing.assert_array_equal(r.membership("/Box"), box)
    t = np.radians(30)
    u = ((fsc - 80000) * np.cos(t) + (ssc - 50000) * np.sin(t)) / 40000
    w = (-(fsc - 80000) * np.sin(t) + (ssc - 50000) * np.cos(t)) / 20000
    rnd = box & (u**2 + w**2 <= 1)
    np.testing.assert_array_equal(r.membership("/Box/Round"), rnd)
    np.testing.assert_array_equal(r.membership("/Box/CD3+"), box & (cd3 >= 0.5))
    nk = box & (cd3 < 0.5) & (cd56 >= 0.45)
    np.testing.assert_array_equal(r.membership("/Box/NK"), nk)
    np.testing.assert_array_equal(r.membership("/Box/NK/bright"), nk & (cd56 >= 0.8))
    np.testing.assert_array_equal(r.membership("/Box/Tri"), tri)
    either = r.membership("/Box/Either")
    np.testing.assert_array_equal(either, tri | rnd)
    np.testing.assert_array_equal(r.membership("/Box/Tri not round"), tri & ~rnd)
    np.testing.assert_array_equal(r.membership("/Box/Outside"), box & ~either)


def test_ids_are_paths_and_can_be_given(tmp_path):
    p = _write(
        tmp_path,
        """
        gates:
          - {name: A, id: a, range: {FSC-A: [0, 1000]}}
          - name: B
            parent: a
            range: {SSC-A: [0, 1000]}
        """,
    )
    s = read_yaml_strategy(p)
    assert s.population("/A").id == "a"
    assert s.population("/A/B").id == "/A/B"


def test_dimension_defaults_and_overrides(tmp_path):
    text = """
        gates:
          - name: Cells
            range: {FSC-A: [1, null], CD3: [0.4, null], APC-H7-A: [0.1, null]}
          - name: Lin
            range: {CD56: [1000, null], SSC-A: [0.1, null]}
            transform: {CD56: none, SSC-A: {type: linear, T: 262144}}
            compensation: {CD56: uncompensated}
          - name: Own
            polygon: [{channel: CD3, transform: asinh, compensation: uncompensated}, FSC-A]
            vertices: [[0, 0], [1, 0], [1, 1]]
        """
    s = read_yaml_strategy(_write(tmp_path, text), panel=PANEL, transform=LOGICLE)
    fsc, cd3, raw = s.gate("/Cells").dims
    assert (fsc.channel, fsc.compensation, fsc.transform) == ("FSC-A", UNCOMPENSATED, None)
    assert (cd3.channel, cd3.compensation) == ("APC-A", FCS)  # through the panel
    assert cd3.transform == LogicleTransform(**{k: v for k, v in LOGICLE.items() if k != "type"})
    assert raw.channel == "APC-H7-A" and raw.compensation == FCS  # a $PnN not in the panel
    cd56, ssc = s.gate("/Lin").dims
    assert (cd56.transform, cd56.compensation) == (None, UNCOMPENSATED)
    assert ssc.transform == LinearTransform(T=262144)
    own, _ = s.gate("/Own").dims
    assert own.transform.kind == "asinh" and own.compensation == UNCOMPENSATED
    # no transform anywhere: a gate on fluorescence does not load, saying what to add
    with pytest.raises(GatingError, match=r"line 4: gate 'Cells' reads CD3, a fluorescence"):
        read_yaml_strategy(_write(tmp_path, text), compensation="uncompensated")
    # transform: none says the positions are compensated scale values; compensation= sets
    # the default compensation
    raw = _write(tmp_path, "transform: none\n" + textwrap.dedent(text), "raw.yaml")
    plain = read_yaml_strategy(raw, compensation="uncompensated")
    assert plain.gate("/Cells").dims[1].transform is None
    assert plain.gate("/Cells").dims[1].compensation == UNCOMPENSATED


def test_transform_option_per_marker_and_the_file_must_agree(tmp_path):
    text = """
        gates:
          - {name: A, range: {CD3: [0.4, null], CD56: [0.4, null]}}
        """
    option = {**LOGICLE, "CD56": {"type": "logicle", "W": 1.0}}
    s = read_yaml_strategy(_write(tmp_path, text), panel=PANEL, transform=option)
    cd3, cd56 = s.gate("/A").dims
    assert cd3.transform.W == 0.5 and cd56.transform.W == 1.0
    # the file's own transform, and a different one given: neither is picked silently
    own = _write(
        tmp_path, "transform: {type: asinh, T: 262144, M: 4.5, A: 0}\n" + textwrap.dedent(text)
    )
    with pytest.raises(GatingError, match=r"line 4: gate 'A' reads CD3 as AsinhTransform"):
        read_yaml_strategy(own, panel=PANEL, transform=option)
    s2 = read_yaml_strategy(own, panel=PANEL)
    assert {d.transform.kind for d in s2.gate("/A").dims} == {"asinh"}
    # the same transforms spelled in the file load with the option, to the same gates
    same = (
        "transform: {type: logicle, T: 262144, W: 0.5, M: 4.5, A: 0, CD56: {type: logicle, W: 1}}"
    )
    agree = _write(tmp_path, same + "\n" + textwrap.dedent(text), "agree.yaml")
    assert read_yaml_strategy(agree, panel=PANEL, transform=option).gates == s.gates
    s3 = read_yaml_strategy(_write(tmp_path, text), transform=LogicleTransform(W=1.0))
    assert s3.gate("/A").dims[0].transform.W == 1.0


TWO_NAMES = """
    transform:
      type: logicle
      CD3: {type: logicle, W: 1.5}
    gates:
      - {name: ByMarker, range: {CD3: [0.25, 0.35]}}
      - {name: ByChannel, range: {APC-A: [0.25, 0.35]}}
    """


def _cd3_sample(on: str = "APC-A") -> cytokit.Sample:
    """`_sample` with CD3 as the $PnS of channel `on`, so a file can name it either way."""
    s = _sample()
    channels = [cytokit.Channel(c.index, c.name, "CD3" if c.name == on else "") for c in s.channels]
    return cytokit.Sample(s.events, channels)


@pytest.mark.parametrize("where", ["file", "option"])
def test_a_transform_override_follows_the_channel_whichever_name_a_gate_uses(tmp_path, where):
    sample = _sample()
    apc = sample.events[:, 6].astype(np.float64)
    y = LogicleTransform(W=1.5).apply(apc)
    want = int(np.count_nonzero((y >= 0.25) & (y < 0.35)))
    if where == "file":  # the file's transform: and panel:
        text = "panel: {CD3: APC-A}\n" + textwrap.dedent(TWO_NAMES)
        s = read_yaml_strategy(_write(tmp_path, text))
    else:  # a study's [transform.CD3] and [panel]
        text = textwrap.dedent(TWO_NAMES).split("gates:", 1)[1]
        option = {"type": "logicle", "CD3": {"type": "logicle", "W": 1.5}}
        s = read_yaml_strategy(_write(tmp_path, "gates:" + text), panel=PANEL, transform=option)
    assert s.gate("/ByChannel").dims[0].transform == LogicleTransform(W=1.5)
    counts = dict(zip(*(s.apply(sample).counts[k] for k in ("gate_path", "count")), strict=True))
    assert counts == {"/ByMarker": want, "/ByChannel": want}


def test_two_overrides_of_one_channel_must_agree(tmp_path):
    text = textwrap.dedent(TWO_NAMES).replace("  CD3:", "  APC-A: {type: logicle, W: 0.2}\n  CD3:")
    linked = _write(tmp_path, "panel: {CD3: APC-A}\n" + text)
    with pytest.raises(GatingError, match=r"line 8: transform: overrides CD3 .*W=1.5.* and APC-A "
                       r".*W=0.2.*two names of one channel \(APC-A\); .*keep one"):  # fmt: skip
        read_yaml_strategy(linked)
    # without a panel the names meet in the sample ($PnS CD3 on APC-A): refused there
    s = read_yaml_strategy(_write(tmp_path, text, "unlinked.yaml"))
    with pytest.raises(GatingError, match=r"unlinked.yaml: gate '/ByMarker' reads 'CD3' as .*W=1.5"
                       r".*'CD3' and 'APC-A' are one channel .* under 'APC-A' as .*W=0.2.*add "
                       r"panel: \{CD3: APC-A\}"):  # fmt: skip
        s.apply(_cd3_sample())
    # the default on one name, an override on the other: refused, not gated two ways
    s = read_yaml_strategy(_write(tmp_path, TWO_NAMES, "default.yaml"))
    with pytest.raises(GatingError, match=r"gate '/ByChannel' reads 'APC-A' as .*W=0.5.* under "
                       r"'CD3' as .*W=1.5"):  # fmt: skip
        s.apply(_cd3_sample())
    # a sample where the two names are different channels gates as before
    assert len(s.apply(_cd3_sample("PE-A")).counts) == 2


def test_named_matrix_and_ratio_dimension(tmp_path):
    text = """
        transform: none
        matrices:
          lab: {fluorochromes: [FITC, PE], detectors: [FITC-A, PE-A], matrix: [[1, 0.2], [0.01, 1]]}
        gates:
          - name: Comp
            polygon: [FITC, PE]
            compensation: lab
            vertices: [[0, 0], [1000, 0], [1000, 1000]]
          - name: Ratio
            polygon: [{ratio: [FSC-H, FSC-A], name: FSC ratio}, SSC-A]
            vertices: [[0.8, 0], [1.1, 0], [1.1, 200000], [0.8, 200000]]
        """
    s = read_yaml_strategy(_write(tmp_path, text))
    assert set(s.matrices) == {"lab"}
    assert {d.compensation for d in s.gate("/Comp").dims} == {"lab"}
    ratio = s.gate("/Ratio").dims[0]
    assert ratio.ratio.numerator == "FSC-H" and ratio.channel == "FSC ratio"
    r = s.apply(_sample())
    assert r.count("/Ratio") > 0


def test_adaptive_gates_read_with_their_settings(tmp_path):
    s = read_yaml_strategy(STUDY / "strategy.yaml", panel=PANEL, transform=LOGICLE)
    live = s.gate("/Lymphocytes/Singlets/Live")
    assert isinstance(live, ValleyGate) and live.keep == "below"
    assert live.valley.between == (0.35, 0.7) and live.valley.single == "negative"
    q = s.gate("/Lymphocytes/Singlets/Live/CD3-CD56+")
    assert isinstance(q, ValleyQuadrantGate) and q.split_by == (None, 0)
    assert isinstance(s.gate("/Lymphocytes"), ClusterGate)
    assert isinstance(s.gate("/Lymphocytes/Singlets"), SingletGate)
    bright = s.gate("/Lymphocytes/Singlets/Live/CD3-CD56+/CD56bright")
    assert [d.channel for d in bright.dims] == ["CD16", "PE-A"]  # not in PANEL: as written


def test_sample_strategy_provides_the_study_paths():
    config = load_toml(STUDY / "study.toml")
    s = load_strategy(
        STUDY / config["gating"]["strategy"],
        panel=cytokit.Panel.from_toml(STUDY / "study.toml"),
        transform=config["transform"],
    )
    wanted = list(config["populations"].values()) + list(config["counting"].values())
    for path in wanted:
        assert s.population(path).path == path
    donor = config["chimerism"]["marker"]
    for path in config["populations"].values():
        if path.count("/") == 4:  # NK, CIK and T: donor marker sides below them
            for side in "+-":
                s.population(f"{path}/{donor}{side}")


def test_load_strategy_reads_yml_too(tmp_path):
    p = _write(tmp_path, "gates:\n  - {name: A, range: {FSC-A: [0, 1]}}\n", "s.yml")
    assert load_strategy(p).paths == ("/A",)


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("gates:\n  - name: A\n    rang: {FSC-A: [0, 1]}\n", 2, "shape key"),
        ("gates:\n  - name: A\n    range: {FSC-A: [0, 1]}\n    kep: above\n", 4, "'keep'|kep"),
        ("gates:\n  - name: A\n    threshold: CD3\n    betwen: [0, 1]\n", 4, "'between'"),
        (
            "gates:\n  - name: A\n    range: {FSC-A: [0, 1]}\n    polygon: [A, B]\n",
            2,
            "exactly one",
        ),
        ("gates:\n  - range: {FSC-A: [0, 1]}\n", 2, "has no name"),
        ("gates:\n  - name: A\n    and: [B]\n", 3, "no population 'B'"),
        ("gates:\n  - name: A\n    range: {FSC-A: [0, 1], FSC-A: [2, 3]}\n", 3, "appears twice"),
        ("gates:\n  - name: A\n    range: {FSC-A: [0, 1]\n", 4, "not valid YAML.*starts at line 3"),
        ("gates:\n  - name: A\n    range: {FSC-A: [zero, 1]}\n", 3, "not a number"),
        (
            "gates:\n  - name: A\n    polygon: [FSC-A, SSC-A]\n    vertices: [[0, 0], [1, 1]]\n",
            2,
            "vertices",
        ),
        ("gatez: []\n", 1, "did you mean 'gates'"),
        (
            "gates:\n  - name: A\n    range: {FSC-A: [0, 1]}\n  - name: A\n    range: {FSC-A: [0, 1]}\n",
            4,
            "defined twice",
        ),
        (
            "gates:\n  - quadrants: {CD3: 0.5}\n    gates:\n      CD4+: []\n",
            4,
            "not one of this gate's quadrants",
        ),
        ("gates:\n  - name: A\n    parent: Nowhere\n    range: {FSC-A: [0, 1]}\n", 3, "parent"),
        (
            "gates:\n  - name: A\n    threshold: CD3\n    transform: wobble\n",
            3,
            "unknown transform",
        ),
        (
            "gates:\n  - name: A\n    threshold: CD3\n    compensation: mine\n",
            3,
            "compensation 'mine'",
        ),
        (
            "transform: logicle\ngates:\n  - name: A\n    quadrants: {CD3: {split_by: CD4}}\n",
            4,
            "split_by",
        ),
        ("- just a list\n", 0, "table with a 'gates' list"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, text, line, match):
    p = _write(tmp_path, text)
    with pytest.raises(GatingError, match=match) as info:
        read_yaml_strategy(p)
    msg = str(info.value)
    assert msg.startswith(str(p))
    if line:
        assert f"line {line}:" in msg


def _one_gate(gate: str) -> str:
    """A strategy of one gate, written on line 3."""
    return f"transform: none\ngates:\n  - {gate}\n"


SHAPE_ERRORS = {
    "negative variance": (
        "{name: E, ellipse: [FSC-A, SSC-A], mean: [6e4, 2e4], covariance: [[1e8, 0], [0, -1e8]]}",
        r"gate '/E': covariance matrix \[\[100000000.0, 0.0\], \[0.0, -100000000.0\]\] has "
        r"variance -100000000.0 on row 1; the diagonal of a covariance matrix holds variances",
    ),
    "indefinite covariance": (
        "{name: E, ellipse: [FSC-A, SSC-A], mean: [6e4, 2e4], covariance: [[1e8, 2e8], [2e8, 1e8]]}",
        r"gate '/E': covariance matrix \[\[100000000.0, 200000000.0\], .* is not positive definite "
        r"\(eigenvalues \[-100000000.0, 300000000.0\]\)",
    ),
    "asymmetric covariance": (
        "{name: E, ellipse: [FSC-A, SSC-A], mean: [6e4, 2e4], covariance: [[1e8, 5e7], [-5e7, 1e8]]}",
        r"gate '/E': covariance matrix .* is not symmetric: row 0 column 1 is 50000000.0 but row 1 "
        r"column 0 is -50000000.0",
    ),
    "negative half-axis": (
        "{name: E, ellipse: [FSC-A, SSC-A], center: [6e4, 2e4], axes: [-10000, 5000], angle: 0}",
        r"axes: \[-10000.0, 5000.0\] are the ellipse's half-axes, each finite and > 0",
    ),
    "empty range": (
        "{name: R, range: {FSC-A: [50000, 50000]}}",
        r"gate 'R': FSC-A: \[50000, 50000\] has min = max, which no value lies in .*leave a "
        r"side open with null",
    ),
    "collinear polygon": (
        "{name: P, polygon: [FSC-A, SSC-A], vertices: [[0, 0], [5e4, 5e4], [1e5, 1e5]]}",
        r"gate '/P': vertices .* lie on one line \(or repeat\), so the polygon encloses nothing",
    ),
    "repeated vertex": (
        "{name: P, polygon: [FSC-A, SSC-A], vertices: [[0, 0], [0, 0], [1e5, 1e5]]}",
        r"gate '/P': vertices .* lie on one line \(or repeat\)",
    ),
    "one dimension twice": (
        "{name: P, polygon: [FSC-A, FSC-A], vertices: [[0, 0], [2e5, 0], [2e5, 2e5]]}",
        r"gate '/P' reads FSC-A on two of its axes, so its shape lies on a line",
    ),
    "one channel under two names": (
        "{quadrants: {CD3: 1000, APC-A: 2000}}\npanel: {CD3: APC-A}",
        r"quadrants: CD3 and APC-A are one channel \(APC-A\); divide two different channels",
    ),
    "min above max": (
        "{name: R, range: {FSC-A: [120000, 30000]}}",
        r"gate '/R': FSC-A has min=120000.0 > max=30000.0; swap them",
    ),
    "infinite bound": (
        "{name: R, range: {FSC-A: [-.inf, 30000]}}",
        r"FSC-A: min -inf is not a number; a bound is a finite number, or null to leave the side open",
    ),
    "vertex not a number": (
        '{name: P, polygon: [FSC-A, SSC-A], vertices: [[0, 0], [1, "x"], [5, 5]]}',
        r"gate 'P': vertex 2 \[1, 'x'\] is not \[x, y\] with two finite numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(SHAPE_ERRORS))
def test_shapes_that_gate_nothing_or_nonsense_are_refused(tmp_path, case):
    gate, match = SHAPE_ERRORS[case]
    p = _write(tmp_path, _one_gate(gate))
    with pytest.raises(GatingError, match=rf"^{re.escape(str(p))}, line 3: {match}"):
        read_yaml_strategy(p)


@pytest.mark.parametrize("gate", ["{quadrants: {CD3: 0.3, APC-A: 0.5}}",
                                  "{name: P, polygon: [CD3, APC-A], vertices: [[0, 0], [1, 0], [1, 1]]}"])  # fmt: skip
def test_one_channel_under_two_names_the_sample_reveals_is_refused(tmp_path, gate):
    p = _write(tmp_path, "transform: logicle\ngates:\n  - " + gate + "\n")
    s = read_yaml_strategy(p)
    with pytest.raises(GatingError, match=rf"^{re.escape(str(p))}: gate .* reads logicle\(CD3\) "
                       r"\[FCS\] and logicle\(APC-A\) \[FCS\], which are one channel of sample"):  # fmt: skip
        s.apply(_cd3_sample())
    assert s.apply(_cd3_sample("PE-A")).counts["count"].sum() > 0


@pytest.mark.parametrize("off", [1e-12, 8e-8])  # 8e-8: a matrix printed to 7 digits
def test_a_covariance_symmetric_to_rounding_is_taken(tmp_path, off):
    cov = [[1e8, 5e7], [5e7 * (1 + off), 1e8]]
    p = _write(tmp_path, _one_gate(f"{{name: E, ellipse: [FSC-A, SSC-A], mean: [6e4, 2e4], "
                                     f"covariance: {cov}}}"))  # fmt: skip
    sample = _sample()
    ev = sample.events.astype(np.float64)
    d = ev[:, [0, 2]] - [6e4, 2e4]
    inside = np.einsum("ij,jk,ik->i", d, np.linalg.inv(np.array(cov)), d) <= 1
    np.testing.assert_array_equal(read_yaml_strategy(p).apply(sample).membership("/E"), inside)


def test_nested_parent_and_ambiguous_names(tmp_path):
    text = """
        gates:
          - name: A
            range: {FSC-A: [0, 1]}
            gates:
              - {name: X, range: {SSC-A: [0, 1]}}
          - name: B
            range: {FSC-A: [0, 1]}
            gates:
              - {name: X, range: {SSC-A: [0, 1]}}
              - {name: Y, and: [X]}
              - {name: Z, parent: A, range: {SSC-A: [0, 1]}}
        """
    with pytest.raises(GatingError, match=r"line 12:.*nested gate's parent"):
        read_yaml_strategy(_write(tmp_path, text))
    ok = read_yaml_strategy(_write(tmp_path, text.replace("parent: A, ", "")))
    # a relative reference resolves among siblings first
    assert ok.gate("/B/Y").operands == ("/B/X",)
    amb = text.replace("and: [X]", "and: [/A/X, X]").replace("parent: A, ", "")
    assert read_yaml_strategy(_write(tmp_path, amb)).gate("/B/Y").operands == ("/A/X", "/B/X")
    top = "gates:\n  - {name: A, range: {FSC-A: [0, 1]}, gates: [{name: X, range: {SSC-A: [0, 1]}}]}\n"
    top += "  - {name: B, range: {FSC-A: [0, 1]}, gates: [{name: X, range: {SSC-A: [0, 1]}}]}\n"
    top += "  - {name: C, and: [X]}\n"
    with pytest.raises(GatingError, match="several populations are called 'X'"):
        read_yaml_strategy(_write(tmp_path, top))


ID_AND_NAME = """
    transform: none
    gates:
      - {name: Big, id: Small, range: {FSC-A: [30000, null]}}
      - {name: Small, range: {FSC-A: [30000, 40000]}}
    """


@pytest.mark.parametrize(
    ("gate", "line"),
    [
        ("{name: Combo, and: [Small]}", 6),
        ("{name: Combo, or: [Big, {not: Small}]}", 6),
        ("{name: Kid, parent: Small, range: {SSC-A: [null, 50000]}}", 6),
    ],
)
def test_a_reference_that_is_one_gates_id_and_anothers_name_is_ambiguous(tmp_path, gate, line):
    p = _write(tmp_path, textwrap.dedent(ID_AND_NAME) + f"  - {gate}\n")
    with pytest.raises(GatingError, match=rf"s.yaml, line {line}: 'Small' names 2 populations of "
                       r"this file: /Big \(by its id\); /Small \(by its path\); give the full "
                       r"path of the one you mean$"):  # fmt: skip
        read_yaml_strategy(p)
    # the full path is exact
    ok = textwrap.dedent(ID_AND_NAME) + f"  - {gate.replace('Small', '/Small')}\n"
    fixed = read_yaml_strategy(_write(tmp_path, ok, "ok.yaml"))
    assert "/Small" in fixed.gates[-1].references


def test_a_parent_placed_before_a_later_name_makes_it_ambiguous_is_refused(tmp_path):
    text = """
        transform: none
        gates:
          - {name: Kid, parent: Small, range: {SSC-A: [null, 50000]}}
          - {name: Big, id: Small, range: {FSC-A: [30000, null]}}
          - {name: Other, parent: Big, range: {FSC-A: [30000, 40000]}, id: o}
          - {name: Small, parent: Other, range: {FSC-A: [30000, 40000]}}
        """
    with pytest.raises(GatingError, match=r"line 4: 'Small' names 2 populations .*/Big \(by its "
                       r"id\); /Big/Other/Small \(by its name\)"):  # fmt: skip
        read_yaml_strategy(_write(tmp_path, text))


def test_yaml_is_read_safely(tmp_path):
    p = _write(tmp_path, "gates: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(GatingError, match="not valid YAML"):
        read_yaml_strategy(p)


def test_panel_patterns_and_stray_options_are_refused(tmp_path):
    p = _write(tmp_path, "transform: logicle\ngates:\n  - {name: A, range: {CD3: [0, 1]}}\n")
    with pytest.raises(GatingError, match="pattern"):
        read_yaml_strategy(p, panel={"CD3": "APC.*"})
    with pytest.raises(GatingError, match="group"):
        load_strategy(p, group="All Samples")
    assert load_strategy(p, panel=cytokit.Panel({"CD3": "APC-A"})).gate("/A").dims[0].channel == (
        "APC-A"
    )


# -- writing -----------------------------------------------------------------------------------------
def test_round_trip_of_fixed_and_adaptive_strategies(tmp_path):
    for src in (_write(tmp_path, FIXED, "fixed.yaml"), STUDY / "strategy.yaml"):
        s = read_yaml_strategy(src, panel=PANEL, transform=LOGICLE)
        out = write_yaml_strategy(s, tmp_path / "out.yaml")
        back = read_yaml_strategy(out)  # no options: the file spells everything out
        assert {g.id: g for g in back.gates} == {g.id: g for g in s.gates}
        assert back.paths == s.paths


def test_fitted_strategy_round_trips_to_the_same_counts(tmp_path):
    from cytokit import simulate as S

    s = read_yaml_strategy(
        STUDY / "strategy.yaml",
        panel=cytokit.Panel.from_toml(STUDY / "study.toml"),
        transform=LOGICLE,
    )
    design = S.preset_design("sample", seed=99, n_patients=2, n_events=20_000)
    sample, _ = S.simulate_sample(design, "P02", 64)
    r = s.apply(sample)
    fitted = read_yaml_strategy(write_yaml_strategy(r.strategy, tmp_path / "fitted.yaml"))
    assert not fitted.is_adaptive
    r2 = fitted.apply(sample)
    assert dict(zip(r.counts.gate_path, r.counts["count"], strict=True)) == dict(
        zip(r2.counts.gate_path, r2.counts["count"], strict=True)
    )


def test_writer_refuses_what_the_format_cannot_say(tmp_path):
    from cytokit.gating import Dimension, Divider, GatingStrategy, Quadrant

    d = Dimension("X")
    q = QuadrantGate(
        id="q",
        dividers=(Divider("a", d, (1.0, 2.0)),),
        quadrants=(Quadrant("lo", (("a", 0.0),)), Quadrant("mid", (("a", 1.5),))),
    )
    with pytest.raises(GatingError, match="Gating-ML"):
        write_yaml_strategy(GatingStrategy([q]), tmp_path / "q.yaml")
    assert not (tmp_path / "q.yaml").exists()


# -- the sample study's files (FCS reader) -------------------------------------------------------------
LIVE = "/Lymphocytes/Singlets/Live"
TRUTH = {
    "NK": (f"{LIVE}/CD3-CD56+", ("NK_bright", "NK_dim")),
    "NK_bright": (f"{LIVE}/CD3-CD56+/CD56bright", ("NK_bright",)),
    "NK_dim": (f"{LIVE}/CD3-CD56+/CD56dim", ("NK_dim",)),
    "CIK": (f"{LIVE}/CD3+CD56+", ("CIK",)),
    "T": (f"{LIVE}/CD3+CD56-", ("T_CD8neg", "T_CD8pos")),
    "Beads": ("/Beads", ("bead",)),
}


def _study_f1(files):
    config = load_toml(STUDY / "study.toml")
    s = load_strategy(
        STUDY / "strategy.yaml",
        panel=cytokit.Panel.from_toml(STUDY / "study.toml"),
        transform=config["transform"],
    )
    out = []
    for f in files:
        sample = cytokit.read_fcs(f)
        truth = np.load(f.with_suffix(".truth.npz"))
        names = [str(x) for x in truth["label_names"]]
        r = s.apply(sample)
        for pop, (path, labels) in TRUTH.items():
            t = np.isin(truth["label"], [names.index(x) for x in labels])
            m = r.membership(path)
            out.append((f.name, pop, int(t.sum()), 2 * np.sum(m & t) / (m.sum() + t.sum())))
    return out


@pytest.mark.parametrize("name", ["P01_day007", "P02_day085"])
def test_sample_study_files_gate_to_their_truth(name):
    for f, pop, n, f1 in _study_f1([STUDY / "fcs" / f"{name}.fcs"]):
        if n >= 50:
            assert f1 >= 0.97, (f, pop, n, f1)


@pytest.mark.slow
def test_every_sample_study_file():
    rows = _study_f1(sorted((STUDY / "fcs").glob("*.fcs")))
    assert len(rows) == 15 * len(TRUTH)
    for f, pop, n, f1 in rows:
        # a population of a few dozen events moves by 1/n per misplaced event
        assert f1 >= (0.97 if n >= 50 else 0.9), (f, pop, n, f1)


def test_a_transform_parameter_in_exponent_form_is_a_number(tmp_path):
    """A YAML 1.1 reader gives an unquoted ``2.62144e5`` as text; it was refused as a
    quoted string ("write them unquoted"). A quoted "0.5" still is."""
    gate = "{name: R, range: {APC-A: [0.2, null]}}"
    p = _write(tmp_path, f"transform: {{type: logicle, T: 2.62144e5, W: 0.5, M: 4.5, A: 0}}\n"
                         f"gates:\n  - {gate}\n")  # fmt: skip
    (g,) = read_yaml_strategy(p).gates
    assert g.dims[0].transform.T == 262144.0
    q = _write(tmp_path, f"transform: {{type: logicle, T: 262144, W: '0.5', M: 4.5, A: 0}}\n"
                         f"gates:\n  - {gate}\n")  # fmt: skip
    with pytest.raises(GatingError, match="must be numbers"):
        read_yaml_strategy(q)
