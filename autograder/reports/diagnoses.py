"""What cost the class its points, for the overview: failed checks grouped by what the grader found
(each check's diagnosis: :mod:`fcnkit._grading.diagnoses`, data set where the failure was found), and a
submission that fails as a whole (never graded, or every graded item failed for one cause) counted
once under that cause, not once per item. No message is read: rewording one regroups nobody."""
from __future__ import annotations

from dataclasses import dataclass, field

from fcnkit._grading.diagnoses import NOT_RUN, Diagnosis

from ..results import CheckResult, Report, Status
from ..rubric import RUBRIC

TRAINED = {i.name: i.needs_weights for i in RUBRIC}
WHOLE = "the whole submission"  # the item a whole-submission cause is shown under
TOP = 10  # rows shown; the rest folded


@dataclass
class Row:
    """One reason for lost points, shared by ``students``: the overview's row."""
    item: str
    label: str
    students: list[str] = field(default_factory=list)
    lost: int = 0  # points, all students together

    def add(self, student: str, points: int) -> None:
        self.students.append(student)
        self.lost += points


def diagnosis_of(check: CheckResult) -> Diagnosis:
    """A failed check's diagnosis; a record from before diagnoses were data has none: its own message
    stands for it (shown as it is, never read)."""
    return check.diagnosis or Diagnosis("unclassified", check.message)


def lost_points(report: Report) -> list:
    """The checks that cost points: failed (flagged ones are for review, not-graded ones are pending)."""
    return [c for c in report.with_status(Status.FAILED) if c.score < c.max_score]


def whole_cause(report: Report) -> Diagnosis | None:
    """Why a submission fails as a whole: the grader could not grade it at all, or no check passed and
    every failed check of its code has the same diagnosis (the trained items, which cannot pass without
    the code, and flagged items, a person's to judge, aside); None when its items fail for their own
    reasons."""
    if report.not_graded:  # its checks say why (a report without checks: its reason, shown as it is)
        return next((diagnosis_of(c) for c in report.checks if c.status is Status.NOT_GRADED),
                    Diagnosis("unclassified", report.not_graded))
    failed = lost_points(report)
    if not failed or report.with_status(Status.PASSED):
        return None
    code = [c for c in failed if not TRAINED.get(c.name)] or failed  # no trained results follow from code that fails
    causes = {diagnosis_of(c) for c in code}
    return causes.pop() if len(causes) == 1 else None


def not_graded_cause(report: Report) -> Diagnosis | None:
    """Why a submission was not graded (the grader failed on it, or no check of its code ran), else None."""
    cause = whole_cause(report)
    code = [c for c in lost_points(report) if not TRAINED.get(c.name)]
    if report.not_graded or (cause and code and all(diagnosis_of(c).code in NOT_RUN for c in code)):
        return cause
    return None


def diagnoses(reports: list[Report]) -> list[Row]:
    """Failed checks grouped by item and diagnosis, a whole-submission failure once under its cause;
    the costliest first."""
    found: dict[tuple[str, Diagnosis], Row] = {}
    for r in reports:
        if cause := whole_cause(r):
            row = found.setdefault((WHOLE, cause), Row(WHOLE, cause.label))
            row.add(r.student, sum(c.max_score - c.score for c in lost_points(r)))
            continue
        for c in lost_points(r):
            diagnosis = diagnosis_of(c)
            found.setdefault((c.name, diagnosis), Row(c.name, diagnosis.label)).add(r.student, c.max_score - c.score)
    return sorted(found.values(), key=lambda d: (-d.lost, d.item, d.label))
