"""The one place that sets how cytokit's kernels are compiled and cached.

Every kernel is compiled with ``cache=True`` (the compiled machine code is kept
on disk beside the installed code, so compile cost is paid once per installation) and
``nogil=True`` (callers may run kernels on threads). ``fastmath`` is never
enabled: gates must keep IEEE semantics for NaN and inf. ``parallel=True`` is
used only where a call does O(n_events) work (`JIT_PARALLEL`).

Cache freshness: Numba marks a cached kernel stale only when *its own* source
file changes, although the machine code also holds every kernel it calls
from other files (``fused`` inlines ``gates``, ``logicle``, ``_xftable``, …).
A change to a callee alone, or an upgrade that leaves the caller's file
untouched while the old cache files stay in ``__pycache__``, would then run
stale code. Here every serial kernel's cache entry is stamped with a hash of
all ``kernels/*.py`` sources instead, so any change to any kernel recompiles
them (once, as before).

Parallel kernels (``parallel=True``) keep Numba's own cache object: measured
with Numba 0.68, any change to it (a subclass, or only another stamp in its
index) makes the compiled parallel loops about twice as slow, although the
same code is compiled (e.g. `compensate` 11 -> 22 ns per event). Their
freshness is kept another way: a small ``<index>.stamp`` file beside each one's
cache index holds the all-kernels hash it was compiled under; when it differs
at import, the index is removed, so Numba compiles that kernel again on its
next call (`refresh_parallel_cache`).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np
from numba.core import caching

__all__ = [
    "JIT",
    "JIT_PARALLEL",
    "check_out",
    "is_cached",
    "jit",
    "jit_parallel",
    "kernels_stamp",
    "refresh_parallel_cache",
    "sources_stamp",
]

JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
JIT_PARALLEL = {**JIT, "parallel": True}

_KERNELS_DIR = Path(__file__).resolve().parent


def sources_stamp(paths) -> str:
    """SHA-256 over the names and bytes of ``paths`` (in sorted order)."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


@functools.cache
def _stamp_of(files: tuple) -> str:
    # keyed on (path, mtime, size) of every file, so an edit during a session re-hashes
    return sources_stamp(f[0] for f in files)


def kernels_stamp() -> str:
    """The cache stamp shared by every kernel: a hash of all ``kernels/*.py`` sources."""
    files = []
    for p in sorted(_KERNELS_DIR.glob("*.py")):
        st = p.stat()
        files.append((str(p), st.st_mtime_ns, st.st_size))
    return _stamp_of(tuple(files))


class _KernelsStamp:
    """Locator mixin: a kernel's cache entry is stale when any kernel source changed."""

    def get_source_stamp(self):
        return kernels_stamp()


class _KernelsCacheImpl(caching.CompileResultCacheImpl):
    # Numba's own locators (NUMBA_CACHE_DIR, then __pycache__ beside the file, then the
    # user-wide cache), in its order, with the shared stamp.
    _locator_classes: ClassVar[list] = [
        type(f"Kernels{cls.__name__}", (_KernelsStamp, cls), {})
        for cls in (
            caching.UserProvidedCacheLocator,
            caching.InTreeCacheLocator,
            caching.UserWideCacheLocator,
        )
    ]


class KernelsCache(caching.FunctionCache):
    """Numba's on-disk function cache with the all-kernels stamp."""

    _impl_class = _KernelsCacheImpl


def _cached(dispatcher):
    if not isinstance(dispatcher._cache, caching.NullCache):  # cache=True was asked for
        dispatcher._cache = KernelsCache(dispatcher.py_func)
    return dispatcher


def jit(func=None, **extra):
    """`numba.njit` with cytokit's serial options."""
    opts = {**JIT, **extra}
    if func is None:
        return lambda f: _cached(numba.njit(**opts)(f))
    return _cached(numba.njit(**opts)(func))


def refresh_parallel_cache(dispatcher):
    """Drop `dispatcher`'s cache index if it was written under other kernel sources.

    Returns `dispatcher`. Errors of the file system (a read-only cache) are
    ignored: Numba then compiles in memory, as it does for any unwritable cache.
    """
    cache = dispatcher._cache
    if isinstance(cache, caching.NullCache):
        return dispatcher
    index = Path(cache._cache_file._index_path)
    mark = index.with_name(index.name + ".stamp")
    stamp = kernels_stamp()
    try:
        if mark.read_text() == stamp:
            return dispatcher
    except OSError:
        pass
    try:
        index.unlink(missing_ok=True)
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(stamp)
    except OSError:
        pass
    return dispatcher


def is_cached(dispatcher) -> bool:
    """Whether `dispatcher` has machine code on disk for this machine (no compile needed)."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or isinstance(cache, caching.NullCache):
        return False
    return Path(cache._cache_file._index_path).is_file()


def jit_parallel(func=None, **extra):
    """`numba.njit` with cytokit's parallel options (prange over events)."""
    opts = {**JIT_PARALLEL, **extra}
    if func is None:
        return lambda f: refresh_parallel_cache(numba.njit(**opts)(f))
    return refresh_parallel_cache(numba.njit(**opts)(func))


def native(x) -> np.ndarray:
    """`x` as an array in the machine's byte order: the kernels are compiled for it, and
    a big-endian array (``np.frombuffer(raw, ">f4")`` of an FCS file's DATA) is the same
    values, so it is converted (a copy) rather than refused as another dtype."""
    arr = np.asarray(x)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_out(
    out, shape: tuple[int, ...], dtypes, what: str = "", name: str = "out", contiguous=False
) -> np.ndarray:
    """`out`, checked as the array a kernel writes its result into: every kernel's ``out=``
    (and ``distances=``) goes through here, so all say the same.

    Parameters
    ----------
    shape : tuple of int
    dtypes : sequence of numpy dtypes
        The ones the kernel writes, in the machine's byte order.
    what : str
        The kernel, for messages (``"ellipsoid"``), or ``""``.
    name : str
        The argument's name.
    contiguous : bool
        Whether it must be C-contiguous.

    Raises
    ------
    TypeError
        Not a numpy array, another dtype, or one of `dtypes` in the other byte order (the
        kernels are compiled for the machine's; unlike an input, an output cannot be
        converted, as the caller reads the array it passed).
    ValueError
        Another shape, read-only, or (`contiguous`) not C-contiguous.
    """
    lead = f"{what}: " if what else ""
    kinds = " or ".join(np.dtype(d).name for d in dtypes)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{lead}{name} must be a numpy array of {kinds}, got {type(out).__name__}")
    dt = out.dtype
    if not dt.isnative and dt.newbyteorder("=") in dtypes:
        here = dt.newbyteorder("=")
        raise TypeError(
            f"{lead}{name} has dtype {dt.str} ({here.name} in the other byte order); {name} "
            f"must be in native byte order: np.empty({shape}, np.{here.name}) or "
            f"{name}.astype('={dt.str[1:]}')"
        )
    if dt not in dtypes:
        raise TypeError(f"{lead}{name} must be a numpy array of {kinds}, got dtype {dt}")
    if out.shape != tuple(shape):
        raise ValueError(f"{lead}{name} has shape {out.shape}; expected {tuple(shape)}")
    if not out.flags.writeable:
        raise ValueError(f"{lead}{name} is read-only; pass a writeable array")
    if contiguous and not out.flags.c_contiguous:
        raise ValueError(
            f"{lead}{name} is not C-contiguous; pass np.empty({tuple(shape)}, np.{dt.name})"
        )
    return out
