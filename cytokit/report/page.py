"""The HTML of the report: cohort summary first, a section per patient, clusters, failures.

`report_html` turns `Results` and the rendered plots (`cytokit.report.contents.ReportPlots`)
into one self-contained page (``cytokit report --single-file``). `index_html` and
`patient_html` are the pages of the default report: the index holds everything but the
patients' sections and lists the patients with a link to each one's page
(``patients/<id>.html``), which holds that patient's section; images are PNG files
referenced relatively (`cytokit.report._html.images_as_files`).

Sections: `OPTIONAL_SECTIONS` (the index, or the single page) and `PATIENT_SECTIONS`
(each patient's section, after its tables) are registries that a new kind of result
adds its renderer to. Every value read from the results goes through
`cytokit.report._html.esc` (directly or through `cytokit.report._html.table`); only HTML
built here from escaped parts is inserted as `Markup`. When files failed, a
notice at the top says how many and links to the Failures section.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pandas as pd

from cytokit._numbers import counted
from cytokit.analysis.chimerism import DETECTION_EVENTS
from cytokit.analysis.results import Results
from cytokit.analysis.trends import too_few_to_judge
from cytokit.plots._words import MEASURES, format_dose
from cytokit.report._html import (
    Markup,
    day_text,
    document,
    esc,
    figure,
    fmt,
    is_number,
    nonempty,
    table,
)
from cytokit.report.acquisition import acquisition_section
from cytokit.report.contents import (
    ReportPlots,
    cluster_markers,
    cohort_populations,
    drug_courses_of,
    min_events_of,
    patients_of,
    populations_of,
    read_cluster_tables,
)
from cytokit.report.outcomes import outcomes_section
from cytokit.report.qcplots import qc_figure_html
from cytokit.report.reasons import glossary_html
from cytokit.report.tables import (
    chimerism_table,
    cluster_summary_table,
    cohort_table,
    patient_rows,
    persistence_summary,
    phenotype_table,
    samples_table,
    series_name,
    several_types,
    sorted_by,
    thresholds_table,
    trends_table,
)
from cytokit.report.tubes import (
    function_patient,
    function_section,
    repertoire_patient,
    repertoire_section,
)

__all__ = [
    "OPTIONAL_SECTIONS",
    "PATIENT_SECTIONS",
    "index_html",
    "patient_flags",
    "patient_html",
    "report_html",
]


#: Sections a report has only for some results, one line each: anchor → (its name in the
#: page's links, the renderer, which returns "" when the results have nothing for it). The
#: links list those present; where each sits on the page is `report_html`'s.
OPTIONAL_SECTIONS = {
    "outcomes": ("Outcomes", outcomes_section),
    "acquisition-qc": ("Acquisition QC", acquisition_section),
    "repertoire": ("Repertoire", repertoire_section),
    "function": ("Function", function_section),
}

#: Sections of each patient's part of the report (after its tables, before its QC plots):
#: name → renderer(results, patient id), which returns "" when it has nothing to show.
PATIENT_SECTIONS: dict[str, Callable[[Results, str], str]] = {
    "repertoire": repertoire_patient,
    "function": function_patient,
}

#: A patient's link: (1-based position, id) → href.
PatientLink = Callable[[int, str], str]


def _anchor(index: int, pid: str) -> str:
    return f"#patient-{index}"


#: Rows above which a cohort-wide table is folded (the Infusions of a 100-patient study).
_LONG_TABLE = 20


def _header(
    results: Results,
    n_failures: int,
    patients: list[str],
    optional: dict[str, str],
    link: PatientLink | None = None,
) -> str:
    s = results.study
    name = s.get("name") or "cytokit analysis"
    strategy = s.get("strategy") or {}
    meta = [f"cytokit {esc(s.get('cytokit_version', ''))}"]
    if s.get("created"):
        meta.append(f"analysed {esc(s.get('created'))}")
    if strategy.get("source"):
        digest = esc(str(strategy.get("digest", ""))[:12])
        meta.append(f"strategy {esc(strategy.get('source'))}" + (f" ({digest})" if digest else ""))
    parts = [f"<h1>{esc(name)}</h1>", f'<p class="meta">{" · ".join(meta)}</p>']
    if n_failures:
        parts.append(
            f'<p class="alert">{counted(n_failures, "file")} could not be processed — '
            'see <a href="#failures">Failures</a>.</p>'
        )
    links = ['<a href="#cohort">Cohort</a>']
    if link is None:
        links += [f'<a href="{_anchor(i + 1, p)}">{esc(p)}</a>' for i, p in enumerate(patients)]
    else:
        links.append(f'<a href="#patients">Patients ({len(patients)})</a>')
    if nonempty(results.clusters) or (results.study.get("clustering") or {}).get("error"):
        links.append('<a href="#clusters">Clusters</a>')
    for anchor, (title, _) in OPTIONAL_SECTIONS.items():
        if optional.get(anchor):
            links.append(f'<a href="#{anchor}">{esc(title)}</a>')
    links.append(f'<a href="#failures">Failures ({n_failures})</a>')
    parts.append(f"<nav>{''.join(links)}</nav>")
    return "\n".join(parts)


def _phenotype_markers(study: dict) -> str:
    """The study's phenotype markers; with several tubes, each tube's ("CD8, CD45 (tube
    default); CD107a, IFN-g (tubes stimulated, unstimulated)": tubes with the same markers
    share one entry)."""
    tubes = study.get("tubes") or {}
    if len(tubes) < 2:
        return ", ".join((study.get("markers") or {}).get("phenotype", [])) or "–"
    by_markers: dict[str, list[str]] = {}
    for name, tube in tubes.items():
        markers = str(tube.get("phenotype_markers") or "").replace("; ", ", ") or "none"
        by_markers.setdefault(markers, []).append(str(name))
    return "; ".join(
        f"{markers} (tube{'s' if len(names) > 1 else ''} {', '.join(names)})"
        for markers, names in by_markers.items()
    )


def _cohort(results: Results, plots: ReportPlots, patients: list[str]) -> str:
    s = results.study
    meta = {str(p.get("id")): p for p in s.get("patients", [])}
    strata: dict[str, list[str]] = defaultdict(list)
    for pid in patients:
        stratum = meta.get(pid, {}).get("stratum")
        if stratum is None and "stratum" in results.samples.columns:
            vals = patient_rows(results.samples, pid)["stratum"].dropna()
            stratum = vals.iloc[0] if len(vals) else ""
        strata[str(stratum or "")].append(pid)
    me = min_events_of(results)
    ci = (s.get("qc") or {}).get("ci", "")
    markers = s.get("markers") or {}
    facts = [
        f"<li>{counted(len(patients), 'patient')}, {counted(len(results.samples), 'sample')} "
        f"analysed, {counted(len(results.failures), 'file')} failed.</li>",
        "<li>Strata: "
        + "; ".join(
            f"<b>{esc(k or 'no stratum')}</b> ({len(v)}: {esc(', '.join(v))})"
            for k, v in sorted(strata.items())
        )
        + ".</li>",
        f"<li>Donor marker(s): {esc(', '.join(markers.get('donor', [])) or '–')}; phenotype "
        f"markers: {esc(_phenotype_markers(s))}.</li>",
        f"<li>Limits: not detected below {DETECTION_EVENTS} donor events, not quantifiable "
        f"(NQ) below [qc] min_events = {me}; chimerism intervals: 95 % {esc(ci or 'binomial')}."
        "</li>",
    ]
    parts = ['<section id="cohort">', "<h2>Cohort</h2>", f"<ul>{''.join(facts)}</ul>"]
    pops = s.get("populations") or {}
    if pops:
        parts.append(table(["population", "gate path"], list(pops.items()), caption="Populations"))
    if nonempty(results.infusions):
        inf = sorted_by(results.infusions, "patient", "day")
        rows = [
            [
                r.get("patient"),
                r.get("stratum"),
                Markup(day_text(r.get("day"))),
                r.get("product"),
                format_dose(r.get("dose_per_kg")),
            ]
            for _, r in inf.iterrows()
        ]
        html = table(
            ["patient", "stratum", "day", "product", "dose"],
            rows,
            caption="Infusions",
            numeric=[False, False, True, False, True],
        )
        if len(rows) > _LONG_TABLE:  # a large study's schedule: folded, each patient lists theirs
            html = f"<details><summary>Infusions ({len(rows)})</summary>{html}</details>"
        parts.append(html)
    parts.append(cohort_table(results.cohort, cohort_populations(results), results.trends))
    parts.append(persistence_summary(results.trends, patients))
    for measure, png in plots.cohort.items():
        parts.append(
            figure(
                png,
                f"Cohort: {MEASURES[measure]} over time, one colour per patient (named at "
                "the line's end), line style by stratum; open circles not quantifiable, open triangles not detected (at the "
                "limit of detection); carets mark infusions.",
            )
        )
    parts.append("</section>")
    return "\n".join(parts)


def _flags(results: Results, pid: str, me: int) -> list[str]:
    """Short HTML items: failures, donor cells before infusion, small populations, notes."""
    items: list[str] = []
    for _, f in patient_rows(results.failures, pid).iterrows():
        items.append(
            f"<b>{esc(f.get('file'))}</b> could not be processed ({esc(f.get('stage'))}): "
            f"{esc(f.get('reason'))}"
        )
    chim = patient_rows(results.chimerism, pid)
    if not chim.empty:
        day = pd.to_numeric(chim["day"], errors="coerce")
        status = chim.get("status", pd.Series("", index=chim.index)).astype(str)
        # each sample type is a series of its own (as in trends.csv): named where several
        typed = several_types(chim)
        pre = chim[(day < 0) & status.isin(["quantified", "not_quantifiable"])]
        for _, r in sorted_by(pre, "day", "population").iterrows():
            name = series_name(r.get("population"), r.get("sample_type"), typed)
            items.append(
                f"donor {esc(name)} cells detected before the first infusion "
                f"(day {day_text(r.get('day'))}: {fmt(r.get('donor_events'), integer=True)} donor "
                "events): check the donor-marker threshold"
            )
        events = pd.to_numeric(chim.get("events"), errors="coerce")
        small = chim[events < me]
        for name, g in _by_series(small, typed):
            detail = ", ".join(
                f"day {day_text(d)} ({fmt(n, integer=True)})"
                for d, n in zip(g["day"], g["events"], strict=True)
            )
            items.append(
                f"{esc(name)}: fewer than {me} events in the population on {detail}: chimerism "
                "not quantifiable there"
            )
        after = chim[(day >= 0) & status.isin(["not_detected", "not_quantifiable"])]
        for name, g in _by_series(after, typed):
            # not detected in a population too small to judge says nothing of absence
            small = too_few_to_judge(pd.to_numeric(g["events"], errors="coerce"))
            said = {"not detected": [], "too few cells to judge": [], "not quantifiable": []}
            for d, s, tiny in zip(g["day"], g["status"], small, strict=True):
                word = "not quantifiable"
                if s == "not_detected":
                    word = "too few cells to judge" if tiny else "not detected"
                said[word].append(day_text(d))
            parts = [f"{w} on day {', '.join(days)}" for w, days in said.items() if days]
            items.append(f"donor {esc(name)}: " + "; ".join(parts))
    samples = patient_rows(results.samples, pid)
    counted = samples
    chim = results.chimerism
    if "tube" in samples.columns and "tube" in chim.columns and len(chim):
        # absolute counts come from the chimerism tube: a receptor or function tube has no
        # beads by design, and each of its files would repeat its day
        counted = samples[samples["tube"].isin(set(chim["tube"].dropna()))]
    if "count_method" in counted.columns:
        method = counted["count_method"]
        none = counted[method.isna() | (method.astype(str) == "")]
        if len(none) and len(none) < len(counted):
            days = ", ".join(dict.fromkeys(day_text(d) for d in sorted_by(none, "day")["day"]))
            items.append(f"no absolute counts on day {days} (no counting reference)")
    if "warnings" in samples.columns:
        for _, r in sorted_by(samples, "day").iterrows():
            text = r.get("warnings")
            if isinstance(text, str) and text.strip():
                items.append(
                    f"day {day_text(r.get('day'))} ({esc(r.get('file'))}): {esc(text.strip())}"
                )
    if "qc_verdict" in samples.columns:
        warned = samples[samples["qc_verdict"].astype(str) == "warn"]
        for _, r in sorted_by(warned, "day").iterrows():
            items.append(
                f"day {day_text(r.get('day'))} ({esc(r.get('file'))}): acquisition QC warns: "
                f"{esc(r.get('qc_reason'))}"
            )
    failed_files = set()
    if "donor_marker_check" in samples.columns:
        failed = samples[samples["donor_marker_check"].astype(str) == "failed"]
        failed_files = set(failed["file"].astype(str))
        for _, r in sorted_by(failed, "day").iterrows():
            items.append(
                f"day {day_text(r.get('day'))} ({esc(r.get('file'))}): donor marker unusable, "
                f"no chimerism for this sample: {esc(r.get('donor_marker_note'))}"
            )
    th = patient_rows(results.thresholds, pid)
    if not th.empty:
        donor = th["purpose"].astype(str) == "donor" if "purpose" in th.columns else True
        donor = donor & ~th["file"].astype(str).isin(failed_files)
        bad = th[donor & pd.to_numeric(th.get("threshold"), errors="coerce").isna()]
        for _, r in sorted_by(bad, "day", "marker").iterrows():
            items.append(
                f"day {day_text(r.get('day'))}: no {esc(r.get('marker'))} threshold "
                f"({esc(r.get('method'))}) {esc(r.get('note'))}"
            )
    qc = patient_rows(results.qc, pid)
    if "note" in qc.columns:
        for _, r in sorted_by(
            qc[qc["note"].notna() & (qc["note"].astype(str) != "")], "day"
        ).iterrows():
            items.append(
                f"day {day_text(r.get('day'))}, gate {esc(r.get('gate_id'))}: {esc(r.get('note'))}"
            )
    return items


def _by_series(chim: pd.DataFrame, typed: bool) -> list[tuple[str, pd.DataFrame]]:
    """A patient's chimerism rows per series, by population, then sample type where the
    patient has several (`typed`): each series' name and its rows by day."""
    if chim.empty:
        return []
    kind = chim.get("sample_type", pd.Series("", index=chim.index)).fillna("").astype(str)
    keys = [chim["population"].astype(str), kind if typed else pd.Series("", index=chim.index)]
    return [
        (series_name(pop, t, typed), sorted_by(g, "day"))
        for (pop, t), g in chim.groupby(keys, sort=True)
    ]


