"""Files and report section of a clustering (`ClusterResult`).

`write_cluster_outputs` writes the tables and plots into a results folder;
`report_section` renders the clustering's part of ``report.html`` as an HTML
fragment (text escaped, images embedded), so the report needs no other file.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cytokit._io import atomic_write_text, frame_csv
from cytokit.cluster.flowsom import ClusteringError
from cytokit.cluster.plots import (
    DPI,
    abundance_figure,
    figure_bytes,
    heatmap_figure,
    save_figure,
)

__all__ = ["report_section", "write_cluster_outputs"]


def _csv(frame: pd.DataFrame, path: Path, *, index: bool = False) -> Path:
    return atomic_write_text(path, frame_csv(frame, index=index, float_format="%.6g"))


def write_cluster_outputs(
    result, out: str | Path, *, formats: tuple[str, ...] = ("png", "svg")
) -> dict[str, Path]:
    """Write a clustering's tables and plots into folder `out` (created if needed).

    Files: ``clusters.csv`` (`ClusterResult.table`), ``cluster_medians.csv``
    (metacluster, events, then one median column per marker),
    ``cluster_matching.csv`` (per gate; only with gates),
    ``clusters_heatmap.<fmt>``, ``clusters_abundance.<fmt>`` and, with donor
    flags, ``clusters_abundance_donor.<fmt>`` for each of `formats`.

    Returns
    -------
    dict of str to Path
        File name → path written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["clusters.csv"] = _csv(result.table, out / "clusters.csv")
    medians = result.medians.copy()
    medians.insert(0, "events", result.summary.set_index("metacluster")["events"])
    written["cluster_medians.csv"] = _csv(medians, out / "cluster_medians.csv", index=True)
    if len(result.matching):
        written["cluster_matching.csv"] = _csv(result.matching, out / "cluster_matching.csv")
    figures = {"clusters_heatmap": heatmap_figure(result.medians, result.summary)}
    figures["clusters_abundance"] = abundance_figure(result.table)
    if result.has_donor:
        figures["clusters_abundance_donor"] = abundance_figure(result.table, origin="donor")
    for stem, fig in figures.items():
        for fmt in formats:
            name = f"{stem}.{fmt}"
            written[name] = save_figure(fig, out / name)
    return written


def _image(fig, fmt: str, alt: str) -> str:
    if fmt == "png":
        data = base64.b64encode(figure_bytes(fig, "png", dpi=DPI)).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
    if fmt == "svg":
        svg = figure_bytes(fig, "svg").decode("utf-8")
        # inline SVG: drop the XML declaration and DOCTYPE, keep the <svg> element
        return svg[svg.index("<svg") :]
    raise ClusteringError(f"image format {fmt!r} for the report must be 'png' or 'svg'")


def _table_html(frame: pd.DataFrame, caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                text = "" if not np.isfinite(v) else f"{v:.3g}"
            else:
                text = str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="cytokit-table"><caption>{html.escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def report_section(
    result, *, title: str = "Clusters", image_format: str = "png", section_id: str = "clusters"
) -> str:
    """The clustering part of report.html as an HTML fragment.

    A ``<section>`` with a summary sentence, the median heatmap, the
    abundance-over-time plots (all events and, with donor flags, donor
    events), the per-metacluster summary and the gate matching. Text is
    HTML-escaped; images are embedded (base64 PNG or inline SVG).

    Parameters
    ----------
    result : ClusterResult
    title : str
    image_format : {"png", "svg"}
    section_id : str
        ``id`` of the section (letters, digits, ``-``, ``_``).

    Returns
    -------
    str
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", section_id):
        raise ClusteringError(
            f"section_id={section_id!r} must start with a letter and hold only letters, "
            "digits, '-' and '_'"
        )
    s = result.settings
    grid = s["grid"]
    text = (
        f"{result.n_events:,} events of {s['samples']} samples clustered on "
        f"{', '.join(result.markers)}: a {grid[0]} × {grid[1]} self-organising map trained on "
        f"{result.n_train:,} events (up to {s['per_sample']:,} per sample), "
        f"{s['metaclusters']} metaclusters, seed {s['seed']}."
    )
    parts = [
        f'<section class="cytokit-clusters" id="{section_id}">',
        f"<h2>{html.escape(title)}</h2>",
        f"<p>{html.escape(text)}</p>",
    ]
    figures = [
        (
            heatmap_figure(result.medians, result.summary),
            "Median marker values per metacluster (all events of the study).",
        ),
        (abundance_figure(result.table), "Share of each sample's events in each metacluster."),
    ]
    if result.has_donor:
        figures.append(
            (
                abundance_figure(result.table, origin="donor"),
                "Share of each sample's donor events in each metacluster.",
            )
        )
    for fig, caption in figures:
        parts.append(
            f"<figure>{_image(fig, image_format, caption)}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    summary = result.summary.copy()
    summary["fraction"] = 100.0 * summary["fraction"]
    summary = summary.rename(columns={"fraction": "% of events"})
    if "donor_fraction" in summary.columns:
        summary["donor_fraction"] = 100.0 * summary["donor_fraction"]
        summary = summary.rename(columns={"donor_fraction": "% donor"})
    parts.append(_table_html(summary, "Metaclusters"))
    if len(result.matching):
        parts.append(
            _table_html(
                result.matching,
                "Manual gates and the metaclusters that match them "
                "(those with most of their events in the gate; F1 of their union)",
            )
        )
    parts.append("</section>")
    return "\n".join(parts)
