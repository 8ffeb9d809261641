"""Matching a workspace's samples to FCS files on this machine.

A workspace records where FlowJo read each file (often another computer's
path) and some of its keywords. Files are matched:

1. by the sample's link (``<DataSet uri>``, percent-decoded; a relative one
   read from the workspace's folder) when it leads to the file itself, then by
   a sample name that is a path (``fcs/d7/x.fcs``, as ``cytokit export-wsp``
   names files that share a base name) ending the file's path: two files of
   the same name in different folders are told apart where the workspace says
   which is which;
2. failing that, without trusting folders, by file name: the name in the
   sample's URI, then the sample's name in FlowJo (exact, then ignoring case);
3. failing that, by the ``$FIL`` keyword in the file's TEXT;
4. when several files (or samples) are candidates, by the event count
   (``$TOT``), and then by ``$FIL``.

Keywords are read (without the events) only for the files that need them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

__all__ = ["FileMatches", "find_sample", "match_files"]


@dataclass
class FileMatches:
    """The outcome of `Workspace.match_files`.

    Attributes
    ----------
    matched : dict of str to Path
        Sample id → its file.
    how : dict of str to str
        Sample id → what matched it (``"DataSet uri"``, ``"sample name"``,
        ``"file name"``, ``"$FIL"``, with ``" + $TOT"`` when the event count
        decided).
    missing : list of str
        Ids of samples no file matches.
    ambiguous : dict of str to list of Path
        Sample id → the files it could be (none chosen).
    unused : list of Path
        Files no sample took.
    unreadable : dict of Path to str
        Files whose keywords could not be read, with the reason.
    names : dict of str to str
        Sample id → sample name (for the report).
    """

    matched: dict[str, Path] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[Path]] = field(default_factory=dict)
    unused: list[Path] = field(default_factory=list)
    unreadable: dict[Path, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every sample has exactly one file."""
        return not self.missing and not self.ambiguous

    def report(self) -> str:
        """A readable summary: matched, ambiguous, missing and unused files."""
        lines = [f"{len(self.matched)} of {len(self.names)} samples matched to files"]
        for sid, p in self.matched.items():
            lines.append(f"  {self.names[sid]!r} (id {sid}) = {p} [{self.how[sid]}]")
        for sid, ps in self.ambiguous.items():
            lines.append(
                f"  AMBIGUOUS {self.names[sid]!r} (id {sid}): could be "
                + ", ".join(str(p) for p in ps)
            )
        for sid in self.missing:
            lines.append(f"  MISSING {self.names[sid]!r} (id {sid}): no file matches")
        for p in self.unused:
            lines.append(f"  unused file: {p}")
        for p, why in self.unreadable.items():
            lines.append(f"  unreadable file: {p}: {why}")
        return "\n".join(lines)

    __str__ = report


class _Files:
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._kw: dict[Path, dict[str, str] | None] = {}
        self.unreadable: dict[Path, str] = {}

    def keywords(self, p: Path) -> dict[str, str] | None:
        if p not in self._kw:
            from cytokit.fcs import read_fcs_datasets

            try:
                sets = read_fcs_datasets(p)
                kw = {k.upper(): v for k, v in sets[0].keywords.items()} if sets else {}
            except Exception as exc:  # any unreadable file is reported, not fatal
                self.unreadable[p] = str(exc)
                kw = None
            self._kw[p] = kw
        return self._kw[p]

    def tot(self, p: Path) -> int | None:
        kw = self.keywords(p)
        try:
            return int(kw["$TOT"]) if kw and "$TOT" in kw else None
        except ValueError:
            return None

    def fil(self, p: Path) -> str | None:
        kw = self.keywords(p)
        return kw.get("$FIL") if kw else None


