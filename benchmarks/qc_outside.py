"""Files for acquisition QC drawn apart from `cytokit.simulate`.

The simulator's files share their assumptions with the checks tuned on them
(its populations, panel and noise). This module draws a plainer sample from
other ones, so that what QC does on it says more:

* six kinds of event with their own medians (linear units) on forward and
  side scatter and five markers, and their shares: T cells (CD45, CD3), B
  cells (CD45, HLA-DR), NK cells (CD45, CD56), monocytes (CD45, CD14,
  HLA-DR), granulocytes (dim CD45, CD56 and CD14) and debris;
* each value is its median times a log-normal factor (SD 0.12 on scatter,
  0.35 on markers), independently per value; an unstained value is electronic
  noise about 100 (SD 150); values are clipped to -1,000 and 262,143;
* events arrive uniformly over ``n / 3000`` s, and the Time channel counts
  ticks of 0.01 s (``$TIMESTEP``).

Kinds of file, each over a stretch that starts at 10-70 % of the run and
lasts 10-30 % of it (drawn from ``seed + 999``):

* ``gain``: one marker channel (in turn by seed) reads 0.72 or 1.35 times its
  values over the stretch (a detector's gain changed for a while and
  restored): QC should remove the stretch and little else;
* ``hold``: the same channel's gain moves evenly (on the log scale) from its
  own over the stretch to 0.72 or 1.35 times it, and holds that to the run's
  end (a drift from a held start that reached its change); ``wave``: it moves
  to that change at the stretch's middle and back by its end. For these the
  events to remove are those where the gain is 10 % off or more;
* ``ramp``, ``curve`` and ``settle``: the same channel's gain moves from the
  stretch's start to the run's end, evenly on the log scale (``ramp``), as
  the square of the time since the start (``curve``: slow first, then
  faster), or towards the change with a time constant of a tenth of the run
  (``settle``: fast first, then levelling off); ``laser``: a ``ramp`` on all
  five marker channels at once (a laser's power changing). For these too the
  events to remove are those where the gain is 10 % off or more;
* ``mix``: one kind of event (in turn by seed) is 2.5 or 0.4 times as
  frequent over the stretch, with no detector change (a change in the mix of
  cells): QC should remove little. B cells and T cells have like scatter,
  so a change in the share of B cells moves HLA-DR's bright level within
  the lymphocytes' scatter as a gain would.

Usage::

    from qc_outside import outside_file
    sample, stretch, what = outside_file("gain", 20_000, seed=1)
"""

from __future__ import annotations

import numpy as np

#: Channels after Time; the markers' order is the order of the gain files' channel turn.
NAMES = ("FSC-A", "SSC-A", "V500-A", "APC-A", "PE-A", "FITC-A", "PerCP-A")
#: Per kind: medians on (FSC, SSC, CD45, CD3, CD56, CD14, HLA-DR), 0 for unstained; share.
KINDS = {
    "T": ((55e3, 12e3, 40e3, 20e3, 0, 0, 0), 0.22),
    "B": ((52e3, 11e3, 38e3, 0, 0, 0, 25e3), 0.05),
    "NK": ((58e3, 16e3, 32e3, 0, 9e3, 0, 0), 0.05),
    "mono": ((85e3, 35e3, 25e3, 0, 0, 30e3, 15e3), 0.08),
    "gran": ((95e3, 80e3, 9e3, 0, 1.5e3, 3e3, 0), 0.55),
    "debris": ((15e3, 5e3, 500, 0, 0, 0, 0), 0.05),
}
#: Kinds whose share the mix files change, in turn by seed.
MIX_TURN = ("gran", "mono", "T", "debris", "B")
#: The kinds of file whose gain changes (`outside_file`).
GAINS = ("gain", "hold", "wave", "ramp", "curve", "settle", "laser")
#: Every kind of file `outside_file` draws (``bench_acquisition_qc.py --outside``).
FILE_KINDS = (*GAINS, "mix")
EVENTS_PER_SECOND = 3000
TICK = 0.01


