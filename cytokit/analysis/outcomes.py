"""The outcome tables of a study with ``outcomes.csv``, from its per-patient persistence.

With a schedule (``treatments.csv`` or ``infusions.csv``), `schedule_tables`
gives ``treatments``: every row of it, drugs and skipped infusions included
(`cytokit.clinical.treatments_frame`), so the report draws drug courses from
the results folder alone.

Only when the study has ``outcomes.csv``: `outcome_tables` hands the
schedule, the outcomes, ``[outcomes]`` and each patient's persistence series
(the chimerism table's ``[outcomes] measure`` of the ``[outcomes] population``,
default the study's first population, in peripheral blood when the manifest
names sample types) to `cytokit.clinical.analyze_outcomes`, which needs
lifelines (the ``clinical`` extra). A study without ``outcomes.csv`` gets no
table and never imports lifelines.

Tables (``OUT/<name>.csv``, in ``tables.json`` like the others):
``outcomes_summary``, ``survival``, ``landmark``, ``dose_escalation`` and
``response`` (`cytokit.clinical.tables`) and ``doses`` (per patient and
product, `cytokit.clinical.dose_totals`).
"""

from __future__ import annotations

import pandas as pd

from cytokit.errors import StudyError

__all__ = ["OUTCOME_TABLES", "outcome_tables", "persistence_points", "schedule_tables"]

#: The tables written when the study has outcomes.csv, in writing order.
OUTCOME_TABLES = ("outcomes_summary", "survival", "landmark", "dose_escalation", "response")


def persistence_points(chimerism: pd.DataFrame, population: str, measure: str) -> pd.DataFrame:
    """One persistence point per patient and day: patient, day, value, status.

    Parameters
    ----------
    chimerism : DataFrame
        ``chimerism.csv`` rows.
    population : str
        A study population.
    measure : str
        ``donor_per_ul`` or ``donor_pct``.

    Returns
    -------
    DataFrame
        `cytokit.clinical.landmark.POINT_COLUMNS`; a day with samples of several
        types reads its peripheral-blood (``PB``) sample when there is one.
    """
    columns = ["patient", "day", "value", "status"]
    if chimerism.empty or measure not in chimerism.columns:
        return pd.DataFrame(columns=columns)
    rows = chimerism[chimerism["population"] == population]
    if "sample_type" in rows.columns and (rows["sample_type"] == "PB").any():
        rows = rows[rows["sample_type"] == "PB"]
    rows = rows.sort_values(["patient", "day"], kind="stable").drop_duplicates(
        ["patient", "day"], keep="first"
    )
    out = rows[["patient", "day", measure, "status"]].rename(columns={measure: "value"})
    return out.reset_index(drop=True)


def schedule_tables(study) -> dict[str, pd.DataFrame]:
    """``{"treatments": …}``: the study's schedule as read (none without a schedule file).

    Parameters
    ----------
    study : Study

    Returns
    -------
    dict of str to DataFrame
        ``treatments`` (`cytokit.clinical.treatments_frame` columns), in file
        order, when the study has ``treatments.csv`` or ``infusions.csv``.
    """
    from cytokit.clinical.treatments import treatments_frame

    if study.clinical.source is None:
        return {}
    return {"treatments": treatments_frame(study.clinical.treatments)}


def outcome_tables(study, chimerism: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The clinical tables of `study` (none without outcomes.csv).

    Parameters
    ----------
    study : Study
        Loaded with `cytokit.study.load_study` (its ``clinical`` files).
    chimerism : DataFrame
        The study's chimerism table.

    Returns
    -------
    dict of str to DataFrame
        `OUTCOME_TABLES` and ``doses`` when the study has outcomes.csv; else nothing.

    Raises
    ------
    StudyError
        ``[outcomes] population`` is not a study population.
    ImportError
        lifelines is missing (one line naming ``pip install "cytokit[clinical]"``).
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
        persistence_points(chimerism, population, settings.measure),
        settings=settings,
        strata=strata,
    )
    out = {name: getattr(tables, name) for name in OUTCOME_TABLES}
    out = {name: frame.reindex(columns=list(TABLE_COLUMNS[name])) for name, frame in out.items()}
    out["doses"] = tables.doses.reindex(columns=list(TABLE_COLUMNS["doses"]))
    return out
