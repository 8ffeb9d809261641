"""phenotype_normalised.csv: phenotype medians on a scale that does not move with the instrument.

With ``[normalise] reference = "<patient>"`` in study.toml, that manifest
patient's files are the reference sample (an aliquot of one donor's cells
acquired in every batch, with each tube's panel). A batch is a day: every
file of a tube acquired on a day is normalised with that day's reference
file of the tube. Per tube, population and phenotype marker, the reference's
events of the population give each batch's quantiles; the goal is their mean
over batches, and each batch's monotone map (`cytokit.analysis.normalise`,
in the spirit of CytoNorm) takes the batch's raw values onto it. A
phenotype median is then mapped with its batch's map (a monotone map keeps
the order of the events, so the median of the mapped events is the mapped
median, up to the interpolation between the two middle events of an even
count). The raw medians stay in phenotype.csv; this table holds both.

A row whose batch has no reference file, whose reference has too few
events of the population (`cytokit.analysis.normalise.MIN_REFERENCE_EVENTS`),
or whose file has no events of the population and origin (no median) keeps an
empty ``median_normalised`` and says why in ``note``, in one sentence.
"""

from __future__ import annotations

import numpy as np

from cytokit.errors import CytokitError, StudyError

__all__ = ["normalised_rows", "reference_patient"]


def reference_patient(study) -> str:
    """``[normalise] reference`` (the reference sample's patient id), '' without it.

    Raises
    ------
    StudyError
        The table is malformed or names no patient of the manifest.
    """
    from cytokit.study.settings import normalise_reference

    where = f"{study.root / 'study.toml'} [normalise]"
    ref, problems = normalise_reference(study.config.get("normalise"), where, study.patients)
    if problems:
        raise StudyError(problems[0])
    return ref


def normalised_rows(phenotype: list[dict], references: dict) -> list[dict]:
    """The rows of phenotype_normalised.csv.

    Parameters
    ----------
    phenotype : list of dict
        phenotype.csv rows (patient, day, file, tube, population, origin, marker,
        events, median).
    references : dict of (tube, day) to (file, `cytokit.analysis.per_patient.SampleCells`)
        The reference sample's files.
    """
    from cytokit.analysis.normalise import MIN_REFERENCE_EVENTS, goal_quantiles, quantile_map

    if not references:
        return []
    maps: dict[tuple, dict] = {}  # (tube, population, marker) -> day -> map or reason

    def batch_maps(tube, population, marker):
        key = (tube, population, marker)
        if key in maps:
            return maps[key]
        values, out = {}, {}
        for (t, day), (file, cells) in references.items():
            if t != tube or population not in cells.populations or marker not in cells.markers:
                continue
            v = cells.populations[population][0][:, cells.markers.index(marker)]
            values[day] = (file, v[np.isfinite(v)])
        usable = {}
        for day, (file, v) in values.items():
            if len(v) < MIN_REFERENCE_EVENTS:
                out[day] = (
                    f"the reference {file} has {len(v)} {population} events, fewer than the "
                    f"{MIN_REFERENCE_EVENTS} quantile normalisation needs"
                )
            else:
                usable[day] = (file, v)
        if usable:
            goal = goal_quantiles([v for _, v in usable.values()])
            for day, (file, v) in usable.items():
                try:
                    out[day] = (
                        file,
                        quantile_map(v, goal, f"reference {file} {population} {marker}"),
                    )
                except CytokitError as exc:
                    out[day] = str(exc)
        maps[key] = out
        return out

    rows = []
    tubes = {t for t, _ in references}
    for r in phenotype:
        if r.get("tube") not in tubes:
            continue
        found = batch_maps(r["tube"], r["population"], r["marker"]).get(r["day"])
        row = {
            k: r.get(k)
            for k in ("patient", "day", "file", "tube", "population", "origin", "marker", "events")
        }
        row["median"] = r.get("median")
        row["batch"] = f"day {r['day']}"
        median = r.get("median")
        has_median = median is not None and bool(np.isfinite(median))
        if not has_median and not r.get("events"):  # whatever the reference: nothing to map
            who = (
                r["population"] if r.get("origin") == "all" else f"{r['origin']} {r['population']}"
            )
            row["note"] = f"no {who} events in the file: no median to normalise"
        elif found is None:
            row["note"] = f"no reference file of tube {r['tube']} on day {r['day']}"
        elif isinstance(found, str):
            row["note"] = found
        elif not has_median:
            row["note"] = "phenotype.csv has no median of this row: nothing to normalise"
        if not isinstance(found, (str, type(None))):
            file, qmap = found
            row["reference_file"] = file
            if has_median:
                row["median_normalised"] = float(qmap(np.array([median], dtype=np.float64))[0])
        rows.append(row)
    return rows
