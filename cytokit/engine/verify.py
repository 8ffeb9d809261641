"""``cytokit verify``: what changed since a run, from its line in ``runlog.jsonl``.

`verify` re-hashes (SHA-256, every byte read again: no cache is trusted) the
inputs and outputs a run recorded (`cytokit.engine.runlog`) and lists what
differs:

``input changed`` / ``input missing``
    An input file's bytes differ from the run's, or it is gone; the role
    says which (``strategy changed`` for the strategy, ``settings changed``
    for study.toml, ``spillover changed``...).
``output edited`` / ``output missing``
    A file the run wrote has other bytes now, or is gone. A file a later
    logged run wrote again, and which still holds what that run wrote, is
    not a change: it is listed as ``rewritten by run N``.
``output added``
    A file in the folder that no logged run wrote.

Software versions that differ from the run's are listed as notes (not changes).
`rerun` runs a recorded command again into another folder and `compare_outputs`
compares what the two runs wrote, leaving out exactly the fields that hold the
time of the run (`TIMESTAMPED`).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cytokit._paths import special_kind
from cytokit.engine.hashing import file_hash
from cytokit.engine.runlog import RUNLOG_NAME, RunlogError, read_runlog, snapshot, versions

__all__ = [
    "TIMESTAMPED",
    "Finding",
    "Verification",
    "compare_outputs",
    "rerun",
    "rerun_argv",
    "same_inputs",
    "verify",
]

#: What a change of an input is called, by role.
_CHANGED = {"strategy": "strategy", "study": "settings", "spillover": "spillover"}

#: Outputs that hold the time of their run, and which part: ``None`` for the whole file,
#: else the JSON keys (``study.json``: ``created``), index entries (``tables.json``: the
#: entry of ``study.json``, whose bytes hold that time) or text (``report.html``: the
#: ``created`` time of study.json it shows) left out when two runs are compared.
TIMESTAMPED: dict[str, tuple[str, ...] | None] = {
    "results.sqlite": None,  # start and end of each batch, creation time of each stored row
    "plots/build.json": None,  # the report's: size, times and inode of each file
    "plots/digests.json": None,  # read and written, kept to skip unchanged work
    "study.json": ("created",),
    "tables.json": ("study.json",),
    "report.html": ("study.json created",),
}


@dataclass(frozen=True)
class Finding:
    """One difference between a run's record and the folder now.

    Attributes
    ----------
    run : int
        The run's number (its line in ``runlog.jsonl``).
    kind : str
        ``input_changed``, ``input_missing``, ``input_unreadable`` (there, but
        it cannot be read: `why`), ``output_edited``, ``output_missing``,
        ``output_unreadable``, ``output_added``, or ``output_rewritten`` (not a
        change: a later run `by` wrote the file again).
    path : str
        As recorded (outputs relative to the folder).
    role : str
        The input's role (``fcs``, ``strategy``, ``study``...); ``output`` for outputs.
    was, now : str or None
        SHA-256 recorded and found (None: absent).
    by : int or None
        For ``output_rewritten``: the later run.
    why : str or None
        For ``*_unreadable``: the system's reason (``Permission denied``).
    """

    run: int
    kind: str
    path: str
    role: str
    was: str | None = None
    now: str | None = None
    by: int | None = None
    why: str | None = None

    @property
    def is_change(self) -> bool:
        return self.kind != "output_rewritten"

    def text(self) -> str:
        """One line for people."""
        if self.kind == "output_rewritten":
            return f"rewritten by run {self.by}: {self.path}"
        if self.kind == "output_added":
            return f"output added: {self.path} (no logged run wrote it)"
        if self.kind.startswith("input"):
            what = f"{_CHANGED[self.role]} " if self.role in _CHANGED else f"input ({self.role}) "
            if self.kind == "input_missing":
                return f"{what}missing: {self.path}"
            if self.kind == "input_unreadable":
                return f"{what}unreadable: {self.path} ({self.why})"
            return f"{what}changed: {self.path} (sha256 {_short(self.was)} now {_short(self.now)})"
        if self.kind == "output_unreadable":
            return f"output unreadable: {self.path} ({self.why})"
        verb = "missing" if self.kind == "output_missing" else "edited"
        tail = "" if self.now is None else f" (sha256 {_short(self.was)} now {_short(self.now)})"
        return f"output {verb}: {self.path}{tail}"


def _short(digest: str | None) -> str:
    return "-" if digest is None else digest[:12]


@dataclass
class Verification:
    """What `verify` found: the runs checked, the differences and notes.

    Attributes
    ----------
    folder : Path
    runs : list of dict
        The records checked (each with its ``line``).
    findings : list of Finding
    notes : list of str
        Software that differs from the run's (not a change of the results).
    """

    folder: Path
    runs: list[dict]
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when anything changed (the exit code of ``cytokit verify`` is then 1)."""
        return any(f.is_change for f in self.findings)

    def lines(self) -> list[str]:
        """The report for people: a header per run, a line per finding, a last verdict."""
        out = []
        for run in self.runs:
            n = run["line"]
            found = [f for f in self.findings if f.run == n]
            out.append(
                f"run {n}: {' '.join(run['argv'])} (started {run['started']}, "
                f"{run.get('user', '?')}@{run.get('host', '?')}); {len(run['inputs'])} input(s), "
                f"{len(run['outputs'])} output(s)"
            )
            code = run.get("exit_code", 0)
            if code not in (0, 3):  # 3: finished, some files failed
                out.append(
                    f"  run {n} stopped before its end (exit code {code}): it wrote part of "
                    "its outputs; a rerun into the same folder resumes it"
                )
            out.extend(f"  {f.text()}" for f in found)
            changes = sum(f.is_change for f in found)
            out.append(
                f"  {changes} change(s) since run {n}" if changes else f"  unchanged since run {n}"
            )
        out.extend(f"note: {note}" for note in self.notes)
        return out

    def as_dict(self) -> dict:
        """The same for pipelines (``--json``)."""
        return {
            "folder": str(self.folder),
            "changed": self.changed,
            "runs": [
                {
                    "run": r["line"],
                    "run_id": r.get("run_id"),
                    "argv": r["argv"],
                    "started": r["started"],
                    "exit_code": r.get("exit_code", 0),
                    "changed": any(f.is_change for f in self.findings if f.run == r["line"]),
                }
                for r in self.runs
            ],
            "findings": [
                {
                    "run": f.run,
                    "kind": f.kind,
                    "path": f.path,
                    "role": f.role,
                    "was": f.was,
                    "now": f.now,
                    "by": f.by,
                    "why": f.why,
                    "change": f.is_change,
                }
                for f in self.findings
            ],
            "notes": self.notes,
        }


