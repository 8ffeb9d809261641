"""``miflowcyt.csv``: the MIFlowCyt 1.0 items of every file of a study, found or missing.

MIFlowCyt, the Minimum Information about a Flow Cytometry Experiment (Lee et
al., Cytometry A 73A:926-930, 2008; doi:10.1002/cyto.a.20623), lists what a
report of a flow experiment must state, in four sections: 1 experiment
overview, 2 flow sample/specimen details (2.4: the fluorescence reagents),
3 instrument details (3.3: configuration and settings, detector voltages
included), 4 data analysis details. `miflowcyt_table` fills, for each file of
a study, every item cytokit can fill from

* the file's FCS keywords (`KEYWORD_ITEMS`: ``$INST``, ``$EXP``, ``$DATE``,
  ``$BTIM``, ``$ETIM``, ``$OP``, ``$SRC``, ``$CELLS``, ``$CYT``, ``$CYTSN``,
  ``CYTOMETER CONFIG NAME``, ``CREATOR``, ``$SYS``; per channel but time
  `CHANNEL_ITEMS`: ``$PnV``, ``$PnG``, ``$PnF``, ``$PnL``, ``$PnT``),
* ``study.toml``: ``[[reagents]]`` (`cytokit.study.reagents`) for each marker
  of the file's tube's panel that the file carries, ``[compensation]``, ``[transform]``, ``[gating]
  strategy`` and ``[acquisition_qc]``,
* the manifest: the file, patient, day, sample type and stratum,

and lists the others as missing, with where to supply them. The table is
tidy, one row per file and item (and channel, for a channel's item), so the
gaps of a file are a filter away (``status == "missing"``) and it is written,
checked and indexed like every other table (CSV or Parquet); a JSON document
would have been the one output of a run without a row structure.

Columns (`MIFLOWCYT_COLUMNS`): patient, day, file, miflowcyt (the item's
number in MIFlowCyt 1.0, e.g. ``3.3``; empty for a fact the standard does not
ask for, such as the operator), item, channel (``$PnN`` for a channel's
item), marker (the panel marker of that channel), value (as found; empty
when missing), source (the keyword, e.g. ``$P4V``, or the study file and key),
status (``present`` or ``missing``), note (for a missing item: what is
missing and where to put it).

Items no file and no setting can hold (1.1 purpose, 1.2 keywords, 1.7
conclusions, 2.3 sample treatment, 3.1 instrument manufacturer: FCS has no
keyword for it) are listed as missing for every file, so the table is the
full checklist of what a submission still has to state.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cytokit.errors import CytokitError
from cytokit.sample import Sample

__all__ = [
    "CHANNEL_ITEMS",
    "KEYWORD_ITEMS",
    "MIFLOWCYT_COLUMNS",
    "REAGENT_ITEMS",
    "keyword_rows",
    "miflowcyt_table",
]

MIFLOWCYT_COLUMNS = (
    "patient", "day", "file", "miflowcyt", "item", "channel", "marker", "value", "source",
    "status", "note",
)  # fmt: skip

#: (MIFlowCyt 1.0 item, item, FCS keyword) of each file.
KEYWORD_ITEMS = (
    ("1.4", "organization", "$INST"),
    ("1.5", "primary contact", "$EXP"),
    ("1.6", "acquisition date", "$DATE"),
    ("1.6", "acquisition start time", "$BTIM"),
    ("1.6", "acquisition end time", "$ETIM"),
    ("", "operator", "$OP"),
    ("2.1", "specimen source", "$SRC"),
    ("2.1", "cell description", "$CELLS"),
    ("3.2", "instrument model", "$CYT"),
    ("3.2", "instrument serial number", "$CYTSN"),
    ("3.3", "instrument configuration", "CYTOMETER CONFIG NAME"),
    ("3.3", "acquisition software", "CREATOR"),
    ("3.3", "computer system", "$SYS"),
)
#: (MIFlowCyt 1.0 item, item, FCS keyword with ``{n}`` for the parameter number) of each
#: channel but the time channel.
CHANNEL_ITEMS = (
    ("3.3", "detector voltage", "$P{n}V"),
    ("3.3", "amplifier gain", "$P{n}G"),
    ("3.3", "optical filter", "$P{n}F"),
    ("3.3", "excitation wavelength", "$P{n}L"),
    ("3.3", "detector type", "$P{n}T"),
)
#: (item, `cytokit.study.reagents.Reagent` field) of each panel marker a file carries (2.4).
REAGENT_ITEMS = (
    ("reporter (fluorochrome)", "fluorochrome"),
    ("clone", "clone"),
    ("manufacturer", "vendor"),
    ("catalogue number", "catalog"),
    ("lot", "lot"),
)
#: Items of the checklist that neither FCS keywords nor the study hold.
UNRECORDED = (
    ("1.1", "purpose"),
    ("1.2", "keywords"),
    ("1.7", "conclusions"),
    ("2.3", "sample treatment"),
    ("3.1", "instrument manufacturer"),
)
_SUBMISSION = "not held by FCS keywords or study.toml: state it with the data submission"


def _row(number: str, item: str, value, source: str, note: str = "", **more) -> dict:
    text = "" if value is None else str(value).strip()
    return {
        "miflowcyt": number,
        "item": item,
        "channel": more.get("channel", ""),
        "marker": more.get("marker", ""),
        "value": text,
        "source": source,
        "status": "present" if text else "missing",
        "note": "" if text else note,
    }


def _is_time(name: str) -> bool:
    return "TIME" in name.upper()


def keyword_rows(sample: Sample) -> list[dict]:
    """The keyword items of `sample` (`KEYWORD_ITEMS`, then `CHANNEL_ITEMS` of each channel
    but time), as rows without the file's patient, day and file.

    A keyword is looked up whatever its case (FCS keywords are case-insensitive); a
    value of blanks only is missing.
    """
    keywords = {str(k).upper(): v for k, v in sample.keywords.items()}
    rows = []
    for number, item, keyword in KEYWORD_ITEMS:
        note = f"the file has no {keyword}; state the {item} with the data submission"
        rows.append(_row(number, item, keywords.get(keyword), keyword, note))
    for channel in sample.channels:
        if _is_time(channel.name):
            continue
        for number, item, pattern in CHANNEL_ITEMS:
            keyword = pattern.format(n=channel.index + 1)
            note = f"the file has no {keyword} for {channel.name}"
            rows.append(
                _row(number, item, keywords.get(keyword), keyword, note, channel=channel.name)
            )
    return rows


def _describe_transform(transform) -> str:
    if transform is None:
        return "none (scale values)"
    params = ", ".join(
        f"{f.name}={getattr(transform, f.name):g}"
        for f in dataclasses.fields(transform)
        if isinstance(getattr(transform, f.name), (int, float))
    )
    return f"{transform.kind} ({params})" if params else transform.kind


def _study_rows(study, sample: Sample | None, ran: str | None = None) -> list[dict]:
    """The items the study holds (analysis, QC, the ones no file holds), for one file
    (`ran`: the acquisition QC checks that ran on it, `_qc_row`)."""
    s = study.settings
    rows = [_row(n, item, None, "", _SUBMISSION) for n, item in UNRECORDED]
    source = s.compensation
    if source.lower() == "file":
        spill = sample.spillover if sample is not None else None
        comp = (
            f"the file's spillover matrix ({spill.source}, {len(spill.channels)} channels)"
            if spill is not None
            else ""
        )
        rows.append(
            _row(
                "4.2",
                "compensation",
                comp,
                "study.toml [compensation] source",
                "compensation is from the file, and the file has no spillover keyword",
            )
        )
    else:
        comp = "none" if source.lower() == "none" else f"matrix {source}"
        rows.append(_row("4.2", "compensation", comp, "study.toml [compensation] source"))
    transforms = _describe_transform(s.transform)
    if s.marker_transforms:
        transforms += "; " + "; ".join(
            f"{m}: {_describe_transform(t)}" for m, t in sorted(s.marker_transforms.items())
        )
    rows.append(_row("4.3", "data transformation", transforms, "study.toml [transform]"))
    strategy = str(study.strategy or s.strategy)
    digest = study.gating.digest() if study.gating is not None else ""
    gating = f"{Path(strategy).name} (digest {digest[:12]})" if digest else Path(strategy).name
    rows.append(
        _row(
            "4.4",
            "gating",
            f"{gating}; gates and counts in counts.csv, fitted geometry in qc.csv",
            "study.toml [gating] strategy",
        )
    )
    rows.append(_qc_row(s, ran))
    return rows


def _qc_row(settings, ran: str | None) -> dict:
    """1.8 for one file: the acquisition QC the study asks for, with the checks that ran
    on the file (`ran`: ``+``-joined, those whose ``qc_removed_*`` of ``samples.csv`` is
    not empty; None where the file has no row there, or before it was analysed) and the
    limits."""
    table = settings.acquisition_qc
    qc = settings.qc_settings
    if qc is None:
        note = (
            "acquisition QC is off ([acquisition_qc] enabled = false in study.toml)"
            if table is not None
            else "add an [acquisition_qc] table to study.toml"
        )
        return _row(
            "1.8",
            "quality control measures",
            "",
            "study.toml [acquisition_qc]",
            f"{note}, or state the QC with the submission",
        )
    if ran is None:
        checks = ", ".join(qc.checks)
    elif ran:
        done = ran.split("+")
        checks = ", ".join(done)
        skipped = [c for c in qc.checks if c not in done]
        if skipped:
            checks += f"; not run on this file: {', '.join(skipped)} (samples.csv qc_reason)"
    else:
        checks = "no check ran on this file (samples.csv qc_reason)"
    value = (
        f"acquisition QC ({checks}; sensitivity {qc.sensitivity}; a file fails above "
        f"{qc.max_removed_pct:g}% of its events removed, warns above {qc.warn_removed_pct:g}%"
    )
    if qc.exclude_channels:
        value += f"; channels left out: {', '.join(qc.exclude_channels)}"
    if qc.time_channel is not None:
        value += f"; the clock read from channel {qc.time_channel}"
    return _row("1.8", "quality control measures", value + ")", "study.toml [acquisition_qc]")


def _reagent_rows(study, sample: Sample, tube: str) -> list[dict]:
    """2.4 for each marker of `tube`'s panel (the file's tube) that `sample` carries: the
    analyte and its reagent's items."""
    reagents = {r.marker: r for r in study.settings.reagents}
    panel = study.tube_panel(tube)
    rows = []
    for marker in panel:
        found = panel.find(sample.channels, marker)
        if isinstance(found, str):
            continue
        channel = sample.channels[found].name
        at = {"channel": channel, "marker": marker}
        rows.append(_row("2.4", "analyte", marker, "study.toml [panel]", **at))
        reagent = reagents.get(marker)
        for item, key in REAGENT_ITEMS:
            value = getattr(reagent, key) if reagent is not None else ""
            note = (
                f'add {key} = "..." to the [[reagents]] entry of {marker} in study.toml'
                if reagent is not None
                else f'add a [[reagents]] entry for {marker} to study.toml (marker = "{marker}", '
                f"{', '.join(k for _, k in REAGENT_ITEMS)})"
            )
            rows.append(_row("2.4", item, value, f"study.toml [[reagents]] {key}", note, **at))
    return rows


