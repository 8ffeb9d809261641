"""QC figures drawn from 2-D histograms (`cytokit.plots.qc_panels`), checked against truth.

The results come from `results_fixture` (the sample study gated for real, with a gate of
every kind). Each panel's histogram is compared with the stored points counted
independently (numpy's histogram2d, matplotlib's Path for polygons, the quadratic form for
ellipsoids), and each gate drawn in the SVG is mapped back through the panel's axes onto
the gate's geometry.
"""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath
from PIL import Image
from results_fixture import SAMPLE_DATA, make_results

from cytokit.analysis.results import load_results
from cytokit.plots import qc_panels
from cytokit.plots._svg import nice_ticks, png_bytes, tick_label
from cytokit.plots.qc import BINS, PLOT, SCALE, _axes_of, _gate_dims, gate_panels
from cytokit.study._toml import load_toml


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return load_results(make_results(tmp_path_factory.mktemp("results")))


def _points(results, sample):
    with np.load(results.out / "qc" / f"{sample}.npz") as data:
        return {k[5:]: data[k] for k in data.files if k.startswith("gate:")}


def _samples(results):
    for sample, rows in results.qc.groupby("sample", sort=True):
        counts = results.counts[results.counts["file"] == rows["file"].iloc[0]]
        yield sample, rows, _points(results, sample), counts


@pytest.fixture(scope="module")
def figures(results):
    """Every sample's QC figure with the gates it was drawn from."""
    out = []
    for sample, rows, pts, counts in _samples(results):
        fig = qc_panels(rows, pts, counts=counts, title=sample, image=f"{sample}.png")
        found = {str(r["gate_id"]): (r, g, k, p) for r, g, k, p, _ in gate_panels(rows, pts)}
        out.append((sample, rows, fig, found))
    return out


def _independent_inside(geometry, kind, pts):
    x = pts.astype(np.float64)
    if kind == "rectangle":
        ok = np.ones(len(x), dtype=bool)
        for j, (lo, hi) in enumerate(zip(geometry["min"], geometry["max"], strict=True)):
            if lo is not None:
                ok &= x[:, j] >= lo
            if hi is not None:
                ok &= x[:, j] < hi
        return ok
    if kind == "polygon":
        return MplPath(np.asarray(geometry["vertices"], float)).contains_points(x)
    if kind == "ellipsoid":
        d = x - np.asarray(geometry["mean"], float)
        inv = np.linalg.inv(np.asarray(geometry["covariance"], float))
        return np.einsum("ij,jk,ik->i", d, inv, d) <= float(geometry["distance_square"])
    return None


def test_every_gate_kind_has_a_panel_and_boolean_gates_none(figures):
    kinds = set()
    for _sample, rows, fig, found in figures:
        expected = rows[(rows["kind"] != "boolean") & (rows["n_points"] > 0)]
        assert [p.gate for p in fig.panels] == list(expected["gate_id"].astype(str))
        assert not set(rows.loc[rows["kind"] == "boolean", "gate_id"]) & set(found)
        for p in fig.panels:
            kinds.add((p.kind, len(_axes_of(_gate_dims(found[p.gate][1]))) >= 2))
    assert {("rectangle", True), ("rectangle", False), ("polygon", True)} <= kinds
    assert {("ellipsoid", True), ("quadrant", True)} <= kinds


def test_histograms_hold_every_stored_point_and_the_gates_share(figures):
    seen = 0
    for _sample, _rows, fig, found in figures:
        for p in fig.panels:
            row, geometry, kind, pts = found[p.gate]
            finite = np.isfinite(pts[:, list(p.axes)]).all(axis=1)
            assert int(p.inside.sum() + p.outside.sum()) == int(finite.sum()), p.gate
            if len(p.axes) < 2:
                continue
            # bins by numpy's histogram2d over the same view, beyond-view points on the edges
            x, y = (np.clip(pts[finite, a].astype(float), *lim) for a, lim in
                    zip(p.axes, (p.xlim, p.ylim), strict=True))  # fmt: skip
            truth, _, _ = np.histogram2d(
                x, y, bins=[BINS[0], BINS[1]], range=[list(p.xlim), list(p.ylim)]
            )
            total = (p.inside + p.outside)[::-1].T  # rows top-down → y up, then (x, y)
            assert np.abs(total - truth).sum() <= 2 * 0.002 * finite.sum() + 2, p.gate
            inside = _independent_inside(geometry, kind, pts)
            if inside is None or len(_axes_of(_gate_dims(geometry))) != pts.shape[1]:
                assert p.outside.sum() == 0  # quadrants: every event is the gate's
                continue
            assert int(p.inside.sum()) == int((inside & finite).sum()), p.gate
            if row["n_points"] == row["parent_count"]:  # all of the parent: the gate's count
                assert int(p.inside.sum()) == int(row["count"]), p.gate
            seen += 1
    assert seen >= 10


