"""Names and numbers as the plots and the report's pages write them (no matplotlib here:
the pages use them without importing a plotting library)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["MEASURES", "format_dose", "gate_name"]

#: The persistence measures a plot can show, and their axis labels.
MEASURES = {"donor_per_ul": "donor cells/µL", "donor_pct": "% donor"}


def gate_name(path) -> str:
    """Last step of a gate path (empty for None/NaN; the whole text when it has no step)."""
    text = "" if path is None or (isinstance(path, float) and math.isnan(path)) else str(path)
    return text.rstrip("/").rsplit("/", 1)[-1] or text


def format_dose(dose) -> str:
    """``18000000`` → ``"1.8×10⁷/kg"`` (up to 3 significant digits: ``16500000`` →
    ``"1.65×10⁷/kg"``, a half rounded up as on paper); empty for a missing dose."""
    try:
        value = float(dose)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(value) or value <= 0:
        return ""
    # decimal rounding half up of the dose as written (its shortest repr): a binary float's
    # ties (16,250,000 / 10**7) and near-ties (2,675,000 / 10**6) round as on paper
    exact = Decimal(repr(value))
    exponent = exact.adjusted()
    mantissa = exact.scaleb(-exponent).quantize(Decimal("0.01"), ROUND_HALF_UP)
    if mantissa >= 10:  # 9.995e6 rounds up to the next power of ten
        exponent += 1
        mantissa = exact.scaleb(-exponent).quantize(Decimal("0.01"), ROUND_HALF_UP)
    text = f"{mantissa:f}".rstrip("0").rstrip(".")
    sup = str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return (f"10{sup}" if text == "1" else f"{text}×10{sup}") + "/kg"
