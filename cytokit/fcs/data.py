"""Reading a data set's events into a numpy array, and scaling them.

Two routes, both without a per-event Python loop:

* **whole array**: float data whose values need no conversion (the file's F or
  D is the dtype asked for). The DATA bytes are read straight into the final
  array (or memory-mapped). When a foreign byte order must be swapped or a
  channel scaled, the array is read in 1 MiB blocks, each swapped and scaled in
  place while still in cache, so there is no second pass over memory.
* **blocks**: everything else (integers of any width incl. 24-bit, mixed widths
  and types, float conversions). Blocks of ~4 MiB of rows are read into one
  reused buffer, decoded column by column (strided views for 8/16/32/64-bit
  values, byte assembly for other widths and for mixed byte orders), masked to
  ``$PnR`` and written into the preallocated result. Memory: the result plus a
  few blocks.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from cytokit.fcs.channels import ScalePlan
from cytokit.fcs.layout import Column, DataSet, RowLayout
from cytokit.fcs.problems import Notes

__all__ = ["EventReader", "apply_plan", "read_events"]

_BLOCK_BYTES = 4 << 20
# blocks that are swapped or scaled in place just after reading: small enough to stay in cache
_CACHE_BYTES = 1 << 20
_PREADV = getattr(os, "preadv", None)  # not on Windows


def _readinto(fh, offset: int, buf: np.ndarray, notes: Notes, lock: threading.Lock) -> None:
    """Fill `buf` with the file's bytes from `offset` (it must not run out).

    A positional read where the system has one (``os.preadv``): the file's
    position is neither used nor moved, so threads may read one file at the
    same time (`EventReader.fork`). Elsewhere ``seek`` + ``readinto`` under
    `lock`, which every reader of the file shares.
    """
    view = memoryview(buf.reshape(-1).view(np.uint8))
    got = 0
    while got < view.nbytes:
        if _PREADV is not None:
            n = _PREADV(fh.fileno(), [view[got:]], offset + got)
        else:
            with lock:
                fh.seek(offset + got)
                n = fh.readinto(view[got:])
        if not n:
            raise notes.error(
                f"the file ended at byte {offset + got} while reading events up to byte "
                f"{offset + view.nbytes - 1} (it changed or is truncated)"
            )
        got += n


def _row_blocks(n: int, rows: int):
    for a in range(0, n, rows):
        yield a, min(n, a + rows)


def apply_plan(block: np.ndarray, plan: ScalePlan) -> None:
    """Scale a float block in place (see `cytokit.fcs.channels`).

    Arithmetic is float64 (a float32 block is computed in float64 and rounded
    once), in the order ``10 ** (f1 * x / R) * f2``, ``x / gain``, ``x * step``.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        _apply(block, plan)


def _apply(block: np.ndarray, plan: ScalePlan) -> None:
    # overflow to inf is the formula's answer for absurd $PnE or $PnG; not worth a warning
    f64 = np.float64
    for j, gain in plan.divide:
        col = block[:, j]
        np.divide(col, gain, out=col, dtype=f64)
    tmp = None
    for j, f1, rng, f2 in plan.log:
        col = block[:, j]
        if block.dtype != f64:  # evaluate in float64, round once
            if tmp is None:
                tmp = np.empty(block.shape[0], dtype=f64)
            np.copyto(tmp, col)
            x = tmp
        else:
            x = col
        np.multiply(x, f1, out=x)
        np.divide(x, rng, out=x)
        np.power(10.0, x, out=x)
        if f2 != 1.0:
            np.multiply(x, f2, out=x)
        if x is not col:
            np.copyto(col, x, casting="same_kind")
    if plan.time is not None:
        j, step = plan.time
        col = block[:, j]
        np.multiply(col, step, out=col, dtype=f64)


