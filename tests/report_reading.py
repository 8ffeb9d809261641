"""Read the numbers back out of report.html, to compare them with the tables they show.

`tables` parses every ``<table>`` of the page (caption, header, cell texts with
``<br>`` as a line break); `chimerism_cells` reads each cell of the "Donor
chimerism" tables into numbers; `assert_printed` checks a printed number
against the value it was printed from, to the precision it was printed with.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

__all__ = [
    "Table",
    "assert_chimerism_matches",
    "assert_printed",
    "chimerism_cells",
    "report_text",
    "tables",
]


def report_text(index) -> str:
    """The whole report as one text: ``report.html`` and, in the default layout, every
    patient's page of ``patients/`` beside it (the patients' sections live there)."""
    index = Path(index)
    pages = [index, *sorted((index.parent / "patients").glob("*.html"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in pages)


@dataclass
class Table:
    caption: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


class _Tables(HTMLParser):
    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._caption: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(Table())
        elif tag == "caption":
            self._caption = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag == "caption" and self._caption is not None:
            self.tables[-1].caption = "".join(self._caption).strip()
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            t = self.tables[-1]
            if not t.header:
                t.header = self._row
            else:
                t.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption is not None:
            self._caption.append(data)


def tables(html: str, caption: str = "") -> list[Table]:
    """Every table of the page whose caption starts with `caption`."""
    return [t for t in _Tables(html).tables if t.caption.startswith(caption)]


_NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"
_CELL = re.compile(
    rf"^(?:(?P<nd>not detected|too few cells to judge)|(?P<pct>{_NUMBER}|–) %"
    rf"(?: \[(?P<low>{_NUMBER})–(?P<high>{_NUMBER})\])?(?:\n(?P<per_ul>{_NUMBER}) /µL)?)"
    rf"\n(?P<donor_events>{_NUMBER}) of (?P<events>{_NUMBER}) events(?: (?P<tag>\S+))?$"
)


def chimerism_cells(html: str) -> pd.DataFrame:
    """One row per population cell of the page's chimerism tables: file, population and
    the printed texts (pct, low, high, per_ul, donor_events, events, tag)."""
    rows = []
    for t in tables(html, "Donor chimerism"):
        assert t.header[:2] == ["day", "file"], t.header
        for cells in t.rows:
            for population, text in zip(t.header[2:], cells[2:], strict=True):
                if not text or text.startswith("file failed ("):  # failures.csv's rows
                    continue
                m = _CELL.match(text)
                assert m is not None, f"unreadable chimerism cell {text!r}"
                rows.append({"day": cells[0], "file": cells[1], "population": population,
                             **m.groupdict()})  # fmt: skip
    return pd.DataFrame(rows)


def assert_printed(text: str | None, value, where: str = "") -> None:
    """`text` is `value` as printed: within half a unit of its last printed digit
    (thousands separators allowed); "–" or no text for a missing value."""
    v = float(value) if value is not None else math.nan
    if text in (None, "", "–"):
        assert not math.isfinite(v), (where, text, value)
        return
    assert math.isfinite(v), (where, text, value)
    plain = text.replace(",", "")
    mantissa, _, exp = plain.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (int(exp or 0) - decimals)
    assert abs(float(plain) - v) <= 0.5 * unit * (1 + 1e-9) + 1e-12 * abs(v), (where, text, v)


def assert_chimerism_matches(html: str, chimerism: pd.DataFrame) -> int:
    """Every chimerism cell of the page shows its row of `chimerism` (chimerism.csv):
    % donor, its interval, donor cells/µL, donor and population events, status tag; a
    not-detected cell shows its events and no share.
    Returns the number of cells checked."""
    cells = chimerism_cells(html)
    table = chimerism.set_index(["file", "population"])
    tags = {"quantified": None, "not_quantifiable": "NQ"}
    for c in cells.itertuples(index=False):
        r = table.loc[(c.file, c.population)]
        where = f"{c.file} {c.population}"
        if c.nd is not None:  # below the detection limit: the events, never a share
            assert r["status"] == "not_detected", (where, r["status"])
            # "too few cells" exactly where the population is too small to judge (< 80)
            assert (c.nd == "too few cells to judge") == (r["events"] < 80), (where, c.nd)
            assert c.pct is None and c.low is None and c.per_ul is None, where
        else:
            assert r["status"] != "not_detected", where
            assert_printed(None if c.pct == "–" else c.pct, r["donor_pct"], f"{where} donor_pct")
            if c.low is not None:
                assert_printed(c.low, r["ci_low"], f"{where} ci_low")
                assert_printed(c.high, r["ci_high"], f"{where} ci_high")
            else:
                assert not (math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])), where
            if "donor_per_ul" in r.index and pd.notna(r["donor_per_ul"]):
                assert_printed(c.per_ul, r["donor_per_ul"], f"{where} donor_per_ul")
            assert c.tag == tags.get(r["status"], r["status"]), (where, c.tag, r["status"])
        assert int(c.donor_events.replace(",", "")) == r["donor_events"], where
        assert int(c.events.replace(",", "")) == r["events"], where
    assert len(cells) == len(chimerism), (len(cells), len(chimerism))
    return len(cells)
