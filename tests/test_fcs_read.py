"""read_fcs against external truth: the corpus consensus, FlowIO's truth arrays, FlowKit.

* Every data set of the corpus catalogue is one test case: its stored values
  (``scale=False``) must equal what flowio, fcsparser and FlowCal read (shape,
  first rows, last row, per-channel min/max exactly, sums to 1e-13), or it must
  be rejected with `FCSError` when no reader could read it.
* Scale values equal FlowIO's ``data1_preprocessed.npy`` (the Gating-ML 2.0
  compliance data) and ``B01`` truth exactly, and FlowKit's preprocessed events
  on every file FlowKit reads.
* Hand-built files (`fcs_synth`) cover what the corpus copy lacks or cannot
  isolate: 24-bit and mixed widths, masked 10-bit values, multiple data sets,
  blank HEADER offsets, offset disagreements, supplemental TEXT, TEXT quirks,
  spillover spellings, and every rejection.
"""

from __future__ import annotations

import csv
import json
import re
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from fcs_synth import dataset, float_keywords, int_keywords, pack_ints

import cytokit
from cytokit import Channel, FCSError, Sample
from cytokit.fcs import FCSWarning, read_fcs, read_fcs_datasets, write_fcs

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DERIVED = CORPUS / "derived"


def _catalogue() -> list[dict]:
    if not (DERIVED / "fcs_catalog.csv").exists():
        return []
    with open(DERIVED / "fcs_catalog.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _consensus() -> dict:
    path = DERIVED / "fcs_reader_consensus.jsonl"
    if not path.exists():
        return {}
    out = {}
    with open(path) as fh:
        for line in fh:
            d = json.loads(line)
            out[(d["path"], d["dataset"])] = d
    return out


CATALOGUE = _catalogue()
CONSENSUS = _consensus()
# fcsparser alone read this one, from the HEADER's DATA offset, which overlaps TEXT;
# cytokit trusts $BEGINDATA (which fits $TOT) and gets the events of the same
# recording as variable_int_example.fcs, which flowio and fcsparser agree on
TEXT_TRUSTED = {  # HEADER and TEXT disagree; only TEXT fits the file
    "flowkit/data/noncompliant/data_start_offset_discrepancy_example.fcs",
    "flowkit/data/noncompliant/data_stop_offset_discrepancy_example.fcs",
}
SAME_EVENTS_AS = "github/whitews_FlowIO/data/fcs_files/variable_int_example.fcs"


def corpus_file(rel: str) -> Path:
    path = CORPUS / rel
    if not path.exists():
        pytest.skip(f"corpus file {rel} not found in {CORPUS}")
    return path


def read_quiet(path, **kw) -> Sample:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FCSWarning)
        return read_fcs(path, **kw)


def _case_id(row: dict) -> str:
    return f"{row['path']}#{row['dataset'] or '-'}"


# -- the corpus catalogue: one case per data set ---------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize("row", CATALOGUE, ids=[_case_id(r) for r in CATALOGUE])
def test_corpus_data_set(row):
    path = corpus_file(row["path"])
    ds = int(row["dataset"] or 0)
    truth = CONSENSUS.get((row["path"], ds))
    readers = {} if truth is None else {k: v for k, v in truth["readers"].items() if "shape" in v}
    if not readers:
        # no reader of the consensus could read it: corrupt (MANIFEST B: truncated or not FCS)
        with pytest.raises(FCSError, match=r"not an FCS file|truncated") as err:
            read_fcs(path, dataset=ds)
        assert str(path) in str(err.value)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = read_fcs(path, dataset=ds, scale=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, FCSWarning)]
    assert all(issubclass(w.category, FCSWarning) for w in caught), caught

    # metadata the independent catalogue recorded
    assert s.version == row["fcs_version"]
    assert s.keyword("$DATATYPE").strip() == row["datatype"]
    assert s.n_channels == int(row["par"]) and s.n_events == int(row["tot"])
    assert {str(c.bits) for c in s.channels} == set(row["pnb_set"].split("/"))
    assert sum(c.is_log for c in s.channels) == int(row["log_amp_params"])
    if row["spill_keyword"]:
        assert s.spillover is not None and s.spillover.source == row["spill_keyword"]
        assert s.spillover.matrix.shape[0] >= 1
    else:
        assert s.spillover is None
    if "odd number of TEXT tokens" not in row["oddities"]:  # the catalogue's TEXT parse is strict
        assert len(s.keywords) == int(row["n_keywords"])
    for odd in row["oddities"].split(" ; "):
        if odd.startswith("duplicate keyword "):
            name = odd.removeprefix("duplicate keyword ")
            assert any(name in m and "repeats" in m for m in messages), messages

    # stored values: exactly what the other readers read
    events = s.events.astype(np.float64)
    if row["path"] in TEXT_TRUSTED:
        assert any("TEXT was trusted" in m for m in messages), messages
        other = CONSENSUS[(SAME_EVENTS_AS, 0)]["readers"]
        readers = {k: v for k, v in other.items() if "shape" in v}
    else:
        assert not any("trusted" in m for m in messages), messages
    for name, res in readers.items():
        assert list(events.shape) == res["shape"], name
        first = np.array(res["first_rows"], dtype=np.float64)
        np.testing.assert_array_equal(events[: len(first)], first, err_msg=name)
        np.testing.assert_array_equal(events[-1], res["last_row"], err_msg=name)
        np.testing.assert_array_equal(events.min(axis=0), res["min"], err_msg=name)
        np.testing.assert_array_equal(events.max(axis=0), res["max"], err_msg=name)
        np.testing.assert_allclose(events.sum(axis=0), res["sum"], rtol=1e-13, err_msg=name)


