"""Further tubes of a simulated visit: an NK receptor tube and a stimulated/unstimulated function pair.

`add_tubes` turns a simulated one-tube study (`cytokit.simulate.simulate_study`)
into a multi-tube one: for every file of the chimerism tube it writes

* ``<stem>_receptors.fcs``: KIR2DL1, KIR2DL2/3, KIR3DL1 and NKG2A on four
  further detectors, each event positive or negative for each receptor from
  a repertoire that differs between donor and recipient NK cells
  (`REPERTOIRE`: the donor's KIR2DL1/KIR2DL2/3-rich, the recipient's
  KIR3DL1-rich; NKG2A more frequent on NK cells without a KIR, as on
  uneducated cells);
* ``<stem>_stim.fcs`` and ``<stem>_unstim.fcs``: CD107a and IFN-γ, positive
  with the stimulated or the background probability of the event's
  population and origin (`FUNCTION`).

The tubes' events are the chimerism file's cells (scatter, lineage and donor
marker as acquired): aliquots of one blood sample. Each further detector's
positive events have a log-normal intensity scaled by a gain uniform in
1 ± `drift` (the instrument's day-to-day drift): the receptor detectors'
gain is the day's, shared by every file of the day; the function
detectors' is the visit's, shared by its stimulated and unstimulated files.
Negative events are spread around 0. With `references`, the receptor tube
also has, every day, a reference sample (``REF``) and a healthy control
(``HC``): the same cells each day (the reference `REFERENCE_DEPTH` times
a patient file's events, the control as many as a patient's), a fixed
repertoire (`HEALTHY`), the day's gains. The
receptor and function detectors are outside the file's spillover matrix.

Ground truth, beside each file as ``<stem>_<tube>.truth.npz``: ``label``,
``donor`` (as the chimerism file's), ``markers`` and ``positive`` (bool,
(n_events, n_markers)), ``probability`` (the probability each event had of
being positive for each marker) and ``gain`` per marker.

The study.toml gains a ``[tubes.<name>]`` table per tube with fixed
positivity thresholds (`THRESHOLD`, compensated scale, between the negative
spread and the dimmest positives at the lowest gain), a repertoire table and
``pairs_with``; the manifest a ``tube`` column.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np

from cytokit.errors import CytokitError
from cytokit.fcs import read_fcs, write_fcs

__all__ = [
    "FUNCTION",
    "RECEPTORS",
    "REPERTOIRE",
    "THRESHOLD",
    "add_tubes",
    "function_truth",
    "positivity_truth",
    "repertoire_truth",
]

RECEPTORS = ("KIR2DL1", "KIR2DL2/3", "KIR3DL1", "NKG2A")
KIRS = RECEPTORS[:3]
FUNCTION_MARKERS = ("CD107a", "IFN-g")
_RECEPTOR_CHANNELS = ("BV421-A", "BV605-A", "BV711-A", "BV786-A")
_FUNCTION_CHANNELS = ("BV421-A", "BV605-A")
#: Fixed positivity threshold of every further marker (compensated scale value).
THRESHOLD = 1000.0
_POSITIVE_MEDIAN = 6000.0
_POSITIVE_SD_LOG = 0.35
_NEGATIVE_SD = 120.0

_NK = ("NK_bright", "NK_dim")
#: The reference sample's patient id, and the healthy control's.
REFERENCE, CONTROL = "REF", "HC"
#: How many times a patient file's events the reference files hold.
REFERENCE_DEPTH = 4
#: The repertoire of the reference and control samples' NK cells (every day the same).
HEALTHY = {"KIR2DL1": 0.25, "KIR2DL2/3": 0.35, "KIR3DL1": 0.25, "NKG2A": (0.85, 0.65)}
#: Per origin: P(KIR+) for each KIR, and P(NKG2A+) without any KIR / with one or more.
REPERTOIRE = {
    "donor": {"KIR2DL1": 0.35, "KIR2DL2/3": 0.45, "KIR3DL1": 0.15, "NKG2A": (0.70, 0.30)},
    "recipient": {"KIR2DL1": 0.10, "KIR2DL2/3": 0.30, "KIR3DL1": 0.40, "NKG2A": (0.55, 0.25)},
}
#: P(positive) per population kind, origin and marker: (stimulated, unstimulated).
FUNCTION = {
    ("NK", "donor"): {"CD107a": (0.30, 0.02), "IFN-g": (0.12, 0.01)},
    ("NK", "recipient"): {"CD107a": (0.18, 0.02), "IFN-g": (0.07, 0.01)},
    ("CIK", "donor"): {"CD107a": (0.15, 0.01), "IFN-g": (0.10, 0.01)},
    ("CIK", "recipient"): {"CD107a": (0.05, 0.01), "IFN-g": (0.03, 0.01)},
    ("T", "donor"): {"CD107a": (0.03, 0.01), "IFN-g": (0.02, 0.005)},
    ("T", "recipient"): {"CD107a": (0.03, 0.01), "IFN-g": (0.02, 0.005)},
}

TUBES_TOML = """
[tubes.receptors]
panel = {{ KIR2DL1 = "BV421-A", "KIR2DL2/3" = "BV605-A", KIR3DL1 = "BV711-A", NKG2A = "BV786-A" }}
phenotype = {{ markers = ["KIR2DL1", "KIR2DL2/3", "KIR3DL1", "NKG2A"], thresholds = {{ KIR2DL1 = {t}, "KIR2DL2/3" = {t}, KIR3DL1 = {t}, NKG2A = {t} }} }}
repertoire = {{ receptors = ["KIR2DL1", "KIR2DL2/3", "KIR3DL1", "NKG2A"], kirs = ["KIR2DL1", "KIR2DL2/3", "KIR3DL1"], inhibitory = ["KIR2DL1", "KIR2DL2/3", "KIR3DL1", "NKG2A"] }}

