"""Hand-built FCS data sets for reader tests: every byte of HEADER, TEXT and DATA chosen.

`dataset` lays out HEADER | TEXT | supplemental TEXT | DATA with the offsets
filled in (fixed-width numbers, so TEXT's length does not depend on them), and
lets a test break any of them: blank or zero HEADER offsets, an off-by-one
``$ENDDATA``, offsets that disagree, a TEXT without its final delimiter.
"""

from __future__ import annotations

import numpy as np

HEADER = 58
_W = 10  # digits of the offsets written into TEXT


def _b(x: str | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8")


def text_segment(pairs, delim: bytes = b"/", *, escape: bool = False, final: bool = True) -> bytes:
    """``d k d v d k d v d`` with FCS 3.1 escaping when `escape` (empty values stay empty)."""
    out = [delim]
    for i, (k, v) in enumerate(pairs):
        k, v = _b(k), _b(v)
        if escape:
            k, v = k.replace(delim, delim * 2), v.replace(delim, delim * 2)
        last = i == len(pairs) - 1
        out += [k, delim, v] + ([] if last and not final else [delim])
    return b"".join(out)


def dataset(
    pairs,
    data: bytes = b"",
    *,
    version: str = "FCS3.1",
    delim: bytes = b"/",
    escape: bool = False,
    final_delim: bool = True,
    header_data="auto",
    text_data=True,
    end_adjust: int = 0,
    stext=None,
    nextdata: bool | None = None,
    gap: int = 0,
    tail: bytes = b"",
) -> bytes:
    """One data set (HEADER, TEXT, optional supplemental TEXT, DATA, then `tail`).

    Parameters
    ----------
    pairs : list of (key, value)
        Keywords besides the offsets, in order (str or bytes).
    header_data : "auto", "zero", "blank" or (first, last)
        The HEADER's DATA offsets: the real ones, zeros, blanks, or given.
    text_data : bool or (first, last)
        Write ``$BEGINDATA``/``$ENDDATA`` (the real ones, or those given); False: none.
    end_adjust : int
        Added to the real last DATA byte (``+1``: the common off-by-one).
    stext : list of (key, value), optional
        A supplemental TEXT segment (with ``$BEGINSTEXT``/``$ENDSTEXT``).
    nextdata : bool, optional
        Write ``$NEXTDATA``: True points right after this data set, False writes 0.
    gap : int
        Zero bytes between the TEXT segments and DATA.
    """
    pairs = list(pairs)

    def build(next_value: int) -> bytes:
        extra = []
        if text_data is not False:
            extra += [("$BEGINDATA", "B" * _W), ("$ENDDATA", "E" * _W)]
        if stext is not None:
            extra += [("$BEGINSTEXT", "S" * _W), ("$ENDSTEXT", "T" * _W)]
        if nextdata is not None:
            extra += [("$NEXTDATA", f"{next_value:0{_W}d}")]
        text = text_segment(extra + pairs, delim, escape=escape, final=final_delim)
        stext_raw = text_segment(stext, delim) if stext is not None else b""
        t0, t1 = HEADER, HEADER + len(text) - 1
        s0 = t1 + 1
        d0 = s0 + len(stext_raw) + gap
        d1 = d0 + len(data) - 1 + end_adjust
        if text_data is True:
            tb, te = d0, d1
        elif text_data is not False:
            tb, te = text_data
        if text_data is not False:
            text = text.replace(b"B" * _W, f"{tb:0{_W}d}".encode()).replace(
                b"E" * _W, f"{te:0{_W}d}".encode()
            )
        if stext is not None:
            s1 = s0 + len(stext_raw) - 1
            text = text.replace(b"S" * _W, f"{s0:0{_W}d}".encode()).replace(
                b"T" * _W, f"{s1:0{_W}d}".encode()
            )
        if header_data == "auto":
            hd = (f"{d0:8d}", f"{d1:8d}")
        elif header_data == "zero":
            hd = (f"{0:8d}", f"{0:8d}")
        elif header_data == "blank":
            hd = (" " * 8, " " * 8)
        else:
            hd = (f"{header_data[0]:8d}", f"{header_data[1]:8d}")
        head = f"{version}    {t0:8d}{t1:8d}{hd[0]}{hd[1]}{0:8d}{0:8d}".encode("ascii")
        assert len(head) == HEADER
        return head + text + stext_raw + b"\0" * gap + data + tail

    first = build(0)
    return build(len(first)) if nextdata else first


def float_keywords(n_par: int, tot: int, *, datatype: str = "F", byteord: str = "1,2,3,4"):
    bits = {"F": 32, "D": 64}[datatype]
    kw = [
        ("$BYTEORD", byteord),
        ("$DATATYPE", datatype),
        ("$MODE", "L"),
        ("$PAR", str(n_par)),
        ("$TOT", str(tot)),
    ]
    for n in range(1, n_par + 1):
        kw += [
            (f"$P{n}N", f"C{n}"),
            (f"$P{n}B", str(bits)),
            (f"$P{n}E", "0,0"),
            (f"$P{n}R", "1024"),
        ]
    return kw


def int_keywords(bits, tot: int, *, ranges=None, byteord: str = "1,2,3,4", names=None):
    """Keywords of an I data set with the given ``$PnB`` per parameter."""
    kw = [
        ("$BYTEORD", byteord),
        ("$DATATYPE", "I"),
        ("$MODE", "L"),
        ("$PAR", str(len(bits))),
        ("$TOT", str(tot)),
    ]
    for i, b in enumerate(bits):
        n = i + 1
        r = ranges[i] if ranges is not None else 2**b
        name = names[i] if names is not None else f"C{n}"
        kw += [(f"$P{n}N", name), (f"$P{n}B", str(b)), (f"$P{n}E", "0,0"), (f"$P{n}R", str(r))]
    return kw


def pack_ints(values: np.ndarray, bits, order: str = "<") -> bytes:
    """Rows of unsigned integers, each column `bits[j]` wide (any multiple of 8), packed."""
    values = np.asarray(values, dtype=np.uint64)
    out = bytearray()
    for row in values:
        for v, b in zip(row, bits, strict=True):
            out += int(v).to_bytes(b // 8, "little" if order == "<" else "big")
    return bytes(out)
