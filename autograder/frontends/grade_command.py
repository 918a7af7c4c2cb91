"""``python -m autograder grade``: a class (or one submission) graded into a reports folder's gradebook
(:mod:`autograder.record.gradebook`), resumable (:mod:`autograder.record.journal`), each student's
record committed and its files written as it is graded (:mod:`autograder.pipeline.classrun`), then
grades.csv, the score table, the class overview and, when asked, Gradescope's results, nbgrader's
gradebook and the run's timings."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .. import atomic
from ..isolation import LAYERS, tempdirs
from ..judging.miou import LabelSet
from ..pipeline import EvalSet, GradingRun, Limits, classrun, find_submissions, grade_all
from ..record import books, gradebook, journal
from ..reports.csv import write_csv
from ..reports.files import write_json
from ..reports.overview import class_pages
from ..reports.table import score_table
from ..results import Report


class CannotStart(Exception):
    """The run cannot start (exit 2); the message is the error line."""


def _grade_options(args, want: list[str]) -> dict:
    """The options a recorded run must share with this one for its grades to be kept."""
    resolved = lambda p: str(Path(p).resolve()) if p else None  # noqa: E731
    return {"path": resolved(args.path), "data": resolved(args.data or os.environ.get("FCNKIT_DATA")),
            "checkpoints": resolved(args.checkpoints), "split": args.split, "scale": args.scale,
            "device": args.device, "timeout": args.timeout, "check_timeout": args.check_timeout,
            "memory_gb": args.memory_gb, "isolation": want}


def _submissions(args, shard: tuple[int, int] | None) -> tuple[list[tuple[str, Path]], list[str]]:
    """The submissions this run grades and the isolation layers it wants; CannotStart when the
    options cannot be used."""
    try:
        submissions = find_submissions(args.path)[slice(shard[0], None, shard[1]) if shard else slice(None)]
    except FileNotFoundError as err:
        raise CannotStart(str(err)) from None
    if not submissions:
        raise CannotStart(f"no .ipynb or .py submissions under {args.path}")
    if args.gradescope and len(submissions) != 1:
        raise CannotStart("--gradescope writes one submission's results; give a single file")
    for flag, path in (("--json", args.json), ("--gradescope", args.gradescope), ("--timings", args.timings)):
        if path is not None and path.resolve().is_relative_to(args.out.resolve()):
            raise CannotStart(f"{flag} {path} is inside --out {args.out}, which holds the students' files (a student "
                              f"called {path.stem!r} has {args.out / path.name}): give a path outside it, e.g. "
                              f"{args.out.parent / path.name}")
    if args.gradebook and not (args.gradebook / "gradebook.db").is_file():
        raise CannotStart(f"--gradebook {args.gradebook}: no gradebook.db there; give the nbgrader course folder (the "
                          f"one holding nbgrader_config.py, source/ and submitted/)")
    want = [layer.strip() for layer in args.isolation.split(",") if layer.strip()]
    if unknown := [layer for layer in want if layer not in LAYERS]:
        raise CannotStart(f"--isolation: unknown layer {unknown[0]!r}; choose from {', '.join(LAYERS[:4])}")
    return submissions, want


def _labels(args) -> LabelSet | None:
    """The labels the submitted predictions are scored against (--data, else $FCNKIT_DATA)."""
    if not (args.data or os.environ.get("FCNKIT_DATA")):
        return None
    from fcnkit.splits import DataError
    try:
        labels = LabelSet(args.data or os.environ["FCNKIT_DATA"], args.split)
    except DataError as err:
        raise CannotStart(str(err)) from None
    print(f"scoring submitted predictions against the {len(labels.ids)} {args.split} labels of {labels.root}")
    return labels


def _evalset(args, eval_dir: Path) -> tuple[str, EvalSet | None]:
    """(device, images) the --checkpoints are evaluated on; the structural checks run on the CPU."""
    if not args.checkpoints:
        return "cpu", None
    from fcnkit.data import DATA_ENV, SAMPLE_ROOT, DataError
    from fcnkit.train import resolve_device
    if not args.checkpoints.is_dir():
        raise CannotStart(f"--checkpoints {args.checkpoints} is not a folder")
    device = resolve_device(args.device).type
    try:
        root = args.data or os.environ.get(DATA_ENV) or SAMPLE_ROOT
        evalset = EvalSet.load(root, args.split, args.scale, workdir=eval_dir)
    except DataError as err:
        raise CannotStart(str(err)) from None
    print(f"evaluating checkpoints on {evalset.size} {args.split} images of {root} (scale {args.scale}, {device})")
    return device, evalset


def grade(args, shard: tuple[int, int] | None, began: float) -> int:
    """``grade`` once its arguments are parsed: 0 when every submission is graded, 1 when some are
    not (a grader error: see the run log), 2 when the run cannot start."""
    try:
        submissions, want = _submissions(args, shard)
    except CannotStart as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = journal.names(shard)
    try:
        lock = journal.Lock(args.out / f"{stem}.lock")
    except journal.RunLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    eval_dir = book = None
    try:
        classrun.remove_stale_temporaries(args.out)  # a killed writer's, never a finished file
        book, answers = _gradebooks(args.out, shard)
        run, said = journal.resume(book, args.seed, _grade_options(args, want), journal.grader_fingerprint(),
                                   args.force, [s for s, _ in submissions])
        for line in said:
            print(line)
        labels = _labels(args)
        if args.checkpoints:
            eval_dir = tempdirs.make("fcnkit-eval-")
        device, evalset = _evalset(args, eval_dir)
        return _grade_class(args, shard, began, submissions, (book, run, answers), device, evalset, labels, want)
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


def _grade_class(args, shard, began, submissions, record, device, evalset, labels, want) -> int:
    book, run, answers = record
    log = classrun.RunLog(args.out / f"{journal.names(shard)}.log")
    todo = classrun.plan(submissions, book, run, args.checkpoints)
    if todo.kept:
        print(f"{len(todo.kept)} of {len(submissions)} submissions keep their recorded grading; grading "
              f"{len(todo.todo) + len(todo.unreadable)}")
    log.note(f"run {os.getpid()} started: {len(todo.todo)} to grade, {len(todo.kept)} kept, seed {run['seed']}, "
             f"options {run['options']}")
    one_at_a_time = device == "cuda" or args.low_memory  # one GPU: one child at a time
    jobs = 1 if one_at_a_time else max(1, min(args.jobs, len(todo.todo) or 1))
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)  # the cores are shared out among the children
    limits = Limits(wall_s=args.timeout, check_s=args.check_timeout, check_wall_s=max(args.check_timeout * 4, 60),
                    memory_gb=args.memory_gb, threads=threads)
    progress = classrun.Progress(len(todo.todo) + len(todo.unreadable))
    writer = classrun.Writer(args.out, book, run, todo.hashes, log, progress, answers)
    for report in todo.unreadable.values():
        writer.finished(report)
    started = graded = time.perf_counter()
    isolation = {}
    if todo.todo:
        try:
            grading = GradingRun.start(evalset, device, limits, seed=run["seed"], hidden=[args.path.resolve()],
                                       want=want, jobs=jobs, labels=labels, low_memory=args.low_memory)
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            log.note(f"the run could not start: {err}")
            return 2
        _say_isolation(grading, jobs)
        isolation = {"summary": grading.runtime.isolation.summary()}
        started = time.perf_counter()
        try:
            grade_all(todo.todo, args.checkpoints, evalset, device, jobs, limits, writer.finished, run=grading)
        finally:
            grading.close()
            progress.close()
        graded = time.perf_counter()
    stored = {r.student: r for r in book.reports([s for s, _ in submissions], answers)}  # the files are views
    # of these; one the gradebook could not take (its writing failed: logged) is shown as the writer had it
    reports = [stored.get(s) or writer.reports[s] for s, _ in submissions]
    status = _write_class(args, shard, (book, reports), log, labels, {
        "grading time": f"{graded - started:.1f} s", "jobs": str(jobs), "shard": args.shard or "all"})
    book.end_run(run, {"start": started - began, "grading": graded - started, "jobs": jobs, "threads": threads},
                 isolation)
    if status == 2:  # the gradebook could not be used
        return status
    if args.timings:
        _write_timings(args.timings, reports, began, started, graded, jobs, threads)
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


def _write_class(args, shard, record, log: classrun.RunLog, labels: LabelSet | None, facts: dict[str, str]) -> int:
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
    overview = args.out / "index.html"

    def pages() -> None:
        problems.extend(class_pages(args.out, reports, args.checkpoints, labels.ids if labels else None, facts)[1])
    attempt(overview, pages)
    book.set_flags(reports)  # the flags into the record, then every student's files from it
    book.set_facts(facts)
    problems.extend(classrun.write_views(args.out, reports))
    csv_path = args.out / (f"grades-{shard[0]}-of-{shard[1]}.csv" if shard else "grades.csv")
    attempt(csv_path, lambda: write_csv(reports, csv_path))
    if args.json:
        attempt(args.json, lambda: write_json(reports, args.json))
    if args.gradescope:
        from ..reports.gradescope import results
        attempt(args.gradescope, lambda: atomic.write_text(
            args.gradescope, json.dumps(results(reports[0], reports[0].seconds), indent=2) + "\n"))
    print()
    print(score_table(reports))
    print(f"\nreports: {args.out}/grades.csv, {args.out}/<student>.json, {args.out}/feedback/<student>.html")
    print(f"class overview: {overview}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
        log.note(problem)
    status = 1 if problems or any(r.not_graded for r in reports) else 0
    if args.gradebook:
        from ..reports.nbgrader import NbgraderError, record as into_gradebook
        try:
            filed = into_gradebook(args.gradebook, reports)
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
