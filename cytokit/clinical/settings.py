"""`OutcomesSettings`: the ``[outcomes]`` table of ``study.toml``, checked and typed.

=========================  =======================================================
key                        meaning (default)
=========================  =======================================================
``landmark_day``           day of the landmark analysis (28): patients alive and
                           event-free then are grouped by donor-cell persistence
                           measured on or before it
``landmark_by``            ``"detection"`` (donor cells detected on or before the
                           landmark), ``"auc"`` or ``"peak"`` (above the median of
                           the landmark cohort, both measured up to the landmark)
``population``, ``measure`` the persistence series: a study population (empty: the
                           caller's choice) and ``donor_per_ul`` or ``donor_pct``
``response_categories``    the protocol's response categories, best first
                           (``["CR", "PR", "SD", "PD"]``)
``responders``             categories counted as response (``["CR", "PR"]``)
``horizon_day``            day of the survival estimates reported (365: 1 year)
``gvhd_grade``             lowest acute GVHD grade counted as an event (2)
``gvhd_horizon_day``       day of the GVHD cumulative incidence reported (100)
``escalation``             dose-escalation rule: ``"3+3"`` or ``"none"``
``min_group``              patients each group needs before a test is run (3)
``[outcomes.release]``     release limits of the infusion product (each optional;
                           a limit not set is not judged): ``min_nk_purity_pct``,
                           ``min_viability_pct``, ``min_nk_recovery_pct``,
                           ``min_cd3_log_depletion``, ``max_cd3_per_kg``;
                           ``level``: one-sided confidence of the bounds judged
                           (0.95)
``product_events``,        product QC of ``product_pre``/``product_post`` files:
``product_live``           gate paths of the nucleated-cell events and of the
                           live cells among them (empty: the NK population's
                           parent gate is ``live``, its parent ``events``)
``product_nk``             the population counted as NK cells (``"NK"``)
``product_cd3``            the populations that together are the CD3+ cells
                           (``["CIK", "T"]``: CD3+CD56+ and CD3+CD56−)
=========================  =======================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cytokit.errors import StudyError

__all__ = ["LANDMARK_BY", "OutcomesSettings", "ReleaseLimits"]

LANDMARK_BY = ("detection", "auc", "peak")
MEASURES = ("donor_per_ul", "donor_pct")
ESCALATION_RULES = ("3+3", "none")
_KEYS = {
    "landmark_day",
    "landmark_by",
    "population",
    "measure",
    "response_categories",
    "responders",
    "horizon_day",
    "gvhd_grade",
    "gvhd_horizon_day",
    "escalation",
    "min_group",
    "release",
    "product_events",
    "product_live",
    "product_nk",
    "product_cd3",
}
_LIMITS = {
    "min_nk_purity_pct": (0.0, 100.0),
    "min_viability_pct": (0.0, 100.0),
    "min_nk_recovery_pct": (0.0, 1000.0),
    "min_cd3_log_depletion": (0.0, 20.0),
    "max_cd3_per_kg": (0.0, math.inf),
}


@dataclass(frozen=True)
class ReleaseLimits:
    """Release limits of an infusion product (``[outcomes.release]``); None = not judged.

    Each is judged on its one-sided confidence bound at `level` (see
    `cytokit.clinical.product`): a product passes a limit only when the
    measurement shows it, not when the point estimate happens to lie inside.
    """

    min_nk_purity_pct: float | None = None
    min_viability_pct: float | None = None
    min_nk_recovery_pct: float | None = None
    min_cd3_log_depletion: float | None = None
    max_cd3_per_kg: float | None = None
    level: float = 0.95

    def any(self) -> bool:
        """Whether any limit is set."""
        return any(getattr(self, k) is not None for k in _LIMITS)


@dataclass(frozen=True)
class OutcomesSettings:
    """The clinical layer's options (see the module docstring for each)."""

    landmark_day: int = 28
    landmark_by: str = "detection"
    population: str = ""
    measure: str = "donor_per_ul"
    response_categories: tuple[str, ...] = ("CR", "PR", "SD", "PD")
    responders: tuple[str, ...] = ("CR", "PR")
    horizon_day: int = 365
    gvhd_grade: int = 2
    gvhd_horizon_day: int = 100
    escalation: str = "3+3"
    min_group: int = 3
    release: ReleaseLimits = field(default_factory=ReleaseLimits)
    product_events: str = ""
    product_live: str = ""
    product_nk: str = "NK"
    product_cd3: tuple[str, ...] = ("CIK", "T")

    @classmethod
    def parse(
        cls, mapping: Mapping[str, Any] | None, source: str = "study.toml"
    ) -> tuple[OutcomesSettings, list[str]]:
        """The settings of an ``[outcomes]`` table and every problem found in it.

        Parameters
        ----------
        mapping : mapping or None
            The parsed ``[outcomes]`` table (None or empty: the defaults).
        source : str
            The file, starting every problem.

        Returns
        -------
        settings : OutcomesSettings
            Defaults where a value was missing or bad.
        problems : list of str
            One sentence each, naming `source`, the key, the value and what is allowed.
        """
        at = f"{source}: [outcomes]"
        problems: list[str] = []
        if mapping is None:
            return cls(), problems
        if not isinstance(mapping, Mapping):
            return cls(), [f"{at} must be a table, got {mapping!r}"]
        for key in mapping:
            if key not in _KEYS:
                problems.append(f"{at} unknown key {key!r}; known keys: {', '.join(sorted(_KEYS))}")
        kw: dict[str, Any] = {}
        for key, minimum in (
            ("landmark_day", 0),
            ("horizon_day", 1),
            ("gvhd_horizon_day", 1),
            ("min_group", 1),
        ):
            if key in mapping:
                value = _whole(mapping[key], f"{at} {key}", minimum, problems)
                if value is not None:
                    kw[key] = value
        if "gvhd_grade" in mapping:
            value = _whole(mapping["gvhd_grade"], f"{at} gvhd_grade", 1, problems)
            if value is not None and value > 4:
                problems.append(
                    f"{at} gvhd_grade = {value} must be 1 to 4 (Glucksberg grades I-IV)"
                )
            elif value is not None:
                kw["gvhd_grade"] = value
        for key, allowed in (
            ("landmark_by", LANDMARK_BY),
            ("measure", MEASURES),
            ("escalation", ESCALATION_RULES),
        ):
            if key in mapping:
                if mapping[key] in allowed:
                    kw[key] = mapping[key]
                else:
                    problems.append(
                        f"{at} {key} = {mapping[key]!r} must be one of {', '.join(allowed)}"
                    )
        for key in ("product_events", "product_live", "product_nk"):
            if key in mapping:
                if isinstance(mapping[key], str) and (mapping[key].strip() or key != "product_nk"):
                    kw[key] = mapping[key].strip()
                else:
                    problems.append(f"{at} {key} = {mapping[key]!r} must be a gate path or name")
        if "product_cd3" in mapping:
            value = _names(mapping["product_cd3"], f"{at} product_cd3", problems)
            if value is not None:
                kw["product_cd3"] = value
        if "population" in mapping:
            if isinstance(mapping["population"], str):
                kw["population"] = mapping["population"].strip()
            else:
                problems.append(f"{at} population = {mapping['population']!r} must be a name")
        categories = cls.response_categories
        if "response_categories" in mapping:
            value = _names(mapping["response_categories"], f"{at} response_categories", problems)
            if value is not None:
                kw["response_categories"] = categories = value
        if "responders" in mapping:
            value = _names(mapping["responders"], f"{at} responders", problems)
            unknown = [r for r in value or () if r not in categories]
            if unknown:
                problems.append(
                    f"{at} responders {', '.join(unknown)} not in response_categories "
                    f"({', '.join(categories)})"
                )
            elif value is not None:
                kw["responders"] = value
        elif "response_categories" in mapping and not set(cls.responders) <= set(categories):
            problems.append(
                f"{at} responders: the default {', '.join(cls.responders)} is not among "
                f"response_categories ({', '.join(categories)}); set responders"
            )
        if "release" in mapping:
            kw["release"] = _release(mapping["release"], f"{at}.release", problems)
        return cls(**kw), problems

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any] | None, source: str = "study.toml"
    ) -> OutcomesSettings:
        """The settings of an ``[outcomes]`` table.

        Raises
        ------
        StudyError
            Listing every problem of the table, one per line.
        """
        settings, problems = cls.parse(mapping, source)
        if problems:
            raise StudyError(
                f"{source}: {len(problems)} problem(s) in [outcomes]:\n  " + "\n  ".join(problems)
            )
        return settings


