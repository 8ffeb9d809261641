"""The report's multi-tube sections: NK receptor repertoire and function assays.

`repertoire_section` draws, per patient, the receptor combinations of the
repertoire population (NK when the study has it) as stacked bars by day, one
panel per origin (donor, recipient, or all cells in a tube without origin),
so that a clinician sees at a glance which repertoire the persisting cells
carry and whether it is the donor's; below it the summary rows
(single-KIR+, no KIR, no inhibitory receptor) with their intervals.

`function_section` tables, per patient, the background-subtracted %
positive of each function marker (stimulated minus unstimulated, Newcombe's
interval, the high-background flag) and plots it by day per origin.

Both read repertoire.csv and function.csv only, and return ``""`` when the
results have none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cytokit.analysis.results import Results
from cytokit.report._html import Markup, day_text, esc, figure, fmt, table
from cytokit.report.contents import min_events_of

__all__ = ["function_patient", "function_section", "repertoire_patient", "repertoire_section"]

_ORIGINS = ("donor", "recipient", "all")


def _nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty


def _population(frame: pd.DataFrame) -> str:
    """The population a section shows: NK when there, else the one with the most events."""
    names = list(dict.fromkeys(frame["population"].astype(str)))
    if "NK" in names:
        return "NK"
    totals = frame.groupby("population")["total"].max() if "total" in frame else None
    return str(totals.idxmax()) if totals is not None and len(totals) else names[0]


def _png(fig) -> bytes:
    from cytokit._figures import figure_bytes

    return figure_bytes(fig, "png")


def _min_cells(results: Results) -> int:
    """Cells below which a group is not drawn (``[qc] min_events``, 50 by default): a
    stack of 3 cells would read as a repertoire."""
    return min_events_of(results)


def _repertoire_figure(rows: pd.DataFrame, patient: str, population: str, least: int):
    combos = list(dict.fromkeys(rows["combination"]))
    origins = [o for o in _ORIGINS if o in set(rows["origin"])]
    if origins != ["all"]:
        origins = [o for o in origins if o != "all"]  # donor and recipient say more than all
    days = sorted(rows["day"].unique())
    from cytokit.plots._figure import new_figure

    # a panel wide enough for its days (17 days in 3.2 inches ran their labels together)
    per_panel = max(3.2, 0.42 * len(days) + 0.6)
    fig = new_figure(per_panel * len(origins) + 2.6, 3.4)
    axes = fig.subplots(1, len(origins), sharey=True, squeeze=False)[0]
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    x = np.arange(len(days))
    for ax, origin in zip(axes, origins, strict=True):
        mine = rows[rows["origin"] == origin]
        bottom = np.zeros(len(days))
        totals = mine.groupby("day")["total"].first().reindex(days).to_numpy(dtype=float)
        enough = np.isfinite(totals) & (totals >= least)
        for k, combo in enumerate(combos):
            pct = (
                mine[mine["combination"] == combo]
                .set_index("day")["pct"]
                .reindex(days)
                .to_numpy(dtype=float)
            )
            pct = np.where(np.isfinite(pct) & enough, pct, 0.0)
            ax.bar(x, pct, bottom=bottom, color=cmap(k % 20), width=0.7, label=combo)
            bottom += pct
        for i, n in enumerate(totals):
            ax.text(x[i], 101, f"{int(n) if np.isfinite(n) else 0}", ha="center", fontsize=6.5)
            if not enough[i]:  # a grey mark; the caption says what it means
                ax.text(x[i], 50, "–", ha="center", fontsize=9, color="0.4")
        ax.set_xticks(x, [str(d) for d in days], fontsize=7, rotation=90 if len(days) > 8 else 0)
        ax.set_xlabel("day", fontsize=8)
        ax.set_ylim(0, 108)
        ax.set_title(f"{population}, {origin}", fontsize=9)
    axes[0].set_ylabel(f"% of {population} cells")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right center", fontsize=6.5)
    fig.suptitle(f"{patient}: receptor repertoire by day", fontsize=10)
    return fig


def _repertoire_rows(results: Results) -> pd.DataFrame | None:
    rep = getattr(results, "repertoire", None)
    if not _nonempty(rep):
        return None
    rep = rep[rep["pct"].notna()]
    return None if rep.empty else rep


def repertoire_section(results: Results) -> str:
    """HTML of the receptor-repertoire section of the index (``""`` without repertoire.csv
    rows): what the per-patient plots show; each patient's are on the patient's part of the
    report (`repertoire_patient`)."""
    rep = _repertoire_rows(results)
    if rep is None:
        return ""
    population = _population(rep)
    patients = sorted(rep["patient"].astype(str).unique())
    return "\n".join(
        [
            '<section id="repertoire">',
            "<h2>Receptor repertoire</h2>",
            f"<p>Combinations of {esc(', '.join(_receptors(rep)))} among {esc(population)} "
            "cells, by day (the stacks add up to 100 %; n = the cells counted). Groups of "
            f"fewer than {_min_cells(results)} cells are not drawn, and the table gives their "
            "count only (repertoire.csv keeps their numbers). Donor and recipient cells are split "
            "where the tube carries the donor marker. Each patient's plot and table are in "
            f"the patient's section ({len(patients)} patient(s): {esc(', '.join(patients))}).</p>",
            "</section>",
        ]
    )


def repertoire_patient(results: Results, patient: str) -> str:
    """HTML of one patient's receptor repertoire: stacked bars by day and origin and the
    summary rows with intervals (``""`` when the patient has none)."""
    rep = _repertoire_rows(results)
    if rep is None:
        return ""
    population = _population(rep)
    mine = rep[(rep["patient"].astype(str) == str(patient)) & (rep["population"] == population)]
    combos = mine[mine["kind"] == "combination"]
    if combos.empty:
        return ""
    parts = [f"<h3>Receptor repertoire ({esc(population)})</h3>"]
    fig = _repertoire_figure(combos, patient, population, _min_cells(results))
    parts.append(
        figure(
            _png(fig),
            f"{patient}: {population} receptor combinations by day and origin (above each "
            f"bar: the cells counted; –: fewer than {_min_cells(results)}, not drawn)",
        )
    )
    summary = mine[mine["kind"] == "summary"].sort_values(["day", "origin", "combination"])
    least = _min_cells(results)
    rows = [
        [
            Markup(day_text(r["day"])),
            r["origin"],
            r["combination"],
            # a % of a few cells (25 % of 4, 4.6–70) is no measurement: as the function table
            "too few cells"
            if r["total"] < least
            else f"{fmt(r['pct'])} % ({fmt(r['ci_low'])}–{fmt(r['ci_high'])})",
            int(r["total"]),
        ]
        for _, r in summary.iterrows()
    ]
    if rows:
        parts.append(
            table(
                ["day", "origin", "", "% (95 % CI)", "cells"],
                rows,
                numeric=[False, False, False, True, True],
            )
        )
    parts.append(_not_measured(results, patient, set(rep["tube"].astype(str))))
    return "\n".join(parts)


def _not_measured(results: Results, patient: str, tubes: set[str]) -> str:
    """One line naming the patient's files of `tubes` that failed (their visits are
    missing from the plot and the table above), or ``""``."""
    fail = getattr(results, "failures", None)
    if not _nonempty(fail) or "tube" not in fail.columns:
        return ""
    mine = fail[(fail["patient"].astype(str) == str(patient)) & fail["tube"].isin(tubes)]
    if mine.empty:
        return ""
    listed = "; ".join(
        f"day {day_text(r['day'])}: {esc(r['file'])}" for _, r in mine.sort_values("day").iterrows()
    )
    return f'<p class="meta">Not measured (the file failed; see Failures): {listed}.</p>'


def _receptors(rep: pd.DataFrame) -> list[str]:
    first = rep.loc[rep["kind"] == "combination", "combination"]
    if first.empty:
        return []
    return [part[:-1] for part in str(first.iloc[0]).split(" ")]


def _function_figure(rows: pd.DataFrame, patient: str, population: str, least: int):
    markers = list(dict.fromkeys(rows["marker"]))
    from cytokit.plots._figure import new_figure

    fig = new_figure(3.3 * len(markers), 3.0)
    axes = fig.subplots(1, len(markers), squeeze=False)[0]
    styles = {"donor": ("C0", "o"), "recipient": ("C3", "s"), "all": ("0.4", "^")}
    for ax, marker in zip(axes, markers, strict=True):
        mine = rows[rows["marker"] == marker]
        origins = [o for o in _ORIGINS if o in set(mine["origin"])]
        if origins != ["all"]:
            origins = [o for o in origins if o != "all"]
        for j, origin in enumerate(origins):
            o = mine[(mine["origin"] == origin) & (mine["events_stim"] >= least)]
            o = o[o["events_unstim"] >= least].sort_values("day")
            colour, mark = styles[origin]
            x = o["day"].to_numpy(dtype=float) + (j - (len(origins) - 1) / 2) * 0.6
            y = o["pct_net"].to_numpy(dtype=float)
            lo = y - o["ci_low"].to_numpy(dtype=float)
            hi = o["ci_high"].to_numpy(dtype=float) - y
            ax.errorbar(x, y, yerr=[lo, hi], color=colour, marker=mark, capsize=3, label=origin)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_title(f"{marker}", fontsize=9)
        ax.set_xlabel("day")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("% positive, stimulated − unstimulated")
    fig.suptitle(f"{patient}: {population} function (95 % CI)", fontsize=10)
    return fig


def _function_rows(results: Results) -> tuple[pd.DataFrame, str] | None:
    fun = getattr(results, "function", None)
    if not _nonempty(fun):
        return None
    fun = fun[fun["pct_net"].notna()]
    if fun.empty:
        return None
    population = "NK" if "NK" in set(fun["population"]) else str(fun["population"].iloc[0])
    return fun, population


def function_section(results: Results) -> str:
    """HTML of the function-assay section of the index (``""`` without function.csv rows):
    how the values are made; each patient's plot and table are on the patient's part of
    the report (`function_patient`)."""
    got = _function_rows(results)
    if got is None:
        return ""
    fun, population = got
    patients = sorted(fun["patient"].astype(str).unique())
    return "\n".join(
        [
            '<section id="function">',
            "<h2>Function</h2>",
            f"<p>{esc(population)} cells positive after stimulation minus the unstimulated "
            "tube of the same visit (one threshold for both), with the 95 % interval of the "
            "difference; ⚠ marks an unstimulated background above 5 %. Groups of fewer than "
            f"{_min_cells(results)} cells are not drawn, and the table gives their count only "
            "(function.csv keeps their numbers). Each patient's plot and "
            f"table are in the patient's section ({len(patients)} patient(s): "
            f"{esc(', '.join(patients))}).</p>",
            "</section>",
        ]
    )


def function_patient(results: Results, patient: str) -> str:
    """HTML of one patient's function assays: net % positive by day with intervals, and the
    table with the high-background mark (``""`` when the patient has none)."""
    got = _function_rows(results)
    if got is None:
        return ""
    fun, population = got
    mine = fun[(fun["patient"].astype(str) == str(patient)) & (fun["population"] == population)]
    if mine.empty:
        return ""
    parts = [f"<h3>Function ({esc(population)})</h3>"]
    parts.append(
        figure(
            _png(_function_figure(mine, patient, population, _min_cells(results))),
            f"{patient}: background-subtracted % positive by day",
        )
    )
    least = _min_cells(results)
    rows = []
    for _, r in mine.sort_values(["day", "marker", "origin"]).iterrows():
        cells = [Markup(day_text(r["day"])), r["origin"], r["marker"]]
        if r["events_stim"] < least:  # a % of a few cells (0 % of 1) is no measurement
            cells += ["too few cells", "", "–"]
        else:
            cells += [
                f"{fmt(r['pct_stim'])} %",
                f"{fmt(r['pct_unstim'])} %" + (" ⚠" if bool(r["high_background"]) else ""),
                f"{fmt(r['pct_net'])} ({fmt(r['ci_low'])} to {fmt(r['ci_high'])})",
            ]
        rows.append([*cells, int(r["events_stim"])])
    parts.append(
        table(
            ["day", "origin", "marker", "stimulated", "unstimulated", "net pp (95 % CI)", "cells"],
            rows,
            numeric=[False, False, False, True, True, True, True],
        )
    )
    tubes = set(fun["tube"].astype(str)) | set(fun["control_tube"].astype(str))
    parts.append(_not_measured(results, patient, tubes))
    return "\n".join(parts)