def _too_small(chim: pd.DataFrame) -> set[tuple[str, str]]:
    """(sample type, population) of the series whose every measured day on or after day 0
    was too small to judge chimerism (a day whose file or marker failed is not measured);
    each sample type is a series of its own, as in trends.csv."""
    if chim.empty or not {"population", "day", "events"} <= set(chim.columns):
        return set()
    day = pd.to_numeric(chim["day"], errors="coerce")
    status = chim.get("status", pd.Series("", index=chim.index)).astype(str)
    kind = chim.get("sample_type", pd.Series("", index=chim.index)).fillna("").astype(str)
    measured = ((day >= 0) & (status != "marker_failed")).to_numpy()
    rows = chim[measured]
    keys = [kind.to_numpy()[measured], rows["population"].astype(str).to_numpy()]
    out = set()
    for key, g in rows.groupby(keys):
        if too_few_to_judge(pd.to_numeric(g["events"], errors="coerce")).all():
            out.add((str(key[0]), str(key[1])))
    return out


def _patient(
    results: Results,
    plots: ReportPlots,
    pid: str,
    index: int,
    pops: list[str],
    flags: list[str] | None = None,
    cohort: str = "",
) -> str:
    """One patient's section; `cohort`: the page holding the acquisition-QC section
    (``""``: this one)."""
    meta = next((p for p in results.study.get("patients", []) if str(p.get("id")) == pid), {})
    samples = patient_rows(results.samples, pid)
    stratum = meta.get("stratum")
    if stratum is None and "stratum" in samples.columns and len(samples):
        stratum = samples["stratum"].iloc[0]
    me = min_events_of(results)
    parts = [
        f'<section id="patient-{index}">',
        f"<h2>Patient {esc(pid)}"
        + (f'<span class="badge">{esc(stratum)}</span>' if esc(stratum) else "")
        + "</h2>",
    ]
    facts = []
    if meta.get("donor_marker"):
        facts.append(
            f"donor marker {esc(meta.get('donor_marker'))}, donor cells "
            f"{esc(meta.get('donor_is', ''))}"
        )
    days = meta.get("days") or sorted(
        {float(d) for d in pd.to_numeric(samples.get("day"), errors="coerce").dropna()}
    )
    if days:
        facts.append("sampled on day " + ", ".join(day_text(d) for d in days))
    inf = sorted_by(patient_rows(results.infusions, pid), "day")
    if not inf.empty:
        facts.append(
            "infusions: "
            + "; ".join(
                f"day {day_text(r.get('day'))}: {esc(r.get('product'))} "
                f"{esc(format_dose(r.get('dose_per_kg')))}".rstrip()
                for _, r in inf.iterrows()
            )
        )
    courses = patient_rows(drug_courses_of(results), pid)
    if not courses.empty:
        facts.append(
            "drugs: "
            + "; ".join(
                f"{esc(r.get('product'))} day {day_text(r.get('start_day'))}"
                + (
                    f"–{day_text(r.get('end_day'))}"
                    if r.get("end_day") != r.get("start_day")
                    else ""
                )
                for _, r in courses.iterrows()
            )
        )
    if facts:
        parts.append(f'<p class="meta">{" · ".join(facts)}</p>')
    if flags is None:
        flags = _flags(results, pid, me)
    if flags:
        parts.append("<h3>QC flags</h3>")
        parts.append('<ul class="flags">' + "".join(f"<li>{f}</li>" for f in flags) + "</ul>")
    small = _too_small(patient_rows(results.chimerism, pid))
    parts.append(trends_table(patient_rows(results.trends, pid), pops, small=small))
    measure = plots.persistence_measure.get(pid, "donor_per_ul")
    parts.append(
        figure(
            plots.persistence.get(pid),
            f"{pid}: {MEASURES[measure]} by population (log scale; 95 % intervals; dashed: "
            "limit of quantification; open triangles: not detected, drawn at the limit of "
            "detection; dotted: infusions"
            + ("; shaded: drug courses" if not courses.empty else "")
            + ").",
        )
    )
    parts.append(figure(plots.chimerism.get(pid), f"{pid}: donor chimerism with 95 % intervals."))
    failed = patient_rows(results.failures, pid)
    parts.append(chimerism_table(patient_rows(results.chimerism, pid), pops, failed))
    parts.append(
        samples_table(samples, patient_rows(results.counts, pid), pops, failed, qc_link=cohort)
    )
    pheno = phenotype_table(patient_rows(results.phenotype, pid))
    if pheno:
        parts.append(f"<details><summary>Phenotype</summary>{pheno}</details>")
    th = thresholds_table(patient_rows(results.thresholds, pid))
    if th:
        parts.append(f"<details><summary>Donor-marker thresholds</summary>{th}</details>")
    parts += [render(results, pid) for render in PATIENT_SECTIONS.values()]
    parts.append(_qc_plots(results, plots, pid))
    parts.append("</section>")
    html = "\n".join(p for p in parts if p)
    # the notes of failed files and days point at the Failures section of the cohort page
    return html.replace("see Failures)", f'see <a href="{esc(cohort)}#failures">Failures</a>)')


