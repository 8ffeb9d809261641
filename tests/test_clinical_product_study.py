"""``product_qc.csv`` from ``cytokit analyze``: product samples in the manifest.

Truth: the product QC of `cytokit.clinical.product_qc` (checked against
simulated bags of known composition in test_clinical_product.py) on counts
read by hand from the bag files' own ``counts.csv`` rows, and the bag's
volume, nucleated count and recipient weight as the manifest gives them.
"""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import cytokit
from cytokit.clinical import product_qc, read_treatments
from cytokit.errors import StudyError

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
NK = "/Lymphocytes/Singlets/Live/CD3-CD56+"
CD3 = ("/Lymphocytes/Singlets/Live/CD3+CD56+", "/Lymphocytes/Singlets/Live/CD3+CD56-")
LIVE, EVENTS = "/Lymphocytes/Singlets/Live", "/Lymphocytes/Singlets"


def _bag_study(tmp_path, *, weight: str = "70") -> Path:
    """sample_data with P01's files of days -7 and 7 relabelled as the NK product before
    and after selection (day 0), with the bag's volume, count and the recipient's weight."""
    study = shutil.copytree(SAMPLE_DATA, tmp_path / "s", ignore=shutil.ignore_patterns("*.npz"))
    with (study / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    extra = {"nucleated_per_ml": "", "volume_ml": "", "weight_kg": ""}
    for r in rows:
        r.update(extra)
        if r["file"] == "fcs/P01_day-07.fcs":
            r.update(day="0", sample_type="product_pre", nucleated_per_ml="1.2e8", volume_ml="300")
        if r["file"] == "fcs/P01_day007.fcs":
            r.update(day="0", sample_type="product_post", nucleated_per_ml="2e6", volume_ml="100")
            r["weight_kg"] = weight
    with (study / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (study / "study.toml").open("a") as fh:
        fh.write("\n[outcomes.release]\nmin_viability_pct = 70\n")
    return study


def _write_outcomes(study: Path) -> None:
    """outcomes.csv with an acute GVHD grade for each patient (P01's is 3)."""
    (study / "outcomes.csv").write_text(
        "patient,response,response_day,agvhd_max_grade,agvhd_onset_day,last_followup_day\n"
        "P01,CR,28,3,20,200\nP02,PR,28,0,,300\nP03,SD,28,1,30,300\n"
    )


def test_product_qc_from_analyze(tmp_path):
    study = _bag_study(tmp_path)
    results = cytokit.analyze(study, tmp_path / "out", workers=1)
    table = results.clinical["product_qc"]
    assert len(table) == 1
    got = table.iloc[0]
    assert (got["patient"], got["day"], got["product"]) == ("P01", 0, "NK")
    counts = results.counts.set_index(["file", "gate_path"])["count"]

    def sample(file, stage, per_ml, volume, weight):
        return {
            "patient": "P01", "day": 0, "product": "NK", "stage": stage,
            "events": int(counts[(file, EVENTS)]), "live": int(counts[(file, LIVE)]),
            "nk": int(counts[(file, NK)]), "cd3": int(sum(counts[(file, g)] for g in CD3)),
            "nucleated_per_ml": per_ml, "volume_ml": volume, "weight_kg": weight,
        }  # fmt: skip

    samples = pd.DataFrame(
        [
            sample("fcs/P01_day-07.fcs", "pre", 1.2e8, 300.0, float("nan")),
            sample("fcs/P01_day007.fcs", "post", 2e6, 100.0, 70.0),
        ]
    )
    post = samples.iloc[1]
    assert got["nk_purity_pct"] == pytest.approx(100 * post["nk"] / post["live"], rel=1e-12)
    assert got["viability_pct"] == pytest.approx(100 * post["live"] / post["events"], rel=1e-12)
    cd3_per_kg = 2e6 * 100 * post["cd3"] / post["events"] / 70
    assert got["cd3_per_kg"] == pytest.approx(cd3_per_kg, rel=1e-12)
    from cytokit.clinical import OutcomesSettings

    limits = OutcomesSettings.from_mapping({"release": {"min_viability_pct": 70}}).release
    treatments = read_treatments(study / "infusions.csv")
    want = product_qc(samples, limits, treatments=treatments)
    numbers = [c for c in want.columns if want[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(
        table[numbers].astype(float).reset_index(drop=True),
        want[numbers].astype(float).reset_index(drop=True),
        rtol=1e-9,
    )
    assert got["release"] == want.iloc[0]["release"] and got["release"] in ("pass", "fail")
    again = cytokit.load_results(results.out).clinical["product_qc"]
    assert again.iloc[0]["release"] == got["release"]
    assert "product_qc.csv" in (results.out / "tables.json").read_text()


def test_a_bag_whose_file_failed_keeps_its_row_without_numbers(tmp_path):
    """A truncated bag file vanished from product_qc.csv (named only in failures.csv)."""
    study = _bag_study(tmp_path)
    bag = study / "fcs" / "P01_day007.fcs"
    bag.write_bytes(bag.read_bytes()[:3000])
    results = cytokit.analyze(study, tmp_path / "out", workers=1)
    assert "fcs/P01_day007.fcs" in set(results.failures["file"])
    (row,) = results.clinical["product_qc"].to_dict("records")
    assert (row["patient"], row["day"], row["release"]) == ("P01", 0, "not shown")
    assert "fcs/P01_day007.fcs failed" in row["note"]
    assert all(pd.isna(row[c]) for c in ("nk_purity_pct", "viability_pct", "cd3_per_kg"))


def test_a_failed_bags_row_keeps_the_facts_that_are_not_from_its_file(tmp_path):
    """The failed bag's row lost its nucleated count (manifest), the patient's acute GVHD
    grade (outcomes.csv) and its product when the manifest's product cell was empty."""
    study = _bag_study(tmp_path)
    manifest = pd.read_csv(study / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[manifest["file"] == "fcs/P01_day007.fcs", "product"] = ""
    manifest.to_csv(study / "manifest.csv", index=False)
    _write_outcomes(study)
    bag = study / "fcs" / "P01_day007.fcs"
    bag.write_bytes(bag.read_bytes()[:3000])
    results = cytokit.analyze(study, tmp_path / "out", workers=1)
    (row,) = results.clinical["product_qc"].to_dict("records")
    # the manifest's 2e6 nucleated cells/mL x 100 mL; outcomes.csv's grade 3; infusions.csv's NK
    assert row["nucleated_cells"] == pytest.approx(2e6 * 100)
    assert row["agvhd_max_grade"] == 3
    assert row["product"] == "NK"
    assert "fcs/P01_day007.fcs failed" in row["note"] and row["release"] == "not shown"
    assert all(pd.isna(row[c]) for c in ("events", "viability_pct", "cd3_per_kg", "nk_per_kg"))
    again = pd.read_csv(results.out / "product_qc.csv").iloc[0]
    assert again["agvhd_max_grade"] == 3 and again["nucleated_cells"] == pytest.approx(2e8)


def test_a_measured_and_a_failed_bag_together_raise_no_pandas_warning(tmp_path):
    """Joining the failed bag's row (all-NA columns) to the measured ones printed pandas'
    FutureWarning on concatenation with all-NA entries on the user's stderr."""
    study = _bag_study(tmp_path)
    manifest = pd.read_csv(study / "manifest.csv", dtype=str, keep_default_na=False)
    mine = manifest["file"] == "fcs/P03_day-07.fcs"
    manifest.loc[mine, ["day", "sample_type", "nucleated_per_ml", "volume_ml"]] = [
        "0", "product_post", "2e6", "100"
    ]  # fmt: skip
    manifest.loc[mine, "weight_kg"] = "60"
    manifest.to_csv(study / "manifest.csv", index=False)
    _write_outcomes(study)  # the measured bag's grade is a number, the failed one's none
    bag = study / "fcs" / "P03_day-07.fcs"
    bag.write_bytes(bag.read_bytes()[:3000])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        results = cytokit.analyze(study, tmp_path / "out", workers=1)
    table = results.clinical["product_qc"]
    assert list(table["patient"]) == ["P01", "P03"]
    assert pd.notna(table.iloc[0]["viability_pct"]) and pd.isna(table.iloc[1]["viability_pct"])


def test_a_failed_pre_selection_file_is_said_on_its_bags_row(tmp_path):
    study = _bag_study(tmp_path)
    pre = study / "fcs" / "P01_day-07.fcs"
    pre.write_bytes(pre.read_bytes()[:3000])
    results = cytokit.analyze(study, tmp_path / "out", workers=1)
    (row,) = results.clinical["product_qc"].to_dict("records")
    assert "its pre-selection file fcs/P01_day-07.fcs failed" in row["note"]
    assert pd.isna(row["nk_recovery_pct"]) and pd.notna(row["nk_purity_pct"])


def test_a_bag_without_the_weight_is_one_clear_error(tmp_path):
    study = _bag_study(tmp_path, weight="")
    with pytest.raises(StudyError, match=r"manifest.csv, line 3: product sample .*weight_kg"):
        cytokit.analyze(study, tmp_path / "out", workers=1)


def test_product_qc_invariants_catch_a_broken_row():
    from cytokit.analysis.invariants import _clinical, _Found

    row = {
        "nk_purity_pct": 50.0, "nk_purity_ci_low": 60.0, "nk_purity_ci_high": 70.0,
        "viability_pct": 90.0, "viability_ci_low": 80.0, "viability_ci_high": 95.0,
        "cd3_per_kg": 10.0, "cd3_per_kg_upper": 5.0,
    }  # fmt: skip
    found = _Found()
    _clinical(found, {"product_qc": pd.DataFrame([row])})
    assert len(found.items) == 2
    assert "nk_purity_ci_low" in found.items[0] and "cd3_per_kg_upper" in found.items[1]
    # and a table product_qc writes breaks none (simulated bags of known composition)
    from cytokit.simulate.outcomes import simulate_bags

    samples, _ = simulate_bags(20, seed=3)
    clean = _Found()
    _clinical(clean, {"product_qc": product_qc(samples)})
    assert clean.items == []
