"""Grade submissions. Each runs in its own confined child (autograder.isolation), which only observes;
every verdict is computed here, from those observations, by the judgements the rubric's items name
(:mod:`autograder.judging`).

Whatever a submission does, the grader returns a report: checks that could not run are failed with
the reason, and the other checks and submissions are graded normally.
"""
from __future__ import annotations

import itertools
import os
import secrets
import shutil
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from fcnkit._grading.diagnoses import Diagnosis
from fcnkit.predictions import UnreadableFile, open_regular
from fcnkit._grading.records import Failure
from fcnkit.spec import MODEL_CLASSES

from .. import isolation
from ..isolation import Limits, tempdirs
from ..judging import OBSERVATIONS, Context
from ..judging.miou import LabelSet
from ..results import Report
from ..rubric import RUBRIC
from ..submission import Extracted, SubmissionError, extract
from . import verdicts
from .discover import CHECKPOINT_NAMES, find_checkpoints, find_predictions
from .evalset import EvalSet

REFERENCE_SOURCE = Path(__file__).resolve().parent.parent / "reference" / "models.py"


class GraderError(RuntimeError):
    """The grader itself failed on a submission (a bug, a worker that cannot start): the submission is
    not graded, never scored 0. ``phase`` says where; the cause is chained."""

    def __init__(self, phase: str, reason: str):
        super().__init__(f"grader error while {phase}: {reason}")
        self.phase, self.reason = phase, reason


@contextmanager
def phase(name: str, students: tuple[type[Exception], ...] = ()):
    """Whatever escapes this block is the grader's failure in phase ``name``, but the exceptions in
    ``students``: those say what is wrong with the submission."""
    try:
        yield
    except (GraderError, *students):
        raise
    except Exception as err:
        raise GraderError(name, f"{type(err).__name__}: {err}") from err


def not_graded_report(student: str, path: Path, err: BaseException, seed: int | None = None,
               isolation: dict | None = None) -> Report:
    """The report of a submission the grader failed on: every item not graded, with the reason; the
    traceback in ``traceback`` (for the run log, never in the report's JSON)."""
    reason = str(err) if isinstance(err, GraderError) else f"grader error: {type(err).__name__}: {err}"
    diagnosis = Diagnosis("grader_error", f"while {err.phase}" if isinstance(err, GraderError) else type(err).__name__,
                          {"reason": reason})
    return Report(student, str(path), seed=seed, isolation=isolation or {}, notes=[diagnosis.sentence],
                  checks=[verdicts.not_graded_check(i, diagnosis) for i in RUBRIC],
                  not_graded=reason,
                  traceback="".join(traceback.format_exception(err)))


def _chunks(extracted: Extracted) -> list[dict]:
    """The definitions as the child is sent them."""
    return [{**vars(c), "index": i} for i, c in enumerate(extracted.chunks)]