def _qc_plots(results: Results, plots: ReportPlots, pid: str) -> str:
    qc = patient_rows(results.qc, pid)
    if qc.empty or "sample" not in qc.columns:
        return ""
    firsts = sorted_by(qc.drop_duplicates("sample"), "day", "file")
    items = []
    for _, r in firsts.iterrows():
        sample = str(r["sample"])
        label = f"day {day_text(r.get('day'))}: {esc(r.get('file'))}"
        png = plots.qc.get(sample)
        if png is None:
            why = plots.qc_missing.get(sample, "not drawn")
            items.append(f"<p>QC plot of {label}: {esc(why)}.</p>")
            continue
        figure_html = qc_figure_html(png, str(r.get("file")))
        items.append(f"<details><summary>{label}</summary>{figure_html}</details>")
    return "<h3>QC: gates on each sample</h3>\n" + "\n".join(items)


def _clusters(results: Results, plots: ReportPlots) -> str:
    clusters, summary, matching = read_cluster_tables(results)
    info = results.study.get("clustering") or {}
    if not nonempty(clusters):
        if info.get("error"):
            return (
                '<section id="clusters"><h2>Clusters</h2><p class="alert">Clustering failed: '
                f"{esc(info.get('error'))}</p></section>"
            )
        return ""
    parts = ['<section id="clusters">', "<h2>Clusters</h2>"]
    grid = info.get("grid") or []
    text = [
        f"{fmt(clusters['metacluster'].nunique(), integer=True)} metaclusters"
        if "metacluster" in clusters.columns
        else "metaclusters",
        "of a self-organising map"
        + (f" ({' × '.join(esc(g) for g in grid)})" if grid else "")
        + f" on {esc(', '.join(cluster_markers(results)) or '–')}",
    ]
    if is_number(info.get("events")):
        text.append(f"{fmt(info.get('events'), integer=True)} events of {esc(info.get('parent'))}")
    if is_number(info.get("seed")):
        text.append(f"seed {esc(info.get('seed'))}")
    parts.append(f"<p>{', '.join(text)}.</p>")
    for png, caption in plots.clusters:
        parts.append(figure(png, caption))
    if nonempty(summary):
        parts.append(cluster_summary_table(summary))
    if nonempty(matching):
        rows = [
            [Markup(fmt(v)) if is_number(v) and not isinstance(v, str) else v for v in row]
            for row in matching.itertuples(index=False)
        ]
        parts.append(
            table(
                list(matching.columns),
                rows,
                caption="Study populations and the metaclusters matching them (cluster_matching.csv)",
            )
        )
    parts.append("</section>")
    return "\n".join(parts)


