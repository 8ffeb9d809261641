"""Dose escalation under the 3+3 rule: who counts at which level, and the MTD."""

from __future__ import annotations

import pytest

from cytokit.clinical import Outcome, Treatment, dose_escalation, three_plus_three


@pytest.mark.parametrize(
    ("n", "dlt", "decision"),
    [
        (3, 0, "escalate"),  # 0/3
        (3, 1, "expand to 6"),  # 1/3
        (6, 1, "escalate"),  # 1/6
        (3, 2, "exceeds MTD"),  # 2/3
        (6, 2, "exceeds MTD"),  # 2/6
        (2, 0, "incomplete"),
        (2, 2, "exceeds MTD"),  # 2 of 2 already exceed, whatever comes next
        (12, 2, "escalate"),  # an expanded level: 2/12 <= 1/6
        (12, 4, "exceeds MTD"),  # 4/12 >= 1/3
        (12, 3, "uncertain"),
    ],
)
def test_three_plus_three_decisions(n, dlt, decision):
    assert three_plus_three(n, dlt) == decision


def _cohort(levels: dict[int, tuple[int, int]], product: str = "CIK"):
    """One patient per row: `levels` maps level -> (patients, DLTs) in a cohort design."""
    treatments, outcomes = [], []
    k = 0
    for level, (n, dlt) in levels.items():
        for i in range(n):
            k += 1
            pid = f"P{k:02d}"
            treatments.append(Treatment(pid, 0, product, "cells", 1e6 * level, "cells/kg", level))
            toxic = i < dlt
            outcomes.append(Outcome(pid, 100, dlt=toxic, dlt_day=10 if toxic else None))
    return treatments, outcomes


def test_mtd_is_the_level_below_the_first_that_exceeds_it():
    table = dose_escalation(*_cohort({1: (3, 0), 2: (6, 1), 3: (3, 2)}))
    assert table["decision"].tolist() == ["escalate", "escalate", "exceeds MTD"]
    assert set(table["mtd"]) == {"2"} and table["note"].eq("").all()
    assert table["n_dlt"].tolist() == [0, 1, 2] and table["dose"].tolist() == [1e6, 2e6, 3e6]
    # the level below has only 3 patients: the rule asks for 6 before declaring it
    table = dose_escalation(*_cohort({1: (3, 0), 2: (3, 0), 3: (3, 2)}))
    assert set(table["mtd"]) == {"2"}
    assert (
        "level 2 has 3 evaluable patient(s); the 3+3 rule declares the MTD after 6"
        in table["note"].iloc[0]
    )


def test_mtd_not_reached_or_below_the_lowest_level():
    table = dose_escalation(*_cohort({1: (3, 0), 2: (3, 0), 3: (6, 1)}))
    assert set(table["mtd"]) == {"not reached"}
    table = dose_escalation(*_cohort({1: (3, 0), 2: (3, 1)}))
    assert set(table["mtd"]) == {"not reached"} and "level 2: expand to 6" in table["note"].iloc[0]
    table = dose_escalation(*_cohort({1: (3, 2), 2: (3, 0)}))
    assert set(table["mtd"]) == {"below the lowest dose level"}


def test_intra_patient_escalation_attributes_a_dlt_to_the_last_infusion_before_it():
    def schedule(pid, given3=True):
        return [
            Treatment(pid, 0, "DLI", "cells", 1e6, "CD3+ cells/kg"),
            Treatment(pid, 42, "CIK", "cells", 3e6, "CD3+ cells/kg", 1),
            Treatment(pid, 63, "CIK", "cells", 5e6, "CD3+ cells/kg", 2),
            Treatment(pid, 84, "CIK", "cells", 1e7, "CD3+ cells/kg", 3, given=given3),
        ]

    treatments = schedule("A") + schedule("B", given3=False) + schedule("C") + schedule("D")
    outcomes = [
        Outcome("A", 200, dlt=False),
        Outcome("B", 200, dlt=True, dlt_day=70),  # after level 2; level 3 then skipped
        Outcome("C", 200, dlt=True, dlt_day=30),  # after the DLI: no CIK level carries it
        Outcome("D", 200),  # DLT status unknown: not evaluable
    ]
    table = dose_escalation(treatments, outcomes).set_index("dose_level")
    assert set(table["product"]) == {"CIK"}  # the DLI has no dose level
    assert table["n_patients"].tolist() == [4, 4, 3]
    # C's DLT came before any CIK, so C is evaluated at no CIK level
    assert table["n_evaluable"].tolist() == [2, 2, 1]
    assert table["n_dlt"].tolist() == [0, 1, 0] and table.loc[2, "dlt_patients"] == "B"
    assert "2 patient(s) not evaluable for DLT" in table.loc[1, "note"]


def test_no_dose_levels_gives_an_empty_table_and_other_rules_are_refused():
    treatments = [Treatment("P1", 0, "NK", "cells", 1e7, "cells/kg")]
    assert dose_escalation(treatments, [Outcome("P1", 10, dlt=False)]).empty
    with pytest.raises(ValueError, match="'BOIN' is not supported"):
        dose_escalation(treatments, [], rule="BOIN")


def test_a_dlt_after_a_drug_is_charged_to_the_last_escalated_dose():
    """IL-2 every other day after the NK infusion: a DLT on day 3 was charged to the IL-2
    (no dose level), so level 1 read 0 of 6 DLTs and "escalate"; it is 2 of 6, above the
    MTD."""
    treatments, outcomes = [], []
    for i in range(6):
        pid = f"P{i}"
        treatments += [
            Treatment(pid, 0, "NK", "cells", 1e7, "cells/kg", 1),
            Treatment(pid, 1, "IL-2", "drug", 1.0, "MIU/m2"),
        ]
        toxic = i < 2
        outcomes.append(Outcome(pid, 100, dlt=toxic, dlt_day=3 if toxic else None))
    row = dose_escalation(treatments, outcomes).iloc[0]
    assert (row["n_evaluable"], row["n_dlt"]) == (6, 2)
    assert row["mtd"] == "below the lowest dose level"


def test_a_dlt_without_its_day_is_not_read_as_no_dlt():
    """From Python, Outcome(dlt=True, dlt_day=None) counted the patient as evaluable without
    a DLT; its level is unknown, so the patient is not evaluable (outcomes.csv refuses the
    row)."""
    treatments, outcomes = _cohort({1: (3, 0)})
    outcomes[0] = Outcome(outcomes[0].patient, 100, dlt=True, dlt_day=None)
    row = dose_escalation(treatments, outcomes).iloc[0]
    assert (row["n_patients"], row["n_evaluable"], row["n_dlt"]) == (3, 2, 0)
