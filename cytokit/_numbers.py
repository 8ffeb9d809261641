"""Checks and text of plain numbers in settings and parameters."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal

import numpy as np

__all__ = ["MAX_DAYS", "counted", "is_finite_number", "pct_text", "shown"]

#: Days (from the first infusion) a manifest, infusions.csv or a simulated design may
#: give: 100 years either side. A value beyond it is a typo or a date (20240108) written
#: as a day.
MAX_DAYS = 36_500


def counted(n: int, word: str) -> str:
    """``"1 event"``, ``"3 events"``: `n` and `word`, plural unless `n` is 1."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def is_finite_number(v) -> bool:
    """A finite real number: Python's or numpy's (a value taken from a pandas table),
    never a bool."""
    ok = isinstance(v, (int, float, np.integer, np.floating))
    return ok and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def shown(v, *, toml: bool = True) -> str:
    """`v` as written in TOML where it is a plain value (a list in brackets, "text" in
    double quotes, true or false, a number as itself: as short as tells it apart, else
    every digit), else its repr. With ``toml=False`` as Python writes it (a message
    about a Python argument): a bool True or False, a tuple in parentheses."""
    if isinstance(v, list) or (toml and isinstance(v, tuple)):
        return "[" + ", ".join(shown(x, toml=toml) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"' if toml else repr(v)
    if isinstance(v, (bool, np.bool_)):
        return ("true" if v else "false") if toml else repr(bool(v))
    if is_finite_number(v):
        if not isinstance(v, (float, np.floating)):
            return str(int(v))
        short = f"{float(v):g}"
        return short if float(short) == float(v) else repr(float(v))
    return repr(v)


def pct_text(v: float, digits: int = 3) -> str:
    """A percentage as every table and page of cytokit shows it: `digits` significant
    digits, no trailing zeros, never in exponent form (``0.035``, ``3.21``, ``100``, ``0``;
    ``1.2e-05`` reads ``0.000012``). Rounded half away from zero on the value as the
    tables write it (its shortest decimal form): 635 of 20,000 events, 3.175 in
    samples.csv, reads ``3.18``, not the ``3.17`` of the binary fraction just below. A
    share of at most 100 that is not whole never reads as a whole number (a limit's
    look): 9.995 reads ``9.995``, 99.96 ``99.96``."""
    v = float(v)
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    exact = Decimal(repr(v))
    decimals = max(0, digits - 1 - exact.adjusted())
    rounded = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP, context=_WIDE)
    text = f"{rounded:f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    if "." not in text and rounded != exact and abs(v) <= 100 and digits < 8:
        # a share that is not whole never reads as one (9.995 as 10, 99.96 as 100): a
        # whole number is what a limit such as "10 % allowed" is, and what it is not
        return pct_text(v, digits + 1)
    return text


#: Enough digits for any float's decimal form (`pct_text` of 1e29 needs 30).
_WIDE = Context(prec=400)
