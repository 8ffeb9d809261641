"""`GatingPlan`: a gating tree compiled to flat arrays for `evaluate_plan`, and `PlanBuilder`.

A plan has three tables. Gating-ML, FlowJo and cytokit's YAML strategies all
compile to it the same way: give every distinct (channel, compensation,
transform) a **dimension**, every gate (every quadrant of a quadrant gate) a
**gate** row in an order where parents and Boolean operands come first, and
list the gates whose memberships are wanted as **output**. `PlanBuilder` does
the bookkeeping (deduplicating dimensions and compensations, packing
geometry); building the arrays by hand is equally valid.

Compensations
    ``comp_inverses[c]``: float64 ``(k, k)``, the inverse of a spillover
    matrix (`cytokit.kernels.compensation_matrix`); ``comp_columns[c]``:
    int64 ``(k,)``, the event columns of its rows/columns, distinct. The
    compensated value of column ``comp_columns[c][j]`` is
    ``Σ_m events[i, comp_columns[c][m]] · comp_inverses[c][m, j]``, summed in
    float64 in order ``m = 0 … k-1``. Gating-ML ``spectrumMatrix``
    fluorochrome dimensions map to ``j`` the same way (fluorochrome ``j`` ↔
    detector column ``comp_columns[c][j]``).

Dimensions (``n_dims`` rows)
    ``dim_column`` int64: the event column read (the numerator of a ratio).
    ``dim_column2`` int64: the denominator column of a Gating-ML ``fratio``
    dimension, or -1. ``dim_ratio`` float64 ``(n_dims, 3)``: the ratio's
    ``A, B, C`` (value ``A·(x − B)/(y − C)``; ignored without ``dim_column2``).
    ``dim_compensation`` int64: index into the compensations, or -1 for none;
    a column the matrix does not cover is read uncompensated (as Gating-ML
    does for FSC under ``compensation-ref="FCS"``). Both columns of a ratio
    are compensated before the ratio is taken. ``dim_transform`` int64: an
    ``XF_*`` code; ``dim_transform_params`` float64 ``(n_dims, XF_NPARAMS)``:
    its `transform_params` row (any row for ``XF_NONE``). The value a gate
    sees is transform(ratio(compensated columns)), in float64.

Gates (``n_gates`` rows, topological: ``parent < g`` and every operand ``< g``)
    ``gate_kind`` int64: ``GATE_RECTANGLE``, ``GATE_POLYGON``,
    ``GATE_ELLIPSOID``, ``GATE_QUADRANT`` (one quadrant), ``GATE_AND``,
    ``GATE_OR``, ``GATE_NOT``. ``gate_parent`` int64: parent gate or -1 (all
    events); a gate's membership is always ANDed with its parent's.
    ``dims_ptr`` int64 ``(n_gates + 1,)`` and ``gate_dims`` int64: CSR list
    of the dimensions gate ``g`` reads, ``gate_dims[dims_ptr[g]:dims_ptr[g+1]]``
    (none for Booleans). ``geom_ptr`` ``(n_gates + 1,)`` and ``geometry``
    float64: CSR geometry, per kind:

    =========== ============================================= ==================
    kind        geometry                                      length
    =========== ============================================= ==================
    RECTANGLE,  ``lo0, hi0, lo1, hi1, …`` (``lo`` inclusive,   ``2·nd``
    QUADRANT    ``hi`` exclusive; NaN/∓inf = open side)
    POLYGON     ``xmin, xmax, ymin, ymax, x0, y0, x1, y1, …``  ``4 + 2·nv``, nv ≥ 3
    ELLIPSOID   ``μ (nd), C⁻¹ row-major (nd²), d²``              ``nd + nd² + 1``
    Booleans    none                                          0
    =========== ============================================= ==================

    A quadrant row names only the dividers its quadrant constrains, with the
    interval ``[v_{k-1}, v_k)`` as its bounds (see `cytokit.kernels.gates`).
    ``operands_ptr`` ``(n_gates + 1,)``, ``operands`` int64 (gate indices)
    and ``operand_complement`` bool: CSR operands of Boolean gates (NOT: one;
    AND/OR: at least one) with their ``use-as-complement`` flags.

Output
    ``output`` int64: the gates whose membership rows `evaluate_plan` returns
    by default, in that order (default: every gate). Counts are computed for
    every gate. ``gate_names``: optional labels, used in messages only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .gates import (
    GATE_AND,
    GATE_ELLIPSOID,
    GATE_NOT,
    GATE_OR,
    GATE_POLYGON,
    GATE_QUADRANT,
    GATE_RECTANGLE,
)
from .geometry import ellipsoid_geometry, polygon_geometry, quadrant_bounds, range_bounds
from .transforms import (
    XF_NONE,
    XF_NPARAMS,
    transform_lut,
    transform_params,
)

__all__ = ["GatingPlan", "PlanBuilder"]

_KIND_NAMES = {
    GATE_RECTANGLE: "rectangle",
    GATE_POLYGON: "polygon",
    GATE_ELLIPSOID: "ellipsoid",
    GATE_QUADRANT: "quadrant",
    GATE_AND: "and",
    GATE_OR: "or",
    GATE_NOT: "not",
}
_BOOLEAN = (GATE_AND, GATE_OR, GATE_NOT)


def _ints(a, name: str, shape=None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size == 0:
        arr = arr.astype(np.int64).reshape(arr.shape if arr.ndim else (0,))
    if arr.dtype.kind not in "iu":
        raise ValueError(f"GatingPlan.{name} must hold integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim != 1 or (shape is not None and arr.shape != shape):
        want = shape if shape is not None else "(n,)"
        raise ValueError(f"GatingPlan.{name} has shape {arr.shape}; expected {want}")
    return arr


def _floats(a, name: str, shape) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"GatingPlan.{name} has shape {arr.shape}; expected {shape}")
    return arr


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


class PlanArrays(NamedTuple):
    """The flat arrays the fused pass reads, derived once from a `GatingPlan`.

    Built by `GatingPlan._derive`; `cytokit.kernels.fused` turns them into the
    argument tuples of the Numba kernels in one place (``_plan_args``,
    ``_dims_args``, ``_gates_args``).
    """

    slot_index: np.ndarray  # per source slot: compensated column j, or the raw column
    n_cslots: int  # compensated slots (they come first)
    cslot_ptr: np.ndarray  # CSR of the compensated slots by compensation
    dim_a: np.ndarray  # per dimension: its slot (a ratio's numerator)
    dim_b: np.ndarray  # per dimension: a ratio's denominator slot, or -1
    comp_inv: np.ndarray  # every inverse matrix, flattened
    comp_inv_ptr: np.ndarray  # offsets into comp_inv
    comp_cols: np.ndarray  # every matrix's event columns
    comp_ptr: np.ndarray  # offsets into comp_cols
    lut_buf: np.ndarray  # every dimension's transform lookup table
    lut_ptr: np.ndarray  # offsets into lut_buf
    max_dims: int  # most dimensions a gate reads (at least 1)
    max_k: int  # largest matrix (at least 1)
    max_column: int  # highest event column read


@dataclass(frozen=True, eq=False)
class GatingPlan:
    """A gating tree as flat arrays (see the module docstring for every field).

    Constructing one validates every field and raises `ValueError` naming the
    field, the gate and the expected value. Arrays are copied to their
    canonical dtypes and made read-only.
    """

    dim_column: np.ndarray
    dim_column2: np.ndarray
    dim_ratio: np.ndarray
    dim_compensation: np.ndarray
    dim_transform: np.ndarray
    dim_transform_params: np.ndarray
    gate_kind: np.ndarray
    gate_parent: np.ndarray
    dims_ptr: np.ndarray
    gate_dims: np.ndarray
    geom_ptr: np.ndarray
    geometry: np.ndarray
    operands_ptr: np.ndarray
    operands: np.ndarray
    operand_complement: np.ndarray
    comp_inverses: tuple = ()
    comp_columns: tuple = ()
    output: np.ndarray | None = None
    gate_names: tuple = ()
    _arrays: PlanArrays | None = field(default=None, repr=False, init=False)

    # -- validation ---------------------------------------------------------------------------

    def __post_init__(self) -> None:
        put = object.__setattr__
        col = _ints(self.dim_column, "dim_column")
        nd = col.shape[0]
        put(self, "dim_column", col)
        put(self, "dim_column2", _ints(self.dim_column2, "dim_column2", (nd,)))
        put(self, "dim_ratio", _floats(self.dim_ratio, "dim_ratio", (nd, 3)))
        put(self, "dim_compensation", _ints(self.dim_compensation, "dim_compensation", (nd,)))
        put(self, "dim_transform", _ints(self.dim_transform, "dim_transform", (nd,)))
        put(
            self,
            "dim_transform_params",
            _floats(self.dim_transform_params, "dim_transform_params", (nd, XF_NPARAMS)),
        )
        kind = _ints(self.gate_kind, "gate_kind")
        ng = kind.shape[0]
        put(self, "gate_kind", kind)
        put(self, "gate_parent", _ints(self.gate_parent, "gate_parent", (ng,)))
        for ptr in ("dims_ptr", "geom_ptr", "operands_ptr"):
            put(self, ptr, _ints(getattr(self, ptr), ptr, (ng + 1,)))
        put(self, "gate_dims", _ints(self.gate_dims, "gate_dims"))
        put(self, "geometry", np.array(self.geometry, dtype=np.float64, ndmin=1))
        put(self, "operands", _ints(self.operands, "operands"))
        put(self, "operand_complement", np.array(self.operand_complement, dtype=np.bool_, ndmin=1))
        names = tuple(str(n) for n in self.gate_names) or tuple(f"gate {g}" for g in range(ng))
        if len(names) != ng:
            raise ValueError(f"GatingPlan.gate_names has {len(names)} names for {ng} gates")
        put(self, "gate_names", names)
        out = np.arange(ng, dtype=np.int64) if self.output is None else _ints(self.output, "output")
        if out.size and (out.min() < 0 or out.max() >= ng):
            raise ValueError(
                f"GatingPlan.output {out.tolist()} has gate indices outside 0..{ng - 1}"
            )
        put(self, "output", out)
        self._check_compensations()
        self._check_dimensions()
        self._check_gates()
        for name in (
            "dim_column dim_column2 dim_ratio dim_compensation dim_transform dim_transform_params "
            "gate_kind gate_parent dims_ptr gate_dims geom_ptr geometry operands_ptr operands "
            "operand_complement output"
        ).split():
            _frozen(getattr(self, name))
        self._derive()

    def _check_compensations(self) -> None:
        invs = tuple(np.ascontiguousarray(m, dtype=np.float64) for m in self.comp_inverses)
        cols = tuple(_ints(c, f"comp_columns[{i}]") for i, c in enumerate(self.comp_columns))
        if len(invs) != len(cols):
            raise ValueError(
                f"GatingPlan has {len(invs)} comp_inverses but {len(cols)} comp_columns; "
                "give one column list per matrix"
            )
        for i, (m, c) in enumerate(zip(invs, cols, strict=True)):
            k = c.shape[0]
            if k == 0 or m.shape != (k, k):
                raise ValueError(
                    f"GatingPlan.comp_inverses[{i}] has shape {m.shape} but comp_columns[{i}] "
                    f"lists {k} columns; expected ({k}, {k}) with k >= 1"
                )
            if not np.all(np.isfinite(m)):
                raise ValueError(f"GatingPlan.comp_inverses[{i}] has NaN or inf entries")
            if np.unique(c).shape[0] != k or c.min() < 0:
                raise ValueError(
                    f"GatingPlan.comp_columns[{i}]={c.tolist()} must be distinct column indices >= 0"
                )
            _frozen(m)
            _frozen(c)
        object.__setattr__(self, "comp_inverses", invs)
        object.__setattr__(self, "comp_columns", cols)

    def _check_dimensions(self) -> None:
        nc = len(self.comp_inverses)
        for d in range(self.dim_column.shape[0]):
            if self.dim_column[d] < 0:
                raise ValueError(
                    f"GatingPlan dimension {d}: dim_column={self.dim_column[d]} must be >= 0"
                )
            if self.dim_column2[d] < -1:
                raise ValueError(
                    f"GatingPlan dimension {d}: dim_column2={self.dim_column2[d]} must be -1 (no ratio) or >= 0"
                )
            if self.dim_column2[d] >= 0 and not np.all(np.isfinite(self.dim_ratio[d])):
                raise ValueError(
                    f"GatingPlan dimension {d}: ratio A, B, C {self.dim_ratio[d].tolist()} must be finite"
                )
            if not -1 <= self.dim_compensation[d] < nc:
                raise ValueError(
                    f"GatingPlan dimension {d}: dim_compensation={self.dim_compensation[d]} is not -1 "
                    f"or a compensation index 0..{nc - 1}"
                )
            xf = int(self.dim_transform[d])
            if xf != XF_NONE:
                p = self.dim_transform_params[d]
                if int(p[0]) != xf:
                    raise ValueError(
                        f"GatingPlan dimension {d}: dim_transform={xf} but its params row was made for "
                        f"transform {p[0]:g}; use transform_params({xf}, ...)"
                    )

    def _check_gates(self) -> None:
        kind, parent = self.gate_kind, self.gate_parent
        nd = self.dim_column.shape[0]
        ng = kind.shape[0]
        for ptr, buf in (
            ("dims_ptr", "gate_dims"),
            ("geom_ptr", "geometry"),
            ("operands_ptr", "operands"),
        ):
            p = getattr(self, ptr)
            n = getattr(self, buf).shape[0]
            if p[0] != 0 or p[-1] != n or np.any(np.diff(p) < 0):
                raise ValueError(
                    f"GatingPlan.{ptr} must start at 0, never decrease and end at len({buf})={n}; got {p.tolist()}"
                )
        if self.operand_complement.shape != self.operands.shape:
            raise ValueError(
                f"GatingPlan.operand_complement has shape {self.operand_complement.shape}; "
                f"expected {self.operands.shape} (one flag per operand)"
            )
        geom = self.geometry.copy()
        for g in range(ng):
            name = self.gate_names[g]
            k = int(kind[g])
            if k not in _KIND_NAMES:
                raise ValueError(
                    f"GatingPlan {name!r}: gate_kind={k} is not one of {sorted(_KIND_NAMES)}"
                )
            if not -1 <= parent[g] < g:
                raise ValueError(
                    f"GatingPlan {name!r} (gate {g}): parent {parent[g]} must be -1 or an earlier gate "
                    "(gates are in topological order)"
                )
            dims = self.gate_dims[self.dims_ptr[g] : self.dims_ptr[g + 1]]
            if dims.size and (dims.min() < 0 or dims.max() >= nd):
                raise ValueError(
                    f"GatingPlan {name!r}: dimensions {dims.tolist()} outside 0..{nd - 1}"
                )
            g0, g1 = self.geom_ptr[g], self.geom_ptr[g + 1]
            gl = g1 - g0
            ops = self.operands[self.operands_ptr[g] : self.operands_ptr[g + 1]]
            n_d = dims.size
            if k in _BOOLEAN:
                if n_d or gl:
                    raise ValueError(
                        f"GatingPlan {name!r}: a Boolean gate reads no dimensions and has no geometry"
                    )
                if (k == GATE_NOT and ops.size != 1) or ops.size == 0:
                    raise ValueError(
                        f"GatingPlan {name!r}: {_KIND_NAMES[k]} has {ops.size} operands; "
                        "'not' takes exactly 1, 'and'/'or' at least 1"
                    )
                if ops.min() < 0 or ops.max() >= g:
                    raise ValueError(
                        f"GatingPlan {name!r} (gate {g}): operands {ops.tolist()} must be earlier gates"
                    )
                continue
            if ops.size:
                raise ValueError(f"GatingPlan {name!r}: only Boolean gates have operands")
            if k in (GATE_RECTANGLE, GATE_QUADRANT):
                if n_d < 1 or gl != 2 * n_d:
                    raise ValueError(
                        f"GatingPlan {name!r}: a {_KIND_NAMES[k]} on {n_d} dimensions needs "
                        f"2·{n_d} geometry values (lo, hi per dimension), got {gl}"
                    )
                lo, hi = range_bounds(geom[g0:g1:2], geom[g0 + 1 : g1 : 2], f"GatingPlan {name!r}")
                geom[g0:g1:2] = lo
                geom[g0 + 1 : g1 : 2] = hi
            elif k == GATE_POLYGON:
                nv = (gl - 4) // 2
                if n_d != 2 or gl < 10 or gl % 2:
                    raise ValueError(
                        f"GatingPlan {name!r}: a polygon reads 2 dimensions and has 4 + 2·nv (nv >= 3) "
                        f"geometry values; got {n_d} dimensions and {gl} values"
                    )
                want = polygon_geometry(geom[g0 + 4 : g1].reshape(nv, 2), f"GatingPlan {name!r}")
                if not np.array_equal(want[:4], geom[g0 : g0 + 4]):
                    raise ValueError(
                        f"GatingPlan {name!r}: polygon bounding box {geom[g0 : g0 + 4].tolist()} does not "
                        f"match its vertices ({want[:4].tolist()}); use polygon_geometry"
                    )
            elif k == GATE_ELLIPSOID:
                if n_d < 1 or gl != n_d + n_d * n_d + 1:
                    raise ValueError(
                        f"GatingPlan {name!r}: an ellipsoid on {n_d} dimensions needs "
                        f"{n_d + n_d * n_d + 1} geometry values (mean, inverse covariance, d²), got {gl}"
                    )
                if not np.all(np.isfinite(geom[g0:g1])) or geom[g1 - 1] <= 0:
                    raise ValueError(
                        f"GatingPlan {name!r}: ellipsoid geometry must be finite with d² > 0"
                    )
        object.__setattr__(self, "geometry", _frozen(geom))

    # -- derived arrays for the evaluator -----------------------------------------------------

    def _derive(self) -> None:
        """Sources ("slots") the dimensions read, grouped by compensation, and the flat buffers.

        A slot is one value per event: a raw column, or compensated column ``j``
        of compensation ``c``. Slots are ordered compensated-by-compensation
        first, raw last, so the evaluator loads each matrix's columns once per
        event.
        """
        slots: dict[tuple[int, int], int] = {}
        comp_pos = [{int(c): j for j, c in enumerate(cols)} for cols in self.comp_columns]

        def key(column: int, comp: int) -> tuple[int, int]:
            if comp >= 0 and column in comp_pos[comp]:
                return (comp, comp_pos[comp][column])
            return (-1, column)

        keys = []
        for d in range(self.dim_column.shape[0]):
            c = int(self.dim_compensation[d])
            keys.append(key(int(self.dim_column[d]), c))
            col2 = int(self.dim_column2[d])
            keys.append(key(col2, c) if col2 >= 0 else None)
        ordered = sorted({k for k in keys if k is not None}, key=lambda k: (k[0] < 0, k))
        slots = {k: s for s, k in enumerate(ordered)}
        nc = len(self.comp_inverses)
        cslot_ptr = np.zeros(nc + 1, dtype=np.int64)
        for comp, _ in ordered:
            if comp >= 0:
                cslot_ptr[comp + 1 :] += 1
        slot_index = np.array([k[1] for k in ordered], dtype=np.int64)  # j or raw column
        dim_a = np.array([slots[k] for k in keys[0::2]], dtype=np.int64)
        dim_b = np.array([slots[k] if k is not None else -1 for k in keys[1::2]], dtype=np.int64)
        comp_inv = np.concatenate([m.reshape(-1) for m in self.comp_inverses] or [np.zeros(0)])
        comp_cols = np.concatenate([c for c in self.comp_columns] or [np.zeros(0, np.int64)])
        comp_ptr = np.zeros(nc + 1, dtype=np.int64)
        comp_ptr[1:] = np.cumsum([c.shape[0] for c in self.comp_columns])
        comp_inv_ptr = np.zeros(nc + 1, dtype=np.int64)
        comp_inv_ptr[1:] = np.cumsum([m.size for m in self.comp_inverses])
        # Lookup tables for the transforms that have one (a 1-value placeholder otherwise).
        luts = [
            np.asarray(transform_lut(int(self.dim_transform[d]), self.dim_transform_params[d]))
            for d in range(self.dim_column.shape[0])
        ]
        lut_ptr = np.zeros(len(luts) + 1, dtype=np.int64)
        lut_ptr[1:] = np.cumsum([t.shape[0] for t in luts])
        lut_buf = np.concatenate(luts) if luts else np.zeros(0)
        max_dims = int(np.diff(self.dims_ptr).max()) if self.gate_kind.size else 0
        object.__setattr__(
            self,
            "_arrays",
            PlanArrays(
                slot_index=slot_index,
                n_cslots=int(cslot_ptr[-1]),
                cslot_ptr=cslot_ptr,
                dim_a=dim_a,
                dim_b=dim_b,
                comp_inv=comp_inv,
                comp_inv_ptr=comp_inv_ptr,
                comp_cols=comp_cols,
                comp_ptr=comp_ptr,
                lut_buf=lut_buf,
                lut_ptr=lut_ptr,
                max_dims=max(max_dims, 1),
                max_k=max([c.shape[0] for c in self.comp_columns] or [1]),
                max_column=max(
                    [int(self.dim_column.max()) if self.dim_column.size else -1]
                    + [int(self.dim_column2.max()) if self.dim_column2.size else -1]
                    + [
                        int(c.max())
                        for c, _ in zip(self.comp_columns, self.comp_inverses, strict=True)
                    ]
                ),
            ),
        )

    @property
    def n_gates(self) -> int:
        return int(self.gate_kind.shape[0])

    @property
    def n_dims(self) -> int:
        return int(self.dim_column.shape[0])


class PlanBuilder:
    """Assemble a `GatingPlan` gate by gate.

    Every method returns the index of what it added (dimension, compensation
    or gate); gates must be added parents and operands first. Identical
    dimensions and compensations are shared.

    Examples
    --------
    >>> b = PlanBuilder()
    >>> fsc, ssc = b.dimension(0), b.dimension(1)
    >>> lym = b.polygon([fsc, ssc], [(1, 1), (5, 1), (5, 5)], name="Lymphocytes")
    >>> cd3 = b.dimension(4, transform=XF_LOGICLE, params=dict(T=262144, W=0.5, M=4.5, A=0))
    >>> t = b.rectangle([cd3], [0.5], [None], parent=lym, name="CD3+")
    >>> plan = b.build()
    """

    def __init__(self) -> None:
        self._comps: list[tuple[np.ndarray, np.ndarray]] = []
        self._dims: list[tuple] = []
        self._dim_params: list[np.ndarray] = []
        self._gates: list[dict] = []

    def compensation(self, inverse, columns) -> int:
        """Add the inverse of a spillover matrix over event ``columns``; returns its index."""
        inv = np.ascontiguousarray(inverse, dtype=np.float64)
        cols = np.asarray(columns, dtype=np.int64).reshape(-1)
        for i, (m, c) in enumerate(self._comps):
            if np.array_equal(m, inv) and np.array_equal(c, cols):
                return i
        self._comps.append((inv, cols))
        return len(self._comps) - 1

    def dimension(
        self,
        column: int,
        *,
        compensation: int = -1,
        transform: int = XF_NONE,
        params=None,
        ratio=None,
    ) -> int:
        """Add (or reuse) a dimension; returns its index.

        Parameters
        ----------
        column : int
            Event column (the numerator for a ratio).
        compensation : int
            Index from `compensation`, or -1.
        transform : int
            ``XF_*`` code.
        params : dict or numpy.ndarray, optional
            Transform parameters as keywords for `transform_params`, or its vector.
        ratio : tuple (column2, A, B, C), optional
            Make this a Gating-ML ``fratio`` dimension ``A·(x − B)/(y − C)``.
        """
        if params is None:
            p = transform_params(transform) if transform == XF_NONE else None
            if p is None:
                raise ValueError(f"transform {transform} needs params (a dict of its parameters)")
        elif isinstance(params, dict):
            p = transform_params(transform, **params)
        else:
            p = np.asarray(params, dtype=np.float64)
        col2, abc = (
            (-1, (0.0, 0.0, 0.0))
            if ratio is None
            else (int(ratio[0]), tuple(float(v) for v in ratio[1:]))
        )
        key = (int(column), col2, abc, int(compensation), int(transform), p.tobytes())
        for d, k in enumerate(self._dims):
            if k == key:
                return d
        self._dims.append(key)
        self._dim_params.append(p)
        return len(self._dims) - 1

    def _gate(self, kind, dims=(), geometry=(), operands=(), complement=(), parent=-1, name=""):
        self._gates.append(
            dict(
                kind=kind,
                dims=[int(d) for d in dims],
                geometry=np.asarray(geometry, dtype=np.float64).reshape(-1),
                operands=[int(o) for o in operands],
                complement=[bool(c) for c in complement],
                parent=int(parent),
                name=name or f"gate {len(self._gates)}",
            )
        )
        return len(self._gates) - 1

    def rectangle(self, dims, lo, hi, *, parent: int = -1, name: str = "") -> int:
        """Rectangle/range gate: ``lo <= v < hi`` per dimension (None/NaN = open)."""
        lo, hi = range_bounds(lo, hi, f"rectangle {name!r}")
        return self._gate(GATE_RECTANGLE, dims, np.column_stack([lo, hi]), parent=parent, name=name)

    def polygon(self, dims, vertices, *, parent: int = -1, name: str = "") -> int:
        """Polygon gate on two dimensions (x, y)."""
        return self._gate(
            GATE_POLYGON,
            dims,
            polygon_geometry(vertices, f"polygon {name!r}"),
            parent=parent,
            name=name,
        )

    def ellipsoid(
        self, dims, mean, covariance, distance_square, *, parent: int = -1, name: str = ""
    ) -> int:
        """Ellipsoid gate: ``(v − mean)ᵀ covariance⁻¹ (v − mean) <= distance_square``."""
        geom = ellipsoid_geometry(mean, covariance, distance_square, f"ellipsoid {name!r}")
        return self._gate(GATE_ELLIPSOID, dims, geom, parent=parent, name=name)

    def quadrants(self, dims, dividers, quadrants, *, parent: int = -1, names=()) -> list[int]:
        """Add every quadrant of a quadrant gate; returns their gate indices.

        ``dims[j]`` is divider ``j``'s dimension; ``dividers`` and ``quadrants``
        as in `cytokit.kernels.gates.quadrant_membership`.
        """
        lo, hi, used = quadrant_bounds(dividers, quadrants)
        names = list(names) or [""] * lo.shape[0]
        out = []
        for q in range(lo.shape[0]):
            js = np.nonzero(used[q])[0]
            geom = np.column_stack([lo[q, js], hi[q, js]])
            out.append(
                self._gate(GATE_QUADRANT, [dims[j] for j in js], geom, parent=parent, name=names[q])
            )
        return out

    def boolean(
        self, op: str, operands, complement=None, *, parent: int = -1, name: str = ""
    ) -> int:
        """Boolean gate: ``op`` in {"and", "or", "not"} over earlier gates."""
        kinds = {"and": GATE_AND, "or": GATE_OR, "not": GATE_NOT}
        if op not in kinds:
            raise ValueError(f"boolean op={op!r} is not one of {sorted(kinds)}")
        comp = [False] * len(operands) if complement is None else list(complement)
        return self._gate(kinds[op], operands=operands, complement=comp, parent=parent, name=name)

    def build(self, output=None) -> GatingPlan:
        """The validated plan; ``output``: gate indices whose memberships are returned (default all)."""
        g = self._gates

        def ptr(key):
            return np.cumsum([0] + [len(x[key]) for x in g], dtype=np.int64)

        def cat(key, dt):
            return np.concatenate([np.asarray(x[key], dtype=dt) for x in g] or [np.zeros(0, dt)])

        nd = len(self._dims)
        return GatingPlan(
            dim_column=np.array([k[0] for k in self._dims], dtype=np.int64),
            dim_column2=np.array([k[1] for k in self._dims], dtype=np.int64),
            dim_ratio=np.array([k[2] for k in self._dims], dtype=np.float64).reshape(nd, 3),
            dim_compensation=np.array([k[3] for k in self._dims], dtype=np.int64),
            dim_transform=np.array([k[4] for k in self._dims], dtype=np.int64),
            dim_transform_params=np.array(self._dim_params, dtype=np.float64).reshape(
                nd, XF_NPARAMS
            ),
            gate_kind=np.array([x["kind"] for x in g], dtype=np.int64),
            gate_parent=np.array([x["parent"] for x in g], dtype=np.int64),
            dims_ptr=ptr("dims"),
            gate_dims=cat("dims", np.int64),
            geom_ptr=ptr("geometry"),
            geometry=cat("geometry", np.float64),
            operands_ptr=ptr("operands"),
            operands=cat("operands", np.int64),
            operand_complement=cat("complement", np.bool_),
            comp_inverses=tuple(m for m, _ in self._comps),
            comp_columns=tuple(c for _, c in self._comps),
            output=output,
            gate_names=tuple(x["name"] for x in g),
        )
