"""The clinical layer: treatment schedules and outcomes, read against donor-cell persistence.

A study may hold ``treatments.csv`` (cell infusions and drugs, skipped
infusions included; the older ``infusions.csv`` is still read) and
``outcomes.csv`` (one row per patient), with options in ``[outcomes]`` of
``study.toml``. From them and the persistence of donor cells:

* readers that report every problem of a file at once (`read_treatments`,
  `read_outcomes`) and the ``[outcomes]`` settings (`OutcomesSettings`);
* dose bookkeeping (`segment_days`: only given cell infusions start a
  persistence segment; `dose_totals`: per product, never across products;
  `drug_courses`);
* survival (`kaplan_meier`, `logrank`, `hazard_ratio`, `cumulative_incidence`),
  the landmark analysis by persistence (`landmark_analysis`), dose escalation
  under the 3+3 rule (`dose_escalation`), response against persistence
  (`response_vs_persistence`) and infusion product QC (`product_qc`);
* `analyze_outcomes`, which builds every table (`OutcomeTables`).

The survival statistics need lifelines (``pip install "cytokit-flow[clinical]"``);
it is imported when first used.

Typical use::

    from cytokit import clinical
    settings = clinical.OutcomesSettings.from_mapping(config.get("outcomes"), "study.toml")
    treatments = clinical.read_treatments("study/treatments.csv")
    outcomes = clinical.read_outcomes("study/outcomes.csv",
                                      categories=settings.response_categories)
    tables = clinical.analyze_outcomes(treatments, outcomes, points, settings=settings,
                                       strata={"P01": "A", ...})
    tables.landmark
"""

from __future__ import annotations

from cytokit.clinical.escalation import ESCALATION_COLUMNS, dose_escalation, three_plus_three
from cytokit.clinical.landmark import (
    LANDMARK_COLUMNS,
    PERSISTENCE_COLUMNS,
    POINT_COLUMNS,
    LandmarkResult,
    landmark_analysis,
    persistence_table,
)
from cytokit.clinical.outcomes import (
    ENDPOINT_COLUMNS,
    Outcome,
    endpoints,
    parse_outcomes,
    read_outcomes,
)
from cytokit.clinical.product import (
    PRODUCT_QC_COLUMNS,
    SAMPLE_COLUMNS,
    product_qc,
    rare_event_limit,
)
from cytokit.clinical.response import (
    RESPONSE_COLUMNS,
    persistence_by_response,
    response_vs_persistence,
)
from cytokit.clinical.settings import OutcomesSettings, ReleaseLimits
from cytokit.clinical.survival import (
    STEP_COLUMNS,
    cumulative_incidence,
    hazard_ratio,
    kaplan_meier,
    logrank,
    numbers_at_risk,
    summarise_curve,
)
from cytokit.clinical.tables import (
    SUMMARY_COLUMNS,
    SURVIVAL_COLUMNS,
    TABLE_COLUMNS,
    OutcomeTables,
    analyze_outcomes,
)
from cytokit.clinical.treatments import (
    DOSE_TOTAL_COLUMNS,
    Treatment,
    dose_totals,
    drug_courses,
    parse_treatments,
    read_treatments,
    segment_days,
    treatments_frame,
    treatments_from_frame,
)

__all__ = [
    "DOSE_TOTAL_COLUMNS",
    "ENDPOINT_COLUMNS",
    "ESCALATION_COLUMNS",
    "LANDMARK_COLUMNS",
    "PERSISTENCE_COLUMNS",
    "POINT_COLUMNS",
    "PRODUCT_QC_COLUMNS",
    "RESPONSE_COLUMNS",
    "SAMPLE_COLUMNS",
    "STEP_COLUMNS",
    "SUMMARY_COLUMNS",
    "SURVIVAL_COLUMNS",
    "TABLE_COLUMNS",
    "LandmarkResult",
    "Outcome",
    "OutcomeTables",
    "OutcomesSettings",
    "ReleaseLimits",
    "Treatment",
    "analyze_outcomes",
    "cumulative_incidence",
    "dose_escalation",
    "dose_totals",
    "drug_courses",
    "endpoints",
    "hazard_ratio",
    "kaplan_meier",
    "landmark_analysis",
    "logrank",
    "numbers_at_risk",
    "parse_outcomes",
    "parse_treatments",
    "persistence_by_response",
    "persistence_table",
    "product_qc",
    "rare_event_limit",
    "read_outcomes",
    "read_treatments",
    "response_vs_persistence",
    "segment_days",
    "summarise_curve",
    "three_plus_three",
    "treatments_frame",
    "treatments_from_frame",
]
