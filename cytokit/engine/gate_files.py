"""Batch gating: `GateTask` gates one file; `gate_files` gates many into tables.

`GateTask` is a batch task (`cytokit.engine.runner`): it reads an FCS file, applies a
gating strategy and returns the file's counts and per-population statistics.
`GateTask.for_study` gates with a study's settings (its panel and transform
for a YAML strategy, its compensation and gating seed), giving each file the
counts `cytokit.analyze` gives it. A FlowJo workspace whose samples carry their
own gates (`per_sample`) gates each file with its own sample's tree.
`gate_files` runs it over many files with `cytokit.engine.runner.run_batch`, keeping
every finished file in ``OUT/results.sqlite`` (a rerun resumes), and writes
``counts.csv``, ``statistics.csv``, ``failures.csv`` and ``warnings.csv``
atomically. It is what
``cytokit gate`` runs.

Statistics are of *compensated scale values* (compensated with the matrix the
gates use, not transformed), per population and fluorescence channel:
``count`` (non-NaN values), ``mean``, ``median`` (exactly `numpy.median`) and
``rcv``, the robust CV ``100 · ½ · (Q(0.8413) − Q(0.1587)) / median`` with
`numpy.quantile`'s default (linear) method: the percentage a normal
distribution's SD is of its median (FlowJo's definition; negative when the
median is). NaN values are left out; a population without values gets NaN.
They come from `cytokit.kernels.population_stats`: blocks of events, exact
order statistics in bounded memory, no compensated copy of the channels.

Non-finite values follow `cytokit.finite`: an event with a NaN or an infinity
in a channel the gates or the statistics read is dropped before gating (the
root gates' ``parent_count`` is then the finite events), the number is in the
payload (``nonfinite_events``) and `GateRun.nonfinite_events`, and a file with
more than ``max_nonfinite`` (1 %) such events fails (stage ``values``).

Acquisition QC (``acquisition_qc`` settings, `cytokit.qc`; ``cytokit gate
--acquisition-qc``, or a study's ``[acquisition_qc]`` table) runs on the events
already read, before anything else: the events it removes are not gated, a
file whose verdict is ``fail`` fails (stage ``acquisition_qc``, no counts), and
`gate_files` then adds ``events_before_qc`` and ``events_after_qc`` to
``counts.csv`` and writes ``qc_samples.csv`` (one row per file: ``file`` and
`cytokit.qc.SUMMARY_COLUMNS`) and ``acquisition_qc.csv`` (one row per removed
time range: ``file`` and `cytokit.qc.RANGE_COLUMNS`). Without QC the tables
are what they were.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cytokit import kernels as K
from cytokit._io import csv_bytes, replace_together
from cytokit._outdir import output_folder, writing_into
from cytokit.engine.runner import BatchReport, run_batch, stage
from cytokit.engine.store import RunStore
from cytokit.errors import NO_EVENTS, CytokitError, FCSError
from cytokit.finite import MAX_NONFINITE, drop_nonfinite
from cytokit.gating import (
    FCS,
    UNCOMPENSATED,
    Dimension,
    GatingResult,
    GatingStrategy,
    load_strategy,
)
from cytokit.gating.compile import compile_plan_dims
from cytokit.parquet import frame_parquet, require_pyarrow, suffixes
from cytokit.qc import (
    RANGE_COLUMNS,
    RANGE_TYPES,
    SUMMARY_COLUMNS,
    SUMMARY_TYPES,
    AcquisitionQCSettings,
    file_record,
    screen,
)
from cytokit.sample import Sample, Spillover

if TYPE_CHECKING:
    from cytokit.study.panel import Panel

__all__ = [
    "COUNT_TABLE",
    "FAILURE_TABLE",
    "STATISTICS_TABLE",
    "TABLE_TYPES",
    "WARNING_TABLE",
    "GateRun",
    "GateTask",
    "expand_files",
    "file_channels",
    "fluorescence_channels",
    "gate_files",
    "gate_qc_settings",
    "population_statistics",
]

#: Columns of ``counts.csv``.
COUNT_TABLE = ("file", "gate_path", "gate_id", "count", "parent_count", "pct_parent", "pct_total")
#: Columns of ``statistics.csv``.
STATISTICS_TABLE = (
    "file",
    "gate_path",
    "gate_id",
    "channel",
    "marker",
    "count",
    "mean",
    "median",
    "rcv",
)
#: Columns of ``failures.csv``.
FAILURE_TABLE = ("file", "stage", "reason")
#: Columns of ``warnings.csv``: what a finished file was read or gated around.
WARNING_TABLE = ("file", "warning")
#: Column types of every table (`cytokit.parquet`), as ``--format parquet`` writes them.
TABLE_TYPES: dict[str, dict[str, str]] = {
    "counts": {
        "file": "string",
        "gate_path": "string",
        "gate_id": "string",
        "count": "int64",
        "parent_count": "int64",
        "pct_parent": "float64",
        "pct_total": "float64",
        "events_before_qc": "Int64",
        "events_after_qc": "Int64",
    },
    "statistics": {
        **dict.fromkeys(("file", "gate_path", "gate_id", "channel", "marker"), "string"),
        "count": "int64",
        **dict.fromkeys(("mean", "median", "rcv"), "float64"),
    },
    "failures": dict.fromkeys(FAILURE_TABLE, "string"),
    "warnings": dict.fromkeys(WARNING_TABLE, "string"),
    "qc_samples": {"file": "string", **SUMMARY_TYPES},
    "acquisition_qc": {"file": "string", **RANGE_TYPES},
}
RCV_LEVELS = (0.1587, 0.8413)
STORE_NAME = "results.sqlite"
# bump when GateTask's payload changes for the same inputs, so stored results are recomputed
# 2: gating's warnings kept with the reader's; 3: a file of several data sets says so;
# 4: with a study, a [panel] marker read from another marker's $PnS channel says so;
# 5: acquisition QC counts an event for each reason whatever other checks ran;
# 6: acquisition QC removes the events beside a gap, and the rate's own runs' events;
# 7: acquisition QC keeps a clock's end ticks and the good events of an edge bin, names dead
# detectors and sort keys; 8: acquisition QC's clock step ignores a time off its grid, TIMETICKS
# gives seconds, a log-amplified Time is not read as a clock, dead detectors are named
# whichever checks run; 9: acquisition QC judges a drift to the run's end by its broken line,
# and a noisy bright level no longer vetoes a drift; 10: a drift over the run's end sixth
# (no drift by its thirds) is judged by its broken line; 11: acquisition QC notes a
# $TIMESTEP that is no positive number and names a channel that says time but is no clock;
# 12: a gain stepped before mid-run and held is removed, not the start before it;
# 13: a gap's guard is its flank, at least 25 events' time (200 before); an empty bin
# where 50 events are expected is flagged whatever the spread; a clog's mild burst goes;
# 14: the good bins between two flagged runs are kept (no fill); 15: a channel's stretch
# that a bubble's or a clog's bins cut in two is read for a change of mix as one; 16: a
# drift is off at its far end (a gain restored in the run's last third is no drift); 17:
# nor a creep; 18: a run whose first and last sixths sit at one level is no drift, the
# bright cells judge a block in a channel another series leads, and place a block's edges;
# 19: the upper half follows a bright stretch within its noise, from its level outside it;
# 20: a string of single-bin flags, and a channel's stretch of one or two bins, are read for
# a change of mix (over the file's stretch); 21: a step from a held start needs the run's
# first sixth at that level; 22: a fluorescence stretch is read for a change of mix within
# cells of like scatter too; 23: which end a drift leaves is read in thirds of time where a
# clog and a bubble left bins out; 24: a bin between two of the rate's flagged bins is not
# read for the signal; 25: a bubble's gap and slow flanks are left out of the rate line's fit;
# 26: a drift whose broken line bends in a clog's gap is no creep; 27: nor one that held its
# level up to the gap, and a drift's early reading across gaps must fit better by GAP_CHI2;
# 28: a drift that reaches its change and holds it starts where its ramp's line is off;
# 29: a run that a block off its level and back fits better than its drift is no drift, and
# a block's run carried to the run's start or end is cut there where a window lies at the level;
# 30: the bright level judges stretches off it from 40 bins (a 10,000-event file), not 50;
# 31: a drift from a held start that reaches its change by mid-run is no warm-up, and a block
# must beat a late drift's held ramp too; 32: a drift from a held start that holds its change
# is no creep; 33: a ramp from a held start is no step, a block must beat it, and a start held
# for a twentieth of the run that fits clearly better is no warm-up; 34: a creep too faint to
# name does not lead a channel's series that held a level
_TASK_VERSION = 34


def _compensation(value) -> str | Spillover | None:
    """``"file"``, None (no compensation) or a Spillover, from what users may pass."""
    if value is None or isinstance(value, Spillover):
        return value
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if text.lower() == "file":
            return "file"
        if text.lower() == "none":
            return None
        from cytokit.study.spillover_csv import read_spillover_csv

        return read_spillover_csv(text)
    raise TypeError(
        f"compensation={value!r}: use 'file' (each file's spillover keyword), 'none', a CSV "
        "matrix path or a cytokit.Spillover"
    )


def _compensation_id(comp: str | Spillover | None) -> str | dict:
    if comp is None or isinstance(comp, str):
        return "none" if comp is None else comp
    h = hashlib.sha256(repr(comp.channels).encode())
    h.update(np.ascontiguousarray(comp.matrix, dtype="<f8").tobytes())
    return {"channels": list(comp.channels), "sha256": h.hexdigest(), "source": comp.source}


def fluorescence_channels(sample: Sample, spillover: Spillover | None) -> tuple[str, ...]:
    """The channels statistics are reported for: the spillover matrix's channels when the
    sample is compensated, else every channel but scatter (``FSC*``, ``SSC*``) and time."""
    if spillover is not None:
        return tuple(spillover.channels)
    out = []
    for c in sample.channels:
        upper = c.name.upper()
        if upper.startswith(("FSC", "SSC")) or "TIME" in upper:
            continue
        out.append(c.name)
    return tuple(out)


def _statistics_dims(sample: Sample, cols: list[int], spill: Spillover | None) -> list[Dimension]:
    """One untransformed dimension per column: compensated with `spill` when the matrix
    covers the column (as the gates compensate), else the scale value itself."""
    spill_cols = {} if spill is None else {sample.channel_index(c): c for c in spill.channels}
    return [
        Dimension(spill_cols[c], compensation=FCS)
        if c in spill_cols
        else Dimension(sample.channels[c].name, compensation=UNCOMPENSATED)
        for c in cols
    ]


def population_statistics(
    result: GatingResult, channels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Count, mean, median and robust CV of compensated scale values per population and channel.

    Computed by `cytokit.kernels.population_stats` from the events in blocks
    (bounded memory: no compensated copy of the channels, no copy of a
    population's values); medians and quantiles are exact (the member values
    themselves, combined as numpy combines them).

    Parameters
    ----------
    result : GatingResult
        From `GatingStrategy.apply`; with ``membership=True`` the stored
        membership is read, otherwise the gates are evaluated again.
    channels : sequence of str, optional
        ``$PnN`` or ``$PnS`` names; default `fluorescence_channels`.

    Returns
    -------
    DataFrame
        ``gate_path, gate_id, channel, marker, count, mean, median, rcv``: one
        row per population (strategy order) and channel (see the module docstring).
    """
    sample = result.sample
    spill = result.compensation
    names = fluorescence_channels(sample, spill) if channels is None else channels
    cols = [sample.channel_index(n) for n in names]
    resolver = result.strategy.resolver(sample, spill)
    plan, rows, dims = compile_plan_dims(
        result.strategy.gates, resolver, _statistics_dims(sample, cols, spill)
    )
    order = [rows[p.id] for p in result.populations]
    st = K.population_stats(
        sample.events,
        plan,
        result.packed,
        order,
        dims,
        membership_gates=order if result.packed is not None else None,
    )
    out = []
    for i, pop in enumerate(result.populations):
        for j, c in enumerate(cols):
            ch = sample.channels[c]
            out.append(
                (
                    pop.path,
                    pop.id,
                    ch.name,
                    ch.marker,
                    int(st.count[i, j]),
                    float(st.mean[i, j]),
                    float(st.median[i, j]),
                    float(st.rcv[i, j]),
                )
            )
    return pd.DataFrame(out, columns=list(STATISTICS_TABLE[1:]))