class _Decoder:
    """Decodes blocks of raw rows into float columns, reusing its scratch buffers."""

    def __init__(self, layout: RowLayout, rows: int) -> None:
        self.layout = layout
        self.uniform = layout.uniform
        cols = layout.columns
        self.masked = any(c.mask is not None for c in cols)
        if self.uniform is not None and self.masked:
            native = self.uniform.newbyteorder("=")
            full = (1 << (8 * self.uniform.itemsize)) - 1
            self.masks = np.array([full if c.mask is None else c.mask for c in cols], dtype=native)
            self.native = np.empty((rows, len(cols)), dtype=native)
        self.rows = rows
        self._col_tmp: np.ndarray | None = None
        self._pad: np.ndarray | None = None

    @property
    def col_tmp(self) -> np.ndarray:
        if self._col_tmp is None:
            self._col_tmp = np.empty(self.rows, dtype=np.uint64)
        return self._col_tmp

    @property
    def pad(self) -> np.ndarray:
        if self._pad is None:
            self._pad = np.empty((self.rows, 8), dtype=np.uint8)
        return self._pad

    def decode(self, buf: np.ndarray, m: int, target: np.ndarray) -> None:
        """Write the stored values of `m` rows in `buf` (uint8) into `target` (m, k)."""
        lay = self.layout
        if self.uniform is not None:
            block = buf.view(self.uniform).reshape(m, len(lay.columns))
            if self.masked:
                nat = self.native[:m]
                np.copyto(nat, block)  # also swaps a foreign byte order
                np.bitwise_and(nat, self.masks, out=nat)
                block = nat
            np.copyto(target, block, casting="unsafe")
            return
        for j, col in enumerate(lay.columns):
            target[:, j] = self._column(buf, m, col)

    def _column(self, buf: np.ndarray, m: int, col: Column) -> np.ndarray:
        row = self.layout.row_bytes
        dt = col.dtype
        if dt is not None:
            vals = np.ndarray((m,), dtype=dt, buffer=buf, offset=col.offset, strides=(row,))
            if col.mask is None:
                return vals
            tmp = self.col_tmp[:m]
            np.copyto(tmp, vals, casting="unsafe")
            np.bitwise_and(tmp, col.mask, out=tmp)
            return tmp
        # 24-, 40-, 48-, 56-bit values or a mixed byte order: put each byte where a
        # little-endian word of 4 or 8 bytes has it, then view the words
        w = col.width
        if col.order == "<":
            ranks = tuple(range(1, w + 1))
        elif col.order == ">":
            ranks = tuple(range(w, 0, -1))
        else:
            ranks = col.order
        size = w if col.kind == "f" else 8
        pad = self.pad[:m, :size]
        pad[...] = 0
        for i, r in enumerate(ranks):
            pad[:, r - 1] = np.ndarray(
                (m,), dtype=np.uint8, buffer=buf, offset=col.offset + i, strides=(row,)
            )
        vals = np.ascontiguousarray(pad).view(f"<{col.kind}{size}")[:, 0]
        if col.mask is not None:
            np.bitwise_and(vals, col.mask, out=vals)
        return vals


