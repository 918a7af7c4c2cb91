"""One grading run, by stage: discovering submissions (:mod:`.discover`), extracting their definitions
(:mod:`.extract`), running them confined and judging what they observed (:mod:`.run`, :mod:`.verdicts`),
and a class run's output folder (:mod:`.classrun`, :mod:`.journal`), whose one record is the class's
gradebook (:mod:`.gradebook`; an earlier version's folder read in and shards joined: :mod:`.books`).

    with grading_run(jobs=2) as run:
        reports = grade_all(find_submissions(path), jobs=2, run=run)   # autograder.results.Report
"""
from ..submission import SubmissionError, extract
from .discover import CHECKPOINT_NAMES, find_checkpoints, find_submissions
from .evalset import EvalSet
from .run import (
           GraderError,
           GradingRun,
           Limits,
           grade_all,
           grade_submission,
           grading_run,
           not_graded_report,
           phase,
)

__all__ = ["CHECKPOINT_NAMES", "EvalSet", "GraderError", "GradingRun", "Limits", "SubmissionError", "extract",
           "find_checkpoints", "find_submissions", "grade_all", "grade_submission", "grading_run", "not_graded_report",
           "phase"]