def _failures(results: Results) -> str:
    f = results.failures
    parts = ['<section id="failures">', "<h2>Failures</h2>"]
    if not nonempty(f):
        parts.append('<p class="ok">Every file was processed.</p>')
    else:
        qc = "stage" in f and (f["stage"] == "acquisition_qc").any()
        also = (
            " (a file acquisition QC failed keeps its QC plot, under Acquisition QC, to show why)"
            if qc
            else ""
        )
        parts.append(
            f'<p class="alert">{counted(len(f), "file")} could not be processed; '
            f"{'it has' if len(f) == 1 else 'they have'} no "
            f"counts or donor values in the tables and plots above{also}.</p>"
        )
        rows = [
            [
                r.get("file"),
                r.get("patient"),
                Markup(day_text(r.get("day"))),
                r.get("stage"),
                r.get("reason"),
            ]
            for _, r in f.iterrows()
        ]
        parts.append(table(["file", "patient", "day", "stage", "reason"], rows))
    parts.append("</section>")
    return "\n".join(parts)


def _why(results: Results, pid: str | None = None) -> str:
    trends = results.trends if pid is None else patient_rows(results.trends, pid)
    if not nonempty(trends) or "half_life_note" not in trends.columns:
        return ""
    return glossary_html(trends["half_life_note"])


