"""Output folders, checked before any work so that a bad ``--out`` fails at once, in one line.

A batch can run for hours before it writes its tables; an output folder that
is a file, or a table name taken by a folder, must be found before the first
file is gated, not at the last step as an ``IsADirectoryError``.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cytokit._io import remove_temporaries
from cytokit.errors import DISK_FIXES, CytokitError

__all__ = ["output_folder", "write_refusal", "writing_into"]


def not_under_a_file(path: str | os.PathLike) -> None:
    """Refuse `path` as an output folder when it, or the nearest of its parents that
    exists, is a file (`CytokitError` naming it and the fix); nothing is created."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        inside = "" if existing == path else f" (it would hold the output folder {path})"
        raise CytokitError(
            f"{existing}: is a file, not a folder{inside}; give as output folder a new folder or "
            "one cytokit wrote"
        )


#: Files by which a folder shows it holds cytokit's results (the store, the run log, the
#: tables' index, a report's build stamp): one of them lets a rerun replace the tables or
#: the report in it.
RESULTS_MARKS = (
    "results.sqlite",
    "runlog.jsonl",
    "tables.json",
    "plots/build.json",
    "plots/manifest.json",  # a report an older cytokit wrote into a folder of its own
    "plots/digests.json",
)

#: Entries a system puts in a folder (a drive's root, a share Windows Explorer opened), which
#: do not make it a folder of the user's files.
SYSTEM_ENTRIES = ("lost+found", "Thumbs.db", "desktop.ini", "Icon\r")


