"""The plots and the HTML report of a study analysis, rebuilt from its stored results.

``build_report(OUT)`` reads the results folder (`cytokit.analysis.results.load_results`;
no FCS file, no study folder needed) and writes into it:

``plots/cohort_donor_per_ul.{png,svg}``, ``plots/cohort_donor_pct.{png,svg}``
    Every patient's persistence, a colour and end label per patient, line style by
    stratum (`cytokit.plots.cohort_figure`).
``plots/<patient>_persistence.{png,svg}``, ``plots/<patient>_chimerism.{png,svg}``
    Per patient: donor cells/µL by population (% donor when the study has no
    absolute counts) and donor chimerism (`cytokit.plots`).
``plots/qc/<sample>.png``
    Per sample: every gate over its parent's events (PNG only: the dots are
    bitmaps in any format, and SVG would double the time for no gain).
``report.html``
    One self-contained page (`cytokit.report.page`): images embedded as PNG
    data URIs, CSS inline, no script, no external resource.

A patient id becomes a file name as is when it is made of letters, digits,
``.``, ``_`` and ``-``; otherwise unsafe characters are replaced and a short
hash of the id keeps names distinct. Every file is written atomically; the
same results give the same bytes (figures are rendered deterministically and
the page holds no time of its own: the analysis time shown is study.json's).
"""

from __future__ import annotations

from pathlib import Path

from cytokit._io import atomic_write_text
from cytokit._outdir import output_folder
from cytokit.analysis.outcomes import check_clinical_inputs
from cytokit.analysis.results import Results, load_results
from cytokit.errors import CytokitError
from cytokit.parquet import require_pyarrow
from cytokit.report.figures import write_plots
from cytokit.report.page import report_html

__all__ = ["REQUIRED_FILES", "build_report", "check_results_dir"]

#: Files a results folder must have for a report (the rest may be missing or empty); a
#: table's ``.parquet`` (``cytokit analyze --format parquet``) stands for its ``.csv``.
REQUIRED_FILES = ("study.json", "samples.csv", "chimerism.csv")


def check_results_dir(path: str | Path) -> Path:
    """`path` if it is a results folder, else a `CytokitError` naming what is missing."""
    path = Path(path)
    if not path.exists():
        raise CytokitError(f"{path}: no such folder; give the --out folder of `cytokit analyze`")
    if not path.is_dir():
        raise CytokitError(
            f"{path}: not a folder; give the --out folder of `cytokit analyze`, not a file in it"
        )
    missing = [
        name
        for name in REQUIRED_FILES
        if not (path / name).is_file()
        and not (name.endswith(".csv") and (path / name).with_suffix(".parquet").is_file())
    ]
    if missing:
        raise CytokitError(
            f"{path}: not a cytokit results folder (missing {', '.join(missing)}); "
            "run `cytokit analyze STUDY --out " + str(path) + "` first"
        )
    if not (path / "samples.csv").is_file():  # Parquet tables only: pyarrow reads them
        require_pyarrow()
    return path


def build_report(
    results_or_out_dir: Results | str | Path,
    out_dir: str | Path | None = None,
    *,
    formats: tuple[str, ...] = ("png", "svg"),
    qc: bool = True,
) -> Path:
    """Write the plots and ``report.html`` of an analysis; return the report's path.

    Parameters
    ----------
    results_or_out_dir : Results or path
        The `Results` of `cytokit.analyze` (written to a folder: QC plots read
        ``qc/*.npz`` there), or a results folder (read with `load_results`).
    out_dir : path, optional
        Where to write ``plots/`` and ``report.html`` (default: the results folder).
    formats : tuple of {"png", "svg"}
        File formats of the cohort and patient plots.
    qc : bool
        Draw the QC plots of every sample.

    Returns
    -------
    Path
        ``out_dir/report.html``.

    Raises
    ------
    CytokitError
        The folder is not a results folder (naming the files missing), a file
        of it cannot be read, `out_dir` is a file or holds a folder named
        ``report.html``, or in-memory results were given without `out_dir`.
    """
    if isinstance(results_or_out_dir, Results):
        results = results_or_out_dir
    else:
        results = load_results(check_results_dir(results_or_out_dir))
    out = Path(out_dir) if out_dir is not None else results.out
    if out is None:
        raise CytokitError(
            "these results were not written to a folder; give out_dir= to build_report"
        )
    check_clinical_inputs(results.study, results.out)
    output_folder(out, files=("report.html",), folders=("plots", "plots/qc"))
    plots = write_plots(results, out, formats=formats, qc=qc)
    page = report_html(results, plots)
    return atomic_write_text(out / "report.html", page)
