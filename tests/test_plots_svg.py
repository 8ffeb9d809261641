"""The report's SVG persistence and chimerism plots against the matplotlib figures drawn
from the same tables: the same points per status, intervals, fitted lines and bands,
infusion labels, titles and legends, nothing above 100 % donor, and text from files
escaped.

A panel of the SVG is the group clipped to its plot area (``clip-path="url(#aK)"``);
markers, intervals and lines are read back from it and mapped to data values with the
panel's scale, which the axes' tick labels give.
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from results_fixture import MIN_EVENTS, make_results
from test_plots import _bands, _decay_study, _fit_lines, _markers

from cytokit import plots
from cytokit.analysis.results import load_results
from cytokit.plots._canvas import log_ticks
from cytokit.plots.persistence_svg import chimerism_svg, persistence_svg

NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return load_results(make_results(tmp_path_factory.mktemp("results")))


class Panel:
    """One plot area of an SVG figure: its rectangle, the elements drawn in it, and the
    texts of the whole figure."""

    def __init__(self, root, clip_id: str):
        rect = root.find(f".//{NS}clipPath[@id='{clip_id}']/{NS}rect")
        self.x, self.y = float(rect.get("x")), float(rect.get("y"))
        self.w, self.h = float(rect.get("width")), float(rect.get("height"))
        self.group = root.find(f".//{NS}g[@clip-path='url(#{clip_id})']")

    def circles(self, filled: bool | None = None) -> list[ET.Element]:
        out = self.group.findall(f"{NS}circle")
        if filled is None:
            return out
        return [c for c in out if (c.get("fill") != "white") == filled]

    def triangles(self) -> list[ET.Element]:
        return [p for p in self.group.findall(f"{NS}polygon") if p.get("fill") == "white"]

    def fit_lines(self) -> list[ET.Element]:
        return [p for p in self.group.findall(f"{NS}path") if p.get("stroke-opacity") == "0.3"]

    def bands(self) -> list[ET.Element]:
        return [p for p in self.group.findall(f"{NS}polygon") if p.get("fill-opacity") == "0.1"]


def _svg(canvas):
    data = canvas.to_bytes("svg")
    root = ET.fromstring(data)  # well-formed XML: every text escaped
    return root, data.decode()


def _panels(root) -> list[Panel]:
    ids = [c.get("id") for c in root.iter(f"{NS}clipPath")]
    return [Panel(root, i) for i in ids]


def _texts(root) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


@pytest.mark.parametrize("patient", ["P01", "P02", "P03"])
def test_persistence_svg_draws_what_the_matplotlib_figure_draws(results, patient):
    pops = list(results.study["populations"])
    kw = dict(samples=results.samples, infusions=results.infusions, trends=results.trends,
              min_events=MIN_EVENTS, populations=pops)  # fmt: skip
    fig = plots.persistence_figure(results.chimerism, patient, **kw)
    root, _ = _svg(persistence_svg(results.chimerism, patient, **kw))
    axes = [ax for ax in fig.axes if ax.get_title()]
    panels = _panels(root)
    assert len(panels) == len(axes) == len(pops)
    texts = _texts(root)
    for pop in pops:
        assert pop in texts  # each panel's title
    inf = results.infusions[results.infusions["patient"] == patient]
    labels = [f"{r['product']} {plots.format_dose(r['dose_per_kg'])}" for _, r in inf.iterrows()]
    for label in labels:  # a label per infusion and panel
        assert texts.count(label) == labels.count(label) * len(pops)
    # each label lies within the figure: one on the last day sampled is not cut at its edge
    from cytokit.plots._canvas import text_width

    last = results.chimerism.loc[results.chimerism["patient"] == patient, "day"].max()
    extra = inf.iloc[[0]].assign(day=last, product="CIK", dose_per_kg=4.7e6)
    kw["infusions"] = pd.concat([results.infusions, extra], ignore_index=True)
    labels.append("CIK 4.7×10⁶/kg")
    root, _ = _svg(persistence_svg(results.chimerism, patient, **kw))
    width = float(root.get("width"))
    for t in root.iter(f"{NS}text"):
        words = "".join(t.itertext())
        if words in labels:
            x, w = float(t.get("x")), text_width(words, 7)
            lo = {"start": x, "middle": x - w / 2, "end": x - w}[t.get("text-anchor")]
            assert 0 <= lo and lo + w <= width, (words, x, t.get("text-anchor"), width)
    for ax, panel in zip(axes, panels, strict=True):
        drawn = sum(
            len(ln.get_xdata()) for ln in ax.get_lines()
            if ln.get_marker() == "o" and ln.get_linestyle() == "None"
            and ln.get_markerfacecolor() != "white"
        )  # fmt: skip
        assert len(panel.circles(filled=True)) == drawn
        assert len(panel.circles()) == _markers(ax, "o")
        assert len(panel.triangles()) == _markers(ax, "v")
        assert len(panel.fit_lines()) == len(_fit_lines(ax))
        assert len(panel.bands()) == len(_bands(ax))
    legend = [t for t in texts if t.startswith("t½ = ")]
    assert legend == [
        t.get_text() for ax in axes if ax.get_legend() for t in ax.get_legend().get_texts()
    ]


def _y_scale(panel: Panel, root, log: bool):
    """Value → pixel of the panel's y axis, from its tick labels (value at pixel y)."""
    ticks = []
    for t in root.iter(f"{NS}text"):
        x, y = float(t.get("x")), float(t.get("y"))
        if t.get("text-anchor") == "end" and abs(x - (panel.x - 7)) < 0.2:
            if panel.y - 1 <= y <= panel.y + panel.h + 1:
                ticks.append((float(t.text.replace("\u2212", "-")), y))
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    if log:
        v0, v1 = math.log10(v0), math.log10(v1)
    return lambda v: y0 + ((math.log10(v) if log else v) - v0) * (y1 - y0) / (v1 - v0)


