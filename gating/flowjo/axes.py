"""FlowJo's per-sample transforms and compensation matrices, and the gate axes they make.

FlowJo stores gate coordinates as data values (rectangles, polygons) or as
positions on its display grid (ellipses), but it draws and tests gates on
display axes: each channel's transform scaled to a grid of ``length``
(usually 256) positions, with off-scale events piled on the axis ends. An
`Axis` is what one gate dimension needs to reproduce that: the cytokit
`Dimension` (channel, compensation, transform), the map from FlowJo's data
values to the values the gate is tested on, the affine map from those to
FlowJo's display grid, and the ends of the display range.

FlowJo transform elements and their cytokit equivalents:

============ ================================================ =====================================
FlowJo       attributes                                       gate dimension
============ ================================================ =====================================
``linear``   ``minRange``, ``maxRange``, ``gain``             none (data values; display is affine)
``log``      ``offset``, ``decades``                          `LogTransform` (T=offset·10^decades, M=decades)
``logicle``  ``T``, ``W``, ``M``, ``A``, ``length``           `LogicleTransform`
``hyperlog`` ``T``, ``W``, ``M``, ``A``, ``length``           `HyperlogTransform`
``fasinh``   ``T``, ``M``, ``A`` (``W``, ``maxRange`` unused)  `AsinhTransform`
``biex``     ``neg``, ``width``, ``pos``, ``maxRange``         `BiexTransform` (display 0…4096)
============ ================================================ =====================================

A linear ``gain`` other than 1 is FlowJo's rescaling of stored values (it sets
one for the time parameter so that the run spans ``$ETIM − $BTIM``); cytokit's
time values are stored values × ``$TIMESTEP``, so coordinates on that channel
are rescaled by ``$TIMESTEP / gain``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cytokit.errors import GatingError
from cytokit.gating.flowjo.xml import Element, child, children, number, where
from cytokit.gating.gates import FCS, UNCOMPENSATED, Dimension, SpectrumMatrix
from cytokit.gating.transforms import (
    AsinhTransform,
    BiexTransform,
    HyperlogTransform,
    LogicleTransform,
    LogTransform,
    Transform,
)

__all__ = ["ACQUISITION_DEFINED", "Axis", "AxisMaker", "FlowJoMatrix", "FlowJoTransform"]

#: FlowJo's name for the spillover matrix it took from the FCS file itself.
ACQUISITION_DEFINED = "Acquisition-defined"
#: Positions of FlowJo's display grid when a transform does not say (``length``).
DEFAULT_LENGTH = 256
#: Display channels of FlowJo's biex table (its output range is 0 … 4096).
BIEX_CHANNELS = 4096.0
# The spillover keywords cytokit.read_fcs reads (an "FCS" dimension uses them).
_SPILL_KEYWORDS = ("$SPILLOVER", "$SPILL", "SPILL")


@dataclass(frozen=True)
class FlowJoTransform:
    """One channel's display transform as a FlowJo workspace records it.

    Attributes
    ----------
    parameter : str
        FlowJo's parameter name (``"Comp-PE-A"`` for a compensated channel).
    kind : str
        FlowJo's element name: ``linear``, ``log``, ``logicle``, ``hyperlog``,
        ``fasinh``, ``biex`` (or another, then `problem` says why it cannot be used).
    params : dict of str to float
        The element's numeric attributes as written.
    transform : Transform or None
        The cytokit transform gates on this channel are tested through (None
        for ``linear``: its display is an affine map of the data).
    length : int
        Positions of FlowJo's display grid on this axis.
    line : int
        Line of the element in the workspace.
    problem : str
        Why this transform cannot be reproduced ("" when it can).
    """

    parameter: str
    kind: str
    params: Mapping[str, float] = field(default_factory=dict)
    transform: Transform | None = None
    length: int = DEFAULT_LENGTH
    line: int = 0
    problem: str = ""

    @property
    def gain(self) -> float:
        return float(self.params.get("gain", 1.0)) if self.kind == "linear" else 1.0

    def display_range(self) -> tuple[float, float]:
        """Ends of the display axis in this transform's output units (data for linear)."""
        if self.kind == "linear":
            return float(self.params.get("minRange", 0.0)), float(self.params["maxRange"])
        if self.kind == "biex":
            return 0.0, BIEX_CHANNELS
        return 0.0, 1.0


_NUMERIC = ("minRange", "maxRange", "gain", "offset", "decades", "T", "W", "M", "A")
_NUMERIC += ("neg", "width", "pos", "length")


