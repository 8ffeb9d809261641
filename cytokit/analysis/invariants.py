"""What every analysis table must satisfy, checked before any table is written.

A violation is a bug in cytokit, never a property of the input: `check_results`
raises `InvariantError` naming the table, the row and the rule, so that a wrong
table is never written (`cytokit.analyze` calls it on every result). Tests
call `violations` to see every one.

Rules
-----
``samples``
    ``events`` >= 0; 0 <= ``nonfinite_events`` <= ``events``;
    ``donor_marker_check`` is ``usable``, ``failed`` or empty, with a
    ``donor_marker_note`` exactly when ``failed``.
``counts``
    0 <= ``count`` <= ``parent_count``; ``per_ul`` >= 0, present exactly when
    the sample has a counting basis (``count_method`` in samples.csv). A
    gate of a sample whose donor marker failed may be not counted: no count,
    percentages or cells/µL, a ``note`` starting ``not counted: ``.
``chimerism``
    ``events`` >= 0 and equal to the population's gate count in counts.csv
    (both empty for a population not counted, ``marker_failed`` only);
    ``per_ul`` as in counts. By ``status``:

    * ``quantified``, ``not_quantifiable``, ``not_detected``: whole
      ``donor_events``, ``recipient_events`` >= 0 adding up to ``events``;
      ``donor_pct`` = 100 · donor / events, in [0, 100] (empty when
      ``events`` = 0); ``ci_low`` <= ``donor_pct`` <= ``ci_high`` within
      [0, 100]; ``imputed_events`` >= ``imputed_donor_events`` >= 0 and
      ``imputed_donor_pct`` = 100 · (donor + imputed donor) / (events +
      imputed events) within ``imputed_ci_low`` .. ``imputed_ci_high``, inside
      [0, 100], or all of them empty (always where ``donor_pct`` is), and with
      0 imputed events the same figure and interval as ``donor_pct``; the status that the donor events give (fewer than 20:
      ``not_detected``, fewer than ``[qc] min_events``: ``not_quantifiable``);
      ``donor_per_ul`` and ``recipient_per_ul`` = ``per_ul`` × their share of
      the events, present exactly when ``per_ul`` is;
    * ``marker_failed``: every donor value empty (events, percentage,
      interval, cells/µL), a ``note``, and the sample ``failed`` in
      samples.csv;
    * empty (no donor marker): every donor value empty.
``phenotype``
    ``events`` >= 0; ``pct_positive`` in [0, 100]; donor and recipient rows
    add up to the ``all`` row, and a ``marker_failed`` sample has neither.
``trends``
    ``peak_value`` >= 0 and ``auc`` >= 0 where present; the peak day, the last
    detectable and the last quantified day are days whose status says so (a
    ``marker_failed`` day is never one).
``samples`` and ``acquisition_qc`` (acquisition QC)
    A sample with a ``qc_verdict`` has ``pass`` or ``warn`` (a failed file is
    in failures.csv), ``events_before_qc`` = ``events``, 0 <=
    ``events_after_qc`` <= ``events_before_qc``, each ``qc_removed_<reason>``
    in [0, before], ``qc_pct_removed`` = 100 · (before − after) / before (empty
    only where no check ran: every ``qc_removed_<reason>`` empty, nothing removed), and
    its root gates' ``parent_count`` = ``events_after_qc`` −
    ``nonfinite_events``; a sample without a verdict has every QC column
    empty. Each flagged range belongs to a sample with a verdict, has start
    <= end, and its events lie within the file's.
``repertoire``
    0 <= ``events`` <= ``total``; ``pct`` = 100 · events / total, inside
    [``ci_low``, ``ci_high``] within [0, 100]; the combinations of a file,
    population and origin add up to its ``total``, and donor and recipient
    totals to the ``all`` total; a row without numbers has a ``note``.
``function``
    0 <= ``positive_stim`` <= ``events_stim`` (likewise unstimulated);
    ``pct_net`` = ``pct_stim`` − ``pct_unstim``, inside [``ci_low``,
    ``ci_high``] within [−100, 100]; ``high_background`` exactly when
    ``pct_unstim`` > 5; a row without numbers has a ``note``.
``failures``
    A failed file has no row in samples, counts, chimerism or acquisition_qc.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytokit.analysis.chimerism import DETECTION_EVENTS, MARKER_FAILED
from cytokit.errors import CytokitError

__all__ = ["InvariantError", "check_results", "violations"]

COUNTED = ("quantified", "not_quantifiable", "not_detected")
_DONOR_VALUES = (
    "donor_events",
    "recipient_events",
    "donor_pct",
    "ci_low",
    "ci_high",
    "imputed_events",
    "imputed_donor_events",
    "imputed_donor_pct",
    "imputed_ci_low",
    "imputed_ci_high",
    "donor_per_ul",
    "recipient_per_ul",
)
#: Relative tolerance of values computed two ways (a CSV keeps 10 significant digits).
_REL = 1e-8


class InvariantError(CytokitError):
    """An analysis table breaks one of its invariants: a bug in cytokit (please report it)."""


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)


def _text(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    col = frame[column]
    # where() rather than fillna(""): no silent downcast of an object column (pandas 3)
    return col.astype(object).where(col.notna(), "").astype(str).to_numpy()


def _imputed(found, ch, counted, events, donor) -> None:
    """The donor % with QC's removed time ranges imputed: its counts, ratio and interval."""
    names = ("imputed_events", "imputed_donor_events", "imputed_donor_pct")
    imp_n, imp_d, pct = (_num(ch, c) for c in names)
    low, high = _num(ch, "imputed_ci_low"), _num(ch, "imputed_ci_high")
    empty = np.isnan(imp_n) & np.isnan(imp_d) & np.isnan(pct) & np.isnan(low) & np.isnan(high)
    size = events + imp_n
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(size > 0, 100.0 * (donor + imp_d) / size, np.nan)
    tol = 1e-9
    # a percentage has its interval, inside [0, 100]
    bounded = np.isnan(pct) | (
        ~np.isnan(low) & ~np.isnan(high) & (low >= -tol) & (high <= 100 + tol)
    )
    ok = (
        (imp_d >= 0)
        & (imp_n >= imp_d)
        & (_close(pct, ratio) | (np.isnan(pct) & np.isnan(ratio)))
        & ~(pct < 0)
        & ~(pct > 100)
        & ~(low > pct + tol)
        & ~(pct > high + tol)
        & bounded
    )
    found.rows(
        "chimerism",
        ch,
        counted & ~(empty | ok),
        "imputed_events >= imputed_donor_events >= 0 and imputed_donor_pct = 100 * "
        "(donor_events + imputed_donor_events) / (events + imputed_events) within "
        "imputed_ci_low .. imputed_ci_high, inside [0, 100] (or all empty) must hold",
    )
    # no donor_pct (no kept event of the population, or a failed marker): no imputed one
    found.rows(
        "chimerism",
        ch,
        counted & np.isnan(_num(ch, "donor_pct")) & ~np.isnan(pct),
        "where donor_pct is empty, imputed_donor_pct must be empty too",
    )
    # nothing imputed: the kept events' own figure and interval, exactly
    same = (
        _close(pct, _num(ch, "donor_pct"))
        & _close(low, _num(ch, "ci_low"))
        & _close(high, _num(ch, "ci_high"))
    )
    found.rows(
        "chimerism",
        ch,
        counted & (imp_n == 0) & ~np.isnan(pct) & ~same,
        "with imputed_events = 0, imputed_donor_pct and its interval must be donor_pct and "
        "ci_low .. ci_high",
    )


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) <= _REL * np.maximum(np.abs(a), np.abs(b)) + 1e-9


