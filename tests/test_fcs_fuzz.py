"""Fuzzing read_fcs: mutated files raise FCSError or read; nothing else escapes.

Small valid files (an FCS 3.1 float file from `write_fcs`, a hand-built FCS 2.0
integer file with empty values, a two-data-set file with supplemental TEXT and
8/16/24/32-bit parameters) are mutated at the byte level (flip, insert, delete,
truncate anywhere in HEADER, TEXT and DATA, rewrite HEADER offsets) and at the
keyword level (new values for $PAR, $TOT, $PnB, $BYTEORD, $DATATYPE, $NEXTDATA,
the offsets, $PnE, spillover...). Every call must return a consistent `Sample`
or raise `FCSError` (warnings are allowed), within bounds that only a hang or a
runaway allocation would break.
"""

from __future__ import annotations

import itertools
import re
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from fcs_synth import dataset, int_keywords, pack_ints
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cytokit import Channel, FCSError, Sample, Spillover
from cytokit.fcs import FCSWarning, read_fcs, read_fcs_datasets, write_fcs

# a hang or a runaway allocation, not a performance check
MAX_SECONDS = 10.0
MAX_BYTES = 64 << 20


def _specs() -> list[list[tuple[list, bytes, dict]]]:
    """Seed files as the keywords and data of each data set, to rebuild after edits."""
    rng = np.random.default_rng(0)
    floats = rng.normal(1000, 300, (20, 4)).astype("<f4")
    kw = [
        ("$BYTEORD", "1,2,3,4"), ("$DATATYPE", "F"), ("$MODE", "L"), ("$PAR", "4"),
        ("$TOT", "20"), ("$TIMESTEP", "0.01"), ("$SPILLOVER", "2,P2,P3,1,0.1,0.05,1"),
    ]  # fmt: skip
    for n, name in enumerate(["FSC-A", "P2", "P3", "Time"], 1):
        kw += [(f"$P{n}N", name), (f"$P{n}B", "32"), (f"$P{n}E", "0,0"), (f"$P{n}R", "262144")]
    kw += [("$P2S", "CD3"), ("$P3G", "2")]
    fcs31 = [(kw, floats.tobytes(), {})]

    ints = rng.integers(0, 1024, (15, 3), dtype=np.uint64)
    kw = int_keywords([16, 16, 16], 15, ranges=[1024] * 3, byteord="4,3,2,1")
    kw = [(k, "4,0" if k == "$P2E" else v) for k, v in kw] + [("EMPTY", ""), ("$P1G", "3.67")]
    fcs2 = [
        (
            kw,
            pack_ints(ints, [16] * 3, ">"),
            {"version": "FCS2.0", "delim": b"\\", "text_data": False},
        )
    ]

    bits = [8, 16, 24, 32]
    mixed = rng.integers(0, 200, (6, 4), dtype=np.uint64)
    stext = [("EXTRA", "1"), ("$SPILL", "1,C1,1")]
    two = [
        (int_keywords(bits, 6), pack_ints(mixed, bits), {"nextdata": True, "stext": stext}),
        (int_keywords([16, 16], 3), pack_ints(mixed[:3, :2], [16, 16]), {"nextdata": False}),
    ]
    return [fcs31, fcs2, two]


def _build(spec) -> bytes:
    return b"".join(dataset(kw, data, **opts) for kw, data, opts in spec)


def _seed_files(folder: Path) -> list[bytes]:
    rng = np.random.default_rng(0)
    events = rng.normal(1000, 300, (20, 4)).astype(np.float32)
    chans = [
        Channel(0, "FSC-A", range=262144),
        Channel(1, "FITC-A", "CD3", range=262144),
        Channel(2, "PE-A", "CD56", range=262144, gain=2.0),
        Channel(3, "Time", range=262144),
    ]
    spill = Spillover(("FITC-A", "PE-A"), np.array([[1.0, 0.1], [0.05, 1.0]]))
    s = Sample(events, chans, keywords={"$TIMESTEP": "0.01"}, spillover=spill, scaled=False)
    written = write_fcs(folder / "seed.fcs", s).read_bytes()
    return [written] + [_build(spec) for spec in _specs()]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    return _seed_files(tmp_path_factory.mktemp("seeds"))


_counter = itertools.count()
SPECS = _specs()


def _check(folder: Path, raw: bytes, options: dict) -> None:
    path = folder / f"m{next(_counter)}.fcs"
    path.write_bytes(raw)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                sets = read_fcs_datasets(path)
                assert sets and all(d.n_events >= 0 for d in sets)
            except FCSError:
                pass
            try:
                s = read_fcs(path, **options)
            except FCSError as exc:
                assert str(path) in str(exc)
            else:
                assert s.events.shape == (s.n_events, len(s.channels))
                np.asarray(s.events).sum()  # every byte of the result is readable
                del s
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, elapsed
    assert peak < MAX_BYTES, peak


options = st.fixed_dictionaries(
    {
        "dataset": st.sampled_from([0, 0, 1]),
        "scale": st.booleans(),
        "mmap": st.booleans(),
        "dtype": st.sampled_from([None, np.float32, np.float64]),
    }
)