def parse_transform(el: Element, path: Path) -> FlowJoTransform:
    """A `FlowJoTransform` from one child of a sample's ``<Transformations>``."""
    param = child(el, "parameter")
    if param is None or not param.get("name"):
        raise GatingError(f"{where(path, el)}: transform without a <parameter name=...>")
    name = param.get("name")
    kind = el.tag
    params = {k: number(el, k, path) for k in _NUMERIC if el.get(k) is not None}
    length = int(params.get("length", DEFAULT_LENGTH))
    xf: Transform | None = None
    problem = ""
    try:
        if kind == "linear":
            lo, hi = params.get("minRange", 0.0), params.get("maxRange", math.nan)
            if not (math.isfinite(hi) and hi > lo):
                problem = f"linear transform needs maxRange > minRange, got {lo}…{hi}"
            if params.get("gain", 1.0) <= 0:
                problem = f"linear transform gain={params['gain']} must be positive"
        elif kind == "log":
            decades, offset = params.get("decades", 0.0), params.get("offset", 0.0)
            if decades <= 0 or offset <= 0:
                problem = f"log transform needs offset > 0 and decades > 0, got {offset}, {decades}"
            else:
                xf = LogTransform(T=offset * 10.0**decades, M=decades)
        elif kind in ("logicle", "hyperlog"):
            cls = LogicleTransform if kind == "logicle" else HyperlogTransform
            xf = cls(T=params["T"], W=params["W"], M=params["M"], A=params["A"])
        elif kind == "fasinh":
            xf = AsinhTransform(T=params["T"], M=params["M"], A=params["A"])
        elif kind == "biex":
            if length != DEFAULT_LENGTH:
                problem = (
                    f"biex with length={length}: only FlowJo's 256-position biex display is known"
                )
            else:
                xf = BiexTransform(
                    negative=params["neg"],
                    width=params["width"],
                    positive=params["pos"],
                    max_value=params["maxRange"],
                )
        else:
            problem = f"FlowJo transform {kind!r} is not supported (use linear, log, logicle, biex or arcsinh in FlowJo)"
    except KeyError as exc:
        problem = f"{kind} transform lacks attribute {exc.args[0]!r}"
    except GatingError as exc:
        problem = str(exc)
    return FlowJoTransform(name, kind, params, xf, length, el.line, problem)


@dataclass(frozen=True)
class FlowJoMatrix:
    """A FlowJo ``spilloverMatrix``.

    Attributes
    ----------
    id : str
        FlowJo's identifier (a UUID).
    name : str
        As FlowJo shows it; ``"Acquisition-defined"`` is the FCS file's own matrix.
    prefix, suffix : str
        What FlowJo adds to a detector name for its compensated parameter
        (``"Comp-"`` and ``""`` by default).
    matrix : SpectrumMatrix or None
        Rows are fluorochromes named by their primary detector; None for a
        spectral (non-square) matrix, which cytokit cannot invert.
    line : int
    """

    id: str
    name: str
    prefix: str
    suffix: str
    detectors: tuple[str, ...]
    matrix: SpectrumMatrix | None
    line: int = 0
    problem: str = ""

    def detector(self, parameter: str) -> str | None:
        """The detector a compensated parameter name refers to, or None."""
        core = parameter
        if self.prefix:
            if not core.startswith(self.prefix):
                return None
            core = core[len(self.prefix) :]
        if self.suffix:
            if not core.endswith(self.suffix):
                return None
            core = core[: -len(self.suffix)]
        return core if core in self.detectors else None


def parse_matrix(el: Element, path: Path) -> FlowJoMatrix:
    """A `FlowJoMatrix` from a ``<spilloverMatrix>`` element."""
    name = el.get("name") or el.get("id") or "matrix"
    params = child(el, "parameters")
    detectors = [p.get("name", "") for p in children(params, "parameter")] if params else []
    rows = children(el, "spillover")
    problem = ""
    matrix = None
    if el.get("spectral") == "1" or len(rows) != len(detectors):
        problem = (
            f"spillover matrix {name!r} is spectral ({len(rows)} rows for {len(detectors)} "
            "detectors); only square compensation matrices are supported"
        )
    else:
        order = {d: i for i, d in enumerate(detectors)}
        m = np.zeros((len(detectors), len(detectors)))
        for r in rows:
            i = order.get(r.get("parameter", ""))
            if i is None:
                raise GatingError(
                    f"{where(path, r)}: spillover row {r.get('parameter')!r} is not one of the "
                    f"matrix parameters {detectors}"
                )
            for c in children(r, "coefficient"):
                j = order.get(c.get("parameter", ""))
                if j is None:
                    raise GatingError(
                        f"{where(path, c)}: coefficient for {c.get('parameter')!r}, which is "
                        f"not one of the matrix parameters {detectors}"
                    )
                m[i, j] = number(c, "value", path)
        try:
            matrix = SpectrumMatrix(name, tuple(detectors), tuple(detectors), m)
        except GatingError as exc:
            problem = f"{where(path, el)}: {exc}"
    return FlowJoMatrix(
        id=el.get("id", ""),
        name=name,
        prefix=el.get("prefix", "Comp-"),
        suffix=el.get("suffix", ""),
        detectors=tuple(detectors),
        matrix=matrix,
        line=el.line,
        problem=problem,
    )


