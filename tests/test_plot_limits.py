"""% donor limits that mean something, and infusion marks that stay off the data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from matplotlib.text import Annotation, Text

from cytokit.plots import chimerism_figure, cohort_figure, measure_points, persistence_figure
from cytokit.plots._figure import grid_figure, mark_infusions


def _rows(events, donor, status):
    n = len(events)
    ev = np.asarray(events, dtype=float)
    dn = np.asarray(donor, dtype=float)
    return pd.DataFrame(
        {
            "patient": ["P1"] * n,
            "day": np.arange(n, dtype=float) * 7,
            "file": [f"f{i}.fcs" for i in range(n)],
            "population": ["CIK"] * n,
            "sample_type": ["PB"] * n,
            "events": ev,
            "donor_events": dn,
            "donor_pct": 100.0 * dn / ev,
            "ci_low": np.zeros(n),
            "ci_high": np.full(n, 100.0),
            "status": status,
        }
    )


def test_small_population_is_too_few_cells_never_a_high_pct_limit():
    # 0 donor events of 49 (limit 20/49 = 40.8 %), of 20 (100 %), of 1000 (2 %)
    rows = _rows([49, 20, 1000], [0, 0, 0], ["not_detected"] * 3)
    pts = measure_points(rows, "donor_pct")
    assert pts["too_few"].tolist() == [True, True, False]
    assert np.isnan(pts["y"].iloc[0]) and np.isnan(pts["y"].iloc[1])
    assert abs(pts["y"].iloc[2] - 2.0) < 1e-9  # 20 of 1000 events
    assert (pts["y"].dropna() <= 100.0).all() and (pts["high"].dropna() <= 100.0).all()


def test_chimerism_axis_stays_within_0_100():
    rows = _rows([49, 30, 1000, 400], [0, 0, 300, 390], ["not_detected"] * 2 + ["quantified"] * 2)
    fig = chimerism_figure(rows, "P1")
    ax = fig.axes[0]
    _lo, hi = ax.get_ylim()
    assert hi <= 105.0
    ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()
                         if line.get_transform() == ax.transData and len(line.get_ydata())])  # fmt: skip
    assert np.nanmax(ys) <= 100.0


def _label_boxes(fig, ax):
    fig.canvas.draw()
    texts = [t for t in ax.texts if isinstance(t, (Text, Annotation)) and t.get_text()]
    return texts, ax.get_window_extent()


def test_infusion_labels_sit_above_the_axes_horizontal_and_apart():
    fig, axes = grid_figure(1, 1, (2.9, 2.0), margins=(0.7, 0.2, 0.5, 0.8))
    ax = axes[0, 0]
    ax.plot([0, 90], [1, 100])
    inf = pd.DataFrame(
        {"patient": "P1", "day": [0.0, 21.0, 42.0, 63.0, 84.0], "product": "CIK",
         "dose_per_kg": [1e6, 3e6, 5e6, 1e7, 1e7]}
    )  # fmt: skip
    mark_infusions(ax, inf)
    texts, frame = _label_boxes(fig, ax)
    assert len(texts) == 5
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for t, b in zip(texts, boxes, strict=True):
        assert t.get_rotation() == 0
        assert b.y0 >= frame.y1  # above the plot area, never over the data
        assert b.y1 <= fig.bbox.y1  # not cut off by the figure's top
    for a, b in itertools.pairwise(boxes):
        assert not a.overlaps(b)


def test_drugs_are_drawn_apart_from_cell_products():
    _fig, axes = grid_figure(1, 1, (4.0, 2.0), margins=(0.7, 0.2, 0.5, 0.8))
    ax = axes[0, 0]
    inf = pd.DataFrame(
        {"patient": "P1", "day": [0.0, 30.0], "product": ["CIK", "IL-2"],
         "dose_per_kg": [1e6, np.nan], "kind": ["cell product", "drug"]}
    )  # fmt: skip
    mark_infusions(ax, inf)
    carets = ax.collections
    assert len(carets) == 2
    shapes = [c.get_paths()[0].vertices for c in carets]
    assert shapes[0].shape != shapes[1].shape or not np.allclose(*shapes)
    assert not np.allclose(carets[0].get_facecolor(), carets[1].get_facecolor())


def test_persistence_figure_with_drug_courses_renders():
    rows = _rows([1000, 1000, 1000], [300, 100, 30], ["quantified"] * 3)
    rows["per_ul"] = 50.0
    rows["donor_per_ul"] = rows["donor_events"] * 0.05
    courses = pd.DataFrame(
        {"patient": ["P1"], "product": ["IL-2"], "start_day": [1], "end_day": [5]}
    )
    fig = persistence_figure(rows, "P1", courses=courses)
    assert any(t.get_text().strip() == "IL-2" for t in fig.axes[0].texts)


def test_cohort_pct_axis_ends_at_100():
    rows = _rows(
        [30, 40, 1000], [20, 30, 10], ["not_quantifiable", "not_quantifiable", "not_detected"]
    )
    rows["stratum"] = "NK"
    fig = cohort_figure(rows, measure="donor_pct")
    ax = next(a for a in fig.axes if a.get_title() == "CIK")
    assert ax.get_ylim()[1] <= 110.0