def test_label_rows_never_overlap_and_leave_out_only_what_has_no_room():
    from cytokit.plots._points import label_rows

    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        centres = np.sort(rng.uniform(0, 300, n)).tolist()
        widths = rng.uniform(20, 90, n).tolist()
        places = label_rows(centres, widths, 0.0, 300.0)
        spans: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
        for c, w, place in zip(centres, widths, places, strict=True):
            if place is None:  # both rows hold a label that reaches past this one's start
                start = min(max(c - w / 2, 0.0), 300.0 - w)
                assert all(s and s[-1][1] + 2.0 > start for s in spans.values())
                continue
            row, x, anchor = place
            start = {"middle": x - w / 2, "start": x, "end": x - w}[anchor]
            assert 0.0 <= start and start + w <= 300.0 + 1e-9
            assert all(start >= b + 2.0 for _, b in spans[row])
            spans[row].append((start, start + w))
    # labels a full width apart all get the first row, centred on their lines
    assert label_rows([50.0, 150.0, 250.0], [60.0] * 3, 0.0, 300.0) == [
        (0, 50.0, "middle"), (0, 150.0, "middle"), (0, 250.0, "middle")
    ]  # fmt: skip


def test_close_infusions_are_labelled_without_printing_over_each_other(results):
    """Weekly doses on a few weeks' axis: every label drawn clears the others on its row,
    and an infusion left without a label says it on its caret's hover."""
    from cytokit.plots._canvas import text_width

    inf = results.infusions[results.infusions["patient"] == "P01"].iloc[[0]]
    doses = [(0, "NK", 1e7), (2, "CIK", 3e6), (4, "NK", 2.5e7), (6, "CIK", 4e6), (8, "NK", 1e6)]
    close = pd.concat([inf.assign(day=d, product=p, dose_per_kg=v) for d, p, v in doses])
    labels = {f"{p} {plots.format_dose(v)}" for _, p, v in doses}
    kw = dict(samples=results.samples, infusions=close)
    root, _ = _svg(persistence_svg(results.chimerism, "P01", **kw))
    rows: dict[str, list[tuple[float, float]]] = {}
    for t in root.iter(f"{NS}text"):
        words = "".join(t.itertext())
        if words in labels:
            x, w = float(t.get("x")), text_width(words, 7)
            lo = {"start": x, "middle": x - w / 2, "end": x - w}[t.get("text-anchor")]
            rows.setdefault(t.get("y"), []).append((lo, lo + w))
    for spans in rows.values():  # panels side by side share a row's height
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    drawn = sum(len(v) for v in rows.values())
    hovers = [h for h in ("".join(t.itertext()) for t in root.iter(f"{NS}title")) if h in labels]
    panels = len(_panels(root))
    assert hovers and drawn + len(hovers) == len(doses) * panels
    assert drawn >= 2 * panels  # both rows are used before a label is left out


