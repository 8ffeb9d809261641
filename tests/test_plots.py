"""Plots: persistence, chimerism, cohort and QC figures from the results tables.

The results come from `results_fixture` (the sample study gated for real with
fixed gates, donor cells from the simulator's truth). QC plots are checked
against the gating engine: where the stored points are all of a gate's parent
events, the points drawn inside the gate are exactly the gate's count (the QC
figures themselves in test_plots_qc.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from results_fixture import MIN_EVENTS, make_results

from cytokit import plots
from cytokit.analysis.results import load_results
from cytokit.plots.qc import (
    _axes_of,
    _gate_dims,
    _inside,
    _quadrant_boxes,
    axis_label,
    gate_panels,
)

#: The limit of detection: 20 donor events (DESIGN.md, [qc]).
DETECTION_EVENTS = 20


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return load_results(make_results(tmp_path_factory.mktemp("results")))


def _qc_points(results, sample):
    with np.load(results.out / "qc" / f"{sample}.npz") as data:
        return {k[5:]: data[k] for k in data.files if k.startswith("gate:")}


def _markers(ax, marker: str) -> int:
    return sum(
        len(line.get_xdata())
        for line in ax.get_lines()
        if line.get_marker() == marker and line.get_linestyle() == "None"
    )


def _infusion_lines(ax) -> list[float]:
    return sorted(
        float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_linestyle() == ":"
    )


# ---------------------------------------------------------------- points, limits, intervals


def test_measure_points_limits_follow_each_files_counting_reference(results):
    chim, samples = results.chimerism, results.samples
    pts = plots.measure_points(chim, "donor_per_ul", samples=samples, min_events=MIN_EVENTS)
    ref = samples.set_index("file")
    per_event = (ref["reference_per_ul"] / ref["reference_events"]).reindex(chim["file"]).to_numpy()
    np.testing.assert_allclose(pts["lod"], DETECTION_EVENTS * per_event, rtol=1e-9)
    np.testing.assert_allclose(pts["loq"], MIN_EVENTS * per_event, rtol=1e-9)
    nd = (pts["status"] == "not_detected").to_numpy()
    np.testing.assert_allclose(pts["y"][nd], pts["lod"][nd])
    detected = ~nd
    np.testing.assert_allclose(pts["y"][detected], chim["donor_per_ul"][detected])
    assert (pts["low"][detected] <= pts["value"][detected]).all()
    assert (pts["value"][detected] <= pts["high"][detected]).all()
    # every detected value is above its LOD, every quantified one at or above its LOQ
    assert (pts["value"][detected] >= pts["lod"][detected] * (1 - 1e-9)).all()
    quant = (pts["status"] == "quantified").to_numpy()
    assert (pts["value"][quant] >= pts["loq"][quant] * (1 - 1e-9)).all()


def test_measure_points_percent_uses_the_tables_interval(results):
    chim = results.chimerism
    pts = plots.measure_points(chim, "donor_pct", min_events=MIN_EVENTS)
    np.testing.assert_allclose(pts["low"], chim["ci_low"])
    np.testing.assert_allclose(pts["high"], chim["ci_high"])
    with np.errstate(divide="ignore"):
        lod = 100.0 * DETECTION_EVENTS / chim["events"].to_numpy(float)
    np.testing.assert_allclose(pts["lod"], np.where(chim["events"] > 0, lod, np.nan))
    # a not-detected population too small to ever show 20 donor events is not drawn
    tiny = (pts["status"] == "not_detected") & (chim["events"] < DETECTION_EVENTS)
    assert pts.loc[tiny, "y"].isna().all()


def test_poisson_score_interval_covers_95_percent():
    rng = np.random.default_rng(7)
    for lam in (2.0, 8.0, 30.0, 200.0):
        k = rng.poisson(lam, 20_000)
        low, high = plots.poisson_interval(k)
        coverage = np.mean((low <= lam) & (lam <= high))
        assert 0.93 <= coverage <= 0.975, (lam, coverage)
    low, high = plots.poisson_interval(np.array([0]))
    assert low[0] == 0.0 and high[0] == pytest.approx(1.959963984540054**2)


def test_measure_points_rejects_unknown_measure(results):
    with pytest.raises(ValueError, match="measure='cells'"):
        plots.measure_points(results.chimerism, "cells")


# ---------------------------------------------------------------- patient figures


@pytest.mark.parametrize(("patient", "n_infusions"), [("P01", 1), ("P02", 5), ("P03", 2)])
def test_persistence_figure_for_nk_and_cik_patients(results, patient, n_infusions):
    pops = list(results.study["populations"])
    fig = plots.persistence_figure(
        results.chimerism,
        patient,
        samples=results.samples,
        infusions=results.infusions,
        trends=results.trends,
        min_events=MIN_EVENTS,
        populations=pops,
    )
    panels = [ax for ax in fig.axes if ax.get_title()]
    # the title names the population only; an estimated half-life is in the legend
    assert [ax.get_title() for ax in panels] == pops
    inf = results.infusions[results.infusions["patient"] == patient]
    rows = results.chimerism[results.chimerism["patient"] == patient]
    for ax, pop in zip(panels, pops, strict=True):
        assert _infusion_lines(ax) == sorted(inf["day"].astype(float))
        labels = [t.get_text().strip() for t in ax.texts]
        for _, r in inf.iterrows():
            assert f"{r['product']} {plots.format_dose(r['dose_per_kg'])}" in labels
        assert ax.get_yscale() == "log"
        sel = rows[rows["population"] == pop]
        n_nd = int((sel["status"] == "not_detected").sum())
        assert _markers(ax, "v") == n_nd
        assert _markers(ax, "o") == len(sel) - n_nd
        # a fitted decay line and its band per phase of each estimated half-life, none elsewhere
        tr = results.trends
        mine = tr[(tr["patient"] == patient) & (tr["population"] == pop)
                  & (tr["measure"] == "donor_per_ul") & tr["half_life_days"].notna()]  # fmt: skip
        phases = sum(len(str(p).split(";")) for p in mine["half_life_phases"])
        assert len(_fit_lines(ax)) == phases == len(_bands(ax))
        legend = [t.get_text() for t in ax.get_legend().get_texts()] if phases else []
        assert len(legend) == len(mine) and all(t.startswith("t½ = ") for t in legend)
    png = plots.figure_bytes(fig, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cik_patient_infusion_labels_name_product_and_dose(results):
    fig = plots.chimerism_figure(results.chimerism, "P02", infusions=results.infusions)
    texts = {t.get_text().strip() for t in fig.axes[0].texts}
    assert {"DLI 10⁶/kg", "CIK 3×10⁶/kg", "CIK 5×10⁶/kg", "CIK 10⁷/kg"} <= texts
    assert _infusion_lines(fig.axes[0]) == [0.0, 21.0, 42.0, 63.0, 84.0]


def test_all_not_detected_and_empty_series(results):
    chim = results.chimerism[results.chimerism["patient"] == "P01"].copy()
    chim["donor_events"] = 0
    chim["donor_per_ul"] = 0.0
    chim["donor_pct"] = 0.0
    chim["status"] = "not_detected"
    fig = plots.persistence_figure(chim, "P01", samples=results.samples, min_events=MIN_EVENTS)
    for ax in (a for a in fig.axes if a.get_title()):
        assert _markers(ax, "o") == 0
        assert _markers(ax, "v") == chim["day"].nunique()
        assert ax.get_yscale() == "log"
        solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
        assert all(len(ln.get_xdata()) == 0 for ln in solid)  # no curve through censored points
    plots.figure_bytes(fig, "png")
    empty = plots.persistence_figure(results.chimerism, "nobody")
    assert any("nothing to plot" in t.get_text() for ax in empty.axes for t in ax.texts)
    plots.figure_bytes(empty, "png")
    plots.figure_bytes(plots.chimerism_figure(results.chimerism.iloc[0:0], "nobody"), "png")
    plots.figure_bytes(plots.cohort_figure(results.chimerism.iloc[0:0]), "png")


def test_patient_with_one_day(tmp_path):
    r = load_results(make_results(tmp_path / "one", keep=lambda p, d: p != "P03" or d == 7))
    rows = r.chimerism[r.chimerism["patient"] == "P03"]
    assert rows["day"].nunique() == 1
    fig = plots.persistence_figure(
        r.chimerism, "P03", samples=r.samples, infusions=r.infusions, trends=r.trends
    )
    ax = next(a for a in fig.axes if a.get_title().startswith("NK"))
    # one file: the LOQ is a horizontal line at that file's limit
    pts = plots.measure_points(rows[rows["population"] == "NK"], samples=r.samples)
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), pts["loq"].iloc[0])
    plots.figure_bytes(fig, "png")
    plots.figure_bytes(plots.chimerism_figure(r.chimerism, "P03"), "svg")


def test_cohort_figure_tells_patients_apart_and_strata_by_line_style(results):
    fig = plots.cohort_figure(
        results.chimerism,
        samples=results.samples,
        infusions=results.infusions,
        patients=results.study["patients"],
        populations=["NK", "CIK"],
    )
    strata = {str(p["id"]): str(p["stratum"]) for p in results.study["patients"]}
    ax = next(a for a in fig.axes if a.get_title() == "NK")
    curves = [ln for ln in ax.get_lines() if ln.get_linestyle() != "None"]
    by_colour = {}
    for ln in curves:
        by_colour.setdefault(ln.get_color(), set()).add(ln.get_linestyle())
    # one colour per patient: as many curve colours as patients, the NK arm's two apart
    assert len(by_colour) == len(strata) == 3
    labels = {t.get_text() for t in ax.texts}
    assert labels == set(strata)  # every patient named at the end of its line
    # the stratum is the line style: the two NK patients share one, the CIK patient another
    nk_style = {
        next(iter(by_colour[lb.get_color()])) for lb in ax.texts if strata[lb.get_text()] == "NK"
    }
    cik_style = {
        next(iter(by_colour[lb.get_color()])) for lb in ax.texts if strata[lb.get_text()] == "CIK"
    }
    assert len(nk_style) == 1 and len(cik_style) == 1 and nk_style != cik_style
    legend = [
        t.get_text()
        for lg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
        for t in lg.get_texts()
    ]
    assert "CIK (n=1)" in legend and "NK (n=2)" in legend
    carets = [ln for ln in ax.get_lines() if ln.get_marker() == "^"]
    assert len(carets) == len(results.infusions)
    assert ax.get_yscale() == "log"  # cells/µL
    pct = plots.cohort_figure(results.chimerism, measure="donor_pct", populations=["NK"])
    ax = next(a for a in pct.axes if a.get_title() == "NK")
    assert ax.get_yscale() == "linear" and ax.get_ylim() == (-2.0, 102.0)


def test_text_from_files_never_starts_mathtext(results):
    chim = results.chimerism.copy()
    chim["patient"] = chim["patient"].replace("P01", "$\\frac{a$")
    chim["population"] = chim["population"].replace("NK", "N$K_{")
    fig = plots.persistence_figure(chim, "$\\frac{a$")
    plots.figure_bytes(fig, "png")
    plots.figure_bytes(plots.chimerism_figure(chim, "$\\frac{a$"), "svg")


# ---------------------------------------------------------------- QC


def _membership_checks(results):
    """(row, points, geometry) of rectangle/polygon/ellipsoid gates whose stored points are all
    of the parent's events."""
    out = []
    for sample, rows in results.qc.groupby("sample"):
        pts = _qc_points(results, sample)
        for row, geometry, kind, p, _labels in gate_panels(rows, pts):
            if (
                kind in ("rectangle", "polygon", "ellipsoid")
                and row["n_points"] == row["parent_count"]
            ):
                out.append((row, p, geometry, kind))
    return out


