"""A class graded into a reports folder's gradebook (:mod:`autograder.record.gradebook`), resumable
(:mod:`autograder.record.journal`), each student's record committed and its files written as it is graded
(:mod:`.classrun`), then grades.csv, the score table, the class overview and, when asked, Gradescope's
results, nbgrader's gradebook and the run's timings. The front-ends (``python -m autograder grade``)
parse their arguments into :class:`ClassOptions` and call :func:`grade_class`::

    grade_class(ClassOptions(Path("submitted"), out=Path("reports"), jobs=2, seed=7))
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic
from ..isolation import LAYERS, tempdirs
from ..judging.integrity import flag_class
from ..judging.miou import LabelSet
from ..record import books, gradebook, journal
from ..reports.csv import write_csv
from ..reports.files import write_json
from ..reports.overview import class_pages
from ..reports.table import score_table
from ..results import Report
from . import classrun
from .discover import find_submissions, predictions_finder
from .evalset import EvalSet
from .run import GradingRun, Limits, default_jobs, grade_all


@dataclass(frozen=True)
class ClassOptions:
    """What a class run is asked to do: the ``grade`` command's options, typed (``--help`` says each).

    Args:
        path: a submission (.ipynb / .py) or a folder of them.
        out: the reports folder (its gradebook, grades.csv, <student>.json, feedback/).
        data: the dataset root whose labels submitted predictions are scored against (None: not scored).
        checkpoints: the folder of weights to evaluate (None: none).
        jobs: submissions graded at once (fewer when there are fewer; one on a GPU or with ``low_memory``).
        shard: (K, N): every N-th submission from the K-th (0-based), for job arrays.
        isolation: the layers wanted, in the order they are given up.
        seed: the checks' seed (None: drawn afresh, or the one a rerun's gradebook records).
        json, gradescope, timings: files also written, outside ``out``; gradebook: an nbgrader course.
    """
    path: Path
    out: Path = Path("grading-reports")
    data: str | None = None
    checkpoints: Path | None = None
    split: str = "test"
    scale: float = 0.5
    device: str = "auto"
    jobs: int = field(default_factory=default_jobs)
    timeout: int = Limits.wall_s
    check_timeout: int = Limits.check_s
    memory_gb: float = Limits.memory_gb
    isolation: tuple[str, ...] = tuple(LAYERS[:4])
    low_memory: bool = False
    seed: int | None = None
    force: bool = False
    shard: tuple[int, int] | None = None
    json: Path | None = None
    gradescope: Path | None = None
    gradebook: Path | None = None
    timings: Path | None = None


class CannotStart(Exception):
    """The run cannot start (exit 2); the message is the error line."""


def _recorded_options(options: ClassOptions) -> dict:
    """The options a recorded run must share with this one for its grades to be kept."""
    resolved = lambda p: str(Path(p).resolve()) if p else None  # noqa: E731
    return {"path": resolved(options.path), "data": resolved(options.data),
            "checkpoints": resolved(options.checkpoints), "split": options.split, "scale": options.scale,
            "device": options.device, "timeout": options.timeout, "check_timeout": options.check_timeout,
            "memory_gb": options.memory_gb, "isolation": list(options.isolation)}


def _submissions(options: ClassOptions) -> list[tuple[str, Path]]:
    """The submissions this run grades; CannotStart when the options cannot be used."""
    try:
        shard = options.shard
        submissions = find_submissions(options.path)[slice(shard[0], None, shard[1]) if shard else slice(None)]
    except FileNotFoundError as err:
        raise CannotStart(str(err)) from None
    if not submissions:
        raise CannotStart(f"no .ipynb or .py submissions under {options.path}")
    if options.gradescope and len(submissions) != 1:
        raise CannotStart("--gradescope writes one submission's results; give a single file")
    for flag, path in (("--json", options.json), ("--gradescope", options.gradescope), ("--timings", options.timings)):
        if path is not None and path.resolve().is_relative_to(options.out.resolve()):
            raise CannotStart(f"{flag} {path} is inside --out {options.out}, which holds the students' files (a student "
                              f"called {path.stem!r} has {options.out / path.name}): give a path outside it, e.g. "
                              f"{options.out.parent / path.name}")
    if options.gradebook and not (options.gradebook / "gradebook.db").is_file():
        raise CannotStart(f"--gradebook {options.gradebook}: no gradebook.db there; give the nbgrader course folder (the "
                          f"one holding nbgrader_config.py, source/ and submitted/)")
    if unknown := [layer for layer in options.isolation if layer not in LAYERS]:
        raise CannotStart(f"--isolation: unknown layer {unknown[0]!r}; choose from {', '.join(LAYERS[:4])}")
    return submissions


def _labels(options: ClassOptions) -> LabelSet | None:
    """The labels the submitted predictions are scored against (--data), if any."""
    if not options.data:
        return None
    from fcnkit.splits import DataError
    try:
        labels = LabelSet(options.data, options.split)
    except DataError as err:
        raise CannotStart(str(err)) from None
    print(f"scoring submitted predictions against the {len(labels.ids)} {options.split} labels of {labels.root}")
    return labels


def _evalset(options: ClassOptions, eval_dir: Path) -> tuple[str, EvalSet | None]:
    """(device, images) the --checkpoints are evaluated on; the structural checks run on the CPU."""
    if not options.checkpoints:
        return "cpu", None
    from fcnkit.data import SAMPLE_ROOT, DataError
    from fcnkit.train import resolve_device
    if not options.checkpoints.is_dir():
        raise CannotStart(f"--checkpoints {options.checkpoints} is not a folder")
    device = resolve_device(options.device).type
    try:
        root = options.data or SAMPLE_ROOT
        evalset = EvalSet.load(root, options.split, options.scale, workdir=eval_dir)
    except DataError as err:
        raise CannotStart(str(err)) from None
    print(f"evaluating checkpoints on {evalset.size} {options.split} images of {root} (scale {options.scale}, {device})")
    return device, evalset


def grade_class(options: ClassOptions, began: float | None = None) -> int:
    """Grade a class (or one submission) into ``options.out``: 0 when every submission is graded, 1 when
    some are not (a grader error: see the run log), 2 when the run cannot start (the reason printed).

    Args:
        options: what to grade and how (the command line's ``grade`` options).
        began: ``time.perf_counter()`` when the command started (the timings' start-up phase).
    """
    began = time.perf_counter() if began is None else began
    try:
        submissions = _submissions(options)
    except CannotStart as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options.out.mkdir(parents=True, exist_ok=True)
    stem = journal.names(options.shard)
    try:
        lock = journal.Lock(options.out / f"{stem}.lock")
    except journal.RunLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    eval_dir = book = None
    try:
        classrun.remove_stale_temporaries(options.out)  # a killed writer's, never a finished file
        book, answers = _gradebooks(options.out, options.shard)
        run, said = journal.resume(book, options.seed, _recorded_options(options), journal.grader_fingerprint(),
                                   options.force, [s for s, _ in submissions])
        for line in said:
            print(line)
        labels = _labels(options)
        if options.checkpoints:
            eval_dir = tempdirs.make("fcnkit-eval-")
        device, evalset = _evalset(options, eval_dir)
        return _grade(options, began, submissions, (book, run, answers), device, evalset, labels)
    except CannotStart as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        tempdirs.remove(eval_dir)
        if book is not None:
            book.close()
        lock.release()


def _gradebooks(out: Path, shard) -> tuple[gradebook.Gradebook, dict | None]:
    """The run's gradebook (a shard's own) and the written answers' imported scores, which live in
    the class's (grading reads them, never writes them); CannotStart when one cannot be used."""
    try:
        book = books.open_class(out, shard)
        if not shard:
            return book, book.answers()
        if not gradebook.path_of(out).is_file():
            return book, None
        main = books.open_class(out)
        try:
            return book, main.answers()
        finally:
            main.close()
    except gradebook.GradebookError as err:
        raise CannotStart(str(err)) from None


def _grade(options: ClassOptions, began, submissions, record, device, evalset, labels) -> int:
    book, run, answers = record
    log = classrun.RunLog(options.out / f"{journal.names(options.shard)}.log")
    todo = classrun.plan(submissions, book, run, options.checkpoints)
    if todo.kept:
        print(f"{len(todo.kept)} of {len(submissions)} submissions keep their recorded grading; grading "
              f"{len(todo.todo) + len(todo.unreadable)}")
    log.note(f"run {os.getpid()} started: {len(todo.todo)} to grade, {len(todo.kept)} kept, seed {run['seed']}, "
             f"options {run['options']}")
    one_at_a_time = device == "cuda" or options.low_memory  # one GPU: one child at a time
    jobs = 1 if one_at_a_time else max(1, min(options.jobs, len(todo.todo) or 1))
    limits = Limits.sharing_cores(jobs, wall_s=options.timeout, check_s=options.check_timeout,
                                  check_wall_s=max(options.check_timeout * 4, 60), memory_gb=options.memory_gb)
    progress = classrun.Progress(len(todo.todo) + len(todo.unreadable))
    writer = classrun.Writer(options.out, book, run, todo.hashes, log, progress, answers)
    for report in todo.unreadable.values():
        writer.finished(report)
    started = graded = time.perf_counter()
    isolation = {}
    if todo.todo:
        try:
            grading = GradingRun.start(evalset, device, limits, seed=run["seed"], hidden=[options.path.resolve()],
                                       want=list(options.isolation), jobs=jobs, labels=labels,
                                       low_memory=options.low_memory)
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            log.note(f"the run could not start: {err}")
            return 2
        _say_isolation(grading, jobs)
        isolation = {"summary": grading.runtime.isolation.summary()}
        started = time.perf_counter()
        try:
            grade_all(todo.todo, options.checkpoints, evalset, device, jobs, limits, writer.finished, run=grading)
        finally:
            grading.close()
            progress.close()
        graded = time.perf_counter()
    stored = {r.student: r for r in book.reports([s for s, _ in submissions], answers)}  # the files are views
    # of these; one the gradebook could not take (its writing failed: logged) is shown as the writer had it
    reports = [stored.get(s) or writer.reports[s] for s, _ in submissions]
    shard = f"{options.shard[0]}/{options.shard[1]}" if options.shard else "all"
    status = _write_class(options, (book, reports), log, labels, {
        "graded": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "grading time": f"{graded - started:.1f} s",
        "jobs": str(jobs), "shard": shard})
    book.end_run(run, {"start": started - began, "grading": graded - started, "jobs": jobs,
                       "threads": limits.threads}, isolation)
    if status == 2:  # the gradebook could not be used
        return status
    if options.timings:
        _write_timings(options.timings, reports, began, started, graded, jobs, limits.threads)
    final = classrun.counts_line(reports, len(todo.kept), log.path, log.errors)
    log.note(f"run {os.getpid()} ended: {final}")
    print(final)
    return status


def _say_isolation(run: GradingRun, jobs: int) -> None:
    print(f"{run.runtime.isolation.summary()}; seed {run.context.seed}", flush=True)
    if run.runtime.note:
        print(run.runtime.note, flush=True)
    if jobs > 1 and not run.children_kept_apart:
        print("one submission at a time: without Landlock or a user per child, children could read each other's "
              "files", flush=True)


def _write_class(options: ClassOptions, record, log: classrun.RunLog, labels: LabelSet | None, facts: dict[str, str]) -> int:
    """The integrity flags, their pair pages and the class overview (grades.csv's review column and
    --json carry the flags), grades.csv, --json, --gradescope, the score table and --gradebook, once
    every report is written; each file is its own failure boundary (one that cannot be written is
    named and logged, never stops the others). Returns the run's exit status: 1 when a submission is
    not graded or a file could not be written, 2 when the gradebook could not be used."""
    book, reports = record
    problems = []

    def attempt(what: Path, write) -> None:
        try:
            write()
        except OSError as err:
            problems.append(f"{what} could not be written: {err}")
    overview = options.out / "index.html"

    flag_class(reports, predictions_finder(options.checkpoints), labels.ids if labels else None)

    def pages() -> None:
        problems.extend(class_pages(options.out, reports, book.facts(facts))[1])
    attempt(overview, pages)
    book.set_flags(reports)  # the flags into the record, then every student's files from it
    book.set_facts(facts)
    problems.extend(classrun.write_views(options.out, reports))
    shard = options.shard
    csv_path = options.out / (f"grades-{shard[0]}-of-{shard[1]}.csv" if shard else "grades.csv")
    attempt(csv_path, lambda: write_csv(reports, csv_path))
    if options.json:
        attempt(options.json, lambda: write_json(reports, options.json))
    if options.gradescope:
        from ..reports.gradescope import results
        attempt(options.gradescope, lambda: atomic.write_text(
            options.gradescope, json.dumps(results(reports[0], reports[0].seconds), indent=2) + "\n"))
    print()
    print(score_table(reports))
    print(f"\nreports: {options.out}/grades.csv, {options.out}/<student>.json, {options.out}/feedback/<student>.html")
    print(f"class overview: {overview}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
        log.note(problem)
    status = 1 if problems or any(r.not_graded for r in reports) else 0
    if options.gradebook:
        from ..reports.nbgrader import NbgraderError, record as into_gradebook
        try:
            filed = into_gradebook(options.gradebook, reports)
        except NbgraderError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print("\n".join(filed.done))
        for problem in filed.problems:
            print(f"error: {problem}", file=sys.stderr)
            log.note(problem)
        status = status or (1 if filed.problems else 0)
    return status


def _write_timings(path: Path, reports: list[Report], began: float, started: float, graded: float, jobs: int,
                   threads: int) -> None:
    """Where the time went, by phase and per submission (bench/grading_speed.py reads it)."""
    atomic.write_text(path, json.dumps({
        "start": started - began, "grading": graded - started, "reporting": time.perf_counter() - graded,
        "jobs": jobs, "threads": threads,
        "submissions": [{"student": r.student, "seconds": r.seconds, "phases": r.phases} for r in reports],
    }, indent=1) + "\n")
