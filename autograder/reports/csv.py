"""grades.csv: the class's scores, one row per student."""
from __future__ import annotations

from pathlib import Path

from .. import atomic
from ..results import Report, Status
from ..rubric import RUBRIC
from .integrity import integrity_review
from .table import flagged_line


def _row(r: Report, questions: list[str]) -> list:
    points = {c.name: ("" if c.status is Status.NOT_GRADED else c.score) for c in r.checks}
    manual = r.manual or {}
    review = "; ".join([*([f"not graded: {r.not_graded}"] if r.not_graded else []),
                        *(flagged_line(c) for c in r.with_status(Status.FLAGGED)),
                        *([integrity_review(r)] if r.integrity else [])])
    return [r.student, r.score, r.max_score, *[points.get(i.name, "") for i in RUBRIC],
            *[f"{manual[q].score:g}" if q in manual else "" for q in questions],
            *([f"{r.total:g}"] if questions else []), r.submission, review]


def write_csv(reports: list[Report], path: Path) -> None:
    """Class summary: one row per student with every check's points, and the written answers' scores
    (with the total) once they are imported (python -m autograder answers --import); ``review``
    says what is flagged or not graded, and that a student has integrity flags (the class's flags
    computed first: overview.class_pages), without naming anyone. Written whole,
    as UTF-8; a cell that starts like a formula (a file named ``=HYPERLINK(...).py``) stays text."""
    questions = sorted({q for r in reports for q in (r.manual or {})})
    rows = [["student", "score", "max_score", *[i.name for i in RUBRIC], *questions,
             *(["total"] if questions else []), "submission", "review"]]
    rows += [_row(r, questions) for r in reports]
    atomic.write_text(path, atomic.csv_text(rows))