def test_qc_points_inside_a_gate_are_its_count(results):
    checks = _membership_checks(results)
    kinds = {kind for *_, kind in checks}
    assert kinds == {"rectangle", "polygon", "ellipsoid"}
    for row, p, geometry, kind in checks:
        assert int(_inside(geometry, kind, p).sum()) == int(row["count"]), row["gate_id"]


def test_quadrant_boxes_hold_each_quadrants_count(results):
    seen = 0
    for sample, rows in results.qc.groupby("sample"):
        pts = _qc_points(results, sample)
        counts = results.counts[results.counts["file"] == rows["file"].iloc[0]]
        for _row, geometry, kind, p, _ in gate_panels(rows, pts):
            if kind != "quadrant":
                continue
            parent = counts.loc[counts["gate_id"] == geometry["parent"], "count"].iloc[0]
            if len(p) != parent:
                continue
            dims = _gate_dims(geometry)
            axes = _axes_of(dims)
            for _name, qid, ((x0, x1), (y0, y1)) in _quadrant_boxes(geometry, axes, dims):
                x, y = p[:, axes[0]], p[:, axes[1]]
                n = int(((x >= x0) & (x < x1) & (y >= y0) & (y < y1)).sum())
                assert n == counts.loc[counts["gate_id"] == qid, "count"].iloc[0], qid
                seen += 1
    assert seen >= 8  # the plain and the split quadrant gate of at least one sample


