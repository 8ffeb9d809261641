"""Gating a file while it is read: `GatingStrategy.apply_file`.

``strategy.apply(cytokit.read_fcs(path), membership=False)`` reads every
event into one array, then evaluates the tree in one fused pass: its time is
the read plus the pass, and its memory the whole array. A static strategy
(no adaptive gate, so nothing is fitted on the whole file) needs no event
twice, so `apply_file` reads the DATA segment in slices of rows and gates
each slice as soon as it is read, on several threads at once: each thread
takes the next slice, reads it into its own reused buffer (a positional
read, so the threads share the file) and runs the fused pass on it
(`cytokit.kernels.evaluate_plan`'s kernel, set up once by
`cytokit.kernels.fused.CountPass`, on that thread alone; it releases the
GIL). While one thread waits for the system's copy of its slice, the
others gate theirs, and a slice is gated by the core that has just copied
it, while it is still in that core's cache. The wall time approaches the
sum of reading and gating divided by the cores, and memory is one slice
per thread (at most `MAX_WORKERS`) whatever the file's size. Columns no gate reads are not scaled
(``$TIMESTEP`` on the time channel, say, when no gate reads time): a
native float file whose gated channels need no scaling is then read
straight into the slices.

What each event goes through is what `apply` does to it: the values are
those `read_fcs` gives in every column a gate reads (the same decoding,
byte swapping, ``$PnE``/``$PnG`` scaling and ``$TIMESTEP``, by
`cytokit.fcs.data.EventReader` on the same sub-blocks, so the same
bits); the plan is `GatingStrategy.compile`'s for the file's channels and
compensation; non-finite values are kept with the kernels' IEEE semantics
as `apply` keeps them. Each event's memberships depend on its own values
alone, so the counts are `apply`'s, exactly.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numba
import numpy as np

from cytokit import kernels as K
from cytokit.errors import GatingError
from cytokit.fcs.reader import open_events, read_fcs
from cytokit.gating.gates import AdaptiveGate
from cytokit.kernels.fused import CountPass
from cytokit.sample import Sample, SpilloverWarning

__all__ = ["BLOCK_EVENTS", "FileSample", "apply_file"]

#: Events per slice read and gated at a time (rounded to the reader's granularity).
BLOCK_EVENTS = 262_144


class FileSample(Sample):
    """A `Sample` whose events stay in its file until they are asked for.

    `GatingStrategy.apply_file` returns its `GatingResult` with one: the
    channels, keywords, spillover and number of events are known without the
    events; the first use of `events` reads them with `read_fcs` (same
    data set, scaling and dtype), from the file as it is then.
    """

    def __init__(
        self,
        events: np.ndarray | None = None,
        channels=(),
        keywords=None,
        spillover=None,
        path: Path | None = None,
        dataset: int = 0,
        version: str = "FCS3.1",
        scaled: bool = True,
        *,
        n_events: int | None = None,
        dtype=None,
    ) -> None:
        self.channels = tuple(channels)
        self.keywords = dict(keywords or {})
        self.spillover = spillover
        self.path = path
        self.dataset = dataset
        self.version = version
        self.scaled = scaled
        self._events = None
        self._n = n_events
        self._dtype = dtype
        if events is not None:  # dataclasses.replace(sample, events=...) comes here
            self.events = events
        self._upper = {k.upper(): k for k in self.keywords}

    @property
    def events(self) -> np.ndarray:
        if self._events is None:
            if self.path is None:
                raise GatingError("this sample's events were never read and it has no file")
            s = read_fcs(self.path, dataset=self.dataset, scale=self.scaled, dtype=self._dtype)
            self.events = s.events
        return self._events

    @events.setter
    def events(self, value: np.ndarray) -> None:
        if value.ndim != 2 or value.shape[1] != len(self.channels):
            raise ValueError(
                f"events have shape {value.shape} but there are {len(self.channels)} channels; "
                f"expected (n_events, {len(self.channels)})"
            )
        self._events = value
        self._n = int(value.shape[0])
        self._dtype = value.dtype

    @property
    def n_events(self) -> int:
        return int(self._n)

    def __repr__(self) -> str:
        return (
            f"<Sample from {self.name!r}: {self.n_events} events × {self.n_channels} channels, "
            f"{self.version}, {'scale' if self.scaled else 'stored'} values "
            f"{np.dtype(self._dtype)}{'' if self._events is not None else ', not read'}>"
        )


def apply_file(
    strategy,
    path: str | os.PathLike[str],
    *,
    dataset: int | None = None,
    compensation="file",
    block_events: int = BLOCK_EVENTS,
):
    """Gate one FCS file while reading it; see `GatingStrategy.apply_file`."""
    from cytokit.gating.result import GatingResult

    adaptive = [g for g in strategy.gates if isinstance(g, AdaptiveGate)]
    if adaptive:
        names = ", ".join(f"{g.id!r} ({type(g).__name__})" for g in adaptive[:5])
        more = f" and {len(adaptive) - 5} more" if len(adaptive) > 5 else ""
        raise GatingError(
            f"apply_file({Path(path).name}): adaptive gate {names}{more} is fitted on the "
            "whole file's events, which apply_file never holds; use "
            "strategy.apply(cytokit.read_fcs(path)), or fit the strategy on the sample once "
            "(strategy.fit(sample)) and stream files with the fitted, static strategy"
        )
    if isinstance(block_events, bool) or not isinstance(block_events, (int, np.integer)):
        raise GatingError(f"block_events={block_events!r}; give a number of events >= 1")
    if block_events < 1:
        raise GatingError(f"block_events={block_events}; give a number of events >= 1")
    with open_events(path, dataset=dataset) as (meta, reader):
        sample = FileSample(n_events=reader.n, dtype=reader.out_dtype, **meta)
        plan, rows = strategy.compile(sample, compensation)
        for message in strategy._conditioning(sample, compensation):
            warnings.warn(SpilloverWarning(message), stacklevel=3)
        counts = _stream_counts(reader, plan, int(block_events))
    order = np.array([rows[p.id] for p in strategy.populations], dtype=np.int64)
    return GatingResult(
        strategy=strategy,
        sample=sample,
        counts_array=counts[order],
        packed=None,
        compensation=strategy.resolver(sample, compensation).spillover,
    )


def _slices(n: int, rows: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + rows)) for a in range(0, n, rows)]


def _columns_read(plan: K.GatingPlan) -> np.ndarray:
    """The event columns the fused pass may read for ``plan`` (raw sources and compensated ones)."""
    a = plan._arrays
    return np.union1d(a.slot_index[a.n_cslots :], a.comp_cols).astype(np.int64)


#: Most threads reading and gating one file: each holds a slice, so this bounds the memory.
MAX_WORKERS = 8


def _workers(n_slices: int) -> int:
    """Threads that read and gate: Numba's thread count, at least two so reading overlaps."""
    return max(1, min(n_slices, MAX_WORKERS, max(2, numba.get_num_threads())))


