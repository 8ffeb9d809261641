"""Hostile FCS files: bounded work, documented limits, no waiting on FIFOs, no echoed bytes.

* A ``$NEXTDATA`` chain whose data sets overlap (each TEXT reaching to the end
  of the file, the next HEADER a few bytes on) once cost time and memory
  quadratic in the file size; the bytes the reader asks for are now counted
  and must stay within the file size.
* The limits of `cytokit.fcs.layout` (TEXT per data set, TEXT per file, data
  sets per file) are tested at the bound and one past it; the corpus shows
  how far real files are from them.
* A FIFO given as an FCS file is refused at once (run in a subprocess with a
  timeout, so a regression fails instead of hanging the suite).
* A file that is not an FCS file is described, never quoted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import pytest
from fcs_synth import dataset, float_keywords

from cytokit.cli.app import run
from cytokit.errors import FCSError
from cytokit.fcs import FCSWarning, read_fcs, read_fcs_datasets
from cytokit.fcs.layout import MAX_DATASETS, MAX_FILE_TEXT_BYTES, MAX_TEXT_BYTES, read_datasets
from cytokit.fcs.problems import MAX_WARNINGS, Notes
from cytokit.fcs.text import parse_header

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
ONE_EVENT = b"\0\0\x80\x3f"  # 1.0 as a little-endian float32
# keywords of a one-parameter float data set, completed by the tail of the chain below
_TAIL = b"$DATATYPE/F/$PAR/1/$P1B/32/$P1N/A/$P1R/1024/$TOT/1/$BYTEORD/1,2,3,4/$MODE/L/"


def overlapping_chain(n: int) -> bytes:
    """`n` data sets, each starting inside the previous one's TEXT.

    Data set k starts at byte k * 85: its HEADER, then ``/$NEXTDATA/85/Jk/``
    whose value is the next data set's HEADER. Every TEXT ends at the same
    byte, at the end of the file, and shares the one event after it. Read
    naively, each link parses the rest of the file again and keeps a keyword
    per later link.
    """
    link = b"/$NEXTDATA/%010d/J%06d/"
    step = 58 + len(link % (0, 0))
    end = n * step - len(link % (0, 0)) + len(_TAIL)  # last TEXT byte, from the start
    out = bytearray()
    for k in range(n):
        base = k * step
        first = end + 1 - base
        offsets = (58, end - base, first, first + len(ONE_EVENT) - 1, 0, 0)
        out += b"FCS3.1    " + b"".join(b"%8d" % x for x in offsets)
        if k < n - 1:
            out += link % (step, k)
    out += b"/" + _TAIL
    assert len(out) - 1 == end
    return bytes(out + ONE_EVENT)


def chain(n: int, *, repeat_keyword: bool = True) -> bytes:
    """`n` well-formed one-event data sets linked by ``$NEXTDATA``, each repeating a keyword."""
    kw = float_keywords(1, 1) + ([("$CYT", "a"), ("$cyt", "b")] if repeat_keyword else [])
    return dataset(kw, ONE_EVENT, nextdata=True) * (n - 1) + dataset(kw, ONE_EVENT)


def with_text_bytes(total: int, *, stext: bool = False, nextdata: bool | None = None) -> bytes:
    """A one-event data set whose TEXT (primary, or primary + supplemental) is `total` bytes."""

    def build(fill: int) -> bytes:
        pad = [("FILL", "x" * fill)]
        kw = float_keywords(1, 1)
        if stext:
            return dataset(kw, ONE_EVENT, stext=pad, nextdata=nextdata)
        return dataset(kw + pad, ONE_EVENT, nextdata=nextdata)

    def text_bytes(raw: bytes) -> int:
        t0, t1 = int(raw[10:18]), int(raw[18:26])
        data0 = int(raw[26:34])
        return data0 - t0 if stext else t1 - t0 + 1  # the supplemental TEXT runs up to DATA

    small = build(1)
    raw = build(1 + total - text_bytes(small))
    assert text_bytes(raw) == total
    return raw


def write(tmp_path: Path, raw: bytes, name: str = "x.fcs") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def test_overlapping_nextdata_chain_is_read_in_linear_work(tmp_path):
    raw = overlapping_chain(1000)
    path = write(tmp_path, raw)
    asked = 0

    def read(offset: int, n: int) -> bytes:
        nonlocal asked
        asked += min(n, len(raw) - offset)
        return raw[offset : offset + n]

    notes = Notes(str(path))
    sets = read_datasets(read, len(raw), notes)
    # each byte is parsed once: the link into data set 1's own TEXT ends the list
    assert len(sets) == 1 and asked <= len(raw) + 58
    assert any("points into its own TEXT" in m for m in notes.items)

    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sets = read_fcs_datasets(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * len(raw), (peak, len(raw))  # quadratic: hundreds of MB
    assert 1 <= len(caught) <= MAX_WARNINGS + 1
    with pytest.warns(FCSWarning, match="repeats keyword"):  # data set 0 needs no link
        assert len(sets) == 1 and read_fcs(path).n_events == 1


def test_many_warnings_collapse_and_the_longest_chain_is_read(tmp_path, capsys):
    path = write(tmp_path, chain(MAX_DATASETS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sets = read_fcs_datasets(path)
    assert len(sets) == MAX_DATASETS
    messages = [str(w.message) for w in caught if issubclass(w.category, FCSWarning)]
    assert len(messages) == MAX_WARNINGS + 1
    assert all("repeats keyword(s) '$cyt'" in m for m in messages[:-1])
    assert (
        messages[-1] == f"{path}: and {MAX_DATASETS - MAX_WARNINGS} more warning(s) about this file"
    )
    # cytokit inspect prints the same few lines, not one per data set
    assert run(["inspect", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.count("cytokit: warning:") == MAX_WARNINGS + 1, err
    assert f"and {MAX_DATASETS - MAX_WARNINGS} more warning(s)" in err


def test_longer_nextdata_chain_is_refused(tmp_path):
    path = write(tmp_path, chain(MAX_DATASETS + 1, repeat_keyword=False))
    expect = rf"^{path}: more than {MAX_DATASETS:,} data sets are chained with \$NEXTDATA"
    with pytest.raises(FCSError, match=expect) as err:
        read_fcs_datasets(path)
    assert "\n" not in str(err.value)
    with pytest.raises(FCSError, match=expect):
        read_fcs(path, dataset=MAX_DATASETS)
    assert read_fcs(path).n_events == 1  # the first data set does not follow the chain


@pytest.mark.parametrize("stext", [False, True], ids=["primary", "primary+supplemental"])
def test_text_of_one_data_set_is_bounded(tmp_path, stext):
    at_limit = write(tmp_path, with_text_bytes(MAX_TEXT_BYTES, stext=stext), "limit.fcs")
    assert read_fcs(at_limit).keywords["FILL"].startswith("xxx")
    over = write(tmp_path, with_text_bytes(MAX_TEXT_BYTES + 1, stext=stext), "over.fcs")
    with pytest.raises(FCSError, match=r"holds? .*cytokit reads at most 4 MiB of TEXT per") as err:
        read_fcs(over)
    assert str(err.value).startswith(f"{over}: its TEXT segments hold {MAX_TEXT_BYTES + 1:,} bytes")
    assert "\n" not in str(err.value)


def test_text_of_all_data_sets_is_bounded(tmp_path):
    each = MAX_TEXT_BYTES - 4096
    n_fit = MAX_FILE_TEXT_BYTES // each  # these fit, one more does not
    one = with_text_bytes(each, nextdata=True)
    path = write(tmp_path, one * n_fit + with_text_bytes(each))
    with pytest.raises(
        FCSError, match=rf"data set {n_fit + 1}, at byte {n_fit * len(one)}\): "
    ) as err:
        read_fcs_datasets(path)
    assert f"more than {MAX_FILE_TEXT_BYTES >> 20} MiB of TEXT" in str(err.value)
    assert "\n" not in str(err.value)
    assert (
        len(read_fcs_datasets(write(tmp_path, one * (n_fit - 1) + with_text_bytes(each), "y.fcs")))
        == n_fit
    )
    assert read_fcs(path, dataset=n_fit - 1).n_events == 1


@pytest.mark.corpus
def test_real_files_are_far_below_the_limits():
    files = sorted(
        p for p in CORPUS.rglob("*") if p.suffix.lower() in (".fcs", ".lmd") and p.is_file()
    )
    if not files:
        pytest.skip(f"no FCS files in {CORPUS}")
    most_text, most_sets = 0, 0
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sets = read_fcs_datasets(path)
        except FCSError:
            continue  # the corpus holds a few files that are not FCS at all
        most_sets = max(most_sets, len(sets))
        for ds in sets:
            size = (ds.text[1] - ds.text[0] + 1) + (ds.stext[1] - ds.stext[0] + 1)
            most_text = max(most_text, size)
    assert 0 < most_text * 100 < MAX_TEXT_BYTES
    assert 0 < most_sets * 100 < MAX_DATASETS


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter; a hang fails the test after two minutes."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.fcs"
    os.mkfifo(fifo)
    code = (
        "import sys\n"
        "from cytokit.fcs import read_fcs, read_fcs_datasets\n"
        "for f in (read_fcs, read_fcs_datasets):\n"
        "    try:\n"
        "        f(sys.argv[1])\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "from cytokit.cli.app import run\n"
        "sys.exit(run(['inspect', sys.argv[1]]))\n"
    )
    done = _run(code, str(fifo))
    expect = f"{fifo}: is a FIFO (named pipe), not a regular file; give the path of an FCS file"
    assert done.stdout.splitlines() == [f"FCSError {expect}"] * 2
    assert done.returncode == 1 and done.stderr.strip() == f"cytokit: error: {expect}"


@pytest.mark.parametrize(
    "start, looks",
    [
        (b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1", "text"),
        ("café,CD3,CD56\n".encode() * 5, "text"),
        (b'<?xml version="1.0"?><gating:Gating-ML', "text that looks like XML or HTML"),
        (b"PK\x03\x04\x14\x00\x06\x00secret.xlsx", "a ZIP archive (.zip, .xlsx, .docx...)"),
        (b"\x7fELF\x02\x01\x01\x00secret-binary", "binary data"),
    ],
)
def test_a_file_that_is_not_fcs_is_described_not_quoted(tmp_path, start, looks):
    path = write(tmp_path, start + b"\n" * 100)
    with pytest.raises(FCSError) as err:
        read_fcs(path)
    assert str(err.value) == (
        f"{path}: not an FCS file: it starts with {looks}, not with 'FCS' and a version "
        "such as 'FCS3.1'"
    )
    # a data set further on, reached by $NEXTDATA, is described the same way
    with pytest.raises(FCSError, match=rf"the data set at byte 300 starts with {looks[:4]}"):
        parse_header((start + b"\n" * 100)[:58], Notes(str(path)), 300)