[tubes.stimulated]
panel = {{ CD107a = "BV421-A", "IFN-g" = "BV605-A" }}
phenotype = {{ markers = ["CD107a", "IFN-g"], thresholds = {{ CD107a = {t}, "IFN-g" = {t} }} }}
pairs_with = "unstimulated"

[tubes.unstimulated]
panel = {{ CD107a = "BV421-A", "IFN-g" = "BV605-A" }}
phenotype = {{ markers = ["CD107a", "IFN-g"], thresholds = {{ CD107a = {t}, "IFN-g" = {t} }} }}
"""


def _kind(label: str) -> str:
    if label in _NK:
        return "NK"
    if label == "CIK":
        return "CIK"
    if label.startswith("T_"):
        return "T"
    return ""


def _receptor_probability(labels: np.ndarray, names, donor: np.ndarray):
    """(n, 4) probability of each KIR (NKG2A's is set once the KIRs are drawn, see
    `REPERTOIRE`) and each event's population kind."""
    n = len(labels)
    p = np.zeros((n, len(RECEPTORS)))
    kinds = np.array([_kind(str(names[code])) for code in labels])
    nk = kinds == "NK"
    for origin, sel in (("donor", donor), ("recipient", ~donor)):
        rep = REPERTOIRE[origin]
        for j, m in enumerate(KIRS):
            p[nk & sel, j] = rep[m]
    p[kinds == "CIK", :3] = 0.05
    p[kinds == "T", :3] = 0.02
    return p, kinds


def _signal(positive: np.ndarray, gain: float, rng) -> np.ndarray:
    n = positive.size
    pos = _POSITIVE_MEDIAN * gain * np.exp(rng.normal(0.0, _POSITIVE_SD_LOG, n))
    neg = rng.normal(0.0, _NEGATIVE_SD, n)
    return np.where(positive, pos, neg)


#: Keywords of the first tube's file that a further tube's file of the same visit keeps.
_KEPT_KEYWORDS = ("$TIMESTEP", "$BTIM", "$ETIM", "$DATE", "$CYT")