@pytest.mark.corpus
def test_catalogue_is_complete_and_counted():
    if not CATALOGUE:
        pytest.skip(f"corpus not found at {CORPUS}")
    present = [r for r in CATALOGUE if (CORPUS / r["path"]).exists()]
    read = rejected = 0
    for r in present:
        try:
            read_quiet(CORPUS / r["path"], dataset=int(r["dataset"] or 0), scale=False)
            read += 1
        except FCSError:
            rejected += 1
    expected_rejects = sum(
        1
        for r in present
        if not any(
            "shape" in v
            for v in CONSENSUS.get((r["path"], int(r["dataset"] or 0)), {})
            .get("readers", {})
            .values()
        )
    )
    assert rejected == expected_rejects
    assert read + rejected == len(present)


# -- truth arrays ------------------------------------------------------------------------


#: ulps a `$PnE` scale value may differ from FlowIO's truth: ``10 ** x`` is a
#: transcendental whose last bit depends on the CPU (numpy evaluates it with other code
#: where the CPU has AVX-512), so the truth, computed elsewhere, and the value computed
#: here may each be one ulp from the correctly rounded result (2 ulp: 4.4e-16 relative).
LOG_SCALE_ULP = 2


def _assert_data1_scale_values(events: np.ndarray, channels, truth: np.ndarray) -> None:
    """Linear channels exactly (one IEEE division by $PnG); $PnE channels to 2 ulp."""
    assert events.dtype == np.float64 and events.shape == truth.shape
    log = [c.index for c in channels if c.log_decades > 0]
    linear = [c.index for c in channels if c.log_decades == 0]
    assert log == [2, 3, 4, 6]
    np.testing.assert_array_equal(events[:, linear], truth[:, linear])
    np.testing.assert_array_max_ulp(events[:, log], truth[:, log], maxulp=LOG_SCALE_ULP)


@pytest.mark.corpus
def test_data1_scale_values_equal_flowio_truth():
    # the Gating-ML 2.0 compliance data: $PnG on FSC/SSC, $PnE=4,0 on FL1-4
    s = read_fcs(corpus_file("flowkit/data/gate_ref/data1.fcs"))
    truth = np.load(corpus_file("github/whitews_FlowIO/data/truth/data1_preprocessed.npy"))
    assert s.scaled
    _assert_data1_scale_values(s.events, s.channels, truth)
    raw = read_fcs(CORPUS / "flowkit/data/gate_ref/data1.fcs", scale=False)
    original = np.load(CORPUS / "github/whitews_FlowIO/data/truth/data1_original_events.npy")
    np.testing.assert_array_equal(raw.events, original)
    assert raw.channels[0].gain == 3.67 and raw.channels[2].log_decades == 4
    assert raw.channels[2].log_offset == 0  # f2=0 kept as written, read as 1 when scaling
    assert raw.channels[2].name == "FL1-H" and raw.channels[2].marker == "CD4 FITC"


@pytest.mark.corpus
def test_data1_check_survives_a_last_bit_change_of_10_to_the_x(monkeypatch):
    """Another CPU, emulated: one `$PnE` value in 20 a last bit away. The check holds;
    a value 3 ulp away, or a linear value 1 ulp away, fails it."""
    truth = np.load(corpus_file("github/whitews_FlowIO/data/truth/data1_preprocessed.npy"))
    power = np.power

    def other_cpu(base, x, *args, **kwargs):
        r = power(base, x, *args, **kwargs)
        if isinstance(r, np.ndarray) and r.dtype == np.float64:
            r[::20] = np.nextafter(r[::20], np.inf)
        return r

    monkeypatch.setattr(np, "power", other_cpu)
    s = read_fcs(corpus_file("flowkit/data/gate_ref/data1.fcs"))
    monkeypatch.undo()
    assert not np.array_equal(s.events, truth)
    _assert_data1_scale_values(s.events, s.channels, truth)
    far = s.events.copy()
    far[5, 2] = truth[5, 2] * (1 + 3 * np.finfo(np.float64).eps)
    with pytest.raises(AssertionError):
        _assert_data1_scale_values(far, s.channels, truth)
    lin = s.events.copy()
    lin[5, 0] = np.nextafter(truth[5, 0], np.inf)
    with pytest.raises(AssertionError):
        _assert_data1_scale_values(lin, s.channels, truth)


@pytest.mark.corpus
def test_b01_time_step_and_supplemental_text_equal_flowio_truth():
    s = read_fcs(corpus_file("github/whitews_FlowIO/data/fcs_files/B01 KC-A-W---91-US.fcs"))
    truth = np.load(
        corpus_file("github/whitews_FlowIO/data/truth/B01 KC-A-W---91-US_preprocessed_events.npy")
    )
    np.testing.assert_array_equal(s.events, truth)
    assert s.keyword("$TIMESTEP") == "0.1" and s.channel_names[-1].upper() == "TIME"
    raw = read_fcs(
        CORPUS / "github/whitews_FlowIO/data/fcs_files/B01 KC-A-W---91-US.fcs", scale=False
    )
    np.testing.assert_allclose(raw.events[:, -1] * 0.1, s.events[:, -1], rtol=1e-15)


def _flowkit_cases() -> list[str]:
    # FlowKit reads one-data-set files only
    multi = {r["path"] for r in CATALOGUE if r["nextdata"] not in ("0", "")}
    return list(dict.fromkeys(r["path"] for r in CATALOGUE if r["path"] not in multi))