class _Found:
    def __init__(self) -> None:
        self.items: list[str] = []

    def rows(self, table: str, frame: pd.DataFrame, bad, rule: str) -> None:
        bad = np.asarray(bad, dtype=bool)
        for i in np.flatnonzero(bad):
            r = frame.iloc[i]
            where = ", ".join(
                f"{k} {r[k]}"
                for k in ("file", "population", "gate_path", "marker", "origin")
                if k in frame.columns and isinstance(r[k], str) and r[k]
            )
            self.items.append(f"{table}.csv row {i + 1} ({where}): {rule}")


def violations(results) -> list[str]:
    """Every violated invariant of `results` (a `cytokit.Results`), one line each."""
    found = _Found()
    min_events = int((results.study.get("qc") or {}).get("min_events", 50))
    samples = results.samples
    method = {}
    if not samples.empty:
        method = dict(zip(_text(samples, "file"), _text(samples, "count_method"), strict=True))
        _samples(found, samples)
    failed = set()
    if not samples.empty and "donor_marker_check" in samples.columns:
        failed = set(_text(samples, "file")[_text(samples, "donor_marker_check") == "failed"])
    counts = results.counts
    if not counts.empty:
        _counts(found, counts, method, failed)
    chim = results.chimerism
    if not chim.empty:
        _chimerism(found, chim, counts, samples, method, min_events)
    if not results.phenotype.empty:
        _phenotype(found, results.phenotype, chim)
    if not results.trends.empty and not chim.empty:
        _trends(found, results.trends, chim)
    ranges = getattr(results, "acquisition_qc", pd.DataFrame())
    if not samples.empty or not ranges.empty:
        _acquisition_qc(found, samples, counts, ranges)
    _clinical(found, getattr(results, "clinical", None) or {})
    mif = getattr(results, "miflowcyt", pd.DataFrame())
    if not mif.empty:
        _miflowcyt(found, mif, samples)
    rep = getattr(results, "repertoire", pd.DataFrame())
    if not rep.empty:
        _repertoire(found, rep)
    fun = getattr(results, "function", pd.DataFrame())
    if not fun.empty:
        _function(found, fun)
    failed = set(_text(results.failures, "file")) if not results.failures.empty else set()
    for name in ("samples", "counts", "chimerism", "acquisition_qc"):
        frame = getattr(results, name, pd.DataFrame())
        if failed and not frame.empty:
            found.rows(
                name,
                frame,
                np.isin(_text(frame, "file"), list(failed)),
                "the file is listed in failures.csv",
            )
    return found.items


