"""The outcome tables of a study with ``outcomes.csv``, from its per-patient persistence.

With a schedule (``treatments.csv`` or ``infusions.csv``), `schedule_tables`
gives ``treatments``: every row of it, drugs and skipped infusions included
(`cytokit.clinical.treatments_frame`), so the report draws drug courses from
the results folder alone, and ``dose_response``: each cell product's dose
against persistence (`cytokit.analysis.dose_response`), DLI + CIK patients
in both products' rows.

Only when the study has ``outcomes.csv``: `outcome_tables` hands the
schedule, the outcomes, ``[outcomes]`` and each patient's persistence series
(the chimerism table's ``[outcomes] measure`` of the ``[outcomes] population``,
default the study's first population, in peripheral blood when the manifest
names sample types) to `cytokit.clinical.analyze_outcomes`, which needs
lifelines (the ``clinical`` extra). A study without ``outcomes.csv`` gets no
table and never imports lifelines.

When the manifest lists product samples (``sample_type`` ``product_pre``,
``product_post`` or ``product``, the last meaning the bag infused),
`product_tables` gives ``product_qc`` (`cytokit.clinical.product_qc`), with
or without ``outcomes.csv``. Each product sample's counts come from its
gating (``counts.csv``: the ``[outcomes] product_events`` and
``product_live`` gates, the ``product_nk`` population and the sum of the
``product_cd3`` populations); the bag's volume (``volume_ml``), its
nucleated cells per mL (``nucleated_per_ml``, the cell counter's) and the
recipient's weight (``weight_kg``, on the ``post`` row) are manifest columns
of that row, since each is a fact of that sample or infusion; the product
named is the row's ``product`` column, else the patient's one given cell
infusion that day in the schedule.

``cytokit report`` reads these tables; it does not compute them again. The
report is rebuilt from the results folder alone (no FCS file, no study
folder: results are archived and moved), and the outcome tables depend on
the clinical files the way the other tables depend on the FCS files. What
can go stale is caught instead: ``tables.json`` refuses an edited table, and
``study.json`` records the SHA-256 of the schedule and ``outcomes.csv`` and
the ``[outcomes]`` settings analyze read (`clinical_inputs`);
`check_clinical_inputs` refuses a report while the study folder is reachable
and any of them has changed, been added or been removed since.

Tables (``OUT/<name>.csv``, in ``tables.json`` like the others):
``outcomes_summary``, ``survival``, ``landmark``, ``dose_escalation`` and
``response`` (`cytokit.clinical.tables`) and ``doses`` (per patient and
product, `cytokit.clinical.dose_totals`).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pandas as pd

from cytokit.errors import CytokitError, StudyError

__all__ = [
    "OUTCOME_TABLES",
    "PRODUCT_STAGES",
    "check_clinical_inputs",
    "clinical_inputs",
    "outcome_tables",
    "persistence_points",
    "product_samples",
    "product_tables",
    "schedule_tables",
    "without_products",
]

#: Manifest ``sample_type`` of product samples -> product QC stage.
PRODUCT_STAGES = {"product_pre": "pre", "product_post": "post", "product": "post"}

#: The tables written when the study has outcomes.csv, in writing order.
OUTCOME_TABLES = ("outcomes_summary", "survival", "landmark", "dose_escalation", "response")


def persistence_points(
    chimerism: pd.DataFrame, population: str, measure: str, failed=()
) -> pd.DataFrame:
    """One persistence point per patient and day: patient, day, value, status.

    Parameters
    ----------
    chimerism : DataFrame
        ``chimerism.csv`` rows.
    population : str
        A study population.
    measure : str
        ``donor_per_ul`` or ``donor_pct``.
    failed : iterable of (patient, day)
        Samples that gave no numbers (failed files of the chimerism tube): a
        day without a point of its own gets one with status ``failed`` and no
        value, so that a failed sample is not taken for a day without donor cells.
        A sample whose donor marker failed (status ``marker_failed``) is such a
        failed point too, and so, for ``donor_per_ul`` in a study that gives
        cells/µL, is a sample without them (no counting reference for its file).

    Returns
    -------
    DataFrame
        `cytokit.clinical.landmark.POINT_COLUMNS`; product samples (`PRODUCT_STAGES`)
        are never points, and a day with samples of several types reads its
        peripheral-blood (``PB``) sample when there is one.
    """
    from cytokit.analysis.chimerism import MARKER_FAILED
    from cytokit.analysis.trends import judged_values
    from cytokit.clinical.landmark import FAILED

    columns = ["patient", "day", "value", "status"]
    out = pd.DataFrame(columns=columns)
    if not chimerism.empty and measure in chimerism.columns:
        rows = chimerism[chimerism["population"] == population]
        if "sample_type" in rows.columns:
            rows = without_products(rows)  # whether or not blood rows say PB
            if (rows["sample_type"] == "PB").any():
                rows = rows[rows["sample_type"] == "PB"]
        rows = rows.sort_values(["patient", "day"], kind="stable").drop_duplicates(
            ["patient", "day"], keep="first"
        )
        out = rows[["patient", "day", measure, "status"]].rename(columns={measure: "value"})
        # as the trends read it: a % of too few events to judge is no value
        if "events" in rows.columns:
            out["value"] = judged_values(measure, out["value"], rows["events"])
        # a sample whose donor marker failed measured nothing: a failed point, never a
        # day without donor cells (it would put a persisting patient in the other group)
        lost = out["status"].astype(str) == MARKER_FAILED
        blank = pd.to_numeric(out["value"], errors="coerce").isna()
        if measure == "donor_per_ul" and not blank.all():
            lost |= blank  # a study that counts cells, a file without a counting reference
        out.loc[lost, "status"] = FAILED
        out.loc[lost, "value"] = float("nan")
    have = set(zip(out["patient"].astype(str), out["day"].astype(int), strict=True))
    extra = sorted({(str(p), int(d)) for p, d in failed} - have)
    if extra:
        lost = pd.DataFrame(
            [{"patient": p, "day": d, "value": float("nan"), "status": FAILED} for p, d in extra]
        )
        out = pd.concat([out.astype(lost.dtypes.to_dict()) if len(out) else out, lost])
        out = out.sort_values(["patient", "day"], kind="stable")
    return out.reset_index(drop=True)


def schedule_tables(study, trends: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """``treatments`` (the study's schedule as read) and ``dose_response`` (per cell
    product, `cytokit.analysis.dose_response`); none without a schedule file.

    Parameters
    ----------
    study : Study
    trends : DataFrame, optional
        ``trends.csv`` (without it, no ``dose_response``).

    Returns
    -------
    dict of str to DataFrame
        ``treatments`` (`cytokit.clinical.treatments_frame` columns), in file
        order, when the study has ``treatments.csv`` or ``infusions.csv``.
    """
    from cytokit.analysis.dose_response import DOSE_RESPONSE_COLUMNS, dose_response
    from cytokit.clinical.treatments import treatments_frame

    if study.clinical.source is None:
        return {}
    out = {"treatments": treatments_frame(study.clinical.treatments)}
    if trends is not None:
        frame = dose_response(study.clinical.treatments, trends)
        out["dose_response"] = frame.reindex(columns=list(DOSE_RESPONSE_COLUMNS))
    return out


def without_products(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame`'s rows that are no product bag's (``sample_type`` not in `PRODUCT_STAGES`):
    a bag's donor cells are the product's, never a point of the patient's persistence."""
    return frame[~frame["sample_type"].astype(str).isin(list(PRODUCT_STAGES))]