@dataclass(frozen=True)
class Axis:
    """One gate dimension and how FlowJo's coordinates map onto it.

    ``gate value = transform(data_scale · FlowJo data value)``; FlowJo's
    display position is ``display_scale · gate value + display_offset``;
    ``low``/``high`` are the ends of FlowJo's display in gate values (events
    beyond them sit on the axis end in FlowJo).
    """

    dimension: Dimension
    data_scale: float = 1.0
    display_scale: float = 1.0
    display_offset: float = 0.0
    low: float = -math.inf
    high: float = math.inf

    def to_gate(self, values) -> np.ndarray:
        """Gate values of FlowJo data values (float64 array)."""
        v = np.asarray(values, dtype=np.float64) * self.data_scale
        xf = self.dimension.transform
        return v if xf is None else np.asarray(xf.apply(v), dtype=np.float64)

    def from_display(self, display) -> np.ndarray:
        """Gate values of FlowJo display-grid positions."""
        return (np.asarray(display, dtype=np.float64) - self.display_offset) / self.display_scale


class AxisMaker:
    """Makes the `Axis` of FlowJo parameter names for one sample (or group).

    Parameters
    ----------
    transforms : mapping of str to FlowJoTransform
        By FlowJo parameter name.
    matrix : FlowJoMatrix or None
        The sample's compensation.
    keywords : mapping of str to str
        The sample's FCS keywords as the workspace stores them (for
        ``$TIMESTEP`` and whether the file carries its own spillover).
    path : Path
        The workspace, for messages.
    """

    def __init__(
        self,
        transforms: Mapping[str, FlowJoTransform],
        matrix: FlowJoMatrix | None,
        keywords: Mapping[str, str],
        path: Path,
    ) -> None:
        self.transforms = dict(transforms)
        self.matrix = matrix
        self.keywords = {k.upper(): v for k, v in keywords.items()}
        self.path = path
        self.matrices: dict[str, SpectrumMatrix] = {}
        self._cache: dict[str, Axis] = {}

    def _compensation(self, name: str, gate: str) -> tuple[str, str]:
        m = self.matrix
        if m is None:
            return name, UNCOMPENSATED
        det = m.detector(name)
        if det is None:
            return name, UNCOMPENSATED
        if m.problem:
            raise GatingError(f"gate {gate}: {m.problem}")
        has_own = any(k in self.keywords for k in _SPILL_KEYWORDS)
        if m.name == ACQUISITION_DEFINED and (has_own or not self.keywords):
            return det, FCS
        self.matrices[m.name] = m.matrix
        return det, m.name

    def _data_scale(self, channel: str, xf: FlowJoTransform | None) -> float:
        gain = 1.0 if xf is None else xf.gain
        if not self._is_time(channel):
            return 1.0 / gain
        try:
            step = float(self.keywords.get("$TIMESTEP", "1") or 1.0)
        except ValueError:
            step = 1.0
        return step / gain

    def _is_time(self, channel: str) -> bool:
        if channel.upper() == "TIME":
            return True
        for k, v in self.keywords.items():
            if k.startswith("$P") and k.endswith("N") and v == channel:
                return self.keywords.get(k[:-1] + "TYPE", "").strip().upper() == "TIME"
        return False

    def axis(self, name: str, gate: str) -> Axis:
        """The axis of FlowJo parameter `name` for gate `gate` (a path, for messages)."""
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        channel, comp = self._compensation(name, gate)
        xf = self.transforms.get(name)
        if xf is None and comp != UNCOMPENSATED:
            xf = self.transforms.get(channel)
        if xf is not None and xf.problem:
            raise GatingError(
                f"gate {gate} reads {name!r}, whose transform (line {xf.line}) cannot be "
                f"reproduced: {xf.problem}"
            )
        scale = self._data_scale(channel, xf)
        if xf is None or xf.kind == "linear":
            # No transform: FlowJo's linear display is an affine map of the data.
            if xf is None:
                ax = Axis(Dimension(channel, comp), data_scale=scale)
            else:
                lo, hi = xf.display_range()
                k = xf.length / ((hi - lo) * scale)
                ax = Axis(
                    Dimension(channel, comp),
                    data_scale=scale,
                    display_scale=k,
                    display_offset=-lo * scale * k,
                    low=lo * scale,
                    high=hi * scale,
                )
        else:
            lo, hi = xf.display_range()
            k = xf.length / (hi - lo)
            ax = Axis(
                Dimension(channel, comp, xf.transform),
                data_scale=scale,
                display_scale=k,
                display_offset=-lo * k,
                low=lo,
                high=hi,
            )
        self._cache[name] = ax
        return ax