def check_results(results) -> None:
    """Raise `InvariantError` when any table of `results` breaks an invariant."""
    items = violations(results)
    if items:
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        raise InvariantError(
            "internal error, no table was written: "
            + "; ".join(items[:3])
            + more
            + ". This is a bug in cytokit; please report it with the study's samples.csv"
        )


def _samples(found: _Found, s: pd.DataFrame) -> None:
    events, nonfinite = _num(s, "events"), _num(s, "nonfinite_events")
    found.rows("samples", s, ~(events >= 0), "events must be >= 0")
    has = ~np.isnan(nonfinite)
    found.rows(
        "samples",
        s,
        has & ~((nonfinite >= 0) & (nonfinite <= events)),
        "nonfinite_events must be in [0, events]",
    )
    check, note = _text(s, "donor_marker_check"), _text(s, "donor_marker_note")
    found.rows(
        "samples",
        s,
        ~np.isin(check, ["usable", "failed", ""]),
        "donor_marker_check must be usable, failed or empty",
    )
    found.rows(
        "samples",
        s,
        (check == "failed") != (note != ""),
        "donor_marker_note must be given exactly when the marker failed",
    )


_QC_COLUMNS = (
    "events_before_qc", "events_after_qc", "qc_removed_rate", "qc_removed_signal",
    "qc_removed_margin", "qc_pct_removed", "qc_verdict", "qc_reason",
)  # fmt: skip


