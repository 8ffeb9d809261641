"""The exceptions cytokit raises on bad input.

Every message names the file (or object), the value at fault, what was expected
and, where there is one, the fix. Library code raises; only the CLI prints.
`did_you_mean` adds the few known names a misspelt one is close to.
"""

from __future__ import annotations

import errno

__all__ = [
    "DISK_FIXES",
    "AcquisitionQCError",
    "CytokitError",
    "FCSError",
    "GatingError",
    "MissingExtraError",
    "OutputError",
    "PanelError",
    "StudyError",
    "did_you_mean",
    "encoded_otherwise",
    "near_misses",
    "not_found",
    "offer",
    "prefixed",
]


#: What to do when a disk refuses a write, by errno: the machine's answer, the same from
#: every writer (a command's last line, an export's message).
DISK_FIXES = {
    errno.EROFS: "choose a folder on a writable file system",
    errno.ENOSPC: "free some space, or choose a folder on another disk",
    errno.EDQUOT: "free some space, or choose a folder on another disk",
}


class CytokitError(Exception):
    """Base class of every error cytokit raises on purpose."""


class FCSError(CytokitError, ValueError):
    """An FCS file is malformed, truncated, unsupported or not an FCS file."""


#: Why a file without events fails a batch (it is read, but nothing was acquired).
NO_EVENTS = (
    "the file holds no events ($TOT = 0): nothing was acquired to gate; acquire the sample "
    "again, or leave the file out"
)


class AcquisitionQCError(FCSError):
    """A file's acquisition failed QC (`cytokit.qc.screen`): too many events were measured
    badly to trust its counts. Its ``qc`` attribute is the `cytokit.qc.AcquisitionQC`."""


class MissingExtraError(CytokitError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the
    extra and the pip command that installs it."""


class PanelError(CytokitError, KeyError):
    """A marker or channel named in a panel is not in the sample."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class GatingError(CytokitError, ValueError):
    """A gating strategy is malformed or cannot be applied to a sample."""


class StudyError(CytokitError, ValueError):
    """A study folder, manifest or configuration is invalid."""


class OutputError(CytokitError, OSError):
    """An output cannot go where it is to be written (a symbolic link there into a folder
    that does not exist...); the message names the path and the fix. An OSError too, as a
    refused write always was."""


#: How alike (`difflib.SequenceMatcher.ratio`, case ignored) a name must be to a known one
#: for a message to suggest it; "CD56"/"CD16" (0.75) is not a near miss, "PE-Cy7A"/"PE-Cy7-A"
#: (0.93) is.
NEAR_MISS = 0.8
#: At most this many names are suggested.
MAX_SUGGESTIONS = 3


def _swapped(a: str, b: str) -> bool:
    """`a` and `b` differ by two neighbouring characters swapped ("CD56", "CD65")."""
    if len(a) != len(b) or len(a) < 3:
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return (
        len(diff) == 2
        and diff[1] == diff[0] + 1
        and a[diff[0]] == b[diff[1]]
        and a[diff[1]] == b[diff[0]]
    )


def near_misses(word: str, options) -> list[str]:
    """The few names of `options` that `word` is plausibly a typo of, closest first.

    A near miss differs only in case, by two neighbouring characters swapped
    ("CD65" for "CD56"), or is at least `NEAR_MISS` alike; of those,
    only the ones about as close as the closest are kept, at most
    `MAX_SUGGESTIONS`. `word` itself is never returned.
    """
    import difflib

    word = str(word)
    low = word.casefold()
    scored: dict[str, float] = {}
    for option in dict.fromkeys(str(o) for o in options):
        other = option.casefold()
        if option == word or not other:
            continue
        if other == low:
            score = 2.0
        elif _swapped(low, other):
            score = 1.5
        else:
            score = difflib.SequenceMatcher(None, low, other).ratio()
            if score < NEAR_MISS:
                continue
        scored[option] = score
    if not scored:
        return []
    best = max(scored.values())
    # names much further than the best one are noise beside it (long paths share prefixes)
    if best > 1.0:
        close = [o for o in scored if scored[o] > 1.0]
    else:
        close = [o for o in scored if 1.0 - scored[o] <= 2.0 * (1.0 - best) + 0.01]
    return sorted(close, key=lambda o: -scored[o])[:MAX_SUGGESTIONS]


def did_you_mean(word: str, options) -> str:
    """`` (did you mean 'X'?)`` naming `near_misses` of `word` in `options`, or ``""``.

    An option that is `word` written with other Unicode code points for the same
    letters (``é`` as one, or as ``e`` and an accent: what macOS names files with) is
    said as such, as the two print alike.
    """
    options = list(options)
    same = _encoded_alike(str(word), options)
    if same is not None:
        return (
            f" ({same!r} looks the same but its accented letters are encoded otherwise "
            "(Unicode NFC against NFD): type the name again in one of the two files)"
        )
    return offer(near_misses(word, options))


def _encoded_alike(name: str, options) -> str | None:
    """The first of `options` that is `name` with its letters encoded otherwise (the same
    text in Unicode normal form NFC, other code points), or None."""
    import unicodedata

    folded = unicodedata.normalize("NFC", name)
    return next(
        (o for o in options if o != name and unicodedata.normalize("NFC", str(o)) == folded),
        None,
    )


def not_found(where: str, path) -> str:
    """Why a file a list names (`where`: ``manifest.csv line 3 lists 'fcs/x.fcs'``) is not
    at `path`, with a file beside it whose name is encoded otherwise, and the fix."""
    slash = " (with / between folders, not \\)" if "\\" in where else ""
    return (
        f"not found: {where}{encoded_otherwise(path)}; correct the name there{slash} or copy "
        "the file in, then run again (the files finished already are not gated again)"
    )


def encoded_otherwise(path) -> str:
    """For a file that is not found: `` ('X' is there, ...)`` naming a file beside it whose
    name prints alike but encodes its accented letters otherwise (Unicode NFC against
    NFD, as macOS writes them), or ``""``."""
    import os

    folder, name = os.path.split(os.fspath(path))
    try:
        entries = sorted(os.listdir(folder or "."))
    except OSError:
        return ""
    entry = _encoded_alike(name, entries)
    if entry is None:
        return ""
    return (
        f" ({entry!r} is there: it looks the same but its accented letters are encoded "
        "otherwise (Unicode NFC against NFD); type the name again, or rename the file)"
    )


def offer(candidates) -> str:
    """`` (did you mean 'X', 'Y' or 'Z'?)`` naming `candidates`, or ``""`` for none."""
    names = [repr(c) for c in candidates]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f" (did you mean {listed}?)"


def prefixed(where, message) -> str:
    """`message` starting with `where` (a file): prefixed unless it already names it first
    (``"strategy.yaml, line 3: …"``), so a file is not named twice in a row."""
    text, place = str(message), str(where)
    return text if text.startswith(place) else f"{place}: {text}"
