"""Why a value is missing, said once: a short code in a table cell, the sentence in a glossary.

A table of 30 trend rows used to repeat the analysis's full note ("not estimable: 0
point(s) with >= 20 donor events in decay phases (need 3, ...)") in every row. The
report now writes a code (``H1``) that links to one plain sentence in the page's
"Why values are missing" list; the row's own note, with its numbers, stays in the
code's tooltip and in trends.csv.

Adding a reason: one entry in `REASONS` (code, a regular expression matching the
notes it covers, the sentence). Notes no entry matches are shown as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cytokit.report._html import esc

__all__ = ["REASONS", "code_html", "glossary_html", "reason_code", "reason_html"]

#: code → (pattern of the notes it covers, the plain sentence a reader sees).
REASONS: dict[str, tuple[re.Pattern[str], str]] = {
    "H1": (
        re.compile(r"^not estimable: \d+ .* in decay phases"),
        "Half-life not estimated: fewer than 3 samples with at least 20 donor events while "
        "the donor cells were declining after a peak (more events per sample or more "
        "samples after an infusion would allow it).",
    ),
    "H2": (
        re.compile(r"^not estimable: counts do not decay"),
        "Half-life not estimated: the donor cells did not decline after their peak.",
    ),
    "H3": (
        re.compile(r"^not estimable: the decay is not significant"),
        "Half-life not estimated: the decline is within the counting error (its 95 % "
        "interval includes no decline).",
    ),
}


def reason_code(note) -> str | None:
    """The code of `note` (an analysis note such as trends.csv's ``half_life_note``), or None."""
    text = "" if note is None else str(note).strip()
    for code, (pattern, _sentence) in REASONS.items():
        if pattern.search(text):
            return code
    return None


def _text(note) -> str:
    return "" if note is None or (isinstance(note, float) and note != note) else str(note)


def reason_html(note, fallback: str = "not estimable") -> str:
    """A cell's text for a missing value: a linked code with the note as tooltip, else the note."""
    text = _text(note)
    code = reason_code(text)
    if code is None:
        return esc(text) or esc(fallback)
    return f'<a class="why" href="#why-{code}" title="{esc(text)}">{esc(fallback)} ({code})</a>'


def code_html(note) -> str:
    """The code of `note` alone, linked to its sentence (the note as tooltip); empty when
    no code covers it."""
    text = _text(note)
    code = reason_code(text)
    if code is None:
        return ""
    return f'<a class="why" href="#why-{code}" title="{esc(text)}">{code}</a>'


def glossary_html(notes: Iterable) -> str:
    """The "Why values are missing" list of the codes `notes` use (empty when none).

    A ``<footer>`` at the page's end, after every section, like a table's footnotes.
    """
    used = sorted({c for c in (reason_code(n) for n in notes) if c is not None})
    if not used:
        return ""
    items = "".join(f'<li id="why-{c}"><b>{c}</b>: {esc(REASONS[c][1])}</li>' for c in used)
    return f'<footer id="why"><h2>Why values are missing</h2><ul class="why">{items}</ul></footer>'