def _to_data(p, px, py):
    x = p.xlim[0] + np.asarray(px, float) / PLOT[2] * (p.xlim[1] - p.xlim[0])
    y = p.ylim[0] + (PLOT[3] - np.asarray(py, float)) / PLOT[3] * (p.ylim[1] - p.ylim[0])
    return x, y


def _attrs(svg: str, tag: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r'([\w-]+)="([^"]*)"', m)) for m in re.findall(f"<{tag} ([^>]*)/>", svg)
    ]


def test_gate_outlines_map_to_the_geometry_through_the_axes(figures):
    checked = set()
    for _sample, _rows, fig, found in figures:
        for p in fig.panels:
            _row, geometry, kind, _pts = found[p.gate]
            if len(p.axes) < 2:
                continue
            span = (p.xlim[1] - p.xlim[0], p.ylim[1] - p.ylim[0])
            if kind == "polygon":
                (poly,) = _attrs(p.svg, "polygon")
                xy = np.array([v.split(",") for v in poly["points"].split()], float)
                x, y = _to_data(p, xy[:, 0], xy[:, 1])
                v = np.asarray(geometry["vertices"], float)
                np.testing.assert_allclose(x, v[:, 0], atol=0.01 * span[0] / PLOT[2] * 2)
                np.testing.assert_allclose(y, v[:, 1], atol=0.01 * span[1] / PLOT[3] * 2)
            elif kind == "ellipsoid":
                (e,) = _attrs(p.svg, "ellipse")
                cx, cy, rx, ry = (float(e[k]) for k in ("cx", "cy", "rx", "ry"))
                angle = math.radians(float(re.match(r"rotate\(([-\d.]+)", e["transform"])[1]))
                t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
                ex, ey = rx * np.cos(t), ry * np.sin(t)
                px = cx + ex * math.cos(angle) - ey * math.sin(angle)
                py = cy + ex * math.sin(angle) + ey * math.cos(angle)
                x, y = _to_data(p, px, py)
                a = list(p.axes)
                d = np.column_stack([x, y]) - np.asarray(geometry["mean"], float)[a]
                cov = np.asarray(geometry["covariance"], float)[np.ix_(a, a)]
                m = np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)
                np.testing.assert_allclose(m, float(geometry["distance_square"]), rtol=0.03)
            elif kind == "rectangle":
                (r,) = _attrs(p.svg, "rect")[:1]  # the gate comes first, the frame after
                x0, y0 = float(r["x"]), float(r["y"])
                x1, y1 = x0 + float(r["width"]), y0 + float(r["height"])
                (lx, hx), (ly, hy) = ((geometry["min"][a], geometry["max"][a]) for a in p.axes)
                for value, pixel, to, is_x in ((lx, x0, 0, 1), (hx, x1, 0, 1),
                                               (ly, y1, 1, 0), (hy, y0, 1, 0)):  # fmt: skip
                    if value is None:  # an open side lies beyond the plot area
                        assert not 0 <= pixel <= PLOT[2 if is_x else 3]
                    else:
                        data = _to_data(p, pixel, pixel)[to]
                        assert abs(data - value) <= 0.01 * span[to], (p.gate, value, data)
            elif kind == "quadrant":
                xs = {round(float(a["x1"]), 1) for a in _attrs(p.svg, "line") if a["x1"] == a["x2"]}
                dims = _gate_dims(geometry)
                first = json.dumps(dims[p.axes[0]], sort_keys=True)
                for d, dim in zip(geometry["dividers"], dims, strict=True):
                    if json.dumps(dim, sort_keys=True) != first:
                        continue
                    for v in d["values"]:
                        px = (v - p.xlim[0]) / span[0] * PLOT[2]
                        assert any(abs(px - x) < 0.1 for x in xs), (p.gate, v)
            checked.add(kind)
    assert checked == {"polygon", "ellipsoid", "rectangle", "quadrant"}


