"""The arrays a `GatingPlan` derives for the fused pass: one named, immutable structure."""

from __future__ import annotations

import numpy as np
import pytest

import cytokit.kernels as K
from cytokit.kernels.plan import PlanArrays, PlanBuilder


def _plan():
    spill = np.array([[1.0, 0.1, 0.0], [0.05, 1.0, 0.2], [0.0, 0.1, 1.0]])
    b = PlanBuilder()
    comp = b.compensation(K.compensation_matrix(spill), [2, 3, 4])
    fsc = b.dimension(0)
    cd3 = b.dimension(2, compensation=comp)
    cd56 = b.dimension(4, compensation=comp)
    ratio = b.dimension(1, ratio=(6, 1.0, 0.0, 0.0))
    root = b.rectangle([fsc, ratio], [10.0, None], [None, None])
    b.rectangle([cd3, cd56], [0.0, 0.0], [None, None], parent=root)
    return b.build()


def test_plan_arrays_are_one_named_immutable_structure():
    plan = _plan()
    a = plan._arrays
    assert isinstance(a, PlanArrays)
    # facts of the plan built above, counted by hand
    assert a.n_cslots == 2  # compensated columns 2 and 4 of the matrix's 2, 3, 4
    assert a.slot_index.tolist()[: a.n_cslots] == [0, 2]  # positions j in the matrix
    assert sorted(a.slot_index.tolist()[a.n_cslots :]) == [0, 1, 6]  # raw columns
    assert a.max_column == 6 and a.max_k == 3 and a.max_dims == 2
    assert a.dim_b.tolist().count(-1) == 3  # only the ratio has a denominator
    assert a.comp_cols.tolist() == [2, 3, 4] and a.comp_inv.size == 9
    with pytest.raises(AttributeError):
        a.max_column = 0  # a NamedTuple: the kernels' inputs cannot be changed behind the plan
    with pytest.raises(TypeError):
        a[0] = None


def test_fused_pass_reads_the_named_arrays():
    plan = _plan()
    rng = np.random.default_rng(5)
    ev = rng.normal(50.0, 30.0, size=(2000, 7))
    ev[:, 6] = rng.uniform(1.0, 2.0, 2000)
    counts, _ = K.evaluate_plan(ev, plan, membership=False)
    # reference in numpy, from the matrix itself
    spill = np.array([[1.0, 0.1, 0.0], [0.05, 1.0, 0.2], [0.0, 0.1, 1.0]])
    comp = np.linalg.solve(spill.T, ev[:, 2:5].T).T
    root = (ev[:, 0] >= 10.0) & np.isfinite(ev[:, 1] / ev[:, 6])
    child = root & (comp[:, 0] >= 0.0) & (comp[:, 2] >= 0.0)
    assert counts.tolist() == [int(root.sum()), int(child.sum())]
