"""Infusion product QC against bags of known composition, release judgement, input checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cytokit import StudyError
from cytokit.clinical import (
    Outcome,
    ReleaseLimits,
    Treatment,
    product_qc,
    rare_event_limit,
)
from cytokit.simulate.outcomes import simulate_bags


def test_product_qc_intervals_cover_the_bags_true_composition():
    samples, truth = simulate_bags(400, seed=3)
    qc = product_qc(samples).set_index("patient")
    truth = truth.set_index("patient").loc[qc.index]

    def coverage(name, low, high):
        return float(np.mean((qc[low] <= truth[name]) & (truth[name] <= qc[high])))

    # exact two-sided 95 % intervals: at least nominal coverage, so in 400 bags at least
    # 92 % (a calibrated interval falls below it with probability 0.003)
    assert coverage("nk_purity_pct", "nk_purity_ci_low", "nk_purity_ci_high") >= 0.92
    assert coverage("viability_pct", "viability_ci_low", "viability_ci_high") >= 0.92
    # two exact intervals at 97.5 % each: at least 95 % jointly
    assert (
        coverage("cd3_log_depletion", "cd3_log_depletion_ci_low", "cd3_log_depletion_ci_high")
        >= 0.95
    )
    assert coverage("nk_recovery_pct", "nk_recovery_ci_low", "nk_recovery_ci_high") >= 0.95
    # the one-sided 95 % upper bound of the residual CD3+ dose
    assert np.mean(truth["cd3_per_kg"] <= qc["cd3_per_kg_upper"]) >= 0.95
    # and the estimates are centred on the truth
    assert np.median(qc["nk_purity_pct"] - truth["nk_purity_pct"]) == pytest.approx(0, abs=0.1)
    # (a bag without a CD3+ event has a lower limit only)
    assert np.nanmedian(qc["cd3_log_depletion"] - truth["cd3_log_depletion"]) == pytest.approx(
        0, abs=0.05
    )


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (2, 10_000), (4_990, 10_000)])
def test_exact_bounds_agree_with_cytokit_intervals(k, n):
    from cytokit.clinical.product import _cp
    from cytokit.stats.intervals import clopper_pearson_interval

    for level in (0.95, 0.9):
        low, high = clopper_pearson_interval(k, n, level)
        assert _cp(k, n, level) == pytest.approx((float(low), float(high)), rel=1e-9, abs=1e-15)


def test_rare_event_limit_is_the_rule_of_three():
    # 10,000 events cannot show a CD3 fraction below ~0.03 %
    assert rare_event_limit(10_000) == pytest.approx(2.9955e-4, rel=1e-4)
    assert rare_event_limit(10_000) * 10_000 == pytest.approx(3.0, abs=0.01)
    assert math.isnan(rare_event_limit(0))


def _bag(cd3_post=2, nk_post=9_000, pre=True, **over):
    rows = [
        {"patient": "P1", "day": 0, "product": "NK", "stage": "post", "events": 10_000,
         "live": 9_600, "nk": nk_post, "cd3": cd3_post, "nucleated_per_ml": 5e6,
         "volume_ml": 100.0, "weight_kg": 70.0},
    ]  # fmt: skip
    if pre:
        rows.append(
            {
                "patient": "P1",
                "day": 0,
                "product": "NK",
                "stage": "pre",
                "events": 50_000,
                "live": 49_000,
                "nk": 5_000,
                "cd3": 30_000,
                "nucleated_per_ml": 1e8,
                "volume_ml": 300.0,
                "weight_kg": math.nan,
            }
        )
    rows[0].update(over)
    return pd.DataFrame(rows)


def test_product_qc_numbers_of_one_bag():
    row = product_qc(_bag()).iloc[0]
    cells = 5e6 * 100.0
    assert row["nk_purity_pct"] == pytest.approx(100 * 9_000 / 9_600)
    assert row["viability_pct"] == pytest.approx(96.0)
    assert row["cd3_per_kg"] == pytest.approx(cells * 2 / 10_000 / 70)
    assert row["cd3_pct_limit"] == pytest.approx(100 * rare_event_limit(10_000))
    assert row["cd3_per_kg_limit"] == pytest.approx(cells * rare_event_limit(10_000) / 70)
    pre_cd3, post_cd3 = 3e10 * 30_000 / 50_000, cells * 2 / 10_000
    assert row["cd3_log_depletion"] == pytest.approx(math.log10(pre_cd3 / post_cd3))
    assert row["nk_recovery_pct"] == pytest.approx(100 * (cells * 0.9) / (3e10 * 0.1))
    assert row["cd3_per_kg"] < row["cd3_per_kg_upper"] and row["release"] == "not judged"


def test_no_cd3_event_leaves_depletion_open_and_no_pre_sample_leaves_it_out():
    row = product_qc(_bag(cd3_post=0)).iloc[0]
    assert row["cd3_per_kg"] == 0 and row["cd3_per_kg_upper"] == pytest.approx(
        row["cd3_per_kg_limit"]
    )
    # no point estimate (inf read as a measure in the CSV), the lower limit in the note
    assert math.isnan(row["cd3_log_depletion"]) and math.isinf(row["cd3_log_depletion_ci_high"])
    low = row["cd3_log_depletion_ci_low"]
    assert math.isfinite(low) and f"at least {low:.3g} log10" in row["note"]
    assert "no point estimate or upper limit" in row["note"]
    row = product_qc(_bag(pre=False)).iloc[0]
    assert math.isnan(row["cd3_log_depletion"]) and math.isnan(row["nk_recovery_pct"])
    assert row["note"] == "no pre-selection sample: no recovery or depletion"


def test_release_is_judged_on_the_bounds():
    cd3_per_kg = 5e8 * 2 / 10_000 / 70  # ~1,400 CD3+ cells/kg measured
    passing = ReleaseLimits(min_nk_purity_pct=90, min_cd3_log_depletion=3, max_cd3_per_kg=1e4)
    assert product_qc(_bag(), passing).iloc[0]["release"] == "pass"
    # the estimate is inside the limit but its upper bound is not: not shown
    row = product_qc(_bag(), ReleaseLimits(max_cd3_per_kg=2 * cd3_per_kg)).iloc[0]
    assert row["release"] == "not shown" and "does not show <= " in row["release_note"]
    # the estimate itself misses: fail, whatever else passes
    row = product_qc(
        _bag(nk_post=8_000), ReleaseLimits(min_nk_purity_pct=90, max_cd3_per_kg=1e5)
    ).iloc[0]
    assert row["release"] == "fail" and row["release_note"].startswith(
        "NK purity 83.3% fails >= 90%"
    )
    # recovery needs a pre-selection sample
    row = product_qc(_bag(pre=False), ReleaseLimits(min_nk_recovery_pct=20)).iloc[0]
    assert row["release"] == "not shown" and "NK recovery not measured" in row["release_note"]


def test_product_qc_is_linked_to_the_treatment_row_and_the_gvhd_outcome():
    treatments = [Treatment("P1", 0, "NK", "cells", 1.5e7, "cells/kg", dose_level=2)]
    outcomes = [Outcome("P1", 100, agvhd_max_grade=2, agvhd_onset_day=20)]
    row = product_qc(_bag(), treatments=treatments, outcomes=outcomes).iloc[0]
    assert row["dose_level"] == 2 and row["agvhd_max_grade"] == 2 and row["note"] == ""
    row = product_qc(_bag(day=3), treatments=treatments).iloc[0]
    assert "no treatment row for NK on day 3" in row["note"]


def test_malformed_samples_are_all_reported():
    bad = pd.concat([_bag(live=20_000), _bag(stage="final", weight_kg=0)], ignore_index=True)
    with pytest.raises(StudyError) as info:
        product_qc(bad, source="manifest.csv")
    message = str(info.value)
    assert "live <= events" in message and "stage 'final' must be 'pre' or 'post'" in message
    assert "listed twice" in message and message.startswith("manifest.csv: 3 problem(s)")
    with pytest.raises(StudyError, match="lack column"):
        product_qc(_bag().drop(columns="cd3"))
