"""Command line: ``python -m autograder grade PATH [options]`` (see --help)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import atomic, tempdirs
from .catalogue import EXAMPLES, write_submissions
from .judging.miou import LabelSet
from .pipeline import EvalSet, GradingRun, Limits, classrun, find_submissions, grade_all, journal
from .pipeline.legacy import legacy_dict  # SHIM issue 22
from .sandbox import LAYERS
from .report import score_table, write_csv, write_json



def default_jobs() -> int:
    """One child per core, each with one thread (forward passes scale better across processes than
    across threads: bench/grading_speed.py), fewer when memory is short: a child takes under 0.5 GiB
    of its own (docs/results.md), counted as 1 GiB to leave room for a submission's own allocations."""
    cores = len(os.sched_getaffinity(0))
    memory_gb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return max(1, min(cores, int(memory_gb // 1.0)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade FCN assignment submissions.")
    commands = parser.add_subparsers(dest="command", required=True)
    g = commands.add_parser("grade", help="grade a submission (.ipynb / .py) or a folder of them",
                            description="Grade a submission (.ipynb or .py) or a folder of them (nbgrader's "
                                        "submitted/<student>/<assignment>/ layout included).")
    g.add_argument("path", type=Path, nargs="?",
                   help="submission file or folder (default: the bundled examples: the reference solution and "
                        "three buggy submissions from autograder/catalogue.py)")
    g.add_argument("--data", help="dataset root whose labels the submitted predictions (outputs/fcn32s_predictions.npz, "
                                  "fcn8s_...) are scored against: enables the mIoU checks (default $FCNKIT_DATA)")
    g.add_argument("--checkpoints", type=Path,
                   help="folder with fcn32s.pt / fcn8s.pt (or <student>/.../fcn32s.pt for a class): the weights are "
                        "evaluated in the sandbox, and compared with the submitted predictions when there are any "
                        "(the dataset: --data, else $FCNKIT_DATA, else the bundled sample)")
    g.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate on")
    g.add_argument("--scale", type=float, default=0.5, help="image scale the checkpoints are evaluated at")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where checkpoints are evaluated (the structural checks always run on the CPU)")
    g.add_argument("--jobs", type=int, default=default_jobs(),
                   help="submissions graded at once (default: one per core, as memory allows)")
    g.add_argument("--timeout", type=int, default=Limits.wall_s, help="seconds per submission (structural checks)")
    g.add_argument("--check-timeout", type=int, default=Limits.check_s,
                   help="CPU seconds (of one thread) for one cell's definitions or one check; a check that waits "
                        "is stopped after four times as many seconds of wall-clock time (60 at least)")
    g.add_argument("--isolation", default=",".join(LAYERS[:4]),
                   help=f"layers to use when available, in the order they are given up: {', '.join(LAYERS[:4])} "
                        f"(rlimits are always on; the strongest available set is used and printed)")
    g.add_argument("--memory-gb", type=float, default=Limits.memory_gb, help="memory limit per submission (CPU)")
    g.add_argument("--low-memory", action="store_true",
                   help="one child at a time, the reference's included: the smallest run (what Gradescope uses)")
    g.add_argument("--out", type=Path, default=Path("grading-reports"),
                   help="folder for grades.csv, <student>.json and feedback/<student>.html")
    g.add_argument("--seed", type=int,
                   help="seed of the weights and inputs the checks use (default: drawn afresh for each run; "
                        "recorded in every report, so a run can be repeated exactly)")
    g.add_argument("--json", type=Path, help="also write the report(s) as JSON here")
    g.add_argument("--gradescope", type=Path, help="write Gradescope results.json here (one submission)")
    g.add_argument("--gradebook", type=Path, metavar="COURSE",
                   help="an nbgrader course folder: file the graded submissions (COURSE/submitted/...) with nbgrader "
                        "autograde without running them, and put the scores into its gradebook and autograded "
                        "notebooks (formgrader and generate_feedback show them)")
    g.add_argument("--timings", type=Path, help="write where the time went (by phase, per submission) as JSON here "
                                                 "(bench/grading_speed.py reads it)")
    g.add_argument("--shard", help="K/N: grade only every N-th submission starting at K (0-based), for job arrays")
    g.add_argument("--force", action="store_true",
                   help="grade everyone again (by default a rerun into the same --out keeps the reports its journal "
                        "records as graded, of unchanged files, and grades the rest with the recorded seed)")
    s = commands.add_parser("summarize", help="rebuild grades.csv and the score table from <student>.json reports",
                            description="Rebuild OUT/grades.csv from the <student>.json files in OUT (e.g. after "
                                        "sharded runs wrote into the same folder).")
    s.add_argument("out", type=Path)
    b = commands.add_parser("gradescope-bundle", help="write the Gradescope autograder zip",
                            description="Write the autograder zip to upload to Gradescope (setup.sh, run_autograder, "
                                        "the fcnkit and grader wheels, and with --data the test split's images and "
                                        "labels, so that the mIoU items are graded from the predictions students "
                                        "submit).")
    b.add_argument("out", type=Path, help="the zip to write, e.g. fcn_gradescope.zip")
    b.add_argument("--data", type=Path, help="dataset folder whose test split goes into the zip (default $FCNKIT_DATA; "
                                              "without one the mIoU items are not graded on Gradescope)")
    a = commands.add_parser("answers", help="pages to grade the written answers one question at a time, and the "
                                             "import of their scores",
                            description="Write a page per written question with every student's answer "
                                        "(python -m autograder answers SUBMISSIONS --out DIR), or merge the CSVs "
                                        "those pages save into the reports (--import CSV ...).")
    a.add_argument("path", type=Path, nargs="?", help="submission file or folder (as for grade)")
    a.add_argument("--out", type=Path, default=Path("answers"), help="folder for the pages (default answers/)")
    a.add_argument("--anonymous", action="store_true", help="show students as 'student 01'..., in a shuffled order")
    a.add_argument("--source", type=Path, help="the source notebook, which holds the questions' keys "
                                                "(default: notebooks/source/... of this repository)")
    a.add_argument("--import", dest="imports", type=Path, nargs="+", metavar="CSV",
                   help="scores saved by the pages: merged into the reports folder")
    a.add_argument("--reports", type=Path, default=Path("grading-reports"),
                   help="the reports folder of python -m autograder grade (default grading-reports/)")
    a.add_argument("--gradebook", type=Path, metavar="COURSE", help="also into this nbgrader course's gradebook")
    r = commands.add_parser("gradescope-run", help="what the zip's run_autograder runs",
                            description="Grade ROOT/submission, write ROOT/results/results.json (Gradescope's "
                                        "layout; ROOT is /autograder there).")
    r.add_argument("root", type=Path, nargs="?", default=Path("/autograder"))
    from .canvas import add_export_parser  # python -m autograder export canvas ...
    add_export_parser(commands)
    return parser


def answers(args) -> int:
    from .answers import SOURCE, AnswersError, import_scores, write_pages
    source = args.source or SOURCE
    try:
        if args.imports:
            print("\n".join(import_scores(args.imports, args.reports, source, args.gradebook)))
            return 0
        if args.path is None:
            print("error: give the submissions (a file or folder), or --import CSV", file=sys.stderr)
            return 2
        pages = write_pages(find_submissions(args.path), args.out, source, args.anonymous)
    except (AnswersError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(f"wrote {p}" for p in pages))
    print(f"open them in a browser, score, save each page's CSV (its button), then: python -m autograder answers "
          f"--import scores-question1.csv scores-question2.csv --reports {args.reports}")
    return 0


def gradescope_bundle(out: Path, data: Path | None) -> int:
    from fcnkit.splits import DataError
    from .gradescope import bundle
    if out.suffix != ".zip":
        print(f"error: {out}: the autograder bundle is a .zip", file=sys.stderr)
        return 2
    data = data or (Path(os.environ["FCNKIT_DATA"]) if os.environ.get("FCNKIT_DATA") else None)
    try:
        names = bundle(out, data)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    images = sum(n.endswith(".jpg") for n in names)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): setup.sh, run_autograder, "
          f"{sum(n.endswith('.whl') for n in names)} wheels, "
          + (f"{images} test images with their labels" if images else "no dataset (mIoU items not graded)"))
    print("upload it in Gradescope: Assignment > Configure Autograder > Zip file upload (Ubuntu 22.04 base image)")
    return 0


def summarize(out: Path) -> int:
    """grades.csv from the reports in ``out``; names the submissions its journals list without a
    report, or not graded (exit 1 when there are any)."""
    reports = []
    for path in sorted(out.glob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            print(f"warning: {path} skipped: not a whole report ({err})", file=sys.stderr)
            continue
        if isinstance(report, dict) and {"student", "checks", "score"} <= set(report):
            reports.append(report)
    if not reports:
        print(f"error: no <student>.json reports in {out}", file=sys.stderr)
        return 2
    write_csv(reports, out / "grades.csv")
    print(score_table(reports))
    print(f"\nwrote {out / 'grades.csv'} ({len(reports)} students)")
    have = {r["student"] for r in reports if not r.get("not_graded")}
    missing = {}
    for path in sorted(out.glob("run*.journal")):
        if (record := journal.Journal.read(path)) is not None:
            missing.update(record.missing(have))
    if missing:
        print(f"\n{len(missing)} submissions have no report: " + "; ".join(f"{s} ({why})" for s, why in
                                                                          sorted(missing.items()))
              + ". Rerun the grade command (it resumes) to grade them.")
    from .overview import class_pages  # integrity flags across the shards, and the overview
    print(f"class overview: {class_pages(out, reports)}")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    began = time.perf_counter()
    for stream in (sys.stdout, sys.stderr):  # a name like josé must not stop the run under LC_ALL=C
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = _parser().parse_args(argv)
    if args.command == "summarize":
        return summarize(args.out)
    if args.command == "answers":
        return answers(args)
    if args.command == "gradescope-bundle":
        return gradescope_bundle(args.out, args.data)
    if args.command == "export":
        from .canvas import export_main
        return export_main(args)
    if args.command == "gradescope-run":
        from .pipeline import GraderError
        from .gradescope import run
        try:
            print(json.dumps(run(args.root), indent=1))
        except GraderError as err:
            print(f"error: not graded: {err} (results.json says so, without a score)", file=sys.stderr)
            return 1
        return 0
    shard = None
    if args.shard:
        k, _, n = args.shard.partition("/")
        if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
            print(f"error: --shard {args.shard}: expected K/N with 0 <= K < N, e.g. 0/4", file=sys.stderr)
            return 2
        shard = (int(k), int(n))
    examples = None
    if args.path is None:
        examples = args.path = tempdirs.make("fcnkit-examples-")
        write_submissions(args.path, EXAMPLES)
        print(f"grading the bundled examples ({', '.join(EXAMPLES)}), written to {args.path}")
    try:
        return grade(args, shard, began)
    finally:
        tempdirs.remove(examples)


def _grade_options(args, want: list[str]) -> dict:
    """The options a recorded run must share with this one for its grades to be kept."""
    resolved = lambda p: str(Path(p).resolve()) if p else None  # noqa: E731
    return {"path": resolved(args.path), "data": resolved(args.data or os.environ.get("FCNKIT_DATA")),
            "checkpoints": resolved(args.checkpoints), "split": args.split, "scale": args.scale,
            "device": args.device, "timeout": args.timeout, "check_timeout": args.check_timeout,
            "memory_gb": args.memory_gb, "isolation": want}


def grade(args, shard: tuple[int, int] | None, began: float) -> int:
    """``grade`` once its arguments are parsed: 0 when every submission is graded, 1 when some are
    not (a grader error: see the run log), 2 when the run cannot start."""
    try:
        submissions = find_submissions(args.path)[slice(shard[0], None, shard[1]) if shard else slice(None)]
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not submissions:
        print(f"error: no .ipynb or .py submissions under {args.path}", file=sys.stderr)
        return 2
    if args.gradescope and len(submissions) != 1:
        print("error: --gradescope writes one submission's results; give a single file", file=sys.stderr)
        return 2
    if args.gradebook and not (args.gradebook / "gradebook.db").is_file():
        print(f"error: --gradebook {args.gradebook}: no gradebook.db there; give the nbgrader course folder (the one "
              f"holding nbgrader_config.py, source/ and submitted/)", file=sys.stderr)
        return 2
    want = [layer.strip() for layer in args.isolation.split(",") if layer.strip()]
    if unknown := [layer for layer in want if layer not in LAYERS]:
        print(f"error: --isolation: unknown layer {unknown[0]!r}; choose from {', '.join(LAYERS[:4])}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = journal.names(shard)
    try:
        lock = journal.Lock(args.out / f"{stem}.lock")
    except journal.RunLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    eval_dir = None
    try:
        for folder in (args.out, args.out / "feedback"):
            atomic.remove_stale_temporaries(folder)  # a killed writer's, never a finished file
        record, said = journal.resume(args.out / f"{stem}.journal", args.seed, _grade_options(args, want),
                                      journal.grader_fingerprint(), args.force)
        for line in said:
            print(line)
        device, evalset, labels = "cpu", None, None  # structural checks run on the CPU; only trained weights use a GPU
        if args.data or os.environ.get("FCNKIT_DATA"):
            from fcnkit.splits import DataError
            try:
                labels = LabelSet(args.data or os.environ["FCNKIT_DATA"], args.split)
            except DataError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            print(f"scoring submitted predictions against the {len(labels.ids)} {args.split} labels of {labels.root}")
        if args.checkpoints:
            from fcnkit.data import DATA_ENV, SAMPLE_ROOT, DataError
            from fcnkit.train import resolve_device
            if not args.checkpoints.is_dir():
                print(f"error: --checkpoints {args.checkpoints} is not a folder", file=sys.stderr)
                return 2
            device = resolve_device(args.device).type
            try:
                root = args.data or os.environ.get(DATA_ENV) or SAMPLE_ROOT
                eval_dir = tempdirs.make("fcnkit-eval-")
                evalset = EvalSet.load(root, args.split, args.scale, workdir=eval_dir)
            except DataError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            print(f"evaluating checkpoints on {evalset.size} {args.split} images of {root} (scale {args.scale}, {device})")
        return _grade_class(args, shard, began, submissions, record, device, evalset, labels, want)
    finally:
        tempdirs.remove(eval_dir)
        lock.release()


def _grade_class(args, shard, began, submissions, record, device, evalset, labels, want) -> int:
    log = classrun.RunLog(args.out / f"{journal.names(shard)}.log")
    record.students = [s for s, _ in submissions]
    record.save()
    todo = classrun.plan(submissions, record, args.out, args.checkpoints)
    if todo.kept:
        print(f"{len(todo.kept)} of {len(submissions)} submissions keep their recorded reports; grading "
              f"{len(todo.todo) + len(todo.unreadable)}")
    log.note(f"run {os.getpid()} started: {len(todo.todo)} to grade, {len(todo.kept)} kept, seed {record.seed}, "
             f"options {record.options}")
    one_at_a_time = device == "cuda" or args.low_memory  # one GPU: one child at a time
    jobs = 1 if one_at_a_time else max(1, min(args.jobs, len(todo.todo) or 1))
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)  # the cores are shared out among the children
    limits = Limits(wall_s=args.timeout, check_s=args.check_timeout, check_wall_s=max(args.check_timeout * 4, 60),
                    memory_gb=args.memory_gb, threads=threads)
    progress = classrun.Progress(len(todo.todo) + len(todo.unreadable))
    writer = classrun.Writer(args.out, record, todo.hashes, log, progress)
    for report in todo.unreadable.values():
        writer.finished(report)
    started = graded = time.perf_counter()
    if todo.todo:
        try:
            run = GradingRun.start(evalset, device, limits, seed=record.seed, hidden=[args.path.resolve()], want=want,
                                   jobs=jobs, labels=labels, low_memory=args.low_memory)
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            log.note(f"the run could not start: {err}")
            return 2
        print(f"{run.runtime.isolation.summary()}; seed {run.context.seed}", flush=True)
        if jobs > 1 and not run.children_kept_apart:
            print("one submission at a time: without Landlock or a user per child, children could read each other's "
                  "files", flush=True)
        started = time.perf_counter()
        try:
            grade_all(todo.todo, args.checkpoints, evalset, device, jobs, limits, writer.finished, run=run)
        finally:
            run.close()
            progress.close()
        graded = time.perf_counter()
    typed = [todo.kept.get(s) or writer.reports[s] for s, _ in submissions]
    reports = [legacy_dict(r) for r in typed]  # SHIM issue 22: until the reports read Report objects
    write_csv(reports, args.out / (f"grades-{shard[0]}-of-{shard[1]}.csv" if shard else "grades.csv"))
    if args.json:
        write_json(reports, args.json)
    if args.gradescope:
        from .gradescope import results
        atomic.write_text(args.gradescope, json.dumps(results(reports[0], reports[0].get("_seconds", 0)), indent=2)
                          + "\n")
    status = 1 if any(r.get("not_graded") for r in reports) else 0
    if args.gradebook:
        from .gradebook import GradebookError, record as into_gradebook
        try:
            filed = into_gradebook(args.gradebook, reports)
        except GradebookError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print("\n".join(filed.done))
        for problem in filed.problems:
            print(f"error: {problem}", file=sys.stderr)
            log.note(problem)
        status = status or (1 if filed.problems else 0)
    print()
    print(score_table(reports))
    print(f"\nreports: {args.out}/grades.csv, {args.out}/<student>.json, {args.out}/feedback/<student>.html")
    from .overview import class_pages  # integrity flags and the class overview, after the reports
    facts = {"grading time": f"{graded - started:.1f} s", "jobs": str(jobs), "shard": args.shard or "all"}
    print(f"class overview: {class_pages(args.out, reports, args.checkpoints, labels.ids if labels else None, facts)}")
    if args.timings:
        atomic.write_text(args.timings, json.dumps({
            "start": started - began, "grading": graded - started, "reporting": time.perf_counter() - graded,
            "jobs": jobs, "threads": threads,
            "submissions": [{"student": r["student"], "seconds": r.get("_seconds", 0), "phases": r.get("_phases", {})}
                            for r in reports],
        }, indent=1) + "\n")
    final = classrun.counts_line(typed, len(todo.kept), log.path, log.errors)
    log.note(f"run {os.getpid()} ended: {final}")
    print(final)
    return status


if __name__ == "__main__":
    sys.exit(main())
