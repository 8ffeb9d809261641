"""The fused pass on threads, its per-gate scopes, and what a first call compiles.

`evaluate_plan` runs a serial ``nogil`` kernel on ranges of blocks from
Python threads (`cytokit.kernels._threads`), and computes a dimension that
only the children of one gate read for that gate's members alone
(`fused._scopes`). Neither may change a single membership: results are
compared with the slow reference (`naive_gates`) and between one thread and
several, at every block boundary, for events read from FCS files of each
``$DATATYPE``.
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import subprocess
import sys
import textwrap

import naive_gates as naive
import numba
import numpy as np
import pytest
from fcs_synth import dataset, float_keywords, int_keywords
from test_kernels_fused import random_events, random_plan

import cytokit
from cytokit import kernels as K
from cytokit.kernels import _threads, fused
from cytokit.kernels.fused import BLOCK

# 1 event, around one block, and enough blocks for several ranges on each of two threads
SIZES = [1, BLOCK - 1, BLOCK, BLOCK + 1, 9 * BLOCK + 1, 40 * BLOCK + 17]


def _evaluate(x, plan, threads: int, **kw):
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return K.evaluate_plan(x, plan, **kw)
    finally:
        numba.set_num_threads(before)


def test_fused_pass_is_not_a_parallel_region():
    # prange in a parallel=True kernel cost a quarter of a first run's compile time
    assert not fused._evaluate.targetoptions.get("parallel")
    assert fused._evaluate.targetoptions.get("nogil")


def test_ranges_cover_every_block_once():
    seen = []

    def entry(b0, b1, tag):
        seen.extend(range(b0, b1))
        assert tag == "x"

    for n in (0, 1, 7, 8, 9, 63, 1000):
        seen.clear()
        _threads.run_ranges(entry, n, "x")
        assert sorted(seen) == list(range(n)), n


def test_range_errors_reach_the_caller():
    def entry(b0, b1):
        if b0 <= 5 < b1:
            raise ValueError("block 5")

    with pytest.raises(ValueError, match="block 5"):
        _threads.run_ranges(entry, 64)


@pytest.mark.parametrize("n", SIZES)
def test_block_boundaries_threads_and_reference(n):
    plan = random_plan(11)
    x = random_events(n, n)
    want_counts, want_mem = naive.evaluate(x, plan)
    rows = list(range(plan.n_gates))
    for threads in (1, 2):
        counts, mem = _evaluate(x, plan, threads)
        np.testing.assert_array_equal(mem, want_mem, err_msg=f"{threads} thread(s)")
        np.testing.assert_array_equal(counts, want_counts, err_msg=f"{threads} thread(s)")
        c2, packed = _evaluate(x, plan, threads, membership=rows, packed=True)
        np.testing.assert_array_equal(c2, want_counts)
        np.testing.assert_array_equal(K.unpack_membership(packed, n), want_mem)


def _fcs_file(path, x: np.ndarray, datatype: str) -> None:
    n, k = x.shape
    if datatype == "I":
        v = np.clip(np.nan_to_num(x + 50.0, nan=0.0, posinf=1000.0, neginf=0.0), 0, 1023)
        data = np.rint(v).astype("<u2").tobytes()
        kw = int_keywords([16] * k, n, ranges=[1024] * k)
    else:
        data = x.astype("<f4" if datatype == "F" else "<f8").tobytes()
        kw = float_keywords(k, n, datatype=datatype)
    path.write_bytes(dataset(kw, data))


@pytest.mark.parametrize("datatype", ["I", "F", "D"])
@pytest.mark.parametrize("n", [1, BLOCK - 1, BLOCK, BLOCK + 1, 9 * BLOCK + 1])
def test_fcs_files_every_datatype(tmp_path, datatype, n):
    path = tmp_path / f"{datatype}{n}.fcs"
    _fcs_file(path, random_events(n + 1, n), datatype)
    events = cytokit.read_fcs(path).events
    assert events.shape == (n, 8)
    plan = random_plan(12)
    want_counts, want_mem = naive.evaluate(events, plan)
    for threads in (1, 2):
        counts, mem = _evaluate(events, plan, threads)
        np.testing.assert_array_equal(mem, want_mem, err_msg=f"{datatype}, {threads} thread(s)")
        np.testing.assert_array_equal(counts, want_counts)


def _donor_tree():
    """Lymphocytes → Singlets → Live → CD3 × CD56 quadrants and HLA-A2+, then two ANDs."""
    b = K.PlanBuilder()
    comp = b.compensation(K.compensation_matrix(np.eye(4) + 0.05), [3, 4, 5, 6])
    lg = dict(T=1000.0, W=0.5, M=4.5, A=0.0)
    fsc_a, fsc_h, ssc_a = b.dimension(0), b.dimension(1), b.dimension(2)
    live_d, cd3, cd56, hla = (
        b.dimension(c, compensation=comp, transform=K.XF_LOGICLE, params=lg) for c in (3, 4, 5, 6)
    )
    lym = b.polygon([fsc_a, ssc_a], [(-20, -20), (20, -25), (25, 20), (-15, 15)], name="lym")
    sing = b.rectangle([fsc_a, fsc_h], [-18.0, -30.0], [30.0, 12.0], parent=lym, name="sing")
    live = b.rectangle([live_d], [None], [0.6], parent=sing, name="live")
    quads = b.quadrants([cd3, cd56], [[0.3], [0.3]], [[0, 0], [1, 0], [0, 1], [1, 1]], parent=live)
    hla_g = b.rectangle([hla], [0.35], [None], parent=live, name="hla")
    b.boolean("and", [quads[2], hla_g], name="donor NK")
    b.boolean("and", [quads[3], hla_g], name="donor CIK")
    return b.build(), (fsc_a, fsc_h, ssc_a, live_d, cd3, cd56, hla), (lym, sing, live)


def test_markers_are_computed_for_their_parents_members_only():
    plan, (fsc_a, fsc_h, ssc_a, live_d, cd3, cd56, hla), (lym, sing, live) = _donor_tree()
    grp_ptr, grp_dims, grp_slots, grp_gate = fused._scopes(plan)
    groups = {
        int(g): sorted(grp_dims[grp_ptr[i] : grp_ptr[i + 1]].tolist())
        for i, g in enumerate(grp_gate)
    }
    assert groups == {
        -1: sorted([fsc_a, ssc_a]),  # every event: read by the top-level gate
        lym: [fsc_h],
        sing: [live_d],
        live: sorted([cd3, cd56, hla]),
    }
    assert grp_slots.sum(axis=1).tolist() == [2, 1, 1, 3]  # each group's sources only
    # the gates' answers are the reference's on events with NaN, inf and every block edge
    x = random_events(7, 3 * BLOCK + 5, n_channels=7)
    counts, mem = K.evaluate_plan(x, plan)
    want_counts, want_mem = naive.evaluate(x, plan)
    np.testing.assert_array_equal(mem, want_mem)
    np.testing.assert_array_equal(counts, want_counts)
    assert 0 < counts[live] < counts[lym] < x.shape[0]


_FIRST_CALL = textwrap.dedent(
    """
    import numpy as np
    import cytokit.kernels as K
    from cytokit.kernels import transforms, xfscalar
    b = K.PlanBuilder()
    d = b.dimension(0, transform=K.XF_LINEAR, params=dict(T=1000.0, A=0.0))
    b.rectangle([d], [0.5], [None])
    counts, _ = K.evaluate_plan(np.array([[1.0, 0.0], [800.0, 0.0]]), b.build())
    print(counts.tolist(), len(transforms._map_block.signatures),
          len(xfscalar.transform_scalar.signatures),
          len(xfscalar.transform_inverse_scalar.signatures))
    """
)


@pytest.mark.slow
def test_fused_pass_compiles_no_root_finder_or_inverse(tmp_path):
    # the closed-form branch of the fused pass used `_map_block`, which also compiles every
    # inverse and the scalar dispatch with all root finders: seconds of a first run for nothing
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["[1]", "0", "0", "0"], res.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_its_own_pool():
    plan = random_plan(13)
    x = random_events(13, 20 * BLOCK)
    want_counts, _ = _evaluate(x, plan, 2)  # the parent's pool now exists
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: an inherited pool without threads would hang here
        try:
            counts, _ = _evaluate(x, plan, 2)
            os.write(w, b"ok" if np.array_equal(counts, want_counts) else b"bad")
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 300)
    if not ready:  # the child hangs: stop it, then fail
        os.kill(pid, signal.SIGKILL)
    got = os.read(r, 16) if ready else b"timed out"
    os.waitpid(pid, 0)
    assert got == b"ok"


def test_vectorised_transforms_compile_one_driver():
    # a serial and a prange twin each compiled the whole block code; one nogil driver on
    # threads serves small and large inputs
    mod = {
        m: importlib.import_module(f"cytokit.kernels.{m}")
        for m in ("transforms", "_xftable", "biex")
    }
    for d in (
        mod["transforms"]._map_range,
        mod["transforms"]._ratio_range,
        mod["_xftable"].table_map_range,
        mod["biex"].biex_map_range,  # the module: `cytokit.kernels.biex` is also a function
    ):
        assert not d.targetoptions.get("parallel"), d
        assert d.targetoptions.get("nogil"), d


@pytest.mark.parametrize("n", [1, 16384 * 8 - 1, 16384 * 8 + 1, 16384 * 21 + 5])
def test_vectorised_transforms_same_on_one_or_two_threads(n):
    x = np.random.default_rng(n).normal(300.0, 800.0, size=n)
    x[:: max(1, n // 7)] = np.nan
    calls = (
        lambda v: K.logicle(v, T=262144.0, W=0.5, M=4.5, A=0.0),
        lambda v: K.asinh(v, T=262144.0, M=4.5, A=0.0),
        lambda v: K.biex(v, 1.0, -7.943282, 4.41854, 262144.000029),
        lambda v: K.ratio(v, v + 1000.0, 1.0, 0.0, 0.0),
    )
    for call in calls:
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = call(x)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            two = call(x)
        finally:
            numba.set_num_threads(before)
        np.testing.assert_array_equal(one, two)
