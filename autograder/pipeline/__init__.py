"""One grading run, by stage: discovering submissions (:mod:`.discover`), running their definitions
(read by :mod:`autograder.submission`) confined and judging what they observed (:mod:`.run`,
:mod:`.verdicts`), and a class run (:mod:`.class_grading`: the ``grade`` command's options typed, the
run, the class's files) whose output folder (:mod:`.classrun`) is written from the class's one record
(:mod:`autograder.record`); the shards of a sharded run joined (:mod:`.summarize`).

    grade_class(ClassOptions(Path("submitted"), out=Path("reports")))   # what `python -m autograder grade` does
    with grading_run(jobs=2) as run:
        reports = grade_all(find_submissions(path), jobs=2, run=run)   # autograder.results.Report
"""
from .discover import CHECKPOINT_NAMES, find_checkpoints, find_submissions
from .evalset import EvalSet
from .class_grading import ClassOptions, grade_class
from .run import (GraderError, GradingRun, Limits, default_jobs, grade_all, grade_submission, grading_run,
                  not_graded_report, phase)

__all__ = ["CHECKPOINT_NAMES", "ClassOptions", "EvalSet", "GraderError", "GradingRun", "Limits", "default_jobs",
           "find_checkpoints", "find_submissions", "grade_all", "grade_class", "grade_submission", "grading_run",
           "not_graded_report", "phase"]