def patient_flags(results: Results) -> dict[str, list[str]]:
    """Each patient's QC flags (the items of their section's "QC flags" list)."""
    me = min_events_of(results)
    return {pid: _flags(results, pid, me) for pid in patients_of(results)}


def _patient_list(
    results: Results, patients: list[str], link: PatientLink, flags: dict[str, list[str]]
) -> str:
    """The index's list of patients: a row each, linked to the patient's page."""
    meta = {str(p.get("id")): p for p in results.study.get("patients", [])}
    rows = []
    for i, pid in enumerate(patients):
        samples = patient_rows(results.samples, pid)
        stratum = meta.get(pid, {}).get("stratum")
        if stratum is None and "stratum" in samples.columns and len(samples):
            stratum = samples["stratum"].iloc[0]
        days = sorted(
            {float(d) for d in pd.to_numeric(samples.get("day"), errors="coerce").dropna()}
        )
        fails = patient_rows(results.failures, pid)
        failed = len(fails)
        # a day whose every file failed is a day of the patient's too, said as failed (a
        # study whose files all failed QC showed no day at all)
        lost = {float(d) for d in pd.to_numeric(fails.get("day"), errors="coerce").dropna()}
        shown = [day_text(d) for d in days] + [
            f"{day_text(d)} (failed)" for d in sorted(lost - set(days))
        ]
        rows.append(
            [
                Markup(f'<a href="{esc(link(i + 1, pid))}">{esc(pid)}</a>'),
                stratum,
                Markup(fmt(len(samples), integer=True)),
                ", ".join(shown),
                Markup(fmt(len(flags[pid]), integer=True)),
                Markup(fmt(failed, integer=True)),
            ]
        )
    return (
        '<section id="patients"><h2>Patients</h2>'
        + table(
            ["patient", "stratum", "samples", "days", "QC flags", "failed files"],
            rows,
            caption="Each patient's page: plots, tables, QC flags and gates on each sample",
            numeric=[False, False, True, False, True, True],
        )
        + "</section>"
    )