def test_png_shows_each_histogram_where_its_panel_is(figures):
    _sample, _rows, fig, _found = figures[0]
    image = np.asarray(Image.open(io.BytesIO(fig.png)).convert("RGB"))
    assert image.shape == (fig.height // SCALE, fig.width // SCALE, 3)
    painted = (image != 255).any(axis=2)
    expected = np.zeros_like(painted)
    for p in fig.panels:
        if len(p.axes) == 2:
            r, c = p.origin[1] // SCALE, p.origin[0] // SCALE
            expected[r : r + BINS[1], c : c + BINS[0]] = (p.inside + p.outside) > 0
    assert (painted == expected).all()
    blue = image[..., 2].astype(int) - image[..., 0].astype(int) > 40
    grey_only = [p for p in fig.panels if len(p.axes) == 2 and p.outside.sum() > 0]
    assert grey_only and blue.sum() > 0


def test_panels_say_what_the_figure_said(results):
    """Titles with n and % of parent, marker names on the axes, quadrant % of parent, the
    limit on a further dimension written in the corner."""
    panel = load_toml(SAMPLE_DATA / "study.toml")["panel"]
    markers = {channel: marker for marker, channel in panel.items()}
    sample, rows, pts, counts = next(_samples(results))
    fig = qc_panels(rows, pts, counts=counts, title=sample, markers=markers)
    svg = fig.svg()
    texts = re.findall(r">([^<>]+)</text>", svg)
    r = rows[rows["gate_id"] == "Live"].iloc[0]
    assert (
        f"n = {int(r['count']):,} ({100 * r['count'] / r['parent_count']:.1f}% of parent)" in texts
    )
    assert {"Lymphocytes", "Singlets", "Large", "Q", "QS", "Beads"} <= set(texts)
    assert {"CD3", "CD56", "Viability", "FSC-A", "SSC-A", "events"} <= set(texts)
    assert not any("logicle" in t or "[FCS]" in t for t in texts)
    qs = next(p for p in fig.panels if p.gate == "QS")
    q = counts[counts["gate_id"].astype(str).str.startswith("QS")]
    for _, row in q.iterrows():
        if math.isfinite(row["pct_parent"]):
            assert f"{row['pct_parent']:.1f}%" in re.findall(r">([^<>]+)</text>", qs.svg)
    beads = next(p for p in fig.panels if p.gate == "Beads")
    assert any(t.startswith("and CD3 in [0.78") for t in re.findall(r">([^<>]+)</text>", beads.svg))
    assert fig.svg().startswith("<svg ") and sample in svg


def test_a_gate_counts_csv_leaves_uncounted_shows_no_count(results):
    """A gate counts.csv leaves uncounted (a failed donor marker: count empty, the note
    says why) is titled so, not with the n of the gate as drawn that qc.csv keeps; a
    quadrant left uncounted shows no % of parent; the other gates keep theirs."""
    sample, rows, pts, counts = next(_samples(results))
    counts = counts.copy()
    lost = counts["gate_path"].astype(str).str.contains("/CD3-CD56+", regex=False)
    assert set(counts.loc[lost, "gate_id"]) == {"CD3-CD56+", "CD56bright", "CD56dim"}
    pct = counts.set_index("gate_id")["pct_parent"]
    counts["count"] = counts["count"].astype("Int64").mask(lost)
    counts.loc[lost, "pct_parent"] = float("nan")
    counts["note"] = np.where(lost, "not counted: it depends on the donor marker HLA-A2", None)
    fig = qc_panels(rows, pts, counts=counts, title=sample)

    def texts(gate):
        return re.findall(r">([^<>]+)</text>", next(p for p in fig.panels if p.gate == gate).svg)

    for gate in ("CD56bright", "CD56dim"):
        assert texts(gate)[:2] == [gate, "not counted (donor marker failed)"], texts(gate)
    q = texts("Q")
    assert f"{pct['CD3-CD56+']:.1f}%" not in q and f"{pct['CD3+CD56-']:.1f}%" in q
    assert texts("Live")[1].startswith("n = ")


def test_overlay_drops_only_the_background(figures):
    _sample, _rows, fig, _ = figures[0]
    svg, overlay = fig.svg(), fig.overlay()
    assert svg.count("<image ") == 1 and "<image " not in overlay
    assert overlay == svg.replace(re.search(r"<image [^>]*/>", svg)[0], "")


def test_a_sample_without_data_says_so():
    fig = qc_panels(pd.DataFrame(columns=["gate_id", "kind", "geometry", "dims"]), {})
    assert fig.panels == [] and "no gate QC data" in fig.svg()
    Image.open(io.BytesIO(fig.png)).verify()


def test_png_bytes_decode_to_the_array():
    rgb = np.random.default_rng(3).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert (np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))) == rgb).all()
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(rgb.astype(np.float32))


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.0, 1.0), (-0.13, 0.87), (0.0, 262144.0), (17.5, 18.25), (-5e3, 2.1e5)]
)
def test_ticks_are_round_and_inside(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert 2 <= len(ticks) <= 4
    assert all(lo <= t <= hi for t in ticks)
    steps = np.diff(ticks)
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    assert len({tick_label(t) for t in ticks}) == len(ticks)


@pytest.mark.parametrize("case", ["no events", "NaN events", "one event"])
def test_panels_of_degenerate_points_still_draw(results, case):
    _sample, rows, pts, counts = next(_samples(results))
    change = {
        "no events": lambda v: v[:0],
        "NaN events": lambda v: np.full_like(v, np.nan),
        "one event": lambda v: v[:1],
    }[case]
    fig = qc_panels(rows, {k: change(v) for k, v in pts.items()}, counts=counts)
    assert len(fig.panels) == len(qc_panels(rows, pts).panels)
    expected = 1 if case == "one event" else 0
    assert all(int(p.inside.sum() + p.outside.sum()) == expected for p in fig.panels)
    assert all(np.isfinite(p.xlim).all() and p.xlim[1] > p.xlim[0] for p in fig.panels)
    Image.open(io.BytesIO(fig.png)).verify()