class EventReader:
    """Reads rows ``a .. b - 1`` of a data set's events into a given array, as scale values.

    The one implementation of `read_events`: the whole array is one call of
    `read`, and `cytokit.gating.stream` reads a file in slices of rows into
    reused buffers, from several threads (`fork`). The work is done in sub-blocks of `step` rows
    counted from the first event, so a slice that starts and ends on
    multiples of `step` (or at the end) gets every value by the same
    operations on the same sub-block as `read_events` does: the same bits.

    Parameters
    ----------
    fh : binary file opened without buffering (readers move it only under `lock`)
    ds : DataSet
    notes : Notes
    out_dtype : float32 or float64
    plan : ScalePlan or None
        Scaling to apply; None for stored values.
    lock : threading.Lock, optional
        Shared by the readers of one file (`fork` passes it on); a new one if not given.
    """

    def __init__(
        self,
        fh,
        ds: DataSet,
        notes: Notes,
        *,
        out_dtype: np.dtype,
        plan: ScalePlan | None,
        lock: threading.Lock | None = None,
    ) -> None:
        self.fh, self.notes, self.plan = fh, notes, plan
        self.ds = ds
        self.lock = lock if lock is not None else threading.Lock()
        self.layout = layout = ds.layout
        self.n, self.k = ds.n_events, len(layout.columns)
        self.begin = ds.data[0]
        self.out_dtype = np.dtype(out_dtype)
        self.scaling = plan is not None and plan.needed
        file_dt = layout.uniform
        self.file_dt = file_dt
        itemsize = self.out_dtype.itemsize
        if file_dt is not None and file_dt.kind == "f" and file_dt.newbyteorder("=") == out_dtype:
            if file_dt.isnative and not self.scaling:
                self.route = "direct"  # the bytes are the values: read them into place
                self.step = max(1, self.n)
            else:
                # swap and scale each block right after reading it, while it is in cache
                self.route = "in place"
                self.step = max(1, _CACHE_BYTES // (self.k * itemsize))
            return
        self.route = "decode"
        # a block's float64 rows (and so its raw bytes) stay within _BLOCK_BYTES
        self.step = rows = max(1, min(self.n, _BLOCK_BYTES // (8 * self.k)))
        self.raw = np.empty(rows * layout.row_bytes, dtype=np.uint8)
        self.decoder = _Decoder(layout, rows)
        self.work = None
        if self.scaling and self.out_dtype != np.float64:
            self.work = np.empty((rows, self.k), dtype=np.float64)  # scale in float64, round once

    def fork(self, columns=None) -> EventReader:
        """Another reader of the same events, with its own scratch buffers, for another thread.

        Readers forked from one reader may `read` at the same time (each
        read names its offset; see `_readinto`). With `columns` (indices)
        and float data read in place, only those columns are given as scale
        values: the others are left as stored (in native byte order), which
        saves scaling what a caller never reads. The listed ones keep every
        bit: each is scaled or not as before, by the same operations. Its
        `step` and `route` may then differ from this reader's (``direct``
        when no listed column is scaled). Decoded data keep the whole plan
        (they are converted through float64 when it scales).
        """
        plan = self.plan
        if plan is not None and columns is not None and self.route != "decode":
            keep = {int(c) for c in columns}
            plan = ScalePlan(
                divide=tuple(d for d in plan.divide if d[0] in keep),
                log=tuple(g for g in plan.log if g[0] in keep),
                time=plan.time if plan.time is not None and plan.time[0] in keep else None,
            )
        return EventReader(
            self.fh, self.ds, self.notes, out_dtype=self.out_dtype, plan=plan, lock=self.lock
        )

    def read(self, a: int, b: int, dest: np.ndarray) -> None:
        """Fill `dest` (shape ``(b - a, k)``, `out_dtype`, C-contiguous) with events ``a .. b-1``."""
        row_bytes = self.layout.row_bytes
        if self.route == "direct":
            _readinto(self.fh, self.begin + a * row_bytes, dest, self.notes, self.lock)
            return
        step = self.step
        for s in range(a, b, step):
            e = min(b, (s // step + 1) * step)
            block = dest[s - a : e - a]
            m = e - s
            if self.route == "in place":
                _readinto(self.fh, self.begin + s * row_bytes, block, self.notes, self.lock)
                if not self.file_dt.isnative:
                    block.byteswap(inplace=True)
                if self.scaling:
                    apply_plan(block, self.plan)
                continue
            buf = self.raw[: m * row_bytes]
            _readinto(self.fh, self.begin + s * row_bytes, buf, self.notes, self.lock)
            target = block if self.work is None else self.work[:m]
            self.decoder.decode(buf, m, target)
            if self.scaling:
                apply_plan(target, self.plan)
                if target is not block:
                    np.copyto(block, target, casting="same_kind")


def read_events(
    fh,
    path,
    ds: DataSet,
    notes: Notes,
    *,
    out_dtype: np.dtype,
    plan: ScalePlan | None,
    mmap: bool,
) -> np.ndarray:
    """The events of data set `ds` as an (n_events, n_channels) array of `out_dtype`.

    Parameters
    ----------
    fh : binary file opened without buffering
    path : path of the same file (for messages)
    ds : DataSet
    notes : Notes
    out_dtype : float32 or float64
    plan : ScalePlan or None
        Scaling to apply; None for stored values.
    mmap : bool
        Map native-order float data that need no scaling instead of reading them
        (a read-only `numpy.memmap`); otherwise ignored.
    """
    n, k = ds.n_events, len(ds.layout.columns)
    if n == 0:
        return np.empty((0, k), dtype=out_dtype)
    reader = EventReader(fh, ds, notes, out_dtype=out_dtype, plan=plan)
    if mmap and reader.route == "direct":
        # map the file already opened (and checked), not whatever the name leads to now
        return np.memmap(fh, dtype=reader.file_dt, mode="r", offset=reader.begin, shape=(n, k))
    events = np.empty((n, k), dtype=out_dtype)
    reader.read(0, n, events)
    return events