def _acquisition_qc(found: _Found, s: pd.DataFrame, counts: pd.DataFrame, ranges) -> None:
    verdict = _text(s, "qc_verdict")
    on = verdict != ""
    found.rows("samples", s, on & ~np.isin(verdict, ["pass", "warn"]),
               "qc_verdict must be pass or warn (a failed file has no row)")  # fmt: skip
    empty = np.column_stack([_text(s, c) == "" for c in _QC_COLUMNS] or [np.ones(len(s), bool)])
    found.rows("samples", s, ~on & ~empty.all(axis=1),
               "acquisition-QC columns must be empty without a qc_verdict")  # fmt: skip
    before, after = _num(s, "events_before_qc"), _num(s, "events_after_qc")
    found.rows("samples", s, on & (before != _num(s, "events")),
               "events_before_qc must equal events")  # fmt: skip
    found.rows("samples", s, on & ~((after >= 0) & (after <= before)),
               "events_after_qc must be in [0, events_before_qc]")  # fmt: skip
    for reason in ("rate", "signal", "margin"):
        n = _num(s, f"qc_removed_{reason}")
        # empty where the check did not run (no count, not a zero)
        found.rows("samples", s, on & ~np.isnan(n) & ~((n >= 0) & (n <= before)),
                   f"qc_removed_{reason} must be empty or in [0, events_before_qc]")  # fmt: skip
    pct = 100 * (before - after) / np.where(before > 0, before, np.nan)
    got_pct = _num(s, "qc_pct_removed")
    # empty only where no check ran: every reason's count empty and every event kept
    unchecked = np.column_stack(
        [np.isnan(_num(s, f"qc_removed_{r}")) for r in ("rate", "signal", "margin")]
    ).all(axis=1) & (after == before)
    bad_pct = (
        on & (before > 0) & ~(np.abs(got_pct - pct) <= 1e-4) & ~(np.isnan(got_pct) & unchecked)
    )
    found.rows("samples", s, bad_pct,
               "qc_pct_removed must be 100 * (before - after) / before (empty only where "
               "no check ran)")  # fmt: skip
    if not counts.empty and on.any():
        roots = counts[_text(counts, "parent_path") == ""]
        first = roots.drop_duplicates("file").set_index("file")["parent_count"]
        expect = after - np.nan_to_num(_num(s, "nonfinite_events"))
        got = pd.to_numeric(first.reindex(_text(s, "file")), errors="coerce").to_numpy(float)
        found.rows("samples", s, on & ~np.isnan(got) & (got != expect),
                   "root gates' parent_count must be events_after_qc - nonfinite_events")  # fmt: skip
    if ranges is None or ranges.empty:
        return
    limit = dict(zip(_text(s, "file")[on], before[on], strict=True))
    files = _text(ranges, "file")
    top = np.array([limit.get(f, np.nan) for f in files])
    found.rows("acquisition_qc", ranges, np.isnan(top),
               "the range's file must have a qc_verdict in samples.csv")  # fmt: skip
    found.rows("acquisition_qc", ranges, ~(_num(ranges, "start") <= _num(ranges, "end")),
               "start must be <= end")  # fmt: skip
    first, n = _num(ranges, "first_event"), _num(ranges, "events")
    found.rows("acquisition_qc", ranges, ~np.isnan(top) & ~((first >= 0) & (n >= 0) & (first + n <= top)),
               "the range's events must lie within the file's")  # fmt: skip


def _per_ul(
    found: _Found, table: str, frame: pd.DataFrame, method: dict, lost: np.ndarray | None = None
) -> None:
    """``per_ul`` present exactly where the sample has a counting basis, but for the `lost`
    rows (not counted: no count, so no cells/µL)."""
    per_ul = _num(frame, "per_ul")
    counted = np.array([bool(method.get(f, "")) for f in _text(frame, "file")], dtype=bool)
    if lost is not None:
        counted &= ~lost
    found.rows(
        table,
        frame,
        counted & ~(per_ul >= 0),
        "per_ul must be a number >= 0 when the sample has a counting basis",
    )
    found.rows(
        table, frame, ~counted & ~np.isnan(per_ul), "per_ul must be empty without a counting basis"
    )


