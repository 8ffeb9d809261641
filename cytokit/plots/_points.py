"""What the persistence and chimerism plots draw, apart from how: points, limits, fitted
decays and treatment marks from the results tables, without a plotting library.

Both renderers read these: `cytokit.plots.persistence` (matplotlib figures, for users
who restyle them) and `cytokit.plots.persistence_svg` (the report's SVG, drawn in
milliseconds). The conventions are described in `cytokit.plots.persistence`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytokit.analysis.chimerism import DETECTION_EVENTS, MARKER_FAILED
from cytokit.analysis.trends import MAX_PCT_LOD as TRENDS_MAX_PCT_LOD
from cytokit.analysis.trends import decay_band, decay_covariances, decay_phases, too_few_to_judge
from cytokit.plots._words import MEASURES, format_dose

__all__ = [
    "COURSE_COLOUR",
    "DODGE",
    "LEGEND_MARKS",
    "MAX_PCT_LOD",
    "PATIENT_PALETTE",
    "POPULATION_STYLES",
    "STATUS_STYLE",
    "STRATUM_STYLES",
    "TREATMENT_STYLE",
    "CohortPlan",
    "PatientPlan",
    "cohort_plan",
    "dodge_steps",
    "finite",
    "fit_lines",
    "infusion_text",
    "label_rows",
    "legend_marks",
    "log_limits",
    "measure_points",
    "panel_grid",
    "patient_plan",
    "patient_rows",
    "patient_strata",
    "poisson_interval",
    "population_order",
    "stratum_colours",
    "treatment_kind",
]

#: Marker styles of the chimerism statuses (see `cytokit.analysis.chimerism`).
STATUS_STYLE = {
    "quantified": {"marker": "o", "filled": True, "label": "quantified"},
    "not_quantifiable": {"marker": "o", "filled": False, "label": "not quantifiable (< LOQ)"},
    "not_detected": {"marker": "v", "filled": False, "label": "not detected (plotted at the LOD)"},
}


def infusion_text(row) -> str:
    """``"CIK 3×10⁶/kg"`` from an infusions row (product, dose_per_kg)."""
    product = "" if pd.isna(row.get("product")) else str(row.get("product"))
    return " ".join(s for s in (product, format_dose(row.get("dose_per_kg"))) if s)


def label_rows(
    centres: Sequence[float], widths: Sequence[float], left: float, right: float, rows: int = 2
) -> list[tuple[int, float, str] | None]:
    """Where each treatment label goes above its panel: ``(row, x, anchor)`` or ``None``.

    `centres` are the labels' lines in drawing units, in the order drawn, and
    `widths` their widths; a label is centred on its line but kept within
    ``left``–``right`` (its ``x`` is then that edge, anchored ``start`` or
    ``end``). Each takes the first of `rows` rows where it clears the labels
    already there by 2 units; one that fits in no row is ``None``: its line
    and caret are drawn without it (the patient's page lists every
    infusion). Close infusions (weekly doses on a few weeks' axis) thus
    never print over each other.
    """
    ends = [-math.inf] * rows
    out: list[tuple[int, float, str] | None] = []
    for centre, width in zip(centres, widths, strict=True):
        start, x, anchor = centre - width / 2, centre, "middle"
        if start + width > right:
            start, x, anchor = right - width, right, "end"
        if start < left:
            start, x, anchor = left, left, "start"
        row = next((i for i, end in enumerate(ends) if start >= end), None)
        if row is None:
            out.append(None)
            continue
        ends[row] = start + width + 2.0
        out.append((row, x, anchor))
    return out


#: How a treatment row is drawn, by its ``kind`` (rows without one are cell products).
TREATMENT_STYLE = {
    "cell product": {"colour": "0.3", "ls": ":", "marker": "v"},
    "drug": {"colour": "tab:purple", "ls": (0, (4, 3)), "marker": "D"},
}


def treatment_kind(row) -> str:
    """``"drug"`` for a row whose ``kind`` says so (IL-2 and the like), else ``"cell product"``."""
    kind = str(row.get("kind", "") or "").strip().lower()
    return "drug" if kind == "drug" else "cell product"


def finite(values) -> np.ndarray:
    """`values` as float64 with missing values as NaN."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)


#: Largest % donor detection limit drawn (population of at least 80 events): a
#: not-detected point whose limit is higher is "too few cells" and drawn on no % axis
#: (the trends read it as missing: `cytokit.analysis.trends.judged_values`).
MAX_PCT_LOD = TRENDS_MAX_PCT_LOD
_Z = 1.959963984540054


def poisson_interval(k, z: float = _Z) -> tuple[np.ndarray, np.ndarray]:
    """Score interval of a Poisson count `k` (array): ``k + z²/2 ± z·sqrt(k + z²/4)``."""
    k = np.asarray(k, dtype=np.float64)
    centre = k + z * z / 2.0
    half = z * np.sqrt(np.maximum(k, 0.0) + z * z / 4.0)
    return np.maximum(centre - half, 0.0), centre + half


def _event_factor(rows: pd.DataFrame, samples: pd.DataFrame | None) -> np.ndarray:
    """Cells/µL per event of each row's file (NaN without absolute counting)."""
    events = finite(rows.get("events", np.nan))
    per_ul = finite(rows.get("per_ul", np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(events > 0, per_ul / events, np.nan)
    if (
        samples is not None
        and not samples.empty
        and {"reference_per_ul", "reference_events"} <= (set(samples.columns))
    ):
        ref = samples.drop_duplicates("file").set_index("file")
        ref_per_ul = finite(rows["file"].map(ref["reference_per_ul"]))
        ref_events = finite(rows["file"].map(ref["reference_events"]))
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(ref_events > 0, ref_per_ul / ref_events, np.nan)
        f = np.where(np.isfinite(f), f, g)
    return f


def measure_points(
    chimerism: pd.DataFrame,
    measure: str = "donor_per_ul",
    *,
    samples: pd.DataFrame | None = None,
    min_events: int = 50,
) -> pd.DataFrame:
    """The points of `measure` to plot, with intervals, limits and plotted positions.

    Parameters
    ----------
    chimerism : DataFrame
        Rows of chimerism.csv.
    measure : {"donor_per_ul", "donor_pct"}
    samples : DataFrame, optional
        samples.csv (reference counts of files whose population has no events).
    min_events : int
        ``[qc] min_events``: the LOQ in donor events.

    Returns
    -------
    DataFrame
        The input's ``patient, day, file, population, sample_type, status``
        plus ``value, low, high, lod, loq`` (NaN where unknown) and ``y``, the
        plotted position (`value`, or `lod` for not-detected points; NaN: not
        drawn), in the input's order (see the module docstring).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure={measure!r} must be one of {', '.join(MEASURES)}")
    rows = chimerism.reset_index(drop=True)
    keep = [
        c
        for c in ("patient", "day", "file", "population", "sample_type", "status")
        if c in rows.columns
    ]
    out = rows[keep].copy()
    if "sample_type" not in out.columns:
        out["sample_type"] = ""
    out["sample_type"] = out["sample_type"].fillna("").astype(str)
    out["status"] = rows.get("status", pd.Series("", index=rows.index)).fillna("").astype(str)
    value = finite(rows.get(measure, np.nan))
    donor = finite(rows.get("donor_events", np.nan))
    events = finite(rows.get("events", np.nan))
    if measure == "donor_pct":
        low, high = finite(rows.get("ci_low", np.nan)), finite(rows.get("ci_high", np.nan))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_event = np.where(events > 0, 100.0 / events, np.nan)
    else:
        per_event = _event_factor(rows, samples)
        lo_k, hi_k = poisson_interval(np.where(np.isfinite(donor), donor, np.nan))
        low, high = lo_k * per_event, hi_k * per_event
    out["value"], out["low"], out["high"] = value, low, high
    out["lod"] = DETECTION_EVENTS * per_event
    out["loq"] = float(min_events) * per_event
    nd = (out["status"] == "not_detected").to_numpy() | ~(value > 0)
    out["y"] = np.where(nd, out["lod"], value)
    out.loc[~(out["y"] > 0) | (out["status"] == MARKER_FAILED).to_numpy(), "y"] = np.nan
    out["too_few"] = False
    if measure == "donor_pct":
        # a "not detected" bound above MAX_PCT_LOD says nothing a reader can use (and
        # above 100 % nothing at all): the population was too small to judge chimerism
        too_few = nd & too_few_to_judge(events) & (out["status"] != MARKER_FAILED).to_numpy()
        out["too_few"] = too_few
        out.loc[too_few, "y"] = np.nan
        out["high"] = np.minimum(out["high"], 100.0)
        out.loc[out["y"] > 100.0, "y"] = 100.0
    return out


def _days_text(x: float) -> str:
    """Three significant digits, as the report's tables give the same half-life."""
    a = abs(x)
    if a == 0 or not math.isfinite(a):
        return f"{x:g}"
    return f"{x:,.{max(0, 2 - math.floor(math.log10(a)))}f}"


#: Days drawn per fitted phase (the band is curved on a log axis).
_FIT_POINTS = 25


def fit_lines(trends: pd.DataFrame | None, patient, population, measure, sample_type=""):
    """The fitted decay of one series: ``(label, [(days, values, low, high), ...])`` per
    phase (``low``, ``high``: the 95 % band, None without ``half_life_cov``), or None
    where trends.csv has no estimated half-life for it."""
    if trends is None or trends.empty or "half_life_phases" not in trends.columns:
        return None
    types = trends.get("sample_type", pd.Series("", index=trends.index)).fillna("").astype(str)
    sel = trends[
        (trends["patient"].astype(str) == str(patient))
        & (trends["population"].astype(str) == str(population))
        & (trends["measure"] == measure)
        & (types == str(sample_type))
    ]
    if sel.empty:
        return None
    row = sel.iloc[0]
    num = {
        c: float(pd.to_numeric(row.get(c), errors="coerce"))
        for c in ("half_life_days", "half_life_ci_low", "half_life_ci_high", "half_life_slope",
                  "half_life_quantile")
    }  # fmt: skip
    phases = decay_phases(row.get("half_life_phases"))
    if not (math.isfinite(num["half_life_days"]) and math.isfinite(num["half_life_slope"])):
        return None
    if not phases:
        return None
    label = f"t½ = {_days_text(num['half_life_days'])} d"
    lo, hi = num["half_life_ci_low"], num["half_life_ci_high"]
    if math.isfinite(lo) and math.isfinite(hi):
        label += f" (95 % CI {_days_text(lo)}–{_days_text(hi)})"
    covs = decay_covariances(row.get("half_life_cov"))
    band = len(covs) == len(phases) and math.isfinite(num["half_life_quantile"])
    segs = []
    for i, (start, end, value) in enumerate(phases):
        d = np.linspace(start, end, _FIT_POINTS if end > start else 1)
        if band:
            fit, low, high = decay_band(
                d, start, value, num["half_life_slope"], covs[i], num["half_life_quantile"]
            )
            segs.append((d, fit, low, high))
        else:
            segs.append((d, value * np.exp(num["half_life_slope"] * (d - start)), None, None))
    return label, segs


def patient_rows(frame: pd.DataFrame | None, patient) -> pd.DataFrame | None:
    if frame is None or frame.empty or "patient" not in frame.columns:
        return None
    return frame[frame["patient"].astype(str) == str(patient)]


def population_order(rows: pd.DataFrame, populations: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(rows["population"].astype(str)))
    if populations is None:
        return present
    return [p for p in populations if p in present] + [p for p in present if p not in populations]


@dataclass(frozen=True)
class PatientPlan:
    """What a patient's persistence or chimerism figure draws, whichever renderer
    (`patient_plan`): the points of the measure (`measure_points`), the patient's
    infusions and drug courses (None without), and the populations in panel order."""

    points: pd.DataFrame
    infusions: pd.DataFrame | None
    courses: pd.DataFrame | None
    names: list[str]


def patient_plan(
    chimerism: pd.DataFrame,
    patient,
    measure: str,
    *,
    samples: pd.DataFrame | None = None,
    infusions: pd.DataFrame | None = None,
    courses: pd.DataFrame | None = None,
    min_events: int = 50,
    populations: Sequence[str] | None = None,
) -> PatientPlan:
    """One patient's `PatientPlan` from the tables (arguments as `measure_points`,
    `population_order`)."""
    rows = patient_rows(chimerism, patient)
    rows = rows if rows is not None else pd.DataFrame(columns=["population", "day"])
    return PatientPlan(
        measure_points(rows, measure, samples=samples, min_events=min_events),
        patient_rows(infusions, patient),
        patient_rows(courses, patient),
        population_order(rows, populations),
    )


def panel_grid(n: int) -> tuple[int, int, bool]:
    """(columns, rows, whether a slot is left over) of a grid of `n` panels, 3 a row at most."""
    ncols = min(3, n)
    nrows = -(-n // ncols)
    return ncols, nrows, nrows * ncols > n


def dodge_steps(n: int, span: float) -> list[float]:
    """Sideways step (days) of each of `n` populations drawn on one axis over `span` days:
    `DODGE` of the span apart, centred, so a population and its subset with the same values
    (NK and NK_dim) are both seen."""
    return [(i - (n - 1) / 2) * DODGE * span for i in range(n)]


#: A colour per patient in the cohort plots, in turn (matplotlib's tab10 names).
PATIENT_PALETTE = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown",
                                        "pink", "olive", "cyan", "gray")]  # fmt: skip
#: Line style of each stratum in the cohort plots, in turn.
STRATUM_STYLES = ["-", "--", ":", "-."]


def stratum_colours(strata: Sequence[str]) -> dict[str, str]:
    """A fixed colour per stratum, in sorted order (the same on every figure)."""
    return {s: f"C{i % 10}" for i, s in enumerate(sorted({str(x) for x in strata}))}


def patient_strata(chimerism: pd.DataFrame, patients_meta: Sequence[dict] | None) -> dict[str, str]:
    """Each patient's stratum: study.json's ``patients`` first, else the table's column."""
    out: dict[str, str] = {}
    for p in patients_meta or ():
        out[str(p.get("id"))] = "" if p.get("stratum") is None else str(p.get("stratum"))
    if "stratum" in chimerism.columns:
        for pid, s in zip(chimerism["patient"].astype(str), chimerism["stratum"], strict=True):
            out.setdefault(pid, "" if pd.isna(s) else str(s))
    return out


#: Colour of shaded drug courses.
COURSE_COLOUR = "#e6a23c"
#: Line style of each population on the chimerism plot, in turn (with its colour); never
#: dotted, the infusions' style.
POPULATION_STYLES = ("-", "--", "-.", (0, (6, 2, 1, 2, 1, 2)))
#: Horizontal offset between populations on the chimerism plot, as a share of the days.
DODGE = 0.004


def log_limits(values, headroom: float = 3.0) -> tuple[float, float] | None:
    """A log axis over the positive `values`: from the lowest / 1.6 to the highest ×
    `headroom` (room for the infusion labels), at least 1.5 decades; None without one."""
    v = finite(values)
    v = v[v > 0]
    if not v.size:
        return None
    lo, hi = float(v.min()) / 1.6, float(v.max()) * headroom
    if hi / lo < 10**1.5:
        mid = math.sqrt(lo * hi)
        lo, hi = mid / 10**0.75, mid * 10**0.75
    return lo, hi


#: The entries of the persistence and chimerism legends after the statuses: label,
#: colour (a grey level), marker ("" for none), line style (None for none), filled marker.
LEGEND_MARKS = {
    "failed": {"label": "failed (donor marker or file): no value", "colour": "0.2", "marker": "x",
               "ls": None},
    "too_few": {"label": "too few cells to judge (< 80 events)", "colour": "0.55", "marker": "|",
                "ls": None},
    "loq": {"label": "LOQ ([qc] min_events)", "colour": "0.45", "marker": "", "ls": "--"},
    "infusion": {"label": "cell infusion", "colour": "0.3", "marker": "v", "ls": ":",
                 "filled": True},
}  # fmt: skip


def legend_marks(with_loq: bool, *, failed: bool = False, too_few: bool = False) -> list[str]:
    """The `LEGEND_MARKS` a legend shows, in order (the cell infusion always)."""
    shown = {"failed": failed, "too_few": too_few, "loq": with_loq, "infusion": True}
    return [k for k in LEGEND_MARKS if shown[k]]


@dataclass(frozen=True)
class CohortPlan:
    """What a cohort plot draws, whoever draws it (`cohort_plan`)."""

    #: `measure_points` of every patient.
    points: pd.DataFrame
    #: Patient → stratum ("" without one).
    strata: dict[str, str]
    #: Stratum → line style, in `stratum_colours`' order.
    styles: dict[str, object]
    #: Patient → colour (a `PATIENT_PALETTE` name), in turn over the sorted ids.
    colours: dict[str, str]
    #: The panels' populations, in order ([""] when there is none).
    panels: list[str]

    def patient_styles(self) -> dict[str, object]:
        """Patient → the line style of their stratum."""
        return {p: self.styles.get(s, "-") for p, s in self.strata.items()}

    def stratum_labels(self) -> list[tuple[str, object]]:
        """(legend label with the stratum's number of patients, line style) per stratum."""
        counts = pd.Series(list(self.strata.values()), dtype=object).value_counts()
        return [(f"{s or '(no stratum)'} (n={int(counts.get(s, 0))})", ls)
                for s, ls in self.styles.items()]  # fmt: skip


def cohort_plan(
    chimerism: pd.DataFrame,
    measure: str,
    *,
    samples: pd.DataFrame | None = None,
    patients: Sequence[dict] | None = None,
    populations: Sequence[str] | None = None,
    min_events: int = 50,
) -> CohortPlan:
    """The points, strata, line styles, patient colours and panels of a cohort plot: one
    colour per patient (told apart by colour and a label at the line's end), the stratum
    as the line style, a panel per population present (`populations`' order first)."""
    pts = measure_points(chimerism, measure, samples=samples, min_events=min_events)
    strata = patient_strata(chimerism, patients)
    order = stratum_colours(strata.values() or [""])
    styles = {st: STRATUM_STYLES[i % len(STRATUM_STYLES)] for i, st in enumerate(order)}
    ids = sorted({str(x) for x in pts["patient"]}) if len(pts) else []
    colours = {pid: PATIENT_PALETTE[i % len(PATIENT_PALETTE)] for i, pid in enumerate(ids)}
    present = list(dict.fromkeys(pts["population"].astype(str))) if len(pts) else []
    panels = [p for p in (populations or present) if p in present] or [""]
    return CohortPlan(pts, strata, styles, colours, panels)