def linked_file(uri: str, folder: str | os.PathLike[str] | None) -> Path | None:
    """The file a sample's ``<DataSet uri>`` names on this machine, or None.

    Parameters
    ----------
    uri : str
        The link as stored: a path relative to the workspace (``cytokit
        export-wsp`` writes these), or a ``file:`` URL; percent-encoded.
    folder : path or None
        The workspace's folder, which a relative link is read from (None:
        relative links name nothing).

    Returns
    -------
    Path or None
        None for another scheme or host, or a Windows path read elsewhere.
    """
    if not uri:
        return None
    parsed = urlparse(uri)
    if len(parsed.scheme) == 1:  # C:\data\x.fcs: a drive letter parses as a scheme
        path = uri
    elif parsed.scheme in ("", "file") and parsed.netloc in ("", "localhost"):
        path = unquote(parsed.path)
        if re.match(r"/[A-Za-z]:", path):  # file:/C:/data/x.fcs
            path = path[1:]
    else:
        return None
    if os.sep == "/":
        path = path.replace("\\", "/")  # FlowJo on Windows may write \ in a relative link
    p = Path(path)
    if p.is_absolute():
        return p
    if folder is None or re.match(r"[A-Za-z]:", path):  # another system's absolute path
        return None
    return Path(folder) / p