def _counts(found: _Found, c: pd.DataFrame, method: dict, failed: set[str]) -> None:
    count, parent = _num(c, "count"), _num(c, "parent_count")
    lost = np.isnan(count)
    found.rows(
        "counts",
        c,
        ~lost & ~((count >= 0) & (count <= parent)),
        "count must be in [0, parent_count]",
    )
    said = np.array([t.startswith("not counted: ") for t in _text(c, "note")], dtype=bool)
    of_failed = np.isin(_text(c, "file"), list(failed))
    found.rows(
        "counts",
        c,
        lost != (said & of_failed),
        "count must be empty exactly where its note says 'not counted: ' (a gate reading "
        "a failed donor marker)",
    )
    gone = np.isnan(_num(c, "pct_parent")) & np.isnan(_num(c, "pct_total"))
    found.rows("counts", c, lost & ~gone, "a count not given has no percentages")
    _per_ul(found, "counts", c, method, lost)


def _chimerism(found, ch, counts, samples, method, min_events) -> None:
    status = _text(ch, "status")
    events = _num(ch, "events")
    found.rows(
        "chimerism",
        ch,
        ~np.isin(status, [*COUNTED, MARKER_FAILED, ""]),
        "status must be one of " + ", ".join([*COUNTED, MARKER_FAILED]),
    )
    lost = np.isnan(events)  # a population not counted (a failed donor-marker detector)
    found.rows(
        "chimerism", ch, ~(events >= 0) & ~(lost & (status == MARKER_FAILED)),
        "events must be >= 0 (empty only where the donor marker failed)",
    )  # fmt: skip
    if not counts.empty:
        gate = dict(
            zip(
                zip(_text(counts, "file"), _text(counts, "gate_path"), strict=True),
                _num(counts, "count"),
                strict=True,
            )
        )
        keys = zip(_text(ch, "file"), _text(ch, "gate_path"), strict=True)
        want = np.array([gate.get(k, np.nan) for k in keys], dtype=np.float64)
        found.rows(
            "chimerism",
            ch,
            ~((events == want) | (lost & np.isnan(want))),
            "events must equal the gate's count in counts.csv",
        )
    _per_ul(found, "chimerism", ch, method, lost)
    donor, recip = _num(ch, "donor_events"), _num(ch, "recipient_events")
    pct, low, high = _num(ch, "donor_pct"), _num(ch, "ci_low"), _num(ch, "ci_high")
    per_ul = _num(ch, "per_ul")
    counted = np.isin(status, COUNTED)
    whole = (donor >= 0) & (recip >= 0) & (donor == np.round(donor)) & (recip == np.round(recip))
    found.rows(
        "chimerism",
        ch,
        counted & ~(whole & (donor + recip == events)),
        "donor_events + recipient_events must equal events (whole numbers >= 0)",
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(events > 0, 100.0 * donor / events, np.nan)
    same = _close(pct, ratio) | (np.isnan(pct) & np.isnan(ratio))
    found.rows(
        "chimerism",
        ch,
        counted & ~(same & ~(pct < 0) & ~(pct > 100)),
        "donor_pct must be 100 * donor_events / events, in [0, 100]",
    )
    _imputed(found, ch, counted, events, donor)
    tol = 1e-9
    inside = (low >= -tol) & (high <= 100 + tol) & (low <= pct + tol) & (pct <= high + tol)
    found.rows(
        "chimerism",
        ch,
        counted & (events > 0) & ~inside,
        "ci_low <= donor_pct <= ci_high must hold within [0, 100]",
    )
    expected = np.where(
        donor < DETECTION_EVENTS,
        "not_detected",
        np.where(donor < min_events, "not_quantifiable", "quantified"),
    )
    found.rows(
        "chimerism",
        ch,
        counted & (status != expected),
        f"status must follow the donor events (< {DETECTION_EVENTS}: not_detected, "
        f"< [qc] min_events = {min_events}: not_quantifiable)",
    )
    for col, part in (("donor_per_ul", donor), ("recipient_per_ul", recip)):
        v = _num(ch, col)
        with np.errstate(invalid="ignore", divide="ignore"):
            want = np.where(events > 0, per_ul * part / events, 0.0 * per_ul)
        ok = np.where(np.isnan(per_ul), np.isnan(v), _close(v, want) & (v >= 0))
        found.rows(
            "chimerism",
            ch,
            counted & ~ok,
            f"{col} must be per_ul times its share of the events, present with per_ul",
        )
    empty = np.logical_and.reduce([np.isnan(_num(ch, c)) for c in _DONOR_VALUES])
    failed = status == MARKER_FAILED
    found.rows(
        "chimerism",
        ch,
        ~counted & ~empty,
        "a marker_failed row or one without a donor marker has no donor values",
    )
    found.rows(
        "chimerism",
        ch,
        failed & (_text(ch, "note") == ""),
        "a marker_failed row must say why (note)",
    )
    if not samples.empty:
        bad = set(_text(samples, "file")[_text(samples, "donor_marker_check") == "failed"])
        found.rows(
            "chimerism",
            ch,
            failed != np.isin(_text(ch, "file"), list(bad)),
            "marker_failed exactly for the samples failed in samples.csv",
        )


def _phenotype(found: _Found, ph: pd.DataFrame, chim: pd.DataFrame) -> None:
    events, pct = _num(ph, "events"), _num(ph, "pct_positive")
    found.rows("phenotype", ph, ~(events >= 0), "events must be >= 0")
    found.rows("phenotype", ph, (pct < 0) | (pct > 100), "pct_positive must be in [0, 100]")
    origin = _text(ph, "origin")
    split = origin != "all"
    if not chim.empty:
        failed = set(_text(chim, "file")[_text(chim, "status") == MARKER_FAILED])
        found.rows(
            "phenotype",
            ph,
            split & np.isin(_text(ph, "file"), list(failed)),
            "no phenotype by origin for a sample whose donor marker failed",
        )
    if split.any():
        keys = ["file", "population", "marker"]
        n = ph.assign(_n=events).pivot_table(
            index=keys, columns="origin", values="_n", aggfunc="sum"
        )
        if {"donor", "recipient", "all"} <= set(n.columns):
            both = n["donor"].notna() & n["recipient"].notna()
            bad = n[both & (n["donor"] + n["recipient"] != n["all"])]
            for idx in bad.index:
                found.items.append(
                    f"phenotype.csv ({', '.join(map(str, idx))}): donor + recipient events "
                    "must equal the events of origin all"
                )


def _repertoire(found: _Found, rep: pd.DataFrame) -> None:
    events, total, pct = _num(rep, "events"), _num(rep, "total"), _num(rep, "pct")
    lo, hi = _num(rep, "ci_low"), _num(rep, "ci_high")
    counted = np.isfinite(events)
    found.rows(
        "repertoire", rep, counted & ~((events >= 0) & (events <= total)),
        "0 <= events <= total",
    )  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        want = 100.0 * events / total
    has = counted & (total > 0)
    found.rows("repertoire", rep, has & ~_close(pct, want), "pct must be 100 * events / total")
    found.rows(
        "repertoire", rep, has & ~((lo <= pct + 1e-9) & (pct <= hi + 1e-9) & (lo >= -1e-9)
                                   & (hi <= 100 + 1e-9)),
        "ci_low <= pct <= ci_high within [0, 100]",
    )  # fmt: skip
    found.rows(
        "repertoire", rep, ~counted & (_text(rep, "note") == ""),
        "a row without numbers must say why (note)",
    )  # fmt: skip
    combos = rep[(_text(rep, "kind") == "combination") & counted]
    if not combos.empty:
        keys = ["file", "population", "origin"]
        sums = combos.groupby(keys)[["events", "total"]].agg({"events": "sum", "total": "first"})
        for idx in sums.index[sums["events"] != sums["total"]]:
            found.items.append(
                f"repertoire.csv ({', '.join(map(str, idx))}): the combinations' events must "
                "add up to the total"
            )
        totals = sums["total"].unstack("origin")
        if {"all", "donor", "recipient"} <= set(totals.columns):
            both = totals["donor"].notna() & totals["recipient"].notna()
            for idx in totals.index[
                both & (totals["donor"] + totals["recipient"] != totals["all"])
            ]:
                found.items.append(
                    f"repertoire.csv ({', '.join(map(str, idx))}): donor + recipient totals "
                    "must equal the total of origin all"
                )


def _function(found: _Found, fun: pd.DataFrame) -> None:
    from cytokit.analysis.function import HIGH_BACKGROUND

    counted = np.isfinite(_num(fun, "positive_stim"))
    for side in ("stim", "unstim"):
        pos, n = _num(fun, f"positive_{side}"), _num(fun, f"events_{side}")
        found.rows(
            "function", fun, counted & ~((pos >= 0) & (pos <= n)),
            f"0 <= positive_{side} <= events_{side}",
        )  # fmt: skip
    a, b, d = _num(fun, "pct_stim"), _num(fun, "pct_unstim"), _num(fun, "pct_net")
    lo, hi = _num(fun, "ci_low"), _num(fun, "ci_high")
    has = counted & np.isfinite(d)
    found.rows("function", fun, has & ~_close(d, a - b), "pct_net must be pct_stim - pct_unstim")
    found.rows(
        "function", fun, has & ~((lo <= d + 1e-9) & (d <= hi + 1e-9) & (lo >= -100 - 1e-9)
                                 & (hi <= 100 + 1e-9)),
        "ci_low <= pct_net <= ci_high within [-100, 100]",
    )  # fmt: skip
    flag = fun["high_background"].eq(True).to_numpy()  # empty (no numbers): not flagged
    found.rows(
        "function", fun, has & (flag != (b > HIGH_BACKGROUND)),
        f"high_background exactly when pct_unstim > {HIGH_BACKGROUND}",
    )  # fmt: skip
    found.rows(
        "function", fun, ~counted & (_text(fun, "note") == ""),
        "a row without numbers must say why (note)",
    )  # fmt: skip


def _trends(found: _Found, tr: pd.DataFrame, chim: pd.DataFrame) -> None:
    for col in ("peak_value", "auc"):
        v = _num(tr, col)
        found.rows("trends", tr, v < 0, f"{col} must be >= 0")
    status = {}
    for p, st, pop, d, s in zip(
        _text(chim, "patient"),
        _text(chim, "sample_type"),
        _text(chim, "population"),
        _num(chim, "day"),
        _text(chim, "status"),
        strict=True,
    ):
        status.setdefault((p, st, pop, d), set()).add(s)
    checks = (
        ("peak_day", {"quantified", "not_quantifiable"}),
        ("last_detectable_day", {"quantified", "not_quantifiable"}),
        ("last_quantified_day", {"quantified"}),
    )
    keys = list(
        zip(_text(tr, "patient"), _text(tr, "sample_type"), _text(tr, "population"), strict=True)
    )
    for col, allowed in checks:
        days = _num(tr, col)
        bad = [
            bool(np.isfinite(d)) and not (status.get((*k, d), set()) & allowed)
            for k, d in zip(keys, days, strict=True)
        ]
        found.rows(
            "trends", tr, bad, f"{col} must be a day with status {' or '.join(sorted(allowed))}"
        )


def _miflowcyt(found: _Found, m: pd.DataFrame, samples: pd.DataFrame) -> None:
    """Each item present with a value and no note, or missing with a note and no value;
    every analysed file has its items."""
    status, value, note = _text(m, "status"), _text(m, "value"), _text(m, "note")
    found.rows("miflowcyt", m, ~np.isin(status, ["present", "missing"]), "status is not "
               "present or missing")  # fmt: skip
    present = status == "present"
    found.rows("miflowcyt", m, present & ((value == "") | (note != "")),
               "a present item has a value and no note")  # fmt: skip
    found.rows("miflowcyt", m, ~present & ((value != "") | (note == "")),
               "a missing item has no value and says where to supply it")  # fmt: skip
    if not samples.empty:
        listed = set(_text(m, "file"))
        files = _text(samples, "file")
        found.rows("samples", samples, ~np.isin(files, list(listed)),
                   "the file has no rows in miflowcyt.csv")  # fmt: skip


def _clinical(found: _Found, tables: dict) -> None:
    """The outcome tables: probabilities in [0, 1] inside their CIs, counts that add up."""
    survival = tables.get("survival")
    if survival is not None and not survival.empty:
        est, low, high = (_num(survival, c) for c in ("estimate", "ci_low", "ci_high"))
        found.rows("survival", survival, ~((est >= 0) & (est <= 1)), "estimate must be in [0, 1]")
        has = np.isfinite(low) & np.isfinite(high)
        found.rows(
            "survival",
            survival,
            has & ~((low <= est + 1e-12) & (est <= high + 1e-12) & (low >= 0) & (high <= 1)),
            "0 <= ci_low <= estimate <= ci_high <= 1",
        )
        at_risk, events = _num(survival, "n_at_risk"), _num(survival, "n_events")
        found.rows("survival", survival, events > at_risk, "n_events must be <= n_at_risk")
    landmark = tables.get("landmark")
    if landmark is not None and not landmark.empty:
        parts = sum(
            _num(landmark, c)
            for c in (
                "n_eligible",
                "n_excluded_event",
                "n_excluded_followup",
                "n_excluded_no_sample",
            )
        ) + np.nan_to_num(_num(landmark, "n_excluded_failed"))  # older tables lack it
        found.rows(
            "landmark",
            landmark,
            ~_close(parts, _num(landmark, "n_patients")),
            "eligible and excluded patients must add up to n_patients",
        )
        groups = np.nan_to_num(_num(landmark, "n_1")) + np.nan_to_num(_num(landmark, "n_0"))
        found.rows(
            "landmark",
            landmark,
            groups > _num(landmark, "n_eligible"),
            "n_1 + n_0 must not exceed n_eligible",
        )
    escalation = tables.get("dose_escalation")
    if escalation is not None and not escalation.empty:
        dlt, evaluable = _num(escalation, "n_dlt"), _num(escalation, "n_evaluable")
        found.rows(
            "dose_escalation",
            escalation,
            (dlt > evaluable) | (evaluable > _num(escalation, "n_patients")),
            "n_dlt <= n_evaluable <= n_patients",
        )
    product = tables.get("product_qc")
    if product is not None and not product.empty:
        for name in ("nk_purity", "viability"):
            est = _num(product, f"{name}_pct")
            low, high = _num(product, f"{name}_ci_low"), _num(product, f"{name}_ci_high")
            has = np.isfinite(est)
            found.rows(
                "product_qc",
                product,
                has & ~((low <= est + 1e-9) & (est <= high + 1e-9) & (low >= 0) & (high <= 100)),
                f"0 <= {name}_ci_low <= {name}_pct <= {name}_ci_high <= 100",
            )
        dose, upper = _num(product, "cd3_per_kg"), _num(product, "cd3_per_kg_upper")
        found.rows(
            "product_qc",
            product,
            np.isfinite(dose) & ~(upper >= dose * (1 - 1e-12)),
            "cd3_per_kg_upper must be at least cd3_per_kg",
        )
    response = tables.get("response")
    if response is not None and not response.empty:
        n = _num(response, "n")
        parts = _num(response, "n_detected") + _num(response, "n_not_detected")
        found.rows("response", response, ~_close(parts, n), "n_detected + n_not_detected = n")