def _write(sample, events: np.ndarray, markers, channels, path: Path) -> None:
    from cytokit.sample import Channel

    chans = list(sample.channels)
    for m, c in zip(markers, channels, strict=True):
        chans.append(Channel(len(chans), c, m, range=262_144, bits=32))
    # the acquisition's clock and date stay (QC reads times in seconds through $TIMESTEP);
    # the rest named the first tube's file, panel and compensation
    kept = {k: v for k, v in sample.keywords.items() if k.upper() in _KEPT_KEYWORDS}
    out = dataclasses.replace(
        sample,
        events=np.ascontiguousarray(np.hstack([sample.events, events.astype(sample.events.dtype)])),
        channels=tuple(chans),
        keywords=kept,
    )
    write_fcs(path, out)


def _day_gains(seed: int, day: int, drift: float) -> np.ndarray:
    """The receptor detectors' gains on `day`: one per detector, shared by the day's files
    (the instrument's state that day)."""
    rng = np.random.default_rng([seed, 7, day + 100_000])
    return rng.uniform(1 - drift, 1 + drift, len(RECEPTORS))


def _reference_samples(folder: Path, lines, header, seed, drift, with_control, src) -> list[str]:
    """Receptor-tube files of the reference sample (`REFERENCE`) and of a healthy control
    (`CONTROL`) on every day of the study: the same cells every day (the first file's, read
    from `src`), receptors drawn from `HEALTHY`, the day's gains. Returns their manifest
    lines."""

    at = header.index("file")
    first = lines[1].split(",")
    days = sorted({int(line.split(",")[header.index("day")]) for line in lines[1:]})
    path = src / first[at]
    sample = read_fcs(path, scale=False)
    with np.load(path.with_suffix(".truth.npz"), allow_pickle=False) as z:
        labels, names = z["label"], z["label_names"]
    # the reference is acquired deeper than a patient's sample (as anchor samples are):
    # the first file's cells `REFERENCE_DEPTH` times over; the control as a patient's
    events = np.ascontiguousarray(np.tile(sample.events, (REFERENCE_DEPTH, 1)))
    names_ = [c.name for c in sample.channels]
    if "Time" in names_ and sample.n_events:  # one acquisition: each copy after the last
        t = names_.index("Time")
        t0, t1 = float(sample.events[0, t]), float(sample.events[-1, t])
        step = (t1 - t0) / max(sample.n_events - 1, 1)
        shift = np.repeat(np.arange(REFERENCE_DEPTH) * (t1 - t0 + step), sample.n_events)
        events[:, t] += shift.astype(events.dtype)
    deep = dataclasses.replace(sample, events=events)
    out = []
    for who, base, cells in (
        (REFERENCE, deep, np.tile(labels, REFERENCE_DEPTH)),
        (CONTROL, sample, labels),
    ):
        kinds = np.array([_kind(str(names[code])) for code in cells])
        nk = kinds == "NK"
        for day in days:
            rng = np.random.default_rng([seed, zlib.crc32(who.encode()), day + 100_000])
            p = np.zeros((len(cells), len(RECEPTORS)))
            for j, m in enumerate(KIRS):
                p[nk, j] = HEALTHY[m]
            positive = np.zeros_like(p, dtype=bool)
            positive[:, :3] = rng.random((len(cells), 3)) < p[:, :3]
            without, with_kir = HEALTHY["NKG2A"]
            p[nk, 3] = np.where(positive[nk, :3].any(axis=1), with_kir, without)
            positive[:, 3] = rng.random(len(cells)) < p[:, 3]
            gains = _day_gains(seed, day, drift)
            signal = np.column_stack(
                [_signal(positive[:, j], gains[j], rng) for j in range(len(RECEPTORS))]
            )
            target = folder / "fcs" / f"{who}_day{day:03d}_receptors.fcs"
            _write(base, signal, RECEPTORS, _RECEPTOR_CHANNELS, target)
            np.savez_compressed(
                target.with_suffix(".truth.npz"),
                label=cells, donor=np.zeros(len(cells), bool), label_names=names,
                markers=np.array(RECEPTORS), positive=positive, probability=p, gain=gains,
            )  # fmt: skip
            row = dict(zip(header, first, strict=True))
            row.update(file=str(target.relative_to(folder)), patient=who, day=str(day))
            # not a patient of the trial: no stratum (arm) and no cell product
            row.update({k: "" for k in ("stratum", "product") if k in row})
            out.append(
                ",".join(row[h] for h in header) + ",receptors" + ("," if with_control else "")
            )
    return out


