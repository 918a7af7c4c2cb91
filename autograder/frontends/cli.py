"""The command line: ``python -m autograder COMMAND`` (grade, summarize, answers, gradescope-bundle,
gradescope-run, gradescope-autograde, export; see --help). Each command's work is in its own module; this one parses the
arguments and dispatches."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..catalogue import EXAMPLES, write_submissions
from ..isolation import LAYERS, tempdirs
from ..pipeline import ClassOptions, Limits, default_jobs, find_submissions, grade_class
from ..pipeline.summarize import summarize
from ..reports.canvas import DEFAULT_ASSIGNMENT


def _grade_parser(commands) -> None:
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
    g.add_argument("--json", type=Path, help="also write the report(s) as JSON here (outside --out, which holds the "
                                             "students' files)")
    g.add_argument("--gradescope", type=Path, help="write Gradescope results.json here (one submission; outside --out)")
    g.add_argument("--gradebook", type=Path, metavar="COURSE",
                   help="an nbgrader course folder: file the graded submissions (COURSE/submitted/...) with nbgrader "
                        "autograde without running them, and put the scores into its gradebook and autograded "
                        "notebooks (formgrader and generate_feedback show them)")
    g.add_argument("--timings", type=Path, help="write where the time went (by phase, per submission) as JSON here, "
                                                 "outside --out (bench/grading_speed.py reads it)")
    g.add_argument("--shard", help="K/N: grade only every N-th submission starting at K (0-based), for job arrays")
    g.add_argument("--force", action="store_true",
                   help="grade everyone again (by default a rerun into the same --out keeps what its gradebook "
                        "records as graded, of unchanged files, and grades the rest with the recorded seed)")


def _summarize_parser(commands) -> None:
    s = commands.add_parser("summarize", help="join the shards' gradebooks and rebuild every file from the gradebook",
                            description="Join the gradebooks of sharded runs (OUT/gradebook-K-of-N.sqlite) into "
                                        "OUT/gradebook.sqlite, then rewrite grades.csv, the <student>.json reports, "
                                        "the feedback pages and the overview from it.")
    s.add_argument("out", type=Path)


def _answers_parser(commands) -> None:
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


def _bundle_parser(commands) -> None:
    b = commands.add_parser("gradescope-bundle", help="write the Gradescope autograder zip",
                            description="Write the autograder zip to upload to Gradescope (setup.sh, run_autograder, "
                                        "the fcnkit and grader wheels, and with --data the test split's images and "
                                        "labels, so that the mIoU items are graded from the predictions students "
                                        "submit).")
    b.add_argument("out", type=Path, help="the zip to write, e.g. fcn_gradescope.zip")
    b.add_argument("--data", type=Path, help="dataset folder whose test split goes into the zip (default $FCNKIT_DATA; "
                                              "without one the mIoU items are not graded on Gradescope)")


def _run_parser(commands) -> None:
    r = commands.add_parser("gradescope-run", help="run the Gradescope zip's run_autograder here, on one submission",
                            description="Lay out a temporary folder as Gradescope's /autograder (the zip unpacked, "
                                        "SUBMISSION in submission/), run the zip's run_autograder there as Gradescope "
                                        "does, and print results.json's score and tests.")
    r.add_argument("submission", type=Path, help="the notebook a student uploads, or a folder with it and outputs/")
    r.add_argument("--bundle", type=Path, help="the zip of gradescope-bundle (default: one is built for the run)")
    r.add_argument("--data", type=Path, help="for a zip built for the run: dataset folder whose test split goes "
                                              "into it (default $FCNKIT_DATA)")
    r.add_argument("--out", type=Path, help="write results.json here")
    a = commands.add_parser("gradescope-autograde", help="what the zip's run_autograder runs (inside Gradescope)",
                            description="Grade ROOT/submission, write ROOT/results/results.json (Gradescope's "
                                        "layout; ROOT is /autograder there).")
    a.add_argument("root", type=Path, nargs="?", default=Path("/autograder"))


def _export_parser(commands) -> None:
    """``python -m autograder export canvas ...``"""
    e = commands.add_parser("export", help="grades into an LMS (Canvas's gradebook import CSV)",
                            description="Write the grades in the format an LMS imports.")
    lms = e.add_subparsers(dest="lms", required=True)
    c = lms.add_parser("canvas", help="the CSV of Canvas's Grades > Import",
                       description="Write the CSV that Canvas's gradebook import takes, from a reports folder and "
                                   "the roster Canvas exports (Grades > Export).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("reports", type=Path, help="the reports folder of python -m autograder grade")
    c.add_argument("--roster", type=Path, required=True, help="the CSV of Canvas's Grades > Export")
    c.add_argument("--out", type=Path, required=True, help="the CSV to write, for Canvas's Grades > Import")
    c.add_argument("--match", default="SIS Login ID", help="the roster column that holds the grader's student ids")
    c.add_argument("--assignment", default=DEFAULT_ASSIGNMENT,
                   help="the assignment's column: 'Name (12345)' as in the roster, or a name (one column 'Name (id)' "
                        "in the roster is used; otherwise Canvas creates a new assignment)")
    partial = c.add_mutually_exclusive_group()
    partial.add_argument("--automatic-only", action="store_true",
                         help="export the automatic score alone, out of the automatic points (by default the total, "
                              "written answers included; a class where some students' answers are imported and "
                              "others' are not is refused)")
    partial.add_argument("--missing-answers-zero", action="store_true",
                         help="count a written answer whose score was never imported as 0")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade FCN assignment submissions.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_grade_parser, _summarize_parser, _bundle_parser, _answers_parser, _run_parser, _export_parser):
        add(commands)
    return parser


def answers(args) -> int:
    from ..answers import SOURCE, AnswersError, import_scores, write_pages
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


def export(args) -> int:
    """``export canvas``: Canvas's gradebook import CSV, and whom it could not match."""
    from ..reports.canvas import ExportError, export_canvas, unmatched_path
    try:
        result = export_canvas(args.reports, args.roster, args.out, args.match, args.assignment,
                               args.automatic_only, args.missing_answers_zero)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {result.rows} students, column {result.column!r} out of {result.points_possible:g} "
          f"points; import it in Canvas: Grades > Import")
    for note in result.notes:
        print(f"note: {note}")
    for what, names in (("graded but not in the roster", result.not_in_roster),
                        ("in the roster without a report", result.without_report)):
        if names:
            print(f"{len(names)} {what}: {', '.join(names)}", file=sys.stderr)
    if result.not_in_roster or result.without_report:
        print(f"listed in {unmatched_path(args.out)}", file=sys.stderr)
    return 0


