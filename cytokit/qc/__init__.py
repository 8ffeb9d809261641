"""Acquisition QC: flow-rate anomalies, signal stability and margin events, per file.

Before a file is gated, acquisition QC asks whether its events were measured
well: whether the flow was steady (clogs make the event rate drop and then
burst as they clear, bubbles leave gaps), whether each detector's signal
stayed at the file's stable level (a drifting laser or fluidics makes it
creep), and which events sit at a detector's limits (saturated at ``$PnR − 1``
or, on scatter, at the floor) and so are not measurements. It returns a
keep/remove decision per event with the reasons, a per-file summary and
verdict (pass / warn / fail), and the flagged time ranges.

Method (in the spirit of PeacoQC, Emmaneel et al., Cytometry A
2022;101:325-38, and flowAI, Monaco et al., Bioinformatics 2016;32:2473-80):

1. events are binned over acquisition time (`cytokit.qc.bins`: equal bins
   aligned to the time channel's clock steps, about 200 events each, at most
   `cytokit.qc.bins.MAX_BINS` = 1,000 of them);
2. the rate check (`cytokit.qc.rate`) compares each bin's event count with a
   robust line through the bins' rates;
3. the stability check (`cytokit.qc.stability`) compares robust summaries of
   every scatter and fluorescence channel per bin (the mean of its asinh
   values, an upper-weighted mean and its brightest cells' level) with the
   file's stable level, bin by bin and over windows of bins (a channel
   that creeps over the whole run, with no stable level, is reported as a
   trend and judged against its own course instead); a stretch it flags
   is read again from its values (`cytokit.qc.shape`), and kept where they
   sit where the rest of the file's do, at other shares: a burst of cells
   (settling, carry-over) moves the summaries as a gain would, but moves no
   population;
4. margin events (`cytokit.qc.channels`) are found per event, from the
   channel's ``$PnR``, ``$PnE``, ``$PnG`` and data type;
5. each flagged bin's events are removed with its reasons (a run's edges
   placed at the event where the rate changes, and beyond a gap over its
   disturbed flank); the good bins between two flagged runs are kept.

Typical use::

    import cytokit
    from cytokit.qc import acquisition_qc, AcquisitionQCSettings

    sample = cytokit.read_fcs("a.fcs")
    qc = acquisition_qc(sample, AcquisitionQCSettings(sensitivity="normal"))
    qc.verdict, qc.verdict_reason         # "warn", "3.1% of 50,000 events removed (rate 2.95%, ...), more than 2%"
    qc.summary()                          # the samples-table columns
    qc.ranges_frame()                     # flagged time ranges
    kept = sample.events[qc.keep]

`screen` is the step every door that gates a file runs when QC is on: it
fails the file on a ``fail`` verdict and returns the kept events.

Files without a Time channel (or whose time is not in acquisition order, or
too short) get the margin check only; the result says which checks did not
run and why, and the verdict is at least ``warn``.
"""

from __future__ import annotations

from cytokit.errors import AcquisitionQCError
from cytokit.qc.apply import (
    RANGE_COLUMNS,
    RANGE_TYPES,
    SUMMARY_COLUMNS,
    SUMMARY_TYPES,
    file_record,
    screen,
)
from cytokit.qc.bins import TimeGrid
from cytokit.qc.channels import ChannelPlan, channel_plan, channel_role, time_column
from cytokit.qc.result import (
    MARGIN,
    RATE,
    REASONS,
    SIGNAL,
    AcquisitionQC,
    BinTable,
    FlaggedRange,
    MarginTable,
    reason_names,
)
from cytokit.qc.scan import AcquisitionPass, acquisition_qc
from cytokit.qc.settings import (
    CHECKS,
    SENSITIVITIES,
    THRESHOLDS,
    AcquisitionQCSettings,
    Thresholds,
    parse_acquisition_qc,
)

__all__ = [
    "CHECKS",
    "MARGIN",
    "RANGE_COLUMNS",
    "RANGE_TYPES",
    "RATE",
    "REASONS",
    "SENSITIVITIES",
    "SIGNAL",
    "SUMMARY_COLUMNS",
    "SUMMARY_TYPES",
    "THRESHOLDS",
    "AcquisitionPass",
    "AcquisitionQC",
    "AcquisitionQCError",
    "AcquisitionQCSettings",
    "BinTable",
    "ChannelPlan",
    "FlaggedRange",
    "MarginTable",
    "Thresholds",
    "TimeGrid",
    "acquisition_qc",
    "channel_plan",
    "channel_role",
    "file_record",
    "parse_acquisition_qc",
    "reason_names",
    "screen",
    "time_column",
]
