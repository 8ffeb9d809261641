"""The plots and the HTML report of a study analysis, rebuilt from its stored results.

``build_report(OUT)`` reads the results folder (`cytokit.analysis.results.load_results`;
no FCS file, no study folder needed) and writes into it:

``plots/cohort_donor_per_ul.svg``, ``plots/cohort_donor_pct.svg``
    Every patient's persistence, a colour and end label per patient, line style by
    stratum (`cytokit.plots.cohort_svg`).
``plots/<patient>_persistence.svg``, ``plots/<patient>_chimerism.svg``
    Per patient: donor cells/µL by population (% donor when the study has no
    absolute counts) and donor chimerism (`cytokit.plots.persistence_svg`).
``plots/clusters_heatmap.svg``, ``plots/clusters_abundance_{all,donor}.svg``
    The clustering's medians and abundance over time (`cytokit.plots.clusters_svg`).
    Every figure above is drawn as SVG straight from the tables, without matplotlib
    (milliseconds a figure).
``plots/qc/<sample>.png``
    Per sample: every gate's parent events binned on the gate's axes (2-D histograms).
``plots/qc/<sample>.svg``
    The SVG drawn over it: axes, labels and gates (inlined in the page; on its own a
    standalone figure with the PNG as background).
``plots/acquisition/<sample>.png``
    Per file that went through acquisition QC: its event rate and signals over time.
``plots/img/<hash>.png``
    The figures sections draw while the page is written (outcomes),
    named by their content.
``plots/manifest.json``
    What each figure was drawn from (`cytokit.report.figures`): a rebuild redraws
    only the figures whose inputs changed.
``report.html``, ``patients/<patient>.html``
    The index (cohort summary, the list of patients, clusters, failures) and one
    page per patient (`cytokit.report.page`). Images are the files above, referenced
    relatively, so the folder opens from disk as it is; CSS inline, no script, no
    external resource.
``report.html`` with ``single_file=True``
    One self-contained page instead: every section, images embedded as data URIs.

``plots/digests.json``
    The SHA-256 of each file the figures' keys and checks read, with its size, times
    and inode: a file unchanged since is not read again to be hashed.
``plots/build.json``
    What the last build from a results folder read and wrote: each input's size,
    modification and change times and inode (the folder's tables, ``study.json``, ``tables.json``,
    ``qc/*.npz``) and each file written. A rebuild whose inputs and outputs are all as
    that build left them, with the same options and the same cytokit (version and the
    text of its source), returns at once: it reads no table and writes nothing. Any
    difference (a file touched, edited, removed) takes the full path, which itself
    redraws only what changed.

A patient id becomes a file name as is when it is made of letters, digits,
``.``, ``_`` and ``-``; otherwise unsafe characters are replaced and a short
hash of the id keeps names distinct. Every file is written atomically and only
when its bytes change; the same results give the same bytes (figures are
rendered deterministically and the page holds no time of its own: the analysis
time shown is study.json's; ``plots/build.json`` alone records files' times).
Pages and images an earlier build wrote that this
one does not (a patient no longer in the results, the other layout) are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cytokit._io import stat_key, write_if_changed
from cytokit._outdir import output_folder
from cytokit.errors import CytokitError

if TYPE_CHECKING:  # pragma: no cover
    from cytokit.analysis.results import Results

# The results, the page and the figures are imported when a build needs them: a rebuild
# that finds nothing changed reads and imports none of them.

__all__ = ["BUILD_STAMP", "REQUIRED_FILES", "build_report", "check_results_dir"]

_FORMATS = (".csv", ".parquet")

#: What the last build from a results folder read and wrote (see the module docstring).
BUILD_STAMP = "plots/build.json"

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
    if missing and (path / "study.toml").is_file():  # a study: its results go elsewhere
        raise CytokitError(
            f"{path}: a study folder (it holds study.toml), not the results of one; analyse "
            f"it into a folder of its own, `cytokit analyze {path} --out RESULTS`, then "
            "`cytokit report RESULTS`"
        )
    if missing and "study.json" not in missing:  # an analysis with tables gone
        from cytokit.analysis.tablesjson import rerun_advice

        raise CytokitError(
            f"{path}: the analysis there lacks {', '.join(missing)} (deleted, or the run "
            f"stopped before writing it); {rerun_advice(path)}"
        )
    analysis_only = ("samples", "chimerism", "trends")  # tables `cytokit gate` never writes
    if missing and any((path / f"{t}{x}").is_file() for t in analysis_only for x in _FORMATS):
        raise CytokitError(
            f"{path}: an analysis that stopped before its end (no study.json yet); run "
            f"`cytokit analyze STUDY --out {path}` again: it resumes from the files done"
        )
    if missing and (path / "counts.csv").is_file():  # what `cytokit gate` writes
        raise CytokitError(
            f"{path}: the tables of `cytokit gate` (counts.csv, no study.json); a report is "
            "of a study's analysis: run `cytokit analyze STUDY --out RESULTS` into a folder "
            "of its own, then `cytokit report RESULTS`"
        )
    if missing:
        raise CytokitError(
            f"{path}: not a cytokit results folder (missing {', '.join(missing)}); "
            "run `cytokit analyze STUDY --out " + str(path) + "` first"
        )
    if not (path / "samples.csv").is_file():  # Parquet tables only: pyarrow reads them
        from cytokit.parquet import require_pyarrow

        require_pyarrow()
    return path


def build_report(
    results_or_out_dir: Results | str | Path,
    out_dir: str | Path | None = None,
    *,
    formats: tuple[str, ...] = ("png",),
    qc: bool = True,
    single_file: bool = False,
) -> Path:
    """Write the plots and the report's pages of an analysis; return ``report.html``'s path.

    Parameters
    ----------
    results_or_out_dir : Results or path
        The `Results` of `cytokit.analyze` (written to a folder: QC plots read
        ``qc/*.npz`` there), or a results folder (read with `load_results`).
    out_dir : path, optional
        Where to write ``plots/`` and ``report.html`` (default: the results folder).
    formats : tuple of {"png", "svg"}
        Kept for callers of earlier versions (PNG figures, SVG copies on request): every
        figure is drawn as SVG now, and this changes nothing drawn.
    qc : bool
        Draw the QC plots of every sample.
    single_file : bool
        Write one self-contained ``report.html`` (images as data URIs) instead of the
        index and a page per patient.

    Returns
    -------
    Path
        ``out_dir/report.html`` (the index, or the single page).

    Raises
    ------
    CytokitError
        The folder is not a results folder (naming the files missing), a file
        of it cannot be read, `out_dir` is a file or holds a folder named
        ``report.html``, or in-memory results were given without `out_dir`.
    """
    key = None
    if not isinstance(results_or_out_dir, (str, os.PathLike)):  # a Results object
        results = results_or_out_dir
    else:
        folder = check_results_dir(results_or_out_dir)
        out = Path(out_dir) if out_dir is not None else folder
        options = {"formats": list(formats), "qc": qc, "single_file": single_file}
        key = _build_key(folder, options)
        if _unchanged(out, key):
            return out / "report.html"
        from cytokit.report.figures import workers_started

        # a first build of a large study: the figures' workers start while the tables load
        figures = len(os.listdir(folder / "qc")) if qc and (folder / "qc").is_dir() else 0
        with workers_started(out, figures):
            return _build(load_results(folder), out_dir, formats, qc, single_file, key)
    return _build(results, out_dir, formats, qc, single_file, key)


def _build(results: Results, out_dir, formats, qc, single_file, key) -> Path:
    """`build_report` from loaded results (`key`: the build's, None for a Results object)."""
    from cytokit.analysis.outcomes import check_clinical_inputs
    from cytokit.report.acquisition import drawn_figures
    from cytokit.report.figures import write_plots
    from cytokit.report.qcplots import qc_figures_later, resolve_qc_figures

    out = Path(out_dir) if out_dir is not None else results.out
    if out is None:
        raise CytokitError(
            "these results were not written to a folder; give out_dir= to build_report"
        )
    check_clinical_inputs(results.study, results.out)
    output_folder(
        out,
        files=("report.html",),
        folders=("plots", "plots/qc", "plots/acquisition", "patients"),
    )
    built = []

    def pages_meanwhile(plots) -> None:  # the pages link to the figures being drawn
        # (a mark for each QC figure, whose SVG the page inlines once it is drawn; a
        # single page is written after every figure, and embeds them at once)
        later_marks = contextlib.nullcontext([]) if single_file else qc_figures_later()
        with drawn_figures(plots), later_marks as later:
            built.append((*_pages(results, plots, out, single_file), later))

    # a single page embeds the figures' bytes: it is written once they are all drawn
    plots = write_plots(
        results, out, formats=formats, qc=qc, meanwhile=None if single_file else pages_meanwhile
    )
    if not built:
        pages_meanwhile(plots)
    ((pages, used, later),) = built
    pages = {path: resolve_qc_figures(text, later) for path, text in pages.items()}
    for path, text in pages.items():
        write_if_changed(path, text.encode("utf-8"))
    _remove_unused(out, set(pages), used)
    # in-memory results may differ from the files: no stamp then (an output they changed
    # no longer matches the last stamp, so the next build from the folder is a full one)
    if key is not None:
        written = [*pages, *plots.files, *used, out / "plots" / "manifest.json"]
        text = json.dumps({"key": key, "outputs": _stamps(out, written)}, sort_keys=True)
        write_if_changed(out / BUILD_STAMP, (text + "\n").encode("utf-8"))
    return out / "report.html"


def load_results(folder: Path) -> Results:
    """`cytokit.analysis.results.load_results` (imported on the first build that reads)."""
    from cytokit.analysis.results import load_results as load

    return load(folder)


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return stat_key(st)


def _build_key(folder: Path, options: dict) -> str:
    """SHA-256 of what a build from `folder` reads (each input's size, times and inode),
    the options and cytokit's version and source (not the folder's place; a copy of the
    folder takes the full path once, which rewrites only what changed).

    The inputs include the study folder's study.toml and the clinical files the results
    were computed from (study.json ``clinical_inputs``), whose change the report refuses
    (`cytokit.analysis.outcomes.check_clinical_inputs`): unchanged since a build that
    passed that check, they pass it again.
    """
    from cytokit._source import source_digest
    from cytokit._version import __version__

    inputs: dict[str, list[int] | None] = {}
    try:
        study = json.loads((folder / "study.json").read_text(encoding="utf-8"))
        root = Path(str(study["root"])) if study.get("root") else None
        names = list((study.get("clinical_inputs") or {}).get("files") or {})
    except (OSError, ValueError, AttributeError):
        root, names = None, []
    if root is not None:
        for name in ["study.toml", *names]:
            inputs[f"study:{name}"] = _stamp(root / name)
    for sub, suffixes in (("", (".csv", ".parquet", ".json")), ("qc", (".npz",))):
        try:
            entries = sorted(os.scandir(folder / sub), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(suffixes) and e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                inputs[f"{sub}/{e.name}".lstrip("/")] = stat_key(st)
    code = [__version__, source_digest()]
    text = json.dumps([1, code, options, inputs], sort_keys=True).encode("utf-8")
    return hashlib.sha256(text).hexdigest()


def _stamps(out: Path, paths) -> dict[str, list[int]]:
    stamps = {}
    for path in paths:
        st = Path(path).stat()
        stamps[Path(os.path.relpath(path, out)).as_posix()] = stat_key(st)
    return stamps


def _unchanged(out: Path, key: str) -> bool:
    """Whether the last build into `out` had this key and its outputs are as it left them."""
    try:
        data = json.loads((out / BUILD_STAMP).read_text(encoding="utf-8"))
        if data.get("key") != key or not data.get("outputs"):
            return False
        if any(_stamp(out / name) != stamp for name, stamp in data["outputs"].items()):
            return False
    except (OSError, ValueError, AttributeError, TypeError):
        return False
    return True


def _pages(
    results: Results, plots, out: Path, single_file: bool
) -> tuple[dict[Path, str], set[Path]]:
    """Each page's path and HTML, and the section images the pages use."""
    from cytokit.report._html import images_as_files
    from cytokit.report.contents import patients_of
    from cytokit.report.page import index_html, patient_flags, patient_html, report_html
    from cytokit.report.tables import split_by_patient

    pages: dict[Path, str] = {}
    used: set[Path] = set()
    with split_by_patient():
        if single_file:
            pages[out / "report.html"] = report_html(results, plots)
            return pages, used
        names = _page_names(patients_of(results))

        def link_from_index(_i: int, pid: str) -> str:
            return f"patients/{names[pid]}"

        def link_from_patient(_i: int, pid: str) -> str:
            return names[pid]

        flags = patient_flags(results)  # the index counts them, each page lists them
        with images_as_files(out, 0, used):
            pages[out / "report.html"] = index_html(results, plots, link_from_index, flags)
        with images_as_files(out, 1, used):
            for pid, name in names.items():
                pages[out / "patients" / name] = patient_html(
                    results,
                    plots,
                    pid,
                    index="../report.html",
                    link=link_from_patient,
                    flags=flags.get(pid),
                )
    return pages, used


def _page_names(patients: list[str]) -> dict[str, str]:
    """Patient → the file name of their page (distinct even where ids differ only in case,
    which some file systems do not tell apart)."""
    from cytokit.report.figures import file_stem

    names: dict[str, str] = {}
    taken: set[str] = set()
    for pid in patients:
        stem = file_stem(pid)
        if stem.lower() in taken:
            import hashlib

            stem = f"{stem}-{hashlib.sha1(pid.encode('utf-8')).hexdigest()[:8]}"
        taken.add(stem.lower())
        names[pid] = f"{stem}.html"
    return names


def _remove_unused(out: Path, pages: set[Path], used: set[Path]) -> None:
    """Remove the pages and section images an earlier build wrote that this one did not."""
    for path in sorted((out / "patients").glob("*.html")):
        if path not in pages:
            path.unlink(missing_ok=True)
    for path in sorted((out / "plots" / "img").glob("*.png")):
        if path not in used:
            path.unlink(missing_ok=True)
    for folder in (out / "patients", out / "plots" / "img"):
        with contextlib.suppress(OSError):  # kept where it holds anything else
            folder.rmdir()  # a single-file report: no page folder left empty
