"""A simulator of NK/CIK adoptive-therapy monitoring studies with ground truth.

Patients get haploidentical donor NK cells or donor lymphocyte + CIK
infusions; donor cells of each population rise and decay with patient-specific
kinetics; every sample's events (debris, doublets, dead cells, counting beads,
granulocytes, monocytes, B, T, NK CD56bright/dim, CIK, each donor or recipient
by HLA-A2) pass through a simulated BD cytometer with spillover, spreading
error and day-to-day drift. Same seed, same bytes.

Typical use::

    from cytokit import simulate
    design = simulate.preset_design("sample")               # or StudyDesign(...)
    simulate.simulate_study("study/", design, overwrite=True)
    sample, truth = simulate.simulate_sample(design, "P01", 7)
"""

from __future__ import annotations

from cytokit.simulate.clinical_study import (
    CLINICAL_DAYS,
    clinical_design,
    simulate_clinical_study,
    tied_model,
    trial_files,
)
from cytokit.simulate.design import (
    DEFAULT_DAYS,
    PRODUCTS,
    Dose,
    PatientSpec,
    StudyDesign,
    benchmark_study_design,
    default_infusions,
    make_patients,
    preset_design,
    sample_study_design,
)
from cytokit.simulate.events import (
    BLOCK_EVENTS,
    SampleTruth,
    TruthArrays,
    default_workers,
    generate_events,
    load_truth,
    sample_file_stem,
    save_truth,
    simulate_sample,
)
from cytokit.simulate.instrument import (
    CHANNEL_NAMES,
    DETECTORS,
    MARKERS,
    SPILLOVER,
    Drift,
    instrument_drift,
)
from cytokit.simulate.model import (
    AGGREGATES,
    CELL_LABELS,
    LABELS,
    Kinetics,
    PatientModel,
    SampleParameters,
    patient_model,
    persistence_curve,
    population_peak,
    sample_parameters,
)
from cytokit.simulate.study import (
    DEFAULT_STRATEGY,
    POPULATION_GATES,
    benchmark_file,
    simulate_study,
    study_toml,
)
from cytokit.simulate.timing import Enrichment

__all__ = [
    "AGGREGATES",
    "BLOCK_EVENTS",
    "CELL_LABELS",
    "CHANNEL_NAMES",
    "CLINICAL_DAYS",
    "DEFAULT_DAYS",
    "DEFAULT_STRATEGY",
    "DETECTORS",
    "LABELS",
    "MARKERS",
    "POPULATION_GATES",
    "PRODUCTS",
    "SPILLOVER",
    "Dose",
    "Drift",
    "Enrichment",
    "Kinetics",
    "PatientModel",
    "PatientSpec",
    "SampleParameters",
    "SampleTruth",
    "StudyDesign",
    "TruthArrays",
    "benchmark_file",
    "benchmark_study_design",
    "clinical_design",
    "default_infusions",
    "default_workers",
    "generate_events",
    "instrument_drift",
    "load_truth",
    "make_patients",
    "patient_model",
    "persistence_curve",
    "population_peak",
    "preset_design",
    "sample_file_stem",
    "sample_parameters",
    "sample_study_design",
    "save_truth",
    "simulate_clinical_study",
    "simulate_sample",
    "simulate_study",
    "study_toml",
    "tied_model",
    "trial_files",
]
