"""The per-sample result between the two passes of analyze: typed, round-tripped through the
store's codec, and a payload of another layout refused instead of misread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytokit.analysis import make_task
from cytokit.analysis.sample_result import SampleResult
from cytokit.engine.codec import decode_item, encode_payload
from cytokit.errors import CytokitError
from cytokit.study import load_study

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
FILE = SAMPLE_DATA / "fcs" / "P01_day007.fcs"


@pytest.fixture(scope="module")
def stored():
    """P01 day 7 of the sample study measured, encoded as the store holds it, and the task."""
    study = load_study(SAMPLE_DATA)
    task = make_task(study)
    items = encode_payload(task(FILE))
    return {n: decode_item(k, b) for n, (k, b) in items.items()}, task


def test_stored_items_decode_to_typed_fields(stored):
    items, task = stored
    res = SampleResult.decode(items, where=FILE.name)
    truth = np.load(FILE.with_suffix(".truth.npz"))
    assert res.info["events"] == truth["label"].shape[0]  # the simulator's own event count
    n_pops = len(task.populations)
    assert set(res.hists) == set(res.edges) == set(task.donor_markers)
    for m in task.donor_markers:
        assert res.hists[m].shape == (n_pops + 1, res.edges[m].shape[0] - 1)
        # row 0 is the threshold parent: every one of its events is in a bin
        by_path = dict(zip(res.counts["gate_path"], res.counts["count"], strict=True))
        assert int(res.hists[m][0].sum()) == by_path[task.parent]
    assert set(res.pheno) == {n for n, _ in task.populations}
    for gate in res.gates:
        pts = res.qc_points.get(gate["gate_id"])
        assert (0 if pts is None else pts.shape[0]) == gate["n_points"]
    # encode is the inverse of decode: the same item names, the same arrays
    again = res.encode()
    assert set(again) == set(items)
    for name, value in items.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(again[name], value)


def test_an_item_of_another_layout_is_refused(stored):
    items, _ = stored
    marker = next(n.partition(":")[2] for n in items if n.startswith("hist:"))
    # a layout that kept the histograms under another name
    renamed = {("histogram:" + marker if n == f"hist:{marker}" else n): v for n, v in items.items()}
    with pytest.raises(CytokitError, match=r"P01_day007.fcs: unknown item 'histogram:"):
        SampleResult.decode(renamed, where="P01_day007.fcs")
    without_edges = {n: v for n, v in items.items() if n != f"edges:{marker}"}
    with pytest.raises(CytokitError, match=rf"lacks edges:{marker}"):
        SampleResult.decode(without_edges, where="P01_day007.fcs")
    wrong_type = dict(items, counts=[1, 2, 3])
    with pytest.raises(CytokitError, match=r"item 'counts' is a list, expected DataFrame"):
        SampleResult.decode(wrong_type, where="P01_day007.fcs")
    missing = {n: v for n, v in items.items() if n != "info"}
    with pytest.raises(CytokitError, match=r"lacks info"):
        SampleResult.decode(missing, where="P01_day007.fcs")