def add_tubes(
    folder: str | Path,
    *,
    seed: int = 0,
    drift: float = 0.3,
    fmo: tuple[str, ...] = ("NKG2A",),
    references: bool = True,
    source: str | Path | None = None,
) -> list[str]:
    """Add a receptor tube and a stimulated/unstimulated function pair to a simulated study.

    Parameters
    ----------
    folder : path
        A study written by `cytokit.simulate.simulate_study` (one tube).
    seed : int
        Seed of the receptor and function events and of the gains.
    drift : float
        Day-to-day gain drift of the further detectors: each visit's gain is
        uniform in [1 − drift, 1 + drift] (0: none).
    fmo : tuple of str
        Receptors that get an FMO control per visit: the receptor file's cells
        with that receptor's detector unstained (negative spread only), listed
        in the manifest with tube ``receptors`` and ``control`` the receptor.
    references : bool
        Also write, for every day, a receptor-tube file of the reference
        sample (patient `REFERENCE`, named by ``[normalise] reference``) and of
        a healthy control (patient `CONTROL`, a stable population to measure
        normalisation on): the same cells every day, acquired with the day's
        gains.
    source : path, optional
        A folder holding the same study simulated without acquisition
        anomalies: the tubes' cells are read from its chimerism files, so that
        a clog, bubble or drift injected into a chimerism file (its per-event
        truth is that file's) does not reach the other tubes, each acquired on
        its own. Default: `folder` itself.

    Returns
    -------
    list of str
        The files written, relative to the study folder.

    Raises
    ------
    CytokitError
        The folder is not a simulated one-tube study.
    """

    folder = Path(folder)
    src = Path(source) if source is not None else folder
    manifest = folder / "manifest.csv"
    lines = manifest.read_text().splitlines()
    header = lines[0].split(",")
    if "tube" in header:
        raise CytokitError(f"{manifest}: already has a tube column; add tubes to a one-tube study")
    if not 0 <= drift < 1:
        raise CytokitError(f"drift = {drift!r} must be in [0, 1), e.g. 0.3 for ±30 %")
    at = header.index("file")
    unknown = [m for m in fmo if m not in RECEPTORS]
    if unknown:
        raise CytokitError(f"fmo {unknown}: FMO controls are of receptors {list(RECEPTORS)}")
    tail = ",tube,control" if fmo else ",tube"
    out_lines = [lines[0] + tail] + [line + ("," * tail.count(",")) for line in lines[1:]]
    written = []
    for line in lines[1:]:
        cells = line.split(",")
        rel = cells[at]
        path = folder / rel
        truth_path = (src / rel).with_suffix(".truth.npz")
        if not truth_path.is_file():
            raise CytokitError(f"{truth_path}: no per-event truth; is {src} simulated?")
        sample = read_fcs(src / rel, scale=False)
        with np.load(truth_path, allow_pickle=False) as z:
            labels, donor, names = z["label"], z["donor"].astype(bool), z["label_names"]
        rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
        # receptors
        p, kinds = _receptor_probability(labels, names, donor)
        positive = np.zeros_like(p, dtype=bool)
        positive[:, :3] = rng.random((len(labels), 3)) < p[:, :3]
        any_kir = positive[:, :3].any(axis=1)
        nk = kinds == "NK"
        for origin, sel in (("donor", donor), ("recipient", ~donor)):
            without, with_kir = REPERTOIRE[origin]["NKG2A"]
            p[nk & sel, 3] = np.where(any_kir[nk & sel], with_kir, without)
        p[kinds == "CIK", 3] = 0.30
        p[kinds == "T", 3] = 0.03
        positive[:, 3] = rng.random(len(labels)) < p[:, 3]
        day = int(cells[header.index("day")])
        gains = _day_gains(seed, day, drift)
        signal = np.column_stack(
            [_signal(positive[:, j], gains[j], rng) for j in range(len(RECEPTORS))]
        )
        stem = path.with_suffix("")
        target = Path(f"{stem}_receptors.fcs")
        _write(sample, signal, RECEPTORS, _RECEPTOR_CHANNELS, target)
        np.savez_compressed(
            Path(f"{stem}_receptors.truth.npz"),
            label=labels, donor=donor, label_names=names, markers=np.array(RECEPTORS),
            positive=positive, probability=p, gain=gains,
        )  # fmt: skip
        written.append((rel, target, "receptors"))
        for m in fmo:  # the same cells, the receptor's detector without its antibody
            j = RECEPTORS.index(m)
            control = signal.copy()
            control[:, j] = rng.normal(0.0, _NEGATIVE_SD, len(labels))
            safe = "".join(c if c.isalnum() else "_" for c in m)
            target = Path(f"{stem}_receptors_fmo_{safe}.fcs")
            _write(sample, control, RECEPTORS, _RECEPTOR_CHANNELS, target)
            unstained = positive.copy()
            unstained[:, j] = False  # no antibody: no cell carries its label
            np.savez_compressed(
                target.with_suffix(".truth.npz"),
                label=labels, donor=donor, label_names=names, markers=np.array(RECEPTORS),
                positive=unstained, probability=p, gain=gains,
            )  # fmt: skip
            written.append((rel, target, f"receptors,{m}"))
        # function: one gain per detector and visit, shared by the two tubes of the pair
        fgains = rng.uniform(1 - drift, 1 + drift, len(FUNCTION_MARKERS))
        for tube, k in (("stimulated", 0), ("unstimulated", 1)):
            fp = np.zeros((len(labels), len(FUNCTION_MARKERS)))
            for origin, sel in (("donor", donor), ("recipient", ~donor)):
                for kind in ("NK", "CIK", "T"):
                    probs = FUNCTION[(kind, origin)]
                    for j, m in enumerate(FUNCTION_MARKERS):
                        fp[(kinds == kind) & sel, j] = probs[m][k]
            fpos = rng.random(fp.shape) < fp
            signal = np.column_stack(
                [_signal(fpos[:, j], fgains[j], rng) for j in range(len(FUNCTION_MARKERS))]
            )
            target = Path(f"{stem}_{'stim' if tube == 'stimulated' else 'unstim'}.fcs")
            _write(sample, signal, FUNCTION_MARKERS, _FUNCTION_CHANNELS, target)
            np.savez_compressed(
                target.with_suffix(".truth.npz"),
                label=labels, donor=donor, label_names=names, markers=np.array(FUNCTION_MARKERS),
                positive=fpos, probability=fp, gain=fgains,
            )  # fmt: skip
            written.append((rel, target, tube))
    for rel, target, tube in written:
        cells = next(line for line in lines[1:] if line.split(",")[at] == rel).split(",")
        cells[at] = str(target.relative_to(folder))
        out_lines.append(",".join(cells) + f",{tube}" + ("," if fmo and "," not in tube else ""))
    extra: list[str] = []
    if references:
        more = _reference_samples(folder, lines, header, seed, drift, bool(fmo), src)
        out_lines += more
        extra = [line.split(",")[at] for line in more]
    manifest.write_text("\n".join(out_lines) + "\n")
    toml = folder / "study.toml"
    toml.write_text(
        toml.read_text()
        + TUBES_TOML.format(t=f"{THRESHOLD:g}")
        + (f'\n[normalise]\nreference = "{REFERENCE}"\n' if references else "")
    )
    return [str(t.relative_to(folder)) for _, t, _ in written] + extra