def failed_samples(study, failures: pd.DataFrame | None) -> list[tuple[str, int]]:
    """(patient, day) of the failed files that would have been persistence points: of the
    chimerism tube, not product samples."""
    if failures is None or failures.empty:
        return []
    rows = {study.relative(r.file): r for r in study.rows}
    out = []
    for file in failures["file"].astype(str):
        row = rows.get(file)
        if row is None or row.sample_type in PRODUCT_STAGES:
            continue
        if study.tube_of(row) != study.chimerism_tube:
            continue
        out.append((str(row.patient), int(row.day)))
    return out


def outcome_tables(
    study, chimerism: pd.DataFrame, failures: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """The clinical tables of `study` (none without outcomes.csv).

    Parameters
    ----------
    study : Study
        Loaded with `cytokit.study.load_study` (its ``clinical`` files).
    chimerism : DataFrame
        The study's chimerism table.
    failures : DataFrame, optional
        The study's failures (``failures.csv``): their samples are persistence
        points without a value (`persistence_points`).

    Returns
    -------
    dict of str to DataFrame
        `OUTCOME_TABLES` and ``doses`` when the study has outcomes.csv; else nothing.

    Raises
    ------
    StudyError
        ``[outcomes] population`` is not a study population.
    ImportError
        lifelines is missing (one line naming ``pip install "cytokit-flow[clinical]"``).
    """
    clinical = study.clinical
    if clinical.outcomes is None:
        return {}
    from cytokit.clinical.survival import _lifelines
    from cytokit.clinical.tables import TABLE_COLUMNS, analyze_outcomes

    _lifelines()  # before any table: the one-line error naming the extra
    settings = clinical.settings
    populations = list(study.settings.populations)
    population = settings.population or (populations[0] if populations else "")
    if population not in populations:
        raise StudyError(
            f"{study.root / 'study.toml'}: [outcomes] population = {population!r} is not a "
            f"study population ({', '.join(populations) or 'none'}); name one of them"
        )
    strata = {}
    for row in study.rows:
        strata.setdefault(row.patient, row.stratum)
    tables = analyze_outcomes(
        clinical.treatments,
        clinical.outcomes,
        persistence_points(
            chimerism, population, settings.measure, failed_samples(study, failures)
        ),
        settings=settings,
        strata=strata,
    )
    out = {name: getattr(tables, name) for name in OUTCOME_TABLES}
    out = {name: frame.reindex(columns=list(TABLE_COLUMNS[name])) for name, frame in out.items()}
    out["doses"] = tables.doses.reindex(columns=list(TABLE_COLUMNS["doses"]))
    return out


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def product_samples(study, counts: pd.DataFrame) -> pd.DataFrame:
    """The product samples of the manifest as `cytokit.clinical.SAMPLE_COLUMNS` rows.

    Parameters
    ----------
    study : Study
    counts : DataFrame
        ``counts.csv`` (file, gate_path, parent_path, count).

    Returns
    -------
    DataFrame
        One row per product file gated (files that failed have no counts and no row).

    Raises
    ------
    StudyError
        A gate or population named by ``[outcomes] product_*`` is not in the
        strategy, or a product row lacks its volume, count or weight.
    """
    from cytokit.clinical.product import SAMPLE_COLUMNS

    rows = [r for r in study.rows if r.sample_type in PRODUCT_STAGES]
    if not rows or counts.empty:
        return pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    settings = study.clinical.settings
    toml = study.root / "study.toml"
    populations = dict(study.settings.populations)
    named = [settings.product_nk, *settings.product_cd3]
    unknown = [p for p in named if p not in populations]
    if unknown:
        raise StudyError(
            f"{toml}: [outcomes] product_nk / product_cd3 name {', '.join(unknown)}, not study "
            f"populations ({', '.join(populations) or 'none'}); set them to the NK and CD3+ "
            "populations"
        )
    parents = dict(zip(counts["gate_path"], counts["parent_path"], strict=False))
    live = settings.product_live or parents.get(populations[settings.product_nk], "")
    events = settings.product_events or parents.get(live, "")
    for key, path in (("product_live", live), ("product_events", events)):
        if not path or path not in parents:
            raise StudyError(
                f"{toml}: [outcomes] {key} = {path!r} is not a gate of the strategy; set it to "
                "the gate path of the product's "
                + ("live cells" if key == "product_live" else "nucleated-cell events")
            )
    by_file = {
        f: dict(zip(g["gate_path"], g["count"], strict=True))
        for f, g in counts.groupby(counts["file"].astype(str), sort=False)
    }
    out, problems = [], []
    for r in rows:
        rel = study.relative(r.file)
        gates = by_file.get(str(rel))
        if gates is None:  # failed: in failures.csv
            continue
        product = _product_of(study, r)
        stage = PRODUCT_STAGES[r.sample_type]
        values = {k: _number(r.metadata.get(k)) for k in ("nucleated_per_ml", "volume_ml")}
        values["weight_kg"] = _number(r.metadata.get("weight_kg"))
        need = ["nucleated_per_ml", "volume_ml"] + (["weight_kg"] if stage == "post" else [])
        bad = [k for k in need if not (values[k] > 0)]
        if bad:
            problems.append(
                f"{study.root / 'manifest.csv'}, line {r.line}: product sample {rel} needs "
                f"{', '.join(bad)} (a positive number) for product QC"
            )
        if not product:
            problems.append(
                f"{study.root / 'manifest.csv'}, line {r.line}: product sample {rel}: name its "
                "product in a product column (no single given cell infusion that day)"
            )
        out.append(
            {
                "patient": r.patient,
                "day": r.day,
                "product": product,
                "stage": stage,
                "events": int(gates.get(events, 0)),
                "live": int(gates.get(live, 0)),
                "nk": int(gates.get(populations[settings.product_nk], 0)),
                "cd3": int(sum(gates.get(populations[p], 0) for p in settings.product_cd3)),
                **values,
            }
        )
    if problems:
        raise StudyError(
            f"{len(problems)} problem(s) with product samples:\n  " + "\n  ".join(problems)
        )
    return pd.DataFrame(out, columns=list(SAMPLE_COLUMNS))


def _product_of(study, row) -> str:
    """A product sample's product: its manifest ``product`` cell, else the patient's one
    given cell infusion that day ("" when there is none or several)."""
    product = row.metadata.get("product", "").strip()
    if product:
        return product
    products = [
        t.product
        for t in study.clinical.treatments
        if t.is_cells and t.given and (t.patient, t.day) == (row.patient, row.day)
    ]
    return products[0] if len(products) == 1 else ""


def product_tables(study, counts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``{"product_qc": …}`` when the manifest lists product samples (else nothing).

    See the module docstring for where each number comes from.
    """
    samples = product_samples(study, counts)
    # a bag whose file failed keeps its row, without numbers (it vanished from the table)
    gated = set(counts["file"].astype(str)) if "file" in counts else set()
    lost = [
        r
        for r in study.rows
        if PRODUCT_STAGES.get(r.sample_type) == "post" and str(study.relative(r.file)) not in gated
    ]
    if samples.empty and not lost:
        return {}  # (no bag measured nor failed: a failed pre-selection file alone has no row)
    from cytokit.clinical.product import PRODUCT_QC_COLUMNS, product_qc

    clinical = study.clinical
    # a failed bag keeps what does not come from its file: the manifest's nucleated count,
    # the infusion's dose level and the patient's acute GVHD grade
    failed = [
        {
            "patient": r.patient,
            "day": r.day,
            "product": _product_of(study, r),
            "nucleated_per_ml": _number(r.metadata.get("nucleated_per_ml")),
            "volume_ml": _number(r.metadata.get("volume_ml")),
            "note": f"the bag's file {study.relative(r.file)} failed (see failures.csv): "
            "nothing measured",
        }
        for r in lost
    ]
    qc = product_qc(
        samples,
        clinical.settings.release,
        treatments=clinical.treatments,
        outcomes=clinical.outcomes or (),
        failed=failed,
        source=str(study.root / "manifest.csv"),
    )
    qc = qc.sort_values(["patient", "day"], kind="stable", ignore_index=True)
    # a pre-selection file that failed is said on its bag's row (which reads "no
    # pre-selection sample" without it)
    for r in study.rows:
        if PRODUCT_STAGES.get(r.sample_type) != "pre" or str(study.relative(r.file)) in gated:
            continue
        mine = (qc["patient"] == r.patient) & (qc["day"] == r.day)
        said = f"its pre-selection file {study.relative(r.file)} failed (see failures.csv)"
        qc.loc[mine, "note"] = [
            "; ".join(x for x in (str(n) if pd.notna(n) else "", said) if x)
            for n in qc.loc[mine, "note"]
        ]
    return {"product_qc": qc.reindex(columns=list(PRODUCT_QC_COLUMNS))}


_CLINICAL_FILES = ("treatments.csv", "infusions.csv", "outcomes.csv")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def clinical_inputs(root: Path, config: dict) -> dict:
    """What the outcome tables were computed from: each clinical file's SHA-256 (None:
    absent) and the ``[outcomes]`` table of study.toml (``study.json`` ``clinical_inputs``)."""
    root = Path(root)
    files = {name: _digest(root / name) for name in _CLINICAL_FILES}
    return {"files": files, "outcomes": (config or {}).get("outcomes") or {}}


def check_clinical_inputs(study_meta: dict, out: Path | None = None) -> None:
    """Refuse results whose clinical inputs changed since analyze (see the module docstring).

    Nothing is checked when ``study.json`` has no record (results of an older
    cytokit) or the study folder it names is not reachable here.

    Raises
    ------
    CytokitError
        Naming the file (or ``[outcomes]``) that changed and the command that
        brings the results up to date.
    """
    recorded = study_meta.get("clinical_inputs")
    root = Path(str(study_meta.get("root", "")))
    if not isinstance(recorded, dict) or not study_meta.get("root") or not root.is_dir():
        return
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib

    from cytokit.study._toml import readable_toml

    try:
        text = readable_toml((root / "study.toml").read_text(encoding="utf-8"))
        config = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # not a study folder any more: nothing to compare with
    now = clinical_inputs(root, config)
    where = f" --out {out}" if out is not None else ""
    fix = f"run `cytokit analyze {root}{where}` again (gated files come from its store)"
    for name, before in (recorded.get("files") or {}).items():
        after = now["files"].get(name)
        if before != after:
            what = "was added" if before is None else "was removed" if after is None else "changed"
            raise CytokitError(
                f"{root / name}: {what} since `cytokit analyze` wrote these results, so their "
                f"outcome tables are stale; {fix}"
            )
    if (recorded.get("outcomes") or {}) != now["outcomes"]:
        raise CytokitError(
            f"{root / 'study.toml'}: [outcomes] changed since `cytokit analyze` wrote these "
            f"results, so their outcome tables are stale; {fix}"
        )
