"""Dose escalation: patients, DLTs and the maximum tolerated dose per product under the 3+3 rule.

Who counts where
----------------
A product's dose levels come from the ``dose_level`` of its treatment rows.
A patient is evaluated at every level of the product given to them (``given
= yes``) up to their DLT (``outcomes.csv`` ``dlt``, ``dlt_day``); a DLT is
attributed to the last given dose of an escalated product (a row with a
``dose_level``; a drug given meanwhile, IL-2 say, is not one) on or before
its day: its product and level. This serves a cohort design (one level per
patient) and intra-patient escalation (levels 1, 2, 3 in turn, as with
escalating CIK infusions) alike.
Patients whose DLT status is empty are not evaluable and are counted apart.
Skipped infusions (``given = no``, e.g. after grade II acute GVHD) are not
evaluations.

The 3+3 rule (Storer, Biometrics 1989;45:925-937)
--------------------------------------------------
At a level: fewer than 3 evaluable patients: incomplete; 0 DLT in 3 or more:
escalate; 1 DLT in fewer than 6: expand to 6; 1 DLT in 6 or more: escalate;
2 or more DLTs: the level exceeds the MTD. A level with more than 6
evaluable patients (expanded) is judged by its DLT rate against the rule's
thresholds: at most 1/6 escalate, at least 1/3 exceeds, "uncertain"
between. The MTD is the highest level
below the lowest level that exceeds it; the rule declares it once 6 patients
were treated there (the note says when fewer were). No level exceeding:
"not reached"; the lowest level exceeding: "below the lowest dose level".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cytokit.clinical.outcomes import Outcome
from cytokit.clinical.treatments import Treatment

__all__ = ["ESCALATION_COLUMNS", "dose_escalation", "three_plus_three"]

ESCALATION_COLUMNS = (
    "product", "dose_level", "dose", "unit", "n_patients", "n_evaluable", "n_dlt", "dlt_rate",
    "dlt_patients", "decision", "mtd", "note",
)  # fmt: skip


def three_plus_three(n: int, dlt: int) -> str:
    """The 3+3 decision at a level with `n` evaluable patients and `dlt` DLTs.

    Beyond 6 patients (an expanded level) the rule's thresholds are applied
    to the DLT rate: at most 1/6 escalate, at least 1/3 exceeds the MTD,
    between them "uncertain".
    """
    if n > 6:
        if dlt * 6 <= n:
            return "escalate"
        return "exceeds MTD" if dlt * 3 >= n else "uncertain"
    if dlt >= 2:
        return "exceeds MTD"
    if n < 3:
        return "incomplete"
    if dlt == 0:
        return "escalate"
    return "escalate" if n >= 6 else "expand to 6"


def dose_escalation(
    treatments: Sequence[Treatment], outcomes: Sequence[Outcome], *, rule: str = "3+3"
) -> pd.DataFrame:
    """Per product and dose level: patients, evaluable patients, DLTs, the decision and the MTD.

    Parameters
    ----------
    treatments : sequence of Treatment
    outcomes : sequence of Outcome
    rule : {"3+3"}

    Returns
    -------
    DataFrame
        `ESCALATION_COLUMNS`, one row per product and dose level (ascending);
        ``mtd`` (the same on every row of a product) is a level, "not
        reached" or "below the lowest dose level"; ``dose`` is the median
        given dose at that level.
    """
    if rule != "3+3":
        raise ValueError(f"dose-escalation rule {rule!r} is not supported; use '3+3'")
    by_patient = {o.patient: o for o in outcomes}
    given = sorted((t for t in treatments if t.given), key=lambda t: (t.patient, t.day))
    # the level of each patient's DLT: the last given dose of an escalated product (a row
    # with a dose level) on or before its day, not a drug given meanwhile (IL-2 between
    # infusions took every DLT after day 0 away from the levels)
    dlt_at: dict[str, tuple[str, int | None, int]] = {}
    for patient, o in by_patient.items():
        if o.dlt and o.dlt_day is not None:
            before = [
                t
                for t in given
                if t.patient == patient and t.day <= o.dlt_day and t.dose_level is not None
            ]
            # none: the DLT came before any escalated dose; the levels given after it are
            # still no evaluations
            last = before[-1] if before else None
            dlt_at[patient] = (
                (last.product, last.dose_level, o.dlt_day) if last else ("", None, o.dlt_day)
            )
    cells: dict[tuple[str, int], dict] = {}
    for t in given:
        if t.dose_level is None:
            continue
        cell = cells.setdefault(
            (t.product, t.dose_level),
            {"patients": set(), "evaluable": set(), "dlt": set(), "doses": [], "unit": t.unit},
        )
        cell["patients"].add(t.patient)
        if t.dose is not None:
            cell["doses"].append(t.dose)
        o = by_patient.get(t.patient)
        if o is None or o.dlt is None or (o.dlt and o.dlt_day is None):
            continue  # DLT status unknown, or a DLT whose day (and so level) is unknown
        hit = dlt_at.get(t.patient)
        if hit is not None and t.day > hit[2]:
            continue  # given after the DLT: not an evaluation of this level
        cell["evaluable"].add(t.patient)
        if hit is not None and hit[0] == t.product and hit[1] == t.dose_level:
            cell["dlt"].add(t.patient)
    rows = []
    for product in sorted({k[0] for k in cells}):
        levels = sorted(k[1] for k in cells if k[0] == product)
        product_rows = []
        for level in levels:
            c = cells[(product, level)]
            n, k = len(c["evaluable"]), len(c["dlt"])
            unevaluable = len(c["patients"] - c["evaluable"])
            product_rows.append(
                {
                    "product": product,
                    "dose_level": level,
                    "dose": float(np.median(c["doses"])) if c["doses"] else math.nan,
                    "unit": c["unit"],
                    "n_patients": len(c["patients"]),
                    "n_evaluable": n,
                    "n_dlt": k,
                    "dlt_rate": k / n if n else math.nan,
                    "dlt_patients": ";".join(sorted(c["dlt"])),
                    "decision": three_plus_three(n, k),
                    "note": f"{unevaluable} patient(s) not evaluable for DLT"
                    if unevaluable
                    else "",
                }
            )
        mtd, note = _mtd(product_rows)
        for r in product_rows:
            r["mtd"] = mtd
            if note:
                r["note"] = "; ".join(x for x in (r["note"], note) if x)
        rows += product_rows
    frame = pd.DataFrame(rows, columns=list(ESCALATION_COLUMNS))
    return frame.astype({"dose_level": "Int64"})


def _mtd(rows: list[dict]) -> tuple[str, str]:
    toxic = [i for i, r in enumerate(rows) if r["decision"] == "exceeds MTD"]
    if not toxic:
        top = rows[-1]
        if top["decision"] in ("incomplete", "expand to 6", "uncertain"):
            return "not reached", f"level {top['dose_level']}: {top['decision']}"
        return "not reached", ""
    first = toxic[0]
    if first == 0:
        return "below the lowest dose level", ""
    below = rows[first - 1]
    note = ""
    if below["n_evaluable"] < 6:
        note = (
            f"level {below['dose_level']} has {below['n_evaluable']} evaluable patient(s); "
            "the 3+3 rule declares the MTD after 6"
        )
    return str(below["dose_level"]), note