def test_axis_labels_name_markers_and_keep_ratio_functions():
    markers = {"APC-A": "CD3", "PE-A": "CD56"}
    assert axis_label("logicle(APC-A) [FCS]", markers) == "CD3"
    assert axis_label("ratio(APC-A,PE-A)", markers) == "ratio(CD3, CD56)"
    assert axis_label("logicle(V450-A) [FCS]", markers) == "V450-A"  # not in the panel
    assert axis_label("FSC-A", markers) == "FSC-A"


# ---------------------------------------------------------------- files


def test_save_figure_is_atomic_and_deterministic(results, tmp_path):
    def build():
        return plots.persistence_figure(results.chimerism, "P02", samples=results.samples)

    first = plots.save_figure(build(), tmp_path / "a" / "p02")
    second = plots.save_figure(build(), tmp_path / "b" / "p02.png")
    assert sorted(first) == ["png", "svg"] and first["png"].name == "p02.png"
    for fmt in ("png", "svg"):
        assert first[fmt].read_bytes() == second[fmt].read_bytes()
    svg = first["svg"].read_text()
    assert "<dc:date>" not in svg
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["p02.png", "p02.svg"]


def test_format_dose():
    assert plots.format_dose(18_000_000) == "1.8×10⁷/kg"
    # 3 significant digits: a dose halfway between two 2-digit roundings keeps its digit
    assert plots.format_dose(16_500_000) == "1.65×10⁷/kg"
    assert plots.format_dose(9_996_000) == "10⁷/kg"
    # a half rounds up as on paper, whatever the binary float does with it
    assert plots.format_dose(16_250_000) == "1.63×10⁷/kg"
    assert plots.format_dose(2_675_000) == "2.68×10⁶/kg"
    assert plots.format_dose(9_995_000) == "10⁷/kg"
    assert plots.format_dose(1_005_000) == "1.01×10⁶/kg"
    assert plots.format_dose(1e6) == "10⁶/kg"
    assert plots.format_dose(2.5e-3) == "2.5×10⁻³/kg"
    assert plots.format_dose(None) == "" and plots.format_dose(float("nan")) == ""
    assert plots.format_dose("x") == ""


