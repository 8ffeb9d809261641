"""Compilation and the on-disk cache: nothing compiles at import, entries are stale on any kernel change."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from numba.core import caching
from numba.core.dispatcher import Dispatcher

import cytokit.kernels
from cytokit.kernels import _config


def kernel_dispatchers():
    for info in pkgutil.iter_modules(cytokit.kernels.__path__):
        mod = importlib.import_module(f"cytokit.kernels.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.__module__ == mod.__name__:
                yield f"{info.name}.{name}", obj


def test_every_kernel_is_cached_with_the_shared_stamp():
    found = dict(kernel_dispatchers())
    assert len(found) >= 20, sorted(found)
    stamp = _config.kernels_stamp()
    n_parallel = 0
    for name, d in found.items():
        if d.targetoptions.get("parallel"):
            # Numba's own cache object; the stamp lives beside its index
            n_parallel += 1
            assert type(d._cache) is caching.FunctionCache, name
            mark = Path(d._cache._cache_file._index_path + ".stamp")
            assert mark.read_text() == stamp, name
        else:
            assert isinstance(d._cache, _config.KernelsCache), name
            assert d._cache._impl.locator.get_source_stamp() == stamp, name
    assert n_parallel >= 5


def test_stamp_covers_every_file(tmp_path):
    files = [tmp_path / f"m{i}.py" for i in range(3)]
    for i, f in enumerate(files):
        f.write_text(f"x = {i}\n")
    before = _config.sources_stamp(files)
    assert _config.sources_stamp(reversed(files)) == before  # order does not matter
    for f in files:
        text = f.read_text()
        f.write_text(text + "# changed\n")
        assert _config.sources_stamp(files) != before, f.name
        f.write_text(text)
    assert _config.sources_stamp(files) == before
    renamed = tmp_path / "z.py"
    files[0].rename(renamed)
    assert _config.sources_stamp([renamed, *files[1:]]) != before


_IMPORT = textwrap.dedent(
    """
    import sys
    import cytokit, cytokit.kernels
    from numba.core.dispatcher import Dispatcher
    n = 0
    for name, mod in list(sys.modules.items()):
        if name.startswith("cytokit"):
            for obj in vars(mod).values():
                if isinstance(obj, Dispatcher):
                    n += 1
                    assert not obj.signatures, (name, obj)
    print("dispatchers", n)
    """
)


def test_importing_cytokit_compiles_nothing():
    res = subprocess.run(
        [sys.executable, "-c", _IMPORT], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) >= 20


_CALL = textwrap.dedent(
    """
    import sys
    import numpy as np
    from cytokit.kernels import _config, compensation
    import cytokit.kernels as K
    parallel = sys.argv[2] == "parallel"
    d = compensation._compensate_parallel if parallel else compensation._compensate_serial
    if sys.argv[1] == "changed":  # as if another kernel file had been edited
        _config.kernels_stamp = lambda: "another source"
        if parallel:
            _config.refresh_parallel_cache(d)
        else:
            d._cache = _config.KernelsCache(d.py_func)
    n = compensation._PARALLEL_MIN if parallel else 2
    x = np.arange(2.0 * n).reshape(n, 2)
    out = K.compensate(x, np.array([[1, 0.5], [0, 1]]), [0, 1])
    s = d.stats
    print(sum(s.cache_hits.values()), sum(s.cache_misses.values()), out[:2].tolist())
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_cache_is_loaded_and_invalidated_by_any_kernel_change(tmp_path, kind):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = []
    for mode in ("same", "same", "changed"):
        res = subprocess.run(
            [sys.executable, "-c", _CALL, mode, kind],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert res.returncode == 0, res.stderr
        runs.append(res.stdout.strip().split(maxsplit=2))
    assert runs[0][:2] == ["0", "1"], runs  # cold: compiled and written
    assert runs[1][:2] == ["1", "0"], runs  # a second process loads it
    assert runs[2][:2] == ["0", "1"], runs  # another kernel source: stale, compiled again
    assert runs[0][2] == runs[1][2] == runs[2][2]


_ASIDE = textwrap.dedent(
    """
    import sys
    from cytokit.engine import warm
    import cytokit

    warm.compile_transforms()
    kernels = warm._transform_kernels()
    before = [sorted(map(str, k.signatures)) for k in kernels]
    results = cytokit.analyze(sys.argv[1], sys.argv[2], workers=1)
    after = [sorted(map(str, k.signatures)) for k in kernels]
    print(len(results.chimerism), all(before), before == after)
    """
)


@pytest.mark.slow
def test_transforms_compiled_aside_are_those_a_run_calls(tmp_path):
    """`analyze` compiles the vectorised transforms' kernels in another process on a first
    run (`cytokit.engine.warm`) while its first file compiles the fused pass: for the
    signatures the run itself calls (in a fresh process, so that no earlier test's call
    counts), or the run would compile them again after the fused pass."""
    root = Path(__file__).resolve().parents[1] / "sample_data"
    res = subprocess.run(
        [sys.executable, "-c", _ASIDE, str(root), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    rows, compiled, same = res.stdout.split()[-3:]
    assert int(rows) > 0 and compiled == "True"
    assert same == "True", "the run called the transforms with types compile_transforms missed"


def test_the_kernels_folder_imported_under_another_name_is_refused():
    """`import kernels` in a clone's root folder would compile the kernels under the
    module name 'kernels' into the shared Numba cache, where `cytokit.kernels` then
    failed to load them ("No module named 'kernels'") for every file of a batch."""
    root = Path(cytokit.kernels.__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", "import kernels"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "import cytokit.kernels (from cytokit import kernels)" in done.stderr
