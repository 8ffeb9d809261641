"""Scale transforms as value objects: what a gate dimension does to a value before the gate test.

Each transform is a frozen dataclass holding its parameters, with the kernel
code it compiles to (`code`), the precomputed parameter vector the fused
evaluator reads (`vector`), and `apply` / `inverse` on arrays (the kernels of
`cytokit.kernels`). Parameters follow Gating-ML 2.0 (``flin``, ``flog``,
``fasinh``, ``logicle``, ``hyperlog``) and FlowJo 10 (``biex``); the valid
ranges are those of `cytokit.kernels.transform_params`, checked when the
object is made, so a bad value fails where it is written and not at gating
time.

`RatioTransform` is Gating-ML's ``fratio``: it makes a new dimension out of two
channels rather than rescaling one, so it is not a `Transform` but the
``ratio`` of a `Dimension`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from cytokit import kernels as K
from cytokit.errors import GatingError

#: A number in exponent form, which a YAML 1.1 reader leaves as text (``2.62144e5``).
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

__all__ = [
    "AsinhTransform",
    "BiexTransform",
    "HyperlogTransform",
    "LinearTransform",
    "LogTransform",
    "LogicleTransform",
    "RatioTransform",
    "Transform",
    "transform_from_config",
]


@dataclass(frozen=True)
class Transform:
    """Base class: a monotone scale transform with fixed parameters.

    Subclasses declare their parameters as dataclass fields (in the order of
    `cytokit.kernels.transform_params`) and set `code` and `kind`.
    """

    code: ClassVar[int] = K.XF_NONE
    kind: ClassVar[str] = "none"
    _vector: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # store every parameter as float, so equal transforms print (and digest) alike
        for f in fields(self):
            if f.init:
                try:
                    object.__setattr__(self, f.name, float(getattr(self, f.name)))
                except (TypeError, ValueError):
                    raise GatingError(
                        f"{self.kind} transform: {f.name}={getattr(self, f.name)!r} is not a number"
                    ) from None
        try:
            vec = K.transform_params(self.code, **self.params())
        except ValueError as exc:
            raise GatingError(f"{self.kind} transform: {exc}") from None
        vec.flags.writeable = False
        object.__setattr__(self, "_vector", vec)

    def params(self) -> dict[str, float]:
        """The parameters as ``{name: value}`` (the names `transform_params` takes)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self) if f.init}

    @property
    def vector(self) -> np.ndarray:
        """The read-only `cytokit.kernels.transform_params` vector of this transform."""
        return self._vector

    def apply(self, x, *, out=None) -> np.ndarray:
        """Transform values (float64 result unless ``out`` is given)."""
        return _FORWARD[self.code](x, **self.params(), out=out)

    def inverse(self, y, *, out=None) -> np.ndarray:
        """Values whose transform is ``y``."""
        return _INVERSE[self.code](y, **self.params(), out=out)


@dataclass(frozen=True)
class LinearTransform(Transform):
    """Gating-ML ``flin``: ``(x + A) / (T + A)``."""

    T: float = 262144.0
    A: float = 0.0
    code: ClassVar[int] = K.XF_LINEAR
    kind: ClassVar[str] = "linear"


@dataclass(frozen=True)
class LogTransform(Transform):
    """Gating-ML ``flog``: ``log10(x / T) / M + 1``."""

    T: float = 262144.0
    M: float = 4.5
    code: ClassVar[int] = K.XF_LOG
    kind: ClassVar[str] = "log"


@dataclass(frozen=True)
class AsinhTransform(Transform):
    """Gating-ML ``fasinh``."""

    T: float = 262144.0
    M: float = 4.5
    A: float = 0.0
    code: ClassVar[int] = K.XF_ASINH
    kind: ClassVar[str] = "asinh"


@dataclass(frozen=True)
class LogicleTransform(Transform):
    """Logicle (Parks et al. 2006), Gating-ML ``logicle``; output 0..1 over the data range."""

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    code: ClassVar[int] = K.XF_LOGICLE
    kind: ClassVar[str] = "logicle"


@dataclass(frozen=True)
class HyperlogTransform(Transform):
    """Hyperlog (Bagwell 2005), Gating-ML ``hyperlog``."""

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    code: ClassVar[int] = K.XF_HYPERLOG
    kind: ClassVar[str] = "hyperlog"


