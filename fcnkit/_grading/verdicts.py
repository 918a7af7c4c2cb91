"""A check's outcome, one type for the notebook and the grader: its :class:`Status` and its
:class:`CheckResult` (an item's verdict: status, message and diagnosis, with its points).

The grader keeps a :class:`CheckResult` per item in a student's report; ``fcnkit.checks.check_all`` and
``python -m fcnkit check`` give the same type, so that the notebook's PASS and the grader's "passed" are
one value. numpy and torch free.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .diagnoses import Diagnosis


class Status(str, Enum):
    """A check's outcome. The value is what the JSON, grades.csv's ``review`` column and the pages say;
    :attr:`word` is what the notebook prints before the item's name."""
    PASSED = "passed"
    FAILED = "failed"
    NOT_GRADED = "not graded"  # the grader's run did not grade it (no trained results given, or the grader failed)
    FLAGGED = "flagged"  # not credited, for a person to review (e.g. implausible submitted predictions)
    NOT_CHECKED = "not checked"  # the notebook cannot check it (the grader's alone, or no predictions to score)

    def __str__(self) -> str:
        return self.value

    @property
    def word(self) -> str:
        """PASS, FAIL, NOT GRADED, FLAGGED or NOT CHECKED."""
        return {"passed": "PASS", "failed": "FAIL"}.get(self.value, self.value.upper())


@dataclass(frozen=True)
class CheckResult:
    """One rubric item's verdict for one submission, with its points.

    Args:
        name: the item (``fcn32s_head``...).
        title: the item's title, as the rubric says it.
        model: ``"fcn32s"`` or ``"fcn8s"``.
        max_score: the item's points.
        score: the points given (``max_score`` when it passed, else 0).
        status: the outcome.
        message: what was checked, or what was observed and what to fix.
        diagnosis: what a failed check found, as data; None when it passed.
    """
    name: str
    title: str
    model: str
    max_score: int
    score: int
    status: Status
    message: str
    diagnosis: Diagnosis | None = None

    @classmethod
    def of(cls, item, status: Status, message: str, diagnosis: Diagnosis | None = None) -> "CheckResult":
        """``item``'s result (a rubric item: the grader's or the notebook's, with ``name``, ``title``, ``model``
        and ``points``): its points when it passed, else none."""
        return cls(item.name, item.title, item.model, item.points, item.points if status is Status.PASSED else 0,
                   status, message, diagnosis)

    @property
    def graded(self) -> bool:
        """Whether its points were decided (passed, failed or flagged), by the grader or the notebook."""
        return self.status not in (Status.NOT_GRADED, Status.NOT_CHECKED)

    def to_json(self) -> dict:
        found = {"diagnosis": self.diagnosis.to_json()} if self.diagnosis else {}
        return {**found, "max_score": self.max_score, "message": self.message, "model": self.model,
                "name": self.name, "score": self.score, "status": self.status.value, "title": self.title}

    @classmethod
    def from_json(cls, data: dict) -> "CheckResult":
        return cls(name=data["name"], title=data["title"], model=data["model"], max_score=data["max_score"],
                   score=data["score"], status=Status(data["status"]), message=data["message"],
                   diagnosis=Diagnosis.from_json(data.get("diagnosis")))
