"""A class run's lock, and what a rerun may keep (resume).

The output folder holds, per run (per shard with ``--shard``):

- ``gradebook.sqlite`` (:mod:`autograder.record.gradebook`): the seed, the options that change
  grades, the grader's fingerprint, and per student the hash of what was graded, its state and its
  record (``run.journal``, which earlier versions wrote, is read into it once);
- ``run.lock``: held (``flock``) while a run writes the folder, with its pid, so that a second run
  on the same folder is refused instead of interleaving its files with the first one's;
- ``run.log``: what went wrong in the grader, with tracebacks.

Rerunning the same command keeps the records of the submissions the gradebook says are graded in
the same session and whose files are unchanged, and grades the rest with the recorded seed.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from .. import atomic

from .gradebook import GRADED

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


def resume(book, seed: int | None, options: dict, grader: str, force: bool, students: list[str]) -> tuple[dict, list[str]]:
    """The run this one continues (its session and seed) or a new one, recorded in ``book`` (an
    :class:`autograder.record.gradebook.Gradebook`) with the submissions it grades; and what it
    says about that. A new session (everybody graded) when ``force``, when nothing was recorded,
    when the options that change grades or the seed asked for differ, or when the grader changed."""
    old = None if force else book.last_run()
    why, session = [], None
    if old is not None:
        if old["grader"] != grader:
            why.append("the grader changed since the recorded run (its rubric, checks, reference or child): "
                       "grading everyone again")
        elif old["options"] != options:
            changed = sorted(k for k in {*old["options"], *options} if old["options"].get(k) != options.get(k))
            why.append(f"the options changed since the recorded run ({', '.join(changed)}): grading everyone again")
        elif seed is not None and seed != old["seed"]:
            why.append(f"--seed {seed} differs from the recorded run's seed {old['seed']}: grading everyone again")
        else:
            session, seed = old["session"], old["seed"]
            done = sum(book.state(s) is not None and book.state(s)[0] == GRADED and book.state(s)[2] == session
                       for s in students)
            why.append(f"resuming the run recorded in {book.path} (seed {seed}; {done} submissions graded already; "
                       f"--force grades everyone again)")
    if session is None and seed is None:
        import secrets
        seed = secrets.randbits(31)
    return book.start_run(seed, grader, options, students, session), why


def kept(book, run: dict, student: str, sha256: str) -> bool:
    """Whether the student's recorded grading still stands: graded in this run's session, of the same files."""
    state = book.state(student)
    return state is not None and state[0] == GRADED and state[1] == sha256 and state[2] == run["session"]


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
