"""Outcome plots: they render, deterministically, with the numbers at risk the data give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("lifelines")

from cytokit import CytokitError
from cytokit.clinical import cumulative_incidence, kaplan_meier, numbers_at_risk
from cytokit.clinical.tables import SURVIVAL_COLUMNS
from cytokit.plots import figure_bytes
from cytokit.plots.outcomes import (
    at_risk_table,
    mark_drug_courses,
    response_figure,
    survival_figure,
)

RNG = np.random.default_rng(3)
DURATIONS = {g: RNG.integers(1, 400, size=25).astype(float) for g in ("A", "B")}
EVENTS = {g: RNG.integers(0, 2, size=25) for g in ("A", "B")}


def _survival() -> pd.DataFrame:
    parts = []
    for g in ("A", "B"):
        steps = kaplan_meier(DURATIONS[g], EVENTS[g])
        parts.append(steps.assign(analysis="pfs", group_by="stratum", group=g))
        status = np.where(EVENTS[g] == 1, 1 + (DURATIONS[g] > 200), 0)
        ci = cumulative_incidence(DURATIONS[g], status)
        parts.append(ci.assign(analysis="agvhd", group_by="product", group=g))
    return pd.concat(parts, ignore_index=True)[list(SURVIVAL_COLUMNS)]


def test_numbers_at_risk_under_the_plot_are_the_patients_still_followed():
    survival = _survival()
    times = [0, 50, 100, 200, 350, 500]
    for g in ("A", "B"):
        steps = survival[(survival["analysis"] == "pfs") & (survival["group"] == g)]
        assert at_risk_table(steps, times) == numbers_at_risk(DURATIONS[g], times).tolist()


def test_survival_and_incidence_figures_render_the_same_bytes_twice():
    survival = _survival()
    for analysis, group_by in (("pfs", "stratum"), ("agvhd", "product")):
        fig = survival_figure(survival, analysis, group_by)
        png = figure_bytes(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert figure_bytes(survival_figure(survival, analysis, group_by)) == png
        texts = {t.get_text() for ax in fig.axes for t in ax.texts}
        assert {"A", "B", "number at risk", "25"} <= texts
    with pytest.raises(CytokitError, match=r"no 'os' curve by 'all'.*pfs/stratum"):
        survival_figure(survival, "os", "all")


def test_response_figure_renders_every_category():
    per_patient = pd.DataFrame(
        {
            "patient": [f"P{i}" for i in range(8)],
            "response": ["CR", "CR", "PR", "SD", "PD", "PD", "PD", "CR"],
            "auc": [120.0, 80.0, 40.0, 1.0, 0.5, 0.0, 2.0, 300.0],
            "detected": [True, True, True, False, False, False, False, True],
        }
    )
    fig = response_figure(per_patient, "auc")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["CR\nn = 3", "PR\nn = 1", "SD\nn = 1", "PD\nn = 3\n(1 not shown)"]
    assert figure_bytes(fig)[:4] == b"\x89PNG"


def test_drug_courses_are_bands_not_infusion_lines():
    from cytokit.clinical import Treatment, drug_courses
    from cytokit.plots import new_figure

    treatments = [Treatment("P1", 0, "NK", "cells", 1e7, "cells/kg")]
    treatments += [Treatment("P1", d, "IL-2", "drug", 1, "MIU/m2") for d in (1, 3, 5, 7, 9, 11)]
    fig = new_figure(4, 3)
    ax = fig.add_subplot()
    ax.set_xlim(-7, 60)
    mark_drug_courses(ax, drug_courses(treatments))
    (band,) = ax.patches
    xs = band.get_patch_transform().transform(band.get_path().vertices)[:, 0]  # data days
    assert (xs.min(), xs.max()) == (1.0, 12.0)  # days 1 to 11, the last day included
    assert [t.get_text() for t in ax.texts] == [" IL-2"] and not ax.lines