def index_html(
    results: Results,
    plots: ReportPlots,
    link: PatientLink,
    flags: dict[str, list[str]] | None = None,
) -> str:
    """The index page of the multi-page report: everything but the patients' sections, and
    the list of patients, each linked by `link` to their page (`flags`: `patient_flags`,
    computed here when not given)."""
    patients = patients_of(results)
    flags = patient_flags(results) if flags is None else flags
    n_fail = len(results.failures) if nonempty(results.failures) else 0
    optional = {anchor: render(results) for anchor, (_, render) in OPTIONAL_SECTIONS.items()}
    body = [
        _header(results, n_fail, patients, optional, link),
        optional["outcomes"],
        _cohort(results, plots, patients),
        _patient_list(results, patients, link, flags),
        _clusters(results, plots),
        *[html for anchor, html in optional.items() if anchor != "outcomes"],
        _failures(results),
        _why(results),
    ]
    name = results.study.get("name") or "cytokit analysis"
    return document(f"{name} — cytokit report", "\n".join(b for b in body if b))


def patient_html(
    results: Results,
    plots: ReportPlots,
    pid: str,
    *,
    index: str,
    link: PatientLink,
    flags: list[str] | None = None,
) -> str:
    """One patient's page of the multi-page report: a way back to the `index` page and to
    the patients before and after, the patient's section, the reasons it cites."""
    patients = patients_of(results)
    i = patients.index(pid)
    name = results.study.get("name") or "cytokit analysis"
    nav = [f'<a href="{esc(index)}">{esc(name)}: cohort</a>']
    if i > 0:
        nav.append(f'<a href="{esc(link(i, patients[i - 1]))}">← {esc(patients[i - 1])}</a>')
    if i + 1 < len(patients):
        nav.append(f'<a href="{esc(link(i + 2, patients[i + 1]))}">{esc(patients[i + 1])} →</a>')
    body = [
        f"<nav>{''.join(nav)}</nav>",
        _patient(results, plots, pid, i + 1, populations_of(results), flags, cohort=index),
        _why(results, pid),
    ]
    return document(f"{pid} — {name} — cytokit report", "\n".join(b for b in body if b))


def report_html(results: Results, plots: ReportPlots) -> str:
    """The report page of `results` with the figures of `plots` (see the module docstring)."""
    patients = patients_of(results)
    pops = populations_of(results)
    n_fail = len(results.failures) if nonempty(results.failures) else 0
    optional = {anchor: render(results) for anchor, (_, render) in OPTIONAL_SECTIONS.items()}
    body = [
        _header(results, n_fail, patients, optional),
        optional["outcomes"],
        _cohort(results, plots, patients),
        *[_patient(results, plots, pid, i + 1, pops) for i, pid in enumerate(patients)],
        optional["repertoire"],
        optional["function"],
        _clusters(results, plots),
        *[html for anchor, html in optional.items() if anchor != "outcomes"],
        _failures(results),
        _why(results),
    ]
    name = results.study.get("name") or "cytokit analysis"
    return document(f"{name} — cytokit report", "\n".join(b for b in body if b))
