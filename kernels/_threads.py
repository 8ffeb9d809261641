"""Run a serial ``nogil`` kernel over ranges of blocks on Python threads.

The fused gating pass used to split its blocks with ``prange`` in a
``parallel=True`` kernel. Lowering that parallel region was the single most
expensive compilation of a first run (about a quarter of all compile time of
``cytokit demo``, and it re-optimises every kernel the region calls), while
the block work itself is serial code. Here the serial kernel is compiled once
(``nogil=True``, so the threads run truly in parallel) and called on
contiguous ranges of blocks from a small thread pool. The number of threads
follows Numba's (`numba.get_num_threads`, so `numba.set_num_threads` in a
batch worker caps it as before).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

__all__ = ["n_threads", "run_ranges"]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()

#: Blocks per call below which one thread does everything (thread hand-off costs ~50 µs).
MIN_BLOCKS_PER_THREAD = 4


def _forget_pool() -> None:
    # A forked child inherits the pool object but none of its threads: work handed to it
    # would wait forever. The child makes its own pool when it first needs one.
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(1, numba.config.NUMBA_NUM_THREADS),
                thread_name_prefix="cytokit-kernels",
            )
        return _POOL


def n_threads(n_blocks: int) -> int:
    """Threads worth using for ``n_blocks`` blocks under Numba's current thread count."""
    return max(1, min(numba.get_num_threads(), n_blocks // MIN_BLOCKS_PER_THREAD))


def run_ranges(entry, n_blocks: int, *args) -> None:
    """Call ``entry(b0, b1, *args)`` on ranges covering blocks ``0 .. n_blocks - 1``.

    ``entry`` must write only into the blocks it is given (no shared
    accumulators), so the ranges can run in any order and at the same time.
    The calling thread works too (``t - 1`` pool threads help it); an
    exception of any range is raised here after every thread has stopped.
    """
    t = n_threads(n_blocks)
    if t <= 1:
        entry(0, n_blocks, *args)
        return
    # a few ranges per thread, taken in turn from one shared iterator (its `next` holds the
    # GIL, so each range is taken once), so a thread the machine's load slows holds no others
    n_ranges = min(n_blocks, 4 * t)
    bounds = [n_blocks * r // n_ranges for r in range(n_ranges + 1)]
    ranges = iter(range(n_ranges))
    futures = [_pool().submit(_take, entry, bounds, ranges, args) for _ in range(t - 1)]
    try:
        _take(entry, bounds, ranges, args)
    finally:
        for f in futures:
            f.result()


def _take(entry, bounds, ranges, args) -> None:
    for r in ranges:
        entry(bounds[r], bounds[r + 1], *args)