class GateTask:
    """Batch task: gate one FCS file with a strategy; counts and statistics as the payload.

    Parameters
    ----------
    strategy : GatingStrategy or path
        A strategy, or a file for `cytokit.gating.load_strategy`.
    compensation : "file", "none", None, path or Spillover
        What ``FCS``-compensated dimensions (and the statistics) use: each
        file's own spillover keyword (default), none, a CSV matrix
        (`cytokit.study.spillover_csv`) or a given matrix.
    statistics : bool
        Also compute `population_statistics`.
    channels : sequence of str, optional
        Channels for the statistics (default `fluorescence_channels`).
    seed : int
        Seed of adaptive gates' subsampling (see `GatingStrategy.apply`).
    max_nonfinite : float
        Largest fraction of a file's events dropped for non-finite values
        before the file fails (`cytokit.finite`).
    acquisition_qc : AcquisitionQCSettings, optional
        Acquisition QC before gating (default None: none; settings with
        ``enabled = false`` count as none).

    Notes
    -----
    The payload is ``{"counts": GatingResult.counts, "statistics": ...,
    "n_events": int, "nonfinite_events": int, "nonfinite": dict, "warnings":
    [str]}``: ``n_events`` counts every event of the file, ``nonfinite_events``
    those dropped; the warnings reading and gating raised
    (`cytokit.fcs.FCSWarning`, an adaptive gate's fallback, a nearly singular
    spillover matrix), each once and without the file name.
    ``key`` digests the strategy, the options, the payload version and the
    cytokit version: changing any of them recomputes stored files.
    """

    kind = "gate"

    def __init__(
        self,
        strategy: GatingStrategy | str | os.PathLike,
        *,
        compensation="file",
        statistics: bool = True,
        channels: Sequence[str] | None = None,
        seed: int = 0,
        max_nonfinite: float = MAX_NONFINITE,
        acquisition_qc: AcquisitionQCSettings | None = None,
        screen: tuple[Panel, Sequence[str], Sequence[str]] | None = None,
    ) -> None:
        self.workspace, self._trees, self._source = None, {}, ""
        if isinstance(strategy, (str, os.PathLike)):
            ws = _workspace_file(strategy)  # read once: its own tree, or one per sample
            if ws is not None and per_sample(ws):  # each file gets its own sample's tree
                self.workspace = ws
                self._source = hashlib.sha256(Path(strategy).read_bytes()).hexdigest()
                strategy = None
            else:
                strategy = ws.strategy() if ws is not None else load_strategy(strategy)
        if self.workspace is None and not isinstance(strategy, GatingStrategy):
            raise TypeError(f"strategy must be a GatingStrategy or a path, got {strategy!r}")
        self.strategy = strategy
        self.compensation = _compensation(compensation)
        self.statistics = bool(statistics)
        self.channels = None if channels is None else tuple(channels)
        self.seed = int(seed)
        self.max_nonfinite = float(max_nonfinite)
        if acquisition_qc is not None and not acquisition_qc.enabled:
            acquisition_qc = None
        self.acquisition_qc = acquisition_qc
        # (panel, measured markers, donor markers: a file reads one of them)
        self.screen = None if screen is None else (screen[0], tuple(screen[1]), tuple(screen[2]))
        self.key = hashlib.sha256(json.dumps(self._identity(), sort_keys=True).encode()).hexdigest()
        #: absolute path -> where a list names the file (`for_study`: its manifest line), for
        #: the failure of a file that is not there (`cytokit.engine.runner.run_batch`)
        self.listed: dict[str, str] = {}

    @classmethod
    def for_study(
        cls,
        study,
        strategy: GatingStrategy | str | os.PathLike | None = None,
        *,
        statistics: bool = True,
        channels: Sequence[str] | None = None,
        acquisition_qc: AcquisitionQCSettings | bool | None = None,
        tube: str = "default",
    ) -> GateTask:
        """The task that gates files as `cytokit.analyze` gates a study's (of one tube).

        The study's strategy, read with its ``[panel]`` and ``[transform]``
        (`cytokit.study.Study.load_strategy`), its compensation, its
        ``[gating] seed`` and ``[qc] max_nonfinite``: a file gets the counts
        ``analyze`` gives it.

        Parameters
        ----------
        study : cytokit.study.Study or path
            A loaded study or its folder (loaded without opening the FCS files).
        strategy : GatingStrategy or path, optional
            Another strategy to use with the study's settings; a path is
            relative to the study folder. Default: the study's own.
        statistics, channels
            As for `GateTask`.
        acquisition_qc : AcquisitionQCSettings or bool, optional
            Default: the study's ``[acquisition_qc]`` (none without the table),
            as ``analyze`` does. True: the study's settings, or the defaults
            when it has none; False: no QC; settings: these.
        tube : str
            The tube whose files are gated: its strategy (unless `strategy` is
            given) and panel (`cytokit.study.Study.tube_strategy`).

        Raises
        ------
        StudyError
            The study folder has problems (all listed).
        GatingError
            The strategy cannot be read with the study's settings.
        """
        from cytokit.study.folder import Study, load_study

        if not isinstance(study, Study):
            study = load_study(study, check_files=False)
        study.tube(tube)  # an unknown tube is refused, naming the study's tubes
        listed = {os.path.abspath(row.file): study.listing(row) for row in study.rows}
        if isinstance(strategy, GatingStrategy):
            gating = strategy
        elif strategy is None:
            gating = study.tube_strategy(tube)
        else:
            gating = study.load_strategy(strategy)
        task = cls(
            gating,
            compensation=study.compensation(),
            statistics=statistics,
            channels=channels,
            seed=study.settings.gating_seed,
            max_nonfinite=study.settings.max_nonfinite,
            acquisition_qc=_study_qc(study, acquisition_qc),
            screen=(
                study.tube_panel(tube),
                study.tube_measured_markers(tube),
                study.tube_donor_markers(tube),
            ),
        )
        task.listed = listed
        return task

    def _identity(self) -> dict:
        """Everything the output depends on; the key is its digest."""
        from cytokit._version import __version__

        comp = _compensation_id(self.compensation)
        if isinstance(comp, dict):
            comp = {k: v for k, v in comp.items() if k != "source"}
        return (
            {
                "task": "gate",
                "version": _TASK_VERSION,
                "cytokit": __version__,
                "strategy": (
                    self.strategy.digest()
                    if self.workspace is None
                    else f"workspace per sample {self._source}"
                ),
                "compensation": comp,
                "statistics": self.statistics,
                "channels": None if self.channels is None else list(self.channels),
                "seed": self.seed,
                "max_nonfinite": self.max_nonfinite,
            }
            | ({"acquisition_qc": self.acquisition_qc.as_dict()} if self.acquisition_qc else {})
            | (
                {
                    "screen": [
                        dict(self.screen[0].markers),
                        list(self.screen[1]),
                        list(self.screen[2]),
                    ]
                }
                if self.screen
                else {}
            )
        )

    def describe(self) -> dict:
        """What the key stands for, and where the strategy and matrix came from (for people)."""
        out = self._identity()
        out["strategy_source"] = (
            self.strategy.source if self.workspace is None else str(self.workspace.path)
        )
        out["compensation"] = _compensation_id(self.compensation)
        return out

    def __call__(self, path: Path) -> dict:
        from cytokit.fcs import read_fcs

        path = Path(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with stage("read"):
                sample = read_fcs(path)
                if sample.n_events == 0:
                    raise FCSError(NO_EVENTS)
            n_file = sample.n_events
            qc_record, finite = None, ()
            if self.acquisition_qc is not None:
                with stage("acquisition_qc"):
                    sample, qc = screen(sample, self.acquisition_qc, where=str(path), in_place=True)
                    qc_record, finite = file_record(qc), qc.finite_columns
            with stage("gate"):
                strategy = self.strategy_for(sample)
                read = self._screened(sample, strategy)
            with stage("values"):
                sample, nonfinite = drop_nonfinite(
                    sample,
                    read,
                    max_fraction=self.max_nonfinite,
                    known_finite=finite,
                    optional=self._statistics_only(sample, strategy, read),
                )
            with stage("gate"):
                result = strategy.apply(
                    sample,
                    compensation=self.compensation,
                    membership=self.statistics,
                    seed=self.seed,
                )
        payload: dict = {
            "counts": result.counts,
            "n_events": n_file,
            "nonfinite_events": nonfinite.events,
            "nonfinite": nonfinite.as_dict(),
            "warnings": about_file([str(w.message) for w in caught], path),
        }
        if nonfinite.events:
            # the tables' own account of why the root's parent_count is below the events
            # read (or events_after_qc): warnings.csv says it, not only the terminal
            payload["warnings"].append(
                f"{nonfinite.events} event(s) with NaN or infinite values in a channel the "
                f"gates read were dropped before gating ({nonfinite.summary()})"
            )
        if qc_record is not None:
            payload["acquisition_qc"] = qc_record
        if self.statistics:
            with stage("statistics"):
                payload["statistics"] = population_statistics(result, self.channels)
        return payload

    def strategy_for(self, sample: Sample) -> GatingStrategy:
        """The strategy that gates `sample`: the task's, or with a workspace whose samples
        carry their own gates (`per_sample`) the tree of the workspace sample
        the file is (matched by file name, ``$FIL`` and event count; none is an error)."""
        if self.workspace is None:
            return self.strategy
        found = self.workspace.find(sample)
        tree = self._trees.get(found.id)
        if tree is None:
            tree = self._trees[found.id] = self.workspace.strategy(sample=found.id)
        return tree

    def _screened(self, sample: Sample, strategy: GatingStrategy) -> list[int]:
        """Columns whose NaN or infinite values drop an event: with a study (``--study``),
        the study's own (`cytokit.study.folder.screened_columns`, as analyze screens; the
        statistics of other channels skip such values); else the gates' and the statistics'."""
        if self.screen is not None:
            from cytokit.study.folder import screened_columns  # only with a study

            panel, markers, donors = self.screen
            for said in panel.relabelled(sample.channels, markers, donors):
                warnings.warn(said, stacklevel=2)  # the file's warnings, as analyze gives them
            return screened_columns(strategy, sample, panel, markers, self.compensation)
        return strategy.read_columns(
            sample, self._statistics_dims(sample, strategy), compensation=self.compensation
        )

    def _statistics_only(self, sample, strategy, read) -> tuple[list[int], str] | None:
        """The screened columns the gates do not read themselves, and how to do without
        them: those only the statistics read, or (without a study) those only the
        compensation mixes into the channels the gates read (a dead detector the
        strategy never names spreads its NaN through the file's spillover matrix)."""
        if self.screen is not None:
            return None
        gates = set(strategy.read_columns(sample, [], compensation=self.compensation))
        only = [j for j in read if j not in gates] if self.statistics else []
        mixed = []
        c = self.compensation
        if not (c is None or (isinstance(c, str) and c.lower() == "none")):
            own = set(strategy.read_columns(sample, [], compensation="none"))
            mixed = [j for j in read if j in gates and j not in own]
        if not only and not mixed:
            return None
        stats = "--no-stats to leave the statistics out"
        if not mixed:
            return (
                only,
                f"only the per-population statistics read it (the gates do not): gate with {stats}",
            )
        advice = (
            "the gates do not read it, but the compensation mixes it into the channels they "
            "read (the spillover matrix covers it), so its NaN spread into them: gate with "
            "--compensation none, or with a spillover matrix CSV that leaves it out"
        )
        if self.statistics:
            advice += f", and with {stats} (without compensation they read it too)"
        return [*only, *mixed], advice

    def _statistics_dims(self, sample: Sample, strategy: GatingStrategy) -> list[Dimension]:
        """The statistics channels as dimensions (compensated where the matrix covers them)."""
        if not self.statistics:
            return []
        spill = strategy.resolver(sample, self.compensation).spillover
        names = fluorescence_channels(sample, spill) if self.channels is None else self.channels
        comp = UNCOMPENSATED if spill is None else FCS
        return [Dimension(n, compensation=comp) for n in names]

    def __repr__(self) -> str:
        what = self.strategy if self.workspace is None else f"per sample of {self.workspace.path}"
        return f"<GateTask {self.key[:12]} {what!r}>"


def _workspace_file(path: str | os.PathLike):
    """The FlowJo workspace of a ``.wsp`` file, else None (`load_strategy` reads it)."""
    from cytokit.gating.flowjo import load_workspace

    p = Path(path)
    return load_workspace(p) if p.suffix.lower() == ".wsp" and p.is_file() else None


def per_sample(workspace) -> bool:
    """Whether the samples of a FlowJo `workspace` carry their own gates and no tree serves
    them all (several samples, no gates in ``All Samples``: as FlowJo keeps
    sample-specific gates, and as ``cytokit export-wsp`` writes); else its one tree is
    the strategy (`Workspace.strategy`, as `cytokit.gating.load_strategy` reads it)."""
    from cytokit.gating.flowjo.workspace import ALL_SAMPLES

    shared = any(g.name == ALL_SAMPLES and g.has_gates for g in workspace.groups)
    return len(workspace.samples) > 1 and not shared


def _study_qc(study, choice) -> AcquisitionQCSettings | None:
    """The acquisition-QC settings `GateTask.for_study` uses (see its `acquisition_qc`)."""
    if isinstance(choice, AcquisitionQCSettings):
        return choice
    if choice is None:
        return study.settings.qc_settings
    if not choice:
        return None
    own = study.settings.acquisition_qc
    return own.changed(enabled=True) if own is not None else AcquisitionQCSettings()


def gate_qc_settings(
    study_qc: AcquisitionQCSettings | None,
    enabled: bool | None = None,
    *,
    sensitivity: str | None = None,
    max_removed_pct: float | None = None,
    exclude_channels: Sequence[str] | None = None,
    time_channel: str | None = None,
    checks: Sequence[str] | None = None,
) -> AcquisitionQCSettings | None:
    """The acquisition-QC settings of ``cytokit gate`` from its options.

    Parameters
    ----------
    study_qc : AcquisitionQCSettings or None
        The study's ``[acquisition_qc]`` (``--study``), else None.
    enabled : bool, optional
        ``--acquisition-qc`` (True) / ``--no-acquisition-qc`` (False); None:
        the study's choice, or on when any other option is given.
    sensitivity, max_removed_pct : optional
        ``--qc-sensitivity`` and ``--qc-max-removed``: replace the study's (or
        the default) values; a warning level above the new maximum is lowered
        to it.
    exclude_channels : sequence of str, optional
        ``--qc-exclude``: channels left out of QC, besides the study's.
    time_channel : str, optional
        ``--qc-time``: the channel read as the acquisition clock, in place of the
        study's ``time_channel`` (and of the file's Time channel).
    checks : sequence of str, optional
        ``--qc-checks``: the checks run, in place of the study's.

    Returns
    -------
    AcquisitionQCSettings or None
        None: no QC.

    Raises
    ------
    StudyError
        A value out of range (named, with what is allowed).
    """
    if enabled is None:
        on = study_qc is not None and study_qc.enabled
        given = (sensitivity, max_removed_pct, exclude_channels or None, time_channel, checks)
        enabled = on or any(x is not None for x in given)
    if not enabled:
        return None
    base = study_qc if study_qc is not None else AcquisitionQCSettings()
    changes: dict = {"enabled": True}
    if not base.checks:  # a study's table that turned QC off need name no check: all run
        changes["checks"] = AcquisitionQCSettings().checks
    if sensitivity is not None:
        changes["sensitivity"] = sensitivity
    if max_removed_pct is not None:
        changes["max_removed_pct"] = max_removed_pct
        # a warning level the study set is lowered to the maximum where above it; one it
        # did not set follows the new maximum (`AcquisitionQCSettings.changed`)
        if not base.warn_follows_max:
            changes["warn_removed_pct"] = min(base.warn_removed_pct, max_removed_pct)
    if exclude_channels:
        extra = [c for c in exclude_channels if c not in base.exclude_channels]
        changes["exclude_channels"] = (*base.exclude_channels, *extra)
    if time_channel is not None:
        changes["time_channel"] = time_channel
    if checks is not None:
        changes["checks"] = tuple(checks)
    return base.changed(**changes)


def file_channels(paths: Sequence[str], wanted: Iterable[str]) -> tuple[set[tuple[str, str]], int]:
    """``($PnN, $PnS)`` of the channels of `paths` and how many files were read, for
    `cytokit.qc.settings.unknown_exclusions`.

    Headers are read until every name of `wanted` is among them, so a batch whose
    first file has them all costs one header; unreadable files are skipped (the batch
    reports them).
    """
    from cytokit.fcs import read_fcs

    wanted = set(wanted)
    seen: set[tuple[str, str]] = set()
    n_read = 0
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sample = read_fcs(path, mmap=True, scale=False)
        except (CytokitError, OSError):
            continue
        n_read += 1
        seen.update((c.name, c.marker) for c in sample.channels)
        if wanted <= {n for n, _ in seen}:
            break
    return seen, n_read


def _check_exclusions(qc: AcquisitionQCSettings | None, files: list[str]) -> None:
    """Refuse excluded QC channels that none of `files` has: a typo'd name would leave
    checked the channel it meant to leave out (the CLI says the same before this); and
    a QC time channel none has, which would leave every file's rate unchecked. A
    study's task passes every file of the study, of every tube: its ``[acquisition_qc]``
    may name a channel only another tube's files have."""
    from cytokit.qc.settings import unknown_exclusions

    if qc is None or not (qc.exclude_channels or qc.time_channel):
        return
    clock = [qc.time_channel] if qc.time_channel is not None else []
    channels, n_read = file_channels(files, [*qc.exclude_channels, *clock])
    found = unknown_exclusions(
        qc.exclude_channels, channels, "acquisition_qc.exclude_channels", n_read
    ) + unknown_exclusions(clock, channels, "acquisition_qc.time_channel", n_read)
    if found:
        raise ValueError("\n".join(found))


def about_file(messages: list[str], path: Path) -> list[str]:
    """Each message once, without the leading file name (the caller names the file)."""
    out = []
    for text in messages:
        for prefix in (f"{path}: ", f"{path.name}: "):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        out.append(" ".join(text.split()))
    return list(dict.fromkeys(out))


def _compile_first(files: list[str], workers, scheduler, statistics: bool) -> bool:
    """Whether to gate the first file alone in this process: several local worker
    processes would start, and the gating (and statistics) kernels are not in Numba's
    on-disk cache yet."""
    from cytokit.kernels import _statpass, fused
    from cytokit.kernels._config import is_cached

    many = workers is None or workers > 1
    local = scheduler in (None, "processes", "local")
    if len(files) < 2 or not many or not local:
        return False
    kernels = [fused._evaluate, *([_statpass._pass] if statistics else [])]
    return not all(is_cached(k) for k in kernels)


def _first_run_here(first: BatchReport, report: BatchReport) -> BatchReport:
    """`report` with the file `first` ran counted as gated by this run, not taken from
    the store, and the time `first` took added."""
    ran = {f.path: f for f in first.files if not f.cached}
    files = [
        replace(f, cached=False, seconds=ran[f.path].seconds) if f.path in ran and f.cached else f
        for f in report.files
    ]
    return replace(report, files=files, elapsed=report.elapsed + first.elapsed)


def _unlisted(folder: str, error: OSError) -> str:
    """What to say of a folder that could not be listed: its FCS files are not gated."""
    reason = error.strerror or str(error)
    return (
        f"{folder}: {reason}; it cannot be listed, so no FCS file in it is gated: check its "
        "permissions"
    )


def _walk_folder(folder: Path, unlisted: list[str]) -> list[str]:
    """Every entry named ``*.fcs`` below `folder`, sorted; folders that cannot be listed
    are said in `unlisted`.

    Not only regular files: a FIFO, a dangling or looping link, or a link to a folder
    named like an FCS file is kept, so that the batch reports it as that file's failure
    instead of leaving it out without a word. A folder named ``x.fcs`` is walked like any
    other and kept itself only when nothing below it is (its files are what is meant).
    Links to folders are not followed (a link loop would never end).
    """
    found: list[str] = []
    walked: list[str] = []  # folders named *.fcs that were walked
    for top, dirs, files in os.walk(
        folder, onerror=lambda e: unlisted.append(_unlisted(str(Path(e.filename)), e))
    ):
        for name in [*files, *dirs]:
            if Path(name).suffix.lower() != ".fcs":
                continue
            entry = str(Path(top) / name)  # spelt as the folder was given ("x.fcs", not "./x.fcs")
            if name in dirs and not os.path.islink(entry):
                walked.append(entry)
            else:
                found.append(entry)
    for entry in reversed(walked):  # the deepest first: "a.fcs/b.fcs" empty names b.fcs only
        if not any(f.startswith(entry + os.sep) for f in found):
            found.append(entry)  # reported as "a directory, not a regular file"
    return sorted(found)


def _unreadable_folders(pattern: str) -> list[str]:
    """The folders `glob.glob` would have to list for `pattern` but cannot (glob leaves
    them out without a word), each said as `_unlisted` says it."""
    parent = os.path.dirname(pattern)
    if not parent or parent == pattern:
        return []
    said = []
    if glob.has_magic(parent):
        said = _unreadable_folders(parent)
        folders = glob.glob(parent, recursive=True)
    else:
        folders = [parent]
    for folder in folders:
        if os.path.lexists(folder) and not os.path.isdir(folder):
            continue  # a file, a FIFO, a dangling link: no folder, nothing glob would list
        try:
            with os.scandir(folder):
                pass
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                continue  # no folder there: the pattern matches nothing, and says so
            said.append(_unlisted(folder, exc))
    return said


def expand_files(
    items: Iterable[str | os.PathLike], left_out: list[str] | None = None
) -> list[str]:
    """FCS files named by `items`: files as given, folders (every ``*.fcs`` inside,
    recursively, sorted) and glob patterns (sorted). A file named again, however
    it is spelt (relative or absolute, through a link), is kept once, as first
    given.

    Inside a folder, every entry named ``*.fcs`` is kept, not only regular files:
    a FIFO, a dangling or looping link or a folder named ``x.fcs`` holding no FCS
    file then fails in the batch with its reason (``failures.csv``), as it does
    when a pattern or its own name gives it.

    With `left_out` (a list), a folder without FCS files, a pattern that matches
    nothing, and a folder (or a pattern's folder) that cannot be listed, such as
    one without read permission, is said there and the others are gated (a
    weekly batch whose drop folder is empty this week); the error stands when
    nothing at all is found.

    Raises
    ------
    CytokitError
        A folder without FCS files, a pattern that matches nothing, or a folder
        that cannot be listed (without `left_out`, or when no item names a file).
    """
    out: dict[str, str] = {}  # the resolved path: the file as first given
    empty: list[str] = []
    for item in items:
        text = os.fspath(item)
        # os.path answers False where Path raises (a name inside a folder without search
        # permission): such an item is a pattern to glob, or a file the batch fails to open
        if os.path.isdir(text):
            unlisted: list[str] = []
            found = _walk_folder(Path(text), unlisted)
            empty += unlisted
            if not found and not unlisted:
                empty.append(f"{text}: no .fcs files in this folder")
        elif not os.path.exists(text) and glob.has_magic(text):
            found = sorted(glob.glob(text, recursive=True))
            unlisted = _unreadable_folders(text)
            empty += unlisted
            if not found and not unlisted:
                empty.append(f"{text}: no files match this pattern")
        else:
            found = [text]  # a missing file is reported as that file's failure
        for f in found:
            out.setdefault(os.path.realpath(f), f)
    empty = list(dict.fromkeys(empty))  # a folder reached by two items is said once
    if empty and (left_out is None or not out):
        raise CytokitError("; ".join(empty))
    if left_out is not None:
        left_out.extend(empty)
    return list(out.values())


@dataclass
class GateRun:
    """What `gate_files` produced (the tables are also in `out`)."""

    report: BatchReport
    counts: pd.DataFrame
    statistics: pd.DataFrame | None
    failures: pd.DataFrame
    out: Path
    task: GateTask
    n_events: int = 0  #: events in the files gated (those taken from the store included)
    #: events dropped for non-finite values (`cytokit.finite`), over the files gated
    nonfinite_events: int = 0
    #: The warnings about each finished file (as given), in file order; files without any
    #: are left out. Also in ``warnings.csv``.
    warnings: dict[str, list[str]] = field(default_factory=dict)


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict]:
    """Rows for `write_csv`: NaN becomes an empty cell."""
    records = frame[list(columns)].to_dict("records")
    for r in records:
        for k, v in r.items():
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
    return records


