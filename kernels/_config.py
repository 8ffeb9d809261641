"""The one place that sets how cytokit's kernels are compiled.

Every kernel is compiled with ``cache=True`` (the compiled machine code is kept
on disk, so compile cost is paid once per machine and Python version) and
``nogil=True`` (callers may run kernels on threads). ``fastmath`` is never
enabled: gates must keep IEEE semantics for NaN and inf. ``parallel=True`` is
used only where a call does O(n_events) work (`JIT_PARALLEL`).
"""

from __future__ import annotations

import numba

__all__ = ["JIT", "JIT_PARALLEL", "jit", "jit_parallel"]

JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
JIT_PARALLEL = {**JIT, "parallel": True}


def jit(func=None, **extra):
    """`numba.njit` with cytokit's serial options."""
    opts = {**JIT, **extra}
    if func is None:
        return numba.njit(**opts)
    return numba.njit(**opts)(func)


def jit_parallel(func=None, **extra):
    """`numba.njit` with cytokit's parallel options (prange over events)."""
    opts = {**JIT_PARALLEL, **extra}
    if func is None:
        return numba.njit(**opts)
    return numba.njit(**opts)(func)
