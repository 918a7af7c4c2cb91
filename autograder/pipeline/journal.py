"""The journal of a class run, its lock, and what a rerun may keep (resume).

The output folder holds, per run (per shard with ``--shard``):

- ``run.journal``: JSON rewritten whole after each submission: the seed, the options that change
  grades, the grader's fingerprint, and per student the hash of what was graded and its state;
- ``run.lock``: held (``flock``) while a run writes the folder, with its pid, so that a second run
  on the same folder is refused instead of interleaving its files with the first one's;
- ``run.log``: what went wrong in the grader, with tracebacks.

Rerunning the same command keeps the reports of the submissions the journal says are graded and
whose files are unchanged, and grades the rest with the recorded seed.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import atomic

GRADED, NOT_GRADED = "graded", "not graded"  # a submission's state in the journal (unfinished: not there)
HASH_LIMIT = 2 * 2**30  # a file larger than this is fingerprinted by its first bytes and its size
ROOT = Path(__file__).resolve().parent.parent
# what grades depend on: the rubric, the judging, the pipeline, the isolation (the child included), the reference
GRADER_FILES = ("rubric.py", "reference/models.py")
GRADER_FOLDERS = ("judging", "pipeline", "isolation")


def grader_sources() -> list[Path]:
    return [*(ROOT / name for name in GRADER_FILES),
            *sorted(p for folder in GRADER_FOLDERS for p in (ROOT / folder).rglob("*.py"))]


class RunLocked(RuntimeError):
    """Another run holds the output folder."""


def names(shard: tuple[int, int] | None) -> str:
    """The stem of a run's journal, lock and log: ``run`` or ``run-K-of-N``."""
    return f"run-{shard[0]}-of-{shard[1]}" if shard else "run"


def grader_fingerprint() -> str:
    """What a change of the rubric, the checks, the reference or the child changes."""
    import fcnkit
    digest = hashlib.sha256()
    for path in [*grader_sources(), *sorted(Path(fcnkit.__file__).parent.glob("*.py"))]:  # fcnkit: all of it
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def file_hash(paths: list[Path]) -> str:
    """SHA-256 of the regular files among ``paths`` (names and contents); links and special files
    count by their name only (the grader refuses them anyway)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(atomic.fs_path(path) + b"\0")
        try:
            fd = os.open(atomic.fs_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as err:
            digest.update(f"unreadable {err.errno}".encode())
            continue
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            if info.st_mode & 0o170000 != 0o100000:
                digest.update(b"not a regular file")
                continue
            digest.update(str(info.st_size).encode())
            left = HASH_LIMIT
            while left > 0 and (chunk := f.read(min(left, 2**20))):
                digest.update(chunk)
                left -= len(chunk)
    return digest.hexdigest()


@dataclass
class Entry:
    """One submission in the journal."""
    file: str
    sha256: str
    state: str  # GRADED, or NOT_GRADED (a grader error: graded again by a rerun)
    reason: str = ""


@dataclass
class Journal:
    path: Path
    seed: int
    options: dict
    grader: str
    entries: dict[str, Entry] = field(default_factory=dict)
    students: list[str] = field(default_factory=list)  # every submission of the run, graded or not yet

    @classmethod
    def read(cls, path: Path) -> "Journal | None":
        """The journal at ``path``, or None when there is none or it cannot be used."""
        try:
            with open(atomic.fs_path(path), "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            return cls(path, int(data["seed"]), dict(data["options"]), str(data["grader"]),
                       {s: Entry(**e) for s, e in data["submissions"].items()}, list(data.get("students", [])))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self) -> None:
        data = {"seed": self.seed, "options": self.options, "grader": self.grader,
                "students": self.students, "submissions": {s: asdict(e) for s, e in sorted(self.entries.items())}}
        atomic.write_text(self.path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")

    def missing(self, have: set[str]) -> dict[str, str]:
        """The run's submissions without a report in ``have``, with why."""
        return {s: self.entries[s].reason if s in self.entries and self.entries[s].reason else
                "unfinished: the run stopped before it was graded" for s in self.students if s not in have}

    def kept(self, student: str, sha256: str) -> bool:
        """Whether this student's recorded report still stands (graded, and the same files)."""
        entry = self.entries.get(student)
        return entry is not None and entry.state == GRADED and entry.sha256 == sha256

    def set(self, student: str, entry: Entry) -> None:
        self.entries[student] = entry
        self.save()


def resume(path: Path, seed: int | None, options: dict, grader: str, force: bool) -> tuple[Journal, list[str]]:
    """The journal this run continues (with its seed) or a new one; and what it says about that.

    A new journal (everybody graded) when ``force``, when there is none, when the options that change
    grades or the seed asked for differ, or when the grader changed."""
    old = None if force else Journal.read(path)
    why = []
    if old is not None:
        if old.grader != grader:
            why.append("the grader changed since the recorded run (its rubric, checks, reference or child): "
                       "grading everyone again")
        elif old.options != options:
            changed = sorted(k for k in {*old.options, *options} if old.options.get(k) != options.get(k))
            why.append(f"the options changed since the recorded run ({', '.join(changed)}): grading everyone again")
        elif seed is not None and seed != old.seed:
            why.append(f"--seed {seed} differs from the recorded run's seed {old.seed}: grading everyone again")
        else:
            done = sum(e.state == GRADED for e in old.entries.values())
            return old, [f"resuming the run recorded in {path} (seed {old.seed}; {done} submissions graded "
                         f"already; --force grades everyone again)"]
    import secrets
    journal = Journal(path, secrets.randbits(31) if seed is None else seed, options, grader)
    return journal, why


class Lock:
    """An exclusive lock on a run's output folder, released when the process ends however it ends."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(atomic.fs_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise RunLocked(f"another grading run (pid {holder}) is writing to {path.parent}; wait for it to end "
                            f"or stop it (kill {holder}), or give another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