def gate_files(
    strategy: GatingStrategy | str | os.PathLike,
    files: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    compensation="file",
    statistics: bool = True,
    workers: int | None = None,
    scheduler=None,
    progress: Callable[[int, int, str, str], None] | None = None,
    retry_failures: bool = False,
    acquisition_qc: AcquisitionQCSettings | None = None,
    table_format: str = "csv",
) -> GateRun:
    """Gate many FCS files with one strategy into ``counts.csv``, ``statistics.csv``,
    ``failures.csv`` and ``warnings.csv`` in `out`, resuming from ``out/results.sqlite``.

    Parameters
    ----------
    strategy, compensation, statistics
        As for `GateTask`; `strategy` may also be a ready `GateTask` (whose
        options are then used).
    files : iterable of path
        FCS files (see `expand_files` for folders and patterns).
    out : path
        Output folder (created; a file there, or a folder named like a table,
        is an error before any file is gated).
    workers, scheduler, progress, retry_failures
        As for `cytokit.engine.runner.run_batch`.
    acquisition_qc : AcquisitionQCSettings, optional
        As for `GateTask` (ignored when `strategy` is a `GateTask`).
    table_format : {"csv", "parquet", "both"}
        Each table as CSV (the default), as Parquet with the types of
        `TABLE_TYPES` (pyarrow needed; checked before any file is gated), or
        both. A table's file in the format not written is removed.

    Returns
    -------
    GateRun
        Tables in file order; a file that failed is only in ``failures``.

    Raises
    ------
    ValueError
        The QC settings' ``exclude_channels`` names a channel none of `files` has
        (before any file is gated).
    """
    if isinstance(strategy, GateTask):
        task = strategy
    else:
        task = GateTask(
            strategy,
            compensation=compensation,
            statistics=statistics,
            acquisition_qc=acquisition_qc,
        )
    statistics = task.statistics
    written = suffixes(table_format)
    if ".parquet" in written:
        require_pyarrow()
    # the QC tables are written, or (QC off) those of an earlier run removed: a folder
    # never holds QC tables beside counts they do not describe
    names = ["counts", "statistics", "failures", "warnings", "qc_samples", "acquisition_qc"]
    tables = (*(f"{n}{x}" for n in names for x in (".csv", ".parquet")), STORE_NAME)
    if (Path(out) / "study.json").is_file():
        raise CytokitError(
            f"{out}: holds the results of `cytokit analyze` (study.json); the counts.csv and "
            "failures.csv of `cytokit gate` would replace its tables: give another --out"
        )
    files = [os.fspath(f) for f in files]
    _check_exclusions(task.acquisition_qc, list(dict.fromkeys([*files, *task.listed])))
    out = output_folder(out, files=tables)  # before the batch, not after it
    with writing_into(out):  # one run at a time writes into a folder
        with RunStore(out / STORE_NAME) as store:
            first = None
            if _compile_first(files, workers, scheduler, task.statistics):
                # a cold Numba cache: the first file compiles the kernels here, once, and the
                # workers then load them, instead of each compiling the same kernels at the
                # same time (sample_data on 2 cores: 79 s against 31 s on one)
                first = run_batch(files[:1], task, store, workers=1)
            report = run_batch(
                files,
                task,
                store,
                workers=workers,
                scheduler=scheduler,
                progress=progress,
                retry_failures=retry_failures,
            )
            if first is not None:
                report = _first_run_here(first, report)
            counts = report.frame(store, "counts")
            counts = counts.reindex(columns=list(COUNT_TABLE))
            stats = None
            if statistics:
                stats = report.frame(store, "statistics").reindex(columns=list(STATISTICS_TABLE))
            events = store.items(task.key, "n_events", (f.hash for f in report.done))
            dropped = store.items(task.key, "nonfinite_events", (f.hash for f in report.done))
            said = store.items(task.key, "warnings", (f.hash for f in report.done))
            qc = None
            if task.acquisition_qc is not None:
                qc = store.items(task.key, "acquisition_qc", (f.hash for f in report.done))
        notes = {f.path: list(said.get(f.hash) or []) for f in report.done}
        # a copy under another name is counted twice (analyze refuses it; a batch says it)
        first: dict[str, str] = {}
        for f in report.done:
            seen = first.setdefault(f.hash, f.path)
            if seen != f.path:
                notes[f.path].append(
                    f"holds the same bytes as {seen}: both are counted; leave one out if "
                    "they are one sample"
                )
        notes = {path: found for path, found in notes.items() if found}
        failures = report.failures_frame()[list(FAILURE_TABLE)]
        # the tables describe one another (a file is counted or failed): they replace an
        # earlier run's all together, so a kill or a full disk never leaves a mix
        files: dict[Path, bytes | None] = {}
        count_columns = COUNT_TABLE
        if qc is not None:
            count_columns = _qc_tables(files, out, report, qc, counts, written)
        else:
            for name in ("qc_samples", "acquisition_qc"):
                _table(files, out, name, [], (), ())  # removes both files
        _table(files, out, "counts", _rows(counts, count_columns), count_columns, written)
        if stats is not None:
            rows = _rows(stats, STATISTICS_TABLE)
            _table(files, out, "statistics", rows, STATISTICS_TABLE, written)
        else:
            _table(files, out, "statistics", [], (), ())  # an earlier run's would not match
        _table(files, out, "failures", _rows(failures, FAILURE_TABLE), FAILURE_TABLE, written)
        warned = [{"file": f, "warning": w} for f, found in notes.items() for w in found]
        _table(files, out, "warnings", warned, WARNING_TABLE, written)
        replace_together(files)
        n_events = sum(int(events[f.hash]) for f in report.done)
        nonfinite = sum(int(dropped.get(f.hash, 0)) for f in report.done)
        return GateRun(report, counts, stats, failures, out, task, n_events, nonfinite, notes)