@st.composite
def byte_mutations(draw, n_seeds: int):
    which = draw(st.integers(0, n_seeds - 1))
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "insert", "delete", "truncate", "header"]),
                st.floats(0, 1),
                st.binary(min_size=1, max_size=8),
                st.integers(0, 5),
            ),
            min_size=1,
            max_size=4,
        )
    )
    return which, ops


def _apply_bytes(raw: bytes, ops) -> bytes:
    buf = bytearray(raw)
    for op, where, blob, k in ops:
        i = int(where * max(0, len(buf) - 1))
        if op == "flip" and buf:
            buf[i] ^= blob[0] or 0xFF
        elif op == "insert":
            buf[i:i] = blob
        elif op == "delete":
            del buf[i : i + len(blob) * (k + 1)]
        elif op == "truncate":
            del buf[i:]
        elif op == "header" and len(buf) >= 58:
            field = f"{int.from_bytes(blob, 'little') % 10**8:8d}".encode()
            if blob[0] % 5 == 0:
                field = b" " * 8
            elif blob[0] % 5 == 1:
                field = blob[:8].ljust(8, b" ")
            buf[10 + 8 * k : 18 + 8 * k] = field
    return bytes(buf)


KEYS = [
    "$PAR", "$TOT", "$P1B", "$P2B", "$P3B", "$P4B", "$BYTEORD", "$DATATYPE", "$NEXTDATA",
    "$BEGINDATA", "$ENDDATA", "$BEGINSTEXT", "$ENDSTEXT", "$P1R", "$P2R", "$P2E", "$P1G",
    "$MODE", "$SPILLOVER", "$SPILL", "$TIMESTEP", "$P1N", "$P4N", "$P2DATATYPE",
]  # fmt: skip
VALUES = [
    "0", "1", "2", "3", "-1", "7", "8", "12", "16", "24", "32", "40", "64", "128",
    "99999999", "999999999999999999", "9" * 5000, "1e308", "nan", "", " ", "x",
    "1,2", "2,1", "1,2,3,4", "4,3,2,1", "3,4,1,2", "1,1,1,1", "1,2,3,4,5,6,7,8,9",
    "I", "F", "D", "A", "C", "4,0", "0,0", "4", "-4,1", "2,C1,C2,1,0,0,1", "3,a,b",
    "Time", "FSC-A",
]  # fmt: skip


OFFSET_KEYS = {"$BEGINDATA", "$ENDDATA", "$NEXTDATA", "$BEGINSTEXT", "$ENDSTEXT"}


@st.composite
def keyword_mutations(draw):
    which = draw(st.integers(0, len(SPECS) - 1))
    edits = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KEYS),
                st.sampled_from(VALUES),
                st.sampled_from(["replace", "repeat"]),
                st.integers(0, len(SPECS[which]) - 1),
            ),
            min_size=1,
            max_size=3,
        )
    )
    return which, edits


def _edit_pairs(pairs, key, value, how):
    """Replace `key`'s value (or add it), or repeat it with the new value after it."""
    out, done = [], False
    for k, v in pairs:
        if k == key and not done:
            done = True
            out += [(k, v), (k, value)] if how == "repeat" else [(k, value)]
        else:
            out.append((k, v))
    return out if done else [*out, (key, value)]


def _edit_raw(raw: bytes, key: str, value: str) -> bytes:
    """Rewrite an offset keyword in place: everything after it shifts."""
    d = raw[58:59] or b"/"
    pattern = re.escape(d + key.encode() + d) + rb"[^" + re.escape(d) + rb"]*"
    m = re.search(pattern, raw)
    if m is None:
        return raw
    return raw[: m.start()] + d + key.encode() + d + value.encode() + raw[m.end() :]


def _apply_keywords(which: int, edits) -> bytes:
    """Rebuild the seed with edited keywords (offsets laid out afresh), then edit offsets."""
    spec = [(list(kw), data, opts) for kw, data, opts in SPECS[which]]
    for key, value, how, part in edits:
        if key not in OFFSET_KEYS:
            kw, data, opts = spec[part]
            spec[part] = (_edit_pairs(kw, key, value, how), data, opts)
    raw = _build(spec)
    for key, value, _, _ in edits:
        if key in OFFSET_KEYS:
            raw = _edit_raw(raw, key, value)
    return raw


_settings = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_settings
@given(mutation=byte_mutations(4), opts=options)
def test_byte_mutations_raise_only_fcserror(tmp_path, seeds, mutation, opts):
    which, ops = mutation
    _check(tmp_path, _apply_bytes(seeds[which], ops), opts)


@_settings
@given(mutation=keyword_mutations(), opts=options)
def test_keyword_mutations_raise_only_fcserror(tmp_path, mutation, opts):
    which, edits = mutation
    _check(tmp_path, _apply_keywords(which, edits), opts)


def test_seed_files_are_valid(tmp_path, seeds):
    for i, raw in enumerate(seeds):
        path = tmp_path / f"s{i}.fcs"
        path.write_bytes(raw)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            s = read_fcs(path, dataset=0)  # s3 holds two: read as its first, it says so
        assert s.n_events > 0
    assert len(read_fcs_datasets(tmp_path / "s3.fcs")) == 2
    with pytest.warns(FCSWarning, match="holds more than one data set and only the first"):
        read_fcs(tmp_path / "s3.fcs")