def default_jobs() -> int:
    """One child per core, each with one thread (forward passes scale better across processes than
    across threads: bench/grading_speed.py), fewer when memory is short: a child takes under 0.5 GiB
    of its own (docs/results.md), counted as 1 GiB to leave room for a submission's own allocations."""
    cores = len(os.sched_getaffinity(0))
    memory_gb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return max(1, min(cores, int(memory_gb // 1.0)))


@dataclass
class GradingRun:
    """What the submissions of one run share: the sandbox runtime and its isolation, the seed of
    the weights and inputs the children observe with, and the reference's observations."""
    runtime: isolation.Runtime
    context: Context
    workdir: Path
    limits: Limits = field(default_factory=Limits)
    evalset: EvalSet | None = None
    labels: LabelSet | None = None  # what submitted predictions are scored against
    counter: itertools.count = field(default_factory=itertools.count)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(2))  # children at once

    @classmethod
    def start(cls, evalset: EvalSet | None = None, device: str = "cpu", limits: Limits | None = None,
              seed: int | None = None, hidden=(), want=isolation.LAYERS, jobs: int = 1,
              labels: LabelSet | None = None, low_memory: bool = False) -> "GradingRun":
        """Start a run: its worker, warmed, and the reference's child. ``limits``: by default, the
        cores shared out among ``jobs`` children. ``low_memory``: one child at a time, the
        reference's included (Gradescope's 768 MB)."""
        limits = limits or Limits.sharing_cores(jobs)
        workdir = tempdirs.make("fcnkit-grade-")  # also removes those of runs that were killed
        data = [os.environ["FCNKIT_DATA"]] if os.environ.get("FCNKIT_DATA") else []
        context = Context(seed=secrets.randbits(31) if seed is None else seed,
                          labels=evalset.labels if evalset else None)
        hidden = [*hidden, *data, *(evalset.hidden if evalset else []), *([labels.root] if labels else [])]
        try:
            runtime = isolation.prepare(workdir, hidden, device, want, jobs)
            runtime.worker.warm(context.seed)
        except BaseException:
            tempdirs.remove(workdir)
            raise
        run = cls(runtime, context, workdir, limits, evalset, labels,
                  slots=threading.Semaphore(1 if low_memory else max(2, jobs)))
        context.observed.clear()
        threading.Thread(target=run._observe_reference, daemon=True).start()
        return run

    @property
    def children_kept_apart(self) -> bool:
        """Whether children running at the same time are kept out of each other's sandbox folder by
        the kernel (Landlock, or a user of their own). Where they are not, submissions run one at a
        time, and not beside the reference's child."""
        return "landlock" in self.runtime.isolation.layers or self.runtime.uids is not None

    def _observe_reference(self) -> None:
        try:
            with self.slots:  # the reference's child counts as one of the run's jobs (two at least)
                self.context.reference.update(self.observe_reference())
        except (OSError, isolation.WorkerError):  # the run was closed meanwhile: judging, if any, computes it here
            pass
        finally:
            self.context.observed.set()

    def job(self) -> dict:
        """What every child of this run is told, besides its definitions and steps."""
        return {"n_class": self.context.n_class, "seed": self.context.seed, "device": self.runtime.device}

    def observe_reference(self) -> dict:
        """The reference's observations for this run's seed, made once by a child of the warm worker
        as a submission's are (the grading process never imports torch); submissions wait for it
        unless :attr:`children_kept_apart`. What it could not observe is computed in this
        process when first needed."""
        outputs = OBSERVATIONS["outputs"]
        steps = [outputs.step_for(kind) for kind in MODEL_CLASSES]
        steps.append({"id": "copy", "op": "expected_copy", "kind": "fcn32s"})  # what a correct copy leaves
        expected = {"copy": (OBSERVATIONS["copy_params"].record,),
                    **{outputs.step_id(kind): (outputs.record,) for kind in MODEL_CLASSES}}
        limits = Limits.sharing_cores(2 if self.children_kept_apart else 1, memory_gb=self.limits.memory_gb)
        folder = self.runtime.sandboxes / f"reference-{secrets.token_hex(8)}"  # unguessable, as every sandbox's
        try:
            result = isolation.run(self.runtime, folder, _chunks(extract(REFERENCE_SOURCE)), steps, limits,
                                   self.job(), expected)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        observed = {step.removeprefix(f"{outputs.name}-"): outcome.record for step, outcome in result.steps.items()
                    if outcome.record is not None and not isinstance(outcome.record, Failure)}
        return {kind: record for kind, record in observed.items() if not getattr(record, "error", "")}

    def close(self) -> None:
        self.runtime.close()
        tempdirs.remove(self.workdir)


@contextmanager
def grading_run(**options) -> Iterator[GradingRun]:
    """A started :class:`GradingRun` (``options``: those of :meth:`GradingRun.start`), closed after."""
    run = GradingRun.start(**options)
    try:
        yield run
    finally:
        run.close()


def _steps(items, weights: dict, run: GradingRun) -> tuple[dict, dict, dict]:
    """The steps the child is sent for ``items``, what each must write, and the outcomes of those
    that cannot be sent (a checkpoint that is not a regular file); the files to hand the child."""
    steps, outcomes, files = {}, {}, {}
    for item in items:
        step = OBSERVATIONS[item.observes].step_for(item.model)
        steps[step["id"]] = step
    for sid, s in list(steps.items()):  # the child gets these open, not their paths
        if "checkpoint" in s:
            try:  # a pipe would block this process; a link could hand the child any file (the labels)
                files[s["checkpoint"]] = open_regular(weights[s["kind"]])
            except UnreadableFile as err:
                unreadable = Diagnosis("checkpoint_unreadable", values={"checkpoint": CHECKPOINT_NAMES[s["kind"]],
                                                                        "error": err})
                outcomes[sid] = isolation.StepOutcome(failure=unreadable.sentence, diagnosis=unreadable)
                del steps[sid]
                continue
            if "images" not in files:
                files["images"] = os.open(run.evalset.images_file, os.O_RDONLY)
    return steps, outcomes, files


def _run_child(report: Report, run: GradingRun, extracted: Extracted, items, weights: dict
               ) -> tuple[dict, isolation.Stopped]:
    """Run the submission's child for ``items``: the outcome of each step, and why it stopped early."""
    # an unguessable name: where the kernel cannot keep children apart, none can make a later one's first
    folder = run.runtime.sandboxes / f"submission-{next(run.counter)}-{secrets.token_hex(8)}"
    files = {}
    try:
        job = run.job()
        steps, outcomes, files = _steps(items, weights, run)
        expected = {sid: (OBSERVATIONS[s["op"]].record,) for sid, s in steps.items()}
        if not run.children_kept_apart:
            run.context.observed.wait()
        with phase("running the submission's child"), run.slots:
            result = isolation.run(run.runtime, folder, _chunks(extracted), list(steps.values()), run.limits, job,
                                   expected, files)
        if result.stopped and "start" not in result.seconds:  # no child of it ever started: nothing it did
            raise GraderError("starting the grading child", result.stopped.words)
        report.notes += result.notes
        report.phases.update(result.seconds)
        return {**outcomes, **result.steps}, result.stopped or isolation.DID_NOT_RUN
    finally:
        for fd in files.values():
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)


def grade_submission(student: str, path: Path, checkpoints: Path | None = None, evalset: EvalSet | None = None,
                     device: str = "cpu", limits: Limits | None = None, only: list[str] | None = None,
                     run: GradingRun | None = None) -> Report:
    """Grade one submission file; never raises for anything the submission does. Raises GraderError
    when the grader fails on it (the caller reports it as not graded, see :func:`not_graded_report`).

    ``only`` restricts grading to some rubric items (the others are reported as not graded). Without
    ``run``, a grading run is started for this submission alone."""
    if run is None:
        with grading_run(evalset=evalset, device=device, limits=limits or Limits()) as run:
            return grade_submission(student, path, checkpoints, evalset, device, limits, only, run)
    start = time.perf_counter()
    report = Report(student, str(path), seed=run.context.seed, isolation=asdict(run.runtime.isolation))
    weights = find_checkpoints(checkpoints, student) if checkpoints is not None else {}
    predictions = {kind: find_predictions(Path(path), kind, student, checkpoints) for kind in MODEL_CLASSES}
    items = [i for i in RUBRIC if (not i.needs_weights or (weights.get(i.model) and run.evalset))
             and (only is None or i.name in only)]
    outcomes, stopped = {}, isolation.DID_NOT_RUN
    try:
        with phase("reading the notebook", students=(SubmissionError,)):
            extracted = extract(path)
        report.notes += extracted.notes
    except SubmissionError as err:  # the student's file: a 0 with the reason
        extracted, stopped = None, isolation.Stopped(Diagnosis("definitions", err.why, {"reason": str(err)}))
        report.notes.append(stopped.words)
    report.phases["extraction"] = time.perf_counter() - start  # wall time by phase, for bench/grading_speed.py
    if extracted is not None and items:
        outcomes, stopped = _run_child(report, run, extracted, items, weights)
    judging = time.perf_counter()
    with phase("judging"):
        verdicts.judge_all(report, run, items, outcomes, predictions, weights, checkpoints, stopped, only)
    report.phases["judging"] = time.perf_counter() - judging
    report.seconds = round(time.perf_counter() - start, 1)
    return report


def grade_all(submissions: list[tuple[str, Path]], checkpoints: Path | None = None, evalset: EvalSet | None = None,
              device: str = "cpu", jobs: int = 1, limits: Limits | None = None, progress=None,
              run: GradingRun | None = None) -> list[Report]:
    """Grade ``(student, file)`` pairs (see find_submissions) with ``jobs`` children at a time (one
    where the machine cannot keep children apart: :attr:`GradingRun.children_kept_apart`)."""
    if run is None:
        with grading_run(evalset=evalset, device=device, limits=limits or Limits(), jobs=jobs) as run:
            return grade_all(submissions, checkpoints, evalset, device, jobs, limits, progress, run)
    jobs = jobs if run.children_kept_apart else 1

    def one(entry) -> Report:
        try:  # each submission is its own failure boundary: a grader error costs it, not the class
            report = grade_submission(*entry, checkpoints=checkpoints, evalset=evalset, device=device, run=run)
        except Exception as err:
            report = not_graded_report(*entry, err, run.context.seed, asdict(run.runtime.isolation))
        if progress:
            progress(report)
        return report
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, submissions))
