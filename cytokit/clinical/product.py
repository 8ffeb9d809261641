"""Infusion product QC: purity, viability, recovery, CD3 depletion and the CD3+ dose per kg.

The NK product is CD3-depleted and CD56-selected; the T cells left in the bag
decide the risk of GVHD, so the residual CD3+ dose is reported with an exact
upper bound, and with the smallest dose the acquired events could show at all.

Input (`product_qc` ``samples``), one row per product sample:

====================  ==========================================================
column                meaning
====================  ==========================================================
patient, day,         the infusion (matched to the treatment row of that
product               patient, day and product)
stage                 ``pre`` (before selection, e.g. the apheresis product) or
                      ``post`` (the bag infused)
events                nucleated-cell events (e.g. the CD45+ gate): the
                      denominator that matches the nucleated count
live                  live events among them (viability)
nk                    live CD3−CD56+ events
cd3                   live CD3+ events
nucleated_per_ml      nucleated cells per mL of the product (cell counter)
volume_ml             volume of the product, mL
weight_kg             recipient's weight (``post`` rows)
====================  ==========================================================

Per infusion (`PRODUCT_QC_COLUMNS`), counting noise only (the binomial
sampling of events; the error of the cell counter and of the volume is not
included) with Clopper–Pearson ("exact") intervals:

* **NK purity** = nk / live and **viability** = live / events of the bag,
  with their 95 % intervals;
* cells of a kind in a product = nucleated_per_ml × volume_ml × count /
  events; **NK recovery** = NK cells in the bag / NK cells before, and
  **CD3 log10 depletion** = log10(CD3+ cells before / CD3+ cells in the bag);
  their 95 % intervals combine the two exact intervals at 97.5 % each
  (Bonferroni: at least 95 % jointly); no CD3+ event in the bag leaves the
  depletion without an upper limit ("at least");
* **residual CD3+ cells/kg** with its one-sided upper bound at ``[outcomes.
  release] level`` (95 %) and the **rare-event limit**: the CD3+ fraction
  (and dose) whose upper bound zero CD3+ events give, the least these events
  can show (about 3 / events: 10,000 events cannot show a CD3 fraction below
  ~0.03 %).

Release: each limit set in ``[outcomes.release]`` is judged on the one-sided
bound at ``level``: ``pass`` when the bound meets it, ``fail`` when the point
estimate misses it, ``not shown`` in between (the measurement is consistent
with the limit but cannot show it: acquire more events). The product's
``release`` is ``fail`` if any limit fails, else ``not shown`` if any is not
shown, else ``pass``; ``not judged`` without limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pandas as pd

from cytokit.clinical.outcomes import Outcome
from cytokit.clinical.settings import ReleaseLimits
from cytokit.clinical.treatments import Treatment
from cytokit.errors import StudyError

__all__ = ["PRODUCT_QC_COLUMNS", "SAMPLE_COLUMNS", "product_qc", "rare_event_limit"]

SAMPLE_COLUMNS = (
    "patient", "day", "product", "stage", "events", "live", "nk", "cd3", "nucleated_per_ml",
    "volume_ml", "weight_kg",
)  # fmt: skip
PRODUCT_QC_COLUMNS = (
    "patient", "day", "product", "dose_level", "events", "nk_purity_pct", "nk_purity_ci_low",
    "nk_purity_ci_high", "viability_pct", "viability_ci_low", "viability_ci_high",
    "nk_recovery_pct", "nk_recovery_ci_low", "nk_recovery_ci_high", "cd3_log_depletion",
    "cd3_log_depletion_ci_low", "cd3_log_depletion_ci_high", "nucleated_cells", "nk_per_kg",
    "cd3_per_kg", "cd3_per_kg_upper", "cd3_pct", "cd3_pct_upper", "cd3_pct_limit",
    "cd3_per_kg_limit", "release", "release_note", "agvhd_max_grade", "note",
)  # fmt: skip
STAGES = ("pre", "post")


def rare_event_limit(events: int, level: float = 0.95) -> float:
    """The one-sided exact upper bound of a fraction with 0 positives in `events`.

    ``1 − (1 − level) ** (1 / events)``, about ``3 / events`` at 95 % (the
    "rule of three"): no smaller fraction can be shown with these events.
    """
    if events <= 0:
        return math.nan
    return 1.0 - (1.0 - level) ** (1.0 / events)


def _cp(k: int, n: int, level: float) -> tuple[float, float]:
    """The Clopper–Pearson interval of k in n, from scipy's beta quantiles.

    `cytokit.stats.intervals.clopper_pearson_interval` gives the same bounds (the
    tests hold them together) but inverts its own incomplete beta by
    bisection, which takes ~0.1 s per bound at the counts of a
    pre-selection sample (10^4-10^5 events); scipy comes with lifelines.
    """
    from scipy.stats import beta

    if n <= 0:
        return math.nan, math.nan
    alpha = 1.0 - level
    low = 0.0 if k <= 0 else float(beta.ppf(alpha / 2.0, k, n - k + 1))
    high = 1.0 if k >= n else float(beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return low, high


def _one_sided(k, n, level):
    """One-sided exact bounds (lower, upper), each at `level`."""
    return _cp(k, n, 2.0 * level - 1.0)


def _check(samples: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns and c != "weight_kg"]
    if missing:
        raise StudyError(
            f"{source}: product samples lack column(s) {', '.join(missing)}; they need "
            f"{', '.join(SAMPLE_COLUMNS)}"
        )
    problems: list[str] = []
    frame = samples.copy()
    if "weight_kg" not in frame:
        frame["weight_kg"] = math.nan
    seen: set = set()
    for _, r in frame.iterrows():
        where = f"{source}: {r['patient']} day {r['day']} {r['product']} {r['stage']}"
        if r["stage"] not in STAGES:
            problems.append(f"{where}: stage {r['stage']!r} must be 'pre' or 'post'")
        key = (r["patient"], r["day"], r["product"], r["stage"])
        if key in seen:
            problems.append(f"{where}: listed twice; one sample per product and stage")
        seen.add(key)
        counts = [r[c] for c in ("events", "live", "nk", "cd3")]
        if not all(_count(v) for v in counts):
            problems.append(f"{where}: events, live, nk, cd3 = {counts} must be whole numbers >= 0")
        elif not (r["events"] > 0 and r["live"] <= r["events"] and r["nk"] + r["cd3"] <= r["live"]):
            problems.append(
                f"{where}: counts {counts} must satisfy events > 0, live <= events and "
                "nk + cd3 <= live (nk and cd3 are live cells)"
            )
        for c in ("nucleated_per_ml", "volume_ml"):
            if not _positive(r[c]):
                problems.append(f"{where}: {c} {r[c]!r} must be a positive number")
        if r["stage"] == "post" and not _positive(r["weight_kg"]):
            problems.append(
                f"{where}: weight_kg {r['weight_kg']!r} must be the recipient's weight (kg > 0)"
            )
    if problems:
        raise StudyError(
            f"{source}: {len(problems)} problem(s) in the product samples:\n  "
            + "\n  ".join(problems)
        )
    return frame


def _count(v) -> bool:
    try:
        return float(v) >= 0 and float(v) == int(float(v))
    except (TypeError, ValueError):
        return False


def _positive(v) -> bool:
    try:
        return math.isfinite(float(v)) and float(v) > 0
    except (TypeError, ValueError):
        return False


def product_qc(
    samples: pd.DataFrame,
    limits: ReleaseLimits | None = None,
    *,
    treatments: Sequence[Treatment] = (),
    outcomes: Sequence[Outcome] = (),
    failed: Sequence[dict] = (),
    source: str = "product samples",
) -> pd.DataFrame:
    """QC of every infused product (see the module docstring).

    Parameters
    ----------
    samples : DataFrame
        `SAMPLE_COLUMNS`, one row per product sample (a ``post`` row for each
        infusion; a ``pre`` row when there is one).
    limits : ReleaseLimits, optional
        ``[outcomes.release]``.
    treatments, outcomes : sequence, optional
        To link each product to its treatment row (dose level) and the
        patient's acute GVHD grade.
    failed : sequence of dict, optional
        Bags whose file gave no counts: ``patient``, ``day``, ``product``,
        ``note`` and, when known, ``nucleated_per_ml`` and ``volume_ml``. Each
        keeps its row, ``release`` "not shown" and no measured number, but with
        what does not come from its file: the nucleated cells, the dose level
        and the acute GVHD grade.
    source : str
        Named in errors.

    Returns
    -------
    DataFrame
        `PRODUCT_QC_COLUMNS`, one row per ``post`` sample.

    Raises
    ------
    StudyError
        Listing every malformed sample.
    """
    limits = limits or ReleaseLimits()
    frame = _check(samples, source)
    level = limits.level
    by_treatment = {(t.patient, t.day, t.product): t for t in treatments}
    grades = {o.patient: o.agvhd_max_grade for o in outcomes}
    pre = {(r.patient, r.day, r.product): r for r in frame[frame["stage"] == "pre"].itertuples()}
    bags = [
        (r, _bag(r, pre.get((r.patient, r.day, r.product)), level))
        for r in frame[frame["stage"] == "post"].itertuples()
    ]
    for f in failed:  # nothing measured: only the facts that do not come from the file
        r = SimpleNamespace(patient=f["patient"], day=f["day"], product=f["product"])
        per_ml, volume = f.get("nucleated_per_ml"), f.get("volume_ml")
        cells = float(per_ml) * float(volume) if _positive(per_ml) and _positive(volume) else None
        row = {"patient": r.patient, "day": r.day, "product": r.product, "note": f.get("note")}
        bags.append((r, {**row, "nucleated_cells": math.nan if cells is None else cells}))
    rows = []
    for r, row in bags:
        t = by_treatment.get((r.patient, r.day, r.product))
        notes = [row.pop("note")] if row.get("note") else []
        if treatments and t is None:
            notes.append(f"no treatment row for {r.product} on day {r.day}")
        row["dose_level"] = pd.NA if t is None or t.dose_level is None else t.dose_level
        row["agvhd_max_grade"] = pd.NA if grades.get(r.patient) is None else grades[r.patient]
        if "events" in row:
            row["release"], row["release_note"] = _judge(row, limits)
            if math.isinf(row["cd3_log_depletion"]):  # judged as unbounded; no number to show
                row["cd3_log_depletion"] = math.nan
        else:
            row["release"] = "not shown"
        row["note"] = "; ".join(notes)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(PRODUCT_QC_COLUMNS))
    return frame.astype({"dose_level": "Int64", "agvhd_max_grade": "Int64"})


def _bag(r, before, level: float) -> dict:
    n, live, nk, cd3 = int(r.events), int(r.live), int(r.nk), int(r.cd3)
    cells = float(r.nucleated_per_ml) * float(r.volume_ml)
    weight = float(r.weight_kg)
    row: dict = {"patient": r.patient, "day": r.day, "product": r.product, "events": n}
    purity = _cp(nk, live, 0.95)
    row.update(
        nk_purity_pct=100.0 * nk / live if live else math.nan,
        nk_purity_ci_low=100.0 * purity[0],
        nk_purity_ci_high=100.0 * purity[1],
        _purity_lower=100.0 * _one_sided(nk, live, level)[0],
    )
    viability = _cp(live, n, 0.95)
    row.update(
        viability_pct=100.0 * live / n,
        viability_ci_low=100.0 * viability[0],
        viability_ci_high=100.0 * viability[1],
        _viability_lower=100.0 * _one_sided(live, n, level)[0],
    )
    upper = _one_sided(cd3, n, level)[1]
    limit = rare_event_limit(n, level)
    row.update(
        nucleated_cells=cells,
        nk_per_kg=cells * nk / n / weight,
        cd3_per_kg=cells * cd3 / n / weight,
        cd3_per_kg_upper=cells * upper / weight,
        cd3_pct=100.0 * cd3 / n,
        cd3_pct_upper=100.0 * upper,
        cd3_pct_limit=100.0 * limit,
        cd3_per_kg_limit=cells * limit / weight,
    )
    row.update(
        dict.fromkeys(("nk_recovery_pct", "nk_recovery_ci_low", "nk_recovery_ci_high"), math.nan)
    )
    row.update(
        dict.fromkeys(
            ("cd3_log_depletion", "cd3_log_depletion_ci_low", "cd3_log_depletion_ci_high"), math.nan
        )
    )
    row["_recovery_lower"] = row["_depletion_lower"] = math.nan
    if before is None:
        row["note"] = "no pre-selection sample: no recovery or depletion"
        return row
    m = int(before.events)
    cells_pre = float(before.nucleated_per_ml) * float(before.volume_ml)
    ratio = cells / cells_pre  # nucleated cells in the bag per nucleated cell before
    # recovery: (cells·nk/n) / (cells_pre·nk_pre/m); two exact intervals at 97.5 % each
    joint = 1.0 - (1.0 - 0.95) / 2.0
    one = 1.0 - (1.0 - level) / 2.0
    nk_pre = int(before.nk)
    if nk_pre > 0:
        a, b = _cp(nk, n, joint), _cp(nk_pre, m, joint)
        scale = 100.0 * ratio
        row.update(
            nk_recovery_pct=scale * (nk / n) / (nk_pre / m),
            nk_recovery_ci_low=scale * a[0] / b[1],
            nk_recovery_ci_high=scale * a[1] / b[0] if b[0] > 0 else math.inf,
            _recovery_lower=scale * _one_sided(nk, n, one)[0] / _one_sided(nk_pre, m, one)[1],
        )
    cd3_pre = int(before.cd3)
    if cd3_pre > 0:
        a, b = _cp(cd3, n, joint), _cp(cd3_pre, m, joint)

        def log_ratio(pre_fraction, post_fraction):
            if post_fraction <= 0:
                return math.inf
            return math.log10(pre_fraction / (ratio * post_fraction))

        row.update(
            cd3_log_depletion=log_ratio(cd3_pre / m, cd3 / n),
            cd3_log_depletion_ci_low=log_ratio(b[0], a[1]),
            cd3_log_depletion_ci_high=log_ratio(b[1], a[0]),
            _depletion_lower=log_ratio(_one_sided(cd3_pre, m, one)[0], _one_sided(cd3, n, one)[1]),
        )
        if cd3 == 0:
            low = row["cd3_log_depletion_ci_low"]
            row["note"] = (
                f"no CD3+ event in the bag: the depletion is at least {low:.3g} log10 (95 % "
                "lower limit), with no point estimate or upper limit"
            )
    return row


def _judge(row: dict, limits: ReleaseLimits) -> tuple[str, str]:
    criteria = (
        ("min_nk_purity_pct", "NK purity", "nk_purity_pct", "_purity_lower", "%", True),
        ("min_viability_pct", "viability", "viability_pct", "_viability_lower", "%", True),
        ("min_nk_recovery_pct", "NK recovery", "nk_recovery_pct", "_recovery_lower", "%", True),
        ("min_cd3_log_depletion", "CD3 depletion", "cd3_log_depletion", "_depletion_lower", " log", True),
        ("max_cd3_per_kg", "CD3+ cells/kg", "cd3_per_kg", "cd3_per_kg_upper", "", False),
    )  # fmt: skip
    verdicts, notes = [], []
    for key, name, point_key, bound_key, unit, at_least in criteria:
        limit = getattr(limits, key)
        if limit is None:
            continue
        point, bound = row[point_key], row[bound_key]
        if not np.isfinite(point):
            verdicts.append("not shown")
            notes.append(f"{name} not measured")
            continue
        if at_least:
            ok, bad = bound >= limit, point < limit
        else:
            ok, bad = bound <= limit, point > limit
        side = ">=" if at_least else "<="
        if ok:
            verdicts.append("pass")
        elif bad:
            verdicts.append("fail")
            notes.append(f"{name} {point:.3g}{unit} fails {side} {limit:g}{unit}")
        else:
            verdicts.append("not shown")
            notes.append(
                f"{name} {point:.3g}{unit} but its {limits.level:.0%} bound {bound:.3g}{unit} "
                f"does not show {side} {limit:g}{unit}"
            )
    for k in ("_purity_lower", "_viability_lower", "_recovery_lower", "_depletion_lower"):
        row.pop(k, None)
    if not verdicts:
        return "not judged", "no release limits set ([outcomes.release])"
    for verdict in ("fail", "not shown"):
        if verdict in verdicts:
            return verdict, "; ".join(notes)
    return "pass", ""
