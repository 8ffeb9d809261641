"""`read_fcs`: one data set of an FCS 2.0, 3.0, 3.1 or 3.2 file as a `Sample`.

The work is split by concern: `cytokit.fcs.text` parses HEADER and TEXT,
`cytokit.fcs.layout` finds the data sets and the bytes and layout of the events,
`cytokit.fcs.channels` builds the channels and the scaling, `cytokit.fcs.spillover`
reads the spillover matrix and `cytokit.fcs.data` reads the events.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cytokit._paths import NotRegularFileError, open_regular
from cytokit.errors import FCSError
from cytokit.fcs.channels import make_channels, scale_plan
from cytokit.fcs.data import EventReader, read_events
from cytokit.fcs.layout import DataSet, read_datasets
from cytokit.fcs.problems import Notes
from cytokit.fcs.spillover import read_spillover
from cytokit.fcs.text import Keywords
from cytokit.sample import Sample

__all__ = ["DataSet", "open_events", "read_fcs", "read_fcs_datasets"]


class _File:
    """An open FCS file: unbuffered handle, size and a bounded `read(offset, n)`."""

    def __init__(self, path: Path, notes: Notes) -> None:
        self.path = path
        try:
            # a FIFO or device is refused before a byte is read: open() on a FIFO would wait
            # for a writer forever
            self.fh = open_regular(path, "rb", buffering=0)  # closed in __exit__
        except IsADirectoryError:
            raise notes.error("is a directory, not an FCS file") from None
        except NotRegularFileError as exc:
            raise notes.error(f"is {exc.strerror}; give the path of an FCS file") from None
        except FileNotFoundError:
            raise notes.error("no such file") from None
        except OSError as exc:
            raise notes.error(f"cannot open the file: {exc.strerror or exc}") from None
        self.size = os.fstat(self.fh.fileno()).st_size

    def read(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        self.fh.seek(offset)
        out = bytearray()
        while len(out) < n:
            chunk = self.fh.read(n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()


def _out_dtype(dtype, ds: DataSet) -> np.dtype:
    if dtype is None:
        kinds = {(c.kind, c.width) for c in ds.layout.columns}
        return np.dtype(np.float32 if kinds == {("f", 4)} else np.float64)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise FCSError(
            f"read_fcs(dtype={dtype!r}) is not supported; use None (float32 "
            "for float32 files, else float64), numpy.float32 or numpy.float64"
        )
    return dt


def read_fcs_datasets(path: str | os.PathLike[str]) -> list[DataSet]:
    """Describe every data set of an FCS file without reading events.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    list of DataSet
        In file order, following ``$NEXTDATA``: for each, its byte offset,
        version, ``$TOT``, ``$PAR``, ``$DATATYPE``, ``$BYTEORD``, TEXT and DATA
        byte ranges, the offset of the next one, and its keywords.

    Raises
    ------
    FCSError
        Not an FCS file, or the first data set's HEADER/TEXT is malformed. A
        later data set that cannot be read ends the list with an `FCSWarning`.
    """
    path = Path(path)
    notes = Notes(str(path))
    with _File(path, notes) as fh:
        out = read_datasets(fh.read, fh.size, notes)
    notes.emit()
    return out


def read_fcs(
    path: str | os.PathLike[str],
    *,
    dataset: int | None = None,
    scale: bool = True,
    dtype=None,
    mmap: bool = False,
) -> Sample:
    """Read one data set of an FCS file.

    Parameters
    ----------
    path : str or path-like
        An FCS 2.0, 3.0, 3.1 or 3.2 file (list mode; ``$DATATYPE`` I, F or D).
    dataset : int, optional
        Which data set (0 = the first); see `read_fcs_datasets`. Left out: the
        first, with an `FCSWarning` where the file holds more (a Guava file's
        first data set may be a 108-event calibration, the sample the next).
    scale : bool
        True (default): *scale* values: ``$PnE`` log decoding
        (``10 ** (f1 * x / $PnR) * f2``, ``f2 = 0`` read as 1) for integer data,
        ``$PnG`` gain divided out of linear channels, the time channel multiplied
        by ``$TIMESTEP``. False: the values as stored, integers masked to
        ``$PnR`` (to the smallest power of two >= ``$PnR``, minus one).
    dtype : None, numpy.float32 or numpy.float64
        None: float32 for float32 (F) files, float64 otherwise.
    mmap : bool
        Return a read-only `numpy.memmap` of the DATA segment instead of reading
        it, for native-order float data that need no scaling (``scale=False``,
        or no gain or time step to apply) in the dtype asked for. Otherwise the
        events are read as usual.

    Returns
    -------
    Sample
        ``events`` of shape (``$TOT``, ``$PAR``); ``channels`` from ``$PnN``,
        ``$PnS``, ``$PnR``, ``$PnB``, ``$PnE``, ``$PnG``; every keyword of the
        primary and supplemental TEXT as spelled in the file; the spillover from
        ``$SPILLOVER``, ``$SPILL`` or ``SPILL`` with names mapped to ``$PnN``.

    Raises
    ------
    FCSError
        The file is missing, not an FCS file, truncated, or malformed so that
        its events cannot be read correctly (bad offsets, ``$PAR``, ``$TOT``,
        ``$PnB``, ``$BYTEORD``, ``$DATATYPE``...); the message names the file,
        the keyword or byte offset at fault and what was expected.

    Warns
    -----
    FCSWarning
        For each deviation from the standard that was read around (HEADER and
        TEXT offsets that disagree where one fits the file, a duplicated keyword,
        an unreadable spillover matrix...).
    """
    with _open_dataset(path, dataset, scale, dtype) as (fh, ds, notes, meta):
        plan, out_dtype = meta.pop("plan"), meta.pop("out_dtype")
        events = read_events(fh.fh, path, ds, notes, out_dtype=out_dtype, plan=plan, mmap=mmap)
    notes.emit()
    return Sample(events, **meta)


@contextmanager
def _open_dataset(path, dataset, scale: bool, dtype):
    """Open `path` and describe data set `dataset` (no events read).

    Yields ``(file, DataSet, Notes, meta)``: ``meta`` holds the `Sample`
    fields other than the events (channels, keywords, spillover, path,
    dataset, version, scaled) and the ``plan`` (`ScalePlan` or None) and
    ``out_dtype`` the events are read with.
    """
    path = Path(path)
    notes = Notes(str(path))
    chosen = dataset is not None
    dataset = 0 if dataset is None else dataset
    if isinstance(dataset, bool) or not isinstance(dataset, (int, np.integer)) or dataset < 0:
        raise FCSError(f"{path}: dataset={dataset!r}; expected a data set number >= 0")
    with _File(path, notes) as fh:
        # without a data set asked for, the next one is looked at too: a file of several
        # read as its first says so
        try:
            sets = read_datasets(fh.read, fh.size, notes, upto=int(dataset) + (not chosen))
        except FCSError as exc:
            if chosen:
                raise
            # the first data set does not depend on a broken link to the next
            sets = read_datasets(fh.read, fh.size, notes, upto=0)
            notes.note(f"the link to a second data set is broken ({exc}); the first was read")
        if not chosen and len(sets) > 1:
            notes.note(
                "the file holds more than one data set and only the first was read; "
                "`cytokit inspect FILE --dataset 2` shows the next (read_fcs(FILE, dataset=1) "
                "reads it)"
            )
        if dataset >= len(sets):
            raise notes.error(
                f"data set {dataset} was asked for but the file has {len(sets)} (numbered from 0)"
            )
        ds = sets[dataset]
        if dataset:
            notes.where = f"{path} (data set {dataset + 1})"
        kw = Keywords(notes)
        kw.add(list(ds.keywords.items()))
        channels = make_channels(kw, ds, strict=scale)
        meta = {
            "plan": scale_plan(kw, ds, channels) if scale else None,
            "out_dtype": _out_dtype(dtype, ds),
            "channels": channels,
            "keywords": dict(ds.keywords),
            "spillover": read_spillover(kw, channels),
            "path": path,
            "dataset": int(dataset),
            "version": ds.version,
            "scaled": bool(scale),
        }
        yield fh, ds, notes, meta


@contextmanager
def open_events(
    path: str | os.PathLike[str], *, dataset: int | None = None, scale: bool = True, dtype=None
) -> Iterator[tuple[dict, EventReader]]:
    """Open one data set of an FCS file for reading its events in slices of rows.

    `read_fcs` without the events: yields ``(meta, reader)``, where ``meta``
    holds the `Sample` fields other than the events (``channels``,
    ``keywords``, ``spillover``, ``path``, ``dataset``, ``version``,
    ``scaled``) and ``reader`` (`cytokit.fcs.data.EventReader`) fills any
    array of rows with the values `read_fcs` gives them (same arguments,
    same bits). Its `~EventReader.step` is the row granularity that keeps
    them the same: slices should start on its multiples. The file stays
    open (and the reader usable) inside the ``with`` block only; the
    warnings `read_fcs` gives are given when it ends.
    """
    path = Path(path)
    with _open_dataset(path, dataset, scale, dtype) as (fh, ds, notes, meta):
        plan, out_dtype = meta.pop("plan"), meta.pop("out_dtype")
        yield meta, EventReader(fh.fh, ds, notes, out_dtype=out_dtype, plan=plan)
    notes.emit()
