"""A study's analysis as a FlowJo 10 workspace: every sample with the gates that counted it.

`export_wsp(RESULTS, OUT.wsp)` (``cytokit export-wsp``) reads the results
folder of ``cytokit analyze``, loads the study it names (``study.json``
``root``) and gates every analysed file again exactly as ``analyze`` did
(`cytokit.study.Study.gate`: the study's strategy, compensation, transforms,
gating seed, acquisition QC and non-finite events): each adaptive gate takes
the geometry it took on that file, and the counts are those of ``counts.csv``.
The workspace (`cytokit.gating.flowjo.write`) holds one group per patient (or
per tube), each sample with its own gates, its compensation matrix and display
transforms, its keywords, cytokit's counts, and a link to its FCS file relative
to the workspace.

Before anything is written the export checks that it shows what produced the
numbers: the strategy must have the digest recorded in ``study.json``, and
each file the SHA-256 of ``samples.csv``; a changed file is left out (listed
in `WorkspaceExport.skipped`) and the others go on, as does a file that can no
longer be read (its reason names the fix, e.g. checking its permissions). After it
is written, each file's counts gated again are
compared with ``counts.csv`` and the workspace is read back with cytokit's
FlowJo reader: any difference is a note (`WorkspaceExport.notes`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cytokit._outdir import not_a_results_file
from cytokit.errors import CytokitError

__all__ = ["GROUP_BY", "WorkspaceExport", "export_wsp"]

#: What the workspace's groups may be.
GROUP_BY = ("patient", "tube", "none")


@dataclass
class WorkspaceExport:
    """What `export_wsp` wrote.

    Attributes
    ----------
    path : Path
        The workspace.
    samples : list of str
        Each exported file, as the manifest names it.
    groups : list of str
        The groups besides ``All Samples``.
    skipped : dict of str to str
        Files of ``samples.csv`` left out, with the reason.
    notes : list of str
        Where FlowJo may count differently from cytokit: events acquisition QC
        or the non-finite check removed before gating; a rectangle side on
        FlowJo's axis end with events beyond it; and any count that differs
        when the file is gated again (from ``counts.csv``) or when the written
        workspace is read back by cytokit's FlowJo reader (both are checked
        on every export; none is expected).
    """

    path: Path
    samples: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def export_wsp(
    results: str | Path,
    out: str | Path,
    *,
    group_by: str = "patient",
    study: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> WorkspaceExport:
    """Write the FlowJo 10 workspace of an analysis.

    Parameters
    ----------
    results : path
        A folder written by ``cytokit analyze --out``.
    out : path
        The ``.wsp`` to write (atomically).
    group_by : {"patient", "tube", "none"}
        One FlowJo group per patient, per tube (the manifest's ``tube``), or
        ``All Samples`` only.
    study : path, optional
        The study folder, when it has moved since the analysis (default: the
        ``root`` recorded in ``study.json``).
    progress : callable, optional
        Called as ``progress(done, total, file)`` before each file is read and gated
        again, once the results folder and the study have been checked.

    Returns
    -------
    WorkspaceExport

    Raises
    ------
    CytokitError
        The results folder or study cannot be read, the study's strategy is
        not the one the results were made with, no file could be exported, or
        a gate FlowJo cannot hold (the message names it).
    """
    from cytokit.analysis.results import load_results
    from cytokit.engine._workers import read_failure
    from cytokit.engine.hashing import file_hash
    from cytokit.fcs import read_fcs
    from cytokit.gating.flowjo.write import WorkspaceEntry, WorkspaceWriteNotes, write_workspace
    from cytokit.study import load_study

    if group_by not in GROUP_BY:
        raise CytokitError(f"group_by={group_by!r}: use one of {', '.join(GROUP_BY)}")
    results = Path(results)
    out = Path(out)
    res = load_results(results)
    not_a_results_file(results, out, ".wsp")
    root = Path(study) if study is not None else Path(str(res.study.get("root", "")))
    if not (root / "study.toml").is_file():
        raise CytokitError(
            f"{results / 'study.json'}: the study folder {root} has no study.toml; if the study "
            "has moved, give its folder (--study DIR)"
        )
    st = load_study(root)
    changed = st.gating_changes(res.study.get("config"))
    if changed:
        raise CytokitError(
            f"{root}: study.toml's {', '.join(changed)} changed since the results in {results} "
            "were made, so the files gated again would not give the gates and counts of the "
            f"results; run `cytokit analyze {root} --out {results}` again, or set study.toml back"
        )
    digest = (res.study.get("strategy") or {}).get("digest")
    if digest and st.gating.digest() != digest:
        raise CytokitError(
            f"{root}: the gating strategy is not the one the results in {results} were made "
            "with (its digest differs from study.json's): a workspace of it would not show the "
            f"gates that counted; run `cytokit analyze {root} --out {results}` again"
        )
    files = st.gating_file_changes(res.study.get("gating_files"))
    if files:
        raise CytokitError(
            f"{root}: {', '.join(files)} changed since the results in {results} were made "
            "(what it holds, under the same name), so the files gated again would not give "
            f"the counts of the results; run `cytokit analyze {root} --out {results}` again, "
            "or put the file back"
        )
    rows = {st.relative(r.file): r for r in st.rows}
    done = WorkspaceExport(path=out)
    entries = []
    names = _sample_names([str(f) for f in res.samples["file"]])
    notes = WorkspaceWriteNotes()
    hashes = dict(zip(res.samples["file"], res.samples["sha256"], strict=True))
    fewer: list[tuple[int, int, str]] = []  # (events removed, events, sample) before gating
    for i, file in enumerate(res.samples["file"]):
        file = str(file)
        if progress is not None:
            progress(i, len(res.samples), file)
        row = rows.get(file)
        try:
            if row is None:
                raise CytokitError("the study's manifest no longer lists it")
            path = Path(row.file)
            if file_hash(path) != hashes[file]:
                raise CytokitError(
                    "its content changed since the analysis (SHA-256 differs from samples.csv)"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sample = read_fcs(path)
                n_file = sample.n_events
                result = st.gate(sample, membership=False, tube=st.tube_of(row))
        except CytokitError as exc:
            done.skipped[file] = str(exc)
            continue
        except OSError as exc:  # the workspace shows the other files; this one is said
            done.skipped[file] = read_failure(exc)
            continue
        if result.sample.n_events != n_file:
            fewer.append((n_file - result.sample.n_events, n_file, names[file]))
        if group_by == "patient":
            groups = (row.patient,)
        elif group_by == "tube":
            groups = (st.tube_of(row),)
        else:
            groups = ()
        uri = quote(Path(os.path.relpath(path, out.resolve().parent)).as_posix())
        _check_counts(names[file], result, res.counts[res.counts["file"] == file], notes.notes)
        entries.append(WorkspaceEntry(result, names[file], uri, groups))
        done.samples.append(file)
    if fewer:  # one note for them all: a note per file buried any other
        most = max(fewer)
        notes.notes.append(
            f"{len(fewer)} sample(s): cytokit gated fewer events than the file holds "
            "(acquisition QC or non-finite values removed the others first; most: "
            f"{most[2]}, {most[0]:,} of {most[1]:,} removed); FlowJo gates every event, so its "
            "counts of these will differ"
        )
    if not entries:
        raise CytokitError(
            f"{results}: no file could be exported: "
            + "; ".join(f"{f}: {why}" for f, why in done.skipped.items())
        )
    write_workspace(out, entries, notes=notes)
    _read_back(out, entries, notes.notes)
    done.groups = list(dict.fromkeys(g for e in entries for g in e.groups))
    done.notes = notes.notes
    return done


def _check_counts(name: str, result, rows, notes: list[str]) -> None:
    """Note each gate whose count, gated again, differs from counts.csv, and the gates
    counts.csv leaves uncounted (a failed donor marker), which FlowJo counts as drawn."""
    import pandas as pd

    want = dict(zip(rows["gate_path"], rows["count"], strict=True))
    uncounted = [p for p, c in want.items() if pd.isna(c)]
    if uncounted:
        notes.append(
            f"{name}: {len(uncounted)} gate(s) not counted in counts.csv (the sample's donor "
            "marker failed: see its note there); FlowJo counts them as drawn"
        )
    for path, count in zip(result.counts["gate_path"], result.counts["count"], strict=True):
        if path in want and not pd.isna(want[path]) and int(want[path]) != int(count):
            notes.append(
                f"{name}: gated again, {path} has {int(count):,} events where counts.csv has "
                f"{int(want[path]):,}"
            )


def _read_back(path: Path, entries, notes: list[str]) -> None:
    """Read the written workspace with cytokit's FlowJo reader; note every count it changes."""
    from cytokit.gating.flowjo import load_workspace

    ws = load_workspace(path)
    for e in entries:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = ws.strategy(sample=e.name).apply(
                e.result.sample, compensation=e.result.compensation, membership=False
            )
        got = dict(zip(again.counts["gate_path"], again.counts["count"], strict=True))
        for p, count in zip(e.result.counts["gate_path"], e.result.counts["count"], strict=True):
            if got.get(p) != count:
                notes.append(
                    f"{e.name}: the workspace read back by cytokit's FlowJo reader gives {p} "
                    f"{got.get(p)} events, cytokit counted {int(count):,}"
                )


def _sample_names(files: list[str]) -> dict[str, str]:
    """FlowJo sample names: the file name, or the manifest path where names repeat."""
    base = [Path(f).name for f in files]
    return {
        f: (b if base.count(b) == 1 else Path(f).as_posix())
        for f, b in zip(files, base, strict=True)
    }
