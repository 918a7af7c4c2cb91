"""One grading run, by stage: discovering submissions (:mod:`.discover`), running their definitions
(read by :mod:`autograder.submission`) confined and judging what they observed (:mod:`.run`,
:mod:`.verdicts`), and a class run's output folder (:mod:`.classrun`), written from the class's one
record (:mod:`autograder.record`).

    with grading_run(jobs=2) as run:
        reports = grade_all(find_submissions(path), jobs=2, run=run)   # autograder.results.Report
"""
from .discover import CHECKPOINT_NAMES, find_checkpoints, find_submissions
from .evalset import EvalSet
from .run import GraderError, GradingRun, Limits, grade_all, grade_submission, grading_run, not_graded_report, phase

__all__ = ["CHECKPOINT_NAMES", "EvalSet", "GraderError", "GradingRun", "Limits", "find_checkpoints",
           "find_submissions", "grade_all", "grade_submission", "grading_run", "not_graded_report", "phase"]