@dataclass(frozen=True)
class BiexTransform(Transform):
    """FlowJo 10's ``biex`` display transform (output 0..4096 channels)."""

    negative: float = 0.0
    width: float = -10.0
    positive: float = 4.418540
    max_value: float = 262144.0
    code: ClassVar[int] = K.XF_BIEX
    kind: ClassVar[str] = "biex"


@dataclass(frozen=True)
class RatioTransform:
    """Gating-ML ``fratio``: the dimension ``A·(x − B) / (y − C)`` of two channels.

    Attributes
    ----------
    numerator, denominator : str
        Channel names (``$PnN``, or fluorochromes of a named matrix).
    A, B, C : float
    """

    numerator: str
    denominator: str
    A: float = 1.0
    B: float = 0.0
    C: float = 0.0

    def __post_init__(self) -> None:
        for name in ("A", "B", "C"):
            try:
                object.__setattr__(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise GatingError(
                    f"ratio {self.numerator}/{self.denominator}: {name}={getattr(self, name)!r} "
                    "is not a number"
                ) from None

    def apply(self, x, y, *, out=None) -> np.ndarray:
        return K.ratio(x, y, self.A, self.B, self.C, out=out)


_FORWARD = {
    K.XF_LINEAR: K.linear,
    K.XF_LOG: K.log,
    K.XF_ASINH: K.asinh,
    K.XF_LOGICLE: K.logicle,
    K.XF_HYPERLOG: K.hyperlog,
    K.XF_BIEX: K.biex,
}
_INVERSE = {
    K.XF_LINEAR: K.linear_inverse,
    K.XF_LOG: K.log_inverse,
    K.XF_ASINH: K.asinh_inverse,
    K.XF_LOGICLE: K.logicle_inverse,
    K.XF_HYPERLOG: K.hyperlog_inverse,
    K.XF_BIEX: K.biex_inverse,
}

#: Transform classes by the ``type`` a configuration names them with.
TRANSFORM_TYPES: dict[str, type[Transform]] = {
    cls.kind: cls
    for cls in (
        LinearTransform,
        LogTransform,
        AsinhTransform,
        LogicleTransform,
        HyperlogTransform,
        BiexTransform,
    )
}


def transform_from_config(table: Mapping[str, Any], where: str = "") -> Transform | None:
    """A transform from a configuration table such as ``study.toml``'s ``[transform]``.

    ``{"type": "logicle", "T": 262144, "W": 0.5, "M": 4.5, "A": 0}``; ``type``
    may be ``none`` (returns None) or any of `TRANSFORM_TYPES`; missing
    parameters take the class defaults.

    Raises
    ------
    GatingError
        Unknown type or parameter, or a value out of range; `where` (a file
        name) starts the message.
    """
    at = f"{where}: " if where else ""
    if not isinstance(table, Mapping):
        raise GatingError(f"{at}a transform must be a table with a 'type', got {table!r}")
    params = dict(table)
    kind = str(params.pop("type", "")).strip().lower()
    if kind in ("none", "linear_none", ""):
        if params and kind:
            raise GatingError(
                f"{at}transform type 'none' takes no parameters, got {sorted(params)}"
            )
        if not kind:
            raise GatingError(
                f"{at}transform has no 'type'; use one of none, {', '.join(TRANSFORM_TYPES)}"
            )
        return None
    cls = TRANSFORM_TYPES.get(kind)
    if cls is None:
        raise GatingError(
            f"{at}unknown transform type {kind!r}; use one of none, {', '.join(TRANSFORM_TYPES)}"
        )
    names = [f.name for f in fields(cls) if f.init]
    unknown = [k for k in params if k not in names]
    if unknown:
        raise GatingError(
            f"{at}{kind} transform has no parameter(s) {', '.join(map(str, unknown))}; "
            f"it takes {', '.join(names)}"
        )
    # a quoted "0.5" is refused as every other numeric setting is, not read as a number;
    # a YAML 1.1 reader gives an unquoted 2.62144e5 as text (its floats need a dot and a
    # signed exponent), which is taken, as gate bounds take it
    params = {
        k: float(v) if isinstance(v, str) and _EXPONENT.fullmatch(v.strip()) else v
        for k, v in params.items()
    }
    text = [k for k, v in params.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if text:
        raise GatingError(
            f"{at}{kind} transform parameters must be numbers, got "
            + ", ".join(f"{k} = {params[k]!r}" for k in text)
            + f"; write them unquoted, e.g. {text[0]} = 0.5"
        )
    values = {k: float(v) for k, v in params.items()}
    try:
        return cls(**values)
    except GatingError as exc:
        raise GatingError(f"{at}{exc}") from None
