"""`AcquisitionQCSettings`: the ``[acquisition_qc]`` table of ``study.toml``, checked and typed.

==========================  ===================================  ==============================
key                         meaning                              default
==========================  ===================================  ==============================
``enabled``                 run acquisition QC before gating     ``true`` (writing the table
                                                                 turns QC on)
``checks``                  which checks: ``"rate"`` (flow       all three
                            rate: clogs, bursts, gaps),
                            ``"signal"`` (signal stability over
                            time), ``"margins"`` (events at a
                            detector's limits)
``sensitivity``             ``"low"``, ``"normal"`` or           ``"normal"``
                            ``"high"`` (see `THRESHOLDS`)
``max_removed_pct``         above this % of events removed the   20
                            file fails QC
``warn_removed_pct``        above this % (up to the maximum)     2, or the maximum when
                            the verdict is ``warn``              that is lower
``exclude_channels``        channels (``$PnN``) left out of the  ``[]``
                            signal and margin checks
``time_channel``            the channel (``$PnN``) that holds    the file's Time channel
                            the acquisition clock, for files     (``$PnN`` "Time" or
                            that name it otherwise (``HDR-T``)   ``$PnTYPE`` "Time")
==========================  ===================================  ==============================

A table that is absent means no acquisition QC; that decision belongs to the
caller (`StudySettings`), not to this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cytokit._numbers import is_finite_number, shown
from cytokit.errors import StudyError

__all__ = [
    "CHECKS",
    "SENSITIVITIES",
    "THRESHOLDS",
    "AcquisitionQCSettings",
    "Thresholds",
    "parse_acquisition_qc",
    "unknown_exclusions",
]

#: ``warn_removed_pct`` when the settings do not give it (and ``max_removed_pct`` is higher).
DEFAULT_WARN_PCT = 2.0
#: The checks, in report order.
CHECKS = ("rate", "signal", "margins")
SENSITIVITIES = ("low", "normal", "high")
_KEYS = (
    "enabled",
    "checks",
    "sensitivity",
    "max_removed_pct",
    "warn_removed_pct",
    "exclude_channels",
    "time_channel",
)


@dataclass(frozen=True)
class Thresholds:
    """The decision thresholds behind a sensitivity (see `cytokit.qc` for the method).

    Attributes
    ----------
    rate_z : float
        A bin's event count departs from the expected count by more than this
        many robust standard deviations (Poisson, widened by the file's own
        overdispersion) ...
    rate_change : float
        ... and by more than this fraction of the expected count.
    signal_z : float
        A channel's robust location in a bin (or over a window of bins)
        departs from the file's stable level by more than this many robust
        standard deviations ...
    signal_shift : float
        ... and by more than this, in asinh units (about a relative change,
        0.05 ≈ 5 %, for values well above the channel's cofactor).
    extend_z : float
        A flagged run grows into neighbouring bins that still depart in the
        same direction by more than this many standard deviations (and, for
        the rate, half of ``rate_change``; for the signal, ``signal_shift``).
    """

    rate_z: float
    rate_change: float
    signal_z: float
    signal_shift: float
    extend_z: float


#: Thresholds of each sensitivity.
THRESHOLDS = {
    "low": Thresholds(7.0, 0.45, 7.0, 0.15, 3.5),
    "normal": Thresholds(5.0, 0.30, 6.0, 0.10, 2.5),
    "high": Thresholds(4.0, 0.20, 4.0, 0.06, 2.0),
}


@dataclass(frozen=True)
class AcquisitionQCSettings:
    """What acquisition QC checks and when it fails a file (see the module docstring).

    Raises
    ------
    StudyError
        On construction with a value out of range; the message names the
        field, the value and what is allowed.
    """

    enabled: bool = True
    checks: tuple[str, ...] = CHECKS
    sensitivity: str = "normal"
    max_removed_pct: float = 20.0
    warn_removed_pct: float | None = None  # None: 2, or max_removed_pct when that is lower
    exclude_channels: tuple[str, ...] = ()
    time_channel: str | None = None  # None: the file's Time channel, as the reader finds it

    #: True when ``warn_removed_pct`` was not given (it follows ``max_removed_pct``), so
    #: that a maximum changed later (``cytokit gate --qc-max-removed``) moves it too
    warn_follows_max: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "warn_follows_max", self.warn_removed_pct is None)
        # the values given are checked before a warning level is derived from the maximum:
        # a bad maximum is one problem, not a second one about a level nobody set
        problems = _problems(self, "AcquisitionQCSettings: ", toml=False)
        if problems:
            raise StudyError("; ".join(problems))
        if self.warn_removed_pct is None:
            warn = min(DEFAULT_WARN_PCT, float(self.max_removed_pct))
            object.__setattr__(self, "warn_removed_pct", warn)
        object.__setattr__(self, "checks", tuple(c for c in CHECKS if c in self.checks))
        object.__setattr__(self, "exclude_channels", tuple(self.exclude_channels))
        object.__setattr__(self, "max_removed_pct", float(self.max_removed_pct))
        object.__setattr__(self, "warn_removed_pct", float(self.warn_removed_pct))

    def changed(self, **changes: Any) -> AcquisitionQCSettings:
        """A copy with `changes` (`dataclasses.replace`), in which a warning level that was
        not given stays not given: it follows the maximum, a changed one too."""
        if self.warn_follows_max:
            changes.setdefault("warn_removed_pct", None)
        return replace(self, **changes)

    @property
    def thresholds(self) -> Thresholds:
        return THRESHOLDS[self.sensitivity]

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any], source: str = "AcquisitionQCSettings.from_mapping"
    ) -> AcquisitionQCSettings:
        """Settings from a parsed ``[acquisition_qc]`` table.

        Parameters
        ----------
        mapping : mapping
            The table's keys and values, as TOML gives them.
        source : str
            The file the table came from, starting every message (by default the call
            itself: a table built in Python has no file).

        Raises
        ------
        StudyError
            Naming every bad key at once (unknown keys, wrong types, values
            out of range), each with the value and what is allowed.
        """
        settings, problems = parse_acquisition_qc(mapping, source)
        if problems:
            raise StudyError("; ".join(problems))
        return settings

    def as_dict(self) -> dict[str, Any]:
        """The settings as TOML-ready values (for run logs and ``study.json``); a
        ``time_channel`` only when one is named (TOML has no null)."""
        return {
            "enabled": self.enabled,
            "checks": list(self.checks),
            "sensitivity": self.sensitivity,
            "max_removed_pct": self.max_removed_pct,
            "warn_removed_pct": self.warn_removed_pct,
            "exclude_channels": list(self.exclude_channels),
        } | ({"time_channel": self.time_channel} if self.time_channel is not None else {})


def _problems(s, at: str, toml: bool = True) -> list[str]:
    """Everything wrong with the fields of `s` (an object with the settings' attributes),
    each value as TOML writes it (`toml`, a study.toml table) or as Python does."""

    def show(v) -> str:
        return shown(v, toml=toml)

    def names(values) -> str:
        return ", ".join(map(show, values))

    out = []
    if not isinstance(s.enabled, bool):
        out.append(f"{at}enabled = {show(s.enabled)} must be {show(True)} or {show(False)}")
    checks = s.checks
    if isinstance(checks, str) or not all(isinstance(c, str) for c in checks):
        out.append(f"{at}checks = {show(checks)} must be a list such as {show(list(CHECKS))}")
    else:
        bad = [c for c in checks if c not in CHECKS]
        if not checks and s.enabled is not False:  # QC turned off need not name a check
            out.append(
                f"{at}checks = [] names no check, and a QC that checks nothing would pass "
                f"every file; name at least one of {names(CHECKS)}, or set "
                "enabled = false to leave acquisition QC out"
            )
        elif bad:
            out.append(
                f"{at}checks = {show(list(checks))}: unknown check(s) {names(bad)}; "
                f"the checks are {names(CHECKS)}"
            )
    if s.sensitivity not in SENSITIVITIES:
        out.append(f"{at}sensitivity = {show(s.sensitivity)} must be one of {names(SENSITIVITIES)}")
    pct_ok = True
    for name in ("max_removed_pct", "warn_removed_pct"):
        v = getattr(s, name)
        if v is None and name == "warn_removed_pct":
            continue  # not given: follows max_removed_pct
        if not is_finite_number(v) or not 0 <= v <= 100:
            out.append(f"{at}{name} = {show(v)} must be a number from 0 to 100 (a % of the events)")
            pct_ok = False
    if pct_ok and s.warn_removed_pct is not None and s.warn_removed_pct > s.max_removed_pct:
        given = getattr(s, "max_given", True)
        out.append(
            f"{at}warn_removed_pct = {show(s.warn_removed_pct)} is above max_removed_pct = "
            f"{show(s.max_removed_pct)}{'' if given else ' (the default)'}; the warning "
            "level must not exceed the failing level"
        )
    ex = s.exclude_channels
    if isinstance(ex, str) or not all(isinstance(c, str) and c for c in ex):
        listed = list(ex) if isinstance(ex, (list, tuple)) else ex
        out.append(
            f"{at}exclude_channels = {show(listed)} must be a list of channel names, "
            f"e.g. {show(['FSC-W'])}"
        )
    t = s.time_channel
    if t is not None and not (isinstance(t, str) and t.strip()):
        out.append(
            f"{at}time_channel = {show(t)} must be a channel name ($PnN), e.g. {show('HDR-T')}"
        )
    return out


class _Fields:
    """The raw values of a table, in the settings' attribute names."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def parse_acquisition_qc(
    mapping: Mapping[str, Any], source: str = "study.toml"
) -> tuple[AcquisitionQCSettings, list[str]]:
    """Check and type an ``[acquisition_qc]`` table, collecting every problem.

    Returns
    -------
    settings : AcquisitionQCSettings
        The table's settings, or the defaults when it has problems.
    problems : list of str
        Each a sentence naming `source`, the key, the value and what is allowed
        (the form `cytokit.study.settings.parse_settings` reports).
    """
    at = f"{source}: [acquisition_qc] "
    d = AcquisitionQCSettings()
    if not isinstance(mapping, Mapping):
        return d, [f"{source}: [acquisition_qc] must be a table, got {shown(mapping)}"]
    problems = [
        f"{at}unknown key {k!r}; known keys: {', '.join(_KEYS)}" for k in mapping if k not in _KEYS
    ]
    raw = {k: mapping.get(k, getattr(d, k)) for k in _KEYS}
    if "warn_removed_pct" not in mapping:
        raw["warn_removed_pct"] = None  # follows max_removed_pct (`AcquisitionQCSettings`)
    for key, example in (("checks", '["rate", "margins"]'), ("exclude_channels", '["FSC-W"]')):
        if isinstance(raw[key], (list, tuple)):
            raw[key] = tuple(raw[key])
        else:
            problems.append(f"{at}{key} = {shown(raw[key])} must be a list, e.g. {example}")
            raw[key] = getattr(d, key)
    problems += _problems(_Fields(**raw, max_given="max_removed_pct" in mapping), at)
    if problems:
        return d, problems
    return AcquisitionQCSettings(**raw), []


def unknown_exclusions(names, channels, source: str, n_files: int, file: str = "") -> list[str]:
    """The excluded channel names that no file has, each a sentence that says the fix.

    A study (or a batch) lists the channels of all its files, so a name one
    file lacks is expected; a name none of them has is a typo, and QC would
    check the channel the user meant to leave out.

    Parameters
    ----------
    names : iterable of str
        The excluded ``$PnN`` names.
    channels : iterable of (str, str)
        ``($PnN, $PnS)`` of every channel of every file read (repeats are fine).
    source : str
        The setting that gave the names, as the message names it
        (``"study.toml: [acquisition_qc] exclude_channels"``); ``""``: the message
        starts with the name (a command-line option's usage error names the option).
    n_files : int
        How many files `channels` came from; no files, no problems.
    file : str
        The one file's path, named in the message when `n_files` is 1.
    """
    pairs = set(channels)
    if not n_files or not pairs:
        return []
    known = {n for n, _ in pairs}
    out = []
    for name in dict.fromkeys(names):
        if name in known:
            continue
        folded = sorted(n for n in known if n.casefold() == name.casefold())
        marked = sorted(n for n, m in pairs if m and m.casefold() == name.casefold())
        if folded:
            hint = f"did you mean {folded[0]!r}? (names are case-sensitive)"
        elif marked:
            hint = f"{name!r} is the marker of {', '.join(marked)}; name the channel ($PnN)"
        else:
            hint = f"the channels are {', '.join(sorted(known))}"
        files = (file or "the file") if n_files == 1 else f"any of the {n_files} files"
        said = f"{source} names {name!r}" if source else repr(name)
        out.append(f"{said}, which is not a channel of {files}; {hint}")
    return out