def select_runs(records: list[dict], run: int | None = None, all_runs: bool = False) -> list[dict]:
    """The records to check: all, run `run` (its line number; negative counts back from the
    last run), or the last.

    Raises
    ------
    RunlogError
        No such run (the message says how many there are).
    """
    if all_runs:
        return records
    if run is None:
        return records[-1:]
    found = [r for r in records if r["line"] == run] if run > 0 else records[run:][:1]
    if run == 0 or not found or (run < 0 and -run > len(records)):
        raise RunlogError(
            f"no run {run}: runlog.jsonl holds {len(records)} run(s) on lines "
            f"{records[0]['line']} to {records[-1]['line']}; give --run with one of those "
            "(or -1 for the last)"
        )
    return found


def _maker(records: list[dict], last: dict) -> dict | None:
    """Where `last` read only the folder's tables (``cytokit report``): the run that wrote
    the tables it read (the latest earlier writer of one of them), whose inputs (the FCS
    files, the study) are what a user asks about; else None."""
    if not last["inputs"] or any(i["role"] != "results" for i in last["inputs"]):
        return None
    read = {i["path"] for i in last["inputs"]}
    for rec in reversed([r for r in records if r["line"] < last["line"]]):
        if any(o["path"] in read for o in rec["outputs"]):
            return rec
    return None


