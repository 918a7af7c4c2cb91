"""What grading finds, typed: a submission's :class:`Report` (its checks are fcnkit's :class:`CheckResult`,
the one verdict type the notebook prints too), and their one JSON form.

The grading pipeline makes these; everything after it (the score table, grades.csv, the feedback
pages, the overview, Gradescope's results, Canvas's export, ``summarize``, ``answers --import``)
reads them, and reads ``<student>.json`` back only through :func:`read_report`.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit._grading.verdicts import CheckResult, Status  # noqa: F401 (the grader's types too)

MAX_REPORT_BYTES = 64 * 2**20  # a report is a few KB; anything near this was not written by the grader
STEM_BYTES = 120  # a file stem's longest UTF-8 form: with ".json", ".html" or a temporary name, far under 255
HASHED = re.compile(r"~[0-9a-f]{10}$")  # the end of a stem made by file_stem; never left on a name as it was


@dataclass(frozen=True)
class IntegrityFlag:
    """Evidence that this submission shares results or code with another one's: for review, never a score."""
    kind: str  # "predictions", "weights" or "code"
    other: str  # the other student
    evidence: str
    agreement: float | None = None  # the share that is the same (pixels, syntax nodes; 1.0: the same weights)

    def to_json(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class ManualScore:
    """A written answer's score, imported from the answers pages' CSV."""
    title: str
    score: float
    max_score: float
    comment: str = ""


@dataclass
class Report:
    """Everything the grader says about one submission.

    ``score``, ``max_score``, ``graded_max_score`` and ``total`` are computed from the checks (and the
    imported written answers); the fields after ``image_iou`` depend on the run (timings, the traceback
    of a grader error, the first predicted maps for the feedback page) and never reach the JSON.
    """
    student: str
    submission: str
    seed: int | None = None
    isolation: dict = field(default_factory=dict)  # {"layers": [...], "missing": {layer: why}}
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_graded: str | None = None  # why the grader could not grade this submission at all
    metrics: dict[str, dict] | None = None  # model: fcnkit.metrics.scores of its submitted predictions
    integrity: list[IntegrityFlag] | None = None  # None: the class's flags were not computed
    manual: dict[str, ManualScore] | None = None  # question id: its score, once imported
    image_iou: dict[str, dict[str, float | None]] | None = None  # model: {test image id: its mIoU}
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    traceback: str = ""
    # model: the feedback page's examples (best, median, worst by IoU), each {"image_id", "iou", "prediction",
    # "truth", "image"} (arrays; "truth"/"image" None when the run has not got them)
    first_predictions: dict[str, list] = field(default_factory=dict)
    evidence: dict[str, dict] = field(default_factory=dict)  # model: the integrity evidence (judging/evidence.py)

    _IN_JSON = ("student", "submission", "seed", "isolation", "checks", "notes", "not_graded", "metrics",
                "integrity", "manual", "image_iou")

    @property
    def score(self) -> int:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> int:
        return sum(c.max_score for c in self.checks)

    @property
    def graded_max_score(self) -> int:
        return sum(c.max_score for c in self.checks if c.graded)

    @property
    def total(self) -> float:
        """The automatic score plus the written answers' scores once imported."""
        return self.score + sum(m.score for m in (self.manual or {}).values())

    def with_status(self, *statuses: Status) -> list[CheckResult]:
        return [c for c in self.checks if c.status in statuses]

    def to_json(self) -> dict:
        data = {"student": self.student, "submission": self.submission, "seed": self.seed,
                "isolation": self.isolation, "checks": [c.to_json() for c in self.checks], "notes": self.notes,
                "score": self.score, "max_score": self.max_score, "graded_max_score": self.graded_max_score}
        if self.not_graded is not None:
            data["not_graded"] = self.not_graded
        if self.metrics is not None:
            data["metrics"] = self.metrics
        if self.integrity is not None:
            data["integrity"] = [f.to_json() for f in self.integrity]
        if self.image_iou is not None:
            data["image_iou"] = self.image_iou
        if self.manual is not None:
            data["manual"] = {q: vars(m) for q, m in self.manual.items()}
            data["total"] = self.total
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Report":
        """The report :meth:`to_json` wrote (KeyError, TypeError or ValueError for anything else)."""
        if not isinstance(data, dict):
            raise TypeError(f"a report is a JSON object, not {type(data).__name__}")
        report = cls(**{k: v for k, v in data.items() if k in cls._IN_JSON})
        report.checks = [CheckResult.from_json(c) for c in data["checks"]]
        if report.integrity is not None:
            report.integrity = [IntegrityFlag(**f) for f in report.integrity]
        if report.manual is not None:
            report.manual = {q: ManualScore(**m) for q, m in report.manual.items()}
        if not isinstance(report.student, str):
            raise TypeError("the report's student is not a string")
        report.refuse_notebook_statuses()
        return report

    def refuse_notebook_statuses(self) -> None:
        """ValueError if a check is NOT_CHECKED: the notebook's status, never the grader's (no page or
        gradebook row has a place for it)."""
        if any(c.status is Status.NOT_CHECKED for c in self.checks):
            raise ValueError("a check 'not checked': the notebook's status, never in a grader's report")


def dumps(reports: "Report | list[Report]") -> str:
    """The JSON text of one report (an object) or several (an array), as every report file is written."""
    data = reports.to_json() if isinstance(reports, Report) else [r.to_json() for r in reports]
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def short_hash(text: str) -> str:
    """Ten hex digits of the SHA-256 of ``text`` (its bytes as the file system has them)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def file_stem(student: str) -> str:
    """The stem of every file named after ``student`` (``<stem>.json``, ``feedback/<stem>.html``,
    ``gradescope/<stem>/``): the id as it is (as UTF-8 text) when it is printable, has no path
    separator, does not start with a dot (hidden, or a writer's temporary file), is at most
    STEM_BYTES long in UTF-8 and does not end like a made stem; otherwise its safe characters, cut
    to a bounded length, then ``~`` and ten hex digits of the id's SHA-256, so that two names never
    share a stem. The id itself is what reports, grades.csv and the pages show.

    Args:
        student: a student id as :func:`autograder.pipeline.find_submissions` made it.
    """
    encoded = student.encode("utf-8", "surrogateescape")
    try:  # a name read from the disk under the C locale (``jos\\udcc3\\udca9``) is the name it encodes (josé)
        text = encoded.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if (text and text.isprintable() and "/" not in text and "\\" not in text and not text.startswith(".")
            and len(encoded) <= STEM_BYTES and not HASHED.search(text)):
        return text
    kept = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in student).lstrip(".")
    while len(kept.encode("utf-8")) > STEM_BYTES - 11:
        kept = kept[:-1]
    return f"{kept}~{short_hash(student)}"


def report_path(out: Path, student: str) -> Path:
    """Where ``student``'s report is in the reports folder ``out``."""
    return Path(out) / f"{file_stem(student)}.json"


class ReportError(ValueError):
    """A file that is not a report the grader wrote (missing, partly written, or something else)."""


def read_report(path: Path) -> Report:
    """The report in ``path``; ReportError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_REPORT_BYTES + 1)
        if len(raw) > MAX_REPORT_BYTES:
            raise ValueError(f"over {MAX_REPORT_BYTES // 2**20} MB")
        return Report.from_json(json.loads(raw.decode("utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as err:
        reason = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise ReportError(f"{path}: not a whole report ({reason})") from None


def read_reports(folder: Path) -> tuple[list[Report], list[str]]:
    """The reports ``<student>.json`` in ``folder``, sorted by file name, and a line for each JSON
    file skipped because it is not a whole report (the caller says whether that matters)."""
    reports, skipped = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            reports.append(read_report(path))
        except ReportError as err:
            skipped.append(str(err))
    return reports, skipped