def test_status_legend_names_every_status(results):
    fig = plots.persistence_figure(results.chimerism, "P01", samples=results.samples)
    texts = [
        t.get_text()
        for lg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
        for t in lg.get_texts()
    ]
    assert any(t.startswith("not detected") for t in texts)
    assert any(t.startswith("not quantifiable") for t in texts)
    assert "quantified" in texts


# ---------------------------------------------------------------- fitted decay lines


def _decay_study():
    """One patient, two populations by % donor in 10,000 events: NK decays with a 6-day
    half-life after a day-3 peak, CIK is never detected (nothing to fit)."""
    from cytokit.analysis.trends import trend_row

    days = np.array([-7, 0, 3, 7, 10, 14, 21, 28], dtype=float)
    nk = np.where(days < 0, 0.0, 40.0 * 2.0 ** (-(days - 3) / 6.0))
    nk[1] = 5.0  # day 0: the infusion day, before the cells expand
    rows, trends = [], []
    for pop, pct in (("NK", nk), ("CIK", np.zeros_like(days))):
        k = np.round(pct * 100.0)
        status = np.where(k >= 50, "quantified", np.where(k >= 20, "not_quantifiable",
                                                          "not_detected"))  # fmt: skip
        for d, p, ki, s in zip(days, k / 100.0, k, status, strict=True):
            rows.append({"patient": "P1", "day": d, "file": f"P1_d{d:g}.fcs", "population": pop,
                         "sample_type": "PB", "status": s, "donor_pct": p, "ci_low": p * 0.9,
                         "ci_high": p * 1.1, "donor_events": ki, "events": 10000.0})  # fmt: skip
        row = trend_row(days, k / 100.0, status, [0], [1e6], k)
        trends.append({"patient": "P1", "sample_type": "PB", "population": pop,
                       "measure": "donor_pct", **row})  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(trends)


def _fit_lines(ax):
    return [line for line in ax.get_lines() if line.get_label().startswith("t½ =")]