def _draw(
    seed: int, n: int, kind=None, factor=1.0, span=(0.2, 0.4), channel=None, gain=1.0, shape="block"
):
    """(sample, events in the stretch) of one file (see the module docstring); for a gain
    that drifts (every shape but ``block``), the events where it is 10 % off or more.
    `channel`: a channel's name, or a tuple of them that the gain moves together."""
    from cytokit.sample import Channel, Sample

    rng = np.random.default_rng(seed)
    kinds = list(KINDS)
    shares = np.array([KINDS[k][1] for k in kinds])
    shares /= shares.sum()
    t = np.sort(rng.uniform(0, n / EVENTS_PER_SECOND, n))
    u = t / t[-1]
    inside = (u >= span[0]) & (u < span[1])
    label = rng.choice(len(kinds), size=n, p=shares)
    if kind is not None:
        changed = shares.copy()
        changed[kinds.index(kind)] *= factor
        changed /= changed.sum()
        label[inside] = rng.choice(len(kinds), size=int(inside.sum()), p=changed)
    ev = np.empty((n, len(NAMES)))
    for i, k in enumerate(kinds):
        mine = label == i
        for j, median in enumerate(KINDS[k][0]):
            sd = 0.12 if j < 2 else 0.35
            if median:
                ev[mine, j] = median * np.exp(rng.normal(0, sd, mine.sum()))
            else:
                ev[mine, j] = rng.normal(100, 150, mine.sum())
    if channel is not None:
        lo, hi = span
        if shape == "block":
            moved = inside.astype(np.float64)
        elif shape == "hold":  # from the level held at the start to the change, held to the end
            moved = np.clip((u - lo) / (hi - lo), 0.0, 1.0)
        elif shape == "wave":  # to the change at the stretch's middle and back
            moved = np.clip(1.0 - np.abs(u - (lo + hi) / 2) / ((hi - lo) / 2), 0.0, 1.0)
        elif shape in ("ramp", "curve"):  # from the stretch's start to the run's end
            moved = np.clip((u - lo) / (1.0 - lo), 0.0, 1.0) ** (2 if shape == "curve" else 1)
        else:  # "settle": towards the change, a tenth of the run its time constant
            moved = np.where(u > lo, 1.0 - np.exp(-(u - lo) / 0.1), 0.0)
        factor_of = np.exp(np.log(gain) * moved)
        names = (channel,) if isinstance(channel, str) else channel
        ev[:, [NAMES.index(c) for c in names]] *= factor_of[:, None]
        if shape != "block":
            inside = np.abs(np.log(factor_of)) >= np.log(1.1)
    ev = np.clip(ev, -1000, 262_143)
    data = np.column_stack([np.floor(t / TICK), ev]).astype(np.float32)
    markers = (Channel(i + 1, name, range=262_144) for i, name in enumerate(NAMES))
    channels = (Channel(0, "Time", range=2**24), *markers)
    sample = Sample(data, channels, keywords={"$TIMESTEP": str(TICK)}, scaled=True)
    return sample, inside


def outside_file(what: str, n: int, seed: int):
    """(sample, events in the stretch, description) of a file of kind `what` (``gain``,
    ``hold``, ``wave``, ``ramp``, ``curve``, ``settle``, ``laser`` or ``mix``) of `n`
    events for `seed` (see the module docstring)."""
    rng = np.random.default_rng(seed + 999)
    lo = rng.uniform(0.1, 0.7)
    span = (lo, lo + rng.uniform(0.1, 0.3))
    if what == "mix":
        kind, factor = MIX_TURN[seed % 5], (2.5, 0.4)[seed % 2]
        sample, inside = _draw(seed, n, kind, factor, span)
        return sample, inside, (kind, factor, span)
    if what in GAINS:
        channel, gain = NAMES[2 + seed % 5], (0.72, 1.35)[seed % 2]
        shape = {"gain": "block", "laser": "ramp"}.get(what, what)
        moved = NAMES[2:] if what == "laser" else channel
        sample, inside = _draw(seed, n, span=span, channel=moved, gain=gain, shape=shape)
        # a drift to the run's end is said from its start to the end
        said = (span[0], 1.0) if shape in ("ramp", "curve", "settle") else span
        return sample, inside, ("markers" if what == "laser" else channel, gain, said)
    raise ValueError(
        f"outside_file: {what!r} is not a kind of file; give one of {', '.join(FILE_KINDS)}"
    )