def test_fitted_line_and_band_are_the_trends_fit():
    chim, trends = _decay_study()
    root, _ = _svg(persistence_svg(chim, "P1", measure="donor_pct", trends=trends,
                                   populations=["NK", "CIK"]))  # fmt: skip
    nk, cik = _panels(root)
    assert cik.fit_lines() == [] and cik.bands() == []
    (line,) = nk.fit_lines()
    (band,) = nk.bands()
    row = trends[trends["population"] == "NK"].iloc[0]
    from cytokit.report._html import fmt  # the tables' 3 significant digits

    label = (f"t½ = {fmt(row['half_life_days'])} d (95 % CI {fmt(row['half_life_ci_low'])}–"
             f"{fmt(row['half_life_ci_high'])})")  # fmt: skip
    assert label in _texts(root)
    # the line's points, mapped back through the axis, are the fitted decay
    y_of = _y_scale(nk, root, log=True)
    pts = np.array([[float(v) for v in p.split(",")]
                    for p in re.findall(r"-?[\d.]+,-?[\d.]+", line.get("d"))])  # fmt: skip
    from cytokit.analysis.trends import decay_phases

    ((start, end, value),) = decay_phases(row["half_life_phases"])
    expected = value * np.exp(row["half_life_slope"] * (np.linspace(start, end, 25) - start))
    assert pts.shape == (25, 2)
    np.testing.assert_allclose(pts[:, 1], [y_of(v) for v in expected], atol=0.11)
    # the band lies around the line: above it on its way out, below on its way back
    edge = np.array([[float(v) for v in p.split(",")] for p in band.get("points").split()])
    assert edge.shape == (50, 2)
    assert np.all(edge[:25, 1] <= pts[:, 1] + 0.1) and np.all(edge[25:, 1][::-1] >= pts[:, 1] - 0.1)


def test_chimerism_svg_stays_within_0_100_and_marks_too_few_cells():
    from test_plot_limits import _rows

    # 0 donor of 49 and of 20 events (too few to judge), 990 of 1000 (99 %, interval to 100)
    rows = _rows([49, 20, 1000], [0, 0, 990], ["not_detected", "not_detected", "quantified"])
    root, text = _svg(chimerism_svg(rows, "P1"))
    (panel,) = _panels(root)
    y_of = _y_scale(panel, root, log=False)
    top = y_of(100.0)
    for c in panel.circles():
        assert float(c.get("cy")) >= top - 0.05
    for p in panel.group.findall(f"{NS}path"):
        ys = [float(v.split(",")[1]) for v in re.findall(r"-?[\d.]+,-?[\d.]+", p.get("d"))]
        ys += [float(v) for v in re.findall(r"V(-?[\d.]+)", p.get("d"))]
        assert all(y >= top - 0.05 for y in ys), p.get("d")
    assert len(panel.circles()) == 1 and panel.triangles() == []
    assert "too few cells to judge (< 80 events)" in _texts(root)
    assert text.count('stroke="#8c8c8c"') >= 2  # the two grey bars on the lower edge


def test_chimerism_svg_matches_the_matplotlib_figure(results):
    for patient in ("P01", "P02"):
        kw = dict(infusions=results.infusions, populations=list(results.study["populations"]))
        fig = plots.chimerism_figure(results.chimerism, patient, **kw)
        root, _ = _svg(chimerism_svg(results.chimerism, patient, **kw))
        (panel,) = _panels(root)
        ax = fig.axes[0]
        assert len(panel.circles()) == _markers(ax, "o")
        assert len(panel.triangles()) == _markers(ax, "v")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        texts = _texts(root)
        assert "population" in texts and all(t in texts for t in legend)


def test_text_from_files_is_escaped_and_the_bytes_are_the_same_each_time():
    chim, trends = _decay_study()
    hostile = '<script>alert("x")</script> & $\\frac{1}{2}$'
    chim = chim.assign(patient=hostile, population=chim["population"].replace("NK", hostile))
    trends = trends.assign(patient=hostile,
                           population=trends["population"].replace("NK", hostile))  # fmt: skip
    a = persistence_svg(chim, hostile, measure="donor_pct", trends=trends).to_bytes("svg")
    b = persistence_svg(chim, hostile, measure="donor_pct", trends=trends).to_bytes("svg")
    assert a == b
    root = ET.fromstring(a)
    assert hostile in _texts(root) and b"<script" not in a
    assert chimerism_svg(chim, hostile).to_bytes("svg").count(b"<script") == 0
    with pytest.raises(ValueError, match="SVG only"):
        persistence_svg(chim, hostile, measure="donor_pct").to_bytes("png")


