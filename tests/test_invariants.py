"""The tables' invariants: each rule catches its violation, analyze refuses a wrong table, and
they hold on randomly built simulated studies (hypothesis).

The property test draws small simulated studies with one to three patients
typed by one to three donor markers, with or without a pre-infusion sample,
drift, counting beads or any counting column, a ``[qc] min_events`` and one
file broken in a way the analysis must survive (a dead or saturated
donor-marker detector, NaN or inf values in some events or in a whole
channel), runs `cytokit.analyze` and checks every invariant, plus what the
breakage must give (``marker_failed`` rows or a ``failures.csv`` entry, never
zeros). A second property test names the populations by gate id and by
quadrant id instead of by path and checks that nothing changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from study_helpers import make_study

import cytokit
from cytokit.analysis.invariants import InvariantError, check_results, violations
from cytokit.analysis.results import load_results
from cytokit.fcs import read_fcs, write_fcs
from cytokit.simulate import PatientSpec, StudyDesign, make_patients

MARKERS = ("HLA-A2", "HLA-B7", "HLA-A3")
PATHS = {
    "NK": "/Lymphocytes/Singlets/Live/CD3-CD56+",
    "NK_bright": "/Lymphocytes/Singlets/Live/CD3-CD56+/CD56bright",
    "NK_dim": "/Lymphocytes/Singlets/Live/CD3-CD56+/CD56dim",
    "CIK": "/Lymphocytes/Singlets/Live/CD3+CD56+",
    "T": "/Lymphocytes/Singlets/Live/CD3+CD56-",
}
#: The same populations named by gate id (the CD56 split) or by quadrant id (the rest).
BY_GATE_ID = {**PATHS, "NK_bright": "CD56bright", "NK_dim": "CD56dim"}
BY_QUADRANT_ID = {**PATHS, "NK": "CD3-CD56+", "CIK": "CD3+CD56+", "T": "CD3+CD56-"}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    design = StudyDesign(
        patients=(PatientSpec("P1", "NK", "positive"), PatientSpec("P2", "CIK", "negative")),
        seed=5,
        n_events=6_000,
        days=(-7, 7, 21, 43),
    )
    folder = make_study(tmp_path_factory.mktemp("inv") / "study", design)
    _no_clustering(folder)
    out = tmp_path_factory.mktemp("inv") / "out"
    return cytokit.analyze(folder, out, workers=1), out


def _no_clustering(folder: Path) -> None:
    toml = (folder / "study.toml").read_text()
    (folder / "study.toml").write_text(toml[: toml.index("[clustering]")])


def _copy(results):
    again = load_results(results.out)
    for name in ("samples", "counts", "chimerism", "phenotype", "trends", "failures"):
        setattr(again, name, getattr(results, name).copy())
    return again


def test_results_of_analyze_hold_every_invariant(analysed):
    results, out = analysed
    assert violations(results) == []
    assert violations(load_results(out)) == []  # as written and read back


def _first(frame, query):
    idx = frame.query(query).index
    assert len(idx), query
    return idx[0]


def _quantified_plus_one(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, "donor_events"] += 1


def _pct_over_100(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, "donor_pct"] = 101.0


def _ci_below(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, "ci_low"] = r.chimerism.loc[i, "donor_pct"] + 1.0


def _status_wrong(r):
    i = _first(r.chimerism, "status == 'not_detected' and events > 0")
    r.chimerism.loc[i, "status"] = "quantified"


def _donor_per_ul_zero(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, "donor_per_ul"] = 0.0


def _events_not_counts(r):
    r.chimerism.loc[r.chimerism.index[0], "events"] += 1


def _per_ul_negative(r):
    i = _first(r.counts, "per_ul > 0")
    r.counts.loc[i, "per_ul"] = -1.0


def _per_ul_without_basis(r):
    r.samples.loc[r.samples.index[0], "count_method"] = ""


def _failed_with_value(r):
    f = r.samples.file.iloc[2]
    r.samples.loc[r.samples.file == f, ["donor_marker_check", "donor_marker_note"]] = [
        "failed",
        "constant",
    ]
    rows = r.chimerism.file == f
    cols = ["donor_events", "recipient_events", "ci_low", "ci_high", "donor_per_ul"]
    r.chimerism.loc[rows, cols] = np.nan
    r.chimerism.loc[rows, "recipient_per_ul"] = np.nan
    r.chimerism.loc[rows, ["status", "note"]] = ["marker_failed", "constant"]
    r.phenotype = r.phenotype[~((r.phenotype.file == f) & (r.phenotype.origin != "all"))]
    # ... but keeps a percentage
    r.chimerism.loc[rows & (r.chimerism.population == "NK"), "donor_pct"] = 3.0


def _failed_with_origins(r):
    f = r.samples.file.iloc[2]
    r.samples.loc[r.samples.file == f, ["donor_marker_check", "donor_marker_note"]] = [
        "failed",
        "constant",
    ]
    rows = r.chimerism.file == f
    cols = ["donor_events", "recipient_events", "donor_pct", "ci_low", "ci_high"]
    r.chimerism.loc[rows, [*cols, "donor_per_ul", "recipient_per_ul"]] = np.nan
    r.chimerism.loc[rows, ["status", "note"]] = ["marker_failed", "constant"]


def _pct_positive(r):
    r.phenotype.loc[r.phenotype.index[0], "pct_positive"] = 120.0


def _origins_do_not_add_up(r):
    i = _first(r.phenotype, "origin == 'donor'")
    r.phenotype.loc[i, "events"] += 1


def _peak_on_undetected_day(r):
    ch = r.chimerism
    for i, t in r.trends[r.trends.peak_day.notna()].iterrows():
        mine = ch[(ch.patient == t.patient) & (ch.population == t.population)]
        days = mine[mine.status == "not_detected"].day
        if len(days):
            r.trends.loc[i, "peak_day"] = days.iloc[0]
            return
    raise AssertionError("no trend with a peak and a not-detected day")


def _failure_with_rows(r):
    f = r.samples.iloc[0]
    row = {"file": f.file, "patient": f.patient, "day": f.day, "stage": "read", "reason": "x"}
    r.failures = pd.DataFrame([row])


def _nonfinite_over_events(r):
    r.samples.loc[r.samples.index[0], "nonfinite_events"] = r.samples.events.iloc[0] + 1


def _imputed_interval_out_of_range(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, "imputed_ci_high"] = 140.0


def _imputed_interval_missing(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, ["imputed_ci_low", "imputed_ci_high"]] = np.nan


def _nothing_imputed_other_interval(r):
    i = _first(r.chimerism, "status == 'quantified' and imputed_events == 0")
    r.chimerism.loc[i, "imputed_ci_low"] = r.chimerism.loc[i, "ci_low"] + 0.01


def _imputed_without_donor_pct(r):
    i = _first(r.chimerism, "status == 'quantified'")
    r.chimerism.loc[i, "donor_pct"] = np.nan


@pytest.mark.parametrize(
    ("plant", "rule"),
    [
        (_imputed_without_donor_pct, "where donor_pct is empty, imputed_donor_pct must be empty"),
        (_imputed_interval_out_of_range, "imputed_ci_high, inside \\[0, 100\\]"),
        (_imputed_interval_missing, "imputed_ci_high, inside \\[0, 100\\]"),
        (_nothing_imputed_other_interval, "with imputed_events = 0, imputed_donor_pct and its"),
        (_quantified_plus_one, "chimerism.csv row .*donor_events \\+ recipient_events"),
        (_pct_over_100, "donor_pct must be 100 \\* donor_events / events, in \\[0, 100\\]"),
        (_ci_below, "ci_low <= donor_pct <= ci_high"),
        (_status_wrong, "status must follow the donor events"),
        (_donor_per_ul_zero, "donor_per_ul must be per_ul times its share"),
        (_events_not_counts, "events must equal the gate's count in counts.csv"),
        (_per_ul_negative, "counts.csv row .*per_ul must be a number >= 0"),
        (_per_ul_without_basis, "per_ul must be empty without a counting basis"),
        (_failed_with_value, "marker_failed row .* has no donor values"),
        (_failed_with_origins, "no phenotype by origin for a sample whose donor marker failed"),
        (_pct_positive, "pct_positive must be in \\[0, 100\\]"),
        (_origins_do_not_add_up, "donor \\+ recipient events must equal the events of origin"),
        (_peak_on_undetected_day, "trends.csv row .*peak_day must be a day with status"),
        (_failure_with_rows, "the file is listed in failures.csv"),
        (_nonfinite_over_events, "nonfinite_events must be in \\[0, events\\]"),
    ],
)
def test_each_rule_catches_its_violation(analysed, plant, rule):
    results, _ = analysed
    broken = _copy(results)
    plant(broken)
    found = violations(broken)
    assert found and any(pd.Series(found).str.contains(rule)), found
    with pytest.raises(InvariantError, match="internal error, no table was written"):
        check_results(broken)


def test_analyze_raises_instead_of_writing_a_wrong_table(analysed, tmp_path, monkeypatch):
    """A bug that miscounts donors stops analyze before any table is written."""
    from cytokit.analysis import per_patient

    results, _ = analysed
    study = Path(results.study["root"])
    real = per_patient.chimerism_row

    def off_by_one(events, donor, **kw):
        row = real(events, donor, **kw)
        row["recipient_events"] += 1
        return row

    monkeypatch.setattr(per_patient, "chimerism_row", off_by_one)
    out = tmp_path / "out"
    with pytest.raises(InvariantError, match=r"chimerism\.csv row 1 \(file fcs/P1_day-07.fcs"):
        cytokit.analyze(study, out, workers=1)
    assert not (out / "chimerism.csv").exists() and not (out / "samples.csv").exists()


# -- property tests ----------------------------------------------------------------------

BREAKS = (None, "zero", "top", "nan_some", "nan_all", "inf_fsc")


@st.composite
def study_options(draw):
    return {
        "seed": draw(st.integers(0, 2**20)),
        "patients": draw(st.integers(1, 3)),
        "markers": draw(st.integers(1, 3)),
        "counting": draw(st.sampled_from(("beads", "lymphocytes", "none"))),
        "pre_infusion": draw(st.booleans()),
        "drift": draw(st.booleans()),
        "min_events": draw(st.sampled_from((20, 50, 200))),
        "broken": draw(st.sampled_from(BREAKS)),
    }


def build_study(folder: Path, o: dict) -> Path:
    days = (-7, 7, 14) if o["pre_infusion"] else (3, 7, 14)
    design = StudyDesign(
        patients=make_patients(o["patients"], seed=o["seed"], days=days),
        seed=o["seed"],
        n_events=3_000,
        beads=o["counting"] == "beads",
        drift=o["drift"],
        min_events=o["min_events"],
        donor_markers=MARKERS[: o["markers"]],
    )
    folder = make_study(folder, design)
    _no_clustering(folder)
    if o["counting"] == "none":  # no counting column at all
        manifest = pd.read_csv(folder / "manifest.csv")
        drop = ["wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul"]
        manifest.drop(columns=drop).to_csv(folder / "manifest.csv", index=False)
    if o["broken"] is not None:
        _break(folder / "fcs" / "P01_day007.fcs", o["broken"])
    return folder


def _break(path: Path, kind: str) -> None:
    sample = read_fcs(path, scale=False)
    ev = sample.events.copy()
    fitc, cd3, fsc = (sample.channel_index(c) for c in ("FITC-A", "APC-A", "FSC-A"))
    if kind == "zero":
        ev[:, fitc] = 0.0
    elif kind == "top":
        ev[:, fitc] = 262_143.0
    elif kind == "nan_some":
        ev[::400, cd3] = np.nan  # 0.25 %: dropped and counted
    elif kind == "nan_all":
        ev[:, cd3] = np.nan  # the whole file: a failure
    elif kind == "inf_fsc":
        ev[1::500, fsc] = np.inf
    sample.events = ev
    write_fcs(path, sample)


_property = settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: each example is a whole study
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRIED: list[dict] = []


@_property
@given(o=study_options())
def test_invariants_hold_on_random_studies(o, tmp_path_factory):
    TRIED.append(o)
    folder = build_study(tmp_path_factory.mktemp("prop") / "study", o)
    results = cytokit.analyze(folder, workers=1)  # raises InvariantError on any violation
    assert violations(results) == []
    file = "fcs/P01_day007.fcs"
    if o["broken"] == "nan_all":
        assert list(results.failures.file) == [file]
        assert results.failures.stage.iloc[0] == "values"
    else:
        assert results.failures.empty
    if o["broken"] in ("zero", "top"):
        chim = results.chimerism[results.chimerism.file == file]
        assert (chim.status == "marker_failed").all() and chim.donor_pct.isna().all()
    sample = results.samples.set_index("file")
    if o["broken"] in ("nan_some", "inf_fsc"):
        assert sample.loc[file, "nonfinite_events"] == (8 if o["broken"] == "nan_some" else 6)
    # a population not counted (its gates read the failed detector, or a channel compensated
    # against it) has neither events nor cells/µL
    chim = results.chimerism
    counted = chim.events.notna()
    per_ul = chim.per_ul[counted]
    assert per_ul.notna().all() if o["counting"] != "none" else per_ul.isna().all()
    assert chim.per_ul[~counted].isna().all()
    assert (~counted).sum() == 0 or (o["broken"] in ("zero", "top") and not counted.all())
    assert set(chim.file[~counted]) <= {file}
    used = {MARKERS[i % o["markers"]] for i in range(o["patients"])}
    assert set(results.study["markers"]["donor"]) == used


def test_the_property_test_tried_varied_studies():
    """Report (and check) what the property test above drew."""
    if not TRIED:
        pytest.skip("the property test did not run in this session")
    tried = pd.DataFrame(TRIED)
    print(f"\ninvariant property test: {len(tried)} studies tried")
    assert len(tried) >= 12
    assert tried.markers.nunique() > 1 and tried.counting.nunique() > 1
    assert tried.broken.nunique() > 2


def _tables(results) -> dict[str, pd.DataFrame]:
    out = {}
    for name, keys in (
        ("chimerism", ["file", "population"]),
        ("counts", ["file", "gate_path"]),
        ("phenotype", ["file", "population", "origin", "marker"]),
        ("trends", ["patient", "population", "measure"]),
        ("samples", ["file"]),
    ):
        frame = getattr(results, name)
        frame = frame.drop(columns=[c for c in ("gate_path",) if name != "counts" and c in frame])
        out[name] = frame.sort_values(keys).reset_index(drop=True)
    return out


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(o=study_options(), style=st.sampled_from(("gate id", "quadrant id")))
def test_naming_style_changes_nothing(o, style, tmp_path_factory):
    by_path = build_study(tmp_path_factory.mktemp("path") / "study", o)
    names = BY_GATE_ID if style == "gate id" else BY_QUADRANT_ID
    by_id = shutil.copytree(by_path, tmp_path_factory.mktemp("id") / "study")
    toml = (by_id / "study.toml").read_text()
    for name, path in PATHS.items():
        toml = toml.replace(f'{name} = "{path}"', f'{name} = "{names[name]}"')
    (by_id / "study.toml").write_text(toml)
    a = _tables(cytokit.analyze(by_path, workers=1))
    b = _tables(cytokit.analyze(by_id, workers=1))
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_dtype=False, obj=name)
