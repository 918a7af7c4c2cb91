"""Running one submission's steps in confined children forked by the warm worker, and supervising them.

Whatever the layers, the grader keeps: a CPU-time limit per step with a wall-clock backstop (a
child that overruns is killed with its process group, and a new one takes the steps after the one
that hung), stdout and stderr in files it reads only the end of, and the records parsed as
untrusted data (:mod:`autograder.isolation.runtime.codec`).
"""
from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit._grading.diagnoses import Diagnosis
from fcnkit._grading.extract import location

from .procfs import cpu_seconds as process_cpu_seconds, last_line
from .layers import NOBODY, Runtime, confinement
from .runtime.codec import MAX_RECORD_BYTES, RecordError, decode
from .worker import WorkerError, revive

MAX_EVENT_LINE = 16 * 1024
OUTPUT_LIMIT_BYTES = 64 * 2**20  # any file the child writes, stdout and stderr included


@dataclass
class Limits:
    wall_s: int = 240  # the whole submission, restarts included (wall clock)
    start_s: int = 60  # a child's start: the fork, its limits and confinement (wall clock)
    check_s: int = 30  # one definition chunk or one observation step: CPU seconds of one thread
    check_wall_s: int = 120  # the same, wall clock: a backstop for a check that waits or sleeps
    miou_s: int = 900  # predicting the evaluation split for one model (CPU seconds of one thread)
    memory_gb: float = 10.0
    threads: int = 1

    @classmethod
    def sharing_cores(cls, jobs: int, **limits) -> "Limits":
        """``limits`` for children run ``jobs`` at a time: this process's cores shared out among them (one
        thread each at least)."""
        return cls(threads=max(1, len(os.sched_getaffinity(0)) // jobs), **limits)


@dataclass(frozen=True)
class Stopped:
    """Why a child, or a run of children, stopped before its steps ended: the diagnosis of the steps it
    left (:mod:`fcnkit._grading.diagnoses`), and its sentence."""
    diagnosis: Diagnosis

    @property
    def words(self) -> str:
        return self.diagnosis.sentence


DID_NOT_RUN = Stopped(Diagnosis("did_not_run"))


@dataclass
class StepOutcome:
    record: object = None  # the decoded record, when the step ended and its record was valid
    failure: str = ""  # why there is no record
    diagnosis: Diagnosis | None = None  # the failure's (fcnkit._grading.diagnoses)


@dataclass
class RunResult:
    steps: dict[str, StepOutcome]
    notes: list[str]
    stopped: Stopped | None = None  # why no child could take the steps left (None: every step ended)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time by phase, measured here


def make_sandbox(path: Path, uid: int | None = NOBODY) -> Path:
    path.mkdir(mode=0o700)
    if os.geteuid() == 0 and uid is not None:
        os.chown(path, uid, uid)
    return path


# ----------------------------------------------------------------------------------- one child
class ConfinedChild:
    """One forked child: its events pipe, output files and CPU time, read until it exits or is killed."""

    def __init__(self, runtime: Runtime, sandbox: Path, job: dict, limits: Limits, uid: int | None,
                 files: dict[str, int], cpu_s: int | None = None):
        self.runtime, self.sandbox, self.limits, self.worker = runtime, sandbox, limits, runtime.worker
        self.id = f"{sandbox.name}-{next(_COUNTER)}"
        job_path = sandbox / "job.json"
        job_path.write_text(json.dumps(job))
        os.chmod(job_path, 0o644)
        self.dir_fd = os.open(sandbox, os.O_RDONLY | os.O_DIRECTORY)
        self.out_fds = [os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.dir_fd)
                        for name in ("stdout.txt", "stderr.txt")]
        read_end, write_end = os.pipe()
        self.events, self.buffer, self.error, self.pid = read_end, b"", "", None
        memory = int(limits.memory_gb * 2**30) if runtime.device == "cpu" else 0
        cpu = cpu_s or (limits.wall_s + limits.start_s) * limits.threads
        child_limits = {"cpu_s": cpu, "file_bytes": OUTPUT_LIMIT_BYTES, "memory_bytes": memory}
        try:
            self.worker.fork(self.id, sandbox, uid, child_limits,
                             {"events": write_end, "stdout": self.out_fds[0], "stderr": self.out_fds[1], **files})
        except WorkerError:
            for fd in (read_end, self.dir_fd, *self.out_fds):
                os.close(fd)
            raise
        finally:
            os.close(write_end)

    def cpu_seconds(self) -> float:
        if self.pid is None:
            self.pid = self.worker.host_pid(self.id)
        return process_cpu_seconds(self.pid)

    # -- events
    def next_event(self, timeout: float) -> dict | None:
        """The next event, None at end of output; raises TimeoutError when none came in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.events], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.events, 65536)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > MAX_EVENT_LINE and b"\n" not in self.buffer[:MAX_EVENT_LINE]:
                raise ValueError("an event line longer than the limit")
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > MAX_EVENT_LINE:
            raise ValueError("an event line longer than the limit")
        event = json.loads(line)
        if not isinstance(event, dict):
            raise ValueError("an event that is not a JSON object")
        return event

    def wait_start(self, timeout: float) -> None:
        """Read the start event; set ``error`` when it is missing or lacks a layer asked for."""
        try:
            event = self.next_event(timeout)
        except TimeoutError:
            self.kill()
            self.error = f"the child did not start within {timeout:.0f} s"
            return
        except ValueError as err:
            event, self.error = None, str(err)
        wanted = [layer for layer in ("landlock", "seccomp") if layer in self.runtime.isolation.layers]
        if not self.error and (event is None or event.get("event") != "start" or event.get("layers") != wanted):
            self.kill()
            self.error = f"the child did not confine itself as asked ({self.stderr_tail() or 'no message'})"

    def kill(self) -> None:
        self.worker.kill(self.id)

    def finish(self) -> str:
        """Wait for the exit; close everything; a description of an abnormal end ("" if none)."""
        code = self.worker.exit_code(self.id, 10)
        if code is None:
            self.kill()
            code = self.worker.exit_code(self.id, 10)
        tail = self.stderr_tail()
        for fd in (self.events, *self.out_fds):
            os.close(fd)
        if code == 0:
            return ""
        if code is None:
            return "the worker lost track of it" + (f"; last output: {tail}" if tail else "")
        how = (f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
               else f"exit code {code}")
        hints = {"SIGXCPU": ": its CPU time ran out", "SIGXFSZ": f": it wrote a file over {OUTPUT_LIMIT_BYTES >> 20} MB",
                 "SIGKILL": ": stopped by the grader, or out of memory", "SIGSEGV": ": a crash, often out of memory"}
        return how + hints.get(how.removeprefix("signal "), "") + (f"; last output: {tail}" if tail else "")

    def stderr_tail(self) -> str:
        return last_line(self.out_fds[1])

    def close(self) -> None:
        os.close(self.dir_fd)

    def read_record(self, step: str, expected: tuple[type, ...]):
        try:
            fd = os.open(f"{step}.rec", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self.dir_fd)
        except OSError as err:
            raise RecordError(f"its record is missing ({err.strerror})") from None
        try:
            info = os.fstat(fd)
            if not (info.st_mode & 0o170000 == 0o100000) or info.st_size > MAX_RECORD_BYTES:
                raise RecordError("its record is not a regular file under the size limit")
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(MAX_RECORD_BYTES + 1)
        finally:
            os.close(fd)
        return decode(data, expected)


_COUNTER = itertools.count()


def start_child(runtime: Runtime, timeout: float, sandbox: Path, *args) -> ConfinedChild:
    """A confined child from the run's worker, started in an emptied ``sandbox``; a worker found
    dead is replaced once (see :func:`~autograder.isolation.worker.revive`). Raises WorkerError when
    no child starts."""
    for attempt in range(2):
        worker = runtime.worker
        if not worker.alive:
            revive(runtime, worker)
            continue
        for name in os.listdir(sandbox):  # what a previous child left
            path = sandbox / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        child = ConfinedChild(runtime, sandbox, *args)
        child.wait_start(timeout)
        if not child.error:
            return child
        ending = child.finish()
        child.close()
        if worker.gone(0.5):  # the worker died meanwhile, not the child's confinement
            revive(runtime, worker)
            continue
        raise WorkerError(child.error + (f" ({ending})" if ending else ""))
    raise WorkerError("the worker died twice in a row")


# ----------------------------------------------------------------------------------- a submission
@dataclass
class _Budget:
    """The limits of one submission's run, per step and in all."""
    limits: Limits
    seconds: int  # the whole submission (wall clock)
    deadline: float
    cpu: dict[str, int]  # step id: CPU seconds (of one thread)
    wall: dict[str, int]  # step id: wall-clock backstop

    @classmethod
    def of(cls, steps: list[dict], limits: Limits) -> "_Budget":
        seconds = limits.wall_s + limits.miou_s * sum(s["op"] == "predict" for s in steps)  # trained weights get their own
        return cls(limits, seconds, time.monotonic() + seconds,
                   {s["id"]: (limits.miou_s if s["op"] == "predict" else limits.check_s) for s in steps},
                   {s["id"]: (limits.miou_s * 2 if s["op"] == "predict" else limits.check_wall_s) for s in steps})


def run(runtime: Runtime, sandbox: Path, chunks: list[dict], steps: list[dict], limits: Limits,
        job: dict, expected: dict[str, tuple[type, ...]], files: dict[str, int] | None = None) -> RunResult:
    """Run ``steps`` (after the definitions in ``chunks``) in children forked by the warm worker. A
    child that hangs or dies is killed; the step it was in fails (a definition chunk is skipped) and
    a new child takes the remaining steps, until they are done or the budget (``limits.wall_s``,
    plus ``limits.miou_s`` per model to predict with) is spent. ``files`` are open files the child
    gets by name (it may not be able to open them itself)."""
    budget = _Budget.of(steps, limits)
    outcomes: dict[str, StepOutcome] = {}
    notes: dict[int, str] = {}
    seconds: dict[str, float] = {}
    skip: set[int] = set()
    stopped = None
    uid = runtime.uids.get() if runtime.uids is not None else None
    try:
        make_sandbox(sandbox, uid)
        while True:
            pending = [s for s in steps if s["id"] not in outcomes]
            if not pending:
                break
            if time.monotonic() >= budget.deadline:
                stopped = Stopped(Diagnosis("time_limit", values={"seconds": budget.seconds}))
                break
            child_job = {**job, "threads": limits.threads, **confinement(runtime, sandbox),
                         "chunks": [c for c in chunks if c["index"] not in skip], "steps": pending}
            forked = time.monotonic()
            try:
                child = start_child(runtime, min(limits.start_s, max(1.0, budget.deadline - time.monotonic())),
                                    sandbox, child_job, limits, uid, files or {},
                                    (budget.seconds + limits.start_s) * limits.threads)
            except (OSError, WorkerError) as err:
                stopped = Stopped(Diagnosis("child_start", values={"error": err}))
                break
            seconds["start"] = seconds.get("start", 0.0) + time.monotonic() - forked
            _one_child(child, pending, child_job, chunks, budget, expected, outcomes, notes, skip, seconds)
    finally:
        if uid is not None:
            runtime.uids.put(uid)
    left = stopped or DID_NOT_RUN
    for s in steps:
        outcomes.setdefault(s["id"], StepOutcome(failure=left.words, diagnosis=left.diagnosis))
    return RunResult(outcomes, [notes[i] for i in sorted(notes)], stopped, seconds)


def _one_child(child: ConfinedChild, pending, child_job, chunks, budget: _Budget, expected, outcomes, notes, skip,
               seconds) -> None:
    """Follow one child to its end; file the records of the steps it ended; fail the step it was in
    (or skip the definition chunk), so that the next child takes the steps after it."""
    current, ended, why = _follow(child, pending, child_job, budget, notes, seconds)
    ending = child.finish()
    for step in ended:
        if not step.startswith("chunk-"):
            try:
                outcomes[step] = StepOutcome(record=child.read_record(step, expected[step]))
            except RecordError as err:
                unreadable = Diagnosis("unreadable_record", values={"error": err})
                outcomes[step] = StepOutcome(failure=unreadable.sentence, diagnosis=unreadable)
    child.close()
    if current is None and not why and not ending:
        for step in [s["id"] for s in pending if s["id"] not in outcomes]:  # finished without them
            outcomes[step] = StepOutcome(failure=DID_NOT_RUN.words, diagnosis=DID_NOT_RUN.diagnosis)
        return
    why = why or Stopped(Diagnosis("check_stopped", "ended the submission's process",
                                   {"ended": ending or "it exited"}))
    if current is None:  # died between steps
        current = next((s["id"] for s in pending if s["id"] not in outcomes), None)
        if current is None:
            return
    if current.startswith("chunk-"):
        index = int(current[6:])
        skip.add(index)
        chunk = next(c for c in chunks if c["index"] == index)
        notes[index] = (f"{location(chunk['cell'], chunk['line'])} {why.words}; the grader skipped it (code running "
                        f"when a class or function is defined?)")
    else:
        outcomes[current] = StepOutcome(failure=f"this check {why.words}", diagnosis=why.diagnosis)


def _overrun(child: ConfinedChild, current: str | None, began: float, cpu: float, budget: _Budget) -> Stopped | None:
    """Why ``child`` must be stopped now (None when it may go on). Each step may use its CPU limit
    (times the threads it was given: a busy machine slows it down but does not fail it) and, as a
    backstop for a step that waits or sleeps, its wall-clock limit."""
    now, limits = time.monotonic(), budget.limits
    cpu_s, wall_s = budget.cpu.get(current, limits.check_s), budget.wall.get(current, limits.check_wall_s)
    if now >= budget.deadline:
        return Stopped(Diagnosis("check_stopped", "ran out of the submission's time",
                                 {"out_of_time": budget.seconds}))
    if cpu > cpu_s * limits.threads:
        return Stopped(Diagnosis("check_stopped", "used more than its CPU time", {"cpu": cpu_s}))
    if now - began > wall_s:
        return Stopped(Diagnosis("check_stopped", "ran past its wall-clock backstop",
                                 {"wall": wall_s, "cpu_used": cpu}))
    return None


def _follow(child: ConfinedChild, pending, child_job, budget: _Budget, notes: dict[int, str],
            seconds: dict[str, float]):
    """Read a child's events until it ends, or until :func:`_overrun` stops it. Returns the step it
    was in when it stopped, the steps that ended, and why it was stopped (None when it ended by
    itself). Definitions' notes go to ``notes``, the wall time of each kind of step to ``seconds``."""
    known = {s["id"] for s in pending} | {f"chunk-{c['index']}" for c in child_job["chunks"]}
    phase = {**{s["id"]: s["op"] for s in pending}, **{f"chunk-{c['index']}": "definitions" for c in child_job["chunks"]}}
    current, ended = None, []
    began, cpu_began = time.monotonic(), child.cpu_seconds()
    try:
        while True:
            try:
                event = child.next_event(min(0.5, max(0.0, budget.deadline - time.monotonic())))
            except TimeoutError:
                why = _overrun(child, current, began, child.cpu_seconds() - cpu_began, budget)
                if why:
                    child.kill()
                    return current, ended, why
                continue
            if event is None:
                return current, ended, None
            step = event.get("step")
            if not isinstance(step, str) or step not in known:  # written by the submission: worth nothing
                continue
            if event.get("event") == "begin":
                current, began, cpu_began = step, time.monotonic(), child.cpu_seconds()
            elif event.get("event") == "end" and step == current:
                ended.append(step)
                seconds[phase[step]] = seconds.get(phase[step], 0.0) + time.monotonic() - began
                note = event.get("note")
                if step.startswith("chunk-") and isinstance(note, str) and note:
                    notes.setdefault(int(step[6:]), note[:1000])
                current, began, cpu_began = None, time.monotonic(), child.cpu_seconds()
    except (ValueError, UnicodeDecodeError) as err:
        child.kill()
        return current, ended, Stopped(Diagnosis("check_stopped", "broke the event channel",
                                                 {"channel": str(err)[:100]}))
