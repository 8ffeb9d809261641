"""cytokit.simulate: determinism, proportions, spillover, doublets, drift, kinetics, study files.

External truth: files are read back with flowio and FlowKit (not cytokit's
reader); statistics are checked against the model's parameters with binomial
tolerances; the persistence curve against its closed form.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cytokit import write_fcs
from cytokit.errors import StudyError
from cytokit.simulate import (
    BLOCK_EVENTS,
    CELL_LABELS,
    DEFAULT_STRATEGY,
    LABELS,
    MARKERS,
    SPILLOVER,
    Dose,
    Kinetics,
    PatientSpec,
    StudyDesign,
    instrument_drift,
    load_truth,
    patient_model,
    persistence_curve,
    population_peak,
    preset_design,
    sample_parameters,
    sample_study_design,
    simulate_sample,
    simulate_study,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

flowio = pytest.importorskip("flowio")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
CODE = {n: i for i, n in enumerate(LABELS)}
LYMPH = [CODE[n] for n in ("B", "T_CD8neg", "T_CD8pos", "NK_bright", "NK_dim", "CIK")]


def small_design(**changes) -> StudyDesign:
    base = StudyDesign(
        patients=(
            PatientSpec("A1", "NK", "positive", days=(-7, 7)),
            PatientSpec("B2", "CIK", "negative", days=(43,)),
        ),
        seed=11,
        n_events=3_000,
    )
    return replace(base, **changes)


def read_flowio(path: Path) -> tuple[np.ndarray, dict]:
    """Events (n, channels) and TEXT keywords through flowio."""
    f = flowio.FlowData(str(path))
    events = np.reshape(np.asarray(f.events, dtype=np.float64), (-1, f.channel_count))
    return events, {k.lower().lstrip("$"): v for k, v in f.text.items()}


def spillover_from_text(text: dict) -> tuple[list[str], np.ndarray]:
    parts = text["spillover"].split(",")
    n = int(parts[0])
    return parts[1 : n + 1], np.array(parts[n + 1 :], dtype=np.float64).reshape(n, n)


# -- determinism -------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    design = small_design()
    a = simulate_study(tmp_path / "a", design)
    b = simulate_study(tmp_path / "b", design)
    c = simulate_study(tmp_path / "c", replace(design, seed=12))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) >= 6
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    fcs = [r for r in files if r.suffix == ".fcs"]
    for rel in fcs:
        assert (a / rel).read_bytes() != (c / rel).read_bytes(), rel


def test_one_sample_regenerates_alone_and_blocks_are_stable():
    design = small_design()
    s1, t1 = simulate_sample(design, "B2", 43, n_events=BLOCK_EVENTS + 500)
    s2, t2 = simulate_sample(design, "B2", 43, n_events=BLOCK_EVENTS)
    # the first block is the same whatever the event count
    np.testing.assert_array_equal(s1.events[:BLOCK_EVENTS], s2.events)
    np.testing.assert_array_equal(t1.label[:BLOCK_EVENTS], t2.label)
    # another patient or day does not change this sample's stream
    other = replace(design, patients=(*design.patients, PatientSpec("C3", "NK")))
    s3, _ = simulate_sample(other, "B2", 43, n_events=BLOCK_EVENTS)
    np.testing.assert_array_equal(s3.events, s2.events)
    s4, _ = simulate_sample(design, "B2", 44, n_events=BLOCK_EVENTS)
    assert not np.array_equal(s4.events, s2.events)


def test_threads_do_not_change_the_events():
    design = small_design()
    n = 3 * BLOCK_EVENTS + 17
    one, t1 = simulate_sample(design, "A1", 7, n_events=n, workers=1)
    two, t2 = simulate_sample(design, "A1", 7, n_events=n, workers=3)
    np.testing.assert_array_equal(one.events, two.events)
    np.testing.assert_array_equal(t1.label, t2.label)
    np.testing.assert_array_equal(t1.donor, t2.donor)


# -- proportions ---------------------------------------------------------------------


@pytest.mark.parametrize(("patient", "day"), [("A1", 7), ("B2", 43), ("A1", -7)])
def test_label_and_donor_counts_match_parameters(patient, day):
    design = small_design()
    n = 200_000
    _, truth = simulate_sample(design, patient, day, n_events=n)
    p = truth.parameters.probabilities
    counts = np.bincount(truth.label, minlength=len(LABELS))
    sd = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(counts - n * p) <= 4 * sd + 1), (counts, n * p)
    for name in CELL_LABELS:
        k = counts[CODE[name]]
        f = truth.parameters.donor_fraction[name]
        donors = int(truth.donor[truth.label == CODE[name]].sum())
        assert abs(donors - k * f) <= 4 * math.sqrt(k * f * (1 - f)) + 1, (name, donors, k * f)
    # non-cells are never donors, except doublets containing one
    assert not truth.donor[np.isin(truth.label, [CODE["debris"], CODE["bead"]])].any()


def test_donor_fraction_is_zero_before_infusion_and_positive_after():
    design = small_design()
    pre = sample_parameters(design, "A1", -7)
    post = sample_parameters(design, "A1", 7)
    assert all(pre.donor_fraction[n] == 0 for n in CELL_LABELS)
    assert post.donor_fraction["NK_dim"] > 0.05
    assert post.donor_fraction["granulocyte"] == 0


def test_bead_counts_recover_cells_per_ul():
    design = small_design()
    n = 300_000
    _, truth = simulate_sample(design, "A1", 7, n_events=n)
    p = truth.parameters
    counts = np.bincount(truth.label, minlength=len(LABELS))
    beads = counts[CODE["bead"]]
    assert p.beads_per_ul == design.beads_per_test / design.sample_volume_ul
    for name in ("granulocyte", "T_CD8pos", "NK_dim"):
        k = counts[CODE[name]]
        estimate = k / beads * p.beads_per_ul
        rel_sd = math.sqrt(1 / k + 1 / beads)
        assert abs(estimate / p.cells_per_ul[name] - 1) <= 4 * rel_sd, name
    lymph = counts[LYMPH].sum() / beads * p.beads_per_ul
    assert lymph == pytest.approx(p.lymphocytes_per_ul, rel=4 * math.sqrt(1 / beads))


# -- instrument ---------------------------------------------------------------------


def test_file_spillover_compensation_recovers_marker_signals(tmp_path):
    design = small_design()
    sample, truth = simulate_sample(design, "A1", 7, n_events=60_000, keep_signals=True)
    path = write_fcs(tmp_path / "s.fcs", sample)
    events, text = read_flowio(path)
    names, matrix = spillover_from_text(text)
    cols = [list(sample.channel_names).index(n) for n in names]
    detectors = events[:, cols]
    comp = detectors @ np.linalg.inv(matrix)
    ok = np.all(detectors < 262_143, axis=1)  # saturated events cannot be compensated
    signals = truth.signals.astype(np.float64)
    for code in [*LYMPH, CODE["monocyte"], CODE["granulocyte"]]:
        rows = ok & (truth.label == code)
        diff = comp[rows] - signals[rows]
        k = rows.sum()
        assert k > 200
        # noise is zero-mean: the compensated mean is the noiseless mean
        tol = 4 * diff.std(axis=0) / math.sqrt(k) + 1e-9
        assert np.all(np.abs(diff.mean(axis=0)) <= tol), (LABELS[code], diff.mean(axis=0), tol)
    # without compensation PE (CD56) of HLA-A2 bright FITC cells carries spillover
    rows = ok & (truth.label == CODE["granulocyte"])
    raw_excess = detectors[rows].mean(axis=0) - signals[rows].mean(axis=0)
    assert raw_excess[MARKERS.index("Viability")] > 500
    # spreading error: sd grows with the signal (sqrt law) in the spilled-into detector
    cd8 = MARKERS.index("CD8")
    t_neg = ok & (truth.label == CODE["T_CD8neg"])
    b = ok & (truth.label == CODE["B"])
    assert (comp[t_neg, cd8] - signals[t_neg, cd8]).std() > 2 * (
        comp[b, cd8] - signals[b, cd8]
    ).std()


def test_spillover_matrix_is_realistic():
    off = SPILLOVER[~np.eye(len(MARKERS), dtype=bool)]
    assert np.all(np.diag(SPILLOVER) == 1)
    assert off.max() <= 0.3
    assert (off >= 0.01).sum() >= 12


def test_doublets_lie_off_the_singlet_diagonal():
    design = small_design()
    sample, truth = simulate_sample(design, "A1", 7, n_events=100_000)
    fsc_a, fsc_h = sample.column("FSC-A"), sample.column("FSC-H")
    ratio = fsc_a / np.maximum(fsc_h, 1.0)
    cells = np.isin(truth.label, [CODE[n] for n in CELL_LABELS])
    doublets = (truth.label == CODE["doublet"]) & (fsc_a < 262_143)
    assert np.median(ratio[cells]) == pytest.approx(1 / 0.88, rel=0.02)
    assert 1.6 < np.median(ratio[doublets]) < 2.2
    cut = np.quantile(ratio[cells], 0.995)
    assert np.mean(ratio[doublets] > cut) > 0.95


def test_drift_scales_intensities_by_the_stated_gains():
    design = small_design()
    flat = replace(design, drift=False)
    on, t_on = simulate_sample(design, "A1", 7, n_events=40_000)
    off, t_off = simulate_sample(flat, "A1", 7, n_events=40_000)
    np.testing.assert_array_equal(t_on.label, t_off.label)  # same draws, other gains
    drift = instrument_drift(design, "A1", 7)
    assert np.all(instrument_drift(flat, "A1", 7).fluorescence == 1)
    span = 1 + design.drift_max
    assert np.all((drift.fluorescence >= 1 / span) & (drift.fluorescence <= span))
    t_cells = t_on.label == CODE["T_CD8pos"]
    for detector, marker in (("APC-A", "CD3"), ("APC-H7-A", "CD8"), ("V500-C-A", "CD45")):
        ratio = np.median(on.column(detector)[t_cells]) / np.median(off.column(detector)[t_cells])
        assert ratio == pytest.approx(drift.fluorescence[MARKERS.index(marker)], rel=0.02)
    ratio = np.median(on.column("FSC-A")[t_cells]) / np.median(off.column("FSC-A")[t_cells])
    assert ratio == pytest.approx(drift.fsc, rel=0.01)
    ratio = np.median(on.column("SSC-A")[t_cells]) / np.median(off.column("SSC-A")[t_cells])
    assert ratio == pytest.approx(drift.ssc, rel=0.02)
    # the file carries that session's matrix; days differ
    np.testing.assert_allclose(on.spillover.matrix, drift.spillover())
    assert not np.allclose(drift.fluorescence, instrument_drift(design, "A1", -7).fluorescence)
    gains = np.array([instrument_drift(design, "A1", d).fluorescence for d in range(40)])
    assert np.ptp(np.log(gains)) > 0.4  # drift large enough that static gates fail


def test_hla_a2_separates_donor_from_recipient():
    design = small_design()
    _, truth = simulate_sample(design, "A1", 7, n_events=50_000, keep_signals=True)
    model = patient_model(design, "A1")
    hla = truth.signals[:, MARKERS.index("HLA-A2")] / truth.drift.fluorescence[0]
    nk = truth.label == CODE["NK_dim"]
    pos = np.median(hla[nk & truth.donor])  # A1's donor is HLA-A2+
    neg = np.median(hla[nk & ~truth.donor])
    assert 10 <= model.hla_ratio <= 30
    assert pos / neg == pytest.approx(model.hla_ratio, rel=0.1)


def test_time_increases_at_the_acquisition_rate():
    design = small_design()
    sample, _ = simulate_sample(design, "A1", 7, n_events=BLOCK_EVENTS + 1000)
    time = sample.column("Time")
    assert np.all(np.diff(time) >= 0)
    seconds = time[-1] * float(sample.keyword("$TIMESTEP"))
    assert seconds == pytest.approx(sample.n_events / design.event_rate, rel=0.02)


# -- kinetics ------------------------------------------------------------------------


def test_persistence_curve_half_life_and_peak_are_the_parameters():
    k = Kinetics(half_life_days=6.0, expansion_fold=3.0, peak_delay_days=7.0, recovery=0.2)
    c0 = 0.2 / 70_000
    assert k.curve(0.0) == 0.0 and k.curve(-3.0) == 0.0
    assert k.curve(1e-12) == pytest.approx(c0)
    assert k.curve(7.0) == pytest.approx(3 * c0)
    for h in (1, 2, 3.5):
        assert k.curve(7 + 6 * h) / k.curve(7.0) == pytest.approx(0.5**h, rel=1e-12)
    # several infusions: after the last peak the sum decays with the same half-life
    doses = [(0.0, 1e7), (14.0, 2e7), (28.0, 5e6)]
    t = np.array([40.0, 50.0, 70.0])
    y = persistence_curve(t, doses, k)
    slope = np.polyfit(t, np.log(y), 1)[0]
    assert math.log(2) / -slope == pytest.approx(6.0, rel=1e-9)
    day, peak = population_peak(doses, k)
    grid = np.linspace(0, 60, 600_001)
    dense = persistence_curve(grid, doses, k)
    assert peak == pytest.approx(dense.max(), rel=1e-6)
    assert day == pytest.approx(grid[np.argmax(dense)], abs=1e-3)


def test_half_lives_are_recoverable_from_event_counts():
    """Bead-counted donor cells/µL after the last peak give back the true half-life."""
    design = preset_design("benchmark", n_events=50_000)
    design = replace(design, patients=design.patients[:2])  # one NK, one CIK patient
    for spec, members in (
        (design.patients[0], ("NK_bright", "NK_dim")),
        (design.patients[1], ("CIK",)),
    ):
        model = patient_model(design, spec)
        kinetics = model.kinetics[spec.arm]
        doses = {}
        for m in members:
            for day, cells in model.infused(m):
                doses[day] = doses.get(day, 0.0) + cells
        peak_day, _ = population_peak(sorted(doses.items()), kinetics)
        days, per_ul = [], []
        for day in design.days_of(spec):
            if day <= peak_day + 0.5:
                continue
            _, truth = simulate_sample(design, spec, day)
            beads = np.sum(truth.label == CODE["bead"])
            k = np.sum(np.isin(truth.label, [CODE[m] for m in members]) & truth.donor)
            if k >= 20:
                days.append(day)
                per_ul.append(k / beads * truth.parameters.beads_per_ul)
        assert len(days) >= 3, (spec.id, days)
        slope = np.polyfit(days, np.log(per_ul), 1)[0]
        assert math.log(2) / -slope == pytest.approx(kinetics.half_life_days, rel=0.2), spec.id


def test_truth_tables_agree_with_the_model(tmp_path):
    design = small_design()
    out = simulate_study(tmp_path / "s", design)
    kinetics = list(csv.DictReader((out / "truth" / "kinetics.csv").open()))
    pops = list(csv.DictReader((out / "truth" / "populations.csv").open()))
    for spec in design.patients:
        model = patient_model(design, spec)
        for row in (r for r in kinetics if r["patient"] == spec.id):
            lineage = model.kinetics[row["lineage"]]
            assert float(row["half_life_days"]) == pytest.approx(lineage.half_life_days)
        for row in (r for r in pops if r["patient"] == spec.id and r["population"] == "NK_dim"):
            want = float(model.donor_per_ul("NK_dim", float(row["day"])))
            assert float(row["donor_per_ul"]) == pytest.approx(want, rel=1e-9, abs=1e-12)


# -- study folder --------------------------------------------------------------------


def test_study_folder_files_and_truth_are_consistent(tmp_path):
    design = small_design()
    out = simulate_study(tmp_path / "s", design)
    config = tomllib.loads((out / "study.toml").read_text())
    assert config["compensation"]["source"] == "file"
    assert config["transform"] == {"type": "logicle", "T": 262144, "W": 0.5, "M": 4.5, "A": 0.0}
    assert config["gating"]["strategy"] == "strategy.yaml"
    assert set(config["populations"]) >= {"NK", "NK_bright", "NK_dim", "CIK", "T"}
    assert config["chimerism"]["marker"] == "HLA-A2"
    assert set(config["panel"]) == set(MARKERS)
    assert (out / "strategy.yaml").read_text() == DEFAULT_STRATEGY.read_text()

    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert list(rows[0])[:11] == [
        "file", "patient", "day", "stratum", "sample_type", "donor_marker", "donor_is",
        "wbc_per_ul", "lymphocytes_per_ul", "beads_per_test", "sample_volume_ul",
    ]  # fmt: skip
    assert len(rows) == len(design.samples()) == 3
    pops = list(csv.DictReader((out / "truth" / "populations.csv").open()))
    for row in rows:
        fcs = out / row["file"]
        events, text = read_flowio(fcs)
        truth = load_truth(fcs.with_name(fcs.stem + ".truth.npz"))
        assert events.shape == (design.n_events, 11) == (len(truth.label), 11)
        assert len(truth.donor) == design.n_events
        assert truth.label_names == LABELS
        assert int(text["tot"]) == design.n_events
        assert text["p4s"] == "HLA-A2" and text["timestep"] == "0.01"
        counts = np.bincount(truth.label, minlength=len(LABELS))
        table = {r["population"]: r for r in pops if r["file"] == row["file"]}
        for i, name in enumerate(LABELS):
            assert int(table[name]["events"]) == counts[i]
            assert int(table[name]["donor_events"]) == int(truth.donor[truth.label == i].sum())
        assert int(table["NK"]["events"]) == counts[CODE["NK_bright"]] + counts[CODE["NK_dim"]]
        assert float(row["lymphocytes_per_ul"]) == pytest.approx(
            float(table["Lymphocytes"]["cells_per_ul"]), abs=0.5
        )
        assert row["donor_is"] == design.patient(row["patient"]).donor_is
    infusions = list(csv.DictReader((out / "infusions.csv").open()))
    assert list(infusions[0]) == ["patient", "day", "product", "dose_per_kg"]
    assert [r["product"] for r in infusions if r["patient"] == "B2"] == [
        "DLI", "DLI", "CIK", "CIK", "CIK",
    ]  # fmt: skip


def test_study_loads_with_cytokit_study(tmp_path):
    from cytokit.study import load_study

    out = simulate_study(tmp_path / "s", small_design())
    study = load_study(out, check_files=False)
    assert study.patients == ["A1", "B2"]
    assert {i.product for i in study.infusions} == {"NK", "DLI", "CIK"}
    assert study.panel.markers["CD3"] == "APC-A"


def test_overwrite_replaces_only_simulation_files(tmp_path):
    design = small_design()
    out = simulate_study(tmp_path / "s", design)
    (out / "README.md").write_text("keep me")
    (out / "strategy.yaml").write_text("keep me too")
    with pytest.raises(StudyError, match="overwrite=True"):
        simulate_study(out, design)
    calls = []
    simulate_study(
        out,
        replace(design, patients=design.patients[:1]),
        overwrite=True,
        progress=lambda i, n, name: calls.append((i, n, name)),
    )
    assert (out / "README.md").read_text() == "keep me"
    assert (out / "strategy.yaml").read_text() == "keep me too"
    assert sorted(p.name for p in (out / "fcs").glob("*.fcs")) == [
        "A1_day-07.fcs",
        "A1_day007.fcs",
    ]
    assert calls == [(1, 2, "A1_day-07.fcs"), (2, 2, "A1_day007.fcs")]


def test_flowkit_reads_the_same_events(tmp_path):
    fk = pytest.importorskip("flowkit")
    design = small_design()
    sample, _ = simulate_sample(design, "B2", 43)
    path = write_fcs(tmp_path / "s.fcs", sample)
    fs = fk.Sample(str(path))
    raw = fs.get_events(source="raw")
    assert list(fs.pnn_labels) == list(sample.channel_names)
    assert list(fs.pns_labels)[3:10] == list(MARKERS)
    np.testing.assert_array_equal(raw[:, :10], sample.events[:, :10].astype(np.float64))
    # FlowKit reports Time in seconds ($TIMESTEP applied)
    np.testing.assert_allclose(raw[:, 10], sample.events[:, 10] * 0.01, rtol=1e-6)


# -- design validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: StudyDesign(patients=()), "at least one patient"),
        (lambda: small_design(n_events=0), "n_events=0"),
        (lambda: small_design(seed=-1), "seed=-1"),
        (lambda: small_design(drift_max=1.5), "drift_max=1.5"),
        (lambda: small_design(beads_per_test=0), "beads_per_test=0"),
        (lambda: StudyDesign(patients=(PatientSpec("X"), PatientSpec("X"))), "repeated: X"),
        (lambda: PatientSpec("a/b"), "patient id 'a/b'"),
        (lambda: PatientSpec("P1", arm="CAR-T"), "arm 'CAR-T'"),
        (lambda: PatientSpec("P1", donor_is="yes"), "donor_is 'yes'"),
        (lambda: PatientSpec("P1", days=(1, 1)), "repeat a day"),
        (lambda: PatientSpec("P1", infusions=(Dose(3, "NK", 1e7),)), "must be on day 0"),
        (lambda: Dose(0, "NK", -1.0), "dose_per_kg=-1.0"),
        (lambda: Dose(0, "CAR", 1.0), "product 'CAR'"),
        (lambda: preset_design("huge"), "preset 'huge'"),
        (lambda: preset_design(n_patients=0), "number of patients=0"),
        (lambda: small_design().patient("nobody"), "no patient 'nobody'"),
    ],
)
def test_bad_designs_name_the_value(make, match):
    with pytest.raises(StudyError, match=match):
        make()


def test_preset_overrides():
    design = preset_design("sample", n_patients=4, arm="CIK", n_events=123, days=[5, -7])
    assert [p.arm for p in design.patients] == ["CIK"] * 4
    assert design.n_events == 123
    assert all(design.days_of(p) == (-7, 5) for p in design.patients)
    assert preset_design("sample", drift=False).drift is False
    assert preset_design("sample") == sample_study_design()


# -- sample_data ----------------------------------------------------------------------


#: TEXT keywords that locate segments: where DATA starts depends on how long TEXT is,
#: which changes with the length of a float's shortest repr (a last-bit difference can
#: make ``$SPILLOVER`` one byte shorter); the segments' lengths are compared instead.
SEGMENT_OFFSETS = ("$BEGINDATA", "$ENDDATA", "$BEGINSTEXT", "$ENDSTEXT", "$BEGINANALYSIS",
                   "$ENDANALYSIS")  # fmt: skip
#: Relative tolerance of full-precision floats: each session's spillover is a gain ratio
#: ``S[j, i] * g_i / g_j`` of two ``exp`` values whose last bit may differ between CPUs
#: (numpy uses other code for ``exp`` where the CPU has AVX-512): at most ~4 ulps.
FLOAT_REL = 1e-15


def test_sample_data_is_reproducible_from_its_preset(tmp_path):
    """The preset regenerates sample_data/: the same events, keywords, labels and tables."""
    if not (SAMPLE_DATA / "manifest.csv").exists():
        pytest.skip("sample_data/ has not been generated")
    out = simulate_study(tmp_path / "study", sample_study_design())
    _assert_same_study(out, SAMPLE_DATA)


def test_sample_data_check_survives_a_last_bit_change_of_exp(tmp_path, monkeypatch):
    """Another CPU, emulated: every float64 ``exp`` one ulp up. Its study still matches
    sample_data/, although its TEXT segments have other lengths and offsets; one that
    differs in more than the last bits does not."""
    if not (SAMPLE_DATA / "manifest.csv").exists():
        pytest.skip("sample_data/ has not been generated")
    monkeypatch.setattr(np, "exp", _last_bit_up(np.exp))
    out = simulate_study(tmp_path / "study", sample_study_design())
    monkeypatch.undo()
    files = sorted((out / "fcs").glob("*.fcs"))
    moved = [p.name for p in files if _begin_data(p) != _begin_data(SAMPLE_DATA / "fcs" / p.name)]
    assert moved, "the emulation should move DATA in some file"
    _assert_same_study(out, SAMPLE_DATA)
    with pytest.raises(AssertionError, match="SPILLOVER"):
        _assert_text_close("1,A,0.0374014592564953", "1,A,0.0374014592564963", "$SPILLOVER")
    with pytest.raises(AssertionError, match="populations"):
        _assert_text_close("0.09979328451", "0.09979328453", "populations.csv", digits=10)


def _last_bit_up(ufunc):
    """`ufunc` with every float64 result moved one ulp up (another CPU's libm)."""

    def other_cpu(*args, **kwargs):
        r = ufunc(*args, **kwargs)
        if isinstance(r, np.ndarray) and r.dtype == np.float64:
            np.nextafter(r, np.inf, out=r)
        elif isinstance(r, np.float64):
            r = np.nextafter(r, np.inf)
        return r

    return other_cpu


def _begin_data(path: Path) -> int:
    from cytokit import read_fcs

    return int(read_fcs(path, scale=False).keywords["$BEGINDATA"])


def _assert_same_study(out: Path, ref: Path) -> None:
    """`out` holds the study `ref` holds: tables and TEXT keywords parsed, floats to
    their tolerance, events to float32 rounding, labels exactly; no byte compared."""
    from cytokit import read_fcs

    assert (ref / "strategy.yaml").read_text() == DEFAULT_STRATEGY.read_text()
    for rel in ("study.toml", "manifest.csv", "infusions.csv", "truth/populations.csv"):
        _assert_csv_close(out / rel, ref / rel)
    ours = sorted(p.name for p in (out / "fcs").iterdir())
    assert ours == sorted(p.name for p in (ref / "fcs").iterdir())
    for name in ours:
        new, old = out / "fcs" / name, ref / "fcs" / name
        if name.endswith(".fcs"):
            a, b = read_fcs(new, scale=False), read_fcs(old, scale=False)
            assert a.events.dtype == b.events.dtype and a.events.shape == b.events.shape
            # float32 events from float64 arithmetic: a last-bit difference upstream can
            # move a value by one float32 ulp (6e-8); a changed simulator by far more
            np.testing.assert_allclose(a.events, b.events, rtol=1e-5, atol=1e-3, err_msg=name)
            assert set(a.keywords) == set(b.keywords), name
            for key, value in a.keywords.items():
                if key.upper() not in SEGMENT_OFFSETS:
                    _assert_text_close(value, b.keywords[key], f"{name} {key}")
            for begin, end in (("$BEGINDATA", "$ENDDATA"), ("$BEGINSTEXT", "$ENDSTEXT")):
                length = [int(s.keyword(end, "0")) - int(s.keyword(begin, "0")) for s in (a, b)]
                assert length[0] == length[1], (name, begin, end)
        else:
            ta, tb = load_truth(new), load_truth(old)
            np.testing.assert_array_equal(ta.label, tb.label, err_msg=name)
            np.testing.assert_array_equal(ta.donor, tb.donor, err_msg=name)


def _assert_text_close(a: str, b: str, where: str, digits: int | None = None) -> None:
    """Equal, or lists of numbers equal as numbers.

    Integers must be equal. Floats may differ by `FLOAT_REL` (the last bits of a
    transcendental); written with `digits` significant digits (the simulator's
    tables use ``%.10g``), by one unit of the last digit too, since a value on a
    rounding boundary prints either way.
    """
    if a == b:
        return
    sa, sb = a.replace(";", ",").split(","), b.replace(";", ",").split(",")
    assert len(sa) == len(sb), (where, a, b)
    for x, y in zip(sa, sb, strict=True):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            raise AssertionError(f"{where}: {a!r} != {b!r}") from None
        assert not (_is_int(x) and _is_int(y)), (where, a, b)
        big = max(abs(fx), abs(fy))
        tol = FLOAT_REL * big
        if digits is not None and big > 0:
            tol = max(tol, 10.0 ** (math.floor(math.log10(big)) - digits + 1))
        assert abs(fx - fy) <= tol, (where, x, y)


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def _assert_csv_close(a: Path, b: Path) -> None:
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    assert len(la) == len(lb), a.name
    for i, (x, y) in enumerate(zip(la, lb, strict=True)):
        _assert_text_close(x, y, f"{a.name} line {i + 1}", digits=10)


def test_donor_markers_type_each_patient_with_one_stain(tmp_path):
    """Several donor markers: per-patient stain names in $PnS, manifest and panel; same values."""
    from cytokit.study import load_study

    design = small_design(donor_markers=("HLA-A2", "HLA-B7"))
    out = simulate_study(tmp_path / "s", design)
    config = tomllib.loads((out / "study.toml").read_text())
    assert config["panel"]["HLA-A2"] == config["panel"]["HLA-B7"] == "FITC-A"
    assert config["chimerism"]["marker"] == "HLA-A2"
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert {r["patient"]: r["donor_marker"] for r in rows} == {"A1": "HLA-A2", "B2": "HLA-B7"}
    patients = list(csv.DictReader((out / "truth" / "patients.csv").open()))
    assert [p["donor_marker"] for p in patients] == ["HLA-A2", "HLA-B7"]
    plain = simulate_study(tmp_path / "plain", small_design())
    for row in rows:
        events, text = read_flowio(out / row["file"])
        assert text["p4s"] == row["donor_marker"] and text["p4n"] == "FITC-A"
        # the marker is a name: the events are those of the one-marker design
        assert np.array_equal(events, read_flowio(plain / row["file"])[0])
    study = load_study(out, check_files=False)
    assert study.donor_markers() == ["HLA-A2", "HLA-B7"]
    for bad in ((), ("HLA-A2", "HLA-A2"), ("CD3",), ("",)):
        with pytest.raises(StudyError, match="donor_markers"):
            small_design(donor_markers=bad)