def _manifest_rows(row) -> list[dict]:
    variables = f"patient {row.patient}, day {row.day}"
    for key in ("sample_type", "stratum"):
        value = getattr(row, key, "")
        if value:
            variables += f", {key.replace('_', ' ')} {value}"
    return [
        _row("1.3", "experiment variables", variables, "manifest.csv"),
        _row(
            "2.1",
            "sample type",
            getattr(row, "sample_type", ""),
            "manifest.csv sample_type",
            "add a sample_type column (PB, BM, product...) to manifest.csv",
        ),
    ]


def _read(path: Path) -> Sample:
    from cytokit.fcs import read_fcs

    with warnings.catch_warnings():  # the analysis has reported what the reader worked around
        warnings.simplefilter("ignore")
        return read_fcs(path, mmap=True, scale=False)


def miflowcyt_table(
    study, files: Iterable[str | Path] | None = None, qc_checks: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The MIFlowCyt items of every file of `study` (see the module docstring).

    Parameters
    ----------
    study : Study
        A loaded study (`cytokit.study.load_study`).
    files : iterable of path, optional
        The files to describe (default: every manifest row's); others are left out.
    qc_checks : mapping, optional
        Per file (as ``samples.csv`` names it) the acquisition QC checks that ran on
        it, ``+``-joined, for item 1.8; without it (or a file's entry) the item names
        the checks the study asks for.

    Returns
    -------
    DataFrame
        `MIFLOWCYT_COLUMNS`, files in manifest order, each file's items in MIFlowCyt
        order (the unnumbered ones last). A file that cannot be read has one
        row, item ``list-mode data file``, missing, the reader's reason in ``note``.
    """
    wanted = None if files is None else {Path(f).resolve() for f in files}
    out: list[dict] = []
    for row in study.rows:
        path = Path(row.file)
        if wanted is not None and path.resolve() not in wanted:
            continue
        rel = study.relative(path)
        keys = {"patient": row.patient, "day": row.day, "file": rel}
        try:
            sample = _read(path)
        except (CytokitError, OSError) as exc:
            reason = " ".join(str(exc).split())
            note = f"the file cannot be read ({reason}); see failures.csv"
            out.append({**keys, **_row("4.1", "list-mode data file", None, "manifest.csv", note)})
            continue
        rows = [_row("4.1", "list-mode data file", rel, "manifest.csv file")]
        rows += _manifest_rows(row)
        rows += keyword_rows(sample)
        rows += _reagent_rows(study, sample, study.tube_of(row))
        rows += _study_rows(study, sample, None if qc_checks is None else qc_checks.get(rel))
        rows.sort(key=lambda r: (r["miflowcyt"] == "", r["miflowcyt"]))  # stable: in item order
        out += [{**keys, **r} for r in rows]
    frame = pd.DataFrame(out, columns=list(MIFLOWCYT_COLUMNS))
    return frame