def _whole(value, where: str, minimum: int, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{where} = {value!r} must be a whole number >= {minimum}")
        return None
    return value


def _names(value, where: str, problems: list[str]) -> tuple[str, ...] | None:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(v, str) and v.strip() for v in value)
        and len({v.strip().upper() for v in value}) == len(value)
    )
    if not ok:
        problems.append(
            f'{where} = {value!r} must be a list of distinct names, e.g. ["CR", "PR", "SD", "PD"]'
        )
        return None
    return tuple(v.strip() for v in value)


def _release(table, where: str, problems: list[str]) -> ReleaseLimits:
    if not isinstance(table, Mapping):
        problems.append(f"{where} must be a table of limits, got {table!r}")
        return ReleaseLimits()
    kw: dict[str, float] = {}
    for key, value in table.items():
        if key == "level":
            if isinstance(value, float) and 0.5 <= value < 1.0:
                kw["level"] = value
            else:
                problems.append(f"{where} level = {value!r} must be a confidence in [0.5, 1)")
            continue
        if key not in _LIMITS:
            problems.append(
                f"{where} unknown key {key!r}; known keys: {', '.join([*_LIMITS, 'level'])}"
            )
            continue
        lo, hi = _LIMITS[key]
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not (lo <= number <= hi) or not math.isfinite(number):
            problems.append(f"{where} {key} = {value!r} must be a number from {lo:g} to {hi:g}")
            continue
        kw[key] = float(number)
    return ReleaseLimits(**kw)