@pytest.mark.corpus
@pytest.mark.parametrize("rel", _flowkit_cases())
def test_scale_values_equal_flowkit(rel):
    fk = pytest.importorskip("flowkit")
    path = corpus_file(rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # the options let FlowKit read files with an off-by-one $ENDDATA
            theirs = fk.Sample(
                str(path), ignore_offset_error=True, ignore_offset_discrepancy=True
            ).get_events(source="raw")
        except Exception as exc:  # FlowKit refuses several corpus files
            pytest.skip(f"FlowKit cannot read {rel}: {type(exc).__name__}")
    ours = read_quiet(path, dtype=np.float64)
    np.testing.assert_array_equal(ours.events, theirs)
    # float32 files stay float32: the same values rounded once
    default = read_quiet(path)
    np.testing.assert_array_equal(default.events, theirs.astype(default.events.dtype))


@pytest.mark.corpus
def test_24bit_big_endian_flowcal_data003():
    s = read_fcs(corpus_file("github/taborlab_FlowCal/test/Data003.fcs"), scale=False)
    assert {c.bits for c in s.channels} == {24}
    raw = s.path.read_bytes()
    begin = int(s.keyword("$BEGINDATA"))
    first = [int.from_bytes(raw[begin + 3 * j : begin + 3 * j + 3], "big") for j in range(8)]
    masks = [2**18 - 1] + [1023] * 7  # $P1R=262144, others 1024
    np.testing.assert_array_equal(s.events[0], [v & m for v, m in zip(first, masks, strict=True)])


@pytest.mark.corpus
def test_multiple_data_sets_coulter():
    path = corpus_file("flowkit/data/multi_dataset_fcs/coulter.lmd")
    sets = read_fcs_datasets(path)
    assert [(d.index, d.version, d.n_events, d.n_channels, d.datatype) for d in sets] == [
        (0, "FCS2.0", 18110, 8, "I"),
        (1, "FCS3.0", 18110, 8, "I"),
    ]
    assert sets[0].offset == 0 and sets[1].offset == sets[0].next_offset == 363602
    assert sets[0].byteorder == "1,2" and sets[1].next_offset == 0
    second = read_fcs(path, dataset=1, scale=False)
    assert second.dataset == 1 and second.version == "FCS3.0"
    with pytest.raises(FCSError, match=r"data set 2 was asked for but the file has 2"):
        read_fcs(path, dataset=2)
    # Beckman's " 4.0,0.1024" (leading space, f2 != 1)
    first = read_fcs(path, scale=False)
    logs = [c for c in first.channels if c.is_log]
    assert logs and all((c.log_decades, c.log_offset) == (4.0, 0.1024) for c in logs)
    scaled = read_fcs(path)
    j = logs[0].index
    np.testing.assert_allclose(
        scaled.events[:, j], 10 ** (4.0 * first.events[:, j] / logs[0].range) * 0.1024, rtol=1e-15
    )


# -- hand-built files: layouts -----------------------------------------------------------


def write(tmp_path: Path, raw: bytes, name: str = "x.fcs") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("order", ["<", ">"])
def test_24_and_mixed_bit_widths(tmp_path, order):
    rng = np.random.default_rng(1)
    bits = [8, 16, 24, 32, 64, 40]
    values = np.column_stack(
        [rng.integers(0, 2**b, 50, dtype=np.uint64, endpoint=False) for b in bits]
    )
    byteord = "1,2,3,4" if order == "<" else "4,3,2,1"
    raw = dataset(int_keywords(bits, 50, byteord=byteord), pack_ints(values, bits, order))
    s = read_fcs(write(tmp_path, raw), scale=False, dtype=np.float64)
    np.testing.assert_array_equal(s.events, values.astype(np.float64))
    assert [c.bits for c in s.channels] == bits


def test_mixed_byte_order_permutation(tmp_path):
    # FCS 2.0 allowed any byte order; "3,4,1,2" (PDP-endian) on 32-bit values
    values = np.array([[0x01020304, 7], [0xA0B0C0D0, 2**31]], dtype=np.uint64)
    data = bytearray()
    for row in values:
        for v in row:
            le = int(v).to_bytes(4, "little")  # ranks 1..4 = significance
            data += bytes(le[r - 1] for r in (3, 4, 1, 2))
    raw = dataset(int_keywords([32, 32], 2, byteord="3,4,1,2"), bytes(data))
    s = read_fcs(write(tmp_path, raw), scale=False)
    np.testing.assert_array_equal(s.events, values.astype(np.float64))


def test_values_masked_to_range_bits(tmp_path):
    # fcs1_cleaned.lmd: FCS 2.0, $BYTEORD=1,2, 10-bit values with high bits set
    values = np.array([[16912, 528, 1023], [0, 1024, 65535]], dtype=np.uint64)
    raw = dataset(
        int_keywords([16, 16, 16], 2, ranges=[1024, 1024, 1000], byteord="1,2"),
        pack_ints(values, [16, 16, 16], "<"),
        version="FCS2.0",
        text_data=False,
    )
    s = read_fcs(write(tmp_path, raw), scale=False)
    np.testing.assert_array_equal(s.events, [[528, 528, 1023], [0, 0, 1023]])
    # $PnR that is not a power of two masks to the next one (1000 -> 1023), like FlowIO


def test_range_mask_not_applied_to_full_width_or_floats(tmp_path):
    values = np.array([[70000, 5]], dtype=np.uint64)
    raw = dataset(int_keywords([32, 32], 1, ranges=[2**32, 4]), pack_ints(values, [32, 32]))
    s = read_fcs(write(tmp_path, raw), scale=False)
    np.testing.assert_array_equal(s.events, [[70000, 1]])  # 5 & (4 - 1): range 4 masks to 2 bits


@pytest.mark.parametrize("datatype", ["F", "D"])
@pytest.mark.parametrize("byteord", ["1,2,3,4", "4,3,2,1"])
def test_float_data_both_orders(tmp_path, datatype, byteord):
    rng = np.random.default_rng(2)
    order = "<" if byteord == "1,2,3,4" else ">"
    width = 4 if datatype == "F" else 8
    values = rng.normal(size=(30, 3)).astype(f"{order}f{width}")
    raw = dataset(float_keywords(3, 30, datatype=datatype, byteord=byteord), values.tobytes())
    s = read_fcs(write(tmp_path, raw))
    assert s.events.dtype == np.dtype(f"f{width}") and s.events.dtype.isnative
    np.testing.assert_array_equal(s.events, values)


def test_fcs32_per_parameter_datatypes(tmp_path):
    kw = [*int_keywords([16, 32, 64], 2), ("$P2DATATYPE", "F"), ("$P3DATATYPE", "D")]
    rows = [(3, 1.5, -2.25), (65535, -0.0, 1e300)]
    data = b"".join(
        np.array(a, "<u2").tobytes() + np.array(b, "<f4").tobytes() + np.array(c, "<f8").tobytes()
        for a, b, c in rows
    )
    s = read_fcs(write(tmp_path, dataset(kw, data, version="FCS3.2")), scale=False)
    np.testing.assert_array_equal(s.events, np.array(rows, dtype=np.float64))


def test_several_data_sets_and_nextdata(tmp_path):
    parts = []
    for i in range(4):
        values = np.full((i + 1, 2), i, dtype="<f4")
        parts.append(
            dataset(float_keywords(2, i + 1), values.tobytes(), nextdata=i < 3, tail=b"\0" * i)
        )
    path = write(tmp_path, b"".join(parts))
    sets = read_fcs_datasets(path)
    assert [d.n_events for d in sets] == [1, 2, 3, 4]
    assert [d.offset for d in sets] == list(np.cumsum([0] + [len(p) for p in parts[:-1]]))
    for i in range(4):
        s = read_fcs(path, dataset=i)
        assert s.n_events == i + 1 and np.all(s.events == i) and s.dataset == i
    with pytest.raises(FCSError, match=r"data set 4 was asked for but the file has 4"):
        read_fcs(path, dataset=4)
    with pytest.raises(FCSError, match=r"dataset=-1"):
        read_fcs(path, dataset=-1)


def test_broken_nextdata_ends_the_list_with_a_warning(tmp_path):
    first = dataset(float_keywords(1, 1), b"\0" * 4, nextdata=True)
    path = write(tmp_path, first + b"garbage" * 20)
    with pytest.warns(FCSWarning, match=r"data set 2 .*cannot be read: not an FCS file"):
        sets = read_fcs_datasets(path)
    assert len(sets) == 1
    with pytest.warns(FCSWarning, match=r"the link to a second data set is broken"):
        assert read_fcs(path).n_events == 1  # data set 0 does not depend on the link
    with pytest.raises(FCSError, match=r"data set 2.*not an FCS file"):
        read_fcs(path, dataset=1)


@pytest.mark.parametrize("header_data", ["zero", "blank"])
def test_header_data_offsets_blank_or_zero_use_text(tmp_path, header_data):
    values = np.arange(12, dtype=">f4").reshape(4, 3)
    kw = float_keywords(3, 4, byteord="4,3,2,1")
    raw = dataset(kw, values.tobytes(), header_data=header_data, version="FCS3.0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the standard's way for large files: no warning
        s = read_fcs(write(tmp_path, raw))
    np.testing.assert_array_equal(s.events, values)


def test_enddata_one_past_the_end_is_tolerated(tmp_path):
    values = np.arange(6, dtype="<f4").reshape(2, 3)
    raw = dataset(float_keywords(3, 2), values.tobytes(), end_adjust=1, tail=b"\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = read_fcs(write(tmp_path, raw))
    np.testing.assert_array_equal(s.events, values)
    # also when $ENDDATA points one byte past the end of the file
    raw = dataset(float_keywords(3, 2), values.tobytes(), end_adjust=1)
    np.testing.assert_array_equal(read_fcs(write(tmp_path, raw, "b.fcs")).events, values)


def test_header_text_disagreement_trusts_the_one_that_fits(tmp_path):
    values = np.arange(6, dtype="<f4").reshape(2, 3)
    kw = float_keywords(3, 2)
    good = dataset(kw, values.tobytes())
    first = int(good[26:34])
    # HEADER points past the end of the file: TEXT fits
    raw = dataset(kw, values.tobytes(), header_data=(first, first + 999))
    with pytest.warns(FCSWarning, match=r"HEADER says DATA is bytes .*TEXT was trusted"):
        s = read_fcs(write(tmp_path, raw, "a.fcs"))
    np.testing.assert_array_equal(s.events, values)
    # TEXT is wrong, the HEADER fits
    raw = dataset(kw, values.tobytes(), text_data=(first - 4, first + 19))
    with pytest.warns(FCSWarning, match=r"the HEADER was trusted"):
        s = read_fcs(write(tmp_path, raw, "b.fcs"))
    np.testing.assert_array_equal(s.events, values)
    # both fit (same size, different place): which is unknown
    raw = dataset(kw, values.tobytes(), gap=24, header_data=(first, first + 23))
    with pytest.raises(FCSError, match=r"both fit \$TOT=2"):
        read_fcs(write(tmp_path, raw, "c.fcs"))
    # neither fits
    raw = dataset(
        kw, values.tobytes(), header_data=(first, first + 5), text_data=(first, first + 7)
    )
    with pytest.raises(FCSError, match=r"neither fits \$TOT=2") as err:
        read_fcs(write(tmp_path, raw, "d.fcs"))
    assert "d.fcs" in str(err.value)


def test_missing_tot_is_counted_from_the_data_size(tmp_path):
    values = np.arange(9, dtype="<f4").reshape(3, 3)
    kw = [kv for kv in float_keywords(3, 3) if kv[0] != "$TOT"]
    with pytest.warns(FCSWarning, match=r"\$TOT is missing; 3 events"):
        s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    np.testing.assert_array_equal(s.events, values)


def test_zero_events(tmp_path):
    raw = dataset(float_keywords(3, 0), b"")
    s = read_fcs(write(tmp_path, raw))
    assert s.events.shape == (0, 3) and s.events.dtype == np.float32


# -- hand-built files: TEXT ------------------------------------------------------------


def test_fcs2_empty_values_and_text_without_final_delimiter(tmp_path):
    values = np.array([[1, 2]], dtype=">u2")
    kw = [*int_keywords([16, 16], 1, byteord="4,3,2,1"), ("EMPTY", ""), ("$P1S", ""), ("LAST", "")]
    raw = dataset(kw, values.tobytes(), version="FCS2.0", delim=b"\\", text_data=False)
    s = read_fcs(write(tmp_path, raw, "a.fcs"))
    assert s.keywords["EMPTY"] == "" and s.keywords["LAST"] == "" and s.channels[0].marker == ""
    np.testing.assert_array_equal(s.events, [[1, 2]])
    kw = [*int_keywords([16, 16], 1, byteord="4,3,2,1"), ("$CYT", "FACScan")]
    raw = dataset(kw, values.tobytes(), version="FCS2.0", text_data=False, final_delim=False)
    with pytest.warns(FCSWarning, match="does not end with its delimiter"):
        s = read_fcs(write(tmp_path, raw, "b.fcs"))
    assert s.keywords["$CYT"] == "FACScan"


def test_escaped_delimiters_fcs31(tmp_path):
    values = np.zeros((1, 1), dtype="<f4")
    kw = [*float_keywords(1, 1), ("A/B", "x/y"), ("V", "/lead"), ("W", "trail/"), ("ONLY", "//")]
    raw = dataset(kw, values.tobytes(), escape=True)
    s = read_fcs(write(tmp_path, raw))
    got = {k: s.keywords[k] for k in ("A/B", "V", "W", "ONLY")}
    assert got == {"A/B": "x/y", "V": "/lead", "W": "trail/", "ONLY": "//"}


def test_non_ascii_utf8_and_latin1(tmp_path):
    values = np.zeros((1, 1), dtype="<f4")
    kw = [*float_keywords(1, 1), ("$SRC", "Zürich – 免疫"), ("CREATOR", b"CELLQuest\xaa 3.3")]
    s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert s.keywords["$SRC"] == "Zürich – 免疫" and s.keywords["CREATOR"] == "CELLQuest\xaa 3.3"


def test_duplicate_keywords_keep_the_first_and_warn(tmp_path):
    values = np.zeros((1, 1), dtype="<f4")
    kw = [*float_keywords(1, 1), ("$VOL", "10"), ("$vol", "20"), ("X", "1"), ("X", "1")]
    with pytest.warns(FCSWarning, match=r"repeats keyword\(s\) '\$vol' \('10', then '20'\)") as rec:
        s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert "'X' (same value)" in str(rec[0].message)
    assert s.keywords["$VOL"] == "10" and "$vol" not in s.keywords and s.keyword("$Vol") == "10"


def test_supplemental_text(tmp_path):
    values = np.zeros((1, 1), dtype="<f4")
    kw = [*float_keywords(1, 1), ("$CYT", "primary")]
    stext = [("EXTRA", "from stext"), ("$CYT", "ignored")]
    with pytest.warns(FCSWarning, match=r"supplemental TEXT repeats keyword\(s\) '\$CYT'"):
        s = read_fcs(write(tmp_path, dataset(kw, values.tobytes(), stext=stext)))
    assert s.keywords["EXTRA"] == "from stext" and s.keywords["$CYT"] == "primary"
    assert list(s.keywords)[-1] == "EXTRA"


def test_keywords_keep_their_spelling_and_order(tmp_path):
    values = np.zeros((1, 1), dtype="<f4")
    kw = [("$Cyt", "x"), *float_keywords(1, 1), ("my key", " padded ")]
    s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    keys = list(s.keywords)
    assert keys[:3] == ["$BEGINDATA", "$ENDDATA", "$Cyt"] and keys[-1] == "my key"
    assert s.keywords["my key"] == " padded " and s.keyword("$CYT") == "x"


# -- channels, scaling, spillover ----------------------------------------------------------


def test_pnn_and_pns_kept_apart_and_missing_pnn(tmp_path):
    values = np.zeros((1, 3), dtype="<f4")
    kw = [*float_keywords(3, 1), ("$P1S", "CD3 FITC"), ("$P2S", "C1")]
    kw = [kv for kv in kw if kv[0] != "$P3N"]
    s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert s.channel_names == ("C1", "C2", "P3") and s.markers == ("CD3 FITC", "C1", "")


def test_duplicate_channel_names_are_made_unique(tmp_path):
    values = np.zeros((1, 2), dtype="<f4")
    kw = [(k, "FSC" if k in ("$P1N", "$P2N") else v) for k, v in float_keywords(2, 1)]
    with pytest.warns(FCSWarning, match=r"\$P2N='FSC' repeats the name of parameter 1"):
        s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert s.channel_names == ("FSC", "FSC [P2]")


def test_scale_log_gain_and_timestep_on_integers(tmp_path):
    values = np.array([[0, 512, 1023, 100, 7], [1023, 0, 1, 4, 9]], dtype=np.uint64)
    kw = int_keywords([16] * 5, 2, ranges=[1024] * 5, names=["FL1", "FL2", "FL3", "FSC", "TIME"])
    kw = [(k, v) for k, v in kw if not re.fullmatch(r"\$P\dE", k)]
    kw += [("$P1E", "4,0"), ("$P2E", " 4.0,0.1024"), ("$P3E", "3,1"), ("$P4G", "2.5")]
    kw += [("$P5G", "0.01"), ("$TIMESTEP", "0.01")]
    raw = dataset(kw, pack_ints(values, [16] * 5))
    s = read_fcs(write(tmp_path, raw))
    x = values.astype(np.float64)
    expected = np.column_stack(
        [
            10 ** (4.0 * x[:, 0] / 1024.0),
            10 ** (4.0 * x[:, 1] / 1024.0) * 0.1024,
            10 ** (3.0 * x[:, 2] / 1024.0),
            x[:, 3] / 2.5,
            x[:, 4] * 0.01,  # the time channel's $PnG is not applied
        ]
    )
    np.testing.assert_array_equal(s.events, expected)
    assert s.events.dtype == np.float64 and s.scaled
    f32 = read_fcs(s.path, dtype=np.float32)
    assert f32.events.dtype == np.float32
    np.testing.assert_array_equal(f32.events, expected.astype(np.float32))
    raw_values = read_fcs(s.path, scale=False)
    np.testing.assert_array_equal(raw_values.events, x)
    assert not raw_values.scaled and raw_values.channels[1].log_offset == 0.1024


def test_a_time_name_padded_with_spaces_is_the_clock(tmp_path):
    """``$PnN`` "Time " (written padded) is the time parameter: scaled by ``$TIMESTEP``,
    and the clock acquisition QC reads."""
    from cytokit.qc import time_column

    values = np.array([[10, 0], [20, 5], [30, 9]], dtype="<f4")
    kw = [(k, " Time " if k == "$P2N" else v) for k, v in float_keywords(2, 3)]
    kw += [("$TIMESTEP", "0.5"), ("$P2G", "4")]
    s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    np.testing.assert_array_equal(s.events[:, 1], [0.0, 2.5, 4.5])  # × $TIMESTEP, not / $PnG
    assert time_column(s) == 1


def test_scale_float32_in_place_rounds_once(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1e5, (1000, 3)).astype("<f4")
    kw = [(k, "Time" if k == "$P3N" else v) for k, v in float_keywords(3, 1000)]
    kw += [("$P1G", "3.3"), ("$TIMESTEP", "0.07")]
    s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert s.events.dtype == np.float32
    x = values.astype(np.float64)
    np.testing.assert_array_equal(s.events[:, 0], (x[:, 0] / 3.3).astype(np.float32))
    np.testing.assert_array_equal(s.events[:, 1], values[:, 1])
    np.testing.assert_array_equal(s.events[:, 2], (x[:, 2] * 0.07).astype(np.float32))


def test_reading_float32_makes_no_extra_copy(tmp_path):
    rng = np.random.default_rng(4)
    n, k = 200_000, 8
    events = rng.normal(size=(n, k)).astype(np.float32)
    chans = [Channel(i, "Time" if i == k - 1 else f"C{i}", range=1024) for i in range(k)]
    s = Sample(events, chans, keywords={"$TIMESTEP": "0.5"}, scaled=False)
    path = write_fcs(tmp_path / "big.fcs", s)
    tracemalloc.start()
    try:
        got = read_fcs(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.05 * events.nbytes + 2e6, (peak, events.nbytes)
    np.testing.assert_array_equal(got.events[:, :-1], events[:, :-1])
    np.testing.assert_array_equal(got.events[:, -1], (events[:, -1] * 0.5).astype(np.float32))


def test_integers_read_in_blocks_without_a_full_intermediate(tmp_path):
    n = 300_000
    values = np.random.default_rng(5).integers(0, 1024, (n, 4), dtype=np.uint16)
    s = Sample(values, [Channel(i, f"C{i}", range=1024) for i in range(4)], scaled=False)
    path = write_fcs(tmp_path / "ints.fcs", s, byteorder="big")
    tracemalloc.start()
    try:
        got = read_fcs(path, scale=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out_bytes = n * 4 * 8
    assert peak < out_bytes + 10e6, (peak, out_bytes)
    np.testing.assert_array_equal(got.events, values)


@pytest.mark.parametrize(
    ("key", "value", "names", "matrix"),
    [
        ("$SPILLOVER", "2,C1,C2,1,0.1,0.2,1", ("C1", "C2"), [[1, 0.1], [0.2, 1]]),
        ("$SPILL", " 2, C2 ,C1,\n1,0.5,\r\n0,1, ", ("C2", "C1"), [[1, 0.5], [0, 1]]),
        ("SPILL", "2,CD3,CD8,1,0,0,05,0,1,1,0", ("C1", "C2"), [[1, 0.05], [0.1, 1]]),
        ("$SPILLOVER", "2,1,2,1,0.3,0,1", ("C1", "C2"), [[1, 0.3], [0, 1]]),
    ],
    ids=["fcs31", "whitespace", "decimal-comma-and-PnS", "numbered"],
)
def test_spillover_spellings(tmp_path, key, value, names, matrix):
    values = np.zeros((1, 2), dtype="<f4")
    kw = [*float_keywords(2, 1), ("$P1S", "CD3"), ("$P2S", "CD8"), (key, value)]
    s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert s.spillover.channels == names and s.spillover.source == key
    np.testing.assert_array_equal(s.spillover.matrix, matrix)


@pytest.mark.parametrize(
    "value", ["x,C1,1", "2,C1,C2,1,0.1,0.2", "2,C1,C2,1,a,0,1", "2,C1,C1,1,0,0,1"]
)
def test_unreadable_spillover_warns_and_is_dropped(tmp_path, value):
    values = np.zeros((1, 2), dtype="<f4")
    kw = [*float_keywords(2, 1), ("$SPILLOVER", value)]
    with pytest.warns(FCSWarning, match=r"\$SPILLOVER=.* cannot be read .*ignored"):
        s = read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    assert s.spillover is None


# -- mmap and dtype ------------------------------------------------------------------------


def test_mmap_native_float(tmp_path):
    values = np.arange(40, dtype="<f4").reshape(10, 4)
    path = write(tmp_path, dataset(float_keywords(4, 10), values.tobytes()))
    s = read_fcs(path, mmap=True)
    assert isinstance(s.events, np.memmap) and not s.events.flags.writeable
    np.testing.assert_array_equal(s.events, values)
    # foreign byte order, scaling or another dtype: read into memory instead
    big = write(
        tmp_path,
        dataset(float_keywords(4, 10, byteord="4,3,2,1"), values.astype(">f4").tobytes()),
        "b.fcs",
    )
    assert not isinstance(read_fcs(big, mmap=True).events, np.memmap)
    assert not isinstance(read_fcs(path, mmap=True, dtype=np.float64).events, np.memmap)
    kw = [*float_keywords(4, 10), ("$P1G", "2")]
    gained = write(tmp_path, dataset(kw, values.tobytes()), "g.fcs")
    assert not isinstance(read_fcs(gained, mmap=True).events, np.memmap)
    assert isinstance(read_fcs(gained, mmap=True, scale=False).events, np.memmap)


@pytest.mark.parametrize("dtype", [np.int32, "f2", complex, "nonsense"])
def test_bad_dtype(tmp_path, dtype):
    path = write(tmp_path, dataset(float_keywords(1, 1), b"\0" * 4))
    with pytest.raises(FCSError, match=r"dtype=.* is not supported"):
        read_fcs(path, dtype=dtype)


# -- rejections ----------------------------------------------------------------------------


def _base(tot: int = 2, **kw) -> tuple[list, bytes]:
    values = np.arange(tot * 2, dtype="<u2").reshape(tot, 2)
    return int_keywords([16, 16], tot), values.tobytes()


def _replace(kw, key, value):
    return [(k, value if k == key else v) for k, v in kw]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda kw: _replace(kw, "$DATATYPE", "A"), r"\$DATATYPE=A .*not supported"),
        (lambda kw: _replace(kw, "$DATATYPE", "Q"), r"\$DATATYPE='Q' is not supported"),
        (lambda kw: [kv for kv in kw if kv[0] != "$DATATYPE"], r"\$DATATYPE is missing"),
        (lambda kw: _replace(kw, "$MODE", "C"), r"\$MODE='C' .*not supported"),
        (lambda kw: _replace(kw, "$PAR", "0"), r"\$PAR='0' is not valid"),
        (lambda kw: _replace(kw, "$PAR", "many"), r"\$PAR='many' is not valid"),
        (lambda kw: _replace(kw, "$PAR", "99999999"), r"\$PAR='99999999' but TEXT holds only"),
        (lambda kw: [kv for kv in kw if kv[0] != "$PAR"], r"\$PAR is missing"),
        (lambda kw: _replace(kw, "$TOT", "-3"), r"\$TOT='-3' is not valid"),
        (lambda kw: _replace(kw, "$TOT", "3"), r"does not hold \$TOT=3 events"),
        # $TOT = 0 over a DATA segment that holds events: not an empty sample
        (
            lambda kw: _replace(kw, "$TOT", "0"),
            r"\$TOT is 0 but the DATA segment .* holds 2 events",
        ),
        (lambda kw: _replace(kw, "$TOT", "10" * 9), r"does not hold \$TOT=1010101010"),
        (lambda kw: _replace(kw, "$P2B", "12"), r"\$P2B='12'.*whole bytes"),
        (lambda kw: _replace(kw, "$P2B", "128"), r"\$P2B='128'"),
        (lambda kw: _replace(kw, "$P2B", "x"), r"\$P2B='x' is not valid"),
        (lambda kw: [kv for kv in kw if kv[0] != "$P2B"], r"\$P2B is missing"),
        (lambda kw: _replace(kw, "$BYTEORD", "1,1"), r"\$BYTEORD='1,1' is not a byte order"),
        (lambda kw: [kv for kv in kw if kv[0] != "$BYTEORD"], r"\$BYTEORD is missing"),
        (lambda kw: _replace(kw, "$BYTEORD", "2,1,3,4"), r"orders 4 bytes but \$P1 stores 16-bit"),
    ],
)
def test_malformed_keywords_raise(tmp_path, change, pattern):
    kw, data = _base()
    path = write(tmp_path, dataset(change(kw), data))
    with pytest.raises(FCSError, match=pattern) as err:
        read_fcs(path)
    assert str(path) in str(err.value)


def test_float_with_wrong_bits(tmp_path):
    kw = _replace(float_keywords(1, 1), "$P1B", "16")
    with pytest.raises(FCSError, match=r"\$P1B='16' but data type F stores 32-bit"):
        read_fcs(write(tmp_path, dataset(kw, b"\0\0")))


def test_not_fcs_truncated_and_missing(tmp_path):
    # what the file looks like, never its bytes (it may be any file on the machine)
    with pytest.raises(
        FCSError, match=r"not an FCS file: it starts with text, not with 'FCS'"
    ) as err:
        read_fcs(write(tmp_path, b"oi21j08cn\n" + b"x" * 100, "c.fcs"))
    assert "oi21j08cn" not in str(err.value)
    with pytest.raises(FCSError, match="not an FCS file: it is empty"):
        read_fcs(write(tmp_path, b"", "empty.fcs"))
    with pytest.raises(FCSError, match=r"HEADER .* cut short"):
        read_fcs(write(tmp_path, b"FCS3.1    ", "short.fcs"))
    with pytest.raises(FCSError, match=r"HEADER bytes 26-33 \(DATA begin\) hold b'  12x456'"):
        read_fcs(write(tmp_path, b"FCS3.1    " + b"      58     100  12x456" + b" " * 25, "h.fcs"))
    with pytest.raises(FCSError, match="no such file"):
        read_fcs(tmp_path / "nope.fcs")
    with pytest.raises(FCSError, match="is a directory"):
        read_fcs(tmp_path)
    kw, data = _base()
    full = dataset(kw, data)
    for cut in (len(full) - 1, 200, 60):
        with pytest.raises(FCSError, match="truncated") as err:
            read_fcs(write(tmp_path, full[:cut], "t.fcs"))
        assert "t.fcs" in str(err.value)


def test_huge_tot_is_rejected_before_allocating(tmp_path):
    kw, data = _base()
    path = write(tmp_path, dataset(_replace(kw, "$TOT", str(10**15)), data))
    tracemalloc.start()
    try:
        with pytest.raises(FCSError, match=r"does not hold \$TOT=1000000000000000 events"):
            read_fcs(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1e6


def test_log_channel_without_range_cannot_be_scaled(tmp_path):
    kw, data = _base()
    kw = _replace(_replace(kw, "$P1E", "4,0"), "$P1R", "0")
    path = write(tmp_path, dataset(kw, data))
    with pytest.raises(FCSError, match=r"\$P1R='0'.*positive range.*scale=False"):
        read_fcs(path)
    assert read_fcs(path, scale=False).n_events == 2
    kw = _replace(_base()[0], "$P1E", "four")
    path = write(tmp_path, dataset(kw, data), "e.fcs")
    with pytest.raises(FCSError, match=r"\$P1E='four' is not valid; expected two numbers"):
        read_fcs(path)
    with pytest.warns(FCSWarning, match=r"\$P1E='four'.*read as linear"):
        read_fcs(path, scale=False)


# -- the command line ----------------------------------------------------------------------


INSPECT_FILES = [
    "flowkit/data/gate_ref/data1.fcs",
    "flowkit/data/multi_dataset_fcs/coulter.lmd",
    "github/whitews_FlowIO/data/fcs_files/G11.fcs",
    "github/taborlab_FlowCal/test/Data003.fcs",
]


@pytest.mark.corpus
@pytest.mark.parametrize("rel", INSPECT_FILES)
def test_inspect_command(rel, capsys):
    from cytokit.cli.app import run

    path = corpus_file(rel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FCSWarning)
        assert run(["inspect", str(path), "--stats"]) == 0
        text = capsys.readouterr().out
        assert run(["inspect", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
    s = read_quiet(path)
    assert f"{s.n_events:,} events" in text and s.channels[0].name in text
    assert info["events"] == s.n_events and len(info["channels"]) == s.n_channels
    assert [c["name"] for c in info["channels"]] == list(s.channel_names)
    # the time channel acquisition QC reads, and the run's span in seconds where known
    from cytokit.qc.channels import time_axis, time_column

    col = time_column(s)
    assert info["time"]["channel"] == (None if col is None else s.channels[col].name)
    if col is not None:
        assert info["time"]["seconds_per_unit"] == time_axis(s)
        span = float(s.events[-1, col]) - float(s.events[0, col])
        assert info["time"]["span"] == pytest.approx(span)
        assert "  time: " + s.channels[col].name in text


@pytest.mark.corpus
def test_inspect_numbers_data_sets_from_1_everywhere(capsys):
    """--dataset counts from 1; so do its error (a usage error) and the JSON."""
    from cytokit.cli.app import run

    path = corpus_file("flowkit/data/multi_dataset_fcs/coulter.lmd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FCSWarning)
        assert run(["inspect", str(path), "-d", "3"]) == 2
        assert "3: " in (err := capsys.readouterr().err) and "give 1 to 2" in err
        assert run(["inspect", str(path), "-d", "2", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert (info["dataset"], info["datasets"]) == (2, 2)
        assert run(["inspect", str(path), "-d", "2"]) == 0
        assert "data set 2 of 2" in capsys.readouterr().out


def test_inspect_stats_of_a_channel_without_a_finite_value_are_null_json(tmp_path, capsys):
    """--stats --json is strict JSON: a channel of NaN has null statistics, and every
    channel says how many values are not finite (the text shows it beside the channel)."""
    from cytokit.cli.app import run

    values = np.array([[1.0, np.nan], [2.0, np.nan], [np.inf, np.nan]], dtype="<f4")
    path = write(tmp_path, dataset(float_keywords(2, 3), values.tobytes()), "nan.fcs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run(["inspect", str(path), "--stats", "--json"]) == 0
        info = json.loads(capsys.readouterr().out, parse_constant=lambda c: 1 / 0)
        a, b = info["channels"]
        assert (a["max"], a["nonfinite"]) == (2.0, 1)
        assert (b["min"], b["median"], b["max"], b["nonfinite"]) == (None, None, None, 3)
        assert run(["inspect", str(path), "--stats"]) == 0
        assert "(3 not finite)" in capsys.readouterr().out


def test_inspect_rejects_a_corrupt_file_with_one_line(tmp_path, capsys):
    from cytokit.cli.app import run

    path = write(tmp_path, b"not an fcs file at all" * 5, "bad.fcs")
    assert run(["inspect", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not an FCS file" in err and "bad.fcs" in err


def test_sample_api_after_reading(tmp_path):
    values = np.arange(8, dtype="<f4").reshape(2, 4)
    kw = [*float_keywords(4, 2), ("$P3S", "CD3")]
    s = cytokit.read_fcs(write(tmp_path, dataset(kw, values.tobytes())))
    np.testing.assert_array_equal(s.column("CD3"), values[:, 2])
    assert s.name == "x.fcs" and s.path == tmp_path / "x.fcs" and s.version == "FCS3.1"


@pytest.mark.corpus
def test_inspect_reports_work_arounds_as_warnings(capsys):
    from cytokit.cli.app import run

    path = corpus_file("flowkit/data/noncompliant/data_stop_offset_discrepancy_example.fcs")
    assert run(["inspect", str(path), "--json"]) == 0
    out = capsys.readouterr()
    info = json.loads(out.out)
    assert any("TEXT was trusted" in w for w in info["warnings"])
    assert "cytokit: warning: " in out.err and "TEXT was trusted" in out.err


def test_a_sample_whose_channels_are_not_in_column_order_is_refused():
    """Lookups read each channel's `index`: channels reversed or taken as a subset from
    another sample read another column without a word (CD3 read as HLA-A2) or crashed."""
    import dataclasses

    from cytokit.sample import Sample

    s = read_fcs(Path(__file__).resolve().parents[1] / "sample_data" / "fcs" / "P01_day007.fcs")
    with pytest.raises(ValueError, match=r"has index \d+ but is column 0 .*index = place"):
        Sample(s.events[:, ::-1].copy(), channels=s.channels[::-1], keywords=s.keywords)
    pick = [s.channel_index("CD3"), s.channel_index("CD56")]
    with pytest.raises(ValueError, match="has index"):
        Sample(s.events[:, pick].copy(), channels=[s.channels[i] for i in pick])
    # renumbered, as the message says: each name reads its own column
    sub = Sample(
        s.events[:, pick].copy(),
        channels=[dataclasses.replace(s.channels[j], index=i) for i, j in enumerate(pick)],
    )
    np.testing.assert_array_equal(sub.column("CD3"), s.column("CD3"))
    np.testing.assert_array_equal(sub.column("CD56"), s.column("CD56"))