def _where(folder: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else folder / p


def _hash(path: Path, buffer: bytearray, memo: dict) -> str | None:
    """The SHA-256 of `path`; None where it is absent or cannot be read (`_unreadable`
    says which: a folder or a FIFO in its place is there, but not a file to read)."""
    key = os.path.abspath(path)
    if key not in memo:
        memo[key] = None
        try:
            mode = path.stat().st_mode
            kind = "a folder" if stat.S_ISDIR(mode) else special_kind(mode)
            if kind is None:
                memo[key] = file_hash(path, buffer)
            else:
                memo[("why", key)] = f"{kind}, not a file"
        except (FileNotFoundError, NotADirectoryError):
            pass  # absent: missing
        except OSError as exc:
            memo[("why", key)] = exc.strerror or str(exc)
    return memo[key]


def _unreadable(path: Path, memo: dict) -> str | None:
    """Why `_hash` could not read `path`, or None (absent, or read)."""
    return memo.get(("why", os.path.abspath(path)))


def verify(folder: str | os.PathLike, *, run: int | None = None, all_runs: bool = False):
    """Re-hash the inputs and outputs of a logged run and say what changed since.

    Parameters
    ----------
    folder : path
        A folder holding ``runlog.jsonl``.
    run : int, optional
        Which run (its line number, 1 the oldest; -1 the last). Default: the last, and
        where it read only the tables (``cytokit report``) the inputs of the run that
        wrote them.
    all_runs : bool
        Check every run.

    Returns
    -------
    Verification

    Raises
    ------
    RunlogError
        No log, a line that is not a run record, or no such run.
    """
    folder = Path(folder)
    records = read_runlog(folder)
    chosen = select_runs(records, run, all_runs)
    # after a report, the inputs of the run that made its tables are checked too (only
    # those: its outputs are the tables the report read, and those it removed since)
    maker = _maker(records, chosen[0]) if run is None and not all_runs else None
    if maker is not None:
        chosen = [maker, *chosen]
    result = Verification(folder, chosen)
    buffer, memo = bytearray(1 << 20), {}
    # the last record of each output path: who wrote it last and with what bytes
    last_writer: dict[str, tuple[int, str]] = {}
    for rec in records:
        for out in rec["outputs"]:
            last_writer[out["path"]] = (rec["line"], out["sha256"])
    for rec in chosen:
        n = rec["line"]
        for item in rec["inputs"]:
            now = _hash(_where(folder, item["path"]), buffer, memo)
            if item["sha256"] is None and now is None:
                continue  # missing then, missing now
            if now != item["sha256"]:
                why = _unreadable(_where(folder, item["path"]), memo) if now is None else None
                kind = "input_changed" if now else "input_unreadable" if why else "input_missing"
                result.findings.append(
                    Finding(n, kind, item["path"], item["role"], item["sha256"], now, why=why)
                )
        for out in rec["outputs"] if rec is not maker else ():
            now = _hash(folder / out["path"], buffer, memo)
            if now == out["sha256"]:
                continue
            later, digest = last_writer[out["path"]]
            if later > n and now == digest:
                result.findings.append(
                    Finding(n, "output_rewritten", out["path"], "output", out["sha256"], now, later)
                )
                continue
            why = _unreadable(folder / out["path"], memo) if now is None else None
            kind = "output_edited" if now else "output_unreadable" if why else "output_missing"
            result.findings.append(
                Finding(n, kind, out["path"], "output", out["sha256"], now, why=why)
            )
    added = sorted(set(snapshot(folder)) - set(last_writer))
    last = chosen[-1]["line"]
    result.findings.extend(Finding(last, "output_added", p, "output", None, None) for p in added)
    now_versions = versions()
    for name, was in chosen[-1].get("versions", {}).items():
        if name != "platform" and now_versions.get(name) != was:
            result.notes.append(
                f"{name} {was} ran run {last}; this is {name} {now_versions.get(name)}"
            )
    return result


def rerun_argv(record: dict, out: str | os.PathLike) -> list[str]:
    """The arguments of a logged command (without ``argv[0]``) writing into `out` instead.

    Every ``--out``/``-o`` value is replaced; a command that had none (``cytokit
    demo``'s default folder) gets ``--out OUT``.
    """
    args, out, replaced, i = list(record["argv"][1:]), str(out), False, 0
    result = []
    while i < len(args):
        a = args[i]
        if a in ("--out", "-o") and i + 1 < len(args):
            result += [a, out]
            replaced, i = True, i + 2
            continue
        if a.startswith("--out="):
            result.append(f"--out={out}")
            replaced = True
        elif a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
            result.append(f"-o{out}")
            replaced = True
        else:
            result.append(a)
        i += 1
    return result if replaced else [*result, "--out", out]


def rerun(folder: str | os.PathLike, out: str | os.PathLike, *, run: int | None = None) -> int:
    """Run a logged command again, in its working directory, into the new folder `out`.

    The command runs in a new process of this Python (``python -m
    cytokit.cli.app``), so it finds its files as it did; progress goes to
    stderr. Returns its exit code.

    Raises
    ------
    RunlogError
        No log or no such run, its working directory is gone, or `out` is
        the run's own folder or already holds a run log.
    """
    record = select_runs(read_runlog(folder), run)[0]
    out = Path(os.path.abspath(out))
    if out == Path(os.path.abspath(folder)) or (out / RUNLOG_NAME).exists():
        raise RunlogError(
            f"{out}: already holds a run log; give a new folder to run the command again in"
        )
    cwd = record["cwd"]
    if not Path(cwd).is_dir():
        raise RunlogError(
            f"{cwd}: the working directory of run {record['line']} is gone; run its command "
            f"by hand: {' '.join(record['argv'])}"
        )
    argv = [sys.executable, "-m", "cytokit.cli.app", *rerun_argv(record, out)]
    # what the command prints on stdout (report's path) goes to stderr with its progress:
    # stdout is the comparison's (one JSON object with --json)
    done = subprocess.run(argv, cwd=cwd, check=False, stdout=subprocess.PIPE)
    if done.stdout:
        sys.stderr.write(done.stdout.decode("utf-8", "replace"))
    return done.returncode


def _created(folder: Path) -> str | None:
    try:
        return json.loads((folder / "study.json").read_bytes()).get("created")
    except (OSError, ValueError, AttributeError):
        return None


def _comparable(folder: Path, name: str, record: dict | None = None):
    """Output `name` of `folder` without the parts that hold the time of the run.

    The ``created`` time a report shows is that of the ``study.json`` it was built
    from: the folder's own, or (``cytokit report --out``) the one the run read.
    """
    data = (folder / name).read_bytes()
    if name == "tables.json":
        index = json.loads(data)
        index["files"] = [e for e in index.get("files", []) if e.get("name") != "study.json"]
        return index
    if name == "study.json":
        return {k: v for k, v in json.loads(data).items() if k != "created"}
    created = _created(folder)
    if created is None and record is not None:
        read = [i["path"] for i in record.get("inputs", []) if Path(i["path"]).name == "study.json"]
        created = next((c for p in read if (c := _created(_where(folder, p).parent))), None)
    if name == "report.html" and created:
        return data.replace(created.encode("utf-8"), b"")
    return data


def _as_of(records: list[dict], n: int) -> dict[str, tuple[int, str]]:
    """The outputs the folder held after run `n`: path -> (the run that last wrote it,
    the SHA-256 it wrote), runs up to `n` read in order (a file a run deleted is gone)."""
    held: dict[str, tuple[int, str]] = {}
    for rec in records:
        if rec["line"] > n:
            break
        for path in rec.get("removed", []):
            held.pop(path, None)
        for o in rec["outputs"]:
            held[o["path"]] = (rec["line"], o["sha256"])
    return held


def _command(record: dict) -> str:
    return str(record.get("command") or (record["argv"][1:2] or ["?"])[0])


def _rewrites(records: list[dict], n: int, path: str, digest: str | None) -> list[dict]:
    """The runs after `n` that wrote `path` with the bytes `digest`, in order."""
    return [
        r
        for r in records
        if r["line"] > n and any(o["path"] == path and o["sha256"] == digest for o in r["outputs"])
    ]


def _same_run(a: dict, b: dict) -> bool:
    """Whether two logged runs had the same resolved settings and input files."""
    key = ("role", "path", "sha256")
    inputs = [sorted(tuple(i[k] for k in key) for i in r["inputs"]) for r in (a, b)]
    return a.get("settings") == b.get("settings") and inputs[0] == inputs[1]


def compare_outputs(a: str | os.PathLike, b: str | os.PathLike, *, run_a=None, run_b=None):
    """The outputs of a logged run that differ from a rerun's, timestamps aside.

    The reference is what folder `a` held after its run N: every output a run up to
    N wrote last (a resumed run rewrites only what changed, and a ``report`` run
    none of the tables), by the SHA-256 logged. `b` is a fresh folder, so its run
    wrote all of its outputs. A file of `a` that a run of another command wrote
    (the tables under a ``report`` run) and `b` lacks is a note, not a
    difference. A file in `TIMESTAMPED` is read from both folders and compared
    without its timestamps (`TIMESTAMPED` says which parts, or that it is left
    out); one a later run of `a` rewrote with the same settings and inputs is
    compared with that rewrite.

    Parameters
    ----------
    a, b : path
        Two folders with a run log each.
    run_a, run_b : int, optional
        Which run of each (default: the last).

    Returns
    -------
    (list of str, list of str)
        What differs (path and how), and notes: how each timestamped file was
        compared or left out, files of other commands, and a run of `a` that
        stopped before its end.
    """
    a, b = Path(a), Path(b)
    records = read_runlog(a)
    ra = select_runs(records, run_a)[0]
    rb = select_runs(read_runlog(b), run_b)[0]
    n = ra["line"]
    held = _as_of(records, n)
    by_line = {r["line"]: r for r in records}
    wrote_a = {p: sha for p, (_, sha) in held.items()}
    wrote_b = {o["path"]: o["sha256"] for o in rb["outputs"]}
    differ, how = [], []
    stopped = ra.get("exit_code", 0) not in (0, 3)
    if stopped:
        how.append(
            f"run {n} stopped before its end (exit code {ra['exit_code']}): its outputs are partial"
        )
    for path in sorted(set(wrote_b) - set(wrote_a)):
        differ.append(f"{path}: written by the run again only")
    for path in sorted(set(wrote_a) - set(wrote_b)):
        writer = by_line[held[path][0]]
        if writer["line"] == n or _command(writer) == _command(ra):
            differ.append(f"{path}: in {a} only")
        else:
            how.append(
                f"{path}: from run {writer['line']} ({_command(writer)}), not an output of "
                f"{_command(ra)}"
            )
    memo, buffer = {}, bytearray(1 << 20)
    for path in sorted(set(wrote_a) & set(wrote_b)):
        if path not in TIMESTAMPED:
            if wrote_a[path] != wrote_b[path]:
                differ.append(f"{path}: differs")
            elif (now := _hash(a / path, buffer, memo)) != wrote_a[path] and not _rewrites(
                records, n, path, now
            ):
                # the logged bytes agree, but the folder's file is no logged run's
                differ.append(f"{path}: edited in {a} since its run (see cytokit verify)")
            continue
        parts = TIMESTAMPED[path]
        if parts is None:
            how.append(f"{path}: left out (it holds times of its run)")
            continue
        if wrote_a[path] == wrote_b[path]:
            how.append(f"{path}: compared without {', '.join(parts)}")
            continue  # the same bytes: no timestamp to leave out
        now_a = _hash(a / path, buffer, memo)
        if now_a != wrote_a[path]:
            later = _rewrites(records, n, path, now_a)
            if not later or not _same_run(later[-1], ra):
                why = f"rewritten by run {later[-1]['line']}" if later else "edited since"
                differ.append(f"{path}: {why} in {a}; cannot compare")
                continue
            how.append(f"{path}: compared with run {later[-1]['line']}'s rewrite (same settings)")
        if _hash(b / path, buffer, memo) != wrote_b[path]:
            differ.append(f"{path}: changed in {b} since its run; cannot compare")
            continue
        how.append(f"{path}: compared without {', '.join(parts)}")
        if _comparable(a, path, ra) != _comparable(b, path, rb):
            differ.append(f"{path}: differs (timestamps aside)")
    return differ, how


def same_inputs(a: str | os.PathLike, b: str | os.PathLike, *, run_a=None, run_b=None):
    """Inputs whose recorded SHA-256 differs between two logged runs (by role and path)."""
    ra = select_runs(read_runlog(a), run_a)[0]
    rb = select_runs(read_runlog(b), run_b)[0]
    # a path inside its run's folder is logged relative to it: compare where the files are
    ia = {
        (i["role"], os.path.abspath(_where(Path(a), i["path"]))): i["sha256"] for i in ra["inputs"]
    }
    ib = {
        (i["role"], os.path.abspath(_where(Path(b), i["path"]))): i["sha256"] for i in rb["inputs"]
    }
    return [
        f"{role} {path}"
        for role, path in sorted(set(ia) | set(ib))
        if ia.get((role, path)) != ib.get((role, path))
    ]