def _table(
    files: dict,
    out: Path,
    name: str,
    rows: list[dict],
    columns: Sequence[str],
    written: Sequence[str],
) -> None:
    """Add table `name` (`rows`, mappings, with exactly `columns`) to `files` (path ->
    bytes, or None to remove it) in each format of `written` (``.csv``, ``.parquet``), and
    its file in the other format as one to remove."""
    for suffix in (".csv", ".parquet"):
        path = out / f"{name}{suffix}"
        if suffix not in written:
            files[path] = None
        elif suffix == ".csv":
            files[path] = csv_bytes(rows, columns)
        else:
            frame = pd.DataFrame.from_records(rows, columns=list(columns))
            files[path] = frame_parquet(frame, columns, TABLE_TYPES[name], table=name)


def _qc_tables(
    files: dict,
    out: Path,
    report: BatchReport,
    qc: dict,
    counts: pd.DataFrame,
    written: Sequence[str],
):
    """Add ``qc_samples`` and ``acquisition_qc`` to `files` (`_table`); add the
    before/after columns to `counts` (in place) and return the counts table's columns."""
    samples, ranges = [], []
    for f in report.done:
        record = qc.get(f.hash)
        if record is None:
            continue
        samples.append({"file": f.path, **record["summary"]})
        ranges += [{"file": f.path, **r} for r in record["ranges"]]
    _table(files, out, "qc_samples", samples, ("file", *SUMMARY_COLUMNS), written)
    _table(files, out, "acquisition_qc", ranges, ("file", *RANGE_COLUMNS), written)
    by_file = {r["file"]: r for r in samples}
    for col in ("events_before_qc", "events_after_qc"):
        counts[col] = [by_file.get(f, {}).get(col) for f in counts["file"]]
    return (*COUNT_TABLE, "events_before_qc", "events_after_qc")