def _stream_counts(reader, plan: K.GatingPlan, block_events: int) -> np.ndarray:
    """Counts of every plan gate over the reader's events, reading and gating on several threads.

    Each thread takes the next slice, reads it into its own buffer and gates
    it there (`CountPass` on that thread alone): while one thread reads,
    the others gate, and a slice is gated by the core that has just read
    it. Counts are integers, summed in any order.
    """
    n, k = reader.n, reader.k
    counts = np.zeros(plan.n_gates, dtype=np.int64)
    if n == 0:
        return counts
    # columns no gate reads are not scaled (a native float file is then read straight in)
    head = reader.fork(_columns_read(plan))
    # slices start on multiples of the reader's sub-block, so the values are read_fcs's bits
    step = head.step if head.route != "direct" else 1
    rows = min(n, max(step, block_events // step * step))
    slices = _slices(n, rows)
    gate = CountPass(plan, head.out_dtype)  # set up once, not per slice
    n_workers = _workers(len(slices))
    if n_workers == 1:
        buf = np.empty((n, k), dtype=head.out_dtype)
        head.read(0, n, buf)
        return gate(buf)
    todo = iter(slices)  # taken in turn: `next` holds the GIL, so each slice is read once
    stop = threading.Event()
    errors: list[BaseException] = []
    totals: list[np.ndarray] = []

    def work(rd) -> None:
        try:
            buf = np.empty((rows, k), dtype=rd.out_dtype)
            total = np.zeros(plan.n_gates, dtype=np.int64)
            for a, b in todo:
                if stop.is_set():
                    return
                rd.read(a, b, buf[: b - a])
                total += gate(buf[: b - a], serial=True)
            totals.append(total)
        except BaseException as exc:  # raised by the calling thread once all have stopped
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=work, args=(head.fork(),), name="cytokit-read", daemon=True)
        for _ in range(n_workers - 1)
    ]
    for t in threads:
        t.start()
    done = False
    try:
        work(head)
        done = True
    finally:
        if not done:  # interrupted: the others stop at their next slice
            stop.set()
        for t in threads:
            t.join()  # before the file is closed
    if errors:
        raise errors[0]
    for total in totals:
        counts += total
    return counts