def _bands(ax):
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_fitted_decay_line_only_where_the_half_life_is_estimated():
    chim, trends = _decay_study()
    nk, cik = (trends[trends["population"] == p].iloc[0] for p in ("NK", "CIK"))
    assert nk["half_life_days"] == pytest.approx(6.0, rel=0.02)
    assert math.isnan(cik["half_life_days"])
    fig = plots.persistence_figure(chim, "P1", measure="donor_pct", trends=trends,
                                   populations=["NK", "CIK"])  # fmt: skip
    panels = {ax.get_title().split(" — ")[0]: ax for ax in fig.axes if ax.get_title()}
    assert _fit_lines(panels["CIK"]) == []
    (line,) = _fit_lines(panels["NK"])
    series = [ln for ln in panels["NK"].get_lines() if ln.get_label() == "PB"]
    assert line.get_color() == series[0].get_color()
    lo, hi, hl = nk["half_life_ci_low"], nk["half_life_ci_high"], nk["half_life_days"]
    # as the report's tables give it (3 significant digits)
    from cytokit.report._html import fmt

    assert line.get_label() == f"t½ = {fmt(hl)} d (95 % CI {fmt(lo)}–{fmt(hi)})"
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    # only over the fitted phase (from the first point after the peak), on the points' fit
    fitted = chim[(chim["population"] == "NK") & (chim["day"] >= 7)]
    assert (x.min(), x.max()) == (7.0, fitted["day"].max())
    slope, icept = np.polyfit(fitted["day"], np.log(fitted["donor_pct"]), 1)
    np.testing.assert_allclose(y, np.exp(icept + slope * x), rtol=0.02)
    legend = panels["NK"].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [line.get_label()]
    # the 95 % band of the fitted line: over the same days, around it, from trends' covariance
    assert _bands(panels["CIK"]) == []
    (band,) = _bands(panels["NK"])
    edge = band.get_paths()[0].vertices
    assert (edge[:, 0].min(), edge[:, 0].max()) == (7.0, fitted["day"].max())
    from cytokit.analysis.trends import decay_band, decay_covariances, decay_phases

    ((start, _end, value),) = decay_phases(nk["half_life_phases"])
    (cov,) = decay_covariances(nk["half_life_cov"])
    fit, low, high = decay_band(x, start, value, nk["half_life_slope"], cov,
                                nk["half_life_quantile"])  # fmt: skip
    np.testing.assert_allclose(fit, y, rtol=1e-12)
    assert np.all(low < y) and np.all(y < high)
    for d, lo_, hi_ in zip(x, low, high, strict=True):  # the band's edge passes through both
        at = edge[np.isclose(edge[:, 0], d), 1]
        assert np.isclose(at, lo_, rtol=1e-9).any() and np.isclose(at, hi_, rtol=1e-9).any()
    # widest at the ends of the fitted days, narrowest inside
    width = np.log(high / low)
    assert width.argmin() not in (0, width.size - 1)


def test_no_fitted_line_without_half_life_columns():
    chim, trends = _decay_study()
    old = trends.drop(columns=["half_life_slope", "half_life_phases"])
    for t in (None, old):
        fig = plots.persistence_figure(chim, "P1", measure="donor_pct", trends=t)
        assert not [ln for ax in fig.axes for ln in _fit_lines(ax)]
    # a trends.csv from before the band's columns: the line, no band
    line_only = trends.drop(columns=["half_life_cov", "half_life_quantile"])
    fig = plots.persistence_figure(chim, "P1", measure="donor_pct", trends=line_only)
    assert [len(_fit_lines(ax)) for ax in fig.axes if ax.get_title()] == [1, 0]
    assert not [b for ax in fig.axes for b in _bands(ax)]


def test_chimerism_populations_with_the_same_values_are_both_seen():
    """NK and its subset NK_dim with identical % donor: two line styles, side by side by
    a step of 0.4 % of the days, each point still within a day of its sample."""
    days = np.array([-7.0, 7, 10, 14, 21])
    pct = np.array([0.0, 47.0, 27.0, 13.0, 5.0])
    rows = [
        {"patient": "P1", "day": d, "file": f"d{d:g}.fcs", "population": pop, "sample_type": "PB",
         "status": "quantified" if p > 0 else "not_detected", "donor_pct": p, "ci_low": p * 0.9,
         "ci_high": p * 1.1, "donor_events": p * 10, "events": 1000.0}
        for pop in ("NK", "NK_dim") for d, p in zip(days, pct, strict=True)
    ]  # fmt: skip
    fig = plots.chimerism_figure(pd.DataFrame(rows), "P1")
    lines = {
        ln.get_label(): ln for ln in fig.axes[0].get_lines() if ln.get_label() in ("NK", "NK_dim")
    }
    nk, dim = lines["NK"], lines["NK_dim"]
    assert nk.get_linestyle() != dim.get_linestyle() and ":" not in (
        nk.get_linestyle(),
        dim.get_linestyle(),
    )
    x_nk, x_dim = np.asarray(nk.get_xdata(), float), np.asarray(dim.get_xdata(), float)
    np.testing.assert_allclose(x_dim - x_nk, 0.004 * 28.0)
    np.testing.assert_allclose(nk.get_ydata(), dim.get_ydata())
    assert np.all(np.abs(x_nk - days[1:]) < 1.0) and np.all(np.abs(x_dim - days[1:]) < 1.0)