def _patient_files(folder: Path, pattern: str) -> list[Path]:
    """The truth files of `pattern` of the study's patients (not the reference or control)."""
    skip = (f"{REFERENCE}_", f"{CONTROL}_")
    return sorted(p for p in (folder / "fcs").glob(pattern) if not p.name.startswith(skip))


def _combination(signs) -> str:
    return " ".join(f"{m}{'+' if v else '-'}" for m, v in zip(RECEPTORS, signs, strict=True))


def _design_probability(origin: str, signs) -> float:
    """The probability of a donor or recipient NK cell carrying receptor combination `signs`."""
    rep = REPERTOIRE[origin]
    p = 1.0
    for m, v in zip(KIRS, signs[:3], strict=True):
        p *= rep[m] if v else 1.0 - rep[m]
    without, with_kir = rep["NKG2A"]
    q = with_kir if any(signs[:3]) else without
    return p * (q if signs[3] else 1.0 - q)


def repertoire_truth(folder: str | Path) -> list[dict]:
    """Per receptor-tube file, NK origin (donor, recipient) and combination: the true events
    (``events``, ``total``: NK cells of that origin by per-event truth) and the repertoire's
    probability (``probability``) the events were drawn with."""
    import itertools

    folder = Path(folder)
    rows = []
    for path in _patient_files(folder, "*_receptors.truth.npz"):
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["label_names"]]
            nk = np.isin(z["label"], [names.index(n) for n in _NK])
            donor, positive = z["donor"].astype(bool), z["positive"]
        file = f"fcs/{path.name[: -len('.truth.npz')]}.fcs"
        for origin, sel in (("donor", nk & donor), ("recipient", nk & ~donor)):
            code = positive[sel].astype(np.int64) @ (1 << np.arange(len(RECEPTORS))[::-1])
            counts = np.bincount(code, minlength=2 ** len(RECEPTORS))
            for c, signs in enumerate(itertools.product((False, True), repeat=len(RECEPTORS))):
                rows.append(
                    {
                        "file": file,
                        "origin": origin,
                        "combination": _combination(signs),
                        "events": int(counts[c]),
                        "total": int(sel.sum()),
                        "probability": _design_probability(origin, signs),
                    }
                )
    return rows


