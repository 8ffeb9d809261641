"""Kernels compiled in another process while the first file compiles the gating kernels.

On a machine whose Numba cache is empty, `cytokit.analyze` gates its first
file in the main process, which compiles the fused pass (most of a first
run's compile time, one core). The kernels the run needs next are compiled
meanwhile in a spawned process, into Numba's on-disk cache, so that the main
process loads them instead of compiling them after the fused pass: the
vectorised transforms' driver and the transform tables (called once the
first file is gated) and, when the study clusters, the SOM kernels
(`cytokit.cluster.warm`). Each is compiled for exactly the types the run
passes (tests check that the run compiles nothing more); were the process to
fail or be late, the main process compiles them itself, as without it.
"""

from __future__ import annotations

import multiprocessing

import numpy as np

__all__ = ["compile_aside", "compile_transforms", "transforms_cached"]


def _transform_kernels():
    from cytokit.kernels import _xftable, transforms

    return (transforms._map_range, _xftable._fill_nodes)


def transforms_cached() -> bool:
    """Whether Numba's on-disk cache holds the vectorised transforms' kernels."""
    from cytokit.kernels import _config

    return all(_config.is_cached(k) for k in _transform_kernels())


def compile_transforms() -> None:
    """Compile (or load) the vectorised transform driver and the table builder for the
    types a run uses: float64 values in and out, below the table's size (the driver
    evaluates every kind through one kernel), and a logicle table."""
    from cytokit.kernels import transforms
    from cytokit.kernels.xfscalar import XF_LOGICLE, transform_lut, transform_params

    x = np.linspace(-100.0, 1000.0, 16)
    transforms.logicle(x, 262144.0, 0.5, 4.5, 0.0, out=np.empty_like(x))
    transform_lut(XF_LOGICLE, transform_params(XF_LOGICLE, T=262144.0, W=0.5, M=4.5, A=0.0))


def _compile(transforms: bool, clustering: bool) -> None:
    if transforms:
        compile_transforms()
    if clustering:
        from cytokit.cluster.warm import compile_kernels

        compile_kernels()


def compile_aside(clustering: bool = False) -> multiprocessing.process.BaseProcess | None:
    """Start a process compiling what the cache lacks of the transforms' kernels (and of
    the clustering's with `clustering`); the process, or None when nothing is missing.

    The caller joins it before clustering. A spawned process (not a fork of a
    process whose threads may hold locks) that compiles into Numba's on-disk
    cache; were it to fail, the run compiles the kernels itself.
    """
    from cytokit.engine._workers import _main_is_importable

    if not _main_is_importable():
        return None
    transforms = not transforms_cached()
    if clustering:
        from cytokit.cluster.warm import kernels_cached

        clustering = not kernels_cached()
    if not (transforms or clustering):
        return None
    proc = multiprocessing.get_context("spawn").Process(
        target=_compile,
        args=(transforms, clustering),
        name="cytokit-compile-aside",
        daemon=True,
    )
    proc.start()
    return proc