def _shard(text: str | None) -> tuple[int, int] | None:
    """--shard K/N as (K, N); ValueError when it is not 0 <= K < N."""
    if not text:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise ValueError(f"--shard {text}: expected K/N with 0 <= K < N, e.g. 0/4")
    return int(k), int(n)


def main(argv: list[str] | None = None) -> int:
    began = time.perf_counter()
    for stream in (sys.stdout, sys.stderr):  # a name like josé must not stop the run under LC_ALL=C
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = _parser().parse_args(argv)
    if args.command != "grade":
        from .gradescope import bundle_command, local_run_command, run_command
        commands = {"summarize": lambda: summarize(args.out), "answers": lambda: answers(args),
                    "gradescope-bundle": lambda: bundle_command(args.out, args.data),
                    "export": lambda: export(args), "gradescope-autograde": lambda: run_command(args.root),
                    "gradescope-run": lambda: local_run_command(args.submission, args.bundle, args.data, args.out)}
        return commands[args.command]()
    try:
        shard = _shard(args.shard)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    examples = None
    if args.path is None:
        examples = args.path = tempdirs.make("fcnkit-examples-")
        write_submissions(args.path, EXAMPLES)
        print(f"grading the bundled examples ({', '.join(EXAMPLES)}), written to {args.path}")
    try:
        return grade_class(_class_options(args, shard), began)
    finally:
        tempdirs.remove(examples)


def _class_options(args, shard: tuple[int, int] | None) -> ClassOptions:
    """``grade``'s arguments, typed; --data defaults to $FCNKIT_DATA."""
    from fcnkit.splits import DATA_ENV
    return ClassOptions(
        args.path, out=args.out, data=args.data or os.environ.get(DATA_ENV) or None, checkpoints=args.checkpoints,
        split=args.split, scale=args.scale, device=args.device, jobs=args.jobs, timeout=args.timeout,
        check_timeout=args.check_timeout, memory_gb=args.memory_gb, low_memory=args.low_memory,
        isolation=tuple(layer.strip() for layer in args.isolation.split(",") if layer.strip()), seed=args.seed,
        force=args.force, shard=shard, json=args.json, gradescope=args.gradescope, gradebook=args.gradebook,
        timings=args.timings)