def _identity(p: Path | None) -> tuple[int, int] | None:
    """The file `p` is (device, inode), so a link through another spelling or a
    symbolic link still names it; None when there is no such file."""
    if p is None:
        return None
    try:
        st = os.stat(p)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _name_parts(name: str) -> tuple[str, ...]:
    """A sample name that is a relative path (two parts or more), as parts; else ()."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if len(parts) < 2 or parts[0] == "/" or ".." in parts:
        return ()
    return parts


def _by_link(samples, files: list[Path], folder) -> dict[str, tuple[list[Path], str]]:
    """Sample id → the files its link leads to (``"DataSet uri"``), or failing that the
    files whose path ends in its name (``"sample name"``); samples with neither are
    left out."""
    ids: dict[tuple[int, int], list[Path]] = {}
    for p in files:
        key = _identity(p)
        if key is not None:
            ids.setdefault(key, []).append(p)
    tails: list[tuple[Path, tuple[str, ...], tuple[str, ...]]] | None = None
    out = {}
    for s in samples:
        key = _identity(linked_file(s.uri, folder))
        if key is not None and key in ids:
            out[s.id] = (ids[key], "DataSet uri")
            continue
        parts = _name_parts(s.name)
        if not parts:
            continue
        if tails is None:  # each file's path, as given and with its links followed, once
            tails = [(p, Path(os.path.abspath(p)).parts, Path(p).resolve().parts) for p in files]
        n = len(parts)
        hits = [p for p, given, real in tails if parts in (given[-n:], real[-n:])]
        if hits:
            out[s.id] = (hits, "sample name")
    return out


def _by_name(names: list[str], files: list[Path]) -> list[Path]:
    for fold in (False, True):
        want = {n.casefold() if fold else n for n in names if n}
        hits = [p for p in files if (p.name.casefold() if fold else p.name) in want]
        if hits:
            return hits
    return []


def match_files(
    samples,
    paths: Iterable[str | os.PathLike[str]],
    where: str = "",
    folder: str | os.PathLike[str] | None = None,
) -> FileMatches:
    """Match workspace samples to FCS files (see the module docstring).

    Parameters
    ----------
    samples : sequence of WorkspaceSample
    paths : iterable of path
        Candidate files (folders are not searched; pass their files).
    where : str
        The workspace name (unused; kept for messages).
    folder : path, optional
        The workspace's folder, which relative links are read from (None: only
        absolute links are followed).

    Returns
    -------
    FileMatches
    """
    files = _Files([Path(p) for p in paths])
    out = FileMatches(names={s.id: s.name for s in samples})
    claims: dict[str, tuple[list[Path], str]] = {}
    linked = _by_link(samples, files.paths, folder)
    for s in samples:
        cands, how = linked.get(s.id, ([], ""))
        if not cands:
            how = "file name"
            cands = _by_name([s.file_name, s.name], files.paths)
        if not cands:
            how = "$FIL"
            want = {v for v in (s.fil, s.name, s.file_name) if v}
            cands = [p for p in files.paths if files.fil(p) in want]
        if len(cands) > 1 and s.event_count is not None:
            narrowed = [p for p in cands if files.tot(p) == s.event_count]
            if narrowed:
                cands, how = narrowed, how + " + $TOT"
        if len(cands) > 1 and s.fil:
            narrowed = [p for p in cands if files.fil(p) == s.fil]
            if narrowed:
                cands, how = narrowed, how + " + $FIL"
        claims[s.id] = (cands, how)
    # A file claimed by several samples goes to the one whose event count it has.
    owners: dict[Path, list[str]] = {}
    for sid, (cands, _) in claims.items():
        if len(cands) == 1:
            owners.setdefault(cands[0], []).append(sid)
    by_id = {s.id: s for s in samples}
    for p, sids in owners.items():
        if len(sids) > 1:
            tot = files.tot(p)
            keep = [i for i in sids if by_id[i].event_count == tot]
            for i in sids:
                if len(keep) == 1 and i != keep[0]:
                    claims[i] = ([], claims[i][1])
                elif len(keep) != 1:
                    claims[i] = (claims[i][0], "ambiguous")
    used: set[Path] = set()
    for s in samples:
        cands, how = claims[s.id]
        if len(cands) == 1 and how != "ambiguous":
            out.matched[s.id] = cands[0]
            out.how[s.id] = how
            used.add(cands[0])
        elif cands:
            out.ambiguous[s.id] = list(cands)
        else:
            out.missing.append(s.id)
    out.unused = [p for p in files.paths if p not in used]
    out.unreadable = dict(files.unreadable)
    return out


def find_sample(samples, fcs, where: str = "", folder: str | os.PathLike[str] | None = None):
    """The workspace sample that a read FCS file (`cytokit.Sample`) is.

    Matched like `match_files`: by the sample's link (relative ones read from
    `folder`, the workspace's) or a sample name that is a path ending the
    file's, else by file name, else ``$FIL``, with the event count breaking ties.

    Raises
    ------
    GatingError
        No sample or several samples fit; the message lists the candidates.
    """
    from cytokit.errors import GatingError

    name = Path(fcs.path).name if fcs.path is not None else ""
    fil = fcs.keyword("$FIL")
    # a link is followed (a stat) only where it ends in the file's name, or the name is a
    # path: a batch gates every file against every sample of the workspace
    near = [s for s in samples if s.file_name.casefold() == name.casefold() or _name_parts(s.name)]
    linked = _by_link(near, [Path(fcs.path)], folder) if fcs.path is not None else {}
    # a link that leads to the file outranks a name that ends its path
    cands = [s for s in samples if linked.get(s.id, ((), ""))[1] == "DataSet uri"]
    cands = cands or [s for s in samples if s.id in linked]
    if not cands:
        cands = [s for s in samples if name and name in (s.file_name, s.name)]
    if not cands:
        cands = [s for s in samples if fil and fil in (s.fil, s.name, s.file_name)]
    if len(cands) > 1:
        same = [s for s in cands if s.event_count == fcs.n_events]
        cands = same or cands
    if len(cands) == 1:
        return cands[0]
    label = name or fil or "the sample"
    if not cands:
        raise GatingError(
            f"{where}: no sample matches {label} (file name {name!r}, $FIL {fil!r}); samples: "
            + ", ".join(f"{s.name!r} (id {s.id})" for s in samples)
        )
    raise GatingError(
        f"{where}: {len(cands)} samples match {label} with {fcs.n_events} events: "
        + ", ".join(f"{s.name!r} (id {s.id}, {s.event_count} events)" for s in cands)
        + "; no link of theirs (DataSet uri) leads to this file, so which it is cannot be "
        "told: keep the files where the workspace links them, or in Python choose a sample "
        "by id (Workspace.strategy(sample=ID))"
    )
