"""Benchmark: acquisition QC — accuracy against injected anomalies, and its cost next to gating.

Usage::

    python benchmarks/bench_acquisition_qc.py --accuracy --seeds 1001 1060   # fresh seeds
    python benchmarks/bench_acquisition_qc.py --accuracy --kinds drift clean --seeds 1 20
    python benchmarks/bench_acquisition_qc.py --accuracy --kinds drift --held 0.5 --seeds 1 40
    python benchmarks/bench_acquisition_qc.py --accuracy --kinds drift --held 0.3 --start 0.1 0.3 ...
    python benchmarks/bench_acquisition_qc.py --mixed --seeds 1001 1040      # every kind at once
    python benchmarks/bench_acquisition_qc.py --blocks --events 20000 --seeds 1 40
    python benchmarks/bench_acquisition_qc.py --shares --events 20000 --seeds 1 60
    python benchmarks/bench_acquisition_qc.py --shares --population bead --factor 2.5 --span 0.12 0.35 ...
    python benchmarks/bench_acquisition_qc.py --outside gain --events 20000 --seeds 1 60
    python benchmarks/bench_acquisition_qc.py --cost                         # 10M events
    python benchmarks/bench_acquisition_qc.py --cost --n 1000000 --repeats 3
    python benchmarks/bench_acquisition_qc.py --scan-blocks --n 2000000     # see scan_blocks

**Accuracy.** For every seed and every anomaly kind (clog, bubble, drift,
margin) one simulated file (50,000 events, a patient and day drawn from the
seed's sample study) gets one anomaly of that kind with random, realistic
parameters (`cytokit.simulate.anomalies.random_plan`), and
`cytokit.qc.acquisition_qc` runs on it with the default settings. Events
removed for the reasons that answer the kind (rate or signal for clogs,
bubbles and drift; margin for margin events) are compared with the
simulator's per-event truth (for margins: injected margin events and every
event the instrument clipped); F1 is given pooled over the files (from the
summed counts) and as the median and minimum per file. The same seeds give
clean files (nothing injected): % of events removed, in total and by rate or
signal, and the verdicts. With ``--held SHARE`` each drift reaches its change
at that share of the rest of the run after its start and holds it
(`cytokit.simulate.anomalies.Drift` ``end``), instead of at the run's end;
with ``--start LO HI`` each drift starts at a share of the run drawn between
the two, instead of at 30-60 % of it (both for ``--mixed`` too).

**Mixed.** With ``--mixed`` every file gets one anomaly of each kind at once
(``random_plan`` with all four kinds: a clog and a bubble in separate slots,
a drift from 30-60 % of the run to its end, which may start during the clog
or cover the bubble, and margin events). An event removed for rate or signal
that no anomaly touched is charged to the kind whose injected time window
holds it if only one does (a drift's window starts where its gain starts to
move, its events where the gain is 10 % off), else to the kind of the nearest
injected event (clog, bubble or drift), so each kind answers for the events
it made QC remove beside it; an event of two kinds (a clog's within the drift) counts
for both. F1 per kind, and for all timed kinds pooled.

**Blocks.** With ``--blocks`` each seed's file (the sample study, nothing
injected, ``--events`` events) has one fluorescence channel, drawn from the
seed, read 0.7-0.8 or 1.25-1.4 times over 10-30 % of the run (a gain changed
for a while and restored); events removed for rate or signal are scored
against that stretch (F1 pooled), with the files where 95 % of it went and
those where more than 5 % of the other events did.

**Shares.** With ``--shares`` each seed's file has one population (2-40 % of
the events) at 2.5 or 0.4 times its share over 10-30 % of the run (events
swapped in from, or out to, the rest of the file): a change in the mix of
cells with no detector change, where QC should remove little. The % of
events removed by signal is printed per file and summed up. ``--population
granulocyte``, ``--factor 2.5`` and ``--span 0.12 0.35`` fix what is
otherwise drawn per seed.

**Outside.** With ``--outside KIND`` the files are drawn apart from the
simulator (`qc_outside.py`, six kinds of event on seven channels, log-normal
values): one marker's gain 0.72 or 1.35 times over 10-30 % of the run
(``gain``), drifting there to that change and holding it to the end
(``hold``) or drifting to it and back (``wave``), or drifting from the
stretch's start to the run's end, evenly on the log scale (``ramp``; on
all five markers at once: ``laser``), slow first (``curve``) or fast first
(``settle``), scored as ``--blocks`` (against the events where the gain is
10 % off or more, for the drifts); or
one kind of event 2.5 or 0.4 times as frequent there (``mix``), with the %
removed for rate or signal per file, as ``--shares``.

**Cost.** A simulated FCS file of ``--n`` events (`cytokit.simulate.benchmark_file`,
11 float32 channels) is read in a fresh subprocess, which then times, in
alternating order after a warm-up, the gating chain of ``bench_gating.py``
(plan + one fused ``evaluate_plan`` pass: compensation, logicle, 10
populations), ``acquisition_qc`` on the same events and its per-row scan alone
(``AcquisitionPass.update`` over every row: the part that runs over the events
a second time after the read, so what feeding it the reader's blocks would
save); the ratios are printed.
``cytokit gate`` on the same file (the command: start-up, hashing, reading,
gating, statistics, storing) is timed in the same run, and QC is put against
it too; so is ``cytokit gate --acquisition-qc`` (QC fused into the command's
one read, its removed events left out of gating), alternating with the plain
command, and the ratio of the two medians is printed (goal: at most 1.25), with
the median of the ratios of each alternating pair.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "_data"
KINDS = ("clog", "bubble", "drift", "margin")
N_EVENTS = 50_000


# --- accuracy -------------------------------------------------------------------------------------


def one_file(seed: int, kind: str, events: int = N_EVENTS, kinds=None, held=None, start=None):
    """(qc, truth-or-None, plan, sample) of one simulated file with one anomaly of `kind` (or clean).

    `kinds`: the anomaly kinds injected instead (one of each), `kind` then only naming
    the file's random stream (``"mixed"``: `mixed_file`). `held`: a drift reaches its
    change at this share of the rest of the run after its start, and holds it
    (`Drift.end`), instead of at the run's end. `start`: ``(lo, hi)``, a drift starts at a
    share of the run drawn between them (its own stream), instead of `random_plan`'s."""
    import warnings

    from cytokit import simulate
    from cytokit.qc import acquisition_qc
    from cytokit.simulate import anomalies as A

    design = simulate.preset_design("sample", seed=seed, n_patients=4)
    rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])
    samples = design.samples()
    spec, day = samples[int(rng.integers(len(samples)))]
    sample, _ = simulate.simulate_sample(design, spec.id, day, events)
    truth = plan = None
    if kinds is None and kind != "clean":
        kinds = (kind,)
    if kinds:
        seconds = A.duration(sample)
        plan = A.random_plan(rng, seconds, kinds=kinds)
        if start is not None and plan.drifts:
            at = np.random.default_rng([seed, zlib.crc32(b"start")]).uniform(*start)
            moved = [dataclasses.replace(d, start=at * seconds) for d in plan.drifts]
            plan = dataclasses.replace(plan, drifts=tuple(moved))
        if held is not None and plan.drifts:
            ends = [
                dataclasses.replace(d, end=d.start + held * (seconds - d.start))
                for d in plan.drifts
            ]
            plan = dataclasses.replace(plan, drifts=tuple(ends))
        sample, truth = A.inject(sample, plan, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qc = acquisition_qc(sample)
    return qc, truth, plan, sample


def counts(qc, truth, kind: str) -> tuple[int, int, int]:
    from cytokit.qc import MARGIN, RATE, SIGNAL

    if kind == "margin":
        pred, want = (qc.reasons & MARGIN) != 0, truth.mask("margin") | truth.clipped
    else:
        pred, want = (qc.reasons & (RATE | SIGNAL)) != 0, truth.mask(kind)
    return int(np.sum(pred & want)), int(np.sum(pred & ~want)), int(np.sum(~pred & want))


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def laser_of(plan) -> str:
    from cytokit.simulate.anomalies import LASERS

    d = plan.drifts[0].detectors
    return next(name for name, dets in LASERS.items() if dets == d)


def _drifts_said(held, start) -> str:
    """How `--held` and `--start` placed the drifts, for a run's heading ("" for neither)."""
    said = "" if held is None else f", drifts held from {held:g} of the rest of the run"
    return said + ("" if start is None else f", drifts starting at {start[0]:g}-{start[1]:g} of it")


def accuracy(
    seeds: range, kinds=KINDS, clean: bool = True, events: int = N_EVENTS, held=None, start=None
) -> None:
    said = _drifts_said(held, start)
    print(f"accuracy: seeds {seeds.start}-{seeds.stop - 1}, {events:,} events per file{said}")
    t0 = time.perf_counter()
    for kind in kinds:
        rows = []
        for seed in seeds:
            qc, truth, plan, _ = one_file(seed, kind, events, held=held, start=start)
            tp, fp, fn = counts(qc, truth, kind)
            rows.append((seed, tp, fp, fn, f1(tp, fp, fn), qc.verdict, plan))
        tp, fp, fn = (sum(r[i] for r in rows) for i in (1, 2, 3))
        per = np.array([r[4] for r in rows])
        print(
            f"  {kind:7s} F1 pooled {f1(tp, fp, fn):.3f}  median {np.nanmedian(per):.3f}  "
            f"min {np.nanmin(per):.3f}  (files {len(rows)}, truth events {tp + fn:,}, "
            f"flagged {tp + fp:,}, missed {fn:,}, extra {fp:,})"
        )
        worst = sorted(rows, key=lambda r: r[4])[:2]
        for r in worst:
            print(
                f"           lowest: seed {r[0]} F1 {r[4]:.3f} (fp {r[2]}, fn {r[3]}) verdict {r[5]}"
            )
        if kind == "drift":
            for laser in ("blue", "red", "violet"):
                sub = [r for r in rows if laser_of(r[6]) == laser]
                if sub:
                    a, b, c = (sum(r[i] for r in sub) for i in (1, 2, 3))
                    print(
                        f"           {laser:6s} laser: {len(sub):2d} files, F1 pooled {f1(a, b, c):.3f}"
                    )
    pct, timed, verdicts = [], [], []
    for seed in seeds if clean else ():
        qc, _, _, _ = one_file(seed, "clean", events)
        from cytokit.qc import RATE, SIGNAL

        pct.append(qc.pct_removed)
        timed.append(100.0 * np.count_nonzero(qc.reasons & (RATE | SIGNAL)) / qc.n_events)
        verdicts.append(qc.verdict)
    if not clean:
        print(f"  ({time.perf_counter() - t0:.0f} s)")
        return
    pct, timed = np.array(pct), np.array(timed)
    print(
        f"  clean   {len(pct)} files: removed median {np.median(pct):.3f}% (max {pct.max():.3f}%); "
        f"by rate or signal median {np.median(timed):.3f}% (max {timed.max():.3f}%, "
        f"{np.count_nonzero(timed)} files with any); verdicts "
        + ", ".join(f"{v} {verdicts.count(v)}" for v in ("pass", "warn", "fail"))
    )
    print(f"  ({time.perf_counter() - t0:.0f} s)")


def mixed_file(seed: int, events: int = N_EVENTS, held=None, start=None):
    """(qc, truth, seconds) of one simulated file holding one anomaly of every kind (`held`,
    `start`: its drift's, as `one_file`'s)."""
    qc, truth, _, sample = one_file(seed, "mixed", events, kinds=KINDS, held=held, start=start)
    return qc, truth, seconds_of(sample)


def seconds_of(sample) -> np.ndarray:
    """Each event's acquisition time in seconds (a simulated sample's Time × $TIMESTEP)."""
    return sample.events[:, -1].astype(np.float64) * float(sample.keyword("$TIMESTEP"))


def mixed_counts(qc, truth, seconds) -> dict[str, tuple[int, int, int]]:
    """(tp, fp, fn) per kind of a file holding every kind (see **Mixed**)."""
    from cytokit.qc import MARGIN, RATE, SIGNAL

    timed = ("clog", "bubble", "drift")
    pred = (qc.reasons & (RATE | SIGNAL)) != 0
    want = {k: truth.mask(k) for k in timed}
    extra = np.flatnonzero(pred & ~np.logical_or.reduce(list(want.values())))
    dist, inside = [], []
    for k in timed:  # distance of each extra event to the nearest event of kind k
        at = np.flatnonzero(want[k])
        spans = [(a, b) for kk, a, b in truth.windows if kk == k]
        t = seconds[extra]
        inside.append(np.logical_or.reduce([(t >= a) & (t <= b) for a, b in spans] or [t < -1]))
        if not at.size:
            dist.append(np.full(extra.size, np.inf))
            continue
        i = np.clip(np.searchsorted(at, extra), 1, at.size) - 1
        j = np.clip(i + 1, 0, at.size - 1)
        dist.append(np.minimum(np.abs(extra - at[i]), np.abs(extra - at[j])))
    dist, inside = np.vstack(dist), np.vstack(inside)
    # within the time window of exactly one kind (e.g. a drift's ramp before its gain is
    # 10 % off) the event is that kind's doing; elsewhere the nearest kind's
    owner = np.argmin(dist, axis=0) if extra.size else np.zeros(0, int)
    alone = inside.sum(axis=0) == 1
    owner[alone] = np.argmax(inside[:, alone], axis=0)
    out = {}
    for n, k in enumerate(timed):
        tp = int(np.sum(pred & want[k]))
        out[k] = (tp, int(np.sum(owner == n)), int(np.sum(~pred & want[k])))
    m_pred, m_want = (qc.reasons & MARGIN) != 0, truth.mask("margin") | truth.clipped
    out["margin"] = (
        int(np.sum(m_pred & m_want)),
        int(np.sum(m_pred & ~m_want)),
        int(np.sum(~m_pred & m_want)),
    )
    return out


def mixed(seeds: range, events: int = N_EVENTS, held=None, start=None) -> None:
    said = _drifts_said(held, start)
    print(
        f"mixed: seeds {seeds.start}-{seeds.stop - 1}, {events:,} events per file, every kind{said}"
    )
    t0 = time.perf_counter()
    rows, verdicts, pct = [], [], []
    for seed in seeds:
        qc, truth, seconds = mixed_file(seed, events, held, start)
        rows.append((seed, mixed_counts(qc, truth, seconds)))
        verdicts.append(qc.verdict)
        pct.append(qc.pct_removed)
    for kind in KINDS:
        tp, fp, fn = (sum(r[1][kind][i] for r in rows) for i in range(3))
        per = np.array([f1(*r[1][kind]) for r in rows])
        low = int(np.nanargmin(per))
        print(
            f"  {kind:7s} F1 pooled {f1(tp, fp, fn):.3f}  median {np.nanmedian(per):.3f}  "
            f"min {per[low]:.3f} (seed {rows[low][0]})  (truth events {tp + fn:,}, "
            f"missed {fn:,}, extra {fp:,})"
        )
    tp, fp, fn = (sum(r[1][k][i] for r in rows for k in KINDS[:3]) for i in range(3))
    print(
        f"  timed kinds pooled F1 {f1(tp, fp, fn):.3f}; removed median {np.median(pct):.1f}%; "
        "verdicts " + ", ".join(f"{v} {verdicts.count(v)}" for v in ("pass", "warn", "fail"))
    )
    print(f"  ({time.perf_counter() - t0:.0f} s)")


def blocked_file(seed: int, events: int):
    """A simulated file (the seed's sample study, no anomaly) whose one fluorescence channel,
    drawn from the seed, reads 0.7-0.8 or 1.25-1.4 times its values over 10-30 % of the run
    starting at 10-70 % of it (a gain changed for a while and restored), and that stretch."""
    from cytokit import simulate

    rng = np.random.default_rng(seed)
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, _ = simulate.simulate_sample(design, spec.id, day, events)
    names = [c.name for c in sample.channels]
    fluo = [x for x in names if x != "Time" and not x.startswith(("FSC", "SSC"))]
    channel = fluo[rng.integers(len(fluo))]
    gain = float(rng.uniform(1.25, 1.4) if rng.random() < 0.5 else rng.uniform(0.7, 0.8))
    lo = float(rng.uniform(0.1, 0.7))
    hi = min(lo + float(rng.uniform(0.1, 0.3)), 0.95)
    block = np.zeros(events, dtype=bool)
    block[int(lo * events) : int(hi * events)] = True
    values = sample.events.copy()
    values[block, names.index(channel)] *= gain
    sample.events = values
    return sample, block, (channel, gain, lo, hi)


def blocks(seeds: range, events: int) -> None:
    print(f"blocks: seeds {seeds.start}-{seeds.stop - 1}, {events:,} events per file")
    _score_stretches((seed, *blocked_file(seed, events)) for seed in seeds)


def _score_stretches(files) -> None:
    """Score QC's rate and signal removals on each ``(seed, sample, stretch, (channel,
    gain, lo, hi))`` against the stretch whose gain changed, and print the summary."""
    from cytokit.qc import RATE, SIGNAL, acquisition_qc

    t0 = time.perf_counter()
    tot = np.zeros(3, dtype=np.int64)
    n = whole = spill = 0
    for seed, sample, block, (channel, gain, lo, hi) in files:
        qc = acquisition_qc(sample)
        removed = (qc.reasons & (RATE | SIGNAL)) != 0
        tp, fp = int((removed & block).sum()), int((removed & ~block).sum())
        fn = int((~removed & block).sum())
        tot += (tp, fp, fn)
        inside, outside = removed[block].mean(), removed[~block].mean()
        n += 1
        whole += inside >= 0.95
        spill += outside > 0.05
        print(
            f"  {seed} {channel:14s} x{gain:.3f} {lo:.2f}-{hi:.2f}: block removed {inside:6.1%}, "
            f"the rest {outside:6.2%}, {qc.verdict}"
        )
    print(
        f"  F1 pooled {f1(*(int(x) for x in tot)):.3f} (block events {tot[0] + tot[2]:,}, missed "
        f"{tot[2]:,}, extra {tot[1]:,}); block >= 95 % removed in {whole} of {n} files, more "
        f"than 5 % of the rest in {spill}  ({time.perf_counter() - t0:.0f} s)"
    )


def outside(what: str, seeds: range, events: int) -> None:
    """``--outside KIND``: files drawn apart from the simulator (`qc_outside.py`): a gain
    changed for a while, a drift to a change held or undone or to the run's end (scored as
    ``--blocks``), or a change in the mix of cells (``mix``: % removed for rate or signal,
    as ``--shares``)."""
    from qc_outside import outside_file

    from cytokit.qc import RATE, SIGNAL, acquisition_qc

    print(f"outside {what}: seeds {seeds.start}-{seeds.stop - 1}, {events:,} events per file")
    if what != "mix":
        files = ((seed, *outside_file(what, events, seed)) for seed in seeds)
        _score_stretches((s, x, inside, (c, g, *span)) for s, x, inside, (c, g, span) in files)
        return
    t0 = time.perf_counter()
    pct, verdicts = [], []
    for seed in seeds:
        sample, _, (kind, factor, (lo, hi)) = outside_file(what, events, seed)
        qc = acquisition_qc(sample)
        pct.append(100 * float(np.mean((qc.reasons & (RATE | SIGNAL)) != 0)))
        verdicts.append(qc.verdict)
        print(f"  {seed} {kind:7s} x{factor} {lo:.2f}-{hi:.2f}: {pct[-1]:.2f}%, {qc.verdict}")
    _summarise_removed("rate or signal", pct, verdicts, t0)


def _summarise_removed(by: str, pct, verdicts, t0: float) -> None:
    """Print the % of events removed (`by` what) over files, and their verdicts."""
    p = np.array(pct)
    print(
        f"  removed by {by}: median {np.median(p):.2f}%, over 1 % in {(p > 1).sum()}, over 5 % "
        f"in {(p > 5).sum()} of {p.size}, max {p.max():.2f}%; verdicts "
        + ", ".join(f"{v} {verdicts.count(v)}" for v in ("pass", "warn", "fail"))
        + f"  ({time.perf_counter() - t0:.0f} s)"
    )


def shared_file(seed: int, events: int, population=None, factor=None, span=None):
    """A simulated file (the seed's sample study, no anomaly) in which one population (2-40 %
    of the events, drawn from the seed) has 2.5 or 0.4 times its share over 10-30 % of the
    run: events swapped in from (or out to) the rest of the file, their times kept. A
    change in the mix of cells, not in any detector. `population` (a label name),
    `factor` and `span` (shares of the run) fix what is otherwise drawn."""
    from cytokit import simulate

    rng = np.random.default_rng(seed + 7)
    design = simulate.preset_design("sample", seed=seed, n_patients=2)
    spec, day = design.samples()[0]
    sample, truth = simulate.simulate_sample(design, spec.id, day, events)
    label = np.asarray(truth.label)
    pops, count = np.unique(label, return_counts=True)
    usable = pops[(count > 0.02 * events) & (count < 0.4 * events)]
    pop = usable[rng.integers(len(usable))]
    drawn = 2.5 if rng.random() < 0.5 else 0.4
    lo = rng.uniform(0.1, 0.7)
    hi = min(lo + rng.uniform(0.1, 0.3), 0.95)
    if population is not None:
        pop = list(truth.label_names).index(population)
    factor = drawn if factor is None else factor
    lo, hi = (lo, hi) if span is None else span
    inside = np.arange(int(lo * events), int(hi * events))
    outside = np.setdiff1d(np.arange(events), inside)
    mine = label[inside] == pop
    share = mine.mean()
    want = min(share * factor, 0.9)
    if want > share:  # others in the stretch replaced by the population's events
        k = int((want - share) * inside.size)
        to, source = inside[~mine], outside[label[outside] == pop]
    else:
        k = int((share - want) * inside.size)
        to, source = inside[mine], outside[label[outside] != pop]
    to = rng.choice(to, size=k, replace=False)
    source = rng.choice(source, size=k, replace=True)
    values = sample.events.copy()
    cols = [i for i, c in enumerate(sample.channels) if c.name != "Time"]
    values[np.ix_(to, cols)] = sample.events[np.ix_(source, cols)]
    sample.events = values
    name = truth.label_names[pop] if pop < len(truth.label_names) else str(pop)
    return sample, (name, factor, lo, hi)


def shares(seeds: range, events: int, **fixed) -> None:
    from cytokit.qc import SIGNAL, acquisition_qc

    print(f"shares: seeds {seeds.start}-{seeds.stop - 1}, {events:,} events per file")
    t0 = time.perf_counter()
    pct, verdicts = [], []
    for seed in seeds:
        sample, (name, factor, lo, hi) = shared_file(seed, events, **fixed)
        qc = acquisition_qc(sample)
        pct.append(100 * float(np.mean((qc.reasons & SIGNAL) != 0)))
        verdicts.append(qc.verdict)
        print(
            f"  {seed} {name:14s} x{factor} {lo:.2f}-{hi:.2f}: {pct[-1]:.2f}% by signal, {qc.verdict}"
        )
    _summarise_removed("signal", pct, verdicts, t0)


# --- cost -----------------------------------------------------------------------------------------


def child(path: Path, repeats: int) -> None:
    """In a fresh process: read once, then time the gating chain and QC alternately."""
    sys.path.insert(0, str(HERE))
    import bench_gating as bg

    import cytokit.kernels as K
    from cytokit import read_fcs
    from cytokit.qc import AcquisitionPass, acquisition_qc

    t0 = time.perf_counter()
    sample = read_fcs(path)
    t_read = time.perf_counter() - t0
    events = sample.events
    names = list(sample.channel_names)
    spill_names, spill = list(sample.spillover.channels), np.asarray(sample.spillover.matrix)

    def chain() -> float:
        t = time.perf_counter()
        plan, _, _ = bg.cytokit_plan(names, spill_names, spill)
        K.evaluate_plan(events, plan, membership=False)
        return time.perf_counter() - t

    def qc() -> float:
        t = time.perf_counter()
        acquisition_qc(sample)
        return time.perf_counter() - t

    def scan() -> float:  # the per-row part alone: what feeding the reader's blocks would save
        p = AcquisitionPass(sample)
        t = time.perf_counter()
        p.update(0, sample.n_events)
        return time.perf_counter() - t

    chain(), qc(), scan()  # warm-up (Numba cache load)
    g, q, s = [], [], []
    for i in range(repeats):
        runs = ((chain, g), (qc, q), (scan, s))
        for fn, out in runs if i % 2 == 0 else runs[::-1]:
            out.append(fn())
    res = acquisition_qc(sample)
    print(
        json.dumps(
            {
                "read": t_read,
                "gate": g,
                "qc": q,
                "scan": s,
                "removed": res.pct_removed,
                "verdict": res.verdict,
            }
        )
    )


def cost(n: int, repeats: int, seed: int, keep: bool, repeats_gate: int = 2) -> None:
    sys.path.insert(0, str(HERE))
    import bench_batch

    from cytokit.simulate import benchmark_file

    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"bench_qc_{n}_{seed}.fcs"
    if not path.exists():
        t0 = time.perf_counter()
        benchmark_file(path, n_events=n, seed=seed)
        print(
            f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s"
        )
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--repeats", str(repeats)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode:
            sys.exit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        g, q = statistics.median(r["gate"]), statistics.median(r["qc"])
        chain = r["read"] + g
        print(f"events: {n:,} x 11 float32")
        print(f"read_fcs                                  {r['read']:7.3f} s")
        print(
            f"gating (plan + fused pass, 10 populations) {g:7.3f} s  (median of {len(r['gate'])})"
        )
        print(f"acquisition_qc                             {q:7.3f} s  (median of {len(r['qc'])}); "
              f"removed {r['removed']:.2f}%, verdict {r['verdict']}")  # fmt: skip
        sc = statistics.median(r["scan"])
        print(f"  of which the row scan (AcquisitionPass.update over every row) {sc:7.3f} s "
              f"(median of {len(r['scan'])}): {sc / q:.2f} of QC, {sc / r['read']:.2f} of the "
              "read")  # fmt: skip
        print(f"  runs gate: {', '.join(f'{x:.3f}' for x in r['gate'])}")
        print(f"  runs qc:   {', '.join(f'{x:.3f}' for x in r['qc'])}")
        print(f"QC / gating pass: {q / g:.2f}; QC / (read + gating pass): {q / chain:.2f}")
        with tempfile.TemporaryDirectory(dir=DATA_DIR) as tmp:
            strategy = Path(tmp) / "strategy.xml"
            bench_batch.donor_strategy().to_gatingml(strategy)
            walls: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(repeats_gate):  # alternating, so drift in the machine hits both
                order = (("off", []), ("on", ["--acquisition-qc"]))
                for mode, extra in order if i % 2 == 0 else order[::-1]:
                    cmd = bench_batch.gate_command(
                        strategy, [str(path)], Path(tmp) / f"{mode}{i}", "--workers", "1", *extra
                    )
                    t0 = time.perf_counter()
                    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    walls[mode].append(time.perf_counter() - t0)
                    if done.returncode:
                        sys.exit(done.stderr)
        wall, with_qc = statistics.median(walls["off"]), statistics.median(walls["on"])
        for mode, label in (
            ("off", "cytokit gate (the command, 1 worker)     "),
            ("on", "cytokit gate --acquisition-qc           "),
        ):
            print(f"{label}   {statistics.median(walls[mode]):7.3f} s  (median of "
                  f"{len(walls[mode])}: {', '.join(f'{x:.2f}' for x in walls[mode])})")  # fmt: skip
        pairs = [b / a for a, b in zip(walls["off"], walls["on"], strict=True)]
        print(f"QC / cytokit gate: {q / wall:.2f}")
        print(f"cytokit gate with / without --acquisition-qc: {with_qc / wall:.3f} (medians; "
              f"goal <= 1.25); median of the {len(pairs)} alternating pairs' ratios "
              f"{statistics.median(pairs):.3f}")  # fmt: skip
    finally:
        if not keep:
            path.unlink(missing_ok=True)


def scan_blocks(n: int, repeats: int) -> None:
    """QC's row scan over the whole array against block by block with each block in cache.

    Feeding `AcquisitionPass.update` from the reader's blocks would scan each
    block while the reader has just written it (in cache); this times that
    case (each block of 16,384 rows, ~700 KiB, summed first to bring it into
    cache, untimed) against one scan of the whole array, alternated.
    """
    from cytokit import read_fcs
    from cytokit.qc import AcquisitionPass
    from cytokit.simulate import benchmark_file

    rows = 1 << 14
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan.fcs"
        benchmark_file(path, n_events=n, seed=3)
        sample = read_fcs(path)

    def whole() -> float:
        p = AcquisitionPass(sample)
        t = time.perf_counter()
        p.update(0, n)
        return time.perf_counter() - t

    def in_cache() -> float:
        p, total = AcquisitionPass(sample), 0.0
        for a in range(0, n, rows):
            b = min(n, a + rows)
            np.add.reduce(sample.events[a:b], axis=0)
            t = time.perf_counter()
            p.update(a, b)
            total += time.perf_counter() - t
        return total

    whole(), in_cache()
    w, c = [], []
    for i in range(repeats):
        runs = ((whole, w), (in_cache, c))
        for fn, out in runs if i % 2 == 0 else runs[::-1]:
            out.append(fn())
    mw, mc = statistics.median(w), statistics.median(c)
    print(f"row scan, {n:,} events: whole array {mw:.3f} s, block by block in cache {mc:.3f} s "
          f"(medians of {repeats}); in cache / whole {mc / mw:.2f}")  # fmt: skip


def main() -> None:
    from qc_outside import FILE_KINDS

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--seeds", type=int, nargs=2, default=(1001, 1060), metavar=("FIRST", "LAST"))
    ap.add_argument(
        "--kinds",
        nargs="+",
        choices=(*KINDS, "clean"),
        default=(*KINDS, "clean"),
        help="with --accuracy: the anomaly kinds (and clean files) to score (default: all)",
    )
    ap.add_argument(
        "--events",
        type=int,
        default=N_EVENTS,
        help="with --accuracy: events per simulated file (the run lasts events / rate)",
    )
    ap.add_argument("--mixed", action="store_true", help="files holding every kind at once")
    ap.add_argument(
        "--held",
        type=float,
        metavar="SHARE",
        help="with --accuracy or --mixed: each drift reaches its change at this share (0-1] of the rest "
        "of the run after its start and holds it (Drift.end), not at the run's end",
    )
    ap.add_argument(
        "--start",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="with --accuracy or --mixed: each drift starts at a share of the run drawn in [LO, HI]",
    )
    ap.add_argument(
        "--blocks", action="store_true", help="one channel's gain changed for a while (--events)"
    )
    ap.add_argument(
        "--shares", action="store_true", help="one population's share changed for a while"
    )
    ap.add_argument(
        "--outside",
        choices=FILE_KINDS,
        help="files drawn apart from the simulator (qc_outside.py, --events): a gain changed "
        "for a while, drifting to a change held (hold) or undone (wave), drifting to the run's "
        "end evenly (ramp; on every marker: laser), slow first (curve) or fast first (settle), "
        "or the mix of cells",
    )
    ap.add_argument("--population", help="with --shares: this population (a simulator label)")
    ap.add_argument("--factor", type=float, help="with --shares: this factor on its share")
    ap.add_argument(
        "--span", type=float, nargs=2, metavar=("LO", "HI"), help="with --shares: over this span"
    )
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the simulated file")
    ap.add_argument("--gate-repeats", type=int, default=5, help="runs of each cytokit gate")
    ap.add_argument(
        "--scan-blocks", action="store_true", help="row scan: whole array vs cached blocks"
    )
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.repeats)
        return
    if args.scan_blocks:
        scan_blocks(args.n, args.repeats)
        return
    if not (args.accuracy or args.cost or args.mixed or args.blocks or args.shares or args.outside):
        ap.error("give --accuracy, --mixed, --blocks, --shares, --outside, --cost or --scan-blocks")
    if args.held is not None and not 0 < args.held <= 1:
        ap.error(f"--held {args.held}: give a share of the run after the drift's start, 0-1")
    if args.start is not None and not 0 <= args.start[0] <= args.start[1] < 1:
        ap.error(f"--start {args.start}: give two shares of the run, 0 <= LO <= HI < 1")
    if args.outside:
        outside(args.outside, range(args.seeds[0], args.seeds[1] + 1), args.events)
    if args.shares:
        fixed = dict(population=args.population, factor=args.factor, span=args.span)
        shares(range(args.seeds[0], args.seeds[1] + 1), args.events, **fixed)
    if args.blocks:
        blocks(range(args.seeds[0], args.seeds[1] + 1), args.events)
    if args.mixed:
        mixed(range(args.seeds[0], args.seeds[1] + 1), args.events, args.held, args.start)
    if args.accuracy:
        kinds = tuple(k for k in args.kinds if k != "clean")
        seeds = range(args.seeds[0], args.seeds[1] + 1)
        accuracy(seeds, kinds, "clean" in args.kinds, args.events, args.held, args.start)
    if args.cost:
        cost(args.n, args.repeats, args.seed, args.keep, args.gate_repeats)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