def function_truth(folder: str | Path) -> list[dict]:
    """Per stimulated file, NK origin and function marker: the true % positive of the
    stimulated and the unstimulated file's NK cells of that origin (per-event truth), and
    the probabilities they were drawn with (``p_stim``, ``p_unstim``)."""
    folder = Path(folder)
    rows = []
    for path in sorted((folder / "fcs").glob("*_stim.truth.npz")):
        other = path.with_name(path.name.replace("_stim.", "_unstim."))
        truth = []
        for p in (path, other):
            with np.load(p, allow_pickle=False) as z:
                names = [str(n) for n in z["label_names"]]
                nk = np.isin(z["label"], [names.index(n) for n in _NK])
                truth.append((nk, z["donor"].astype(bool), z["positive"]))
        file = f"fcs/{path.name[: -len('.truth.npz')]}.fcs"
        for origin in ("donor", "recipient"):
            for j, marker in enumerate(FUNCTION_MARKERS):
                pct = []
                for nk, donor, positive in truth:
                    sel = nk & (donor if origin == "donor" else ~donor)
                    pct.append(100.0 * positive[sel, j].mean() if sel.any() else float("nan"))
                p_stim, p_unstim = FUNCTION[("NK", origin)][marker]
                rows.append(
                    {
                        "file": file,
                        "origin": origin,
                        "marker": marker,
                        "pct_stim": pct[0],
                        "pct_unstim": pct[1],
                        "pct_net": pct[0] - pct[1],
                        "p_net": 100.0 * (p_stim - p_unstim),
                    }
                )
    return rows


def positivity_truth(folder: str | Path, marker: str = "NKG2A") -> list[dict]:
    """Per receptor-tube file: the true % of NK cells (all origins) positive for `marker`."""
    folder = Path(folder)
    rows = []
    j = RECEPTORS.index(marker)
    for path in _patient_files(folder, "*_receptors.truth.npz"):
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["label_names"]]
            nk = np.isin(z["label"], [names.index(n) for n in _NK])
            positive = z["positive"][:, j]
        file = f"fcs/{path.name[: -len('.truth.npz')]}.fcs"
        rows.append(
            {
                "file": file,
                "marker": marker,
                "events": int(nk.sum()),
                "pct_positive": 100.0 * positive[nk].mean() if nk.any() else float("nan"),
            }
        )
    return rows
