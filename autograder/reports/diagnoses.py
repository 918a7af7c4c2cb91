"""What cost the class its points, for the overview: failed checks grouped by what the grader found,
and a submission that fails as a whole (never graded, or every graded item failed for one cause)
counted once under that cause, not once per item.

The grouping reads the checks' messages (the student's own numbers replaced by ``#``) until
diagnoses are data of their own."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..results import Report, Status
from ..rubric import RUBRIC

HINT = re.compile(r": check (?:the )?(.+?)(?: \(|\.$| and that|$)")
DEPARTS = re.compile(r"it matches up to (.+?); (.+?) (?:differs|is) ")
RAISED = re.compile(r"^(\S+) on an input of shape \([^)]*\) raised (\w+)")
# the student's own numbers (shapes, sizes, differences), not layer names (conv1_1), VGG-16 or 1x1
NUMBER = re.compile(r"(?<![A-Za-z_\d-])(?:\d+x\d+x\d+(?:x\d+)*|\d+(?:\.\d+)?)(?![A-Za-z_\d])")
MODEL_NAME = re.compile(r"\bFCN(?:32|8)s\b")  # one cause named for each model is one cause for the submission
TRAINED = {i.name: i.needs_weights for i in RUBRIC}
WHOLE = "the whole submission"  # the item a whole-submission cause is shown under
TOP = 10  # rows shown; the rest folded


@dataclass
class Diagnosis:
    """One reason for lost points, shared by ``students``."""
    item: str
    label: str
    students: list[str] = field(default_factory=list)
    lost: int = 0  # points, all students together

    def add(self, student: str, points: int) -> None:
        self.students.append(student)
        self.lost += points


def diagnosis(message: str) -> str:
    """What a failed check's message says went wrong, without the student's own numbers: the stage
    its hint names (``crop of score_pool4``), the exception a forward raised, else its first clause."""
    if hint := HINT.search(message):
        return hint.group(1)
    if departs := DEPARTS.search(message):
        return f"{departs.group(2)} (matches up to {departs.group(1)})"
    if raised := RAISED.match(message):
        return f"{raised.group(1)} raises {raised.group(2)}"
    label = NUMBER.sub("#", message.split("; ")[0].rstrip("."))
    return label if len(label) <= 100 else label[:100].rsplit(" ", 1)[0] + " ..."


def lost_points(report: Report) -> list:
    """The checks that cost points: failed (flagged ones are for review, not-graded ones are pending)."""
    return [c for c in report.with_status(Status.FAILED) if c.score < c.max_score]


def whole_cause(report: Report) -> str | None:
    """Why a submission fails as a whole: the grader could not grade it at all, or no check passed and
    every failed check of its code says the same (the model names aside; the trained items, which
    cannot pass without the code, and flagged items, a person's to judge, aside); None when its items fail for their own reasons."""
    if report.not_graded:
        return diagnosis(report.not_graded.removeprefix("not graded: "))
    failed = lost_points(report)
    if not failed or report.with_status(Status.PASSED):
        return None
    code = [c for c in failed if not TRAINED.get(c.name)] or failed  # no trained results follow from code that fails
    causes = {MODEL_NAME.sub("FCN", diagnosis(c.message.removeprefix("not graded: "))) for c in code}
    return causes.pop() if len(causes) == 1 else None


def not_graded_cause(report: Report) -> str | None:
    """The reason a submission was not graded, as its whole cause says it ('not graded: ...'), else None."""
    cause = whole_cause(report)
    code = [c for c in lost_points(report) if not TRAINED.get(c.name)]
    if report.not_graded or (cause and code and all(c.message.startswith("not graded") for c in code)):
        return cause
    return None


def diagnoses(reports: list[Report]) -> list[Diagnosis]:
    """Failed checks grouped by item and diagnosis, a whole-submission failure once under its cause;
    the costliest first."""
    found: dict[tuple[str, str], Diagnosis] = {}
    for r in reports:
        if cause := whole_cause(r):
            key = (WHOLE, cause)
            found.setdefault(key, Diagnosis(*key)).add(r.student, sum(c.max_score - c.score for c in lost_points(r)))
            continue
        for c in lost_points(r):
            key = (c.name, diagnosis(c.message))
            found.setdefault(key, Diagnosis(*key)).add(r.student, c.max_score - c.score)
    return sorted(found.values(), key=lambda d: (-d.lost, d.item, d.label))