def test_log_ticks():
    assert log_ticks(0.7, 60) == [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
    assert log_ticks(0.05, 2000) == [0.1, 1.0, 10.0, 100.0, 1000.0]
    assert log_ticks(5, 4) == []


def test_empty_patient_says_nothing_to_plot():
    empty = pd.DataFrame(columns=["patient", "day", "population", "status"])
    for canvas in (persistence_svg(empty, "P9", measure="donor_pct"), chimerism_svg(empty, "P9")):
        root, _ = _svg(canvas)
        texts = _texts(root)
        assert "nothing to plot" in texts or "P9: donor chimerism" in texts


# ---------------------------------------------------------------- metacluster abundance


def _clusters_table(n_patients: int, seed: int = 0) -> pd.DataFrame:
    """A clusters.csv of `n_patients` × 4 days × 3 metaclusters (day 7 sampled twice for
    the first patient: two files pooled), all and donor events."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for day, files in ((-7, 1), (7, 2 if p == 0 else 1), (14, 1), (28, 1)):
            for f in range(files):
                for origin, total in (("all", 5000), ("donor", 200)):
                    counts = rng.multinomial(total, [0.6, 0.3, 0.1])
                    for mc, k in enumerate(counts):
                        rows.append({"file": f"P{p:03d}_d{day}_{f}.fcs", "patient": f"P{p:03d}",
                                     "day": day, "origin": origin, "metacluster": mc,
                                     "count": int(k), "total": total})  # fmt: skip
    return pd.DataFrame(rows)


def _path_points(d: str) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in re.findall(r"-?[\d.]+,-?[\d.]+", d)])


def test_abundance_svg_per_patient_draws_the_pooled_shares():
    from cytokit.plots.clusters_svg import abundance_points, abundance_svg

    table = _clusters_table(3)
    pts = abundance_points(table, "all")
    # day 7 of the first patient pools its two files
    first = table[(table["patient"] == "P000") & (table["day"] == 7) & (table["origin"] == "all")]
    sel = pts[(pts["patient"] == "P000") & (pts["day"] == 7) & (pts["metacluster"] == 0)]
    m0 = first[first["metacluster"] == 0]
    assert sel["pct"].iloc[0] == pytest.approx(100 * m0["count"].sum() / m0["total"].sum())
    root, _ = _svg(abundance_svg(table, origin="all"))
    panels = _panels(root)
    assert len(panels) == 3 and {"P000", "P001", "P002"} <= set(_texts(root))
    for panel, pid in zip(panels, ["P000", "P001", "P002"], strict=True):
        y_of = _y_scale(panel, root, log=False)
        lines = [p for p in panel.group.findall(f"{NS}path")]
        assert len(lines) == 3  # a line per metacluster
        for mc, line in enumerate(lines):
            want = pts[(pts["patient"] == pid) & (pts["metacluster"] == mc)].sort_values("day")
            got = _path_points(line.get("d"))[:, 1]
            np.testing.assert_allclose(got, [y_of(v) for v in want["pct"]], atol=0.11)
        assert len(panel.circles()) == 3 * 4


def test_abundance_svg_leaves_out_days_of_too_few_events():
    """1 donor event in one metacluster is not "100 %": a day with fewer than `min_total`
    of the origin's events is not drawn, and the others are as before."""
    from cytokit.plots.clusters_svg import abundance_svg

    table = _clusters_table(2)
    few = (table["patient"] == "P000") & (table["day"] == -7) & (table["origin"] == "donor")
    table.loc[few, "count"] = [1, 0, 0]
    table.loc[few, "total"] = 1
    root, _ = _svg(abundance_svg(table, origin="donor", min_total=50))
    first = _panels(root)[0]
    assert len(first.circles()) == 3 * 3  # day -7 left out of P000's panel
    assert len(_panels(root)[1].circles()) == 3 * 4
    root, _ = _svg(abundance_svg(table, origin="donor"))
    assert len(_panels(root)[0].circles()) == 3 * 4


def test_abundance_svg_of_a_large_cohort_has_a_panel_per_metacluster_and_the_median():
    from cytokit.plots.clusters_svg import PER_PATIENT_MAX, abundance_points, abundance_svg

    n = PER_PATIENT_MAX + 21
    table = _clusters_table(n, seed=1)
    root, _ = _svg(abundance_svg(table, origin="donor"))
    panels = _panels(root)
    texts = _texts(root)
    assert len(panels) == 3 and {"MC 0", "MC 1", "MC 2", f"{n} patients"} <= set(texts)
    assert "% of donor events" in texts
    pts = abundance_points(table, "donor")
    for mc, panel in enumerate(panels):
        lines = panel.group.findall(f"{NS}path")
        assert len(lines) == n + 1  # one per patient, then the median
        y_of = _y_scale(panel, root, log=False)
        median = pts[pts["metacluster"] == mc].groupby("day")["pct"].median().sort_index()
        got = _path_points(lines[-1].get("d"))[:, 1]
        np.testing.assert_allclose(got, [y_of(v) for v in median], atol=0.11)
    with pytest.raises(Exception, match="no rows with origin 'recipient'"):
        abundance_svg(table, origin="recipient")


# ---------------------------------------------------------------- cohort


@pytest.mark.parametrize("measure", ["donor_per_ul", "donor_pct"])
def test_cohort_svg_draws_what_the_matplotlib_figure_draws(results, measure):
    from cytokit.plots.cohort_svg import cohort_svg

    kw = dict(measure=measure, samples=results.samples, infusions=results.infusions,
              patients=results.study.get("patients"), min_events=MIN_EVENTS,
              populations=list(results.study["populations"]))  # fmt: skip
    fig = plots.cohort_figure(results.chimerism, **kw)
    root, _ = _svg(cohort_svg(results.chimerism, **kw))
    axes = [ax for ax in fig.axes if ax.get_title()]
    panels = _panels(root)
    assert len(panels) == len(axes)
    texts = _texts(root)
    for ax, panel in zip(axes, panels, strict=True):
        assert ax.get_title() in texts
        assert len(panel.circles()) == _markers(ax, "o")
        assert len(panel.triangles()) == _markers(ax, "v")
        lines = [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none")]
        assert len(panel.group.findall(f"{NS}path")) == sum(len(ln.get_xdata()) > 0 for ln in lines)
    # each patient's id at the end of its line, in every panel where it is drawn
    ids = set(results.chimerism["patient"].astype(str))
    mpl_ends = [t.get_text() for ax in axes for t in ax.texts if t.get_text() in ids]
    assert mpl_ends and sorted(mpl_ends) == sorted(t for t in texts if t in ids)
    legend = (
        [t.get_text() for t in fig.legends[0].get_texts()]
        if fig.legends
        else [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
    )
    assert legend and all(t in texts for t in legend)
    if measure == "donor_pct":
        for panel in panels:
            y_of = _y_scale(panel, root, log=False)
            assert all(float(c.get("cy")) >= y_of(100.0) - 0.05 for c in panel.circles())


# ---------------------------------------------------------------- clustering heatmap


def test_heatmap_svg_colours_each_median_and_writes_it():
    from matplotlib import colormaps

    from cytokit.plots.clusters_svg import heatmap_svg, viridis

    medians = pd.DataFrame(
        [[0.1, 2.5, np.nan], [1.0, 0.4, 3.0]], index=[0, 1], columns=["CD3", "CD56", "<b>"]
    )
    summary = pd.DataFrame({"metacluster": [0, 1], "fraction": [0.25, 0.75],
                            "gate": ["/NK", "/T"], "f1": [0.8, 0.2]})  # fmt: skip
    root, _ = _svg(heatmap_svg(medians, summary))
    cells = [r for r in root.iter(f"{NS}rect") if r.get("width") == "62.0"]
    assert len(cells) == 5  # the missing median has no cell
    texts = _texts(root)
    for v in (0.1, 2.5, 1.0, 0.4, 3.0):
        assert f"{v:.2f}" in texts
    assert {"MC 0 (25.0%) ~ /NK", "MC 1 (75.0%)", "CD3", "<b>"} <= set(texts)
    fills = [c.get("fill") for c in cells]
    assert fills[0] == "#440154" and fills[-1] == "#fde725"  # the lowest and highest median
    # viridis from its stops, within a few units of matplotlib's own table
    cmap = colormaps["viridis"]
    for t in np.linspace(0, 1, 41):
        want = np.array(cmap(t)[:3]) * 255
        got = np.array([int(viridis(t)[i : i + 2], 16) for i in (1, 3, 5)])
        assert np.abs(got - want).max() <= 4, t


def test_a_centred_legend_wider_than_its_canvas_keeps_its_keys_inside():
    """The patient page's status legend (three columns, centred) was estimated wider than
    the canvas, and its first column's markers were cut in half at the left edge."""
    import re

    from cytokit.plots._canvas import LegendEntry, legend_svg

    entries = [LegendEntry(f"status {i}: a long label of the legend", marker="o") for i in range(6)]
    svg, width, _ = legend_svg(entries, 150.0, 0.0, ncols=3, anchor="center")
    assert width > 300  # wider than a 300-pixel canvas centred at 150
    xs = [float(v) for v in re.findall(r'\b(?:x|x1|x2|cx)="(-?[\d.]+)"', svg)]
    assert xs and min(xs) >= 0, min(xs)