def output_folder(
    path: str | os.PathLike,
    *,
    files: Iterable[str] = (),
    folders: Iterable[str] = (),
    results: bool = True,
) -> Path:
    """Create `path` (with its parents) as an output folder and check the names to be written.

    Parameters
    ----------
    path : path
        The output folder: missing, or an existing folder.
    files : iterable of str
        Names of files that will be written into it: none may be a folder.
    folders : iterable of str
        Names of folders that will be written into it: none may be a file.
    results : bool
        `path` is a results folder: one of `files` that exists already may be
        replaced only where the folder holds cytokit's results (`RESULTS_MARKS`),
        so that ``--out`` naming a folder of the user's own files (its own
        ``counts.csv``) is refused rather than written over; and a folder
        without them must hold nothing but hidden files (the results are not
        mixed with other files, which `cytokit verify` would call added).

    Returns
    -------
    Path
        `path`, which now exists.

    Raises
    ------
    CytokitError
        `path` is empty (an unset variable in a script would write into the
        current folder), `path` or one of its parents is a file, one of `files`
        is a folder or one of `folders` is a file, or (`results`) one of
        `files` exists in a folder that holds no cytokit results; the message
        names it and the fix.
    """
    if not os.fspath(path).strip():
        raise CytokitError(
            "the output folder is an empty name (an unset variable?); give a folder, "
            "e.g. --out results"
        )
    path = Path(path)
    not_under_a_file(path)
    if path.is_symlink() and not path.exists():
        # mkdir would say "File exists" of a link whose target is missing
        raise CytokitError(
            f"{path}: is a symbolic link to {os.readlink(path)}, which does not exist; "
            "create that folder, remove the link, or give another output folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file appeared meanwhile; a place no folder can be made
        raise CytokitError(
            f"{path}: cannot be created as a folder ({exc.strerror}); give another output folder"
        ) from None
    for name in files:
        if (path / name).is_dir():
            raise CytokitError(
                f"{path / name}: is a folder, where cytokit writes its file {name}; move or "
                "delete that folder, or give another output folder"
            )
    if results and not any((path / mark).is_file() for mark in RESULTS_MARKS):
        theirs = [name for name in files if (path / name).is_file()]
        if theirs:
            raise CytokitError(
                f"{path / theirs[0]}: exists, and {path} holds no cytokit results (no "
                f"{RESULTS_MARKS[0]} or {RESULTS_MARKS[1]}), so it would be replaced; give "
                "another output folder (a new or empty one)"
            )
        # a folder of other things: the results would be mixed with them, and `cytokit
        # verify` could not tell the run's files from the rest (hidden files aside)
        other = sorted(
            e.name
            for e in os.scandir(path)
            if not e.name.startswith(".")
            and e.name not in SYSTEM_ENTRIES
            and not (e.is_dir(follow_symlinks=False) and not any(os.scandir(e.path)))
        )
        if other:
            if len(other) > 3:
                shown = f"{', '.join(other[:2])} and {len(other) - 2} more"
            else:
                shown = " and ".join(
                    [", ".join(other[:-1]), other[-1]] if len(other) > 1 else other
                )
            raise CytokitError(
                f"{path}: holds {shown}, but no cytokit results; give a new or empty output "
                "folder (or one cytokit wrote), so that the results are not mixed with other files"
            )
    for name in folders:
        if (path / name).exists() and not (path / name).is_dir():
            raise CytokitError(
                f"{path / name}: is a file, where cytokit writes its folder {name}/; move or "
                "delete that file, or give another output folder"
            )
    return path


def not_a_results_file(results: str | os.PathLike, out: str | os.PathLike, suffix: str) -> None:
    """Refuse to write an export `out` over a file of the folder `results` (a table, the
    store, the report): only a file with the export's own `suffix` there may be replaced;
    and refuse an `out` that is a folder, lies under a file, or would be written into a
    folder this process may not write (the export's own write would fail after the
    files were gated again).

    Raises
    ------
    CytokitError
        Naming `out`, the file of the results folder it is or the folder that cannot
        hold it, and the fix.
    """
    out, results = Path(out), Path(results)
    # a place the export cannot be written is said before the files are gated again
    if out.is_dir():
        raise CytokitError(
            f"{out}: is a folder; give the export's file name, e.g. {out / ('export' + suffix)}"
        )
    existing = next((p for p in out.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CytokitError(
            f"{existing}: is a file, not a folder (it would hold {out}); give another path"
        )
    # a link is written through (`cytokit._io.replaced`): its target's folder must be writable
    target = Path(os.path.realpath(out)) if out.is_symlink() else out
    folder = next((p for p in target.parents if p.exists()), None)
    if folder is not None and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise CytokitError(
            f"{out}: cannot be written ({folder} is not writable); {_writable_fix(folder)}"
        )
    if not out.is_file() or out.suffix.lower() == suffix:
        return
    where, inside = out.resolve(), results.resolve()
    if where.is_relative_to(inside):
        raise CytokitError(
            f"{out}: is a file of the results folder {results} ({where.relative_to(inside)}); "
            f"the export would replace it: give a {suffix} name, e.g. {out.with_suffix(suffix)}"
        )


def _writable_fix(folder: Path) -> str:
    return f"choose a writable folder, or change the permissions of {folder}"


def write_refusal(out: str | os.PathLike, exc: OSError, what: str) -> str:
    """`exc`, raised writing `what` (e.g. "the workspace") to `out`, as one sentence naming
    `out` and the fix.

    An atomic write goes through a hidden temporary file beside `out`, which the
    system names when it refuses; the user gave `out`, so `out` is named.
    """
    out = Path(out)
    text = " ".join(str(exc).split())
    if exc.errno is None and text.startswith(str(out)):
        return text  # cytokit's own message, which names the path and the fix
    why = exc.strerror or text
    if exc.errno in (errno.EACCES, errno.EPERM):
        # the folder refused is the nearest that exists (a missing one could not be made)
        fix = _writable_fix(next((p for p in out.parents if p.is_dir()), out.parent))
    else:
        fix = DISK_FIXES.get(exc.errno, "give another path")
    return f"{out}: cannot write {what} ({why}); {fix}"


#: The folders each thread holds (`writing_into`): a command holding its folder for its
#: whole run (tables, then the report) calls code that holds it again.
_HELD = threading.local()


@contextmanager
def writing_into(folder: Path, name: str = "results.sqlite") -> Iterator[None]:
    """Hold `folder` for one run writing into it: a second run (another terminal's
    `analyze`, a `gate` or `report` into the same folder) is refused at once instead of
    writing beside it and leaving a folder of two runs' files.

    The lock is an advisory ``flock`` on the folder's results store (`name`,
    created empty when missing: an empty file is an empty SQLite database),
    separate from SQLite's own locks; it goes with the process, however it ends.
    Held again by the same thread it is taken once. Where ``fcntl`` is missing
    (Windows), the store cannot be created (a read-only folder: the store's own
    opening says so) or the file system has no such locks (NFS without lockd),
    nothing is held.

    Raises
    ------
    CytokitError
        Another process, or another thread, holds the folder.
    """
    key = os.path.realpath(folder)
    held = getattr(_HELD, "folders", None)
    if held is None:
        held = _HELD.folders = set()
    if key in held:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(Path(folder) / name, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = CytokitError(
                f"{folder}: another cytokit run is writing into this folder (its {name} is "
                "held); wait for it to finish, or give another output folder"
            )
            busy.wrote_nothing = True  # what changed in the folder is the other run's
            raise busy from None
        except OSError:  # no locks on this file system: run as before there were any
            pass
        else:
            # held: no other run writes here, so temporaries are a killed run's leftovers
            remove_temporaries(folder)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)
