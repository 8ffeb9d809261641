"""``cytokit inspect FILE``: what an FCS file holds."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import typer

from cytokit.cli._text import printable


def inspect_fcs(path: Path, *, dataset: int = 0, stats: bool = False) -> dict:
    """Describe one data set of an FCS file as plain data (for printing or JSON)."""
    from cytokit.fcs import FCSWarning, read_fcs, read_fcs_datasets
    from cytokit.sample import spillover_conditioning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FCSWarning)
        datasets = read_fcs_datasets(path)
        if dataset >= len(datasets):  # numbered from 1 for people, as --dataset is
            raise typer.BadParameter(
                f"{dataset + 1}: {path} has {len(datasets)} data set(s); give 1 to {len(datasets)}",
                param_hint="'--dataset'",
            )
        sample = read_fcs(path, dataset=dataset, scale=True, mmap=True)
    notes = [str(w.message) for w in caught if issubclass(w.category, FCSWarning)]
    for w in caught:  # anything else goes on as usual
        if not issubclass(w.category, FCSWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    info: dict = {
        "file": str(path),
        "version": sample.version,
        "dataset": dataset + 1,  # 1 = the first, as --dataset
        "datasets": len(datasets),
        "events": sample.n_events,
        "channels": [],
        "spillover": None,
        "keywords": dict(sample.keywords),
        "warnings": list(dict.fromkeys(notes)),
    }
    for c in sample.channels:
        row = {
            "index": c.index + 1,
            "name": c.name,
            "marker": c.marker,
            "range": c.range,
            "bits": c.bits,
            "log": f"{c.log_decades:g},{c.log_offset:g}" if c.is_log else "",
            "gain": c.gain,
        }
        if stats and sample.n_events:
            col = np.asarray(sample.events[:, c.index], dtype=np.float64)
            finite = col[np.isfinite(col)]
            # of the finite values, and how many are not (None where none is: JSON null)
            row.update(
                min=float(finite.min()) if finite.size else None,
                median=float(np.median(finite)) if finite.size else None,
                max=float(finite.max()) if finite.size else None,
                nonfinite=int(col.size - finite.size),
            )
        info["channels"].append(row)
    info["time"] = _clock(sample)
    if sample.spillover is not None:
        why = spillover_conditioning(sample.spillover.matrix, sample.spillover.channels)
        if why:
            info["warnings"].append(
                f"{path}: the spillover matrix ({sample.spillover.source}) has {why}"
            )
        info["spillover"] = {
            "source": sample.spillover.source,
            "channels": list(sample.spillover.channels),
            "matrix": sample.spillover.matrix.tolist(),
        }
    return info


def _clock(sample) -> dict:
    """The time channel as the reader and acquisition QC find it: its name, seconds per
    unit (None: the file does not say) and the span from the first event to the last in
    those units; without one, the channels named like a clock (`clock_names`)."""
    from cytokit.fcs.channels import clock_names, time_column, time_unit_seconds

    col = time_column(sample.keyword, sample.channels)
    if col is None:
        return {"channel": None, "candidates": clock_names(sample.channels)}
    ends = np.asarray(sample.events[[0, -1], col], dtype=np.float64) if sample.n_events else []
    span = float(ends[1] - ends[0]) if len(ends) and np.isfinite(ends).all() else None
    return {
        "channel": sample.channels[col].name,
        "seconds_per_unit": time_unit_seconds(sample.keyword, sample.scaled),
        "span": span,
    }


def _clock_line(time: dict) -> str:
    if time["channel"] is None:
        line = "time: no Time channel ($PnN 'Time' or $PnTYPE 'Time')"
        if time["candidates"]:
            name = time["candidates"][0]
            line += (
                f"; {', '.join(map(repr, time['candidates'][:3]))} may hold the clock: "
                f"acquisition QC reads {name!r} with [acquisition_qc] time_channel = {name!r} "
                f"in study.toml, or cytokit gate --qc-time {name!r}"
            )
        return line
    line = f"time: {time['channel']}"
    span, unit = time["span"], time["seconds_per_unit"]
    if span is not None:
        line += (
            f", {span * unit:.4g} s from the first event to the last"
            if unit is not None
            else f", {span:.6g} time units from the first event to the last (the file gives "
            "no usable $TIMESTEP)"
        )
    return line


def _strict(value):
    """`value` as strict JSON holds it: a NaN or infinite number (a $PnG the file left
    odd) becomes null."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print(info: dict, show_keywords: bool) -> None:
    def echo(line: str) -> None:  # names and keywords come from the file: keep them inert
        typer.echo(printable(line))

    echo(f"{info['file']}")
    echo(
        f"  {info['version']}, data set {info['dataset']} of {info['datasets']}, "
        f"{info['events']:,} events × {len(info['channels'])} channels"
    )
    kw = {k.upper(): v for k, v in info["keywords"].items()}
    for key, label in (("$CYT", "instrument"), ("$DATE", "date"), ("$FIL", "file name")):
        if key in kw:
            echo(f"  {label}: {kw[key]}")
    echo(f"  {_clock_line(info['time'])}")
    has_stats = bool(info["channels"]) and "median" in info["channels"][0]
    header = f"  {'#':>3}  {'$PnN':<20} {'$PnS (marker)':<24} {'$PnR':>9} {'$PnB':>4} {'$PnE':>8} {'$PnG':>6}"
    if has_stats:
        header += f" {'min':>11} {'median':>11} {'max':>11}"
    echo(header)
    for c in info["channels"]:
        line = (
            f"  {c['index']:>3}  {c['name']:<20} {c['marker']:<24} {c['range']:>9.10g} "
            f"{c['bits']:>4} {c['log']:>8} {c['gain']:>6g}"
        )
        if has_stats:
            line += "".join(
                f" {'–':>11}" if c[k] is None else f" {c[k]:>11.4g}"
                for k in ("min", "median", "max")
            )
            if c["nonfinite"]:
                line += f"  ({c['nonfinite']:,} not finite)"
        echo(line)
    spill = info["spillover"]
    if spill is None:
        echo("  spillover: none")
    else:
        n = len(spill["channels"])
        echo(f"  spillover: {n}×{n} from {spill['source']}")
        width = max(len(c) for c in spill["channels"])
        echo("    " + " " * width + " " + " ".join(f"{c[:8]:>8}" for c in spill["channels"]))
        for name, row in zip(spill["channels"], spill["matrix"], strict=True):
            echo(f"    {name:<{width}} " + " ".join(f"{v:>8.4f}" for v in row))
    if show_keywords:
        echo("  keywords:")
        for k, v in info["keywords"].items():
            echo(f"    {k} = {v}")


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_command(
        file: Path = typer.Argument(..., help="An FCS file.", exists=False),
        dataset: int = typer.Option(
            1, "--dataset", "-d", min=1, help="Data set number (1 = first)."
        ),
        keywords: bool = typer.Option(False, "--keywords", "-k", help="List every keyword."),
        stats: bool = typer.Option(
            False, "--stats", "-s", help="Min, median and max of each channel."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    ) -> None:
        """Show an FCS file's keywords, channels, markers, spillover and event count."""
        info = inspect_fcs(file, dataset=dataset - 1, stats=stats)
        for note in info["warnings"]:  # the file was read around these deviations
            typer.echo(f"cytokit: warning: {printable(note)}", err=True)
        if as_json:
            typer.echo(json.dumps(_strict(info), indent=2, default=str, allow_nan=False))
        else:
            _print(info, keywords)
